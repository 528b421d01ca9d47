//! The whole path, with real parts only: simulated devices served over Modbus TCP, a collector that
//! registers with a hub on 127.0.0.1:0, polls the devices the hub assigns to it and streams their
//! readings through its on-disk outbox, and the hub storing them on SQLite and on Postgres. Every
//! reading the collector took is a row in the hub, once, with its values.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{RunningHub, TestDb, site};
use solarhub_collector::app::run_collector;
use solarhub_collector::outbox::{Limits, Outbox};
use solarhub_collector::reading::Reading;
use solarhub_collector::uplink::UplinkConfig;
use tokio::sync::{mpsc, watch};

const COLLECTOR: &str = "site-a";

fn every_reading_lands_once_with_its_values(db: TestDb) {
    let hub = RunningHub::start(&db);
    let port = hub.runtime.block_on(site::simulated_gateway());
    site::assign_to_collector(&mut hub.database.get().unwrap(), COLLECTOR, port, 0.3);

    let outbox_dir = tempfile::tempdir().unwrap();
    let config = UplinkConfig {
        access: solarhub_collector::hub_access::HubAccess::none(),
        hub: hub.url.clone(),
        collector_id: COLLECTOR.into(),
        version: "test".into(),
        // Small batches, so the run spans many of them.
        batch_max_readings: 3,
        batch_max_wait: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
    };
    let (tee, mut taken) = mpsc::channel::<Reading>(10_000);
    let (stop, stopped) = watch::channel(false);
    let collector = hub.runtime.spawn({
        let dir = outbox_dir.path().to_owned();
        async move { run_collector(config, &dir, Some(tee), stopped).await }
    });
    // Run until both devices have reported a few times, then stop the collector.
    let mut readings: Vec<Reading> = Vec::new();
    hub.runtime.block_on(async {
        let enough = |readings: &[Reading], device: &str| {
            readings.iter().filter(|r| r.device_id == device).count() >= 5
        };
        tokio::time::timeout(Duration::from_secs(60), async {
            while !(enough(&readings, "powdrive1") && enough(&readings, "grid_meter_1")) {
                readings.push(taken.recv().await.expect("the collector stopped early"));
            }
        })
        .await
        .expect("both devices report within 60 s");
        stop.send(true).unwrap();
        collector
            .await
            .unwrap()
            .expect("the collector stops cleanly");
        while let Some(reading) = taken.recv().await {
            readings.push(reading);
        }
    });

    let devices: BTreeSet<&str> = readings.iter().map(|r| r.device_id.as_str()).collect();
    assert_eq!(devices, BTreeSet::from(["grid_meter_1", "powdrive1"]));
    for (device, table, id_column, field) in site::DEVICES {
        let taken: Vec<(i64, Option<f64>)> = readings
            .iter()
            .filter(|r| r.device_id == device)
            .map(|r| (r.ts, r.fields.get(field).copied()))
            .collect();
        let rows = site::stored_values(
            &mut hub.database.get().unwrap(),
            table,
            id_column,
            device,
            field,
        );
        assert_eq!(
            rows, taken,
            "{device}: the hub's rows are exactly the readings the collector took"
        );
        assert!(
            taken
                .iter()
                .any(|(_, value)| value.is_some_and(|v| v != 0.0)),
            "{device} reported a non-zero {field}"
        );
    }
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
