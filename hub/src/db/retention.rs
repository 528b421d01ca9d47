//! Retention in the database: the aggregates the roller keeps (5-minute ones of inverters, meters
//! and packs; hourly ones of battery units and cells), what imports brought (`imported_spans`),
//! how far each sample table has been deleted, apart for collected and imported rows
//! (`retention_marks`, `retention_imported_marks`) and what that freezes, recomputes' claims
//! (`retention_holds`), deleting in small batches, counting what a pass would delete, the oldest
//! row kept, and giving SQLite its space back.

use std::collections::{BTreeMap, BTreeSet};

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::{DbConnection, DbError};
use crate::time_ranges::TimeRanges;

/// The width of an aggregate bucket.
pub const BUCKET_MS: i64 = 5 * 60_000;

/// The width of an hourly aggregate bucket (a local hour of the system's zone; every zone's hours
/// are this long but for DST changes of half an hour, which get a statement per hour).
const HOUR_MS: i64 = 3_600_000;

/// A table retention deletes from: the raw sample tables and the aggregates made from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SampleTable {
    Energy,
    Meter,
    Bank,
    Unit,
    Cell,
    Array,
    Energy5m,
    Meter5m,
    Bank5m,
    Unit1h,
    Cell1h,
}

/// Where a raw sample came from: collected by solarhub, or brought by an upgrade or an
/// `import-legacy` (a row inside an import's span).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    Collected,
    Imported,
}

impl Origin {
    /// The table that records how far rows of this origin were deleted.
    fn marks(self) -> &'static str {
        match self {
            Origin::Collected => "retention_marks",
            Origin::Imported => "retention_imported_marks",
        }
    }
}

impl SampleTable {
    pub const ALL: [SampleTable; 11] = [
        SampleTable::Energy,
        SampleTable::Meter,
        SampleTable::Bank,
        SampleTable::Unit,
        SampleTable::Cell,
        SampleTable::Array,
        SampleTable::Energy5m,
        SampleTable::Meter5m,
        SampleTable::Bank5m,
        SampleTable::Unit1h,
        SampleTable::Cell1h,
    ];

    /// The aggregate tables: the 5-minute ones, then the hourly ones.
    pub const AGGREGATES: [SampleTable; 5] = [
        SampleTable::Energy5m,
        SampleTable::Meter5m,
        SampleTable::Bank5m,
        SampleTable::Unit1h,
        SampleTable::Cell1h,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SampleTable::Energy => "energy_samples",
            SampleTable::Meter => "meter_samples",
            SampleTable::Bank => "battery_bank_samples",
            SampleTable::Unit => "battery_unit_samples",
            SampleTable::Cell => "battery_cell_samples",
            SampleTable::Array => "array_samples",
            SampleTable::Energy5m => "energy_samples_5m",
            SampleTable::Meter5m => "meter_samples_5m",
            SampleTable::Bank5m => "battery_bank_samples_5m",
            SampleTable::Unit1h => "battery_unit_samples_1h",
            SampleTable::Cell1h => "battery_cell_samples_1h",
        }
    }

    pub fn parse(name: &str) -> Option<SampleTable> {
        SampleTable::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether the rollups are computed from this table: deleting from it freezes the hours its
    /// rows (and the counter reach after them) belonged to.
    pub fn feeds_rollups(self) -> bool {
        matches!(
            self,
            SampleTable::Energy | SampleTable::Meter | SampleTable::Bank
        )
    }

    /// The raw table an aggregate table is made from; `None` for a raw table.
    pub fn aggregated_from(self) -> Option<SampleTable> {
        AGGREGATE_TABLES
            .iter()
            .map(|aggregate| (aggregate.table, aggregate.raw))
            .chain(
                HOURLY_TABLES
                    .iter()
                    .map(|hourly| (hourly.table, hourly.raw)),
            )
            .find(|(table, _)| *table == self)
            .map(|(_, raw)| raw)
    }

    /// Whether rows of this table are samples as they came (from a collector or an import), not
    /// aggregates the hub made.
    pub fn is_raw(self) -> bool {
        self.aggregated_from().is_none()
    }

    /// The column deletion goes by (indexed together with `ts`), and the catalog table and
    /// column that list its values.
    fn group(self) -> (&'static str, &'static str) {
        match self {
            SampleTable::Unit | SampleTable::Cell | SampleTable::Unit1h | SampleTable::Cell1h => {
                ("pack_id", "battery_packs")
            }
            _ => ("system_id", "systems"),
        }
    }
}

/// Runs one statement on whichever backend `conn` is, with the same binds (`$1`, `$2`, … in order
/// of first use: Postgres' numbered parameters, SQLite's named ones).
macro_rules! execute {
    ($conn:expr, $sql:expr $(, $kind:ty => $value:expr)* $(,)?) => {{
        let query = diesel::sql_query($sql) $(.bind::<$kind, _>($value))*;
        match $conn {
            DbConnection::Postgres(pg) => query.execute(pg),
            DbConnection::Sqlite(sqlite) => query.execute(sqlite),
        }
    }};
}

macro_rules! load {
    ($conn:expr, $row:ty, $sql:expr $(, $kind:ty => $value:expr)* $(,)?) => {{
        let query = diesel::sql_query($sql) $(.bind::<$kind, _>($value))*;
        match $conn {
            DbConnection::Postgres(pg) => query.load::<$row>(pg),
            DbConnection::Sqlite(sqlite) => query.load::<$row>(sqlite),
        }
    }};
}

#[derive(diesel::QueryableByName)]
struct MaybeTs {
    #[diesel(sql_type = Nullable<BigInt>)]
    ts: Option<i64>,
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

impl MaybeTs {
    /// The one value an aggregate query (`SELECT MIN(…) AS ts …`) answers.
    fn single(rows: Vec<MaybeTs>) -> Option<i64> {
        rows.into_iter().next().and_then(|row| row.ts)
    }
}

/// How a column of a 5-minute aggregate is made from the bucket's samples.
const AVERAGED: &str = "AVG";
const HIGHEST: &str = "MAX";

/// A 5-minute aggregate table: the raw table it is made from, the kind of device and its id
/// column, and each value column with how it is made (instantaneous values averaged, lifetime
/// counters their highest value). Columns are named after the contract's fields, as in the raw
/// tables.
struct AggregateTable {
    table: SampleTable,
    raw: SampleTable,
    kind: AggregatedDevice,
    device: &'static str,
    columns: &'static [(&'static str, &'static str)],
}

const AGGREGATE_TABLES: [AggregateTable; 3] = [
    AggregateTable {
        table: SampleTable::Energy5m,
        raw: SampleTable::Energy,
        kind: AggregatedDevice::Inverter,
        device: "inverter_id",
        columns: &[
            ("pv_power_w", AVERAGED),
            ("load_power_w", AVERAGED),
            ("grid_power_w", AVERAGED),
            ("battery_power_w", AVERAGED),
            ("battery_soc_pct", AVERAGED),
            ("battery_voltage_v", AVERAGED),
            ("battery_current_a", AVERAGED),
            ("inverter_temp_c", AVERAGED),
            ("pv_energy_total_wh", HIGHEST),
            ("load_energy_total_wh", HIGHEST),
            ("grid_import_total_wh", HIGHEST),
            ("grid_export_total_wh", HIGHEST),
            ("battery_charge_total_wh", HIGHEST),
            ("battery_discharge_total_wh", HIGHEST),
        ],
    },
    AggregateTable {
        table: SampleTable::Meter5m,
        raw: SampleTable::Meter,
        kind: AggregatedDevice::Meter,
        device: "meter_id",
        columns: &[
            ("power_w", AVERAGED),
            ("voltage_v", AVERAGED),
            ("current_a", AVERAGED),
            ("frequency_hz", AVERAGED),
            ("power_factor", AVERAGED),
            ("import_total_wh", HIGHEST),
            ("export_total_wh", HIGHEST),
        ],
    },
    AggregateTable {
        table: SampleTable::Bank5m,
        raw: SampleTable::Bank,
        kind: AggregatedDevice::Pack,
        device: "pack_id",
        columns: &[
            ("voltage_v", AVERAGED),
            ("current_a", AVERAGED),
            ("power_w", AVERAGED),
            ("temperature_c", AVERAGED),
            ("soc_pct", AVERAGED),
            ("soh_pct", AVERAGED),
        ],
    },
];

/// The kinds of device with 5-minute aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregatedDevice {
    Inverter,
    Meter,
    Pack,
}

/// One stored 5-minute aggregate of a device.
#[derive(Debug, Clone, PartialEq)]
pub struct FiveMinutePoint {
    /// The bucket's start (UTC epoch ms).
    pub ts: i64,
    pub samples: i32,
    /// The values the bucket has, by column (= canonical field) name.
    pub fields: std::collections::BTreeMap<&'static str, f64>,
}

/// The widest aggregate table's value columns.
const MAX_AGGREGATED_COLUMNS: usize = 14;
const _: () = {
    let mut i = 0;
    while i < AGGREGATE_TABLES.len() {
        assert!(AGGREGATE_TABLES[i].columns.len() <= MAX_AGGREGATED_COLUMNS);
        i += 1;
    }
};

#[derive(diesel::QueryableByName)]
struct AggregateRow {
    #[diesel(sql_type = BigInt)]
    ts: i64,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    samples: i32,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v0: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v1: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v2: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v3: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v4: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v5: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v6: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v7: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v8: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v9: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v10: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v11: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v12: Option<f64>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    v13: Option<f64>,
}

impl AggregateRow {
    fn values(&self) -> [Option<f64>; MAX_AGGREGATED_COLUMNS] {
        [
            self.v0, self.v1, self.v2, self.v3, self.v4, self.v5, self.v6, self.v7, self.v8,
            self.v9, self.v10, self.v11, self.v12, self.v13,
        ]
    }
}

/// The 5-minute aggregates of one device whose bucket starts in [from, to), in time order.
pub fn five_minute_points(
    conn: &mut DbConnection,
    kind: AggregatedDevice,
    device_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<FiveMinutePoint>, DbError> {
    let Some(table) = AGGREGATE_TABLES.iter().find(|table| table.kind == kind) else {
        unreachable!("every kind of aggregated device has its table")
    };
    // Every table read into one row shape: its columns, then typed NULLs.
    let columns: Vec<String> = (0..MAX_AGGREGATED_COLUMNS)
        .map(|i| match table.columns.get(i) {
            Some((name, _)) => format!("{name} AS v{i}"),
            None => format!("CAST(NULL AS DOUBLE PRECISION) AS v{i}"),
        })
        .collect();
    let rows = load!(
        conn,
        AggregateRow,
        format!(
            "SELECT ts, samples, {} FROM {} WHERE {} = $1 AND ts >= $2 AND ts < $3 ORDER BY ts",
            columns.join(", "),
            table.table.name(),
            table.device
        ),
        Text => device_id,
        BigInt => from,
        BigInt => to,
    )?;
    Ok(rows
        .into_iter()
        .map(|row| FiveMinutePoint {
            ts: row.ts,
            samples: row.samples,
            fields: table
                .columns
                .iter()
                .zip(row.values())
                .filter_map(|((name, _), value)| value.map(|value| (*name, value)))
                .collect(),
        })
        .collect())
}

/// Rebuilds the 5-minute aggregates of every device of `system_id` in [from, to) (both on bucket
/// edges) from the raw samples there. Call inside the roll's transaction.
pub fn aggregate(
    conn: &mut DbConnection,
    system_id: &str,
    from: i64,
    to: i64,
) -> Result<(), DbError> {
    for AggregateTable {
        table,
        raw,
        device,
        columns,
        ..
    } in AGGREGATE_TABLES
    {
        let (aggregates, raw) = (table.name(), raw.name());
        execute!(
            conn,
            format!("DELETE FROM {aggregates} WHERE system_id = $1 AND ts >= $2 AND ts < $3"),
            Text => system_id,
            BigInt => from,
            BigInt => to,
        )?;
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let values: Vec<String> = columns
            .iter()
            .map(|(name, how)| format!("{how}({name})"))
            .collect();
        execute!(
            conn,
            format!(
                "INSERT INTO {aggregates} ({device}, ts, system_id, samples, {names}) \
                 SELECT {device}, (ts / {BUCKET_MS}) * {BUCKET_MS}, system_id, COUNT(*), {values} \
                 FROM {raw} WHERE system_id = $1 AND ts >= $2 AND ts < $3 \
                 GROUP BY {device}, (ts / {BUCKET_MS}) * {BUCKET_MS}, system_id",
                names = names.join(", "),
                values = values.join(", "),
            ),
            Text => system_id,
            BigInt => from,
            BigInt => to,
        )?;
    }
    Ok(())
}

/// An hourly aggregate table of battery units or cells: the raw table, the device column, the
/// columns copied from the device's rows (its parents), and each value column with how it is made
/// from which raw column. Units and cells are many rows per pack per poll; their history of years
/// is read at this resolution.
struct HourlyTable {
    table: SampleTable,
    raw: SampleTable,
    device: &'static str,
    parents: &'static [&'static str],
    columns: &'static [(&'static str, &'static str, &'static str)],
}

const LOWEST: &str = "MIN";

const HOURLY_TABLES: [HourlyTable; 2] = [
    HourlyTable {
        table: SampleTable::Unit1h,
        raw: SampleTable::Unit,
        device: "battery_id",
        parents: &["pack_id", "system_id"],
        columns: &[
            ("voltage_min_v", LOWEST, "voltage_v"),
            ("voltage_max_v", HIGHEST, "voltage_v"),
            ("voltage_avg_v", AVERAGED, "voltage_v"),
            ("current_min_a", LOWEST, "current_a"),
            ("current_max_a", HIGHEST, "current_a"),
            ("current_avg_a", AVERAGED, "current_a"),
            ("temperature_min_c", LOWEST, "temperature_c"),
            ("temperature_max_c", HIGHEST, "temperature_c"),
            ("soc_min_pct", LOWEST, "soc_pct"),
            ("soc_max_pct", HIGHEST, "soc_pct"),
            ("soc_avg_pct", AVERAGED, "soc_pct"),
            ("soh_avg_pct", AVERAGED, "soh_pct"),
        ],
    },
    HourlyTable {
        table: SampleTable::Cell1h,
        raw: SampleTable::Cell,
        device: "cell_id",
        parents: &["battery_id", "pack_id", "system_id"],
        columns: &[
            ("voltage_min_v", LOWEST, "voltage_v"),
            ("voltage_max_v", HIGHEST, "voltage_v"),
            ("voltage_avg_v", AVERAGED, "voltage_v"),
            ("temperature_min_c", LOWEST, "temperature_c"),
            ("temperature_max_c", HIGHEST, "temperature_c"),
            ("soc_avg_pct", AVERAGED, "soc_pct"),
        ],
    },
];

const _: () = {
    let mut i = 0;
    while i < HOURLY_TABLES.len() {
        assert!(HOURLY_TABLES[i].columns.len() <= MAX_AGGREGATED_COLUMNS);
        i += 1;
    }
};

/// Rebuilds the hourly aggregates of every battery unit and cell of `system_id` for `hours` (the
/// local hours a roll covers, as [start, end) in UTC epoch ms, in order) from the raw samples
/// there, but for hours whose raw rows retention may have deleted (their aggregates stay as they
/// were). Call inside the roll's transaction.
pub fn aggregate_hours(
    conn: &mut DbConnection,
    system_id: &str,
    hours: &[(i64, i64)],
) -> Result<(), DbError> {
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        return Ok(());
    };
    let packs = load!(
        conn,
        Id,
        "SELECT pack_id AS id FROM battery_packs WHERE system_id = $1 ORDER BY pack_id",
        Text => system_id,
    )?;
    for pack in packs {
        let pack = pack.id;
        for hourly in &HOURLY_TABLES {
            let gone = gone(conn, hourly.raw, &pack)?;
            if gone.overlaps(first.0, last.1) {
                // Runs of the hours whose samples are all there.
                let mut run: Vec<(i64, i64)> = Vec::new();
                for &hour in hours {
                    if gone.overlaps(hour.0, hour.1) {
                        aggregate_run(conn, hourly, &pack, &run)?;
                        run.clear();
                    } else {
                        run.push(hour);
                    }
                }
                aggregate_run(conn, hourly, &pack, &run)?;
            } else {
                aggregate_run(conn, hourly, &pack, hours)?;
            }
        }
    }
    Ok(())
}

/// Rebuilds one pack's rows of `hourly` for a run of hours: one statement for the run when every
/// hour is an hour long and follows the last, else one per hour.
fn aggregate_run(
    conn: &mut DbConnection,
    hourly: &HourlyTable,
    pack_id: &str,
    hours: &[(i64, i64)],
) -> Result<(), DbError> {
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        return Ok(());
    };
    let regular = hours
        .iter()
        .zip(hours.iter().skip(1))
        .all(|(a, b)| a.1 == b.0 && a.1 - a.0 == HOUR_MS)
        && last.1 - last.0 == HOUR_MS;
    let HourlyTable {
        table,
        raw,
        device,
        parents,
        columns,
    } = hourly;
    let (table, raw) = (table.name(), raw.name());
    execute!(
        conn,
        format!("DELETE FROM {table} WHERE pack_id = $1 AND ts >= $2 AND ts < $3"),
        Text => pack_id,
        BigInt => first.0,
        BigInt => last.1,
    )?;
    let names: Vec<&str> = columns.iter().map(|(name, _, _)| *name).collect();
    let values: Vec<String> = columns
        .iter()
        .map(|(_, how, from)| format!("{how}({from})"))
        .collect();
    let carried: Vec<String> = parents.iter().map(|p| format!("MIN({p})")).collect();
    let buckets: Vec<(i64, i64, String)> = if regular {
        let start = first.0;
        vec![(
            first.0,
            last.1,
            format!("{start} + ((ts - {start}) / {HOUR_MS}) * {HOUR_MS}"),
        )]
    } else {
        hours
            .iter()
            .map(|&(from, to)| (from, to, from.to_string()))
            .collect()
    };
    for (from, to, bucket) in buckets {
        execute!(
            conn,
            format!(
                "INSERT INTO {table} ({device}, ts, {parents}, samples, {names}) \
                 SELECT {device}, {bucket}, {carried}, COUNT(*), {values} \
                 FROM {raw} WHERE pack_id = $1 AND ts >= $2 AND ts < $3 \
                 GROUP BY {device}, {bucket}",
                parents = parents.join(", "),
                carried = carried.join(", "),
                names = names.join(", "),
                values = values.join(", "),
            ),
            Text => pack_id,
            BigInt => from,
            BigInt => to,
        )?;
    }
    Ok(())
}

/// The devices with hourly aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HourlyDevice {
    BatteryUnit,
    Cell,
}

/// Which rows of an hourly aggregate table an id names: a pack's, a battery's, or one device's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HourlyScope {
    Pack,
    Battery,
    Device,
}

/// One stored hourly aggregate of a battery unit or cell.
#[derive(Debug, Clone, PartialEq)]
pub struct HourlyPoint {
    pub device_id: String,
    pub battery_id: String,
    pub pack_id: String,
    pub system_id: String,
    /// The local hour's start and end (UTC epoch ms).
    pub ts: i64,
    pub end: i64,
    pub samples: i32,
    /// The values the hour has, by column name (`voltage_min_v`, …).
    pub fields: BTreeMap<&'static str, f64>,
}

/// The hourly aggregates of the `scope` named `id` whose hour starts in [from, to), by device
/// then time; at most `limit` rows (the caller asks for one more than it serves to know there
/// were more).
pub fn hourly_points(
    conn: &mut DbConnection,
    kind: HourlyDevice,
    scope: HourlyScope,
    id: &str,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<HourlyPoint>, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Ids {
        #[diesel(sql_type = Text)]
        device_id: String,
        #[diesel(sql_type = Text)]
        battery_id: String,
        #[diesel(sql_type = Text)]
        pack_id: String,
        #[diesel(sql_type = Text)]
        system_id: String,
    }
    use diesel::QueryableByName;
    #[derive(QueryableByName)]
    struct HourlyRow {
        #[diesel(embed)]
        ids: Ids,
        #[diesel(embed)]
        values: AggregateRow,
    }
    let table = match kind {
        HourlyDevice::BatteryUnit => &HOURLY_TABLES[0],
        HourlyDevice::Cell => &HOURLY_TABLES[1],
    };
    let device = table.device;
    let column = match scope {
        HourlyScope::Pack => "pack_id",
        HourlyScope::Battery => "battery_id",
        HourlyScope::Device => device,
    };
    let columns: Vec<String> = (0..MAX_AGGREGATED_COLUMNS)
        .map(|i| match table.columns.get(i) {
            Some((name, _, _)) => format!("{name} AS v{i}"),
            None => format!("CAST(NULL AS DOUBLE PRECISION) AS v{i}"),
        })
        .collect();
    let rows = load!(
        conn,
        HourlyRow,
        format!(
            "SELECT {device} AS device_id, battery_id, pack_id, system_id, ts, samples, {} \
             FROM {} WHERE {column} = $1 AND ts >= $2 AND ts < $3 \
             ORDER BY {device}, ts LIMIT {limit}",
            columns.join(", "),
            table.table.name(),
        ),
        Text => id,
        BigInt => from,
        BigInt => to,
    )?;
    Ok(rows
        .into_iter()
        .map(|row| HourlyPoint {
            fields: table
                .columns
                .iter()
                .zip(row.values.values())
                .filter_map(|((name, _, _), value)| value.map(|value| (*name, value)))
                .collect(),
            ts: row.values.ts,
            end: row.values.ts + HOUR_MS,
            samples: row.values.samples,
            device_id: row.ids.device_id,
            battery_id: row.ids.battery_id,
            pack_id: row.ids.pack_id,
            system_id: row.ids.system_id,
        })
        .collect())
}

/// The oldest and newest row of `table` among the groups (packs or systems) of `system_id`;
/// `None` when it has none.
pub fn span_of_system(
    conn: &mut DbConnection,
    table: SampleTable,
    system_id: &str,
) -> Result<Option<(i64, i64)>, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Span {
        #[diesel(sql_type = Nullable<BigInt>)]
        oldest: Option<i64>,
        #[diesel(sql_type = Nullable<BigInt>)]
        newest: Option<i64>,
    }
    let (column, catalog) = table.group();
    let name = table.name();
    let rows = load!(
        conn,
        Span,
        format!(
            "SELECT MIN((SELECT MIN(ts) FROM {name} t WHERE t.{column} = g.{column})) AS oldest, \
             MAX((SELECT MAX(ts) FROM {name} t WHERE t.{column} = g.{column})) AS newest \
             FROM {catalog} g WHERE g.system_id = $1"
        ),
        Text => system_id,
    )?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|span| span.oldest.zip(span.newest)))
}

/// The imported spans of `group` in `table`: the times an import brought rows for (an import's
/// newest row included).
pub fn imported_spans(
    conn: &mut DbConnection,
    table: SampleTable,
    group: &str,
) -> Result<TimeRanges, DbError> {
    Ok(spans_of_group(conn, group)?
        .remove(&table)
        .unwrap_or_default())
}

/// Every table's imported spans of `group` (a system or a pack), by table.
fn spans_of_group(
    conn: &mut DbConnection,
    group: &str,
) -> Result<BTreeMap<SampleTable, TimeRanges>, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Span {
        #[diesel(sql_type = Text)]
        sample_table: String,
        #[diesel(sql_type = BigInt)]
        from_ts: i64,
        #[diesel(sql_type = BigInt)]
        to_ts: i64,
    }
    let rows = load!(
        conn,
        Span,
        "SELECT sample_table, from_ts, to_ts FROM imported_spans WHERE group_id = $1",
        Text => group,
    )?;
    let mut by_table: BTreeMap<SampleTable, Vec<(i64, i64)>> = BTreeMap::new();
    for row in rows {
        if let Some(table) = SampleTable::parse(&row.sample_table) {
            by_table
                .entry(table)
                .or_default()
                .push((row.from_ts, row.to_ts.saturating_add(1)));
        }
    }
    Ok(by_table
        .into_iter()
        .map(|(table, spans)| (table, TimeRanges::from_ranges(spans)))
        .collect())
}

/// Records that import `import_id` inserted `rows` rows of `group` into `table` between `from`
/// and `to` (both included); a second record for the same import widens the span.
pub fn record_imported(
    conn: &mut DbConnection,
    import_id: &str,
    table: SampleTable,
    group: &str,
    (from, to): (i64, i64),
    rows: i64,
) -> Result<(), DbError> {
    execute!(
        conn,
        "INSERT INTO imported_spans (import_id, sample_table, group_id, from_ts, to_ts, row_count) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (import_id, sample_table, group_id) DO UPDATE SET \
         from_ts = CASE WHEN excluded.from_ts < imported_spans.from_ts \
             THEN excluded.from_ts ELSE imported_spans.from_ts END, \
         to_ts = CASE WHEN excluded.to_ts > imported_spans.to_ts \
             THEN excluded.to_ts ELSE imported_spans.to_ts END, \
         row_count = COALESCE(imported_spans.row_count, 0) + excluded.row_count",
        Text => import_id,
        Text => table.name(),
        Text => group,
        BigInt => from,
        BigInt => to,
        BigInt => rows,
    )?;
    Ok(())
}

/// Every mark of `group` (a system or a pack) for rows of `origin`, by table: rows before it may
/// be gone. Marks of `i64::MIN` (written by earlier versions when they first met a system) say
/// nothing was deleted and are left out.
fn marks_of_group(
    conn: &mut DbConnection,
    origin: Origin,
    group: &str,
) -> Result<BTreeMap<SampleTable, i64>, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Mark {
        #[diesel(sql_type = Text)]
        sample_table: String,
        #[diesel(sql_type = BigInt)]
        deleted_before: i64,
    }
    let rows = load!(
        conn,
        Mark,
        format!(
            "SELECT sample_table, deleted_before FROM {} WHERE group_id = $1",
            origin.marks()
        ),
        Text => group,
    )?;
    Ok(rows
        .into_iter()
        .filter(|row| row.deleted_before > i64::MIN)
        .filter_map(|row| Some((SampleTable::parse(&row.sample_table)?, row.deleted_before)))
        .collect())
}

/// The times whose rows of `table` in `group` may be gone: collected rows before the collected
/// mark (outside the imported spans), imported rows before the imported mark (inside them).
pub fn gone(
    conn: &mut DbConnection,
    table: SampleTable,
    group: &str,
) -> Result<TimeRanges, DbError> {
    let spans = spans_of_group(conn, group)?;
    let collected = marks_of_group(conn, Origin::Collected, group)?;
    let imported = marks_of_group(conn, Origin::Imported, group)?;
    Ok(gone_of(table, &spans, &collected, &imported))
}

fn gone_of(
    table: SampleTable,
    spans: &BTreeMap<SampleTable, TimeRanges>,
    collected: &BTreeMap<SampleTable, i64>,
    imported: &BTreeMap<SampleTable, i64>,
) -> TimeRanges {
    let no_spans = TimeRanges::empty();
    let spans = spans.get(&table).unwrap_or(&no_spans);
    let collected = collected
        .get(&table)
        .map_or_else(TimeRanges::empty, |mark| {
            TimeRanges::before(*mark).minus(spans)
        });
    let imported = imported.get(&table).map_or_else(TimeRanges::empty, |mark| {
        spans.intersect(&TimeRanges::before(*mark))
    });
    collected.union(&imported)
}

/// The rows of `table` in `group` that retention deletes before `before` (epoch ms) for rows of
/// `origin`: collected rows are those outside the imported spans, imported rows those inside.
pub fn deletable(
    conn: &mut DbConnection,
    table: SampleTable,
    group: &str,
    origin: Origin,
    before: i64,
) -> Result<TimeRanges, DbError> {
    let spans = imported_spans(conn, table, group)?;
    let older = TimeRanges::before(before);
    Ok(match origin {
        Origin::Collected => older.minus(&spans),
        Origin::Imported => spans.intersect(&older),
    })
}

/// The tables whose aggregates of `system_id` were made for every sample it had when retention
/// first met it (the roller has made them for every hour rolled since).
pub fn aggregates_made(
    conn: &mut DbConnection,
    system_id: &str,
) -> Result<BTreeSet<SampleTable>, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Made {
        #[diesel(sql_type = Text)]
        sample_table: String,
    }
    let rows = load!(
        conn,
        Made,
        "SELECT sample_table FROM aggregates_made WHERE system_id = $1",
        Text => system_id,
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|row| SampleTable::parse(&row.sample_table))
        .collect())
}

/// Records that `table` holds the aggregates of every sample `system_id` had.
pub fn mark_made(
    conn: &mut DbConnection,
    table: SampleTable,
    system_id: &str,
) -> Result<(), DbError> {
    execute!(
        conn,
        "INSERT INTO aggregates_made (sample_table, system_id) VALUES ($1, $2) \
         ON CONFLICT (sample_table, system_id) DO NOTHING",
        Text => table.name(),
        Text => system_id,
    )?;
    Ok(())
}

/// The times around which the hours of `system_id` that have rows are never rolled again: where
/// samples of a table the rollups are made from may be gone, widened by `reach_ms` on both sides
/// (an hour's first and last intervals reach that far). `None` while nothing of the system was
/// deleted.
pub fn frozen(
    conn: &mut DbConnection,
    system_id: &str,
    reach_ms: i64,
) -> Result<Option<TimeRanges>, DbError> {
    let collected = marks_of_group(conn, Origin::Collected, system_id)?;
    let imported = marks_of_group(conn, Origin::Imported, system_id)?;
    if collected.is_empty() && imported.is_empty() {
        return Ok(None);
    }
    let spans = spans_of_group(conn, system_id)?;
    let gone = SampleTable::ALL
        .into_iter()
        .filter(|table| table.feeds_rollups())
        .fold(TimeRanges::empty(), |gone, table| {
            gone.union(&gone_of(table, &spans, &collected, &imported))
        });
    Ok((!gone.is_empty()).then(|| gone.widened(reach_ms)))
}

/// Whether any pass deleted (or went through) `table` under a period: from then on, its rows
/// follow the policy of the hub without waiting for one to be named.
pub fn settled(conn: &mut DbConnection, table: SampleTable) -> Result<bool, DbError> {
    let rows = load!(
        conn,
        MaybeTs,
        "SELECT MAX(deleted_before) AS ts FROM retention_marks WHERE sample_table = $1",
        Text => table.name(),
    )?;
    Ok(MaybeTs::single(rows).is_some_and(|ts| ts > i64::MIN))
}

/// The starts of the hours in [from, to) of which `system_id` has any hour row (of a device, an
/// array or the system).
pub fn rolled_hours(
    conn: &mut DbConnection,
    system_id: &str,
    from: i64,
    to: i64,
) -> Result<std::collections::BTreeSet<i64>, DbError> {
    let selects: Vec<String> = [
        "hourly_energy",
        "array_hourly_energy",
        "system_hourly_energy",
        "battery_bank_hourly",
        "meter_hourly_energy",
    ]
    .iter()
    .map(|table| {
        format!(
            "SELECT bucket_start AS ts FROM {table} \
             WHERE system_id = $1 AND bucket_start >= $2 AND bucket_start < $3"
        )
    })
    .collect();
    let rows = load!(
        conn,
        MaybeTs,
        selects.join(" UNION "),
        Text => system_id,
        BigInt => from,
        BigInt => to,
    )?;
    Ok(rows.into_iter().filter_map(|row| row.ts).collect())
}

/// Where the samples of `system_id` that retention may delete from the tables the rollups are made
/// from end: before every pending range (and the reach before it), and before the claim of every
/// running recompute renewed within [`HOLD_LIFETIME_MS`]. `None` when nothing holds samples back.
/// (A pending range of frozen hours holds samples back only until the roller has passed over it.)
pub fn rollups_need_from(
    conn: &mut DbConnection,
    system_id: &str,
    reach_ms: i64,
) -> Result<Option<i64>, DbError> {
    let pending = load!(
        conn,
        MaybeTs,
        "SELECT MIN(from_ts) AS ts FROM rollup_pending WHERE system_id = $1",
        Text => system_id,
    )?;
    let held = load!(
        conn,
        MaybeTs,
        "SELECT MIN(from_ts) AS ts FROM retention_holds WHERE system_id = $1 AND taken_at > $2",
        Text => system_id,
        BigInt => super::now_ms() - HOLD_LIFETIME_MS,
    )?;
    Ok(MaybeTs::single(pending)
        .into_iter()
        .chain(MaybeTs::single(held))
        .min()
        .map(|ts| ts.saturating_sub(reach_ms)))
}

/// A claim not renewed for this long is a crashed recompute's and holds nothing back.
pub const HOLD_LIFETIME_MS: i64 = 24 * 3_600_000;

/// Claims the samples of `system_id` from `from_ts` on for `holder` (a recompute), or moves and
/// renews its claim, until [`release`].
pub fn hold(
    conn: &mut DbConnection,
    holder: &str,
    system_id: &str,
    from_ts: i64,
) -> Result<(), DbError> {
    execute!(
        conn,
        "INSERT INTO retention_holds (holder, system_id, from_ts, taken_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (holder) DO UPDATE SET from_ts = excluded.from_ts, taken_at = excluded.taken_at",
        Text => holder,
        Text => system_id,
        BigInt => from_ts,
        BigInt => super::now_ms(),
    )?;
    Ok(())
}

pub fn release(conn: &mut DbConnection, holder: &str) -> Result<(), DbError> {
    execute!(conn, "DELETE FROM retention_holds WHERE holder = $1", Text => holder)?;
    Ok(())
}

/// Records that `table` may hold no row of `origin` in `group` before `before` from now on
/// (never moves back).
pub fn mark_deleted(
    conn: &mut DbConnection,
    origin: Origin,
    table: SampleTable,
    group: &str,
    before: i64,
) -> Result<(), DbError> {
    let marks = origin.marks();
    execute!(
        conn,
        format!(
            "INSERT INTO {marks} (sample_table, group_id, deleted_before) VALUES ($1, $2, $3) \
             ON CONFLICT (sample_table, group_id) DO UPDATE SET \
             deleted_before = excluded.deleted_before \
             WHERE {marks}.deleted_before < excluded.deleted_before"
        ),
        Text => table.name(),
        Text => group,
        BigInt => before,
    )?;
    Ok(())
}

/// The furthest rows of `origin` in `table` were deleted in any group (epoch ms), `None` when
/// nothing was.
pub fn deleted_before(
    conn: &mut DbConnection,
    origin: Origin,
    table: SampleTable,
) -> Result<Option<i64>, DbError> {
    let rows = load!(
        conn,
        MaybeTs,
        format!(
            "SELECT MAX(deleted_before) AS ts FROM {} WHERE sample_table = $1",
            origin.marks()
        ),
        Text => table.name(),
    )?;
    Ok(MaybeTs::single(rows).filter(|ts| *ts > i64::MIN))
}

/// The values of the column `table` is deleted by (systems, or packs).
pub fn groups(conn: &mut DbConnection, table: SampleTable) -> Result<Vec<String>, DbError> {
    let (column, catalog) = table.group();
    let rows = load!(
        conn,
        Id,
        format!("SELECT {column} AS id FROM {catalog} ORDER BY {column}")
    )?;
    Ok(rows.into_iter().map(|row| row.id).collect())
}

/// Deletes at most `limit` rows of `table` in `group` whose time is in `ranges` (oldest range
/// first); returns how many.
pub fn delete_batch(
    conn: &mut DbConnection,
    table: SampleTable,
    group: &str,
    ranges: &TimeRanges,
    limit: usize,
) -> Result<usize, DbError> {
    let (column, _) = table.group();
    let name = table.name();
    let mut deleted = 0;
    for &(from, to) in ranges.ranges() {
        if deleted >= limit {
            break;
        }
        let left = limit - deleted;
        // Neither backend deletes with a LIMIT: the rows are picked by their physical id
        // (Postgres' ctid, which `= ANY(ARRAY(…))` turns into a TID scan; SQLite's rowid)
        // through the (group, ts) index.
        let sql = match conn {
            DbConnection::Postgres(_) => format!(
                "DELETE FROM {name} WHERE ctid = ANY(ARRAY( \
                 SELECT ctid FROM {name} WHERE {column} = $1 AND ts >= $2 AND ts < $3 \
                 LIMIT {left}))"
            ),
            DbConnection::Sqlite(_) => format!(
                "DELETE FROM {name} WHERE rowid IN \
                 (SELECT rowid FROM {name} WHERE {column} = $1 AND ts >= $2 AND ts < $3 \
                 LIMIT {left})"
            ),
        };
        deleted += execute!(conn, sql, Text => group, BigInt => from, BigInt => to)?;
    }
    Ok(deleted)
}

/// Rows counted in some times, with the oldest and the newest of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowSpan {
    pub rows: i64,
    pub oldest: Option<i64>,
    pub newest: Option<i64>,
}

impl RowSpan {
    pub fn add(&mut self, other: RowSpan) {
        self.rows += other.rows;
        self.oldest = self.oldest.into_iter().chain(other.oldest).min();
        self.newest = self.newest.into_iter().chain(other.newest).max();
    }
}

/// How many rows of `table` in `group` have their time in `ranges`, and the oldest and newest of
/// them: one indexed count per range.
pub fn count_in(
    conn: &mut DbConnection,
    table: SampleTable,
    group: &str,
    ranges: &TimeRanges,
) -> Result<RowSpan, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Counted {
        #[diesel(sql_type = BigInt)]
        row_count: i64,
        #[diesel(sql_type = Nullable<BigInt>)]
        oldest: Option<i64>,
        #[diesel(sql_type = Nullable<BigInt>)]
        newest: Option<i64>,
    }
    let (column, _) = table.group();
    let mut span = RowSpan::default();
    for &(from, to) in ranges.ranges() {
        let counted = load!(
            conn,
            Counted,
            format!(
                "SELECT COUNT(*) AS row_count, MIN(ts) AS oldest, MAX(ts) AS newest FROM {} \
                 WHERE {column} = $1 AND ts >= $2 AND ts < $3",
                table.name()
            ),
            Text => group,
            BigInt => from,
            BigInt => to,
        )?;
        if let Some(counted) = counted.into_iter().next() {
            span.add(RowSpan {
                rows: counted.row_count,
                oldest: counted.oldest,
                newest: counted.newest,
            });
        }
    }
    Ok(span)
}

/// The oldest row of `table` (epoch ms), `None` when it is empty: one statement, an indexed
/// lookup per group.
pub fn oldest(conn: &mut DbConnection, table: SampleTable) -> Result<Option<i64>, DbError> {
    let (column, catalog) = table.group();
    let rows = load!(
        conn,
        MaybeTs,
        format!(
            "SELECT MIN((SELECT MIN(ts) FROM {name} t WHERE t.{column} = g.{column})) AS ts \
             FROM {catalog} g",
            name = table.name()
        ),
    )?;
    Ok(MaybeTs::single(rows))
}

/// SQLite: hands up to `pages` free pages back to the file system and returns how many are still
/// free; `None` when the file cannot shrink (made without `auto_vacuum = INCREMENTAL`, such as
/// the old app's: its free pages are reused, and `solarhub-hub compact` converts it). Postgres'
/// autovacuum makes deleted rows' space reusable by itself: `None`.
pub fn give_back_space(conn: &mut DbConnection, pages: u32) -> Result<Option<i64>, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        auto_vacuum: i32,
    }
    #[derive(diesel::QueryableByName)]
    struct Free {
        #[diesel(sql_type = BigInt)]
        freelist_count: i64,
    }
    let DbConnection::Sqlite(sqlite) = conn else {
        return Ok(None);
    };
    let mode: Vec<Mode> = diesel::sql_query("PRAGMA auto_vacuum").load(sqlite)?;
    // 2 is INCREMENTAL.
    if mode.first().map(|m| m.auto_vacuum) != Some(2) {
        return Ok(None);
    }
    use diesel::connection::SimpleConnection;
    sqlite.batch_execute(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let free: Vec<Free> = diesel::sql_query("PRAGMA freelist_count").load(sqlite)?;
    Ok(Some(free.first().map_or(0, |f| f.freelist_count)))
}

/// SQLite: copies what the write-ahead log holds into the file without waiting for anyone, so a
/// file that gave pages back shrinks now rather than at the next automatic checkpoint.
pub fn checkpoint(conn: &mut DbConnection) -> Result<(), DbError> {
    if let DbConnection::Sqlite(sqlite) = conn {
        use diesel::connection::SimpleConnection;
        sqlite.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")?;
    }
    Ok(())
}

/// SQLite: makes the file one that can give space back (`auto_vacuum = INCREMENTAL`) and rewrites
/// it without free pages (`VACUUM`: needs as much free disk as the file, and no other writer).
/// Returns the file's pages before and after. A no-op on Postgres.
pub fn compact(conn: &mut DbConnection) -> Result<Option<(i64, i64)>, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Pages {
        #[diesel(sql_type = BigInt)]
        page_count: i64,
    }
    let DbConnection::Sqlite(sqlite) = conn else {
        return Ok(None);
    };
    use diesel::connection::SimpleConnection;
    let count = |sqlite: &mut diesel::SqliteConnection| -> Result<i64, DbError> {
        let pages: Vec<Pages> = diesel::sql_query("PRAGMA page_count").load(sqlite)?;
        Ok(pages.first().map_or(0, |p| p.page_count))
    };
    let before = count(sqlite)?;
    sqlite.batch_execute(
        "PRAGMA auto_vacuum = INCREMENTAL; VACUUM; PRAGMA wal_checkpoint(TRUNCATE)",
    )?;
    Ok(Some((before, count(sqlite)?)))
}
