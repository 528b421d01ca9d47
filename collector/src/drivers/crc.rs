//! The Modbus CRC-16 (polynomial 0xA001, initial 0xFFFF, sent low byte first): framing of Modbus
//! RTU and of the JK BMS bus, checked by the collector and written by the simulator.

/// The CRC of `bytes`.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for byte in bytes {
        crc ^= u16::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_a_known_frame() {
        // Read 2 holding registers from 0x0000 of unit 1: CRC bytes C4 0B.
        assert_eq!(
            crc16(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x02]).to_le_bytes(),
            [0xC4, 0x0B]
        );
    }
}
