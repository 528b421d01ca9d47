//! Capacity (issue 24, DESIGN §8): how many devices one hub holds. N collectors, each with its own
//! token and stream, each for a system of its own devices, send every device's reading (shaped
//! like a powdrive's) at a fixed interval from a light generator (readings made from a template:
//! no Modbus, the two cores belong to the hub and the database), while the hub binary (`serve`)
//! runs its roller, array sampler and retention and 20 readers watch systems live. Reported:
//! readings sent against rows stored (exactly once), the time from sending a batch to its ack
//! (p50, p99, max), the roller's lag (p50, max over the run, the last third against the first) and
//! the ranges pending at the end, the hub's CPU and resident memory over time, and the database's
//! growth per hour.
//!
//! Targets: 10,000 devices at 5 s on Postgres (2,000 on SQLite): ack p99 under 100 ms, roller lag
//! under 10 s and not growing, the hub under one core and flat in memory (minute 2 to the end).
//! `SOLARHUB_BENCH_KNEE=1` then raises the devices by half until a load target fails and reports the
//! most each backend held.
//!
//! `cargo bench -p solarhub-hub --bench capacity`; Postgres when `SOLARHUB_TEST_DATABASE_URL`
//! names a server (else SQLite), configured as a deployment's is: a server with autovacuum off
//! (such as a CI cluster's) is said so at the start, and measures a database that grows by every
//! row the hub updates or deletes. `SOLARHUB_BENCH_DEVICES` (default 10,000 on Postgres, 2,000 on
//! SQLite), `SOLARHUB_BENCH_COLLECTORS` (20), `SOLARHUB_BENCH_INTERVAL_SECS` (5),
//! `SOLARHUB_BENCH_SECS` (600).

#[path = "support/proc.rs"]
mod proc;
#[path = "support/report.rs"]
mod report;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use report::{Figure, Target};
use solarhub_collector::uplink::connect;
use solarhub_collector::uplink::hub_access::{AccessFiles, HubAccess};
use solarhub_hub::db::{Database, DatabaseUrl, admin};
use solarhub_proto::v1::{DeviceReading, TelemetryBatch, WatchSystemRequest};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child that is killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Clone, Copy)]
struct Load {
    devices: u64,
    collectors: u64,
    interval: Duration,
    run: Duration,
}

/// What one run measured.
#[derive(Debug, Default)]
struct Measured {
    sent: u64,
    stored_rows: u64,
    acks_ms: Vec<f64>,
    /// When each ack came, seconds after the senders started (the same order as `acks_ms`).
    acks_at_s: Vec<f64>,
    lag_s: Vec<f64>,
    pending_end: f64,
    cpu_cores: f64,
    rss_mb: Vec<f64>,
    idle_mb: f64,
    growth_mb_per_hour: f64,
    refused: u64,
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

impl Measured {
    /// Lag in the last third of the run against the first third, in seconds.
    fn lag_growth(&self) -> f64 {
        let third = self.lag_s.len() / 3;
        if third == 0 {
            return 0.0;
        }
        let mean = |part: &[f64]| part.iter().sum::<f64>() / part.len() as f64;
        mean(&self.lag_s[self.lag_s.len() - third..]) - mean(&self.lag_s[..third])
    }

    /// Resident memory growth from minute 2 to the end, in MB (a sample every 5 s): the mean of
    /// the last third of those samples against the mean of the first third (a plateau that
    /// jitters does not grow).
    fn memory_growth(&self) -> f64 {
        let from = (120 / 5).min(self.rss_mb.len().saturating_sub(3));
        let steady = &self.rss_mb[from..];
        let third = steady.len() / 3;
        if third == 0 {
            return 0.0;
        }
        let mean = |part: &[f64]| part.iter().sum::<f64>() / part.len() as f64;
        mean(&steady[steady.len() - third..]) - mean(&steady[..third])
    }

    /// Memory over idle per 1,000 devices (the last minute's mean), in MB.
    fn per_thousand(&self, devices: u64) -> f64 {
        let last = &self.rss_mb[self.rss_mb.len().saturating_sub(12)..];
        if last.is_empty() {
            return 0.0;
        }
        let streaming = last.iter().sum::<f64>() / last.len() as f64;
        (streaming - self.idle_mb) / (devices as f64 / 1000.0)
    }

    /// Whether the load held: every reading stored once, acks, the roller's lag, CPU, and memory
    /// flat. The knee is where this fails; the memory a device costs does not move with load.
    fn load_held(&self) -> bool {
        self.sent == self.stored_rows
            && self.refused == 0
            && percentile(&self.acks_ms, 0.99) < 100.0
            && self.lag_s.iter().copied().fold(0.0, f64::max) < 10.0
            && self.lag_growth() < 2.0
            && self.cpu_cores < 1.0
            && self.memory_growth() < 10.0
    }
}

/// The installation of site `site`: one array of `devices` powdrives, assigned to collector
/// `c<site>`, in the old app's config format.
fn site_config(site: u64, devices: u64) -> String {
    let mut config = format!(
        "home: {{id: site{site}, name: Site {site}, timezone: Asia/Karachi}}\narrays:\n  - {{id: site{site}.a, name: Roof, inverter_ids: [{}]}}\ninverters:\n",
        (0..devices)
            .map(|d| format!("s{site}i{d}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for d in 0..devices {
        config.push_str(&format!(
            "  - {{id: s{site}i{d}, name: s{site}i{d}, array_id: site{site}.a, adapter: {{type: powdrive, transport: tcp, host: 127.0.0.1, port: 1502, unit_id: 1, poll_interval_secs: 5}}}}\n"
        ));
    }
    config
}

/// A powdrive's reading of device `device` at `ts`, its counters `n` intervals on.
fn reading(device: &str, ts: i64, n: u64) -> DeviceReading {
    let wave = (n % 60) as f64;
    let fields: HashMap<String, f64> = [
        ("pv_power_w", 3200.0 + wave * 10.0),
        ("load_power_w", 1400.0 + wave),
        ("grid_power_w", -250.0 + wave),
        ("battery_power_w", 900.0 - wave * 3.0),
        ("battery_soc_pct", 55.0 + wave / 10.0),
        ("battery_voltage_v", 52.4),
        ("battery_current_a", 17.2),
        ("inverter_temp_c", 41.5),
        ("pv_energy_total_wh", 1.0e7 + n as f64 * 4.5),
        ("load_energy_total_wh", 6.0e6 + n as f64 * 2.0),
        ("grid_import_total_wh", 2.0e6 + n as f64 * 0.1),
        ("grid_export_total_wh", 1.0e6 + n as f64 * 0.4),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    DeviceReading {
        device_id: device.to_owned(),
        adapter_id: format!("{device}.adapter"),
        ts: Some(solarhub_proto::time::timestamp(ts)),
        fields,
        ..DeviceReading::default()
    }
}

fn database_bytes(database: &Database, url: &DatabaseUrl) -> anyhow::Result<u64> {
    Ok(match url {
        DatabaseUrl::Sqlite(path) => {
            let size = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            size(path.clone()) + size(path.with_extension("db-wal"))
        }
        DatabaseUrl::Postgres(_) => {
            #[derive(diesel::QueryableByName)]
            struct Size {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                bytes: i64,
            }
            let mut conn = database.get()?;
            let solarhub_hub::db::DbConnection::Postgres(pg) = &mut *conn else {
                anyhow::bail!("not Postgres");
            };
            let rows: Vec<Size> = diesel::RunQueryDsl::load(
                diesel::sql_query(
                    "SELECT CAST(pg_database_size(current_database()) AS BIGINT) AS bytes",
                ),
                pg,
            )?;
            rows.first().map_or(0, |s| s.bytes as u64)
        }
    })
}

fn energy_rows(database: &Database) -> anyhow::Result<u64> {
    Ok(solarhub_hub::db::introspect::row_count(&mut *database.get()?, "energy_samples")? as u64)
}

fn scrape(port: u16) -> Option<(f64, f64)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let value = |name: &str| {
        answer
            .lines()
            .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((
        value("solarhub_hub_rollup_lag_seconds").unwrap_or(0.0),
        value("solarhub_hub_rollup_pending_ranges").unwrap_or(0.0),
    ))
}

fn run(backend: &str, url: DatabaseUrl, load: Load) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let database = Database::open(url.clone())?;
    solarhub_hub::db::run_migrations(&mut *database.get()?)?;
    if solarhub_hub::db::retention::autovacuum_off(&mut *database.get()?)? {
        // A test server's setting (this machine's CI cluster), not a deployment's: the figures
        // below are then those of a database that never reuses its dead rows.
        println!(
            "{backend}: WARNING: this server's autovacuum is off (a deployment's is on, the server's default): \
             the database grows by every row the hub updates or deletes, and its reads with it"
        );
    }
    let per_site = load.devices / load.collectors;
    let types = solarhub_hub::adapter_types::builtin_adapter_types()?;
    let rows: Vec<_> = types.iter().map(|t| t.row.clone()).collect();
    let mut tokens = Vec::new();
    for site in 0..load.collectors {
        let mut loaded = solarhub_hub::config_import::parse_config(
            std::path::Path::new("site.yaml"),
            &site_config(site, per_site),
            &types,
        )?;
        for adapter in &mut loaded.installation.adapters {
            adapter.collector_id = Some(format!("c{site}"));
        }
        solarhub_hub::db::catalog::apply_installation(
            &mut *database.get()?,
            &rows,
            &loaded.installation,
            false,
        )?;
        let token = solarhub_hub::auth::principals::create(
            &mut *database.get()?,
            &format!("c{site}"),
            solarhub_hub::auth::Role::Collector,
            Some(&format!("c{site}")),
            None,
        )?;
        tokens.push(token.token.expose().to_owned());
    }
    let reader = solarhub_hub::auth::principals::create(
        &mut *database.get()?,
        "watcher",
        solarhub_hub::auth::Role::Reader,
        None,
        None,
    )?
    .token
    .expose()
    .to_owned();

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // SOLARHUB_BENCH_LOG keeps the hub's log (with RUST_LOG set as wanted) where it says.
    let log = match std::env::var("SOLARHUB_BENCH_LOG") {
        Ok(path) => std::fs::File::create(path)?,
        Err(_) => std::fs::File::create(dir.path().join("hub.log"))?,
    };
    let url_arg = match &url {
        DatabaseUrl::Sqlite(path) => path.display().to_string(),
        DatabaseUrl::Postgres(url) => url.clone(),
    };
    // SOLARHUB_BENCH_HUB_WRAPPER runs the hub under a profiler (`heaptrack`, say).
    let mut command = match std::env::var("SOLARHUB_BENCH_HUB_WRAPPER") {
        Ok(wrapper) => {
            let mut command = Command::new(wrapper);
            command.arg(env!("CARGO_BIN_EXE_solarhub-hub"));
            command
        }
        Err(_) => Command::new(env!("CARGO_BIN_EXE_solarhub-hub")),
    };
    let hub = Running(
        command
            .args(["--database-url", &url_arg, "serve"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    let pid = hub.0.id();
    let hub_url = format!("http://127.0.0.1:{port}");
    std::thread::sleep(Duration::from_secs(5));
    // The hub with its catalog, before anything streams.
    let idle_mb = proc::memory_kb(pid)?.0 as f64 / 1024.0;

    let runtime = tokio::runtime::Runtime::new()?;
    // (when it came, seconds after the start; how long it took, ms)
    let acks: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let stored: Arc<Mutex<(u64, u64)>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let bytes_before = database_bytes(&database, &url)?;
    let rows_before = energy_rows(&database)?;
    let mut senders = Vec::new();
    for (site, token) in tokens.iter().enumerate() {
        let (hub_url, token, acks, stored, stop) = (
            hub_url.clone(),
            token.clone(),
            acks.clone(),
            stored.clone(),
            stop.clone(),
        );
        let devices: Vec<String> = (0..per_site).map(|d| format!("s{site}i{d}")).collect();
        let interval = load.interval;
        senders.push(runtime.spawn(async move {
            let files = AccessFiles {
                token: Some(token),
                ..AccessFiles::default()
            };
            let mut client = connect(&hub_url, &HubAccess::load(&hub_url, &files)?).await?;
            let (tx, rx) = tokio::sync::mpsc::channel::<TelemetryBatch>(16);
            let mut answers = client
                .stream_telemetry(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await?
                .into_inner();
            let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
            let reader = {
                let sent_at = sent_at.clone();
                tokio::spawn(async move {
                    while let Ok(Some(ack)) = answers.message().await {
                        if let Some(at) = sent_at.lock().unwrap().remove(&ack.seq) {
                            acks.lock().unwrap().push((
                                started.elapsed().as_secs_f64(),
                                at.elapsed().as_secs_f64() * 1000.0,
                            ));
                        }
                        let mut stored = stored.lock().unwrap();
                        stored.0 += u64::from(ack.stored);
                        stored.1 += ack.refused.len() as u64;
                    }
                })
            };
            // Each collector's own phase in the interval, as independent sites would be.
            tokio::time::sleep(interval.mul_f64(site as f64 / 20.0 % 1.0)).await;
            let mut ticks = tokio::time::interval(interval);
            let mut seq = 0u64;
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ticks.tick().await;
                seq += 1;
                n += 1;
                let ts = chrono::Utc::now().timestamp_millis();
                let batch = TelemetryBatch {
                    command_results: Vec::new(),
                    collector_id: format!("c{site}"),
                    seq,
                    sent_at: Some(solarhub_proto::time::timestamp(ts)),
                    readings: devices.iter().map(|d| reading(d, ts, n)).collect(),
                    polls: Vec::new(),
                };
                sent_at.lock().unwrap().insert(seq, Instant::now());
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
            // Every batch acked, then the stream closes.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !sent_at.lock().unwrap().is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            drop(tx);
            let _ = reader.await;
            anyhow::Ok(seq * devices.len() as u64)
        }));
    }
    // Twenty readers watch the systems live.
    let mut watchers = Vec::new();
    for w in 0..20u64 {
        let (hub_url, reader, stop) = (hub_url.clone(), reader.clone(), stop.clone());
        let site = w % load.collectors;
        watchers.push(runtime.spawn(async move {
            let channel = solarhub_proto::tonic::transport::Channel::from_shared(hub_url)?
                .connect()
                .await?;
            let bearer: solarhub_proto::tonic::metadata::MetadataValue<_> =
                format!("Bearer {reader}").parse()?;
            let mut client =
                solarhub_proto::v1::live_service_client::LiveServiceClient::with_interceptor(
                    channel,
                    move |mut request: solarhub_proto::tonic::Request<()>| {
                        request
                            .metadata_mut()
                            .insert("authorization", bearer.clone());
                        Ok(request)
                    },
                );
            let mut updates = client
                .watch_system(WatchSystemRequest {
                    system_id: format!("site{site}"),
                })
                .await?
                .into_inner();
            let mut seen = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_secs(1), updates.message()).await {
                    Ok(Ok(Some(_))) => seen += 1,
                    Ok(_) => break,
                    Err(_) => {}
                }
            }
            anyhow::Ok(seen)
        }));
    }
    // The run, sampled every 5 s.
    let mut measured = Measured {
        idle_mb,
        ..Measured::default()
    };
    let cpu_before = proc::cpu_time(pid)?;
    let mut rss = Vec::new();
    // The roller's lag every second (it rolls every 2 s: a sample every 5 s would see the same
    // phase of its cycle each time), the hub's memory every 5 s.
    let mut second = 0u64;
    while started.elapsed() < load.run {
        std::thread::sleep(Duration::from_secs(1));
        second += 1;
        if let Some((lag, _)) = scrape(metrics) {
            measured.lag_s.push(lag);
        }
        if second.is_multiple_of(5) {
            rss.push(proc::memory_kb(pid)?.0 as f64 / 1024.0);
        }
    }
    measured.cpu_cores =
        (proc::cpu_time(pid)? - cpu_before).as_secs_f64() / started.elapsed().as_secs_f64();
    let elapsed = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for sender in senders {
        measured.sent += runtime.block_on(sender)??;
    }
    let mut watched = 0;
    for watcher in watchers {
        watched += runtime.block_on(watcher)?.unwrap_or(0);
    }
    // The roller catches up with what is pending.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = scrape(metrics).map_or(0.0, |(_, pending)| pending);
        measured.pending_end = pending;
        if pending == 0.0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (stored_acked, refused) = *stored.lock().unwrap();
    measured.refused = refused;
    measured.stored_rows = energy_rows(&database)? - rows_before;
    (measured.acks_at_s, measured.acks_ms) = acks.lock().unwrap().iter().copied().unzip();
    measured.rss_mb = rss;
    measured.growth_mb_per_hour = (database_bytes(&database, &url)? as f64 - bytes_before as f64)
        / 1e6
        / elapsed.as_secs_f64()
        * 3600.0;
    drop(hub);
    let lag_max = measured.lag_s.iter().copied().fold(0.0, f64::max);
    println!(
        "{backend}: {} devices from {} collectors every {:?} for {:?}: {} readings sent, {} stored ({} acked stored, {} refused); ack p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; roller lag p50 {:.1} s, max {:.1} s, last third minus first {:+.1} s, {} ranges pending at the end; hub {:.2} of a core, RSS idle {:.0} MB, then every 5 s (MB) {:?}; database +{:.0} MB an hour; {} watch updates",
        load.devices,
        load.collectors,
        load.interval,
        elapsed,
        measured.sent,
        measured.stored_rows,
        stored_acked,
        refused,
        percentile(&measured.acks_ms, 0.5),
        percentile(&measured.acks_ms, 0.99),
        percentile(&measured.acks_ms, 1.0),
        percentile(&measured.lag_s, 0.5),
        lag_max,
        measured.lag_growth(),
        measured.pending_end,
        measured.cpu_cores,
        measured.idle_mb,
        measured
            .rss_mb
            .iter()
            .map(|mb| mb.round() as u64)
            .collect::<Vec<_>>(),
        measured.growth_mb_per_hour,
        watched,
    );
    // Where the lag's maximum falls: the start's passes (every device rebuilt, none followed
    // yet), or later. One sample a second (a failed scrape is skipped), so 60 to a minute.
    let by_minute: Vec<f64> = measured
        .lag_s
        .chunks(60)
        .map(|minute| (minute.iter().copied().fold(0.0, f64::max) * 10.0).round() / 10.0)
        .collect();
    println!("{backend}: roller lag, the most in each minute (s): {by_minute:?}");
    // The ack's tail by minute too: is it the start's, or the whole run's?
    let minutes = measured.acks_at_s.iter().fold(0.0, |a: f64, b| a.max(*b)) / 60.0;
    let ack_p99_by_minute: Vec<f64> = (0..minutes.ceil() as usize)
        .map(|minute| {
            let of_minute: Vec<f64> = measured
                .acks_at_s
                .iter()
                .zip(&measured.acks_ms)
                .filter(|(at, _)| (**at / 60.0) as usize == minute)
                .map(|(_, ms)| *ms)
                .collect();
            (percentile(&of_minute, 0.99) * 10.0).round() / 10.0
        })
        .collect();
    println!("{backend}: ack p99 in each minute (ms): {ack_p99_by_minute:?}");
    Ok(measured)
}

fn report(backend: &str, load: Load, measured: &Measured) {
    let name = |what: &str| format!("capacity.{what}.{backend}.{}_devices", load.devices);
    Figure {
        name: &name("stored_once"),
        figure: measured.stored_rows as f64,
        baseline: measured.sent as f64,
        unit: "readings",
        baseline_is: "readings sent",
        target: Target::AtLeast(1.0),
    }
    .print();
    Figure {
        name: &name("ack_p99"),
        figure: percentile(&measured.acks_ms, 0.99),
        baseline: percentile(&measured.acks_ms, 0.5),
        unit: "ms",
        baseline_is: "the ack p50",
        target: Target::FigureAtMost(100.0),
    }
    .print();
    Figure {
        name: &name("roller_lag_max"),
        figure: measured.lag_s.iter().copied().fold(0.0, f64::max),
        baseline: percentile(&measured.lag_s, 0.5),
        unit: "s",
        baseline_is: "the lag p50",
        target: Target::FigureAtMost(10.0),
    }
    .print();
    Figure {
        name: &name("hub_cpu"),
        figure: measured.cpu_cores,
        baseline: 1.0,
        unit: "cores",
        baseline_is: "one core",
        target: Target::FigureAtMost(1.0),
    }
    .print();
    Figure {
        name: &name("hub_memory_growth"),
        figure: measured.memory_growth(),
        baseline: measured.rss_mb.first().copied().unwrap_or(0.0),
        unit: "MB",
        baseline_is: "the hub's RSS at the first sample",
        target: Target::FigureAtMost(10.0),
    }
    .print();
    Figure {
        name: &name("hub_memory_per_1000_devices"),
        figure: measured.per_thousand(load.devices),
        baseline: measured.idle_mb,
        unit: "MB",
        baseline_is: "the hub idle with its catalog, before anything streamed",
        target: Target::FigureAtMost(10.0),
    }
    .print();
}

fn main() -> anyhow::Result<()> {
    let postgres = std::env::var("SOLARHUB_TEST_DATABASE_URL").ok();
    let backend = if postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let load = Load {
        devices: env(
            "SOLARHUB_BENCH_DEVICES",
            if postgres.is_some() { 10_000 } else { 2_000 },
        ),
        collectors: env("SOLARHUB_BENCH_COLLECTORS", 20),
        interval: Duration::from_secs(env("SOLARHUB_BENCH_INTERVAL_SECS", 5)),
        run: Duration::from_secs(env("SOLARHUB_BENCH_SECS", 600)),
    };
    let knee = std::env::var("SOLARHUB_BENCH_KNEE").is_ok_and(|v| v == "1");
    let mut load = load;
    let mut held_most = None;
    loop {
        let dir = tempfile::tempdir()?;
        let (url, drop_after) = match &postgres {
            Some(admin_url) => {
                let name = format!(
                    "solarhub_bench_capacity_{}_{}",
                    std::process::id(),
                    load.devices
                );
                (
                    DatabaseUrl::Postgres(admin::create_postgres_database(admin_url, &name)?),
                    Some((admin_url.clone(), name)),
                )
            }
            None => (DatabaseUrl::Sqlite(dir.path().join("hub.db")), None),
        };
        let measured = run(backend, url, load);
        if let Some((admin_url, name)) = drop_after {
            let _ = admin::drop_postgres_database(&admin_url, &name);
        }
        let measured = measured?;
        report(backend, load, &measured);
        let held = measured.load_held();
        println!(
            "{backend}: {} devices at {:?}: {}; memory per 1,000 devices {}",
            load.devices,
            load.interval,
            if held {
                "the load held (stored once, ack p99, roller lag, CPU, memory flat)"
            } else {
                "a load target failed"
            },
            if measured.per_thousand(load.devices) < 10.0 {
                "within 10 MB"
            } else {
                "over 10 MB"
            }
        );
        if !knee || !held {
            break;
        }
        held_most = Some(load.devices);
        load.devices += load.devices / 2;
    }
    if knee {
        match held_most {
            Some(devices) => println!(
                "{backend}: the knee: {devices} devices at {:?} held the load; {} did not",
                load.interval, load.devices
            ),
            None => println!(
                "{backend}: the knee: below {} devices at {:?}",
                load.devices, load.interval
            ),
        }
    }
    Ok(())
}
