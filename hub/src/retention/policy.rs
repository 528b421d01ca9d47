//! How long each sample table keeps its rows: the defaults, the `TABLE=PERIOD` settings that
//! change them, the rows an upgrade or an import brought (kept forever unless a period is named
//! for them), and the one rule between tables (an aggregate outlives the samples it is made from).
//! Pure: no clock, no database.
//!
//! What the user brought is theirs: no default ever deletes an imported row. A table's collected
//! rows follow the defaults, but the operator's naming a period for a table (any period, even the
//! default) is what lets a first pass delete rows that were already old when the hub started.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::db::retention::SampleTable;

/// How long a table keeps a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Keep {
    For(Duration),
    Forever,
}

impl Keep {
    /// The time before which rows go, at `now` (epoch ms); `None` for forever.
    pub fn cutoff(self, now: i64) -> Option<i64> {
        match self {
            Keep::Forever => None,
            Keep::For(period) => Some(now.saturating_sub(period.as_millis() as i64)),
        }
    }
}

impl std::fmt::Display for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keep::Forever => f.write_str("forever"),
            Keep::For(period) => {
                let secs = period.as_secs();
                for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
                    if secs >= size && secs % size == 0 {
                        return write!(f, "{}{unit}", secs / size);
                    }
                }
                write!(f, "{secs}s")
            }
        }
    }
}

const DAY: u64 = 86_400;

/// What a new hub keeps of what it collects: raw samples as long as the old app did (a year),
/// battery units and cells (many rows per pack per poll) and the derived array samples less, and
/// the aggregates and every rollup forever.
fn default_keep(table: SampleTable) -> Keep {
    let days = |n: u64| Keep::For(Duration::from_secs(n * DAY));
    match table {
        SampleTable::Energy | SampleTable::Meter | SampleTable::Bank => days(365),
        SampleTable::Array | SampleTable::Unit => days(90),
        SampleTable::Cell => days(30),
        SampleTable::Energy5m
        | SampleTable::Meter5m
        | SampleTable::Bank5m
        | SampleTable::Unit1h
        | SampleTable::Cell1h => Keep::Forever,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{setting:?}: write TABLE=PERIOD, e.g. battery_cell_samples=30d")]
    NotASetting { setting: String },
    #[error("{setting:?}: no sample table {table:?}; the tables are {known}")]
    UnknownTable {
        setting: String,
        table: String,
        known: String,
    },
    #[error(
        "{setting:?}: {period:?} is not a period: write a whole number with d, h, m or s \
         (365d, 12h, 90m), or forever"
    )]
    BadPeriod { setting: String, period: String },
    #[error(
        "{setting:?}: {table} holds aggregates the hub makes, not samples an import brought; \
         --retention sets its period"
    )]
    NotImported {
        setting: String,
        table: &'static str,
    },
    #[error(
        "{aggregates} would be kept {aggregates_keep}, shorter than {raw} ({raw_keep}): the \
         aggregates are made from those samples and must outlive them"
    )]
    AggregatesShorter {
        aggregates: &'static str,
        aggregates_keep: Keep,
        raw: &'static str,
        raw_keep: Keep,
    },
}

/// How long every sample table keeps its rows: those solarhub collected, and those an upgrade or
/// an import brought. Rollups are kept forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    keep: BTreeMap<SampleTable, Keep>,
    /// Periods named for imported rows; a raw table not here keeps them forever.
    imported: BTreeMap<SampleTable, Keep>,
    /// Tables whose period for collected rows the operator (or the code building the policy)
    /// named, rather than took by default.
    named: BTreeSet<SampleTable>,
    /// How long the audit trail (`audit_events`) keeps its rows.
    audit: Keep,
}

/// The table name that sets the audit trail's period (`--retention audit_events=730d`).
pub const AUDIT_TABLE: &str = "audit_events";

/// What a new hub keeps of its audit trail: a year, like raw samples.
const DEFAULT_AUDIT_KEEP: Keep = Keep::For(Duration::from_secs(365 * DAY));

impl Default for Policy {
    fn default() -> Self {
        Policy {
            audit: DEFAULT_AUDIT_KEEP,
            keep: SampleTable::ALL
                .into_iter()
                .map(|table| (table, default_keep(table)))
                .collect(),
            imported: BTreeMap::new(),
            named: BTreeSet::new(),
        }
    }
}

impl Policy {
    /// The defaults changed by `settings` (`TABLE=PERIOD` each, later ones winning).
    pub fn from_settings<S: AsRef<str>>(settings: &[S]) -> Result<Policy, PolicyError> {
        Policy::from_flags(settings, &[] as &[&str])
    }

    /// The defaults changed by `collected` (`--retention`) and periods for imported rows named by
    /// `imported` (`--retention-imported`), `TABLE=PERIOD` each, later ones winning.
    pub fn from_flags<S: AsRef<str>, I: AsRef<str>>(
        collected: &[S],
        imported: &[I],
    ) -> Result<Policy, PolicyError> {
        let mut policy = Policy::default();
        for setting in collected {
            if let Some(period) = setting
                .as_ref()
                .split_once('=')
                .filter(|(table, _)| table.trim() == AUDIT_TABLE)
                .map(|(_, period)| period.trim())
            {
                policy.audit = parse_period(period).ok_or_else(|| PolicyError::BadPeriod {
                    setting: setting.as_ref().to_owned(),
                    period: period.to_owned(),
                })?;
                continue;
            }
            let (table, keep) = parse_setting(setting.as_ref())?;
            policy.keep.insert(table, keep);
            policy.named.insert(table);
        }
        for setting in imported {
            let (table, keep) = parse_setting(setting.as_ref())?;
            if !table.is_raw() {
                return Err(PolicyError::NotImported {
                    setting: setting.as_ref().to_owned(),
                    table: table.name(),
                });
            }
            policy.imported.insert(table, keep);
        }
        policy.check()?;
        Ok(policy)
    }

    /// Every raw table's collected rows kept for `keep` (a test's small periods), named; the
    /// aggregates and imported rows forever.
    pub fn raw_for(keep: Keep) -> Policy {
        let mut policy = Policy::default();
        for table in SampleTable::ALL {
            if table.is_raw() {
                policy.keep.insert(table, keep);
                policy.named.insert(table);
            }
        }
        policy
    }

    /// `self` with the collected rows of `table` kept for `keep`, named.
    pub fn with(mut self, table: SampleTable, keep: Keep) -> Result<Policy, PolicyError> {
        self.keep.insert(table, keep);
        self.named.insert(table);
        self.check()?;
        Ok(self)
    }

    /// `self` with the imported rows of the raw table `table` kept for `keep`.
    pub fn with_imported(mut self, table: SampleTable, keep: Keep) -> Result<Policy, PolicyError> {
        if !table.is_raw() {
            return Err(PolicyError::NotImported {
                setting: format!("{}={keep}", table.name()),
                table: table.name(),
            });
        }
        self.imported.insert(table, keep);
        self.check()?;
        Ok(self)
    }

    /// How long the audit trail keeps its rows.
    pub fn keep_audit(&self) -> Keep {
        self.audit
    }

    /// How long the rows solarhub collected (and every aggregate row) are kept.
    pub fn keep(&self, table: SampleTable) -> Keep {
        self.keep
            .get(&table)
            .copied()
            .unwrap_or_else(|| default_keep(table))
    }

    /// How long the rows an upgrade or an import brought are kept: forever unless named; `None`
    /// for an aggregate table (its rows are the hub's own).
    pub fn keep_imported(&self, table: SampleTable) -> Option<Keep> {
        table
            .is_raw()
            .then(|| self.imported.get(&table).copied().unwrap_or(Keep::Forever))
    }

    /// Whether the period of `table`'s collected rows was named rather than taken by default.
    pub fn is_named(&self, table: SampleTable) -> bool {
        self.named.contains(&table)
    }

    fn check(&self) -> Result<(), PolicyError> {
        for table in SampleTable::ALL {
            let Some(raw) = table.aggregated_from() else {
                continue;
            };
            // Imported rows kept forever are not a reason to keep their aggregates forever.
            let raw_keep = self
                .keep_imported(raw)
                .filter(|keep| *keep != Keep::Forever)
                .map_or(self.keep(raw), |imported| imported.max(self.keep(raw)));
            if self.keep(table) < raw_keep {
                return Err(PolicyError::AggregatesShorter {
                    aggregates: table.name(),
                    aggregates_keep: self.keep(table),
                    raw: raw.name(),
                    raw_keep,
                });
            }
        }
        Ok(())
    }
}

/// One `TABLE=PERIOD` setting.
pub fn parse_setting(setting: &str) -> Result<(SampleTable, Keep), PolicyError> {
    let Some((table, period)) = setting.split_once('=') else {
        return Err(PolicyError::NotASetting {
            setting: setting.to_owned(),
        });
    };
    let table = SampleTable::parse(table.trim()).ok_or_else(|| PolicyError::UnknownTable {
        setting: setting.to_owned(),
        table: table.trim().to_owned(),
        known: format!(
            "{}, and {AUDIT_TABLE} (for --retention)",
            SampleTable::ALL.map(SampleTable::name).join(", ")
        ),
    })?;
    let keep = parse_period(period.trim()).ok_or_else(|| PolicyError::BadPeriod {
        setting: setting.to_owned(),
        period: period.trim().to_owned(),
    })?;
    Ok((table, keep))
}

/// `forever`, or a whole number above 0 with `d`, `h`, `m` or `s`.
pub(crate) fn parse_period(text: &str) -> Option<Keep> {
    if text.eq_ignore_ascii_case("forever") {
        return Some(Keep::Forever);
    }
    let unit = text.chars().last()?;
    let size = match unit {
        'd' => DAY,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return None,
    };
    let count: u64 = text[..text.len() - 1].parse().ok()?;
    let secs = count.checked_mul(size).filter(|secs| *secs > 0)?;
    Some(Keep::For(Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: u64) -> Keep {
        Keep::For(Duration::from_secs(n * DAY))
    }

    #[test]
    fn defaults_keep_cells_shorter_than_inverters_and_aggregates_forever() {
        let policy = Policy::default();
        assert_eq!(policy.keep(SampleTable::Energy), days(365));
        assert_eq!(policy.keep(SampleTable::Cell), days(30));
        assert!(policy.keep(SampleTable::Cell) < policy.keep(SampleTable::Energy));
        assert_eq!(policy.keep(SampleTable::Energy5m), Keep::Forever);
        assert_eq!(policy.keep(SampleTable::Cell1h), Keep::Forever);
        assert_eq!(policy.keep(SampleTable::Unit1h), Keep::Forever);
    }

    #[test]
    fn settings_change_the_defaults_and_say_what_is_wrong() {
        let policy =
            Policy::from_settings(&["battery_cell_samples=7d", "energy_samples=forever"]).unwrap();
        assert_eq!(policy.keep(SampleTable::Cell), days(7));
        assert_eq!(policy.keep(SampleTable::Energy), Keep::Forever);
        assert_eq!(policy.keep(SampleTable::Meter), days(365));
        assert_eq!(
            parse_setting("meter_samples=90m").unwrap().1,
            Keep::For(Duration::from_secs(5400))
        );

        let error = Policy::from_settings(&["cells=7d"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("no sample table \"cells\""), "{error}");
        assert!(error.contains("battery_cell_samples"), "{error}");
        for bad in [
            "energy_samples=7",
            "energy_samples=0d",
            "energy_samples=-1d",
        ] {
            let error = Policy::from_settings(&[bad]).unwrap_err().to_string();
            assert!(error.contains("is not a period"), "{bad}: {error}");
        }
        let error = Policy::from_settings(&["energy_samples"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("TABLE=PERIOD"), "{error}");
    }

    #[test]
    fn aggregates_must_outlive_their_samples() {
        let error = Policy::from_settings(&["energy_samples_5m=30d"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "energy_samples_5m would be kept 30d, shorter than energy_samples (365d): the \
             aggregates are made from those samples and must outlive them"
        );
        assert!(Policy::from_settings(&["energy_samples=20d", "energy_samples_5m=30d"]).is_ok());
        let error = Policy::from_flags(
            &["battery_cell_samples_1h=60d"],
            &["battery_cell_samples=90d"],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("shorter than battery_cell_samples (90d)"),
            "{error}"
        );
    }

    #[test]
    fn imported_rows_are_kept_forever_unless_named() {
        let policy = Policy::default();
        for table in SampleTable::ALL {
            assert_eq!(
                policy.keep_imported(table),
                table.is_raw().then_some(Keep::Forever),
                "{}",
                table.name()
            );
            assert!(!policy.is_named(table));
        }
        let policy =
            Policy::from_flags(&["energy_samples=365d"], &["battery_cell_samples=30d"]).unwrap();
        assert!(policy.is_named(SampleTable::Energy));
        assert!(!policy.is_named(SampleTable::Cell));
        assert_eq!(policy.keep_imported(SampleTable::Cell), Some(days(30)));
        assert_eq!(
            policy.keep_imported(SampleTable::Energy),
            Some(Keep::Forever)
        );
        let error = Policy::from_flags(&[] as &[&str], &["energy_samples_5m=30d"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("aggregates the hub makes"), "{error}");
    }

    #[test]
    fn the_cutoff_is_now_minus_the_period() {
        assert_eq!(days(1).cutoff(100_000_000), Some(100_000_000 - 86_400_000));
        assert_eq!(Keep::Forever.cutoff(100_000_000), None);
        assert_eq!(days(2).to_string(), "2d");
        assert_eq!(Keep::For(Duration::from_secs(90)).to_string(), "90s");
    }
}
