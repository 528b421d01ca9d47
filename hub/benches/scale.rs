//! A thousand devices polled every second (DESIGN §8), with real processes: the simulator serving
//! 1,000 powdrive units on 50 Modbus TCP gateways (in this process), the hub binary on SQLite with
//! those devices in its catalog, and the collector binary polling all of them each second and
//! streaming to the hub. From `/proc` and the hub's rows:
//! - collector: resident memory (target under 30 MB) and CPU (under a quarter of a core) over the
//!   steady part of the run; polls on time (every device's readings a second apart, none late by
//!   more than half an interval);
//! - hub: resident memory while 1,000 devices stream against the same hub idle before the
//!   collector started (target under 10 MB more).
//!
//! `cargo bench -p solarhub-hub --bench scale`. `SOLARHUB_BENCH_SECS` sets the steady run (default
//! 40 s, after a 15 s start). Builds the collector binary (release) when it is not there yet.

#[path = "support/proc.rs"]
mod proc;
#[path = "support/report.rs"]
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use report::{Figure, Target};
use solarhub_collector::drivers::register_map::builtin_map;
use solarhub_collector::simulator::model::DeviceModel;
use solarhub_collector::simulator::{Clock, Endpoint, SimDevice, serve_tcp};
use solarhub_hub::db::samples::{EnergySample, SampleRow};
use solarhub_hub::db::{self, Database, DatabaseUrl};

/// Gateways and units behind each: `SOLARHUB_BENCH_GATEWAYS` (50) and `SOLARHUB_BENCH_UNITS` (20);
/// `SOLARHUB_BENCH_GATEWAYS=1 SOLARHUB_BENCH_UNITS=10` is the small site (collector target 12 MB).
fn site_size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
const INTERVAL_MS: i64 = 1000;

fn collector_binary() -> anyhow::Result<PathBuf> {
    let path = Path::new(env!("CARGO_BIN_EXE_solarhub-hub")).with_file_name("solarhub-collector");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "solarhub-collector",
                "--bin",
                "solarhub-collector",
            ])
            .status()?;
        anyhow::ensure!(status.success(), "cannot build the collector binary");
    }
    Ok(path)
}

/// A child that is killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let steady = Duration::from_secs(
        std::env::var("SOLARHUB_BENCH_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(40),
    );
    let (gateway_count, units_per_gateway) = (
        site_size("SOLARHUB_BENCH_GATEWAYS", 50),
        site_size("SOLARHUB_BENCH_UNITS", 20),
    );
    let device_count = gateway_count * units_per_gateway;
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Runtime::new()?;

    // The simulated gateways.
    let map = Arc::new(builtin_map("powdrive")?);
    let tz: chrono_tz::Tz = "Asia/Karachi".parse()?;
    let now = chrono::Utc::now();
    let mut ports = Vec::new();
    runtime.block_on(async {
        for gateway in 0..gateway_count {
            let units: BTreeMap<u8, Arc<SimDevice>> = (1..=units_per_gateway)
                .map(|unit| {
                    let seed = (gateway * units_per_gateway + unit) as u32;
                    let device = SimDevice::new(
                        format!("inv{gateway:02}u{unit:02}"),
                        map.clone(),
                        DeviceModel::inverter(tz, 5000.0, seed),
                        now,
                    );
                    (unit as u8, Arc::new(device))
                })
                .collect();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            ports.push(listener.local_addr()?.port());
            tokio::spawn(serve_tcp(
                listener,
                Arc::new(Endpoint::new(units, Clock::Real)),
            ));
        }
        anyhow::Ok(())
    })?;

    // The installation, in the existing app's config format, every adapter polled each second.
    let mut config = String::from(
        "home: {id: scale, name: Scale}\nsmart: {forecast: {tz: Asia/Karachi}}\narrays:\n",
    );
    for gateway in 0..gateway_count {
        let ids: Vec<String> = (1..=units_per_gateway)
            .map(|u| format!("inv{gateway:02}u{u:02}"))
            .collect();
        config.push_str(&format!(
            "  - {{id: gw{gateway:02}, name: Gateway {gateway}, inverter_ids: [{}]}}\n",
            ids.join(", ")
        ));
    }
    config.push_str("inverters:\n");
    for (gateway, port) in ports.iter().enumerate() {
        for unit in 1..=units_per_gateway {
            config.push_str(&format!(
                "  - {{id: inv{gateway:02}u{unit:02}, name: inv{gateway:02}u{unit:02}, array_id: gw{gateway:02}, adapter: {{type: powdrive, transport: tcp, host: 127.0.0.1, port: {port}, unit_id: {unit}, poll_interval_secs: 1}}}}\n"
            ));
        }
    }
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config)?;
    let database_path = dir.path().join("hub.db");
    let hub_binary = env!("CARGO_BIN_EXE_solarhub-hub");
    let log = std::fs::File::create(dir.path().join("processes.log"))?;
    let status = Command::new(hub_binary)
        .arg("--database-url")
        .arg(&database_path)
        .args(["import-config", "--collector-id", "scale"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(log.try_clone()?)
        .status()?;
    anyhow::ensure!(status.success(), "import-config failed");
    let database = Database::open(DatabaseUrl::Sqlite(database_path.clone()))?;
    let token = solarhub_hub::auth::principals::create(
        &mut *database.get()?,
        "scale",
        solarhub_hub::auth::Role::Collector,
        Some("scale"),
        None,
    )?;
    let token_file = dir.path().join("collector.token");
    std::fs::write(&token_file, token.token.expose())?;

    let hub_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let hub = Running(
        Command::new(hub_binary)
            .arg("--database-url")
            .arg(&database_path)
            .args(["serve", "--listen", &format!("127.0.0.1:{hub_port}")])
            .stdout(Stdio::null())
            .stderr(log.try_clone()?)
            .spawn()?,
    );
    let mut idle_series = Vec::new();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_secs(5));
        idle_series.push(proc::resident_parts_kb(hub.0.id())?);
    }
    println!("scale: hub idle RSS in parts every 5 s: {idle_series:?}");
    let (hub_idle_kb, _) = proc::memory_kb(hub.0.id())?;
    let hub_idle_parts = proc::resident_parts_kb(hub.0.id())?;

    let collector = Running(
        Command::new(collector_binary()?)
            .args([
                "run",
                "--hub",
                &format!("http://127.0.0.1:{hub_port}"),
                "--id",
                "scale",
            ])
            .arg("--outbox-dir")
            .arg(dir.path().join("outbox"))
            .arg("--token-file")
            .arg(&token_file)
            .stdout(Stdio::null())
            .stderr(log.try_clone()?)
            .spawn()?,
    );
    let pid = collector.0.id();
    // Start-up: registration, connections to 50 gateways, the first polls.
    std::thread::sleep(Duration::from_secs(15));
    let cpu_before = proc::cpu_time(pid)?;
    let hub_cpu_before = proc::cpu_time(hub.0.id())?;
    let window_from = chrono::Utc::now().timestamp_millis();
    let began = Instant::now();
    // The hub's memory through the run: a plateau, or growth.
    let mut hub_series = Vec::new();
    while began.elapsed() < steady {
        std::thread::sleep(Duration::from_secs(5).min(steady.saturating_sub(began.elapsed())));
        hub_series.push(proc::memory_kb(hub.0.id())?.0 / 1024);
    }
    let cpu = (proc::cpu_time(pid)? - cpu_before).as_secs_f64() / began.elapsed().as_secs_f64();
    let hub_cpu = (proc::cpu_time(hub.0.id())? - hub_cpu_before).as_secs_f64()
        / began.elapsed().as_secs_f64();
    let window_to = chrono::Utc::now().timestamp_millis();
    let (collector_kb, collector_peak_kb) = proc::memory_kb(pid)?;
    let (hub_streaming_kb, _) = proc::memory_kb(hub.0.id())?;
    let hub_streaming_parts = proc::resident_parts_kb(hub.0.id())?;
    drop(collector);
    // The last readings reach the hub after the window closed; wait for the outbox to drain.
    std::thread::sleep(Duration::from_secs(3));
    drop(hub);

    // Polls on time: each device's readings inside the window, a second apart.
    let devices: Vec<String> = (0..gateway_count)
        .flat_map(|g| (1..=units_per_gateway).map(move |u| format!("inv{g:02}u{u:02}")))
        .collect();
    let mut conn = database.get()?;
    db::run_migrations(&mut conn)?;
    let rows = EnergySample::stored(&mut conn, &devices, window_from, window_to)?;
    let mut by_device: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for row in &rows {
        by_device.entry(row.device_id()).or_default().push(row.ts);
    }
    let expected = (window_to - window_from) / INTERVAL_MS;
    let (mut intervals, mut on_time, mut silent) = (0usize, 0usize, 0usize);
    for device in &devices {
        let Some(times) = by_device.get_mut(device.as_str()) else {
            silent += 1;
            continue;
        };
        times.sort_unstable();
        for pair in times.windows(2) {
            intervals += 1;
            if pair[1] - pair[0] <= INTERVAL_MS * 3 / 2 {
                on_time += 1;
            }
        }
    }
    println!(
        "scale: {} devices on {gateway_count} gateways, polled each second for {steady:?}: {} readings stored in the window (a perfect run: about {}), {silent} devices silent; {on_time} of {intervals} intervals on time",
        devices.len(),
        rows.len(),
        expected * devices.len() as i64
    );
    println!("scale: hub RSS every 5 s while streaming (MB): {hub_series:?}");
    println!(
        "scale: hub RSS in parts (anonymous, file-backed) idle {hub_idle_parts:?} kB, streaming {hub_streaming_parts:?} kB"
    );
    println!(
        "scale: collector RSS {collector_kb} kB (peak {collector_peak_kb} kB), CPU {:.1} % of a core; hub RSS idle {hub_idle_kb} kB, streaming {hub_streaming_kb} kB, CPU {:.1} % of a core",
        cpu * 100.0,
        hub_cpu * 100.0
    );
    // The collector's targets: 30 MB for 1,000 devices, 12 MB for a small site of 10.
    let (collector_target, target_is) = match device_count {
        0..=10 => (12.0, "the target: 12 MB for 10 devices"),
        _ => (30.0, "the target: 30 MB for 1,000 devices"),
    };
    Figure {
        name: &format!("scale.collector_rss.{device_count}_devices"),
        figure: collector_peak_kb as f64 / 1024.0,
        baseline: collector_target,
        unit: "MB",
        baseline_is: target_is,
        target: Target::FigureAtMost(collector_target),
    }
    .print();
    Figure {
        name: "scale.collector_cpu",
        figure: cpu,
        baseline: 0.25,
        unit: "cores",
        baseline_is: "the target: a quarter of a core",
        target: Target::FigureAtMost(0.25),
    }
    .print();
    Figure {
        name: "scale.polls_on_time",
        figure: on_time as f64 / intervals.max(1) as f64,
        baseline: 1.0,
        unit: "fraction",
        baseline_is: "every poll on time",
        target: Target::FigureAtLeast(0.999),
    }
    .print();
    if device_count < 1000 {
        // What streaming at all costs does not scale down: the per-1,000 figure needs 1,000.
        println!(
            "scale: hub RSS over idle with {device_count} devices: {:.1} MB",
            (hub_streaming_kb as f64 - hub_idle_kb as f64) / 1024.0
        );
        return Ok(());
    }
    Figure {
        name: "scale.hub_rss_per_1000_devices",
        figure: (hub_streaming_kb as f64 - hub_idle_kb as f64) / 1024.0 * 1000.0
            / device_count as f64,
        baseline: hub_idle_kb as f64 / 1024.0,
        unit: "MB",
        baseline_is: "the same hub idle, before the collector started",
        target: Target::FigureAtMost(10.0),
    }
    .print();
    Ok(())
}
