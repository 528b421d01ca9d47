//! Hour rows: every device's energy and figures in each local hour from its raw samples, and the
//! arrays and the system summed from them (an array's battery from the packs attached to it at
//! the time).

use std::collections::{BTreeMap, BTreeSet};

use super::energy::{self, CHARGE, DISCHARGE, EXPORT, IMPORT, LOAD, Point, SOLAR, split};
use super::figures::{Figures, Stat, coverage, net_kwh, stats, sum_figures, with_battery};
use super::{Settings, SystemStructure};
use crate::catalog::{BatteryArrayAttachment, BatteryPack};
use crate::db::rollups::{self as store, RollupRows};
use crate::db::samples::{BatteryBankSample, EnergySample, MeterSample};
use crate::db::{DbConnection, DbError};
use crate::local_time::Bucket;
use crate::values::{add, kwh};

pub(super) fn inverter_point(s: &EnergySample) -> Point {
    let (discharge, charge) = split(s.battery_power_w);
    let (import, export) = split(s.grid_power_w);
    let mut point = Point {
        ts: s.ts,
        ..Point::default()
    };
    point.counters[SOLAR] = s.pv_energy_total_wh;
    point.counters[LOAD] = s.load_energy_total_wh;
    point.counters[CHARGE] = s.battery_charge_total_wh;
    point.counters[DISCHARGE] = s.battery_discharge_total_wh;
    point.counters[IMPORT] = s.grid_import_total_wh;
    point.counters[EXPORT] = s.grid_export_total_wh;
    point.powers[SOLAR] = s.pv_power_w.map(|p| p.max(0.0));
    point.powers[LOAD] = s.load_power_w.map(|p| p.max(0.0));
    point.powers[CHARGE] = charge;
    point.powers[DISCHARGE] = discharge;
    point.powers[IMPORT] = import;
    point.powers[EXPORT] = export;
    point
}

pub(super) fn meter_point(s: &MeterSample) -> Point {
    let (import, export) = split(s.power_w);
    let mut point = Point {
        ts: s.ts,
        ..Point::default()
    };
    point.counters[IMPORT] = s.import_total_wh;
    point.counters[EXPORT] = s.export_total_wh;
    point.powers[IMPORT] = import;
    point.powers[EXPORT] = export;
    point
}

pub(super) fn pack_point(s: &BatteryBankSample) -> Point {
    let (discharge, charge) = split(s.power_w);
    let mut point = Point {
        ts: s.ts,
        ..Point::default()
    };
    point.powers[CHARGE] = charge;
    point.powers[DISCHARGE] = discharge;
    point
}

/// One device's samples and their points, in time order.
pub(super) struct Series<S> {
    pub(super) samples: Vec<S>,
    pub(super) points: Vec<Point>,
}

impl<S> Series<S> {
    /// The samples with ts in [from, to).
    fn within(&self, from: i64, to: i64, ts: impl Fn(&S) -> i64) -> &[S] {
        let a = self.samples.partition_point(|s| ts(s) < from);
        let b = self.samples.partition_point(|s| ts(s) < to);
        &self.samples[a..b]
    }
}

pub(super) fn group<S>(
    samples: Vec<S>,
    key: impl Fn(&S) -> &str,
    point: impl Fn(&S) -> Point,
) -> BTreeMap<String, Series<S>> {
    let mut series: BTreeMap<String, Series<S>> = BTreeMap::new();
    for sample in samples {
        let entry = series.entry(key(&sample).to_owned()).or_insert(Series {
            samples: Vec::new(),
            points: Vec::new(),
        });
        entry.points.push(point(&sample));
        entry.samples.push(sample);
    }
    series
}

/// A device's integral over a bucket and its samples inside it; `None` when it has neither data
/// nor a bridged interval there.
pub(super) fn bucket_data<'a, S>(
    series: &'a Series<S>,
    bucket: &Bucket,
    limits: &energy::Limits,
    ts: impl Fn(&S) -> i64,
) -> Option<(energy::Integral, &'a [S])> {
    let integral = energy::integrate(&series.points, bucket.start, bucket.end, limits);
    let inside = series.within(bucket.start, bucket.end, ts);
    (!inside.is_empty() || integral.covered_ms > 0).then_some((integral, inside))
}

pub(super) fn inverter_figures(
    series: &Series<EnergySample>,
    bucket: &Bucket,
    limits: &energy::Limits,
) -> Option<Figures> {
    let (integral, inside) = bucket_data(series, bucket, limits, |s| s.ts)?;
    let [
        mut pv,
        mut load,
        mut grid,
        mut import,
        mut export,
        mut battery,
        mut soc,
    ] = stats();
    for s in inside {
        pv.add(s.pv_power_w);
        load.add(s.load_power_w);
        grid.add(s.grid_power_w);
        let (i, e) = split(s.grid_power_w);
        import.add(i);
        export.add(e);
        battery.add(s.battery_power_w);
        soc.add(s.battery_soc_pct);
    }
    Some(Figures {
        kwh: integral.energy_wh.map(kwh),
        avg_pv: pv.mean(),
        peak_pv: pv.max,
        avg_load: load.mean(),
        peak_load: load.max,
        avg_grid: grid.mean(),
        peak_import: import.max,
        peak_export: export.max,
        avg_battery: battery.mean(),
        soc_min: soc.min,
        soc_avg: soc.mean(),
        soc_max: soc.max,
        sample_count: inside.len() as i64,
        coverage_pct: coverage(integral.covered_ms, bucket),
    })
}

/// Battery energy and SOC of packs over windows: (charge kWh, discharge kWh, SOC stat), `None`
/// when no pack had data there.
pub(super) fn pack_windows(
    packs: &BTreeMap<String, Series<BatteryBankSample>>,
    windows: &[(&str, i64, i64)],
    limits: &energy::Limits,
) -> Option<(Option<f64>, Option<f64>, Stat)> {
    let mut charge = None;
    let mut discharge = None;
    let mut soc = Stat::default();
    let mut any = false;
    for (pack_id, from, to) in windows {
        let Some(series) = packs.get(*pack_id) else {
            continue;
        };
        let integral = energy::integrate(&series.points, *from, *to, limits);
        let inside = series.within(*from, *to, |s| s.ts);
        if integral.covered_ms == 0 && inside.is_empty() {
            continue;
        }
        any = true;
        add(&mut charge, kwh(integral.energy_wh[CHARGE]));
        add(&mut discharge, kwh(integral.energy_wh[DISCHARGE]));
        for s in inside {
            soc.add(s.soc_pct);
        }
    }
    any.then_some((charge, discharge, soc))
}

/// Where each pack's battery array was attached during [from, to): (pack, inverter array, from, to).
pub(super) fn pack_attachments<'a>(
    packs: &'a [BatteryPack],
    attachments: &'a [BatteryArrayAttachment],
    from: i64,
    to: i64,
) -> Vec<(&'a str, &'a str, i64, i64)> {
    let mut windows = Vec::new();
    for attachment in attachments {
        let start = attachment.attached_since.max(from);
        let end = attachment.detached_at.unwrap_or(i64::MAX).min(to);
        if start >= end {
            continue;
        }
        for pack in packs {
            if pack.battery_array_id.as_deref() == Some(&attachment.battery_array_id) {
                windows.push((
                    pack.pack_id.as_str(),
                    attachment.inverter_array_id.as_str(),
                    start,
                    end,
                ));
            }
        }
    }
    windows.sort();
    windows
}

/// Computes every hour row of the system for `hours` (contiguous, in order) from raw samples.
pub(super) fn hour_rows(
    conn: &mut DbConnection,
    structure: &SystemStructure,
    hours: &[Bucket],
    settings: Settings,
    at: i64,
) -> Result<RollupRows, DbError> {
    let mut rows = RollupRows::default();
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        return Ok(rows);
    };
    let limits = &settings.limits();
    let system_id = structure.system.system_id.as_str();
    let installation = &structure.installation;
    // The samples inside the run and one gap around it; a device with none in a margin gets its
    // nearest sample on that side looked up (it may still close an interval into the run).
    let (from, to) = (first.start - limits.gap_ms, last.end + limits.gap_ms);
    let (mut energy, mut banks, mut meters) = store::load_samples(conn, system_id, from, to)?;
    let lacking = |ids: Vec<&String>, times: &dyn Fn(&str) -> Vec<i64>| {
        let mut before = Vec::new();
        let mut after = Vec::new();
        for id in ids {
            let times = times(id);
            if !times.iter().any(|ts| *ts < first.start) {
                before.push(id.clone());
            }
            if !times.iter().any(|ts| *ts >= last.end) {
                after.push(id.clone());
            }
        }
        (before, after)
    };
    let (inverters_before, inverters_after) = lacking(
        installation
            .inverters
            .iter()
            .map(|i| &i.inverter_id)
            .collect(),
        &|id| {
            energy
                .iter()
                .filter(|s| s.inverter_id == id)
                .map(|s| s.ts)
                .collect()
        },
    );
    let (packs_before, packs_after) = lacking(
        installation.packs.iter().map(|p| &p.pack_id).collect(),
        &|id| {
            banks
                .iter()
                .filter(|s| s.pack_id == id)
                .map(|s| s.ts)
                .collect()
        },
    );
    let (meters_before, meters_after) = lacking(
        installation.meters.iter().map(|m| &m.meter_id).collect(),
        &|id| {
            meters
                .iter()
                .filter(|s| s.meter_id == id)
                .map(|s| s.ts)
                .collect()
        },
    );
    let (e, b, m) = store::edge_samples(
        conn,
        (&inverters_before, &packs_before, &meters_before),
        (&inverters_after, &packs_after, &meters_after),
        from,
        to,
        limits.counter_gap_ms,
    )?;
    energy.extend(e);
    banks.extend(b);
    meters.extend(m);
    energy.sort_by(|a, b| (&a.inverter_id, a.ts).cmp(&(&b.inverter_id, b.ts)));
    banks.sort_by(|a, b| (&a.pack_id, a.ts).cmp(&(&b.pack_id, b.ts)));
    meters.sort_by(|a, b| (&a.meter_id, a.ts).cmp(&(&b.meter_id, b.ts)));
    let inverters = group(energy, |s| &s.inverter_id, inverter_point);
    let packs = group(banks, |s| &s.pack_id, pack_point);
    let meter_series = group(meters, |s| &s.meter_id, meter_point);
    let array_of: BTreeMap<&str, &str> = installation
        .inverters
        .iter()
        .map(|i| (i.inverter_id.as_str(), i.array_id.as_str()))
        .collect();

    let system_grid: BTreeSet<&str> = installation
        .meters
        .iter()
        .filter(|m| m.is_system_grid())
        .map(|m| m.meter_id.as_str())
        .collect();
    for bucket in hours {
        let hour = bucket.hour.unwrap_or_default();
        // Inverters.
        let mut by_array: BTreeMap<&str, Vec<Figures>> = BTreeMap::new();
        for (inverter_id, series) in &inverters {
            let Some(figures) = inverter_figures(series, bucket, limits) else {
                continue;
            };
            let array_id = array_of.get(inverter_id.as_str()).copied();
            rows.inverter_hours.push(energy_row!(
                InverterHour {
                    inverter_id: inverter_id.clone(),
                    hour_start: hour,
                    array_id: array_id.map(str::to_owned),
                    system_id: system_id.to_owned(),
                },
                bucket,
                &figures,
                at
            ));
            if let Some(array_id) = array_id {
                by_array.entry(array_id).or_default().push(figures);
            }
        }
        // Packs.
        for (pack_id, series) in &packs {
            if let Some(row) = pack_hour(structure, pack_id, series, bucket, limits, at) {
                rows.pack_hours.push(row);
            }
        }
        // Meters; the system-level grid meters' energy, when they have some, is the system's grid.
        let mut grid: Option<[Option<f64>; 2]> = None;
        for (meter_id, series) in &meter_series {
            if let Some(row) = meter_hour(structure, meter_id, series, bucket, limits, at) {
                if system_grid.contains(meter_id.as_str()) && row.import_kwh.is_some() {
                    let [import, export] = grid.get_or_insert([None, None]);
                    add(import, row.import_kwh);
                    add(export, row.export_kwh);
                }
                rows.meter_hours.push(row);
            }
        }
        // Arrays: their inverters, and the packs attached to them at the time.
        let windows = pack_attachments(
            &installation.packs,
            &installation.attachments,
            bucket.start,
            bucket.end,
        );
        let mut array_figures: Vec<Figures> = Vec::new();
        for array in &installation.arrays {
            let own: Vec<(&str, i64, i64)> = windows
                .iter()
                .filter(|(_, inverter_array, _, _)| *inverter_array == array.array_id)
                .map(|(pack, _, from, to)| (*pack, *from, *to))
                .collect();
            let battery = pack_windows(&packs, &own, limits);
            let inverter_sum = by_array
                .get(array.array_id.as_str())
                .and_then(|parts| sum_figures(parts.iter()));
            let figures = match (inverter_sum, &battery) {
                (Some(figures), _) => with_battery(figures, battery),
                (None, Some(_)) => with_battery(Figures::default(), battery),
                (None, None) => continue,
            };
            rows.array_hours.push(energy_row!(
                ArrayHour {
                    array_id: array.array_id.clone(),
                    hour_start: hour,
                    system_id: system_id.to_owned(),
                },
                bucket,
                &figures,
                at
            ));
            array_figures.push(figures);
        }
        // The system: its arrays, with grid energy from system-level grid meters when they have it.
        if let Some(mut figures) = sum_figures(array_figures.iter()) {
            if let Some([import, export]) = grid {
                figures.kwh[IMPORT] = import;
                figures.kwh[EXPORT] = export;
            }
            let all: Vec<(&str, i64, i64)> = packs
                .keys()
                .map(|pack| (pack.as_str(), bucket.start, bucket.end))
                .collect();
            if let Some((_, _, soc)) = pack_windows(&packs, &all, limits)
                && soc.count > 0
            {
                figures.soc_min = soc.min;
                figures.soc_max = soc.max;
                figures.soc_avg = soc.mean();
            }
            rows.system_hours.push(energy_row!(
                SystemHour {
                    system_id: system_id.to_owned(),
                    hour_start: hour,
                },
                bucket,
                &figures,
                at
            ));
        }
    }
    Ok(rows)
}

/// A device's power in a bucket (both directions apart) and other measured values.
struct PowerStats<const N: usize> {
    power: Stat,
    /// Power > 0: discharging, importing.
    positive: Stat,
    /// Power < 0, as a positive number: charging, exporting.
    negative: Stat,
    other: [Stat; N],
}

fn power_stats<S, const N: usize>(
    samples: &[S],
    power: fn(&S) -> Option<f64>,
    other: [fn(&S) -> Option<f64>; N],
) -> PowerStats<N> {
    let mut stats = PowerStats {
        power: Stat::default(),
        positive: Stat::default(),
        negative: Stat::default(),
        other: std::array::from_fn(|_| Stat::default()),
    };
    for sample in samples {
        let value = power(sample);
        stats.power.add(value);
        let (positive, negative) = split(value);
        stats.positive.add(positive);
        stats.negative.add(negative);
        for (stat, read) in stats.other.iter_mut().zip(other) {
            stat.add(read(sample));
        }
    }
    stats
}

pub(super) fn pack_hour(
    structure: &SystemStructure,
    pack_id: &str,
    series: &Series<BatteryBankSample>,
    bucket: &Bucket,
    limits: &energy::Limits,
    at: i64,
) -> Option<store::PackHour> {
    let (integral, inside) = bucket_data(series, bucket, limits, |s| s.ts)?;
    let PowerStats {
        power,
        positive: discharge,
        negative: charge,
        other: [voltage, current, temperature, soc],
    } = power_stats(
        inside,
        |s| s.power_w,
        [
            |s| s.voltage_v,
            |s| s.current_a,
            |s| s.temperature_c,
            |s| s.soc_pct,
        ],
    );
    let pack = structure
        .installation
        .packs
        .iter()
        .find(|p| p.pack_id == pack_id);
    Some(store::PackHour {
        pack_id: pack_id.to_owned(),
        hour_start: bucket.hour.unwrap_or_default(),
        bucket_start: bucket.start,
        bucket_end: bucket.end,
        date: bucket.date.clone(),
        battery_array_id: pack.and_then(|p| p.battery_array_id.clone()),
        system_id: structure.system.system_id.clone(),
        charge_kwh: kwh(integral.energy_wh[CHARGE]),
        discharge_kwh: kwh(integral.energy_wh[DISCHARGE]),
        avg_power_w: power.mean(),
        peak_charge_w: charge.max,
        peak_discharge_w: discharge.max,
        avg_voltage_v: voltage.mean(),
        avg_current_a: current.mean(),
        avg_temperature_c: temperature.mean(),
        max_temperature_c: temperature.max,
        soc_min_pct: soc.min,
        soc_avg_pct: soc.mean(),
        soc_max_pct: soc.max,
        sample_count: inside.len() as i64,
        coverage_pct: coverage(integral.covered_ms, bucket),
        updated_at: at,
        source: store::FROM_SAMPLES.to_owned(),
    })
}

pub(super) fn meter_hour(
    structure: &SystemStructure,
    meter_id: &str,
    series: &Series<MeterSample>,
    bucket: &Bucket,
    limits: &energy::Limits,
    at: i64,
) -> Option<store::MeterHour> {
    let (integral, inside) = bucket_data(series, bucket, limits, |s| s.ts)?;
    let PowerStats {
        power,
        positive: import,
        negative: export,
        other: [voltage, current, frequency],
    } = power_stats(
        inside,
        |s| s.power_w,
        [|s| s.voltage_v, |s| s.current_a, |s| s.frequency_hz],
    );
    let import_kwh = kwh(integral.energy_wh[IMPORT]);
    let export_kwh = kwh(integral.energy_wh[EXPORT]);
    let meter = structure
        .installation
        .meters
        .iter()
        .find(|m| m.meter_id == meter_id);
    Some(store::MeterHour {
        meter_id: meter_id.to_owned(),
        hour_start: bucket.hour.unwrap_or_default(),
        bucket_start: bucket.start,
        bucket_end: bucket.end,
        date: bucket.date.clone(),
        system_id: structure.system.system_id.clone(),
        array_id: meter.and_then(|m| m.array_id.clone()),
        import_kwh,
        export_kwh,
        net_kwh: net_kwh(import_kwh, export_kwh),
        avg_power_w: power.mean(),
        peak_import_w: import.max,
        peak_export_w: export.max,
        avg_voltage_v: voltage.mean(),
        avg_current_a: current.mean(),
        avg_frequency_hz: frequency.mean(),
        sample_count: inside.len() as i64,
        coverage_pct: coverage(integral.covered_ms, bucket),
        updated_at: at,
        source: store::FROM_SAMPLES.to_owned(),
    })
}
