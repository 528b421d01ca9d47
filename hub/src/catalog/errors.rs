//! What the catalog API says back: field violations, the parent ids every answer carries, and
//! [`CatalogError`], the one error of every catalog read and write (never SQL text).

use std::fmt;

use crate::db::DbError;

/// One bad field of a request: its path (`inverter.array_id`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Collects field violations while a request is checked.
#[derive(Debug, Default)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was found, else the violations as an error.
    pub fn into_result(self) -> Result<(), CatalogError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(CatalogError::Invalid(self.0))
        }
    }
}

/// The ids above a resource, sent with every answer about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parents {
    pub system_id: Option<String>,
    pub battery_array_id: Option<String>,
    pub pack_id: Option<String>,
}

impl fmt::Display for Parents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(pack) = &self.pack_id {
            parts.push(format!("battery pack {pack}"));
        }
        if let Some(battery_array) = &self.battery_array_id {
            parts.push(format!("battery array {battery_array}"));
        }
        if let Some(system) = &self.system_id {
            parts.push(format!("system {system}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// Why a catalog request failed. Messages name resources by kind and id, never SQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("invalid request: {}", describe_violations(.0))]
    Invalid(Vec<FieldViolation>),
    #[error("{kind} {id} not found{}{}", in_parents(.parents), named_by(.field))]
    NotFound {
        kind: &'static str,
        id: String,
        parents: Box<Parents>,
        /// The request field that named it, when the missing thing is a referenced parent.
        field: Option<String>,
    },
    #[error("{kind} {id} already exists")]
    AlreadyExists {
        kind: &'static str,
        id: String,
        field: String,
    },
    #[error("{kind} {id} still has {}; delete them first or set cascade", describe_children(.children))]
    HasChildren {
        kind: &'static str,
        id: String,
        children: Vec<(String, i64)>,
    },
    #[error("{message}")]
    Conflict { field: String, message: String },
    #[error("database unavailable")]
    Unavailable(String),
    /// Lost to concurrent writers even after retrying; the client may try again.
    #[error("too many concurrent changes, try again")]
    Contention(String),
    #[error("internal error")]
    Internal(String),
}

fn describe_violations(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

fn in_parents(parents: &Parents) -> String {
    let text = parents.to_string();
    if text.is_empty() {
        text
    } else {
        format!(" in {text}")
    }
}

fn named_by(field: &Option<String>) -> String {
    field
        .as_ref()
        .map(|field| format!(" (named by {field})"))
        .unwrap_or_default()
}

fn describe_children(children: &[(String, i64)]) -> String {
    children
        .iter()
        .map(|(table, count)| format!("{count} {table}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<DbError> for CatalogError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::BadUrl(_) | DbError::Connect { .. } | DbError::Unavailable(_) => {
                CatalogError::Unavailable(error.to_string())
            }
            DbError::UniqueViolation(message) => CatalogError::Conflict {
                field: String::new(),
                message: format!("conflicting write: {message}"),
            },
            DbError::ForeignKeyViolation(message) => CatalogError::Conflict {
                field: String::new(),
                message: format!("a referenced resource changed at the same time: {message}"),
            },
            DbError::Contention(message) => CatalogError::Contention(message),
            DbError::Migration(_) | DbError::Query(_) | DbError::Invalid(_) => {
                CatalogError::Internal(error.to_string())
            }
        }
    }
}

impl crate::db::Retryable for CatalogError {
    fn is_retryable(&self) -> bool {
        matches!(self, CatalogError::Contention(_))
    }
}
