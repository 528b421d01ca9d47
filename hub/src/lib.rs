//! The solarhub hub: owns the hierarchy schema, imports the existing app's config and database, and
//! serves the gRPC API.
//!
//! Map: `db` is the only diesel user; `catalog` holds the domain types of the hierarchy;
//! `config_import` turns a `config.yaml` into catalog rows; `legacy` upgrades the existing app's
//! SQLite database; `ingest` stores collector batches exactly once; `live` answers "now" and
//! watches; `rollup` keeps the hourly and daily energy; `grpc` is the only place that touches
//! generated proto types.

pub mod adapter_types;
pub mod catalog;
pub mod config_import;
pub mod db;
#[cfg(feature = "demo")]
pub mod demo;
pub mod grpc;
pub mod ingest;
pub mod json_schema;
pub mod legacy;
pub mod live;
pub mod local_time;
pub mod rollup;
pub mod server;
pub mod values;
