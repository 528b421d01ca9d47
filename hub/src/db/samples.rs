//! Sample tables.
