//! A simulated SunSpec device: the `SunS` marker at a chosen base, then a chain of models laid out
//! from the same model table the driver reads (`maps/sunspec_models.json`), holding given point
//! values; every other point of those models holds its "not implemented" value.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tokio_modbus::ExceptionCode;

use super::SimUnit;
use crate::register_map::RegisterKind;
use crate::sunspec::{END_OF_CHAIN, Layouts, MARKER, PointType};

/// The scale factor the simulator gives a point's values: whole watts and watt-hours, hundredths of
/// everything else.
fn scale_factor(sf_point: &str) -> i16 {
    match sf_point {
        "W_SF" | "WH_SF" | "DCW_SF" | "TotWh_SF" => 0,
        _ => -2,
    }
}

/// One model to serve: its id, length, and the values of its points.
pub struct SimModel {
    pub id: u16,
    pub length: u16,
    pub values: BTreeMap<String, f64>,
    pub text: BTreeMap<String, String>,
}

pub struct SunSpecSim {
    image: BTreeMap<u16, u16>,
}

impl SunSpecSim {
    pub fn new(base: u16, models: &[SimModel], layouts: &Layouts) -> SunSpecSim {
        let mut image = BTreeMap::new();
        image.insert(base, MARKER[0]);
        image.insert(base + 1, MARKER[1]);
        let mut address = base + 2;
        for model in models {
            image.insert(address, model.id);
            image.insert(address + 1, model.length);
            let start = address + 2;
            let mut words = vec![0u16; usize::from(model.length)];
            if let Some(layout) = layouts.layout(model.id) {
                for point in &layout.points {
                    let at = usize::from(point.offset);
                    let value = model.values.get(&point.name).copied();
                    match point.point_type {
                        PointType::Sunssf => words[at] = scale_factor(&point.name) as u16,
                        PointType::String => {
                            let text = model.text.get(&point.name).cloned().unwrap_or_default();
                            let mut bytes: Vec<u8> = text.into_bytes();
                            bytes.resize(usize::from(point.size.unwrap_or(1)) * 2, 0);
                            for (i, pair) in bytes.chunks(2).enumerate() {
                                words[at + i] = u16::from_be_bytes([pair[0], pair[1]]);
                            }
                        }
                        PointType::Float32 => {
                            let bits = value.map(|v| (v as f32).to_bits()).unwrap_or(0x7FC0_0000);
                            words[at] = (bits >> 16) as u16;
                            words[at + 1] = bits as u16;
                        }
                        PointType::Acc32 | PointType::Uint32 => {
                            let raw = match (value, point.point_type) {
                                (Some(v), _) => {
                                    (v / scaled_unit(point.sf.as_deref())).round() as u32
                                }
                                (None, PointType::Acc32) => 0,
                                (None, _) => 0xFFFF_FFFF,
                            };
                            words[at] = (raw >> 16) as u16;
                            words[at + 1] = raw as u16;
                        }
                        PointType::Uint16 | PointType::Enum16 => {
                            words[at] = value
                                .map(|v| (v / scaled_unit(point.sf.as_deref())).round() as u16)
                                .unwrap_or(0xFFFF);
                        }
                        PointType::Int16 => {
                            words[at] = value
                                .map(|v| {
                                    (v / scaled_unit(point.sf.as_deref())).round() as i16 as u16
                                })
                                .unwrap_or(0x8000);
                        }
                    }
                }
            }
            for (offset, word) in words.into_iter().enumerate() {
                image.insert(start + offset as u16, word);
            }
            address = start + model.length;
        }
        image.insert(address, END_OF_CHAIN);
        image.insert(address + 1, 0);
        SunSpecSim { image }
    }
}

fn scaled_unit(sf_point: Option<&str>) -> f64 {
    sf_point
        .map(|sf| 10f64.powi(i32::from(scale_factor(sf))))
        .unwrap_or(1.0)
}

impl SimUnit for SunSpecSim {
    fn read_registers(
        &self,
        kind: RegisterKind,
        start: u16,
        count: u16,
        _now: DateTime<Utc>,
    ) -> Result<Option<Vec<u16>>, ExceptionCode> {
        if kind != RegisterKind::Holding {
            return Err(ExceptionCode::IllegalFunction);
        }
        Ok(Some(
            (0..count)
                .map(|i| self.image.get(&start.wrapping_add(i)).copied().unwrap_or(0))
                .collect(),
        ))
    }
}
