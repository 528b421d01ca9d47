//! Sets of times as sorted, disjoint, half-open ranges of epoch milliseconds: what retention keeps
//! apart (the spans an import brought, what may be gone, what a pass deletes). Pure: no clock, no
//! database. `i64::MIN` stands for "since ever".
//!
//! Invariant: the ranges are sorted, none is empty, and no two touch or overlap (touching ones are
//! joined), so two sets of the same times are equal.

/// A set of times: `[from, to)` ranges, sorted and disjoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeRanges(Vec<(i64, i64)>);

impl TimeRanges {
    pub fn empty() -> TimeRanges {
        TimeRanges(Vec::new())
    }

    /// Every time before `to`.
    pub fn before(to: i64) -> TimeRanges {
        TimeRanges::from_ranges([(i64::MIN, to)])
    }

    /// The union of `ranges` (in any order; empty ones are dropped).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (i64, i64)>) -> TimeRanges {
        let mut sorted: Vec<(i64, i64)> = ranges.into_iter().filter(|(f, t)| f < t).collect();
        sorted.sort_unstable();
        let mut joined: Vec<(i64, i64)> = Vec::with_capacity(sorted.len());
        for (from, to) in sorted {
            match joined.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => joined.push((from, to)),
            }
        }
        TimeRanges(joined)
    }

    pub fn ranges(&self) -> &[(i64, i64)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The times in both.
    pub fn intersect(&self, other: &TimeRanges) -> TimeRanges {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let (from, to) = (a.0.max(b.0), a.1.min(b.1));
            if from < to {
                out.push((from, to));
            }
            if a.1 < b.1 { i += 1 } else { j += 1 }
        }
        TimeRanges::from_ranges(out)
    }

    /// The times in `self` and not in `other`.
    pub fn minus(&self, other: &TimeRanges) -> TimeRanges {
        let mut out = Vec::new();
        for &(from, to) in &self.0 {
            let mut start = from;
            for &(cut_from, cut_to) in &other.0 {
                if cut_to <= start || cut_from >= to {
                    continue;
                }
                if cut_from > start {
                    out.push((start, cut_from));
                }
                start = start.max(cut_to);
            }
            if start < to {
                out.push((start, to));
            }
        }
        TimeRanges::from_ranges(out)
    }

    pub fn union(&self, other: &TimeRanges) -> TimeRanges {
        TimeRanges::from_ranges(self.0.iter().chain(&other.0).copied())
    }

    /// Every range made wider by `by` on both sides (saturating at the ends of time).
    pub fn widened(&self, by: i64) -> TimeRanges {
        TimeRanges::from_ranges(
            self.0
                .iter()
                .map(|&(from, to)| (from.saturating_sub(by), to.saturating_add(by))),
        )
    }

    /// Whether any time of `[from, to)` is in the set.
    pub fn overlaps(&self, from: i64, to: i64) -> bool {
        self.0.iter().any(|&(f, t)| f < to && from < t)
    }

    /// The end of the last range; `None` when empty.
    pub fn end(&self) -> Option<i64> {
        self.0.last().map(|r| r.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[(i64, i64)]) -> TimeRanges {
        TimeRanges::from_ranges(ranges.iter().copied())
    }

    #[test]
    fn ranges_are_joined_sorted_and_never_empty() {
        assert_eq!(
            set(&[(5, 7), (1, 3), (3, 4), (6, 9), (10, 10)]).ranges(),
            &[(1, 4), (5, 9)]
        );
        assert!(set(&[(3, 3)]).is_empty());
    }

    #[test]
    fn what_retention_deletes_is_before_the_cut_off_minus_the_imported_spans() {
        // Imported [10, 20) and [30, 40); collected rows go before 35.
        let imported = set(&[(10, 20), (30, 40)]);
        let collected = TimeRanges::before(35).minus(&imported);
        assert_eq!(
            collected.ranges(),
            &[(i64::MIN, 10), (20, 30)],
            "collected rows are deleted around the imported spans"
        );
        // Imported rows go before 15 when a period names them.
        assert_eq!(
            imported.intersect(&TimeRanges::before(15)).ranges(),
            &[(10, 15)]
        );
        assert_eq!(
            collected
                .union(&imported.intersect(&TimeRanges::before(15)))
                .ranges(),
            &[(i64::MIN, 15), (20, 30)]
        );
    }

    #[test]
    fn widening_and_overlap() {
        let gone = set(&[(100, 200)]).widened(10);
        assert_eq!(gone.ranges(), &[(90, 210)]);
        assert!(gone.overlaps(50, 91));
        assert!(!gone.overlaps(50, 90));
        assert!(!gone.overlaps(210, 300));
        assert_eq!(
            TimeRanges::before(5).widened(10).ranges(),
            &[(i64::MIN, 15)]
        );
        assert_eq!(set(&[(1, 2), (4, 6)]).end(), Some(6));
        assert_eq!(
            TimeRanges::empty().minus(&set(&[(1, 2)])),
            TimeRanges::empty()
        );
        assert_eq!(set(&[(0, 10)]).minus(&set(&[(0, 10)])), TimeRanges::empty());
        assert_eq!(
            set(&[(0, 10)]).minus(&set(&[(2, 3), (5, 6)])).ranges(),
            &[(0, 2), (3, 5), (6, 10)]
        );
    }
}
