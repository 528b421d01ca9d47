//! Live storage: the newest reading of each device from each adapter (`latest_readings`, kept by
//! ingest inside the batch's transaction), reading those samples back, and the array samples the
//! hub derives from them at a fixed cadence.

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::samples::MeterSample;
use super::samples::{BatteryBankSample, BatteryCellSample, BatteryUnitSample, EnergySample};
use super::{DbConnection, DbError, schema};

/// The newest reading of one device from one adapter.
#[derive(Debug, Clone, PartialEq, Eq, Insertable, Queryable, Selectable)]
#[diesel(table_name = schema::latest_readings)]
pub struct LatestReading {
    pub device_id: String,
    pub adapter_id: String,
    /// inverter, meter or battery_pack.
    pub device_type: String,
    pub system_id: String,
    pub ts: i64,
    pub committed_at: i64,
}

/// Records `rows` as the newest readings, except where a newer one is already recorded (a late
/// sample does not move "now" back). Call inside the batch's transaction.
pub fn record_latest(conn: &mut DbConnection, rows: &mut [LatestReading]) -> Result<(), DbError> {
    use schema::latest_readings::dsl as l;
    // One order for every writer, so two transactions never wait on each other's rows in a cycle.
    rows.sort_by(|a, b| (&a.device_id, &a.adapter_id).cmp(&(&b.device_id, &b.adapter_id)));
    for chunk in rows.chunks(super::samples::INSERT_BATCH_ROWS) {
        let newer = l::ts.lt(excluded(l::ts));
        let changes = (
            l::ts.eq(excluded(l::ts)),
            l::committed_at.eq(excluded(l::committed_at)),
            l::system_id.eq(excluded(l::system_id)),
        );
        // `MultiBackend` has no ON CONFLICT clause, so the statement is built per backend.
        match conn {
            DbConnection::Postgres(pg) => diesel::query_dsl::methods::FilterDsl::filter(
                diesel::insert_into(l::latest_readings)
                    .values(chunk)
                    .on_conflict((l::device_id, l::adapter_id))
                    .do_update()
                    .set(changes),
                newer,
            )
            .execute(pg)?,
            // SQLite has no multi-row upsert in diesel: one statement per row.
            DbConnection::Sqlite(sqlite) => {
                for row in chunk {
                    diesel::query_dsl::methods::FilterDsl::filter(
                        diesel::insert_into(l::latest_readings)
                            .values(row)
                            .on_conflict((l::device_id, l::adapter_id))
                            .do_update()
                            .set(changes),
                        newer,
                    )
                    .execute(sqlite)?;
                }
                chunk.len()
            }
        };
    }
    Ok(())
}

/// The newest readings of every device of `system_id`.
pub fn latest_of_system(
    conn: &mut DbConnection,
    system_id: &str,
) -> Result<Vec<LatestReading>, DbError> {
    use schema::latest_readings::dsl as l;
    Ok(l::latest_readings
        .filter(l::system_id.eq(system_id))
        .select(LatestReading::as_select())
        .load(conn)?)
}

/// Changes whenever a newer reading of a device of `system_id` is committed, by any hub.
pub fn system_fingerprint(
    conn: &mut DbConnection,
    system_id: &str,
) -> Result<(i64, Option<i64>, Option<i64>), DbError> {
    use diesel::dsl::{count_star, max};
    use schema::latest_readings::dsl as l;
    Ok(l::latest_readings
        .filter(l::system_id.eq(system_id))
        .select((count_star(), max(l::ts), max(l::committed_at)))
        .first(conn)?)
}

/// The rows of a sample table with these (device, ts) keys, in one query.
macro_rules! samples_at {
    ($name:ident, $row:ty, $table:ident, $key:ident, $what:literal) => {
        #[doc = concat!("The ", $what, " samples with these (device, ts) keys.")]
        pub fn $name(
            conn: &mut DbConnection,
            keys: &[(String, i64)],
        ) -> Result<Vec<$row>, DbError> {
            use schema::$table::dsl as t;
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let ids: Vec<&str> = keys.iter().map(|(id, _)| id.as_str()).collect();
            let times: Vec<i64> = keys.iter().map(|(_, ts)| *ts).collect();
            let wanted: std::collections::HashSet<(&str, i64)> =
                keys.iter().map(|(id, ts)| (id.as_str(), *ts)).collect();
            // Devices and times matched separately, then the exact pairs kept.
            let rows: Vec<$row> = t::$table
                .filter(t::$key.eq_any(&ids))
                .filter(t::ts.eq_any(&times))
                .select(<$row>::as_select())
                .load(conn)?;
            Ok(rows
                .into_iter()
                .filter(|row| wanted.contains(&(row.$key.as_str(), row.ts)))
                .collect())
        }
    };
}

samples_at!(
    energy_samples_at,
    EnergySample,
    energy_samples,
    inverter_id,
    "energy"
);
samples_at!(
    meter_samples_at,
    MeterSample,
    meter_samples,
    meter_id,
    "meter"
);
samples_at!(
    bank_samples_at,
    BatteryBankSample,
    battery_bank_samples,
    pack_id,
    "pack"
);

/// The battery and cell samples of `pack_id` taken at `ts` (one poll of the pack).
pub fn pack_detail_at(
    conn: &mut DbConnection,
    pack_id: &str,
    ts: i64,
) -> Result<(Vec<BatteryUnitSample>, Vec<BatteryCellSample>), DbError> {
    use schema::battery_cell_samples::dsl as c;
    use schema::battery_unit_samples::dsl as u;
    let units = u::battery_unit_samples
        .filter(u::pack_id.eq(pack_id).and(u::ts.eq(ts)))
        .select(BatteryUnitSample::as_select())
        .order(u::battery_id)
        .load(conn)?;
    let cells = c::battery_cell_samples
        .filter(c::pack_id.eq(pack_id).and(c::ts.eq(ts)))
        .select(BatteryCellSample::as_select())
        .order(c::cell_id)
        .load(conn)?;
    Ok((units, cells))
}

/// A meter's (import, export) energy counters, Wh.
pub type Counters = (Option<f64>, Option<f64>);

/// The first (import, export) counter reading of `meter_id` at or after `since`.
pub fn meter_counters_since(
    conn: &mut DbConnection,
    meter_id: &str,
    since: i64,
) -> Result<Option<Counters>, DbError> {
    use schema::meter_samples::dsl as m;
    Ok(m::meter_samples
        .filter(m::meter_id.eq(meter_id).and(m::ts.ge(since)))
        .filter(m::import_total_wh.is_not_null())
        .order(m::ts)
        .select((m::import_total_wh, m::export_total_wh))
        .first(conn)
        .optional()?)
}

/// The first grid import counter of `inverter_id` at or after `since`.
pub fn inverter_import_since(
    conn: &mut DbConnection,
    inverter_id: &str,
    since: i64,
) -> Result<Option<f64>, DbError> {
    use schema::energy_samples::dsl as e;
    Ok(e::energy_samples
        .filter(e::inverter_id.eq(inverter_id).and(e::ts.ge(since)))
        .filter(e::grid_import_total_wh.is_not_null())
        .order(e::ts)
        .select(e::grid_import_total_wh)
        .first::<Option<f64>>(conn)
        .optional()?
        .flatten())
}

/// Every system id.
pub fn system_ids(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    use schema::systems::dsl as s;
    Ok(s::systems
        .select(s::system_id)
        .order(s::system_id)
        .load(conn)?)
}

/// Records, for every device with samples, its newest sample as its latest reading (where no newer
/// one is recorded): after a legacy copy, "now" shows each device's last legacy reading as stale
/// with its time, rather than "never reported". Inverter and meter samples carry no adapter; they
/// are recorded under the device's adapter (or "").
pub fn latest_from_samples(conn: &mut DbConnection) -> Result<(), DbError> {
    use diesel::RunQueryDsl;
    let now = super::now_ms();
    // `WHERE true` keeps SQLite from reading ON CONFLICT as a join constraint.
    let upsert = "ON CONFLICT (device_id, adapter_id) DO UPDATE SET ts = excluded.ts, \
                  committed_at = excluded.committed_at WHERE latest_readings.ts < excluded.ts";
    let statements = [
        format!(
            "INSERT INTO latest_readings (device_id, adapter_id, device_type, system_id, ts, committed_at) \
             SELECT e.inverter_id, COALESCE(i.adapter_id, ''), 'inverter', i.system_id, MAX(e.ts), {now} \
             FROM energy_samples e JOIN inverters i ON i.inverter_id = e.inverter_id WHERE true \
             GROUP BY e.inverter_id, i.adapter_id, i.system_id {upsert}"
        ),
        format!(
            "INSERT INTO latest_readings (device_id, adapter_id, device_type, system_id, ts, committed_at) \
             SELECT s.meter_id, COALESCE(m.adapter_id, ''), 'meter', m.system_id, MAX(s.ts), {now} \
             FROM meter_samples s JOIN meters m ON m.meter_id = s.meter_id WHERE true \
             GROUP BY s.meter_id, m.adapter_id, m.system_id {upsert}"
        ),
        format!(
            "INSERT INTO latest_readings (device_id, adapter_id, device_type, system_id, ts, committed_at) \
             SELECT b.pack_id, COALESCE(b.adapter_id, ''), 'battery_pack', p.system_id, MAX(b.ts), {now} \
             FROM battery_bank_samples b JOIN battery_packs p ON p.pack_id = b.pack_id WHERE true \
             GROUP BY b.pack_id, COALESCE(b.adapter_id, ''), p.system_id {upsert}"
        ),
    ];
    for statement in statements {
        diesel::sql_query(statement).execute(conn)?;
    }
    Ok(())
}
