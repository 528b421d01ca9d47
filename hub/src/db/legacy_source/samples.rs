//! The old app's sample tables as rows: energy, arrays, battery banks, units, cells, meters, and
//! the catalog tables its samples point at.

use super::*;

legacy_rows! {
    /// A row of the old app's `energy_samples` (one inverter at one time).
    pub struct LegacyEnergyRow;
    pub fn read_energy_page(t) paged;
    {
        ts: String = text("ts"),
        inverter_id: String = text("inverter_id"),
        array_id: String = text("array_id"),
        pv_power_w: f64 = real("pv_power_w"),
        load_power_w: f64 = real("load_power_w"),
        grid_power_w: f64 = real("grid_power_w"),
        /// The old app wrote `soc` first and `battery_soc` later; the newer column wins.
        battery_soc_pct: f64 = real_first(["battery_soc", "soc"]),
        battery_voltage_v: f64 = real_first(["battery_voltage_v", "batt_voltage_v"]),
        battery_current_a: f64 = real_first(["battery_current_a", "batt_current_a"]),
        /// Only some versions stored it; in the old app's sign (positive = charging).
        battery_power_w: f64 = real_first(["battery_power_w", "batt_power_w"]),
        inverter_mode: i32 = integer("inverter_mode"),
        inverter_temp_c: f64 = real("inverter_temp_c"),
        grid_import_wh: f64 = real("grid_import_wh"),
        grid_export_wh: f64 = real("grid_export_wh"),
    }
}

/// Numeric columns of legacy `energy_samples`, for counting unreadable values.
pub const ENERGY_NUMERIC_COLUMNS: &[&str] = &[
    "pv_power_w",
    "load_power_w",
    "grid_power_w",
    "batt_voltage_v",
    "batt_current_a",
    "soc",
    "battery_soc",
    "battery_voltage_v",
    "battery_current_a",
    "battery_power_w",
    "batt_power_w",
    "inverter_mode",
    "inverter_temp_c",
    "grid_import_wh",
    "grid_export_wh",
];

legacy_rows! {
    pub struct LegacyArrayRow;
    pub fn read_array_page(t) paged;
    {
        ts: String = text("ts"),
        array_id: String = text("array_id"),
        pv_power_w: f64 = real("pv_power_w"),
        load_power_w: f64 = real("load_power_w"),
        grid_power_w: f64 = real("grid_power_w"),
        battery_power_w: f64 = real("batt_power_w"),
        battery_soc_pct: f64 = real("batt_soc_pct"),
        battery_voltage_v: f64 = real("batt_voltage_v"),
        battery_current_a: f64 = real("batt_current_a"),
    }
}

legacy_rows! {
    pub struct LegacyBankRow;
    pub fn read_bank_page(t) paged;
    {
        ts: String = text("ts"),
        /// `pack_id` where the old app wrote it, else `bank_id`.
        pack_id: String = text_sql(pack_column(t)),
        voltage: f64 = real("voltage"),
        current: f64 = real("current"),
        temperature: f64 = real("temperature"),
        soc: f64 = real("soc"),
        batteries_count: i32 = integer("batteries_count"),
        cells_per_battery: i32 = integer("cells_per_battery"),
    }
}

fn pack_column(t: &LegacyTable) -> String {
    match (t.has("pack_id"), t.has("bank_id")) {
        (true, true) => "COALESCE(CAST(pack_id AS TEXT), CAST(bank_id AS TEXT)) AS pack_id".into(),
        (true, false) => "CAST(pack_id AS TEXT) AS pack_id".into(),
        (false, true) => "CAST(bank_id AS TEXT) AS pack_id".into(),
        (false, false) => "NULL AS pack_id".into(),
    }
}

legacy_rows! {
    pub struct LegacyUnitRow;
    pub fn read_unit_page(t) paged;
    {
        ts: String = text("ts"),
        pack_id: String = text_sql(pack_column(t)),
        /// The 1-based battery index, stored by the old app in a column named `power`.
        battery_index: i32 = integer("power"),
        voltage: f64 = real("voltage"),
        current: f64 = real("current"),
        temperature: f64 = real("temperature"),
        soc: f64 = real("soc"),
        basic_st: String = text("basic_st"),
        volt_st: String = text("volt_st"),
        current_st: String = text("current_st"),
        temp_st: String = text("temp_st"),
        soh_st: String = text("soh_st"),
        coul_st: String = text("coul_st"),
        heater_st: String = text("heater_st"),
        bat_events: i64 = bigint("bat_events"),
        power_events: i64 = bigint("power_events"),
        sys_events: i64 = bigint("sys_events"),
    }
}

legacy_rows! {
    pub struct LegacyCellRow;
    pub fn read_cell_page(t) paged;
    {
        ts: String = text("ts"),
        pack_id: String = text_sql(pack_column(t)),
        battery_index: i32 = integer("power"),
        cell_index: i32 = integer("cell"),
        voltage: f64 = real("voltage"),
        temperature: f64 = real("temperature"),
        soc: f64 = real("soc"),
        volt_st: String = text("volt_st"),
        temp_st: String = text("temp_st"),
    }
}

legacy_rows! {
    pub struct LegacyMeterRow;
    pub fn read_meter_page(t) paged;
    {
        ts: String = text("ts"),
        meter_id: String = text("meter_id"),
        array_id: String = text("array_id"),
        power_w: f64 = real("grid_power_w"),
        voltage_v: f64 = real("grid_voltage_v"),
        current_a: f64 = real("grid_current_a"),
        frequency_hz: f64 = real("grid_frequency_hz"),
        import_wh: f64 = real("grid_import_wh"),
        export_wh: f64 = real("grid_export_wh"),
        energy_kwh: f64 = real("energy_kwh"),
        power_factor: f64 = real("power_factor"),
        l1_voltage_v: f64 = real("voltage_phase_a"),
        l2_voltage_v: f64 = real("voltage_phase_b"),
        l3_voltage_v: f64 = real("voltage_phase_c"),
        l1_current_a: f64 = real("current_phase_a"),
        l2_current_a: f64 = real("current_phase_b"),
        l3_current_a: f64 = real("current_phase_c"),
        l1_power_w: f64 = real("power_phase_a"),
        l2_power_w: f64 = real("power_phase_b"),
        l3_power_w: f64 = real("power_phase_c"),
    }
}

legacy_rows! {
    /// Legacy catalog rows: `arrays` (id, name; the system since the old app's hierarchy migration)
    /// and `battery_packs`.
    pub struct LegacyArrayCatalogRow;
    pub fn read_legacy_arrays(t) all;
    {
        array_id: String = text("array_id"),
        name: String = text("name"),
        system_id: String = text("system_id"),
    }
}

legacy_rows! {
    pub struct LegacyPackCatalogRow;
    pub fn read_legacy_packs(t) all;
    {
        pack_id: String = text("pack_id"),
        name: String = text("name"),
        chemistry: String = text("chemistry"),
        nominal_kwh: f64 = real("nominal_kwh"),
        max_charge_kw: f64 = real("max_charge_kw"),
        max_discharge_kw: f64 = real("max_discharge_kw"),
        battery_array_id: String = text("battery_array_id"),
    }
}
