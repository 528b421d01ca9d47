//! `serve`: a real gRPC server on 127.0.0.1:0 with health and reflection, on both backends, and
//! the binary upgrading an existing app's database before it serves.

use crate::common;
use crate::legacy_fixture;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::TestDb;
use solarhub_hub::grpc;
use solarhub_proto::tonic::transport::Channel;
use solarhub_proto::v1::GetServerInfoRequest;
use solarhub_proto::v1::server_info_service_client::ServerInfoServiceClient;
use tokio::sync::oneshot;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub(crate) async fn list_services_v1(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream_once(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

pub(crate) async fn list_services_v1alpha(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream_once(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

/// A request stream of one message.
fn tokio_stream_once<T: Send + 'static>(item: T) -> tokio_stream::Iter<std::vec::IntoIter<T>> {
    tokio_stream::iter(vec![item])
}

fn serves_health_reflection_and_server_info(db: TestDb) {
    let database = db.migrated();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let listener = grpc::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(solarhub_hub::server::serve(
            database,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();

        let info = ServerInfoServiceClient::new(channel.clone())
            .get_server_info(GetServerInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        let backend = match db.url {
            solarhub_hub::db::DatabaseUrl::Postgres(_) => "postgres",
            solarhub_hub::db::DatabaseUrl::Sqlite(_) => "sqlite",
        };
        assert_eq!(info.database_backend, backend);
        assert_eq!(info.applied_migrations.len(), common::migration_count());
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        // The library's default runs no retention: every table shows, kept forever, empty.
        assert_eq!(
            info.sample_tables.len(),
            solarhub_hub::db::retention::SampleTable::ALL.len()
        );
        assert!(
            info.sample_tables
                .iter()
                .all(|t| t.keep.is_none() && t.oldest.is_none() && t.deleted_before.is_none()),
            "{:?}",
            info.sample_tables
        );

        let health = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: "solarhub.v1.ServerInfoService".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.status(), ServingStatus::Serving);

        for services in [
            list_services_v1(channel.clone()).await,
            list_services_v1alpha(channel.clone()).await,
        ] {
            for wanted in ["solarhub.v1.ServerInfoService", "grpc.health.v1.Health"] {
                assert!(
                    services.iter().any(|s| s == wanted),
                    "{wanted} missing from {services:?}"
                );
            }
        }

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    });
}

on_both_backends!(serves_health_reflection_and_server_info);

#[test]
fn serve_on_an_existing_app_database_backs_it_up_upgrades_it_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solar.db");
    let expected = legacy_fixture::build(
        &file,
        &legacy_fixture::KARACHI,
        legacy_fixture::Flavour::Current,
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        legacy_fixture::config_yaml(&legacy_fixture::KARACHI),
    )
    .unwrap();

    let mut child = common::hub_binary()
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .args([
            "--database-url",
            file.to_str().unwrap(),
            "serve",
            "--without-auth",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let mut serving = false;
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("serving gRPC") {
            serving = true;
            break;
        }
    }
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(serving, "the hub never served:\n{}", seen.join("\n"));
    assert!(stdout.contains("backup:"), "{stdout}");
    // The fixture's samples are from June 2025, older than the default year, but the upgrade
    // brought them: `serve` says they are kept, and how to delete them if the user wants.
    let kept = seen.iter().find(|line| {
        line.contains("imported samples older than the retention period are kept")
            && line.contains("table=\"energy_samples\"")
    });
    let kept = kept.unwrap_or_else(|| panic!("no word on imported samples:\n{}", seen.join("\n")));
    assert!(
        kept.contains(&format!("rows={}", expected.energy.len())),
        "{kept}"
    );
    assert!(
        kept.contains("--retention-imported energy_samples=PERIOD"),
        "{kept}"
    );
    assert!(
        !seen
            .iter()
            .any(|line| line.contains("go at the first retention pass")),
        "serve said imported samples go:\n{}",
        seen.join("\n")
    );
    assert!(
        stdout.contains(&format!(
            "energy_samples: {} read = {} inserted + {} exact duplicates + 0 conflicts + 0 unplaceable",
            expected.energy_rows_in_source,
            expected.energy.len(),
            expected.energy_rows_in_source - expected.energy.len()
        )),
        "{stdout}"
    );

    let backups: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("solar.db.legacy-backup-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let mut conn = solarhub_hub::db::DatabaseUrl::Sqlite(file)
        .connect()
        .unwrap();
    assert_eq!(
        solarhub_hub::db::introspect::row_count(&mut conn, "energy_samples").unwrap() as usize,
        expected.energy.len()
    );
    // The old app's samples got rollups of their own, compared with the old app's own figures
    // (the fixture's hourly_energy and pv_daily rows are made up, so they differ).
    assert!(stdout.contains("rollups of home:"), "{stdout}");
    assert!(
        stdout.contains(
            "the old app's figures: 1 hours compared, 1 differ; 1 days compared, 1 differ"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("powdrive1 2025-06-01 12:00 solar: 3.250 kWh in the old app"),
        "{stdout}"
    );
    let hours = solarhub_hub::db::rollups::load_rows(
        &mut conn,
        "home",
        i64::MIN,
        i64::MAX,
        solarhub_hub::db::rollups::Level::Hours,
    )
    .unwrap();
    let days = solarhub_hub::db::rollups::load_rows(
        &mut conn,
        "home",
        i64::MIN,
        i64::MAX,
        solarhub_hub::db::rollups::Level::Days,
    )
    .unwrap();
    assert!(!hours.inverter_hours.is_empty() && !days.system_days.is_empty());
    // Every migrated sample lands in exactly one hour and one day.
    let in_hours: i64 = hours.inverter_hours.iter().map(|h| h.sample_count).sum();
    let in_days: i64 = days.inverter_days.iter().map(|d| d.sample_count).sum();
    assert_eq!(in_hours as usize, expected.energy.len());
    assert_eq!(in_days, in_hours);
}
