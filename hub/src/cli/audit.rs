//! `audit`, and the row every command that writes leaves in the audit trail.

use std::path::PathBuf;

use anyhow::Context;
use solarhub_hub::db::{self, DatabaseUrl};

use super::setup::{legacy_options, open_migrated};
use crate::{Command, TokenCommand};

/// `audit`'s filters.
#[derive(clap::Args)]
pub(crate) struct AuditArgs {
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
}

/// Prints the rows the filters select, newest first.
pub(crate) fn list(
    url: &DatabaseUrl,
    backup_dir: &Option<PathBuf>,
    args: AuditArgs,
) -> anyhow::Result<()> {
    let AuditArgs {
        since,
        principal,
        method,
        outcome,
        limit,
    } = args;
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
    let database = open_migrated(url, &legacy_options(backup_dir, None, None))?;
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

/// The audit row's method and target of a command that writes; `None` for one that only reads
/// or serves (a server records its calls itself).
pub(crate) fn audited_command(command: &Command) -> Option<(String, String)> {
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
        Command::Recompute(args) => Some((
            "recompute".into(),
            format!(
                "system {} {}..{}",
                args.system,
                args.from.as_deref().unwrap_or(""),
                args.to.as_deref().unwrap_or("")
            ),
        )),
        Command::Compact => Some(("compact".into(), String::new())),
        Command::Control { action } => action.audited(),
        _ => None,
    }
}

/// Records a command that wrote (`audited`, from [`audited_command`]) with its outcome, on the
/// database it ran on; a command that failed before its database existed has nowhere to go.
pub(crate) fn record(
    url: &str,
    audited: Option<(String, String)>,
    started: std::time::Instant,
    result: &anyhow::Result<()>,
) {
    if let Some((command, target)) = audited {
        let error = result.as_ref().err().map(|error| format!("{error:#}"));
        let recorded = DatabaseUrl::parse(url)
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
}
