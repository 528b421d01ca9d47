//! The MQTT bridge for Home Assistant (DESIGN §9): follows committed readings (the same notices
//! as the live watch) and publishes, per device and aggregate, a JSON state topic, an availability
//! topic following the live API's staleness, and retained Home Assistant discovery configs. The
//! bridge's last will marks everything offline (every sensor's availability includes the bridge's
//! status topic). Energy sensors come from solarhub's own accumulation and never decrease (today's
//! may restart only when the local day changes).
//!
//! It never slows ingest: it reads the broadcast notices (a lagging bridge skips, never blocks),
//! gathers them and publishes a system at most every [`PUBLISH_EVERY`],
//! and hands messages to the client with `try_publish` (a full queue drops, counted); while the
//! broker is away nothing is queued at all (counted as dropped). On every (re)connection it
//! publishes everything again.

pub mod entities;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

use crate::db::{Database, DbError};
use crate::live::Live;
use entities::{EnergyBefore, Entity, Topics};

/// How the bridge reaches the broker and names its topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: TLS with the system's roots (or `ca_cert`).
    pub tls: bool,
    pub ca_cert: Option<PathBuf>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// A password given inline (the old app's `mqtt.password`); `password_file` wins.
    pub password: Option<String>,
    pub client_id: String,
    pub base_topic: String,
    /// Where Home Assistant looks for discovery configs; `None` publishes no discovery.
    pub discovery_prefix: Option<String>,
}

pub const DEFAULT_BASE_TOPIC: &str = "solarhub";
pub const DEFAULT_DISCOVERY_PREFIX: &str = "homeassistant";
/// Messages waiting for the broker at most; beyond, messages are dropped (and counted).
pub const QUEUE: usize = 1024;
/// How often every system is looked at again without a commit (availability follows staleness).
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// Commits are gathered and a system is published at most this often (the fastest poll interval
/// a user sets is about a second; ingest may commit many batches in that time).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// How long a system's energy before today (its daily rows) is reused before it is read again.
const ENERGY_BEFORE_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("--mqtt-url {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("--mqtt-password-file {path}: {reason}")]
    Password { path: String, reason: String },
    #[error("MQTT TLS: {0}")]
    Tls(String),
}

impl MqttSettings {
    /// `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`.
    pub fn from_url(url: &str) -> Result<MqttSettings, MqttError> {
        let fail = |reason: &str| MqttError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err(fail("must start with mqtt:// or mqtts://"));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| fail("the port is not a number"))?,
            ),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err(fail("no host"));
        }
        Ok(MqttSettings {
            host: host.to_owned(),
            port,
            tls,
            ca_cert: None,
            username: None,
            password_file: None,
            password: None,
            client_id: format!("solarhub-{}", std::process::id()),
            base_topic: DEFAULT_BASE_TOPIC.to_owned(),
            discovery_prefix: Some(DEFAULT_DISCOVERY_PREFIX.to_owned()),
        })
    }

    fn options(&self, topics: &Topics) -> Result<MqttOptions, MqttError> {
        let mut options = MqttOptions::new(&self.client_id, &self.host, self.port);
        options.set_keep_alive(Duration::from_secs(10));
        options.set_clean_session(true);
        options.set_last_will(LastWill::new(
            topics.bridge_status(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        let password = match &self.password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| MqttError::Password {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => self.password.clone(),
        };
        if let Some(username) = &self.username {
            options.set_credentials(username, password.unwrap_or_default());
        }
        if self.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::new(self.tls_config()?)),
            ));
        }
        Ok(options)
    }

    fn tls_config(&self) -> Result<rumqttc::tokio_rustls::rustls::ClientConfig, MqttError> {
        use rumqttc::tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| MqttError::Tls(format!("{}: {e}", path.display())))?;
                for cert in rustls_pemfile_certs(&pem) {
                    roots
                        .add(cert)
                        .map_err(|e| MqttError::Tls(format!("{}: {e}", path.display())))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| MqttError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

fn rustls_pemfile_certs(
    pem: &[u8],
) -> Vec<rumqttc::tokio_rustls::rustls::pki_types::CertificateDer<'static>> {
    use rumqttc::tokio_rustls::rustls::pki_types::CertificateDer;
    use rumqttc::tokio_rustls::rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// What the bridge counts.
#[derive(Debug, Clone, Default)]
pub struct BridgeMetrics {
    pub published: Counter,
    pub dropped: Counter,
    pub connections: Counter,
}

/// The bridge's memory of what it published.
#[derive(Default)]
struct Published {
    /// Topic → payload, for states and availability (published again only when changed).
    last: HashMap<String, String>,
    /// Discovery topics published per system, to clear those of removed devices.
    discovery: HashMap<String, BTreeSet<String>>,
    /// Per system: the discovery topics of sensors whose field has had a value since the bridge
    /// started (kept across reconnections; only declared sensors are announced).
    valued: HashMap<String, BTreeSet<String>>,
    /// Per system: lifetime kWh per figure, never published lower.
    lifetime: HashMap<String, [Option<f64>; 6]>,
    /// Per system: (local date, today's kWh per figure).
    today: HashMap<String, (String, [Option<f64>; 6])>,
    /// Per system: its energy before today, for that date, and when it was read.
    energy_before: HashMap<String, (String, std::time::Instant, EnergyBefore)>,
}

struct Bridge {
    client: AsyncClient,
    /// Whether the broker is reachable now; while not, nothing is queued (each message is
    /// counted as dropped) and everything is published again on the next connection.
    connected: bool,
    topics: Topics,
    discovery: bool,
    metrics: BridgeMetrics,
    published: Published,
}

impl Bridge {
    fn publish(&mut self, topic: String, payload: String, retain: bool) {
        if !self.connected {
            self.metrics.dropped.inc();
            return;
        }
        match self
            .client
            .try_publish(topic, QoS::AtMostOnce, retain, payload)
        {
            Ok(()) => self.metrics.published.inc(),
            Err(_) => self.metrics.dropped.inc(),
        };
    }

    /// Publishes `payload` on `topic` unless it is what was published there last.
    fn publish_changed(&mut self, topic: String, payload: String, retain: bool) {
        if self.published.last.get(&topic) == Some(&payload) {
            return;
        }
        self.published.last.insert(topic.clone(), payload.clone());
        self.publish(topic, payload, retain);
    }

    /// One system: its entities' discovery (when `with_discovery`), availability and state.
    fn system(
        &mut self,
        system_id: &str,
        mut entities: Vec<Entity>,
        today: &crate::live::EnergyToday,
        before: EnergyBefore,
    ) {
        if let Some(system) = entities.iter_mut().find(|e| e.kind == "system") {
            self.add_energy(system_id, system, today, before);
        }
        if self.discovery {
            // Published when the system's devices changed, or when forced (a new connection,
            // Home Assistant back online: the memory was cleared).
            let declared = self.declared(system_id, &entities);
            let topics: BTreeSet<String> =
                declared.iter().map(|(topic, _, _)| topic.clone()).collect();
            let before = self.published.discovery.get(system_id).cloned();
            if before.as_ref() != Some(&topics) {
                for (topic, entity, sensor) in declared {
                    let config = self
                        .topics
                        .discovery_config(&entities[entity], &entities[entity].sensors[sensor]);
                    self.publish(topic, config.to_string(), true);
                }
                for gone in before.unwrap_or_default().difference(&topics) {
                    // An empty retained message removes the entity from Home Assistant.
                    self.publish(gone.clone(), String::new(), true);
                }
                self.published
                    .discovery
                    .insert(system_id.to_owned(), topics);
            }
        }
        for entity in &entities {
            let availability = if entity.available {
                "online"
            } else {
                "offline"
            };
            self.publish_changed(
                self.topics.availability(entity),
                availability.to_owned(),
                true,
            );
            self.publish_changed(
                self.topics.state(entity),
                Value::Object(entity.state.clone()).to_string(),
                false,
            );
        }
    }

    /// The sensors to declare to Home Assistant, as (discovery topic, entity, sensor) indexes:
    /// those whose field has had a value, and the main one of an entity none of whose fields has.
    fn declared(&mut self, system_id: &str, entities: &[Entity]) -> Vec<(String, usize, usize)> {
        let all: Vec<(String, usize, usize)> = entities
            .iter()
            .enumerate()
            .flat_map(|(e, entity)| {
                (0..entity.sensors.len())
                    .map(move |s| (e, s))
                    .map(|(e, s)| {
                        (
                            self.topics.discovery(&entities[e], &entities[e].sensors[s]),
                            e,
                            s,
                        )
                    })
            })
            .collect();
        let valued = self
            .published
            .valued
            .entry(system_id.to_owned())
            .or_default();
        for (topic, e, s) in &all {
            let field = entities[*e].sensors[*s].field;
            if entities[*e].state.get(field).is_some_and(|v| !v.is_null()) {
                valued.insert(topic.clone());
            }
        }
        // A removed device's sensors are forgotten.
        let current: std::collections::HashSet<&String> = all.iter().map(|(t, _, _)| t).collect();
        valued.retain(|topic| current.contains(topic));
        let speaking: std::collections::HashSet<usize> = all
            .iter()
            .filter(|(topic, _, _)| valued.contains(topic))
            .map(|(_, e, _)| *e)
            .collect();
        all.iter()
            .filter(|(topic, e, s)| {
                valued.contains(topic)
                    || (!speaking.contains(e)
                        && entities[*e].sensors[*s].field == entities[*e].main)
            })
            .cloned()
            .collect()
    }

    /// Today's and lifetime energy on the system entity; neither ever goes down (today's restarts
    /// when the local date changes).
    fn add_energy(
        &mut self,
        system_id: &str,
        system: &mut Entity,
        today: &crate::live::EnergyToday,
        before: EnergyBefore,
    ) {
        let now_today = [
            today.pv_kwh,
            today.load_kwh,
            today.grid_import_kwh,
            today.grid_export_kwh,
            today.battery_charge_kwh,
            today.battery_discharge_kwh,
        ];
        let earlier = [
            before.pv_kwh,
            before.load_kwh,
            before.grid_import_kwh,
            before.grid_export_kwh,
            before.battery_charge_kwh,
            before.battery_discharge_kwh,
        ];
        let (date, last_today) = self
            .published
            .today
            .entry(system_id.to_owned())
            .or_insert_with(|| (today.date.clone(), [None; 6]));
        if *date != today.date {
            *date = today.date.clone();
            *last_today = [None; 6];
        }
        let lifetime = self
            .published
            .lifetime
            .entry(system_id.to_owned())
            .or_insert([None; 6]);
        let sensors = entities::energy_sensors();
        for i in 0..now_today.len() {
            let day = never_down(last_today[i], now_today[i]);
            last_today[i] = day;
            let total = match (earlier[i], day) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
            };
            let total = never_down(lifetime[i], total);
            lifetime[i] = total;
            system
                .state
                .insert(sensors[i].field.to_owned(), json!(day.map(round3)));
            system
                .state
                .insert(sensors[i + 6].field.to_owned(), json!(total.map(round3)));
        }
        system.sensors.extend(sensors);
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The larger of what was published and what is known now (a missing value never replaces one).
fn never_down(last: Option<f64>, now: Option<f64>) -> Option<f64> {
    match (last, now) {
        (Some(last), Some(now)) => Some(last.max(now)),
        (last, None) => last,
        (None, now) => now,
    }
}

/// Runs the bridge until `shutdown` completes: connects (again and again), follows `live`'s
/// notices and publishes.
pub async fn run_bridge(
    settings: MqttSettings,
    live: Live,
    database: Database,
    metrics: BridgeMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), MqttError> {
    let topics = Topics {
        base: settings.base_topic.clone(),
        discovery_prefix: settings
            .discovery_prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_DISCOVERY_PREFIX.to_owned()),
    };
    let options = settings.options(&topics)?;
    let (client, mut eventloop) = AsyncClient::new(options, QUEUE);
    let mut bridge = Bridge {
        client: client.clone(),
        connected: false,
        topics: topics.clone(),
        discovery: settings.discovery_prefix.is_some(),
        metrics: metrics.clone(),
        published: Published::default(),
    };
    // The client's event loop runs on its own (its `poll` must not be cancelled half-way); it
    // tells this loop when a connection is made and when Home Assistant says it is back.
    let (signals, mut signalled) = tokio::sync::mpsc::channel::<Signal>(16);
    let ha_status = topics.ha_status();
    let subscriber = client.clone();
    let connection = tokio::spawn(async move {
        // One warning per outage, not one per retry.
        let mut reachable = true;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    reachable = true;
                    let _ = subscriber.try_subscribe(ha_status.clone(), QoS::AtMostOnce);
                    if signals.send(Signal::Connected).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(message)))
                    if message.topic == ha_status && message.payload.as_ref() == b"online" =>
                {
                    if signals.send(Signal::HomeAssistantOnline).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(error) => {
                    if std::mem::replace(&mut reachable, false) {
                        tracing::warn!(%error, "MQTT broker unreachable; retrying every second (messages meanwhile are dropped and counted)");
                    } else {
                        tracing::debug!(%error, "MQTT broker still unreachable");
                    }
                    if signals.send(Signal::Disconnected).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    let mut notices = live.subscribe();
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(PUBLISH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Systems with commits not yet published.
    let mut dirty: BTreeSet<String> = BTreeSet::new();
    tokio::pin!(shutdown);
    tracing::info!(broker = %format!("{}:{}", settings.host, settings.port), base_topic = %topics.base, "MQTT bridge starting");
    loop {
        // What to publish next: `Some(these systems, or all)`.
        let work: Option<Option<BTreeSet<String>>> = tokio::select! {
            _ = &mut shutdown => {
                let _ = client.try_publish(topics.bridge_status(), QoS::AtLeastOnce, true, "offline");
                let _ = client.try_disconnect();
                // Let the event loop send both, then leave.
                let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
                return Ok(());
            }
            signal = signalled.recv() => match signal {
                Some(Signal::Disconnected) => {
                    bridge.connected = false;
                    None
                }
                Some(Signal::Connected) => {
                    bridge.connected = true;
                    metrics.connections.inc();
                    tracing::info!("MQTT bridge connected: publishing discovery, availability and states");
                    bridge.published.last.clear();
                    bridge.published.discovery.clear();
                    bridge.publish(topics.bridge_status(), "online".into(), true);
                    Some(None)
                }
                Some(Signal::HomeAssistantOnline) => {
                    tracing::info!("Home Assistant is back: publishing discovery again");
                    bridge.published.discovery.clear();
                    Some(None)
                }
                None => None,
            },
            notice = notices.recv() => {
                match notice {
                    Ok(notice) => {
                        dirty.insert(notice.system_id.to_string());
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        dirty.insert(String::new());
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
                }
                None
            }
            _ = flush.tick(), if !dirty.is_empty() => {
                let systems = std::mem::take(&mut dirty);
                // A lagged notice (the empty name) means: every system.
                Some((!systems.contains("")).then_some(systems))
            }
            _ = refresh.tick() => {
                dirty.clear();
                Some(None)
            }
        };
        let Some(only) = work else {
            continue;
        };
        if let Err(error) = publish_systems(&mut bridge, &live, &database, only).await {
            tracing::warn!(%error, "MQTT bridge: cannot read the systems now");
        }
    }
}

/// What the client's event loop tells the bridge.
enum Signal {
    Connected,
    Disconnected,
    HomeAssistantOnline,
}

/// Publishes every system (or `only` one).
async fn publish_systems(
    bridge: &mut Bridge,
    live: &Live,
    database: &Database,
    only: Option<BTreeSet<String>>,
) -> Result<(), DbError> {
    let systems: Vec<String> = match only {
        Some(systems) => systems.into_iter().collect(),
        None => database
            .run(crate::db::catalog::load_systems)
            .await?
            .into_iter()
            .map(|s| s.system_id)
            .collect(),
    };
    for system_id in systems {
        let Ok(now) = live.system_now(&system_id).await else {
            continue;
        };
        let date = now.today.date.clone();
        let cached = bridge
            .published
            .energy_before
            .get(&system_id)
            .filter(|(d, read, _)| *d == date && read.elapsed() < ENERGY_BEFORE_TTL)
            .map(|(_, _, before)| *before);
        let before = match cached {
            Some(before) => before,
            None => {
                let (id, day) = (system_id.clone(), date.clone());
                let before = database
                    .run(move |conn| crate::db::rollups::system_energy_before(conn, &id, &day))
                    .await?;
                bridge
                    .published
                    .energy_before
                    .insert(system_id.clone(), (date, std::time::Instant::now(), before));
                before
            }
        };
        let entities = entities::entities(&now);
        bridge.system(&system_id, entities, &now.today, before);
    }
    Ok(())
}

impl MqttSettings {
    /// The bridge's settings from the old app's `mqtt:` section; `None` without a host.
    pub fn from_config(section: &crate::config_import::MqttSection) -> Option<MqttSettings> {
        let host = section.host.clone()?;
        let mut settings =
            MqttSettings::from_url(&format!("mqtt://{host}:{}", section.port.unwrap_or(1883)))
                .ok()?;
        settings.username = section.username.clone();
        settings.password = section.password.clone();
        if let Some(base) = &section.base_topic {
            settings.base_topic = base.clone();
        }
        if let Some(client_id) = &section.client_id {
            settings.client_id = client_id.clone();
        }
        if section.ha_discovery == Some(false) {
            settings.discovery_prefix = None;
        }
        Some(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_energy_that_never_goes_down() {
        let s = MqttSettings::from_url("mqtt://broker.lan").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("broker.lan", 1883, false)
        );
        let s = MqttSettings::from_url("mqtts://broker.lan:8884").unwrap();
        assert_eq!((s.port, s.tls), (8884, true));
        assert!(MqttSettings::from_url("http://x").is_err());
        assert!(MqttSettings::from_url("mqtt://x:port").is_err());
        assert_eq!(never_down(Some(5.0), Some(0.0)), Some(5.0));
        assert_eq!(never_down(Some(5.0), None), Some(5.0));
        assert_eq!(never_down(None, Some(1.0)), Some(1.0));
        assert_eq!(never_down(Some(5.0), Some(6.5)), Some(6.5));
    }
}
