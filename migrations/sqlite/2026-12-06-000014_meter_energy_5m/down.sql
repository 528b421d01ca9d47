ALTER TABLE meter_samples_5m DROP COLUMN energy_total_kwh;
