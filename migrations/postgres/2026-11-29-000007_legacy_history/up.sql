-- Where a rollup row came from: 'samples' (computed from raw samples by solarhub) or 'legacy' (the old
-- app's own hourly and daily figures, carried over by a legacy upgrade for hours and days that have
-- no raw samples, typically older than the old app's one-year retention). A recompute replaces
-- computed rows and leaves legacy rows alone where it has no samples to recompute from.
ALTER TABLE hourly_energy ADD COLUMN source TEXT NOT NULL DEFAULT 'samples';
ALTER TABLE array_hourly_energy ADD COLUMN source TEXT NOT NULL DEFAULT 'samples';
ALTER TABLE system_hourly_energy ADD COLUMN source TEXT NOT NULL DEFAULT 'samples';
ALTER TABLE daily_summary ADD COLUMN source TEXT NOT NULL DEFAULT 'samples';
ALTER TABLE array_daily_summary ADD COLUMN source TEXT NOT NULL DEFAULT 'samples';
ALTER TABLE system_daily_summary ADD COLUMN source TEXT NOT NULL DEFAULT 'samples';
ALTER TABLE battery_bank_hourly ADD COLUMN source TEXT NOT NULL DEFAULT 'samples';
ALTER TABLE battery_bank_daily ADD COLUMN source TEXT NOT NULL DEFAULT 'samples';
ALTER TABLE meter_hourly_energy ADD COLUMN source TEXT NOT NULL DEFAULT 'samples';
ALTER TABLE meter_daily ADD COLUMN source TEXT NOT NULL DEFAULT 'samples';

-- Rows of the old app's sample tables that share a (device, time) with a stored row but differ in
-- some value: kept here as they were, never dropped and never silently merged (DESIGN §6.2). The
-- key is the legacy row itself, so running the same import again adds nothing.
CREATE TABLE legacy_conflicts (
    source TEXT NOT NULL,
    source_table TEXT NOT NULL,
    source_rowid BIGINT NOT NULL,
    import_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    raw_ts TEXT NOT NULL,
    values_json TEXT NOT NULL,
    PRIMARY KEY (source, source_table, source_rowid)
);
CREATE INDEX legacy_conflicts_device_ts ON legacy_conflicts (device_id, ts);
