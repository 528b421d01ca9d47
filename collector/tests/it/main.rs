//! The collector's integration tests, in one binary so the collector is linked once: a module per
//! area, each against the simulator over real Modbus TCP, RTU on a pseudo-terminal or a gateway.

mod bus;
mod fuzz;
mod jkbms;
mod map_drivers;
mod pytes;
mod runtime;
mod sunspec;
