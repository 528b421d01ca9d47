//! The durable outbox: every batch is written to a local SQLite file (WAL, `synchronous = FULL`)
//! before it is sent, and deleted only when the hub has acknowledged it. After a restart or a
//! reconnect the unacknowledged batches are sent again, in order. The outbox is bounded by size and
//! age; what it has to drop is counted and logged, never silent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Text};
use prost::Message;
use solarhub_proto::v1::{CommandResult, TelemetryBatch};

/// How long a control command's result is kept (for resending it and for the write budget).
pub const RESULTS_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

fn decode_result(row: &Stored) -> Result<CommandResult, OutboxError> {
    CommandResult::decode(row.payload.as_slice())
        .map_err(|e| OutboxError::Storage(format!("a command result is unreadable: {e}")))
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("outbox: {0}")]
    Storage(String),
}

impl From<diesel::result::Error> for OutboxError {
    fn from(error: diesel::result::Error) -> Self {
        OutboxError::Storage(error.to_string())
    }
}

/// Limits of the outbox: beyond them the oldest batches are dropped (and counted).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: i64,
    pub max_age: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 256 * 1024 * 1024,
            max_age: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

/// What the outbox holds, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    pub batches: i64,
    pub bytes: i64,
    /// UTC epoch milliseconds; `None` when empty.
    pub oldest_created_at: Option<i64>,
}

pub struct Outbox {
    conn: SqliteConnection,
    path: PathBuf,
    limits: Limits,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Binary)]
    payload: Vec<u8>,
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

#[derive(QueryableByName)]
struct TextValue {
    #[diesel(sql_type = Text)]
    value: String,
}

/// Whether an error opening the outbox is damage to the file (set it aside) rather than a
/// directory or file the collector cannot use (stop with the reason).
fn is_damage(reason: &str) -> bool {
    ["malformed", "not a database", "corrupt", "disk image"]
        .iter()
        .any(|sign| reason.contains(sign))
}

impl Outbox {
    /// Opens (or creates) `outbox.db` in `dir`. A damaged file (a bad disk, a torn write) does not
    /// stop the collector: it is set aside as `outbox.db.damaged-<ms>`, every batch still readable
    /// is carried into a new outbox with its seq, and the rest are counted as dropped and logged.
    pub fn open(dir: &Path, limits: Limits) -> Result<Outbox, OutboxError> {
        let path = dir.join("outbox.db");
        let fail = |reason: String| OutboxError::Open {
            path: path.clone(),
            reason,
        };
        // Private: the batches hold the site's readings (0700 directory, 0600 files).
        solarhub_ops::create_private_dir(dir)
            .map_err(|e| fail(format!("cannot create the directory: {e}")))?;
        solarhub_ops::create_private_file(&path)
            .map_err(|e| fail(format!("cannot create the file: {e}")))?;
        let text = path
            .to_str()
            .ok_or_else(|| fail("the path is not valid UTF-8".into()))?;
        match Self::open_file(text) {
            Ok(conn) => Ok(Outbox { conn, path, limits }),
            // Not a database problem: the directory or the file cannot be used at all.
            Err(reason) if !is_damage(&reason) => Err(fail(reason)),
            Err(reason) => {
                let aside = dir.join(format!(
                    "outbox.db.damaged-{}",
                    chrono::Utc::now().timestamp_millis()
                ));
                tracing::error!(outbox = %path.display(), %reason, aside = %aside.display(), "the outbox is damaged: setting it aside and carrying over what is readable");
                for suffix in ["", "-wal", "-shm"] {
                    let from = PathBuf::from(format!("{text}{suffix}"));
                    let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                    if from.exists() {
                        std::fs::rename(&from, &to).map_err(|e| {
                            fail(format!(
                                "damaged, and cannot be set aside as {}: {e}",
                                to.display()
                            ))
                        })?;
                    }
                }
                solarhub_ops::create_private_file(&path)
                    .map_err(|e| fail(format!("cannot create the file: {e}")))?;
                let conn = Self::open_file(text).map_err(fail)?;
                let mut outbox = Outbox { conn, path, limits };
                outbox.salvage(&aside)?;
                Ok(outbox)
            }
        }
    }

    /// Opens the file and checks it is a sound outbox.
    fn open_file(path: &str) -> Result<SqliteConnection, String> {
        let mut conn = SqliteConnection::establish(path).map_err(|e| e.to_string())?;
        conn.batch_execute(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS batches (seq BIGINT PRIMARY KEY, created_at BIGINT NOT NULL, payload BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS command_results (id TEXT PRIMARY KEY, device_id TEXT NOT NULL, finished_at BIGINT NOT NULL, registers_written BIGINT NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0, payload BLOB NOT NULL);",
        )
        .map_err(|e| e.to_string())?;
        let check: Vec<TextValue> =
            diesel::sql_query("SELECT quick_check AS value FROM pragma_quick_check")
                .load(&mut conn)
                .map_err(|e| e.to_string())?;
        match check.first() {
            Some(row) if row.value == "ok" => Ok(conn),
            Some(row) => Err(format!("database disk image is malformed: {}", row.value)),
            None => Err("database disk image is malformed: no answer to quick_check".into()),
        }
    }

    /// Carries every readable batch of the damaged outbox at `aside` into this one, keeping seqs;
    /// counts the rest as dropped.
    fn salvage(&mut self, aside: &Path) -> Result<(), OutboxError> {
        let Ok(mut damaged) = SqliteConnection::establish(&aside.display().to_string()) else {
            tracing::error!(aside = %aside.display(), "nothing of the damaged outbox is readable");
            return Ok(());
        };
        let number = |conn: &mut SqliteConnection, sql: &str| -> Option<i64> {
            diesel::sql_query(sql)
                .load::<Number>(conn)
                .ok()
                .and_then(|rows| rows.first().map(|r| r.value))
        };
        let last_seq = number(
            &mut damaged,
            "SELECT CAST(value AS BIGINT) AS value FROM meta WHERE key = 'last_seq'",
        );
        let dropped_before = number(
            &mut damaged,
            "SELECT CAST(value AS BIGINT) AS value FROM meta WHERE key = 'dropped'",
        )
        .unwrap_or(0);
        // Rows are read by rowid, a few at a time, one at a time where a page is bad: rowids
        // never exceed the number of batches ever stored, so the last seq bounds them.
        let last_rowid = number(
            &mut damaged,
            "SELECT COALESCE(MAX(rowid), 0) AS value FROM batches",
        )
        .or(last_seq)
        .unwrap_or(0);
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            seq: i64,
            #[diesel(sql_type = BigInt)]
            created_at: i64,
            #[diesel(sql_type = Binary)]
            payload: Vec<u8>,
        }
        let read = |conn: &mut SqliteConnection, from: i64, to: i64| {
            diesel::sql_query(
                "SELECT seq, created_at, payload FROM batches WHERE rowid BETWEEN ? AND ?",
            )
            .bind::<BigInt, _>(from)
            .bind::<BigInt, _>(to)
            .load::<Row>(conn)
        };
        let mut rows = Vec::new();
        let mut unreadable_rowids = 0i64;
        let mut from = 1;
        while from <= last_rowid {
            let to = (from + 31).min(last_rowid);
            match read(&mut damaged, from, to) {
                Ok(chunk) => rows.extend(chunk),
                Err(_) => {
                    for rowid in from..=to {
                        match read(&mut damaged, rowid, rowid) {
                            Ok(row) => rows.extend(row),
                            Err(_) => unreadable_rowids += 1,
                        }
                    }
                }
            }
            from = to + 1;
        }
        rows.sort_by_key(|row| row.seq);
        rows.dedup_by_key(|row| row.seq);
        let readable: Vec<Row> = rows
            .into_iter()
            .filter(|row| TelemetryBatch::decode(row.payload.as_slice()).is_ok())
            .collect();
        // What was pending: every seq from the first still stored to the last handed out.
        let highest = readable
            .iter()
            .map(|r| r.seq)
            .max()
            .unwrap_or(0)
            .max(last_seq.unwrap_or(0));
        let lowest = readable.iter().map(|r| r.seq).min();
        let lost = match lowest {
            Some(lowest) => (highest - lowest + 1) - readable.len() as i64,
            None => unreadable_rowids,
        };
        let kept = readable.len();
        self.conn
            .immediate_transaction(|conn| -> Result<(), diesel::result::Error> {
                for row in &readable {
                    diesel::sql_query(
                        "INSERT INTO batches (seq, created_at, payload) VALUES (?, ?, ?)",
                    )
                    .bind::<BigInt, _>(row.seq)
                    .bind::<BigInt, _>(row.created_at)
                    .bind::<Binary, _>(&row.payload)
                    .execute(conn)?;
                }
                Ok(())
            })?;
        self.set_meta("last_seq", &highest.to_string())?;
        self.set_meta("dropped", &(dropped_before + lost.max(0)).to_string())?;
        tracing::error!(kept, lost, aside = %aside.display(), "damaged outbox: batches carried over, batches lost (counted as dropped)");
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>, OutboxError> {
        let rows: Vec<TextValue> = diesel::sql_query("SELECT value FROM meta WHERE key = ?")
            .bind::<Text, _>(key)
            .load(&mut self.conn)?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), OutboxError> {
        diesel::sql_query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind::<Text, _>(key)
            .bind::<Text, _>(value)
            .execute(&mut self.conn)?;
        Ok(())
    }

    /// Remembers the hub's last assignments, so a restart without the hub can still poll.
    pub fn cache_assignments(&mut self, json: &str) -> Result<(), OutboxError> {
        self.set_meta("assignments", json)
    }

    pub fn cached_assignments(&mut self) -> Result<Option<String>, OutboxError> {
        self.meta("assignments")
    }

    /// Batches dropped so far because the outbox was full or they were too old.
    pub fn dropped(&mut self) -> Result<i64, OutboxError> {
        Ok(self
            .meta("dropped")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// The highest seq ever assigned (0 for a new outbox).
    pub fn last_seq(&mut self) -> Result<u64, OutboxError> {
        Ok(self
            .meta("last_seq")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Squares this outbox with the hub's last committed seq, learned at registration: new batches
    /// are numbered after it. Nothing pending is dropped on the hub's word: the hub's seq may be
    /// another process's (the outbox was deleted or restored from an older copy, or a second
    /// collector shares this identity), so every pending batch is sent again and leaves only with
    /// its own ack; one the hub already committed costs a resend, and the hub stores each reading
    /// once (a replayed seq is stored by the readings it does not have).
    pub fn settle_with_hub(&mut self, hub_seq: u64) -> Result<(), OutboxError> {
        let last = self.last_seq()?;
        if last < hub_seq {
            tracing::warn!(
                outbox_seq = last,
                hub_seq,
                "the hub has committed seqs this outbox never handed out (outbox lost or restored, or a second collector with this id); its pending batches are sent again, and the hub keeps the readings it does not have"
            );
        }
        self.skip_to(hub_seq)
    }

    /// Never hands out a seq at or below `seq` (the hub's last committed one, learned at registration).
    pub fn skip_to(&mut self, seq: u64) -> Result<(), OutboxError> {
        if seq > self.last_seq()? {
            self.set_meta("last_seq", &seq.to_string())?;
        }
        Ok(())
    }

    /// Stores a batch under the next seq and returns it, durably, before anything is sent.
    pub fn push(&mut self, mut batch: TelemetryBatch) -> Result<TelemetryBatch, OutboxError> {
        let now = chrono::Utc::now().timestamp_millis();
        let batch = self.conn.immediate_transaction(|conn| -> Result<TelemetryBatch, OutboxError> {
            let rows: Vec<TextValue> = diesel::sql_query("SELECT value FROM meta WHERE key = 'last_seq'").load(conn)?;
            let seq = rows.into_iter().next().and_then(|r| r.value.parse::<u64>().ok()).unwrap_or(0) + 1;
            batch.seq = seq;
            diesel::sql_query("INSERT INTO batches (seq, created_at, payload) VALUES (?, ?, ?)")
                .bind::<BigInt, _>(seq as i64)
                .bind::<BigInt, _>(now)
                .bind::<Binary, _>(batch.encode_to_vec())
                .execute(conn)?;
            diesel::sql_query("INSERT INTO meta (key, value) VALUES ('last_seq', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind::<Text, _>(seq.to_string())
                .execute(conn)?;
            Ok(batch)
        })?;
        self.enforce_limits()?;
        Ok(batch)
    }

    /// Unacknowledged batches, oldest first.
    pub fn pending(&mut self, limit: i64) -> Result<Vec<TelemetryBatch>, OutboxError> {
        let rows: Vec<Stored> =
            diesel::sql_query("SELECT seq, payload FROM batches ORDER BY seq LIMIT ?")
                .bind::<BigInt, _>(limit)
                .load(&mut self.conn)?;
        rows.into_iter()
            .map(|row| {
                TelemetryBatch::decode(row.payload.as_slice()).map_err(|e| {
                    OutboxError::Storage(format!("batch {} is unreadable: {e}", row.seq))
                })
            })
            .collect()
    }

    /// The result of control command `id`, when this collector has executed (or refused) it: a
    /// command is never executed twice, whatever the hub resends.
    pub fn command_result(&mut self, id: &str) -> Result<Option<CommandResult>, OutboxError> {
        let rows: Vec<Stored> =
            diesel::sql_query("SELECT 0 AS seq, payload FROM command_results WHERE id = ?")
                .bind::<Text, _>(id)
                .load(&mut self.conn)?;
        rows.into_iter()
            .next()
            .map(|row| decode_result(&row))
            .transpose()
    }

    /// Keeps a command's result (and the registers it wrote, for the daily budget) until the hub
    /// has stored it; results older than [`RESULTS_KEPT`] leave.
    pub fn record_command_result(
        &mut self,
        result: &CommandResult,
        registers_written: i64,
        at: i64,
    ) -> Result<(), OutboxError> {
        diesel::sql_query("INSERT INTO command_results (id, device_id, finished_at, registers_written, payload) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")
            .bind::<Text, _>(&result.id)
            .bind::<Text, _>(&result.device_id)
            .bind::<BigInt, _>(at)
            .bind::<BigInt, _>(registers_written)
            .bind::<Binary, _>(result.encode_to_vec())
            .execute(&mut self.conn)?;
        diesel::sql_query("DELETE FROM command_results WHERE finished_at < ?")
            .bind::<BigInt, _>(at - RESULTS_KEPT.as_millis() as i64)
            .execute(&mut self.conn)?;
        Ok(())
    }

    /// Results the hub has not confirmed yet, oldest first.
    pub fn unconfirmed_results(&mut self) -> Result<Vec<CommandResult>, OutboxError> {
        let rows: Vec<Stored> = diesel::sql_query(
            "SELECT 0 AS seq, payload FROM command_results WHERE confirmed = 0 ORDER BY finished_at LIMIT 100",
        )
        .load(&mut self.conn)?;
        rows.iter().map(decode_result).collect()
    }

    /// The hub stored these results; a result resent because its command came again is
    /// unconfirmed again.
    pub fn confirm_results(&mut self, ids: &[String], confirmed: bool) -> Result<(), OutboxError> {
        for id in ids {
            diesel::sql_query("UPDATE command_results SET confirmed = ? WHERE id = ?")
                .bind::<diesel::sql_types::Integer, _>(i32::from(confirmed))
                .bind::<Text, _>(id)
                .execute(&mut self.conn)?;
        }
        Ok(())
    }

    /// Registers written to `device_id` at or after `since` (the daily write budget).
    pub fn registers_written_since(
        &mut self,
        device_id: &str,
        since: i64,
    ) -> Result<i64, OutboxError> {
        #[derive(QueryableByName)]
        struct Sum {
            #[diesel(sql_type = BigInt)]
            written: i64,
        }
        let rows: Vec<Sum> = diesel::sql_query("SELECT COALESCE(SUM(registers_written), 0) AS written FROM command_results WHERE device_id = ? AND finished_at >= ?")
            .bind::<Text, _>(device_id)
            .bind::<BigInt, _>(since)
            .load(&mut self.conn)?;
        Ok(rows.first().map_or(0, |r| r.written))
    }

    /// Forgets every batch up to and including `seq`: the hub has committed them.
    pub fn acknowledge(&mut self, seq: u64) -> Result<usize, OutboxError> {
        Ok(diesel::sql_query("DELETE FROM batches WHERE seq <= ?")
            .bind::<BigInt, _>(seq as i64)
            .execute(&mut self.conn)?)
    }

    /// How much is waiting: batches, their bytes, and when the oldest was stored.
    pub fn depth(&mut self) -> Result<Depth, OutboxError> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            batches: i64,
            #[diesel(sql_type = BigInt)]
            bytes: i64,
            #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
            oldest: Option<i64>,
        }
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT COUNT(*) AS batches, COALESCE(SUM(LENGTH(payload)), 0) AS bytes, MIN(created_at) AS oldest FROM batches",
        )
        .load(&mut self.conn)?;
        Ok(rows.first().map_or(Depth::default(), |row| Depth {
            batches: row.batches,
            bytes: row.bytes,
            oldest_created_at: row.oldest,
        }))
    }

    pub fn len(&mut self) -> Result<i64, OutboxError> {
        let rows: Vec<Number> =
            diesel::sql_query("SELECT COUNT(*) AS value FROM batches").load(&mut self.conn)?;
        Ok(rows.first().map(|r| r.value).unwrap_or(0))
    }

    /// Makes every write fail, as on a full disk or a read-only file system (`unwritable`), or
    /// writable again. For tests of what the collector does when its disk fills.
    #[doc(hidden)]
    pub fn simulate_unwritable(&mut self, unwritable: bool) -> Result<(), OutboxError> {
        self.conn.batch_execute(if unwritable {
            "PRAGMA query_only = ON"
        } else {
            "PRAGMA query_only = OFF"
        })?;
        Ok(())
    }

    pub fn is_empty(&mut self) -> Result<bool, OutboxError> {
        Ok(self.len()? == 0)
    }

    /// Drops the oldest batches beyond the size and age limits, counting and logging them.
    fn enforce_limits(&mut self) -> Result<(), OutboxError> {
        let oldest_allowed =
            chrono::Utc::now().timestamp_millis() - self.limits.max_age.as_millis() as i64;
        let too_old = diesel::sql_query("DELETE FROM batches WHERE created_at < ?")
            .bind::<BigInt, _>(oldest_allowed)
            .execute(&mut self.conn)?;
        let mut dropped = too_old as i64;
        loop {
            let rows: Vec<Number> =
                diesel::sql_query("SELECT COALESCE(SUM(LENGTH(payload)), 0) AS value FROM batches")
                    .load(&mut self.conn)?;
            let bytes = rows.first().map(|r| r.value).unwrap_or(0);
            if bytes <= self.limits.max_bytes {
                break;
            }
            let removed =
                diesel::sql_query("DELETE FROM batches WHERE seq = (SELECT MIN(seq) FROM batches)")
                    .execute(&mut self.conn)?;
            if removed == 0 {
                break;
            }
            dropped += removed as i64;
        }
        if dropped > 0 {
            let total = self.dropped()? + dropped;
            self.set_meta("dropped", &total.to_string())?;
            tracing::error!(dropped, total, outbox = %self.path.display(), "outbox over its limits: oldest batches dropped");
        }
        Ok(())
    }
}

/// The outbox behind one handle, shared by the batcher, the sender and the metrics: every
/// operation runs on the outbox's own thread (its writes are SQLite with `synchronous = FULL`: an
/// fsync must not hold a worker thread), one at a time. One thread rather than tokio's blocking
/// pool: each new thread of the pool that wrote the outbox got a glibc malloc arena of its own,
/// 6 MB of a thousand devices' 30 (BENCHMARKS.md, issue 24).
#[derive(Clone)]
pub struct SharedOutbox {
    outbox: std::sync::Arc<std::sync::Mutex<Outbox>>,
    thread: std::sync::Arc<OutboxThread>,
}

type Job = Box<dyn FnOnce() + Send>;

/// The outbox's thread. When the last handle goes, the thread finishes the jobs it was given and
/// is waited for: whoever stopped the collector finds the outbox file closed (as tokio's runtime
/// waited for its blocking pool).
struct OutboxThread {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for OutboxThread {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for SharedOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedOutbox")
    }
}

impl SharedOutbox {
    pub fn new(outbox: Outbox) -> SharedOutbox {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        // Without the thread every `run` says the outbox cannot be used; `blocking` still works.
        let started = std::thread::Builder::new()
            .name("outbox".into())
            .spawn(move || {
                for job in queue {
                    // A job that panics is answered as failed (its result never arrives); the
                    // thread goes on with the next.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
        let thread = match started {
            Ok(thread) => Some(thread),
            Err(error) => {
                tracing::error!(%error, "cannot start the outbox's thread");
                None
            }
        };
        SharedOutbox {
            outbox: std::sync::Arc::new(std::sync::Mutex::new(outbox)),
            thread: std::sync::Arc::new(OutboxThread {
                jobs: Some(jobs),
                thread,
            }),
        }
    }

    /// Runs `work` on the outbox, on the outbox's thread.
    pub async fn run<T, F>(&self, work: F) -> Result<T, OutboxError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Outbox) -> Result<T, OutboxError> + Send + 'static,
    {
        let failed = || OutboxError::Storage("outbox task failed".into());
        let (answer, answered) = tokio::sync::oneshot::channel();
        let outbox = self.outbox.clone();
        let jobs = self.thread.jobs.as_ref().ok_or_else(failed)?;
        jobs.send(Box::new(move || {
            let _ = answer.send(Self::locked(&outbox, work));
        }))
        .map_err(|_| failed())?;
        answered.await.map_err(|_| failed())?
    }

    fn locked<T>(
        outbox: &std::sync::Mutex<Outbox>,
        work: impl FnOnce(&mut Outbox) -> Result<T, OutboxError>,
    ) -> Result<T, OutboxError> {
        work(
            &mut outbox
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Runs `work` on the outbox on this thread (for callers off tokio's workers: the metrics
    /// scrape, tests).
    pub fn blocking<T>(
        &self,
        work: impl FnOnce(&mut Outbox) -> Result<T, OutboxError>,
    ) -> Result<T, OutboxError> {
        Self::locked(&self.outbox, work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use solarhub_proto::v1::DeviceReading;

    fn batch(device: &str) -> TelemetryBatch {
        TelemetryBatch {
            sent_at: None,
            collector_id: "c".into(),
            seq: 0,
            readings: vec![DeviceReading {
                device_id: device.into(),
                ..Default::default()
            }],
            polls: Vec::new(),
            command_results: Vec::new(),
        }
    }

    #[test]
    fn every_operation_of_a_shared_outbox_runs_on_its_one_thread_and_a_panic_stops_none() {
        let dir = tempfile::tempdir().unwrap();
        let shared = SharedOutbox::new(Outbox::open(dir.path(), Limits::default()).unwrap());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let threads = runtime.block_on(async {
            let calls = (0..16).map(|i| {
                let shared = shared.clone();
                tokio::spawn(async move {
                    shared
                        .run(move |outbox| {
                            outbox.push(batch(&format!("d{i}")))?;
                            Ok(std::thread::current().id())
                        })
                        .await
                        .unwrap()
                })
            });
            let mut threads = std::collections::BTreeSet::new();
            for call in calls.collect::<Vec<_>>() {
                threads.insert(format!("{:?}", call.await.unwrap()));
            }
            threads
        });
        assert_eq!(threads.len(), 1, "one thread for the outbox: {threads:?}");
        let failed = runtime.block_on(shared.run(|_| -> Result<(), OutboxError> { panic!("job") }));
        assert!(matches!(failed, Err(OutboxError::Storage(_))));
        let stored = runtime.block_on(shared.run(|outbox| outbox.len())).unwrap();
        assert_eq!(stored, 16, "the thread goes on after a job panicked");
    }

    #[test]
    fn batches_survive_a_reopen_in_order_and_leave_when_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), Limits::default()).unwrap();
        for device in ["a", "b", "c"] {
            outbox.push(batch(device)).unwrap();
        }
        drop(outbox);
        let mut outbox = Outbox::open(dir.path(), Limits::default()).unwrap();
        let pending = outbox.pending(10).unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|b| (b.seq, b.readings[0].device_id.as_str()))
                .collect::<Vec<_>>(),
            [(1, "a"), (2, "b"), (3, "c")]
        );
        assert_eq!(outbox.acknowledge(2).unwrap(), 2);
        assert_eq!(outbox.pending(10).unwrap().len(), 1);
        // Seqs never go back, even after the hub says it has committed more than we know.
        outbox.skip_to(10).unwrap();
        assert_eq!(outbox.push(batch("d")).unwrap().seq, 11);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let size = TelemetryBatch {
            seq: 1,
            ..batch("a")
        }
        .encode_to_vec()
        .len() as i64;
        let mut outbox = Outbox::open(
            dir.path(),
            Limits {
                max_bytes: size * 3,
                max_age: Duration::from_secs(3600),
            },
        )
        .unwrap();
        for device in ["a", "b", "c", "d", "e"] {
            outbox.push(batch(device)).unwrap();
        }
        let pending = outbox.pending(10).unwrap();
        assert_eq!(pending.iter().map(|b| b.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(outbox.dropped().unwrap(), 2);
    }

    /// Fault suite: bytes overwritten in the middle of `outbox.db` (a bad sector, a torn write).
    /// The outbox still opens; the damaged file is kept aside; every batch that is still readable
    /// is there with its seq and content; the lost ones are counted as dropped; new batches carry
    /// on after the highest seq.
    #[test]
    fn a_damaged_outbox_keeps_what_is_readable_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), Limits::default()).unwrap();
        let mut stored = Vec::new();
        for n in 0..300 {
            let mut batch = batch(&format!("device-{n:03}-{}", "x".repeat(2000)));
            batch = outbox.push(batch).unwrap();
            stored.push(batch);
        }
        drop(outbox);
        let file = dir.path().join("outbox.db");
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle..middle + 8192].fill(0xA5);
        std::fs::write(&file, bytes).unwrap();

        let mut outbox = Outbox::open(dir.path(), Limits::default()).unwrap();
        let kept = outbox.pending(1000).unwrap();
        assert!(
            !kept.is_empty() && kept.len() < 300,
            "{} of 300 batches kept",
            kept.len()
        );
        for batch in &kept {
            assert_eq!(
                Some(batch),
                stored.iter().find(|s| s.seq == batch.seq),
                "a kept batch is the batch stored under its seq"
            );
        }
        assert_eq!(
            outbox.dropped().unwrap(),
            300 - kept.len() as i64,
            "every batch lost to the damage is counted"
        );
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("outbox.db.damaged-")
            })
            .count();
        assert!(aside >= 1, "the damaged file is kept for inspection");
        assert_eq!(outbox.push(batch("after")).unwrap().seq, 301);
        drop(outbox);
        // And it opens again as a sound outbox, with nothing more set aside.
        let mut outbox = Outbox::open(dir.path(), Limits::default()).unwrap();
        assert_eq!(outbox.len().unwrap(), kept.len() as i64 + 1);
    }

    #[test]
    fn an_unwritable_directory_is_a_clear_error() {
        let error = Outbox::open(Path::new("/proc/no/such/dir"), Limits::default())
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("/proc/no/such/dir/outbox.db"),
            "{error}"
        );
    }
}
