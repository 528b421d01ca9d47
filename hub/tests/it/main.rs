//! The hub's integration tests, in one binary so the hub is linked once: a module per area. Every
//! database test runs on SQLite and on Postgres (`on_both_backends!`, `common`); the end-to-end
//! ones run the real collector and the real hub binary.

#[macro_use]
mod common;
mod legacy_fixture;

mod catalog_api;
mod catalog_concurrency;
mod cluster;
mod config_import;
mod connections;
mod control;
mod crash_recovery;
mod dashboard;
mod demo;
mod end_to_end;
mod faults;
mod fuzz;
mod home_assistant;
mod http;
mod ingest;
mod legacy;
mod live;
mod operations;
mod retention;
mod rollups;
mod schema;
mod security;
mod serve;
mod upgrade_retention;
mod uplink_failures;
