//! The solarhub collector: polls devices next to the bus and turns registers into readings.
//!
//! Map: `register_map` (the map file format and its checks), `read_plan` (which reads one poll
//! needs), `codec` (registers ↔ values, both directions), `modbus_poll` (one poll over a Modbus
//! context), `normalize` (canonical fields, implausible values dropped and counted), `simulator`
//! (simulated devices over real Modbus). The collector never opens the hub's database.

pub mod app;
pub mod assignment;
pub mod backoff;
pub mod bus;
pub mod codec;
pub mod crc;
pub mod jkbms;
pub mod modbus_poll;
pub mod normalize;
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
