//! What an upgrade or import did, table by table, in figures that add up.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::zone::ZoneSource;

/// What one legacy sample table gave: every row read is accounted for exactly once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableReport {
    /// Rows read from the legacy table.
    pub read: u64,
    /// Rows written to the solarhub table.
    pub inserted: u64,
    /// Rows equal, key and every copied value, to a stored row: a repeat within the legacy table,
    /// or a row an earlier import already copied.
    pub duplicates: u64,
    /// Rows whose (device, time) is stored with other values: kept in `legacy_conflicts`.
    pub conflicts: u64,
    /// Rows that could not be placed because their timestamp or device id is unreadable.
    pub unplaceable: u64,
    /// Numeric values stored as text in the legacy table, read as missing.
    pub non_numeric_values: u64,
    /// Battery power and current turned from the old app's sign (positive charging) to solarhub's
    /// (positive discharging), counted per row.
    pub battery_signs_converted: u64,
    /// Rows whose battery power was derived from voltage × current (the old app stored no power).
    pub battery_power_derived: u64,
}

impl TableReport {
    /// Whether every row read is accounted for.
    pub fn adds_up(&self) -> bool {
        self.read == self.inserted + self.duplicates + self.conflicts + self.unplaceable
    }
}

/// What one of the old app's rollup tables gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupReport {
    /// Rows read.
    pub read: u64,
    /// Rows carried over (hours or days with no raw samples).
    pub carried: u64,
    /// Rows of hours or days that have raw samples: solarhub computes those itself.
    pub covered_by_samples: u64,
    /// Rows already carried over by an earlier run.
    pub already_carried: u64,
    /// Rows whose device, date or hour is unreadable.
    pub unplaceable: u64,
}

#[derive(Debug, Clone, Default)]
pub struct LegacyReport {
    pub source: PathBuf,
    pub backup: Option<PathBuf>,
    pub system_id: String,
    pub timezone: String,
    /// Where the timezone came from.
    pub timezone_source: Option<ZoneSource>,
    /// Per legacy sample table (by its original name).
    pub tables: BTreeMap<String, TableReport>,
    /// Per rollup table of the old app (by its original name).
    pub rollups: BTreeMap<String, RollupReport>,
    /// Catalog rows taken from the file's own hierarchy, as `kind id`.
    pub from_file: Vec<String>,
    /// Catalog rows created for ids found nowhere, as `kind id`.
    pub placeholders: Vec<String>,
    /// Other things the reader should know (zones passed over, systems folded, adapters left out).
    pub notes: Vec<String>,
    /// Timestamps without an offset.
    pub naive_timestamps: u64,
    /// Naive timestamps in a repeated (fall-back) hour: read as the first of the two.
    pub ambiguous_timestamps: u64,
    /// Naive timestamps in a skipped (spring-forward) hour: moved past the gap.
    pub nonexistent_timestamps: u64,
    /// The old app's tables that were kept (in place) or left in the file (import) without being
    /// copied.
    pub not_copied: Vec<String>,
    /// Sample ids that were not valid slugs, and the ids used instead.
    pub renamed_ids: BTreeMap<String, String>,
}

impl LegacyReport {
    pub fn inserted_total(&self) -> u64 {
        self.tables.values().map(|t| t.inserted).sum()
    }

    pub fn conflicts_total(&self) -> u64 {
        self.tables.values().map(|t| t.conflicts).sum()
    }

    /// The first table whose rows do not add up, if any.
    pub fn mismatch(&self) -> Option<(&str, &TableReport)> {
        self.tables
            .iter()
            .find(|(_, t)| !t.adds_up())
            .map(|(name, t)| (name.as_str(), t))
    }
}

impl fmt::Display for LegacyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "legacy database {} into system {} ({})",
            self.source.display(),
            self.system_id,
            self.timezone
        )?;
        if let Some(source) = &self.timezone_source {
            writeln!(f, "  timezone {} from {source}", self.timezone)?;
        }
        if let Some(backup) = &self.backup {
            writeln!(f, "  backup: {}", backup.display())?;
        }
        for (table, t) in &self.tables {
            writeln!(
                f,
                "  {table}: {} read = {} inserted + {} exact duplicates + {} conflicts + {} unplaceable; {} non-numeric values read as missing",
                t.read, t.inserted, t.duplicates, t.conflicts, t.unplaceable, t.non_numeric_values
            )?;
            if t.battery_signs_converted > 0 || t.battery_power_derived > 0 {
                writeln!(
                    f,
                    "    battery: {} rows turned to solarhub's sign (positive = discharging), {} with power derived from voltage x current",
                    t.battery_signs_converted, t.battery_power_derived
                )?;
            }
        }
        if self.conflicts_total() > 0 {
            writeln!(
                f,
                "  {} conflicting rows (same device and time as a stored row, other values) kept in table legacy_conflicts",
                self.conflicts_total()
            )?;
        }
        for (table, r) in &self.rollups {
            writeln!(
                f,
                "  the old app's {table}: {} read, {} carried over (no raw samples there), {} left to solarhub's own rollups (raw samples there), {} carried over before, {} unplaceable",
                r.read, r.carried, r.covered_by_samples, r.already_carried, r.unplaceable
            )?;
        }
        writeln!(
            f,
            "  timestamps: {} naive, {} ambiguous (read as the first of a repeated hour), {} in a DST gap",
            self.naive_timestamps, self.ambiguous_timestamps, self.nonexistent_timestamps
        )?;
        if !self.from_file.is_empty() {
            writeln!(
                f,
                "  from the file's own hierarchy: {}",
                self.from_file.join(", ")
            )?;
        }
        for placeholder in &self.placeholders {
            writeln!(f, "  placeholder created: {placeholder}")?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        for (from, to) in &self.renamed_ids {
            writeln!(f, "  id {from:?} is not a valid id; stored as {to:?}")?;
        }
        if !self.not_copied.is_empty() {
            writeln!(
                f,
                "  the old app's tables kept but not copied: {}",
                self.not_copied.join(", ")
            )?;
        }
        write!(f, "  {} rows inserted in all", self.inserted_total())
    }
}
