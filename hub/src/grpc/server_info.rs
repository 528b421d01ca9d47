//! `ServerInfoService`: which hub answered and what database it runs on.

use solarhub_proto::prost_types::Timestamp;
use solarhub_proto::tonic::{Request, Response, Status};
use solarhub_proto::v1::server_info_service_server::ServerInfoService;
use solarhub_proto::v1::{GetServerInfoRequest, GetServerInfoResponse};

use crate::db::{self, Database, DbError};

pub struct ServerInfo {
    database: Database,
    started_at: Timestamp,
}

impl ServerInfo {
    pub fn new(database: Database) -> ServerInfo {
        let now = chrono::Utc::now();
        ServerInfo {
            database,
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
        Ok(Response::new(GetServerInfoResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            database_backend: self.database.backend().to_string(),
            applied_migrations: applied,
            started_at: Some(self.started_at),
        }))
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
