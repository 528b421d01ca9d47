//! A device's two paths through a pass: followed (its new samples folded into the hour state the
//! roller remembers) or rebuilt (the hours its samples reach, from its raw samples, as a recompute).

use super::*;

/// Folds the new samples of the devices the roller follows into their tails: each sample later
/// than the device's newest and not after its newest pending one, in time order. The samples are
/// folded as they are read, one at a time (a kind's come device by device, each in time order):
/// what a pass holds is the rows it writes, not the samples it reads.
pub(super) fn follow(
    conn: &mut DbConnection,
    structure: &SystemStructure,
    settings: Settings,
    following: &mut [(String, Tail, i64)],
    touched: &mut Touched,
    counts: &mut PassCounts,
    at: i64,
) -> Result<(), DbError> {
    if following.is_empty() {
        return Ok(());
    }
    let limits = settings.limits();
    let tz = structure.tz;
    let system_id = structure.system.system_id.as_str();
    // Found by search as samples come: in device order (made from a map, sorted to be sure).
    following.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // Each device's newest sample before this pass: its samples after it are new.
    let newest: Vec<i64> = following
        .iter()
        .map(|(_, tail, _)| tail.newest().unwrap_or(i64::MIN))
        .collect();
    let from = newest
        .iter()
        .min()
        .copied()
        .unwrap_or(i64::MIN)
        .saturating_add(1);
    let to = following
        .iter()
        .map(|(_, _, to)| *to)
        .max()
        .unwrap_or(from)
        .saturating_add(1);
    let mut place = Place::default();
    store::each_sample(conn, system_id, from, to, |sample| {
        counts.samples_read += 1;
        let Some(at_place) = place.of(following, sample.device()) else {
            return;
        };
        let (device, tail, last_pending) = &mut following[at_place];
        if sample.ts() <= newest[at_place] || sample.ts() > *last_pending {
            return;
        }
        let sample = match &sample {
            store::SystemSample::Energy(s) => inverter_sample(s),
            store::SystemSample::Bank(s) => pack_sample(s),
            store::SystemSample::Meter(s) => meter_sample(s),
        };
        fold_sample(structure, &limits, device, tail, &sample, touched, at);
    })?;
    for (device, tail, _) in following.iter_mut() {
        let open = touched.device_hour(structure, tail.kind, device, &tail.bucket, &tail.state, at);
        if let (Some(prefix), Some(open)) = (&tail.day, &open) {
            touched.device_day(
                structure,
                tail.kind,
                device,
                &prefix.fold,
                open,
                &prefix.day,
                at,
            );
        }
        tail.used = Instant::now();
        counts.devices_followed += 1;
    }
    // The aggregates: the same new samples, in the tables' own shape, folded as they are read.
    for (index, table) in AGGREGATES.iter().enumerate() {
        let follows = |tail: &Tail| aggregate_tables(tail.kind).contains(&index);
        if !following.iter().any(|(_, tail, _)| follows(tail)) {
            continue;
        }
        // The buckets of one device changed so far (its inputs come together), stored when the
        // next device's come or the table's are all read.
        let mut changed: (Option<usize>, BTreeSet<(usize, String)>) = (None, BTreeSet::new());
        let packs: Vec<(String, i64, i64)> = following
            .iter()
            .zip(&newest)
            .filter(|((_, tail, _), _)| table.group == "pack_id" && follows(tail))
            .map(|((device, _, last_pending), after)| (device.clone(), *after, *last_pending))
            .collect();
        let mut place = Place::default();
        // `owner`: the followed device the input is of (`None`: the input's own device).
        let mut fold = |owner: Option<&str>, input: stored::AggregateInput| {
            counts.samples_read += 1;
            let owner = owner.unwrap_or(&input.device);
            let Some(at_place) = place.of(following, owner) else {
                return;
            };
            let (_, tail, last_pending) = &mut following[at_place];
            if !follows(tail) || input.ts <= newest[at_place] || input.ts > *last_pending {
                return;
            }
            if changed.0 != Some(at_place) {
                store_changed(&mut changed, following, index, table, touched);
                changed.0 = Some(at_place);
            }
            let tail = &mut following[at_place].1;
            let key = (index, input.device.clone());
            match tail.buckets.get_mut(&key) {
                Some(bucket) if input.ts >= bucket.start && input.ts < bucket.end => {
                    bucket.fold(&input)
                }
                _ => {
                    let mut bucket =
                        AggregateBucket::new(&input, aggregates::bucket_of(table, tz, input.ts));
                    bucket.fold(&input);
                    // The bucket it replaces is complete: stored now if this pass changed it.
                    if let Some(done) = tail.buckets.insert(key.clone(), Box::new(bucket))
                        && changed.1.contains(&key)
                    {
                        touched
                            .aggregates
                            .entry(index)
                            .or_default()
                            .push(done.output(table));
                    }
                }
            }
            changed.1.insert(key);
        };
        if table.group == "pack_id" {
            // A pack's batteries' or cells' inputs: the pack's own, read for each pack.
            for (pack, after, last_pending) in packs {
                stored::each_input(
                    conn,
                    table,
                    &pack,
                    None,
                    after.saturating_add(1),
                    last_pending.saturating_add(1),
                    |input| fold(Some(&pack), input),
                )?;
            }
        } else {
            stored::each_input(conn, table, system_id, None, from, to, |input| {
                fold(None, input)
            })?;
        }
        store_changed(&mut changed, following, index, table, touched);
    }
    Ok(())
}

/// Where a device is in the pass's sorted list of followed devices, remembering the last one
/// found (samples come device by device: one search per device, not per sample).
#[derive(Default)]
struct Place(Option<usize>);

impl Place {
    fn of(&mut self, following: &[(String, Tail, i64)], device: &str) -> Option<usize> {
        if let Some(last) = self.0
            && following[last].0 == device
        {
            return Some(last);
        }
        let found = following
            .binary_search_by(|(id, _, _)| id.as_str().cmp(device))
            .ok()?;
        self.0 = Some(found);
        Some(found)
    }
}

/// Stores the open buckets a device's inputs changed (`changed`: the device's place, the keys).
fn store_changed(
    changed: &mut (Option<usize>, BTreeSet<(usize, String)>),
    following: &[(String, Tail, i64)],
    index: usize,
    table: &stored::AggregateTable,
    touched: &mut Touched,
) {
    let Some(at_place) = changed.0.take() else {
        return;
    };
    let tail = &following[at_place].1;
    let outputs = touched.aggregates.entry(index).or_default();
    for key in std::mem::take(&mut changed.1) {
        if let Some(bucket) = tail.buckets.get(&key) {
            outputs.push(bucket.output(table));
        }
    }
}

/// Folds one new sample into a followed device's tail: a sample of a later hour closes the
/// tail's hour (its row, and its day's when the day ended) and opens its own.
fn fold_sample(
    structure: &SystemStructure,
    limits: &crate::rollup::energy::Limits,
    device: &str,
    tail: &mut Tail,
    sample: &DeviceSample,
    touched: &mut Touched,
    at: i64,
) {
    let tz = structure.tz;
    if sample.ts() >= tail.bucket.end {
        // The sample opens its own hour, whose first interval starts at the last sample
        // before it, and closes this one (that interval may reach into it too).
        let bucket = local_time::hour_of(tz, sample.ts());
        let next = HourState::after(&tail.state, bucket.start, bucket.end);
        tail.state.fold(sample, limits);
        let closed =
            touched.device_hour(structure, tail.kind, device, &tail.bucket, &tail.state, at);
        // The closed hour joins the device's day so far; a new day starts empty.
        let day = local_time::day_of(tz, &bucket);
        match (tail.day.as_mut(), &closed) {
            (Some(prefix), Some(row)) if prefix.day.start == day.start => prefix.fold.add(row),
            (Some(prefix), Some(row)) => {
                // The closed hour was its day's last: the day's final row.
                touched.device_day(
                    structure,
                    tail.kind,
                    device,
                    &prefix.fold,
                    row,
                    &prefix.day,
                    at,
                );
                tail.day = None;
            }
            (Some(_), None) => tail.day = None,
            (None, _) => {}
        }
        if tail.day.is_none() && local_time::day_of(tz, &tail.bucket).start != day.start {
            tail.day = Some(Box::new(DayPrefix {
                day,
                fold: DayFold::new(tail.kind),
            }));
        }
        *tail.state = next;
        tail.bucket = bucket;
    }
    tail.state.fold(sample, limits);
}

/// One device's samples in [from, to) and the nearest one on each side within the counter reach.
pub(super) fn device_series(
    conn: &mut DbConnection,
    (device, kind): (&str, DeviceKind),
    from: i64,
    to: i64,
    reach: i64,
    counts: &mut PassCounts,
) -> Result<Vec<DeviceSample>, DbError> {
    let samples = store::device_samples(conn, kind, device, from, to, reach)?;
    counts.samples_read += count(&samples);
    Ok(converted(samples).remove(device).unwrap_or_default())
}

/// Rebuilds, from the device's raw samples, every hour its pending samples reach (but for frozen
/// ones), with their aggregates, and makes what to remember of it. Returns the frozen hours left
/// out and the tail (`None` for a device without samples).
#[allow(clippy::too_many_arguments)]
pub(super) fn rebuild(
    conn: &mut DbConnection,
    structure: &SystemStructure,
    settings: Settings,
    (device, kind): (&str, DeviceKind),
    ranges: &[&Pending],
    previous: Option<i64>,
    touched: &mut Touched,
    counts: &mut PassCounts,
    at: i64,
) -> Result<(usize, Option<Tail>), DbError> {
    let limits = settings.limits();
    let reach = settings.reach_ms();
    let tz = structure.tz;
    let system_id = structure.system.system_id.as_str();
    // A sample changes the intervals to its neighbours on both sides (and the one it split):
    // every hour between those neighbours.
    // Only where the device has samples: a range that reaches where it has none (an attachment
    // edited back to the start of the year) has nothing to make there.
    let mut hours = BTreeSet::new();
    for range in ranges {
        let Some((oldest, newest)) = store::device_span(
            conn,
            kind,
            device,
            range.from_ts.saturating_sub(reach),
            range.to_ts.saturating_add(reach),
        )?
        else {
            continue;
        };
        let (from, to) = (range.from_ts.max(oldest), range.to_ts.min(newest));
        let (before, after) = store::neighbour_times(conn, kind, device, from, to, reach)?;
        hours.extend(local_time::hours(
            tz,
            before.unwrap_or(from).min(from),
            after.unwrap_or(to).max(to) + 1,
        ));
    }
    let mut hours: Vec<Bucket> = hours.into_iter().collect();
    let frozen_hours = leave_out_frozen(conn, system_id, &mut hours, reach)?;
    // What to remember ends at the newest sample the roller has seen: the newest pending one,
    // or the newest it remembered (a pass of late samples alone). Samples stored since the
    // pending ranges were read come with ranges of their own and are followed at the next pass.
    let horizon = ranges.iter().map(|range| range.to_ts).chain(previous).max();
    let newest = match (store::newest_sample(conn, kind, device)?, horizon) {
        (Some(newest), Some(horizon)) => Some(newest.min(horizon)),
        (newest, _) => newest,
    };
    let mut newest_state: Option<(Bucket, HourState)> = None;
    for run in runs(hours) {
        for chunk in run.chunks(RECOMPUTE_CHUNK_HOURS) {
            let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
                continue;
            };
            let samples =
                device_series(conn, (device, kind), first.start, last.end, reach, counts)?;
            for bucket in chunk {
                let state = HourState::of(&samples, bucket.start, bucket.end, &limits);
                touched.device_hour(structure, kind, device, bucket, &state, at);
                if let Some(newest) = newest.filter(|ts| *ts >= bucket.start && *ts < bucket.end) {
                    let state = state_up_to(&samples, bucket, newest, &limits);
                    newest_state = Some((bucket.clone(), state));
                }
            }
            counts.device_hours_rebuilt += chunk.len() as u64;
            counts.samples_read += remake_aggregates_of(
                conn,
                system_id,
                tz,
                Some((kind, device)),
                first.start,
                last.end,
            )?;
        }
    }
    let Some(newest) = newest else {
        return Ok((frozen_hours, None));
    };
    let (bucket, state) = match newest_state {
        Some(made) => made,
        None => {
            let bucket = local_time::hour_of(tz, newest);
            let samples = device_series(
                conn,
                (device, kind),
                bucket.start,
                newest + 1,
                reach,
                counts,
            )?;
            let state = state_up_to(&samples, &bucket, newest, &limits);
            (bucket, state)
        }
    };
    // The open buckets of its aggregates, from the raw samples they hold so far.
    let tail = Tail::rebuilt(
        (system_id, tz, kind),
        bucket,
        state,
        newest,
        |index, start| {
            let table = &AGGREGATES[index];
            let (group, of_device) = if table.group == "pack_id" {
                (device, None)
            } else {
                (system_id, Some(device))
            };
            let inputs = stored::inputs(conn, table, group, of_device, start, newest + 1)?;
            counts.samples_read += inputs.len() as u64;
            Ok(inputs)
        },
    )?;
    Ok((frozen_hours, Some(tail)))
}
