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
use solarhub_proto::v1::TelemetryBatch;

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

impl Outbox {
    /// Opens (or creates) `outbox.db` in `dir`.
    pub fn open(dir: &Path, limits: Limits) -> Result<Outbox, OutboxError> {
        let path = dir.join("outbox.db");
        let fail = |reason: String| OutboxError::Open {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(format!("cannot create the directory: {e}")))?;
        let text = path
            .to_str()
            .ok_or_else(|| fail("the path is not valid UTF-8".into()))?;
        let mut conn = SqliteConnection::establish(text).map_err(|e| fail(e.to_string()))?;
        conn.batch_execute(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS batches (seq BIGINT PRIMARY KEY, created_at BIGINT NOT NULL, payload BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .map_err(|e| fail(e.to_string()))?;
        Ok(Outbox { conn, path, limits })
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

#[cfg(test)]
mod tests {
    use super::*;
    use solarhub_proto::v1::DeviceReading;

    fn batch(device: &str) -> TelemetryBatch {
        TelemetryBatch {
            collector_id: "c".into(),
            seq: 0,
            readings: vec![DeviceReading {
                device_id: device.into(),
                ..Default::default()
            }],
            polls: Vec::new(),
        }
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
