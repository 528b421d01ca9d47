//! A simulated SunSpec device: the `SunS` marker at a chosen base, then a chain of models laid out
//! from the same model table the driver reads (`maps/sunspec_models.json`), holding given point
//! values (fixed, or following a [`DeviceModel`] so PV follows the sun and the battery its
//! charge); every other point of those models holds its "not implemented" value.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tokio_modbus::ExceptionCode;

use super::SimUnit;
use super::model::DeviceModel;
use crate::drivers::register_map::RegisterKind;
use crate::drivers::sunspec::{END_OF_CHAIN, Layouts, MARKER, PointType};

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
    image: Mutex<BTreeMap<u16, u16>>,
    /// When set, the inverter (103) and storage (802) points follow this model.
    live: Option<Mutex<Live>>,
}

struct Live {
    model: DeviceModel,
    at: DateTime<Utc>,
    base: u16,
    models: Vec<SimModel>,
    layouts: Layouts,
}

impl SunSpecSim {
    /// A device whose points hold `models`' values.
    pub fn new(base: u16, models: &[SimModel], layouts: &Layouts) -> SunSpecSim {
        SunSpecSim {
            image: Mutex::new(render(base, models, layouts)),
            live: None,
        }
    }

    /// An inverter with storage whose AC, DC, energy and battery points follow `model` (PV from
    /// the sun in its timezone, SOC from its battery power), read at the time they are asked for.
    pub fn following(
        base: u16,
        model: DeviceModel,
        models: Vec<SimModel>,
        layouts: Layouts,
    ) -> SunSpecSim {
        SunSpecSim {
            image: Mutex::new(render(base, &models, &layouts)),
            live: Some(Mutex::new(Live {
                model,
                at: Utc::now(),
                base,
                models,
                layouts,
            })),
        }
    }

    /// Brings the live points to `now`.
    fn refresh(&self, now: DateTime<Utc>) {
        let Some(live) = &self.live else { return };
        let Ok(mut live) = live.lock() else { return };
        let from = live.at;
        live.model.advance(from, now);
        live.at = now;
        let v = live.model.values(now);
        let get = |name: &str| v.get(name).copied().unwrap_or(0.0);
        let pv = get("pv1_power_w") + get("pv2_power_w");
        let battery = get("battery_power_w");
        for model in &mut live.models {
            let points: &[(&str, f64)] = match model.id {
                103 => &[
                    ("W", (pv + battery).max(0.0).round()),
                    ("DCW", pv.round()),
                    ("WH", (get("pv_total_kwh") * 1000.0).round()),
                ],
                802 => &[
                    ("SoC", get("battery_soc_pct")),
                    ("V", get("battery_voltage_v")),
                    ("A", get("battery_current_a")),
                    ("W", battery.round()),
                ],
                _ => &[],
            };
            for (name, value) in points {
                model.values.insert((*name).to_owned(), *value);
            }
        }
        let image = render(live.base, &live.models, &live.layouts);
        if let Ok(mut current) = self.image.lock() {
            *current = image;
        }
    }
}

/// The register image of `models` at `base`.
fn render(base: u16, models: &[SimModel], layouts: &Layouts) -> BTreeMap<u16, u16> {
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
                            (Some(v), _) => (v / scaled_unit(point.sf.as_deref())).round() as u32,
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
                            .map(|v| (v / scaled_unit(point.sf.as_deref())).round() as i16 as u16)
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
    image
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
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<u16>>, ExceptionCode> {
        if kind != RegisterKind::Holding {
            return Err(ExceptionCode::IllegalFunction);
        }
        self.refresh(now);
        let image = self
            .image
            .lock()
            .map_err(|_| ExceptionCode::ServerDeviceFailure)?;
        Ok(Some(
            (0..count)
                .map(|i| image.get(&start.wrapping_add(i)).copied().unwrap_or(0))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// The demo's SunSpec inverter follows the sun: no PV at midnight, PV at noon.
    #[test]
    fn a_following_inverter_makes_no_pv_at_night() {
        let tz = chrono_tz::Asia::Karachi;
        let model = |id, length| SimModel {
            id,
            length,
            values: BTreeMap::new(),
            text: BTreeMap::new(),
        };
        let sim = SunSpecSim::following(
            40000,
            DeviceModel::inverter(tz, 6000.0, 40),
            vec![model(103, 50), model(802, 62)],
            Layouts::builtin(),
        );
        let dc_power = |at: DateTime<Utc>| {
            sim.refresh(at);
            let live = sim.live.as_ref().unwrap().lock().unwrap();
            live.models[0].values["DCW"]
        };
        let midnight = tz.with_ymd_and_hms(2025, 6, 15, 0, 0, 0).unwrap().to_utc();
        let noon = tz.with_ymd_and_hms(2025, 6, 15, 12, 0, 0).unwrap().to_utc();
        assert_eq!(dc_power(midnight), 0.0);
        assert!(dc_power(noon) > 1000.0);
    }
}
