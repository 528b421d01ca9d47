//! The fault suite (README, "Faults"): what the network, the database and the disk can do to a
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

    let status = collector.stop(Duration::from_secs(30));
    assert!(status.success(), "the collector exits cleanly: {status}");
    let taken = setup.taken();
    assert_eq!(
        setup.stored(),
        taken,
        "the hub's rows are exactly the readings the collector took, with their values"
    );
}

on_both_backends!(network_faults_lose_and_double_nothing);
