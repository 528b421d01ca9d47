//! TLS for the hub (rustls through tonic): its certificate and key, and optionally a CA whose
//! client certificates are required (mutual TLS). A client certificate names the collector it
//! speaks for: its first DNS subject-alternative name, or, when it has none, its subject CN.

use std::path::{Path, PathBuf};

use solarhub_proto::tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// The files of `serve --tls-cert --tls-key [--client-ca]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require client certificates signed by this CA.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{flag} {}: {reason}", file.display())]
    File {
        flag: &'static str,
        file: PathBuf,
        reason: String,
    },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

fn read_pem(flag: &'static str, file: &Path, expect: &[&str]) -> Result<Vec<u8>, TlsError> {
    let fail = |reason: String| TlsError::File {
        flag,
        file: file.to_owned(),
        reason,
    };
    let bytes = std::fs::read(file).map_err(|error| fail(format!("cannot read: {error}")))?;
    let text = String::from_utf8_lossy(&bytes);
    if !expect
        .iter()
        .any(|label| text.contains(&format!("-----BEGIN {label}-----")))
    {
        return Err(fail(format!(
            "not a PEM file with a {} block",
            expect.join(" or ")
        )));
    }
    Ok(bytes)
}

impl TlsFiles {
    /// Reads the files into tonic's server TLS settings; each bad file is named with its flag.
    pub fn load(&self) -> Result<ServerTlsConfig, TlsError> {
        let cert = read_pem("--tls-cert", &self.cert, &["CERTIFICATE"])?;
        let key = read_pem(
            "--tls-key",
            &self.key,
            &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
        )?;
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.client_ca {
            let ca = read_pem("--client-ca", ca, &["CERTIFICATE"])?;
            config = config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(false);
        }
        Ok(config)
    }
}

/// The collector id a client certificate (DER) names: its first DNS SAN, else its subject CN.
pub fn collector_named(der: &[u8]) -> Option<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|name| match name {
                GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })
        });
    san.or_else(|| {
        cert.subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
    })
}
