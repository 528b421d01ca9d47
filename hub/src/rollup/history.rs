//! The history API's domain side: which rows a request wants, checked against the catalog
//! (unknown ids are NOT_FOUND), and `Recompute`.

use crate::catalog::{
    Battery, BatteryArray, BatteryCell, BatteryPack, Inverter, InverterArray, Meter, System,
};
use crate::catalog::{CatalogError, Repository};
use crate::db::Database;
use crate::db::retention::{
    AggregatedDevice, FiveMinutePoint, HourlyDevice, HourlyPoint, HourlyScope, five_minute_points,
    hourly_points,
};
use crate::db::rollups::{
    self as store, DeviceScope, EnergyScope, EnergyView, Level, MeterDay, MeterHour, PackDay,
    PackHour,
};

use super::{RollReport, Settings};

#[derive(Clone)]
pub struct History {
    database: Database,
    repository: Repository,
}

impl History {
    pub fn new(database: Database, repository: Repository) -> History {
        History {
            database,
            repository,
        }
    }

    pub async fn energy(
        &self,
        scope: EnergyScope,
        level: Level,
        from: i64,
        to: i64,
    ) -> Result<Vec<EnergyView>, CatalogError> {
        match &scope {
            EnergyScope::System(id) => drop(self.repository.get::<System>(id.clone()).await?),
            EnergyScope::Array(id) => drop(self.repository.get::<InverterArray>(id.clone()).await?),
            EnergyScope::Inverter(id) => drop(self.repository.get::<Inverter>(id.clone()).await?),
        }
        Ok(self
            .database
            .run(move |conn| store::energy_history(conn, &scope, level, from, to))
            .await?)
    }

    pub async fn battery(
        &self,
        scope: DeviceScope,
        level: Level,
        from: i64,
        to: i64,
    ) -> Result<(Vec<PackHour>, Vec<PackDay>), CatalogError> {
        match &scope {
            DeviceScope::System(id) => drop(self.repository.get::<System>(id.clone()).await?),
            DeviceScope::BatteryArray(id) => {
                drop(self.repository.get::<BatteryArray>(id.clone()).await?)
            }
            DeviceScope::Device(id) => drop(self.repository.get::<BatteryPack>(id.clone()).await?),
        }
        Ok(self
            .database
            .run(move |conn| store::battery_history(conn, &scope, level, from, to))
            .await?)
    }

    /// One device's 5-minute points whose bucket starts in [from, to), from the 5-minute
    /// aggregates (NOT_FOUND for a device the catalog does not have).
    pub async fn five_minute(
        &self,
        kind: AggregatedDevice,
        device_id: String,
        from: i64,
        to: i64,
    ) -> Result<Vec<FiveMinutePoint>, CatalogError> {
        match kind {
            AggregatedDevice::Inverter => {
                drop(self.repository.get::<Inverter>(device_id.clone()).await?)
            }
            AggregatedDevice::Meter => drop(self.repository.get::<Meter>(device_id.clone()).await?),
            AggregatedDevice::Pack => drop(
                self.repository
                    .get::<BatteryPack>(device_id.clone())
                    .await?,
            ),
        }
        Ok(self
            .database
            .run(move |conn| five_minute_points(conn, kind, &device_id, from, to))
            .await?)
    }

    /// The hourly aggregates of the battery units or cells `scope` names whose hour starts in
    /// [from, to), at most `limit` (NOT_FOUND for a pack, battery or cell the catalog does not
    /// have).
    pub async fn battery_device_hourly(
        &self,
        kind: HourlyDevice,
        scope: HourlyScope,
        id: String,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<HourlyPoint>, CatalogError> {
        match scope {
            HourlyScope::Pack => drop(self.repository.get::<BatteryPack>(id.clone()).await?),
            HourlyScope::Battery => drop(self.repository.get::<Battery>(id.clone()).await?),
            HourlyScope::Device => match kind {
                HourlyDevice::Cell => drop(self.repository.get::<BatteryCell>(id.clone()).await?),
                HourlyDevice::BatteryUnit => {
                    drop(self.repository.get::<Battery>(id.clone()).await?)
                }
            },
        }
        Ok(self
            .database
            .run(move |conn| hourly_points(conn, kind, scope, &id, from, to, limit))
            .await?)
    }

    pub async fn meter(
        &self,
        scope: DeviceScope,
        level: Level,
        from: i64,
        to: i64,
    ) -> Result<(Vec<MeterHour>, Vec<MeterDay>), CatalogError> {
        match &scope {
            DeviceScope::System(id) | DeviceScope::BatteryArray(id) => {
                drop(self.repository.get::<System>(id.clone()).await?)
            }
            DeviceScope::Device(id) => drop(self.repository.get::<Meter>(id.clone()).await?),
        }
        Ok(self
            .database
            .run(move |conn| store::meter_history(conn, &scope, level, from, to))
            .await?)
    }

    /// Rebuilds the rollups of `system_id` over `range` (its whole sample span when `None`), and
    /// compares them with the old app's figures when the database holds them.
    pub async fn recompute(
        &self,
        system_id: String,
        range: Option<(i64, i64)>,
    ) -> Result<(RollReport, crate::legacy::LegacyComparison), CatalogError> {
        self.repository.get::<System>(system_id.clone()).await?;
        let claim = std::sync::Arc::new(super::RecomputeClaim::new(&system_id));
        let held = claim.clone();
        let from = range.map_or(i64::MIN, |(from, _)| from);
        self.database
            .run_write(move |conn| held.renew(conn, from))
            .await?;
        let rolled = self.roll_chunks(&system_id, range, &claim).await;
        let held = claim.clone();
        self.database
            .run_write(move |conn| held.release(conn))
            .await?;
        let report = rolled?;
        let database = self.database.clone();
        let comparison = self
            .database
            .run(move |conn| {
                let mut target = database.get()?;
                crate::legacy::compare_with_legacy(conn, &mut target, &system_id)
            })
            .await?;
        Ok((report, comparison))
    }

    /// The runs of a recompute, one transaction per day of hours, each taking its turn with
    /// ingest's writes.
    async fn roll_chunks(
        &self,
        system_id: &str,
        range: Option<(i64, i64)>,
        claim: &std::sync::Arc<super::RecomputeClaim>,
    ) -> Result<RollReport, CatalogError> {
        let id = system_id.to_owned();
        let super::RecomputePlan {
            chunks,
            frozen_hours,
        } = self
            .database
            .run(move |conn| super::recompute_chunks(conn, &id, range, Settings::default()))
            .await?
            .unwrap_or_default();
        let mut report = RollReport {
            frozen_hours,
            ..RollReport::default()
        };
        for chunk in chunks {
            let (id, claim) = (system_id.to_owned(), claim.clone());
            report += self
                .database
                .run_write(move |conn| {
                    super::roll_chunk(conn, &id, &chunk, Settings::default(), &claim)
                })
                .await?;
        }
        Ok(report)
    }
}
