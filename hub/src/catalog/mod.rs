//! The catalog: the service that reads and changes the installation hierarchy (DESIGN §4 CRUD).
//! Its types are `crate::installation`'s (re-exported here). [`Repository`] is the service:
//! validation ([`Resource`]), referential checks and derived ids ([`Linked`]), paging, update
//! masks, cascade delete and `GetConfig`, every write one transaction; it speaks [`CatalogError`],
//! never proto types, and reaches the database only through `crate::db`.

mod errors;
mod linked;
mod repository;
mod resources;

pub use errors::{CatalogError, FieldViolation, Parents, Violations};
pub use linked::{Linked, declared_batteries_and_cells};
pub use repository::{ConfigTree, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, Repository};
pub use resources::{DEVICE_CATEGORIES, METER_TYPES, Resource};

pub use crate::installation::*;
