//! The figures every energy rollup row has (energies, average and peak powers, SOC, sample
//! count, coverage), how several devices' figures add up to an array's or the system's, and the
//! one place a row is made from them (`energy_row!`).

use super::energy::QUANTITIES;
use crate::db::rollups as store;
use crate::local_time::Bucket;
use crate::values::{add, max, min};

/// Mean and max of the values that are present.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Stat {
    pub(super) sum: f64,
    pub(super) count: u32,
    pub(super) max: Option<f64>,
    pub(super) min: Option<f64>,
}

impl Stat {
    pub(super) fn add(&mut self, value: Option<f64>) {
        if let Some(v) = value {
            self.sum += v;
            self.count += 1;
            self.max = Some(self.max.map_or(v, |m| m.max(v)));
            self.min = Some(self.min.map_or(v, |m| m.min(v)));
        }
    }
    pub(super) fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / f64::from(self.count))
    }
}

/// The figures every energy row has.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Figures {
    pub(super) kwh: [Option<f64>; QUANTITIES],
    pub(super) avg_pv: Option<f64>,
    pub(super) peak_pv: Option<f64>,
    pub(super) avg_load: Option<f64>,
    pub(super) peak_load: Option<f64>,
    pub(super) avg_grid: Option<f64>,
    pub(super) peak_import: Option<f64>,
    pub(super) peak_export: Option<f64>,
    pub(super) avg_battery: Option<f64>,
    pub(super) soc_min: Option<f64>,
    pub(super) soc_avg: Option<f64>,
    pub(super) soc_max: Option<f64>,
    pub(super) sample_count: i64,
    pub(super) coverage_pct: f64,
}

pub(super) fn coverage(covered_ms: i64, bucket: &Bucket) -> f64 {
    100.0 * covered_ms as f64 / (bucket.end - bucket.start) as f64
}

/// Sums of several devices' figures in one bucket (averages summed: the average of a sum).
pub(super) fn sum_figures<'a>(parts: impl IntoIterator<Item = &'a Figures>) -> Option<Figures> {
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

macro_rules! energy_row {
    ($row:ident { $($field:ident: $value:expr),* $(,)? }, $bucket:expr, $f:expr, $at:expr) => {{
        let f: &$crate::rollup::figures::Figures = $f;
        let bucket: &$crate::local_time::Bucket = $bucket;
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

/// The figures of a stored energy row.
pub(super) fn figures_of(row: &impl store::EnergyColumns) -> Figures {
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

/// Import minus export, when either is known.
pub(super) fn net_kwh(import: Option<f64>, export: Option<f64>) -> Option<f64> {
    match (import, export) {
        (Some(i), Some(e)) => Some(i - e),
        (i, e) => i.or(e.map(|e| -e)),
    }
}
