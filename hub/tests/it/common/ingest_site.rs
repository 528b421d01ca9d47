//! An installation fed through real ingest (`Ingest::commit`, the path every collector batch
//! takes) and rolled by the roller, in a runtime of its own: what the rollup and retention tests
//! stand on.

use solarhub_hub::catalog::CatalogGeneration;
use solarhub_hub::db::Database;
use solarhub_hub::db::rollups::{self, Level, RollupRows};
use solarhub_hub::ingest::{Batch, IncomingReading, Ingest};
use solarhub_hub::rollup::incremental::PassCounts;
use solarhub_hub::rollup::{self, RollReport, Settings, roller};

use super::TestDb;

/// The collector every adapter of the installation is assigned to.
pub const COLLECTOR: &str = "c1";

pub struct IngestSite {
    pub database: Database,
    pub ingest: Ingest,
    pub runtime: tokio::runtime::Runtime,
    /// The roller, with its memory of what it rolled, as the served hub keeps it.
    pub roller: std::cell::RefCell<roller::Roller>,
    /// What the last roll read and rebuilt, and every roll since the site was made.
    pub last_counts: std::cell::Cell<PassCounts>,
    pub total_counts: std::cell::Cell<PassCounts>,
    seq: u64,
    /// The database the site lives in, when the site made it.
    pub db: Option<TestDb>,
}

impl IngestSite {
    /// `installation` (a `config.yaml`) in a migrated `db`, its adapters assigned to
    /// [`COLLECTOR`].
    pub fn new(db: TestDb, installation: &str) -> IngestSite {
        let database = db.migrated();
        let mut site = IngestSite::on(database, installation);
        site.db = Some(db);
        site
    }

    /// `installation` in an already migrated database.
    pub fn on(database: Database, installation: &str) -> IngestSite {
        let types = solarhub_hub::adapter_types::builtin_adapter_types().unwrap();
        let mut loaded = solarhub_hub::config_import::parse_config(
            std::path::Path::new("installation.yaml"),
            installation,
            &types,
        )
        .unwrap();
        for adapter in &mut loaded.installation.adapters {
            adapter.collector_id = Some(COLLECTOR.into());
        }
        let rows: Vec<_> = types.into_iter().map(|t| t.row).collect();
        solarhub_hub::db::catalog::apply_installation(
            &mut database.get().unwrap(),
            &rows,
            &loaded.installation,
            false,
        )
        .unwrap();
        IngestSite {
            ingest: Ingest::new(database.clone(), CatalogGeneration::default()),
            roller: std::cell::RefCell::new(roller::Roller::new(
                database.clone(),
                Settings::default(),
            )),
            last_counts: std::cell::Cell::new(PassCounts::default()),
            total_counts: std::cell::Cell::new(PassCounts::default()),
            database,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            seq: 0,
            db: None,
        }
    }

    /// Commits `readings` in batches of 500, as [`COLLECTOR`]; none may be refused.
    pub fn send(&mut self, readings: Vec<IncomingReading>) {
        for chunk in readings.chunks(500) {
            self.seq += 1;
            let outcome = self
                .runtime
                .block_on(self.ingest.commit(
                    Batch {
                        sent_at: None,
                        collector_id: COLLECTOR.into(),
                        seq: self.seq,
                        readings: chunk.to_vec(),
                        polls: Vec::new(),
                    },
                    None,
                ))
                .unwrap();
            assert!(outcome.refused.is_empty(), "{:?}", outcome.refused);
        }
    }

    /// Rolls what is pending, as the served roller does (remembering what it rolled).
    pub fn roll(&self) -> RollReport {
        let mut roller = self.roller.borrow_mut();
        let (report, counts) = self.runtime.block_on(roller.roll_pending()).unwrap();
        self.last_counts.set(counts);
        let mut total = self.total_counts.get();
        total += counts;
        self.total_counts.set(total);
        report
    }

    /// Rolls what is pending as a roller that remembers nothing (every hour a pending sample
    /// reaches rebuilt from raw samples).
    pub fn roll_without_memory(&self) -> RollReport {
        self.runtime
            .block_on(roller::roll_pending(&self.database, Settings::default()))
            .unwrap()
    }

    /// Every hour and day row of `system_id`, without the times they were written.
    pub fn rollups(&self, system_id: &str) -> RollupRows {
        let mut conn = self.database.get().unwrap();
        let mut hours =
            rollups::load_rows(&mut conn, system_id, 0, i64::MAX, Level::Hours).unwrap();
        let days = rollups::load_rows(&mut conn, system_id, 0, i64::MAX, Level::Days).unwrap();
        hours.inverter_days = days.inverter_days;
        hours.array_days = days.array_days;
        hours.system_days = days.system_days;
        hours.pack_days = days.pack_days;
        hours.meter_days = days.meter_days;
        hours.without_times()
    }

    /// Recomputes every rollup of `system_id` from its samples.
    pub fn recompute(&self, system_id: &str) -> RollReport {
        let mut conn = self.database.get().unwrap();
        rollup::recompute(&mut conn, system_id, None, Settings::default())
            .unwrap()
            .unwrap()
    }
}
