//! Reading the existing app's SQLite database (DESIGN §6.2) without trusting its schema.
//!
//! The old app added columns over time and SQLite keeps whatever type a row was written with, so
//! every read here asks which columns exist, selects missing ones as NULL, and only accepts numbers
//! that are stored as numbers: a text value in a numeric column becomes NULL (and is counted), never
//! a zero. Rows are read in rowid order, in pages, so the first of two duplicates is the one kept.

use std::collections::HashSet;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text};

use super::{DbConnection, DbError, introspect};

/// The legacy tables whose samples are imported, keyed by their legacy name.
pub const LEGACY_SAMPLE_TABLES: &[&str] = &[
    "energy_samples",
    "array_samples",
    "battery_bank_samples",
    "battery_unit_samples",
    "battery_cell_samples",
    "meter_samples",
];

/// Legacy tables whose names a solarhub table also uses; an in-place upgrade renames them to
/// `legacy_<name>` and keeps them.
pub const LEGACY_CLASHING_TABLES: &[&str] = &[
    "energy_samples",
    "array_samples",
    "battery_bank_samples",
    "battery_unit_samples",
    "battery_cell_samples",
    "meter_samples",
    "arrays",
    "battery_packs",
    "hourly_energy",
    "daily_summary",
    "meter_daily",
    "meter_hourly_energy",
    "systems",
    "inverters",
    "battery_arrays",
    "batteries",
    "battery_cells",
    "meters",
    "adapters",
    "adapter_base",
    "array_hourly_energy",
    "system_hourly_energy",
    "array_daily_summary",
    "system_daily_summary",
    "battery_bank_hourly",
    "battery_bank_daily",
    "battery_array_attachments",
    "battery_pack_adapters",
];

/// Prefix given to renamed legacy tables.
pub const LEGACY_PREFIX: &str = "legacy_";

/// One legacy table as found: its actual name (maybe prefixed) and its columns.
#[derive(Debug, Clone)]
pub struct LegacyTable {
    pub name: String,
    columns: HashSet<String>,
}

impl LegacyTable {
    pub fn inspect(conn: &mut DbConnection, name: &str) -> Result<Option<LegacyTable>, DbError> {
        let columns = introspect::columns(conn, name)?;
        if columns.is_empty() {
            return Ok(None);
        }
        Ok(Some(LegacyTable {
            name: name.to_owned(),
            columns: columns.into_iter().map(|c| c.name).collect(),
        }))
    }

    pub fn has(&self, column: &str) -> bool {
        self.columns.contains(column)
    }

    fn text(&self, column: &str, alias: &str) -> String {
        if self.has(column) {
            format!("CAST(\"{column}\" AS TEXT) AS {alias}")
        } else {
            format!("NULL AS {alias}")
        }
    }

    fn real(&self, column: &str, alias: &str) -> String {
        if self.has(column) {
            format!(
                "CASE typeof(\"{column}\") WHEN 'integer' THEN CAST(\"{column}\" AS REAL) WHEN 'real' THEN \"{column}\" ELSE NULL END AS {alias}"
            )
        } else {
            format!("NULL AS {alias}")
        }
    }

    fn integer(&self, column: &str, alias: &str) -> String {
        if self.has(column) {
            format!(
                "CASE typeof(\"{column}\") WHEN 'integer' THEN \"{column}\" WHEN 'real' THEN CAST(\"{column}\" AS INTEGER) ELSE NULL END AS {alias}"
            )
        } else {
            format!("NULL AS {alias}")
        }
    }

    /// The first real column among `candidates` that exists, coalesced in that order.
    fn real_first(&self, candidates: &[&str], alias: &str) -> String {
        let present: Vec<String> = candidates
            .iter()
            .filter(|c| self.has(c))
            .map(|c| format!("CASE typeof(\"{c}\") WHEN 'integer' THEN CAST(\"{c}\" AS REAL) WHEN 'real' THEN \"{c}\" ELSE NULL END"))
            .collect();
        match present.len() {
            0 => format!("NULL AS {alias}"),
            1 => format!("{} AS {alias}", present[0]),
            _ => format!("COALESCE({}) AS {alias}", present.join(", ")),
        }
    }

    /// Counts values of `columns` that hold text where a number was expected: they are read as NULL.
    pub fn count_non_numeric(
        &self,
        conn: &mut DbConnection,
        columns: &[&str],
    ) -> Result<i64, DbError> {
        let mut total = 0;
        for column in columns.iter().filter(|c| self.has(c)) {
            let query = format!(
                "SELECT COUNT(*) AS count FROM \"{}\" WHERE typeof(\"{column}\") NOT IN ('integer', 'real', 'null')",
                self.name
            );
            let rows: Vec<CountRow> = diesel::sql_query(query).load(conn)?;
            total += rows.first().map(|r| r.count).unwrap_or(0);
        }
        Ok(total)
    }

    /// Every row of the table (for the small catalog and settings tables).
    fn all<T: QueryableByName<diesel::sqlite::Sqlite> + 'static>(
        &self,
        conn: &mut DbConnection,
        select: &[String],
    ) -> Result<Vec<T>, DbError> {
        self.page(conn, select, 0, i64::MAX)
    }

    fn page<T: QueryableByName<diesel::sqlite::Sqlite> + 'static>(
        &self,
        conn: &mut DbConnection,
        select: &[String],
        after_rowid: i64,
        limit: i64,
    ) -> Result<Vec<T>, DbError> {
        let DbConnection::Sqlite(sqlite) = conn else {
            return Err(DbError::Invalid(
                "a legacy database is always SQLite".into(),
            ));
        };
        let query = format!(
            "SELECT rowid AS row_id, {} FROM \"{}\" WHERE rowid > {after_rowid} ORDER BY rowid LIMIT {limit}",
            select.join(", "),
            self.name
        );
        Ok(diesel::sql_query(query).load(sqlite)?)
    }
}

/// Declares a row of a legacy table and its reader in one place: each field with how it is read
/// (`text`, `real` or `integer`/`bigint` of a column that may be missing or hold the wrong type,
/// `real_first` of several columns, or `*_sql` for a select written out), so the struct and the
/// select list cannot drift apart. Readers are `all` rows or `paged` (after a rowid, at most a
/// count).
macro_rules! legacy_rows {
    (
        $(#[$doc:meta])*
        pub struct $row:ident;
        pub fn $reader:ident($t:ident) $how:ident;
        { $($fields:tt)* }
    ) => {
        legacy_rows!(@field [$(#[$doc])*] $row $reader $t $how [] [] $($fields)*);
    };
    (@field $docs:tt $row:ident $reader:ident $t:ident $how:ident [$($struct:tt)*] [$($select:expr,)*]
        $(#[$field_doc:meta])* $field:ident: $ty:ident = $kind:ident($($arg:tt)*), $($rest:tt)*) => {
        legacy_rows!(@field $docs $row $reader $t $how
            [$($struct)* $(#[$field_doc])* $field: $ty,]
            [$($select,)* legacy_rows!(@select $t $field $kind($($arg)*)),]
            $($rest)*);
    };
    (@field [$($doc:tt)*] $row:ident $reader:ident $t:ident $how:ident
        [$($(#[$field_doc:meta])* $field:ident: $ty:ident,)*] [$($select:expr,)*]) => {
        $($doc)*
        #[derive(Debug, QueryableByName)]
        pub struct $row {
            #[diesel(sql_type = BigInt)]
            pub row_id: i64,
            $(
                $(#[$field_doc])*
                #[diesel(sql_type = Nullable<<$ty as LegacyValue>::Sql>)]
                pub $field: Option<$ty>,
            )*
        }
        legacy_rows!(@reader $how $row $reader $t [$($select,)*]);
    };
    (@reader all $row:ident $reader:ident $t:ident [$($select:expr,)*]) => {
        pub fn $reader(conn: &mut DbConnection, $t: &LegacyTable) -> Result<Vec<$row>, DbError> {
            $t.all(conn, &[$($select),*])
        }
    };
    (@reader paged $row:ident $reader:ident $t:ident [$($select:expr,)*]) => {
        pub fn $reader(
            conn: &mut DbConnection,
            $t: &LegacyTable,
            after: i64,
            limit: i64,
        ) -> Result<Vec<$row>, DbError> {
            $t.page(conn, &[$($select),*], after, limit)
        }
    };
    (@select $t:ident $field:ident text($column:literal)) => { $t.text($column, stringify!($field)) };
    (@select $t:ident $field:ident real($column:literal)) => { $t.real($column, stringify!($field)) };
    (@select $t:ident $field:ident integer($column:literal)) => { $t.integer($column, stringify!($field)) };
    (@select $t:ident $field:ident bigint($column:literal)) => { $t.integer($column, stringify!($field)) };
    (@select $t:ident $field:ident real_first([$($column:literal),+])) => {
        $t.real_first(&[$($column),+], stringify!($field))
    };
    (@select $t:ident $field:ident $kind:ident($sql:expr)) => { $sql };
}

/// The SQL type a legacy value is read as.
trait LegacyValue {
    type Sql: diesel::sql_types::SqlType + diesel::sql_types::SingleValue;
}

impl LegacyValue for String {
    type Sql = Text;
}

impl LegacyValue for f64 {
    type Sql = Double;
}

impl LegacyValue for i32 {
    type Sql = Integer;
}

impl LegacyValue for i64 {
    type Sql = BigInt;
}

/// Opens a SQLite file read-only. Cheap: it reads only the schema; see [`check_integrity`].
pub fn open_read_only(path: &std::path::Path) -> Result<DbConnection, DbError> {
    let fail = |reason: String| DbError::Connect {
        url: format!("sqlite://{}", path.display()),
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !metadata.is_file() {
        return Err(fail("not a file".into()));
    }
    let path_text = path
        .to_str()
        .ok_or_else(|| fail("the path is not valid UTF-8".into()))?;
    let uri = format!(
        "file:{}?mode=ro",
        path_text.replace('?', "%3f").replace('#', "%23")
    );
    let mut conn = diesel::SqliteConnection::establish(&uri).map_err(|e| fail(e.to_string()))?;
    conn.batch_execute("PRAGMA busy_timeout = 10000;")
        .map_err(|e| fail(e.to_string()))?;
    let mut conn = DbConnection::Sqlite(conn);
    // Reading the schema fails at once on a file that is not a database.
    introspect::table_names(&mut conn)
        .map_err(|e| fail(format!("not a readable SQLite database ({e})")))?;
    Ok(conn)
}

#[derive(QueryableByName)]
struct CheckRow {
    #[diesel(sql_type = Text)]
    quick_check: String,
}

/// Fails unless SQLite's `quick_check` says the file is sound.
pub fn check_integrity(conn: &mut DbConnection) -> Result<(), DbError> {
    let rows: Vec<CheckRow> = diesel::sql_query("PRAGMA quick_check")
        .load(conn)
        .map_err(|error| DbError::Invalid(format!("not a readable SQLite database ({error})")))?;
    match rows.first().map(|r| r.quick_check.as_str()) {
        Some("ok") => Ok(()),
        Some(problem) => Err(DbError::Invalid(format!(
            "the database is corrupt: {problem}"
        ))),
        None => Err(DbError::Invalid("integrity check returned nothing".into())),
    }
}

/// Writes a consistent copy of the open database to `target` (which must not exist yet).
pub fn backup_to(conn: &mut DbConnection, target: &std::path::Path) -> Result<(), DbError> {
    let target_text = target
        .to_str()
        .ok_or_else(|| DbError::Invalid("backup path is not valid UTF-8".into()))?;
    diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(target_text)
        .execute(conn)?;
    Ok(())
}

/// Renames `from` to `to` in a SQLite database.
pub fn rename_table(conn: &mut DbConnection, from: &str, to: &str) -> Result<(), DbError> {
    conn.batch_execute(&format!("ALTER TABLE \"{from}\" RENAME TO \"{to}\""))?;
    Ok(())
}

/// The edges of runs of one UTC offset in a sample table: per device, local hours in order, where
/// the offset the timestamps were written with (or none: naive) changes. `offset_minutes` is `None`
/// for naive timestamps.
#[derive(Debug, QueryableByName)]
pub struct OffsetEdgeRow {
    #[diesel(sql_type = Nullable<Text>)]
    pub device: Option<String>,
    /// Local wall-clock hour, `YYYY-MM-DD HH`.
    #[diesel(sql_type = Nullable<Text>)]
    pub hour: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub offset_minutes: Option<i32>,
    /// The first hour of a run.
    #[diesel(sql_type = Integer)]
    pub starts: i32,
    /// The last hour of a run.
    #[diesel(sql_type = Integer)]
    pub ends: i32,
}

/// Which column names a sample table's device.
pub fn device_column(t: &LegacyTable) -> String {
    for column in ["inverter_id", "meter_id", "array_id"] {
        if t.has(column) && !t.has("bank_id") {
            return format!("CAST(\"{column}\" AS TEXT)");
        }
    }
    match (t.has("pack_id"), t.has("bank_id")) {
        (true, true) => "COALESCE(CAST(pack_id AS TEXT), CAST(bank_id AS TEXT))".into(),
        (true, false) => "CAST(pack_id AS TEXT)".into(),
        (false, true) => "CAST(bank_id AS TEXT)".into(),
        (false, false) => "NULL".into(),
    }
}

/// One pass over a sample table: where, per device and local hour, the UTC offset of its
/// timestamps changes (timestamps are read as the app wrote them: `…+05:00`, `…Z`, or naive).
/// Memory stays small whatever the size of the table: only the edges come back.
pub fn offset_edges(
    conn: &mut DbConnection,
    t: &LegacyTable,
) -> Result<Vec<OffsetEdgeRow>, DbError> {
    if !t.has("ts") {
        return Ok(Vec::new());
    }
    let device = device_column(t);
    let query = format!(
        "WITH stamps AS (SELECT trim(CAST(ts AS TEXT)) AS ts, {device} AS device FROM \"{table}\" WHERE ts IS NOT NULL), \
         hours AS (SELECT device, substr(replace(ts, 'T', ' '), 1, 13) AS hour, \
             CASE WHEN ts GLOB '*[Zz]' THEN 0 \
                  WHEN ts GLOB '*[+-][0-9][0-9]:[0-9][0-9]' THEN \
                      (CASE substr(ts, -6, 1) WHEN '-' THEN -1 ELSE 1 END) \
                      * (CAST(substr(ts, -5, 2) AS INTEGER) * 60 + CAST(substr(ts, -2, 2) AS INTEGER)) \
                  WHEN ts GLOB '*[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9][0-9][0-9]' THEN \
                      (CASE substr(ts, -5, 1) WHEN '-' THEN -1 ELSE 1 END) \
                      * (CAST(substr(ts, -4, 2) AS INTEGER) * 60 + CAST(substr(ts, -2, 2) AS INTEGER)) \
                  ELSE NULL END AS offset_minutes \
             FROM stamps GROUP BY 1, 2, 3), \
         edges AS (SELECT device, hour, offset_minutes, \
             (LAG(offset_minutes, 1, -99999) OVER w IS NOT offset_minutes) AS starts, \
             (LEAD(offset_minutes, 1, -99999) OVER w IS NOT offset_minutes) AS ends \
             FROM hours WINDOW w AS (PARTITION BY device ORDER BY hour, offset_minutes DESC)) \
         SELECT device, hour, offset_minutes, starts, ends FROM edges WHERE starts OR ends \
         ORDER BY device, hour, offset_minutes DESC",
        table = t.name
    );
    let DbConnection::Sqlite(sqlite) = conn else {
        return Err(DbError::Invalid(
            "a legacy database is always SQLite".into(),
        ));
    };
    Ok(diesel::sql_query(query).load(sqlite)?)
}

legacy_rows! {
    /// One row of the old app's `daily_summary` (per inverter and local day).
    pub struct OldDayRow;
    pub fn read_old_days(t) all;
    {
        inverter_id: String = text("inverter_id"),
        date: String = text("date"),
        solar_kwh: f64 = real("pv_energy_kwh"),
        load_kwh: f64 = real("load_energy_kwh"),
        grid_import_kwh: f64 = real("grid_energy_imported_kwh"),
        grid_export_kwh: f64 = real("grid_energy_exported_kwh"),
        avg_pv_power_w: f64 = real("pv_avg_power_w"),
        peak_pv_power_w: f64 = real("pv_max_power_w"),
        avg_load_power_w: f64 = real("load_avg_power_w"),
        peak_load_power_w: f64 = real("load_max_power_w"),
        peak_grid_import_w: f64 = real("grid_max_import_w"),
        peak_grid_export_w: f64 = real("grid_max_export_w"),
        soc_min_pct: f64 = real("battery_min_soc_pct"),
        soc_avg_pct: f64 = real("battery_avg_soc_pct"),
        soc_max_pct: f64 = real("battery_max_soc_pct"),
        battery_cycles: f64 = real("battery_cycles"),
        sample_count: i64 = bigint("sample_count"),
    }
}

legacy_rows! {
    /// One row of the old app's `meter_hourly_energy` (hour set) or `meter_daily` (hour `None`).
    pub struct OldMeterFigureRow;
    pub fn read_old_meter_figures(t) all;
    {
        meter_id: String = text("meter_id"),
        date: String = text_sql(if t.has("date") {
            t.text("date", "date")
        } else {
            t.text("day", "date")
        }),
        hour: i64 = bigint_sql(if t.has("hour_start") {
            "CAST(\"hour_start\" AS INTEGER) AS hour".to_owned()
        } else {
            "NULL AS hour".to_owned()
        }),
        import_kwh: f64 = real("import_energy_kwh"),
        export_kwh: f64 = real("export_energy_kwh"),
        avg_power_w: f64 = real("avg_power_w"),
        peak_import_w: f64 = real("max_import_power_w"),
        peak_export_w: f64 = real("max_export_power_w"),
        avg_voltage_v: f64 = real("avg_voltage_v"),
        avg_current_a: f64 = real("avg_current_a"),
        avg_frequency_hz: f64 = real("avg_frequency_hz"),
        sample_count: i64 = bigint("sample_count"),
    }
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

mod own;
mod samples;

pub use own::*;
pub use samples::*;
