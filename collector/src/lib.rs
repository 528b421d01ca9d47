//! The solarhub collector: polls devices next to the bus and streams telemetry to the hub.
//!
//! Drivers, transports, the bus scheduler, the simulator and the uplink arrive with their issues;
//! this crate never opens the hub's database.
