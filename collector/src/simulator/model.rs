//! Physically plausible devices: PV follows the sun in the site's local time, load varies over the
//! day, the battery charges from surplus and discharges into deficit with its SOC integrating battery
//! power, the grid makes up the rest, and energy counters only ever grow.
//!
//! Values are named like the registers of the project's map files (`pv1_power_w`,
//! `grid_import_total_kwh`, `voltage_a_v`, ...); a register the model does not know reads 0.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// What kind of device a model plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Inverter,
    Meter,
}

/// The state of one simulated device.
#[derive(Debug, Clone)]
pub struct DeviceModel {
    kind: ModelKind,
    timezone: Tz,
    rated_w: f64,
    pv_peak_w: f64,
    base_load_w: f64,
    battery_kwh: f64,
    soc_pct: f64,
    /// Cumulative energy counters, kWh: pv, load, import, export, charge, discharge.
    totals_kwh: [f64; 6],
    today_kwh: [f64; 6],
    /// Local date the `today` counters belong to.
    today: Option<(i32, u32, u32)>,
    /// A per-device phase so devices on one site do not move in lockstep.
    phase: f64,
    controls: Controls,
}

/// What an inverter's settings ask of it (from its settings registers, see `SimDevice`): the
/// time-of-use windows and the battery current limits. The default asks nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Controls {
    /// Time-of-use windows in use: (start, end) in local hours, the SOC to charge to, the
    /// power, and whether the grid may charge the battery in it.
    pub windows: Vec<Window>,
    /// The battery's charge and discharge limits, W.
    pub max_charge_w: Option<f64>,
    pub max_discharge_w: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start_hour: f64,
    pub end_hour: f64,
    pub soc_pct: f64,
    pub power_w: f64,
    pub grid_charge: bool,
}

impl Window {
    fn contains(&self, hour: f64) -> bool {
        if self.start_hour <= self.end_hour {
            (self.start_hour..self.end_hour).contains(&hour)
        } else {
            hour >= self.start_hour || hour < self.end_hour
        }
    }
}

/// Indices of `totals_kwh` / `today_kwh`: pv, load, import, export, charge, discharge.
const IMPORT: usize = 2;
const EXPORT: usize = 3;

/// Instantaneous powers, W. `battery_w` > 0 discharges, `grid_w` > 0 imports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Powers {
    pub pv1_w: f64,
    pub pv2_w: f64,
    pub load_w: f64,
    pub battery_w: f64,
    pub grid_w: f64,
}

impl Powers {
    pub fn pv_w(&self) -> f64 {
        self.pv1_w + self.pv2_w
    }
}

impl DeviceModel {
    pub fn inverter(timezone: Tz, rated_w: f64, seed: u32) -> DeviceModel {
        DeviceModel {
            kind: ModelKind::Inverter,
            timezone,
            rated_w,
            pv_peak_w: rated_w * 0.9,
            base_load_w: rated_w * 0.18,
            battery_kwh: 10.0,
            soc_pct: 55.0 + f64::from(seed % 7) * 3.0,
            totals_kwh: [12_345.6, 9_876.5, 2_345.6, 3_456.7, 1_234.5, 1_111.1],
            today_kwh: [0.0; 6],
            today: None,
            phase: f64::from(seed) * 0.7,
            controls: Controls::default(),
        }
    }

    pub fn meter(timezone: Tz, seed: u32) -> DeviceModel {
        DeviceModel {
            kind: ModelKind::Meter,
            timezone,
            rated_w: 20_000.0,
            pv_peak_w: 8_000.0,
            base_load_w: 1_800.0,
            battery_kwh: 0.0,
            soc_pct: 0.0,
            totals_kwh: [0.0, 0.0, 5_432.1, 2_109.8, 0.0, 0.0],
            today_kwh: [0.0; 6],
            today: None,
            phase: f64::from(seed) * 0.7,
            controls: Controls::default(),
        }
    }

    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    pub fn soc_pct(&self) -> f64 {
        self.soc_pct
    }

    pub fn set_soc_pct(&mut self, soc_pct: f64) {
        self.soc_pct = soc_pct.clamp(0.0, 100.0);
    }

    /// What the inverter's settings now ask of it.
    pub fn control(&mut self, controls: Controls) {
        self.controls = controls;
    }

    fn local_hour(&self, at: DateTime<Utc>) -> f64 {
        let local = self.timezone.from_utc_datetime(&at.naive_utc());
        f64::from(local.hour())
            + f64::from(local.minute()) / 60.0
            + f64::from(local.second()) / 3600.0
    }

    /// The powers at `at`, given the current state of charge.
    pub fn powers(&self, at: DateTime<Utc>) -> Powers {
        let hour = self.local_hour(at);
        let sun = if (6.0..18.0).contains(&hour) {
            (std::f64::consts::PI * (hour - 6.0) / 12.0).sin()
        } else {
            0.0
        };
        let clouds = 0.85 + 0.15 * (at.timestamp() as f64 / 600.0 + self.phase).sin();
        let pv = (self.pv_peak_w * sun * clouds).max(0.0);
        let daily = 1.0 + 0.35 * (std::f64::consts::TAU * (hour - 19.0) / 24.0).cos();
        let load = self.base_load_w
            * daily
            * (1.0 + 0.1 * (at.timestamp() as f64 / 90.0 + self.phase).sin());
        let (pv1, pv2) = (pv * 0.6, pv * 0.4);
        if self.kind == ModelKind::Meter {
            return Powers {
                pv1_w: pv1,
                pv2_w: pv2,
                load_w: load,
                battery_w: 0.0,
                grid_w: load - pv,
            };
        }
        let limit = self.rated_w * 0.5;
        let charge_limit = limit.min(self.controls.max_charge_w.unwrap_or(f64::INFINITY));
        let discharge_limit = limit.min(self.controls.max_discharge_w.unwrap_or(f64::INFINITY));
        let surplus = pv - load;
        let window = self.controls.windows.iter().find(|w| w.contains(hour));
        let battery = match window {
            // A window that lets the grid charge, below its SOC: charge at its power.
            Some(window) if window.grid_charge && self.soc_pct < window.soc_pct => {
                -(window.power_w.max(surplus)).min(charge_limit)
            }
            _ if surplus > 0.0 && self.soc_pct < 98.0 => -surplus.min(charge_limit),
            _ if surplus > 0.0 => 0.0,
            _ if self.soc_pct > window.map_or(20.0, |w| w.soc_pct.max(5.0)) => {
                (-surplus).min(discharge_limit)
            }
            _ => 0.0,
        };
        Powers {
            pv1_w: pv1,
            pv2_w: pv2,
            load_w: load,
            battery_w: battery,
            grid_w: load - pv - battery,
        }
    }

    /// Moves the state from `from` to `to`: SOC integrates battery power, counters integrate energy,
    /// today's counters restart at local midnight.
    pub fn advance(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) {
        let seconds = (to - from).num_milliseconds() as f64 / 1000.0;
        if seconds <= 0.0 {
            return;
        }
        let local = self.timezone.from_utc_datetime(&to.naive_utc());
        let date = (local.year(), local.month(), local.day());
        if self.today != Some(date) {
            self.today = Some(date);
            self.today_kwh = [0.0; 6];
        }
        let p = self.powers(from);
        let hours = seconds / 3600.0;
        let energies = [
            p.pv_w(),
            p.load_w,
            p.grid_w.max(0.0),
            (-p.grid_w).max(0.0),
            (-p.battery_w).max(0.0),
            p.battery_w.max(0.0),
        ];
        for (index, watts) in energies.iter().enumerate() {
            self.totals_kwh[index] += watts * hours / 1000.0;
            self.today_kwh[index] += watts * hours / 1000.0;
        }
        if self.battery_kwh > 0.0 {
            self.soc_pct = (self.soc_pct
                - p.battery_w * hours / (self.battery_kwh * 1000.0) * 100.0)
                .clamp(0.0, 100.0);
        }
    }

    /// Sets every counter back to zero, as a device does after a reset.
    pub fn reset_counters(&mut self) {
        self.totals_kwh = [0.0; 6];
        self.today_kwh = [0.0; 6];
    }

    /// Every quantity the model knows at `at`, by register name.
    pub fn values(&self, at: DateTime<Utc>) -> BTreeMap<String, f64> {
        let p = self.powers(at);
        let mut v = BTreeMap::new();
        let mut set = |name: &str, value: f64| {
            v.insert(name.to_owned(), value);
        };
        match self.kind {
            ModelKind::Inverter => {
                let battery_voltage = 48.0 + 6.0 * self.soc_pct / 100.0;
                set("rated_power_w", self.rated_w);
                set("pv1_power_w", p.pv1_w);
                set("pv2_power_w", p.pv2_w);
                set("pv1_voltage_v", if p.pv1_w > 0.0 { 380.0 } else { 0.0 });
                set("pv2_voltage_v", if p.pv2_w > 0.0 { 360.0 } else { 0.0 });
                set("pv1_current_a", p.pv1_w / 380.0);
                set("pv2_current_a", p.pv2_w / 360.0);
                set("load_power_w", p.load_w);
                set("grid_power_w", p.grid_w);
                set("battery_power_w", p.battery_w);
                set("battery_current_a", p.battery_w / battery_voltage);
                set("battery_voltage_v", battery_voltage);
                set("battery_soc_pct", self.soc_pct);
                set("battery_temp_c", 24.5);
                set(
                    "inverter_temp_c",
                    32.0 + 10.0 * p.pv_w() / self.pv_peak_w.max(1.0),
                );
                set("inverter_mode", if p.pv_w() > 0.0 { 3.0 } else { 1.0 });
                for (phase, share) in [("l1", 0.34), ("l2", 0.33), ("l3", 0.33)] {
                    set(
                        &format!("grid_{phase}_voltage_v"),
                        230.0 + if phase == "l2" { 1.2 } else { 0.0 },
                    );
                    set(&format!("grid_{phase}_power_w"), p.grid_w * share);
                    set(&format!("grid_{phase}_current_a"), p.grid_w * share / 230.0);
                }
                set("grid_frequency_hz", 50.0);
                let names = [
                    "pv",
                    "load",
                    "grid_import",
                    "grid_export",
                    "battery_charge",
                    "battery_discharge",
                ];
                for (index, name) in names.iter().enumerate() {
                    set(&format!("{name}_total_kwh"), self.totals_kwh[index]);
                    set(&format!("{name}_today_kwh"), self.today_kwh[index]);
                }
            }
            ModelKind::Meter => {
                for (phase, share, volts) in
                    [("a", 0.4, 231.0), ("b", 0.35, 229.5), ("c", 0.25, 230.2)]
                {
                    set(&format!("voltage_{phase}_v"), volts);
                    set(&format!("power_{phase}_w"), p.grid_w * share);
                    set(
                        &format!("current_{phase}_a"),
                        (p.grid_w * share / volts).abs(),
                    );
                    set(&format!("power_factor_{phase}"), 0.97);
                    set(
                        &format!("forward_energy_{phase}_kwh"),
                        self.totals_kwh[IMPORT] * share,
                    );
                    set(
                        &format!("reverse_energy_{phase}_kwh"),
                        self.totals_kwh[EXPORT] * share,
                    );
                }
                set("frequency_hz", 50.0);
                set("power_w", p.grid_w);
                set("forward_energy_kwh", self.totals_kwh[IMPORT]);
                set("reverse_energy_kwh", self.totals_kwh[EXPORT]);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// #28: what the settings ask moves the battery: a lower discharge limit limits discharge,
    /// a window that lets the grid charge charges the battery from the grid up to its SOC.
    #[test]
    fn settings_drive_the_battery() {
        let mut model = DeviceModel::inverter(chrono_tz::UTC, 8000.0, 0);
        let night = Utc.with_ymd_and_hms(2026, 1, 1, 22, 0, 0).unwrap();
        let free = model.powers(night);
        assert!(
            free.battery_w > 500.0,
            "the battery covers the load: {free:?}"
        );
        model.control(Controls {
            max_discharge_w: Some(100.0),
            ..Controls::default()
        });
        let limited = model.powers(night);
        assert_eq!(limited.battery_w, 100.0);
        assert!((limited.grid_w - (free.grid_w + free.battery_w - 100.0)).abs() < 1e-6);
        let window = Window {
            start_hour: 21.0,
            end_hour: 23.0,
            soc_pct: 90.0,
            power_w: 3000.0,
            grid_charge: true,
        };
        model.control(Controls {
            windows: vec![window.clone()],
            ..Controls::default()
        });
        let charging = model.powers(night);
        assert_eq!(charging.battery_w, -3000.0);
        assert!(charging.grid_w > 3000.0, "from the grid: {charging:?}");
        // Outside the window, or at its SOC, it does not.
        assert!(model.powers(night + chrono::Duration::hours(2)).battery_w > 0.0);
        model.set_soc_pct(95.0);
        assert!(model.powers(night).battery_w >= 0.0);
        // A window across midnight.
        model.set_soc_pct(50.0);
        model.control(Controls {
            windows: vec![Window {
                start_hour: 23.0,
                end_hour: 2.0,
                ..window
            }],
            ..Controls::default()
        });
        let after_midnight = Utc.with_ymd_and_hms(2026, 1, 2, 1, 0, 0).unwrap();
        assert_eq!(model.powers(after_midnight).battery_w, -3000.0);
    }
}
