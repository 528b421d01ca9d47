//! The `legacy_imports` bookkeeping table.

use diesel::prelude::*;

use super::{DbConnection, DbError, schema::legacy_imports};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = legacy_imports)]
pub struct LegacyImportRow {
    pub import_id: String,
    pub source: String,
    pub in_place: bool,
    pub backup: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub report: Option<String>,
}

pub fn record_start(conn: &mut DbConnection, row: &LegacyImportRow) -> Result<(), DbError> {
    diesel::insert_into(legacy_imports::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn record_finish(
    conn: &mut DbConnection,
    import_id: &str,
    finished_at: i64,
    report: &str,
) -> Result<(), DbError> {
    diesel::update(legacy_imports::table.find(import_id))
        .set((
            legacy_imports::finished_at.eq(Some(finished_at)),
            legacy_imports::report.eq(Some(report)),
        ))
        .execute(conn)?;
    Ok(())
}

/// An in-place upgrade that was started but did not finish, if any.
pub fn unfinished_in_place(conn: &mut DbConnection) -> Result<Option<LegacyImportRow>, DbError> {
    Ok(legacy_imports::table
        .filter(legacy_imports::in_place.eq(true))
        .filter(legacy_imports::finished_at.is_null())
        .select(LegacyImportRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn all(conn: &mut DbConnection) -> Result<Vec<LegacyImportRow>, DbError> {
    Ok(legacy_imports::table
        .order(legacy_imports::started_at)
        .select(LegacyImportRow::as_select())
        .load(conn)?)
}
