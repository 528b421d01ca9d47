//! What the collector and the hub agree on beyond the wire types: the canonical field names a
//! reading carries (with their units and sign conventions, DESIGN §3.2), the default poll interval,
//! and how batteries and cells of a pack are named. The collector writes these names; the hub reads
//! them into its sample columns. Neither side spells a field name anywhere else.

/// How often a device is polled when its adapter says nothing (seconds). The hub counts a device
/// stale after three of these without a reading.
pub const DEFAULT_POLL_INTERVAL_SECS: f64 = 5.0;

/// Id of battery `index` (1-based) of a pack: `<pack>.b<n>`.
pub fn battery_id(pack_id: &str, index: i32) -> String {
    format!("{pack_id}.b{index}")
}

/// Id of cell `index` (1-based) of a battery: `<pack>.b<n>.c<m>`.
pub fn cell_id(battery_id: &str, index: i32) -> String {
    format!("{battery_id}.c{index}")
}

/// One canonical field: its name (unit in the name) and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub unit: &'static str,
    pub meaning: &'static str,
}

macro_rules! fields {
    ($(#[$doc:meta])* $list:ident { $($constant:ident = $name:literal, $unit:literal, $meaning:literal;)* }) => {
        $(
            #[doc = $meaning]
            pub const $constant: &str = $name;
        )*
        $(#[$doc])*
        pub const $list: &[Field] = &[$(Field { name: $name, unit: $unit, meaning: $meaning }),*];
    };
}

/// Fields of an inverter's reading (into `energy_samples`).
pub mod inverter {
    use super::Field;
    fields!(
        /// Every inverter field.
        ALL {
            PV_POWER_W = "pv_power_w", "W", "PV power, never negative";
            LOAD_POWER_W = "load_power_w", "W", "load power, never negative";
            GRID_POWER_W = "grid_power_w", "W", "grid power, positive when importing";
            BATTERY_POWER_W = "battery_power_w", "W", "battery power, positive when discharging";
            BATTERY_SOC_PCT = "battery_soc_pct", "%", "battery state of charge as the inverter reports it";
            BATTERY_VOLTAGE_V = "battery_voltage_v", "V", "battery voltage";
            BATTERY_CURRENT_A = "battery_current_a", "A", "battery current, positive when discharging";
            INVERTER_MODE = "inverter_mode", "", "the inverter's mode code";
            INVERTER_TEMP_C = "inverter_temp_c", "°C", "inverter temperature";
            RATED_POWER_W = "rated_power_w", "W", "the inverter's rated power (for plausibility checks)";
            PV_ENERGY_TODAY_WH = "pv_energy_today_wh", "Wh", "PV energy today (device counter)";
            PV_ENERGY_TOTAL_WH = "pv_energy_total_wh", "Wh", "PV energy, lifetime counter";
            LOAD_ENERGY_TODAY_WH = "load_energy_today_wh", "Wh", "load energy today";
            LOAD_ENERGY_TOTAL_WH = "load_energy_total_wh", "Wh", "load energy, lifetime counter";
            GRID_IMPORT_TODAY_WH = "grid_import_today_wh", "Wh", "grid import today";
            GRID_IMPORT_TOTAL_WH = "grid_import_total_wh", "Wh", "grid import, lifetime counter";
            GRID_EXPORT_TODAY_WH = "grid_export_today_wh", "Wh", "grid export today";
            GRID_EXPORT_TOTAL_WH = "grid_export_total_wh", "Wh", "grid export, lifetime counter";
            BATTERY_CHARGE_TODAY_WH = "battery_charge_today_wh", "Wh", "battery charge today";
            BATTERY_CHARGE_TOTAL_WH = "battery_charge_total_wh", "Wh", "battery charge, lifetime counter";
            BATTERY_DISCHARGE_TODAY_WH = "battery_discharge_today_wh", "Wh", "battery discharge today";
            BATTERY_DISCHARGE_TOTAL_WH = "battery_discharge_total_wh", "Wh", "battery discharge, lifetime counter";
        }
    );
}

/// Fields of a meter's reading (into `meter_samples`).
pub mod meter {
    use super::Field;
    fields!(
        /// Every meter field.
        ALL {
            POWER_W = "power_w", "W", "power, positive when importing";
            VOLTAGE_V = "voltage_v", "V", "voltage";
            CURRENT_A = "current_a", "A", "current";
            FREQUENCY_HZ = "frequency_hz", "Hz", "grid frequency";
            POWER_FACTOR = "power_factor", "", "power factor";
            IMPORT_TOTAL_WH = "import_total_wh", "Wh", "imported energy, lifetime counter";
            EXPORT_TOTAL_WH = "export_total_wh", "Wh", "exported energy, lifetime counter";
            ENERGY_TOTAL_KWH = "energy_total_kwh", "kWh", "total energy, lifetime counter";
            L1_VOLTAGE_V = "l1_voltage_v", "V", "phase 1 voltage";
            L2_VOLTAGE_V = "l2_voltage_v", "V", "phase 2 voltage";
            L3_VOLTAGE_V = "l3_voltage_v", "V", "phase 3 voltage";
            L1_CURRENT_A = "l1_current_a", "A", "phase 1 current";
            L2_CURRENT_A = "l2_current_a", "A", "phase 2 current";
            L3_CURRENT_A = "l3_current_a", "A", "phase 3 current";
            L1_POWER_W = "l1_power_w", "W", "phase 1 power";
            L2_POWER_W = "l2_power_w", "W", "phase 2 power";
            L3_POWER_W = "l3_power_w", "W", "phase 3 power";
        }
    );
}

/// Fields of a battery pack's reading (into `battery_bank_samples`).
pub mod pack {
    use super::Field;
    fields!(
        /// Every pack field.
        ALL {
            VOLTAGE_V = "voltage_v", "V", "pack voltage";
            CURRENT_A = "current_a", "A", "pack current, positive when discharging";
            POWER_W = "power_w", "W", "pack power, positive when discharging";
            TEMPERATURE_C = "temperature_c", "°C", "pack temperature";
            SOC_PCT = "soc_pct", "%", "state of charge";
            SOH_PCT = "soh_pct", "%", "state of health";
            BATTERIES_COUNT = "batteries_count", "", "batteries reporting";
            CELLS_PER_BATTERY = "cells_per_battery", "", "cells per battery";
        }
    );
}

/// Fields of one battery of a pack (into `battery_unit_samples`), and its status words.
pub mod battery {
    use super::Field;
    fields!(
        /// Every numeric battery field.
        ALL {
            VOLTAGE_V = "voltage_v", "V", "battery voltage";
            CURRENT_A = "current_a", "A", "battery current, positive when discharging";
            TEMPERATURE_C = "temperature_c", "°C", "battery temperature";
            SOC_PCT = "soc_pct", "%", "state of charge";
            SOH_PCT = "soh_pct", "%", "state of health";
        }
    );
    fields!(
        /// Every text field of a battery: status words as the BMS reports them, event counters
        /// (decimal or 0x-hex).
        TEXT {
            BASIC_ST = "basic_st", "", "basic status";
            VOLT_ST = "volt_st", "", "voltage status";
            CURRENT_ST = "current_st", "", "current status";
            TEMP_ST = "temp_st", "", "temperature status";
            SOH_ST = "soh_st", "", "health status";
            COUL_ST = "coul_st", "", "coulomb counter status";
            HEATER_ST = "heater_st", "", "heater status";
            BAT_EVENTS = "bat_events", "", "battery event counter";
            POWER_EVENTS = "power_events", "", "power event counter";
            SYS_EVENTS = "sys_events", "", "system event counter";
        }
    );
}

/// Fields of one cell (into `battery_cell_samples`).
pub mod cell {
    use super::Field;
    fields!(
        /// Every cell field.
        ALL {
            VOLTAGE_V = "voltage_v", "V", "cell voltage";
            TEMPERATURE_C = "temperature_c", "°C", "cell temperature";
            SOC_PCT = "soc_pct", "%", "cell state of charge";
        }
    );
}

/// Whether a register map may produce `name`: every inverter or meter field.
pub fn is_map_field(name: &str) -> bool {
    inverter::ALL
        .iter()
        .chain(meter::ALL)
        .any(|field| field.name == name)
}

/// An inverter or meter field by name.
pub fn map_field(name: &str) -> Option<&'static Field> {
    inverter::ALL
        .iter()
        .chain(meter::ALL)
        .find(|field| field.name == name)
}

/// The values a field in `unit` can take on a residential or small commercial installation; a
/// decoder without its own limits (SunSpec, whose devices describe themselves) keeps nothing
/// outside them. `None` for a unit without limits (mode codes, factors).
pub fn plausible_range(unit: &str) -> Option<std::ops::RangeInclusive<f64>> {
    Some(match unit {
        "W" => -1.0e6..=1.0e6,
        "V" => 0.0..=2000.0,
        "A" => -2000.0..=2000.0,
        "Hz" => 40.0..=70.0,
        "%" => 0.0..=100.0,
        "°C" => -50.0..=150.0,
        // A lifetime counter of a 1 MW plant over 100 years is under 1e12 Wh.
        "Wh" => 0.0..=1.0e12,
        "kWh" => 0.0..=1.0e9,
        _ => return None,
    })
}

/// The names a register map may produce, for messages.
pub fn map_field_names() -> Vec<&'static str> {
    inverter::ALL
        .iter()
        .chain(meter::ALL)
        .map(|field| field.name)
        .collect()
}

/// Data quality: why a collector leaves a value out of a reading. The collector counts drops under
/// these names (in `PollTally.dropped`), the hub stores and answers them under the same names.
pub mod quality {
    /// The device's "not available" marker (0xFFFF, 0x7FFF, 0x8000, ...).
    pub const SENTINEL: &str = "sentinel";
    /// Outside the register's plausible range.
    pub const OUT_OF_RANGE: &str = "out_of_range";
    /// A power far beyond the device's rating.
    pub const ABOVE_RATING: &str = "above_rating";
    /// A cumulative counter below its last value.
    pub const COUNTER_BACKWARDS: &str = "counter_backwards";
    /// Every reason, in the order answers list them.
    pub const DROP_REASONS: &[&str] = &[SENTINEL, OUT_OF_RANGE, ABOVE_RATING, COUNTER_BACKWARDS];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_field_names_follow_the_rules() {
        assert_eq!(cell_id(&battery_id("jk", 2), 16), "jk.b2.c16");
        for list in [
            inverter::ALL,
            meter::ALL,
            pack::ALL,
            battery::ALL,
            cell::ALL,
        ] {
            for field in list {
                assert!(
                    field.unit.is_empty()
                        || field
                            .name
                            .ends_with(&format!("_{}", field.unit.to_lowercase()))
                        || (field.unit == "°C" && field.name.ends_with("_c"))
                        || (field.unit == "%" && field.name.ends_with("_pct")),
                    "{} does not carry its unit {}",
                    field.name,
                    field.unit
                );
            }
        }
        assert!(is_map_field(inverter::PV_POWER_W) && is_map_field(meter::L2_VOLTAGE_V));
        assert!(!is_map_field(pack::SOH_PCT));
    }
}
