//! Data quality per device (DESIGN §9): how its polls went over the last hour and day (from the
//! tallies the collectors send with every batch), which values were left out and why, when it was
//! last heard, and how much of its rolled hours its samples cover. A dashboard can show which device
//! is flaky without Prometheus.

use std::collections::{BTreeMap, HashMap};

use crate::db::quality::{self as store, QualityDevice};
use crate::db::{Database, DbError};
use crate::ingest::quality_counter;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Poll counts are kept this long (the answer looks back one day; the rest is slack).
pub const KEEP_POLL_COUNTS_MS: i64 = 2 * DAY_MS;

/// Polls and dropped values over a window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PollWindow {
    pub polls: u64,
    pub answered: u64,
    pub timeouts: u64,
    pub exceptions: u64,
    pub other_failures: u64,
    pub dropped: BTreeMap<String, u64>,
}

impl PollWindow {
    fn add(&mut self, counter: &str, amount: i64) {
        let amount = amount.max(0) as u64;
        match counter {
            quality_counter::POLLS => self.polls += amount,
            quality_counter::ANSWERED => self.answered += amount,
            quality_counter::TIMEOUTS => self.timeouts += amount,
            quality_counter::EXCEPTIONS => self.exceptions += amount,
            quality_counter::OTHER_FAILURES => self.other_failures += amount,
            other => {
                if let Some(reason) = quality_counter::dropped_reason(other) {
                    *self.dropped.entry(reason.to_owned()).or_default() += amount;
                }
            }
        }
    }

    /// Answered polls as a fraction of all; `None` without polls.
    pub fn success_rate(&self) -> Option<f64> {
        (self.polls > 0).then(|| self.answered as f64 / self.polls as f64)
    }

    fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// A device's state in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Its most recent polls (the newest 5-minute bucket with any) got no answer at all.
    Failing,
    /// Polls failed or values were dropped in the last hour, but it answers.
    Degraded,
    /// Every poll of the last hour answered, nothing dropped (or, with no polls reported, a
    /// reading within the hour: a passive source such as a JK BMS listener).
    Healthy,
    /// Nothing reported in the last hour.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Failing => "failing",
            Status::Degraded => "degraded",
            Status::Healthy => "healthy",
            Status::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceQuality {
    pub device: QualityDevice,
    /// Its newest stored reading (epoch ms).
    pub last_seen: Option<i64>,
    pub status: Status,
    pub last_hour: PollWindow,
    pub last_day: PollWindow,
    /// Hour rows in the last day, and their mean sample coverage (percent).
    pub hours_rolled: u32,
    pub mean_coverage_pct: Option<f64>,
}

/// The answer to a list: the devices, failing first, and when it was computed.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityReport {
    pub devices: Vec<DeviceQuality>,
    pub as_of: i64,
}

#[derive(Clone)]
pub struct DataQuality {
    database: Database,
}

impl DataQuality {
    pub fn new(database: Database) -> DataQuality {
        DataQuality { database }
    }

    /// Every device (of `system`, when given), failing ones first, then by id.
    pub async fn list(&self, system: Option<String>) -> Result<QualityReport, DbError> {
        let now = chrono::Utc::now().timestamp_millis();
        self.database
            .run(move |conn| {
                let devices = store::devices(conn, system.as_deref())?;
                report(conn, devices, None, now)
            })
            .await
    }

    /// One device; `None` when the catalog has no such device.
    pub async fn get(&self, device_id: String) -> Result<Option<DeviceQuality>, DbError> {
        let now = chrono::Utc::now().timestamp_millis();
        self.database
            .run(move |conn| {
                let devices: Vec<QualityDevice> = store::devices(conn, None)?
                    .into_iter()
                    .filter(|d| d.device_id == device_id)
                    .collect();
                if devices.is_empty() {
                    return Ok(None);
                }
                Ok(report(conn, devices, Some(&device_id), now)?
                    .devices
                    .into_iter()
                    .next())
            })
            .await
    }
}

fn report(
    conn: &mut crate::db::DbConnection,
    devices: Vec<QualityDevice>,
    only: Option<&str>,
    now: i64,
) -> Result<QualityReport, DbError> {
    let counts = store::poll_counts_since(conn, now - DAY_MS, only)?;
    let last_seen = store::last_seen(conn)?;
    let coverage = store::hour_coverage(conn, now - DAY_MS)?;
    let mut answer: Vec<DeviceQuality> = devices
        .into_iter()
        .map(|device| {
            let rows = counts.get(&device.device_id).map_or(&[][..], Vec::as_slice);
            let seen = last_seen.get(&device.device_id).copied();
            let (hours_rolled, mean_coverage_pct) = coverage
                .get(&device.device_id)
                .map_or((0, None), |(hours, mean)| (*hours, Some(*mean)));
            quality_of(device, rows, seen, hours_rolled, mean_coverage_pct, now)
        })
        .collect();
    answer.sort_by(|a, b| (a.status, &a.device.device_id).cmp(&(b.status, &b.device.device_id)));
    Ok(QualityReport {
        devices: answer,
        as_of: now,
    })
}

fn quality_of(
    device: QualityDevice,
    rows: &[(i64, String, i64)],
    last_seen: Option<i64>,
    hours_rolled: u32,
    mean_coverage_pct: Option<f64>,
    now: i64,
) -> DeviceQuality {
    let hour_from = now - HOUR_MS;
    let mut last_hour = PollWindow::default();
    let mut last_day = PollWindow::default();
    let mut buckets: HashMap<i64, PollWindow> = HashMap::new();
    for (bucket, counter, amount) in rows {
        last_day.add(counter, *amount);
        // Buckets that end inside the hour.
        if *bucket > hour_from - crate::db::quality::BUCKET_MS {
            last_hour.add(counter, *amount);
            buckets.entry(*bucket).or_default().add(counter, *amount);
        }
    }
    let newest_polled = buckets
        .iter()
        .filter(|(_, window)| window.polls > 0)
        .max_by_key(|(bucket, _)| **bucket)
        .map(|(_, window)| window);
    let status = match newest_polled {
        Some(window) if window.answered == 0 => Status::Failing,
        Some(_) if last_hour.answered < last_hour.polls || last_hour.dropped_total() > 0 => {
            Status::Degraded
        }
        Some(_) => Status::Healthy,
        None if last_seen.is_some_and(|seen| seen >= hour_from) => {
            if last_hour.dropped_total() > 0 {
                Status::Degraded
            } else {
                Status::Healthy
            }
        }
        None => Status::Unknown,
    };
    DeviceQuality {
        device,
        last_seen,
        status,
        last_hour,
        last_day,
        hours_rolled,
        mean_coverage_pct,
    }
}

/// How often old poll counts are forgotten.
pub const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Forgets poll counts older than [`KEEP_POLL_COUNTS_MS`] every [`PRUNE_EVERY`] until `shutdown`.
pub async fn run_pruner(database: Database, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        // First after one period: a starting hub writes nothing it need not.
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
        let now = chrono::Utc::now().timestamp_millis();
        let pruned = database
            .run_write(move |conn| store::prune_poll_counts(conn, now - KEEP_POLL_COUNTS_MS))
            .await;
        match pruned {
            Ok(0) => {}
            Ok(rows) => tracing::debug!(rows, "old poll counts forgotten"),
            Err(error) => tracing::warn!(%error, "old poll counts not pruned this round"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> QualityDevice {
        QualityDevice {
            device_id: "inv1".into(),
            device_type: "inverter",
            system_id: "home".into(),
        }
    }

    const NOW: i64 = 1_780_000_000_000;
    const B: i64 = crate::db::quality::BUCKET_MS;

    fn bucket(n: i64) -> i64 {
        (NOW / B - n) * B
    }

    #[test]
    fn a_device_whose_newest_polls_got_no_answer_is_failing() {
        let rows = vec![
            (bucket(3), "polls".into(), 60),
            (bucket(3), "answered".into(), 60),
            (bucket(0), "polls".into(), 4),
            (bucket(0), "timeouts".into(), 4),
        ];
        let q = quality_of(device(), &rows, Some(NOW - 600_000), 0, None, NOW);
        assert_eq!(q.status, Status::Failing);
        assert_eq!((q.last_hour.polls, q.last_hour.answered), (64, 60));
        assert_eq!(q.last_hour.success_rate(), Some(60.0 / 64.0));
    }

    #[test]
    fn dropped_values_degrade_and_old_buckets_count_only_for_the_day() {
        let rows = vec![
            (bucket(30), "polls".into(), 60),
            (bucket(30), "timeouts".into(), 60),
            (bucket(1), "polls".into(), 60),
            (bucket(1), "answered".into(), 60),
            (bucket(1), "dropped_sentinel".into(), 60),
        ];
        let q = quality_of(device(), &rows, Some(NOW), 0, None, NOW);
        assert_eq!(q.status, Status::Degraded);
        assert_eq!(q.last_hour.timeouts, 0);
        assert_eq!(q.last_day.timeouts, 60);
        assert_eq!(q.last_hour.dropped.get("sentinel"), Some(&60));
        let quiet = quality_of(device(), &[], None, 0, None, NOW);
        assert_eq!(quiet.status, Status::Unknown);
        assert_eq!(quiet.last_hour.success_rate(), None);
    }
}
