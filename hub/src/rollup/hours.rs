//! Hour rows: every device's row of a local hour from its hour state (`device_hours`), and the
//! arrays and the system combined from their devices' rows of the hour (an array's battery from
//! the packs attached to it at the time). A recompute builds the states from raw samples here;
//! the roller keeps them (`incremental`); both make the rows with the same functions below.

use std::collections::{BTreeMap, BTreeSet};

use super::device_hours::{DeviceSample, HourState, STATS};
use super::energy::{CHARGE, DISCHARGE, EXPORT, IMPORT, LOAD, Point, SOLAR, split};
use super::figures::{Figures, coverage, net_kwh, sum_figures};
use super::{Settings, SystemStructure};
use crate::catalog::{BatteryArrayAttachment, BatteryPack};
use crate::db::rollups::{self as store, RollupRows};
use crate::db::rollups::{EnergyColumns as _, energy_row};
use crate::db::samples::{BatteryBankSample, EnergySample, MeterSample};
use crate::db::{DbConnection, DbError};
use crate::local_time::Bucket;
use crate::values::{add, kwh, max, min};

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

/// An inverter sample for its hour's statistics: PV, load, grid, import, export, battery, SOC.
pub(super) fn inverter_sample(s: &EnergySample) -> DeviceSample {
    let (import, export) = split(s.grid_power_w);
    DeviceSample {
        point: inverter_point(s),
        values: [
            s.pv_power_w,
            s.load_power_w,
            s.grid_power_w,
            import,
            export,
            s.battery_power_w,
            s.battery_soc_pct,
        ],
    }
}

/// A pack sample: power, discharge (power > 0), charge (power < 0, positive), voltage, current,
/// temperature, SOC.
pub(super) fn pack_sample(s: &BatteryBankSample) -> DeviceSample {
    let (discharge, charge) = split(s.power_w);
    DeviceSample {
        point: pack_point(s),
        values: [
            s.power_w,
            discharge,
            charge,
            s.voltage_v,
            s.current_a,
            s.temperature_c,
            s.soc_pct,
        ],
    }
}

/// A meter sample: power, import (power > 0), export (power < 0, positive), voltage, current,
/// frequency.
pub(super) fn meter_sample(s: &MeterSample) -> DeviceSample {
    let (import, export) = split(s.power_w);
    let mut values = [None; STATS];
    values[..6].copy_from_slice(&[
        s.power_w,
        import,
        export,
        s.voltage_v,
        s.current_a,
        s.frequency_hz,
    ]);
    DeviceSample {
        point: meter_point(s),
        values,
    }
}

/// Groups samples (sorted by device, then time) by device.
pub(super) fn by_device<S>(
    samples: Vec<S>,
    key: impl Fn(&S) -> &str,
    convert: impl Fn(&S) -> DeviceSample,
) -> BTreeMap<String, Vec<DeviceSample>> {
    let mut series: BTreeMap<String, Vec<DeviceSample>> = BTreeMap::new();
    for sample in &samples {
        series
            .entry(key(sample).to_owned())
            .or_default()
            .push(convert(sample));
    }
    series
}

/// An inverter's figures in an hour, from its state; `None` when the hour has no data.
pub(super) fn inverter_figures(state: &HourState, bucket: &Bucket) -> Option<Figures> {
    if !state.has_data() {
        return None;
    }
    let [pv, load, grid, import, export, battery, soc] = &state.stats;
    Some(Figures {
        kwh: state.integral.energy_wh.map(kwh),
        avg_pv: pv.mean(),
        peak_pv: pv.max(),
        avg_load: load.mean(),
        peak_load: load.max(),
        avg_grid: grid.mean(),
        peak_import: import.max(),
        peak_export: export.max(),
        avg_battery: battery.mean(),
        soc_min: soc.min(),
        soc_avg: soc.mean(),
        soc_max: soc.max(),
        sample_count: state.inside,
        coverage_pct: coverage(state.integral.covered_ms, bucket),
    })
}

/// An inverter's hour row from its state.
pub(super) fn inverter_hour(
    structure: &SystemStructure,
    inverter_id: &str,
    state: &HourState,
    bucket: &Bucket,
    at: i64,
) -> Option<store::InverterHour> {
    let figures = inverter_figures(state, bucket)?;
    let array_id = structure
        .installation
        .inverters
        .iter()
        .find(|i| i.inverter_id == inverter_id)
        .map(|i| i.array_id.clone());
    Some(energy_row!(
        InverterHour {
            inverter_id: inverter_id.to_owned(),
            hour_start: bucket.hour.unwrap_or_default(),
            array_id: array_id,
            system_id: structure.system.system_id.clone(),
        },
        bucket,
        &figures,
        at
    ))
}

/// What packs give an inverter array (or the system) in an hour: battery energy and SOC.
#[derive(Debug, Clone, Default)]
pub(super) struct Battery {
    charge: Option<f64>,
    discharge: Option<f64>,
    soc_min: Option<f64>,
    soc_max: Option<f64>,
    /// SOC means weighted by their sample counts, and the counts.
    soc_weighted: f64,
    soc_samples: i64,
    any: bool,
}

impl Battery {
    /// Adds one pack's share: its charge and discharge energy, SOC range and mean over `samples`.
    fn add(
        &mut self,
        charge: Option<f64>,
        discharge: Option<f64>,
        soc: [Option<f64>; 3],
        samples: i64,
    ) {
        self.any = true;
        add(&mut self.charge, charge);
        add(&mut self.discharge, discharge);
        self.soc_min = min(self.soc_min, soc[0]);
        self.soc_max = max(self.soc_max, soc[2]);
        if let Some(avg) = soc[1] {
            self.soc_weighted += avg * samples as f64;
            self.soc_samples += samples;
        }
    }

    fn soc_avg(&self) -> Option<f64> {
        (self.soc_samples > 0).then(|| self.soc_weighted / self.soc_samples as f64)
    }
}

/// Figures with the battery's energy and SOC in place of the inverters' own.
fn with_battery(mut figures: Figures, battery: &Battery) -> Figures {
    figures.kwh[CHARGE] = battery.charge;
    figures.kwh[DISCHARGE] = battery.discharge;
    if battery.soc_min.is_some() || battery.soc_avg().is_some() {
        figures.soc_min = battery.soc_min;
        figures.soc_max = battery.soc_max;
        figures.soc_avg = battery.soc_avg();
    }
    figures
}

/// A pack's share of a window shorter than its hour (an attachment that began or ended inside
/// the hour): from the pack's samples around the window; `None` when the pack had no data there.
pub(super) type PartialWindow<'a> = &'a dyn Fn(&str, i64, i64) -> Option<store::PackHour>;

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
    let installation = &structure.installation;
    // The samples inside the run and one gap around it; a device with none in a margin gets its
    // nearest sample on that side looked up (it may still close an interval into the run).
    let (from, to) = (first.start - limits.gap_ms, last.end + limits.gap_ms);
    let (mut energy, mut banks, mut meters) =
        store::load_samples(conn, &structure.system.system_id, from, to)?;
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
    let inverters = by_device(energy, |s| &s.inverter_id, inverter_sample);
    let packs = by_device(banks, |s| &s.pack_id, pack_sample);
    let meter_series = by_device(meters, |s| &s.meter_id, meter_sample);

    for bucket in hours {
        let mut hour = RollupRows::default();
        for (inverter_id, samples) in &inverters {
            let state = HourState::of(samples, bucket.start, bucket.end, limits);
            hour.inverter_hours
                .extend(inverter_hour(structure, inverter_id, &state, bucket, at));
        }
        for (pack_id, samples) in &packs {
            let state = HourState::of(samples, bucket.start, bucket.end, limits);
            hour.pack_hours
                .extend(pack_hour(structure, pack_id, &state, bucket, at));
        }
        for (meter_id, samples) in &meter_series {
            let state = HourState::of(samples, bucket.start, bucket.end, limits);
            hour.meter_hours
                .extend(meter_hour(structure, meter_id, &state, bucket, at));
        }
        let partial = |pack_id: &str, from: i64, to: i64| {
            let samples = packs.get(pack_id)?;
            let state = HourState::of(samples, from, to, limits);
            let window = Bucket {
                start: from,
                end: to,
                ..bucket.clone()
            };
            pack_hour(structure, pack_id, &state, &window, at)
        };
        let (arrays, system) = level_rows(structure, bucket, &hour, &partial, at);
        rows.inverter_hours.append(&mut hour.inverter_hours);
        rows.pack_hours.append(&mut hour.pack_hours);
        rows.meter_hours.append(&mut hour.meter_hours);
        rows.array_hours.extend(arrays);
        rows.system_hours.extend(system);
    }
    Ok(rows)
}

/// The arrays' and the system's rows of one hour, from the rows of its devices (`hour`: every
/// inverter, pack and meter row of the hour, each kind in device order). An inverter array sums
/// its inverters, with battery energy and SOC from the packs attached to it during the hour (a
/// window shorter than the hour is made by `partial`); the system sums its arrays, with grid
/// energy from its system-level grid meters when they have some and SOC from every pack.
pub(super) fn level_rows(
    structure: &SystemStructure,
    bucket: &Bucket,
    hour: &RollupRows,
    partial: PartialWindow<'_>,
    at: i64,
) -> (Vec<store::ArrayHour>, Option<store::SystemHour>) {
    let installation = &structure.installation;
    let system_id = structure.system.system_id.as_str();
    let hour_of_day = bucket.hour.unwrap_or_default();
    let mut by_array: BTreeMap<&str, Vec<Figures>> = BTreeMap::new();
    for row in &hour.inverter_hours {
        if let Some(array_id) = row.array_id.as_deref() {
            by_array.entry(array_id).or_default().push(row.figures());
        }
    }
    let pack_rows: BTreeMap<&str, &store::PackHour> = hour
        .pack_hours
        .iter()
        .map(|row| (row.pack_id.as_str(), row))
        .collect();
    let share = |battery: &mut Battery, row: &store::PackHour| {
        battery.add(
            row.charge_kwh,
            row.discharge_kwh,
            [row.soc_min_pct, row.soc_avg_pct, row.soc_max_pct],
            row.sample_count,
        );
    };
    let windows = pack_attachments(
        &installation.packs,
        &installation.attachments,
        bucket.start,
        bucket.end,
    );
    let mut arrays = Vec::new();
    let mut array_figures: Vec<Figures> = Vec::new();
    for array in &installation.arrays {
        let mut battery = Battery::default();
        for (pack_id, _, from, to) in windows
            .iter()
            .filter(|(_, inverter_array, _, _)| *inverter_array == array.array_id)
        {
            if (*from, *to) == (bucket.start, bucket.end) {
                if let Some(row) = pack_rows.get(pack_id) {
                    share(&mut battery, row);
                }
            } else if let Some(row) = partial(pack_id, *from, *to) {
                share(&mut battery, &row);
            }
        }
        let inverter_sum = by_array
            .get(array.array_id.as_str())
            .and_then(|parts| sum_figures(parts.iter()));
        let figures = match (inverter_sum, battery.any) {
            (Some(figures), true) => with_battery(figures, &battery),
            (Some(figures), false) => figures,
            (None, true) => with_battery(Figures::default(), &battery),
            (None, false) => continue,
        };
        arrays.push(energy_row!(
            ArrayHour {
                array_id: array.array_id.clone(),
                hour_start: hour_of_day,
                system_id: system_id.to_owned(),
            },
            bucket,
            &figures,
            at
        ));
        array_figures.push(figures);
    }
    let Some(mut figures) = sum_figures(array_figures.iter()) else {
        return (arrays, None);
    };
    let system_grid: BTreeSet<&str> = installation.system_grid_meters().collect();
    let mut grid: Option<[Option<f64>; 2]> = None;
    for row in &hour.meter_hours {
        if system_grid.contains(row.meter_id.as_str()) && row.import_kwh.is_some() {
            let [import, export] = grid.get_or_insert([None, None]);
            add(import, row.import_kwh);
            add(export, row.export_kwh);
        }
    }
    if let Some([import, export]) = grid {
        figures.kwh[IMPORT] = import;
        figures.kwh[EXPORT] = export;
    }
    let mut packs = Battery::default();
    for row in &hour.pack_hours {
        share(&mut packs, row);
    }
    if packs.soc_samples > 0 {
        figures.soc_min = packs.soc_min;
        figures.soc_max = packs.soc_max;
        figures.soc_avg = packs.soc_avg();
    }
    let system = energy_row!(
        SystemHour {
            system_id: system_id.to_owned(),
            hour_start: hour_of_day,
        },
        bucket,
        &figures,
        at
    );
    (arrays, Some(system))
}

/// A pack's hour row from its state (or a window's, for an attachment that began or ended inside
/// the hour); `None` when it has no data there.
pub(super) fn pack_hour(
    structure: &SystemStructure,
    pack_id: &str,
    state: &HourState,
    bucket: &Bucket,
    at: i64,
) -> Option<store::PackHour> {
    if !state.has_data() {
        return None;
    }
    let [power, discharge, charge, voltage, current, temperature, soc] = &state.stats;
    let pack = structure
        .installation
        .packs
        .iter()
        .find(|p| p.pack_id == pack_id);
    let energy = &state.integral.energy_wh;
    Some(store::PackHour {
        pack_id: pack_id.to_owned(),
        hour_start: bucket.hour.unwrap_or_default(),
        bucket_start: bucket.start,
        bucket_end: bucket.end,
        date: bucket.date.clone(),
        battery_array_id: pack.and_then(|p| p.battery_array_id.clone()),
        system_id: structure.system.system_id.clone(),
        charge_kwh: kwh(energy[CHARGE]),
        discharge_kwh: kwh(energy[DISCHARGE]),
        avg_power_w: power.mean(),
        peak_charge_w: charge.max(),
        peak_discharge_w: discharge.max(),
        avg_voltage_v: voltage.mean(),
        avg_current_a: current.mean(),
        avg_temperature_c: temperature.mean(),
        max_temperature_c: temperature.max(),
        soc_min_pct: soc.min(),
        soc_avg_pct: soc.mean(),
        soc_max_pct: soc.max(),
        sample_count: state.inside,
        coverage_pct: coverage(state.integral.covered_ms, bucket),
        updated_at: at,
        source: store::FROM_SAMPLES.to_owned(),
    })
}

/// A meter's hour row from its state; `None` when the hour has no data.
pub(super) fn meter_hour(
    structure: &SystemStructure,
    meter_id: &str,
    state: &HourState,
    bucket: &Bucket,
    at: i64,
) -> Option<store::MeterHour> {
    if !state.has_data() {
        return None;
    }
    let [power, import, export, voltage, current, frequency, _] = &state.stats;
    let import_kwh = kwh(state.integral.energy_wh[IMPORT]);
    let export_kwh = kwh(state.integral.energy_wh[EXPORT]);
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
        peak_import_w: import.max(),
        peak_export_w: export.max(),
        avg_voltage_v: voltage.mean(),
        avg_current_a: current.mean(),
        avg_frequency_hz: frequency.mean(),
        sample_count: state.inside,
        coverage_pct: coverage(state.integral.covered_ms, bucket),
        updated_at: at,
        source: store::FROM_SAMPLES.to_owned(),
    })
}
