-- The audit trail: every write (catalog, tokens, recompute, imports) and every refused call, with
-- who, from where, what, on what, how it ended and how long it took. Refused calls that repeat
-- (same principal, source, method and outcome) within a few seconds are one row with their count.
CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    principal TEXT NOT NULL,
    source TEXT NOT NULL,
    method TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
