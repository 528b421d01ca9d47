//! Which listen addresses may go without TLS or without authentication: loopback only, unless
//! the operator says `--insecure`. Checked before anything is opened.

use std::net::SocketAddr;

/// How a hub is about to be exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exposure {
    pub listen: SocketAddr,
    pub tls: bool,
    pub auth: bool,
    pub insecure: bool,
}

/// The one line that refuses an unsafe start, or `Ok`.
pub fn check(exposure: Exposure) -> Result<(), String> {
    let Exposure {
        listen,
        tls,
        auth,
        insecure,
    } = exposure;
    if listen.ip().is_loopback() || insecure {
        return Ok(());
    }
    if !auth {
        return Err(format!(
            "refusing --without-auth on {listen}: anyone who reaches this address could change \
             or delete the installation; listen on a loopback address, or add --insecure if the \
             network is yours alone"
        ));
    }
    if !tls {
        return Err(format!(
            "refusing plaintext on {listen}: tokens and readings would cross the network in clear; \
             give --tls-cert and --tls-key, listen on a loopback address, or add --insecure if \
             the network is yours alone"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(listen: &str, tls: bool, auth: bool, insecure: bool) -> Result<(), String> {
        check(Exposure {
            listen: listen.parse().unwrap(),
            tls,
            auth,
            insecure,
        })
    }

    #[test]
    fn loopback_may_go_plain_and_open() {
        assert!(at("127.0.0.1:1", false, false, false).is_ok());
        assert!(at("[::1]:1", false, false, false).is_ok());
    }

    #[test]
    fn elsewhere_needs_tls_and_auth_or_insecure() {
        assert!(at("0.0.0.0:1", true, true, false).is_ok());
        assert!(
            at("0.0.0.0:1", false, true, false)
                .unwrap_err()
                .contains("--insecure")
        );
        assert!(
            at("0.0.0.0:1", true, false, false)
                .unwrap_err()
                .contains("--without-auth")
        );
        assert!(at("0.0.0.0:1", false, false, true).is_ok());
    }
}
