//! Flags more than one command takes: the MQTT bridge's, retention's and the listener's security.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

/// The MQTT bridge for Home Assistant (docs/home-assistant.md).
#[derive(clap::Args)]
pub(crate) struct MqttArgs {
    /// Publish to this broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS). Without it, the
    /// `mqtt:` section of --config (the old app's) is used when it names a host.
    #[arg(long, env = "SOLARHUB_MQTT_URL")]
    mqtt_url: Option<String>,
    #[arg(long, env = "SOLARHUB_MQTT_USERNAME")]
    mqtt_username: Option<String>,
    /// A file holding the broker password.
    #[arg(long, env = "SOLARHUB_MQTT_PASSWORD_FILE")]
    mqtt_password_file: Option<PathBuf>,
    /// The CA of an mqtts:// broker (PEM); otherwise the system's trusted roots.
    #[arg(long, env = "SOLARHUB_MQTT_CA_CERT")]
    mqtt_ca_cert: Option<PathBuf>,
    /// Topics are BASE/<kind>/<id>/state and …/availability, and BASE/status for the bridge.
    #[arg(long, env = "SOLARHUB_MQTT_BASE_TOPIC")]
    mqtt_base_topic: Option<String>,
    /// Home Assistant's discovery prefix; `none` publishes no discovery.
    #[arg(long, env = "SOLARHUB_MQTT_DISCOVERY_PREFIX")]
    mqtt_discovery_prefix: Option<String>,
    #[arg(long, env = "SOLARHUB_MQTT_CLIENT_ID")]
    mqtt_client_id: Option<String>,
}

impl MqttArgs {
    /// The bridge's settings: the flags, else the config's `mqtt:` section; `None`: no bridge.
    pub(crate) fn settings(
        self,
        from_config: Option<&solarhub_hub::config_import::MqttSection>,
    ) -> anyhow::Result<Option<solarhub_hub::mqtt::MqttSettings>> {
        let mut settings = match (&self.mqtt_url, from_config) {
            (Some(url), _) => solarhub_hub::mqtt::MqttSettings::from_url(url)?,
            (None, Some(section)) => match solarhub_hub::mqtt::MqttSettings::from_config(section) {
                Some(settings) => {
                    tracing::info!(broker = %format!("{}:{}", settings.host, settings.port), "MQTT bridge from the config's mqtt: section");
                    settings
                }
                None => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        if let Some(username) = self.mqtt_username {
            settings.username = Some(username);
        }
        if self.mqtt_password_file.is_some() {
            settings.password_file = self.mqtt_password_file;
        }
        settings.ca_cert = self.mqtt_ca_cert;
        if let Some(base) = self.mqtt_base_topic {
            settings.base_topic = base;
        }
        match self.mqtt_discovery_prefix.as_deref() {
            Some("none") => settings.discovery_prefix = None,
            Some(prefix) => settings.discovery_prefix = Some(prefix.to_owned()),
            None => {}
        }
        if let Some(client_id) = self.mqtt_client_id {
            settings.client_id = client_id;
        }
        Ok(Some(settings))
    }
}

/// How long `serve` keeps samples (docs/operations.md, "Retention").
#[derive(clap::Args)]
pub(crate) struct RetentionArgs {
    /// Keep the rows solarhub collects in a sample table for PERIOD instead of its default:
    /// TABLE=PERIOD with PERIOD a whole number of d, h, m or s, or forever
    /// (battery_cell_samples=14d). Naming a table also lets the first pass delete its rows that
    /// were already older than PERIOD when the hub started. Repeat it, or separate with commas.
    #[arg(
        long = "retention",
        env = "SOLARHUB_RETENTION",
        value_name = "TABLE=PERIOD",
        value_delimiter = ','
    )]
    settings: Vec<String>,
    /// Delete the rows an upgrade or import-legacy brought into a raw sample table once they are
    /// older than PERIOD (by default they are kept forever): TABLE=PERIOD, like --retention.
    #[arg(
        long = "retention-imported",
        env = "SOLARHUB_RETENTION_IMPORTED",
        value_name = "TABLE=PERIOD",
        value_delimiter = ','
    )]
    imported: Vec<String>,
    /// Delete nothing: every sample is kept forever.
    #[arg(
        long,
        env = "SOLARHUB_NO_RETENTION",
        conflicts_with_all = ["settings", "imported"]
    )]
    no_retention: bool,
}

impl RetentionArgs {
    pub(crate) fn retention(self) -> anyhow::Result<Option<solarhub_hub::retention::Retention>> {
        if self.no_retention {
            return Ok(None);
        }
        // Each flag's own mistakes named after it, then the two together.
        solarhub_hub::retention::Policy::from_settings(&self.settings).context("--retention")?;
        let policy = solarhub_hub::retention::Policy::from_flags(&self.settings, &self.imported)
            .context("--retention-imported")?;
        Ok(Some(solarhub_hub::retention::Retention::new(policy)))
    }
}

/// How `serve` is exposed (DESIGN §7).
#[derive(clap::Args)]
pub(crate) struct SecurityArgs {
    /// Serve without authentication: every caller is an admin. Loopback only, unless --insecure.
    #[arg(long, env = "SOLARHUB_WITHOUT_AUTH")]
    without_auth: bool,
    /// Allow plaintext or --without-auth on a non-loopback address.
    #[arg(long, env = "SOLARHUB_INSECURE")]
    insecure: bool,
    /// The hub's TLS certificate chain (PEM).
    #[arg(long, env = "SOLARHUB_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The hub's TLS private key (PEM).
    #[arg(long, env = "SOLARHUB_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM); a certificate's first DNS name (or
    /// its CN) is the collector id it may act as.
    #[arg(long, env = "SOLARHUB_CLIENT_CA", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
}

impl SecurityArgs {
    /// The security to serve with, after refusing an unsafe exposure of any of `listens` (the
    /// gRPC address, and the HTTP one when there is one: the same rules hold for both).
    pub(crate) fn check(
        self,
        listens: impl IntoIterator<Item = SocketAddr>,
    ) -> anyhow::Result<solarhub_hub::server::Security> {
        use solarhub_hub::auth::exposure::{Exposure, check};
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(solarhub_hub::auth::tls::TlsFiles {
                cert,
                key,
                client_ca: self.client_ca,
            }),
            _ => None,
        };
        for listen in listens {
            check(Exposure {
                listen,
                tls: tls.is_some(),
                auth: !self.without_auth,
                insecure: self.insecure,
            })
            .map_err(anyhow::Error::msg)?;
        }
        Ok(solarhub_hub::server::Security {
            auth: !self.without_auth,
            tls,
        })
    }
}

/// The served hub's allocator: jemalloc gives freed memory back to the system after a few
/// seconds, where glibc's per-thread arenas (one per blocking thread that ran database work) kept
/// two to three times the live heap (BENCHMARKS.md: capacity).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A count of at least one (`--max-connections`).
pub(crate) fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a whole number of at least 1")),
    }
}
