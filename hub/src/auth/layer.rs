//! The tower layer in front of every service: decides whether a call may go on (and answers
//! UNAUTHENTICATED or PERMISSION_DENIED itself when not), puts the [`Caller`] in the request's
//! extensions, and writes the audit line of every write.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use solarhub_proto::tonic::Status;
use solarhub_proto::tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use crate::auth::token::{self, BearerProblem};
use crate::auth::{Access, Authenticator, Caller, Credential, Role, access, tls};

/// Where audit lines go (`RUST_LOG=solarhub::audit=info` shows only them).
pub const AUDIT: &str = "solarhub::audit";

/// The layer; clone it freely.
#[derive(Clone)]
pub struct AuthLayer {
    gate: Arc<Gate>,
}

struct Gate {
    /// `None`: authentication is off and every caller without a client certificate is an admin.
    authenticator: Option<Authenticator>,
}

impl AuthLayer {
    /// Checks bearer tokens (and client certificates) against `authenticator`.
    pub fn required(authenticator: Authenticator) -> AuthLayer {
        AuthLayer {
            gate: Arc::new(Gate {
                authenticator: Some(authenticator),
            }),
        }
    }

    /// `--without-auth`: every call is admitted (a client certificate still binds a collector).
    pub fn off() -> AuthLayer {
        AuthLayer {
            gate: Arc::new(Gate {
                authenticator: None,
            }),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            gate: self.gate.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S, B, RB> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was not polled ready stays here; the ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        Box::pin(async move {
            let method = request.uri().path().to_owned();
            let needs = access(&method);
            if needs == Access::Open {
                return inner.call(request).await;
            }
            let peer = peer(&request);
            let certified = certificate_collector(&request);
            let header = request.headers().get(http::header::AUTHORIZATION).cloned();
            let caller = match gate.admit(header, certified, needs, &method).await {
                Ok(caller) => caller,
                Err(status) => {
                    tracing::warn!(target: AUDIT, %method, peer, code = ?status.code(), reason = status.message(), "refused");
                    return Ok(status.into_http());
                }
            };
            let audited = needs == Access::Admin;
            let principal = caller.name.clone();
            request.extensions_mut().insert(caller);
            let mut response = inner.call(request).await?;
            crate::grpc::limits::oversized_is_resource_exhausted(response.headers_mut());
            if audited {
                // A unary call that failed answers with its status in the headers; one that
                // succeeded carries it in the trailers.
                let outcome = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|code| code.to_str().ok())
                    .and_then(|code| code.parse::<i32>().ok())
                    .map(|code| format!("{:?}", solarhub_proto::tonic::Code::from_i32(code)))
                    .unwrap_or_else(|| "Ok".into());
                tracing::info!(target: AUDIT, %principal, %method, peer, %outcome, "write");
            }
            Ok(response)
        })
    }
}

impl Gate {
    async fn admit(
        &self,
        header: Option<http::HeaderValue>,
        certified: Option<Caller>,
        needs: Access,
        method: &str,
    ) -> Result<Caller, Status> {
        let caller = match &self.authenticator {
            None => certified.unwrap_or_else(Caller::anonymous),
            Some(authenticator) => {
                match token::bearer(header.as_ref().map(|value| value.as_bytes())) {
                    Err(BearerProblem::Missing) => certified.ok_or_else(|| {
                        Status::unauthenticated(
                            "this call needs credentials: send `authorization: Bearer TOKEN` \
                             (an admin makes one with `solarhub-hub token create`)",
                        )
                    })?,
                    Err(BearerProblem::Malformed) => {
                        return Err(Status::unauthenticated(
                            "the authorization header must be `Bearer TOKEN`",
                        ));
                    }
                    Ok(token) => {
                        let caller = authenticator.caller(token).await.map_err(|error| {
                            tracing::warn!(%error, "cannot check a token");
                            Status::unavailable("cannot check credentials now; try again")
                        })?;
                        let caller = caller.ok_or_else(|| {
                            Status::unauthenticated("the token is not valid (unknown or revoked)")
                        })?;
                        let caller = Caller::clone(&caller);
                        if let (Some(cert), Role::Collector) = (&certified, caller.role)
                            && cert.collector_id != caller.collector_id
                        {
                            return Err(Status::permission_denied(format!(
                                "{caller} is bound to collector {}, but the client certificate names collector {}",
                                caller.collector_id.as_deref().unwrap_or_default(),
                                cert.collector_id.as_deref().unwrap_or_default(),
                            )));
                        }
                        caller
                    }
                }
            }
        };
        if !caller.role.may(needs) {
            return Err(Status::permission_denied(format!(
                "{caller} may not call {}",
                method.trim_start_matches('/')
            )));
        }
        Ok(caller)
    }
}

/// The collector a verified client certificate names, as a caller.
fn certificate_collector<B>(request: &http::Request<B>) -> Option<Caller> {
    let info = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()?;
    let certs = info.peer_certs()?;
    let id = tls::collector_named(certs.first()?.as_ref())?;
    Some(Caller {
        name: format!("certificate:{id}"),
        role: Role::Collector,
        collector_id: Some(id),
        credential: Credential::Certificate,
    })
}

fn peer<B>(request: &http::Request<B>) -> String {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .map(|info| info.get_ref())
        })
        .and_then(|info| info.remote_addr())
        .map(|addr| addr.to_string())
        .unwrap_or_default()
}
