//! The uplink under abuse, with real processes: the simulator, the hub and the collector binaries.
//! While readings stream, the hub is SIGKILLed five times, the collector is SIGKILLed five times,
//! and the hub is unreachable for 60 seconds once. At the end every reading that reached the
//! collector's outbox is in the hub exactly once with its values, and nothing else is. Without
//! faults, the hub's rows are exactly the readings the collector took.
//!
//! The collector's `--tee` file is the witness: a reading is written there only after its batch is
//! committed to the outbox. A kill between that commit and the tee write leaves a stored reading
//! the witness never saw, so the hub may hold at most one batch per collector kill beyond it.
//!
//! The collector binary is taken from the same target directory as the hub's; `cargo test
//! --workspace` builds both.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{Proc, collector_binary};
use common::site::{self, DEVICES};
use common::{TestDb, free_port};

pub(crate) const COLLECTOR: &str = "site-a";
pub(crate) const BATCH: usize = 4;

pub(crate) struct Setup {
    db: TestDb,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) hub_port: u16,
}

impl Setup {
    /// A temporary directory, a simulator process, and the installation with powdrive1 and
    /// grid_meter_1 assigned to [`COLLECTOR`] and pointed at the simulator.
    pub(crate) fn with_simulator(db: TestDb) -> (Setup, Proc) {
        let setup = Setup {
            db,
            dir: tempfile::tempdir().unwrap(),
            hub_port: free_port(),
        };
        let sim_port = free_port();
        let simulator = Proc::spawn(
            "simulator",
            Command::new(collector_binary()).args([
                "simulate",
                "--listen",
                &format!("127.0.0.1:{sim_port}"),
            ]),
            &setup.log(),
        );
        let database = setup.db.migrated();
        common::site::assign_to_collector(&mut database.get().unwrap(), COLLECTOR, sim_port, 0.25);
        // The hub requires authentication, as `serve` does by default: the collector has a token.
        let created = solarhub_hub::auth::principals::create(
            &mut database.get().unwrap(),
            "crash-site",
            solarhub_hub::auth::Role::Collector,
            Some(COLLECTOR),
            None,
        )
        .unwrap();
        std::fs::write(setup.token_file(), created.token.expose()).unwrap();
        (setup, simulator)
    }

    /// The database as the hub binary's `--database-url` takes it.
    pub(crate) fn database_arg(&self) -> String {
        self.db.url_arg()
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.dir.path().join("processes.log")
    }

    pub(crate) fn token_file(&self) -> PathBuf {
        self.dir.path().join("collector.token")
    }

    pub(crate) fn tee(&self) -> PathBuf {
        self.dir.path().join("taken.jsonl")
    }

    pub(crate) fn hub(&self) -> Proc {
        let mut command = common::hub_binary();
        command.args([
            "--database-url",
            &self.db.url_arg(),
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", self.hub_port),
        ]);
        Proc::spawn("hub", &mut command, &self.log())
    }

    pub(crate) fn collector(&self) -> Proc {
        self.collector_to(self.hub_port)
    }

    /// The collector, sending to `port` (the hub's, or a proxy's in front of it).
    pub(crate) fn collector_to(&self, port: u16) -> Proc {
        let mut command = self.collector_command(port);
        Proc::spawn("collector", &mut command, &self.log())
    }

    /// The collector's command line, to add to before it is started.
    pub(crate) fn collector_command(&self, port: u16) -> Command {
        let mut command = Command::new(collector_binary());
        command
            .args([
                "run",
                "--hub",
                &format!("http://127.0.0.1:{port}"),
                "--id",
                COLLECTOR,
                "--batch-readings",
                &BATCH.to_string(),
                "--batch-secs",
                "0.3",
                "--max-backoff-secs",
                "1",
            ])
            .arg("--outbox-dir")
            .arg(self.dir.path().join("outbox"))
            .arg("--tee")
            .arg(self.tee())
            .arg("--token-file")
            .arg(self.token_file());
        command
    }

    /// `(device, ts) -> value` of every reading the collector committed to its outbox. A line cut
    /// short by a kill is not a reading.
    pub(crate) fn taken(&self) -> BTreeMap<(String, i64), Option<f64>> {
        let text = std::fs::read_to_string(self.tee()).unwrap_or_default();
        let mut taken = BTreeMap::new();
        for line in text.lines() {
            let Ok(reading) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let device = reading["device_id"].as_str().unwrap().to_owned();
            let field = DEVICES.iter().find(|d| d.0 == device).unwrap().3;
            let key = (device, reading["ts"].as_i64().unwrap());
            let value = reading["fields"][field].as_f64();
            assert!(
                taken.insert(key.clone(), value).is_none(),
                "the collector took {key:?} twice"
            );
        }
        taken
    }

    /// `(device, ts) -> value` of every stored sample, checking no (device, ts) is stored twice.
    pub(crate) fn stored(&self) -> BTreeMap<(String, i64), Option<f64>> {
        let mut conn = self.db.connect();
        let mut stored = BTreeMap::new();
        for (device, table, id_column, field) in DEVICES {
            for (ts, value) in site::stored_values(&mut conn, table, id_column, device, field) {
                assert!(
                    stored.insert((device.to_owned(), ts), value).is_none(),
                    "{device} at {ts} is stored twice"
                );
            }
        }
        stored
    }

    /// Stops the collector with SIGTERM (it must exit cleanly, its outbox handed over) and checks
    /// that the hub's rows are exactly the readings it took, with their values.
    pub(crate) fn stop_and_check_exactly_once(&self, collector: Proc) {
        let status = collector.stop(Duration::from_secs(30));
        assert!(
            status.success(),
            "the collector exits cleanly on SIGTERM: {status}"
        );
        assert_eq!(
            self.stored(),
            self.taken(),
            "the hub's rows are exactly the readings the collector took, with their values"
        );
    }

    pub(crate) fn wait_for(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}; process log:\n{}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn no_reading_is_lost_or_doubled_through_kills_and_an_outage(db: TestDb) {
    let (setup, _simulator) = Setup::with_simulator(db);
    let mut hub = setup.hub();
    let mut collector = setup.collector();
    setup.wait_for(
        "the first readings reach the hub",
        Duration::from_secs(60),
        || setup.stored().len() >= 8,
    );

    // Five kills of each in CI; the fault suite's long mode kills the hub 20 times and the
    // collector 50 times.
    let (hub_kills, collector_kills) = if common::long_mode() {
        (20, 50)
    } else {
        (5, 5)
    };
    let began = std::time::Instant::now();
    for round in 0..hub_kills.max(collector_kills) {
        if round < hub_kills {
            std::thread::sleep(Duration::from_millis(1500));
            hub.sigkill();
            std::thread::sleep(Duration::from_millis(700));
            hub = setup.hub();
        }
        if round < collector_kills {
            std::thread::sleep(Duration::from_millis(1500));
            collector.sigkill();
            collector = setup.collector();
        }
    }
    eprintln!(
        "kill -9: hub {hub_kills}x, collector {collector_kills}x in {:.0?}; {} readings stored so far",
        began.elapsed(),
        setup.stored().len()
    );
    // The hub away for a minute: the collector keeps polling into its outbox.
    hub.sigkill();
    let taken_before_outage = setup.taken().len();
    std::thread::sleep(Duration::from_secs(60));
    let taken_during_outage = setup.taken().len() - taken_before_outage;
    assert!(
        taken_during_outage > 20,
        "the collector kept polling while the hub was away ({taken_during_outage} readings)"
    );
    let _hub = setup.hub();

    // Everything the outbox holds reaches the hub once it is back…
    setup.wait_for(
        "every reading in the outbox reaches the hub",
        Duration::from_secs(90),
        || {
            let stored = setup.stored();
            setup.taken().keys().all(|key| stored.contains_key(key))
        },
    );
    // …and a SIGTERM stops the collector cleanly with its outbox handed over.
    let status = collector.stop(Duration::from_secs(30));
    assert!(
        status.success(),
        "the collector exits cleanly on SIGTERM: {status}"
    );

    let taken = setup.taken();
    let stored = setup.stored();
    for (key, value) in &taken {
        assert_eq!(
            stored.get(key),
            Some(value),
            "{key:?}: stored with the value the collector read"
        );
    }
    let unwitnessed = stored.len() - taken.len();
    assert!(
        unwitnessed <= collector_kills * BATCH,
        "{unwitnessed} stored readings the collector never committed to its outbox \
         (at most {} may be committed but cut off from the witness by the kills)",
        collector_kills * BATCH
    );
    let mut outbox = solarhub_collector::uplink::outbox::Outbox::open(
        &setup.dir.path().join("outbox"),
        solarhub_collector::uplink::outbox::Limits::default(),
    )
    .unwrap();
    assert_eq!(outbox.len().unwrap(), 0, "nothing is left in the outbox");
    eprintln!(
        "kill -9: {} readings taken, {} stored, {unwitnessed} stored beyond the witness, none lost or twice",
        taken.len(),
        stored.len()
    );
}

/// Without faults the witness is exact: after a SIGTERM the hub holds exactly the readings the
/// collector took, with their values, and the outbox is empty.
fn without_faults_the_rows_are_exactly_the_readings(db: TestDb) {
    let (setup, _simulator) = Setup::with_simulator(db);
    let _hub = setup.hub();
    let collector = setup.collector();
    setup.wait_for("readings reach the hub", Duration::from_secs(60), || {
        setup.stored().len() >= 20
    });
    setup.stop_and_check_exactly_once(collector);
    assert!(setup.taken().len() >= 20);
    let mut outbox = solarhub_collector::uplink::outbox::Outbox::open(
        &setup.dir.path().join("outbox"),
        solarhub_collector::uplink::outbox::Limits::default(),
    )
    .unwrap();
    assert_eq!(outbox.len().unwrap(), 0, "nothing is left in the outbox");
}

on_both_backends!(
    no_reading_is_lost_or_doubled_through_kills_and_an_outage,
    without_faults_the_rows_are_exactly_the_readings
);
