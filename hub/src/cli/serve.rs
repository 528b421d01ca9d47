//! `serve` and `demo`: the hub serving gRPC until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use solarhub_hub::adapter_types::builtin_adapter_types;
use solarhub_hub::config_import::load_config;
use solarhub_hub::db::{self, Database, DatabaseUrl};
use solarhub_hub::grpc;

use super::args::{MqttArgs, RetentionArgs, SecurityArgs, at_least_one};
use super::setup::{apply_config, legacy_options, open_migrated};

/// `serve`'s flags.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SOLARHUB_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// The existing app's config.yaml, imported before serving (and used for a legacy upgrade).
    #[arg(long, env = "SOLARHUB_CONFIG")]
    config: Option<PathBuf>,
    /// The timezone the old app wrote its local times in (IANA name, e.g. Asia/Karachi), for
    /// a legacy upgrade; wins over the config and the file.
    #[arg(long, env = "SOLARHUB_TIMEZONE")]
    timezone: Option<String>,
    /// Write derived array samples (array sums, SOC) this often, in seconds; 0 writes none.
    #[arg(long, env = "SOLARHUB_ARRAY_SAMPLE_SECS", default_value = "10")]
    array_sample_secs: f64,
    /// Serve Prometheus metrics at http://ADDR/metrics (ingest, database pool, rollup lag,
    /// watchers, calls by method and code), e.g. 127.0.0.1:9100.
    #[arg(long, env = "SOLARHUB_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Allow --metrics-listen on an address other than loopback (the endpoint takes no token).
    #[arg(long)]
    metrics_public: bool,
    /// Serve the HTTP/JSON API and the dashboard here (e.g. 127.0.0.1:8080), with the same TLS,
    /// tokens and exposure rules as gRPC; browsers log in once with a token.
    #[arg(long, env = "SOLARHUB_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Connections open at once; one more is closed as it arrives. Each connection must
    /// finish TLS and start HTTP/2 within 10 s.
    #[arg(long, env = "SOLARHUB_MAX_CONNECTIONS", default_value_t = solarhub_hub::grpc::connections::DEFAULT_MAX_CONNECTIONS, value_parser = at_least_one)]
    max_connections: usize,
    #[command(flatten)]
    mqtt: MqttArgs,
    #[command(flatten)]
    security: SecurityArgs,
    #[command(flatten)]
    retention: RetentionArgs,
}

/// Upgrades and migrates the database, imports the config if given, and serves until a signal.
pub(crate) fn serve(
    url: &DatabaseUrl,
    backup_dir: &Option<PathBuf>,
    args: ServeArgs,
) -> anyhow::Result<()> {
    let ServeArgs {
        listen,
        config,
        timezone,
        array_sample_secs,
        metrics_listen,
        metrics_public,
        http_listen,
        max_connections,
        mqtt,
        security,
        retention,
    } = args;
    // An unsafe exposure (or a bad setting) is refused before anything is opened.
    let security = security.check([listen].into_iter().chain(http_listen))?;
    let http = http_listen
        .map(|addr| {
            solarhub_hub::http::listener::HttpListener::bind(addr)
                .with_context(|| format!("--http-listen {addr}"))
        })
        .transpose()?;
    if let Some(listen) = metrics_listen {
        solarhub_ops::check_metrics_listen(listen, metrics_public).map_err(anyhow::Error::msg)?;
    }
    let retention = retention.retention()?;
    let loaded = match &config {
        Some(file) => Some((file.clone(), load_config(file, &builtin_adapter_types()?)?)),
        None => None,
    };
    let mqtt = mqtt.settings(loaded.as_ref().and_then(|(_, l)| l.mqtt.as_ref()))?;
    let database = open_migrated(url, &legacy_options(backup_dir, config, timezone))?;
    if let Some((file, loaded)) = loaded {
        apply_config(&database, &file, loaded, builtin_adapter_types()?, false)?;
    }
    if db::retention::autovacuum_off(&mut *database.get()?)? {
        tracing::warn!(
            "autovacuum is off on this Postgres server: the rows the hub updates and deletes are never reused, so the database and its reads grow for as long as it runs; turn autovacuum on, or run VACUUM (ANALYZE) on this database at least hourly (docs/operations.md)"
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        if let Some(retention) = &retention {
            announce_retention(&database, retention).await?;
        }
        let listener = grpc::bind(listen).await?;
        let local = listener.local_addr().context("listener has no address")?;
        tracing::info!(
            addr = %local,
            database = %database.url(),
            tls = security.tls.is_some(),
            client_certificates = security.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            authentication = security.auth,
            "serving gRPC"
        );
        let options = solarhub_hub::server::ServeOptions {
            security,
            metrics_listen,
            mqtt,
            retention,
            connections: solarhub_hub::grpc::connections::Limits {
                max: max_connections,
                ..Default::default()
            },
            http,
            array_samples_every: (array_sample_secs > 0.0)
                .then(|| std::time::Duration::from_secs_f64(array_sample_secs)),
            ..solarhub_hub::server::ServeOptions::default()
        };
        solarhub_hub::server::serve_with(database, listener, options, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

#[cfg(feature = "demo")]
/// `demo`'s flags.
#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// The simulated devices listen here and on the next two ports.
    #[arg(long, default_value = "127.0.0.1:1502")]
    simulate: SocketAddr,
    #[arg(long, default_value = "solarhub-outbox")]
    outbox_dir: PathBuf,
    #[arg(long, default_value = "5")]
    poll_secs: f64,
    /// Allow the unauthenticated demo on a non-loopback --listen address.
    #[arg(long)]
    insecure: bool,
    /// Serve the hub's Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// The HTTP/JSON API and the dashboard (`none` for neither).
    #[arg(long, default_value = "127.0.0.1:8080")]
    http_listen: String,
    /// Allow --metrics-listen on an address other than loopback (the endpoint takes no token).
    #[arg(long)]
    metrics_public: bool,
    #[command(flatten)]
    mqtt: MqttArgs,
}

#[cfg(feature = "demo")]
/// The whole system in one process, on loopback.
pub(crate) fn demo(
    url: &DatabaseUrl,
    backup_dir: &Option<PathBuf>,
    args: DemoArgs,
) -> anyhow::Result<()> {
    let DemoArgs {
        listen,
        simulate,
        outbox_dir,
        poll_secs,
        insecure,
        metrics_listen,
        metrics_public,
        http_listen,
        mqtt,
    } = args;
    let http_listen = optional_addr(&http_listen)
        .map_err(anyhow::Error::msg)
        .context("--http-listen")?;
    if let Some(listen) = metrics_listen {
        solarhub_ops::check_metrics_listen(listen, metrics_public).map_err(anyhow::Error::msg)?;
    }
    let mqtt = mqtt.settings(None)?;
    for listen in [listen].into_iter().chain(http_listen) {
        solarhub_hub::auth::exposure::check(solarhub_hub::auth::exposure::Exposure {
            listen,
            tls: false,
            auth: false,
            insecure,
        })
        .map_err(anyhow::Error::msg)?;
    }
    let http = http_listen
        .map(|addr| {
            solarhub_hub::http::listener::HttpListener::bind(addr)
                .with_context(|| format!("--http-listen {addr}"))
        })
        .transpose()?;
    let database = open_migrated(url, &legacy_options(backup_dir, None, None))?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let options = solarhub_hub::demo::DemoOptions {
        listen,
        simulate,
        outbox_dir,
        poll_secs,
        metrics_listen,
        http,
        mqtt,
    };
    runtime.block_on(solarhub_hub::demo::run_demo(
        database,
        options,
        None,
        shutdown_signal(),
    ))?;
    Ok(())
}

/// Says what retention keeps, and what its first pass will delete (an upgraded database may hold
/// samples older than the policy keeps: the imported ones stay, and the job itself says which
/// tables it waits on).
async fn announce_retention(
    database: &Database,
    retention: &solarhub_hub::retention::Retention,
) -> anyhow::Result<()> {
    use solarhub_hub::db::retention::SampleTable;
    use solarhub_hub::retention::show_time;
    let policy = &retention.policy;
    let periods: Vec<String> = SampleTable::ALL
        .into_iter()
        .map(|table| match policy.keep_imported(table) {
            Some(imported) => format!(
                "{} {} (imported {imported})",
                table.name(),
                policy.keep(table)
            ),
            None => format!("{} {}", table.name(), policy.keep(table)),
        })
        .collect();
    tracing::info!(every = ?retention.every, "retention keeps {}; rollups forever", periods.join(", "));
    let minutes = retention.every.as_secs() / 60;
    for plan in solarhub_hub::retention::plan(database, policy, db::now_ms()).await? {
        let table = plan.table.name();
        if plan.collected.rows > 0 && !plan.waits {
            tracing::warn!(
                table,
                rows = plan.collected.rows,
                keep = %plan.keep,
                oldest = %show_time(plan.collected.oldest),
                "samples older than the retention period go at the first retention pass, {minutes} min after the start (their rollups and aggregates stay); --no-retention or --retention {table}=forever keeps them",
            );
        }
        if plan.imported_due.rows > 0 {
            tracing::warn!(
                table,
                rows = plan.imported_due.rows,
                keep = %plan.keep_imported.unwrap_or(solarhub_hub::retention::Keep::Forever),
                oldest = %show_time(plan.imported_due.oldest),
                "imported samples older than --retention-imported go at the first retention pass, {minutes} min after the start (their rollups and aggregates stay)",
            );
        }
        if plan.imported_kept.rows > 0 {
            tracing::info!(
                table,
                rows = plan.imported_kept.rows,
                keep = %plan.keep,
                oldest = %show_time(plan.imported_kept.oldest),
                newest = %show_time(plan.imported_kept.newest),
                "imported samples older than the retention period are kept: an upgrade or import-legacy brought them; --retention-imported {table}=PERIOD deletes them",
            );
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

#[cfg(feature = "demo")]
/// An address, or `none`.
fn optional_addr(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("{text:?} is not an address like 127.0.0.1:8080 (or none)"))
}
