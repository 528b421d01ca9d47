//! The collector as a whole, from a config file of adapter assignments (the shape the hub sends):
//! every driver type runs against its simulator — map-based over TCP and an RTU gateway, SunSpec,
//! Pytes on a serial line, JK BMS through two gateways with failover — and every device reports.
//! A bad config is refused at start-up with the file, the entry and the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use solarhub_collector::drivers::register_map::builtin_map;
use solarhub_collector::drivers::sunspec::Layouts;
use solarhub_collector::simulator::jkbms::{JkBank, Line, serve_gateway};
use solarhub_collector::simulator::model::DeviceModel;
use solarhub_collector::simulator::pytes::{Console, serve_console};
use solarhub_collector::simulator::sunspec::{SimModel, SunSpecSim};
use solarhub_collector::simulator::{Clock, Endpoint, SimDevice, SimUnit, serve_tcp};
use solarhub_collector::uplink::assignment;

async fn listener() -> (tokio::net::TcpListener, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_driver_type_reports_from_one_config_file() {
    let tz: chrono_tz::Tz = "Asia/Karachi".parse().unwrap();
    let now = chrono::Utc::now();
    // A Modbus TCP inverter, and a meter behind an RTU-over-TCP gateway.
    let powdrive = Arc::new(SimDevice::new(
        "p",
        Arc::new(builtin_map("powdrive").unwrap()),
        DeviceModel::inverter(tz, 8000.0, 1),
        now,
    ));
    let (tcp, tcp_port) = listener().await;
    tokio::spawn(serve_tcp(
        tcp,
        Arc::new(Endpoint::new(
            BTreeMap::from([(1u8, powdrive)]),
            Clock::Real,
        )),
    ));
    let meter = Arc::new(SimDevice::new(
        "m",
        Arc::new(builtin_map("iammeter").unwrap()),
        DeviceModel::meter(tz, 2),
        now,
    ));
    let (gateway, gateway_port) = listener().await;
    tokio::spawn(solarhub_collector::simulator::rtu::serve_rtu_over_tcp(
        gateway,
        Arc::new(Endpoint::new(BTreeMap::from([(3u8, meter)]), Clock::Real)),
    ));
    // A SunSpec inverter.
    let layouts = Layouts::builtin();
    let sunspec_models = vec![SimModel {
        id: 103,
        length: 50,
        values: [("W", 3000.0), ("DCW", 3100.0), ("Hz", 50.0)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        text: BTreeMap::new(),
    }];
    let sunspec: Arc<dyn SimUnit> = Arc::new(SunSpecSim::new(40000, &sunspec_models, &layouts));
    let (sunspec_listener, sunspec_port) = listener().await;
    tokio::spawn(serve_tcp(
        sunspec_listener,
        Arc::new(Endpoint::with_units(
            BTreeMap::from([(1u8, sunspec)]),
            Clock::Real,
        )),
    ));
    // A Pytes console on a serial line.
    let pty = solarhub_collector::bus::serial::pseudo_terminal().unwrap();
    let pytes_path = pty.path.clone();
    let console = Arc::new(Console::new(2, 15));
    tokio::spawn(async move {
        let served = serve_console(pty.device, console).await;
        drop(pty.slave);
        served
    });
    // A JK bank heard through two gateways.
    let bank = Arc::new(JkBank::new(3, 16));
    let (jk_a, jk_a_port) = listener().await;
    let (jk_b, jk_b_port) = listener().await;
    tokio::spawn(serve_gateway(
        jk_a,
        bank.clone(),
        Arc::new(Line::default()),
        Duration::from_millis(100),
    ));
    tokio::spawn(serve_gateway(
        jk_b,
        bank,
        Arc::new(Line::default()),
        Duration::from_millis(100),
    ));

    let config = format!(
        r#"adapters:
  - {{adapter_id: powdrive1.adapter, device_id: powdrive1, type: powdrive, config: {{transport: tcp, host: 127.0.0.1, port: {tcp_port}, unit_id: 1, poll_interval_secs: 0.2}}}}
  - {{adapter_id: grid_meter_1.adapter, device_id: grid_meter_1, type: iammeter, config: {{transport: rtu_over_tcp, host: 127.0.0.1, port: {gateway_port}, unit_id: 3, poll_interval_secs: 0.2}}}}
  - {{adapter_id: fronius.adapter, device_id: fronius, type: sunspec, config: {{transport: tcp, host: 127.0.0.1, port: {sunspec_port}, poll_interval_secs: 0.2}}}}
  - {{adapter_id: battery1.adapter, device_id: battery1, type: pytes, config: {{serial_port: "{pytes}", baudrate: 115200, batteries: 2, cells_per_battery: 15, poll_interval_secs: 0.2}}}}
  - {{adapter_id: jkbms_bank.adapter1, device_id: jkbms_bank, type: jkbms_tcpip, priority: 1, config: {{connection_type: tcpip, host: 127.0.0.1, port: {jk_a_port}, batteries: 3, cells_per_battery: 16}}}}
  - {{adapter_id: jkbms_bank.adapter2, device_id: jkbms_bank, type: jkbms_tcpip, priority: 2, config: {{connection_type: tcpip, host: 127.0.0.1, port: {jk_b_port}, batteries: 3, cells_per_battery: 16}}}}
  - {{adapter_id: jkbms_bank.adapter3, device_id: jkbms_bank, type: jkbms_ble, priority: 3, config: {{bt_addresses: ["C8:47:80:1A:1F:04"]}}}}
"#,
        pytes = pytes_path.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.yaml");
    std::fs::write(&path, config).unwrap();
    let plan = assignment::load_file(&path).unwrap();
    assert_eq!(
        plan.unsupported.len(),
        1,
        "the Bluetooth adapter is reported, not refused"
    );
    assert_eq!(plan.failover.get("jkbms_bank").map(Vec::len), Some(2));

    let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runtime = tokio::spawn(solarhub_collector::bus::runtime::run(
        plan,
        sender,
        std::sync::Arc::new(solarhub_collector::observe::Observer::new()),
        stopped,
        Default::default(),
    ));
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let everyone = [
        "battery1",
        "fronius",
        "grid_meter_1",
        "jkbms_bank",
        "powdrive1",
    ];
    while seen.len() < everyone.len() {
        let Ok(Some(reading)) = tokio::time::timeout_at(deadline, receiver.recv()).await else {
            break;
        };
        assert!(!reading.fields.is_empty(), "{reading:?}");
        seen.entry(reading.device_id.clone())
            .or_default()
            .insert(reading.adapter_id.clone());
    }
    stop.send(true).unwrap();
    drop(receiver);
    let _ = tokio::time::timeout(Duration::from_secs(5), runtime).await;
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        everyone,
        "{seen:?}"
    );
}

#[test]
fn a_bad_config_is_refused_with_the_file_the_entry_and_the_reason() {
    let config = r#"adapters:
  - {adapter_id: a.adapter, device_id: a, type: powdrive, config: {transport: rtu, serial_port: /dev/ttyUSB0, baudrate: 12345}}
  - {adapter_id: b.adapter, device_id: b, type: senergy, config: {transport: tcp}}
  - {adapter_id: c.adapter, device_id: c, type: powdrive, config: {transport: rtu, serial_port: /dev/ttyUSB0, baudrate: 9600, unit_id: 300}}
  - {adapter_id: d.adapter, device_id: d, type: teleporter, config: {}}
  - {adapter_id: e.adapter, device_id: e, type: pytes, config: {serial_port: /dev/ttyUSB1}}
  - {adapter_id: f.adapter, device_id: f, type: modbus, config: {transport: tcp, host: 127.0.0.1, register_map_file: nope.json}}
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.yaml");
    std::fs::write(&path, config).unwrap();
    let error = assignment::load_file(&path).unwrap_err();
    let text = error.to_string();
    let file = path.display().to_string();
    for (entry, reason) in [
        (
            "adapters[0] (a.adapter)",
            "baudrate 12345 is not a supported baud rate",
        ),
        ("adapters[1] (b.adapter)", "host is required"),
        (
            "adapters[2] (c.adapter)",
            "unit_id must be a number in 0..=247",
        ),
        (
            "adapters[3] (d.adapter)",
            "unknown adapter type \"teleporter\"",
        ),
        ("adapters[4] (e.adapter)", "batteries is required"),
        ("adapters[5] (f.adapter)", "nope.json"),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(entry))
            .unwrap_or_else(|| panic!("no error for {entry}:\n{text}"));
        assert!(line.starts_with(&file) && line.contains(reason), "{line}");
    }
}
