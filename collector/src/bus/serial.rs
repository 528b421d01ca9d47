//! Serial lines (RS485 adapters, and pseudo-terminals in tests) opened through termios: raw mode,
//! baud rate, parity, data and stop bits. No libudev and no unsafe code: only the path is needed.

use std::io::{Read, Write};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{self, BaudRate, ControlFlags, SetArg};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Line settings of a serial port, as `config.yaml` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SerialSettings {
    pub baud: u32,
    /// 'N', 'E' or 'O'.
    pub parity: char,
    pub data_bits: u8,
    pub stop_bits: u8,
}

impl Default for SerialSettings {
    fn default() -> Self {
        SerialSettings {
            baud: 9600,
            parity: 'N',
            data_bits: 8,
            stop_bits: 1,
        }
    }
}

fn baud_rate(baud: u32) -> std::io::Result<BaudRate> {
    Ok(match baud {
        1200 => BaudRate::B1200,
        2400 => BaudRate::B2400,
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115200 => BaudRate::B115200,
        230400 => BaudRate::B230400,
        other => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("unsupported baud rate {other}"),
            ));
        }
    })
}

/// Puts the terminal on `file` in raw mode with `settings`.
pub fn configure(file: &std::fs::File, settings: SerialSettings) -> std::io::Result<()> {
    let mut attributes = termios::tcgetattr(file)?;
    termios::cfmakeraw(&mut attributes);
    termios::cfsetspeed(&mut attributes, baud_rate(settings.baud)?)?;
    let flags = &mut attributes.control_flags;
    flags.remove(
        ControlFlags::CSIZE | ControlFlags::PARENB | ControlFlags::PARODD | ControlFlags::CSTOPB,
    );
    flags.insert(match settings.data_bits {
        5 => ControlFlags::CS5,
        6 => ControlFlags::CS6,
        7 => ControlFlags::CS7,
        _ => ControlFlags::CS8,
    });
    match settings.parity {
        'E' | 'e' => flags.insert(ControlFlags::PARENB),
        'O' | 'o' => flags.insert(ControlFlags::PARENB | ControlFlags::PARODD),
        _ => {}
    }
    if settings.stop_bits == 2 {
        flags.insert(ControlFlags::CSTOPB);
    }
    flags.insert(ControlFlags::CREAD | ControlFlags::CLOCAL);
    termios::tcsetattr(file, SetArg::TCSANOW, &attributes)?;
    Ok(())
}

/// A serial line (or pseudo-terminal) in non-blocking mode, driven by tokio's reactor: a read that
/// is given up (a timeout) leaves nothing in flight, so the next command is not stuck behind it.
pub struct SerialPort {
    fd: AsyncFd<std::fs::File>,
}

impl SerialPort {
    fn new(file: std::fs::File) -> std::io::Result<SerialPort> {
        let flags = fcntl(&file, FcntlArg::F_GETFL)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(&file, FcntlArg::F_SETFL(flags))?;
        // `AsyncFd::new` is deprecated because an arbitrary `AsRawFd` type may close its descriptor
        // while it is registered. Here the `AsyncFd` owns the `File`, which closes its descriptor
        // only when dropped, after deregistration; the safe constructor is sound for it, and the
        // replacement (`register`) is `unsafe`, which this crate forbids.
        #[allow(deprecated)]
        let fd = AsyncFd::new(file)?;
        Ok(SerialPort { fd })
    }
}

impl AsyncRead for SerialPort {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = std::task::ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|inner| inner.get_ref().read(unfilled)) {
                Ok(Ok(count)) => {
                    buf.advance(count);
                    return Poll::Ready(Ok(()));
                }
                // A pseudo-terminal whose other side closed reports EIO: that is the end of the line.
                Ok(Err(error)) if error.raw_os_error() == Some(nix::libc::EIO) => {
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for SerialPort {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = std::task::ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|inner| inner.get_ref().write(data)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Opens the serial device at `path` for reading and writing, configured with `settings`.
pub fn open(path: &Path, settings: SerialSettings) -> std::io::Result<SerialPort> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    configure(&file, settings)?;
    SerialPort::new(file)
}

/// A connected pseudo-terminal pair in raw mode: what the far end of a serial cable sees (`device`)
/// and the path a collector opens (`path`).
pub struct PseudoTerminal {
    pub device: SerialPort,
    pub path: std::path::PathBuf,
    /// Keeps the slave side open so the line does not hang up between openings; drop the pair
    /// together.
    pub slave: std::fs::File,
}

pub fn pseudo_terminal() -> std::io::Result<PseudoTerminal> {
    let pair = nix::pty::openpty(None, None)?;
    let master = std::fs::File::from(pair.master);
    let slave = std::fs::File::from(pair.slave);
    configure(&master, SerialSettings::default())?;
    configure(&slave, SerialSettings::default())?;
    let path = nix::unistd::ttyname(&slave)?;
    Ok(PseudoTerminal {
        device: SerialPort::new(master)?,
        path,
        slave,
    })
}
