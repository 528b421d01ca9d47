//! Control commands as stored (`control_commands`): written when asked for, moved through their
//! states by the hub (sent, expired, cancelled) and by their collector's result, read back as the
//! command history and each setting's last change.

use diesel::prelude::*;

use super::{DbConnection, DbError, schema::control_commands};

/// One command row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = control_commands)]
pub struct CommandRow {
    pub id: String,
    pub collector_id: String,
    pub device_id: String,
    /// `read`, `set` or `revert`.
    pub kind: String,
    pub dry_run: bool,
    pub reverts: Option<String>,
    pub requested_by: String,
    /// UTC epoch ms.
    pub created_at: i64,
    pub deadline: i64,
    /// `pending`, `sent`, `done`, `failed`, `refused`, `expired` or `cancelled`.
    pub state: String,
    pub reason: String,
    /// The `DeviceCommand`, as JSON (the proto3 mapping).
    pub command: String,
    /// The collector's `CommandResult`, as JSON, once it came.
    pub result: Option<String>,
    pub finished_at: Option<i64>,
}

/// States a collector's result may still replace (a command that expired or was cancelled on
/// the hub may have been executed all the same: what the device did wins).
pub const OPEN_STATES: [&str; 4] = ["pending", "sent", "expired", "cancelled"];

pub fn insert(conn: &mut DbConnection, row: &CommandRow) -> Result<(), DbError> {
    diesel::insert_into(control_commands::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<Option<CommandRow>, DbError> {
    Ok(control_commands::table
        .find(id)
        .select(CommandRow::as_select())
        .first(conn)
        .optional()?)
}

/// Commands newest first: of one device (or all), only open ones when `pending_only`.
pub fn list(
    conn: &mut DbConnection,
    device_id: Option<&str>,
    pending_only: bool,
    limit: i64,
) -> Result<Vec<CommandRow>, DbError> {
    let mut query = control_commands::table
        .select(CommandRow::as_select())
        .order((
            control_commands::created_at.desc(),
            control_commands::id.desc(),
        ))
        .limit(limit)
        .into_boxed();
    if let Some(device) = device_id {
        query = query.filter(control_commands::device_id.eq(device.to_owned()));
    }
    if pending_only {
        query = query.filter(control_commands::state.eq_any(["pending", "sent"]));
    }
    Ok(query.load(conn)?)
}

/// Commands of `collectors` still to deliver: pending or sent, deadline ahead.
pub fn deliverable(
    conn: &mut DbConnection,
    collectors: &[String],
    now: i64,
) -> Result<Vec<CommandRow>, DbError> {
    Ok(control_commands::table
        .select(CommandRow::as_select())
        .filter(control_commands::state.eq_any(["pending", "sent"]))
        .filter(control_commands::collector_id.eq_any(collectors.to_vec()))
        .filter(control_commands::deadline.gt(now))
        .order(control_commands::created_at)
        .load(conn)?)
}

pub fn mark_sent(conn: &mut DbConnection, ids: &[String]) -> Result<(), DbError> {
    diesel::update(
        control_commands::table
            .filter(control_commands::id.eq_any(ids.to_vec()))
            .filter(control_commands::state.eq("pending")),
    )
    .set(control_commands::state.eq("sent"))
    .execute(conn)?;
    Ok(())
}

/// Pending commands past their deadline, and sent ones past it by `sent_grace` ms (their
/// collector may still answer): the ones [`expire`] takes. A read, so a sweep with nothing due
/// writes nothing.
pub fn due_to_expire(
    conn: &mut DbConnection,
    now: i64,
    sent_grace: i64,
) -> Result<Vec<String>, DbError> {
    Ok(control_commands::table
        .select(control_commands::id)
        .filter(
            control_commands::state
                .eq("pending")
                .and(control_commands::deadline.le(now))
                .or(control_commands::state
                    .eq("sent")
                    .and(control_commands::deadline.le(now - sent_grace))),
        )
        .load(conn)?)
}

/// Marks `due` (from [`due_to_expire`]) expired, those still open.
pub fn expire(conn: &mut DbConnection, due: &[String], now: i64) -> Result<(), DbError> {
    diesel::update(
        control_commands::table
            .filter(control_commands::id.eq_any(due.to_vec()))
            .filter(control_commands::state.eq_any(["pending", "sent"])),
    )
    .set((
        control_commands::state.eq("expired"),
        control_commands::reason
            .eq("its deadline passed before its collector executed it: nothing was written"),
        control_commands::finished_at.eq(Some(now)),
    ))
    .execute(conn)?;
    Ok(())
}

/// Cancels a pending or sent command; false when it was not open.
pub fn cancel(conn: &mut DbConnection, id: &str, by: &str, now: i64) -> Result<bool, DbError> {
    let changed = diesel::update(
        control_commands::table
            .filter(control_commands::id.eq(id))
            .filter(control_commands::state.eq_any(["pending", "sent"])),
    )
    .set((
        control_commands::state.eq("cancelled"),
        control_commands::reason.eq(format!("cancelled by {by}")),
        control_commands::finished_at.eq(Some(now)),
    ))
    .execute(conn)?;
    Ok(changed > 0)
}

/// Records a collector's result when the command is still open to one; false otherwise (a
/// result sent again, or for a command already finished).
pub fn finish(
    conn: &mut DbConnection,
    id: &str,
    state: &str,
    reason: &str,
    result: &str,
    at: i64,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        control_commands::table
            .filter(control_commands::id.eq(id))
            .filter(control_commands::state.eq_any(OPEN_STATES)),
    )
    .set((
        control_commands::state.eq(state),
        control_commands::reason.eq(reason),
        control_commands::result.eq(Some(result.to_owned())),
        control_commands::finished_at.eq(Some(at)),
    ))
    .execute(conn)?;
    Ok(changed > 0)
}

/// The device's commands that wrote something, newest first (for each setting's last change).
pub fn changes(
    conn: &mut DbConnection,
    device_id: &str,
    limit: i64,
) -> Result<Vec<CommandRow>, DbError> {
    Ok(control_commands::table
        .select(CommandRow::as_select())
        .filter(control_commands::device_id.eq(device_id))
        .filter(control_commands::state.eq_any(["done", "failed"]))
        .filter(control_commands::dry_run.eq(false))
        .filter(control_commands::kind.ne("read"))
        .order(control_commands::finished_at.desc())
        .limit(limit)
        .load(conn)?)
}

/// The device's read still open (pending or sent, deadline ahead), if one is: a second caller
/// waits for it instead of reading the device again.
pub fn open_read(
    conn: &mut DbConnection,
    device_id: &str,
    now: i64,
) -> Result<Option<CommandRow>, DbError> {
    Ok(control_commands::table
        .select(CommandRow::as_select())
        .filter(control_commands::device_id.eq(device_id))
        .filter(control_commands::kind.eq("read"))
        .filter(control_commands::state.eq_any(["pending", "sent"]))
        .filter(control_commands::deadline.gt(now))
        .order(control_commands::created_at.desc())
        .first(conn)
        .optional()?)
}

/// Reads (kind `read`) made before `cutoff`, at most `limit`. Changes stay: they are the
/// settings' history.
pub fn reads_before(
    conn: &mut DbConnection,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    Ok(control_commands::table
        .select(control_commands::id)
        .filter(control_commands::kind.eq("read"))
        .filter(control_commands::created_at.lt(cutoff))
        .limit(limit)
        .load(conn)?)
}

/// Deletes the commands `ids` (old reads, from [`reads_before`]); returns how many went.
pub fn delete(conn: &mut DbConnection, ids: &[String]) -> Result<usize, DbError> {
    Ok(
        diesel::delete(control_commands::table.filter(control_commands::id.eq_any(ids.to_vec())))
            .execute(conn)?,
    )
}
