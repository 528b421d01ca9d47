//! `LiveService`: the "now" answers and the system watch, converted from `crate::live` values.

use std::pin::Pin;

use solarhub_proto::time::timestamp;
use solarhub_proto::tonic::{self, Request, Response, Status};
use solarhub_proto::v1 as proto;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::live::{self, Live, Reading};
use crate::values::{kwh, tidy};

pub(crate) struct LiveApi {
    live: Live,
    /// Ends a watch whose token is revoked (`None`: authentication is off).
    authenticator: Option<crate::auth::Authenticator>,
}

impl LiveApi {
    pub(crate) fn new(live: Live, authenticator: Option<crate::auth::Authenticator>) -> Self {
        LiveApi {
            live,
            authenticator,
        }
    }
}

fn text(value: Option<String>) -> String {
    value.unwrap_or_default()
}

fn soc_source(source: live::SocSource) -> i32 {
    match source {
        live::SocSource::None => proto::SocSource::Unspecified,
        live::SocSource::Pack => proto::SocSource::Pack,
        live::SocSource::Inverter => proto::SocSource::Inverter,
    }
    .into()
}

fn stale(devices: Vec<live::StaleDevice>) -> Vec<proto::StaleDevice> {
    devices
        .into_iter()
        .map(|d| proto::StaleDevice {
            device_id: d.device_id,
            device_type: d.device_type.to_owned(),
            last_ts: d.last_ts.map(timestamp),
            poll_interval_secs: d.poll_interval_secs,
        })
        .collect()
}

fn totals(t: live::PowerTotals) -> proto::PowerTotals {
    proto::PowerTotals {
        pv_power_w: tidy(t.pv_power_w),
        load_power_w: tidy(t.load_power_w),
        grid_power_w: tidy(t.grid_power_w),
        battery_power_w: tidy(t.battery_power_w),
        battery_soc_pct: tidy(t.battery_soc_pct),
        soc_source: soc_source(t.soc_source),
        battery_voltage_v: tidy(t.battery_voltage_v),
        battery_current_a: tidy(t.battery_current_a),
        grid_source: t.grid_source.to_owned(),
    }
}

fn inverter(i: live::InverterNow) -> proto::InverterNow {
    let Reading {
        adapter_id,
        poll_interval_secs,
        sample,
        stale,
    } = i.reading;
    let today = |value: Option<f64>| {
        if i.counters_are_today {
            kwh(value)
        } else {
            None
        }
    };
    let s = sample.as_ref();
    proto::InverterNow {
        inverter_id: i.inverter.inverter_id,
        array_id: i.inverter.array_id,
        system_id: i.inverter.system_id,
        name: i.inverter.name,
        adapter_id: text(adapter_id),
        ts: s.map(|s| timestamp(s.ts)),
        stale,
        poll_interval_secs,
        pv_power_w: s.and_then(|s| s.pv_power_w),
        load_power_w: s.and_then(|s| s.load_power_w),
        grid_power_w: s.and_then(|s| s.grid_power_w),
        battery_power_w: s.and_then(|s| s.battery_power_w),
        battery_soc_pct: s.and_then(|s| s.battery_soc_pct),
        battery_voltage_v: s.and_then(|s| s.battery_voltage_v),
        battery_current_a: s.and_then(|s| s.battery_current_a),
        inverter_mode: s.and_then(|s| s.inverter_mode),
        inverter_temp_c: s.and_then(|s| s.inverter_temp_c),
        pv_energy_today_kwh: today(s.and_then(|s| s.pv_energy_today_wh)),
        load_energy_today_kwh: today(s.and_then(|s| s.load_energy_today_wh)),
        grid_import_today_kwh: today(s.and_then(|s| s.grid_import_today_wh)),
        grid_export_today_kwh: today(s.and_then(|s| s.grid_export_today_wh)),
        battery_charge_today_kwh: today(s.and_then(|s| s.battery_charge_today_wh)),
        battery_discharge_today_kwh: today(s.and_then(|s| s.battery_discharge_today_wh)),
    }
}

fn meter(m: live::MeterNow) -> proto::MeterNow {
    let s = m.reading.sample.as_ref();
    proto::MeterNow {
        meter_id: m.meter.meter_id,
        system_id: m.meter.system_id,
        array_id: text(m.meter.array_id),
        name: m.meter.name,
        meter_type: m.meter.meter_type,
        adapter_id: text(m.reading.adapter_id.clone()),
        ts: s.map(|s| timestamp(s.ts)),
        stale: m.reading.stale,
        poll_interval_secs: m.reading.poll_interval_secs,
        power_w: s.and_then(|s| s.power_w),
        voltage_v: s.and_then(|s| s.voltage_v),
        current_a: s.and_then(|s| s.current_a),
        frequency_hz: s.and_then(|s| s.frequency_hz),
        power_factor: s.and_then(|s| s.power_factor),
        import_total_kwh: kwh(s.and_then(|s| s.import_total_wh)),
        export_total_kwh: kwh(s.and_then(|s| s.export_total_wh)),
        import_today_kwh: m.import_today_kwh,
        export_today_kwh: m.export_today_kwh,
    }
}

fn pack(p: live::BatteryPackNow) -> proto::BatteryPackNow {
    let s = p.reading.sample.as_ref();
    proto::BatteryPackNow {
        pack_id: p.pack.pack_id,
        battery_array_id: text(p.pack.battery_array_id),
        system_id: p.pack.system_id,
        name: p.pack.name,
        nominal_kwh: p.pack.nominal_kwh,
        adapter_id: text(p.reading.adapter_id.clone()),
        adapter_priority: p.adapter_priority,
        ts: s.map(|s| timestamp(s.ts)),
        stale: p.reading.stale,
        poll_interval_secs: p.reading.poll_interval_secs,
        voltage_v: s.and_then(|s| s.voltage_v),
        current_a: s.and_then(|s| s.current_a),
        power_w: s.and_then(|s| s.power_w),
        temperature_c: s.and_then(|s| s.temperature_c),
        soc_pct: s.and_then(|s| s.soc_pct),
        soh_pct: s.and_then(|s| s.soh_pct),
        batteries: p
            .batteries
            .into_iter()
            .map(|b| {
                let u = b.unit;
                let status = [
                    ("basic_st", u.basic_st),
                    ("volt_st", u.volt_st),
                    ("current_st", u.current_st),
                    ("temp_st", u.temp_st),
                    ("soh_st", u.soh_st),
                    ("coul_st", u.coul_st),
                    ("heater_st", u.heater_st),
                ]
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_owned(), value?)))
                .collect();
                proto::BatteryNow {
                    battery_id: u.battery_id,
                    index: b.battery_index,
                    voltage_v: u.voltage_v,
                    current_a: u.current_a,
                    temperature_c: u.temperature_c,
                    soc_pct: u.soc_pct,
                    soh_pct: u.soh_pct,
                    status,
                    cells: b
                        .cells
                        .into_iter()
                        .map(|(index, c)| proto::CellNow {
                            cell_id: c.cell_id,
                            index,
                            voltage_v: c.voltage_v,
                            temperature_c: c.temperature_c,
                            soc_pct: c.soc_pct,
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

fn battery_array(b: live::BatteryArrayNow) -> proto::BatteryArrayNow {
    proto::BatteryArrayNow {
        battery_array_id: b.battery_array.battery_array_id,
        system_id: b.battery_array.system_id,
        name: b.battery_array.name,
        inverter_array_id: text(b.inverter_array_id),
        soc_pct: tidy(b.soc_pct),
        soc_source: soc_source(b.soc_source),
        soc_capacity_weighted: b.soc_capacity_weighted,
        voltage_v: tidy(b.voltage_v),
        current_a: tidy(b.current_a),
        power_w: tidy(b.power_w),
        packs: b.packs.into_iter().map(pack).collect(),
        stale_devices: stale(b.stale),
    }
}

fn inverter_array(a: live::InverterArrayNow) -> proto::InverterArrayNow {
    proto::InverterArrayNow {
        array_id: a.array.array_id,
        system_id: a.array.system_id,
        name: a.array.name,
        totals: Some(totals(a.totals)),
        inverters: a.inverters.into_iter().map(inverter).collect(),
        meters: a.meters.into_iter().map(meter).collect(),
        battery_array: a.battery_array.map(battery_array),
        stale_devices: stale(a.stale),
    }
}

fn system(s: live::SystemNow) -> proto::SystemNow {
    let t = s.today;
    let f = s.financial;
    proto::SystemNow {
        system_id: s.system.system_id,
        name: s.system.name,
        timezone: s.system.timezone,
        as_of: Some(timestamp(s.as_of)),
        totals: Some(totals(s.totals)),
        arrays: s.arrays.into_iter().map(inverter_array).collect(),
        meters: s.meters.into_iter().map(meter).collect(),
        battery_arrays: s.battery_arrays.into_iter().map(battery_array).collect(),
        today: Some(proto::EnergyToday {
            date: t.date,
            pv_kwh: tidy(t.pv_kwh),
            load_kwh: tidy(t.load_kwh),
            grid_import_kwh: tidy(t.grid_import_kwh),
            grid_export_kwh: tidy(t.grid_export_kwh),
            battery_charge_kwh: tidy(t.battery_charge_kwh),
            battery_discharge_kwh: tidy(t.battery_discharge_kwh),
            grid_source: t.grid_source.to_owned(),
            source: t.source.to_owned(),
        }),
        financial: Some(proto::FinancialToday {
            currency: f.currency,
            peak_import_kwh: tidy(f.peak_import_kwh),
            offpeak_import_kwh: tidy(f.offpeak_import_kwh),
            import_cost: tidy(f.import_cost),
            export_credit: tidy(f.export_credit),
            net_cost: tidy(f.net_cost),
            solar_value: tidy(f.solar_value),
            note: f.note,
        }),
        stale_devices: stale(s.stale),
    }
}

/// An id field that must be set.
fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        let mut details = tonic_types::ErrorDetails::new();
        details.add_bad_request_violation(field, "must be set");
        return Err(<Status as tonic_types::StatusExt>::with_error_details(
            tonic::Code::InvalidArgument,
            format!("{field} must be set"),
            details,
        ));
    }
    Ok(())
}

use super::catalog::status;

type WatchStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<proto::WatchSystemResponse, Status>> + Send>>;

#[tonic::async_trait]
impl proto::live_service_server::LiveService for LiveApi {
    async fn get_system_now(
        &self,
        request: Request<proto::GetSystemNowRequest>,
    ) -> Result<Response<proto::SystemNow>, Status> {
        let request = request.into_inner();
        required("system_id", &request.system_id)?;
        let now = self
            .live
            .system_now(&request.system_id)
            .await
            .map_err(status)?;
        Ok(Response::new(system(now)))
    }

    async fn get_inverter_array_now(
        &self,
        request: Request<proto::GetInverterArrayNowRequest>,
    ) -> Result<Response<proto::InverterArrayNow>, Status> {
        let r = request.into_inner();
        required("array_id", &r.array_id)?;
        let now = self
            .live
            .inverter_array_now(&r.array_id, &r.system_id)
            .await
            .map_err(status)?;
        Ok(Response::new(inverter_array(now)))
    }

    async fn get_battery_array_now(
        &self,
        request: Request<proto::GetBatteryArrayNowRequest>,
    ) -> Result<Response<proto::BatteryArrayNow>, Status> {
        let r = request.into_inner();
        required("battery_array_id", &r.battery_array_id)?;
        let now = self
            .live
            .battery_array_now(&r.battery_array_id, &r.system_id)
            .await
            .map_err(status)?;
        Ok(Response::new(battery_array(now)))
    }

    async fn get_battery_pack_now(
        &self,
        request: Request<proto::GetBatteryPackNowRequest>,
    ) -> Result<Response<proto::BatteryPackNow>, Status> {
        let r = request.into_inner();
        required("pack_id", &r.pack_id)?;
        let now = self
            .live
            .battery_pack_now(&r.pack_id, &r.system_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pack(now)))
    }

    async fn get_inverter_now(
        &self,
        request: Request<proto::GetInverterNowRequest>,
    ) -> Result<Response<proto::InverterNow>, Status> {
        let r = request.into_inner();
        required("inverter_id", &r.inverter_id)?;
        let now = self
            .live
            .inverter_now(&r.inverter_id, &r.system_id)
            .await
            .map_err(status)?;
        Ok(Response::new(inverter(now)))
    }

    async fn get_meter_now(
        &self,
        request: Request<proto::GetMeterNowRequest>,
    ) -> Result<Response<proto::MeterNow>, Status> {
        let r = request.into_inner();
        required("meter_id", &r.meter_id)?;
        let now = self
            .live
            .meter_now(&r.meter_id, &r.system_id)
            .await
            .map_err(status)?;
        Ok(Response::new(meter(now)))
    }

    type WatchSystemStream = WatchStream;

    async fn watch_system(
        &self,
        request: Request<proto::WatchSystemRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let caller = super::caller(&request)?;
        let r = request.into_inner();
        required("system_id", &r.system_id)?;
        let updates = live::watch::watch(self.live.clone(), r.system_id)
            .await
            .map_err(status)?;
        let stream = ReceiverStream::new(updates).map(|update| {
            update
                .map(|u| proto::WatchSystemResponse {
                    now: Some(system(u.now)),
                    skipped_updates: u.skipped_updates,
                })
                .map_err(status)
        });
        Ok(Response::new(crate::auth::streams::while_valid(
            stream,
            self.authenticator.clone(),
            caller,
        )))
    }
}
