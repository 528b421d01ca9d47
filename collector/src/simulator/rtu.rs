//! The simulator's Modbus RTU side: RTU frames (unit, function, data, CRC-16) over any byte stream —
//! the master end of a pseudo-terminal, or a TCP connection for an RTU-over-TCP gateway. Only what
//! the collector asks of devices is answered: read holding (0x03) and input (0x04) registers.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::Endpoint;
use crate::crc::crc16;

fn with_crc(mut frame: Vec<u8>) -> Vec<u8> {
    let crc = crc16(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

fn exception_code(code: ExceptionCode) -> u8 {
    match code {
        ExceptionCode::IllegalFunction => 0x01,
        ExceptionCode::IllegalDataAddress => 0x02,
        ExceptionCode::IllegalDataValue => 0x03,
        _ => 0x04,
    }
}

/// Answers RTU requests on `io` until it closes. Frames with a bad CRC are ignored, as a device on a
/// noisy line does; requests for unit ids nobody has get no answer.
pub async fn serve_rtu<T: AsyncRead + AsyncWrite + Unpin>(
    mut io: T,
    endpoint: Arc<Endpoint>,
) -> std::io::Result<()> {
    let mut frame = [0u8; 8];
    loop {
        if let Err(error) = io.read_exact(&mut frame).await {
            if error.kind() == std::io::ErrorKind::UnexpectedEof {
                return Ok(());
            }
            return Err(error);
        }
        if crc16(&frame[..6]) != u16::from_le_bytes([frame[6], frame[7]]) {
            tracing::debug!(?frame, "rtu frame with a bad crc ignored");
            continue;
        }
        let unit = frame[0];
        let function = frame[1];
        let address = u16::from_be_bytes([frame[2], frame[3]]);
        let count = u16::from_be_bytes([frame[4], frame[5]]);
        let request = match function {
            0x03 => Request::ReadHoldingRegisters(address, count),
            0x04 => Request::ReadInputRegisters(address, count),
            _ => {
                io.write_all(&with_crc(vec![unit, function | 0x80, 0x01]))
                    .await?;
                continue;
            }
        };
        let answer = endpoint
            .answer_slow(SlaveRequest {
                slave: unit,
                request,
            })
            .await;
        let reply = match answer {
            Ok(Some(
                Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words),
            )) => {
                let mut reply = vec![unit, function, (words.len() * 2) as u8];
                for word in words {
                    reply.extend_from_slice(&word.to_be_bytes());
                }
                with_crc(reply)
            }
            Ok(_) => continue, // silence: a dead device, or a unit nobody has
            Err(code) => with_crc(vec![unit, function | 0x80, exception_code(code)]),
        };
        io.write_all(&reply).await?;
        io.flush().await?;
    }
}

/// An RS485-to-TCP gateway that passes RTU frames through unchanged ("RTU over TCP").
pub async fn serve_rtu_over_tcp(
    listener: TcpListener,
    endpoint: Arc<Endpoint>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            if let Err(error) = serve_rtu(stream, endpoint).await {
                tracing::debug!(%error, "rtu-over-tcp connection ended");
            }
        });
    }
}
