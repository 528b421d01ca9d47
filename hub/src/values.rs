//! Arithmetic on values that may be missing. A missing value means "not known" (DESIGN §3.2:
//! NULL is never 0), so a sum or mean of nothing is missing too, and a missing value is skipped,
//! not counted as 0.

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
