-- Each collector that has streamed to this hub, with the highest batch seq committed for it. A
-- batch is written in one transaction together with this row, so a replayed seq is recognised.
CREATE TABLE collectors (
    collector_id TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    version TEXT,
    last_seen_at BIGINT NOT NULL,
    -- Device samples stored from this collector's batches (duplicates not counted).
    samples_stored BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
