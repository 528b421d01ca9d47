//! The roller: rolls the pending ranges ingest leaves, every few seconds, on the hub that leads it
//! (`cluster`), remembering what it rolled (`incremental`) so a pass reads what arrived. What it
//! writes is what a recompute from raw samples writes, so two hubs rolling the same range (during a
//! hand-over) write the same rows; a hub that takes the roller over starts without memory and
//! rebuilds each device's open hour once.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::incremental::{PassCounts, Tail, roll_system};
use super::{RollReport, Settings, pending_by_system};
use crate::db::{Database, DbError};

/// How often pending ranges are rolled by default.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(2);
/// Systems rolled at once. Two, not four: on Postgres each is a transaction writing beside
/// ingest's, and with four the batches' acks queued behind them (capacity bench, 10,000 devices,
/// 3 minutes on one machine: ack p99 205–246 ms with four, 126–135 with two, 171 with one, the
/// roller's lag 3.7–3.9 s with two or four and 11.5 s with one; BENCHMARKS.md).
const SYSTEMS_AT_ONCE: usize = 2;
/// A device not rolled for this long is forgotten (its memory is made again if it comes back).
const FORGET_AFTER: Duration = Duration::from_secs(2 * 3_600);

/// The roller and its memory of the devices it rolled.
pub struct Roller {
    database: Database,
    settings: Settings,
    tails: HashMap<String, Tail>,
}

impl Roller {
    pub fn new(database: Database, settings: Settings) -> Roller {
        Roller {
            database,
            settings,
            tails: HashMap::new(),
        }
    }

    /// Forgets every device (another hub may have rolled while this one did not lead).
    pub fn forget(&mut self) {
        self.tails.clear();
    }

    /// How many devices the roller remembers.
    pub fn remembered(&self) -> usize {
        self.tails.len()
    }

    /// Rolls everything pending now, one transaction per system, a few systems at a time (on
    /// Postgres they go on in parallel; SQLite's writers take turns).
    pub async fn roll_pending(&mut self) -> Result<(RollReport, PassCounts), DbError> {
        self.tails
            .retain(|_, tail| tail.used.elapsed() < FORGET_AFTER);
        let by_system = self.database.run(pending_by_system).await?;
        let mut report = RollReport::default();
        let mut counts = PassCounts::default();
        let mut systems = by_system.into_iter();
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < SYSTEMS_AT_ONCE {
                let Some((system_id, ranges)) = systems.next() else {
                    break;
                };
                // Handed to the pass (and back when it committed): not copied.
                let known: BTreeMap<String, Tail> = ranges
                    .iter()
                    .filter_map(|range| {
                        let tail = self.tails.remove(&range.device_id)?;
                        Some((range.device_id.clone(), tail))
                    })
                    .collect();
                // The first attempt takes them; a retried one finds none and rebuilds.
                let known = std::sync::Mutex::new(Some(known));
                let (database, settings) = (self.database.clone(), self.settings);
                running.spawn(async move {
                    database
                        .run_write(move |conn| {
                            let known = known
                                .lock()
                                .ok()
                                .and_then(|mut known| known.take())
                                .unwrap_or_default();
                            roll_system(conn, &system_id, &ranges, settings, known)
                        })
                        .await
                });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            // A failed pass leaves its devices forgotten: the next one rebuilds them.
            let rolled = done
                .map_err(|error| DbError::Unavailable(format!("a roll task failed: {error}")))??;
            report += rolled.report;
            counts += rolled.counts;
            for (device, tail) in rolled.tails {
                match tail {
                    Some(tail) => self.tails.insert(device, tail),
                    None => self.tails.remove(&device),
                };
            }
        }
        Ok((report, counts))
    }
}

/// Rolls everything pending now without memory: every device's hours are rebuilt from raw samples
/// (a one-off roll; the served roller keeps a [`Roller`]).
pub async fn roll_pending(database: &Database, settings: Settings) -> Result<RollReport, DbError> {
    Ok(Roller::new(database.clone(), settings)
        .roll_pending()
        .await?
        .0)
}

/// Rolls pending ranges every `every` until `shutdown` completes, counting into `metrics`.
pub async fn run(
    database: Database,
    every: Duration,
    settings: Settings,
    leadership: crate::cluster::Leadership,
    metrics: crate::metrics::RollerMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use crate::cluster::{Job, Turn, Turns};
    tokio::pin!(shutdown);
    let mut roller = Roller::new(database, settings);
    let mut turns = Turns::new(Job::Roller, leadership);
    loop {
        match turns.next(every, shutdown.as_mut()).await {
            Turn::Stop => return,
            Turn::Follow => continue,
            // Another hub may have rolled meanwhile: what this one remembers may be behind.
            Turn::Lead { took_over: true } => roller.forget(),
            Turn::Lead { took_over: false } => {}
        }
        let started = Instant::now();
        match roller.roll_pending().await {
            Ok((report, counts)) => {
                metrics.pass(started.elapsed(), counts, roller.remembered());
                if report.rows > 0 {
                    tracing::debug!(
                        hours = report.hours,
                        days = report.days,
                        rows = report.rows,
                        samples_read = counts.samples_read,
                        device_hours_rebuilt = counts.device_hours_rebuilt,
                        "rolled"
                    );
                }
            }
            Err(error) => {
                // What the roller remembers may be ahead of what was committed.
                roller.forget();
                tracing::warn!(%error, "rollups not rolled this round; retrying");
            }
        }
    }
}
