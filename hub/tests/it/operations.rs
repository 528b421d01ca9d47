//! Running it as a service: both `/metrics` endpoints, scraped over HTTP and read with a real
//! Prometheus text parser, against the real hub and collector binaries and the simulator; and the
//! data-quality RPC against a bus where one unit stops answering.

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{Proc, collector_binary};
use common::site::{self, DEVICES};
use common::{TestDb, free_port};

const COLLECTOR: &str = "ops-site";

/// `GET /metrics` on `port`, parsed.
pub(crate) fn scrape(port: u16) -> Option<prometheus_parse::Scrape> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "answer: {head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "answer: {head}"
    );
    let lines = body.lines().map(|line| Ok(line.to_owned()));
    Some(prometheus_parse::Scrape::parse(lines).expect("the exposition parses"))
}

/// The value of the sample `name` whose labels include `labels`; several match: their sum.
pub(crate) fn value(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let mut found = None;
    for sample in &scrape.samples {
        if sample.metric != name
            || !labels
                .iter()
                .all(|(key, want)| sample.labels.get(key) == Some(*want))
        {
            continue;
        }
        let v = match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            _ => continue,
        };
        *found.get_or_insert(0.0) += v;
    }
    found
}

fn wait_for(what: &str, limit: Duration, log: &std::path::Path, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}; process log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rows_stored(db: &TestDb) -> usize {
    let mut conn = db.connect();
    DEVICES
        .iter()
        .map(|(device, table, id_column, field)| {
            site::stored_values(&mut conn, table, id_column, device, field).len()
        })
        .sum()
}

struct Ports {
    hub: u16,
    hub_metrics: u16,
    collector_metrics: u16,
}

fn hub(db: &TestDb, ports: &Ports, log: &std::path::Path) -> Proc {
    let mut command = common::hub_binary();
    command.args([
        "--database-url",
        &db.url_arg(),
        "serve",
        "--without-auth",
        "--listen",
        &format!("127.0.0.1:{}", ports.hub),
        "--metrics-listen",
        &format!("127.0.0.1:{}", ports.hub_metrics),
    ]);
    Proc::spawn("hub", &mut command, log)
}

fn collector(dir: &std::path::Path, ports: &Ports, log: &std::path::Path) -> Proc {
    let mut command = Command::new(collector_binary());
    command
        .args([
            "run",
            "--hub",
            &format!("http://127.0.0.1:{}", ports.hub),
            "--id",
            COLLECTOR,
            "--batch-readings",
            "4",
            "--batch-secs",
            "0.3",
            "--max-backoff-secs",
            "1",
            "--metrics-listen",
            &format!("127.0.0.1:{}", ports.collector_metrics),
        ])
        .arg("--outbox-dir")
        .arg(dir.join("outbox"))
        // Started as by hand: the collector sets its allocator's arenas itself.
        .env_remove("MALLOC_ARENA_MAX");
    Proc::spawn("collector", &mut command, log)
}

/// Acceptance 1: samples committed equal the rows stored; a sentinel injected in the simulator is
/// counted as dropped with its reason on its device; the outbox depth rises while the hub is away
/// and returns to 0 once it is back.
fn both_metrics_endpoints_tell_what_happened(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("processes.log");
    let [sim_port, hub_port, hub_metrics, collector_metrics] = common::free_ports();
    let ports = Ports {
        hub: hub_port,
        hub_metrics,
        collector_metrics,
    };
    let mut simulator = Proc::spawn_with_input(
        "simulator",
        Command::new(collector_binary()).args([
            "simulate",
            "--listen",
            &format!("127.0.0.1:{sim_port}"),
        ]),
        &log,
    );
    let database = db.migrated();
    site::assign_to_collector(&mut database.get().unwrap(), COLLECTOR, sim_port, 0.25);
    drop(database);

    let first_hub = hub(&db, &ports, &log);
    let running = collector(dir.path(), &ports, &log);
    wait_for(
        "readings reach the hub",
        Duration::from_secs(60),
        &log,
        || rows_stored(&db) >= 8,
    );

    // The hub says at the start when the server never vacuums (this machine's CI cluster runs
    // with autovacuum off), and only then: asked of the server here, not through the hub's code.
    let autovacuum_off = match db.connect() {
        solarhub_hub::db::DbConnection::Postgres(mut pg) => {
            use diesel::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct Setting {
                #[diesel(sql_type = diesel::sql_types::Text)]
                autovacuum: String,
            }
            let rows: Vec<Setting> = diesel::sql_query("SHOW autovacuum").load(&mut pg).unwrap();
            rows[0].autovacuum == "off"
        }
        _ => false,
    };
    let said = std::fs::read_to_string(&log)
        .unwrap()
        .contains("autovacuum is off on this Postgres server");
    assert_eq!(
        said, autovacuum_off,
        "the hub warns of autovacuum exactly when the server has it off"
    );

    // Started without it, the collector runs (the same process, started again) with one malloc
    // arena: its memory at a thousand devices depends on it (BENCHMARKS.md, issue 24).
    assert!(
        running
            .environment()
            .iter()
            .any(|entry| entry == "MALLOC_ARENA_MAX=1"),
        "the collector runs with MALLOC_ARENA_MAX=1: {:?}",
        running.environment()
    );

    // A sentinel on the inverter's SOC register: dropped values, reason sentinel, that device only.
    simulator.say("fault 1 sentinel battery_soc_pct");
    let sentinel = [("device", "powdrive1"), ("reason", "sentinel")];
    wait_for(
        "the collector counts the sentinel",
        Duration::from_secs(30),
        &log,
        || {
            scrape(ports.collector_metrics)
                .and_then(|s| value(&s, "solarhub_collector_values_dropped_total", &sentinel))
                .is_some_and(|dropped| dropped >= 2.0)
        },
    );
    let scraped = scrape(ports.collector_metrics).unwrap();
    assert_eq!(
        value(
            &scraped,
            "solarhub_collector_values_dropped_total",
            &[("device", "grid_meter_1")]
        ),
        None,
        "nothing dropped on the meter"
    );
    for device in ["powdrive1", "grid_meter_1"] {
        let answered = value(
            &scraped,
            "solarhub_collector_polls_total",
            &[("device", device), ("result", "answered")],
        );
        assert!(answered.is_some_and(|n| n > 0.0), "{device}: {answered:?}");
    }
    let bus = format!("tcp 127.0.0.1:{sim_port}");
    assert!(
        value(
            &scraped,
            "solarhub_collector_poll_duration_seconds_count",
            &[("bus", &bus)]
        )
        .is_some_and(|n| n > 0.0),
        "poll latency per bus"
    );
    assert_eq!(
        value(&scraped, "solarhub_collector_uplink_connected", &[]),
        Some(1.0)
    );

    // The collector stops (and drains): every row stored was counted once by the hub.
    assert!(running.stop(Duration::from_secs(20)).success());
    let stored_by_first = rows_stored(&db);
    let hub_scrape = scrape(ports.hub_metrics).unwrap();
    assert_eq!(
        value(&hub_scrape, "solarhub_hub_samples_committed_total", &[]),
        Some(stored_by_first as f64),
        "samples committed = rows stored"
    );
    assert!(
        value(&hub_scrape, "solarhub_hub_batches_committed_total", &[]).is_some_and(|n| n > 0.0)
    );
    assert!(
        value(
            &hub_scrape,
            "solarhub_hub_rpc_duration_seconds_count",
            &[
                ("method", "solarhub.v1.CollectorService/Register"),
                ("code", "Ok")
            ]
        )
        .is_some_and(|n| n >= 1.0),
        "calls by method and code"
    );
    assert!(value(&hub_scrape, "solarhub_hub_db_connections_max", &[]).is_some());
    assert!(value(&hub_scrape, "solarhub_hub_rollup_lag_seconds", &[]).is_some());

    // The hub goes away: the outbox fills; it comes back: the outbox empties.
    let running = collector(dir.path(), &ports, &log);
    wait_for(
        "the collector streams again",
        Duration::from_secs(30),
        &log,
        || {
            scrape(ports.collector_metrics)
                .and_then(|s| value(&s, "solarhub_collector_uplink_connected", &[]))
                == Some(1.0)
        },
    );
    first_hub.sigkill();
    let mut depths = Vec::new();
    wait_for(
        "the outbox fills while the hub is away",
        Duration::from_secs(30),
        &log,
        || {
            let Some(s) = scrape(ports.collector_metrics) else {
                return false;
            };
            depths.push((
                value(&s, "solarhub_collector_outbox_batches", &[]).unwrap_or(0.0),
                value(&s, "solarhub_collector_outbox_bytes", &[]).unwrap_or(0.0),
                value(&s, "solarhub_collector_outbox_oldest_age_seconds", &[]).unwrap_or(0.0),
            ));
            // Rising: a later scrape holds more than an earlier one that already held some.
            let first_held = depths.iter().find(|d| d.0 > 0.0).map(|d| d.0);
            first_held.is_some_and(|first| depths[depths.len() - 1].0 > first)
        },
    );
    let last = depths.last().unwrap();
    assert!(
        last.1 > 0.0 && last.2 > 0.0,
        "bytes and age rise too: {depths:?}"
    );
    let scraped = scrape(ports.collector_metrics).unwrap();
    assert_eq!(
        value(&scraped, "solarhub_collector_uplink_connected", &[]),
        Some(0.0)
    );

    let _second_hub = hub(&db, &ports, &log);
    wait_for(
        "the outbox empties once the hub is back",
        Duration::from_secs(60),
        &log,
        || {
            scrape(ports.collector_metrics)
                .and_then(|s| value(&s, "solarhub_collector_outbox_batches", &[]))
                == Some(0.0)
        },
    );
    let scraped = scrape(ports.collector_metrics).unwrap();
    assert!(
        value(&scraped, "solarhub_collector_uplink_reconnects_total", &[])
            .is_some_and(|n| n >= 1.0)
    );
    assert!(running.stop(Duration::from_secs(20)).success());
    let hub_scrape = scrape(ports.hub_metrics).unwrap();
    assert_eq!(
        value(&hub_scrape, "solarhub_hub_samples_committed_total", &[]),
        Some((rows_stored(&db) - stored_by_first) as f64),
        "the second hub counted exactly the rows it stored"
    );
}

/// Acceptance 2: a unit that times out is failing; its neighbours on the same bus are healthy.
fn data_quality_names_the_silent_unit(db: TestDb) {
    use solarhub_collector::simulator::Fault;
    use solarhub_proto::v1::data_quality_service_client::DataQualityServiceClient;
    use solarhub_proto::v1::{GetDeviceQualityRequest, ListDeviceQualityRequest};

    let hub = common::RunningHub::start(&db);
    let (port, devices) = hub.runtime.block_on(site::simulated_gateway_with_devices());
    site::assign_to_collector(&mut hub.database.get().unwrap(), COLLECTOR, port, 0.25);
    // The meter (unit 3) never answers; the inverters on the same gateway do.
    devices[&3].set_fault(Fault::Timeout);
    let dir = tempfile::tempdir().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let config = site::uplink_config(&hub.url, COLLECTOR);
    let outbox = dir.path().to_owned();
    let running = hub.runtime.spawn(async move {
        solarhub_collector::app::run_collector(
            config,
            &outbox,
            None,
            std::sync::Arc::default(),
            stopped,
        )
        .await
    });
    let mut client = DataQualityServiceClient::new(hub.channel.clone());
    let start = Instant::now();
    let answer = loop {
        let answer = hub
            .runtime
            .block_on(client.list_device_quality(ListDeviceQualityRequest::default()))
            .unwrap()
            .into_inner();
        let status: BTreeMap<String, String> = answer
            .devices
            .iter()
            .map(|d| (d.device_id.clone(), d.status.clone()))
            .collect();
        if status.get("grid_meter_1").map(String::as_str) == Some("failing")
            && status.get("powdrive1").map(String::as_str) == Some("healthy")
        {
            break answer;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no verdict within a minute: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = stop.send(true);
    hub.runtime.block_on(running).unwrap().unwrap();

    assert_eq!(
        answer.devices[0].device_id, "grid_meter_1",
        "failing devices come first"
    );
    let meter = &answer.devices[0];
    let hour = meter.last_hour.as_ref().unwrap();
    assert!(hour.timeouts > 0 && hour.answered == 0, "{hour:?}");
    assert_eq!(hour.success_rate, Some(0.0));
    assert!(meter.last_seen.is_none(), "the meter never answered");
    let inverter = answer
        .devices
        .iter()
        .find(|d| d.device_id == "powdrive1")
        .unwrap();
    let hour = inverter.last_hour.as_ref().unwrap();
    assert!(hour.polls > 0 && hour.answered == hour.polls, "{hour:?}");
    assert_eq!(hour.success_rate, Some(1.0));
    assert!(inverter.last_seen.is_some());

    // One device by id, and a clear refusal for one that does not exist.
    let one = hub
        .runtime
        .block_on(client.get_device_quality(GetDeviceQualityRequest {
            device_id: "grid_meter_1".into(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(one.status, "failing");
    let missing = hub
        .runtime
        .block_on(client.get_device_quality(GetDeviceQualityRequest {
            device_id: "no_such_device".into(),
        }))
        .unwrap_err();
    assert_eq!(missing.code(), solarhub_proto::tonic::Code::NotFound);
    assert!(missing.message().contains("device_id"), "{missing:?}");
}

on_both_backends!(
    both_metrics_endpoints_tell_what_happened,
    data_quality_names_the_silent_unit,
);

/// Acceptance 4, the pipe half: `import-legacy` with standard error not a terminal writes plain
/// progress lines (a start line and a done line per sample table, with counts and rates), and the
/// counts add up to the rows the file holds. (The terminal half, a bar with rate and ETA, is
/// shown in the notes with a `script` capture.)
#[test]
fn import_legacy_reports_progress_in_plain_lines_through_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("solar.db");
    let expected = crate::legacy_fixture::takeover::early_installation(&legacy);
    // For the notes' terminal capture: keep a copy of the fixture where asked.
    if let Ok(keep) = std::env::var("SOLARHUB_KEEP_LEGACY_FIXTURE") {
        std::fs::copy(&legacy, keep).unwrap();
    }
    let output = common::hub_binary()
        .env("RUST_LOG", "warn")
        .arg("--database-url")
        .arg(dir.path().join("hub.db"))
        .arg("import-legacy")
        .arg(&legacy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains("\u{1b}["),
        "no bar drawn into a pipe: {stderr:?}"
    );
    let energy_rows = expected.read["energy_samples"];
    assert!(
        stderr.contains(&format!(
            "progress: copying energy_samples: 0/{energy_rows} rows (0%)"
        )),
        "a start line with the table's size: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "progress: copying energy_samples: done, {energy_rows}/{energy_rows} rows in"
        )),
        "a done line with every row counted: {stderr}"
    );
    for table in [
        "meter_samples",
        "battery_bank_samples",
        "battery_cell_samples",
    ] {
        assert!(
            stderr.contains(&format!("progress: copying {table}: done,")),
            "{table}: {stderr}"
        );
    }
}

/// `--log-format json`: every line a log shipper receives is one JSON object with a level and a
/// message, on both binaries.
#[test]
fn json_logs_are_one_object_per_line_on_both_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let hub = common::hub_binary()
        .env("RUST_LOG", "info")
        .arg("--log-format")
        .arg("json")
        .arg("--database-url")
        .arg(dir.path().join("hub.db"))
        .arg("migrate")
        .output()
        .unwrap();
    assert!(hub.status.success());
    // A collector whose hub is not there: it logs its attempts until stopped.
    let mut running = Command::new(collector_binary())
        .env("RUST_LOG", "info")
        .args(["--log-format", "json", "run", "--hub"])
        .arg(format!("http://127.0.0.1:{}", free_port()))
        .args(["--id", "site-a", "--outbox-dir"])
        .arg(dir.path().join("outbox"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    running.kill().unwrap();
    let collector = running.wait_with_output().unwrap();
    for (name, output, lines_at_least) in [("hub", &hub, 1), ("collector", &collector, 2)] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let logs: Vec<&str> = stderr
            .lines()
            .filter(|line| !line.starts_with("error: "))
            .collect();
        assert!(logs.len() >= lines_at_least, "{name}: {stderr}");
        for line in logs {
            let object: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {line}"));
            assert!(
                object["level"].is_string() && object["fields"]["message"].is_string(),
                "{name}: {line}"
            );
        }
    }
}
