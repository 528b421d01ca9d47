//! Hand-written SQL run the same way on both backends, for the tables `schema.rs` does not type
//! (retention's marks and spans, the aggregates): `execute!` and `load!` send one statement with
//! the same binds to whichever backend a connection is (`$1`, `$2`, … in order of first use:
//! Postgres' numbered parameters, SQLite's named ones), and the small row shapes they read.

use diesel::sql_types::{BigInt, Nullable, Text};

/// Runs one statement on whichever backend `$conn` is, with the same binds.
macro_rules! execute {
    ($conn:expr, $sql:expr $(, $kind:ty => $value:expr)* $(,)?) => {{
        let query = diesel::sql_query($sql) $(.bind::<$kind, _>($value))*;
        match $conn {
            $crate::db::DbConnection::Postgres(pg) => diesel::RunQueryDsl::execute(query, pg),
            $crate::db::DbConnection::Sqlite(sqlite) => diesel::RunQueryDsl::execute(query, sqlite),
        }
    }};
}

/// Loads the rows of one query as `$row` on whichever backend `$conn` is, with the same binds.
macro_rules! load {
    ($conn:expr, $row:ty, $sql:expr $(, $kind:ty => $value:expr)* $(,)?) => {{
        let query = diesel::sql_query($sql) $(.bind::<$kind, _>($value))*;
        match $conn {
            $crate::db::DbConnection::Postgres(pg) => {
                diesel::RunQueryDsl::load::<$row>(query, pg)
            }
            $crate::db::DbConnection::Sqlite(sqlite) => {
                diesel::RunQueryDsl::load::<$row>(query, sqlite)
            }
        }
    }};
}

/// Hands the rows of one query to `$each` as `$row`s one at a time, as they are read, on
/// whichever backend `$conn` is (what `load!` collects, without the list).
macro_rules! load_each {
    ($conn:expr, $row:ty, $each:expr, $sql:expr $(, $kind:ty => $value:expr)* $(,)?) => {{
        use diesel::connection::DefaultLoadingMode;
        let query = diesel::sql_query($sql) $(.bind::<$kind, _>($value))*;
        let mut each = $each;
        let read: Result<(), diesel::result::Error> = match $conn {
            $crate::db::DbConnection::Postgres(pg) => diesel::RunQueryDsl::load_iter::<
                $row,
                DefaultLoadingMode,
            >(query, pg)
            .and_then(|rows| rows.map(|row| row.map(&mut each)).collect()),
            $crate::db::DbConnection::Sqlite(sqlite) => diesel::RunQueryDsl::load_iter::<
                $row,
                DefaultLoadingMode,
            >(query, sqlite)
            .and_then(|rows| rows.map(|row| row.map(&mut each)).collect()),
        };
        read
    }};
}

/// One time, or none (`SELECT MIN(…) AS ts …`).
#[derive(diesel::QueryableByName)]
pub(super) struct MaybeTs {
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(super) ts: Option<i64>,
}

impl MaybeTs {
    /// The one value an aggregate query answers.
    pub(super) fn single(rows: Vec<MaybeTs>) -> Option<i64> {
        rows.into_iter().next().and_then(|row| row.ts)
    }
}

/// One id (`SELECT … AS id`).
#[derive(diesel::QueryableByName)]
pub(super) struct Id {
    #[diesel(sql_type = Text)]
    pub(super) id: String,
}
