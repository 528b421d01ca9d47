//! Samples per second from a client into the hub's sample tables, through real gRPC and real
//! commits: batched streaming (`StreamTelemetry`, batches of 200, as the collector sends) against
//! one unary `SendBatch` call per sample, measured in the same run, and the ratio (DESIGN §8: at
//! least 20x). Then the cost of security (#13): the same streamed and unary runs with a bearer
//! token checked on every call (target: within 5% of plaintext without authentication, since token
//! answers are cached, not queried per call), and streamed over TLS with a token. Each variant has
//! its own hub and database; rounds alternate between them and each rate is the median of its
//! rounds. SQLite always; Postgres too when `SOLARHUB_TEST_DATABASE_URL` names a server (databases
//! are created for the run and dropped after it).
//!
//! With metrics on (scraped every second) and with the MQTT bridge on (the broker up, and
//! unreachable), against the same token run: the target is again within 5%.
//!
//! `cargo bench -p solarhub-hub --bench uplink` (release build). `SOLARHUB_BENCH_SAMPLES` sets the
//! streamed sample count per round (default 20000); unary runs take a tenth of it;
//! `SOLARHUB_BENCH_ROUNDS` the rounds (default 3).

#[path = "support/report.rs"]
mod report;
#[path = "support/telemetry.rs"]
mod telemetry;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use report::median;
use solarhub_collector::uplink::hub_access::{AccessFiles, HubAccess};
use solarhub_collector::uplink::{HubClient, connect};
use solarhub_hub::db::{self, Database, DatabaseUrl, admin};
use solarhub_hub::server::{Security, ServeOptions};
use solarhub_proto::v1::TelemetryBatch;
use telemetry::{BATCH, reading, streamed};

fn main() -> anyhow::Result<()> {
    let samples: usize = std::env::var("SOLARHUB_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rounds: usize = std::env::var("SOLARHUB_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let dir = tempfile::tempdir()?;
    let sqlite = |name: &str| Ok(DatabaseUrl::Sqlite(dir.path().join(format!("{name}.db"))));
    run("sqlite", sqlite, samples, rounds, dir.path())?;
    if let Ok(admin_url) = std::env::var("SOLARHUB_TEST_DATABASE_URL") {
        let mut created = Vec::new();
        let result = run(
            "postgres",
            |name: &str| {
                let db = format!("solarhub_bench_{}_{name}", std::process::id());
                let url = admin::create_postgres_database(&admin_url, &db)?;
                created.push(db);
                Ok(DatabaseUrl::Postgres(url))
            },
            samples,
            rounds,
            dir.path(),
        );
        for db in created {
            admin::drop_postgres_database(&admin_url, &db)?;
        }
        result?;
    } else {
        println!("postgres: skipped (SOLARHUB_TEST_DATABASE_URL is not set)");
    }
    Ok(())
}

/// How a variant's hub is reached.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Token,
    TlsToken,
    /// Token, with `--metrics-listen` on (every call through the metrics layer, every commit
    /// counted) and `/metrics` scraped every second, as Prometheus would.
    TokenMetrics,
    /// Token, with the MQTT bridge publishing to the real broker on 127.0.0.1:1883.
    TokenMqtt,
    /// Token, with the MQTT bridge pointed at a broker that is not there.
    TokenMqttAway,
}

impl Variant {
    const ALL: [Variant; 6] = [
        Variant::Plain,
        Variant::Token,
        Variant::TlsToken,
        Variant::TokenMetrics,
        Variant::TokenMqtt,
        Variant::TokenMqttAway,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plaintext, no authentication",
            Variant::Token => "plaintext, token",
            Variant::TlsToken => "TLS, token",
            Variant::TokenMetrics => "plaintext, token, metrics on",
            Variant::TokenMqtt => "plaintext, token, MQTT bridge (broker up)",
            Variant::TokenMqttAway => "plaintext, token, MQTT bridge (broker unreachable)",
        }
    }
}

/// A CA and a certificate for localhost, as PEM files in `dir`.
fn certificates(dir: &std::path::Path) -> anyhow::Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key)?.pem())?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&key, &issuer)?;
    std::fs::write(dir.join("hub.pem"), cert.pem())?;
    std::fs::write(dir.join("hub.key"), key.serialize_pem())?;
    Ok(())
}

fn run(
    backend: &str,
    mut database_for: impl FnMut(&str) -> anyhow::Result<DatabaseUrl>,
    samples: usize,
    rounds: usize,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    certificates(dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut hubs = Vec::new();
    for (n, variant) in Variant::ALL.into_iter().enumerate() {
        let database = Database::open(database_for(&format!("v{n}"))?)?;
        db::run_migrations(&mut *database.get()?)?;
        // The demo installation, every adapter assigned to the bench's collector.
        solarhub_hub::demo::install(&database, "bench", None)?;
        let token = solarhub_hub::auth::principals::create(
            &mut *database.get()?,
            "bench",
            solarhub_hub::auth::Role::Collector,
            Some("bench"),
            None,
        )?;
        let security = Security {
            auth: variant != Variant::Plain,
            tls: (variant == Variant::TlsToken).then(|| solarhub_hub::auth::tls::TlsFiles {
                cert: dir.join("hub.pem"),
                key: dir.join("hub.key"),
                client_ca: None,
            }),
        };
        let client = runtime.block_on(async {
            let listener = solarhub_hub::grpc::bind("127.0.0.1:0".parse()?).await?;
            let port = listener.local_addr()?.port();
            let metrics_listen = (variant == Variant::TokenMetrics)
                .then(|| std::net::TcpListener::bind("127.0.0.1:0")?.local_addr())
                .transpose()?;
            let mqtt = match variant {
                Variant::TokenMqtt | Variant::TokenMqttAway => {
                    let port = if variant == Variant::TokenMqtt {
                        1883
                    } else {
                        1
                    };
                    let mut settings = solarhub_hub::mqtt::MqttSettings::from_url(&format!(
                        "mqtt://127.0.0.1:{port}"
                    ))?;
                    let tag = format!("solarhub-bench-{}-{n}", std::process::id());
                    settings.base_topic = format!("{tag}/sh");
                    settings.discovery_prefix = Some(format!("{tag}/ha"));
                    settings.client_id = tag;
                    Some(settings)
                }
                _ => None,
            };
            let options = ServeOptions {
                security,
                metrics_listen,
                mqtt,
                ..ServeOptions::default()
            };
            if let Some(metrics) = metrics_listen {
                tokio::spawn(scrape_every_second(metrics));
            }
            tokio::spawn(solarhub_hub::server::serve_with(
                database.clone(),
                listener,
                options,
                std::future::pending(),
            ));
            let (url, access) = match variant {
                Variant::Plain => (format!("http://127.0.0.1:{port}"), HubAccess::none()),
                Variant::Token
                | Variant::TokenMetrics
                | Variant::TokenMqtt
                | Variant::TokenMqttAway => {
                    let url = format!("http://127.0.0.1:{port}");
                    let files = AccessFiles {
                        token: Some(token.token.expose().to_owned()),
                        ..AccessFiles::default()
                    };
                    (url.clone(), HubAccess::load(&url, &files)?)
                }
                Variant::TlsToken => {
                    let url = format!("https://localhost:{port}");
                    let files = AccessFiles {
                        token: Some(token.token.expose().to_owned()),
                        ca_cert: Some(dir.join("ca.pem")),
                        ..AccessFiles::default()
                    };
                    (url.clone(), HubAccess::load(&url, &files)?)
                }
            };
            let client = connect(&url, &access).await?;
            // Warm-up: connections, caches, the first pages of the database.
            streamed(client.clone(), 1, 0, 2 * BATCH).await?;
            anyhow::Ok(client)
        })?;
        // Seqs go up across every call to a hub (the warm-up used 1 and 2).
        hubs.push((variant, database, client, 3u64));
    }

    let unary_samples = (samples / 10).max(1);
    let mut streamed_rates: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut unary_rates: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 0..rounds {
        // Each round starts with another variant, so none always follows a quiet database.
        hubs.rotate_left(1);
        for (variant, _, client, next_seq) in &mut hubs {
            let base = 1_000_000 + (round * (samples + unary_samples)) as i64;
            let took = runtime.block_on(streamed(client.clone(), *next_seq, base, samples))?;
            *next_seq += samples.div_ceil(BATCH) as u64;
            streamed_rates
                .entry(variant.name())
                .or_default()
                .push(samples as f64 / took.as_secs_f64());
            if *variant != Variant::TlsToken {
                let took = runtime.block_on(unary(
                    client.clone(),
                    *next_seq,
                    base + samples as i64,
                    unary_samples,
                ))?;
                *next_seq += unary_samples as u64;
                unary_rates
                    .entry(variant.name())
                    .or_default()
                    .push(unary_samples as f64 / took.as_secs_f64());
            }
        }
    }
    for (variant, database, _, _) in &hubs {
        // Every sample sent is a row: the rates are of work done, not of work refused.
        let rows = db::introspect::row_count(&mut *database.get()?, "energy_samples")?;
        let unary = if *variant == Variant::TlsToken {
            0
        } else {
            unary_samples
        };
        let sent = 2 * BATCH + rounds * (samples + unary);
        anyhow::ensure!(
            rows == sent as i64,
            "{rows} rows stored of {sent} samples sent"
        );
    }
    let streamed = |v: Variant| median(streamed_rates[v.name()].clone());
    let unary = |v: Variant| median(unary_rates[v.name()].clone());
    for variant in Variant::ALL {
        println!(
            "{backend}: streamed, batches of {BATCH}, {}: {samples} samples x {rounds} rounds, median {:.0} samples/s",
            variant.name(),
            streamed(variant)
        );
    }
    for variant in [
        Variant::Plain,
        Variant::Token,
        Variant::TokenMetrics,
        Variant::TokenMqtt,
        Variant::TokenMqttAway,
    ] {
        println!(
            "{backend}: unary, one call per sample, {}: {unary_samples} samples x {rounds} rounds, median {:.0} samples/s",
            variant.name(),
            unary(variant)
        );
    }
    report::Figure {
        name: &format!("uplink.streamed_vs_unary.{backend}"),
        figure: streamed(Variant::Plain),
        baseline: unary(Variant::Plain),
        unit: "samples/s",
        baseline_is: "one unary SendBatch call per sample",
        target: report::Target::AtLeast(20.0),
    }
    .print();
    println!(
        "{backend}: token / no authentication: streamed {:.3}, unary {:.3} (target: streamed at least 0.95)",
        streamed(Variant::Token) / streamed(Variant::Plain),
        unary(Variant::Token) / unary(Variant::Plain)
    );
    println!(
        "{backend}: TLS with token / plaintext without authentication, streamed: {:.3}",
        streamed(Variant::TlsToken) / streamed(Variant::Plain)
    );
    println!(
        "{backend}: metrics on / off (both with a token): streamed {:.3}, unary {:.3} (target: streamed at least 0.95)",
        streamed(Variant::TokenMetrics) / streamed(Variant::Token),
        unary(Variant::TokenMetrics) / unary(Variant::Token)
    );
    println!(
        "{backend}: MQTT bridge on / off (both with a token): broker up: streamed {:.3}, unary {:.3}; broker unreachable: streamed {:.3}, unary {:.3} (target: streamed at least 0.95)",
        streamed(Variant::TokenMqtt) / streamed(Variant::Token),
        unary(Variant::TokenMqtt) / unary(Variant::Token),
        streamed(Variant::TokenMqttAway) / streamed(Variant::Token),
        unary(Variant::TokenMqttAway) / unary(Variant::Token)
    );
    Ok(())
}

/// Scrapes `/metrics` at `address` every second, as Prometheus would, reading the whole answer.
async fn scrape_every_second(address: std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
            continue;
        };
        let request = "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).await.is_ok() {
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
        }
    }
}

/// One `SendBatch` call per reading, one after the other.
async fn unary(
    mut client: HubClient,
    first_seq: u64,
    first: i64,
    count: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for i in 0..count {
        let ack = client
            .send_batch(TelemetryBatch {
                command_results: Vec::new(),
                sent_at: None,
                polls: Vec::new(),
                collector_id: "bench".into(),
                seq: first_seq + i as u64,
                readings: vec![reading(first + i as i64)],
            })
            .await?
            .into_inner();
        anyhow::ensure!(ack.refused.is_empty(), "refused: {:?}", ack.refused);
    }
    Ok(started.elapsed())
}
