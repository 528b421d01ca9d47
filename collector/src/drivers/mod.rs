//! What devices say: register maps and their decoding, SunSpec, JK BMS frames, the Pytes console,
//! pack readings, and the canonical reading every driver produces.

pub mod codec;
pub mod crc;
pub mod jkbms;
pub mod normalize;
pub mod pack;
pub mod pytes;
pub mod reading;
pub mod register_map;
pub mod sunspec;
