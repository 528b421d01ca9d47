//! What depends on a catalog row, and deleting it with everything that depends on it.
//!
//! The relations below mirror the foreign keys of the migrations. Deleting walks them depth first, so
//! every row is deleted after the rows that reference it; references that only point at an adapter
//! (an inverter's or meter's `adapter_id`) are cleared instead of deleting the device.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::{DbConnection, DbError};

#[derive(Clone, Copy, PartialEq, Eq)]
enum OnDelete {
    /// Delete the referencing rows (and what depends on them).
    Delete,
    /// Set the referencing column to NULL.
    Clear,
}

/// (child table, child column, parent table, what cascade does).
const RELATIONS: &[(&str, &str, &str, OnDelete)] = {
    use OnDelete::{Clear, Delete};
    &[
        ("arrays", "system_id", "systems", Delete),
        ("inverters", "system_id", "systems", Delete),
        ("battery_arrays", "system_id", "systems", Delete),
        ("battery_array_attachments", "system_id", "systems", Delete),
        ("battery_packs", "system_id", "systems", Delete),
        ("meters", "system_id", "systems", Delete),
        ("inverters", "array_id", "arrays", Delete),
        (
            "battery_array_attachments",
            "inverter_array_id",
            "arrays",
            Delete,
        ),
        ("meters", "array_id", "arrays", Delete),
        (
            "battery_array_attachments",
            "battery_array_id",
            "battery_arrays",
            Delete,
        ),
        (
            "battery_packs",
            "battery_array_id",
            "battery_arrays",
            Delete,
        ),
        ("batteries", "pack_id", "battery_packs", Delete),
        ("battery_pack_adapters", "pack_id", "battery_packs", Delete),
        ("battery_cells", "battery_id", "batteries", Delete),
        ("adapters", "adapter_type", "adapter_base", Delete),
        ("inverters", "adapter_id", "adapters", Clear),
        ("meters", "adapter_id", "adapters", Clear),
        ("battery_pack_adapters", "adapter_id", "adapters", Delete),
        // Samples and rollups.
        ("energy_samples", "inverter_id", "inverters", Delete),
        ("energy_samples", "array_id", "arrays", Delete),
        ("energy_samples", "system_id", "systems", Delete),
        ("array_samples", "array_id", "arrays", Delete),
        ("array_samples", "system_id", "systems", Delete),
        ("battery_bank_samples", "pack_id", "battery_packs", Delete),
        (
            "battery_bank_samples",
            "battery_array_id",
            "battery_arrays",
            Delete,
        ),
        ("battery_bank_samples", "system_id", "systems", Delete),
        ("battery_unit_samples", "battery_id", "batteries", Delete),
        ("battery_unit_samples", "pack_id", "battery_packs", Delete),
        (
            "battery_unit_samples",
            "battery_array_id",
            "battery_arrays",
            Delete,
        ),
        ("battery_unit_samples", "system_id", "systems", Delete),
        ("battery_cell_samples", "cell_id", "battery_cells", Delete),
        ("battery_cell_samples", "battery_id", "batteries", Delete),
        ("battery_cell_samples", "pack_id", "battery_packs", Delete),
        (
            "battery_cell_samples",
            "battery_array_id",
            "battery_arrays",
            Delete,
        ),
        ("battery_cell_samples", "system_id", "systems", Delete),
        ("meter_samples", "meter_id", "meters", Delete),
        ("meter_samples", "array_id", "arrays", Delete),
        ("meter_samples", "system_id", "systems", Delete),
        ("energy_samples_5m", "inverter_id", "inverters", Delete),
        ("energy_samples_5m", "system_id", "systems", Delete),
        ("meter_samples_5m", "meter_id", "meters", Delete),
        ("meter_samples_5m", "system_id", "systems", Delete),
        (
            "battery_bank_samples_5m",
            "pack_id",
            "battery_packs",
            Delete,
        ),
        ("battery_bank_samples_5m", "system_id", "systems", Delete),
        ("battery_unit_samples_1h", "battery_id", "batteries", Delete),
        (
            "battery_unit_samples_1h",
            "pack_id",
            "battery_packs",
            Delete,
        ),
        ("battery_unit_samples_1h", "system_id", "systems", Delete),
        (
            "battery_cell_samples_1h",
            "cell_id",
            "battery_cells",
            Delete,
        ),
        ("battery_cell_samples_1h", "battery_id", "batteries", Delete),
        (
            "battery_cell_samples_1h",
            "pack_id",
            "battery_packs",
            Delete,
        ),
        ("battery_cell_samples_1h", "system_id", "systems", Delete),
        ("hourly_energy", "inverter_id", "inverters", Delete),
        ("hourly_energy", "array_id", "arrays", Delete),
        ("hourly_energy", "system_id", "systems", Delete),
        ("daily_summary", "inverter_id", "inverters", Delete),
        ("daily_summary", "array_id", "arrays", Delete),
        ("daily_summary", "system_id", "systems", Delete),
        ("array_hourly_energy", "array_id", "arrays", Delete),
        ("array_hourly_energy", "system_id", "systems", Delete),
        ("array_daily_summary", "array_id", "arrays", Delete),
        ("array_daily_summary", "system_id", "systems", Delete),
        ("system_hourly_energy", "system_id", "systems", Delete),
        ("system_daily_summary", "system_id", "systems", Delete),
        ("battery_bank_hourly", "pack_id", "battery_packs", Delete),
        (
            "battery_bank_hourly",
            "battery_array_id",
            "battery_arrays",
            Delete,
        ),
        ("battery_bank_hourly", "system_id", "systems", Delete),
        ("battery_bank_daily", "pack_id", "battery_packs", Delete),
        (
            "battery_bank_daily",
            "battery_array_id",
            "battery_arrays",
            Delete,
        ),
        ("battery_bank_daily", "system_id", "systems", Delete),
        ("meter_hourly_energy", "meter_id", "meters", Delete),
        ("meter_hourly_energy", "array_id", "arrays", Delete),
        ("meter_hourly_energy", "system_id", "systems", Delete),
        ("meter_daily", "meter_id", "meters", Delete),
        ("meter_daily", "array_id", "arrays", Delete),
        ("meter_daily", "system_id", "systems", Delete),
    ]
};

/// Whether other rows can reference rows of `table` (and so must be checked before deleting).
pub fn is_referenced(table: &str) -> bool {
    key_column(table).is_some()
}

/// Key column of the tables that other rows reference.
fn key_column(table: &str) -> Option<&'static str> {
    Some(match table {
        "systems" => "system_id",
        "arrays" => "array_id",
        "inverters" => "inverter_id",
        "battery_arrays" => "battery_array_id",
        "battery_packs" => "pack_id",
        "batteries" => "battery_id",
        "battery_cells" => "cell_id",
        "meters" => "meter_id",
        "adapters" => "adapter_id",
        "adapter_base" => "adapter_type",
        _ => return None,
    })
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = Text)]
    key: String,
}

/// Rows that reference row `key` of `table` directly, counted per referencing table (non-zero only).
pub fn dependents(
    conn: &mut DbConnection,
    table: &str,
    key: &str,
) -> Result<Vec<(String, i64)>, DbError> {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for (child, column, _, _) in RELATIONS
        .iter()
        .filter(|(_, _, parent, _)| *parent == table)
    {
        let rows: Vec<CountRow> = diesel::sql_query(format!(
            "SELECT COUNT(*) AS count FROM {child} WHERE {column} = {}",
            placeholder(conn)
        ))
        .bind::<Text, _>(key)
        .load(conn)?;
        let count = rows.first().map(|r| r.count).unwrap_or(0);
        if count > 0 {
            *counts.entry((*child).to_owned()).or_default() += count;
        }
    }
    Ok(counts.into_iter().collect())
}

/// Deletes everything that depends on row `key` of `table` (not the row itself), depth first.
/// Returns the number of rows deleted (or cleared) per table.
pub fn delete_dependents(
    conn: &mut DbConnection,
    table: &str,
    key: &str,
) -> Result<BTreeMap<String, i64>, DbError> {
    let mut deleted = BTreeMap::new();
    delete_dependents_into(conn, table, key, &mut deleted)?;
    Ok(deleted)
}

fn delete_dependents_into(
    conn: &mut DbConnection,
    table: &str,
    key: &str,
    deleted: &mut BTreeMap<String, i64>,
) -> Result<(), DbError> {
    let p = placeholder(conn);
    for (child, column, _, on_delete) in RELATIONS
        .iter()
        .filter(|(_, _, parent, _)| *parent == table)
    {
        match on_delete {
            OnDelete::Clear => {
                let count = diesel::sql_query(format!(
                    "UPDATE {child} SET {column} = NULL WHERE {column} = {p}"
                ))
                .bind::<Text, _>(key)
                .execute(conn)?;
                if count > 0 {
                    *deleted
                        .entry(format!("{child}.{column} cleared"))
                        .or_default() += count as i64;
                }
            }
            OnDelete::Delete => {
                if let Some(child_key) = key_column(child) {
                    let keys: Vec<KeyRow> = diesel::sql_query(format!(
                        "SELECT {child_key} AS key FROM {child} WHERE {column} = {p}"
                    ))
                    .bind::<Text, _>(key)
                    .load(conn)?;
                    for row in &keys {
                        delete_dependents_into(conn, child, &row.key, deleted)?;
                    }
                }
                let count = diesel::sql_query(format!("DELETE FROM {child} WHERE {column} = {p}"))
                    .bind::<Text, _>(key)
                    .execute(conn)?;
                if count > 0 {
                    *deleted.entry((*child).to_owned()).or_default() += count as i64;
                }
            }
        }
    }
    Ok(())
}

fn placeholder(conn: &DbConnection) -> &'static str {
    match conn {
        DbConnection::Postgres(_) => "$1",
        DbConnection::Sqlite(_) => "?",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use diesel::Connection;

    use super::*;

    #[derive(QueryableByName)]
    struct ForeignKey {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = BigInt)]
        seq: i64,
        #[diesel(sql_type = Text)]
        table: String,
        #[diesel(sql_type = Text)]
        from: String,
    }

    /// The relations above are a hand copy of the migrations' foreign keys: every foreign key of
    /// the schema (by its first column) is here, and nothing else is.
    #[test]
    fn the_relations_are_the_schemas_foreign_keys() {
        let scratch = diesel::SqliteConnection::establish(":memory:").unwrap();
        let mut conn = DbConnection::Sqlite(scratch);
        crate::db::run_migrations(&mut conn).unwrap();
        let mut schema = BTreeSet::new();
        for table in crate::db::introspect::table_names(&mut conn).unwrap() {
            let keys: Vec<ForeignKey> = diesel::sql_query(format!(
                "SELECT id, seq, \"table\", \"from\" FROM pragma_foreign_key_list('{table}')"
            ))
            .load(&mut conn)
            .unwrap();
            let mut seen = BTreeSet::new();
            for key in keys.iter().filter(|k| k.seq == 0) {
                if seen.insert(key.id) {
                    schema.insert((table.clone(), key.from.clone(), key.table.clone()));
                }
            }
        }
        let relations: BTreeSet<(String, String, String)> = RELATIONS
            .iter()
            .map(|(child, column, parent, _)| {
                (
                    (*child).to_owned(),
                    (*column).to_owned(),
                    (*parent).to_owned(),
                )
            })
            .collect();
        let missing: Vec<_> = schema.difference(&relations).collect();
        let extra: Vec<_> = relations.difference(&schema).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "foreign keys cascade.rs does not know: {missing:?}; relations the schema does not have: {extra:?}"
        );
    }
}
