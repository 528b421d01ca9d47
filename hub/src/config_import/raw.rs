//! The shape of the existing app's `config.yaml`, as strict as the file format allows: every
//! hierarchy section refuses unknown keys, so a typo is an error with its line, never a silent drop.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(super) struct RawConfig {
    pub(super) timezone: Option<String>,
    pub(super) home: Option<RawHome>,
    pub(super) arrays: Option<Vec<RawArray>>,
    pub(super) inverters: Option<Vec<RawInverter>>,
    pub(super) meters: Option<Vec<RawMeter>>,
    pub(super) battery_banks: Option<Vec<RawBatteryBank>>,
    pub(super) battery_bank_arrays: Option<Vec<RawBatteryBankArray>>,
    pub(super) battery_bank_array_attachments: Option<Vec<RawAttachment>>,
    pub(super) smart: Option<serde_yaml::Value>,
    pub(super) billing: Option<serde_yaml::Value>,
    pub(super) mqtt: Option<serde_yaml::Value>,
    polling: Option<serde_yaml::Value>,
    logging: Option<serde_yaml::Value>,
    discovery: Option<serde_yaml::Value>,
    battery_data_source: Option<serde_yaml::Value>,
    /// Sections nobody knows about: accepted and reported.
    #[serde(flatten)]
    pub(super) other: BTreeMap<String, serde_yaml::Value>,
}

impl RawConfig {
    pub(super) fn has_section(&self, name: &str) -> bool {
        match name {
            "timezone" => self.timezone.is_some(),
            "smart" => self.smart.is_some(),
            "billing" => self.billing.is_some(),
            "mqtt" => self.mqtt.is_some(),
            "polling" => self.polling.is_some(),
            "logging" => self.logging.is_some(),
            "discovery" => self.discovery.is_some(),
            "battery_data_source" => self.battery_data_source.is_some(),
            _ => false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHome {
    pub(super) id: Option<String>,
    pub(super) name: Option<String>,
    pub(super) description: Option<String>,
    pub(super) timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArray {
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) inverter_ids: Option<Vec<String>>,
    pub(super) pv_capacity_kw: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInverter {
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) array_id: Option<String>,
    pub(super) adapter: RawAdapterBlock,
    pub(super) model: Option<String>,
    pub(super) serial_number: Option<String>,
    pub(super) vendor: Option<String>,
    pub(super) phase_type: Option<String>,
    pub(super) rated_power_w: Option<f64>,
    pub(super) safety: Option<serde_yaml::Value>,
    pub(super) solar: Option<Vec<serde_yaml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeter {
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) array_id: Option<String>,
    pub(super) adapter: RawAdapterBlock,
    pub(super) model: Option<String>,
    pub(super) meter_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBatteryBank {
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) adapter: Option<RawAdapterBlock>,
    pub(super) adapters: Option<Vec<RawBankAdapter>>,
    pub(super) batteries: Option<u32>,
    pub(super) cells_per_battery: Option<u32>,
    pub(super) chemistry: Option<String>,
    pub(super) nominal_kwh: Option<f64>,
    pub(super) max_charge_kw: Option<f64>,
    pub(super) max_discharge_kw: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBankAdapter {
    pub(super) adapter: RawAdapterBlock,
    pub(super) priority: Option<i32>,
    pub(super) enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBatteryBankArray {
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) battery_bank_ids: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAttachment {
    pub(super) battery_bank_array_id: String,
    pub(super) inverter_array_id: String,
    pub(super) attached_since: String,
    pub(super) detached_at: Option<String>,
}

/// An `adapter:` block: its `type` picks the JSON Schema that judges every other key.
#[derive(Debug, Deserialize)]
pub(super) struct RawAdapterBlock {
    #[serde(rename = "type")]
    pub(super) adapter_type: Option<String>,
    /// The collector that runs this adapter (otherwise `import-config --collector-id`, or
    /// whatever the catalog already says).
    pub(super) collector_id: Option<String>,
    #[serde(flatten)]
    pub(super) rest: BTreeMap<String, serde_yaml::Value>,
}
