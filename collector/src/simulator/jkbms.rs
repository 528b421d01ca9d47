//! A simulated JK BMS bank on its RS485 bus: the master asks each battery in turn and each answers
//! with its status frame, several times a second. Served through an RS485-to-TCP gateway or on a
//! serial line (pseudo-terminal). The bank's state is shared by every gateway serving it, so two
//! adapters of one pack see the same batteries.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::drivers::jkbms::{self, BatteryStatus};

/// The batteries of one bank.
#[derive(Debug)]
pub struct JkBank {
    state: Mutex<Vec<BatteryStatus>>,
}

impl JkBank {
    /// `batteries` modules of `cells` cells, mid-charge, charging at a few amps.
    pub fn new(batteries: usize, cells: usize) -> JkBank {
        let statuses = (0..batteries)
            .map(|b| {
                let b = b as f64;
                let cell_voltages_v: Vec<f64> = (0..cells)
                    .map(|c| f64::from(3300 + ((c * 7 + b as usize * 3) % 20) as u16) / 1000.0)
                    .collect();
                let pack_voltage_v = (cell_voltages_v.iter().sum::<f64>() * 100.0).round() / 100.0;
                BatteryStatus {
                    pack_voltage_v,
                    power_w: (pack_voltage_v * (5.0 + b) * 1000.0).round() / 1000.0,
                    current_a: 5.0 + b,
                    mos_temp_c: 30.0 + b,
                    temp1_c: 24.0 + b / 2.0,
                    temp2_c: 23.5,
                    soc_pct: 60.0 + b * 4.0,
                    soh_pct: 98.0,
                    remaining_ah: 168.0 + b,
                    total_ah: 280.0,
                    cycles: 40.0 + b,
                    cell_voltages_v,
                }
            })
            .collect();
        JkBank {
            state: Mutex::new(statuses),
        }
    }

    /// What each battery reports now (ground truth).
    pub fn statuses(&self) -> Vec<BatteryStatus> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Changes a battery's status (tests: faults, new values).
    pub fn update(&self, battery: usize, change: impl FnOnce(&mut BatteryStatus)) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(status) = state.get_mut(battery) {
            change(status);
        }
    }
}

/// A gateway (or line) that can be switched silent, as when its adapter fails.
#[derive(Debug, Default)]
pub struct Line {
    silent: std::sync::atomic::AtomicBool,
}

impl Line {
    pub fn set_silent(&self, silent: bool) {
        self.silent
            .store(silent, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_silent(&self) -> bool {
        self.silent.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Writes the bus traffic of `bank` to `io`: a poll and a status frame per battery, every `period`.
pub async fn broadcast<T: AsyncWrite + Unpin>(
    mut io: T,
    bank: Arc<JkBank>,
    line: Arc<Line>,
    period: Duration,
) -> std::io::Result<()> {
    loop {
        if !line.is_silent() {
            for (index, status) in bank.statuses().iter().enumerate() {
                io.write_all(&jkbms::encode_poll(index as u8 + 1)).await?;
                io.write_all(&jkbms::encode_status(status)).await?;
            }
            io.flush().await?;
        }
        tokio::time::sleep(period).await;
    }
}

/// An RS485-to-TCP gateway on `listener`: every connection hears the bus.
pub async fn serve_gateway(
    listener: TcpListener,
    bank: Arc<JkBank>,
    line: Arc<Line>,
    period: Duration,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(broadcast(stream, bank.clone(), line.clone(), period));
    }
}
