//! A parsed `config.yaml` turned into catalog rows, every problem collected with its field (the
//! file and line come from `yaml_index`).

use super::*;

pub(super) struct Builder<'a> {
    pub(super) index: &'a YamlIndex,
    pub(super) adapter_types: &'a [KnownAdapterType],
    pub(super) problems: Vec<ConfigProblem>,
    pub(super) ignored: Vec<String>,
}

impl Builder<'_> {
    fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        let position = self.index.locate(&field);
        self.problems.push(ConfigProblem {
            line: position.map(|p| p.0),
            column: position.map(|p| p.1),
            field,
            message: message.into(),
        });
    }

    fn check_id(&mut self, field: String, id: &str, seen: &mut HashSet<String>, kind: &str) {
        if let Some(problem) = id_problem(id) {
            self.problem(field, format!("{kind} id {id:?} {problem}"));
        } else if !seen.insert(id.to_owned()) {
            self.problem(field, format!("duplicate {kind} id {id:?}"));
        }
    }

    pub(super) fn build(&mut self, raw: RawConfig) -> LoadedConfig {
        for section in raw.other.keys() {
            self.ignored.push(format!(
                "unknown top-level section `{section}` (not imported)"
            ));
        }
        for section in KNOWN_OTHER_SECTIONS {
            if raw.has_section(section)
                && !matches!(*section, "billing" | "smart" | "timezone" | "mqtt")
            {
                self.ignored.push(format!(
                    "section `{section}` is not part of the hierarchy (not imported)"
                ));
            }
        }
        if raw.mqtt.is_some() {
            self.ignored.push("section `mqtt` is not part of the hierarchy (not imported); `serve --config` starts the MQTT bridge with it".into());
        }
        if raw.smart.is_some() {
            self.ignored.push("section `smart` is not imported (only smart.forecast.tz is read, as a timezone fallback)".into());
        }

        let (system, timezone_source) = self.build_system(&raw);
        let system_id = system.system_id.clone();
        let timezone = crate::local_time::timezone(&system);
        let mut installation = Installation {
            system: Some(system),
            ..Installation::default()
        };

        // Arrays, and which array each inverter is listed in.
        let mut array_ids = HashSet::new();
        let mut listed_in: HashMap<String, (String, String)> = HashMap::new();
        for (i, array) in raw.arrays.iter().flatten().enumerate() {
            self.check_id(
                format!("arrays[{i}].id"),
                &array.id,
                &mut array_ids,
                "array",
            );
            for (j, inverter_id) in array.inverter_ids.iter().flatten().enumerate() {
                let field = format!("arrays[{i}].inverter_ids[{j}]");
                if let Some((other, _)) =
                    listed_in.insert(inverter_id.clone(), (array.id.clone(), field.clone()))
                    && other != array.id
                {
                    self.problem(
                        field,
                        format!("inverter {inverter_id:?} is already listed in array {other:?}"),
                    );
                }
            }
        }

        let mut inverter_ids = HashSet::new();
        let mut adapter_ids = HashSet::new();
        let mut pv_capacity: BTreeMap<String, f64> = BTreeMap::new();
        for (i, inverter) in raw.inverters.iter().flatten().enumerate() {
            let base = format!("inverters[{i}]");
            self.check_id(
                format!("{base}.id"),
                &inverter.id,
                &mut inverter_ids,
                "inverter",
            );
            let listed = listed_in.get(&inverter.id).map(|(array, _)| array.clone());
            let array_id = match (&inverter.array_id, listed) {
                (Some(own), Some(listed)) if *own != listed => {
                    self.problem(format!("{base}.array_id"), format!("is {own:?} but array {listed:?} lists this inverter in its inverter_ids"));
                    own.clone()
                }
                (Some(own), _) => own.clone(),
                (None, Some(listed)) => listed,
                (None, None) => {
                    self.problem(format!("{base}.id"), "names no array: set array_id or list the inverter in an array's inverter_ids");
                    continue;
                }
            };
            if !array_ids.contains(&array_id) {
                self.problem(
                    format!("{base}.array_id"),
                    format!("names no array: {array_id:?} is not in `arrays`"),
                );
            }
            let adapter = self.build_adapter(
                &format!("{base}.adapter"),
                &inverter.adapter,
                &inverter.id,
                "inverter",
                0,
                true,
                &mut adapter_ids,
            );
            if let Some(solar) = &inverter.solar {
                let kw: f64 = solar
                    .iter()
                    .filter_map(|s| s.get("pv_dc_kw").and_then(serde_yaml::Value::as_f64))
                    .sum();
                *pv_capacity.entry(array_id.clone()).or_default() += kw;
            }
            let mut settings = serde_json::Map::new();
            if let Some(safety) = &inverter.safety {
                settings.insert("safety".into(), yaml_to_json(safety));
            }
            if let Some(solar) = &inverter.solar {
                settings.insert(
                    "solar".into(),
                    Json::Array(solar.iter().map(yaml_to_json).collect()),
                );
            }
            installation.inverters.push(Inverter {
                inverter_id: inverter.id.clone(),
                array_id,
                system_id: system_id.clone(),
                adapter_id: adapter.as_ref().map(|a| a.adapter_id.clone()),
                name: inverter.name.clone().unwrap_or_else(|| inverter.id.clone()),
                model: inverter.model.clone(),
                serial_number: inverter.serial_number.clone(),
                vendor: inverter.vendor.clone(),
                phase_type: inverter.phase_type.clone(),
                rated_power_w: inverter.rated_power_w,
                settings_json: (!settings.is_empty()).then(|| Json::Object(settings).to_string()),
            });
            installation.adapters.extend(adapter);
        }
        for (inverter_id, (array_id, field)) in &listed_in {
            if !inverter_ids.contains(inverter_id) {
                self.problem(field.clone(), format!("array {array_id:?} lists inverter {inverter_id:?}, which is not in `inverters`"));
            }
        }
        for array in raw.arrays.iter().flatten() {
            installation.arrays.push(InverterArray {
                array_id: array.id.clone(),
                system_id: system_id.clone(),
                name: array.name.clone().unwrap_or_else(|| array.id.clone()),
                pv_capacity_kw: array
                    .pv_capacity_kw
                    .or_else(|| pv_capacity.get(&array.id).copied()),
            });
        }

        let mut meter_ids = HashSet::new();
        for (i, meter) in raw.meters.iter().flatten().enumerate() {
            let base = format!("meters[{i}]");
            self.check_id(format!("{base}.id"), &meter.id, &mut meter_ids, "meter");
            let array_id = match meter.array_id.as_deref() {
                None | Some("home") => None,
                Some(id) if id == system_id => None,
                Some(id) => {
                    if !array_ids.contains(id) {
                        self.problem(format!("{base}.array_id"), format!("names no array: {id:?} is not in `arrays` (use `home` for a system-level meter)"));
                    }
                    Some(id.to_owned())
                }
            };
            let adapter = self.build_adapter(
                &format!("{base}.adapter"),
                &meter.adapter,
                &meter.id,
                "meter",
                0,
                true,
                &mut adapter_ids,
            );
            installation.meters.push(Meter {
                meter_id: meter.id.clone(),
                system_id: system_id.clone(),
                array_id,
                adapter_id: adapter.as_ref().map(|a| a.adapter_id.clone()),
                name: meter.name.clone().unwrap_or_else(|| meter.id.clone()),
                model: meter.model.clone(),
                meter_type: meter.meter_type.clone().unwrap_or_else(|| "grid".into()),
            });
            installation.adapters.extend(adapter);
        }

        // Battery bank arrays first: they decide each pack's battery_array_id.
        let mut battery_array_ids = HashSet::new();
        let mut pack_array: HashMap<String, (String, String)> = HashMap::new();
        for (i, bank_array) in raw.battery_bank_arrays.iter().flatten().enumerate() {
            self.check_id(
                format!("battery_bank_arrays[{i}].id"),
                &bank_array.id,
                &mut battery_array_ids,
                "battery bank array",
            );
            for (j, pack_id) in bank_array.battery_bank_ids.iter().flatten().enumerate() {
                let field = format!("battery_bank_arrays[{i}].battery_bank_ids[{j}]");
                if let Some((other, _)) =
                    pack_array.insert(pack_id.clone(), (bank_array.id.clone(), field.clone()))
                {
                    self.problem(
                        field,
                        format!(
                            "battery bank {pack_id:?} is already in battery bank array {other:?}"
                        ),
                    );
                }
            }
            installation.battery_arrays.push(BatteryArray {
                battery_array_id: bank_array.id.clone(),
                system_id: system_id.clone(),
                name: bank_array
                    .name
                    .clone()
                    .unwrap_or_else(|| bank_array.id.clone()),
            });
        }

        let mut pack_ids = HashSet::new();
        for (i, bank) in raw.battery_banks.iter().flatten().enumerate() {
            let base = format!("battery_banks[{i}]");
            self.check_id(
                format!("{base}.id"),
                &bank.id,
                &mut pack_ids,
                "battery bank",
            );
            let blocks: Vec<(String, &RawAdapterBlock, i32, bool)> =
                match (&bank.adapter, &bank.adapters) {
                    (Some(_), Some(_)) => {
                        self.problem(
                            format!("{base}.adapters"),
                            "give either `adapter` or `adapters`, not both",
                        );
                        Vec::new()
                    }
                    (Some(single), None) => vec![(format!("{base}.adapter"), single, 1, true)],
                    (None, Some(list)) => list
                        .iter()
                        .enumerate()
                        .map(|(j, entry)| {
                            (
                                format!("{base}.adapters[{j}].adapter"),
                                &entry.adapter,
                                entry.priority.unwrap_or(j as i32 + 1),
                                entry.enabled.unwrap_or(true),
                            )
                        })
                        .collect(),
                    (None, None) => {
                        self.problem(
                            format!("{base}.id"),
                            "battery bank has no `adapter` or `adapters`",
                        );
                        Vec::new()
                    }
                };
            let mut priorities = HashSet::new();
            let mut batteries = bank.batteries;
            let mut cells_per_battery = bank.cells_per_battery;
            let numbered = blocks.len() > 1 || bank.adapters.is_some();
            for (n, (field, block, priority, enabled)) in blocks.iter().enumerate() {
                if !priorities.insert(*priority) {
                    self.problem(
                        field.replace(".adapter", ".priority"),
                        format!("priority {priority} is used by another adapter of this bank"),
                    );
                }
                let number = if numbered { n + 1 } else { 0 };
                let Some(adapter) = self.build_adapter(
                    field,
                    block,
                    &bank.id,
                    "battery_pack",
                    number,
                    *enabled,
                    &mut adapter_ids,
                ) else {
                    continue;
                };
                let config: Json = serde_json::from_str(&adapter.config_json).unwrap_or(Json::Null);
                batteries = batteries.or_else(|| {
                    config
                        .get("batteries")
                        .and_then(Json::as_u64)
                        .map(|v| v as u32)
                });
                cells_per_battery = cells_per_battery.or_else(|| {
                    config
                        .get("cells_per_battery")
                        .and_then(Json::as_u64)
                        .map(|v| v as u32)
                });
                installation.pack_adapters.push(BatteryPackAdapter {
                    pack_id: bank.id.clone(),
                    adapter_id: adapter.adapter_id.clone(),
                    priority: *priority,
                    enabled: *enabled,
                });
                installation.adapters.push(Adapter {
                    priority: *priority,
                    ..adapter
                });
            }
            let battery_array_id = pack_array.get(&bank.id).map(|(array, _)| array.clone());
            let pack = BatteryPack {
                pack_id: bank.id.clone(),
                battery_array_id,
                system_id: system_id.clone(),
                name: bank.name.clone().unwrap_or_else(|| bank.id.clone()),
                chemistry: bank.chemistry.clone(),
                nominal_kwh: bank.nominal_kwh,
                max_charge_kw: bank.max_charge_kw,
                max_discharge_kw: bank.max_discharge_kw,
                batteries_count: batteries.map(|v| v as i32),
                cells_per_battery: cells_per_battery.map(|v| v as i32),
            };
            let (batteries, cells) = crate::catalog::declared_batteries_and_cells(&pack);
            installation.batteries.extend(batteries);
            installation.cells.extend(cells);
            installation.packs.push(pack);
        }
        for (pack_id, (array_id, field)) in &pack_array {
            if !pack_ids.contains(pack_id) {
                self.problem(field.clone(), format!("battery bank array {array_id:?} lists battery bank {pack_id:?}, which is not in `battery_banks`"));
            }
        }

        for (i, attachment) in raw
            .battery_bank_array_attachments
            .iter()
            .flatten()
            .enumerate()
        {
            let base = format!("battery_bank_array_attachments[{i}]");
            if !battery_array_ids.contains(&attachment.battery_bank_array_id) {
                self.problem(
                    format!("{base}.battery_bank_array_id"),
                    format!(
                        "names no battery bank array: {:?} is not in `battery_bank_arrays`",
                        attachment.battery_bank_array_id
                    ),
                );
            }
            if !array_ids.contains(&attachment.inverter_array_id) {
                self.problem(
                    format!("{base}.inverter_array_id"),
                    format!(
                        "names no array: {:?} is not in `arrays`",
                        attachment.inverter_array_id
                    ),
                );
            }
            let attached_since = self.parse_time(
                &format!("{base}.attached_since"),
                Some(&attachment.attached_since),
                timezone,
            );
            let detached_at = self.parse_time(
                &format!("{base}.detached_at"),
                attachment.detached_at.as_deref(),
                timezone,
            );
            let Some(attached_since) = attached_since else {
                continue;
            };
            if detached_at.is_some_and(|detached| detached <= attached_since) {
                self.problem(
                    format!("{base}.detached_at"),
                    "must be later than attached_since",
                );
            }
            installation.attachments.push(BatteryArrayAttachment {
                battery_array_id: attachment.battery_bank_array_id.clone(),
                attached_since,
                inverter_array_id: attachment.inverter_array_id.clone(),
                system_id: system_id.clone(),
                detached_at,
            });
        }
        self.check_attachment_overlaps(&installation.attachments);

        LoadedConfig {
            installation,
            timezone_source,
            ignored: Vec::new(),
            mqtt: raw.mqtt.as_ref().map(MqttSection::from_yaml),
        }
    }

    fn build_system(&mut self, raw: &RawConfig) -> (System, TimezoneSource) {
        let home = raw.home.as_ref();
        let system_id = home
            .and_then(|h| h.id.clone())
            .unwrap_or_else(|| "home".into());
        if let Some(problem) = id_problem(&system_id) {
            self.problem("home.id", format!("system id {system_id:?} {problem}"));
        }
        let forecast_tz = raw
            .smart
            .as_ref()
            .and_then(|smart| smart.get("forecast"))
            .and_then(|forecast| forecast.get("tz"))
            .and_then(serde_yaml::Value::as_str)
            .map(str::to_owned);
        let (timezone, source, field) = if let Some(tz) = home.and_then(|h| h.timezone.clone()) {
            (tz, TimezoneSource::Home, "home.timezone")
        } else if let Some(tz) = raw.timezone.clone() {
            (tz, TimezoneSource::TopLevel, "timezone")
        } else if let Some(tz) = forecast_tz {
            (tz, TimezoneSource::SmartForecast, "smart.forecast.tz")
        } else {
            ("UTC".to_owned(), TimezoneSource::DefaultUtc, "home")
        };
        if let Err(reason) = crate::local_time::zone(&timezone) {
            self.problem(field, reason);
        }
        let billing = raw.billing.as_ref().map(yaml_to_json);
        let currency = billing
            .as_ref()
            .and_then(|b| b.get("currency"))
            .and_then(Json::as_str)
            .map(str::to_owned);
        let system = System {
            system_id: system_id.clone(),
            name: home
                .and_then(|h| h.name.clone())
                .unwrap_or_else(|| system_id.clone()),
            description: home.and_then(|h| h.description.clone()),
            timezone,
            currency,
            tariff_json: billing.map(|b| b.to_string()),
        };
        (system, source)
    }

    /// Builds the adapter row of one device, or records why it cannot.
    #[allow(clippy::too_many_arguments)]
    fn build_adapter(
        &mut self,
        field: &str,
        block: &RawAdapterBlock,
        device_id: &str,
        device_type: &str,
        number: usize,
        enabled: bool,
        adapter_ids: &mut HashSet<String>,
    ) -> Option<Adapter> {
        let adapter_id = if number == 0 {
            format!("{device_id}.adapter")
        } else {
            format!("{device_id}.adapter{number}")
        };
        let Some(adapter_type) = block.adapter_type.as_deref() else {
            self.problem(format!("{field}.type"), "is required");
            return None;
        };
        let Some(known) = self
            .adapter_types
            .iter()
            .find(|t| t.row.adapter_type == adapter_type)
        else {
            let names: Vec<&str> = self
                .adapter_types
                .iter()
                .map(|t| t.row.adapter_type.as_str())
                .collect();
            self.problem(
                format!("{field}.type"),
                format!(
                    "unknown adapter type {adapter_type:?}, expected one of: {}",
                    names.join(", ")
                ),
            );
            return None;
        };
        let config = Json::Object(
            block
                .rest
                .iter()
                .map(|(k, v)| (k.clone(), yaml_to_json(v)))
                .collect(),
        );
        let violations = known.schema.validate(&config);
        for violation in &violations {
            self.problem(
                format!("{field}.{}", violation.path),
                format!("{} (adapter type {adapter_type})", violation.message),
            );
        }
        if let Some(problem) = block.collector_id.as_deref().and_then(id_problem) {
            self.problem(format!("{field}.collector_id"), problem);
        }
        if let Some(problem) = id_problem(&adapter_id) {
            self.problem(
                field.to_owned(),
                format!("derived adapter id {adapter_id:?} {problem}"),
            );
        } else if !adapter_ids.insert(adapter_id.clone()) {
            self.problem(field.to_owned(), format!("derived adapter id {adapter_id:?} collides with another device's adapter; give the devices distinct ids"));
        }
        if !violations.is_empty() {
            return None;
        }
        Some(Adapter {
            adapter_id,
            adapter_type: adapter_type.to_owned(),
            device_category: known.row.device_category.clone(),
            device_id: Some(device_id.to_owned()),
            device_type: Some(device_type.to_owned()),
            collector_id: block.collector_id.clone(),
            config_json: config.to_string(),
            priority: 1,
            enabled,
        })
    }

    fn parse_time(
        &mut self,
        field: &str,
        text: Option<&str>,
        timezone: chrono_tz::Tz,
    ) -> Option<i64> {
        let text = text?.trim();
        if let Ok(with_offset) = chrono::DateTime::parse_from_rfc3339(text) {
            return Some(with_offset.timestamp_millis());
        }
        for format in [
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
        ] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(text, format)
                && let Some(local) = timezone.from_local_datetime(&naive).earliest()
            {
                return Some(local.timestamp_millis());
            }
        }
        if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            && let Some(local) = date
                .and_hms_opt(0, 0, 0)
                .and_then(|n| timezone.from_local_datetime(&n).earliest())
        {
            return Some(local.timestamp_millis());
        }
        self.problem(
            field.to_owned(),
            format!("{text:?} is not a timestamp (use 2025-01-01T00:00:00+05:00)"),
        );
        None
    }

    fn check_attachment_overlaps(&mut self, attachments: &[BatteryArrayAttachment]) {
        for (i, a) in attachments.iter().enumerate() {
            for b in &attachments[..i] {
                if a.battery_array_id != b.battery_array_id {
                    continue;
                }
                let a_end = a.detached_at.unwrap_or(i64::MAX);
                let b_end = b.detached_at.unwrap_or(i64::MAX);
                if a.attached_since < b_end && b.attached_since < a_end {
                    self.problem(
                        format!("battery_bank_array_attachments[{i}].attached_since"),
                        format!(
                            "overlaps another attachment of battery bank array {:?}",
                            a.battery_array_id
                        ),
                    );
                }
            }
        }
    }
}
