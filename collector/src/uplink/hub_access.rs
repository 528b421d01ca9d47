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

    /// Whether calls carry a token.
    pub fn has_token(&self) -> bool {
        self.header.is_some()
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

/// Why the token must not go to the hub at `url`, or `None`: over plain `http://` it may only go
/// to this machine (loopback), unless `insecure` says the network is trusted.
pub fn cleartext_problem(url: &str, insecure: bool) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback && !insecure).then(|| {
        format!(
            "refusing to send the token in clear text to {url}: anyone on the way could read it and act as this collector; use https:// (with --ca-cert for the hub's CA), or add --insecure on a network you trust"
        )
    })
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
    fn a_token_goes_in_clear_text_only_to_loopback_or_when_told() {
        for url in [
            "http://127.0.0.1:50051",
            "http://localhost:50051",
            "http://[::1]:50051",
            "https://hub.example:50051",
        ] {
            assert_eq!(cleartext_problem(url, false), None, "{url}");
        }
        for url in [
            "http://hub.example:50051",
            "http://192.168.1.5:50051",
            "http://[fe80::1]:1",
        ] {
            let problem = cleartext_problem(url, false).unwrap();
            assert!(
                problem.contains("--insecure") && problem.contains(url),
                "{problem}"
            );
            assert_eq!(cleartext_problem(url, true), None);
        }
    }

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
