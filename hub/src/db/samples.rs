//! Sample tables (DESIGN §3.2): one row per device per timestamp, written in batches that skip rows
//! already stored, so replaying the same samples changes nothing.

use diesel::prelude::*;

use super::{DbConnection, DbError, schema};

/// Rows per INSERT statement: well under both backends' bind-parameter limits for the widest table.
pub const INSERT_BATCH_ROWS: usize = 500;

#[derive(Debug, Clone, Default, PartialEq, Insertable, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = schema::energy_samples, treat_none_as_default_value = false)]
pub struct EnergySample {
    pub inverter_id: String,
    pub ts: i64,
    pub array_id: Option<String>,
    pub system_id: String,
    pub pv_power_w: Option<f64>,
    pub load_power_w: Option<f64>,
    pub grid_power_w: Option<f64>,
    pub battery_power_w: Option<f64>,
    pub battery_soc_pct: Option<f64>,
    pub battery_voltage_v: Option<f64>,
    pub battery_current_a: Option<f64>,
    pub inverter_mode: Option<i32>,
    pub inverter_temp_c: Option<f64>,
    pub pv_energy_today_wh: Option<f64>,
    pub pv_energy_total_wh: Option<f64>,
    pub load_energy_today_wh: Option<f64>,
    pub load_energy_total_wh: Option<f64>,
    pub grid_import_today_wh: Option<f64>,
    pub grid_import_total_wh: Option<f64>,
    pub grid_export_today_wh: Option<f64>,
    pub grid_export_total_wh: Option<f64>,
    pub battery_charge_today_wh: Option<f64>,
    pub battery_charge_total_wh: Option<f64>,
    pub battery_discharge_today_wh: Option<f64>,
    pub battery_discharge_total_wh: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Insertable, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = schema::array_samples, treat_none_as_default_value = false)]
pub struct ArraySample {
    pub array_id: String,
    pub ts: i64,
    pub system_id: String,
    pub pv_power_w: Option<f64>,
    pub load_power_w: Option<f64>,
    pub grid_power_w: Option<f64>,
    pub battery_power_w: Option<f64>,
    pub battery_soc_pct: Option<f64>,
    pub soc_source: Option<String>,
    pub battery_voltage_v: Option<f64>,
    pub battery_current_a: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Insertable, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = schema::battery_bank_samples, treat_none_as_default_value = false)]
pub struct BatteryBankSample {
    pub pack_id: String,
    pub ts: i64,
    pub battery_array_id: Option<String>,
    pub system_id: String,
    pub adapter_id: Option<String>,
    pub voltage_v: Option<f64>,
    pub current_a: Option<f64>,
    pub power_w: Option<f64>,
    pub temperature_c: Option<f64>,
    pub soc_pct: Option<f64>,
    pub soh_pct: Option<f64>,
    pub batteries_count: Option<i32>,
    pub cells_per_battery: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Insertable, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = schema::battery_unit_samples, treat_none_as_default_value = false)]
pub struct BatteryUnitSample {
    pub battery_id: String,
    pub ts: i64,
    pub pack_id: String,
    pub battery_array_id: Option<String>,
    pub system_id: String,
    pub adapter_id: Option<String>,
    pub voltage_v: Option<f64>,
    pub current_a: Option<f64>,
    pub temperature_c: Option<f64>,
    pub soc_pct: Option<f64>,
    pub soh_pct: Option<f64>,
    pub basic_st: Option<String>,
    pub volt_st: Option<String>,
    pub current_st: Option<String>,
    pub temp_st: Option<String>,
    pub soh_st: Option<String>,
    pub coul_st: Option<String>,
    pub heater_st: Option<String>,
    pub bat_events: Option<i64>,
    pub power_events: Option<i64>,
    pub sys_events: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Insertable, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = schema::battery_cell_samples, treat_none_as_default_value = false)]
pub struct BatteryCellSample {
    pub cell_id: String,
    pub ts: i64,
    pub battery_id: String,
    pub pack_id: String,
    pub battery_array_id: Option<String>,
    pub system_id: String,
    pub adapter_id: Option<String>,
    pub voltage_v: Option<f64>,
    pub temperature_c: Option<f64>,
    pub soc_pct: Option<f64>,
    pub volt_st: Option<String>,
    pub temp_st: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Insertable, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = schema::meter_samples, treat_none_as_default_value = false)]
pub struct MeterSample {
    pub meter_id: String,
    pub ts: i64,
    pub system_id: String,
    pub array_id: Option<String>,
    pub power_w: Option<f64>,
    pub voltage_v: Option<f64>,
    pub current_a: Option<f64>,
    pub frequency_hz: Option<f64>,
    pub power_factor: Option<f64>,
    pub import_total_wh: Option<f64>,
    pub export_total_wh: Option<f64>,
    pub energy_total_kwh: Option<f64>,
    pub l1_voltage_v: Option<f64>,
    pub l2_voltage_v: Option<f64>,
    pub l3_voltage_v: Option<f64>,
    pub l1_current_a: Option<f64>,
    pub l2_current_a: Option<f64>,
    pub l3_current_a: Option<f64>,
    pub l1_power_w: Option<f64>,
    pub l2_power_w: Option<f64>,
    pub l3_power_w: Option<f64>,
}

/// What every sample table has: a device, a time, and writes that skip stored keys.
pub trait SampleRow: Sized + PartialEq + serde::Serialize {
    /// The table's name.
    const TABLE: &'static str;
    fn device_id(&self) -> &str;
    fn ts(&self) -> i64;
    /// The group retention deletes the row's table by: its system, or for battery units and
    /// cells its pack.
    fn retention_group(&self) -> &str;
    /// Inserts `rows`, skipping any whose (device, ts) is already stored. Returns how many were new.
    fn insert_new(conn: &mut DbConnection, rows: &[Self]) -> Result<usize, DbError>;
    /// Every stored row, in (device, ts) order (for checks and exports).
    fn all(conn: &mut DbConnection) -> Result<Vec<Self>, DbError>;
    /// The stored rows of `devices` with ts in [from, to].
    fn stored(
        conn: &mut DbConnection,
        devices: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<Self>, DbError>;
}

/// Postgres: rows that are all new go in by binary `COPY` (parsing and planning a 500-row
/// `INSERT` cost more than the rows, ingest bench); `COPY` knows no `ON CONFLICT`, so it runs in a
/// savepoint, and when some row is already stored the savepoint is rolled back and the rows are
/// inserted skipping those. Evaluates to the number of rows written.
macro_rules! copy_or_insert {
    ($pg:expr, $table:ident, $batch:expr) => {{
        use diesel::Connection as _;
        let copied = $pg.transaction(|pg| {
            diesel::copy_from(schema::$table::table)
                .from_insertable($batch)
                .execute(pg)
        });
        match copied {
            Ok(copied) => copied,
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => diesel::insert_into(schema::$table::table)
                .values($batch)
                .on_conflict_do_nothing()
                .execute($pg)?,
            Err(error) => return Err(error.into()),
        }
    }};
}

macro_rules! sample_row {
    ($row:ty, $table:ident, $device:ident, $group:ident, $insert:ident) => {
        /// Inserts `rows`, skipping any whose (device, ts) is already stored. Returns how many were new.
        pub fn $insert(conn: &mut DbConnection, rows: &[$row]) -> Result<usize, DbError> {
            let mut inserted = 0;
            for batch in rows.chunks(INSERT_BATCH_ROWS) {
                // `MultiBackend` has no ON CONFLICT clause, so the statement is built per backend.
                inserted += match conn {
                    DbConnection::Postgres(pg) => copy_or_insert!(pg, $table, batch),
                    // One prepared single-row statement, reused from diesel's cache, where a
                    // multi-row statement is parsed anew for every batch.
                    DbConnection::Sqlite(sqlite) => {
                        let mut inserted = 0;
                        for row in batch {
                            inserted += diesel::insert_into(schema::$table::table)
                                .values(row)
                                .on_conflict_do_nothing()
                                .execute(sqlite)?;
                        }
                        inserted
                    }
                };
            }
            Ok(inserted)
        }

        impl SampleRow for $row {
            const TABLE: &'static str = stringify!($table);
            fn device_id(&self) -> &str {
                &self.$device
            }
            fn ts(&self) -> i64 {
                self.ts
            }
            fn retention_group(&self) -> &str {
                &self.$group
            }
            fn insert_new(conn: &mut DbConnection, rows: &[Self]) -> Result<usize, DbError> {
                $insert(conn, rows)
            }
            fn all(conn: &mut DbConnection) -> Result<Vec<Self>, DbError> {
                use schema::$table::dsl as t;
                Ok(t::$table
                    .order((t::$device, t::ts))
                    .select(<$row>::as_select())
                    .load(conn)?)
            }
            fn stored(
                conn: &mut DbConnection,
                devices: &[String],
                from: i64,
                to: i64,
            ) -> Result<Vec<Self>, DbError> {
                use schema::$table::dsl as t;
                Ok(t::$table
                    .filter(t::$device.eq_any(devices))
                    .filter(t::ts.ge(from).and(t::ts.le(to)))
                    .select(<$row>::as_select())
                    .load(conn)?)
            }
        }
    };
}

sample_row!(
    EnergySample,
    energy_samples,
    inverter_id,
    system_id,
    insert_energy_samples
);
sample_row!(
    ArraySample,
    array_samples,
    array_id,
    system_id,
    insert_array_samples
);
sample_row!(
    BatteryBankSample,
    battery_bank_samples,
    pack_id,
    system_id,
    insert_battery_bank_samples
);
sample_row!(
    BatteryUnitSample,
    battery_unit_samples,
    battery_id,
    pack_id,
    insert_battery_unit_samples
);
sample_row!(
    BatteryCellSample,
    battery_cell_samples,
    cell_id,
    pack_id,
    insert_battery_cell_samples
);
sample_row!(
    MeterSample,
    meter_samples,
    meter_id,
    system_id,
    insert_meter_samples
);

/// The ingest bench's baseline: `rows` written as plainly as each backend allows, in one
/// transaction, without the hub and without skipping stored rows — one binary `COPY` on Postgres,
/// one prepared single-row `INSERT` after another on SQLite. Not used by the hub.
pub fn write_energy_samples_plainly(
    conn: &mut DbConnection,
    rows: &[EnergySample],
) -> Result<usize, DbError> {
    use diesel::Connection as _;
    Ok(match conn {
        DbConnection::Postgres(pg) => pg.transaction(|pg| {
            diesel::copy_from(schema::energy_samples::table)
                .from_insertable(rows)
                .execute(pg)
        })?,
        DbConnection::Sqlite(sqlite) => sqlite.transaction(|sqlite| {
            let mut written = 0;
            for row in rows {
                written += diesel::insert_into(schema::energy_samples::table)
                    .values(row)
                    .execute(sqlite)?;
            }
            diesel::QueryResult::Ok(written)
        })?,
    })
}
