//! The uplink to the hub: readings are gathered into batches, each batch is stored in the outbox
//! before it is sent, sent in seq order over one stream, and deleted when the hub acknowledges it.
//! A lost connection is opened again with capped exponential back-off and jitter; on every
//! (re)connection the collector registers again and resends what the hub has not committed. With
//! several hub addresses (hubs sharing one database) a lost or refused connection moves on to the
//! next address at once, backing off only once every address has failed in a row; the hub a batch
//! reaches does not matter, since the committed seq lives in the shared database.

pub mod assignment;
pub mod hub_access;
pub mod outbox;

use std::sync::Arc;
use std::time::Duration;

use solarhub_proto::time::timestamp;
use solarhub_proto::tonic::service::interceptor::InterceptedService;
use solarhub_proto::tonic::transport::{Channel, Endpoint};
use solarhub_proto::v1 as proto;
use solarhub_proto::v1::collector_service_client::CollectorServiceClient;
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::drivers::reading::Reading;
use crate::observe::Observer;
use crate::uplink::hub_access::{Credentials, HubAccess};
use crate::uplink::outbox::{OutboxError, SharedOutbox};

/// How readings become batches and how hard the uplink retries.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    /// The hubs' gRPC addresses, tried in turn (at least one).
    pub hubs: Vec<String>,
    /// The token and TLS settings the hub is reached with.
    pub access: HubAccess,
    pub collector_id: String,
    pub version: String,
    /// A batch is closed at this many readings…
    pub batch_max_readings: usize,
    /// …or this long after its first reading.
    pub batch_max_wait: Duration,
    pub max_backoff: Duration,
    /// Registers control commands may write per device per 24 hours (flash wear).
    pub write_budget_per_day: u32,
}

impl UplinkConfig {
    /// The address to use on the `turn`th attempt.
    pub fn hub(&self, turn: usize) -> &str {
        self.hubs
            .get(turn % self.hubs.len().max(1))
            .map_or("", String::as_str)
    }

    /// Every address, for people.
    pub fn hubs_text(&self) -> String {
        self.hubs.join(", ")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("hub {hub} unreachable: {reason}")]
    Unreachable { hub: String, reason: String },
    #[error("hub {hub} refused collector {collector}: {reason}")]
    Refused {
        hub: String,
        collector: String,
        reason: String,
    },
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// A client of the hub's collector service that sends this collector's credentials.
pub type HubClient = CollectorServiceClient<InterceptedService<Channel, Credentials>>;

/// How often the collector pings the hub over an open connection.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the connection is given up and opened again.
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn connect(hub: &str, access: &HubAccess) -> Result<HubClient, UplinkError> {
    let unreachable = |reason: String| UplinkError::Unreachable {
        hub: hub.to_owned(),
        reason,
    };
    let mut endpoint = Endpoint::from_shared(hub.to_owned())
        .map_err(|e| unreachable(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        // A connection that stops answering without closing (a NAT or a middlebox that forgot
        // it, a hung hub) is found by its unanswered pings, not waited on forever: without them
        // the fault suite's half-open proxy hung the stream for good.
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    if let Some(tls) = access.tls() {
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|e| unreachable(error_chain(&e)))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unreachable(error_chain(&e)))?;
    Ok(
        CollectorServiceClient::with_interceptor(channel, access.credentials())
            .max_decoding_message_size(16 * 1024 * 1024),
    )
}

/// An error and its causes on one line (a TLS failure hides under "transport error").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Connects and registers: the client, the collector's assignments and the hub's last committed seq.
async fn connect_and_register(
    config: &UplinkConfig,
    hub: &str,
) -> Result<(HubClient, proto::RegisterResponse), UplinkError> {
    let mut client = connect(hub, &config.access).await?;
    let registered = register(&mut client, hub, config).await?;
    Ok((client, registered))
}

/// Registers and returns the collector's assignments and the hub's last committed seq.
pub async fn register(
    client: &mut HubClient,
    hub: &str,
    config: &UplinkConfig,
) -> Result<proto::RegisterResponse, UplinkError> {
    let request = proto::RegisterRequest {
        collector_id: config.collector_id.clone(),
        version: config.version.clone(),
    };
    match client.register(request).await {
        Ok(response) => Ok(response.into_inner()),
        Err(status)
            if matches!(
                status.code(),
                solarhub_proto::tonic::Code::NotFound
                    | solarhub_proto::tonic::Code::InvalidArgument
                    | solarhub_proto::tonic::Code::PermissionDenied
                    | solarhub_proto::tonic::Code::Unauthenticated
            ) =>
        {
            Err(UplinkError::Refused {
                hub: hub.to_owned(),
                collector: config.collector_id.clone(),
                reason: status.message().to_owned(),
            })
        }
        Err(status) => Err(UplinkError::Unreachable {
            hub: hub.to_owned(),
            reason: status.message().to_owned(),
        }),
    }
}

/// A reading as the hub receives it.
pub fn to_proto(reading: Reading) -> proto::DeviceReading {
    proto::DeviceReading {
        device_id: reading.device_id,
        adapter_id: reading.adapter_id,
        ts: Some(timestamp(reading.ts)),
        fields: reading.fields.into_iter().collect(),
        text: reading.text.into_iter().collect(),
        batteries: reading
            .batteries
            .into_iter()
            .map(|battery| proto::BatteryReading {
                index: battery.index,
                fields: battery.fields.into_iter().collect(),
                text: Default::default(),
                cells: battery
                    .cells
                    .into_iter()
                    .map(|cell| proto::CellReading {
                        index: cell.index,
                        fields: cell.fields.into_iter().collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// How often the poll tallies travel alone when no reading comes (every device silent): the hub
/// learns that the devices are failing although nothing else is sent.
const TALLY_ONLY_EVERY: Duration = Duration::from_secs(10);

/// Moves readings into the outbox in batches until `readings` closes; the last partial batch is
/// stored then too, so a reading that was taken is never dropped on the way to the outbox. Once a
/// batch is safe in the outbox its readings are copied to `tee`, when given. Each batch carries the
/// poll tallies `observer` gathered since the previous one.
pub async fn batch_readings(
    config: UplinkConfig,
    outbox: SharedOutbox,
    mut readings: mpsc::Receiver<Reading>,
    stored: watch::Sender<u64>,
    tee: Option<mpsc::Sender<Reading>>,
    observer: Arc<Observer>,
) {
    let mut tally_tick = tokio::time::interval(TALLY_ONLY_EVERY);
    tally_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tally_tick.tick().await;
    // While the outbox cannot be written (disk full, say) readings wait here, up to this many.
    let max_held = config.batch_max_readings.max(1) * 20;
    let mut pending: Vec<Reading> = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut failing_until: Option<tokio::time::Instant> = None;
    loop {
        let (flush, done) = tokio::select! {
            reading = readings.recv() => match reading {
                Some(reading) => {
                    pending.push(reading);
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + config.batch_max_wait);
                    (pending.len() >= config.batch_max_readings, false)
                }
                None => (true, true),
            },
            () = sleep_until(deadline) => (true, false),
            _ = tally_tick.tick() => {
                if pending.is_empty() && failing_until.is_none() && observer.has_tallies() {
                    let batch = proto::TelemetryBatch {
                        collector_id: config.collector_id.clone(),
                        seq: 0,
                        readings: Vec::new(),
                        polls: observer.take_tallies(),
                        sent_at: None,
                        command_results: Vec::new(),
                    };
                    let pushed = outbox.run(move |outbox| outbox.push(batch)).await;
                    match pushed {
                        Ok(batch) => { let _ = stored.send(batch.seq); }
                        Err(error) => tracing::error!(%error, "cannot store the poll tallies in the outbox: they are lost"),
                    }
                }
                (false, false)
            }
        };
        let may_try = done || failing_until.is_none_or(|t| tokio::time::Instant::now() >= t);
        if flush && may_try && !pending.is_empty() {
            if let Err(error) = store(
                &config,
                &outbox,
                &mut pending,
                &stored,
                tee.as_ref(),
                &observer,
            )
            .await
            {
                let retry = tokio::time::Instant::now() + Duration::from_secs(1);
                tracing::error!(%error, held = pending.len(), "cannot store readings in the outbox: holding them in memory and trying again in 1 s");
                failing_until = Some(retry);
                deadline = Some(retry);
            } else {
                failing_until = None;
                deadline = None;
            }
            if pending.len() > max_held {
                let excess = pending.len() - max_held;
                pending.drain(..excess);
                tracing::error!(
                    dropped = excess,
                    held = max_held,
                    "the outbox stays unwritable: dropped the oldest readings held in memory"
                );
            }
        }
        if done {
            if !pending.is_empty() {
                tracing::error!(
                    lost = pending.len(),
                    "stopping with readings the outbox could not store: they are lost"
                );
            }
            return;
        }
    }
}

/// Stores `pending` in the outbox in batches of at most `batch_max_readings`, oldest first; each
/// stored batch leaves `pending` and its readings go to `tee`. Stops at the first failure.
async fn store(
    config: &UplinkConfig,
    outbox: &SharedOutbox,
    pending: &mut Vec<Reading>,
    stored: &watch::Sender<u64>,
    tee: Option<&mpsc::Sender<Reading>>,
    observer: &Observer,
) -> Result<(), OutboxError> {
    while !pending.is_empty() {
        let n = pending.len().min(config.batch_max_readings.max(1));
        let polls = observer.take_tallies();
        let batch = proto::TelemetryBatch {
            collector_id: config.collector_id.clone(),
            seq: 0,
            readings: pending[..n].iter().cloned().map(to_proto).collect(),
            polls,
            sent_at: None,
            command_results: Vec::new(),
        };
        let to_store = batch.clone();
        let pushed = outbox.run(move |outbox| outbox.push(to_store)).await;
        let batch = match pushed {
            Ok(batch) => batch,
            Err(error) => {
                // The tallies go with the next batch.
                observer.restore_tallies(batch.polls);
                return Err(error);
            }
        };
        let _ = stored.send(batch.seq);
        let taken: Vec<Reading> = pending.drain(..n).collect();
        if let Some(tee) = tee {
            for reading in taken {
                let _ = tee.send(reading).await;
            }
        }
    }
    Ok(())
}

/// Sends the outbox to the hub, forever: connect, register, resend what is pending, then stream new
/// batches as they are stored; acknowledged batches leave the outbox.
pub async fn send_outbox(
    config: UplinkConfig,
    outbox: SharedOutbox,
    mut stored: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
    observer: Arc<Observer>,
    mut control: crate::control::ControlLink,
) {
    let mut attempts = Attempts {
        backoff: Backoff::new(Duration::from_millis(200), config.max_backoff),
        sessions: 0,
    };
    // Attempts since a session last got through, and the address to try next.
    let mut failed_in_row = 0usize;
    let mut turn = 0usize;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let hub = config.hub(turn).to_owned();
        let sessions_before = attempts.sessions;
        let session = session(
            &config,
            &hub,
            &outbox,
            &mut stored,
            &mut shutdown,
            &observer,
            &mut attempts,
            &mut control,
        )
        .await;
        observer.metrics().uplink_down();
        if attempts.sessions > sessions_before {
            failed_in_row = 0;
        }
        failed_in_row += 1;
        turn += 1;
        // The next address at once; a pause only when every address has failed in a row.
        let wait = if failed_in_row.is_multiple_of(config.hubs.len().max(1)) {
            Backoff::jittered(attempts.backoff.failed())
        } else {
            FAILOVER_PAUSE
        };
        match session {
            Ok(()) => return,
            Err(error @ UplinkError::Refused { .. }) => {
                tracing::error!(%error, retry_in = ?wait, "the hub refuses this collector; readings stay in the outbox until it accepts it");
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?wait, "uplink lost; readings stay in the outbox")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// What outlives one session: the retry rhythm and how many sessions got through.
struct Attempts {
    backoff: Backoff,
    sessions: u64,
}

/// The pause before trying the next hub address after one failed.
const FAILOVER_PAUSE: Duration = Duration::from_millis(100);

/// How long a stopping collector keeps trying to hand its outbox to the hub before it exits; what
/// is not acknowledged by then stays in the outbox for the next start.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection: returns `Ok` only at shutdown, once the readings have stopped and the outbox is
/// empty or [`DRAIN_TIMEOUT`] has passed. Control commands in acks go to `control`; the results
/// the hub has not stored go out (a `seq` 0 batch) at the start and whenever one is recorded.
#[allow(clippy::too_many_arguments)]
async fn session(
    config: &UplinkConfig,
    hub: &str,
    outbox: &SharedOutbox,
    stored: &mut watch::Receiver<u64>,
    shutdown: &mut watch::Receiver<bool>,
    observer: &Observer,
    attempts: &mut Attempts,
    control: &mut crate::control::ControlLink,
) -> Result<(), UplinkError> {
    let (mut client, registered) = connect_and_register(config, hub).await?;
    let hub_seq = registered.last_committed_seq;
    outbox
        .run(move |outbox| outbox.settle_with_hub(hub_seq))
        .await?;
    let (batches, outbound) = mpsc::channel::<proto::TelemetryBatch>(64);
    let mut acks = client
        .stream_telemetry(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await
        .map_err(|status| UplinkError::Unreachable {
            hub: hub.to_owned(),
            reason: status.message().to_owned(),
        })?
        .into_inner();
    tracing::info!(hub, collector = %config.collector_id, last_committed_seq = registered.last_committed_seq, "streaming to the hub");
    // This session got through: the next loss starts over from the shortest wait.
    attempts.backoff.succeeded();
    observer.metrics().uplink_up(attempts.sessions == 0);
    attempts.sessions += 1;
    // Everything pending goes out on a new stream, even at or below the hub's seq: that seq may
    // be another process's (see `Outbox::settle_with_hub`), and a batch leaves only with its ack.
    let mut sent_up_to = 0;
    let mut input_closed = false;
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    // A hub that takes control gets a first seq 0 batch at once (with the results it has not
    // stored, or none): it names this stream's collector, so commands can come before readings.
    let control_supported = registered.control;
    let mut results_due = control_supported;
    let mut hello = control_supported;
    let mut results_closed = false;
    loop {
        if results_due {
            results_due = false;
            let results = outbox.run(|outbox| outbox.unconfirmed_results()).await?;
            if !results.is_empty() || std::mem::take(&mut hello) {
                let batch = proto::TelemetryBatch {
                    collector_id: config.collector_id.clone(),
                    seq: 0,
                    command_results: results,
                    sent_at: Some(solarhub_proto::time::timestamp(crate::clock::now_ms())),
                    ..Default::default()
                };
                if batches.send(batch).await.is_err() {
                    return Err(UplinkError::Unreachable {
                        hub: hub.to_owned(),
                        reason: "the stream closed".into(),
                    });
                }
            }
        }
        // Send everything stored and not yet sent on this stream, in order.
        let pending = outbox.run(|outbox| outbox.pending(256)).await?;
        let already_sent = sent_up_to;
        for mut batch in pending.into_iter().filter(|b| b.seq > already_sent) {
            let seq = batch.seq;
            // The clock at sending, so the hub can tell a wrong clock from an old batch.
            batch.sent_at = Some(solarhub_proto::time::timestamp(crate::clock::now_ms()));
            if batches.send(batch).await.is_err() {
                return Err(UplinkError::Unreachable {
                    hub: hub.to_owned(),
                    reason: "the stream closed".into(),
                });
            }
            sent_up_to = seq;
        }
        if input_closed && outbox.run(|outbox| outbox.is_empty()).await? {
            return Ok(());
        }
        tokio::select! {
            ack = acks.message() => match ack {
                Ok(Some(ack)) => {
                    // One line per reason and device, not one per reading: a wrong clock
                    // refuses every reading of a batch.
                    let mut reasons: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
                    for refusal in &ack.refused {
                        *reasons.entry((refusal.device_id.as_str(), refusal.reason.as_str())).or_default() += 1;
                    }
                    for ((device, reason), readings) in reasons {
                        tracing::warn!(device, reason, readings, "the hub refused readings");
                    }
                    observer.metrics().refused(&ack.refused);
                    if !ack.results_stored.is_empty() {
                        let ids = ack.results_stored.clone();
                        outbox.run(move |outbox| outbox.confirm_results(&ids, true)).await?;
                    }
                    for command in ack.commands {
                        // The control task may be gone at shutdown; the hub sends it again.
                        let _ = control.commands.send(command).await;
                    }
                    // Seq 0 acknowledges no batch (an ack carrying only commands or results).
                    if ack.seq != 0 {
                        let seq = ack.seq;
                        let removed = outbox.run(move |outbox| outbox.acknowledge(seq)).await?;
                        observer.metrics().acknowledged(removed);
                    }
                }
                Ok(None) => return Err(UplinkError::Unreachable { hub: hub.to_owned(), reason: "the hub ended the stream".into() }),
                Err(status) => return Err(UplinkError::Unreachable { hub: hub.to_owned(), reason: status.message().to_owned() }),
            },
            changed = control.results.changed(), if !results_closed => {
                match changed {
                    Ok(()) => results_due = control_supported,
                    Err(_) => results_closed = true,
                }
            }
            changed = stored.changed(), if !input_closed => {
                if changed.is_err() {
                    input_closed = true;
                }
            }
            _ = shutdown.changed(), if drain_deadline.is_none() => {
                drain_deadline = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
            }
            () = sleep_until(drain_deadline) => {
                let left = outbox.run(|outbox| outbox.len()).await?;
                tracing::warn!(batches = left, "stopping with batches the hub has not acknowledged; they stay in the outbox for the next start");
                return Ok(());
            }
        }
    }
}

/// Assignments as the hub sends them, in the collector's config shape.
pub fn assignments_from_proto(
    list: &[proto::Assignment],
) -> Vec<crate::uplink::assignment::Assignment> {
    list.iter()
        .map(|a| crate::uplink::assignment::Assignment {
            adapter_id: a.adapter_id.clone(),
            device_id: a.device_id.clone(),
            adapter_type: a.adapter_type.clone(),
            priority: a.priority,
            enabled: a.enabled,
            config: serde_json::from_str(&a.config_json).unwrap_or(serde_json::Value::Null),
        })
        .collect()
}

/// Why a collector has no assignments to poll.
#[derive(Debug, thiserror::Error)]
pub enum AssignmentsError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("the assignments cached in the outbox cannot be read: {0}")]
    Cached(#[from] serde_json::Error),
}

/// The assignments to poll: from the hub when it answers (and cached for next time), else the ones
/// cached last time. With neither, registration is retried with back-off, logging every failure,
/// until it succeeds; `None` when `shutdown` fires first.
pub async fn obtain_assignments(
    config: &UplinkConfig,
    outbox: &SharedOutbox,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Vec<crate::uplink::assignment::Assignment>>, AssignmentsError> {
    let mut backoff = Backoff::new(Duration::from_millis(200), config.max_backoff);
    let mut turn = 0usize;
    loop {
        let hub = config.hub(turn).to_owned();
        turn += 1;
        let error = match connect_and_register(config, &hub).await {
            Ok((_, registered)) => {
                let assignments = assignments_from_proto(&registered.assignments);
                let cached = serde_json::to_string(&assignments)?;
                outbox
                    .run(move |outbox| outbox.cache_assignments(&cached))
                    .await?;
                tracing::info!(hub, collector = %config.collector_id, adapters = assignments.len(), "registered");
                return Ok(Some(assignments));
            }
            Err(error) => error,
        };
        let cached = outbox.run(|outbox| outbox.cached_assignments()).await?;
        if turn < config.hubs.len() {
            tracing::warn!(%error, "cannot register; trying the next hub");
            continue;
        }
        if let Some(cached) = cached {
            tracing::warn!(%error, "cannot register: polling with the assignments cached last time, buffering in the outbox");
            return Ok(Some(serde_json::from_str(&cached)?));
        }
        let wait = Backoff::jittered(backoff.failed());
        tracing::error!(%error, retry_in = ?wait, "cannot register and no assignments are cached yet: nothing to poll until the hub answers");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uplink::outbox::Limits;

    fn reading(ts: i64) -> Reading {
        Reading {
            device_id: "d".into(),
            adapter_id: "d.adapter".into(),
            ts,
            fields: [("power_w".to_owned(), ts as f64)].into_iter().collect(),
            text: Default::default(),
            dropped: Default::default(),
            batteries: Vec::new(),
        }
    }

    /// Readings the outbox holds, in order.
    fn held(outbox: &SharedOutbox) -> Vec<i64> {
        outbox
            .blocking(|outbox| outbox.pending(1000))
            .unwrap()
            .iter()
            .flat_map(|b| b.readings.iter().map(|r| r.ts.unwrap().seconds))
            .collect()
    }

    #[tokio::test]
    async fn readings_wait_in_memory_while_the_outbox_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = SharedOutbox::new(
            crate::uplink::outbox::Outbox::open(dir.path(), Limits::default()).unwrap(),
        );
        let config = UplinkConfig {
            access: crate::uplink::hub_access::HubAccess::none(),
            hubs: vec!["http://127.0.0.1:1".into()],
            collector_id: "c".into(),
            version: "t".into(),
            batch_max_readings: 2,
            batch_max_wait: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            write_budget_per_day: crate::control::DEFAULT_WRITE_BUDGET,
        };
        outbox
            .blocking(|outbox| outbox.simulate_unwritable(true))
            .unwrap();
        let (readings, readings_out) = mpsc::channel(16);
        let (stored, _stored_rx) = watch::channel(0);
        let (tee, mut teed) = mpsc::channel(16);
        let batcher = tokio::spawn(batch_readings(
            config,
            outbox.clone(),
            readings_out,
            stored,
            Some(tee),
            Arc::new(Observer::new()),
        ));
        for second in 1..=5 {
            readings.send(reading(second * 1000)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            held(&outbox).is_empty(),
            "the outbox is unwritable: nothing stored"
        );
        assert!(teed.try_recv().is_err(), "nothing reported as stored");

        outbox
            .blocking(|outbox| outbox.simulate_unwritable(false))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            held(&outbox),
            vec![1, 2, 3, 4, 5],
            "once the disk has room every reading is stored, in order"
        );
        drop(readings);
        batcher.await.unwrap();
        let mut witnessed = Vec::new();
        while let Ok(reading) = teed.try_recv() {
            witnessed.push(reading.ts / 1000);
        }
        assert_eq!(witnessed, vec![1, 2, 3, 4, 5]);
    }
}
