//! Issue 25 acceptance 2: a collector token sends 100,000 random `TelemetryBatch` messages (ids,
//! adapters, indexes, values, texts, timestamps, seqs, all drawn from what is valid and what is
//! not) through a served hub. No call is answered INTERNAL (or anything but OK or a refusal of
//! the request), the hub stays up, and afterwards no stored row names anything outside the
//! catalog and no stored value is outside its field's plausible range.
//! `SOLARHUB_FUZZ_BATCHES` changes the count (the default is the issue's).

use std::collections::{BTreeMap, HashMap};

use diesel::sql_types::{Double, Nullable};
use solarhub_hub::db::{DbConnection, introspect};
use solarhub_hub::server::{Security, ServeOptions};
use solarhub_proto::contract;
use solarhub_proto::tonic::{Code, Request};
use solarhub_proto::v1::collector_service_client::CollectorServiceClient;
use solarhub_proto::v1::*;

use crate::common::{self, RunningHub, TestDb};

/// A small, seeded generator: the same seed draws the same batches.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const DEVICES: &[(&str, &str)] = &[
    ("powdrive1", "powdrive1.adapter"),
    ("grid_meter_1", "grid_meter_1.adapter"),
    ("jkbms_bank", "jkbms_bank.adapter1"),
    // Not this collector's, or nobody's.
    ("senergy1", "senergy1.adapter"),
    ("battery1", "battery1.adapter"),
    ("ghost", "ghost.adapter"),
];

fn text(draw: &mut Draw) -> String {
    match draw.below(8) {
        0 => String::new(),
        1 => "x".repeat(300),
        2 => "nul\0inside".into(),
        3 => "tab\there".into(),
        4 => "ünïcödé ☀".into(),
        5 => format!("id{}", draw.below(1000)),
        6 => "a".repeat(65),
        _ => "normal".into(),
    }
}

fn value(draw: &mut Draw) -> f64 {
    match draw.below(12) {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => f64::NEG_INFINITY,
        3 => -5e9,
        4 => 1e308,
        5 => -1e308,
        6 => f64::MIN_POSITIVE,
        7 => -(draw.below(100) as f64),
        _ => draw.below(5000) as f64 / 10.0,
    }
}

fn field_name(draw: &mut Draw, fields: &[contract::Field]) -> String {
    if draw.chance(10) {
        return text(draw);
    }
    draw.pick(fields).name.to_owned()
}

fn fields(draw: &mut Draw, fields: &[contract::Field]) -> HashMap<String, f64> {
    (0..draw.below(5))
        .map(|_| (field_name(draw, fields), value(draw)))
        .collect()
}

fn timestamp(draw: &mut Draw, now: i64) -> Option<prost_types::Timestamp> {
    let ms = match draw.below(10) {
        0 => return None,
        1 => -62_135_596_800_000, // year 0001
        2 => i64::MIN / 1_000_000,
        3 => now + 3_600_000,
        4 => now + draw.below(400_000) as i64,
        5 => draw.next() as i64 / 1_000_000,
        // Within the last hours: the readings that may be stored.
        _ => now - draw.below(6 * 3_600_000) as i64,
    };
    Some(prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: if draw.chance(5) {
            -1
        } else {
            (ms.rem_euclid(1000) * 1_000_000) as i32
        },
    })
}

fn index(draw: &mut Draw) -> i32 {
    match draw.below(8) {
        0 => -5,
        1 => i32::MAX,
        2 => 0,
        3 => 100_000,
        _ => 1 + draw.below(4) as i32,
    }
}

fn reading(draw: &mut Draw, now: i64) -> DeviceReading {
    let (device, adapter) = *draw.pick(DEVICES);
    let device_id = if draw.chance(5) {
        text(draw)
    } else {
        device.into()
    };
    let adapter_id = match draw.below(10) {
        0 => String::new(),
        1 => draw.pick(DEVICES).1.into(),
        2 => text(draw),
        _ => adapter.into(),
    };
    let kind: &[contract::Field] = match device {
        "grid_meter_1" => contract::meter::ALL,
        "jkbms_bank" | "battery1" => contract::pack::ALL,
        _ => contract::inverter::ALL,
    };
    let batteries = if kind == contract::pack::ALL || draw.chance(5) {
        (0..draw.below(3))
            .map(|_| BatteryReading {
                index: index(draw),
                fields: fields(draw, contract::battery::ALL),
                text: if draw.chance(20) {
                    HashMap::from([(text(draw), text(draw))])
                } else {
                    HashMap::new()
                },
                cells: (0..draw.below(4))
                    .map(|_| CellReading {
                        index: index(draw),
                        fields: fields(draw, contract::cell::ALL),
                    })
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    DeviceReading {
        device_id,
        adapter_id,
        ts: timestamp(draw, now),
        fields: fields(draw, kind),
        text: if draw.chance(20) {
            HashMap::from([(text(draw), text(draw))])
        } else {
            HashMap::new()
        },
        batteries,
    }
}

fn batch(draw: &mut Draw, now: i64, last_seq: &mut u64) -> TelemetryBatch {
    let seq = match draw.below(20) {
        0 => u64::MAX,
        1 => *last_seq + 1_000_000_000,
        2 => 0,
        3 => last_seq.saturating_sub(draw.below(50)),
        4 => *last_seq + 1 + draw.below(1000),
        _ => *last_seq + 1,
    };
    TelemetryBatch {
        command_results: Vec::new(),
        collector_id: if draw.chance(3) {
            text(draw)
        } else {
            "site-a".into()
        },
        seq,
        readings: (0..draw.below(6)).map(|_| reading(draw, now)).collect(),
        polls: Vec::new(),
        sent_at: None,
    }
}

#[derive(diesel::QueryableByName)]
struct Span {
    #[diesel(sql_type = Nullable<Double>)]
    lo: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    hi: Option<f64>,
}

fn span(conn: &mut DbConnection, table: &str, column: &str) -> (Option<f64>, Option<f64>) {
    let sql = format!("SELECT MIN({column}) AS lo, MAX({column}) AS hi FROM {table}");
    let query = diesel::sql_query(sql);
    let rows: Vec<Span> = match conn {
        DbConnection::Postgres(pg) => diesel::RunQueryDsl::load(query, pg).unwrap(),
        DbConnection::Sqlite(sqlite) => diesel::RunQueryDsl::load(query, sqlite).unwrap(),
    };
    rows.first().map_or((None, None), |s| (s.lo, s.hi))
}

/// Values of `column` in `table` (a few) that no row of `catalog.key` has.
fn strays(
    conn: &mut DbConnection,
    table: &str,
    column: &str,
    catalog: &str,
    key: &str,
) -> Vec<String> {
    let sql = format!(
        "SELECT DISTINCT t.{column} AS v FROM {table} t WHERE NOT EXISTS \
         (SELECT 1 FROM {catalog} c WHERE c.{key} = t.{column}) LIMIT 5"
    );
    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let query = diesel::sql_query(sql);
    let rows: Vec<V> = match conn {
        DbConnection::Postgres(pg) => diesel::RunQueryDsl::load(query, pg).unwrap(),
        DbConnection::Sqlite(sqlite) => diesel::RunQueryDsl::load(query, sqlite).unwrap(),
    };
    rows.into_iter().map(|row| row.v).collect()
}

fn random_batches_from_a_collector_token(db: TestDb) {
    let batches: usize = std::env::var("SOLARHUB_FUZZ_BATCHES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let hub = RunningHub::start_with(
        &db,
        ServeOptions {
            security: Security {
                auth: true,
                tls: None,
            },
            array_samples_every: None,
            ..ServeOptions::default()
        },
    );
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
    let token = solarhub_hub::auth::principals::create(
        &mut hub.database.get().unwrap(),
        "site-a",
        solarhub_hub::auth::Role::Collector,
        Some("site-a"),
        None,
    )
    .unwrap()
    .token
    .expose()
    .to_owned();
    let catalog_tables = [
        "batteries",
        "battery_cells",
        "adapters",
        "inverters",
        "meters",
    ];
    let fingerprint = |hub: &RunningHub| {
        let mut conn = hub.database.get().unwrap();
        catalog_tables.map(|t| introspect::table_fingerprint(&mut conn, t).unwrap())
    };
    let catalog_before = fingerprint(&hub);
    let now = chrono::Utc::now().timestamp_millis();
    let codes: BTreeMap<String, usize> = hub.runtime.block_on(async {
        // Four streams of calls at once, each with its own seed.
        let tasks: Vec<_> = (0..4u64)
            .map(|worker| {
                let channel = hub.channel.clone();
                let token = token.clone();
                tokio::spawn(async move {
                    let mut client =
                        CollectorServiceClient::new(channel).max_decoding_message_size(64 << 20);
                    let mut draw = Draw(0x9E37_79B9_7F4A_7C15 ^ (worker + 1));
                    let mut last_seq = 0u64;
                    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
                    for _ in 0..batches / 4 {
                        let mut request = Request::new(batch(&mut draw, now, &mut last_seq));
                        request
                            .metadata_mut()
                            .insert("authorization", format!("Bearer {token}").parse().unwrap());
                        let code = match client.send_batch(request).await {
                            Ok(ack) => {
                                last_seq = last_seq.max(ack.into_inner().seq);
                                Code::Ok
                            }
                            Err(status) => {
                                assert!(
                                    !matches!(
                                        status.code(),
                                        Code::Internal | Code::Unknown | Code::Unavailable
                                    ),
                                    "{status:?}"
                                );
                                status.code()
                            }
                        };
                        *codes.entry(format!("{code:?}")).or_default() += 1;
                    }
                    codes
                })
            })
            .collect();
        let mut all = BTreeMap::new();
        for task in tasks {
            for (code, n) in task.await.unwrap() {
                *all.entry(code).or_default() += n;
            }
        }
        all
    });
    eprintln!("{batches} random batches answered: {codes:?}");
    assert!(
        codes.get("Ok").copied().unwrap_or(0) > batches / 10,
        "{codes:?}"
    );

    // The hub stays up.
    let mut systems =
        solarhub_proto::v1::system_service_client::SystemServiceClient::new(hub.channel.clone());
    let mut request = Request::new(ListSystemsRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let code = hub
        .runtime
        .block_on(systems.list_systems(request))
        .map_or_else(|status| status.code(), |_| Code::Ok);
    assert_eq!(
        code,
        Code::PermissionDenied,
        "a collector token reads nothing"
    );

    assert!(
        catalog_before == fingerprint(&hub),
        "ingest changed the catalog"
    );
    let mut conn = hub.database.get().unwrap();
    let stored: i64 = ["energy_samples", "meter_samples", "battery_bank_samples"]
        .iter()
        .map(|t| introspect::row_count(&mut conn, t).unwrap())
        .sum();
    assert!(stored > 0, "nothing was stored at all");
    for (table, column, catalog, key) in [
        ("energy_samples", "inverter_id", "inverters", "inverter_id"),
        ("meter_samples", "meter_id", "meters", "meter_id"),
        (
            "battery_bank_samples",
            "pack_id",
            "battery_packs",
            "pack_id",
        ),
        (
            "battery_unit_samples",
            "battery_id",
            "batteries",
            "battery_id",
        ),
        (
            "battery_cell_samples",
            "cell_id",
            "battery_cells",
            "cell_id",
        ),
        ("latest_readings", "adapter_id", "adapters", "adapter_id"),
    ] {
        let strays = strays(&mut conn, table, column, catalog, key);
        assert!(
            strays.is_empty(),
            "{table} holds rows whose {column} the catalog does not have: {strays:?}"
        );
    }
    let earliest = solarhub_hub::limits::EARLIEST_MS;
    for table in [
        "energy_samples",
        "meter_samples",
        "battery_bank_samples",
        "battery_unit_samples",
        "battery_cell_samples",
    ] {
        let columns = introspect::columns(&mut conn, table).unwrap();
        let (lo, hi) = span(&mut conn, table, "CAST(ts AS DOUBLE PRECISION)");
        if let (Some(lo), Some(hi)) = (lo, hi) {
            assert!(lo >= earliest as f64, "{table}: a reading before 2000");
            assert!(
                hi <= (now + 10 * 60_000) as f64,
                "{table}: a reading far ahead"
            );
        }
        let fields = contract::inverter::ALL
            .iter()
            .chain(contract::meter::ALL)
            .chain(contract::pack::ALL)
            .chain(contract::battery::ALL)
            .chain(contract::cell::ALL);
        for field in fields {
            let Some(range) = contract::plausible_range(field.unit) else {
                continue;
            };
            if !columns.iter().any(|c| c.name == field.name) {
                continue;
            }
            let (lo, hi) = span(&mut conn, table, field.name);
            for value in [lo, hi].into_iter().flatten() {
                assert!(
                    range.contains(&value),
                    "{table}.{}: {value} stored, outside {range:?}",
                    field.name
                );
            }
        }
    }
}

on_both_backends!(random_batches_from_a_collector_token);
