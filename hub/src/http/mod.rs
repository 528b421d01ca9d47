//! The hub's front door for people and plain HTTP clients (DESIGN §11): the seed's HTTP/JSON
//! routes, Server-Sent Events, CSV, an OpenAPI document, browser sessions, on `--http-listen`.
//!
//! - `routes`: the route table (each route is one gRPC method);
//! - `gateway`: the in-process gRPC call a route makes, through the same layers as a gRPC client;
//! - `request`: a route's request from path, query and body; its answer as JSON or CSV;
//! - `session`: login, the session cookie and CSRF;
//! - `openapi`: the OpenAPI 3.1 document, made from the route table and the protos;
//! - `errors`: the JSON error answer and the HTTP status of each gRPC code;
//! - `listener`: accepting connections (HTTP/1.1 and h2, plaintext or TLS);
//! - `dashboard`: the page, its script and style, embedded, behind a same-origin-only CSP.

pub mod dashboard;
pub mod errors;
pub mod gateway;
pub mod listener;
pub mod openapi;
pub mod request;
pub mod routes;
pub mod session;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, RawPathParams, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use prost_reflect::{DynamicMessage, ReflectMessage as _, Value as ProtoValue};
use tokio_stream::StreamExt as _;

pub use errors::ApiError;
pub use gateway::{Gateway, GrpcStack};
pub use listener::serve;
use routes::{Answer, Route, Verb};
use session::Sessions;

/// Where a request came from (set per connection by the listener).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

#[derive(Clone)]
pub struct Front {
    gateway: Gateway,
    sessions: Arc<Sessions>,
    /// `None`: authentication is off (`--without-auth`, the demo).
    authenticator: Option<crate::auth::Authenticator>,
    /// Cookies are `Secure` (the listener speaks TLS).
    secure: bool,
    openapi: Arc<serde_json::Value>,
}

impl Front {
    pub fn new(
        gateway: Gateway,
        authenticator: Option<crate::auth::Authenticator>,
        secure: bool,
    ) -> Front {
        let openapi = Arc::new(openapi::document(gateway.pool()));
        Front {
            gateway,
            sessions: Arc::new(Sessions::default()),
            authenticator,
            secure,
            openapi,
        }
    }

    /// Every route, then login, session, logout and the OpenAPI document; anything else under
    /// `/api/` is a JSON 404.
    pub fn router(self) -> Router {
        let mut paths: BTreeMap<&'static str, MethodRouter<Front>> = BTreeMap::new();
        for route in routes::routes() {
            let filter = match route.verb {
                Verb::Get => axum::routing::MethodFilter::GET,
                Verb::Post => axum::routing::MethodFilter::POST,
                Verb::Patch => axum::routing::MethodFilter::PATCH,
                Verb::Delete => axum::routing::MethodFilter::DELETE,
            };
            let handler = move |State(front): State<Front>,
                                params: RawPathParams,
                                Query(query): Query<Vec<(String, String)>>,
                                peer: Option<axum::Extension<Peer>>,
                                headers: HeaderMap,
                                body: Bytes| async move {
                let path: Vec<(String, String)> = params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                let response = front
                    .call(route, &path, &query, peer.map(|p| p.0), &headers, &body)
                    .await
                    .unwrap_or_else(IntoResponse::into_response);
                // A session whose token the hub no longer takes is over.
                if response.status() == StatusCode::UNAUTHORIZED {
                    front.sessions.forget(&headers);
                }
                response
            };
            let entry = paths.remove(route.path).unwrap_or_default();
            paths.insert(route.path, entry.on(filter, handler));
        }
        let mut router = Router::new();
        for (path, methods) in paths {
            router = router.route(path, methods);
        }
        router
            .route("/api/login", post(login))
            .route("/api/logout", post(logout))
            .route("/api/session", get(session_view))
            .route("/api/openapi.json", get(openapi_document))
            .route("/api/{*rest}", axum::routing::any(api_not_found))
            .merge(dashboard::routes())
            .with_state(self)
    }

    async fn call(
        &self,
        route: &'static Route,
        path: &[(String, String)],
        query: &[(String, String)],
        peer: Option<Peer>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let method = self
            .gateway
            .method(route.rpc)
            .ok_or_else(|| ApiError::internal(format!("no method {}", route.rpc)))?;
        let caller = gateway::Caller {
            authorization: self.sessions.authorization(headers, route.verb)?,
            peer: peer.map(|p| p.remote),
            local: peer.map(|p| p.local),
        };
        let incoming = request::Incoming { path, query, body };
        let mut message = match request::build(route, &method.input(), &incoming) {
            Ok(message) => message,
            Err(error) => return Err(self.refused_first(&method, &caller, error).await),
        };
        if route.only_system {
            self.fill_only_system(&mut message, &caller).await?;
        }
        let csv = query
            .iter()
            .any(|(k, v)| k == request::FORMAT && v.eq_ignore_ascii_case("csv"));
        match route.answer {
            Answer::Events => {
                let stream = self
                    .gateway
                    .server_stream(&method, message, &caller)
                    .await
                    .map_err(ApiError::from)?;
                let events = stream.map(|item| {
                    let event = match item {
                        Ok(message) => match request::json(&message) {
                            Ok(json) => Event::default().event("now").json_data(json),
                            Err(error) => Event::default().event("error").json_data(error),
                        },
                        Err(status) => Event::default()
                            .event("error")
                            .json_data(ApiError::from(status)),
                    };
                    event.map_err(|error| std::io::Error::other(error.to_string()))
                });
                Ok(Sse::new(events)
                    .keep_alive(KeepAlive::default())
                    .into_response())
            }
            Answer::Json | Answer::JsonOrCsv => {
                let answer = self
                    .gateway
                    .unary(&method, message, &caller)
                    .await
                    .map_err(ApiError::from)?;
                if csv && route.answer == Answer::JsonOrCsv {
                    let bytes = request::csv(&answer)?;
                    let name = route
                        .path
                        .trim_start_matches("/api/")
                        .replace(['/', '{', '}'], "-");
                    return Ok((
                        [
                            (
                                http::header::CONTENT_TYPE,
                                HeaderValue::from_static("text/csv; charset=utf-8"),
                            ),
                            (
                                http::header::CONTENT_DISPOSITION,
                                HeaderValue::from_str(&format!(
                                    "attachment; filename=\"{}.csv\"",
                                    name.trim_matches('-')
                                ))
                                .unwrap_or(HeaderValue::from_static("attachment")),
                            ),
                        ],
                        bytes,
                    )
                        .into_response());
                }
                let json = request::json(&answer)?;
                let status = if route.verb == Verb::Post && route.body == routes::Body::Resource {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                Ok((status, axum::Json(json)).into_response())
            }
        }
    }

    /// What a caller whose request did not fit (`error`) is told: the refusal the gRPC stack gives
    /// it when it may not call the method at all (so a refused caller learns nothing about the
    /// route's parameters, and the refusal is in the audit trail), else `error`.
    async fn refused_first(
        &self,
        method: &prost_reflect::MethodDescriptor,
        caller: &gateway::Caller,
        error: ApiError,
    ) -> ApiError {
        let path = gateway::path_of(method);
        if crate::auth::layer::admits(
            self.authenticator.as_ref(),
            caller.authorization.clone(),
            &path,
        )
        .await
        {
            return error;
        }
        // Refused by the layer before the service sees it: the empty request is never run.
        match self
            .gateway
            .unary(method, DynamicMessage::new(method.input()), caller)
            .await
        {
            Err(status) => ApiError::from(status),
            Ok(_) => error,
        }
    }

    /// Sets an empty `system_id` to the hub's only system (the old app's routes name none); with
    /// several systems the request goes on without one and its method says which field is missing.
    async fn fill_only_system(
        &self,
        message: &mut DynamicMessage,
        caller: &gateway::Caller,
    ) -> Result<(), ApiError> {
        let Some(field) = message.descriptor().get_field_by_name("system_id") else {
            return Ok(());
        };
        if message
            .get_field(&field)
            .as_str()
            .is_some_and(|s| !s.is_empty())
        {
            return Ok(());
        }
        let method = self
            .gateway
            .method("SystemService/ListSystems")
            .ok_or_else(|| ApiError::internal("no ListSystems"))?;
        let list = self
            .gateway
            .unary(&method, DynamicMessage::new(method.input()), caller)
            .await?;
        let systems = list
            .get_field_by_name("systems")
            .and_then(|value| value.as_list().map(<[ProtoValue]>::to_vec))
            .unwrap_or_default();
        if let [only] = systems.as_slice()
            && let Some(system) = only.as_message()
            && let Some(id) = system.get_field_by_name("system_id")
        {
            message.set_field(&field, id.into_owned());
        }
        Ok(())
    }
}

/// `POST /api/login` with `{"token": "shub_…"}`.
async fn login(State(front): State<Front>, body: Bytes) -> Response {
    let result = async {
        let Some(authenticator) = &front.authenticator else {
            return Ok(axum::Json(anonymous()).into_response());
        };
        let body: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| ApiError::bad_request("token", "send {\"token\": \"shub_…\"}"))?;
        let token = body
            .get("token")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| ApiError::bad_request("token", "send {\"token\": \"shub_…\"}"))?;
        let (cookie, view) = front
            .sessions
            .login(authenticator, token.trim(), front.secure)
            .await?;
        Ok::<_, ApiError>(([(http::header::SET_COOKIE, cookie)], axum::Json(view)).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/logout`: ends the session (a change: it needs the CSRF token).
async fn logout(State(front): State<Front>, headers: HeaderMap) -> Response {
    let result = (|| {
        front.sessions.authorization(&headers, Verb::Post)?;
        let cookie = front.sessions.logout(&headers, front.secure)?;
        Ok::<_, ApiError>(
            (StatusCode::NO_CONTENT, [(http::header::SET_COOKIE, cookie)]).into_response(),
        )
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/session`: who the page is logged in as, and its CSRF token.
async fn session_view(State(front): State<Front>, headers: HeaderMap) -> Response {
    if front.authenticator.is_none() {
        return axum::Json(anonymous()).into_response();
    }
    match front.sessions.view(&headers) {
        Some(view) => axum::Json(view).into_response(),
        None => {
            ApiError::unauthenticated("not logged in: POST /api/login with a token").into_response()
        }
    }
}

fn anonymous() -> session::SessionView {
    session::SessionView {
        principal: "anonymous".into(),
        role: crate::auth::Role::Admin.to_string(),
        csrf_token: String::new(),
        auth_required: false,
        expires_in: None,
    }
}

async fn openapi_document(State(front): State<Front>) -> Response {
    axum::Json(front.openapi.as_ref().clone()).into_response()
}

async fn api_not_found(uri: http::Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no route {}; /api/openapi.json lists them", uri.path()),
    )
    .into_response()
}
