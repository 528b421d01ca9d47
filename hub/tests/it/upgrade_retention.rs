//! Retention after an upgrade, on both backends: two years of the old app's history (its cleanup
//! applied to `energy_samples` only), upgraded the way a user does it (`serve` on the old file;
//! on Postgres `import-legacy`, then `serve`), then passes at a clock moved years on. Under the
//! default policy every imported row stays while what solarhub collected after the upgrade
//! follows the default periods; with a period named for imported rows they go, and the history
//! of every cell, battery, pack, inverter and meter stays readable through the API at hourly or
//! 5-minute resolution, equal to what the raw rows gave. Then a database holding collected rows
//! nobody told the hub about: the served job waits, says so, and deletes once a period is named.

use crate::common;
use crate::legacy_fixture::years;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::TestDb;
use common::ingest_site::IngestSite;
use diesel::RunQueryDsl;
use solarhub_hub::db::retention::SampleTable;
use solarhub_hub::db::{Database, DatabaseUrl, DbConnection};
use solarhub_hub::ingest::{IncomingBattery, IncomingReading};
use solarhub_hub::retention::{Keep, Policy, Retention};
use solarhub_proto::v1 as proto;
use solarhub_proto::v1::history_service_client::HistoryServiceClient;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn days(n: u64) -> Keep {
    Keep::For(Duration::from_secs(n * 86_400))
}

/// The raw tables and the device column of each.
const RAW: [(SampleTable, &str); 6] = [
    (SampleTable::Energy, "inverter_id"),
    (SampleTable::Meter, "meter_id"),
    (SampleTable::Bank, "pack_id"),
    (SampleTable::Unit, "battery_id"),
    (SampleTable::Cell, "cell_id"),
    (SampleTable::Array, "array_id"),
];

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Rows of `table` with `from <= ts < to`.
fn rows_between(conn: &mut DbConnection, table: SampleTable, from: i64, to: i64) -> i64 {
    diesel::sql_query(format!(
        "SELECT COUNT(*) AS n FROM {} WHERE ts >= {from} AND ts < {to}",
        table.name()
    ))
    .load::<Count>(conn)
    .unwrap()[0]
        .n
}

/// Runs `serve` on `db` until it serves (the upgrade, the config, the start-up lines) and, when
/// `until` is given, until a line says it; then stops it. Returns what it logged and printed.
fn serve_once(db: &TestDb, extra: &[&str], until: Option<&str>) -> (Vec<String>, String) {
    let mut child = common::hub_binary()
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .args(["--database-url", &db.url_arg(), "serve", "--without-auth"])
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let mut serving = false;
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        serving |= line.contains("serving gRPC");
        if serving && until.is_none_or(|wanted| line.contains(wanted)) {
            break;
        }
    }
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(serving, "the hub never served:\n{}", seen.join("\n"));
    if let Some(wanted) = until {
        assert!(
            seen.iter().any(|line| line.contains(wanted)),
            "serve never said {wanted:?}:\n{}",
            seen.join("\n")
        );
    }
    (seen, String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What `retention --dry-run` prints for `db`.
fn dry_run(db: &TestDb) -> String {
    let dry = common::hub_binary()
        .args(["--database-url", &db.url_arg(), "retention", "--dry-run"])
        .output()
        .unwrap();
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    String::from_utf8_lossy(&dry.stdout).into_owned()
}

/// The half-hourly readings solarhub collects after the upgrade, for the config's devices.
fn collected_at(ts: i64) -> Vec<IncomingReading> {
    let fields = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    let n = (ts / (30 * MINUTE)) as f64;
    vec![
        IncomingReading {
            device_id: "powdrive1".into(),
            adapter_id: "powdrive1.adapter".into(),
            ts,
            fields: fields(&[("pv_power_w", 1500.0), ("load_power_w", 700.0)]),
            ..IncomingReading::default()
        },
        IncomingReading {
            device_id: "grid_meter_1".into(),
            adapter_id: "grid_meter_1.adapter".into(),
            ts,
            fields: fields(&[("power_w", 300.0), ("import_total_wh", 9e6 + n * 150.0)]),
            ..IncomingReading::default()
        },
        IncomingReading {
            device_id: "battery1".into(),
            adapter_id: "battery1.adapter".into(),
            ts,
            fields: fields(&[("power_w", -500.0), ("soc_pct", 60.0)]),
            batteries: (1..=years::BATTERIES)
                .map(|index| IncomingBattery {
                    index,
                    fields: fields(&[("voltage_v", 26.5), ("soc_pct", 60.0)]),
                    cells: (1..=years::CELLS_PER_BATTERY)
                        .map(|cell| (cell, fields(&[("voltage_v", 3.31)])))
                        .collect(),
                    ..IncomingBattery::default()
                })
                .collect(),
            ..IncomingReading::default()
        },
    ]
}

#[derive(diesel::QueryableByName, Debug, Clone, PartialEq)]
struct RawPoint {
    #[diesel(sql_type = diesel::sql_types::Text)]
    device: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    bucket: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    samples: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    a: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    b: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    c: Option<f64>,
}

/// What the raw rows of `table` with `ts < to` give per device and bucket of `width`: three
/// values computed by `values` (SQL over the raw columns), in (device, bucket) order.
fn from_raw(
    conn: &mut DbConnection,
    table: SampleTable,
    device: &str,
    width: i64,
    values: [&str; 3],
    to: i64,
) -> Vec<RawPoint> {
    let [a, b, c] = values;
    diesel::sql_query(format!(
        "SELECT {device} AS device, (ts / {width}) * {width} AS bucket, COUNT(*) AS samples, \
         {a} AS a, {b} AS b, {c} AS c FROM {} WHERE ts < {to} \
         GROUP BY {device}, (ts / {width}) * {width} ORDER BY {device}, bucket",
        table.name()
    ))
    .load::<RawPoint>(conn)
    .unwrap()
}

type Client = HistoryServiceClient<solarhub_proto::tonic::transport::Channel>;
/// One point as the API gave it: device, bucket start, samples, fields.
type ApiPoint = (String, i64, i64, BTreeMap<String, f64>);
/// Reads one window of a series through the API.
type Read<'a> = Box<dyn Fn(Client, proto::TimeRange) -> Vec<ApiPoint> + 'a>;

/// The same through the served API: `fields` of every point of the history RPC `read` answers
/// for [from, to), in (device, bucket) order.
fn from_api(
    hub: &common::RunningHub,
    read: &Read<'_>,
    fields: [&str; 3],
    from: i64,
    to: i64,
) -> Vec<RawPoint> {
    let mut points = Vec::new();
    let mut window = from;
    while window < to {
        let end = (window + 90 * DAY).min(to);
        points.extend(read(
            HistoryServiceClient::new(hub.channel.clone()),
            proto::TimeRange {
                from: Some(solarhub_proto::time::timestamp(window)),
                to: Some(solarhub_proto::time::timestamp(end)),
            },
        ));
        window = end;
    }
    let mut points: Vec<RawPoint> = points
        .into_iter()
        .map(|(device, bucket, samples, values)| RawPoint {
            device,
            bucket,
            samples,
            a: values.get(fields[0]).copied(),
            b: values.get(fields[1]).copied(),
            c: values.get(fields[2]).copied(),
        })
        .collect();
    points.sort_by(|x, y| (&x.device, x.bucket).cmp(&(&y.device, y.bucket)));
    points
}

fn assert_same(what: &str, api: &[RawPoint], raw: &[RawPoint]) {
    assert!(!raw.is_empty(), "{what}: no raw rows to compare with");
    assert_eq!(api.len(), raw.len(), "{what}: points");
    for (got, want) in api.iter().zip(raw) {
        let close = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => (x - y).abs() < 1e-9,
            (None, None) => true,
            _ => false,
        };
        assert!(
            got.device == want.device
                && got.bucket == want.bucket
                && got.samples == want.samples
                && close(got.a, want.a)
                && close(got.b, want.b)
                && close(got.c, want.c),
            "{what}: the API says {got:?}, the raw rows gave {want:?}"
        );
    }
}

/// Every series the test compares: cells and battery units hourly, inverter, meter and pack at 5
/// minutes; each from the raw rows and from the API.
fn histories(
    conn: &mut DbConnection,
    hub: Option<&common::RunningHub>,
    to: i64,
    from: i64,
) -> Vec<(&'static str, Vec<RawPoint>)> {
    let hourly = |cells: bool| -> Read<'_> {
        let hub = hub.unwrap();
        Box::new(move |mut client, range| {
            let request = proto::BatteryDeviceHourlyRequest {
                pack_id: "battery1".into(),
                range: Some(range),
                ..Default::default()
            };
            let answer = hub.runtime.block_on(async {
                if cells {
                    client.get_cell_hourly(request).await
                } else {
                    client.get_battery_unit_hourly(request).await
                }
            });
            answer
                .unwrap()
                .into_inner()
                .points
                .into_iter()
                .map(|p| {
                    (
                        p.device_id,
                        solarhub_proto::time::millis(&p.start.unwrap()),
                        p.samples as i64,
                        p.fields.into_iter().collect(),
                    )
                })
                .collect()
        })
    };
    let five_minute = |which: usize, id: &'static str| -> Read<'_> {
        let hub = hub.unwrap();
        Box::new(move |mut client, range| {
            let mut request = proto::FiveMinuteSeriesRequest {
                range: Some(range),
                ..Default::default()
            };
            match which {
                0 => request.inverter_id = id.into(),
                1 => request.meter_id = id.into(),
                _ => request.pack_id = id.into(),
            }
            hub.runtime
                .block_on(client.get_five_minute_series(request))
                .unwrap()
                .into_inner()
                .points
                .into_iter()
                .map(|p| {
                    (
                        id.to_owned(),
                        solarhub_proto::time::millis(&p.start.unwrap()),
                        p.samples as i64,
                        p.fields.into_iter().collect(),
                    )
                })
                .collect()
        })
    };
    let cases = [
        Series {
            what: "cells, hourly",
            table: SampleTable::Cell,
            device: "cell_id",
            width: HOUR,
            sql: ["MIN(voltage_v)", "MAX(voltage_v)", "MAX(temperature_c)"],
            fields: ["voltage_min_v", "voltage_max_v", "temperature_max_c"],
            reader: Reader::Cells,
        },
        Series {
            what: "batteries, hourly",
            table: SampleTable::Unit,
            device: "battery_id",
            width: HOUR,
            sql: ["AVG(voltage_v)", "MAX(temperature_c)", "MIN(soc_pct)"],
            fields: ["voltage_avg_v", "temperature_max_c", "soc_min_pct"],
            reader: Reader::Batteries,
        },
        Series {
            what: "inverter, 5 minutes",
            table: SampleTable::Energy,
            device: "inverter_id",
            width: 5 * MINUTE,
            sql: [
                "AVG(pv_power_w)",
                "AVG(battery_power_w)",
                "MAX(grid_import_total_wh)",
            ],
            fields: ["pv_power_w", "battery_power_w", "grid_import_total_wh"],
            reader: Reader::FiveMinute(0, "powdrive1"),
        },
        Series {
            what: "meter, 5 minutes",
            table: SampleTable::Meter,
            device: "meter_id",
            width: 5 * MINUTE,
            sql: ["AVG(power_w)", "AVG(voltage_v)", "MAX(import_total_wh)"],
            fields: ["power_w", "voltage_v", "import_total_wh"],
            reader: Reader::FiveMinute(1, "grid_meter_1"),
        },
        Series {
            what: "pack, 5 minutes",
            table: SampleTable::Bank,
            device: "pack_id",
            width: 5 * MINUTE,
            sql: ["AVG(power_w)", "AVG(soc_pct)", "AVG(temperature_c)"],
            fields: ["power_w", "soc_pct", "temperature_c"],
            reader: Reader::FiveMinute(2, "battery1"),
        },
    ];
    cases
        .into_iter()
        .map(|case| {
            let points = match hub {
                None => from_raw(conn, case.table, case.device, case.width, case.sql, to),
                Some(hub) => {
                    let read: Read<'_> = match case.reader {
                        Reader::Cells => hourly(true),
                        Reader::Batteries => hourly(false),
                        Reader::FiveMinute(which, id) => five_minute(which, id),
                    };
                    from_api(hub, &read, case.fields, from, to)
                }
            };
            (case.what, points)
        })
        .collect()
}

/// One series the test compares: how the raw rows give it, and which RPC and fields serve it.
struct Series {
    what: &'static str,
    table: SampleTable,
    device: &'static str,
    width: i64,
    sql: [&'static str; 3],
    fields: [&'static str; 3],
    reader: Reader,
}

enum Reader {
    Cells,
    Batteries,
    /// `GetFiveMinuteSeries` of an inverter (0), meter (1) or pack (2).
    FiveMinute(usize, &'static str),
}

fn what_the_user_brought_stays(db: TestDb) {
    let now = solarhub_hub::db::now_ms();
    // Two years of history ending two days ago; solarhub collects the two days since.
    let end = chrono::DateTime::from_timestamp_millis((now - 2 * DAY) / HOUR * HOUR).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, years::config_yaml()).unwrap();
    let config_arg = config.to_str().unwrap();
    let counts = match &db.url {
        DatabaseUrl::Sqlite(path) => years::build(path, end, 730),
        DatabaseUrl::Postgres(_) => {
            let file = dir.path().join("solar.db");
            let counts = years::build(&file, end, 730);
            let imported = common::hub_binary()
                .args(["--database-url", &db.url_arg(), "import-legacy"])
                .arg(&file)
                .args(["--config", config_arg])
                .output()
                .unwrap();
            assert!(
                imported.status.success(),
                "{}",
                String::from_utf8_lossy(&imported.stderr)
            );
            counts
        }
    };
    let imported_to = end.timestamp_millis();
    let (seen, _) = serve_once(&db, &["--config", config_arg], None);
    // `serve` says the imported rows older than their table's period are kept, and how to
    // delete them; it says nothing goes.
    for table in [
        "battery_cell_samples",
        "battery_unit_samples",
        "array_samples",
    ] {
        assert!(
            seen.iter().any(|line| line
                .contains("imported samples older than the retention period are kept")
                && line.contains(&format!("table=\"{table}\""))),
            "no word on imported {table}:\n{}",
            seen.join("\n")
        );
    }
    assert!(
        !seen
            .iter()
            .any(|line| line.contains("go at the first") || line.contains("retention waits")),
        "{}",
        seen.join("\n")
    );

    // The dry run lists the imported rows it keeps, table by table, and deletes nothing.
    let dry_run = dry_run(&db);
    eprintln!("{dry_run}");
    for (table, kept) in [
        ("battery_cell_samples", "30d"),
        ("battery_unit_samples", "90d"),
        ("meter_samples", "365d"),
    ] {
        assert!(
            dry_run.contains(&format!(
                "{table}: collected rows kept {kept}, imported rows kept forever\n  collected: nothing to delete\n  imported: keeps "
            )),
            "{dry_run}"
        );
    }

    let database: Database = db.migrated();
    let imported: BTreeMap<SampleTable, i64> = [
        (SampleTable::Energy, counts.energy),
        (SampleTable::Meter, counts.meter),
        (SampleTable::Bank, counts.bank),
        (SampleTable::Unit, counts.unit),
        (SampleTable::Cell, counts.cell),
        (SampleTable::Array, counts.array),
    ]
    .into_iter()
    .collect();
    let imported_rows = |conn: &mut DbConnection| -> BTreeMap<SampleTable, i64> {
        RAW.iter()
            .map(|(table, _)| (*table, rows_between(conn, *table, i64::MIN, imported_to)))
            .collect()
    };
    assert_eq!(imported_rows(&mut database.get().unwrap()), imported);

    // What solarhub collects after the upgrade, through real ingest, rolled.
    let mut site = IngestSite::on(database.clone(), &years::config_yaml());
    let collected_from = imported_to + 30 * MINUTE;
    let mut readings = Vec::new();
    let mut ts = collected_from;
    while ts < now - MINUTE {
        readings.extend(collected_at(ts));
        ts += 30 * MINUTE;
    }
    site.send(readings);
    site.roll();
    let collected_rows = |conn: &mut DbConnection, table: SampleTable| {
        rows_between(conn, table, collected_from, i64::MAX)
    };
    let collected: BTreeMap<SampleTable, i64> = RAW
        .iter()
        .map(|(table, _)| (*table, collected_rows(&mut database.get().unwrap(), *table)))
        .collect();
    assert!(collected[&SampleTable::Cell] > 0 && collected[&SampleTable::Energy] > 0);

    // The default policy, the clock moved on: 60 days (cells' 30 days past), 100 (battery units'
    // and arrays' 90), 400 (a year), 800.
    let retention = Retention {
        rest_factor: 0,
        ..Retention::new(Policy::default())
    };
    let rollups_before = site.rollups("home");
    for later in [60, 100, 400, 800] {
        let clock = now + later * DAY;
        site.runtime
            .block_on(solarhub_hub::retention::run_pass(
                &database, &retention, clock,
            ))
            .unwrap();
        let mut conn = database.get().unwrap();
        assert_eq!(
            imported_rows(&mut conn),
            imported,
            "{later} days on: imported rows went under the default policy"
        );
        for (table, _) in RAW {
            let Keep::For(period) = retention.policy.keep(table) else {
                unreachable!("every raw table has a default period")
            };
            let gone = now < clock - period.as_millis() as i64;
            let left = collected_rows(&mut conn, table);
            if gone {
                assert_eq!(
                    left,
                    0,
                    "{later} days on: collected {} stayed",
                    table.name()
                );
            } else {
                assert_eq!(
                    left,
                    collected[&table],
                    "{later} days on: collected {} went early",
                    table.name()
                );
            }
        }
    }
    assert_eq!(site.rollups("home"), rollups_before, "rollups changed");

    // The history the imported rows give, raw and through the API, before they go.
    let raw_before = histories(&mut database.get().unwrap(), None, imported_to, 0);
    let hub = common::RunningHub::start_with(&db, solarhub_hub::server::ServeOptions::default());
    let api_before = histories(
        &mut database.get().unwrap(),
        Some(&hub),
        imported_to,
        counts.first,
    );
    for ((what, raw), (_, api)) in raw_before.iter().zip(&api_before) {
        assert_same(what, api, raw);
    }

    // A period named for imported rows: they go, their history stays.
    let mut policy = Policy::default();
    for (table, _) in RAW {
        policy = policy.with_imported(table, days(30)).unwrap();
    }
    let report = site
        .runtime
        .block_on(solarhub_hub::retention::run_pass(
            &database,
            &Retention {
                rest_factor: 0,
                ..Retention::new(policy)
            },
            now + 800 * DAY,
        ))
        .unwrap();
    let mut conn = database.get().unwrap();
    for (table, _) in RAW {
        assert_eq!(
            rows_between(&mut conn, table, i64::MIN, i64::MAX),
            0,
            "imported {} stayed with a period named for them",
            table.name()
        );
        assert_eq!(
            report.deleted_imported.get(&table).copied().unwrap_or(0) as i64,
            imported[&table],
            "{}",
            table.name()
        );
    }
    drop(conn);
    let api_after = histories(
        &mut database.get().unwrap(),
        Some(&hub),
        imported_to,
        counts.first,
    );
    for ((what, raw), (_, api)) in raw_before.iter().zip(&api_after) {
        assert_same(&format!("{what}, after the raw rows went"), api, raw);
    }
    assert_eq!(site.rollups("home"), rollups_before, "rollups changed");
}

on_both_backends!(what_the_user_brought_stays);

/// `ServerInfo`'s word on one table.
fn table_info(hub: &common::RunningHub, table: SampleTable) -> proto::SampleRetention {
    use proto::server_info_service_client::ServerInfoServiceClient;
    let info = hub
        .runtime
        .block_on(
            ServerInfoServiceClient::new(hub.channel.clone())
                .get_server_info(proto::GetServerInfoRequest {}),
        )
        .unwrap()
        .into_inner();
    info.sample_tables
        .into_iter()
        .find(|t| t.table == table.name())
        .unwrap()
}

/// The tables the old readings fall in under the default periods (all older than a year).
const WAITED: [SampleTable; 5] = [
    SampleTable::Energy,
    SampleTable::Meter,
    SampleTable::Bank,
    SampleTable::Unit,
    SampleTable::Cell,
];

/// A database holding collected rows older than the default periods, which no pass ever went
/// through (a hub that ran with `--no-retention`, or before retention existed): the served job
/// waits instead of deleting, says so at the start (and every hour), shows it in `ServerInfo`
/// and the metrics, and `retention --dry-run` says the same; a named period deletes them, and
/// from then on the defaults apply without waiting.
fn a_hub_waits_for_a_named_period(db: TestDb) {
    let now = solarhub_hub::db::now_ms();
    let mut site = IngestSite::new(db, &years::config_yaml());
    let old = (now - 400 * DAY) / HOUR * HOUR;
    let mut readings = Vec::new();
    for step in 0..48 {
        readings.extend(collected_at(old + step * 30 * MINUTE));
    }
    readings.extend(collected_at(now / MINUTE * MINUTE - 10 * MINUTE));
    site.send(readings);
    site.roll();
    let db = site.db.take().unwrap();
    let old_rows = |conn: &mut DbConnection, table: SampleTable| {
        rows_between(conn, table, i64::MIN, old + DAY)
    };
    let per_table = |table: SampleTable| match table {
        SampleTable::Unit => 48 * years::BATTERIES as i64,
        SampleTable::Cell => 48 * (years::BATTERIES * years::CELLS_PER_BATTERY) as i64,
        _ => 48,
    };

    // The binary says, at the start, what it waits for and how to end the wait.
    let (seen, _) = serve_once(&db, &[], Some("table=\"battery_cell_samples\""));
    let waits = seen
        .iter()
        .find(|line| line.contains("retention waits") && line.contains("table=\"energy_samples\""))
        .unwrap_or_else(|| panic!("no word on the wait:\n{}", seen.join("\n")));
    assert!(waits.contains("rows=48"), "{waits}");
    assert!(
        waits.contains("--retention energy_samples=365d deletes them"),
        "{waits}"
    );
    assert!(
        !seen.iter().any(|line| line.contains("go at the first")),
        "{}",
        seen.join("\n")
    );
    // The dry run says the same.
    let dry_out = dry_run(&db);
    assert!(
        dry_out.contains("energy_samples: collected rows kept 365d, imported rows kept forever\n  collected: waits, deletes nothing: 48 rows"),
        "{dry_out}"
    );
    // Without --dry-run the command says where passes run.
    let refused = common::hub_binary()
        .args(["--database-url", &db.url_arg(), "retention"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("retention --dry-run"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Served with the defaults, passes every 200 ms: nothing of it goes, ServerInfo and the
    // metrics say the job waits and for what.
    let metrics_port = common::free_port();
    let served = |policy: Policy, metrics: Option<u16>| {
        common::RunningHub::start_with(
            &db,
            solarhub_hub::server::ServeOptions {
                retention: Some(Retention {
                    every: Duration::from_millis(200),
                    rest_factor: 0,
                    ..Retention::new(policy)
                }),
                metrics_listen: metrics.map(|port| format!("127.0.0.1:{port}").parse().unwrap()),
                ..solarhub_hub::server::ServeOptions::default()
            },
        )
    };
    let hub = served(Policy::default(), Some(metrics_port));
    // Two passes went by (the first makes the aggregates of the 400 days first).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let scrape = loop {
        if let Some(scrape) = crate::operations::scrape(metrics_port)
            && crate::operations::value(&scrape, "solarhub_hub_retention_passes_total", &[])
                .is_some_and(|passes| passes >= 2.0)
        {
            break scrape;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no two passes in a minute"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        crate::operations::value(
            &scrape,
            "solarhub_hub_retention_waiting_rows",
            &[("table", "battery_cell_samples")]
        ),
        Some(per_table(SampleTable::Cell) as f64)
    );
    let mut conn = db.connect();
    for table in WAITED {
        assert_eq!(
            old_rows(&mut conn, table),
            per_table(table),
            "{} went",
            table.name()
        );
        let info = table_info(&hub, table);
        assert!(info.waiting, "{info:?}");
        assert!(
            info.waiting_for
                .contains(&format!("--retention {}=", table.name())),
            "{info:?}"
        );
        assert_eq!(
            info.collected_due.unwrap().rows,
            per_table(table),
            "{info:?}"
        );
        assert!(info.deleted_before.is_none(), "{info:?}");
    }
    drop(hub);

    // A period named for each table (its default): the job deletes them.
    let named: Vec<String> = WAITED
        .iter()
        .map(|table| format!("{}={}", table.name(), Policy::default().keep(*table)))
        .collect();
    let hub = served(Policy::from_settings(&named).unwrap(), None);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while WAITED.iter().any(|table| old_rows(&mut conn, *table) > 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the named periods deleted nothing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for table in WAITED {
        assert!(!table_info(&hub, table).waiting);
        // The recent rows stay.
        assert!(rows_between(&mut conn, table, now - HOUR, i64::MAX) > 0);
    }
    drop(hub);

    // From then on the defaults need no naming: older rows collected late go without a wait.
    let mut site = IngestSite::on(db.migrated(), &years::config_yaml());
    site.send(collected_at(old + 3 * DAY));
    let hub = served(Policy::default(), None);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while old_rows(&mut conn, SampleTable::Cell)
        + rows_between(&mut conn, SampleTable::Cell, old, old + 4 * DAY)
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the settled table waited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!table_info(&hub, SampleTable::Cell).waiting);
}

on_both_backends!(a_hub_waits_for_a_named_period);

/// A database that imported the old app's file before imports recorded their spans (the
/// previous release): the migration takes the spans back from `legacy_imports`, so the default
/// policy keeps those rows too.
fn an_import_from_before_the_spans_is_kept(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    let expected = crate::legacy_fixture::build(
        &file,
        &crate::legacy_fixture::KARACHI,
        crate::legacy_fixture::Flavour::Current,
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        crate::legacy_fixture::config_yaml(&crate::legacy_fixture::KARACHI),
    )
    .unwrap();
    let database = db.migrated();
    let imported = common::hub_binary()
        .args(["--database-url", &db.url_arg(), "import-legacy"])
        .arg(&file)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let counts = |conn: &mut DbConnection| -> Vec<i64> {
        RAW.iter()
            .map(|(table, _)| rows_between(conn, *table, i64::MIN, i64::MAX))
            .collect()
    };
    let mut conn = database.get().unwrap();
    let before = counts(&mut conn);
    assert_eq!(before[0], expected.energy.len() as i64);
    // The previous release's database: no spans, then this release's migration.
    // Back to before the spans' migration (and the ones after it), then forward again.
    let mut reverted = Vec::new();
    while reverted.last().map(String::as_str) != Some("20261206000011") {
        reverted.push(solarhub_hub::db::revert_last_migration(&mut conn).unwrap());
    }
    reverted.reverse();
    let applied = solarhub_hub::db::run_migrations(&mut conn).unwrap();
    assert_eq!(applied.applied, reverted);
    let spans =
        diesel::sql_query("SELECT COUNT(*) AS n FROM imported_spans WHERE row_count IS NULL")
            .load::<Count>(&mut *conn)
            .unwrap()[0]
            .n;
    assert!(spans >= 5, "{spans} spans taken back");
    drop(conn);
    // June 2025 is older than every default period: under the defaults all of it stays.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime
        .block_on(solarhub_hub::retention::run_pass(
            &database,
            &Retention {
                rest_factor: 0,
                ..Retention::new(Policy::default())
            },
            solarhub_hub::db::now_ms(),
        ))
        .unwrap();
    assert_eq!(report.total_deleted(), 0, "{report:?}");
    assert_eq!(counts(&mut database.get().unwrap()), before);
}

on_both_backends!(an_import_from_before_the_spans_is_kept);
