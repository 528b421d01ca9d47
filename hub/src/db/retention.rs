//! Retention in the database: which sample tables there are, what imports brought (`imported_spans`),
//! how far each sample table has been deleted, apart for collected and imported rows
//! (`retention_marks`, `retention_imported_marks`) and what that freezes, recomputes' claims
//! (`retention_holds`), deleting in small batches, counting what a pass would delete, the oldest
//! row kept, and giving SQLite its space back.

use std::collections::{BTreeMap, BTreeSet};

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::raw_sql::{Id, MaybeTs};
use super::{DbConnection, DbError};
use crate::time_ranges::TimeRanges;

/// The width of an aggregate bucket.
pub const BUCKET_MS: i64 = 5 * 60_000;

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

/// Postgres: whether the server's autovacuum is off, so the rows the hub updates and deletes all
/// the time are never reused (decision 0079 has why it matters and what was measured). `false` on
/// SQLite.
pub fn autovacuum_off(conn: &mut DbConnection) -> Result<bool, DbError> {
    let DbConnection::Postgres(pg) = conn else {
        return Ok(false);
    };
    let setting: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
        "current_setting('autovacuum')",
    ))
    .get_result(pg)?;
    Ok(setting == "off")
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
