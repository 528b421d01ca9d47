//! What the ingest, uplink and retention benches send: a powdrive's readings, streamed in
//! batches of [`BATCH`] as the collector sends them, every ack awaited; and the hub they stream to
//! when ingest is all it should do.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use solarhub_collector::uplink::hub_access::{AccessFiles, HubAccess};
use solarhub_collector::uplink::{HubClient, connect};
use solarhub_hub::db::Database;
use solarhub_hub::server::{Security, ServeOptions};
use solarhub_proto::v1::{DeviceReading, TelemetryBatch};

/// Serves `database` (the demo installation, its adapters assigned to collector `bench`) on
/// loopback with tokens required and no periodic job (the roller, the array sampler and retention
/// cost what they cost in benches of their own), and connects as collector `bench` with a token
/// of its own.
#[allow(dead_code)]
pub(crate) fn serve_ingest_only(
    runtime: &tokio::runtime::Runtime,
    database: &Database,
) -> anyhow::Result<HubClient> {
    let token = solarhub_hub::auth::principals::create(
        &mut *database.get()?,
        "bench",
        solarhub_hub::auth::Role::Collector,
        Some("bench"),
        None,
    )?;
    runtime.block_on(async {
        let listener = solarhub_hub::grpc::bind("127.0.0.1:0".parse()?).await?;
        let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let options = ServeOptions {
            security: Security {
                auth: true,
                tls: None,
            },
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
        let files = AccessFiles {
            token: Some(token.token.expose().to_owned()),
            ..AccessFiles::default()
        };
        Ok(connect(&url, &HubAccess::load(&url, &files)?).await?)
    })
}

/// Readings per batch, as the collector's default.
pub(crate) const BATCH: usize = 200;

/// A powdrive reading's time: a second apart per `i`, long past (the hub refuses future times).
pub(crate) fn ts_ms(i: i64) -> i64 {
    1_600_000_000_000 + i * 1000
}

/// One inverter reading with the fields a powdrive reports.
pub(crate) fn reading(i: i64) -> DeviceReading {
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
    DeviceReading {
        device_id: "powdrive1".into(),
        adapter_id: "powdrive1.adapter".into(),
        ts: Some(solarhub_proto::time::timestamp(ts_ms(i))),
        fields,
        ..DeviceReading::default()
    }
}

/// Streams `count` readings from `first` in batches of [`BATCH`], numbered from `first_seq`, and
/// waits for every ack.
pub(crate) async fn streamed(
    mut client: HubClient,
    first_seq: u64,
    first: i64,
    count: usize,
) -> anyhow::Result<Duration> {
    let batches: Vec<TelemetryBatch> = (0..count)
        .step_by(BATCH)
        .enumerate()
        .map(|(n, start)| TelemetryBatch {
            command_results: Vec::new(),
            sent_at: None,
            polls: Vec::new(),
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
