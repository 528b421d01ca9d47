//! The catalog the copied samples need: the installation the old app's tables describe adopted,
//! and placeholders made for devices, arrays, packs, batteries and cells its samples name and
//! nothing declared.

use super::*;

/// The catalog as the copy sees it, growing as rows are added.
pub(super) struct CatalogView {
    pub(super) system_id: String,
    pub(super) arrays: HashSet<String>,
    pub(super) inverter_array: HashMap<String, String>,
    pub(super) meters: HashSet<String>,
    pub(super) adapters: HashSet<String>,
    pub(super) battery_arrays: HashSet<String>,
    /// Battery arrays that have attachments.
    pub(super) attached: HashSet<String>,
    pub(super) pack_battery_array: HashMap<String, Option<String>>,
    pub(super) batteries: HashSet<String>,
    pub(super) cells: HashSet<String>,
}

impl CatalogView {
    pub(in crate::legacy) fn load(
        conn: &mut DbConnection,
        system_id: &str,
    ) -> Result<CatalogView, DbError> {
        let (_, existing, _) = catalog::load_catalog(conn)?;
        Ok(CatalogView {
            system_id: system_id.to_owned(),
            arrays: existing.arrays.iter().map(|a| a.array_id.clone()).collect(),
            inverter_array: existing
                .inverters
                .iter()
                .map(|i| (i.inverter_id.clone(), i.array_id.clone()))
                .collect(),
            meters: existing.meters.iter().map(|m| m.meter_id.clone()).collect(),
            adapters: existing
                .adapters
                .iter()
                .map(|a| a.adapter_id.clone())
                .collect(),
            battery_arrays: existing
                .battery_arrays
                .iter()
                .map(|b| b.battery_array_id.clone())
                .collect(),
            attached: existing
                .attachments
                .iter()
                .map(|a| a.battery_array_id.clone())
                .collect(),
            pack_battery_array: existing
                .packs
                .iter()
                .map(|p| (p.pack_id.clone(), p.battery_array_id.clone()))
                .collect(),
            batteries: existing
                .batteries
                .iter()
                .map(|b| b.battery_id.clone())
                .collect(),
            cells: existing.cells.iter().map(|c| c.cell_id.clone()).collect(),
        })
    }
}

impl<'a> Copier<'a> {
    /// Creates `row`, a catalog row nothing but the samples knows, and reports it.
    pub(in crate::legacy) fn add_placeholder(
        &mut self,
        row: impl Into<Installation>,
        description: String,
    ) -> Result<(), DbError> {
        catalog::insert_rows(self.target, &row.into())?;
        self.report.placeholders.push(description);
        Ok(())
    }

    /// Takes the file's own hierarchy rows that the catalog does not have yet (the config, when
    /// given, was applied first and wins).
    pub(crate) fn adopt(&mut self, rows: Installation) -> Result<(), DbError> {
        let mut new = Installation::default();
        let mut adopted = Vec::new();
        for array in rows.arrays {
            if self.view.arrays.insert(array.array_id.clone()) {
                adopted.push(format!("array {}", array.array_id));
                new.arrays.push(array);
            }
        }
        for battery_array in rows.battery_arrays {
            if self
                .view
                .battery_arrays
                .insert(battery_array.battery_array_id.clone())
            {
                adopted.push(format!("battery array {}", battery_array.battery_array_id));
                new.battery_arrays.push(battery_array);
            }
        }
        let mut devices: HashSet<String> = HashSet::new();
        for mut inverter in rows.inverters {
            if self.view.inverter_array.contains_key(&inverter.inverter_id) {
                continue;
            }
            if !self.view.arrays.contains(&inverter.array_id) {
                let array_id = inverter.array_id.clone();
                self.ensure_array(&array_id, format!("legacy array {array_id}"))?;
            }
            self.view
                .inverter_array
                .insert(inverter.inverter_id.clone(), inverter.array_id.clone());
            devices.insert(inverter.inverter_id.clone());
            if inverter
                .adapter_id
                .as_ref()
                .is_some_and(|a| self.view.adapters.contains(a))
            {
                inverter.adapter_id = None;
            }
            adopted.push(format!("inverter {}", inverter.inverter_id));
            new.inverters.push(inverter);
        }
        for mut meter in rows.meters {
            if !self.view.meters.insert(meter.meter_id.clone()) {
                continue;
            }
            if let Some(array_id) = meter.array_id.clone()
                && !self.view.arrays.contains(&array_id)
            {
                self.ensure_array(&array_id, format!("legacy array {array_id}"))?;
            }
            devices.insert(meter.meter_id.clone());
            if meter
                .adapter_id
                .as_ref()
                .is_some_and(|a| self.view.adapters.contains(a))
            {
                meter.adapter_id = None;
            }
            adopted.push(format!("meter {}", meter.meter_id));
            new.meters.push(meter);
        }
        for mut pack in rows.packs {
            if self.view.pack_battery_array.contains_key(&pack.pack_id) {
                continue;
            }
            if pack
                .battery_array_id
                .as_ref()
                .is_some_and(|b| !self.view.battery_arrays.contains(b))
            {
                pack.battery_array_id = None;
            }
            self.view
                .pack_battery_array
                .insert(pack.pack_id.clone(), pack.battery_array_id.clone());
            devices.insert(pack.pack_id.clone());
            adopted.push(format!("battery pack {}", pack.pack_id));
            new.packs.push(pack);
        }
        for adapter in rows.adapters {
            let device = adapter.device_id.clone().unwrap_or_default();
            if devices.contains(&device) && self.view.adapters.insert(adapter.adapter_id.clone()) {
                new.adapters.push(adapter);
            }
        }
        new.pack_adapters = rows
            .pack_adapters
            .into_iter()
            .filter(|link| {
                devices.contains(&link.pack_id)
                    && new.adapters.iter().any(|a| a.adapter_id == link.adapter_id)
            })
            .collect();
        // Attachments: only for battery arrays the catalog has none for, and never overlapping.
        let mut kept: Vec<crate::catalog::BatteryArrayAttachment> = Vec::new();
        for attachment in rows.attachments {
            let known = self
                .view
                .battery_arrays
                .contains(&attachment.battery_array_id)
                && self.view.arrays.contains(&attachment.inverter_array_id)
                && !self.view.attached.contains(&attachment.battery_array_id);
            let end = attachment.detached_at.unwrap_or(i64::MAX);
            let overlaps = kept.iter().any(|k| {
                k.battery_array_id == attachment.battery_array_id
                    && k.attached_since < end
                    && attachment.attached_since < k.detached_at.unwrap_or(i64::MAX)
            });
            if !known || overlaps {
                self.report.notes.push(format!(
                    "the file's attachment of battery array {} to {} since {} was not taken ({})",
                    attachment.battery_array_id,
                    attachment.inverter_array_id,
                    attachment.attached_since,
                    if overlaps {
                        "it overlaps another"
                    } else {
                        "the catalog already attaches that battery array, or an array is unknown"
                    }
                ));
                continue;
            }
            adopted.push(format!(
                "attachment {} -> {}",
                attachment.battery_array_id, attachment.inverter_array_id
            ));
            kept.push(attachment);
        }
        for attachment in &kept {
            self.view
                .attached
                .insert(attachment.battery_array_id.clone());
        }
        new.attachments = kept;
        catalog::insert_rows(self.target, &new)?;
        self.report.from_file.extend(adopted);
        Ok(())
    }

    /// The array an id names, created as a placeholder when nothing knows it.
    pub(in crate::legacy) fn ensure_array(
        &mut self,
        array_id: &str,
        name: String,
    ) -> Result<(), DbError> {
        if self.view.arrays.contains(array_id) {
            return Ok(());
        }
        self.view.arrays.insert(array_id.to_owned());
        let array = InverterArray {
            array_id: array_id.to_owned(),
            system_id: self.view.system_id.clone(),
            name,
            pv_capacity_kw: None,
        };
        self.add_placeholder(array, format!("array {array_id}"))
    }

    /// The array an inverter belongs to, creating the inverter (and its array) as placeholders.
    pub(in crate::legacy) fn ensure_inverter(
        &mut self,
        inverter_id: &str,
        legacy_array: Option<&str>,
    ) -> Result<String, DbError> {
        if let Some(array_id) = self.view.inverter_array.get(inverter_id) {
            return Ok(array_id.clone());
        }
        let array_id = match legacy_array {
            Some(array_id) => {
                self.ensure_array(array_id, format!("legacy array {array_id} (not in config)"))?;
                array_id.to_owned()
            }
            None => {
                self.ensure_array(
                    UNASSIGNED_ARRAY_ID,
                    "Unassigned (legacy data not placed by the config)".into(),
                )?;
                UNASSIGNED_ARRAY_ID.to_owned()
            }
        };
        let inverter = Inverter {
            inverter_id: inverter_id.to_owned(),
            array_id: array_id.clone(),
            system_id: self.view.system_id.clone(),
            adapter_id: None,
            name: format!("legacy inverter {inverter_id} (not in config)"),
            model: None,
            serial_number: None,
            vendor: None,
            phase_type: None,
            rated_power_w: None,
            settings_json: None,
        };
        self.view
            .inverter_array
            .insert(inverter_id.to_owned(), array_id.clone());
        self.add_placeholder(
            inverter,
            format!("inverter {inverter_id} in array {array_id}"),
        )?;
        Ok(array_id)
    }

    pub(in crate::legacy) fn ensure_pack(
        &mut self,
        pack_id: &str,
    ) -> Result<Option<String>, DbError> {
        if let Some(battery_array) = self.view.pack_battery_array.get(pack_id) {
            return Ok(battery_array.clone());
        }
        let pack = BatteryPack {
            pack_id: pack_id.to_owned(),
            battery_array_id: None,
            system_id: self.view.system_id.clone(),
            name: format!("legacy battery bank {pack_id} (not in config)"),
            chemistry: None,
            nominal_kwh: None,
            max_charge_kw: None,
            max_discharge_kw: None,
            batteries_count: None,
            cells_per_battery: None,
        };
        self.view
            .pack_battery_array
            .insert(pack_id.to_owned(), None);
        self.add_placeholder(pack, format!("battery bank {pack_id}"))?;
        Ok(None)
    }

    pub(in crate::legacy) fn ensure_battery(
        &mut self,
        pack_id: &str,
        index: i32,
    ) -> Result<(String, Option<String>), DbError> {
        let battery_array = self.ensure_pack(pack_id)?;
        let id = battery_id(pack_id, index);
        if self.view.batteries.insert(id.clone()) {
            let battery = Battery {
                battery_id: id.clone(),
                pack_id: pack_id.to_owned(),
                battery_index: index,
                serial_number: None,
                model: None,
            };
            self.add_placeholder(
                battery,
                format!("battery {id} (index {index} of bank {pack_id})"),
            )?;
        }
        Ok((id, battery_array))
    }

    pub(in crate::legacy) fn ensure_cell(
        &mut self,
        battery_id: &str,
        index: i32,
    ) -> Result<String, DbError> {
        let id = cell_id(battery_id, index);
        if self.view.cells.insert(id.clone()) {
            let cell = BatteryCell {
                cell_id: id.clone(),
                battery_id: battery_id.to_owned(),
                cell_index: index,
                nominal_voltage: None,
            };
            self.add_placeholder(cell, format!("cell {id}"))?;
        }
        Ok(id)
    }

    pub(in crate::legacy) fn ensure_meter(
        &mut self,
        meter_id: &str,
        array_id: Option<&str>,
    ) -> Result<(), DbError> {
        if self.view.meters.contains(meter_id) {
            return Ok(());
        }
        let meter = Meter {
            meter_id: meter_id.to_owned(),
            system_id: self.view.system_id.clone(),
            array_id: array_id.map(str::to_owned),
            adapter_id: None,
            name: format!("legacy meter {meter_id} (not in config)"),
            model: None,
            meter_type: "grid".into(),
        };
        self.view.meters.insert(meter_id.to_owned());
        self.add_placeholder(meter, format!("meter {meter_id}"))
    }

    /// A legacy array id as the meter and array tables use it: `home` (or the system id) means the
    /// system itself.
    pub(in crate::legacy) fn array_ref(
        &mut self,
        raw: Option<&str>,
    ) -> Result<Option<String>, DbError> {
        let Some(array_id) = self.id(raw) else {
            return Ok(None);
        };
        if array_id == "home" || array_id == self.view.system_id {
            return Ok(None);
        }
        self.ensure_array(
            &array_id,
            format!("legacy array {array_id} (not in config)"),
        )?;
        Ok(Some(array_id))
    }
}
