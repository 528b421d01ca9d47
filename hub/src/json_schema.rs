//! A small JSON Schema validator for adapter configurations.
//!
//! It implements the subset of draft 2020-12 that adapter type schemas use: `type`, `properties`,
//! `required`, `additionalProperties` (boolean or schema), `enum`, `const`, `minimum`, `maximum`,
//! `minLength`, `maxLength`, `items`, `minItems`, `maxItems`, `allOf`, `if`/`then`/`else`, plus the
//! annotations `title`, `description`, `default`, `examples`, `$schema`, `$id`. A schema that uses
//! any other keyword is refused when it is loaded, so a schema can never look stricter than it is.

use serde_json::{Map, Value};

const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "const",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "items",
    "minItems",
    "maxItems",
    "allOf",
    "if",
    "then",
    "else",
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
];

/// One way a value breaks its schema: the path of the offending field (`baudrate`, `solar[0].tilt`)
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    pub path: String,
    pub message: String,
}

/// A schema that was checked to use only supported keywords.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    root: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema is not valid JSON: {0}")]
    NotJson(String),
    #[error("schema keyword `{keyword}` at {location} is not supported")]
    UnsupportedKeyword { keyword: String, location: String },
    #[error("schema at {location} must be an object or a boolean")]
    NotASchema { location: String },
}

impl JsonSchema {
    pub fn parse(text: &str) -> Result<JsonSchema, SchemaError> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| SchemaError::NotJson(e.to_string()))?;
        JsonSchema::from_value(root)
    }

    pub fn from_value(root: Value) -> Result<JsonSchema, SchemaError> {
        check_keywords(&root, "#")?;
        Ok(JsonSchema { root })
    }

    pub fn as_value(&self) -> &Value {
        &self.root
    }

    /// Every violation of `value`, in document order; empty when it conforms.
    pub fn validate(&self, value: &Value) -> Vec<SchemaViolation> {
        let mut violations = Vec::new();
        validate_node(&self.root, value, "", &mut violations);
        violations
    }
}

fn check_keywords(schema: &Value, location: &str) -> Result<(), SchemaError> {
    let object = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(object) => object,
        _ => {
            return Err(SchemaError::NotASchema {
                location: location.to_owned(),
            });
        }
    };
    for (keyword, sub) in object {
        if !KEYWORDS.contains(&keyword.as_str()) {
            return Err(SchemaError::UnsupportedKeyword {
                keyword: keyword.clone(),
                location: location.to_owned(),
            });
        }
        match keyword.as_str() {
            "properties" => {
                for (name, property) in sub.as_object().into_iter().flatten() {
                    check_keywords(property, &format!("{location}/properties/{name}"))?;
                }
            }
            "additionalProperties" | "items" | "if" | "then" | "else" => {
                check_keywords(sub, &format!("{location}/{keyword}"))?;
            }
            "allOf" => {
                for (index, part) in sub.as_array().into_iter().flatten().enumerate() {
                    check_keywords(part, &format!("{location}/allOf/{index}"))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
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

fn matches_type(value: &Value, wanted: &str) -> bool {
    match wanted {
        "number" => value.is_number(),
        "integer" => match value {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        other => type_name(value) == other,
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

fn validate_node(schema: &Value, value: &Value, path: &str, out: &mut Vec<SchemaViolation>) {
    let schema = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            out.push(SchemaViolation {
                path: path.to_owned(),
                message: "is not allowed here".into(),
            });
            return;
        }
        Value::Object(object) => object,
        _ => return,
    };
    let mut fail = |message: String| {
        out.push(SchemaViolation {
            path: path.to_owned(),
            message,
        })
    };

    if let Some(wanted) = schema.get("type") {
        let names: Vec<&str> = match wanted {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|name| matches_type(value, name)) {
            fail(format!(
                "must be {}, got {} {}",
                names.join(" or "),
                type_name(value),
                describe(value)
            ));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        fail(format!(
            "must be one of {}, got {}",
            list.join(", "),
            describe(value)
        ));
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        fail(format!("must be {expected}, got {}", describe(value)));
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
            && number < minimum
        {
            fail(format!("must be at least {minimum}, got {number}"));
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
            && number > maximum
        {
            fail(format!("must be at most {maximum}, got {number}"));
        }
    }
    if let Value::String(text) = value {
        let length = text.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && length < min
        {
            fail(format!("must be at least {min} characters long"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && length > max
        {
            fail(format!("must be at most {max} characters long"));
        }
    }
    if let Value::Array(items) = value {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            fail(format!("must have at least {min} items"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && (items.len() as u64) > max
        {
            fail(format!("must have at most {max} items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                validate_node(item_schema, item, &format!("{path}[{index}]"), out);
            }
        }
    }
    if let Value::Object(fields) = value {
        validate_object(schema, fields, path, out);
    }
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        validate_node(part, value, path, out);
    }
    if let Some(condition) = schema.get("if") {
        let mut scratch = Vec::new();
        validate_node(condition, value, path, &mut scratch);
        let branch = if scratch.is_empty() {
            schema.get("then")
        } else {
            schema.get("else")
        };
        if let Some(branch) = branch {
            validate_node(branch, value, path, out);
        }
    }
}

fn validate_object(
    schema: &Map<String, Value>,
    fields: &Map<String, Value>,
    path: &str,
    out: &mut Vec<SchemaViolation>,
) {
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = required.as_str()
            && !fields.contains_key(name)
        {
            out.push(SchemaViolation {
                path: child_path(path, name),
                message: "is required".into(),
            });
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, field_value) in fields {
        let field_path = child_path(path, name);
        match properties.and_then(|p| p.get(name)) {
            Some(property_schema) => validate_node(property_schema, field_value, &field_path, out),
            None => match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    let mut known: Vec<&str> = properties
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    known.sort_unstable();
                    out.push(SchemaViolation {
                        path: field_path,
                        message: format!("unknown field, expected one of: {}", known.join(", ")),
                    });
                }
                Some(extra) => validate_node(extra, field_value, &field_path, out),
                None => {}
            },
        }
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
        assert_eq!(paths, ["baudrate", "bogus", "solar[0].tilt", "serial_port"]);
        assert!(
            violations[0]
                .message
                .contains("must be integer, got string")
        );
        assert!(
            schema
                .validate(&json!({"transport": "tcp", "baudrate": 9600}))
                .is_empty()
        );
    }

    #[test]
    fn refuses_unsupported_keywords() {
        let error =
            JsonSchema::from_value(json!({"properties": {"a": {"pattern": "^x"}}})).unwrap_err();
        assert!(error.to_string().contains("`pattern`"), "{error}");
    }
}
