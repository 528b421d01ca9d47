//! Every solarhub `.proto`, compiled once for both services.
//!
//! This crate owns the wire types and what the two services must agree on beyond them
//! ([`contract`]: canonical field names and units, the default poll interval, the ids of batteries
//! and cells), and no domain logic. The hub and the collector convert to their own domain types at
//! their gRPC edge; the one conversion shared here is time ([`time`]), because both sides keep it
//! the same way (UTC epoch milliseconds). It depends on prost and tonic only (what the binaries
//! share for operations is `solarhub-ops`), and re-exports `tonic` and `prost` so both services
//! build against the exact versions the generated code was made with.

pub mod answers;
pub mod codec;
pub mod contract;

pub use prost;
pub use prost_types;
pub use tonic;

/// The encoded `FileDescriptorSet` of every solarhub `.proto`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/solarhub_descriptor.bin"));

/// UTC epoch milliseconds, the project's time everywhere, to and from `google.protobuf.Timestamp`.
pub mod time {
    use prost_types::Timestamp;

    pub fn timestamp(ms: i64) -> Timestamp {
        Timestamp {
            seconds: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
        }
    }

    pub fn millis(timestamp: &Timestamp) -> i64 {
        timestamp
            .seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(timestamp.nanos) / 1_000_000)
    }
}

/// Package `solarhub.v1`.
pub mod v1 {
    #![allow(unreachable_pub, clippy::all, clippy::pedantic)]
    tonic::include_proto!("solarhub.v1");
    pub use crate::answers::EnergyHistory;
}
