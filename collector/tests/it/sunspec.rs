//! The SunSpec driver against simulated SunSpec devices over real Modbus TCP: the marker is found at
//! each of the three bases, the chain is walked, integer models are scaled by their scale factors,
//! float models read as floats, and "not implemented" points are missing, never numbers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use solarhub_collector::drivers::sunspec::{self, Layouts};
use solarhub_collector::simulator::sunspec::{SimModel, SunSpecSim};
use solarhub_collector::simulator::{Clock, Endpoint, SimUnit};
use tokio_modbus::Slave;

const TIMEOUT: Duration = Duration::from_millis(500);

fn values(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn common() -> SimModel {
    SimModel {
        id: 1,
        length: 66,
        values: BTreeMap::new(),
        text: BTreeMap::from([
            ("Mn".into(), "Fronius".into()),
            ("Md".into(), "Symo 8.2-3-M".into()),
            ("SN".into(), "SIM-0042".into()),
        ]),
    }
}

/// An inverter (integer or float model) with storage and battery models, and a separate meter.
fn devices(float: bool) -> (Vec<SimModel>, Vec<SimModel>) {
    let inverter = values(&[
        ("AphA", 6.12),
        ("AphC", 6.08),
        ("PhVphA", 230.4),
        ("PhVphB", 231.1),
        ("PhVphC", 229.8),
        ("W", 4212.0),
        ("Hz", 49.98),
        ("WH", 12_345_678.0),
        ("DCW", 4390.0),
        ("TmpCab", 41.25),
        ("St", 4.0),
    ]);
    let meter = values(&[
        ("AphA", 4.5),
        ("AphB", -2.25),
        ("AphC", 1.75),
        ("PhVphA", 229.9),
        ("PhVphB", 230.6),
        ("PhVphC", 231.2),
        ("Hz", 50.01),
        ("W", -850.0),
        ("WphA", 300.0),
        ("WphB", -1400.0),
        ("WphC", 250.0),
        ("TotWhExp", 2_345_678.0),
        ("TotWhImp", 8_765_432.0),
    ]);
    let (inverter_id, inverter_len, meter_id, meter_len) = if float {
        (113, 60, 213, 124)
    } else {
        (103, 50, 203, 105)
    };
    let inverter_models = vec![
        common(),
        SimModel {
            id: inverter_id,
            length: inverter_len,
            values: inverter,
            text: BTreeMap::new(),
        },
        SimModel {
            id: 124,
            length: 24,
            values: values(&[("ChaState", 67.5), ("InBatV", 51.23)]),
            text: BTreeMap::new(),
        },
        SimModel {
            id: 802,
            length: 62,
            values: values(&[
                ("SoC", 67.5),
                ("SoH", 97.0),
                ("V", 51.23),
                ("A", -12.5),
                ("W", -640.0),
            ]),
            text: BTreeMap::new(),
        },
    ];
    (
        inverter_models,
        vec![
            common(),
            SimModel {
                id: meter_id,
                length: meter_len,
                values: meter,
                text: BTreeMap::new(),
            },
        ],
    )
}

/// Serves the two devices (units 1 and 2) over Modbus TCP, or as Modbus RTU on a serial line.
async fn serve(base: u16, float: bool, serial: bool) -> solarhub_collector::bus::Transport {
    let layouts = Layouts::builtin();
    let (inverter, meter) = devices(float);
    let units: BTreeMap<u8, Arc<dyn SimUnit>> = BTreeMap::from([
        (
            1u8,
            Arc::new(SunSpecSim::new(base, &inverter, &layouts)) as Arc<dyn SimUnit>,
        ),
        (
            2u8,
            Arc::new(SunSpecSim::new(base, &meter, &layouts)) as Arc<dyn SimUnit>,
        ),
    ]);
    let endpoint = Arc::new(Endpoint::with_units(units, Clock::Real));
    if serial {
        let pty = solarhub_collector::bus::serial::pseudo_terminal().unwrap();
        let path = pty.path.clone();
        tokio::spawn(async move {
            let served = solarhub_collector::simulator::rtu::serve_rtu(pty.device, endpoint).await;
            drop(pty.slave);
            served
        });
        return solarhub_collector::bus::Transport::RtuSerial {
            path,
            settings: solarhub_collector::bus::serial::SerialSettings::default(),
        };
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(solarhub_collector::simulator::serve_tcp(listener, endpoint));
    solarhub_collector::bus::Transport::Tcp(address)
}

fn close(fields: &BTreeMap<String, f64>, field: &str, want: f64, tolerance: f64) {
    let got = *fields
        .get(field)
        .unwrap_or_else(|| panic!("{field} missing from {fields:?}"));
    assert!(
        (got - want).abs() <= tolerance,
        "{field}: {got}, want {want}"
    );
}

async fn reads_every_model(base: u16, float: bool, serial: bool) {
    let transport = serve(base, float, serial).await;
    let layouts = Layouts::builtin();
    let mut context = solarhub_collector::bus::connect(&transport).await.unwrap();
    tokio_modbus::prelude::SlaveContext::set_slave(&mut context, Slave(1));
    let (found_base, models) = sunspec::discover(&mut context, &layouts, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(found_base, base);
    let ids: Vec<u16> = models.iter().map(|m| m.id).collect();
    assert_eq!(
        ids,
        if float {
            vec![1, 113, 124, 802]
        } else {
            vec![1, 103, 124, 802]
        }
    );

    let reading = sunspec::poll(&mut context, &layouts, &models, TIMEOUT).await;
    assert!(reading.failures.is_empty(), "{:?}", reading.failures);
    let f = &reading.fields;
    // Integer points are exact to their scale factor (10^-2 here); floats to f32 precision.
    let t = if float { 0.01 } else { 0.005 };
    close(f, "power_w", 4212.0, t);
    close(f, "pv_power_w", 4390.0, t);
    close(
        f,
        "pv_energy_total_wh",
        12_345_678.0,
        if float { 1.0 } else { 0.5 },
    );
    close(f, "frequency_hz", 49.98, t);
    close(f, "l1_voltage_v", 230.4, t);
    close(f, "l1_current_a", 6.12, t);
    close(f, "inverter_temp_c", 41.25, t);
    close(f, "battery_soc_pct", 67.5, t);
    close(f, "battery_voltage_v", 51.23, t);
    // Model 802's signed current and power come through with their sign.
    close(f, "battery_current_a", -12.5, t);
    close(f, "battery_power_w", -640.0, t);
    // Not implemented (AphB was never set): missing, and said so.
    assert!(!f.contains_key("l2_current_a"), "{f:?}");
    assert!(
        reading.not_implemented.iter().any(|p| p.ends_with(".AphB")),
        "{:?}",
        reading.not_implemented
    );
    assert_eq!(
        reading.text.get("common.Mn").map(String::as_str),
        Some("Fronius")
    );
    assert_eq!(
        reading.text.get("common.SN").map(String::as_str),
        Some("SIM-0042")
    );

    tokio_modbus::prelude::SlaveContext::set_slave(&mut context, Slave(2));
    let (_, models) = sunspec::discover(&mut context, &layouts, TIMEOUT)
        .await
        .unwrap();
    let reading = sunspec::poll(&mut context, &layouts, &models, TIMEOUT).await;
    let f = &reading.fields;
    close(f, "power_w", -850.0, t);
    close(f, "l2_power_w", -1400.0, t);
    close(f, "l2_current_a", -2.25, t);
    close(
        f,
        "import_total_wh",
        8_765_432.0,
        if float { 1.0 } else { 0.5 },
    );
    close(
        f,
        "export_total_wh",
        2_345_678.0,
        if float { 1.0 } else { 0.5 },
    );
    close(f, "frequency_hz", 50.01, t);
}

#[tokio::test]
async fn integer_models_at_40000() {
    reads_every_model(40000, false, false).await;
}

#[tokio::test]
async fn integer_models_at_0() {
    reads_every_model(0, false, false).await;
}

#[tokio::test]
async fn float_models_at_50000() {
    reads_every_model(50000, true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_models_over_rtu_on_a_serial_line() {
    reads_every_model(40000, false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float_models_over_rtu_on_a_serial_line() {
    reads_every_model(0, true, true).await;
}

#[tokio::test]
async fn a_device_without_the_marker_is_refused() {
    let units: BTreeMap<u8, Arc<dyn SimUnit>> = BTreeMap::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let powdrive = Arc::new(solarhub_collector::simulator::SimDevice::new(
        "p",
        Arc::new(solarhub_collector::drivers::register_map::builtin_map("powdrive").unwrap()),
        solarhub_collector::simulator::model::DeviceModel::inverter(chrono_tz::UTC, 5000.0, 1),
        chrono::Utc::now(),
    ));
    let mut units = units;
    units.insert(1, powdrive);
    tokio::spawn(solarhub_collector::simulator::serve_tcp(
        listener,
        Arc::new(Endpoint::with_units(units, Clock::Real)),
    ));
    let mut context = tokio_modbus::client::tcp::connect_slave(address, Slave(1))
        .await
        .unwrap();
    let error = sunspec::discover(&mut context, &Layouts::builtin(), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        sunspec::SunSpecError::NoMarker(vec![0, 40000, 50000])
    );
}
