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

/// Legacy catalog rows: `arrays` (id, name) and `battery_packs`.
#[derive(Debug, QueryableByName)]
pub struct LegacyArrayCatalogRow {
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub array_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
}

pub fn read_legacy_arrays(
    conn: &mut DbConnection,
    table: &LegacyTable,
) -> Result<Vec<LegacyArrayCatalogRow>, DbError> {
    table.page(
        conn,
        &[
            table.text("array_id", "array_id"),
            table.text("name", "name"),
        ],
        0,
        i64::MAX,
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
    ];
    t.page(conn, &select, 0, i64::MAX)
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
}

pub fn read_legacy_hours(
    conn: &mut DbConnection,
    table: &LegacyTable,
) -> Result<Vec<LegacyHourRow>, DbError> {
    table.page(
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
        ],
        0,
        i64::MAX,
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
    table.page(
        conn,
        &[
            table.text("inverter_id", "inverter_id"),
            table.text("day", "day"),
            table.real("pv_kwh", "pv_kwh"),
        ],
        0,
        i64::MAX,
    )
}
