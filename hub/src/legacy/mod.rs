//! Taking over the existing app's SQLite database (DESIGN §6.2) without losing a row or a kWh.
//!
//! Two ways in, one copy:
//! - **in place** (`serve` / `migrate` pointed at the old file): check the file, decide the
//!   system and its timezone (and refuse, untouched, a file whose naive timestamps nothing can
//!   place), back it up (and stop if that fails), rename the old tables whose names solarhub uses
//!   to `legacy_<name>`, create the solarhub schema, then copy in one transaction. The old tables
//!   stay, renamed, so nothing of the original is dropped. An upgrade interrupted after the rename
//!   resumes on the next start.
//! - **`import-legacy FILE`**: opens the file read-only and copies it into any database.
//!
//! The copy ([`copy`]) takes the config first, then the file's own hierarchy ([`hierarchy`]) for
//! what the config does not say, placeholders only for ids found nowhere; it reads timestamps in
//! the chosen zone ([`zone`]), turns battery signs to solarhub's, keeps conflicting rows apart from
//! exact duplicates, and carries the old app's rollups over where there are no raw samples
//! ([`old_rollups`]). Its report ([`report`]) adds up table by table, or the transaction is rolled
//! back. Running it again inserts nothing.

mod compare;
mod copy;
mod hierarchy;
mod old_rollups;
mod report;
mod timestamps;
mod zone;

use std::path::{Path, PathBuf};

pub use compare::{LegacyComparison, compare_with_legacy};
pub use copy::UNASSIGNED_ARRAY_ID;
pub use report::{LegacyReport, RollupReport, TableReport};
pub use timestamps::{TimestampKind, parse_legacy_timestamp};
pub use zone::ZoneSource;

use crate::adapter_types::{AdapterTypeError, builtin_adapter_types};
use crate::catalog::{Installation, System};
use crate::config_import::{ConfigError, LoadedConfig, TimezoneSource, load_config};
use crate::db::legacy_imports::{self, LegacyImportRow};
use crate::db::legacy_source::{
    self as source, LEGACY_CLASHING_TABLES, LEGACY_PREFIX, LEGACY_SAMPLE_TABLES,
};
use crate::db::{self, Database, DatabaseUrl, DbConnection, DbError, catalog, introspect, now_ms};
use copy::{Copier, Provenance};
use hierarchy::FileHierarchy;
use zone::{NoZone, OffsetIndex, ZoneChoice};

/// What the user said about an upgrade or import.
#[derive(Debug, Clone, Default)]
pub struct LegacyOptions {
    /// The existing app's `config.yaml`: the system, hierarchy and timezone.
    pub config: Option<PathBuf>,
    /// The IANA timezone the old app wrote local times in (`--timezone`); wins over everything.
    pub timezone: Option<String>,
    /// Where the backup of an in-place upgrade goes (default: next to the file).
    pub backup_dir: Option<PathBuf>,
    /// Where the copy reports its progress (silent by default).
    pub progress: crate::progress::Progress,
}

impl LegacyOptions {
    pub fn with_config(config: &Path) -> LegacyOptions {
        LegacyOptions {
            config: Some(config.to_owned()),
            ..LegacyOptions::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("legacy database {path}: {reason}; it was left untouched")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} is not a database of the existing app (none of its sample tables is there)")]
    NotLegacy { path: PathBuf },
    #[error(
        "cannot back up {path} to {backup}: {reason}; the upgrade did not start and the file was left untouched"
    )]
    Backup {
        path: PathBuf,
        backup: PathBuf,
        reason: String,
    },
    #[error(
        "legacy database {path} has timestamps without a UTC offset and names no timezone anywhere; pass --timezone (an IANA name such as Asia/Karachi) to say which zone the old app wrote them in; the file was left untouched"
    )]
    NoTimezone { path: PathBuf },
    #[error(
        "{named_by} names timezone {zone:?}, which is not an IANA timezone (such as Asia/Karachi)"
    )]
    BadTimezone { zone: String, named_by: String },
    #[error(
        "the legacy copy of table {table} does not add up ({read} read, {inserted} inserted, {duplicates} exact duplicates, {conflicts} conflicts, {unplaceable} unplaceable); nothing was written"
    )]
    Unbalanced {
        table: String,
        read: u64,
        inserted: u64,
        duplicates: u64,
        conflicts: u64,
        unplaceable: u64,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    AdapterTypes(#[from] AdapterTypeError),
    #[error("{0}")]
    Db(#[from] DbError),
    #[error(
        "the database holds several systems ({0}); pass --config to say which one the legacy data belongs to"
    )]
    AmbiguousSystem(String),
}

/// What is decided before anything is written: the system the data goes to, its zone, and the
/// file's own hierarchy.
struct Plan {
    system: System,
    /// The system exists nowhere yet and nothing named it.
    placeholder_system: bool,
    zone: ZoneChoice,
    hierarchy: FileHierarchy,
    notes: Vec<String>,
}

/// Decides the system and its zone (DESIGN §6.2; see [`zone`] for the order of sources).
fn plan(
    source: &mut DbConnection,
    prefix: &str,
    path: &Path,
    config: Option<&LoadedConfig>,
    flag: Option<&str>,
    existing: &[System],
) -> Result<Plan, LegacyError> {
    let hierarchy = FileHierarchy::read(source, prefix)?;
    let file_system = hierarchy.system();
    let mut notes = Vec::new();
    if let Some(fs) = &file_system
        && !fs.folded.is_empty()
    {
        notes.push(format!(
            "the file's systems {} folded into {}",
            fs.folded.join(", "),
            fs.system_id
        ));
    }
    let from_file = |fs: &hierarchy::FileSystem| System {
        system_id: fs.system_id.clone(),
        name: fs.name.clone().unwrap_or_else(|| fs.system_id.clone()),
        description: fs.description.clone(),
        timezone: String::new(),
        currency: None,
        tariff_json: None,
    };
    let config_system = config.and_then(|c| c.installation.system.clone());
    let (mut system, existed, placeholder_system) = match config_system {
        Some(system) => {
            let existed = existing
                .iter()
                .find(|e| e.system_id == system.system_id)
                .cloned();
            (system, existed, false)
        }
        None => match existing {
            [only] => (only.clone(), Some(only.clone()), false),
            [] => match &file_system {
                Some(fs) => (from_file(fs), None, false),
                None => (
                    System {
                        system_id: "home".into(),
                        name: "Home".into(),
                        description: Some(
                            "created by the legacy upgrade: nothing named the system".into(),
                        ),
                        timezone: String::new(),
                        currency: None,
                        tariff_json: None,
                    },
                    None,
                    true,
                ),
            },
            several => match file_system
                .as_ref()
                .and_then(|fs| several.iter().find(|s| s.system_id == fs.system_id))
            {
                Some(named) => (named.clone(), Some(named.clone()), false),
                None => {
                    let ids: Vec<&str> = several.iter().map(|s| s.system_id.as_str()).collect();
                    return Err(LegacyError::AmbiguousSystem(ids.join(", ")));
                }
            },
        },
    };
    let given = match (flag, config) {
        (Some(zone), _) => Some((zone.to_owned(), ZoneSource::Flag)),
        (None, Some(config)) if config.timezone_source != TimezoneSource::DefaultUtc => {
            config.installation.system.as_ref().map(|s| {
                (
                    s.timezone.clone(),
                    ZoneSource::Config(config.timezone_source.to_string()),
                )
            })
        }
        _ => None,
    };
    let mut candidates = Vec::new();
    if let Some(existed) = existed {
        candidates.push((existed.timezone, ZoneSource::System(existed.system_id)));
    }
    if let Some((key, zone)) = hierarchy.timezone_setting() {
        candidates.push((zone, ZoneSource::FileSetting(key)));
    }
    if let Some(fs) = &file_system
        && let Some(zone) = &fs.timezone
    {
        candidates.push((zone.clone(), ZoneSource::FileSystem(fs.system_id.clone())));
    }
    let zone = match ZoneChoice::choose(given, candidates, || OffsetIndex::scan(source, prefix))? {
        Ok(zone) => zone,
        Err(NoZone::Unknown) => {
            return Err(LegacyError::NoTimezone {
                path: path.to_owned(),
            });
        }
        Err(NoZone::Invalid { zone, source }) => {
            return Err(LegacyError::BadTimezone {
                zone,
                named_by: source.to_string(),
            });
        }
    };
    system.timezone = zone.tz.name().to_owned();
    Ok(Plan {
        system,
        placeholder_system,
        zone,
        hierarchy,
        notes,
    })
}

/// Upgrades `url` in place when it is a SQLite file of the existing app (or one whose upgrade was
/// interrupted). Returns `None` for anything else, without touching it.
pub fn upgrade_in_place_if_legacy(
    url: &DatabaseUrl,
    options: &LegacyOptions,
) -> Result<Option<LegacyReport>, LegacyError> {
    let Some(path) = url.sqlite_path() else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    let unreadable = |error: DbError| LegacyError::Unreadable {
        path: path.to_owned(),
        reason: error.to_string(),
    };
    let mut read_only = source::open_read_only(path).map_err(unreadable)?;
    let has_schema = introspect::has_migrations_table(&mut read_only).map_err(unreadable)?;
    let resume = if has_schema {
        match introspect::has_table(&mut read_only, "legacy_imports").map_err(unreadable)? {
            true => legacy_imports::unfinished_in_place(&mut read_only).map_err(unreadable)?,
            false => None,
        }
    } else {
        None
    };
    let is_legacy = !has_schema && has_legacy_tables(&mut read_only, "").map_err(unreadable)?;
    if !is_legacy && resume.is_none() {
        return Ok(None);
    }
    // The config is checked before anything is written.
    let loaded = load_optional_config(options.config.as_deref())?;
    // Only a file about to be upgraded pays for a full read of its pages.
    source::check_integrity(&mut read_only).map_err(unreadable)?;
    // So is the zone: a file that cannot be read right is refused untouched.
    let existing = match has_schema {
        true => catalog::load_systems(&mut read_only)?,
        false => Vec::new(),
    };
    let prefix_now = if resume.is_some() { LEGACY_PREFIX } else { "" };
    let plan = plan(
        &mut read_only,
        prefix_now,
        path,
        loaded.as_ref(),
        options.timezone.as_deref(),
        &existing,
    )?;

    let (import_id, backup) = match resume {
        Some(row) => {
            tracing::warn!(file = %path.display(), "resuming an interrupted legacy upgrade");
            (row.import_id, row.backup.map(PathBuf::from))
        }
        None => {
            let backup = backup_path(path, options.backup_dir.as_deref());
            backup_legacy(&mut read_only, path, &backup)?;
            tracing::info!(file = %path.display(), backup = %backup.display(), "backed up the legacy database");
            drop(read_only);
            let import_id = start_in_place(url, path, &backup)?;
            (import_id, Some(backup))
        }
    };

    let provenance = Provenance {
        source: path.display().to_string(),
        import_id: import_id.clone(),
    };
    let mut conn = url.connect()?;
    let report = db::in_transaction(&mut conn, |conn| -> Result<LegacyReport, LegacyError> {
        let mut report = copy_legacy(
            conn,
            None,
            LEGACY_PREFIX,
            loaded.as_ref(),
            &plan,
            &provenance,
            &options.progress,
        )?;
        report.source = path.to_owned();
        report.backup = backup.clone();
        legacy_imports::record_finish(conn, &import_id, now_ms(), &report.to_string())?;
        Ok(report)
    })?;
    Ok(Some(report))
}

/// Copies the legacy database at `file` into `database` (any backend). The file is opened read-only.
pub fn import_legacy(
    database: &Database,
    file: &Path,
    options: &LegacyOptions,
) -> Result<LegacyReport, LegacyError> {
    let unreadable = |error: DbError| LegacyError::Unreadable {
        path: file.to_owned(),
        reason: error.to_string(),
    };
    let mut source_conn = source::open_read_only(file).map_err(unreadable)?;
    source::check_integrity(&mut source_conn).map_err(unreadable)?;
    // A file that was already upgraded in place keeps its old tables under the legacy_ prefix.
    let prefix = if has_legacy_tables(&mut source_conn, "").map_err(unreadable)?
        && !introspect::has_migrations_table(&mut source_conn).map_err(unreadable)?
    {
        ""
    } else if has_legacy_tables(&mut source_conn, LEGACY_PREFIX).map_err(unreadable)? {
        LEGACY_PREFIX
    } else {
        return Err(LegacyError::NotLegacy {
            path: file.to_owned(),
        });
    };
    let loaded = load_optional_config(options.config.as_deref())?;
    let mut target = database.get()?;
    let existing = catalog::load_systems(&mut target)?;
    let plan = plan(
        &mut source_conn,
        prefix,
        file,
        loaded.as_ref(),
        options.timezone.as_deref(),
        &existing,
    )?;
    let started_at = now_ms();
    let import_id = format!("{}@{started_at}", file.display());
    let provenance = Provenance {
        source: file.display().to_string(),
        import_id: import_id.clone(),
    };
    let report = db::in_transaction(&mut target, |target| -> Result<LegacyReport, LegacyError> {
        legacy_imports::record_start(
            target,
            &LegacyImportRow {
                import_id: import_id.clone(),
                source: file.display().to_string(),
                in_place: false,
                backup: None,
                started_at,
                finished_at: None,
                report: None,
            },
        )?;
        let mut report = copy_legacy(
            target,
            Some(&mut source_conn),
            prefix,
            loaded.as_ref(),
            &plan,
            &provenance,
            &options.progress,
        )?;
        report.source = file.to_owned();
        legacy_imports::record_finish(target, &import_id, now_ms(), &report.to_string())?;
        Ok(report)
    })?;
    Ok(report)
}

/// The copy, inside the caller's transaction: config, system, the file's hierarchy, samples, the
/// old app's rollups; then the report is checked.
fn copy_legacy(
    target: &mut DbConnection,
    source: Option<&mut DbConnection>,
    prefix: &str,
    config: Option<&LoadedConfig>,
    plan: &Plan,
    provenance: &Provenance,
    progress: &crate::progress::Progress,
) -> Result<LegacyReport, LegacyError> {
    let adapter_types = builtin_adapter_types()?;
    let type_rows: Vec<_> = adapter_types.iter().map(|t| t.row.clone()).collect();
    if let Some(config) = config {
        // The config's system takes the chosen zone (the same unless --timezone overrides it or
        // the config names none).
        let mut installation = config.installation.clone();
        installation.system = Some(plan.system.clone());
        catalog::apply_installation(target, &type_rows, &installation, false)?;
    }
    catalog::apply_installation(
        target,
        &type_rows,
        &Installation {
            system: Some(plan.system.clone()),
            ..Installation::default()
        },
        false,
    )?;
    let mut report = LegacyReport {
        system_id: plan.system.system_id.clone(),
        timezone: plan.system.timezone.clone(),
        timezone_source: Some(plan.zone.source.clone()),
        notes: plan.notes.iter().chain(&plan.zone.notes).cloned().collect(),
        ..LegacyReport::default()
    };
    if plan.placeholder_system {
        report.placeholders.push(format!(
            "system {} (nothing named the system)",
            plan.system.system_id
        ));
    }
    let mut copier = Copier::new(
        target,
        source,
        prefix,
        &plan.system,
        &plan.zone,
        provenance,
        report,
    )?;
    copier.progress = progress.clone();
    let (rows, notes) =
        plan.hierarchy
            .installation(&plan.system.system_id, &adapter_types, |text| {
                plan.zone
                    .read("battery_array_attachments", None, text)
                    .map(|(ms, _)| ms)
            });
    copier.report.notes.extend(notes);
    copier.adopt(rows)?;
    copier.copy_samples()?;
    copier.carry_old_rollups()?;
    crate::db::live::latest_from_samples(copier.target)?;
    let not_copied = tables_not_copied(copier.source(), prefix)?;
    let mut report = copier.report;
    report.not_copied = not_copied;
    if let Some((table, t)) = report.mismatch() {
        return Err(LegacyError::Unbalanced {
            table: table.to_owned(),
            read: t.read,
            inserted: t.inserted,
            duplicates: t.duplicates,
            conflicts: t.conflicts,
            unplaceable: t.unplaceable,
        });
    }
    Ok(report)
}

/// The old app's tables that hold data this copy does not carry over (its billing, settings,
/// logs, the rollups solarhub recomputes): in place they stay in the file, renamed or as they were.
fn tables_not_copied(conn: &mut DbConnection, prefix: &str) -> Result<Vec<String>, DbError> {
    const USED: &[&str] = &[
        "arrays",
        "battery_packs",
        "systems",
        "inverters",
        "meters",
        "adapters",
        "battery_arrays",
        "battery_pack_adapters",
        "battery_array_attachments",
        "hourly_energy",
        "daily_summary",
        "meter_hourly_energy",
        "meter_daily",
    ];
    let used: Vec<String> = LEGACY_SAMPLE_TABLES
        .iter()
        .chain(USED)
        .map(|t| match LEGACY_CLASHING_TABLES.contains(t) {
            true => format!("{prefix}{t}"),
            false => (*t).to_owned(),
        })
        .collect();
    // In a file that carries the solarhub schema, solarhub's own tables are not the old app's.
    let ours = match prefix.is_empty() {
        true => Vec::new(),
        false => db::schema_tables()?,
    };
    Ok(introspect::table_names(conn)?
        .into_iter()
        .filter(|t| !used.contains(t) && !ours.contains(t))
        .collect())
}

fn load_optional_config(config: Option<&Path>) -> Result<Option<LoadedConfig>, LegacyError> {
    match config {
        Some(path) => Ok(Some(load_config(path, &builtin_adapter_types()?)?)),
        None => Ok(None),
    }
}

fn has_legacy_tables(conn: &mut DbConnection, prefix: &str) -> Result<bool, DbError> {
    let tables = introspect::table_names(conn)?;
    Ok(LEGACY_SAMPLE_TABLES
        .iter()
        .any(|t| tables.contains(&format!("{prefix}{t}"))))
}

fn backup_path(path: &Path, backup_dir: Option<&Path>) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "legacy.db".into());
    let file_name = format!("{name}.legacy-backup-{stamp}");
    match backup_dir {
        Some(dir) => dir.join(file_name),
        None => path.with_file_name(file_name),
    }
}

/// Writes the backup and proves it opens and holds the same tables with the same row counts.
fn backup_legacy(conn: &mut DbConnection, path: &Path, backup: &Path) -> Result<(), LegacyError> {
    let failed = |reason: String| LegacyError::Backup {
        path: path.to_owned(),
        backup: backup.to_owned(),
        reason,
    };
    if backup.exists() {
        return Err(failed("the backup file already exists".into()));
    }
    source::backup_to(conn, backup).map_err(|e| failed(e.to_string()))?;
    let mut copy = source::open_read_only(backup)
        .map_err(|e| failed(format!("the backup does not open: {e}")))?;
    let tables = introspect::table_names(conn).map_err(|e| failed(e.to_string()))?;
    for table in &tables {
        let original = introspect::row_count(conn, table).map_err(|e| failed(e.to_string()))?;
        let copied = introspect::row_count(&mut copy, table).map_err(|e| failed(e.to_string()))?;
        if original != copied {
            return Err(failed(format!(
                "table {table} has {original} rows but the backup has {copied}"
            )));
        }
    }
    Ok(())
}

/// Renames the clashing legacy tables, creates the solarhub schema and records the upgrade, in one
/// transaction: either the file is still the old one, or all of this happened.
fn start_in_place(url: &DatabaseUrl, path: &Path, backup: &Path) -> Result<String, LegacyError> {
    let mut conn = url.connect()?;
    let started_at = now_ms();
    let import_id = format!("{}@{started_at}", path.display());
    db::in_transaction(&mut conn, |conn| -> Result<(), LegacyError> {
        let tables = introspect::table_names(conn)?;
        for table in LEGACY_CLASHING_TABLES {
            if tables.iter().any(|t| t == table) {
                source::rename_table(conn, table, &format!("{LEGACY_PREFIX}{table}"))?;
            }
        }
        db::run_migrations(conn)?;
        legacy_imports::record_start(
            conn,
            &LegacyImportRow {
                import_id: import_id.clone(),
                source: path.display().to_string(),
                in_place: true,
                backup: Some(backup.display().to_string()),
                started_at,
                finished_at: None,
                report: None,
            },
        )?;
        Ok(())
    })?;
    Ok(import_id)
}
