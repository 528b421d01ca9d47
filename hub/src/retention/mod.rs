//! Retention: raw samples are deleted when they are older than their table's [`Policy`] says, the
//! 5-minute aggregates after their own period, rollups never.
//!
//! What it must never do: delete a sample a rollup still needs. Two things hold samples back, both
//! read in each deleting transaction: the pending ranges ingest leaves for the roller (and the
//! counter reach before them) and the claims of running recomputes. Once a system's samples are
//! deleted up to a time, its hours before that time plus the reach are frozen: the roller and
//! recompute leave their rows as they are (`db::retention::frozen_before`), since rolling them
//! again from what is left would change them.
//!
//! Before a system's samples can go, its 5-minute aggregates exist: the roller makes them for
//! every hour it rolls, and the first pass that meets a system makes them for every sample the
//! system had before (a database from before aggregates, or a legacy upgrade).
//!
//! Deleting runs off the ingest path: on the hub that leads the job (`cluster`), in transactions
//! of [`BATCH_ROWS`] rows, each followed by a pause nine times as long as it took, so retention
//! holds the database (SQLite's one writer, and on a small machine its CPU and disk) for at most a
//! tenth of the time and ingest keeps its pace.

pub mod policy;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::db::retention::{self as store, BUCKET_MS, SampleTable};
use crate::db::rollups::{lock_system_for_roll, sample_span};
use crate::db::{Database, DbError};
pub use policy::{Keep, Policy, PolicyError};

/// Rows deleted per transaction.
pub const BATCH_ROWS: usize = 2_000;
/// After each of its transactions a pass rests this many times as long as the transaction took.
const REST_FACTOR: u32 = 9;
/// The shortest rest, so waiting writers always go first.
const MIN_REST: Duration = Duration::from_millis(2);
/// How often the job runs by default.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(600);
/// SQLite pages handed back to the file system per transaction.
const PAGES_PER_STEP: u32 = 2_000;
/// The 5-minute aggregates of existing samples are made a day per transaction.
const AGGREGATE_CHUNK_MS: i64 = 24 * 3_600_000;

/// Retention as a hub runs it.
#[derive(Debug, Clone)]
pub struct Retention {
    pub policy: Policy,
    /// How often the job runs.
    pub every: Duration,
    pub rollup: crate::rollup::Settings,
}

impl Retention {
    pub fn new(policy: Policy) -> Retention {
        Retention {
            policy,
            every: DEFAULT_EVERY,
            rollup: crate::rollup::Settings::default(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Rows deleted, per table.
    pub deleted: BTreeMap<SampleTable, u64>,
    /// Systems whose samples got their 5-minute aggregates made by this pass.
    pub aggregated_systems: usize,
    /// SQLite: the pages still free in the file after the pass gave space back; `None` on
    /// Postgres or a file that cannot shrink.
    pub free_pages: Option<i64>,
}

impl PassReport {
    pub fn total_deleted(&self) -> u64 {
        self.deleted.values().sum()
    }
}

/// One pass at time `now` (epoch ms): the aggregates of systems met for the first time, then every
/// table with a period, group by group, a batch at a time, then (SQLite) the space back.
pub async fn run_pass(
    database: &Database,
    retention: &Retention,
    now: i64,
) -> Result<PassReport, DbError> {
    let mut report = PassReport::default();
    let reach = retention.rollup.reach_ms();
    for system_id in database
        .run(|conn| store::groups(conn, SampleTable::Energy))
        .await?
    {
        if make_aggregates(database, &system_id).await? {
            report.aggregated_systems += 1;
        }
    }
    for table in SampleTable::ALL {
        let Some(target) = retention.policy.keep(table).cutoff(now) else {
            continue;
        };
        let mut deleted = 0u64;
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
                        store::mark_deleted(conn, table, &group, before)?;
                        store::delete_batch(conn, table, &group, before, BATCH_ROWS)
                    })
                    .await?;
                deleted += rows as u64;
                if rows < BATCH_ROWS {
                    break;
                }
                rest(started).await;
            }
        }
        if deleted > 0 {
            tracing::info!(
                table = table.name(),
                rows = deleted,
                "retention deleted old rows"
            );
            report.deleted.insert(table, deleted);
        }
    }
    if report.total_deleted() > 0 {
        report.free_pages = give_back_space(database).await?;
    }
    Ok(report)
}

/// Rests after a transaction that began at `started`: [`REST_FACTOR`] times its length.
async fn rest(started: std::time::Instant) {
    tokio::time::sleep((started.elapsed() * REST_FACTOR).max(MIN_REST)).await;
}

/// Makes the 5-minute aggregates of every sample `system_id` has, unless an earlier pass did;
/// returns whether it made them.
async fn make_aggregates(database: &Database, system_id: &str) -> Result<bool, DbError> {
    let id = system_id.to_owned();
    if database
        .run(move |conn| store::aggregated(conn, &id))
        .await?
    {
        return Ok(false);
    }
    let id = system_id.to_owned();
    if let Some((first, last)) = database.run(move |conn| sample_span(conn, &id)).await? {
        let end = last.div_euclid(BUCKET_MS) * BUCKET_MS + BUCKET_MS;
        let mut from = first.div_euclid(BUCKET_MS) * BUCKET_MS;
        tracing::info!(
            system = system_id,
            "making the 5-minute aggregates of the samples stored before retention ran"
        );
        while from < end {
            let to = (from + AGGREGATE_CHUNK_MS).min(end);
            let id = system_id.to_owned();
            let started = std::time::Instant::now();
            database
                .run_write(move |conn| {
                    lock_system_for_roll(conn, &id)?;
                    store::aggregate(conn, &id, from, to)
                })
                .await?;
            from = to;
            rest(started).await;
        }
    }
    let id = system_id.to_owned();
    database
        .run_write(move |conn| store::mark_aggregated(conn, &id))
        .await?;
    Ok(true)
}

/// SQLite: hands the free pages back to the file system a step at a time, then checkpoints so the
/// file shrinks now.
async fn give_back_space(database: &Database) -> Result<Option<i64>, DbError> {
    let free = loop {
        let started = std::time::Instant::now();
        let left = database
            .run_write(|conn| store::give_back_space(conn, PAGES_PER_STEP))
            .await?;
        match left {
            Some(pages) if pages > 0 => rest(started).await,
            _ => break left,
        }
    };
    if free.is_some() {
        database.run(store::checkpoint).await?;
    }
    Ok(free)
}

/// Runs a pass every `retention.every` while this hub leads the job, until `shutdown` completes.
/// The first pass, too, runs `every` after the start: a user who just upgraded has that long to
/// look at samples the policy is about to delete (the `serve` command says which).
pub async fn run(
    database: Database,
    retention: Retention,
    metrics: crate::metrics::RetentionMetrics,
    leadership: crate::cluster::Leadership,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(retention.every) => {}
        }
        if !leadership.leads(crate::cluster::Job::Retention) {
            continue;
        }
        let pass = run_pass(&database, &retention, crate::db::now_ms());
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

/// One table as `ServerInfo` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStatus {
    pub table: SampleTable,
    /// This hub's period; `Forever` also when this hub runs no retention.
    pub keep: Keep,
    pub oldest: Option<i64>,
    pub deleted_before: Option<i64>,
}

/// The rows of each table older than `policy` keeps at `now`: what the next pass will delete
/// (some may stay a little longer for the roller). Tables with none are left out.
pub async fn due(
    database: &Database,
    policy: &Policy,
    now: i64,
) -> Result<Vec<(SampleTable, Keep, i64)>, DbError> {
    let policy = policy.clone();
    database
        .run(move |conn| {
            let mut due = Vec::new();
            for table in SampleTable::ALL {
                let keep = policy.keep(table);
                let Some(before) = keep.cutoff(now) else {
                    continue;
                };
                let rows = store::count_before(conn, table, before)?;
                if rows > 0 {
                    due.push((table, keep, rows));
                }
            }
            Ok(due)
        })
        .await
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
                        deleted_before: store::deleted_before(conn, table)?,
                    })
                })
                .collect()
        })
        .await
}
