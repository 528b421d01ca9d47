//! The README's first command, `solarhub-hub demo`: simulated devices of every driver type, the hub
//! and a collector streaming to it. Every device's samples are in the database within 30 seconds,
//! it stops cleanly, and a second start continues on the same database and outbox.

use crate::common;

use std::time::{Duration, Instant};

use common::TestDb;
use diesel::RunQueryDsl;

/// Every simulated device, with the table and id column its samples land in.
const DEVICES: [(&str, &str, &str); 6] = [
    ("powdrive1", "energy_samples", "inverter_id"),
    ("senergy1", "energy_samples", "inverter_id"),
    ("fronius1", "energy_samples", "inverter_id"),
    ("grid_meter_1", "meter_samples", "meter_id"),
    ("battery1", "battery_bank_samples", "pack_id"),
    ("jkbms_bank", "battery_bank_samples", "pack_id"),
];

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

fn samples(db: &TestDb, device: &str, table: &str, id_column: &str) -> i64 {
    let rows: Vec<Count> = diesel::sql_query(format!(
        "SELECT COUNT(*) AS count FROM {table} WHERE {id_column} = '{device}'"
    ))
    .load(&mut db.connect())
    .unwrap();
    rows[0].count
}

/// Runs the demo until every device has more than `at_least` samples (or 30 s pass), then stops it.
fn run_until_every_device_reports(db: &TestDb, outbox: &std::path::Path, at_least: &[i64]) {
    let demo = crate::common::demo::RunningDemo::start(db, outbox, 0.5);
    let (runtime, address, http_url) = (&demo.runtime, demo.grpc, demo.http_url.clone());

    let start = Instant::now();
    loop {
        let counts: Vec<i64> = DEVICES
            .iter()
            .map(|(device, table, column)| samples(db, device, table, column))
            .collect();
        if counts
            .iter()
            .zip(at_least)
            .all(|(now, before)| now > before)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "within 30 s every device has new samples: {:?} (before: {at_least:?})",
            DEVICES.iter().map(|d| d.0).zip(&counts).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // What a newcomer looks at first: the live answer has every device, each with its values.
    let now = runtime.block_on(async {
        let channel =
            solarhub_proto::tonic::transport::Channel::from_shared(format!("http://{address}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
        solarhub_proto::v1::live_service_client::LiveServiceClient::new(channel)
            .get_system_now(solarhub_proto::v1::GetSystemNowRequest {
                system_id: "home".into(),
            })
            .await
            .expect("the demo's system answers")
            .into_inner()
    });
    let inverters: Vec<_> = now.arrays.iter().flat_map(|a| &a.inverters).collect();
    for id in ["powdrive1", "senergy1", "fronius1"] {
        let inverter = inverters
            .iter()
            .find(|i| i.inverter_id == id)
            .unwrap_or_else(|| panic!("{id} is in the live answer"));
        assert!(
            inverter.pv_power_w.is_some(),
            "{id} has PV power: {inverter:?}"
        );
        assert!(
            inverter.ts.is_some() && !inverter.stale,
            "{id} reported recently: {inverter:?}"
        );
    }
    let meters: Vec<_> = now
        .meters
        .iter()
        .chain(now.arrays.iter().flat_map(|a| &a.meters))
        .collect();
    let meter = meters
        .iter()
        .find(|m| m.meter_id == "grid_meter_1")
        .expect("the meter is live");
    assert!(meter.power_w.is_some(), "{meter:?}");
    let packs: Vec<_> = now.battery_arrays.iter().flat_map(|b| &b.packs).collect();
    for id in ["battery1", "jkbms_bank"] {
        let pack = packs
            .iter()
            .find(|p| p.pack_id == id)
            .unwrap_or_else(|| panic!("{id} is live"));
        let soc = pack
            .soc_pct
            .unwrap_or_else(|| panic!("{id} has a SOC: {pack:?}"));
        assert!((0.0..=100.0).contains(&soc), "{id}: SOC {soc}");
    }
    // The browser's first call: the old app's route, no system named, no login on the demo.
    let answer = runtime.block_on(crate::common::http::call(
        "GET",
        &format!("{http_url}/api/home/now"),
        &[],
        None,
    ));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let over_http = answer.json();
    assert_eq!(over_http["systemId"], "home");
    let named: Vec<&str> = over_http["arrays"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["inverters"].as_array().unwrap())
        .map(|i| i["inverterId"].as_str().unwrap())
        .collect();
    for id in ["powdrive1", "senergy1", "fronius1"] {
        assert!(named.contains(&id), "{id} over HTTP: {named:?}");
    }
    let totals = now.totals.expect("system totals");
    // PV may be 0 (night in the demo's zone); load is never missing with every inverter reporting.
    assert!(
        totals.pv_power_w.is_some() && totals.load_power_w.is_some(),
        "{totals:?}"
    );
    demo.stop();
    // It stopped with nothing left behind: every batch taken was acknowledged by the hub.
    let mut outbox = solarhub_collector::uplink::outbox::Outbox::open(
        outbox,
        solarhub_collector::uplink::outbox::Limits::default(),
    )
    .unwrap();
    assert_eq!(
        outbox.len().unwrap(),
        0,
        "batches left unacknowledged in the outbox"
    );
}

fn the_demo_streams_every_driver_type_and_continues_after_a_restart(db: TestDb) {
    let outbox = tempfile::tempdir().unwrap();
    run_until_every_device_reports(&db, outbox.path(), &[0; 6]);
    let after_first: Vec<i64> = DEVICES
        .iter()
        .map(|(device, table, column)| samples(&db, device, table, column))
        .collect();
    // The second start keeps the first run's samples and adds to them.
    run_until_every_device_reports(&db, outbox.path(), &after_first);
}

on_both_backends!(the_demo_streams_every_driver_type_and_continues_after_a_restart);
