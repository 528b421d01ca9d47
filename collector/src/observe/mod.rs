//! What the collector observes about its own work, in one place: every poll of every device (how
//! it ended and how long it took the bus) and every value left out of a reading. The runtime
//! reports each poll and reading here once; from that come both the Prometheus metrics
//! ([`metrics`]) and the data-quality tallies sent to the hub with every batch ([`tally`]).

pub mod metrics;
pub mod tally;

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use solarhub_proto::v1 as proto;

use crate::drivers::reading::Reading;
pub use metrics::CollectorMetrics;
use tally::Tally;

/// How one poll of one device ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PollResult {
    /// It answered (every request, or some: a partial reading is still an answer).
    Answered,
    /// No answer at all within the timeout.
    Timeout,
    /// The device answered with a Modbus exception.
    Exception,
    /// The connection failed, or the answer was unusable.
    Failed,
}

impl PollResult {
    pub fn as_str(self) -> &'static str {
        match self {
            PollResult::Answered => "answered",
            PollResult::Timeout => "timeout",
            PollResult::Exception => "exception",
            PollResult::Failed => "failed",
        }
    }
}

/// One poll: on which bus, of which device, how it ended and how long it held the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct PollRecord {
    pub bus: String,
    pub device_id: String,
    pub result: PollResult,
    pub duration: Duration,
    /// UTC epoch milliseconds when it ended.
    pub at: i64,
}

/// Where polls and readings are reported; shared by the runtime (which reports), the batcher
/// (which takes the tallies into batches) and the uplink (its own state).
#[derive(Default)]
pub struct Observer {
    tally: Mutex<Tally>,
    metrics: CollectorMetrics,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}

impl Observer {
    pub fn new() -> Observer {
        Observer::default()
    }

    pub fn metrics(&self) -> &CollectorMetrics {
        &self.metrics
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn polled(&self, record: &PollRecord) {
        self.metrics.polled(record);
        self.tally().polled(record);
    }

    /// Counts the values left out of `reading` (before pack failover chooses among adapters: a
    /// value dropped by an adapter is dropped whether or not its reading is used).
    pub fn read(&self, reading: &Reading) {
        for reason in reading.dropped.values() {
            self.metrics.dropped(&reading.device_id, reason.name());
            self.tally()
                .dropped(&reading.device_id, reason.name(), reading.ts);
        }
    }

    /// The tallies gathered since the last call, for the next batch.
    pub fn take_tallies(&self) -> Vec<proto::PollTally> {
        self.tally().take()
    }

    /// Puts tallies back that could not be stored (they go with the next batch).
    pub fn restore_tallies(&self, tallies: Vec<proto::PollTally>) {
        self.tally().restore(tallies);
    }

    pub fn has_tallies(&self) -> bool {
        !self.tally().is_empty()
    }
}
