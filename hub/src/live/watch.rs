//! `WatchSystem`: the system now, then again after every commit of new data for it.
//!
//! A watcher learns of commits from notices on a broadcast channel: this hub's ingest sends one
//! right after each of its commits, and on Postgres the commit listener (`cluster`) sends one for
//! each commit another hub on the database announces (`NOTIFY`). SQLite has no announcements: there
//! a watcher also compares the system's `latest_readings` fingerprint every [`OTHER_HUBS_POLL`],
//! which moves when another process on the same file (a second hub) commits.
//!
//! Ingest never waits for a watcher: the broadcast channel drops the oldest notices of a receiver
//! that falls behind. A watcher holds at most [`WATCHER_BUFFER`] computed states for its client;
//! while the client is not reading, notices pile up and are merged, so the client's next state is
//! the newest one and `skipped_updates` says how many commits were folded into it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;

use super::{Live, SystemNow};
use crate::catalog::CatalogError;

/// How often a watcher on SQLite looks for commits made by other processes on the file.
pub const OTHER_HUBS_POLL: Duration = Duration::from_millis(400);
/// Computed states waiting for a slow client, per watcher.
pub const WATCHER_BUFFER: usize = 2;

#[derive(Debug, Clone)]
pub struct WatchUpdate {
    pub now: SystemNow,
    /// Commits folded into this update because the watcher was busy.
    pub skipped_updates: u64,
}

pub type WatchStream = mpsc::Receiver<Result<WatchUpdate, CatalogError>>;

/// Starts watching `system_id`. Fails at once (NOT_FOUND) when there is no such system.
pub async fn watch(live: Live, system_id: String) -> Result<WatchStream, CatalogError> {
    let mut notices = live.subscribe();
    // Postgres announces other hubs' commits; only SQLite needs to look.
    let polls = live.backend() == crate::db::Backend::Sqlite;
    let mut fingerprint = if polls {
        live.fingerprint(&system_id).await.ok()
    } else {
        None
    };
    let first = live.system_now(&system_id).await?;
    let (sender, receiver) = mpsc::channel(WATCHER_BUFFER);
    let watching = live.watchers().watching();
    tokio::spawn(async move {
        let _watching = watching;
        let system_id: Arc<str> = system_id.into();
        let mut update = WatchUpdate {
            now: first,
            skipped_updates: 0,
        };
        let mut tick = tokio::time::interval(OTHER_HUBS_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            if sender.send(Ok(update)).await.is_err() {
                return;
            }
            let mut commits = 0u64;
            while commits == 0 {
                tokio::select! {
                    _ = sender.closed() => return,
                    notice = notices.recv() => match notice {
                        Ok(id) if id == system_id => commits += 1,
                        Ok(_) => {}
                        Err(RecvError::Lagged(missed)) => commits += missed,
                        Err(RecvError::Closed) => return,
                    },
                    _ = tick.tick(), if polls => {
                        let seen = live.fingerprint(&system_id).await.ok();
                        if seen.is_some() && seen != fingerprint {
                            commits += 1;
                        }
                    }
                }
            }
            // Fold in what else has arrived meanwhile.
            loop {
                match notices.try_recv() {
                    Ok(id) if id == system_id => commits += 1,
                    Ok(_) => {}
                    Err(TryRecvError::Lagged(missed)) => commits += missed,
                    Err(_) => break,
                }
            }
            if polls {
                fingerprint = live.fingerprint(&system_id).await.ok();
            }
            match live.system_now(&system_id).await {
                Ok(now) => {
                    update = WatchUpdate {
                        now,
                        skipped_updates: commits - 1,
                    };
                }
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    return;
                }
            }
        }
    });
    Ok(receiver)
}

/// Open `WatchSystem` streams; a [`Watching`] guard counts one while it lives.
#[derive(Debug, Clone, Default)]
pub struct Watchers(prometheus_client::metrics::gauge::Gauge);

/// One open watch.
#[derive(Debug)]
pub struct Watching(prometheus_client::metrics::gauge::Gauge);

impl Watchers {
    /// The gauge, for the registry.
    pub fn gauge(&self) -> prometheus_client::metrics::gauge::Gauge {
        self.0.clone()
    }

    pub fn watching(&self) -> Watching {
        self.0.inc();
        Watching(self.0.clone())
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.dec();
    }
}
