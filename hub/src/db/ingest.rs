//! Ingest storage: which devices exist and who may write them (the device directory), and writing
//! one telemetry batch exactly once — samples and the collector's last committed seq in one
//! transaction.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use super::live::{self, LatestReading};
use super::samples::{
    self, BatteryBankSample, BatteryCellSample, BatteryUnitSample, EnergySample, MeterSample,
};
use super::{DbConnection, DbError, now_ms, schema};

/// Where a device's samples go, with the ids above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEntry {
    Inverter {
        array_id: String,
        system_id: String,
    },
    Meter {
        array_id: Option<String>,
        system_id: String,
    },
    Pack {
        battery_array_id: Option<String>,
        system_id: String,
    },
}

impl DeviceEntry {
    /// The system the device belongs to.
    pub fn system_id(&self) -> &str {
        match self {
            DeviceEntry::Inverter { system_id, .. }
            | DeviceEntry::Meter { system_id, .. }
            | DeviceEntry::Pack { system_id, .. } => system_id,
        }
    }
}

/// The catalog as ingest needs it, loaded in a fixed number of queries.
#[derive(Debug, Clone, Default)]
pub struct DeviceDirectory {
    pub devices: HashMap<String, DeviceEntry>,
    /// Device ids each collector may write: those of its assigned adapters.
    pub assigned: HashMap<String, HashSet<String>>,
    /// Every enabled adapter: the device it reads and the collector it is assigned to.
    pub adapters: HashMap<String, (String, Option<String>)>,
    /// Per collector, its own adapter of each device (the first by id when it runs several):
    /// what a reading with an empty `adapter_id` is stored under.
    pub own_adapter: HashMap<String, HashMap<String, String>>,
    pub batteries: HashSet<String>,
    pub cells: HashSet<String>,
}

pub fn load_directory(conn: &mut DbConnection) -> Result<DeviceDirectory, DbError> {
    use schema::*;
    let mut directory = DeviceDirectory::default();
    let rows: Vec<(String, String, String)> = inverters::table
        .select((
            inverters::inverter_id,
            inverters::array_id,
            inverters::system_id,
        ))
        .load(conn)?;
    for (id, array_id, system_id) in rows {
        directory.devices.insert(
            id,
            DeviceEntry::Inverter {
                array_id,
                system_id,
            },
        );
    }
    let rows: Vec<(String, Option<String>, String)> = meters::table
        .select((meters::meter_id, meters::array_id, meters::system_id))
        .load(conn)?;
    for (id, array_id, system_id) in rows {
        directory.devices.insert(
            id,
            DeviceEntry::Meter {
                array_id,
                system_id,
            },
        );
    }
    let rows: Vec<(String, Option<String>, String)> = battery_packs::table
        .select((
            battery_packs::pack_id,
            battery_packs::battery_array_id,
            battery_packs::system_id,
        ))
        .load(conn)?;
    for (id, battery_array_id, system_id) in rows {
        directory.devices.insert(
            id,
            DeviceEntry::Pack {
                battery_array_id,
                system_id,
            },
        );
    }
    let rows: Vec<(String, Option<String>, Option<String>)> = adapters::table
        .filter(adapters::enabled.eq(true))
        .select((
            adapters::adapter_id,
            adapters::collector_id,
            adapters::device_id,
        ))
        .load(conn)?;
    for (adapter, collector, device) in rows {
        if let (Some(collector), Some(device)) = (&collector, &device) {
            directory
                .assigned
                .entry(collector.clone())
                .or_default()
                .insert(device.clone());
            directory
                .own_adapter
                .entry(collector.clone())
                .or_default()
                .entry(device.clone())
                .and_modify(|own| {
                    if adapter < *own {
                        own.clone_from(&adapter);
                    }
                })
                .or_insert_with(|| adapter.clone());
        }
        if let Some(device) = device {
            directory.adapters.insert(adapter, (device, collector));
        }
    }
    directory.batteries = batteries::table
        .select(batteries::battery_id)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    directory.cells = battery_cells::table
        .select(battery_cells::cell_id)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    Ok(directory)
}

/// The rows one batch writes.
#[derive(Debug, Default)]
pub struct BatchRows {
    pub energy: Vec<EnergySample>,
    pub meters: Vec<MeterSample>,
    pub banks: Vec<BatteryBankSample>,
    pub units: Vec<BatteryUnitSample>,
    pub cells: Vec<BatteryCellSample>,
    /// The newest reading of each (device, adapter) in the batch (`committed_at` is set on commit).
    pub latest: Vec<LatestReading>,
    /// The time range of each device's readings, for the roller.
    pub pending: Vec<super::rollups::Pending>,
    /// The batch's poll tallies, as counts to add (data quality).
    pub polls: Vec<super::quality::PollCount>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitResult {
    /// The seq had been committed before: its readings were stored only where they were missing
    /// (a collector whose outbox was lost, restored from an old copy or shared by two processes
    /// reuses seqs for new readings), its poll tallies not counted again, and the collector's seq
    /// left where it was.
    pub replay: bool,
    /// Device readings written, and those already stored.
    pub stored: usize,
    pub duplicates: usize,
}

/// What the hub knows of a collector that has streamed to it.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct CollectorRow {
    pub collector_id: String,
    pub last_seq: i64,
    pub version: Option<String>,
    pub last_seen_at: i64,
    pub samples_stored: i64,
}

/// Every collector that has streamed to this hub, by id.
pub fn list_collectors(conn: &mut DbConnection) -> Result<Vec<CollectorRow>, DbError> {
    use schema::collectors::dsl as c;
    Ok(c::collectors
        .select((
            c::collector_id,
            c::last_seq,
            c::version,
            c::last_seen_at,
            c::samples_stored,
        ))
        .order(c::collector_id)
        .load(conn)?)
}

/// Records the version a collector registered with (creating its row if it never streamed).
pub fn note_version(
    conn: &mut DbConnection,
    collector_id: &str,
    version: &str,
) -> Result<(), DbError> {
    use schema::collectors::dsl as c;
    ensure_collector(conn, collector_id, Some(version))?;
    diesel::update(c::collectors.find(collector_id))
        .set((c::version.eq(version), c::updated_at.eq(now_ms())))
        .execute(conn)?;
    Ok(())
}

/// Creates the row of a collector that has none yet (last seq 0).
fn ensure_collector(
    conn: &mut DbConnection,
    collector_id: &str,
    version: Option<&str>,
) -> Result<(), DbError> {
    use schema::collectors::dsl as c;
    let now = now_ms();
    let insert = diesel::insert_into(c::collectors).values((
        c::collector_id.eq(collector_id),
        c::last_seq.eq(0i64),
        c::version.eq(version),
        c::last_seen_at.eq(now),
        c::created_at.eq(now),
        c::updated_at.eq(now),
    ));
    match conn {
        DbConnection::Postgres(pg) => insert.on_conflict_do_nothing().execute(pg)?,
        DbConnection::Sqlite(sqlite) => insert.on_conflict_do_nothing().execute(sqlite)?,
    };
    Ok(())
}

/// The highest committed seq of `collector_id` (0 when it never committed).
pub fn last_seq(conn: &mut DbConnection, collector_id: &str) -> Result<u64, DbError> {
    let seq: Option<i64> = schema::collectors::table
        .find(collector_id)
        .select(schema::collectors::last_seq)
        .first(conn)
        .optional()?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

/// How far past the last committed seq a batch's seq may be: the batches a collector can have
/// handed out while the hub did not commit them. Its outbox keeps at most 14 days (and 256 MB),
/// and a collector sends at most a batch a second: 1.2 million; a seq further out is refused.
pub const SEQ_REACH: i64 = 2_000_000;

/// Writes `rows` as batch `seq` of `collector_id`: every reading not stored yet (a reading is its
/// device and time; a replayed seq stores only what is missing). Call inside a transaction: the
/// samples and the new seq land together or not at all.
pub fn commit_batch(
    conn: &mut DbConnection,
    collector_id: &str,
    version: Option<&str>,
    seq: u64,
    rows: &BatchRows,
) -> Result<CommitResult, DbError> {
    use schema::collectors::dsl as c;
    let now = now_ms();
    let seq =
        i64::try_from(seq).map_err(|_| DbError::Invalid(format!("seq {seq} is too large")))?;
    // Make sure the row exists, then hold it while reading its seq (one statement): a second
    // stream of the same collector waits here. SQLite has one writer already.
    ensure_collector(conn, collector_id, version)?;
    let last_seq = c::collectors.find(collector_id).select(c::last_seq);
    let last: i64 = match conn {
        DbConnection::Postgres(pg) => last_seq.for_update().first(pg)?,
        DbConnection::Sqlite(sqlite) => last_seq.first(sqlite)?,
    };
    let replay = seq <= last;
    if !replay && seq - last > SEQ_REACH {
        // Accepted, it would make every seq up to it a replay: the collector's real next batches
        // would be acked and stored nowhere.
        return Err(DbError::Invalid(format!(
            "seq {seq} is more than {SEQ_REACH} past the last committed seq {last} of collector {collector_id}: no outbox holds that many batches"
        )));
    }
    let offered = rows.energy.len() + rows.meters.len() + rows.banks.len();
    let stored = samples::insert_energy_samples(conn, &rows.energy)?
        + samples::insert_meter_samples(conn, &rows.meters)?
        + samples::insert_battery_bank_samples(conn, &rows.banks)?;
    samples::insert_battery_unit_samples(conn, &rows.units)?;
    samples::insert_battery_cell_samples(conn, &rows.cells)?;
    if replay && stored == 0 {
        // A batch committed before, sent again (its ack was lost): nothing changes.
        return Ok(CommitResult {
            replay,
            stored,
            duplicates: offered,
        });
    }
    let mut latest = rows.latest.clone();
    for row in &mut latest {
        row.committed_at = now;
    }
    live::record_latest(conn, &mut latest)?;
    if stored > 0 {
        super::rollups::add_pending(conn, &rows.pending)?;
    }
    if !replay {
        super::quality::add_poll_counts(conn, &rows.polls)?;
    }
    diesel::update(c::collectors.find(collector_id))
        .set((
            c::last_seq.eq(seq.max(last)),
            c::samples_stored.eq(c::samples_stored + stored as i64),
            c::last_seen_at.eq(now),
            c::updated_at.eq(now),
        ))
        .execute(conn)?;
    // Batches on a stream carry no version: keep the one the collector registered with.
    if let Some(version) = version {
        diesel::update(c::collectors.find(collector_id))
            .set(c::version.eq(version))
            .execute(conn)?;
    }
    Ok(CommitResult {
        replay,
        stored,
        duplicates: offered - stored,
    })
}
