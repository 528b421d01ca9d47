CREATE TABLE principals_old (
    name TEXT PRIMARY KEY NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'reader', 'collector')),
    collector_id TEXT,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    certificate_subject TEXT,
    CHECK ((role = 'collector') = (collector_id IS NOT NULL))
);
INSERT INTO principals_old SELECT name, role, collector_id, token_sha256, created_at, revoked_at, certificate_subject FROM principals WHERE role <> 'operator';
DROP TABLE principals;
ALTER TABLE principals_old RENAME TO principals;
CREATE UNIQUE INDEX principals_certificate_subject ON principals (certificate_subject);
