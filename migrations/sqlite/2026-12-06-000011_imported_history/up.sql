-- What an upgrade or an import-legacy brought: per import, sample table and group (a system; for
-- battery units and cells, a pack) the time span of the rows it inserted (to_ts is the newest
-- row's) and how many (row_count: NULL for imports made before this table, whose span is taken from the
-- group's oldest row to the import's start). Retention treats a group's rows inside any import's
-- span as imported: they are kept unless the operator names a period for imported rows.
CREATE TABLE imported_spans (
    import_id TEXT NOT NULL,
    sample_table TEXT NOT NULL,
    group_id TEXT NOT NULL,
    from_ts BIGINT NOT NULL,
    to_ts BIGINT NOT NULL,
    row_count BIGINT,
    PRIMARY KEY (import_id, sample_table, group_id)
);

-- The spans of the imports made before this table (an in-place upgrade or an import-legacy into
-- a hub that ran without it): a group's rows from its oldest to the import's start.
INSERT INTO imported_spans (import_id, sample_table, group_id, from_ts, to_ts, row_count)
SELECT li.import_id, t.sample_table, t.group_id, t.from_ts, li.started_at, NULL
FROM legacy_imports li
JOIN (
    SELECT 'energy_samples' AS sample_table, g.system_id AS group_id,
        (SELECT MIN(ts) FROM energy_samples s WHERE s.system_id = g.system_id) AS from_ts
    FROM systems g
    UNION ALL
    SELECT 'meter_samples', g.system_id,
        (SELECT MIN(ts) FROM meter_samples s WHERE s.system_id = g.system_id)
    FROM systems g
    UNION ALL
    SELECT 'battery_bank_samples', g.system_id,
        (SELECT MIN(ts) FROM battery_bank_samples s WHERE s.system_id = g.system_id)
    FROM systems g
    UNION ALL
    SELECT 'array_samples', g.system_id,
        (SELECT MIN(ts) FROM array_samples s WHERE s.system_id = g.system_id)
    FROM systems g
    UNION ALL
    SELECT 'battery_unit_samples', g.pack_id,
        (SELECT MIN(ts) FROM battery_unit_samples s WHERE s.pack_id = g.pack_id)
    FROM battery_packs g
    UNION ALL
    SELECT 'battery_cell_samples', g.pack_id,
        (SELECT MIN(ts) FROM battery_cell_samples s WHERE s.pack_id = g.pack_id)
    FROM battery_packs g
) t ON t.from_ts IS NOT NULL AND t.from_ts <= li.started_at
WHERE li.finished_at IS NOT NULL;

-- How far retention has deleted imported rows, per table and group, like retention_marks for the
-- rows solarhub collected: imported rows of the group with ts < deleted_before may be gone.
CREATE TABLE retention_imported_marks (
    sample_table TEXT NOT NULL,
    group_id TEXT NOT NULL,
    deleted_before BIGINT NOT NULL,
    PRIMARY KEY (sample_table, group_id)
);

-- Which aggregate tables hold the aggregates of every sample a system had when retention first
-- met it (the roller makes them for every hour it rolls from then on).
CREATE TABLE aggregates_made (
    sample_table TEXT NOT NULL,
    system_id TEXT NOT NULL,
    PRIMARY KEY (sample_table, system_id)
);
INSERT INTO aggregates_made (sample_table, system_id)
SELECT DISTINCT a.sample_table, m.group_id
FROM retention_marks m
CROSS JOIN (
    SELECT 'energy_samples_5m' AS sample_table
    UNION ALL SELECT 'meter_samples_5m'
    UNION ALL SELECT 'battery_bank_samples_5m'
) a
WHERE m.sample_table IN ('energy_samples', 'meter_samples', 'battery_bank_samples')
    AND m.group_id IN (SELECT system_id FROM systems);

-- Hourly aggregates of every battery unit and cell, made by the roller for the local hours it
-- rolls (ts = the hour's start, UTC epoch ms; the hour holds the samples with ts in
-- [ts, ts + 1 h)): they outlive the raw samples, which are many rows per pack per poll. NULL
-- means no sample of the hour reported the value.
CREATE TABLE battery_unit_samples_1h (
    battery_id TEXT NOT NULL REFERENCES batteries (battery_id),
    ts BIGINT NOT NULL,
    pack_id TEXT NOT NULL REFERENCES battery_packs (pack_id),
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    samples INTEGER NOT NULL,
    voltage_min_v DOUBLE,
    voltage_max_v DOUBLE,
    voltage_avg_v DOUBLE,
    current_min_a DOUBLE,
    current_max_a DOUBLE,
    current_avg_a DOUBLE,
    temperature_min_c DOUBLE,
    temperature_max_c DOUBLE,
    soc_min_pct DOUBLE,
    soc_max_pct DOUBLE,
    soc_avg_pct DOUBLE,
    soh_avg_pct DOUBLE,
    PRIMARY KEY (battery_id, ts)
);
CREATE INDEX battery_unit_samples_1h_pack_ts ON battery_unit_samples_1h (pack_id, ts);

CREATE TABLE battery_cell_samples_1h (
    cell_id TEXT NOT NULL REFERENCES battery_cells (cell_id),
    ts BIGINT NOT NULL,
    battery_id TEXT NOT NULL REFERENCES batteries (battery_id),
    pack_id TEXT NOT NULL REFERENCES battery_packs (pack_id),
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    samples INTEGER NOT NULL,
    voltage_min_v DOUBLE,
    voltage_max_v DOUBLE,
    voltage_avg_v DOUBLE,
    temperature_min_c DOUBLE,
    temperature_max_c DOUBLE,
    soc_avg_pct DOUBLE,
    PRIMARY KEY (cell_id, ts)
);
CREATE INDEX battery_cell_samples_1h_pack_ts ON battery_cell_samples_1h (pack_id, ts);
CREATE INDEX battery_cell_samples_1h_battery_ts ON battery_cell_samples_1h (battery_id, ts);
