//! The roller's memory, so a pass costs what arrived rather than what the open hour already holds.
//!
//! For every device it rolled, the roller remembers the state of the local hour its newest sample
//! is in (`device_hours::HourState`) and the open buckets of its aggregates
//! (`aggregates::AggregateBucket`). A pass reads, for each device whose pending samples are all
//! later than its newest, only those samples, and folds them in; the device's rows of the hours
//! they touch are written from the states. A device it does not remember (the hub started, took
//! over the roller, or forgot it), or whose pending samples reach back before its newest (late,
//! out of order, an attachment edited), gets the hours those samples reach rebuilt from its own
//! raw samples, as a recompute would, and is remembered again. Arrays and the system are combined
//! from their devices' rows of each hour touched (`hours::level_rows`); days from the hour rows
//! of the devices touched that day (`days::day_rows_from`). Both ways fold the same samples in the
//! same order and make rows with the same functions, so the rows equal a full recompute's, bit
//! for bit (`hub/tests/it/rollups.rs`).
//!
//! What a pass costs: the samples that arrived (read once for the energy, once for the
//! aggregates, each folded into its device's tail as it is read: never held, never scanned once
//! per device); the rows it writes, a few per device touched; for each hour
//! touched, the system's device rows of that hour; for each day touched, the hour rows of the
//! devices touched that day (at most 25 each). What the roller
//! keeps: per device one hour state and its open aggregate buckets (a pack's batteries' and
//! cells' included).
//!
//! A pass owns the memory it is handed and hands back what to remember once its transaction
//! committed. Nothing is copied: a transaction retried on contention is handed nothing the second
//! time and rebuilds its devices from their raw samples (a pass that failed may have changed what
//! it held, and what it held is gone with it).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

use chrono_tz::Tz;

use super::aggregates::{self, AggregateBucket};
use super::days::{self, EnergyDay, MeterDay, PackDay, day_rows_from, only_legacy};
use super::device_hours::{DeviceSample, HourState};
use super::hours::{
    inverter_hour, inverter_sample, level_rows, meter_hour, meter_sample, pack_hour, pack_sample,
};
use super::{
    RECOMPUTE_CHUNK_HOURS, RollReport, Settings, SystemStructure, leave_out_frozen,
    load_system_structure, remake_aggregates_of, runs,
};
use crate::db::aggregates::{self as stored, AGGREGATES, AggregateKind, AggregateOutput};
use crate::db::retention;
use crate::db::rollups::{self as store, DeviceKind, Level, Pending, RollupRows, RowsOf};
use crate::db::{DbConnection, DbError, now_ms};
use crate::local_time::{self, Bucket};

/// What the roller remembers of one device.
#[derive(Debug, Clone)]
pub struct Tail {
    system_id: String,
    kind: DeviceKind,
    /// The local hour of the newest sample folded in, and its state. The state and the day are
    /// boxed (with the buckets) so that the roller's map of a thousand tails holds pointers, not
    /// a kilobyte in each of its 2,048 slots.
    bucket: Bucket,
    state: Box<HourState>,
    /// The open buckets of the device's aggregates (an inverter or meter has one, a pack one
    /// per battery and cell too).
    buckets: OpenBuckets,
    /// The device's day so far, folded over its hour rows of the day before `bucket` (its row of
    /// `bucket` completes it); `None` until a pass made it from the stored rows.
    day: Option<Box<DayPrefix>>,
    /// When a pass last used it.
    pub(super) used: Instant,
}

/// The open aggregate buckets of one device's tail, by aggregate table (its index in
/// `AGGREGATES`) and device (the device itself, or a pack's battery or cell), in key order: a
/// sorted list, as small as what it holds (a map's first node has room for eleven, 456 bytes for
/// an inverter's one bucket), each bucket boxed (unboxed, 9 kB of the 10 kB a device's tail
/// took; BENCHMARKS.md, issue 24).
#[derive(Debug, Clone, Default)]
struct OpenBuckets(Vec<((usize, String), Box<AggregateBucket>)>);

impl OpenBuckets {
    fn find(&self, key: &(usize, String)) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(key))
    }

    fn get(&self, key: &(usize, String)) -> Option<&AggregateBucket> {
        self.find(key).ok().map(|at| &*self.0[at].1)
    }

    fn get_mut(&mut self, key: &(usize, String)) -> Option<&mut AggregateBucket> {
        self.find(key).ok().map(|at| &mut *self.0[at].1)
    }

    /// Keeps `bucket` under `key`; returns the one it replaces.
    fn insert(
        &mut self,
        key: (usize, String),
        bucket: Box<AggregateBucket>,
    ) -> Option<Box<AggregateBucket>> {
        match self.find(&key) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, bucket)),
            Err(at) => {
                self.0.insert(at, (key, bucket));
                None
            }
        }
    }
}

/// A device's day folded over its closed hours (`days`: the same folds a recompute makes).
#[derive(Debug, Clone)]
struct DayPrefix {
    day: Bucket,
    fold: DayFold,
}

#[derive(Debug, Clone)]
enum DayFold {
    Energy(EnergyDay),
    Pack(PackDay),
    Meter(MeterDay),
}

/// One device's hour row, of whatever kind.
#[derive(Debug, Clone)]
enum HourRow {
    Inverter(store::InverterHour),
    Pack(store::PackHour),
    Meter(store::MeterHour),
}

impl HourRow {
    fn bucket_start(&self) -> i64 {
        match self {
            HourRow::Inverter(row) => row.bucket_start,
            HourRow::Pack(row) => row.bucket_start,
            HourRow::Meter(row) => row.bucket_start,
        }
    }
}

impl DayFold {
    fn new(kind: DeviceKind) -> DayFold {
        match kind {
            DeviceKind::Inverter => DayFold::Energy(EnergyDay::default()),
            DeviceKind::Pack => DayFold::Pack(PackDay::default()),
            DeviceKind::Meter => DayFold::Meter(MeterDay::default()),
        }
    }

    fn add(&mut self, row: &HourRow) {
        match (self, row) {
            (DayFold::Energy(fold), HourRow::Inverter(row)) => fold.add(row),
            (DayFold::Pack(fold), HourRow::Pack(row)) => fold.add(row),
            (DayFold::Meter(fold), HourRow::Meter(row)) => fold.add(row),
            _ => {}
        }
    }

    /// The day row of the fold and `last` (the day's last hour row) added to it.
    fn day_row(
        &self,
        structure: &SystemStructure,
        last: &HourRow,
        day: &Bucket,
        at: i64,
        into: &mut RollupRows,
    ) {
        let mut fold = self.clone();
        fold.add(last);
        match (fold, last) {
            (DayFold::Energy(fold), HourRow::Inverter(last)) => into
                .inverter_days
                .push(days::inverter_day(&fold, last, day, at)),
            (DayFold::Pack(fold), HourRow::Pack(last)) => {
                into.pack_days
                    .push(fold.row(&structure.installation, last, day, at))
            }
            (DayFold::Meter(fold), HourRow::Meter(last)) => {
                into.meter_days.push(fold.row(last, day, at))
            }
            _ => {}
        }
    }
}

impl Tail {
    fn newest(&self) -> Option<i64> {
        self.state.last_ts()
    }

    /// What to remember of a device rebuilt from its raw samples (`paths::rebuild`, `together`):
    /// the state of `bucket` as far as `newest`, and the open buckets of its aggregates, made
    /// from `inputs(table index, bucket start)` (the inputs of [bucket start, newest]).
    fn rebuilt(
        (system_id, tz, kind): (&str, Tz, DeviceKind),
        bucket: Bucket,
        state: HourState,
        newest: i64,
        mut inputs: impl FnMut(usize, i64) -> Result<Vec<stored::AggregateInput>, DbError>,
    ) -> Result<Tail, DbError> {
        let mut buckets = OpenBuckets::default();
        for index in aggregate_tables(kind) {
            let table = &AGGREGATES[index];
            let (start, _) = aggregates::bucket_of(table, tz, newest);
            for made in aggregates::buckets(table, tz, &inputs(index, start)?) {
                buckets.insert((index, made.device.clone()), Box::new(made));
            }
        }
        buckets.0.shrink_to_fit();
        Ok(Tail {
            system_id: system_id.to_owned(),
            kind,
            bucket,
            state: Box::new(state),
            buckets,
            // Made from the stored rows once this pass wrote them.
            day: None,
            used: Instant::now(),
        })
    }
}

/// The state of `bucket` from a device's samples (in time order) as far as `newest`: the hour
/// the roller remembers for a rebuilt device.
fn state_up_to(
    samples: &[DeviceSample],
    bucket: &Bucket,
    newest: i64,
    limits: &super::energy::Limits,
) -> HourState {
    let known = samples.partition_point(|sample| sample.ts() <= newest);
    HourState::of(&samples[..known], bucket.start, bucket.end, limits)
}

/// What one pass read and rebuilt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassCounts {
    /// Raw sample rows read (for the energy and for the aggregates).
    pub samples_read: u64,
    /// Device-hours made again from raw samples (devices not followed, late samples).
    pub device_hours_rebuilt: u64,
    /// Devices whose new samples were folded into what the roller remembered.
    pub devices_followed: u64,
    /// Devices rebuilt with others of their system from one read (`together`: a start).
    pub devices_rebuilt_together: u64,
}

impl std::ops::AddAssign for PassCounts {
    fn add_assign(&mut self, other: PassCounts) {
        self.samples_read += other.samples_read;
        self.device_hours_rebuilt += other.device_hours_rebuilt;
        self.devices_followed += other.devices_followed;
        self.devices_rebuilt_together += other.devices_rebuilt_together;
    }
}

/// What rolling one system did, and what to remember from it (`None`: forget the device).
#[derive(Debug, Default)]
pub struct Rolled {
    pub report: RollReport,
    pub counts: PassCounts,
    pub tails: BTreeMap<String, Option<Tail>>,
}

/// The rows one pass writes, gathered before they are written.
#[derive(Default)]
struct Touched {
    /// Device hour rows by hour start: the hour, its new rows, and the devices whose rows of the
    /// hour they replace.
    hours: BTreeMap<i64, (Bucket, RollupRows, RowsOf)>,
    /// Aggregate buckets to store, by aggregate table.
    aggregates: BTreeMap<usize, Vec<AggregateOutput>>,
    /// Device day rows made from what the roller remembered, by day start: the day, the rows,
    /// the devices whose rows they replace. Other devices' days touched are made from the
    /// stored hour rows.
    days: BTreeMap<i64, (Bucket, RollupRows, RowsOf)>,
    /// The devices with a row in `hours` and in `days`, by the bucket's start: a row made again
    /// replaces the one made before, and a first one is added without a search (searching every
    /// row and id of the hour for each device cost devices² a pass).
    hours_made: HashSet<(i64, DeviceKind, String)>,
    days_made: HashSet<(i64, DeviceKind, String)>,
}

impl Touched {
    /// The row of `device` for `bucket` made from `state` (none when the hour has no data: the
    /// device's stored row, if any, goes).
    fn device_hour(
        &mut self,
        structure: &SystemStructure,
        kind: DeviceKind,
        device: &str,
        bucket: &Bucket,
        state: &HourState,
        at: i64,
    ) -> Option<HourRow> {
        let (_, rows, only) = self
            .hours
            .entry(bucket.start)
            .or_insert_with(|| (bucket.clone(), RollupRows::default(), RowsOf::default()));
        let again = !self
            .hours_made
            .insert((bucket.start, kind, device.to_owned()));
        if !again {
            ids_of(only, kind).push(device.to_owned());
        }
        match kind {
            DeviceKind::Inverter => {
                if again {
                    rows.inverter_hours.retain(|row| row.inverter_id != device);
                }
                let row = inverter_hour(structure, device, state, bucket, at)?;
                rows.inverter_hours.push(row.clone());
                Some(HourRow::Inverter(row))
            }
            DeviceKind::Pack => {
                if again {
                    rows.pack_hours.retain(|row| row.pack_id != device);
                }
                let row = pack_hour(structure, device, state, bucket, at)?;
                rows.pack_hours.push(row.clone());
                Some(HourRow::Pack(row))
            }
            DeviceKind::Meter => {
                if again {
                    rows.meter_hours.retain(|row| row.meter_id != device);
                }
                let row = meter_hour(structure, device, state, bucket, at)?;
                rows.meter_hours.push(row.clone());
                Some(HourRow::Meter(row))
            }
        }
    }

    /// The day row of `device` for `day`, from its fold of the day's earlier hours and `last`.
    #[allow(clippy::too_many_arguments)]
    fn device_day(
        &mut self,
        structure: &SystemStructure,
        kind: DeviceKind,
        device: &str,
        prefix: &DayFold,
        last: &HourRow,
        day: &Bucket,
        at: i64,
    ) {
        let (_, rows, only) = self
            .days
            .entry(day.start)
            .or_insert_with(|| (day.clone(), RollupRows::default(), RowsOf::default()));
        if self.days_made.insert((day.start, kind, device.to_owned())) {
            ids_of(only, kind).push(device.to_owned());
        } else {
            rows.inverter_days.retain(|row| row.inverter_id != device);
            rows.pack_days.retain(|row| row.pack_id != device);
            rows.meter_days.retain(|row| row.meter_id != device);
        }
        prefix.day_row(structure, last, day, at, rows);
    }
}

/// The ids of one kind `only` names.
fn ids_of(only: &mut RowsOf, kind: DeviceKind) -> &mut Vec<String> {
    match kind {
        DeviceKind::Inverter => &mut only.inverters,
        DeviceKind::Pack => &mut only.packs,
        DeviceKind::Meter => &mut only.meters,
    }
}

fn add_id(only: &mut RowsOf, kind: DeviceKind, device: &str) {
    let ids = ids_of(only, kind);
    if !ids.iter().any(|id| id == device) {
        ids.push(device.to_owned());
    }
}

fn has_id(only: &RowsOf, device: &str) -> bool {
    [&only.inverters, &only.packs, &only.meters]
        .into_iter()
        .any(|ids| ids.iter().any(|id| id == device))
}

/// The kind of a device of the system; `None` when the catalog no longer has it.
fn kind_of(structure: &SystemStructure, device: &str) -> Option<DeviceKind> {
    let installation = &structure.installation;
    if installation
        .inverters
        .iter()
        .any(|i| i.inverter_id == device)
    {
        Some(DeviceKind::Inverter)
    } else if installation.packs.iter().any(|p| p.pack_id == device) {
        Some(DeviceKind::Pack)
    } else if installation.meters.iter().any(|m| m.meter_id == device) {
        Some(DeviceKind::Meter)
    } else {
        None
    }
}

/// The aggregate tables a device of `kind` feeds (by index in `AGGREGATES`).
fn aggregate_tables(kind: DeviceKind) -> Vec<usize> {
    AGGREGATES
        .iter()
        .enumerate()
        .filter(|(_, table)| {
            matches!(
                (kind, table.kind),
                (DeviceKind::Inverter, AggregateKind::Inverter)
                    | (DeviceKind::Meter, AggregateKind::Meter)
                    | (
                        DeviceKind::Pack,
                        AggregateKind::Pack | AggregateKind::BatteryUnit | AggregateKind::Cell
                    )
            )
        })
        .map(|(index, _)| index)
        .collect()
}

/// The raw samples of one kind, as device samples by device.
fn converted(samples: store::SystemSamples) -> BTreeMap<String, Vec<DeviceSample>> {
    let (energy, banks, meters) = samples;
    let mut by_device: BTreeMap<String, Vec<DeviceSample>> = BTreeMap::new();
    for s in &energy {
        by_device
            .entry(s.inverter_id.clone())
            .or_default()
            .push(inverter_sample(s));
    }
    for s in &banks {
        by_device
            .entry(s.pack_id.clone())
            .or_default()
            .push(pack_sample(s));
    }
    for s in &meters {
        by_device
            .entry(s.meter_id.clone())
            .or_default()
            .push(meter_sample(s));
    }
    by_device
}

fn count(samples: &store::SystemSamples) -> u64 {
    (samples.0.len() + samples.1.len() + samples.2.len()) as u64
}

/// Rolls the pending ranges of one system, following the devices of `known` (the tails of its
/// pending devices the roller had) and rebuilding the others. Call inside a transaction; what to
/// remember comes back in [`Rolled::tails`] (see the module).
pub fn roll_system(
    conn: &mut DbConnection,
    system_id: &str,
    pending: &[Pending],
    settings: Settings,
    mut known: BTreeMap<String, Tail>,
) -> Result<Rolled, DbError> {
    let mut rolled = Rolled::default();
    let began = Instant::now();
    store::lock_system_for_roll(conn, system_id)?;
    let Some(structure) = load_system_structure(conn, system_id)? else {
        store::remove_pending(conn, pending)?;
        return Ok(rolled);
    };
    let reach = settings.reach_ms();
    let at = now_ms();
    let mut ranges: BTreeMap<&str, Vec<&Pending>> = BTreeMap::new();
    for range in pending {
        ranges
            .entry(range.device_id.as_str())
            .or_default()
            .push(range);
    }
    let frozen = retention::frozen(conn, system_id, reach)?;
    let mut following: Vec<(String, Tail, i64)> = Vec::new();
    let mut rebuilding: Vec<Rebuilding<'_>> = Vec::new();
    for (device, list) in ranges {
        let Some(kind) = kind_of(&structure, device) else {
            // Gone from the catalog since: nothing of it to roll.
            rolled.tails.insert(device.to_owned(), None);
            continue;
        };
        let from = list.iter().map(|r| r.from_ts).min().unwrap_or(i64::MIN);
        let to = list.iter().map(|r| r.to_ts).max().unwrap_or(i64::MIN);
        match known.remove(device) {
            Some(tail)
                if tail.system_id == system_id
                    && tail.kind == kind
                    && tail
                        .newest()
                        .is_some_and(|newest| from > newest && to - newest <= reach)
                    && !frozen
                        .as_ref()
                        .is_some_and(|frozen| frozen.overlaps(tail.bucket.start, to + 1)) =>
            {
                following.push((device.to_owned(), tail, to));
            }
            other => {
                // What a rebuilt device is remembered to starts after the newest sample seen.
                let previous = other
                    .filter(|tail| tail.system_id == system_id && tail.kind == kind)
                    .and_then(|tail| tail.newest());
                rebuilding.push((device.to_owned(), kind, list, previous));
            }
        }
    }
    let planned = began.elapsed();
    let mut touched = Touched::default();
    follow(
        conn,
        &structure,
        settings,
        &mut following,
        &mut touched,
        &mut rolled.counts,
        at,
    )?;
    for (device, tail, _) in following {
        rolled.tails.insert(device, Some(tail));
    }
    for (device, tail) in rebuild_together(
        conn,
        &structure,
        settings,
        frozen.as_ref(),
        &mut rebuilding,
        &mut touched,
        &mut rolled.counts,
        at,
    )? {
        rolled.tails.insert(device, tail);
    }
    for (device, kind, list, previous) in rebuilding {
        let (frozen_hours, tail) = rebuild(
            conn,
            &structure,
            settings,
            (&device, kind),
            &list,
            previous,
            &mut touched,
            &mut rolled.counts,
            at,
        )?;
        rolled.report.frozen_hours += frozen_hours;
        rolled.tails.insert(device, tail);
    }
    let folded = began.elapsed();
    let phases = write(
        conn,
        &structure,
        settings,
        touched,
        at,
        &mut rolled.report,
        &mut rolled.tails,
    )?;
    let written = began.elapsed();
    store::remove_pending(conn, pending)?;
    tracing::debug!(
        system = system_id,
        pending = pending.len(),
        followed = rolled.counts.devices_followed,
        rebuilt = rolled.counts.device_hours_rebuilt,
        planned_ms = planned.as_millis() as u64,
        folded_ms = (folded - planned).as_millis() as u64,
        hours_ms = phases.0.as_millis() as u64,
        days_ms = phases.1.as_millis() as u64,
        aggregates_ms = phases.2.as_millis() as u64,
        pending_ms = (began.elapsed() - written).as_millis() as u64,
        "rolled a system"
    );
    Ok(rolled)
}

mod paths;
mod together;
mod write;

use paths::{device_series, follow, rebuild};
use together::{Rebuilding, rebuild_together};
use write::write;
