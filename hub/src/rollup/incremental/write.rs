//! A pass's rows written: the device rows of the hours touched, the arrays' and the system's
//! combined from them, the days from the hour rows, and the aggregates' buckets.

use super::*;
use std::collections::HashMap;

/// Writes what a pass touched: the device rows of each hour, the arrays' and the system's rows of
/// those hours, the days they are in, and the aggregate buckets.
pub(super) fn write(
    conn: &mut DbConnection,
    structure: &SystemStructure,
    settings: Settings,
    touched: Touched,
    at: i64,
    report: &mut RollReport,
    tails: &mut BTreeMap<String, Option<Tail>>,
) -> Result<
    (
        std::time::Duration,
        std::time::Duration,
        std::time::Duration,
    ),
    DbError,
> {
    let began = Instant::now();
    let system_id = structure.system.system_id.as_str();
    let tz: Tz = structure.tz;
    let limits = settings.limits();
    let reach = settings.reach_ms();
    let levels = RowsOf {
        levels: true,
        ..RowsOf::default()
    };
    let mut days: BTreeMap<i64, (Bucket, RowsOf)> = BTreeMap::new();
    for (_, (bucket, rows, only)) in touched.hours {
        store::replace_rows(
            conn,
            system_id,
            (bucket.start, bucket.end),
            Level::Hours,
            Some(&only),
            &rows,
        )?;
        report.rows += rows.inverter_hours.len() + rows.pack_hours.len() + rows.meter_hours.len();
        // The arrays and the system, from every device row of the hour.
        let hour = store::load_rows(conn, system_id, bucket.start, bucket.end, Level::Hours)?;
        let mut partial: BTreeMap<(String, i64, i64), Option<store::PackHour>> = BTreeMap::new();
        for (pack, _, from, to) in crate::rollup::hours::pack_attachments(
            &structure.installation.packs,
            &structure.installation.attachments,
            bucket.start,
            bucket.end,
        ) {
            if (from, to) != (bucket.start, bucket.end) {
                let mut counts = PassCounts::default();
                let samples =
                    device_series(conn, (pack, DeviceKind::Pack), from, to, reach, &mut counts)?;
                let state = HourState::of(&samples, from, to, &limits);
                let window = Bucket {
                    start: from,
                    end: to,
                    ..bucket.clone()
                };
                partial.insert(
                    (pack.to_owned(), from, to),
                    pack_hour(structure, pack, &state, &window, at),
                );
            }
        }
        let lookup = |pack: &str, from: i64, to: i64| {
            partial.get(&(pack.to_owned(), from, to)).cloned().flatten()
        };
        let (arrays, system) = level_rows(structure, &bucket, &hour, &lookup, at);
        let level_rows = RollupRows {
            array_hours: arrays,
            system_hours: system.into_iter().collect(),
            ..RollupRows::default()
        };
        store::replace_rows(
            conn,
            system_id,
            (bucket.start, bucket.end),
            Level::Hours,
            Some(&levels),
            &level_rows,
        )?;
        report.rows += level_rows.array_hours.len() + level_rows.system_hours.len();
        report.hours += 1;
        let day = local_time::day_of(tz, &bucket);
        let (_, devices) = days
            .entry(day.start)
            .or_insert_with(|| (day.clone(), levels.clone()));
        for (kind, ids) in [
            (DeviceKind::Inverter, &only.inverters),
            (DeviceKind::Pack, &only.packs),
            (DeviceKind::Meter, &only.meters),
        ] {
            for id in ids {
                // A day the roller made from what it remembered needs no stored rows.
                if !touched
                    .days_made
                    .contains(&(day.start, kind, id.to_owned()))
                {
                    add_id(devices, kind, id);
                }
            }
        }
    }
    let hours_done = began.elapsed();
    for (_, (day, rows, only)) in touched.days {
        store::replace_rows(
            conn,
            system_id,
            (day.start, day.end),
            Level::Days,
            Some(&only),
            &rows,
        )?;
        report.rows += rows.inverter_days.len() + rows.pack_days.len() + rows.meter_days.len();
    }
    for (_, (day, only)) in days {
        let hours = store::load_rows_of(conn, system_id, day.start, day.end, Level::Hours, &only)?;
        if only_legacy(&hours) {
            continue;
        }
        let rows = day_rows_from(structure, &day, &hours, at);
        store::replace_rows(
            conn,
            system_id,
            (day.start, day.end),
            Level::Days,
            Some(&only),
            &rows,
        )?;
        report.days += 1;
        report.rows += rows.inverter_days.len()
            + rows.array_days.len()
            + rows.system_days.len()
            + rows.pack_days.len()
            + rows.meter_days.len();
        // What the roller remembers of these devices' day: their rows before the open hour
        // (each device's rows found once, not searched for among the day's for every device).
        let mut rows_of: HashMap<(DeviceKind, &str), Vec<HourRow>> = HashMap::new();
        for row in &hours.inverter_hours {
            rows_of
                .entry((DeviceKind::Inverter, &row.inverter_id))
                .or_default()
                .push(HourRow::Inverter(row.clone()));
        }
        for row in &hours.pack_hours {
            rows_of
                .entry((DeviceKind::Pack, &row.pack_id))
                .or_default()
                .push(HourRow::Pack(row.clone()));
        }
        for row in &hours.meter_hours {
            rows_of
                .entry((DeviceKind::Meter, &row.meter_id))
                .or_default()
                .push(HourRow::Meter(row.clone()));
        }
        for (device, tail) in tails.iter_mut() {
            let Some(tail) = tail else { continue };
            if local_time::day_of(tz, &tail.bucket).start != day.start {
                continue;
            }
            let Some(rows) = rows_of.get(&(tail.kind, device.as_str())) else {
                // None of its rows this day are stored (or it is not among the day's devices).
                if has_id(&only, device) {
                    tail.day = Some(Box::new(DayPrefix {
                        day: day.clone(),
                        fold: DayFold::new(tail.kind),
                    }));
                }
                continue;
            };
            let open = tail.bucket.start;
            let mut fold = DayFold::new(tail.kind);
            for row in rows.iter().filter(|row| row.bucket_start() < open) {
                fold.add(row);
            }
            tail.day = Some(Box::new(DayPrefix {
                day: day.clone(),
                fold,
            }));
        }
    }
    let days_done = began.elapsed();
    for (index, rows) in touched.aggregates {
        stored::store(conn, &AGGREGATES[index], &rows)?;
    }
    Ok((
        hours_done,
        days_done - hours_done,
        began.elapsed() - days_done,
    ))
}
