//! Every solarhub `.proto`, compiled once for both services.
//!
//! This crate owns the wire types and nothing else: no domain logic, no conversions. The hub and the
//! collector convert to their own domain types at their gRPC edge. It re-exports `tonic` and `prost`
//! so both services build against the exact versions the generated code was made with.

pub use prost;
pub use prost_types;
pub use tonic;

/// The encoded `FileDescriptorSet` of every solarhub `.proto`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/solarhub_descriptor.bin"));

/// Package `solarhub.v1`.
pub mod v1 {
    #![allow(unreachable_pub, clippy::all, clippy::pedantic)]
    tonic::include_proto!("solarhub.v1");
}
