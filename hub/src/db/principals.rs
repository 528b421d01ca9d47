//! Principals (DESIGN §7): who may call the hub, by the SHA-256 of their token. The token itself
//! never reaches this module.

use diesel::prelude::*;

use super::{DbConnection, DbError, now_ms, schema::principals};

/// One principal as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = principals)]
pub struct PrincipalRow {
    pub name: String,
    pub role: String,
    pub collector_id: Option<String>,
    pub token_sha256: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// The client certificate that speaks as this principal (its first DNS name, or its CN).
    pub certificate_subject: Option<String>,
}

/// A principal to store.
pub struct NewPrincipal<'a> {
    pub name: &'a str,
    pub role: &'a str,
    pub collector_id: Option<&'a str>,
    pub token_sha256: &'a str,
    pub certificate_subject: Option<&'a str>,
}

/// Stores a new principal; a name or certificate subject already taken (revoked or not) is a
/// `UniqueViolation`.
pub fn insert(conn: &mut DbConnection, new: NewPrincipal<'_>) -> Result<PrincipalRow, DbError> {
    let row = PrincipalRow {
        name: new.name.to_owned(),
        role: new.role.to_owned(),
        collector_id: new.collector_id.map(str::to_owned),
        token_sha256: new.token_sha256.to_owned(),
        created_at: now_ms(),
        revoked_at: None,
        certificate_subject: new.certificate_subject.map(str::to_owned),
    };
    diesel::insert_into(principals::table)
        .values((
            principals::name.eq(&row.name),
            principals::role.eq(&row.role),
            principals::collector_id.eq(&row.collector_id),
            principals::token_sha256.eq(&row.token_sha256),
            principals::created_at.eq(row.created_at),
            principals::certificate_subject.eq(&row.certificate_subject),
        ))
        .execute(conn)?;
    Ok(row)
}

/// The principal a client certificate with `subject` speaks as, revoked or not.
pub fn by_certificate_subject(
    conn: &mut DbConnection,
    subject: &str,
) -> Result<Option<PrincipalRow>, DbError> {
    Ok(principals::table
        .filter(principals::certificate_subject.eq(subject))
        .select(PrincipalRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every principal, revoked ones included, by name.
pub fn list(conn: &mut DbConnection) -> Result<Vec<PrincipalRow>, DbError> {
    Ok(principals::table
        .select(PrincipalRow::as_select())
        .order(principals::name)
        .load(conn)?)
}

/// The principal whose token hashes to `token_sha256`, revoked or not.
pub fn by_token_hash(
    conn: &mut DbConnection,
    token_sha256: &str,
) -> Result<Option<PrincipalRow>, DbError> {
    Ok(principals::table
        .filter(principals::token_sha256.eq(token_sha256))
        .select(PrincipalRow::as_select())
        .first(conn)
        .optional()?)
}

/// Marks `name` revoked now; `None` when there is no such principal, the earlier time when it
/// was already revoked.
pub fn revoke(conn: &mut DbConnection, name: &str) -> Result<Option<i64>, DbError> {
    // IMMEDIATE on SQLite: a read upgraded to a write failed with "database is locked" while a
    // hub was committing (seen revoking a token under streaming collectors).
    super::in_transaction(conn, |conn| {
        let found: Option<Option<i64>> = principals::table
            .filter(principals::name.eq(name))
            .select(principals::revoked_at)
            .first(conn)
            .optional()?;
        match found {
            None => Ok(None),
            Some(Some(at)) => Ok(Some(at)),
            Some(None) => {
                let at = now_ms();
                diesel::update(principals::table.filter(principals::name.eq(name)))
                    .set(principals::revoked_at.eq(at))
                    .execute(conn)?;
                Ok(Some(at))
            }
        }
    })
}
