//! From adapter assignments (what the hub's `adapters` rows say: type, device, priority, and the
//! adapter's config JSON) to a runnable plan: which buses exist, which devices each carries with
//! which driver, and which packs fail over between adapters. Everything is checked here, at
//! start-up; a bad entry is refused with its source, the entry and the reason, and nothing runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::bus::serial::SerialSettings;
use crate::bus::{DeviceSpec, Driver, Transport};
use crate::drivers::pack::PackSpec;
use crate::drivers::register_map::{RegisterMap, builtin_map};
use crate::drivers::sunspec::Layouts;

use solarhub_proto::contract::DEFAULT_POLL_INTERVAL_SECS;

/// One adapter the collector must run.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub adapter_id: String,
    pub device_id: String,
    #[serde(rename = "type")]
    pub adapter_type: String,
    #[serde(default = "one")]
    pub priority: i32,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The adapter's configuration, as in the hub's `adapters.config_json`.
    #[serde(default)]
    pub config: Value,
}

fn one() -> i32 {
    1
}

fn yes() -> bool {
    true
}

/// A collector config file: either the assignments themselves, as the hub would send them, or the
/// hub to take them from (`hub:`), never both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorFile {
    #[serde(default)]
    pub adapters: Vec<Assignment>,
    pub hub: Option<HubLink>,
}

/// Where a collector streams to, and as whom.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubLink {
    /// The hub's gRPC address, e.g. `http://hub.lan:50051`, or a list of them (hubs sharing one
    /// database), tried in turn when one is unreachable.
    #[serde(deserialize_with = "one_or_many")]
    pub url: Vec<String>,
    pub collector_id: String,
    /// Where the outbox lives; relative paths are taken from the config file's directory (as
    /// for every path below).
    pub outbox_dir: Option<std::path::PathBuf>,
    /// A file holding this collector's token.
    pub token_file: Option<std::path::PathBuf>,
    /// The CA that signed the hub's certificate, for an `https://` hub.
    pub ca_cert: Option<std::path::PathBuf>,
    /// This collector's certificate and key, for a hub that requires client certificates.
    pub client_cert: Option<std::path::PathBuf>,
    pub client_key: Option<std::path::PathBuf>,
}

/// A string or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// Reads a collector config file; a file that names a hub must not also list adapters.
pub fn read_file(path: &Path) -> Result<CollectorFile, PlanError> {
    let fail = |reason: String| file_error(path, reason);
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let mut file: CollectorFile = serde_yaml::from_str(&text).map_err(|e| fail(e.to_string()))?;
    match &mut file.hub {
        Some(_) if !file.adapters.is_empty() => {
            return Err(fail(
                "a file with `hub:` takes its adapters from the hub; remove `adapters:` or `hub:`"
                    .into(),
            ));
        }
        Some(hub) if hub.url.is_empty() => {
            return Err(fail("`hub.url` lists no address".into()));
        }
        Some(hub) => {
            if let Some(base) = path.parent() {
                for file in [
                    &mut hub.outbox_dir,
                    &mut hub.token_file,
                    &mut hub.ca_cert,
                    &mut hub.client_cert,
                    &mut hub.client_key,
                ] {
                    if let Some(relative) = file.as_ref().filter(|f| f.is_relative()) {
                        *file = Some(base.join(relative));
                    }
                }
            }
        }
        None if file.adapters.is_empty() => {
            return Err(fail("lists no `adapters:` and names no `hub:`".into()));
        }
        None => {}
    }
    Ok(file)
}

/// What the collector runs.
#[derive(Debug, Default)]
pub struct Plan {
    /// Modbus buses and their devices (map-based and SunSpec drivers).
    pub buses: BTreeMap<Transport, Vec<DeviceSpec>>,
    /// Pytes consoles: one serial line each.
    pub consoles: Vec<(Transport, PackSpec, Duration)>,
    /// JK BMS buses listened to.
    pub jk_listeners: Vec<(Transport, PackSpec)>,
    /// Packs with several adapters: (pack id, [(adapter id, priority)]).
    pub failover: BTreeMap<String, Vec<(String, i32)>>,
    /// Adapters this collector cannot run (Bluetooth), reported, not refused.
    pub unsupported: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub entry: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| format!("{}: {}: {}", .source_name, p.entry, p.reason)).collect::<Vec<_>>().join("\n"))]
pub struct PlanError {
    pub source_name: String,
    pub problems: Vec<Problem>,
}

/// A problem with a config file as a whole.
fn file_error(path: &Path, reason: String) -> PlanError {
    PlanError {
        source_name: path.display().to_string(),
        problems: vec![Problem {
            entry: "(file)".into(),
            reason,
        }],
    }
}

/// Reads a collector config file.
pub fn load_file(path: &Path) -> Result<Plan, PlanError> {
    let fail = |reason: String| file_error(path, reason);
    let file = read_file(path)?;
    if file.hub.is_some() {
        return Err(fail(
            "names a hub: run it with `solarhub-collector run --config`, which streams to the hub"
                .into(),
        ));
    }
    build_plan(&path.display().to_string(), &file.adapters, path.parent())
}

struct Reader<'a> {
    config: &'a Value,
    problems: Vec<String>,
    /// Every setting asked for (held against the adapter types' schemas by a test).
    asked: BTreeSet<String>,
}

impl Reader<'_> {
    fn text(&mut self, key: &str) -> Option<String> {
        self.asked.insert(key.to_owned());
        match self.config.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(other) => {
                self.problems
                    .push(format!("{key} must be a non-empty string, got {other}"));
                None
            }
        }
    }

    fn number(&mut self, key: &str, range: std::ops::RangeInclusive<f64>) -> Option<f64> {
        self.asked.insert(key.to_owned());
        match self.config.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => match value.as_f64() {
                Some(n) if range.contains(&n) => Some(n),
                _ => {
                    self.problems.push(format!(
                        "{key} must be a number in {}..={}, got {value}",
                        range.start(),
                        range.end()
                    ));
                    None
                }
            },
        }
    }

    fn required<T>(&mut self, value: Option<T>, key: &str) -> Option<T> {
        if value.is_none() && !self.problems.iter().any(|p| p.starts_with(key)) {
            self.problems.push(format!("{key} is required"));
        }
        value
    }

    fn serial(&mut self, default_baud: u32) -> Option<(PathBuf, SerialSettings)> {
        let path = self.text("serial_port");
        let path = self.required(path, "serial_port")?;
        let baud = self
            .number("baudrate", 300.0..=921_600.0)
            .map(|b| b as u32)
            .unwrap_or(default_baud);
        if ![
            1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200, 230_400,
        ]
        .contains(&baud)
        {
            self.problems
                .push(format!("baudrate {baud} is not a supported baud rate"));
        }
        let parity = self.text("parity").unwrap_or_else(|| "N".into());
        if !["N", "E", "O"].contains(&parity.as_str()) {
            self.problems
                .push(format!("parity must be N, E or O, got {parity:?}"));
        }
        let data_bits = self.number("bytesize", 5.0..=8.0).unwrap_or(8.0) as u8;
        let stop_bits = self.number("stopbits", 1.0..=2.0).unwrap_or(1.0) as u8;
        let parity = parity.chars().next().unwrap_or('N');
        Some((
            PathBuf::from(path),
            SerialSettings {
                baud,
                parity,
                data_bits,
                stop_bits,
            },
        ))
    }

    fn address(&mut self, default_port: u16) -> Option<SocketAddr> {
        let host = self.text("host");
        let host = self.required(host, "host")?;
        let port = self
            .number("port", 1.0..=65535.0)
            .map(|p| p as u16)
            .unwrap_or(default_port);
        match (host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
        {
            Some(address) => Some(address),
            None => {
                self.problems
                    .push(format!("host {host:?} does not resolve"));
                None
            }
        }
    }

    /// The Modbus transport of an adapter: `transport: rtu | tcp | rtu_over_tcp`.
    fn modbus_transport(&mut self) -> Option<Transport> {
        let transport = self.text("transport").unwrap_or_else(|| "tcp".into());
        match transport.as_str() {
            "tcp" => self.address(502).map(Transport::Tcp),
            "rtu_over_tcp" => self.address(502).map(Transport::RtuOverTcp),
            "rtu" => self
                .serial(9600)
                .map(|(path, settings)| Transport::RtuSerial { path, settings }),
            other => {
                self.problems.push(format!(
                    "transport must be rtu, tcp or rtu_over_tcp, got {other:?}"
                ));
                None
            }
        }
    }
}

/// Where a device's register map comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum MapSource {
    Builtin(String),
    File(PathBuf),
}

/// The register maps of one plan, each read and parsed once and shared by every device that uses
/// it: a thousand inverters of one type hold one map, not a thousand copies.
#[derive(Default)]
struct Maps(HashMap<MapSource, Arc<RegisterMap>>);

impl Maps {
    fn get_or_load(&mut self, source: MapSource) -> Result<Arc<RegisterMap>, String> {
        if let Some(map) = self.0.get(&source) {
            return Ok(map.clone());
        }
        let map = Arc::new(
            match &source {
                MapSource::Builtin(device_type) => builtin_map(device_type),
                MapSource::File(path) => RegisterMap::load(path),
            }
            .map_err(|e| e.to_string())?,
        );
        self.0.insert(source, map.clone());
        Ok(map)
    }
}

/// Checks every assignment and groups them into buses. `base` resolves relative map file paths.
pub fn build_plan(
    source: &str,
    assignments: &[Assignment],
    base: Option<&Path>,
) -> Result<Plan, PlanError> {
    planned(source, assignments, base).0
}

/// The settings of its config the collector asks for when it plans `assignment` (whether the plan
/// succeeds or not): every one must be a property of its adapter type's schema.
pub fn settings_asked(assignment: &Assignment) -> BTreeSet<String> {
    planned("settings", std::slice::from_ref(assignment), None)
        .1
        .remove(&assignment.adapter_id)
        .unwrap_or_default()
}

/// [`build_plan`], and the settings each adapter's planning asked for.
fn planned(
    source: &str,
    assignments: &[Assignment],
    base: Option<&Path>,
) -> (Result<Plan, PlanError>, BTreeMap<String, BTreeSet<String>>) {
    let mut asked = BTreeMap::new();
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    let mut serial_settings: HashMap<PathBuf, (SerialSettings, String)> = HashMap::new();
    let layouts = Arc::new(Layouts::builtin());
    let mut maps = Maps::default();
    let mut pack_adapters: BTreeMap<String, Vec<(String, i32)>> = BTreeMap::new();
    for (index, assignment) in assignments.iter().enumerate() {
        let entry = format!("adapters[{index}] ({})", assignment.adapter_id);
        if !assignment.enabled {
            continue;
        }
        let mut reader = Reader {
            config: &assignment.config,
            problems: Vec::new(),
            asked: BTreeSet::new(),
        };
        if !assignment.config.is_object() && !assignment.config.is_null() {
            reader.problems.push("config must be a mapping".into());
        }
        let interval = Duration::from_secs_f64(
            reader
                .number("poll_interval_secs", 0.1..=86_400.0)
                .unwrap_or(DEFAULT_POLL_INTERVAL_SECS),
        );
        // A Modbus device's unit and how long one request may take (its types' schemas have
        // them; the battery consoles' and Bluetooth's do not).
        let modbus = |reader: &mut Reader<'_>| {
            let timeout =
                Duration::from_secs_f64(reader.number("timeout_secs", 0.05..=60.0).unwrap_or(1.0));
            let unit_id = reader.number("unit_id", 0.0..=247.0).unwrap_or(1.0) as u8;
            (timeout, unit_id)
        };
        match assignment.adapter_type.as_str() {
            "powdrive" | "senergy" | "iammeter" | "modbus" => {
                let (timeout, unit_id) = modbus(&mut reader);
                let map = match reader.text("register_map_file") {
                    Some(file) => {
                        let path = base
                            .map(|b| b.join(&file))
                            .unwrap_or_else(|| PathBuf::from(&file));
                        maps.get_or_load(MapSource::File(path))
                    }
                    None if assignment.adapter_type == "modbus" => {
                        Err("register_map_file is required for a modbus adapter".into())
                    }
                    None => maps.get_or_load(MapSource::Builtin(assignment.adapter_type.clone())),
                };
                let transport = reader.modbus_transport();
                match map {
                    Ok(map) => {
                        if let Some(transport) = transport.filter(|_| reader.problems.is_empty()) {
                            plan.buses.entry(transport).or_default().push(DeviceSpec {
                                device_id: assignment.device_id.clone(),
                                adapter_id: assignment.adapter_id.clone(),
                                unit_id,
                                driver: Driver::Map(map),
                                poll_interval: interval,
                                timeout,
                            });
                        }
                    }
                    Err(reason) => reader.problems.push(reason),
                }
            }
            "sunspec" => {
                let (timeout, unit_id) = modbus(&mut reader);
                if let Some(transport) = reader
                    .modbus_transport()
                    .filter(|_| reader.problems.is_empty())
                {
                    plan.buses.entry(transport).or_default().push(DeviceSpec {
                        device_id: assignment.device_id.clone(),
                        adapter_id: assignment.adapter_id.clone(),
                        unit_id,
                        driver: Driver::SunSpec(layouts.clone()),
                        poll_interval: interval,
                        timeout,
                    });
                }
            }
            "pytes" | "jkbms" | "jkbms_tcpip" => {
                let batteries = reader.number("batteries", 1.0..=64.0);
                let batteries = reader.required(batteries, "batteries");
                let cells = reader.number("cells_per_battery", 1.0..=64.0);
                let cells = reader.required(cells, "cells_per_battery");
                let transport = if assignment.adapter_type == "pytes" {
                    reader
                        .serial(115_200)
                        .map(|(path, settings)| Transport::RtuSerial { path, settings })
                } else {
                    // Each type names its line by its own setting (as its schema says).
                    let line = match assignment.adapter_type.as_str() {
                        "jkbms_tcpip" => "connection_type",
                        _ => "transport",
                    };
                    match reader.text(line).as_deref() {
                        Some("rtu") => reader
                            .serial(115_200)
                            .map(|(path, settings)| Transport::RtuSerial { path, settings }),
                        _ => reader.address(502).map(Transport::RtuOverTcp),
                    }
                };
                // How long a JK bus may stay silent; the Pytes console is asked, so its schema
                // has no such setting.
                let silence = Duration::from_secs_f64(match assignment.adapter_type.as_str() {
                    "pytes" => 3.0,
                    _ => reader.number("poll_timeout", 0.1..=60.0).unwrap_or(3.0),
                });
                if let (Some(transport), Some(batteries), Some(cells), true) =
                    (transport, batteries, cells, reader.problems.is_empty())
                {
                    let spec = PackSpec {
                        pack_id: assignment.device_id.clone(),
                        adapter_id: assignment.adapter_id.clone(),
                        batteries: batteries as usize,
                        cells_per_battery: cells as usize,
                        silence,
                    };
                    pack_adapters
                        .entry(assignment.device_id.clone())
                        .or_default()
                        .push((assignment.adapter_id.clone(), assignment.priority));
                    if assignment.adapter_type == "pytes" {
                        plan.consoles.push((transport, spec, interval));
                    } else {
                        plan.jk_listeners.push((transport, spec));
                    }
                }
            }
            "jkbms_ble" => {
                plan.unsupported.push((
                    assignment.adapter_id.clone(),
                    "Bluetooth LE is not available to this collector".into(),
                ));
            }
            other => reader
                .problems
                .push(format!("unknown adapter type {other:?}")),
        }
        // One serial line, one set of line settings.
        for devices in plan
            .buses
            .keys()
            .chain(plan.consoles.iter().map(|(t, _, _)| t))
            .chain(plan.jk_listeners.iter().map(|(t, _)| t))
        {
            if let Transport::RtuSerial { path, settings } = devices {
                match serial_settings.get(path) {
                    Some((other, first)) if other != settings && first != &entry => {
                        reader.problems.push(format!(
                            "{} is also used by {first} with other line settings",
                            path.display()
                        ));
                    }
                    Some(_) => {}
                    None => {
                        serial_settings.insert(path.clone(), (*settings, entry.clone()));
                    }
                }
            }
        }
        asked.insert(assignment.adapter_id.clone(), reader.asked);
        problems.extend(reader.problems.into_iter().map(|reason| Problem {
            entry: entry.clone(),
            reason,
        }));
    }
    plan.failover = pack_adapters
        .into_iter()
        .filter(|(_, adapters)| adapters.len() > 1)
        .collect();
    let plan = if problems.is_empty() {
        Ok(plan)
    } else {
        Err(PlanError {
            source_name: source.to_owned(),
            problems,
        })
    };
    (plan, asked)
}
