-- The newest reading of every device from every adapter, kept by ingest in the batch's transaction
-- (DESIGN §4 Live). It points at the sample row (device id, ts) and is what every hub sharing the
-- database reads to answer "now". One row per (device, adapter) so a pack's failover can see which
-- of its adapters is still reporting. A derived index: no foreign keys, a row whose device or
-- sample is gone is ignored by readers.
CREATE TABLE latest_readings (
    device_id TEXT NOT NULL,
    adapter_id TEXT NOT NULL,
    -- inverter, meter or battery_pack
    device_type TEXT NOT NULL,
    system_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    -- When the hub committed it (UTC epoch ms): lets watchers on other hubs notice new data.
    committed_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, adapter_id)
);
CREATE INDEX latest_readings_system_id ON latest_readings (system_id);

-- Time ranges of devices whose samples changed and whose rollups must be rolled again (DESIGN
-- §3.3). Ingest adds one per device per batch inside the batch's transaction; the roller removes
-- the ones it has rolled. Rolling is recomputing from raw samples, so a range rolled twice (two
-- hubs, a crash between roll and delete) changes nothing.
CREATE TABLE rollup_pending (
    device_id TEXT NOT NULL,
    system_id TEXT NOT NULL,
    from_ts BIGINT NOT NULL,
    to_ts BIGINT NOT NULL,
    PRIMARY KEY (device_id, from_ts, to_ts)
);
CREATE INDEX rollup_pending_system_id ON rollup_pending (system_id);
