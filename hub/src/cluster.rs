//! Hubs that share one database share its work.
//!
//! **Leaders.** Each periodic job (the roller, the array sampler, retention) runs on one hub at a
//! time: the hub whose lock session holds the job's Postgres advisory lock. The lock lives with a
//! connection of its own, so when its hub dies (or loses the database) the server ends the session,
//! the lock is free, and another hub takes it at its next try (every [`LEADERSHIP_TRY`]). Leading
//! is for efficiency, not safety: every job is also correct when two hubs run it at once (a hub
//! cut off from the database may run a last round before it notices), since rolling is a
//! function of the samples, array samples are keyed on their cadence and deleting twice deletes
//! nothing more. On SQLite this hub leads everything.
//!
//! **Commit announcements.** Ingest announces each committed system with `NOTIFY` inside the
//! commit's transaction; every hub listens on a connection of its own and hands other hubs'
//! announcements to its watchers and MQTT bridge as if its own ingest had committed them. Its own
//! commits reach them directly. On SQLite only this hub's commits are seen.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::db::cluster::{CommitListener, LockSession};
use crate::db::{Database, DatabaseUrl};

/// How often a hub tries to take the jobs it does not lead, and checks the ones it does.
pub const LEADERSHIP_TRY: Duration = Duration::from_secs(1);
/// How often the listener looks for announcements: diesel reads pending notifications without
/// waiting but cannot wait on the connection's socket, so the listener reads every few
/// milliseconds (one non-blocking `recv` each time).
pub const LISTEN_EVERY: Duration = Duration::from_millis(3);

/// A periodic job that runs on one hub of those sharing a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Roller,
    Sampler,
    Retention,
}

impl Job {
    pub const ALL: [Job; 3] = [Job::Roller, Job::Sampler, Job::Retention];

    pub fn name(self) -> &'static str {
        match self {
            Job::Roller => "roller",
            Job::Sampler => "array sampler",
            Job::Retention => "retention",
        }
    }

    /// The job's advisory lock key: "solarhub" in ASCII with the last byte the job's number,
    /// next to the migration lock (which ends in 'b').
    fn lock_key(self) -> i64 {
        0x736f_6c61_7268_7500 + self as i64 + 1
    }
}

/// What a leader job does at its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// The hub is stopping: the job returns.
    Stop,
    /// Another hub leads the job: skip this turn.
    Follow,
    /// This hub leads it; `took_over` on the first turn it leads after not leading (what the job
    /// remembers from before may be behind another hub's work).
    Lead { took_over: bool },
}

/// The turns of one leader job, the loop every periodic job shares: wait, then run only while
/// this hub leads the job.
pub struct Turns {
    job: Job,
    leadership: Leadership,
    leading: bool,
}

impl Turns {
    pub fn new(job: Job, leadership: Leadership) -> Turns {
        Turns {
            job,
            leadership,
            leading: false,
        }
    }

    /// Waits `wait` (or until `shutdown` completes), then says what this turn is.
    pub async fn next(
        &mut self,
        wait: Duration,
        shutdown: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Turn {
        tokio::select! {
            _ = shutdown => return Turn::Stop,
            _ = tokio::time::sleep(wait) => {}
        }
        let leads = self.leadership.leads(self.job);
        let took_over = leads && !self.leading;
        self.leading = leads;
        match leads {
            true => Turn::Lead { took_over },
            false => Turn::Follow,
        }
    }
}

/// Which jobs this hub leads now. Cheap to clone and to ask.
#[derive(Clone)]
pub struct Leadership {
    leads: Arc<[AtomicBool; 3]>,
}

impl Leadership {
    /// Leads every job (SQLite, or a hub that shares nothing).
    pub fn alone() -> Leadership {
        Leadership {
            leads: Arc::new([const { AtomicBool::new(true) }; 3]),
        }
    }

    pub fn leads(&self, job: Job) -> bool {
        self.leads[job as usize].load(Ordering::Relaxed)
    }

    /// On Postgres, starts trying to lead every job (on a thread of its own, until `stop` is
    /// set); on SQLite, leads them all.
    pub fn start(database: &Database, stop: Arc<AtomicBool>) -> Leadership {
        if database.url().sqlite_path().is_some() {
            return Leadership::alone();
        }
        let leadership = Leadership {
            leads: Arc::new([const { AtomicBool::new(false) }; 3]),
        };
        let shared = leadership.clone();
        let url = database.url().clone();
        std::thread::Builder::new()
            .name("solarhub-leadership".into())
            .spawn(move || shared.keep_trying(&url, &stop))
            .expect("a thread can be started");
        leadership
    }

    fn keep_trying(&self, url: &DatabaseUrl, stop: &AtomicBool) {
        let mut session: Option<LockSession> = None;
        while !stop.load(Ordering::Relaxed) {
            if let Err(error) = self.try_round(url, &mut session) {
                if self.leads.iter().any(|lead| lead.load(Ordering::Relaxed)) {
                    tracing::warn!(%error, "lost the database session that held this hub's jobs; another hub takes them over");
                }
                session = None;
                for job in Job::ALL {
                    self.set(job, false);
                }
            }
            std::thread::sleep(LEADERSHIP_TRY);
        }
    }

    fn try_round(
        &self,
        url: &DatabaseUrl,
        session: &mut Option<LockSession>,
    ) -> Result<(), crate::db::DbError> {
        if session.is_none() {
            *session = LockSession::open(url)?;
        }
        let Some(held) = session.as_mut() else {
            return Ok(());
        };
        held.check()?;
        for job in Job::ALL {
            if !self.leads(job) && held.try_lock(job.lock_key())? {
                tracing::info!(job = job.name(), "this hub leads the job now");
                self.set(job, true);
            }
        }
        Ok(())
    }

    fn set(&self, job: Job, leads: bool) {
        self.leads[job as usize].store(leads, Ordering::Relaxed);
    }
}

/// This hub's name in its announcements, so its listener can leave out its own commits.
pub fn hub_instance() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the OS gives random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The announcement of a commit to `system_id` by hub `instance`.
pub fn announcement(instance: &str, system_id: &str) -> String {
    format!("{instance}/{system_id}")
}

/// On Postgres, listens for other hubs' commits (on a thread of its own, until `stop` is set) and
/// sends each announced system on `updates`, as this hub's ingest does for its own commits.
pub fn start_listening(
    database: &Database,
    instance: String,
    updates: crate::live::Updates,
    stop: Arc<AtomicBool>,
) {
    if database.url().sqlite_path().is_some() {
        return;
    }
    let url = database.url().clone();
    std::thread::Builder::new()
        .name("solarhub-listener".into())
        .spawn(move || {
            let mut listener: Option<CommitListener> = None;
            let mut lost = false;
            while !stop.load(Ordering::Relaxed) {
                let Some(open) = listener.as_mut() else {
                    match CommitListener::open(&url) {
                        Ok(opened) => {
                            if lost {
                                tracing::info!("listening for other hubs' commits again");
                            }
                            listener = opened;
                        }
                        Err(error) => {
                            if !lost {
                                tracing::warn!(%error, "cannot listen for other hubs' commits; retrying");
                            }
                            lost = true;
                            std::thread::sleep(LEADERSHIP_TRY);
                        }
                    }
                    continue;
                };
                match open.take() {
                    Ok(payloads) => {
                        for payload in payloads {
                            match payload.split_once('/') {
                                Some((from, system_id)) if from != instance => {
                                    let _ = updates.send(crate::live::Notice::now(system_id));
                                }
                                _ => {}
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "lost the connection that listens for other hubs' commits; reconnecting");
                        listener = None;
                        lost = true;
                        continue;
                    }
                }
                std::thread::sleep(LISTEN_EVERY);
            }
        })
        .expect("a thread can be started");
}
