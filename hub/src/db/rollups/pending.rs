//! The pending ranges ingest leaves for the roller (`rollup_pending`).

use super::*;

/// A device's samples changed in [from_ts, to_ts]: its rollups must be rolled again.
#[derive(Debug, Clone, PartialEq, Eq, Insertable, Queryable, Selectable)]
#[diesel(table_name = schema::rollup_pending, treat_none_as_default_value = false)]
pub struct Pending {
    pub device_id: String,
    pub system_id: String,
    pub from_ts: i64,
    pub to_ts: i64,
}

/// Records pending ranges (in the batch's transaction); one already recorded is kept.
pub fn add_pending(conn: &mut DbConnection, rows: &[Pending]) -> Result<(), DbError> {
    for chunk in rows.chunks(INSERT_ROWS) {
        match conn {
            DbConnection::Postgres(pg) => diesel::insert_into(schema::rollup_pending::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::insert_into(schema::rollup_pending::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(sqlite)?,
        };
    }
    Ok(())
}

/// Every pending range.
pub fn pending(conn: &mut DbConnection) -> Result<Vec<Pending>, DbError> {
    use schema::rollup_pending::dsl as p;
    Ok(p::rollup_pending
        .order((p::system_id, p::device_id, p::from_ts))
        .select(Pending::as_select())
        .load(conn)?)
}

/// How many ranges wait for the roller, and the start of the oldest (epoch ms).
pub fn pending_summary(conn: &mut DbConnection) -> Result<(i64, Option<i64>), DbError> {
    use diesel::dsl::{count_star, min};
    use schema::rollup_pending::dsl as p;
    Ok(p::rollup_pending
        .select((count_star(), min(p::from_ts)))
        .first(conn)?)
}

/// Removes rolled ranges.
pub fn remove_pending(conn: &mut DbConnection, rows: &[Pending]) -> Result<(), DbError> {
    use diesel::connection::SimpleConnection;
    // A few hundred keys per statement, not a statement per key: a pass over 500 devices is two
    // round trips.
    for chunk in rows.chunks(INSERT_ROWS) {
        let keys: Vec<String> = chunk
            .iter()
            .map(|row| {
                checked_id(&row.device_id)
                    .map(|id| format!("('{id}', {}, {})", row.from_ts, row.to_ts))
            })
            .collect::<Result<_, _>>()?;
        conn.batch_execute(&format!(
            "DELETE FROM rollup_pending WHERE (device_id, from_ts, to_ts) IN (VALUES {});",
            keys.join(", ")
        ))?;
    }
    Ok(())
}
