//! Applying an [`Installation`] (a config file) as a diff in one transaction: only changed rows
//! are written, removal only with `prune`, and the report says exactly what changed.

use std::collections::HashSet;

use diesel::prelude::*;

use super::*;
use crate::installation::{CatalogRecord, ChangeReport, TablePlan, plan_table};

/// Makes the catalog hold `adapter_types` and `installation`, in one transaction. Rows that already
/// hold the wanted values are not touched (their `updated_at` stays). With `prune`, rows of the
/// installation's system that the installation no longer has are deleted, children first.
pub fn apply_installation(
    conn: &mut DbConnection,
    adapter_types: &[domain::AdapterType],
    installation: &Installation,
    prune: bool,
) -> Result<ChangeReport, DbError> {
    super::super::in_transaction(conn, |conn| {
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
