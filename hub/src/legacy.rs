//! Upgrade of the existing app's SQLite database (DESIGN §6.2). Filled in below.

use std::fmt;
use std::path::Path;

use crate::db::{Database, DatabaseUrl, DbError};

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("{0}")]
    Db(#[from] DbError),
}

#[derive(Debug, Default)]
pub struct LegacyReport {}

impl fmt::Display for LegacyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("legacy import")
    }
}

pub fn upgrade_in_place_if_legacy(
    _url: &DatabaseUrl,
    _config: Option<&Path>,
) -> Result<Option<LegacyReport>, LegacyError> {
    Ok(None)
}

pub fn import_legacy(
    _database: &Database,
    _file: &Path,
    _config: Option<&Path>,
) -> Result<LegacyReport, LegacyError> {
    Ok(LegacyReport::default())
}
