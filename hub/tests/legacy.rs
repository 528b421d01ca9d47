//! Taking over the existing app's database: in place (serve/migrate on the old file) and by
//! `import-legacy` into either backend. Every sample lands once, with its hierarchy ids and the
//! right UTC time; counts and sums match the source minus its duplicates; nothing is dropped.

mod common;
mod legacy_fixture;

use std::path::{Path, PathBuf};

use common::TestDb;
use diesel::prelude::*;
use legacy_fixture::{BERLIN, Expected, Flavour, KARACHI, Site};
use solarhub_hub::db::samples::{
    BatteryBankSample, BatteryCellSample, BatteryUnitSample, EnergySample, MeterSample,
};
use solarhub_hub::db::{DatabaseUrl, DbConnection, catalog, introspect, legacy_source, schema};
use solarhub_hub::legacy::{self, LegacyReport};

struct Stored {
    energy: Vec<EnergySample>,
    meters: Vec<MeterSample>,
    banks: Vec<BatteryBankSample>,
    units: Vec<BatteryUnitSample>,
    cells: Vec<BatteryCellSample>,
    array_samples: i64,
}

fn stored(conn: &mut DbConnection) -> Stored {
    use schema::*;
    Stored {
        energy: energy_samples::table
            .order((energy_samples::inverter_id, energy_samples::ts))
            .select(EnergySample::as_select())
            .load(conn)
            .unwrap(),
        meters: meter_samples::table
            .order((meter_samples::meter_id, meter_samples::ts))
            .select(MeterSample::as_select())
            .load(conn)
            .unwrap(),
        banks: battery_bank_samples::table
            .order((battery_bank_samples::pack_id, battery_bank_samples::ts))
            .select(BatteryBankSample::as_select())
            .load(conn)
            .unwrap(),
        units: battery_unit_samples::table
            .order((battery_unit_samples::battery_id, battery_unit_samples::ts))
            .select(BatteryUnitSample::as_select())
            .load(conn)
            .unwrap(),
        cells: battery_cell_samples::table
            .order((battery_cell_samples::cell_id, battery_cell_samples::ts))
            .select(BatteryCellSample::as_select())
            .load(conn)
            .unwrap(),
        array_samples: introspect::row_count(conn, "array_samples").unwrap(),
    }
}

fn sum(values: impl Iterator<Item = Option<f64>>) -> f64 {
    values.flatten().sum()
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-6 * want.abs().max(1.0),
        "{what}: stored sum {got}, source sum {want}"
    );
}

/// Checks every stored sample against what the fixture wrote.
fn assert_matches_source(stored: &Stored, expected: &Expected) {
    // Counts: the source minus its duplicated rows.
    assert_eq!(stored.energy.len(), expected.energy.len());
    assert_eq!(
        expected.energy_rows_in_source - expected.energy.len(),
        7,
        "the fixture wrote seven duplicates"
    );
    assert_eq!(stored.banks.len(), expected.banks.len());
    assert_eq!(stored.units.len(), expected.units.len());
    assert_eq!(stored.cells.len(), expected.cells.len());
    assert_eq!(stored.meters.len(), expected.meters.len());
    assert_eq!(stored.array_samples as usize, expected.array_samples);

    // Per-column sums.
    assert_close(
        "pv_power_w",
        sum(stored.energy.iter().map(|s| s.pv_power_w)),
        expected.energy.iter().map(|e| e.pv_power_w).sum(),
    );
    assert_close(
        "load_power_w",
        sum(stored.energy.iter().map(|s| s.load_power_w)),
        expected.energy.iter().map(|e| e.load_power_w).sum(),
    );
    assert_close(
        "grid_power_w",
        sum(stored.energy.iter().map(|s| s.grid_power_w)),
        expected.energy.iter().map(|e| e.grid_power_w).sum(),
    );
    assert_close(
        "battery_soc_pct",
        sum(stored.energy.iter().map(|s| s.battery_soc_pct)),
        sum(expected.energy.iter().map(|e| e.battery_soc_pct)),
    );
    assert_close(
        "battery_voltage_v",
        sum(stored.energy.iter().map(|s| s.battery_voltage_v)),
        sum(expected.energy.iter().map(|e| e.battery_voltage_v)),
    );
    assert_close(
        "grid_import_total_wh",
        sum(stored.energy.iter().map(|s| s.grid_import_total_wh)),
        sum(expected.energy.iter().map(|e| e.grid_import_total_wh)),
    );
    assert_close(
        "bank voltage_v",
        sum(stored.banks.iter().map(|s| s.voltage_v)),
        expected.banks.iter().map(|e| e.voltage_v).sum(),
    );
    assert_close(
        "bank soc_pct",
        sum(stored.banks.iter().map(|s| s.soc_pct)),
        expected.banks.iter().map(|e| e.soc_pct).sum(),
    );
    assert_close(
        "unit voltage_v",
        sum(stored.units.iter().map(|s| s.voltage_v)),
        expected.units.iter().map(|e| e.voltage_v).sum(),
    );
    assert_close(
        "cell voltage_v",
        sum(stored.cells.iter().map(|s| s.voltage_v)),
        expected.cells.iter().map(|e| e.voltage_v).sum(),
    );
    assert_close(
        "meter power_w",
        sum(stored.meters.iter().map(|s| s.power_w)),
        expected.meters.iter().map(|e| e.power_w).sum(),
    );
    assert_close(
        "meter import_total_wh",
        sum(stored.meters.iter().map(|s| s.import_total_wh)),
        expected.meters.iter().map(|e| e.import_total_wh).sum(),
    );
    assert_close(
        "meter l2_voltage_v",
        sum(stored.meters.iter().map(|s| s.l2_voltage_v)),
        expected.meters.iter().map(|e| e.l2_voltage_v).sum(),
    );

    // Row by row: the right device, the right UTC time, the right values, the hierarchy ids.
    let mut want: Vec<&legacy_fixture::ExpectedEnergy> = expected.energy.iter().collect();
    want.sort_by(|a, b| (&a.inverter_id, a.ts).cmp(&(&b.inverter_id, b.ts)));
    for (got, want) in stored.energy.iter().zip(want) {
        assert_eq!(
            (got.inverter_id.as_str(), got.ts),
            (want.inverter_id.as_str(), want.ts)
        );
        assert_eq!(got.pv_power_w, Some(want.pv_power_w));
        assert_eq!(got.grid_power_w, Some(want.grid_power_w));
        assert_eq!(got.battery_soc_pct, want.battery_soc_pct);
        assert_eq!(got.inverter_mode, want.inverter_mode);
        assert_eq!(got.system_id, "home");
        let array = got.array_id.as_deref();
        match got.inverter_id.as_str() {
            "powdrive1" => assert_eq!(array, Some("array1")),
            "ghost_inverter" => assert_eq!(array, Some(legacy::UNASSIGNED_ARRAY_ID)),
            other => panic!("unexpected inverter {other}"),
        }
    }
    for (got, want) in stored.cells.iter().zip({
        let mut cells: Vec<_> = expected.cells.iter().collect();
        cells.sort_by(|a, b| {
            (
                format!("battery1.b{}.c{}", a.battery_index, a.cell_index),
                a.ts,
            )
                .cmp(&(
                    format!("battery1.b{}.c{}", b.battery_index, b.cell_index),
                    b.ts,
                ))
        });
        cells
    }) {
        assert_eq!(
            got.cell_id,
            format!("battery1.b{}.c{}", want.battery_index, want.cell_index)
        );
        assert_eq!(got.battery_id, format!("battery1.b{}", want.battery_index));
        assert_eq!(
            (got.pack_id.as_str(), got.ts, got.voltage_v),
            ("battery1", want.ts, Some(want.voltage_v))
        );
    }
    assert!(
        stored
            .units
            .iter()
            .all(|u| u.pack_id == "battery1" && u.system_id == "home")
    );
    assert!(
        stored
            .meters
            .iter()
            .all(|m| m.system_id == "home" && m.array_id.is_none())
    );
}

/// After a legacy copy, each device's latest reading is its newest legacy sample.
fn assert_latest_is_newest_sample(conn: &mut DbConnection) {
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        device_id: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        ts: i64,
    }
    let load = |conn: &mut DbConnection, sql: &str| -> Vec<Row> {
        diesel::RunQueryDsl::load(diesel::sql_query(sql), conn).unwrap()
    };
    let latest = load(
        conn,
        "SELECT device_id, MAX(ts) AS ts FROM latest_readings GROUP BY device_id ORDER BY device_id",
    );
    let newest = load(
        conn,
        "SELECT device_id, MAX(ts) AS ts FROM (\
           SELECT inverter_id AS device_id, ts FROM energy_samples \
           UNION ALL SELECT meter_id, ts FROM meter_samples \
           UNION ALL SELECT pack_id, ts FROM battery_bank_samples) AS s \
         GROUP BY device_id ORDER BY device_id",
    );
    assert!(!newest.is_empty());
    assert_eq!(latest, newest, "latest_readings after the copy");
}

fn write_config(dir: &Path, site: &Site) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, legacy_fixture::config_yaml(site)).unwrap();
    path
}

fn assert_report(report: &LegacyReport, expected: &Expected) {
    let energy = &report.tables["energy_samples"];
    assert_eq!(energy.read as usize, expected.energy_rows_in_source);
    assert_eq!(energy.inserted as usize, expected.energy.len());
    assert_eq!(
        energy.already_present, 7,
        "the seven duplicates are reported"
    );
    assert_eq!(energy.unplaceable, 0);
    // Each naive instant was written once per table row: 2 inverters, 1 bank, 3 batteries, 6 cells,
    // plus one meter row and one array row where the file has those tables.
    let rows_per_instant = 2
        + 1
        + 3
        + 6
        + if report.tables.contains_key("meter_samples") {
            2
        } else {
            0
        };
    assert_eq!(
        report.naive_timestamps,
        expected.naive_timestamps * rows_per_instant
    );
    let placeholders = report.placeholders.join("\n");
    assert!(
        placeholders.contains("inverter ghost_inverter"),
        "{placeholders}"
    );
    assert!(
        placeholders.contains("battery battery1.b3"),
        "{placeholders}"
    );
}

/// `serve` (and `migrate`) pointed at the old file: backup, upgrade in place, nothing lost, and a
/// second start changes nothing.
fn in_place_upgrade(site: &Site, flavour: Flavour) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    let expected = legacy_fixture::build(&file, site, flavour);
    let config = write_config(dir.path(), site);
    let url = DatabaseUrl::Sqlite(file.clone());

    let report = legacy::upgrade_in_place_if_legacy(&url, Some(&config), None)
        .unwrap()
        .expect("a legacy file is upgraded");
    assert_report(&report, &expected);

    // The backup exists, opens, and still is the old database.
    let backup = report.backup.clone().expect("backup path");
    assert!(backup.exists(), "{}", backup.display());
    let mut backup_conn = legacy_source::open_read_only(&backup).unwrap();
    assert_eq!(
        introspect::row_count(&mut backup_conn, "energy_samples").unwrap() as usize,
        expected.energy_rows_in_source
    );
    assert!(!introspect::has_table(&mut backup_conn, "systems").unwrap());

    let mut conn = url.connect().unwrap();
    let stored_rows = stored(&mut conn);
    assert_matches_source(&stored_rows, &expected);
    assert_latest_is_newest_sample(&mut conn);
    // The old tables are kept, renamed, and the ones solarhub does not use are untouched.
    assert_eq!(
        introspect::row_count(&mut conn, "legacy_energy_samples").unwrap() as usize,
        expected.energy_rows_in_source
    );
    assert_eq!(
        introspect::row_count(&mut conn, "legacy_hourly_energy").unwrap(),
        1
    );
    assert_eq!(introspect::row_count(&mut conn, "pv_daily").unwrap(), 1);
    // Placeholders are clearly named.
    let (_, installation, _) = catalog::load_catalog(&mut conn).unwrap();
    let ghost = installation
        .inverters
        .iter()
        .find(|i| i.inverter_id == "ghost_inverter")
        .unwrap();
    assert!(ghost.name.contains("not in config"), "{}", ghost.name);

    // A second start finds nothing to do and changes nothing.
    let before: Vec<Vec<String>> = [
        "energy_samples",
        "battery_cell_samples",
        "inverters",
        "legacy_imports",
    ]
    .iter()
    .map(|t| introspect::table_fingerprint(&mut conn, t).unwrap())
    .collect();
    drop(conn);
    assert!(
        legacy::upgrade_in_place_if_legacy(&url, Some(&config), None)
            .unwrap()
            .is_none()
    );
    let output = common::hub_binary()
        .env("RUST_LOG", "off")
        .args(["--database-url", file.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut conn = url.connect().unwrap();
    let after: Vec<Vec<String>> = [
        "energy_samples",
        "battery_cell_samples",
        "inverters",
        "legacy_imports",
    ]
    .iter()
    .map(|t| introspect::table_fingerprint(&mut conn, t).unwrap())
    .collect();
    assert_eq!(before, after);
}

#[test]
fn in_place_upgrade_of_a_karachi_database() {
    in_place_upgrade(&KARACHI, Flavour::Current);
}

#[test]
fn in_place_upgrade_of_an_old_berlin_database_across_dst() {
    in_place_upgrade(&BERLIN, Flavour::Old);
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn import_legacy_into(db: TestDb) {
    let database = db.migrated();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    let expected = legacy_fixture::build(&file, &KARACHI, Flavour::Current);
    let config = write_config(dir.path(), &KARACHI);
    let source_before = file_bytes(&file);

    let report = legacy::import_legacy(&database, &file, Some(&config)).unwrap();
    assert_report(&report, &expected);
    assert_eq!(
        file_bytes(&file),
        source_before,
        "import-legacy must not modify its source"
    );

    let mut conn = database.get().unwrap();
    let first = stored(&mut conn);
    assert_matches_source(&first, &expected);
    assert_latest_is_newest_sample(&mut conn);

    let again = legacy::import_legacy(&database, &file, Some(&config)).unwrap();
    assert_eq!(again.inserted_total(), 0, "{again}");
    assert!(again.placeholders.is_empty(), "{again}");
    let second = stored(&mut conn);
    assert_eq!(first.energy, second.energy);
    assert_eq!(first.cells, second.cells);
}

on_both_backends!(import_legacy_into);

#[test]
fn in_place_upgrade_and_import_into_postgres_store_the_same_rows() {
    let Some(postgres) = TestDb::postgres() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &KARACHI);
    let in_place_file = dir.path().join("in_place.db");
    let import_file = dir.path().join("import.db");
    legacy_fixture::build(&in_place_file, &KARACHI, Flavour::Current);
    legacy_fixture::build(&import_file, &KARACHI, Flavour::Current);

    let sqlite_url = DatabaseUrl::Sqlite(in_place_file);
    legacy::upgrade_in_place_if_legacy(&sqlite_url, Some(&config), None)
        .unwrap()
        .unwrap();
    let database = postgres.migrated();
    legacy::import_legacy(&database, &import_file, Some(&config)).unwrap();

    let sqlite_rows = stored(&mut sqlite_url.connect().unwrap());
    let postgres_rows = stored(&mut database.get().unwrap());
    assert_eq!(sqlite_rows.energy, postgres_rows.energy);
    assert_eq!(sqlite_rows.meters, postgres_rows.meters);
    assert_eq!(sqlite_rows.banks, postgres_rows.banks);
    assert_eq!(sqlite_rows.units, postgres_rows.units);
    assert_eq!(sqlite_rows.cells, postgres_rows.cells);
    assert_eq!(sqlite_rows.array_samples, postgres_rows.array_samples);
}

/// Runs the hub binary with logging off; returns (success, stderr lines).
fn run_hub(args: &[&str]) -> (bool, Vec<String>) {
    let output = common::hub_binary()
        .env("RUST_LOG", "off")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    (output.status.success(), stderr)
}

#[test]
fn a_corrupt_legacy_file_is_refused_with_one_line_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend((0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&file, &bytes).unwrap();
    for args in [
        vec!["--database-url", file.to_str().unwrap(), "migrate"],
        vec![
            "--database-url",
            dir.path().join("target.db").to_str().unwrap(),
            "import-legacy",
            file.to_str().unwrap(),
        ],
    ] {
        let (ok, stderr) = run_hub(&args);
        assert!(!ok, "{args:?} succeeded");
        assert_eq!(stderr.len(), 1, "{stderr:?}");
        assert!(
            stderr[0].starts_with("error: legacy database") && stderr[0].contains("left untouched"),
            "{stderr:?}"
        );
        assert_eq!(file_bytes(&file), bytes, "the corrupt file was modified");
    }
    let (ok, stderr) = run_hub(&[
        "--database-url",
        dir.path().join("t.db").to_str().unwrap(),
        "import-legacy",
        dir.path().join("missing.db").to_str().unwrap(),
    ]);
    assert!(
        !ok && stderr.len() == 1 && stderr[0].contains("missing.db"),
        "{stderr:?}"
    );
}

#[test]
fn a_failed_backup_stops_the_upgrade_and_leaves_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    legacy_fixture::build(&file, &KARACHI, Flavour::Current);
    let before = file_bytes(&file);
    let nowhere = dir.path().join("no").join("such").join("dir");
    let (ok, stderr) = run_hub(&[
        "--database-url",
        file.to_str().unwrap(),
        "--backup-dir",
        nowhere.to_str().unwrap(),
        "migrate",
    ]);
    assert!(!ok);
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].contains("cannot back up") && stderr[0].contains("untouched"),
        "{stderr:?}"
    );
    assert_eq!(file_bytes(&file), before);
}

#[test]
fn an_unreachable_database_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    legacy_fixture::build(&file, &KARACHI, Flavour::Current);
    let before = file_bytes(&file);
    let (ok, stderr) = run_hub(&[
        "--database-url",
        "postgres://postgres@127.0.0.1:1/solarhub",
        "import-legacy",
        file.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].contains("cannot connect to postgres://postgres@127.0.0.1:1/solarhub"),
        "{stderr:?}"
    );
    assert_eq!(file_bytes(&file), before);
}
