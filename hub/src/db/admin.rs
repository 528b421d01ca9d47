//! Creating and dropping whole Postgres databases: used by tests (each gets its own database) and
//! by operators preparing a fresh one.

use diesel::prelude::*;
use diesel::{Connection, PgConnection};

use super::DbError;

fn with_database(url: &str, database: &str) -> Result<String, DbError> {
    let (base, _) = url
        .rsplit_once('/')
        .filter(|(base, _)| {
            base.contains("://")
                && base
                    .split("://")
                    .nth(1)
                    .is_some_and(|rest| !rest.is_empty())
        })
        .ok_or_else(|| DbError::BadUrl(format!("{url} does not end in /DATABASE")))?;
    Ok(format!("{base}/{database}"))
}

fn check_name(name: &str) -> Result<(), DbError> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(DbError::Invalid(format!(
            "{name:?} is not a plain database name (a-z, 0-9, _)"
        )));
    }
    Ok(())
}

/// Creates database `name` on the server of `admin_url` and returns the url of the new database.
pub fn create_postgres_database(admin_url: &str, name: &str) -> Result<String, DbError> {
    check_name(name)?;
    let mut conn = PgConnection::establish(admin_url).map_err(|error| DbError::Connect {
        url: admin_url.to_owned(),
        reason: error.to_string(),
    })?;
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
    with_database(admin_url, name)
}

/// Drops database `name` (terminating its connections) on the server of `admin_url`.
pub fn drop_postgres_database(admin_url: &str, name: &str) -> Result<(), DbError> {
    check_name(name)?;
    let mut conn = PgConnection::establish(admin_url).map_err(|error| DbError::Connect {
        url: admin_url.to_owned(),
        reason: error.to_string(),
    })?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn)?;
    Ok(())
}
