//! What a collector does when its surroundings fail (docs/collector.md, "Streaming to the hub"): it never
//! panics or stops silently. An outbox directory it cannot use stops start-up with the path; a hub
//! that is unreachable or refuses its id is retried until it answers or the collector is stopped;
//! and a collector that registered once polls and buffers with its cached assignments while the
//! hub is away.

use crate::common;

use std::time::Duration;

use common::{RunningHub, TestDb, site};
use solarhub_collector::app::run_collector;
use solarhub_collector::drivers::reading::Reading;
use solarhub_collector::uplink::outbox::{Limits, Outbox};
use solarhub_collector::uplink::{UplinkConfig, UplinkError};
use tokio::sync::{mpsc, watch};

fn config(hub: &str, collector: &str) -> UplinkConfig {
    UplinkConfig {
        access: solarhub_collector::uplink::hub_access::HubAccess::none(),
        hubs: vec![hub.into()],
        collector_id: collector.into(),
        version: "test".into(),
        batch_max_readings: 2,
        batch_max_wait: Duration::from_millis(200),
        max_backoff: Duration::from_millis(500),
        write_budget_per_day: solarhub_collector::control::DEFAULT_WRITE_BUDGET,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A port nothing listens on.
fn dead_hub() -> String {
    format!("http://127.0.0.1:{}", common::free_port())
}

#[test]
fn an_unusable_outbox_directory_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the outbox directory should be.
    let not_a_dir = dir.path().join("outbox");
    std::fs::write(&not_a_dir, b"not a directory").unwrap();
    let (_stop, stopped) = watch::channel(false);
    let error = runtime()
        .block_on(run_collector(
            config(&dead_hub(), "site-a"),
            &not_a_dir,
            None,
            std::sync::Arc::default(),
            stopped,
        ))
        .unwrap_err();
    assert!(
        format!("{error:#}").contains(&not_a_dir.display().to_string()),
        "the error names the outbox path: {error:#}"
    );
}

/// Runs the collector for `for_how_long`, checks it is still running (retrying), then stops it and
/// checks it stops cleanly.
fn keeps_trying_then_stops_cleanly(config: UplinkConfig) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (stop, stopped) = watch::channel(false);
    let collector = runtime.spawn({
        let dir = dir.path().to_owned();
        async move { run_collector(config, &dir, None, std::sync::Arc::default(), stopped).await }
    });
    runtime.block_on(async { tokio::time::sleep(Duration::from_secs(2)).await });
    assert!(!collector.is_finished(), "the collector keeps trying");
    stop.send(true).unwrap();
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), collector).await })
        .expect("the collector stops within 10 s")
        .unwrap()
        .expect("and stops cleanly");
}

#[test]
fn an_unreachable_hub_at_first_start_is_retried_until_stopped() {
    keeps_trying_then_stops_cleanly(config(&dead_hub(), "site-a"));
}

fn a_refused_collector_id_is_reported_and_retried(db: TestDb) {
    let hub = RunningHub::start(&db);
    let refused = hub.runtime.block_on(async {
        let mut client = solarhub_collector::uplink::connect(
            &hub.url,
            &solarhub_collector::uplink::hub_access::HubAccess::none(),
        )
        .await
        .unwrap();
        solarhub_collector::uplink::register(&mut client, &hub.url, &config(&hub.url, "not an id!"))
            .await
            .unwrap_err()
    });
    match &refused {
        UplinkError::Refused { reason, .. } => {
            assert!(reason.contains("collector_id"), "names the field: {reason}")
        }
        other => panic!("expected a refusal, got {other}"),
    }
    keeps_trying_then_stops_cleanly(config(&hub.url, "not an id!"));
}

fn with_the_hub_away_cached_assignments_are_polled_into_the_outbox(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let url;
    {
        // First start: the hub answers, and the collector caches its assignments.
        let hub = RunningHub::start(&db);
        url = hub.url.clone();
        let port = hub.runtime.block_on(site::simulated_gateway());
        site::assign_to_collector(&mut hub.database.get().unwrap(), "site-a", port, 0.3);
        let (stop, stopped) = watch::channel(false);
        let (tee, mut taken) = mpsc::channel::<Reading>(1000);
        let collector = hub.runtime.spawn({
            let (config, dir) = (config(&hub.url, "site-a"), dir.path().to_owned());
            async move {
                run_collector(config, &dir, Some(tee), std::sync::Arc::default(), stopped).await
            }
        });
        hub.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), taken.recv())
                .await
                .expect("a reading within 30 s");
            stop.send(true).unwrap();
            collector.await.unwrap().unwrap();
        });
        // The simulator keeps serving on this runtime only while the hub lives: move it out first.
        let runtime = runtime();
        let port = runtime.block_on(site::simulated_gateway());
        drop(hub);
        // Second start, hub gone: the devices are polled with the cached assignments. They point
        // at the old gateway, which is gone with the hub's runtime; point the cache at the new one.
        let mut outbox = Outbox::open(dir.path(), Limits::default()).unwrap();
        let cached = outbox
            .cached_assignments()
            .unwrap()
            .expect("assignments are cached");
        assert!(cached.contains("powdrive1.adapter"), "{cached}");
        let mut assignments: serde_json::Value = serde_json::from_str(&cached).unwrap();
        for assignment in assignments.as_array_mut().unwrap() {
            assignment["config"]["port"] = port.into();
        }
        outbox.cache_assignments(&assignments.to_string()).unwrap();
        drop(outbox);
        let (stop, stopped) = watch::channel(false);
        let (tee, mut taken) = mpsc::channel::<Reading>(1000);
        let collector = runtime.spawn({
            let (config, dir) = (config(&url, "site-a"), dir.path().to_owned());
            async move {
                run_collector(config, &dir, Some(tee), std::sync::Arc::default(), stopped).await
            }
        });
        let reading = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), taken.recv())
                .await
                .expect("a reading within 30 s with the hub away")
                .unwrap()
        });
        assert!(["powdrive1", "grid_meter_1"].contains(&reading.device_id.as_str()));
        runtime.block_on(async {
            stop.send(true).unwrap();
            tokio::time::timeout(Duration::from_secs(10), collector)
                .await
                .expect("stops within 10 s")
                .unwrap()
                .unwrap();
        });
    }
    let mut outbox = Outbox::open(dir.path(), Limits::default()).unwrap();
    assert!(
        outbox.len().unwrap() > 0,
        "the readings taken while the hub was away wait in the outbox"
    );
}

on_both_backends!(
    a_refused_collector_id_is_reported_and_retried,
    with_the_hub_away_cached_assignments_are_polled_into_the_outbox
);

/// One collector per outbox directory, all as `site-a`, sending to `hub_url` (see
/// `site::collect_from`).
fn run_as_site_a(
    hub: &RunningHub,
    hub_url: &str,
    outboxes: &[&std::path::Path],
    enough: usize,
    at_least: Duration,
) -> Vec<Reading> {
    let collectors = outboxes
        .iter()
        .map(|dir| (config(hub_url, "site-a"), dir.to_path_buf()))
        .collect();
    site::collect_from(hub, collectors, enough, at_least)
}

/// Issue 25 acceptance 3: a collector whose outbox was restored from an older copy (holding
/// batches the hub has since stored, under seqs below the hub's), whose outbox was deleted, or
/// that shares its identity with a second process at the same time: every reading any of them
/// took is stored once, none dropped as a replay.
fn a_collector_identity_reused_loses_no_reading(db: TestDb) {
    let hub = RunningHub::start(&db);
    let port = hub.runtime.block_on(site::simulated_gateway());
    site::assign_to_collector(&mut hub.database.get().unwrap(), "site-a", port, 0.25);
    let work = tempfile::tempdir().unwrap();
    let outbox = work.path().join("outbox");
    let old_copy = work.path().join("outbox-old");
    let second = work.path().join("outbox-second");
    let mut taken = Vec::new();

    // Registered once; then the hub is away and batches wait unacknowledged in the outbox.
    taken.extend(run_as_site_a(&hub, &hub.url, &[&outbox], 2, Duration::ZERO));
    let away = run_as_site_a(&hub, &dead_hub(), &[&outbox], 2, Duration::from_secs(2));
    assert!(!away.is_empty());
    taken.extend(away);
    // An old copy of the outbox, with those batches in it.
    copy_dir(&outbox, &old_copy);
    // The hub comes back: they are sent and stored, and more after them.
    taken.extend(run_as_site_a(&hub, &hub.url, &[&outbox], 4, Duration::ZERO));
    // The outbox is restored from the old copy: its batches' seqs are below the hub's now.
    std::fs::remove_dir_all(&outbox).unwrap();
    copy_dir(&old_copy, &outbox);
    taken.extend(run_as_site_a(&hub, &hub.url, &[&outbox], 3, Duration::ZERO));
    // The outbox is deleted: a new one starts at seq 1 in its own eyes.
    std::fs::remove_dir_all(&outbox).unwrap();
    taken.extend(run_as_site_a(&hub, &hub.url, &[&outbox], 3, Duration::ZERO));
    // Two processes with one identity, at once.
    taken.extend(run_as_site_a(
        &hub,
        &hub.url,
        &[&outbox, &second],
        6,
        Duration::ZERO,
    ));

    taken.sort_by_key(|reading| (reading.device_id.clone(), reading.ts));
    taken.dedup_by_key(|reading| (reading.device_id.clone(), reading.ts));
    site::assert_stored_once(&mut hub.database.get().unwrap(), &taken);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

on_both_backends!(a_collector_identity_reused_loses_no_reading);
