//! What the history API and the MQTT bridge read of the rollups: energy, battery and meter rows
//! of a scope and range, and a system's lifetime energy before a day.

use std::borrow::Cow;

use diesel::connection::DefaultLoadingMode;

use super::*;

/// One energy row of any level, as the history API returns it. The id the request named is
/// borrowed from it, not copied into every row.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyView<'a> {
    pub system_id: Cow<'a, str>,
    pub array_id: Option<Cow<'a, str>>,
    pub inverter_id: Option<Cow<'a, str>>,
    pub bucket_start: i64,
    pub bucket_end: i64,
    pub date: String,
    pub hour: Option<i32>,
    pub figures: Figures,
    pub battery_cycles: Option<f64>,
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
struct RowIds<'a> {
    system_id: Cow<'a, str>,
    array_id: Option<Cow<'a, str>>,
    inverter_id: Option<Cow<'a, str>>,
    hour: Option<i32>,
    battery_cycles: Option<f64>,
}

impl<'a> EnergyView<'a> {
    fn new(carried: Carried, ids: RowIds<'a>) -> Self {
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
            figures: Figures {
                kwh: [kwh.0, kwh.1, kwh.2, kwh.3, kwh.4, kwh.5],
                avg_pv: powers.0,
                peak_pv: powers.1,
                avg_load: powers.2,
                peak_load: powers.3,
                avg_grid: powers.4,
                peak_import: powers.5,
                peak_export: powers.6,
                avg_battery: powers.7,
                soc_min: soc.0,
                soc_avg: soc.1,
                soc_max: soc.2,
                sample_count,
                coverage_pct,
            },
            battery_cycles: ids.battery_cycles,
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
/// the answer carries, each row handed to `each` as it is read (a year of hours is 8,784 rows:
/// the answer is made from the rows, with no list of rows or views in between).
pub fn energy_history<'s>(
    conn: &mut DbConnection,
    scope: &'s EnergyScope,
    level: Level,
    from: i64,
    to: i64,
    mut each: impl FnMut(EnergyView<'s>),
) -> Result<(), DbError> {
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
            let mut take = |row: (Carried, _)| {
                let (carried, extra) = row;
                each(EnergyView::new(carried, $ids(extra)));
            };
            match conn {
                DbConnection::Postgres(pg) => {
                    for row in query.load_iter::<_, DefaultLoadingMode>(pg)? {
                        take(row?);
                    }
                }
                DbConnection::Sqlite(sqlite) => {
                    for row in query.load_iter::<_, DefaultLoadingMode>(sqlite)? {
                        take(row?);
                    }
                }
            }
        }};
    }
    match (scope, level) {
        (EnergyScope::System(id), Level::Hours) => {
            load!(system_hourly_energy, system_id, id, [hour_start] => |hour| RowIds {
                system_id: Cow::Borrowed(id),
                hour: Some(hour),
                ..RowIds::default()
            })
        }
        (EnergyScope::System(id), Level::Days) => {
            load!(system_daily_summary, system_id, id, [battery_cycles] => |battery_cycles| RowIds {
                system_id: Cow::Borrowed(id),
                battery_cycles,
                ..RowIds::default()
            })
        }
        (EnergyScope::Array(id), Level::Hours) => {
            load!(array_hourly_energy, array_id, id, [system_id, hour_start] => |(system_id, hour)| RowIds {
                system_id: Cow::Owned(system_id),
                array_id: Some(Cow::Borrowed(id)),
                hour: Some(hour),
                ..RowIds::default()
            })
        }
        (EnergyScope::Array(id), Level::Days) => load!(
            array_daily_summary, array_id, id, [system_id, battery_cycles] => |(system_id, battery_cycles)| RowIds {
                system_id: Cow::Owned(system_id),
                array_id: Some(Cow::Borrowed(id)),
                battery_cycles,
                ..RowIds::default()
            }
        ),
        (EnergyScope::Inverter(id), Level::Hours) => load!(
            hourly_energy, inverter_id, id, [system_id, array_id, hour_start] => |(system_id, array_id, hour): (String, Option<String>, i32)| RowIds {
                system_id: Cow::Owned(system_id),
                array_id: array_id.map(Cow::Owned),
                inverter_id: Some(Cow::Borrowed(id)),
                hour: Some(hour),
                ..RowIds::default()
            }
        ),
        (EnergyScope::Inverter(id), Level::Days) => load!(
            daily_summary, inverter_id, id, [system_id, array_id, battery_cycles] => |(system_id, array_id, battery_cycles): (String, Option<String>, Option<f64>)| RowIds {
                system_id: Cow::Owned(system_id),
                array_id: array_id.map(Cow::Owned),
                inverter_id: Some(Cow::Borrowed(id)),
                battery_cycles,
                ..RowIds::default()
            }
        ),
    }
    Ok(())
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
