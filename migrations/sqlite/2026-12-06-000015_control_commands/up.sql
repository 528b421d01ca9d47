-- Control commands (ControlService, docs/control.md): every command the hub was asked for, kept
-- until it is done, failed, refused, expired or cancelled, and afterwards as the settings'
-- history. `command` is the DeviceCommand sent to the collector and `result` the collector's
-- CommandResult, both as JSON (the proto3 mapping, as grpcurl shows them).
CREATE TABLE control_commands (
    id TEXT PRIMARY KEY,
    collector_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    dry_run BOOLEAN NOT NULL,
    reverts TEXT,
    requested_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deadline BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    command TEXT NOT NULL,
    result TEXT,
    finished_at BIGINT
);
CREATE INDEX control_commands_open ON control_commands (state, collector_id);
CREATE INDEX control_commands_device ON control_commands (device_id, created_at);
