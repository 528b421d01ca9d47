//! Turns the newest readings of a system's devices into the "now" answers: freshness, pack
//! failover, array and system sums, and the SOC rules of DESIGN §3.4. Pure: everything it needs
//! is in [`Inputs`].

use std::collections::HashMap;

use crate::catalog::{Adapter, Installation, System};
use crate::db::live::LatestReading;
use crate::db::samples::{BatteryBankSample, EnergySample, MeterSample};

use super::model::*;
use super::tariff;
use crate::values::{kwh, mean, sum};

/// A device is stale after this many poll intervals without data.
pub const STALE_AFTER_POLLS: f64 = 3.0;

/// The poll interval a collector uses when the adapter's config does not set one.
pub use solarhub_proto::contract::DEFAULT_POLL_INTERVAL_SECS;

/// Everything one system's "now" is computed from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub system: Option<System>,
    pub installation: Installation,
    pub latest: Vec<LatestReading>,
    pub energy: HashMap<(String, i64), EnergySample>,
    pub meters: HashMap<(String, i64), MeterSample>,
    pub banks: HashMap<(String, i64), BatteryBankSample>,
    /// First (import, export) counters of each meter since the local day began.
    pub meter_day_start: HashMap<String, crate::db::live::Counters>,
    /// Grid import counter (Wh) of a device (meter or inverter) at a time: its first reading at or
    /// after that time.
    pub import_counter_at: HashMap<(String, i64), f64>,
    pub now: i64,
    /// Start of the system's current local day (UTC epoch ms) and its date.
    pub day_start: i64,
    pub date: String,
    /// Today's tariff peak windows as UTC [start, end) ms (from [`tariff::peak_windows`]).
    pub peak_windows: Vec<(i64, i64)>,
    /// The system's hourly rollup rows of today so far.
    pub today_hours: Vec<crate::db::rollups::SystemHour>,
    /// Whether today's grid figures in those rows came from system-level grid meters.
    pub today_grid_from_meters: bool,
}

fn poll_secs(adapter: Option<&Adapter>) -> f64 {
    adapter
        .and_then(|a| serde_json::from_str::<serde_json::Value>(&a.config_json).ok())
        .and_then(|config| config.get("poll_interval_secs")?.as_f64())
        .filter(|secs| *secs > 0.0)
        .unwrap_or(DEFAULT_POLL_INTERVAL_SECS)
}

fn is_stale(ts: Option<i64>, poll_interval_secs: f64, now: i64) -> bool {
    match ts {
        None => true,
        Some(ts) => (now - ts) as f64 > STALE_AFTER_POLLS * poll_interval_secs * 1000.0,
    }
}

/// The mean of SOCs weighted by capacity when every one has a capacity (> 0), else the plain
/// mean; and whether it was weighted.
fn capacity_weighted(values: &[(f64, Option<f64>)]) -> Option<(f64, bool)> {
    if values.is_empty() {
        return None;
    }
    if values.iter().all(|(_, w)| w.is_some_and(|w| w > 0.0)) {
        let total: f64 = values.iter().map(|(_, w)| w.unwrap_or(0.0)).sum();
        let weighted: f64 = values.iter().map(|(v, w)| v * w.unwrap_or(0.0)).sum();
        return Some((weighted / total, true));
    }
    Some((
        values.iter().map(|(v, _)| v).sum::<f64>() / values.len() as f64,
        false,
    ))
}

struct Context<'a> {
    inputs: &'a Inputs,
    adapters: HashMap<&'a str, &'a Adapter>,
    /// Newest readings of each device: (adapter id, ts).
    latest: HashMap<&'a str, Vec<(&'a str, i64)>>,
}

impl<'a> Context<'a> {
    fn new(inputs: &'a Inputs) -> Self {
        let adapters = inputs
            .installation
            .adapters
            .iter()
            .map(|a| (a.adapter_id.as_str(), a))
            .collect();
        let mut latest: HashMap<&str, Vec<(&str, i64)>> = HashMap::new();
        for row in &inputs.latest {
            latest
                .entry(row.device_id.as_str())
                .or_default()
                .push((row.adapter_id.as_str(), row.ts));
        }
        Context {
            inputs,
            adapters,
            latest,
        }
    }

    /// The newest reading of a single-adapter device (inverter, meter), from whichever adapter.
    fn newest<S: Clone>(
        &self,
        device_id: &str,
        own_adapter: Option<&str>,
        samples: &HashMap<(String, i64), S>,
    ) -> Reading<S> {
        let newest = self
            .latest
            .get(device_id)
            .and_then(|rows| rows.iter().max_by_key(|(_, ts)| *ts))
            .filter(|(_, ts)| samples.contains_key(&(device_id.to_owned(), *ts)));
        let adapter_id = newest.map(|(a, _)| *a).or(own_adapter).or_else(|| {
            self.inputs
                .installation
                .adapters
                .iter()
                .find(|a| a.device_id.as_deref() == Some(device_id))
                .map(|a| a.adapter_id.as_str())
        });
        let poll = poll_secs(adapter_id.and_then(|a| self.adapters.get(a).copied()));
        let ts = newest.map(|(_, ts)| *ts);
        Reading {
            adapter_id: adapter_id.map(str::to_owned),
            poll_interval_secs: poll,
            sample: ts.and_then(|ts| samples.get(&(device_id.to_owned(), ts)).cloned()),
            stale: is_stale(ts, poll, self.inputs.now),
        }
    }

    fn inverter(&self, inverter: &crate::catalog::Inverter) -> InverterNow {
        let reading = self.newest(
            &inverter.inverter_id,
            inverter.adapter_id.as_deref(),
            &self.inputs.energy,
        );
        let counters_are_today = reading
            .sample
            .as_ref()
            .is_some_and(|s| s.ts >= self.inputs.day_start);
        InverterNow {
            inverter: inverter.clone(),
            reading,
            counters_are_today,
        }
    }

    fn meter(&self, meter: &crate::catalog::Meter) -> MeterNow {
        let reading = self.newest(
            &meter.meter_id,
            meter.adapter_id.as_deref(),
            &self.inputs.meters,
        );
        let start = self.inputs.meter_day_start.get(&meter.meter_id);
        let today = reading
            .sample
            .as_ref()
            .filter(|s| s.ts >= self.inputs.day_start);
        let growth = |now: Option<f64>, first: Option<f64>| match (now, first) {
            (Some(now), Some(first)) => Some(((now - first) / 1000.0).max(0.0)),
            _ => None,
        };
        MeterNow {
            import_today_kwh: today
                .and_then(|s| growth(s.import_total_wh, start.and_then(|(i, _)| *i))),
            export_today_kwh: today
                .and_then(|s| growth(s.export_total_wh, start.and_then(|(_, e)| *e))),
            meter: meter.clone(),
            reading,
        }
    }

    /// The pack's adapters in failover order: enabled, lowest priority number first.
    fn pack_adapters(&self, pack_id: &str) -> Vec<(&'a str, i32)> {
        let installation = &self.inputs.installation;
        let mut order: Vec<(&str, i32)> = installation
            .pack_adapters
            .iter()
            .filter(|pa| pa.pack_id == pack_id && pa.enabled)
            .filter(|pa| {
                self.adapters
                    .get(pa.adapter_id.as_str())
                    .is_none_or(|a| a.enabled)
            })
            .map(|pa| (pa.adapter_id.as_str(), pa.priority))
            .collect();
        for adapter in &installation.adapters {
            if adapter.device_id.as_deref() == Some(pack_id)
                && adapter.enabled
                && !order.iter().any(|(id, _)| *id == adapter.adapter_id)
                && !installation
                    .pack_adapters
                    .iter()
                    .any(|pa| pa.pack_id == pack_id && pa.adapter_id == adapter.adapter_id)
            {
                order.push((adapter.adapter_id.as_str(), adapter.priority));
            }
        }
        order.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
        order
    }

    /// A pack's reading: from the first adapter in failover order that is reporting; when none
    /// is, the newest reading of any adapter, marked stale.
    fn pack(&self, pack: &crate::catalog::BatteryPack) -> BatteryPackNow {
        let order = self.pack_adapters(&pack.pack_id);
        let rows: &[(&str, i64)] = self
            .latest
            .get(pack.pack_id.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let sample_at = |ts: i64| self.inputs.banks.get(&(pack.pack_id.clone(), ts));
        let now = self.inputs.now;
        for (adapter_id, priority) in &order {
            let poll = poll_secs(self.adapters.get(adapter_id).copied());
            let newest = rows
                .iter()
                .find(|(a, _)| a == adapter_id)
                .map(|(_, ts)| *ts);
            if let Some(ts) = newest
                && !is_stale(Some(ts), poll, now)
                && let Some(sample) = sample_at(ts)
            {
                return BatteryPackNow {
                    pack: pack.clone(),
                    reading: Reading {
                        adapter_id: Some((*adapter_id).to_owned()),
                        poll_interval_secs: poll,
                        sample: Some(sample.clone()),
                        stale: false,
                    },
                    adapter_priority: *priority,
                    batteries: Vec::new(),
                };
            }
        }
        let newest = rows
            .iter()
            .filter(|(_, ts)| sample_at(*ts).is_some())
            .max_by_key(|(_, ts)| *ts);
        let (adapter_id, priority) = match newest {
            Some((adapter, _)) => (
                Some(*adapter),
                order
                    .iter()
                    .find(|(a, _)| a == adapter)
                    .map(|(_, p)| *p)
                    .unwrap_or_default(),
            ),
            None => (
                order.first().map(|(a, _)| *a),
                order.first().map(|(_, p)| *p).unwrap_or_default(),
            ),
        };
        BatteryPackNow {
            pack: pack.clone(),
            reading: Reading {
                adapter_id: adapter_id.map(str::to_owned),
                poll_interval_secs: poll_secs(
                    adapter_id.and_then(|a| self.adapters.get(a).copied()),
                ),
                sample: newest.and_then(|(_, ts)| sample_at(*ts).cloned()),
                stale: true,
            },
            adapter_priority: priority,
            batteries: Vec::new(),
        }
    }

    fn battery_array(&self, battery_array: &crate::catalog::BatteryArray) -> BatteryArrayNow {
        let installation = &self.inputs.installation;
        let packs: Vec<BatteryPackNow> = installation
            .packs
            .iter()
            .filter(|p| p.battery_array_id.as_deref() == Some(&battery_array.battery_array_id))
            .map(|p| self.pack(p))
            .collect();
        let fresh: Vec<(&BatteryPackNow, &BatteryBankSample)> = packs
            .iter()
            .filter_map(|p| p.reading.fresh().map(|s| (p, s)))
            .collect();
        let socs: Vec<(f64, Option<f64>)> = fresh
            .iter()
            .filter_map(|(p, s)| s.soc_pct.map(|soc| (soc, p.pack.nominal_kwh)))
            .collect();
        let soc = capacity_weighted(&socs);
        let inverter_array_id = installation
            .attachments
            .iter()
            .filter(|a| a.battery_array_id == battery_array.battery_array_id)
            .filter(|a| a.detached_at.is_none() && a.attached_since <= self.inputs.now)
            .max_by_key(|a| a.attached_since)
            .map(|a| a.inverter_array_id.clone());
        BatteryArrayNow {
            battery_array: battery_array.clone(),
            inverter_array_id,
            soc_pct: soc.map(|(soc, _)| soc),
            soc_source: if soc.is_some() {
                SocSource::Pack
            } else {
                SocSource::None
            },
            soc_capacity_weighted: soc.is_some_and(|(_, weighted)| weighted),
            voltage_v: mean(fresh.iter().map(|(_, s)| s.voltage_v)),
            current_a: sum(fresh.iter().map(|(_, s)| s.current_a)),
            power_w: sum(fresh.iter().map(|(_, s)| s.power_w)),
            stale: packs.iter().filter_map(stale_pack).collect(),
            packs,
        }
    }
}

fn stale_entry<S>(
    device_id: &str,
    device_type: &'static str,
    reading: &Reading<S>,
    ts: impl Fn(&S) -> i64,
) -> Option<StaleDevice> {
    reading.stale.then(|| StaleDevice {
        device_id: device_id.to_owned(),
        device_type,
        last_ts: reading.sample.as_ref().map(ts),
        poll_interval_secs: reading.poll_interval_secs,
    })
}

fn stale_inverter(inverter: &InverterNow) -> Option<StaleDevice> {
    stale_entry(
        &inverter.inverter.inverter_id,
        "inverter",
        &inverter.reading,
        |s| s.ts,
    )
}

fn stale_meter(meter: &MeterNow) -> Option<StaleDevice> {
    stale_entry(&meter.meter.meter_id, "meter", &meter.reading, |s| s.ts)
}

fn stale_pack(pack: &BatteryPackNow) -> Option<StaleDevice> {
    stale_entry(&pack.pack.pack_id, "battery_pack", &pack.reading, |s| s.ts)
}

/// Sums of the fresh inverters; SOC from `battery_array` when it has pack data, else the mean of
/// the inverters' battery SOC.
fn inverter_totals(inverters: &[&InverterNow], battery_socs: Option<f64>) -> PowerTotals {
    let fresh: Vec<&EnergySample> = inverters.iter().filter_map(|i| i.reading.fresh()).collect();
    let inverter_soc = mean(fresh.iter().map(|s| s.battery_soc_pct));
    let (battery_soc_pct, soc_source) = match (battery_socs, inverter_soc) {
        (Some(soc), _) => (Some(soc), SocSource::Pack),
        (None, Some(soc)) => (Some(soc), SocSource::Inverter),
        (None, None) => (None, SocSource::None),
    };
    PowerTotals {
        pv_power_w: sum(fresh.iter().map(|s| s.pv_power_w)),
        load_power_w: sum(fresh.iter().map(|s| s.load_power_w)),
        grid_power_w: sum(fresh.iter().map(|s| s.grid_power_w)),
        battery_power_w: sum(fresh.iter().map(|s| s.battery_power_w)),
        battery_soc_pct,
        soc_source,
        battery_voltage_v: mean(fresh.iter().map(|s| s.battery_voltage_v)),
        battery_current_a: sum(fresh.iter().map(|s| s.battery_current_a)),
        grid_source: "inverters",
    }
}

/// The whole system now; `None` when `inputs` has no system.
pub fn system_now(inputs: &Inputs) -> Option<SystemNow> {
    let system = inputs.system.clone()?;
    let context = Context::new(inputs);
    let installation = &inputs.installation;
    let inverters: Vec<InverterNow> = installation
        .inverters
        .iter()
        .map(|i| context.inverter(i))
        .collect();
    let meters: Vec<MeterNow> = installation
        .meters
        .iter()
        .map(|m| context.meter(m))
        .collect();
    let battery_arrays: Vec<BatteryArrayNow> = installation
        .battery_arrays
        .iter()
        .map(|b| context.battery_array(b))
        .collect();
    // Packs in no battery array are still devices of the system.
    let loose_packs: Vec<BatteryPackNow> = installation
        .packs
        .iter()
        .filter(|p| p.battery_array_id.is_none())
        .map(|p| context.pack(p))
        .collect();

    let arrays: Vec<InverterArrayNow> = installation
        .arrays
        .iter()
        .map(|array| {
            let own: Vec<&InverterNow> = inverters
                .iter()
                .filter(|i| i.inverter.array_id == array.array_id)
                .collect();
            let battery_array = battery_arrays
                .iter()
                .find(|b| b.inverter_array_id.as_deref() == Some(&array.array_id))
                .cloned();
            let array_meters: Vec<MeterNow> = meters
                .iter()
                .filter(|m| m.meter.array_id.as_deref() == Some(&array.array_id))
                .cloned()
                .collect();
            let totals = inverter_totals(&own, battery_array.as_ref().and_then(|b| b.soc_pct));
            let mut stale: Vec<StaleDevice> =
                own.iter().filter_map(|i| stale_inverter(i)).collect();
            stale.extend(array_meters.iter().filter_map(stale_meter));
            if let Some(b) = &battery_array {
                stale.extend(b.stale.iter().cloned());
            }
            InverterArrayNow {
                array: array.clone(),
                totals,
                inverters: own.into_iter().cloned().collect(),
                meters: array_meters,
                battery_array,
                stale,
            }
        })
        .collect();

    let system_meters: Vec<MeterNow> = meters
        .iter()
        .filter(|m| m.meter.array_id.is_none())
        .cloned()
        .collect();
    let all_inverters: Vec<&InverterNow> = inverters.iter().collect();
    let mut totals = inverter_totals(&all_inverters, None);
    totals.pv_power_w = sum(arrays.iter().map(|a| a.totals.pv_power_w));
    totals.load_power_w = sum(arrays.iter().map(|a| a.totals.load_power_w));
    totals.battery_power_w = sum(arrays.iter().map(|a| a.totals.battery_power_w));
    let grid_meters: Vec<&MeterSample> = system_meters
        .iter()
        .filter(|m| m.meter.is_system_grid())
        .filter_map(|m| m.reading.fresh())
        .filter(|s| s.power_w.is_some())
        .collect();
    if grid_meters.is_empty() {
        totals.grid_power_w = sum(arrays.iter().map(|a| a.totals.grid_power_w));
    } else {
        totals.grid_power_w = sum(grid_meters.iter().map(|s| s.power_w));
        totals.grid_source = "meters";
    }
    // System SOC: capacity-weighted over battery arrays with pack data, else the inverters' mean.
    let array_socs: Vec<(f64, Option<f64>)> = battery_arrays
        .iter()
        .filter_map(|b| {
            let soc = b.soc_pct?;
            let capacity = b
                .packs
                .iter()
                .filter(|p| p.reading.fresh().is_some_and(|s| s.soc_pct.is_some()))
                .map(|p| p.pack.nominal_kwh)
                .try_fold(0.0, |total, kwh| kwh.map(|kwh| total + kwh));
            Some((soc, capacity))
        })
        .chain(loose_packs.iter().filter_map(|p| {
            let soc = p.reading.fresh()?.soc_pct?;
            Some((soc, p.pack.nominal_kwh))
        }))
        .collect();
    if let Some((soc, _)) = capacity_weighted(&array_socs) {
        totals.battery_soc_pct = Some(soc);
        totals.soc_source = SocSource::Pack;
    }

    let mut stale: Vec<StaleDevice> = inverters.iter().filter_map(stale_inverter).collect();
    stale.extend(meters.iter().filter_map(stale_meter));
    stale.extend(battery_arrays.iter().flat_map(|b| b.stale.iter().cloned()));
    stale.extend(loose_packs.iter().filter_map(stale_pack));

    let (today, peak_import) = if inputs.today_hours.is_empty() {
        let today = energy_today(inputs, &inverters, &system_meters);
        let peak = import_split(inputs, &inverters, &system_meters, &today);
        (today, peak)
    } else {
        rolled_today(inputs)
    };
    let financial = tariff::financial_today(&system, &today, &peak_import);
    Some(SystemNow {
        system,
        as_of: inputs.now,
        totals,
        arrays,
        meters: system_meters,
        battery_arrays,
        today,
        financial,
        stale,
    })
}

/// Today's energy from the system's hourly rollups, and the import inside the tariff's peak
/// windows (each hour's import in proportion to its time inside a window).
fn rolled_today(inputs: &Inputs) -> (EnergyToday, Option<f64>) {
    let hours = &inputs.today_hours;
    let total =
        |field: fn(&crate::db::rollups::SystemHour) -> Option<f64>| sum(hours.iter().map(field));
    let mut peak = None;
    for hour in hours {
        let Some(import) = hour.grid_import_kwh else {
            continue;
        };
        let inside: i64 = inputs
            .peak_windows
            .iter()
            .map(|(from, to)| (hour.bucket_end.min(*to) - hour.bucket_start.max(*from)).max(0))
            .sum();
        *peak.get_or_insert(0.0) +=
            import * inside as f64 / (hour.bucket_end - hour.bucket_start) as f64;
    }
    let today = EnergyToday {
        date: inputs.date.clone(),
        pv_kwh: total(|h| h.solar_kwh),
        load_kwh: total(|h| h.load_kwh),
        grid_import_kwh: total(|h| h.grid_import_kwh),
        grid_export_kwh: total(|h| h.grid_export_kwh),
        battery_charge_kwh: total(|h| h.battery_charge_kwh),
        battery_discharge_kwh: total(|h| h.battery_discharge_kwh),
        grid_source: if inputs.today_grid_from_meters {
            "meters"
        } else {
            "inverters"
        },
        source: "rollups",
    };
    (today, peak)
}

/// Today's energy from the inverters' day counters, and grid figures from system-level grid meters
/// when they have them: until the rollups have today's first hour.
fn energy_today(
    inputs: &Inputs,
    inverters: &[InverterNow],
    system_meters: &[MeterNow],
) -> EnergyToday {
    let today: Vec<&EnergySample> = inverters
        .iter()
        .filter(|i| i.counters_are_today)
        .filter_map(|i| i.reading.sample.as_ref())
        .collect();
    let total = |field: fn(&EnergySample) -> Option<f64>| kwh(sum(today.iter().map(|s| field(s))));
    let grid_meters: Vec<&MeterNow> = system_meters
        .iter()
        .filter(|m| m.meter.is_system_grid() && m.import_today_kwh.is_some())
        .collect();
    let (grid_import_kwh, grid_export_kwh, grid_source) = if grid_meters.is_empty() {
        (
            total(|s| s.grid_import_today_wh),
            total(|s| s.grid_export_today_wh),
            "inverters",
        )
    } else {
        (
            sum(grid_meters.iter().map(|m| m.import_today_kwh)),
            sum(grid_meters.iter().map(|m| m.export_today_kwh)),
            "meters",
        )
    };
    EnergyToday {
        date: inputs.date.clone(),
        pv_kwh: total(|s| s.pv_energy_today_wh),
        load_kwh: total(|s| s.load_energy_today_wh),
        grid_import_kwh,
        grid_export_kwh,
        battery_charge_kwh: total(|s| s.battery_charge_today_wh),
        battery_discharge_kwh: total(|s| s.battery_discharge_today_wh),
        grid_source,
        source: "device counters",
    }
}

/// Today's grid import inside the tariff's peak windows (kWh), from the cumulative import counters
/// of the grid source read at each window's edges; `None` when the source has no such counter.
fn import_split(
    inputs: &Inputs,
    inverters: &[InverterNow],
    system_meters: &[MeterNow],
    today: &EnergyToday,
) -> Option<f64> {
    // (device, its newest cumulative import counter)
    let devices: Vec<(&str, Option<f64>)> = if today.grid_source == "meters" {
        system_meters
            .iter()
            .filter(|m| m.meter.is_system_grid() && m.import_today_kwh.is_some())
            .map(|m| {
                (
                    m.meter.meter_id.as_str(),
                    m.reading.sample.as_ref().and_then(|s| s.import_total_wh),
                )
            })
            .collect()
    } else {
        inverters
            .iter()
            .filter(|i| i.counters_are_today)
            .map(|i| {
                (
                    i.inverter.inverter_id.as_str(),
                    i.reading
                        .sample
                        .as_ref()
                        .and_then(|s| s.grid_import_total_wh),
                )
            })
            .collect()
    };
    if devices.is_empty() {
        return None;
    }
    let mut peak_wh = 0.0;
    for (device, newest) in devices {
        let newest = newest?;
        for (start, end) in &inputs.peak_windows {
            if *start >= inputs.now {
                continue;
            }
            let Some(at_start) = inputs.import_counter_at.get(&(device.to_owned(), *start)) else {
                continue;
            };
            let at_end = if *end > inputs.now {
                newest
            } else {
                inputs
                    .import_counter_at
                    .get(&(device.to_owned(), *end))
                    .copied()
                    .unwrap_or(newest)
            };
            peak_wh += (at_end - at_start).max(0.0);
        }
    }
    Some(peak_wh / 1000.0)
}

/// One pack, as the system answer shows it (in its battery array, or on its own).
pub fn pack_now(inputs: &Inputs, pack_id: &str) -> Option<BatteryPackNow> {
    let pack = inputs
        .installation
        .packs
        .iter()
        .find(|p| p.pack_id == pack_id)?;
    Some(Context::new(inputs).pack(pack))
}

/// The array samples of one moment: one per array with at least one fresh inverter.
pub fn array_samples(now: &SystemNow, ts: i64) -> Vec<crate::db::samples::ArraySample> {
    now.arrays
        .iter()
        .filter(|a| a.inverters.iter().any(|i| i.reading.fresh().is_some()))
        .map(|a| crate::db::samples::ArraySample {
            array_id: a.array.array_id.clone(),
            ts,
            system_id: a.array.system_id.clone(),
            pv_power_w: a.totals.pv_power_w,
            load_power_w: a.totals.load_power_w,
            grid_power_w: a.totals.grid_power_w,
            battery_power_w: a.totals.battery_power_w,
            battery_soc_pct: a.totals.battery_soc_pct,
            soc_source: a.totals.soc_source.as_str().map(str::to_owned),
            battery_voltage_v: a.totals.battery_voltage_v,
            battery_current_a: a.totals.battery_current_a,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_weighting_needs_every_capacity() {
        assert_eq!(
            capacity_weighted(&[(80.0, Some(10.0)), (40.0, Some(5.0))]),
            Some(((800.0 + 200.0) / 15.0, true))
        );
        assert_eq!(
            capacity_weighted(&[(80.0, Some(10.0)), (40.0, None)]),
            Some((60.0, false))
        );
        assert_eq!(capacity_weighted(&[]), None);
    }

    #[test]
    fn staleness_is_three_poll_intervals() {
        assert!(!is_stale(Some(0), 5.0, 15_000));
        assert!(is_stale(Some(0), 5.0, 15_001));
        assert!(is_stale(None, 5.0, 0));
    }

    use crate::catalog::{
        Adapter, BatteryArray, BatteryArrayAttachment, BatteryPack, Inverter, InverterArray,
    };

    const NOW: i64 = 1_800_000_000_000;

    fn adapter(id: &str, device: &str) -> Adapter {
        Adapter {
            adapter_id: id.into(),
            adapter_type: "x".into(),
            device_category: "x".into(),
            device_id: Some(device.into()),
            device_type: None,
            collector_id: None,
            config_json: "{}".into(),
            priority: 1,
            enabled: true,
        }
    }

    fn pack(id: &str, battery_array: Option<&str>, kwh: Option<f64>) -> BatteryPack {
        BatteryPack {
            pack_id: id.into(),
            battery_array_id: battery_array.map(str::to_owned),
            system_id: "s".into(),
            name: id.into(),
            chemistry: None,
            nominal_kwh: kwh,
            max_charge_kw: None,
            max_discharge_kw: None,
            batteries_count: None,
            cells_per_battery: None,
        }
    }

    /// Array `a` with inverters i1 (SOC 50) and i2 (SOC 70), battery array `ba` attached to it
    /// with packs p1 and p2, and pack p3 in no battery array; each pack reports `socs` at `age` ms.
    fn inputs(kwh: [Option<f64>; 3], socs: [f64; 3], age: i64) -> Inputs {
        let mut inputs = Inputs {
            system: Some(System {
                system_id: "s".into(),
                name: "s".into(),
                description: None,
                timezone: "UTC".into(),
                currency: None,
                tariff_json: None,
            }),
            now: NOW,
            ..Inputs::default()
        };
        let installation = &mut inputs.installation;
        installation.arrays.push(InverterArray {
            array_id: "a".into(),
            system_id: "s".into(),
            name: "a".into(),
            pv_capacity_kw: None,
        });
        installation.battery_arrays.push(BatteryArray {
            battery_array_id: "ba".into(),
            system_id: "s".into(),
            name: "ba".into(),
        });
        installation.attachments.push(BatteryArrayAttachment {
            battery_array_id: "ba".into(),
            attached_since: 0,
            inverter_array_id: "a".into(),
            system_id: "s".into(),
            detached_at: None,
        });
        for (id, soc) in [("i1", 50.0), ("i2", 70.0)] {
            installation.inverters.push(Inverter {
                inverter_id: id.into(),
                array_id: "a".into(),
                system_id: "s".into(),
                adapter_id: Some(format!("{id}.adapter")),
                name: id.into(),
                model: None,
                serial_number: None,
                vendor: None,
                phase_type: None,
                rated_power_w: None,
                settings_json: None,
            });
            installation
                .adapters
                .push(adapter(&format!("{id}.adapter"), id));
            inputs.latest.push(LatestReading {
                device_id: id.into(),
                adapter_id: format!("{id}.adapter"),
                device_type: "inverter".into(),
                system_id: "s".into(),
                ts: NOW - 1000,
                committed_at: NOW,
            });
            inputs.energy.insert(
                (id.into(), NOW - 1000),
                EnergySample {
                    inverter_id: id.into(),
                    ts: NOW - 1000,
                    battery_soc_pct: Some(soc),
                    ..EnergySample::default()
                },
            );
        }
        for (index, id) in ["p1", "p2", "p3"].into_iter().enumerate() {
            let battery_array = (id != "p3").then_some("ba");
            installation.packs.push(pack(id, battery_array, kwh[index]));
            installation
                .adapters
                .push(adapter(&format!("{id}.adapter"), id));
            inputs.latest.push(LatestReading {
                device_id: id.into(),
                adapter_id: format!("{id}.adapter"),
                device_type: "battery_pack".into(),
                system_id: "s".into(),
                ts: NOW - age,
                committed_at: NOW,
            });
            inputs.banks.insert(
                (id.into(), NOW - age),
                BatteryBankSample {
                    pack_id: id.into(),
                    ts: NOW - age,
                    soc_pct: Some(socs[index]),
                    ..BatteryBankSample::default()
                },
            );
        }
        inputs
    }

    #[test]
    fn battery_array_soc_is_capacity_weighted_only_when_every_pack_has_a_capacity() {
        let weighted = system_now(&inputs(
            [Some(10.0), Some(30.0), Some(5.0)],
            [80.0, 40.0, 90.0],
            1000,
        ))
        .unwrap();
        let ba = &weighted.battery_arrays[0];
        assert_eq!((ba.soc_pct, ba.soc_capacity_weighted), (Some(50.0), true));
        assert_eq!(weighted.arrays[0].totals.battery_soc_pct, Some(50.0));
        assert_eq!(weighted.arrays[0].totals.soc_source, SocSource::Pack);
        // System: battery array (40 kWh at 50 %) and the loose pack (5 kWh at 90 %).
        let system_soc = weighted.totals.battery_soc_pct.unwrap();
        assert!((system_soc - (50.0 * 40.0 + 90.0 * 5.0) / 45.0).abs() < 1e-9);

        let plain = system_now(&inputs(
            [Some(10.0), None, Some(5.0)],
            [80.0, 40.0, 90.0],
            1000,
        ))
        .unwrap();
        let ba = &plain.battery_arrays[0];
        assert_eq!((ba.soc_pct, ba.soc_capacity_weighted), (Some(60.0), false));
        // A battery array of unknown capacity makes the system a plain mean too.
        assert_eq!(plain.totals.battery_soc_pct, Some((60.0 + 90.0) / 2.0));
    }

    #[test]
    fn silent_packs_fall_back_to_inverter_soc_everywhere() {
        // Packs last reported a minute ago (poll 5 s): stale.
        let now = system_now(&inputs(
            [Some(10.0), Some(30.0), Some(5.0)],
            [80.0, 40.0, 90.0],
            60_000,
        ))
        .unwrap();
        let ba = &now.battery_arrays[0];
        assert_eq!((ba.soc_pct, ba.soc_source), (None, SocSource::None));
        assert_eq!(ba.stale.len(), 2);
        let array = &now.arrays[0].totals;
        assert_eq!(
            (array.battery_soc_pct, array.soc_source),
            (Some(60.0), SocSource::Inverter)
        );
        assert_eq!(
            (now.totals.battery_soc_pct, now.totals.soc_source),
            (Some(60.0), SocSource::Inverter)
        );
        let mut stale: Vec<&str> = now.stale.iter().map(|d| d.device_id.as_str()).collect();
        stale.sort();
        assert_eq!(stale, ["p1", "p2", "p3"]);
    }
}
