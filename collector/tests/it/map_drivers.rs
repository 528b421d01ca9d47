//! Map-based drivers against the simulator over real Modbus TCP on 127.0.0.1: every decoded register
//! equals the simulator's ground truth to the register's resolution, canonical fields have the right
//! sign and unit, read plans are minimal, and faults never leak implausible values.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use solarhub_collector::bus::Transport;
use solarhub_collector::bus::modbus_poll::{self, PollResult};
use solarhub_collector::bus::read_plan::{self, ReadRequest};
use solarhub_collector::drivers::codec::RegisterValue;
use solarhub_collector::drivers::normalize::Normalizer;
use solarhub_collector::drivers::reading::{DropReason, Reading};
use solarhub_collector::drivers::register_map::{MAX_REGISTERS_PER_READ, RegisterMap, builtin_map};
use solarhub_collector::simulator::model::DeviceModel;
use solarhub_collector::simulator::{Clock, Endpoint, Fault, SimDevice, serve_tcp};
use tokio_modbus::Slave;

const TIMEOUT: Duration = Duration::from_millis(500);

struct Bench {
    device: Arc<SimDevice>,
    clock: Clock,
    map: Arc<RegisterMap>,
    context: tokio_modbus::client::Context,
    plan: Vec<ReadRequest>,
}

/// How the collector reaches the simulated device.
#[derive(Debug, Clone, Copy)]
enum Wire {
    /// Modbus TCP on 127.0.0.1.
    Tcp,
    /// RTU frames through a TCP gateway on 127.0.0.1.
    RtuOverTcp,
    /// RTU on a serial line: a pseudo-terminal pair, opened by path like an RS485 adapter.
    RtuPty,
}

/// A simulated device of `device_type` at 11:00 local time in Karachi, reached over `wire`.
async fn bench(device_type: &str, wire: Wire) -> Bench {
    let map = Arc::new(builtin_map(device_type).unwrap());
    let tz: chrono_tz::Tz = "Asia/Karachi".parse().unwrap();
    let start = Utc.with_ymd_and_hms(2025, 6, 1, 6, 0, 0).unwrap(); // 11:00 local
    let clock = Clock::manual(start);
    let model = match map.category.as_str() {
        "meter" => DeviceModel::meter(tz, 1),
        _ => DeviceModel::inverter(tz, 8000.0, 1),
    };
    let device = Arc::new(SimDevice::new(
        format!("{device_type}-sim"),
        map.clone(),
        model,
        start,
    ));
    let endpoint = Arc::new(Endpoint::new(
        BTreeMap::from([(1u8, device.clone())]),
        clock.clone(),
    ));
    let transport = match wire {
        Wire::Tcp | Wire::RtuOverTcp => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            if matches!(wire, Wire::Tcp) {
                tokio::spawn(serve_tcp(listener, endpoint));
                Transport::Tcp(address)
            } else {
                tokio::spawn(solarhub_collector::simulator::rtu::serve_rtu_over_tcp(
                    listener, endpoint,
                ));
                Transport::RtuOverTcp(address)
            }
        }
        Wire::RtuPty => {
            let pty = solarhub_collector::bus::serial::pseudo_terminal().unwrap();
            let path = pty.path.clone();
            // The task owns the whole pair, so the line stays up while it serves.
            tokio::spawn(async move {
                let served =
                    solarhub_collector::simulator::rtu::serve_rtu(pty.device, endpoint).await;
                drop(pty.slave);
                served
            });
            Transport::RtuSerial {
                path,
                settings: solarhub_collector::bus::serial::SerialSettings::default(),
            }
        }
    };
    let mut context = solarhub_collector::bus::connect(&transport).await.unwrap();
    tokio_modbus::prelude::SlaveContext::set_slave(&mut context, Slave(1));
    let plan = read_plan::plan(&map);
    Bench {
        device,
        clock,
        map,
        context,
        plan,
    }
}

impl Bench {
    async fn poll(&mut self) -> PollResult {
        modbus_poll::poll(&mut self.context, &self.map, &self.plan, TIMEOUT).await
    }

    fn step(&self, seconds: i64) {
        if let Clock::Manual(time) = &self.clock {
            *time.lock().unwrap() += chrono::Duration::seconds(seconds);
        }
    }
}

fn number(result: &PollResult, name: &str) -> f64 {
    match result.registers.get(name) {
        Some(RegisterValue::Number { value, .. }) => *value,
        other => panic!("register {name}: {other:?}"),
    }
}

async fn decoded_values_equal_ground_truth(device_type: &str, wire: Wire) -> Reading {
    let mut bench = bench(device_type, wire).await;
    bench.step(30);
    let result = bench.poll().await;
    assert!(result.failures.is_empty(), "{:?}", result.failures);
    assert_eq!(result.requests_sent, bench.plan.len());
    // The truth is read after the poll; the clock is frozen, so it is what was served.
    let truth = bench.device.truth();
    assert!(!truth.is_empty());
    for (name, expected) in &truth {
        let register = bench.map.register(name).unwrap();
        let got = number(&result, name);
        assert!(
            (got - expected).abs() <= register.resolution() / 2.0 + 1e-9,
            "{device_type} over {wire:?}: {name}: decoded {got} {}, truth {expected}",
            register.unit
        );
    }
    let mut normalizer = Normalizer::default();
    let reading = normalizer.normalize(
        &bench.map,
        &result.registers,
        device_type,
        &format!("{device_type}.adapter"),
        0,
    );
    assert!(reading.dropped.is_empty(), "{:?}", reading.dropped);
    reading
}

fn close(got: Option<&f64>, want: f64, tolerance: f64, what: &str) {
    let got = *got.unwrap_or_else(|| panic!("{what} missing"));
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: {got}, want {want}"
    );
}

#[tokio::test]
async fn powdrive_over_tcp() {
    powdrive_over(Wire::Tcp).await;
}

#[tokio::test]
async fn powdrive_over_rtu_gateway() {
    powdrive_over(Wire::RtuOverTcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powdrive_over_rtu_serial() {
    powdrive_over(Wire::RtuPty).await;
}

async fn powdrive_over(wire: Wire) {
    let reading = decoded_values_equal_ground_truth("powdrive", wire).await;
    let f = &reading.fields;
    // Late morning: PV covers the load and charges the battery, so battery power is negative
    // (charging), PV positive, and energy counters are in Wh.
    assert!(f["pv_power_w"] > 1000.0, "{f:?}");
    assert!(
        f["battery_power_w"] < 0.0,
        "battery should be charging: {f:?}"
    );
    close(
        f.get("grid_power_w"),
        f["load_power_w"] - f["pv_power_w"] - f["battery_power_w"],
        3.0,
        "grid balance",
    );
    assert!(
        f["pv_energy_total_wh"] > 12_345_000.0 && f["pv_energy_total_wh"] < 12_346_000.0,
        "{f:?}"
    );
    assert!((0.0..=100.0).contains(&f["battery_soc_pct"]));
    assert_eq!(f["rated_power_w"], 8000.0);
}

#[tokio::test]
async fn senergy_over_tcp() {
    senergy_over(Wire::Tcp).await;
}

#[tokio::test]
async fn senergy_over_rtu_gateway() {
    senergy_over(Wire::RtuOverTcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senergy_over_rtu_serial() {
    senergy_over(Wire::RtuPty).await;
}

async fn senergy_over(wire: Wire) {
    let reading = decoded_values_equal_ground_truth("senergy", wire).await;
    let f = &reading.fields;
    // Senergy reports the battery power as a magnitude; the current's sign makes it a charge.
    assert!(
        f["battery_current_a"] < 0.0 && f["battery_power_w"] < 0.0,
        "{f:?}"
    );
    close(
        f.get("battery_power_w"),
        f["battery_current_a"] * f["battery_voltage_v"],
        2.0,
        "battery power = V·I",
    );
    assert!(f["pv_energy_total_wh"] >= 12_345_000.0, "{f:?}");
}

#[tokio::test]
async fn iammeter_over_tcp() {
    iammeter_over(Wire::Tcp).await;
}

#[tokio::test]
async fn iammeter_over_rtu_gateway() {
    iammeter_over(Wire::RtuOverTcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iammeter_over_rtu_serial() {
    iammeter_over(Wire::RtuPty).await;
}

async fn iammeter_over(wire: Wire) {
    let reading = decoded_values_equal_ground_truth("iammeter", wire).await;
    let f = &reading.fields;
    close(
        f.get("import_total_wh"),
        5_432_100.0,
        2.0,
        "import counter in Wh",
    );
    close(
        f.get("power_w"),
        f["l1_power_w"] + f["l2_power_w"] + f["l3_power_w"],
        3.0,
        "total = sum of phases",
    );
    assert!(f["voltage_v"] > 200.0 && f["frequency_hz"] == 50.0, "{f:?}");
}

/// The fewest reads that cover every register of `map` under the 125-register limit and its
/// `max_gap`, by dynamic programming over the registers in address order.
fn minimum_reads(map: &RegisterMap) -> usize {
    let mut total = 0;
    for kind in [
        solarhub_collector::drivers::register_map::RegisterKind::Holding,
        solarhub_collector::drivers::register_map::RegisterKind::Input,
    ] {
        let mut spans: Vec<(u32, u32)> = map
            .registers
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| {
                (
                    u32::from(r.address),
                    u32::from(r.address) + u32::from(r.word_count()),
                )
            })
            .collect();
        spans.sort();
        let n = spans.len();
        let mut best = vec![usize::MAX; n + 1];
        best[0] = 0;
        for end in 1..=n {
            // Try every block spans[start..end] as the last read.
            for start in (0..end).rev() {
                let block = &spans[start..end];
                let low = block[0].0;
                let high = block.iter().map(|s| s.1).max().unwrap();
                let mut reach = block[0].1;
                let mut gaps_ok = true;
                for span in &block[1..] {
                    if span.0 > reach + u32::from(map.max_gap) {
                        gaps_ok = false;
                    }
                    reach = reach.max(span.1);
                }
                if high - low > u32::from(MAX_REGISTERS_PER_READ) || !gaps_ok {
                    continue;
                }
                if best[start] != usize::MAX {
                    best[end] = best[end].min(best[start] + 1);
                }
            }
        }
        total += best[n];
    }
    total
}

#[test]
fn read_plans_are_minimal_and_cover_every_register() {
    for device_type in ["powdrive", "senergy", "iammeter"] {
        let map = builtin_map(device_type).unwrap();
        let plan = read_plan::plan(&map);
        eprintln!(
            "{device_type}: {} registers in {} reads: {plan:?}",
            map.registers.len(),
            plan.len()
        );
        assert_eq!(plan.len(), minimum_reads(&map), "{device_type}");
        for request in &plan {
            assert!(
                request.count <= MAX_REGISTERS_PER_READ,
                "{device_type}: {request:?}"
            );
        }
        for register in &map.registers {
            assert!(
                plan.iter().any(|r| r.covers(
                    register.kind,
                    register.address,
                    register.word_count()
                )),
                "{device_type}.{}",
                register.name
            );
        }
    }
}

#[tokio::test]
async fn faults_never_reach_a_reading_and_every_drop_is_counted() {
    let mut bench = bench("powdrive", Wire::Tcp).await;
    let mut normalizer = Normalizer::default();
    let first = bench.poll().await;
    normalizer.normalize(&bench.map, &first.registers, "inv", "inv.adapter", 0);

    // A sentinel SOC and an absurd PV string power: both dropped, nothing else disturbed.
    bench
        .device
        .set_fault(Fault::Sentinel(vec!["battery_soc_pct".into()]));
    bench.step(10);
    let result = bench.poll().await;
    let reading = normalizer.normalize(&bench.map, &result.registers, "inv", "inv.adapter", 1);
    assert!(!reading.fields.contains_key("battery_soc_pct"));
    assert_eq!(
        reading.dropped.get("battery_soc_pct"),
        Some(&DropReason::Sentinel)
    );
    assert!(reading.fields.contains_key("pv_power_w"));

    bench.device.set_fault(Fault::Garbage(vec![
        "pv1_power_w".into(),
        "battery_soc_pct".into(),
    ]));
    bench.step(10);
    let result = bench.poll().await;
    let reading = normalizer.normalize(&bench.map, &result.registers, "inv", "inv.adapter", 2);
    assert_eq!(
        reading.dropped.get("pv_power_w"),
        Some(&DropReason::OutOfRange)
    );
    assert_eq!(
        reading.dropped.get("battery_soc_pct"),
        Some(&DropReason::OutOfRange)
    );
    assert!(
        !reading.fields.contains_key("pv_power_w")
            && !reading.fields.contains_key("battery_soc_pct")
    );

    // Counters reset to zero: the backwards step is dropped once and counted, then followed.
    bench.device.set_fault(Fault::None);
    bench.device.reset_counters();
    bench.step(10);
    let result = bench.poll().await;
    let reading = normalizer.normalize(&bench.map, &result.registers, "inv", "inv.adapter", 3);
    assert_eq!(
        reading.dropped.get("pv_energy_total_wh"),
        Some(&DropReason::CounterBackwards)
    );
    bench.step(10);
    let result = bench.poll().await;
    let reading = normalizer.normalize(&bench.map, &result.registers, "inv", "inv.adapter", 4);
    assert!(
        reading.fields.contains_key("pv_energy_total_wh"),
        "{:?}",
        reading.dropped
    );

    // Exception responses: the device answers, so it is not silent, but nothing is read.
    bench.device.set_fault(Fault::Exception);
    let result = bench.poll().await;
    assert!(!result.device_silent());
    assert_eq!(result.failures.len(), bench.plan.len());
    assert!(result.failures.iter().all(|(_, e)| matches!(
        e,
        solarhub_collector::bus::modbus_poll::RequestError::Exception(_)
    )));
    let reading = normalizer.normalize(&bench.map, &result.registers, "inv", "inv.adapter", 5);
    assert!(reading.fields.is_empty());

    // A device that stops answering: every request times out, nothing is read, nothing is zero.
    bench.device.set_fault(Fault::Timeout);
    let result = bench.poll().await;
    assert!(result.device_silent(), "{:?}", result.failures);
    let reading = normalizer.normalize(&bench.map, &result.registers, "inv", "inv.adapter", 5);
    assert!(reading.fields.is_empty());

    let counts = normalizer.drop_counts();
    assert_eq!(
        counts.get(&("battery_soc_pct".into(), DropReason::Sentinel)),
        Some(&1)
    );
    assert_eq!(
        counts.get(&("battery_soc_pct".into(), DropReason::OutOfRange)),
        Some(&1)
    );
    assert_eq!(
        counts.get(&("pv_power_w".into(), DropReason::OutOfRange)),
        Some(&1)
    );
    assert!(
        counts
            .get(&("pv_energy_total_wh".into(), DropReason::CounterBackwards))
            .is_some()
    );
}

#[test]
fn bad_map_files_name_the_file_the_entry_and_the_reason() {
    let good = solarhub_collector::drivers::register_map::BUILTIN_MAPS
        .iter()
        .find(|(n, _)| *n == "iammeter")
        .unwrap()
        .1;
    let cases = [
        (
            good.replace(
                r#""frequency_hz": {"register": "frequency_hz"}"#,
                r#""frequency_hz": {"register": "frequency_zz"}"#,
            ),
            "fields.frequency_hz",
            "frequency_zz",
        ),
        (
            good.replace(
                r#""name": "power_w", "address": 32, "kind": "holding", "type": "s32""#,
                r#""name": "power_w", "address": 32, "kind": "holding", "type": "s32", "words": 1"#,
            ),
            "registers[",
            "spans 2 registers",
        ),
        (
            good.replace(r#""power_factor": {"#, r#""power_factr": {"#),
            "fields.power_factr",
            "not a canonical field",
        ),
        (
            good.replace(
                r#""kind": "holding", "type": "u16", "scale": 0.01, "unit": "Hz""#,
                r#""kind": "holding", "type": "u16", "scale": 0, "unit": "Hz""#,
            ),
            "registers[",
            "scale",
        ),
        (
            good.replacen(r#""type": "u16""#, r#""type": "u17""#, 1),
            "line ",
            "u17",
        ),
    ];
    for (text, entry, reason) in cases {
        assert_ne!(text, good, "the edit for {entry} did not apply");
        let error = RegisterMap::parse(std::path::Path::new("maps/broken.json"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("maps/broken.json") && error.contains(entry) && error.contains(reason),
            "{error}"
        );
    }
}
