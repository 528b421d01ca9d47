//! The old app's own rollups are history too. It deletes raw samples after a year but keeps its
//! `hourly_energy`, `daily_summary`, `meter_hourly_energy` and `meter_daily` forever, so for a
//! long-running installation everything older than a year exists only there. Their rows for
//! hours and days that have no raw samples are carried over as rollup rows marked `legacy`
//! (arrays and the system summed from them like computed rows); where raw samples exist, solarhub
//! computes its own rows from them instead.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;

use crate::db::DbError;
use crate::db::legacy_source as source;
use crate::db::rollups::{self as store, DeviceKind, Figures};
use crate::local_time::{self, Bucket};
use crate::rollup::carried::{self, OldEnergy, OldMeter};

use super::copy::Copier;
use super::hierarchy::old_table;
use super::report::RollupReport;

const QUARTER_MS: i64 = 900_000;

/// Whether any of `quarters` (sorted) falls in `bucket`.
fn has_samples(quarters: &[i64], bucket: &Bucket) -> bool {
    let first = bucket.start.div_euclid(QUARTER_MS);
    let last = (bucket.end - 1).div_euclid(QUARTER_MS);
    let at = quarters.partition_point(|q| *q < first);
    quarters.get(at).is_some_and(|q| *q <= last)
}

fn date(text: Option<&str>) -> Option<NaiveDate> {
    let text = text?.trim();
    NaiveDate::parse_from_str(text.get(..10).unwrap_or(text), "%Y-%m-%d").ok()
}

/// The local hour `hour` of `date`, when that hour exists on that day.
fn hour_bucket(tz: Tz, date: NaiveDate, hour: i64) -> Option<Bucket> {
    let time = NaiveTime::from_hms_opt(u32::try_from(hour).ok()?, 0, 0)?;
    let bucket = local_time::hour_of(tz, local_time::local_ms(tz, date, time));
    (bucket.hour == Some(hour as i32) && bucket.date == date.format("%Y-%m-%d").to_string())
        .then_some(bucket)
}

/// The sample quarters of each device, loaded once per device.
struct Coverage {
    kind: DeviceKind,
    quarters: HashMap<String, Vec<i64>>,
}

impl Coverage {
    fn new(kind: DeviceKind) -> Coverage {
        Coverage {
            kind,
            quarters: HashMap::new(),
        }
    }

    fn has_samples(
        &mut self,
        copier: &mut Copier<'_>,
        device: &str,
        bucket: &Bucket,
    ) -> Result<bool, DbError> {
        if !self.quarters.contains_key(device) {
            let quarters = store::sample_quarters(copier.target, self.kind, device)?;
            self.quarters.insert(device.to_owned(), quarters);
        }
        Ok(self
            .quarters
            .get(device)
            .is_some_and(|q| has_samples(q, bucket)))
    }
}

impl Copier<'_> {
    /// Carries the old app's hourly and daily figures over for the hours and days without samples.
    pub(crate) fn carry_old_rollups(&mut self) -> Result<(), DbError> {
        let tz = self.zone.tz;
        let prefix = self.prefix.to_owned();
        let mut reports: HashMap<&'static str, RollupReport> = HashMap::new();
        let mut inverters = Coverage::new(DeviceKind::Inverter);
        let mut meters = Coverage::new(DeviceKind::Meter);

        let mut hours = Vec::new();
        if let Some(table) = old_table(self.source(), &prefix, "hourly_energy")? {
            let report = reports.entry("hourly_energy").or_default();
            for row in source::read_legacy_hours(self.source(), &table)? {
                report.read += 1;
                let inverter = self.id(row.inverter_id.as_deref());
                let bucket = date(row.date.as_deref())
                    .zip(row.hour)
                    .and_then(|(d, h)| hour_bucket(tz, d, h));
                let (Some(inverter_id), Some(bucket)) = (inverter, bucket) else {
                    report.unplaceable += 1;
                    continue;
                };
                if inverters.has_samples(self, &inverter_id, &bucket)? {
                    report.covered_by_samples += 1;
                    continue;
                }
                self.ensure_inverter(&inverter_id, None)?;
                hours.push(OldEnergy {
                    inverter_id,
                    bucket,
                    figures: Figures {
                        kwh: row.kwh(),
                        avg_pv: row.avg_pv_power_w,
                        avg_load: row.avg_load_power_w,
                        avg_grid: row.avg_grid_power_w,
                        // The old app's battery power is positive when charging.
                        avg_battery: row
                            .avg_battery_power_w
                            .map(|p| if p == 0.0 { 0.0 } else { -p }),
                        sample_count: row.sample_count.unwrap_or(0),
                        ..Figures::default()
                    },
                    battery_cycles: None,
                });
            }
        }

        let mut days = Vec::new();
        if let Some(table) = old_table(self.source(), &prefix, "daily_summary")? {
            let report = reports.entry("daily_summary").or_default();
            for row in source::read_old_days(self.source(), &table)? {
                report.read += 1;
                let inverter = self.id(row.inverter_id.as_deref());
                let (Some(inverter_id), Some(day)) = (inverter, date(row.date.as_deref())) else {
                    report.unplaceable += 1;
                    continue;
                };
                let bucket = local_time::day(tz, day);
                if inverters.has_samples(self, &inverter_id, &bucket)? {
                    report.covered_by_samples += 1;
                    continue;
                }
                self.ensure_inverter(&inverter_id, None)?;
                days.push(OldEnergy {
                    inverter_id,
                    bucket,
                    figures: Figures {
                        kwh: [
                            row.solar_kwh,
                            row.load_kwh,
                            None,
                            None,
                            row.grid_import_kwh,
                            row.grid_export_kwh,
                        ],
                        avg_pv: row.avg_pv_power_w,
                        peak_pv: row.peak_pv_power_w,
                        avg_load: row.avg_load_power_w,
                        peak_load: row.peak_load_power_w,
                        peak_import: row.peak_grid_import_w,
                        peak_export: row.peak_grid_export_w,
                        soc_min: row.soc_min_pct,
                        soc_avg: row.soc_avg_pct,
                        soc_max: row.soc_max_pct,
                        sample_count: row.sample_count.unwrap_or(0),
                        ..Figures::default()
                    },
                    battery_cycles: row.battery_cycles,
                });
            }
        }

        let mut meter_figures: [Vec<OldMeter>; 2] = [Vec::new(), Vec::new()];
        for (n, name) in ["meter_hourly_energy", "meter_daily"]
            .into_iter()
            .enumerate()
        {
            let Some(table) = old_table(self.source(), &prefix, name)? else {
                continue;
            };
            let hourly = n == 0;
            let report = reports.entry(name).or_default();
            for row in source::read_old_meter_figures(self.source(), &table)? {
                report.read += 1;
                let meter = self.id(row.meter_id.as_deref());
                let bucket = match hourly {
                    true => date(row.date.as_deref())
                        .zip(row.hour)
                        .and_then(|(d, h)| hour_bucket(tz, d, h)),
                    false => date(row.date.as_deref()).map(|d| local_time::day(tz, d)),
                };
                let (Some(meter_id), Some(bucket)) = (meter, bucket) else {
                    report.unplaceable += 1;
                    continue;
                };
                if meters.has_samples(self, &meter_id, &bucket)? {
                    report.covered_by_samples += 1;
                    continue;
                }
                self.ensure_meter(&meter_id, None)?;
                meter_figures[n].push(OldMeter {
                    meter_id,
                    bucket,
                    import_kwh: row.import_kwh,
                    export_kwh: row.export_kwh,
                    avg_power_w: row.avg_power_w,
                    peak_import_w: row.peak_import_w,
                    peak_export_w: row.peak_export_w,
                    avg_voltage_v: row.avg_voltage_v,
                    avg_current_a: row.avg_current_a,
                    avg_frequency_hz: row.avg_frequency_hz,
                    sample_count: row.sample_count.unwrap_or(0),
                });
            }
        }

        let system_id = self.system_id().to_owned();
        let [meter_hours, meter_days] = meter_figures;
        let mut rows = carried::carried_rows(
            self.target,
            &system_id,
            &hours,
            &days,
            &meter_hours,
            &meter_days,
        )?;
        // Rows an earlier run carried over (or solarhub computed) stay as they are.
        let stored = store::stored_keys(self.target, &system_id)?;
        let dropped = rows.drop_keys(&stored);
        for (old, ours) in [
            ("hourly_energy", "hourly_energy"),
            ("daily_summary", "daily_summary"),
            ("meter_hourly_energy", "meter_hourly_energy"),
            ("meter_daily", "meter_daily"),
        ] {
            if let Some(report) = reports.get_mut(old) {
                report.already_carried = dropped.get(ours).copied().unwrap_or(0);
            }
        }
        if let Some(r) = reports.get_mut("hourly_energy") {
            r.carried = rows.inverter_hours.len() as u64;
        }
        if let Some(r) = reports.get_mut("daily_summary") {
            r.carried = rows
                .inverter_days
                .iter()
                .filter(|d| {
                    days.iter()
                        .any(|o| o.inverter_id == d.inverter_id && o.bucket.start == d.bucket_start)
                })
                .count() as u64;
        }
        if let Some(r) = reports.get_mut("meter_hourly_energy") {
            r.carried = rows.meter_hours.len() as u64;
        }
        if let Some(r) = reports.get_mut("meter_daily") {
            r.carried = rows
                .meter_days
                .iter()
                .filter(|d| {
                    meter_days
                        .iter()
                        .any(|o| o.meter_id == d.meter_id && o.bucket.start == d.bucket_start)
                })
                .count() as u64;
        }
        store::insert_rows(self.target, &rows)?;
        for (name, report) in reports {
            self.report.rollups.insert(name.to_owned(), report);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_has_samples_when_a_quarter_of_it_does() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap();
        // 12:00-13:00 IST is 06:30-07:30 UTC: quarters 26..29 of the UTC day.
        let bucket = hour_bucket(tz, day, 12).unwrap();
        let base = bucket.start.div_euclid(QUARTER_MS);
        assert!(has_samples(&[base - 1, base + 3], &bucket));
        assert!(!has_samples(&[base - 1, base + 4], &bucket));
        // A spring-forward hour does not exist.
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert!(hour_bucket(berlin, NaiveDate::from_ymd_opt(2025, 3, 30).unwrap(), 2).is_none());
    }
}
