//! Runs a [`Plan`]: one task per Modbus bus, per Pytes console and per JK BMS bus, and one stage
//! that applies pack failover and hands readings on. Stops when `shutdown` fires.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::backoff::{Backoff, MAX_BACKOFF};
use crate::bus::{BusEvent, Transport, run_bus};
use crate::drivers::normalize::Normalizer;
use crate::drivers::pack::{Failover, PackSpec, listen_jkbms, pack_reading};
use crate::drivers::reading::Reading;
use crate::observe::{Observer, PollRecord, PollResult};
use crate::uplink::assignment::Plan;

/// Where control commands go: a queue per Modbus bus, and the router that sends each device's
/// commands to its bus's queue (devices read through a register map; SunSpec ones declare no
/// settings).
pub fn control_queues(
    plan: &Plan,
) -> (
    crate::control::Router,
    BTreeMap<Transport, mpsc::Receiver<crate::control::Job>>,
) {
    let mut devices = std::collections::HashMap::new();
    let mut queues = BTreeMap::new();
    for (transport, specs) in &plan.buses {
        let (sender, receiver) = mpsc::channel(16);
        for device in specs {
            if matches!(device.driver, crate::bus::Driver::Map(_)) {
                devices.insert(device.device_id.clone(), sender.clone());
            }
        }
        queues.insert(transport.clone(), receiver);
    }
    (crate::control::Router::new(devices), queues)
}

/// Polls a Pytes console every `interval`.
async fn run_console(
    transport: Transport,
    spec: PackSpec,
    interval: Duration,
    events: mpsc::Sender<BusEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let bus = transport.to_string();
    let Transport::RtuSerial { path, settings } = transport else {
        return;
    };
    let mut normalizer = Normalizer::default();
    // Opening the line: never reset, as a line that opened once and failed later is suspect.
    let mut reopen = Backoff::new(interval, MAX_BACKOFF);
    loop {
        let mut port = match crate::bus::serial::open(&path, settings) {
            Ok(port) => port,
            Err(error) => {
                let wait = reopen.failed();
                let reason = format!("{}: {error}", path.display());
                if !crate::bus::report_disconnected(&events, reason, wait, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        let mut silent = Backoff::new(interval, MAX_BACKOFF);
        loop {
            let started = Instant::now();
            let mut wait = interval;
            let read =
                crate::drivers::pytes::read_bank(&mut port, spec.batteries, spec.silence).await;
            let polled = BusEvent::Polled(PollRecord {
                bus: bus.clone(),
                device_id: spec.pack_id.clone(),
                result: if read.is_ok() {
                    PollResult::Answered
                } else {
                    PollResult::Timeout
                },
                duration: started.elapsed(),
                at: chrono::Utc::now().timestamp_millis(),
            });
            if events.send(polled).await.is_err() {
                return;
            }
            let event = match read {
                Ok(units) => {
                    silent.succeeded();
                    let ts = crate::clock::now_ms();
                    BusEvent::Reading(pack_reading(&spec, &units, &mut normalizer, ts))
                }
                Err(_) => {
                    wait = silent.failed();
                    BusEvent::Silent {
                        device_id: spec.pack_id.clone(),
                        retry_in: wait,
                    }
                }
            };
            if events.send(event).await.is_err() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(started + wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Starts every task of `plan` and forwards the readings that count to `readings`; every poll and
/// every dropped value is reported to `observer`.
/// Control commands for a bus's devices come through its queue in `jobs`.
pub async fn run(
    plan: Plan,
    readings: mpsc::Sender<Reading>,
    observer: std::sync::Arc<Observer>,
    shutdown: watch::Receiver<bool>,
    mut jobs: BTreeMap<crate::bus::Transport, mpsc::Receiver<crate::control::Job>>,
) {
    let (events, mut incoming) = mpsc::channel::<BusEvent>(1024);
    let mut tasks = Vec::new();
    for (transport, devices) in plan.buses {
        let queue = jobs.remove(&transport);
        tasks.push(tokio::spawn(run_bus(
            transport,
            devices,
            events.clone(),
            shutdown.clone(),
            queue,
        )));
    }
    for (transport, spec, interval) in plan.consoles {
        tasks.push(tokio::spawn(run_console(
            transport,
            spec,
            interval,
            events.clone(),
            shutdown.clone(),
        )));
    }
    for (transport, spec) in plan.jk_listeners {
        tasks.push(tokio::spawn(listen_jkbms(
            transport,
            spec,
            events.clone(),
            shutdown.clone(),
        )));
    }
    for (adapter, reason) in &plan.unsupported {
        tracing::warn!(adapter = %adapter, %reason, "adapter not supported here; its pack uses its other adapters");
    }
    drop(events);
    let mut failover: BTreeMap<String, Failover> = plan
        .failover
        .into_iter()
        .map(|(pack, adapters)| (pack, Failover::new(adapters, Duration::from_secs(10))))
        .collect();
    while let Some(event) = incoming.recv().await {
        match event {
            BusEvent::Polled(record) => observer.polled(&record),
            BusEvent::Reading(reading) => {
                observer.read(&reading);
                let reading = match failover.get_mut(&reading.device_id) {
                    Some(chooser) => chooser.offer(reading, Instant::now()),
                    None => Some(reading),
                };
                if let Some(reading) = reading
                    && readings.send(reading).await.is_err()
                {
                    break;
                }
            }
            other => other.log(),
        }
    }
    for task in tasks {
        let _ = task.await;
    }
}
