//! The collector's Prometheus metrics (`run --metrics-listen ADDR`). Label sets are bounded: a
//! device label takes only the collector's assigned devices, a bus label only its buses, reasons
//! and results only the names listed here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::PollRecord;
use crate::uplink::outbox::SharedOutbox;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    device: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    device: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BusLabels {
    bus: String,
}

fn poll_histogram() -> Histogram {
    // 5 ms … 20 s: a quick TCP answer up to a slow serial device that times out.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// How long the busy fraction of a bus is averaged over.
const BUSY_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct BusyWindow {
    started: Instant,
    busy: Duration,
}

/// Every metric the collector keeps. Cheap to update; exposed only when a registry is served.
#[derive(Debug)]
pub struct CollectorMetrics {
    polls: Family<PollLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
    poll_seconds: Family<BusLabels, Histogram, fn() -> Histogram>,
    busy_seconds: Family<BusLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    busy_ratio: Family<BusLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    busy_windows: Mutex<HashMap<String, BusyWindow>>,
    uplink_connected: Gauge,
    uplink_reconnects: Counter,
    batches_acknowledged: Counter,
    readings_refused: Family<RefusedLabels, Counter>,
    outbox: Arc<OnceLock<SharedOutbox>>,
}

impl Default for CollectorMetrics {
    fn default() -> Self {
        CollectorMetrics {
            polls: Family::default(),
            dropped: Family::default(),
            poll_seconds: Family::new_with_constructor(poll_histogram),
            busy_seconds: Family::default(),
            busy_ratio: Family::default(),
            busy_windows: Mutex::new(HashMap::new()),
            readings_refused: Family::default(),
            uplink_connected: Gauge::default(),
            uplink_reconnects: Counter::default(),
            batches_acknowledged: Counter::default(),
            outbox: Arc::new(OnceLock::new()),
        }
    }
}

impl CollectorMetrics {
    pub(super) fn polled(&self, record: &PollRecord) {
        self.polls
            .get_or_create(&PollLabels {
                device: record.device_id.clone(),
                result: record.result.as_str(),
            })
            .inc();
        let bus = BusLabels {
            bus: record.bus.clone(),
        };
        let seconds = record.duration.as_secs_f64();
        self.poll_seconds.get_or_create(&bus).observe(seconds);
        self.busy_seconds.get_or_create(&bus).inc_by(seconds);
        let mut windows = self
            .busy_windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let window = windows.entry(record.bus.clone()).or_insert(BusyWindow {
            started: Instant::now() - record.duration,
            busy: Duration::ZERO,
        });
        window.busy += record.duration;
        let elapsed = window.started.elapsed();
        // The first window reports as soon as it has a few seconds; then once per window.
        if elapsed >= BUSY_WINDOW || self.busy_ratio.get(&bus).is_none() && elapsed.as_secs() >= 5 {
            let ratio = (window.busy.as_secs_f64() / elapsed.as_secs_f64()).min(1.0);
            self.busy_ratio.get_or_create(&bus).set(ratio);
            if elapsed >= BUSY_WINDOW {
                *window = BusyWindow {
                    started: Instant::now(),
                    busy: Duration::ZERO,
                };
            }
        }
    }

    pub(super) fn dropped(&self, device_id: &str, reason: &'static str) {
        self.dropped
            .get_or_create(&DropLabels {
                device: device_id.to_owned(),
                reason,
            })
            .inc();
    }

    /// The uplink opened a stream to the hub (`first`: the first since start).
    pub fn uplink_up(&self, first: bool) {
        self.uplink_connected.set(1);
        if !first {
            self.uplink_reconnects.inc();
        }
    }

    pub fn uplink_down(&self) {
        self.uplink_connected.set(0);
    }

    pub fn acknowledged(&self, batches: usize) {
        self.batches_acknowledged.inc_by(batches as u64);
    }

    /// Readings the hub refused in an ack, by the hub's kind of refusal (a bounded set; a hub too
    /// old to say is counted as `unknown`).
    pub fn refused(&self, refusals: &[solarhub_proto::v1::Refusal]) {
        for refusal in refusals {
            let reason = match refusal.kind.as_str() {
                "unassigned" | "future" | "unknown_device" | "no_timestamp" | "clock_skew" => {
                    refusal.kind.clone()
                }
                _ => "unknown".to_owned(),
            };
            self.readings_refused
                .get_or_create(&RefusedLabels { reason })
                .inc();
        }
    }

    /// From now on the outbox's depth is read at every scrape.
    pub fn attach_outbox(&self, outbox: SharedOutbox) {
        let _ = self.outbox.set(outbox);
    }

    /// A registry with every metric, to serve at `/metrics`.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        registry.register(
            "solarhub_collector_polls",
            "Polls of a device, by how they ended (answered, timeout, exception, failed)",
            self.polls.clone(),
        );
        registry.register(
            "solarhub_collector_values_dropped",
            "Values left out of a device's readings, by reason",
            self.dropped.clone(),
        );
        registry.register_with_unit(
            "solarhub_collector_poll_duration",
            "How long one poll held its bus",
            Unit::Seconds,
            self.poll_seconds.clone(),
        );
        registry.register_with_unit(
            "solarhub_collector_bus_busy",
            "Time a bus spent in polls (its rate is the bus's busy fraction)",
            Unit::Seconds,
            self.busy_seconds.clone(),
        );
        registry.register(
            "solarhub_collector_bus_busy_ratio",
            "Fraction of the last minute a bus spent in polls",
            self.busy_ratio.clone(),
        );
        registry.register(
            "solarhub_collector_uplink_connected",
            "1 while a stream to the hub is open, else 0",
            self.uplink_connected.clone(),
        );
        registry.register(
            "solarhub_collector_uplink_reconnects",
            "Streams to the hub opened again after the first",
            self.uplink_reconnects.clone(),
        );
        registry.register(
            "solarhub_collector_batches_acknowledged",
            "Batches the hub acknowledged (committed)",
            self.batches_acknowledged.clone(),
        );
        registry.register(
            "solarhub_collector_readings_refused",
            "Readings the hub refused (stored nowhere), by the hub's reason",
            self.readings_refused.clone(),
        );
        registry.register_collector(Box::new(OutboxDepth(self.outbox.clone())));
        registry
    }
}

/// The outbox's depth, read at scrape time (so the age of the oldest batch is current).
#[derive(Debug)]
struct OutboxDepth(Arc<OnceLock<SharedOutbox>>);

impl Collector for OutboxDepth {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(outbox) = self.0.get() else {
            return Ok(());
        };
        // A scrape is encoded off tokio's workers (the endpoint encodes on the blocking pool).
        let (depth, dropped) =
            match outbox.blocking(|outbox| Ok((outbox.depth(), outbox.dropped()))) {
                Ok(read) => read,
                Err(_) => return Ok(()),
            };
        let Ok(depth) = depth else {
            return Ok(());
        };
        let now = chrono::Utc::now().timestamp_millis();
        let age = depth
            .oldest_created_at
            .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
        let gauges: [(&str, &str, Option<Unit>, ConstGauge<f64>); 3] = [
            (
                "solarhub_collector_outbox_batches",
                "Batches in the outbox, not yet acknowledged by the hub",
                None,
                ConstGauge::new(depth.batches as f64),
            ),
            (
                "solarhub_collector_outbox",
                "Size of the batches in the outbox",
                Some(Unit::Bytes),
                ConstGauge::new(depth.bytes as f64),
            ),
            (
                "solarhub_collector_outbox_oldest_age",
                "Age of the oldest batch in the outbox (0 when empty)",
                Some(Unit::Seconds),
                ConstGauge::new(age),
            ),
        ];
        for (name, help, unit, gauge) in &gauges {
            let metric =
                encoder.encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        if let Ok(dropped) = dropped {
            let counter = ConstCounter::new(dropped.max(0) as u64);
            let metric = encoder.encode_descriptor(
                "solarhub_collector_outbox_batches_dropped",
                "Batches the outbox dropped at its size or age limit",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric_with_its_unit_and_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = crate::uplink::outbox::Outbox::open(
            dir.path(),
            crate::uplink::outbox::Limits::default(),
        )
        .unwrap();
        let metrics = CollectorMetrics::default();
        metrics.attach_outbox(SharedOutbox::new(outbox));
        metrics.polled(&PollRecord {
            bus: "tcp 127.0.0.1:502".into(),
            device_id: "inv1".into(),
            result: super::super::PollResult::Timeout,
            duration: Duration::from_millis(1000),
            at: 0,
        });
        metrics.dropped("inv1", "sentinel");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry()).unwrap();
        for line in [
            "solarhub_collector_polls_total{device=\"inv1\",result=\"timeout\"} 1",
            "solarhub_collector_values_dropped_total{device=\"inv1\",reason=\"sentinel\"} 1",
            "solarhub_collector_poll_duration_seconds_count{bus=\"tcp 127.0.0.1:502\"} 1",
            "solarhub_collector_bus_busy_seconds_total{bus=\"tcp 127.0.0.1:502\"} 1.0",
            "solarhub_collector_outbox_batches 0.0",
            "solarhub_collector_outbox_bytes 0.0",
            "solarhub_collector_outbox_oldest_age_seconds 0.0",
            "solarhub_collector_outbox_batches_dropped_total 0",
            "solarhub_collector_uplink_connected 0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
