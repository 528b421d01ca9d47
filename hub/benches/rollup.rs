//! The cost of rolling one late hour against a full recompute (DESIGN §8: at most 1/100): 30 days
//! of 10-second samples of an inverter and a grid meter with one hour missing are rolled in full;
//! then the missing hour arrives (as ingest stores it, with its pending range) and the roller
//! rolls what it touches; then the whole 30 days are recomputed again. Both measured in the same
//! run on the same database. SQLite always; Postgres too when `SOLARHUB_TEST_DATABASE_URL` names a
//! server (a database is created for the run and dropped after it).
//!
//! (A year of hourly rows through the API is the `history` bench.)
//!
//! `cargo bench -p solarhub-hub --bench rollup`; `SOLARHUB_BENCH_DAYS` sets the span (default 30).

#[path = "support/report.rs"]
mod report;

use std::time::Instant;

use report::{Figure, Target};

use solarhub_hub::db::rollups::{self, Pending};
use solarhub_hub::db::samples::{self, EnergySample, MeterSample};
use solarhub_hub::db::{self, Database, DatabaseUrl, admin, in_transaction};
use solarhub_hub::rollup::Settings;

const STEP_MS: i64 = 10_000;
const HOUR_MS: i64 = 3_600_000;

fn main() -> anyhow::Result<()> {
    let days: i64 = std::env::var("SOLARHUB_BENCH_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir()?;
    run(
        "sqlite",
        DatabaseUrl::Sqlite(dir.path().join("bench.db")),
        days,
    )?;
    if let Ok(admin_url) = std::env::var("SOLARHUB_TEST_DATABASE_URL") {
        let name = format!("solarhub_bench_rollup_{}", std::process::id());
        let url = admin::create_postgres_database(&admin_url, &name)?;
        let result = run("postgres", DatabaseUrl::Postgres(url), days);
        admin::drop_postgres_database(&admin_url, &name)?;
        result?;
    } else {
        println!("postgres: skipped (SOLARHUB_TEST_DATABASE_URL is not set)");
    }
    Ok(())
}

fn inverter(ts: i64) -> EnergySample {
    let pv = (((ts / 1000) % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU)
        .sin()
        .max(0.0)
        * 5000.0;
    EnergySample {
        inverter_id: "powdrive1".into(),
        ts,
        array_id: Some("array1".into()),
        system_id: "home".into(),
        pv_power_w: Some(pv),
        load_power_w: Some(900.0),
        grid_power_w: Some(900.0 - pv),
        battery_power_w: Some(100.0),
        battery_soc_pct: Some(60.0),
        ..EnergySample::default()
    }
}

fn meter(ts: i64) -> MeterSample {
    MeterSample {
        meter_id: "grid_meter_1".into(),
        ts,
        system_id: "home".into(),
        power_w: Some(300.0),
        import_total_wh: Some(ts as f64 / HOUR_MS as f64 * 300.0),
        ..MeterSample::default()
    }
}

fn store(database: &Database, times: &[i64]) -> anyhow::Result<()> {
    let mut conn = database.get()?;
    for chunk in times.chunks(20_000) {
        in_transaction(&mut conn, |conn| -> Result<(), db::DbError> {
            let energy: Vec<EnergySample> = chunk.iter().map(|ts| inverter(*ts)).collect();
            let meters: Vec<MeterSample> = chunk.iter().map(|ts| meter(*ts)).collect();
            samples::insert_energy_samples(conn, &energy)?;
            samples::insert_meter_samples(conn, &meters)?;
            Ok(())
        })?;
    }
    Ok(())
}

fn run(backend: &str, url: DatabaseUrl, days: i64) -> anyhow::Result<()> {
    let database = Database::open(url)?;
    db::run_migrations(&mut *database.get()?)?;
    solarhub_hub::demo::install(&database, "bench", None)?;
    let start = chrono::Utc::now().timestamp_millis() / HOUR_MS * HOUR_MS - days * 24 * HOUR_MS;
    let end = start + days * 24 * HOUR_MS;
    // The late hour: the middle of the span, held back.
    let late_from = start + days / 2 * 24 * HOUR_MS + 13 * HOUR_MS;
    let late_to = late_from + HOUR_MS;
    let (late, on_time): (Vec<i64>, Vec<i64>) = (start..end)
        .step_by(STEP_MS as usize)
        .partition(|ts| (late_from..late_to).contains(ts));
    store(&database, &on_time)?;
    let settings = Settings::default();
    let mut conn = database.get()?;
    solarhub_hub::rollup::recompute(&mut conn, "home", None, settings)?;

    // The late hour arrives: stored with its pending range, as ingest does, then rolled.
    store(&database, &late)?;
    rollups::add_pending(
        &mut conn,
        &["powdrive1", "grid_meter_1"].map(|device| Pending {
            device_id: device.into(),
            system_id: "home".into(),
            from_ts: late_from,
            to_ts: late_to - STEP_MS,
        }),
    )?;
    // What the roller does for each system with pending ranges: one transaction.
    let began = Instant::now();
    let (rolled, queries) = db::count_queries(&mut conn, |conn| {
        let pending = solarhub_hub::rollup::pending_by_system(conn)?;
        in_transaction(conn, |conn| {
            solarhub_hub::rollup::incremental::roll_system(
                conn,
                "home",
                &pending["home"],
                settings,
                Default::default(),
            )
            .map(|rolled| rolled.report)
        })
    });
    let rolled = rolled?;
    let incremental = began.elapsed();

    let began = Instant::now();
    let full =
        solarhub_hub::rollup::recompute(&mut conn, "home", None, settings)?.unwrap_or_default();
    let recompute = began.elapsed();
    let samples = (on_time.len() + late.len()) * 2;
    println!(
        "{backend}: late hour rolled in {incremental:.2?} ({} hours, {} days, {} rows, {queries} statements)",
        rolled.hours, rolled.days, rolled.rows
    );
    println!(
        "{backend}: full recompute of {days} days ({samples} samples) in {recompute:.2?} ({} hours, {} rows)",
        full.hours, full.rows
    );
    Figure {
        name: &format!("rollup.late_hour.{backend}"),
        figure: incremental.as_secs_f64() * 1000.0,
        baseline: recompute.as_secs_f64() * 1000.0,
        unit: "ms",
        baseline_is: "a full recompute of the same days",
        target: Target::AtMost(0.01),
    }
    .print();
    Ok(())
}
