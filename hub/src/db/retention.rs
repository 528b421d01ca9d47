//! Retention in the database: the 5-minute aggregates the roller keeps, how far each sample table
//! has been deleted (`retention_marks`) and what that freezes, recomputes' claims
//! (`retention_holds`), deleting in small batches, the oldest row kept, and giving SQLite its space
//! back.

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::{DbConnection, DbError};

/// The width of an aggregate bucket.
pub const BUCKET_MS: i64 = 5 * 60_000;

/// A table retention deletes from: the raw sample tables and the 5-minute aggregates.
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
}

impl SampleTable {
    pub const ALL: [SampleTable; 9] = [
        SampleTable::Energy,
        SampleTable::Meter,
        SampleTable::Bank,
        SampleTable::Unit,
        SampleTable::Cell,
        SampleTable::Array,
        SampleTable::Energy5m,
        SampleTable::Meter5m,
        SampleTable::Bank5m,
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

    /// The raw table a 5-minute aggregate table is made from; `None` for a raw table.
    pub fn aggregated_from(self) -> Option<SampleTable> {
        AGGREGATE_TABLES
            .iter()
            .find(|aggregate| aggregate.table == self)
            .map(|aggregate| aggregate.raw)
    }

    /// The column deletion goes by (indexed together with `ts`), and the catalog table and
    /// column that list its values.
    fn group(self) -> (&'static str, &'static str) {
        match self {
            SampleTable::Unit | SampleTable::Cell => ("pack_id", "battery_packs"),
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

/// How far retention has deleted `system_id`'s samples from the tables the rollups are made from
/// (the furthest of them); `None` when it has not looked at the system yet, `i64::MIN` when it
/// has but deleted nothing.
fn furthest_mark(conn: &mut DbConnection, system_id: &str) -> Result<Option<i64>, DbError> {
    let feeding: Vec<String> = SampleTable::ALL
        .into_iter()
        .filter(|t| t.feeds_rollups())
        .map(|t| format!("'{}'", t.name()))
        .collect();
    let rows = load!(
        conn,
        MaybeTs,
        format!(
            "SELECT MAX(deleted_before) AS ts FROM retention_marks \
             WHERE group_id = $1 AND sample_table IN ({})",
            feeding.join(", ")
        ),
        Text => system_id,
    )?;
    Ok(MaybeTs::single(rows))
}

/// Whether retention has looked at `system_id` before (and so made the 5-minute aggregates of
/// every sample it had then; the roller has made them for every hour rolled since).
pub fn aggregated(conn: &mut DbConnection, system_id: &str) -> Result<bool, DbError> {
    Ok(furthest_mark(conn, system_id)?.is_some())
}

/// Records that the aggregates of `system_id` are complete (nothing deleted yet).
pub fn mark_aggregated(conn: &mut DbConnection, system_id: &str) -> Result<(), DbError> {
    for table in SampleTable::ALL.into_iter().filter(|t| t.feeds_rollups()) {
        execute!(
            conn,
            "INSERT INTO retention_marks (sample_table, group_id, deleted_before) \
             VALUES ($1, $2, $3) ON CONFLICT (sample_table, group_id) DO NOTHING",
            Text => table.name(),
            Text => system_id,
            BigInt => i64::MIN,
        )?;
    }
    Ok(())
}

/// Hours of `system_id` starting before this may have lost samples their rollups were made from
/// (or that their first intervals reach back to, up to `reach_ms`): those that have rows are
/// never rolled again. `None` while nothing of the system was deleted.
pub fn frozen_before(
    conn: &mut DbConnection,
    system_id: &str,
    reach_ms: i64,
) -> Result<Option<i64>, DbError> {
    Ok(furthest_mark(conn, system_id)?
        .filter(|ts| *ts > i64::MIN)
        .map(|ts| ts.saturating_add(reach_ms)))
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

/// Records that `table` may hold no row of `group` before `before` from now on (never moves
/// back).
pub fn mark_deleted(
    conn: &mut DbConnection,
    table: SampleTable,
    group: &str,
    before: i64,
) -> Result<(), DbError> {
    execute!(
        conn,
        "INSERT INTO retention_marks (sample_table, group_id, deleted_before) VALUES ($1, $2, $3) \
         ON CONFLICT (sample_table, group_id) DO UPDATE SET deleted_before = excluded.deleted_before \
         WHERE retention_marks.deleted_before < excluded.deleted_before",
        Text => table.name(),
        Text => group,
        BigInt => before,
    )?;
    Ok(())
}

/// The furthest `table` was deleted in any group (epoch ms), `None` when nothing was.
pub fn deleted_before(conn: &mut DbConnection, table: SampleTable) -> Result<Option<i64>, DbError> {
    let rows = load!(
        conn,
        MaybeTs,
        "SELECT MAX(deleted_before) AS ts FROM retention_marks WHERE sample_table = $1",
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

/// Deletes at most `limit` rows of `table` in `group` with `ts < before`; returns how many.
pub fn delete_batch(
    conn: &mut DbConnection,
    table: SampleTable,
    group: &str,
    before: i64,
    limit: usize,
) -> Result<usize, DbError> {
    let (column, _) = table.group();
    let name = table.name();
    // Neither backend deletes with a LIMIT: the rows are picked by their physical id (Postgres'
    // ctid, which `= ANY(ARRAY(…))` turns into a TID scan; SQLite's rowid) through the
    // (group, ts) index.
    let sql = match conn {
        DbConnection::Postgres(_) => format!(
            "DELETE FROM {name} WHERE ctid = ANY(ARRAY( \
             SELECT ctid FROM {name} WHERE {column} = $1 AND ts < $2 LIMIT {limit}))"
        ),
        DbConnection::Sqlite(_) => format!(
            "DELETE FROM {name} WHERE rowid IN \
             (SELECT rowid FROM {name} WHERE {column} = $1 AND ts < $2 LIMIT {limit})"
        ),
    };
    Ok(execute!(conn, sql, Text => group, BigInt => before)?)
}

/// How many rows of `table` are older than `before`: one statement, an indexed count per group
/// (the tables have no index on `ts` alone).
pub fn count_before(
    conn: &mut DbConnection,
    table: SampleTable,
    before: i64,
) -> Result<i64, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = Nullable<BigInt>)]
        rows: Option<i64>,
    }
    let (column, catalog) = table.group();
    let counted = load!(
        conn,
        Count,
        format!(
            "SELECT CAST(SUM((SELECT COUNT(*) FROM {name} t \
             WHERE t.{column} = g.{column} AND t.ts < $1)) AS BIGINT) AS rows FROM {catalog} g",
            name = table.name()
        ),
        BigInt => before,
    )?;
    Ok(counted.first().and_then(|c| c.rows).unwrap_or(0))
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
