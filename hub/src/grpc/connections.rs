//! The connections the hub accepts, before HTTP/2 sees them: at most [`Limits::max`] at once (one
//! more is closed as it arrives, so the kernel's queue never holds a flood), and each must finish
//! its TLS handshake (when TLS is on) and send the 24-byte HTTP/2 preface within
//! [`PREFACE_DEADLINE`] of being accepted, or it is closed. A connection that finished its preface
//! is left to HTTP/2's keep-alive pings. Handshakes run on their own tasks, so a slow one never
//! holds up the next accept.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use solarhub_proto::tonic::transport::server::Connected;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;

/// How long a new connection has to finish TLS and the HTTP/2 preface.
pub const PREFACE_DEADLINE: Duration = Duration::from_secs(10);
/// Connections open at once, unless `serve --max-connections` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
const PREFACE_LEN: usize = 24;
/// At most one warning about refused connections per this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// How many connections, and how long each has to start speaking HTTP/2.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max: usize,
    pub preface_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max: DEFAULT_MAX_CONNECTIONS,
            preface_deadline: PREFACE_DEADLINE,
        }
    }
}

/// Accepted connections in clear text.
pub fn plain(
    listener: TcpListener,
    limits: Limits,
) -> ReceiverStream<io::Result<Guarded<TcpStream>>> {
    accept(listener, limits, |stream| async move { Ok(stream) })
}

/// Accepted connections after their TLS handshake.
pub fn tls(
    listener: TcpListener,
    limits: Limits,
    config: Arc<rustls::ServerConfig>,
) -> ReceiverStream<io::Result<Guarded<tokio_rustls::server::TlsStream<TcpStream>>>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    accept(listener, limits, move |stream| {
        acceptor.clone().accept(stream)
    })
}

/// The accept loop: runs until the server drops the stream (which closes the listener).
fn accept<IO, F, H>(
    listener: TcpListener,
    limits: Limits,
    handshake: H,
) -> ReceiverStream<io::Result<Guarded<IO>>>
where
    IO: Send + 'static,
    F: Future<Output = io::Result<IO>> + Send + 'static,
    H: Fn(TcpStream) -> F + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(64);
    let permits = Arc::new(Semaphore::new(limits.max));
    tokio::spawn(async move {
        let mut refused = Refused::default();
        loop {
            let accepted = tokio::select! {
                _ = sender.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                refused.one(limits.max);
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let until = Instant::now() + limits.preface_deadline;
            let shaking = handshake(stream);
            let sender = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout_at(until, shaking).await {
                    Ok(Ok(io)) => {
                        let guarded = Guarded {
                            io,
                            preface: Some(Box::pin(tokio::time::sleep_until(until))),
                            seen: 0,
                            _permit: permit,
                        };
                        let _ = sender.send(Ok(guarded)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "handshake failed"),
                    Err(_) => tracing::debug!(%peer, "handshake not finished in time; closed"),
                }
            });
        }
    });
    ReceiverStream::new(receiver)
}

/// Counts connections closed for want of room, and says so now and then.
#[derive(Default)]
struct Refused {
    since_warning: u64,
    warned_at: Option<Instant>,
}

impl Refused {
    fn one(&mut self, max: usize) {
        self.since_warning += 1;
        if self.warned_at.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                max,
                refused = self.since_warning,
                "connections closed on arrival: the hub holds its maximum (--max-connections)"
            );
            self.since_warning = 0;
            self.warned_at = Some(Instant::now());
        }
    }
}

/// A connection with its place among the allowed ones, and, until its HTTP/2 preface has been
/// read, a deadline: a read after it fails, and hyper closes the connection.
pub struct Guarded<IO> {
    io: IO,
    preface: Option<Pin<Box<Sleep>>>,
    seen: usize,
    _permit: OwnedSemaphorePermit,
}

impl<IO: Connected> Connected for Guarded<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(deadline) = &mut this.preface
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the HTTP/2 preface did not arrive in time",
            )));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if this.preface.is_some() && matches!(read, Poll::Ready(Ok(()))) {
            this.seen += buf.filled().len() - before;
            if this.seen >= PREFACE_LEN {
                this.preface = None;
            }
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
