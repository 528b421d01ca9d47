-- Who may call the hub (DESIGN §7): one row per principal, holding the SHA-256 of its token, never
-- the token. A collector principal is bound to one collector id. Revoked principals stay (their
-- names stay taken, so an audit line always means one principal).
CREATE TABLE principals (
    name TEXT PRIMARY KEY NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'reader', 'collector')),
    collector_id TEXT,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    CHECK ((role = 'collector') = (collector_id IS NOT NULL))
);
