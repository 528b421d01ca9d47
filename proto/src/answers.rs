//! Answers a server can encode while it reads their rows. `EnergyHistory` (history.proto) is the
//! largest answer the API gives (a year of hours: 8,784 buckets, 1.9 MB): a server that built
//! every bucket first and encoded the list after held it twice and walked it three times (two
//! length passes and the encoding). Here a server encodes each bucket as its row is read
//! ([`EnergyHistory::push`]); a client decodes into [`EnergyHistory::buckets`] as from the
//! generated type. The bytes on the wire are the same (`build.rs` maps the message here).

use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType, message, skip_field};
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

    /// Encodes `bucket` into the answer, after the buckets pushed before it.
    pub fn push(&mut self, bucket: &EnergyBucket) {
        message::encode(1, bucket, &mut self.encoded);
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
                message::merge_repeated(wire_type, &mut self.buckets, buf, ctx)
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
    use crate::v1::{BucketSource, EnergyBucket};

    fn bucket(hour: i32) -> EnergyBucket {
        EnergyBucket {
            system_id: "home".into(),
            date: "2024-03-31".into(),
            hour,
            start: Some(crate::time::timestamp(
                1_711_843_200_000 + i64::from(hour) * 3_600_000,
            )),
            solar_kwh: Some(1.5),
            grid_export_kwh: Some(0.0),
            peak_grid_export_w: Some(-2000.0),
            sample_count: 360,
            coverage_pct: 100.0,
            source: BucketSource::Samples as i32,
            ..EnergyBucket::default()
        }
    }

    #[test]
    fn pushed_buckets_are_the_bytes_of_the_list_and_decode_back() {
        let buckets: Vec<EnergyBucket> = (0..24).map(bucket).collect();
        let mut pushed = EnergyHistory::default();
        for b in &buckets {
            pushed.push(b);
        }
        let whole = EnergyHistory::new(buckets.clone());
        assert_eq!(pushed.encoded_len(), whole.encoded_len());
        assert_eq!(pushed.encode_to_vec(), whole.encode_to_vec());
        let decoded = EnergyHistory::decode(pushed.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.buckets, buckets);
        assert_eq!(decoded, pushed);
    }
}
