//! Twenty clients creating, updating and deleting under one system for ten seconds leave the catalog
//! consistent on both backends, and every failed request failed with a documented code.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{RunningHub, TestDb};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use solarhub_proto::prost_types::FieldMask;
use solarhub_proto::tonic::Code;
use solarhub_proto::tonic::transport::Channel;
use solarhub_proto::v1::battery_pack_service_client::BatteryPackServiceClient;
use solarhub_proto::v1::battery_service_client::BatteryServiceClient;
use solarhub_proto::v1::inverter_array_service_client::InverterArrayServiceClient;
use solarhub_proto::v1::inverter_service_client::InverterServiceClient;
use solarhub_proto::v1::meter_service_client::MeterServiceClient;
use solarhub_proto::v1::system_service_client::SystemServiceClient;
use solarhub_proto::v1::*;

const CLIENTS: u64 = 20;
const RUN_FOR: Duration = Duration::from_secs(10);

/// A tiny deterministic generator, one per client.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

async fn client_loop(channel: Channel, seed: u64, deadline: Instant) -> BTreeMap<String, u64> {
    let mut arrays = InverterArrayServiceClient::new(channel.clone());
    let mut inverters = InverterServiceClient::new(channel.clone());
    let mut meters = MeterServiceClient::new(channel.clone());
    let mut packs = BatteryPackServiceClient::new(channel.clone());
    let mut batteries = BatteryServiceClient::new(channel.clone());
    let mut rng = Lcg(seed);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    while Instant::now() < deadline {
        let array = format!("a{}", rng.next(4));
        let device = rng.next(30);
        let result = match rng.next(12) {
            0 => arrays
                .create_inverter_array(CreateInverterArrayRequest {
                    inverter_array: Some(InverterArray {
                        array_id: array,
                        system_id: "home".into(),
                        name: "array".into(),
                        pv_capacity_kw: None,
                    }),
                })
                .await
                .map(|_| ()),
            1 => arrays
                .delete_inverter_array(DeleteInverterArrayRequest {
                    array_id: array,
                    cascade: rng.next(2) == 0,
                })
                .await
                .map(|_| ()),
            2 | 3 => inverters
                .create_inverter(CreateInverterRequest {
                    inverter: Some(Inverter {
                        inverter_id: format!("inv{device}"),
                        array_id: array,
                        name: "inverter".into(),
                        ..Inverter::default()
                    }),
                })
                .await
                .map(|_| ()),
            4 | 5 => inverters
                .update_inverter(UpdateInverterRequest {
                    inverter: Some(Inverter {
                        inverter_id: format!("inv{device}"),
                        array_id: array,
                        rated_power_w: Some(rng.next(10_000) as f64),
                        ..Inverter::default()
                    }),
                    update_mask: Some(FieldMask {
                        paths: vec!["array_id".into(), "rated_power_w".into()],
                    }),
                })
                .await
                .map(|_| ()),
            6 => inverters
                .delete_inverter(DeleteInverterRequest {
                    inverter_id: format!("inv{device}"),
                    cascade: false,
                })
                .await
                .map(|_| ()),
            7 => meters
                .create_meter(CreateMeterRequest {
                    meter: Some(Meter {
                        meter_id: format!("m{device}"),
                        system_id: "home".into(),
                        array_id: Some(array),
                        name: "meter".into(),
                        ..Meter::default()
                    }),
                })
                .await
                .map(|_| ()),
            8 => meters
                .delete_meter(DeleteMeterRequest {
                    meter_id: format!("m{device}"),
                    cascade: false,
                })
                .await
                .map(|_| ()),
            9 => packs
                .create_battery_pack(CreateBatteryPackRequest {
                    battery_pack: Some(BatteryPack {
                        pack_id: format!("p{}", device % 5),
                        system_id: "home".into(),
                        name: "pack".into(),
                        ..BatteryPack::default()
                    }),
                })
                .await
                .map(|_| ()),
            10 => batteries
                .create_battery(CreateBatteryRequest {
                    battery: Some(Battery {
                        battery_id: format!("p{}.b{device}", device % 5),
                        pack_id: format!("p{}", device % 5),
                        battery_index: (device % 4 + 1) as i32,
                        ..Battery::default()
                    }),
                })
                .await
                .map(|_| ()),
            _ => packs
                .delete_battery_pack(DeleteBatteryPackRequest {
                    pack_id: format!("p{}", device % 5),
                    cascade: true,
                })
                .await
                .map(|_| ()),
        };
        let outcome = match result {
            Ok(()) => "ok".to_owned(),
            Err(status) => format!("{:?}", status.code()),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    outcomes
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

fn count(conn: &mut solarhub_hub::db::DbConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).load::<Count>(conn).unwrap()[0].count
}

fn concurrent_clients_leave_the_catalog_consistent(db: TestDb) {
    let hub = RunningHub::start(&db);
    let channel = hub.channel.clone();
    let outcomes = hub.runtime.block_on(async move {
        SystemServiceClient::new(channel.clone())
            .create_system(CreateSystemRequest {
                system: Some(System {
                    system_id: "home".into(),
                    name: "Home".into(),
                    timezone: "UTC".into(),
                    ..System::default()
                }),
            })
            .await
            .unwrap();
        let deadline = Instant::now() + RUN_FOR;
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|seed| tokio::spawn(client_loop(channel.clone(), seed + 1, deadline)))
            .collect();
        let mut total: BTreeMap<String, u64> = BTreeMap::new();
        for task in tasks {
            for (outcome, n) in task.await.unwrap() {
                *total.entry(outcome).or_default() += n;
            }
        }
        total
    });
    eprintln!("outcomes over {RUN_FOR:?} with {CLIENTS} clients: {outcomes:?}");
    let documented = ["ok", "AlreadyExists", "NotFound", "FailedPrecondition"];
    for (outcome, n) in &outcomes {
        assert!(
            documented.contains(&outcome.as_str()),
            "{n} requests failed with {outcome}: {outcomes:?}"
        );
    }
    assert!(
        outcomes.get("ok").copied().unwrap_or(0) > 100,
        "too little succeeded to mean anything: {outcomes:?}"
    );

    let mut conn = hub.database.get().unwrap();
    let orphans = [
        "SELECT COUNT(*) AS count FROM inverters i LEFT JOIN arrays a ON a.array_id = i.array_id WHERE a.array_id IS NULL OR a.system_id <> i.system_id",
        "SELECT COUNT(*) AS count FROM meters m LEFT JOIN arrays a ON a.array_id = m.array_id WHERE m.array_id IS NOT NULL AND a.array_id IS NULL",
        "SELECT COUNT(*) AS count FROM batteries b LEFT JOIN battery_packs p ON p.pack_id = b.pack_id WHERE p.pack_id IS NULL",
        "SELECT COUNT(*) AS count FROM arrays a LEFT JOIN systems s ON s.system_id = a.system_id WHERE s.system_id IS NULL",
        "SELECT COUNT(*) AS count FROM (SELECT pack_id, battery_index FROM batteries GROUP BY pack_id, battery_index HAVING COUNT(*) > 1) d",
    ];
    for sql in orphans {
        assert_eq!(count(&mut conn, sql), 0, "{sql}");
    }
    if let solarhub_hub::db::DbConnection::Sqlite(_) = &*conn {
        #[derive(QueryableByName)]
        #[allow(dead_code)]
        struct Violation {
            #[diesel(sql_type = diesel::sql_types::Text)]
            table: String,
        }
        let violations: Vec<Violation> = diesel::sql_query("PRAGMA foreign_key_check")
            .load(&mut *conn)
            .unwrap();
        assert!(
            violations.is_empty(),
            "{} foreign key violations",
            violations.len()
        );
    }
    // What the API lists is what the tables hold.
    let inverters_in_db = count(&mut conn, "SELECT COUNT(*) AS count FROM inverters");
    let channel = hub.channel.clone();
    let listed = hub.runtime.block_on(async move {
        InverterServiceClient::new(channel)
            .list_inverters(ListInvertersRequest {
                system_id: "home".into(),
                page_size: 1000,
                ..ListInvertersRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .inverters
            .len()
    });
    assert_eq!(listed as i64, inverters_in_db);
}

on_both_backends!(concurrent_clients_leave_the_catalog_consistent);

#[allow(dead_code)]
fn unused(_: Code) {}
