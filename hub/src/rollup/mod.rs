//! Energy rollups (DESIGN §3.3): hourly and daily rows per inverter, array, system, battery pack
//! and meter, in local buckets of the system's timezone.
//!
//! Rolling a run of hours recomputes every row of those hours from raw samples (loaded one gap
//! beyond the run on each side, all `energy::integrate` can reach), then the day rows of the days
//! they belong to from the hour rows. The incremental path (ingest leaves `rollup_pending` ranges,
//! [`process_pending`] rolls the hours within one gap of them) and [`recompute`] call the same
//! [`roll_hours`], so both give the same rows.

pub mod buckets;
pub mod energy;
pub mod history;
pub mod roller;

use std::collections::{BTreeMap, BTreeSet};

use chrono_tz::Tz;

use crate::catalog::{BatteryArrayAttachment, BatteryPack, Installation, System};
use crate::db::rollups::{self as store, Level, Pending, RollupRows};
use crate::db::samples::{BatteryBankSample, EnergySample, MeterSample};
use crate::db::{DbConnection, DbError, now_ms};
use crate::values::{add, kwh, max, mean_by_count, min};
use buckets::Bucket;
use energy::{CHARGE, DISCHARGE, EXPORT, IMPORT, LOAD, Point, QUANTITIES, SOLAR, split};

/// Intervals longer than this are not integrated (and are not coverage).
pub const DEFAULT_GAP_MS: i64 = 5 * 60_000;
/// Counter deltas over intervals longer than this are not taken either.
pub const DEFAULT_COUNTER_GAP_MS: i64 = 12 * 3_600_000;
/// A counter delta implying more power than this is a glitch, not energy.
pub const MAX_POWER_W: f64 = 1_000_000.0;
/// Hours rolled per transaction by a recompute.
const RECOMPUTE_CHUNK_HOURS: usize = 24 * 7;

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
}

impl std::ops::AddAssign for RollReport {
    fn add_assign(&mut self, other: RollReport) {
        self.hours += other.hours;
        self.days += other.days;
        self.rows += other.rows;
    }
}

struct Catalog {
    system: System,
    tz: Tz,
    installation: Installation,
}

fn load_catalog(conn: &mut DbConnection, system_id: &str) -> Result<Option<Catalog>, DbError> {
    let (systems, installation) = crate::db::catalog::load_structure(conn, system_id)?;
    Ok(systems.into_iter().next().map(|system| Catalog {
        tz: buckets::timezone(&system),
        system,
        installation,
    }))
}

/// Mean and max of the values that are present.
#[derive(Default)]
struct Stat {
    sum: f64,
    count: u32,
    max: Option<f64>,
    min: Option<f64>,
}

impl Stat {
    fn add(&mut self, value: Option<f64>) {
        if let Some(v) = value {
            self.sum += v;
            self.count += 1;
            self.max = Some(self.max.map_or(v, |m| m.max(v)));
            self.min = Some(self.min.map_or(v, |m| m.min(v)));
        }
    }
    fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / f64::from(self.count))
    }
}

/// The figures every energy row has.
#[derive(Debug, Clone, Default, PartialEq)]
struct Figures {
    kwh: [Option<f64>; QUANTITIES],
    avg_pv: Option<f64>,
    peak_pv: Option<f64>,
    avg_load: Option<f64>,
    peak_load: Option<f64>,
    avg_grid: Option<f64>,
    peak_import: Option<f64>,
    peak_export: Option<f64>,
    avg_battery: Option<f64>,
    soc_min: Option<f64>,
    soc_avg: Option<f64>,
    soc_max: Option<f64>,
    sample_count: i64,
    coverage_pct: f64,
}

fn inverter_point(s: &EnergySample) -> Point {
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

fn meter_point(s: &MeterSample) -> Point {
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

fn pack_point(s: &BatteryBankSample) -> Point {
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
struct Series<S> {
    samples: Vec<S>,
    points: Vec<Point>,
}

impl<S> Series<S> {
    /// The samples with ts in [from, to).
    fn within(&self, from: i64, to: i64, ts: impl Fn(&S) -> i64) -> &[S] {
        let a = self.samples.partition_point(|s| ts(s) < from);
        let b = self.samples.partition_point(|s| ts(s) < to);
        &self.samples[a..b]
    }
}

fn group<S>(
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
fn bucket_data<'a, S>(
    series: &'a Series<S>,
    bucket: &Bucket,
    limits: &energy::Limits,
    ts: impl Fn(&S) -> i64,
) -> Option<(energy::Integral, &'a [S])> {
    let integral = energy::integrate(&series.points, bucket.start, bucket.end, limits);
    let inside = series.within(bucket.start, bucket.end, ts);
    (!inside.is_empty() || integral.covered_ms > 0).then_some((integral, inside))
}

fn stats<const N: usize>() -> [Stat; N] {
    std::array::from_fn(|_| Stat::default())
}

fn coverage(covered_ms: i64, bucket: &Bucket) -> f64 {
    100.0 * covered_ms as f64 / (bucket.end - bucket.start) as f64
}

fn inverter_figures(
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

/// Sums of several devices' figures in one bucket (averages summed: the average of a sum).
fn sum_figures<'a>(parts: impl IntoIterator<Item = &'a Figures>) -> Option<Figures> {
    let mut total = Figures::default();
    let mut soc_weighted = 0.0;
    let mut soc_samples = 0i64;
    let mut count = 0;
    let mut coverage = 0.0;
    for part in parts {
        count += 1;
        for q in 0..QUANTITIES {
            add(&mut total.kwh[q], part.kwh[q]);
        }
        add(&mut total.avg_pv, part.avg_pv);
        add(&mut total.avg_load, part.avg_load);
        add(&mut total.avg_grid, part.avg_grid);
        add(&mut total.avg_battery, part.avg_battery);
        total.soc_min = min(total.soc_min, part.soc_min);
        total.soc_max = max(total.soc_max, part.soc_max);
        if let Some(avg) = part.soc_avg {
            soc_weighted += avg * part.sample_count as f64;
            soc_samples += part.sample_count;
        }
        total.sample_count += part.sample_count;
        coverage += part.coverage_pct;
    }
    if count == 0 {
        return None;
    }
    total.soc_avg = (soc_samples > 0).then(|| soc_weighted / soc_samples as f64);
    total.coverage_pct = coverage / f64::from(count);
    Some(total)
}

/// Battery energy and SOC of packs over windows: (charge kWh, discharge kWh, SOC stat), `None`
/// when no pack had data there.
fn pack_windows(
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
fn pack_attachments<'a>(
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

fn with_battery(
    mut figures: Figures,
    battery: Option<(Option<f64>, Option<f64>, Stat)>,
) -> Figures {
    if let Some((charge, discharge, soc)) = battery {
        figures.kwh[CHARGE] = charge;
        figures.kwh[DISCHARGE] = discharge;
        if soc.count > 0 {
            figures.soc_min = soc.min;
            figures.soc_max = soc.max;
            figures.soc_avg = soc.mean();
        }
    }
    figures
}

macro_rules! energy_row {
    ($row:ident { $($field:ident: $value:expr),* $(,)? }, $bucket:expr, $f:expr, $at:expr) => {{
        let f: &$crate::rollup::Figures = $f;
        let bucket: &$crate::rollup::buckets::Bucket = $bucket;
        $crate::db::rollups::$row {
            $($field: $value,)*
            bucket_start: bucket.start,
            bucket_end: bucket.end,
            date: bucket.date.clone(),
            solar_kwh: f.kwh[$crate::rollup::energy::SOLAR],
            load_kwh: f.kwh[$crate::rollup::energy::LOAD],
            battery_charge_kwh: f.kwh[$crate::rollup::energy::CHARGE],
            battery_discharge_kwh: f.kwh[$crate::rollup::energy::DISCHARGE],
            grid_import_kwh: f.kwh[$crate::rollup::energy::IMPORT],
            grid_export_kwh: f.kwh[$crate::rollup::energy::EXPORT],
            avg_pv_power_w: f.avg_pv,
            peak_pv_power_w: f.peak_pv,
            avg_load_power_w: f.avg_load,
            peak_load_power_w: f.peak_load,
            avg_grid_power_w: f.avg_grid,
            peak_grid_import_w: f.peak_import,
            peak_grid_export_w: f.peak_export,
            avg_battery_power_w: f.avg_battery,
            soc_min_pct: f.soc_min,
            soc_avg_pct: f.soc_avg,
            soc_max_pct: f.soc_max,
            sample_count: f.sample_count,
            coverage_pct: f.coverage_pct,
            updated_at: $at,
            source: $crate::db::rollups::FROM_SAMPLES.to_owned(),
        }
    }};
}

// After `energy_row!`, which it uses.
pub mod carried;

/// The figures of a stored energy row.
fn figures_of(row: &impl store::EnergyColumns) -> Figures {
    let [
        avg_pv,
        peak_pv,
        avg_load,
        peak_load,
        avg_grid,
        peak_import,
        peak_export,
        avg_battery,
    ] = row.powers();
    let [soc_min, soc_avg, soc_max] = row.soc();
    let (sample_count, coverage_pct) = row.counts();
    Figures {
        kwh: row.kwh(),
        avg_pv,
        peak_pv,
        avg_load,
        peak_load,
        avg_grid,
        peak_import,
        peak_export,
        avg_battery,
        soc_min,
        soc_avg,
        soc_max,
        sample_count,
        coverage_pct,
    }
}

/// Computes every hour row of the system for `hours` (contiguous, in order) from raw samples.
fn hour_rows(
    conn: &mut DbConnection,
    catalog: &Catalog,
    hours: &[Bucket],
    settings: Settings,
    at: i64,
) -> Result<RollupRows, DbError> {
    let mut rows = RollupRows::default();
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        return Ok(rows);
    };
    let limits = &settings.limits();
    let system_id = catalog.system.system_id.as_str();
    let installation = &catalog.installation;
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
            if let Some(row) = pack_hour(catalog, pack_id, series, bucket, limits, at) {
                rows.pack_hours.push(row);
            }
        }
        // Meters; the system-level grid meters' energy, when they have some, is the system's grid.
        let mut grid: Option<[Option<f64>; 2]> = None;
        for (meter_id, series) in &meter_series {
            if let Some(row) = meter_hour(catalog, meter_id, series, bucket, limits, at) {
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

fn pack_hour(
    catalog: &Catalog,
    pack_id: &str,
    series: &Series<BatteryBankSample>,
    bucket: &Bucket,
    limits: &energy::Limits,
    at: i64,
) -> Option<store::PackHour> {
    let (integral, inside) = bucket_data(series, bucket, limits, |s| s.ts)?;
    let [
        mut power,
        mut charge,
        mut discharge,
        mut voltage,
        mut current,
        mut temperature,
        mut soc,
    ] = stats();
    for s in inside {
        power.add(s.power_w);
        let (d, c) = split(s.power_w);
        discharge.add(d);
        charge.add(c);
        voltage.add(s.voltage_v);
        current.add(s.current_a);
        temperature.add(s.temperature_c);
        soc.add(s.soc_pct);
    }
    let pack = catalog
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
        system_id: catalog.system.system_id.clone(),
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

fn meter_hour(
    catalog: &Catalog,
    meter_id: &str,
    series: &Series<MeterSample>,
    bucket: &Bucket,
    limits: &energy::Limits,
    at: i64,
) -> Option<store::MeterHour> {
    let (integral, inside) = bucket_data(series, bucket, limits, |s| s.ts)?;
    let [
        mut power,
        mut import,
        mut export,
        mut voltage,
        mut current,
        mut frequency,
    ] = stats();
    for s in inside {
        power.add(s.power_w);
        let (i, e) = split(s.power_w);
        import.add(i);
        export.add(e);
        voltage.add(s.voltage_v);
        current.add(s.current_a);
        frequency.add(s.frequency_hz);
    }
    let import_kwh = kwh(integral.energy_wh[IMPORT]);
    let export_kwh = kwh(integral.energy_wh[EXPORT]);
    let meter = catalog
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
        system_id: catalog.system.system_id.clone(),
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

/// Import minus export, when either is known.
fn net_kwh(import: Option<f64>, export: Option<f64>) -> Option<f64> {
    match (import, export) {
        (Some(i), Some(e)) => Some(i - e),
        (i, e) => i.or(e.map(|e| -e)),
    }
}

/// A day's figures from its hour rows (energies summed, averages weighted by samples, peaks the
/// highest, coverage over the day's length).
fn day_figures<R: store::EnergyColumns>(hours: &[&R], day: &Bucket) -> Figures {
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
fn source_of<'a>(mut hours: impl Iterator<Item = &'a str>) -> String {
    match hours.all(|source| source == store::FROM_LEGACY) {
        true => store::FROM_LEGACY.to_owned(),
        false => store::FROM_SAMPLES.to_owned(),
    }
}

/// Cycles: energy discharged over the nominal capacity, when every pack counted has one.
fn cycles(discharge_kwh: Option<f64>, packs: &[&BatteryPack]) -> Option<f64> {
    let capacity = packs
        .iter()
        .map(|p| p.nominal_kwh.filter(|kwh| *kwh > 0.0))
        .try_fold(0.0, |total, kwh| kwh.map(|kwh| total + kwh))?;
    (!packs.is_empty() && capacity > 0.0).then(|| discharge_kwh.unwrap_or(0.0) / capacity)
}

/// Whether every stored hour row is the old app's (and there is at least one).
fn only_legacy(hours: &RollupRows) -> bool {
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
fn day_rows(
    conn: &mut DbConnection,
    catalog: &Catalog,
    day: &Bucket,
    at: i64,
) -> Result<Option<RollupRows>, DbError> {
    let system_id = catalog.system.system_id.as_str();
    let hours = store::load_rows(conn, system_id, day.start, day.end, Level::Hours)?;
    if only_legacy(&hours) {
        return Ok(None);
    }
    let mut rows = RollupRows::default();
    let installation = &catalog.installation;

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
    Ok(Some(rows))
}

fn day_coverage(spans: impl IntoIterator<Item = (f64, i64)>, day: &Bucket) -> f64 {
    spans
        .into_iter()
        .map(|(pct, span)| pct * span as f64)
        .sum::<f64>()
        / (day.end - day.start) as f64
}

fn pack_day(
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

fn meter_day(
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
    catalog: &Catalog,
    hours: &[Bucket],
    settings: Settings,
) -> Result<RollReport, DbError> {
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        return Ok(RollReport::default());
    };
    let at = now_ms();
    let system_id = catalog.system.system_id.as_str();
    let rows = hour_rows(conn, catalog, hours, settings, at)?;
    store::delete_rows(conn, system_id, first.start, last.end, Level::Hours)?;
    store::delete_superseded_legacy(conn, &rows)?;
    store::insert_rows(conn, &rows)?;
    let mut report = RollReport {
        hours: hours.len(),
        days: 0,
        rows: row_count(&rows),
    };
    let days: BTreeSet<Bucket> = hours
        .iter()
        .map(|h| buckets::day_of(catalog.tz, h))
        .collect();
    for day in days {
        let Some(rows) = day_rows(conn, catalog, &day, at)? else {
            continue;
        };
        store::delete_rows(conn, system_id, day.start, day.end, Level::Days)?;
        store::delete_superseded_legacy(conn, &rows)?;
        store::insert_rows(conn, &rows)?;
        report.days += 1;
        report.rows += row_count(&rows);
    }
    Ok(report)
}

/// Splits sorted, distinct hour buckets into runs of consecutive hours.
fn runs(hours: Vec<Bucket>) -> Vec<Vec<Bucket>> {
    let mut runs: Vec<Vec<Bucket>> = Vec::new();
    for hour in hours {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|last| last.end == hour.start) => run.push(hour),
            _ => runs.push(vec![hour]),
        }
    }
    runs
}

/// Rolls again every hour within one gap of the pending ranges of `system_id`, and removes those
/// ranges. Call inside a transaction.
pub fn roll_pending_of(
    conn: &mut DbConnection,
    system_id: &str,
    pending: &[Pending],
    settings: Settings,
) -> Result<RollReport, DbError> {
    let mut report = RollReport::default();
    store::lock_system_for_roll(conn, system_id)?;
    if let Some(catalog) = load_catalog(conn, system_id)? {
        // A new sample changes the intervals to its neighbours on both sides (and the one it
        // split): every hour between those neighbours is rolled again.
        let reach = settings.limits().counter_gap_ms;
        let mut hours = BTreeSet::new();
        let installation = &catalog.installation;
        for range in pending {
            let id = range.device_id.as_str();
            let kind = if installation.inverters.iter().any(|i| i.inverter_id == id) {
                store::DeviceKind::Inverter
            } else if installation.packs.iter().any(|p| p.pack_id == id) {
                store::DeviceKind::Pack
            } else if installation.meters.iter().any(|m| m.meter_id == id) {
                store::DeviceKind::Meter
            } else {
                // Gone from the catalog since: nothing of it to roll.
                continue;
            };
            let (before, after) =
                store::neighbour_times(conn, kind, id, range.from_ts, range.to_ts, reach)?;
            hours.extend(buckets::hours(
                catalog.tz,
                before.unwrap_or(range.from_ts),
                after.unwrap_or(range.to_ts) + 1,
            ));
        }
        // A week at a time, so a long range (an attachment edited a year back) never holds more
        // than a week of samples in memory.
        for run in runs(hours.into_iter().collect()) {
            for chunk in run.chunks(RECOMPUTE_CHUNK_HOURS) {
                report += roll_hours(conn, &catalog, chunk, settings)?;
            }
        }
    }
    store::remove_pending(conn, pending)?;
    Ok(report)
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

/// The runs of hours a recompute of `system_id` over [from, to) rolls, a week each (the whole
/// sample span when `range` is `None`); `None` when the system does not exist.
pub fn recompute_chunks(
    conn: &mut DbConnection,
    system_id: &str,
    range: Option<(i64, i64)>,
) -> Result<Option<Vec<Vec<Bucket>>>, DbError> {
    let Some(catalog) = load_catalog(conn, system_id)? else {
        return Ok(None);
    };
    // Only where samples are: an open end of the range (or none) stops at the first and last.
    let Some((first, last)) = store::sample_span(conn, system_id)? else {
        return Ok(Some(Vec::new()));
    };
    let (from, to) = match range {
        Some((from, to)) => (from.max(first), to.min(last + 1)),
        None => (first, last + 1),
    };
    Ok(Some(
        buckets::hours(catalog.tz, from, to)
            .chunks(RECOMPUTE_CHUNK_HOURS)
            .map(<[Bucket]>::to_vec)
            .collect(),
    ))
}

/// Rolls one run of a recompute. Call inside a transaction.
pub fn roll_chunk(
    conn: &mut DbConnection,
    system_id: &str,
    hours: &[Bucket],
    settings: Settings,
) -> Result<RollReport, DbError> {
    store::lock_system_for_roll(conn, system_id)?;
    match load_catalog(conn, system_id)? {
        Some(catalog) => roll_hours(conn, &catalog, hours, settings),
        None => Ok(RollReport::default()),
    }
}

/// Recomputes every rollup row of `system_id` for the hours overlapping `range` (the whole sample
/// span when `None`), a week per transaction. `None` when the system does not exist.
pub fn recompute(
    conn: &mut DbConnection,
    system_id: &str,
    range: Option<(i64, i64)>,
    settings: Settings,
) -> Result<Option<RollReport>, DbError> {
    let Some(chunks) = recompute_chunks(conn, system_id, range)? else {
        return Ok(None);
    };
    let mut report = RollReport::default();
    for chunk in chunks {
        report +=
            crate::db::in_transaction(conn, |conn| roll_chunk(conn, system_id, &chunk, settings))?;
    }
    Ok(Some(report))
}
