//! Adapter configurations checked against their type's JSON Schema, through the `jsonschema`
//! crate (every keyword of the drafts it supports; built without remote reference resolution, so
//! a schema can never reach the network or the file system).
//!
//! This module only turns the crate's errors into [`SchemaViolation`]s that name a config field
//! the way the config file and the API do (`baudrate`, `solar[0].tilt`): a missing required field
//! and an unknown one are named themselves, not their parent object.

use std::sync::Arc;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

/// One way a value breaks its schema: the path of the offending field (`baudrate`, `solar[0].tilt`)
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    pub path: String,
    pub message: String,
}

/// A compiled schema.
#[derive(Clone)]
pub struct JsonSchema {
    root: Value,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema")
            .field("root", &self.root)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema is not valid JSON: {0}")]
    NotJson(String),
    #[error("schema is not a valid JSON Schema: {0}")]
    Invalid(String),
}

impl JsonSchema {
    pub fn parse(text: &str) -> Result<JsonSchema, SchemaError> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| SchemaError::NotJson(e.to_string()))?;
        JsonSchema::from_value(root)
    }

    pub fn from_value(root: Value) -> Result<JsonSchema, SchemaError> {
        let validator =
            jsonschema::validator_for(&root).map_err(|e| SchemaError::Invalid(e.to_string()))?;
        Ok(JsonSchema {
            root,
            validator: Arc::new(validator),
        })
    }

    pub fn as_value(&self) -> &Value {
        &self.root
    }

    /// Every violation of `value`, by path; empty when it conforms.
    pub fn validate(&self, value: &Value) -> Vec<SchemaViolation> {
        let mut violations = Vec::new();
        for error in self.validator.iter_errors(value) {
            let path = field_path(error.instance_path().as_str());
            match error.kind() {
                ValidationErrorKind::Required { property } => violations.push(SchemaViolation {
                    path: child_path(&path, property.as_str().unwrap_or_default()),
                    message: "is required".into(),
                }),
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let known = self.known_properties(error.instance_path().as_str());
                    for name in unexpected {
                        violations.push(SchemaViolation {
                            path: child_path(&path, name),
                            message: match known.is_empty() {
                                true => "unknown field".into(),
                                false => {
                                    format!("unknown field, expected one of: {}", known.join(", "))
                                }
                            },
                        });
                    }
                }
                ValidationErrorKind::Type { kind } => violations.push(SchemaViolation {
                    path,
                    message: format!(
                        "must be {}, got {} {}",
                        match kind {
                            TypeKind::Single(t) => t.to_string(),
                            TypeKind::Multiple(set) => format!("{set:?}"),
                        },
                        type_name(error.instance()),
                        describe(error.instance())
                    ),
                }),
                _ => violations.push(SchemaViolation {
                    path,
                    message: error.to_string(),
                }),
            }
        }
        violations.sort_by(|a, b| a.path.cmp(&b.path));
        violations
    }

    /// The property names the root schema declares for the object at `pointer` (top level only:
    /// adapter configs are flat objects).
    fn known_properties(&self, pointer: &str) -> Vec<String> {
        if !pointer.is_empty() {
            return Vec::new();
        }
        let mut names: Vec<String> = self
            .root
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// A JSON pointer (`/solar/0/tilt`) as a config path (`solar[0].tilt`).
fn field_path(pointer: &str) -> String {
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() {
            path.push_str(&format!("[{segment}]"));
        } else {
            path = child_path(&path, &segment);
        }
    }
    path
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 40 {
        format!("{}…", &text[..text.floor_char_boundary(40)])
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_type_enum_required_and_unknown_fields_with_paths() {
        let schema = JsonSchema::from_value(json!({
            "type": "object",
            "required": ["transport"],
            "additionalProperties": false,
            "properties": {
                "transport": {"enum": ["rtu", "tcp"]},
                "baudrate": {"type": "integer", "minimum": 1200},
                "solar": {"type": "array", "items": {"type": "object", "properties": {"tilt": {"type": "number"}}}}
            },
            "if": {"properties": {"transport": {"const": "rtu"}}},
            "then": {"required": ["serial_port"]}
        }))
        .unwrap();
        let violations = schema.validate(&json!({
            "transport": "rtu", "baudrate": "9600", "solar": [{"tilt": "x"}], "bogus": 1
        }));
        let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, ["baudrate", "bogus", "serial_port", "solar[0].tilt"]);
        assert!(
            violations[0]
                .message
                .contains("must be integer, got string"),
            "{violations:?}"
        );
        assert!(
            violations[1]
                .message
                .contains("expected one of: baudrate, solar, transport"),
            "{violations:?}"
        );
        assert!(
            schema
                .validate(&json!({"transport": "tcp", "baudrate": 9600}))
                .is_empty()
        );
    }

    /// Every keyword is enforced (the hand-written subset this replaced refused schemas using
    /// others, so they could not look stricter than they were), and references to elsewhere are
    /// never fetched.
    #[test]
    fn enforces_every_keyword_and_fetches_nothing() {
        let schema =
            JsonSchema::from_value(json!({"properties": {"a": {"pattern": "^x"}}})).unwrap();
        assert_eq!(schema.validate(&json!({"a": "y"}))[0].path, "a");
        assert!(schema.validate(&json!({"a": "xy"})).is_empty());
        assert!(
            JsonSchema::from_value(json!({"$ref": "https://example.com/schema.json"})).is_err(),
            "a remote reference must not be resolved"
        );
    }
}
