//! Two 16-bit registers as one 32-bit value, in the word order a map names: what decoding,
//! encoding and writable settings share. And the one rule for a map entry's name.

use serde::Deserialize;

/// Order of the two registers of a 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordOrder {
    #[default]
    HighFirst,
    LowFirst,
}

/// The 32-bit value of two registers (`words[0]`, `words[1]` as they are on the device).
pub fn combine(words: &[u16], order: WordOrder) -> u32 {
    let (high, low) = match order {
        WordOrder::HighFirst => (words[0], words[1]),
        WordOrder::LowFirst => (words[1], words[0]),
    };
    (u32::from(high) << 16) | u32::from(low)
}

/// The two registers of a 32-bit value, in device order.
pub fn split(value: u32, order: WordOrder) -> [u16; 2] {
    let high = (value >> 16) as u16;
    let low = (value & 0xFFFF) as u16;
    match order {
        WordOrder::HighFirst => [high, low],
        WordOrder::LowFirst => [low, high],
    }
}

/// Whether `name` is a map entry's name: lower_snake_case, not empty.
pub(crate) fn lower_snake_case(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
