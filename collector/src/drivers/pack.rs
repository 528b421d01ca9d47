//! Battery packs: the passive JK BMS listener that turns bus frames into pack readings, and the
//! failover that picks, among a pack's adapters, the best one that is reporting.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use solarhub_proto::contract::{battery, cell, pack};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backoff::{Backoff, MAX_BACKOFF};
use crate::bus::{BusEvent, Transport};
use crate::drivers::jkbms::{self, BatteryStatus, BusFrame, FrameScanner};
use crate::drivers::normalize::Normalizer;
use crate::drivers::reading::{BatteryReading, CellReading, DropReason, Reading};

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
        Transport::RtuSerial { path, settings } => {
            Box::new(crate::bus::serial::open(path, *settings)?)
        }
    })
}

/// Plausible ranges of what a JK BMS reports.
const CELL_VOLTS: std::ops::RangeInclusive<f64> = 1.5..=4.5;
const TEMPERATURE: std::ops::RangeInclusive<f64> = -40.0..=100.0;
const PERCENT: std::ops::RangeInclusive<f64> = 0.0..=100.0;
const PACK_VOLTS: std::ops::RangeInclusive<f64> = 5.0..=100.0;
const CURRENT: std::ops::RangeInclusive<f64> = -500.0..=500.0;

/// One battery module as any battery protocol reports it. Current is as BMSes report it: > 0
/// charging.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UnitStatus {
    pub voltage_v: Option<f64>,
    pub current_a: Option<f64>,
    pub temperature_c: Option<f64>,
    pub soc_pct: Option<f64>,
    pub soh_pct: Option<f64>,
    /// Rated capacity, for weighting the pack SOC.
    pub capacity_ah: Option<f64>,
    pub cell_voltages_v: Vec<f64>,
    /// Per-cell temperatures where the protocol has them.
    pub cell_temperatures_c: Vec<f64>,
    /// Status words (`basic_st`, `volt_st`, ...), as text.
    pub status: BTreeMap<String, String>,
}

impl From<&BatteryStatus> for UnitStatus {
    fn from(status: &BatteryStatus) -> UnitStatus {
        UnitStatus {
            voltage_v: Some(status.pack_voltage_v),
            current_a: Some(status.current_a),
            temperature_c: Some(status.temp1_c),
            soc_pct: Some(status.soc_pct),
            soh_pct: Some(status.soh_pct),
            capacity_ah: Some(status.total_ah),
            cell_voltages_v: status.cell_voltages_v.clone(),
            cell_temperatures_c: Vec::new(),
            status: BTreeMap::new(),
        }
    }
}

/// Turns one round of battery statuses into a pack reading. Current and power follow the house
/// convention (> 0 discharging; BMSes report charging as positive); implausible values are dropped
/// and counted.
pub fn pack_reading(
    spec: &PackSpec,
    units: &BTreeMap<u8, UnitStatus>,
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
                     value: Option<f64>,
                     range: &std::ops::RangeInclusive<f64>|
     -> Option<f64> {
        let value = value?;
        if range.contains(&value) {
            Some(value)
        } else {
            normalizer.count_drop(reading, &field, DropReason::OutOfRange);
            None
        }
    };
    let (mut voltage_sum, mut voltages, mut current, mut power, mut soc_weighted, mut capacity) =
        (0.0, 0, 0.0, 0.0, 0.0, 0.0);
    let mut currents = 0;
    let mut temperatures = Vec::new();
    for (id, unit) in units {
        let index = i32::from(*id);
        let mut fields = BTreeMap::new();
        let mut cells = Vec::new();
        for (cell, volts) in unit.cell_voltages_v.iter().enumerate() {
            let cell_index = cell as i32 + 1;
            let Some(volts) = check(
                &mut reading,
                format!("b{index}.c{cell_index}.voltage_v"),
                Some(*volts),
                &CELL_VOLTS,
            ) else {
                continue;
            };
            let mut cell_fields = BTreeMap::from([(cell::VOLTAGE_V.to_owned(), volts)]);
            let temperature = unit.cell_temperatures_c.get(cell).copied();
            if let Some(t) = check(
                &mut reading,
                format!("b{index}.c{cell_index}.temperature_c"),
                temperature,
                &TEMPERATURE,
            ) {
                cell_fields.insert(cell::TEMPERATURE_C.to_owned(), t);
            }
            cells.push(CellReading {
                index: cell_index,
                fields: cell_fields,
            });
        }
        let voltage = check(
            &mut reading,
            format!("b{index}.voltage_v"),
            unit.voltage_v,
            &PACK_VOLTS,
        );
        if let Some(volts) = voltage {
            fields.insert(battery::VOLTAGE_V.to_owned(), volts);
            voltage_sum += volts;
            voltages += 1;
        }
        if let Some(charging) = check(
            &mut reading,
            format!("b{index}.current_a"),
            unit.current_a,
            &CURRENT,
        ) {
            let discharging = -charging;
            fields.insert(battery::CURRENT_A.to_owned(), discharging);
            current += discharging;
            currents += 1;
            if let Some(volts) = voltage {
                power += volts * discharging;
            }
        }
        if let Some(t) = check(
            &mut reading,
            format!("b{index}.temperature_c"),
            unit.temperature_c,
            &TEMPERATURE,
        ) {
            fields.insert(battery::TEMPERATURE_C.to_owned(), t);
            temperatures.push(t);
        }
        if let Some(soc) = check(
            &mut reading,
            format!("b{index}.soc_pct"),
            unit.soc_pct,
            &PERCENT,
        ) {
            fields.insert(battery::SOC_PCT.to_owned(), soc);
            let weight = unit.capacity_ah.filter(|ah| *ah > 0.0).unwrap_or(1.0);
            soc_weighted += soc * weight;
            capacity += weight;
        }
        if let Some(soh) = check(
            &mut reading,
            format!("b{index}.soh_pct"),
            unit.soh_pct,
            &PERCENT,
        ) {
            fields.insert(battery::SOH_PCT.to_owned(), soh);
        }
        for (word, value) in &unit.status {
            reading
                .text
                .insert(format!("b{index}.{word}"), value.clone());
        }
        reading.batteries.push(BatteryReading {
            index,
            fields,
            cells,
        });
    }
    // Batteries of a pack are in parallel: one voltage, currents add.
    if voltages > 0 {
        reading.fields.insert(
            pack::VOLTAGE_V.into(),
            crate::drivers::codec::round_to_resolution(voltage_sum / f64::from(voltages), 0.01),
        );
    }
    if currents > 0 {
        reading.fields.insert(
            pack::CURRENT_A.into(),
            crate::drivers::codec::round_to_resolution(current, 0.001),
        );
        reading.fields.insert(
            pack::POWER_W.into(),
            crate::drivers::codec::round_to_resolution(power, 0.01),
        );
    }
    reading
        .fields
        .insert(pack::BATTERIES_COUNT.into(), units.len() as f64);
    reading.fields.insert(
        pack::CELLS_PER_BATTERY.into(),
        spec.cells_per_battery as f64,
    );
    if capacity > 0.0 {
        reading.fields.insert(
            pack::SOC_PCT.into(),
            crate::drivers::codec::round_to_resolution(soc_weighted / capacity, 0.01),
        );
    }
    if !temperatures.is_empty() {
        let mean = temperatures.iter().sum::<f64>() / temperatures.len() as f64;
        reading.fields.insert(
            pack::TEMPERATURE_C.into(),
            crate::drivers::codec::round_to_resolution(mean, 0.1),
        );
    }
    reading
}

/// The wait before opening a JK BMS bus again after it closed, and after its first failure to open.
const FIRST_RECONNECT: Duration = Duration::from_millis(200);

/// Listens to a JK BMS bus and sends a pack reading after every round in which each battery
/// answered. Silence longer than `spec.silence` is reported; a lost connection is opened again.
pub async fn listen_jkbms(
    transport: Transport,
    spec: PackSpec,
    events: mpsc::Sender<BusEvent>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut normalizer = Normalizer::default();
    let mut reconnect = Backoff::new(FIRST_RECONNECT, MAX_BACKOFF);
    loop {
        let mut stream = tokio::select! {
            opened = open_stream(&transport) => match opened {
                Ok(stream) => stream,
                Err(error) => {
                    let wait = reconnect.failed();
                    if !crate::bus::report_disconnected(&events, error.to_string(), wait, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        reconnect.succeeded();
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
                            let ts = crate::clock::now_ms();
                            let units: BTreeMap<u8, UnitStatus> = round
                                .iter()
                                .map(|(id, status)| (*id, UnitStatus::from(status)))
                                .collect();
                            let reading = pack_reading(&spec, &units, &mut normalizer, ts);
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
            () = tokio::time::sleep(FIRST_RECONNECT) => {}
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
