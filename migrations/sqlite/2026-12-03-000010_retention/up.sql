-- Retention: raw samples are deleted after a configurable time per table; before they go, the
-- roller has kept a 5-minute aggregate per device (one row per device per bucket, ts = the
-- bucket's start in UTC epoch ms; a bucket holds the device's samples with ts in [ts, ts + 5 min)).
-- Instantaneous values are the bucket's means, lifetime counters its highest value; samples counts
-- the raw rows aggregated. NULL means no sample of the bucket reported the value.
CREATE TABLE energy_samples_5m (
    inverter_id TEXT NOT NULL REFERENCES inverters (inverter_id),
    ts BIGINT NOT NULL,
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    samples INTEGER NOT NULL,
    pv_power_w DOUBLE,
    load_power_w DOUBLE,
    grid_power_w DOUBLE,
    battery_power_w DOUBLE,
    battery_soc_pct DOUBLE,
    battery_voltage_v DOUBLE,
    battery_current_a DOUBLE,
    inverter_temp_c DOUBLE,
    pv_energy_total_wh DOUBLE,
    load_energy_total_wh DOUBLE,
    grid_import_total_wh DOUBLE,
    grid_export_total_wh DOUBLE,
    battery_charge_total_wh DOUBLE,
    battery_discharge_total_wh DOUBLE,
    PRIMARY KEY (inverter_id, ts)
);
CREATE INDEX energy_samples_5m_system_ts ON energy_samples_5m (system_id, ts);

CREATE TABLE meter_samples_5m (
    meter_id TEXT NOT NULL REFERENCES meters (meter_id),
    ts BIGINT NOT NULL,
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    samples INTEGER NOT NULL,
    power_w DOUBLE,
    voltage_v DOUBLE,
    current_a DOUBLE,
    frequency_hz DOUBLE,
    power_factor DOUBLE,
    import_total_wh DOUBLE,
    export_total_wh DOUBLE,
    PRIMARY KEY (meter_id, ts)
);
CREATE INDEX meter_samples_5m_system_ts ON meter_samples_5m (system_id, ts);

CREATE TABLE battery_bank_samples_5m (
    pack_id TEXT NOT NULL REFERENCES battery_packs (pack_id),
    ts BIGINT NOT NULL,
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    samples INTEGER NOT NULL,
    voltage_v DOUBLE,
    current_a DOUBLE,
    power_w DOUBLE,
    temperature_c DOUBLE,
    soc_pct DOUBLE,
    soh_pct DOUBLE,
    PRIMARY KEY (pack_id, ts)
);
CREATE INDEX battery_bank_samples_5m_system_ts ON battery_bank_samples_5m (system_id, ts);

-- How far retention has deleted each table, per group (a system; for battery units and cells, a
-- pack): rows of the group with ts < deleted_before may be gone. Rollups of a system's hours whose
-- samples (or the samples their energy reaches back to) may be gone are never rolled again, so they
-- stay as they were. A system's rows for the tables the rollups are made from are written when
-- retention first looks at the system, after it made the 5-minute aggregates of every sample the
-- system had then (deleted_before is then -9223372036854775808: nothing deleted yet).
CREATE TABLE retention_marks (
    sample_table TEXT NOT NULL,
    group_id TEXT NOT NULL,
    deleted_before BIGINT NOT NULL,
    PRIMARY KEY (sample_table, group_id)
);

-- A running recompute's claim on a system's samples from from_ts on: retention leaves them (and
-- the counter reach before them) alone while the claim was renewed within a day.
CREATE TABLE retention_holds (
    holder TEXT PRIMARY KEY NOT NULL,
    system_id TEXT NOT NULL,
    from_ts BIGINT NOT NULL,
    taken_at BIGINT NOT NULL
);
