//! The audit trail people read: every write (catalog, tokens, recompute, imports, and control
//! commands when they come) and every refused call, as rows of `audit_events` with when, who, from
//! where, what, on what, how it ended and how long it took. Admins read it with
//! `AuditService.ListAuditEvents` and `solarhub-hub audit`; retention deletes it after
//! `audit_events=PERIOD` (a year by default).
//!
//! - A write admitted by the auth layer is written when its answer is, before the caller sees it
//!   (one insert; writes are rare). A call the hub gives up on (its deadline, or a client that
//!   left) is written as `CANCELLED` from the guard's drop.
//! - Refused calls are folded: alike ones (principal, source address, method, outcome) within
//!   [`FOLD_EVERY`] are one row with their count, so a flood costs a row per kind per interval,
//!   and the folding table is bounded ([`MAX_FOLDS`]).
//! - Commands run on the hub's machine record the operating-system user as `os:NAME`.
//!
//! Every text is bounded (a caller chooses the method path it sends).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::audit::NewAuditRow;
use crate::db::{Database, DbConnection, DbError, now_ms};

/// How long alike refusals are folded into one row.
pub const FOLD_EVERY: Duration = Duration::from_secs(2);
/// Distinct kinds of refusal folded at once; more share one `(many)` row.
const MAX_FOLDS: usize = 1_000;
/// The longest detail kept.
const MAX_DETAIL_CHARS: usize = 200;
/// The longest detail of a control command's row.
const MAX_CONTROL_DETAIL_CHARS: usize = 2000;

/// Writes the trail; clone it freely.
#[derive(Clone)]
pub struct Auditor {
    database: Database,
    folds: Arc<Mutex<Folds>>,
}

type FoldKey = (String, String, String, String);

#[derive(Default)]
struct Folds {
    pending: HashMap<FoldKey, Fold>,
}

struct Fold {
    at: i64,
    calls: i64,
    detail: String,
}

/// One call to record.
#[derive(Debug, Clone)]
pub struct Call {
    pub principal: String,
    pub source: String,
    pub method: String,
    pub target: String,
    pub outcome: String,
    pub started: Instant,
    pub at: i64,
    pub detail: String,
}

impl Auditor {
    /// An auditor on `database` whose folded refusals are written every [`FOLD_EVERY`] until
    /// `stop` completes (and once more then).
    pub fn start(
        database: Database,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Auditor {
        let auditor = Auditor {
            database,
            folds: Default::default(),
        };
        let flusher = auditor.clone();
        tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(FOLD_EVERY) => flusher.flush().await,
                    _ = &mut stop => {
                        flusher.flush().await;
                        return;
                    }
                }
            }
        });
        auditor
    }

    /// Writes one call now.
    pub async fn record(&self, call: Call) {
        let row = NewAuditRow {
            at: call.at,
            principal: bounded(&call.principal, 64),
            source: bounded(&call.source, 64),
            method: bounded(&call.method, 128),
            target: bounded(&call.target, MAX_DETAIL_CHARS),
            outcome: call.outcome,
            duration_ms: call.started.elapsed().as_millis().min(i64::MAX as u128) as i64,
            calls: 1,
            detail: bounded(&call.detail, MAX_DETAIL_CHARS),
        };
        tracing::info!(target: AUDIT, principal = %row.principal, method = %row.method,
            target = %row.target, source = %row.source, outcome = %row.outcome, "write");
        self.write(vec![row]).await;
    }

    /// Writes how a control command ended: who asked it, the collector that answered, the
    /// device, the outcome (`DONE`, `FAILED`, ...) and what was written (a longer detail than a
    /// call's: every register with its values before, after and read back).
    pub async fn record_control(
        &self,
        principal: &str,
        source: &str,
        target: &str,
        state: &str,
        detail: &str,
    ) {
        let row = NewAuditRow {
            at: now_ms(),
            principal: bounded(principal, 64),
            source: bounded(source, 64),
            method: "control command".into(),
            target: bounded(target, MAX_DETAIL_CHARS),
            outcome: state.to_uppercase(),
            duration_ms: 0,
            calls: 1,
            detail: bounded(detail, MAX_CONTROL_DETAIL_CHARS),
        };
        tracing::info!(target: AUDIT, principal = %row.principal, target = %row.target, outcome = %row.outcome, detail = %row.detail, "control command");
        self.write(vec![row]).await;
    }

    /// Counts one refused call, written with its kind within [`FOLD_EVERY`].
    pub fn refused(
        &self,
        principal: &str,
        source: &str,
        method: &str,
        outcome: &str,
        detail: &str,
    ) {
        tracing::warn!(target: AUDIT, principal, method = %bounded(method, 128), source, outcome, reason = detail, "refused");
        let mut folds = self.folds.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = (
            bounded(principal, 64),
            bounded(source, 64),
            bounded(method, 128),
            outcome.to_owned(),
        );
        if folds.pending.len() >= MAX_FOLDS && !folds.pending.contains_key(&key) {
            key = (
                "(many)".into(),
                "(many)".into(),
                "(many)".into(),
                outcome.to_owned(),
            );
        }
        folds
            .pending
            .entry(key)
            .or_insert_with(|| Fold {
                at: now_ms(),
                calls: 0,
                detail: bounded(detail, MAX_DETAIL_CHARS),
            })
            .calls += 1;
    }

    /// Writes the folded refusals.
    pub async fn flush(&self) {
        let pending =
            std::mem::take(&mut self.folds.lock().unwrap_or_else(|p| p.into_inner()).pending);
        if pending.is_empty() {
            return;
        }
        let rows = pending
            .into_iter()
            .map(|((principal, source, method, outcome), fold)| NewAuditRow {
                at: fold.at,
                principal,
                source,
                method,
                target: String::new(),
                outcome,
                duration_ms: 0,
                calls: fold.calls,
                detail: fold.detail,
            })
            .collect();
        self.write(rows).await;
    }

    async fn write(&self, rows: Vec<NewAuditRow>) {
        let result = self
            .database
            .run_write(move |conn| crate::db::audit::insert(conn, &rows))
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "cannot write the audit trail");
        }
    }
}

/// Where audit lines go in the log too (`RUST_LOG=solarhub::audit=info` shows only them).
pub const AUDIT: &str = "solarhub::audit";

/// What a write acted on, named by its handler for the audit row: the layer puts an empty slot in
/// every admitted request's extensions.
#[derive(Clone, Default)]
pub struct Target(Arc<Mutex<Option<String>>>);

impl Target {
    /// The slot of `request` (a detached one when the layer gave none, as in unit tests).
    pub fn of<T>(request: &tonic::Request<T>) -> Target {
        request
            .extensions()
            .get::<Target>()
            .cloned()
            .unwrap_or_default()
    }

    /// Names what the call acts on (`systems home`).
    pub fn set(&self, target: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(target.into());
    }

    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Names what the call of `request` acts on (`system home`), for its audit row.
pub fn name_target<T>(request: &tonic::Request<T>, target: impl Into<String>) {
    Target::of(request).set(target);
}

/// A gRPC code's canonical name (`INVALID_ARGUMENT`), as the trail stores outcomes.
pub fn code_name(code: tonic::Code) -> String {
    let camel = format!("{code:?}");
    if camel == "Ok" {
        return "OK".into();
    }
    let mut name = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// An outcome as an operator types it (`permission_denied`, `PermissionDenied`, `ok`), as stored.
pub fn outcome_named(text: &str) -> Option<String> {
    let wanted: String = text
        .chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    (0..=16)
        .map(tonic::Code::from_i32)
        .map(code_name)
        .find(|name| name.replace('_', "").to_ascii_lowercase() == wanted)
}

/// Records a command run on the hub's machine (`token create`, `import-config`, …) with the
/// operating-system user.
pub fn record_command(
    conn: &mut DbConnection,
    command: &str,
    target: &str,
    started: Instant,
    outcome: Result<(), &str>,
) -> Result<(), DbError> {
    let (outcome, detail) = match outcome {
        Ok(()) => ("OK".to_owned(), String::new()),
        Err(detail) => ("FAILED".to_owned(), bounded(detail, MAX_DETAIL_CHARS)),
    };
    let row = NewAuditRow {
        at: now_ms(),
        principal: os_user(),
        source: "cli".into(),
        method: command.into(),
        target: bounded(target, MAX_DETAIL_CHARS),
        outcome,
        duration_ms: started.elapsed().as_millis().min(i64::MAX as u128) as i64,
        calls: 1,
        detail,
    };
    crate::db::audit::insert(conn, &[row])
}

/// `os:NAME` of whoever runs this process: `$USER` (or `$LOGNAME`), else the numeric uid.
pub fn os_user() -> String {
    let name = ["USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|status| {
                    status
                        .lines()
                        .find_map(|line| line.strip_prefix("Uid:"))
                        .and_then(|ids| ids.split_whitespace().next())
                        .map(|uid| format!("uid {uid}"))
                })
        })
        .unwrap_or_else(|| "unknown".into());
    format!("os:{}", bounded(&name, 60))
}

/// The start of `--since`: a duration back from `now` (`24h`, `7d`, `90m`, `30s`) or an RFC 3339
/// time.
pub fn parse_since(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    // A period as retention writes them (`--retention TABLE=PERIOD`), counted back from now.
    crate::retention::policy::parse_period(text)
        .and_then(|period| period.cutoff(now))
        .ok_or_else(|| {
            format!(
                "--since {text:?}: write a duration back from now (24h, 7d, 90m) or an RFC 3339 \
                 time (2026-12-01T00:00:00Z)"
            )
        })
}

/// One audit row as a line for operators.
pub struct Shown<'a>(pub &'a crate::db::audit::AuditRow);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let row = self.0;
        let at = chrono::DateTime::from_timestamp_millis(row.at)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_else(|| row.at.to_string());
        write!(
            f,
            "{at} {:<20} {:<16} {:<48} {:<18}",
            row.principal, row.source, row.method, row.outcome
        )?;
        if row.calls > 1 {
            write!(f, " x{}", row.calls)?;
        }
        write!(f, " {} ms", row.duration_ms)?;
        if !row.target.is_empty() {
            write!(f, " target={:?}", row.target)?;
        }
        if !row.detail.is_empty() {
            write!(f, " detail={:?}", row.detail)?;
        }
        Ok(())
    }
}

/// `text` cut to `max` characters, control characters escaped.
/// `text` cut to at most `max` characters.
pub fn bounded(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_have_their_canonical_names() {
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(code_name(tonic::Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(
            outcome_named("permission_denied").as_deref(),
            Some("PERMISSION_DENIED")
        );
        assert_eq!(
            outcome_named("PermissionDenied").as_deref(),
            Some("PERMISSION_DENIED")
        );
        assert_eq!(outcome_named("ok").as_deref(), Some("OK"));
        assert_eq!(outcome_named("nonsense"), None);
    }

    #[test]
    fn texts_are_bounded_and_escaped() {
        assert_eq!(bounded("a\u{0}b", 10), "a\\u{0}b");
        assert_eq!(bounded(&"x".repeat(300), 5), "xxxxx…");
    }
}
