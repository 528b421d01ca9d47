//! Answers a server can encode while it reads their rows. `EnergyHistory` (history.proto) is the
//! largest answer the API gives (a year of hours: 8,784 buckets, 1.9 MB): a server that built
//! every bucket first and encoded the list after held it twice and walked it three times (two
//! length passes and the encoding). Here a server encodes each bucket as its row is read
//! ([`EnergyHistory::push_row`]); a client decodes into [`EnergyHistory::buckets`] as from the
//! generated type. The bytes on the wire are the same (`build.rs` maps the message here).

use prost::bytes::{Buf, BufMut};
use prost::encoding::{
    DecodeContext, WireType, encode_varint, encoded_len_varint, message, skip_field,
};
use prost::{DecodeError, Message};

use crate::v1::EnergyBucket;

/// About the most an hourly bucket takes encoded, with its field tag and length (a system's with
/// every figure: 218 bytes; an inverter's carries two ids more).
const BUCKET_BYTES: usize = 232;
/// About the fewest: a bucket without a battery's or the grid's figures (a list sized for more
/// buckets than come is address space, not memory, until they come).
const FEWEST_BUCKET_BYTES: usize = 160;

/// `solarhub.v1.EnergyHistory`: `repeated EnergyBucket buckets = 1`.
#[derive(Clone, Default)]
pub struct EnergyHistory {
    /// The buckets decoded (what a client reads), or given whole.
    pub buckets: Vec<EnergyBucket>,
    /// Buckets a server pushed, encoded as field 1 (sent before `buckets`).
    encoded: Vec<u8>,
}

impl EnergyHistory {
    /// An answer of `buckets`.
    pub fn new(buckets: Vec<EnergyBucket>) -> EnergyHistory {
        EnergyHistory {
            buckets,
            encoded: Vec::new(),
        }
    }

    /// An answer with room for `buckets` pushed buckets (a system's hour is 218 bytes encoded, an
    /// inverter's, with its ids, a few more): the buffer is not copied as it grows.
    pub fn with_room_for(buckets: usize) -> EnergyHistory {
        EnergyHistory {
            buckets: Vec::new(),
            encoded: Vec::with_capacity(buckets * BUCKET_BYTES),
        }
    }

    /// Encodes `row` as an `EnergyBucket` into the answer, after the buckets pushed before it:
    /// the bytes prost makes of the same bucket, written in one pass from what the row borrows.
    /// Built as an `EnergyBucket` first, a year of hours made 8,784 buckets (their ids and dates
    /// copied into strings, their times into `Timestamp`s) and prost walked each twice (its
    /// length, then its fields): 5 ms of the 33 an answer took (`perf`, history bench). The
    /// fields whose size has a bound are written to a [`Scratch`] on the stack first: the
    /// bucket's length is known when its prefix is written, and a byte is a store, not a
    /// `Vec::push` that reads and writes the list's length in memory (8,784 rows pushed in a
    /// scratch release loop: 1.4-1.9 ms written field by field, 0.9-1.0 ms through the scratch).
    pub fn push_row(&mut self, row: &EnergyBucketRow<'_>) {
        let mut fixed = Scratch::new();
        fixed.time(4, row.start_ms);
        fixed.time(5, row.end_ms);
        let times = fixed.len;
        fixed.int(7, i64::from(row.hour));
        for (field, figure) in (FIRST_FIGURE..).zip(row.figures) {
            if let Some(value) = figure {
                fixed.double(field, value);
            }
        }
        fixed.int(26, row.sample_count);
        if row.coverage_pct != 0.0 {
            fixed.double(27, row.coverage_pct);
        }
        fixed.int(28, i64::from(row.source));
        let len = str_len(1, row.system_id)
            + str_len(2, row.array_id)
            + str_len(3, row.inverter_id)
            + str_len(6, row.date)
            + fixed.len;
        let buf = &mut self.encoded;
        buf.reserve(1 + encoded_len_varint(len as u64) + len);
        buf.push(key(1, LEN)[0]);
        encode_varint(len as u64, buf);
        put_str(buf, 1, row.system_id);
        put_str(buf, 2, row.array_id);
        put_str(buf, 3, row.inverter_id);
        buf.extend_from_slice(&fixed.bytes[..times]);
        put_str(buf, 6, row.date);
        buf.extend_from_slice(&fixed.bytes[times..fixed.len]);
    }
}

/// One `solarhub.v1.EnergyBucket` as a server has it when it reads a row: ids and the date
/// borrowed, times in epoch milliseconds, the optional figures in field order.
/// [`EnergyHistory::push_row`] encodes it (a test holds its bytes equal to prost's encoding of the
/// same bucket as the generated type).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyBucketRow<'a> {
    pub system_id: &'a str,
    pub array_id: &'a str,
    pub inverter_id: &'a str,
    pub start_ms: i64,
    pub end_ms: i64,
    pub date: &'a str,
    pub hour: i32,
    /// Fields 8 (`solar_kwh`) to 25 (`battery_cycles`), in field order (history.proto).
    pub figures: [Option<f64>; 18],
    pub sample_count: i64,
    pub coverage_pct: f64,
    /// `BucketSource` as its number.
    pub source: i32,
}

/// The field number of `EnergyBucketRow::figures[0]` (`solar_kwh`).
const FIRST_FIGURE: u32 = 8;
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

/// A field's key: its number and wire type, as a varint (at most two bytes below field 2048).
const fn key(field: u32, wire_type: u32) -> [u8; 2] {
    let key = field << 3 | wire_type;
    [
        (key as u8) | if key >= 0x80 { 0x80 } else { 0 },
        (key >> 7) as u8,
    ]
}

fn key_len(field: u32) -> usize {
    if field < 16 { 1 } else { 2 }
}

fn put_key(buf: &mut Vec<u8>, field: u32, wire_type: u32) {
    buf.extend_from_slice(&key(field, wire_type)[..key_len(field)]);
}

/// A string field: absent when empty (proto3).
fn put_str(buf: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        put_key(buf, field, LEN);
        encode_varint(value.len() as u64, buf);
        buf.extend_from_slice(value.as_bytes());
    }
}

fn str_len(field: u32, value: &str) -> usize {
    match value.len() {
        0 => 0,
        len => key_len(field) + encoded_len_varint(len as u64) + len,
    }
}

/// The fields of a bucket whose size has a bound (times, hour, figures, counts: at most 255
/// bytes), encoded on the stack: a byte written is a store and a count kept in a register.
struct Scratch {
    bytes: [u8; 256],
    len: usize,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            bytes: [0; 256],
            len: 0,
        }
    }

    fn byte(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    fn key(&mut self, field: u32, wire_type: u32) {
        let [low, high] = key(field, wire_type);
        self.byte(low);
        if key_len(field) == 2 {
            self.byte(high);
        }
    }

    /// A varint, as prost's `encode_varint` writes it. Not that function over the rest of the
    /// scratch as a `&mut [u8]`: a year of hours pushed took 1.0-1.3 ms that way against 0.9.
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.byte(value as u8 | 0x80);
            value >>= 7;
        }
        self.byte(value as u8);
    }

    /// An int32, int64 or enum field: absent when 0 (proto3); a negative value is ten bytes.
    fn int(&mut self, field: u32, value: i64) {
        if value != 0 {
            self.key(field, VARINT);
            self.varint(value as u64);
        }
    }

    /// A double field that is present (an `optional` one, or a plain one that is not 0).
    fn double(&mut self, field: u32, value: f64) {
        self.key(field, FIXED64);
        self.bytes[self.len..self.len + 8].copy_from_slice(&value.to_le_bytes());
        self.len += 8;
    }

    /// A `google.protobuf.Timestamp` field, always present: `seconds` (1) and `nanos` (2), each
    /// absent when 0, as `time::timestamp` makes them. Its length is written before it as one
    /// byte (at most 17: seconds 11, nanos 6) and set once the body is written.
    fn time(&mut self, field: u32, ms: i64) {
        let time = crate::time::timestamp(ms);
        self.key(field, LEN);
        let length_at = self.len;
        self.byte(0);
        self.int(1, time.seconds);
        self.int(2, i64::from(time.nanos));
        self.bytes[length_at] = (self.len - length_at - 1) as u8;
    }
}

impl Message for EnergyHistory {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.encoded);
        for bucket in &self.buckets {
            message::encode(1, bucket, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => {
                // Room for the buckets the answer's bytes can hold, once, rather than a list
                // grown (and copied) twelve times for a year of hours. At most about three times
                // the answer's bytes, whatever they are.
                if self.buckets.capacity() == 0 {
                    self.buckets.reserve(buf.remaining() / FEWEST_BUCKET_BYTES);
                }
                // Decoded where it stays, not on the stack and then moved into the list (a
                // bucket is 400-odd bytes: prost's `merge_repeated` moved 3.6 MB a year).
                let wire = WireType::LengthDelimited;
                prost::encoding::check_wire_type(wire, wire_type).and_then(|()| {
                    self.buckets.push(EnergyBucket::default());
                    let bucket = self.buckets.last_mut().expect("a bucket was just pushed");
                    let merged = message::merge(wire, bucket, buf, ctx);
                    if merged.is_err() {
                        self.buckets.pop();
                    }
                    merged
                })
            }
            .map_err(|mut error| {
                error.push("EnergyHistory", "buckets");
                error
            }),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        self.encoded.len() + message::encoded_len_repeated(1, &self.buckets)
    }

    fn clear(&mut self) {
        self.buckets.clear();
        self.encoded.clear();
    }
}

/// Equal when they encode alike (pushed buckets are only held encoded).
impl PartialEq for EnergyHistory {
    fn eq(&self, other: &EnergyHistory) -> bool {
        self.encode_to_vec() == other.encode_to_vec()
    }
}

impl std::fmt::Debug for EnergyHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnergyHistory")
            .field("buckets", &self.buckets)
            .field("encoded_bytes", &self.encoded.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::EnergyBucket;

    /// A bucket's values that vary, owned (a row borrows them).
    struct Case {
        id: String,
        start: i64,
        hour: i32,
        figures: [Option<f64>; 18],
        count: i64,
        coverage: f64,
        source: i32,
    }

    /// The row as the generated type: what `push_row`'s bytes are held to. Every field is named,
    /// so a field added to `history.proto` does not compile here, and until `push_row` writes
    /// it the byte comparison fails.
    fn bucket(row: &EnergyBucketRow<'_>) -> EnergyBucket {
        let f = row.figures;
        EnergyBucket {
            system_id: row.system_id.to_owned(),
            array_id: row.array_id.to_owned(),
            inverter_id: row.inverter_id.to_owned(),
            start: Some(crate::time::timestamp(row.start_ms)),
            end: Some(crate::time::timestamp(row.end_ms)),
            date: row.date.to_owned(),
            hour: row.hour,
            solar_kwh: f[0],
            load_kwh: f[1],
            battery_charge_kwh: f[2],
            battery_discharge_kwh: f[3],
            grid_import_kwh: f[4],
            grid_export_kwh: f[5],
            avg_pv_power_w: f[6],
            peak_pv_power_w: f[7],
            avg_load_power_w: f[8],
            peak_load_power_w: f[9],
            avg_grid_power_w: f[10],
            peak_grid_import_w: f[11],
            peak_grid_export_w: f[12],
            avg_battery_power_w: f[13],
            soc_min_pct: f[14],
            soc_avg_pct: f[15],
            soc_max_pct: f[16],
            battery_cycles: f[17],
            sample_count: row.sample_count,
            coverage_pct: row.coverage_pct,
            source: row.source,
        }
    }

    impl Case {
        fn row(&self) -> EnergyBucketRow<'_> {
            EnergyBucketRow {
                system_id: "home",
                array_id: &self.id,
                inverter_id: if self.hour > 0 { &self.id } else { "" },
                start_ms: self.start,
                end_ms: self.start + 3_600_000,
                date: "2024-03-31",
                hour: self.hour,
                figures: self.figures,
                sample_count: self.count,
                coverage_pct: self.coverage,
                source: self.source,
            }
        }
    }

    /// Cases with every field's edge: empty and long ids, times before 1970 and with
    /// milliseconds, negative and zero hours, figures absent, zero, -0.0, negative and large,
    /// counts past one varint byte and negative, an unknown source number; last, the widest
    /// bucket `push_row`'s scratch must hold (every bounded field at its longest: 255 bytes).
    fn cases() -> Vec<Case> {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        (0..2_000)
            .map(|i| {
                let r = next();
                Case {
                    id: "x".repeat((r % 300) as usize),
                    start: (next() as i64) % 4_000_000_000_000,
                    hour: [0, 1, -1, 23, i32::MAX, i32::MIN][(r % 6) as usize],
                    figures: std::array::from_fn(|f| match (r >> f) % 5 {
                        0 => None,
                        1 => Some(0.0),
                        2 => Some(-0.0),
                        3 => Some(-(f as f64) * 1.25e3),
                        _ => Some(f64::from_bits(next() >> 2)),
                    }),
                    count: [0, 1, 127, 128, 360, -1, i64::MAX][(r % 7) as usize],
                    coverage: [0.0, -0.0, 100.0, 37.5][(r % 4) as usize],
                    source: [0, 1, 2, -3][i % 4],
                }
            })
            .chain(std::iter::once(Case {
                id: String::new(),
                start: -4_000_000_000_001,
                hour: i32::MIN,
                figures: [Some(-1.25e3); 18],
                count: -1,
                coverage: 37.5,
                source: -3,
            }))
            .collect()
    }

    #[test]
    fn pushed_rows_are_the_bytes_prost_makes_of_their_buckets_and_decode_back() {
        let cases = cases();
        let mut pushed = EnergyHistory::default();
        for case in &cases {
            pushed.push_row(&case.row());
        }
        let buckets: Vec<EnergyBucket> = cases.iter().map(|c| bucket(&c.row())).collect();
        let whole = EnergyHistory::new(buckets.clone());
        assert_eq!(pushed.encoded_len(), whole.encoded_len());
        assert_eq!(pushed.encode_to_vec(), whole.encode_to_vec());
        let decoded = EnergyHistory::decode(pushed.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.buckets, buckets);
        assert_eq!(decoded, pushed);
    }

    #[test]
    fn a_broken_answer_is_an_error_that_names_the_buckets_and_keeps_no_half_bucket() {
        let cases = cases();
        let mut pushed = EnergyHistory::default();
        for case in &cases[..3] {
            pushed.push_row(&case.row());
        }
        let bytes = pushed.encode_to_vec();
        // Cut inside the last bucket, and a bucket sent as a number rather than a message.
        for broken in [&bytes[..bytes.len() - 3], &[0x08, 0x01][..]] {
            let error = EnergyHistory::decode(broken).unwrap_err().to_string();
            assert!(error.contains("EnergyHistory.buckets"), "{error}");
        }
        let mut merged = EnergyHistory::default();
        assert!(merged.merge(&bytes[..bytes.len() - 3]).is_err());
        assert_eq!(
            merged.buckets.len(),
            2,
            "only the whole buckets before the cut"
        );
    }
}
