//! `ServerInfoService`: which hub answered, what database it runs on, how far back each sample
//! table goes, and what the next retention pass deletes (counted at most every 30 s).

use solarhub_proto::prost_types::Timestamp;
use solarhub_proto::tonic::{Request, Response, Status};
use solarhub_proto::v1::server_info_service_server::ServerInfoService;
use solarhub_proto::v1::{
    GetServerInfoRequest, GetServerInfoResponse, RowSpan as ProtoRowSpan, SampleRetention,
};

use crate::db::retention::{RowSpan, SampleTable};
use crate::db::{self, Database, DbError};
use crate::retention::{Keep, RetentionView, TablePlan, TableStatus};

/// How long the counts of what the next pass deletes are kept before they are counted again.
const PLAN_KEPT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct ServerInfo {
    database: Database,
    retention: Option<RetentionView>,
    started_at: Timestamp,
    plan: tokio::sync::Mutex<Option<(std::time::Instant, Vec<TablePlan>)>>,
}

impl ServerInfo {
    pub fn new(database: Database, retention: Option<RetentionView>) -> ServerInfo {
        let now = chrono::Utc::now();
        ServerInfo {
            database,
            retention,
            started_at: Timestamp {
                seconds: now.timestamp(),
                nanos: now.timestamp_subsec_nanos() as i32,
            },
            plan: tokio::sync::Mutex::new(None),
        }
    }

    /// What the next pass deletes, counted at most every [`PLAN_KEPT`]; empty without retention.
    async fn plan(&self) -> Result<Vec<TablePlan>, DbError> {
        let Some(retention) = &self.retention else {
            return Ok(Vec::new());
        };
        let mut kept = self.plan.lock().await;
        if let Some((at, plan)) = kept.as_ref()
            && at.elapsed() < PLAN_KEPT
        {
            return Ok(plan.clone());
        }
        let plan = crate::retention::plan(&self.database, &retention.policy, db::now_ms()).await?;
        *kept = Some((std::time::Instant::now(), plan.clone()));
        Ok(plan)
    }
}

#[solarhub_proto::tonic::async_trait]
impl ServerInfoService for ServerInfo {
    async fn get_server_info(
        &self,
        _request: Request<GetServerInfoRequest>,
    ) -> Result<Response<GetServerInfoResponse>, Status> {
        let applied = self
            .database
            .run(db::applied_migrations)
            .await
            .map_err(status_from_db)?;
        let policy = self.retention.as_ref().map(|retention| &retention.policy);
        let tables = crate::retention::status(&self.database, policy)
            .await
            .map_err(status_from_db)?;
        let plans = self.plan().await.map_err(status_from_db)?;
        // What the job decided when it looked; until then, what it would decide.
        let waiting = self
            .retention
            .as_ref()
            .and_then(|retention| retention.waiting.tables());
        Ok(Response::new(GetServerInfoResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            database_backend: self.database.backend().to_string(),
            applied_migrations: applied,
            started_at: Some(self.started_at),
            sample_tables: tables
                .into_iter()
                .map(|status| {
                    let plan = plans.iter().find(|plan| plan.table == status.table);
                    let waits = match &waiting {
                        Some(waiting) => waiting.contains_key(&status.table),
                        None => plan.is_some_and(|plan| plan.waits),
                    };
                    sample_retention(status, plan, waits)
                })
                .collect(),
        }))
    }
}

fn duration(keep: Keep) -> Option<solarhub_proto::prost_types::Duration> {
    match keep {
        Keep::Forever => None,
        Keep::For(period) => Some(solarhub_proto::prost_types::Duration {
            seconds: period.as_secs() as i64,
            nanos: period.subsec_nanos() as i32,
        }),
    }
}

fn row_span(span: RowSpan) -> ProtoRowSpan {
    let RowSpan {
        rows,
        oldest,
        newest,
    } = span;
    ProtoRowSpan {
        rows,
        oldest: oldest.map(solarhub_proto::time::timestamp),
        newest: newest.map(solarhub_proto::time::timestamp),
    }
}

fn sample_retention(status: TableStatus, plan: Option<&TablePlan>, waits: bool) -> SampleRetention {
    let TableStatus {
        table,
        keep,
        oldest,
        deleted_before,
        imported_deleted_before,
    } = status;
    let waiting_for = if waits {
        waiting_for(table, keep)
    } else {
        String::new()
    };
    SampleRetention {
        table: table.name().to_owned(),
        keep: duration(keep),
        oldest: oldest.map(solarhub_proto::time::timestamp),
        deleted_before: deleted_before.map(solarhub_proto::time::timestamp),
        keep_imported: plan.and_then(|plan| plan.keep_imported).and_then(duration),
        imported_deleted_before: imported_deleted_before.map(solarhub_proto::time::timestamp),
        collected_due: plan.map(|plan| row_span(plan.collected)),
        imported_due: plan.map(|plan| row_span(plan.imported_due)),
        imported_kept: plan.map(|plan| row_span(plan.imported_kept)),
        waiting: waits,
        waiting_for,
    }
}

/// What a waiting table needs, as a sentence.
pub(crate) fn waiting_for(table: SampleTable, keep: Keep) -> String {
    format!(
        "a period named for {table}: its rows older than {keep} were there before any pass went \
         through it; --retention {table}={keep} deletes them, --retention {table}=forever keeps them",
        table = table.name()
    )
}

pub(super) fn status_from_db(error: DbError) -> Status {
    tracing::warn!(%error, "database call failed");
    match error {
        // Contention (a deadlock or serialization failure that outlived its retries) passes:
        // UNAVAILABLE says "try again", as ingest says it.
        DbError::BadUrl(_)
        | DbError::Connect { .. }
        | DbError::Unavailable(_)
        | DbError::Contention(_) => Status::unavailable("database unavailable; try again"),
        DbError::Migration(_)
        | DbError::Query(_)
        | DbError::UniqueViolation(_)
        | DbError::ForeignKeyViolation(_)
        | DbError::Invalid(_) => Status::internal("database error"),
    }
}
