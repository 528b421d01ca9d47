//! The whole path, with real parts only: simulated devices served over Modbus TCP, a collector that
//! registers with a hub on 127.0.0.1:0, polls the devices the hub assigns to it and streams their
//! readings through its on-disk outbox, and the hub storing them on SQLite and on Postgres. Every
//! reading the collector took is a row in the hub, once, with its values.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{RunningHub, TestDb, site};
use solarhub_collector::uplink::UplinkConfig;
use solarhub_collector::uplink::outbox::{Limits, Outbox};

const COLLECTOR: &str = "site-a";

fn every_reading_lands_once_with_its_values(db: TestDb) {
    let hub = RunningHub::start(&db);
    let port = hub.runtime.block_on(site::simulated_gateway());
    site::assign_to_collector(&mut hub.database.get().unwrap(), COLLECTOR, port, 0.3);

    let outbox_dir = tempfile::tempdir().unwrap();
    let config = UplinkConfig {
        access: solarhub_collector::uplink::hub_access::HubAccess::none(),
        hubs: vec![hub.url.clone()],
        collector_id: COLLECTOR.into(),
        version: "test".into(),
        // Small batches, so the run spans many of them.
        batch_max_readings: 3,
        batch_max_wait: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
        write_budget_per_day: solarhub_collector::control::DEFAULT_WRITE_BUDGET,
    };
    let readings = site::collect_until(&hub, config, outbox_dir.path(), 5);
    let devices: BTreeSet<&str> = readings.iter().map(|r| r.device_id.as_str()).collect();
    assert_eq!(devices, BTreeSet::from(["grid_meter_1", "powdrive1"]));
    site::assert_stored_once(&mut hub.database.get().unwrap(), &readings);
    // The hub's own account of the collector agrees.
    let status = hub.runtime.block_on(async {
        solarhub_proto::v1::collector_service_client::CollectorServiceClient::new(
            hub.channel.clone(),
        )
        .list_collectors(solarhub_proto::v1::ListCollectorsRequest {})
        .await
        .unwrap()
        .into_inner()
    });
    assert_eq!(status.collectors.len(), 1);
    assert_eq!(status.collectors[0].collector_id, COLLECTOR);
    assert_eq!(
        status.collectors[0].version, "test",
        "the version it registered with"
    );
    assert_eq!(
        status.collectors[0].samples_stored,
        readings.len() as u64,
        "ListCollectors counts every stored reading"
    );
    assert!(status.collectors[0].last_committed_seq >= 2);
    // Everything was acknowledged, so nothing waits in the outbox.
    let mut outbox = Outbox::open(outbox_dir.path(), Limits::default()).unwrap();
    assert_eq!(
        outbox.len().unwrap(),
        0,
        "the outbox is empty after a clean stop"
    );
}

on_both_backends!(every_reading_lands_once_with_its_values);
