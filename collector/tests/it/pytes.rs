//! The Pytes console driver over a real serial line (a pseudo-terminal pair): every battery and cell
//! value equals the simulated console's ground truth, with the house sign convention; a silent
//! console is an error, not zeros; implausible values are dropped and counted.

use std::sync::Arc;
use std::time::Duration;

use solarhub_collector::bus::serial::{self, SerialSettings};
use solarhub_collector::drivers::normalize::Normalizer;
use solarhub_collector::drivers::pack::{PackSpec, pack_reading};
use solarhub_collector::drivers::pytes::{self, ConsoleError};
use solarhub_collector::drivers::reading::DropReason;
use solarhub_collector::simulator::pytes::{Console, serve_console};

const TIMEOUT: Duration = Duration::from_millis(800);

fn spec() -> PackSpec {
    PackSpec {
        pack_id: "battery1".into(),
        adapter_id: "battery1.adapter".into(),
        batteries: 4,
        cells_per_battery: 15,
        silence: TIMEOUT,
    }
}

/// A console on the far end of a pseudo-terminal; returns the path the collector opens.
fn console_on_a_line(console: Arc<Console>) -> std::path::PathBuf {
    let pty = serial::pseudo_terminal().unwrap();
    let path = pty.path.clone();
    tokio::spawn(async move {
        let served = serve_console(pty.device, console).await;
        drop(pty.slave);
        served
    });
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_every_battery_and_cell_over_a_serial_line() {
    let console = Arc::new(Console::new(4, 15));
    let path = console_on_a_line(console.clone());
    let mut port = serial::open(
        &path,
        SerialSettings {
            baud: 115200,
            ..Default::default()
        },
    )
    .unwrap();
    let units = pytes::read_bank(&mut port, 4, TIMEOUT).await.unwrap();
    let mut normalizer = Normalizer::default();
    let reading = pack_reading(&spec(), &units, &mut normalizer, 0);
    assert!(reading.dropped.is_empty(), "{:?}", reading.dropped);

    let truth = console.batteries();
    assert_eq!(reading.batteries.len(), 4);
    for (battery, expected) in reading.batteries.iter().zip(&truth) {
        let f = &battery.fields;
        assert_eq!(f["voltage_v"], expected.voltage_mv as f64 / 1000.0);
        // The console reports discharge as negative current; the house convention is > 0 discharging.
        assert_eq!(f["current_a"], -(expected.current_ma as f64) / 1000.0);
        assert!(f["current_a"] > 0.0);
        assert_eq!(f["temperature_c"], expected.temperature_mc as f64 / 1000.0);
        assert_eq!(f["soc_pct"], expected.soc_pct as f64);
        assert_eq!(battery.cells.len(), 15);
        for (cell, (mv, mc, _)) in battery.cells.iter().zip(&expected.cells) {
            assert_eq!(cell.fields["voltage_v"], *mv as f64 / 1000.0);
            assert_eq!(cell.fields["temperature_c"], *mc as f64 / 1000.0);
        }
    }
    let total: f64 = truth.iter().map(|b| -(b.current_ma as f64) / 1000.0).sum();
    assert!((reading.fields["current_a"] - total).abs() < 1e-9);
    assert!(reading.fields["power_w"] > 0.0, "the bank is discharging");
    assert_eq!(
        reading.text.get("b1.basic_st").map(String::as_str),
        Some("Dischg")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_console_is_an_error_and_bad_values_are_dropped() {
    let console = Arc::new(Console::new(2, 15));
    console.update(1, |b| b.cells[4].0 = 65_535);
    console.update(0, |b| b.soc_pct = 250);
    let path = console_on_a_line(console.clone());
    let mut port = serial::open(
        &path,
        SerialSettings {
            baud: 115200,
            ..Default::default()
        },
    )
    .unwrap();
    let units = pytes::read_bank(&mut port, 2, TIMEOUT).await.unwrap();
    let mut normalizer = Normalizer::default();
    let reading = pack_reading(
        &PackSpec {
            batteries: 2,
            ..spec()
        },
        &units,
        &mut normalizer,
        0,
    );
    assert_eq!(
        reading.dropped.get("b2.c5.voltage_v"),
        Some(&DropReason::OutOfRange)
    );
    assert_eq!(
        reading.dropped.get("b1.soc_pct"),
        Some(&DropReason::OutOfRange)
    );
    assert_eq!(reading.batteries[1].cells.len(), 14);
    assert!(!reading.batteries[0].fields.contains_key("soc_pct"));
    assert_eq!(normalizer.drop_counts().values().sum::<u64>(), 2);

    console.set_silent(true);
    let error = pytes::read_bank(&mut port, 2, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(error, ConsoleError::Timeout { .. }), "{error}");
}
