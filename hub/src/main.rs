//! `solarhub-hub`: migrate, import and serve.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use solarhub_hub::adapter_types::{KnownAdapterType, builtin_adapter_types};
use solarhub_hub::catalog::ChangeKind;
use solarhub_hub::config_import::{LoadedConfig, load_config};
use solarhub_hub::db::{self, Database, DatabaseUrl};
use solarhub_hub::grpc;
use solarhub_hub::legacy::LegacyOptions;

#[derive(Parser)]
#[command(
    name = "solarhub-hub",
    version,
    about = "The solarhub hub: hierarchy, imports, ingest and the gRPC API"
)]
struct Cli {
    /// `postgres://…` or a SQLite file path.
    #[arg(long, env = "SOLARHUB_DATABASE_URL", default_value = db::DEFAULT_SQLITE_FILE, global = true)]
    database_url: String,

    /// Where the backup of an existing app's database goes before it is upgraded in place
    /// (default: next to the file).
    #[arg(long, env = "SOLARHUB_BACKUP_DIR", global = true)]
    backup_dir: Option<PathBuf>,

    /// How log lines are written to standard error: text, or one JSON object per line.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SOLARHUB_LOG_FORMAT"
    )]
    log_format: solarhub_ops::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations (upgrading a legacy database first), then serve gRPC.
    Serve {
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
    },
    /// The whole system in one process: migrate (or create) the database, put the demo
    /// installation in it, simulate one device of every driver type, serve gRPC, and stream the
    /// simulated readings through a real collector. Ctrl-C stops it; the next start continues.
    #[cfg(feature = "demo")]
    Demo {
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
        /// Allow --metrics-listen on an address other than loopback (the endpoint takes no token).
        #[arg(long)]
        metrics_public: bool,
        #[command(flatten)]
        mqtt: MqttArgs,
    },
    /// Apply pending migrations (upgrading a legacy database in place first) and exit.
    Migrate {
        /// The existing app's config.yaml: used for a legacy upgrade, then imported.
        #[arg(long, env = "SOLARHUB_CONFIG")]
        config: Option<PathBuf>,
        /// The timezone the old app wrote its local times in (IANA name, e.g. Asia/Karachi).
        #[arg(long, env = "SOLARHUB_TIMEZONE")]
        timezone: Option<String>,
    },
    /// Make, list and revoke the tokens callers present (on the database directly, so the first
    /// admin token needs no running hub).
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// Import the existing app's config.yaml into the catalog.
    ImportConfig {
        file: PathBuf,
        /// Assign the file's adapters to this collector (an adapter block's own `collector_id`
        /// wins); pair it with `token create --role collector --collector-id ID`.
        #[arg(long)]
        collector_id: Option<String>,
        /// Delete catalog rows of the imported system that the file no longer has.
        #[arg(long)]
        prune: bool,
    },
    /// Copy the existing app's SQLite database into this database.
    ImportLegacy {
        file: PathBuf,
        /// The existing app's config.yaml: systems, arrays and timezone for the samples.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The timezone the old app wrote its local times in (IANA name, e.g. Asia/Karachi).
        #[arg(long)]
        timezone: Option<String>,
    },
    /// SQLite: rewrite the database file without its free pages, and make it one that gives the
    /// space of deleted samples back by itself (files made before solarhub did, such as the old
    /// app's). Stop the hub first; needs as much free disk as the file takes.
    Compact,
    /// Say what retention would delete now, without deleting: per sample table, the rows the next
    /// pass deletes (collected and imported apart), the imported rows it keeps, and whether it
    /// waits for a period to be named. Takes serve's retention flags.
    Retention {
        /// Show what the next pass would do and delete nothing (passes run inside `serve`).
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        retention: RetentionArgs,
    },
    /// The audit trail, newest first: every write and every refused call (folded when alike),
    /// with when, who, from where, what, on what, the outcome and how long it took.
    Audit {
        /// From this time: a duration back from now (24h, 7d, 90m) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only this principal (`os:NAME` for commands run on the hub's machine).
        #[arg(long)]
        principal: Option<String>,
        /// Only this method: its name (UpdateSystem), its whole path, or a command (token create).
        #[arg(long)]
        method: Option<String>,
        /// Only this outcome: ok, invalid_argument, permission_denied, unauthenticated, …
        #[arg(long)]
        outcome: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value = "100")]
        limit: u32,
    },
    /// Rebuild the hourly and daily rollups of a system from its raw samples.
    Recompute {
        #[arg(long, default_value = "home")]
        system: String,
        /// Start of the range: a date (2025-06-01, local midnight of the system) or an RFC 3339
        /// time (2025-06-01T00:00:00+05:00); default: the first sample.
        #[arg(long)]
        from: Option<String>,
        /// End of the range (exclusive), in the same forms; default: the last sample.
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a principal and print its token (once: only its hash is kept).
    Create {
        #[arg(long)]
        name: String,
        /// admin (everything), reader (queries) or collector (ingest as one collector id).
        #[arg(long, value_parser = ["admin", "reader", "collector"])]
        role: String,
        /// For --role collector: the one collector id the token may act as.
        #[arg(long)]
        collector_id: Option<String>,
        /// A client certificate (verified by serve's --client-ca) whose first DNS name, or CN,
        /// is this subject speaks as this principal too; revoking the principal stops it.
        #[arg(long)]
        certificate_subject: Option<String>,
    },
    /// Every principal: name, role, bound collector, created and revoked times (never a token).
    List,
    /// Revoke a principal's token; every hub on this database refuses it within a few seconds.
    Revoke { name: String },
}

/// The MQTT bridge for Home Assistant (README "Home Assistant").
#[derive(clap::Args)]
struct MqttArgs {
    /// Publish to this broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS). Without it, the
    /// `mqtt:` section of --config (the old app's) is used when it names a host.
    #[arg(long, env = "SOLARHUB_MQTT_URL")]
    mqtt_url: Option<String>,
    #[arg(long, env = "SOLARHUB_MQTT_USERNAME")]
    mqtt_username: Option<String>,
    /// A file holding the broker password.
    #[arg(long, env = "SOLARHUB_MQTT_PASSWORD_FILE")]
    mqtt_password_file: Option<PathBuf>,
    /// The CA of an mqtts:// broker (PEM); otherwise the system's trusted roots.
    #[arg(long, env = "SOLARHUB_MQTT_CA_CERT")]
    mqtt_ca_cert: Option<PathBuf>,
    /// Topics are BASE/<kind>/<id>/state and …/availability, and BASE/status for the bridge.
    #[arg(long, env = "SOLARHUB_MQTT_BASE_TOPIC")]
    mqtt_base_topic: Option<String>,
    /// Home Assistant's discovery prefix; `none` publishes no discovery.
    #[arg(long, env = "SOLARHUB_MQTT_DISCOVERY_PREFIX")]
    mqtt_discovery_prefix: Option<String>,
    #[arg(long, env = "SOLARHUB_MQTT_CLIENT_ID")]
    mqtt_client_id: Option<String>,
}

impl MqttArgs {
    /// The bridge's settings: the flags, else the config's `mqtt:` section; `None`: no bridge.
    fn settings(
        self,
        from_config: Option<&solarhub_hub::config_import::MqttSection>,
    ) -> anyhow::Result<Option<solarhub_hub::mqtt::MqttSettings>> {
        let mut settings = match (&self.mqtt_url, from_config) {
            (Some(url), _) => solarhub_hub::mqtt::MqttSettings::from_url(url)?,
            (None, Some(section)) => match solarhub_hub::mqtt::MqttSettings::from_config(section) {
                Some(settings) => {
                    tracing::info!(broker = %format!("{}:{}", settings.host, settings.port), "MQTT bridge from the config's mqtt: section");
                    settings
                }
                None => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        if let Some(username) = self.mqtt_username {
            settings.username = Some(username);
        }
        if self.mqtt_password_file.is_some() {
            settings.password_file = self.mqtt_password_file;
        }
        settings.ca_cert = self.mqtt_ca_cert;
        if let Some(base) = self.mqtt_base_topic {
            settings.base_topic = base;
        }
        match self.mqtt_discovery_prefix.as_deref() {
            Some("none") => settings.discovery_prefix = None,
            Some(prefix) => settings.discovery_prefix = Some(prefix.to_owned()),
            None => {}
        }
        if let Some(client_id) = self.mqtt_client_id {
            settings.client_id = client_id;
        }
        Ok(Some(settings))
    }
}

/// How long `serve` keeps samples (README "Retention").
#[derive(clap::Args)]
struct RetentionArgs {
    /// Keep the rows solarhub collects in a sample table for PERIOD instead of its default:
    /// TABLE=PERIOD with PERIOD a whole number of d, h, m or s, or forever
    /// (battery_cell_samples=14d). Naming a table also lets the first pass delete its rows that
    /// were already older than PERIOD when the hub started. Repeat it, or separate with commas.
    #[arg(
        long = "retention",
        env = "SOLARHUB_RETENTION",
        value_name = "TABLE=PERIOD",
        value_delimiter = ','
    )]
    settings: Vec<String>,
    /// Delete the rows an upgrade or import-legacy brought into a raw sample table once they are
    /// older than PERIOD (by default they are kept forever): TABLE=PERIOD, like --retention.
    #[arg(
        long = "retention-imported",
        env = "SOLARHUB_RETENTION_IMPORTED",
        value_name = "TABLE=PERIOD",
        value_delimiter = ','
    )]
    imported: Vec<String>,
    /// Delete nothing: every sample is kept forever.
    #[arg(
        long,
        env = "SOLARHUB_NO_RETENTION",
        conflicts_with_all = ["settings", "imported"]
    )]
    no_retention: bool,
}

impl RetentionArgs {
    fn retention(self) -> anyhow::Result<Option<solarhub_hub::retention::Retention>> {
        if self.no_retention {
            return Ok(None);
        }
        // Each flag's own mistakes named after it, then the two together.
        solarhub_hub::retention::Policy::from_settings(&self.settings).context("--retention")?;
        let policy = solarhub_hub::retention::Policy::from_flags(&self.settings, &self.imported)
            .context("--retention-imported")?;
        Ok(Some(solarhub_hub::retention::Retention::new(policy)))
    }
}

/// How `serve` is exposed (DESIGN §7).
#[derive(clap::Args)]
struct SecurityArgs {
    /// Serve without authentication: every caller is an admin. Loopback only, unless --insecure.
    #[arg(long, env = "SOLARHUB_WITHOUT_AUTH")]
    without_auth: bool,
    /// Allow plaintext or --without-auth on a non-loopback address.
    #[arg(long, env = "SOLARHUB_INSECURE")]
    insecure: bool,
    /// The hub's TLS certificate chain (PEM).
    #[arg(long, env = "SOLARHUB_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The hub's TLS private key (PEM).
    #[arg(long, env = "SOLARHUB_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM); a certificate's first DNS name (or
    /// its CN) is the collector id it may act as.
    #[arg(long, env = "SOLARHUB_CLIENT_CA", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
}

impl SecurityArgs {
    /// The security to serve with, after refusing an unsafe exposure of `listen`.
    fn check(self, listen: SocketAddr) -> anyhow::Result<solarhub_hub::server::Security> {
        use solarhub_hub::auth::exposure::{Exposure, check};
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(solarhub_hub::auth::tls::TlsFiles {
                cert,
                key,
                client_ca: self.client_ca,
            }),
            _ => None,
        };
        check(Exposure {
            listen,
            tls: tls.is_some(),
            auth: !self.without_auth,
            insecure: self.insecure,
        })
        .map_err(anyhow::Error::msg)?;
        Ok(solarhub_hub::server::Security {
            auth: !self.without_auth,
            tls,
        })
    }
}

/// The served hub's allocator: jemalloc gives freed memory back to the system after a few
/// seconds, where glibc's per-thread arenas (one per blocking thread that ran database work) kept
/// two to three times the live heap (BENCHMARKS.md: capacity).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    solarhub_ops::init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One clear line (the cause chain joined), then a non-zero exit.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the command; one that writes (tokens, imports, recompute, compaction) leaves a row in the
/// audit trail with the operating-system user, whether it succeeded or not.
fn run(cli: Cli) -> anyhow::Result<()> {
    let audited = audited_command(&cli.command);
    let url = cli.database_url.clone();
    let started = std::time::Instant::now();
    let result = run_command(cli);
    if let Some((command, target)) = audited {
        let error = result.as_ref().err().map(|error| format!("{error:#}"));
        let recorded = DatabaseUrl::parse(&url)
            .map_err(anyhow::Error::from)
            .and_then(|url| {
                // A command refused before its database was made leaves no file behind.
                if url.sqlite_path().is_some_and(|path| !path.exists()) {
                    anyhow::bail!("no database yet");
                }
                Ok(url.connect()?)
            })
            .and_then(|mut conn| {
                Ok(solarhub_hub::audit::record_command(
                    &mut conn,
                    &command,
                    &target,
                    started,
                    error.as_deref().map_or(Ok(()), Err),
                )?)
            });
        if let Err(problem) = recorded {
            // A command that failed before the database existed has nowhere to be recorded.
            if result.is_ok() {
                tracing::warn!(%problem, "cannot record the command in the audit trail");
            }
        }
    }
    result
}

/// The audit row's method and target of a command that writes; `None` for one that only reads
/// or serves (a server records its calls itself).
fn audited_command(command: &Command) -> Option<(String, String)> {
    match command {
        Command::Token { action } => match action {
            TokenCommand::Create { name, .. } => {
                Some(("token create".into(), format!("principal {name}")))
            }
            TokenCommand::Revoke { name } => {
                Some(("token revoke".into(), format!("principal {name}")))
            }
            TokenCommand::List => None,
        },
        Command::ImportConfig { file, .. } => {
            Some(("import-config".into(), format!("file {}", file.display())))
        }
        Command::ImportLegacy { file, .. } => {
            Some(("import-legacy".into(), format!("file {}", file.display())))
        }
        Command::Recompute { system, from, to } => Some((
            "recompute".into(),
            format!(
                "system {system} {}..{}",
                from.as_deref().unwrap_or(""),
                to.as_deref().unwrap_or("")
            ),
        )),
        Command::Compact => Some(("compact".into(), String::new())),
        _ => None,
    }
}

fn run_command(cli: Cli) -> anyhow::Result<()> {
    let url = DatabaseUrl::parse(&cli.database_url)?;
    match cli.command {
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            simulate,
            outbox_dir,
            poll_secs,
            insecure,
            metrics_listen,
            metrics_public,
            mqtt,
        } => {
            if let Some(listen) = metrics_listen {
                solarhub_ops::check_metrics_listen(listen, metrics_public)
                    .map_err(anyhow::Error::msg)?;
            }
            let mqtt = mqtt.settings(None)?;
            solarhub_hub::auth::exposure::check(solarhub_hub::auth::exposure::Exposure {
                listen,
                tls: false,
                auth: false,
                insecure,
            })
            .map_err(anyhow::Error::msg)?;
            let database = open_migrated(&url, &legacy_options(&cli.backup_dir, None, None))?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let options = solarhub_hub::demo::DemoOptions {
                listen,
                simulate,
                outbox_dir,
                poll_secs,
                metrics_listen,
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
        Command::Migrate { config, timezone } => {
            // A broken config is refused before the database is even opened.
            let loaded = match &config {
                Some(file) => Some((file.clone(), load_config(file, &builtin_adapter_types()?)?)),
                None => None,
            };
            let options = legacy_options(&cli.backup_dir, config, timezone);
            let database = open_migrated(&url, &options)?;
            if let Some((file, loaded)) = loaded {
                apply_config(&database, &file, loaded, builtin_adapter_types()?, false)?;
            }
            Ok(())
        }
        Command::Token { action } => {
            let database = open_migrated(&url, &legacy_options(&cli.backup_dir, None, None))?;
            let mut conn = database.get()?;
            token_command(&mut conn, action)
        }
        Command::ImportConfig {
            file,
            collector_id,
            prune,
        } => {
            // A broken file is refused before the database is even opened.
            let adapter_types = builtin_adapter_types()?;
            let mut loaded = load_config(&file, &adapter_types)?;
            if let Some(collector_id) = &collector_id {
                loaded.assign_collector(collector_id)?;
            }
            let database = open_migrated(&url, &legacy_options(&cli.backup_dir, None, None))?;
            apply_config(&database, &file, loaded, adapter_types, prune)
        }
        Command::ImportLegacy {
            file,
            config,
            timezone,
        } => {
            let database = open_migrated(&url, &legacy_options(&cli.backup_dir, None, None))?;
            let options = legacy_options(&None, config, timezone);
            let report = solarhub_hub::legacy::import_legacy(&database, &file, &options)?;
            tracing::info!(target: solarhub_hub::auth::layer::AUDIT, principal = "cli", file = %file.display(), system = %report.system_id, "legacy database imported");
            println!("{report}");
            recompute(&database, &report.system_id, None)?;
            let mut legacy = solarhub_hub::db::legacy_source::open_read_only(&file)?;
            let comparison = solarhub_hub::legacy::compare_with_legacy(
                &mut legacy,
                &mut *database.get()?,
                &report.system_id,
            )?;
            println!("{comparison}");
            Ok(())
        }
        Command::Compact => {
            let database = open_migrated(&url, &legacy_options(&cli.backup_dir, None, None))?;
            let mut conn = database.get()?;
            match db::retention::compact(&mut conn)? {
                Some((before, after)) => println!(
                    "{url}: {before} pages before, {after} after; deleted samples now give their \
                     space back"
                ),
                None => println!("{url}: nothing to do on Postgres (autovacuum reuses the space)"),
            }
            Ok(())
        }
        Command::Retention { dry_run, retention } => {
            if !dry_run {
                anyhow::bail!(
                    "retention passes run inside `serve`; `retention --dry-run` shows what the next one deletes"
                );
            }
            let retention = retention.retention()?;
            let database = open_migrated(&url, &legacy_options(&cli.backup_dir, None, None))?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            match retention {
                None => println!("--no-retention: a hub started so deletes nothing"),
                Some(retention) => {
                    let now = db::now_ms();
                    let plans = runtime.block_on(solarhub_hub::retention::plan(
                        &database,
                        &retention.policy,
                        now,
                    ))?;
                    print!("{}", solarhub_hub::retention::DryRun { now, plans: &plans });
                }
            }
            Ok(())
        }
        Command::Audit {
            since,
            principal,
            method,
            outcome,
            limit,
        } => {
            let since = since
                .map(|text| solarhub_hub::audit::parse_since(&text, db::now_ms()))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let outcome = outcome
                .map(|text| {
                    solarhub_hub::audit::outcome_named(&text).with_context(|| {
                        format!("--outcome {text:?} is not a gRPC code (ok, invalid_argument, permission_denied, …)")
                    })
                })
                .transpose()?;
            let database = open_migrated(&url, &legacy_options(&cli.backup_dir, None, None))?;
            let filter = db::audit::AuditFilter {
                since,
                until: None,
                principal,
                method,
                outcome,
                limit: i64::from(limit.max(1)),
            };
            let rows = db::audit::list(&mut *database.get()?, &filter)?;
            for row in &rows {
                println!("{}", solarhub_hub::audit::Shown(row));
            }
            if rows.is_empty() {
                eprintln!("no audit rows match");
            }
            Ok(())
        }
        Command::Recompute { system, from, to } => {
            let database = open_migrated(&url, &legacy_options(&cli.backup_dir, None, None))?;
            let tz = {
                let mut conn = database.get()?;
                let systems = db::catalog::load_systems(&mut conn)?;
                let found = systems.iter().find(|s| s.system_id == system);
                let found = found.with_context(|| format!("system {system} not found"))?;
                solarhub_hub::local_time::timezone(found)
            };
            let time = |flag: &str, text: Option<String>| -> anyhow::Result<Option<i64>> {
                text.map(|text| {
                    solarhub_hub::local_time::parse_time(&text, tz).with_context(|| {
                        format!(
                            "--{flag} {text:?} is neither a date (2025-06-01, local midnight of \
                             system {system}) nor an RFC 3339 time (2025-06-01T00:00:00+05:00)"
                        )
                    })
                })
                .transpose()
            };
            let range = match (time("from", from)?, time("to", to)?) {
                (None, None) => None,
                (from, to) => Some((from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX))),
            };
            recompute(&database, &system, range)
        }
        Command::Serve {
            listen,
            config,
            timezone,
            array_sample_secs,
            metrics_listen,
            metrics_public,
            max_connections,
            mqtt,
            security,
            retention,
        } => {
            // An unsafe exposure (or a bad setting) is refused before anything is opened.
            let security = security.check(listen)?;
            if let Some(listen) = metrics_listen {
                solarhub_ops::check_metrics_listen(listen, metrics_public)
                    .map_err(anyhow::Error::msg)?;
            }
            let retention = retention.retention()?;
            let loaded = match &config {
                Some(file) => Some((file.clone(), load_config(file, &builtin_adapter_types()?)?)),
                None => None,
            };
            let mqtt = mqtt.settings(loaded.as_ref().and_then(|(_, l)| l.mqtt.as_ref()))?;
            let database = open_migrated(&url, &legacy_options(&cli.backup_dir, config, timezone))?;
            if let Some((file, loaded)) = loaded {
                apply_config(&database, &file, loaded, builtin_adapter_types()?, false)?;
            }
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
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
                    array_samples_every: (array_sample_secs > 0.0)
                        .then(|| std::time::Duration::from_secs_f64(array_sample_secs)),
                    ..solarhub_hub::server::ServeOptions::default()
                };
                solarhub_hub::server::serve_with(database, listener, options, shutdown_signal())
                    .await?;
                tracing::info!("stopped");
                Ok(())
            })
        }
    }
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

fn token_command(conn: &mut db::DbConnection, action: TokenCommand) -> anyhow::Result<()> {
    use solarhub_hub::auth::{Role, principals};
    match action {
        TokenCommand::Create {
            name,
            role,
            collector_id,
            certificate_subject,
        } => {
            let role = Role::parse(&role).context("unknown role")?;
            let created = principals::create(
                conn,
                &name,
                role,
                collector_id.as_deref(),
                certificate_subject.as_deref(),
            )?;
            // The token alone on standard output (TOKEN=$(solarhub-hub token create …)); what it
            // is, on standard error.
            match &created.principal.collector_id {
                Some(id) => eprintln!("{role} token for {name}, bound to collector {id}:"),
                None => eprintln!("{role} token for {name}:"),
            }
            println!("{}", created.token.expose());
            if let Some(subject) = &created.principal.certificate_subject {
                eprintln!("a client certificate naming {subject} speaks as {name} too");
            }
            eprintln!("it is shown only now: the hub keeps its SHA-256, not the token");
            Ok(())
        }
        TokenCommand::List => {
            for principal in principals::list(conn)? {
                println!("{principal}");
            }
            Ok(())
        }
        TokenCommand::Revoke { name } => {
            principals::revoke(conn, &name)?;
            println!(
                "revoked {name}: every hub on this database refuses it within {} s",
                solarhub_hub::auth::authenticator::CACHE_TTL.as_secs()
            );
            Ok(())
        }
    }
}

/// A count of at least one (`--max-connections`).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a whole number of at least 1")),
    }
}

fn legacy_options(
    backup_dir: &Option<PathBuf>,
    config: Option<PathBuf>,
    timezone: Option<String>,
) -> LegacyOptions {
    LegacyOptions {
        config,
        timezone,
        backup_dir: backup_dir.clone(),
        progress: solarhub_hub::progress::Progress::on_stderr(),
    }
}

/// Opens the database, upgrading a legacy SQLite file in place first, and applies migrations.
fn open_migrated(url: &DatabaseUrl, options: &LegacyOptions) -> anyhow::Result<Database> {
    let upgrade = solarhub_hub::legacy::upgrade_in_place_if_legacy(url, options)?;
    if let Some(upgrade) = &upgrade {
        println!("{upgrade}");
    }
    let database = Database::open(url.clone())?;
    let mut conn = database.get()?;
    let report = db::run_migrations(&mut conn)?;
    if report.applied.is_empty() {
        tracing::info!(database = %url, "schema is current");
    } else {
        tracing::info!(database = %url, applied = ?report.applied, "applied migrations");
    }
    drop(conn);
    if let Some(upgrade) = upgrade {
        // The old app's samples get rollups of their own, compared with the old app's figures
        // (its tables stay in the file under the legacy_ prefix).
        recompute(&database, &upgrade.system_id, None)?;
        let comparison = solarhub_hub::legacy::compare_with_legacy(
            &mut *database.get()?,
            &mut *database.get()?,
            &upgrade.system_id,
        )?;
        println!("{comparison}");
    }
    Ok(database)
}

/// Rebuilds the rollups of `system_id` and says what it wrote.
fn recompute(
    database: &Database,
    system_id: &str,
    range: Option<(i64, i64)>,
) -> anyhow::Result<()> {
    let mut conn = database.get()?;
    let settings = solarhub_hub::rollup::Settings::default();
    let progress = solarhub_hub::progress::Progress::on_stderr();
    match solarhub_hub::rollup::recompute_with_progress(
        &mut conn, system_id, range, settings, &progress,
    )? {
        Some(report) => {
            tracing::info!(target: solarhub_hub::auth::layer::AUDIT, principal = "cli", system = system_id, hours = report.hours, days = report.days, "recomputed");
            println!(
                "rollups of {system_id}: {} hours and {} days recomputed, {} rows written",
                report.hours, report.days, report.rows
            );
            if report.frozen_hours > 0 {
                println!(
                    "{} earlier hours left as they are: retention has deleted samples they were \
                     made from",
                    report.frozen_hours
                );
            }
            Ok(())
        }
        None => anyhow::bail!("system {system_id} not found"),
    }
}

fn apply_config(
    database: &Database,
    file: &std::path::Path,
    loaded: LoadedConfig,
    adapter_types: Vec<KnownAdapterType>,
    prune: bool,
) -> anyhow::Result<()> {
    for note in &loaded.ignored {
        tracing::info!(file = %file.display(), "{note}");
    }
    let mut loaded = loaded;
    let mut conn = database.get()?;
    match loaded.keep_known_timezone(&db::catalog::load_systems(&mut conn)?) {
        Some(zone) => tracing::info!(
            file = %file.display(),
            "the file names no timezone; the system keeps its timezone {zone}"
        ),
        None => {
            tracing::info!(file = %file.display(), "timezone taken from {}", loaded.timezone_source)
        }
    }
    let (_, existing, _) = db::catalog::load_catalog(&mut conn)?;
    let kept = loaded.keep_assigned_collectors(&existing.adapters);
    if !kept.is_empty() {
        tracing::info!(file = %file.display(), adapters = ?kept, "the file names no collector for these adapters; they keep the one the catalog gives them");
    }
    let rows: Vec<_> = adapter_types.into_iter().map(|t| t.row).collect();
    let report = db::catalog::apply_installation(&mut conn, &rows, &loaded.installation, prune)?;
    tracing::info!(target: solarhub_hub::auth::layer::AUDIT, principal = "cli", file = %file.display(), changes = report.changes.len(), "config imported");
    for change in &report.changes {
        println!("{change}");
    }
    println!(
        "{}: {} created, {} updated, {} deleted",
        file.display(),
        report.count(|k| matches!(k, ChangeKind::Created)),
        report.count(|k| matches!(k, ChangeKind::Updated(_))),
        report.count(|k| matches!(k, ChangeKind::Deleted)),
    );
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
