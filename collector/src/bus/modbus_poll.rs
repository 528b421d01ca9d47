//! Executing a read plan against one device over an open Modbus context (TCP, RTU, RTU over TCP):
//! every request with its own timeout; a request that fails leaves its registers unread (missing),
//! never zero.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_modbus::client::{Context, Reader};

use crate::bus::read_plan::ReadRequest;
use crate::drivers::codec::{self, RegisterValue};
use crate::drivers::register_map::{RegisterKind, RegisterMap};

/// Why one request of a poll failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("device answered with exception {0}")]
    Exception(String),
    #[error("transport error: {0}")]
    Transport(String),
    #[error("answered {got} registers instead of {wanted}")]
    ShortAnswer { wanted: u16, got: usize },
}

/// The outcome of one poll: the registers read, and the requests that failed.
#[derive(Debug, Default)]
pub struct PollResult {
    pub registers: BTreeMap<String, RegisterValue>,
    pub failures: Vec<(ReadRequest, RequestError)>,
    pub requests_sent: usize,
}

impl PollResult {
    /// True when the device gave no answer at all (it timed out or the transport broke).
    pub fn device_silent(&self) -> bool {
        self.registers.is_empty()
            && self
                .failures
                .iter()
                .any(|(_, e)| matches!(e, RequestError::Timeout(_) | RequestError::Transport(_)))
    }

    /// True when the transport itself failed (the connection must be opened again).
    pub fn transport_broken(&self) -> bool {
        self.failures
            .iter()
            .any(|(_, e)| matches!(e, RequestError::Transport(_)))
    }
}

pub async fn read_request(
    context: &mut Context,
    request: &ReadRequest,
    timeout: Duration,
) -> Result<Vec<u16>, RequestError> {
    let call = async {
        match request.kind {
            RegisterKind::Holding => {
                context
                    .read_holding_registers(request.start, request.count)
                    .await
            }
            RegisterKind::Input => {
                context
                    .read_input_registers(request.start, request.count)
                    .await
            }
        }
    };
    let words = match tokio::time::timeout(timeout, call).await {
        Err(_) => return Err(RequestError::Timeout(timeout)),
        Ok(Err(error)) => return Err(RequestError::Transport(error.to_string())),
        Ok(Ok(Err(exception))) => return Err(RequestError::Exception(exception.to_string())),
        Ok(Ok(Ok(words))) => words,
    };
    if words.len() != usize::from(request.count) {
        return Err(RequestError::ShortAnswer {
            wanted: request.count,
            got: words.len(),
        });
    }
    Ok(words)
}

/// Reads every request of `plan` one after the other and decodes the registers they cover. A device
/// that does not answer one request (timeout or broken transport) is not asked the rest: a dead
/// device costs its bus one timeout per poll, not one per request.
pub async fn poll(
    context: &mut Context,
    map: &RegisterMap,
    plan: &[ReadRequest],
    timeout: Duration,
) -> PollResult {
    let mut result = PollResult::default();
    for request in plan {
        let gone = result.failures.iter().any(|(_, error)| {
            matches!(error, RequestError::Timeout(_) | RequestError::Transport(_))
        });
        if gone {
            break;
        }
        result.requests_sent += 1;
        match read_request(context, request, timeout).await {
            Ok(words) => {
                for register in map
                    .registers
                    .iter()
                    .filter(|r| request.covers(r.kind, r.address, r.word_count()))
                {
                    let offset = usize::from(register.address - request.start);
                    let slice = &words[offset..offset + usize::from(register.word_count())];
                    result.registers.insert(
                        register.name.clone(),
                        codec::decode(register, slice, map.word_order),
                    );
                }
            }
            Err(error) => result.failures.push((*request, error)),
        }
    }
    result
}
