//! The hub's composition root: every part built on one database (the catalog repository, ingest,
//! live, history, data quality), the background jobs started (the roller, the array sampler,
//! retention, the pruning of old poll counts), and the parts
//! handed to the gRPC edge, which only adapts requests to them, behind the authentication layer.

use std::time::Duration;

use tokio::net::TcpListener;

use crate::auth::tls::TlsFiles;
use crate::auth::{AuthLayer, Authenticator};
use crate::catalog::Repository;
use crate::db::Database;
use crate::grpc::{Parts, ServeError};

/// How a hub serves, beyond where.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Cadence of the derived `array_samples`; `None` writes none.
    pub array_samples_every: Option<Duration>,
    /// How often pending rollup ranges are rolled; `None` leaves them to another hub.
    pub rollup_every: Option<Duration>,
    pub security: Security,
    /// Serve Prometheus metrics at `http://ADDR/metrics`.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Publish to this MQTT broker for Home Assistant.
    pub mqtt: Option<crate::mqtt::MqttSettings>,
    /// Delete old samples (on the hub that leads the job); `None` keeps everything. The library's
    /// default is `None`; the `serve` command's is the default policy.
    pub retention: Option<crate::retention::Retention>,
    /// How many connections at once (`--max-connections`), and how soon each must speak HTTP/2.
    pub connections: crate::grpc::connections::Limits,
    /// `--http-listen`: the HTTP/JSON API and the dashboard.
    pub http: Option<crate::http::listener::HttpListener>,
}

/// Who may call, and over what. The library's default is no authentication and plaintext (tests
/// and the loopback demo); the `serve` command requires authentication unless told otherwise.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// Require a bearer token (or a client certificate) on every call but health and reflection.
    pub auth: bool,
    pub tls: Option<TlsFiles>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            array_samples_every: Some(crate::live::sampler::DEFAULT_EVERY),
            rollup_every: Some(crate::rollup::roller::DEFAULT_EVERY),
            security: Security::default(),
            metrics_listen: None,
            mqtt: None,
            retention: None,
            connections: Default::default(),
            http: None,
        }
    }
}

/// Serves the hub on `listener` until `shutdown` completes, with default options.
pub async fn serve(
    database: Database,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with(database, listener, ServeOptions::default(), shutdown).await
}

/// Builds the parts, starts the background jobs, and serves until `shutdown` completes; the jobs
/// stop when serving does.
pub async fn serve_with(
    database: Database,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let repository = Repository::new(database.clone());
    let ingest = crate::ingest::Ingest::new(database.clone(), repository.generation());
    let live = crate::live::Live::new(database.clone(), repository.clone(), ingest.updates());
    let history = crate::rollup::history::History::new(database.clone(), repository.clone());
    let quality = crate::quality::DataQuality::new(database.clone());
    let tls = match &options.security.tls {
        Some(files) => Some(
            files
                .load()
                .map_err(|error| ServeError::Tls(error.to_string()))?,
        ),
        None => None,
    };
    let authenticator = options
        .security
        .auth
        .then(|| Authenticator::new(database.clone()));
    let (stop_background, background_stopped) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut receiver = background_stopped.clone();
        async move {
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    };
    let auditor = crate::audit::Auditor::start(database.clone(), stopped());
    let control_metrics = crate::metrics::ControlMetrics::default();
    let control = crate::control::Control::start(
        database.clone(),
        repository.clone(),
        auditor.clone(),
        control_metrics.clone(),
        stopped(),
    );
    let auth = match &authenticator {
        Some(authenticator) => AuthLayer::required(authenticator.clone(), auditor.clone()),
        None => AuthLayer::off(auditor.clone()),
    };

    // The threads of `cluster` (leadership, the commit listener) stop with this guard.
    let threads = StopOnDrop::default();
    let leadership = crate::cluster::Leadership::start(&database, threads.0.clone());
    crate::cluster::start_listening(
        &database,
        ingest.instance().to_owned(),
        ingest.updates(),
        threads.0.clone(),
    );
    if let Some(every) = options.array_samples_every {
        tokio::spawn(crate::live::sampler::run(
            live.clone(),
            database.clone(),
            every,
            leadership.clone(),
            stopped(),
        ));
    }
    let roller_metrics = crate::metrics::RollerMetrics::default();
    if let Some(every) = options.rollup_every {
        tokio::spawn(crate::rollup::roller::run(
            database.clone(),
            every,
            crate::rollup::Settings::default(),
            leadership.clone(),
            roller_metrics.clone(),
            stopped(),
        ));
    }
    let retention_metrics = crate::metrics::RetentionMetrics::default();
    let waiting = crate::retention::Waiting::default();
    if let Some(retention) = options.retention.clone() {
        tokio::spawn(crate::retention::run(
            database.clone(),
            retention,
            retention_metrics.clone(),
            leadership.clone(),
            waiting.clone(),
            stopped(),
        ));
    }
    tokio::spawn(crate::quality::run_pruner(database.clone(), stopped()));
    let bridge_metrics = crate::mqtt::BridgeMetrics::default();
    let mut bridge = None;
    if let Some(settings) = options.mqtt.clone() {
        let (live, database, metrics, stop) = (
            live.clone(),
            database.clone(),
            bridge_metrics.clone(),
            stopped(),
        );
        bridge = Some(tokio::spawn(async move {
            if let Err(error) =
                crate::mqtt::run_bridge(settings, live, database, metrics, stop).await
            {
                tracing::error!(%error, "the MQTT bridge stopped");
            }
        }));
    }
    let rpc_metrics = options
        .metrics_listen
        .map(|_| crate::metrics::RpcMetrics::new());
    let _metrics_endpoint = match (options.metrics_listen, &rpc_metrics) {
        (Some(listen), Some(rpc)) => {
            let bridge = options.mqtt.is_some().then_some(&bridge_metrics);
            let retention = options.retention.is_some().then_some(&retention_metrics);
            let registry = crate::metrics::registry(
                &database,
                ingest.metrics(),
                live.watchers(),
                rpc,
                bridge,
                retention,
                options.rollup_every.is_some().then_some(&roller_metrics),
                &control_metrics,
            );
            Some(
                solarhub_ops::serve_metrics(listen, std::sync::Arc::new(registry))
                    .await
                    .map_err(|error| ServeError::Bind {
                        addr: listen,
                        reason: format!("--metrics-listen: {error}"),
                    })?,
            )
        }
        _ => None,
    };
    let parts = Parts {
        database,
        repository,
        ingest,
        live,
        history,
        quality,
        retention: options
            .retention
            .map(|retention| crate::retention::RetentionView {
                policy: retention.policy,
                waiting,
            }),
        rpc_metrics: crate::metrics::RpcLayer::new(rpc_metrics),
        auth,
        authenticator,
        tls,
        connections: options.connections,
        http: options.http,
        control,
    };
    let served = crate::grpc::serve_parts(parts, listener, shutdown).await;
    let _ = stop_background.send(true);
    if let Some(bridge) = bridge {
        // The bridge says `offline` itself when it stops (the last will is for when it cannot).
        let _ = tokio::time::timeout(Duration::from_secs(2), bridge).await;
    }
    drop(threads);
    served
}

/// Sets its flag when dropped, however serving ends.
#[derive(Default)]
struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
