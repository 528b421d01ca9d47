//! What devices say: register maps and their decoding, SunSpec, JK BMS frames, the Pytes console,
//! pack readings, the canonical reading every driver produces, and the settings a map declares
//! writable.

pub mod codec;
pub mod crc;
pub mod jkbms;
pub mod normalize;
pub mod pack;
pub mod pytes;
pub mod reading;
pub mod register_map;
pub mod settings;
pub mod sunspec;
pub mod words;
