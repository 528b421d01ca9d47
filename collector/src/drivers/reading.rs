//! A reading: what one poll of one device gave, as canonical fields (DESIGN §3.2), with the
//! values left out and why. Every driver produces it (register maps through `normalize`, the
//! battery protocols through `pack`), the uplink batches it for the hub, `poll` prints it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The device's "not available" marker (0xFFFF, 0x7FFF, 0x8000, ...).
    Sentinel,
    /// Outside the register's plausible range (a SOC of 140 %, a negative PV power, ...).
    OutOfRange,
    /// A power far beyond the device's rating.
    AboveRating,
    /// A cumulative counter below its last value.
    CounterBackwards,
}

impl DropReason {
    /// The reason's name in data-quality tallies and metrics (`solarhub_proto::contract::quality`).
    pub fn name(self) -> &'static str {
        use solarhub_proto::contract::quality;
        match self {
            DropReason::Sentinel => quality::SENTINEL,
            DropReason::OutOfRange => quality::OUT_OF_RANGE,
            DropReason::AboveRating => quality::ABOVE_RATING,
            DropReason::CounterBackwards => quality::COUNTER_BACKWARDS,
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::Sentinel => "sentinel",
            DropReason::OutOfRange => "out of range",
            DropReason::AboveRating => "above rating",
            DropReason::CounterBackwards => "counter backwards",
        })
    }
}

/// One poll of one device, normalised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub device_id: String,
    /// The adapter that produced it (a pack may have several).
    pub adapter_id: String,
    /// UTC epoch milliseconds.
    pub ts: i64,
    /// Canonical fields that were read and are plausible.
    pub fields: BTreeMap<String, f64>,
    /// Text registers (serial numbers, models).
    pub text: BTreeMap<String, String>,
    /// Fields left out of this reading, and why (`b2.c7.voltage_v` for a cell of a battery).
    pub dropped: BTreeMap<String, DropReason>,
    /// The batteries of a pack, with their cells (empty for inverters and meters).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub batteries: Vec<BatteryReading>,
}

/// One battery module of a pack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatteryReading {
    /// 1-based position in the pack.
    pub index: i32,
    pub fields: BTreeMap<String, f64>,
    pub cells: Vec<CellReading>,
}

/// One cell of a battery module.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellReading {
    /// 1-based position in the battery.
    pub index: i32,
    pub fields: BTreeMap<String, f64>,
}
