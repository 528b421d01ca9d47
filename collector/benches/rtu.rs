//! How much of a serial line the collector uses (DESIGN §8: at least 95% of the bus time the
//! Modbus RTU timing formula allows). The simulator serves three powdrive inverters on a
//! pseudo-terminal paced at the real speed of 9600 and 19200 baud (11 bits a character, the
//! 3.5-character gap after every frame); the collector's bus polls them as fast as the line
//! allows. The figure is the time the answered reads need by the formula, against the time that
//! passed.
//!
//! `cargo bench -p solarhub-collector --bench rtu`; `SOLARHUB_BENCH_SECS` per speed (default 10).

#[path = "../../hub/benches/support/report.rs"]
mod report;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use report::{Figure, Target};
use solarhub_collector::bus::{DeviceSpec, Driver, Transport, run_bus};
use solarhub_collector::drivers::register_map::builtin_map;
use solarhub_collector::simulator::model::DeviceModel;
use solarhub_collector::simulator::rtu::{Pacing, serve_rtu_paced};
use solarhub_collector::simulator::{Clock, Endpoint, SimDevice};

const UNITS: u8 = 3;

fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("SOLARHUB_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for baud in [9600, 19200] {
        runtime.block_on(line(baud, Duration::from_secs(secs)))?;
    }
    Ok(())
}

async fn line(baud: u32, duration: Duration) -> anyhow::Result<()> {
    let map = Arc::new(builtin_map("powdrive")?);
    let tz: chrono_tz::Tz = "Asia/Karachi".parse()?;
    let now = chrono::Utc::now();
    let units: BTreeMap<u8, Arc<SimDevice>> = (1..=UNITS)
        .map(|unit| {
            let device = SimDevice::new(
                format!("inv{unit}"),
                map.clone(),
                DeviceModel::inverter(tz, 5000.0, u32::from(unit)),
                now,
            );
            (unit, Arc::new(device))
        })
        .collect();
    let endpoint = Arc::new(Endpoint::new(units, Clock::Real));
    let pacing = Pacing::new(baud);
    let stats = pacing.stats.clone();
    let pty = solarhub_collector::bus::serial::pseudo_terminal()?;
    let path = pty.path.clone();
    let served = tokio::spawn(async move {
        let result = serve_rtu_paced(pty.device, endpoint, Some(pacing)).await;
        drop(pty.slave);
        result
    });
    let devices: Vec<DeviceSpec> = (1..=UNITS)
        .map(|unit| DeviceSpec {
            device_id: format!("inv{unit}"),
            adapter_id: format!("inv{unit}.adapter"),
            unit_id: unit,
            driver: Driver::Map(map.clone()),
            // As fast as the line allows: every device is always due.
            poll_interval: Duration::from_millis(1),
            timeout: Duration::from_secs(3),
        })
        .collect();
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let settings = solarhub_collector::bus::serial::SerialSettings {
        baud,
        ..Default::default()
    };
    let bus = tokio::spawn(run_bus(
        Transport::RtuSerial { path, settings },
        devices,
        sender,
        stopped,
        None,
    ));
    tokio::spawn(async move { while receiver.recv().await.is_some() {} });
    // The first reads open the line; measure after them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (transactions, registers) = (
        stats.transactions.load(Ordering::SeqCst),
        stats.registers.load(Ordering::SeqCst),
    );
    let began = Instant::now();
    tokio::time::sleep(duration).await;
    let elapsed = began.elapsed();
    let transactions = stats.transactions.load(Ordering::SeqCst) - transactions;
    let registers = stats.registers.load(Ordering::SeqCst) - registers;
    stop.send(true)?;
    bus.await?;
    served.abort();
    // Every read the collector makes of a powdrive has the same shape: the formula's time for
    // the reads answered is their count times the time of the average read.
    let per_read = registers as f64 / transactions.max(1) as f64;
    let formula = Pacing::new(baud).transaction_time(0).as_secs_f64() * transactions as f64
        + Pacing::new(baud).char_time().as_secs_f64() * 2.0 * registers as f64;
    println!(
        "rtu {baud} baud: {transactions} reads ({per_read:.1} registers each, {registers} registers) in {elapsed:.2?}: {:.0} registers/s; the formula allows {:.0} registers/s for these reads",
        registers as f64 / elapsed.as_secs_f64(),
        registers as f64 / formula
    );
    Figure {
        name: &format!("rtu.bus_use.{baud}"),
        figure: registers as f64 / elapsed.as_secs_f64(),
        baseline: registers as f64 / formula,
        unit: "registers/s",
        baseline_is: "the Modbus RTU timing formula for the same reads",
        target: Target::AtLeast(0.95),
    }
    .print();
    Ok(())
}
