//! `ServerInfoService`: which hub answered, what database it runs on, and how far back each
//! sample table goes.

use solarhub_proto::prost_types::Timestamp;
use solarhub_proto::tonic::{Request, Response, Status};
use solarhub_proto::v1::server_info_service_server::ServerInfoService;
use solarhub_proto::v1::{GetServerInfoRequest, GetServerInfoResponse, SampleRetention};

use crate::db::{self, Database, DbError};

pub struct ServerInfo {
    database: Database,
    retention: Option<crate::retention::Policy>,
    started_at: Timestamp,
}

impl ServerInfo {
    pub fn new(database: Database, retention: Option<crate::retention::Policy>) -> ServerInfo {
        let now = chrono::Utc::now();
        ServerInfo {
            database,
            retention,
            started_at: Timestamp {
                seconds: now.timestamp(),
                nanos: now.timestamp_subsec_nanos() as i32,
            },
        }
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
        let tables = crate::retention::status(&self.database, self.retention.as_ref())
            .await
            .map_err(status_from_db)?;
        Ok(Response::new(GetServerInfoResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            database_backend: self.database.backend().to_string(),
            applied_migrations: applied,
            started_at: Some(self.started_at),
            sample_tables: tables.into_iter().map(sample_retention).collect(),
        }))
    }
}

fn sample_retention(status: crate::retention::TableStatus) -> SampleRetention {
    let crate::retention::TableStatus {
        table,
        keep,
        oldest,
        deleted_before,
    } = status;
    SampleRetention {
        table: table.name().to_owned(),
        keep: match keep {
            crate::retention::Keep::Forever => None,
            crate::retention::Keep::For(period) => Some(solarhub_proto::prost_types::Duration {
                seconds: period.as_secs() as i64,
                nanos: period.subsec_nanos() as i32,
            }),
        },
        oldest: oldest.map(solarhub_proto::time::timestamp),
        deleted_before: deleted_before.map(solarhub_proto::time::timestamp),
    }
}

pub(super) fn status_from_db(error: DbError) -> Status {
    tracing::warn!(%error, "database call failed");
    match error {
        DbError::BadUrl(_) | DbError::Connect { .. } | DbError::Unavailable(_) => {
            Status::unavailable("database unavailable")
        }
        DbError::Migration(_)
        | DbError::Query(_)
        | DbError::UniqueViolation(_)
        | DbError::ForeignKeyViolation(_)
        | DbError::Contention(_)
        | DbError::Invalid(_) => Status::internal("database error"),
    }
}
