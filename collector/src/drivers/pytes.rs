//! Pytes / Pylontech battery console over a serial line: a text protocol. `pwr N` answers one
//! battery's summary as `Label : value` lines (mV, mA, m°C, %, status words, hex event words);
//! `bat N` answers a table with one row per cell. Every answer ends with `Command completed
//! successfully` and the `pylon>` prompt. Both directions live here: the simulator renders with
//! the same code the collector parses with.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::drivers::pack::UnitStatus;

pub const DONE: &str = "Command completed successfully";
pub const PROMPT: &str = "pylon>";

/// One battery as the console reports it. Units: mV, mA (> 0 charging), m°C, %.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleBattery {
    pub voltage_mv: i64,
    pub current_ma: i64,
    pub temperature_mc: i64,
    pub soc_pct: i64,
    pub basic_status: String,
    pub volt_status: String,
    pub current_status: String,
    pub temp_status: String,
    pub bat_events: u32,
    pub power_events: u32,
    pub system_fault: u32,
    /// Per cell: (mV, m°C, status).
    pub cells: Vec<(i64, i64, String)>,
}

fn line(label: &str, value: &str) -> String {
    // The console pads labels to 16 characters and values start in column 19.
    format!("{label:<16}:  {value:<8}\r\n")
}

/// The console's answer to `pwr N` (without the trailer).
pub fn render_pwr(battery: &ConsoleBattery) -> String {
    let mut out = String::from("@\r\n");
    out += &line("Voltage", &battery.voltage_mv.to_string());
    out += &line("Current", &battery.current_ma.to_string());
    out += &line("Temperature", &battery.temperature_mc.to_string());
    out += &line("Coulomb", &battery.soc_pct.to_string());
    out += &line("Basic Status", &battery.basic_status);
    out += &line("Volt Status", &battery.volt_status);
    out += &line("Current Status", &battery.current_status);
    out += &line("Tmpr. Status", &battery.temp_status);
    out += &line("Bat Events", &format!("0x{:X}", battery.bat_events));
    out += &line("Power Events", &format!("0x{:X}", battery.power_events));
    out += &line("System Fault", &format!("0x{:X}", battery.system_fault));
    out
}

/// The console's answer to `bat N` (without the trailer).
pub fn render_bat(battery: &ConsoleBattery) -> String {
    let mut out = String::from(
        "@\r\nBattery  Volt     Curr     Tempr    Base State   Volt. State  Curr. State  Temp. State  SOC\r\n",
    );
    for (index, (mv, mc, state)) in battery.cells.iter().enumerate() {
        out += &format!(
            "{index:<8} {mv:<8} {:<8} {mc:<8} {state:<12} Normal       Normal       Normal       {}%\r\n",
            battery.current_ma, battery.soc_pct
        );
    }
    out
}

pub fn trailer() -> String {
    format!("{DONE}\r\n$$\r\n\r\n{PROMPT}")
}

fn value_after_colon(line: &str) -> Option<&str> {
    line.split_once(':').map(|(_, value)| value.trim())
}

/// Reads a `pwr N` answer into a unit status (cells are added from `bat N`).
pub fn parse_pwr(text: &str) -> UnitStatus {
    let mut unit = UnitStatus::default();
    let number = |line: &str| {
        value_after_colon(line)
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| v as f64)
    };
    for line in text.lines() {
        let label = line.split(':').next().unwrap_or("").trim();
        match label {
            "Voltage" => unit.voltage_v = number(line).map(|mv| mv / 1000.0),
            "Current" => unit.current_a = number(line).map(|ma| ma / 1000.0),
            "Temperature" => unit.temperature_c = number(line).map(|mc| mc / 1000.0),
            "Coulomb" => unit.soc_pct = number(line),
            "Basic Status" | "Volt Status" | "Current Status" | "Tmpr. Status" => {
                let word = match label {
                    "Basic Status" => "basic_st",
                    "Volt Status" => "volt_st",
                    "Current Status" => "current_st",
                    _ => "temp_st",
                };
                if let Some(value) = value_after_colon(line).filter(|v| !v.is_empty()) {
                    unit.status.insert(word.into(), value.to_owned());
                }
            }
            "Bat Events" | "Power Events" | "System Fault" => {
                let word = match label {
                    "Bat Events" => "bat_events",
                    "Power Events" => "power_events",
                    _ => "sys_events",
                };
                if let Some(value) = value_after_colon(line) {
                    unit.status.insert(word.into(), value.to_owned());
                }
            }
            _ => {}
        }
    }
    unit
}

/// Adds the cells of a `bat N` answer: (voltage V, temperature °C) per row, in row order.
pub fn parse_bat(text: &str, unit: &mut UnitStatus) {
    for line in text.lines() {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.len() < 4 || columns[0].parse::<u32>().is_err() {
            continue;
        }
        let (Ok(mv), Ok(mc)) = (columns[1].parse::<f64>(), columns[3].parse::<f64>()) else {
            continue;
        };
        unit.cell_voltages_v.push(mv / 1000.0);
        unit.cell_temperatures_c.push(mc / 1000.0);
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConsoleError {
    #[error("no complete answer to {command:?} within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    #[error("the console closed the line")]
    Closed,
    #[error("serial error: {0}")]
    Io(String),
}

/// Sends `command` and reads until the console says it is done, all within `timeout`.
pub async fn ask<T: AsyncRead + AsyncWrite + Unpin>(
    io: &mut T,
    command: &str,
    timeout: Duration,
) -> Result<String, ConsoleError> {
    let mut answer = Vec::new();
    let read = async {
        io.write_all(format!("{command}\r").as_bytes())
            .await
            .map_err(|e| ConsoleError::Io(e.to_string()))?;
        io.flush()
            .await
            .map_err(|e| ConsoleError::Io(e.to_string()))?;
        let mut buffer = [0u8; 512];
        loop {
            let count = io
                .read(&mut buffer)
                .await
                .map_err(|e| ConsoleError::Io(e.to_string()))?;
            if count == 0 {
                return Err(ConsoleError::Closed);
            }
            answer.extend_from_slice(&buffer[..count]);
            if String::from_utf8_lossy(&answer).contains(PROMPT) {
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(ConsoleError::Timeout {
            command: command.to_owned(),
            timeout,
        }),
        Ok(Err(error)) => Err(error),
        Ok(Ok(())) => Ok(String::from_utf8_lossy(&answer).into_owned()),
    }
}

/// Reads every battery of the bank (`pwr N` then `bat N`). A battery that does not answer is left
/// out; a console that does not answer at all is an error.
pub async fn read_bank<T: AsyncRead + AsyncWrite + Unpin>(
    io: &mut T,
    batteries: usize,
    timeout: Duration,
) -> Result<BTreeMap<u8, UnitStatus>, ConsoleError> {
    let mut units = BTreeMap::new();
    let mut last_error = None;
    for index in 1..=batteries as u8 {
        let summary = match ask(io, &format!("pwr {index}"), timeout).await {
            Ok(text) if text.contains(DONE) => text,
            Ok(_) => continue,
            Err(error) => {
                last_error = Some(error);
                continue;
            }
        };
        let mut unit = parse_pwr(&summary);
        if let Ok(cells) = ask(io, &format!("bat {index}"), timeout).await {
            parse_bat(&cells, &mut unit);
        }
        units.insert(index, unit);
    }
    match (units.is_empty(), last_error) {
        (true, Some(error)) => Err(error),
        _ => Ok(units),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_and_cell_tables_round_trip() {
        let battery = ConsoleBattery {
            voltage_mv: 52345,
            current_ma: -12500,
            temperature_mc: 23400,
            soc_pct: 87,
            basic_status: "Dischg".into(),
            volt_status: "Normal".into(),
            current_status: "Normal".into(),
            temp_status: "Normal".into(),
            bat_events: 0,
            power_events: 0x10,
            system_fault: 0,
            cells: (0..15)
                .map(|i| (3300 + i, 22000 + i * 100, "Dischg".to_owned()))
                .collect(),
        };
        let mut unit = parse_pwr(&render_pwr(&battery));
        parse_bat(&render_bat(&battery), &mut unit);
        assert_eq!(unit.voltage_v, Some(52.345));
        assert_eq!(unit.current_a, Some(-12.5));
        assert_eq!(unit.temperature_c, Some(23.4));
        assert_eq!(unit.soc_pct, Some(87.0));
        assert_eq!(
            unit.status.get("basic_st").map(String::as_str),
            Some("Dischg")
        );
        assert_eq!(
            unit.status.get("power_events").map(String::as_str),
            Some("0x10")
        );
        assert_eq!(unit.cell_voltages_v.len(), 15);
        assert_eq!(unit.cell_voltages_v[14], 3.314);
        assert_eq!(unit.cell_temperatures_c[1], 22.1);
    }
}
