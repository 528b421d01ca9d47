//! Control commands on the hub (docs/control.md): kept in `control_commands` from the moment they
//! are asked for until they are done, failed, refused, expired or cancelled; delivered to their
//! collector on its telemetry stream; their results recorded (and audited) when the collector
//! sends them.
//!
//! - Every second a sweep expires pending commands whose deadline passed (and sent ones whose
//!   collector stayed silent [`SENT_GRACE`] past it), and delivers pending commands to the
//!   collectors streaming to this hub. A collector that connects gets its open commands at once
//!   (those sent before too: an id is executed once, so sending again is safe). Commands asked for
//!   on another hub of the same database reach this hub's collectors through the sweep.
//! - A collector's result is taken only for a command of that collector and device (a collector
//!   token can leak: it cannot finish another's commands), with bounded contents.
//! - The hub never sends a command at or after its deadline, and the collector never executes one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use solarhub_proto::tonic::Status;
use solarhub_proto::v1 as proto;
use tokio::sync::{mpsc, watch};

use crate::catalog::{Adapter, ListFilter, Repository};
use crate::db::control::CommandRow;
use crate::db::{Database, DbError, now_ms};

/// How long past its deadline a sent command waits for its collector's answer before it is
/// called expired (the collector gives a bus 30 s to finish a write begun before the deadline).
pub const SENT_GRACE: Duration = Duration::from_secs(40);
/// The deadline when a request gives none, and the longest one may give.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
pub const MAX_DEADLINE: Duration = Duration::from_secs(3600);
/// How long a call waits for its command to end before answering with its state so far.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Bounds on what a collector's result may carry.
const MAX_RESULT_WRITES: usize = 256;
const MAX_RESULT_SETTINGS: usize = 512;
const MAX_REASON_CHARS: usize = 2000;
/// How long a read of a device's settings is kept (the settings' history is their changes).
pub const READS_KEPT: Duration = Duration::from_secs(24 * 3600);
/// Most settings one command may set.
pub const MAX_SETTINGS: usize = 64;

type AckSender = mpsc::Sender<Result<proto::Ack, Status>>;

/// The hub's side of control; clone it freely.
#[derive(Clone)]
pub struct Control {
    database: Database,
    repository: Repository,
    auditor: crate::audit::Auditor,
    sessions: Arc<Mutex<Sessions>>,
    /// Bumped when a command of this hub changes (its waiters look again).
    changed: Arc<watch::Sender<u64>>,
    metrics: crate::metrics::ControlMetrics,
}

#[derive(Default)]
struct Sessions {
    next: u64,
    by_collector: HashMap<String, Vec<(u64, AckSender)>>,
}

/// A collector's stream, registered while it lives.
pub struct Attached {
    control: Control,
    collector_id: String,
    id: u64,
}

impl Attached {
    pub fn collector_id(&self) -> &str {
        &self.collector_id
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let mut sessions = lock(&self.control.sessions);
        if let Some(list) = sessions.by_collector.get_mut(&self.collector_id) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                sessions.by_collector.remove(&self.collector_id);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a new command asks.
#[derive(Debug, Clone)]
pub struct NewCommand {
    pub device_id: String,
    pub kind: proto::CommandKind,
    pub settings: std::collections::BTreeMap<String, String>,
    pub dry_run: bool,
    pub reverts: Option<String>,
    pub restore: Vec<proto::RegisterWrite>,
    pub deadline: Duration,
    pub requested_by: String,
}

impl NewCommand {
    /// A read of the device's settings, answered within `wait`.
    pub fn read(device_id: String, wait: Duration, requested_by: String) -> NewCommand {
        NewCommand {
            device_id,
            kind: proto::CommandKind::Read,
            settings: Default::default(),
            dry_run: false,
            reverts: None,
            restore: Vec::new(),
            deadline: wait,
            requested_by,
        }
    }

    /// Settings of one device to write (or, with `dry_run`, to show the writes of).
    pub fn set(
        device_id: String,
        settings: std::collections::BTreeMap<String, String>,
        dry_run: bool,
        deadline: Duration,
        requested_by: String,
    ) -> NewCommand {
        NewCommand {
            kind: proto::CommandKind::Set,
            settings,
            dry_run,
            ..NewCommand::read(device_id, deadline, requested_by)
        }
    }
}

impl Control {
    /// Starts the sweep (until `stopped` completes).
    pub fn start(
        database: Database,
        repository: Repository,
        auditor: crate::audit::Auditor,
        metrics: crate::metrics::ControlMetrics,
        stopped: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Control {
        let control = Control {
            database,
            repository,
            auditor,
            sessions: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
            metrics,
        };
        let sweeper = control.clone();
        tokio::spawn(async move {
            tokio::pin!(stopped);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for pass in 0u64.. {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = &mut stopped => return,
                }
                // Day-old reads are looked for once a minute.
                if let Err(error) = sweeper.sweep(pass % 60 == 0).await {
                    tracing::warn!(%error, "control sweep failed; trying again in a second");
                }
            }
        });
        control
    }

    /// One pass: an indexed read of what is due (and, when `prune_reads`, of day-old reads); a
    /// write only when something is.
    async fn sweep(&self, prune_reads: bool) -> Result<(), DbError> {
        let now = now_ms();
        let grace = SENT_GRACE.as_millis() as i64;
        // Reads first: a pass with nothing due writes nothing (SQLite has one writer).
        let expired = self
            .database
            .run(move |conn| crate::db::control::due_to_expire(conn, now, grace))
            .await?;
        if !expired.is_empty() {
            let due = expired.clone();
            self.database
                .run_write(move |conn| crate::db::control::expire(conn, &due, now))
                .await?;
            self.metrics.ended(
                state_name(proto::CommandState::Expired),
                expired.len() as u64,
            );
            tracing::info!(commands = ?expired, "control commands expired");
            self.changed.send_modify(|n| *n += 1);
            for id in expired {
                if let Ok(row) = self.get(&id).await {
                    let result = proto::CommandResult {
                        reason: row.reason.clone(),
                        ..Default::default()
                    };
                    self.audit(&row, proto::CommandState::Expired, &result)
                        .await;
                }
            }
        }
        let cutoff = now - READS_KEPT.as_millis() as i64;
        let old = if prune_reads {
            self.database
                .run(move |conn| crate::db::control::reads_before(conn, cutoff, 1000))
                .await?
        } else {
            Vec::new()
        };
        if !old.is_empty() {
            let deleted = self
                .database
                .run_write(move |conn| crate::db::control::delete(conn, &old))
                .await?;
            tracing::debug!(deleted, "old reads of settings deleted");
        }
        let collectors: Vec<String> = lock(&self.sessions).by_collector.keys().cloned().collect();
        if !collectors.is_empty() {
            self.deliver(collectors, false).await?;
        }
        Ok(())
    }

    /// Registers a collector's stream: its open commands go out on `acks` from now on.
    pub fn attach(&self, collector_id: &str, acks: AckSender) -> Attached {
        let id = {
            let mut sessions = lock(&self.sessions);
            sessions.next += 1;
            let id = sessions.next;
            sessions
                .by_collector
                .entry(collector_id.to_owned())
                .or_default()
                .push((id, acks));
            id
        };
        let control = self.clone();
        let collector = collector_id.to_owned();
        tokio::spawn(async move {
            if let Err(error) = control.deliver(vec![collector], true).await {
                tracing::warn!(%error, "cannot deliver control commands");
            }
        });
        Attached {
            control: self.clone(),
            collector_id: collector_id.to_owned(),
            id,
        }
    }

    /// Sends the open commands of `collectors` (pending ones; sent ones too when `resend`).
    async fn deliver(&self, collectors: Vec<String>, resend: bool) -> Result<(), DbError> {
        let now = now_ms();
        let rows = self
            .database
            .run(move |conn| crate::db::control::deliverable(conn, &collectors, now))
            .await?;
        let mut sent = Vec::new();
        for row in rows {
            if row.state == "sent" && !resend {
                continue;
            }
            let Some(mut command) = from_json::<proto::DeviceCommand>(&row.command) else {
                tracing::error!(command = %row.id, "a stored command is unreadable");
                continue;
            };
            let now = now_ms();
            if row.deadline <= now {
                continue;
            }
            command.deadline = Some(solarhub_proto::time::timestamp(row.deadline));
            command.remaining_ms = (row.deadline - now) as u64;
            let senders: Vec<AckSender> = lock(&self.sessions)
                .by_collector
                .get(&row.collector_id)
                .map(|list| list.iter().map(|(_, s)| s.clone()).collect())
                .unwrap_or_default();
            let ack = proto::Ack {
                commands: vec![command],
                ..Default::default()
            };
            // The newest stream of the collector; a full or closed one is tried at the next sweep.
            if let Some(sender) = senders.last()
                && sender.try_send(Ok(ack)).is_ok()
            {
                sent.push(row.id.clone());
            }
        }
        if !sent.is_empty() {
            self.metrics.sent(sent.len() as u64);
            self.database
                .run_write(move |conn| crate::db::control::mark_sent(conn, &sent))
                .await?;
            self.changed.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// Reads the device's settings: a new read, or the one already open for the device (callers
    /// at once share one read of the bus).
    pub async fn read(&self, new: NewCommand) -> Result<CommandRow, Status> {
        let device = new.device_id.clone();
        let open = self
            .database
            .run(move |conn| crate::db::control::open_read(conn, &device, now_ms()))
            .await
            .map_err(db_status)?;
        match open {
            Some(row) => Ok(row),
            None => self.submit(new).await,
        }
    }

    /// Stores a new command and sends it when its collector is streaming here.
    pub async fn submit(&self, new: NewCommand) -> Result<CommandRow, Status> {
        let row = command_row(&self.repository, new).await?;
        let stored = row.clone();
        self.database
            .run_write(move |conn| crate::db::control::insert(conn, &stored))
            .await
            .map_err(db_status)?;
        tracing::info!(command = %row.id, device = %row.device_id, collector = %row.collector_id, by = %row.requested_by, kind = %row.kind, dry_run = row.dry_run, "control command asked");
        if let Err(error) = self.deliver(vec![row.collector_id.clone()], false).await {
            tracing::warn!(%error, "cannot deliver a control command now; the sweep tries again");
        }
        Ok(row)
    }

    /// Waits until command `id` has ended, or `wait` has passed; its row then.
    pub async fn wait(&self, id: &str, wait: Duration) -> Result<CommandRow, Status> {
        wait_ended(&self.database, id, wait, Some(self.changed.subscribe())).await
    }

    pub async fn get(&self, id: &str) -> Result<CommandRow, Status> {
        get(&self.database, id).await
    }

    pub async fn list(
        &self,
        device_id: Option<String>,
        pending_only: bool,
        limit: i64,
    ) -> Result<Vec<CommandRow>, Status> {
        self.database
            .run(move |conn| {
                crate::db::control::list(conn, device_id.as_deref(), pending_only, limit)
            })
            .await
            .map_err(db_status)
    }

    /// The device's commands that changed something, newest first.
    pub async fn changes(&self, device_id: &str) -> Result<Vec<CommandRow>, Status> {
        let device = device_id.to_owned();
        self.database
            .run(move |conn| crate::db::control::changes(conn, &device, 200))
            .await
            .map_err(db_status)
    }

    pub async fn cancel(&self, id: &str, by: &str) -> Result<CommandRow, Status> {
        let row = self.get(id).await?;
        let (key, who) = (id.to_owned(), by.to_owned());
        let cancelled = self
            .database
            .run_write(move |conn| crate::db::control::cancel(conn, &key, &who, now_ms()))
            .await
            .map_err(db_status)?;
        if !cancelled {
            return Err(Status::failed_precondition(format!(
                "command_id: command {id} is {} and can no longer be cancelled",
                row.state
            )));
        }
        self.changed.send_modify(|n| *n += 1);
        self.metrics
            .ended(state_name(proto::CommandState::Cancelled), 1);
        self.get(id).await
    }

    /// Records the results `collector_id` sent; returns the ids it need not send again.
    pub async fn results(
        &self,
        collector_id: &str,
        results: Vec<proto::CommandResult>,
    ) -> Vec<String> {
        let mut stored = Vec::new();
        for mut result in results {
            let id = result.id.clone();
            let row = match self.get(&id).await {
                Ok(row) => row,
                Err(_) => {
                    tracing::warn!(collector = collector_id, command = %id, "a result for a command this hub does not know; dropped");
                    stored.push(id);
                    continue;
                }
            };
            if row.collector_id != collector_id || row.device_id != result.device_id {
                tracing::warn!(target: crate::auth::layer::AUDIT, collector = collector_id, command = %id, "a collector sent a result for a command that is not its own; refused");
                continue;
            }
            let state = match proto::CommandState::try_from(result.state) {
                Ok(
                    state @ (proto::CommandState::Done
                    | proto::CommandState::Failed
                    | proto::CommandState::Refused
                    | proto::CommandState::Expired),
                ) => state,
                _ => {
                    tracing::warn!(collector = collector_id, command = %id, state = result.state, "a result with no final state; refused");
                    continue;
                }
            };
            result.writes.truncate(MAX_RESULT_WRITES);
            result.settings.truncate(MAX_RESULT_SETTINGS);
            result.reason = crate::audit::bounded(&result.reason, MAX_REASON_CHARS);
            let reason = result.reason.clone();
            let text = to_json(&result);
            let state_name = state_name(state).to_owned();
            let at = now_ms();
            let key = id.clone();
            let recorded = self
                .database
                .run_write(move |conn| {
                    crate::db::control::finish(conn, &key, &state_name, &reason, &text, at)
                })
                .await;
            match recorded {
                Ok(true) => {
                    self.metrics.ended(self::state_name(state), 1);
                    self.audit(&row, state, &result).await;
                    stored.push(id);
                }
                // Recorded before (a result sent again).
                Ok(false) => stored.push(id),
                Err(error) => {
                    tracing::warn!(%error, command = %id, "cannot record a command's result; the collector sends it again");
                }
            }
        }
        if !stored.is_empty() {
            self.changed.send_modify(|n| *n += 1);
        }
        stored
    }

    /// One audit row per ended command: who asked, the device, what was written (before → new,
    /// read back), and the outcome.
    async fn audit(
        &self,
        row: &CommandRow,
        state: proto::CommandState,
        result: &proto::CommandResult,
    ) {
        let settings = from_json::<proto::DeviceCommand>(&row.command)
            .map(|c| {
                let mut pairs: Vec<String> =
                    c.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
                pairs.sort();
                pairs.join(" ")
            })
            .unwrap_or_default();
        let writes: Vec<String> = result
            .writes
            .iter()
            .map(|w| {
                format!(
                    "{}: {} -> {}{}",
                    w.address,
                    w.current.unwrap_or_default(),
                    w.new.unwrap_or_default(),
                    w.read_back
                        .map(|r| format!(" (read back {r})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let detail = format!(
            "command {} {}{}{}; writes [{}]{}",
            row.id,
            row.kind,
            if row.dry_run { " (dry run)" } else { "" },
            if settings.is_empty() {
                String::new()
            } else {
                format!(" {settings}")
            },
            writes.join(", "),
            if result.reason.is_empty() {
                String::new()
            } else {
                format!("; {}", result.reason)
            }
        );
        self.auditor
            .record_control(
                &row.requested_by,
                &format!("collector {}", row.collector_id),
                &format!("device {}", row.device_id),
                state_name(state),
                &detail,
            )
            .await;
    }
}

/// Command `id` as stored.
pub async fn get(database: &Database, id: &str) -> Result<CommandRow, Status> {
    let key = id.to_owned();
    database
        .run(move |conn| crate::db::control::get(conn, &key))
        .await
        .map_err(db_status)?
        .ok_or_else(|| Status::not_found(format!("command_id: no command {id:?}")))
}

/// Waits until command `id` has ended or `wait` has passed (its row then), looking again when
/// `changed` says so and every 250 ms (a result may come through another hub of the database).
pub async fn wait_ended(
    database: &Database,
    id: &str,
    wait: Duration,
    mut changed: Option<watch::Receiver<u64>>,
) -> Result<CommandRow, Status> {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let row = get(database, id).await?;
        let open = matches!(row.state.as_str(), "pending" | "sent");
        if !open || tokio::time::Instant::now() >= until {
            return Ok(row);
        }
        let pause = Duration::from_millis(250).min(until - tokio::time::Instant::now());
        match &mut changed {
            Some(changed) => {
                let _ = tokio::time::timeout(pause, changed.changed()).await;
            }
            None => tokio::time::sleep(pause).await,
        }
    }
}

/// The collector running `device_id` (its enabled adapter with the lowest priority number).
async fn collector_of(repository: &Repository, device_id: &str) -> Result<String, Status> {
    let filter = ListFilter {
        device_id: Some(device_id.to_owned()),
        ..ListFilter::default()
    };
    let page = repository
        .list::<Adapter>(filter, 100, String::new())
        .await
        .map_err(|error| {
            tracing::warn!(%error, "control: cannot read a device's adapters");
            Status::unavailable("cannot read the device's adapters now; try again")
        })?;
    let mut adapters: Vec<Adapter> = page.items.into_iter().map(|(a, _)| a).collect();
    if adapters.is_empty() {
        return Err(Status::not_found(format!(
            "device_id: no adapter reads device {device_id:?}"
        )));
    }
    adapters.retain(|a| a.enabled && a.collector_id.is_some());
    adapters.sort_by_key(|a| a.priority);
    adapters
        .into_iter()
        .find_map(|a| a.collector_id)
        .ok_or_else(|| {
            Status::failed_precondition(format!(
                "device_id: no enabled adapter of device {device_id} names a collector, so nothing can reach it"
            ))
        })
}

/// A new command's row, pending, not yet stored: its id, its collector (from the device's
/// adapters), its deadline from now, the `DeviceCommand` it sends.
pub async fn command_row(repository: &Repository, new: NewCommand) -> Result<CommandRow, Status> {
    let collector_id = collector_of(repository, &new.device_id).await?;
    let id = crate::auth::token::random_hex()
        .map_err(|_| Status::internal("cannot make a command id"))?[..24]
        .to_owned();
    let command = proto::DeviceCommand {
        id: id.clone(),
        device_id: new.device_id.clone(),
        kind: new.kind as i32,
        settings: new.settings.clone().into_iter().collect(),
        dry_run: new.dry_run,
        restore: new.restore.clone(),
        ..Default::default()
    };
    let now = now_ms();
    Ok(CommandRow {
        id,
        collector_id,
        device_id: new.device_id,
        kind: kind_name(new.kind).to_owned(),
        dry_run: new.dry_run,
        reverts: new.reverts,
        requested_by: new.requested_by,
        created_at: now,
        deadline: now + new.deadline.as_millis() as i64,
        state: "pending".into(),
        reason: String::new(),
        command: to_json(&command),
        result: None,
        finished_at: None,
    })
}

/// What reverting `original` asks: the values it replaced, written back into the bits it
/// owned. Refused for a command that wrote nothing (a read, a dry run, one refused or expired).
pub fn revert_of(
    original: &CommandRow,
    requested_by: &str,
    deadline: Duration,
) -> Result<NewCommand, Status> {
    let command = to_proto(original);
    let executed = matches!(original.state.as_str(), "done" | "failed");
    if original.dry_run || original.kind == "read" || !executed || command.writes.is_empty() {
        return Err(Status::failed_precondition(format!(
            "command_id: command {} wrote nothing, so there is nothing to revert",
            original.id
        )));
    }
    Ok(NewCommand {
        kind: proto::CommandKind::Revert,
        reverts: Some(original.id.clone()),
        restore: command.writes,
        ..NewCommand::read(
            original.device_id.clone(),
            deadline,
            requested_by.to_owned(),
        )
    })
}

fn db_status(error: DbError) -> Status {
    match error {
        DbError::Unavailable(_) | DbError::Connect { .. } | DbError::Contention(_) => {
            Status::unavailable("database unavailable, try again")
        }
        error => {
            tracing::error!(%error, "control");
            Status::internal("internal error")
        }
    }
}

pub fn kind_name(kind: proto::CommandKind) -> &'static str {
    match kind {
        proto::CommandKind::Read => "read",
        proto::CommandKind::Set => "set",
        proto::CommandKind::Revert => "revert",
        proto::CommandKind::Unspecified => "unspecified",
    }
}

pub fn state_name(state: proto::CommandState) -> &'static str {
    match state {
        proto::CommandState::Pending => "pending",
        proto::CommandState::Sent => "sent",
        proto::CommandState::Done => "done",
        proto::CommandState::Failed => "failed",
        proto::CommandState::Refused => "refused",
        proto::CommandState::Expired => "expired",
        proto::CommandState::Cancelled => "cancelled",
        proto::CommandState::Unspecified => "unspecified",
    }
}

/// A stored state (`done`) back: the proto enum's own name (`COMMAND_STATE_DONE`).
fn state_of(name: &str) -> proto::CommandState {
    proto::CommandState::from_str_name(&format!("COMMAND_STATE_{}", name.to_ascii_uppercase()))
        .unwrap_or_default()
}

/// A stored kind (`set`) back, likewise.
fn kind_of(name: &str) -> proto::CommandKind {
    proto::CommandKind::from_str_name(&format!("COMMAND_KIND_{}", name.to_ascii_uppercase()))
        .unwrap_or_default()
}

/// A message kept in `control_commands`, by its full name.
pub trait Stored: Message + Default {
    const NAME: &'static str;
}

impl Stored for proto::DeviceCommand {
    const NAME: &'static str = "solarhub.v1.DeviceCommand";
}

impl Stored for proto::CommandResult {
    const NAME: &'static str = "solarhub.v1.CommandResult";
}

/// `message` as the JSON stored in `control_commands` (the proto3 mapping, as grpcurl shows it;
/// readable in the database, a `TEXT` on both backends).
pub fn to_json<M: Stored>(message: &M) -> String {
    crate::descriptors::pool()
        .get_message_by_name(M::NAME)
        .and_then(|descriptor| {
            prost_reflect::DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
                .ok()
        })
        .and_then(|dynamic| serde_json::to_string(&dynamic).ok())
        .unwrap_or_default()
}

/// A stored message back; `None` for text that is not one.
pub fn from_json<M: Stored>(text: &str) -> Option<M> {
    let descriptor = crate::descriptors::pool().get_message_by_name(M::NAME)?;
    let mut json = serde_json::Deserializer::from_str(text);
    prost_reflect::DynamicMessage::deserialize(descriptor, &mut json)
        .ok()?
        .transcode_to::<M>()
        .ok()
}

/// A stored command as the API answers it.
pub fn to_proto(row: &CommandRow) -> proto::Command {
    let command = from_json::<proto::DeviceCommand>(&row.command).unwrap_or_default();
    let result = row
        .result
        .as_deref()
        .and_then(from_json::<proto::CommandResult>)
        .unwrap_or_default();
    proto::Command {
        id: row.id.clone(),
        device_id: row.device_id.clone(),
        collector_id: row.collector_id.clone(),
        kind: kind_of(&row.kind) as i32,
        settings: command.settings,
        dry_run: row.dry_run,
        reverts: row.reverts.clone().unwrap_or_default(),
        requested_by: row.requested_by.clone(),
        created_at: Some(solarhub_proto::time::timestamp(row.created_at)),
        deadline: Some(solarhub_proto::time::timestamp(row.deadline)),
        state: state_of(&row.state) as i32,
        reason: row.reason.clone(),
        writes: result.writes,
        settings_after: result.settings,
        finished_at: row.finished_at.map(solarhub_proto::time::timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `control_commands` keeps reads back as it was sent, and is readable JSON.
    #[test]
    fn commands_and_results_are_stored_as_json_and_read_back() {
        let command = proto::DeviceCommand {
            id: "abc".into(),
            device_id: "powdrive1".into(),
            kind: proto::CommandKind::Revert as i32,
            settings: [("tou1_start".to_owned(), "05:30".to_owned())].into(),
            restore: vec![proto::RegisterWrite {
                address: 148,
                current: Some(0),
                new: Some(530),
                read_back: None,
                mask: 0xFFFF,
            }],
            ..Default::default()
        };
        let text = to_json(&command);
        assert!(text.contains("\"tou1_start\":\"05:30\""), "{text}");
        assert!(text.contains("\"current\":0"), "{text}");
        assert_eq!(from_json::<proto::DeviceCommand>(&text), Some(command));
        assert_eq!(from_json::<proto::CommandResult>("not json"), None);
        // Stored names and the API's enums go both ways.
        for state in [
            proto::CommandState::Pending,
            proto::CommandState::Sent,
            proto::CommandState::Done,
            proto::CommandState::Failed,
            proto::CommandState::Refused,
            proto::CommandState::Expired,
            proto::CommandState::Cancelled,
        ] {
            assert_eq!(state_of(state_name(state)), state);
        }
        for kind in [
            proto::CommandKind::Read,
            proto::CommandKind::Set,
            proto::CommandKind::Revert,
        ] {
            assert_eq!(kind_of(kind_name(kind)), kind);
        }
    }
}
