//! Whether one reading may be stored: the catalog's word on who may write what, and the rules of
//! `limits` on every id, text, value and time in it. A reading breaking any rule is refused whole,
//! with the first rule it broke as its kind; nothing in it is stored, and ingest never adds to the
//! catalog (a battery or cell the pack did not declare is refused, not created).

use std::collections::BTreeMap;

use solarhub_proto::contract::{self, Field, battery_id, cell_id};

use super::{IncomingReading, MAX_FUTURE, RefusalKind};
use crate::db::ingest::{DeviceDirectory, DeviceEntry};
use crate::limits::{self, EARLIEST_MS, ValueProblem, shown, text_problem};

/// A reading refused: its kind and what to say.
pub(super) type Refused = (RefusalKind, String);

/// A reading the collector may store: its device's entry, and the adapter it is stored under
/// (the device's own, for a reading that named none).
pub(super) struct Checked<'a> {
    pub entry: &'a DeviceEntry,
    pub adapter_id: &'a str,
}

/// The directory's entry of `reading`'s device when the collector may store it, or why not.
pub(super) fn check_reading<'a>(
    directory: &'a DeviceDirectory,
    collector_id: &str,
    reading: &'a IncomingReading,
    now: i64,
) -> Result<Checked<'a>, Refused> {
    let device = &reading.device_id;
    if let Some(problem) = crate::catalog::id_problem(device) {
        return Err((
            RefusalKind::BadText,
            format!("device_id {:?} {problem}", shown(device)),
        ));
    }
    if !directory
        .assigned
        .get(collector_id)
        .is_some_and(|devices| devices.contains(device))
    {
        return Err((
            RefusalKind::Unassigned,
            format!("device {device} is not assigned to collector {collector_id}"),
        ));
    }
    if reading.ts < EARLIEST_MS {
        return Err((
            RefusalKind::TooOld,
            format!(
                "timestamp {} ms is before 2000-01-01; check the collector's clock",
                reading.ts
            ),
        ));
    }
    if reading.ts > now.saturating_add(MAX_FUTURE.as_millis() as i64) {
        return Err((
            RefusalKind::Future,
            format!(
                "timestamp {} is more than 5 minutes ahead of the hub's clock",
                reading.ts
            ),
        ));
    }
    let Some(entry) = directory.devices.get(device) else {
        return Err((
            RefusalKind::Unknown,
            format!("device {device} is not in the catalog"),
        ));
    };
    let adapter_id = if reading.adapter_id.is_empty() {
        directory
            .own_adapter
            .get(collector_id)
            .and_then(|devices| devices.get(device))
            .map(String::as_str)
    } else {
        directory
            .adapters
            .get(&reading.adapter_id)
            .filter(|(of, by)| of == device && by.as_deref() == Some(collector_id))
            .map(|_| reading.adapter_id.as_str())
    };
    let Some(adapter_id) = adapter_id else {
        return Err((
            RefusalKind::AdapterMismatch,
            format!(
                "adapter {:?} is not an enabled adapter of device {device} assigned to collector {collector_id} (leave adapter_id empty for the device's own)",
                shown(&reading.adapter_id)
            ),
        ));
    };
    let fields = match entry {
        DeviceEntry::Inverter { .. } => contract::inverter::ALL,
        DeviceEntry::Meter { .. } => contract::meter::ALL,
        DeviceEntry::Pack { .. } => contract::pack::ALL,
    };
    check_values(fields, &reading.fields, "")?;
    check_texts(&reading.text, "")?;
    if !reading.batteries.is_empty() && !matches!(entry, DeviceEntry::Pack { .. }) {
        return Err((
            RefusalKind::UnknownBattery,
            format!("device {device} is not a battery pack and has no batteries"),
        ));
    }
    for battery in &reading.batteries {
        let key = battery_id(device, battery.index);
        let at = format!("battery {}: ", battery.index);
        if limits::index_problem(battery.index).is_some() || !directory.batteries.contains(&key) {
            return Err((
                RefusalKind::UnknownBattery,
                format!(
                    "battery {} is not declared for pack {device} (declare it, or the pack's batteries_count)",
                    battery.index
                ),
            ));
        }
        check_values(contract::battery::ALL, &battery.fields, &at)?;
        check_texts(&battery.text, &at)?;
        for (index, cell) in &battery.cells {
            if limits::index_problem(*index).is_some()
                || !directory.cells.contains(&cell_id(&key, *index))
            {
                return Err((
                    RefusalKind::UnknownCell,
                    format!(
                        "cell {index} of battery {} is not declared for pack {device} (declare it, or the pack's cells_per_battery)",
                        battery.index
                    ),
                ));
            }
            check_values(contract::cell::ALL, cell, &format!("{at}cell {index}: "))?;
        }
    }
    Ok(Checked { entry, adapter_id })
}

/// Every value of a field the hub stores, finite and in its unit's range (the collector checked
/// already; the hub does not take its word).
fn check_values(fields: &[Field], values: &BTreeMap<String, f64>, at: &str) -> Result<(), Refused> {
    for field in fields {
        if let Some(value) = values.get(field.name)
            && let Some((problem, reason)) = limits::value_problem(field, *value)
        {
            let kind = match problem {
                ValueProblem::NotFinite => RefusalKind::NotFinite,
                ValueProblem::OutOfRange => RefusalKind::OutOfRange,
            };
            return Err((kind, format!("{at}{reason}")));
        }
    }
    Ok(())
}

fn check_texts(texts: &BTreeMap<String, String>, at: &str) -> Result<(), Refused> {
    for (name, text) in texts {
        if let Some(problem) = text_problem(name).or_else(|| text_problem(text)) {
            return Err((
                RefusalKind::BadText,
                format!("{at}text {:?} {problem}", shown(name)),
            ));
        }
    }
    Ok(())
}
