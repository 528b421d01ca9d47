//! Decoder fuzzing (fault suite): random register images through every built-in map and every
//! SunSpec model layout, random and mangled frames through the JK BMS parser, random and mangled
//! console text through the Pytes parser — over a million inputs in all, from a fixed seed so a
//! failure repeats. Nothing may panic, and no value in a reading may be outside the plausible
//! range of its unit (`solarhub_proto::contract::plausible_range`): garbage on the wire is a
//! missing value, never a number. `SOLARHUB_FAULTS_LONG=1` runs ten times as many.

use std::collections::BTreeMap;
use std::time::Duration;

use solarhub_collector::drivers::codec::decode;
use solarhub_collector::drivers::jkbms::{BatteryStatus, encode_status, parse_status};
use solarhub_collector::drivers::normalize::Normalizer;
use solarhub_collector::drivers::pack::{PackSpec, UnitStatus, pack_reading};
use solarhub_collector::drivers::pytes::{parse_bat, parse_pwr};
use solarhub_collector::drivers::reading::Reading;
use solarhub_collector::drivers::register_map::{BUILTIN_MAPS, builtin_map};
use solarhub_collector::drivers::sunspec::{Layouts, SunSpecReading, decode_model};
use solarhub_proto::contract::{map_field, plausible_range};

/// splitmix64: a fixed, well-mixed sequence, enough to cover bit patterns.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A register word, biased towards the edges where decoders break.
    fn word(&mut self) -> u16 {
        match self.next() % 8 {
            0 => 0,
            1 => 0xFFFF,
            2 => 0x8000,
            3 => 0x7FFF,
            _ => self.next() as u16,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn rounds(short: usize) -> usize {
    if std::env::var("SOLARHUB_FAULTS_LONG").is_ok_and(|v| v == "1") {
        short * 10
    } else {
        short
    }
}

/// The unit of a field, from its canonical definition or its name's suffix (pack, battery and
/// cell fields).
fn unit_of(field: &str) -> Option<&'static str> {
    if let Some(field) = map_field(field) {
        return Some(field.unit);
    }
    let name = field.rsplit('.').next().unwrap_or(field);
    [
        ("_w", "W"),
        ("_v", "V"),
        ("_a", "A"),
        ("_pct", "%"),
        ("_c", "°C"),
        ("_wh", "Wh"),
    ]
    .into_iter()
    .find(|(suffix, _)| name.ends_with(suffix))
    .map(|(_, unit)| unit)
}

fn check_value(source: &str, field: &str, value: f64) {
    assert!(value.is_finite(), "{source}: {field} = {value}");
    if let Some(range) = unit_of(field).and_then(plausible_range) {
        assert!(
            range.contains(&value),
            "{source}: {field} = {value} is outside {range:?}"
        );
    }
}

fn check_reading(source: &str, reading: &Reading) {
    for (field, value) in &reading.fields {
        check_value(source, field, *value);
    }
    for battery in &reading.batteries {
        for (field, value) in &battery.fields {
            check_value(source, field, *value);
        }
        for cell in &battery.cells {
            for (field, value) in &cell.fields {
                check_value(source, field, *value);
            }
        }
    }
}

#[test]
fn random_register_images_through_every_map_make_only_plausible_readings() {
    let mut random = Random(0x5EED_0001);
    for (device_type, _) in BUILTIN_MAPS {
        let map = builtin_map(device_type).unwrap();
        let mut normalizer = Normalizer::default();
        for _ in 0..rounds(150_000) {
            let values: BTreeMap<String, _> = map
                .registers
                .iter()
                .map(|register| {
                    let words: Vec<u16> =
                        (0..register.word_count()).map(|_| random.word()).collect();
                    (
                        register.name.clone(),
                        decode(register, &words, map.word_order),
                    )
                })
                .collect();
            let reading = normalizer.normalize(&map, &values, "dev", "dev.adapter", 0);
            check_reading(device_type, &reading);
        }
    }
}

#[test]
fn random_sunspec_models_make_only_plausible_readings() {
    let layouts = Layouts::builtin();
    let mut random = Random(0x5EED_0002);
    for layout in &layouts.models {
        let length = layout
            .points
            .iter()
            .map(|p| usize::from(p.offset) + usize::from(p.size.unwrap_or(2)))
            .max()
            .unwrap_or(0);
        for _ in 0..rounds(40_000) {
            // Now and then a short model: the device answered fewer registers than the layout.
            let length = if random.below(16) == 0 {
                random.below(length)
            } else {
                length
            };
            let words: Vec<u16> = (0..length).map(|_| random.word()).collect();
            let mut reading = SunSpecReading::default();
            decode_model(layout, &words, &mut reading);
            for (field, value) in &reading.fields {
                check_value(&format!("sunspec {}", layout.name), field, *value);
            }
        }
    }
}

fn pack_spec(batteries: usize, cells: usize) -> PackSpec {
    PackSpec {
        pack_id: "pack".into(),
        adapter_id: "pack.adapter".into(),
        batteries,
        cells_per_battery: cells,
        silence: Duration::from_secs(30),
    }
}

#[test]
fn random_and_mangled_jk_frames_make_only_plausible_readings() {
    let mut random = Random(0x5EED_0003);
    let valid = encode_status(&BatteryStatus {
        cell_voltages_v: vec![3.3; 16],
        power_w: 500.0,
        current_a: 9.5,
        mos_temp_c: 30.0,
        temp1_c: 25.0,
        temp2_c: 26.0,
        soc_pct: 64.0,
        soh_pct: 98.0,
        remaining_ah: 180.0,
        total_ah: 280.0,
        cycles: 120.0,
        pack_voltage_v: 52.8,
    });
    let mut normalizer = Normalizer::default();
    for round in 0..rounds(300_000) {
        let frame: Vec<u8> = if round % 2 == 0 {
            // A real frame with bytes overwritten (noise on the line).
            let mut frame = valid.clone();
            for _ in 0..1 + random.below(8) {
                let at = random.below(frame.len());
                frame[at] = random.next() as u8;
            }
            frame.truncate(frame.len() - random.below(4).min(frame.len()));
            frame
        } else {
            (0..random.below(400))
                .map(|_| random.next() as u8)
                .collect()
        };
        let Some(status) = parse_status(&frame, 16) else {
            continue;
        };
        let units = BTreeMap::from([(1u8, UnitStatus::from(&status))]);
        let reading = pack_reading(&pack_spec(1, 16), &units, &mut normalizer, 0);
        check_reading("jkbms", &reading);
    }
}

#[test]
fn random_and_mangled_pytes_consoles_make_only_plausible_readings() {
    let mut random = Random(0x5EED_0004);
    let words = [
        "Power", "Volt", "Curr", "Tempr", "Tlow", "Thigh", "Vlow", "Vhigh", "Base.St", "Volt.St",
        "Curr.St", "Temp.St", "Coulomb", "Time", "B.V.St", "B.T.St", "Battery", "SOC", "SOH",
        "Normal", "Charge", "Dischg", "Idle", "-", "%", "mV", "mA", "mC", "\r\n", " ", "  ",
        "pylon>", "@", "$$",
    ];
    let mut normalizer = Normalizer::default();
    for _ in 0..rounds(250_000) {
        let mut text = String::new();
        for _ in 0..random.below(60) {
            match random.below(4) {
                0 => text.push_str(&(random.next() as i64 % 100_000_000).to_string()),
                1 => text.push(char::from(random.next() as u8)),
                _ => text.push_str(words[random.below(words.len())]),
            }
            if random.below(3) == 0 {
                text.push(' ');
            }
        }
        let mut unit = parse_pwr(&text);
        parse_bat(&text, &mut unit);
        let units = BTreeMap::from([(1u8, unit)]);
        let reading = pack_reading(&pack_spec(1, 15), &units, &mut normalizer, 0);
        check_reading("pytes", &reading);
    }
}
