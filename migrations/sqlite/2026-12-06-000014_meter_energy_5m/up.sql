-- The 5-minute meter aggregates keep every lifetime counter a meter reports (the sample tables'
-- declaration in hub/src/db/samples.rs): energy_total_kwh too, so a meter that reports only that
-- counter keeps its energy after retention deletes the raw samples. Buckets made before this
-- migration have it NULL.
ALTER TABLE meter_samples_5m ADD COLUMN energy_total_kwh DOUBLE;
