//! The roller: rolls the pending ranges ingest leaves, every few seconds, on the hub that leads it
//! (`cluster`). Rolling is recomputing from raw samples, so two hubs rolling the same range (during
//! a hand-over) write the same rows.

use std::time::Duration;

use super::{RollReport, Settings, pending_by_system, roll_pending_of};
use crate::db::{Database, DbError};

/// How often pending ranges are rolled by default.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(2);

/// Rolls everything pending now, one transaction per system.
pub async fn roll_pending(database: &Database, settings: Settings) -> Result<RollReport, DbError> {
    let by_system = database.run(pending_by_system).await?;
    let mut report = RollReport::default();
    for (system_id, ranges) in by_system {
        report += database
            .run_write(move |conn| roll_pending_of(conn, &system_id, &ranges, settings))
            .await?;
    }
    Ok(report)
}

/// Rolls pending ranges every `every` until `shutdown` completes.
pub async fn run(
    database: Database,
    every: Duration,
    settings: Settings,
    leadership: crate::cluster::Leadership,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(every) => {}
        }
        if !leadership.leads(crate::cluster::Job::Roller) {
            continue;
        }
        match roll_pending(&database, settings).await {
            Ok(report) if report.rows > 0 => {
                tracing::debug!(
                    hours = report.hours,
                    days = report.days,
                    rows = report.rows,
                    "rolled"
                )
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "rollups not rolled this round; retrying"),
        }
    }
}
