//! JK BMS on its RS485 bus (directly, or through an RS485-to-TCP gateway), in passive mode: the
//! master BMS asks each battery in turn with a short Modbus write frame (`ID 10 16 ..`), and the
//! battery answers with a 300-byte status frame (`55 AA EB 90 02 ..`, little-endian fields). The
//! collector only listens: it follows which battery was asked last and reads its answer.
//!
//! Frame facts (offsets into the status frame) come from the existing app's documentation of the
//! same devices. Both directions live here, so the simulator speaks exactly what the parser reads.

use serde::Serialize;

use crate::drivers::crc::crc16;

pub const DATA_FRAME_START: [u8; 4] = [0x55, 0xAA, 0xEB, 0x90];
pub const STATUS_FRAME_TYPE: u8 = 0x02;
pub const STATUS_FRAME_LEN: usize = 300;
/// `ID 10 16 20 00 01 02 00 00 CRC CRC`: the master's "send me your status".
pub const POLL_FRAME_LEN: usize = 11;

const CELLS_OFFSET: usize = 6;
const MOS_TEMP: usize = 144;
const POWER: usize = 154;
const CURRENT: usize = 158;
const TEMP1: usize = 162;
const TEMP2: usize = 164;
const SOC: usize = 173;
const REMAINING_AH: usize = 174;
const TOTAL_AH: usize = 178;
const CYCLES: usize = 182;
const SOH: usize = 190;
const PACK_VOLTAGE: usize = 234;
pub const MAX_CELLS: usize = 32;

/// One battery's status, in units: V, A (> 0 charging, as JK reports it), W, °C, %, Ah.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatteryStatus {
    pub cell_voltages_v: Vec<f64>,
    pub power_w: f64,
    pub current_a: f64,
    pub mos_temp_c: f64,
    pub temp1_c: f64,
    pub temp2_c: f64,
    pub soc_pct: f64,
    pub soh_pct: f64,
    pub remaining_ah: f64,
    pub total_ah: f64,
    pub cycles: f64,
    pub pack_voltage_v: f64,
}

fn put(frame: &mut [u8], offset: usize, bytes: &[u8]) {
    frame[offset..offset + bytes.len()].copy_from_slice(bytes);
}

fn u16_at(frame: &[u8], offset: usize) -> f64 {
    f64::from(u16::from_le_bytes([frame[offset], frame[offset + 1]]))
}

fn i16_at(frame: &[u8], offset: usize) -> f64 {
    f64::from(i16::from_le_bytes([frame[offset], frame[offset + 1]]))
}

fn u32_at(frame: &[u8], offset: usize) -> f64 {
    f64::from(u32::from_le_bytes([
        frame[offset],
        frame[offset + 1],
        frame[offset + 2],
        frame[offset + 3],
    ]))
}

fn i32_at(frame: &[u8], offset: usize) -> f64 {
    f64::from(i32::from_le_bytes([
        frame[offset],
        frame[offset + 1],
        frame[offset + 2],
        frame[offset + 3],
    ]))
}

/// The status frame a battery sends (the last byte is the sum of the others).
pub fn encode_status(status: &BatteryStatus) -> Vec<u8> {
    let mut frame = vec![0u8; STATUS_FRAME_LEN];
    put(&mut frame, 0, &DATA_FRAME_START);
    frame[4] = STATUS_FRAME_TYPE;
    for (index, volts) in status.cell_voltages_v.iter().take(MAX_CELLS).enumerate() {
        put(
            &mut frame,
            CELLS_OFFSET + index * 2,
            &((volts * 1000.0).round() as u16).to_le_bytes(),
        );
    }
    put(
        &mut frame,
        MOS_TEMP,
        &((status.mos_temp_c * 10.0).round() as i16).to_le_bytes(),
    );
    put(
        &mut frame,
        POWER,
        &((status.power_w.abs() * 1000.0).round() as u32).to_le_bytes(),
    );
    put(
        &mut frame,
        CURRENT,
        &((status.current_a * 1000.0).round() as i32).to_le_bytes(),
    );
    put(
        &mut frame,
        TEMP1,
        &((status.temp1_c * 10.0).round() as i16).to_le_bytes(),
    );
    put(
        &mut frame,
        TEMP2,
        &((status.temp2_c * 10.0).round() as i16).to_le_bytes(),
    );
    frame[SOC] = status.soc_pct.round().clamp(0.0, 255.0) as u8;
    put(
        &mut frame,
        REMAINING_AH,
        &((status.remaining_ah * 1000.0).round() as i32).to_le_bytes(),
    );
    put(
        &mut frame,
        TOTAL_AH,
        &((status.total_ah * 1000.0).round() as i32).to_le_bytes(),
    );
    put(
        &mut frame,
        CYCLES,
        &(status.cycles.round() as i32).to_le_bytes(),
    );
    frame[SOH] = status.soh_pct.round().clamp(0.0, 255.0) as u8;
    put(
        &mut frame,
        PACK_VOLTAGE,
        &((status.pack_voltage_v * 100.0).round() as u16).to_le_bytes(),
    );
    let sum = frame[..STATUS_FRAME_LEN - 1]
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b));
    frame[STATUS_FRAME_LEN - 1] = sum;
    frame
}

/// Reads a status frame; `None` when it is not one or its checksum is wrong.
pub fn parse_status(frame: &[u8], cells: usize) -> Option<BatteryStatus> {
    if frame.len() < STATUS_FRAME_LEN
        || frame[..4] != DATA_FRAME_START
        || frame[4] != STATUS_FRAME_TYPE
    {
        return None;
    }
    let sum = frame[..STATUS_FRAME_LEN - 1]
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b));
    if sum != frame[STATUS_FRAME_LEN - 1] {
        return None;
    }
    Some(BatteryStatus {
        cell_voltages_v: (0..cells.min(MAX_CELLS))
            .map(|i| u16_at(frame, CELLS_OFFSET + i * 2) / 1000.0)
            .collect(),
        power_w: u32_at(frame, POWER) / 1000.0,
        current_a: i32_at(frame, CURRENT) / 1000.0,
        mos_temp_c: i16_at(frame, MOS_TEMP) / 10.0,
        temp1_c: i16_at(frame, TEMP1) / 10.0,
        temp2_c: i16_at(frame, TEMP2) / 10.0,
        soc_pct: f64::from(frame[SOC]),
        soh_pct: f64::from(frame[SOH]),
        remaining_ah: i32_at(frame, REMAINING_AH) / 1000.0,
        total_ah: i32_at(frame, TOTAL_AH) / 1000.0,
        cycles: i32_at(frame, CYCLES),
        pack_voltage_v: u16_at(frame, PACK_VOLTAGE) / 100.0,
    })
}

/// The master's poll of battery `id`.
pub fn encode_poll(id: u8) -> Vec<u8> {
    let mut frame = vec![id, 0x10, 0x16, 0x20, 0x00, 0x01, 0x02, 0x00, 0x00];
    let crc = crc16(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

/// What the scanner found on the bus.
#[derive(Debug, Clone, PartialEq)]
pub enum BusFrame {
    /// The master asked battery `id`.
    Poll(u8),
    /// A battery's status (the one asked last).
    Status(Vec<u8>),
}

/// Finds frames in the byte stream of the bus, resynchronising after noise.
#[derive(Debug, Default)]
pub struct FrameScanner {
    buffer: Vec<u8>,
}

impl FrameScanner {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() > 8 * STATUS_FRAME_LEN {
            let cut = self.buffer.len() - 4 * STATUS_FRAME_LEN;
            self.buffer.drain(..cut);
        }
    }

    /// The next complete frame, if the buffer holds one.
    pub fn next_frame(&mut self) -> Option<BusFrame> {
        loop {
            if self.buffer.len() < 4 {
                return None;
            }
            if self.buffer[..4] == DATA_FRAME_START {
                if self.buffer.len() < STATUS_FRAME_LEN {
                    return None;
                }
                let frame: Vec<u8> = self.buffer.drain(..STATUS_FRAME_LEN).collect();
                return Some(BusFrame::Status(frame));
            }
            if self.buffer[1] == 0x10 && self.buffer[2] == 0x16 {
                if self.buffer.len() < POLL_FRAME_LEN {
                    return None;
                }
                let candidate = &self.buffer[..POLL_FRAME_LEN];
                let crc = crc16(&candidate[..POLL_FRAME_LEN - 2]);
                if crc.to_le_bytes()
                    == [candidate[POLL_FRAME_LEN - 2], candidate[POLL_FRAME_LEN - 1]]
                {
                    let id = candidate[0];
                    self.buffer.drain(..POLL_FRAME_LEN);
                    return Some(BusFrame::Poll(id));
                }
            }
            // Not the start of a frame we know: skip a byte and look again.
            self.buffer.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> BatteryStatus {
        BatteryStatus {
            cell_voltages_v: (0..16).map(|i| f64::from(3300 + i) / 1000.0).collect(),
            power_w: 523.456,
            current_a: -10.25,
            mos_temp_c: 31.5,
            temp1_c: 24.1,
            temp2_c: -2.5,
            soc_pct: 67.0,
            soh_pct: 99.0,
            remaining_ah: 187.6,
            total_ah: 280.0,
            cycles: 41.0,
            pack_voltage_v: 53.12,
        }
    }

    #[test]
    fn status_frames_round_trip_and_noise_is_skipped() {
        let mut scanner = FrameScanner::default();
        scanner.push(&[0x00, 0x13, 0x37]);
        scanner.push(&encode_poll(2));
        scanner.push(&encode_status(&status())[..100]);
        assert_eq!(scanner.next_frame(), Some(BusFrame::Poll(2)));
        assert_eq!(
            scanner.next_frame(),
            None,
            "half a status frame is not a frame"
        );
        scanner.push(&encode_status(&status())[100..]);
        let Some(BusFrame::Status(frame)) = scanner.next_frame() else {
            panic!("no status frame")
        };
        assert_eq!(parse_status(&frame, 16), Some(status()));
        let mut broken = frame.clone();
        broken[SOC] = 5;
        assert_eq!(parse_status(&broken, 16), None, "a bad checksum is refused");
    }
}
