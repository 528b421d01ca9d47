//! Rollup storage (DESIGN §3.3): the ten rollup tables as rows, the samples a roll reads, and the
//! pending ranges ingest leaves for the roller.

use diesel::prelude::*;

use super::samples::{BatteryBankSample, EnergySample, MeterSample};
use super::{DbConnection, DbError, schema};

/// `source` of a row computed from raw samples.
pub const FROM_SAMPLES: &str = "samples";
/// `source` of a row carried over from the old app's own hourly and daily tables.
pub const FROM_LEGACY: &str = "legacy";

/// Rows per INSERT statement: under both backends' bind-parameter limits for the widest table, and
/// small enough that a statement's memory stays small (SQLite's program for 400 rows of 30 values
/// was a megabyte of a roller pass's peak at 1,000 devices; 100 rows cost a quarter of it and the
/// same time: preparing is linear in the statement's size).
const INSERT_ROWS: usize = 100;

macro_rules! energy_table {
    ($row:ident, $table:ident, [$($field:ident: $ty:ty),*]) => {
        #[derive(Debug, Clone, PartialEq, Insertable, Queryable, Selectable)]
        #[diesel(table_name = schema::$table, treat_none_as_default_value = false)]
        pub struct $row {
            $(pub $field: $ty,)*
            pub bucket_start: i64,
            pub bucket_end: i64,
            pub date: String,
            pub solar_kwh: Option<f64>,
            pub load_kwh: Option<f64>,
            pub battery_charge_kwh: Option<f64>,
            pub battery_discharge_kwh: Option<f64>,
            pub grid_import_kwh: Option<f64>,
            pub grid_export_kwh: Option<f64>,
            pub avg_pv_power_w: Option<f64>,
            pub peak_pv_power_w: Option<f64>,
            pub avg_load_power_w: Option<f64>,
            pub peak_load_power_w: Option<f64>,
            pub avg_grid_power_w: Option<f64>,
            pub peak_grid_import_w: Option<f64>,
            pub peak_grid_export_w: Option<f64>,
            pub avg_battery_power_w: Option<f64>,
            pub soc_min_pct: Option<f64>,
            pub soc_avg_pct: Option<f64>,
            pub soc_max_pct: Option<f64>,
            pub sample_count: i64,
            pub coverage_pct: f64,
            pub updated_at: i64,
            /// [`FROM_SAMPLES`] or [`FROM_LEGACY`].
            pub source: String,
        }

        impl EnergyColumns for $row {
            fn figures(&self) -> Figures {
                Figures {
                    kwh: [
                        self.solar_kwh,
                        self.load_kwh,
                        self.battery_charge_kwh,
                        self.battery_discharge_kwh,
                        self.grid_import_kwh,
                        self.grid_export_kwh,
                    ],
                    avg_pv: self.avg_pv_power_w,
                    peak_pv: self.peak_pv_power_w,
                    avg_load: self.avg_load_power_w,
                    peak_load: self.peak_load_power_w,
                    avg_grid: self.avg_grid_power_w,
                    peak_import: self.peak_grid_import_w,
                    peak_export: self.peak_grid_export_w,
                    avg_battery: self.avg_battery_power_w,
                    soc_min: self.soc_min_pct,
                    soc_avg: self.soc_avg_pct,
                    soc_max: self.soc_max_pct,
                    sample_count: self.sample_count,
                    coverage_pct: self.coverage_pct,
                }
            }
            fn span_ms(&self) -> i64 {
                self.bucket_end - self.bucket_start
            }
            fn source(&self) -> &str {
                &self.source
            }
        }
    };
}

/// A row of an energy table made from its ids, its bucket and its figures: the one place figures
/// become columns (`EnergyColumns::figures` is the way back).
macro_rules! energy_row {
    ($row:ident { $($field:ident: $value:expr),* $(,)? }, $bucket:expr, $f:expr, $at:expr, $source:expr) => {{
        let f: &$crate::db::rollups::Figures = $f;
        let bucket: &$crate::local_time::Bucket = $bucket;
        $crate::db::rollups::$row {
            $($field: $value,)*
            bucket_start: bucket.start,
            bucket_end: bucket.end,
            date: bucket.date.clone(),
            solar_kwh: f.kwh[$crate::db::rollups::SOLAR],
            load_kwh: f.kwh[$crate::db::rollups::LOAD],
            battery_charge_kwh: f.kwh[$crate::db::rollups::CHARGE],
            battery_discharge_kwh: f.kwh[$crate::db::rollups::DISCHARGE],
            grid_import_kwh: f.kwh[$crate::db::rollups::IMPORT],
            grid_export_kwh: f.kwh[$crate::db::rollups::EXPORT],
            avg_pv_power_w: f.avg_pv,
            peak_pv_power_w: f.peak_pv,
            avg_load_power_w: f.avg_load,
            peak_load_power_w: f.peak_load,
            avg_grid_power_w: f.avg_grid,
            peak_grid_import_w: f.peak_import,
            peak_grid_export_w: f.peak_export,
            avg_battery_power_w: f.avg_battery,
            soc_min_pct: f.soc_min,
            soc_avg_pct: f.soc_avg,
            soc_max_pct: f.soc_max,
            sample_count: f.sample_count,
            coverage_pct: f.coverage_pct,
            updated_at: $at,
            source: $source.to_owned(),
        }
    }};
    ($row:ident { $($field:ident: $value:expr),* $(,)? }, $bucket:expr, $f:expr, $at:expr) => {
        $crate::db::rollups::energy_row!(
            $row { $($field: $value),* }, $bucket, $f, $at, $crate::db::rollups::FROM_SAMPLES
        )
    };
}
pub(crate) use energy_row;

/// The energy quantities, as indexes of [`Figures::kwh`].
pub const SOLAR: usize = 0;
pub const LOAD: usize = 1;
pub const CHARGE: usize = 2;
pub const DISCHARGE: usize = 3;
pub const IMPORT: usize = 4;
pub const EXPORT: usize = 5;
pub const QUANTITIES: usize = 6;

/// The figures every energy row has (inverter, array, system; hours and days; computed or
/// carried from the old app) and the history API answers: energies, average and peak powers,
/// SOC, sample count, coverage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// kWh of each quantity ([`SOLAR`], [`LOAD`], [`CHARGE`], [`DISCHARGE`], [`IMPORT`],
    /// [`EXPORT`]).
    pub kwh: [Option<f64>; QUANTITIES],
    pub avg_pv: Option<f64>,
    pub peak_pv: Option<f64>,
    pub avg_load: Option<f64>,
    pub peak_load: Option<f64>,
    pub avg_grid: Option<f64>,
    pub peak_import: Option<f64>,
    pub peak_export: Option<f64>,
    pub avg_battery: Option<f64>,
    pub soc_min: Option<f64>,
    pub soc_avg: Option<f64>,
    pub soc_max: Option<f64>,
    pub sample_count: i64,
    pub coverage_pct: f64,
}

/// The figures every energy table (inverter, array, system; hours and days) has, in one order.
pub trait EnergyColumns {
    fn figures(&self) -> Figures;
    /// Length of the bucket (ms).
    fn span_ms(&self) -> i64;
    /// [`FROM_SAMPLES`] or [`FROM_LEGACY`].
    fn source(&self) -> &str;
}

energy_table!(InverterHour, hourly_energy, [inverter_id: String, hour_start: i32, array_id: Option<String>, system_id: String]);
energy_table!(ArrayHour, array_hourly_energy, [array_id: String, hour_start: i32, system_id: String]);
energy_table!(SystemHour, system_hourly_energy, [system_id: String, hour_start: i32]);
energy_table!(InverterDay, daily_summary, [inverter_id: String, array_id: Option<String>, system_id: String, battery_cycles: Option<f64>]);
energy_table!(ArrayDay, array_daily_summary, [array_id: String, system_id: String, battery_cycles: Option<f64>]);
energy_table!(SystemDay, system_daily_summary, [system_id: String, battery_cycles: Option<f64>]);

macro_rules! battery_table {
    ($row:ident, $table:ident, [$($field:ident: $ty:ty),*]) => {
        #[derive(Debug, Clone, PartialEq, Insertable, Queryable, Selectable)]
        #[diesel(table_name = schema::$table, treat_none_as_default_value = false)]
        pub struct $row {
            pub pack_id: String,
            $(pub $field: $ty,)*
            pub bucket_start: i64,
            pub bucket_end: i64,
            pub date: String,
            pub battery_array_id: Option<String>,
            pub system_id: String,
            pub charge_kwh: Option<f64>,
            pub discharge_kwh: Option<f64>,
            pub avg_power_w: Option<f64>,
            pub peak_charge_w: Option<f64>,
            pub peak_discharge_w: Option<f64>,
            pub avg_voltage_v: Option<f64>,
            pub avg_current_a: Option<f64>,
            pub avg_temperature_c: Option<f64>,
            pub max_temperature_c: Option<f64>,
            pub soc_min_pct: Option<f64>,
            pub soc_avg_pct: Option<f64>,
            pub soc_max_pct: Option<f64>,
            pub sample_count: i64,
            pub coverage_pct: f64,
            pub updated_at: i64,
            /// [`FROM_SAMPLES`] or [`FROM_LEGACY`].
            pub source: String,
        }
    };
}

battery_table!(PackHour, battery_bank_hourly, [hour_start: i32]);
battery_table!(PackDay, battery_bank_daily, [cycles: Option<f64>]);

macro_rules! meter_table {
    ($row:ident, $table:ident, [$($field:ident: $ty:ty),*]) => {
        #[derive(Debug, Clone, PartialEq, Insertable, Queryable, Selectable)]
        #[diesel(table_name = schema::$table, treat_none_as_default_value = false)]
        pub struct $row {
            pub meter_id: String,
            $(pub $field: $ty,)*
            pub bucket_start: i64,
            pub bucket_end: i64,
            pub date: String,
            pub system_id: String,
            pub array_id: Option<String>,
            pub import_kwh: Option<f64>,
            pub export_kwh: Option<f64>,
            pub net_kwh: Option<f64>,
            pub avg_power_w: Option<f64>,
            pub peak_import_w: Option<f64>,
            pub peak_export_w: Option<f64>,
            pub avg_voltage_v: Option<f64>,
            pub avg_current_a: Option<f64>,
            pub avg_frequency_hz: Option<f64>,
            pub sample_count: i64,
            pub coverage_pct: f64,
            pub updated_at: i64,
            /// [`FROM_SAMPLES`] or [`FROM_LEGACY`].
            pub source: String,
        }
    };
}

meter_table!(MeterHour, meter_hourly_energy, [hour_start: i32]);
meter_table!(MeterDay, meter_daily, []);

/// Every rollup row of a system in a time range, table by table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupRows {
    pub inverter_hours: Vec<InverterHour>,
    pub array_hours: Vec<ArrayHour>,
    pub system_hours: Vec<SystemHour>,
    pub pack_hours: Vec<PackHour>,
    pub meter_hours: Vec<MeterHour>,
    pub inverter_days: Vec<InverterDay>,
    pub array_days: Vec<ArrayDay>,
    pub system_days: Vec<SystemDay>,
    pub pack_days: Vec<PackDay>,
    pub meter_days: Vec<MeterDay>,
}

impl RollupRows {
    /// The same rows with `updated_at` cleared, for comparing two rolls.
    pub fn without_times(mut self) -> RollupRows {
        macro_rules! clear {
            ($($rows:ident),*) => { $(for row in &mut self.$rows { row.updated_at = 0; })* };
        }
        clear!(
            inverter_hours,
            array_hours,
            system_hours,
            pack_hours,
            meter_hours,
            inverter_days,
            array_days,
            system_days,
            pack_days,
            meter_days
        );
        self
    }
}

macro_rules! per_table {
    ($m:ident) => {
        $m!(inverter_hours, InverterHour, hourly_energy, inverter_id);
        $m!(array_hours, ArrayHour, array_hourly_energy, array_id);
        $m!(system_hours, SystemHour, system_hourly_energy, system_id);
        $m!(pack_hours, PackHour, battery_bank_hourly, pack_id);
        $m!(meter_hours, MeterHour, meter_hourly_energy, meter_id);
        $m!(inverter_days, InverterDay, daily_summary, inverter_id);
        $m!(array_days, ArrayDay, array_daily_summary, array_id);
        $m!(system_days, SystemDay, system_daily_summary, system_id);
        $m!(pack_days, PackDay, battery_bank_daily, pack_id);
        $m!(meter_days, MeterDay, meter_daily, meter_id);
    };
}

/// Which rollup rows a read or delete covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Hours,
    Days,
}

/// The rows of `system_id` whose bucket starts in [from, to), at one level, in key order.
pub fn load_rows(
    conn: &mut DbConnection,
    system_id: &str,
    from: i64,
    to: i64,
    level: Level,
) -> Result<RollupRows, DbError> {
    let mut rows = RollupRows::default();
    macro_rules! load {
        ($field:ident, $row:ident, $table:ident, $key:ident) => {
            let hourly = stringify!($field).ends_with("hours");
            if hourly == (level == Level::Hours) {
                use schema::$table::dsl as t;
                rows.$field = t::$table
                    .filter(t::system_id.eq(system_id))
                    .filter(t::bucket_start.ge(from).and(t::bucket_start.lt(to)))
                    .order((t::$key, t::bucket_start))
                    .select($row::as_select())
                    .load(conn)?;
            }
        };
    }
    per_table!(load);
    Ok(rows)
}

/// Some of a system's rollup rows: those of these inverters, packs and meters, and (when
/// `levels`) its arrays' and its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowsOf {
    pub inverters: Vec<String>,
    pub packs: Vec<String>,
    pub meters: Vec<String>,
    pub levels: bool,
}

impl RowsOf {
    /// The ids of the devices whose rows `field` holds; `None` for the arrays' and the system's.
    fn ids(&self, field: &str) -> Option<&[String]> {
        if field.starts_with("inverter") {
            Some(&self.inverters)
        } else if field.starts_with("pack") {
            Some(&self.packs)
        } else if field.starts_with("meter") {
            Some(&self.meters)
        } else {
            None
        }
    }

    fn wants(&self, field: &str) -> bool {
        match self.ids(field) {
            Some(ids) => !ids.is_empty(),
            None => self.levels,
        }
    }
}

/// [`load_rows`] of `only` the rows `RowsOf` names.
pub fn load_rows_of(
    conn: &mut DbConnection,
    system_id: &str,
    from: i64,
    to: i64,
    level: Level,
    only: &RowsOf,
) -> Result<RollupRows, DbError> {
    let mut rows = RollupRows::default();
    macro_rules! load {
        ($field:ident, $row:ident, $table:ident, $key:ident) => {
            let field = stringify!($field);
            if field.ends_with("hours") == (level == Level::Hours) && only.wants(field) {
                use schema::$table::dsl as t;
                let query = t::$table
                    .filter(t::system_id.eq(system_id))
                    .filter(t::bucket_start.ge(from).and(t::bucket_start.lt(to)))
                    .order((t::$key, t::bucket_start))
                    .select($row::as_select());
                rows.$field = match only.ids(field) {
                    Some(ids) => query.filter(t::$key.eq_any(ids)).load(conn)?,
                    None => query.load(conn)?,
                };
            }
        };
    }
    per_table!(load);
    Ok(rows)
}

/// [`delete_rows`] of `only` the rows `RowsOf` names.
pub fn delete_rows_of(
    conn: &mut DbConnection,
    system_id: &str,
    from: i64,
    to: i64,
    level: Level,
    only: &RowsOf,
) -> Result<(), DbError> {
    use diesel::connection::SimpleConnection;
    let system_id = checked_id(system_id)?;
    let lowest = lowest_overlapping_start(from);
    let mut statements = String::new();
    macro_rules! delete {
        ($field:ident, $row:ident, $table:ident, $key:ident) => {
            let field = stringify!($field);
            if field.ends_with("hours") == (level == Level::Hours) && only.wants(field) {
                let which = match only.ids(field) {
                    Some(ids) => {
                        let quoted: Vec<String> = ids
                            .iter()
                            .map(|id| checked_id(id).map(|id| format!("'{id}'")))
                            .collect::<Result<_, _>>()?;
                        format!(" AND {} IN ({})", stringify!($key), quoted.join(", "))
                    }
                    None => String::new(),
                };
                statements.push_str(&format!(
                    "DELETE FROM {} WHERE system_id = '{system_id}' AND bucket_start < {to} \
                     AND bucket_start > {lowest} AND bucket_end > {from} \
                     AND source = '{FROM_SAMPLES}'{which};",
                    stringify!($table)
                ));
            }
        };
    }
    per_table!(delete);
    if !statements.is_empty() {
        conn.batch_execute(&statements)?;
    }
    Ok(())
}

/// The tables of one level.
fn tables(level: Level) -> [&'static str; 5] {
    match level {
        Level::Hours => [
            "hourly_energy",
            "array_hourly_energy",
            "system_hourly_energy",
            "battery_bank_hourly",
            "meter_hourly_energy",
        ],
        Level::Days => [
            "daily_summary",
            "array_daily_summary",
            "system_daily_summary",
            "battery_bank_daily",
            "meter_daily",
        ],
    }
}

fn checked_id(id: &str) -> Result<&str, DbError> {
    // A valid id is only letters, digits, '_', '.' and '-': safe inside quotes.
    match crate::installation::id_problem(id) {
        None => Ok(id),
        Some(_) => Err(DbError::Invalid(format!("{id:?} is not an id"))),
    }
}

/// Removes the computed rows of `system_id` at one level whose bucket overlaps [from, to),
/// whatever their alignment: rows written under another timezone (an upgrade that did not know
/// the zone yet) have other edges, and must not survive beside the new ones. Rows carried over
/// from the old app stay; [`delete_superseded_legacy`] removes those a roll replaces.
pub fn delete_rows(
    conn: &mut DbConnection,
    system_id: &str,
    from: i64,
    to: i64,
    level: Level,
) -> Result<(), DbError> {
    use diesel::connection::SimpleConnection;
    let system_id = checked_id(system_id)?;
    let lowest = lowest_overlapping_start(from);
    let statements: String = tables(level)
        .iter()
        .map(|table| {
            format!(
                "DELETE FROM {table} WHERE system_id = '{system_id}' AND bucket_start < {to} \
                 AND bucket_start > {lowest} AND bucket_end > {from} AND source = '{FROM_SAMPLES}';"
            )
        })
        .collect();
    conn.batch_execute(&statements)?;
    Ok(())
}

/// Removes the old app's rows that overlap, for the same device, the rows a roll is about to
/// write: where there are samples now, the computed row replaces the carried-over one.
pub fn delete_superseded_legacy(conn: &mut DbConnection, rows: &RollupRows) -> Result<(), DbError> {
    use diesel::connection::SimpleConnection;
    use std::collections::BTreeMap;
    let mut statements = String::new();
    // One statement per table and bucket span (a roll's rows share a few), naming the devices
    // that have a row there: the old app's rows of other devices or other times stay.
    macro_rules! superseded {
        ($field:ident, $row:ident, $table:ident, $key:ident) => {
            let mut by_span: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
            for row in &rows.$field {
                by_span
                    .entry((row.bucket_start, row.bucket_end))
                    .or_default()
                    .push(format!("'{}'", checked_id(&row.$key)?));
            }
            for ((from, to), ids) in by_span {
                statements.push_str(&format!(
                    "DELETE FROM {} WHERE {} IN ({}) AND bucket_start < {to} \
                     AND bucket_start > {} AND bucket_end > {from} AND source = '{FROM_LEGACY}';",
                    stringify!($table),
                    stringify!($key),
                    ids.join(", "),
                    lowest_overlapping_start(from),
                ));
            }
        };
    }
    per_table!(superseded);
    if !statements.is_empty() {
        conn.batch_execute(&statements)?;
    }
    Ok(())
}

/// The lowest start a stored bucket that ends after `from` can have: no hour or day bucket is longer
/// than 25 hours (a day the clocks go back). With it a delete of the buckets overlapping a span
/// reads the index from just before the span, not from the device's first row.
fn lowest_overlapping_start(from: i64) -> i64 {
    const LONGEST_BUCKET_MS: i64 = 25 * 3_600_000;
    from.saturating_sub(LONGEST_BUCKET_MS + 1)
}

/// Replaces the rows of [from, to) at `level` (`only` those `RowsOf` names, or every one) with
/// `rows`: deletes them, removes the old app's rows the new ones supersede, inserts. The one order
/// every roll writes in.
pub fn replace_rows(
    conn: &mut DbConnection,
    system_id: &str,
    (from, to): (i64, i64),
    level: Level,
    only: Option<&RowsOf>,
    rows: &RollupRows,
) -> Result<(), DbError> {
    match only {
        Some(only) => delete_rows_of(conn, system_id, from, to, level, only)?,
        None => delete_rows(conn, system_id, from, to, level)?,
    }
    delete_superseded_legacy(conn, rows)?;
    insert_rows(conn, rows)
}

/// Inserts `rows` (after their buckets were deleted).
pub fn insert_rows(conn: &mut DbConnection, rows: &RollupRows) -> Result<(), DbError> {
    macro_rules! insert {
        ($field:ident, $row:ident, $table:ident, $key:ident) => {
            for chunk in rows.$field.chunks(INSERT_ROWS) {
                let insert = diesel::insert_into(schema::$table::table).values(chunk);
                match conn {
                    DbConnection::Postgres(pg) => insert.execute(pg)?,
                    DbConnection::Sqlite(sqlite) => insert.execute(sqlite)?,
                };
            }
        };
    }
    per_table!(insert);
    Ok(())
}

/// Samples of a system: inverters, packs, meters.
pub type SystemSamples = (Vec<EnergySample>, Vec<BatteryBankSample>, Vec<MeterSample>);

impl RollupRows {
    /// Drops the rows whose (table, device, bucket start) is in `keys`; returns how many per table.
    pub fn drop_keys(
        &mut self,
        keys: &std::collections::HashSet<(&'static str, String, i64)>,
    ) -> std::collections::BTreeMap<&'static str, u64> {
        let mut dropped = std::collections::BTreeMap::new();
        macro_rules! drop_keys {
            ($field:ident, $row:ident, $table:ident, $key:ident) => {
                let before = self.$field.len();
                self.$field.retain(|row| {
                    !keys.contains(&(stringify!($table), row.$key.clone(), row.bucket_start))
                });
                dropped.insert(stringify!($table), (before - self.$field.len()) as u64);
            };
        }
        per_table!(drop_keys);
        dropped
    }
}

mod history;
mod pending;
mod reads;

pub use history::*;
pub use pending::*;
pub use reads::*;
