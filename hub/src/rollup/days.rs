//! Day rows, from the hour rows stored for the day: energies summed, averages weighted by
//! samples, peaks the highest, coverage over the day's length, cycles over the packs' capacity. A
//! day of the old app's hours alone is left as it is.

use std::collections::{BTreeMap, BTreeSet};

use super::SystemStructure;
use super::energy::{DISCHARGE, QUANTITIES};
use super::figures::Figures;
use super::hours::pack_attachments;
use crate::catalog::{BatteryPack, Installation};
use crate::db::rollups::energy_row;
use crate::db::rollups::{self as store, Level, RollupRows};
use crate::db::{DbConnection, DbError};
use crate::local_time::Bucket;
use crate::values::{add, max, min};

/// An energy day (inverter, array, system) folded hour by hour in time order: what its row is
/// made of (energies summed, averages weighted by samples, peaks the highest, coverage over the
/// day's length). Folding the closed hours once and the open hour at each pass gives the row
/// folding every hour gives, bit for bit (the roller keeps a device's fold of its closed hours).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct EnergyDay {
    total: Figures,
    weights: [f64; 5],
    weighted: [f64; 5],
    covered: f64,
    hours: usize,
    legacy: usize,
}

impl Default for EnergyDay {
    fn default() -> Self {
        EnergyDay {
            total: Figures::default(),
            weights: [0.0; 5],
            weighted: [0.0; 5],
            covered: 0.0,
            hours: 0,
            legacy: 0,
        }
    }
}

impl EnergyDay {
    pub(super) fn add<R: store::EnergyColumns>(&mut self, hour: &R) {
        let figures = &hour.figures();
        let span = hour.span_ms();
        let total = &mut self.total;
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
                self.weighted[i] += avg * n;
                self.weights[i] += n;
            }
        }
        total.peak_pv = max(total.peak_pv, figures.peak_pv);
        total.peak_load = max(total.peak_load, figures.peak_load);
        total.peak_import = max(total.peak_import, figures.peak_import);
        total.peak_export = max(total.peak_export, figures.peak_export);
        total.soc_min = min(total.soc_min, figures.soc_min);
        total.soc_max = max(total.soc_max, figures.soc_max);
        total.sample_count += figures.sample_count;
        self.covered += figures.coverage_pct * span as f64;
        self.hours += 1;
        if hour.source() == store::FROM_LEGACY {
            self.legacy += 1;
        }
    }

    pub(super) fn figures(&self, day: &Bucket) -> Figures {
        let mut total = self.total;
        let mean = |i: usize| (self.weights[i] > 0.0).then(|| self.weighted[i] / self.weights[i]);
        total.avg_pv = mean(0);
        total.avg_load = mean(1);
        total.avg_grid = mean(2);
        total.avg_battery = mean(3);
        total.soc_avg = mean(4);
        total.coverage_pct = self.covered / (day.end - day.start) as f64;
        total
    }

    /// A day is the old app's when every hour it sums is; else it is computed.
    pub(super) fn source(&self) -> String {
        legacy_or_samples(self.hours, self.legacy)
    }
}

fn legacy_or_samples(hours: usize, legacy: usize) -> String {
    match hours == legacy {
        true => store::FROM_LEGACY.to_owned(),
        false => store::FROM_SAMPLES.to_owned(),
    }
}

/// A day's figures from its hour rows.
pub(super) fn day_figures<R: store::EnergyColumns>(hours: &[&R], day: &Bucket) -> Figures {
    let mut fold = EnergyDay::default();
    for hour in hours {
        fold.add(*hour);
    }
    fold.figures(day)
}

/// A pack's day folded hour by hour in time order (as [`EnergyDay`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct PackDay {
    charge: Option<f64>,
    discharge: Option<f64>,
    /// (sum of mean × samples, samples) of the average power, voltage, current, temperature, SOC.
    means: [(f64, f64); 5],
    peak_charge: Option<f64>,
    peak_discharge: Option<f64>,
    max_temperature: Option<f64>,
    soc_min: Option<f64>,
    soc_max: Option<f64>,
    samples: i64,
    covered: f64,
    hours: usize,
    legacy: usize,
}

/// Adds an hour's means to a day's (sum of mean × samples, samples), each weighted by the hour's
/// samples.
fn add_means<const N: usize>(day: &mut [(f64, f64); N], hour: [Option<f64>; N], samples: i64) {
    for ((sum, weight), mean) in day.iter_mut().zip(hour) {
        if let Some(mean) = mean {
            *sum += mean * samples as f64;
            *weight += samples as f64;
        }
    }
}

impl PackDay {
    pub(super) fn add(&mut self, h: &store::PackHour) {
        add(&mut self.charge, h.charge_kwh);
        add(&mut self.discharge, h.discharge_kwh);
        add_means(
            &mut self.means,
            [
                h.avg_power_w,
                h.avg_voltage_v,
                h.avg_current_a,
                h.avg_temperature_c,
                h.soc_avg_pct,
            ],
            h.sample_count,
        );
        self.peak_charge = max(self.peak_charge, h.peak_charge_w);
        self.peak_discharge = max(self.peak_discharge, h.peak_discharge_w);
        self.max_temperature = max(self.max_temperature, h.max_temperature_c);
        self.soc_min = min(self.soc_min, h.soc_min_pct);
        self.soc_max = max(self.soc_max, h.soc_max_pct);
        self.samples += h.sample_count;
        self.covered += h.coverage_pct * (h.bucket_end - h.bucket_start) as f64;
        self.hours += 1;
        if h.source == store::FROM_LEGACY {
            self.legacy += 1;
        }
    }

    /// The day row, with the ids of its last hour (`last`).
    pub(super) fn row(
        &self,
        installation: &Installation,
        last: &store::PackHour,
        day: &Bucket,
        at: i64,
    ) -> store::PackDay {
        let mean = |i: usize| {
            let (sum, weight) = self.means[i];
            (weight > 0.0).then(|| sum / weight)
        };
        let pack = installation
            .packs
            .iter()
            .find(|p| p.pack_id == last.pack_id);
        store::PackDay {
            pack_id: last.pack_id.clone(),
            cycles: pack.and_then(|p| cycles(self.discharge, &[p])),
            bucket_start: day.start,
            bucket_end: day.end,
            date: day.date.clone(),
            battery_array_id: last.battery_array_id.clone(),
            system_id: last.system_id.clone(),
            charge_kwh: self.charge,
            discharge_kwh: self.discharge,
            avg_power_w: mean(0),
            peak_charge_w: self.peak_charge,
            peak_discharge_w: self.peak_discharge,
            avg_voltage_v: mean(1),
            avg_current_a: mean(2),
            avg_temperature_c: mean(3),
            max_temperature_c: self.max_temperature,
            soc_min_pct: self.soc_min,
            soc_avg_pct: mean(4),
            soc_max_pct: self.soc_max,
            sample_count: self.samples,
            coverage_pct: self.covered / (day.end - day.start) as f64,
            updated_at: at,
            source: legacy_or_samples(self.hours, self.legacy),
        }
    }
}

/// A meter's day folded hour by hour in time order (as [`EnergyDay`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct MeterDay {
    import: Option<f64>,
    export: Option<f64>,
    net: Option<f64>,
    /// (sum of mean × samples, samples) of the average power, voltage, current, frequency.
    means: [(f64, f64); 4],
    peak_import: Option<f64>,
    peak_export: Option<f64>,
    samples: i64,
    covered: f64,
    hours: usize,
    legacy: usize,
}

impl MeterDay {
    pub(super) fn add(&mut self, h: &store::MeterHour) {
        add(&mut self.import, h.import_kwh);
        add(&mut self.export, h.export_kwh);
        add(&mut self.net, h.net_kwh);
        add_means(
            &mut self.means,
            [
                h.avg_power_w,
                h.avg_voltage_v,
                h.avg_current_a,
                h.avg_frequency_hz,
            ],
            h.sample_count,
        );
        self.peak_import = max(self.peak_import, h.peak_import_w);
        self.peak_export = max(self.peak_export, h.peak_export_w);
        self.samples += h.sample_count;
        self.covered += h.coverage_pct * (h.bucket_end - h.bucket_start) as f64;
        self.hours += 1;
        if h.source == store::FROM_LEGACY {
            self.legacy += 1;
        }
    }

    /// The day row, with the ids of its last hour (`last`).
    pub(super) fn row(&self, last: &store::MeterHour, day: &Bucket, at: i64) -> store::MeterDay {
        let mean = |i: usize| {
            let (sum, weight) = self.means[i];
            (weight > 0.0).then(|| sum / weight)
        };
        store::MeterDay {
            meter_id: last.meter_id.clone(),
            bucket_start: day.start,
            bucket_end: day.end,
            date: day.date.clone(),
            system_id: last.system_id.clone(),
            array_id: last.array_id.clone(),
            import_kwh: self.import,
            export_kwh: self.export,
            net_kwh: self.net,
            avg_power_w: mean(0),
            peak_import_w: self.peak_import,
            peak_export_w: self.peak_export,
            avg_voltage_v: mean(1),
            avg_current_a: mean(2),
            avg_frequency_hz: mean(3),
            sample_count: self.samples,
            coverage_pct: self.covered / (day.end - day.start) as f64,
            updated_at: at,
            source: legacy_or_samples(self.hours, self.legacy),
        }
    }
}

/// An inverter's day row from its fold, with the ids of its last hour (`last`).
pub(super) fn inverter_day(
    fold: &EnergyDay,
    last: &store::InverterHour,
    day: &Bucket,
    at: i64,
) -> store::InverterDay {
    let figures = fold.figures(day);
    let mut row = energy_row!(
        InverterDay {
            inverter_id: last.inverter_id.clone(),
            array_id: last.array_id.clone(),
            system_id: last.system_id.clone(),
            battery_cycles: None,
        },
        day,
        &figures,
        at
    );
    row.source = fold.source();
    row
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
    for own in inverters.values() {
        let mut fold = EnergyDay::default();
        for hour in own {
            fold.add(*hour);
        }
        if let Some(last) = own.last() {
            rows.inverter_days.push(inverter_day(&fold, last, day, at));
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
    for own in packs.values() {
        rows.pack_days.extend(pack_day(installation, own, day, at));
    }
    let mut meters: BTreeMap<&str, Vec<&store::MeterHour>> = BTreeMap::new();
    for row in &hours.meter_hours {
        meters.entry(&row.meter_id).or_default().push(row);
    }
    for own in meters.values() {
        rows.meter_days.extend(meter_day(own, day, at));
    }
    rows
}

pub(super) fn pack_day(
    installation: &Installation,
    hours: &[&store::PackHour],
    day: &Bucket,
    at: i64,
) -> Option<store::PackDay> {
    let mut fold = PackDay::default();
    for hour in hours {
        fold.add(hour);
    }
    Some(fold.row(installation, hours.last()?, day, at))
}

pub(super) fn meter_day(
    hours: &[&store::MeterHour],
    day: &Bucket,
    at: i64,
) -> Option<store::MeterDay> {
    let mut fold = MeterDay::default();
    for hour in hours {
        fold.add(hour);
    }
    Some(fold.row(hours.last()?, day, at))
}
