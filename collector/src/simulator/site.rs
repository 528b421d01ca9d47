//! A whole simulated site, one device of every driver type: a Modbus TCP gateway with a powdrive
//! inverter (unit 1), a senergy inverter (unit 2) and an iammeter meter (unit 3), the same three as
//! Modbus RTU on a pseudo-terminal, and optionally a SunSpec inverter, a JK BMS bank behind an
//! RS485-to-TCP gateway and a Pytes console on a pseudo-terminal. `collector simulate` and the
//! hub's demo both serve it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::model::DeviceModel;
use super::sunspec::{SimModel, SunSpecSim};
use super::{Clock, Endpoint, SimDevice, SimUnit, serve_tcp};
use crate::drivers::register_map::builtin_map;
use crate::uplink::assignment::Assignment;

/// The served site. Its servers stop when it is dropped.
/// Why a simulated site could not start.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Map(#[from] crate::drivers::register_map::MapError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub struct Site {
    pub gateway: SocketAddr,
    pub rtu_line: PathBuf,
    /// The Modbus devices of the gateway, by unit (for fault injection).
    pub devices: BTreeMap<u8, Arc<SimDevice>>,
    /// With every driver type: the SunSpec inverter, the JK BMS gateway and the Pytes console.
    pub others: Option<Others>,
    pub servers: JoinSet<std::io::Result<()>>,
}

pub struct Others {
    pub sunspec: SocketAddr,
    pub jkbms: SocketAddr,
    pub pytes: PathBuf,
}

/// Binds `port + offset` on `ip`, or any free port when `port` is 0.
async fn bind(listen: SocketAddr, offset: u16) -> Result<TcpListener, SiteError> {
    let address = match listen.port() {
        0 => listen,
        port => SocketAddr::new(listen.ip(), port + offset),
    };
    TcpListener::bind(address)
        .await
        .map_err(|source| SiteError::Listen { address, source })
}

/// Serves the site: the gateway on `listen`, the others (with `every_driver`) on the next two ports.
pub async fn serve_site(
    listen: SocketAddr,
    tz: chrono_tz::Tz,
    every_driver: bool,
) -> Result<Site, SiteError> {
    let now = chrono::Utc::now();
    let mut devices = BTreeMap::new();
    for (unit, device_type) in [(1u8, "powdrive"), (2, "senergy"), (3, "iammeter")] {
        let map = Arc::new(builtin_map(device_type)?);
        let model = match map.category.as_str() {
            "meter" => DeviceModel::meter(tz, u32::from(unit)),
            _ => DeviceModel::inverter(tz, 8000.0, u32::from(unit)),
        };
        devices.insert(
            unit,
            Arc::new(SimDevice::new(
                format!("sim-{device_type}"),
                map,
                model,
                now,
            )),
        );
    }
    let listener = bind(listen, 0).await?;
    let gateway = listener.local_addr()?;
    let endpoint = Arc::new(Endpoint::new(devices.clone(), Clock::Real));
    let mut servers = JoinSet::new();
    servers.spawn(serve_tcp(listener, endpoint.clone()));
    let rtu = crate::bus::serial::pseudo_terminal()?;
    let rtu_line = rtu.path.clone();
    servers.spawn(async move {
        let served = super::rtu::serve_rtu(rtu.device, endpoint).await;
        drop(rtu.slave);
        served
    });
    let others = if every_driver {
        Some(serve_others(listen, tz, &mut servers).await?)
    } else {
        None
    };
    Ok(Site {
        gateway,
        rtu_line,
        devices,
        others,
        servers,
    })
}

async fn serve_others(
    listen: SocketAddr,
    tz: chrono_tz::Tz,
    servers: &mut JoinSet<std::io::Result<()>>,
) -> Result<Others, SiteError> {
    // A SunSpec inverter with storage and battery models at 40000.
    let layouts = crate::drivers::sunspec::Layouts::builtin();
    let values = |pairs: &[(&str, f64)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    let models = vec![
        SimModel {
            id: 103,
            length: 50,
            values: values(&[
                ("W", 4212.0),
                ("DCW", 4390.0),
                ("Hz", 49.98),
                ("PhVphA", 230.4),
                ("WH", 12_345_678.0),
            ]),
            text: BTreeMap::new(),
        },
        SimModel {
            id: 802,
            length: 62,
            values: values(&[("SoC", 67.5), ("V", 51.23), ("A", -12.5), ("W", -640.0)]),
            text: BTreeMap::new(),
        },
    ];
    // It follows the sun and its battery like the map-based inverters (not fixed numbers at night).
    let physics = super::model::DeviceModel::inverter(tz, 6000.0, 40);
    let sunspec_unit: Arc<dyn SimUnit> =
        Arc::new(SunSpecSim::following(40000, physics, models, layouts));
    let sunspec_listener = bind(listen, 1).await?;
    let sunspec = sunspec_listener.local_addr()?;
    servers.spawn(serve_tcp(
        sunspec_listener,
        Arc::new(Endpoint::with_units(
            BTreeMap::from([(1u8, sunspec_unit)]),
            Clock::Real,
        )),
    ));
    // A JK BMS bank of 3 × 16 cells behind an RS485-to-TCP gateway.
    let jk_listener = bind(listen, 2).await?;
    let jkbms = jk_listener.local_addr()?;
    servers.spawn(super::jkbms::serve_gateway(
        jk_listener,
        Arc::new(super::jkbms::JkBank::new(3, 16)),
        Arc::new(super::jkbms::Line::default()),
        Duration::from_millis(500),
    ));
    // A Pytes console (4 batteries of 15 cells) on a pseudo-terminal.
    let pty = crate::bus::serial::pseudo_terminal()?;
    let pytes = pty.path.clone();
    let console = Arc::new(super::pytes::Console::new(4, 15));
    servers.spawn(async move {
        let served = super::pytes::serve_console(pty.device, console).await;
        drop(pty.slave);
        served
    });
    Ok(Others {
        sunspec,
        jkbms,
        pytes,
    })
}

impl Site {
    /// One line per server, for people.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "simulating on {}: unit 1 powdrive, unit 2 senergy, unit 3 iammeter",
                self.gateway
            ),
            format!(
                "simulating on {}: the same units as Modbus RTU (9600 8N1)",
                self.rtu_line.display()
            ),
        ];
        if let Some(others) = &self.others {
            lines.push(format!(
                "simulating on {}: SunSpec inverter (models 103, 802) at 40000",
                others.sunspec
            ));
            lines.push(format!(
                "simulating on {}: JK BMS bank, 3 batteries of 16 cells, broadcasting",
                others.jkbms
            ));
            lines.push(format!(
                "simulating on {}: Pytes console, 4 batteries of 15 cells",
                others.pytes.display()
            ));
        }
        lines
    }

    /// Every simulated device as an adapter assignment, polled every `poll_secs`. The ids are those
    /// of `deploy/config.example.yaml`'s devices and of the hub's demo installation.
    pub fn assignments(&self, poll_secs: f64) -> Vec<Assignment> {
        let host = self.gateway.ip().to_string();
        let assignment =
            |adapter_id: &str, device_id: &str, adapter_type: &str, config| Assignment {
                adapter_id: adapter_id.into(),
                device_id: device_id.into(),
                adapter_type: adapter_type.into(),
                priority: 1,
                enabled: true,
                config,
            };
        let modbus = |unit: u8| {
            json!({"transport": "tcp", "host": host, "port": self.gateway.port(), "unit_id": unit,
                   "poll_interval_secs": poll_secs})
        };
        let mut list = vec![
            assignment("powdrive1.adapter", "powdrive1", "powdrive", modbus(1)),
            assignment("senergy1.adapter", "senergy1", "senergy", modbus(2)),
            assignment(
                "grid_meter_1.adapter",
                "grid_meter_1",
                "iammeter",
                modbus(3),
            ),
        ];
        if let Some(others) = &self.others {
            list.push(assignment(
                "fronius1.adapter",
                "fronius1",
                "sunspec",
                json!({"transport": "tcp", "host": host, "port": others.sunspec.port(),
                       "poll_interval_secs": poll_secs}),
            ));
            list.push(assignment(
                "jkbms_bank.adapter1",
                "jkbms_bank",
                "jkbms_tcpip",
                json!({"connection_type": "tcpip", "host": host, "port": others.jkbms.port(),
                       "batteries": 3, "cells_per_battery": 16}),
            ));
            list.push(assignment(
                "battery1.adapter",
                "battery1",
                "pytes",
                json!({"serial_port": others.pytes.display().to_string(), "baudrate": 115200,
                       "batteries": 4, "cells_per_battery": 15, "poll_interval_secs": poll_secs}),
            ));
        }
        list
    }

    /// A collector config file (`adapters:`) for every simulated device.
    pub fn collector_yaml(&self, poll_secs: f64) -> String {
        let mut text = String::from(
            "# Written by `solarhub-collector simulate`: every simulated device, in the shape the hub assigns adapters.\nadapters:\n",
        );
        for assignment in self.assignments(poll_secs) {
            text.push_str(&format!(
                "  - {}\n",
                serde_json::to_string(&assignment).unwrap_or_default()
            ));
        }
        text
    }
}
