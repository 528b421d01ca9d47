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
