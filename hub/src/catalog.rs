//! Domain types of the installation hierarchy (DESIGN §3.1): what a system is made of.
//!
//! Plain data, free of diesel and of proto types. The database layer maps them to rows, the gRPC layer
//! to messages. Times are UTC epoch milliseconds. Audit columns (`created_at`, `updated_at`) are the
//! database's business and do not appear here, so two descriptions of the same installation compare
//! equal whatever their history.

use std::fmt;

/// Ids are user-visible slugs: 1-64 characters of `[A-Za-z0-9_.-]`.
pub const MAX_ID_LEN: usize = 64;

/// Why `id` is not a valid slug, or `None` when it is.
pub fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("must not be empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Some(format!(
            "must be at most {MAX_ID_LEN} characters, got {}",
            id.len()
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Some(format!(
            "may only contain letters, digits, '_', '.' and '-', found {bad:?}"
        ));
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
pub struct System {
    pub system_id: String,
    pub name: String,
    pub description: Option<String>,
    pub timezone: String,
    pub currency: Option<String>,
    pub tariff_json: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InverterArray {
    pub array_id: String,
    pub system_id: String,
    pub name: String,
    pub pv_capacity_kw: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inverter {
    pub inverter_id: String,
    pub array_id: String,
    pub system_id: String,
    pub adapter_id: Option<String>,
    pub name: String,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub vendor: Option<String>,
    pub phase_type: Option<String>,
    pub rated_power_w: Option<f64>,
    pub settings_json: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatteryArray {
    pub battery_array_id: String,
    pub system_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatteryArrayAttachment {
    pub battery_array_id: String,
    pub attached_since: i64,
    pub inverter_array_id: String,
    pub system_id: String,
    pub detached_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatteryPack {
    pub pack_id: String,
    pub battery_array_id: Option<String>,
    pub system_id: String,
    pub name: String,
    pub chemistry: Option<String>,
    pub nominal_kwh: Option<f64>,
    pub max_charge_kw: Option<f64>,
    pub max_discharge_kw: Option<f64>,
    pub batteries_count: Option<i32>,
    pub cells_per_battery: Option<i32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Battery {
    pub battery_id: String,
    pub pack_id: String,
    pub battery_index: i32,
    pub serial_number: Option<String>,
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatteryCell {
    pub cell_id: String,
    pub battery_id: String,
    pub cell_index: i32,
    pub nominal_voltage: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Meter {
    pub meter_id: String,
    pub system_id: String,
    /// `None` for a system-level meter.
    pub array_id: Option<String>,
    pub adapter_id: Option<String>,
    pub name: String,
    pub model: Option<String>,
    pub meter_type: String,
}

impl Meter {
    /// A grid meter at system level (at the connection point): where a system's grid figures come
    /// from when it has one.
    pub fn is_system_grid(&self) -> bool {
        self.array_id.is_none() && self.meter_type == "grid"
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdapterType {
    pub adapter_type: String,
    pub device_category: String,
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of `Adapter::config_json` for this type.
    pub config_schema: String,
    /// JSON array of transport names.
    pub supported_transports: String,
    pub default_config: Option<String>,
    pub version: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Adapter {
    pub adapter_id: String,
    pub adapter_type: String,
    pub device_category: String,
    pub device_id: Option<String>,
    pub device_type: Option<String>,
    pub collector_id: Option<String>,
    pub config_json: String,
    pub priority: i32,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatteryPackAdapter {
    pub pack_id: String,
    pub adapter_id: String,
    pub priority: i32,
    pub enabled: bool,
}

/// One installation as a flat set of catalog rows: what `config.yaml` describes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Installation {
    pub system: Option<System>,
    pub arrays: Vec<InverterArray>,
    pub adapters: Vec<Adapter>,
    pub inverters: Vec<Inverter>,
    pub battery_arrays: Vec<BatteryArray>,
    pub attachments: Vec<BatteryArrayAttachment>,
    pub packs: Vec<BatteryPack>,
    pub batteries: Vec<Battery>,
    pub cells: Vec<BatteryCell>,
    pub meters: Vec<Meter>,
    pub pack_adapters: Vec<BatteryPackAdapter>,
}

/// The catalog tables, in the order parents come before children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CatalogTable {
    Systems,
    AdapterBase,
    Adapters,
    Arrays,
    Inverters,
    BatteryArrays,
    BatteryArrayAttachments,
    BatteryPacks,
    Batteries,
    BatteryCells,
    Meters,
    BatteryPackAdapters,
}

impl CatalogTable {
    pub const ALL: [CatalogTable; 12] = [
        CatalogTable::Systems,
        CatalogTable::AdapterBase,
        CatalogTable::Adapters,
        CatalogTable::Arrays,
        CatalogTable::Inverters,
        CatalogTable::BatteryArrays,
        CatalogTable::BatteryArrayAttachments,
        CatalogTable::BatteryPacks,
        CatalogTable::Batteries,
        CatalogTable::BatteryCells,
        CatalogTable::Meters,
        CatalogTable::BatteryPackAdapters,
    ];

    pub fn table_name(self) -> &'static str {
        match self {
            CatalogTable::Systems => "systems",
            CatalogTable::AdapterBase => "adapter_base",
            CatalogTable::Adapters => "adapters",
            CatalogTable::Arrays => "arrays",
            CatalogTable::Inverters => "inverters",
            CatalogTable::BatteryArrays => "battery_arrays",
            CatalogTable::BatteryArrayAttachments => "battery_array_attachments",
            CatalogTable::BatteryPacks => "battery_packs",
            CatalogTable::Batteries => "batteries",
            CatalogTable::BatteryCells => "battery_cells",
            CatalogTable::Meters => "meters",
            CatalogTable::BatteryPackAdapters => "battery_pack_adapters",
        }
    }
}

impl fmt::Display for CatalogTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table_name())
    }
}

/// What applying an [`Installation`] changed, row by row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeReport {
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub table: CatalogTable,
    pub key: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    /// The names of the columns whose value changed.
    Updated(Vec<&'static str>),
    Deleted,
}

impl ChangeReport {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn count(&self, kind: fn(&ChangeKind) -> bool) -> usize {
        self.changes.iter().filter(|c| kind(&c.kind)).count()
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ChangeKind::Created => write!(f, "created {} {}", self.table, self.key),
            ChangeKind::Updated(columns) => write!(
                f,
                "updated {} {} ({})",
                self.table,
                self.key,
                columns.join(", ")
            ),
            ChangeKind::Deleted => write!(f, "deleted {} {}", self.table, self.key),
        }
    }
}

/// A catalog row seen as a key plus comparable columns, so imports can say exactly what changed.
pub trait CatalogRecord: Clone + PartialEq {
    const TABLE: CatalogTable;
    /// The primary key, rendered for reports (`battery1`, `battery_array1@1735671600000`).
    fn key(&self) -> String;
    /// The names of the columns whose values differ between `self` and `other`.
    fn changed_columns(&self, other: &Self) -> Vec<&'static str>;
}

macro_rules! catalog_record {
    ($ty:ty, $table:ident, key = |$row:ident| $key:expr, [$($field:ident),* $(,)?]) => {
        impl CatalogRecord for $ty {
            const TABLE: CatalogTable = CatalogTable::$table;
            fn key(&self) -> String {
                let $row = self;
                $key
            }
            fn changed_columns(&self, other: &Self) -> Vec<&'static str> {
                let mut changed = Vec::new();
                $(if self.$field != other.$field { changed.push(stringify!($field)); })*
                changed
            }
        }
    };
}

catalog_record!(
    System,
    Systems,
    key = |r| r.system_id.clone(),
    [name, description, timezone, currency, tariff_json]
);
catalog_record!(
    AdapterType,
    AdapterBase,
    key = |r| r.adapter_type.clone(),
    [
        device_category,
        name,
        description,
        config_schema,
        supported_transports,
        default_config,
        version
    ]
);
catalog_record!(
    Adapter,
    Adapters,
    key = |r| r.adapter_id.clone(),
    [
        adapter_type,
        device_category,
        device_id,
        device_type,
        collector_id,
        config_json,
        priority,
        enabled
    ]
);
catalog_record!(
    InverterArray,
    Arrays,
    key = |r| r.array_id.clone(),
    [system_id, name, pv_capacity_kw]
);
catalog_record!(
    Inverter,
    Inverters,
    key = |r| r.inverter_id.clone(),
    [
        array_id,
        system_id,
        adapter_id,
        name,
        model,
        serial_number,
        vendor,
        phase_type,
        rated_power_w,
        settings_json
    ]
);
catalog_record!(
    BatteryArray,
    BatteryArrays,
    key = |r| r.battery_array_id.clone(),
    [system_id, name]
);
catalog_record!(
    BatteryArrayAttachment,
    BatteryArrayAttachments,
    key = |r| format!("{}@{}", r.battery_array_id, r.attached_since),
    [inverter_array_id, system_id, detached_at]
);
catalog_record!(
    BatteryPack,
    BatteryPacks,
    key = |r| r.pack_id.clone(),
    [
        battery_array_id,
        system_id,
        name,
        chemistry,
        nominal_kwh,
        max_charge_kw,
        max_discharge_kw,
        batteries_count,
        cells_per_battery
    ]
);
catalog_record!(
    Battery,
    Batteries,
    key = |r| r.battery_id.clone(),
    [pack_id, battery_index, serial_number, model]
);
catalog_record!(
    BatteryCell,
    BatteryCells,
    key = |r| r.cell_id.clone(),
    [battery_id, cell_index, nominal_voltage]
);
catalog_record!(
    Meter,
    Meters,
    key = |r| r.meter_id.clone(),
    [system_id, array_id, adapter_id, name, model, meter_type]
);
catalog_record!(
    BatteryPackAdapter,
    BatteryPackAdapters,
    key = |r| format!("{}/{}", r.pack_id, r.adapter_id),
    [priority, enabled]
);

/// What to do to one table so it holds `desired`: rows to create, rows to update (with the columns
/// that change) and, when pruning, rows of `existing` that `desired` no longer has and `in_scope`
/// accepts.
#[derive(Debug)]
pub struct TablePlan<T> {
    pub create: Vec<T>,
    pub update: Vec<(T, Vec<&'static str>)>,
    pub delete: Vec<T>,
}

pub fn plan_table<T: CatalogRecord>(
    existing: &[T],
    desired: &[T],
    prune: bool,
    in_scope: impl Fn(&T) -> bool,
) -> TablePlan<T> {
    let existing_by_key: std::collections::HashMap<String, &T> =
        existing.iter().map(|row| (row.key(), row)).collect();
    let desired_keys: std::collections::HashSet<String> =
        desired.iter().map(CatalogRecord::key).collect();
    let mut plan = TablePlan {
        create: Vec::new(),
        update: Vec::new(),
        delete: Vec::new(),
    };
    for row in desired {
        match existing_by_key.get(&row.key()) {
            None => plan.create.push(row.clone()),
            Some(current) => {
                let changed = current.changed_columns(row);
                if !changed.is_empty() {
                    plan.update.push((row.clone(), changed));
                }
            }
        }
    }
    if prune {
        plan.delete = existing
            .iter()
            .filter(|row| !desired_keys.contains(&row.key()) && in_scope(row))
            .cloned()
            .collect();
    }
    plan
}

impl<T: CatalogRecord> TablePlan<T> {
    pub fn report_into(&self, report: &mut ChangeReport) {
        for row in &self.create {
            report.changes.push(Change {
                table: T::TABLE,
                key: row.key(),
                kind: ChangeKind::Created,
            });
        }
        for (row, columns) in &self.update {
            report.changes.push(Change {
                table: T::TABLE,
                key: row.key(),
                kind: ChangeKind::Updated(columns.clone()),
            });
        }
        for row in &self.delete {
            report.changes.push(Change {
                table: T::TABLE,
                key: row.key(),
                kind: ChangeKind::Deleted,
            });
        }
    }
}

/// Counts changes to the catalog made by this process, so caches built from it (ingest's device
/// directory) know when to read it again.
#[derive(Debug, Clone, Default)]
pub struct CatalogGeneration(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl CatalogGeneration {
    pub fn bump(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn current(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
