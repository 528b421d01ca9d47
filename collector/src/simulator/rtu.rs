//! The simulator's Modbus RTU side: RTU frames (unit, function, data, CRC-16) over any byte stream —
//! the master end of a pseudo-terminal, or a TCP connection for an RTU-over-TCP gateway. Only what
//! the collector asks of devices is answered: read holding (0x03) and input (0x04) registers, and
//! write one (0x06) or several (0x10) holding registers.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::Endpoint;
use crate::drivers::crc::crc16;

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

/// A serial line's real speed: every byte takes its character time, and a frame ends with 3.5
/// characters of silence (Modbus over serial line, §2.5.1.1). A pseudo-terminal or a TCP socket
/// moves bytes at once; a paced line holds each answer until the request and the answer would
/// have crossed the wire, and holds a request that came sooner than the gap after the last answer.
#[derive(Debug, Clone)]
pub struct Pacing {
    pub baud: u32,
    /// Bits per character: start, 8 data, parity or a second stop bit, stop (11 in the standard).
    pub bits_per_char: u32,
    /// What crossed the line.
    pub stats: Arc<LineStats>,
}

/// Reads answered on a paced line, and the registers they carried.
#[derive(Debug, Default)]
pub struct LineStats {
    pub transactions: std::sync::atomic::AtomicU64,
    pub registers: std::sync::atomic::AtomicU64,
}

impl Pacing {
    pub fn new(baud: u32) -> Pacing {
        Pacing {
            baud,
            bits_per_char: 11,
            stats: Arc::default(),
        }
    }

    /// One character's time on the wire.
    pub fn char_time(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(f64::from(self.bits_per_char) / f64::from(self.baud))
    }

    /// The shortest time a read of `registers` takes on this line, by the RTU timing formula: an
    /// 8-byte request, the 3.5-character gap, a reply of 5 + 2n bytes, and the gap again.
    pub fn transaction_time(&self, registers: u16) -> std::time::Duration {
        self.char_time()
            .mul_f64(8.0 + 3.5 + 5.0 + 2.0 * f64::from(registers) + 3.5)
    }
}

/// Answers RTU requests on `io` until it closes. Frames with a bad CRC are ignored, as a device on a
/// noisy line does; requests for unit ids nobody has get no answer.
pub async fn serve_rtu<T: AsyncRead + AsyncWrite + Unpin>(
    io: T,
    endpoint: Arc<Endpoint>,
) -> std::io::Result<()> {
    serve_rtu_paced(io, endpoint, None).await
}

/// [`serve_rtu`], at the speed of a real line when `pacing` is given.
pub async fn serve_rtu_paced<T: AsyncRead + AsyncWrite + Unpin>(
    mut io: T,
    endpoint: Arc<Endpoint>,
    pacing: Option<Pacing>,
) -> std::io::Result<()> {
    let mut frame = [0u8; 8];
    // When the line is quiet again after the last answer (its end plus the frame gap).
    let mut line_free_at = tokio::time::Instant::now();
    loop {
        if let Err(error) = io.read_exact(&mut frame).await {
            if error.kind() == std::io::ErrorKind::UnexpectedEof {
                return Ok(());
            }
            return Err(error);
        }
        let unit = frame[0];
        let function = frame[1];
        let address = u16::from_be_bytes([frame[2], frame[3]]);
        let count = u16::from_be_bytes([frame[4], frame[5]]);
        // A 0x10 request goes on: byte count, the words, the CRC (8 bytes read so far).
        let mut whole = frame.to_vec();
        if function == 0x10 {
            let mut tail = vec![0u8; 2 * usize::from(count.min(123)) + 1];
            io.read_exact(&mut tail).await?;
            whole.extend_from_slice(&tail);
        }
        let body = whole.len() - 2;
        if crc16(&whole[..body]) != u16::from_le_bytes([whole[body], whole[body + 1]]) {
            tracing::debug!(?whole, "rtu frame with a bad crc ignored");
            continue;
        }
        let received = tokio::time::Instant::now();
        let request = match function {
            0x03 => Request::ReadHoldingRegisters(address, count),
            0x04 => Request::ReadInputRegisters(address, count),
            0x06 => Request::WriteSingleRegister(address, count),
            0x10 => Request::WriteMultipleRegisters(
                address,
                whole[7..body]
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                    .collect::<Vec<_>>()
                    .into(),
            ),
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
            // A write is answered with its address and count (0x10) or value (0x06).
            Ok(Some(
                Response::WriteMultipleRegisters(address, value)
                | Response::WriteSingleRegister(address, value),
            )) => {
                let mut reply = vec![unit, function];
                reply.extend_from_slice(&address.to_be_bytes());
                reply.extend_from_slice(&value.to_be_bytes());
                with_crc(reply)
            }
            Ok(_) => continue, // silence: a dead device, or a unit nobody has
            Err(code) => with_crc(vec![unit, function | 0x80, exception_code(code)]),
        };
        if let Some(pacing) = &pacing {
            // The request starts when it came or when the line was free, whichever is later;
            // the answer's last byte arrives after the request, the gap and the answer.
            let start = line_free_at.max(received);
            let chars = 8.0 + 3.5 + reply.len() as f64;
            let done = start + pacing.char_time().mul_f64(chars);
            tokio::time::sleep_until(done).await;
            line_free_at = done + pacing.char_time().mul_f64(3.5);
            if reply[1] == function {
                use std::sync::atomic::Ordering::Relaxed;
                pacing.stats.transactions.fetch_add(1, Relaxed);
                pacing.stats.registers.fetch_add(u64::from(count), Relaxed);
            }
        }
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
