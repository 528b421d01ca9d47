//! The old app's own hierarchy, as its newest versions keep it in the database (its "Phase 1"
//! migration: `systems`, `arrays`, `inverters`, `meters`, `adapters`, `battery_arrays`,
//! `battery_packs`, `battery_pack_adapters`, `battery_array_attachments`), its `configuration`
//! settings, and the `arrays` / `battery_packs` of its earlier versions.
//!
//! The upgrade takes from here whatever the config does not say. The old app's migration leaves
//! an auto-created system `system` holding every device next to the (often empty) system of its
//! config; they are folded into one. Ids follow solarhub's rules (adapters become
//! `<device>.adapter`, `.adapter1`, …), adapter configs lose their `type` key and are checked
//! against the type's schema like a config file's; one that fails is left out and reported.

use std::collections::BTreeMap;

use crate::adapter_types::KnownAdapterType;
use crate::catalog::{
    Adapter, BatteryArray, BatteryArrayAttachment, BatteryPack, BatteryPackAdapter, Installation,
    Inverter, InverterArray, Meter, id_problem,
};
use crate::db::legacy_source::{
    self as source, LEGACY_CLASHING_TABLES, LegacyArrayCatalogRow, LegacyPackCatalogRow,
    LegacyTable, OldAdapterRow, OldAttachmentRow, OldBatteryArrayRow, OldInverterRow, OldMeterRow,
    OldPackAdapterRow, OldSystemRow,
};
use crate::db::{DbConnection, DbError};

/// The system the old app's migration creates by itself (`create_default_system`).
const AUTO_SYSTEM_ID: &str = "system";

/// The old app's table `name` in a file whose clashing tables may carry `prefix`.
pub(crate) fn old_table(
    conn: &mut DbConnection,
    prefix: &str,
    name: &str,
) -> Result<Option<LegacyTable>, DbError> {
    let actual = match LEGACY_CLASHING_TABLES.contains(&name) {
        true => format!("{prefix}{name}"),
        false => name.to_owned(),
    };
    LegacyTable::inspect(conn, &actual)
}

/// Everything of the old app's hierarchy and settings the file holds.
#[derive(Debug, Default)]
pub(crate) struct FileHierarchy {
    systems: Vec<OldSystemRow>,
    settings: BTreeMap<String, String>,
    arrays: Vec<LegacyArrayCatalogRow>,
    inverters: Vec<OldInverterRow>,
    meters: Vec<OldMeterRow>,
    adapters: Vec<OldAdapterRow>,
    battery_arrays: Vec<OldBatteryArrayRow>,
    packs: Vec<LegacyPackCatalogRow>,
    pack_adapters: Vec<OldPackAdapterRow>,
    attachments: Vec<OldAttachmentRow>,
}

/// The one system the file's systems fold into.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FileSystem {
    pub(crate) system_id: String,
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) timezone: Option<String>,
    /// The other systems of the file, folded into this one.
    pub(crate) folded: Vec<String>,
}

/// A legacy text value as the old app stored a setting: plain or JSON-quoted; `None`/`null`/empty
/// mean nothing.
fn setting_value(value: &str) -> Option<String> {
    let value = value.trim().trim_matches('"').trim();
    match value {
        "" | "None" | "none" | "null" => None,
        value => Some(value.to_owned()),
    }
}

fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl FileHierarchy {
    pub(crate) fn read(conn: &mut DbConnection, prefix: &str) -> Result<FileHierarchy, DbError> {
        let mut file = FileHierarchy::default();
        macro_rules! read {
            ($field:ident, $name:expr, $reader:path) => {
                if let Some(table) = old_table(conn, prefix, $name)? {
                    file.$field = $reader(conn, &table)?;
                }
            };
        }
        read!(systems, "systems", source::read_old_systems);
        read!(arrays, "arrays", source::read_legacy_arrays);
        read!(inverters, "inverters", source::read_old_inverters);
        read!(meters, "meters", source::read_old_meters);
        read!(adapters, "adapters", source::read_old_adapters);
        read!(
            battery_arrays,
            "battery_arrays",
            source::read_old_battery_arrays
        );
        read!(packs, "battery_packs", source::read_legacy_packs);
        read!(
            pack_adapters,
            "battery_pack_adapters",
            source::read_old_pack_adapters
        );
        read!(
            attachments,
            "battery_array_attachments",
            source::read_old_attachments
        );
        if let Some(table) = old_table(conn, prefix, "configuration")? {
            for row in source::read_settings(conn, &table)? {
                if let (Some(key), Some(value)) =
                    (row.key, row.value.as_deref().and_then(setting_value))
                {
                    file.settings.insert(key.trim().to_owned(), value);
                }
            }
        }
        Ok(file)
    }

    /// The site's zone as the old app's settings name it: (key, zone).
    pub(crate) fn timezone_setting(&self) -> Option<(String, String)> {
        ["home.timezone", "timezone", "smart.forecast.tz"]
            .iter()
            .find_map(|key| Some(((*key).to_owned(), self.settings.get(*key)?.clone())))
    }

    /// The file's systems folded into one: the one that is not the auto-created `system` (the
    /// config's `home.id` when several are not), else `system` itself.
    pub(crate) fn system(&self) -> Option<FileSystem> {
        let systems: Vec<&OldSystemRow> = self
            .systems
            .iter()
            .filter(|s| text(&s.system_id).is_some())
            .collect();
        let id = |s: &OldSystemRow| text(&s.system_id).unwrap_or_default().to_owned();
        let home_id = self.settings.get("home.id");
        let own: Vec<&&OldSystemRow> = systems.iter().filter(|s| id(s) != AUTO_SYSTEM_ID).collect();
        let chosen = own
            .iter()
            .find(|s| home_id == Some(&id(s)))
            .or_else(|| own.first())
            .map(|s| **s)
            .or_else(|| systems.first().copied())?;
        let chosen_id = id(chosen);
        // The auto-created system's zone is the old app's default, not the site's: the chosen
        // system's own zone comes first.
        let timezone = text(&chosen.timezone)
            .or_else(|| systems.iter().find_map(|s| text(&s.timezone)))
            .map(str::to_owned);
        Some(FileSystem {
            system_id: chosen_id.clone(),
            name: text(&chosen.name).map(str::to_owned),
            description: text(&chosen.description).map(str::to_owned),
            timezone,
            folded: systems
                .iter()
                .map(|s| id(s))
                .filter(|s| *s != chosen_id)
                .collect(),
        })
    }

    /// The file's hierarchy as catalog rows of `system_id`, with solarhub's ids. `read_time` reads
    /// the old app's attachment times. Adapters whose type or config solarhub does not accept are
    /// left out, each with a sentence saying why.
    pub(crate) fn installation(
        &self,
        system_id: &str,
        adapter_types: &[KnownAdapterType],
        read_time: impl Fn(&str) -> Option<i64>,
    ) -> (Installation, Vec<String>) {
        let mut rows = Installation::default();
        let mut notes = Vec::new();
        fn valid(raw: &Option<String>) -> Option<&str> {
            text(raw).filter(|id| id_problem(id).is_none())
        }
        let old_adapters: BTreeMap<&str, &OldAdapterRow> = self
            .adapters
            .iter()
            .filter_map(|a| Some((text(&a.adapter_id)?, a)))
            .collect();
        let adapter = |old_id: &str,
                       new_id: String,
                       device: &str,
                       device_type: &str,
                       notes: &mut Vec<String>| {
            let old = old_adapters.get(old_id)?;
            let adapter_type = text(&old.adapter_type)?;
            let Some(known) = adapter_types
                .iter()
                .find(|t| t.row.adapter_type == adapter_type)
            else {
                notes.push(format!("adapter {old_id} of {device} not carried over: unknown adapter type {adapter_type:?}"));
                return None;
            };
            let config = match text(&old.config_json).map(serde_json::from_str::<serde_json::Value>)
            {
                Some(Ok(serde_json::Value::Object(mut block))) => {
                    // `type` is the adapter's type; a null is a key the old app left unset.
                    block.remove("type");
                    block.retain(|_, value| !value.is_null());
                    serde_json::Value::Object(block)
                }
                None => serde_json::Value::Object(serde_json::Map::new()),
                Some(_) => {
                    notes.push(format!("adapter {old_id} of {device} not carried over: its config_json is not a JSON object"));
                    return None;
                }
            };
            let violations = known.schema.validate(&config);
            if let Some(violation) = violations.first() {
                notes.push(format!(
                    "adapter {old_id} of {device} not carried over: {} {} (adapter type {adapter_type}); give the device an adapter in config.yaml",
                    violation.path, violation.message
                ));
                return None;
            }
            Some(Adapter {
                adapter_id: new_id,
                adapter_type: adapter_type.to_owned(),
                device_category: known.row.device_category.clone(),
                device_id: Some(device.to_owned()),
                device_type: Some(device_type.to_owned()),
                collector_id: None,
                config_json: config.to_string(),
                priority: old.priority.unwrap_or(1),
                enabled: old.enabled != Some(0),
            })
        };

        for array in &self.arrays {
            let Some(array_id) = valid(&array.array_id) else {
                continue;
            };
            rows.arrays.push(InverterArray {
                array_id: array_id.to_owned(),
                system_id: system_id.to_owned(),
                name: text(&array.name).unwrap_or(array_id).to_owned(),
                pv_capacity_kw: None,
            });
        }
        for inverter in &self.inverters {
            let (Some(inverter_id), Some(array_id)) =
                (valid(&inverter.inverter_id), valid(&inverter.array_id))
            else {
                continue;
            };
            let adapter_row = text(&inverter.adapter_id).and_then(|old| {
                adapter(
                    old,
                    format!("{inverter_id}.adapter"),
                    inverter_id,
                    "inverter",
                    &mut notes,
                )
            });
            rows.inverters.push(Inverter {
                inverter_id: inverter_id.to_owned(),
                array_id: array_id.to_owned(),
                system_id: system_id.to_owned(),
                adapter_id: adapter_row.as_ref().map(|a| a.adapter_id.clone()),
                name: text(&inverter.name).unwrap_or(inverter_id).to_owned(),
                model: text(&inverter.model).map(str::to_owned),
                serial_number: text(&inverter.serial_number).map(str::to_owned),
                vendor: text(&inverter.vendor).map(str::to_owned),
                phase_type: text(&inverter.phase_type).map(str::to_owned),
                rated_power_w: None,
                settings_json: None,
            });
            rows.adapters.extend(adapter_row);
        }
        for meter in &self.meters {
            let Some(meter_id) = valid(&meter.meter_id) else {
                continue;
            };
            let adapter_row = text(&meter.adapter_id).and_then(|old| {
                adapter(
                    old,
                    format!("{meter_id}.adapter"),
                    meter_id,
                    "meter",
                    &mut notes,
                )
            });
            let array_id = valid(&meter.array_id).filter(|a| *a != "home" && *a != system_id);
            rows.meters.push(Meter {
                meter_id: meter_id.to_owned(),
                system_id: system_id.to_owned(),
                array_id: array_id.map(str::to_owned),
                adapter_id: adapter_row.as_ref().map(|a| a.adapter_id.clone()),
                name: text(&meter.name).unwrap_or(meter_id).to_owned(),
                model: text(&meter.model).map(str::to_owned),
                meter_type: text(&meter.meter_type).unwrap_or("grid").to_owned(),
            });
            rows.adapters.extend(adapter_row);
        }
        for battery_array in &self.battery_arrays {
            let Some(id) = valid(&battery_array.battery_array_id) else {
                continue;
            };
            rows.battery_arrays.push(BatteryArray {
                battery_array_id: id.to_owned(),
                system_id: system_id.to_owned(),
                name: text(&battery_array.name).unwrap_or(id).to_owned(),
            });
        }
        for pack in &self.packs {
            let Some(pack_id) = valid(&pack.pack_id) else {
                continue;
            };
            rows.packs.push(BatteryPack {
                pack_id: pack_id.to_owned(),
                battery_array_id: valid(&pack.battery_array_id).map(str::to_owned),
                system_id: system_id.to_owned(),
                name: text(&pack.name).unwrap_or(pack_id).to_owned(),
                chemistry: text(&pack.chemistry).map(str::to_owned),
                nominal_kwh: pack.nominal_kwh,
                max_charge_kw: pack.max_charge_kw,
                max_discharge_kw: pack.max_discharge_kw,
                batteries_count: None,
                cells_per_battery: None,
            });
            // Its adapters, numbered as a config's `adapters:` list would be.
            let mut own: Vec<&OldPackAdapterRow> = self
                .pack_adapters
                .iter()
                .filter(|a| text(&a.pack_id) == Some(pack_id))
                .collect();
            own.sort_by_key(|a| {
                (
                    a.priority.unwrap_or(1),
                    text(&a.adapter_id).unwrap_or_default().to_owned(),
                )
            });
            let numbered = own.len() > 1;
            for (n, link) in own.iter().enumerate() {
                let Some(old_id) = text(&link.adapter_id) else {
                    continue;
                };
                let new_id = match numbered {
                    true => format!("{pack_id}.adapter{}", n + 1),
                    false => format!("{pack_id}.adapter"),
                };
                let Some(mut row) = adapter(old_id, new_id, pack_id, "battery_pack", &mut notes)
                else {
                    continue;
                };
                row.priority = link.priority.unwrap_or(row.priority);
                row.enabled = link.enabled.map_or(row.enabled, |e| e != 0);
                rows.pack_adapters.push(BatteryPackAdapter {
                    pack_id: pack_id.to_owned(),
                    adapter_id: row.adapter_id.clone(),
                    priority: row.priority,
                    enabled: row.enabled,
                });
                rows.adapters.push(row);
            }
        }
        for attachment in &self.attachments {
            let (Some(battery_array_id), Some(inverter_array_id)) = (
                valid(&attachment.battery_array_id),
                valid(&attachment.inverter_array_id),
            ) else {
                continue;
            };
            let Some(attached_since) = text(&attachment.attached_since).and_then(&read_time) else {
                notes.push(format!(
                    "attachment of battery array {battery_array_id} to {inverter_array_id} not carried over: its attached_since {:?} is not a time",
                    attachment.attached_since
                ));
                continue;
            };
            rows.attachments.push(BatteryArrayAttachment {
                battery_array_id: battery_array_id.to_owned(),
                attached_since,
                inverter_array_id: inverter_array_id.to_owned(),
                system_id: system_id.to_owned(),
                detached_at: text(&attachment.detached_at).and_then(&read_time),
            });
        }
        (rows, notes)
    }
}
