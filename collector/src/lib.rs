//! The solarhub collector: owns the buses and the devices next to them, turns registers and
//! console lines into readings, and streams them to the hub through a durable outbox. It never
//! opens the hub's database.
//!
//! Map:
//! - the run: `app` (the composition root: outbox, assignments, plan, runtime, uplink),
//!   `assignment` (assignments from the hub or a `collector.yaml` → the `Plan`), `runtime` (runs a
//!   plan: every bus, console and pack task), `uplink` (batches → outbox → one stream with acks),
//!   `outbox` (the durable SQLite outbox), `backoff` (the one retry rhythm), `clock` (what stamps readings and batches), `observe` (every poll
//!   and dropped value, once: Prometheus metrics and the data-quality tallies sent to the hub);
//! - buses and devices: `bus` (one task per bus, devices polled in turn), `modbus_poll` (one poll
//!   of one device), `read_plan` (which reads a poll needs), `serial` (serial lines and
//!   pseudo-terminals);
//! - what devices say: `register_map` (the map format and its checks), `codec` (registers ↔
//!   values, both directions), `crc` (the Modbus CRC), `sunspec` (the SunSpec model chain),
//!   `jkbms` (JK BMS frames), `pytes` (the Pytes console), `pack` (pack readings and adapter
//!   failover), `normalize` (canonical fields, implausible values dropped and counted), `reading`
//!   (the reading every driver produces);
//! - `simulator`: simulated devices of every driver type over real Modbus, RTU and consoles.

pub mod app;
pub mod assignment;
pub mod backoff;
pub mod bus;
pub mod clock;
pub mod codec;
pub mod crc;
pub mod hub_access;
pub mod jkbms;
pub mod modbus_poll;
pub mod normalize;
pub mod observe;
pub mod outbox;
pub mod pack;
pub mod pytes;
pub mod read_plan;
pub mod reading;
pub mod register_map;
pub mod runtime;
pub mod serial;
pub mod simulator;
pub mod sunspec;
pub mod uplink;
