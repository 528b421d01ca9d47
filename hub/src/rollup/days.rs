//! Day rows, from the hour rows stored for the day: energies summed, averages weighted by
//! samples, peaks the highest, coverage over the day's length, cycles over the packs' capacity. A
//! day of the old app's hours alone is left as it is.

use std::collections::{BTreeMap, BTreeSet};

use super::SystemStructure;
use super::energy::{DISCHARGE, QUANTITIES};
use super::figures::{Figures, figures_of};
use super::hours::pack_attachments;
use crate::catalog::{BatteryPack, Installation};
use crate::db::rollups::{self as store, Level, RollupRows};
use crate::db::{DbConnection, DbError};
use crate::local_time::Bucket;
use crate::values::{add, max, mean_by_count, min};

/// A day's figures from its hour rows (energies summed, averages weighted by samples, peaks the
/// highest, coverage over the day's length).
pub(super) fn day_figures<R: store::EnergyColumns>(hours: &[&R], day: &Bucket) -> Figures {
    let mut total = Figures::default();
    let mut weights = [0.0f64; 5];
    let mut weighted = [0.0f64; 5];
    let mut covered = 0.0;
    for hour in hours {
        let figures = &figures_of(*hour);
        let span = hour.span_ms();
        for q in 0..QUANTITIES {
            add(&mut total.kwh[q], figures.kwh[q]);
        }
        let n = figures.sample_count as f64;
        for (i, avg) in [
            figures.avg_pv,
            figures.avg_load,
            figures.avg_grid,
            figures.avg_battery,
            figures.soc_avg,
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(avg) = avg {
                weighted[i] += avg * n;
                weights[i] += n;
            }
        }
        total.peak_pv = max(total.peak_pv, figures.peak_pv);
        total.peak_load = max(total.peak_load, figures.peak_load);
        total.peak_import = max(total.peak_import, figures.peak_import);
        total.peak_export = max(total.peak_export, figures.peak_export);
        total.soc_min = min(total.soc_min, figures.soc_min);
        total.soc_max = max(total.soc_max, figures.soc_max);
        total.sample_count += figures.sample_count;
        covered += figures.coverage_pct * span as f64;
    }
    let mean = |i: usize| (weights[i] > 0.0).then(|| weighted[i] / weights[i]);
    total.avg_pv = mean(0);
    total.avg_load = mean(1);
    total.avg_grid = mean(2);
    total.avg_battery = mean(3);
    total.soc_avg = mean(4);
    total.coverage_pct = covered / (day.end - day.start) as f64;
    total
}

/// A day is the old app's when every hour it sums is; else it is computed.
pub(super) fn source_of<'a>(mut hours: impl Iterator<Item = &'a str>) -> String {
    match hours.all(|source| source == store::FROM_LEGACY) {
        true => store::FROM_LEGACY.to_owned(),
        false => store::FROM_SAMPLES.to_owned(),
    }
}

/// Cycles: energy discharged over the nominal capacity, when every pack counted has one.
pub(super) fn cycles(discharge_kwh: Option<f64>, packs: &[&BatteryPack]) -> Option<f64> {
    let capacity = packs
        .iter()
        .map(|p| p.nominal_kwh.filter(|kwh| *kwh > 0.0))
        .try_fold(0.0, |total, kwh| kwh.map(|kwh| total + kwh))?;
    (!packs.is_empty() && capacity > 0.0).then(|| discharge_kwh.unwrap_or(0.0) / capacity)
}

/// Whether every stored hour row is the old app's (and there is at least one).
pub(super) fn only_legacy(hours: &RollupRows) -> bool {
    let mut sources = hours
        .inverter_hours
        .iter()
        .map(|h| &h.source)
        .chain(hours.array_hours.iter().map(|h| &h.source))
        .chain(hours.system_hours.iter().map(|h| &h.source))
        .chain(hours.pack_hours.iter().map(|h| &h.source))
        .chain(hours.meter_hours.iter().map(|h| &h.source))
        .peekable();
    sources.peek().is_some() && sources.all(|s| s == store::FROM_LEGACY)
}

/// Computes the day rows of `day` from the hour rows stored for it; `None` for a day of the old
/// app's figures alone, which has nothing to compute from and is left as it is.
pub(super) fn day_rows(
    conn: &mut DbConnection,
    structure: &SystemStructure,
    day: &Bucket,
    at: i64,
) -> Result<Option<RollupRows>, DbError> {
    let system_id = structure.system.system_id.as_str();
    let hours = store::load_rows(conn, system_id, day.start, day.end, Level::Hours)?;
    if only_legacy(&hours) {
        return Ok(None);
    }
    Ok(Some(day_rows_from(structure, day, &hours, at)))
}

/// The day rows of `day` from its hour rows `hours` (all of a device's hours of the day, for each
/// device they hold; the arrays' and the system's likewise): one per device, array and the system
/// that has hours there.
pub(super) fn day_rows_from(
    structure: &SystemStructure,
    day: &Bucket,
    hours: &RollupRows,
    at: i64,
) -> RollupRows {
    let system_id = structure.system.system_id.as_str();
    let mut rows = RollupRows::default();
    let installation = &structure.installation;

    let mut inverters: BTreeMap<&str, Vec<&store::InverterHour>> = BTreeMap::new();
    for row in &hours.inverter_hours {
        inverters.entry(&row.inverter_id).or_default().push(row);
    }
    for (inverter_id, own) in inverters {
        let figures = day_figures(&own, day);
        let source = source_of(own.iter().map(|h| h.source.as_str()));
        rows.inverter_days.push(energy_row!(
            InverterDay {
                inverter_id: inverter_id.to_owned(),
                array_id: own.last().and_then(|r| r.array_id.clone()),
                system_id: system_id.to_owned(),
                battery_cycles: None,
            },
            day,
            &figures,
            at
        ));
        if let Some(row) = rows.inverter_days.last_mut() {
            row.source = source;
        }
    }
    let mut arrays: BTreeMap<&str, Vec<&store::ArrayHour>> = BTreeMap::new();
    for row in &hours.array_hours {
        arrays.entry(&row.array_id).or_default().push(row);
    }
    for (array_id, own) in arrays {
        let figures = day_figures(&own, day);
        let source = source_of(own.iter().map(|h| h.source.as_str()));
        let attached: Vec<&BatteryPack> = {
            let ids: BTreeSet<&str> = pack_attachments(
                &installation.packs,
                &installation.attachments,
                day.start,
                day.end,
            )
            .into_iter()
            .filter(|(_, inverter_array, _, _)| *inverter_array == array_id)
            .map(|(pack, _, _, _)| pack)
            .collect();
            installation
                .packs
                .iter()
                .filter(|p| ids.contains(p.pack_id.as_str()))
                .collect()
        };
        rows.array_days.push(energy_row!(
            ArrayDay {
                array_id: array_id.to_owned(),
                system_id: system_id.to_owned(),
                battery_cycles: cycles(figures.kwh[DISCHARGE], &attached),
            },
            day,
            &figures,
            at
        ));
        if let Some(row) = rows.array_days.last_mut() {
            row.source = source;
        }
    }
    if !hours.system_hours.is_empty() {
        let figures = day_figures(&hours.system_hours.iter().collect::<Vec<_>>(), day);
        let all: Vec<&BatteryPack> = installation.packs.iter().collect();
        rows.system_days.push(energy_row!(
            SystemDay {
                system_id: system_id.to_owned(),
                battery_cycles: cycles(figures.kwh[DISCHARGE], &all),
            },
            day,
            &figures,
            at
        ));
        if let Some(row) = rows.system_days.last_mut() {
            row.source = source_of(hours.system_hours.iter().map(|h| h.source.as_str()));
        }
    }
    let mut packs: BTreeMap<&str, Vec<&store::PackHour>> = BTreeMap::new();
    for row in &hours.pack_hours {
        packs.entry(&row.pack_id).or_default().push(row);
    }
    for (pack_id, own) in packs {
        rows.pack_days
            .push(pack_day(installation, pack_id, &own, day, at));
    }
    let mut meters: BTreeMap<&str, Vec<&store::MeterHour>> = BTreeMap::new();
    for row in &hours.meter_hours {
        meters.entry(&row.meter_id).or_default().push(row);
    }
    for (meter_id, own) in meters {
        rows.meter_days.push(meter_day(meter_id, &own, day, at));
    }
    rows
}

pub(super) fn day_coverage(spans: impl IntoIterator<Item = (f64, i64)>, day: &Bucket) -> f64 {
    spans
        .into_iter()
        .map(|(pct, span)| pct * span as f64)
        .sum::<f64>()
        / (day.end - day.start) as f64
}

pub(super) fn pack_day(
    installation: &Installation,
    pack_id: &str,
    hours: &[&store::PackHour],
    day: &Bucket,
    at: i64,
) -> store::PackDay {
    let mut charge = None;
    let mut discharge = None;
    for h in hours {
        add(&mut charge, h.charge_kwh);
        add(&mut discharge, h.discharge_kwh);
    }
    let pack = installation.packs.iter().find(|p| p.pack_id == pack_id);
    let fold = |f: fn(&store::PackHour) -> Option<f64>,
                pick: fn(Option<f64>, Option<f64>) -> Option<f64>| {
        hours.iter().fold(None, |acc, h| pick(acc, f(h)))
    };
    store::PackDay {
        pack_id: pack_id.to_owned(),
        cycles: pack.and_then(|p| cycles(discharge, &[p])),
        bucket_start: day.start,
        bucket_end: day.end,
        date: day.date.clone(),
        battery_array_id: hours.last().and_then(|h| h.battery_array_id.clone()),
        system_id: hours
            .last()
            .map(|h| h.system_id.clone())
            .unwrap_or_default(),
        charge_kwh: charge,
        discharge_kwh: discharge,
        avg_power_w: mean_by_count(hours.iter().map(|h| (h.avg_power_w, h.sample_count))),
        peak_charge_w: fold(|h| h.peak_charge_w, max),
        peak_discharge_w: fold(|h| h.peak_discharge_w, max),
        avg_voltage_v: mean_by_count(hours.iter().map(|h| (h.avg_voltage_v, h.sample_count))),
        avg_current_a: mean_by_count(hours.iter().map(|h| (h.avg_current_a, h.sample_count))),
        avg_temperature_c: mean_by_count(
            hours.iter().map(|h| (h.avg_temperature_c, h.sample_count)),
        ),
        max_temperature_c: fold(|h| h.max_temperature_c, max),
        soc_min_pct: fold(|h| h.soc_min_pct, min),
        soc_avg_pct: mean_by_count(hours.iter().map(|h| (h.soc_avg_pct, h.sample_count))),
        soc_max_pct: fold(|h| h.soc_max_pct, max),
        sample_count: hours.iter().map(|h| h.sample_count).sum(),
        coverage_pct: day_coverage(
            hours
                .iter()
                .map(|h| (h.coverage_pct, h.bucket_end - h.bucket_start)),
            day,
        ),
        updated_at: at,
        source: source_of(hours.iter().map(|h| h.source.as_str())),
    }
}

pub(super) fn meter_day(
    meter_id: &str,
    hours: &[&store::MeterHour],
    day: &Bucket,
    at: i64,
) -> store::MeterDay {
    let mut import = None;
    let mut export = None;
    let mut net = None;
    for h in hours {
        add(&mut import, h.import_kwh);
        add(&mut export, h.export_kwh);
        add(&mut net, h.net_kwh);
    }
    let fold =
        |f: fn(&store::MeterHour) -> Option<f64>| hours.iter().fold(None, |acc, h| max(acc, f(h)));
    store::MeterDay {
        meter_id: meter_id.to_owned(),
        bucket_start: day.start,
        bucket_end: day.end,
        date: day.date.clone(),
        system_id: hours
            .last()
            .map(|h| h.system_id.clone())
            .unwrap_or_default(),
        array_id: hours.last().and_then(|h| h.array_id.clone()),
        import_kwh: import,
        export_kwh: export,
        net_kwh: net,
        avg_power_w: mean_by_count(hours.iter().map(|h| (h.avg_power_w, h.sample_count))),
        peak_import_w: fold(|h| h.peak_import_w),
        peak_export_w: fold(|h| h.peak_export_w),
        avg_voltage_v: mean_by_count(hours.iter().map(|h| (h.avg_voltage_v, h.sample_count))),
        avg_current_a: mean_by_count(hours.iter().map(|h| (h.avg_current_a, h.sample_count))),
        avg_frequency_hz: mean_by_count(hours.iter().map(|h| (h.avg_frequency_hz, h.sample_count))),
        sample_count: hours.iter().map(|h| h.sample_count).sum(),
        coverage_pct: day_coverage(
            hours
                .iter()
                .map(|h| (h.coverage_pct, h.bucket_end - h.bucket_start)),
            day,
        ),
        updated_at: at,
        source: source_of(hours.iter().map(|h| h.source.as_str())),
    }
}
