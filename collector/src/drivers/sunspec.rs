//! The generic SunSpec driver: find the `SunS` marker at 0, 40000 or 50000, walk the model chain, and
//! read the models it knows (common 1, inverter 101-103 / 111-113, meter 201-204 / 211-214, storage
//! 124, battery 802) with their scale factors. A point holding its "not implemented" value is
//! missing, never a number. The model layouts are data (`maps/sunspec_models.json`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tokio_modbus::client::Context;

use crate::bus::modbus_poll::{RequestError, read_request};
use crate::bus::read_plan::ReadRequest;
use crate::drivers::register_map::{MAX_REGISTERS_PER_READ, RegisterKind};

/// "SunS" in two registers.
pub const MARKER: [u16; 2] = [0x5375, 0x6E53];
/// The model id that ends the chain.
pub const END_OF_CHAIN: u16 = 0xFFFF;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointType {
    Uint16,
    Int16,
    Enum16,
    Acc32,
    Uint32,
    Float32,
    Sunssf,
    String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub name: String,
    pub offset: u16,
    #[serde(rename = "type")]
    pub point_type: PointType,
    /// Registers of a string point.
    pub size: Option<u16>,
    /// The scale-factor point of this model that scales this one.
    pub sf: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLayout {
    pub ids: Vec<u16>,
    pub name: String,
    pub points: Vec<Point>,
    /// Canonical field → point.
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layouts {
    #[serde(default)]
    pub description: String,
    pub bases: Vec<u16>,
    pub models: Vec<ModelLayout>,
}

impl Layouts {
    pub fn builtin() -> Layouts {
        // Checked by a unit test; the file is part of the binary.
        serde_json::from_str(include_str!("../../maps/sunspec_models.json")).unwrap_or(Layouts {
            description: String::new(),
            bases: vec![0, 40000, 50000],
            models: Vec::new(),
        })
    }

    pub fn layout(&self, id: u16) -> Option<&ModelLayout> {
        self.models.iter().find(|m| m.ids.contains(&id))
    }
}

/// A model found on the device: its id, first data register and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundModel {
    pub id: u16,
    pub start: u16,
    pub length: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SunSpecError {
    #[error("no SunSpec marker at registers {0:?}")]
    NoMarker(Vec<u16>),
    #[error("reading the model chain failed: {0}")]
    Chain(RequestError),
}

/// Finds the marker and walks the model chain.
pub async fn discover(
    context: &mut Context,
    layouts: &Layouts,
    timeout: Duration,
) -> Result<(u16, Vec<FoundModel>), SunSpecError> {
    let mut base = None;
    for candidate in &layouts.bases {
        let request = ReadRequest {
            kind: RegisterKind::Holding,
            start: *candidate,
            count: 2,
        };
        if let Ok(words) = read_request(context, &request, timeout).await
            && words == MARKER
        {
            base = Some(*candidate);
            break;
        }
    }
    let base = base.ok_or_else(|| SunSpecError::NoMarker(layouts.bases.clone()))?;
    let mut models = Vec::new();
    let mut address = u32::from(base) + 2;
    while models.len() < 64 && address + 2 <= 0xFFFF {
        let request = ReadRequest {
            kind: RegisterKind::Holding,
            start: address as u16,
            count: 2,
        };
        let header = read_request(context, &request, timeout)
            .await
            .map_err(SunSpecError::Chain)?;
        if header[0] == END_OF_CHAIN || header[1] == 0 {
            break;
        }
        models.push(FoundModel {
            id: header[0],
            start: (address + 2) as u16,
            length: header[1],
        });
        address += 2 + u32::from(header[1]);
    }
    Ok((base, models))
}

/// What one poll gave: canonical fields, text points, and points that held "not implemented".
#[derive(Debug, Default, PartialEq)]
pub struct SunSpecReading {
    pub fields: BTreeMap<String, f64>,
    /// Fields whose value was not plausible for their unit: left out.
    pub out_of_range: Vec<String>,
    pub text: BTreeMap<String, String>,
    pub not_implemented: Vec<String>,
    pub failures: Vec<RequestError>,
}

fn raw_value(point: &Point, words: &[u16]) -> Option<f64> {
    let word = |i: usize| words.get(usize::from(point.offset) + i).copied();
    let pair = || Some((u32::from(word(0)?) << 16) | u32::from(word(1)?));
    match point.point_type {
        PointType::Uint16 | PointType::Enum16 => word(0).filter(|w| *w != 0xFFFF).map(f64::from),
        PointType::Int16 | PointType::Sunssf => word(0)
            .filter(|w| *w != 0x8000)
            .map(|w| f64::from(w as i16)),
        PointType::Acc32 => pair().filter(|v| *v != 0).map(f64::from),
        PointType::Uint32 => pair().filter(|v| *v != 0xFFFF_FFFF).map(f64::from),
        PointType::Float32 => pair()
            .map(f32::from_bits)
            .filter(|v| v.is_finite())
            .map(f64::from),
        PointType::String => None,
    }
}

fn text_value(point: &Point, words: &[u16]) -> Option<String> {
    let size = usize::from(point.size.unwrap_or(1));
    let start = usize::from(point.offset);
    let bytes: Vec<u8> = words
        .get(start..start + size)?
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect();
    let text: String = bytes
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| char::from(*b))
        .collect();
    let text = text.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Decodes one model's registers into its canonical fields.
pub fn decode_model(layout: &ModelLayout, words: &[u16], reading: &mut SunSpecReading) {
    let mut values: BTreeMap<&str, f64> = BTreeMap::new();
    for point in &layout.points {
        if point.point_type == PointType::String {
            if let Some(text) = text_value(point, words) {
                reading
                    .text
                    .insert(format!("{}.{}", layout.name, point.name), text);
            }
            continue;
        }
        let Some(raw) = raw_value(point, words) else {
            continue;
        };
        let value = match &point.sf {
            Some(sf) => {
                let Some(sf_point) = layout.points.iter().find(|p| &p.name == sf) else {
                    continue;
                };
                // SunSpec scale factors are -10..=10; anything else is a bad read, and
                // 10^32767 is infinity (decoder fuzzing).
                let Some(exponent) = raw_value(sf_point, words).filter(|e| e.abs() <= 10.0) else {
                    continue;
                };
                let scaled = raw * 10f64.powi(exponent as i32);
                crate::drivers::codec::round_to_resolution(scaled, 10f64.powi(exponent as i32))
            }
            None => raw,
        };
        values.insert(point.name.as_str(), value);
    }
    for (field, point) in &layout.fields {
        match values.get(point.as_str()) {
            Some(value) => {
                let plausible = solarhub_proto::contract::map_field(field)
                    .and_then(|f| solarhub_proto::contract::plausible_range(f.unit))
                    .is_none_or(|range| range.contains(value));
                if plausible && value.is_finite() {
                    reading.fields.entry(field.clone()).or_insert(*value);
                } else {
                    reading.out_of_range.push(field.clone());
                }
            }
            None => reading
                .not_implemented
                .push(format!("{}.{point}", layout.name)),
        }
    }
}

/// Reads every model of the chain that has a layout.
pub async fn poll(
    context: &mut Context,
    layouts: &Layouts,
    models: &[FoundModel],
    timeout: Duration,
) -> SunSpecReading {
    let mut reading = SunSpecReading::default();
    for model in models {
        let Some(layout) = layouts.layout(model.id) else {
            continue;
        };
        let mut words = Vec::with_capacity(usize::from(model.length));
        let mut offset = 0u16;
        let mut failed = false;
        while offset < model.length {
            let count = (model.length - offset).min(MAX_REGISTERS_PER_READ);
            let request = ReadRequest {
                kind: RegisterKind::Holding,
                start: model.start + offset,
                count,
            };
            match read_request(context, &request, timeout).await {
                Ok(block) => words.extend(block),
                Err(error) => {
                    reading.failures.push(error);
                    failed = true;
                    break;
                }
            }
            offset += count;
        }
        if !failed {
            decode_model(layout, &words, &mut reading);
        }
    }
    reading
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_layouts_load() {
        let layouts: Layouts =
            serde_json::from_str(include_str!("../../maps/sunspec_models.json")).unwrap();
        for id in [
            1, 101, 102, 103, 111, 112, 113, 201, 202, 203, 204, 211, 212, 213, 214, 124, 802,
        ] {
            assert!(layouts.layout(id).is_some(), "model {id}");
        }
        for model in &layouts.models {
            for point in &model.points {
                if let Some(sf) = &point.sf {
                    assert!(
                        model
                            .points
                            .iter()
                            .any(|p| &p.name == sf && p.point_type == PointType::Sunssf),
                        "{}.{}",
                        model.name,
                        point.name
                    );
                }
            }
            for point in model.fields.values() {
                assert!(
                    model.points.iter().any(|p| &p.name == point),
                    "{}: {point}",
                    model.name
                );
            }
        }
    }
}
