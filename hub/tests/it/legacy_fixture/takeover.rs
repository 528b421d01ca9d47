//! Old-app files in the shapes users start from (issue "Taking over the old app's database"):
//! - an early installation: naive local timestamps first, `+05:00` later, exact duplicates and
//!   conflicting rows, no config and no zone named anywhere;
//! - a Berlin file whose naive rows sit on both sides of a DST change (and an all-naive one);
//! - a file of the old app's newest version: its own hierarchy tables with two systems,
//!   `configuration.timezone`, batteries stored positive-charging with no power column, and its own
//!   hourly and daily figures, also for a month whose raw samples it has already deleted.
//!
//! Timestamps are written the way the old app's Python wrote them (`str(datetime)`:
//! `2025-06-15 00:00:30.156105+05:00`, or without the offset for naive ones). Alongside each file
//! the builders return what a lossless upgrade must store.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use chrono_tz::Tz;
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};

/// Python's `str(datetime)` of an aware local time, with microseconds.
fn aware(instant: DateTime<Utc>, tz: Tz) -> String {
    let offset: FixedOffset = chrono::Offset::fix(instant.with_timezone(&tz).offset());
    offset
        .from_utc_datetime(&instant.naive_utc())
        .format("%Y-%m-%d %H:%M:%S%.6f%:z")
        .to_string()
}

/// The same without the offset (the old app's first versions).
fn naive(instant: DateTime<Utc>, tz: Tz) -> String {
    instant
        .with_timezone(&tz)
        .naive_local()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

fn open(path: &Path) -> SqliteConnection {
    SqliteConnection::establish(path.to_str().unwrap()).unwrap()
}

/// One stored row as a test compares it: device, UTC ms, and the values it checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub device: String,
    pub ts: i64,
    pub values: Vec<f64>,
}

/// What an upgrade of the early-installation file must store, per solarhub table, and what it
/// must keep as conflicts.
#[derive(Debug, Default)]
pub struct EarlyExpected {
    /// `energy_samples`: pv, grid, battery voltage, battery current (solarhub sign), battery power
    /// (solarhub sign, V x I).
    pub energy: Vec<Row>,
    /// `meter_samples`: power, import counter.
    pub meters: Vec<Row>,
    /// `battery_bank_samples`: voltage, current (solarhub sign), soc.
    pub banks: Vec<Row>,
    /// `battery_unit_samples`: voltage, current (solarhub sign).
    pub units: Vec<Row>,
    /// `battery_cell_samples`: voltage.
    pub cells: Vec<Row>,
    /// Rows read per legacy table.
    pub read: BTreeMap<&'static str, u64>,
    /// Exact duplicates per legacy table.
    pub duplicates: BTreeMap<&'static str, u64>,
    /// Conflicting rows per legacy table.
    pub conflicts: BTreeMap<&'static str, u64>,
    /// Timestamps written without an offset.
    pub naive_timestamps: u64,
}

pub const EARLY_STEPS: i64 = 2 * 24 * 120; // two days at 30 s
pub const EARLY_NAIVE_STEPS: i64 = 6 * 120; // the first six hours
/// 2025-06-15 00:00 in Karachi.
pub fn early_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 14, 19, 0, 0).unwrap()
}

/// Two days at 30 s of two inverters, a grid meter and a bank of two batteries of three cells,
/// written by an early version in Karachi: the first six hours naive, the rest with `+05:00`.
/// inv1's first ten rows and ten meter rows were written twice (exact duplicates); four inv2
/// rows and three bank rows were written a second time with other values (conflicts).
pub fn early_installation(path: &Path) -> EarlyExpected {
    early_installation_with(path, EARLY_NAIVE_STEPS)
}

/// As [`early_installation`], with the first `naive_steps` rows naive.
pub fn early_installation_with(path: &Path, naive_steps: i64) -> EarlyExpected {
    let tz: Tz = "Asia/Karachi".parse().unwrap();
    let mut conn = open(path);
    conn.batch_execute(
        "CREATE TABLE energy_samples (ts TEXT NOT NULL, inverter_id TEXT NOT NULL, pv_power_w INTEGER, load_power_w INTEGER,
            grid_power_w INTEGER, batt_voltage_v REAL, batt_current_a REAL, soc REAL);
         CREATE TABLE battery_bank_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, voltage REAL, current REAL, temperature REAL,
            soc REAL, batteries_count INTEGER, cells_per_battery INTEGER);
         CREATE TABLE battery_unit_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, power INTEGER NOT NULL, voltage REAL, current REAL,
            temperature REAL, soc REAL, basic_st TEXT, volt_st TEXT, current_st TEXT, temp_st TEXT, soh_st TEXT, coul_st TEXT,
            heater_st TEXT, bat_events INTEGER, power_events INTEGER, sys_events INTEGER);
         CREATE TABLE battery_cell_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, power INTEGER NOT NULL, cell INTEGER NOT NULL,
            voltage REAL, temperature REAL, soc REAL, volt_st TEXT, temp_st TEXT);
         CREATE TABLE meter_samples (ts TEXT NOT NULL, meter_id TEXT NOT NULL, array_id TEXT, grid_power_w INTEGER,
            grid_voltage_v REAL, grid_current_a REAL, grid_frequency_hz REAL, grid_import_wh INTEGER, grid_export_wh INTEGER,
            energy_kwh REAL, power_factor REAL, voltage_phase_a REAL, voltage_phase_b REAL, voltage_phase_c REAL,
            current_phase_a REAL, current_phase_b REAL, current_phase_c REAL, power_phase_a INTEGER, power_phase_b INTEGER,
            power_phase_c INTEGER);
         CREATE TABLE configuration (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL, source TEXT NOT NULL);
         CREATE TABLE pv_daily (day TEXT NOT NULL, inverter_id TEXT NOT NULL, pv_kwh REAL NOT NULL, PRIMARY KEY(day, inverter_id));",
    )
    .unwrap();
    let mut expected = EarlyExpected::default();
    let mut sql = String::from("BEGIN;");
    let count = |map: &mut BTreeMap<&'static str, u64>, table: &'static str| {
        *map.entry(table).or_default() += 1;
    };
    for step in 0..EARLY_STEPS {
        let instant =
            early_start() + Duration::seconds(30 * step) + Duration::microseconds(156_105);
        let ms = instant.timestamp_millis();
        let is_naive = step < naive_steps;
        let ts = if is_naive {
            naive(instant, tz)
        } else {
            aware(instant, tz)
        };
        let rows_per_step = 2 + 1 + 1 + 2 + 6;
        if is_naive {
            expected.naive_timestamps += rows_per_step;
        }
        let i = step as f64;
        for (n, inverter) in ["inv1", "inv2"].into_iter().enumerate() {
            let pv = 800.0 + (step % 97) as f64 + 100.0 * n as f64;
            let grid = if step % 3 == 0 { -150.0 } else { 90.0 };
            let voltage = 51.0 + (step % 10) as f64 / 10.0;
            // The old app's sign: positive while charging.
            let current = ((step % 40) as f64 - 20.0) / 2.0;
            let row = format!(
                "INSERT INTO energy_samples VALUES ('{ts}', '{inverter}', {pv}, 500, {grid}, {voltage}, {current}, {});",
                40.0 + (step % 50) as f64
            );
            sql.push_str(&row);
            count(&mut expected.read, "energy_samples");
            if inverter == "inv1" && step < 10 {
                sql.push_str(&row);
                count(&mut expected.read, "energy_samples");
                count(&mut expected.duplicates, "energy_samples");
            }
            if inverter == "inv2" && (4000..4004).contains(&step) {
                sql.push_str(&format!(
                    "INSERT INTO energy_samples VALUES ('{ts}', '{inverter}', {}, 500, {grid}, {voltage}, {current}, 41);",
                    pv + 1.0
                ));
                count(&mut expected.read, "energy_samples");
                count(&mut expected.conflicts, "energy_samples");
            }
            expected.energy.push(Row {
                device: inverter.into(),
                ts: ms,
                values: vec![pv, grid, voltage, -current, -(voltage * current)],
            });
        }
        let power = if step % 2 == 0 { 850.0 } else { -430.0 };
        let import_wh = 5_000_000.0 + i * 25.0;
        let meter_row = format!(
            "INSERT INTO meter_samples (ts, meter_id, array_id, grid_power_w, grid_voltage_v, grid_import_wh, grid_export_wh)
             VALUES ('{ts}', 'grid_meter_1', 'home', {power}, 230.5, {import_wh}, 1200000);"
        );
        sql.push_str(&meter_row);
        count(&mut expected.read, "meter_samples");
        if (3000..3010).contains(&step) {
            sql.push_str(&meter_row);
            count(&mut expected.read, "meter_samples");
            count(&mut expected.duplicates, "meter_samples");
        }
        expected.meters.push(Row {
            device: "grid_meter_1".into(),
            ts: ms,
            values: vec![power, import_wh],
        });
        let bank_voltage = 52.0 + (step % 20) as f64 / 20.0;
        let bank_current = ((step % 30) as f64 - 15.0) / 3.0;
        let bank_soc = 30.0 + (step % 60) as f64;
        sql.push_str(&format!(
            "INSERT INTO battery_bank_samples VALUES ('{ts}', 'battery1', {bank_voltage}, {bank_current}, 24.0, {bank_soc}, 2, 3);"
        ));
        count(&mut expected.read, "battery_bank_samples");
        if (100..103).contains(&step) {
            sql.push_str(&format!(
                "INSERT INTO battery_bank_samples VALUES ('{ts}', 'battery1', {bank_voltage}, {bank_current}, 24.0, {}, 2, 3);",
                bank_soc + 1.0
            ));
            count(&mut expected.read, "battery_bank_samples");
            count(&mut expected.conflicts, "battery_bank_samples");
        }
        expected.banks.push(Row {
            device: "battery1".into(),
            ts: ms,
            values: vec![bank_voltage, -bank_current, bank_soc],
        });
        for battery in 1..=2 {
            let voltage = 17.0 + battery as f64 / 10.0 + (step % 5) as f64 / 100.0;
            let current = bank_current / 2.0;
            sql.push_str(&format!(
                "INSERT INTO battery_unit_samples (ts, bank_id, power, voltage, current, temperature, soc, basic_st)
                 VALUES ('{ts}', 'battery1', {battery}, {voltage}, {current}, 23.5, {bank_soc}, 'Charge');"
            ));
            count(&mut expected.read, "battery_unit_samples");
            expected.units.push(Row {
                device: format!("battery1.b{battery}"),
                ts: ms,
                values: vec![voltage, -current],
            });
            for cell in 1..=3 {
                let cell_voltage = 3.3 + cell as f64 / 1000.0 + (step % 9) as f64 / 1000.0;
                sql.push_str(&format!(
                    "INSERT INTO battery_cell_samples (ts, bank_id, power, cell, voltage, temperature, soc, volt_st)
                     VALUES ('{ts}', 'battery1', {battery}, {cell}, {cell_voltage}, 22.0, {bank_soc}, 'Normal');"
                ));
                count(&mut expected.read, "battery_cell_samples");
                expected.cells.push(Row {
                    device: format!("battery1.b{battery}.c{cell}"),
                    ts: ms,
                    values: vec![cell_voltage],
                });
            }
        }
    }
    sql.push_str("COMMIT;");
    conn.batch_execute(&sql).unwrap();
    expected
}

/// The config that goes with the early installation.
pub fn early_config() -> String {
    "home:\n  id: home\n  name: Early Home\n  timezone: Asia/Karachi\narrays:\n  - id: array1\n    name: Roof\n    inverter_ids: [inv1, inv2]\ninverters:\n  - id: inv1\n    array_id: array1\n    adapter:\n      type: powdrive\n      transport: rtu\n      serial_port: /dev/ttyUSB0\n      unit_id: 1\n  - id: inv2\n    array_id: array1\n    adapter:\n      type: powdrive\n      transport: rtu\n      serial_port: /dev/ttyUSB0\n      unit_id: 2\nmeters:\n  - id: grid_meter_1\n    array_id: home\n    adapter:\n      type: iammeter\n      transport: tcp\n      host: 192.168.1.20\nbattery_banks:\n  - id: battery1\n    batteries: 2\n    cells_per_battery: 3\n    adapter:\n      type: pytes\n      serial_port: /dev/ttyUSB1\n".into()
}

/// Berlin springs forward on 2025-03-30 at 02:00 (+01:00 → +02:00). One inverter at 60 s from
/// 2025-03-29 12:00 local for a day; the rows from 22:00 to 06:00 local are naive (both sides of
/// the change), or every row when `all_naive`. Returns every row's true UTC time, in order.
pub fn berlin_dst(path: &Path, all_naive: bool) -> Vec<i64> {
    let tz: Tz = "Europe/Berlin".parse().unwrap();
    let start = Utc.with_ymd_and_hms(2025, 3, 29, 11, 0, 0).unwrap();
    let naive_from = Utc.with_ymd_and_hms(2025, 3, 29, 21, 0, 0).unwrap();
    let naive_to = Utc.with_ymd_and_hms(2025, 3, 30, 4, 0, 0).unwrap();
    let mut conn = open(path);
    let mut sql = String::from(
        "CREATE TABLE energy_samples (ts TEXT NOT NULL, inverter_id TEXT NOT NULL, pv_power_w INTEGER, load_power_w INTEGER,
            grid_power_w INTEGER, batt_voltage_v REAL, batt_current_a REAL, soc REAL);
         BEGIN;",
    );
    let mut times = Vec::new();
    for step in 0..24 * 60 {
        let instant = start + Duration::minutes(step) + Duration::microseconds(250_000);
        let ts = if all_naive || (naive_from..naive_to).contains(&instant) {
            naive(instant, tz)
        } else {
            aware(instant, tz)
        };
        sql.push_str(&format!(
            "INSERT INTO energy_samples VALUES ('{ts}', 'inv1', {}, 400, 100, 51.2, 5.0, 50);",
            step % 500
        ));
        times.push(instant.timestamp_millis());
    }
    sql.push_str("COMMIT;");
    conn.batch_execute(&sql).unwrap();
    times
}

/// What the Phase-1 file holds beyond its samples.
#[derive(Debug, Default)]
pub struct Phase1Expected {
    /// The old app's hourly battery figures of 2025-06-15 (charge, discharge kWh), by local hour.
    pub day_hours: Vec<(f64, f64)>,
    /// The old app's daily figures of May 2025 (no raw samples any more): date → (pv, load kWh).
    pub may_days: BTreeMap<String, (f64, f64)>,
    /// Its hourly solar figures of 2025-05-01, by hour.
    pub may_first_hours: Vec<f64>,
    /// Its meter_daily import figures of May: date → kWh.
    pub may_meter_import: BTreeMap<String, f64>,
    /// Sample instants of the raw day.
    pub samples: usize,
}

/// The battery current of the raw day at local minute `m`, in the old app's sign (positive while
/// charging): charging through the day, discharging at night.
fn phase1_current(minute: i64) -> f64 {
    let hour = minute as f64 / 60.0;
    60.0 * ((hour - 6.0) / 24.0 * std::f64::consts::TAU).sin()
}

/// A file of the old app's newest version, in Karachi: its own hierarchy tables (the
/// auto-created `system` holding every device, an empty `home` from its config),
/// `configuration.timezone`, one raw day (2025-06-15) at 60 s with batteries stored
/// positive-charging and no power column, its hourly figures of that day, and hourly and daily
/// figures (and meter days) of May 2025, whose raw samples it has deleted.
pub fn phase1(path: &Path) -> Phase1Expected {
    let tz: Tz = "Asia/Karachi".parse().unwrap();
    let mut conn = open(path);
    conn.batch_execute(
        r#"CREATE TABLE energy_samples (ts TEXT NOT NULL, inverter_id TEXT NOT NULL, pv_power_w INTEGER, load_power_w INTEGER,
            grid_power_w INTEGER, batt_voltage_v REAL, batt_current_a REAL, soc REAL, battery_soc REAL, battery_voltage_v REAL,
            battery_current_a REAL, inverter_mode INTEGER, inverter_temp_c REAL, array_id TEXT, system_id TEXT);
         CREATE TABLE battery_bank_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, voltage REAL, current REAL, temperature REAL,
            soc REAL, batteries_count INTEGER, cells_per_battery INTEGER, pack_id TEXT, array_id TEXT, battery_array_id TEXT, system_id TEXT);
         CREATE TABLE battery_unit_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, power INTEGER NOT NULL, voltage REAL, current REAL,
            temperature REAL, soc REAL, basic_st TEXT, volt_st TEXT, current_st TEXT, temp_st TEXT, soh_st TEXT, coul_st TEXT,
            heater_st TEXT, bat_events INTEGER, power_events INTEGER, sys_events INTEGER, pack_id TEXT, battery_id TEXT,
            battery_array_id TEXT, system_id TEXT);
         CREATE TABLE battery_cell_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, power INTEGER NOT NULL, cell INTEGER NOT NULL,
            voltage REAL, temperature REAL, soc REAL, volt_st TEXT, temp_st TEXT, battery_id TEXT, pack_id TEXT,
            battery_array_id TEXT, system_id TEXT);
         CREATE TABLE meter_samples (ts TEXT NOT NULL, meter_id TEXT NOT NULL, array_id TEXT, grid_power_w INTEGER,
            grid_voltage_v REAL, grid_current_a REAL, grid_frequency_hz REAL, grid_import_wh INTEGER, grid_export_wh INTEGER,
            energy_kwh REAL, power_factor REAL, voltage_phase_a REAL, voltage_phase_b REAL, voltage_phase_c REAL,
            current_phase_a REAL, current_phase_b REAL, current_phase_c REAL, power_phase_a INTEGER, power_phase_b INTEGER,
            power_phase_c INTEGER, system_id TEXT);
         CREATE TABLE configuration (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL, source TEXT NOT NULL);
         INSERT INTO configuration VALUES ('timezone', 'Asia/Karachi', '2025-06-01 10:00:00.000000+05:00', 'config_file'),
            ('home.id', 'home', '2025-06-01 10:00:00.000000+05:00', 'config_file'),
            ('mqtt.host', 'localhost', '2025-06-01 10:00:00.000000+05:00', 'config_file');
         CREATE TABLE systems (system_id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT, timezone TEXT DEFAULT 'Asia/Karachi',
            created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
         INSERT INTO systems (system_id, name, description, timezone) VALUES
            ('system', 'My Solar System', 'Auto-created default system', 'Asia/Karachi'),
            ('home', 'Legacy Home', 'Main residential solar system', 'Asia/Karachi');
         CREATE TABLE adapter_base (adapter_type TEXT PRIMARY KEY, device_category TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
            config_schema TEXT NOT NULL, supported_transports TEXT, default_config TEXT, created_at TEXT, updated_at TEXT);
         INSERT INTO adapter_base (adapter_type, device_category, name, config_schema) VALUES ('powdrive', 'inverter', 'Powdrive', '{}');
         CREATE TABLE adapters (adapter_id TEXT PRIMARY KEY, adapter_type TEXT NOT NULL, device_category TEXT NOT NULL, name TEXT,
            config_json TEXT NOT NULL, device_id TEXT, device_type TEXT, priority INTEGER DEFAULT 1, enabled BOOLEAN DEFAULT 1,
            created_at TEXT, updated_at TEXT);
         INSERT INTO adapters (adapter_id, adapter_type, device_category, config_json, device_id, device_type) VALUES
            ('powdrive1_adapter', 'powdrive', 'inverter', '{"type": "powdrive", "transport": "rtu", "serial_port": "/dev/ttyUSB0", "unit_id": 1, "baudrate": 9600}', 'powdrive1', 'inverter'),
            ('grid_meter_1_adapter', 'iammeter', 'meter', '{"type": "iammeter", "transport": "tcp", "host": "192.168.1.20", "port": 502}', 'grid_meter_1', 'meter'),
            ('battery1_adapter', 'pytes', 'battery', '{"type": "pytes", "serial_port": "/dev/ttyUSB1", "baudrate": 115200}', 'battery1', 'battery_pack');
         CREATE TABLE arrays (array_id TEXT PRIMARY KEY, name TEXT, system_id TEXT);
         INSERT INTO arrays VALUES ('array1', 'Default Inverter Array', 'system');
         CREATE TABLE inverters (inverter_id TEXT PRIMARY KEY, array_id TEXT NOT NULL, system_id TEXT NOT NULL, adapter_id TEXT,
            name TEXT NOT NULL, model TEXT, serial_number TEXT, vendor TEXT, phase_type TEXT, created_at TEXT, updated_at TEXT);
         INSERT INTO inverters (inverter_id, array_id, system_id, adapter_id, name, model, serial_number, vendor, phase_type)
            VALUES ('powdrive1', 'array1', 'system', 'powdrive1_adapter', 'Roof Powdrive', 'PD-8K', 'PD123', 'Powdrive', 'single');
         CREATE TABLE meters (meter_id TEXT PRIMARY KEY, system_id TEXT NOT NULL, array_id TEXT, adapter_id TEXT, name TEXT NOT NULL,
            model TEXT, type TEXT, attachment_target TEXT, created_at TEXT, updated_at TEXT);
         INSERT INTO meters (meter_id, system_id, array_id, adapter_id, name, model, type, attachment_target)
            VALUES ('grid_meter_1', 'system', NULL, 'grid_meter_1_adapter', 'Grid connection', 'WEM3080T', 'grid', 'home');
         CREATE TABLE battery_arrays (battery_array_id TEXT PRIMARY KEY, system_id TEXT NOT NULL, name TEXT NOT NULL,
            created_at TEXT, updated_at TEXT);
         INSERT INTO battery_arrays (battery_array_id, system_id, name) VALUES ('battery_array1', 'system', 'Default Battery Array');
         CREATE TABLE battery_packs (pack_id TEXT PRIMARY KEY, name TEXT, chemistry TEXT, nominal_kwh REAL, max_charge_kw REAL,
            max_discharge_kw REAL, battery_array_id TEXT, system_id TEXT);
         INSERT INTO battery_packs VALUES ('battery1', 'Pytes bank', 'LFP', 10.0, 5.0, 5.0, 'battery_array1', 'system');
         CREATE TABLE battery_pack_adapters (pack_id TEXT NOT NULL, adapter_id TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 1,
            enabled BOOLEAN DEFAULT 1, created_at TEXT, PRIMARY KEY (pack_id, adapter_id));
         INSERT INTO battery_pack_adapters (pack_id, adapter_id, priority, enabled) VALUES ('battery1', 'battery1_adapter', 1, 1);
         CREATE TABLE battery_array_attachments (battery_array_id TEXT NOT NULL, inverter_array_id TEXT NOT NULL,
            attached_since TEXT NOT NULL, detached_at TEXT, PRIMARY KEY (battery_array_id, attached_since));
         INSERT INTO battery_array_attachments VALUES ('battery_array1', 'array1', '2025-01-01T00:00:00', NULL);
         CREATE TABLE batteries (battery_id TEXT PRIMARY KEY, pack_id TEXT NOT NULL, battery_array_id TEXT NOT NULL,
            system_id TEXT NOT NULL, battery_index INTEGER NOT NULL, serial_number TEXT, model TEXT, created_at TEXT);
         INSERT INTO batteries (battery_id, pack_id, battery_array_id, system_id, battery_index)
            VALUES ('battery1_battery_0', 'battery1', 'battery_array1', 'system', 0), ('battery1_battery_1', 'battery1', 'battery_array1', 'system', 1);
         CREATE TABLE hourly_energy (inverter_id TEXT NOT NULL, date TEXT NOT NULL, hour_start INTEGER NOT NULL,
            solar_energy_kwh REAL, load_energy_kwh REAL, battery_charge_energy_kwh REAL, battery_discharge_energy_kwh REAL,
            grid_import_energy_kwh REAL, grid_export_energy_kwh REAL, avg_solar_power_w REAL, avg_load_power_w REAL,
            avg_battery_power_w REAL, avg_grid_power_w REAL, sample_count INTEGER, system_id TEXT, array_id TEXT,
            PRIMARY KEY (inverter_id, date, hour_start));
         CREATE TABLE daily_summary (date TEXT NOT NULL, inverter_id TEXT NOT NULL, day_of_year INTEGER, year INTEGER,
            pv_energy_kwh REAL, pv_max_power_w REAL, pv_avg_power_w REAL, pv_peak_hour INTEGER, load_energy_kwh REAL,
            load_max_power_w REAL, load_avg_power_w REAL, load_peak_hour INTEGER, battery_min_soc_pct REAL,
            battery_max_soc_pct REAL, battery_avg_soc_pct REAL, battery_cycles REAL, grid_energy_imported_kwh REAL,
            grid_energy_exported_kwh REAL, grid_max_import_w REAL, grid_max_export_w REAL, weather_factor REAL,
            sample_count INTEGER, system_id TEXT, array_id TEXT, PRIMARY KEY (date, inverter_id));
         CREATE TABLE meter_daily (day TEXT NOT NULL, meter_id TEXT NOT NULL, array_id TEXT, import_energy_kwh REAL NOT NULL DEFAULT 0,
            export_energy_kwh REAL NOT NULL DEFAULT 0, net_energy_kwh REAL NOT NULL DEFAULT 0, max_import_power_w INTEGER,
            max_export_power_w INTEGER, avg_voltage_v REAL, avg_current_a REAL, avg_frequency_hz REAL, sample_count INTEGER DEFAULT 0,
            created_at TEXT, updated_at TEXT, system_id TEXT, PRIMARY KEY(day, meter_id));
         CREATE TABLE pv_daily (day TEXT NOT NULL, inverter_id TEXT NOT NULL, pv_kwh REAL NOT NULL, PRIMARY KEY(day, inverter_id));
         CREATE TABLE billing_daily (site_id TEXT NOT NULL DEFAULT 'default', date TEXT NOT NULL, import_off_kwh REAL,
            PRIMARY KEY (site_id, date));"#,
    )
    .unwrap();
    let mut expected = Phase1Expected::default();
    let mut sql = String::from("BEGIN;");
    // The raw day: 2025-06-15 in Karachi, every minute.
    let start = Utc.with_ymd_and_hms(2025, 6, 14, 19, 0, 0).unwrap();
    let voltage = |m: i64| 51.2 + (m % 60) as f64 / 600.0;
    let mut soc = 50.0;
    let mut hours = vec![(0.0f64, 0.0f64); 24];
    for m in 0..24 * 60 {
        let instant = start + Duration::minutes(m) + Duration::microseconds(156_105);
        let ts = aware(instant, tz);
        let (v, i) = (voltage(m), phase1_current(m));
        sql.push_str(&format!(
            "INSERT INTO energy_samples (ts, inverter_id, pv_power_w, load_power_w, grid_power_w, batt_voltage_v, batt_current_a, soc,
                battery_soc, battery_voltage_v, battery_current_a, inverter_mode, array_id, system_id)
             VALUES ('{ts}', 'powdrive1', {}, 800, 100, {v}, {i}, {soc}, {soc}, {v}, {i}, 3, 'array1', 'system');",
            (3000.0 * ((m as f64 / 60.0 - 6.0) / 12.0 * std::f64::consts::PI).sin()).max(0.0).round()
        ));
        sql.push_str(&format!(
            "INSERT INTO battery_bank_samples (ts, bank_id, voltage, current, temperature, soc, batteries_count, cells_per_battery,
                pack_id, battery_array_id, system_id)
             VALUES ('{ts}', 'battery1', {v}, {i}, 25.0, {soc}, 2, 2, 'battery1', 'battery_array1', 'system');"
        ));
        for battery in 1..=2 {
            sql.push_str(&format!(
                "INSERT INTO battery_unit_samples (ts, bank_id, power, voltage, current, soc, pack_id, system_id)
                 VALUES ('{ts}', 'battery1', {battery}, {v}, {}, {soc}, 'battery1', 'system');",
                i / 2.0
            ));
            for cell in 1..=2 {
                sql.push_str(&format!(
                    "INSERT INTO battery_cell_samples (ts, bank_id, power, cell, voltage, pack_id, system_id)
                     VALUES ('{ts}', 'battery1', {battery}, {cell}, 3.3, 'battery1', 'system');"
                ));
            }
        }
        sql.push_str(&format!(
            "INSERT INTO meter_samples (ts, meter_id, array_id, grid_power_w, grid_voltage_v, grid_import_wh, grid_export_wh, system_id)
             VALUES ('{ts}', 'grid_meter_1', 'home', 100, 230.0, {}, 1000000, 'system');",
            5_000_000.0 + m as f64 * 100.0 / 60.0
        ));
        // The old app's own hourly battery figures: the trapezoid of V x I between minutes.
        if m + 1 < 24 * 60 {
            let p0 = v * i;
            let p1 = voltage(m + 1) * phase1_current(m + 1);
            let kwh = (p0 + p1) / 2.0 / 60.0 / 1000.0;
            let hour = &mut hours[(m / 60) as usize];
            if kwh >= 0.0 {
                hour.0 += kwh;
            } else {
                hour.1 -= kwh;
            }
        }
        // The state of charge follows the battery: it rises while charging.
        soc += v * i / 60.0 / 10_000.0 * 100.0;
        expected.samples += 1;
    }
    for (hour, (charge, discharge)) in hours.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO hourly_energy (inverter_id, date, hour_start, solar_energy_kwh, load_energy_kwh, battery_charge_energy_kwh,
                battery_discharge_energy_kwh, sample_count) VALUES ('powdrive1', '2025-06-15', {hour}, 1.0, 0.8, {charge}, {discharge}, 60);"
        ));
    }
    expected.day_hours = hours;
    // May 2025: figures only, the raw samples are long gone.
    for day in 1..=31 {
        let date = format!("2025-05-{day:02}");
        let (pv, load) = (20.0 + day as f64, 15.0 + day as f64 / 2.0);
        sql.push_str(&format!(
            "INSERT INTO daily_summary (date, inverter_id, day_of_year, year, pv_energy_kwh, load_energy_kwh, battery_min_soc_pct,
                battery_max_soc_pct, grid_energy_imported_kwh, grid_energy_exported_kwh, sample_count)
             VALUES ('{date}', 'powdrive1', {}, 2025, {pv}, {load}, 20, 95, 3.5, 1.5, 17280);",
            120 + day
        ));
        expected.may_days.insert(date.clone(), (pv, load));
        for hour in 0..24 {
            let solar = if (6..18).contains(&hour) {
                pv / 12.0
            } else {
                0.0
            };
            sql.push_str(&format!(
                "INSERT INTO hourly_energy (inverter_id, date, hour_start, solar_energy_kwh, load_energy_kwh, battery_charge_energy_kwh,
                    battery_discharge_energy_kwh, grid_import_energy_kwh, grid_export_energy_kwh, avg_battery_power_w, sample_count)
                 VALUES ('powdrive1', '{date}', {hour}, {solar}, {}, 0.5, 0.25, 0.1, 0.05, 250, 720);",
                load / 24.0
            ));
            if day == 1 {
                expected.may_first_hours.push(solar);
            }
        }
        let import = 3.0 + day as f64 / 10.0;
        sql.push_str(&format!(
            "INSERT INTO meter_daily (day, meter_id, array_id, import_energy_kwh, export_energy_kwh, net_energy_kwh, sample_count)
             VALUES ('{date}', 'grid_meter_1', 'home', {import}, 1.0, {}, 17280);",
            import - 1.0
        ));
        expected.may_meter_import.insert(date, import);
    }
    sql.push_str("COMMIT;");
    conn.batch_execute(&sql).unwrap();
    expected
}
