//! Builds databases of the existing app (DESIGN §6.2) the way it wrote them: TEXT timestamps with
//! offsets (and a stretch of naive local ones), an `energy_samples` table without a key and with
//! duplicated rows, an inverter the config does not know, and the columns the app added over time
//! (present in the "current" flavour, missing in the "old" one). Alongside each file it keeps what a
//! lossless upgrade must produce: every distinct sample with its UTC time.

#![allow(dead_code, unreachable_pub)]

pub mod takeover;
pub mod years;

use std::path::Path;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use chrono_tz::Tz;
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};

/// Which generation of the old app wrote the file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flavour {
    /// All later-added columns present (battery_soc, array_id, pack_id, ...).
    Current,
    /// The first schema: no later columns, no meter tables.
    Old,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedEnergy {
    pub inverter_id: String,
    pub ts: i64,
    pub pv_power_w: f64,
    pub load_power_w: f64,
    pub grid_power_w: f64,
    pub battery_soc_pct: Option<f64>,
    pub battery_voltage_v: Option<f64>,
    pub inverter_mode: Option<i32>,
    pub grid_import_total_wh: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedMeter {
    pub meter_id: String,
    pub ts: i64,
    pub power_w: f64,
    pub import_total_wh: f64,
    pub l2_voltage_v: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedBattery {
    pub pack_id: String,
    pub battery_index: i32,
    pub cell_index: i32,
    pub ts: i64,
    pub voltage_v: f64,
    pub soc_pct: f64,
}

#[derive(Debug, Default)]
pub struct Expected {
    pub energy: Vec<ExpectedEnergy>,
    pub energy_rows_in_source: usize,
    pub meters: Vec<ExpectedMeter>,
    pub banks: Vec<ExpectedBattery>,
    pub units: Vec<ExpectedBattery>,
    pub cells: Vec<ExpectedBattery>,
    pub array_samples: usize,
    pub naive_timestamps: u64,
}

pub struct Site {
    pub timezone: &'static str,
    pub first_day_utc: DateTime<Utc>,
    pub days: i64,
}

pub const KARACHI: Site = Site {
    timezone: "Asia/Karachi",
    first_day_utc: chrono::DateTime::from_timestamp_nanos(1_748_736_000_000_000_000),
    days: 3,
};
/// Starts 2025-03-29T00:00Z: Berlin springs forward on 2025-03-30 at 02:00 local (+01:00 → +02:00).
pub const BERLIN: Site = Site {
    timezone: "Europe/Berlin",
    first_day_utc: chrono::DateTime::from_timestamp_nanos(1_743_206_400_000_000_000),
    days: 3,
};

/// The config that goes with a fixture: it knows powdrive1, grid_meter_1 and battery1 (2 batteries
/// of 3 cells); the database also has `ghost_inverter`, which it does not know.
pub fn config_yaml(site: &Site) -> String {
    format!(
        "home:\n  id: home\n  name: Legacy Home\n  timezone: {tz}\narrays:\n  - id: array1\n    name: Roof\n    inverter_ids: [powdrive1]\ninverters:\n  - id: powdrive1\n    array_id: array1\n    adapter:\n      type: powdrive\n      transport: rtu\n      serial_port: /dev/ttyUSB0\n      unit_id: 1\nmeters:\n  - id: grid_meter_1\n    array_id: home\n    adapter:\n      type: iammeter\n      transport: tcp\n      host: 192.168.1.20\nbattery_banks:\n  - id: battery1\n    batteries: 2\n    cells_per_battery: 3\n    adapter:\n      type: pytes\n      serial_port: /dev/ttyUSB1\n",
        tz = site.timezone
    )
}

fn sql_text(value: Option<String>) -> String {
    value
        .map(|v| format!("'{v}'"))
        .unwrap_or_else(|| "NULL".into())
}

fn sql_num(value: Option<f64>) -> String {
    value
        .map(|v| v.to_string())
        .unwrap_or_else(|| "NULL".into())
}

/// Writes the fixture database at `path` and returns what an upgrade must produce from it.
pub fn build(path: &Path, site: &Site, flavour: Flavour) -> Expected {
    let tz: Tz = site.timezone.parse().unwrap();
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    let current = flavour == Flavour::Current;
    let mut schema = String::from(
        "CREATE TABLE energy_samples (ts TEXT NOT NULL, inverter_id TEXT NOT NULL, pv_power_w INTEGER, load_power_w INTEGER,
            grid_power_w INTEGER, batt_voltage_v REAL, batt_current_a REAL, soc REAL);
         CREATE TABLE battery_bank_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, voltage REAL, current REAL, temperature REAL,
            soc REAL, batteries_count INTEGER, cells_per_battery INTEGER);
         CREATE TABLE battery_unit_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, power INTEGER NOT NULL, voltage REAL, current REAL,
            temperature REAL, soc REAL, basic_st TEXT, volt_st TEXT, current_st TEXT, temp_st TEXT, soh_st TEXT, coul_st TEXT,
            heater_st TEXT, bat_events INTEGER, power_events INTEGER, sys_events INTEGER);
         CREATE TABLE battery_cell_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, power INTEGER NOT NULL, cell INTEGER NOT NULL,
            voltage REAL, temperature REAL, soc REAL, volt_st TEXT, temp_st TEXT);
         CREATE TABLE pv_daily (day TEXT NOT NULL, inverter_id TEXT NOT NULL, pv_kwh REAL NOT NULL, PRIMARY KEY(day, inverter_id));
         CREATE TABLE configuration (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL, source TEXT NOT NULL);
         CREATE TABLE hourly_energy (inverter_id TEXT NOT NULL, date TEXT NOT NULL, hour_start INTEGER NOT NULL, solar_energy_kwh REAL,
            load_energy_kwh REAL, sample_count INTEGER, PRIMARY KEY (inverter_id, date, hour_start));
         INSERT INTO pv_daily VALUES ('2025-06-01', 'powdrive1', 42.5);
         INSERT INTO configuration VALUES ('timezone', 'x', '2025-06-01', 'ui');
         INSERT INTO hourly_energy VALUES ('powdrive1', '2025-06-01', 12, 3.25, 1.5, 360);",
    );
    if current {
        schema.push_str(
            "ALTER TABLE energy_samples ADD COLUMN battery_soc REAL; ALTER TABLE energy_samples ADD COLUMN battery_voltage_v REAL;
             ALTER TABLE energy_samples ADD COLUMN battery_current_a REAL; ALTER TABLE energy_samples ADD COLUMN inverter_mode INTEGER;
             ALTER TABLE energy_samples ADD COLUMN inverter_temp_c REAL; ALTER TABLE energy_samples ADD COLUMN grid_import_wh REAL;
             ALTER TABLE energy_samples ADD COLUMN grid_export_wh REAL; ALTER TABLE energy_samples ADD COLUMN array_id TEXT;
             ALTER TABLE battery_bank_samples ADD COLUMN pack_id TEXT; ALTER TABLE battery_bank_samples ADD COLUMN array_id TEXT;
             CREATE TABLE meter_samples (ts TEXT NOT NULL, meter_id TEXT NOT NULL, array_id TEXT, grid_power_w INTEGER,
                grid_voltage_v REAL, grid_current_a REAL, grid_frequency_hz REAL, grid_import_wh INTEGER, grid_export_wh INTEGER,
                energy_kwh REAL, power_factor REAL, voltage_phase_a REAL, voltage_phase_b REAL, voltage_phase_c REAL,
                current_phase_a REAL, current_phase_b REAL, current_phase_c REAL, power_phase_a INTEGER, power_phase_b INTEGER,
                power_phase_c INTEGER);
             CREATE TABLE arrays (array_id TEXT PRIMARY KEY, name TEXT);
             INSERT INTO arrays VALUES ('array1', 'Roof'), ('garage', 'Garage roof');
             CREATE TABLE array_samples (ts TEXT NOT NULL, array_id TEXT NOT NULL, pv_power_w INTEGER, load_power_w INTEGER,
                grid_power_w INTEGER, batt_power_w INTEGER, batt_soc_pct REAL, batt_voltage_v REAL, batt_current_a REAL,
                PRIMARY KEY (ts, array_id));",
        );
    }
    conn.batch_execute(&schema).unwrap();

    let mut expected = Expected::default();
    let mut statements = String::from("BEGIN;");
    let steps = site.days * 144;
    for step in 0..steps {
        let instant = site.first_day_utc + Duration::minutes(10 * step);
        let ms = instant.timestamp_millis();
        let local = instant.with_timezone(&tz);
        let offset: FixedOffset = chrono::Offset::fix(local.offset());
        // The first 12 samples of the second day were written without an offset (an older app
        // version); the rest alternate between 'T' and ' ' separators, with microseconds.
        let naive_segment = (144..156).contains(&step);
        let ts = if naive_segment {
            local.naive_local().format("%Y-%m-%dT%H:%M:%S").to_string()
        } else if step % 2 == 0 {
            offset
                .from_utc_datetime(&instant.naive_utc())
                .format("%Y-%m-%dT%H:%M:%S%.6f%:z")
                .to_string()
        } else {
            offset
                .from_utc_datetime(&instant.naive_utc())
                .format("%Y-%m-%d %H:%M:%S%:z")
                .to_string()
        };
        if naive_segment {
            expected.naive_timestamps += 1;
        }
        let i = step as f64;
        for (inverter_id, base) in [("powdrive1", 1000.0), ("ghost_inverter", 300.0)] {
            let pv = base + i;
            let load = 500.0 + (step % 7) as f64 * 10.0;
            let grid = if step % 3 == 0 { -120.0 } else { 80.0 };
            let soc = 40.0 + (step % 50) as f64;
            let voltage = 51.0 + (step % 10) as f64 / 10.0;
            // The old app wrote `soc`/`batt_voltage_v` first and the battery_* columns later.
            let older_row = step < 144;
            let import_wh = 10_000.0 + i * 12.5;
            let row = if current {
                format!(
                    "INSERT INTO energy_samples (ts, inverter_id, pv_power_w, load_power_w, grid_power_w, batt_voltage_v, soc,
                        battery_soc, battery_voltage_v, inverter_mode, grid_import_wh, array_id)
                     VALUES ('{ts}', '{inverter_id}', {pv}, {load}, {grid}, {}, {}, {}, {}, {}, {import_wh}, {});",
                    sql_num(older_row.then_some(voltage)),
                    sql_num(older_row.then_some(soc)),
                    sql_num((!older_row).then_some(soc)),
                    sql_num((!older_row).then_some(voltage)),
                    step % 4,
                    sql_text((inverter_id == "powdrive1" && step % 5 == 0).then(|| "array1".to_owned())),
                )
            } else {
                format!(
                    "INSERT INTO energy_samples (ts, inverter_id, pv_power_w, load_power_w, grid_power_w, batt_voltage_v, soc)
                     VALUES ('{ts}', '{inverter_id}', {pv}, {load}, {grid}, {voltage}, {soc});"
                )
            };
            statements.push_str(&row);
            expected.energy_rows_in_source += 1;
            // The first seven powdrive1 rows were written twice, as the old app sometimes did.
            if inverter_id == "powdrive1" && step < 7 {
                statements.push_str(&row);
                expected.energy_rows_in_source += 1;
            }
            expected.energy.push(ExpectedEnergy {
                inverter_id: inverter_id.into(),
                ts: ms,
                pv_power_w: pv,
                load_power_w: load,
                grid_power_w: grid,
                battery_soc_pct: Some(soc),
                battery_voltage_v: Some(voltage),
                inverter_mode: current.then_some((step % 4) as i32),
                grid_import_total_wh: current.then_some(import_wh),
            });
        }

        let bank_voltage = 52.0 + (step % 20) as f64 / 20.0;
        let bank_soc = 30.0 + (step % 60) as f64;
        if current {
            statements.push_str(&format!(
                "INSERT INTO battery_bank_samples (ts, bank_id, voltage, current, temperature, soc, batteries_count, cells_per_battery, pack_id)
                 VALUES ('{ts}', 'battery1', {bank_voltage}, -12.5, 24.0, {bank_soc}, 2, 3, 'battery1');"
            ));
        } else {
            statements.push_str(&format!(
                "INSERT INTO battery_bank_samples (ts, bank_id, voltage, current, temperature, soc, batteries_count, cells_per_battery)
                 VALUES ('{ts}', 'battery1', {bank_voltage}, -12.5, 24.0, {bank_soc}, 2, 3);"
            ));
        }
        expected.banks.push(ExpectedBattery {
            pack_id: "battery1".into(),
            battery_index: 0,
            cell_index: 0,
            ts: ms,
            voltage_v: bank_voltage,
            soc_pct: bank_soc,
        });
        // Three batteries report, though the config knows two: the third becomes a new battery row.
        for battery in 1..=3 {
            let voltage = 17.0 + battery as f64 / 10.0 + (step % 5) as f64 / 100.0;
            let soc = bank_soc - battery as f64;
            statements.push_str(&format!(
                "INSERT INTO battery_unit_samples (ts, bank_id, power, voltage, current, temperature, soc, basic_st, bat_events)
                 VALUES ('{ts}', 'battery1', {battery}, {voltage}, -4.1, 23.5, {soc}, 'Charge', {});",
                step % 3
            ));
            expected.units.push(ExpectedBattery {
                pack_id: "battery1".into(),
                battery_index: battery,
                cell_index: 0,
                ts: ms,
                voltage_v: voltage,
                soc_pct: soc,
            });
            if battery <= 2 {
                for cell in 1..=3 {
                    let cell_voltage = 3.3 + cell as f64 / 1000.0 + (step % 9) as f64 / 1000.0;
                    statements.push_str(&format!(
                        "INSERT INTO battery_cell_samples (ts, bank_id, power, cell, voltage, temperature, soc, volt_st)
                         VALUES ('{ts}', 'battery1', {battery}, {cell}, {cell_voltage}, 22.0, {soc}, 'Normal');"
                    ));
                    expected.cells.push(ExpectedBattery {
                        pack_id: "battery1".into(),
                        battery_index: battery,
                        cell_index: cell,
                        ts: ms,
                        voltage_v: cell_voltage,
                        soc_pct: soc,
                    });
                }
            }
        }
        if current {
            let power = if step % 2 == 0 { 850.0 } else { -430.0 };
            let import_wh = 5_000_000.0 + i * 100.0;
            let l2 = 229.0 + (step % 3) as f64;
            statements.push_str(&format!(
                "INSERT INTO meter_samples (ts, meter_id, array_id, grid_power_w, grid_voltage_v, grid_frequency_hz, grid_import_wh,
                    grid_export_wh, power_factor, voltage_phase_b)
                 VALUES ('{ts}', 'grid_meter_1', 'home', {power}, 230.5, 50.0, {import_wh}, 1200000, 0.97, {l2});"
            ));
            expected.meters.push(ExpectedMeter {
                meter_id: "grid_meter_1".into(),
                ts: ms,
                power_w: power,
                import_total_wh: import_wh,
                l2_voltage_v: l2,
            });
            statements.push_str(&format!(
                "INSERT INTO array_samples VALUES ('{ts}', 'garage', {}, 400, 10, -200, 55.5, 52.1, -3.9);",
                1000 + step
            ));
            expected.array_samples += 1;
        }
    }
    statements.push_str("COMMIT;");
    conn.batch_execute(&statements).unwrap();
    expected
}
