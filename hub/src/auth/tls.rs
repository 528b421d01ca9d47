//! TLS for the hub (rustls with ring): its certificate and key, and optionally a CA whose client
//! certificates are required (mutual TLS). The handshake itself is done where connections are
//! accepted (`grpc::connections`), under the same deadline as the HTTP/2 preface. A client
//! certificate names the collector it speaks for: its first DNS subject-alternative name, or, when
//! it has none, its subject CN; that name is a principal only once registered
//! (`token create --certificate-subject`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

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
    /// Reads the files into the server's TLS settings (HTTP/2 by ALPN); each bad file is named
    /// with its flag.
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let certs =
            |flag: &'static str, file: &Path| -> Result<Vec<CertificateDer<'static>>, TlsError> {
                let pem = read_pem(flag, file, &["CERTIFICATE"])?;
                CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| TlsError::File {
                        flag,
                        file: file.to_owned(),
                        reason: format!("cannot read a certificate: {error}"),
                    })
            };
        let cert = certs("--tls-cert", &self.cert)?;
        let key = read_pem(
            "--tls-key",
            &self.key,
            &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
        )?;
        let key = PrivateKeyDer::from_pem_slice(&key).map_err(|error| TlsError::File {
            flag: "--tls-key",
            file: self.key.clone(),
            reason: format!("cannot read the key: {error}"),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Setup(error.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in certs("--client-ca", ca)? {
                    roots.add(cert).map_err(|error| TlsError::File {
                        flag: "--client-ca",
                        file: ca.clone(),
                        reason: error.to_string(),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|error| TlsError::Setup(error.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(cert, key)
            .map_err(|error| TlsError::Setup(error.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
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
