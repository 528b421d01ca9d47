//! The gRPC edge: the only module that touches generated proto types. It converts requests to domain
//! calls and domain results to messages, and serves health and reflection (v1 and v1alpha) so
//! `grpcurl` works without `.proto` files.

mod audit;
mod catalog;
pub mod connections;
mod control;
mod history;
mod ingest;
mod live;
mod quality;
mod server_info;

use std::net::SocketAddr;

use solarhub_proto::tonic::service::Routes;
use solarhub_proto::tonic::transport::Server;
use solarhub_proto::v1::server_info_service_server::ServerInfoServiceServer;
use tokio::net::TcpListener;

use crate::catalog::Repository;
use crate::db::Database;
use crate::limits::rpc as limits;

pub use server_info::ServerInfo;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("gRPC server failed: {0}")]
    Transport(String),
    #[error("reflection setup failed: {0}")]
    Reflection(String),
    #[error("{0}")]
    Tls(String),
}

/// The caller the auth layer admitted; a call without one never passed the layer.
fn caller<T>(
    request: &solarhub_proto::tonic::Request<T>,
) -> Result<crate::auth::Caller, solarhub_proto::tonic::Status> {
    request
        .extensions()
        .get::<crate::auth::Caller>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("a call reached a service without passing the auth layer");
            solarhub_proto::tonic::Status::internal("internal error")
        })
}

/// A bound listener, so callers (tests) can learn the port before serving.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| ServeError::Bind {
            addr,
            reason: error.to_string(),
        })
}

/// The parts the API adapts, built by `crate::server`.
pub struct Parts {
    pub database: Database,
    pub repository: Repository,
    pub ingest: crate::ingest::Ingest,
    pub live: crate::live::Live,
    pub history: crate::rollup::history::History,
    pub quality: crate::quality::DataQuality,
    /// This hub's retention policy and what its job waits for (`None`: it deletes nothing),
    /// shown by `ServerInfo`.
    pub retention: Option<crate::retention::RetentionView>,
    /// In front of every service, outermost: per-method calls by status code (pass-through when
    /// metrics are off).
    pub rpc_metrics: crate::metrics::RpcLayer,
    /// In front of every service.
    pub auth: crate::auth::AuthLayer,
    /// Present when tokens are checked (long streams check theirs again).
    pub authenticator: Option<crate::auth::Authenticator>,
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// How many connections at once, and how soon each must speak HTTP/2.
    pub connections: connections::Limits,
    pub http: Option<crate::http::listener::HttpListener>,
    /// Control commands (ControlService, and their way to the collectors' streams).
    pub control: crate::control::Control,
}

/// Serves the API of `parts` on `listener` until `shutdown` completes: health, reflection (v1 and
/// v1alpha), and one service per area, each turning requests into calls on its part.
pub async fn serve_parts(
    parts: Parts,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let Parts {
        database,
        repository,
        ingest,
        live,
        history,
        quality,
        retention,
        rpc_metrics,
        auth,
        authenticator,
        tls,
        connections,
        http,
        control,
    } = parts;
    let http_authenticator = authenticator.clone();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ServerInfoServiceServer<ServerInfo>>()
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(solarhub_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|error| ServeError::Reflection(error.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(solarhub_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|error| ServeError::Reflection(error.to_string()))?;

    let routes = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ServerInfoServiceServer::new(ServerInfo::new(
            database.clone(),
            retention,
        )));
    health_reporter
        .set_serving::<solarhub_proto::v1::live_service_server::LiveServiceServer<live::LiveApi>>()
        .await;
    let routes = routes.add_service(
        solarhub_proto::v1::live_service_server::LiveServiceServer::new(live::LiveApi::new(
            live,
            authenticator.clone(),
        )),
    );
    health_reporter
        .set_serving::<solarhub_proto::v1::history_service_server::HistoryServiceServer<history::HistoryApi>>()
        .await;
    let routes = routes.add_service(
        solarhub_proto::v1::history_service_server::HistoryServiceServer::new(
            history::HistoryApi::new(history),
        )
        .max_decoding_message_size(limits::MAX_REQUEST_BYTES)
        .max_encoding_message_size(limits::MAX_ANSWER_BYTES),
    );
    health_reporter
        .set_serving::<solarhub_proto::v1::collector_service_server::CollectorServiceServer<ingest::CollectorApi>>()
        .await;
    let routes = routes.add_service(
        solarhub_proto::v1::collector_service_server::CollectorServiceServer::new(
            ingest::CollectorApi::new(ingest, repository.clone(), authenticator, control.clone()),
        )
        .max_decoding_message_size(limits::MAX_BATCH_BYTES),
    );
    health_reporter
        .set_serving::<solarhub_proto::v1::control_service_server::ControlServiceServer<control::ControlApi>>()
        .await;
    let routes = routes.add_service(
        solarhub_proto::v1::control_service_server::ControlServiceServer::new(
            control::ControlApi::new(control),
        )
        .max_decoding_message_size(limits::MAX_REQUEST_BYTES)
        .max_encoding_message_size(limits::MAX_ANSWER_BYTES),
    );
    health_reporter
        .set_serving::<solarhub_proto::v1::data_quality_service_server::DataQualityServiceServer<
            quality::QualityApi,
        >>()
        .await;
    let routes = routes.add_service(
        solarhub_proto::v1::data_quality_service_server::DataQualityServiceServer::new(
            quality::QualityApi::new(quality),
        )
        .max_decoding_message_size(limits::MAX_REQUEST_BYTES)
        .max_encoding_message_size(limits::MAX_ANSWER_BYTES),
    );
    health_reporter
        .set_serving::<solarhub_proto::v1::audit_service_server::AuditServiceServer<audit::AuditApi>>()
        .await;
    let routes = routes.add_service(
        solarhub_proto::v1::audit_service_server::AuditServiceServer::new(audit::AuditApi::new(
            database.clone(),
        ))
        .max_decoding_message_size(limits::MAX_REQUEST_BYTES)
        .max_encoding_message_size(limits::MAX_ANSWER_BYTES),
    );
    let routes = catalog::add_services(routes, repository, &health_reporter).await;
    // Every call, from a gRPC client or an HTTP route, passes the same layers.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    if let Some(listener) = http {
        let stack = tower::ServiceBuilder::new()
            .map_response(|response: http::Response<_>| {
                response.map(solarhub_proto::tonic::body::Body::new)
            })
            .layer(rpc_metrics.clone())
            .layer(auth.clone())
            .service(routes.clone());
        let gateway = crate::http::Gateway::new(tower::util::BoxCloneSyncService::new(stack));
        let front = crate::http::Front::new(gateway, http_authenticator, tls.is_some());
        let listener = listener.tokio().map_err(|error| ServeError::Bind {
            addr: listener.local_addr().unwrap_or(([0, 0, 0, 0], 0).into()),
            reason: error.to_string(),
        })?;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(
                url = %crate::http::listener::url(addr, tls.is_some()),
                "HTTP/JSON API and dashboard"
            );
        }
        let mut stopped = stopped.clone();
        tokio::spawn(crate::http::serve(
            listener,
            front.router(),
            tls.clone(),
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            },
        ));
    }
    let router = Server::builder()
        .timeout(limits::UNARY_DEADLINE)
        .concurrency_limit_per_connection(limits::CONCURRENCY_PER_CONNECTION)
        .http2_keepalive_interval(Some(limits::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(limits::KEEPALIVE_TIMEOUT))
        .layer(rpc_metrics)
        .layer(auth)
        .add_routes(routes);
    let served = match tls {
        Some(config) => {
            let incoming = connections::tls(listener, connections, config);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        None => {
            let incoming = connections::plain(listener, connections);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    served.map_err(|error| ServeError::Transport(error.to_string()))
}
