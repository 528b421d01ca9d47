//! How every benchmark reports a figure (BENCHMARKS.md): a line for people with the figure, the
//! baseline measured in the same run, the ratio and the target; then one machine-readable line,
//! `BENCH {json}`, that `grep '^BENCH '` collects.

/// Which way a ratio has to go to meet its target.
#[allow(dead_code)]
pub(crate) enum Target {
    /// The ratio figure / baseline must be at least this.
    AtLeast(f64),
    /// The ratio figure / baseline must be at most this.
    AtMost(f64),
    /// An absolute bound on the figure itself (no ratio target).
    FigureAtMost(f64),
    /// An absolute lower bound on the figure itself.
    FigureAtLeast(f64),
}

pub(crate) struct Figure<'a> {
    /// `bench.what.backend`, e.g. `ingest.streamed.postgres`.
    pub(crate) name: &'a str,
    pub(crate) figure: f64,
    pub(crate) baseline: f64,
    pub(crate) unit: &'a str,
    /// What the baseline is, in words.
    pub(crate) baseline_is: &'a str,
    pub(crate) target: Target,
}

impl Figure<'_> {
    pub(crate) fn ratio(&self) -> f64 {
        if self.baseline == 0.0 {
            f64::NAN
        } else {
            self.figure / self.baseline
        }
    }

    pub(crate) fn met(&self) -> bool {
        match self.target {
            Target::AtLeast(t) => self.ratio() >= t,
            Target::AtMost(t) => self.ratio() <= t,
            Target::FigureAtMost(t) => self.figure <= t,
            Target::FigureAtLeast(t) => self.figure >= t,
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::AtLeast(t) => format!("ratio >= {t}"),
            Target::AtMost(t) => format!("ratio <= {t}"),
            Target::FigureAtMost(t) => format!("{} <= {t}", self.unit),
            Target::FigureAtLeast(t) => format!("{} >= {t}", self.unit),
        }
    }

    /// Prints the figure for people, then its machine-readable line.
    pub(crate) fn print(&self) {
        println!(
            "{}: {:.3} {} against {:.3} {} ({}): ratio {:.3}, target {}: {}",
            self.name,
            self.figure,
            self.unit,
            self.baseline,
            self.unit,
            self.baseline_is,
            self.ratio(),
            self.target_text(),
            if self.met() { "met" } else { "NOT met" }
        );
        println!(
            "BENCH {}",
            serde_json::json!({
                "name": self.name,
                "figure": self.figure,
                "baseline": self.baseline,
                "unit": self.unit,
                "baseline_is": self.baseline_is,
                "ratio": self.ratio(),
                "target": self.target_text(),
                "met": self.met(),
            })
        );
    }
}

/// The median of `values` (not empty).
#[allow(dead_code)]
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
