//! Taking over the existing app's SQLite database (DESIGN §6.2) without losing a row.
//!
//! Two ways in, one copy routine:
//! - **in place** (`serve` / `migrate` pointed at the old file): check the file, back it up (and stop
//!   if that fails), rename the old tables whose names solarhub uses to `legacy_<name>`, create the
//!   solarhub schema, then copy the samples across in one transaction. The old tables stay, renamed,
//!   so nothing of the original is dropped. An upgrade interrupted after the rename resumes on the
//!   next start.
//! - **`import-legacy FILE`**: opens the file read-only and copies it into any database.
//!
//! The copy attaches every sample to its system, array and pack, converts timestamps to UTC
//! (offsets as written; naive ones in the system's timezone), creates clearly named placeholder
//! catalog rows for ids the config does not know, and skips only rows whose (device, time) is
//! already stored: the first of a set of duplicates wins, and every skip is counted in the report.
//! Running it again inserts nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use crate::adapter_types::{AdapterTypeError, builtin_adapter_types};
use crate::catalog::{
    Battery, BatteryCell, BatteryPack, Installation, Inverter, InverterArray, Meter, System,
    id_problem,
};
use crate::config_import::{ConfigError, LoadedConfig, battery_id, cell_id, load_config};
use crate::db::legacy_imports::{self, LegacyImportRow};
use crate::db::legacy_source::{
    self as source, LEGACY_CLASHING_TABLES, LEGACY_PREFIX, LEGACY_SAMPLE_TABLES, LegacyTable,
};
use crate::db::samples::{
    self, ArraySample, BatteryBankSample, BatteryCellSample, BatteryUnitSample, EnergySample,
    MeterSample,
};
use crate::db::{self, Database, DatabaseUrl, DbConnection, DbError, catalog, introspect, now_ms};

/// Reads one page of a legacy table: rows after a rowid, at most a count.
type PageReader<Row> = fn(&mut DbConnection, &LegacyTable, i64, i64) -> Result<Vec<Row>, DbError>;

/// Rows read from a legacy table per page.
const PAGE_ROWS: i64 = 5_000;

/// Id of the array that takes inverters the config does not place anywhere.
pub const UNASSIGNED_ARRAY_ID: &str = "legacy_unassigned";

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

/// What one legacy table gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableReport {
    /// Rows read from the legacy table.
    pub read: u64,
    /// Rows written to the solarhub table.
    pub inserted: u64,
    /// Rows whose (device, time) was already stored: duplicates within the legacy table, or rows an
    /// earlier import already copied.
    pub already_present: u64,
    /// Rows that could not be placed because their timestamp or device id is unreadable.
    pub unplaceable: u64,
    /// Numeric values stored as text in the legacy table, read as missing.
    pub non_numeric_values: u64,
}

#[derive(Debug, Clone, Default)]
pub struct LegacyReport {
    pub source: PathBuf,
    pub backup: Option<PathBuf>,
    pub system_id: String,
    pub timezone: String,
    /// Per legacy table (by its original name).
    pub tables: BTreeMap<String, TableReport>,
    /// Catalog rows created for ids the config did not know, as `kind id`.
    pub placeholders: Vec<String>,
    /// Timestamps without an offset, read in the system's timezone.
    pub naive_timestamps: u64,
    /// Naive timestamps in a repeated (fall-back) hour: read as the first of the two.
    pub ambiguous_timestamps: u64,
    /// Naive timestamps in a skipped (spring-forward) hour: moved past the gap.
    pub nonexistent_timestamps: u64,
    /// Legacy tables that were kept (in place) or left in the file (import) without being copied.
    pub not_copied: Vec<String>,
    /// Sample ids that were not valid slugs, and the ids used instead.
    pub renamed_ids: BTreeMap<String, String>,
}

impl LegacyReport {
    pub fn inserted_total(&self) -> u64 {
        self.tables.values().map(|t| t.inserted).sum()
    }
}

impl fmt::Display for LegacyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "legacy database {} into system {} ({})",
            self.source.display(),
            self.system_id,
            self.timezone
        )?;
        if let Some(backup) = &self.backup {
            writeln!(f, "  backup: {}", backup.display())?;
        }
        for (table, t) in &self.tables {
            writeln!(
                f,
                "  {table}: {} read, {} inserted, {} already present (duplicates or earlier imports), {} unplaceable, {} non-numeric values read as missing",
                t.read, t.inserted, t.already_present, t.unplaceable, t.non_numeric_values
            )?;
        }
        writeln!(
            f,
            "  timestamps: {} naive (read in {}), {} ambiguous, {} in a DST gap",
            self.naive_timestamps,
            self.timezone,
            self.ambiguous_timestamps,
            self.nonexistent_timestamps
        )?;
        for placeholder in &self.placeholders {
            writeln!(f, "  placeholder created: {placeholder}")?;
        }
        for (from, to) in &self.renamed_ids {
            writeln!(f, "  id {from:?} is not a valid id; stored as {to:?}")?;
        }
        if !self.not_copied.is_empty() {
            writeln!(f, "  kept but not copied: {}", self.not_copied.join(", "))?;
        }
        write!(f, "  {} rows inserted in all", self.inserted_total())
    }
}

/// Upgrades `url` in place when it is a SQLite file of the existing app (or one whose upgrade was
/// interrupted). Returns `None` for anything else, without touching it.
///
/// The backup goes next to the file, or into `backup_dir` when given.
pub fn upgrade_in_place_if_legacy(
    url: &DatabaseUrl,
    config: Option<&Path>,
    backup_dir: Option<&Path>,
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
    let loaded = load_optional_config(config)?;
    // Only a file about to be upgraded pays for a full read of its pages.
    source::check_integrity(&mut read_only).map_err(unreadable)?;

    let (import_id, backup) = match resume {
        Some(row) => {
            tracing::warn!(file = %path.display(), "resuming an interrupted legacy upgrade");
            (row.import_id, row.backup.map(PathBuf::from))
        }
        None => {
            let backup = backup_path(path, backup_dir);
            backup_legacy(&mut read_only, path, &backup)?;
            tracing::info!(file = %path.display(), backup = %backup.display(), "backed up the legacy database");
            drop(read_only);
            let import_id = start_in_place(url, path, &backup)?;
            (import_id, Some(backup))
        }
    };

    let mut conn = url.connect()?;
    let report = db::in_transaction(&mut conn, |conn| -> Result<LegacyReport, LegacyError> {
        let mut report = copy_legacy(conn, None, LEGACY_PREFIX, loaded.as_ref())?;
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
    config: Option<&Path>,
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
    let loaded = load_optional_config(config)?;
    let mut target = database.get()?;
    let started_at = now_ms();
    let import_id = format!("{}@{started_at}", file.display());
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
        let mut report = copy_legacy(target, Some(&mut source_conn), prefix, loaded.as_ref())?;
        report.source = file.to_owned();
        legacy_imports::record_finish(target, &import_id, now_ms(), &report.to_string())?;
        Ok(report)
    })?;
    Ok(report)
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

/// How a legacy timestamp was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKind {
    WithOffset,
    Naive,
    NaiveAmbiguous,
    NaiveInGap,
}

/// Reads an existing-app timestamp (`2025-06-01T12:00:05.123456+05:00`, with a space instead of
/// `T`, with `Z`, or naive local time in `timezone`) as UTC epoch milliseconds.
pub fn parse_legacy_timestamp(text: &str, timezone: Tz) -> Option<(i64, TimestampKind)> {
    let text = text.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some((parsed.timestamp_millis(), TimestampKind::WithOffset));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
    ] {
        if let Ok(parsed) = DateTime::parse_from_str(text, format) {
            return Some((parsed.timestamp_millis(), TimestampKind::WithOffset));
        }
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())?;
    match timezone.from_local_datetime(&naive) {
        chrono::LocalResult::Single(local) => {
            Some((local.timestamp_millis(), TimestampKind::Naive))
        }
        chrono::LocalResult::Ambiguous(earliest, _) => {
            Some((earliest.timestamp_millis(), TimestampKind::NaiveAmbiguous))
        }
        chrono::LocalResult::None => {
            // A wall-clock time the DST jump skipped: read it as that far past the jump.
            let shifted = naive + chrono::Duration::hours(1);
            let local = timezone.from_local_datetime(&shifted).earliest()?;
            Some((local.timestamp_millis(), TimestampKind::NaiveInGap))
        }
    }
}

/// Turns a legacy id into a valid slug (invalid characters become `_`, long ids are cut).
fn slug(raw: &str) -> String {
    let mut id: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    id.truncate(crate::catalog::MAX_ID_LEN);
    if id.is_empty() { "unknown".into() } else { id }
}

/// The catalog as the copy sees it, growing as placeholders are added.
struct CatalogView {
    system_id: String,
    timezone: Tz,
    arrays: HashSet<String>,
    inverter_array: HashMap<String, String>,
    meters: HashSet<String>,
    pack_battery_array: HashMap<String, Option<String>>,
    batteries: HashSet<String>,
    cells: HashSet<String>,
}

struct Copier<'a> {
    target: &'a mut DbConnection,
    /// `None` when the legacy tables are in the target database itself (in-place upgrade).
    source: Option<&'a mut DbConnection>,
    prefix: &'a str,
    view: CatalogView,
    report: LegacyReport,
}

fn copy_legacy(
    target: &mut DbConnection,
    source: Option<&mut DbConnection>,
    prefix: &str,
    config: Option<&LoadedConfig>,
) -> Result<LegacyReport, LegacyError> {
    let adapter_types: Vec<_> = builtin_adapter_types()?
        .into_iter()
        .map(|t| t.row)
        .collect();
    if let Some(config) = config {
        catalog::apply_installation(target, &adapter_types, &config.installation, false)?;
    }
    let systems = catalog::load_systems(target)?;
    let mut placeholders = Vec::new();
    let system = match config.and_then(|c| c.installation.system.clone()) {
        Some(system) => system,
        None => match systems.as_slice() {
            [only] => only.clone(),
            [] => {
                let system = System {
                    system_id: "home".into(),
                    name: "Home".into(),
                    description: Some(
                        "created by the legacy upgrade: no config named the system".into(),
                    ),
                    timezone: "UTC".into(),
                    currency: None,
                    tariff_json: None,
                };
                tracing::warn!(
                    "no config and no system: legacy data goes to a new system `home`; naive timestamps are read as UTC"
                );
                catalog::insert_rows(
                    target,
                    &Installation {
                        system: Some(system.clone()),
                        ..Installation::default()
                    },
                )?;
                placeholders
                    .push("system home (no config named the system; timezone UTC)".to_owned());
                system
            }
            several => {
                let ids: Vec<&str> = several.iter().map(|s| s.system_id.as_str()).collect();
                return Err(LegacyError::AmbiguousSystem(ids.join(", ")));
            }
        },
    };
    let timezone: Tz = crate::rollup::buckets::timezone(&system);
    let (_, existing, _) = catalog::load_catalog(target)?;
    let view = CatalogView {
        system_id: system.system_id.clone(),
        timezone,
        arrays: existing.arrays.iter().map(|a| a.array_id.clone()).collect(),
        inverter_array: existing
            .inverters
            .iter()
            .map(|i| (i.inverter_id.clone(), i.array_id.clone()))
            .collect(),
        meters: existing.meters.iter().map(|m| m.meter_id.clone()).collect(),
        pack_battery_array: existing
            .packs
            .iter()
            .map(|p| (p.pack_id.clone(), p.battery_array_id.clone()))
            .collect(),
        batteries: existing
            .batteries
            .iter()
            .map(|b| b.battery_id.clone())
            .collect(),
        cells: existing.cells.iter().map(|c| c.cell_id.clone()).collect(),
    };
    let mut copier = Copier {
        target,
        source,
        prefix,
        view,
        report: LegacyReport {
            system_id: system.system_id.clone(),
            timezone: system.timezone.clone(),
            placeholders,
            ..LegacyReport::default()
        },
    };
    copier.copy_catalog()?;
    copier.copy_energy()?;
    copier.copy_arrays()?;
    copier.copy_banks()?;
    copier.copy_units()?;
    copier.copy_cells()?;
    copier.copy_meters()?;
    crate::db::live::latest_from_samples(copier.target)?;
    copier.note_tables_not_copied()?;
    Ok(copier.report)
}

impl Copier<'_> {
    fn source(&mut self) -> &mut DbConnection {
        match &mut self.source {
            Some(source) => source,
            None => self.target,
        }
    }

    fn table(&mut self, legacy_name: &str) -> Result<Option<LegacyTable>, DbError> {
        let name = format!("{}{legacy_name}", self.prefix);
        LegacyTable::inspect(self.source(), &name)
    }

    fn timestamp(&mut self, text: Option<&str>) -> Option<i64> {
        let (ms, kind) = parse_legacy_timestamp(text?, self.view.timezone)?;
        match kind {
            TimestampKind::WithOffset => {}
            TimestampKind::Naive => self.report.naive_timestamps += 1,
            TimestampKind::NaiveAmbiguous => {
                self.report.naive_timestamps += 1;
                self.report.ambiguous_timestamps += 1;
            }
            TimestampKind::NaiveInGap => {
                self.report.naive_timestamps += 1;
                self.report.nonexistent_timestamps += 1;
            }
        }
        Some(ms)
    }

    fn id(&mut self, raw: Option<&str>) -> Option<String> {
        let raw = raw?.trim();
        if raw.is_empty() {
            return None;
        }
        if id_problem(raw).is_none() {
            return Some(raw.to_owned());
        }
        let id = slug(raw);
        self.report.renamed_ids.insert(raw.to_owned(), id.clone());
        Some(id)
    }

    fn add_placeholders(
        &mut self,
        rows: Installation,
        descriptions: Vec<String>,
    ) -> Result<(), DbError> {
        catalog::insert_rows(self.target, &rows)?;
        self.report.placeholders.extend(descriptions);
        Ok(())
    }

    /// The array an id names, created as a placeholder when the config does not know it.
    fn ensure_array(&mut self, array_id: &str, name: String) -> Result<(), DbError> {
        if self.view.arrays.contains(array_id) {
            return Ok(());
        }
        let array = InverterArray {
            array_id: array_id.to_owned(),
            system_id: self.view.system_id.clone(),
            name,
            pv_capacity_kw: None,
        };
        self.view.arrays.insert(array_id.to_owned());
        self.add_placeholders(
            Installation {
                arrays: vec![array],
                ..Installation::default()
            },
            vec![format!("array {array_id}")],
        )
    }

    /// The array an inverter belongs to, creating the inverter (and its array) as placeholders.
    fn ensure_inverter(
        &mut self,
        inverter_id: &str,
        legacy_array: Option<&str>,
    ) -> Result<String, DbError> {
        if let Some(array_id) = self.view.inverter_array.get(inverter_id) {
            return Ok(array_id.clone());
        }
        let array_id = match legacy_array {
            Some(array_id) => {
                self.ensure_array(array_id, format!("legacy array {array_id} (not in config)"))?;
                array_id.to_owned()
            }
            None => {
                self.ensure_array(
                    UNASSIGNED_ARRAY_ID,
                    "Unassigned (legacy data not placed by the config)".into(),
                )?;
                UNASSIGNED_ARRAY_ID.to_owned()
            }
        };
        let inverter = Inverter {
            inverter_id: inverter_id.to_owned(),
            array_id: array_id.clone(),
            system_id: self.view.system_id.clone(),
            adapter_id: None,
            name: format!("legacy inverter {inverter_id} (not in config)"),
            model: None,
            serial_number: None,
            vendor: None,
            phase_type: None,
            rated_power_w: None,
            settings_json: None,
        };
        self.view
            .inverter_array
            .insert(inverter_id.to_owned(), array_id.clone());
        self.add_placeholders(
            Installation {
                inverters: vec![inverter],
                ..Installation::default()
            },
            vec![format!("inverter {inverter_id} in array {array_id}")],
        )?;
        Ok(array_id)
    }

    fn ensure_pack(&mut self, pack_id: &str) -> Result<Option<String>, DbError> {
        if let Some(battery_array) = self.view.pack_battery_array.get(pack_id) {
            return Ok(battery_array.clone());
        }
        let pack = BatteryPack {
            pack_id: pack_id.to_owned(),
            battery_array_id: None,
            system_id: self.view.system_id.clone(),
            name: format!("legacy battery bank {pack_id} (not in config)"),
            chemistry: None,
            nominal_kwh: None,
            max_charge_kw: None,
            max_discharge_kw: None,
            batteries_count: None,
            cells_per_battery: None,
        };
        self.view
            .pack_battery_array
            .insert(pack_id.to_owned(), None);
        self.add_placeholders(
            Installation {
                packs: vec![pack],
                ..Installation::default()
            },
            vec![format!("battery bank {pack_id}")],
        )?;
        Ok(None)
    }

    fn ensure_battery(
        &mut self,
        pack_id: &str,
        index: i32,
    ) -> Result<(String, Option<String>), DbError> {
        let battery_array = self.ensure_pack(pack_id)?;
        let id = battery_id(pack_id, index);
        if !self.view.batteries.contains(&id) {
            let battery = Battery {
                battery_id: id.clone(),
                pack_id: pack_id.to_owned(),
                battery_index: index,
                serial_number: None,
                model: None,
            };
            self.view.batteries.insert(id.clone());
            self.add_placeholders(
                Installation {
                    batteries: vec![battery],
                    ..Installation::default()
                },
                vec![format!("battery {id} (index {index} of bank {pack_id})")],
            )?;
        }
        Ok((id, battery_array))
    }

    fn ensure_cell(&mut self, battery_id: &str, index: i32) -> Result<String, DbError> {
        let id = cell_id(battery_id, index);
        if !self.view.cells.contains(&id) {
            let cell = BatteryCell {
                cell_id: id.clone(),
                battery_id: battery_id.to_owned(),
                cell_index: index,
                nominal_voltage: None,
            };
            self.view.cells.insert(id.clone());
            self.add_placeholders(
                Installation {
                    cells: vec![cell],
                    ..Installation::default()
                },
                vec![format!("cell {id}")],
            )?;
        }
        Ok(id)
    }

    fn ensure_meter(&mut self, meter_id: &str, array_id: Option<&str>) -> Result<(), DbError> {
        if self.view.meters.contains(meter_id) {
            return Ok(());
        }
        let meter = Meter {
            meter_id: meter_id.to_owned(),
            system_id: self.view.system_id.clone(),
            array_id: array_id.map(str::to_owned),
            adapter_id: None,
            name: format!("legacy meter {meter_id} (not in config)"),
            model: None,
            meter_type: "grid".into(),
        };
        self.view.meters.insert(meter_id.to_owned());
        self.add_placeholders(
            Installation {
                meters: vec![meter],
                ..Installation::default()
            },
            vec![format!("meter {meter_id}")],
        )
    }

    /// A legacy array id as the meter and array tables use it: `home` (or the system id) means the
    /// system itself.
    fn array_ref(&mut self, raw: Option<&str>) -> Result<Option<String>, DbError> {
        let Some(array_id) = self.id(raw) else {
            return Ok(None);
        };
        if array_id == "home" || array_id == self.view.system_id {
            return Ok(None);
        }
        self.ensure_array(
            &array_id,
            format!("legacy array {array_id} (not in config)"),
        )?;
        Ok(Some(array_id))
    }

    /// Legacy `arrays` and `battery_packs`: names and pack facts the config may not have.
    fn copy_catalog(&mut self) -> Result<(), DbError> {
        if let Some(table) = self.table("arrays")? {
            for row in source::read_legacy_arrays(self.source(), &table)? {
                if let Some(array_id) = self.id(row.array_id.as_deref()) {
                    let name = row
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("legacy array {array_id}"));
                    self.ensure_array(&array_id, format!("{name} (from legacy database)"))?;
                }
            }
        }
        if let Some(table) = self.table("battery_packs")? {
            for row in source::read_legacy_packs(self.source(), &table)? {
                let Some(pack_id) = self.id(row.pack_id.as_deref()) else {
                    continue;
                };
                if self.view.pack_battery_array.contains_key(&pack_id) {
                    continue;
                }
                let pack = BatteryPack {
                    pack_id: pack_id.clone(),
                    battery_array_id: None,
                    system_id: self.view.system_id.clone(),
                    name: format!(
                        "{} (from legacy database)",
                        row.name.as_deref().unwrap_or(&pack_id)
                    ),
                    chemistry: row.chemistry,
                    nominal_kwh: row.nominal_kwh,
                    max_charge_kw: row.max_charge_kw,
                    max_discharge_kw: row.max_discharge_kw,
                    batteries_count: None,
                    cells_per_battery: None,
                };
                self.view.pack_battery_array.insert(pack_id.clone(), None);
                self.add_placeholders(
                    Installation {
                        packs: vec![pack],
                        ..Installation::default()
                    },
                    vec![format!("battery bank {pack_id}")],
                )?;
            }
        }
        Ok(())
    }

    /// Copies one legacy sample table, page by page in rowid order. `convert` turns a legacy row into
    /// a sample, or `None` when its time or device id cannot be read; rows whose (device, time) is
    /// already stored are counted, not written twice.
    fn copy_table<Row, Sample>(
        &mut self,
        legacy_name: &str,
        numeric_columns: &[&str],
        read_page: PageReader<Row>,
        row_id: fn(&Row) -> i64,
        convert: fn(&mut Self, Row) -> Result<Option<Sample>, DbError>,
        insert: fn(&mut DbConnection, &[Sample]) -> Result<usize, DbError>,
    ) -> Result<(), DbError> {
        let Some(table) = self.table(legacy_name)? else {
            return Ok(());
        };
        let mut stats = TableReport {
            non_numeric_values: table.count_non_numeric(self.source(), numeric_columns)? as u64,
            ..TableReport::default()
        };
        let mut after = 0;
        loop {
            let page = read_page(self.source(), &table, after, PAGE_ROWS)?;
            let Some(last) = page.last() else { break };
            after = row_id(last);
            let mut rows = Vec::with_capacity(page.len());
            for legacy in page {
                stats.read += 1;
                match convert(self, legacy)? {
                    Some(sample) => rows.push(sample),
                    None => stats.unplaceable += 1,
                }
            }
            let inserted = insert(self.target, &rows)?;
            stats.inserted += inserted as u64;
            stats.already_present += (rows.len() - inserted) as u64;
        }
        self.report.tables.insert(legacy_name.to_owned(), stats);
        Ok(())
    }

    fn copy_energy(&mut self) -> Result<(), DbError> {
        self.copy_table(
            "energy_samples",
            source::ENERGY_NUMERIC_COLUMNS,
            source::read_energy_page,
            |row| row.row_id,
            Self::energy_sample,
            samples::insert_energy_samples,
        )
    }

    fn energy_sample(
        &mut self,
        legacy: source::LegacyEnergyRow,
    ) -> Result<Option<EnergySample>, DbError> {
        let (Some(ts), Some(inverter_id)) = (
            self.timestamp(legacy.ts.as_deref()),
            self.id(legacy.inverter_id.as_deref()),
        ) else {
            return Ok(None);
        };
        let legacy_array = self.id(legacy.array_id.as_deref());
        let inverter_array = self.ensure_inverter(&inverter_id, legacy_array.as_deref())?;
        let array_id = match legacy_array {
            Some(array_id) => {
                self.ensure_array(
                    &array_id,
                    format!("legacy array {array_id} (not in config)"),
                )?;
                array_id
            }
            None => inverter_array,
        };
        Ok(Some(EnergySample {
            inverter_id,
            ts,
            array_id: Some(array_id),
            system_id: self.view.system_id.clone(),
            pv_power_w: legacy.pv_power_w,
            load_power_w: legacy.load_power_w,
            grid_power_w: legacy.grid_power_w,
            battery_power_w: None,
            battery_soc_pct: legacy.battery_soc_pct,
            battery_voltage_v: legacy.battery_voltage_v,
            battery_current_a: legacy.battery_current_a,
            inverter_mode: legacy.inverter_mode,
            inverter_temp_c: legacy.inverter_temp_c,
            pv_energy_today_wh: None,
            pv_energy_total_wh: None,
            load_energy_today_wh: None,
            load_energy_total_wh: None,
            grid_import_today_wh: None,
            grid_import_total_wh: legacy.grid_import_wh,
            grid_export_today_wh: None,
            grid_export_total_wh: legacy.grid_export_wh,
            battery_charge_today_wh: None,
            battery_charge_total_wh: None,
            battery_discharge_today_wh: None,
            battery_discharge_total_wh: None,
        }))
    }

    fn copy_arrays(&mut self) -> Result<(), DbError> {
        self.copy_table(
            "array_samples",
            &[
                "pv_power_w",
                "load_power_w",
                "grid_power_w",
                "batt_power_w",
                "batt_soc_pct",
                "batt_voltage_v",
                "batt_current_a",
            ],
            source::read_array_page,
            |row| row.row_id,
            Self::arrays_sample,
            samples::insert_array_samples,
        )
    }

    fn arrays_sample(
        &mut self,
        legacy: source::LegacyArrayRow,
    ) -> Result<Option<ArraySample>, DbError> {
        let (Some(ts), Some(array_id)) = (
            self.timestamp(legacy.ts.as_deref()),
            self.id(legacy.array_id.as_deref()),
        ) else {
            return Ok(None);
        };
        self.ensure_array(
            &array_id,
            format!("legacy array {array_id} (not in config)"),
        )?;
        Ok(Some(ArraySample {
            array_id,
            ts,
            system_id: self.view.system_id.clone(),
            pv_power_w: legacy.pv_power_w,
            load_power_w: legacy.load_power_w,
            grid_power_w: legacy.grid_power_w,
            battery_power_w: legacy.battery_power_w,
            battery_soc_pct: legacy.battery_soc_pct,
            soc_source: None,
            battery_voltage_v: legacy.battery_voltage_v,
            battery_current_a: legacy.battery_current_a,
        }))
    }

    fn copy_banks(&mut self) -> Result<(), DbError> {
        self.copy_table(
            "battery_bank_samples",
            &[
                "voltage",
                "current",
                "temperature",
                "soc",
                "batteries_count",
                "cells_per_battery",
            ],
            source::read_bank_page,
            |row| row.row_id,
            Self::banks_sample,
            samples::insert_battery_bank_samples,
        )
    }

    fn banks_sample(
        &mut self,
        legacy: source::LegacyBankRow,
    ) -> Result<Option<BatteryBankSample>, DbError> {
        let (Some(ts), Some(pack_id)) = (
            self.timestamp(legacy.ts.as_deref()),
            self.id(legacy.pack_id.as_deref()),
        ) else {
            return Ok(None);
        };
        let battery_array_id = self.ensure_pack(&pack_id)?;
        Ok(Some(BatteryBankSample {
            pack_id,
            ts,
            battery_array_id,
            system_id: self.view.system_id.clone(),
            adapter_id: None,
            voltage_v: legacy.voltage,
            current_a: legacy.current,
            power_w: None,
            temperature_c: legacy.temperature,
            soc_pct: legacy.soc,
            soh_pct: None,
            batteries_count: legacy.batteries_count,
            cells_per_battery: legacy.cells_per_battery,
        }))
    }

    fn copy_units(&mut self) -> Result<(), DbError> {
        self.copy_table(
            "battery_unit_samples",
            &[
                "power",
                "voltage",
                "current",
                "temperature",
                "soc",
                "bat_events",
                "power_events",
                "sys_events",
            ],
            source::read_unit_page,
            |row| row.row_id,
            Self::units_sample,
            samples::insert_battery_unit_samples,
        )
    }

    fn units_sample(
        &mut self,
        legacy: source::LegacyUnitRow,
    ) -> Result<Option<BatteryUnitSample>, DbError> {
        let (Some(ts), Some(pack_id), Some(index)) = (
            self.timestamp(legacy.ts.as_deref()),
            self.id(legacy.pack_id.as_deref()),
            legacy.battery_index,
        ) else {
            return Ok(None);
        };
        let (battery_id, battery_array_id) = self.ensure_battery(&pack_id, index)?;
        Ok(Some(BatteryUnitSample {
            battery_id,
            ts,
            pack_id,
            battery_array_id,
            system_id: self.view.system_id.clone(),
            adapter_id: None,
            voltage_v: legacy.voltage,
            current_a: legacy.current,
            temperature_c: legacy.temperature,
            soc_pct: legacy.soc,
            soh_pct: None,
            basic_st: legacy.basic_st,
            volt_st: legacy.volt_st,
            current_st: legacy.current_st,
            temp_st: legacy.temp_st,
            soh_st: legacy.soh_st,
            coul_st: legacy.coul_st,
            heater_st: legacy.heater_st,
            bat_events: legacy.bat_events,
            power_events: legacy.power_events,
            sys_events: legacy.sys_events,
        }))
    }

    fn copy_cells(&mut self) -> Result<(), DbError> {
        self.copy_table(
            "battery_cell_samples",
            &["power", "cell", "voltage", "temperature", "soc"],
            source::read_cell_page,
            |row| row.row_id,
            Self::cells_sample,
            samples::insert_battery_cell_samples,
        )
    }

    fn cells_sample(
        &mut self,
        legacy: source::LegacyCellRow,
    ) -> Result<Option<BatteryCellSample>, DbError> {
        let (Some(ts), Some(pack_id), Some(battery_index), Some(cell_index)) = (
            self.timestamp(legacy.ts.as_deref()),
            self.id(legacy.pack_id.as_deref()),
            legacy.battery_index,
            legacy.cell_index,
        ) else {
            return Ok(None);
        };
        let (battery_id, battery_array_id) = self.ensure_battery(&pack_id, battery_index)?;
        let cell_id = self.ensure_cell(&battery_id, cell_index)?;
        Ok(Some(BatteryCellSample {
            cell_id,
            ts,
            battery_id,
            pack_id,
            battery_array_id,
            system_id: self.view.system_id.clone(),
            adapter_id: None,
            voltage_v: legacy.voltage,
            temperature_c: legacy.temperature,
            soc_pct: legacy.soc,
            volt_st: legacy.volt_st,
            temp_st: legacy.temp_st,
        }))
    }

    fn copy_meters(&mut self) -> Result<(), DbError> {
        self.copy_table(
            "meter_samples",
            &[
                "grid_power_w",
                "grid_voltage_v",
                "grid_current_a",
                "grid_frequency_hz",
                "grid_import_wh",
                "grid_export_wh",
                "energy_kwh",
                "power_factor",
                "voltage_phase_a",
                "voltage_phase_b",
                "voltage_phase_c",
                "current_phase_a",
                "current_phase_b",
                "current_phase_c",
                "power_phase_a",
                "power_phase_b",
                "power_phase_c",
            ],
            source::read_meter_page,
            |row| row.row_id,
            Self::meters_sample,
            samples::insert_meter_samples,
        )
    }

    fn meters_sample(
        &mut self,
        legacy: source::LegacyMeterRow,
    ) -> Result<Option<MeterSample>, DbError> {
        let (Some(ts), Some(meter_id)) = (
            self.timestamp(legacy.ts.as_deref()),
            self.id(legacy.meter_id.as_deref()),
        ) else {
            return Ok(None);
        };
        let array_id = self.array_ref(legacy.array_id.as_deref())?;
        self.ensure_meter(&meter_id, array_id.as_deref())?;
        Ok(Some(MeterSample {
            meter_id,
            ts,
            system_id: self.view.system_id.clone(),
            array_id,
            power_w: legacy.power_w,
            voltage_v: legacy.voltage_v,
            current_a: legacy.current_a,
            frequency_hz: legacy.frequency_hz,
            power_factor: legacy.power_factor,
            import_total_wh: legacy.import_wh,
            export_total_wh: legacy.export_wh,
            energy_total_kwh: legacy.energy_kwh,
            l1_voltage_v: legacy.l1_voltage_v,
            l2_voltage_v: legacy.l2_voltage_v,
            l3_voltage_v: legacy.l3_voltage_v,
            l1_current_a: legacy.l1_current_a,
            l2_current_a: legacy.l2_current_a,
            l3_current_a: legacy.l3_current_a,
            l1_power_w: legacy.l1_power_w,
            l2_power_w: legacy.l2_power_w,
            l3_power_w: legacy.l3_power_w,
        }))
    }

    /// Lists the legacy tables that hold data this copy does not carry over (rollups, settings,
    /// billing): in place they stay in the file, renamed or as they were.
    fn note_tables_not_copied(&mut self) -> Result<(), DbError> {
        let prefix = self.prefix.to_owned();
        let tables = introspect::table_names(self.source())?;
        let copied: HashSet<String> = LEGACY_SAMPLE_TABLES
            .iter()
            .chain(["arrays", "battery_packs"].iter())
            .map(|t| format!("{prefix}{t}"))
            .collect();
        // In a file that already carries the solarhub schema, its own tables are not legacy data.
        let upgraded_file = !prefix.is_empty();
        for table in tables {
            if copied.contains(&table)
                || (upgraded_file && ALL_SOLARHUB_TABLES.contains(&table.as_str()))
            {
                continue;
            }
            self.report.not_copied.push(table);
        }
        Ok(())
    }
}

/// Every table the solarhub migrations create.
const ALL_SOLARHUB_TABLES: &[&str] = &[
    "systems",
    "arrays",
    "adapter_base",
    "adapters",
    "inverters",
    "battery_arrays",
    "battery_array_attachments",
    "battery_packs",
    "batteries",
    "battery_cells",
    "meters",
    "battery_pack_adapters",
    "energy_samples",
    "array_samples",
    "battery_bank_samples",
    "battery_unit_samples",
    "battery_cell_samples",
    "meter_samples",
    "hourly_energy",
    "array_hourly_energy",
    "system_hourly_energy",
    "daily_summary",
    "array_daily_summary",
    "system_daily_summary",
    "battery_bank_hourly",
    "battery_bank_daily",
    "meter_hourly_energy",
    "meter_daily",
    "legacy_imports",
    "collectors",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_offsets_naive_and_across_dst() {
        let karachi: Tz = "Asia/Karachi".parse().unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 12:00:05.123456+05:00 is 07:00:05.123Z.
        let expected = chrono::Utc
            .with_ymd_and_hms(2025, 6, 1, 7, 0, 5)
            .unwrap()
            .timestamp_millis()
            + 123;
        assert_eq!(
            parse_legacy_timestamp("2025-06-01T12:00:05.123456+05:00", karachi),
            Some((expected, TimestampKind::WithOffset))
        );
        assert_eq!(
            parse_legacy_timestamp("2025-06-01 12:00:05.123456+05:00", berlin),
            Some((expected, TimestampKind::WithOffset))
        );
        assert_eq!(
            parse_legacy_timestamp("2025-06-01T12:00:05.123456", karachi),
            Some((expected, TimestampKind::Naive))
        );
        // Berlin falls back on 2025-10-26 at 03:00 CEST: 02:30 happens twice.
        let first = chrono::Utc
            .with_ymd_and_hms(2025, 10, 26, 0, 30, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            parse_legacy_timestamp("2025-10-26T02:30:00", berlin),
            Some((first, TimestampKind::NaiveAmbiguous))
        );
        assert_eq!(
            parse_legacy_timestamp("2025-10-26T02:30:00+01:00", berlin).map(|p| p.0),
            Some(first + 3_600_000)
        );
        // Berlin springs forward on 2025-03-30 at 02:00: 02:30 does not exist.
        let after_gap = chrono::Utc
            .with_ymd_and_hms(2025, 3, 30, 1, 30, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            parse_legacy_timestamp("2025-03-30 02:30:00", berlin),
            Some((after_gap, TimestampKind::NaiveInGap))
        );
        assert_eq!(parse_legacy_timestamp("yesterday", berlin), None);
    }
}

/// How the old app's own hourly and daily figures compare with the recomputed rollups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegacyComparison {
    pub hours_compared: usize,
    pub hours_differing: usize,
    pub days_compared: usize,
    pub days_differing: usize,
    /// The first differences, as sentences.
    pub differences: Vec<String>,
}

impl fmt::Display for LegacyComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the old app's figures: {} hours compared, {} differ; {} days compared, {} differ \
             (by more than 0.01 kWh and 1 %)",
            self.hours_compared, self.hours_differing, self.days_compared, self.days_differing
        )?;
        for difference in &self.differences {
            write!(f, "\n  {difference}")?;
        }
        Ok(())
    }
}

/// The most differences a comparison lists.
const DIFFERENCES_LISTED: usize = 10;

fn differs(legacy: f64, ours: Option<f64>) -> bool {
    let ours = ours.unwrap_or(0.0);
    let tolerance = 0.01f64.max(0.01 * legacy.abs().max(ours.abs()));
    (legacy - ours).abs() > tolerance
}

fn show(value: Option<f64>) -> String {
    value.map_or("nothing".to_owned(), |v| format!("{v:.3} kWh"))
}

/// The old app's table `name`: `legacy_<name>` in an upgraded file, else `<name>` unless that is
/// solarhub's own (an upgraded file without the old table).
fn old_table(conn: &mut DbConnection, name: &str) -> Result<Option<LegacyTable>, DbError> {
    if let Some(table) = LegacyTable::inspect(conn, &format!("{LEGACY_PREFIX}{name}"))? {
        return Ok(Some(table));
    }
    Ok(LegacyTable::inspect(conn, name)?.filter(|table| !table.has("bucket_start")))
}

/// Compares the old app's `hourly_energy` and `pv_daily` (in `legacy`, a SQLite file) with the
/// rollups of `system_id` in `target`. Hours are matched by inverter, local date and hour (the two
/// hours of a fall-back night are added up, as the old app could not tell them apart).
pub fn compare_with_legacy(
    legacy: &mut DbConnection,
    target: &mut DbConnection,
    system_id: &str,
) -> Result<LegacyComparison, DbError> {
    use crate::db::rollups::{self, Level};
    let mut comparison = LegacyComparison::default();
    if !matches!(legacy, DbConnection::Sqlite(_)) {
        return Ok(comparison);
    }
    let hours = rollups::load_rows(target, system_id, i64::MIN, i64::MAX, Level::Hours)?;
    let days = rollups::load_rows(target, system_id, i64::MIN, i64::MAX, Level::Days)?;
    let mut ours: HashMap<(String, String, i64), [Option<f64>; 6]> = HashMap::new();
    for row in &hours.inverter_hours {
        let entry = ours
            .entry((
                row.inverter_id.clone(),
                row.date.clone(),
                i64::from(row.hour_start),
            ))
            .or_default();
        let values = [
            row.solar_kwh,
            row.load_kwh,
            row.battery_charge_kwh,
            row.battery_discharge_kwh,
            row.grid_import_kwh,
            row.grid_export_kwh,
        ];
        for (total, value) in entry.iter_mut().zip(values) {
            if let Some(v) = value {
                *total = Some(total.unwrap_or(0.0) + v);
            }
        }
    }
    let note = |comparison: &mut LegacyComparison, text: String| {
        if comparison.differences.len() < DIFFERENCES_LISTED {
            comparison.differences.push(text);
        }
    };
    if let Some(table) = old_table(legacy, "hourly_energy")? {
        const NAMES: [&str; 6] = [
            "solar",
            "load",
            "battery charge",
            "battery discharge",
            "grid import",
            "grid export",
        ];
        for row in source::read_legacy_hours(legacy, &table)? {
            let (Some(inverter), Some(date), Some(hour)) = (row.inverter_id, row.date, row.hour)
            else {
                continue;
            };
            let theirs = [
                row.solar_kwh,
                row.load_kwh,
                row.battery_charge_kwh,
                row.battery_discharge_kwh,
                row.grid_import_kwh,
                row.grid_export_kwh,
            ];
            let mine = ours
                .get(&(inverter.clone(), date.clone(), hour))
                .copied()
                .unwrap_or_default();
            comparison.hours_compared += 1;
            let mut differing = false;
            for (q, name) in NAMES.iter().enumerate() {
                if let Some(legacy_value) = theirs[q]
                    && differs(legacy_value, mine[q])
                {
                    differing = true;
                    note(
                        &mut comparison,
                        format!(
                            "{inverter} {date} {hour:02}:00 {name}: {legacy_value:.3} kWh in the old app, {} recomputed",
                            show(mine[q])
                        ),
                    );
                }
            }
            comparison.hours_differing += usize::from(differing);
        }
    }
    if let Some(table) = old_table(legacy, "pv_daily")? {
        let ours: HashMap<(&str, &str), Option<f64>> = days
            .inverter_days
            .iter()
            .map(|d| ((d.inverter_id.as_str(), d.date.as_str()), d.solar_kwh))
            .collect();
        for row in source::read_legacy_pv_days(legacy, &table)? {
            let (Some(inverter), Some(day), Some(pv)) = (row.inverter_id, row.day, row.pv_kwh)
            else {
                continue;
            };
            comparison.days_compared += 1;
            let mine = ours
                .get(&(inverter.as_str(), day.as_str()))
                .copied()
                .flatten();
            if differs(pv, mine) {
                comparison.days_differing += 1;
                note(
                    &mut comparison,
                    format!(
                        "{inverter} {day} solar: {pv:.3} kWh in the old app, {} recomputed",
                        show(mine)
                    ),
                );
            }
        }
    }
    Ok(comparison)
}
