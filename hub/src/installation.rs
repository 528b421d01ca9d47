//! The installation hierarchy as plain data (DESIGN §3.1): systems, arrays, devices, adapters,
//! battery arrays, packs and their attachments, declared once (`with_catalog_types!`) with
//! everything that lists their fields made from that declaration, and the diff of two
//! installations (`plan_table`). Below both the database layer (which maps them to rows) and the
//! catalog service (which validates and changes them); free of diesel and of proto types.
//!
//! Times are UTC epoch milliseconds. Audit columns (`created_at`, `updated_at`) are the
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

/// Every catalog type, declared once, parents before children: its name, its `CatalogTable`
/// variant, its SQL table and how a composite key is joined in reports, then its fields in three
/// groups: the `key`, the `fixed` fields (taken from the parent; an update cannot change them) and
/// the `mutable` ones (what an update may change). Everything that lists a type's fields is made
/// from this: the structs and `CatalogRecord` here, the row models in `db::catalog`. Adding a field
/// is one line here plus the migration; the gRPC conversions (`grpc::catalog::convert`) destructure
/// every field, so a field they do not handle does not compile.
macro_rules! with_catalog_types {
    ($callback:ident) => {
        $callback! {
            /// A site: everything one owner monitors under one timezone.
            System(Systems, systems, "/")
            key { system_id: String }
            fixed {}
            mutable {
                name: String,
                description: Option<String>,
                timezone: String,
                currency: Option<String>,
                tariff_json: Option<String>,
            };
            /// A driver type (`adapter_base`).
            AdapterType(AdapterBase, adapter_base, "/")
            key { adapter_type: String }
            fixed {}
            mutable {
                device_category: String,
                name: String,
                description: Option<String>,
                /// JSON Schema of `Adapter::config_json` for this type.
                config_schema: String,
                /// JSON array of transport names.
                supported_transports: String,
                default_config: Option<String>,
                version: i32,
            };
            /// One configured device driver: its type, config and the collector that runs it.
            Adapter(Adapters, adapters, "/")
            key { adapter_id: String }
            fixed {}
            mutable {
                adapter_type: String,
                device_category: String,
                device_id: Option<String>,
                device_type: Option<String>,
                collector_id: Option<String>,
                config_json: String,
                priority: i32,
                enabled: bool,
            };
            /// An inverter array.
            InverterArray(Arrays, arrays, "/")
            key { array_id: String }
            fixed { system_id: String }
            mutable {
                name: String,
                pv_capacity_kw: Option<f64>,
            };
            Inverter(Inverters, inverters, "/")
            key { inverter_id: String }
            fixed { system_id: String }
            mutable {
                array_id: String,
                adapter_id: Option<String>,
                name: String,
                model: Option<String>,
                serial_number: Option<String>,
                vendor: Option<String>,
                phase_type: Option<String>,
                rated_power_w: Option<f64>,
                settings_json: Option<String>,
            };
            BatteryArray(BatteryArrays, battery_arrays, "/")
            key { battery_array_id: String }
            fixed { system_id: String }
            mutable { name: String };
            /// A battery array attached to an inverter array from `attached_since` until
            /// `detached_at` (open while `None`).
            BatteryArrayAttachment(BatteryArrayAttachments, battery_array_attachments, "@")
            key { battery_array_id: String, attached_since: i64 }
            fixed { system_id: String }
            mutable {
                inverter_array_id: String,
                detached_at: Option<i64>,
            };
            BatteryPack(BatteryPacks, battery_packs, "/")
            key { pack_id: String }
            fixed { system_id: String }
            mutable {
                battery_array_id: Option<String>,
                name: String,
                chemistry: Option<String>,
                nominal_kwh: Option<f64>,
                max_charge_kw: Option<f64>,
                max_discharge_kw: Option<f64>,
                batteries_count: Option<i32>,
                cells_per_battery: Option<i32>,
            };
            Battery(Batteries, batteries, "/")
            key { battery_id: String }
            fixed { pack_id: String }
            mutable {
                battery_index: i32,
                serial_number: Option<String>,
                model: Option<String>,
            };
            BatteryCell(BatteryCells, battery_cells, "/")
            key { cell_id: String }
            fixed { battery_id: String }
            mutable {
                cell_index: i32,
                nominal_voltage: Option<f64>,
            };
            Meter(Meters, meters, "/")
            key { meter_id: String }
            fixed { system_id: String }
            mutable {
                /// `None` for a system-level meter.
                array_id: Option<String>,
                adapter_id: Option<String>,
                name: String,
                model: Option<String>,
                meter_type: String,
            };
            /// An adapter reading a pack, with its failover priority (lower wins).
            BatteryPackAdapter(BatteryPackAdapters, battery_pack_adapters, "/")
            key { pack_id: String, adapter_id: String }
            fixed {}
            mutable {
                priority: i32,
                enabled: bool,
            };
        }
    };
}
#[allow(unused_imports)]
pub(crate) use with_catalog_types;

/// Makes the domain types, `CatalogTable` and `CatalogRecord` from the declaration.
macro_rules! domain_types {
    ($(
        $(#[$doc:meta])*
        $name:ident($variant:ident, $table:ident, $sep:literal)
        key { $($key:ident: $key_ty:ty),+ $(,)? }
        fixed { $($(#[$fixed_doc:meta])* $fixed:ident: $fixed_ty:ty),* $(,)? }
        mutable { $($(#[$mutable_doc:meta])* $mutable:ident: $mutable_ty:ty),* $(,)? }
    );+ $(;)?) => {
        /// The catalog tables, in the order parents come before children.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum CatalogTable {
            $($variant),+
        }

        impl CatalogTable {
            pub const ALL: &'static [CatalogTable] = &[$(CatalogTable::$variant),+];

            pub fn table_name(self) -> &'static str {
                match self {
                    $(CatalogTable::$variant => stringify!($table)),+
                }
            }
        }

        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq)]
            pub struct $name {
                $(pub $key: $key_ty,)+
                $($(#[$fixed_doc])* pub $fixed: $fixed_ty,)*
                $($(#[$mutable_doc])* pub $mutable: $mutable_ty,)*
            }

            // A one-field key is that field, not a tuple of one.
            #[allow(unused_parens)]
            impl CatalogRecord for $name {
                type Key = ($($key_ty),+);
                const TABLE: CatalogTable = CatalogTable::$variant;
                const MUTABLE_FIELDS: &'static [&'static str] = &[$(stringify!($mutable)),*];

                fn id(&self) -> Self::Key {
                    ($(self.$key.clone()),+)
                }

                fn key(&self) -> String {
                    [$(self.$key.to_string()),+].join($sep)
                }

                fn changed_columns(&self, other: &Self) -> Vec<&'static str> {
                    let mut changed = Vec::new();
                    $(if self.$fixed != other.$fixed { changed.push(stringify!($fixed)); })*
                    $(if self.$mutable != other.$mutable { changed.push(stringify!($mutable)); })*
                    changed
                }

                fn copy_field(&mut self, from: &Self, field: &str) -> bool {
                    match field {
                        $(stringify!($mutable) => self.$mutable = from.$mutable.clone(),)*
                        _ => return false,
                    }
                    true
                }

                fn texts(&self) -> Vec<(&'static str, &str)> {
                    let mut texts = Vec::new();
                    $(if let Some(text) = Text::text(&self.$key) {
                        texts.push((stringify!($key), text));
                    })+
                    $(if let Some(text) = Text::text(&self.$fixed) {
                        texts.push((stringify!($fixed), text));
                    })*
                    $(if let Some(text) = Text::text(&self.$mutable) {
                        texts.push((stringify!($mutable), text));
                    })*
                    texts
                }
            }
        )+
    };
}

with_catalog_types!(domain_types);

impl Meter {
    /// A grid meter at system level (at the connection point): where a system's grid figures come
    /// from when it has one.
    pub fn is_system_grid(&self) -> bool {
        self.array_id.is_none() && self.meter_type == "grid"
    }
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

impl Installation {
    /// The ids of the system's grid meters ([`Meter::is_system_grid`]): where its grid figures come
    /// from when it has any.
    pub fn system_grid_meters(&self) -> impl Iterator<Item = &str> {
        self.meters
            .iter()
            .filter(|m| m.is_system_grid())
            .map(|m| m.meter_id.as_str())
    }
}

/// One row as an installation of its own (to insert a single row with `insert_rows`).
macro_rules! single_row {
    ($($ty:ty => $field:ident),* $(,)?) => {$(
        impl From<$ty> for Installation {
            fn from(row: $ty) -> Installation {
                Installation {
                    $field: vec![row],
                    ..Installation::default()
                }
            }
        }
    )*};
}

single_row!(
    InverterArray => arrays,
    Adapter => adapters,
    Inverter => inverters,
    BatteryArray => battery_arrays,
    BatteryArrayAttachment => attachments,
    BatteryPack => packs,
    Battery => batteries,
    BatteryCell => cells,
    Meter => meters,
    BatteryPackAdapter => pack_adapters,
);

impl fmt::Display for CatalogTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table_name())
    }
}

/// Filters of the List calls; `None` means "any". Each resource uses the ones that apply to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub system_id: Option<String>,
    pub array_id: Option<String>,
    pub inverter_array_id: Option<String>,
    pub battery_array_id: Option<String>,
    pub pack_id: Option<String>,
    pub battery_id: Option<String>,
    pub adapter_id: Option<String>,
    pub adapter_type: Option<String>,
    pub collector_id: Option<String>,
    pub device_id: Option<String>,
    pub device_category: Option<String>,
    pub active_only: bool,
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

/// A catalog row: its key, the columns an import compares, and the fields an update may change.
/// Made for every catalog type from its one declaration (`with_catalog_types!`).
pub trait CatalogRecord: Clone + PartialEq + fmt::Debug + Send + Sync + 'static {
    /// The primary key: the id, or a tuple for a composite key.
    type Key: Clone + PartialEq + fmt::Debug + Send + Sync + 'static;
    const TABLE: CatalogTable;
    /// Fields an update may change (`["*"]` in an update mask names all of them).
    const MUTABLE_FIELDS: &'static [&'static str];
    fn id(&self) -> Self::Key;
    /// The primary key, rendered for reports (`battery1`, `battery_array1@1735671600000`).
    fn key(&self) -> String;
    /// The names of the columns whose values differ between `self` and `other`.
    fn changed_columns(&self, other: &Self) -> Vec<&'static str>;
    /// Copies `field` from `from`; false (and nothing copied) unless it is one of
    /// `MUTABLE_FIELDS`.
    fn copy_field(&mut self, from: &Self, field: &str) -> bool;
    /// Every text field that has a value, by name (the repository refuses a NUL in any of them).
    fn texts(&self) -> Vec<(&'static str, &str)>;
}

/// The text of a field, if it is a text field with a value.
trait Text {
    fn text(&self) -> Option<&str> {
        None
    }
}

impl Text for String {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Text for Option<String> {
    fn text(&self) -> Option<&str> {
        self.as_deref()
    }
}

impl Text for bool {}
impl Text for i32 {}
impl Text for i64 {}
impl Text for Option<i32> {}
impl Text for Option<i64> {}
impl Text for Option<f64> {}

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
