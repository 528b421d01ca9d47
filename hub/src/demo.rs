//! `solarhub-hub demo`: the whole system in one process, on its embedded default. Simulated devices
//! of every driver type on loopback, the demo installation (`deploy/demo.yaml`) in the catalog with
//! every adapter assigned to the collector `demo`, the hub serving gRPC, and that collector — the
//! real one, with its outbox — streaming to the hub over gRPC as a remote collector would. The
//! collector never touches the database. Stopping drains the collector first, then the hub; the
//! next start continues on the same database and outbox.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use solarhub_collector::uplink::{UplinkConfig, run_collector};
use tokio::sync::{oneshot, watch};

use crate::db::Database;

/// The demo installation, in the existing app's config.yaml format.
pub const DEMO_CONFIG: &str = include_str!("../../deploy/demo.yaml");
/// The id of the demo's built-in collector.
pub const DEMO_COLLECTOR: &str = "demo";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the hub serves gRPC.
    pub listen: SocketAddr,
    /// Where the simulated site listens (this port and the next two; 0 for any free ports).
    pub simulate: SocketAddr,
    pub outbox_dir: PathBuf,
    pub poll_secs: f64,
}

/// Runs the demo on a migrated database until `shutdown` resolves. `ready` receives the hub's
/// address once it serves.
pub async fn run_demo(
    database: Database,
    options: DemoOptions,
    ready: Option<oneshot::Sender<SocketAddr>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let tz: chrono_tz::Tz = "Asia/Karachi".parse().map_err(anyhow::Error::msg)?;
    let site = solarhub_collector::simulator::site::serve_site(options.simulate, tz, true).await?;
    for line in site.describe() {
        tracing::info!("{line}");
    }
    install(
        &database,
        DEMO_COLLECTOR,
        Some(&site.assignments(options.poll_secs)),
    )?;

    let listener = crate::grpc::bind(options.listen).await?;
    let addr = listener.local_addr().context("listener has no address")?;
    let (stop_hub, hub_stopped) = oneshot::channel::<()>();
    let hub = tokio::spawn(crate::grpc::serve(database.clone(), listener, async {
        let _ = hub_stopped.await;
    }));
    tracing::info!(%addr, database = %database.url(), "hub serving gRPC");

    std::fs::create_dir_all(&options.outbox_dir).with_context(|| {
        format!(
            "cannot create the outbox directory {}",
            options.outbox_dir.display()
        )
    })?;
    let (stop_collector, collector_stopped) = watch::channel(false);
    let collector = tokio::spawn({
        let config = UplinkConfig {
            hub: format!("http://{addr}"),
            collector_id: DEMO_COLLECTOR.into(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            batch_max_readings: 200,
            batch_max_wait: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
        };
        let dir = options.outbox_dir.clone();
        async move { run_collector(config, &dir, None, collector_stopped).await }
    });
    if let Some(ready) = ready {
        let _ = ready.send(addr);
    }

    shutdown.await;
    tracing::info!("stopping: the collector hands over its last readings, then the hub stops");
    let _ = stop_collector.send(true);
    let collected = collector.await.context("the collector task failed")?;
    let _ = stop_hub.send(());
    let served = hub.await.context("the hub task failed")?;
    drop(site);
    collected.context("collector")?;
    served.context("hub")?;
    tracing::info!("stopped");
    Ok(())
}

/// Puts the demo installation in the catalog with every adapter assigned to `collector` and, with
/// `simulated`, pointed at its simulator (whose ports and serial lines change between runs).
pub fn install(
    database: &Database,
    collector: &str,
    simulated: Option<&[solarhub_collector::assignment::Assignment]>,
) -> anyhow::Result<()> {
    let types = crate::adapter_types::builtin_adapter_types()?;
    let mut loaded =
        crate::config_import::parse_config(Path::new("deploy/demo.yaml"), DEMO_CONFIG, &types)?;
    for adapter in &mut loaded.installation.adapters {
        adapter.collector_id = Some(collector.into());
        if let Some(simulated) = simulated {
            let device = simulated
                .iter()
                .find(|a| a.adapter_id == adapter.adapter_id)
                .with_context(|| {
                    format!("the demo simulates no device for {}", adapter.adapter_id)
                })?;
            adapter.config_json = device.config.to_string();
        }
    }
    let rows: Vec<_> = types.into_iter().map(|t| t.row).collect();
    let mut conn = database.get()?;
    crate::db::catalog::apply_installation(&mut conn, &rows, &loaded.installation, false)?;
    Ok(())
}
