//! How the figures of energy rollup rows (`db::rollups::Figures`) are made: mean and extremes of
//! values, coverage, and how several devices' figures add up to an array's or the system's.

pub(super) use crate::db::rollups::Figures;
use crate::db::rollups::QUANTITIES;
use crate::local_time::Bucket;
use crate::values::{add, max, min};

/// Mean and extremes of the values that are present. The extremes mean something only once
/// `count` values were added: 32 bytes, not the 48 of two `Option`s (the roller keeps seven per
/// device's open hour, and sixteen in each open aggregate bucket).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Stat {
    sum: f64,
    highest: f64,
    lowest: f64,
    count: u32,
}

impl Stat {
    pub(super) fn add(&mut self, value: Option<f64>) {
        if let Some(v) = value {
            if self.count == 0 {
                (self.lowest, self.highest) = (v, v);
            } else {
                self.lowest = self.lowest.min(v);
                self.highest = self.highest.max(v);
            }
            self.sum += v;
            self.count += 1;
        }
    }

    pub(super) fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / f64::from(self.count))
    }

    pub(super) fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.highest)
    }

    pub(super) fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.lowest)
    }
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

/// Import minus export, when either is known.
pub(super) fn net_kwh(import: Option<f64>, export: Option<f64>) -> Option<f64> {
    match (import, export) {
        (Some(i), Some(e)) => Some(i - e),
        (i, e) => i.or(e.map(|e| -e)),
    }
}
