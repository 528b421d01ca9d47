//! Samples per second from a client into the hub's sample tables, through real gRPC and real
//! commits: batched streaming (`StreamTelemetry`, batches of 200, as the collector sends) against
//! one unary `SendBatch` call per sample, measured in the same run on the same database, and the
//! ratio (DESIGN §8: at least 20x). SQLite always; Postgres too when `SOLARHUB_TEST_DATABASE_URL`
//! names a server (a database is created for the run and dropped after it).
//!
//! `cargo bench -p solarhub-hub --bench uplink` (release build). `SOLARHUB_BENCH_SAMPLES` sets the
//! streamed sample count (default 20000); the unary run takes a tenth of it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use solarhub_hub::db::{self, Database, DatabaseUrl, admin};
use solarhub_proto::tonic::transport::Channel;
use solarhub_proto::v1::collector_service_client::CollectorServiceClient;
use solarhub_proto::v1::{DeviceReading, TelemetryBatch};

const BATCH: usize = 200;

fn main() -> anyhow::Result<()> {
    let samples: usize = std::env::var("SOLARHUB_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    run(
        "sqlite",
        DatabaseUrl::Sqlite(dir.path().join("bench.db")),
        samples,
    )?;
    if let Ok(admin_url) = std::env::var("SOLARHUB_TEST_DATABASE_URL") {
        let name = format!("solarhub_bench_{}", std::process::id());
        let url = admin::create_postgres_database(&admin_url, &name)?;
        let result = run("postgres", DatabaseUrl::Postgres(url), samples);
        admin::drop_postgres_database(&admin_url, &name)?;
        result?;
    } else {
        println!("postgres: skipped (SOLARHUB_TEST_DATABASE_URL is not set)");
    }
    Ok(())
}

fn run(backend: &str, url: DatabaseUrl, samples: usize) -> anyhow::Result<()> {
    let database = Database::open(url)?;
    db::run_migrations(&mut *database.get()?)?;
    // The demo installation, every adapter assigned to the bench's collector.
    solarhub_hub::demo::install(&database, "bench", None)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = solarhub_hub::grpc::bind("127.0.0.1:0".parse()?).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(solarhub_hub::server::serve(
            database.clone(),
            listener,
            std::future::pending(),
        ));
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        let client = CollectorServiceClient::new(channel);
        // Warm-up: connections, caches, the first pages of the database.
        streamed(client.clone(), 1, 0, 2 * BATCH).await?;

        let base = 1_000_000;
        let streamed_rate = samples as f64
            / streamed(client.clone(), 10, base, samples)
                .await?
                .as_secs_f64();
        let unary_samples = (samples / 10).max(1);
        let unary_rate = unary_samples as f64
            / unary(client, base + samples as i64, unary_samples)
                .await?
                .as_secs_f64();
        // Every sample sent is a row: the rates are of work done, not of work refused.
        let rows =
            solarhub_hub::db::introspect::row_count(&mut *database.get()?, "energy_samples")?;
        let sent = 2 * BATCH + samples + unary_samples;
        anyhow::ensure!(rows == sent as i64, "{rows} rows stored of {sent} samples sent");
        println!(
            "{backend}: streamed, batches of {BATCH}: {samples} samples, {streamed_rate:.0} samples/s"
        );
        println!(
            "{backend}: unary, one call per sample: {unary_samples} samples, {unary_rate:.0} samples/s"
        );
        println!(
            "{backend}: ratio streamed / unary: {:.1}x (target: at least 20x)",
            streamed_rate / unary_rate
        );
        anyhow::Ok(())
    })
}

/// One inverter reading with the fields a powdrive reports, at `base + i` seconds.
fn reading(i: i64) -> DeviceReading {
    let fields: HashMap<String, f64> = [
        ("pv_power_w", 4200.0),
        ("load_power_w", 1800.0),
        ("grid_power_w", -300.0),
        ("battery_power_w", 2100.0),
        ("battery_soc_pct", 64.0),
        ("battery_voltage_v", 52.1),
        ("battery_current_a", 40.3),
        ("pv_energy_total_wh", 1.0e7 + i as f64),
        ("grid_import_total_wh", 5.0e6),
        ("inverter_temp_c", 41.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v + (i % 7) as f64))
    .collect();
    // Timestamps a second apart, long past (the hub refuses times in the future).
    let ts_ms = chrono::Utc::now().timestamp_millis() - 50_000_000_000 + i * 1000;
    DeviceReading {
        device_id: "powdrive1".into(),
        adapter_id: "powdrive1.adapter".into(),
        ts: Some(solarhub_proto::time::timestamp(ts_ms)),
        fields,
        ..DeviceReading::default()
    }
}

/// Streams `count` readings from `first` in batches of [`BATCH`], numbered from `first_seq`, and
/// waits for every ack.
async fn streamed(
    mut client: CollectorServiceClient<Channel>,
    first_seq: u64,
    first: i64,
    count: usize,
) -> anyhow::Result<Duration> {
    let batches: Vec<TelemetryBatch> = (0..count)
        .step_by(BATCH)
        .enumerate()
        .map(|(n, start)| TelemetryBatch {
            collector_id: "bench".into(),
            seq: first_seq + n as u64,
            readings: (start..(start + BATCH).min(count))
                .map(|i| reading(first + i as i64))
                .collect(),
        })
        .collect();
    let expected = batches.len();
    let started = Instant::now();
    let mut acks = client
        .stream_telemetry(tokio_stream::iter(batches))
        .await?
        .into_inner();
    let mut acked = 0;
    while let Some(ack) = acks.message().await? {
        anyhow::ensure!(ack.refused.is_empty(), "refused: {:?}", ack.refused);
        acked += 1;
        if acked == expected {
            break;
        }
    }
    anyhow::ensure!(acked == expected, "{acked} of {expected} batches acked");
    Ok(started.elapsed())
}

/// One `SendBatch` call per reading, one after the other.
async fn unary(
    mut client: CollectorServiceClient<Channel>,
    first: i64,
    count: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for i in 0..count {
        let ack = client
            .send_batch(TelemetryBatch {
                collector_id: "bench".into(),
                seq: 1_000_000 + i as u64,
                readings: vec![reading(first + i as i64)],
            })
            .await?
            .into_inner();
        anyhow::ensure!(ack.refused.is_empty(), "refused: {:?}", ack.refused);
    }
    Ok(started.elapsed())
}
