//! Retention: raw samples are deleted when they are older than their table's [`Policy`] says, the
//! aggregates after their own period, rollups never.
//!
//! What it must never do: delete a sample a rollup still needs, or a sample the user brought.
//! Rows an upgrade or an `import-legacy` inserted (a group's rows inside an import's span,
//! `db::retention::imported_spans`) are kept forever unless the operator names a period for
//! imported rows. Two things hold samples back, both read in each deleting transaction: the
//! pending ranges ingest leaves for the roller (and the counter reach before them) and the claims
//! of running recomputes. Where a system's samples may be gone, its hours (widened by the reach)
//! are frozen: the roller and recompute leave their rows as they are (`db::retention::frozen`),
//! since rolling them again from what is left would change them.
//!
//! Nor does it surprise: when a table held rows older than its period at the start, no pass has
//! ever gone through that table, and its period is only the default, the job leaves the table
//! alone and says, once an hour, what it is waiting for (a period named for the table).
//!
//! Before a system's samples can go, its aggregates exist: the roller makes them for every hour it
//! rolls, and the first pass that meets a system makes them for every sample the system had
//! before (a database from before aggregates, or a legacy upgrade).
//!
//! Deleting runs off the ingest path: on the hub that leads the job (`cluster`), in transactions
//! of [`BATCH_ROWS`] rows, each followed by a pause nine times as long as it took, so retention
//! holds the database (SQLite's one writer, and on a small machine its CPU and disk) for at most a
//! tenth of the time and ingest keeps its pace.

pub mod policy;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::db::retention::{self as store, Origin, RowSpan, SampleTable};
use crate::db::rollups::lock_system_for_roll;
use crate::db::{Database, DbError};
use crate::time_ranges::TimeRanges;
pub use policy::{Keep, Policy, PolicyError};

/// Rows deleted per transaction.
pub const BATCH_ROWS: usize = 2_000;
/// After each of its transactions a pass rests this many times as long as the transaction took.
const REST_FACTOR: u32 = 9;
/// The shortest rest, so waiting writers always go first.
const MIN_REST: Duration = Duration::from_millis(2);
/// How often the job runs by default.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(600);
/// How often a job that waits for a period to be named says so.
const WAITING_SAID_EVERY: Duration = Duration::from_secs(3_600);
/// SQLite pages handed back to the file system per transaction.
const PAGES_PER_STEP: u32 = 2_000;

/// Retention as a hub runs it.
#[derive(Debug, Clone)]
pub struct Retention {
    pub policy: Policy,
    /// How often the job runs.
    pub every: Duration,
    pub rollup: crate::rollup::Settings,
    /// After each transaction a pass rests this many times as long as it took (nine: retention
    /// holds the database a tenth of the time at most). A test that only checks what is deleted
    /// sets 0.
    pub rest_factor: u32,
}

impl Retention {
    pub fn new(policy: Policy) -> Retention {
        Retention {
            policy,
            every: DEFAULT_EVERY,
            rollup: crate::rollup::Settings::default(),
            rest_factor: REST_FACTOR,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Rows deleted, per table (imported ones included).
    pub deleted: BTreeMap<SampleTable, u64>,
    /// Of those, the rows an import brought, per table.
    pub deleted_imported: BTreeMap<SampleTable, u64>,
    /// Systems whose samples got their 5-minute aggregates made by this pass.
    pub aggregated_systems: usize,
    /// SQLite: the pages still free in the file after the pass gave space back; `None` on
    /// Postgres or a file that cannot shrink.
    pub free_pages: Option<i64>,
    /// Audit rows deleted.
    pub deleted_audit: u64,
}

impl PassReport {
    pub fn total_deleted(&self) -> u64 {
        self.deleted.values().sum()
    }
}

/// One pass at time `now` (epoch ms): the aggregates of systems met for the first time, then every
/// table with a period, group by group, a batch at a time (collected rows, then imported rows when
/// a period is named for them), then (SQLite) the space back.
pub async fn run_pass(
    database: &Database,
    retention: &Retention,
    now: i64,
) -> Result<PassReport, DbError> {
    pass_leaving(database, retention, now, &BTreeSet::new()).await
}

/// [`run_pass`], leaving the tables of `waiting` alone.
async fn pass_leaving(
    database: &Database,
    retention: &Retention,
    now: i64,
    waiting: &BTreeSet<SampleTable>,
) -> Result<PassReport, DbError> {
    let mut report = PassReport::default();
    let reach = retention.rollup.reach_ms();
    for system_id in database
        .run(|conn| store::groups(conn, SampleTable::Energy))
        .await?
    {
        if make_aggregates(database, &system_id, retention.rest_factor).await? {
            report.aggregated_systems += 1;
        }
    }
    for table in SampleTable::ALL {
        if waiting.contains(&table) {
            continue;
        }
        let mut deleted = BTreeMap::new();
        for (origin, keep) in periods(&retention.policy, table) {
            let Some(target) = keep.cutoff(now) else {
                continue;
            };
            for group in database.run(move |conn| store::groups(conn, table)).await? {
                loop {
                    let group = group.clone();
                    let started = std::time::Instant::now();
                    let rows = database
                        .run_write(move |conn| {
                            let before = if table.feeds_rollups() {
                                // Rolls of the system wait, so none reads what this deletes.
                                lock_system_for_roll(conn, &group)?;
                                let needed = store::rollups_need_from(conn, &group, reach)?;
                                needed.map_or(target, |needed| needed.min(target))
                            } else {
                                target
                            };
                            store::mark_deleted(conn, origin, table, &group, before)?;
                            let ranges = store::deletable(conn, table, &group, origin, before)?;
                            store::delete_batch(conn, table, &group, &ranges, BATCH_ROWS)
                        })
                        .await?;
                    *deleted.entry(origin).or_insert(0u64) += rows as u64;
                    if rows < BATCH_ROWS {
                        break;
                    }
                    rest(started, retention.rest_factor).await;
                }
            }
        }
        let imported = deleted.get(&Origin::Imported).copied().unwrap_or(0);
        let total: u64 = deleted.values().sum();
        if total > 0 {
            tracing::info!(
                table = table.name(),
                rows = total,
                imported,
                "retention deleted old rows"
            );
            report.deleted.insert(table, total);
            if imported > 0 {
                report.deleted_imported.insert(table, imported);
            }
        }
    }
    if let Some(cutoff) = retention.policy.keep_audit().cutoff(now) {
        loop {
            let started = std::time::Instant::now();
            let rows = database
                .run_write(move |conn| {
                    crate::db::audit::delete_before(conn, cutoff, BATCH_ROWS as i64)
                })
                .await?;
            report.deleted_audit += rows as u64;
            if rows < BATCH_ROWS {
                break;
            }
            rest(started, retention.rest_factor).await;
        }
        if report.deleted_audit > 0 {
            tracing::info!(
                table = "audit_events",
                rows = report.deleted_audit,
                "retention deleted old rows"
            );
        }
    }
    if report.total_deleted() > 0 || report.deleted_audit > 0 {
        report.free_pages = give_back_space(database, retention.rest_factor).await?;
    }
    Ok(report)
}

/// The periods a pass applies to `table`: its collected rows' (every aggregate row is the hub's
/// own), and its imported rows' when the table is raw.
fn periods(policy: &Policy, table: SampleTable) -> Vec<(Origin, Keep)> {
    std::iter::once((Origin::Collected, policy.keep(table)))
        .chain(
            policy
                .keep_imported(table)
                .map(|keep| (Origin::Imported, keep)),
        )
        .collect()
}

/// Rests after a transaction that began at `started`: `factor` times its length.
async fn rest(started: std::time::Instant, factor: u32) {
    tokio::time::sleep((started.elapsed() * factor).max(MIN_REST)).await;
}

/// Makes the aggregates of every sample `system_id` has, for each aggregate table an earlier pass
/// did not make them in; returns whether it made any.
async fn make_aggregates(
    database: &Database,
    system_id: &str,
    rest_factor: u32,
) -> Result<bool, DbError> {
    let id = system_id.to_owned();
    let made = database
        .run(move |conn| store::aggregates_made(conn, &id))
        .await?;
    let missing: Vec<SampleTable> = SampleTable::AGGREGATES
        .into_iter()
        .filter(|table| !made.contains(table))
        .collect();
    if missing.is_empty() {
        return Ok(false);
    }
    make_aggregates_of(database, system_id, &missing, rest_factor).await?;
    mark_made(database, system_id, &missing).await?;
    Ok(true)
}

async fn mark_made(
    database: &Database,
    system_id: &str,
    tables: &[SampleTable],
) -> Result<(), DbError> {
    let (id, tables) = (system_id.to_owned(), tables.to_vec());
    database
        .run_write(move |conn| {
            for table in &tables {
                store::mark_made(conn, *table, &id)?;
            }
            Ok(())
        })
        .await
}

/// The aggregates of every sample of `system_id` in `tables`' raw tables, a day of local hours per
/// transaction.
async fn make_aggregates_of(
    database: &Database,
    system_id: &str,
    tables: &[SampleTable],
    rest_factor: u32,
) -> Result<(), DbError> {
    let (id, raw): (String, Vec<SampleTable>) = (
        system_id.to_owned(),
        tables.iter().filter_map(|t| t.aggregated_from()).collect(),
    );
    let found = database
        .run(move |conn| {
            let mut first = None;
            let mut last = None;
            for table in raw {
                if let Some((oldest, newest)) = store::span_of_system(conn, table, &id)? {
                    first = Some(first.map_or(oldest, |f: i64| f.min(oldest)));
                    last = Some(last.map_or(newest, |l: i64| l.max(newest)));
                }
            }
            let (systems, _) = crate::db::catalog::load_structure(conn, &id)?;
            Ok(first
                .zip(last)
                .zip(systems.first().map(crate::local_time::timezone)))
        })
        .await?;
    let Some(((first, last), tz)) = found else {
        return Ok(());
    };
    tracing::info!(
        system = system_id,
        "making the aggregates of the samples stored before retention ran"
    );
    let hours: Vec<(i64, i64)> = crate::local_time::hours(tz, first, last + 1)
        .into_iter()
        .map(|hour| (hour.start, hour.end))
        .collect();
    for chunk in hours.chunks(24) {
        let (Some(from), Some(to)) = (chunk.first().map(|h| h.0), chunk.last().map(|h| h.1)) else {
            continue;
        };
        let id = system_id.to_owned();
        let started = std::time::Instant::now();
        database
            .run_write(move |conn| {
                lock_system_for_roll(conn, &id)?;
                crate::rollup::remake_aggregates(conn, &id, tz, from, to)
            })
            .await?;
        rest(started, rest_factor).await;
    }
    Ok(())
}

/// SQLite: hands the free pages back to the file system a step at a time, then checkpoints so the
/// file shrinks now.
async fn give_back_space(database: &Database, rest_factor: u32) -> Result<Option<i64>, DbError> {
    let free = loop {
        let started = std::time::Instant::now();
        let left = database
            .run_write(|conn| store::give_back_space(conn, PAGES_PER_STEP))
            .await?;
        match left {
            Some(pages) if pages > 0 => rest(started, rest_factor).await,
            _ => break left,
        }
    };
    if free.is_some() {
        database.run(store::checkpoint).await?;
    }
    Ok(free)
}

/// What a hub's retention job leaves alone until a period is named: per table, the rows older
/// than its period that were there when the hub started. Shared with `ServerInfo`; `None` until
/// the job has looked.
#[derive(Debug, Clone, Default)]
pub struct Waiting(Arc<RwLock<Option<BTreeMap<SampleTable, RowSpan>>>>);

impl Waiting {
    /// The tables waited on, once the job has looked.
    pub fn tables(&self) -> Option<BTreeMap<SampleTable, RowSpan>> {
        self.0.read().map(|known| known.clone()).unwrap_or_default()
    }

    fn set(&self, tables: BTreeMap<SampleTable, RowSpan>) {
        if let Ok(mut known) = self.0.write() {
            *known = Some(tables);
        }
    }
}

/// A hub's retention as `ServerInfo` shows it: the policy and what the job waits for.
#[derive(Debug, Clone)]
pub struct RetentionView {
    pub policy: Policy,
    pub waiting: Waiting,
}

/// Runs a pass every `retention.every` while this hub leads the job, until `shutdown` completes.
/// The first pass, too, runs `every` after the start: a user who just upgraded has that long to
/// look at samples the policy is about to delete (the `serve` command says which). Before any
/// pass, the job looks at what is stored: tables that would surprise (see the module) are left
/// alone for the life of the process, and said so once an hour.
pub async fn run(
    database: Database,
    retention: Retention,
    metrics: crate::metrics::RetentionMetrics,
    leadership: crate::cluster::Leadership,
    waiting: Waiting,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use crate::cluster::{Job, Turn, Turns};
    tokio::pin!(shutdown);
    let waited = loop {
        match plan(&database, &retention.policy, crate::db::now_ms()).await {
            Ok(plans) => {
                break plans
                    .into_iter()
                    .filter(|plan| plan.waits)
                    .map(|plan| (plan.table, plan.collected))
                    .collect::<BTreeMap<_, _>>();
            }
            Err(error) => {
                tracing::warn!(%error, "retention could not look at the stored samples; trying again in a minute");
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
            }
        }
    };
    for (table, rows) in &waited {
        metrics.waiting(*table, rows.rows);
    }
    waiting.set(waited.clone());
    let skipped: BTreeSet<SampleTable> = waited.keys().copied().collect();
    let mut said: Option<std::time::Instant> = None;
    let mut turns = Turns::new(Job::Retention, leadership);
    loop {
        if !waited.is_empty() && said.is_none_or(|at| at.elapsed() >= WAITING_SAID_EVERY) {
            say_waiting(&retention.policy, &waited);
            said = Some(std::time::Instant::now());
        }
        match turns.next(retention.every, shutdown.as_mut()).await {
            Turn::Stop => return,
            Turn::Follow => continue,
            Turn::Lead { .. } => {}
        }
        let pass = pass_leaving(&database, &retention, crate::db::now_ms(), &skipped);
        tokio::select! {
            _ = &mut shutdown => return,
            outcome = pass => match outcome {
                Ok(report) => {
                    metrics.pass(&report.deleted);
                    tracing::debug!(rows = report.total_deleted(), "retention pass done");
                }
                Err(error) => tracing::warn!(%error, "retention pass failed; retrying at the next"),
            },
        }
    }
}

fn say_waiting(policy: &Policy, waited: &BTreeMap<SampleTable, RowSpan>) {
    for (table, rows) in waited {
        let keep = policy.keep(*table);
        tracing::warn!(
            table = table.name(),
            rows = rows.rows,
            oldest = %show_time(rows.oldest),
            newest = %show_time(rows.newest),
            "retention waits: these rows were older than {keep} when this hub started and no period was named for the table, so none is deleted; --retention {table}={keep} deletes them (and follows {keep} from then on), --retention {table}=forever keeps them",
            table = table.name(),
        );
    }
}

/// An epoch-ms time as people read it (UTC, RFC 3339), or `-`.
pub fn show_time(ts: Option<i64>) -> String {
    ts.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || "-".to_owned(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}

/// What the next pass does to one table, at a time: the dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    pub table: SampleTable,
    /// The period of the rows solarhub collected (and of aggregate rows).
    pub keep: Keep,
    /// The period of imported rows; `None` for an aggregate table.
    pub keep_imported: Option<Keep>,
    /// Collected rows older than `keep`: the next pass deletes them (unless it `waits`).
    pub collected: RowSpan,
    /// Imported rows older than `keep_imported`: the next pass deletes them.
    pub imported_due: RowSpan,
    /// Imported rows older than `keep` that stay because they were imported.
    pub imported_kept: RowSpan,
    /// The next pass leaves the table alone: its due collected rows are there before any pass
    /// went through it and its period was not named.
    pub waits: bool,
}

/// What the next pass at `now` would delete from every table, collected and imported rows apart
/// (some may stay a little longer for the roller or a recompute). One indexed count per group and
/// range.
pub async fn plan(
    database: &Database,
    policy: &Policy,
    now: i64,
) -> Result<Vec<TablePlan>, DbError> {
    let policy = policy.clone();
    database
        .run(move |conn| {
            let mut plans = Vec::new();
            for table in SampleTable::ALL {
                let keep = policy.keep(table);
                let keep_imported = policy.keep_imported(table);
                let older = keep
                    .cutoff(now)
                    .map_or_else(TimeRanges::empty, TimeRanges::before);
                let imported_older = keep_imported
                    .and_then(|keep| keep.cutoff(now))
                    .map_or_else(TimeRanges::empty, TimeRanges::before);
                let mut plan = TablePlan {
                    table,
                    keep,
                    keep_imported,
                    collected: RowSpan::default(),
                    imported_due: RowSpan::default(),
                    imported_kept: RowSpan::default(),
                    waits: false,
                };
                if older.is_empty() && imported_older.is_empty() {
                    plans.push(plan);
                    continue;
                }
                for group in store::groups(conn, table)? {
                    let spans = store::imported_spans(conn, table, &group)?;
                    let collected = older.minus(&spans);
                    let imported_due = spans.intersect(&imported_older);
                    let imported_kept = spans.intersect(&older).minus(&imported_older);
                    plan.collected
                        .add(store::count_in(conn, table, &group, &collected)?);
                    plan.imported_due
                        .add(store::count_in(conn, table, &group, &imported_due)?);
                    plan.imported_kept
                        .add(store::count_in(conn, table, &group, &imported_kept)?);
                }
                plan.waits = plan.collected.rows > 0
                    && !policy.is_named(table)
                    && !store::settled(conn, table)?;
                plans.push(plan);
            }
            Ok(plans)
        })
        .await
}

/// One table as `ServerInfo` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStatus {
    pub table: SampleTable,
    /// This hub's period; `Forever` also when this hub runs no retention.
    pub keep: Keep,
    pub oldest: Option<i64>,
    /// How far collected rows (every row of an aggregate table) were deleted.
    pub deleted_before: Option<i64>,
    /// How far imported rows were deleted.
    pub imported_deleted_before: Option<i64>,
}

/// Every table retention deletes from, with `policy`'s period and what it holds.
pub async fn status(
    database: &Database,
    policy: Option<&Policy>,
) -> Result<Vec<TableStatus>, DbError> {
    let keeps: Vec<(SampleTable, Keep)> = SampleTable::ALL
        .into_iter()
        .map(|table| (table, policy.map_or(Keep::Forever, |p| p.keep(table))))
        .collect();
    database
        .run(move |conn| {
            keeps
                .into_iter()
                .map(|(table, keep)| {
                    Ok(TableStatus {
                        table,
                        keep,
                        oldest: store::oldest(conn, table)?,
                        deleted_before: store::deleted_before(conn, Origin::Collected, table)?,
                        imported_deleted_before: store::deleted_before(
                            conn,
                            Origin::Imported,
                            table,
                        )?,
                    })
                })
                .collect()
        })
        .await
}

/// The dry run as people read it: per table, its periods, then what the next pass at `now` deletes
/// of the collected and of the imported rows, and what it keeps.
pub struct DryRun<'a> {
    pub now: i64,
    pub plans: &'a [TablePlan],
    /// The audit trail: how long it is kept, and how many of its rows the next pass deletes.
    pub audit: (Keep, i64),
}

impl std::fmt::Display for DryRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let span = |rows: &RowSpan| {
            format!(
                "{} rows ({} .. {})",
                rows.rows,
                show_time(rows.oldest),
                show_time(rows.newest)
            )
        };
        writeln!(
            f,
            "retention dry run at {}: what the next pass of a hub started now with these settings \
             deletes (nothing is deleted now; rollups are kept forever)",
            show_time(Some(self.now))
        )?;
        for plan in self.plans {
            let table = plan.table.name();
            match plan.keep_imported {
                Some(imported) => writeln!(
                    f,
                    "{table}: collected rows kept {}, imported rows kept {imported}",
                    plan.keep
                )?,
                None => writeln!(f, "{table}: kept {}", plan.keep)?,
            }
            let collected = if plan.collected.rows == 0 {
                "nothing to delete".to_owned()
            } else if plan.waits {
                format!(
                    "waits, deletes nothing: {} older than {} were there before any pass went \
                     through the table and no period is named for it (--retention {table}={} \
                     deletes them, --retention {table}=forever keeps them)",
                    span(&plan.collected),
                    plan.keep,
                    plan.keep
                )
            } else {
                format!("deletes {}", span(&plan.collected))
            };
            let label = if plan.keep_imported.is_some() {
                "collected"
            } else {
                "rows"
            };
            writeln!(f, "  {label}: {collected}")?;
            if plan.keep_imported.is_some() {
                let mut said = false;
                if plan.imported_due.rows > 0 {
                    writeln!(f, "  imported: deletes {}", span(&plan.imported_due))?;
                    said = true;
                }
                if plan.imported_kept.rows > 0 {
                    writeln!(
                        f,
                        "  imported: keeps {} older than {} (--retention-imported {table}=PERIOD \
                         deletes them)",
                        span(&plan.imported_kept),
                        plan.keep
                    )?;
                    said = true;
                }
                if !said {
                    writeln!(f, "  imported: nothing to delete")?;
                }
            }
        }
        let (keep, rows) = self.audit;
        writeln!(f, "audit_events: kept {keep}")?;
        match rows {
            0 => writeln!(f, "  rows: nothing to delete")?,
            rows => writeln!(f, "  rows: deletes {rows} older than {keep}")?,
        }
        Ok(())
    }
}
