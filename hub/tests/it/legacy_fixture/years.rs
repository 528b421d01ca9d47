//! Years of the existing app's history in one file, written as it writes them (TEXT timestamps
//! with the zone's offset, battery power positive when charging, `power` as the battery index)
//! and as its database optimizer leaves them: `cleanup_old_data` deletes `energy_samples` older
//! than 365 days and no other table, so inverter rows cover the last year while array, bank,
//! battery-unit, cell and meter rows cover every year.

use std::path::Path;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use chrono_tz::Tz;
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};

/// The zone the file is written in: five hours ahead of UTC all year, so its local hours are UTC
/// hours and a sample's hour is `ts / 1 h` in either.
pub const TIMEZONE: &str = "Asia/Karachi";
/// A sample of every device every half hour.
pub const CADENCE_MINUTES: i64 = 30;
/// How many days of `energy_samples` the old app's cleanup leaves.
pub const ENERGY_KEPT_DAYS: i64 = 365;
pub const BATTERIES: i32 = 2;
pub const CELLS_PER_BATTERY: i32 = 2;

/// What the file holds, per legacy table (the rows an upgrade must copy, one each).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub energy: i64,
    pub array: i64,
    pub bank: i64,
    pub unit: i64,
    pub cell: i64,
    pub meter: i64,
    /// The oldest and newest sample of the file (epoch ms).
    pub first: i64,
    pub last: i64,
}

/// The config that goes with the file: one inverter in one array, a grid meter, a pack of
/// [`BATTERIES`] batteries of [`CELLS_PER_BATTERY`] cells.
pub fn config_yaml() -> String {
    format!(
        "home:\n  id: home\n  name: Two Years\n  timezone: {TIMEZONE}\narrays:\n  - id: array1\n    name: Roof\n    inverter_ids: [powdrive1]\ninverters:\n  - id: powdrive1\n    array_id: array1\n    adapter:\n      type: powdrive\n      transport: tcp\n      host: 127.0.0.1\n      port: 1502\n      unit_id: 1\nmeters:\n  - id: grid_meter_1\n    array_id: home\n    adapter:\n      type: iammeter\n      transport: tcp\n      host: 127.0.0.1\n      port: 1502\n      unit_id: 4\nbattery_banks:\n  - id: battery1\n    batteries: {BATTERIES}\n    cells_per_battery: {CELLS_PER_BATTERY}\n    adapter:\n      type: pytes\n      serial_port: /dev/ttyUSB1\n"
    )
}

/// Writes `days` days of samples ending at `end` (exclusive) to a new file at `path`, then the
/// old app's cleanup as of `end`.
pub fn build(path: &Path, end: DateTime<Utc>, days: i64) -> Counts {
    let tz: Tz = TIMEZONE.parse().unwrap();
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute(
        "CREATE TABLE energy_samples (ts TEXT NOT NULL, inverter_id TEXT NOT NULL, pv_power_w INTEGER,
            load_power_w INTEGER, grid_power_w INTEGER, batt_voltage_v REAL, batt_current_a REAL, soc REAL,
            battery_soc REAL, battery_voltage_v REAL, battery_current_a REAL, inverter_mode INTEGER,
            inverter_temp_c REAL, grid_import_wh REAL, grid_export_wh REAL, array_id TEXT);
         CREATE TABLE array_samples (ts TEXT NOT NULL, array_id TEXT NOT NULL, pv_power_w INTEGER,
            load_power_w INTEGER, grid_power_w INTEGER, batt_power_w INTEGER, batt_soc_pct REAL,
            batt_voltage_v REAL, batt_current_a REAL, PRIMARY KEY (ts, array_id));
         CREATE TABLE battery_bank_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, voltage REAL,
            current REAL, temperature REAL, soc REAL, batteries_count INTEGER, cells_per_battery INTEGER,
            pack_id TEXT, array_id TEXT);
         CREATE TABLE battery_unit_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, power INTEGER NOT NULL,
            voltage REAL, current REAL, temperature REAL, soc REAL, basic_st TEXT, volt_st TEXT,
            current_st TEXT, temp_st TEXT, soh_st TEXT, coul_st TEXT, heater_st TEXT, bat_events INTEGER,
            power_events INTEGER, sys_events INTEGER);
         CREATE TABLE battery_cell_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, power INTEGER NOT NULL,
            cell INTEGER NOT NULL, voltage REAL, temperature REAL, soc REAL, volt_st TEXT, temp_st TEXT);
         CREATE TABLE meter_samples (ts TEXT NOT NULL, meter_id TEXT NOT NULL, array_id TEXT,
            grid_power_w INTEGER, grid_voltage_v REAL, grid_current_a REAL, grid_frequency_hz REAL,
            grid_import_wh INTEGER, grid_export_wh INTEGER, energy_kwh REAL, power_factor REAL,
            voltage_phase_a REAL, voltage_phase_b REAL, voltage_phase_c REAL, current_phase_a REAL,
            current_phase_b REAL, current_phase_c REAL, power_phase_a INTEGER, power_phase_b INTEGER,
            power_phase_c INTEGER);
         CREATE TABLE arrays (array_id TEXT PRIMARY KEY, name TEXT);
         INSERT INTO arrays VALUES ('array1', 'Roof');",
    )
    .unwrap();
    let first = end - Duration::days(days);
    let energy_from = end - Duration::days(ENERGY_KEPT_DAYS);
    let mut counts = Counts {
        first: first.timestamp_millis(),
        ..Counts::default()
    };
    let steps = days * 24 * 60 / CADENCE_MINUTES;
    let mut statements = String::from("BEGIN;");
    for step in 0..steps {
        let instant = first + Duration::minutes(CADENCE_MINUTES * step);
        counts.last = instant.timestamp_millis();
        let offset: FixedOffset = chrono::Offset::fix(instant.with_timezone(&tz).offset());
        let ts = offset
            .from_utc_datetime(&instant.naive_utc())
            .format("%Y-%m-%dT%H:%M:%S%.6f%:z")
            .to_string();
        let i = step as f64;
        let hour_of_day = (step * CADENCE_MINUTES / 60) % 24;
        let pv = if (6..18).contains(&hour_of_day) {
            2000.0 + (step % 13) as f64 * 10.0
        } else {
            0.0
        };
        if instant >= energy_from {
            statements.push_str(&format!(
                "INSERT INTO energy_samples (ts, inverter_id, pv_power_w, load_power_w, grid_power_w,
                    battery_soc, battery_voltage_v, battery_current_a, inverter_mode, grid_import_wh, array_id)
                 VALUES ('{ts}', 'powdrive1', {pv}, {}, {}, {}, {}, {}, 1, {}, 'array1');",
                600 + step % 11 * 5,
                if step % 3 == 0 { -150 } else { 90 },
                40 + step % 50,
                51.0 + (step % 10) as f64 / 10.0,
                if step % 2 == 0 { 8.5 } else { -6.0 },
                10_000.0 + i * 40.0,
            ));
            counts.energy += 1;
        }
        statements.push_str(&format!(
            "INSERT INTO array_samples VALUES ('{ts}', 'array1', {pv}, 600, 90, -300, {}, 52.1, -5.5);",
            40 + step % 50
        ));
        counts.array += 1;
        let bank_soc = 30.0 + (step % 60) as f64;
        statements.push_str(&format!(
            "INSERT INTO battery_bank_samples (ts, bank_id, voltage, current, temperature, soc,
                batteries_count, cells_per_battery, pack_id)
             VALUES ('{ts}', 'battery1', {}, {}, {}, {bank_soc}, {BATTERIES}, {CELLS_PER_BATTERY}, 'battery1');",
            52.0 + (step % 20) as f64 / 20.0,
            if step % 2 == 0 { 12.5 } else { -9.0 },
            20.0 + (step % 7) as f64,
        ));
        counts.bank += 1;
        for battery in 1..=BATTERIES {
            statements.push_str(&format!(
                "INSERT INTO battery_unit_samples (ts, bank_id, power, voltage, current, temperature, soc,
                    basic_st, volt_st, bat_events)
                 VALUES ('{ts}', 'battery1', {battery}, {}, {}, {}, {}, 'Charge', 'Normal', {});",
                26.0 + battery as f64 / 10.0 + (step % 5) as f64 / 100.0,
                if step % 2 == 0 { 6.25 } else { -4.5 },
                21.0 + (step % 4) as f64,
                bank_soc - battery as f64,
                step % 3
            ));
            counts.unit += 1;
            for cell in 1..=CELLS_PER_BATTERY {
                statements.push_str(&format!(
                    "INSERT INTO battery_cell_samples (ts, bank_id, power, cell, voltage, temperature, soc,
                        volt_st, temp_st)
                     VALUES ('{ts}', 'battery1', {battery}, {cell}, {}, {}, {}, 'Normal', 'Normal');",
                    3.30 + cell as f64 / 1000.0 + (step % 9) as f64 / 1000.0,
                    21.5 + (step % 6) as f64 / 2.0,
                    bank_soc - battery as f64
                ));
                counts.cell += 1;
            }
        }
        statements.push_str(&format!(
            "INSERT INTO meter_samples (ts, meter_id, array_id, grid_power_w, grid_voltage_v,
                grid_frequency_hz, grid_import_wh, grid_export_wh, power_factor)
             VALUES ('{ts}', 'grid_meter_1', 'home', {}, {}, 50.0, {}, 1200000, 0.97);",
            if step % 2 == 0 { 850 } else { -430 },
            228.0 + (step % 5) as f64,
            5_000_000 + step * 100,
        ));
        counts.meter += 1;
        if step % 2_000 == 1_999 {
            statements.push_str("COMMIT;");
            conn.batch_execute(&statements).unwrap();
            statements = String::from("BEGIN;");
        }
    }
    statements.push_str("COMMIT;");
    conn.batch_execute(&statements).unwrap();
    counts
}
