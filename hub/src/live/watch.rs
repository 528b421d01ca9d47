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
//!
//! The watchers of one system share their computations: a notice carries when it was sent (after
//! its commit), and a watcher takes the newest state of its system computed by any of them when
//! that computation started after every notice it counted (so its read saw those commits), and
//! computes the state itself otherwise.
//! Twenty dashboards on one system of 4,000 inverters made twenty reads of the system for every
//! commit, half of the hub's CPU (BENCHMARKS.md, issue 24); now one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

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
    let shared = live.watchers().shared(&system_id);
    let first = shared.since(Instant::now(), &live, &system_id).await?;
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
            // The commits seen, and an instant after every one of them: a read that begins
            // later sees them all (a lost notice or another process's commit: when learnt of).
            let mut seen = Seen::default();
            while seen.after.is_none() {
                tokio::select! {
                    _ = sender.closed() => return,
                    notice = notices.recv() => match notice {
                        Ok(notice) if notice.system_id == system_id => seen.add(1, notice.sent),
                        Ok(_) => {}
                        Err(RecvError::Lagged(missed)) => seen.add(missed, Instant::now()),
                        Err(RecvError::Closed) => return,
                    },
                    _ = tick.tick(), if polls => {
                        let now = live.fingerprint(&system_id).await.ok();
                        if now.is_some() && now != fingerprint {
                            seen.add(1, Instant::now());
                        }
                    }
                }
            }
            // Fold in what else has arrived meanwhile.
            loop {
                match notices.try_recv() {
                    Ok(notice) if notice.system_id == system_id => seen.add(1, notice.sent),
                    Ok(_) => {}
                    Err(TryRecvError::Lagged(missed)) => seen.add(missed, Instant::now()),
                    Err(_) => break,
                }
            }
            let (commits, noticed) = (seen.commits, seen.after.unwrap_or_else(Instant::now));
            if polls {
                fingerprint = live.fingerprint(&system_id).await.ok();
            }
            match shared.since(noticed, &live, &system_id).await {
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

/// Commits a watcher learnt of, and an instant after every one of them.
#[derive(Debug, Default)]
struct Seen {
    commits: u64,
    after: Option<Instant>,
}

impl Seen {
    fn add(&mut self, commits: u64, sent: Instant) {
        self.commits += commits;
        self.after = Some(self.after.map_or(sent, |after| after.max(sent)));
    }
}

/// The watchers of this hub: open `WatchSystem` streams (a [`Watching`] guard counts one while it
/// lives), and each watched system's newest computed state, shared by its watchers.
#[derive(Debug, Clone, Default)]
pub struct Watchers {
    open: prometheus_client::metrics::gauge::Gauge,
    /// Held by the system's watchers; here only while one lives.
    shared: Arc<Mutex<HashMap<Arc<str>, Weak<Shared>>>>,
    computed: prometheus_client::metrics::counter::Counter,
}

/// One open watch.
#[derive(Debug)]
pub struct Watching(prometheus_client::metrics::gauge::Gauge);

/// A system's newest state computed for its watchers, and when its computation started. The lock
/// is held while computing: the system's other watchers wait for that state instead of making
/// their own.
#[derive(Debug)]
struct Shared {
    newest: tokio::sync::Mutex<Option<(Instant, SystemNow)>>,
    computed: prometheus_client::metrics::counter::Counter,
}

impl Shared {
    /// The system's state as of a read that began at or after `noticed`.
    async fn since(
        &self,
        noticed: Instant,
        live: &Live,
        system_id: &str,
    ) -> Result<SystemNow, CatalogError> {
        let mut newest = self.newest.lock().await;
        if let Some((started, now)) = newest.as_ref()
            && *started >= noticed
        {
            return Ok(now.clone());
        }
        let started = Instant::now();
        let now = live.system_now(system_id).await?;
        self.computed.inc();
        *newest = Some((started, now.clone()));
        Ok(now)
    }
}

impl Watchers {
    /// Open streams, for the registry.
    pub fn gauge(&self) -> prometheus_client::metrics::gauge::Gauge {
        self.open.clone()
    }

    /// States computed for watchers (one per commit and watched system, not per watcher), for the
    /// registry.
    pub fn computed(&self) -> prometheus_client::metrics::counter::Counter {
        self.computed.clone()
    }

    pub fn watching(&self) -> Watching {
        self.open.inc();
        Watching(self.open.clone())
    }

    /// The state `system_id`'s watchers share.
    fn shared(&self, system_id: &str) -> Arc<Shared> {
        let mut by_system = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = by_system.get(system_id).and_then(Weak::upgrade) {
            return shared;
        }
        // Forget the systems nobody watches any more.
        by_system.retain(|_, shared| shared.strong_count() > 0);
        let shared = Arc::new(Shared {
            newest: tokio::sync::Mutex::new(None),
            computed: self.computed.clone(),
        });
        by_system.insert(system_id.into(), Arc::downgrade(&shared));
        shared
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.dec();
    }
}
