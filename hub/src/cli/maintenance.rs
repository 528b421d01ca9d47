//! `recompute`, `compact` and `retention --dry-run`: maintenance on the database directly.

use std::path::PathBuf;

use anyhow::Context;
use solarhub_hub::db::{self, DatabaseUrl};

use super::args::RetentionArgs;
use super::setup::{legacy_options, open_migrated, recompute};

/// `recompute`'s system and range.
#[derive(clap::Args)]
pub(crate) struct RecomputeArgs {
    #[arg(long, default_value = "home")]
    pub(crate) system: String,
    /// Start of the range: a date (2025-06-01, local midnight of the system) or an RFC 3339
    /// time (2025-06-01T00:00:00+05:00); default: the first sample.
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// End of the range (exclusive), in the same forms; default: the last sample.
    #[arg(long)]
    pub(crate) to: Option<String>,
}

/// Rebuilds a system's rollups over a range given as dates or RFC 3339 times.
pub(crate) fn recompute_command(
    url: &DatabaseUrl,
    backup_dir: &Option<PathBuf>,
    args: RecomputeArgs,
) -> anyhow::Result<()> {
    let RecomputeArgs { system, from, to } = args;
    let database = open_migrated(url, &legacy_options(backup_dir, None, None))?;
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

/// Rewrites a SQLite file without its free pages.
pub(crate) fn compact(url: &DatabaseUrl, backup_dir: &Option<PathBuf>) -> anyhow::Result<()> {
    let database = open_migrated(url, &legacy_options(backup_dir, None, None))?;
    let mut conn = database.get()?;
    match db::retention::compact(&mut conn)? {
        Some((before, after)) => println!(
            "{url}: {before} pages before, {after} after; deleted samples now give their \
             space back"
        ),
        None if db::retention::autovacuum_off(&mut conn)? => println!(
            "{url}: autovacuum is off on this Postgres server: run VACUUM (ANALYZE) on this \
             database to make deleted rows' space reusable"
        ),
        None => println!("{url}: nothing to do on Postgres (autovacuum reuses the space)"),
    }
    Ok(())
}

/// What the next retention pass would delete.
pub(crate) fn retention_dry_run(
    url: &DatabaseUrl,
    backup_dir: &Option<PathBuf>,
    dry_run: bool,
    retention: RetentionArgs,
) -> anyhow::Result<()> {
    if !dry_run {
        anyhow::bail!(
            "retention passes run inside `serve`; `retention --dry-run` shows what the next one deletes"
        );
    }
    let retention = retention.retention()?;
    let database = open_migrated(url, &legacy_options(backup_dir, None, None))?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match retention {
        None => println!("--no-retention: a hub started so deletes nothing"),
        Some(retention) => {
            let now = db::now_ms();
            let plans = runtime.block_on(solarhub_hub::retention::plan(
                &database,
                &retention.policy,
                now,
            ))?;
            let keep = retention.policy.keep_audit();
            let audit_rows = match keep.cutoff(now) {
                Some(cutoff) => db::audit::count_before(&mut *database.get()?, cutoff)?,
                None => 0,
            };
            print!(
                "{}",
                solarhub_hub::retention::DryRun {
                    now,
                    plans: &plans,
                    audit: (keep, audit_rows),
                }
            );
        }
    }
    Ok(())
}
