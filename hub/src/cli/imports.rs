//! `migrate`, `import-config` and `import-legacy`: the old app's config and database brought in.

use std::path::PathBuf;

use solarhub_hub::adapter_types::builtin_adapter_types;
use solarhub_hub::config_import::load_config;
use solarhub_hub::db::DatabaseUrl;

use super::setup::{apply_config, legacy_options, open_migrated, recompute};

/// Upgrades and migrates, then imports the config if given.
pub(crate) fn migrate(
    url: &DatabaseUrl,
    backup_dir: &Option<PathBuf>,
    config: Option<PathBuf>,
    timezone: Option<String>,
) -> anyhow::Result<()> {
    // A broken config is refused before the database is even opened.
    let loaded = match &config {
        Some(file) => Some((file.clone(), load_config(file, &builtin_adapter_types()?)?)),
        None => None,
    };
    let options = legacy_options(backup_dir, config, timezone);
    let database = open_migrated(url, &options)?;
    if let Some((file, loaded)) = loaded {
        apply_config(&database, &file, loaded, builtin_adapter_types()?, false)?;
    }
    Ok(())
}

/// Imports `file` into the catalog, assigning its adapters to `collector_id` when given.
pub(crate) fn import_config(
    url: &DatabaseUrl,
    backup_dir: &Option<PathBuf>,
    file: PathBuf,
    collector_id: Option<String>,
    prune: bool,
) -> anyhow::Result<()> {
    // A broken file is refused before the database is even opened.
    let adapter_types = builtin_adapter_types()?;
    let mut loaded = load_config(&file, &adapter_types)?;
    if let Some(collector_id) = &collector_id {
        loaded.assign_collector(collector_id)?;
    }
    let database = open_migrated(url, &legacy_options(backup_dir, None, None))?;
    apply_config(&database, &file, loaded, adapter_types, prune)
}

/// Copies the old app's database in, rolls it and compares the figures.
pub(crate) fn import_legacy(
    url: &DatabaseUrl,
    backup_dir: &Option<PathBuf>,
    file: PathBuf,
    config: Option<PathBuf>,
    timezone: Option<String>,
) -> anyhow::Result<()> {
    let database = open_migrated(url, &legacy_options(backup_dir, None, None))?;
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
