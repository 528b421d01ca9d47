-- The installation hierarchy (DESIGN §3.1). Ids are user-visible slugs. Times are UTC epoch
-- milliseconds. Composite foreign keys keep a child's system_id equal to its parent's.

CREATE TABLE systems (
    system_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    currency TEXT,
    tariff_json TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE arrays (
    array_id TEXT PRIMARY KEY,
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    name TEXT NOT NULL,
    pv_capacity_kw DOUBLE PRECISION,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (array_id, system_id)
);
CREATE INDEX arrays_system_id ON arrays (system_id);

CREATE TABLE adapter_base (
    adapter_type TEXT PRIMARY KEY,
    device_category TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    config_schema TEXT NOT NULL,
    supported_transports TEXT NOT NULL,
    default_config TEXT,
    version INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE adapters (
    adapter_id TEXT PRIMARY KEY,
    adapter_type TEXT NOT NULL REFERENCES adapter_base (adapter_type),
    device_category TEXT NOT NULL,
    device_id TEXT,
    device_type TEXT,
    collector_id TEXT,
    config_json TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 1,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX adapters_adapter_type ON adapters (adapter_type);
CREATE INDEX adapters_collector_id ON adapters (collector_id);
CREATE INDEX adapters_device_id ON adapters (device_id);

CREATE TABLE inverters (
    inverter_id TEXT PRIMARY KEY,
    array_id TEXT NOT NULL,
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    adapter_id TEXT REFERENCES adapters (adapter_id),
    name TEXT NOT NULL,
    model TEXT,
    serial_number TEXT,
    vendor TEXT,
    phase_type TEXT,
    rated_power_w DOUBLE PRECISION,
    settings_json TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (array_id, system_id) REFERENCES arrays (array_id, system_id)
);
CREATE INDEX inverters_array_id ON inverters (array_id, system_id);
CREATE INDEX inverters_system_id ON inverters (system_id);
CREATE INDEX inverters_adapter_id ON inverters (adapter_id);

CREATE TABLE battery_arrays (
    battery_array_id TEXT PRIMARY KEY,
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (battery_array_id, system_id)
);
CREATE INDEX battery_arrays_system_id ON battery_arrays (system_id);

-- Which inverter array a battery array feeds, versioned in time. At most one active
-- (detached_at IS NULL) attachment per battery array.
CREATE TABLE battery_array_attachments (
    battery_array_id TEXT NOT NULL,
    attached_since BIGINT NOT NULL,
    inverter_array_id TEXT NOT NULL,
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    detached_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (battery_array_id, attached_since),
    FOREIGN KEY (battery_array_id, system_id) REFERENCES battery_arrays (battery_array_id, system_id),
    FOREIGN KEY (inverter_array_id, system_id) REFERENCES arrays (array_id, system_id),
    CHECK (detached_at IS NULL OR detached_at > attached_since)
);
CREATE UNIQUE INDEX battery_array_attachments_one_active
    ON battery_array_attachments (battery_array_id) WHERE detached_at IS NULL;
CREATE INDEX battery_array_attachments_inverter_array_id
    ON battery_array_attachments (inverter_array_id);

CREATE TABLE battery_packs (
    pack_id TEXT PRIMARY KEY,
    battery_array_id TEXT,
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    name TEXT NOT NULL,
    chemistry TEXT,
    nominal_kwh DOUBLE PRECISION,
    max_charge_kw DOUBLE PRECISION,
    max_discharge_kw DOUBLE PRECISION,
    batteries_count INTEGER,
    cells_per_battery INTEGER,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (pack_id, system_id),
    FOREIGN KEY (battery_array_id, system_id) REFERENCES battery_arrays (battery_array_id, system_id)
);
CREATE INDEX battery_packs_battery_array_id ON battery_packs (battery_array_id);
CREATE INDEX battery_packs_system_id ON battery_packs (system_id);

CREATE TABLE batteries (
    battery_id TEXT PRIMARY KEY,
    pack_id TEXT NOT NULL REFERENCES battery_packs (pack_id),
    battery_index INTEGER NOT NULL,
    serial_number TEXT,
    model TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (pack_id, battery_index)
);

CREATE TABLE battery_cells (
    cell_id TEXT PRIMARY KEY,
    battery_id TEXT NOT NULL REFERENCES batteries (battery_id),
    cell_index INTEGER NOT NULL,
    nominal_voltage DOUBLE PRECISION,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (battery_id, cell_index)
);

CREATE TABLE meters (
    meter_id TEXT PRIMARY KEY,
    system_id TEXT NOT NULL REFERENCES systems (system_id),
    array_id TEXT,
    adapter_id TEXT REFERENCES adapters (adapter_id),
    name TEXT NOT NULL,
    model TEXT,
    meter_type TEXT NOT NULL DEFAULT 'grid',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (array_id, system_id) REFERENCES arrays (array_id, system_id)
);
CREATE INDEX meters_system_id ON meters (system_id);
CREATE INDEX meters_array_id ON meters (array_id, system_id);
CREATE INDEX meters_adapter_id ON meters (adapter_id);

CREATE TABLE battery_pack_adapters (
    pack_id TEXT NOT NULL REFERENCES battery_packs (pack_id),
    adapter_id TEXT NOT NULL REFERENCES adapters (adapter_id),
    priority INTEGER NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (pack_id, adapter_id)
);
CREATE INDEX battery_pack_adapters_adapter_id ON battery_pack_adapters (adapter_id);
