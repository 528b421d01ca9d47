//! The dashboard in headless Chromium (DESIGN §8, #27 point 5), against a hub serving the demo
//! installation on SQLite with readings sent by the bench (no simulator: the two cores are the
//! hub's and the browser's):
//!
//! - time to the first figures: from navigation to the Now page's first render, against the
//!   page's own call of `/api/systems/home/now` (the baseline: what the API costs the page);
//! - live delay: from a `SendBatch` to the Now page showing its PV, against a gRPC `WatchSystem`
//!   stream's delay for the same commits (the baseline: what the watch itself costs);
//! - page weight: every file the page loads (the page makes no other request).
//!
//! `cargo bench -p solarhub-hub --bench dashboard` (needs `chromium` and `chromedriver`).
//! `SOLARHUB_BENCH_COMMITS` sets the commits of the live delay (default 20).

#[path = "support/report.rs"]
mod report;

use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use report::{Figure, Target, median};
use serde_json::{Value, json};
use solarhub_hub::db::{self, Database, DatabaseUrl};
use solarhub_hub::http::listener::HttpListener;
use solarhub_hub::server::ServeOptions;
use solarhub_proto::tonic::transport::Channel;
use solarhub_proto::v1::collector_service_client::CollectorServiceClient;
use solarhub_proto::v1::live_service_client::LiveServiceClient;
use solarhub_proto::v1::{DeviceReading, TelemetryBatch, WatchSystemRequest};

fn main() -> anyhow::Result<()> {
    let commits: u64 = std::env::var("SOLARHUB_BENCH_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(1);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut driver = match std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            println!("dashboard: skipped (chromedriver: {error})");
            return Ok(());
        }
    };
    let dir = tempfile::tempdir()?;
    let result = run(&format!("http://127.0.0.1:{port}"), dir.path(), commits);
    let _ = driver.kill();
    result
}

fn run(driver: &str, dir: &std::path::Path, commits: u64) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let database = Database::open(DatabaseUrl::Sqlite(dir.join("hub.db")))?;
    db::run_migrations(&mut *database.get()?)?;
    solarhub_hub::demo::install(&database, "bench", None)?;
    let http = HttpListener::bind("127.0.0.1:0".parse()?)?;
    let origin = format!("http://{}", http.local_addr()?);
    runtime.block_on(async {
        let listener = solarhub_hub::grpc::bind("127.0.0.1:0".parse()?).await?;
        let grpc = format!("http://{}", listener.local_addr()?);
        tokio::spawn(solarhub_hub::server::serve_with(
            database.clone(),
            listener,
            ServeOptions {
                http: Some(http),
                array_samples_every: None,
                ..ServeOptions::default()
            },
            std::future::pending(),
        ));
        let channel = loop {
            if let Ok(channel) = Channel::from_shared(grpc.clone())?.connect().await {
                break channel;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut client = CollectorServiceClient::new(channel.clone());
        let start = chrono::Utc::now().timestamp_millis();
        send(&mut client, 1, start, 1000.0).await?;

        let browser = browser(driver).await?;
        // Time to the first figures, five loads; the baseline is the page's own API call.
        let (mut first, mut api) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            browser.goto("about:blank").await?;
            browser.goto(&format!("{origin}/#/now")).await?;
            let timings = wait(&browser, "return (() => { const m = performance.getEntriesByName('first-figures')[0]; \
                const r = performance.getEntriesByType('resource').find(e => e.name.endsWith('/api/systems/home/now')); \
                return m && r ? [m.startTime, r.responseEnd - r.startTime] : null; })();").await?;
            first.push(timings[0].as_f64().unwrap_or(f64::NAN));
            api.push(timings[1].as_f64().unwrap_or(f64::NAN));
        }
        Figure {
            name: "dashboard.first_figures.sqlite",
            figure: median(first),
            baseline: median(api),
            unit: "ms",
            baseline_is: "the page's own /api/systems/home/now call",
            target: Target::FigureAtMost(500.0),
        }
        .print();

        // Live delay: a commit until the page shows it, against a gRPC watcher's delay.
        let mut watch = LiveServiceClient::new(channel)
            .watch_system(WatchSystemRequest {
                system_id: "home".into(),
            })
            .await?
            .into_inner();
        watch.message().await?;
        let (mut page, mut grpc_watch) = (Vec::new(), Vec::new());
        for seq in 2..2 + commits {
            let pv = 1000.0 + seq as f64;
            let at = start + seq as i64 * 10;
            let sent = Instant::now();
            send(&mut client, seq, at, pv).await?;
            loop {
                let update = watch.message().await?.ok_or_else(|| anyhow::anyhow!("watch ended"))?;
                let shown = update
                    .now
                    .and_then(|now| now.totals)
                    .and_then(|totals| totals.pv_power_w);
                if shown == Some(pv) {
                    grpc_watch.push(sent.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
            }
            let text = format!("{:.2} kW", pv / 1000.0);
            loop {
                let shown = browser
                    .execute(
                        "const v = document.querySelector('.pv-now .value'); return v ? v.textContent : null;",
                        vec![],
                    )
                    .await?;
                if shown == Value::String(text.clone()) {
                    page.push(sent.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                anyhow::ensure!(sent.elapsed() < Duration::from_secs(10), "the page never showed {text}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Figure {
            name: "dashboard.live_delay.sqlite",
            figure: median(page),
            baseline: median(grpc_watch),
            unit: "ms",
            baseline_is: "a gRPC WatchSystem stream, same commits",
            target: Target::FigureAtMost(1000.0),
        }
        .print();

        // Page weight: the page's files (and nothing else: the page requests no other file).
        let weight = solarhub_hub::http::dashboard::weight() as f64 / 1024.0;
        Figure {
            name: "dashboard.page_weight",
            figure: weight,
            baseline: 300.0,
            unit: "KiB",
            baseline_is: "the 300 KB budget (files uncompressed: the hub sends them as they are)",
            target: Target::FigureAtMost(300.0),
        }
        .print();
        browser.close().await?;
        anyhow::Ok(())
    })
}

async fn send(
    client: &mut CollectorServiceClient<Channel>,
    seq: u64,
    at: i64,
    pv: f64,
) -> anyhow::Result<()> {
    let ack = client
        .send_batch(TelemetryBatch {
            collector_id: "bench".into(),
            seq,
            readings: vec![DeviceReading {
                device_id: "powdrive1".into(),
                adapter_id: "powdrive1.adapter".into(),
                ts: Some(solarhub_proto::time::timestamp(at)),
                fields: [
                    ("pv_power_w".to_owned(), pv),
                    ("load_power_w".to_owned(), 500.0),
                ]
                .into_iter()
                .collect(),
                ..DeviceReading::default()
            }],
            ..TelemetryBatch::default()
        })
        .await?
        .into_inner();
    anyhow::ensure!(ack.refused.is_empty(), "refused: {:?}", ack.refused);
    Ok(())
}

async fn browser(driver: &str) -> anyhow::Result<Client> {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]}),
    );
    let start = Instant::now();
    loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(driver)
            .await
        {
            Ok(client) => return Ok(client),
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(error) => anyhow::bail!("chromedriver: {error}"),
        }
    }
}

/// `script`'s first answer that is not null, within 20 s.
async fn wait(browser: &Client, script: &str) -> anyhow::Result<Vec<Value>> {
    let start = Instant::now();
    loop {
        if let Value::Array(values) = browser.execute(script, vec![]).await? {
            return Ok(values);
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(20),
            "no first figures in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
