//! `AuditService`: the audit trail for admins (the auth layer lets only admins call it, whatever
//! the method's name).

use solarhub_proto::prost_types::Timestamp;
use solarhub_proto::tonic::{Request, Response, Status};
use solarhub_proto::v1::audit_service_server::AuditService;
use solarhub_proto::v1::{AuditEvent, ListAuditEventsRequest, ListAuditEventsResponse};

use crate::db::Database;
use crate::db::audit::{AuditFilter, AuditRow};

/// Events one call returns at most.
const MAX_LIMIT: u32 = 10_000;
const DEFAULT_LIMIT: u32 = 100;

pub(super) struct AuditApi {
    database: Database,
}

impl AuditApi {
    pub(super) fn new(database: Database) -> AuditApi {
        AuditApi { database }
    }
}

fn millis(field: &str, time: Option<Timestamp>) -> Result<Option<i64>, Status> {
    time.map(|t| {
        chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| Status::invalid_argument(format!("{field}: not a time")))
    })
    .transpose()
}

fn event(row: AuditRow) -> AuditEvent {
    AuditEvent {
        at: Some(Timestamp {
            seconds: row.at.div_euclid(1000),
            nanos: (row.at.rem_euclid(1000) * 1_000_000) as i32,
        }),
        principal: row.principal,
        source: row.source,
        method: row.method,
        target: row.target,
        outcome: row.outcome,
        duration_ms: row.duration_ms.max(0) as u64,
        calls: row.calls.max(0) as u64,
        detail: row.detail,
    }
}

#[solarhub_proto::tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        let request = request.into_inner();
        let outcome = match request.outcome.trim() {
            "" => None,
            text => Some(crate::audit::outcome_named(text).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "outcome: {} is not a gRPC code name (OK, INVALID_ARGUMENT, PERMISSION_DENIED, …)",
                    crate::limits::shown(text)
                ))
            })?),
        };
        if request.limit > MAX_LIMIT {
            return Err(Status::invalid_argument(format!(
                "limit: at most {MAX_LIMIT}, got {}",
                request.limit
            )));
        }
        let filter = AuditFilter {
            since: millis("since", request.since)?,
            until: millis("until", request.until)?,
            principal: Some(request.principal).filter(|p| !p.is_empty()),
            method: Some(request.method).filter(|m| !m.is_empty()),
            outcome,
            limit: i64::from(if request.limit == 0 {
                DEFAULT_LIMIT
            } else {
                request.limit
            }),
        };
        let rows = self
            .database
            .run(move |conn| crate::db::audit::list(conn, &filter))
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot read the audit trail");
                Status::unavailable("cannot read the audit trail now; try again")
            })?;
        Ok(Response::new(ListAuditEventsResponse {
            events: rows.into_iter().map(event).collect(),
        }))
    }
}
