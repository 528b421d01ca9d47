//! Taking over the existing app's database: in place (serve/migrate on the old file) and by
//! `import-legacy` into either backend. Every sample lands once, with its hierarchy ids and the
//! right UTC time; counts and sums match the source minus its duplicates; nothing is dropped.

use crate::common;
use crate::legacy_fixture;

use std::path::{Path, PathBuf};

use common::TestDb;
use legacy_fixture::{BERLIN, Expected, Flavour, KARACHI, Site};
use solarhub_hub::db::samples::{
    BatteryBankSample, BatteryCellSample, BatteryUnitSample, EnergySample, MeterSample, SampleRow,
};
use solarhub_hub::db::{DatabaseUrl, DbConnection, catalog, introspect, legacy_source};
use solarhub_hub::legacy::{self, LegacyOptions, LegacyReport};

struct Stored {
    energy: Vec<EnergySample>,
    meters: Vec<MeterSample>,
    banks: Vec<BatteryBankSample>,
    units: Vec<BatteryUnitSample>,
    cells: Vec<BatteryCellSample>,
    array_samples: i64,
}

fn stored(conn: &mut DbConnection) -> Stored {
    Stored {
        energy: EnergySample::all(conn).unwrap(),
        meters: MeterSample::all(conn).unwrap(),
        banks: BatteryBankSample::all(conn).unwrap(),
        units: BatteryUnitSample::all(conn).unwrap(),
        cells: BatteryCellSample::all(conn).unwrap(),
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
    assert_eq!(energy.duplicates, 7, "the seven duplicates are reported");
    assert_eq!(energy.conflicts, 0);
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

    let report = legacy::upgrade_in_place_if_legacy(&url, &LegacyOptions::with_config(&config))
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
        legacy::upgrade_in_place_if_legacy(&url, &LegacyOptions::with_config(&config))
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

    let report =
        legacy::import_legacy(&database, &file, &LegacyOptions::with_config(&config)).unwrap();
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

    let again =
        legacy::import_legacy(&database, &file, &LegacyOptions::with_config(&config)).unwrap();
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
    legacy::upgrade_in_place_if_legacy(&sqlite_url, &LegacyOptions::with_config(&config))
        .unwrap()
        .unwrap();
    let database = postgres.migrated();
    legacy::import_legacy(
        &database,
        &import_file,
        &LegacyOptions::with_config(&config),
    )
    .unwrap();

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

// ---------------------------------------------------------------------------------------------
// Whatever shape the file is in: naive timestamps and no zone, DST, the old app's own hierarchy,
// battery signs, its rollups, conflicts, and a zone that changes afterwards.

use chrono::{Offset, TimeZone};
use legacy_fixture::takeover::{self, Row};

#[derive(diesel::QueryableByName)]
struct ValueRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    device: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    ts: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    v0: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    v1: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    v2: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    v3: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    v4: Option<f64>,
}

/// `columns` is `device, ts, v0[, v1 …]` of `table`, in (device, ts) order.
fn value_rows(conn: &mut DbConnection, table: &str, device: &str, values: &[&str]) -> Vec<Row> {
    let mut select: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{v} AS v{i}"))
        .collect();
    for i in values.len()..5 {
        select.push(format!("CAST(NULL AS DOUBLE PRECISION) AS v{i}"));
    }
    let sql = format!(
        "SELECT {device} AS device, ts, {} FROM {table} ORDER BY {device}, ts",
        select.join(", ")
    );
    let sql = match conn {
        DbConnection::Sqlite(_) => sql.replace("DOUBLE PRECISION", "REAL"),
        DbConnection::Postgres(_) => sql,
    };
    let rows: Vec<ValueRow> = diesel::RunQueryDsl::load(diesel::sql_query(sql), conn).unwrap();
    rows.into_iter()
        .map(|r| Row {
            device: r.device,
            ts: r.ts,
            values: [r.v0, r.v1, r.v2, r.v3, r.v4]
                .into_iter()
                .take(values.len())
                .map(|v| v.expect("no value is missing in the fixture"))
                .collect(),
        })
        .collect()
}

/// Every stored row is the one the fixture wrote: device, UTC time and values.
fn assert_rows(table: &str, got: Vec<Row>, mut want: Vec<Row>) {
    want.sort_by(|a, b| (&a.device, a.ts).cmp(&(&b.device, b.ts)));
    assert_eq!(got.len(), want.len(), "{table}: stored rows");
    for (got, want) in got.iter().zip(&want) {
        let same_values = got
            .values
            .iter()
            .zip(&want.values)
            .all(|(g, w)| (g - w).abs() <= 1e-9 * w.abs().max(1.0));
        assert!(
            got.device == want.device && got.ts == want.ts && same_values,
            "{table}: stored {got:?}, the file says {want:?}"
        );
    }
}

fn conflicts(conn: &mut DbConnection) -> Vec<(String, String, String)> {
    #[derive(diesel::QueryableByName)]
    struct C {
        #[diesel(sql_type = diesel::sql_types::Text)]
        source_table: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        device_id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        raw_ts: String,
    }
    let rows: Vec<C> = diesel::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT source_table, device_id, raw_ts FROM legacy_conflicts ORDER BY source_table, device_id, raw_ts",
        ),
        conn,
    )
    .unwrap();
    rows.into_iter()
        .map(|c| (c.source_table, c.device_id, c.raw_ts))
        .collect()
}

/// Runs the hub binary; returns (success, stdout, stderr lines).
fn hub(args: &[&str]) -> (bool, String, Vec<String>) {
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
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
    )
}

/// The UTC offset (seconds) of the only system's zone at `ms`.
fn system_offset_at(conn: &mut DbConnection, ms: i64) -> (String, i32) {
    let systems = catalog::load_systems(conn).unwrap();
    assert_eq!(systems.len(), 1, "{systems:?}");
    let tz: chrono_tz::Tz = systems[0].timezone.parse().unwrap();
    let offset = tz
        .timestamp_millis_opt(ms)
        .unwrap()
        .offset()
        .fix()
        .local_minus_utc();
    (systems[0].system_id.clone(), offset)
}

/// Everything the early installation must have become, whichever way it was copied.
fn assert_early_installation(
    conn: &mut DbConnection,
    expected: &takeover::EarlyExpected,
    output: &str,
) {
    assert_rows(
        "energy_samples",
        value_rows(
            conn,
            "energy_samples",
            "inverter_id",
            &[
                "pv_power_w",
                "grid_power_w",
                "battery_voltage_v",
                "battery_current_a",
                "battery_power_w",
            ],
        ),
        expected.energy.clone(),
    );
    assert_rows(
        "meter_samples",
        value_rows(
            conn,
            "meter_samples",
            "meter_id",
            &["power_w", "import_total_wh"],
        ),
        expected.meters.clone(),
    );
    assert_rows(
        "battery_bank_samples",
        value_rows(
            conn,
            "battery_bank_samples",
            "pack_id",
            &["voltage_v", "current_a", "soc_pct"],
        ),
        expected.banks.clone(),
    );
    assert_rows(
        "battery_unit_samples",
        value_rows(
            conn,
            "battery_unit_samples",
            "battery_id",
            &["voltage_v", "current_a"],
        ),
        expected.units.clone(),
    );
    assert_rows(
        "battery_cell_samples",
        value_rows(conn, "battery_cell_samples", "cell_id", &["voltage_v"]),
        expected.cells.clone(),
    );
    // The naive rows are at their true instants: the first is 2025-06-15 00:00:00.156 in Karachi.
    let first = value_rows(conn, "energy_samples", "inverter_id", &["pv_power_w"])[0].ts;
    assert_eq!(first, takeover::early_start().timestamp_millis() + 156);
    // Conflicts are kept, with the timestamp as the old app wrote it.
    let kept = conflicts(conn);
    assert_eq!(kept.len(), 7, "{kept:?}");
    assert_eq!(
        kept.iter()
            .filter(|c| c.0 == "battery_bank_samples")
            .count(),
        3
    );
    assert!(
        kept.iter()
            .any(|c| c.0 == "energy_samples" && c.1 == "inv2" && c.2.ends_with("+05:00"))
    );
    // The site is in a zone of +05:00.
    let (system_id, offset) = system_offset_at(conn, first);
    assert_eq!((system_id.as_str(), offset), ("home", 5 * 3600));
    // The report adds up, table by table, and says where the zone came from.
    for (table, read) in &expected.read {
        let duplicates = expected.duplicates.get(table).copied().unwrap_or(0);
        let conflicts = expected.conflicts.get(table).copied().unwrap_or(0);
        let line = format!(
            "  {table}: {read} read = {} inserted + {duplicates} exact duplicates + {conflicts} conflicts + 0 unplaceable",
            read - duplicates - conflicts
        );
        assert!(output.contains(&line), "missing {line:?} in\n{output}");
    }
    assert!(
        output.contains("from the UTC offsets the file's timestamps were written with (+05:00)"),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "timestamps: {} naive",
            expected.naive_timestamps + 10 + 3
        )),
        "{output}"
    );
}

/// `migrate` on an early installation's file, with no config: nothing lost, naive rows placed.
#[test]
fn an_early_installation_upgraded_in_place_without_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    let expected = takeover::early_installation(&file);
    let (ok, output, stderr) = hub(&["--database-url", file.to_str().unwrap(), "migrate"]);
    assert!(ok, "{stderr:?}");
    let mut conn = DatabaseUrl::Sqlite(file.clone()).connect().unwrap();
    assert_early_installation(&mut conn, &expected, &output);
    // The old app's tables are listed as kept; solarhub's own are not.
    let kept = output
        .lines()
        .find(|l| l.contains("tables kept but not copied"))
        .unwrap_or_default();
    assert!(
        kept.contains("configuration") && kept.contains("pv_daily"),
        "{kept}"
    );
    for ours in [
        "latest_readings",
        "rollup_pending",
        "legacy_conflicts",
        "hourly_energy",
    ] {
        assert!(!kept.contains(ours), "{ours} listed in {kept}");
    }
}

/// `import-legacy` of the same file into Postgres, twice: the second run changes nothing.
#[test]
fn an_early_installation_imported_into_postgres_without_config() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    let expected = takeover::early_installation(&file);
    let before = file_bytes(&file);
    let url = db.url_arg();
    let args = [
        "--database-url",
        url.as_str(),
        "import-legacy",
        file.to_str().unwrap(),
    ];
    let (ok, output, stderr) = hub(&args);
    assert!(ok, "{stderr:?}");
    assert_eq!(
        file_bytes(&file),
        before,
        "import-legacy must not modify its source"
    );
    let mut conn = db.connect();
    assert_early_installation(&mut conn, &expected, &output);
    let tables = [
        "energy_samples",
        "battery_bank_samples",
        "legacy_conflicts",
        "systems",
    ];
    let fingerprint = |conn: &mut DbConnection| -> (Vec<Vec<String>>, Vec<Row>) {
        let tables = tables
            .iter()
            .map(|t| introspect::table_fingerprint(conn, t).unwrap())
            .collect();
        // The rollups are recomputed after every import: the same values (at a later updated_at).
        let hours = value_rows(
            conn,
            "(SELECT inverter_id, bucket_start AS ts, solar_kwh, battery_charge_kwh, battery_discharge_kwh FROM hourly_energy) AS h",
            "inverter_id",
            &["solar_kwh", "battery_charge_kwh", "battery_discharge_kwh"],
        );
        (tables, hours)
    };
    let first = fingerprint(&mut conn);
    let (ok, again, stderr) = hub(&args);
    assert!(ok, "{stderr:?}");
    assert!(again.contains("0 rows inserted in all"), "{again}");
    assert_eq!(fingerprint(&mut conn), first);
}

/// Naive rows before and after Berlin's spring-forward take the offset of their side.
#[test]
fn naive_rows_on_both_sides_of_a_dst_change_land_at_their_instants() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    let times = takeover::berlin_dst(&file, false);
    let (ok, output, stderr) = hub(&["--database-url", file.to_str().unwrap(), "migrate"]);
    assert!(ok, "{stderr:?}");
    let mut conn = DatabaseUrl::Sqlite(file).connect().unwrap();
    let stored: Vec<i64> = value_rows(&mut conn, "energy_samples", "inverter_id", &["pv_power_w"])
        .into_iter()
        .map(|r| r.ts)
        .collect();
    assert_eq!(stored, times, "{output}");
    // The zone chosen has both offsets at their times.
    assert_eq!(system_offset_at(&mut conn, times[0]).1, 3600);
    assert_eq!(system_offset_at(&mut conn, *times.last().unwrap()).1, 7200);
}

/// A file of naive timestamps alone, with no zone anywhere, is refused untouched with one line
/// naming `--timezone`; given one, it imports.
#[test]
fn an_all_naive_file_is_refused_until_given_a_timezone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    let times = takeover::berlin_dst(&file, true);
    let before = file_bytes(&file);
    let path = file.to_str().unwrap();
    for args in [
        vec!["--database-url", path, "migrate"],
        vec![
            "--database-url",
            dir.path().join("target.db").to_str().unwrap(),
            "import-legacy",
            path,
        ],
    ] {
        let (ok, _, stderr) = hub(&args);
        assert!(!ok, "{args:?} succeeded");
        assert_eq!(stderr.len(), 1, "{stderr:?}");
        assert!(stderr[0].contains("--timezone"), "{stderr:?}");
        assert_eq!(file_bytes(&file), before, "the file was modified");
    }
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("backup"))
        .collect();
    assert!(
        files.is_empty(),
        "a refused upgrade made a backup: {files:?}"
    );
    let (ok, output, stderr) = hub(&[
        "--database-url",
        path,
        "migrate",
        "--timezone",
        "Europe/Berlin",
    ]);
    assert!(ok, "{stderr:?}");
    assert!(
        output.contains("timezone Europe/Berlin from --timezone"),
        "{output}"
    );
    let mut conn = DatabaseUrl::Sqlite(file.clone()).connect().unwrap();
    let stored: Vec<i64> = value_rows(&mut conn, "energy_samples", "inverter_id", &["pv_power_w"])
        .into_iter()
        .map(|r| r.ts)
        .collect();
    assert_eq!(stored, times);
}

/// What a Phase-1 file must have become: one system in the file's zone with the file's names,
/// adapters and attachment; battery energy at every level equal to the old app's own figures, in
/// solarhub's sign; and the old app's month without raw samples served by the history API.
fn assert_phase1(db: &TestDb, expected: &takeover::Phase1Expected, output: &str) {
    use solarhub_proto::v1::history_service_client::HistoryServiceClient;
    use solarhub_proto::v1::{BucketSource, EnergyHistoryRequest, MeterHistoryRequest, TimeRange};
    let mut conn = db.connect();
    let (_, installation, systems) = catalog::load_catalog(&mut conn).unwrap();
    assert_eq!(systems.len(), 1, "{systems:?}");
    assert_eq!(
        (
            systems[0].system_id.as_str(),
            systems[0].timezone.as_str(),
            systems[0].name.as_str()
        ),
        ("home", "Asia/Karachi", "Legacy Home")
    );
    assert!(
        output.contains("timezone Asia/Karachi from the file's configuration table (timezone)"),
        "{output}"
    );
    assert!(
        output.contains("the file's systems system folded into home"),
        "{output}"
    );
    let inverter = installation
        .inverters
        .iter()
        .find(|i| i.inverter_id == "powdrive1")
        .unwrap();
    assert_eq!(
        (
            inverter.name.as_str(),
            inverter.array_id.as_str(),
            inverter.serial_number.as_deref()
        ),
        ("Roof Powdrive", "array1", Some("PD123"))
    );
    assert_eq!(inverter.adapter_id.as_deref(), Some("powdrive1.adapter"));
    let array = installation
        .arrays
        .iter()
        .find(|a| a.array_id == "array1")
        .unwrap();
    assert_eq!(array.name, "Default Inverter Array");
    let adapter = installation
        .adapters
        .iter()
        .find(|a| a.adapter_id == "powdrive1.adapter")
        .unwrap();
    let config: serde_json::Value = serde_json::from_str(&adapter.config_json).unwrap();
    assert_eq!(config["serial_port"], "/dev/ttyUSB0");
    assert!(config.get("type").is_none(), "{config}");
    let meter = installation
        .meters
        .iter()
        .find(|m| m.meter_id == "grid_meter_1")
        .unwrap();
    assert_eq!(
        (meter.name.as_str(), meter.array_id.as_deref()),
        ("Grid connection", None)
    );
    assert_eq!(meter.adapter_id.as_deref(), Some("grid_meter_1.adapter"));
    let pack = installation
        .packs
        .iter()
        .find(|p| p.pack_id == "battery1")
        .unwrap();
    assert_eq!(
        (
            pack.name.as_str(),
            pack.battery_array_id.as_deref(),
            pack.nominal_kwh
        ),
        ("Pytes bank", Some("battery_array1"), Some(10.0))
    );
    assert!(
        installation
            .pack_adapters
            .iter()
            .any(|l| l.pack_id == "battery1" && l.adapter_id == "battery1.adapter")
    );
    let attachment = &installation.attachments;
    assert_eq!(attachment.len(), 1, "{attachment:?}");
    assert_eq!(
        (
            attachment[0].inverter_array_id.as_str(),
            attachment[0].attached_since
        ),
        (
            "array1",
            chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00+05:00")
                .unwrap()
                .timestamp_millis()
        )
    );
    assert!(
        !installation
            .inverters
            .iter()
            .any(|i| i.name.contains("not in config")),
        "no placeholder where the file has the device"
    );

    // Sign: the state of charge rises exactly while solarhub's battery power is negative.
    let energy = value_rows(
        &mut conn,
        "energy_samples",
        "inverter_id",
        &["battery_power_w", "battery_soc_pct"],
    );
    assert_eq!(energy.len(), expected.samples);
    for pair in energy.windows(2) {
        let (power, rise) = (pair[0].values[0], pair[1].values[1] - pair[0].values[1]);
        if power.abs() > 50.0 {
            assert_eq!(
                power < 0.0,
                rise > 0.0,
                "power {power} W while SOC moves by {rise}"
            );
        }
    }

    // Battery energy of the raw day: per hour and per day, at the inverter, array and system.
    let server = common::RunningHub::start(db);
    let mut client = HistoryServiceClient::new(server.channel.clone());
    let range = |from: &str, to: &str| TimeRange {
        from: Some(solarhub_proto::time::timestamp(
            chrono::DateTime::parse_from_rfc3339(from)
                .unwrap()
                .timestamp_millis(),
        )),
        to: Some(solarhub_proto::time::timestamp(
            chrono::DateTime::parse_from_rfc3339(to)
                .unwrap()
                .timestamp_millis(),
        )),
    };
    let day = range("2025-06-15T00:00:00+05:00", "2025-06-16T00:00:00+05:00");
    let request =
        |system: &str, array: &str, inverter: &str, range: &TimeRange| EnergyHistoryRequest {
            system_id: system.into(),
            array_id: array.into(),
            inverter_id: inverter.into(),
            range: Some(*range),
        };
    let hours = server
        .runtime
        .block_on(client.get_hourly_energy(request("", "", "powdrive1", &day)))
        .unwrap()
        .into_inner()
        .buckets;
    assert_eq!(hours.len(), 24);
    for (hour, (charge, discharge)) in hours.iter().zip(&expected.day_hours) {
        assert_eq!(hour.source, BucketSource::Samples as i32);
        for (ours, theirs, what) in [
            (hour.battery_charge_kwh.unwrap_or(0.0), *charge, "charge"),
            (
                hour.battery_discharge_kwh.unwrap_or(0.0),
                *discharge,
                "discharge",
            ),
        ] {
            assert!(
                (ours - theirs).abs() <= 0.02 * theirs.max(0.25),
                "hour {} {what}: {ours} kWh, the old app {theirs} kWh",
                hour.hour
            );
        }
    }
    let (charged, discharged) = expected
        .day_hours
        .iter()
        .fold((0.0, 0.0), |(c, d), (hc, hd)| (c + hc, d + hd));
    for (what, request) in [
        ("inverter", request("", "", "powdrive1", &day)),
        ("array", request("", "array1", "", &day)),
        ("system", request("home", "", "", &day)),
    ] {
        let days = server
            .runtime
            .block_on(client.get_daily_energy(request))
            .unwrap()
            .into_inner()
            .buckets;
        assert_eq!(days.len(), 1, "{what}");
        let (c, d) = (
            days[0].battery_charge_kwh.unwrap(),
            days[0].battery_discharge_kwh.unwrap(),
        );
        assert!(
            (c - charged).abs() <= 0.02 * charged,
            "{what} charged {c}, the old app {charged}"
        );
        assert!(
            (d - discharged).abs() <= 0.02 * discharged,
            "{what} discharged {d}, the old app {discharged}"
        );
    }

    // May: only the old app's figures, served with their source.
    let may = range("2025-05-01T00:00:00+05:00", "2025-06-01T00:00:00+05:00");
    let days = server
        .runtime
        .block_on(client.get_daily_energy(request("home", "", "", &may)))
        .unwrap()
        .into_inner()
        .buckets;
    assert_eq!(days.len(), 31);
    for day in &days {
        let (pv, load) = expected.may_days[&day.date];
        assert_eq!(day.source, BucketSource::Legacy as i32, "{}", day.date);
        assert!((day.solar_kwh.unwrap() - pv).abs() < 1e-9, "{}", day.date);
        assert!((day.load_kwh.unwrap() - load).abs() < 1e-9, "{}", day.date);
        // Battery energy the old app's days lack comes from its hours; grid from its meter.
        assert!(
            (day.battery_charge_kwh.unwrap() - 12.0).abs() < 1e-9,
            "{}",
            day.date
        );
        let import = expected.may_meter_import[&day.date];
        assert!(
            (day.grid_import_kwh.unwrap() - import).abs() < 1e-9,
            "{}",
            day.date
        );
    }
    let first_day = range("2025-05-01T00:00:00+05:00", "2025-05-02T00:00:00+05:00");
    let hours = server
        .runtime
        .block_on(client.get_hourly_energy(request("", "", "powdrive1", &first_day)))
        .unwrap()
        .into_inner()
        .buckets;
    let solar: Vec<f64> = hours.iter().map(|h| h.solar_kwh.unwrap()).collect();
    assert_eq!(solar, expected.may_first_hours);
    assert!(
        hours
            .iter()
            .all(|h| h.source == BucketSource::Legacy as i32)
    );
    // The old app's battery power is positive when charging: its average turned to ours.
    assert_eq!(hours[0].avg_battery_power_w, Some(-250.0));
    let meter_days = server
        .runtime
        .block_on(client.get_meter_daily(MeterHistoryRequest {
            system_id: String::new(),
            meter_id: "grid_meter_1".into(),
            range: Some(may),
        }))
        .unwrap()
        .into_inner()
        .buckets;
    assert_eq!(meter_days.len(), 31);
    assert!(
        meter_days
            .iter()
            .all(|d| d.source == BucketSource::Legacy as i32)
    );
    // A recompute leaves the old app's month as it is.
    let before = introspect::table_fingerprint(&mut conn, "system_daily_summary").unwrap();
    let (ok, _, stderr) = hub(&[
        "--database-url",
        &db.url_arg(),
        "recompute",
        "--system",
        "home",
    ]);
    assert!(ok, "{stderr:?}");
    let after = introspect::table_fingerprint(&mut conn, "system_daily_summary").unwrap();
    let may_rows = |rows: &[String]| -> Vec<String> {
        rows.iter()
            .filter(|r| r.contains("2025-05-"))
            .cloned()
            .collect()
    };
    assert_eq!(may_rows(&after), may_rows(&before));
    assert_eq!(may_rows(&after).len(), 31);
}

/// The newest old app's file, with no config: in place on SQLite, `import-legacy` into Postgres.
fn a_phase1_file_without_config(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let file = match &db.url {
        DatabaseUrl::Sqlite(path) => path.clone(),
        DatabaseUrl::Postgres(_) => dir.path().join("solar.db"),
    };
    let expected = takeover::phase1(&file);
    let url = db.url_arg();
    let (ok, output, stderr) = match &db.url {
        DatabaseUrl::Sqlite(_) => hub(&["--database-url", &url, "migrate"]),
        DatabaseUrl::Postgres(_) => hub(&[
            "--database-url",
            &url,
            "import-legacy",
            file.to_str().unwrap(),
        ]),
    };
    assert!(ok, "{stderr:?}");
    assert_phase1(&db, &expected, &output);
}

on_both_backends!(a_phase1_file_without_config);

/// After the upgrade the config names the zone, and a recompute follows: exactly one rollup row
/// per local hour and day, whatever zone the first run used. Run as the issue describes (no config,
/// then the config), and with a wrong zone given first (UTC, so the old rows start at UTC midnight,
/// five hours after Karachi's).
#[test]
fn a_zone_change_leaves_one_rollup_row_per_local_hour_and_day() {
    // (first run's extra arguments, naive rows in the file, system days after the first run)
    let scenarios: [(&[&str], i64, &[&str]); 2] = [
        (
            &[],
            takeover::EARLY_NAIVE_STEPS,
            &["2025-06-15 1749927600000", "2025-06-16 1750014000000"],
        ),
        (
            &["--timezone", "UTC"],
            0,
            &[
                "2025-06-14 1749859200000",
                "2025-06-15 1749945600000",
                "2025-06-16 1750032000000",
            ],
        ),
    ];
    for (first_run, naive_steps, first_days) in scenarios {
        zone_change(first_run, naive_steps, first_days);
    }
}

fn zone_change(first_run: &[&str], naive_steps: i64, first_days: &[&str]) {
    #[derive(diesel::QueryableByName, Debug)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::Text)]
        date: String,
        /// How many rows share it.
        #[allow(dead_code)]
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    takeover::early_installation_with(&file, naive_steps);
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, takeover::early_config()).unwrap();
    let path = file.to_str().unwrap();
    let mut args = vec!["--database-url", path, "migrate"];
    args.extend(first_run);
    let (ok, _, stderr) = hub(&args);
    assert!(ok, "{stderr:?}");
    let mut conn = DatabaseUrl::Sqlite(file.clone()).connect().unwrap();
    let load = |conn: &mut DbConnection, sql: &str| -> Vec<Key> {
        diesel::RunQueryDsl::load(diesel::sql_query(sql), conn).unwrap()
    };
    let days = |conn: &mut DbConnection| -> Vec<String> {
        load(
            conn,
            "SELECT date || ' ' || CAST(bucket_start AS TEXT) AS date, 1 AS n FROM system_daily_summary ORDER BY bucket_start",
        )
        .into_iter()
        .map(|k| k.date)
        .collect()
    };
    assert_eq!(days(&mut conn), first_days, "{first_run:?}");
    let (ok, _, stderr) = hub(&[
        "--database-url",
        path,
        "migrate",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr:?}");
    let (ok, output, stderr) = hub(&[
        "--database-url",
        path,
        "recompute",
        "--system",
        "home",
        "--from",
        "2025-06-15",
        "--to",
        "2025-06-17",
    ]);
    assert!(ok, "{stderr:?}");
    assert!(output.contains("rollups of home"), "{output}");
    // Karachi's days start at 19:00 UTC the day before: the UTC-aligned rows are gone.
    assert_eq!(
        days(&mut conn),
        ["2025-06-15 1749927600000", "2025-06-16 1750014000000"]
    );
    for table in [
        "daily_summary",
        "array_daily_summary",
        "system_daily_summary",
        "battery_bank_daily",
        "meter_daily",
    ] {
        let device = match table {
            "daily_summary" => "inverter_id",
            "array_daily_summary" => "array_id",
            "system_daily_summary" => "system_id",
            "battery_bank_daily" => "pack_id",
            _ => "meter_id",
        };
        let twice = load(
            &mut conn,
            &format!(
                "SELECT date, COUNT(*) AS n FROM {table} GROUP BY {device}, date HAVING COUNT(*) > 1"
            ),
        );
        assert!(twice.is_empty(), "{table}: {twice:?}");
        let stray = load(
            &mut conn,
            &format!(
                "SELECT date, COUNT(*) AS n FROM {table} WHERE date NOT IN ('2025-06-15', '2025-06-16') GROUP BY date"
            ),
        );
        assert!(stray.is_empty(), "{table}: {stray:?}");
    }
    for (table, device) in [
        ("hourly_energy", "inverter_id"),
        ("array_hourly_energy", "array_id"),
        ("system_hourly_energy", "system_id"),
        ("battery_bank_hourly", "pack_id"),
        ("meter_hourly_energy", "meter_id"),
    ] {
        let twice = load(
            &mut conn,
            &format!(
                "SELECT date, COUNT(*) AS n FROM {table} GROUP BY {device}, date, hour_start HAVING COUNT(*) > 1"
            ),
        );
        assert!(twice.is_empty(), "{table}: {twice:?}");
        // Every hour is labelled with its Karachi hour (08:00 in Karachi is 03:00 UTC).
        let mislabelled = load(
            &mut conn,
            &format!(
                "SELECT date, COUNT(*) AS n FROM {table} WHERE (bucket_start / 3600000 + 5) % 24 <> hour_start GROUP BY date"
            ),
        );
        assert!(mislabelled.is_empty(), "{table}: {mislabelled:?}");
    }
    // A second run with the same config changes nothing.
    let tables = [
        "energy_samples",
        "legacy_conflicts",
        "systems",
        "inverters",
        "system_daily_summary",
    ];
    let fingerprint = |conn: &mut DbConnection| -> Vec<Vec<String>> {
        tables
            .iter()
            .map(|t| introspect::table_fingerprint(conn, t).unwrap())
            .collect()
    };
    let before = fingerprint(&mut conn);
    let (ok, _, stderr) = hub(&[
        "--database-url",
        path,
        "migrate",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr:?}");
    assert_eq!(fingerprint(&mut conn), before);
}
