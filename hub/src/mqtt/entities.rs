//! What the bridge publishes, made from the live answer of one system: one entity per solarhub
//! device and aggregate (system, inverter array, inverter, meter, battery array, pack), each with
//! its state (the live API's fields and units), whether it is available, its parent (Home
//! Assistant's `via_device`), and the sensors Home Assistant is told about.

use serde_json::{Map, Value, json};

use solarhub_proto::contract::{inverter, meter, pack};

use crate::db::samples::{BatteryBankSample, Column, EnergySample, Kind, MeterSample};
use crate::live::SystemNow;

pub use crate::db::rollups::EnergyBefore;

/// How Home Assistant shows one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sensor {
    pub field: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    pub device_class: &'static str,
    pub state_class: &'static str,
}

const fn sensor(
    field: &'static str,
    name: &'static str,
    unit: &'static str,
    device_class: &'static str,
    state_class: &'static str,
) -> Sensor {
    Sensor {
        field,
        name,
        unit,
        device_class,
        state_class,
    }
}

impl Sensor {
    /// The sensor of a shown sample column (its name, unit and device class from the declaration).
    fn of(column: &Column) -> Option<Sensor> {
        let shown = column.shown?;
        Some(sensor(
            shown.published.unwrap_or(column.name),
            shown.label,
            column.unit,
            shown.device_class,
            match column.kind {
                Kind::Counter => "total_increasing",
                _ => "measurement",
            },
        ))
    }
}

/// The sensors of a sample table's shown columns, with the column each reads.
fn shown(columns: &'static [Column]) -> impl Iterator<Item = (Sensor, &'static str)> {
    columns
        .iter()
        .filter_map(|column| Some((Sensor::of(column)?, column.name)))
}

/// The sensor of column `name`, which the declaration shows (a test holds every use).
fn shown_column(columns: &'static [Column], name: &str) -> Sensor {
    shown(columns)
        .find(|(_, column)| *column == name)
        .map(|(sensor, _)| sensor)
        .expect("a shown sample column")
}

/// One published device or aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// `system`, `inverter_array`, `inverter`, `meter`, `battery_array`, `battery_pack`.
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    /// The entity Home Assistant shows it under (`via_device`).
    pub via: Option<(&'static str, String)>,
    pub available: bool,
    pub state: Map<String, Value>,
    pub sensors: Vec<Sensor>,
    /// The field declared to Home Assistant while none of the entity's fields has had a value
    /// (so every device appears); the others are declared once they have had one (a driver that
    /// never reports a field never leaves an entity "unknown" for ever).
    pub main: &'static str,
}

impl Entity {
    fn new(kind: &'static str, id: &str, name: &str, via: Option<(&'static str, &str)>) -> Entity {
        let main = match kind {
            "meter" => meter::POWER_W,
            "battery_array" | "battery_pack" => inverter::BATTERY_SOC_PCT,
            _ => inverter::PV_POWER_W,
        };
        Entity {
            main,
            kind,
            id: id.to_owned(),
            name: name.to_owned(),
            via: via.map(|(kind, id)| (kind, id.to_owned())),
            available: true,
            state: Map::new(),
            sensors: Vec::new(),
        }
    }

    fn field(&mut self, sensor: Sensor, value: Option<f64>) {
        self.state.insert(sensor.field.to_owned(), json!(value));
        self.sensors.push(sensor);
    }

    /// The four powers and the SOC of a system or an inverter array (shown as an inverter's).
    fn totals(&mut self, totals: &crate::live::PowerTotals) {
        for (name, value) in [
            (inverter::PV_POWER_W, totals.pv_power_w),
            (inverter::LOAD_POWER_W, totals.load_power_w),
            (inverter::GRID_POWER_W, totals.grid_power_w),
            (inverter::BATTERY_POWER_W, totals.battery_power_w),
            (inverter::BATTERY_SOC_PCT, totals.battery_soc_pct),
        ] {
            self.field(shown_column(EnergySample::COLUMNS, name), value);
        }
    }

    /// Every shown column of a device's newest sample.
    fn sample<T>(
        &mut self,
        columns: &'static [Column],
        sample: Option<&T>,
        number: impl Fn(&T, &str) -> Option<f64>,
    ) {
        for (sensor, column) in shown(columns) {
            self.field(sensor, sample.and_then(|s| number(s, column)));
        }
    }
}

/// Every entity of one system now. Energy figures are added by the bridge (they need its memory
/// of what it published, so they never go down).
pub fn entities(now: &SystemNow) -> Vec<Entity> {
    let system_id = now.system.system_id.as_str();
    let mut out = Vec::new();
    let mut system = Entity::new("system", system_id, &now.system.name, None);
    system.totals(&now.totals);
    out.push(system);

    for array in &now.arrays {
        let array_id = array.array.array_id.as_str();
        let mut entity = Entity::new(
            "inverter_array",
            array_id,
            &array.array.name,
            Some(("system", system_id)),
        );
        entity.totals(&array.totals);
        out.push(entity);
        for inverter in &array.inverters {
            let mut entity = Entity::new(
                "inverter",
                &inverter.inverter.inverter_id,
                &inverter.inverter.name,
                Some(("inverter_array", array_id)),
            );
            entity.available = !inverter.reading.stale;
            entity.sample(
                EnergySample::COLUMNS,
                inverter.reading.sample.as_ref(),
                EnergySample::number,
            );
            out.push(entity);
        }
        for meter in &array.meters {
            out.push(meter_entity(meter, ("inverter_array", array_id)));
        }
    }
    for meter in &now.meters {
        out.push(meter_entity(meter, ("system", system_id)));
    }
    for battery_array in &now.battery_arrays {
        let id = battery_array.battery_array.battery_array_id.as_str();
        let mut entity = Entity::new(
            "battery_array",
            id,
            &battery_array.battery_array.name,
            Some(("system", system_id)),
        );
        for (name, value) in [
            (pack::SOC_PCT, battery_array.soc_pct),
            (pack::POWER_W, battery_array.power_w),
            (pack::VOLTAGE_V, battery_array.voltage_v),
        ] {
            entity.field(shown_column(BatteryBankSample::COLUMNS, name), value);
        }
        out.push(entity);
        for pack in &battery_array.packs {
            let mut entity = Entity::new(
                "battery_pack",
                &pack.pack.pack_id,
                &pack.pack.name,
                Some(("battery_array", id)),
            );
            entity.available = !pack.reading.stale;
            entity.sample(
                BatteryBankSample::COLUMNS,
                pack.reading.sample.as_ref(),
                BatteryBankSample::number,
            );
            out.push(entity);
        }
    }
    out
}

fn meter_entity(meter: &crate::live::MeterNow, via: (&'static str, &str)) -> Entity {
    let mut entity = Entity::new("meter", &meter.meter.meter_id, &meter.meter.name, Some(via));
    entity.available = !meter.reading.stale;
    entity.sample(
        MeterSample::COLUMNS,
        meter.reading.sample.as_ref(),
        MeterSample::number,
    );
    entity
}

/// Topics of one bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub base: String,
    pub discovery_prefix: String,
}

impl Topics {
    /// The bridge's own status: `online` while it is connected, `offline` by its last will.
    pub fn bridge_status(&self) -> String {
        format!("{}/status", self.base)
    }

    pub fn state(&self, entity: &Entity) -> String {
        format!("{}/{}/{}/state", self.base, entity.kind, entity.id)
    }

    pub fn availability(&self, entity: &Entity) -> String {
        format!("{}/{}/{}/availability", self.base, entity.kind, entity.id)
    }

    /// Home Assistant's own status topic (`online` when it starts).
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }

    /// `homeassistant/sensor/<node>/<object>/config`.
    pub fn discovery(&self, entity: &Entity, sensor: &Sensor) -> String {
        format!(
            "{}/sensor/{}/{}/config",
            self.discovery_prefix,
            node_id(&self.base, entity),
            sensor.field
        )
    }

    /// The discovery config of one sensor of `entity`.
    pub fn discovery_config(&self, entity: &Entity, sensor: &Sensor) -> Value {
        let node = node_id(&self.base, entity);
        let mut device = json!({
            "identifiers": [node.clone()],
            "name": entity.name,
            "manufacturer": "solarhub",
            "model": entity.kind,
        });
        if let Some((kind, id)) = &entity.via {
            device["via_device"] = json!(node_of(&self.base, kind, id));
        }
        json!({
            "name": sensor.name,
            "unique_id": format!("{node}_{}", sensor.field),
            "object_id": format!("{node}_{}", sensor.field),
            "state_topic": self.state(entity),
            "value_template": format!("{{{{ value_json.{} }}}}", sensor.field),
            "unit_of_measurement": sensor.unit,
            "device_class": sensor.device_class,
            "state_class": sensor.state_class,
            "availability": [
                {"topic": self.bridge_status()},
                {"topic": self.availability(entity)},
            ],
            "availability_mode": "all",
            "device": device,
        })
    }
}

/// A Home Assistant node id: only `[a-zA-Z0-9_-]`, unique per bridge base topic and entity.
fn node_of(base: &str, kind: &str, id: &str) -> String {
    let clean = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{}_{}_{}", clean(base), kind, clean(id))
}

fn node_id(base: &str, entity: &Entity) -> String {
    node_of(base, entity.kind, &entity.id)
}

/// The energy sensors of a system: six of today (they restart only when the local day does), then
/// the same six lifetime (never down), in the order PV, load, grid import, grid export, battery
/// charge, battery discharge.
pub fn energy_sensors() -> [Sensor; 12] {
    const TODAY: [Sensor; 6] = [
        sensor(
            "pv_today_kwh",
            "PV energy today",
            "kWh",
            "energy",
            "total_increasing",
        ),
        sensor(
            "load_today_kwh",
            "Load energy today",
            "kWh",
            "energy",
            "total_increasing",
        ),
        sensor(
            "grid_import_today_kwh",
            "Grid import today",
            "kWh",
            "energy",
            "total_increasing",
        ),
        sensor(
            "grid_export_today_kwh",
            "Grid export today",
            "kWh",
            "energy",
            "total_increasing",
        ),
        sensor(
            "battery_charge_today_kwh",
            "Battery charge today",
            "kWh",
            "energy",
            "total_increasing",
        ),
        sensor(
            "battery_discharge_today_kwh",
            "Battery discharge today",
            "kWh",
            "energy",
            "total_increasing",
        ),
    ];
    const TOTAL: [Sensor; 6] = [
        sensor(
            "pv_total_kwh",
            "PV energy",
            "kWh",
            "energy",
            "total_increasing",
        ),
        sensor(
            "load_total_kwh",
            "Load energy",
            "kWh",
            "energy",
            "total_increasing",
        ),
        sensor(
            "grid_import_total_kwh",
            "Grid import",
            "kWh",
            "energy",
            "total_increasing",
        ),
        sensor(
            "grid_export_total_kwh",
            "Grid export",
            "kWh",
            "energy",
            "total_increasing",
        ),
        sensor(
            "battery_charge_total_kwh",
            "Battery charge",
            "kWh",
            "energy",
            "total_increasing",
        ),
        sensor(
            "battery_discharge_total_kwh",
            "Battery discharge",
            "kWh",
            "energy",
            "total_increasing",
        ),
    ];
    let mut all = [TODAY[0]; 12];
    all[..6].copy_from_slice(&TODAY);
    all[6..].copy_from_slice(&TOTAL);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_names_a_unique_sensor_with_its_topics() {
        let topics = Topics {
            base: "solarhub".into(),
            discovery_prefix: "homeassistant".into(),
        };
        let mut entity = Entity::new(
            "inverter",
            "inv 1",
            "Inverter 1",
            Some(("inverter_array", "a1")),
        );
        let pv = shown_column(EnergySample::COLUMNS, inverter::PV_POWER_W);
        entity.field(pv, Some(1200.0));
        let config = topics.discovery_config(&entity, &pv);
        assert_eq!(
            topics.discovery(&entity, &pv),
            "homeassistant/sensor/solarhub_inverter_inv_1/pv_power_w/config"
        );
        assert_eq!(config["unique_id"], "solarhub_inverter_inv_1_pv_power_w");
        assert_eq!(config["state_topic"], "solarhub/inverter/inv 1/state");
        assert_eq!(config["value_template"], "{{ value_json.pv_power_w }}");
        assert_eq!(config["device"]["via_device"], "solarhub_inverter_array_a1");
        assert_eq!(config["state_class"], "measurement");
    }
}
