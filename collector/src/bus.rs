//! One task per bus. A bus is one Modbus connection — a serial line, an RS485-to-TCP gateway, or a
//! Modbus TCP device — and carries one request at a time, so every device on it is polled by the same
//! task, in turn. Each device has its own poll interval; a device that stops answering backs off
//! (capped exponential) and costs the others at most one timeout per back-off period.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_modbus::Slave;
use tokio_modbus::client::Context;
use tokio_modbus::prelude::SlaveContext;

use crate::modbus_poll;
use crate::normalize::{Normalizer, Reading};
use crate::read_plan::{self, ReadRequest};
use crate::register_map::RegisterMap;
use crate::serial::SerialSettings;

/// Longest pause between two attempts at a silent device.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How a bus is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// One device polled on a bus.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub device_id: String,
    pub adapter_id: String,
    pub unit_id: u8,
    pub map: Arc<RegisterMap>,
    pub poll_interval: Duration,
    pub timeout: Duration,
}

/// What a bus task reports besides readings.
#[derive(Debug, Clone, PartialEq)]
pub enum BusEvent {
    Reading(Reading),
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

struct DeviceSlot {
    spec: DeviceSpec,
    plan: Vec<ReadRequest>,
    normalizer: Normalizer,
    next_due: Instant,
    backoff: Option<Duration>,
}

impl DeviceSlot {
    fn silent(&mut self, now: Instant) -> Duration {
        let next = match self.backoff {
            None => self.spec.poll_interval.max(Duration::from_millis(100)),
            Some(previous) => (previous * 2).min(MAX_BACKOFF),
        };
        self.backoff = Some(next);
        self.next_due = now + next;
        next
    }

    fn answered(&mut self, started: Instant) {
        self.backoff = None;
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
            let port = crate::serial::open(path, *settings)?;
            Ok(tokio_modbus::client::rtu::attach_slave(port, Slave(1)))
        }
    }
}

/// Polls every device of one bus until `events` is closed (the receiver dropped) or `shutdown` fires.
pub async fn run_bus(
    transport: Transport,
    devices: Vec<DeviceSpec>,
    events: mpsc::Sender<BusEvent>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let now = Instant::now();
    let mut slots: Vec<DeviceSlot> = devices
        .into_iter()
        .map(|spec| DeviceSlot {
            plan: read_plan::plan(&spec.map),
            spec,
            normalizer: Normalizer::default(),
            next_due: now,
            backoff: None,
        })
        .collect();
    let mut reconnect_backoff = Duration::from_millis(200);
    'connection: loop {
        let mut context = tokio::select! {
            connected = connect(&transport) => match connected {
                Ok(context) => context,
                Err(error) => {
                    tracing::warn!(%error, ?transport, "cannot open the bus");
                    let event = BusEvent::Disconnected { reason: error.to_string(), retry_in: reconnect_backoff };
                    if events.send(event).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(reconnect_backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    reconnect_backoff = (reconnect_backoff * 2).min(MAX_BACKOFF);
                    continue 'connection;
                }
            },
            _ = shutdown.changed() => return,
        };
        reconnect_backoff = Duration::from_millis(200);
        loop {
            let Some(index) = (0..slots.len()).min_by_key(|i| slots[*i].next_due) else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep_until(slots[index].next_due) => {}
                _ = shutdown.changed() => return,
            }
            let slot = &mut slots[index];
            context.set_slave(Slave(slot.spec.unit_id));
            let started = Instant::now();
            let result =
                modbus_poll::poll(&mut context, &slot.spec.map, &slot.plan, slot.spec.timeout)
                    .await;
            let event = if result.device_silent() {
                let retry_in = slot.silent(Instant::now());
                tracing::debug!(device = %slot.spec.device_id, ?retry_in, "device silent");
                BusEvent::Silent {
                    device_id: slot.spec.device_id.clone(),
                    retry_in,
                }
            } else {
                slot.answered(started);
                if !result.failures.is_empty() {
                    let partial = BusEvent::Partial {
                        device_id: slot.spec.device_id.clone(),
                        failed_requests: result.failures.len(),
                    };
                    if events.send(partial).await.is_err() {
                        return;
                    }
                }
                let ts = chrono::Utc::now().timestamp_millis();
                let reading = slot.normalizer.normalize(
                    &slot.spec.map,
                    &result.registers,
                    &slot.spec.device_id,
                    &slot.spec.adapter_id,
                    ts,
                );
                BusEvent::Reading(reading)
            };
            if events.send(event).await.is_err() {
                return;
            }
            if result.transport_broken() {
                continue 'connection;
            }
        }
    }
}
