//! What the old app kept besides samples: its own hourly and daily figures, its hierarchy tables
//! and its settings.

use super::*;

legacy_rows! {
    /// One row of the old app's own `hourly_energy` (its local date and hour).
    pub struct LegacyHourRow;
    pub fn read_legacy_hours(t) all;
    {
        inverter_id: String = text("inverter_id"),
        date: String = text("date"),
        hour: i64 = bigint_sql(if t.has("hour_start") {
                "CAST(\"hour_start\" AS INTEGER) AS hour".to_owned()
            } else {
                "NULL AS hour".to_owned()
            }),
        solar_kwh: f64 = real("solar_energy_kwh"),
        load_kwh: f64 = real("load_energy_kwh"),
        battery_charge_kwh: f64 = real("battery_charge_energy_kwh"),
        battery_discharge_kwh: f64 = real("battery_discharge_energy_kwh"),
        grid_import_kwh: f64 = real("grid_import_energy_kwh"),
        grid_export_kwh: f64 = real("grid_export_energy_kwh"),
        avg_pv_power_w: f64 = real("avg_solar_power_w"),
        avg_load_power_w: f64 = real("avg_load_power_w"),
        avg_battery_power_w: f64 = real("avg_battery_power_w"),
        avg_grid_power_w: f64 = real("avg_grid_power_w"),
        sample_count: i64 = bigint("sample_count"),
    }
}

impl LegacyHourRow {
    /// Solar, load, battery charge, battery discharge, grid import, grid export (kWh), in the
    /// order of the rollups' `EnergyColumns::kwh`.
    pub fn kwh(&self) -> [Option<f64>; 6] {
        [
            self.solar_kwh,
            self.load_kwh,
            self.battery_charge_kwh,
            self.battery_discharge_kwh,
            self.grid_import_kwh,
            self.grid_export_kwh,
        ]
    }
}

legacy_rows! {
    /// One row of the old app's `pv_daily` (PV energy per inverter and local day).
    pub struct LegacyPvDayRow;
    pub fn read_legacy_pv_days(t) all;
    {
        inverter_id: String = text("inverter_id"),
        day: String = text("day"),
        pv_kwh: f64 = real("pv_kwh"),
    }
}

// ---------------------------------------------------------------------------------------------
// The old app's own hierarchy (its "Phase 1" migration), settings and daily figures.

legacy_rows! {
    /// A row of the old app's `systems`.
    pub struct OldSystemRow;
    pub fn read_old_systems(t) all;
    {
        system_id: String = text("system_id"),
        name: String = text("name"),
        description: String = text("description"),
        timezone: String = text("timezone"),
    }
}

legacy_rows! {
    /// A row of the old app's `inverters`.
    pub struct OldInverterRow;
    pub fn read_old_inverters(t) all;
    {
        inverter_id: String = text("inverter_id"),
        array_id: String = text("array_id"),
        adapter_id: String = text("adapter_id"),
        name: String = text("name"),
        model: String = text("model"),
        serial_number: String = text("serial_number"),
        vendor: String = text("vendor"),
        phase_type: String = text("phase_type"),
    }
}

legacy_rows! {
    /// A row of the old app's `meters` (`type` is its meter type; `array_id` NULL is system level).
    pub struct OldMeterRow;
    pub fn read_old_meters(t) all;
    {
        meter_id: String = text("meter_id"),
        array_id: String = text("array_id"),
        adapter_id: String = text("adapter_id"),
        name: String = text("name"),
        model: String = text("model"),
        meter_type: String = text("type"),
    }
}

legacy_rows! {
    /// A row of the old app's `adapters` (`config_json` is the config.yaml adapter block, with `type`).
    pub struct OldAdapterRow;
    pub fn read_old_adapters(t) all;
    {
        adapter_id: String = text("adapter_id"),
        adapter_type: String = text("adapter_type"),
        config_json: String = text("config_json"),
        device_id: String = text("device_id"),
        priority: i32 = integer("priority"),
        enabled: i32 = integer("enabled"),
    }
}

legacy_rows! {
    /// A row of the old app's `battery_arrays`.
    pub struct OldBatteryArrayRow;
    pub fn read_old_battery_arrays(t) all;
    {
        battery_array_id: String = text("battery_array_id"),
        name: String = text("name"),
    }
}

legacy_rows! {
    /// A row of the old app's `battery_pack_adapters`.
    pub struct OldPackAdapterRow;
    pub fn read_old_pack_adapters(t) all;
    {
        pack_id: String = text("pack_id"),
        adapter_id: String = text("adapter_id"),
        priority: i32 = integer("priority"),
        enabled: i32 = integer("enabled"),
    }
}

legacy_rows! {
    /// A row of the old app's `battery_array_attachments` (times as the app wrote them).
    pub struct OldAttachmentRow;
    pub fn read_old_attachments(t) all;
    {
        battery_array_id: String = text("battery_array_id"),
        inverter_array_id: String = text("inverter_array_id"),
        attached_since: String = text("attached_since"),
        detached_at: String = text("detached_at"),
    }
}

legacy_rows! {
    /// A setting of the old app's `configuration` table (flattened keys such as `timezone`).
    pub struct SettingRow;
    pub fn read_settings(t) all;
    {
        key: String = text("key"),
        value: String = text("value"),
    }
}
