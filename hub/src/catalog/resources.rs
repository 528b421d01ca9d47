//! What each catalog resource is as an API resource: its key, its checks on values alone, and which
//! of its fields an update may change.

use crate::catalog::{
    Adapter, AdapterType, Battery, BatteryArray, BatteryArrayAttachment, BatteryCell, BatteryPack,
    BatteryPackAdapter, CatalogRecord, Inverter, InverterArray, Meter, System, id_problem,
};
use crate::json_schema::JsonSchema;

use super::Violations;

/// A resource of the hierarchy API. Its key, fields and which of them an update may change come
/// from its one declaration (`CatalogRecord`); this adds what the API says about it.
pub trait Resource: CatalogRecord {
    /// How people call it: "inverter array".
    const KIND: &'static str;
    /// The request field that carries it: "inverter_array".
    const FIELD: &'static str;
    /// Fields that identify it; an update cannot change them.
    const ID_FIELDS: &'static [&'static str];
    /// The key as text, for messages and page tokens.
    fn id_text(key: &Self::Key) -> String;
    fn id_from_text(text: &str) -> Option<Self::Key>;
    /// Checks that need nothing but the value itself.
    fn check_values(&self, violations: &mut Violations);
}

fn check_id(violations: &mut Violations, field: String, id: &str) {
    if let Some(problem) = id_problem(id) {
        violations.add(field, problem);
    }
}

fn check_optional_id(violations: &mut Violations, field: String, id: Option<&str>) {
    if let Some(id) = id {
        check_id(violations, field, id);
    }
}

/// `system_id` of a child may be left empty: it is then taken from the parent.
fn check_derived_id(violations: &mut Violations, field: String, id: &str) {
    if !id.is_empty() {
        check_id(violations, field, id);
    }
}

fn check_name(violations: &mut Violations, field: String, name: &str) {
    if name.trim().is_empty() {
        violations.add(field, "must not be empty");
    } else if let Some(problem) = crate::limits::text_problem(name) {
        violations.add(field, problem);
    }
}

fn check_non_negative(violations: &mut Violations, field: String, value: Option<f64>) {
    if let Some(value) = value
        && (!value.is_finite() || value < 0.0)
    {
        violations.add(field, format!("must be a finite number >= 0, got {value}"));
    }
}

fn check_positive(violations: &mut Violations, field: String, value: Option<f64>) {
    if let Some(value) = value
        && (!value.is_finite() || value <= 0.0)
    {
        violations.add(field, format!("must be a finite number > 0, got {value}"));
    }
}

fn check_json_object(violations: &mut Violations, field: String, text: Option<&str>) {
    if let Some(text) = text {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => violations.add(field, "must be a JSON object"),
            Err(error) => violations.add(field, format!("is not valid JSON: {error}")),
        }
    }
}

/// Meter types the API accepts.
pub const METER_TYPES: &[&str] = &["grid", "consumption", "pv", "generator", "battery", "other"];
/// Device categories of adapter types.
pub const DEVICE_CATEGORIES: &[&str] = &["inverter", "battery", "meter"];

impl Resource for System {
    const KIND: &'static str = "system";
    const FIELD: &'static str = "system";
    const ID_FIELDS: &'static [&'static str] = &["system_id"];

    fn id_text(key: &String) -> String {
        key.clone()
    }
    fn id_from_text(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
    fn check_values(&self, v: &mut Violations) {
        check_id(v, "system.system_id".into(), &self.system_id);
        check_name(v, "system.name".into(), &self.name);
        if let Err(reason) = crate::local_time::zone(&self.timezone) {
            v.add("system.timezone", reason);
        }
        if let Some(currency) = &self.currency
            && (currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()))
        {
            v.add(
                "system.currency",
                format!("must be a three-letter ISO 4217 code like EUR, got {currency:?}"),
            );
        }
        check_json_object(v, "system.tariff_json".into(), self.tariff_json.as_deref());
    }
}

impl Resource for InverterArray {
    const KIND: &'static str = "inverter array";
    const FIELD: &'static str = "inverter_array";
    const ID_FIELDS: &'static [&'static str] = &["array_id"];

    fn id_text(key: &String) -> String {
        key.clone()
    }
    fn id_from_text(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
    fn check_values(&self, v: &mut Violations) {
        check_id(v, "inverter_array.array_id".into(), &self.array_id);
        check_id(v, "inverter_array.system_id".into(), &self.system_id);
        check_name(v, "inverter_array.name".into(), &self.name);
        check_non_negative(
            v,
            "inverter_array.pv_capacity_kw".into(),
            self.pv_capacity_kw,
        );
    }
}

impl Resource for Inverter {
    const KIND: &'static str = "inverter";
    const FIELD: &'static str = "inverter";
    const ID_FIELDS: &'static [&'static str] = &["inverter_id", "system_id"];

    fn id_text(key: &String) -> String {
        key.clone()
    }
    fn id_from_text(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
    fn check_values(&self, v: &mut Violations) {
        check_id(v, "inverter.inverter_id".into(), &self.inverter_id);
        check_id(v, "inverter.array_id".into(), &self.array_id);
        check_derived_id(v, "inverter.system_id".into(), &self.system_id);
        check_optional_id(v, "inverter.adapter_id".into(), self.adapter_id.as_deref());
        check_name(v, "inverter.name".into(), &self.name);
        check_non_negative(v, "inverter.rated_power_w".into(), self.rated_power_w);
        if let Some(phase) = &self.phase_type
            && !["single", "split", "three"].contains(&phase.as_str())
        {
            v.add(
                "inverter.phase_type",
                format!("must be single, split or three, got {phase:?}"),
            );
        }
        check_json_object(
            v,
            "inverter.settings_json".into(),
            self.settings_json.as_deref(),
        );
    }
}

impl Resource for BatteryArray {
    const KIND: &'static str = "battery array";
    const FIELD: &'static str = "battery_array";
    const ID_FIELDS: &'static [&'static str] = &["battery_array_id", "system_id"];

    fn id_text(key: &String) -> String {
        key.clone()
    }
    fn id_from_text(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
    fn check_values(&self, v: &mut Violations) {
        check_id(
            v,
            "battery_array.battery_array_id".into(),
            &self.battery_array_id,
        );
        check_id(v, "battery_array.system_id".into(), &self.system_id);
        check_name(v, "battery_array.name".into(), &self.name);
    }
}

impl Resource for BatteryArrayAttachment {
    const KIND: &'static str = "battery array attachment";
    const FIELD: &'static str = "battery_array_attachment";
    const ID_FIELDS: &'static [&'static str] = &["battery_array_id", "attached_since", "system_id"];

    fn id_text(key: &(String, i64)) -> String {
        format!("{}@{}", key.0, key.1)
    }
    fn id_from_text(text: &str) -> Option<(String, i64)> {
        let (id, since) = text.rsplit_once('@')?;
        Some((id.to_owned(), since.parse().ok()?))
    }
    fn check_values(&self, v: &mut Violations) {
        check_id(
            v,
            "battery_array_attachment.battery_array_id".into(),
            &self.battery_array_id,
        );
        check_id(
            v,
            "battery_array_attachment.inverter_array_id".into(),
            &self.inverter_array_id,
        );
        check_derived_id(
            v,
            "battery_array_attachment.system_id".into(),
            &self.system_id,
        );
        if let Some(detached) = self.detached_at
            && detached <= self.attached_since
        {
            v.add(
                "battery_array_attachment.detached_at",
                "must be later than attached_since",
            );
        }
    }
}

impl Resource for BatteryPack {
    const KIND: &'static str = "battery pack";
    const FIELD: &'static str = "battery_pack";
    const ID_FIELDS: &'static [&'static str] = &["pack_id", "system_id"];

    fn id_text(key: &String) -> String {
        key.clone()
    }
    fn id_from_text(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
    fn check_values(&self, v: &mut Violations) {
        check_id(v, "battery_pack.pack_id".into(), &self.pack_id);
        check_derived_id(v, "battery_pack.system_id".into(), &self.system_id);
        check_optional_id(
            v,
            "battery_pack.battery_array_id".into(),
            self.battery_array_id.as_deref(),
        );
        check_name(v, "battery_pack.name".into(), &self.name);
        check_positive(v, "battery_pack.nominal_kwh".into(), self.nominal_kwh);
        check_non_negative(v, "battery_pack.max_charge_kw".into(), self.max_charge_kw);
        check_non_negative(
            v,
            "battery_pack.max_discharge_kw".into(),
            self.max_discharge_kw,
        );
        for (field, count) in [
            ("batteries_count", self.batteries_count),
            ("cells_per_battery", self.cells_per_battery),
        ] {
            if let Some(count) = count
                && !(1..=1024).contains(&count)
            {
                v.add(
                    format!("battery_pack.{field}"),
                    format!("must be between 1 and 1024, got {count}"),
                );
            }
        }
    }
}

impl Resource for Battery {
    const KIND: &'static str = "battery";
    const FIELD: &'static str = "battery";
    const ID_FIELDS: &'static [&'static str] =
        &["battery_id", "pack_id", "system_id", "battery_array_id"];

    fn id_text(key: &String) -> String {
        key.clone()
    }
    fn id_from_text(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
    fn check_values(&self, v: &mut Violations) {
        check_id(v, "battery.battery_id".into(), &self.battery_id);
        check_id(v, "battery.pack_id".into(), &self.pack_id);
        if let Some(problem) = crate::limits::index_problem(self.battery_index) {
            v.add("battery.battery_index", problem);
        }
    }
}

impl Resource for BatteryCell {
    const KIND: &'static str = "battery cell";
    const FIELD: &'static str = "battery_cell";
    const ID_FIELDS: &'static [&'static str] = &["cell_id", "battery_id", "pack_id", "system_id"];

    fn id_text(key: &String) -> String {
        key.clone()
    }
    fn id_from_text(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
    fn check_values(&self, v: &mut Violations) {
        check_id(v, "battery_cell.cell_id".into(), &self.cell_id);
        check_id(v, "battery_cell.battery_id".into(), &self.battery_id);
        if let Some(problem) = crate::limits::index_problem(self.cell_index) {
            v.add("battery_cell.cell_index", problem);
        }
        check_positive(
            v,
            "battery_cell.nominal_voltage".into(),
            self.nominal_voltage,
        );
    }
}

impl Resource for Meter {
    const KIND: &'static str = "meter";
    const FIELD: &'static str = "meter";
    const ID_FIELDS: &'static [&'static str] = &["meter_id", "system_id"];

    fn id_text(key: &String) -> String {
        key.clone()
    }
    fn id_from_text(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
    fn check_values(&self, v: &mut Violations) {
        check_id(v, "meter.meter_id".into(), &self.meter_id);
        check_id(v, "meter.system_id".into(), &self.system_id);
        check_optional_id(v, "meter.array_id".into(), self.array_id.as_deref());
        check_optional_id(v, "meter.adapter_id".into(), self.adapter_id.as_deref());
        check_name(v, "meter.name".into(), &self.name);
        if !METER_TYPES.contains(&self.meter_type.as_str()) {
            v.add(
                "meter.meter_type",
                format!(
                    "must be one of {}, got {:?}",
                    METER_TYPES.join(", "),
                    self.meter_type
                ),
            );
        }
    }
}

impl Resource for AdapterType {
    const KIND: &'static str = "adapter type";
    const FIELD: &'static str = "adapter_type";
    const ID_FIELDS: &'static [&'static str] = &["adapter_type"];

    fn id_text(key: &String) -> String {
        key.clone()
    }
    fn id_from_text(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
    fn check_values(&self, v: &mut Violations) {
        check_id(v, "adapter_type.adapter_type".into(), &self.adapter_type);
        check_name(v, "adapter_type.name".into(), &self.name);
        if !DEVICE_CATEGORIES.contains(&self.device_category.as_str()) {
            v.add(
                "adapter_type.device_category",
                format!(
                    "must be one of {}, got {:?}",
                    DEVICE_CATEGORIES.join(", "),
                    self.device_category
                ),
            );
        }
        match JsonSchema::parse(&self.config_schema) {
            Ok(schema) => {
                if let Some(default) = &self.default_config
                    && let Ok(value) = serde_json::from_str::<serde_json::Value>(default)
                {
                    for violation in schema
                        .validate(&value)
                        .iter()
                        .filter(|x| x.message != "is required")
                    {
                        v.add(
                            format!("adapter_type.default_config.{}", violation.path),
                            violation.message.clone(),
                        );
                    }
                }
            }
            Err(error) => v.add("adapter_type.config_schema", error.to_string()),
        }
        match serde_json::from_str::<Vec<String>>(&self.supported_transports) {
            Ok(transports) if !transports.is_empty() => {}
            _ => v.add(
                "adapter_type.supported_transports",
                "must name at least one transport",
            ),
        }
        check_json_object(
            v,
            "adapter_type.default_config".into(),
            self.default_config.as_deref(),
        );
        if self.version < 1 {
            v.add("adapter_type.version", "must be 1 or more");
        }
    }
}

impl Resource for Adapter {
    const KIND: &'static str = "adapter";
    const FIELD: &'static str = "adapter";
    const ID_FIELDS: &'static [&'static str] = &["adapter_id"];

    fn id_text(key: &String) -> String {
        key.clone()
    }
    fn id_from_text(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
    fn check_values(&self, v: &mut Violations) {
        check_id(v, "adapter.adapter_id".into(), &self.adapter_id);
        check_id(v, "adapter.adapter_type".into(), &self.adapter_type);
        check_optional_id(v, "adapter.device_id".into(), self.device_id.as_deref());
        check_optional_id(
            v,
            "adapter.collector_id".into(),
            self.collector_id.as_deref(),
        );
        if self.priority < 1 {
            v.add(
                "adapter.priority",
                format!("must be 1 or more, got {}", self.priority),
            );
        }
        check_json_object(v, "adapter.config_json".into(), Some(&self.config_json));
    }
}

impl Resource for BatteryPackAdapter {
    const KIND: &'static str = "battery pack adapter";
    const FIELD: &'static str = "battery_pack_adapter";
    const ID_FIELDS: &'static [&'static str] = &["pack_id", "adapter_id", "system_id"];

    fn id_text(key: &(String, String)) -> String {
        format!("{}/{}", key.0, key.1)
    }
    fn id_from_text(text: &str) -> Option<(String, String)> {
        let (pack, adapter) = text.split_once('/')?;
        Some((pack.to_owned(), adapter.to_owned()))
    }
    fn check_values(&self, v: &mut Violations) {
        check_id(v, "battery_pack_adapter.pack_id".into(), &self.pack_id);
        check_id(
            v,
            "battery_pack_adapter.adapter_id".into(),
            &self.adapter_id,
        );
        if self.priority < 1 {
            v.add(
                "battery_pack_adapter.priority",
                format!("must be 1 or more, got {}", self.priority),
            );
        }
    }
}
