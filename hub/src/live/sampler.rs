//! Writes `array_samples` at a fixed cadence from the latest fresh device data.
//!
//! Rows are stamped on multiples of the cadence, so hubs sharing a database compute the same
//! (array, ts) keys and the first to insert wins (one hub leads the sampler, `cluster`, but two may
//! overlap during a hand-over); an array with no fresh inverter gets no row
//! (a gap, not zeros).

use std::time::Duration;

use super::{Live, compute};
use crate::catalog::CatalogError;
use crate::db::{Database, live as stored, samples};

/// The default cadence of `array_samples`.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(10);

/// Writes one round of array samples for every system, stamped `ts`. Returns rows written.
pub async fn sample_once(live: &Live, database: &Database, ts: i64) -> Result<usize, CatalogError> {
    let systems = database.run(stored::system_ids).await?;
    let mut written = 0;
    for system_id in systems {
        let now = live.system_now_at(&system_id, ts).await?;
        let rows = compute::array_samples(&now, ts);
        if rows.is_empty() {
            continue;
        }
        written += database
            .run_write(move |conn| -> Result<usize, crate::db::DbError> {
                samples::insert_array_samples(conn, &rows)
            })
            .await?;
    }
    Ok(written)
}

/// Samples every `every` until `shutdown` completes.
pub async fn run(
    live: Live,
    database: Database,
    every: Duration,
    leadership: crate::cluster::Leadership,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use crate::cluster::{Job, Turn, Turns};
    let every_ms = every.as_millis().max(1) as i64;
    tokio::pin!(shutdown);
    let mut turns = Turns::new(Job::Sampler, leadership);
    loop {
        // On the cadence's grid, so every hub's samples of one instant share their key.
        let now = chrono::Utc::now().timestamp_millis();
        let next = (now / every_ms + 1) * every_ms;
        let wait = Duration::from_millis((next - now) as u64);
        match turns.next(wait, shutdown.as_mut()).await {
            Turn::Stop => return,
            Turn::Follow => continue,
            Turn::Lead { .. } => {}
        }
        if let Err(error) = sample_once(&live, &database, next).await {
            tracing::warn!(%error, "array samples not written this round");
        }
    }
}
