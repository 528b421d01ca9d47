//! Registers ↔ values: decoding what a device sent, and encoding values the simulator serves. One
//! place for both directions, so the simulator cannot drift from the collector's reading of a map.

use crate::drivers::register_map::{Register, ValueType};
use crate::drivers::words::{WordOrder, combine, split};

/// What one register held.
#[derive(Debug, Clone, PartialEq)]
pub enum RegisterValue {
    /// A number: the raw integer and the scaled value.
    Number {
        raw: i64,
        value: f64,
    },
    /// The device's "not available" marker for this register.
    Sentinel {
        raw: i64,
    },
    Text(String),
}

/// Decodes `words` (exactly `register.word_count()` of them).
pub fn decode(register: &Register, words: &[u16], order: WordOrder) -> RegisterValue {
    let raw: i64 = match register.value_type {
        ValueType::U16 => i64::from(words[0]),
        ValueType::S16 => i64::from(words[0] as i16),
        ValueType::U32 => i64::from(combine(words, order)),
        ValueType::S32 => i64::from(combine(words, order) as i32),
        ValueType::Ascii => {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            let text: String = bytes
                .iter()
                .take_while(|b| **b != 0)
                .map(|b| char::from(*b))
                .collect();
            return RegisterValue::Text(text.trim().to_owned());
        }
    };
    if register.is_sentinel(raw) {
        return RegisterValue::Sentinel { raw };
    }
    RegisterValue::Number {
        raw,
        value: round_to_resolution(raw as f64 * register.scale, register.scale),
    }
}

/// Rounds away the binary noise of `raw × scale` (51.480000000000004 → 51.48) without losing any of
/// the register's resolution.
pub fn round_to_resolution(value: f64, resolution: f64) -> f64 {
    // The fewest decimals that still write the resolution exactly (0.1 → 1, 1.25 → 2, 0.00125 → 5).
    let resolution = resolution.abs();
    let decimals = (0..=9)
        .find(|d| {
            let scaled = resolution * 10f64.powi(*d);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(9);
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

/// The raw integer a value is sent as: rounded to the register's resolution, clamped to its type.
pub fn raw_for(register: &Register, value: f64) -> i64 {
    let raw = (value / register.scale).round();
    let (min, max) = match register.value_type {
        ValueType::U16 => (0.0, f64::from(u16::MAX)),
        ValueType::S16 => (f64::from(i16::MIN), f64::from(i16::MAX)),
        ValueType::U32 => (0.0, f64::from(u32::MAX)),
        ValueType::S32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        ValueType::Ascii => (0.0, 0.0),
    };
    raw.clamp(min, max) as i64
}

/// The words that carry raw integer `raw` in `register`.
pub fn encode_raw(register: &Register, raw: i64, order: WordOrder) -> Vec<u16> {
    match register.value_type {
        ValueType::U16 | ValueType::S16 => vec![raw as u16],
        ValueType::U32 | ValueType::S32 => split(raw as u32, order).to_vec(),
        ValueType::Ascii => vec![0; usize::from(register.word_count())],
    }
}

/// The words a device sends for `value`.
pub fn encode(register: &Register, value: f64, order: WordOrder) -> Vec<u16> {
    encode_raw(register, raw_for(register, value), order)
}

pub fn encode_text(register: &Register, text: &str) -> Vec<u16> {
    let mut bytes: Vec<u8> = text
        .bytes()
        .take(usize::from(register.word_count()) * 2)
        .collect();
    bytes.resize(usize::from(register.word_count()) * 2, 0);
    bytes
        .chunks(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::register_map::RegisterKind;

    fn register(value_type: ValueType, scale: f64) -> Register {
        Register {
            name: "x".into(),
            address: 0,
            kind: RegisterKind::Holding,
            value_type,
            words: None,
            scale,
            unit: String::new(),
            min: None,
            max: None,
            sentinels: vec![],
            description: String::new(),
        }
    }

    #[test]
    fn round_trips_every_type_and_word_order() {
        for order in [WordOrder::HighFirst, WordOrder::LowFirst] {
            for (value_type, scale, value) in [
                (ValueType::U16, 0.1, 6553.4),
                (ValueType::S16, 1.0, -1234.0),
                (ValueType::U32, 0.1, 123_456.7),
                (ValueType::S32, 0.01, -98_765.43),
            ] {
                let r = register(value_type, scale);
                let words = encode(&r, value, order);
                match decode(&r, &words, order) {
                    RegisterValue::Number { value: decoded, .. } => assert!(
                        (decoded - value).abs() < scale / 2.0 + 1e-9,
                        "{value_type:?}"
                    ),
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn rounding_keeps_the_resolution_and_drops_the_noise() {
        assert_eq!(round_to_resolution(51.480000000000004, 0.01), 51.48);
        assert_eq!(round_to_resolution(5_432_106.25, 1.25), 5_432_106.25);
        assert_eq!(
            round_to_resolution(1_111_100.0000000002, 100.0),
            1_111_100.0
        );
        assert_eq!(round_to_resolution(0.00375, 0.00125), 0.00375);
    }

    #[test]
    fn sentinels_are_not_numbers() {
        assert_eq!(
            decode(
                &register(ValueType::U16, 0.1),
                &[0xFFFF],
                WordOrder::HighFirst
            ),
            RegisterValue::Sentinel { raw: 0xFFFF }
        );
        assert_eq!(
            decode(
                &register(ValueType::S16, 1.0),
                &[0x8000],
                WordOrder::HighFirst
            ),
            RegisterValue::Sentinel { raw: -0x8000 }
        );
        assert_eq!(
            decode(
                &register(ValueType::S16, 1.0),
                &[0x7FFF],
                WordOrder::HighFirst
            ),
            RegisterValue::Sentinel { raw: 0x7FFF }
        );
    }
}
