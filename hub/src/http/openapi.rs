//! The OpenAPI 3.1 document of the HTTP API (`GET /api/openapi.json`), made from the route table
//! and the protos' descriptors: each route's parameters are its request's fields, each body and
//! answer the JSON Schema of its message in the proto3 JSON mapping. Nothing is written twice.

use std::collections::BTreeMap;

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Value, json};

use super::request::{query_parameters, resource_field};
use super::routes::{Answer, Body, Verb, routes};
use super::session::CSRF_HEADER;

/// The document.
pub fn document(pool: &DescriptorPool) -> Value {
    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    let mut paths: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    for route in routes() {
        let Some(method) = super::gateway::method_in(pool, route.rpc) else {
            continue;
        };
        let input = method.input();
        let output = method.output();
        let mut parameters = Vec::new();
        for name in path_parameters(route.path) {
            parameters.push(json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": {"type": "string"},
            }));
        }
        for (name, field) in query_parameters(route, &input) {
            parameters.push(json!({
                "name": name,
                "in": "query",
                "required": false,
                "schema": field_schema(&field, &mut schemas),
            }));
        }
        if route.answer == Answer::JsonOrCsv {
            parameters.push(json!({
                "name": "format",
                "in": "query",
                "required": false,
                "description": "`csv` for a CSV download of the rows",
                "schema": {"type": "string", "enum": ["json", "csv"]},
            }));
        }
        let mut operation = json!({
            "operationId": operation_id(route.verb.as_str(), route.path),
            "summary": route.summary,
            "description": format!("Answered by gRPC `solarhub.v1.{}`.", route.rpc),
            "tags": [route.rpc.split('/').next().unwrap_or_default()],
            "parameters": parameters,
            "responses": responses(route.answer, &output, &mut schemas, route.verb, route.body),
        });
        let body_schema = match route.body {
            Body::None => None,
            Body::Whole => Some(message_ref(&input, &mut schemas)),
            Body::Resource => resource_field(&input).and_then(|field| match field.kind() {
                Kind::Message(message) => Some(message_ref(&message, &mut schemas)),
                _ => None,
            }),
        };
        if let Some(schema) = body_schema {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema}},
            });
        }
        if route.verb.changes() {
            operation["description"] = json!(format!(
                "{} With the session cookie, send the session's `{CSRF_HEADER}` header.",
                operation["description"].as_str().unwrap_or_default()
            ));
        }
        paths
            .entry(route.path.to_owned())
            .or_default()
            .insert(route.verb.as_str().into(), operation);
    }
    paths.insert("/api/login".into(), login_paths());
    paths.insert("/api/session".into(), session_paths());
    paths.insert("/api/logout".into(), logout_paths());
    schemas.insert("Error".into(), error_schema());
    schemas.insert("Session".into(), session_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "solarhub hub HTTP/JSON API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The gRPC API's services as HTTP routes; JSON is the proto3 JSON mapping of the same messages.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": super::session::SESSION_COOKIE},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
    })
}

/// A unique name of a route: `get_api_systems_system_id_now`.
fn operation_id(verb: &str, path: &str) -> String {
    let words: Vec<&str> = path
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .collect();
    format!("{verb}_{}", words.join("_"))
}

/// `{id}` names of a path.
pub fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

fn error_ref() -> Value {
    json!({"$ref": "#/components/schemas/Error"})
}

fn responses(
    answer: Answer,
    output: &MessageDescriptor,
    schemas: &mut BTreeMap<String, Value>,
    verb: Verb,
    body: Body,
) -> Value {
    let schema = message_ref(output, schemas);
    let ok = match answer {
        Answer::Events => json!({
            "description": "Server-Sent Events: `now` events whose data is the message as JSON",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }),
        Answer::Json => json!({
            "description": "The answer",
            "content": {"application/json": {"schema": schema}},
        }),
        Answer::JsonOrCsv => json!({
            "description": "The answer, or its rows as CSV with `format=csv`",
            "content": {
                "application/json": {"schema": schema},
                "text/csv": {"schema": {"type": "string"}},
            },
        }),
    };
    let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": error_ref()}}});
    let success = if verb == Verb::Post && body == Body::Resource {
        "201"
    } else {
        "200"
    };
    json!({
        success: ok,
        "400": error("A bad request: the field and why"),
        "401": error("No valid credentials"),
        "403": error("The caller's role may not do this (or a missing CSRF token)"),
        "404": error("An unknown id, with its hierarchy context"),
        "409": error("A conflict: already exists, has children, or a rule of the hierarchy"),
        "503": error("The database is not reachable now"),
    })
}

fn message_ref(message: &MessageDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    if let Some(schema) = well_known(message) {
        return schema;
    }
    let name = message.full_name().to_owned();
    if !schemas.contains_key(&name) {
        // Inserted first so a message that contains itself ends.
        schemas.insert(name.clone(), json!({}));
        let mut properties = serde_json::Map::new();
        for field in message.fields() {
            properties.insert(field.json_name().to_owned(), field_schema(&field, schemas));
        }
        schemas.insert(
            name.clone(),
            json!({"type": "object", "properties": properties, "additionalProperties": false}),
        );
    }
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The proto3 JSON mapping of the well-known types the protos use.
fn well_known(message: &MessageDescriptor) -> Option<Value> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.FieldMask" => {
            json!({"type": "string", "description": "comma-separated field paths"})
        }
        "google.protobuf.Struct" => json!({"type": "object"}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"})
        }
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => {
            json!({"type": ["number", "null"]})
        }
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({"type": ["string", "null"]})
        }
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => {
            json!({"type": ["integer", "null"]})
        }
        "google.protobuf.StringValue" | "google.protobuf.BytesValue" => {
            json!({"type": ["string", "null"]})
        }
        "google.protobuf.BoolValue" => json!({"type": ["boolean", "null"]}),
        _ => return None,
    })
}

fn field_schema(field: &FieldDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return json!({"type": "object"});
        };
        let value = entry.map_entry_value_field();
        return json!({"type": "object", "additionalProperties": single(&value, schemas)});
    }
    let one = single(field, schemas);
    if field.is_list() {
        json!({"type": "array", "items": one})
    } else if field.supports_presence() && !matches!(field.kind(), Kind::Message(_)) {
        // `optional` scalars: absent is unknown.
        json!({"anyOf": [one, {"type": "null"}]})
    } else {
        one
    }
}

fn single(field: &FieldDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    match field.kind() {
        Kind::Double | Kind::Float => {
            json!({"anyOf": [{"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]})
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Uint32 | Kind::Fixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": "string", "format": "int64"})
        }
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Kind::Enum(enumeration) => json!({
            "type": "string",
            "enum": enumeration.values().map(|v| v.name().to_owned()).collect::<Vec<_>>(),
        }),
        Kind::Message(message) => message_ref(&message, schemas),
    }
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "the gRPC code's name"},
                "message": {"type": "string"},
                "field": {"type": "string"},
                "violations": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "description": {"type": "string"}},
                }},
                "resource": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "id": {"type": "string"},
                        "parents": {"type": "string"},
                    },
                },
            },
        }},
    })
}

fn session_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "principal": {"type": "string"},
            "role": {"type": "string"},
            "csrfToken": {"type": "string"},
            "authRequired": {"type": "boolean"},
            "expiresIn": {"type": "integer"},
        },
    })
}

fn session_ref() -> Value {
    json!({"description": "The session", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Session"}}}})
}

fn login_paths() -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    out.insert("post".into(), json!({
        "operationId": "login",
        "summary": "Log in with a token: sets the HttpOnly session cookie",
        "security": [],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "type": "object", "required": ["token"], "properties": {"token": {"type": "string"}},
        }}}},
        "responses": {
            "200": session_ref(),
            "400": {"description": "No token", "content": {"application/json": {"schema": error_ref()}}},
            "401": {"description": "Not a valid token", "content": {"application/json": {"schema": error_ref()}}},
            "403": {"description": "A collector's token", "content": {"application/json": {"schema": error_ref()}}},
        },
    }));
    out
}

fn session_paths() -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    out.insert("get".into(), json!({
        "operationId": "session",
        "summary": "The page's session and its CSRF token",
        "responses": {
            "200": session_ref(),
            "401": {"description": "Not logged in", "content": {"application/json": {"schema": error_ref()}}},
        },
    }));
    out
}

fn logout_paths() -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    out.insert("post".into(), json!({
        "operationId": "logout",
        "summary": format!("End the session (send `{CSRF_HEADER}`)"),
        "responses": {
            "204": {"description": "Logged out; the cookie is cleared"},
            "403": {"description": "No CSRF token", "content": {"application/json": {"schema": error_ref()}}},
        },
    }));
    out
}
