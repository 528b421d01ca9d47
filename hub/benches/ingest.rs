//! Hub ingest against what the database can take (DESIGN §8): samples streamed through the hub's
//! gRPC `StreamTelemetry` (batches of 200 as the collector sends, a collector token checked as
//! `serve` requires by default, every batch committed with its seq) against the same rows written
//! straight into the same schema in the same run:
//! - Postgres: one binary `COPY` per round (target: the hub at least 0.5 of its rate);
//! - SQLite: a bare prepared single-row `INSERT` loop in one transaction (target: at least 0.7).
//!
//! The baseline rows are the rows the hub stored, read back, so both write the same bytes. Each
//! round streams then copies; rates are medians over the rounds.
//!
//! `cargo bench -p solarhub-hub --bench ingest`. `SOLARHUB_BENCH_SAMPLES` (default 20000) and
//! `SOLARHUB_BENCH_ROUNDS` (default 3); Postgres when `SOLARHUB_TEST_DATABASE_URL` names a server.

#[path = "support/report.rs"]
mod report;
#[path = "support/telemetry.rs"]
mod telemetry;

use std::time::{Duration, Instant};

use report::{Figure, Target, median};
use solarhub_hub::db::samples::{EnergySample, SampleRow};
use solarhub_hub::db::{self, Database, DatabaseUrl, DbConnection, admin};
use telemetry::{BATCH, streamed, ts_ms};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn main() -> anyhow::Result<()> {
    let samples = env("SOLARHUB_BENCH_SAMPLES", 20_000);
    let rounds = env("SOLARHUB_BENCH_ROUNDS", 3);
    let dir = tempfile::tempdir()?;
    run(
        "sqlite",
        DatabaseUrl::Sqlite(dir.path().join("hub.db")),
        DatabaseUrl::Sqlite(dir.path().join("baseline.db")),
        samples,
        rounds,
    )?;
    if let Ok(admin_url) = std::env::var("SOLARHUB_TEST_DATABASE_URL") {
        let names = ["hub", "baseline"]
            .map(|n| format!("solarhub_bench_ingest_{}_{n}", std::process::id()));
        let result = (|| {
            let hub = admin::create_postgres_database(&admin_url, &names[0])?;
            let baseline = admin::create_postgres_database(&admin_url, &names[1])?;
            run(
                "postgres",
                DatabaseUrl::Postgres(hub),
                DatabaseUrl::Postgres(baseline),
                samples,
                rounds,
            )
        })();
        for name in &names {
            let _ = admin::drop_postgres_database(&admin_url, name);
        }
        result?;
    } else {
        println!("postgres: skipped (SOLARHUB_TEST_DATABASE_URL is not set)");
    }
    Ok(())
}

/// A migrated database with the demo installation, its adapters assigned to `bench`.
fn installation(url: DatabaseUrl) -> anyhow::Result<Database> {
    let database = Database::open(url)?;
    db::run_migrations(&mut *database.get()?)?;
    solarhub_hub::demo::install(&database, "bench", None)?;
    Ok(database)
}

fn run(
    backend: &str,
    hub_url: DatabaseUrl,
    baseline_url: DatabaseUrl,
    samples: usize,
    rounds: usize,
) -> anyhow::Result<()> {
    let hub_db = installation(hub_url)?;
    let baseline_db = installation(baseline_url)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let client = telemetry::serve_ingest_only(&runtime, &hub_db)?;
    // Warm-up: the connection, the hub's caches, the first pages of the database.
    runtime.block_on(streamed(client.clone(), 1, 0, 2 * BATCH))?;
    let mut next_seq = 3;
    let mut hub_rates = Vec::new();
    let mut baseline_rates = Vec::new();
    for round in 0..rounds {
        let first = 1_000_000 + (round * samples) as i64;
        let took = runtime.block_on(streamed(client.clone(), next_seq, first, samples))?;
        next_seq += samples.div_ceil(BATCH) as u64;
        hub_rates.push(samples as f64 / took.as_secs_f64());

        // The same rows, as the hub stored them.
        let (from, to) = (ts_ms(first), ts_ms(first + samples as i64 - 1));
        let rows = EnergySample::stored(&mut *hub_db.get()?, &["powdrive1".into()], from, to)?;
        anyhow::ensure!(
            rows.len() == samples,
            "the hub stored {} of {samples}",
            rows.len()
        );
        let took = write_directly(&mut *baseline_db.get()?, &rows)?;
        baseline_rates.push(samples as f64 / took.as_secs_f64());
    }
    let rows = db::introspect::row_count(&mut *baseline_db.get()?, "energy_samples")?;
    anyhow::ensure!(
        rows == (rounds * samples) as i64,
        "the baseline wrote {rows} rows"
    );
    let (baseline_is, target) = match backend {
        "postgres" => ("one binary COPY of the same rows", Target::AtLeast(0.5)),
        _ => (
            "a prepared single-row INSERT loop in one transaction",
            Target::AtLeast(0.7),
        ),
    };
    println!(
        "{backend}: {samples} samples x {rounds} rounds, streamed in batches of {BATCH} with a collector token"
    );
    Figure {
        name: &format!("ingest.streamed.{backend}"),
        figure: median(hub_rates),
        baseline: median(baseline_rates),
        unit: "samples/s",
        baseline_is,
        target,
    }
    .print();
    Ok(())
}

/// The baseline: `rows` written into the same table without the hub, in one transaction.
fn write_directly(conn: &mut DbConnection, rows: &[EnergySample]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    solarhub_hub::db::samples::write_energy_samples_plainly(conn, rows)?;
    Ok(started.elapsed())
}
