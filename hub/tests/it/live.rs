//! The "now" API through real ingest and real gRPC, on both backends: known readings go in as a
//! collector's batches, and every answer is checked field by field — array and system sums, the
//! capacity-weighted SOC, stale devices left out and listed, pack failover to the priority-2
//! adapter, the fallback to inverter SOC when packs are silent, today's energy and its price, and
//! NOT_FOUND with the hierarchy context.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{TimeZone, Timelike};
use common::{RunningHub, TestDb};
use solarhub_proto::tonic::Code;
use solarhub_proto::v1::collector_service_client::CollectorServiceClient;
use solarhub_proto::v1::live_service_client::LiveServiceClient;
use solarhub_proto::v1::*;
use tonic_types::StatusExt;

const COLLECTOR: &str = "site";
const TZ: chrono_tz::Tz = chrono_tz::Asia::Karachi;

/// The real-installation fixture with every adapter assigned to `site`, pack capacities, poll
/// intervals (inverters and meter 20 s, packs 4 s) and a tariff whose peak window starts at
/// `peak_start` (local HH:MM) and lasts two hours.
/// With no roller: today's energy comes from the devices' counters.
fn hub_for_live(db: &TestDb, peak_start: &str) -> RunningHub {
    hub_for_live_with(
        db,
        peak_start,
        solarhub_hub::server::ServeOptions {
            rollup_every: None,
            ..Default::default()
        },
    )
}

fn hub_for_live_with(
    db: &TestDb,
    peak_start: &str,
    options: solarhub_hub::server::ServeOptions,
) -> RunningHub {
    let hub = RunningHub::start_with(db, options);
    common::site::install_fixture(&mut hub.database.get().unwrap(), |installation| {
        for adapter in &mut installation.adapters {
            adapter.collector_id = Some(COLLECTOR.into());
            let mut config: serde_json::Value = serde_json::from_str(&adapter.config_json).unwrap();
            let poll = if adapter.device_category == "battery" {
                4.0
            } else {
                20.0
            };
            config["poll_interval_secs"] = poll.into();
            adapter.config_json = config.to_string();
        }
        for pack in &mut installation.packs {
            pack.nominal_kwh = Some(if pack.pack_id == "jkbms_bank" {
                10.0
            } else {
                5.0
            });
        }
        let (hour, minute) = peak_start.split_once(':').unwrap();
        let end_hour = (hour.parse::<u32>().unwrap() + 2) % 24;
        let system = installation.system.as_mut().unwrap();
        system.tariff_json = Some(
            serde_json::json!({
                "currency": "PKR",
                "price_offpeak_import": 50.0,
                "price_peak_import": 60.0,
                "price_export": 20.0,
                "peak_windows": [{"start": peak_start, "end": format!("{end_hour:02}:{minute}")}],
            })
            .to_string(),
        );
    });
    hub
}

fn reading(device: &str, adapter: &str, at: i64, fields: &[(&str, f64)]) -> DeviceReading {
    DeviceReading {
        device_id: device.into(),
        adapter_id: adapter.into(),
        ts: Some(solarhub_proto::time::timestamp(at)),
        fields: fields.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        ..DeviceReading::default()
    }
}

fn inverter(id: &str, at: i64, values: [f64; 13]) -> DeviceReading {
    let names = [
        "pv_power_w",
        "load_power_w",
        "grid_power_w",
        "battery_power_w",
        "battery_soc_pct",
        "battery_voltage_v",
        "battery_current_a",
        "pv_energy_today_wh",
        "load_energy_today_wh",
        "grid_import_today_wh",
        "grid_export_today_wh",
        "battery_charge_today_wh",
        "battery_discharge_today_wh",
    ];
    let fields: Vec<(&str, f64)> = names.into_iter().zip(values).collect();
    reading(id, &format!("{id}.adapter"), at, &fields)
}

fn meter(at: i64, power: f64, import_wh: f64, export_wh: f64) -> DeviceReading {
    reading(
        "grid_meter_1",
        "grid_meter_1.adapter",
        at,
        &[
            ("power_w", power),
            ("voltage_v", 230.1),
            ("frequency_hz", 50.0),
            ("import_total_wh", import_wh),
            ("export_total_wh", export_wh),
        ],
    )
}

fn jk(adapter: &str, at: i64, soc: f64, voltage: f64) -> DeviceReading {
    let mut pack = reading(
        "jkbms_bank",
        adapter,
        at,
        &[
            ("soc_pct", soc),
            ("voltage_v", voltage),
            ("current_a", 12.0),
            ("power_w", 636.0),
            ("temperature_c", 25.0),
        ],
    );
    pack.batteries = (1..=2)
        .map(|index| BatteryReading {
            index,
            fields: HashMap::from([
                ("voltage_v".to_owned(), 26.5),
                ("soc_pct".to_owned(), soc + f64::from(index)),
            ]),
            text: HashMap::from([("basic_st".to_owned(), "Charge".to_owned())]),
            cells: (1..=2)
                .map(|c| CellReading {
                    index: c,
                    fields: HashMap::from([(
                        "voltage_v".to_owned(),
                        3.3 + f64::from(index * 10 + c) / 1000.0,
                    )]),
                })
                .collect(),
        })
        .collect();
    pack
}

/// Sends one batch as the collector and checks that nothing in it was refused.
async fn send_async(
    client: &mut CollectorServiceClient<solarhub_proto::tonic::transport::Channel>,
    seq: u64,
    readings: Vec<DeviceReading>,
) -> Ack {
    let ack = client
        .send_batch(TelemetryBatch {
            command_results: Vec::new(),
            sent_at: None,
            polls: Vec::new(),
            collector_id: COLLECTOR.into(),
            seq,
            readings,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ack.refused.is_empty(), "{:?}", ack.refused);
    ack
}

fn send(hub: &RunningHub, seq: u64, readings: Vec<DeviceReading>) -> Ack {
    let mut client = CollectorServiceClient::new(hub.channel.clone());
    hub.runtime.block_on(send_async(&mut client, seq, readings))
}

#[track_caller]
fn close(actual: Option<f64>, expected: f64) {
    let actual = actual.unwrap_or_else(|| panic!("expected {expected}, got nothing"));
    assert!(
        (actual - expected).abs() < 1e-6,
        "expected {expected}, got {actual}"
    );
}

fn ms(ts: &Option<solarhub_proto::prost_types::Timestamp>) -> i64 {
    solarhub_proto::time::millis(ts.as_ref().unwrap())
}

/// Waits while the local day is less than five minutes old, so every reading of the test lies in
/// one local day.
fn away_from_midnight(margin_secs: u32) {
    let local = chrono::Utc::now().with_timezone(&TZ);
    let into_day = local.num_seconds_from_midnight();
    if into_day < margin_secs {
        std::thread::sleep(Duration::from_secs(u64::from(margin_secs + 1 - into_day)));
    }
}

fn every_now_answer(db: TestDb) {
    away_from_midnight(300);
    // The peak window starts at a minute edge 1-2 minutes ago: meter readings fall on both sides.
    let now = chrono::Utc::now().timestamp_millis();
    let edge = (now / 60_000 - 1) * 60_000;
    let edge_local = TZ.timestamp_millis_opt(edge).unwrap();
    let peak_start = format!("{:02}:{:02}", edge_local.hour(), edge_local.minute());
    let hub = hub_for_live(&db, &peak_start);
    let mut live = LiveServiceClient::new(hub.channel.clone());
    let t = now - 1_000;

    send(
        &hub,
        1,
        vec![
            inverter(
                "powdrive2",
                t,
                [
                    3000., 1200., -500., 400., 55., 52., 8., 12000., 6000., 1000., 3000., 2000.,
                    1500.,
                ],
            ),
            // Two minutes old: stale (poll 20 s).
            inverter(
                "senergy1",
                t - 120_000,
                [
                    2000., 800., 100., -300., 65., 54., -5., 8000., 4000., 0., 0., 0., 0.,
                ],
            ),
            inverter(
                "powdrive1",
                t,
                [
                    1500., 700., 200., -1000., 70., 51., -20., 5000., 3000., 500., 0., 1000., 800.,
                ],
            ),
            meter(edge - 30_000, 90.0, 1_000_000.0, 500_000.0),
            meter(edge, 120.0, 1_001_000.0, 500_300.0),
            meter(t, 150.5, 1_002_500.0, 500_800.0),
            jk("jkbms_bank.adapter1", t, 80.0, 53.0),
            jk("jkbms_bank.adapter2", t - 500, 79.0, 52.9),
            reading(
                "battery1",
                "battery1.adapter",
                t,
                &[
                    ("soc_pct", 40.0),
                    ("voltage_v", 50.0),
                    ("current_a", -4.0),
                    ("power_w", -200.0),
                ],
            ),
        ],
    );

    let system = hub
        .runtime
        .block_on(live.get_system_now(GetSystemNowRequest {
            system_id: "home".into(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(system.system_id, "home");
    assert_eq!(system.timezone, "Asia/Karachi");
    let totals = system.totals.unwrap();
    close(totals.pv_power_w, 3000. + 1500.);
    close(totals.load_power_w, 1200. + 700.);
    close(totals.battery_power_w, 400. - 1000.);
    close(totals.grid_power_w, 150.5);
    assert_eq!(totals.grid_source, "meters");
    close(totals.battery_voltage_v, (52. + 51.) / 2.);
    close(totals.battery_current_a, 8. - 20.);
    close(totals.battery_soc_pct, (80. * 10. + 40. * 5.) / 15.);
    assert_eq!(totals.soc_source(), SocSource::Pack);
    let stale: Vec<(&str, i64, f64)> = system
        .stale_devices
        .iter()
        .map(|d| (d.device_id.as_str(), ms(&d.last_ts), d.poll_interval_secs))
        .collect();
    assert_eq!(stale, [("senergy1", t - 120_000, 20.0)]);

    let arrays: HashMap<&str, &InverterArrayNow> = system
        .arrays
        .iter()
        .map(|a| (a.array_id.as_str(), a))
        .collect();
    let array1 = arrays["array1"];
    let a1 = array1.totals.as_ref().unwrap();
    close(a1.pv_power_w, 3000.);
    close(a1.load_power_w, 1200.);
    close(a1.grid_power_w, -500.);
    close(a1.battery_power_w, 400.);
    close(a1.battery_voltage_v, 52.);
    close(a1.battery_current_a, 8.);
    close(a1.battery_soc_pct, 80.);
    assert_eq!(a1.soc_source(), SocSource::Pack);
    assert_eq!(a1.grid_source, "inverters");
    assert_eq!(array1.stale_devices.len(), 1);
    assert_eq!(array1.stale_devices[0].device_id, "senergy1");
    let senergy = array1
        .inverters
        .iter()
        .find(|i| i.inverter_id == "senergy1")
        .unwrap();
    assert!(senergy.stale);
    close(senergy.pv_power_w, 2000.);
    assert_eq!(ms(&senergy.ts), t - 120_000);
    let battery_array1 = array1.battery_array.as_ref().unwrap();
    assert_eq!(battery_array1.battery_array_id, "battery_array1");
    assert_eq!(battery_array1.inverter_array_id, "array1");
    close(battery_array1.soc_pct, 80.);
    assert!(battery_array1.soc_capacity_weighted);
    close(battery_array1.voltage_v, 53.);
    close(battery_array1.current_a, 12.);
    close(battery_array1.power_w, 636.);
    let jk_pack = &battery_array1.packs[0];
    assert_eq!(
        (
            jk_pack.adapter_id.as_str(),
            jk_pack.adapter_priority,
            jk_pack.stale
        ),
        ("jkbms_bank.adapter1", 1, false)
    );
    close(jk_pack.soc_pct, 80.);
    let a2 = arrays["array2"].totals.as_ref().unwrap();
    close(a2.pv_power_w, 1500.);
    close(a2.grid_power_w, 200.);
    close(a2.battery_soc_pct, 40.);
    assert_eq!(a2.soc_source(), SocSource::Pack);
    assert!(arrays["array2"].stale_devices.is_empty());

    assert_eq!(system.meters.len(), 1);
    let grid = &system.meters[0];
    close(grid.power_w, 150.5);
    close(grid.import_total_kwh, 1002.5);
    close(grid.import_today_kwh, 2.5);
    close(grid.export_today_kwh, 0.8);

    let today = system.today.unwrap();
    assert_eq!(today.source, "device counters");
    assert_eq!(
        today.date,
        TZ.timestamp_millis_opt(t)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    );
    // Energy already produced does not go stale: senergy1's day counters count.
    close(today.pv_kwh, 12. + 8. + 5.);
    close(today.load_kwh, 6. + 4. + 3.);
    close(today.battery_charge_kwh, 2. + 1.);
    close(today.battery_discharge_kwh, 1.5 + 0.8);
    assert_eq!(today.grid_source, "meters");
    close(today.grid_import_kwh, 2.5);
    close(today.grid_export_kwh, 0.8);
    let money = system.financial.unwrap();
    assert_eq!(money.currency, "PKR");
    close(money.peak_import_kwh, 1.5);
    close(money.offpeak_import_kwh, 1.0);
    close(money.import_cost, 1.5 * 60. + 1.0 * 50.);
    close(money.export_credit, 0.8 * 20.);
    close(money.net_cost, 140. - 16.);
    close(money.solar_value, (25. - 0.8) * 50.);
    assert_eq!(money.note, "");

    // The pack answer carries the batteries and cells of the reading it shows.
    let pack = hub
        .runtime
        .block_on(live.get_battery_pack_now(GetBatteryPackNowRequest {
            pack_id: "jkbms_bank".into(),
            system_id: String::new(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(pack.battery_array_id, "battery_array1");
    assert_eq!(pack.system_id, "home");
    assert_eq!(ms(&pack.ts), t);
    type Cells = Vec<(i32, Option<f64>)>;
    let batteries: Vec<(i32, Option<f64>, Cells)> = pack
        .batteries
        .iter()
        .map(|b| {
            (
                b.index,
                b.soc_pct,
                b.cells.iter().map(|c| (c.index, c.voltage_v)).collect(),
            )
        })
        .collect();
    assert_eq!(
        batteries,
        (1..=2)
            .map(|b| (
                b,
                Some(80.0 + f64::from(b)),
                (1..=2)
                    .map(|c| (c, Some(3.3 + f64::from(b * 10 + c) / 1000.0)))
                    .collect()
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(pack.batteries[0].status["basic_st"], "Charge");

    let inverter_now = hub
        .runtime
        .block_on(live.get_inverter_now(GetInverterNowRequest {
            inverter_id: "powdrive1".into(),
            system_id: "home".into(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            inverter_now.array_id.as_str(),
            inverter_now.adapter_id.as_str(),
            inverter_now.stale
        ),
        ("array2", "powdrive1.adapter", false)
    );
    close(inverter_now.battery_soc_pct, 70.);
    close(inverter_now.pv_energy_today_kwh, 5.);
    let meter_now = hub
        .runtime
        .block_on(live.get_meter_now(GetMeterNowRequest {
            meter_id: "grid_meter_1".into(),
            system_id: String::new(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(meter_now.array_id, "");
    close(meter_now.frequency_hz, 50.);
    let array_now = hub
        .runtime
        .block_on(live.get_inverter_array_now(GetInverterArrayNowRequest {
            array_id: "array1".into(),
            system_id: String::new(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(&array_now, array1);
    let battery_array_now = hub
        .runtime
        .block_on(live.get_battery_array_now(GetBatteryArrayNowRequest {
            battery_array_id: "battery_array2".into(),
            system_id: String::new(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(battery_array_now.inverter_array_id, "array2");
    close(battery_array_now.soc_pct, 40.);

    // Packs fall silent (poll 4 s: stale after 12 s); the JK's priority-2 adapter keeps reporting.
    let wait = (t + 12_500 - chrono::Utc::now().timestamp_millis()).max(0);
    std::thread::sleep(Duration::from_millis(wait as u64));
    let t2 = chrono::Utc::now().timestamp_millis() - 200;
    send(
        &hub,
        2,
        vec![
            inverter(
                "powdrive2",
                t2,
                [
                    3100., 1200., -500., 400., 56., 52., 8., 12100., 6000., 1000., 3000., 2000.,
                    1500.,
                ],
            ),
            inverter(
                "powdrive1",
                t2,
                [
                    1500., 700., 200., -1000., 71., 51., -20., 5000., 3000., 500., 0., 1000., 800.,
                ],
            ),
            jk("jkbms_bank.adapter2", t2, 78.0, 52.8),
        ],
    );
    let system = hub
        .runtime
        .block_on(live.get_system_now(GetSystemNowRequest {
            system_id: "home".into(),
        }))
        .unwrap()
        .into_inner();
    let arrays: HashMap<&str, &InverterArrayNow> = system
        .arrays
        .iter()
        .map(|a| (a.array_id.as_str(), a))
        .collect();
    let failed_over = &arrays["array1"].battery_array.as_ref().unwrap().packs[0];
    assert_eq!(
        (
            failed_over.adapter_id.as_str(),
            failed_over.adapter_priority,
            failed_over.stale
        ),
        ("jkbms_bank.adapter2", 2, false)
    );
    close(failed_over.soc_pct, 78.);
    close(
        arrays["array1"].totals.as_ref().unwrap().battery_soc_pct,
        78.,
    );
    // battery1 is silent: array2 takes its inverter's SOC, and says so.
    let a2 = arrays["array2"].totals.as_ref().unwrap();
    close(a2.battery_soc_pct, 71.);
    assert_eq!(a2.soc_source(), SocSource::Inverter);
    let battery_array2 = arrays["array2"].battery_array.as_ref().unwrap();
    assert_eq!(battery_array2.soc_pct, None);
    assert_eq!(battery_array2.soc_source(), SocSource::Unspecified);
    assert_eq!(
        battery_array2.voltage_v, None,
        "a stale pack is not summed as 0"
    );
    assert_eq!(battery_array2.stale_devices[0].device_id, "battery1");
    assert_eq!(ms(&battery_array2.stale_devices[0].last_ts), t);
    // The system SOC: only battery arrays with pack data count.
    let totals = system.totals.unwrap();
    close(totals.battery_soc_pct, 78.);
    assert_eq!(totals.soc_source(), SocSource::Pack);
    let mut stale: Vec<&str> = system
        .stale_devices
        .iter()
        .map(|d| d.device_id.as_str())
        .collect();
    stale.sort();
    assert_eq!(stale, ["battery1", "senergy1"]);
}

fn not_found_with_context(db: TestDb) {
    let hub = hub_for_live(&db, "17:00");
    let mut live = LiveServiceClient::new(hub.channel.clone());
    let check = |status: solarhub_proto::tonic::Status, kind: &str, id: &str, owner: &str| {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let info = status.get_error_details().resource_info().cloned().unwrap();
        assert_eq!(
            (
                info.resource_type.as_str(),
                info.resource_name.as_str(),
                info.owner.as_str()
            ),
            (kind, id, owner),
            "{status:?}"
        );
    };
    let status = hub
        .runtime
        .block_on(live.get_system_now(GetSystemNowRequest {
            system_id: "cabin".into(),
        }))
        .unwrap_err();
    check(status, "system", "cabin", "");
    let status = hub
        .runtime
        .block_on(live.get_inverter_now(GetInverterNowRequest {
            inverter_id: "nope".into(),
            system_id: String::new(),
        }))
        .unwrap_err();
    check(status, "inverter", "nope", "");
    // It exists, but not in the system the request names.
    let status = hub
        .runtime
        .block_on(live.get_inverter_now(GetInverterNowRequest {
            inverter_id: "powdrive1".into(),
            system_id: "cabin".into(),
        }))
        .unwrap_err();
    check(status, "inverter", "powdrive1", "system cabin");
    assert_eq!(
        status_message(&hub, &mut live),
        "battery pack ghost not found in system home"
    );
    let status = hub
        .runtime
        .block_on(live.get_meter_now(GetMeterNowRequest {
            meter_id: "gone".into(),
            system_id: "home".into(),
        }))
        .unwrap_err();
    check(status, "meter", "gone", "system home");
    let status = hub
        .runtime
        .block_on(live.get_inverter_array_now(GetInverterArrayNowRequest {
            array_id: "array9".into(),
            system_id: String::new(),
        }))
        .unwrap_err();
    check(status, "inverter array", "array9", "");
    let status = hub
        .runtime
        .block_on(live.get_battery_array_now(GetBatteryArrayNowRequest {
            battery_array_id: "battery_array9".into(),
            system_id: String::new(),
        }))
        .unwrap_err();
    check(status, "battery array", "battery_array9", "");
    let status = hub
        .runtime
        .block_on(live.get_system_now(GetSystemNowRequest::default()))
        .unwrap_err();
    assert_eq!(
        common::error_fields(&status),
        (Code::InvalidArgument, vec!["system_id".to_owned()])
    );
    // No data yet is not an error: everything is unknown, and every device is listed as stale.
    let system = hub
        .runtime
        .block_on(live.get_system_now(GetSystemNowRequest {
            system_id: "home".into(),
        }))
        .unwrap()
        .into_inner();
    let totals = system.totals.unwrap();
    assert_eq!(
        (
            totals.pv_power_w,
            totals.battery_soc_pct,
            totals.soc_source()
        ),
        (None, None, SocSource::Unspecified)
    );
    assert_eq!(system.stale_devices.len(), 3 + 1 + 2);
    assert!(system.stale_devices.iter().all(|d| d.last_ts.is_none()));
}

fn status_message(
    hub: &RunningHub,
    live: &mut LiveServiceClient<solarhub_proto::tonic::transport::Channel>,
) -> String {
    hub.runtime
        .block_on(live.get_battery_pack_now(GetBatteryPackNowRequest {
            pack_id: "ghost".into(),
            system_id: "home".into(),
        }))
        .unwrap_err()
        .message()
        .to_owned()
}

/// Once the roller has rolled today's hours, today's energy and its price come from them.
fn today_from_rollups(db: TestDb) {
    away_from_midnight(700);
    let now = chrono::Utc::now().timestamp_millis();
    // A peak window from the start of the previous local hour, four hours long: every hour with
    // data lies inside it.
    let hour_ago = TZ.timestamp_millis_opt(now - 3_600_000).unwrap();
    let peak_start = format!("{:02}:00", hour_ago.hour());
    let hub = hub_for_live_with(
        &db,
        &peak_start,
        solarhub_hub::server::ServeOptions {
            rollup_every: Some(Duration::from_millis(200)),
            ..Default::default()
        },
    );
    let (from, to) = (now - 600_000, now - 1_000);
    let mut readings = Vec::new();
    let mut ts = from;
    while ts <= to {
        readings.push(reading(
            "powdrive1",
            "powdrive1.adapter",
            ts,
            &[("pv_power_w", 1200.0)],
        ));
        readings.push(reading(
            "grid_meter_1",
            "grid_meter_1.adapter",
            ts,
            &[("power_w", 2000.0)],
        ));
        ts += 10_000;
    }
    let last = ts - 10_000;
    send(&hub, 1, readings);
    let hours = (last - from) as f64 / 3_600_000.0;
    let mut live = LiveServiceClient::new(hub.channel.clone());
    let system = hub.runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let system = live
                    .get_system_now(GetSystemNowRequest {
                        system_id: "home".into(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                if system.today.as_ref().unwrap().source == "rollups" {
                    return system;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("the roller rolls today's hours")
    });
    let today = system.today.unwrap();
    close(today.pv_kwh, 1.2 * hours);
    close(today.grid_import_kwh, 2.0 * hours);
    assert_eq!(today.grid_source, "meters");
    let money = system.financial.unwrap();
    close(money.peak_import_kwh, 2.0 * hours);
    close(money.offpeak_import_kwh, 0.0);
    close(money.import_cost, 2.0 * hours * 60.0);
}

/// The newest powdrive1 reading a system answer shows.
fn powdrive1_ts(system: &SystemNow) -> Option<i64> {
    system
        .arrays
        .iter()
        .flat_map(|a| &a.inverters)
        .find(|i| i.inverter_id == "powdrive1")
        .and_then(|i| i.ts.as_ref())
        .map(solarhub_proto::time::millis)
}

fn powdrive1_batch(at: i64) -> Vec<DeviceReading> {
    vec![inverter(
        "powdrive1",
        at,
        [
            1500., 700., 200., -1000., 70., 51., -20., 5000., 3000., 500., 0., 1000., 800.,
        ],
    )]
}

fn watchers_see_every_commit_and_never_slow_ingest(db: TestDb) {
    let hub = hub_for_live(&db, "17:00");
    let start = chrono::Utc::now().timestamp_millis();
    let at = |seq: u64| start + seq as i64 * 10;
    let burst = 300u64;
    // A burst of SendBatch calls; a stuck ingest fails the test instead of hanging it.
    let send_burst = |seqs: std::ops::Range<u64>| {
        let mut client = CollectorServiceClient::new(hub.channel.clone());
        let began = std::time::Instant::now();
        hub.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(120), async {
                for seq in seqs {
                    send_async(&mut client, seq, powdrive1_batch(at(seq))).await;
                }
            })
            .await
            .expect("every batch is acked while a watcher is stalled")
        });
        began.elapsed()
    };
    // Baseline: the same burst with nobody watching.
    let unwatched = send_burst(1..1 + burst);

    let watch = |channel: solarhub_proto::tonic::transport::Channel| {
        hub.runtime
            .block_on(
                LiveServiceClient::new(channel).watch_system(WatchSystemRequest {
                    system_id: "home".into(),
                }),
            )
            .unwrap()
            .into_inner()
    };
    let mut prompt = watch(hub.channel.clone());
    // A dashboard on a slow link: a small flow-control window, and it does not read until the end.
    let slow_link = hub.runtime.block_on(async {
        solarhub_proto::tonic::transport::Channel::from_shared(hub.url.clone())
            .unwrap()
            .initial_stream_window_size(Some(4 * 1024))
            .connect()
            .await
            .unwrap()
    });
    let mut stalled = watch(slow_link);
    let first = hub.runtime.block_on(prompt.message()).unwrap().unwrap();
    assert_eq!(first.skipped_updates, 0);
    assert_eq!(powdrive1_ts(first.now.as_ref().unwrap()), Some(at(burst)));

    // Each commit reaches the prompt watcher within a second of its ack.
    let mut latencies = Vec::new();
    let mut seq = burst;
    for _ in 0..20 {
        seq += 1;
        send(&hub, seq, powdrive1_batch(at(seq)));
        let acked = std::time::Instant::now();
        hub.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), watch_until(&mut prompt, at(seq)))
                .await
                .unwrap_or_else(|_| panic!("commit {seq} not seen by the watcher within 1 s"))
        });
        latencies.push(acked.elapsed());
    }
    drop(prompt);
    latencies.sort();
    println!(
        "watch latency after ack: median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );

    // The same burst while the stalled watcher is open: every batch is acked.
    let watched = send_burst(seq + 1..seq + 1 + burst);
    let last = seq + burst;
    println!(
        "{burst} batches: {unwatched:?} unwatched, {watched:?} with a stalled watcher (ratio {:.2})",
        watched.as_secs_f64() / unwatched.as_secs_f64()
    );
    // The stalled watcher then catches up with merged states, not one per commit, and every
    // commit is accounted for in skipped_updates.
    let commits = last - burst;
    let (messages, accounted) = hub.runtime.block_on(async {
        let mut messages = 0u64;
        let mut accounted = 0u64;
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let update = stalled.message().await.unwrap().unwrap();
                messages += 1;
                accounted += 1 + update.skipped_updates;
                if powdrive1_ts(update.now.as_ref().unwrap()) == Some(at(last)) {
                    break;
                }
            }
        })
        .await
        .expect("the stalled watcher reaches the newest state");
        (messages, accounted)
    });
    println!("stalled watcher: {messages} messages for {commits} commits");
    assert!(
        messages < commits / 2,
        "a slow watcher gets merged states ({messages} messages for {commits} commits)"
    );
    // Its first message is the state before these commits; the rest cover every one of them.
    assert!(
        accounted > commits,
        "skipped_updates accounts for every commit ({accounted} for {commits})"
    );
}

/// Four dashboards on one system: each commit is read once for all of them (the hub's counter of
/// computed states moves by about one per commit, not four), and each gets the state with it.
fn watchers_of_one_system_share_each_state(db: TestDb) {
    let metrics_port = common::free_port();
    let hub = hub_for_live_with(
        &db,
        "17:00",
        solarhub_hub::server::ServeOptions {
            rollup_every: None,
            metrics_listen: Some(([127, 0, 0, 1], metrics_port).into()),
            ..Default::default()
        },
    );
    let computed = || {
        let scrape = crate::operations::scrape(metrics_port).expect("the hub serves /metrics");
        crate::operations::value(&scrape, "solarhub_hub_watch_states_computed_total", &[])
            .expect("the counter is exposed")
    };
    let start = chrono::Utc::now().timestamp_millis();
    let at = |seq: u64| start + seq as i64 * 10;
    send(&hub, 1, powdrive1_batch(at(1)));
    let mut watchers: Vec<_> = (0..4)
        .map(|_| {
            hub.runtime
                .block_on(LiveServiceClient::new(hub.channel.clone()).watch_system(
                    WatchSystemRequest {
                        system_id: "home".into(),
                    },
                ))
                .unwrap()
                .into_inner()
        })
        .collect();
    for watcher in &mut watchers {
        let first = hub.runtime.block_on(watcher.message()).unwrap().unwrap();
        assert_eq!(powdrive1_ts(first.now.as_ref().unwrap()), Some(at(1)));
    }
    let before = computed();
    assert!(
        before >= 4.0,
        "each watcher's first state is its own ({before})"
    );
    let commits = 5u64;
    for seq in 2..2 + commits {
        send(&hub, seq, powdrive1_batch(at(seq)));
        for watcher in &mut watchers {
            hub.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), watch_until(watcher, at(seq)))
                    .await
                    .unwrap_or_else(|_| panic!("commit {seq} not seen by every watcher"))
            });
        }
    }
    let shared = computed() - before;
    println!("{shared} states computed for 4 watchers and {commits} commits");
    // Four apart would be 20; SQLite's watchers also look for other processes' commits, which can
    // make a second state for a commit now and then.
    assert!(
        shared >= commits as f64 && shared <= 2.0 * commits as f64,
        "one state per commit for the system's watchers, not one per watcher ({shared} for {commits} commits)"
    );
}

/// `array_samples` rows appear on the cadence, stamped on its multiples, with the array's sums and
/// SOC source; an array whose inverters are all stale gets no row (a gap, not zeros).
fn array_samples_follow_the_cadence(db: TestDb) {
    let every = Duration::from_millis(500);
    let hub = hub_for_live_with(
        &db,
        "17:00",
        solarhub_hub::server::ServeOptions {
            array_samples_every: Some(every),
            ..Default::default()
        },
    );
    let t = chrono::Utc::now().timestamp_millis();
    send(
        &hub,
        1,
        vec![
            inverter(
                "powdrive1",
                t,
                [
                    1500., 700., 200., -1000., 70., 51., -20., 5000., 3000., 500., 0., 1000., 800.,
                ],
            ),
            reading("battery1", "battery1.adapter", t, &[("soc_pct", 40.0)]),
            // array1's inverters are both stale.
            inverter(
                "powdrive2",
                t - 300_000,
                [
                    3000., 1000., 0., 0., 50., 51., 10., 3000., 3000., 3000., 3000., 3000., 3000.,
                ],
            ),
        ],
    );
    std::thread::sleep(Duration::from_millis(1600));
    let rows = stored_array_samples(&hub);
    assert!(rows.len() >= 2, "{rows:?}");
    for (array_id, ts, pv, grid, soc, source) in &rows {
        assert_eq!(
            array_id, "array2",
            "no rows for an array with only stale inverters"
        );
        assert_eq!(ts % every.as_millis() as i64, 0, "stamped on the cadence");
        // A row is the state the sampler read at its tick: on a slow machine the tick just
        // before the reading's time may run after the reading was committed, and include it.
        assert!(
            *ts > t - every.as_millis() as i64,
            "{ts} is long before {t}"
        );
        assert_eq!(
            (*pv, *grid, *soc, source.as_deref()),
            (Some(1500.), Some(200.), Some(40.), Some("pack"))
        );
    }
    let stamps: Vec<i64> = rows.iter().map(|r| r.1).collect();
    assert!(
        stamps.windows(2).all(|w| w[1] > w[0]),
        "one row per tick, never two for one stamp: {stamps:?}"
    );
}

#[allow(clippy::type_complexity)]
fn stored_array_samples(
    hub: &RunningHub,
) -> Vec<(
    String,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<String>,
)> {
    use diesel::sql_types::{BigInt, Double, Nullable, Text};
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        array_id: String,
        #[diesel(sql_type = BigInt)]
        ts: i64,
        #[diesel(sql_type = Nullable<Double>)]
        pv_power_w: Option<f64>,
        #[diesel(sql_type = Nullable<Double>)]
        grid_power_w: Option<f64>,
        #[diesel(sql_type = Nullable<Double>)]
        battery_soc_pct: Option<f64>,
        #[diesel(sql_type = Nullable<Text>)]
        soc_source: Option<String>,
    }
    let rows: Vec<Row> = diesel::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT array_id, ts, pv_power_w, grid_power_w, battery_soc_pct, soc_source \
             FROM array_samples ORDER BY array_id, ts",
        ),
        &mut *hub.database.get().unwrap(),
    )
    .unwrap();
    rows.into_iter()
        .map(|r| {
            (
                r.array_id,
                r.ts,
                r.pv_power_w,
                r.grid_power_w,
                r.battery_soc_pct,
                r.soc_source,
            )
        })
        .collect()
}

/// Two hubs on one database: a collector streams real simulated readings to hub A (in this
/// process), and hub B (a `solarhub-hub serve` process) answers every "now" call identically and
/// pushes the commits made through A to its own watchers.
fn two_hubs_answer_alike(db: TestDb) {
    use solarhub_collector::app::run_collector;
    use solarhub_collector::uplink::UplinkConfig;

    let hub_a = RunningHub::start(&db);
    let port = hub_a.runtime.block_on(common::site::simulated_gateway());
    // Polled every 2 s: the devices stay fresh for 6 s after the collector stops, while both hubs
    // are asked.
    common::site::assign_to_collector(&mut hub_a.database.get().unwrap(), COLLECTOR, port, 2.0);
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let b_port = common::free_port();
    let _hub_b = Kill(
        common::hub_binary()
            .args([
                "--database-url",
                &db.url_arg(),
                "serve",
                "--without-auth",
                "--listen",
                &format!("127.0.0.1:{b_port}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let b_channel = hub_a.runtime.block_on(async {
        let endpoint = solarhub_proto::tonic::transport::Channel::from_shared(format!(
            "http://127.0.0.1:{b_port}"
        ))
        .unwrap();
        for _ in 0..100 {
            if let Ok(channel) = endpoint.connect().await {
                return channel;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("hub B did not start");
    });
    let mut a = LiveServiceClient::new(hub_a.channel.clone());
    let mut b = LiveServiceClient::new(b_channel);
    let mut b_watch = hub_a
        .runtime
        .block_on(b.watch_system(WatchSystemRequest {
            system_id: "home".into(),
        }))
        .unwrap()
        .into_inner();

    let outbox = tempfile::tempdir().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let collector = hub_a.runtime.spawn({
        let config = UplinkConfig {
            access: solarhub_collector::uplink::hub_access::HubAccess::none(),
            hubs: vec![hub_a.url.clone()],
            collector_id: COLLECTOR.into(),
            version: "test".into(),
            batch_max_readings: 2,
            batch_max_wait: Duration::from_millis(200),
            max_backoff: Duration::from_secs(1),
            write_budget_per_day: solarhub_collector::control::DEFAULT_WRITE_BUDGET,
        };
        let dir = outbox.path().to_owned();
        async move { run_collector(config, &dir, None, std::sync::Arc::default(), stopped).await }
    });
    // Hub B's watcher sees the readings that hub A commits.
    let seen: Vec<i64> = hub_a.runtime.block_on(async {
        let mut seen = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), async {
            while seen.len() < 3 {
                let update = b_watch.message().await.unwrap().unwrap();
                if let Some(ts) = powdrive1_ts(update.now.as_ref().unwrap())
                    && seen.last() != Some(&ts)
                {
                    seen.push(ts);
                }
            }
        })
        .await
        .expect("hub B's watcher sees hub A's commits");
        seen
    });
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");

    // Stop the collector, then ask both hubs the same questions.
    hub_a.runtime.block_on(async {
        stop.send(true).unwrap();
        collector.await.unwrap().unwrap();
    });
    // And let the rollers finish what the last batches left, so today's energy holds still.
    hub_a.runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let pending =
                    solarhub_hub::db::rollups::pending(&mut hub_a.database.get().unwrap()).unwrap();
                if pending.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("the rollers roll what is pending");
    });
    let (from_a, from_b) = hub_a.runtime.block_on(async {
        let ask = |client: &mut LiveServiceClient<_>| {
            let mut client = client.clone();
            async move {
                let mut system = client
                    .get_system_now(GetSystemNowRequest {
                        system_id: "home".into(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                system.as_of = None;
                let inverter = client
                    .get_inverter_now(GetInverterNowRequest {
                        inverter_id: "powdrive1".into(),
                        system_id: "home".into(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let meter = client
                    .get_meter_now(GetMeterNowRequest {
                        meter_id: "grid_meter_1".into(),
                        system_id: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let array = client
                    .get_inverter_array_now(GetInverterArrayNowRequest {
                        array_id: "array2".into(),
                        system_id: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                (system, inverter, meter, array)
            }
        };
        (ask(&mut a).await, ask(&mut b).await)
    });
    assert_eq!(from_a, from_b, "both hubs give the same answers");
    let (system, inverter_now, meter_now, _) = from_b;
    assert!(inverter_now.pv_power_w.is_some() && meter_now.power_w.is_some());
    assert!(
        system
            .arrays
            .iter()
            .any(|a| a.array_id == "array2" && a.totals.as_ref().unwrap().pv_power_w.is_some()),
        "the answer has powdrive1's data: {system:?}"
    );
}

on_both_backends!(
    every_now_answer,
    not_found_with_context,
    watchers_see_every_commit_and_never_slow_ingest,
    watchers_of_one_system_share_each_state,
    two_hubs_answer_alike,
    array_samples_follow_the_cadence,
    today_from_rollups,
);

/// Two hubs on one Postgres database: a watcher on hub B sees every one of 40 commits made through
/// hub A, each within 10 s, announced with `NOTIFY` (there is no polling on Postgres: a broken
/// announcement path never shows a commit). How soon is the `watch` bench's figure.
#[test]
fn a_watcher_on_another_hub_sees_every_commit() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let hub_a = hub_for_live(&db, "17:00");
    let hub_b = RunningHub::start_with(
        &db,
        solarhub_hub::server::ServeOptions {
            rollup_every: None,
            ..Default::default()
        },
    );
    let watch = |hub: &RunningHub| {
        hub_a
            .runtime
            .block_on(LiveServiceClient::new(hub.channel.clone()).watch_system(
                WatchSystemRequest {
                    system_id: "home".into(),
                },
            ))
            .unwrap()
            .into_inner()
    };
    let mut on_a = watch(&hub_a);
    let mut on_b = watch(&hub_b);
    for stream in [&mut on_a, &mut on_b] {
        hub_a.runtime.block_on(stream.message()).unwrap().unwrap();
    }
    // Both listeners are up before the first measured commit (the LISTEN is made at start).
    std::thread::sleep(Duration::from_millis(500));
    let start = chrono::Utc::now().timestamp_millis();
    let mut client = CollectorServiceClient::new(hub_a.channel.clone());
    for seq in 1..=40u64 {
        let at = start + seq as i64 * 10;
        hub_a.runtime.block_on(async {
            let watched = async {
                tokio::time::timeout(Duration::from_secs(10), async {
                    tokio::join!(watch_until(&mut on_a, at), watch_until(&mut on_b, at))
                })
                .await
                .unwrap_or_else(|_| panic!("both watchers see commit {seq} within 10 s"))
            };
            tokio::join!(send_async(&mut client, seq, powdrive1_batch(at)), watched);
        });
    }
}

/// Reads `stream` until it shows powdrive1's reading at `at`.
async fn watch_until(
    stream: &mut solarhub_proto::tonic::Streaming<solarhub_proto::v1::WatchSystemResponse>,
    at: i64,
) {
    loop {
        let update = stream.message().await.unwrap().unwrap();
        if powdrive1_ts(update.now.as_ref().unwrap()) == Some(at) {
            return;
        }
    }
}
