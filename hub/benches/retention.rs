//! Retention against ingest (issue 17): samples streamed through the hub's gRPC `StreamTelemetry`
//! (as in the ingest bench) while a retention pass deletes a large backlog of old samples, against
//! the same stream with nothing to delete, in the same run (target: at least 0.9 of its rate).
//! Also the pass's own rate: rows deleted per second while the stream runs, against a pass over an
//! equal backlog with nothing streaming; it must outpace a hub taking 1,000 devices polled every
//! second (1,000 rows/s), so a backlog always shrinks.
//!
//! Each round streams alone, then writes a backlog (old samples, straight into the table) and
//! streams while a pass deletes it, then deletes another backlog with nothing streaming. The
//! backlog is sized so the pass outlasts the stream; the overlap is printed. Rates are medians.
//!
//! `cargo bench -p solarhub-hub --bench retention`. `SOLARHUB_BENCH_SAMPLES` (default 60000),
//! `SOLARHUB_BENCH_BACKLOG` (rows, default 100000), `SOLARHUB_BENCH_ROUNDS` (default 3); Postgres
//! when `SOLARHUB_TEST_DATABASE_URL` names a server.

#[path = "support/report.rs"]
mod report;
#[path = "support/telemetry.rs"]
mod telemetry;

use std::time::{Duration, Instant};

use report::{Figure, Target, median};
use solarhub_hub::db::samples::{EnergySample, SampleRow};
use solarhub_hub::db::{self, Database, DatabaseUrl, admin};
use solarhub_hub::retention::{Keep, Policy, Retention};
use telemetry::{BATCH, streamed, ts_ms};

const DAY_MS: i64 = 86_400_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn main() -> anyhow::Result<()> {
    let sizes = Sizes {
        samples: env("SOLARHUB_BENCH_SAMPLES", 60_000),
        backlog: env("SOLARHUB_BENCH_BACKLOG", 100_000),
        rounds: env("SOLARHUB_BENCH_ROUNDS", 3),
    };
    let dir = tempfile::tempdir()?;
    run(
        "sqlite",
        DatabaseUrl::Sqlite(dir.path().join("hub.db")),
        &sizes,
    )?;
    if let Ok(admin_url) = std::env::var("SOLARHUB_TEST_DATABASE_URL") {
        let name = format!("solarhub_bench_retention_{}", std::process::id());
        let result = admin::create_postgres_database(&admin_url, &name)
            .map_err(anyhow::Error::from)
            .and_then(|url| run("postgres", DatabaseUrl::Postgres(url), &sizes));
        let _ = admin::drop_postgres_database(&admin_url, &name);
        result?;
    } else {
        println!("postgres: skipped (SOLARHUB_TEST_DATABASE_URL is not set)");
    }
    Ok(())
}

struct Sizes {
    samples: usize,
    backlog: usize,
    rounds: usize,
}

/// Inverter samples kept 30 days at `NOW`: everything streamed stays, every backlog row goes.
fn retention() -> Retention {
    Retention::new(Policy::raw_for(Keep::For(Duration::from_secs(30 * 86_400))))
}

/// The pass's "now": 30 days after the first streamed sample, so its cutoff falls between the
/// backlogs (a year and more before) and what is streamed.
fn now() -> i64 {
    ts_ms(0) + 30 * DAY_MS
}

fn run(backend: &str, url: DatabaseUrl, sizes: &Sizes) -> anyhow::Result<()> {
    let database = Database::open(url)?;
    db::run_migrations(&mut *database.get()?)?;
    solarhub_hub::demo::install(&database, "bench", None)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let client = telemetry::serve_ingest_only(&runtime, &database)?;
    // The rows a backlog is made of: a first stream, read back as the hub stored it.
    let seed = sizes.samples.min(sizes.backlog);
    runtime.block_on(streamed(client.clone(), 1, 0, seed))?;
    let mut next_seq = 1 + seed.div_ceil(BATCH) as u64;
    let seed_rows = EnergySample::stored(
        &mut *database.get()?,
        &["powdrive1".into()],
        ts_ms(0),
        ts_ms(seed as i64 - 1),
    )?;
    anyhow::ensure!(
        seed_rows.len() == seed,
        "the hub stored {} of {seed}",
        seed_rows.len()
    );
    // A first pass makes the 5-minute aggregates of what is stored (once per system, as on a hub
    // upgraded to retention), so the timed passes only delete.
    let retention = retention();
    runtime.block_on(solarhub_hub::retention::run_pass(&database, &retention, 0))?;

    let mut backlogs = 0i64;
    let mut backlog = |database: &Database| -> anyhow::Result<usize> {
        let mut written = 0;
        while written < sizes.backlog {
            backlogs += 1;
            // A day apart per copy, from 400 days before the first streamed sample back.
            let shift = (400 + backlogs) * DAY_MS;
            let rows: Vec<EnergySample> = seed_rows
                .iter()
                .take(sizes.backlog - written)
                .map(|row| EnergySample {
                    ts: row.ts - shift,
                    ..row.clone()
                })
                .collect();
            written += db::samples::write_energy_samples_plainly(&mut *database.get()?, &rows)?;
        }
        Ok(written)
    };

    let mut alone = Vec::new();
    let mut while_deleting = Vec::new();
    let mut delete_while_streaming = Vec::new();
    let mut delete_alone = Vec::new();
    let mut overlaps = Vec::new();
    let mut first = 1_000_000i64;
    for _ in 0..sizes.rounds {
        let took = runtime.block_on(streamed(client.clone(), next_seq, first, sizes.samples))?;
        next_seq += sizes.samples.div_ceil(BATCH) as u64;
        first += sizes.samples as i64;
        alone.push(sizes.samples as f64 / took.as_secs_f64());

        let rows = backlog(&database)?;
        let (stream_took, pass_took, deleted) = runtime.block_on(async {
            let (database, retention) = (database.clone(), retention.clone());
            let pass = tokio::spawn(async move {
                let started = Instant::now();
                let report =
                    solarhub_hub::retention::run_pass(&database, &retention, now()).await?;
                anyhow::Ok((started.elapsed(), report.total_deleted()))
            });
            let stream_took = streamed(client.clone(), next_seq, first, sizes.samples).await?;
            let (pass_took, deleted) = pass.await??;
            anyhow::Ok((stream_took, pass_took, deleted))
        })?;
        next_seq += sizes.samples.div_ceil(BATCH) as u64;
        first += sizes.samples as i64;
        anyhow::ensure!(
            deleted as usize == rows,
            "the pass deleted {deleted} of {rows}"
        );
        while_deleting.push(sizes.samples as f64 / stream_took.as_secs_f64());
        delete_while_streaming.push(deleted as f64 / pass_took.as_secs_f64());
        // Both start together: the share of the stream's time the pass was running.
        overlaps.push((pass_took.as_secs_f64() / stream_took.as_secs_f64()).min(1.0));
        if pass_took < stream_took {
            println!(
                "{backend}: the pass ({:.2} s) ended before the stream ({:.2} s): raise \
                 SOLARHUB_BENCH_BACKLOG",
                pass_took.as_secs_f64(),
                stream_took.as_secs_f64()
            );
        }

        let rows = backlog(&database)?;
        let started = Instant::now();
        let report = runtime.block_on(solarhub_hub::retention::run_pass(
            &database,
            &retention,
            now(),
        ))?;
        anyhow::ensure!(report.total_deleted() as usize == rows);
        delete_alone.push(rows as f64 / started.elapsed().as_secs_f64());
    }
    // Everything streamed is still there, once.
    let kept = EnergySample::stored(
        &mut *database.get()?,
        &["powdrive1".into()],
        ts_ms(0),
        ts_ms(first),
    )?;
    anyhow::ensure!(
        kept.len() == seed + 2 * sizes.rounds * sizes.samples,
        "{} streamed rows kept",
        kept.len()
    );

    println!(
        "{backend}: {} samples streamed in batches of {BATCH} per round, a backlog of {} rows \
         deleted in transactions of {} rows, {} rounds; the pass ran during {:.0} % of the stream",
        sizes.samples,
        sizes.backlog,
        solarhub_hub::retention::BATCH_ROWS,
        sizes.rounds,
        100.0 * median(overlaps)
    );
    let streamed_alone = median(alone);
    Figure {
        name: &format!("retention.ingest_while_deleting.{backend}"),
        figure: median(while_deleting),
        baseline: streamed_alone,
        unit: "samples/s",
        baseline_is: "the same stream with nothing to delete",
        target: Target::AtLeast(0.9),
    }
    .print();
    Figure {
        name: &format!("retention.delete_while_streaming.{backend}"),
        figure: median(delete_while_streaming),
        baseline: median(delete_alone),
        unit: "rows/s",
        baseline_is: "a pass over an equal backlog with nothing streaming",
        // A pass rests nine tenths of its time; it must still outpace a hub taking 1,000
        // devices polled every second, or a backlog would never shrink.
        target: Target::FigureAtLeast(1000.0),
    }
    .print();
    Ok(())
}
