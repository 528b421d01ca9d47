-- Samples (DESIGN §3.2): primary key (device id, ts), ts in UTC epoch milliseconds.
-- One row per inverter per timestamp (UTC epoch ms). NULL means not reported, never 0.
CREATE TABLE energy_samples (
    inverter_id TEXT NOT NULL REFERENCES inverters (inverter_id),
    ts BIGINT NOT NULL,
    array_id TEXT REFERENCES arrays (array_id),
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    pv_power_w DOUBLE PRECISION,
    load_power_w DOUBLE PRECISION,
    grid_power_w DOUBLE PRECISION,
    battery_power_w DOUBLE PRECISION,
    battery_soc_pct DOUBLE PRECISION,
    battery_voltage_v DOUBLE PRECISION,
    battery_current_a DOUBLE PRECISION,
    inverter_mode INTEGER,
    inverter_temp_c DOUBLE PRECISION,
    pv_energy_today_wh DOUBLE PRECISION,
    pv_energy_total_wh DOUBLE PRECISION,
    load_energy_today_wh DOUBLE PRECISION,
    load_energy_total_wh DOUBLE PRECISION,
    grid_import_today_wh DOUBLE PRECISION,
    grid_import_total_wh DOUBLE PRECISION,
    grid_export_today_wh DOUBLE PRECISION,
    grid_export_total_wh DOUBLE PRECISION,
    battery_charge_today_wh DOUBLE PRECISION,
    battery_charge_total_wh DOUBLE PRECISION,
    battery_discharge_today_wh DOUBLE PRECISION,
    battery_discharge_total_wh DOUBLE PRECISION,
    PRIMARY KEY (inverter_id, ts)
);
CREATE INDEX energy_samples_system_ts ON energy_samples (system_id, ts);
CREATE INDEX energy_samples_array_ts ON energy_samples (array_id, ts);

-- Derived inverter-array values at a fixed cadence; soc_source says where the SOC came from.
CREATE TABLE array_samples (
    array_id TEXT NOT NULL REFERENCES arrays (array_id),
    ts BIGINT NOT NULL,
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    pv_power_w DOUBLE PRECISION,
    load_power_w DOUBLE PRECISION,
    grid_power_w DOUBLE PRECISION,
    battery_power_w DOUBLE PRECISION,
    battery_soc_pct DOUBLE PRECISION,
    soc_source TEXT,
    battery_voltage_v DOUBLE PRECISION,
    battery_current_a DOUBLE PRECISION,
    PRIMARY KEY (array_id, ts)
);
CREATE INDEX array_samples_system_ts ON array_samples (system_id, ts);

-- Battery pack (bank) readings; adapter_id names the adapter that produced the reading.
CREATE TABLE battery_bank_samples (
    pack_id TEXT NOT NULL REFERENCES battery_packs (pack_id),
    ts BIGINT NOT NULL,
    battery_array_id TEXT REFERENCES battery_arrays (battery_array_id),
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    adapter_id TEXT,
    voltage_v DOUBLE PRECISION,
    current_a DOUBLE PRECISION,
    power_w DOUBLE PRECISION,
    temperature_c DOUBLE PRECISION,
    soc_pct DOUBLE PRECISION,
    soh_pct DOUBLE PRECISION,
    batteries_count INTEGER,
    cells_per_battery INTEGER,
    PRIMARY KEY (pack_id, ts)
);
CREATE INDEX battery_bank_samples_system_ts ON battery_bank_samples (system_id, ts);
CREATE INDEX battery_bank_samples_battery_array_ts ON battery_bank_samples (battery_array_id, ts);

-- One battery module of a pack; status words and event counters as the BMS reports them.
CREATE TABLE battery_unit_samples (
    battery_id TEXT NOT NULL REFERENCES batteries (battery_id),
    ts BIGINT NOT NULL,
    pack_id TEXT NOT NULL REFERENCES battery_packs (pack_id),
    battery_array_id TEXT REFERENCES battery_arrays (battery_array_id),
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    adapter_id TEXT,
    voltage_v DOUBLE PRECISION,
    current_a DOUBLE PRECISION,
    temperature_c DOUBLE PRECISION,
    soc_pct DOUBLE PRECISION,
    soh_pct DOUBLE PRECISION,
    basic_st TEXT,
    volt_st TEXT,
    current_st TEXT,
    temp_st TEXT,
    soh_st TEXT,
    coul_st TEXT,
    heater_st TEXT,
    bat_events BIGINT,
    power_events BIGINT,
    sys_events BIGINT,
    PRIMARY KEY (battery_id, ts)
);
CREATE INDEX battery_unit_samples_pack_ts ON battery_unit_samples (pack_id, ts);

-- One cell of a battery module.
CREATE TABLE battery_cell_samples (
    cell_id TEXT NOT NULL REFERENCES battery_cells (cell_id),
    ts BIGINT NOT NULL,
    battery_id TEXT NOT NULL REFERENCES batteries (battery_id),
    pack_id TEXT NOT NULL REFERENCES battery_packs (pack_id),
    battery_array_id TEXT REFERENCES battery_arrays (battery_array_id),
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    adapter_id TEXT,
    voltage_v DOUBLE PRECISION,
    temperature_c DOUBLE PRECISION,
    soc_pct DOUBLE PRECISION,
    volt_st TEXT,
    temp_st TEXT,
    PRIMARY KEY (cell_id, ts)
);
CREATE INDEX battery_cell_samples_pack_ts ON battery_cell_samples (pack_id, ts);
CREATE INDEX battery_cell_samples_battery_ts ON battery_cell_samples (battery_id, ts);

-- Meter readings; power_w > 0 imports from the grid.
CREATE TABLE meter_samples (
    meter_id TEXT NOT NULL REFERENCES meters (meter_id),
    ts BIGINT NOT NULL,
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    array_id TEXT REFERENCES arrays (array_id),
    power_w DOUBLE PRECISION,
    voltage_v DOUBLE PRECISION,
    current_a DOUBLE PRECISION,
    frequency_hz DOUBLE PRECISION,
    power_factor DOUBLE PRECISION,
    import_total_wh DOUBLE PRECISION,
    export_total_wh DOUBLE PRECISION,
    energy_total_kwh DOUBLE PRECISION,
    l1_voltage_v DOUBLE PRECISION,
    l2_voltage_v DOUBLE PRECISION,
    l3_voltage_v DOUBLE PRECISION,
    l1_current_a DOUBLE PRECISION,
    l2_current_a DOUBLE PRECISION,
    l3_current_a DOUBLE PRECISION,
    l1_power_w DOUBLE PRECISION,
    l2_power_w DOUBLE PRECISION,
    l3_power_w DOUBLE PRECISION,
    PRIMARY KEY (meter_id, ts)
);
CREATE INDEX meter_samples_system_ts ON meter_samples (system_id, ts);
