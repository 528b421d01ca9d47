//! How the collector proves itself to the hub: a bearer token (from `--token-file`,
//! `SOLARHUB_TOKEN`, or `hub: {token_file: …}`), and TLS with the hub's CA (`--ca-cert`, else
//! the system's roots) and optionally a client certificate that names this collector. Files are
//! read once, at start-up, and every problem names its file.

use std::fmt;
use std::path::{Path, PathBuf};

use solarhub_proto::tonic::metadata::{Ascii, MetadataValue};
use solarhub_proto::tonic::service::Interceptor;
use solarhub_proto::tonic::transport::{Certificate, ClientTlsConfig, Identity};
use solarhub_proto::tonic::{Request, Status};

/// Where the collector's credentials come from (paths as given; nothing read yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessFiles {
    pub token_file: Option<PathBuf>,
    /// The token itself (from `SOLARHUB_TOKEN`), used when no token file is given.
    pub token: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Credentials read and ready: the `authorization` header and the TLS settings.
#[derive(Clone, Default)]
pub struct HubAccess {
    header: Option<MetadataValue<Ascii>>,
    tls: Option<ClientTlsConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{flag} {}: {reason}", file.display())]
    File {
        flag: &'static str,
        file: PathBuf,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
}

fn read(flag: &'static str, file: &Path) -> Result<Vec<u8>, AccessError> {
    std::fs::read(file).map_err(|error| AccessError::File {
        flag,
        file: file.to_owned(),
        reason: format!("cannot read: {error}"),
    })
}

impl HubAccess {
    /// No token, no TLS (a loopback hub started with `--without-auth`).
    pub fn none() -> HubAccess {
        HubAccess::default()
    }

    /// Reads the files for a hub at `url`.
    pub fn load(url: &str, files: &AccessFiles) -> Result<HubAccess, AccessError> {
        let token = match (&files.token_file, &files.token) {
            (Some(file), _) => {
                let bytes = read("--token-file", file)?;
                let text = String::from_utf8(bytes).map_err(|_| AccessError::File {
                    flag: "--token-file",
                    file: file.clone(),
                    reason: "is not text".into(),
                })?;
                Some(text.trim().to_owned())
            }
            (None, Some(token)) => Some(token.trim().to_owned()),
            (None, None) => None,
        };
        let header = match token.filter(|t| !t.is_empty()) {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| {
                        AccessError::Invalid(
                            "the token has characters a header cannot carry".into(),
                        )
                    })?,
            ),
            None => None,
        };
        let https = url.starts_with("https://");
        let wants_tls = files.ca_cert.is_some() || files.client_cert.is_some();
        if wants_tls && !https {
            return Err(AccessError::Invalid(format!(
                "--ca-cert and --client-cert need an https:// hub address, not {url}"
            )));
        }
        let tls = if https {
            let mut tls = ClientTlsConfig::new();
            tls = match &files.ca_cert {
                Some(ca) => tls.ca_certificate(Certificate::from_pem(read("--ca-cert", ca)?)),
                None => tls.with_native_roots(),
            };
            match (&files.client_cert, &files.client_key) {
                (Some(cert), Some(key)) => {
                    tls = tls.identity(Identity::from_pem(
                        read("--client-cert", cert)?,
                        read("--client-key", key)?,
                    ));
                }
                (None, None) => {}
                _ => {
                    return Err(AccessError::Invalid(
                        "--client-cert and --client-key go together".into(),
                    ));
                }
            }
            Some(tls)
        } else {
            None
        };
        Ok(HubAccess { header, tls })
    }

    pub fn tls(&self) -> Option<&ClientTlsConfig> {
        self.tls.as_ref()
    }

    /// The interceptor that puts the token on every call.
    pub fn credentials(&self) -> Credentials {
        Credentials(self.header.clone())
    }
}

impl fmt::Debug for HubAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubAccess")
            .field("token", &self.header.as_ref().map(|_| "(hidden)"))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Adds `authorization: Bearer TOKEN` to each call (nothing, without a token).
#[derive(Clone)]
pub struct Credentials(Option<MetadataValue<Ascii>>);

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_wins_and_is_trimmed_and_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "shub_fromfile\n").unwrap();
        let files = AccessFiles {
            token_file: Some(file),
            token: Some("shub_fromenv".into()),
            ..AccessFiles::default()
        };
        let access = HubAccess::load("http://127.0.0.1:1", &files).unwrap();
        assert_eq!(
            access.header.as_ref().unwrap().to_str().unwrap(),
            "Bearer shub_fromfile"
        );
        assert!(!format!("{access:?}").contains("shub_"));
    }

    #[test]
    fn problems_name_the_file_or_the_flag() {
        let files = AccessFiles {
            token_file: Some("/nonexistent/token".into()),
            ..AccessFiles::default()
        };
        let error = HubAccess::load("http://h:1", &files)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("--token-file /nonexistent/token: cannot read"),
            "{error}"
        );
        let files = AccessFiles {
            ca_cert: Some("/x".into()),
            ..AccessFiles::default()
        };
        let error = HubAccess::load("http://h:1", &files)
            .unwrap_err()
            .to_string();
        assert!(error.contains("https://"), "{error}");
    }
}
