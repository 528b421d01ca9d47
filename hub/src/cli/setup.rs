//! Opening the database as every command does (a legacy file upgraded in place first), importing
//! the old app's config and database, and rebuilding rollups.

use std::path::PathBuf;

use solarhub_hub::adapter_types::KnownAdapterType;
use solarhub_hub::catalog::ChangeKind;
use solarhub_hub::config_import::LoadedConfig;
use solarhub_hub::db::{self, Database, DatabaseUrl};
use solarhub_hub::legacy::LegacyOptions;

pub(crate) fn legacy_options(
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
pub(crate) fn open_migrated(
    url: &DatabaseUrl,
    options: &LegacyOptions,
) -> anyhow::Result<Database> {
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

pub(crate) fn apply_config(
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

/// Rebuilds the rollups of `system_id` and says what it wrote.
pub(crate) fn recompute(
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
