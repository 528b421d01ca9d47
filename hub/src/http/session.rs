//! Browser sessions. A browser logs in once with a token (`POST /api/login`) and holds a session
//! cookie: HttpOnly (scripts cannot read it), SameSite=Strict (no other site's page sends it),
//! Secure under TLS, expiring after [`SESSION_TTL`]. Every call of the session speaks with the
//! session's token, so revoking the token ends the session on the next call (within the
//! authenticator's cache time). A change (POST, PATCH, DELETE) made with the cookie must also
//! carry the session's CSRF token in [`CSRF_HEADER`], which only a page of the hub's own origin
//! can read (`GET /api/session`). A call with `Authorization: Bearer` needs neither.
//!
//! Sessions live in the hub's memory: a restarted hub asks its browsers to log in again, and a
//! session is known only to the hub that made it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue};

use super::errors::ApiError;
use super::routes::Verb;
use crate::auth::{Authenticator, Role};

pub const SESSION_COOKIE: &str = "solarhub_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest goes first.
const MAX_SESSIONS: usize = 10_000;

#[derive(Clone)]
struct Session {
    token: String,
    csrf: String,
    principal: String,
    role: Role,
    expires: Instant,
}

/// What `GET /api/session` and a login answer.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub principal: String,
    pub role: String,
    /// Send it as `x-csrf-token` with every change.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub csrf_token: String,
    /// Whether this hub asks for a login at all (not with `--without-auth`, as the demo).
    pub auth_required: bool,
    /// Seconds until the session ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> Result<String, ApiError> {
    crate::auth::token::random_hex()
        .map_err(|_| ApiError::internal("no randomness from the operating system"))
}

impl Sessions {
    /// Logs in with `token`: the session's cookie and what the page learns of it.
    pub async fn login(
        &self,
        authenticator: &Authenticator,
        token: &str,
        secure: bool,
    ) -> Result<(HeaderValue, SessionView), ApiError> {
        let caller = authenticator
            .caller(token)
            .await
            .map_err(|_| {
                ApiError::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "cannot check credentials now; try again",
                )
            })?
            .ok_or_else(|| {
                ApiError::unauthenticated("the token is not valid (unknown or revoked)")
            })?;
        if caller.role == Role::Collector {
            return Err(ApiError::forbidden(
                "a collector's token is for its collector; log in with a reader's or an admin's",
            ));
        }
        let id = random_hex()?;
        let session = Session {
            token: token.to_owned(),
            csrf: random_hex()?,
            principal: caller.name.clone(),
            role: caller.role,
            expires: Instant::now() + SESSION_TTL,
        };
        let view = view(&session);
        {
            let mut sessions = self.by_id.lock().expect("sessions lock");
            let now = Instant::now();
            sessions.retain(|_, s| s.expires > now);
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(id, _)| id.clone())
            {
                sessions.remove(&oldest);
            }
            sessions.insert(id.clone(), session);
        }
        let cookie = Cookie::build((SESSION_COOKIE, id))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(secure)
            .path("/")
            .max_age(cookie::time::Duration::seconds(SESSION_TTL.as_secs() as i64))
            .build();
        Ok((header(&cookie)?, view))
    }

    /// Ends the session of `headers` (if any); the cookie that clears it.
    pub fn logout(&self, headers: &HeaderMap, secure: bool) -> Result<HeaderValue, ApiError> {
        if let Some(id) = session_id(headers) {
            self.by_id.lock().expect("sessions lock").remove(&id);
        }
        let cookie = Cookie::build((SESSION_COOKIE, ""))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(secure)
            .path("/")
            .max_age(cookie::time::Duration::ZERO)
            .build();
        header(&cookie)
    }

    /// The session of `headers`, when it has a live one.
    fn find(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = session_id(headers)?;
        let mut sessions = self.by_id.lock().expect("sessions lock");
        match sessions.get(&id) {
            Some(session) if session.expires > Instant::now() => Some((id, session.clone())),
            Some(_) => {
                sessions.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Forgets a session whose token the hub no longer takes.
    pub fn forget(&self, headers: &HeaderMap) {
        if let Some(id) = session_id(headers) {
            self.by_id.lock().expect("sessions lock").remove(&id);
        }
    }

    /// What the page learns of its session, when it has one.
    pub fn view(&self, headers: &HeaderMap) -> Option<SessionView> {
        self.find(headers).map(|(_, session)| view(&session))
    }

    /// The `authorization` a call of `verb` is made with: the request's own bearer token, or
    /// its session's (a change needs the session's CSRF token too), or none.
    pub fn authorization(
        &self,
        headers: &HeaderMap,
        verb: Verb,
    ) -> Result<Option<HeaderValue>, ApiError> {
        if let Some(authorization) = headers.get(http::header::AUTHORIZATION) {
            return Ok(Some(authorization.clone()));
        }
        if session_id(headers).is_none() {
            return Ok(None);
        }
        let (_, session) = self
            .find(headers)
            .ok_or_else(|| ApiError::unauthenticated("the session has ended; log in again"))?;
        if verb.changes() {
            let sent = headers
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            if !constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
                return Err(ApiError::forbidden(format!(
                    "a change made with the session cookie needs the session's {CSRF_HEADER} \
                     header (GET /api/session gives it to pages of this hub)"
                )));
            }
        }
        HeaderValue::from_str(&format!("Bearer {}", session.token))
            .map(Some)
            .map_err(|_| ApiError::internal("a session token is not a header value"))
    }
}

fn view(session: &Session) -> SessionView {
    SessionView {
        principal: session.principal.clone(),
        role: session.role.to_string(),
        csrf_token: session.csrf.clone(),
        auth_required: true,
        expires_in: Some(
            session
                .expires
                .saturating_duration_since(Instant::now())
                .as_secs(),
        ),
    }
}

fn header(cookie: &Cookie<'_>) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&cookie.to_string())
        .map_err(|_| ApiError::internal("a cookie is not a header value"))
}

/// The session cookie's value.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == SESSION_COOKIE && !cookie.value().is_empty())
        .map(|cookie| cookie.value().to_owned())
}

/// Equal, in a time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
