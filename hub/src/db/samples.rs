//! Sample tables (DESIGN §3.2): one row per device per timestamp, written in batches that skip rows
//! already stored, so replaying the same samples changes nothing.

use std::collections::BTreeMap;

use diesel::prelude::*;
use solarhub_proto::contract::{Field, battery, cell, inverter, meter, pack};

use super::{DbConnection, DbError, schema};

/// Rows per INSERT statement: well under both backends' bind-parameter limits for the widest table.
pub const INSERT_BATCH_ROWS: usize = 500;

/// What every sample table has: a device, a time, and writes that skip stored keys.
pub trait SampleRow: Sized + PartialEq + serde::Serialize {
    /// The table's name.
    const TABLE: &'static str;
    fn device_id(&self) -> &str;
    fn ts(&self) -> i64;
    /// The group retention deletes the row's table by: its system, or for battery units and
    /// cells its pack.
    fn retention_group(&self) -> &str;
    /// Inserts `rows`, skipping any whose (device, ts) is already stored. Returns how many were new.
    fn insert_new(conn: &mut DbConnection, rows: &[Self]) -> Result<usize, DbError>;
    /// Every stored row, in (device, ts) order (for checks and exports).
    fn all(conn: &mut DbConnection) -> Result<Vec<Self>, DbError>;
    /// The stored rows of `devices` with ts in [from, to].
    fn stored(
        conn: &mut DbConnection,
        devices: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<Self>, DbError>;
}

/// Postgres: rows that are all new go in by binary `COPY` (parsing and planning a 500-row
/// `INSERT` cost more than the rows, ingest bench); `COPY` knows no `ON CONFLICT`, so it runs in a
/// savepoint, and when some row is already stored the savepoint is rolled back and the rows are
/// inserted skipping those. Evaluates to the number of rows written.
macro_rules! copy_or_insert {
    ($pg:expr, $table:ident, $batch:expr) => {{
        use diesel::Connection as _;
        let copied = $pg.transaction(|pg| {
            diesel::copy_from(schema::$table::table)
                .from_insertable($batch)
                .execute(pg)
        });
        match copied {
            Ok(copied) => copied,
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => diesel::insert_into(schema::$table::table)
                .values($batch)
                .on_conflict_do_nothing()
                .execute($pg)?,
            Err(error) => return Err(error.into()),
        }
    }};
}

macro_rules! sample_row {
    ($row:ty, $table:ident, $device:ident, $group:ident, $insert:ident) => {
        /// Inserts `rows`, skipping any whose (device, ts) is already stored. Returns how many were new.
        pub fn $insert(conn: &mut DbConnection, rows: &[$row]) -> Result<usize, DbError> {
            let mut inserted = 0;
            for batch in rows.chunks(INSERT_BATCH_ROWS) {
                // `MultiBackend` has no ON CONFLICT clause, so the statement is built per backend.
                inserted += match conn {
                    DbConnection::Postgres(pg) => copy_or_insert!(pg, $table, batch),
                    // One prepared single-row statement, reused from diesel's cache, where a
                    // multi-row statement is parsed anew for every batch.
                    DbConnection::Sqlite(sqlite) => {
                        let mut inserted = 0;
                        for row in batch {
                            inserted += diesel::insert_into(schema::$table::table)
                                .values(row)
                                .on_conflict_do_nothing()
                                .execute(sqlite)?;
                        }
                        inserted
                    }
                };
            }
            Ok(inserted)
        }

        impl SampleRow for $row {
            const TABLE: &'static str = stringify!($table);
            fn device_id(&self) -> &str {
                &self.$device
            }
            fn ts(&self) -> i64 {
                self.ts
            }
            fn retention_group(&self) -> &str {
                &self.$group
            }
            fn insert_new(conn: &mut DbConnection, rows: &[Self]) -> Result<usize, DbError> {
                $insert(conn, rows)
            }
            fn all(conn: &mut DbConnection) -> Result<Vec<Self>, DbError> {
                use schema::$table::dsl as t;
                Ok(t::$table
                    .order((t::$device, t::ts))
                    .select(<$row>::as_select())
                    .load(conn)?)
            }
            fn stored(
                conn: &mut DbConnection,
                devices: &[String],
                from: i64,
                to: i64,
            ) -> Result<Vec<Self>, DbError> {
                use schema::$table::dsl as t;
                Ok(t::$table
                    .filter(t::$device.eq_any(devices))
                    .filter(t::ts.ge(from).and(t::ts.le(to)))
                    .select(<$row>::as_select())
                    .load(conn)?)
            }
        }
    };
}

/// What a sample column holds, and so how it is kept beyond the raw samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An instantaneous value (power, voltage, SOC, temperature): its 5-minute mean is kept.
    Measured,
    /// A lifetime counter: its highest reading of each 5 minutes is kept (the energy of any span
    /// is a difference of two of them).
    Counter,
    /// A value kept only as long as the raw samples: per-phase values, mode codes, the counters a
    /// device restarts every day.
    Detail,
    /// A status word or event counter, reported as text; kept only raw.
    Text,
}

/// How Home Assistant shows a column (the MQTT bridge declares a sensor for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    pub label: &'static str,
    pub device_class: &'static str,
    /// The name the bridge publishes it under, when not the column's (a pack's `soc_pct` is
    /// published as `battery_soc_pct`, as the bridge always has: Home Assistant keys its history
    /// on that name).
    pub published: Option<&'static str>,
}

/// One value column of a sample table: named after the contract's field (whose unit it has), what
/// it holds, and whether Home Assistant is told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub unit: &'static str,
    pub kind: Kind,
    pub shown: Option<Shown>,
}

/// The unit of contract field `name` in `lists`; does not compile when the contract has no such
/// field (a column is always one of the contract's fields).
const fn contract_unit(lists: &[&[Field]], name: &str) -> &'static str {
    let mut l = 0;
    while l < lists.len() {
        let mut i = 0;
        while i < lists[l].len() {
            if same(lists[l][i].name, name) {
                return lists[l][i].unit;
            }
            i += 1;
        }
        l += 1;
    }
    panic!("a sample column that is not a contract field")
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A reading's values as ingest receives them: numbers, and text (status words, event counters).
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    pub numbers: &'a BTreeMap<String, f64>,
    pub text: &'a BTreeMap<String, String>,
}

impl Values<'_> {
    /// Values of a part that reports numbers only (a cell).
    pub fn numbers(numbers: &BTreeMap<String, f64>) -> Values<'_> {
        static NO_TEXT: BTreeMap<String, String> = BTreeMap::new();
        Values {
            numbers,
            text: &NO_TEXT,
        }
    }
}

/// A column's Rust type: how it is taken from a reading, and read back as a number.
pub trait ColumnValue: Sized {
    fn take(values: Values<'_>, name: &str) -> Option<Self>;
    fn number(value: &Option<Self>) -> Option<f64>;
}

impl ColumnValue for f64 {
    fn take(values: Values<'_>, name: &str) -> Option<f64> {
        values.numbers.get(name).copied()
    }
    fn number(value: &Option<f64>) -> Option<f64> {
        *value
    }
}

/// Mode codes and counts: the number rounded.
impl ColumnValue for i32 {
    fn take(values: Values<'_>, name: &str) -> Option<i32> {
        f64::take(values, name).map(|v| v.round() as i32)
    }
    fn number(value: &Option<i32>) -> Option<f64> {
        value.map(f64::from)
    }
}

/// Event counters: text, decimal or 0x-hex.
impl ColumnValue for i64 {
    fn take(values: Values<'_>, name: &str) -> Option<i64> {
        let value = values.text.get(name)?;
        match value
            .strip_prefix("0x")
            .or_else(|| value.strip_prefix("0X"))
        {
            Some(hex) => i64::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        }
    }
    fn number(value: &Option<i64>) -> Option<f64> {
        value.map(|v| v as f64)
    }
}

/// Status words, as the device reports them.
impl ColumnValue for String {
    fn take(values: Values<'_>, name: &str) -> Option<String> {
        values.text.get(name).cloned()
    }
    fn number(_: &Option<String>) -> Option<f64> {
        None
    }
}

macro_rules! shown {
    () => {
        None
    };
    ($label:literal $class:literal $($published:ident)?) => {
        Some(Shown {
            label: $label,
            device_class: $class,
            published: published!($($published)?),
        })
    };
}

macro_rules! published {
    () => {
        None
    };
    ($published:ident) => {
        Some(stringify!($published))
    };
}

/// Declares a sample table of readings: its row type (ids, then one `Option` per value column),
/// its [`Column`]s, filling a row from a reading's values, reading a column back as a number, and
/// the table's writes and reads ([`SampleRow`]). Every other list of a table's columns (ingest,
/// 5-minute aggregates, retention, the MQTT sensors) is made from this one.
macro_rules! sample_table {
    (
        $(#[$doc:meta])*
        $row:ident in $table:ident (device $device:ident, group $group:ident, $insert:ident)
        fields $($list:path),+;
        ids { $($id:ident: $id_ty:ty),* $(,)? }
        values { $($col:ident: $ty:ty, $kind:ident $(, $label:literal $class:literal $(as $published:ident)?)?;)* }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Insertable, Queryable, Selectable, serde::Serialize)]
        #[diesel(table_name = schema::$table, treat_none_as_default_value = false)]
        pub struct $row {
            $(pub $id: $id_ty,)*
            $(pub $col: Option<$ty>,)*
        }

        impl $row {
            /// The contract's lists of the fields the table's columns are.
            const FIELDS: &'static [&'static [Field]] = &[$($list),+];

            /// The table's value columns, in the table's order.
            pub const COLUMNS: &'static [Column] = &[$(Column {
                name: stringify!($col),
                unit: contract_unit(Self::FIELDS, stringify!($col)),
                kind: Kind::$kind,
                shown: shown!($($label $class $($published)?)?),
            }),*];

            /// The row with every value column taken from `values` (absent ones stay `None`).
            pub fn with_values(mut self, values: Values<'_>) -> $row {
                $(self.$col = <$ty as ColumnValue>::take(values, stringify!($col));)*
                self
            }

            /// The value of column `name` as a number (`None` for text, unknown names and values
            /// not reported).
            pub fn number(&self, name: &str) -> Option<f64> {
                match name {
                    $(stringify!($col) => <$ty as ColumnValue>::number(&self.$col),)*
                    _ => None,
                }
            }
        }

        sample_row!($row, $table, $device, $group, $insert);
    };
}

sample_table! {
    /// An inverter's reading (`energy_samples`).
    EnergySample in energy_samples (device inverter_id, group system_id, insert_energy_samples)
    fields inverter::ALL;
    ids { inverter_id: String, ts: i64, array_id: Option<String>, system_id: String }
    values {
        pv_power_w: f64, Measured, "PV power" "power";
        load_power_w: f64, Measured, "Load power" "power";
        grid_power_w: f64, Measured, "Grid power" "power";
        battery_power_w: f64, Measured, "Battery power" "power";
        battery_soc_pct: f64, Measured, "Battery SOC" "battery";
        battery_voltage_v: f64, Measured;
        battery_current_a: f64, Measured;
        inverter_mode: i32, Detail;
        inverter_temp_c: f64, Measured, "Temperature" "temperature";
        pv_energy_today_wh: f64, Detail;
        pv_energy_total_wh: f64, Counter;
        load_energy_today_wh: f64, Detail;
        load_energy_total_wh: f64, Counter;
        grid_import_today_wh: f64, Detail;
        grid_import_total_wh: f64, Counter;
        grid_export_today_wh: f64, Detail;
        grid_export_total_wh: f64, Counter;
        battery_charge_today_wh: f64, Detail;
        battery_charge_total_wh: f64, Counter;
        battery_discharge_today_wh: f64, Detail;
        battery_discharge_total_wh: f64, Counter;
    }
}

sample_table! {
    /// A meter's reading (`meter_samples`).
    MeterSample in meter_samples (device meter_id, group system_id, insert_meter_samples)
    fields meter::ALL;
    ids { meter_id: String, ts: i64, system_id: String, array_id: Option<String> }
    values {
        power_w: f64, Measured, "Power" "power";
        voltage_v: f64, Measured, "Voltage" "voltage";
        current_a: f64, Measured;
        frequency_hz: f64, Measured, "Frequency" "frequency";
        power_factor: f64, Measured;
        import_total_wh: f64, Counter;
        export_total_wh: f64, Counter;
        energy_total_kwh: f64, Counter;
        l1_voltage_v: f64, Detail;
        l2_voltage_v: f64, Detail;
        l3_voltage_v: f64, Detail;
        l1_current_a: f64, Detail;
        l2_current_a: f64, Detail;
        l3_current_a: f64, Detail;
        l1_power_w: f64, Detail;
        l2_power_w: f64, Detail;
        l3_power_w: f64, Detail;
    }
}

sample_table! {
    /// A battery pack's reading (`battery_bank_samples`).
    BatteryBankSample in battery_bank_samples (device pack_id, group system_id, insert_battery_bank_samples)
    fields pack::ALL;
    ids {
        pack_id: String,
        ts: i64,
        battery_array_id: Option<String>,
        system_id: String,
        adapter_id: Option<String>,
    }
    values {
        voltage_v: f64, Measured, "Voltage" "voltage";
        current_a: f64, Measured, "Current" "current";
        power_w: f64, Measured, "Power" "power";
        temperature_c: f64, Measured, "Temperature" "temperature";
        soc_pct: f64, Measured, "Battery SOC" "battery" as battery_soc_pct;
        soh_pct: f64, Measured;
        batteries_count: i32, Detail;
        cells_per_battery: i32, Detail;
    }
}

sample_table! {
    /// One battery of a pack's reading (`battery_unit_samples`; its hourly aggregates are
    /// declared in `db::aggregates`).
    BatteryUnitSample in battery_unit_samples (device battery_id, group pack_id, insert_battery_unit_samples)
    fields battery::ALL, battery::TEXT;
    ids {
        battery_id: String,
        ts: i64,
        pack_id: String,
        battery_array_id: Option<String>,
        system_id: String,
        adapter_id: Option<String>,
    }
    values {
        voltage_v: f64, Measured;
        current_a: f64, Measured;
        temperature_c: f64, Measured;
        soc_pct: f64, Measured;
        soh_pct: f64, Measured;
        basic_st: String, Text;
        volt_st: String, Text;
        current_st: String, Text;
        temp_st: String, Text;
        soh_st: String, Text;
        coul_st: String, Text;
        heater_st: String, Text;
        bat_events: i64, Text;
        power_events: i64, Text;
        sys_events: i64, Text;
    }
}

sample_table! {
    /// One cell of a battery's reading (`battery_cell_samples`).
    BatteryCellSample in battery_cell_samples (device cell_id, group pack_id, insert_battery_cell_samples)
    fields cell::ALL, battery::TEXT;
    ids {
        cell_id: String,
        ts: i64,
        battery_id: String,
        pack_id: String,
        battery_array_id: Option<String>,
        system_id: String,
        adapter_id: Option<String>,
    }
    values {
        voltage_v: f64, Measured;
        temperature_c: f64, Measured;
        soc_pct: f64, Measured;
        volt_st: String, Text;
        temp_st: String, Text;
    }
}

/// An inverter array's combined values as the live sampler computed them (`array_samples`; not a
/// reading, so not declared from the contract).
#[derive(Debug, Clone, Default, PartialEq, Insertable, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = schema::array_samples, treat_none_as_default_value = false)]
pub struct ArraySample {
    pub array_id: String,
    pub ts: i64,
    pub system_id: String,
    pub pv_power_w: Option<f64>,
    pub load_power_w: Option<f64>,
    pub grid_power_w: Option<f64>,
    pub battery_power_w: Option<f64>,
    pub battery_soc_pct: Option<f64>,
    pub soc_source: Option<String>,
    pub battery_voltage_v: Option<f64>,
    pub battery_current_a: Option<f64>,
}

sample_row!(
    ArraySample,
    array_samples,
    array_id,
    system_id,
    insert_array_samples
);

/// The ingest bench's baseline: `rows` written as plainly as each backend allows, in one
/// transaction, without the hub and without skipping stored rows — one binary `COPY` on Postgres,
/// one prepared single-row `INSERT` after another on SQLite. Not used by the hub.
pub fn write_energy_samples_plainly(
    conn: &mut DbConnection,
    rows: &[EnergySample],
) -> Result<usize, DbError> {
    use diesel::Connection as _;
    Ok(match conn {
        DbConnection::Postgres(pg) => pg.transaction(|pg| {
            diesel::copy_from(schema::energy_samples::table)
                .from_insertable(rows)
                .execute(pg)
        })?,
        DbConnection::Sqlite(sqlite) => sqlite.transaction(|sqlite| {
            let mut written = 0;
            for row in rows {
                written += diesel::insert_into(schema::energy_samples::table)
                    .values(row)
                    .execute(sqlite)?;
            }
            diesel::QueryResult::Ok(written)
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills a row of `T` from a reading that has every declared column (numbers `i + 1`, text
    /// `"<i + 1>"`), and answers each column back as a number.
    fn round_trip<T: Default>(
        columns: &[Column],
        with_values: fn(T, Values<'_>) -> T,
        number: fn(&T, &str) -> Option<f64>,
    ) {
        let mut numbers = BTreeMap::new();
        let mut text = BTreeMap::new();
        for (i, column) in columns.iter().enumerate() {
            let value = (i + 1) as f64;
            if column.kind == Kind::Text {
                text.insert(column.name.to_owned(), format!("{value}"));
            } else {
                numbers.insert(column.name.to_owned(), value);
            }
        }
        let row = with_values(
            T::default(),
            Values {
                numbers: &numbers,
                text: &text,
            },
        );
        for (i, column) in columns.iter().enumerate() {
            // Status words are text, no number; event counters are text that is one.
            let status_word = column.kind == Kind::Text && !column.name.ends_with("_events");
            let expected = (!status_word).then_some((i + 1) as f64);
            assert_eq!(number(&row, column.name), expected, "{}", column.name);
        }
        assert_eq!(number(&row, "no_such_column"), None);
    }

    #[test]
    fn every_declared_column_is_taken_from_a_reading_and_read_back() {
        round_trip(
            EnergySample::COLUMNS,
            EnergySample::with_values,
            EnergySample::number,
        );
        round_trip(
            MeterSample::COLUMNS,
            MeterSample::with_values,
            MeterSample::number,
        );
        round_trip(
            BatteryBankSample::COLUMNS,
            BatteryBankSample::with_values,
            BatteryBankSample::number,
        );
        round_trip(
            BatteryUnitSample::COLUMNS,
            BatteryUnitSample::with_values,
            BatteryUnitSample::number,
        );
        round_trip(
            BatteryCellSample::COLUMNS,
            BatteryCellSample::with_values,
            BatteryCellSample::number,
        );
    }

    /// A field the contract gains is stored: every contract field of a device is a column of its
    /// table, except the ones named here with the reason they are not.
    #[test]
    fn every_contract_field_has_a_column() {
        let not_stored = [
            // The rating a collector reports for the plausibility checks; not a measurement.
            inverter::RATED_POWER_W,
        ];
        for (columns, fields) in [
            (EnergySample::COLUMNS, inverter::ALL),
            (MeterSample::COLUMNS, meter::ALL),
            (BatteryBankSample::COLUMNS, pack::ALL),
            (BatteryUnitSample::COLUMNS, battery::ALL),
            (BatteryUnitSample::COLUMNS, battery::TEXT),
            (BatteryCellSample::COLUMNS, cell::ALL),
        ] {
            for field in fields.iter().filter(|f| !not_stored.contains(&f.name)) {
                assert!(
                    columns.iter().any(|c| c.name == field.name),
                    "contract field {} has no sample column",
                    field.name
                );
            }
        }
    }
}
