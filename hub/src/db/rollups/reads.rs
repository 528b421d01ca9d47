//! The samples a roll reads: a device's samples and their span, the edges and neighbours of a
//! window, the keys already stored, and the lock that keeps retention out of a system being rolled.

use super::*;

/// The samples of a system's devices in [from, to), each kind in (device, ts) order.
pub fn load_samples(
    conn: &mut DbConnection,
    system_id: &str,
    from: i64,
    to: i64,
) -> Result<SystemSamples, DbError> {
    let mut samples = SystemSamples::default();
    each_sample(conn, system_id, from, to, |sample| match sample {
        SystemSample::Energy(s) => samples.0.push(s),
        SystemSample::Bank(s) => samples.1.push(s),
        SystemSample::Meter(s) => samples.2.push(s),
    })?;
    Ok(samples)
}

/// One raw sample of a system, as [`each_sample`] hands them over.
pub enum SystemSample {
    Energy(EnergySample),
    Bank(BatteryBankSample),
    Meter(MeterSample),
}

impl SystemSample {
    /// The device the sample is of.
    pub fn device(&self) -> &str {
        match self {
            SystemSample::Energy(s) => &s.inverter_id,
            SystemSample::Bank(s) => &s.pack_id,
            SystemSample::Meter(s) => &s.meter_id,
        }
    }

    pub fn ts(&self) -> i64 {
        match self {
            SystemSample::Energy(s) => s.ts,
            SystemSample::Bank(s) => s.ts,
            SystemSample::Meter(s) => s.ts,
        }
    }
}

/// The samples of a system's devices in [from, to), handed to `each` one at a time as they are
/// read (the inverters', then the packs', then the meters', each kind in (device, ts) order): a
/// caller that folds them as they come holds one sample, not the pass's (at 1,000 devices a
/// roller pass held 2,500 rows three times over: as rows, as samples by device and as aggregate
/// inputs; BENCHMARKS.md, issue 24).
pub fn each_sample(
    conn: &mut DbConnection,
    system_id: &str,
    from: i64,
    to: i64,
    mut each: impl FnMut(SystemSample),
) -> Result<(), DbError> {
    use diesel::connection::DefaultLoadingMode;
    use schema::battery_bank_samples::dsl as b;
    use schema::energy_samples::dsl as e;
    use schema::meter_samples::dsl as m;
    macro_rules! visit {
        // The query is made in each arm: its selection is typed by the backend.
        ($query:expr, $row:ty, $variant:ident) => {{
            match &mut *conn {
                DbConnection::Postgres(pg) => {
                    for row in $query.load_iter::<$row, DefaultLoadingMode>(pg)? {
                        each(SystemSample::$variant(row?));
                    }
                }
                DbConnection::Sqlite(sqlite) => {
                    for row in $query.load_iter::<$row, DefaultLoadingMode>(sqlite)? {
                        each(SystemSample::$variant(row?));
                    }
                }
            }
        }};
    }
    visit!(
        e::energy_samples
            .filter(e::system_id.eq(system_id))
            .filter(e::ts.ge(from).and(e::ts.lt(to)))
            .order((e::inverter_id, e::ts))
            .select(EnergySample::as_select()),
        EnergySample,
        Energy
    );
    visit!(
        b::battery_bank_samples
            .filter(b::system_id.eq(system_id))
            .filter(b::ts.ge(from).and(b::ts.lt(to)))
            .order((b::pack_id, b::ts))
            .select(BatteryBankSample::as_select()),
        BatteryBankSample,
        Bank
    );
    visit!(
        m::meter_samples
            .filter(m::system_id.eq(system_id))
            .filter(m::ts.ge(from).and(m::ts.lt(to)))
            .order((m::meter_id, m::ts))
            .select(MeterSample::as_select()),
        MeterSample,
        Meter
    );
    Ok(())
}

/// The first and last sample time of a system, if it has samples.
pub fn sample_span(
    conn: &mut DbConnection,
    system_id: &str,
) -> Result<Option<(i64, i64)>, DbError> {
    use diesel::dsl::{max, min};
    use schema::battery_bank_samples::dsl as b;
    use schema::energy_samples::dsl as e;
    use schema::meter_samples::dsl as m;
    let spans: [(Option<i64>, Option<i64>); 3] = [
        e::energy_samples
            .filter(e::system_id.eq(system_id))
            .select((min(e::ts), max(e::ts)))
            .first(conn)?,
        b::battery_bank_samples
            .filter(b::system_id.eq(system_id))
            .select((min(b::ts), max(b::ts)))
            .first(conn)?,
        m::meter_samples
            .filter(m::system_id.eq(system_id))
            .select((min(m::ts), max(m::ts)))
            .first(conn)?,
    ];
    let first = spans.iter().filter_map(|s| s.0).min();
    let last = spans.iter().filter_map(|s| s.1).max();
    Ok(first.zip(last))
}

/// The samples just outside [from, to): for each device in `before`, its last sample in
/// [from - reach, from); for each in `after`, its first in [to, to + reach). With the samples
/// inside the window they make every interval that overlaps it.
pub fn edge_samples(
    conn: &mut DbConnection,
    before: DeviceIds<'_>,
    after: DeviceIds<'_>,
    from: i64,
    to: i64,
    reach: i64,
) -> Result<SystemSamples, DbError> {
    macro_rules! edges {
        ($table:ident, $row:ident, $key:ident, $before:expr, $after:expr) => {{
            use schema::$table::dsl as t;
            let mut rows = Vec::new();
            for id in $before {
                rows.extend(
                    t::$table
                        .filter(t::$key.eq(id))
                        .filter(t::ts.lt(from).and(t::ts.ge(from.saturating_sub(reach))))
                        .order(t::ts.desc())
                        .select($row::as_select())
                        .first(conn)
                        .optional()?,
                );
            }
            for id in $after {
                rows.extend(
                    t::$table
                        .filter(t::$key.eq(id))
                        .filter(t::ts.ge(to).and(t::ts.lt(to.saturating_add(reach))))
                        .order(t::ts)
                        .select($row::as_select())
                        .first(conn)
                        .optional()?,
                );
            }
            rows
        }};
    }
    Ok((
        edges!(energy_samples, EnergySample, inverter_id, before.0, after.0),
        edges!(
            battery_bank_samples,
            BatteryBankSample,
            pack_id,
            before.1,
            after.1
        ),
        edges!(meter_samples, MeterSample, meter_id, before.2, after.2),
    ))
}

/// Which sample table a device's samples are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceKind {
    Inverter,
    Pack,
    Meter,
}

/// The sample times of `device_id` nearest to [from, to] from outside: the last before `from` and
/// the first after `to`, each within `reach`.
pub fn neighbour_times(
    conn: &mut DbConnection,
    kind: DeviceKind,
    device_id: &str,
    from: i64,
    to: i64,
    reach: i64,
) -> Result<(Option<i64>, Option<i64>), DbError> {
    use diesel::dsl::{max, min};
    macro_rules! nearest {
        ($table:ident, $key:ident) => {{
            use schema::$table::dsl as t;
            let before: Option<i64> = t::$table
                .filter(t::$key.eq(device_id))
                .filter(t::ts.lt(from).and(t::ts.ge(from.saturating_sub(reach))))
                .select(max(t::ts))
                .first(conn)?;
            let after: Option<i64> = t::$table
                .filter(t::$key.eq(device_id))
                .filter(t::ts.gt(to).and(t::ts.le(to.saturating_add(reach))))
                .select(min(t::ts))
                .first(conn)?;
            (before, after)
        }};
    }
    Ok(match kind {
        DeviceKind::Inverter => nearest!(energy_samples, inverter_id),
        DeviceKind::Pack => nearest!(battery_bank_samples, pack_id),
        DeviceKind::Meter => nearest!(meter_samples, meter_id),
    })
}

/// One device's samples in [from, to), in time order, with the last one before `from` and the
/// first at or after `to` when they are within `reach` (the samples every interval that reaches
/// [from, to) is made of), each kind in its own vector.
pub fn device_samples(
    conn: &mut DbConnection,
    kind: DeviceKind,
    device_id: &str,
    from: i64,
    to: i64,
    reach: i64,
) -> Result<SystemSamples, DbError> {
    macro_rules! around {
        ($table:ident, $row:ident, $key:ident) => {{
            use schema::$table::dsl as t;
            let mut rows: Vec<$row> = t::$table
                .filter(t::$key.eq(device_id))
                .filter(t::ts.lt(from).and(t::ts.ge(from.saturating_sub(reach))))
                .order(t::ts.desc())
                .select($row::as_select())
                .first(conn)
                .optional()?
                .into_iter()
                .collect();
            rows.extend(
                t::$table
                    .filter(t::$key.eq(device_id))
                    .filter(t::ts.ge(from).and(t::ts.lt(to)))
                    .order(t::ts)
                    .select($row::as_select())
                    .load(conn)?,
            );
            rows.extend(
                t::$table
                    .filter(t::$key.eq(device_id))
                    .filter(t::ts.ge(to).and(t::ts.lt(to.saturating_add(reach))))
                    .order(t::ts)
                    .select($row::as_select())
                    .first(conn)
                    .optional()?,
            );
            rows
        }};
    }
    let mut samples = SystemSamples::default();
    match kind {
        DeviceKind::Inverter => samples.0 = around!(energy_samples, EnergySample, inverter_id),
        DeviceKind::Pack => samples.1 = around!(battery_bank_samples, BatteryBankSample, pack_id),
        DeviceKind::Meter => samples.2 = around!(meter_samples, MeterSample, meter_id),
    }
    Ok(samples)
}

/// The oldest and newest sample of `device_id` in [from, to].
pub fn device_span(
    conn: &mut DbConnection,
    kind: DeviceKind,
    device_id: &str,
    from: i64,
    to: i64,
) -> Result<Option<(i64, i64)>, DbError> {
    use diesel::dsl::{max, min};
    macro_rules! span {
        ($table:ident, $key:ident) => {{
            use schema::$table::dsl as t;
            t::$table
                .filter(t::$key.eq(device_id))
                .filter(t::ts.ge(from).and(t::ts.le(to)))
                .select((min(t::ts), max(t::ts)))
                .first::<(Option<i64>, Option<i64>)>(conn)?
        }};
    }
    let (oldest, newest) = match kind {
        DeviceKind::Inverter => span!(energy_samples, inverter_id),
        DeviceKind::Pack => span!(battery_bank_samples, pack_id),
        DeviceKind::Meter => span!(meter_samples, meter_id),
    };
    Ok(oldest.zip(newest))
}

/// The time of `device_id`'s newest sample.
pub fn newest_sample(
    conn: &mut DbConnection,
    kind: DeviceKind,
    device_id: &str,
) -> Result<Option<i64>, DbError> {
    use diesel::dsl::max;
    macro_rules! newest {
        ($table:ident, $key:ident) => {{
            use schema::$table::dsl as t;
            t::$table
                .filter(t::$key.eq(device_id))
                .select(max(t::ts))
                .first(conn)?
        }};
    }
    Ok(match kind {
        DeviceKind::Inverter => newest!(energy_samples, inverter_id),
        DeviceKind::Pack => newest!(battery_bank_samples, pack_id),
        DeviceKind::Meter => newest!(meter_samples, meter_id),
    })
}

/// The samples of the devices `ids` (all of `kind`) in [from, to), handed to `each` one at a
/// time in (device, ts) order: what [`device_samples`] reads for one device, for many in one
/// query (a roller start rebuilds every device).
pub fn each_sample_of_devices(
    conn: &mut DbConnection,
    kind: DeviceKind,
    ids: &[&str],
    from: i64,
    to: i64,
    mut each: impl FnMut(SystemSample),
) -> Result<(), DbError> {
    use diesel::connection::DefaultLoadingMode;
    macro_rules! visit {
        ($table:ident, $key:ident, $row:ty, $variant:ident) => {{
            use schema::$table::dsl as t;
            // The query is made in each arm: its selection is typed by the backend.
            let query = || {
                t::$table
                    .filter(t::$key.eq_any(ids))
                    .filter(t::ts.ge(from).and(t::ts.lt(to)))
                    .order((t::$key, t::ts))
            };
            match &mut *conn {
                DbConnection::Postgres(pg) => {
                    let query = query().select(<$row>::as_select());
                    for row in query.load_iter::<$row, DefaultLoadingMode>(pg)? {
                        each(SystemSample::$variant(row?));
                    }
                }
                DbConnection::Sqlite(sqlite) => {
                    let query = query().select(<$row>::as_select());
                    for row in query.load_iter::<$row, DefaultLoadingMode>(sqlite)? {
                        each(SystemSample::$variant(row?));
                    }
                }
            }
        }};
    }
    match kind {
        DeviceKind::Inverter => visit!(energy_samples, inverter_id, EnergySample, Energy),
        DeviceKind::Pack => visit!(battery_bank_samples, pack_id, BatteryBankSample, Bank),
        DeviceKind::Meter => visit!(meter_samples, meter_id, MeterSample, Meter),
    }
    Ok(())
}

/// Which devices of `kind` in `system_id` (as the catalog has them) have a sample in [from, to):
/// one query, a lookup of each device's own samples inside it.
pub fn devices_with_samples_in(
    conn: &mut DbConnection,
    system_id: &str,
    kind: DeviceKind,
    from: i64,
    to: i64,
) -> Result<Vec<String>, DbError> {
    use diesel::dsl::exists;
    macro_rules! devices {
        ($devices:ident, $table:ident, $key:ident) => {{
            use schema::$devices::dsl as d;
            use schema::$table::dsl as t;
            d::$devices
                .filter(d::system_id.eq(system_id))
                .filter(exists(
                    t::$table
                        .filter(t::$key.eq(d::$key))
                        .filter(t::ts.ge(from).and(t::ts.lt(to))),
                ))
                .select(d::$key)
                .load::<String>(conn)?
        }};
    }
    Ok(match kind {
        DeviceKind::Inverter => devices!(inverters, energy_samples, inverter_id),
        DeviceKind::Pack => devices!(battery_packs, battery_bank_samples, pack_id),
        DeviceKind::Meter => devices!(meters, meter_samples, meter_id),
    })
}

/// Makes rolls of one system take turns across hubs sharing a Postgres database, until the
/// transaction ends (two hubs replacing the same rows at once would collide on their keys). SQLite
/// serializes writers by itself. Call inside the roll's transaction.
pub fn lock_system_for_roll(conn: &mut DbConnection, system_id: &str) -> Result<(), DbError> {
    if let DbConnection::Postgres(pg) = conn {
        // FNV-1a of the id, in a key space of its own next to the migration lock.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in format!("rollup:{system_id}").bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({})", hash as i64)).execute(pg)?;
    }
    Ok(())
}

/// The quarter hours (`ts / 900 000`) in which `device_id` has samples, in order: enough to tell
/// whether any local hour (local offsets are whole quarter hours) has samples.
pub fn sample_quarters(
    conn: &mut DbConnection,
    kind: DeviceKind,
    device_id: &str,
) -> Result<Vec<i64>, DbError> {
    const QUARTER_MS: i64 = 900_000;
    macro_rules! quarters {
        ($table:ident, $key:ident) => {{
            use schema::$table::dsl as t;
            t::$table
                .filter(t::$key.eq(device_id))
                .select(t::ts / QUARTER_MS)
                .distinct()
                .load::<i64>(conn)?
        }};
    }
    let mut quarters = match kind {
        DeviceKind::Inverter => quarters!(energy_samples, inverter_id),
        DeviceKind::Pack => quarters!(battery_bank_samples, pack_id),
        DeviceKind::Meter => quarters!(meter_samples, meter_id),
    };
    quarters.sort_unstable();
    Ok(quarters)
}

/// The keys of a system's stored rollup rows: (table, device, bucket start).
pub fn stored_keys(
    conn: &mut DbConnection,
    system_id: &str,
) -> Result<std::collections::HashSet<(&'static str, String, i64)>, DbError> {
    let mut keys = std::collections::HashSet::new();
    macro_rules! keys {
        ($field:ident, $row:ident, $table:ident, $key:ident) => {
            use schema::$table::dsl as $table;
            let rows: Vec<(String, i64)> = $table::$table
                .filter($table::system_id.eq(system_id))
                .select(($table::$key, $table::bucket_start))
                .load(conn)?;
            keys.extend(
                rows.into_iter()
                    .map(|(id, start)| (stringify!($table), id, start)),
            );
        };
    }
    per_table!(keys);
    Ok(keys)
}
