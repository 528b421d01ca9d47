//! Domain ↔ proto for the hierarchy resources. `TryFrom` destructures every field of the message, so
//! a new proto field does not compile until it is handled here.

use solarhub_proto::time::{millis, timestamp};
use solarhub_proto::v1 as proto;

use crate::catalog::{
    Adapter, AdapterType, Battery, BatteryArray, BatteryArrayAttachment, BatteryCell, BatteryPack,
    BatteryPackAdapter, Inverter, InverterArray, Meter, System,
};
use crate::catalog::{Parents, Violations};

/// A domain resource as its message, with its parent ids.
pub(crate) trait ToMessage {
    type Message;
    fn to_message(self, parents: &Parents) -> Self::Message;
}

/// A message as a domain resource; `field` is the request field it came in (`inverter`).
pub(crate) trait FromMessage: Sized {
    type Message;
    fn from_message(message: Self::Message, field: &str, violations: &mut Violations) -> Self;
}

fn text(value: Option<String>) -> String {
    value.unwrap_or_default()
}

fn optional(value: String) -> Option<String> {
    if value.is_empty() { None } else { Some(value) }
}

impl ToMessage for System {
    type Message = proto::System;
    fn to_message(self, _parents: &Parents) -> proto::System {
        let System {
            system_id,
            name,
            description,
            timezone,
            currency,
            tariff_json,
        } = self;
        proto::System {
            system_id,
            name,
            description: text(description),
            timezone,
            currency: text(currency),
            tariff_json: text(tariff_json),
            created_at: None,
            updated_at: None,
        }
    }
}

impl FromMessage for System {
    type Message = proto::System;
    fn from_message(message: proto::System, _field: &str, _violations: &mut Violations) -> System {
        let proto::System {
            system_id,
            name,
            description,
            timezone,
            currency,
            tariff_json,
            created_at: _,
            updated_at: _,
        } = message;
        System {
            system_id,
            name,
            description: optional(description),
            timezone: if timezone.is_empty() {
                "UTC".into()
            } else {
                timezone
            },
            currency: optional(currency),
            tariff_json: optional(tariff_json),
        }
    }
}

impl ToMessage for InverterArray {
    type Message = proto::InverterArray;
    fn to_message(self, _parents: &Parents) -> proto::InverterArray {
        let InverterArray {
            array_id,
            system_id,
            name,
            pv_capacity_kw,
        } = self;
        proto::InverterArray {
            array_id,
            system_id,
            name,
            pv_capacity_kw,
        }
    }
}

impl FromMessage for InverterArray {
    type Message = proto::InverterArray;
    fn from_message(
        message: proto::InverterArray,
        _field: &str,
        _violations: &mut Violations,
    ) -> InverterArray {
        let proto::InverterArray {
            array_id,
            system_id,
            name,
            pv_capacity_kw,
        } = message;
        InverterArray {
            array_id,
            system_id,
            name,
            pv_capacity_kw,
        }
    }
}

impl ToMessage for Inverter {
    type Message = proto::Inverter;
    fn to_message(self, _parents: &Parents) -> proto::Inverter {
        let Inverter {
            inverter_id,
            array_id,
            system_id,
            adapter_id,
            name,
            model,
            serial_number,
            vendor,
            phase_type,
            rated_power_w,
            settings_json,
        } = self;
        proto::Inverter {
            inverter_id,
            array_id,
            system_id,
            adapter_id,
            name,
            model: text(model),
            serial_number: text(serial_number),
            vendor: text(vendor),
            phase_type: text(phase_type),
            rated_power_w,
            settings_json: text(settings_json),
        }
    }
}

impl FromMessage for Inverter {
    type Message = proto::Inverter;
    fn from_message(
        message: proto::Inverter,
        _field: &str,
        _violations: &mut Violations,
    ) -> Inverter {
        let proto::Inverter {
            inverter_id,
            array_id,
            system_id,
            adapter_id,
            name,
            model,
            serial_number,
            vendor,
            phase_type,
            rated_power_w,
            settings_json,
        } = message;
        Inverter {
            inverter_id,
            array_id,
            system_id,
            adapter_id: adapter_id.and_then(optional),
            name,
            model: optional(model),
            serial_number: optional(serial_number),
            vendor: optional(vendor),
            phase_type: optional(phase_type),
            rated_power_w,
            settings_json: optional(settings_json),
        }
    }
}

impl ToMessage for BatteryArray {
    type Message = proto::BatteryArray;
    fn to_message(self, _parents: &Parents) -> proto::BatteryArray {
        let BatteryArray {
            battery_array_id,
            system_id,
            name,
        } = self;
        proto::BatteryArray {
            battery_array_id,
            system_id,
            name,
        }
    }
}

impl FromMessage for BatteryArray {
    type Message = proto::BatteryArray;
    fn from_message(
        message: proto::BatteryArray,
        _field: &str,
        _violations: &mut Violations,
    ) -> BatteryArray {
        let proto::BatteryArray {
            battery_array_id,
            system_id,
            name,
        } = message;
        BatteryArray {
            battery_array_id,
            system_id,
            name,
        }
    }
}

impl ToMessage for BatteryArrayAttachment {
    type Message = proto::BatteryArrayAttachment;
    fn to_message(self, _parents: &Parents) -> proto::BatteryArrayAttachment {
        let BatteryArrayAttachment {
            battery_array_id,
            attached_since,
            inverter_array_id,
            system_id,
            detached_at,
        } = self;
        proto::BatteryArrayAttachment {
            battery_array_id,
            inverter_array_id,
            system_id,
            attached_since: Some(timestamp(attached_since)),
            detached_at: detached_at.map(timestamp),
        }
    }
}

impl FromMessage for BatteryArrayAttachment {
    type Message = proto::BatteryArrayAttachment;
    fn from_message(
        message: proto::BatteryArrayAttachment,
        field: &str,
        violations: &mut Violations,
    ) -> BatteryArrayAttachment {
        let proto::BatteryArrayAttachment {
            battery_array_id,
            inverter_array_id,
            system_id,
            attached_since,
            detached_at,
        } = message;
        let attached_since = match attached_since {
            Some(since) => millis(&since),
            None => {
                violations.add(format!("{field}.attached_since"), "is required");
                0
            }
        };
        BatteryArrayAttachment {
            battery_array_id,
            attached_since,
            inverter_array_id,
            system_id,
            detached_at: detached_at.as_ref().map(millis),
        }
    }
}

impl ToMessage for BatteryPack {
    type Message = proto::BatteryPack;
    fn to_message(self, _parents: &Parents) -> proto::BatteryPack {
        let BatteryPack {
            pack_id,
            battery_array_id,
            system_id,
            name,
            chemistry,
            nominal_kwh,
            max_charge_kw,
            max_discharge_kw,
            batteries_count,
            cells_per_battery,
        } = self;
        proto::BatteryPack {
            pack_id,
            battery_array_id,
            system_id,
            name,
            chemistry: text(chemistry),
            nominal_kwh,
            max_charge_kw,
            max_discharge_kw,
            batteries_count,
            cells_per_battery,
        }
    }
}

impl FromMessage for BatteryPack {
    type Message = proto::BatteryPack;
    fn from_message(
        message: proto::BatteryPack,
        _field: &str,
        _violations: &mut Violations,
    ) -> BatteryPack {
        let proto::BatteryPack {
            pack_id,
            battery_array_id,
            system_id,
            name,
            chemistry,
            nominal_kwh,
            max_charge_kw,
            max_discharge_kw,
            batteries_count,
            cells_per_battery,
        } = message;
        BatteryPack {
            pack_id,
            battery_array_id: battery_array_id.and_then(optional),
            system_id,
            name,
            chemistry: optional(chemistry),
            nominal_kwh,
            max_charge_kw,
            max_discharge_kw,
            batteries_count,
            cells_per_battery,
        }
    }
}

impl ToMessage for Battery {
    type Message = proto::Battery;
    fn to_message(self, parents: &Parents) -> proto::Battery {
        let Battery {
            battery_id,
            pack_id,
            battery_index,
            serial_number,
            model,
        } = self;
        proto::Battery {
            battery_id,
            pack_id,
            system_id: parents.system_id.clone().unwrap_or_default(),
            battery_index,
            serial_number: text(serial_number),
            model: text(model),
            battery_array_id: parents.battery_array_id.clone(),
        }
    }
}

impl FromMessage for Battery {
    type Message = proto::Battery;
    fn from_message(
        message: proto::Battery,
        _field: &str,
        _violations: &mut Violations,
    ) -> Battery {
        // system_id and battery_array_id follow the pack; they are answers, not inputs.
        let proto::Battery {
            battery_id,
            pack_id,
            system_id: _,
            battery_index,
            serial_number,
            model,
            battery_array_id: _,
        } = message;
        Battery {
            battery_id,
            pack_id,
            battery_index,
            serial_number: optional(serial_number),
            model: optional(model),
        }
    }
}

impl ToMessage for BatteryCell {
    type Message = proto::BatteryCell;
    fn to_message(self, parents: &Parents) -> proto::BatteryCell {
        let BatteryCell {
            cell_id,
            battery_id,
            cell_index,
            nominal_voltage,
        } = self;
        proto::BatteryCell {
            cell_id,
            battery_id,
            pack_id: parents.pack_id.clone().unwrap_or_default(),
            system_id: parents.system_id.clone().unwrap_or_default(),
            cell_index,
            nominal_voltage,
        }
    }
}

impl FromMessage for BatteryCell {
    type Message = proto::BatteryCell;
    fn from_message(
        message: proto::BatteryCell,
        _field: &str,
        _violations: &mut Violations,
    ) -> BatteryCell {
        let proto::BatteryCell {
            cell_id,
            battery_id,
            pack_id: _,
            system_id: _,
            cell_index,
            nominal_voltage,
        } = message;
        BatteryCell {
            cell_id,
            battery_id,
            cell_index,
            nominal_voltage,
        }
    }
}

impl ToMessage for Meter {
    type Message = proto::Meter;
    fn to_message(self, _parents: &Parents) -> proto::Meter {
        let Meter {
            meter_id,
            system_id,
            array_id,
            adapter_id,
            name,
            model,
            meter_type,
        } = self;
        proto::Meter {
            meter_id,
            system_id,
            array_id,
            adapter_id,
            name,
            model: text(model),
            meter_type,
        }
    }
}

impl FromMessage for Meter {
    type Message = proto::Meter;
    fn from_message(message: proto::Meter, _field: &str, _violations: &mut Violations) -> Meter {
        let proto::Meter {
            meter_id,
            system_id,
            array_id,
            adapter_id,
            name,
            model,
            meter_type,
        } = message;
        Meter {
            meter_id,
            system_id,
            array_id: array_id.and_then(optional),
            adapter_id: adapter_id.and_then(optional),
            name,
            model: optional(model),
            meter_type: if meter_type.is_empty() {
                "grid".into()
            } else {
                meter_type
            },
        }
    }
}

impl ToMessage for AdapterType {
    type Message = proto::AdapterType;
    fn to_message(self, _parents: &Parents) -> proto::AdapterType {
        let AdapterType {
            adapter_type,
            device_category,
            name,
            description,
            config_schema,
            supported_transports,
            default_config,
            version,
        } = self;
        proto::AdapterType {
            adapter_type,
            device_category,
            name,
            description: text(description),
            config_schema,
            supported_transports: serde_json::from_str(&supported_transports).unwrap_or_default(),
            default_config: text(default_config),
            version,
        }
    }
}

impl FromMessage for AdapterType {
    type Message = proto::AdapterType;
    fn from_message(
        message: proto::AdapterType,
        _field: &str,
        _violations: &mut Violations,
    ) -> AdapterType {
        let proto::AdapterType {
            adapter_type,
            device_category,
            name,
            description,
            config_schema,
            supported_transports,
            default_config,
            version,
        } = message;
        AdapterType {
            adapter_type,
            device_category,
            name,
            description: optional(description),
            config_schema,
            supported_transports: serde_json::Value::from(supported_transports).to_string(),
            default_config: optional(default_config),
            version: if version == 0 { 1 } else { version },
        }
    }
}

impl ToMessage for Adapter {
    type Message = proto::Adapter;
    fn to_message(self, _parents: &Parents) -> proto::Adapter {
        let Adapter {
            adapter_id,
            adapter_type,
            device_category,
            device_id,
            device_type,
            collector_id,
            config_json,
            priority,
            enabled,
        } = self;
        proto::Adapter {
            adapter_id,
            adapter_type,
            device_category,
            device_id: text(device_id),
            device_type: text(device_type),
            collector_id,
            config_json,
            priority,
            enabled: Some(enabled),
        }
    }
}

impl FromMessage for Adapter {
    type Message = proto::Adapter;
    fn from_message(
        message: proto::Adapter,
        _field: &str,
        _violations: &mut Violations,
    ) -> Adapter {
        let proto::Adapter {
            adapter_id,
            adapter_type,
            device_category,
            device_id,
            device_type,
            collector_id,
            config_json,
            priority,
            enabled,
        } = message;
        Adapter {
            adapter_id,
            adapter_type,
            device_category,
            device_id: optional(device_id),
            device_type: optional(device_type),
            collector_id: collector_id.and_then(optional),
            config_json: if config_json.is_empty() {
                "{}".into()
            } else {
                config_json
            },
            priority: if priority == 0 { 1 } else { priority },
            enabled: enabled.unwrap_or(true),
        }
    }
}

impl ToMessage for BatteryPackAdapter {
    type Message = proto::BatteryPackAdapter;
    fn to_message(self, parents: &Parents) -> proto::BatteryPackAdapter {
        let BatteryPackAdapter {
            pack_id,
            adapter_id,
            priority,
            enabled,
        } = self;
        proto::BatteryPackAdapter {
            pack_id,
            adapter_id,
            priority,
            enabled: Some(enabled),
            system_id: parents.system_id.clone().unwrap_or_default(),
        }
    }
}

impl FromMessage for BatteryPackAdapter {
    type Message = proto::BatteryPackAdapter;
    fn from_message(
        message: proto::BatteryPackAdapter,
        _field: &str,
        _violations: &mut Violations,
    ) -> BatteryPackAdapter {
        let proto::BatteryPackAdapter {
            pack_id,
            adapter_id,
            priority,
            enabled,
            system_id: _,
        } = message;
        BatteryPackAdapter {
            pack_id,
            adapter_id,
            priority: if priority == 0 { 1 } else { priority },
            enabled: enabled.unwrap_or(true),
        }
    }
}
