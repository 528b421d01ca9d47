//! Many devices of a system rebuilt together: after a start or a take-over every device of every
//! system is rebuilt once, and rebuilding them one by one (`paths::rebuild`) asks the database
//! about twenty questions per device (its span, neighbours, newest sample, samples, the
//! retention marks twice, its aggregates' inputs, clears and stores): at 10,000 devices the first
//! pass was 200,000 queries and the roller's lag its maximum (BENCHMARKS.md, issue 24). Here the
//! devices' samples of one window are read in one query (by device, as `rebuild` reads them),
//! the system's aggregate inputs of the window in one per table, and every device's answers are
//! found in them: the same hours, from the same samples, by the same functions, so the rows are
//! those `rebuild` makes (the property test in `hub/tests/it/rollups.rs` restarts the roller to
//! take this path with hours already rolled, and a test of late samples after a restart).
//!
//! Taken for inverters and meters (a pack's aggregates are read per pack) when they are at least
//! half the system's: the aggregate inputs are read for the whole system, which a few late
//! devices among many followed ones should not pay. The window is the hours the pending samples
//! are in, with a margin on each side; a device whose answers might lie outside it (a range far
//! behind the others, a neighbour farther than the margin, retention's marks inside it) is left
//! to `rebuild`, which asks the database within the counter reach (12 hours by default).

use std::collections::HashMap;

use super::*;

/// Devices whose pending samples start more than this before most others' (or end more than
/// three times this after) are rebuilt on their own: their hours are far from the others', and
/// the window is as wide as its devices' ranges.
const WINDOW_MS: i64 = 3_600_000;

/// The window's margin before and after the hours it holds: a device's neighbouring samples are
/// found in it when they are nearer than this (a poll every few seconds to a minute).
const MARGIN_MS: i64 = 10 * 60_000;

/// A device to rebuild: its id, kind, pending ranges, and the newest sample the roller had seen.
pub(super) type Rebuilding<'a> = (String, DeviceKind, Vec<&'a Pending>, Option<i64>);

/// One device's plan, made before anything is written: what the window tells of it, the hours
/// to rebuild and the newest sample to remember.
struct Plan<'a> {
    device: &'a str,
    kind: DeviceKind,
    known: Known<'a>,
    hours: Vec<Bucket>,
    newest: i64,
}

/// Rebuilds together the devices of `rebuilding` this can (see the module), taking them out of
/// it; returns their tails.
#[allow(clippy::too_many_arguments)]
pub(super) fn rebuild_together(
    conn: &mut DbConnection,
    structure: &SystemStructure,
    settings: Settings,
    frozen: Option<&crate::time_ranges::TimeRanges>,
    rebuilding: &mut Vec<Rebuilding<'_>>,
    touched: &mut Touched,
    counts: &mut PassCounts,
    at: i64,
) -> Result<Vec<(String, Option<Tail>)>, DbError> {
    let installation = &structure.installation;
    let of_system = installation.inverters.len() + installation.meters.len();
    let together = |kind: DeviceKind| matches!(kind, DeviceKind::Inverter | DeviceKind::Meter);
    let from_of = |ranges: &[&Pending]| ranges.iter().map(|r| r.from_ts).min().unwrap_or(0);
    let to_of = |ranges: &[&Pending]| ranges.iter().map(|r| r.to_ts).max().unwrap_or(0);
    let mut froms: Vec<i64> = rebuilding
        .iter()
        .filter(|(_, kind, ranges, _)| together(*kind) && !ranges.is_empty())
        .map(|(_, _, ranges, _)| from_of(ranges))
        .collect();
    if froms.len() < 2 {
        return Ok(Vec::new());
    }
    froms.sort_unstable();
    let usual = froms[froms.len() / 2];
    let near = |(_, kind, ranges, _): &Rebuilding<'_>| {
        together(*kind)
            && !ranges.is_empty()
            && from_of(ranges) >= usual - WINDOW_MS
            && to_of(ranges) <= usual + 3 * WINDOW_MS
    };
    let hi = rebuilding
        .iter()
        .filter(|r| near(r))
        .map(|(_, _, ranges, _)| to_of(ranges))
        .max()
        .unwrap_or(usual);
    let candidate = |r: &Rebuilding<'_>| near(r) && r.3.is_none_or(|previous| previous <= hi);
    let candidates = rebuilding.iter().filter(|r| candidate(r)).count();
    if candidates < 2 || candidates * 2 < of_system {
        return Ok(Vec::new());
    }
    let tz = structure.tz;
    let system_id = structure.system.system_id.as_str();
    let reach = settings.reach_ms();
    let limits = settings.limits();
    let lo = rebuilding
        .iter()
        .filter(|r| candidate(r))
        .map(|(_, _, ranges, _)| from_of(ranges))
        .min()
        .unwrap_or(hi);
    let w0 = local_time::hour_of(tz, lo.saturating_sub(MARGIN_MS))
        .start
        .saturating_sub(MARGIN_MS);
    let w1 = local_time::hour_of(tz, hi).end.saturating_add(MARGIN_MS);
    if frozen.is_some_and(|frozen| frozen.overlaps(w0, w1)) {
        return Ok(Vec::new());
    }
    // The aggregate tables of the kinds rebuilt (a system of inverters reads no meters' inputs).
    let tables: Vec<usize> = [DeviceKind::Inverter, DeviceKind::Meter]
        .into_iter()
        .filter(|kind| rebuilding.iter().any(|r| candidate(r) && r.1 == *kind))
        .flat_map(aggregate_tables)
        .collect();
    for &index in &tables {
        let table = &AGGREGATES[index];
        if retention::gone(conn, table.raw, system_id)?.overlaps(w0, w1) {
            return Ok(Vec::new());
        }
    }

    // The candidates' samples of the window, by device (each kind comes in (device, ts) order).
    let mut mine: Vec<(String, DeviceKind, Vec<DeviceSample>)> = rebuilding
        .iter()
        .filter(|r| candidate(r))
        .map(|(device, kind, _, _)| (device.clone(), *kind, Vec::new()))
        .collect();
    mine.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let find = |mine: &[(String, DeviceKind, Vec<DeviceSample>)], device: &str| {
        mine.binary_search_by(|(id, _, _)| id.as_str().cmp(device))
            .ok()
    };
    // Read by device, as `rebuild` reads them (a device's samples whatever system they name).
    let mut later: HashSet<String> = HashSet::new();
    let mut earlier: HashSet<String> = HashSet::new();
    for kind in [DeviceKind::Inverter, DeviceKind::Meter] {
        let owned: Vec<String> = mine
            .iter()
            .filter(|(_, k, _)| *k == kind)
            .map(|(id, _, _)| id.clone())
            .collect();
        let ids: Vec<&str> = owned.iter().map(String::as_str).collect();
        if ids.is_empty() {
            continue;
        }
        let mut place = None;
        store::each_sample_of_devices(conn, kind, &ids, w0, w1, |sample| {
            counts.samples_read += 1;
            // Samples come device by device: one search per device.
            if place.is_none_or(|at: usize| mine[at].0 != sample.device()) {
                place = find(&mine, sample.device());
            }
            let Some(at) = place else {
                return;
            };
            mine[at].2.push(match &sample {
                store::SystemSample::Energy(s) => inverter_sample(s),
                store::SystemSample::Bank(s) => pack_sample(s),
                store::SystemSample::Meter(s) => meter_sample(s),
            });
        })?;
        // What lies past the window's edges is known only as far as whether there is any.
        later.extend(store::devices_with_samples_in(
            conn,
            system_id,
            kind,
            w1,
            i64::MAX,
        )?);
        earlier.extend(store::devices_with_samples_in(
            conn,
            system_id,
            kind,
            w0.saturating_sub(reach),
            w0,
        )?);
    }

    // Each device's hours and newest sample, as `rebuild` finds them, or left to it.
    let mut plans: Vec<Plan<'_>> = Vec::new();
    let of_device: HashMap<&str, &Rebuilding<'_>> =
        rebuilding.iter().map(|r| (r.0.as_str(), r)).collect();
    for (device, kind, samples) in &mine {
        let Some((_, _, ranges, previous)) = of_device.get(device.as_str()) else {
            continue;
        };
        let known = Known {
            samples,
            w0,
            w1,
            reach,
            later: later.contains(device),
            earlier: earlier.contains(device),
        };
        if let Some((hours, newest)) = plan(&known, tz, ranges, *previous, &tables) {
            plans.push(Plan {
                device,
                kind: *kind,
                known,
                hours,
                newest,
            });
        }
    }
    if plans.len() < 2 {
        return Ok(Vec::new());
    }

    // The aggregates' inputs of the window, for the planned devices.
    let planned: HashSet<&str> = plans.iter().map(|plan| plan.device).collect();
    let mut inputs: BTreeMap<(usize, String), Vec<stored::AggregateInput>> = BTreeMap::new();
    for &index in &tables {
        let table = &AGGREGATES[index];
        stored::each_input(conn, table, system_id, None, w0, w1, |input| {
            counts.samples_read += 1;
            if planned.contains(input.device.as_str()) {
                inputs
                    .entry((index, input.device.clone()))
                    .or_default()
                    .push(input);
            }
        })?;
    }
    let inputs_in =
        |index: usize, device: &str, from: i64, to: i64| -> Vec<stored::AggregateInput> {
            inputs
                .get(&(index, device.to_owned()))
                .map(|all| {
                    all.iter()
                        .filter(|input| input.ts >= from && input.ts < to)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };

    // The rows, as `rebuild` makes them; the aggregates cleared and stored together.
    let mut clears: BTreeMap<(usize, i64, i64), Vec<&str>> = BTreeMap::new();
    let mut stores: BTreeMap<usize, Vec<AggregateOutput>> = BTreeMap::new();
    let mut tails = Vec::new();
    for plan in &plans {
        let (device, kind, known) = (plan.device, plan.kind, &plan.known);
        // Every series below was found told when the device was planned.
        let mut newest_state: Option<(Bucket, HourState)> = None;
        for run in runs(plan.hours.clone()) {
            for chunk in run.chunks(RECOMPUTE_CHUNK_HOURS) {
                let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
                    continue;
                };
                let series = known.series(first.start, last.end).unwrap_or_default();
                for bucket in chunk {
                    let state = HourState::of(&series, bucket.start, bucket.end, &limits);
                    touched.device_hour(structure, kind, device, bucket, &state, at);
                    if plan.newest >= bucket.start && plan.newest < bucket.end {
                        let state = state_up_to(&series, bucket, plan.newest, &limits);
                        newest_state = Some((bucket.clone(), state));
                    }
                }
                counts.device_hours_rebuilt += chunk.len() as u64;
                for index in aggregate_tables(kind) {
                    let table = &AGGREGATES[index];
                    let made = aggregates::buckets(
                        table,
                        tz,
                        &inputs_in(index, device, first.start, last.end),
                    );
                    clears
                        .entry((index, first.start, last.end))
                        .or_default()
                        .push(device);
                    stores
                        .entry(index)
                        .or_default()
                        .extend(made.iter().map(|bucket| bucket.output(table)));
                }
            }
        }
        let (bucket, state) = match newest_state {
            Some(made) => made,
            None => {
                let bucket = local_time::hour_of(tz, plan.newest);
                let series = known
                    .series(bucket.start, plan.newest + 1)
                    .unwrap_or_default();
                let state = state_up_to(&series, &bucket, plan.newest, &limits);
                (bucket, state)
            }
        };
        let tail = Tail::rebuilt(
            (system_id, tz, kind),
            bucket,
            state,
            plan.newest,
            |index, start| Ok(inputs_in(index, device, start, plan.newest + 1)),
        )?;
        tails.push((device.to_owned(), Some(tail)));
    }
    for ((index, from, to), devices) in clears {
        stored::clear_devices(conn, &AGGREGATES[index], system_id, &devices, from, to)?;
    }
    for (index, rows) in stores {
        stored::store(conn, &AGGREGATES[index], &rows)?;
    }
    counts.devices_rebuilt_together += tails.len() as u64;
    let done: HashSet<&str> = tails.iter().map(|(device, _)| device.as_str()).collect();
    rebuilding.retain(|(device, ..)| !done.contains(device.as_str()));
    Ok(tails)
}

/// What the window tells of one device: its samples in [w0, w1), in time order.
struct Known<'a> {
    samples: &'a [DeviceSample],
    w0: i64,
    w1: i64,
    reach: i64,
    /// Whether it has samples at or after `w1`.
    later: bool,
    /// Whether it has samples in [w0 - reach, w0).
    earlier: bool,
}

impl Known<'_> {
    /// The time of the newest sample in [t - reach, t) (`Some(None)`: there is none); `None` when
    /// the window cannot tell.
    fn last_before(&self, t: i64) -> Option<Option<i64>> {
        if t > self.w1 {
            return None;
        }
        let at = self.samples.partition_point(|s| s.ts() < t);
        match at.checked_sub(1).map(|i| self.samples[i].ts()) {
            Some(ts) => Some((ts >= t.saturating_sub(self.reach)).then_some(ts)),
            None if t.saturating_sub(self.reach) >= self.w0 => Some(None),
            None if t >= self.w0 && !self.earlier => Some(None),
            None => None,
        }
    }

    /// The time of the oldest sample after `t` (at or after it unless `strictly`) and before the
    /// reach ends (`t + reach`, included when `strictly`, as `neighbour_times` and
    /// `device_samples` ask); `Some(None)`: none; `None` when the window cannot tell.
    fn first_after(&self, t: i64, strictly: bool) -> Option<Option<i64>> {
        if t < self.w0 {
            return None;
        }
        let at = self
            .samples
            .partition_point(|s| if strictly { s.ts() <= t } else { s.ts() < t });
        let end = t.saturating_add(self.reach);
        match self.samples.get(at).map(DeviceSample::ts) {
            Some(ts) => Some((ts < end || (strictly && ts == end)).then_some(ts)),
            None if !self.later || end < self.w1 => Some(None),
            None => None,
        }
    }

    /// What `store::device_samples` answers for [from, to): the samples inside and the nearest
    /// one on each side within reach; `None` when the window cannot tell.
    fn series(&self, from: i64, to: i64) -> Option<Vec<DeviceSample>> {
        if from < self.w0 || to > self.w1 {
            return None;
        }
        let before = self.last_before(from)?;
        let after = self.first_after(to, false)?;
        let start = self.samples.partition_point(|s| s.ts() < from);
        let end = self.samples.partition_point(|s| s.ts() < to);
        let mut series = Vec::with_capacity(end - start + 2);
        series.extend(before.map(|_| self.samples[start - 1].clone()));
        series.extend_from_slice(&self.samples[start..end]);
        series.extend(after.map(|_| self.samples[end].clone()));
        Some(series)
    }

    /// Whether a sample lies in [from, to].
    fn any_in(&self, from: i64, to: i64) -> bool {
        let at = self.samples.partition_point(|s| s.ts() < from);
        self.samples.get(at).is_some_and(|s| s.ts() <= to)
    }
}

/// The hours `rebuild` would rebuild for a device and the newest sample it would remember, when
/// the window tells every answer those need.
fn plan(
    known: &Known<'_>,
    tz: Tz,
    ranges: &[&Pending],
    previous: Option<i64>,
    tables: &[usize],
) -> Option<(Vec<Bucket>, i64)> {
    let reach = known.reach;
    let last = known.samples.last()?.ts();
    let mut hours = BTreeSet::new();
    for range in ranges {
        // `device_span`: its oldest sample in reach at or before `from` and its newest at or
        // after `to` leave the range as it is (the samples the range was made of).
        if !known.any_in(
            range.from_ts.saturating_sub(reach).max(known.w0),
            range.from_ts,
        ) || !known.any_in(range.to_ts, range.to_ts.saturating_add(reach))
            || range.to_ts >= known.w1
        {
            return None;
        }
        let (from, to) = (range.from_ts, range.to_ts);
        let before = known.last_before(from)?;
        let after = known.first_after(to, true)?;
        hours.extend(local_time::hours(
            tz,
            before.unwrap_or(from).min(from),
            after.unwrap_or(to).max(to) + 1,
        ));
    }
    let horizon = ranges
        .iter()
        .map(|range| range.to_ts)
        .chain(previous)
        .max()?;
    let newest = if known.later {
        horizon
    } else {
        last.min(horizon)
    };
    let hours: Vec<Bucket> = hours.into_iter().collect();
    // Every series the rows and the tail are made of, and the open buckets' inputs.
    let hour = local_time::hour_of(tz, newest);
    let open_from = tables
        .iter()
        .map(|&index| aggregates::bucket_of(&AGGREGATES[index], tz, newest).0)
        .min()
        .unwrap_or(newest);
    let told = runs(hours.clone()).iter().all(|run| {
        run.chunks(RECOMPUTE_CHUNK_HOURS).all(|chunk| {
            let (first, last) = (chunk.first().map(|h| h.start), chunk.last().map(|h| h.end));
            first
                .zip(last)
                .is_some_and(|(from, to)| known.series(from, to).is_some())
        })
    }) && known.series(hour.start, newest + 1).is_some()
        && open_from >= known.w0
        && newest < known.w1;
    told.then_some((hours, newest))
}
