//! Retention on both backends: a year of samples fed through real ingest a month at a time, rolled
//! by the roller, and deleted by retention passes at a clock the test moves (the year ends now,
//! the periods are short). After every pass: no raw row older than its table's period, every
//! rollup row and every 5-minute aggregate still in its period as it was before the pass, the
//! samples of hours pending a roll or claimed by a recompute still there, and (SQLite) the file's
//! size measured and bounded. Then the served hub's own job, `ServerInfo`, the metrics and
//! `GetFiveMinuteSeries` after the samples went, and `compact` on the old app's upgraded file.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestDb;
use common::ingest_site::IngestSite;
use diesel::RunQueryDsl;
use solarhub_hub::db::DbConnection;
use solarhub_hub::db::retention::SampleTable;
use solarhub_hub::db::rollups::RollupRows;
use solarhub_hub::ingest::{IncomingBattery, IncomingReading};
use solarhub_hub::retention::{Keep, Policy, Retention};
use solarhub_hub::rollup::{RecomputeClaim, Settings};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// A sample of every device every 10 minutes.
const CADENCE: i64 = 10 * MINUTE;
/// The inverter's counter grows by this much per sample: 1 kWh per hour.
const WH_PER_SAMPLE: f64 = 1000.0 * CADENCE as f64 / HOUR as f64;

const INSTALLATION: &str = r#"
home:
  id: home
  name: Home
  timezone: Asia/Karachi
arrays:
  - id: a1
    name: A1
    inverter_ids: [inv1]
inverters:
  - id: inv1
    name: One
    array_id: a1
    adapter: {type: powdrive, transport: tcp, host: 127.0.0.1, port: 1502, unit_id: 1}
meters:
  - id: grid1
    name: Grid
    array_id: home
    adapter: {type: iammeter, transport: tcp, host: 127.0.0.1, port: 1502, unit_id: 4}
battery_banks:
  - id: pack1
    name: Pack
    adapter: {type: pytes, serial_port: /dev/ttyUSB1, batteries: 1, cells_per_battery: 2}
"#;

fn days(n: u64) -> Keep {
    Keep::For(Duration::from_secs(n * 86_400))
}

/// Raw samples for 30 days, battery units 14, cells 7, the aggregates 90; rollups forever.
fn policy() -> Policy {
    Policy::raw_for(days(30))
        .with(SampleTable::Unit, days(14))
        .and_then(|p| p.with(SampleTable::Cell, days(7)))
        .and_then(|p| p.with(SampleTable::Energy5m, days(90)))
        .and_then(|p| p.with(SampleTable::Meter5m, days(90)))
        .and_then(|p| p.with(SampleTable::Bank5m, days(90)))
        .and_then(|p| p.with(SampleTable::Unit1h, days(90)))
        .and_then(|p| p.with(SampleTable::Cell1h, days(90)))
        .unwrap()
}

/// The installation fed through real ingest, with the passes at a given time and the file's size.
struct Site(IngestSite);

impl std::ops::Deref for Site {
    type Target = IngestSite;
    fn deref(&self) -> &IngestSite {
        &self.0
    }
}

impl std::ops::DerefMut for Site {
    fn deref_mut(&mut self) -> &mut IngestSite {
        &mut self.0
    }
}

impl Site {
    fn new(db: TestDb) -> Site {
        Site(IngestSite::new(db, INSTALLATION))
    }

    fn db(&self) -> &TestDb {
        self.0.db.as_ref().expect("the site made its database")
    }

    fn pass(&self, now: i64) -> solarhub_hub::retention::PassReport {
        let retention = Retention::new(policy());
        self.runtime
            .block_on(solarhub_hub::retention::run_pass(
                &self.database,
                &retention,
                now,
            ))
            .unwrap()
    }

    fn conn(&self) -> solarhub_hub::db::PooledConnection {
        self.database.get().unwrap()
    }

    fn rollups(&self) -> RollupRows {
        self.0.rollups("home")
    }

    /// The size of the SQLite file and its write-ahead log, in bytes.
    fn file_bytes(&self) -> Option<u64> {
        let path = self.db().url.sqlite_path()?;
        let wal = path.with_extension("db-wal");
        Some(
            std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
                + std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0),
        )
    }
}

/// Every device at `ts`: the inverter's counter grows 1 kWh an hour from `start`; the pack reports
/// its battery and both cells.
fn readings_at(ts: i64, start: i64) -> Vec<IncomingReading> {
    let n = ((ts - start) / CADENCE) as f64;
    let minute = (ts / MINUTE % 60) as f64;
    let fields = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    vec![
        IncomingReading {
            device_id: "inv1".into(),
            adapter_id: "inv1.adapter".into(),
            ts,
            fields: fields(&[
                ("pv_power_w", 1000.0),
                ("load_power_w", 400.0 + minute),
                ("pv_energy_total_wh", 10_000.0 + n * WH_PER_SAMPLE),
            ]),
            ..IncomingReading::default()
        },
        IncomingReading {
            device_id: "grid1".into(),
            adapter_id: "grid1.adapter".into(),
            ts,
            fields: fields(&[
                ("power_w", 200.0),
                ("voltage_v", 230.0 + minute / 10.0),
                (
                    "import_total_wh",
                    5_000.0 + n * 200.0 * CADENCE as f64 / HOUR as f64,
                ),
            ]),
            ..IncomingReading::default()
        },
        IncomingReading {
            device_id: "pack1".into(),
            adapter_id: "pack1.adapter".into(),
            ts,
            fields: fields(&[("power_w", -300.0), ("soc_pct", 50.0 + minute / 2.0)]),
            batteries: vec![IncomingBattery {
                index: 1,
                fields: fields(&[("voltage_v", 52.0), ("soc_pct", 50.0)]),
                cells: vec![
                    (1, fields(&[("voltage_v", 3.30)])),
                    (2, fields(&[("voltage_v", 3.31)])),
                ],
                ..IncomingBattery::default()
            }],
            ..IncomingReading::default()
        },
    ]
}

#[derive(diesel::QueryableByName, Debug, Clone, PartialEq)]
pub(crate) struct AggregateRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    device: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    ts: i64,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    samples: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    value: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    counter: Option<f64>,
}

/// Every aggregate row from `from` on (a few columns of each table): the 5-minute ones, and the
/// hourly ones of battery units and cells, in key order.
pub(crate) fn aggregates(conn: &mut DbConnection, from: i64) -> Vec<AggregateRow> {
    let mut rows = Vec::new();
    for (table, device, value, counter) in [
        (
            "energy_samples_5m",
            "inverter_id",
            "load_power_w",
            "pv_energy_total_wh",
        ),
        (
            "meter_samples_5m",
            "meter_id",
            "voltage_v",
            "import_total_wh",
        ),
        ("battery_bank_samples_5m", "pack_id", "soc_pct", "power_w"),
        (
            "battery_unit_samples_1h",
            "battery_id",
            "voltage_avg_v",
            "soc_min_pct",
        ),
        (
            "battery_cell_samples_1h",
            "cell_id",
            "voltage_max_v",
            "voltage_min_v",
        ),
    ] {
        rows.extend(
            diesel::sql_query(format!(
                "SELECT {device} AS device, ts, samples, {value} AS value, {counter} AS counter \
                 FROM {table} WHERE ts >= {from} ORDER BY {device}, ts"
            ))
            .load::<AggregateRow>(conn)
            .unwrap(),
        );
    }
    rows
}

#[derive(diesel::QueryableByName)]
struct Span {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    rows: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    oldest: Option<i64>,
}

/// How many rows `table` holds at or after `from`, and its oldest row.
fn span(conn: &mut DbConnection, table: &str, from: i64) -> (i64, Option<i64>) {
    let rows: i64 = diesel::sql_query(format!(
        "SELECT COUNT(*) AS rows, MIN(ts) AS oldest FROM {table} WHERE ts >= {from}"
    ))
    .load::<Span>(conn)
    .unwrap()[0]
        .rows;
    let oldest = diesel::sql_query(format!(
        "SELECT COUNT(*) AS rows, MIN(ts) AS oldest FROM {table}"
    ))
    .load::<Span>(conn)
    .unwrap()[0]
        .oldest;
    (rows, oldest)
}

/// The inverter's PV energy of the local hour starting at `start`, from its hour row.
fn pv_kwh_of_hour(rows: &RollupRows, start: i64) -> Option<f64> {
    rows.inverter_hours
        .iter()
        .find(|row| row.bucket_start == start)
        .and_then(|row| row.solar_kwh)
}

fn a_year_with_retention(db: TestDb) {
    let mut site = Site::new(db);
    let policy = policy();
    // The year ends at the last whole 10 minutes before now, so no sample lies in the future.
    let end = (solarhub_hub::db::now_ms() / CADENCE) * CADENCE - CADENCE;
    let start = end - 365 * DAY;
    let month = 365 * DAY / 12;
    let mut sizes: Vec<(u32, u64, u64)> = Vec::new();
    let mut next = start;
    for m in 1..=12u32 {
        let now = if m == 12 {
            end
        } else {
            start + i64::from(m) * month
        };
        let mut readings = Vec::new();
        while next <= now {
            readings.extend(readings_at(next, start));
            next += CADENCE;
        }
        site.send(readings);
        site.roll();

        // Month 6: a late sample of 40 days ago waits for the roller while retention runs (the
        // samples around it must stay for its roll); month 8: a recompute claims the samples
        // from 50 days ago on.
        let late = (now - 40 * DAY) / CADENCE * CADENCE + 5 * MINUTE;
        let claim = RecomputeClaim::new("home");
        if m == 6 {
            let mut late_readings = readings_at(late, start);
            late_readings.truncate(1);
            let counter = 10_000.0 + ((late - start) as f64 / CADENCE as f64) * WH_PER_SAMPLE;
            late_readings[0]
                .fields
                .insert("pv_energy_total_wh".into(), counter);
            site.send(late_readings);
        }
        // What the claim covers: from a day before its start, and the counter reach before that.
        let claimed_from = now - 50 * DAY - DAY - Settings::default().reach_ms();
        let claimed_before = span(&mut site.conn(), "energy_samples", claimed_from).0;
        if m == 8 {
            claim.renew(&mut site.conn(), now - 50 * DAY).unwrap();
        }

        let rollups_before = site.rollups();
        let aggregates_kept_from = days(90).cutoff(now).unwrap();
        let aggregates_before = aggregates(&mut site.conn(), aggregates_kept_from);
        // What is compared is there: a point per device (three) per sample time in the period.
        let first = ((aggregates_kept_from - start).max(0) as u64).div_ceil(CADENCE as u64) as i64;
        let sample_times = (now - start) / CADENCE - first + 1;
        // And the hourly ones: the battery and its two cells, every hour.
        let hours = sample_times * CADENCE / HOUR - 1;
        assert!(
            aggregates_before.len() as i64 >= 3 * sample_times + 3 * hours,
            "month {m}: {} aggregates for {sample_times} sample times",
            aggregates_before.len()
        );
        let raw_before: BTreeMap<SampleTable, i64> = SampleTable::ALL
            .into_iter()
            .map(|table| {
                let from = policy.keep(table).cutoff(now).unwrap();
                (table, span(&mut site.conn(), table.name(), from).0)
            })
            .collect();
        let size_before = site.file_bytes();

        let report = site.pass(now);

        // Rollups are kept forever and unchanged; the aggregates in their period unchanged.
        assert_eq!(site.rollups(), rollups_before, "month {m}: rollups changed");
        assert_eq!(
            aggregates(&mut site.conn(), aggregates_kept_from),
            aggregates_before,
            "month {m}: aggregates changed"
        );
        for table in SampleTable::ALL {
            let cutoff = policy.keep(table).cutoff(now).unwrap();
            let (kept, oldest) = span(&mut site.conn(), table.name(), cutoff);
            assert_eq!(
                kept,
                raw_before[&table],
                "month {m}: {} lost rows inside its period",
                table.name()
            );
            let held_back = table.feeds_rollups() && (m == 6 || m == 8);
            if !held_back && let Some(oldest) = oldest {
                assert!(
                    oldest >= cutoff,
                    "month {m}: {} still holds a row {} h older than its period",
                    table.name(),
                    (cutoff - oldest) / HOUR
                );
            }
        }
        if m == 6 {
            // Nothing the late sample's roll reads was deleted: every sample from 12 hours (the
            // counter reach) before it to 2 hours after it is still there.
            let reach = Settings::default().reach_ms();
            let (around, _) = span(&mut site.conn(), "energy_samples", late - reach);
            let (newer, _) = span(&mut site.conn(), "energy_samples", late + 2 * HOUR);
            let expected = (late + 2 * HOUR - (late - reach)) / CADENCE + 1;
            assert_eq!(around - newer, expected, "samples near the late one went");
            site.roll();
            // Its hour still has exactly its kilowatt-hour: the neighbours were there.
            let hour = late / HOUR * HOUR;
            let rows = site.rollups();
            let kwh = pv_kwh_of_hour(&rows, hour).expect("the late sample's hour row");
            assert!(
                (kwh - 1.0).abs() < 1e-9,
                "the late sample's hour has {kwh} kWh"
            );
        }
        if m == 8 {
            assert_eq!(
                span(&mut site.conn(), "energy_samples", claimed_from).0,
                claimed_before,
                "retention deleted samples a running recompute claimed"
            );
            claim.release(&mut site.conn()).unwrap();
            site.pass(now);
            let (_, oldest) = span(&mut site.conn(), "energy_samples", 0);
            assert!(
                oldest.unwrap() >= now - 30 * DAY,
                "released samples were kept"
            );
        }
        if let (Some(before), Some(after)) = (size_before, site.file_bytes()) {
            sizes.push((m, before, after));
        }
        assert!(
            m == 1 || report.total_deleted() > 0,
            "month {m}: nothing deleted"
        );
        if site.file_bytes().is_some() && report.total_deleted() > 0 {
            assert_eq!(
                report.free_pages,
                Some(0),
                "month {m}: the file kept free pages"
            );
        }
    }

    // A late sample in an hour whose neighbours are gone changes nothing: the hour is frozen.
    let before = site.rollups();
    let frozen_late = end - 60 * DAY + 5 * MINUTE;
    let mut late = readings_at(frozen_late, start);
    late.truncate(1);
    site.send(late);
    let report = site.roll();
    assert!(report.frozen_hours > 0, "{report:?}");
    assert_eq!(site.rollups(), before, "a frozen hour was rolled again");
    // So does a full recompute: the hours whose samples went keep their rows.
    let recomputed = site.recompute("home");
    // From the frozen late sample (the oldest sample now) to 30 days ago.
    assert!(recomputed.frozen_hours >= 29 * 24, "{recomputed:?}");
    assert_eq!(site.rollups(), before, "recompute changed frozen hours");
    // The year's energy is all there: one kWh in each hour (the first hour aside).
    let hours = &before.inverter_hours;
    assert!(
        hours.len() as i64 >= 365 * 24 - 1,
        "{} hour rows",
        hours.len()
    );
    let ones = hours
        .iter()
        .filter(|row| row.solar_kwh.is_some_and(|kwh| (kwh - 1.0).abs() < 1e-9))
        .count();
    assert!(
        ones as i64 >= 365 * 24 - 2,
        "{ones} of {} hours have their kWh",
        hours.len()
    );

    // A day of samples from before the year, arriving now (older history imported late): its
    // hours have no rows, so the roller makes them from what arrived; the next pass deletes the
    // samples and keeps the rows.
    let old_day = (end - 400 * DAY) / HOUR * HOUR;
    let mut readings = Vec::new();
    let mut ts = old_day;
    while ts < old_day + DAY {
        readings.extend(readings_at(ts, old_day));
        ts += CADENCE;
    }
    site.send(readings);
    let report = site.roll();
    assert!(report.hours >= 24, "{report:?}");
    let rows = site.rollups();
    for hour in 0..23 {
        let kwh = pv_kwh_of_hour(&rows, old_day + hour * HOUR);
        assert!(
            kwh.is_some_and(|kwh| (kwh - 1.0).abs() < 1e-9),
            "hour {hour} of the late day: {kwh:?}"
        );
    }
    site.pass(end);
    let (_, oldest) = span(&mut site.conn(), "energy_samples", 0);
    assert!(
        oldest.unwrap() >= end - 30 * DAY,
        "the late day's samples stayed"
    );
    assert_eq!(
        site.rollups(),
        rows,
        "the late day's rows went with its samples"
    );

    if !sizes.is_empty() {
        for (m, before, after) in &sizes {
            eprintln!(
                "month {m:2}: SQLite file {:6.2} MB before the pass, {:6.2} MB after",
                *before as f64 / 1e6,
                *after as f64 / 1e6
            );
        }
        // Once the periods are full (the aggregates' 90 days), what a month brings is what a
        // pass deletes: the file grows by its rollup rows alone, a small part of a month's
        // samples.
        let after = |m: u32| sizes.iter().find(|s| s.0 == m).unwrap().2 as f64;
        let month_of_samples = sizes[0].1 as f64;
        let late_growth = (after(12) - after(5)) / 7.0;
        eprintln!(
            "a month of samples: {:.2} MB; growth per month once full: {:.2} MB",
            month_of_samples / 1e6,
            late_growth / 1e6
        );
        assert!(
            late_growth < 0.25 * month_of_samples,
            "the file grows {late_growth} bytes a month with retention on"
        );
    }
}

on_both_backends!(a_year_with_retention);

/// The served hub runs the job itself and `ServerInfo` shows each table's period, its oldest row
/// and how far retention deleted; the `serve` command refuses a bad setting before it opens
/// anything, naming the flag.
fn the_served_hub_deletes_and_says_how_far_back(db: TestDb) {
    use solarhub_proto::v1::GetServerInfoRequest;
    use solarhub_proto::v1::server_info_service_client::ServerInfoServiceClient;

    let mut site = Site::new(db);
    let end = (solarhub_hub::db::now_ms() / CADENCE) * CADENCE - CADENCE;
    let start = end - 40 * DAY;
    let mut readings = Vec::new();
    let mut ts = start;
    while ts <= end {
        readings.extend(readings_at(ts, start));
        ts += CADENCE;
    }
    site.send(readings);
    site.roll();
    let hours_before = site.rollups().inverter_hours.len();
    let cells_before = span(&mut site.conn(), "battery_cell_samples", 0).0;

    let metrics_port = common::free_port();
    let hub = common::RunningHub::start_with(
        site.db(),
        solarhub_hub::server::ServeOptions {
            retention: Some(Retention {
                every: Duration::from_millis(500),
                ..Retention::new(policy())
            }),
            metrics_listen: Some(format!("127.0.0.1:{metrics_port}").parse().unwrap()),
            ..solarhub_hub::server::ServeOptions::default()
        },
    );
    let started = solarhub_hub::db::now_ms();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let info = loop {
        let info = hub
            .runtime
            .block_on(
                ServerInfoServiceClient::new(hub.channel.clone())
                    .get_server_info(GetServerInfoRequest {}),
            )
            .unwrap()
            .into_inner();
        // A pass marks every table it went through, the aggregates (kept 90 days) last.
        if info
            .sample_tables
            .iter()
            .all(|t| t.deleted_before.is_some())
        {
            break info;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the served hub deleted nothing: {info:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let names: Vec<&str> = info
        .sample_tables
        .iter()
        .map(|t| t.table.as_str())
        .collect();
    assert_eq!(
        names,
        SampleTable::ALL.map(SampleTable::name).to_vec(),
        "every table, raw first"
    );
    let done = solarhub_hub::db::now_ms();
    for table in &info.sample_tables {
        let expected = policy().keep(SampleTable::parse(&table.table).unwrap());
        let Keep::For(period) = expected else {
            panic!("{} kept forever", table.table)
        };
        assert_eq!(
            table.keep.as_ref().map(|k| k.seconds),
            Some(period.as_secs() as i64),
            "{}",
            table.table
        );
        // The array sampler writes nothing for an array whose inverter went quiet 10 minutes
        // ago: its table may be empty.
        let Some(oldest) = table.oldest.as_ref().map(solarhub_proto::time::millis) else {
            assert_eq!(table.table, "array_samples");
            continue;
        };
        let keep_ms = period.as_millis() as i64;
        // Raw tables went back to their period (cells 7 days, units 14, the rest 30); the 40
        // days of aggregates are all inside their 90.
        assert!(
            oldest >= started - keep_ms && oldest <= done - keep_ms + HOUR || keep_ms > 40 * DAY,
            "{}: oldest row {} h before now",
            table.table,
            (done - oldest) / HOUR
        );
        let deleted = solarhub_proto::time::millis(table.deleted_before.as_ref().unwrap());
        assert!(deleted >= started - keep_ms, "{}", table.table);
    }
    // The rollups of the deleted days are all still there.
    assert!(site.rollups().inverter_hours.len() >= hours_before);
    // And their 5-minute points, through the API: one per sample (every 10 minutes), the samples
    // of the days retention deleted included.
    five_minute_points_outlive_the_samples(&hub, start, end);
    // The passes are counted, and the rows they deleted by table: what was gone before the
    // scrape, but for the two cell rows of a sample that aged out during a pass still running
    // (it counts them when it ends), and no more than is gone after it.
    let cells_left = |site: &Site| span(&mut site.conn(), "battery_cell_samples", 0).0;
    let gone_before = cells_before - cells_left(&site);
    let scrape = crate::operations::scrape(metrics_port).expect("the hub serves /metrics");
    let gone_after = cells_before - cells_left(&site);
    let counted = |name: &str, labels: &[(&str, &str)]| {
        crate::operations::value(&scrape, name, labels).unwrap_or(0.0)
    };
    assert!(counted("solarhub_hub_retention_passes_total", &[]) >= 1.0);
    let cells_counted = counted(
        "solarhub_hub_retention_deleted_rows_total",
        &[("table", "battery_cell_samples")],
    ) as i64;
    assert!(
        cells_counted >= gone_before - 2 && cells_counted <= gone_after,
        "{cells_counted} cell rows counted, {gone_before}..{gone_after} deleted"
    );
    drop(hub);

    let refused = common::hub_binary()
        .args([
            "--database-url",
            &site.db().url_arg(),
            "serve",
            "--retention",
            "battery_cell_samples=14d,cells=7d",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("error: --retention: \"cells=7d\": no sample table \"cells\""),
        "{stderr}"
    );
}

on_both_backends!(the_served_hub_deletes_and_says_how_far_back);

/// `HistoryService/GetFiveMinuteSeries` over the 40 days `the_served_hub_deletes…` streamed: a
/// point for every sample, those of the deleted days too, with the values they were made from;
/// bad requests say which field.
fn five_minute_points_outlive_the_samples(hub: &common::RunningHub, start: i64, end: i64) {
    use solarhub_proto::tonic::Code;
    use solarhub_proto::v1::history_service_client::HistoryServiceClient;
    use solarhub_proto::v1::{FiveMinuteSeriesRequest, TimeRange};

    let ask = |request: FiveMinuteSeriesRequest| {
        hub.runtime.block_on(
            HistoryServiceClient::new(hub.channel.clone()).get_five_minute_series(request),
        )
    };
    let range = |from: i64, to: i64| {
        Some(TimeRange {
            from: Some(solarhub_proto::time::timestamp(from)),
            to: Some(solarhub_proto::time::timestamp(to)),
        })
    };
    let series = ask(FiveMinuteSeriesRequest {
        inverter_id: "inv1".into(),
        range: range(start, end + 1),
        ..FiveMinuteSeriesRequest::default()
    })
    .unwrap()
    .into_inner();
    let expected = ((end - start) / CADENCE + 1) as usize;
    assert_eq!(series.points.len(), expected, "a point per sample");
    for (n, point) in series.points.iter().enumerate() {
        let ts = start + n as i64 * CADENCE;
        assert_eq!(point.start, Some(solarhub_proto::time::timestamp(ts)));
        assert_eq!(point.samples, 1);
        assert_eq!(point.fields.get("pv_power_w"), Some(&1000.0));
        let counter = 10_000.0 + n as f64 * WH_PER_SAMPLE;
        let stored = point.fields["pv_energy_total_wh"];
        assert!((stored - counter).abs() < 1e-6, "{stored} at {n}");
        // A field the inverter never reported is absent, not 0.
        assert!(!point.fields.contains_key("grid_power_w"));
    }
    let meter = ask(FiveMinuteSeriesRequest {
        meter_id: "grid1".into(),
        range: range(start, start + DAY),
        ..FiveMinuteSeriesRequest::default()
    })
    .unwrap()
    .into_inner();
    assert_eq!(meter.points.len(), (DAY / CADENCE) as usize);
    assert_eq!(meter.points[0].fields.get("power_w"), Some(&200.0));

    let code = |request: FiveMinuteSeriesRequest| ask(request).unwrap_err();
    let refused = code(FiveMinuteSeriesRequest {
        range: range(start, end),
        ..FiveMinuteSeriesRequest::default()
    });
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().starts_with("inverter_id:"), "{refused:?}");
    let refused = code(FiveMinuteSeriesRequest {
        pack_id: "pack1".into(),
        range: range(end - 400 * DAY, end),
        ..FiveMinuteSeriesRequest::default()
    });
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(refused.message(), "range: at most 366 days");
    let refused = code(FiveMinuteSeriesRequest {
        pack_id: "pack1".into(),
        ..FiveMinuteSeriesRequest::default()
    });
    assert_eq!(refused.message(), "range: set both from and to");
    let refused = code(FiveMinuteSeriesRequest {
        inverter_id: "nope".into(),
        range: range(start, end),
        ..FiveMinuteSeriesRequest::default()
    });
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
}

/// The old app's file, upgraded in place, cannot give space back (SQLite decides that when a file
/// is made); `compact` converts it, keeping every row.
#[test]
fn compact_makes_an_upgraded_file_give_space_back() {
    use crate::legacy_fixture;

    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        auto_vacuum: i32,
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    let expected = legacy_fixture::build(
        &file,
        &legacy_fixture::KARACHI,
        legacy_fixture::Flavour::Current,
    );
    let run = |args: &[&str]| {
        let output = common::hub_binary()
            .args(["--database-url", file.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let mode = || {
        let mut conn = solarhub_hub::db::DatabaseUrl::Sqlite(file.clone())
            .connect()
            .unwrap();
        diesel::sql_query("PRAGMA auto_vacuum")
            .load::<Mode>(&mut conn)
            .unwrap()[0]
            .auto_vacuum
    };
    run(&["migrate", "--timezone", "Asia/Karachi"]);
    assert_eq!(mode(), 0, "the old app's file was made without auto_vacuum");
    let rows = |file: &std::path::Path| {
        let mut conn = solarhub_hub::db::DatabaseUrl::Sqlite(file.to_owned())
            .connect()
            .unwrap();
        solarhub_hub::db::introspect::row_count(&mut conn, "energy_samples").unwrap()
    };
    assert_eq!(rows(&file) as usize, expected.energy.len());

    let said = run(&["compact"]);
    assert!(said.contains("pages before,"), "{said}");
    assert!(
        said.contains("deleted samples now give their space back"),
        "{said}"
    );
    assert_eq!(mode(), 2, "INCREMENTAL after compact");
    assert_eq!(rows(&file) as usize, expected.energy.len());
}
