//! The JK BMS driver against a simulated bank over a real RS485-to-TCP gateway and over a serial
//! line (pseudo-terminal): every battery and cell value equals the bank's ground truth to the
//! protocol's resolution, with the house sign convention; and a pack with two adapters fails over
//! when the first stops answering and fails back when it returns, each reading naming its adapter.

use std::sync::Arc;
use std::time::Duration;

use solarhub_collector::bus::{BusEvent, Transport};
use solarhub_collector::drivers::pack::{Failover, PackSpec, listen_jkbms};
use solarhub_collector::drivers::reading::{DropReason, Reading};
use solarhub_collector::simulator::jkbms::{JkBank, Line, broadcast, serve_gateway};
use tokio::sync::{mpsc, watch};

const PERIOD: Duration = Duration::from_millis(50);

fn spec(adapter_id: &str) -> PackSpec {
    PackSpec {
        pack_id: "jkbms_bank".into(),
        adapter_id: adapter_id.into(),
        batteries: 3,
        cells_per_battery: 16,
        silence: Duration::from_millis(300),
    }
}

async fn gateway(bank: Arc<JkBank>, line: Arc<Line>) -> Transport {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve_gateway(listener, bank, line, PERIOD));
    Transport::RtuOverTcp(address)
}

async fn first_reading(transport: Transport, adapter_id: &str) -> Reading {
    let (sender, mut receiver) = mpsc::channel(64);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(listen_jkbms(transport, spec(adapter_id), sender, stopped));
    let reading = loop {
        match tokio::time::timeout(Duration::from_secs(5), receiver.recv())
            .await
            .unwrap()
            .unwrap()
        {
            BusEvent::Reading(reading) => break reading,
            _ => continue,
        }
    };
    stop.send(true).unwrap();
    task.await.unwrap();
    reading
}

fn assert_matches_bank(reading: &Reading, bank: &JkBank) {
    let truth = bank.statuses();
    assert_eq!(reading.batteries.len(), truth.len());
    for (battery, status) in reading.batteries.iter().zip(&truth) {
        assert_eq!(battery.cells.len(), status.cell_voltages_v.len());
        for (cell, volts) in battery.cells.iter().zip(&status.cell_voltages_v) {
            assert!(
                (cell.fields["voltage_v"] - volts).abs() <= 0.0005,
                "b{}.c{}: {} vs {volts}",
                battery.index,
                cell.index,
                cell.fields["voltage_v"]
            );
        }
        // JK reports charging current as positive; the house convention is > 0 discharging.
        assert!((battery.fields["current_a"] + status.current_a).abs() <= 0.0005);
        assert!((battery.fields["voltage_v"] - status.pack_voltage_v).abs() <= 0.005);
        assert_eq!(battery.fields["soc_pct"], status.soc_pct);
        assert!((battery.fields["temperature_c"] - status.temp1_c).abs() <= 0.05);
    }
    let f = &reading.fields;
    let total_current: f64 = truth.iter().map(|s| -s.current_a).sum();
    assert!((f["current_a"] - total_current).abs() <= 0.002, "{f:?}");
    assert!(f["power_w"] < 0.0, "the bank is charging: {f:?}");
    let soc: f64 = truth.iter().map(|s| s.soc_pct * s.total_ah).sum::<f64>()
        / truth.iter().map(|s| s.total_ah).sum::<f64>();
    assert!((f["soc_pct"] - soc).abs() <= 0.01, "{f:?}");
    assert_eq!((f["batteries_count"], f["cells_per_battery"]), (3.0, 16.0));
}

#[tokio::test]
async fn jkbms_through_an_rs485_gateway() {
    let bank = Arc::new(JkBank::new(3, 16));
    let transport = gateway(bank.clone(), Arc::new(Line::default())).await;
    let reading = first_reading(transport, "jkbms_bank.adapter1").await;
    assert_eq!(reading.adapter_id, "jkbms_bank.adapter1");
    assert!(reading.dropped.is_empty(), "{:?}", reading.dropped);
    assert_matches_bank(&reading, &bank);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jkbms_on_a_serial_line() {
    let bank = Arc::new(JkBank::new(3, 16));
    let pty = solarhub_collector::bus::serial::pseudo_terminal().unwrap();
    let path = pty.path.clone();
    let served = bank.clone();
    tokio::spawn(async move {
        let result = broadcast(pty.device, served, Arc::new(Line::default()), PERIOD).await;
        drop(pty.slave);
        result
    });
    let transport = Transport::RtuSerial {
        path,
        settings: solarhub_collector::bus::serial::SerialSettings {
            baud: 115200,
            ..Default::default()
        },
    };
    let reading = first_reading(transport, "jkbms_bank.adapter1").await;
    assert_matches_bank(&reading, &bank);
}

#[tokio::test]
async fn an_implausible_cell_is_dropped_and_counted() {
    let bank = Arc::new(JkBank::new(3, 16));
    bank.update(0, |status| status.cell_voltages_v[3] = 0.2);
    bank.update(2, |status| status.soc_pct = 180.0);
    let transport = gateway(bank.clone(), Arc::new(Line::default())).await;
    let reading = first_reading(transport, "jkbms_bank.adapter1").await;
    assert_eq!(
        reading.dropped.get("b1.c4.voltage_v"),
        Some(&DropReason::OutOfRange)
    );
    assert_eq!(
        reading.dropped.get("b3.soc_pct"),
        Some(&DropReason::OutOfRange)
    );
    assert_eq!(
        reading.batteries[0].cells.len(),
        15,
        "the bad cell is left out, not zero"
    );
    assert!(!reading.batteries[2].fields.contains_key("soc_pct"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_fails_over_to_its_second_adapter_and_back() {
    let bank = Arc::new(JkBank::new(3, 16));
    let primary_line = Arc::new(Line::default());
    let primary = gateway(bank.clone(), primary_line.clone()).await;
    let secondary = gateway(bank.clone(), Arc::new(Line::default())).await;
    let (sender, mut receiver) = mpsc::channel(256);
    let (stop, stopped) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(listen_jkbms(
            primary,
            spec("jkbms_bank.adapter1"),
            sender.clone(),
            stopped.clone(),
        )),
        tokio::spawn(listen_jkbms(
            secondary,
            spec("jkbms_bank.adapter2"),
            sender,
            stopped,
        )),
    ];
    let mut failover = Failover::new(
        vec![
            ("jkbms_bank.adapter2".into(), 2),
            ("jkbms_bank.adapter1".into(), 1),
        ],
        Duration::from_millis(400),
    );

    // Collects, for `duration`, which adapter each reading that counts came from.
    async fn phase(
        receiver: &mut mpsc::Receiver<BusEvent>,
        failover: &mut Failover,
        duration: Duration,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + duration;
        let mut counted = Vec::new();
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, receiver.recv()).await {
            if let BusEvent::Reading(reading) = event
                && let Some(reading) = failover.offer(reading, tokio::time::Instant::now())
            {
                counted.push(reading.adapter_id);
            }
        }
        counted
    }

    let before = phase(&mut receiver, &mut failover, Duration::from_millis(800)).await;
    primary_line.set_silent(true);
    let during = phase(&mut receiver, &mut failover, Duration::from_millis(1500)).await;
    primary_line.set_silent(false);
    let after = phase(&mut receiver, &mut failover, Duration::from_millis(1000)).await;
    stop.send(true).unwrap();
    for task in tasks {
        task.await.unwrap();
    }

    // At start the first adapter to report counts until the primary reports; from then on the
    // primary does.
    let primary_from = before
        .iter()
        .position(|a| a == "jkbms_bank.adapter1")
        .expect("the primary never counted");
    assert!(
        before[primary_from..]
            .iter()
            .all(|a| a == "jkbms_bank.adapter1"),
        "{before:?}"
    );
    assert!(before.len() - primary_from >= 5, "{before:?}");
    // Once the primary is stale, only the secondary's readings count.
    assert!(
        during.iter().any(|a| a == "jkbms_bank.adapter2"),
        "{during:?}"
    );
    let switched = during
        .iter()
        .position(|a| a == "jkbms_bank.adapter2")
        .unwrap();
    assert!(
        during[switched..]
            .iter()
            .all(|a| a == "jkbms_bank.adapter2"),
        "{during:?}"
    );
    // When the primary answers again, it takes back over at once and for good.
    assert!(!after.is_empty(), "no readings after the primary returned");
    let back = after
        .iter()
        .position(|a| a == "jkbms_bank.adapter1")
        .expect("no fail-back");
    assert!(
        after[back..].iter().all(|a| a == "jkbms_bank.adapter1"),
        "{after:?}"
    );
    assert_eq!(failover.active(), Some("jkbms_bank.adapter1"));
}
