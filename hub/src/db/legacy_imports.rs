//! The legacy-import bookkeeping tables: `legacy_imports` (every import and its report) and
//! `legacy_conflicts` (legacy rows that disagree with a stored row).

use diesel::prelude::*;

use super::schema::{self, legacy_imports};
use super::{DbConnection, DbError};

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

/// A legacy sample row that disagrees with a stored row of the same (device, time).
#[derive(Debug, Clone, PartialEq, Insertable, Queryable, Selectable)]
#[diesel(table_name = schema::legacy_conflicts, treat_none_as_default_value = false)]
pub struct LegacyConflictRow {
    /// The legacy file (as given), so several files can be imported into one database.
    pub source: String,
    /// The legacy table, by its original name.
    pub source_table: String,
    pub source_rowid: i64,
    pub import_id: String,
    pub device_id: String,
    /// UTC epoch ms it was read as.
    pub ts: i64,
    /// The timestamp as the old app wrote it.
    pub raw_ts: String,
    /// The row's values as they would have been stored, as JSON.
    pub values_json: String,
}

/// Keeps conflicting rows; one kept by an earlier run of the same import stays as it is.
pub fn record_conflicts(
    conn: &mut DbConnection,
    rows: &[LegacyConflictRow],
) -> Result<usize, DbError> {
    let mut inserted = 0;
    for chunk in rows.chunks(500) {
        inserted += match conn {
            DbConnection::Postgres(pg) => diesel::insert_into(schema::legacy_conflicts::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::insert_into(schema::legacy_conflicts::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(sqlite)?,
        };
    }
    Ok(inserted)
}
