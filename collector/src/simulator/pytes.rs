//! A simulated Pytes / Pylontech battery console on a serial line: answers `pwr N` and `bat N` for
//! its batteries, with the prompt, as the real console does. It can be switched silent.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::drivers::pytes::{self, ConsoleBattery};

pub struct Console {
    batteries: Mutex<Vec<ConsoleBattery>>,
    silent: AtomicBool,
}

impl Console {
    /// `batteries` modules of `cells` cells, discharging a little.
    pub fn new(batteries: usize, cells: usize) -> Console {
        let batteries = (0..batteries as i64)
            .map(|b| ConsoleBattery {
                voltage_mv: 49_950 + b * 7,
                current_ma: -3_200 - b * 150,
                temperature_mc: 22_500 + b * 400,
                soc_pct: 74 + b,
                basic_status: "Dischg".into(),
                volt_status: "Normal".into(),
                current_status: "Normal".into(),
                temp_status: "Normal".into(),
                bat_events: 0,
                power_events: 0,
                system_fault: 0,
                cells: (0..cells as i64)
                    .map(|c| {
                        (
                            3_325 + (c * 3 + b) % 9,
                            22_000 + c * 50 + b * 100,
                            "Dischg".to_owned(),
                        )
                    })
                    .collect(),
            })
            .collect();
        Console {
            batteries: Mutex::new(batteries),
            silent: AtomicBool::new(false),
        }
    }

    /// Ground truth.
    pub fn batteries(&self) -> Vec<ConsoleBattery> {
        self.batteries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn update(&self, battery: usize, change: impl FnOnce(&mut ConsoleBattery)) {
        if let Some(b) = self
            .batteries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(battery)
        {
            change(b);
        }
    }

    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
    }

    fn answer(&self, command: &str) -> String {
        let mut words = command.split_whitespace();
        let verb = words.next().unwrap_or("");
        let index: Option<usize> = words.next().and_then(|n| n.parse().ok());
        let batteries = self.batteries();
        let battery = index
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| batteries.get(i));
        let body = match (verb, battery) {
            ("pwr", Some(battery)) => pytes::render_pwr(battery),
            ("bat", Some(battery)) => pytes::render_bat(battery),
            _ => {
                return format!(
                    "@\r\nInvalid command or fail.\r\n$$\r\n\r\n{}",
                    pytes::PROMPT
                );
            }
        };
        format!("{body}{}", pytes::trailer())
    }
}

/// Serves the console on `io` (the far end of the serial line) until it closes.
pub async fn serve_console<T: AsyncRead + AsyncWrite + Unpin>(
    mut io: T,
    console: Arc<Console>,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if io.read(&mut byte).await? == 0 {
            return Ok(());
        }
        if byte[0] != b'\r' && byte[0] != b'\n' {
            line.push(byte[0]);
            continue;
        }
        let command = String::from_utf8_lossy(&line).trim().to_owned();
        line.clear();
        if command.is_empty() || console.silent.load(Ordering::SeqCst) {
            continue;
        }
        io.write_all(console.answer(&command).as_bytes()).await?;
        io.flush().await?;
    }
}
