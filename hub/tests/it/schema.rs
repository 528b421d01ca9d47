//! The migrations give both backends the same schema, with working foreign keys, applied once.

use crate::common;

use common::TestDb;
use solarhub_hub::catalog::{BatteryCell, Installation, Inverter, System};
use solarhub_hub::db::{self, catalog::apply_installation, introspect};

#[test]
fn both_backends_get_the_same_tables_and_columns() {
    let Some(postgres) = TestDb::postgres() else {
        return;
    };
    let sqlite = TestDb::sqlite();
    let mut sqlite_conn = sqlite.connect();
    let mut postgres_conn = postgres.connect();
    db::run_migrations(&mut sqlite_conn).unwrap();
    db::run_migrations(&mut postgres_conn).unwrap();

    let sqlite_tables = introspect::table_names(&mut sqlite_conn).unwrap();
    let postgres_tables = introspect::table_names(&mut postgres_conn).unwrap();
    assert_eq!(sqlite_tables, postgres_tables);
    for table in [
        "systems",
        "arrays",
        "inverters",
        "battery_arrays",
        "battery_array_attachments",
        "battery_packs",
        "batteries",
        "battery_cells",
        "meters",
        "adapter_base",
        "adapters",
        "battery_pack_adapters",
        "energy_samples",
        "array_samples",
        "battery_bank_samples",
        "battery_unit_samples",
        "battery_cell_samples",
        "meter_samples",
        "hourly_energy",
        "array_hourly_energy",
        "system_hourly_energy",
        "daily_summary",
        "array_daily_summary",
        "system_daily_summary",
        "battery_bank_hourly",
        "battery_bank_daily",
        "meter_hourly_energy",
        "meter_daily",
    ] {
        assert!(
            sqlite_tables.iter().any(|t| t == table),
            "missing table {table}"
        );
    }
    for table in &sqlite_tables {
        let sqlite_columns = introspect::columns(&mut sqlite_conn, table).unwrap();
        let postgres_columns = introspect::columns(&mut postgres_conn, table).unwrap();
        assert!(!sqlite_columns.is_empty(), "{table} has no columns");
        assert_eq!(
            sqlite_columns, postgres_columns,
            "columns of {table} differ between SQLite and Postgres"
        );
        for column in &sqlite_columns {
            assert!(
                ["TEXT", "BIGINT", "INTEGER", "DOUBLE", "BOOLEAN"]
                    .contains(&column.sql_type.as_str()),
                "{table}.{} has type {}, which diesel would not map the same way on both backends",
                column.name,
                column.sql_type
            );
        }
    }
}

fn migrations_apply_once(db: TestDb) {
    let mut conn = db.connect();
    let first = db::run_migrations(&mut conn).unwrap();
    assert_eq!(
        first.applied.len(),
        common::migration_count(),
        "{:?}",
        first.applied
    );
    let second = db::run_migrations(&mut conn).unwrap();
    assert!(
        second.applied.is_empty(),
        "second run applied {:?}",
        second.applied
    );
    assert_eq!(db::applied_migrations(&mut conn).unwrap(), first.applied);
}

fn orphan_inserts_fail(db: TestDb) {
    let database = db.migrated();
    let mut conn = database.get().unwrap();
    let system = System {
        system_id: "home".into(),
        name: "Home".into(),
        description: None,
        timezone: "UTC".into(),
        currency: None,
        tariff_json: None,
    };
    let orphan_inverter = Installation {
        system: Some(system.clone()),
        inverters: vec![Inverter {
            inverter_id: "inv1".into(),
            array_id: "no_such_array".into(),
            system_id: "home".into(),
            adapter_id: None,
            name: "Inverter".into(),
            model: None,
            serial_number: None,
            vendor: None,
            phase_type: None,
            rated_power_w: None,
            settings_json: None,
        }],
        ..Installation::default()
    };
    let error = apply_installation(&mut conn, &[], &orphan_inverter, false).unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("foreign key"),
        "{error}"
    );

    let orphan_cell = Installation {
        system: Some(system),
        cells: vec![BatteryCell {
            cell_id: "c1".into(),
            battery_id: "no_such_battery".into(),
            cell_index: 1,
            nominal_voltage: None,
        }],
        ..Installation::default()
    };
    let error = apply_installation(&mut conn, &[], &orphan_cell, false).unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("foreign key"),
        "{error}"
    );

    // Each failed import rolled back whole: not even the system row stayed.
    for table in ["systems", "inverters", "battery_cells"] {
        assert_eq!(
            introspect::row_count(&mut conn, table).unwrap(),
            0,
            "{table}"
        );
    }
}

on_both_backends!(migrations_apply_once, orphan_inserts_fail);

#[test]
fn two_migrate_processes_at_once_on_one_postgres_database_both_succeed() {
    for _round in 0..3 {
        // A fresh, empty database each round, so every round is a real race to migrate.
        let Some(postgres) = TestDb::postgres() else {
            return;
        };
        let children: Vec<_> = (0..2)
            .map(|_| {
                common::hub_binary()
                    .args(["--database-url", &postgres.url_arg(), "migrate"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "migrate failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut conn = postgres.connect();
        assert_eq!(
            db::applied_migrations(&mut conn).unwrap().len(),
            common::migration_count()
        );
    }
}

#[test]
fn every_pooled_sqlite_connection_has_wal_foreign_keys_and_a_busy_timeout() {
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};

    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = Text)]
        journal_mode: String,
    }
    #[derive(QueryableByName)]
    struct Flag {
        #[diesel(sql_type = BigInt)]
        foreign_keys: i64,
    }
    #[derive(QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = BigInt)]
        timeout: i64,
    }

    let db = TestDb::sqlite();
    let database = db.migrated();
    // Hold several connections at once so the pool has to open new ones.
    let mut held: Vec<_> = (0..4).map(|_| database.get().unwrap()).collect();
    for conn in &mut held {
        let conn: &mut db::DbConnection = conn;
        let mode: Vec<Mode> = diesel::sql_query("PRAGMA journal_mode").load(conn).unwrap();
        assert_eq!(mode[0].journal_mode, "wal");
        let keys: Vec<Flag> = diesel::sql_query("PRAGMA foreign_keys").load(conn).unwrap();
        assert_eq!(keys[0].foreign_keys, 1);
        let timeout: Vec<Timeout> = diesel::sql_query("PRAGMA busy_timeout").load(conn).unwrap();
        assert!(
            timeout[0].timeout >= 1000,
            "busy_timeout is {}",
            timeout[0].timeout
        );
    }
}
