//! The history API's domain side: which rows a request wants, checked against the catalog
//! (unknown ids are NOT_FOUND), and `Recompute`.

use crate::catalog::{
    Battery, BatteryArray, BatteryCell, BatteryPack, Inverter, InverterArray, Meter, System,
};
use crate::catalog::{CatalogError, Repository};
use crate::db::Database;
use crate::db::aggregates::{AggregateKind, AggregatePoint, points, table_of};
use crate::db::rollups::{
    self as store, DeviceScope, EnergyScope, EnergyView, Level, MeterDay, MeterHour, PackDay,
    PackHour,
};

use super::{RollReport, Settings};

/// Which of an aggregate table's rows an id names: one device's, or a pack's or a battery's
/// devices'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateScope {
    Device,
    Pack,
    Battery,
}

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

    /// The energy rows of a scope, each added to `answer` by `add` as it is read.
    pub async fn energy<A: Send + 'static>(
        &self,
        scope: EnergyScope,
        level: Level,
        from: i64,
        to: i64,
        mut answer: A,
        add: impl Fn(&mut A, EnergyView<'_>) + Send + 'static,
    ) -> Result<A, CatalogError> {
        let read = {
            let scope = scope.clone();
            move |conn: &mut _| {
                store::energy_history(conn, &scope, level, from, to, |view| {
                    add(&mut answer, view)
                })?;
                Ok(answer)
            }
        };
        match scope {
            EnergyScope::System(id) => self.repository.read_of::<System, _>(id, read).await,
            EnergyScope::Array(id) => self.repository.read_of::<InverterArray, _>(id, read).await,
            EnergyScope::Inverter(id) => self.repository.read_of::<Inverter, _>(id, read).await,
        }
    }

    pub async fn battery(
        &self,
        scope: DeviceScope,
        level: Level,
        from: i64,
        to: i64,
    ) -> Result<(Vec<PackHour>, Vec<PackDay>), CatalogError> {
        let read = {
            let scope = scope.clone();
            move |conn: &mut _| store::battery_history(conn, &scope, level, from, to)
        };
        let repository = &self.repository;
        match scope {
            DeviceScope::System(id) => repository.read_of::<System, _>(id, read).await,
            DeviceScope::BatteryArray(id) => repository.read_of::<BatteryArray, _>(id, read).await,
            DeviceScope::Device(id) => repository.read_of::<BatteryPack, _>(id, read).await,
        }
    }

    /// The aggregate buckets of `kind` whose `scope` is `id` and whose start is in [from, to),
    /// by device then time, at most `limit`: one inverter's, meter's or pack's 5-minute points,
    /// or the hourly ones of a pack's, a battery's or one cell's (NOT_FOUND for an id the
    /// catalog does not have).
    pub async fn aggregates(
        &self,
        kind: AggregateKind,
        scope: AggregateScope,
        id: String,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<AggregatePoint>, CatalogError> {
        let table = table_of(kind);
        let column = match scope {
            AggregateScope::Pack => "pack_id",
            AggregateScope::Battery => "battery_id",
            AggregateScope::Device => table.device,
        };
        let read = {
            let id = id.clone();
            move |conn: &mut _| points(conn, table, column, &id, from, to, limit)
        };
        let repository = &self.repository;
        match (scope, kind) {
            (AggregateScope::Pack, _) | (AggregateScope::Device, AggregateKind::Pack) => {
                repository.read_of::<BatteryPack, _>(id, read).await
            }
            (AggregateScope::Battery, _) | (AggregateScope::Device, AggregateKind::BatteryUnit) => {
                repository.read_of::<Battery, _>(id, read).await
            }
            (AggregateScope::Device, AggregateKind::Cell) => {
                repository.read_of::<BatteryCell, _>(id, read).await
            }
            (AggregateScope::Device, AggregateKind::Inverter) => {
                repository.read_of::<Inverter, _>(id, read).await
            }
            (AggregateScope::Device, AggregateKind::Meter) => {
                repository.read_of::<Meter, _>(id, read).await
            }
        }
    }

    pub async fn meter(
        &self,
        scope: DeviceScope,
        level: Level,
        from: i64,
        to: i64,
    ) -> Result<(Vec<MeterHour>, Vec<MeterDay>), CatalogError> {
        let read = {
            let scope = scope.clone();
            move |conn: &mut _| store::meter_history(conn, &scope, level, from, to)
        };
        match scope {
            DeviceScope::System(id) | DeviceScope::BatteryArray(id) => {
                self.repository.read_of::<System, _>(id, read).await
            }
            DeviceScope::Device(id) => self.repository.read_of::<Meter, _>(id, read).await,
        }
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
