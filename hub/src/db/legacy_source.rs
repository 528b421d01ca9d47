//! Reading the existing app's SQLite database.
