//! `solarhub-hub`: migrate, import and serve.

mod cli;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use solarhub_hub::db::{self, DatabaseUrl};

use cli::args::RetentionArgs;

#[derive(Parser)]
#[command(
    name = "solarhub-hub",
    version,
    about = "The solarhub hub: hierarchy, imports, ingest and the gRPC API"
)]
pub(crate) struct Cli {
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
pub(crate) enum Command {
    /// Apply pending migrations (upgrading a legacy database first), then serve gRPC.
    Serve(cli::serve::ServeArgs),
    /// The whole system in one process: migrate (or create) the database, put the demo
    /// installation in it, simulate one device of every driver type, serve gRPC, and stream the
    /// simulated readings through a real collector. Ctrl-C stops it; the next start continues.
    #[cfg(feature = "demo")]
    Demo(cli::serve::DemoArgs),
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
    Audit(cli::audit::AuditArgs),
    /// Rebuild the hourly and daily rollups of a system from its raw samples.
    Recompute(cli::maintenance::RecomputeArgs),
    /// A device's settings and control commands (docs/control.md): read, set (with --dry-run),
    /// revert, list, show, cancel. A hub serving the same database delivers the commands.
    Control {
        #[command(subcommand)]
        action: cli::control::ControlCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a principal and print its token (once: only its hash is kept).
    Create {
        #[arg(long)]
        name: String,
        /// admin (everything), reader (queries), collector (ingest as one collector id) or
        /// operator (ControlService: device settings, nothing else).
        #[arg(long, value_parser = ["admin", "reader", "collector", "operator"])]
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
    let audited = cli::audit::audited_command(&cli.command);
    let url = cli.database_url.clone();
    let started = std::time::Instant::now();
    let result = run_command(cli);
    cli::audit::record(&url, audited, started, &result);
    result
}

fn run_command(cli: Cli) -> anyhow::Result<()> {
    let url = DatabaseUrl::parse(&cli.database_url)?;
    let backup_dir = &cli.backup_dir;
    match cli.command {
        Command::Serve(args) => cli::serve::serve(&url, backup_dir, args),
        #[cfg(feature = "demo")]
        Command::Demo(args) => cli::serve::demo(&url, backup_dir, args),
        Command::Migrate { config, timezone } => {
            cli::imports::migrate(&url, backup_dir, config, timezone)
        }
        Command::Token { action } => {
            let options = cli::setup::legacy_options(backup_dir, None, None);
            let database = cli::setup::open_migrated(&url, &options)?;
            cli::tokens::token_command(&mut *database.get()?, action)
        }
        Command::ImportConfig {
            file,
            collector_id,
            prune,
        } => cli::imports::import_config(&url, backup_dir, file, collector_id, prune),
        Command::ImportLegacy {
            file,
            config,
            timezone,
        } => cli::imports::import_legacy(&url, backup_dir, file, config, timezone),
        Command::Compact => cli::maintenance::compact(&url, backup_dir),
        Command::Retention { dry_run, retention } => {
            cli::maintenance::retention_dry_run(&url, backup_dir, dry_run, retention)
        }
        Command::Audit(args) => cli::audit::list(&url, backup_dir, args),
        Command::Recompute(args) => cli::maintenance::recompute_command(&url, backup_dir, args),
        Command::Control { action } => cli::control::run(&url, backup_dir, action),
    }
}
