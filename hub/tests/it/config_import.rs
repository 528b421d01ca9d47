//! Importing the existing app's `config.yaml`: the exact catalog rows, idempotence, precise change
//! reports, and located errors that write nothing.

use crate::common;

use std::path::{Path, PathBuf};

use common::TestDb;
use solarhub_hub::adapter_types::builtin_adapter_types;
use solarhub_hub::catalog::{CatalogTable, Change, ChangeKind, ChangeReport};
use solarhub_hub::config_import::{TimezoneSource, load_config};
use solarhub_hub::db::{Database, catalog, introspect};

const FIXTURE: &str = include_str!("fixtures/installation.yaml");

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn import(database: &Database, path: &Path, prune: bool) -> ChangeReport {
    let types = builtin_adapter_types().unwrap();
    let loaded = load_config(path, &types).unwrap();
    let rows: Vec<_> = types.into_iter().map(|t| t.row).collect();
    let mut conn = database.get().unwrap();
    catalog::apply_installation(&mut conn, &rows, &loaded.installation, prune).unwrap()
}

fn catalog_fingerprint(database: &Database) -> Vec<(CatalogTable, Vec<String>)> {
    let mut conn = database.get().unwrap();
    CatalogTable::ALL
        .iter()
        .map(|table| {
            (
                *table,
                introspect::table_fingerprint(&mut conn, table.table_name()).unwrap(),
            )
        })
        .collect()
}

fn imports_the_installation_exactly(db: TestDb) {
    let database = db.migrated();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "config.yaml", FIXTURE);

    let types = builtin_adapter_types().unwrap();
    let loaded = load_config(&path, &types).unwrap();
    assert_eq!(loaded.timezone_source, TimezoneSource::SmartForecast);
    assert!(
        loaded.ignored.iter().any(|note| note.contains("`mqtt`")),
        "{:?}",
        loaded.ignored
    );

    let report = import(&database, &path, false);
    assert!(
        report.changes.iter().all(|c| c.kind == ChangeKind::Created),
        "{:?}",
        report.changes
    );

    let mut conn = database.get().unwrap();
    let (adapter_types, installation, systems) = catalog::load_catalog(&mut conn).unwrap();
    assert_eq!(adapter_types.len(), 9);
    assert_eq!(systems.len(), 1);
    let system = &systems[0];
    assert_eq!(
        (system.system_id.as_str(), system.name.as_str()),
        ("home", "My Solar Home")
    );
    assert_eq!(system.timezone, "Asia/Karachi");
    assert_eq!(system.currency.as_deref(), Some("PKR"));

    let mut arrays: Vec<_> = installation
        .arrays
        .iter()
        .map(|a| (a.array_id.as_str(), a.name.as_str(), a.pv_capacity_kw))
        .collect();
    arrays.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        arrays,
        [
            ("array1", "Ground Floor", Some(15.4)),
            ("array2", "First Floor", Some(13.2))
        ]
    );

    let mut inverters: Vec<_> = installation
        .inverters
        .iter()
        .map(|i| {
            (
                i.inverter_id.as_str(),
                i.array_id.as_str(),
                i.adapter_id.as_deref().unwrap(),
            )
        })
        .collect();
    inverters.sort();
    assert_eq!(
        inverters,
        [
            ("powdrive1", "array2", "powdrive1.adapter"),
            ("powdrive2", "array1", "powdrive2.adapter"),
            ("senergy1", "array1", "senergy1.adapter"),
        ]
    );

    let adapter = |id: &str| {
        installation
            .adapters
            .iter()
            .find(|a| a.adapter_id == id)
            .unwrap_or_else(|| panic!("no adapter {id}"))
    };
    let config =
        |id: &str| -> serde_json::Value { serde_json::from_str(&adapter(id).config_json).unwrap() };
    assert_eq!(installation.adapters.len(), 7);
    // Two RTU inverters share one serial port with different unit ids; the third speaks TCP.
    assert_eq!(
        config("powdrive1.adapter")["serial_port"],
        config("powdrive2.adapter")["serial_port"]
    );
    assert_eq!(
        (
            config("powdrive1.adapter")["unit_id"].as_i64(),
            config("powdrive2.adapter")["unit_id"].as_i64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(config("senergy1.adapter")["transport"], "tcp");
    assert_eq!(config("senergy1.adapter")["host"], "192.168.88.48");
    assert!(
        config("powdrive1.adapter").get("type").is_none(),
        "the type is a column, not config"
    );
    assert_eq!(adapter("grid_meter_1.adapter").adapter_type, "iammeter");
    assert_eq!(adapter("battery1.adapter").adapter_type, "pytes");
    assert_eq!(
        (
            adapter("jkbms_bank.adapter1").adapter_type.as_str(),
            adapter("jkbms_bank.adapter1").priority
        ),
        ("jkbms_tcpip", 1)
    );
    assert_eq!(
        (
            adapter("jkbms_bank.adapter2").adapter_type.as_str(),
            adapter("jkbms_bank.adapter2").priority
        ),
        ("jkbms_ble", 2)
    );
    assert!(
        installation
            .adapters
            .iter()
            .all(|a| a.enabled && a.collector_id.is_none())
    );

    assert_eq!(installation.meters.len(), 1);
    let meter = &installation.meters[0];
    assert_eq!(
        (
            meter.meter_id.as_str(),
            meter.array_id.as_deref(),
            meter.meter_type.as_str()
        ),
        ("grid_meter_1", None, "grid")
    );

    let mut packs: Vec<_> = installation
        .packs
        .iter()
        .map(|p| {
            (
                p.pack_id.as_str(),
                p.battery_array_id.as_deref(),
                p.batteries_count,
                p.cells_per_battery,
            )
        })
        .collect();
    packs.sort();
    assert_eq!(
        packs,
        [
            ("battery1", Some("battery_array2"), Some(4), Some(15)),
            ("jkbms_bank", Some("battery_array1"), Some(3), Some(16))
        ]
    );
    assert_eq!(installation.batteries.len(), 4 + 3);
    assert_eq!(installation.cells.len(), 4 * 15 + 3 * 16);
    assert!(
        installation
            .cells
            .iter()
            .any(|c| c.cell_id == "jkbms_bank.b3.c16" && c.battery_id == "jkbms_bank.b3")
    );

    let mut pack_adapters: Vec<_> = installation
        .pack_adapters
        .iter()
        .map(|p| (p.pack_id.as_str(), p.adapter_id.as_str(), p.priority))
        .collect();
    pack_adapters.sort();
    assert_eq!(
        pack_adapters,
        [
            ("battery1", "battery1.adapter", 1),
            ("jkbms_bank", "jkbms_bank.adapter1", 1),
            ("jkbms_bank", "jkbms_bank.adapter2", 2)
        ]
    );

    assert_eq!(installation.battery_arrays.len(), 2);
    let mut attachments: Vec<_> = installation
        .attachments
        .iter()
        .map(|a| {
            (
                a.battery_array_id.as_str(),
                a.inverter_array_id.as_str(),
                a.attached_since,
                a.detached_at,
            )
        })
        .collect();
    attachments.sort();
    // 2025-01-01T00:00:00+05:00 is 2024-12-31T19:00:00Z.
    assert_eq!(
        attachments,
        [
            ("battery_array1", "array1", 1_735_671_600_000, None),
            ("battery_array2", "array2", 1_735_671_600_000, None)
        ]
    );

    let expected_counts = [
        ("systems", 1),
        ("adapter_base", 9),
        ("adapters", 7),
        ("arrays", 2),
        ("inverters", 3),
        ("battery_arrays", 2),
        ("battery_array_attachments", 2),
        ("battery_packs", 2),
        ("batteries", 7),
        ("battery_cells", 108),
        ("meters", 1),
        ("battery_pack_adapters", 3),
    ];
    for (table, count) in expected_counts {
        assert_eq!(
            introspect::row_count(&mut conn, table).unwrap(),
            count,
            "{table}"
        );
    }
    assert_eq!(
        report.changes.len(),
        expected_counts
            .iter()
            .map(|(_, n)| *n as usize)
            .sum::<usize>()
    );
}

fn second_import_changes_nothing_and_edits_are_reported_exactly(db: TestDb) {
    let database = db.migrated();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "config.yaml", FIXTURE);
    import(&database, &path, false);
    let before = catalog_fingerprint(&database);

    let again = import(&database, &path, false);
    assert!(
        again.is_empty(),
        "second import changed {:?}",
        again.changes
    );
    assert_eq!(
        catalog_fingerprint(&database),
        before,
        "a no-op import must leave every table byte-identical"
    );

    let edited = FIXTURE
        .replace("    name: Senergy\n", "    name: Senergy 8kW\n")
        .replace("      serial_port: /dev/ttyUSB1\n      baudrate: 115200\n", "      serial_port: /dev/ttyUSB1\n      baudrate: 9600\n")
        .replace(
            "battery_data_source: battery_adapter\n",
            "  - id: load_meter\n    name: Load\n    array_id: array1\n    meter_type: consumption\n    adapter:\n      type: iammeter\n      transport: tcp\n      host: 192.168.88.24\n\nbattery_data_source: battery_adapter\n",
        );
    assert_ne!(edited, FIXTURE);
    let edited_path = write_config(dir.path(), "edited.yaml", &edited);
    let report = import(&database, &edited_path, false);
    let mut changes = report.changes.clone();
    changes.sort_by(|a, b| (a.table, &a.key).cmp(&(b.table, &b.key)));
    assert_eq!(
        changes,
        [
            Change {
                table: CatalogTable::Adapters,
                key: "battery1.adapter".into(),
                kind: ChangeKind::Updated(vec!["config_json"])
            },
            Change {
                table: CatalogTable::Adapters,
                key: "load_meter.adapter".into(),
                kind: ChangeKind::Created
            },
            Change {
                table: CatalogTable::Inverters,
                key: "senergy1".into(),
                kind: ChangeKind::Updated(vec!["name"])
            },
            Change {
                table: CatalogTable::Meters,
                key: "load_meter".into(),
                kind: ChangeKind::Created
            },
        ]
    );

    // Removing the meter again changes nothing without --prune, and deletes it (and its adapter) with it.
    assert!(
        import(&database, &path, false)
            .changes
            .iter()
            .all(|c| c.kind != ChangeKind::Deleted)
    );
    let pruned = import(&database, &path, true);
    let mut deleted: Vec<_> = pruned
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Deleted)
        .map(|c| c.key.as_str())
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["load_meter", "load_meter.adapter"]);
}

on_both_backends!(
    imports_the_installation_exactly,
    second_import_changes_nothing_and_edits_are_reported_exactly
);

/// Each broken file: the text, the field that must be named, and the line it is on.
fn broken_configs() -> Vec<(&'static str, String, &'static str, &'static str)> {
    vec![
        (
            "typo in an inverter key",
            FIXTURE.replace(
                "  - id: senergy1\n    name: Senergy\n",
                "  - id: senergy1\n    inverter_idz: 4\n    name: Senergy\n",
            ),
            "inverters[1].inverter_idz",
            "    inverter_idz: 4",
        ),
        (
            "unknown adapter type",
            FIXTURE.replace("      type: senergy\n", "      type: senergyy\n"),
            "inverters[1].adapter.type",
            "      type: senergyy",
        ),
        (
            "baudrate that is a string",
            FIXTURE.replace(
                "      unit_id: 2\n      serial_port: /dev/ttyUSB0\n      baudrate: 9600\n",
                "      unit_id: 2\n      serial_port: /dev/ttyUSB0\n      baudrate: \"9600\"\n",
            ),
            "inverters[2].adapter.baudrate",
            "      baudrate: \"9600\"",
        ),
        (
            "array_id naming no array",
            FIXTURE.replace("    array_id: home\n", "    array_id: garage\n"),
            "meters[0].array_id",
            "    array_id: garage",
        ),
        (
            "a timezone that is not one",
            FIXTURE.replace("    tz: Asia/Karachi\n", "    tz: Asia/Karachii\n"),
            "smart.forecast.tz",
            "    tz: Asia/Karachii",
        ),
    ]
}

fn line_of(text: &str, line: &str) -> usize {
    let matches: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == line)
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(matches.len(), 1, "the broken line {line:?} must be unique");
    matches[0]
}

fn typos_are_rejected_with_file_line_and_field_and_nothing_is_written(db: TestDb) {
    let database = db.migrated();
    let before = catalog_fingerprint(&database);
    let dir = tempfile::tempdir().unwrap();
    for (what, text, field, broken_line) in broken_configs() {
        assert_ne!(text, FIXTURE, "{what}: the fixture edit did not apply");
        let path = write_config(dir.path(), "config.yaml", &text);
        let output = common::hub_binary()
            .args(["--database-url", &db.url_arg(), "import-config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{what}: import succeeded");
        let line = line_of(&text, broken_line);
        let expected = format!("{}:{line}:", path.display());
        let error_line = stderr
            .lines()
            .find(|l| l.contains(field))
            .unwrap_or_else(|| panic!("{what}: no error names {field}:\n{stderr}"));
        assert!(
            error_line.contains(&expected),
            "{what}: expected {expected} in {error_line:?}"
        );
        assert_eq!(
            catalog_fingerprint(&database),
            before,
            "{what}: a rejected file wrote something"
        );
    }
}

on_both_backends!(typos_are_rejected_with_file_line_and_field_and_nothing_is_written);

#[test]
fn a_string_baudrate_error_explains_itself() {
    let (_, text, field, _) = broken_configs().remove(2);
    let types = builtin_adapter_types().unwrap();
    let error = solarhub_hub::config_import::parse_config(Path::new("config.yaml"), &text, &types)
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(field) && message.contains("must be integer, got string \"9600\""),
        "{message}"
    );
}

/// Issue 26: the collector reads an adapter's settings by the same names its adapter type's JSON
/// Schema allows: every setting it asks for, on every transport the type offers, is a property
/// of the schema (they had drifted: `poll_timeout` was read for `pytes`, which its schema forbids).
#[test]
fn the_collector_asks_only_for_settings_the_adapter_types_allow() {
    let types = solarhub_hub::adapter_types::builtin_adapter_types().unwrap();
    assert!(types.len() >= 9);
    for known in &types {
        let row = &known.row;
        let schema: serde_json::Value = serde_json::from_str(&row.config_schema).unwrap();
        let allowed: std::collections::BTreeSet<String> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let base: serde_json::Value = row
            .default_config
            .as_deref()
            .map(|text| serde_json::from_str(text).unwrap())
            .unwrap_or_else(|| serde_json::json!({}));
        let mut configs = vec![base.clone()];
        for (key, values) in [
            ("transport", vec!["tcp", "rtu", "rtu_over_tcp"]),
            ("connection_type", vec!["tcpip", "rtu"]),
        ] {
            if allowed.contains(key) {
                for value in values {
                    let mut config = base.clone();
                    config[key] = value.into();
                    configs.push(config);
                }
            }
        }
        for config in configs {
            let assignment = solarhub_collector::uplink::assignment::Assignment {
                adapter_id: format!("{}.adapter", row.adapter_type),
                device_id: "device".into(),
                adapter_type: row.adapter_type.clone(),
                priority: 1,
                enabled: true,
                config: config.clone(),
            };
            let asked = solarhub_collector::uplink::assignment::settings_asked(&assignment);
            // Every adapter is polled at an interval: an empty answer means nothing was recorded.
            assert!(
                asked.contains("poll_interval_secs"),
                "{}: the collector reported no settings asked: {asked:?}",
                row.adapter_type
            );
            let strays: Vec<&String> = asked.difference(&allowed).collect();
            assert!(
                strays.is_empty(),
                "{}: the collector asks for {strays:?}, which its schema does not allow (config {config})",
                row.adapter_type
            );
        }
    }
}
