//! Telemetry ingest through real gRPC on both backends: a batch lands exactly once (replays change
//! nothing), readings a collector may not write — devices not assigned to it, times far in the future
//! — are refused in the ack and stored nowhere while the rest of the batch is stored.

use crate::common;

use std::collections::HashMap;

use common::{RunningHub, TestDb};
use solarhub_hub::db::introspect;
use solarhub_proto::prost_types::Timestamp;
use solarhub_proto::tonic::Code;
use solarhub_proto::v1::collector_service_client::CollectorServiceClient;
use solarhub_proto::v1::*;

const SAMPLE_TABLES: [&str; 5] = [
    "energy_samples",
    "meter_samples",
    "battery_bank_samples",
    "battery_unit_samples",
    "battery_cell_samples",
];

/// The real-installation fixture, with powdrive1, grid_meter_1 and the JK bank's primary adapter
/// assigned to collector `site-a`.
fn hub_with_installation(db: &TestDb) -> RunningHub {
    let hub = RunningHub::start(db);
    common::site::install_fixture(&mut hub.database.get().unwrap(), |installation| {
        for adapter in &mut installation.adapters {
            if [
                "powdrive1.adapter",
                "grid_meter_1.adapter",
                "jkbms_bank.adapter1",
            ]
            .contains(&adapter.adapter_id.as_str())
            {
                adapter.collector_id = Some("site-a".into());
            }
        }
    });
    hub
}

fn ts(ms: i64) -> Option<Timestamp> {
    Some(solarhub_proto::time::timestamp(ms))
}

fn reading(device: &str, adapter: &str, at: i64, fields: &[(&str, f64)]) -> DeviceReading {
    DeviceReading {
        device_id: device.into(),
        adapter_id: adapter.into(),
        ts: ts(at),
        fields: fields.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        ..DeviceReading::default()
    }
}

fn batch(seq: u64, at: i64) -> TelemetryBatch {
    let mut pack = reading(
        "jkbms_bank",
        "jkbms_bank.adapter1",
        at,
        &[("voltage_v", 53.1), ("current_a", -18.0), ("soc_pct", 64.2)],
    );
    pack.batteries = (1..=3)
        .map(|index| BatteryReading {
            index,
            fields: HashMap::from([
                ("voltage_v".to_owned(), 53.1),
                ("soc_pct".to_owned(), 60.0 + f64::from(index)),
            ]),
            text: HashMap::from([("basic_st".to_owned(), "Charge".to_owned())]),
            cells: (1..=16)
                .map(|c| CellReading {
                    index: c,
                    fields: HashMap::from([("voltage_v".to_owned(), 3.3 + f64::from(c) / 1000.0)]),
                })
                .collect(),
        })
        .collect();
    TelemetryBatch {
        command_results: Vec::new(),
        sent_at: None,
        polls: Vec::new(),
        collector_id: "site-a".into(),
        seq,
        readings: vec![
            reading(
                "powdrive1",
                "powdrive1.adapter",
                at,
                &[
                    ("pv_power_w", 4200.0),
                    ("grid_power_w", -350.0),
                    ("battery_soc_pct", 71.0),
                ],
            ),
            reading(
                "grid_meter_1",
                "grid_meter_1.adapter",
                at,
                &[("power_w", -350.0), ("import_total_wh", 5_432_100.0)],
            ),
            pack,
            // Not assigned to site-a.
            reading("senergy1", "senergy1.adapter", at, &[("pv_power_w", 999.0)]),
            // An hour in the future.
            reading(
                "powdrive1",
                "powdrive1.adapter",
                at + 3_600_000,
                &[("pv_power_w", 1.0)],
            ),
        ],
    }
}

fn counts(hub: &RunningHub) -> Vec<(String, i64)> {
    let mut conn = hub.database.get().unwrap();
    SAMPLE_TABLES
        .iter()
        .map(|t| (t.to_string(), introspect::row_count(&mut conn, t).unwrap()))
        .collect()
}

fn fingerprints(hub: &RunningHub) -> Vec<Vec<String>> {
    let mut conn = hub.database.get().unwrap();
    SAMPLE_TABLES
        .iter()
        .chain(["collectors", "batteries", "battery_cells"].iter())
        .map(|t| introspect::table_fingerprint(&mut conn, t).unwrap())
        .collect()
}

fn refusals_and_exactly_once(db: TestDb) {
    let hub = hub_with_installation(&db);
    let channel = hub.channel.clone();
    let now = chrono::Utc::now().timestamp_millis();
    let mut client = CollectorServiceClient::new(channel.clone());

    let registered = hub
        .runtime
        .block_on(client.register(RegisterRequest {
            collector_id: "site-a".into(),
            version: "test".into(),
        }))
        .unwrap()
        .into_inner();
    let mut assigned: Vec<&str> = registered
        .assignments
        .iter()
        .map(|a| a.adapter_id.as_str())
        .collect();
    assigned.sort();
    assert_eq!(
        assigned,
        [
            "grid_meter_1.adapter",
            "jkbms_bank.adapter1",
            "powdrive1.adapter"
        ]
    );
    assert_eq!(registered.last_committed_seq, 0);
    let unknown = hub
        .runtime
        .block_on(client.register(RegisterRequest {
            collector_id: "nobody".into(),
            version: "test".into(),
        }))
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(
        unknown.message().contains("no adapters assigned"),
        "{}",
        unknown.message()
    );

    let first = hub
        .runtime
        .block_on(client.send_batch(batch(1, now)))
        .unwrap()
        .into_inner();
    assert_eq!(
        (first.seq, first.replay, first.stored, first.duplicates),
        (1, false, 3, 0)
    );
    let mut reasons: Vec<(&str, &str)> = first
        .refused
        .iter()
        .map(|r| (r.device_id.as_str(), r.reason.as_str()))
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].0 == "powdrive1" && reasons[0].1.contains("ahead of the hub's clock"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].0 == "senergy1" && reasons[1].1.contains("not assigned to collector site-a"),
        "{reasons:?}"
    );
    let stored = counts(&hub);
    assert_eq!(
        stored,
        [
            ("energy_samples", 1),
            ("meter_samples", 1),
            ("battery_bank_samples", 1),
            ("battery_unit_samples", 3),
            ("battery_cell_samples", 48)
        ]
        .map(|(t, n)| (t.to_string(), n))
    );
    {
        let mut conn = hub.database.get().unwrap();
        let energy = introspect::table_fingerprint(&mut conn, "energy_samples").unwrap();
        assert!(
            energy[0].starts_with(&format!("powdrive1|{now}|array2|home|4200")),
            "{energy:?}"
        );
    }

    // The same batch 100 times, unary and streamed: nothing changes after the first time.
    let before = fingerprints(&hub);
    for _ in 0..50 {
        let again = hub
            .runtime
            .block_on(client.send_batch(batch(1, now)))
            .unwrap()
            .into_inner();
        assert!(again.replay && again.stored == 0, "{again:?}");
    }
    let acks: Vec<Ack> = hub.runtime.block_on(async {
        let outbound = tokio_stream::iter((0..50).map(move |_| batch(1, now)));
        let mut inbound = client
            .stream_telemetry(outbound)
            .await
            .unwrap()
            .into_inner();
        let mut acks = Vec::new();
        while let Some(ack) = inbound.message().await.unwrap() {
            acks.push(ack);
        }
        acks
    });
    assert_eq!(acks.len(), 50);
    assert!(acks.iter().all(|a| a.replay && a.seq == 1 && a.stored == 0));
    assert!(fingerprints(&hub) == before, "replays changed the database");

    // A new seq carrying readings already stored: acknowledged as duplicates, nothing written twice.
    let second = hub
        .runtime
        .block_on(client.send_batch(batch(2, now)))
        .unwrap()
        .into_inner();
    assert_eq!(
        (second.replay, second.stored, second.duplicates),
        (false, 0, 3)
    );
    assert_eq!(counts(&hub), stored);

    // Streaming new batches: acks in order, each after its rows are there.
    let acks: Vec<Ack> = hub.runtime.block_on(async {
        let outbound =
            tokio_stream::iter((3..=5).map(move |seq| batch(seq, now + seq as i64 * 1000)));
        let mut inbound = client
            .stream_telemetry(outbound)
            .await
            .unwrap()
            .into_inner();
        let mut acks = Vec::new();
        while let Some(ack) = inbound.message().await.unwrap() {
            acks.push(ack);
        }
        acks
    });
    assert_eq!(
        acks.iter().map(|a| (a.seq, a.stored)).collect::<Vec<_>>(),
        [(3, 3), (4, 3), (5, 3)]
    );
    assert_eq!(counts(&hub)[0], ("energy_samples".to_string(), 4));
    let registered = hub
        .runtime
        .block_on(client.register(RegisterRequest {
            collector_id: "site-a".into(),
            version: "test".into(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(registered.last_committed_seq, 5);

    // Half stored, half new: the new half lands (on Postgres the fast COPY path meets the stored
    // rows, and the batch is written again skipping them), the stored half is counted.
    let mut mixed = batch(6, now + 6000);
    mixed.readings.extend(batch(6, now + 5000).readings);
    let ack = hub
        .runtime
        .block_on(client.send_batch(mixed))
        .unwrap()
        .into_inner();
    assert_eq!((ack.replay, ack.stored, ack.duplicates), (false, 3, 3));
    assert_eq!(counts(&hub)[0], ("energy_samples".to_string(), 5));
}

on_both_backends!(refusals_and_exactly_once);

/// One bad reading of the hostile-collector probes (issue 25) beside a good one.
struct Probe {
    what: &'static str,
    kind: &'static str,
    bad: fn(i64) -> DeviceReading,
}

fn good_inverter(at: i64) -> DeviceReading {
    reading(
        "powdrive1",
        "powdrive1.adapter",
        at,
        &[("pv_power_w", 4200.0), ("battery_soc_pct", 71.0)],
    )
}

fn pack_with(at: i64, battery: i32, cells: std::ops::RangeInclusive<i32>) -> DeviceReading {
    let mut pack = reading(
        "jkbms_bank",
        "jkbms_bank.adapter1",
        at,
        &[("soc_pct", 64.0)],
    );
    pack.batteries = vec![BatteryReading {
        index: battery,
        fields: HashMap::from([("voltage_v".to_owned(), 53.1)]),
        text: HashMap::new(),
        cells: cells
            .map(|c| CellReading {
                index: c,
                fields: HashMap::from([("voltage_v".to_owned(), 3.3)]),
            })
            .collect(),
    }];
    pack
}

const PROBES: &[Probe] = &[
    Probe {
        what: "a made-up adapter for the collector's own device",
        kind: "adapter_mismatch",
        bad: |at| {
            let mut r = good_inverter(at);
            r.adapter_id = "fake.adapter".into();
            r
        },
    },
    Probe {
        what: "an adapter id of 1.5 MB",
        kind: "adapter_mismatch",
        bad: |at| {
            let mut r = good_inverter(at);
            r.adapter_id = "a".repeat(1_500_000);
            r
        },
    },
    Probe {
        what: "another device's adapter",
        kind: "adapter_mismatch",
        bad: |at| {
            let mut r = good_inverter(at);
            r.adapter_id = "grid_meter_1.adapter".into();
            r
        },
    },
    Probe {
        what: "a battery at index -5",
        kind: "unknown_battery",
        bad: |at| pack_with(at, -5, 1..=1),
    },
    Probe {
        what: "a battery at index 2^31-1",
        kind: "unknown_battery",
        bad: |at| pack_with(at, i32::MAX, 1..=1),
    },
    Probe {
        what: "a battery with 100,000 cells",
        kind: "unknown_cell",
        bad: |at| pack_with(at, 1, 1..=100_000),
    },
    Probe {
        what: "an inverter reporting batteries",
        kind: "unknown_battery",
        bad: |at| {
            let mut r = good_inverter(at);
            r.batteries = pack_with(at, 1, 1..=1).batteries;
            r
        },
    },
    Probe {
        what: "-5e9 W",
        kind: "out_of_range",
        bad: |at| reading("powdrive1", "", at, &[("grid_power_w", -5e9)]),
    },
    Probe {
        what: "-1e308 V on a meter",
        kind: "out_of_range",
        bad: |at| reading("grid_meter_1", "", at, &[("voltage_v", -1e308)]),
    },
    Probe {
        what: "a cell at 1e9 V",
        kind: "out_of_range",
        bad: |at| {
            let mut pack = pack_with(at, 1, 1..=1);
            pack.batteries[0].cells[0]
                .fields
                .insert("voltage_v".into(), 1e9);
            pack
        },
    },
    Probe {
        what: "NaN",
        kind: "not_finite",
        bad: |at| reading("powdrive1", "", at, &[("pv_power_w", f64::NAN)]),
    },
    Probe {
        what: "an infinity",
        kind: "not_finite",
        bad: |at| reading("grid_meter_1", "", at, &[("power_w", f64::INFINITY)]),
    },
    Probe {
        what: "a reading of year 0001",
        kind: "too_old",
        bad: |_| good_inverter(-62_135_596_800_000),
    },
    Probe {
        what: "a reading at i64::MIN ms",
        kind: "too_old",
        bad: |_| {
            let mut r = good_inverter(0);
            r.ts = Some(Timestamp {
                seconds: i64::MIN,
                nanos: -999_999_999,
            });
            r
        },
    },
    Probe {
        what: "a NUL byte in a text value",
        kind: "bad_text",
        bad: |at| {
            let mut pack = pack_with(at, 1, 1..=1);
            pack.batteries[0]
                .text
                .insert("basic_st".into(), "Char\0ge".into());
            pack
        },
    },
    Probe {
        what: "a NUL byte in the device id",
        kind: "bad_text",
        bad: |at| {
            let mut r = good_inverter(at);
            r.device_id = "powdrive1\0".into();
            r
        },
    },
    Probe {
        what: "a text of 1 MB",
        kind: "bad_text",
        bad: |at| {
            let mut r = good_inverter(at);
            r.text.insert("serial".into(), "x".repeat(1 << 20));
            r
        },
    },
];

/// Every probe of a collector gone wrong (or a leaked token) is refused with its kind, counted in
/// the ack, and stored nowhere; the good reading beside it lands; the catalog does not grow.
fn hostile_readings_are_refused_by_kind(db: TestDb) {
    let hub = hub_with_installation(&db);
    let mut client = CollectorServiceClient::new(hub.channel.clone());
    let now = chrono::Utc::now().timestamp_millis();
    let catalog_before = {
        let mut conn = hub.database.get().unwrap();
        ["batteries", "battery_cells", "adapters"]
            .map(|t| introspect::table_fingerprint(&mut conn, t).unwrap())
    };
    for (n, probe) in PROBES.iter().enumerate() {
        let at = now - 600_000 + n as i64 * 1000;
        let ack = hub
            .runtime
            .block_on(client.send_batch(TelemetryBatch {
                collector_id: "site-a".into(),
                seq: n as u64 + 1,
                readings: vec![good_inverter(at), (probe.bad)(at + 1)],
                ..TelemetryBatch::default()
            }))
            .unwrap_or_else(|status| panic!("{}: {status:?}", probe.what))
            .into_inner();
        let kinds: Vec<&str> = ack.refused.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, [probe.kind], "{}: {:?}", probe.what, ack.refused);
        assert_eq!(ack.stored, 1, "{}: the good reading lands", probe.what);
        assert!(
            ack.refused[0].device_id.len() <= 70 && ack.refused[0].reason.len() < 400,
            "{}: the refusal repeats a bounded part: {:?}",
            probe.what,
            ack.refused[0]
        );
    }
    let mut conn = hub.database.get().unwrap();
    let probes = PROBES.len() as i64;
    assert_eq!(
        introspect::row_count(&mut conn, "energy_samples").unwrap(),
        probes,
        "only the good readings are stored"
    );
    for table in [
        "meter_samples",
        "battery_bank_samples",
        "battery_unit_samples",
        "battery_cell_samples",
    ] {
        assert_eq!(
            introspect::row_count(&mut conn, table).unwrap(),
            0,
            "{table}"
        );
    }
    let catalog_after = ["batteries", "battery_cells", "adapters"]
        .map(|t| introspect::table_fingerprint(&mut conn, t).unwrap());
    assert!(
        catalog_after == catalog_before,
        "ingest changed the catalog"
    );
    let adapters: Vec<String> = introspect::table_fingerprint(&mut conn, "latest_readings")
        .unwrap()
        .into_iter()
        .filter(|row| row.split('|').nth(1) != Some("powdrive1.adapter"))
        .collect();
    assert!(
        adapters.is_empty(),
        "latest_readings holds an adapter it should not: {adapters:?}"
    );
}

on_both_backends!(hostile_readings_are_refused_by_kind);

/// Seqs cannot erase data: a jump far ahead is refused, a seq near u64::MAX is refused (not
/// INTERNAL), and a jump within reach (a collector's outbox lost batches) leaves the real next
/// batches storable: a seq at or below the hub's stores the readings the hub does not have.
fn seqs_cannot_erase_readings(db: TestDb) {
    let hub = hub_with_installation(&db);
    let mut client = CollectorServiceClient::new(hub.channel.clone());
    let now = chrono::Utc::now().timestamp_millis();
    let send = |client: &mut CollectorServiceClient<_>, seq: u64, at: i64| {
        hub.runtime.block_on(client.send_batch(TelemetryBatch {
            collector_id: "site-a".into(),
            seq,
            readings: vec![good_inverter(at)],
            ..TelemetryBatch::default()
        }))
    };
    let first = send(&mut client, 1, now - 60_000).unwrap().into_inner();
    assert_eq!((first.replay, first.stored), (false, 1));
    for seq in [u64::MAX, i64::MAX as u64 + 1, 1 + 2_000_001] {
        let refused = send(&mut client, seq, now - 50_000).unwrap_err();
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "seq {seq}: {refused:?}"
        );
        assert!(refused.message().contains("seq"), "{refused:?}");
    }
    // Within reach: accepted, and the collector's real next batch (seq 2) is still stored.
    let jump = send(&mut client, 1_000_001, now - 40_000)
        .unwrap()
        .into_inner();
    assert_eq!((jump.replay, jump.stored), (false, 1));
    let real_next = send(&mut client, 2, now - 30_000).unwrap().into_inner();
    assert_eq!(
        (real_next.replay, real_next.stored, real_next.duplicates),
        (true, 1, 0),
        "a reused seq's new readings are stored"
    );
    // Sent again (its ack lost): nothing twice.
    let again = send(&mut client, 2, now - 30_000).unwrap().into_inner();
    assert_eq!((again.replay, again.stored, again.duplicates), (true, 0, 1));
    let mut conn = hub.database.get().unwrap();
    assert_eq!(
        introspect::row_count(&mut conn, "energy_samples").unwrap(),
        3
    );
}

on_both_backends!(seqs_cannot_erase_readings);
