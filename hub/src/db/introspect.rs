//! What tables and columns a database actually has, read from the database itself. Used to check
//! that both backends carry the same schema and to tell a legacy database from a solarhub one.

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use super::{DbConnection, DbError};

/// A column as both backends can describe it. `sql_type` is normalised (`BIGINT`, `DOUBLE`, ...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ColumnInfo {
    pub name: String,
    pub sql_type: String,
    pub nullable: bool,
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sql_type: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

/// Tables of the current schema, sorted, without the migration bookkeeping and SQLite internals.
pub fn table_names(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    let query = match conn {
        DbConnection::Postgres(_) => {
            "SELECT table_name AS name FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
               AND table_name <> '__diesel_schema_migrations' ORDER BY table_name"
        }
        DbConnection::Sqlite(_) => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
               AND name <> '__diesel_schema_migrations' ORDER BY name"
        }
    };
    let rows: Vec<NameRow> = diesel::sql_query(query).load(conn)?;
    Ok(rows.into_iter().map(|row| row.name).collect())
}

/// Columns of `table` in declaration order, with normalised types.
pub fn columns(conn: &mut DbConnection, table: &str) -> Result<Vec<ColumnInfo>, DbError> {
    let rows: Vec<ColumnRow> = match conn {
        DbConnection::Postgres(_) => diesel::sql_query(
            "SELECT column_name::text AS name, data_type::text AS sql_type, (is_nullable = 'YES') AS nullable
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind::<Text, _>(table)
        .load(conn)?,
        DbConnection::Sqlite(_) => diesel::sql_query(
            "SELECT name, type AS sql_type, (\"notnull\" = 0 AND pk = 0) AS nullable
             FROM pragma_table_info(?) ORDER BY cid",
        )
        .bind::<Text, _>(table)
        .load(conn)?,
    };
    Ok(rows
        .into_iter()
        .map(|row| ColumnInfo {
            name: row.name,
            sql_type: normalise_type(&row.sql_type),
            nullable: row.nullable,
        })
        .collect())
}

fn normalise_type(raw: &str) -> String {
    match raw.to_ascii_uppercase().as_str() {
        "DOUBLE PRECISION" | "DOUBLE" => "DOUBLE".into(),
        "CHARACTER VARYING" | "TEXT" => "TEXT".into(),
        "INT" | "INTEGER" | "INT4" => "INTEGER".into(),
        "BIGINT" | "INT8" => "BIGINT".into(),
        "BOOLEAN" | "BOOL" => "BOOLEAN".into(),
        other => other.to_owned(),
    }
}

/// Whether `table` exists.
pub fn has_table(conn: &mut DbConnection, table: &str) -> Result<bool, DbError> {
    Ok(table_names(conn)?.iter().any(|name| name == table))
}

#[derive(QueryableByName)]
struct LineRow {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Every row of `table` rendered as text (`NULL` for nulls, columns joined by `|`), sorted. Two
/// equal fingerprints mean the table holds the same values, audit columns included.
pub fn table_fingerprint(conn: &mut DbConnection, table: &str) -> Result<Vec<String>, DbError> {
    let columns = columns(conn, table)?;
    if columns.is_empty() {
        return Err(DbError::Invalid(format!("table {table} does not exist")));
    }
    let rendered: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "COALESCE(CAST(\"{}\" AS TEXT), 'NULL')",
                c.name.replace('"', "")
            )
        })
        .collect();
    let query = format!(
        "SELECT {} AS line FROM \"{}\" ORDER BY 1",
        rendered.join(" || '|' || "),
        table.replace('"', "")
    );
    let rows: Vec<LineRow> = diesel::sql_query(query).load(conn)?;
    Ok(rows.into_iter().map(|row| row.line).collect())
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

/// Number of rows in `table`.
pub fn row_count(conn: &mut DbConnection, table: &str) -> Result<i64, DbError> {
    let query = format!(
        "SELECT COUNT(*) AS count FROM \"{}\"",
        table.replace('"', "")
    );
    let rows: Vec<CountRow> = diesel::sql_query(query).load(conn)?;
    Ok(rows.first().map(|row| row.count).unwrap_or(0))
}

/// Whether diesel's migration bookkeeping table exists, i.e. the database carries a solarhub schema.
pub fn has_migrations_table(conn: &mut DbConnection) -> Result<bool, DbError> {
    let query = match conn {
        DbConnection::Postgres(_) => {
            "SELECT table_name AS name FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name = '__diesel_schema_migrations'"
        }
        DbConnection::Sqlite(_) => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '__diesel_schema_migrations'"
        }
    };
    let rows: Vec<NameRow> = diesel::sql_query(query).load(conn)?;
    Ok(!rows.is_empty())
}
