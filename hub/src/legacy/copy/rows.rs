//! One legacy row into one solarhub sample: ids resolved (placeholders made when needed), times
//! read in the file's zone, battery signs turned to solarhub's.

use super::*;

impl<'a> Copier<'a> {
    /// Battery power and current in solarhub's sign: the stored power turned, or V × I of the
    /// old app's values turned, counted in `stats`.
    pub(in crate::legacy) fn battery(
        voltage: Option<f64>,
        current: Option<f64>,
        power: Option<f64>,
        stats: &mut TableReport,
    ) -> (Option<f64>, Option<f64>) {
        let power = match (power, voltage, current) {
            (Some(power), _, _) => Some(power),
            (None, Some(v), Some(i)) => {
                stats.battery_power_derived += 1;
                Some(v * i)
            }
            _ => None,
        };
        if power.is_some() || current.is_some() {
            stats.battery_signs_converted += 1;
        }
        (flipped(power), flipped(current))
    }

    pub(in crate::legacy) fn energy_sample(
        &mut self,
        legacy: &source::LegacyEnergyRow,
        stats: &mut TableReport,
    ) -> Converted<EnergySample> {
        let device = legacy.inverter_id.as_deref();
        let Some((raw_ts, inverter_id, ts)) = self.keyed("energy_samples", device, &legacy.ts)
        else {
            return Ok(None);
        };
        let legacy_array = self.id(legacy.array_id.as_deref());
        let inverter_array = self.ensure_inverter(&inverter_id, legacy_array.as_deref())?;
        let array_id = match legacy_array {
            Some(array_id) => {
                self.ensure_array(
                    &array_id,
                    format!("legacy array {array_id} (not in config)"),
                )?;
                array_id
            }
            None => inverter_array,
        };
        let (battery_power_w, battery_current_a) = Self::battery(
            legacy.battery_voltage_v,
            legacy.battery_current_a,
            legacy.battery_power_w,
            stats,
        );
        Ok(Some((
            raw_ts,
            EnergySample {
                inverter_id,
                ts,
                array_id: Some(array_id),
                system_id: self.view.system_id.clone(),
                pv_power_w: legacy.pv_power_w,
                load_power_w: legacy.load_power_w,
                grid_power_w: legacy.grid_power_w,
                battery_power_w,
                battery_soc_pct: legacy.battery_soc_pct,
                battery_voltage_v: legacy.battery_voltage_v,
                battery_current_a,
                inverter_mode: legacy.inverter_mode,
                inverter_temp_c: legacy.inverter_temp_c,
                grid_import_total_wh: legacy.grid_import_wh,
                grid_export_total_wh: legacy.grid_export_wh,
                ..EnergySample::default()
            },
        )))
    }

    pub(in crate::legacy) fn array_sample(
        &mut self,
        legacy: &source::LegacyArrayRow,
        stats: &mut TableReport,
    ) -> Converted<ArraySample> {
        let device = legacy.array_id.as_deref();
        let Some((raw_ts, array_id, ts)) = self.keyed("array_samples", device, &legacy.ts) else {
            return Ok(None);
        };
        self.ensure_array(
            &array_id,
            format!("legacy array {array_id} (not in config)"),
        )?;
        let (battery_power_w, battery_current_a) = Self::battery(
            legacy.battery_voltage_v,
            legacy.battery_current_a,
            legacy.battery_power_w,
            stats,
        );
        Ok(Some((
            raw_ts,
            ArraySample {
                array_id,
                ts,
                system_id: self.view.system_id.clone(),
                pv_power_w: legacy.pv_power_w,
                load_power_w: legacy.load_power_w,
                grid_power_w: legacy.grid_power_w,
                battery_power_w,
                battery_soc_pct: legacy.battery_soc_pct,
                soc_source: None,
                battery_voltage_v: legacy.battery_voltage_v,
                battery_current_a,
            },
        )))
    }

    pub(in crate::legacy) fn bank_sample(
        &mut self,
        legacy: &source::LegacyBankRow,
        stats: &mut TableReport,
    ) -> Converted<BatteryBankSample> {
        let device = legacy.pack_id.as_deref();
        let Some((raw_ts, pack_id, ts)) = self.keyed("battery_bank_samples", device, &legacy.ts)
        else {
            return Ok(None);
        };
        let battery_array_id = self.ensure_pack(&pack_id)?;
        let (power_w, current_a) = Self::battery(legacy.voltage, legacy.current, None, stats);
        Ok(Some((
            raw_ts,
            BatteryBankSample {
                pack_id,
                ts,
                battery_array_id,
                system_id: self.view.system_id.clone(),
                adapter_id: None,
                voltage_v: legacy.voltage,
                current_a,
                power_w,
                temperature_c: legacy.temperature,
                soc_pct: legacy.soc,
                soh_pct: None,
                batteries_count: legacy.batteries_count,
                cells_per_battery: legacy.cells_per_battery,
            },
        )))
    }

    pub(in crate::legacy) fn unit_sample(
        &mut self,
        legacy: &source::LegacyUnitRow,
        stats: &mut TableReport,
    ) -> Converted<BatteryUnitSample> {
        let device = legacy.pack_id.as_deref();
        let (Some(raw_ts), Some(pack_id), Some(index)) =
            (legacy.ts.clone(), self.id(device), legacy.battery_index)
        else {
            return Ok(None);
        };
        let Some(ts) = self.timestamp("battery_unit_samples", device, Some(&raw_ts)) else {
            return Ok(None);
        };
        let (battery_id, battery_array_id) = self.ensure_battery(&pack_id, index)?;
        if legacy.current.is_some() {
            stats.battery_signs_converted += 1;
        }
        Ok(Some((
            raw_ts,
            BatteryUnitSample {
                battery_id,
                ts,
                pack_id,
                battery_array_id,
                system_id: self.view.system_id.clone(),
                adapter_id: None,
                voltage_v: legacy.voltage,
                current_a: flipped(legacy.current),
                temperature_c: legacy.temperature,
                soc_pct: legacy.soc,
                soh_pct: None,
                basic_st: legacy.basic_st.clone(),
                volt_st: legacy.volt_st.clone(),
                current_st: legacy.current_st.clone(),
                temp_st: legacy.temp_st.clone(),
                soh_st: legacy.soh_st.clone(),
                coul_st: legacy.coul_st.clone(),
                heater_st: legacy.heater_st.clone(),
                bat_events: legacy.bat_events,
                power_events: legacy.power_events,
                sys_events: legacy.sys_events,
            },
        )))
    }

    pub(in crate::legacy) fn cell_sample(
        &mut self,
        legacy: &source::LegacyCellRow,
        _stats: &mut TableReport,
    ) -> Converted<BatteryCellSample> {
        let device = legacy.pack_id.as_deref();
        let (Some(raw_ts), Some(pack_id), Some(battery_index), Some(cell_index)) = (
            legacy.ts.clone(),
            self.id(device),
            legacy.battery_index,
            legacy.cell_index,
        ) else {
            return Ok(None);
        };
        let Some(ts) = self.timestamp("battery_cell_samples", device, Some(&raw_ts)) else {
            return Ok(None);
        };
        let (battery_id, battery_array_id) = self.ensure_battery(&pack_id, battery_index)?;
        let cell_id = self.ensure_cell(&battery_id, cell_index)?;
        Ok(Some((
            raw_ts,
            BatteryCellSample {
                cell_id,
                ts,
                battery_id,
                pack_id,
                battery_array_id,
                system_id: self.view.system_id.clone(),
                adapter_id: None,
                voltage_v: legacy.voltage,
                temperature_c: legacy.temperature,
                soc_pct: legacy.soc,
                volt_st: legacy.volt_st.clone(),
                temp_st: legacy.temp_st.clone(),
            },
        )))
    }

    pub(in crate::legacy) fn meter_sample(
        &mut self,
        legacy: &source::LegacyMeterRow,
        _stats: &mut TableReport,
    ) -> Converted<MeterSample> {
        let device = legacy.meter_id.as_deref();
        let Some((raw_ts, meter_id, ts)) = self.keyed("meter_samples", device, &legacy.ts) else {
            return Ok(None);
        };
        let array_id = self.array_ref(legacy.array_id.as_deref())?;
        self.ensure_meter(&meter_id, array_id.as_deref())?;
        Ok(Some((
            raw_ts,
            MeterSample {
                meter_id,
                ts,
                system_id: self.view.system_id.clone(),
                array_id,
                power_w: legacy.power_w,
                voltage_v: legacy.voltage_v,
                current_a: legacy.current_a,
                frequency_hz: legacy.frequency_hz,
                power_factor: legacy.power_factor,
                import_total_wh: legacy.import_wh,
                export_total_wh: legacy.export_wh,
                energy_total_kwh: legacy.energy_kwh,
                l1_voltage_v: legacy.l1_voltage_v,
                l2_voltage_v: legacy.l2_voltage_v,
                l3_voltage_v: legacy.l3_voltage_v,
                l1_current_a: legacy.l1_current_a,
                l2_current_a: legacy.l2_current_a,
                l3_current_a: legacy.l3_current_a,
                l1_power_w: legacy.l1_power_w,
                l2_power_w: legacy.l2_power_w,
                l3_power_w: legacy.l3_power_w,
            },
        )))
    }
}
