//! What hubs sharing one Postgres database use to share work: a connection of its own that holds
//! session advisory locks (one per periodic job; whoever holds a job's lock leads it, and the lock
//! goes with the connection when its hub dies), and commit announcements with `LISTEN`/`NOTIFY`.
//! On SQLite there is nothing to share: every function here is a no-op or says "no session".

use diesel::connection::SimpleConnection;
use diesel::{PgConnection, RunQueryDsl};

use super::{DatabaseUrl, DbConnection, DbError};

/// The channel commits are announced on.
pub const COMMITS_CHANNEL: &str = "solarhub_commits";

/// A Postgres connection outside the pool, held for as long as this hub leads the jobs whose
/// locks it took.
pub struct LockSession {
    conn: PgConnection,
}

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// A connection of its own to `url`, or `None` on SQLite.
fn own_connection(url: &DatabaseUrl) -> Result<Option<PgConnection>, DbError> {
    match url {
        DatabaseUrl::Sqlite(_) => Ok(None),
        DatabaseUrl::Postgres(_) => match url.connect()? {
            DbConnection::Postgres(conn) => Ok(Some(conn)),
            DbConnection::Sqlite(_) => unreachable!("a postgres url opens a postgres connection"),
        },
    }
}

impl LockSession {
    /// Opens the session's connection; `None` on SQLite, where one process leads everything.
    pub fn open(url: &DatabaseUrl) -> Result<Option<LockSession>, DbError> {
        Ok(own_connection(url)?.map(|conn| LockSession { conn }))
    }

    /// Takes the session lock `key` if nobody holds it (true), else leaves it (false). Taking a
    /// lock this session already holds is true again (and must be released as often; we never
    /// release: the lock ends with the connection).
    pub fn try_lock(&mut self, key: i64) -> Result<bool, DbError> {
        let rows: Vec<Locked> = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
            .bind::<diesel::sql_types::BigInt, _>(key)
            .load(&mut self.conn)?;
        Ok(rows.first().is_some_and(|row| row.locked))
    }

    /// Whether the connection (and with it every lock it holds) is still there.
    pub fn check(&mut self) -> Result<(), DbError> {
        self.conn.batch_execute("SELECT 1")?;
        Ok(())
    }
}

/// Announces `payload` on [`COMMITS_CHANNEL`] when the current transaction commits (nothing if it
/// rolls back); equal payloads of one transaction are delivered once. A no-op on SQLite.
pub fn announce(conn: &mut DbConnection, payload: &str) -> Result<(), DbError> {
    if let DbConnection::Postgres(pg) = conn {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<diesel::sql_types::Text, _>(COMMITS_CHANNEL)
            .bind::<diesel::sql_types::Text, _>(payload)
            .execute(pg)?;
    }
    Ok(())
}

/// A connection of its own listening on [`COMMITS_CHANNEL`].
pub struct CommitListener {
    conn: PgConnection,
}

impl CommitListener {
    /// Connects and listens; `None` on SQLite.
    pub fn open(url: &DatabaseUrl) -> Result<Option<CommitListener>, DbError> {
        let Some(mut conn) = own_connection(url)? else {
            return Ok(None);
        };
        conn.batch_execute(&format!("LISTEN {COMMITS_CHANNEL}"))?;
        Ok(Some(CommitListener { conn }))
    }

    /// The payloads that arrived since the last call, without waiting. An error means the
    /// connection is gone (and whatever was announced meanwhile with it).
    pub fn take(&mut self) -> Result<Vec<String>, DbError> {
        let mut payloads = Vec::new();
        for notification in self.conn.notifications_iter() {
            payloads.push(notification?.payload);
        }
        Ok(payloads)
    }
}
