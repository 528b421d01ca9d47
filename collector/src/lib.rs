//! The solarhub collector: owns the buses and the devices next to them, turns registers and
//! console lines into readings, and streams them to the hub through a durable outbox. It never
//! opens the hub's database.
//!
//! Map, one room per concern:
//! - `app`: the composition root (outbox, assignments, plan, runtime, uplink); `backoff` (the one
//!   retry rhythm), `clock` (what stamps readings and batches);
//! - `drivers/`: what devices say: `register_map` (the map format and its checks), `codec`
//!   (registers ↔ values, both directions), `crc` (the Modbus CRC), `sunspec` (the SunSpec model
//!   chain), `jkbms` (JK BMS frames), `pytes` (the Pytes console), `pack` (pack readings and
//!   adapter failover), `normalize` (canonical fields, implausible values dropped and counted),
//!   `reading` (the reading every driver produces);
//! - `bus/`: the buses: one task per bus with its devices polled in turn (`mod.rs`),
//!   `modbus_poll` (one poll of one device), `read_plan` (which reads a poll needs), `serial`
//!   (serial lines and pseudo-terminals), `runtime` (runs a plan: every bus, console and pack
//!   task);
//! - `uplink/`: to the hub: batches → outbox → one stream with acks (`mod.rs`), `outbox` (the
//!   durable SQLite outbox), `assignment` (assignments from the hub or a `collector.yaml` → the
//!   `Plan`), `hub_access` (the hub's address, token and certificates);
//! - `control/`: commands from the hub (docs/control.md): routed to their device's bus task and
//!   executed there between polls (`execute`), results kept in the outbox until the hub has them;
//! - `observe/`: every poll and dropped value, once: Prometheus metrics and the data-quality
//!   tallies sent to the hub;
//! - `simulator/`: simulated devices of every driver type over real Modbus, RTU and consoles.

pub mod app;
pub mod backoff;
pub mod bus;
pub mod clock;
pub mod control;
pub mod drivers;
pub mod observe;
pub mod simulator;
pub mod uplink;
