//! A TCP proxy that a test puts between a client and a server, and switches into the faults of a
//! network it does not control: a cut (connections dropped, new ones refused), a half-open
//! connection (nothing forwarded, nothing closed: the connections of that moment stay dead), a
//! slow link (every chunk held 500 ms) and a trickle (one byte at a time).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    Cut,
    HalfOpen,
    Latency(Duration),
    /// One byte, then this pause.
    Trickle(Duration),
}

pub struct Proxy {
    pub port: u16,
    fault: watch::Sender<Fault>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:target`.
    pub fn start(runtime: &tokio::runtime::Runtime, target: u16) -> Proxy {
        let (fault, faults) = watch::channel(Fault::None);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        runtime.spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                if matches!(*faults.borrow(), Fault::Cut | Fault::HalfOpen) {
                    // Refused: dropped at once (a cut), or never answered (half-open).
                    if *faults.borrow() == Fault::HalfOpen {
                        tokio::spawn(hold(inbound));
                    }
                    continue;
                }
                let faults = faults.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::join!(
                        pump(in_read, out_write, faults.clone()),
                        pump(out_read, in_write, faults)
                    );
                });
            }
        });
        Proxy { port, fault }
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

/// Keeps a connection open and silent for as long as the test runs.
async fn hold<T>(connection: T) {
    let _connection = connection;
    std::future::pending::<()>().await;
}

/// Forwards one direction of a connection, as the current fault allows.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut faults: watch::Receiver<Fault>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let fault = *faults.borrow_and_update();
        match fault {
            Fault::Cut => return,
            // This connection is dead for good, though neither end is told.
            Fault::HalfOpen => return hold((from, to)).await,
            _ => {}
        }
        let limit = if matches!(fault, Fault::Trickle(_)) {
            1
        } else {
            buffer.len()
        };
        let read = tokio::select! {
            read = from.read(&mut buffer[..limit]) => read,
            _ = faults.changed() => continue,
        };
        let Ok(n) = read else { return };
        if n == 0 {
            let _ = to.shutdown().await;
            return;
        }
        match fault {
            Fault::Latency(delay) | Fault::Trickle(delay) => tokio::time::sleep(delay).await,
            _ => {}
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
