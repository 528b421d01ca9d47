//! Data-quality storage: the collectors' poll tallies summed per device into 5-minute buckets
//! (`poll_counts`), and what the quality answer reads beside them (the catalog's devices, their
//! newest reading, the coverage of their rolled hours).

use std::collections::HashMap;

use diesel::prelude::*;

use super::{DbConnection, DbError, schema};

/// Width of a `poll_counts` bucket.
pub const BUCKET_MS: i64 = 5 * 60 * 1000;

/// One counter of one device in one bucket; added to what is there.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = schema::poll_counts)]
pub struct PollCount {
    pub device_id: String,
    pub bucket_start: i64,
    pub counter: String,
    pub amount: i64,
}

/// Adds `counts` to the stored buckets. Call inside the batch's transaction; `counts` must name
/// each (device, bucket, counter) once (Postgres refuses to update one row twice in a statement).
/// On Postgres a few hundred rows go in one statement (one round trip); diesel has no batch
/// upsert for SQLite, where a statement costs no round trip, so there it is one per row.
pub fn add_poll_counts(conn: &mut DbConnection, counts: &[PollCount]) -> Result<(), DbError> {
    use diesel::upsert::excluded;
    use schema::poll_counts::dsl as p;
    match conn {
        DbConnection::Postgres(pg) => {
            for chunk in counts.chunks(super::samples::INSERT_BATCH_ROWS) {
                diesel::insert_into(p::poll_counts)
                    .values(chunk)
                    .on_conflict((p::device_id, p::bucket_start, p::counter))
                    .do_update()
                    .set(p::amount.eq(p::amount + excluded(p::amount)))
                    .execute(pg)?;
            }
        }
        DbConnection::Sqlite(sqlite) => {
            for count in counts {
                diesel::insert_into(p::poll_counts)
                    .values(count)
                    .on_conflict((p::device_id, p::bucket_start, p::counter))
                    .do_update()
                    .set(p::amount.eq(p::amount + excluded(p::amount)))
                    .execute(sqlite)?;
            }
        }
    }
    Ok(())
}

/// Per device: (bucket start, counter, amount).
pub type DeviceCounts = HashMap<String, Vec<(i64, String, i64)>>;

/// Each device's counters per bucket since `since` (epoch ms): device → (bucket, counter, amount).
pub fn poll_counts_since(
    conn: &mut DbConnection,
    since: i64,
    device: Option<&str>,
) -> Result<DeviceCounts, DbError> {
    use schema::poll_counts::dsl as p;
    let rows: Vec<(String, i64, String, i64)> = match device {
        Some(device) => p::poll_counts
            .filter(p::bucket_start.ge(since))
            .filter(p::device_id.eq(device))
            .select((p::device_id, p::bucket_start, p::counter, p::amount))
            .load(conn)?,
        None => p::poll_counts
            .filter(p::bucket_start.ge(since))
            .select((p::device_id, p::bucket_start, p::counter, p::amount))
            .load(conn)?,
    };
    let mut by_device = DeviceCounts::new();
    for (device_id, bucket, counter, amount) in rows {
        by_device
            .entry(device_id)
            .or_default()
            .push((bucket, counter, amount));
    }
    Ok(by_device)
}

/// Forgets buckets older than `before` (the answer looks back one day).
pub fn prune_poll_counts(conn: &mut DbConnection, before: i64) -> Result<usize, DbError> {
    use schema::poll_counts::dsl as p;
    Ok(diesel::delete(p::poll_counts.filter(p::bucket_start.lt(before))).execute(conn)?)
}

/// A device of the catalog as the quality answer lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualityDevice {
    pub device_id: String,
    /// inverter, meter or battery_pack.
    pub device_type: &'static str,
    pub system_id: String,
}

/// Every inverter, meter and pack (of `system`, when given), ordered by id.
pub fn devices(
    conn: &mut DbConnection,
    system: Option<&str>,
) -> Result<Vec<QualityDevice>, DbError> {
    use schema::*;
    let mut out = Vec::new();
    let rows: Vec<(String, String)> = inverters::table
        .select((inverters::inverter_id, inverters::system_id))
        .load(conn)?;
    out.extend(
        rows.into_iter()
            .map(|(id, system_id)| (id, "inverter", system_id)),
    );
    let rows: Vec<(String, String)> = meters::table
        .select((meters::meter_id, meters::system_id))
        .load(conn)?;
    out.extend(
        rows.into_iter()
            .map(|(id, system_id)| (id, "meter", system_id)),
    );
    let rows: Vec<(String, String)> = battery_packs::table
        .select((battery_packs::pack_id, battery_packs::system_id))
        .load(conn)?;
    out.extend(
        rows.into_iter()
            .map(|(id, system_id)| (id, "battery_pack", system_id)),
    );
    let mut devices: Vec<QualityDevice> = out
        .into_iter()
        .filter(|(_, _, system_id)| system.is_none_or(|s| s == system_id))
        .map(|(device_id, device_type, system_id)| QualityDevice {
            device_id,
            device_type,
            system_id,
        })
        .collect();
    devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    Ok(devices)
}

/// The newest reading's time of every device that has one.
pub fn last_seen(conn: &mut DbConnection) -> Result<HashMap<String, i64>, DbError> {
    use diesel::dsl::max;
    use schema::latest_readings::dsl as l;
    let rows: Vec<(String, Option<i64>)> = l::latest_readings
        .group_by(l::device_id)
        .select((l::device_id, max(l::ts)))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(device, ts)| ts.map(|ts| (device, ts)))
        .collect())
}

/// Per device, its hour rows since `since` and their mean sample coverage (percent).
pub fn hour_coverage(
    conn: &mut DbConnection,
    since: i64,
) -> Result<HashMap<String, (u32, f64)>, DbError> {
    use schema::*;
    let mut rows: Vec<(String, f64)> = hourly_energy::table
        .filter(hourly_energy::bucket_start.ge(since))
        .select((hourly_energy::inverter_id, hourly_energy::coverage_pct))
        .load(conn)?;
    rows.extend(
        meter_hourly_energy::table
            .filter(meter_hourly_energy::bucket_start.ge(since))
            .select((
                meter_hourly_energy::meter_id,
                meter_hourly_energy::coverage_pct,
            ))
            .load::<(String, f64)>(conn)?,
    );
    rows.extend(
        battery_bank_hourly::table
            .filter(battery_bank_hourly::bucket_start.ge(since))
            .select((
                battery_bank_hourly::pack_id,
                battery_bank_hourly::coverage_pct,
            ))
            .load::<(String, f64)>(conn)?,
    );
    let mut sums: HashMap<String, (u32, f64)> = HashMap::new();
    for (device, coverage) in rows {
        let entry = sums.entry(device).or_default();
        entry.0 += 1;
        entry.1 += coverage;
    }
    Ok(sums
        .into_iter()
        .map(|(device, (hours, total))| (device, (hours, total / f64::from(hours))))
        .collect())
}
