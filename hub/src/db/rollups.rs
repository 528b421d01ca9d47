//! Rollup storage (DESIGN §3.3): the ten rollup tables as rows, the samples a roll reads, and the
//! pending ranges ingest leaves for the roller.

use diesel::prelude::*;

use super::samples::{BatteryBankSample, EnergySample, MeterSample};
use super::{DbConnection, DbError, schema};

/// `source` of a row computed from raw samples.
pub const FROM_SAMPLES: &str = "samples";
/// `source` of a row carried over from the old app's own hourly and daily tables.
pub const FROM_LEGACY: &str = "legacy";

/// Rows per INSERT statement: under both backends' bind-parameter limits for the widest table.
const INSERT_ROWS: usize = 400;

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
            fn kwh(&self) -> [Option<f64>; 6] {
                [
                    self.solar_kwh,
                    self.load_kwh,
                    self.battery_charge_kwh,
                    self.battery_discharge_kwh,
                    self.grid_import_kwh,
                    self.grid_export_kwh,
                ]
            }
            fn powers(&self) -> [Option<f64>; 8] {
                [
                    self.avg_pv_power_w,
                    self.peak_pv_power_w,
                    self.avg_load_power_w,
                    self.peak_load_power_w,
                    self.avg_grid_power_w,
                    self.peak_grid_import_w,
                    self.peak_grid_export_w,
                    self.avg_battery_power_w,
                ]
            }
            fn soc(&self) -> [Option<f64>; 3] {
                [self.soc_min_pct, self.soc_avg_pct, self.soc_max_pct]
            }
            fn counts(&self) -> (i64, f64) {
                (self.sample_count, self.coverage_pct)
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

/// The figures every energy table (inverter, array, system; hours and days) has, in one order.
pub trait EnergyColumns {
    /// Solar, load, battery charge, battery discharge, grid import, grid export (kWh).
    fn kwh(&self) -> [Option<f64>; 6];
    /// Average and peak PV, average and peak load, average grid, peak import, peak export,
    /// average battery (W).
    fn powers(&self) -> [Option<f64>; 8];
    /// SOC min, avg, max (%).
    fn soc(&self) -> [Option<f64>; 3];
    /// Sample count and coverage (%).
    fn counts(&self) -> (i64, f64);
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
    match crate::catalog::id_problem(id) {
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

/// The samples of a system's devices in [from, to), each kind in (device, ts) order.
pub fn load_samples(
    conn: &mut DbConnection,
    system_id: &str,
    from: i64,
    to: i64,
) -> Result<SystemSamples, DbError> {
    use schema::battery_bank_samples::dsl as b;
    use schema::energy_samples::dsl as e;
    use schema::meter_samples::dsl as m;
    let energy = e::energy_samples
        .filter(e::system_id.eq(system_id))
        .filter(e::ts.ge(from).and(e::ts.lt(to)))
        .order((e::inverter_id, e::ts))
        .select(EnergySample::as_select())
        .load(conn)?;
    let banks = b::battery_bank_samples
        .filter(b::system_id.eq(system_id))
        .filter(b::ts.ge(from).and(b::ts.lt(to)))
        .order((b::pack_id, b::ts))
        .select(BatteryBankSample::as_select())
        .load(conn)?;
    let meters = m::meter_samples
        .filter(m::system_id.eq(system_id))
        .filter(m::ts.ge(from).and(m::ts.lt(to)))
        .order((m::meter_id, m::ts))
        .select(MeterSample::as_select())
        .load(conn)?;
    Ok((energy, banks, meters))
}

/// The first and last sample time of a system, if it has samples.
pub fn sample_span(
    conn: &mut DbConnection,
    system_id: &str,
) -> Result<Option<(i64, i64)>, DbError> {
    use diesel::dsl::{max, min};
    use schema::battery_bank_samples::dsl as b;
    use schema::energy_samples::dsl as e;
    use schema::meter_samples::dsl as m;
    let spans: [(Option<i64>, Option<i64>); 3] = [
        e::energy_samples
            .filter(e::system_id.eq(system_id))
            .select((min(e::ts), max(e::ts)))
            .first(conn)?,
        b::battery_bank_samples
            .filter(b::system_id.eq(system_id))
            .select((min(b::ts), max(b::ts)))
            .first(conn)?,
        m::meter_samples
            .filter(m::system_id.eq(system_id))
            .select((min(m::ts), max(m::ts)))
            .first(conn)?,
    ];
    let first = spans.iter().filter_map(|s| s.0).min();
    let last = spans.iter().filter_map(|s| s.1).max();
    Ok(first.zip(last))
}

/// A device's samples changed in [from_ts, to_ts]: its rollups must be rolled again.
#[derive(Debug, Clone, PartialEq, Eq, Insertable, Queryable, Selectable)]
#[diesel(table_name = schema::rollup_pending, treat_none_as_default_value = false)]
pub struct Pending {
    pub device_id: String,
    pub system_id: String,
    pub from_ts: i64,
    pub to_ts: i64,
}

/// Records pending ranges (in the batch's transaction); one already recorded is kept.
pub fn add_pending(conn: &mut DbConnection, rows: &[Pending]) -> Result<(), DbError> {
    for chunk in rows.chunks(INSERT_ROWS) {
        match conn {
            DbConnection::Postgres(pg) => diesel::insert_into(schema::rollup_pending::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::insert_into(schema::rollup_pending::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(sqlite)?,
        };
    }
    Ok(())
}

/// Every pending range.
pub fn pending(conn: &mut DbConnection) -> Result<Vec<Pending>, DbError> {
    use schema::rollup_pending::dsl as p;
    Ok(p::rollup_pending
        .order((p::system_id, p::device_id, p::from_ts))
        .select(Pending::as_select())
        .load(conn)?)
}

/// How many ranges wait for the roller, and the start of the oldest (epoch ms).
pub fn pending_summary(conn: &mut DbConnection) -> Result<(i64, Option<i64>), DbError> {
    use diesel::dsl::{count_star, min};
    use schema::rollup_pending::dsl as p;
    Ok(p::rollup_pending
        .select((count_star(), min(p::from_ts)))
        .first(conn)?)
}

/// Removes rolled ranges.
pub fn remove_pending(conn: &mut DbConnection, rows: &[Pending]) -> Result<(), DbError> {
    use diesel::connection::SimpleConnection;
    // A few hundred keys per statement, not a statement per key: a pass over 500 devices is two
    // round trips.
    for chunk in rows.chunks(INSERT_ROWS) {
        let keys: Vec<String> = chunk
            .iter()
            .map(|row| {
                checked_id(&row.device_id)
                    .map(|id| format!("('{id}', {}, {})", row.from_ts, row.to_ts))
            })
            .collect::<Result<_, _>>()?;
        conn.batch_execute(&format!(
            "DELETE FROM rollup_pending WHERE (device_id, from_ts, to_ts) IN (VALUES {});",
            keys.join(", ")
        ))?;
    }
    Ok(())
}

/// One energy row of any level, as the history API returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyView {
    pub system_id: String,
    pub array_id: Option<String>,
    pub inverter_id: Option<String>,
    pub bucket_start: i64,
    pub bucket_end: i64,
    pub date: String,
    pub hour: Option<i32>,
    /// solar, load, battery charge, battery discharge, grid import, grid export (kWh).
    pub kwh: [Option<f64>; 6],
    /// avg pv, peak pv, avg load, peak load, avg grid, peak import, peak export, avg battery (W).
    pub powers: [Option<f64>; 8],
    /// SOC min, avg, max (%).
    pub soc: [Option<f64>; 3],
    pub battery_cycles: Option<f64>,
    pub sample_count: i64,
    pub coverage_pct: f64,
    /// Carried over from the old app ([`FROM_LEGACY`]) rather than computed from samples.
    pub legacy: bool,
}

/// The columns of an energy row a history answer carries, the same in every energy table: the
/// bucket, the figures, the counts, and whether the row is the old app's. Ids the request names
/// and `updated_at` are not read.
macro_rules! carried_columns {
    ($t:ident) => {
        (
            ($t::bucket_start, $t::bucket_end, $t::date),
            (
                $t::solar_kwh,
                $t::load_kwh,
                $t::battery_charge_kwh,
                $t::battery_discharge_kwh,
                $t::grid_import_kwh,
                $t::grid_export_kwh,
            ),
            (
                $t::avg_pv_power_w,
                $t::peak_pv_power_w,
                $t::avg_load_power_w,
                $t::peak_load_power_w,
                $t::avg_grid_power_w,
                $t::peak_grid_import_w,
                $t::peak_grid_export_w,
                $t::avg_battery_power_w,
            ),
            ($t::soc_min_pct, $t::soc_avg_pct, $t::soc_max_pct),
            (
                $t::sample_count,
                $t::coverage_pct,
                $t::source.eq(FROM_LEGACY),
            ),
        )
    };
}

type Opt = Option<f64>;
/// What [`carried_columns!`] loads.
type Carried = (
    (i64, i64, String),
    (Opt, Opt, Opt, Opt, Opt, Opt),
    (Opt, Opt, Opt, Opt, Opt, Opt, Opt, Opt),
    (Opt, Opt, Opt),
    (i64, f64, bool),
);

/// Whose row it is and which hour or day's cycles: the columns that differ between the tables.
#[derive(Default)]
struct RowIds {
    system_id: String,
    array_id: Option<String>,
    inverter_id: Option<String>,
    hour: Option<i32>,
    battery_cycles: Option<f64>,
}

impl EnergyView {
    fn new(carried: Carried, ids: RowIds) -> Self {
        let (
            (bucket_start, bucket_end, date),
            kwh,
            powers,
            soc,
            (sample_count, coverage_pct, legacy),
        ) = carried;
        EnergyView {
            system_id: ids.system_id,
            array_id: ids.array_id,
            inverter_id: ids.inverter_id,
            bucket_start,
            bucket_end,
            date,
            hour: ids.hour,
            kwh: [kwh.0, kwh.1, kwh.2, kwh.3, kwh.4, kwh.5],
            powers: [
                powers.0, powers.1, powers.2, powers.3, powers.4, powers.5, powers.6, powers.7,
            ],
            soc: [soc.0, soc.1, soc.2],
            battery_cycles: ids.battery_cycles,
            sample_count,
            coverage_pct,
            legacy,
        }
    }
}

/// Whose energy rows a history request wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnergyScope {
    System(String),
    Array(String),
    Inverter(String),
}

/// A system's hourly rows with `bucket_start` in [from, to), as stored: the history bench's
/// baseline for what the API adds.
pub fn system_hours(
    conn: &mut DbConnection,
    system_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<SystemHour>, DbError> {
    use schema::system_hourly_energy::dsl as t;
    let query = t::system_hourly_energy
        .filter(t::system_id.eq(system_id))
        .filter(t::bucket_start.ge(from).and(t::bucket_start.lt(to)))
        .order(t::bucket_start);
    Ok(match conn {
        DbConnection::Postgres(pg) => query.select(SystemHour::as_select()).load(pg)?,
        DbConnection::Sqlite(sqlite) => query.select(SystemHour::as_select()).load(sqlite)?,
    })
}

/// Energy rows of one scope whose bucket starts in [from, to), in time order: only the columns
/// the answer carries, read straight into [`EnergyView`]s.
pub fn energy_history(
    conn: &mut DbConnection,
    scope: &EnergyScope,
    level: Level,
    from: i64,
    to: i64,
) -> Result<Vec<EnergyView>, DbError> {
    // Loaded on the backend's own connection: through `MultiConnection` a year of hours took
    // about 40 % longer (rollup bench).
    macro_rules! load {
        // `$extra`: the columns that differ between the tables, handed to `$ids`.
        ($table:ident, $key:ident, $id:expr, [$($extra:ident),+] => $ids:expr) => {{
            use schema::$table::dsl as t;
            let query = t::$table
                .filter(t::$key.eq($id))
                .filter(t::bucket_start.ge(from).and(t::bucket_start.lt(to)))
                .order(t::bucket_start)
                .select((carried_columns!(t), ($(t::$extra),+)));
            let rows = match conn {
                DbConnection::Postgres(pg) => query.load(pg)?,
                DbConnection::Sqlite(sqlite) => query.load(sqlite)?,
            };
            rows.into_iter()
                .map(|(carried, extra)| EnergyView::new(carried, $ids(extra)))
                .collect()
        }};
    }
    Ok(match (scope, level) {
        (EnergyScope::System(id), Level::Hours) => {
            load!(system_hourly_energy, system_id, id, [hour_start] => |hour| RowIds {
                system_id: id.clone(),
                hour: Some(hour),
                ..RowIds::default()
            })
        }
        (EnergyScope::System(id), Level::Days) => {
            load!(system_daily_summary, system_id, id, [battery_cycles] => |battery_cycles| RowIds {
                system_id: id.clone(),
                battery_cycles,
                ..RowIds::default()
            })
        }
        (EnergyScope::Array(id), Level::Hours) => {
            load!(array_hourly_energy, array_id, id, [system_id, hour_start] => |(system_id, hour)| RowIds {
                system_id,
                array_id: Some(id.clone()),
                hour: Some(hour),
                ..RowIds::default()
            })
        }
        (EnergyScope::Array(id), Level::Days) => load!(
            array_daily_summary, array_id, id, [system_id, battery_cycles] => |(system_id, battery_cycles)| RowIds {
                system_id,
                array_id: Some(id.clone()),
                battery_cycles,
                ..RowIds::default()
            }
        ),
        (EnergyScope::Inverter(id), Level::Hours) => load!(
            hourly_energy, inverter_id, id, [system_id, array_id, hour_start] => |(system_id, array_id, hour)| RowIds {
                system_id,
                array_id,
                inverter_id: Some(id.clone()),
                hour: Some(hour),
                ..RowIds::default()
            }
        ),
        (EnergyScope::Inverter(id), Level::Days) => load!(
            daily_summary, inverter_id, id, [system_id, array_id, battery_cycles] => |(system_id, array_id, battery_cycles)| RowIds {
                system_id,
                array_id,
                inverter_id: Some(id.clone()),
                battery_cycles,
                ..RowIds::default()
            }
        ),
    })
}

/// Which packs' or meters' rows a history request wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceScope {
    System(String),
    BatteryArray(String),
    Device(String),
}

/// Pack rows (hours or days, by `level`) of a scope whose bucket starts in [from, to), by pack then time.
pub fn battery_history(
    conn: &mut DbConnection,
    scope: &DeviceScope,
    level: Level,
    from: i64,
    to: i64,
) -> Result<(Vec<PackHour>, Vec<PackDay>), DbError> {
    macro_rules! load {
        ($table:ident, $row:ident) => {{
            use schema::$table::dsl as t;
            let query = t::$table
                .filter(t::bucket_start.ge(from).and(t::bucket_start.lt(to)))
                .order((t::pack_id, t::bucket_start))
                .select($row::as_select());
            match scope {
                DeviceScope::System(id) => query.filter(t::system_id.eq(id)).load(conn)?,
                DeviceScope::BatteryArray(id) => {
                    query.filter(t::battery_array_id.eq(id)).load(conn)?
                }
                DeviceScope::Device(id) => query.filter(t::pack_id.eq(id)).load(conn)?,
            }
        }};
    }
    Ok(match level {
        Level::Hours => (load!(battery_bank_hourly, PackHour), Vec::new()),
        Level::Days => (Vec::new(), load!(battery_bank_daily, PackDay)),
    })
}

/// Meter rows (hours or days, by `level`) of a scope whose bucket starts in [from, to), by meter then time.
pub fn meter_history(
    conn: &mut DbConnection,
    scope: &DeviceScope,
    level: Level,
    from: i64,
    to: i64,
) -> Result<(Vec<MeterHour>, Vec<MeterDay>), DbError> {
    macro_rules! load {
        ($table:ident, $row:ident) => {{
            use schema::$table::dsl as t;
            let query = t::$table
                .filter(t::bucket_start.ge(from).and(t::bucket_start.lt(to)))
                .order((t::meter_id, t::bucket_start))
                .select($row::as_select());
            match scope {
                DeviceScope::System(id) | DeviceScope::BatteryArray(id) => {
                    query.filter(t::system_id.eq(id)).load(conn)?
                }
                DeviceScope::Device(id) => query.filter(t::meter_id.eq(id)).load(conn)?,
            }
        }};
    }
    Ok(match level {
        Level::Hours => (load!(meter_hourly_energy, MeterHour), Vec::new()),
        Level::Days => (Vec::new(), load!(meter_daily, MeterDay)),
    })
}

/// Device ids per sample table: inverters, packs, meters.
pub type DeviceIds<'a> = (&'a [String], &'a [String], &'a [String]);

/// The samples just outside [from, to): for each device in `before`, its last sample in
/// [from - reach, from); for each in `after`, its first in [to, to + reach). With the samples
/// inside the window they make every interval that overlaps it.
pub fn edge_samples(
    conn: &mut DbConnection,
    before: DeviceIds<'_>,
    after: DeviceIds<'_>,
    from: i64,
    to: i64,
    reach: i64,
) -> Result<SystemSamples, DbError> {
    macro_rules! edges {
        ($table:ident, $row:ident, $key:ident, $before:expr, $after:expr) => {{
            use schema::$table::dsl as t;
            let mut rows = Vec::new();
            for id in $before {
                rows.extend(
                    t::$table
                        .filter(t::$key.eq(id))
                        .filter(t::ts.lt(from).and(t::ts.ge(from.saturating_sub(reach))))
                        .order(t::ts.desc())
                        .select($row::as_select())
                        .first(conn)
                        .optional()?,
                );
            }
            for id in $after {
                rows.extend(
                    t::$table
                        .filter(t::$key.eq(id))
                        .filter(t::ts.ge(to).and(t::ts.lt(to.saturating_add(reach))))
                        .order(t::ts)
                        .select($row::as_select())
                        .first(conn)
                        .optional()?,
                );
            }
            rows
        }};
    }
    Ok((
        edges!(energy_samples, EnergySample, inverter_id, before.0, after.0),
        edges!(
            battery_bank_samples,
            BatteryBankSample,
            pack_id,
            before.1,
            after.1
        ),
        edges!(meter_samples, MeterSample, meter_id, before.2, after.2),
    ))
}

/// Which sample table a device's samples are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceKind {
    Inverter,
    Pack,
    Meter,
}

/// The sample times of `device_id` nearest to [from, to] from outside: the last before `from` and
/// the first after `to`, each within `reach`.
pub fn neighbour_times(
    conn: &mut DbConnection,
    kind: DeviceKind,
    device_id: &str,
    from: i64,
    to: i64,
    reach: i64,
) -> Result<(Option<i64>, Option<i64>), DbError> {
    use diesel::dsl::{max, min};
    macro_rules! nearest {
        ($table:ident, $key:ident) => {{
            use schema::$table::dsl as t;
            let before: Option<i64> = t::$table
                .filter(t::$key.eq(device_id))
                .filter(t::ts.lt(from).and(t::ts.ge(from.saturating_sub(reach))))
                .select(max(t::ts))
                .first(conn)?;
            let after: Option<i64> = t::$table
                .filter(t::$key.eq(device_id))
                .filter(t::ts.gt(to).and(t::ts.le(to.saturating_add(reach))))
                .select(min(t::ts))
                .first(conn)?;
            (before, after)
        }};
    }
    Ok(match kind {
        DeviceKind::Inverter => nearest!(energy_samples, inverter_id),
        DeviceKind::Pack => nearest!(battery_bank_samples, pack_id),
        DeviceKind::Meter => nearest!(meter_samples, meter_id),
    })
}

/// One device's samples in [from, to), in time order, with the last one before `from` and the
/// first at or after `to` when they are within `reach` (the samples every interval that reaches
/// [from, to) is made of), each kind in its own vector.
pub fn device_samples(
    conn: &mut DbConnection,
    kind: DeviceKind,
    device_id: &str,
    from: i64,
    to: i64,
    reach: i64,
) -> Result<SystemSamples, DbError> {
    macro_rules! around {
        ($table:ident, $row:ident, $key:ident) => {{
            use schema::$table::dsl as t;
            let mut rows: Vec<$row> = t::$table
                .filter(t::$key.eq(device_id))
                .filter(t::ts.lt(from).and(t::ts.ge(from.saturating_sub(reach))))
                .order(t::ts.desc())
                .select($row::as_select())
                .first(conn)
                .optional()?
                .into_iter()
                .collect();
            rows.extend(
                t::$table
                    .filter(t::$key.eq(device_id))
                    .filter(t::ts.ge(from).and(t::ts.lt(to)))
                    .order(t::ts)
                    .select($row::as_select())
                    .load(conn)?,
            );
            rows.extend(
                t::$table
                    .filter(t::$key.eq(device_id))
                    .filter(t::ts.ge(to).and(t::ts.lt(to.saturating_add(reach))))
                    .order(t::ts)
                    .select($row::as_select())
                    .first(conn)
                    .optional()?,
            );
            rows
        }};
    }
    let mut samples = SystemSamples::default();
    match kind {
        DeviceKind::Inverter => samples.0 = around!(energy_samples, EnergySample, inverter_id),
        DeviceKind::Pack => samples.1 = around!(battery_bank_samples, BatteryBankSample, pack_id),
        DeviceKind::Meter => samples.2 = around!(meter_samples, MeterSample, meter_id),
    }
    Ok(samples)
}

/// The oldest and newest sample of `device_id` in [from, to].
pub fn device_span(
    conn: &mut DbConnection,
    kind: DeviceKind,
    device_id: &str,
    from: i64,
    to: i64,
) -> Result<Option<(i64, i64)>, DbError> {
    use diesel::dsl::{max, min};
    macro_rules! span {
        ($table:ident, $key:ident) => {{
            use schema::$table::dsl as t;
            t::$table
                .filter(t::$key.eq(device_id))
                .filter(t::ts.ge(from).and(t::ts.le(to)))
                .select((min(t::ts), max(t::ts)))
                .first::<(Option<i64>, Option<i64>)>(conn)?
        }};
    }
    let (oldest, newest) = match kind {
        DeviceKind::Inverter => span!(energy_samples, inverter_id),
        DeviceKind::Pack => span!(battery_bank_samples, pack_id),
        DeviceKind::Meter => span!(meter_samples, meter_id),
    };
    Ok(oldest.zip(newest))
}

/// The time of `device_id`'s newest sample.
pub fn newest_sample(
    conn: &mut DbConnection,
    kind: DeviceKind,
    device_id: &str,
) -> Result<Option<i64>, DbError> {
    use diesel::dsl::max;
    macro_rules! newest {
        ($table:ident, $key:ident) => {{
            use schema::$table::dsl as t;
            t::$table
                .filter(t::$key.eq(device_id))
                .select(max(t::ts))
                .first(conn)?
        }};
    }
    Ok(match kind {
        DeviceKind::Inverter => newest!(energy_samples, inverter_id),
        DeviceKind::Pack => newest!(battery_bank_samples, pack_id),
        DeviceKind::Meter => newest!(meter_samples, meter_id),
    })
}

/// Makes rolls of one system take turns across hubs sharing a Postgres database, until the
/// transaction ends (two hubs replacing the same rows at once would collide on their keys). SQLite
/// serializes writers by itself. Call inside the roll's transaction.
pub fn lock_system_for_roll(conn: &mut DbConnection, system_id: &str) -> Result<(), DbError> {
    if let DbConnection::Postgres(pg) = conn {
        // FNV-1a of the id, in a key space of its own next to the migration lock.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in format!("rollup:{system_id}").bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({})", hash as i64)).execute(pg)?;
    }
    Ok(())
}

/// The quarter hours (`ts / 900 000`) in which `device_id` has samples, in order: enough to tell
/// whether any local hour (local offsets are whole quarter hours) has samples.
pub fn sample_quarters(
    conn: &mut DbConnection,
    kind: DeviceKind,
    device_id: &str,
) -> Result<Vec<i64>, DbError> {
    const QUARTER_MS: i64 = 900_000;
    macro_rules! quarters {
        ($table:ident, $key:ident) => {{
            use schema::$table::dsl as t;
            t::$table
                .filter(t::$key.eq(device_id))
                .select(t::ts / QUARTER_MS)
                .distinct()
                .load::<i64>(conn)?
        }};
    }
    let mut quarters = match kind {
        DeviceKind::Inverter => quarters!(energy_samples, inverter_id),
        DeviceKind::Pack => quarters!(battery_bank_samples, pack_id),
        DeviceKind::Meter => quarters!(meter_samples, meter_id),
    };
    quarters.sort_unstable();
    Ok(quarters)
}

/// The keys of a system's stored rollup rows: (table, device, bucket start).
pub fn stored_keys(
    conn: &mut DbConnection,
    system_id: &str,
) -> Result<std::collections::HashSet<(&'static str, String, i64)>, DbError> {
    let mut keys = std::collections::HashSet::new();
    macro_rules! keys {
        ($field:ident, $row:ident, $table:ident, $key:ident) => {
            use schema::$table::dsl as $table;
            let rows: Vec<(String, i64)> = $table::$table
                .filter($table::system_id.eq(system_id))
                .select(($table::$key, $table::bucket_start))
                .load(conn)?;
            keys.extend(
                rows.into_iter()
                    .map(|(id, start)| (stringify!($table), id, start)),
            );
        };
    }
    per_table!(keys);
    Ok(keys)
}

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

/// Lifetime energy of a system before one local day (the sums of its daily rows), kWh.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EnergyBefore {
    pub pv_kwh: Option<f64>,
    pub load_kwh: Option<f64>,
    pub grid_import_kwh: Option<f64>,
    pub grid_export_kwh: Option<f64>,
    pub battery_charge_kwh: Option<f64>,
    pub battery_discharge_kwh: Option<f64>,
}

/// A system's energy before local day `date` (`YYYY-MM-DD`): the sums of its daily rows, kWh.
pub fn system_energy_before(
    conn: &mut DbConnection,
    system_id: &str,
    date: &str,
) -> Result<EnergyBefore, DbError> {
    use diesel::dsl::sum;
    use schema::system_daily_summary::dsl as d;
    type Sums = (
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
    );
    let (pv, load, import, export, charge, discharge): Sums = d::system_daily_summary
        .filter(d::system_id.eq(system_id))
        .filter(d::date.lt(date))
        .select((
            sum(d::solar_kwh),
            sum(d::load_kwh),
            sum(d::grid_import_kwh),
            sum(d::grid_export_kwh),
            sum(d::battery_charge_kwh),
            sum(d::battery_discharge_kwh),
        ))
        .first(conn)?;
    Ok(EnergyBefore {
        pv_kwh: pv,
        load_kwh: load,
        grid_import_kwh: import,
        grid_export_kwh: export,
        battery_charge_kwh: charge,
        battery_discharge_kwh: discharge,
    })
}
