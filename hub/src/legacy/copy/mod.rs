//! The copy itself: the catalog the samples need, then every legacy sample table page by page,
//! inside the caller's transaction.
//!
//! Every row read ends in exactly one place: inserted; an exact duplicate (its device, time and
//! every copied value equal a stored row); a conflict (same device and time, other values: kept
//! in `legacy_conflicts` as it was); or unplaceable (unreadable time or device). Battery power and
//! current are turned to solarhub's sign on the way (the old app stored them positive when
//! charging), and battery power the old app never stored is derived from voltage × current.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::catalog::{
    Battery, BatteryCell, BatteryPack, Installation, Inverter, InverterArray, Meter, System,
    id_problem,
};
use crate::config_import::{battery_id, cell_id};
use crate::db::legacy_imports::{self, LegacyConflictRow};
use crate::db::legacy_source::{self as source, LegacyTable};
use crate::db::retention::{self, SampleTable};
use crate::db::samples::{
    ArraySample, BatteryBankSample, BatteryCellSample, BatteryUnitSample, EnergySample,
    MeterSample, SampleRow,
};
use crate::db::{DbConnection, DbError, catalog};

use super::report::{LegacyReport, TableReport};
use super::timestamps::TimestampKind;
use super::zone::ZoneChoice;

/// Reads one page of a legacy table: rows after a rowid, at most a count.
type PageReader<Row> = fn(&mut DbConnection, &LegacyTable, i64, i64) -> Result<Vec<Row>, DbError>;

/// A legacy row as a sample, with the timestamp as the old app wrote it; `None` when its time or
/// device cannot be read.
type Converted<Sample> = Result<Option<(String, Sample)>, DbError>;

/// Rows read from a legacy table per page.
const PAGE_ROWS: i64 = 5_000;

/// Id of the array that takes inverters nothing places anywhere.
pub const UNASSIGNED_ARRAY_ID: &str = "legacy_unassigned";

/// Turns a legacy id into a valid slug (invalid characters become `_`, long ids are cut).
fn slug(raw: &str) -> String {
    let mut id: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    id.truncate(crate::catalog::MAX_ID_LEN);
    if id.is_empty() { "unknown".into() } else { id }
}

/// The other sign: the old app's battery power and current are positive when charging,
/// solarhub's when discharging. Zero stays zero (not -0).
fn flipped(value: Option<f64>) -> Option<f64> {
    value.map(|v| if v == 0.0 { 0.0 } else { -v })
}

/// Where conflicting rows are recorded as coming from.
pub(crate) struct Provenance {
    /// The legacy file, as given.
    pub(crate) source: String,
    pub(crate) import_id: String,
}

pub(crate) struct Copier<'a> {
    pub(crate) target: &'a mut DbConnection,
    /// `None` when the legacy tables are in the target database itself (in-place upgrade).
    pub(crate) source: Option<&'a mut DbConnection>,
    pub(crate) prefix: &'a str,
    pub(crate) zone: &'a ZoneChoice,
    pub(crate) provenance: &'a Provenance,
    view: CatalogView,
    pub(crate) report: LegacyReport,
    /// Where each table's copy reports its rows (silent unless set).
    pub(crate) progress: crate::progress::Progress,
}

impl<'a> Copier<'a> {
    pub(crate) fn new(
        target: &'a mut DbConnection,
        source: Option<&'a mut DbConnection>,
        prefix: &'a str,
        system: &System,
        zone: &'a ZoneChoice,
        provenance: &'a Provenance,
        report: LegacyReport,
    ) -> Result<Copier<'a>, DbError> {
        let view = CatalogView::load(target, &system.system_id)?;
        Ok(Copier {
            target,
            source,
            prefix,
            zone,
            provenance,
            view,
            report,
            progress: crate::progress::Progress::silent(),
        })
    }

    pub(crate) fn source(&mut self) -> &mut DbConnection {
        match &mut self.source {
            Some(source) => source,
            None => self.target,
        }
    }

    pub(crate) fn system_id(&self) -> &str {
        &self.view.system_id
    }

    fn table(&mut self, legacy_name: &str) -> Result<Option<LegacyTable>, DbError> {
        let name = format!("{}{legacy_name}", self.prefix);
        LegacyTable::inspect(self.source(), &name)
    }

    /// A legacy timestamp of `table` written for `device`, counted by how it was read.
    fn timestamp(&mut self, table: &str, device: Option<&str>, text: Option<&str>) -> Option<i64> {
        let (ms, kind) = self.zone.read(table, device, text?)?;
        match kind {
            TimestampKind::WithOffset => {}
            TimestampKind::Naive => self.report.naive_timestamps += 1,
            TimestampKind::NaiveAmbiguous => {
                self.report.naive_timestamps += 1;
                self.report.ambiguous_timestamps += 1;
            }
            TimestampKind::NaiveInGap => {
                self.report.naive_timestamps += 1;
                self.report.nonexistent_timestamps += 1;
            }
        }
        Some(ms)
    }

    /// A legacy row's raw timestamp, its device's id and its time, or `None` when one cannot be
    /// read (the device's id is taken, and any rename recorded, even when its time cannot).
    fn keyed(
        &mut self,
        table: &str,
        device: Option<&str>,
        raw_ts: &Option<String>,
    ) -> Option<(String, String, i64)> {
        let (Some(raw_ts), Some(id)) = (raw_ts.clone(), self.id(device)) else {
            return None;
        };
        let ts = self.timestamp(table, device, Some(&raw_ts))?;
        Some((raw_ts, id, ts))
    }

    pub(super) fn id(&mut self, raw: Option<&str>) -> Option<String> {
        let raw = raw?.trim();
        if raw.is_empty() {
            return None;
        }
        if id_problem(raw).is_none() {
            return Some(raw.to_owned());
        }
        let id = slug(raw);
        self.report.renamed_ids.insert(raw.to_owned(), id.clone());
        Some(id)
    }

    /// Copies one legacy sample table, page by page in rowid order (so the first of two rows
    /// with one key is the one stored). `convert` turns a legacy row into a sample (and says its
    /// raw timestamp), or `None` when its time or device cannot be read.
    fn copy_table<Row, Sample: SampleRow>(
        &mut self,
        legacy_name: &str,
        numeric_columns: &[&str],
        read_page: PageReader<Row>,
        row_id: fn(&Row) -> i64,
        convert: fn(&mut Self, &Row, &mut TableReport) -> Converted<Sample>,
    ) -> Result<(), DbError> {
        let Some(table) = self.table(legacy_name)? else {
            return Ok(());
        };
        let mut stats = TableReport {
            non_numeric_values: table.count_non_numeric(self.source(), numeric_columns)? as u64,
            ..TableReport::default()
        };
        let total = crate::db::introspect::row_count(self.source(), &table.name)?;
        let task = self.progress.task(
            format!("copying {legacy_name}"),
            Some(total.max(0) as u64),
            "rows",
        );
        let mut after = 0;
        loop {
            let page = read_page(self.source(), &table, after, PAGE_ROWS)?;
            let Some(last) = page.last() else { break };
            after = row_id(last);
            task.advance(page.len() as u64);
            let mut rows: Vec<(i64, String, Sample)> = Vec::with_capacity(page.len());
            for legacy in &page {
                stats.read += 1;
                match convert(self, legacy, &mut stats)? {
                    Some((raw_ts, sample)) => rows.push((row_id(legacy), raw_ts, sample)),
                    None => stats.unplaceable += 1,
                }
            }
            self.store_page(legacy_name, rows, &mut stats)?;
        }
        task.finish();
        self.report.tables.insert(legacy_name.to_owned(), stats);
        Ok(())
    }

    /// Sorts a page's samples into new rows, exact duplicates and conflicts, and writes them.
    fn store_page<Sample: SampleRow>(
        &mut self,
        legacy_name: &str,
        rows: Vec<(i64, String, Sample)>,
        stats: &mut TableReport,
    ) -> Result<(), DbError> {
        let (Some(from), Some(to)) = (
            rows.iter().map(|r| r.2.ts()).min(),
            rows.iter().map(|r| r.2.ts()).max(),
        ) else {
            return Ok(());
        };
        let devices: Vec<String> = rows
            .iter()
            .map(|r| r.2.device_id().to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut known: HashMap<(String, i64), Sample> =
            Sample::stored(self.target, &devices, from, to)?
                .into_iter()
                .map(|s| ((s.device_id().to_owned(), s.ts()), s))
                .collect();
        let mut new_keys: Vec<(String, i64)> = Vec::new();
        let mut conflicts = Vec::new();
        for (rowid, raw_ts, sample) in rows {
            let key = (sample.device_id().to_owned(), sample.ts());
            match known.get(&key) {
                Some(stored) if *stored == sample => stats.duplicates += 1,
                Some(_) => {
                    stats.conflicts += 1;
                    conflicts.push(LegacyConflictRow {
                        source: self.provenance.source.clone(),
                        source_table: legacy_name.to_owned(),
                        source_rowid: rowid,
                        import_id: self.provenance.import_id.clone(),
                        device_id: key.0.clone(),
                        ts: key.1,
                        raw_ts,
                        values_json: serde_json::to_string(&sample)
                            .map_err(|e| DbError::Invalid(e.to_string()))?,
                    });
                }
                None => {
                    new_keys.push(key.clone());
                    known.insert(key, sample);
                }
            }
        }
        let new_rows: Vec<Sample> = new_keys
            .iter()
            .filter_map(|key| known.remove(key))
            .collect();
        stats.inserted += Sample::insert_new(self.target, &new_rows)? as u64;
        self.record_imported(&new_rows)?;
        legacy_imports::record_conflicts(self.target, &conflicts)?;
        Ok(())
    }

    /// Records the span of the rows this import inserted per group, so retention keeps them as
    /// what the user brought.
    fn record_imported<Sample: SampleRow>(&mut self, rows: &[Sample]) -> Result<(), DbError> {
        let Some(table) = SampleTable::parse(Sample::TABLE) else {
            return Ok(());
        };
        let mut spans: HashMap<&str, ((i64, i64), i64)> = HashMap::new();
        for row in rows {
            let span = spans
                .entry(row.retention_group())
                .or_insert(((row.ts(), row.ts()), 0));
            span.0 = (span.0.0.min(row.ts()), span.0.1.max(row.ts()));
            span.1 += 1;
        }
        for (group, (span, count)) in spans {
            retention::record_imported(
                self.target,
                &self.provenance.import_id,
                table,
                group,
                span,
                count,
            )?;
        }
        Ok(())
    }

    pub(crate) fn copy_samples(&mut self) -> Result<(), DbError> {
        self.copy_table(
            "energy_samples",
            source::ENERGY_NUMERIC_COLUMNS,
            source::read_energy_page,
            |row| row.row_id,
            Self::energy_sample,
        )?;
        self.copy_table(
            "array_samples",
            &[
                "pv_power_w",
                "load_power_w",
                "grid_power_w",
                "batt_power_w",
                "batt_soc_pct",
                "batt_voltage_v",
                "batt_current_a",
            ],
            source::read_array_page,
            |row| row.row_id,
            Self::array_sample,
        )?;
        self.copy_table(
            "battery_bank_samples",
            &[
                "voltage",
                "current",
                "temperature",
                "soc",
                "batteries_count",
                "cells_per_battery",
            ],
            source::read_bank_page,
            |row| row.row_id,
            Self::bank_sample,
        )?;
        self.copy_table(
            "battery_unit_samples",
            &[
                "power",
                "voltage",
                "current",
                "temperature",
                "soc",
                "bat_events",
                "power_events",
                "sys_events",
            ],
            source::read_unit_page,
            |row| row.row_id,
            Self::unit_sample,
        )?;
        self.copy_table(
            "battery_cell_samples",
            &["power", "cell", "voltage", "temperature", "soc"],
            source::read_cell_page,
            |row| row.row_id,
            Self::cell_sample,
        )?;
        self.copy_table(
            "meter_samples",
            &[
                "grid_power_w",
                "grid_voltage_v",
                "grid_current_a",
                "grid_frequency_hz",
                "grid_import_wh",
                "grid_export_wh",
                "energy_kwh",
                "power_factor",
                "voltage_phase_a",
                "voltage_phase_b",
                "voltage_phase_c",
                "current_phase_a",
                "current_phase_b",
                "current_phase_c",
                "power_phase_a",
                "power_phase_b",
                "power_phase_c",
            ],
            source::read_meter_page,
            |row| row.row_id,
            Self::meter_sample,
        )
    }
}

mod placeholders;
mod rows;

use placeholders::CatalogView;
