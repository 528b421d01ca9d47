//! `AuditService`: the audit trail for admins (the auth layer lets only admins call it, whatever
//! the method's name).

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

fn event(row: AuditRow) -> AuditEvent {
    AuditEvent {
        at: Some(solarhub_proto::time::timestamp(row.at)),
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
            since: request.since.as_ref().map(solarhub_proto::time::millis),
            until: request.until.as_ref().map(solarhub_proto::time::millis),
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
