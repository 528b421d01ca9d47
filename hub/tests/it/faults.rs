//! The fault suite (README, "Test"): what the network, the database and the disk can do to a
//! running installation, each fault bounded in time. Every test ends by checking that each
//! reading the collector took is stored exactly once with its value; those with a recovery time
//! print it (`cargo test -- --nocapture`). `SOLARHUB_FAULTS_LONG=1` runs the long forms.

use crate::common;
use crate::crash_recovery::Setup;

use std::time::{Duration, Instant};

use common::TestDb;
use common::proxy::{Fault, Proxy};

/// Waits until every reading the collector has taken is stored; returns how long that took.
fn caught_up(setup: &Setup, what: &str, limit: Duration) -> Duration {
    let began = Instant::now();
    setup.wait_for(what, limit, || {
        let stored = setup.stored();
        let taken = setup.taken();
        !taken.is_empty() && taken.keys().all(|key| stored.contains_key(key))
    });
    began.elapsed()
}

/// A proxy between the collector and the hub goes through a cut, a half-open connection, 500 ms
/// of latency and a one-byte trickle. After each fault heals the hub catches up with everything
/// the collector took (its recovery time is printed), and at the end the hub's rows are exactly
/// the collector's readings.
fn network_faults_lose_and_double_nothing(db: TestDb) {
    let (setup, _simulator) = Setup::with_simulator(db);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let proxy = Proxy::start(&runtime, setup.hub_port);
    let _hub = setup.hub();
    let collector = setup.collector_to(proxy.port);
    caught_up(
        &setup,
        "the first readings reach the hub",
        Duration::from_secs(60),
    );

    let lasting = if common::long_mode() {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(6)
    };
    let faults = [
        ("cut", Fault::Cut),
        ("half-open", Fault::HalfOpen),
        ("500 ms latency", Fault::Latency(Duration::from_millis(500))),
        ("1-byte trickle", Fault::Trickle(Duration::from_millis(2))),
    ];
    for (name, fault) in faults {
        proxy.set(fault);
        std::thread::sleep(lasting);
        let taken_during = setup.taken().len();
        proxy.set(Fault::None);
        // A half-open connection is only found by its unanswered pings (10 s apart, 10 s to
        // answer), then the collector connects again.
        let took = caught_up(
            &setup,
            &format!("every reading reaches the hub after the {name}"),
            Duration::from_secs(90),
        );
        eprintln!(
            "fault {name} for {lasting:?}: recovered {took:.1?} after it healed ({taken_during} readings taken by then)"
        );
    }

    setup.stop_and_check_exactly_once(collector);
}

on_both_backends!(network_faults_lose_and_double_nothing);

/// Postgres drops the hub's connections while readings stream: five times with
/// `pg_terminate_backend`, then for ten seconds it refuses every connection (the database is
/// down). Meanwhile a dashboard's calls fail with UNAVAILABLE, never with an internal error;
/// once the database is back the hub catches up and every reading is stored exactly once.
#[test]
fn the_database_going_away_loses_and_doubles_nothing() {
    use diesel::{Connection, RunQueryDsl};
    use solarhub_proto::tonic::Code;
    use solarhub_proto::v1::ListCollectorsRequest;
    use solarhub_proto::v1::collector_service_client::CollectorServiceClient;

    let Some(db) = TestDb::postgres() else {
        return;
    };
    let solarhub_hub::db::DatabaseUrl::Postgres(url) = &db.url else {
        unreachable!("a Postgres test database");
    };
    let name = url.rsplit('/').next().unwrap().to_owned();
    let reader = solarhub_hub::auth::principals::create(
        &mut db.migrated().get().unwrap(),
        "dashboard",
        solarhub_hub::auth::Role::Reader,
        None,
        None,
    )
    .unwrap();
    let mut admin =
        diesel::PgConnection::establish(&std::env::var("SOLARHUB_TEST_DATABASE_URL").unwrap())
            .unwrap();
    let (setup, _simulator) = Setup::with_simulator(db);
    let _hub = setup.hub();
    let collector = setup.collector();
    caught_up(
        &setup,
        "the first readings reach the hub",
        Duration::from_secs(60),
    );

    let terminate = |admin: &mut diesel::PgConnection| {
        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .execute(admin)
        .unwrap();
    };
    for _ in 0..5 {
        std::thread::sleep(Duration::from_secs(1));
        terminate(&mut admin);
    }
    caught_up(
        &setup,
        "readings flow again after the terminations",
        Duration::from_secs(60),
    );

    // The database down: connections refused until it is back.
    struct Refusing<'a>(&'a mut diesel::PgConnection, String);
    impl Drop for Refusing<'_> {
        fn drop(&mut self) {
            let _ = diesel::sql_query(format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.1))
                .execute(self.0);
        }
    }
    diesel::sql_query(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .unwrap();
    let refusing = Refusing(&mut admin, name.clone());
    terminate(refusing.0);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let codes: Vec<Code> = runtime.block_on(async {
        let channel = solarhub_proto::tonic::transport::Channel::from_shared(format!(
            "http://127.0.0.1:{}",
            setup.hub_port
        ))
        .unwrap()
        .connect()
        .await
        .unwrap();
        let bearer: solarhub_proto::tonic::metadata::MetadataValue<_> =
            format!("Bearer {}", reader.token.expose()).parse().unwrap();
        let mut client = CollectorServiceClient::with_interceptor(
            channel,
            move |mut request: solarhub_proto::tonic::Request<()>| {
                request
                    .metadata_mut()
                    .insert("authorization", bearer.clone());
                Ok(request)
            },
        );
        let mut codes = Vec::new();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let answer = client
                .list_collectors(ListCollectorsRequest::default())
                .await;
            codes.push(answer.map_or_else(|status| status.code(), |_| Code::Ok));
        }
        codes
    });
    drop(refusing);
    assert!(
        codes.iter().all(|code| *code == Code::Unavailable),
        "calls while the database is down are UNAVAILABLE: {codes:?}"
    );
    let took = caught_up(
        &setup,
        "every reading reaches the hub once the database is back",
        Duration::from_secs(90),
    );
    eprintln!("database down for 10 s: the hub caught up {took:.1?} after it came back");

    setup.stop_and_check_exactly_once(collector);
}

/// A collector whose clock is an hour ahead, then one an hour behind: the hub refuses every
/// reading with the reason, stores none, and both sides say so — the hub's log and refusal
/// count, the collector's log and its `readings_refused` count. (The check is ingest's, not the
/// database's: SQLite only.)
#[test]
fn a_collector_clock_an_hour_off_is_refused_and_said_on_both_sides() {
    use crate::operations::{scrape, value};

    let (setup, _simulator) = Setup::with_simulator(TestDb::sqlite());
    let hub_metrics = common::free_port();
    let mut hub_command = common::hub_binary();
    hub_command.args([
        "--database-url",
        &setup.database_arg(),
        "serve",
        "--listen",
        &format!("127.0.0.1:{}", setup.hub_port),
        "--metrics-listen",
        &format!("127.0.0.1:{hub_metrics}"),
    ]);
    let _hub = common::process::Proc::spawn("hub", &mut hub_command, &setup.log());
    let mut refused_before = 0.0;
    for (offset, says) in [
        ("3600", "1 h 0 min ahead of"),
        ("-3600", "1 h 0 min behind"),
    ] {
        let collector_metrics = common::free_port();
        let mut command = setup.collector_command(setup.hub_port);
        command.env("SOLARHUB_CLOCK_OFFSET_SECS", offset).args([
            "--metrics-listen",
            &format!("127.0.0.1:{collector_metrics}"),
        ]);
        let collector = common::process::Proc::spawn("collector", &mut command, &setup.log());
        setup.wait_for("the hub refuses readings", Duration::from_secs(60), || {
            scrape(collector_metrics)
                .and_then(|s| {
                    value(
                        &s,
                        "solarhub_collector_readings_refused_total",
                        &[("reason", "clock_skew")],
                    )
                })
                .is_some_and(|n| n >= 4.0)
        });
        let status = collector.stop(Duration::from_secs(30));
        assert!(status.success(), "the collector exits cleanly: {status}");
        assert!(!setup.taken().is_empty(), "the collector took readings");
        assert!(
            setup.stored().is_empty(),
            "no reading of a collector {says} the hub's clock is stored"
        );
        let log = std::fs::read_to_string(setup.log()).unwrap();
        let reason = format!("clock skew: collector site-a's clock is {says} the hub's");
        for side in ["solarhub_hub::ingest", "solarhub_collector::uplink"] {
            assert!(
                log.lines()
                    .any(|line| line.contains(side) && line.contains(&reason)),
                "{side} says {reason:?}; the log:\n{log}"
            );
        }
        let refused = scrape(hub_metrics)
            .and_then(|s| {
                value(
                    &s,
                    "solarhub_hub_readings_refused_total",
                    &[("reason", "clock_skew")],
                )
            })
            .unwrap_or(0.0);
        assert!(
            refused > refused_before,
            "the hub counts the refusals: {refused} after {refused_before}"
        );
        refused_before = refused;
    }
}

/// The disk under the collector's outbox fills up while readings stream (a 2 MB tmpfs, filled to
/// the last byte), then space returns. The collector says why it cannot store, holds the
/// readings in memory, never exits, and once space is back every reading it took reaches the
/// hub exactly once. (SQLite for the hub: the disk under test is the collector's.)
#[test]
fn a_full_disk_under_the_outbox_loses_nothing() {
    let (setup, _simulator) = Setup::with_simulator(TestDb::sqlite());
    let Some(disk) = common::SmallDisk::mount(&setup.dir.path().join("outbox"), "2m") else {
        return;
    };
    let _hub = setup.hub();
    let mut collector = setup.collector();
    caught_up(
        &setup,
        "the first readings reach the hub",
        Duration::from_secs(60),
    );

    let filler = disk.fill();
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        collector.exited().is_none(),
        "the collector keeps running on a full disk"
    );
    let log = std::fs::read_to_string(setup.log()).unwrap();
    assert!(
        log.contains("cannot store readings in the outbox"),
        "the collector says why; the log:\n{log}"
    );
    let taken_while_full = setup.taken().len();
    std::fs::remove_file(filler).unwrap();
    let healed = Instant::now();
    // The readings held in memory reach the outbox (and the witness), then the hub.
    setup.wait_for(
        "the outbox takes readings again",
        Duration::from_secs(30),
        || setup.taken().len() > taken_while_full,
    );
    caught_up(
        &setup,
        "every reading reaches the hub once space returns",
        Duration::from_secs(60),
    );
    eprintln!(
        "outbox disk full for 6 s: caught up {:.1?} after space returned",
        healed.elapsed()
    );
    setup.stop_and_check_exactly_once(collector);
}

/// The disk under the hub's SQLite database fills up while readings stream, then space returns.
/// The hub refuses commits with a clear error and never exits; nothing the collector took is
/// lost or stored twice.
#[test]
fn a_full_disk_under_the_hub_database_loses_nothing() {
    let place = tempfile::tempdir().unwrap();
    let Some(disk) = common::SmallDisk::mount(place.path(), "16m") else {
        return;
    };
    let (setup, _simulator) = Setup::with_simulator(TestDb::sqlite_in(place.path()));
    let mut hub = setup.hub();
    let collector = setup.collector();
    caught_up(
        &setup,
        "the first readings reach the hub",
        Duration::from_secs(60),
    );

    let filler = disk.fill();
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        hub.exited().is_none(),
        "the hub keeps running on a full disk"
    );
    let log = std::fs::read_to_string(setup.log()).unwrap();
    assert!(
        log.contains("database or disk is full"),
        "the hub says its disk is full; the log:\n{log}"
    );
    std::fs::remove_file(filler).unwrap();
    let took = caught_up(
        &setup,
        "every reading reaches the hub once space returns",
        Duration::from_secs(60),
    );
    eprintln!("hub database disk full for 6 s: caught up {took:.1?} after space returned");
    setup.stop_and_check_exactly_once(collector);
}
