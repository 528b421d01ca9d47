//! The tower layer in front of every service: decides whether a call may go on (and answers
//! UNAUTHENTICATED or PERMISSION_DENIED itself when not), puts the [`Caller`] in the request's
//! extensions, and records every write and every refusal in the audit trail (`crate::audit`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use solarhub_proto::tonic::Status;
use solarhub_proto::tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use crate::audit::{Auditor, Call, Target, code_name};
use crate::auth::token::{self, BearerProblem};
use crate::auth::{Access, Authenticator, Caller, Credential, Role, access, tls};

pub use crate::audit::AUDIT;

/// The layer; clone it freely.
#[derive(Clone)]
pub struct AuthLayer {
    gate: Arc<Gate>,
}

struct Gate {
    /// `None`: authentication is off and every caller without a client certificate is an admin.
    authenticator: Option<Authenticator>,
    auditor: Auditor,
}

impl AuthLayer {
    /// Checks bearer tokens (and client certificates) against `authenticator`.
    pub fn required(authenticator: Authenticator, auditor: Auditor) -> AuthLayer {
        AuthLayer {
            gate: Arc::new(Gate {
                authenticator: Some(authenticator),
                auditor,
            }),
        }
    }

    /// `--without-auth`: every call is admitted (a client certificate still binds a collector);
    /// writes are still audited.
    pub fn off(auditor: Auditor) -> AuthLayer {
        AuthLayer {
            gate: Arc::new(Gate {
                authenticator: None,
                auditor,
            }),
        }
    }
}

/// A refused call: its answer, and who the caller said it was (for the audit trail).
struct Refusal {
    status: Status,
    principal: String,
}

impl Refusal {
    fn new(status: Status, principal: impl Into<String>) -> Refusal {
        Refusal {
            status,
            principal: principal.into(),
        }
    }
}

/// A write in progress: recorded with its outcome when answered, or as cancelled when the hub
/// stops waiting for it (its deadline) or the client leaves.
struct PendingWrite {
    auditor: Auditor,
    call: Option<Call>,
    target: Target,
}

impl PendingWrite {
    async fn finish(mut self, outcome: String, detail: String) {
        if let Some(mut call) = self.call.take() {
            call.outcome = outcome;
            call.detail = detail;
            call.target = self.target.take().unwrap_or_default();
            self.auditor.record(call).await;
        }
    }
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        if let Some(mut call) = self.call.take() {
            call.outcome = code_name(solarhub_proto::tonic::Code::Cancelled);
            call.detail =
                "the call ended before its answer (its deadline, or the client left)".into();
            call.target = self.target.take().unwrap_or_default();
            let auditor = self.auditor.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { auditor.record(call).await });
            }
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
            let started = Instant::now();
            let at = crate::db::now_ms();
            let source = peer(&request);
            let certified = certificate_subject(&request);
            let header = request.headers().get(http::header::AUTHORIZATION).cloned();
            let caller = match gate.admit(header, certified, needs, &method).await {
                Ok(caller) => caller,
                Err(refusal) => {
                    let outcome = code_name(refusal.status.code());
                    let detail = refusal.status.message();
                    gate.auditor
                        .refused(&refusal.principal, &source, &method, &outcome, detail);
                    return Ok(refusal.status.into_http());
                }
            };
            let principal = caller.name.clone();
            let target = Target::default();
            let pending = matches!(needs, Access::Admin | Access::Control).then(|| PendingWrite {
                auditor: gate.auditor.clone(),
                call: Some(Call {
                    principal: principal.clone(),
                    source: source.clone(),
                    method: method.clone(),
                    target: String::new(),
                    outcome: String::new(),
                    started,
                    at,
                    detail: String::new(),
                }),
                target: target.clone(),
            });
            request.extensions_mut().insert(target);
            request.extensions_mut().insert(caller);
            let mut response = inner.call(request).await?;
            crate::limits::rpc::oversized_is_resource_exhausted(response.headers_mut());
            // A unary call that failed answers with its status in the headers; one that
            // succeeded carries it in the trailers.
            // tonic reads the status (and decodes its message) from the headers as it does for
            // its own clients; none there means it is in the trailers: the call succeeded.
            let (code, detail) = match Status::from_header_map(response.headers()) {
                Some(status) => (status.code(), status.message().to_owned()),
                None => (solarhub_proto::tonic::Code::Ok, String::new()),
            };
            match pending {
                Some(pending) => pending.finish(code_name(code), detail).await,
                None if matches!(
                    code,
                    solarhub_proto::tonic::Code::PermissionDenied
                        | solarhub_proto::tonic::Code::Unauthenticated
                ) =>
                {
                    gate.auditor
                        .refused(&principal, &source, &method, &code_name(code), &detail);
                }
                None => {}
            }
            Ok(response)
        })
    }
}

/// Whether a caller sending `header` (and no client certificate) would be admitted to `method`
/// (`/package.Service/Method`): what the layer decides, without calling anything or writing the
/// audit trail. For a front door that must refuse before it says anything about a request.
pub async fn admits(
    authenticator: Option<&Authenticator>,
    header: Option<http::HeaderValue>,
    method: &str,
) -> bool {
    let needs = access(method);
    needs == Access::Open
        || admit(authenticator, header, None, needs, method)
            .await
            .is_ok()
}

impl Gate {
    async fn admit(
        &self,
        header: Option<http::HeaderValue>,
        certified: Option<String>,
        needs: Access,
        method: &str,
    ) -> Result<Caller, Refusal> {
        admit(
            self.authenticator.as_ref(),
            header,
            certified,
            needs,
            method,
        )
        .await
    }
}

async fn admit(
    authenticator: Option<&Authenticator>,
    header: Option<http::HeaderValue>,
    certified: Option<String>,
    needs: Access,
    method: &str,
) -> Result<Caller, Refusal> {
    {
        let Some(authenticator) = authenticator else {
            let caller = certified
                .map(|subject| Caller {
                    name: format!("certificate:{subject}"),
                    role: Role::Collector,
                    collector_id: Some(subject.clone()),
                    credential: Credential::Certificate(subject),
                })
                .unwrap_or_else(Caller::anonymous);
            return permitted(caller, needs, method);
        };
        let unavailable = |error: crate::db::DbError| {
            tracing::warn!(%error, "cannot check credentials");
            Refusal::new(
                Status::unavailable("cannot check credentials now; try again"),
                "unknown",
            )
        };
        // The principal a client certificate speaks as, when one registered it.
        let by_certificate = match &certified {
            Some(subject) => authenticator
                .certificate(subject)
                .await
                .map_err(unavailable)?,
            None => None,
        };
        let caller = match token::bearer(header.as_ref().map(|value| value.as_bytes())) {
            Err(BearerProblem::Missing) => match (by_certificate, certified) {
                (Some(caller), _) => Caller::clone(&caller),
                (None, Some(subject)) => {
                    return Err(Refusal::new(
                        Status::unauthenticated(format!(
                            "the client certificate names {subject}, which is not a registered \
                             principal (or was revoked); an admin registers it with \
                             `solarhub-hub token create --certificate-subject {subject} …`"
                        )),
                        format!("certificate:{subject}"),
                    ));
                }
                (None, None) => {
                    return Err(Refusal::new(
                        Status::unauthenticated(
                            "this call needs credentials: send `authorization: Bearer TOKEN` \
                             (an admin makes one with `solarhub-hub token create`)",
                        ),
                        "anonymous",
                    ));
                }
            },
            Err(BearerProblem::Malformed) => {
                return Err(Refusal::new(
                    Status::unauthenticated("the authorization header must be `Bearer TOKEN`"),
                    "anonymous",
                ));
            }
            Ok(token) => {
                let caller = authenticator.caller(token).await.map_err(unavailable)?;
                let caller = caller.ok_or_else(|| {
                    Refusal::new(
                        Status::unauthenticated("the token is not valid (unknown or revoked)"),
                        "unknown token",
                    )
                })?;
                let caller = Caller::clone(&caller);
                // A collector's token over a certificate of another collector: the two disagree.
                let certificate_collector = match (&by_certificate, &certified) {
                    (Some(principal), _) => principal.collector_id.clone(),
                    (None, subject) => subject.clone(),
                };
                if let (Some(cert), Role::Collector) = (&certificate_collector, caller.role)
                    && caller.collector_id.as_ref() != Some(cert)
                {
                    return Err(Refusal::new(
                        Status::permission_denied(format!(
                            "{caller} is bound to collector {}, but the client certificate names collector {cert}",
                            caller.collector_id.as_deref().unwrap_or_default(),
                        )),
                        caller.name.clone(),
                    ));
                }
                caller
            }
        };
        permitted(caller, needs, method)
    }
}

/// `caller`, when its role may call `method`.
fn permitted(caller: Caller, needs: Access, method: &str) -> Result<Caller, Refusal> {
    if !caller.role.may(needs) {
        let name = caller.name.clone();
        return Err(Refusal::new(
            Status::permission_denied(format!(
                "{caller} may not call {}",
                crate::limits::shown(method.trim_start_matches('/'))
            )),
            name,
        ));
    }
    Ok(caller)
}

/// The subject a verified client certificate names (its first DNS name, or its CN).
fn certificate_subject<B>(request: &http::Request<B>) -> Option<String> {
    let info = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()?;
    let certs = info.peer_certs()?;
    tls::collector_named(certs.first()?.as_ref())
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
        .map(|addr| addr.ip().to_string())
        .unwrap_or_default()
}
