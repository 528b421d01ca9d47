//! The commands of `solarhub-hub`, one module each (the binary's own: the library has none of
//! this): flags several share (`args`), opening and filling the database (`setup`), `serve` and
//! `demo` (`serve`), imports (`imports`), tokens (`tokens`), the audit trail (`audit`), control
//! commands (`control`) and maintenance (`maintenance`).

pub(crate) mod args;
pub(crate) mod audit;
pub(crate) mod control;
pub(crate) mod imports;
pub(crate) mod maintenance;
pub(crate) mod serve;
pub(crate) mod setup;
pub(crate) mod tokens;
