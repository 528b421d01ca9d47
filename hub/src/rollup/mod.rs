//! Energy rollups (DESIGN §3.3): hourly and daily rows per inverter, array, system, battery pack
//! and meter, in local buckets of the system's timezone.
//!
//! Rolling a run of hours recomputes every row of those hours from raw samples ([`hours`], loaded
//! one gap beyond the run on each side, all `energy::integrate` can reach), then the day rows of
//! the days they belong to from the hour rows ([`days`]); the figures both share live in
//! [`figures`], the energy rules in [`energy`]. The incremental path (ingest leaves
//! `rollup_pending` ranges, the [`roller`] rolls the hours within one gap of them) and
//! [`recompute`] call the same `roll_hours`, so both give the same rows. Rows carried over from
//! the old app's own figures are made in [`carried`].

mod aggregates;
pub mod carried;
mod days;
mod device_hours;
pub mod energy;
mod figures;
pub mod history;
mod hours;
pub mod incremental;
pub mod roller;

use std::collections::{BTreeMap, BTreeSet};

use chrono_tz::Tz;

use crate::catalog::{Installation, System};
use crate::db::retention;
use crate::db::rollups::{self as store, Level, Pending, RollupRows};
use crate::db::{DbConnection, DbError, now_ms};
use crate::local_time::{self, Bucket};
use days::day_rows;
use hours::hour_rows;

/// Intervals longer than this are not integrated (and are not coverage).
pub const DEFAULT_GAP_MS: i64 = 5 * 60_000;
/// Counter deltas over intervals longer than this are not taken either.
pub const DEFAULT_COUNTER_GAP_MS: i64 = 12 * 3_600_000;
/// A counter delta implying more power than this is a glitch, not energy.
pub const MAX_POWER_W: f64 = 1_000_000.0;
/// Hours rolled per transaction by a recompute: their samples are in memory at once, so a day,
/// not a week (the legacy bench: upgrading 8 days of a 3-inverter installation peaked at 500 MB
/// with weeks, against 175 MB for 2 days).
pub(super) const RECOMPUTE_CHUNK_HOURS: usize = 24;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub gap_ms: i64,
    pub counter_gap_ms: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            gap_ms: DEFAULT_GAP_MS,
            counter_gap_ms: DEFAULT_COUNTER_GAP_MS,
        }
    }
}

impl Settings {
    /// How far a roll reads beyond its hours for their first and last intervals (a counter's
    /// longest gap): deleting samples closer than this to an hour changes what rolling it gives.
    pub fn reach_ms(&self) -> i64 {
        self.limits().counter_gap_ms
    }

    fn limits(&self) -> energy::Limits {
        energy::Limits {
            gap_ms: self.gap_ms,
            counter_gap_ms: self.counter_gap_ms.max(self.gap_ms),
            max_power_w: MAX_POWER_W,
        }
    }
}

/// What one roll wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollReport {
    pub hours: usize,
    pub days: usize,
    pub rows: usize,
    /// Hours asked for but not rolled: retention may have deleted samples they were made from,
    /// so their rows stay as they are.
    pub frozen_hours: usize,
}

impl std::ops::AddAssign for RollReport {
    fn add_assign(&mut self, other: RollReport) {
        self.hours += other.hours;
        self.days += other.days;
        self.rows += other.rows;
        self.frozen_hours += other.frozen_hours;
    }
}

/// Leaves out of `hours` (in order) those retention froze: hours that have rows and whose
/// samples, or the samples their first and last intervals reach, may be gone, since their rows
/// were made while the samples were whole. An hour there without rows (samples imported or
/// arriving after the deletion, for an hour nothing was made of) is rolled from what is there:
/// something rather than nothing. Returns how many it left out.
pub(super) fn leave_out_frozen(
    conn: &mut DbConnection,
    system_id: &str,
    hours: &mut Vec<Bucket>,
    reach: i64,
) -> Result<usize, DbError> {
    let Some(frozen) = retention::frozen(conn, system_id, reach)? else {
        return Ok(0);
    };
    let touched: Vec<&Bucket> = hours
        .iter()
        .filter(|hour| frozen.overlaps(hour.start, hour.end))
        .collect();
    let (Some(first), Some(last)) = (touched.first(), touched.last()) else {
        return Ok(0);
    };
    let rolled = retention::rolled_hours(conn, system_id, first.start, last.end)?;
    let before = hours.len();
    hours.retain(|hour| !(frozen.overlaps(hour.start, hour.end) && rolled.contains(&hour.start)));
    Ok(before - hours.len())
}

/// One system as a roll needs it: the system, its zone, and its devices and attachments.
pub(super) struct SystemStructure {
    system: System,
    tz: Tz,
    installation: Installation,
}

pub(super) fn load_system_structure(
    conn: &mut DbConnection,
    system_id: &str,
) -> Result<Option<SystemStructure>, DbError> {
    let (systems, installation) = crate::db::catalog::load_structure(conn, system_id)?;
    Ok(systems.into_iter().next().map(|system| SystemStructure {
        tz: local_time::timezone(&system),
        system,
        installation,
    }))
}

fn row_count(rows: &RollupRows) -> usize {
    rows.inverter_hours.len()
        + rows.array_hours.len()
        + rows.system_hours.len()
        + rows.pack_hours.len()
        + rows.meter_hours.len()
        + rows.inverter_days.len()
        + rows.array_days.len()
        + rows.system_days.len()
        + rows.pack_days.len()
        + rows.meter_days.len()
}

/// Rolls a contiguous run of hours of one system, then the days they belong to. Call inside a
/// transaction.
fn roll_hours(
    conn: &mut DbConnection,
    structure: &SystemStructure,
    hours: &[Bucket],
    settings: Settings,
) -> Result<RollReport, DbError> {
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        return Ok(RollReport::default());
    };
    let at = now_ms();
    let system_id = structure.system.system_id.as_str();
    let rows = hour_rows(conn, structure, hours, settings, at)?;
    store::replace_rows(
        conn,
        system_id,
        (first.start, last.end),
        Level::Hours,
        None,
        &rows,
    )?;
    // The aggregates of the same hours, kept when retention deletes the samples.
    remake_aggregates(conn, system_id, structure.tz, first.start, last.end)?;
    let mut report = RollReport {
        hours: hours.len(),
        days: 0,
        rows: row_count(&rows),
        frozen_hours: 0,
    };
    let days: BTreeSet<Bucket> = hours
        .iter()
        .map(|h| local_time::day_of(structure.tz, h))
        .collect();
    for day in days {
        let Some(rows) = day_rows(conn, structure, &day, at)? else {
            continue;
        };
        store::replace_rows(
            conn,
            system_id,
            (day.start, day.end),
            Level::Days,
            None,
            &rows,
        )?;
        report.days += 1;
        report.rows += row_count(&rows);
    }
    Ok(report)
}

/// Makes again, from the raw samples, every aggregate bucket of `system_id` in [from, to) (on
/// local hour edges) whose raw samples are all there: a bucket whose samples retention may have
/// deleted keeps its stored row. Call inside a transaction.
pub fn remake_aggregates(
    conn: &mut DbConnection,
    system_id: &str,
    tz: Tz,
    from: i64,
    to: i64,
) -> Result<(), DbError> {
    remake_aggregates_of(conn, system_id, tz, None, from, to).map(drop)
}

/// [`remake_aggregates`], of one inverter, meter or pack only when `device` is given (its kind
/// and id; a pack's batteries and cells with it). Returns how many raw samples it read.
pub(crate) fn remake_aggregates_of(
    conn: &mut DbConnection,
    system_id: &str,
    tz: Tz,
    device: Option<(store::DeviceKind, &str)>,
    from: i64,
    to: i64,
) -> Result<u64, DbError> {
    use crate::db::aggregates::{self as stored, AGGREGATES, AggregateKind};
    let mut read = 0;
    let packs: Vec<String> = match device {
        Some((store::DeviceKind::Pack, pack)) => vec![pack.to_owned()],
        Some(_) => Vec::new(),
        None => crate::db::catalog::load_structure(conn, system_id)?
            .1
            .packs
            .into_iter()
            .map(|pack| pack.pack_id)
            .collect(),
    };
    for table in &AGGREGATES {
        let of_device = match (device, table.kind) {
            (None, _) => None,
            (Some((store::DeviceKind::Inverter, id)), AggregateKind::Inverter)
            | (Some((store::DeviceKind::Meter, id)), AggregateKind::Meter)
            | (Some((store::DeviceKind::Pack, id)), AggregateKind::Pack) => Some(id),
            (
                Some((store::DeviceKind::Pack, _)),
                AggregateKind::BatteryUnit | AggregateKind::Cell,
            ) => None,
            (Some(_), _) => continue,
        };
        let groups: Vec<&str> = if table.group == "pack_id" {
            packs.iter().map(String::as_str).collect()
        } else {
            vec![system_id]
        };
        for group in groups {
            let gone = retention::gone(conn, table.raw, group)?;
            let inputs = stored::inputs(conn, table, group, of_device, from, to)?;
            read += inputs.len() as u64;
            let made = aggregates::buckets(table, tz, &inputs);
            // Bucket by bucket where samples may be gone: only those whose samples are all there.
            let mut start = from;
            while start < to {
                let (bucket_start, bucket_end) = if gone.overlaps(from, to) {
                    aggregates::bucket_of(table, tz, start)
                } else {
                    (from, to)
                };
                let end = bucket_end.min(to);
                if !gone.overlaps(bucket_start, bucket_end) {
                    stored::clear(conn, table, group, of_device, start, end)?;
                }
                start = end;
            }
            let rows: Vec<_> = made
                .iter()
                .filter(|bucket| !gone.overlaps(bucket.start, bucket.end))
                .map(|bucket| bucket.output(table))
                .collect();
            stored::store(conn, table, &rows)?;
        }
    }
    Ok(read)
}

/// Splits sorted, distinct hour buckets into runs of consecutive hours.
pub(super) fn runs(hours: Vec<Bucket>) -> Vec<Vec<Bucket>> {
    let mut runs: Vec<Vec<Bucket>> = Vec::new();
    for hour in hours {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|last| last.end == hour.start) => run.push(hour),
            _ => runs.push(vec![hour]),
        }
    }
    runs
}

/// The pending ranges, by system.
pub fn pending_by_system(
    conn: &mut DbConnection,
) -> Result<BTreeMap<String, Vec<Pending>>, DbError> {
    let mut by_system: BTreeMap<String, Vec<Pending>> = BTreeMap::new();
    for range in store::pending(conn)? {
        by_system
            .entry(range.system_id.clone())
            .or_default()
            .push(range);
    }
    Ok(by_system)
}

/// The hours a recompute of `system_id` over [from, to) rolls, in runs of a day (the whole sample
/// span when `range` is `None`), and how many hours it leaves alone because retention froze them;
/// `None` when the system does not exist. Take the recompute's [`RecomputeClaim`] first, so
/// retention cannot freeze more of them while it runs.
pub fn recompute_chunks(
    conn: &mut DbConnection,
    system_id: &str,
    range: Option<(i64, i64)>,
    settings: Settings,
) -> Result<Option<RecomputePlan>, DbError> {
    let Some(structure) = load_system_structure(conn, system_id)? else {
        return Ok(None);
    };
    // Only where samples are: an open end of the range (or none) stops at the first and last
    // (of the rollups' samples, and of battery units' and cells', whose hourly aggregates a roll
    // makes too).
    let spans = [
        store::sample_span(conn, system_id)?,
        retention::span_of_system(conn, retention::SampleTable::Unit, system_id)?,
        retention::span_of_system(conn, retention::SampleTable::Cell, system_id)?,
    ];
    let first = spans.iter().flatten().map(|span| span.0).min();
    let last = spans.iter().flatten().map(|span| span.1).max();
    let Some((first, last)) = first.zip(last) else {
        return Ok(Some(RecomputePlan::default()));
    };
    let (from, to) = match range {
        Some((from, to)) => (from.max(first), to.min(last + 1)),
        None => (first, last + 1),
    };
    let mut hours = local_time::hours(structure.tz, from, to);
    let reach = settings.reach_ms();
    let frozen_hours = leave_out_frozen(conn, system_id, &mut hours, reach)?;
    let chunks = hours
        .chunks(RECOMPUTE_CHUNK_HOURS)
        .map(<[Bucket]>::to_vec)
        .collect();
    Ok(Some(RecomputePlan {
        chunks,
        frozen_hours,
    }))
}

/// What a recompute rolls: runs of a day of hours, and how many hours it leaves as they are.
#[derive(Debug, Default)]
pub struct RecomputePlan {
    pub chunks: Vec<Vec<Bucket>>,
    pub frozen_hours: usize,
}

/// Rolls one run of a recompute, renewing its claim from the run's start on. Call inside a
/// transaction.
pub fn roll_chunk(
    conn: &mut DbConnection,
    system_id: &str,
    hours: &[Bucket],
    settings: Settings,
    claim: &RecomputeClaim,
) -> Result<RollReport, DbError> {
    if let Some(first) = hours.first() {
        claim.renew(conn, first.start)?;
    }
    store::lock_system_for_roll(conn, system_id)?;
    match load_system_structure(conn, system_id)? {
        Some(structure) => roll_hours(conn, &structure, hours, settings),
        None => Ok(RollReport::default()),
    }
}

/// A running recompute's claim on the samples it has still to read: retention deletes none of
/// them (nor the counter reach before them) while the claim is renewed (every run renews it), and
/// a claim left by a recompute that died lapses after a day.
pub struct RecomputeClaim {
    holder: String,
    system_id: String,
}

impl RecomputeClaim {
    pub fn new(system_id: &str) -> RecomputeClaim {
        RecomputeClaim {
            holder: format!("recompute/{system_id}/{}", crate::cluster::hub_instance()),
            system_id: system_id.to_owned(),
        }
    }

    /// Claims (or keeps claiming) the samples from `from_ts` on, a day before it to be safe
    /// about the local hour `from_ts` falls in.
    pub fn renew(&self, conn: &mut DbConnection, from_ts: i64) -> Result<(), DbError> {
        let from = from_ts.saturating_sub(24 * 3_600_000);
        retention::hold(conn, &self.holder, &self.system_id, from)
    }

    pub fn release(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        retention::release(conn, &self.holder)
    }
}

/// Recomputes every rollup row of `system_id` for the hours overlapping `range` (the whole sample
/// span when `None`), a day per transaction, but for the hours retention froze. `None` when the
/// system does not exist.
pub fn recompute(
    conn: &mut DbConnection,
    system_id: &str,
    range: Option<(i64, i64)>,
    settings: Settings,
) -> Result<Option<RollReport>, DbError> {
    recompute_with_progress(
        conn,
        system_id,
        range,
        settings,
        &crate::progress::Progress::silent(),
    )
}

/// [`recompute`], reporting the hours done to `progress`.
pub fn recompute_with_progress(
    conn: &mut DbConnection,
    system_id: &str,
    range: Option<(i64, i64)>,
    settings: Settings,
    progress: &crate::progress::Progress,
) -> Result<Option<RollReport>, DbError> {
    let claim = RecomputeClaim::new(system_id);
    crate::db::in_transaction(conn, |conn| {
        claim.renew(conn, range.map_or(i64::MIN, |(from, _)| from))
    })?;
    let recomputed = (|| {
        let Some(RecomputePlan {
            chunks,
            frozen_hours,
        }) = recompute_chunks(conn, system_id, range, settings)?
        else {
            return Ok(None);
        };
        let hours: usize = chunks.iter().map(Vec::len).sum();
        let task = progress.task(
            format!("recomputing {system_id}"),
            Some(hours as u64),
            "hours",
        );
        let mut report = RollReport {
            frozen_hours,
            ..RollReport::default()
        };
        for chunk in chunks {
            report += crate::db::in_transaction(conn, |conn| {
                roll_chunk(conn, system_id, &chunk, settings, &claim)
            })?;
            task.advance(chunk.len() as u64);
        }
        task.finish();
        if range.is_none() {
            // Every sample's aggregates are made (or were, for the hours left frozen): the first
            // retention pass need not make them again (after a legacy upgrade, years of them).
            crate::db::in_transaction(conn, |conn| -> Result<(), DbError> {
                for table in retention::SampleTable::AGGREGATES {
                    retention::mark_made(conn, table, system_id)?;
                }
                Ok(())
            })?;
        }
        Ok(Some(report))
    })();
    claim.release(conn)?;
    recomputed
}
