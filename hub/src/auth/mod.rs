//! Who may do what (DESIGN §7). A call is admitted by [`layer::AuthLayer`] before it reaches any
//! service: the method's [`Access`] comes from its path, the caller from its bearer token (or its
//! client certificate), and the [`Caller`] rides in the request's extensions to the handlers that
//! need more than a role (ingest checks a collector's bound id).
//!
//! - `token`: making tokens and the hash that is all the database ever sees;
//! - `principals`: the `token create|list|revoke` operations, on the database directly;
//! - `authenticator`: token → caller, cached for a few seconds, so a call costs no query and a
//!   revocation reaches every hub on the database within [`authenticator::CACHE_TTL`];
//! - `layer`: the tower layer in front of every service, which also writes the audit lines;
//! - `tls`: server and client certificates, and the collector id a client certificate names;
//! - `exposure`: which listen address may go without TLS or without authentication;
//! - `streams`: long answers (the live watch) end when their caller's token is revoked.

pub mod authenticator;
pub mod exposure;
pub mod layer;
pub mod principals;
pub mod streams;
pub mod tls;
pub mod token;

use std::fmt;

pub use authenticator::Authenticator;
pub use layer::AuthLayer;

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything.
    Admin,
    /// Reads: List/Get, `GetConfig`, Live (and its watch), History (not `Recompute`),
    /// `ListCollectors`, `ServerInfo`.
    Reader,
    /// `Register`, `StreamTelemetry`, `SendBatch`, as its bound collector id only.
    Collector,
    /// `ControlService`: reads settings and commands, sets, reverts and cancels; nothing else.
    Operator,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Reader, Role::Collector, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Reader => "reader",
            Role::Collector => "collector",
            Role::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// Whether this role may call a method of `access`.
    pub fn may(self, access: Access) -> bool {
        matches!(
            (self, access),
            (_, Access::Open)
                | (Role::Admin, _)
                | (Role::Reader, Access::Read | Access::ControlRead)
                | (Role::Collector, Access::Ingest)
                | (Role::Operator, Access::Control | Access::ControlRead)
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What calling a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health and reflection: probes and grpcurl work without a token.
    Open,
    /// Reads.
    Read,
    /// A collector's telemetry and registration.
    Ingest,
    /// Settings and commands read (`ControlService.Get…`/`List…`): readers, operators, admins.
    ControlRead,
    /// Changing a device (`ControlService` set, revert, cancel): operators and admins.
    Control,
    /// Everything else: catalog writes, recompute, and any method this table does not know.
    Admin,
}

/// Services every caller may use.
const OPEN_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The access a gRPC method path (`/package.Service/Method`) needs. Methods of `solarhub.v1`
/// named `Get…`, `List…` or `Watch…` are reads (a house rule: such methods never write; the one
/// exception, `ControlService.GetSettings`, asks the device and keeps that read a day), except
/// the collector's own calls and the audit trail; anything not matched needs an admin.
pub fn access(path: &str) -> Access {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return Access::Admin;
    };
    if OPEN_SERVICES.contains(&service) {
        return Access::Open;
    }
    let Some(service) = service.strip_prefix("solarhub.v1.") else {
        return Access::Admin;
    };
    // Who did what is for admins only, though its method reads.
    if service == "AuditService" {
        return Access::Admin;
    }
    if service == "ControlService" {
        return if method.starts_with("Get") || method.starts_with("List") {
            Access::ControlRead
        } else {
            Access::Control
        };
    }
    if service == "CollectorService"
        && matches!(method, "Register" | "StreamTelemetry" | "SendBatch")
    {
        return Access::Ingest;
    }
    if ["Get", "List", "Watch"]
        .iter()
        .any(|prefix| method.starts_with(prefix))
    {
        return Access::Read;
    }
    Access::Admin
}

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A bearer token; the hash lets a long stream check it has not been revoked since.
    Token(token::TokenHash),
    /// A client certificate verified against `--client-ca`, by its subject (first DNS name, or
    /// CN); a principal registered it unless authentication is off.
    Certificate(String),
    /// Authentication is off (`--without-auth`): every caller is an admin.
    Nobody,
}

/// The principal behind one call, as the handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The principal's name, for logs (never its token).
    pub name: String,
    pub role: Role,
    /// For collectors: the only collector id it may act as.
    pub collector_id: Option<String>,
    pub credential: Credential,
}

/// A collector acting as an id it is not bound to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{caller} is bound to collector {bound} and may not act as collector {wanted}")]
pub struct NotBound {
    pub caller: String,
    pub bound: String,
    pub wanted: String,
}

impl Caller {
    /// The caller when authentication is off.
    pub fn anonymous() -> Caller {
        Caller {
            name: "anonymous".into(),
            role: Role::Admin,
            collector_id: None,
            credential: Credential::Nobody,
        }
    }

    /// Whether this caller may register and send batches as `collector_id`: admins may act as
    /// any collector, a collector only as the one it is bound to.
    pub fn may_act_as(&self, collector_id: &str) -> Result<(), NotBound> {
        match (&self.role, &self.collector_id) {
            (Role::Admin, _) => Ok(()),
            (_, Some(bound)) if bound == collector_id => Ok(()),
            (_, bound) => Err(NotBound {
                caller: self.to_string(),
                bound: bound.clone().unwrap_or_else(|| "(none)".into()),
                wanted: collector_id.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_access() {
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Open);
        assert_eq!(
            access("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Access::Open
        );
        assert_eq!(
            access("/solarhub.v1.SystemService/ListSystems"),
            Access::Read
        );
        assert_eq!(access("/solarhub.v1.LiveService/WatchSystem"), Access::Read);
        assert_eq!(access("/solarhub.v1.ConfigService/GetConfig"), Access::Read);
        assert_eq!(
            access("/solarhub.v1.CollectorService/ListCollectors"),
            Access::Read
        );
        assert_eq!(
            access("/solarhub.v1.CollectorService/SendBatch"),
            Access::Ingest
        );
        assert_eq!(
            access("/solarhub.v1.HistoryService/Recompute"),
            Access::Admin
        );
        assert_eq!(
            access("/solarhub.v1.SystemService/DeleteSystem"),
            Access::Admin
        );
        assert_eq!(access("/other.Service/GetThing"), Access::Admin);
        assert_eq!(
            access("/solarhub.v1.AuditService/ListAuditEvents"),
            Access::Admin
        );
        assert_eq!(access("garbage"), Access::Admin);
    }

    #[test]
    fn roles_allow_their_access_only() {
        use Access::*;
        assert!(
            [Open, Read, Ingest, Admin]
                .iter()
                .all(|a| Role::Admin.may(*a))
        );
        assert!(Role::Reader.may(Read) && !Role::Reader.may(Ingest) && !Role::Reader.may(Admin));
        assert!(Role::Collector.may(Ingest) && !Role::Collector.may(Read));
    }

    #[test]
    fn collectors_act_only_as_themselves() {
        let a = Caller {
            name: "site-a".into(),
            role: Role::Collector,
            collector_id: Some("a".into()),
            credential: Credential::Certificate("site-a".into()),
        };
        assert!(a.may_act_as("a").is_ok());
        let refused = a.may_act_as("b").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "collector site-a is bound to collector a and may not act as collector b"
        );
        assert!(Caller::anonymous().may_act_as("b").is_ok());
    }
}
