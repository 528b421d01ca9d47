//! The aggregate tables, declared once ([`AGGREGATES`]): 5-minute ones per inverter, meter and
//! pack, hourly ones (local hours) per battery unit and cell. For each: the raw table it is made
//! from, the device and the ids it carries, the group the roller reads it by, the bucket, and each
//! value column with how it is made from which raw column (columns of the 5-minute tables are
//! named after the contract's fields, as in the raw tables). Here: reading a table's inputs (raw
//! samples in one generic row shape), storing what the roller made of them, reading the stored
//! buckets back for the history API. How a bucket is made from its samples is the roller's
//! (`rollup::aggregates`).

use std::collections::BTreeMap;

use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text};

use super::retention::SampleTable;
use super::samples::{BatteryBankSample, Column, EnergySample, Kind, MeterSample};
use super::{DbConnection, DbError};

/// How a 5-minute table keeps a column of `kind`: a measured value's mean, a counter's highest
/// reading; the rest only raw.
const fn kept_as(kind: Kind) -> Option<How> {
    match kind {
        Kind::Measured => Some(How::Mean),
        Kind::Counter => Some(How::Highest),
        Kind::Detail | Kind::Text => None,
    }
}

/// The 5-minute columns of a sample table, made from its declaration (`db::samples`), named as
/// the raw column.
const fn five_minute<const N: usize>(columns: &[Column]) -> [(&'static str, How, &'static str); N] {
    let mut out = [("", How::Mean, ""); N];
    let (mut i, mut n) = (0, 0);
    while i < columns.len() {
        if let Some(how) = kept_as(columns[i].kind) {
            out[n] = (columns[i].name, how, columns[i].name);
            n += 1;
        }
        i += 1;
    }
    assert!(n == N);
    out
}

/// How many of `columns` a 5-minute table keeps.
const fn kept(columns: &[Column]) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < columns.len() {
        if kept_as(columns[i].kind).is_some() {
            n += 1;
        }
        i += 1;
    }
    n
}

const INVERTER_5M: [(&str, How, &str); kept(EnergySample::COLUMNS)] =
    five_minute(EnergySample::COLUMNS);
const METER_5M: [(&str, How, &str); kept(MeterSample::COLUMNS)] = five_minute(MeterSample::COLUMNS);
const PACK_5M: [(&str, How, &str); kept(BatteryBankSample::COLUMNS)] =
    five_minute(BatteryBankSample::COLUMNS);

/// The width of a 5-minute bucket.
pub const BUCKET_MS: i64 = 5 * 60_000;
/// Room for the widest aggregate table's value columns (the generic row shapes below have this
/// many value slots: a table that outgrows them fails to compile, and gets two more `v` slots),
/// and its most carried ids.
pub const MAX_COLUMNS: usize = 16;
pub const MAX_PARENTS: usize = 3;

/// How a value column is made from the values of the bucket's samples that have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Mean,
    Highest,
    Lowest,
}

/// A bucket: five minutes of UTC time, or a local hour of the system's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    FiveMinutes,
    LocalHour,
}

/// The devices with aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AggregateKind {
    Inverter,
    Meter,
    Pack,
    BatteryUnit,
    Cell,
}

/// One aggregate table.
#[derive(Debug)]
pub struct AggregateTable {
    pub kind: AggregateKind,
    pub table: SampleTable,
    pub raw: SampleTable,
    /// The device's id column.
    pub device: &'static str,
    /// The ids carried with the device (its parents), taken from its first sample of a bucket.
    pub parents: &'static [&'static str],
    /// The column the roller reads inputs by: a system's (5-minute tables) or a pack's (hourly).
    pub group: &'static str,
    pub width: Width,
    /// (column, how it is made, raw column).
    pub columns: &'static [(&'static str, How, &'static str)],
}

use How::{Highest, Lowest, Mean};

/// Every aggregate table: the 5-minute ones (instantaneous values their mean, lifetime counters
/// their highest reading), then the hourly ones of battery units and cells (lowest, highest and
/// mean). Kept forever by default: they are the history that outlives the raw samples.
pub const AGGREGATES: [AggregateTable; 5] = [
    AggregateTable {
        kind: AggregateKind::Inverter,
        table: SampleTable::Energy5m,
        raw: SampleTable::Energy,
        device: "inverter_id",
        parents: &["system_id"],
        group: "system_id",
        width: Width::FiveMinutes,
        columns: &INVERTER_5M,
    },
    AggregateTable {
        kind: AggregateKind::Meter,
        table: SampleTable::Meter5m,
        raw: SampleTable::Meter,
        device: "meter_id",
        parents: &["system_id"],
        group: "system_id",
        width: Width::FiveMinutes,
        columns: &METER_5M,
    },
    AggregateTable {
        kind: AggregateKind::Pack,
        table: SampleTable::Bank5m,
        raw: SampleTable::Bank,
        device: "pack_id",
        parents: &["system_id"],
        group: "system_id",
        width: Width::FiveMinutes,
        columns: &PACK_5M,
    },
    AggregateTable {
        kind: AggregateKind::BatteryUnit,
        table: SampleTable::Unit1h,
        raw: SampleTable::Unit,
        device: "battery_id",
        parents: &["pack_id", "system_id"],
        group: "pack_id",
        width: Width::LocalHour,
        columns: &[
            ("voltage_min_v", Lowest, "voltage_v"),
            ("voltage_max_v", Highest, "voltage_v"),
            ("voltage_avg_v", Mean, "voltage_v"),
            ("current_min_a", Lowest, "current_a"),
            ("current_max_a", Highest, "current_a"),
            ("current_avg_a", Mean, "current_a"),
            ("temperature_min_c", Lowest, "temperature_c"),
            ("temperature_max_c", Highest, "temperature_c"),
            ("soc_min_pct", Lowest, "soc_pct"),
            ("soc_max_pct", Highest, "soc_pct"),
            ("soc_avg_pct", Mean, "soc_pct"),
            ("soh_avg_pct", Mean, "soh_pct"),
        ],
    },
    AggregateTable {
        kind: AggregateKind::Cell,
        table: SampleTable::Cell1h,
        raw: SampleTable::Cell,
        device: "cell_id",
        parents: &["battery_id", "pack_id", "system_id"],
        group: "pack_id",
        width: Width::LocalHour,
        columns: &[
            ("voltage_min_v", Lowest, "voltage_v"),
            ("voltage_max_v", Highest, "voltage_v"),
            ("voltage_avg_v", Mean, "voltage_v"),
            ("temperature_min_c", Lowest, "temperature_c"),
            ("temperature_max_c", Highest, "temperature_c"),
            ("soc_avg_pct", Mean, "soc_pct"),
        ],
    },
];

const _: () = {
    let mut i = 0;
    while i < AGGREGATES.len() {
        assert!(AGGREGATES[i].columns.len() <= MAX_COLUMNS);
        assert!(AGGREGATES[i].parents.len() <= MAX_PARENTS);
        i += 1;
    }
};

/// The declaration of `kind`'s table.
pub fn table_of(kind: AggregateKind) -> &'static AggregateTable {
    match kind {
        AggregateKind::Inverter => &AGGREGATES[0],
        AggregateKind::Meter => &AGGREGATES[1],
        AggregateKind::Pack => &AGGREGATES[2],
        AggregateKind::BatteryUnit => &AGGREGATES[3],
        AggregateKind::Cell => &AGGREGATES[4],
    }
}

/// One raw sample as aggregation reads it: the device, its carried ids, its time, and the raw
/// value of each of the table's columns (in the table's order).
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateInput {
    pub device: String,
    pub parents: [String; MAX_PARENTS],
    pub ts: i64,
    pub values: [Option<f64>; MAX_COLUMNS],
}

/// One bucket as the roller made it (the bucket's start in `ts`).
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateOutput {
    pub device: String,
    pub parents: [String; MAX_PARENTS],
    pub ts: i64,
    pub samples: i32,
    pub values: [Option<f64>; MAX_COLUMNS],
}

macro_rules! values_row {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $rust:ty = $ty:ty),* }) => {
        $(#[$doc])*
        #[derive(diesel::QueryableByName)]
        struct $name {
            $(#[diesel(sql_type = $ty)] $field: $rust,)*
            #[diesel(sql_type = Nullable<Double>)] v0: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v1: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v2: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v3: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v4: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v5: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v6: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v7: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v8: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v9: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v10: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v11: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v12: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v13: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v14: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)] v15: Option<f64>,
        }

        impl $name {
            fn values(&self) -> [Option<f64>; MAX_COLUMNS] {
                [
                    self.v0, self.v1, self.v2, self.v3, self.v4, self.v5, self.v6, self.v7,
                    self.v8, self.v9, self.v10, self.v11, self.v12, self.v13, self.v14, self.v15,
                ]
            }
        }
    };
}

values_row!(
    /// A raw sample in the generic shape: device, three carried ids, time, `MAX_COLUMNS` values.
    InputRow {
        device: String = Text,
        p0: String = Text,
        p1: String = Text,
        p2: String = Text,
        ts: i64 = BigInt
    }
);

values_row!(
    /// A stored bucket in the generic shape.
    StoredRow {
        device: String = Text,
        p0: String = Text,
        p1: String = Text,
        p2: String = Text,
        ts: i64 = BigInt,
        samples: i32 = Integer
    }
);

/// `column AS alias` for each of `names` (then empty ones up to `width`), for the generic shapes.
fn selected(names: &[&str], width: usize, alias: &str, empty: &str) -> Vec<String> {
    (0..width)
        .map(|i| match names.get(i) {
            Some(name) => format!("{name} AS {alias}{i}"),
            None => format!("CAST({empty}) AS {alias}{i}"),
        })
        .collect()
}

fn parents_selected(table: &AggregateTable) -> String {
    selected(table.parents, MAX_PARENTS, "p", "'' AS TEXT").join(", ")
}

/// The raw samples `table` is made from whose group (`table.group`) is `group` and whose time is
/// in [from, to), in (device, time) order; only `device`'s when given (a 5-minute table's device).
pub fn inputs(
    conn: &mut DbConnection,
    table: &AggregateTable,
    group: &str,
    device: Option<&str>,
    from: i64,
    to: i64,
) -> Result<Vec<AggregateInput>, DbError> {
    let mut inputs = Vec::new();
    each_input(conn, table, group, device, from, to, |input| {
        inputs.push(input)
    })?;
    Ok(inputs)
}

/// The samples [`inputs`] reads, handed to `each` one at a time as they are read.
pub fn each_input(
    conn: &mut DbConnection,
    table: &AggregateTable,
    group: &str,
    device: Option<&str>,
    from: i64,
    to: i64,
    mut each: impl FnMut(AggregateInput),
) -> Result<(), DbError> {
    let raw_columns: Vec<&str> = table.columns.iter().map(|(_, _, raw)| *raw).collect();
    let values = selected(&raw_columns, MAX_COLUMNS, "v", "NULL AS DOUBLE PRECISION");
    load_each!(
        conn,
        InputRow,
        |row: InputRow| {
            each(AggregateInput {
                values: row.values(),
                device: row.device,
                parents: [row.p0, row.p1, row.p2],
                ts: row.ts,
            })
        },
        format!(
            "SELECT {device} AS device, {parents}, ts, {values} FROM {raw} \
             WHERE {group} = $1 AND ts >= $2 AND ts < $3 AND ($4 = '' OR {device} = $4) \
             ORDER BY {device}, ts",
            device = table.device,
            parents = parents_selected(table),
            values = values.join(", "),
            raw = table.raw.name(),
            group = table.group,
        ),
        Text => group,
        BigInt => from,
        BigInt => to,
        Text => device.unwrap_or(""),
    )?;
    Ok(())
}

/// Deletes the stored buckets of `group` that start in [from, to); only `device`'s when given.
pub fn clear(
    conn: &mut DbConnection,
    table: &AggregateTable,
    group: &str,
    device: Option<&str>,
    from: i64,
    to: i64,
) -> Result<(), DbError> {
    execute!(
        conn,
        format!(
            "DELETE FROM {} WHERE {} = $1 AND ts >= $2 AND ts < $3 AND ($4 = '' OR {} = $4)",
            table.table.name(),
            table.group,
            table.device,
        ),
        Text => group,
        BigInt => from,
        BigInt => to,
        Text => device.unwrap_or(""),
    )?;
    Ok(())
}

/// Deletes the stored buckets of `devices` (of `group`) that start in [from, to): [`clear`] for
/// many devices in one statement per [`STORE_ROWS`] of them.
pub fn clear_devices(
    conn: &mut DbConnection,
    table: &AggregateTable,
    group: &str,
    devices: &[&str],
    from: i64,
    to: i64,
) -> Result<(), DbError> {
    let postgres = matches!(conn, DbConnection::Postgres(_));
    for chunk in devices.chunks(STORE_ROWS) {
        let listed: Vec<String> = (0..chunk.len())
            .map(|i| match postgres {
                true => format!("${}", i + 4),
                false => "?".to_owned(),
            })
            .collect();
        let (g, f, t) = match postgres {
            true => ("$1", "$2", "$3"),
            false => ("?", "?", "?"),
        };
        let sql = format!(
            "DELETE FROM {} WHERE {} = {g} AND ts >= {f} AND ts < {t} AND {} IN ({})",
            table.table.name(),
            table.group,
            table.device,
            listed.join(", "),
        );
        macro_rules! bound {
            ($backend:ty) => {{
                let mut query = diesel::sql_query(sql.clone())
                    .into_boxed::<$backend>()
                    .bind::<Text, _>(group)
                    .bind::<BigInt, _>(from)
                    .bind::<BigInt, _>(to);
                for device in chunk {
                    query = query.bind::<Text, _>(*device);
                }
                query
            }};
        }
        match conn {
            DbConnection::Postgres(pg) => {
                diesel::RunQueryDsl::execute(bound!(diesel::pg::Pg), pg)?;
            }
            DbConnection::Sqlite(sqlite) => {
                diesel::RunQueryDsl::execute(bound!(diesel::sqlite::Sqlite), sqlite)?;
            }
        }
    }
    Ok(())
}

/// Rows per statement: well under both backends' bind limits (a row binds at most 19 values), and
/// a statement's memory small (as `rollups::INSERT_ROWS`).
const STORE_ROWS: usize = 100;

/// Stores `rows` in `table`, each replacing a stored bucket of the same device and start.
pub fn store(
    conn: &mut DbConnection,
    table: &AggregateTable,
    rows: &[AggregateOutput],
) -> Result<(), DbError> {
    let parents = table.parents.len();
    let columns: Vec<&str> = table.columns.iter().map(|(name, _, _)| *name).collect();
    let per_row = 3 + parents + columns.len();
    let updates: Vec<String> = table
        .parents
        .iter()
        .chain(std::iter::once(&"samples"))
        .chain(&columns)
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    // Postgres numbers its placeholders; SQLite takes plain `?` in order (it reads `$n` as a
    // name, looked up among all the statement's names one by one: quadratic in the binds).
    let postgres = matches!(conn, DbConnection::Postgres(_));
    for chunk in rows.chunks(STORE_ROWS) {
        let tuples: Vec<String> = (0..chunk.len())
            .map(|row| {
                let binds: Vec<String> = (1..=per_row)
                    .map(|i| match postgres {
                        true => format!("${}", row * per_row + i),
                        false => "?".to_owned(),
                    })
                    .collect();
                format!("({})", binds.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO {table} ({device}, ts, {parents}{comma} samples, {columns}) VALUES {tuples} \
             ON CONFLICT ({device}, ts) DO UPDATE SET {updates}",
            table = table.table.name(),
            device = table.device,
            parents = table.parents.join(", "),
            comma = if parents > 0 { "," } else { "" },
            columns = columns.join(", "),
            tuples = tuples.join(", "),
            updates = updates.join(", "),
        );
        macro_rules! bound {
            ($backend:ty) => {{
                let mut query = diesel::sql_query(sql.clone()).into_boxed::<$backend>();
                for row in chunk {
                    query = query
                        .bind::<Text, _>(row.device.clone())
                        .bind::<BigInt, _>(row.ts);
                    for parent in &row.parents[..parents] {
                        query = query.bind::<Text, _>(parent.clone());
                    }
                    query = query.bind::<Integer, _>(row.samples);
                    for value in &row.values[..columns.len()] {
                        query = query.bind::<Nullable<Double>, _>(*value);
                    }
                }
                query
            }};
        }
        match conn {
            DbConnection::Postgres(pg) => {
                diesel::RunQueryDsl::execute(bound!(diesel::pg::Pg), pg)?;
            }
            DbConnection::Sqlite(sqlite) => {
                diesel::RunQueryDsl::execute(bound!(diesel::sqlite::Sqlite), sqlite)?;
            }
        }
    }
    Ok(())
}

/// One stored bucket, as the history API reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatePoint {
    pub device: String,
    /// The carried ids, in the table's order (`AggregateTable::parents`).
    pub parents: Vec<String>,
    /// The bucket's start (UTC epoch ms).
    pub ts: i64,
    pub samples: i32,
    /// The values the bucket has, by column name.
    pub fields: BTreeMap<&'static str, f64>,
}

/// The stored buckets of `table` whose `column` (the device's id column, or a carried one) is `id`
/// and whose start is in [from, to), by device then time; at most `limit`.
pub fn points(
    conn: &mut DbConnection,
    table: &AggregateTable,
    column: &str,
    id: &str,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<AggregatePoint>, DbError> {
    let names: Vec<&str> = table.columns.iter().map(|(name, _, _)| *name).collect();
    let values = selected(&names, MAX_COLUMNS, "v", "NULL AS DOUBLE PRECISION");
    let rows = load!(
        conn,
        StoredRow,
        format!(
            "SELECT {device} AS device, {parents}, ts, samples, {values} FROM {name} \
             WHERE {column} = $1 AND ts >= $2 AND ts < $3 ORDER BY {device}, ts LIMIT {limit}",
            device = table.device,
            parents = parents_selected(table),
            values = values.join(", "),
            name = table.table.name(),
        ),
        Text => id,
        BigInt => from,
        BigInt => to,
    )?;
    Ok(rows
        .into_iter()
        .map(|row| AggregatePoint {
            fields: table
                .columns
                .iter()
                .zip(row.values())
                .filter_map(|((name, _, _), value)| value.map(|value| (*name, value)))
                .collect(),
            parents: [row.p0, row.p1, row.p2]
                .into_iter()
                .take(table.parents.len())
                .collect(),
            device: row.device,
            ts: row.ts,
            samples: row.samples,
        })
        .collect())
}

/// Which tables are made from which, told by the aggregates' declaration (so retention, which
/// names the tables, does not look up here).
impl SampleTable {
    /// The raw table an aggregate table is made from; `None` for a raw table.
    pub fn aggregated_from(self) -> Option<SampleTable> {
        AGGREGATES
            .iter()
            .find(|aggregate| aggregate.table == self)
            .map(|aggregate| aggregate.raw)
    }

    /// Whether rows of this table are samples as they came (from a collector or an import), not
    /// aggregates the hub made.
    pub fn is_raw(self) -> bool {
        self.aggregated_from().is_none()
    }
}
