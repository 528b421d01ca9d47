//! The CRUD API's view of the catalog: one resource at a time, by key, filtered and paged.

use diesel::prelude::*;

use super::*;
use crate::installation::{CatalogRecord, ListFilter};

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
