//! The hierarchy repository: every read and write of the CRUD API and `GetConfig`.
//!
//! Each write is one transaction that checks values, then references (resolving derived ids such as
//! an inverter's `system_id` from its array), then stores. Reads answer with the resource and its
//! parent ids.

use std::collections::BTreeMap;

use crate::catalog::{
    Adapter, AdapterType, Battery, BatteryArray, BatteryPack, CatalogGeneration, Installation,
    InverterArray, System,
};
use crate::db::cascade;
use crate::db::catalog::{self as store, CatalogStore};
use crate::db::{Database, DbConnection, DbError};

use super::{CatalogError, Linked, Parents, Resource, Violations};
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

#[derive(Clone)]
pub struct Repository {
    database: Database,
    generation: CatalogGeneration,
}

impl Repository {
    /// A successful write changed the catalog: caches built from it must read it again.
    fn bump_on_success<T>(&self, result: Result<T, CatalogError>) -> Result<T, CatalogError> {
        if result.is_ok() {
            self.generation.bump();
        }
        result
    }

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

    /// `read` on the connection that found `key` (NOT_FOUND when it did not): a check and the
    /// read it guards in one trip to the database.
    pub async fn read_of<R: Linked, T: Send + 'static>(
        &self,
        key: R::Key,
        read: impl FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, CatalogError> {
        self.database
            .run(move |conn| -> Result<Result<T, CatalogError>, DbError> {
                if R::fetch(conn, &key)?.is_none() {
                    return Ok(Err(not_found::<R>(&key)));
                }
                read(conn).map(Ok)
            })
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
                check_and_resolve(conn, &mut row)?;
                if R::fetch(conn, &row.id())?.is_some() {
                    return Err(already_exists::<R>(&row.id()));
                }
                store_and_answer(conn, None, row, R::store_new)
            })
            .await;
        self.bump_on_success(result)
    }

    /// Changes the fields of `mask` (every changeable field for `["*"]`; an empty mask is refused)
    /// to the values in `update`, which also names the resource by its id fields.
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
                check_and_resolve(conn, &mut row)?;
                store_and_answer(conn, Some(&before), row, R::store_changed)
            })
            .await;
        self.bump_on_success(result)
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
        self.bump_on_success(result)
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

/// A write's checks: values alone, then references (filling derived ids).
fn check_and_resolve<R: Linked>(conn: &mut DbConnection, row: &mut R) -> Result<(), CatalogError> {
    let mut violations = Violations::default();
    row.check_values(&mut violations);
    // Whatever else a field allows, never a NUL: Postgres refuses it (the whole write failed as
    // INTERNAL), C clients cut the string there.
    for (field, text) in row.texts() {
        if text.contains('\0') {
            violations.add(
                format!("{}.{field}", R::FIELD),
                "must not contain a NUL character",
            );
        }
    }
    violations.into_result()?;
    R::resolve(conn, row)
}

/// A write's tail: stores `row` with `store` (a unique index lost to another writer is a
/// conflict, not a crash), runs what the write implies, and answers with the row and its parents.
fn store_and_answer<R: Linked>(
    conn: &mut DbConnection,
    before: Option<&R>,
    row: R,
    store: fn(&mut DbConnection, &R) -> Result<(), DbError>,
) -> Result<(R, Parents), CatalogError> {
    match store(conn, &row) {
        Ok(()) => {}
        Err(DbError::UniqueViolation(_)) => return Err(unique_conflict::<R>(&row)),
        Err(other) => return Err(other.into()),
    }
    R::written(conn, before, Some(&row))?;
    let parents = R::parents(conn, std::slice::from_ref(&row))?
        .pop()
        .unwrap_or_default();
    Ok((row, parents))
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
pub(super) fn require<P: CatalogStore + Resource>(
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

pub(super) fn in_system(system_id: &str) -> Parents {
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
/// How many bad mask paths an error names one by one; the rest are counted.
const NAMED_BAD_PATHS: usize = 5;

/// The fields an update changes: those its mask names, or every changeable one for `["*"]`
/// (AIP-134). A missing mask is refused: replacing every field unasked once cleared a system's
/// zone, currency and tariff.
fn mask_fields<R: Resource>(mask: &[String]) -> Result<Vec<String>, CatalogError> {
    if mask.is_empty() {
        let mut violations = Violations::default();
        violations.add(
            "update_mask",
            format!(
                "is required: name the fields to change (changeable: {}), or [\"*\"] to replace them all",
                R::MUTABLE_FIELDS.join(", ")
            ),
        );
        violations.into_result()?;
    }
    if mask == ["*"] {
        return Ok(R::MUTABLE_FIELDS.iter().map(|f| (*f).to_owned()).collect());
    }
    let mut violations = Violations::default();
    let mut bad = 0;
    for (index, path) in mask.iter().enumerate() {
        let field = path.strip_prefix(&format!("{}.", R::FIELD)).unwrap_or(path);
        let problem = if field == "*" {
            Some("\"*\" stands alone: it replaces every changeable field".to_owned())
        } else if R::ID_FIELDS.contains(&field) {
            Some(format!(
                "{field} identifies the {} and cannot be changed",
                R::KIND
            ))
        } else if !R::MUTABLE_FIELDS.contains(&field) {
            Some(format!(
                "{} has no changeable field {:?}; changeable: {}",
                R::KIND,
                crate::limits::shown(field),
                R::MUTABLE_FIELDS.join(", ")
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            bad += 1;
            if bad <= NAMED_BAD_PATHS {
                violations.add(format!("update_mask.paths[{index}]"), problem);
            }
        }
    }
    if bad > NAMED_BAD_PATHS {
        violations.add(
            "update_mask.paths",
            format!("and {} more bad paths", bad - NAMED_BAD_PATHS),
        );
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
