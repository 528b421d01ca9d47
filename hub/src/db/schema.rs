// Diesel schema of both backends. Written to match migrations/sqlite and migrations/postgres,
// which create the same columns with the same SQL types (hub/tests/it/schema.rs checks it).
// Private to `db`: nothing else may name a table or a column.

diesel::table! {
    systems (system_id) {
        system_id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        timezone -> Text,
        currency -> Nullable<Text>,
        tariff_json -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    arrays (array_id) {
        array_id -> Text,
        system_id -> Text,
        name -> Text,
        pv_capacity_kw -> Nullable<Double>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    adapter_base (adapter_type) {
        adapter_type -> Text,
        device_category -> Text,
        name -> Text,
        description -> Nullable<Text>,
        config_schema -> Text,
        supported_transports -> Text,
        default_config -> Nullable<Text>,
        version -> Integer,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    adapters (adapter_id) {
        adapter_id -> Text,
        adapter_type -> Text,
        device_category -> Text,
        device_id -> Nullable<Text>,
        device_type -> Nullable<Text>,
        collector_id -> Nullable<Text>,
        config_json -> Text,
        priority -> Integer,
        enabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    inverters (inverter_id) {
        inverter_id -> Text,
        array_id -> Text,
        system_id -> Text,
        adapter_id -> Nullable<Text>,
        name -> Text,
        model -> Nullable<Text>,
        serial_number -> Nullable<Text>,
        vendor -> Nullable<Text>,
        phase_type -> Nullable<Text>,
        rated_power_w -> Nullable<Double>,
        settings_json -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    battery_arrays (battery_array_id) {
        battery_array_id -> Text,
        system_id -> Text,
        name -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    battery_array_attachments (battery_array_id, attached_since) {
        battery_array_id -> Text,
        attached_since -> BigInt,
        inverter_array_id -> Text,
        system_id -> Text,
        detached_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    battery_packs (pack_id) {
        pack_id -> Text,
        battery_array_id -> Nullable<Text>,
        system_id -> Text,
        name -> Text,
        chemistry -> Nullable<Text>,
        nominal_kwh -> Nullable<Double>,
        max_charge_kw -> Nullable<Double>,
        max_discharge_kw -> Nullable<Double>,
        batteries_count -> Nullable<Integer>,
        cells_per_battery -> Nullable<Integer>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    batteries (battery_id) {
        battery_id -> Text,
        pack_id -> Text,
        battery_index -> Integer,
        serial_number -> Nullable<Text>,
        model -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    battery_cells (cell_id) {
        cell_id -> Text,
        battery_id -> Text,
        cell_index -> Integer,
        nominal_voltage -> Nullable<Double>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    meters (meter_id) {
        meter_id -> Text,
        system_id -> Text,
        array_id -> Nullable<Text>,
        adapter_id -> Nullable<Text>,
        name -> Text,
        model -> Nullable<Text>,
        meter_type -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    battery_pack_adapters (pack_id, adapter_id) {
        pack_id -> Text,
        adapter_id -> Text,
        priority -> Integer,
        enabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    energy_samples (inverter_id, ts) {
        inverter_id -> Text,
        ts -> BigInt,
        array_id -> Nullable<Text>,
        system_id -> Text,
        pv_power_w -> Nullable<Double>,
        load_power_w -> Nullable<Double>,
        grid_power_w -> Nullable<Double>,
        battery_power_w -> Nullable<Double>,
        battery_soc_pct -> Nullable<Double>,
        battery_voltage_v -> Nullable<Double>,
        battery_current_a -> Nullable<Double>,
        inverter_mode -> Nullable<Integer>,
        inverter_temp_c -> Nullable<Double>,
        pv_energy_today_wh -> Nullable<Double>,
        pv_energy_total_wh -> Nullable<Double>,
        load_energy_today_wh -> Nullable<Double>,
        load_energy_total_wh -> Nullable<Double>,
        grid_import_today_wh -> Nullable<Double>,
        grid_import_total_wh -> Nullable<Double>,
        grid_export_today_wh -> Nullable<Double>,
        grid_export_total_wh -> Nullable<Double>,
        battery_charge_today_wh -> Nullable<Double>,
        battery_charge_total_wh -> Nullable<Double>,
        battery_discharge_today_wh -> Nullable<Double>,
        battery_discharge_total_wh -> Nullable<Double>,
    }
}

diesel::table! {
    array_samples (array_id, ts) {
        array_id -> Text,
        ts -> BigInt,
        system_id -> Text,
        pv_power_w -> Nullable<Double>,
        load_power_w -> Nullable<Double>,
        grid_power_w -> Nullable<Double>,
        battery_power_w -> Nullable<Double>,
        battery_soc_pct -> Nullable<Double>,
        soc_source -> Nullable<Text>,
        battery_voltage_v -> Nullable<Double>,
        battery_current_a -> Nullable<Double>,
    }
}

diesel::table! {
    battery_bank_samples (pack_id, ts) {
        pack_id -> Text,
        ts -> BigInt,
        battery_array_id -> Nullable<Text>,
        system_id -> Text,
        adapter_id -> Nullable<Text>,
        voltage_v -> Nullable<Double>,
        current_a -> Nullable<Double>,
        power_w -> Nullable<Double>,
        temperature_c -> Nullable<Double>,
        soc_pct -> Nullable<Double>,
        soh_pct -> Nullable<Double>,
        batteries_count -> Nullable<Integer>,
        cells_per_battery -> Nullable<Integer>,
    }
}

diesel::table! {
    battery_unit_samples (battery_id, ts) {
        battery_id -> Text,
        ts -> BigInt,
        pack_id -> Text,
        battery_array_id -> Nullable<Text>,
        system_id -> Text,
        adapter_id -> Nullable<Text>,
        voltage_v -> Nullable<Double>,
        current_a -> Nullable<Double>,
        temperature_c -> Nullable<Double>,
        soc_pct -> Nullable<Double>,
        soh_pct -> Nullable<Double>,
        basic_st -> Nullable<Text>,
        volt_st -> Nullable<Text>,
        current_st -> Nullable<Text>,
        temp_st -> Nullable<Text>,
        soh_st -> Nullable<Text>,
        coul_st -> Nullable<Text>,
        heater_st -> Nullable<Text>,
        bat_events -> Nullable<BigInt>,
        power_events -> Nullable<BigInt>,
        sys_events -> Nullable<BigInt>,
    }
}

diesel::table! {
    battery_cell_samples (cell_id, ts) {
        cell_id -> Text,
        ts -> BigInt,
        battery_id -> Text,
        pack_id -> Text,
        battery_array_id -> Nullable<Text>,
        system_id -> Text,
        adapter_id -> Nullable<Text>,
        voltage_v -> Nullable<Double>,
        temperature_c -> Nullable<Double>,
        soc_pct -> Nullable<Double>,
        volt_st -> Nullable<Text>,
        temp_st -> Nullable<Text>,
    }
}

diesel::table! {
    meter_samples (meter_id, ts) {
        meter_id -> Text,
        ts -> BigInt,
        system_id -> Text,
        array_id -> Nullable<Text>,
        power_w -> Nullable<Double>,
        voltage_v -> Nullable<Double>,
        current_a -> Nullable<Double>,
        frequency_hz -> Nullable<Double>,
        power_factor -> Nullable<Double>,
        import_total_wh -> Nullable<Double>,
        export_total_wh -> Nullable<Double>,
        energy_total_kwh -> Nullable<Double>,
        l1_voltage_v -> Nullable<Double>,
        l2_voltage_v -> Nullable<Double>,
        l3_voltage_v -> Nullable<Double>,
        l1_current_a -> Nullable<Double>,
        l2_current_a -> Nullable<Double>,
        l3_current_a -> Nullable<Double>,
        l1_power_w -> Nullable<Double>,
        l2_power_w -> Nullable<Double>,
        l3_power_w -> Nullable<Double>,
    }
}

diesel::table! {
    hourly_energy (inverter_id, bucket_start) {
        inverter_id -> Text,
        bucket_start -> BigInt,
        bucket_end -> BigInt,
        date -> Text,
        hour_start -> Integer,
        array_id -> Nullable<Text>,
        system_id -> Text,
        solar_kwh -> Nullable<Double>,
        load_kwh -> Nullable<Double>,
        battery_charge_kwh -> Nullable<Double>,
        battery_discharge_kwh -> Nullable<Double>,
        grid_import_kwh -> Nullable<Double>,
        grid_export_kwh -> Nullable<Double>,
        avg_pv_power_w -> Nullable<Double>,
        peak_pv_power_w -> Nullable<Double>,
        avg_load_power_w -> Nullable<Double>,
        peak_load_power_w -> Nullable<Double>,
        avg_grid_power_w -> Nullable<Double>,
        peak_grid_import_w -> Nullable<Double>,
        peak_grid_export_w -> Nullable<Double>,
        avg_battery_power_w -> Nullable<Double>,
        soc_min_pct -> Nullable<Double>,
        soc_avg_pct -> Nullable<Double>,
        soc_max_pct -> Nullable<Double>,
        sample_count -> BigInt,
        coverage_pct -> Double,
        updated_at -> BigInt,
        source -> Text,
    }
}

diesel::table! {
    array_hourly_energy (array_id, bucket_start) {
        array_id -> Text,
        bucket_start -> BigInt,
        bucket_end -> BigInt,
        date -> Text,
        hour_start -> Integer,
        system_id -> Text,
        solar_kwh -> Nullable<Double>,
        load_kwh -> Nullable<Double>,
        battery_charge_kwh -> Nullable<Double>,
        battery_discharge_kwh -> Nullable<Double>,
        grid_import_kwh -> Nullable<Double>,
        grid_export_kwh -> Nullable<Double>,
        avg_pv_power_w -> Nullable<Double>,
        peak_pv_power_w -> Nullable<Double>,
        avg_load_power_w -> Nullable<Double>,
        peak_load_power_w -> Nullable<Double>,
        avg_grid_power_w -> Nullable<Double>,
        peak_grid_import_w -> Nullable<Double>,
        peak_grid_export_w -> Nullable<Double>,
        avg_battery_power_w -> Nullable<Double>,
        soc_min_pct -> Nullable<Double>,
        soc_avg_pct -> Nullable<Double>,
        soc_max_pct -> Nullable<Double>,
        sample_count -> BigInt,
        coverage_pct -> Double,
        updated_at -> BigInt,
        source -> Text,
    }
}

diesel::table! {
    system_hourly_energy (system_id, bucket_start) {
        system_id -> Text,
        bucket_start -> BigInt,
        bucket_end -> BigInt,
        date -> Text,
        hour_start -> Integer,
        solar_kwh -> Nullable<Double>,
        load_kwh -> Nullable<Double>,
        battery_charge_kwh -> Nullable<Double>,
        battery_discharge_kwh -> Nullable<Double>,
        grid_import_kwh -> Nullable<Double>,
        grid_export_kwh -> Nullable<Double>,
        avg_pv_power_w -> Nullable<Double>,
        peak_pv_power_w -> Nullable<Double>,
        avg_load_power_w -> Nullable<Double>,
        peak_load_power_w -> Nullable<Double>,
        avg_grid_power_w -> Nullable<Double>,
        peak_grid_import_w -> Nullable<Double>,
        peak_grid_export_w -> Nullable<Double>,
        avg_battery_power_w -> Nullable<Double>,
        soc_min_pct -> Nullable<Double>,
        soc_avg_pct -> Nullable<Double>,
        soc_max_pct -> Nullable<Double>,
        sample_count -> BigInt,
        coverage_pct -> Double,
        updated_at -> BigInt,
        source -> Text,
    }
}

diesel::table! {
    daily_summary (inverter_id, bucket_start) {
        inverter_id -> Text,
        bucket_start -> BigInt,
        bucket_end -> BigInt,
        date -> Text,
        array_id -> Nullable<Text>,
        system_id -> Text,
        solar_kwh -> Nullable<Double>,
        load_kwh -> Nullable<Double>,
        battery_charge_kwh -> Nullable<Double>,
        battery_discharge_kwh -> Nullable<Double>,
        grid_import_kwh -> Nullable<Double>,
        grid_export_kwh -> Nullable<Double>,
        avg_pv_power_w -> Nullable<Double>,
        peak_pv_power_w -> Nullable<Double>,
        avg_load_power_w -> Nullable<Double>,
        peak_load_power_w -> Nullable<Double>,
        avg_grid_power_w -> Nullable<Double>,
        peak_grid_import_w -> Nullable<Double>,
        peak_grid_export_w -> Nullable<Double>,
        avg_battery_power_w -> Nullable<Double>,
        soc_min_pct -> Nullable<Double>,
        soc_avg_pct -> Nullable<Double>,
        soc_max_pct -> Nullable<Double>,
        battery_cycles -> Nullable<Double>,
        sample_count -> BigInt,
        coverage_pct -> Double,
        updated_at -> BigInt,
        source -> Text,
    }
}

diesel::table! {
    array_daily_summary (array_id, bucket_start) {
        array_id -> Text,
        bucket_start -> BigInt,
        bucket_end -> BigInt,
        date -> Text,
        system_id -> Text,
        solar_kwh -> Nullable<Double>,
        load_kwh -> Nullable<Double>,
        battery_charge_kwh -> Nullable<Double>,
        battery_discharge_kwh -> Nullable<Double>,
        grid_import_kwh -> Nullable<Double>,
        grid_export_kwh -> Nullable<Double>,
        avg_pv_power_w -> Nullable<Double>,
        peak_pv_power_w -> Nullable<Double>,
        avg_load_power_w -> Nullable<Double>,
        peak_load_power_w -> Nullable<Double>,
        avg_grid_power_w -> Nullable<Double>,
        peak_grid_import_w -> Nullable<Double>,
        peak_grid_export_w -> Nullable<Double>,
        avg_battery_power_w -> Nullable<Double>,
        soc_min_pct -> Nullable<Double>,
        soc_avg_pct -> Nullable<Double>,
        soc_max_pct -> Nullable<Double>,
        battery_cycles -> Nullable<Double>,
        sample_count -> BigInt,
        coverage_pct -> Double,
        updated_at -> BigInt,
        source -> Text,
    }
}

diesel::table! {
    system_daily_summary (system_id, bucket_start) {
        system_id -> Text,
        bucket_start -> BigInt,
        bucket_end -> BigInt,
        date -> Text,
        solar_kwh -> Nullable<Double>,
        load_kwh -> Nullable<Double>,
        battery_charge_kwh -> Nullable<Double>,
        battery_discharge_kwh -> Nullable<Double>,
        grid_import_kwh -> Nullable<Double>,
        grid_export_kwh -> Nullable<Double>,
        avg_pv_power_w -> Nullable<Double>,
        peak_pv_power_w -> Nullable<Double>,
        avg_load_power_w -> Nullable<Double>,
        peak_load_power_w -> Nullable<Double>,
        avg_grid_power_w -> Nullable<Double>,
        peak_grid_import_w -> Nullable<Double>,
        peak_grid_export_w -> Nullable<Double>,
        avg_battery_power_w -> Nullable<Double>,
        soc_min_pct -> Nullable<Double>,
        soc_avg_pct -> Nullable<Double>,
        soc_max_pct -> Nullable<Double>,
        battery_cycles -> Nullable<Double>,
        sample_count -> BigInt,
        coverage_pct -> Double,
        updated_at -> BigInt,
        source -> Text,
    }
}

diesel::table! {
    battery_bank_hourly (pack_id, bucket_start) {
        pack_id -> Text,
        bucket_start -> BigInt,
        bucket_end -> BigInt,
        date -> Text,
        hour_start -> Integer,
        battery_array_id -> Nullable<Text>,
        system_id -> Text,
        charge_kwh -> Nullable<Double>,
        discharge_kwh -> Nullable<Double>,
        avg_power_w -> Nullable<Double>,
        peak_charge_w -> Nullable<Double>,
        peak_discharge_w -> Nullable<Double>,
        avg_voltage_v -> Nullable<Double>,
        avg_current_a -> Nullable<Double>,
        avg_temperature_c -> Nullable<Double>,
        max_temperature_c -> Nullable<Double>,
        soc_min_pct -> Nullable<Double>,
        soc_avg_pct -> Nullable<Double>,
        soc_max_pct -> Nullable<Double>,
        sample_count -> BigInt,
        coverage_pct -> Double,
        updated_at -> BigInt,
        source -> Text,
    }
}

diesel::table! {
    battery_bank_daily (pack_id, bucket_start) {
        pack_id -> Text,
        bucket_start -> BigInt,
        bucket_end -> BigInt,
        date -> Text,
        battery_array_id -> Nullable<Text>,
        system_id -> Text,
        charge_kwh -> Nullable<Double>,
        discharge_kwh -> Nullable<Double>,
        avg_power_w -> Nullable<Double>,
        peak_charge_w -> Nullable<Double>,
        peak_discharge_w -> Nullable<Double>,
        avg_voltage_v -> Nullable<Double>,
        avg_current_a -> Nullable<Double>,
        avg_temperature_c -> Nullable<Double>,
        max_temperature_c -> Nullable<Double>,
        soc_min_pct -> Nullable<Double>,
        soc_avg_pct -> Nullable<Double>,
        soc_max_pct -> Nullable<Double>,
        cycles -> Nullable<Double>,
        sample_count -> BigInt,
        coverage_pct -> Double,
        updated_at -> BigInt,
        source -> Text,
    }
}

diesel::table! {
    meter_hourly_energy (meter_id, bucket_start) {
        meter_id -> Text,
        bucket_start -> BigInt,
        bucket_end -> BigInt,
        date -> Text,
        hour_start -> Integer,
        system_id -> Text,
        array_id -> Nullable<Text>,
        import_kwh -> Nullable<Double>,
        export_kwh -> Nullable<Double>,
        net_kwh -> Nullable<Double>,
        avg_power_w -> Nullable<Double>,
        peak_import_w -> Nullable<Double>,
        peak_export_w -> Nullable<Double>,
        avg_voltage_v -> Nullable<Double>,
        avg_current_a -> Nullable<Double>,
        avg_frequency_hz -> Nullable<Double>,
        sample_count -> BigInt,
        coverage_pct -> Double,
        updated_at -> BigInt,
        source -> Text,
    }
}

diesel::table! {
    meter_daily (meter_id, bucket_start) {
        meter_id -> Text,
        bucket_start -> BigInt,
        bucket_end -> BigInt,
        date -> Text,
        system_id -> Text,
        array_id -> Nullable<Text>,
        import_kwh -> Nullable<Double>,
        export_kwh -> Nullable<Double>,
        net_kwh -> Nullable<Double>,
        avg_power_w -> Nullable<Double>,
        peak_import_w -> Nullable<Double>,
        peak_export_w -> Nullable<Double>,
        avg_voltage_v -> Nullable<Double>,
        avg_current_a -> Nullable<Double>,
        avg_frequency_hz -> Nullable<Double>,
        sample_count -> BigInt,
        coverage_pct -> Double,
        updated_at -> BigInt,
        source -> Text,
    }
}

diesel::joinable!(arrays -> systems (system_id));
diesel::joinable!(adapters -> adapter_base (adapter_type));
diesel::joinable!(inverters -> systems (system_id));
diesel::joinable!(inverters -> adapters (adapter_id));
diesel::joinable!(battery_arrays -> systems (system_id));
diesel::joinable!(battery_array_attachments -> systems (system_id));
diesel::joinable!(battery_packs -> systems (system_id));
diesel::joinable!(batteries -> battery_packs (pack_id));
diesel::joinable!(battery_cells -> batteries (battery_id));
diesel::joinable!(meters -> systems (system_id));
diesel::joinable!(meters -> adapters (adapter_id));
diesel::joinable!(battery_pack_adapters -> battery_packs (pack_id));
diesel::joinable!(battery_pack_adapters -> adapters (adapter_id));
diesel::joinable!(energy_samples -> inverters (inverter_id));
diesel::joinable!(energy_samples -> arrays (array_id));
diesel::joinable!(energy_samples -> systems (system_id));
diesel::joinable!(array_samples -> arrays (array_id));
diesel::joinable!(array_samples -> systems (system_id));
diesel::joinable!(battery_bank_samples -> battery_packs (pack_id));
diesel::joinable!(battery_bank_samples -> battery_arrays (battery_array_id));
diesel::joinable!(battery_bank_samples -> systems (system_id));
diesel::joinable!(battery_unit_samples -> batteries (battery_id));
diesel::joinable!(battery_unit_samples -> battery_packs (pack_id));
diesel::joinable!(battery_unit_samples -> battery_arrays (battery_array_id));
diesel::joinable!(battery_unit_samples -> systems (system_id));
diesel::joinable!(battery_cell_samples -> battery_cells (cell_id));
diesel::joinable!(battery_cell_samples -> batteries (battery_id));
diesel::joinable!(battery_cell_samples -> battery_packs (pack_id));
diesel::joinable!(battery_cell_samples -> battery_arrays (battery_array_id));
diesel::joinable!(battery_cell_samples -> systems (system_id));
diesel::joinable!(meter_samples -> meters (meter_id));
diesel::joinable!(meter_samples -> systems (system_id));
diesel::joinable!(meter_samples -> arrays (array_id));
diesel::joinable!(hourly_energy -> inverters (inverter_id));
diesel::joinable!(hourly_energy -> arrays (array_id));
diesel::joinable!(hourly_energy -> systems (system_id));
diesel::joinable!(array_hourly_energy -> arrays (array_id));
diesel::joinable!(array_hourly_energy -> systems (system_id));
diesel::joinable!(system_hourly_energy -> systems (system_id));
diesel::joinable!(daily_summary -> inverters (inverter_id));
diesel::joinable!(daily_summary -> arrays (array_id));
diesel::joinable!(daily_summary -> systems (system_id));
diesel::joinable!(array_daily_summary -> arrays (array_id));
diesel::joinable!(array_daily_summary -> systems (system_id));
diesel::joinable!(system_daily_summary -> systems (system_id));
diesel::joinable!(battery_bank_hourly -> battery_packs (pack_id));
diesel::joinable!(battery_bank_hourly -> battery_arrays (battery_array_id));
diesel::joinable!(battery_bank_hourly -> systems (system_id));
diesel::joinable!(battery_bank_daily -> battery_packs (pack_id));
diesel::joinable!(battery_bank_daily -> battery_arrays (battery_array_id));
diesel::joinable!(battery_bank_daily -> systems (system_id));
diesel::joinable!(meter_hourly_energy -> meters (meter_id));
diesel::joinable!(meter_hourly_energy -> systems (system_id));
diesel::joinable!(meter_hourly_energy -> arrays (array_id));
diesel::joinable!(meter_daily -> meters (meter_id));
diesel::joinable!(meter_daily -> systems (system_id));
diesel::joinable!(meter_daily -> arrays (array_id));

diesel::allow_tables_to_appear_in_same_query!(
    systems,
    arrays,
    adapter_base,
    adapters,
    inverters,
    battery_arrays,
    battery_array_attachments,
    battery_packs,
    batteries,
    battery_cells,
    meters,
    battery_pack_adapters,
    energy_samples,
    array_samples,
    battery_bank_samples,
    battery_unit_samples,
    battery_cell_samples,
    meter_samples,
    hourly_energy,
    array_hourly_energy,
    system_hourly_energy,
    daily_summary,
    array_daily_summary,
    system_daily_summary,
    battery_bank_hourly,
    battery_bank_daily,
    meter_hourly_energy,
    meter_daily,
);

diesel::table! {
    legacy_imports (import_id) {
        import_id -> Text,
        source -> Text,
        in_place -> Bool,
        backup -> Nullable<Text>,
        started_at -> BigInt,
        finished_at -> Nullable<BigInt>,
        report -> Nullable<Text>,
    }
}

diesel::table! {
    collectors (collector_id) {
        collector_id -> Text,
        last_seq -> BigInt,
        version -> Nullable<Text>,
        last_seen_at -> BigInt,
        samples_stored -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    latest_readings (device_id, adapter_id) {
        device_id -> Text,
        adapter_id -> Text,
        device_type -> Text,
        system_id -> Text,
        ts -> BigInt,
        committed_at -> BigInt,
    }
}

diesel::table! {
    rollup_pending (device_id, from_ts, to_ts) {
        device_id -> Text,
        system_id -> Text,
        from_ts -> BigInt,
        to_ts -> BigInt,
    }
}

diesel::table! {
    legacy_conflicts (source, source_table, source_rowid) {
        source -> Text,
        source_table -> Text,
        source_rowid -> BigInt,
        import_id -> Text,
        device_id -> Text,
        ts -> BigInt,
        raw_ts -> Text,
        values_json -> Text,
    }
}

diesel::table! {
    principals (name) {
        name -> Text,
        role -> Text,
        collector_id -> Nullable<Text>,
        token_sha256 -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        certificate_subject -> Nullable<Text>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Integer,
        at -> BigInt,
        principal -> Text,
        source -> Text,
        method -> Text,
        target -> Text,
        outcome -> Text,
        duration_ms -> BigInt,
        calls -> BigInt,
        detail -> Text,
    }
}

diesel::table! {
    poll_counts (device_id, bucket_start, counter) {
        device_id -> Text,
        bucket_start -> BigInt,
        counter -> Text,
        amount -> BigInt,
    }
}

diesel::table! {
    control_commands (id) {
        id -> Text,
        collector_id -> Text,
        device_id -> Text,
        kind -> Text,
        dry_run -> Bool,
        reverts -> Nullable<Text>,
        requested_by -> Text,
        created_at -> BigInt,
        deadline -> BigInt,
        state -> Text,
        reason -> Text,
        command -> Text,
        result -> Nullable<Text>,
        finished_at -> Nullable<BigInt>,
    }
}
