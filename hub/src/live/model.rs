//! The "now" answers as domain values (DESIGN §3.4, §4 Live). The gRPC layer turns them into
//! messages; nothing here knows about proto types or the database.

use crate::catalog::{BatteryArray, BatteryPack, Inverter, InverterArray, Meter, System};
use crate::db::samples::{
    BatteryBankSample, BatteryCellSample, BatteryUnitSample, EnergySample, MeterSample,
};

/// Where a SOC came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SocSource {
    /// No SOC is known now.
    #[default]
    None,
    /// Battery packs (their BMS adapters).
    Pack,
    /// The battery SOC inverters report, because no pack had data.
    Inverter,
}

impl SocSource {
    /// The word stored in `array_samples.soc_source`.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            SocSource::None => None,
            SocSource::Pack => Some("pack"),
            SocSource::Inverter => Some("inverter"),
        }
    }
}

/// A device left out of the sums above it: no data for three poll intervals (or never).
#[derive(Debug, Clone, PartialEq)]
pub struct StaleDevice {
    pub device_id: String,
    pub device_type: &'static str,
    pub last_ts: Option<i64>,
    pub poll_interval_secs: f64,
}

/// Power flows of an array or a system, from fresh devices only; `None` is "not known now".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PowerTotals {
    pub pv_power_w: Option<f64>,
    pub load_power_w: Option<f64>,
    pub grid_power_w: Option<f64>,
    pub battery_power_w: Option<f64>,
    pub battery_soc_pct: Option<f64>,
    pub soc_source: SocSource,
    pub battery_voltage_v: Option<f64>,
    pub battery_current_a: Option<f64>,
    /// "meters" or "inverters".
    pub grid_source: &'static str,
}

/// Freshness of one device's newest reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading<S> {
    /// The adapter whose reading it is (or the device's adapter when it never reported).
    pub adapter_id: Option<String>,
    pub poll_interval_secs: f64,
    pub sample: Option<S>,
    pub stale: bool,
}

impl<S> Reading<S> {
    /// The sample, when it is fresh.
    pub fn fresh(&self) -> Option<&S> {
        self.sample.as_ref().filter(|_| !self.stale)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InverterNow {
    pub inverter: Inverter,
    pub reading: Reading<EnergySample>,
    /// The sample is from the system's current local day, so its day counters are today's.
    pub counters_are_today: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MeterNow {
    pub meter: Meter,
    pub reading: Reading<MeterSample>,
    pub import_today_kwh: Option<f64>,
    pub export_today_kwh: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatteryNow {
    pub unit: BatteryUnitSample,
    pub battery_index: i32,
    pub cells: Vec<(i32, BatteryCellSample)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatteryPackNow {
    pub pack: BatteryPack,
    pub reading: Reading<BatteryBankSample>,
    pub adapter_priority: i32,
    /// Filled only for a battery pack answer.
    pub batteries: Vec<BatteryNow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatteryArrayNow {
    pub battery_array: BatteryArray,
    /// The inverter array it is attached to now.
    pub inverter_array_id: Option<String>,
    pub soc_pct: Option<f64>,
    pub soc_source: SocSource,
    pub soc_capacity_weighted: bool,
    pub voltage_v: Option<f64>,
    pub current_a: Option<f64>,
    pub power_w: Option<f64>,
    pub packs: Vec<BatteryPackNow>,
    pub stale: Vec<StaleDevice>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InverterArrayNow {
    pub array: InverterArray,
    pub totals: PowerTotals,
    pub inverters: Vec<InverterNow>,
    pub meters: Vec<MeterNow>,
    pub battery_array: Option<BatteryArrayNow>,
    pub stale: Vec<StaleDevice>,
}

/// Energy of the local day so far (kWh).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EnergyToday {
    /// YYYY-MM-DD in the system's timezone.
    pub date: String,
    pub pv_kwh: Option<f64>,
    pub load_kwh: Option<f64>,
    pub grid_import_kwh: Option<f64>,
    pub grid_export_kwh: Option<f64>,
    pub battery_charge_kwh: Option<f64>,
    pub battery_discharge_kwh: Option<f64>,
    pub grid_source: &'static str,
    /// "rollups" (the system's hourly rows of today) or "device counters" (until there are any).
    pub source: &'static str,
}

/// Today's energy priced with the system's tariff.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FinancialToday {
    pub currency: String,
    pub peak_import_kwh: Option<f64>,
    pub offpeak_import_kwh: Option<f64>,
    pub import_cost: Option<f64>,
    pub export_credit: Option<f64>,
    pub net_cost: Option<f64>,
    pub solar_value: Option<f64>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SystemNow {
    pub system: System,
    pub as_of: i64,
    pub totals: PowerTotals,
    pub arrays: Vec<InverterArrayNow>,
    /// System-level meters.
    pub meters: Vec<MeterNow>,
    pub battery_arrays: Vec<BatteryArrayNow>,
    pub today: EnergyToday,
    pub financial: FinancialToday,
    pub stale: Vec<StaleDevice>,
}
