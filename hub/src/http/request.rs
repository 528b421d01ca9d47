//! A route's gRPC request made from the HTTP request (path parameters, query, body), and the
//! answer made from the gRPC answer (JSON in the proto3 mapping, or CSV).

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage,
    SerializeOptions,
};
use serde_json::{Map, Value};

use super::errors::ApiError;
use super::routes::{Body, Route, Verb};

/// The query parameter that asks for CSV.
pub const FORMAT: &str = "format";

/// What the caller sent.
pub struct Incoming<'a> {
    pub path: &'a [(String, String)],
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The message field a `Body::Resource` body fills: the request's one message field other than
/// `update_mask`.
pub fn resource_field(input: &MessageDescriptor) -> Option<FieldDescriptor> {
    input
        .fields()
        .find(|f| f.name() != "update_mask" && matches!(f.kind(), Kind::Message(_)))
}

/// The request of `route` (whose method takes `input`) from what the caller sent.
pub fn build(
    route: &Route,
    input: &MessageDescriptor,
    incoming: &Incoming<'_>,
) -> Result<DynamicMessage, ApiError> {
    let mut json = Map::new();
    let resource = match route.body {
        Body::Resource => Some(resource_field(input).ok_or_else(|| {
            ApiError::internal(format!("{} has no resource field", input.name()))
        })?),
        _ => None,
    };
    match route.body {
        Body::None => {}
        Body::Whole => json = body_object(incoming.body)?,
        Body::Resource => {
            let resource = resource.as_ref().expect("set above");
            let body = body_object(incoming.body)?;
            if route.verb == Verb::Patch {
                let Kind::Message(message) = resource.kind() else {
                    unreachable!("a resource field is a message");
                };
                let mut mask = Vec::new();
                for key in body.keys() {
                    let field = message
                        .get_field_by_json_name(key)
                        .or_else(|| message.get_field_by_name(key))
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                key.clone(),
                                format!("{} has no field {key}", message.name()),
                            )
                        })?;
                    mask.push(field.json_name().to_owned());
                }
                json.insert("updateMask".into(), Value::String(mask.join(",")));
            }
            json.insert(resource.json_name().to_owned(), Value::Object(body));
        }
    }
    for (name, value) in incoming.path {
        // A path parameter names a field of the request, or of the resource it carries (an
        // update's `adapter_type` is the resource's key, not the request's resource field).
        if let Some(field) = input.get_field_by_name(name).filter(settable) {
            json.insert(field.json_name().to_owned(), typed(&field, name, value)?);
        } else if let Some(resource) = &resource
            && let Kind::Message(message) = resource.kind()
            && let Some(field) = message.get_field_by_name(name)
        {
            let object = json
                .entry(resource.json_name())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(object) = object {
                object.insert(field.json_name().to_owned(), typed(&field, name, value)?);
            }
        } else {
            return Err(ApiError::internal(format!(
                "route {} names {name}, which {} does not have",
                route.path,
                input.name()
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (name, value) in incoming.query {
        if name == FORMAT {
            continue;
        }
        if !seen.insert(name.as_str()) {
            return Err(ApiError::bad_request(
                name.clone(),
                format!("{name} is given twice"),
            ));
        }
        let path = query_path(input, name).ok_or_else(|| {
            ApiError::bad_request(
                name.clone(),
                format!(
                    "{name} is not a parameter of this route (it takes: {})",
                    query_parameters(route, input)
                        .iter()
                        .map(|(name, _)| name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let mut object = &mut json;
        for field in &path[..path.len() - 1] {
            let entry = object
                .entry(field.json_name())
                .or_insert_with(|| Value::Object(Map::new()));
            object = match entry {
                Value::Object(object) => object,
                _ => return Err(ApiError::bad_request(name.clone(), "given twice")),
            };
        }
        let last = path.last().expect("a query path has a field");
        object.insert(last.json_name().to_owned(), typed(last, name, value)?);
    }
    DynamicMessage::deserialize_with_options(
        input.clone(),
        Value::Object(json),
        &DeserializeOptions::new(),
    )
    .map_err(|error| {
        ApiError::bad_request(
            "body",
            format!("the request does not fit {}: {error}", input.name()),
        )
    })
}

/// The body as a JSON object (an empty body is an empty object).
fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::bad_request(
            "body",
            "the body must be a JSON object",
        )),
        Err(error) => Err(ApiError::bad_request(
            "body",
            format!("the body is not JSON: {error}"),
        )),
    }
}

/// The fields a query parameter names: `name` itself, `a.b` nested, or `from`/`to` of `range`.
fn query_path(input: &MessageDescriptor, name: &str) -> Option<Vec<FieldDescriptor>> {
    named(input, name).or_else(|| {
        let range = input.get_field_by_name("range")?;
        let Kind::Message(range_message) = range.kind() else {
            return None;
        };
        let inner = range_message.get_field_by_name(name)?;
        settable(&inner).then(|| vec![range.clone(), inner])
    })
}

/// The fields of `name` (dots for nesting), when the last one can be given as text.
fn named(input: &MessageDescriptor, name: &str) -> Option<Vec<FieldDescriptor>> {
    let mut message = input.clone();
    let mut path = Vec::new();
    for part in name.split('.') {
        if let Some(last) = path.last() {
            let Kind::Message(inner) = FieldDescriptor::kind(last) else {
                return None;
            };
            message = inner;
        }
        let field = message
            .get_field_by_name(part)
            .or_else(|| message.get_field_by_json_name(part))?;
        path.push(field);
    }
    settable(path.last()?).then_some(path)
}

/// Whether a query parameter can give `field` (one scalar, enum or timestamp).
fn settable(field: &FieldDescriptor) -> bool {
    if field.is_list() || field.is_map() {
        return false;
    }
    match field.kind() {
        Kind::Message(message) => message.full_name() == "google.protobuf.Timestamp",
        _ => true,
    }
}

/// The query parameters `route` takes: the request's settable fields not in its path, with
/// `range`'s as `from` and `to`.
pub fn query_parameters(
    route: &Route,
    input: &MessageDescriptor,
) -> Vec<(String, FieldDescriptor)> {
    if route.body != Body::None {
        return Vec::new();
    }
    let mut out = Vec::new();
    for field in input.fields() {
        if route.path.contains(&format!("{{{}}}", field.name())) {
            continue;
        }
        if settable(&field) {
            out.push((field.name().to_owned(), field));
        } else if field.name() == "range"
            && let Kind::Message(range) = field.kind()
        {
            for inner in range.fields() {
                out.push((inner.name().to_owned(), inner));
            }
        }
    }
    out
}

/// A parameter's text as the JSON the field takes.
fn typed(field: &FieldDescriptor, name: &str, text: &str) -> Result<Value, ApiError> {
    let bad =
        |what: &str| ApiError::bad_request(name, format!("{name} must be {what}, not {text:?}"));
    Ok(match field.kind() {
        Kind::Bool => match text {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64 => Value::from(text.parse::<i64>().map_err(|_| bad("a whole number"))?),
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => {
            Value::from(text.parse::<u64>().map_err(|_| bad("a whole number"))?)
        }
        Kind::Double | Kind::Float => {
            let number: f64 = text.parse().map_err(|_| bad("a number"))?;
            serde_json::Number::from_f64(number)
                .map(Value::Number)
                .ok_or_else(|| bad("a finite number"))?
        }
        Kind::Message(_) => {
            // A timestamp: RFC 3339, checked here so the error names the parameter.
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|_| bad("an RFC 3339 time (2025-06-01T00:00:00Z)"))?;
            Value::String(text.to_owned())
        }
        _ => Value::String(text.to_owned()),
    })
}

/// The proto3 JSON mapping of an answer (the names grpcurl shows).
pub fn json(message: &DynamicMessage) -> Result<Value, ApiError> {
    message
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .map_err(|error| ApiError::internal(format!("encoding the answer: {error}")))
}

/// CSV of an answer's rows (its first repeated message field): a header of every column in the
/// message's field order, nested messages flattened to `a.b`.
pub fn csv(answer: &DynamicMessage) -> Result<Vec<u8>, ApiError> {
    let json = json(answer)?;
    let rows_field = answer
        .descriptor()
        .fields()
        .find(|f| f.is_list() && matches!(f.kind(), Kind::Message(_)));
    let (rows, mut header): (&[Value], Vec<String>) = match &rows_field {
        Some(field) => {
            let Kind::Message(row) = field.kind() else {
                unreachable!("matched above");
            };
            let mut header = Vec::new();
            columns(&row, "", &mut header);
            let rows = json
                .get(field.json_name())
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            (rows, header)
        }
        None => (&[], Vec::new()),
    };
    let flat: Vec<Vec<(String, String)>> = rows
        .iter()
        .map(|row| {
            let mut cells = Vec::new();
            flatten("", row, &mut cells);
            cells
        })
        .collect();
    for row in &flat {
        for (key, _) in row {
            if !header.contains(key) {
                header.push(key.clone());
            }
        }
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    let fail = |error: csv::Error| ApiError::internal(format!("writing CSV: {error}"));
    writer.write_record(&header).map_err(fail)?;
    for row in &flat {
        let record = header.iter().map(|key| {
            row.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        });
        writer.write_record(record).map_err(fail)?;
    }
    writer
        .into_inner()
        .map_err(|error| ApiError::internal(format!("writing CSV: {error}")))
}

/// The CSV columns of a message, in field order (a timestamp is one column).
fn columns(message: &MessageDescriptor, prefix: &str, out: &mut Vec<String>) {
    for field in message.fields() {
        let name = if prefix.is_empty() {
            field.json_name().to_owned()
        } else {
            format!("{prefix}.{}", field.json_name())
        };
        match field.kind() {
            Kind::Message(inner)
                if !field.is_list()
                    && !field.is_map()
                    && !inner.full_name().starts_with("google.protobuf.") =>
            {
                columns(&inner, &name, out)
            }
            _ => out.push(name),
        }
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, inner, out);
            }
        }
        Value::String(text) => out.push((prefix.to_owned(), text.clone())),
        Value::Null => out.push((prefix.to_owned(), String::new())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}
