//! The system's tariff (`systems.tariff_json`, imported from the old app's `billing:` section) and
//! what today's energy cost under it.
//!
//! Keys read: `currency`, `price_offpeak_import`, `price_peak_import`, `price_export` (per kWh) and
//! `peak_windows: [{start: "HH:MM", end: "HH:MM"}]` in the system's local time (a window whose end
//! is not after its start runs over midnight). Other keys (anchor day, fixed charges) belong to
//! billing periods, not to a day, and are not used here.

use chrono::{NaiveDate, NaiveTime};
use serde_json::Value;

use crate::catalog::System;
use crate::local_time::{local_ms, timezone};

use super::model::{EnergyToday, FinancialToday};

fn tariff(system: &System) -> Option<Value> {
    system
        .tariff_json
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .filter(Value::is_object)
}

fn price(tariff: &Value, key: &str) -> Option<f64> {
    tariff.get(key)?.as_f64().filter(|p| p.is_finite())
}

/// The tariff's peak windows on local `day` as UTC [start, end) ms.
pub fn peak_windows(system: &System, day: NaiveDate) -> Vec<(i64, i64)> {
    let Some(tariff) = tariff(system) else {
        return Vec::new();
    };
    let tz = timezone(system);
    let next_day = day.succ_opt().unwrap_or(day);
    let time = |value: Option<&Value>| NaiveTime::parse_from_str(value?.as_str()?, "%H:%M").ok();
    let mut windows = Vec::new();
    for window in tariff
        .get("peak_windows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(start), Some(end)) = (time(window.get("start")), time(window.get("end"))) else {
            continue;
        };
        if end > start {
            windows.push((local_ms(tz, day, start), local_ms(tz, day, end)));
        } else {
            // Over midnight: the morning part and the evening part of this day.
            windows.push((local_ms(tz, day, NaiveTime::MIN), local_ms(tz, day, end)));
            windows.push((
                local_ms(tz, day, start),
                local_ms(tz, next_day, NaiveTime::MIN),
            ));
        }
    }
    windows
}

/// Today's money: import priced peak / off-peak, export credited, solar used on site valued at the
/// off-peak price. `peak_import_kwh` is today's import inside the peak windows, when known.
pub fn financial_today(
    system: &System,
    today: &EnergyToday,
    peak_import_kwh: &Option<f64>,
) -> FinancialToday {
    let mut financial = FinancialToday {
        currency: system.currency.clone().unwrap_or_default(),
        ..FinancialToday::default()
    };
    let Some(tariff) = tariff(system) else {
        financial.note = "the system has no tariff".into();
        return financial;
    };
    if let Some(currency) = tariff.get("currency").and_then(Value::as_str) {
        financial.currency = currency.to_owned();
    }
    let offpeak_price = price(&tariff, "price_offpeak_import");
    let peak_price = price(&tariff, "price_peak_import").or(offpeak_price);
    let has_windows = tariff
        .get("peak_windows")
        .and_then(Value::as_array)
        .is_some_and(|w| !w.is_empty());
    let mut notes = Vec::new();
    if let Some(import) = today.grid_import_kwh {
        let peak = if has_windows {
            *peak_import_kwh
        } else {
            Some(0.0)
        };
        match peak {
            Some(peak) => {
                let peak = peak.min(import);
                financial.peak_import_kwh = Some(peak);
                financial.offpeak_import_kwh = Some(import - peak);
                if let (Some(p), Some(o)) = (peak_price, offpeak_price) {
                    financial.import_cost = Some(peak * p + (import - peak) * o);
                } else {
                    notes.push("the tariff has no import price");
                }
            }
            None => notes.push(
                "no cumulative grid import counter to split today's import into peak and off-peak",
            ),
        }
    } else {
        notes.push("today's grid import is not known");
    }
    if let (Some(export), Some(p)) = (today.grid_export_kwh, price(&tariff, "price_export")) {
        financial.export_credit = Some(export * p);
    }
    financial.net_cost = financial
        .import_cost
        .map(|cost| cost - financial.export_credit.unwrap_or(0.0));
    if let (Some(pv), Some(p)) = (today.pv_kwh, offpeak_price) {
        financial.solar_value = Some((pv - today.grid_export_kwh.unwrap_or(0.0)).max(0.0) * p);
    }
    financial.note = notes.join("; ");
    financial
}
