//! How soon a watcher sees a commit (DESIGN §8: under 50 ms), on the hub that committed it and on
//! another hub of the same Postgres database (which hears of it through `NOTIFY`): two hubs serve
//! the demo installation, one `WatchSystem` stream on each, and 40 batches of one powdrive reading
//! go through hub A one after another; each time is from the `SendBatch` call until the stream
//! shows the reading. The figure is the other hub's median, the baseline the committing hub's.
//!
//! Postgres only (a SQLite file has one hub): `SOLARHUB_TEST_DATABASE_URL` names the server, a
//! database is created for the run and dropped after it.
//! `cargo bench -p solarhub-hub --bench watch`. `SOLARHUB_BENCH_COMMITS` sets the commits
//! (default 40).

#[path = "support/report.rs"]
mod report;

use std::time::{Duration, Instant};

use report::{Figure, Target, median};
use solarhub_hub::db::{self, Database, DatabaseUrl, admin};
use solarhub_hub::server::ServeOptions;
use solarhub_proto::tonic::Streaming;
use solarhub_proto::tonic::transport::Channel;
use solarhub_proto::v1::collector_service_client::CollectorServiceClient;
use solarhub_proto::v1::live_service_client::LiveServiceClient;
use solarhub_proto::v1::{DeviceReading, TelemetryBatch, WatchSystemRequest, WatchSystemResponse};

fn main() -> anyhow::Result<()> {
    let Ok(admin_url) = std::env::var("SOLARHUB_TEST_DATABASE_URL") else {
        println!("watch: skipped (SOLARHUB_TEST_DATABASE_URL is not set; two hubs need Postgres)");
        return Ok(());
    };
    let commits: usize = std::env::var("SOLARHUB_BENCH_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
        .max(1);
    let name = format!("solarhub_bench_{}_watch", std::process::id());
    let url = admin::create_postgres_database(&admin_url, &name)?;
    let result = run(DatabaseUrl::Postgres(url), commits);
    admin::drop_postgres_database(&admin_url, &name)?;
    let (own, other) = result?;
    Figure {
        name: "watch.other_hub.postgres",
        figure: median(other),
        baseline: median(own),
        unit: "ms",
        baseline_is: "a watcher on the committing hub",
        target: Target::FigureAtMost(50.0),
    }
    .print();
    Ok(())
}

/// Serves `database` on loopback without authentication and without periodic jobs (a watcher
/// is woken by commits alone), and answers a channel to it.
async fn serve(database: &Database) -> anyhow::Result<Channel> {
    let listener = solarhub_hub::grpc::bind("127.0.0.1:0".parse()?).await?;
    let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let options = ServeOptions {
        rollup_every: None,
        array_samples_every: None,
        retention: None,
        ..ServeOptions::default()
    };
    tokio::spawn(solarhub_hub::server::serve_with(
        database.clone(),
        listener,
        options,
        std::future::pending(),
    ));
    for _ in 0..100 {
        if let Ok(channel) = Channel::from_shared(url.clone())?.connect().await {
            return Ok(channel);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the hub at {url} did not answer")
}

/// The milliseconds each commit took to show on hub A's watcher and on hub B's.
fn run(url: DatabaseUrl, commits: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let runtime = tokio::runtime::Runtime::new()?;
    let database_a = Database::open(url.clone())?;
    db::run_migrations(&mut *database_a.get()?)?;
    solarhub_hub::demo::install(&database_a, "bench", None)?;
    let database_b = Database::open(url)?;
    runtime.block_on(async {
        let channel_a = serve(&database_a).await?;
        let channel_b = serve(&database_b).await?;
        let mut watchers = Vec::new();
        for channel in [&channel_a, &channel_b] {
            let mut stream = LiveServiceClient::new(channel.clone())
                .watch_system(WatchSystemRequest {
                    system_id: "home".into(),
                })
                .await?
                .into_inner();
            stream.message().await?;
            watchers.push(stream);
        }
        let [mut on_a, mut on_b]: [Streaming<WatchSystemResponse>; 2] =
            watchers.try_into().map_err(|_| anyhow::anyhow!("two"))?;
        // Both hubs listen before the first measured commit.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut client = CollectorServiceClient::new(channel_a);
        let start = chrono::Utc::now().timestamp_millis();
        let (mut own, mut other) = (Vec::new(), Vec::new());
        for seq in 1..=commits as u64 {
            let at = start + seq as i64 * 10;
            let sent = Instant::now();
            let batch = TelemetryBatch {
                collector_id: "bench".into(),
                seq,
                readings: vec![reading(at)],
                ..TelemetryBatch::default()
            };
            let send = client.send_batch(batch);
            let watched = tokio::time::timeout(Duration::from_secs(10), async {
                tokio::join!(seen(&mut on_a, at, sent), seen(&mut on_b, at, sent))
            });
            let (answer, watched) = tokio::join!(send, watched);
            answer?;
            let (a, b) = watched.map_err(|_| anyhow::anyhow!("commit {seq} not seen in 10 s"))?;
            own.push(a?);
            other.push(b?);
        }
        anyhow::Ok((own, other))
    })
}

/// One powdrive reading at `at`.
fn reading(at: i64) -> DeviceReading {
    DeviceReading {
        device_id: "powdrive1".into(),
        adapter_id: "powdrive1.adapter".into(),
        ts: Some(solarhub_proto::time::timestamp(at)),
        fields: [("pv_power_w".to_owned(), 1500.0)].into_iter().collect(),
        ..DeviceReading::default()
    }
}

/// Milliseconds from `sent` until `stream` shows powdrive1's reading at `at`.
async fn seen(
    stream: &mut Streaming<WatchSystemResponse>,
    at: i64,
    sent: Instant,
) -> anyhow::Result<f64> {
    loop {
        let update = stream
            .message()
            .await?
            .ok_or_else(|| anyhow::anyhow!("the watch ended"))?;
        let shown = update
            .now
            .as_ref()
            .into_iter()
            .flat_map(|now| &now.arrays)
            .flat_map(|array| &array.inverters)
            .find(|inverter| inverter.inverter_id == "powdrive1")
            .and_then(|inverter| inverter.ts.as_ref())
            .map(solarhub_proto::time::millis);
        if shown == Some(at) {
            return Ok(sent.elapsed().as_secs_f64() * 1000.0);
        }
    }
}
