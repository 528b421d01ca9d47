//! How the old app's own figures compare with solarhub's rollups recomputed from the same
//! samples: a check of the upgrade a user can read, shown after it and by `Recompute`.

use std::collections::HashMap;
use std::fmt;

use crate::db::legacy_source::{self as source, LEGACY_PREFIX, LegacyTable};
use crate::db::rollups::{EnergyColumns, FROM_SAMPLES};
use crate::db::{DbConnection, DbError};

/// How the old app's own hourly and daily figures compare with the recomputed rollups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegacyComparison {
    pub hours_compared: usize,
    pub hours_differing: usize,
    pub days_compared: usize,
    pub days_differing: usize,
    /// The first differences, as sentences.
    pub differences: Vec<String>,
}

impl fmt::Display for LegacyComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the old app's figures: {} hours compared, {} differ; {} days compared, {} differ \
             (by more than 0.01 kWh and 1 %)",
            self.hours_compared, self.hours_differing, self.days_compared, self.days_differing
        )?;
        for difference in &self.differences {
            write!(f, "\n  {difference}")?;
        }
        Ok(())
    }
}

/// The most differences a comparison lists.
const DIFFERENCES_LISTED: usize = 10;

fn differs(legacy: f64, ours: Option<f64>) -> bool {
    let ours = ours.unwrap_or(0.0);
    let tolerance = 0.01f64.max(0.01 * legacy.abs().max(ours.abs()));
    (legacy - ours).abs() > tolerance
}

fn show(value: Option<f64>) -> String {
    value.map_or("nothing".to_owned(), |v| format!("{v:.3} kWh"))
}

/// The old app's table `name`: `legacy_<name>` in an upgraded file, else `<name>` unless that is
/// solarhub's own (an upgraded file without the old table).
fn old_table(conn: &mut DbConnection, name: &str) -> Result<Option<LegacyTable>, DbError> {
    if let Some(table) = LegacyTable::inspect(conn, &format!("{LEGACY_PREFIX}{name}"))? {
        return Ok(Some(table));
    }
    Ok(LegacyTable::inspect(conn, name)?.filter(|table| !table.has("bucket_start")))
}

/// Compares the old app's `hourly_energy` and `pv_daily` (in `legacy`, a SQLite file) with the
/// rollups of `system_id` in `target`. Hours are matched by inverter, local date and hour (the two
/// hours of a fall-back night are added up, as the old app could not tell them apart).
pub fn compare_with_legacy(
    legacy: &mut DbConnection,
    target: &mut DbConnection,
    system_id: &str,
) -> Result<LegacyComparison, DbError> {
    use crate::db::rollups::{self, Level};
    let mut comparison = LegacyComparison::default();
    if !matches!(legacy, DbConnection::Sqlite(_)) {
        return Ok(comparison);
    }
    let hours = rollups::load_rows(target, system_id, i64::MIN, i64::MAX, Level::Hours)?;
    let days = rollups::load_rows(target, system_id, i64::MIN, i64::MAX, Level::Days)?;
    let mut ours: HashMap<(String, String, i64), [Option<f64>; 6]> = HashMap::new();
    // Rows carried over from the old app are its own figures: nothing to compare.
    let carried: std::collections::HashSet<(&str, &str, i64)> = hours
        .inverter_hours
        .iter()
        .filter(|row| row.source != FROM_SAMPLES)
        .map(|row| {
            (
                row.inverter_id.as_str(),
                row.date.as_str(),
                i64::from(row.hour_start),
            )
        })
        .collect();
    for row in hours
        .inverter_hours
        .iter()
        .filter(|row| row.source == FROM_SAMPLES)
    {
        let entry = ours
            .entry((
                row.inverter_id.clone(),
                row.date.clone(),
                i64::from(row.hour_start),
            ))
            .or_default();
        for (total, value) in entry.iter_mut().zip(row.figures().kwh) {
            if let Some(v) = value {
                *total = Some(total.unwrap_or(0.0) + v);
            }
        }
    }
    let note = |comparison: &mut LegacyComparison, text: String| {
        if comparison.differences.len() < DIFFERENCES_LISTED {
            comparison.differences.push(text);
        }
    };
    if let Some(table) = old_table(legacy, "hourly_energy")? {
        const NAMES: [&str; 6] = [
            "solar",
            "load",
            "battery charge",
            "battery discharge",
            "grid import",
            "grid export",
        ];
        for row in source::read_legacy_hours(legacy, &table)? {
            let theirs = row.kwh();
            let (Some(inverter), Some(date), Some(hour)) = (row.inverter_id, row.date, row.hour)
            else {
                continue;
            };
            if carried.contains(&(inverter.as_str(), date.as_str(), hour)) {
                continue;
            }
            let mine = ours
                .get(&(inverter.clone(), date.clone(), hour))
                .copied()
                .unwrap_or_default();
            comparison.hours_compared += 1;
            let mut differing = false;
            for (q, name) in NAMES.iter().enumerate() {
                if let Some(legacy_value) = theirs[q]
                    && differs(legacy_value, mine[q])
                {
                    differing = true;
                    note(
                        &mut comparison,
                        format!(
                            "{inverter} {date} {hour:02}:00 {name}: {legacy_value:.3} kWh in the old app, {} recomputed",
                            show(mine[q])
                        ),
                    );
                }
            }
            comparison.hours_differing += usize::from(differing);
        }
    }
    if let Some(table) = old_table(legacy, "pv_daily")? {
        let ours: HashMap<(&str, &str), Option<f64>> = days
            .inverter_days
            .iter()
            .filter(|d| d.source == FROM_SAMPLES)
            .map(|d| ((d.inverter_id.as_str(), d.date.as_str()), d.solar_kwh))
            .collect();
        for row in source::read_legacy_pv_days(legacy, &table)? {
            let (Some(inverter), Some(day), Some(pv)) = (row.inverter_id, row.day, row.pv_kwh)
            else {
                continue;
            };
            if days
                .inverter_days
                .iter()
                .any(|d| d.source != FROM_SAMPLES && d.inverter_id == inverter && d.date == day)
            {
                continue;
            }
            comparison.days_compared += 1;
            let mine = ours
                .get(&(inverter.as_str(), day.as_str()))
                .copied()
                .flatten();
            if differs(pv, mine) {
                comparison.days_differing += 1;
                note(
                    &mut comparison,
                    format!(
                        "{inverter} {day} solar: {pv:.3} kWh in the old app, {} recomputed",
                        show(mine)
                    ),
                );
            }
        }
    }
    Ok(comparison)
}
