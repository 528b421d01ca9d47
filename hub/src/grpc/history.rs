//! `HistoryService`: hourly and daily rollups, and `Recompute`.

use solarhub_proto::answers::EnergyBucketRow;
use solarhub_proto::time::{millis, timestamp};
use solarhub_proto::tonic::{self, Request, Response, Status};
use solarhub_proto::v1 as proto;
use tonic_types::{ErrorDetails, StatusExt};

use crate::values::tidy;

use crate::db::aggregates::AggregateKind;
use crate::db::rollups::{self as store, DeviceScope, EnergyScope, EnergyView, Level};
use crate::rollup::history::AggregateScope;
use crate::rollup::history::History;

use super::catalog::status;

pub(crate) struct HistoryApi {
    history: History,
}

impl HistoryApi {
    pub(crate) fn new(history: History) -> Self {
        HistoryApi { history }
    }
}

fn invalid(field: &str, reason: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(field, reason);
    Status::with_error_details(
        tonic::Code::InvalidArgument,
        format!("{field}: {reason}"),
        details,
    )
}

/// Exactly one of the named ids must be set; returns its index.
fn one_of(ids: &[(&str, &str)]) -> Result<usize, Status> {
    let set: Vec<usize> = (0..ids.len()).filter(|&i| !ids[i].1.is_empty()).collect();
    match set.as_slice() {
        [one] => Ok(*one),
        _ => {
            let names: Vec<&str> = ids.iter().map(|(name, _)| *name).collect();
            Err(invalid(
                names[0],
                &format!("set exactly one of {}", names.join(", ")),
            ))
        }
    }
}

/// [from, to) in epoch ms; an unset end is open.
fn range(range: Option<proto::TimeRange>) -> Result<(i64, i64), Status> {
    let range = range.unwrap_or_default();
    let from = range.from.as_ref().map(millis).unwrap_or(i64::MIN);
    let to = range.to.as_ref().map(millis).unwrap_or(i64::MAX);
    if from >= to {
        return Err(invalid("range", "from must be before to"));
    }
    Ok((from, to))
}

/// [from, to) in epoch ms, both ends set and at most 366 days apart (the series answers).
fn bounded_range(request: Option<proto::TimeRange>) -> Result<(i64, i64), Status> {
    const LONGEST_MS: i64 = 366 * 86_400_000;
    let (from, to) = range(request)?;
    if from == i64::MIN || to == i64::MAX {
        return Err(invalid("range", "set both from and to"));
    }
    if to - from > LONGEST_MS {
        return Err(invalid("range", "at most 366 days"));
    }
    Ok((from, to))
}

/// A local hour's length (the hourly aggregates' buckets).
const HOUR_MS: i64 = 3_600_000;

fn hour(hour: Option<i32>) -> i32 {
    hour.unwrap_or_default()
}

/// A row as its bucket, the derived figures tidied (`values::tidy`), encoded by `push_row`.
fn bucket_row<'a>(v: &'a EnergyView<'_>) -> EnergyBucketRow<'a> {
    let f = &v.figures;
    EnergyBucketRow {
        system_id: &v.system_id,
        array_id: v.array_id.as_deref().unwrap_or_default(),
        inverter_id: v.inverter_id.as_deref().unwrap_or_default(),
        start_ms: v.bucket_start,
        end_ms: v.bucket_end,
        date: &v.date,
        hour: hour(v.hour),
        figures: [
            f.kwh[store::SOLAR],
            f.kwh[store::LOAD],
            f.kwh[store::CHARGE],
            f.kwh[store::DISCHARGE],
            f.kwh[store::IMPORT],
            f.kwh[store::EXPORT],
            f.avg_pv,
            f.peak_pv,
            f.avg_load,
            f.peak_load,
            f.avg_grid,
            f.peak_import,
            f.peak_export,
            f.avg_battery,
            f.soc_min,
            f.soc_avg,
            f.soc_max,
            v.battery_cycles,
        ]
        .map(tidy),
        sample_count: f.sample_count,
        coverage_pct: tidy(Some(f.coverage_pct)).unwrap_or_default(),
        source: source_of(v.legacy) as i32,
    }
}

/// A stored row's `source` as the API says it.
fn bucket_source(source: &str) -> proto::BucketSource {
    source_of(source == store::FROM_LEGACY)
}

/// Whether a row is the old app's, as the API says it.
fn source_of(legacy: bool) -> proto::BucketSource {
    match legacy {
        true => proto::BucketSource::Legacy,
        false => proto::BucketSource::Samples,
    }
}

macro_rules! battery_bucket {
    ($r:expr, $hour:expr, $cycles:expr) => {{
        let r = $r;
        proto::BatteryBucket {
            hour: $hour,
            cycles: $cycles,
            pack_id: r.pack_id,
            battery_array_id: r.battery_array_id.unwrap_or_default(),
            system_id: r.system_id,
            start: Some(timestamp(r.bucket_start)),
            end: Some(timestamp(r.bucket_end)),
            date: r.date,
            charge_kwh: r.charge_kwh,
            discharge_kwh: r.discharge_kwh,
            avg_power_w: r.avg_power_w,
            peak_charge_w: r.peak_charge_w,
            peak_discharge_w: r.peak_discharge_w,
            avg_voltage_v: r.avg_voltage_v,
            avg_current_a: r.avg_current_a,
            avg_temperature_c: r.avg_temperature_c,
            max_temperature_c: r.max_temperature_c,
            soc_min_pct: r.soc_min_pct,
            soc_avg_pct: r.soc_avg_pct,
            soc_max_pct: r.soc_max_pct,
            sample_count: r.sample_count,
            coverage_pct: r.coverage_pct,
            source: bucket_source(&r.source) as i32,
        }
    }};
}

macro_rules! meter_bucket {
    ($r:expr, $hour:expr) => {{
        let r = $r;
        proto::MeterBucket {
            hour: $hour,
            meter_id: r.meter_id,
            system_id: r.system_id,
            array_id: r.array_id.unwrap_or_default(),
            start: Some(timestamp(r.bucket_start)),
            end: Some(timestamp(r.bucket_end)),
            date: r.date,
            import_kwh: r.import_kwh,
            export_kwh: r.export_kwh,
            net_kwh: r.net_kwh,
            avg_power_w: r.avg_power_w,
            peak_import_w: r.peak_import_w,
            peak_export_w: r.peak_export_w,
            avg_voltage_v: r.avg_voltage_v,
            avg_current_a: r.avg_current_a,
            avg_frequency_hz: r.avg_frequency_hz,
            sample_count: r.sample_count,
            coverage_pct: r.coverage_pct,
            source: bucket_source(&r.source) as i32,
        }
    }};
}

impl HistoryApi {
    async fn energy(
        &self,
        request: proto::EnergyHistoryRequest,
        level: Level,
    ) -> Result<proto::EnergyHistory, Status> {
        let scope = match one_of(&[
            ("system_id", &request.system_id),
            ("array_id", &request.array_id),
            ("inverter_id", &request.inverter_id),
        ])? {
            0 => EnergyScope::System(request.system_id),
            1 => EnergyScope::Array(request.array_id),
            _ => EnergyScope::Inverter(request.inverter_id),
        };
        let (from, to) = range(request.range)?;
        // Room for the buckets the range can hold (one per hour or day), up to a year of hours
        // (an open range runs from i64::MIN to i64::MAX).
        let span = to.saturating_sub(from);
        let room = match level {
            Level::Hours => span / HOUR_MS,
            Level::Days => span / (24 * HOUR_MS) + 2,
        }
        .clamp(0, 8_784) as usize;
        // Each bucket encoded as its row is read (`solarhub_proto::answers`).
        self.history
            .energy(
                scope,
                level,
                from,
                to,
                proto::EnergyHistory::with_room_for(room),
                |answer, view| answer.push_row(&bucket_row(&view)),
            )
            .await
            .map_err(status)
    }

    async fn battery(
        &self,
        request: proto::BatteryHistoryRequest,
        level: Level,
    ) -> Result<proto::BatteryHistory, Status> {
        let scope = match one_of(&[
            ("system_id", &request.system_id),
            ("battery_array_id", &request.battery_array_id),
            ("pack_id", &request.pack_id),
        ])? {
            0 => DeviceScope::System(request.system_id),
            1 => DeviceScope::BatteryArray(request.battery_array_id),
            _ => DeviceScope::Device(request.pack_id),
        };
        let (from, to) = range(request.range)?;
        let (hours, days) = self
            .history
            .battery(scope, level, from, to)
            .await
            .map_err(status)?;
        let mut buckets: Vec<proto::BatteryBucket> = hours
            .into_iter()
            .map(|r| {
                let hour = r.hour_start;
                battery_bucket!(r, hour, None)
            })
            .collect();
        buckets.extend(days.into_iter().map(|r| {
            let cycles = r.cycles;
            battery_bucket!(r, 0, cycles)
        }));
        Ok(proto::BatteryHistory { buckets })
    }

    /// `GetCellHourly` and `GetBatteryUnitHourly`.
    async fn battery_device_hourly(
        &self,
        request: proto::BatteryDeviceHourlyRequest,
        kind: AggregateKind,
    ) -> Result<proto::BatteryDeviceHourly, Status> {
        /// The most points one answer carries: about 3.5 MB, under the 4 MB a gRPC client takes
        /// by default (a month of a 16-cell pack is 11,520 points; a year of one cell 8,784).
        const MOST_POINTS: usize = 15_000;
        let mut ids = vec![
            ("pack_id", request.pack_id),
            ("battery_id", request.battery_id),
        ];
        let cells = kind == AggregateKind::Cell;
        if cells {
            ids.push(("cell_id", request.cell_id));
        } else if !request.cell_id.is_empty() {
            return Err(invalid(
                "cell_id",
                "a battery's history has no cells: set pack_id or battery_id",
            ));
        }
        let named: Vec<(&str, &str)> = ids.iter().map(|(name, id)| (*name, id.as_str())).collect();
        let which = one_of(&named)?;
        let scope = match which {
            0 => AggregateScope::Pack,
            1 if cells => AggregateScope::Battery,
            _ => AggregateScope::Device,
        };
        let id = ids.swap_remove(which).1;
        let (from, to) = bounded_range(request.range)?;
        let points = self
            .history
            .aggregates(kind, scope, id, from, to, MOST_POINTS + 1)
            .await
            .map_err(status)?;
        if points.len() > MOST_POINTS {
            return Err(invalid(
                "range",
                &format!(
                    "more than {MOST_POINTS} points: ask for fewer days, or one battery or cell"
                ),
            ));
        }
        Ok(proto::BatteryDeviceHourly {
            points: points
                .into_iter()
                .map(|point| {
                    // Cells carry battery, pack, system; batteries carry pack, system.
                    let mut parents = point.parents.into_iter();
                    let battery_id = if cells {
                        parents.next().unwrap_or_default()
                    } else {
                        point.device.clone()
                    };
                    proto::BatteryDeviceHour {
                        device_id: point.device,
                        battery_id,
                        pack_id: parents.next().unwrap_or_default(),
                        system_id: parents.next().unwrap_or_default(),
                        start: Some(timestamp(point.ts)),
                        end: Some(timestamp(point.ts + HOUR_MS)),
                        samples: point.samples,
                        fields: point
                            .fields
                            .into_iter()
                            .map(|(name, value)| (name.to_owned(), value))
                            .collect(),
                    }
                })
                .collect(),
        })
    }

    async fn meter(
        &self,
        request: proto::MeterHistoryRequest,
        level: Level,
    ) -> Result<proto::MeterHistory, Status> {
        let scope = match one_of(&[
            ("system_id", &request.system_id),
            ("meter_id", &request.meter_id),
        ])? {
            0 => DeviceScope::System(request.system_id),
            _ => DeviceScope::Device(request.meter_id),
        };
        let (from, to) = range(request.range)?;
        let (hours, days) = self
            .history
            .meter(scope, level, from, to)
            .await
            .map_err(status)?;
        let mut buckets: Vec<proto::MeterBucket> = hours
            .into_iter()
            .map(|r| {
                let hour = r.hour_start;
                meter_bucket!(r, hour)
            })
            .collect();
        buckets.extend(days.into_iter().map(|r| meter_bucket!(r, 0)));
        Ok(proto::MeterHistory { buckets })
    }
}

#[tonic::async_trait]
impl proto::history_service_server::HistoryService for HistoryApi {
    async fn get_hourly_energy(
        &self,
        request: Request<proto::EnergyHistoryRequest>,
    ) -> Result<Response<proto::EnergyHistory>, Status> {
        Ok(Response::new(
            self.energy(request.into_inner(), Level::Hours).await?,
        ))
    }

    async fn get_daily_energy(
        &self,
        request: Request<proto::EnergyHistoryRequest>,
    ) -> Result<Response<proto::EnergyHistory>, Status> {
        Ok(Response::new(
            self.energy(request.into_inner(), Level::Days).await?,
        ))
    }

    async fn get_battery_hourly(
        &self,
        request: Request<proto::BatteryHistoryRequest>,
    ) -> Result<Response<proto::BatteryHistory>, Status> {
        Ok(Response::new(
            self.battery(request.into_inner(), Level::Hours).await?,
        ))
    }

    async fn get_battery_daily(
        &self,
        request: Request<proto::BatteryHistoryRequest>,
    ) -> Result<Response<proto::BatteryHistory>, Status> {
        Ok(Response::new(
            self.battery(request.into_inner(), Level::Days).await?,
        ))
    }

    async fn get_meter_hourly(
        &self,
        request: Request<proto::MeterHistoryRequest>,
    ) -> Result<Response<proto::MeterHistory>, Status> {
        Ok(Response::new(
            self.meter(request.into_inner(), Level::Hours).await?,
        ))
    }

    async fn get_meter_daily(
        &self,
        request: Request<proto::MeterHistoryRequest>,
    ) -> Result<Response<proto::MeterHistory>, Status> {
        Ok(Response::new(
            self.meter(request.into_inner(), Level::Days).await?,
        ))
    }

    async fn get_five_minute_series(
        &self,
        request: Request<proto::FiveMinuteSeriesRequest>,
    ) -> Result<Response<proto::FiveMinuteSeries>, Status> {
        let request = request.into_inner();
        let (kind, device_id) = match one_of(&[
            ("inverter_id", &request.inverter_id),
            ("meter_id", &request.meter_id),
            ("pack_id", &request.pack_id),
        ])? {
            0 => (AggregateKind::Inverter, request.inverter_id),
            1 => (AggregateKind::Meter, request.meter_id),
            _ => (AggregateKind::Pack, request.pack_id),
        };
        let (from, to) = bounded_range(request.range)?;
        // A year of 5-minute buckets at most.
        let points = self
            .history
            .aggregates(kind, AggregateScope::Device, device_id, from, to, 366 * 288)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::FiveMinuteSeries {
            points: points
                .into_iter()
                .map(|point| proto::FiveMinutePoint {
                    start: Some(timestamp(point.ts)),
                    samples: point.samples,
                    fields: point
                        .fields
                        .into_iter()
                        .map(|(name, value)| (name.to_owned(), value))
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn get_cell_hourly(
        &self,
        request: Request<proto::BatteryDeviceHourlyRequest>,
    ) -> Result<Response<proto::BatteryDeviceHourly>, Status> {
        Ok(Response::new(
            self.battery_device_hourly(request.into_inner(), AggregateKind::Cell)
                .await?,
        ))
    }

    async fn get_battery_unit_hourly(
        &self,
        request: Request<proto::BatteryDeviceHourlyRequest>,
    ) -> Result<Response<proto::BatteryDeviceHourly>, Status> {
        Ok(Response::new(
            self.battery_device_hourly(request.into_inner(), AggregateKind::BatteryUnit)
                .await?,
        ))
    }

    async fn recompute(
        &self,
        request: Request<proto::RecomputeRequest>,
    ) -> Result<Response<proto::RecomputeResponse>, Status> {
        let target = |request: &proto::RecomputeRequest| {
            format!("system {}", crate::limits::shown(&request.system_id))
        };
        crate::audit::name_target(&request, target(request.get_ref()));
        let request = request.into_inner();
        if request.system_id.is_empty() {
            return Err(invalid("system_id", "must be set"));
        }
        let range = match request.range {
            None => None,
            Some(r) if r.from.is_none() && r.to.is_none() => None,
            Some(r) => Some(range(Some(r))?),
        };
        // No reading exists before 2000 or far ahead (ingest refuses them): a range reaching
        // there is a mistake that would walk millions of empty hours.
        if let Some((from, to)) = range {
            if from != i64::MIN && from < crate::limits::EARLIEST_MS {
                return Err(invalid(
                    "range.from",
                    "before 2000-01-01, where the hub holds no readings",
                ));
            }
            if to != i64::MAX && to > crate::db::now_ms() + 2 * 86_400_000 {
                return Err(invalid(
                    "range.to",
                    "more than two days ahead, where the hub holds no readings",
                ));
            }
        }
        let (report, legacy) = self
            .history
            .recompute(request.system_id, range)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::RecomputeResponse {
            hours: report.hours as i64,
            days: report.days as i64,
            rows: report.rows as i64,
            frozen_hours: report.frozen_hours as i64,
            legacy: Some(proto::LegacyComparison {
                hours_compared: legacy.hours_compared as i64,
                hours_differing: legacy.hours_differing as i64,
                days_compared: legacy.days_compared as i64,
                days_differing: legacy.days_differing as i64,
                differences: legacy.differences,
            }),
        }))
    }
}
