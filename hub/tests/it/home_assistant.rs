//! Home Assistant over MQTT, against the real Mosquitto on 127.0.0.1:1883 (each test has its own
//! base topic and discovery prefix): discovery configs for every device and aggregate, states with
//! the live API's values, availability following staleness, the bridge's `offline` when the hub
//! stops, and energy totals that never decrease.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proxy::{self, Proxy};
use common::site;
use common::{RunningHub, TestDb};
use solarhub_collector::simulator::Fault;
use solarhub_hub::mqtt::MqttSettings;

const COLLECTOR: &str = "ha-site";

/// Topic → payloads in order, each with its retained flag.
type Messages = BTreeMap<String, Vec<(String, bool)>>;

/// Every message seen on the test's topics.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Messages>>);

impl Seen {
    fn last(&self, topic: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .get(topic)
            .and_then(|all| all.last())
            .map(|(payload, _)| payload.clone())
    }

    fn all(&self, topic: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .get(topic)
            .map(|all| all.iter().map(|(p, _)| p.clone()).collect())
            .unwrap_or_default()
    }

    fn topics_under(&self, prefix: &str) -> Vec<(String, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(topic, _)| topic.starts_with(prefix))
            .filter_map(|(topic, all)| all.last().map(|(p, _)| (topic.clone(), p.clone())))
            .collect()
    }
}

/// Subscribes to `filters` on the real broker from `runtime`.
fn subscribe(runtime: &tokio::runtime::Runtime, filters: Vec<String>) -> Seen {
    let seen = Seen::default();
    let record = seen.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let mut options = rumqttc::MqttOptions::new(
            format!("test-sub-{}-{}", std::process::id(), rand_suffix()),
            "127.0.0.1",
            1883,
        );
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut events) = rumqttc::AsyncClient::new(options, 100);
        for filter in &filters {
            client
                .subscribe(filter.clone(), rumqttc::QoS::AtMostOnce)
                .await
                .unwrap();
        }
        let mut ready = Some(ready_tx);
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(message))) => {
                    record
                        .0
                        .lock()
                        .unwrap()
                        .entry(message.topic.clone())
                        .or_default()
                        .push((
                            String::from_utf8_lossy(&message.payload).into_owned(),
                            message.retain,
                        ));
                }
                Ok(_) => {}
                Err(error) => panic!("the test's subscriber lost the broker: {error}"),
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the broker at 127.0.0.1:1883 answers");
    seen
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(conn: &mut solarhub_hub::db::DbConnection, table: &str) -> usize {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let rows: Vec<N> = diesel::RunQueryDsl::load(
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}")),
        conn,
    )
    .unwrap();
    rows[0].n as usize
}

/// Acceptance 1–3: discovery for every device and aggregate, valid for Home Assistant; states
/// with the live API's values; a silent unit goes offline and comes back; the hub stopping says
/// offline for everything.
fn the_site_appears_in_home_assistant(db: TestDb) {
    let mut site = site_with_bridge(&db, 1883);
    let (base, prefix, seen) = (site.base.clone(), site.prefix.clone(), site.seen.clone());
    let hub = &site.hub;

    // States for the polled devices arrive.
    let inverter_state = format!("{base}/inverter/powdrive1/state");
    let meter_state = format!("{base}/meter/grid_meter_1/state");
    wait_for(
        "states of the polled devices",
        Duration::from_secs(30),
        || {
            [&inverter_state, &meter_state].iter().all(|topic| {
                seen.last(topic).is_some_and(|payload| {
                    let state: serde_json::Value = serde_json::from_str(&payload).unwrap();
                    state.as_object().unwrap().values().any(|v| !v.is_null())
                })
            })
        },
    );

    // 1. Discovery: one Home Assistant device per solarhub device and aggregate.
    let mut conn = hub.database.get().unwrap();
    let expected = count(&mut conn, "systems")
        + count(&mut conn, "arrays")
        + count(&mut conn, "inverters")
        + count(&mut conn, "meters")
        + count(&mut conn, "battery_arrays")
        + count(&mut conn, "battery_packs");
    drop(conn);
    // Every entity has at least one sensor configured (states came first): its fields that have
    // had a value, or, while none has, its main one.
    let devices_configured = || {
        seen.topics_under(&format!("{prefix}/sensor/"))
            .iter()
            .filter(|(_, payload)| !payload.is_empty())
            .filter_map(|(_, payload)| {
                let config: serde_json::Value = serde_json::from_str(payload).ok()?;
                Some(config["device"]["identifiers"][0].as_str()?.to_owned())
            })
            .collect::<BTreeSet<String>>()
            .len()
    };
    wait_for("discovery configs", Duration::from_secs(10), || {
        devices_configured() >= expected
    });
    // A device that never reported (senergy1 is not polled here) is declared by its main sensor
    // only: no entity stays "unknown" for a field its driver never sends.
    let senergy: Vec<String> = seen
        .topics_under(&format!("{prefix}/sensor/"))
        .into_iter()
        .map(|(topic, _)| topic)
        .filter(|topic| topic.contains("senergy1"))
        .collect();
    assert_eq!(senergy.len(), 1, "{senergy:?}");
    assert!(senergy[0].ends_with("/pv_power_w/config"), "{senergy:?}");
    let configs = seen.topics_under(&format!("{prefix}/sensor/"));
    let mut nodes = BTreeSet::new();
    let mut unique_ids = BTreeSet::new();
    for (topic, payload) in &configs {
        assert!(topic.ends_with("/config"), "{topic}");
        let config: serde_json::Value = serde_json::from_str(payload).unwrap();
        for key in ["name", "unique_id", "state_topic", "device", "availability"] {
            assert!(!config[key].is_null(), "{topic} lacks {key}: {payload}");
        }
        assert!(
            unique_ids.insert(config["unique_id"].as_str().unwrap().to_owned()),
            "unique_id {} twice",
            config["unique_id"]
        );
        let state_topic = config["state_topic"].as_str().unwrap();
        assert!(
            seen.last(state_topic).is_some(),
            "{topic} names a state topic nobody publishes: {state_topic}"
        );
        let template = config["value_template"].as_str().unwrap();
        let field = template
            .trim_start_matches("{{ value_json.")
            .trim_end_matches(" }}");
        let state: serde_json::Value =
            serde_json::from_str(&seen.last(state_topic).unwrap()).unwrap();
        assert!(
            state.get(field).is_some(),
            "{state_topic} has no {field}: {state}"
        );
        nodes.insert(
            config["device"]["identifiers"][0]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        match config["device_class"].as_str().unwrap() {
            "power" | "voltage" | "current" | "frequency" | "temperature" => {
                assert_eq!(config["state_class"], "measurement", "{topic}")
            }
            "battery" => assert_eq!(config["unit_of_measurement"], "%"),
            "energy" => assert_eq!(config["state_class"], "total_increasing", "{topic}"),
            other => panic!("{topic}: unexpected device class {other}"),
        }
    }
    assert_eq!(
        nodes.len(),
        expected,
        "one Home Assistant device per solarhub device and aggregate: {nodes:?}"
    );

    // Retained: a subscriber arriving now (Home Assistant starting later) gets every config.
    let late = subscribe(&hub.runtime, vec![format!("{prefix}/#")]);
    wait_for(
        "retained configs for a late subscriber",
        Duration::from_secs(10),
        || late.topics_under(&format!("{prefix}/sensor/")).len() == configs.len(),
    );
    for (topic, _) in &configs {
        assert!(
            late.0.lock().unwrap()[topic]
                .iter()
                .all(|(_, retained)| *retained),
            "{topic} is retained"
        );
    }

    // 2. The live API's values.
    site.stop_collector();
    let hub = &site.hub;
    std::thread::sleep(solarhub_hub::mqtt::REFRESH_EVERY * 2);
    let live = hub.runtime.block_on(async {
        solarhub_proto::v1::live_service_client::LiveServiceClient::new(hub.channel.clone())
            .get_inverter_now(solarhub_proto::v1::GetInverterNowRequest {
                inverter_id: "powdrive1".into(),
                system_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
    });
    let state: serde_json::Value =
        serde_json::from_str(&seen.last(&inverter_state).unwrap()).unwrap();
    assert!(live.pv_power_w.is_some());
    assert_eq!(state["pv_power_w"].as_f64(), live.pv_power_w, "{state}");
    assert_eq!(state["load_power_w"].as_f64(), live.load_power_w);
    assert_eq!(state["battery_soc_pct"].as_f64(), live.battery_soc_pct);

    // A pack removed from the catalog: its discovery configs are cleared (empty retained).
    let pack_config = configs
        .iter()
        .map(|(topic, _)| topic.clone())
        .find(|topic| topic.contains("_battery_pack_jkbms_bank/"))
        .expect("the JK bank has discovery configs");
    hub.runtime.block_on(async {
        solarhub_proto::v1::battery_pack_service_client::BatteryPackServiceClient::new(
            hub.channel.clone(),
        )
        .delete_battery_pack(solarhub_proto::v1::DeleteBatteryPackRequest {
            pack_id: "jkbms_bank".into(),
            cascade: true,
        })
        .await
        .unwrap()
    });
    wait_for(
        "the removed pack's discovery cleared",
        solarhub_hub::mqtt::REFRESH_EVERY * 3,
        || seen.last(&pack_config).as_deref() == Some(""),
    );

    // 3. The hub stops: the bridge says offline, which every sensor's availability includes.
    site.hub.stop_and_wait(Duration::from_secs(3));
    assert_eq!(
        seen.last(&format!("{base}/status")).as_deref(),
        Some("offline")
    );
}

/// Acceptance 3: a unit that times out goes offline within three poll intervals (plus the
/// bridge's refresh) and online again when it answers.
fn a_silent_unit_goes_offline_and_comes_back(db: TestDb) {
    let mut site = site_with_bridge(&db, 1883);
    let (base, seen, devices) = (&site.base, &site.seen, &site.devices);
    let poll_secs = POLL_SECS;
    let availability = format!("{base}/meter/grid_meter_1/availability");
    wait_for("the meter online", Duration::from_secs(30), || {
        seen.last(&availability).as_deref() == Some("online")
    });
    devices[&3].set_fault(Fault::Timeout);
    let limit = Duration::from_secs_f64(3.0 * poll_secs) + solarhub_hub::mqtt::REFRESH_EVERY * 2;
    wait_for(
        "the silent meter offline",
        limit + Duration::from_secs(2),
        || seen.last(&availability).as_deref() == Some("offline"),
    );
    assert_eq!(
        seen.last(&format!("{base}/inverter/powdrive1/availability"))
            .as_deref(),
        Some("online"),
        "its neighbour on the bus stays online"
    );
    devices[&3].set_fault(Fault::None);
    // The collector backs off a silent device (up to 30 s between tries).
    wait_for("the meter online again", Duration::from_secs(45), || {
        seen.last(&availability).as_deref() == Some("online")
    });
    let changes = seen.all(&availability).len();
    site.stop_collector();
    assert!(changes >= 3);
}

/// How often the tests' collector polls its devices (seconds).
const POLL_SECS: f64 = 1.0;

/// A hub publishing through `broker_port` (the proxy or the broker) under topics of its own, the
/// simulated gateway, and the real collector polling it every [`POLL_SECS`].
struct Site {
    hub: RunningHub,
    seen: Seen,
    base: String,
    prefix: String,
    devices: BTreeMap<u8, Arc<solarhub_collector::simulator::SimDevice>>,
    stop: tokio::sync::watch::Sender<bool>,
    collector: Option<tokio::task::JoinHandle<Result<(), solarhub_collector::app::CollectorError>>>,
    _outbox: tempfile::TempDir,
}

impl Site {
    /// Stops the collector (it drains its outbox) and waits for it.
    fn stop_collector(&mut self) {
        let _ = self.stop.send(true);
        if let Some(collector) = self.collector.take() {
            self.hub.runtime.block_on(collector).unwrap().unwrap();
        }
    }
}

fn site_with_bridge(db: &TestDb, broker_port: u16) -> Site {
    let tag = format!("solarhub-test-{}-{}", std::process::id(), rand_suffix());
    let base = format!("{tag}/sh");
    let prefix = format!("{tag}/ha");
    let mut settings = MqttSettings::from_url(&format!("mqtt://127.0.0.1:{broker_port}")).unwrap();
    settings.base_topic = base.clone();
    settings.discovery_prefix = Some(prefix.clone());
    settings.client_id = format!("{tag}-hub");
    let hub = RunningHub::start_with(
        db,
        solarhub_hub::server::ServeOptions {
            mqtt: Some(settings),
            ..solarhub_hub::server::ServeOptions::default()
        },
    );
    let seen = subscribe(&hub.runtime, vec![format!("{tag}/#")]);
    let (port, devices) = hub.runtime.block_on(site::simulated_gateway_with_devices());
    site::assign_to_collector(&mut hub.database.get().unwrap(), COLLECTOR, port, POLL_SECS);
    let outbox = tempfile::tempdir().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let config = site::uplink_config(&hub.url, COLLECTOR);
    let dir = outbox.path().to_owned();
    let collector = hub.runtime.spawn(async move {
        solarhub_collector::app::run_collector(config, &dir, None, Arc::default(), stopped).await
    });
    Site {
        hub,
        seen,
        base,
        prefix,
        devices,
        stop,
        collector: Some(collector),
        _outbox: outbox,
    }
}

/// The values of `field` in every state message of `topic`, in order (nulls left out).
fn series(seen: &Seen, topic: &str, field: &str) -> Vec<f64> {
    seen.all(topic)
        .iter()
        .filter_map(|payload| serde_json::from_str::<serde_json::Value>(payload).ok())
        .filter_map(|state| state[field].as_f64())
        .collect()
}

/// Acceptance 4: counters reset to zero and garbage on the energy registers; no lifetime or
/// today's energy sensor ever publishes a lower value.
fn energy_sensors_never_go_down(db: TestDb) {
    let site = site_with_bridge(&db, 1883);
    let system_state = format!("{}/system/home/state", site.base);
    // Some energy has accumulated (the meter's, by the trapezoid rule: the simulated inverter's
    // counters step by 0.1 kWh, too coarse for a test of seconds).
    wait_for("energy published", Duration::from_secs(30), || {
        [
            "grid_import_total_kwh",
            "grid_export_total_kwh",
            "load_total_kwh",
        ]
        .iter()
        .any(|field| {
            series(&site.seen, &system_state, field)
                .last()
                .is_some_and(|kwh| *kwh > 0.0)
        })
    });
    // The inverter's counters back to zero, then garbage on its energy registers.
    site.devices[&1].reset_counters();
    std::thread::sleep(Duration::from_secs(3));
    site.devices[&1].set_fault(Fault::Garbage(vec![
        "pv_total_kwh".into(),
        "load_total_kwh".into(),
        "grid_import_total_kwh".into(),
        "pv_today_kwh".into(),
        "load_today_kwh".into(),
    ]));
    std::thread::sleep(Duration::from_secs(4));
    site.devices[&1].set_fault(Fault::None);
    std::thread::sleep(Duration::from_secs(3));
    let mut site = site;
    site.stop_collector();
    let sensors = solarhub_hub::mqtt::entities::energy_sensors();
    let mut checked = 0;
    for sensor in &sensors {
        let values = series(&site.seen, &system_state, sensor.field);
        for pair in values.windows(2) {
            assert!(
                pair[1] >= pair[0],
                "{} went down: {} after {} ({values:?})",
                sensor.field,
                pair[1],
                pair[0]
            );
        }
        checked += values.len();
    }
    assert!(checked > 10, "energy values were published ({checked})");
}

/// Acceptance 5: the broker unreachable: ingest goes on; it comes back: the bridge reconnects
/// and publishes discovery again.
fn ingest_goes_on_without_the_broker(db: TestDb) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = Proxy::start(&runtime, 1883);
    let site = site_with_bridge(&db, proxy.port);
    let status = format!("{}/status", site.base);
    let config = format!(
        "{}/sensor/{}_system_home/pv_power_w/config",
        site.prefix,
        site.base.replace('/', "_")
    );
    wait_for("the bridge connected", Duration::from_secs(30), || {
        site.seen.last(&status).as_deref() == Some("online") && site.seen.last(&config).is_some()
    });
    let rows = || {
        let mut conn = site.hub.database.get().unwrap();
        count(&mut conn, "energy_samples") + count(&mut conn, "meter_samples")
    };
    proxy.set(proxy::Fault::Cut);
    // The broker notices the cut connection and publishes the bridge's last will.
    wait_for("the last will", Duration::from_secs(30), || {
        site.seen.last(&status).as_deref() == Some("offline")
    });
    let before = rows();
    std::thread::sleep(Duration::from_secs(4));
    let during = rows();
    assert!(
        during >= before + 4,
        "ingest went on without the broker: {before} → {during} rows"
    );
    let configs_before = site.seen.all(&config).len();
    proxy.set(proxy::Fault::None);
    wait_for(
        "reconnected, discovery published again",
        Duration::from_secs(30),
        || {
            site.seen.last(&status).as_deref() == Some("online")
                && site.seen.all(&config).len() > configs_before
        },
    );
    let mut site = site;
    site.stop_collector();
    drop(runtime);
}

on_both_backends!(
    the_site_appears_in_home_assistant,
    a_silent_unit_goes_offline_and_comes_back,
    energy_sensors_never_go_down,
    ingest_goes_on_without_the_broker,
);

/// Acceptance 6: `serve --config` with the old app's `mqtt:` section starts the bridge with its
/// host, port and base topic.
#[test]
fn the_old_configs_mqtt_section_starts_the_bridge() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("solarhub-test-{}-{}", std::process::id(), rand_suffix());
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "home:\n  id: home\n  name: Home\n  timezone: Asia/Karachi\nmqtt:\n  host: 127.0.0.1\n  port: 1883\n  base_topic: {tag}/solar\n  client_id: {tag}-hub\n  ha_discovery: true\n"
        ),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let seen = subscribe(
        &runtime,
        vec![format!("{tag}/#"), "homeassistant/sensor/#".into()],
    );
    let port = common::free_port();
    let mut hub = common::hub_binary()
        .arg("--database-url")
        .arg(dir.path().join("hub.db"))
        .args(["serve", "--without-auth", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("{tag}/solar/status");
    let state = format!("{tag}/solar/system/home/state");
    let start = Instant::now();
    while !(seen.last(&status).as_deref() == Some("online") && seen.last(&state).is_some()) {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = hub.kill();
            panic!("the bridge of the config's mqtt: section did not publish");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its discovery goes to Home Assistant's default prefix, under this base topic's node ids.
    let node = format!("{}_solar_system_home", tag.replace('/', "_"));
    let discovery = format!("homeassistant/sensor/{node}/pv_power_w/config");
    let start = Instant::now();
    while seen.last(&discovery).is_none() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = hub.kill();
    let _ = hub.wait();
    assert!(seen.last(&discovery).is_some(), "{discovery}");
    // Clean the broker: the retained configs of this test go away.
    let mut options = rumqttc::MqttOptions::new(format!("{tag}-clean"), "127.0.0.1", 1883);
    options.set_keep_alive(Duration::from_secs(5));
    let topics: Vec<String> = seen
        .topics_under("homeassistant/sensor/")
        .into_iter()
        .map(|(topic, _)| topic)
        .filter(|topic| topic.contains(&node))
        .collect();
    runtime.block_on(async move {
        let (client, mut events) = rumqttc::AsyncClient::new(options, 200);
        for topic in topics {
            client
                .publish(topic, rumqttc::QoS::AtLeastOnce, true, Vec::<u8>::new())
                .await
                .unwrap();
        }
        client.disconnect().await.unwrap();
        while events.poll().await.is_ok() {}
    });
}
