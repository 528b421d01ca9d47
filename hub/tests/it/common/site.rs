//! A simulated site for the uplink tests: a Modbus TCP gateway with a powdrive inverter (unit 1)
//! and an iammeter (unit 3), and the real-installation fixture with powdrive1 and grid_meter_1
//! assigned to one collector and pointed at that gateway.

use std::collections::BTreeMap;
use std::sync::Arc;

use solarhub_collector::drivers::register_map::builtin_map;
use solarhub_collector::simulator::model::DeviceModel;
use solarhub_collector::simulator::{Clock, Endpoint, SimDevice, serve_tcp};
use solarhub_hub::db::DbConnection;

/// The devices [`assign_to_collector`] assigns: id, the sample table and id column their samples
/// land in, and a field that changes between readings.
pub const DEVICES: [(&str, &str, &str, &str); 2] = [
    ("powdrive1", "energy_samples", "inverter_id", "load_power_w"),
    ("grid_meter_1", "meter_samples", "meter_id", "power_w"),
];

/// `(ts, column)` of every stored sample of `device`, in time order.
pub fn stored_values(
    conn: &mut DbConnection,
    table: &str,
    id_column: &str,
    device: &str,
    column: &str,
) -> Vec<(i64, Option<f64>)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        ts: i64,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
        value: Option<f64>,
    }
    let rows: Vec<Row> = diesel::RunQueryDsl::load(
        diesel::sql_query(format!(
            "SELECT ts, {column} AS value FROM {table} WHERE {id_column} = '{device}' ORDER BY ts"
        )),
        conn,
    )
    .unwrap();
    rows.into_iter().map(|row| (row.ts, row.value)).collect()
}

/// Serves the gateway on 127.0.0.1:0 (on the current runtime) and returns its port.
pub async fn simulated_gateway() -> u16 {
    simulated_gateway_with_devices().await.0
}

/// [`simulated_gateway`], with its devices by unit id (to switch their faults).
pub async fn simulated_gateway_with_devices() -> (u16, BTreeMap<u8, Arc<SimDevice>>) {
    let (port, units, _) = simulated_gateway_with_endpoint().await;
    (port, units)
}

/// [`simulated_gateway_with_devices`], and the endpoint (its transaction log).
pub async fn simulated_gateway_with_endpoint() -> (u16, BTreeMap<u8, Arc<SimDevice>>, Arc<Endpoint>)
{
    let tz: chrono_tz::Tz = "Asia/Karachi".parse().unwrap();
    let now = chrono::Utc::now();
    let device = |device_type: &str, model| {
        Arc::new(SimDevice::new(
            format!("sim-{device_type}"),
            Arc::new(builtin_map(device_type).unwrap()),
            model,
            now,
        ))
    };
    let units = BTreeMap::from([
        (
            1u8,
            device("powdrive", DeviceModel::inverter(tz, 8000.0, 1)),
        ),
        (3u8, device("iammeter", DeviceModel::meter(tz, 3))),
    ]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let endpoint = Arc::new(Endpoint::new(units.clone(), Clock::Real));
    tokio::spawn(serve_tcp(listener, endpoint.clone()));
    (port, units, endpoint)
}

/// Imports the real-installation fixture (`fixtures/installation.yaml`) after `edit` has had its
/// way with it (assigning adapters to collectors, pointing them at simulators, sizing packs).
pub fn install_fixture(
    conn: &mut DbConnection,
    edit: impl FnOnce(&mut solarhub_hub::catalog::Installation),
) {
    let types = solarhub_hub::adapter_types::builtin_adapter_types().unwrap();
    let mut loaded = solarhub_hub::config_import::parse_config(
        std::path::Path::new("installation.yaml"),
        include_str!("../fixtures/installation.yaml"),
        &types,
    )
    .unwrap();
    edit(&mut loaded.installation);
    let rows: Vec<_> = types.into_iter().map(|t| t.row).collect();
    // Running hubs write too (roller, sampler): on SQLite a write may lose a race, as the hub's own
    // writes do (they are retried the same way).
    for attempt in 1.. {
        match solarhub_hub::db::catalog::apply_installation(
            conn,
            &rows,
            &loaded.installation,
            false,
        ) {
            Err(solarhub_hub::db::DbError::Contention(_)) if attempt < 5 => {
                std::thread::sleep(std::time::Duration::from_millis(50 * attempt))
            }
            result => {
                result.unwrap();
                break;
            }
        }
    }
}

/// The fixture with powdrive1 (unit 1) and grid_meter_1 (unit 3) assigned to `collector`,
/// polled every `poll_secs` from the gateway on `port`.
pub fn assign_to_collector(conn: &mut DbConnection, collector: &str, port: u16, poll_secs: f64) {
    install_fixture(conn, |installation| {
        for adapter in &mut installation.adapters {
            let unit = match adapter.adapter_id.as_str() {
                "powdrive1.adapter" => 1,
                "grid_meter_1.adapter" => 3,
                _ => continue,
            };
            adapter.collector_id = Some(collector.into());
            adapter.config_json = serde_json::json!({
                "transport": "tcp",
                "host": "127.0.0.1",
                "port": port,
                "unit_id": unit,
                "poll_interval_secs": poll_secs,
            })
            .to_string();
        }
    });
}

/// How the tests' in-process collectors reach `hub_url` as `collector`: small batches, a short
/// wait and back-off, no credentials.
pub fn uplink_config(hub_url: &str, collector: &str) -> solarhub_collector::uplink::UplinkConfig {
    solarhub_collector::uplink::UplinkConfig {
        access: solarhub_collector::uplink::hub_access::HubAccess::none(),
        hubs: vec![hub_url.to_owned()],
        collector_id: collector.into(),
        version: "test".into(),
        batch_max_readings: 20,
        batch_max_wait: std::time::Duration::from_millis(200),
        max_backoff: std::time::Duration::from_secs(1),
        write_budget_per_day: solarhub_collector::control::DEFAULT_WRITE_BUDGET,
    }
}

/// Runs the real collector with `config` (outbox in `outbox`) on the hub's runtime until each of
/// [`DEVICES`] has reported `enough` times, stops it (it drains its outbox), and returns every
/// reading it took.
pub fn collect_until(
    hub: &super::RunningHub,
    config: solarhub_collector::uplink::UplinkConfig,
    outbox: &std::path::Path,
    enough: usize,
) -> Vec<solarhub_collector::drivers::reading::Reading> {
    collect_from(
        hub,
        vec![(config, outbox.to_owned())],
        enough,
        std::time::Duration::ZERO,
    )
}

/// Runs one real collector per `(config, outbox)` at once on the hub's runtime until each of
/// [`DEVICES`] has reported `enough` times among them and `at_least` has passed (a collector
/// whose hub is away acknowledges nothing, so only time ends its run), stops them, and returns
/// every reading they took.
pub fn collect_from(
    hub: &super::RunningHub,
    collectors: Vec<(solarhub_collector::uplink::UplinkConfig, std::path::PathBuf)>,
    enough: usize,
    at_least: std::time::Duration,
) -> Vec<solarhub_collector::drivers::reading::Reading> {
    use solarhub_collector::drivers::reading::Reading;
    use std::time::Duration;
    let (tee, mut taken) = tokio::sync::mpsc::channel::<Reading>(10_000);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running: Vec<_> = collectors
        .into_iter()
        .map(|(config, dir)| {
            let (tee, stopped) = (tee.clone(), stopped.clone());
            hub.runtime.spawn(async move {
                solarhub_collector::app::run_collector(
                    config,
                    &dir,
                    Some(tee),
                    std::sync::Arc::default(),
                    stopped,
                )
                .await
            })
        })
        .collect();
    drop(tee);
    let mut readings: Vec<Reading> = Vec::new();
    hub.runtime.block_on(async {
        let began = tokio::time::Instant::now();
        let reported = |readings: &[Reading], device: &str| {
            readings.iter().filter(|r| r.device_id == device).count() >= enough
        };
        tokio::time::timeout(Duration::from_secs(60), async {
            while began.elapsed() < at_least || !DEVICES.iter().all(|d| reported(&readings, d.0)) {
                match tokio::time::timeout(Duration::from_millis(200), taken.recv()).await {
                    Ok(Some(reading)) => readings.push(reading),
                    Ok(None) => panic!("the collector stopped early"),
                    Err(_) => {}
                }
            }
        })
        .await
        .expect("both devices report within 60 s");
        stop.send(true).unwrap();
        for collector in running {
            tokio::time::timeout(Duration::from_secs(20), collector)
                .await
                .expect("a collector stops within 20 s")
                .unwrap()
                .expect("the collector stops cleanly");
        }
        while let Some(reading) = taken.recv().await {
            readings.push(reading);
        }
    });
    readings
}

/// Asserts that the hub's rows of each of [`DEVICES`] are exactly the readings the collector
/// took, once each, with their values.
pub fn assert_stored_once(
    conn: &mut DbConnection,
    readings: &[solarhub_collector::drivers::reading::Reading],
) {
    for (device, table, id_column, field) in DEVICES {
        let taken: Vec<(i64, Option<f64>)> = readings
            .iter()
            .filter(|r| r.device_id == device)
            .map(|r| (r.ts, r.fields.get(field).copied()))
            .collect();
        let rows = stored_values(conn, table, id_column, device, field);
        assert_eq!(
            rows, taken,
            "{device}: the hub's rows are exactly the readings the collector took"
        );
        assert!(
            taken
                .iter()
                .any(|(_, value)| value.is_some_and(|v| v != 0.0)),
            "{device} reported a non-zero {field}"
        );
    }
}
