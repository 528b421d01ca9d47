//! Register map files: what a Modbus device holds, where, and how it becomes canonical fields.
//!
//! A device type is a map file plus a little code. Map files are the project's own JSON format
//! (`collector/maps/*.json`), validated when loaded: a bad entry is refused with the file, the
//! entry and the reason, before any device is polled. This module owns the format and its checks;
//! it never talks to a device.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use solarhub_proto::contract;

/// The Modbus read limit for holding and input registers.
pub const MAX_REGISTERS_PER_READ: u16 = 125;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterKind {
    Holding,
    Input,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    U16,
    S16,
    U32,
    S32,
    /// `words` registers of two ASCII characters each.
    Ascii,
}

impl ValueType {
    /// Raw values that mean "not available" for this type.
    pub fn default_sentinels(self) -> &'static [i64] {
        match self {
            ValueType::U16 => &[0xFFFF],
            ValueType::S16 => &[0x7FFF, -0x8000],
            ValueType::U32 => &[0xFFFF_FFFF],
            ValueType::S32 => &[0x7FFF_FFFF, -0x8000_0000],
            ValueType::Ascii => &[],
        }
    }

    fn natural_words(self) -> Option<u16> {
        match self {
            ValueType::U16 | ValueType::S16 => Some(1),
            ValueType::U32 | ValueType::S32 => Some(2),
            ValueType::Ascii => None,
        }
    }
}

pub use super::words::WordOrder;
use super::words::lower_snake_case;

/// One register (or register pair / string) of a device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub name: String,
    pub address: u16,
    pub kind: RegisterKind,
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// Number of 16-bit registers; defaults to the type's size (required for `ascii`).
    pub words: Option<u16>,
    /// value = raw × scale.
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub unit: String,
    /// Plausible range of the scaled value; outside it the value is dropped.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Raw values that mean "not available", besides the type's defaults.
    #[serde(default)]
    pub sentinels: Vec<i64>,
    #[serde(default)]
    pub description: String,
}

fn one() -> f64 {
    1.0
}

impl Register {
    pub fn word_count(&self) -> u16 {
        self.words
            .or_else(|| self.value_type.natural_words())
            .unwrap_or(1)
    }

    /// The smallest step the register can express.
    pub fn resolution(&self) -> f64 {
        self.scale.abs()
    }

    pub fn is_sentinel(&self, raw: i64) -> bool {
        self.value_type.default_sentinels().contains(&raw) || self.sentinels.contains(&raw)
    }
}

/// How a canonical field (DESIGN §3.2) is made from registers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// The register whose value this is.
    pub register: Option<String>,
    /// Or the sum of these registers (missing if any is missing).
    #[serde(default)]
    pub sum: Vec<String>,
    /// Multiply by this (e.g. 1000 for kWh → Wh; -1 to flip a sign convention).
    #[serde(default = "one")]
    pub factor: f64,
    /// Take the sign of this register's value (devices that report a magnitude and a direction).
    pub sign_of: Option<String>,
    /// A cumulative counter: it may only grow; a value below the last one is dropped and counted.
    #[serde(default)]
    pub counter: bool,
    /// The plausible range of the field's unit (`contract::plausible_range`), looked up once when
    /// the map is loaded, not per reading.
    #[serde(skip)]
    pub plausible: Option<std::ops::RangeInclusive<f64>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterMap {
    pub device_type: String,
    /// inverter, meter or battery.
    pub category: String,
    #[serde(default)]
    pub description: String,
    /// Where the facts came from.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub word_order: WordOrder,
    /// Unmapped registers a single read may span to merge two ranges (0 = only contiguous ones).
    #[serde(default)]
    pub max_gap: u16,
    /// Register holding the device's rated power in W, used to judge power plausibility.
    pub rated_power_register: Option<String>,
    pub registers: Vec<Register>,
    pub fields: BTreeMap<String, FieldRule>,
    /// What may be written (`super::settings`); nothing when absent.
    #[serde(default)]
    pub settings: Vec<super::settings::Setting>,
}

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("cannot read register map {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("register map {path}: {entry}: {reason}")]
    Invalid {
        path: PathBuf,
        entry: String,
        reason: String,
    },
}

impl RegisterMap {
    pub fn load(path: &Path) -> Result<RegisterMap, MapError> {
        let text = std::fs::read_to_string(path).map_err(|e| MapError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        RegisterMap::parse(path, &text)
    }

    /// Parses and validates; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<RegisterMap, MapError> {
        let mut map: RegisterMap = serde_json::from_str(text).map_err(|e| MapError::Invalid {
            path: path.to_owned(),
            entry: format!("line {} column {}", e.line(), e.column()),
            reason: e.to_string(),
        })?;
        map.validate()
            .map_err(|(entry, reason)| MapError::Invalid {
                path: path.to_owned(),
                entry,
                reason,
            })?;
        for (name, rule) in &mut map.fields {
            rule.plausible = solarhub_proto::contract::map_field(name)
                .and_then(|field| solarhub_proto::contract::plausible_range(field.unit));
        }
        Ok(map)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if !["inverter", "meter", "battery"].contains(&self.category.as_str()) {
            return Err((
                "category".into(),
                format!(
                    "must be inverter, meter or battery, got {:?}",
                    self.category
                ),
            ));
        }
        let mut names = HashSet::new();
        for (index, register) in self.registers.iter().enumerate() {
            let entry = format!("registers[{index}] ({})", register.name);
            if !lower_snake_case(&register.name) {
                return Err((entry, "name must be lower_snake_case".into()));
            }
            if !names.insert(register.name.as_str()) {
                return Err((entry, "duplicate register name".into()));
            }
            let words = register.word_count();
            if register.value_type == ValueType::Ascii && register.words.is_none() {
                return Err((entry, "an ascii register needs `words`".into()));
            }
            if let Some(natural) = register.value_type.natural_words()
                && words != natural
            {
                return Err((
                    entry,
                    format!(
                        "type {:?} spans {natural} registers, not {words}",
                        register.value_type
                    ),
                ));
            }
            if words == 0 || words > MAX_REGISTERS_PER_READ {
                return Err((entry, format!("words must be 1..={MAX_REGISTERS_PER_READ}")));
            }
            if u32::from(register.address) + u32::from(words) > 0x1_0000 {
                return Err((entry, "runs past register 65535".into()));
            }
            if !register.scale.is_finite() || register.scale == 0.0 {
                return Err((
                    entry,
                    format!("scale must be a non-zero number, got {}", register.scale),
                ));
            }
            if let (Some(min), Some(max)) = (register.min, register.max)
                && min > max
            {
                return Err((entry, format!("min {min} is above max {max}")));
            }
        }
        for (field, rule) in &self.fields {
            let entry = format!("fields.{field}");
            if !contract::is_map_field(field) {
                return Err((
                    entry,
                    format!(
                        "is not a canonical field; expected one of: {}",
                        contract::map_field_names().join(", ")
                    ),
                ));
            }
            let sources: Vec<&String> = rule
                .register
                .iter()
                .chain(rule.sum.iter())
                .chain(rule.sign_of.iter())
                .collect();
            if rule.register.is_some() != rule.sum.is_empty() {
                return Err((entry, "give exactly one of `register` and `sum`".into()));
            }
            for source in sources {
                match self.registers.iter().find(|r| &r.name == source) {
                    None => {
                        return Err((
                            entry,
                            format!("names register {source:?}, which the map does not have"),
                        ));
                    }
                    Some(register) if register.value_type == ValueType::Ascii => {
                        return Err((entry, format!("register {source:?} is text, not a number")));
                    }
                    Some(_) => {}
                }
            }
            if !rule.factor.is_finite() || rule.factor == 0.0 {
                return Err((entry, "factor must be a non-zero number".into()));
            }
        }
        if let Some(rated) = &self.rated_power_register
            && !self.registers.iter().any(|r| &r.name == rated)
        {
            return Err((
                "rated_power_register".into(),
                format!("names register {rated:?}, which the map does not have"),
            ));
        }
        super::settings::validate(&self.settings)
    }

    pub fn register(&self, name: &str) -> Option<&Register> {
        self.registers.iter().find(|r| r.name == name)
    }
}

/// The map files that ship with the collector, by device type.
pub const BUILTIN_MAPS: &[(&str, &str)] = &[
    ("powdrive", include_str!("../../maps/powdrive.json")),
    ("senergy", include_str!("../../maps/senergy.json")),
    ("iammeter", include_str!("../../maps/iammeter.json")),
];

pub fn builtin_map(device_type: &str) -> Result<RegisterMap, MapError> {
    let (_, text) = BUILTIN_MAPS
        .iter()
        .find(|(name, _)| *name == device_type)
        .ok_or_else(|| MapError::Read {
            path: PathBuf::from(format!("maps/{device_type}.json")),
            reason: format!("no built-in register map for device type {device_type:?}"),
        })?;
    RegisterMap::parse(Path::new(&format!("maps/{device_type}.json")), text)
}
