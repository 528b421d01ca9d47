//! The solarhub hub: owns the hierarchy schema, imports the existing app's config and database,
//! stores telemetry exactly once, keeps the rollups, and serves the gRPC API.
//!
//! Map, from the ground up:
//! - `db`: the only diesel user (rows, queries, migrations; its `schema` is private to it);
//! - `values` (arithmetic on maybe-missing values), `time_ranges` (sets of times retention keeps
//!   apart), `progress` (bars and plain lines of long jobs), `local_time` (a system's zone, local hours and
//!   days), `json_schema` (adapter configs against their type's schema), `adapter_types` (the
//!   driver types as data), `limits` (what the hub accepts from anyone: text, values, times;
//!   asked by the catalog and by ingest alike);
//! - `catalog`: the installation hierarchy, its types declared once, and the repository that
//!   reads and changes it;
//! - `config_import` (`config.yaml` → catalog rows), `legacy` (the old app's database, in place or
//!   imported), `ingest` (collector batches, exactly once), `live` ("now" and the watch), `rollup`
//!   (hourly and daily energy, history), `quality` (per-device data quality from the collectors'
//!   poll tallies), `retention` (old collected samples deleted, imported ones and aggregates kept), `cluster` (hubs
//!   on one database sharing the periodic jobs and hearing each other's commits);
//! - `auth` (who may call: tokens, certificates, the layer in front of every service), `audit`
//!   (every write and refusal as rows people read);
//! - `metrics`: what the parts count for Prometheus, and the registry that gathers it;
//! - `server`: the composition root that builds the parts and starts the background jobs; `grpc`:
//!   the only place that touches generated proto types, adapting requests to the parts;
//! - `demo` (feature `demo`): the whole system in one process, the only code that reaches the
//!   collector crate.

pub mod adapter_types;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod cluster;
pub mod config_import;
pub mod control;
pub mod db;
#[cfg(feature = "demo")]
pub mod demo;
pub mod descriptors;
pub mod grpc;
pub mod http;
pub mod ingest;
pub mod installation;
pub mod json_schema;
pub mod legacy;
pub mod limits;
pub mod live;
pub mod local_time;
pub mod metrics;
pub mod mqtt;
pub mod progress;
pub mod quality;
pub mod retention;
pub mod rollup;
pub mod server;
pub mod time_ranges;
pub mod values;
