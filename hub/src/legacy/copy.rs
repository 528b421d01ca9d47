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

/// The catalog as the copy sees it, growing as rows are added.
struct CatalogView {
    system_id: String,
    arrays: HashSet<String>,
    inverter_array: HashMap<String, String>,
    meters: HashSet<String>,
    adapters: HashSet<String>,
    battery_arrays: HashSet<String>,
    /// Battery arrays that have attachments.
    attached: HashSet<String>,
    pack_battery_array: HashMap<String, Option<String>>,
    batteries: HashSet<String>,
    cells: HashSet<String>,
}

impl CatalogView {
    fn load(conn: &mut DbConnection, system_id: &str) -> Result<CatalogView, DbError> {
        let (_, existing, _) = catalog::load_catalog(conn)?;
        Ok(CatalogView {
            system_id: system_id.to_owned(),
            arrays: existing.arrays.iter().map(|a| a.array_id.clone()).collect(),
            inverter_array: existing
                .inverters
                .iter()
                .map(|i| (i.inverter_id.clone(), i.array_id.clone()))
                .collect(),
            meters: existing.meters.iter().map(|m| m.meter_id.clone()).collect(),
            adapters: existing
                .adapters
                .iter()
                .map(|a| a.adapter_id.clone())
                .collect(),
            battery_arrays: existing
                .battery_arrays
                .iter()
                .map(|b| b.battery_array_id.clone())
                .collect(),
            attached: existing
                .attachments
                .iter()
                .map(|a| a.battery_array_id.clone())
                .collect(),
            pack_battery_array: existing
                .packs
                .iter()
                .map(|p| (p.pack_id.clone(), p.battery_array_id.clone()))
                .collect(),
            batteries: existing
                .batteries
                .iter()
                .map(|b| b.battery_id.clone())
                .collect(),
            cells: existing.cells.iter().map(|c| c.cell_id.clone()).collect(),
        })
    }
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

    /// Creates `row`, a catalog row nothing but the samples knows, and reports it.
    fn add_placeholder(
        &mut self,
        row: impl Into<Installation>,
        description: String,
    ) -> Result<(), DbError> {
        catalog::insert_rows(self.target, &row.into())?;
        self.report.placeholders.push(description);
        Ok(())
    }

    /// Takes the file's own hierarchy rows that the catalog does not have yet (the config, when
    /// given, was applied first and wins).
    pub(crate) fn adopt(&mut self, rows: Installation) -> Result<(), DbError> {
        let mut new = Installation::default();
        let mut adopted = Vec::new();
        for array in rows.arrays {
            if self.view.arrays.insert(array.array_id.clone()) {
                adopted.push(format!("array {}", array.array_id));
                new.arrays.push(array);
            }
        }
        for battery_array in rows.battery_arrays {
            if self
                .view
                .battery_arrays
                .insert(battery_array.battery_array_id.clone())
            {
                adopted.push(format!("battery array {}", battery_array.battery_array_id));
                new.battery_arrays.push(battery_array);
            }
        }
        let mut devices: HashSet<String> = HashSet::new();
        for mut inverter in rows.inverters {
            if self.view.inverter_array.contains_key(&inverter.inverter_id) {
                continue;
            }
            if !self.view.arrays.contains(&inverter.array_id) {
                let array_id = inverter.array_id.clone();
                self.ensure_array(&array_id, format!("legacy array {array_id}"))?;
            }
            self.view
                .inverter_array
                .insert(inverter.inverter_id.clone(), inverter.array_id.clone());
            devices.insert(inverter.inverter_id.clone());
            if inverter
                .adapter_id
                .as_ref()
                .is_some_and(|a| self.view.adapters.contains(a))
            {
                inverter.adapter_id = None;
            }
            adopted.push(format!("inverter {}", inverter.inverter_id));
            new.inverters.push(inverter);
        }
        for mut meter in rows.meters {
            if !self.view.meters.insert(meter.meter_id.clone()) {
                continue;
            }
            if let Some(array_id) = meter.array_id.clone()
                && !self.view.arrays.contains(&array_id)
            {
                self.ensure_array(&array_id, format!("legacy array {array_id}"))?;
            }
            devices.insert(meter.meter_id.clone());
            if meter
                .adapter_id
                .as_ref()
                .is_some_and(|a| self.view.adapters.contains(a))
            {
                meter.adapter_id = None;
            }
            adopted.push(format!("meter {}", meter.meter_id));
            new.meters.push(meter);
        }
        for mut pack in rows.packs {
            if self.view.pack_battery_array.contains_key(&pack.pack_id) {
                continue;
            }
            if pack
                .battery_array_id
                .as_ref()
                .is_some_and(|b| !self.view.battery_arrays.contains(b))
            {
                pack.battery_array_id = None;
            }
            self.view
                .pack_battery_array
                .insert(pack.pack_id.clone(), pack.battery_array_id.clone());
            devices.insert(pack.pack_id.clone());
            adopted.push(format!("battery pack {}", pack.pack_id));
            new.packs.push(pack);
        }
        for adapter in rows.adapters {
            let device = adapter.device_id.clone().unwrap_or_default();
            if devices.contains(&device) && self.view.adapters.insert(adapter.adapter_id.clone()) {
                new.adapters.push(adapter);
            }
        }
        new.pack_adapters = rows
            .pack_adapters
            .into_iter()
            .filter(|link| {
                devices.contains(&link.pack_id)
                    && new.adapters.iter().any(|a| a.adapter_id == link.adapter_id)
            })
            .collect();
        // Attachments: only for battery arrays the catalog has none for, and never overlapping.
        let mut kept: Vec<crate::catalog::BatteryArrayAttachment> = Vec::new();
        for attachment in rows.attachments {
            let known = self
                .view
                .battery_arrays
                .contains(&attachment.battery_array_id)
                && self.view.arrays.contains(&attachment.inverter_array_id)
                && !self.view.attached.contains(&attachment.battery_array_id);
            let end = attachment.detached_at.unwrap_or(i64::MAX);
            let overlaps = kept.iter().any(|k| {
                k.battery_array_id == attachment.battery_array_id
                    && k.attached_since < end
                    && attachment.attached_since < k.detached_at.unwrap_or(i64::MAX)
            });
            if !known || overlaps {
                self.report.notes.push(format!(
                    "the file's attachment of battery array {} to {} since {} was not taken ({})",
                    attachment.battery_array_id,
                    attachment.inverter_array_id,
                    attachment.attached_since,
                    if overlaps {
                        "it overlaps another"
                    } else {
                        "the catalog already attaches that battery array, or an array is unknown"
                    }
                ));
                continue;
            }
            adopted.push(format!(
                "attachment {} -> {}",
                attachment.battery_array_id, attachment.inverter_array_id
            ));
            kept.push(attachment);
        }
        for attachment in &kept {
            self.view
                .attached
                .insert(attachment.battery_array_id.clone());
        }
        new.attachments = kept;
        catalog::insert_rows(self.target, &new)?;
        self.report.from_file.extend(adopted);
        Ok(())
    }

    /// The array an id names, created as a placeholder when nothing knows it.
    fn ensure_array(&mut self, array_id: &str, name: String) -> Result<(), DbError> {
        if self.view.arrays.contains(array_id) {
            return Ok(());
        }
        self.view.arrays.insert(array_id.to_owned());
        let array = InverterArray {
            array_id: array_id.to_owned(),
            system_id: self.view.system_id.clone(),
            name,
            pv_capacity_kw: None,
        };
        self.add_placeholder(array, format!("array {array_id}"))
    }

    /// The array an inverter belongs to, creating the inverter (and its array) as placeholders.
    pub(super) fn ensure_inverter(
        &mut self,
        inverter_id: &str,
        legacy_array: Option<&str>,
    ) -> Result<String, DbError> {
        if let Some(array_id) = self.view.inverter_array.get(inverter_id) {
            return Ok(array_id.clone());
        }
        let array_id = match legacy_array {
            Some(array_id) => {
                self.ensure_array(array_id, format!("legacy array {array_id} (not in config)"))?;
                array_id.to_owned()
            }
            None => {
                self.ensure_array(
                    UNASSIGNED_ARRAY_ID,
                    "Unassigned (legacy data not placed by the config)".into(),
                )?;
                UNASSIGNED_ARRAY_ID.to_owned()
            }
        };
        let inverter = Inverter {
            inverter_id: inverter_id.to_owned(),
            array_id: array_id.clone(),
            system_id: self.view.system_id.clone(),
            adapter_id: None,
            name: format!("legacy inverter {inverter_id} (not in config)"),
            model: None,
            serial_number: None,
            vendor: None,
            phase_type: None,
            rated_power_w: None,
            settings_json: None,
        };
        self.view
            .inverter_array
            .insert(inverter_id.to_owned(), array_id.clone());
        self.add_placeholder(
            inverter,
            format!("inverter {inverter_id} in array {array_id}"),
        )?;
        Ok(array_id)
    }

    fn ensure_pack(&mut self, pack_id: &str) -> Result<Option<String>, DbError> {
        if let Some(battery_array) = self.view.pack_battery_array.get(pack_id) {
            return Ok(battery_array.clone());
        }
        let pack = BatteryPack {
            pack_id: pack_id.to_owned(),
            battery_array_id: None,
            system_id: self.view.system_id.clone(),
            name: format!("legacy battery bank {pack_id} (not in config)"),
            chemistry: None,
            nominal_kwh: None,
            max_charge_kw: None,
            max_discharge_kw: None,
            batteries_count: None,
            cells_per_battery: None,
        };
        self.view
            .pack_battery_array
            .insert(pack_id.to_owned(), None);
        self.add_placeholder(pack, format!("battery bank {pack_id}"))?;
        Ok(None)
    }

    fn ensure_battery(
        &mut self,
        pack_id: &str,
        index: i32,
    ) -> Result<(String, Option<String>), DbError> {
        let battery_array = self.ensure_pack(pack_id)?;
        let id = battery_id(pack_id, index);
        if self.view.batteries.insert(id.clone()) {
            let battery = Battery {
                battery_id: id.clone(),
                pack_id: pack_id.to_owned(),
                battery_index: index,
                serial_number: None,
                model: None,
            };
            self.add_placeholder(
                battery,
                format!("battery {id} (index {index} of bank {pack_id})"),
            )?;
        }
        Ok((id, battery_array))
    }

    fn ensure_cell(&mut self, battery_id: &str, index: i32) -> Result<String, DbError> {
        let id = cell_id(battery_id, index);
        if self.view.cells.insert(id.clone()) {
            let cell = BatteryCell {
                cell_id: id.clone(),
                battery_id: battery_id.to_owned(),
                cell_index: index,
                nominal_voltage: None,
            };
            self.add_placeholder(cell, format!("cell {id}"))?;
        }
        Ok(id)
    }

    pub(super) fn ensure_meter(
        &mut self,
        meter_id: &str,
        array_id: Option<&str>,
    ) -> Result<(), DbError> {
        if self.view.meters.contains(meter_id) {
            return Ok(());
        }
        let meter = Meter {
            meter_id: meter_id.to_owned(),
            system_id: self.view.system_id.clone(),
            array_id: array_id.map(str::to_owned),
            adapter_id: None,
            name: format!("legacy meter {meter_id} (not in config)"),
            model: None,
            meter_type: "grid".into(),
        };
        self.view.meters.insert(meter_id.to_owned());
        self.add_placeholder(meter, format!("meter {meter_id}"))
    }

    /// A legacy array id as the meter and array tables use it: `home` (or the system id) means the
    /// system itself.
    fn array_ref(&mut self, raw: Option<&str>) -> Result<Option<String>, DbError> {
        let Some(array_id) = self.id(raw) else {
            return Ok(None);
        };
        if array_id == "home" || array_id == self.view.system_id {
            return Ok(None);
        }
        self.ensure_array(
            &array_id,
            format!("legacy array {array_id} (not in config)"),
        )?;
        Ok(Some(array_id))
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

    /// Battery power and current in solarhub's sign: the stored power turned, or V × I of the
    /// old app's values turned, counted in `stats`.
    fn battery(
        voltage: Option<f64>,
        current: Option<f64>,
        power: Option<f64>,
        stats: &mut TableReport,
    ) -> (Option<f64>, Option<f64>) {
        let power = match (power, voltage, current) {
            (Some(power), _, _) => Some(power),
            (None, Some(v), Some(i)) => {
                stats.battery_power_derived += 1;
                Some(v * i)
            }
            _ => None,
        };
        if power.is_some() || current.is_some() {
            stats.battery_signs_converted += 1;
        }
        (flipped(power), flipped(current))
    }

    fn energy_sample(
        &mut self,
        legacy: &source::LegacyEnergyRow,
        stats: &mut TableReport,
    ) -> Converted<EnergySample> {
        let device = legacy.inverter_id.as_deref();
        let (Some(raw_ts), Some(inverter_id)) = (legacy.ts.clone(), self.id(device)) else {
            return Ok(None);
        };
        let Some(ts) = self.timestamp("energy_samples", device, Some(&raw_ts)) else {
            return Ok(None);
        };
        let legacy_array = self.id(legacy.array_id.as_deref());
        let inverter_array = self.ensure_inverter(&inverter_id, legacy_array.as_deref())?;
        let array_id = match legacy_array {
            Some(array_id) => {
                self.ensure_array(
                    &array_id,
                    format!("legacy array {array_id} (not in config)"),
                )?;
                array_id
            }
            None => inverter_array,
        };
        let (battery_power_w, battery_current_a) = Self::battery(
            legacy.battery_voltage_v,
            legacy.battery_current_a,
            legacy.battery_power_w,
            stats,
        );
        Ok(Some((
            raw_ts,
            EnergySample {
                inverter_id,
                ts,
                array_id: Some(array_id),
                system_id: self.view.system_id.clone(),
                pv_power_w: legacy.pv_power_w,
                load_power_w: legacy.load_power_w,
                grid_power_w: legacy.grid_power_w,
                battery_power_w,
                battery_soc_pct: legacy.battery_soc_pct,
                battery_voltage_v: legacy.battery_voltage_v,
                battery_current_a,
                inverter_mode: legacy.inverter_mode,
                inverter_temp_c: legacy.inverter_temp_c,
                grid_import_total_wh: legacy.grid_import_wh,
                grid_export_total_wh: legacy.grid_export_wh,
                ..EnergySample::default()
            },
        )))
    }

    fn array_sample(
        &mut self,
        legacy: &source::LegacyArrayRow,
        stats: &mut TableReport,
    ) -> Converted<ArraySample> {
        let device = legacy.array_id.as_deref();
        let (Some(raw_ts), Some(array_id)) = (legacy.ts.clone(), self.id(device)) else {
            return Ok(None);
        };
        let Some(ts) = self.timestamp("array_samples", device, Some(&raw_ts)) else {
            return Ok(None);
        };
        self.ensure_array(
            &array_id,
            format!("legacy array {array_id} (not in config)"),
        )?;
        let (battery_power_w, battery_current_a) = Self::battery(
            legacy.battery_voltage_v,
            legacy.battery_current_a,
            legacy.battery_power_w,
            stats,
        );
        Ok(Some((
            raw_ts,
            ArraySample {
                array_id,
                ts,
                system_id: self.view.system_id.clone(),
                pv_power_w: legacy.pv_power_w,
                load_power_w: legacy.load_power_w,
                grid_power_w: legacy.grid_power_w,
                battery_power_w,
                battery_soc_pct: legacy.battery_soc_pct,
                soc_source: None,
                battery_voltage_v: legacy.battery_voltage_v,
                battery_current_a,
            },
        )))
    }

    fn bank_sample(
        &mut self,
        legacy: &source::LegacyBankRow,
        stats: &mut TableReport,
    ) -> Converted<BatteryBankSample> {
        let device = legacy.pack_id.as_deref();
        let (Some(raw_ts), Some(pack_id)) = (legacy.ts.clone(), self.id(device)) else {
            return Ok(None);
        };
        let Some(ts) = self.timestamp("battery_bank_samples", device, Some(&raw_ts)) else {
            return Ok(None);
        };
        let battery_array_id = self.ensure_pack(&pack_id)?;
        let (power_w, current_a) = Self::battery(legacy.voltage, legacy.current, None, stats);
        Ok(Some((
            raw_ts,
            BatteryBankSample {
                pack_id,
                ts,
                battery_array_id,
                system_id: self.view.system_id.clone(),
                adapter_id: None,
                voltage_v: legacy.voltage,
                current_a,
                power_w,
                temperature_c: legacy.temperature,
                soc_pct: legacy.soc,
                soh_pct: None,
                batteries_count: legacy.batteries_count,
                cells_per_battery: legacy.cells_per_battery,
            },
        )))
    }

    fn unit_sample(
        &mut self,
        legacy: &source::LegacyUnitRow,
        stats: &mut TableReport,
    ) -> Converted<BatteryUnitSample> {
        let device = legacy.pack_id.as_deref();
        let (Some(raw_ts), Some(pack_id), Some(index)) =
            (legacy.ts.clone(), self.id(device), legacy.battery_index)
        else {
            return Ok(None);
        };
        let Some(ts) = self.timestamp("battery_unit_samples", device, Some(&raw_ts)) else {
            return Ok(None);
        };
        let (battery_id, battery_array_id) = self.ensure_battery(&pack_id, index)?;
        if legacy.current.is_some() {
            stats.battery_signs_converted += 1;
        }
        Ok(Some((
            raw_ts,
            BatteryUnitSample {
                battery_id,
                ts,
                pack_id,
                battery_array_id,
                system_id: self.view.system_id.clone(),
                adapter_id: None,
                voltage_v: legacy.voltage,
                current_a: flipped(legacy.current),
                temperature_c: legacy.temperature,
                soc_pct: legacy.soc,
                soh_pct: None,
                basic_st: legacy.basic_st.clone(),
                volt_st: legacy.volt_st.clone(),
                current_st: legacy.current_st.clone(),
                temp_st: legacy.temp_st.clone(),
                soh_st: legacy.soh_st.clone(),
                coul_st: legacy.coul_st.clone(),
                heater_st: legacy.heater_st.clone(),
                bat_events: legacy.bat_events,
                power_events: legacy.power_events,
                sys_events: legacy.sys_events,
            },
        )))
    }

    fn cell_sample(
        &mut self,
        legacy: &source::LegacyCellRow,
        _stats: &mut TableReport,
    ) -> Converted<BatteryCellSample> {
        let device = legacy.pack_id.as_deref();
        let (Some(raw_ts), Some(pack_id), Some(battery_index), Some(cell_index)) = (
            legacy.ts.clone(),
            self.id(device),
            legacy.battery_index,
            legacy.cell_index,
        ) else {
            return Ok(None);
        };
        let Some(ts) = self.timestamp("battery_cell_samples", device, Some(&raw_ts)) else {
            return Ok(None);
        };
        let (battery_id, battery_array_id) = self.ensure_battery(&pack_id, battery_index)?;
        let cell_id = self.ensure_cell(&battery_id, cell_index)?;
        Ok(Some((
            raw_ts,
            BatteryCellSample {
                cell_id,
                ts,
                battery_id,
                pack_id,
                battery_array_id,
                system_id: self.view.system_id.clone(),
                adapter_id: None,
                voltage_v: legacy.voltage,
                temperature_c: legacy.temperature,
                soc_pct: legacy.soc,
                volt_st: legacy.volt_st.clone(),
                temp_st: legacy.temp_st.clone(),
            },
        )))
    }

    fn meter_sample(
        &mut self,
        legacy: &source::LegacyMeterRow,
        _stats: &mut TableReport,
    ) -> Converted<MeterSample> {
        let device = legacy.meter_id.as_deref();
        let (Some(raw_ts), Some(meter_id)) = (legacy.ts.clone(), self.id(device)) else {
            return Ok(None);
        };
        let Some(ts) = self.timestamp("meter_samples", device, Some(&raw_ts)) else {
            return Ok(None);
        };
        let array_id = self.array_ref(legacy.array_id.as_deref())?;
        self.ensure_meter(&meter_id, array_id.as_deref())?;
        Ok(Some((
            raw_ts,
            MeterSample {
                meter_id,
                ts,
                system_id: self.view.system_id.clone(),
                array_id,
                power_w: legacy.power_w,
                voltage_v: legacy.voltage_v,
                current_a: legacy.current_a,
                frequency_hz: legacy.frequency_hz,
                power_factor: legacy.power_factor,
                import_total_wh: legacy.import_wh,
                export_total_wh: legacy.export_wh,
                energy_total_kwh: legacy.energy_kwh,
                l1_voltage_v: legacy.l1_voltage_v,
                l2_voltage_v: legacy.l2_voltage_v,
                l3_voltage_v: legacy.l3_voltage_v,
                l1_current_a: legacy.l1_current_a,
                l2_current_a: legacy.l2_current_a,
                l3_current_a: legacy.l3_current_a,
                l1_power_w: legacy.l1_power_w,
                l2_power_w: legacy.l2_power_w,
                l3_power_w: legacy.l3_power_w,
            },
        )))
    }
}
