//! Telemetry ingest (DESIGN §4 Ingest): turns a collector's batch into sample rows and commits it
//! exactly once. A reading that breaks a rule (`check`: a device or adapter not assigned to the
//! sending collector, a battery or cell the pack did not declare, a value out of range, bad text,
//! a time before 2000 or more than five minutes ahead) is refused and reported with its kind; the
//! rest of the batch still lands.
//! The device directory (which devices exist, who may write them) is cached for a few seconds and
//! dropped whenever this hub changes the catalog.

mod check;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use solarhub_proto::contract::{battery_id, cell_id};

use crate::catalog::CatalogGeneration;
use crate::db::ingest::{self, BatchRows, CommitResult, DeviceDirectory, DeviceEntry};
use crate::db::live::LatestReading;
use crate::db::samples::{
    BatteryBankSample, BatteryCellSample, BatteryUnitSample, EnergySample, MeterSample, Values,
};
use crate::db::{Database, DbError, Retryable};

/// How far ahead of the hub's clock a reading may be stamped.
pub const MAX_FUTURE: Duration = Duration::from_secs(5 * 60);
/// How far a collector's clock may be from the hub's before its readings are refused.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// How long a device directory is trusted before it is read again.
pub const DIRECTORY_TTL: Duration = Duration::from_secs(5);

/// One poll of one device, as a collector sends it (canonical fields, DESIGN §3.2).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IncomingReading {
    pub device_id: String,
    pub adapter_id: String,
    /// UTC epoch milliseconds.
    pub ts: i64,
    pub fields: BTreeMap<String, f64>,
    pub text: BTreeMap<String, String>,
    pub batteries: Vec<IncomingBattery>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct IncomingBattery {
    pub index: i32,
    pub fields: BTreeMap<String, f64>,
    pub text: BTreeMap<String, String>,
    pub cells: Vec<(i32, BTreeMap<String, f64>)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    pub collector_id: String,
    pub seq: u64,
    pub readings: Vec<IncomingReading>,
    /// What the collector's polls did since its previous batch (data quality).
    pub polls: Vec<PollTally>,
    /// The collector's clock when it sent the batch (UTC epoch milliseconds), when it says.
    pub sent_at: Option<i64>,
}

/// The polls of one device over a stretch of time, as a collector tallies them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PollTally {
    pub device_id: String,
    /// When the stretch ended (UTC epoch milliseconds): its bucket.
    pub until: i64,
    pub polls: u32,
    pub answered: u32,
    pub timeouts: u32,
    pub exceptions: u32,
    pub other_failures: u32,
    /// Values left out, by reason (names from `solarhub_proto::contract::quality`).
    pub dropped: BTreeMap<String, u32>,
}

/// Why a reading was refused, as a bounded name (metrics label it by this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// The device is not assigned to the sending collector.
    Unassigned,
    /// Stamped too far in the future.
    Future,
    /// Stamped before 2000-01-01 (`limits::EARLIEST_MS`).
    TooOld,
    /// The device is not in the catalog.
    Unknown,
    /// The reading carries no timestamp.
    NoTimestamp,
    /// The collector's clock is too far from the hub's for its timestamps to be trusted.
    ClockSkew,
    /// The adapter named is not an adapter of the device assigned to the collector.
    AdapterMismatch,
    /// A battery the pack did not declare (or a device that is no pack reporting batteries).
    UnknownBattery,
    /// A cell its battery did not declare.
    UnknownCell,
    /// A value outside its field's plausible range.
    OutOfRange,
    /// NaN or an infinity.
    NotFinite,
    /// An id or a text too long, not a valid id, or holding control characters.
    BadText,
}

impl RefusalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::Unassigned => "unassigned",
            RefusalKind::Future => "future",
            RefusalKind::TooOld => "too_old",
            RefusalKind::Unknown => "unknown_device",
            RefusalKind::NoTimestamp => "no_timestamp",
            RefusalKind::ClockSkew => "clock_skew",
            RefusalKind::AdapterMismatch => "adapter_mismatch",
            RefusalKind::UnknownBattery => "unknown_battery",
            RefusalKind::UnknownCell => "unknown_cell",
            RefusalKind::OutOfRange => "out_of_range",
            RefusalKind::NotFinite => "not_finite",
            RefusalKind::BadText => "bad_text",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub device_id: String,
    pub ts: i64,
    pub kind: RefusalKind,
    pub reason: String,
}

impl Refusal {
    /// The refusal of a reading of `device_id`, which it repeats only as far as
    /// `limits::shown` goes (a hostile id may be megabytes long).
    pub fn new(device_id: &str, ts: i64, kind: RefusalKind, reason: String) -> Refusal {
        Refusal {
            device_id: crate::limits::shown(device_id),
            ts,
            kind,
            reason,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub seq: u64,
    pub replay: bool,
    pub stored: usize,
    pub duplicates: usize,
    pub refused: Vec<Refusal>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid batch: {0}")]
    Invalid(String),
    #[error("{0}")]
    Db(#[from] DbError),
}

impl Retryable for IngestError {
    fn is_retryable(&self) -> bool {
        matches!(self, IngestError::Db(error) if error.is_retryable())
    }
}

/// A device directory, when it was read, and at which catalog generation.
struct CachedDirectory {
    loaded: Instant,
    generation: u64,
    directory: Arc<DeviceDirectory>,
}

#[derive(Clone)]
pub struct Ingest {
    database: Database,
    generation: CatalogGeneration,
    directory: Arc<Mutex<Option<CachedDirectory>>>,
    updates: crate::live::Updates,
    metrics: crate::metrics::IngestMetrics,
    /// This hub's name in the commit announcements other hubs on the database hear.
    instance: Arc<str>,
}

impl Ingest {
    /// `generation` is the catalog generation of this process's repository: any change drops the
    /// cached directory at once (changes made by other hubs show after at most `DIRECTORY_TTL`).
    pub fn new(database: Database, generation: CatalogGeneration) -> Ingest {
        Ingest {
            database,
            generation,
            directory: Arc::new(Mutex::new(None)),
            updates: crate::live::updates(),
            metrics: crate::metrics::IngestMetrics::default(),
            instance: crate::cluster::hub_instance().into(),
        }
    }

    /// What this ingest counts (batches, samples, refusals, commit time).
    pub fn metrics(&self) -> &crate::metrics::IngestMetrics {
        &self.metrics
    }

    /// Where this ingest announces, after each commit, the systems that got new data.
    pub fn updates(&self) -> crate::live::Updates {
        self.updates.clone()
    }

    /// This hub's name in its commit announcements (`cluster`).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Forgets the cached directory (call after any catalog change).
    pub fn invalidate(&self) {
        *self
            .directory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    async fn directory(&self) -> Result<Arc<DeviceDirectory>, IngestError> {
        let generation = self.generation.current();
        let cached = self
            .directory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|cached| {
                cached.loaded.elapsed() < DIRECTORY_TTL && cached.generation == generation
            })
            .map(|cached| cached.directory.clone());
        if let Some(directory) = cached {
            return Ok(directory);
        }
        let directory = Arc::new(self.database.run(ingest::load_directory).await?);
        *self
            .directory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(CachedDirectory {
            loaded: Instant::now(),
            generation,
            directory: directory.clone(),
        });
        Ok(directory)
    }

    /// The last seq committed for `collector_id`.
    pub async fn last_seq(&self, collector_id: String) -> Result<u64, IngestError> {
        Ok(self
            .database
            .run(move |conn| ingest::last_seq(conn, &collector_id))
            .await?)
    }

    /// Records the version a collector registered with.
    pub async fn note_version(
        &self,
        collector_id: String,
        version: String,
    ) -> Result<(), IngestError> {
        Ok(self
            .database
            .run_write(move |conn| ingest::note_version(conn, &collector_id, &version))
            .await?)
    }

    /// Every collector that has streamed to this hub.
    pub async fn collectors(&self) -> Result<Vec<ingest::CollectorRow>, IngestError> {
        Ok(self.database.run(ingest::list_collectors).await?)
    }

    /// Commits `batch` (once), after refusing what the collector may not write.
    pub async fn commit(
        &self,
        batch: Batch,
        version: Option<String>,
    ) -> Result<Outcome, IngestError> {
        let prepared = self.prepare(batch).await?;
        self.commit_prepared(prepared, version).await
    }

    /// Checks `batch` and sorts it into rows and refusals, without writing anything: a stream
    /// prepares its next batch while the previous one commits.
    pub async fn prepare(&self, batch: Batch) -> Result<Prepared, IngestError> {
        if crate::catalog::id_problem(&batch.collector_id).is_some() {
            return Err(IngestError::Invalid(format!(
                "collector_id {:?} is not a valid id",
                batch.collector_id
            )));
        }
        if batch.seq == 0 {
            return Err(IngestError::Invalid("seq must start at 1".into()));
        }
        if i64::try_from(batch.seq).is_err() {
            return Err(IngestError::Invalid(format!(
                "seq {} is beyond what a collector can reach (at most {})",
                batch.seq,
                i64::MAX
            )));
        }
        let directory = self.directory().await?;
        let now = chrono::Utc::now().timestamp_millis();
        let (rows, refused, readings) = build_rows(&directory, &batch, now);
        Ok(Prepared {
            collector_id: batch.collector_id,
            seq: batch.seq,
            rows,
            refused,
            readings,
        })
    }

    /// Commits a prepared batch (once).
    pub async fn commit_prepared(
        &self,
        prepared: Prepared,
        version: Option<String>,
    ) -> Result<Outcome, IngestError> {
        let mut outcomes = self.commit_group(vec![prepared], version).await?;
        Ok(outcomes.remove(0))
    }

    /// Commits prepared batches of one stream, in order, in one transaction: a stream with
    /// several batches waiting (a collector emptying its outbox) waits for one commit, not one per
    /// batch. Every batch is still committed once, with its seq; if the transaction fails, none is.
    pub async fn commit_group(
        &self,
        group: Vec<Prepared>,
        version: Option<String>,
    ) -> Result<Vec<Outcome>, IngestError> {
        // What the writer needs, and what the acks need after it.
        let mut writes = Vec::with_capacity(group.len());
        let mut answers = Vec::with_capacity(group.len());
        for prepared in group {
            let systems: Vec<String> = prepared
                .rows
                .latest
                .iter()
                .map(|l| l.system_id.clone())
                .collect();
            answers.push((prepared.seq, prepared.refused, prepared.readings, systems));
            writes.push((prepared.collector_id, prepared.seq, prepared.rows));
        }
        let writes = Arc::new(writes);
        let started = Instant::now();
        let instance = self.instance.clone();
        let results = self
            .database
            .run_write(move |conn| -> Result<Vec<CommitResult>, IngestError> {
                let mut results = Vec::with_capacity(writes.len());
                let mut announced = std::collections::BTreeSet::new();
                for (collector_id, seq, rows) in writes.iter() {
                    let result =
                        ingest::commit_batch(conn, collector_id, version.as_deref(), *seq, rows)?;
                    if result.stored > 0 {
                        announced.extend(rows.latest.iter().map(|l| l.system_id.as_str()));
                    }
                    results.push(result);
                }
                // Other hubs on the database hear of the commit when (and only if) it lands.
                for system_id in announced {
                    crate::db::cluster::announce(
                        conn,
                        &crate::cluster::announcement(&instance, system_id),
                    )?;
                }
                Ok(results)
            })
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        let mut touched: Vec<String> = Vec::new();
        let mut outcomes = Vec::with_capacity(answers.len());
        for ((seq, refused, readings, systems), result) in answers.into_iter().zip(results) {
            let CommitResult {
                replay,
                stored,
                duplicates,
            } = result;
            self.metrics.committed(replay, stored, duplicates, seconds);
            debug_assert_eq!(stored + duplicates, readings);
            if stored > 0 {
                touched.extend(systems);
            }
            outcomes.push(Outcome {
                seq,
                replay,
                stored,
                duplicates,
                refused,
            });
        }
        touched.sort();
        touched.dedup();
        for system in touched {
            // No receivers is fine: nobody is watching.
            let _ = self.updates.send(crate::live::Notice::now(&system));
        }
        Ok(outcomes)
    }
}

/// "1 h 2 min" (to the nearest minute), "3 min 5 s": a span for people.
fn describe_span(ms: u64) -> String {
    let seconds = (ms + 500) / 1000;
    if seconds >= 3600 {
        let minutes = (seconds + 30) / 60;
        return format!("{} h {} min", minutes / 60, minutes % 60);
    }
    match (seconds / 60, seconds % 60) {
        (0, s) => format!("{s} s"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// A batch sorted into the rows it writes and the readings it refuses, ready to commit.
#[derive(Debug)]
pub struct Prepared {
    collector_id: String,
    seq: u64,
    rows: BatchRows,
    refused: Vec<Refusal>,
    /// Readings accepted.
    readings: usize,
}

/// Sorts a batch into rows and refusals; also returns how many readings were accepted.
fn build_rows(
    directory: &DeviceDirectory,
    batch: &Batch,
    now: i64,
) -> (BatchRows, Vec<Refusal>, usize) {
    let mut rows = BatchRows::default();
    let mut refused = Vec::new();
    let mut accepted = 0;
    let mut latest = HashMap::new();
    // A collector clock far from the hub's stamps every reading wrong, an hour behind as much as
    // ahead: nothing of the batch is stored (fault suite, clock skew).
    let skew = batch
        .sent_at
        .map(|sent| sent - now)
        .filter(|skew| skew.unsigned_abs() > MAX_CLOCK_SKEW.as_millis() as u64);
    if let Some(skew) = skew {
        let reason = format!(
            "clock skew: collector {}'s clock is {} {} the hub's (more than {} minutes); set its clock (NTP)",
            batch.collector_id,
            describe_span(skew.unsigned_abs()),
            if skew > 0 { "ahead of" } else { "behind" },
            MAX_CLOCK_SKEW.as_secs() / 60
        );
        tracing::warn!(collector = %batch.collector_id, skew_ms = skew, readings = batch.readings.len(), "readings refused: {reason}");
        for reading in &batch.readings {
            refused.push(Refusal::new(
                &reading.device_id,
                reading.ts,
                RefusalKind::ClockSkew,
                reason.clone(),
            ));
        }
        return (rows, refused, accepted);
    }
    // Each device's accepted reading times, for the roller.
    let mut times: HashMap<&str, (&str, Vec<i64>)> = HashMap::new();
    for reading in &batch.readings {
        let (entry, adapter_id) =
            match check::check_reading(directory, &batch.collector_id, reading, now) {
                Ok(checked) => (checked.entry, checked.adapter_id),
                Err((kind, reason)) => {
                    refused.push(Refusal::new(&reading.device_id, reading.ts, kind, reason));
                    continue;
                }
            };
        accepted += 1;
        note_latest(&mut latest, reading, adapter_id, entry);
        times
            .entry(reading.device_id.as_str())
            .or_insert_with(|| (entry.system_id(), Vec::new()))
            .1
            .push(reading.ts);
        let values = Values {
            numbers: &reading.fields,
            text: &reading.text,
        };
        let adapter = Some(adapter_id.to_owned());
        match entry {
            DeviceEntry::Inverter {
                array_id,
                system_id,
            } => rows.energy.push(
                EnergySample {
                    inverter_id: reading.device_id.clone(),
                    ts: reading.ts,
                    array_id: Some(array_id.clone()),
                    system_id: system_id.clone(),
                    ..EnergySample::default()
                }
                .with_values(values),
            ),
            DeviceEntry::Meter {
                array_id,
                system_id,
            } => rows.meters.push(
                MeterSample {
                    meter_id: reading.device_id.clone(),
                    ts: reading.ts,
                    system_id: system_id.clone(),
                    array_id: array_id.clone(),
                    ..MeterSample::default()
                }
                .with_values(values),
            ),
            DeviceEntry::Pack {
                battery_array_id,
                system_id,
            } => {
                rows.banks.push(
                    BatteryBankSample {
                        pack_id: reading.device_id.clone(),
                        ts: reading.ts,
                        battery_array_id: battery_array_id.clone(),
                        system_id: system_id.clone(),
                        adapter_id: adapter.clone(),
                        ..BatteryBankSample::default()
                    }
                    .with_values(values),
                );
                for battery in &reading.batteries {
                    let battery_key = battery_id(&reading.device_id, battery.index);
                    rows.units.push(
                        BatteryUnitSample {
                            battery_id: battery_key.clone(),
                            ts: reading.ts,
                            pack_id: reading.device_id.clone(),
                            battery_array_id: battery_array_id.clone(),
                            system_id: system_id.clone(),
                            adapter_id: adapter.clone(),
                            ..BatteryUnitSample::default()
                        }
                        .with_values(Values {
                            numbers: &battery.fields,
                            text: &battery.text,
                        }),
                    );
                    for (index, cell_fields) in &battery.cells {
                        rows.cells.push(
                            BatteryCellSample {
                                cell_id: cell_id(&battery_key, *index),
                                ts: reading.ts,
                                battery_id: battery_key.clone(),
                                pack_id: reading.device_id.clone(),
                                battery_array_id: battery_array_id.clone(),
                                system_id: system_id.clone(),
                                adapter_id: adapter.clone(),
                                ..BatteryCellSample::default()
                            }
                            .with_values(Values::numbers(cell_fields)),
                        );
                    }
                }
            }
        }
    }
    // Each device's accepted reading times, cut where they are more than a counter gap apart:
    // a collector whose clock jumped (a Pi booting without network) must not make the roller roll
    // every hour in between.
    for (device_id, (system_id, mut list)) in times {
        list.sort_unstable();
        let mut start = 0;
        for i in 1..=list.len() {
            if i == list.len() || list[i] - list[i - 1] > crate::rollup::DEFAULT_COUNTER_GAP_MS {
                rows.pending.push(crate::db::rollups::Pending {
                    device_id: device_id.to_owned(),
                    system_id: system_id.to_owned(),
                    from_ts: list[start],
                    to_ts: list[i - 1],
                });
                start = i;
            }
        }
    }
    rows.pending
        .sort_by(|a, b| (&a.device_id, a.from_ts).cmp(&(&b.device_id, b.from_ts)));
    rows.latest = latest.into_values().collect();
    rows.polls = poll_counts(directory, batch);
    (rows, refused, accepted)
}

/// The batch's poll tallies as counts to add, one per (device, bucket, counter), for the devices
/// this collector may report on (the rest are ignored: a tally is no reading, and nobody else's
/// data quality is this collector's).
fn poll_counts(directory: &DeviceDirectory, batch: &Batch) -> Vec<crate::db::quality::PollCount> {
    use crate::db::quality::{BUCKET_MS, PollCount};
    use solarhub_proto::contract::quality::DROP_REASONS;
    let allowed = directory.assigned.get(&batch.collector_id);
    let mut counts: BTreeMap<(String, i64, String), i64> = BTreeMap::new();
    for tally in &batch.polls {
        if !allowed.is_some_and(|devices| devices.contains(&tally.device_id))
            || !directory.devices.contains_key(&tally.device_id)
        {
            continue;
        }
        let bucket_start = tally.until.div_euclid(BUCKET_MS) * BUCKET_MS;
        let dropped = tally
            .dropped
            .iter()
            .filter(|(reason, _)| DROP_REASONS.contains(&reason.as_str()))
            .map(|(reason, amount)| (quality_counter::dropped(reason), *amount));
        let counters = [
            (quality_counter::POLLS, tally.polls),
            (quality_counter::ANSWERED, tally.answered),
            (quality_counter::TIMEOUTS, tally.timeouts),
            (quality_counter::EXCEPTIONS, tally.exceptions),
            (quality_counter::OTHER_FAILURES, tally.other_failures),
        ]
        .into_iter()
        .map(|(counter, amount)| (counter.to_owned(), amount))
        .chain(dropped);
        for (counter, amount) in counters.filter(|(_, amount)| *amount > 0) {
            *counts
                .entry((tally.device_id.clone(), bucket_start, counter))
                .or_default() += i64::from(amount);
        }
    }
    counts
        .into_iter()
        .map(|((device_id, bucket_start, counter), amount)| PollCount {
            device_id,
            bucket_start,
            counter,
            amount,
        })
        .collect()
}

/// The names of the stored poll counters (`poll_counts.counter`).
pub mod quality_counter {
    pub const POLLS: &str = "polls";
    pub const ANSWERED: &str = "answered";
    pub const TIMEOUTS: &str = "timeouts";
    pub const EXCEPTIONS: &str = "exceptions";
    pub const OTHER_FAILURES: &str = "other_failures";
    const DROPPED_PREFIX: &str = "dropped_";

    pub fn dropped(reason: &str) -> String {
        format!("{DROPPED_PREFIX}{reason}")
    }

    /// The reason of a `dropped_<reason>` counter.
    pub fn dropped_reason(counter: &str) -> Option<&str> {
        counter.strip_prefix(DROPPED_PREFIX)
    }
}

/// Keeps the newest reading of each (device, adapter) seen in a batch.
fn note_latest(
    latest: &mut HashMap<(String, String), LatestReading>,
    reading: &IncomingReading,
    adapter_id: &str,
    entry: &DeviceEntry,
) {
    let device_type = match entry {
        DeviceEntry::Inverter { .. } => "inverter",
        DeviceEntry::Meter { .. } => "meter",
        DeviceEntry::Pack { .. } => "battery_pack",
    };
    let key = (reading.device_id.clone(), adapter_id.to_owned());
    if latest
        .get(&key)
        .is_some_and(|known: &LatestReading| known.ts >= reading.ts)
    {
        return;
    }
    latest.insert(
        key,
        LatestReading {
            device_id: reading.device_id.clone(),
            adapter_id: adapter_id.to_owned(),
            device_type: device_type.to_owned(),
            system_id: entry.system_id().to_owned(),
            ts: reading.ts,
            committed_at: 0,
        },
    );
}
