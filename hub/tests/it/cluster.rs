//! Hubs sharing one Postgres database, as real processes: two hub binaries, three collector
//! binaries (each with both hub addresses) and the simulator. The hub that leads the periodic jobs
//! is SIGKILLed mid-stream; its collectors move to the other hub, every reading is stored exactly
//! once, and the survivor takes over the roller and the array sampler within seconds, so
//! `array_samples` keeps its cadence but for the hand-over.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{Proc, collector_binary};
use common::{TestDb, free_port};

/// Collector → (device, adapter, simulator unit, sample table, id column).
const COLLECTORS: [(&str, &str, &str, u8, &str, &str); 3] = [
    (
        "site-1",
        "powdrive1",
        "powdrive1.adapter",
        1,
        "energy_samples",
        "inverter_id",
    ),
    (
        "site-2",
        "senergy1",
        "senergy1.adapter",
        2,
        "energy_samples",
        "inverter_id",
    ),
    (
        "site-3",
        "grid_meter_1",
        "grid_meter_1.adapter",
        3,
        "meter_samples",
        "meter_id",
    ),
];
/// The array sampler's cadence in this test.
const CADENCE_MS: i64 = 1000;

fn wait_for(what: &str, limit: Duration, logs: &[&Path], mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            let mut text = String::new();
            for log in logs {
                text += &format!(
                    "--- {}\n{}",
                    log.display(),
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            panic!("{what}: not within {limit:?}\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `(device, ts)` of every reading a collector's `--tee` file holds.
fn taken(tee: &Path) -> BTreeSet<(String, i64)> {
    let mut taken = BTreeSet::new();
    for line in log_of(tee).lines() {
        // A line cut short is not a reading; collectors here are stopped, not killed.
        let reading: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            reading["device_id"].as_str().unwrap().to_owned(),
            reading["ts"].as_i64().unwrap(),
        );
        assert!(taken.insert(key.clone()), "taken twice: {key:?}");
    }
    taken
}

#[derive(diesel::QueryableByName)]
struct Key {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    ts: i64,
}

fn keys(db: &TestDb, sql: &str) -> Vec<(String, i64)> {
    use diesel::RunQueryDsl;
    diesel::sql_query(sql)
        .load::<Key>(&mut db.connect())
        .unwrap()
        .into_iter()
        .map(|k| (k.id, k.ts))
        .collect()
}

fn a_hub_dies_and_the_other_takes_its_collectors_and_its_jobs(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let log = |name: &str| -> PathBuf { dir.path().join(format!("{name}.log")) };
    let sim_port = free_port();
    let _simulator = Proc::spawn(
        "simulator",
        Command::new(collector_binary()).args([
            "simulate",
            "--listen",
            &format!("127.0.0.1:{sim_port}"),
        ]),
        &log("simulator"),
    );
    let database = db.migrated();
    common::site::install_fixture(&mut database.get().unwrap(), |installation| {
        for adapter in &mut installation.adapters {
            let Some((collector, .., unit, _, _)) = COLLECTORS
                .iter()
                .find(|c| c.2 == adapter.adapter_id.as_str())
            else {
                continue;
            };
            adapter.collector_id = Some((*collector).into());
            adapter.config_json = serde_json::json!({
                "transport": "tcp",
                "host": "127.0.0.1",
                "port": sim_port,
                "unit_id": unit,
                "poll_interval_secs": 1.0,
            })
            .to_string();
        }
    });
    drop(database);

    let hub = |name: &str, port: u16| {
        let mut command = common::hub_binary();
        command.args([
            "--database-url",
            &db.url_arg(),
            "serve",
            "--without-auth",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--array-sample-secs",
            "1",
        ]);
        Proc::spawn("hub", &mut command, &log(name))
    };
    let (port_a, port_b) = (free_port(), free_port());
    let (url_a, url_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    // Hub A starts first and leads every job; then hub B, which waits for the locks.
    let hub_a = hub("hub-a", port_a);
    let leads = |name: &str| count(&log_of(&log(name)), "this hub leads the job now");
    wait_for(
        "hub A leads the jobs",
        Duration::from_secs(30),
        &[&log("hub-a")],
        || leads("hub-a") == 3,
    );
    let _hub_b = hub("hub-b", port_b);
    // Collectors 1 and 2 prefer hub A, collector 3 hub B.
    let collectors: Vec<(&str, Proc)> = COLLECTORS
        .iter()
        .enumerate()
        .map(|(index, (id, ..))| {
            let hubs = if index < 2 {
                format!("{url_a},{url_b}")
            } else {
                format!("{url_b},{url_a}")
            };
            let mut command = Command::new(collector_binary());
            command
                .args([
                    "run",
                    "--hub",
                    &hubs,
                    "--id",
                    id,
                    "--batch-readings",
                    "2",
                    "--batch-secs",
                    "0.3",
                    "--max-backoff-secs",
                    "1",
                ])
                .arg("--outbox-dir")
                .arg(dir.path().join(format!("{id}-outbox")))
                .arg("--tee")
                .arg(dir.path().join(format!("{id}.jsonl")));
            (*id, Proc::spawn("collector", &mut command, &log(id)))
        })
        .collect();
    let logs: Vec<PathBuf> = ["hub-a", "hub-b", "site-1", "site-2", "site-3"]
        .iter()
        .map(|name| log(name))
        .collect();
    let log_refs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    let stored_of = |device: &str, table: &str, column: &str| -> usize {
        keys(
            &db,
            &format!("SELECT {column} AS id, ts FROM {table} WHERE {column} = '{device}'"),
        )
        .len()
    };
    let everyone_stored = |at_least: usize| {
        COLLECTORS
            .iter()
            .all(|(_, device, _, _, table, column)| stored_of(device, table, column) >= at_least)
    };
    wait_for(
        "every collector streams",
        Duration::from_secs(60),
        &log_refs,
        || everyone_stored(5),
    );
    // Mid-stream: the leader dies.
    std::thread::sleep(Duration::from_secs(4));
    let killed_at = chrono::Utc::now().timestamp_millis();
    let killed = Instant::now();
    hub_a.sigkill();
    wait_for(
        "hub B takes over every job",
        Duration::from_secs(30),
        &log_refs,
        || leads("hub-b") == 3,
    );
    let takeover = killed.elapsed();
    let before_kill: Vec<usize> = COLLECTORS
        .iter()
        .map(|(_, device, _, _, table, column)| stored_of(device, table, column))
        .collect();
    wait_for(
        "collectors 1 and 2 stream to hub B",
        Duration::from_secs(30),
        &log_refs,
        || {
            ["site-1", "site-2"].iter().all(|id| {
                log_of(&log(id)).contains(&format!("hub=\"{url_b}\""))
                    || log_of(&log(id)).contains(&format!("hub={url_b}"))
            })
        },
    );
    // Readings keep landing through hub B for a while.
    wait_for(
        "readings land through hub B",
        Duration::from_secs(60),
        &log_refs,
        || {
            COLLECTORS
                .iter()
                .zip(&before_kill)
                .all(|((_, device, _, _, table, column), before)| {
                    stored_of(device, table, column) >= before + 8
                })
        },
    );
    for (id, collector) in collectors {
        let status = collector.stop(Duration::from_secs(30));
        assert!(status.success(), "collector {id} exits cleanly: {status}");
    }

    // Exactly once: the rows of each device are the readings its collector took.
    for (id, device, _, _, table, column) in COLLECTORS {
        let stored: BTreeSet<(String, i64)> = keys(
            &db,
            &format!("SELECT {column} AS id, ts FROM {table} WHERE {column} = '{device}'"),
        )
        .into_iter()
        .collect();
        let taken = taken(&dir.path().join(format!("{id}.jsonl")));
        assert!(!taken.is_empty(), "{id} took readings");
        assert_eq!(stored, taken, "{device}: stored exactly what {id} took");
    }

    // The survivor's roller rolls what is pending.
    wait_for(
        "the survivor rolls every pending range",
        Duration::from_secs(30),
        &log_refs,
        || {
            solarhub_hub::db::rollups::pending(&mut db.connect())
                .unwrap()
                .is_empty()
        },
    );

    // array_samples: no (array, ts) twice, and the cadence kept but for the hand-over.
    let samples = keys(
        &db,
        "SELECT array_id AS id, ts FROM array_samples ORDER BY array_id, ts",
    );
    let distinct: BTreeSet<&(String, i64)> = samples.iter().collect();
    assert_eq!(distinct.len(), samples.len(), "an array sample twice");
    let mut windows = Vec::new();
    for array in ["array1", "array2"] {
        let times: Vec<i64> = samples
            .iter()
            .filter(|(id, _)| id == array)
            .map(|(_, ts)| *ts)
            .collect();
        assert!(
            times.iter().any(|ts| *ts > killed_at + 2000),
            "{array}: the survivor samples"
        );
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            if pair[0] <= killed_at && killed_at < pair[1] {
                windows.push((array, gap));
            } else {
                assert_eq!(
                    gap, CADENCE_MS,
                    "{array}: a missing cadence between {} and {} away from the hand-over (killed at {killed_at})",
                    pair[0], pair[1]
                );
            }
        }
    }
    println!(
        "hub A killed: hub B led every job {:.1} s later; array samples' gap over the hand-over: {windows:?} ms (cadence {CADENCE_MS} ms)",
        takeover.as_secs_f64()
    );
}

#[test]
fn a_hub_dies_and_the_other_takes_its_collectors_and_its_jobs_postgres() {
    if let Some(db) = TestDb::postgres() {
        a_hub_dies_and_the_other_takes_its_collectors_and_its_jobs(db);
    }
}
