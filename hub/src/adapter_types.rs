//! The driver types the collector has (`adapter_base` rows), each with the JSON Schema of its
//! configuration. They are data: one JSON file per type under `hub/adapter_types/`, embedded in the
//! binary and written to the catalog by every import.

use serde::Deserialize;

use crate::catalog::AdapterType;
use crate::json_schema::{JsonSchema, SchemaError};

const BUILTIN_FILES: &[(&str, &str)] = &[
    ("powdrive", include_str!("../adapter_types/powdrive.json")),
    ("senergy", include_str!("../adapter_types/senergy.json")),
    ("sunspec", include_str!("../adapter_types/sunspec.json")),
    ("modbus", include_str!("../adapter_types/modbus.json")),
    ("iammeter", include_str!("../adapter_types/iammeter.json")),
    ("pytes", include_str!("../adapter_types/pytes.json")),
    ("jkbms", include_str!("../adapter_types/jkbms.json")),
    (
        "jkbms_tcpip",
        include_str!("../adapter_types/jkbms_tcpip.json"),
    ),
    ("jkbms_ble", include_str!("../adapter_types/jkbms_ble.json")),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdapterTypeFile {
    adapter_type: String,
    device_category: String,
    name: String,
    description: String,
    supported_transports: Vec<String>,
    default_config: serde_json::Value,
    version: i32,
    config_schema: serde_json::Value,
}

/// A driver type with its schema compiled.
#[derive(Debug, Clone)]
pub struct KnownAdapterType {
    pub row: AdapterType,
    pub schema: JsonSchema,
}

#[derive(Debug, thiserror::Error)]
pub enum AdapterTypeError {
    #[error("adapter type file {file}: {reason}")]
    BadFile { file: String, reason: String },
    #[error("adapter type file {file}: {source}")]
    BadSchema { file: String, source: SchemaError },
}

/// Every built-in driver type, sorted by name.
pub fn builtin_adapter_types() -> Result<Vec<KnownAdapterType>, AdapterTypeError> {
    let mut types = Vec::with_capacity(BUILTIN_FILES.len());
    for (file, text) in BUILTIN_FILES {
        let bad_file = |reason: String| AdapterTypeError::BadFile {
            file: (*file).to_owned(),
            reason,
        };
        let parsed: AdapterTypeFile =
            serde_json::from_str(text).map_err(|e| bad_file(e.to_string()))?;
        if parsed.adapter_type != *file {
            return Err(bad_file(format!(
                "declares adapter_type {:?}",
                parsed.adapter_type
            )));
        }
        let schema = JsonSchema::from_value(parsed.config_schema.clone()).map_err(|source| {
            AdapterTypeError::BadSchema {
                file: (*file).to_owned(),
                source,
            }
        })?;
        // Defaults are partial (no port or host), so only their types and values are checked.
        let violations = schema.validate(&parsed.default_config);
        if let Some(violation) = violations.iter().find(|v| v.message != "is required") {
            return Err(bad_file(format!(
                "default_config.{} {}",
                violation.path, violation.message
            )));
        }
        types.push(KnownAdapterType {
            row: AdapterType {
                adapter_type: parsed.adapter_type,
                device_category: parsed.device_category,
                name: parsed.name,
                description: Some(parsed.description),
                config_schema: parsed.config_schema.to_string(),
                supported_transports: serde_json::Value::from(parsed.supported_transports)
                    .to_string(),
                default_config: Some(parsed.default_config.to_string()),
                version: parsed.version,
            },
            schema,
        });
    }
    types.sort_by(|a, b| a.row.adapter_type.cmp(&b.row.adapter_type));
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_type_loads_with_a_valid_schema_and_default() {
        let types = builtin_adapter_types().unwrap();
        let names: Vec<&str> = types.iter().map(|t| t.row.adapter_type.as_str()).collect();
        assert_eq!(
            names,
            [
                "iammeter",
                "jkbms",
                "jkbms_ble",
                "jkbms_tcpip",
                "modbus",
                "powdrive",
                "pytes",
                "senergy",
                "sunspec"
            ]
        );
    }
}
