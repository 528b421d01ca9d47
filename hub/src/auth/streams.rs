//! Long answers end when their caller's right to them does: a stream (the live watch) is checked
//! every [`CHECK_EVERY`] against the authenticator, and a revoked token or a removed principal
//! ends it with UNAUTHENTICATED within that time plus the authenticator's cache lifetime.

use std::pin::Pin;
use std::time::Duration;

use solarhub_proto::tonic::Status;
use tokio_stream::{Stream, StreamExt};

use super::{Authenticator, Caller};

/// How often an open stream's caller is checked again.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

pub type Guarded<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// `stream`, ended with UNAUTHENTICATED once `caller` no longer holds a valid credential
/// (unchanged when authentication is off).
pub fn while_valid<T, S>(
    stream: S,
    authenticator: Option<Authenticator>,
    caller: Caller,
) -> Guarded<T>
where
    T: Send + 'static,
    S: Stream<Item = Result<T, Status>> + Send + 'static,
{
    let Some(authenticator) = authenticator else {
        return Box::pin(stream);
    };
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut checks = tokio::time::interval(CHECK_EVERY);
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                item = stream.next() => {
                    let Some(item) = item else { return };
                    if sender.send(item).await.is_err() {
                        return;
                    }
                }
                _ = checks.tick() => {
                    let ended = match authenticator.still_valid(&caller).await {
                        Ok(true) => None,
                        Ok(false) => Some(Status::unauthenticated(
                            "the token is not valid any more (revoked, or its principal removed)",
                        )),
                        Err(error) => {
                            tracing::warn!(%error, "cannot check a stream's credentials");
                            None
                        }
                    };
                    if let Some(status) = ended {
                        tracing::info!(target: super::layer::AUDIT, principal = %caller.name, "stream ended: credentials revoked");
                        let _ = sender.send(Err(status)).await;
                        return;
                    }
                }
                () = sender.closed() => return,
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
}
