//! The hierarchy repository: every read and write of the CRUD API and `GetConfig`.
//!
//! Each write is one transaction that checks values, then references (resolving derived ids such as
//! an inverter's `system_id` from its array), then stores. Reads answer with the resource and its
//! parent ids.

use std::collections::{BTreeMap, HashMap};

use crate::catalog::{
    Adapter, AdapterType, Battery, BatteryArray, BatteryArrayAttachment, BatteryCell, BatteryPack,
    BatteryPackAdapter, CatalogGeneration, Installation, Inverter, InverterArray, Meter, System,
};
use crate::db::cascade;
use crate::db::catalog::{self as store, CatalogStore};
use crate::db::{Database, DbConnection, DbError};
use crate::json_schema::JsonSchema;

use super::{CatalogError, Parents, Resource, Violations};
use crate::catalog::ListFilter;

/// Default and largest page of the List calls.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
pub const MAX_PAGE_SIZE: i64 = 1000;

/// One page of a List call.
#[derive(Debug, Clone)]
pub struct Page<R> {
    pub items: Vec<(R, Parents)>,
    /// Empty on the last page.
    pub next_page_token: String,
}

/// The whole hierarchy of the requested systems: what `GetConfig` returns.
#[derive(Debug, Clone)]
pub struct ConfigTree {
    pub systems: Vec<System>,
    pub installation: Installation,
    pub adapter_types: Vec<AdapterType>,
}

/// How a resource hangs in the hierarchy: the references it must check and the parents it reports.
pub trait Linked: CatalogStore + Resource {
    /// Checks that what `row` references exists and fits, and fills derived fields.
    fn resolve(conn: &mut DbConnection, row: &mut Self) -> Result<(), CatalogError>;
    /// The parent ids of each row, in order.
    fn parents(conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError>;
    /// Which field a unique-index conflict on a non-key column belongs to, if the table has one.
    fn unique_field() -> Option<&'static str> {
        None
    }
    /// Runs in the write's transaction after a row was created (`before` is `None`), changed or
    /// deleted (`after` is `None`): for derived data that depends on it.
    fn written(
        _conn: &mut DbConnection,
        _before: Option<&Self>,
        _after: Option<&Self>,
    ) -> Result<(), CatalogError> {
        Ok(())
    }
}

#[derive(Clone)]
pub struct Repository {
    database: Database,
    generation: CatalogGeneration,
}

impl Repository {
    pub fn new(database: Database) -> Repository {
        Repository {
            database,
            generation: CatalogGeneration::default(),
        }
    }

    /// Bumped after every change this repository makes.
    pub fn generation(&self) -> CatalogGeneration {
        self.generation.clone()
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    pub async fn get<R: Linked>(&self, key: R::Key) -> Result<(R, Parents), CatalogError> {
        self.database
            .run(
                move |conn| -> Result<Result<(R, Parents), CatalogError>, DbError> {
                    Ok(get_in(conn, &key))
                },
            )
            .await?
    }

    pub async fn list<R: Linked>(
        &self,
        filter: ListFilter,
        page_size: i32,
        page_token: String,
    ) -> Result<Page<R>, CatalogError> {
        let limit = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            size if size < 0 => {
                return Err(CatalogError::Invalid(vec![super::FieldViolation {
                    field: "page_size".into(),
                    description: format!("must not be negative, got {size}"),
                }]));
            }
            size => i64::from(size).min(MAX_PAGE_SIZE),
        };
        let after = decode_page_token::<R>(&page_token)?;
        self.database
            .run(
                move |conn| -> Result<Result<Page<R>, CatalogError>, DbError> {
                    Ok((|| {
                        check_filter(conn, &filter)?;
                        let mut rows = R::fetch_page(conn, &filter, after.as_ref(), limit + 1)?;
                        let more = rows.len() as i64 > limit;
                        rows.truncate(limit as usize);
                        let next_page_token = match (more, rows.last()) {
                            (true, Some(last)) => encode_page_token::<R>(&last.id()),
                            _ => String::new(),
                        };
                        let parents = R::parents(conn, &rows)?;
                        Ok(Page {
                            items: rows.into_iter().zip(parents).collect(),
                            next_page_token,
                        })
                    })())
                },
            )
            .await?
    }

    pub async fn create<R: Linked>(&self, new_row: R) -> Result<(R, Parents), CatalogError> {
        let result = self
            .database
            .run_write(move |conn| -> Result<(R, Parents), CatalogError> {
                let mut row = new_row.clone();
                let mut violations = Violations::default();
                row.check_values(&mut violations);
                violations.into_result()?;
                R::resolve(conn, &mut row)?;
                if R::fetch(conn, &row.id())?.is_some() {
                    return Err(already_exists::<R>(&row.id()));
                }
                match R::store_new(conn, &row) {
                    Ok(()) => {}
                    Err(DbError::UniqueViolation(_)) => return Err(unique_conflict::<R>(&row)),
                    Err(other) => return Err(other.into()),
                }
                R::written(conn, None, Some(&row))?;
                let parents = R::parents(conn, std::slice::from_ref(&row))?
                    .pop()
                    .unwrap_or_default();
                Ok((row, parents))
            })
            .await;
        if result.is_ok() {
            self.generation.bump();
        }
        result
    }

    /// Changes the fields of `mask` (all changeable fields when it is empty) to the values in
    /// `update`, which also names the resource by its id fields.
    pub async fn update<R: Linked>(
        &self,
        update: R,
        mask: Vec<String>,
    ) -> Result<(R, Parents), CatalogError> {
        let fields = mask_fields::<R>(&mask)?;
        let result = self
            .database
            .run_write(move |conn| -> Result<(R, Parents), CatalogError> {
                let key = update.id();
                let Some(mut row) = R::fetch(conn, &key)? else {
                    return Err(not_found::<R>(&key));
                };
                let before = row.clone();
                for field in &fields {
                    row.copy_field(&update, field);
                }
                let mut violations = Violations::default();
                row.check_values(&mut violations);
                violations.into_result()?;
                R::resolve(conn, &mut row)?;
                match R::store_changed(conn, &row) {
                    Ok(()) => {}
                    Err(DbError::UniqueViolation(_)) => return Err(unique_conflict::<R>(&row)),
                    Err(other) => return Err(other.into()),
                }
                R::written(conn, Some(&before), Some(&row))?;
                let parents = R::parents(conn, std::slice::from_ref(&row))?
                    .pop()
                    .unwrap_or_default();
                Ok((row, parents))
            })
            .await;
        if result.is_ok() {
            self.generation.bump();
        }
        result
    }

    /// Deletes the resource. With children (or samples) it is refused unless `cascade`, which deletes
    /// them too. Returns the rows deleted per table.
    pub async fn delete<R: Linked>(
        &self,
        key: R::Key,
        cascade: bool,
    ) -> Result<BTreeMap<String, i64>, CatalogError> {
        let result = self
            .database
            .run_write(move |conn| -> Result<BTreeMap<String, i64>, CatalogError> {
                let Some(before) = R::fetch(conn, &key)? else {
                    return Err(not_found::<R>(&key));
                };
                let key_text = R::id_text(&key);
                let mut deleted = BTreeMap::new();
                // Nothing references attachments or pack adapters; everything else may have children.
                if cascade::is_referenced(R::TABLE.table_name()) {
                    let children = cascade::dependents(conn, R::TABLE.table_name(), &key_text)?;
                    if !children.is_empty() && !cascade {
                        return Err(CatalogError::HasChildren {
                            kind: R::KIND,
                            id: key_text,
                            children,
                        });
                    }
                    deleted = cascade::delete_dependents(conn, R::TABLE.table_name(), &key_text)?;
                }
                let removed = R::remove(conn, &key)?;
                R::written(conn, Some(&before), None)?;
                *deleted.entry(R::TABLE.table_name().to_owned()).or_default() += removed as i64;
                Ok(deleted)
            })
            .await;
        if result.is_ok() {
            self.generation.bump();
        }
        result
    }

    /// The whole hierarchy of one system (or of all systems when `system_id` is `None`).
    pub async fn config(&self, system_id: Option<String>) -> Result<ConfigTree, CatalogError> {
        self.database
            .run(
                move |conn| -> Result<Result<ConfigTree, CatalogError>, DbError> {
                    let (systems, installation) =
                        store::load_installations(conn, system_id.as_deref())?;
                    if let Some(id) = system_id
                        && systems.is_empty()
                    {
                        return Ok(Err(not_found::<System>(&id)));
                    }
                    let adapter_types =
                        AdapterType::fetch_page(conn, &ListFilter::default(), None, i64::MAX)?;
                    Ok(Ok(ConfigTree {
                        systems,
                        installation,
                        adapter_types,
                    }))
                },
            )
            .await?
    }
}

fn get_in<R: Linked>(conn: &mut DbConnection, key: &R::Key) -> Result<(R, Parents), CatalogError> {
    let Some(row) = R::fetch(conn, key)? else {
        return Err(not_found::<R>(key));
    };
    let parents = R::parents(conn, std::slice::from_ref(&row))?
        .pop()
        .unwrap_or_default();
    Ok((row, parents))
}

fn not_found<R: Resource>(key: &R::Key) -> CatalogError {
    CatalogError::NotFound {
        kind: R::KIND,
        id: R::id_text(key),
        parents: Box::default(),
        field: None,
    }
}

fn already_exists<R: Resource>(key: &R::Key) -> CatalogError {
    CatalogError::AlreadyExists {
        kind: R::KIND,
        id: R::id_text(key),
        field: format!("{}.{}", R::FIELD, R::ID_FIELDS[0]),
    }
}

/// A unique index other than the key refused the row (for example a battery index used twice).
fn unique_conflict<R: Linked>(row: &R) -> CatalogError {
    match R::unique_field() {
        Some(field) => CatalogError::AlreadyExists {
            kind: R::KIND,
            id: R::id_text(&row.id()),
            field: format!("{}.{field}", R::FIELD),
        },
        None => already_exists::<R>(&row.id()),
    }
}

/// Looks up a referenced resource; a missing one is NOT_FOUND naming the request field.
fn require<P: CatalogStore + Resource>(
    conn: &mut DbConnection,
    id: &P::Key,
    field: &str,
    parents: Parents,
) -> Result<P, CatalogError> {
    P::fetch(conn, id)?.ok_or_else(|| CatalogError::NotFound {
        kind: P::KIND,
        id: P::id_text(id),
        parents: Box::new(parents),
        field: Some(field.to_owned()),
    })
}

fn in_system(system_id: &str) -> Parents {
    Parents {
        system_id: (!system_id.is_empty()).then(|| system_id.to_owned()),
        ..Parents::default()
    }
}

/// The ids a list filter names must exist.
fn check_filter(conn: &mut DbConnection, filter: &ListFilter) -> Result<(), CatalogError> {
    if let Some(id) = &filter.system_id {
        require::<System>(conn, id, "system_id", Parents::default())?;
    }
    let system = filter
        .system_id
        .as_deref()
        .map(in_system)
        .unwrap_or_default();
    if let Some(id) = &filter.array_id {
        require::<InverterArray>(conn, id, "array_id", system.clone())?;
    }
    if let Some(id) = &filter.inverter_array_id {
        require::<InverterArray>(conn, id, "inverter_array_id", system.clone())?;
    }
    if let Some(id) = &filter.battery_array_id {
        require::<BatteryArray>(conn, id, "battery_array_id", system.clone())?;
    }
    if let Some(id) = &filter.pack_id {
        require::<BatteryPack>(conn, id, "pack_id", system.clone())?;
    }
    if let Some(id) = &filter.battery_id {
        require::<Battery>(conn, id, "battery_id", system)?;
    }
    if let Some(id) = &filter.adapter_id {
        require::<Adapter>(conn, id, "adapter_id", Parents::default())?;
    }
    if let Some(id) = &filter.adapter_type {
        require::<AdapterType>(conn, id, "adapter_type", Parents::default())?;
    }
    Ok(())
}

/// The fields an update mask names, checked: ids cannot change and unknown names are refused.
fn mask_fields<R: Resource>(mask: &[String]) -> Result<Vec<String>, CatalogError> {
    if mask.is_empty() {
        return Ok(R::MUTABLE_FIELDS.iter().map(|f| (*f).to_owned()).collect());
    }
    let mut violations = Violations::default();
    for (index, path) in mask.iter().enumerate() {
        let field = path.strip_prefix(&format!("{}.", R::FIELD)).unwrap_or(path);
        if R::ID_FIELDS.contains(&field) {
            violations.add(
                format!("update_mask.paths[{index}]"),
                format!("{field} identifies the {} and cannot be changed", R::KIND),
            );
        } else if !R::MUTABLE_FIELDS.contains(&field) {
            violations.add(
                format!("update_mask.paths[{index}]"),
                format!(
                    "{} has no changeable field {field:?}; changeable: {}",
                    R::KIND,
                    R::MUTABLE_FIELDS.join(", ")
                ),
            );
        }
    }
    violations.into_result()?;
    Ok(mask
        .iter()
        .map(|p| {
            p.strip_prefix(&format!("{}.", R::FIELD))
                .unwrap_or(p)
                .to_owned()
        })
        .collect())
}

fn encode_page_token<R: Resource>(key: &R::Key) -> String {
    R::id_text(key)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_page_token<R: Resource>(token: &str) -> Result<Option<R::Key>, CatalogError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        CatalogError::Invalid(vec![super::FieldViolation {
            field: "page_token".into(),
            description: "is not a token this API issued".into(),
        }])
    };
    if !token.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let text = bytes
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    R::id_from_text(&text).map(Some).ok_or_else(invalid)
}

/// `system_id` of a child: empty takes the parent's; anything else must equal it.
fn settle_system_id(
    system_id: &mut String,
    parent_system: &str,
    field: &str,
    parent: &str,
) -> Result<(), CatalogError> {
    if system_id.is_empty() {
        *system_id = parent_system.to_owned();
        return Ok(());
    }
    if system_id != parent_system {
        let mut violations = Violations::default();
        violations.add(
            field,
            format!("is {system_id}, but {parent} belongs to system {parent_system}"),
        );
        return violations.into_result();
    }
    Ok(())
}

fn own_system(rows: &[impl HasSystem]) -> Vec<Parents> {
    rows.iter().map(|row| in_system(row.system_id())).collect()
}

trait HasSystem {
    fn system_id(&self) -> &str;
}

macro_rules! has_system {
    ($($ty:ty),*) => {
        $(impl HasSystem for $ty {
            fn system_id(&self) -> &str {
                &self.system_id
            }
        })*
    };
}
has_system!(
    InverterArray,
    Inverter,
    BatteryArray,
    BatteryArrayAttachment,
    Meter
);

impl Linked for System {
    fn resolve(_conn: &mut DbConnection, _row: &mut Self) -> Result<(), CatalogError> {
        Ok(())
    }
    fn parents(_conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError> {
        Ok(vec![Parents::default(); rows.len()])
    }
}

impl Linked for InverterArray {
    fn resolve(conn: &mut DbConnection, row: &mut Self) -> Result<(), CatalogError> {
        require::<System>(
            conn,
            &row.system_id,
            "inverter_array.system_id",
            Parents::default(),
        )?;
        Ok(())
    }
    fn parents(_conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError> {
        Ok(own_system(rows))
    }
}

impl Linked for Inverter {
    fn resolve(conn: &mut DbConnection, row: &mut Self) -> Result<(), CatalogError> {
        let array: InverterArray = require(
            conn,
            &row.array_id,
            "inverter.array_id",
            in_system(&row.system_id),
        )?;
        settle_system_id(
            &mut row.system_id,
            &array.system_id,
            "inverter.system_id",
            &format!("array {}", array.array_id),
        )?;
        if let Some(adapter_id) = &row.adapter_id {
            require::<Adapter>(conn, adapter_id, "inverter.adapter_id", Parents::default())?;
        }
        Ok(())
    }
    fn parents(_conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError> {
        Ok(own_system(rows))
    }
}

impl Linked for BatteryArray {
    fn resolve(conn: &mut DbConnection, row: &mut Self) -> Result<(), CatalogError> {
        require::<System>(
            conn,
            &row.system_id,
            "battery_array.system_id",
            Parents::default(),
        )?;
        Ok(())
    }
    fn parents(_conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError> {
        Ok(own_system(rows))
    }
}

impl Linked for BatteryArrayAttachment {
    /// The array rollups of the time it covered (before and after the change) are rolled again.
    fn written(
        conn: &mut DbConnection,
        before: Option<&Self>,
        after: Option<&Self>,
    ) -> Result<(), CatalogError> {
        let now = crate::db::now_ms();
        let mut pending = Vec::new();
        for attachment in before.into_iter().chain(after) {
            let until = attachment.detached_at.unwrap_or(now).min(now);
            if until < attachment.attached_since {
                continue;
            }
            for pack_id in crate::db::catalog::pack_ids_of(conn, &attachment.battery_array_id)? {
                pending.push(crate::db::rollups::Pending {
                    device_id: pack_id,
                    system_id: attachment.system_id.clone(),
                    from_ts: attachment.attached_since,
                    to_ts: until,
                });
            }
        }
        crate::db::rollups::add_pending(conn, &pending)?;
        Ok(())
    }

    fn resolve(conn: &mut DbConnection, row: &mut Self) -> Result<(), CatalogError> {
        let battery_array: BatteryArray = require(
            conn,
            &row.battery_array_id,
            "battery_array_attachment.battery_array_id",
            in_system(&row.system_id),
        )?;
        let inverter_array: InverterArray = require(
            conn,
            &row.inverter_array_id,
            "battery_array_attachment.inverter_array_id",
            in_system(&row.system_id),
        )?;
        settle_system_id(
            &mut row.system_id,
            &battery_array.system_id,
            "battery_array_attachment.system_id",
            &format!("battery array {}", battery_array.battery_array_id),
        )?;
        if inverter_array.system_id != battery_array.system_id {
            let mut violations = Violations::default();
            violations.add(
                "battery_array_attachment.inverter_array_id",
                format!(
                    "array {} is in system {}, battery array {} in system {}",
                    inverter_array.array_id,
                    inverter_array.system_id,
                    battery_array.battery_array_id,
                    battery_array.system_id
                ),
            );
            violations.into_result()?;
        }
        let filter = ListFilter {
            battery_array_id: Some(row.battery_array_id.clone()),
            ..ListFilter::default()
        };
        let others = BatteryArrayAttachment::fetch_page(conn, &filter, None, i64::MAX)?;
        let end = row.detached_at.unwrap_or(i64::MAX);
        for other in others
            .iter()
            .filter(|o| o.attached_since != row.attached_since)
        {
            let other_end = other.detached_at.unwrap_or(i64::MAX);
            if row.attached_since < other_end && other.attached_since < end {
                let field = if row.detached_at.is_none() && other.detached_at.is_none() {
                    "battery_array_attachment.detached_at"
                } else {
                    "battery_array_attachment.attached_since"
                };
                return Err(CatalogError::Conflict {
                    field: field.into(),
                    message: format!(
                        "battery array {} is already attached to array {} from {}{}: attachments of one battery array must not overlap (at most one is active)",
                        other.battery_array_id,
                        other.inverter_array_id,
                        other.attached_since,
                        other
                            .detached_at
                            .map(|d| format!(" until {d}"))
                            .unwrap_or_else(|| " on (active)".into())
                    ),
                });
            }
        }
        Ok(())
    }
    fn parents(_conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError> {
        Ok(rows
            .iter()
            .map(|row| Parents {
                battery_array_id: Some(row.battery_array_id.clone()),
                ..in_system(&row.system_id)
            })
            .collect())
    }
}

impl Linked for BatteryPack {
    fn resolve(conn: &mut DbConnection, row: &mut Self) -> Result<(), CatalogError> {
        match &row.battery_array_id {
            Some(battery_array_id) => {
                let battery_array: BatteryArray = require(
                    conn,
                    battery_array_id,
                    "battery_pack.battery_array_id",
                    in_system(&row.system_id),
                )?;
                settle_system_id(
                    &mut row.system_id,
                    &battery_array.system_id,
                    "battery_pack.system_id",
                    &format!("battery array {}", battery_array.battery_array_id),
                )?;
            }
            None => {
                if row.system_id.is_empty() {
                    let mut violations = Violations::default();
                    violations.add(
                        "battery_pack.system_id",
                        "is required when battery_array_id is not set",
                    );
                    violations.into_result()?;
                }
                require::<System>(
                    conn,
                    &row.system_id,
                    "battery_pack.system_id",
                    Parents::default(),
                )?;
            }
        }
        Ok(())
    }
    fn parents(_conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError> {
        Ok(rows
            .iter()
            .map(|row| Parents {
                battery_array_id: row.battery_array_id.clone(),
                ..in_system(&row.system_id)
            })
            .collect())
    }
}

fn pack_parents(
    conn: &mut DbConnection,
    pack_ids: Vec<String>,
) -> Result<HashMap<String, Parents>, CatalogError> {
    let packs = store::packs_by_id(conn, &pack_ids)?;
    Ok(packs
        .into_iter()
        .map(|pack| {
            let parents = Parents {
                system_id: Some(pack.system_id.clone()),
                battery_array_id: pack.battery_array_id.clone(),
                pack_id: Some(pack.pack_id.clone()),
            };
            (pack.pack_id, parents)
        })
        .collect())
}

impl Linked for Battery {
    fn resolve(conn: &mut DbConnection, row: &mut Self) -> Result<(), CatalogError> {
        require::<BatteryPack>(conn, &row.pack_id, "battery.pack_id", Parents::default())?;
        Ok(())
    }
    fn parents(conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError> {
        let by_pack = pack_parents(conn, rows.iter().map(|r| r.pack_id.clone()).collect())?;
        Ok(rows
            .iter()
            .map(|r| by_pack.get(&r.pack_id).cloned().unwrap_or_default())
            .collect())
    }
    fn unique_field() -> Option<&'static str> {
        Some("battery_index")
    }
}

impl Linked for BatteryCell {
    fn resolve(conn: &mut DbConnection, row: &mut Self) -> Result<(), CatalogError> {
        require::<Battery>(
            conn,
            &row.battery_id,
            "battery_cell.battery_id",
            Parents::default(),
        )?;
        Ok(())
    }
    fn parents(conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError> {
        let batteries = store::batteries_by_id(
            conn,
            &rows
                .iter()
                .map(|r| r.battery_id.clone())
                .collect::<Vec<_>>(),
        )?;
        let pack_of: HashMap<String, String> = batteries
            .into_iter()
            .map(|b| (b.battery_id, b.pack_id))
            .collect();
        let by_pack = pack_parents(conn, pack_of.values().cloned().collect())?;
        Ok(rows
            .iter()
            .map(|r| {
                pack_of
                    .get(&r.battery_id)
                    .and_then(|pack| by_pack.get(pack))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect())
    }
    fn unique_field() -> Option<&'static str> {
        Some("cell_index")
    }
}

impl Linked for Meter {
    fn resolve(conn: &mut DbConnection, row: &mut Self) -> Result<(), CatalogError> {
        require::<System>(conn, &row.system_id, "meter.system_id", Parents::default())?;
        if let Some(array_id) = &row.array_id {
            let array: InverterArray =
                require(conn, array_id, "meter.array_id", in_system(&row.system_id))?;
            let mut system_id = row.system_id.clone();
            settle_system_id(
                &mut system_id,
                &array.system_id,
                "meter.array_id",
                &format!("array {}", array.array_id),
            )?;
        }
        if let Some(adapter_id) = &row.adapter_id {
            require::<Adapter>(conn, adapter_id, "meter.adapter_id", Parents::default())?;
        }
        Ok(())
    }
    fn parents(_conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError> {
        Ok(own_system(rows))
    }
}

impl Linked for AdapterType {
    fn resolve(_conn: &mut DbConnection, _row: &mut Self) -> Result<(), CatalogError> {
        Ok(())
    }
    fn parents(_conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError> {
        Ok(vec![Parents::default(); rows.len()])
    }
}

impl Linked for Adapter {
    fn resolve(conn: &mut DbConnection, row: &mut Self) -> Result<(), CatalogError> {
        let adapter_type: AdapterType = require(
            conn,
            &row.adapter_type,
            "adapter.adapter_type",
            Parents::default(),
        )?;
        if row.device_category.is_empty() {
            row.device_category = adapter_type.device_category.clone();
        }
        let schema = JsonSchema::parse(&adapter_type.config_schema).map_err(|error| {
            CatalogError::Internal(format!(
                "adapter type {} has a broken schema: {error}",
                adapter_type.adapter_type
            ))
        })?;
        let config: serde_json::Value =
            serde_json::from_str(&row.config_json).unwrap_or(serde_json::Value::Null);
        let mut violations = Violations::default();
        for violation in schema.validate(&config) {
            violations.add(
                format!("adapter.config_json.{}", violation.path),
                format!(
                    "{} (adapter type {})",
                    violation.message, adapter_type.adapter_type
                ),
            );
        }
        violations.into_result()?;
        // Stored canonically (sorted keys), like the config import writes it.
        row.config_json = config.to_string();
        Ok(())
    }
    fn parents(_conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError> {
        Ok(vec![Parents::default(); rows.len()])
    }
}

impl Linked for BatteryPackAdapter {
    fn resolve(conn: &mut DbConnection, row: &mut Self) -> Result<(), CatalogError> {
        require::<BatteryPack>(
            conn,
            &row.pack_id,
            "battery_pack_adapter.pack_id",
            Parents::default(),
        )?;
        require::<Adapter>(
            conn,
            &row.adapter_id,
            "battery_pack_adapter.adapter_id",
            Parents::default(),
        )?;
        Ok(())
    }
    fn parents(conn: &mut DbConnection, rows: &[Self]) -> Result<Vec<Parents>, CatalogError> {
        let by_pack = pack_parents(conn, rows.iter().map(|r| r.pack_id.clone()).collect())?;
        Ok(rows
            .iter()
            .map(|r| by_pack.get(&r.pack_id).cloned().unwrap_or_default())
            .collect())
    }
}
