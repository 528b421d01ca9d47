//! Import of the existing app's `config.yaml` (DESIGN §6.1) into the catalog.
//!
//! The file is read once, deserialized into strict structs (`deny_unknown_fields` on every hierarchy
//! section), cross-checked (ids, references, adapter configs against their type's JSON Schema) and
//! turned into an [`Installation`]: a complete set of catalog rows. Only then does anything touch the
//! database, in one transaction. Every problem names the file, the line and the field. Sections that
//! are not part of the hierarchy (`mqtt`, `smart`, `billing`, ...) are accepted; what is not imported
//! from them is logged.

mod builder;
mod raw;
pub mod yaml_index;

use builder::Builder;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{NaiveDateTime, TimeZone};
use serde_json::Value as Json;

use crate::adapter_types::KnownAdapterType;
use crate::catalog::{
    Adapter, BatteryArray, BatteryArrayAttachment, BatteryPack, BatteryPackAdapter, Installation,
    Inverter, InverterArray, Meter, System, id_problem,
};
use raw::{RawAdapterBlock, RawConfig};
use yaml_index::YamlIndex;

/// Non-hierarchy sections real files carry. Accepted; what solarhub does not use from them is logged.
const KNOWN_OTHER_SECTIONS: &[&str] = &[
    "mqtt",
    "polling",
    "logging",
    "discovery",
    "smart",
    "billing",
    "battery_data_source",
    "timezone",
];

/// One thing wrong with a config file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Path of the offending field, like `inverters[0].adapter.baudrate`.
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{}", format_problems(.path, .problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
    #[error("built-in adapter types are broken: {0}")]
    AdapterTypes(String),
}

fn format_problems(path: &Path, problems: &[ConfigProblem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| match (p.line, p.column) {
            (Some(line), Some(column)) => format!(
                "{}:{line}:{column}: {}: {}",
                path.display(),
                p.field,
                p.message
            ),
            (Some(line), None) => format!("{}:{line}: {}: {}", path.display(), p.field, p.message),
            _ => format!("{}: {}: {}", path.display(), p.field, p.message),
        })
        .collect();
    lines.join("\n")
}

/// Where the system's timezone came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimezoneSource {
    Home,
    TopLevel,
    SmartForecast,
    DefaultUtc,
}

impl fmt::Display for TimezoneSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimezoneSource::Home => "home.timezone",
            TimezoneSource::TopLevel => "the top-level timezone",
            TimezoneSource::SmartForecast => "smart.forecast.tz",
            TimezoneSource::DefaultUtc => "the default (UTC): the file names no timezone",
        })
    }
}

/// A config file turned into catalog rows, with what the import chose to leave out.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub installation: Installation,
    pub timezone_source: TimezoneSource,
    /// Human-readable notes on what was not imported (sections, keys).
    pub ignored: Vec<String>,
    /// The `mqtt:` section (the broker the old app published to), for the MQTT bridge.
    pub mqtt: Option<MqttSection>,
}

/// The old app's `mqtt:` section: `host`, `port`, `username`, `password`, `base_topic`,
/// `client_id`, `ha_discovery`. Read leniently (a port may be written as text); other keys are
/// ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MqttSection {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub base_topic: Option<String>,
    pub client_id: Option<String>,
    pub ha_discovery: Option<bool>,
}

impl MqttSection {
    fn from_yaml(value: &serde_yaml::Value) -> MqttSection {
        let text = |key: &str| -> Option<String> {
            match value.get(key)? {
                serde_yaml::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                serde_yaml::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        MqttSection {
            host: text("host"),
            port: text("port").and_then(|p| p.parse().ok()),
            username: text("username"),
            password: text("password"),
            base_topic: text("base_topic"),
            client_id: text("client_id"),
            ha_discovery: value
                .get("ha_discovery")
                .and_then(serde_yaml::Value::as_bool),
        }
    }
}

/// `import-config --collector-id` with an id that cannot be one.
#[derive(Debug, thiserror::Error)]
#[error("--collector-id {id:?} {problem}")]
pub struct BadCollectorId {
    pub id: String,
    pub problem: String,
}

impl LoadedConfig {
    /// Assigns every adapter of the file that names no collector of its own to `collector_id`.
    pub fn assign_collector(&mut self, collector_id: &str) -> Result<(), BadCollectorId> {
        if let Some(problem) = id_problem(collector_id) {
            return Err(BadCollectorId {
                id: collector_id.to_owned(),
                problem,
            });
        }
        for adapter in &mut self.installation.adapters {
            adapter
                .collector_id
                .get_or_insert_with(|| collector_id.to_owned());
        }
        Ok(())
    }

    /// An adapter the file assigns to no collector keeps the collector the catalog already gives
    /// it (set by an earlier import or by `UpdateAdapter`): importing the same file again never
    /// takes devices away from a remote collector. Returns the adapters that kept one.
    pub fn keep_assigned_collectors(
        &mut self,
        existing: &[crate::catalog::Adapter],
    ) -> Vec<String> {
        let mut kept = Vec::new();
        for adapter in &mut self.installation.adapters {
            if adapter.collector_id.is_some() {
                continue;
            }
            if let Some(known) = existing
                .iter()
                .find(|e| e.adapter_id == adapter.adapter_id && e.collector_id.is_some())
            {
                adapter.collector_id = known.collector_id.clone();
                kept.push(adapter.adapter_id.clone());
            }
        }
        kept
    }

    /// A config that names no timezone does not undo one the system already has (from an
    /// earlier import, or a legacy upgrade that found the zone in the old app's data). Returns
    /// the zone kept, if any.
    pub fn keep_known_timezone(&mut self, existing: &[crate::catalog::System]) -> Option<String> {
        if self.timezone_source != TimezoneSource::DefaultUtc {
            return None;
        }
        let system = self.installation.system.as_mut()?;
        let known = existing.iter().find(|e| e.system_id == system.system_id)?;
        system.timezone = known.timezone.clone();
        Some(known.timezone.clone())
    }
}

/// Reads, validates and converts `path`. Nothing is written anywhere.
pub fn load_config(
    path: &Path,
    adapter_types: &[KnownAdapterType],
) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        reason: error.to_string(),
    })?;
    parse_config(path, &text, adapter_types)
}

/// As [`load_config`], for text already in memory; `path` is only used in messages.
pub fn parse_config(
    path: &Path,
    text: &str,
    adapter_types: &[KnownAdapterType],
) -> Result<LoadedConfig, ConfigError> {
    let invalid = |problems: Vec<ConfigProblem>| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    };
    let raw: RawConfig =
        serde_yaml::from_str(text).map_err(|error| invalid(vec![problem_from_serde(&error)]))?;
    let index = YamlIndex::build(text);
    let mut builder = Builder {
        index: &index,
        adapter_types,
        problems: Vec::new(),
        ignored: Vec::new(),
    };
    let loaded = builder.build(raw);
    if !builder.problems.is_empty() {
        builder.problems.sort_by_key(|p| (p.line, p.column));
        return Err(invalid(builder.problems));
    }
    Ok(LoadedConfig {
        ignored: builder.ignored,
        ..loaded
    })
}

/// serde_yaml writes "path: message at line L column C"; split that into a located problem.
fn problem_from_serde(error: &serde_yaml::Error) -> ConfigProblem {
    let (line, column) = match error.location() {
        Some(location) => (Some(location.line()), Some(location.column())),
        None => (None, None),
    };
    let mut message = error.to_string();
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    let (mut field, mut message) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (path.to_owned(), rest.to_owned()),
        _ => (String::from("(document)"), message),
    };
    // "unknown field `inverter_idz`, expected ..." names the field itself: put it in the path.
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((name, tail)) = rest.split_once('`')
    {
        field = if field == "." || field == "(document)" {
            name.to_owned()
        } else {
            format!("{field}.{name}")
        };
        message = format!("unknown field{tail}");
    }
    ConfigProblem {
        line,
        column,
        field,
        message,
    }
}

fn yaml_to_json(value: &serde_yaml::Value) -> Json {
    match value {
        serde_yaml::Value::Null => Json::Null,
        serde_yaml::Value::Bool(b) => Json::Bool(*b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Json::Number)
                    .unwrap_or(Json::Null)
            }
        }
        serde_yaml::Value::String(s) => Json::String(s.clone()),
        serde_yaml::Value::Sequence(items) => Json::Array(items.iter().map(yaml_to_json).collect()),
        serde_yaml::Value::Mapping(map) => Json::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        serde_yaml::Value::String(s) => s.clone(),
                        other => serde_yaml::to_string(other)
                            .unwrap_or_default()
                            .trim()
                            .to_owned(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        serde_yaml::Value::Tagged(tagged) => yaml_to_json(&tagged.value),
    }
}

pub use solarhub_proto::contract::{battery_id, cell_id};
