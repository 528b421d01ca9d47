//! `CollectorService`: registration (assignments), and telemetry batches in, acks out.

use std::pin::Pin;

use solarhub_proto::time::{millis, timestamp};
use solarhub_proto::tonic::{self, Request, Response, Status, Streaming};
use solarhub_proto::v1 as proto;
use tokio_stream::wrappers::ReceiverStream;

use crate::auth::{Authenticator, Caller};
use crate::catalog::ListFilter;
use crate::catalog::Repository;
use crate::catalog::{Adapter, id_problem};
use crate::db::DbError;
use crate::ingest::{
    Batch, IncomingBattery, IncomingReading, Ingest, IngestError, Outcome, PollTally, Refusal,
    RefusalKind,
};

pub(crate) struct CollectorApi {
    ingest: Ingest,
    repository: Repository,
    authenticator: Option<Authenticator>,
    control: crate::control::Control,
}

impl CollectorApi {
    pub(crate) fn new(
        ingest: Ingest,
        repository: Repository,
        authenticator: Option<Authenticator>,
        control: crate::control::Control,
    ) -> Self {
        CollectorApi {
            ingest,
            repository,
            authenticator,
            control,
        }
    }
}

/// A collector may only register and send as the collector id it is bound to (an id that cannot
/// be one is refused as such first, whoever sends it).
/// Batches of one stream checked and sorted while an earlier one commits.
const PREPARED_AHEAD: usize = 8;
/// Most batches committed in one transaction.
const GROUP_MAX: usize = 8;

fn acting_as(caller: &Caller, collector_id: &str) -> Result<(), Status> {
    if let Some(problem) = id_problem(collector_id) {
        return Err(Status::invalid_argument(format!("collector_id {problem}")));
    }
    caller.may_act_as(collector_id).map_err(|refused| {
        tracing::warn!(target: crate::auth::layer::AUDIT, principal = %caller.name, wanted = collector_id, "collector id refused");
        Status::permission_denied(refused.to_string())
    })
}

/// The batch, and the readings refused before ingest looked at them (no timestamp).
fn batch_from_proto(batch: proto::TelemetryBatch) -> (Batch, Vec<Refusal>) {
    let proto::TelemetryBatch {
        collector_id,
        seq,
        readings,
        polls,
        sent_at,
        command_results: _,
    } = batch;
    let mut refused = Vec::new();
    let mut incoming = Vec::with_capacity(readings.len());
    for reading in readings {
        let proto::DeviceReading {
            device_id,
            adapter_id,
            ts,
            fields,
            text,
            batteries,
        } = reading;
        let Some(ts) = ts else {
            refused.push(Refusal::new(
                &device_id,
                0,
                RefusalKind::NoTimestamp,
                "the reading has no timestamp".into(),
            ));
            continue;
        };
        incoming.push(IncomingReading {
            device_id,
            adapter_id,
            ts: millis(&ts),
            fields: fields.into_iter().collect(),
            text: text.into_iter().collect(),
            batteries: batteries
                .into_iter()
                .map(|battery| {
                    let proto::BatteryReading {
                        index,
                        fields,
                        text,
                        cells,
                    } = battery;
                    IncomingBattery {
                        index,
                        fields: fields.into_iter().collect(),
                        text: text.into_iter().collect(),
                        cells: cells
                            .into_iter()
                            .map(|cell| {
                                let proto::CellReading { index, fields } = cell;
                                (index, fields.into_iter().collect())
                            })
                            .collect(),
                    }
                })
                .collect(),
        });
    }
    (
        Batch {
            collector_id,
            seq,
            readings: incoming,
            polls: polls.into_iter().map(tally_from_proto).collect(),
            sent_at: sent_at.map(|t| solarhub_proto::time::millis(&t)),
        },
        refused,
    )
}

fn tally_from_proto(tally: proto::PollTally) -> PollTally {
    let proto::PollTally {
        device_id,
        since,
        until,
        polls,
        answered,
        timeouts,
        exceptions,
        other_failures,
        dropped,
    } = tally;
    let until = until
        .or(since)
        .map_or_else(|| chrono::Utc::now().timestamp_millis(), |t| millis(&t));
    PollTally {
        device_id,
        until,
        polls,
        answered,
        timeouts,
        exceptions,
        other_failures,
        dropped: dropped.into_iter().collect(),
    }
}

fn ack(
    outcome: Outcome,
    mut early: Vec<Refusal>,
    metrics: &crate::metrics::IngestMetrics,
) -> proto::Ack {
    early.extend(outcome.refused);
    // Every refusal of a committed batch meets here once (a replay refuses nothing anew).
    if !outcome.replay {
        for refusal in &early {
            metrics.refused(refusal.kind.as_str());
        }
    }
    proto::Ack {
        seq: outcome.seq,
        replay: outcome.replay,
        stored: outcome.stored as u32,
        duplicates: outcome.duplicates as u32,
        refused: early
            .into_iter()
            .map(|r| proto::Refusal {
                device_id: r.device_id,
                ts: Some(timestamp(r.ts)),
                reason: r.reason,
                kind: r.kind.as_str().to_owned(),
            })
            .collect(),
        ..Default::default()
    }
}

fn status(error: IngestError) -> Status {
    match error {
        IngestError::Invalid(reason) | IngestError::Db(DbError::Invalid(reason)) => {
            Status::invalid_argument(reason)
        }
        IngestError::Db(
            error @ (DbError::Unavailable(_) | DbError::Connect { .. } | DbError::Contention(_)),
        ) => {
            tracing::warn!(%error, "ingest: database unavailable");
            Status::unavailable("database unavailable, send the batch again")
        }
        IngestError::Db(error) => {
            tracing::error!(%error, "ingest failed");
            Status::internal("internal error")
        }
    }
}

type AckStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<proto::Ack, Status>> + Send>>;

#[tonic::async_trait]
impl proto::collector_service_server::CollectorService for CollectorApi {
    async fn register(
        &self,
        request: Request<proto::RegisterRequest>,
    ) -> Result<Response<proto::RegisterResponse>, Status> {
        let caller = super::caller(&request)?;
        let proto::RegisterRequest {
            collector_id,
            version,
        } = request.into_inner();
        if let Some(problem) = id_problem(&collector_id) {
            return Err(Status::invalid_argument(format!("collector_id {problem}")));
        }
        acting_as(&caller, &collector_id)?;
        let filter = ListFilter {
            collector_id: Some(collector_id.clone()),
            ..ListFilter::default()
        };
        let mut assignments = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .repository
                .list::<Adapter>(filter.clone(), 1000, token)
                .await
                .map_err(super::catalog::status)?;
            assignments.extend(
                page.items
                    .into_iter()
                    .map(|(adapter, _)| proto::Assignment {
                        adapter_id: adapter.adapter_id,
                        device_id: adapter.device_id.unwrap_or_default(),
                        device_type: adapter.device_type.unwrap_or_default(),
                        adapter_type: adapter.adapter_type,
                        config_json: adapter.config_json,
                        priority: adapter.priority,
                        enabled: adapter.enabled,
                    }),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        if assignments.is_empty() {
            tracing::warn!(collector = %collector_id, %version, "unknown collector refused");
            return Err(Status::not_found(format!(
                "collector {collector_id} has no adapters assigned: set adapter.collector_id to {collector_id} for the adapters it should run"
            )));
        }
        let last_committed_seq = self
            .ingest
            .last_seq(collector_id.clone())
            .await
            .map_err(status)?;
        self.ingest
            .note_version(collector_id.clone(), version.clone())
            .await
            .map_err(status)?;
        tracing::info!(collector = %collector_id, %version, adapters = assignments.len(), last_committed_seq, "collector registered");
        Ok(Response::new(proto::RegisterResponse {
            assignments,
            last_committed_seq,
            control: true,
        }))
    }

    type StreamTelemetryStream = AckStream;

    async fn stream_telemetry(
        &self,
        request: Request<Streaming<proto::TelemetryBatch>>,
    ) -> Result<Response<AckStream>, Status> {
        let caller = super::caller(&request)?;
        let stream_caller = caller.clone();
        let mut inbound = request.into_inner();
        let ingest = self.ingest.clone();
        let authenticator = self.authenticator.clone();
        let control = self.control.clone();
        // A small buffer: a collector that stops reading acks stops the stream, not the hub.
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let commands = sender.clone();
        // Two stages, so the next batch is decoded, checked and sorted into rows while the
        // previous one commits (on two cores this was a third of the time per batch, ingest
        // bench). Commits stay in stream order; the first refusal or error ends the stream.
        let (prepared_tx, mut prepared_rx) = tokio::sync::mpsc::channel(PREPARED_AHEAD);
        let preparing = ingest.clone();
        tokio::spawn(async move {
            // The stream is this collector's way for control commands once it has named itself.
            let mut attached: Option<crate::control::Attached> = None;
            loop {
                let batch = match inbound.message().await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => return,
                    Err(error) => {
                        tracing::debug!(%error, "telemetry stream ended");
                        return;
                    }
                };
                // A token revoked while the stream is open stops it within the cache's lifetime.
                let revoked = match &authenticator {
                    Some(authenticator) => match authenticator.still_valid(&caller).await {
                        Ok(valid) => (!valid).then(|| {
                            Status::unauthenticated("the token is not valid (unknown or revoked)")
                        }),
                        Err(error) => {
                            tracing::warn!(%error, "cannot check a token");
                            Some(Status::unavailable(
                                "cannot check credentials now; try again",
                            ))
                        }
                    },
                    None => None,
                };
                let next = match revoked {
                    Some(refusal) => Err(refusal),
                    None => match acting_as(&caller, &batch.collector_id) {
                        Err(refusal) => Err(refusal),
                        Ok(())
                            if attached
                                .as_ref()
                                .is_some_and(|a| a.collector_id() != batch.collector_id) =>
                        {
                            Err(Status::invalid_argument(format!(
                                "collector_id: this stream is collector {}'s, not {}",
                                attached
                                    .as_ref()
                                    .map(|a| a.collector_id().to_owned())
                                    .unwrap_or_default(),
                                batch.collector_id
                            )))
                        }
                        Ok(()) if batch.seq == 0 => {
                            // Not readings: command results (and the stream naming its collector).
                            if attached.is_none() {
                                attached =
                                    Some(control.attach(&batch.collector_id, commands.clone()));
                            }
                            if !batch.readings.is_empty() {
                                Err(Status::invalid_argument(
                                    "seq 0 carries command results only; readings need a seq from 1",
                                ))
                            } else {
                                let stored = control
                                    .results(&batch.collector_id, batch.command_results)
                                    .await;
                                if !stored.is_empty() {
                                    let ack = proto::Ack {
                                        results_stored: stored,
                                        ..Default::default()
                                    };
                                    if commands.send(Ok(ack)).await.is_err() {
                                        return;
                                    }
                                }
                                continue;
                            }
                        }
                        Ok(()) => {
                            if attached.is_none() {
                                attached =
                                    Some(control.attach(&batch.collector_id, commands.clone()));
                            }
                            let (batch, early) = batch_from_proto(batch);
                            preparing
                                .prepare(batch)
                                .await
                                .map(|prepared| (prepared, early))
                                .map_err(status)
                        }
                    },
                };
                let failed = next.is_err();
                if prepared_tx.send(next).await.is_err() || failed {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(next) = prepared_rx.recv().await {
                // What is waiting commits together; a refusal ends the group and then the stream.
                let mut group = Vec::new();
                let mut early = Vec::new();
                let mut refusal = None;
                let mut next = Some(next);
                while let Some(item) = next.take() {
                    match item {
                        Ok((prepared, refused)) => {
                            group.push(prepared);
                            early.push(refused);
                        }
                        Err(status) => {
                            refusal = Some(status);
                            break;
                        }
                    }
                    if group.len() < GROUP_MAX {
                        next = prepared_rx.try_recv().ok();
                    }
                }
                let mut answers: Vec<Result<proto::Ack, Status>> = Vec::new();
                if !group.is_empty() {
                    match ingest.commit_group(group, None).await {
                        Ok(outcomes) => answers.extend(
                            outcomes
                                .into_iter()
                                .zip(early)
                                .map(|(outcome, early)| Ok(ack(outcome, early, ingest.metrics()))),
                        ),
                        Err(error) => answers.push(Err(status(error))),
                    }
                }
                answers.extend(refusal.map(Err));
                for answer in answers {
                    let failed = answer.is_err();
                    if sender.send(answer).await.is_err() || failed {
                        return;
                    }
                }
            }
        });
        // An idle stream (no batch to check the token on) ends on revocation too.
        Ok(Response::new(crate::auth::streams::while_valid(
            ReceiverStream::new(receiver),
            self.authenticator.clone(),
            stream_caller,
        )))
    }

    async fn send_batch(
        &self,
        request: Request<proto::TelemetryBatch>,
    ) -> Result<Response<proto::Ack>, Status> {
        let caller = super::caller(&request)?;
        let batch = request.into_inner();
        acting_as(&caller, &batch.collector_id)?;
        let (batch, early) = batch_from_proto(batch);
        let outcome = self.ingest.commit(batch, None).await.map_err(status)?;
        Ok(Response::new(ack(outcome, early, self.ingest.metrics())))
    }

    async fn list_collectors(
        &self,
        _request: Request<proto::ListCollectorsRequest>,
    ) -> Result<Response<proto::ListCollectorsResponse>, Status> {
        let rows = self.ingest.collectors().await.map_err(status)?;
        let collectors = rows
            .into_iter()
            .map(|row| proto::CollectorStatus {
                collector_id: row.collector_id,
                version: row.version.unwrap_or_default(),
                last_committed_seq: row.last_seq.max(0) as u64,
                last_seen_at: Some(timestamp(row.last_seen_at)),
                samples_stored: row.samples_stored.max(0) as u64,
            })
            .collect();
        Ok(Response::new(proto::ListCollectorsResponse { collectors }))
    }
}
