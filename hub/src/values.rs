//! Arithmetic on values that may be missing. A missing value means "not known" (DESIGN §3.2:
//! NULL is never 0), so a sum or mean of nothing is missing too, and a missing value is skipped,
//! not counted as 0.

/// `value` without the binary noise arithmetic leaves (51.800000000000004 → 51.8): rounded to 10
/// significant digits, far finer than any device reports. What the API answers with for values
/// the hub derived (sums, means, energies, money). Cheap (a year of hourly buckets tidies 175,000
/// values per answer): the magnitude from the binary exponent and a table of powers of ten,
/// not `log10` and `powi`.
pub fn tidy(value: Option<f64>) -> Option<f64> {
    value.map(|v| {
        // The smallest power of ten at or above |v| decides the decimals kept: 10 significant
        // digits, between 0 and 15 decimals (so only 10^-5 ..= 10^11 need telling apart). From
        // the binary exponent e (2^e <= |v| < 2^(e+1)): the smallest power of ten at or above
        // 2^e is 10^ceil(e log10 2), and |v| is at most ten times that, so it is that power or
        // the next: one comparison where a search of the powers took four (a scratch `rustc -O`
        // loop over a year of hours' 175,000 values: 8.5 ns a value, against 12.7-14.7).
        // Without branches on the value (0, infinities and NaN come through the arithmetic as
        // they went in): readings' digits are not predictable. On values of random digits the
        // same loop took 21.5 ns a value with the branches and takes 10.3 without (2026-12-08's
        // machine; the bench's regular values about 10 ns either way).
        let a = v.abs();
        // e <= -18 is |v| < 2^-17, under 10^-5: magnitude -5, as for every smaller e. From
        // e = 35 the magnitude is 11 or more, and every one of them keeps no decimals.
        let e = (((a.to_bits() >> 52) & 0x7ff) as i32 - 1023).clamp(-18, 35);
        // ceil(e * log10 2), with log10 2 as 78913 / 2^18 (exact enough over this range).
        let low = (e * 78_913 + (1 << 18) - 1) >> 18;
        let magnitude = low + i32::from(a > DECADES[(low + 5) as usize]);
        let factor = POWERS[(10 - magnitude).clamp(0, 15) as usize];
        half_away(v * factor) / factor
    })
}

/// `x.round()` (half away from zero), without the call into libm that `round` is on x86-64's
/// baseline (no SSE4.1; `perf`: 1 % of the history bench's samples), and without a branch on
/// the fraction. Exact: below 2^52 the truncation (through i64) and the fraction `x - t` are
/// exact; at or above it every float is whole already (and NaN is NaN).
fn half_away(x: f64) -> f64 {
    // The sign kept for a truncation to zero (-0.3 → -0.0, as `round` gives), and for the step
    // added to it (-0.0 + -0.0 stays -0.0).
    let t = (x as i64 as f64).copysign(x);
    let step = f64::from(u8::from((x - t).abs() >= 0.5)).copysign(x);
    if x.abs() < 4_503_599_627_370_496.0 {
        t + step
    } else {
        x
    }
}

/// 10^-5 ..= 10^11.
const DECADES: [f64; 17] = [
    1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
];
/// 10^0 ..= 10^15, each exact.
const POWERS: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Wh to kWh.
pub fn kwh(wh: Option<f64>) -> Option<f64> {
    wh.map(|wh| wh / 1000.0)
}

/// Adds `value` to `total` when it is known.
pub fn add(total: &mut Option<f64>, value: Option<f64>) {
    if let Some(v) = value {
        *total = Some(total.unwrap_or(0.0) + v);
    }
}

/// The sum of the known values, in order; `None` when none is known.
pub fn sum(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let mut total = None;
    for value in values {
        add(&mut total, value);
    }
    total
}

/// The mean of the known values; `None` when none is known.
pub fn mean(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let known: Vec<f64> = values.into_iter().flatten().collect();
    (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
}

/// The smaller of two values, either of which may be missing.
pub fn min(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The larger of two values, either of which may be missing.
pub fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The mean of several means, each weighted by how many values it stands for (a day's average
/// from its hours' averages and sample counts); missing means are left out.
pub fn mean_by_count(means: impl IntoIterator<Item = (Option<f64>, i64)>) -> Option<f64> {
    let (mut sum, mut weight) = (0.0, 0.0);
    for (mean, count) in means {
        if let Some(mean) = mean {
            sum += mean * count as f64;
            weight += count as f64;
        }
    }
    (weight > 0.0).then(|| sum / weight)
}

#[cfg(test)]
mod tests {
    #[test]
    fn half_away_is_round() {
        let mut x: f64 = 0.0;
        let edges = [
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            -0.0,
            0.0,
            4_503_599_627_370_495.5,
            4_503_599_627_370_496.0,
            -4_503_599_627_370_495.5,
            9.007_199_254_740_993e15,
            1e300,
            -1e300,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut values = edges.to_vec();
        // Spread over magnitudes, both signs, with fractions of every kind.
        for i in 0..200_000u64 {
            x = (x * 1.618_033_988_749 + 0.577_215_664_9).fract() * 10f64.powi((i % 33) as i32 - 8);
            values.push(if i % 2 == 0 { x } else { -x });
            values.push((i as f64 + 0.5) * if i % 3 == 0 { -1.0 } else { 1.0 });
        }
        for v in values {
            assert_eq!(half_away(v).to_bits(), v.round().to_bits(), "{v:e}");
        }
        assert!(half_away(f64::NAN).is_nan());
    }

    #[test]
    fn tidy_takes_the_noise_and_keeps_the_digits() {
        assert_eq!(tidy(Some(51.800000000000004)), Some(51.8));
        assert_eq!(tidy(Some(0.1 + 0.2)), Some(0.3));
        assert_eq!(tidy(Some(-1234.5678)), Some(-1234.5678));
        assert_eq!(tidy(Some(3.000_000_000_1e-7)), Some(3e-7));
        assert_eq!(tidy(Some(0.0)), Some(0.0));
        assert_eq!(tidy(None), None);
        // Zero's sign, the infinities and NaN come through the arithmetic as they went in.
        assert_eq!(
            tidy(Some(-0.0)).map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        assert_eq!(tidy(Some(f64::INFINITY)), Some(f64::INFINITY));
        assert_eq!(tidy(Some(f64::NEG_INFINITY)), Some(f64::NEG_INFINITY));
        assert!(tidy(Some(f64::NAN)).is_some_and(f64::is_nan));
        assert_eq!(tidy(Some(1e12 + 0.4)), Some(1e12));
        assert_eq!(tidy(Some(1000.0)), Some(1000.0));
        assert_eq!(tidy(Some(4941.950000000001)), Some(4941.95));
        // The same as the definition (log10, powi) across magnitudes: around every power of two
        // and of ten the magnitude is read from.
        let definition = |v: f64| {
            let decimals = (10 - v.abs().log10().ceil() as i32).clamp(0, 15);
            let factor = 10f64.powi(decimals);
            (v * factor).round() / factor
        };
        for e in -1074..1024 {
            let p = 2f64.powi(e);
            for v in [p, p * 1.000_000_000_3, p * 1.5, p * 1.999_999_999_7] {
                if v.is_finite() && v != 0.0 {
                    assert_eq!(tidy(Some(v)), Some(definition(v)), "{v:e}");
                    assert_eq!(tidy(Some(-v)), Some(definition(-v)), "{v:e}");
                }
            }
        }
        for exponent in -12..14 {
            for mantissa in [
                1.0,
                1.000_000_000_3,
                2.5,
                7.123_456_789_123_4,
                9.999_999_999_7,
            ] {
                let v = mantissa * 10f64.powi(exponent);
                assert_eq!(tidy(Some(v)), Some(definition(v)), "{v}");
                assert_eq!(tidy(Some(-v)), Some(definition(-v)), "{v}");
            }
        }
    }

    use super::*;

    #[test]
    fn nothing_known_is_not_zero() {
        assert_eq!(sum([None, None]), None);
        assert_eq!(sum([Some(1.0), None, Some(2.0)]), Some(3.0));
        assert_eq!(mean([None]), None);
        assert_eq!(min(None, Some(2.0)), Some(2.0));
        assert_eq!(max(Some(1.0), Some(2.0)), Some(2.0));
    }
}
