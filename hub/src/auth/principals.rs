//! `token create|list|revoke`: principals made, listed and revoked on the database directly, like
//! `migrate`, so the first admin token needs no running hub.

use std::fmt;

use crate::auth::Role;
use crate::auth::token::Token;
use crate::catalog::id_problem;
use crate::db::{DbConnection, DbError, principals};

/// A principal as shown to operators: never its token, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub collector_id: Option<String>,
    /// UTC epoch milliseconds.
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// The client certificate subject that speaks as this principal.
    pub certificate_subject: Option<String>,
}

/// A principal just made, with its token (shown once).
pub struct Created {
    pub principal: Principal,
    pub token: Token,
}

#[derive(Debug, thiserror::Error)]
pub enum PrincipalError {
    #[error("--name {name:?} {problem}")]
    BadName { name: String, problem: String },
    #[error("--collector-id {id:?} {problem}")]
    BadCollectorId { id: String, problem: String },
    #[error("a collector token needs --collector-id: the one collector it may act as")]
    CollectorIdMissing,
    #[error("--collector-id is only for --role collector, not {0}")]
    CollectorIdNotAllowed(Role),
    #[error("--certificate-subject {subject:?} {problem}")]
    BadCertificateSubject { subject: String, problem: String },
    #[error(
        "a principal named {0} exists, or one already has this certificate subject (revoked \
         names and subjects stay taken); choose another"
    )]
    NameTaken(String),
    #[error("no principal named {0}")]
    NotFound(String),
    #[error("the operating system gave no random bytes for a token")]
    NoRandomness,
    #[error("{0}")]
    Db(#[from] DbError),
}

/// Makes a principal and its token; with `certificate_subject`, a client certificate naming that
/// subject speaks as the principal too.
pub fn create(
    conn: &mut DbConnection,
    name: &str,
    role: Role,
    collector_id: Option<&str>,
    certificate_subject: Option<&str>,
) -> Result<Created, PrincipalError> {
    if let Some(subject) = certificate_subject
        && let Some(problem) = crate::limits::text_problem(subject)
            .or_else(|| subject.is_empty().then(|| "is empty".to_owned()))
    {
        return Err(PrincipalError::BadCertificateSubject {
            subject: subject.to_owned(),
            problem,
        });
    }
    if let Some(problem) = id_problem(name) {
        return Err(PrincipalError::BadName {
            name: name.to_owned(),
            problem,
        });
    }
    match (role, collector_id) {
        (Role::Collector, None) => return Err(PrincipalError::CollectorIdMissing),
        (Role::Collector, Some(id)) => {
            if let Some(problem) = id_problem(id) {
                return Err(PrincipalError::BadCollectorId {
                    id: id.to_owned(),
                    problem,
                });
            }
        }
        (other, Some(_)) => return Err(PrincipalError::CollectorIdNotAllowed(other)),
        (_, None) => {}
    }
    let token = Token::generate().map_err(|_| PrincipalError::NoRandomness)?;
    let row = principals::insert(
        conn,
        principals::NewPrincipal {
            name,
            role: role.as_str(),
            collector_id,
            token_sha256: token.hash().as_str(),
            certificate_subject,
        },
    )
    .map_err(|error| match error {
        DbError::UniqueViolation(_) => PrincipalError::NameTaken(name.to_owned()),
        other => PrincipalError::Db(other),
    })?;
    Ok(Created {
        principal: principal(row)?,
        token,
    })
}

/// Every principal, revoked ones included.
pub fn list(conn: &mut DbConnection) -> Result<Vec<Principal>, PrincipalError> {
    principals::list(conn)?.into_iter().map(principal).collect()
}

/// Revokes `name`; returns when it was revoked (earlier, if it already was).
pub fn revoke(conn: &mut DbConnection, name: &str) -> Result<i64, PrincipalError> {
    let at =
        principals::revoke(conn, name)?.ok_or_else(|| PrincipalError::NotFound(name.into()))?;
    Ok(at)
}

pub(crate) fn principal(row: principals::PrincipalRow) -> Result<Principal, PrincipalError> {
    let role = Role::parse(&row.role).ok_or_else(|| {
        PrincipalError::Db(DbError::Invalid(format!(
            "principal {} has unknown role {:?}",
            row.name, row.role
        )))
    })?;
    Ok(Principal {
        name: row.name,
        role,
        collector_id: row.collector_id,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
        certificate_subject: row.certificate_subject,
    })
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| ms.to_string())
        };
        write!(f, "{:<24} {:<9}", self.name, self.role.as_str())?;
        write!(f, " {:<16}", self.collector_id.as_deref().unwrap_or("-"))?;
        if let Some(subject) = &self.certificate_subject {
            write!(f, " certificate {subject}")?;
        }
        write!(f, " created {}", time(self.created_at))?;
        match self.revoked_at {
            Some(at) => write!(f, "  revoked {}", time(at)),
            None => Ok(()),
        }
    }
}
