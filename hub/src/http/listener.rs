//! Accepting HTTP connections: HTTP/1.1 (browsers on plaintext loopback, curl) and h2 (browsers
//! over TLS), through hyper-util's server. At most [`MAX_CONNECTIONS`] at once; a connection must
//! finish its TLS handshake and send its request headers within [`HEADER_DEADLINE`]. Each request
//! learns where it came from ([`Peer`]), for the audit trail.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use super::Peer;

/// Connections open at once.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a connection has for its TLS handshake and each request's headers.
pub const HEADER_DEADLINE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown`; with `tls`, every connection speaks TLS
/// (ALPN h2 and http/1.1).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let acceptor = tls.map(|config| {
        let mut config = rustls::ServerConfig::clone(&config);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let local = listener.local_addr().ok();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer {
            remote,
            local: local.unwrap_or(remote),
        };
        let service =
            router
                .clone()
                .map_request(move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(peer);
                    request
                });
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_DEADLINE);
            let service = TowerToHyperService::new(service);
            let served = match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_DEADLINE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            builder
                                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                                .await
                        }
                        _ => return,
                    }
                }
                None => {
                    builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%error, peer = %remote, "HTTP connection ended");
            }
        });
    }
}

/// Where a listener is, for the log line that tells the user where to point a browser.
pub fn url(addr: SocketAddr, tls: bool) -> String {
    format!("{}://{addr}/", if tls { "https" } else { "http" })
}

/// `--http-listen`'s socket, bound before anything starts (so a taken port is an error at once,
/// and a test binding port 0 knows its port); shared by the options that carry it.
#[derive(Debug, Clone)]
pub struct HttpListener(Arc<std::net::TcpListener>);

impl HttpListener {
    pub fn bind(addr: SocketAddr) -> std::io::Result<HttpListener> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(HttpListener(Arc::new(listener)))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// The socket for tokio (a handle of the same socket).
    pub fn tokio(&self) -> std::io::Result<TcpListener> {
        TcpListener::from_std(self.0.try_clone()?)
    }
}
