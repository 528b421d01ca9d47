//! `DataQualityService`: per-device data quality (`crate::quality`) as messages.

use solarhub_proto::time::timestamp;
use solarhub_proto::tonic::{Request, Response, Status};
use solarhub_proto::v1 as proto;
use solarhub_proto::v1::data_quality_service_server::DataQualityService;

use crate::quality::{DataQuality, DeviceQuality, PollWindow};

pub(crate) struct QualityApi {
    quality: DataQuality,
}

impl QualityApi {
    pub(crate) fn new(quality: DataQuality) -> QualityApi {
        QualityApi { quality }
    }
}

fn window(window: PollWindow) -> proto::PollWindow {
    let success_rate = window.success_rate();
    let PollWindow {
        polls,
        answered,
        timeouts,
        exceptions,
        other_failures,
        dropped,
    } = window;
    proto::PollWindow {
        polls,
        answered,
        timeouts,
        exceptions,
        other_failures,
        success_rate,
        dropped: dropped.into_iter().collect(),
    }
}

fn device(quality: DeviceQuality) -> proto::DeviceQuality {
    let DeviceQuality {
        device,
        last_seen,
        status,
        last_hour,
        last_day,
        hours_rolled,
        mean_coverage_pct,
    } = quality;
    proto::DeviceQuality {
        device_id: device.device_id,
        device_type: device.device_type.to_owned(),
        system_id: device.system_id,
        last_seen: last_seen.map(timestamp),
        status: status.as_str().to_owned(),
        last_hour: Some(window(last_hour)),
        last_day: Some(window(last_day)),
        coverage: Some(proto::RollupCoverage {
            hours_rolled,
            mean_coverage_pct,
        }),
    }
}

#[solarhub_proto::tonic::async_trait]
impl DataQualityService for QualityApi {
    async fn list_device_quality(
        &self,
        request: Request<proto::ListDeviceQualityRequest>,
    ) -> Result<Response<proto::ListDeviceQualityResponse>, Status> {
        let system = request.into_inner().system_id;
        let system = (!system.is_empty()).then_some(system);
        let report = self
            .quality
            .list(system)
            .await
            .map_err(super::server_info::status_from_db)?;
        Ok(Response::new(proto::ListDeviceQualityResponse {
            devices: report.devices.into_iter().map(device).collect(),
            as_of: Some(timestamp(report.as_of)),
        }))
    }

    async fn get_device_quality(
        &self,
        request: Request<proto::GetDeviceQualityRequest>,
    ) -> Result<Response<proto::DeviceQuality>, Status> {
        let device_id = request.into_inner().device_id;
        if device_id.is_empty() {
            return Err(Status::invalid_argument("device_id: required"));
        }
        match self
            .quality
            .get(device_id.clone())
            .await
            .map_err(super::server_info::status_from_db)?
        {
            Some(quality) => Ok(Response::new(device(quality))),
            None => Err(Status::not_found(format!(
                "device_id: no inverter, meter or battery pack {device_id:?}"
            ))),
        }
    }
}
