//! What a year of hourly cell history costs on disk (issue 23): a 128-cell bank (8 batteries of 16
//! cells) gets one `battery_cell_samples_1h` row per cell per hour, 1,121,280 rows in a 365-day
//! year, written hour by hour as the roller writes them (so the primary key's pages split as they
//! do in use). Printed per backend: the table's bytes with its indexes, per row and per year, next
//! to a year of the raw cell samples it outlives at a 5-second poll (the baseline: what the
//! aggregates replace).
//!
//! `cargo bench -p solarhub-hub --bench cell_history`; Postgres when `SOLARHUB_TEST_DATABASE_URL`
//! names a server.

#[path = "support/report.rs"]
mod report;

use diesel::RunQueryDsl;
use report::{Figure, Target};
use solarhub_hub::db::{self, Database, DatabaseUrl, DbConnection, admin};

const HOURS: i64 = 365 * 24;
const CELLS: i64 = 128;
/// Raw rows a cell writes in a year at a 5-second poll.
const RAW_PER_CELL_YEAR: f64 = 365.0 * 86_400.0 / 5.0;

const INSTALLATION: &str = r#"
home:
  id: home
  name: Home
  timezone: Asia/Karachi
battery_banks:
  - id: bank
    name: Bank
    adapter: {type: pytes, serial_port: /dev/ttyUSB1, batteries: 8, cells_per_battery: 16}
"#;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    run("sqlite", DatabaseUrl::Sqlite(dir.path().join("hub.db")))?;
    if let Ok(admin_url) = std::env::var("SOLARHUB_TEST_DATABASE_URL") {
        let name = format!("solarhub_bench_cells_{}", std::process::id());
        let result = admin::create_postgres_database(&admin_url, &name)
            .map_err(anyhow::Error::from)
            .and_then(|url| run("postgres", DatabaseUrl::Postgres(url)));
        let _ = admin::drop_postgres_database(&admin_url, &name);
        result?;
    } else {
        println!("postgres: skipped (SOLARHUB_TEST_DATABASE_URL is not set)");
    }
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Bytes {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    bytes: i64,
}

/// The bytes `table` takes with its indexes (Postgres), or the whole file's pages (SQLite, after
/// a checkpoint: the caller subtracts the file before).
fn bytes(conn: &mut DbConnection, table: &str) -> anyhow::Result<i64> {
    let query = match conn {
        DbConnection::Postgres(_) => {
            format!("SELECT CAST(pg_total_relation_size('{table}') AS BIGINT) AS bytes")
        }
        DbConnection::Sqlite(_) => {
            use diesel::connection::SimpleConnection;
            if let DbConnection::Sqlite(sqlite) = conn {
                sqlite.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")?;
            }
            "SELECT page_count * page_size AS bytes FROM pragma_page_count(), pragma_page_size()"
                .to_owned()
        }
    };
    let rows = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(query).load::<Bytes>(pg)?,
        DbConnection::Sqlite(sqlite) => diesel::sql_query(query).load::<Bytes>(sqlite)?,
    };
    Ok(rows.first().map_or(0, |b| b.bytes))
}

fn run(backend: &str, url: DatabaseUrl) -> anyhow::Result<()> {
    let database = Database::open(url)?;
    let mut conn = database.get()?;
    db::run_migrations(&mut conn)?;
    let types = solarhub_hub::adapter_types::builtin_adapter_types()?;
    let loaded = solarhub_hub::config_import::parse_config(
        std::path::Path::new("installation.yaml"),
        INSTALLATION,
        &types,
    )?;
    let rows: Vec<_> = types.into_iter().map(|t| t.row).collect();
    db::catalog::apply_installation(&mut conn, &rows, &loaded.installation, false)?;
    let before = bytes(&mut conn, "battery_cell_samples_1h")?;
    let started = std::time::Instant::now();
    // A day of hours per transaction, every cell's row of an hour together, values of a real
    // cell's precision (never whole numbers, which SQLite would store as integers).
    let start: i64 = 1_735_689_600_000;
    for day in 0..HOURS / 24 {
        let from = start + day * 24 * 3_600_000;
        let to = from + 24 * 3_600_000;
        let hours = match &*conn {
            DbConnection::Postgres(_) => format!(
                "SELECT h FROM generate_series(CAST({from} AS BIGINT), CAST({to} - 1 AS BIGINT), \
                 CAST(3600000 AS BIGINT)) AS g(h)"
            ),
            DbConnection::Sqlite(_) => format!(
                "WITH RECURSIVE g(h) AS (SELECT {from} UNION ALL SELECT h + 3600000 FROM g \
                 WHERE h + 3600000 < {to}) SELECT h FROM g"
            ),
        };
        let insert = format!(
            "INSERT INTO battery_cell_samples_1h (cell_id, ts, battery_id, pack_id, system_id, \
             samples, voltage_min_v, voltage_max_v, voltage_avg_v, temperature_min_c, \
             temperature_max_c, soc_avg_pct) \
             SELECT c.cell_id, h.h, c.battery_id, 'bank', 'home', 720, \
             3.301 + (h.h / 3600000 % 97) / 1000.0, 3.352 + (h.h / 3600000 % 89) / 1000.0, \
             3.3267 + (h.h / 3600000 % 83) / 10000.0, 21.3 + (h.h / 3600000 % 7) / 10.0, \
             23.7 + (h.h / 3600000 % 11) / 10.0, 55.55 + (h.h / 3600000 % 40) / 3.0 \
             FROM ({hours}) h CROSS JOIN battery_cells c ORDER BY h.h, c.cell_id"
        );
        db::in_transaction(&mut conn, |conn| -> Result<(), db::DbError> {
            match conn {
                DbConnection::Postgres(pg) => diesel::sql_query(&insert).execute(pg)?,
                DbConnection::Sqlite(sqlite) => diesel::sql_query(&insert).execute(sqlite)?,
            };
            Ok(())
        })?;
    }
    if let DbConnection::Postgres(pg) = &mut *conn {
        diesel::sql_query("VACUUM ANALYZE battery_cell_samples_1h").execute(pg)?;
    }
    let after = bytes(&mut conn, "battery_cell_samples_1h")?;
    let rows = HOURS * CELLS;
    let year = (after - before) as f64;
    // The raw cell rows a year at 5 s would take, at this backend's bytes per raw row, measured
    // on a day of them.
    let raw_before = bytes(&mut conn, "battery_cell_samples")?;
    let raw_rows = 86_400 / 5 * CELLS;
    let insert_raw = format!(
        "INSERT INTO battery_cell_samples (cell_id, ts, battery_id, pack_id, system_id, adapter_id, \
         voltage_v, temperature_c) \
         SELECT c.cell_id, {start} + s.n * 5000, c.battery_id, 'bank', 'home', 'bank.adapter', \
         3.301 + (s.n % 97) / 1000.0, 21.3 + (s.n % 7) / 10.0 \
         FROM ({series}) s CROSS JOIN battery_cells c ORDER BY s.n, c.cell_id",
        series = match &*conn {
            DbConnection::Postgres(_) => "SELECT n FROM generate_series(0, 17279) AS g(n)".to_owned(),
            DbConnection::Sqlite(_) => "WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < 17279) SELECT n FROM g".to_owned(),
        }
    );
    db::in_transaction(&mut conn, |conn| -> Result<(), db::DbError> {
        match conn {
            DbConnection::Postgres(pg) => diesel::sql_query(&insert_raw).execute(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::sql_query(&insert_raw).execute(sqlite)?,
        };
        Ok(())
    })?;
    if let DbConnection::Postgres(pg) = &mut *conn {
        diesel::sql_query("VACUUM ANALYZE battery_cell_samples").execute(pg)?;
    }
    let raw_day = (bytes(&mut conn, "battery_cell_samples")? - raw_before) as f64;
    let raw_year = raw_day / raw_rows as f64 * RAW_PER_CELL_YEAR * CELLS as f64;
    println!(
        "{backend}: a year of hourly history of a {CELLS}-cell bank: {rows} rows, {:.1} MB \
         ({:.0} bytes a row, with the indexes), written in {:.1} s; a year of its raw samples at \
         5 s would take {:.0} MB ({:.0} bytes a row)",
        year / 1e6,
        year / rows as f64,
        started.elapsed().as_secs_f64(),
        raw_year / 1e6,
        raw_day / raw_rows as f64,
    );
    Figure {
        name: &format!("cell_history.year_of_128_cells.{backend}"),
        figure: year / 1e6,
        baseline: raw_year / 1e6,
        unit: "MB",
        baseline_is: "a year of the same cells' raw samples at 5 s",
        target: Target::AtMost(0.01),
    }
    .print();
    Ok(())
}
