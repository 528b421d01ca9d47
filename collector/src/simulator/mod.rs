//! `solarhub-collector simulate`: simulated devices served over real Modbus, driven by the same map
//! files the collector reads, with switchable faults. It is the demo's devices and the test bed of
//! every map-based driver.
//!
//! The simulator owns its devices' state and clock. A test can freeze the clock and step it, so the
//! ground truth it reads is exactly what the devices serve.

pub mod jkbms;
pub mod model;
pub mod pytes;
pub mod rtu;
pub mod site;
pub mod sunspec;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use crate::drivers::codec;
use crate::drivers::register_map::{RegisterKind, RegisterMap};
use model::DeviceModel;

/// A fault a simulated device can be switched into.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Requests get no answer at all (the client times out).
    Timeout,
    /// Requests get a "server device failure" exception.
    Exception,
    /// These registers read as their type's "not available" value (0xFFFF, 0x7FFF, ...).
    Sentinel(Vec<String>),
    /// The device answers, but its values are out of any plausible range.
    Garbage(Vec<String>),
}

/// The simulator's time: real, or frozen and stepped by hand (tests).
#[derive(Debug, Clone)]
pub enum Clock {
    Real,
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock::Manual(Arc::new(Mutex::new(start)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::Real => Utc::now(),
            Clock::Manual(time) => *time
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }
}

/// One simulated device: its map, its physical model and its fault switch.
pub struct SimDevice {
    pub device_id: String,
    map: Arc<RegisterMap>,
    state: Mutex<DeviceState>,
    /// Requests addressed to this device, answered or not.
    requests: AtomicU64,
}

struct DeviceState {
    model: DeviceModel,
    /// When the model was last advanced.
    at: DateTime<Utc>,
    fault: Fault,
    /// The settings registers (the map's declared settings), as written.
    settings: BTreeMap<u16, u16>,
    /// Writes are answered but not carried out (a register that does not take).
    ignore_writes: bool,
}

/// The settings registers of a new simulated Deye-family inverter (the powdrive map's layout):
/// battery currents 100 A, grid charge current 40 A, shutdown/restart/low capacity 10/50/20 %,
/// time of use on every day with windows starting at 00:00, 04:00, ... 20:00, 5000 W, SOC 20 %,
/// no grid charging.
const DEYE_SETTINGS: &[(u16, u16)] = &[
    (108, 100),
    (109, 100),
    (115, 10),
    (116, 50),
    (117, 20),
    (128, 40),
    (146, 0xFF),
    (148, 0),
    (149, 400),
    (150, 800),
    (151, 1200),
    (152, 1600),
    (153, 2000),
    (154, 5000),
    (155, 5000),
    (156, 5000),
    (157, 5000),
    (158, 5000),
    (159, 5000),
    (166, 20),
    (167, 20),
    (168, 20),
    (169, 20),
    (170, 20),
    (171, 20),
];

impl SimDevice {
    pub fn new(
        device_id: impl Into<String>,
        map: Arc<RegisterMap>,
        model: DeviceModel,
        now: DateTime<Utc>,
    ) -> SimDevice {
        let settings: BTreeMap<u16, u16> = map
            .settings
            .iter()
            .flat_map(|s| s.registers())
            .map(|register| {
                let initial = DEYE_SETTINGS
                    .iter()
                    .find(|(r, _)| *r == register)
                    .map_or(0, |(_, v)| *v);
                (register, initial)
            })
            .collect();
        let device = SimDevice {
            device_id: device_id.into(),
            map,
            state: Mutex::new(DeviceState {
                model,
                at: now,
                fault: Fault::None,
                settings,
                ignore_writes: false,
            }),
            requests: AtomicU64::new(0),
        };
        device.apply_settings();
        device
    }

    /// Writes are answered as done but change nothing (the read-back shows it).
    pub fn ignore_writes(&self, ignore: bool) {
        self.state().ignore_writes = ignore;
    }

    /// The settings registers as they are now.
    pub fn settings_registers(&self) -> BTreeMap<u16, u16> {
        self.state().settings.clone()
    }

    /// A declared setting's value as the device holds it.
    pub fn setting(&self, name: &str) -> Option<crate::drivers::settings::Requested> {
        let setting = self.map.settings.iter().find(|s| s.name == name)?;
        let state = self.state();
        let words: Vec<u16> = setting
            .registers()
            .map(|r| state.settings.get(&r).copied().unwrap_or(0))
            .collect();
        Some(setting.read(&words, self.map.word_order))
    }

    pub fn set_soc_pct(&self, soc_pct: f64) {
        self.state().model.set_soc_pct(soc_pct);
    }

    /// Tells the model what the settings now ask (time-of-use windows, battery limits), by the
    /// settings' names, so any map that declares them drives it.
    fn apply_settings(&self) {
        use crate::drivers::settings::Requested;
        let number = |name: &str| match self.setting(name) {
            Some(Requested::Number(n)) => Some(n),
            _ => None,
        };
        let text = |name: &str| match self.setting(name) {
            Some(Requested::Text(t)) => Some(t),
            _ => None,
        };
        let hour = |name: &str| {
            text(name).and_then(|t| {
                let (h, m) = t.split_once(':')?;
                Some(h.parse::<f64>().ok()? + m.parse::<f64>().ok()? / 60.0)
            })
        };
        let mut controls = model::Controls::default();
        if text("tou_enabled").as_deref() == Some("on") {
            let starts: Vec<Option<f64>> =
                (1..=6).map(|i| hour(&format!("tou{i}_start"))).collect();
            for i in 0..6 {
                let (Some(start), Some(end)) = (starts[i], starts[(i + 1) % 6]) else {
                    continue;
                };
                let n = i + 1;
                controls.windows.push(model::Window {
                    start_hour: start,
                    end_hour: end,
                    soc_pct: number(&format!("tou{n}_soc_pct")).unwrap_or(20.0),
                    power_w: number(&format!("tou{n}_power_w")).unwrap_or(0.0),
                    grid_charge: text(&format!("tou{n}_grid_charge")).as_deref() == Some("on"),
                });
            }
        }
        // The battery's limits in W at its nominal 51.2 V.
        controls.max_charge_w = number("max_charge_current_a").map(|a| a * 51.2);
        controls.max_discharge_w = number("max_discharge_current_a").map(|a| a * 51.2);
        self.state().model.control(controls);
    }

    /// Writes `words` from `start`: every register must be a declared setting's.
    fn write(&self, start: u16, words: &[u16]) -> Result<(), ExceptionCode> {
        {
            let mut state = self.state();
            match state.fault {
                Fault::Exception => return Err(ExceptionCode::ServerDeviceFailure),
                Fault::Timeout => return Err(ExceptionCode::GatewayTargetDevice),
                _ => {}
            }
            let addresses = (0..words.len()).map(|i| start.checked_add(i as u16));
            if addresses
                .clone()
                .any(|a| a.is_none_or(|a| !state.settings.contains_key(&a)))
            {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            if state.ignore_writes {
                return Ok(());
            }
            for (address, word) in addresses.flatten().zip(words) {
                state.settings.insert(address, *word);
            }
        }
        self.apply_settings();
        Ok(())
    }

    /// Requests this device has received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn map(&self) -> &RegisterMap {
        &self.map
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DeviceState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set_fault(&self, fault: Fault) {
        self.state().fault = fault;
    }

    pub fn reset_counters(&self) {
        self.state().model.reset_counters();
    }

    /// Brings the model up to `now`.
    pub fn advance_to(&self, now: DateTime<Utc>) {
        let mut state = self.state();
        let from = state.at;
        if now > from {
            state.model.advance(from, now);
            state.at = now;
        }
    }

    /// Ground truth: the exact value of every register of the map, as served now.
    pub fn truth(&self) -> BTreeMap<String, f64> {
        let state = self.state();
        let values = state.model.values(state.at);
        self.map
            .registers
            .iter()
            .filter(|r| r.value_type != crate::drivers::register_map::ValueType::Ascii)
            .map(|r| {
                let value = values.get(&r.name).copied().unwrap_or(0.0);
                (
                    r.name.clone(),
                    if self.is_magnitude(&r.name) {
                        value.abs()
                    } else {
                        value
                    },
                )
            })
            .collect()
    }

    /// A register that carries a magnitude whose sign another register gives.
    fn is_magnitude(&self, register: &str) -> bool {
        self.map
            .fields
            .values()
            .any(|rule| rule.sign_of.is_some() && rule.register.as_deref() == Some(register))
    }

    /// The 16-bit words at `start..start+count`, or the fault's answer.
    fn read(
        &self,
        kind: RegisterKind,
        start: u16,
        count: u16,
    ) -> Result<Option<Vec<u16>>, ExceptionCode> {
        let fault = self.state().fault.clone();
        match &fault {
            Fault::Timeout => return Ok(None),
            Fault::Exception => return Err(ExceptionCode::ServerDeviceFailure),
            Fault::None | Fault::Sentinel(_) | Fault::Garbage(_) => {}
        }
        let truth = self.truth();
        let mut words = vec![0u16; usize::from(count)];
        let end = u32::from(start) + u32::from(count);
        if kind == RegisterKind::Holding {
            for (address, word) in self.state().settings.range(start..) {
                if u32::from(*address) >= end {
                    break;
                }
                words[usize::from(address - start)] = *word;
            }
        }
        for register in self.map.registers.iter().filter(|r| r.kind == kind) {
            let first = u32::from(register.address);
            let last = first + u32::from(register.word_count());
            if last <= u32::from(start) || first >= end {
                continue;
            }
            let encoded = match &fault {
                Fault::Sentinel(names) if names.contains(&register.name) => {
                    let raw = register
                        .value_type
                        .default_sentinels()
                        .first()
                        .copied()
                        .unwrap_or(0);
                    codec::encode_raw(register, raw, self.map.word_order)
                }
                Fault::Garbage(names) if names.contains(&register.name) => {
                    let wild = register
                        .max
                        .map(|max| max + 10.0 * register.scale)
                        .unwrap_or(0.0);
                    codec::encode(register, wild, self.map.word_order)
                }
                _ if register.value_type == crate::drivers::register_map::ValueType::Ascii => {
                    codec::encode_text(register, &self.device_id)
                }
                _ => codec::encode(
                    register,
                    truth.get(&register.name).copied().unwrap_or(0.0),
                    self.map.word_order,
                ),
            };
            for (offset, word) in encoded.into_iter().enumerate() {
                let address = first + offset as u32;
                if address >= u32::from(start) && address < end {
                    words[(address - u32::from(start)) as usize] = word;
                }
            }
        }
        Ok(Some(words))
    }
}

/// The devices behind one Modbus endpoint, by unit id (several RTU devices share a line or gateway).
/// Anything that answers register reads behind an endpoint.
pub trait SimUnit: Send + Sync {
    /// The words at `start..start+count`; `Ok(None)` is silence, `Err` an exception response.
    fn read_registers(
        &self,
        kind: RegisterKind,
        start: u16,
        count: u16,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<u16>>, ExceptionCode>;

    /// Writes holding registers from `start` (functions 0x06 and 0x10).
    fn write_registers(
        &self,
        _start: u16,
        _words: &[u16],
        _now: DateTime<Utc>,
    ) -> Result<(), ExceptionCode> {
        Err(ExceptionCode::IllegalFunction)
    }
}

impl SimUnit for SimDevice {
    fn write_registers(
        &self,
        start: u16,
        words: &[u16],
        now: DateTime<Utc>,
    ) -> Result<(), ExceptionCode> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.advance_to(now);
        self.write(start, words)
    }

    fn read_registers(
        &self,
        kind: RegisterKind,
        start: u16,
        count: u16,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<u16>>, ExceptionCode> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.advance_to(now);
        self.read(kind, start, count)
    }
}

pub struct Endpoint {
    pub units: BTreeMap<u8, Arc<dyn SimUnit>>,
    pub clock: Clock,
    /// How long each answer takes, as on a slow serial line.
    pub response_delay: std::time::Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    log: Mutex<Vec<Transaction>>,
}

/// One request as the endpoint saw it, in arrival order (the transaction log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub unit: u8,
    /// The Modbus function code: 0x03, 0x04, 0x06, 0x10, ...
    pub function: u8,
    pub start: u16,
    pub count: u16,
}

/// The most transactions an endpoint logs (the oldest go first).
const LOG_LIMIT: usize = 200_000;

impl Endpoint {
    pub fn new(units: BTreeMap<u8, Arc<SimDevice>>, clock: Clock) -> Endpoint {
        let units = units
            .into_iter()
            .map(|(unit, device)| (unit, device as Arc<dyn SimUnit>))
            .collect();
        Endpoint::with_units(units, clock)
    }

    /// An endpoint with any kind of simulated units.
    pub fn with_units(units: BTreeMap<u8, Arc<dyn SimUnit>>, clock: Clock) -> Endpoint {
        Endpoint {
            units,
            clock,
            response_delay: std::time::Duration::ZERO,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Every request this endpoint received so far, in order.
    pub fn transactions(&self) -> Vec<Transaction> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn with_response_delay(mut self, delay: std::time::Duration) -> Endpoint {
        self.response_delay = delay;
        self
    }

    /// The most requests this endpoint ever had in flight at once, over all its connections.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Answers one request as the line would: counted in flight, after the response delay.
    pub async fn answer_slow(
        &self,
        request: SlaveRequest<'static>,
    ) -> Result<Option<Response>, ExceptionCode> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !self.response_delay.is_zero() {
            tokio::time::sleep(self.response_delay).await;
        }
        let answer = self.answer(request);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        answer
    }

    fn answer(&self, request: SlaveRequest<'static>) -> Result<Option<Response>, ExceptionCode> {
        let (function, start, count) = match &request.request {
            Request::ReadHoldingRegisters(start, count) => (0x03, *start, *count),
            Request::ReadInputRegisters(start, count) => (0x04, *start, *count),
            Request::WriteSingleRegister(start, _) => (0x06, *start, 1),
            Request::WriteMultipleRegisters(start, words) => (0x10, *start, words.len() as u16),
            other => (other.function_code().value(), 0, 0),
        };
        {
            let mut log = self
                .log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if log.len() >= LOG_LIMIT {
                log.drain(..LOG_LIMIT / 2);
            }
            log.push(Transaction {
                unit: request.slave,
                function,
                start,
                count,
            });
        }
        let Some(device) = self.units.get(&request.slave) else {
            // Nobody with that unit id on the line: silence, as on a real bus.
            return Ok(None);
        };
        let now = self.clock.now();
        match request.request {
            Request::WriteSingleRegister(address, word) => {
                device.write_registers(address, &[word], now)?;
                Ok(Some(Response::WriteSingleRegister(address, word)))
            }
            Request::WriteMultipleRegisters(address, words) => {
                device.write_registers(address, &words, now)?;
                Ok(Some(Response::WriteMultipleRegisters(
                    address,
                    words.len() as u16,
                )))
            }
            Request::ReadHoldingRegisters(start, count) => Ok(device
                .read_registers(RegisterKind::Holding, start, count, now)?
                .map(Response::ReadHoldingRegisters)),
            Request::ReadInputRegisters(start, count) => Ok(device
                .read_registers(RegisterKind::Input, start, count, now)?
                .map(Response::ReadInputRegisters)),
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

#[derive(Clone)]
struct EndpointService {
    endpoint: Arc<Endpoint>,
}

impl Service for EndpointService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        let endpoint = self.endpoint.clone();
        Box::pin(async move { endpoint.answer_slow(request).await })
    }
}

/// Serves `endpoint` over Modbus TCP on `listener` until the task is dropped.
pub async fn serve_tcp(listener: TcpListener, endpoint: Arc<Endpoint>) -> std::io::Result<()> {
    let server = Server::new(listener);
    let service = EndpointService { endpoint };
    let on_connected = move |stream, address: SocketAddr| {
        let service = service.clone();
        async move { accept_tcp_connection(stream, address, move |_| Ok(Some(service.clone()))) }
    };
    server
        .serve(
            &on_connected,
            |error| tracing::debug!(%error, "simulator connection ended"),
        )
        .await
}
