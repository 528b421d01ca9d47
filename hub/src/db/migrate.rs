//! Embedded schema migrations, one directory per backend with the same names and order.
//!
//! On Postgres the run holds a session advisory lock, so hubs that start at once on one database
//! migrate one after the other: the first applies, the rest find nothing pending.

use diesel::RunQueryDsl;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{DbConnection, DbError};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// Key of the Postgres advisory lock held while migrating ("solarhub" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x736f_6c61_7268_7562;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run, oldest first; empty when the schema was already current.
    pub applied: Vec<String>,
}

pub fn run_migrations(conn: &mut DbConnection) -> Result<MigrationReport, DbError> {
    let applied = match conn {
        DbConnection::Postgres(pg) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(pg)?;
            let result = pg
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>());
            let unlock =
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                    .execute(pg);
            let versions = result.map_err(|error| DbError::Migration(error.to_string()))?;
            unlock?;
            versions
        }
        DbConnection::Sqlite(sqlite) => sqlite
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|error| DbError::Migration(error.to_string()))?
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    Ok(MigrationReport { applied })
}

/// Reverts the newest applied migration and returns its version: a database as the previous
/// release left it, for tests of what a migration does to existing rows.
pub fn revert_last_migration(conn: &mut DbConnection) -> Result<String, DbError> {
    let version = match conn {
        DbConnection::Postgres(pg) => pg.revert_last_migration(POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(sqlite) => sqlite.revert_last_migration(SQLITE_MIGRATIONS),
    }
    .map_err(|error| DbError::Migration(error.to_string()))?;
    Ok(version.to_string())
}

/// Versions of every migration applied to this database, oldest first.
pub fn applied_migrations(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    let versions = match conn {
        DbConnection::Postgres(pg) => pg.applied_migrations(),
        DbConnection::Sqlite(sqlite) => sqlite.applied_migrations(),
    }
    .map_err(|error| DbError::Migration(error.to_string()))?;
    let mut versions: Vec<String> = versions.iter().map(ToString::to_string).collect();
    versions.sort();
    Ok(versions)
}

/// Every table the migrations create, read from a scratch in-memory database migrated for the
/// purpose: the one list of solarhub's own tables, whatever migrations come later.
pub fn schema_tables() -> Result<Vec<String>, DbError> {
    use diesel::Connection;
    let scratch = diesel::SqliteConnection::establish(":memory:")
        .map_err(|error| DbError::Migration(format!("cannot open a scratch database: {error}")))?;
    let mut conn = DbConnection::Sqlite(scratch);
    run_migrations(&mut conn)?;
    super::introspect::table_names(&mut conn)
}
