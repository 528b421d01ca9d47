//! Live telemetry (DESIGN §3.4, §4 Live): what every device, array and system shows right now.
//!
//! Ingest records the newest reading of each device in `latest_readings` inside the batch's
//! transaction; every answer here is computed from that table and the catalog, so all hubs sharing
//! a database answer alike. `compute` holds the rules (freshness, pack failover, sums, SOC),
//! `tariff` the money, `watch` the push stream, and `sampler` writes `array_samples` at a cadence.

pub mod compute;
pub mod model;
pub mod sampler;
pub mod tariff;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::{BatteryArray, BatteryPack, Inverter, InverterArray, Meter, System};
use crate::catalog::{CatalogError, Parents, Repository, Resource};
use crate::db::catalog as store;
use crate::db::live as stored;
use crate::db::{Database, DbConnection, DbError};

pub use compute::{DEFAULT_POLL_INTERVAL_SECS, Inputs, STALE_AFTER_POLLS};
pub use model::*;

/// Tells watchers which system just got new data. Sending never waits: a receiver that falls
/// behind loses the oldest notices and learns how many it lost.
pub type Updates = tokio::sync::broadcast::Sender<Notice>;

/// A system got new data, committed before `sent`: a read that begins after `sent` sees it.
#[derive(Debug, Clone)]
pub struct Notice {
    pub system_id: Arc<str>,
    pub sent: std::time::Instant,
}

impl Notice {
    /// A notice of a commit made just now.
    pub fn now(system_id: &str) -> Notice {
        Notice {
            system_id: system_id.into(),
            sent: std::time::Instant::now(),
        }
    }
}

/// Notices kept for a receiver that has not read them yet.
pub const UPDATE_BUFFER: usize = 1024;

pub fn updates() -> Updates {
    tokio::sync::broadcast::channel(UPDATE_BUFFER).0
}

#[derive(Clone)]
pub struct Live {
    database: Database,
    repository: Repository,
    updates: Updates,
    watchers: watch::Watchers,
}

/// Loads what [`compute::system_now`] needs for one system at `now`; `None` when it does not exist.
pub fn load_inputs(
    conn: &mut DbConnection,
    system_id: &str,
    now: i64,
) -> Result<Option<Inputs>, DbError> {
    let (systems, installation) = store::load_installations(conn, Some(system_id))?;
    let Some(system) = systems.into_iter().next() else {
        return Ok(None);
    };
    let latest = stored::latest_of_system(conn, system_id)?;
    let keys = |kind: &str| -> Vec<(String, i64)> {
        latest
            .iter()
            .filter(|row| row.device_type == kind)
            .map(|row| (row.device_id.clone(), row.ts))
            .collect()
    };
    let energy = stored::energy_samples_at(conn, &keys("inverter"))?
        .into_iter()
        .map(|s| ((s.inverter_id.clone(), s.ts), s))
        .collect();
    let meters = stored::meter_samples_at(conn, &keys("meter"))?
        .into_iter()
        .map(|s| ((s.meter_id.clone(), s.ts), s))
        .collect();
    let banks = stored::bank_samples_at(conn, &keys("battery_pack"))?
        .into_iter()
        .map(|s| ((s.pack_id.clone(), s.ts), s))
        .collect();
    let tz = crate::local_time::timezone(&system);
    let date = crate::local_time::local_date(tz, now);
    let today = crate::local_time::day(tz, date);
    let mut meter_day_start = HashMap::new();
    for meter in &installation.meters {
        if let Some(first) = stored::meter_counters_since(conn, &meter.meter_id, today.start)? {
            meter_day_start.insert(meter.meter_id.clone(), first);
        }
    }
    // Today's rows of the system and of its grid meters only: every device's hours of the day
    // (24,000 rows at 1,000 inverters by evening) read every 10 s by the array sampler was a
    // cost that grew with the day.
    let rolled = crate::db::rollups::load_rows_of(
        conn,
        system_id,
        today.start,
        today.end,
        crate::db::rollups::Level::Hours,
        &crate::db::rollups::RowsOf {
            meters: installation
                .system_grid_meters()
                .map(str::to_owned)
                .collect(),
            levels: true,
            ..crate::db::rollups::RowsOf::default()
        },
    )?;
    let today_grid_from_meters = rolled
        .meter_hours
        .iter()
        .any(|row| row.import_kwh.is_some());
    let peak_windows = tariff::peak_windows(&system, date);
    // The counters at the peak windows' edges only matter until today's first hour is rolled.
    let mut import_counter_at = HashMap::new();
    if rolled.system_hours.is_empty() {
        let edges = peak_windows
            .iter()
            .flat_map(|(start, end)| [*start, *end])
            .filter(|edge| *edge <= now);
        for edge in edges {
            for meter in installation.meters.iter().filter(|m| m.array_id.is_none()) {
                if let Some((Some(import), _)) =
                    stored::meter_counters_since(conn, &meter.meter_id, edge)?
                {
                    import_counter_at.insert((meter.meter_id.clone(), edge), import);
                }
            }
            for inverter in &installation.inverters {
                if let Some(import) =
                    stored::inverter_import_since(conn, &inverter.inverter_id, edge)?
                {
                    import_counter_at.insert((inverter.inverter_id.clone(), edge), import);
                }
            }
        }
    }
    Ok(Some(Inputs {
        today_hours: rolled.system_hours,
        today_grid_from_meters,
        system: Some(system),
        installation,
        latest,
        energy,
        meters,
        banks,
        meter_day_start,
        import_counter_at,
        now,
        day_start: today.start,
        date: today.date,
        peak_windows,
    }))
}

fn not_found<R: Resource>(id: &str, system_id: Option<&str>) -> CatalogError {
    CatalogError::NotFound {
        kind: R::KIND,
        id: id.to_owned(),
        parents: Box::new(Parents {
            system_id: system_id.map(str::to_owned),
            ..Parents::default()
        }),
        field: None,
    }
}

/// `Some(scope)` when the request named a system.
fn scope(system_id: &str) -> Option<&str> {
    (!system_id.is_empty()).then_some(system_id)
}

impl Live {
    pub fn new(database: Database, repository: Repository, updates: Updates) -> Live {
        Live {
            database,
            repository,
            updates,
            watchers: watch::Watchers::default(),
        }
    }

    /// Open watches (metrics).
    pub fn watchers(&self) -> &watch::Watchers {
        &self.watchers
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Notice> {
        self.updates.subscribe()
    }

    /// The system now, as of the hub's clock.
    pub async fn system_now(&self, system_id: &str) -> Result<SystemNow, CatalogError> {
        self.system_now_at(system_id, chrono::Utc::now().timestamp_millis())
            .await
    }

    /// The system as of `now` (UTC epoch ms).
    pub async fn system_now_at(
        &self,
        system_id: &str,
        now: i64,
    ) -> Result<SystemNow, CatalogError> {
        let id = system_id.to_owned();
        let inputs = self
            .database
            .run(move |conn| load_inputs(conn, &id, now))
            .await?;
        inputs
            .as_ref()
            .and_then(compute::system_now)
            .ok_or_else(|| not_found::<System>(system_id, None))
    }

    pub fn backend(&self) -> crate::db::Backend {
        self.database.backend()
    }

    /// Changes whenever a newer reading of the system is committed, by any hub.
    pub async fn fingerprint(
        &self,
        system_id: &str,
    ) -> Result<(i64, Option<i64>, Option<i64>), CatalogError> {
        let id = system_id.to_owned();
        Ok(self
            .database
            .run(move |conn| stored::system_fingerprint(conn, &id))
            .await?)
    }

    /// The system a device belongs to, checked against the request's scope.
    async fn system_of<R: crate::catalog::Linked>(
        &self,
        key: R::Key,
        id: &str,
        system_id: &str,
        system_of: impl Fn(&R) -> &str,
    ) -> Result<String, CatalogError> {
        let (row, _) = self
            .repository
            .get::<R>(key)
            .await
            .map_err(|error| match error {
                CatalogError::NotFound { .. } => not_found::<R>(id, scope(system_id)),
                other => other,
            })?;
        let owner = system_of(&row);
        if scope(system_id).is_some_and(|scope| scope != owner) {
            return Err(not_found::<R>(id, scope(system_id)));
        }
        Ok(owner.to_owned())
    }

    pub async fn inverter_array_now(
        &self,
        array_id: &str,
        system_id: &str,
    ) -> Result<InverterArrayNow, CatalogError> {
        let system = self
            .system_of::<InverterArray>(array_id.to_owned(), array_id, system_id, |a| &a.system_id)
            .await?;
        let now = self.system_now(&system).await?;
        now.arrays
            .into_iter()
            .find(|a| a.array.array_id == array_id)
            .ok_or_else(|| not_found::<InverterArray>(array_id, Some(&system)))
    }

    pub async fn battery_array_now(
        &self,
        battery_array_id: &str,
        system_id: &str,
    ) -> Result<BatteryArrayNow, CatalogError> {
        let system = self
            .system_of::<BatteryArray>(
                battery_array_id.to_owned(),
                battery_array_id,
                system_id,
                |b| &b.system_id,
            )
            .await?;
        let now = self.system_now(&system).await?;
        now.battery_arrays
            .into_iter()
            .find(|b| b.battery_array.battery_array_id == battery_array_id)
            .ok_or_else(|| not_found::<BatteryArray>(battery_array_id, Some(&system)))
    }

    pub async fn inverter_now(
        &self,
        inverter_id: &str,
        system_id: &str,
    ) -> Result<InverterNow, CatalogError> {
        let system = self
            .system_of::<Inverter>(inverter_id.to_owned(), inverter_id, system_id, |i| {
                &i.system_id
            })
            .await?;
        let now = self.system_now(&system).await?;
        now.arrays
            .into_iter()
            .flat_map(|a| a.inverters)
            .find(|i| i.inverter.inverter_id == inverter_id)
            .ok_or_else(|| not_found::<Inverter>(inverter_id, Some(&system)))
    }

    pub async fn meter_now(
        &self,
        meter_id: &str,
        system_id: &str,
    ) -> Result<MeterNow, CatalogError> {
        let system = self
            .system_of::<Meter>(meter_id.to_owned(), meter_id, system_id, |m| &m.system_id)
            .await?;
        let now = self.system_now(&system).await?;
        now.meters
            .into_iter()
            .chain(now.arrays.into_iter().flat_map(|a| a.meters))
            .find(|m| m.meter.meter_id == meter_id)
            .ok_or_else(|| not_found::<Meter>(meter_id, Some(&system)))
    }

    /// A pack now, with the batteries and cells of the reading it shows.
    pub async fn battery_pack_now(
        &self,
        pack_id: &str,
        system_id: &str,
    ) -> Result<BatteryPackNow, CatalogError> {
        let system = self
            .system_of::<BatteryPack>(pack_id.to_owned(), pack_id, system_id, |p| &p.system_id)
            .await?;
        // One load: the pack as the system answer computes it, and the batteries and cells of
        // the reading it shows.
        let (id, pack) = (system.clone(), pack_id.to_owned());
        let now = chrono::Utc::now().timestamp_millis();
        let found = self
            .database
            .run(move |conn| {
                let Some(inputs) = load_inputs(conn, &id, now)? else {
                    return Ok(None);
                };
                let Some(mut pack_now) = compute::pack_now(&inputs, &pack) else {
                    return Ok(None);
                };
                if let Some(ts) = pack_now.reading.sample.as_ref().map(|s| s.ts) {
                    let (units, cells) = stored::pack_detail_at(conn, &pack, ts)?;
                    pack_now.batteries = pack_detail(&inputs.installation, units, cells);
                }
                Ok(Some(pack_now))
            })
            .await?;
        let pack = found.ok_or_else(|| not_found::<BatteryPack>(pack_id, Some(&system)))?;
        Ok(pack)
    }
}

/// Batteries of one pack reading with their cells, in index order.
fn pack_detail(
    installation: &crate::catalog::Installation,
    units: Vec<crate::db::samples::BatteryUnitSample>,
    cells: Vec<crate::db::samples::BatteryCellSample>,
) -> Vec<BatteryNow> {
    let battery_index: HashMap<&str, i32> = installation
        .batteries
        .iter()
        .map(|b| (b.battery_id.as_str(), b.battery_index))
        .collect();
    let cell_index: HashMap<&str, i32> = installation
        .cells
        .iter()
        .map(|c| (c.cell_id.as_str(), c.cell_index))
        .collect();
    let mut batteries: Vec<BatteryNow> = units
        .into_iter()
        .map(|unit| {
            let mut own: Vec<(i32, crate::db::samples::BatteryCellSample)> = cells
                .iter()
                .filter(|c| c.battery_id == unit.battery_id)
                .map(|c| {
                    (
                        cell_index
                            .get(c.cell_id.as_str())
                            .copied()
                            .unwrap_or_default(),
                        c.clone(),
                    )
                })
                .collect();
            own.sort_by_key(|(index, _)| *index);
            BatteryNow {
                battery_index: battery_index
                    .get(unit.battery_id.as_str())
                    .copied()
                    .unwrap_or_default(),
                cells: own,
                unit,
            }
        })
        .collect();
    batteries.sort_by_key(|b| b.battery_index);
    batteries
}
