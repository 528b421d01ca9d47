//! Upgrading the existing app's database (DESIGN §8: a year of a real installation in minutes,
//! with memory that does not grow with the file). Builds the old app's SQLite file for a
//! real-sized installation — 3 inverters and a grid meter every 5 s, 2 battery banks every 60 s
//! with 4 batteries each, 16 cells per battery every 5 minutes, timestamps written as the old app
//! writes them (local time with its offset) — then times `solarhub-hub import-legacy` with the
//! installation's config, as a user runs it, reading its peak memory from `/proc`.
//!
//! Two files are upgraded, a short one (the baseline) and one four times longer: the figure is
//! the long file's peak memory against the short one's (target: no growth, at most 1.2x), and the
//! rows per second say how long a year takes.
//!
//! `cargo bench -p solarhub-hub --bench legacy`. `SOLARHUB_BENCH_LEGACY_DAYS` sets the short
//! file's days (default 2; the long one has four times as many; 92 makes the long one a year).

#[path = "support/proc.rs"]
mod proc;
#[path = "support/report.rs"]
mod report;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use report::{Figure, Target};

const INVERTERS: usize = 3;
const PACKS: usize = 2;
const BATTERIES: usize = 4;
const CELLS: usize = 16;

const CONFIG: &str = "home:\n  id: home\n  name: Legacy Home\n  timezone: Asia/Karachi\narrays:\n  - id: array1\n    name: Roof\n    inverter_ids: [inv1, inv2, inv3]\ninverters:\n  - {id: inv1, array_id: array1, adapter: {type: powdrive, transport: rtu, serial_port: /dev/ttyUSB0, unit_id: 1}}\n  - {id: inv2, array_id: array1, adapter: {type: powdrive, transport: rtu, serial_port: /dev/ttyUSB0, unit_id: 2}}\n  - {id: inv3, array_id: array1, adapter: {type: powdrive, transport: rtu, serial_port: /dev/ttyUSB0, unit_id: 3}}\nmeters:\n  - {id: grid_meter_1, array_id: home, adapter: {type: iammeter, transport: tcp, host: 192.168.1.20}}\nbattery_banks:\n  - {id: pack1, batteries: 4, cells_per_battery: 16, adapter: {type: pytes, serial_port: /dev/ttyUSB1}}\n  - {id: pack2, batteries: 4, cells_per_battery: 16, adapter: {type: pytes, serial_port: /dev/ttyUSB2}}\n";

fn main() -> anyhow::Result<()> {
    let days: i64 = std::env::var("SOLARHUB_BENCH_LEGACY_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("config.yaml"), CONFIG)?;
    let short = upgrade(dir.path(), "short", days)?;
    let long = upgrade(dir.path(), "long", days * 4)?;
    Figure {
        name: "legacy.peak_rss_growth",
        figure: long.peak_kb as f64 / 1024.0,
        baseline: short.peak_kb as f64 / 1024.0,
        unit: "MB",
        baseline_is: "the same upgrade of a file a quarter as long",
        target: Target::AtMost(1.2),
    }
    .print();
    let year_rows = long.rows as f64 / (days * 4) as f64 * 365.0;
    println!(
        "legacy: a year of this installation is {year_rows:.0} rows; at the long file's rate of {:.0} rows/s",
        long.rate()
    );
    Figure {
        name: "legacy.year_minutes",
        figure: year_rows / long.rate() / 60.0,
        baseline: 60.0,
        unit: "minutes",
        baseline_is: "the target: within the hour",
        target: Target::FigureAtMost(60.0),
    }
    .print();
    Ok(())
}

struct Upgrade {
    rows: u64,
    took: Duration,
    peak_kb: u64,
}

impl Upgrade {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.took.as_secs_f64()
    }
}

fn upgrade(dir: &Path, name: &str, days: i64) -> anyhow::Result<Upgrade> {
    let old = dir.join(format!("{name}-solar.db"));
    let rows = build(&old, days)?;
    let size = std::fs::metadata(&old)?.len();
    let new = dir.join(format!("{name}-hub.db"));
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_solarhub-hub"))
        .arg("--database-url")
        .arg(&new)
        .arg("import-legacy")
        .arg(&old)
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut peak_kb = 0;
    let status = loop {
        if let Ok((_, peak)) = proc::memory_kb(child.id()) {
            peak_kb = peak_kb.max(peak);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    anyhow::ensure!(status.success(), "import-legacy failed: {status}");
    let upgrade = Upgrade {
        rows,
        took,
        peak_kb,
    };
    println!(
        "legacy {name}: {days} days, {rows} rows, {:.0} MB file: upgraded in {took:.1?} ({:.0} rows/s), peak RSS {:.1} MB",
        size as f64 / 1e6,
        upgrade.rate(),
        peak_kb as f64 / 1024.0
    );
    Ok(upgrade)
}

/// Writes the old app's database for `days` of the installation; returns its sample rows.
fn build(path: &Path, days: i64) -> anyhow::Result<u64> {
    let mut conn = SqliteConnection::establish(&path.display().to_string())?;
    conn.batch_execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
         CREATE TABLE energy_samples (ts TEXT NOT NULL, inverter_id TEXT NOT NULL, pv_power_w INTEGER, load_power_w INTEGER,
            grid_power_w INTEGER, batt_voltage_v REAL, batt_current_a REAL, soc REAL);
         CREATE TABLE meter_samples (ts TEXT NOT NULL, meter_id TEXT NOT NULL, array_id TEXT, grid_power_w INTEGER,
            grid_voltage_v REAL, grid_frequency_hz REAL, grid_import_wh INTEGER, grid_export_wh INTEGER, power_factor REAL);
         CREATE TABLE battery_bank_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, voltage REAL, current REAL, temperature REAL,
            soc REAL, batteries_count INTEGER, cells_per_battery INTEGER);
         CREATE TABLE battery_unit_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, power INTEGER NOT NULL, voltage REAL, current REAL,
            temperature REAL, soc REAL, basic_st TEXT, volt_st TEXT, current_st TEXT, temp_st TEXT, soh_st TEXT, coul_st TEXT,
            heater_st TEXT, bat_events INTEGER, power_events INTEGER, sys_events INTEGER);
         CREATE TABLE battery_cell_samples (ts TEXT NOT NULL, bank_id TEXT NOT NULL, power INTEGER NOT NULL, cell INTEGER NOT NULL,
            voltage REAL, temperature REAL, soc REAL, volt_st TEXT, temp_st TEXT);",
    )?;
    let offset =
        chrono::FixedOffset::east_opt(5 * 3600).ok_or_else(|| anyhow::anyhow!("offset"))?;
    let start = chrono::DateTime::from_timestamp(1_717_200_000, 0).unwrap_or_default(); // 2024-06-01
    let mut rows = 0u64;
    for day in 0..days {
        let mut sql = String::from("BEGIN;");
        for step in 0..17_280i64 {
            let second = day * 86_400 + step * 5;
            let ts = (start + chrono::Duration::seconds(second))
                .with_timezone(&offset)
                .format("%Y-%m-%dT%H:%M:%S%:z");
            let pv = ((step as f64 / 17_280.0) * std::f64::consts::TAU)
                .sin()
                .max(0.0)
                * 5000.0;
            sql.push_str("INSERT INTO energy_samples VALUES ");
            for inverter in 1..=INVERTERS {
                let sep = if inverter == 1 { "" } else { "," };
                let _ = write!(
                    sql,
                    "{sep}('{ts}','inv{inverter}',{},900,{},52.1,-3.2,{})",
                    pv as i64,
                    900 - pv as i64,
                    50 + step % 40
                );
            }
            let _ = write!(
                sql,
                ";INSERT INTO meter_samples VALUES ('{ts}','grid_meter_1','home',{},230.5,50.0,{},1200000,0.97);",
                300 - pv as i64,
                1_000_000 + second / 12
            );
            rows += INVERTERS as u64 + 1;
            if step % 12 == 0 {
                for pack in 1..=PACKS {
                    let _ = write!(
                        sql,
                        "INSERT INTO battery_bank_samples VALUES ('{ts}','pack{pack}',53.1,-12.5,24.0,{},{BATTERIES},{CELLS});",
                        50 + step % 40
                    );
                    rows += 1;
                    for battery in 1..=BATTERIES {
                        let _ = write!(
                            sql,
                            "INSERT INTO battery_unit_samples VALUES ('{ts}','pack{pack}',{battery},53.1,-3.1,23.5,{},'Charge',NULL,NULL,NULL,NULL,NULL,NULL,0,0,0);",
                            50 + step % 40
                        );
                        rows += 1;
                        if step % 60 == 0 {
                            sql.push_str("INSERT INTO battery_cell_samples VALUES ");
                            for cell in 1..=CELLS {
                                let sep = if cell == 1 { "" } else { "," };
                                let _ = write!(
                                    sql,
                                    "{sep}('{ts}','pack{pack}',{battery},{cell},{:.3},22.0,{},'Normal',NULL)",
                                    3.3 + cell as f64 / 1000.0,
                                    50 + step % 40
                                );
                            }
                            sql.push(';');
                            rows += CELLS as u64;
                        }
                    }
                }
            }
        }
        sql.push_str("COMMIT;");
        conn.batch_execute(&sql)?;
    }
    Ok(rows)
}
