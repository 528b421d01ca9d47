//! One task per bus. A bus is one Modbus connection — a serial line, an RS485-to-TCP gateway, or a
//! Modbus TCP device — and carries one request at a time, so every device on it is polled by the same
//! task, in turn. Each device has its own poll interval; a device that stops answering backs off
//! (capped exponential) and costs the others at most one timeout per back-off period.

pub mod modbus_poll;
pub mod read_plan;
pub mod runtime;
pub mod serial;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_modbus::Slave;
use tokio_modbus::client::Context;
use tokio_modbus::prelude::SlaveContext;

use crate::backoff::Backoff;
use crate::bus::serial::SerialSettings;
use crate::drivers::normalize::Normalizer;
use crate::drivers::reading::Reading;
use crate::drivers::register_map::RegisterMap;
use crate::drivers::sunspec::{self, FoundModel, Layouts, SunSpecError};
use crate::observe::{PollRecord, PollResult};
use modbus_poll::RequestError;
use read_plan::ReadRequest;

/// Longest pause between two attempts at a silent device.
pub use crate::backoff::MAX_BACKOFF;

/// How a bus is reached.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Transport {
    /// Modbus TCP (MBAP framing).
    Tcp(SocketAddr),
    /// RTU frames through an RS485-to-TCP gateway.
    RtuOverTcp(SocketAddr),
    /// RTU on a serial line (an RS485 adapter, or a pseudo-terminal).
    RtuSerial {
        path: PathBuf,
        settings: SerialSettings,
    },
}

impl std::fmt::Display for Transport {
    /// The bus's name in logs and metric labels.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Tcp(address) => write!(f, "tcp {address}"),
            Transport::RtuOverTcp(address) => write!(f, "rtu-over-tcp {address}"),
            Transport::RtuSerial { path, .. } => write!(f, "rtu {}", path.display()),
        }
    }
}

/// How a device's registers become a reading.
#[derive(Debug, Clone)]
pub enum Driver {
    /// A register map file.
    Map(Arc<RegisterMap>),
    /// SunSpec: the device describes its own models.
    SunSpec(Arc<Layouts>),
}

/// One device polled on a bus.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub device_id: String,
    pub adapter_id: String,
    pub unit_id: u8,
    pub driver: Driver,
    pub poll_interval: Duration,
    pub timeout: Duration,
}

/// What a bus task reports besides readings.
#[derive(Debug, Clone, PartialEq)]
pub enum BusEvent {
    Reading(Reading),
    /// A poll ended (whatever its outcome): for metrics and data quality.
    Polled(PollRecord),
    /// The device gave no answer; it is next tried after `retry_in`.
    Silent {
        device_id: String,
        retry_in: Duration,
    },
    /// Some requests failed, the rest were read.
    Partial {
        device_id: String,
        failed_requests: usize,
    },
    /// The connection could not be opened; it is tried again after `retry_in`.
    Disconnected {
        reason: String,
        retry_in: Duration,
    },
}

impl BusEvent {
    /// Logs an event that is not a reading (readings are the caller's business).
    pub fn log(&self) {
        match self {
            BusEvent::Reading(_) | BusEvent::Polled(_) => {}
            BusEvent::Silent {
                device_id,
                retry_in,
            } => tracing::warn!(device = %device_id, ?retry_in, "device not answering"),
            BusEvent::Partial {
                device_id,
                failed_requests,
            } => tracing::warn!(device = %device_id, failed_requests, "some reads failed"),
            BusEvent::Disconnected { reason, retry_in } => {
                tracing::warn!(%reason, ?retry_in, "bus not reachable")
            }
        }
    }
}

/// Reports that a line could not be opened, then waits `wait` before the next try. `false` when
/// the collector is stopping (nobody listens any more, or shutdown fired while waiting).
pub async fn report_disconnected(
    events: &mpsc::Sender<BusEvent>,
    reason: String,
    wait: Duration,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let event = BusEvent::Disconnected {
        reason,
        retry_in: wait,
    };
    if events.send(event).await.is_err() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        _ = shutdown.changed() => false,
    }
}

struct DeviceSlot {
    spec: DeviceSpec,
    plan: Vec<ReadRequest>,
    /// SunSpec models found on the device, once discovered.
    models: Option<Vec<FoundModel>>,
    normalizer: Normalizer,
    next_due: Instant,
    /// How long a silent device is left alone: its poll interval, then doubling.
    backoff: Backoff,
}

impl DeviceSlot {
    fn silent(&mut self, now: Instant) -> Duration {
        let wait = self.backoff.failed();
        self.next_due = now + wait;
        wait
    }

    fn answered(&mut self, started: Instant) {
        self.backoff.succeeded();
        self.next_due = started + self.spec.poll_interval;
    }
}

/// Opens the bus. The unit id is set per request, so one context serves every device on the bus.
pub async fn connect(transport: &Transport) -> std::io::Result<Context> {
    match transport {
        Transport::Tcp(address) => {
            tokio_modbus::client::tcp::connect_slave(*address, Slave(1)).await
        }
        Transport::RtuOverTcp(address) => {
            let stream = tokio::net::TcpStream::connect(address).await?;
            Ok(tokio_modbus::client::rtu::attach_slave(stream, Slave(1)))
        }
        Transport::RtuSerial { path, settings } => {
            let port = crate::bus::serial::open(path, *settings)?;
            Ok(tokio_modbus::client::rtu::attach_slave(port, Slave(1)))
        }
    }
}

/// The outcome of polling one device once.
struct Outcome {
    reading: Option<Reading>,
    failures: Vec<RequestError>,
}

impl Outcome {
    /// How the poll ended, for metrics and data quality: an answer is an answer even when some
    /// requests failed; otherwise the worst failure names it.
    fn result(&self) -> PollResult {
        if self.reading.is_some() {
            PollResult::Answered
        } else if self
            .failures
            .iter()
            .any(|e| matches!(e, RequestError::Timeout(_)))
        {
            PollResult::Timeout
        } else if self
            .failures
            .iter()
            .any(|e| matches!(e, RequestError::Exception(_)))
        {
            PollResult::Exception
        } else {
            PollResult::Failed
        }
    }

    fn silent(&self) -> bool {
        self.reading.is_none()
            && self
                .failures
                .iter()
                .any(|e| matches!(e, RequestError::Timeout(_) | RequestError::Transport(_)))
    }

    fn transport_broken(&self) -> bool {
        self.failures
            .iter()
            .any(|e| matches!(e, RequestError::Transport(_)))
    }
}

async fn poll_device(context: &mut Context, slot: &mut DeviceSlot) -> Outcome {
    let ts = crate::clock::now_ms();
    match &slot.spec.driver {
        Driver::Map(map) => {
            let result = modbus_poll::poll(context, map, &slot.plan, slot.spec.timeout).await;
            let failures: Vec<RequestError> =
                result.failures.iter().map(|(_, e)| e.clone()).collect();
            if result.device_silent() {
                return Outcome {
                    reading: None,
                    failures,
                };
            }
            let reading = slot.normalizer.normalize(
                map,
                &result.registers,
                &slot.spec.device_id,
                &slot.spec.adapter_id,
                ts,
            );
            Outcome {
                reading: Some(reading),
                failures,
            }
        }
        Driver::SunSpec(layouts) => {
            if slot.models.is_none() {
                match sunspec::discover(context, layouts, slot.spec.timeout).await {
                    Ok((_, models)) => slot.models = Some(models),
                    Err(SunSpecError::Chain(error)) => {
                        return Outcome {
                            reading: None,
                            failures: vec![error],
                        };
                    }
                    Err(error @ SunSpecError::NoMarker(_)) => {
                        tracing::warn!(device = %slot.spec.device_id, %error, "not a SunSpec device");
                        return Outcome {
                            reading: None,
                            failures: vec![RequestError::Timeout(slot.spec.timeout)],
                        };
                    }
                }
            }
            let models = slot.models.clone().unwrap_or_default();
            let result = sunspec::poll(context, layouts, &models, slot.spec.timeout).await;
            if result.fields.is_empty() && !result.failures.is_empty() {
                // Gone, or rebooted with another layout: find the models again next time.
                slot.models = None;
                return Outcome {
                    reading: None,
                    failures: result.failures,
                };
            }
            let reading = Reading {
                device_id: slot.spec.device_id.clone(),
                adapter_id: slot.spec.adapter_id.clone(),
                ts,
                fields: result.fields,
                text: result.text,
                dropped: result
                    .out_of_range
                    .into_iter()
                    .map(|field| (field, crate::drivers::reading::DropReason::OutOfRange))
                    .collect(),
                batteries: Vec::new(),
            };
            Outcome {
                reading: Some(reading),
                failures: result.failures,
            }
        }
    }
}

async fn next_job(
    jobs: &mut Option<mpsc::Receiver<crate::control::Job>>,
) -> Option<crate::control::Job> {
    match jobs {
        Some(queue) => queue.recv().await,
        None => std::future::pending().await,
    }
}

/// Executes one control command on its device; `false` when the transport broke doing it.
async fn run_job(context: &mut Context, slots: &[DeviceSlot], job: crate::control::Job) -> bool {
    let command = &job.command;
    let Some(slot) = slots.iter().find(|s| s.spec.device_id == command.device_id) else {
        let _ = job.reply.send(crate::control::Executed::ended(
            command,
            solarhub_proto::v1::CommandState::Refused,
            "the device is not on this bus",
        ));
        return true;
    };
    let Driver::Map(map) = &slot.spec.driver else {
        let _ = job.reply.send(crate::control::Executed::ended(
            command,
            solarhub_proto::v1::CommandState::Refused,
            "the device has no declared settings",
        ));
        return true;
    };
    context.set_slave(Slave(slot.spec.unit_id));
    let executed = crate::control::execute::execute(context, map, &job, slot.spec.timeout).await;
    let broken = executed.transport_broken;
    let _ = job.reply.send(executed);
    !broken
}

/// Polls every device of one bus until `events` is closed (the receiver dropped) or `shutdown` fires.
/// Control commands for its devices (`jobs`) are executed between two polls, never during one.
pub async fn run_bus(
    transport: Transport,
    devices: Vec<DeviceSpec>,
    events: mpsc::Sender<BusEvent>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    jobs: Option<mpsc::Receiver<crate::control::Job>>,
) {
    let mut jobs = jobs;
    let now = Instant::now();
    let mut slots: Vec<DeviceSlot> = devices
        .into_iter()
        .map(|spec| DeviceSlot {
            plan: match &spec.driver {
                Driver::Map(map) => read_plan::plan(map),
                Driver::SunSpec(_) => Vec::new(),
            },
            models: None,
            backoff: Backoff::new(
                spec.poll_interval.max(Duration::from_millis(100)),
                MAX_BACKOFF,
            ),
            spec,
            normalizer: Normalizer::default(),
            next_due: now,
        })
        .collect();
    let mut reconnect = Backoff::new(Duration::from_millis(200), MAX_BACKOFF);
    let bus = transport.to_string();
    'connection: loop {
        let mut context = tokio::select! {
            connected = connect(&transport) => match connected {
                Ok(context) => context,
                Err(error) => {
                    tracing::warn!(%error, ?transport, "cannot open the bus");
                    let wait = reconnect.failed();
                    if !report_disconnected(&events, error.to_string(), wait, &mut shutdown).await {
                        return;
                    }
                    continue 'connection;
                }
            },
            _ = shutdown.changed() => return,
        };
        reconnect.succeeded();
        loop {
            let Some(index) = (0..slots.len()).min_by_key(|i| slots[*i].next_due) else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep_until(slots[index].next_due) => {}
                Some(job) = next_job(&mut jobs) => {
                    if !run_job(&mut context, &slots, job).await {
                        continue 'connection;
                    }
                    continue;
                }
                _ = shutdown.changed() => return,
            }
            let slot = &mut slots[index];
            context.set_slave(Slave(slot.spec.unit_id));
            let started = Instant::now();
            let outcome = poll_device(&mut context, slot).await;
            let mut to_send = vec![BusEvent::Polled(PollRecord {
                bus: bus.clone(),
                device_id: slot.spec.device_id.clone(),
                result: outcome.result(),
                duration: started.elapsed(),
                at: chrono::Utc::now().timestamp_millis(),
            })];
            if outcome.silent() {
                let retry_in = slot.silent(Instant::now());
                tracing::debug!(device = %slot.spec.device_id, ?retry_in, "device silent");
                to_send.push(BusEvent::Silent {
                    device_id: slot.spec.device_id.clone(),
                    retry_in,
                });
            } else {
                slot.answered(started);
                if !outcome.failures.is_empty() {
                    to_send.push(BusEvent::Partial {
                        device_id: slot.spec.device_id.clone(),
                        failed_requests: outcome.failures.len(),
                    });
                }
            }
            let broken = outcome.transport_broken();
            to_send.extend(outcome.reading.map(BusEvent::Reading));
            for event in to_send {
                if events.send(event).await.is_err() {
                    return;
                }
            }
            if broken {
                continue 'connection;
            }
        }
    }
}
