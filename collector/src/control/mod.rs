//! Control commands (docs/control.md): the hub sends them on the telemetry stream, this module
//! routes each to its device's bus task, which executes it between two polls (`execute`), and
//! keeps every result in the outbox until the hub has stored it.
//!
//! - A command id is executed at most once: a command the hub sends again (after a reconnect)
//!   gets its recorded result again.
//! - A command is never executed at or after its deadline: the earlier of the hub's deadline by
//!   this collector's clock and the time left when the hub sent it.
//! - Commands of one device run one after the other (the daily budget is counted exactly);
//!   devices run independently.

pub mod execute;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use solarhub_proto::v1::{CommandState, DeviceCommand};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::uplink::outbox::SharedOutbox;
pub use execute::{Executed, Job};

/// Registers one device may be written per 24 hours unless configured otherwise.
pub const DEFAULT_WRITE_BUDGET: u32 = 50;

/// How long after its deadline a command's bus task is given to answer (a write that started
/// before the deadline finishes, with its read-back).
const GRACE: Duration = Duration::from_secs(30);

/// Where each device's commands go: its bus task.
#[derive(Debug, Clone, Default)]
pub struct Router {
    devices: HashMap<String, mpsc::Sender<Job>>,
}

impl Router {
    /// Commands of each device go to the queue of its bus task.
    pub fn new(devices: HashMap<String, mpsc::Sender<Job>>) -> Router {
        Router { devices }
    }
}

/// What the uplink and the control task share.
#[derive(Debug, Clone)]
pub struct ControlLink {
    /// Commands received from the hub.
    pub commands: mpsc::Sender<DeviceCommand>,
    /// Bumped whenever a result is recorded (the uplink then sends what the hub has not stored).
    pub results: watch::Receiver<u64>,
}

/// Executes the commands that arrive on `commands` until the channel closes.
pub async fn run(
    router: Router,
    mut commands: mpsc::Receiver<DeviceCommand>,
    outbox: SharedOutbox,
    results: watch::Sender<u64>,
    budget: u32,
) {
    let results = Arc::new(results);
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut running = tokio::task::JoinSet::new();
    let mut device_locks: HashMap<String, Arc<tokio::sync::Mutex<()>>> = HashMap::new();
    while let Some(command) = commands.recv().await {
        match outbox
            .run({
                let id = command.id.clone();
                move |outbox| outbox.command_result(&id)
            })
            .await
        {
            Ok(Some(_)) => {
                // Done before: its result goes to the hub again, the device is left alone.
                let ids = vec![command.id.clone()];
                let _ = outbox
                    .run(move |outbox| outbox.confirm_results(&ids, false))
                    .await;
                results.send_modify(|n| *n += 1);
                continue;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%error, command = %command.id, "cannot read the command journal; the command is not executed");
                continue;
            }
        }
        if !lock(&in_flight).insert(command.id.clone()) {
            continue;
        }
        let device_lock = device_locks
            .entry(command.device_id.clone())
            .or_default()
            .clone();
        let queue = router.devices.get(&command.device_id).cloned();
        let (outbox, results, in_flight) = (outbox.clone(), results.clone(), in_flight.clone());
        running.spawn(async move {
            let _serial = device_lock.lock().await;
            let id = command.id.clone();
            let executed = dispatch(command, queue, &outbox, budget).await;
            let at = crate::clock::now_ms();
            let result = executed.result.clone();
            let written = executed.registers_written;
            match outbox
                .run(move |outbox| outbox.record_command_result(&result, written, at))
                .await
            {
                Ok(()) => {
                    tracing::info!(command = %id, device = %executed.result.device_id, state = ?CommandState::try_from(executed.result.state), reason = %executed.result.reason, registers_written = written, "control command ended");
                }
                Err(error) => {
                    tracing::error!(%error, command = %id, "cannot record a command's result")
                }
            }
            lock(&in_flight).remove(&id);
            results.send_modify(|n| *n += 1);
        });
        // Forget the ones that ended.
        while running.try_join_next().is_some() {}
    }
    // No more commands: the ones running end (their buses answer, or have stopped).
    while running.join_next().await.is_some() {}
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The deadline of `command` on this collector's clock.
fn local_deadline(command: &DeviceCommand) -> Instant {
    let now = Instant::now();
    let by_remaining = now + Duration::from_millis(command.remaining_ms);
    let by_clock = command.deadline.as_ref().map(|deadline| {
        let left = solarhub_proto::time::millis(deadline) - crate::clock::now_ms();
        now + Duration::from_millis(left.max(0) as u64)
    });
    by_clock.map_or(by_remaining, |clock| clock.min(by_remaining))
}

async fn dispatch(
    command: DeviceCommand,
    queue: Option<mpsc::Sender<Job>>,
    outbox: &SharedOutbox,
    budget: u32,
) -> Executed {
    let deadline = local_deadline(&command);
    if Instant::now() >= deadline {
        return Executed::ended(
            &command,
            CommandState::Expired,
            "its deadline had passed when it reached the collector: nothing written",
        );
    }
    let Some(queue) = queue else {
        return Executed::ended(
            &command,
            CommandState::Refused,
            format!(
                "device {} is not polled by this collector through a register map: it has no settings here",
                command.device_id
            ),
        );
    };
    let device = command.device_id.clone();
    let since = crate::clock::now_ms() - 24 * 3600 * 1000;
    let used = match outbox
        .run(move |outbox| outbox.registers_written_since(&device, since))
        .await
    {
        Ok(used) => used,
        Err(error) => {
            return Executed::ended(
                &command,
                CommandState::Refused,
                format!("the write budget cannot be counted ({error}): nothing written"),
            );
        }
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = Job {
        command: command.clone(),
        deadline,
        budget_left: i64::from(budget) - used,
        budget,
        reply,
    };
    if queue.send(job).await.is_err() {
        return Executed::ended(
            &command,
            CommandState::Failed,
            "the device's bus is not running: nothing written",
        );
    }
    match tokio::time::timeout_at(deadline + GRACE, answer).await {
        Ok(Ok(executed)) => executed,
        // The bus task never got to it (the line is down): it will not execute it any more.
        Ok(Err(_)) | Err(_) => Executed::ended(
            &command,
            CommandState::Expired,
            "the device's bus was not free before the deadline: nothing written",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uplink::outbox::{Limits, Outbox};
    use solarhub_proto::v1::CommandKind;

    fn command(id: &str, remaining_ms: u64) -> DeviceCommand {
        DeviceCommand {
            id: id.into(),
            device_id: "inv".into(),
            kind: CommandKind::Set as i32,
            settings: [("tou1_soc_pct".to_owned(), "50".to_owned())].into(),
            remaining_ms,
            ..Default::default()
        }
    }

    /// A command id is executed once: sent again (after a reconnect), it gets its recorded result
    /// and the device is not asked again; a command whose time is up never reaches the bus.
    #[tokio::test]
    async fn a_command_is_executed_once_and_never_late() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = SharedOutbox::new(Outbox::open(dir.path(), Limits::default()).unwrap());
        let (bus, mut jobs) = mpsc::channel::<Job>(4);
        let router = Router::new(HashMap::from([("inv".to_owned(), bus)]));
        let (commands, incoming) = mpsc::channel(4);
        let (results, mut recorded) = watch::channel(0u64);
        tokio::spawn(run(router, incoming, outbox.clone(), results, 50));
        // The bus answers every job it gets, and counts them.
        let (seen_tx, mut seen) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(job) = jobs.recv().await {
                let _ = seen_tx.send(job.command.id.clone());
                let mut done = Executed::ended(&job.command, CommandState::Done, "");
                done.registers_written = 1;
                let _ = job.reply.send(done);
            }
        });
        commands.send(command("c1", 60_000)).await.unwrap();
        recorded.changed().await.unwrap();
        assert_eq!(seen.recv().await.as_deref(), Some("c1"));
        let results = outbox.run(|o| o.unconfirmed_results()).await.unwrap();
        assert_eq!(results.len(), 1);
        outbox
            .run(|o| o.confirm_results(&["c1".to_owned()], true))
            .await
            .unwrap();
        // Again: answered from the record, unconfirmed so it is sent again, not executed.
        commands.send(command("c1", 60_000)).await.unwrap();
        recorded.changed().await.unwrap();
        let again = outbox.run(|o| o.unconfirmed_results()).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].state, CommandState::Done as i32);
        // Late: expired before the bus, nothing written, nothing counted.
        commands.send(command("c2", 0)).await.unwrap();
        recorded.changed().await.unwrap();
        let late = outbox
            .run(|o| o.command_result("c2"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(late.state, CommandState::Expired as i32);
        assert!(seen.try_recv().is_err(), "nothing but c1 reached the bus");
        let used = outbox
            .run(|o| o.registers_written_since("inv", 0))
            .await
            .unwrap();
        assert_eq!(used, 1);
    }
}
