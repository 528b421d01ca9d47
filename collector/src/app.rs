//! The collector's composition root: opens the outbox, obtains its assignments (from the hub, or
//! the ones cached last time), builds the plan of buses, consoles and packs, and runs the runtime,
//! the batcher and the sender until shutdown. Its `Observer` (metrics, data-quality tallies) is given by the caller, who may serve its metrics.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::drivers::reading::Reading;
use crate::observe::Observer;
use crate::uplink::outbox::Outbox;
use crate::uplink::{UplinkConfig, batch_readings, obtain_assignments, send_outbox};

/// Why a collector could not run.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error(transparent)]
    Outbox(#[from] crate::uplink::outbox::OutboxError),
    #[error(transparent)]
    Assignments(#[from] crate::uplink::AssignmentsError),
    #[error(transparent)]
    Plan(#[from] crate::uplink::assignment::PlanError),
}

/// Runs a collector against a hub: registers (or, when the hub is unreachable or refuses it, uses
/// the assignments it cached last time; with none cached, keeps trying), polls its devices, and
/// streams their readings through the outbox in `outbox_dir`. Readings are also copied to `tee`,
/// when given, once they are safe in the outbox.
/// Every poll and dropped value is reported to `observer` (metrics, and the data-quality tallies
/// that travel with the batches).
/// Returns when `shutdown` fires, after handing the hub what it can within [`DRAIN_TIMEOUT`].
pub async fn run_collector(
    config: UplinkConfig,
    outbox_dir: &std::path::Path,
    tee: Option<mpsc::Sender<Reading>>,
    observer: Arc<Observer>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), CollectorError> {
    let outbox = crate::uplink::outbox::SharedOutbox::new(Outbox::open(
        outbox_dir,
        crate::uplink::outbox::Limits::default(),
    )?);
    // From now on the outbox's depth is in the metrics, also while registration is retried.
    observer.metrics().attach_outbox(outbox.clone());
    let Some(assignments) = obtain_assignments(&config, &outbox, &mut shutdown.clone()).await?
    else {
        return Ok(());
    };
    let plan = crate::uplink::assignment::build_plan(
        &format!("assignments from {}", config.hubs_text()),
        &assignments,
        None,
    )?;
    let (router, jobs) = crate::bus::runtime::control_queues(&plan);
    let (commands_in, commands_out) = mpsc::channel(64);
    let (results_tx, results_rx) = watch::channel(0u64);
    let control = tokio::spawn(crate::control::run(
        router,
        commands_out,
        outbox.clone(),
        results_tx,
        config.write_budget_per_day,
    ));
    let (readings_in, readings_out) = mpsc::channel::<Reading>(1024);
    let (stored_tx, stored_rx) = watch::channel(0u64);
    let runtime = tokio::spawn(crate::bus::runtime::run(
        plan,
        readings_in,
        observer.clone(),
        shutdown.clone(),
        jobs,
    ));
    let batcher = tokio::spawn(batch_readings(
        config.clone(),
        outbox.clone(),
        readings_out,
        stored_tx,
        tee,
        observer.clone(),
    ));
    let sender = tokio::spawn(send_outbox(
        config,
        outbox,
        stored_rx,
        shutdown.clone(),
        observer,
        crate::control::ControlLink {
            commands: commands_in,
            results: results_rx,
        },
    ));
    let _ = runtime.await;
    let _ = batcher.await;
    let _ = sender.await;
    // The sender has dropped the command channel: the control task ends with the commands it
    // was executing, and with it its hold on the outbox.
    let _ = control.await;
    Ok(())
}
