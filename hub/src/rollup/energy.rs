//! Energy of one device over a time window, from its samples (DESIGN §3.3): counters first,
//! trapezoid integration of power as the fallback, gaps not bridged.
//!
//! Every figure is a sum over consecutive sample pairs (intervals) in time order. An interval's
//! energy is its counter delta when both ends have the counter and the delta is plausible (not
//! negative, not above `max_power_w`); a counter that went down (reset, rollover, a failed read of
//! 0) or jumped starts a new segment, and that one interval falls back to the trapezoid of power.
//! An interval longer than the gap limit is not bridged by integration and adds no coverage; a
//! counter still knows the energy of such an interval, and it counts if the interval is shorter
//! than the counter gap limit. An interval that crosses the window's edge counts in proportion to
//! the time inside it.
//!
//! The result for a window depends only on the intervals that overlap it: the samples inside it
//! and the nearest one on each side. Recomputing any window from raw samples gives the same
//! numbers as the incremental path.

/// The energies a bucket has, in this order.
pub use crate::db::rollups::{CHARGE, DISCHARGE, EXPORT, IMPORT, LOAD, QUANTITIES, SOLAR};

/// One sample as the energy maths sees it: a cumulative counter (Wh) and an instantaneous power
/// (W, never negative) per quantity, either possibly missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Point {
    pub ts: i64,
    pub counters: [Option<f64>; QUANTITIES],
    pub powers: [Option<f64>; QUANTITIES],
}

/// Splits a signed power into its positive and negative parts: `(x > 0 part, x < 0 part)`.
pub fn split(power: Option<f64>) -> (Option<f64>, Option<f64>) {
    match power {
        Some(p) => (Some(p.max(0.0)), Some((-p).max(0.0))),
        None => (None, None),
    }
}

/// Energy of each quantity in a window (Wh; `None` when nothing could be known) and how much of
/// the window had bridged data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Integral {
    pub energy_wh: [Option<f64>; QUANTITIES],
    pub covered_ms: i64,
}

/// Where intervals stop counting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Longest interval integrated (and counted as coverage).
    pub gap_ms: i64,
    /// Longest interval a counter delta is taken over.
    pub counter_gap_ms: i64,
    /// A counter delta implying more power than this is a glitch.
    pub max_power_w: f64,
}

/// The energy of one interval for quantity `q`, if it can be known.
fn interval_energy(a: &Point, b: &Point, q: usize, limits: &Limits) -> Option<f64> {
    let length = b.ts - a.ts;
    let hours = length as f64 / 3_600_000.0;
    if let (Some(ca), Some(cb)) = (a.counters[q], b.counters[q]) {
        let delta = cb - ca;
        if delta >= 0.0 && delta <= limits.max_power_w * hours {
            return Some(delta);
        }
    }
    if length > limits.gap_ms {
        return None;
    }
    match (a.powers[q], b.powers[q]) {
        (Some(pa), Some(pb)) => Some((pa + pb) / 2.0 * hours),
        _ => None,
    }
}

/// Adds to `integral` what the interval from `a` to `b` (consecutive samples) gives the window
/// [from, to): the one rule both [`integrate`] and the rollups' device-hour states follow, so
/// folding samples one at a time gives the same numbers, bit for bit, as integrating them at once.
pub fn add_interval(
    integral: &mut Integral,
    a: &Point,
    b: &Point,
    from: i64,
    to: i64,
    limits: &Limits,
) {
    let length = b.ts - a.ts;
    if length <= 0 || length > limits.counter_gap_ms {
        return;
    }
    let inside = b.ts.min(to) - a.ts.max(from);
    if inside <= 0 {
        return;
    }
    if length <= limits.gap_ms {
        integral.covered_ms += inside;
    }
    let share = inside as f64 / length as f64;
    for q in 0..QUANTITIES {
        if let Some(energy) = interval_energy(a, b, q, limits) {
            *integral.energy_wh[q].get_or_insert(0.0) += energy * share;
        }
    }
}

/// Integrates `points` (sorted by time, one per timestamp) over [from, to).
pub fn integrate(points: &[Point], from: i64, to: i64, limits: &Limits) -> Integral {
    let mut integral = Integral::default();
    // The interval that starts at the last point before the window is the first that can reach it.
    let start = points.partition_point(|p| p.ts < from).saturating_sub(1);
    for pair in points[start..].windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.ts >= to {
            break;
        }
        add_interval(&mut integral, a, b, from, to, limits);
    }
    integral
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const LIMITS: Limits = Limits {
        gap_ms: 5 * 60_000,
        counter_gap_ms: 12 * HOUR,
        max_power_w: 1e6,
    };

    fn solar(ts: i64, counter: Option<f64>, power: Option<f64>) -> Point {
        let mut point = Point {
            ts,
            ..Point::default()
        };
        point.counters[SOLAR] = counter;
        point.powers[SOLAR] = power;
        point
    }

    #[test]
    fn trapezoid_splits_at_the_window_edge() {
        // 1000 W for exactly two hours, sampled every 10 s, starting 30 minutes into an hour.
        let points: Vec<Point> = (0..=720)
            .map(|i| solar(HOUR / 2 + i * 10_000, None, Some(1000.0)))
            .collect();
        let first = integrate(&points, 0, HOUR, &LIMITS);
        let second = integrate(&points, HOUR, 2 * HOUR, &LIMITS);
        let third = integrate(&points, 2 * HOUR, 3 * HOUR, &LIMITS);
        assert!((first.energy_wh[SOLAR].unwrap() - 500.0).abs() < 1e-6);
        assert!((second.energy_wh[SOLAR].unwrap() - 1000.0).abs() < 1e-6);
        assert!((third.energy_wh[SOLAR].unwrap() - 500.0).abs() < 1e-6);
        assert_eq!(first.covered_ms, HOUR / 2);
        assert_eq!(second.covered_ms, HOUR);
    }

    #[test]
    fn a_counter_reset_adds_only_what_was_produced() {
        // 3600 W: 10 Wh per 10 s. The counter resets to 0 after 30 minutes.
        let points: Vec<Point> = (0..=360)
            .map(|i| {
                let counter = if i < 180 {
                    50_000.0 + i as f64 * 10.0
                } else {
                    (i - 180) as f64 * 10.0
                };
                solar(i * 10_000, Some(counter), Some(3600.0))
            })
            .collect();
        let hour = integrate(&points, 0, HOUR, &LIMITS);
        assert!((hour.energy_wh[SOLAR].unwrap() - 3600.0).abs() < 1e-6);
    }

    #[test]
    fn gaps_are_not_bridged() {
        // Samples every 10 s except for a 20-minute hole.
        let points: Vec<Point> = (0..=360)
            .filter(|i| !(121..240).contains(i))
            .map(|i| solar(i * 10_000, None, Some(1000.0)))
            .collect();
        let hour = integrate(&points, 0, HOUR, &LIMITS);
        assert_eq!(hour.covered_ms, HOUR - 20 * 60_000);
        assert!((hour.energy_wh[SOLAR].unwrap() - 1000.0 * 40.0 / 60.0).abs() < 1e-6);
    }

    #[test]
    fn a_counter_knows_the_energy_of_a_gap() {
        // Two readings 40 minutes apart, 20:00-20:40 over an hour edge at 20:30: 400 Wh.
        let points = vec![
            solar(0, Some(1000.0), Some(600.0)),
            solar(40 * 60_000, Some(1400.0), Some(600.0)),
        ];
        let first = integrate(&points, 0, 30 * 60_000, &LIMITS);
        let second = integrate(&points, 30 * 60_000, HOUR, &LIMITS);
        assert!((first.energy_wh[SOLAR].unwrap() - 300.0).abs() < 1e-9);
        assert!((second.energy_wh[SOLAR].unwrap() - 100.0).abs() < 1e-9);
        // Energy, but no coverage: nothing was measured in between.
        assert_eq!(first.covered_ms + second.covered_ms, 0);
        // Power alone does not bridge the gap.
        let no_counter = vec![
            solar(0, None, Some(600.0)),
            solar(40 * 60_000, None, Some(600.0)),
        ];
        assert_eq!(
            integrate(&no_counter, 0, HOUR, &LIMITS).energy_wh[SOLAR],
            None
        );
    }

    #[test]
    fn an_implausible_counter_jump_falls_back_to_power() {
        let points = vec![
            solar(0, Some(1000.0), Some(100.0)),
            solar(10_000, Some(0.0), Some(100.0)),
            solar(20_000, Some(1_000_000.0), Some(100.0)),
        ];
        let limits = Limits {
            max_power_w: 10_000.0,
            ..LIMITS
        };
        let window = integrate(&points, 0, HOUR, &limits);
        let expected = 100.0 * 20.0 / 3600.0;
        assert!((window.energy_wh[SOLAR].unwrap() - expected).abs() < 1e-9);
    }
}
