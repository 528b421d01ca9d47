//! Rollup rows from figures that did not come from raw samples: the old app's own hourly and
//! daily tables, carried over by a legacy upgrade for the hours and days it has no raw samples of
//! (the old app deleted raw samples after a year and kept its rollups forever).
//!
//! The same level rules as computed rows hold: an array sums its inverters, the system its arrays
//! (grid energy from its system-level grid meters when they have figures), a day its hours where
//! the old app kept no day. Every row written here says `source = legacy`, and a recompute leaves
//! it alone unless samples for its time arrive.

use std::collections::BTreeMap;

use crate::db::rollups::{self as store, FROM_LEGACY, RollupRows};
use crate::db::{DbConnection, DbError, now_ms};

use super::days::day_figures;
use super::energy::{EXPORT, IMPORT, QUANTITIES};
use super::figures::{Figures, net_kwh, sum_figures};
use super::load_system_structure;
use crate::db::rollups::energy_row;
use crate::local_time::Bucket;

/// One hourly or daily figure set of one inverter, as the old app kept it (battery power in
/// solarhub's sign; coverage is not the old app's to say: see [`CARRIED_COVERAGE_PCT`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OldEnergy {
    pub inverter_id: String,
    pub bucket: Bucket,
    pub figures: Figures,
    pub battery_cycles: Option<f64>,
}

/// One hourly or daily figure set of one meter, as the old app kept it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OldMeter {
    pub meter_id: String,
    pub bucket: Bucket,
    pub import_kwh: Option<f64>,
    pub export_kwh: Option<f64>,
    pub avg_power_w: Option<f64>,
    pub peak_import_w: Option<f64>,
    pub peak_export_w: Option<f64>,
    pub avg_voltage_v: Option<f64>,
    pub avg_current_a: Option<f64>,
    pub avg_frequency_hz: Option<f64>,
    pub sample_count: i64,
}

/// The old app says nothing of how much of a bucket it saw; what it kept counts as whole.
const CARRIED_COVERAGE_PCT: f64 = 100.0;

fn figures(old: &OldEnergy) -> Figures {
    Figures {
        coverage_pct: CARRIED_COVERAGE_PCT,
        ..old.figures
    }
}

/// A meter row of `$row` from the old app's figures `$m`.
macro_rules! old_meter_row {
    ($row:ident { $($field:ident: $value:expr),* }, $m:expr, $array_id:expr, $system_id:expr, $at:expr) => {{
        let old: &OldMeter = $m;
        store::$row {
            $($field: $value,)*
            meter_id: old.meter_id.clone(),
            bucket_start: old.bucket.start,
            bucket_end: old.bucket.end,
            date: old.bucket.date.clone(),
            system_id: $system_id.to_owned(),
            array_id: $array_id,
            import_kwh: old.import_kwh,
            export_kwh: old.export_kwh,
            net_kwh: net_kwh(old.import_kwh, old.export_kwh),
            avg_power_w: old.avg_power_w,
            peak_import_w: old.peak_import_w,
            peak_export_w: old.peak_export_w,
            avg_voltage_v: old.avg_voltage_v,
            avg_current_a: old.avg_current_a,
            avg_frequency_hz: old.avg_frequency_hz,
            sample_count: old.sample_count,
            coverage_pct: CARRIED_COVERAGE_PCT,
            updated_at: $at,
            source: FROM_LEGACY.to_owned(),
        }
    }};
}

/// Meter rows and, per bucket start, the system-level grid meters' import and export.
fn meter_rows<R>(
    old: &[OldMeter],
    array_of: &BTreeMap<&str, Option<&str>>,
    system_grid: &[&str],
    row: impl Fn(&OldMeter, Option<String>) -> R,
) -> (Vec<R>, BTreeMap<i64, [Option<f64>; 2]>) {
    let mut rows = Vec::new();
    let mut grid: BTreeMap<i64, [Option<f64>; 2]> = BTreeMap::new();
    for meter in old {
        let Some(array_id) = array_of.get(meter.meter_id.as_str()) else {
            continue;
        };
        if system_grid.contains(&meter.meter_id.as_str()) && meter.import_kwh.is_some() {
            let [import, export] = grid.entry(meter.bucket.start).or_default();
            crate::values::add(import, meter.import_kwh);
            crate::values::add(export, meter.export_kwh);
        }
        rows.push(row(meter, array_id.map(str::to_owned)));
    }
    (rows, grid)
}

/// The rows of `system_id` that the old app's figures make: inverters and meters as given, arrays
/// and the system summed from them, inverter days from `days` (their battery energy, which the
/// old app's days lack, from the hours) or, where the old app kept no day, from the hours.
/// Devices the catalog does not place are left out.
pub fn carried_rows(
    conn: &mut DbConnection,
    system_id: &str,
    hours: &[OldEnergy],
    days: &[OldEnergy],
    meter_hours: &[OldMeter],
    meter_days: &[OldMeter],
) -> Result<RollupRows, DbError> {
    let mut rows = RollupRows::default();
    let Some(structure) = load_system_structure(conn, system_id)? else {
        return Ok(rows);
    };
    let at = now_ms();
    let installation = &structure.installation;
    let array_of: BTreeMap<&str, &str> = installation
        .inverters
        .iter()
        .map(|i| (i.inverter_id.as_str(), i.array_id.as_str()))
        .collect();
    let meter_array: BTreeMap<&str, Option<&str>> = installation
        .meters
        .iter()
        .map(|m| (m.meter_id.as_str(), m.array_id.as_deref()))
        .collect();
    let system_grid: Vec<&str> = installation.system_grid_meters().collect();

    // Hours.
    let mut by_bucket: BTreeMap<&Bucket, BTreeMap<&str, Vec<Figures>>> = BTreeMap::new();
    for old in hours {
        let Some(array_id) = array_of.get(old.inverter_id.as_str()) else {
            continue;
        };
        let f = figures(old);
        rows.inverter_hours.push(energy_row!(
            InverterHour {
                inverter_id: old.inverter_id.clone(),
                hour_start: old.bucket.hour.unwrap_or_default(),
                array_id: Some((*array_id).to_owned()),
                system_id: system_id.to_owned(),
            },
            &old.bucket,
            &f,
            at
        ));
        by_bucket
            .entry(&old.bucket)
            .or_default()
            .entry(array_id)
            .or_default()
            .push(f);
    }
    let (meter_hour_rows, hour_grid) =
        meter_rows(meter_hours, &meter_array, &system_grid, |m, array_id| {
            old_meter_row!(
                MeterHour {
                    hour_start: m.bucket.hour.unwrap_or_default()
                },
                m,
                array_id,
                system_id,
                at
            )
        });
    rows.meter_hours = meter_hour_rows;
    for (bucket, arrays) in &by_bucket {
        let mut array_figures = Vec::new();
        for (array_id, parts) in arrays {
            let Some(f) = sum_figures(parts.iter()) else {
                continue;
            };
            rows.array_hours.push(energy_row!(
                ArrayHour {
                    array_id: (*array_id).to_owned(),
                    hour_start: bucket.hour.unwrap_or_default(),
                    system_id: system_id.to_owned(),
                },
                bucket,
                &f,
                at
            ));
            array_figures.push(f);
        }
        if let Some(mut f) = sum_figures(array_figures.iter()) {
            if let Some([import, export]) = hour_grid.get(&bucket.start) {
                f.kwh[IMPORT] = *import;
                f.kwh[EXPORT] = *export;
            }
            rows.system_hours.push(energy_row!(
                SystemHour {
                    system_id: system_id.to_owned(),
                    hour_start: bucket.hour.unwrap_or_default(),
                },
                bucket,
                &f,
                at
            ));
        }
    }

    // Days: the old app's own where it kept them, else from its hours.
    let mut hours_of_day: BTreeMap<(&str, String), Vec<&store::InverterHour>> = BTreeMap::new();
    for hour in &rows.inverter_hours {
        hours_of_day
            .entry((hour.inverter_id.as_str(), hour.date.clone()))
            .or_default()
            .push(hour);
    }
    let mut day_figures_of: BTreeMap<(String, Bucket), Figures> = BTreeMap::new();
    for old in days {
        if !array_of.contains_key(old.inverter_id.as_str()) {
            continue;
        }
        let mut f = figures(old);
        if let Some(own) = hours_of_day.get(&(old.inverter_id.as_str(), old.bucket.date.clone())) {
            let from_hours = day_figures(own, &old.bucket);
            for q in 0..QUANTITIES {
                if f.kwh[q].is_none() {
                    f.kwh[q] = from_hours.kwh[q];
                }
            }
            f.avg_battery = f.avg_battery.or(from_hours.avg_battery);
        }
        day_figures_of.insert((old.inverter_id.clone(), old.bucket.clone()), f);
    }
    for ((inverter_id, date), own) in &hours_of_day {
        let Some(first) = own.first() else { continue };
        let day = crate::local_time::day_of(
            structure.tz,
            &Bucket {
                start: first.bucket_start,
                end: first.bucket_end,
                date: date.clone(),
                hour: Some(first.hour_start),
            },
        );
        day_figures_of
            .entry(((*inverter_id).to_owned(), day.clone()))
            .or_insert_with(|| day_figures(own, &day));
    }
    let old_cycles: BTreeMap<(&str, &str), Option<f64>> = days
        .iter()
        .map(|d| {
            (
                (d.inverter_id.as_str(), d.bucket.date.as_str()),
                d.battery_cycles,
            )
        })
        .collect();
    let mut days_by_bucket: BTreeMap<&Bucket, BTreeMap<&str, Vec<&Figures>>> = BTreeMap::new();
    for ((inverter_id, day), f) in &day_figures_of {
        let Some(array_id) = array_of.get(inverter_id.as_str()) else {
            continue;
        };
        rows.inverter_days.push(energy_row!(
            InverterDay {
                inverter_id: inverter_id.clone(),
                array_id: Some((*array_id).to_owned()),
                system_id: system_id.to_owned(),
                battery_cycles: old_cycles
                    .get(&(inverter_id.as_str(), day.date.as_str()))
                    .copied()
                    .flatten(),
            },
            day,
            f,
            at
        ));
        days_by_bucket
            .entry(day)
            .or_default()
            .entry(array_id)
            .or_default()
            .push(f);
    }
    // Meter days: the old app's own, else summed from its hours.
    let mut meter_day_list: Vec<OldMeter> = meter_days.to_vec();
    let mut summed: BTreeMap<(String, Bucket), OldMeter> = BTreeMap::new();
    for hour in meter_hours {
        let day = crate::local_time::day_of(structure.tz, &hour.bucket);
        if meter_days
            .iter()
            .any(|d| d.meter_id == hour.meter_id && d.bucket == day)
        {
            continue;
        }
        let entry = summed
            .entry((hour.meter_id.clone(), day.clone()))
            .or_insert_with(|| OldMeter {
                meter_id: hour.meter_id.clone(),
                bucket: day,
                ..OldMeter::default()
            });
        crate::values::add(&mut entry.import_kwh, hour.import_kwh);
        crate::values::add(&mut entry.export_kwh, hour.export_kwh);
        entry.sample_count += hour.sample_count;
    }
    meter_day_list.extend(summed.into_values());
    let (meter_day_rows, day_grid) = meter_rows(
        &meter_day_list,
        &meter_array,
        &system_grid,
        |m, array_id| old_meter_row!(MeterDay {}, m, array_id, system_id, at),
    );
    rows.meter_days = meter_day_rows;
    for (day, arrays) in &days_by_bucket {
        let mut array_figures = Vec::new();
        for (array_id, parts) in arrays {
            let Some(f) = sum_figures(parts.iter().copied()) else {
                continue;
            };
            rows.array_days.push(energy_row!(
                ArrayDay {
                    array_id: (*array_id).to_owned(),
                    system_id: system_id.to_owned(),
                    battery_cycles: None,
                },
                day,
                &f,
                at
            ));
            array_figures.push(f);
        }
        if let Some(mut f) = sum_figures(array_figures.iter()) {
            if let Some([import, export]) = day_grid.get(&day.start) {
                f.kwh[IMPORT] = *import;
                f.kwh[EXPORT] = *export;
            }
            rows.system_days.push(energy_row!(
                SystemDay {
                    system_id: system_id.to_owned(),
                    battery_cycles: None,
                },
                day,
                &f,
                at
            ));
        }
    }
    mark_legacy(&mut rows);
    Ok(rows)
}

/// Every row says where it came from.
fn mark_legacy(rows: &mut RollupRows) {
    macro_rules! mark {
        ($($field:ident),*) => { $(for row in &mut rows.$field { row.source = FROM_LEGACY.to_owned(); })* };
    }
    mark!(
        inverter_hours,
        array_hours,
        system_hours,
        pack_hours,
        meter_hours,
        inverter_days,
        array_days,
        system_days,
        pack_days,
        meter_days
    );
}
