//! Battery packs: the passive JK BMS listener that turns bus frames into pack readings, and the
//! failover that picks, among a pack's adapters, the best one that is reporting.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::bus::{BusEvent, MAX_BACKOFF, Transport};
use crate::jkbms::{self, BatteryStatus, BusFrame, FrameScanner};
use crate::normalize::{BatteryReading, CellReading, DropReason, Normalizer, Reading};

/// A pack read through one adapter.
#[derive(Debug, Clone)]
pub struct PackSpec {
    pub pack_id: String,
    pub adapter_id: String,
    pub batteries: usize,
    pub cells_per_battery: usize,
    /// No frame for this long: the adapter is silent.
    pub silence: Duration,
}

async fn open_stream(transport: &Transport) -> std::io::Result<Box<dyn AsyncRead + Unpin + Send>> {
    Ok(match transport {
        Transport::Tcp(address) | Transport::RtuOverTcp(address) => {
            Box::new(tokio::net::TcpStream::connect(address).await?)
        }
        Transport::RtuSerial { path, settings } => Box::new(crate::serial::open(path, *settings)?),
    })
}

/// Plausible ranges of what a JK BMS reports.
const CELL_VOLTS: std::ops::RangeInclusive<f64> = 1.5..=4.5;
const TEMPERATURE: std::ops::RangeInclusive<f64> = -40.0..=100.0;
const PERCENT: std::ops::RangeInclusive<f64> = 0.0..=100.0;

/// Turns one round of battery statuses into a pack reading. Current and power follow the house
/// convention (> 0 discharging; JK reports charging as positive); implausible values are dropped
/// and counted.
pub fn pack_reading(
    spec: &PackSpec,
    statuses: &BTreeMap<u8, BatteryStatus>,
    normalizer: &mut Normalizer,
    ts: i64,
) -> Reading {
    let mut reading = Reading {
        device_id: spec.pack_id.clone(),
        adapter_id: spec.adapter_id.clone(),
        ts,
        fields: BTreeMap::new(),
        text: BTreeMap::new(),
        dropped: BTreeMap::new(),
        batteries: Vec::new(),
    };
    let mut check = |reading: &mut Reading,
                     field: String,
                     value: f64,
                     range: &std::ops::RangeInclusive<f64>|
     -> Option<f64> {
        if range.contains(&value) {
            Some(value)
        } else {
            normalizer.count_drop(reading, &field, DropReason::OutOfRange);
            None
        }
    };
    let (mut voltage_sum, mut voltages, mut current, mut power, mut soc_weighted, mut capacity) =
        (0.0, 0, 0.0, 0.0, 0.0, 0.0);
    let mut temperatures = Vec::new();
    for (id, status) in statuses {
        let index = i32::from(*id);
        let mut fields = BTreeMap::new();
        let mut cells = Vec::new();
        for (cell, volts) in status.cell_voltages_v.iter().enumerate() {
            let cell_index = cell as i32 + 1;
            if let Some(volts) = check(
                &mut reading,
                format!("b{index}.c{cell_index}.voltage_v"),
                *volts,
                &CELL_VOLTS,
            ) {
                cells.push(CellReading {
                    index: cell_index,
                    fields: BTreeMap::from([("voltage_v".to_owned(), volts)]),
                });
            }
        }
        let discharge_current = -status.current_a;
        fields.insert("current_a".to_owned(), discharge_current);
        fields.insert("voltage_v".to_owned(), status.pack_voltage_v);
        if let Some(t) = check(
            &mut reading,
            format!("b{index}.temperature_c"),
            status.temp1_c,
            &TEMPERATURE,
        ) {
            fields.insert("temperature_c".to_owned(), t);
            temperatures.push(t);
        }
        if let Some(soc) = check(
            &mut reading,
            format!("b{index}.soc_pct"),
            status.soc_pct,
            &PERCENT,
        ) {
            fields.insert("soc_pct".to_owned(), soc);
            let weight = if status.total_ah > 0.0 {
                status.total_ah
            } else {
                1.0
            };
            soc_weighted += soc * weight;
            capacity += weight;
        }
        if let Some(soh) = check(
            &mut reading,
            format!("b{index}.soh_pct"),
            status.soh_pct,
            &PERCENT,
        ) {
            fields.insert("soh_pct".to_owned(), soh);
        }
        voltage_sum += status.pack_voltage_v;
        voltages += 1;
        current += discharge_current;
        power += status.pack_voltage_v * discharge_current;
        reading.batteries.push(BatteryReading {
            index,
            fields,
            cells,
        });
    }
    if voltages > 0 {
        // Batteries of a pack are in parallel: one voltage, currents add.
        reading.fields.insert(
            "voltage_v".into(),
            crate::codec::round_to_resolution(voltage_sum / f64::from(voltages), 0.01),
        );
        reading.fields.insert(
            "current_a".into(),
            crate::codec::round_to_resolution(current, 0.001),
        );
        reading.fields.insert(
            "power_w".into(),
            crate::codec::round_to_resolution(power, 0.01),
        );
        reading
            .fields
            .insert("batteries_count".into(), f64::from(voltages));
        reading
            .fields
            .insert("cells_per_battery".into(), spec.cells_per_battery as f64);
    }
    if capacity > 0.0 {
        reading.fields.insert(
            "soc_pct".into(),
            crate::codec::round_to_resolution(soc_weighted / capacity, 0.01),
        );
    }
    if !temperatures.is_empty() {
        let mean = temperatures.iter().sum::<f64>() / temperatures.len() as f64;
        reading.fields.insert(
            "temperature_c".into(),
            crate::codec::round_to_resolution(mean, 0.1),
        );
    }
    reading
}

/// Listens to a JK BMS bus and sends a pack reading after every round in which each battery
/// answered. Silence longer than `spec.silence` is reported; a lost connection is opened again.
pub async fn listen_jkbms(
    transport: Transport,
    spec: PackSpec,
    events: mpsc::Sender<BusEvent>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut normalizer = Normalizer::default();
    let mut reconnect = Duration::from_millis(200);
    loop {
        let mut stream = tokio::select! {
            opened = open_stream(&transport) => match opened {
                Ok(stream) => stream,
                Err(error) => {
                    let event = BusEvent::Disconnected { reason: error.to_string(), retry_in: reconnect };
                    if events.send(event).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(reconnect) => {}
                        _ = shutdown.changed() => return,
                    }
                    reconnect = (reconnect * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        reconnect = Duration::from_millis(200);
        let mut scanner = FrameScanner::default();
        let mut asked: Option<u8> = None;
        let mut round: BTreeMap<u8, BatteryStatus> = BTreeMap::new();
        let mut buffer = [0u8; 1024];
        loop {
            let read = tokio::select! {
                read = tokio::time::timeout(spec.silence, stream.read(&mut buffer)) => read,
                _ = shutdown.changed() => return,
            };
            let count = match read {
                Err(_) => {
                    let event = BusEvent::Silent {
                        device_id: spec.pack_id.clone(),
                        retry_in: spec.silence,
                    };
                    if events.send(event).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(Ok(0)) | Ok(Err(_)) => break, // the gateway closed the connection: open it again
                Ok(Ok(count)) => count,
            };
            scanner.push(&buffer[..count]);
            while let Some(frame) = scanner.next_frame() {
                match frame {
                    BusFrame::Poll(id) => asked = Some(id),
                    BusFrame::Status(frame) => {
                        let (Some(id), Some(status)) = (
                            asked.take(),
                            jkbms::parse_status(&frame, spec.cells_per_battery),
                        ) else {
                            continue;
                        };
                        if round.contains_key(&id) || round.len() + 1 > spec.batteries {
                            round.clear();
                        }
                        round.insert(id, status);
                        if round.len() == spec.batteries {
                            let ts = chrono::Utc::now().timestamp_millis();
                            let reading = pack_reading(&spec, &round, &mut normalizer, ts);
                            round.clear();
                            if events.send(BusEvent::Reading(reading)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(reconnect) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Chooses, for one pack, which adapter's readings count: the highest-priority (lowest number)
/// enabled adapter that reported within `stale_after`. When it falls silent the next one takes
/// over; when it reports again it takes back over at once.
#[derive(Debug)]
pub struct Failover {
    /// (adapter id, priority), best first.
    adapters: Vec<(String, i32)>,
    last_seen: HashMap<String, Instant>,
    stale_after: Duration,
    active: Option<String>,
}

impl Failover {
    pub fn new(mut adapters: Vec<(String, i32)>, stale_after: Duration) -> Failover {
        adapters.sort_by_key(|(id, priority)| (*priority, id.clone()));
        Failover {
            adapters,
            last_seen: HashMap::new(),
            stale_after,
            active: None,
        }
    }

    /// The adapter whose readings count now.
    pub fn active(&self) -> Option<&str> {
        self.active.as_deref()
    }

    /// Takes a reading from any of the pack's adapters; returns it if it is the one that counts.
    pub fn offer(&mut self, reading: Reading, now: Instant) -> Option<Reading> {
        self.last_seen.insert(reading.adapter_id.clone(), now);
        let best = self
            .adapters
            .iter()
            .find(|(id, _)| {
                self.last_seen
                    .get(id)
                    .is_some_and(|seen| now.duration_since(*seen) <= self.stale_after)
            })
            .map(|(id, _)| id.clone());
        if best.as_deref() != Some(reading.adapter_id.as_str()) {
            return None;
        }
        if self.active != best {
            tracing::info!(pack = %reading.device_id, from = ?self.active, to = ?best, "battery adapter switched");
            self.active = best;
        }
        Some(reading)
    }
}
