//! The database layer: the only module of the hub that imports diesel.
//!
//! It owns the connection type over both backends, the pool, the embedded migrations and every query.
//! Functions here are synchronous and take `&mut DbConnection`; async code reaches them through
//! [`Database::run`], which moves the work onto tokio's blocking pool. Nothing here may hand diesel
//! types or SQL text to callers: errors leave as [`DbError`].

#[macro_use]
mod raw_sql;
pub mod admin;
pub mod aggregates;
pub mod audit;
pub mod cascade;
pub mod catalog;
pub mod cluster;
pub mod control;
pub mod ingest;
pub mod introspect;
pub mod legacy_imports;
pub mod legacy_source;
pub mod live;
mod migrate;
pub mod principals;
pub mod quality;
pub mod retention;
pub mod rollups;
pub mod samples;
mod schema;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel::{Connection, PgConnection, SqliteConnection};

pub use migrate::{
    MigrationReport, applied_migrations, revert_last_migration, run_migrations, schema_tables,
};

/// How long a SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// One connection to either backend. `MultiConnection` lets one `schema.rs` and one set of queries
/// serve both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl DbConnection {
    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Postgres(_) => Backend::Postgres,
            DbConnection::Sqlite(_) => Backend::Sqlite,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        })
    }
}

/// Where the hub's database lives: `postgres://…` / `postgresql://…`, or a SQLite file path
/// (optionally written `sqlite://PATH`).
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

/// The embedded default: a SQLite file in the working directory.
pub const DEFAULT_SQLITE_FILE: &str = "solarhub.db";

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<DatabaseUrl, DbError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(DbError::BadUrl("the database url is empty".into()));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(raw.to_owned()));
        }
        if let Some(path) = raw.strip_prefix("sqlite://") {
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if raw.contains("://") {
            return Err(DbError::BadUrl(format!(
                "unsupported database url scheme in {:?}: use postgres://… or a SQLite file path",
                redact_url(raw)
            )));
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(raw)))
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Postgres(_) => Backend::Postgres,
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
        }
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            DatabaseUrl::Sqlite(path) => Some(path),
            DatabaseUrl::Postgres(_) => None,
        }
    }

    /// Opens one connection, with the per-connection settings applied (SQLite: WAL, foreign keys,
    /// busy timeout, incremental vacuum for a new file).
    pub fn connect(&self) -> Result<DbConnection, DbError> {
        match self {
            DatabaseUrl::Postgres(url) => PgConnection::establish(url)
                .map(DbConnection::Postgres)
                .map_err(|error| DbError::Connect {
                    url: self.to_string(),
                    // libpq may quote parts of the url back.
                    reason: redact_url(&one_line(&error.to_string())),
                }),
            DatabaseUrl::Sqlite(path) => {
                let connect_error = |reason: String| DbError::Connect {
                    url: self.to_string(),
                    reason,
                };
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
                    && !parent.is_dir()
                {
                    return Err(connect_error(format!(
                        "directory {} does not exist",
                        parent.display()
                    )));
                }
                // Private (0600, and so its WAL): it holds the tokens' hashes and the site's data.
                solarhub_ops::create_private_file(path)
                    .map_err(|error| connect_error(format!("cannot create the file: {error}")))?;
                let path_text = path
                    .to_str()
                    .ok_or_else(|| connect_error("the path is not valid UTF-8".into()))?;
                let mut conn = SqliteConnection::establish(path_text)
                    .map_err(|e| connect_error(e.to_string()))?;
                // `auto_vacuum` takes effect only in a file that has no table yet (the first
                // connection to a new file): such a file can give the space of deleted rows back
                // (retention). In an existing file it changes nothing. A pooled connection keeps
                // 512 kB of pages, not SQLite's 2 MB: the OS caches the file anyway, and four to
                // eight connections' caches were a quarter of what a thousand streaming devices
                // cost the hub (BENCHMARKS.md, issue 24).
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                     PRAGMA auto_vacuum = INCREMENTAL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA cache_size = -512;"
                ))
                .map_err(|e| connect_error(e.to_string()))?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Postgres(url) => f.write_str(&redact_url(url)),
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Joins a multi-line driver message (libpq writes hints on their own lines) into one line.
fn one_line(message: &str) -> String {
    message
        .split('\n')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Hides the password of `scheme://user:password@host/…` so urls can be logged.
/// `url` as the hub shows it (start-up lines, errors): a password in the user-info and the values
/// of `password` and `sslpassword` parameters (URL query or `key=value` conninfo) become `***`.
/// Every line and error that names the database goes through `DatabaseUrl`'s `Display`, which
/// calls this.
pub fn redact_url(url: &str) -> String {
    let mut shown = match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find(['?', '/']).unwrap_or(rest.len());
            // The last '@' of the authority ends the user-info (a password may hold an '@').
            match rest[..authority_end].rfind('@') {
                Some(at) => match rest[..at].split_once(':') {
                    Some((user, _password)) => {
                        format!("{scheme}://{user}:***{}", &rest[at..])
                    }
                    None => url.to_owned(),
                },
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    };
    for key in ["password", "sslpassword"] {
        let mut from = 0;
        while let Some(found) = shown[from..].to_ascii_lowercase().find(&format!("{key}=")) {
            let start = from + found;
            let boundary =
                start == 0 || matches!(shown.as_bytes()[start - 1], b'?' | b'&' | b' ' | b'\t');
            let value_start = start + key.len() + 1;
            if !boundary {
                from = value_start;
                continue;
            }
            let value_end = shown[value_start..]
                .find(['&', ' ', '\t'])
                .map_or(shown.len(), |end| value_start + end);
            shown.replace_range(value_start..value_end, "***");
            from = value_start + 3;
        }
    }
    shown
}

/// r2d2 manager that opens connections through [`DatabaseUrl::connect`], so every pooled SQLite
/// connection has the same pragmas and a Postgres url never silently falls back to a SQLite file.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = DbError;

    fn connect(&self) -> Result<DbConnection, DbError> {
        self.url.connect()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        conn.ping().map_err(DbError::from)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConnection = r2d2::PooledConnection<Manager>;

/// The hub's handle on its database: a pool plus where it points.
#[derive(Clone)]
pub struct Database {
    url: DatabaseUrl,
    pool: Pool,
    /// SQLite has one writer: writes of this process take turns here instead of failing with
    /// "database is locked" when two deferred transactions both try to upgrade to writing.
    sqlite_writer: std::sync::Arc<std::sync::Mutex<()>>,
    /// Calls waiting for a pooled connection right now (metrics).
    waiting: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// How the pool is doing, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: u32,
    pub open: u32,
    pub idle: u32,
    /// Calls waiting for a connection.
    pub waiting: i64,
}

/// Takes a connection from `pool`, counted in `waiting` while it waits.
fn checkout(
    pool: &Pool,
    waiting: &std::sync::atomic::AtomicI64,
) -> Result<PooledConnection, DbError> {
    use std::sync::atomic::Ordering;
    waiting.fetch_add(1, Ordering::Relaxed);
    let conn = pool.get();
    waiting.fetch_sub(1, Ordering::Relaxed);
    conn.map_err(|error| DbError::Unavailable(error.to_string()))
}

impl Database {
    /// Connects once (so an unreachable server fails now, with its own message), then builds the
    /// pool.
    pub fn open(url: DatabaseUrl) -> Result<Database, DbError> {
        drop(url.connect()?);
        let max_size = match url.backend() {
            Backend::Postgres => 16,
            // SQLite has one writer; a few readers share WAL snapshots.
            Backend::Sqlite => 8,
        };
        // No idle minimum: r2d2 refills one in a background thread whenever a connection is
        // checked out, and a short command (`token create`, `import-config`) that exits while
        // that thread is inside libpq's TLS setup crashed with SIGSEGV in OpenSSL's exit
        // handlers (measured: 10 of 60 `token list` runs on Postgres; 0 of 60 without it).
        // Connections are made when asked for, in the asking call, and kept idle after use.
        let pool = r2d2::Pool::builder()
            .max_size(max_size)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(15))
            .build(Manager { url: url.clone() })
            .map_err(|error| DbError::Connect {
                url: url.to_string(),
                reason: error.to_string(),
            })?;
        Ok(Database {
            url,
            pool,
            sqlite_writer: Default::default(),
            waiting: Default::default(),
        })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    pub fn get(&self) -> Result<PooledConnection, DbError> {
        checkout(&self.pool, &self.waiting)
    }

    pub fn pool_status(&self) -> PoolStatus {
        let state = self.pool.state();
        PoolStatus {
            max_size: self.pool.max_size(),
            open: state.connections,
            idle: state.idle_connections,
            waiting: self
                .waiting
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(0),
        }
    }

    /// Runs `work` with a pooled connection on tokio's blocking pool.
    pub async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let waiting = self.waiting.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = checkout(&pool, &waiting)?;
            work(&mut conn)
        })
        .await
        .map_err(|error| DbError::Unavailable(format!("database task failed: {error}")))?
    }
}

impl Database {
    /// Runs `work`, which writes, in one transaction on tokio's blocking pool. On SQLite, writers of
    /// this process take turns.
    ///
    /// A transaction that loses to contention (a Postgres deadlock or serialization failure) is rolled
    /// back and run again, up to a few times, so `work` must be safe to repeat.
    pub async fn run_write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Retryable + Send + 'static,
        F: Fn(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        let pool = self.pool.clone();
        let waiting = self.waiting.clone();
        let writer = self.sqlite_writer.clone();
        let backend = self.backend();
        tokio::task::spawn_blocking(move || {
            // A panic in another writer poisons nothing we rely on: the guard only orders writers.
            let _turn = match backend {
                Backend::Sqlite => Some(
                    writer
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                ),
                Backend::Postgres => None,
            };
            let mut conn = checkout(&pool, &waiting).map_err(E::from)?;
            let mut attempt = 1;
            loop {
                match in_transaction(&mut conn, &work) {
                    Err(error) if error.is_retryable() && attempt < WRITE_ATTEMPTS => {
                        std::thread::sleep(std::time::Duration::from_millis(
                            5 * u64::from(attempt),
                        ));
                        attempt += 1;
                    }
                    outcome => return outcome,
                }
            }
        })
        .await
        .map_err(|error| {
            E::from(DbError::Unavailable(format!(
                "database task failed: {error}"
            )))
        })?
    }
}

/// Counts the statements `work` sends on `conn`.
pub fn count_queries<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> T,
) -> (T, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let counter = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = counter.clone();
    conn.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
        if matches!(
            event,
            diesel::connection::InstrumentationEvent::StartQuery { .. }
        ) {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let result = work(conn);
    conn.set_instrumentation(diesel::connection::get_default_instrumentation());
    (result, counter.load(Ordering::SeqCst))
}

/// Errors of the database layer. Messages never contain SQL text.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("bad database url: {0}")]
    BadUrl(String),
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("{0}")]
    Query(diesel::result::Error),
    #[error("unique violation: {0}")]
    UniqueViolation(String),
    #[error("foreign key violation: {0}")]
    ForeignKeyViolation(String),
    /// A deadlock, serialization failure or lock timeout: the same work may succeed if run again.
    #[error("contention: {0}")]
    Contention(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<diesel::result::Error> for DbError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match error {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                DbError::UniqueViolation(info.message().to_owned())
            }
            Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
                DbError::ForeignKeyViolation(info.message().to_owned())
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                DbError::Unavailable(info.message().to_owned())
            }
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, info) => {
                DbError::Contention(info.message().to_owned())
            }
            Error::DatabaseError(_, ref info) if is_contention(info.message()) => {
                DbError::Contention(info.message().to_owned())
            }
            other => DbError::Query(other),
        }
    }
}

/// Postgres reports deadlocks, and SQLite a lock it could not get within the busy timeout, as
/// errors diesel does not classify.
fn is_contention(message: &str) -> bool {
    message.contains("deadlock detected")
        || message.contains("database is locked")
        || message.contains("database is busy")
}

/// An error that says whether running the same work again may succeed.
pub trait Retryable {
    fn is_retryable(&self) -> bool;
}

impl Retryable for DbError {
    fn is_retryable(&self) -> bool {
        matches!(self, DbError::Contention(_))
    }
}

/// How often a write that lost to contention is tried in all.
const WRITE_ATTEMPTS: u32 = 5;

impl From<diesel::ConnectionError> for DbError {
    fn from(error: diesel::ConnectionError) -> Self {
        DbError::Unavailable(error.to_string())
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs `work` in one transaction: committed when it returns `Ok`, rolled back otherwise. On
/// SQLite the transaction begins IMMEDIATE, taking the write lock at once (waiting for it under the
/// busy timeout), so two processes writing the same file never deadlock upgrading a read to a
/// write.
pub fn in_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    E: From<DbError>,
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    enum Failure<E> {
        Database(diesel::result::Error),
        Work(E),
    }
    impl<E> From<diesel::result::Error> for Failure<E> {
        fn from(error: diesel::result::Error) -> Self {
            Failure::Database(error)
        }
    }
    let failed = |failure: Failure<E>| match failure {
        Failure::Database(error) => E::from(DbError::from(error)),
        Failure::Work(error) => error,
    };
    if let DbConnection::Sqlite(sqlite) = conn
        && AnsiTransactionManager::transaction_manager_status_mut(sqlite).transaction_depth()
            == Ok(None)
    {
        AnsiTransactionManager::begin_transaction_sql(&mut *sqlite, "BEGIN IMMEDIATE")
            .map_err(|error| E::from(DbError::from(error)))?;
        let result = work(conn);
        let DbConnection::Sqlite(sqlite) = conn else {
            unreachable!("the connection cannot change backend")
        };
        return match result {
            Ok(value) => {
                <AnsiTransactionManager as TransactionManager<SqliteConnection>>::commit_transaction(
                    sqlite,
                )
                .map_err(|error| E::from(DbError::from(error)))?;
                Ok(value)
            }
            Err(error) => {
                let _ = <AnsiTransactionManager as TransactionManager<SqliteConnection>>::rollback_transaction(
                    sqlite,
                );
                Err(error)
            }
        };
    }
    conn.transaction(|conn| work(conn).map_err(Failure::Work))
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn no_password_is_shown_in_any_form() {
        for (url, shown) in [
            ("postgres://u:pw@host/db", "postgres://u:***@host/db"),
            (
                "postgres://u:p@w@host:5432/db",
                "postgres://u:***@host:5432/db",
            ),
            (
                "postgres://host/db?user=u&password=pw&sslmode=require",
                "postgres://host/db?user=u&password=***&sslmode=require",
            ),
            (
                "postgresql://host/db?sslpassword=pw&PASSWORD=pw2",
                "postgresql://host/db?sslpassword=***&PASSWORD=***",
            ),
            (
                "host=h password=pw dbname=d",
                "host=h password=*** dbname=d",
            ),
            ("postgres://host/db?user=u", "postgres://host/db?user=u"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
