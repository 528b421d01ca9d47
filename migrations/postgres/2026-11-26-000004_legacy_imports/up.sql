-- Every import of an existing app's database: where it came from, the backup made first, and the
-- report. An in-place upgrade whose row has no finished_at is resumed on the next start.
CREATE TABLE legacy_imports (
    import_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    in_place BOOLEAN NOT NULL,
    backup TEXT,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    report TEXT
);
