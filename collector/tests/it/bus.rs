//! One task per bus: devices sharing a line never have requests in flight at the same time, each
//! keeps its own poll interval, and a device that stops answering backs off instead of stalling the
//! others.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use solarhub_collector::bus::{BusEvent, DeviceSpec, Transport, run_bus};
use solarhub_collector::drivers::register_map::builtin_map;
use solarhub_collector::simulator::model::DeviceModel;
use solarhub_collector::simulator::{Clock, Endpoint, Fault, SimDevice, serve_tcp};

struct Line {
    endpoint: Arc<Endpoint>,
    devices: Vec<Arc<SimDevice>>,
    address: std::net::SocketAddr,
}

/// An RS485-to-TCP gateway with `units` powdrive inverters behind it, answering each request after
/// `delay` (as a 9600-baud line would).
async fn gateway(units: u8, delay: Duration) -> Line {
    let map = Arc::new(builtin_map("powdrive").unwrap());
    let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let now = chrono::Utc::now();
    let devices: Vec<Arc<SimDevice>> = (1..=units)
        .map(|unit| {
            Arc::new(SimDevice::new(
                format!("inv{unit}"),
                map.clone(),
                DeviceModel::inverter(tz, 5000.0, u32::from(unit)),
                now,
            ))
        })
        .collect();
    let units_map: BTreeMap<u8, Arc<SimDevice>> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u8 + 1, d.clone()))
        .collect();
    let endpoint = Arc::new(Endpoint::new(units_map, Clock::Real).with_response_delay(delay));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve_tcp(listener, endpoint.clone()));
    Line {
        endpoint,
        devices,
        address,
    }
}

fn specs(units: u8, interval: Duration, timeout: Duration) -> Vec<DeviceSpec> {
    let map = Arc::new(builtin_map("powdrive").unwrap());
    (1..=units)
        .map(|unit| DeviceSpec {
            device_id: format!("inv{unit}"),
            adapter_id: format!("inv{unit}.adapter"),
            unit_id: unit,
            driver: solarhub_collector::bus::Driver::Map(map.clone()),
            poll_interval: interval,
            timeout,
        })
        .collect()
}

/// Runs the bus for `duration` and returns every event it sent.
async fn run_for(
    address: std::net::SocketAddr,
    devices: Vec<DeviceSpec>,
    duration: Duration,
) -> Vec<BusEvent> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_bus(
        Transport::Tcp(address),
        devices,
        sender,
        stopped,
        None,
    ));
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + duration;
    loop {
        tokio::select! {
            event = receiver.recv() => match event {
                Some(event) => events.push(event),
                None => break,
            },
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    events
}

fn readings_of(events: &[BusEvent], device: &str) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, BusEvent::Reading(r) if r.device_id == device))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_on_one_line_never_have_requests_in_flight_together() {
    let line = gateway(2, Duration::from_millis(3)).await;
    let events = run_for(
        line.address,
        specs(2, Duration::from_millis(10), Duration::from_millis(500)),
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(
        line.endpoint.max_in_flight(),
        1,
        "two requests were on the line at once"
    );
    for device in ["inv1", "inv2"] {
        assert!(
            readings_of(&events, device) >= 10,
            "{device}: {} readings",
            readings_of(&events, device)
        );
    }
    assert!(line.devices.iter().all(|d| d.requests() > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_on_one_serial_line_never_have_requests_in_flight_together() {
    let map = Arc::new(builtin_map("powdrive").unwrap());
    let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let now = chrono::Utc::now();
    let units: BTreeMap<u8, Arc<SimDevice>> = (1..=2u8)
        .map(|unit| {
            (
                unit,
                Arc::new(SimDevice::new(
                    format!("inv{unit}"),
                    map.clone(),
                    DeviceModel::inverter(tz, 5000.0, u32::from(unit)),
                    now,
                )),
            )
        })
        .collect();
    let endpoint =
        Arc::new(Endpoint::new(units, Clock::Real).with_response_delay(Duration::from_millis(3)));
    let pty = solarhub_collector::bus::serial::pseudo_terminal().unwrap();
    let path = pty.path.clone();
    let served = endpoint.clone();
    tokio::spawn(async move {
        let result = solarhub_collector::simulator::rtu::serve_rtu(pty.device, served).await;
        drop(pty.slave);
        result
    });
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let transport = Transport::RtuSerial {
        path,
        settings: solarhub_collector::bus::serial::SerialSettings::default(),
    };
    let task = tokio::spawn(run_bus(
        transport,
        specs(2, Duration::from_millis(10), Duration::from_millis(500)),
        sender,
        stopped,
        None,
    ));
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, receiver.recv()).await {
        events.push(event);
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(endpoint.max_in_flight(), 1);
    for device in ["inv1", "inv2"] {
        assert!(
            readings_of(&events, device) >= 5,
            "{device}: {} readings over RTU",
            readings_of(&events, device)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_device_backs_off_and_the_others_keep_their_pace() {
    let line = gateway(3, Duration::ZERO).await;
    line.devices[1].set_fault(Fault::Timeout);
    let interval = Duration::from_millis(50);
    let timeout = Duration::from_millis(100);
    let run = Duration::from_secs(3);
    let events = run_for(line.address, specs(3, interval, timeout), run).await;

    // The dead device is asked once per back-off period: 100 ms, 200 ms, 400 ms, … — at most 6 times in
    // 3 s — and each attempt costs one timeout, not one per request of its read plan.
    let attempts = line.devices[1].requests();
    assert!(
        (3..=6).contains(&attempts),
        "inv2 was asked {attempts} times"
    );
    let silences: Vec<Duration> = events
        .iter()
        .filter_map(|e| match e {
            BusEvent::Silent {
                device_id,
                retry_in,
            } if device_id == "inv2" => Some(*retry_in),
            _ => None,
        })
        .collect();
    assert!(
        silences
            .windows(2)
            .all(|w| w[1] == (w[0] * 2).min(solarhub_collector::bus::MAX_BACKOFF)),
        "{silences:?}"
    );
    assert_eq!(readings_of(&events, "inv2"), 0);

    // The others lose at most one timeout per attempt at the dead one.
    let lost = timeout * attempts as u32;
    let expected = ((run - lost).as_millis() / interval.as_millis()) as usize;
    for device in ["inv1", "inv3"] {
        let readings = readings_of(&events, device);
        assert!(
            readings * 2 >= expected,
            "{device}: {readings} readings, expected about {expected}"
        );
    }
}
