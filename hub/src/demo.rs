//! `solarhub-hub demo`: the whole system in one process, on its embedded default. Simulated devices
//! of every driver type on loopback, the demo installation (`deploy/demo.yaml`) in the catalog with
//! every adapter assigned to the collector `demo`, the hub serving gRPC, and that collector — the
//! real one, with its outbox — streaming to the hub over gRPC as a remote collector would. The
//! collector never touches the database. Stopping drains the collector first, then the hub; the
//! next start continues on the same database and outbox.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use solarhub_collector::app::run_collector;
use solarhub_collector::uplink::UplinkConfig;
use tokio::sync::{oneshot, watch};

use crate::adapter_types::AdapterTypeError;
use crate::config_import::ConfigError;
use crate::db::{Database, DbError};
use crate::grpc::ServeError;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    AdapterTypes(#[from] AdapterTypeError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("the simulated site: {0}")]
    Site(String),
    #[error("the demo simulates no device for {0}")]
    NotSimulated(String),
    #[error("cannot create the outbox directory {path}: {reason}")]
    Outbox { path: PathBuf, reason: String },
    #[error("the {0} failed: {1}")]
    Stopped(&'static str, String),
}

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
    /// Serve the hub's Prometheus metrics here.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the HTTP/JSON API and the dashboard here.
    pub http: Option<crate::http::listener::HttpListener>,
    /// Publish to this MQTT broker for Home Assistant.
    pub mqtt: Option<crate::mqtt::MqttSettings>,
}

/// Runs the demo on a migrated database until `shutdown` resolves. `ready` receives the hub's
/// address once it serves.
pub async fn run_demo(
    database: Database,
    options: DemoOptions,
    ready: Option<oneshot::Sender<SocketAddr>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DemoError> {
    let tz = chrono_tz::Asia::Karachi;
    let site = solarhub_collector::simulator::site::serve_site(options.simulate, tz, true)
        .await
        .map_err(|error| DemoError::Site(format!("{error:#}")))?;
    for line in site.describe() {
        tracing::info!("{line}");
    }
    install(
        &database,
        DEMO_COLLECTOR,
        Some(&site.assignments(options.poll_secs)),
    )?;

    let listener = crate::grpc::bind(options.listen).await?;
    let addr = listener
        .local_addr()
        .map_err(|error| DemoError::Stopped("hub listener", error.to_string()))?;
    let (stop_hub, hub_stopped) = oneshot::channel::<()>();
    let serve_options = crate::server::ServeOptions {
        metrics_listen: options.metrics_listen,
        mqtt: options.mqtt.clone(),
        http: options.http.clone(),
        retention: Some(crate::retention::Retention::new(
            crate::retention::Policy::default(),
        )),
        ..crate::server::ServeOptions::default()
    };
    let hub = tokio::spawn(crate::server::serve_with(
        database.clone(),
        listener,
        serve_options,
        async {
            let _ = hub_stopped.await;
        },
    ));
    tracing::info!(%addr, database = %database.url(), "hub serving gRPC");
    tracing::warn!(
        %addr,
        "the demo serves without authentication or TLS, for this machine only; `solarhub-hub \
         serve` requires tokens (docs/security.md)"
    );

    solarhub_ops::create_private_dir(&options.outbox_dir).map_err(|error| DemoError::Outbox {
        path: options.outbox_dir.clone(),
        reason: error.to_string(),
    })?;
    let (stop_collector, collector_stopped) = watch::channel(false);
    let collector = tokio::spawn({
        let config = UplinkConfig {
            access: solarhub_collector::uplink::hub_access::HubAccess::none(),
            hubs: vec![format!("http://{addr}")],
            collector_id: DEMO_COLLECTOR.into(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            batch_max_readings: 200,
            batch_max_wait: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            write_budget_per_day: solarhub_collector::control::DEFAULT_WRITE_BUDGET,
        };
        let dir = options.outbox_dir.clone();
        let observer = std::sync::Arc::new(solarhub_collector::observe::Observer::new());
        async move { run_collector(config, &dir, None, observer, collector_stopped).await }
    });
    if let Some(ready) = ready {
        let _ = ready.send(addr);
    }

    shutdown.await;
    tracing::info!("stopping: the collector hands over its last readings, then the hub stops");
    let _ = stop_collector.send(true);
    let collected = collector
        .await
        .map_err(|error| DemoError::Stopped("collector task", error.to_string()))?;
    let _ = stop_hub.send(());
    let served = hub
        .await
        .map_err(|error| DemoError::Stopped("hub task", error.to_string()))?;
    drop(site);
    collected.map_err(|error| DemoError::Stopped("collector", format!("{error:#}")))?;
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Puts the demo installation in the catalog with every adapter assigned to `collector` and, with
/// `simulated`, pointed at its simulator (whose ports and serial lines change between runs).
pub fn install(
    database: &Database,
    collector: &str,
    simulated: Option<&[solarhub_collector::uplink::assignment::Assignment]>,
) -> Result<(), DemoError> {
    let types = crate::adapter_types::builtin_adapter_types()?;
    let mut loaded =
        crate::config_import::parse_config(Path::new("deploy/demo.yaml"), DEMO_CONFIG, &types)?;
    for adapter in &mut loaded.installation.adapters {
        adapter.collector_id = Some(collector.into());
        if let Some(simulated) = simulated {
            let device = simulated
                .iter()
                .find(|a| a.adapter_id == adapter.adapter_id)
                .ok_or_else(|| DemoError::NotSimulated(adapter.adapter_id.clone()))?;
            adapter.config_json = device.config.to_string();
        }
    }
    let rows: Vec<_> = types.into_iter().map(|t| t.row).collect();
    let mut conn = database.get()?;
    crate::db::catalog::apply_installation(&mut conn, &rows, &loaded.installation, false)?;
    Ok(())
}
