//! The audit trail as stored (`audit_events`): rows written, read back newest first under the
//! filters of `solarhub-hub audit` and `AuditService.ListAuditEvents`, and deleted by retention.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::{DbConnection, DbError, schema::audit_events};

/// One audit row: a call (or, for refusals, several alike folded into one).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    /// Rows are numbered by the database (a 32-bit integer on both backends: retention keeps the
    /// trail far below 2^31 rows).
    pub id: i32,
    /// UTC epoch ms (the first of folded refusals).
    pub at: i64,
    pub principal: String,
    /// The caller's address, or `cli` for a command run on the hub's machine.
    pub source: String,
    /// The gRPC method path, or the command (`token create`).
    pub method: String,
    /// What the call acted on (`system home`), empty when it names nothing.
    pub target: String,
    /// The gRPC code's canonical name (`OK`, `INVALID_ARGUMENT`, `PERMISSION_DENIED`, …).
    pub outcome: String,
    pub duration_ms: i64,
    /// How many calls this row stands for (more than one only for folded refusals).
    pub calls: i64,
    /// The refusal's or failure's message, bounded.
    pub detail: String,
}

/// A row to write (its id is the database's).
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = audit_events)]
pub struct NewAuditRow {
    pub at: i64,
    pub principal: String,
    pub source: String,
    pub method: String,
    pub target: String,
    pub outcome: String,
    pub duration_ms: i64,
    pub calls: i64,
    pub detail: String,
}

/// Which rows to read; every field narrows, none means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// UTC epoch ms, inclusive.
    pub since: Option<i64>,
    /// UTC epoch ms, exclusive.
    pub until: Option<i64>,
    pub principal: Option<String>,
    /// A whole method path, or a method's name (`UpdateSystem`), or a command.
    pub method: Option<String>,
    /// A canonical code name.
    pub outcome: Option<String>,
    pub limit: i64,
}

pub fn insert(conn: &mut DbConnection, rows: &[NewAuditRow]) -> Result<(), DbError> {
    // One statement per row: diesel's multi-row insert is not offered on both backends at once,
    // and a batch here is a few folded refusals.
    for row in rows {
        diesel::insert_into(audit_events::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// The rows `filter` selects, newest first, at most `filter.limit`.
pub fn list(conn: &mut DbConnection, filter: &AuditFilter) -> Result<Vec<AuditRow>, DbError> {
    let method = filter.method.clone().unwrap_or_default();
    Ok(load!(
        conn,
        AuditRow,
        "SELECT id, at, principal, source, method, target, outcome, duration_ms, calls, detail \
         FROM audit_events WHERE at >= $1 AND at < $2 AND ($3 = '' OR principal = $3) \
         AND ($4 = '' OR method = $4 OR method LIKE $5) AND ($6 = '' OR outcome = $6) \
         ORDER BY at DESC, id DESC LIMIT $7",
        BigInt => filter.since.unwrap_or(i64::MIN),
        BigInt => filter.until.unwrap_or(i64::MAX),
        Text => filter.principal.clone().unwrap_or_default(),
        Text => method.clone(),
        Text => format!("%/{}", method.replace(['%', '_'], "")),
        Text => filter.outcome.clone().unwrap_or_default(),
        BigInt => filter.limit,
    )?)
}

/// Deletes up to `limit` rows older than `cutoff`; returns how many went.
pub fn delete_before(conn: &mut DbConnection, cutoff: i64, limit: i64) -> Result<usize, DbError> {
    Ok(execute!(
        conn,
        "DELETE FROM audit_events WHERE id IN \
         (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
        BigInt => cutoff,
        BigInt => limit,
    )?)
}

/// Rows older than `cutoff` (for `retention --dry-run`).
pub fn count_before(conn: &mut DbConnection, cutoff: i64) -> Result<i64, DbError> {
    Ok(audit_events::table
        .filter(audit_events::at.lt(cutoff))
        .count()
        .get_result(conn)?)
}
