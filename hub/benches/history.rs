//! A year of hourly rows through the API against the database's own answer (DESIGN §8: at most
//! 1.5x): `HistoryService/GetHourlyEnergy` for a year of a system's hours (8784 rows), called over
//! real gRPC with a reader token, against a plain typed `SELECT` of the same rows on the same
//! database in the same run. Both are timed 200 times, interleaved; the figures are medians, the
//! p99s are printed too.
//!
//! `cargo bench -p solarhub-hub --bench history`; Postgres too when `SOLARHUB_TEST_DATABASE_URL`
//! names a server (a database is created for the run and dropped after it).

#[path = "support/report.rs"]
mod report;

use std::time::{Duration, Instant};

use report::{Figure, Target};
use solarhub_hub::db::rollups::{self, RollupRows, SystemHour};
use solarhub_hub::db::{self, Database, DatabaseUrl, DbConnection, admin, in_transaction};
use solarhub_hub::server::{Security, ServeOptions};
use solarhub_proto::tonic;
use solarhub_proto::v1::history_service_client::HistoryServiceClient;
use solarhub_proto::v1::{EnergyHistoryRequest, TimeRange};

const HOUR_MS: i64 = 3_600_000;
const YEAR_START: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
const HOURS: i64 = 8784;
const READS: usize = 200;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    run("sqlite", DatabaseUrl::Sqlite(dir.path().join("bench.db")))?;
    if let Ok(admin_url) = std::env::var("SOLARHUB_TEST_DATABASE_URL") {
        let name = format!("solarhub_bench_history_{}", std::process::id());
        let url = admin::create_postgres_database(&admin_url, &name)?;
        let result = run("postgres", DatabaseUrl::Postgres(url));
        admin::drop_postgres_database(&admin_url, &name)?;
        result?;
    } else {
        println!("postgres: skipped (SOLARHUB_TEST_DATABASE_URL is not set)");
    }
    Ok(())
}

fn year_of_hours() -> Vec<SystemHour> {
    (0..HOURS)
        .map(|h| SystemHour {
            system_id: "home".into(),
            hour_start: (h % 24) as i32,
            bucket_start: YEAR_START + h * HOUR_MS,
            bucket_end: YEAR_START + (h + 1) * HOUR_MS,
            date: format!("2024-{:02}-{:02}", 1 + h / 24 / 31 % 12, 1 + h / 24 % 28),
            solar_kwh: Some(1.5),
            load_kwh: Some(0.9),
            battery_charge_kwh: Some(0.2),
            battery_discharge_kwh: Some(0.1),
            grid_import_kwh: Some(0.3),
            grid_export_kwh: Some(0.4),
            avg_pv_power_w: Some(1500.0),
            peak_pv_power_w: Some(3100.0),
            avg_load_power_w: Some(900.0),
            peak_load_power_w: Some(2400.0),
            avg_grid_power_w: Some(-100.0),
            peak_grid_import_w: Some(1200.0),
            peak_grid_export_w: Some(2000.0),
            avg_battery_power_w: Some(-100.0),
            soc_min_pct: Some(40.0),
            soc_avg_pct: Some(55.0),
            soc_max_pct: Some(70.0),
            sample_count: 360,
            coverage_pct: 100.0,
            updated_at: 0,
            source: rollups::FROM_SAMPLES.to_owned(),
        })
        .collect()
}

/// The baseline: the same rows, selected and loaded into their row type, nothing else.
fn select(conn: &mut DbConnection) -> anyhow::Result<usize> {
    Ok(rollups::system_hours(conn, "home", YEAR_START, YEAR_START + HOURS * HOUR_MS)?.len())
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort();
    times[((times.len() - 1) as f64 * p).round() as usize]
}

fn run(backend: &str, url: DatabaseUrl) -> anyhow::Result<()> {
    let database = Database::open(url)?;
    db::run_migrations(&mut *database.get()?)?;
    solarhub_hub::demo::install(&database, "bench", None)?;
    in_transaction(&mut *database.get()?, |conn| {
        rollups::insert_rows(
            conn,
            &RollupRows {
                system_hours: year_of_hours(),
                ..RollupRows::default()
            },
        )
    })?;
    let token = solarhub_hub::auth::principals::create(
        &mut *database.get()?,
        "dashboard",
        solarhub_hub::auth::Role::Reader,
        None,
        None,
    )?;
    let bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
        format!("Bearer {}", token.token.expose()).parse()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let channel = runtime.block_on(async {
        let listener = solarhub_hub::grpc::bind("127.0.0.1:0".parse()?).await?;
        let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let options = ServeOptions {
            security: Security {
                auth: true,
                tls: None,
            },
            ..ServeOptions::default()
        };
        tokio::spawn(solarhub_hub::server::serve_with(
            database.clone(),
            listener,
            options,
            std::future::pending(),
        ));
        anyhow::Ok(
            tonic::transport::Channel::from_shared(url)?
                .connect()
                .await?,
        )
    })?;
    let mut client =
        HistoryServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        })
        .max_decoding_message_size(64 << 20);
    let request = EnergyHistoryRequest {
        system_id: "home".into(),
        range: Some(TimeRange {
            from: Some(solarhub_proto::time::timestamp(YEAR_START)),
            to: Some(solarhub_proto::time::timestamp(
                YEAR_START + HOURS * HOUR_MS,
            )),
        }),
        ..EnergyHistoryRequest::default()
    };
    let mut conn = database.get()?;
    let mut api = Vec::with_capacity(READS);
    let mut raw = Vec::with_capacity(READS);
    // Warm-up: the connection, the token cache, the pages.
    for _ in 0..5 {
        select(&mut conn)?;
        runtime.block_on(client.get_hourly_energy(request.clone()))?;
    }
    for _ in 0..READS {
        let began = Instant::now();
        let answer = runtime.block_on(client.get_hourly_energy(request.clone()))?;
        api.push(began.elapsed());
        anyhow::ensure!(answer.get_ref().buckets.len() == HOURS as usize);
        let began = Instant::now();
        let rows = select(&mut conn)?;
        raw.push(began.elapsed());
        anyhow::ensure!(rows == HOURS as usize);
    }
    // The hub's own read of the answer's rows (the columns it carries), in-process.
    let mut own = Vec::with_capacity(50);
    let home = rollups::EnergyScope::System("home".into());
    for _ in 0..50 {
        let began = Instant::now();
        let mut rows = Vec::with_capacity(HOURS as usize);
        rollups::energy_history(
            &mut conn,
            &home,
            rollups::Level::Hours,
            YEAR_START,
            YEAR_START + HOURS * HOUR_MS,
            |view| rows.push(view),
        )?;
        own.push(began.elapsed());
        anyhow::ensure!(rows.len() == HOURS as usize);
    }
    println!(
        "{backend}: the hub's read of the answer's columns, in-process: p50 {:.2?}",
        percentile(&mut own, 0.5)
    );
    // What protobuf alone costs for this answer, in-process: the floor the API adds to the read.
    let answer = runtime
        .block_on(client.get_hourly_energy(request.clone()))?
        .into_inner();
    let mut codec = Vec::with_capacity(50);
    for _ in 0..50 {
        use prost::Message as _;
        let began = Instant::now();
        let bytes = answer.encode_to_vec();
        let decoded = solarhub_proto::v1::EnergyHistory::decode(bytes.as_slice())?;
        codec.push(began.elapsed());
        anyhow::ensure!(decoded.buckets.len() == HOURS as usize);
    }
    println!(
        "{backend}: the answer is {} bytes; encoding and decoding it in-process takes p50 {:.2?}",
        prost::Message::encoded_len(&answer),
        percentile(&mut codec, 0.5)
    );
    let (api_p50, raw_p50) = (percentile(&mut api, 0.5), percentile(&mut raw, 0.5));
    println!(
        "{backend}: a year of hourly rows ({HOURS}), {READS} reads each: API p50 {api_p50:.2?} p99 {:.2?}; SELECT p50 {raw_p50:.2?} p99 {:.2?}",
        percentile(&mut api, 0.99),
        percentile(&mut raw, 0.99)
    );
    Figure {
        name: &format!("history.year_of_hours.{backend}"),
        figure: api_p50.as_secs_f64() * 1000.0,
        baseline: raw_p50.as_secs_f64() * 1000.0,
        unit: "ms",
        baseline_is: "a typed SELECT of the same rows",
        target: Target::AtMost(1.5),
    }
    .print();
    Ok(())
}
