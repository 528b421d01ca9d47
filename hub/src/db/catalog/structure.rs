//! Loading a system's structure (its devices and attachments) in a fixed number of queries,
//! whatever its size, and the batteries and cells ingest creates as they first report.

use diesel::prelude::*;

use super::*;

/// The packs with these ids (for the parent ids of batteries, cells and pack adapters).
pub fn packs_by_id(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<Vec<domain::BatteryPack>, DbError> {
    let rows: Vec<battery_packs::Row> = schema::battery_packs::table
        .filter(schema::battery_packs::pack_id.eq_any(ids))
        .select(battery_packs::Row::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(battery_packs::Row::into_domain)
        .collect())
}

pub fn batteries_by_id(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<Vec<domain::Battery>, DbError> {
    let rows: Vec<batteries::Row> = schema::batteries::table
        .filter(schema::batteries::battery_id.eq_any(ids))
        .select(batteries::Row::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(batteries::Row::into_domain).collect())
}

/// Every catalog row of one system (or of all systems), one query per table whatever the number of
/// devices: the rows `GetConfig` turns into a tree.
pub fn load_installations(
    conn: &mut DbConnection,
    system: Option<&str>,
) -> Result<(Vec<domain::System>, Installation), DbError> {
    load_installations_with(conn, system, true)
}

/// The structure of one system only (system, arrays, inverters, battery arrays, attachments,
/// packs, meters): what the rollups need, in 7 queries.
pub fn load_structure(
    conn: &mut DbConnection,
    system: &str,
) -> Result<(Vec<domain::System>, Installation), DbError> {
    load_installations_with(conn, Some(system), false)
}

fn load_installations_with(
    conn: &mut DbConnection,
    system: Option<&str>,
    everything: bool,
) -> Result<(Vec<domain::System>, Installation), DbError> {
    let Some(system) = system else {
        let (_, installation, systems) = load_catalog(conn)?;
        return Ok((systems, installation));
    };
    let systems: Vec<systems::Row> = schema::systems::table
        .filter(schema::systems::system_id.eq(system))
        .select(systems::Row::as_select())
        .load(conn)?;
    let arrays: Vec<arrays::Row> = schema::arrays::table
        .filter(schema::arrays::system_id.eq(system))
        .select(arrays::Row::as_select())
        .load(conn)?;
    let inverters: Vec<inverters::Row> = schema::inverters::table
        .filter(schema::inverters::system_id.eq(system))
        .select(inverters::Row::as_select())
        .load(conn)?;
    let battery_arrays: Vec<battery_arrays::Row> = schema::battery_arrays::table
        .filter(schema::battery_arrays::system_id.eq(system))
        .select(battery_arrays::Row::as_select())
        .load(conn)?;
    let attachments: Vec<self::battery_array_attachments::Row> =
        schema::battery_array_attachments::table
            .filter(schema::battery_array_attachments::system_id.eq(system))
            .select(self::battery_array_attachments::Row::as_select())
            .load(conn)?;
    let packs: Vec<battery_packs::Row> = schema::battery_packs::table
        .filter(schema::battery_packs::system_id.eq(system))
        .select(battery_packs::Row::as_select())
        .load(conn)?;
    let system_packs = schema::battery_packs::table
        .filter(schema::battery_packs::system_id.eq(system))
        .select(schema::battery_packs::pack_id);
    let batteries: Vec<batteries::Row> = if everything {
        schema::batteries::table
            .filter(schema::batteries::pack_id.eq_any(system_packs))
            .select(batteries::Row::as_select())
            .load(conn)?
    } else {
        Vec::new()
    };
    let system_batteries = schema::batteries::table
        .filter(
            schema::batteries::pack_id.eq_any(
                schema::battery_packs::table
                    .filter(schema::battery_packs::system_id.eq(system))
                    .select(schema::battery_packs::pack_id),
            ),
        )
        .select(schema::batteries::battery_id);
    let cells: Vec<battery_cells::Row> = if everything {
        schema::battery_cells::table
            .filter(schema::battery_cells::battery_id.eq_any(system_batteries))
            .select(battery_cells::Row::as_select())
            .load(conn)?
    } else {
        Vec::new()
    };
    let meters: Vec<meters::Row> = schema::meters::table
        .filter(schema::meters::system_id.eq(system))
        .select(meters::Row::as_select())
        .load(conn)?;
    let pack_adapters: Vec<self::battery_pack_adapters::Row> = if !everything {
        Vec::new()
    } else {
        schema::battery_pack_adapters::table
            .filter(
                schema::battery_pack_adapters::pack_id.eq_any(
                    schema::battery_packs::table
                        .filter(schema::battery_packs::system_id.eq(system))
                        .select(schema::battery_packs::pack_id),
                ),
            )
            .select(self::battery_pack_adapters::Row::as_select())
            .load(conn)?
    };
    // Adapters belong to a system through the device they read.
    let adapters: Vec<adapters::Row> = if !everything {
        Vec::new()
    } else {
        schema::adapters::table
            .filter(
                schema::adapters::device_id
                    .eq_any(
                        schema::inverters::table
                            .filter(schema::inverters::system_id.eq(system))
                            .select(schema::inverters::inverter_id.nullable()),
                    )
                    .or(schema::adapters::device_id.eq_any(
                        schema::meters::table
                            .filter(schema::meters::system_id.eq(system))
                            .select(schema::meters::meter_id.nullable()),
                    ))
                    .or(schema::adapters::device_id.eq_any(
                        schema::battery_packs::table
                            .filter(schema::battery_packs::system_id.eq(system))
                            .select(schema::battery_packs::pack_id.nullable()),
                    )),
            )
            .select(adapters::Row::as_select())
            .load(conn)?
    };
    Ok((
        systems.into_iter().map(systems::Row::into_domain).collect(),
        Installation {
            system: None,
            arrays: arrays.into_iter().map(arrays::Row::into_domain).collect(),
            adapters: adapters
                .into_iter()
                .map(adapters::Row::into_domain)
                .collect(),
            inverters: inverters
                .into_iter()
                .map(inverters::Row::into_domain)
                .collect(),
            battery_arrays: battery_arrays
                .into_iter()
                .map(battery_arrays::Row::into_domain)
                .collect(),
            attachments: attachments
                .into_iter()
                .map(self::battery_array_attachments::Row::into_domain)
                .collect(),
            packs: packs
                .into_iter()
                .map(battery_packs::Row::into_domain)
                .collect(),
            batteries: batteries
                .into_iter()
                .map(batteries::Row::into_domain)
                .collect(),
            cells: cells
                .into_iter()
                .map(battery_cells::Row::into_domain)
                .collect(),
            meters: meters.into_iter().map(meters::Row::into_domain).collect(),
            pack_adapters: pack_adapters
                .into_iter()
                .map(self::battery_pack_adapters::Row::into_domain)
                .collect(),
        },
    ))
}

/// Adds batteries and cells that are not there yet (ingest names them as packs report them); rows
/// that exist are left alone, so concurrent batches may both try.
pub fn ensure_batteries_and_cells(
    conn: &mut DbConnection,
    batteries: &[domain::Battery],
    cells: &[domain::BatteryCell],
) -> Result<(), DbError> {
    let now = now_ms();
    let battery_rows: Vec<batteries::Row> = batteries
        .iter()
        .map(|b| batteries::Row::from_domain(b, now, now))
        .collect();
    let cell_rows: Vec<battery_cells::Row> = cells
        .iter()
        .map(|c| battery_cells::Row::from_domain(c, now, now))
        .collect();
    for row in &battery_rows {
        match conn {
            DbConnection::Postgres(pg) => diesel::insert_into(schema::batteries::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::insert_into(schema::batteries::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(sqlite)?,
        };
    }
    for row in &cell_rows {
        match conn {
            DbConnection::Postgres(pg) => diesel::insert_into(schema::battery_cells::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::insert_into(schema::battery_cells::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(sqlite)?,
        };
    }
    Ok(())
}

/// The packs of a battery array.
pub fn pack_ids_of(
    conn: &mut DbConnection,
    battery_array_id: &str,
) -> Result<Vec<String>, DbError> {
    use schema::battery_packs::dsl as p;
    Ok(p::battery_packs
        .filter(p::battery_array_id.eq(battery_array_id))
        .select(p::pack_id)
        .order(p::pack_id)
        .load(conn)?)
}
