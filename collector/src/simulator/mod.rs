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
}

impl SimDevice {
    pub fn new(
        device_id: impl Into<String>,
        map: Arc<RegisterMap>,
        model: DeviceModel,
        now: DateTime<Utc>,
    ) -> SimDevice {
        SimDevice {
            device_id: device_id.into(),
            map,
            state: Mutex::new(DeviceState {
                model,
                at: now,
                fault: Fault::None,
            }),
            requests: AtomicU64::new(0),
        }
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
}

impl SimUnit for SimDevice {
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
}

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
        }
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
        let Some(device) = self.units.get(&request.slave) else {
            // Nobody with that unit id on the line: silence, as on a real bus.
            return Ok(None);
        };
        let now = self.clock.now();
        match request.request {
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
