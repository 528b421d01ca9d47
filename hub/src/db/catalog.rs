//! Catalog tables: row models, loading the whole catalog, and applying an [`Installation`] in one
//! transaction so an import either lands completely or not at all.

use std::collections::HashSet;

use diesel::prelude::*;

use super::{DbConnection, DbError, now_ms, schema};
use crate::catalog::{
    self as domain, CatalogRecord, ChangeReport, Installation, TablePlan, plan_table,
};

/// Declares the row model of one catalog table: the domain fields plus the audit columns, with the
/// four operations the import needs.
macro_rules! catalog_model {
    ($model:ident => $domain:path, $table:ident, key($($pk:ident),+), { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Queryable, Selectable, Insertable, AsChangeset, Identifiable)]
        #[diesel(table_name = schema::$table, primary_key($($pk),+), treat_none_as_null = true)]
        struct $model {
            $($pk: String,)+
            $($field: $ty,)*
            created_at: i64,
            updated_at: i64,
        }

        impl $model {
            fn from_domain(row: &$domain, created_at: i64, updated_at: i64) -> Self {
                $model { $($pk: row.$pk.clone(),)+ $($field: row.$field.clone(),)* created_at, updated_at }
            }

            fn into_domain(self) -> $domain {
                $domain { $($pk: self.$pk,)+ $($field: self.$field,)* }
            }

            fn load_all(conn: &mut DbConnection) -> QueryResult<Vec<$domain>> {
                let rows: Vec<$model> = schema::$table::table.select($model::as_select()).load(conn)?;
                Ok(rows.into_iter().map($model::into_domain).collect())
            }

            fn insert(conn: &mut DbConnection, row: &$domain, now: i64) -> QueryResult<()> {
                diesel::insert_into(schema::$table::table).values($model::from_domain(row, now, now)).execute(conn)?;
                Ok(())
            }

            /// Overwrites every column but the key and `created_at`.
            fn update(conn: &mut DbConnection, row: &$domain, now: i64) -> QueryResult<()> {
                let model = $model::from_domain(row, 0, now);
                diesel::update(&model)
                    .set((
                        $(schema::$table::$field.eq(&model.$field),)*
                        schema::$table::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                Ok(())
            }

            // Import never prunes systems or adapter types; the CRUD API will.
            #[allow(dead_code)]
            fn delete(conn: &mut DbConnection, row: &$domain) -> QueryResult<()> {
                let model = $model::from_domain(row, 0, 0);
                diesel::delete(&model).execute(conn)?;
                Ok(())
            }
        }
    };
}

catalog_model!(SystemRow => domain::System, systems, key(system_id), {
    name: String, description: Option<String>, timezone: String, currency: Option<String>, tariff_json: Option<String>,
});
catalog_model!(AdapterTypeRow => domain::AdapterType, adapter_base, key(adapter_type), {
    device_category: String, name: String, description: Option<String>, config_schema: String,
    supported_transports: String, default_config: Option<String>, version: i32,
});
catalog_model!(AdapterRow => domain::Adapter, adapters, key(adapter_id), {
    adapter_type: String, device_category: String, device_id: Option<String>, device_type: Option<String>,
    collector_id: Option<String>, config_json: String, priority: i32, enabled: bool,
});
catalog_model!(ArrayRow => domain::InverterArray, arrays, key(array_id), {
    system_id: String, name: String, pv_capacity_kw: Option<f64>,
});
catalog_model!(InverterRow => domain::Inverter, inverters, key(inverter_id), {
    array_id: String, system_id: String, adapter_id: Option<String>, name: String, model: Option<String>,
    serial_number: Option<String>, vendor: Option<String>, phase_type: Option<String>, rated_power_w: Option<f64>,
    settings_json: Option<String>,
});
catalog_model!(BatteryArrayRow => domain::BatteryArray, battery_arrays, key(battery_array_id), {
    system_id: String, name: String,
});
catalog_model!(PackRow => domain::BatteryPack, battery_packs, key(pack_id), {
    battery_array_id: Option<String>, system_id: String, name: String, chemistry: Option<String>,
    nominal_kwh: Option<f64>, max_charge_kw: Option<f64>, max_discharge_kw: Option<f64>,
    batteries_count: Option<i32>, cells_per_battery: Option<i32>,
});
catalog_model!(BatteryRow => domain::Battery, batteries, key(battery_id), {
    pack_id: String, battery_index: i32, serial_number: Option<String>, model: Option<String>,
});
catalog_model!(CellRow => domain::BatteryCell, battery_cells, key(cell_id), {
    battery_id: String, cell_index: i32, nominal_voltage: Option<f64>,
});
catalog_model!(MeterRow => domain::Meter, meters, key(meter_id), {
    system_id: String, array_id: Option<String>, adapter_id: Option<String>, name: String, model: Option<String>,
    meter_type: String,
});
catalog_model!(PackAdapterRow => domain::BatteryPackAdapter, battery_pack_adapters, key(pack_id, adapter_id), {
    priority: i32, enabled: bool,
});

// The attachment key mixes a text and a time column, so its model is written out.
#[derive(Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = schema::battery_array_attachments, primary_key(battery_array_id, attached_since))]
struct AttachmentRow {
    battery_array_id: String,
    attached_since: i64,
    inverter_array_id: String,
    system_id: String,
    detached_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl AttachmentRow {
    fn from_domain(row: &domain::BatteryArrayAttachment, created_at: i64, updated_at: i64) -> Self {
        AttachmentRow {
            battery_array_id: row.battery_array_id.clone(),
            attached_since: row.attached_since,
            inverter_array_id: row.inverter_array_id.clone(),
            system_id: row.system_id.clone(),
            detached_at: row.detached_at,
            created_at,
            updated_at,
        }
    }

    fn into_domain(self) -> domain::BatteryArrayAttachment {
        domain::BatteryArrayAttachment {
            battery_array_id: self.battery_array_id,
            attached_since: self.attached_since,
            inverter_array_id: self.inverter_array_id,
            system_id: self.system_id,
            detached_at: self.detached_at,
        }
    }

    fn load_all(conn: &mut DbConnection) -> QueryResult<Vec<domain::BatteryArrayAttachment>> {
        use schema::battery_array_attachments::dsl::*;
        let rows: Vec<AttachmentRow> = battery_array_attachments
            .select(AttachmentRow::as_select())
            .load(conn)?;
        Ok(rows.into_iter().map(AttachmentRow::into_domain).collect())
    }

    fn insert(
        conn: &mut DbConnection,
        row: &domain::BatteryArrayAttachment,
        now: i64,
    ) -> QueryResult<()> {
        diesel::insert_into(schema::battery_array_attachments::table)
            .values(AttachmentRow::from_domain(row, now, now))
            .execute(conn)?;
        Ok(())
    }

    fn update(
        conn: &mut DbConnection,
        row: &domain::BatteryArrayAttachment,
        now: i64,
    ) -> QueryResult<()> {
        use schema::battery_array_attachments::dsl::*;
        diesel::update(battery_array_attachments.find((&row.battery_array_id, row.attached_since)))
            .set((
                inverter_array_id.eq(&row.inverter_array_id),
                system_id.eq(&row.system_id),
                detached_at.eq(row.detached_at),
                updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(())
    }

    fn delete(conn: &mut DbConnection, row: &domain::BatteryArrayAttachment) -> QueryResult<()> {
        use schema::battery_array_attachments::dsl::*;
        diesel::delete(battery_array_attachments.find((&row.battery_array_id, row.attached_since)))
            .execute(conn)?;
        Ok(())
    }
}

/// Every catalog row of the database, as domain types.
pub fn load_catalog(
    conn: &mut DbConnection,
) -> Result<(Vec<domain::AdapterType>, Installation, Vec<domain::System>), DbError> {
    let systems = SystemRow::load_all(conn)?;
    let installation = Installation {
        system: None,
        arrays: ArrayRow::load_all(conn)?,
        adapters: AdapterRow::load_all(conn)?,
        inverters: InverterRow::load_all(conn)?,
        battery_arrays: BatteryArrayRow::load_all(conn)?,
        attachments: AttachmentRow::load_all(conn)?,
        packs: PackRow::load_all(conn)?,
        batteries: BatteryRow::load_all(conn)?,
        cells: CellRow::load_all(conn)?,
        meters: MeterRow::load_all(conn)?,
        pack_adapters: PackAdapterRow::load_all(conn)?,
    };
    Ok((AdapterTypeRow::load_all(conn)?, installation, systems))
}

pub fn load_systems(conn: &mut DbConnection) -> Result<Vec<domain::System>, DbError> {
    Ok(SystemRow::load_all(conn)?)
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
            PackAdapterRow::delete(conn, row)?;
        }
        for row in &meter_plan.delete {
            MeterRow::delete(conn, row)?;
        }
        for row in &cell_plan.delete {
            CellRow::delete(conn, row)?;
        }
        for row in &battery_plan.delete {
            BatteryRow::delete(conn, row)?;
        }
        for row in &attachment_plan.delete {
            AttachmentRow::delete(conn, row)?;
        }
        for row in &inverter_plan.delete {
            InverterRow::delete(conn, row)?;
        }
        for row in &pack_plan.delete {
            PackRow::delete(conn, row)?;
        }
        for row in &adapter_plan.delete {
            AdapterRow::delete(conn, row)?;
        }
        for row in &battery_array_plan.delete {
            BatteryArrayRow::delete(conn, row)?;
        }
        for row in &array_plan.delete {
            ArrayRow::delete(conn, row)?;
        }

        apply_plan(
            conn,
            &system_plan,
            now,
            SystemRow::insert,
            SystemRow::update,
        )?;
        apply_plan(
            conn,
            &type_plan,
            now,
            AdapterTypeRow::insert,
            AdapterTypeRow::update,
        )?;
        apply_plan(
            conn,
            &adapter_plan,
            now,
            AdapterRow::insert,
            AdapterRow::update,
        )?;
        apply_plan(conn, &array_plan, now, ArrayRow::insert, ArrayRow::update)?;
        apply_plan(
            conn,
            &inverter_plan,
            now,
            InverterRow::insert,
            InverterRow::update,
        )?;
        apply_plan(
            conn,
            &battery_array_plan,
            now,
            BatteryArrayRow::insert,
            BatteryArrayRow::update,
        )?;
        // An attachment that becomes inactive is updated before a new active one is created, so the
        // "one active attachment" index never sees two.
        apply_plan(
            conn,
            &attachment_plan,
            now,
            AttachmentRow::insert,
            AttachmentRow::update,
        )?;
        apply_plan(conn, &pack_plan, now, PackRow::insert, PackRow::update)?;
        apply_plan(
            conn,
            &battery_plan,
            now,
            BatteryRow::insert,
            BatteryRow::update,
        )?;
        apply_plan(conn, &cell_plan, now, CellRow::insert, CellRow::update)?;
        apply_plan(conn, &meter_plan, now, MeterRow::insert, MeterRow::update)?;
        apply_plan(
            conn,
            &pack_adapter_plan,
            now,
            PackAdapterRow::insert,
            PackAdapterRow::update,
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
        SystemRow::insert(conn, row, now)?;
    }
    for row in &rows.adapters {
        AdapterRow::insert(conn, row, now)?;
    }
    for row in &rows.arrays {
        ArrayRow::insert(conn, row, now)?;
    }
    for row in &rows.inverters {
        InverterRow::insert(conn, row, now)?;
    }
    for row in &rows.battery_arrays {
        BatteryArrayRow::insert(conn, row, now)?;
    }
    for row in &rows.attachments {
        AttachmentRow::insert(conn, row, now)?;
    }
    for row in &rows.packs {
        PackRow::insert(conn, row, now)?;
    }
    for row in &rows.batteries {
        BatteryRow::insert(conn, row, now)?;
    }
    for row in &rows.cells {
        CellRow::insert(conn, row, now)?;
    }
    for row in &rows.meters {
        MeterRow::insert(conn, row, now)?;
    }
    for row in &rows.pack_adapters {
        PackAdapterRow::insert(conn, row, now)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The CRUD API's view of the catalog: one resource at a time, by key, filtered and paged.

use crate::hierarchy::{ListFilter, Resource};

/// Storage of one catalog resource. Implemented for every domain type of the hierarchy.
pub trait CatalogStore: Resource {
    /// The table that holds it.
    const TABLE: &'static str;
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
    ($domain:ty, $model:ident, $table:ident, $key:ident, |$q:ident, $f:ident| $filters:block) => {
        impl CatalogStore for $domain {
            const TABLE: &'static str = stringify!($table);

            fn fetch(conn: &mut DbConnection, key: &String) -> Result<Option<Self>, DbError> {
                let row: Option<$model> =
                    schema::$table::table.find(key).select($model::as_select()).first(conn).optional()?;
                Ok(row.map($model::into_domain))
            }

            fn fetch_page(conn: &mut DbConnection, filter: &ListFilter, after: Option<&String>, limit: i64) -> Result<Vec<Self>, DbError> {
                #[allow(unused_mut)]
                let mut $q = schema::$table::table
                    .select($model::as_select())
                    .order(schema::$table::$key)
                    .limit(limit)
                    .into_boxed();
                if let Some(after) = after {
                    $q = $q.filter(schema::$table::$key.gt(after.clone()));
                }
                let $f = filter;
                $filters
                let rows: Vec<$model> = $q.load(conn)?;
                Ok(rows.into_iter().map($model::into_domain).collect())
            }

            fn store_new(conn: &mut DbConnection, row: &Self) -> Result<(), DbError> {
                Ok($model::insert(conn, row, now_ms())?)
            }

            fn store_changed(conn: &mut DbConnection, row: &Self) -> Result<(), DbError> {
                Ok($model::update(conn, row, now_ms())?)
            }

            fn remove(conn: &mut DbConnection, key: &String) -> Result<usize, DbError> {
                Ok(diesel::delete(schema::$table::table.find(key)).execute(conn)?)
            }
        }
    };
}

single_key_store!(domain::System, SystemRow, systems, system_id, |q, f| {
    let _ = f;
});
single_key_store!(domain::InverterArray, ArrayRow, arrays, array_id, |q, f| {
    if let Some(system) = &f.system_id {
        q = q.filter(schema::arrays::system_id.eq(system.clone()));
    }
});
single_key_store!(
    domain::Inverter,
    InverterRow,
    inverters,
    inverter_id,
    |q, f| {
        if let Some(system) = &f.system_id {
            q = q.filter(schema::inverters::system_id.eq(system.clone()));
        }
        if let Some(array) = &f.array_id {
            q = q.filter(schema::inverters::array_id.eq(array.clone()));
        }
    }
);
single_key_store!(
    domain::BatteryArray,
    BatteryArrayRow,
    battery_arrays,
    battery_array_id,
    |q, f| {
        if let Some(system) = &f.system_id {
            q = q.filter(schema::battery_arrays::system_id.eq(system.clone()));
        }
    }
);
single_key_store!(
    domain::BatteryPack,
    PackRow,
    battery_packs,
    pack_id,
    |q, f| {
        if let Some(system) = &f.system_id {
            q = q.filter(schema::battery_packs::system_id.eq(system.clone()));
        }
        if let Some(battery_array) = &f.battery_array_id {
            q = q.filter(schema::battery_packs::battery_array_id.eq(battery_array.clone()));
        }
    }
);
single_key_store!(
    domain::Battery,
    BatteryRow,
    batteries,
    battery_id,
    |q, f| {
        if let Some(system) = &f.system_id {
            let packs = schema::battery_packs::table
                .filter(schema::battery_packs::system_id.eq(system.clone()))
                .select(schema::battery_packs::pack_id);
            q = q.filter(schema::batteries::pack_id.eq_any(packs));
        }
        if let Some(pack) = &f.pack_id {
            q = q.filter(schema::batteries::pack_id.eq(pack.clone()));
        }
    }
);
single_key_store!(
    domain::BatteryCell,
    CellRow,
    battery_cells,
    cell_id,
    |q, f| {
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
    }
);
single_key_store!(domain::Meter, MeterRow, meters, meter_id, |q, f| {
    if let Some(system) = &f.system_id {
        q = q.filter(schema::meters::system_id.eq(system.clone()));
    }
    if let Some(array) = &f.array_id {
        q = q.filter(schema::meters::array_id.eq(array.clone()));
    }
});
single_key_store!(
    domain::AdapterType,
    AdapterTypeRow,
    adapter_base,
    adapter_type,
    |q, f| {
        if let Some(category) = &f.device_category {
            q = q.filter(schema::adapter_base::device_category.eq(category.clone()));
        }
    }
);
single_key_store!(domain::Adapter, AdapterRow, adapters, adapter_id, |q, f| {
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
    const TABLE: &'static str = "battery_array_attachments";

    fn fetch(conn: &mut DbConnection, key: &(String, i64)) -> Result<Option<Self>, DbError> {
        use schema::battery_array_attachments::dsl::*;
        let row: Option<AttachmentRow> = battery_array_attachments
            .find((&key.0, key.1))
            .select(AttachmentRow::as_select())
            .first(conn)
            .optional()?;
        Ok(row.map(AttachmentRow::into_domain))
    }

    fn fetch_page(
        conn: &mut DbConnection,
        filter: &ListFilter,
        after: Option<&(String, i64)>,
        limit: i64,
    ) -> Result<Vec<Self>, DbError> {
        use schema::battery_array_attachments::dsl::*;
        let mut query = battery_array_attachments
            .select(AttachmentRow::as_select())
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
        let rows: Vec<AttachmentRow> = query.load(conn)?;
        Ok(rows.into_iter().map(AttachmentRow::into_domain).collect())
    }

    fn store_new(conn: &mut DbConnection, row: &Self) -> Result<(), DbError> {
        Ok(AttachmentRow::insert(conn, row, now_ms())?)
    }

    fn store_changed(conn: &mut DbConnection, row: &Self) -> Result<(), DbError> {
        Ok(AttachmentRow::update(conn, row, now_ms())?)
    }

    fn remove(conn: &mut DbConnection, key: &(String, i64)) -> Result<usize, DbError> {
        use schema::battery_array_attachments::dsl::*;
        Ok(diesel::delete(battery_array_attachments.find((&key.0, key.1))).execute(conn)?)
    }
}

impl CatalogStore for domain::BatteryPackAdapter {
    const TABLE: &'static str = "battery_pack_adapters";

    fn fetch(conn: &mut DbConnection, key: &(String, String)) -> Result<Option<Self>, DbError> {
        let row: Option<PackAdapterRow> = schema::battery_pack_adapters::table
            .find((&key.0, &key.1))
            .select(PackAdapterRow::as_select())
            .first(conn)
            .optional()?;
        Ok(row.map(PackAdapterRow::into_domain))
    }

    fn fetch_page(
        conn: &mut DbConnection,
        filter: &ListFilter,
        after: Option<&(String, String)>,
        limit: i64,
    ) -> Result<Vec<Self>, DbError> {
        use schema::battery_pack_adapters::dsl::*;
        let mut query = battery_pack_adapters
            .select(PackAdapterRow::as_select())
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
        let rows: Vec<PackAdapterRow> = query.load(conn)?;
        Ok(rows.into_iter().map(PackAdapterRow::into_domain).collect())
    }

    fn store_new(conn: &mut DbConnection, row: &Self) -> Result<(), DbError> {
        Ok(PackAdapterRow::insert(conn, row, now_ms())?)
    }

    fn store_changed(conn: &mut DbConnection, row: &Self) -> Result<(), DbError> {
        Ok(PackAdapterRow::update(conn, row, now_ms())?)
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
    let rows: Vec<PackRow> = schema::battery_packs::table
        .filter(schema::battery_packs::pack_id.eq_any(ids))
        .select(PackRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(PackRow::into_domain).collect())
}

pub fn batteries_by_id(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<Vec<domain::Battery>, DbError> {
    let rows: Vec<BatteryRow> = schema::batteries::table
        .filter(schema::batteries::battery_id.eq_any(ids))
        .select(BatteryRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(BatteryRow::into_domain).collect())
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
    use schema::*;
    let Some(system) = system else {
        let (_, installation, systems) = load_catalog(conn)?;
        return Ok((systems, installation));
    };
    let systems: Vec<SystemRow> = systems::table
        .filter(systems::system_id.eq(system))
        .select(SystemRow::as_select())
        .load(conn)?;
    let arrays: Vec<ArrayRow> = arrays::table
        .filter(arrays::system_id.eq(system))
        .select(ArrayRow::as_select())
        .load(conn)?;
    let inverters: Vec<InverterRow> = inverters::table
        .filter(inverters::system_id.eq(system))
        .select(InverterRow::as_select())
        .load(conn)?;
    let battery_arrays: Vec<BatteryArrayRow> = battery_arrays::table
        .filter(battery_arrays::system_id.eq(system))
        .select(BatteryArrayRow::as_select())
        .load(conn)?;
    let attachments: Vec<AttachmentRow> = battery_array_attachments::table
        .filter(battery_array_attachments::system_id.eq(system))
        .select(AttachmentRow::as_select())
        .load(conn)?;
    let packs: Vec<PackRow> = battery_packs::table
        .filter(battery_packs::system_id.eq(system))
        .select(PackRow::as_select())
        .load(conn)?;
    let system_packs = battery_packs::table
        .filter(battery_packs::system_id.eq(system))
        .select(battery_packs::pack_id);
    let batteries: Vec<BatteryRow> = if everything {
        batteries::table
            .filter(batteries::pack_id.eq_any(system_packs))
            .select(BatteryRow::as_select())
            .load(conn)?
    } else {
        Vec::new()
    };
    let system_batteries = batteries::table
        .filter(
            batteries::pack_id.eq_any(
                battery_packs::table
                    .filter(battery_packs::system_id.eq(system))
                    .select(battery_packs::pack_id),
            ),
        )
        .select(batteries::battery_id);
    let cells: Vec<CellRow> = if everything {
        battery_cells::table
            .filter(battery_cells::battery_id.eq_any(system_batteries))
            .select(CellRow::as_select())
            .load(conn)?
    } else {
        Vec::new()
    };
    let meters: Vec<MeterRow> = meters::table
        .filter(meters::system_id.eq(system))
        .select(MeterRow::as_select())
        .load(conn)?;
    let pack_adapters: Vec<PackAdapterRow> = if !everything {
        Vec::new()
    } else {
        battery_pack_adapters::table
            .filter(
                battery_pack_adapters::pack_id.eq_any(
                    battery_packs::table
                        .filter(battery_packs::system_id.eq(system))
                        .select(battery_packs::pack_id),
                ),
            )
            .select(PackAdapterRow::as_select())
            .load(conn)?
    };
    // Adapters belong to a system through the device they read.
    let adapters: Vec<AdapterRow> = if !everything {
        Vec::new()
    } else {
        adapters::table
            .filter(
                adapters::device_id
                    .eq_any(
                        inverters::table
                            .filter(inverters::system_id.eq(system))
                            .select(inverters::inverter_id.nullable()),
                    )
                    .or(adapters::device_id.eq_any(
                        meters::table
                            .filter(meters::system_id.eq(system))
                            .select(meters::meter_id.nullable()),
                    ))
                    .or(adapters::device_id.eq_any(
                        battery_packs::table
                            .filter(battery_packs::system_id.eq(system))
                            .select(battery_packs::pack_id.nullable()),
                    )),
            )
            .select(AdapterRow::as_select())
            .load(conn)?
    };
    Ok((
        systems.into_iter().map(SystemRow::into_domain).collect(),
        Installation {
            system: None,
            arrays: arrays.into_iter().map(ArrayRow::into_domain).collect(),
            adapters: adapters.into_iter().map(AdapterRow::into_domain).collect(),
            inverters: inverters
                .into_iter()
                .map(InverterRow::into_domain)
                .collect(),
            battery_arrays: battery_arrays
                .into_iter()
                .map(BatteryArrayRow::into_domain)
                .collect(),
            attachments: attachments
                .into_iter()
                .map(AttachmentRow::into_domain)
                .collect(),
            packs: packs.into_iter().map(PackRow::into_domain).collect(),
            batteries: batteries.into_iter().map(BatteryRow::into_domain).collect(),
            cells: cells.into_iter().map(CellRow::into_domain).collect(),
            meters: meters.into_iter().map(MeterRow::into_domain).collect(),
            pack_adapters: pack_adapters
                .into_iter()
                .map(PackAdapterRow::into_domain)
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
    let battery_rows: Vec<BatteryRow> = batteries
        .iter()
        .map(|b| BatteryRow::from_domain(b, now, now))
        .collect();
    let cell_rows: Vec<CellRow> = cells
        .iter()
        .map(|c| CellRow::from_domain(c, now, now))
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
