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

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

#[derive(Debug, QueryableByName)]
pub struct LegacyEnergyRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub ts: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub inverter_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub array_id: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    pub pv_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub load_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub grid_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub battery_soc_pct: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub battery_voltage_v: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub battery_current_a: Option<f64>,
    /// Only some versions stored it; in the old app's sign (positive = charging).
    #[diesel(sql_type = Nullable<Double>)]
    pub battery_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub inverter_mode: Option<i32>,
    #[diesel(sql_type = Nullable<Double>)]
    pub inverter_temp_c: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub grid_import_wh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub grid_export_wh: Option<f64>,
}

/// Numeric columns of legacy `energy_samples`, for counting unreadable values.
pub const ENERGY_NUMERIC_COLUMNS: &[&str] = &[
    "pv_power_w",
    "load_power_w",
    "grid_power_w",
    "batt_voltage_v",
    "batt_current_a",
    "soc",
    "battery_soc",
    "battery_voltage_v",
    "battery_current_a",
    "battery_power_w",
    "batt_power_w",
    "inverter_mode",
    "inverter_temp_c",
    "grid_import_wh",
    "grid_export_wh",
];

pub fn read_energy_page(
    conn: &mut DbConnection,
    table: &LegacyTable,
    after: i64,
    limit: i64,
) -> Result<Vec<LegacyEnergyRow>, DbError> {
    let t = table;
    let select = vec![
        t.text("ts", "ts"),
        t.text("inverter_id", "inverter_id"),
        t.text("array_id", "array_id"),
        t.real("pv_power_w", "pv_power_w"),
        t.real("load_power_w", "load_power_w"),
        t.real("grid_power_w", "grid_power_w"),
        // The old app wrote `soc` first and `battery_soc` later; the newer column wins.
        t.real_first(&["battery_soc", "soc"], "battery_soc_pct"),
        t.real_first(
            &["battery_voltage_v", "batt_voltage_v"],
            "battery_voltage_v",
        ),
        t.real_first(
            &["battery_current_a", "batt_current_a"],
            "battery_current_a",
        ),
        t.real_first(&["battery_power_w", "batt_power_w"], "battery_power_w"),
        t.integer("inverter_mode", "inverter_mode"),
        t.real("inverter_temp_c", "inverter_temp_c"),
        t.real("grid_import_wh", "grid_import_wh"),
        t.real("grid_export_wh", "grid_export_wh"),
    ];
    t.page(conn, &select, after, limit)
}

#[derive(Debug, QueryableByName)]
pub struct LegacyArrayRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub ts: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub array_id: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    pub pv_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub load_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub grid_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub battery_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub battery_soc_pct: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub battery_voltage_v: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub battery_current_a: Option<f64>,
}

pub fn read_array_page(
    conn: &mut DbConnection,
    table: &LegacyTable,
    after: i64,
    limit: i64,
) -> Result<Vec<LegacyArrayRow>, DbError> {
    let t = table;
    let select = vec![
        t.text("ts", "ts"),
        t.text("array_id", "array_id"),
        t.real("pv_power_w", "pv_power_w"),
        t.real("load_power_w", "load_power_w"),
        t.real("grid_power_w", "grid_power_w"),
        t.real("batt_power_w", "battery_power_w"),
        t.real("batt_soc_pct", "battery_soc_pct"),
        t.real("batt_voltage_v", "battery_voltage_v"),
        t.real("batt_current_a", "battery_current_a"),
    ];
    t.page(conn, &select, after, limit)
}

#[derive(Debug, QueryableByName)]
pub struct LegacyBankRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub ts: Option<String>,
    /// `pack_id` where the old app wrote it, else `bank_id`.
    #[diesel(sql_type = Nullable<Text>)]
    pub pack_id: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    pub voltage: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub current: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub temperature: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub soc: Option<f64>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub batteries_count: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub cells_per_battery: Option<i32>,
}

fn pack_column(t: &LegacyTable) -> String {
    match (t.has("pack_id"), t.has("bank_id")) {
        (true, true) => "COALESCE(CAST(pack_id AS TEXT), CAST(bank_id AS TEXT)) AS pack_id".into(),
        (true, false) => "CAST(pack_id AS TEXT) AS pack_id".into(),
        (false, true) => "CAST(bank_id AS TEXT) AS pack_id".into(),
        (false, false) => "NULL AS pack_id".into(),
    }
}

pub fn read_bank_page(
    conn: &mut DbConnection,
    table: &LegacyTable,
    after: i64,
    limit: i64,
) -> Result<Vec<LegacyBankRow>, DbError> {
    let t = table;
    let select = vec![
        t.text("ts", "ts"),
        pack_column(t),
        t.real("voltage", "voltage"),
        t.real("current", "current"),
        t.real("temperature", "temperature"),
        t.real("soc", "soc"),
        t.integer("batteries_count", "batteries_count"),
        t.integer("cells_per_battery", "cells_per_battery"),
    ];
    t.page(conn, &select, after, limit)
}

#[derive(Debug, QueryableByName)]
pub struct LegacyUnitRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub ts: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub pack_id: Option<String>,
    /// The 1-based battery index, stored by the old app in a column named `power`.
    #[diesel(sql_type = Nullable<Integer>)]
    pub battery_index: Option<i32>,
    #[diesel(sql_type = Nullable<Double>)]
    pub voltage: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub current: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub temperature: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub soc: Option<f64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub basic_st: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub volt_st: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub current_st: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub temp_st: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub soh_st: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub coul_st: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub heater_st: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub bat_events: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub power_events: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub sys_events: Option<i64>,
}

pub fn read_unit_page(
    conn: &mut DbConnection,
    table: &LegacyTable,
    after: i64,
    limit: i64,
) -> Result<Vec<LegacyUnitRow>, DbError> {
    let t = table;
    let select = vec![
        t.text("ts", "ts"),
        pack_column(t),
        t.integer("power", "battery_index"),
        t.real("voltage", "voltage"),
        t.real("current", "current"),
        t.real("temperature", "temperature"),
        t.real("soc", "soc"),
        t.text("basic_st", "basic_st"),
        t.text("volt_st", "volt_st"),
        t.text("current_st", "current_st"),
        t.text("temp_st", "temp_st"),
        t.text("soh_st", "soh_st"),
        t.text("coul_st", "coul_st"),
        t.text("heater_st", "heater_st"),
        t.integer("bat_events", "bat_events"),
        t.integer("power_events", "power_events"),
        t.integer("sys_events", "sys_events"),
    ];
    t.page(conn, &select, after, limit)
}

#[derive(Debug, QueryableByName)]
pub struct LegacyCellRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub ts: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub pack_id: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub battery_index: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub cell_index: Option<i32>,
    #[diesel(sql_type = Nullable<Double>)]
    pub voltage: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub temperature: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub soc: Option<f64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub volt_st: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub temp_st: Option<String>,
}

pub fn read_cell_page(
    conn: &mut DbConnection,
    table: &LegacyTable,
    after: i64,
    limit: i64,
) -> Result<Vec<LegacyCellRow>, DbError> {
    let t = table;
    let select = vec![
        t.text("ts", "ts"),
        pack_column(t),
        t.integer("power", "battery_index"),
        t.integer("cell", "cell_index"),
        t.real("voltage", "voltage"),
        t.real("temperature", "temperature"),
        t.real("soc", "soc"),
        t.text("volt_st", "volt_st"),
        t.text("temp_st", "temp_st"),
    ];
    t.page(conn, &select, after, limit)
}

#[derive(Debug, QueryableByName)]
pub struct LegacyMeterRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub ts: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub meter_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub array_id: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    pub power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub voltage_v: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub current_a: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub frequency_hz: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub import_wh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub export_wh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub energy_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub power_factor: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub l1_voltage_v: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub l2_voltage_v: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub l3_voltage_v: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub l1_current_a: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub l2_current_a: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub l3_current_a: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub l1_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub l2_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub l3_power_w: Option<f64>,
}

pub fn read_meter_page(
    conn: &mut DbConnection,
    table: &LegacyTable,
    after: i64,
    limit: i64,
) -> Result<Vec<LegacyMeterRow>, DbError> {
    let t = table;
    let select = vec![
        t.text("ts", "ts"),
        t.text("meter_id", "meter_id"),
        t.text("array_id", "array_id"),
        t.real("grid_power_w", "power_w"),
        t.real("grid_voltage_v", "voltage_v"),
        t.real("grid_current_a", "current_a"),
        t.real("grid_frequency_hz", "frequency_hz"),
        t.real("grid_import_wh", "import_wh"),
        t.real("grid_export_wh", "export_wh"),
        t.real("energy_kwh", "energy_kwh"),
        t.real("power_factor", "power_factor"),
        t.real("voltage_phase_a", "l1_voltage_v"),
        t.real("voltage_phase_b", "l2_voltage_v"),
        t.real("voltage_phase_c", "l3_voltage_v"),
        t.real("current_phase_a", "l1_current_a"),
        t.real("current_phase_b", "l2_current_a"),
        t.real("current_phase_c", "l3_current_a"),
        t.real("power_phase_a", "l1_power_w"),
        t.real("power_phase_b", "l2_power_w"),
        t.real("power_phase_c", "l3_power_w"),
    ];
    t.page(conn, &select, after, limit)
}

/// Legacy catalog rows: `arrays` (id, name; the system since the old app's hierarchy migration)
/// and `battery_packs`.
#[derive(Debug, QueryableByName)]
pub struct LegacyArrayCatalogRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub array_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub system_id: Option<String>,
}

pub fn read_legacy_arrays(
    conn: &mut DbConnection,
    table: &LegacyTable,
) -> Result<Vec<LegacyArrayCatalogRow>, DbError> {
    table.all(
        conn,
        &[
            table.text("array_id", "array_id"),
            table.text("name", "name"),
            table.text("system_id", "system_id"),
        ],
    )
}

#[derive(Debug, QueryableByName)]
pub struct LegacyPackCatalogRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub pack_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub chemistry: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    pub nominal_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub max_charge_kw: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub max_discharge_kw: Option<f64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub battery_array_id: Option<String>,
}

pub fn read_legacy_packs(
    conn: &mut DbConnection,
    table: &LegacyTable,
) -> Result<Vec<LegacyPackCatalogRow>, DbError> {
    let t = table;
    let select = vec![
        t.text("pack_id", "pack_id"),
        t.text("name", "name"),
        t.text("chemistry", "chemistry"),
        t.real("nominal_kwh", "nominal_kwh"),
        t.real("max_charge_kw", "max_charge_kw"),
        t.real("max_discharge_kw", "max_discharge_kw"),
        t.text("battery_array_id", "battery_array_id"),
    ];
    t.all(conn, &select)
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

/// One row of the old app's own `hourly_energy` (its local date and hour).
#[derive(Debug, QueryableByName)]
pub struct LegacyHourRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub inverter_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub date: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub hour: Option<i64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub solar_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub load_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub battery_charge_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub battery_discharge_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub grid_import_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub grid_export_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_pv_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_load_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_battery_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_grid_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub sample_count: Option<i64>,
}

pub fn read_legacy_hours(
    conn: &mut DbConnection,
    table: &LegacyTable,
) -> Result<Vec<LegacyHourRow>, DbError> {
    table.all(
        conn,
        &[
            table.text("inverter_id", "inverter_id"),
            table.text("date", "date"),
            // Stored as a number or as "HH:MM": SQLite's CAST reads the leading hour either way.
            if table.has("hour_start") {
                "CAST(\"hour_start\" AS INTEGER) AS hour".to_owned()
            } else {
                "NULL AS hour".to_owned()
            },
            table.real("solar_energy_kwh", "solar_kwh"),
            table.real("load_energy_kwh", "load_kwh"),
            table.real("battery_charge_energy_kwh", "battery_charge_kwh"),
            table.real("battery_discharge_energy_kwh", "battery_discharge_kwh"),
            table.real("grid_import_energy_kwh", "grid_import_kwh"),
            table.real("grid_export_energy_kwh", "grid_export_kwh"),
            table.real("avg_solar_power_w", "avg_pv_power_w"),
            table.real("avg_load_power_w", "avg_load_power_w"),
            table.real("avg_battery_power_w", "avg_battery_power_w"),
            table.real("avg_grid_power_w", "avg_grid_power_w"),
            table.integer("sample_count", "sample_count"),
        ],
    )
}

/// One row of the old app's `pv_daily` (PV energy per inverter and local day).
#[derive(Debug, QueryableByName)]
pub struct LegacyPvDayRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub inverter_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub day: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    pub pv_kwh: Option<f64>,
}

pub fn read_legacy_pv_days(
    conn: &mut DbConnection,
    table: &LegacyTable,
) -> Result<Vec<LegacyPvDayRow>, DbError> {
    table.all(
        conn,
        &[
            table.text("inverter_id", "inverter_id"),
            table.text("day", "day"),
            table.real("pv_kwh", "pv_kwh"),
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// The old app's own hierarchy (its "Phase 1" migration), settings and daily figures.

/// A row of the old app's `systems`.
#[derive(Debug, QueryableByName)]
pub struct OldSystemRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub system_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub description: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub timezone: Option<String>,
}

pub fn read_old_systems(
    conn: &mut DbConnection,
    t: &LegacyTable,
) -> Result<Vec<OldSystemRow>, DbError> {
    t.all(
        conn,
        &[
            t.text("system_id", "system_id"),
            t.text("name", "name"),
            t.text("description", "description"),
            t.text("timezone", "timezone"),
        ],
    )
}

/// A row of the old app's `inverters`.
#[derive(Debug, QueryableByName)]
pub struct OldInverterRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub inverter_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub array_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub adapter_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub model: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub serial_number: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub vendor: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub phase_type: Option<String>,
}

pub fn read_old_inverters(
    conn: &mut DbConnection,
    t: &LegacyTable,
) -> Result<Vec<OldInverterRow>, DbError> {
    t.all(
        conn,
        &[
            t.text("inverter_id", "inverter_id"),
            t.text("array_id", "array_id"),
            t.text("adapter_id", "adapter_id"),
            t.text("name", "name"),
            t.text("model", "model"),
            t.text("serial_number", "serial_number"),
            t.text("vendor", "vendor"),
            t.text("phase_type", "phase_type"),
        ],
    )
}

/// A row of the old app's `meters` (`type` is its meter type; `array_id` NULL is system level).
#[derive(Debug, QueryableByName)]
pub struct OldMeterRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub meter_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub array_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub adapter_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub model: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub meter_type: Option<String>,
}

pub fn read_old_meters(
    conn: &mut DbConnection,
    t: &LegacyTable,
) -> Result<Vec<OldMeterRow>, DbError> {
    t.all(
        conn,
        &[
            t.text("meter_id", "meter_id"),
            t.text("array_id", "array_id"),
            t.text("adapter_id", "adapter_id"),
            t.text("name", "name"),
            t.text("model", "model"),
            t.text("type", "meter_type"),
        ],
    )
}

/// A row of the old app's `adapters` (`config_json` is the config.yaml adapter block, with `type`).
#[derive(Debug, QueryableByName)]
pub struct OldAdapterRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub adapter_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub adapter_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub config_json: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub device_id: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub priority: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub enabled: Option<i32>,
}

pub fn read_old_adapters(
    conn: &mut DbConnection,
    t: &LegacyTable,
) -> Result<Vec<OldAdapterRow>, DbError> {
    t.all(
        conn,
        &[
            t.text("adapter_id", "adapter_id"),
            t.text("adapter_type", "adapter_type"),
            t.text("config_json", "config_json"),
            t.text("device_id", "device_id"),
            t.integer("priority", "priority"),
            t.integer("enabled", "enabled"),
        ],
    )
}

/// A row of the old app's `battery_arrays`.
#[derive(Debug, QueryableByName)]
pub struct OldBatteryArrayRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub battery_array_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
}

pub fn read_old_battery_arrays(
    conn: &mut DbConnection,
    t: &LegacyTable,
) -> Result<Vec<OldBatteryArrayRow>, DbError> {
    t.all(
        conn,
        &[
            t.text("battery_array_id", "battery_array_id"),
            t.text("name", "name"),
        ],
    )
}

/// A row of the old app's `battery_pack_adapters`.
#[derive(Debug, QueryableByName)]
pub struct OldPackAdapterRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub pack_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub adapter_id: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub priority: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub enabled: Option<i32>,
}

pub fn read_old_pack_adapters(
    conn: &mut DbConnection,
    t: &LegacyTable,
) -> Result<Vec<OldPackAdapterRow>, DbError> {
    t.all(
        conn,
        &[
            t.text("pack_id", "pack_id"),
            t.text("adapter_id", "adapter_id"),
            t.integer("priority", "priority"),
            t.integer("enabled", "enabled"),
        ],
    )
}

/// A row of the old app's `battery_array_attachments` (times as the app wrote them).
#[derive(Debug, QueryableByName)]
pub struct OldAttachmentRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub battery_array_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub inverter_array_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub attached_since: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub detached_at: Option<String>,
}

pub fn read_old_attachments(
    conn: &mut DbConnection,
    t: &LegacyTable,
) -> Result<Vec<OldAttachmentRow>, DbError> {
    t.all(
        conn,
        &[
            t.text("battery_array_id", "battery_array_id"),
            t.text("inverter_array_id", "inverter_array_id"),
            t.text("attached_since", "attached_since"),
            t.text("detached_at", "detached_at"),
        ],
    )
}

/// A setting of the old app's `configuration` table (flattened keys such as `timezone`).
#[derive(Debug, QueryableByName)]
pub struct SettingRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub value: Option<String>,
}

pub fn read_settings(conn: &mut DbConnection, t: &LegacyTable) -> Result<Vec<SettingRow>, DbError> {
    t.all(conn, &[t.text("key", "key"), t.text("value", "value")])
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

/// One row of the old app's `daily_summary` (per inverter and local day).
#[derive(Debug, QueryableByName)]
pub struct OldDayRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub inverter_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub date: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    pub solar_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub load_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub grid_import_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub grid_export_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_pv_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub peak_pv_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_load_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub peak_load_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub peak_grid_import_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub peak_grid_export_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub soc_min_pct: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub soc_avg_pct: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub soc_max_pct: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub battery_cycles: Option<f64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub sample_count: Option<i64>,
}

pub fn read_old_days(conn: &mut DbConnection, t: &LegacyTable) -> Result<Vec<OldDayRow>, DbError> {
    t.all(
        conn,
        &[
            t.text("inverter_id", "inverter_id"),
            t.text("date", "date"),
            t.real("pv_energy_kwh", "solar_kwh"),
            t.real("load_energy_kwh", "load_kwh"),
            t.real("grid_energy_imported_kwh", "grid_import_kwh"),
            t.real("grid_energy_exported_kwh", "grid_export_kwh"),
            t.real("pv_avg_power_w", "avg_pv_power_w"),
            t.real("pv_max_power_w", "peak_pv_power_w"),
            t.real("load_avg_power_w", "avg_load_power_w"),
            t.real("load_max_power_w", "peak_load_power_w"),
            t.real("grid_max_import_w", "peak_grid_import_w"),
            t.real("grid_max_export_w", "peak_grid_export_w"),
            t.real("battery_min_soc_pct", "soc_min_pct"),
            t.real("battery_avg_soc_pct", "soc_avg_pct"),
            t.real("battery_max_soc_pct", "soc_max_pct"),
            t.real("battery_cycles", "battery_cycles"),
            t.integer("sample_count", "sample_count"),
        ],
    )
}

/// One row of the old app's `meter_hourly_energy` (hour set) or `meter_daily` (hour `None`).
#[derive(Debug, QueryableByName)]
pub struct OldMeterFigureRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub meter_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub date: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub hour: Option<i64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub import_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub export_kwh: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_power_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub peak_import_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub peak_export_w: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_voltage_v: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_current_a: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_frequency_hz: Option<f64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub sample_count: Option<i64>,
}

pub fn read_old_meter_figures(
    conn: &mut DbConnection,
    t: &LegacyTable,
) -> Result<Vec<OldMeterFigureRow>, DbError> {
    let hour = if t.has("hour_start") {
        "CAST(\"hour_start\" AS INTEGER) AS hour".to_owned()
    } else {
        "NULL AS hour".to_owned()
    };
    let date = if t.has("date") {
        t.text("date", "date")
    } else {
        t.text("day", "date")
    };
    t.all(
        conn,
        &[
            t.text("meter_id", "meter_id"),
            date,
            hour,
            t.real("import_energy_kwh", "import_kwh"),
            t.real("export_energy_kwh", "export_kwh"),
            t.real("avg_power_w", "avg_power_w"),
            t.real("max_import_power_w", "peak_import_w"),
            t.real("max_export_power_w", "peak_export_w"),
            t.real("avg_voltage_v", "avg_voltage_v"),
            t.real("avg_current_a", "avg_current_a"),
            t.real("avg_frequency_hz", "avg_frequency_hz"),
            t.integer("sample_count", "sample_count"),
        ],
    )
}
