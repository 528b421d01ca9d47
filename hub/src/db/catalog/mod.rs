//! Catalog tables: the row model of every table (made from the one declaration of each catalog
//! type), loading the catalog, applying an [`Installation`] ([`import`]), the CRUD API's one-row
//! store ([`store`]) and the loaders of one system's structure ([`structure`]).

mod import;
mod store;
mod structure;

pub use import::apply_installation;
pub use store::CatalogStore;
pub use structure::{
    batteries_by_id, ensure_batteries_and_cells, load_installations, load_structure, pack_ids_of,
    packs_by_id,
};

use super::{DbConnection, DbError, now_ms, schema};
use crate::installation::{self as domain, Installation};

/// Makes the row model of every catalog table from its one declaration
/// (`catalog::with_catalog_types!`): a module named after the table holding `Row` (the domain
/// fields plus the audit columns) and the operations the import and the CRUD store need.
macro_rules! row_models {
    ($(
        $(#[$doc:meta])*
        $name:ident($variant:ident, $table:ident, $sep:literal)
        key { $($key:ident: $key_ty:ty),+ $(,)? }
        fixed { $($(#[$fixed_doc:meta])* $fixed:ident: $fixed_ty:ty),* $(,)? }
        mutable { $($(#[$mutable_doc:meta])* $mutable:ident: $mutable_ty:ty),* $(,)? }
    );+ $(;)?) => {$(
        mod $table {
            use diesel::prelude::*;

            use super::super::schema;
            use super::DbConnection;

            #[derive(Queryable, Selectable, Insertable, Identifiable)]
            #[diesel(table_name = schema::$table, primary_key($($key),+), treat_none_as_null = true)]
            pub(super) struct Row {
                $($key: $key_ty,)+
                $($fixed: $fixed_ty,)*
                $($mutable: $mutable_ty,)*
                created_at: i64,
                updated_at: i64,
            }

            impl Row {
                pub(super) fn from_domain(row: &crate::installation::$name, created_at: i64, updated_at: i64) -> Self {
                    Row {
                        $($key: row.$key.clone(),)+
                        $($fixed: row.$fixed.clone(),)*
                        $($mutable: row.$mutable.clone(),)*
                        created_at,
                        updated_at,
                    }
                }

                pub(super) fn into_domain(self) -> crate::installation::$name {
                    crate::installation::$name {
                        $($key: self.$key,)+
                        $($fixed: self.$fixed,)*
                        $($mutable: self.$mutable,)*
                    }
                }

                pub(super) fn load_all(conn: &mut DbConnection) -> QueryResult<Vec<crate::installation::$name>> {
                    let rows: Vec<Row> = schema::$table::table.select(Row::as_select()).load(conn)?;
                    Ok(rows.into_iter().map(Row::into_domain).collect())
                }

                pub(super) fn insert(conn: &mut DbConnection, row: &crate::installation::$name, now: i64) -> QueryResult<()> {
                    diesel::insert_into(schema::$table::table)
                        .values(Row::from_domain(row, now, now))
                        .execute(conn)?;
                    Ok(())
                }

                /// Overwrites every column but the key and `created_at`.
                pub(super) fn update(conn: &mut DbConnection, row: &crate::installation::$name, now: i64) -> QueryResult<()> {
                    let model = Row::from_domain(row, 0, now);
                    diesel::update(&model)
                        .set((
                            $(schema::$table::$fixed.eq(&model.$fixed),)*
                            $(schema::$table::$mutable.eq(&model.$mutable),)*
                            schema::$table::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    Ok(())
                }

                // Import never prunes systems or adapter types; the CRUD API does.
                #[allow(dead_code)]
                pub(super) fn delete(conn: &mut DbConnection, row: &crate::installation::$name) -> QueryResult<()> {
                    let model = Row::from_domain(row, 0, 0);
                    diesel::delete(&model).execute(conn)?;
                    Ok(())
                }
            }
        }
    )+};
}

crate::installation::with_catalog_types!(row_models);

/// Every catalog row of the database, as domain types.
pub fn load_catalog(
    conn: &mut DbConnection,
) -> Result<(Vec<domain::AdapterType>, Installation, Vec<domain::System>), DbError> {
    let systems = systems::Row::load_all(conn)?;
    let installation = Installation {
        system: None,
        arrays: arrays::Row::load_all(conn)?,
        adapters: adapters::Row::load_all(conn)?,
        inverters: inverters::Row::load_all(conn)?,
        battery_arrays: battery_arrays::Row::load_all(conn)?,
        attachments: self::battery_array_attachments::Row::load_all(conn)?,
        packs: battery_packs::Row::load_all(conn)?,
        batteries: batteries::Row::load_all(conn)?,
        cells: battery_cells::Row::load_all(conn)?,
        meters: meters::Row::load_all(conn)?,
        pack_adapters: self::battery_pack_adapters::Row::load_all(conn)?,
    };
    Ok((adapter_base::Row::load_all(conn)?, installation, systems))
}

pub fn load_systems(conn: &mut DbConnection) -> Result<Vec<domain::System>, DbError> {
    Ok(systems::Row::load_all(conn)?)
}

/// Inserts every row of `rows` as new (parents first). Used for catalog rows the caller knows are
/// missing, such as placeholders for devices found only in a legacy database.
pub fn insert_rows(conn: &mut DbConnection, rows: &Installation) -> Result<(), DbError> {
    let now = now_ms();
    if let Some(row) = &rows.system {
        systems::Row::insert(conn, row, now)?;
    }
    for row in &rows.adapters {
        adapters::Row::insert(conn, row, now)?;
    }
    for row in &rows.arrays {
        arrays::Row::insert(conn, row, now)?;
    }
    for row in &rows.inverters {
        inverters::Row::insert(conn, row, now)?;
    }
    for row in &rows.battery_arrays {
        battery_arrays::Row::insert(conn, row, now)?;
    }
    for row in &rows.attachments {
        self::battery_array_attachments::Row::insert(conn, row, now)?;
    }
    for row in &rows.packs {
        battery_packs::Row::insert(conn, row, now)?;
    }
    for row in &rows.batteries {
        batteries::Row::insert(conn, row, now)?;
    }
    for row in &rows.cells {
        battery_cells::Row::insert(conn, row, now)?;
    }
    for row in &rows.meters {
        meters::Row::insert(conn, row, now)?;
    }
    for row in &rows.pack_adapters {
        self::battery_pack_adapters::Row::insert(conn, row, now)?;
    }
    Ok(())
}
