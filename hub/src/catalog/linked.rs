//! How each resource hangs in the hierarchy (`Linked`): the references a write must check, the
//! ids it derives from its parent (a child's `system_id`), the parent ids every answer carries,
//! and what a write changes beyond its own row.

use std::collections::HashMap;

use super::repository::{in_system, require};
use super::{CatalogError, Parents, Resource, Violations};
use crate::catalog::ListFilter;
use crate::catalog::{
    Adapter, AdapterType, Battery, BatteryArray, BatteryArrayAttachment, BatteryCell, BatteryPack,
    BatteryPackAdapter, Inverter, InverterArray, Meter, System,
};
use crate::db::DbConnection;
use crate::db::catalog::{self as store, CatalogStore};
use crate::json_schema::JsonSchema;

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
    /// The batteries and cells its counts declare are made with it (ingest stores readings only
    /// of declared ones and never adds any). Lowering a count removes nothing: a battery taken
    /// out keeps its history until it is deleted.
    fn written(
        conn: &mut DbConnection,
        _before: Option<&Self>,
        after: Option<&Self>,
    ) -> Result<(), CatalogError> {
        let Some(pack) = after else {
            return Ok(());
        };
        let (batteries, cells) = declared_batteries_and_cells(pack);
        store::ensure_batteries_and_cells(conn, &batteries, &cells)?;
        Ok(())
    }
}

/// The batteries `1..=batteries_count` of a pack and their cells `1..=cells_per_battery`.
pub fn declared_batteries_and_cells(pack: &BatteryPack) -> (Vec<Battery>, Vec<BatteryCell>) {
    let (mut batteries, mut cells) = (Vec::new(), Vec::new());
    for battery_index in 1..=pack.batteries_count.unwrap_or(0) {
        let battery_id = solarhub_proto::contract::battery_id(&pack.pack_id, battery_index);
        for cell_index in 1..=pack.cells_per_battery.unwrap_or(0) {
            cells.push(BatteryCell {
                cell_id: solarhub_proto::contract::cell_id(&battery_id, cell_index),
                battery_id: battery_id.clone(),
                cell_index,
                nominal_voltage: None,
            });
        }
        batteries.push(Battery {
            battery_id,
            pack_id: pack.pack_id.clone(),
            battery_index,
            serial_number: None,
            model: None,
        });
    }
    (batteries, cells)
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
