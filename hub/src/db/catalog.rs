//! Catalog tables: row models, loading the whole catalog, and applying an [`Installation`] in one
//! transaction so an import either lands completely or not at all.

use std::collections::HashSet;

use diesel::prelude::*;

use super::{DbConnection, DbError, now_ms, schema};
use crate::catalog::{
    self as domain, CatalogRecord, ChangeReport, Installation, TablePlan, plan_table,
};

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
                pub(super) fn from_domain(row: &crate::catalog::$name, created_at: i64, updated_at: i64) -> Self {
                    Row {
                        $($key: row.$key.clone(),)+
                        $($fixed: row.$fixed.clone(),)*
                        $($mutable: row.$mutable.clone(),)*
                        created_at,
                        updated_at,
                    }
                }

                pub(super) fn into_domain(self) -> crate::catalog::$name {
                    crate::catalog::$name {
                        $($key: self.$key,)+
                        $($fixed: self.$fixed,)*
                        $($mutable: self.$mutable,)*
                    }
                }

                pub(super) fn load_all(conn: &mut DbConnection) -> QueryResult<Vec<crate::catalog::$name>> {
                    let rows: Vec<Row> = schema::$table::table.select(Row::as_select()).load(conn)?;
                    Ok(rows.into_iter().map(Row::into_domain).collect())
                }

                pub(super) fn insert(conn: &mut DbConnection, row: &crate::catalog::$name, now: i64) -> QueryResult<()> {
                    diesel::insert_into(schema::$table::table)
                        .values(Row::from_domain(row, now, now))
                        .execute(conn)?;
                    Ok(())
                }

                /// Overwrites every column but the key and `created_at`.
                pub(super) fn update(conn: &mut DbConnection, row: &crate::catalog::$name, now: i64) -> QueryResult<()> {
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
                pub(super) fn delete(conn: &mut DbConnection, row: &crate::catalog::$name) -> QueryResult<()> {
                    let model = Row::from_domain(row, 0, 0);
                    diesel::delete(&model).execute(conn)?;
                    Ok(())
                }
            }
        }
    )+};
}

crate::catalog::with_catalog_types!(row_models);

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

/// Makes the catalog hold `adapter_types` and `installation`, in one transaction. Rows that already
/// hold the wanted values are not touched (their `updated_at` stays). With `prune`, rows of the
/// installation's system that the installation no longer has are deleted, children first.
pub fn apply_installation(
    conn: &mut DbConnection,
    adapter_types: &[domain::AdapterType],
    installation: &Installation,
    prune: bool,
) -> Result<ChangeReport, DbError> {
    conn.transaction(|conn| {
        let now = now_ms();
        let (existing_types, existing, existing_systems) = load_catalog(conn)?;
        let system_id = installation.system.as_ref().map(|s| s.system_id.clone());
        let in_system = |id: &str| system_id.as_deref() == Some(id);

        let systems: Vec<domain::System> = installation.system.iter().cloned().collect();
        let system_plan = plan_table(&existing_systems, &systems, false, |_| false);
        let type_plan = plan_table(&existing_types, adapter_types, false, |_| false);
        let array_plan = plan_table(&existing.arrays, &installation.arrays, prune, |r| {
            in_system(&r.system_id)
        });
        let inverter_plan = plan_table(&existing.inverters, &installation.inverters, prune, |r| {
            in_system(&r.system_id)
        });
        let battery_array_plan = plan_table(
            &existing.battery_arrays,
            &installation.battery_arrays,
            prune,
            |r| in_system(&r.system_id),
        );
        let attachment_plan = plan_table(
            &existing.attachments,
            &installation.attachments,
            prune,
            |r| in_system(&r.system_id),
        );
        let pack_plan = plan_table(&existing.packs, &installation.packs, prune, |r| {
            in_system(&r.system_id)
        });
        let system_packs: HashSet<&str> = existing
            .packs
            .iter()
            .filter(|p| in_system(&p.system_id))
            .map(|p| p.pack_id.as_str())
            .collect();
        let battery_plan = plan_table(&existing.batteries, &installation.batteries, prune, |r| {
            system_packs.contains(r.pack_id.as_str())
        });
        let system_batteries: HashSet<&str> = existing
            .batteries
            .iter()
            .filter(|b| system_packs.contains(b.pack_id.as_str()))
            .map(|b| b.battery_id.as_str())
            .collect();
        let cell_plan = plan_table(&existing.cells, &installation.cells, prune, |r| {
            system_batteries.contains(r.battery_id.as_str())
        });
        let meter_plan = plan_table(&existing.meters, &installation.meters, prune, |r| {
            in_system(&r.system_id)
        });
        let pack_adapter_plan = plan_table(
            &existing.pack_adapters,
            &installation.pack_adapters,
            prune,
            |r| system_packs.contains(r.pack_id.as_str()),
        );
        let system_devices: HashSet<&str> = existing
            .inverters
            .iter()
            .filter(|r| in_system(&r.system_id))
            .map(|r| r.inverter_id.as_str())
            .chain(system_packs.iter().copied())
            .chain(
                existing
                    .meters
                    .iter()
                    .filter(|r| in_system(&r.system_id))
                    .map(|r| r.meter_id.as_str()),
            )
            .collect();
        let adapter_plan = plan_table(&existing.adapters, &installation.adapters, prune, |r| {
            r.device_id
                .as_deref()
                .is_some_and(|device| system_devices.contains(device))
        });

        // Children are deleted before their parents, parents created before their children.
        for row in &pack_adapter_plan.delete {
            self::battery_pack_adapters::Row::delete(conn, row)?;
        }
        for row in &meter_plan.delete {
            meters::Row::delete(conn, row)?;
        }
        for row in &cell_plan.delete {
            battery_cells::Row::delete(conn, row)?;
        }
        for row in &battery_plan.delete {
            batteries::Row::delete(conn, row)?;
        }
        for row in &attachment_plan.delete {
            self::battery_array_attachments::Row::delete(conn, row)?;
        }
        for row in &inverter_plan.delete {
            inverters::Row::delete(conn, row)?;
        }
        for row in &pack_plan.delete {
            battery_packs::Row::delete(conn, row)?;
        }
        for row in &adapter_plan.delete {
            adapters::Row::delete(conn, row)?;
        }
        for row in &battery_array_plan.delete {
            battery_arrays::Row::delete(conn, row)?;
        }
        for row in &array_plan.delete {
            arrays::Row::delete(conn, row)?;
        }

        apply_plan(
            conn,
            &system_plan,
            now,
            systems::Row::insert,
            systems::Row::update,
        )?;
        apply_plan(
            conn,
            &type_plan,
            now,
            adapter_base::Row::insert,
            adapter_base::Row::update,
        )?;
        apply_plan(
            conn,
            &adapter_plan,
            now,
            adapters::Row::insert,
            adapters::Row::update,
        )?;
        apply_plan(
            conn,
            &array_plan,
            now,
            arrays::Row::insert,
            arrays::Row::update,
        )?;
        apply_plan(
            conn,
            &inverter_plan,
            now,
            inverters::Row::insert,
            inverters::Row::update,
        )?;
        apply_plan(
            conn,
            &battery_array_plan,
            now,
            battery_arrays::Row::insert,
            battery_arrays::Row::update,
        )?;
        // An attachment that becomes inactive is updated before a new active one is created, so the
        // "one active attachment" index never sees two.
        apply_plan(
            conn,
            &attachment_plan,
            now,
            self::battery_array_attachments::Row::insert,
            self::battery_array_attachments::Row::update,
        )?;
        apply_plan(
            conn,
            &pack_plan,
            now,
            battery_packs::Row::insert,
            battery_packs::Row::update,
        )?;
        apply_plan(
            conn,
            &battery_plan,
            now,
            batteries::Row::insert,
            batteries::Row::update,
        )?;
        apply_plan(
            conn,
            &cell_plan,
            now,
            battery_cells::Row::insert,
            battery_cells::Row::update,
        )?;
        apply_plan(
            conn,
            &meter_plan,
            now,
            meters::Row::insert,
            meters::Row::update,
        )?;
        apply_plan(
            conn,
            &pack_adapter_plan,
            now,
            self::battery_pack_adapters::Row::insert,
            self::battery_pack_adapters::Row::update,
        )?;

        let mut report = ChangeReport::default();
        system_plan.report_into(&mut report);
        type_plan.report_into(&mut report);
        adapter_plan.report_into(&mut report);
        array_plan.report_into(&mut report);
        inverter_plan.report_into(&mut report);
        battery_array_plan.report_into(&mut report);
        attachment_plan.report_into(&mut report);
        pack_plan.report_into(&mut report);
        battery_plan.report_into(&mut report);
        cell_plan.report_into(&mut report);
        meter_plan.report_into(&mut report);
        pack_adapter_plan.report_into(&mut report);
        Ok(report)
    })
}

fn apply_plan<T: CatalogRecord>(
    conn: &mut DbConnection,
    plan: &TablePlan<T>,
    now: i64,
    insert: fn(&mut DbConnection, &T, i64) -> QueryResult<()>,
    update: fn(&mut DbConnection, &T, i64) -> QueryResult<()>,
) -> Result<(), DbError> {
    for (row, _) in &plan.update {
        update(conn, row, now)?;
    }
    for row in &plan.create {
        insert(conn, row, now)?;
    }
    Ok(())
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

// ---------------------------------------------------------------------------------------------
// The CRUD API's view of the catalog: one resource at a time, by key, filtered and paged.

use crate::catalog::ListFilter;

/// Storage of one catalog resource. Implemented for every domain type of the hierarchy.
pub trait CatalogStore: CatalogRecord {
    fn fetch(conn: &mut DbConnection, key: &Self::Key) -> Result<Option<Self>, DbError>;
    /// Rows matching `filter` with a key after `after`, in key order, at most `limit`.
    fn fetch_page(
        conn: &mut DbConnection,
        filter: &ListFilter,
        after: Option<&Self::Key>,
        limit: i64,
    ) -> Result<Vec<Self>, DbError>;
    fn store_new(conn: &mut DbConnection, row: &Self) -> Result<(), DbError>;
    /// Overwrites every non-key column.
    fn store_changed(conn: &mut DbConnection, row: &Self) -> Result<(), DbError>;
    /// Deletes the row itself (its dependents must be gone already).
    fn remove(conn: &mut DbConnection, key: &Self::Key) -> Result<usize, DbError>;
}

macro_rules! single_key_store {
    ($domain:ty, $table:ident, $key:ident, |$q:ident, $f:ident| $filters:block) => {
        impl CatalogStore for $domain {
            fn fetch(conn: &mut DbConnection, key: &String) -> Result<Option<Self>, DbError> {
                let row: Option<$table::Row> =
                    schema::$table::table.find(key).select($table::Row::as_select()).first(conn).optional()?;
                Ok(row.map($table::Row::into_domain))
            }

            fn fetch_page(conn: &mut DbConnection, filter: &ListFilter, after: Option<&String>, limit: i64) -> Result<Vec<Self>, DbError> {
                #[allow(unused_mut)]
                let mut $q = schema::$table::table
                    .select($table::Row::as_select())
                    .order(schema::$table::$key)
                    .limit(limit)
                    .into_boxed();
                if let Some(after) = after {
                    $q = $q.filter(schema::$table::$key.gt(after.clone()));
                }
                let $f = filter;
                $filters
                let rows: Vec<$table::Row> = $q.load(conn)?;
                Ok(rows.into_iter().map($table::Row::into_domain).collect())
            }

            fn store_new(conn: &mut DbConnection, row: &Self) -> Result<(), DbError> {
                Ok($table::Row::insert(conn, row, now_ms())?)
            }

            fn store_changed(conn: &mut DbConnection, row: &Self) -> Result<(), DbError> {
                Ok($table::Row::update(conn, row, now_ms())?)
            }

            fn remove(conn: &mut DbConnection, key: &String) -> Result<usize, DbError> {
                Ok(diesel::delete(schema::$table::table.find(key)).execute(conn)?)
            }
        }
    };
}

single_key_store!(domain::System, systems, system_id, |q, f| {
    let _ = f;
});
single_key_store!(domain::InverterArray, arrays, array_id, |q, f| {
    if let Some(system) = &f.system_id {
        q = q.filter(schema::arrays::system_id.eq(system.clone()));
    }
});
single_key_store!(domain::Inverter, inverters, inverter_id, |q, f| {
    if let Some(system) = &f.system_id {
        q = q.filter(schema::inverters::system_id.eq(system.clone()));
    }
    if let Some(array) = &f.array_id {
        q = q.filter(schema::inverters::array_id.eq(array.clone()));
    }
});
single_key_store!(
    domain::BatteryArray,
    battery_arrays,
    battery_array_id,
    |q, f| {
        if let Some(system) = &f.system_id {
            q = q.filter(schema::battery_arrays::system_id.eq(system.clone()));
        }
    }
);
single_key_store!(domain::BatteryPack, battery_packs, pack_id, |q, f| {
    if let Some(system) = &f.system_id {
        q = q.filter(schema::battery_packs::system_id.eq(system.clone()));
    }
    if let Some(battery_array) = &f.battery_array_id {
        q = q.filter(schema::battery_packs::battery_array_id.eq(battery_array.clone()));
    }
});
single_key_store!(domain::Battery, batteries, battery_id, |q, f| {
    if let Some(system) = &f.system_id {
        let packs = schema::battery_packs::table
            .filter(schema::battery_packs::system_id.eq(system.clone()))
            .select(schema::battery_packs::pack_id);
        q = q.filter(schema::batteries::pack_id.eq_any(packs));
    }
    if let Some(pack) = &f.pack_id {
        q = q.filter(schema::batteries::pack_id.eq(pack.clone()));
    }
});
single_key_store!(domain::BatteryCell, battery_cells, cell_id, |q, f| {
    if let Some(system) = &f.system_id {
        let packs = schema::battery_packs::table
            .filter(schema::battery_packs::system_id.eq(system.clone()))
            .select(schema::battery_packs::pack_id);
        let batteries = schema::batteries::table
            .filter(schema::batteries::pack_id.eq_any(packs))
            .select(schema::batteries::battery_id);
        q = q.filter(schema::battery_cells::battery_id.eq_any(batteries));
    }
    if let Some(pack) = &f.pack_id {
        let batteries = schema::batteries::table
            .filter(schema::batteries::pack_id.eq(pack.clone()))
            .select(schema::batteries::battery_id);
        q = q.filter(schema::battery_cells::battery_id.eq_any(batteries));
    }
    if let Some(battery) = &f.battery_id {
        q = q.filter(schema::battery_cells::battery_id.eq(battery.clone()));
    }
});
single_key_store!(domain::Meter, meters, meter_id, |q, f| {
    if let Some(system) = &f.system_id {
        q = q.filter(schema::meters::system_id.eq(system.clone()));
    }
    if let Some(array) = &f.array_id {
        q = q.filter(schema::meters::array_id.eq(array.clone()));
    }
});
single_key_store!(domain::AdapterType, adapter_base, adapter_type, |q, f| {
    if let Some(category) = &f.device_category {
        q = q.filter(schema::adapter_base::device_category.eq(category.clone()));
    }
});
single_key_store!(domain::Adapter, adapters, adapter_id, |q, f| {
    if let Some(adapter_type) = &f.adapter_type {
        q = q.filter(schema::adapters::adapter_type.eq(adapter_type.clone()));
    }
    if let Some(collector) = &f.collector_id {
        q = q.filter(schema::adapters::collector_id.eq(collector.clone()));
    }
    if let Some(device) = &f.device_id {
        q = q.filter(schema::adapters::device_id.eq(device.clone()));
    }
});

impl CatalogStore for domain::BatteryArrayAttachment {
    fn fetch(conn: &mut DbConnection, key: &(String, i64)) -> Result<Option<Self>, DbError> {
        use schema::battery_array_attachments::dsl::*;
        let row: Option<self::battery_array_attachments::Row> = battery_array_attachments
            .find((&key.0, key.1))
            .select(self::battery_array_attachments::Row::as_select())
            .first(conn)
            .optional()?;
        Ok(row.map(self::battery_array_attachments::Row::into_domain))
    }

    fn fetch_page(
        conn: &mut DbConnection,
        filter: &ListFilter,
        after: Option<&(String, i64)>,
        limit: i64,
    ) -> Result<Vec<Self>, DbError> {
        use schema::battery_array_attachments::dsl::*;
        let mut query = battery_array_attachments
            .select(self::battery_array_attachments::Row::as_select())
            .order((battery_array_id, attached_since))
            .limit(limit)
            .into_boxed();
        if let Some((after_id, after_since)) = after {
            query = query.filter(
                battery_array_id.gt(after_id.clone()).or(battery_array_id
                    .eq(after_id.clone())
                    .and(attached_since.gt(*after_since))),
            );
        }
        if let Some(system) = &filter.system_id {
            query = query.filter(system_id.eq(system.clone()));
        }
        if let Some(battery_array) = &filter.battery_array_id {
            query = query.filter(battery_array_id.eq(battery_array.clone()));
        }
        if let Some(inverter_array) = &filter.inverter_array_id {
            query = query.filter(inverter_array_id.eq(inverter_array.clone()));
        }
        if filter.active_only {
            query = query.filter(detached_at.is_null());
        }
        let rows: Vec<self::battery_array_attachments::Row> = query.load(conn)?;
        Ok(rows
            .into_iter()
            .map(self::battery_array_attachments::Row::into_domain)
            .collect())
    }

    fn store_new(conn: &mut DbConnection, row: &Self) -> Result<(), DbError> {
        Ok(self::battery_array_attachments::Row::insert(
            conn,
            row,
            now_ms(),
        )?)
    }

    fn store_changed(conn: &mut DbConnection, row: &Self) -> Result<(), DbError> {
        Ok(self::battery_array_attachments::Row::update(
            conn,
            row,
            now_ms(),
        )?)
    }

    fn remove(conn: &mut DbConnection, key: &(String, i64)) -> Result<usize, DbError> {
        use schema::battery_array_attachments::dsl::*;
        Ok(diesel::delete(battery_array_attachments.find((&key.0, key.1))).execute(conn)?)
    }
}

impl CatalogStore for domain::BatteryPackAdapter {
    fn fetch(conn: &mut DbConnection, key: &(String, String)) -> Result<Option<Self>, DbError> {
        let row: Option<self::battery_pack_adapters::Row> = schema::battery_pack_adapters::table
            .find((&key.0, &key.1))
            .select(self::battery_pack_adapters::Row::as_select())
            .first(conn)
            .optional()?;
        Ok(row.map(self::battery_pack_adapters::Row::into_domain))
    }

    fn fetch_page(
        conn: &mut DbConnection,
        filter: &ListFilter,
        after: Option<&(String, String)>,
        limit: i64,
    ) -> Result<Vec<Self>, DbError> {
        use schema::battery_pack_adapters::dsl::*;
        let mut query = battery_pack_adapters
            .select(self::battery_pack_adapters::Row::as_select())
            .order((pack_id, adapter_id))
            .limit(limit)
            .into_boxed();
        if let Some((after_pack, after_adapter)) = after {
            query = query.filter(
                pack_id.gt(after_pack.clone()).or(pack_id
                    .eq(after_pack.clone())
                    .and(adapter_id.gt(after_adapter.clone()))),
            );
        }
        if let Some(pack) = &filter.pack_id {
            query = query.filter(pack_id.eq(pack.clone()));
        }
        if let Some(adapter) = &filter.adapter_id {
            query = query.filter(adapter_id.eq(adapter.clone()));
        }
        if let Some(system) = &filter.system_id {
            let packs = schema::battery_packs::table
                .filter(schema::battery_packs::system_id.eq(system.clone()))
                .select(schema::battery_packs::pack_id);
            query = query.filter(pack_id.eq_any(packs));
        }
        let rows: Vec<self::battery_pack_adapters::Row> = query.load(conn)?;
        Ok(rows
            .into_iter()
            .map(self::battery_pack_adapters::Row::into_domain)
            .collect())
    }

    fn store_new(conn: &mut DbConnection, row: &Self) -> Result<(), DbError> {
        Ok(self::battery_pack_adapters::Row::insert(
            conn,
            row,
            now_ms(),
        )?)
    }

    fn store_changed(conn: &mut DbConnection, row: &Self) -> Result<(), DbError> {
        Ok(self::battery_pack_adapters::Row::update(
            conn,
            row,
            now_ms(),
        )?)
    }

    fn remove(conn: &mut DbConnection, key: &(String, String)) -> Result<usize, DbError> {
        Ok(
            diesel::delete(schema::battery_pack_adapters::table.find((&key.0, &key.1)))
                .execute(conn)?,
        )
    }
}

/// The packs with these ids (for the parent ids of batteries, cells and pack adapters).
pub fn packs_by_id(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<Vec<domain::BatteryPack>, DbError> {
    let rows: Vec<battery_packs::Row> = schema::battery_packs::table
        .filter(schema::battery_packs::pack_id.eq_any(ids))
        .select(battery_packs::Row::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(battery_packs::Row::into_domain)
        .collect())
}

pub fn batteries_by_id(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<Vec<domain::Battery>, DbError> {
    let rows: Vec<batteries::Row> = schema::batteries::table
        .filter(schema::batteries::battery_id.eq_any(ids))
        .select(batteries::Row::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(batteries::Row::into_domain).collect())
}

/// Every catalog row of one system (or of all systems), one query per table whatever the number of
/// devices: the rows `GetConfig` turns into a tree.
pub fn load_installations(
    conn: &mut DbConnection,
    system: Option<&str>,
) -> Result<(Vec<domain::System>, Installation), DbError> {
    load_installations_with(conn, system, true)
}

/// The structure of one system only (system, arrays, inverters, battery arrays, attachments,
/// packs, meters): what the rollups need, in 7 queries.
pub fn load_structure(
    conn: &mut DbConnection,
    system: &str,
) -> Result<(Vec<domain::System>, Installation), DbError> {
    load_installations_with(conn, Some(system), false)
}

fn load_installations_with(
    conn: &mut DbConnection,
    system: Option<&str>,
    everything: bool,
) -> Result<(Vec<domain::System>, Installation), DbError> {
    let Some(system) = system else {
        let (_, installation, systems) = load_catalog(conn)?;
        return Ok((systems, installation));
    };
    let systems: Vec<systems::Row> = schema::systems::table
        .filter(schema::systems::system_id.eq(system))
        .select(systems::Row::as_select())
        .load(conn)?;
    let arrays: Vec<arrays::Row> = schema::arrays::table
        .filter(schema::arrays::system_id.eq(system))
        .select(arrays::Row::as_select())
        .load(conn)?;
    let inverters: Vec<inverters::Row> = schema::inverters::table
        .filter(schema::inverters::system_id.eq(system))
        .select(inverters::Row::as_select())
        .load(conn)?;
    let battery_arrays: Vec<battery_arrays::Row> = schema::battery_arrays::table
        .filter(schema::battery_arrays::system_id.eq(system))
        .select(battery_arrays::Row::as_select())
        .load(conn)?;
    let attachments: Vec<self::battery_array_attachments::Row> =
        schema::battery_array_attachments::table
            .filter(schema::battery_array_attachments::system_id.eq(system))
            .select(self::battery_array_attachments::Row::as_select())
            .load(conn)?;
    let packs: Vec<battery_packs::Row> = schema::battery_packs::table
        .filter(schema::battery_packs::system_id.eq(system))
        .select(battery_packs::Row::as_select())
        .load(conn)?;
    let system_packs = schema::battery_packs::table
        .filter(schema::battery_packs::system_id.eq(system))
        .select(schema::battery_packs::pack_id);
    let batteries: Vec<batteries::Row> = if everything {
        schema::batteries::table
            .filter(schema::batteries::pack_id.eq_any(system_packs))
            .select(batteries::Row::as_select())
            .load(conn)?
    } else {
        Vec::new()
    };
    let system_batteries = schema::batteries::table
        .filter(
            schema::batteries::pack_id.eq_any(
                schema::battery_packs::table
                    .filter(schema::battery_packs::system_id.eq(system))
                    .select(schema::battery_packs::pack_id),
            ),
        )
        .select(schema::batteries::battery_id);
    let cells: Vec<battery_cells::Row> = if everything {
        schema::battery_cells::table
            .filter(schema::battery_cells::battery_id.eq_any(system_batteries))
            .select(battery_cells::Row::as_select())
            .load(conn)?
    } else {
        Vec::new()
    };
    let meters: Vec<meters::Row> = schema::meters::table
        .filter(schema::meters::system_id.eq(system))
        .select(meters::Row::as_select())
        .load(conn)?;
    let pack_adapters: Vec<self::battery_pack_adapters::Row> = if !everything {
        Vec::new()
    } else {
        schema::battery_pack_adapters::table
            .filter(
                schema::battery_pack_adapters::pack_id.eq_any(
                    schema::battery_packs::table
                        .filter(schema::battery_packs::system_id.eq(system))
                        .select(schema::battery_packs::pack_id),
                ),
            )
            .select(self::battery_pack_adapters::Row::as_select())
            .load(conn)?
    };
    // Adapters belong to a system through the device they read.
    let adapters: Vec<adapters::Row> = if !everything {
        Vec::new()
    } else {
        schema::adapters::table
            .filter(
                schema::adapters::device_id
                    .eq_any(
                        schema::inverters::table
                            .filter(schema::inverters::system_id.eq(system))
                            .select(schema::inverters::inverter_id.nullable()),
                    )
                    .or(schema::adapters::device_id.eq_any(
                        schema::meters::table
                            .filter(schema::meters::system_id.eq(system))
                            .select(schema::meters::meter_id.nullable()),
                    ))
                    .or(schema::adapters::device_id.eq_any(
                        schema::battery_packs::table
                            .filter(schema::battery_packs::system_id.eq(system))
                            .select(schema::battery_packs::pack_id.nullable()),
                    )),
            )
            .select(adapters::Row::as_select())
            .load(conn)?
    };
    Ok((
        systems.into_iter().map(systems::Row::into_domain).collect(),
        Installation {
            system: None,
            arrays: arrays.into_iter().map(arrays::Row::into_domain).collect(),
            adapters: adapters
                .into_iter()
                .map(adapters::Row::into_domain)
                .collect(),
            inverters: inverters
                .into_iter()
                .map(inverters::Row::into_domain)
                .collect(),
            battery_arrays: battery_arrays
                .into_iter()
                .map(battery_arrays::Row::into_domain)
                .collect(),
            attachments: attachments
                .into_iter()
                .map(self::battery_array_attachments::Row::into_domain)
                .collect(),
            packs: packs
                .into_iter()
                .map(battery_packs::Row::into_domain)
                .collect(),
            batteries: batteries
                .into_iter()
                .map(batteries::Row::into_domain)
                .collect(),
            cells: cells
                .into_iter()
                .map(battery_cells::Row::into_domain)
                .collect(),
            meters: meters.into_iter().map(meters::Row::into_domain).collect(),
            pack_adapters: pack_adapters
                .into_iter()
                .map(self::battery_pack_adapters::Row::into_domain)
                .collect(),
        },
    ))
}

/// Adds batteries and cells that are not there yet (ingest names them as packs report them); rows
/// that exist are left alone, so concurrent batches may both try.
pub fn ensure_batteries_and_cells(
    conn: &mut DbConnection,
    batteries: &[domain::Battery],
    cells: &[domain::BatteryCell],
) -> Result<(), DbError> {
    let now = now_ms();
    let battery_rows: Vec<batteries::Row> = batteries
        .iter()
        .map(|b| batteries::Row::from_domain(b, now, now))
        .collect();
    let cell_rows: Vec<battery_cells::Row> = cells
        .iter()
        .map(|c| battery_cells::Row::from_domain(c, now, now))
        .collect();
    for row in &battery_rows {
        match conn {
            DbConnection::Postgres(pg) => diesel::insert_into(schema::batteries::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::insert_into(schema::batteries::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(sqlite)?,
        };
    }
    for row in &cell_rows {
        match conn {
            DbConnection::Postgres(pg) => diesel::insert_into(schema::battery_cells::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::insert_into(schema::battery_cells::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(sqlite)?,
        };
    }
    Ok(())
}

/// The packs of a battery array.
pub fn pack_ids_of(
    conn: &mut DbConnection,
    battery_array_id: &str,
) -> Result<Vec<String>, DbError> {
    use schema::battery_packs::dsl as p;
    Ok(p::battery_packs
        .filter(p::battery_array_id.eq(battery_array_id))
        .select(p::pack_id)
        .order(p::pack_id)
        .load(conn)?)
}
