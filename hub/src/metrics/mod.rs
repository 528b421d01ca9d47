//! The hub's Prometheus metrics (`serve --metrics-listen ADDR`): what each part counts, and the
//! registry that gathers them. Parts own their handles (ingest its counters, live its watcher
//! gauge, the gRPC edge its per-method histogram); what is cheaper to read than to keep (the
//! database pool, the roller's backlog) is read at scrape time. Label sets are bounded: methods
//! come from the served descriptor sets, reasons and codes from fixed lists.

pub mod rpc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::db::Database;
pub use rpc::{RpcLayer, RpcMetrics};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// What ingest counts: batches, samples, refusals, and how long a commit takes.
#[derive(Debug, Clone)]
pub struct IngestMetrics {
    batches_committed: Counter,
    batches_replayed: Counter,
    samples_committed: Counter,
    samples_duplicate: Counter,
    refused: Family<ReasonLabels, Counter>,
    commit_seconds: Histogram,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        IngestMetrics {
            batches_committed: Counter::default(),
            batches_replayed: Counter::default(),
            samples_committed: Counter::default(),
            samples_duplicate: Counter::default(),
            refused: Family::default(),
            // 1 ms … 4 s.
            commit_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 13)),
        }
    }
}

impl IngestMetrics {
    /// A batch committed now (`replay`: it had been committed before and wrote nothing).
    pub fn committed(&self, replay: bool, stored: usize, duplicates: usize, seconds: f64) {
        if replay {
            self.batches_replayed.inc();
        } else {
            self.batches_committed.inc();
        }
        // A replay stores what was missing of it (a collector that reused its seqs).
        self.samples_committed.inc_by(stored as u64);
        self.samples_duplicate.inc_by(duplicates as u64);
        self.commit_seconds.observe(seconds);
    }

    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "solarhub_hub_batches_committed",
            "Telemetry batches committed (each seq once)",
            self.batches_committed.clone(),
        );
        registry.register(
            "solarhub_hub_batches_replayed",
            "Batches received again after their commit (nothing written)",
            self.batches_replayed.clone(),
        );
        registry.register(
            "solarhub_hub_samples_committed",
            "Device readings stored (inverter, meter and pack sample rows)",
            self.samples_committed.clone(),
        );
        registry.register(
            "solarhub_hub_samples_duplicate",
            "Readings whose device and time were already stored (not stored again)",
            self.samples_duplicate.clone(),
        );
        registry.register(
            "solarhub_hub_readings_refused",
            "Readings refused, by reason (unassigned, future, unknown_device, no_timestamp)",
            self.refused.clone(),
        );
        registry.register_with_unit(
            "solarhub_hub_commit_duration",
            "Time to commit one batch (its transaction, retries included)",
            Unit::Seconds,
            self.commit_seconds.clone(),
        );
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// What control counts: commands sent to collectors, and commands ended, by how.
#[derive(Debug, Clone, Default)]
pub struct ControlMetrics {
    sent: Counter,
    ended: Family<StateLabels, Counter>,
}

impl ControlMetrics {
    /// Commands handed to a collector's stream.
    pub fn sent(&self, commands: u64) {
        self.sent.inc_by(commands);
    }

    /// A command ended `state` (`done`, `failed`, `refused`, `expired`, `cancelled`).
    pub fn ended(&self, state: &'static str, commands: u64) {
        self.ended
            .get_or_create(&StateLabels { state })
            .inc_by(commands);
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "solarhub_hub_control_commands_sent",
            "Control commands handed to a collector's stream (again after a reconnect)",
            self.sent.clone(),
        );
        registry.register(
            "solarhub_hub_control_commands_ended",
            "Control commands ended, by state: done, failed (did not read back), refused, expired, cancelled",
            self.ended.clone(),
        );
    }
}

/// What retention counts: its passes and the rows they deleted, per table.
#[derive(Debug, Clone, Default)]
pub struct RetentionMetrics {
    passes: Counter,
    deleted: Family<TableLabels, Counter>,
    waiting: Family<TableLabels, Gauge>,
}

impl RetentionMetrics {
    /// A pass ended, having deleted `deleted` rows per table.
    pub fn pass(
        &self,
        deleted: &std::collections::BTreeMap<crate::db::retention::SampleTable, u64>,
    ) {
        self.passes.inc();
        for (table, rows) in deleted {
            self.deleted
                .get_or_create(&TableLabels {
                    table: table.name(),
                })
                .inc_by(*rows);
        }
    }

    /// The job leaves `table` alone until a period is named for it: `rows` were older than its
    /// period at the start.
    pub fn waiting(&self, table: crate::db::retention::SampleTable, rows: i64) {
        self.waiting
            .get_or_create(&TableLabels {
                table: table.name(),
            })
            .set(rows);
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "solarhub_hub_retention_waiting_rows",
            "Rows retention leaves alone until a period is named for their table (older than it when the hub started, before any pass went through the table), by table",
            self.waiting.clone(),
        );
        registry.register(
            "solarhub_hub_retention_passes",
            "Retention passes this hub ran to the end",
            self.passes.clone(),
        );
        registry.register(
            "solarhub_hub_retention_deleted_rows",
            "Rows retention deleted, by table",
            self.deleted.clone(),
        );
    }
}

/// What the roller counts: its passes' time, the raw samples they read, the device-hours they
/// made again from raw samples, and the devices it remembers.
#[derive(Debug, Clone)]
pub struct RollerMetrics {
    passes: Histogram,
    samples_read: Counter,
    device_hours_rebuilt: Counter,
    devices_followed: Counter,
    remembered: Gauge,
}

impl Default for RollerMetrics {
    fn default() -> Self {
        RollerMetrics {
            passes: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            samples_read: Counter::default(),
            device_hours_rebuilt: Counter::default(),
            devices_followed: Counter::default(),
            remembered: Gauge::default(),
        }
    }
}

impl RollerMetrics {
    /// A pass ended after `took`, having done `counts`; the roller remembers `remembered` devices.
    pub fn pass(
        &self,
        took: std::time::Duration,
        counts: crate::rollup::incremental::PassCounts,
        remembered: usize,
    ) {
        self.passes.observe(took.as_secs_f64());
        self.samples_read.inc_by(counts.samples_read);
        self.device_hours_rebuilt
            .inc_by(counts.device_hours_rebuilt);
        self.devices_followed.inc_by(counts.devices_followed);
        self.remembered.set(remembered as i64);
    }

    fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "solarhub_hub_rollup_pass_duration",
            "Time one roller pass took (every system with pending samples)",
            Unit::Seconds,
            self.passes.clone(),
        );
        registry.register(
            "solarhub_hub_rollup_samples_read",
            "Raw sample rows the roller read (new samples folded in, and the samples of hours rebuilt)",
            self.samples_read.clone(),
        );
        registry.register(
            "solarhub_hub_rollup_device_hours_rebuilt",
            "Device-hours the roller made again from raw samples (late or out-of-order samples, devices it did not remember)",
            self.device_hours_rebuilt.clone(),
        );
        registry.register(
            "solarhub_hub_rollup_devices_followed",
            "Device passes in which the roller folded the new samples into what it remembered",
            self.devices_followed.clone(),
        );
        registry.register(
            "solarhub_hub_rollup_devices_remembered",
            "Devices whose open hour the roller keeps in memory",
            self.remembered.clone(),
        );
    }
}

/// The registry of one hub: its parts' metrics and what is read at scrape time.
#[allow(clippy::too_many_arguments)] // one per part that counts; each is named at the call
pub fn registry(
    database: &Database,
    ingest: &IngestMetrics,
    watchers: &crate::live::watch::Watchers,
    rpc: &RpcMetrics,
    bridge: Option<&crate::mqtt::BridgeMetrics>,
    retention: Option<&RetentionMetrics>,
    roller: Option<&RollerMetrics>,
    control: &ControlMetrics,
) -> Registry {
    let mut registry = Registry::default();
    control.register(&mut registry);
    if let Some(roller) = roller {
        roller.register(&mut registry);
    }
    if let Some(retention) = retention {
        retention.register(&mut registry);
    }
    if let Some(bridge) = bridge {
        registry.register(
            "solarhub_hub_mqtt_messages_published",
            "MQTT messages handed to the broker's client",
            bridge.published.clone(),
        );
        registry.register(
            "solarhub_hub_mqtt_messages_dropped",
            "MQTT messages dropped because the queue to the broker was full (broker slow or away)",
            bridge.dropped.clone(),
        );
        registry.register(
            "solarhub_hub_mqtt_connections",
            "Connections made to the MQTT broker",
            bridge.connections.clone(),
        );
    }
    ingest.register(&mut registry);
    registry.register(
        "solarhub_hub_watchers",
        "Open WatchSystem streams",
        watchers.gauge(),
    );
    registry.register(
        "solarhub_hub_watch_states_computed",
        "System states computed for WatchSystem streams (a system's watchers share one per commit)",
        watchers.computed(),
    );
    rpc.register(&mut registry);
    registry.register_collector(Box::new(AtScrape {
        database: database.clone(),
    }));
    registry
}

/// The pool and the roller's backlog, read when scraped.
struct AtScrape {
    database: Database,
}

impl std::fmt::Debug for AtScrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtScrape").finish_non_exhaustive()
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?;
    gauge.encode(metric)
}

impl Collector for AtScrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let pool = self.database.pool_status();
        gauge(
            &mut encoder,
            "solarhub_hub_db_connections_in_use",
            "Pooled database connections checked out now",
            None,
            f64::from(pool.open.saturating_sub(pool.idle)),
        )?;
        gauge(
            &mut encoder,
            "solarhub_hub_db_connections_idle",
            "Pooled database connections open and idle",
            None,
            f64::from(pool.idle),
        )?;
        gauge(
            &mut encoder,
            "solarhub_hub_db_connections_max",
            "The pool's size limit",
            None,
            f64::from(pool.max_size),
        )?;
        gauge(
            &mut encoder,
            "solarhub_hub_db_waiting",
            "Calls waiting for a pooled connection now",
            None,
            pool.waiting as f64,
        )?;
        // Encoding runs on the blocking pool (see `solarhub_ops`), so a query is fine here.
        if let Ok(mut conn) = self.database.get()
            && let Ok((ranges, oldest)) = crate::db::rollups::pending_summary(&mut conn)
        {
            let now = chrono::Utc::now().timestamp_millis();
            gauge(
                &mut encoder,
                "solarhub_hub_rollup_pending_ranges",
                "Sample ranges waiting for the roller",
                None,
                ranges as f64,
            )?;
            gauge(
                &mut encoder,
                "solarhub_hub_rollup_lag",
                "Age of the oldest range waiting for the roller (0 when none)",
                Some(Unit::Seconds),
                oldest.map_or(0.0, |from| (now - from).max(0) as f64 / 1000.0),
            )?;
        }
        Ok(())
    }
}
