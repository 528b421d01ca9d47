//! A device's local hour as the rollups see it, built one sample at a time: the energy its
//! intervals give the hour (`energy::add_interval`: counters first, power as the fallback), the
//! statistics of its samples inside the hour, and the last sample folded in.
//!
//! The invariant: an hour's state depends only on the device's samples that reach the hour (the
//! last before it, those inside it, the first at or after its end), folded in time order. A
//! recompute builds it from raw samples; the roller keeps it and folds in each sample that arrives
//! after the last one it folded. Both fold the same samples in the same order, so they hold the
//! same numbers bit for bit, and every row made from a state is the same either way. A sample that
//! arrives before the last one folded cannot be folded in: the hour is built again from its raw
//! samples. Pure: no clock, no database.

use super::energy::{self, Integral, Limits, Point};
use super::figures::Stat;

/// How many statistics a device kind keeps per hour (the widest kind's).
pub(super) const STATS: usize = 7;

/// One sample of a device: its point for the energy maths, and the values its kind's statistics
/// take (in the kind's order; see `hours`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DeviceSample {
    pub(super) point: Point,
    pub(super) values: [Option<f64>; STATS],
}

impl DeviceSample {
    pub(super) fn ts(&self) -> i64 {
        self.point.ts
    }
}

/// One device's hour [start, end), as far as the samples folded into it go.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HourState {
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) integral: Integral,
    pub(super) stats: [Stat; STATS],
    /// Samples inside the hour.
    pub(super) inside: i64,
    /// The last sample folded in: the start of the next interval.
    last: Option<Point>,
}

impl HourState {
    pub(super) fn new(start: i64, end: i64) -> HourState {
        HourState {
            start,
            end,
            integral: Integral::default(),
            stats: std::array::from_fn(|_| Stat::default()),
            inside: 0,
            last: None,
        }
    }

    /// The state of a later hour [start, end) of the device whose state so far is `previous`:
    /// nothing of the hour yet, and its first interval starts at the last sample `previous`
    /// folded in (the last sample before the hour).
    pub(super) fn after(previous: &HourState, start: i64, end: i64) -> HourState {
        HourState {
            last: previous.last.clone(),
            ..HourState::new(start, end)
        }
    }

    /// Folds in the next sample (later than every sample folded before).
    pub(super) fn fold(&mut self, sample: &DeviceSample, limits: &Limits) {
        if self.is_closed() {
            return;
        }
        if let Some(last) = &self.last {
            energy::add_interval(
                &mut self.integral,
                last,
                &sample.point,
                self.start,
                self.end,
                limits,
            );
        }
        let ts = sample.ts();
        if ts >= self.start && ts < self.end {
            self.inside += 1;
            for (stat, value) in self.stats.iter_mut().zip(sample.values) {
                stat.add(value);
            }
        }
        self.last = Some(sample.point.clone());
    }

    /// The state of [start, end) from a device's samples in time order (one per time): the last
    /// before the hour, every one inside it, the first at or after its end.
    pub(super) fn of(samples: &[DeviceSample], start: i64, end: i64, limits: &Limits) -> HourState {
        let mut state = HourState::new(start, end);
        let first = samples
            .partition_point(|s| s.ts() < start)
            .saturating_sub(1);
        let after = samples.partition_point(|s| s.ts() < end);
        let last = (after + 1).min(samples.len());
        for sample in &samples[first.min(last)..last] {
            state.fold(sample, limits);
        }
        state
    }

    /// Whether a sample at or after the hour's end was folded in: nothing that arrives later in
    /// time order changes the hour.
    pub(super) fn is_closed(&self) -> bool {
        self.last.as_ref().is_some_and(|last| last.ts >= self.end)
    }

    /// The time of the last sample folded in.
    pub(super) fn last_ts(&self) -> Option<i64> {
        self.last.as_ref().map(|last| last.ts)
    }

    /// Whether the hour has a row: samples inside it, or time bridged between samples.
    pub(super) fn has_data(&self) -> bool {
        self.inside > 0 || self.integral.covered_ms > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::energy::{SOLAR, integrate};

    const HOUR: i64 = 3_600_000;
    const LIMITS: Limits = Limits {
        gap_ms: 5 * 60_000,
        counter_gap_ms: 12 * HOUR,
        max_power_w: 1e6,
    };

    fn sample(ts: i64, counter: Option<f64>, power: f64) -> DeviceSample {
        let mut point = Point {
            ts,
            ..Point::default()
        };
        point.counters[SOLAR] = counter;
        point.powers[SOLAR] = Some(power);
        let mut values = [None; STATS];
        values[0] = Some(power);
        DeviceSample { point, values }
    }

    /// Uneven samples with a counter reset, a gap and one without a counter, across three hours.
    fn samples() -> Vec<DeviceSample> {
        let mut ts = HOUR - 7 * 60_000;
        let mut counter = 1000.0;
        let mut out = Vec::new();
        for i in 0..400 {
            ts += [9_000, 11_000, 37_000, 3_000][i % 4] + if i == 200 { 20 * 60_000 } else { 0 };
            counter = if i == 120 {
                3.0
            } else {
                counter + (i % 13) as f64 * 1.7
            };
            let counter = (i % 17 != 0).then_some(counter);
            out.push(sample(ts, counter, 100.0 + (i % 29) as f64 * 3.3));
        }
        out
    }

    #[test]
    fn a_state_is_the_integral_of_its_hour() {
        let samples = samples();
        let points: Vec<Point> = samples.iter().map(|s| s.point.clone()).collect();
        for hour in 0..5 {
            let (start, end) = (hour * HOUR, (hour + 1) * HOUR);
            let state = HourState::of(&samples, start, end, &LIMITS);
            assert_eq!(
                state.integral,
                integrate(&points, start, end, &LIMITS),
                "hour {hour}"
            );
            let inside = samples.iter().filter(|s| s.ts() >= start && s.ts() < end);
            assert_eq!(state.inside, inside.clone().count() as i64);
            let mut stat = Stat::default();
            for s in inside {
                stat.add(s.values[0]);
            }
            assert_eq!(state.stats[0], stat);
        }
    }

    #[test]
    fn folding_as_samples_arrive_equals_building_from_them() {
        let samples = samples();
        for hour in 0..5 {
            let (start, end) = (hour * HOUR, (hour + 1) * HOUR);
            // The roller's way: every sample folded as it arrives, from the first on.
            let mut kept = HourState::new(start, end);
            for sample in &samples {
                kept.fold(sample, &LIMITS);
            }
            assert_eq!(
                kept.integral,
                HourState::of(&samples, start, end, &LIMITS).integral
            );
            assert_eq!(
                kept.stats,
                HourState::of(&samples, start, end, &LIMITS).stats
            );
            assert_eq!(kept.is_closed(), samples.iter().any(|s| s.ts() >= end));
        }
        // An hour still open: what arrived so far, then the rest, equals all at once.
        let (start, end) = (2 * HOUR, 3 * HOUR);
        let cut = samples.partition_point(|s| s.ts() < start + HOUR / 2);
        let mut kept = HourState::of(&samples[..cut], start, end, &LIMITS);
        assert!(!kept.is_closed());
        for sample in &samples[cut..] {
            kept.fold(sample, &LIMITS);
        }
        assert_eq!(kept, HourState::of(&samples, start, end, &LIMITS));
    }
}
