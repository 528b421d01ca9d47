//! Who may do what (#13, DESIGN §7): every RPC against every kind of caller, a collector bound to
//! its id, TLS and client certificates, start-up refusals, no token in clear anywhere, revocation
//! across hubs, and the message size limit. Real tonic clients against hubs on 127.0.0.1:0.

use crate::common::{self, RunningHub, TestDb};

use std::collections::{BTreeMap, BTreeSet};

use solarhub_hub::auth::{Role, principals};
use solarhub_hub::server::{Security, ServeOptions};
use solarhub_proto::prost::Message;
use solarhub_proto::tonic::transport::Channel;
use solarhub_proto::tonic::{Code, Request};

/// What a method needs, as the issue states it (not as the hub computes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Open,
    Read,
    Write,
    Ingest,
    /// `ControlService` reads: readers, operators, admins.
    ControlRead,
    /// `ControlService` changes: operators and admins.
    Control,
}
use Needs::{Control, ControlRead, Ingest, Read, Write};

/// Every RPC of the hub's own services: what it needs, and what it answers an empty request from
/// a caller allowed to make it. A new RPC without a row here fails `auth_matrix`.
const MATRIX: &[(&str, Needs, Code)] = {
    use Code::*;
    &[
        // Who did what is for admins, though the method's name reads.
        ("solarhub.v1.AuditService/ListAuditEvents", Write, Ok),
        ("solarhub.v1.SystemService/ListSystems", Read, Ok),
        ("solarhub.v1.SystemService/GetSystem", Read, NotFound),
        (
            "solarhub.v1.SystemService/CreateSystem",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.SystemService/UpdateSystem",
            Write,
            InvalidArgument,
        ),
        ("solarhub.v1.SystemService/DeleteSystem", Write, NotFound),
        (
            "solarhub.v1.InverterArrayService/ListInverterArrays",
            Read,
            Ok,
        ),
        (
            "solarhub.v1.InverterArrayService/GetInverterArray",
            Read,
            NotFound,
        ),
        (
            "solarhub.v1.InverterArrayService/CreateInverterArray",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.InverterArrayService/UpdateInverterArray",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.InverterArrayService/DeleteInverterArray",
            Write,
            NotFound,
        ),
        ("solarhub.v1.InverterService/ListInverters", Read, Ok),
        ("solarhub.v1.InverterService/GetInverter", Read, NotFound),
        (
            "solarhub.v1.InverterService/CreateInverter",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.InverterService/UpdateInverter",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.InverterService/DeleteInverter",
            Write,
            NotFound,
        ),
        (
            "solarhub.v1.BatteryArrayService/ListBatteryArrays",
            Read,
            Ok,
        ),
        (
            "solarhub.v1.BatteryArrayService/GetBatteryArray",
            Read,
            NotFound,
        ),
        (
            "solarhub.v1.BatteryArrayService/CreateBatteryArray",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.BatteryArrayService/UpdateBatteryArray",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.BatteryArrayService/DeleteBatteryArray",
            Write,
            NotFound,
        ),
        (
            "solarhub.v1.BatteryArrayAttachmentService/ListBatteryArrayAttachments",
            Read,
            Ok,
        ),
        (
            "solarhub.v1.BatteryArrayAttachmentService/GetBatteryArrayAttachment",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.BatteryArrayAttachmentService/CreateBatteryArrayAttachment",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.BatteryArrayAttachmentService/UpdateBatteryArrayAttachment",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.BatteryArrayAttachmentService/DeleteBatteryArrayAttachment",
            Write,
            InvalidArgument,
        ),
        ("solarhub.v1.BatteryPackService/ListBatteryPacks", Read, Ok),
        (
            "solarhub.v1.BatteryPackService/GetBatteryPack",
            Read,
            NotFound,
        ),
        (
            "solarhub.v1.BatteryPackService/CreateBatteryPack",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.BatteryPackService/UpdateBatteryPack",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.BatteryPackService/DeleteBatteryPack",
            Write,
            NotFound,
        ),
        ("solarhub.v1.BatteryService/ListBatteries", Read, Ok),
        ("solarhub.v1.BatteryService/GetBattery", Read, NotFound),
        (
            "solarhub.v1.BatteryService/CreateBattery",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.BatteryService/UpdateBattery",
            Write,
            InvalidArgument,
        ),
        ("solarhub.v1.BatteryService/DeleteBattery", Write, NotFound),
        ("solarhub.v1.BatteryCellService/ListBatteryCells", Read, Ok),
        (
            "solarhub.v1.BatteryCellService/GetBatteryCell",
            Read,
            NotFound,
        ),
        (
            "solarhub.v1.BatteryCellService/CreateBatteryCell",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.BatteryCellService/UpdateBatteryCell",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.BatteryCellService/DeleteBatteryCell",
            Write,
            NotFound,
        ),
        ("solarhub.v1.MeterService/ListMeters", Read, Ok),
        ("solarhub.v1.MeterService/GetMeter", Read, NotFound),
        (
            "solarhub.v1.MeterService/CreateMeter",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.MeterService/UpdateMeter",
            Write,
            InvalidArgument,
        ),
        ("solarhub.v1.MeterService/DeleteMeter", Write, NotFound),
        ("solarhub.v1.AdapterService/ListAdapters", Read, Ok),
        ("solarhub.v1.AdapterService/GetAdapter", Read, NotFound),
        (
            "solarhub.v1.AdapterService/CreateAdapter",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.AdapterService/UpdateAdapter",
            Write,
            InvalidArgument,
        ),
        ("solarhub.v1.AdapterService/DeleteAdapter", Write, NotFound),
        ("solarhub.v1.AdapterTypeService/ListAdapterTypes", Read, Ok),
        (
            "solarhub.v1.AdapterTypeService/GetAdapterType",
            Read,
            NotFound,
        ),
        (
            "solarhub.v1.AdapterTypeService/CreateAdapterType",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.AdapterTypeService/UpdateAdapterType",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.AdapterTypeService/DeleteAdapterType",
            Write,
            NotFound,
        ),
        (
            "solarhub.v1.BatteryPackAdapterService/ListBatteryPackAdapters",
            Read,
            Ok,
        ),
        (
            "solarhub.v1.BatteryPackAdapterService/GetBatteryPackAdapter",
            Read,
            NotFound,
        ),
        (
            "solarhub.v1.BatteryPackAdapterService/CreateBatteryPackAdapter",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.BatteryPackAdapterService/UpdateBatteryPackAdapter",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.BatteryPackAdapterService/DeleteBatteryPackAdapter",
            Write,
            NotFound,
        ),
        ("solarhub.v1.ConfigService/GetConfig", Read, Ok),
        (
            "solarhub.v1.HistoryService/GetHourlyEnergy",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.HistoryService/GetDailyEnergy",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.HistoryService/GetBatteryHourly",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.HistoryService/GetBatteryDaily",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.HistoryService/GetMeterHourly",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.HistoryService/GetMeterDaily",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.HistoryService/GetFiveMinuteSeries",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.HistoryService/GetCellHourly",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.HistoryService/GetBatteryUnitHourly",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.HistoryService/Recompute",
            Write,
            InvalidArgument,
        ),
        (
            "solarhub.v1.CollectorService/Register",
            Ingest,
            InvalidArgument,
        ),
        ("solarhub.v1.CollectorService/StreamTelemetry", Ingest, Ok),
        (
            "solarhub.v1.CollectorService/SendBatch",
            Ingest,
            InvalidArgument,
        ),
        ("solarhub.v1.CollectorService/ListCollectors", Read, Ok),
        (
            "solarhub.v1.LiveService/GetSystemNow",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.LiveService/GetInverterArrayNow",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.LiveService/GetBatteryArrayNow",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.LiveService/GetBatteryPackNow",
            Read,
            InvalidArgument,
        ),
        (
            "solarhub.v1.LiveService/GetInverterNow",
            Read,
            InvalidArgument,
        ),
        ("solarhub.v1.LiveService/GetMeterNow", Read, InvalidArgument),
        ("solarhub.v1.LiveService/WatchSystem", Read, InvalidArgument),
        ("solarhub.v1.ServerInfoService/GetServerInfo", Read, Ok),
        (
            "solarhub.v1.ControlService/GetSettings",
            ControlRead,
            InvalidArgument,
        ),
        ("solarhub.v1.ControlService/ListCommands", ControlRead, Ok),
        (
            "solarhub.v1.ControlService/GetCommand",
            ControlRead,
            InvalidArgument,
        ),
        (
            "solarhub.v1.ControlService/SetSettings",
            Control,
            InvalidArgument,
        ),
        (
            "solarhub.v1.ControlService/RevertCommand",
            Control,
            InvalidArgument,
        ),
        (
            "solarhub.v1.ControlService/CancelCommand",
            Control,
            InvalidArgument,
        ),
        ("solarhub.v1.DataQualityService/ListDeviceQuality", Read, Ok),
        (
            "solarhub.v1.DataQualityService/GetDeviceQuality",
            Read,
            InvalidArgument,
        ),
    ]
};

/// Health and reflection: open to everyone.
const OPEN: &[(&str, Code)] = &[
    ("grpc.health.v1.Health/Check", Code::Ok),
    ("grpc.health.v1.Health/Watch", Code::Ok),
    (
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Code::Ok,
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Code::Ok,
    ),
];

/// The kinds of caller the matrix tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    NoToken,
    Malformed,
    Unknown,
    Revoked,
    Reader,
    Admin,
    CollectorA,
    CollectorB,
    Operator,
}

const EVERYONE: [Who; 9] = [
    Who::NoToken,
    Who::Malformed,
    Who::Unknown,
    Who::Revoked,
    Who::Reader,
    Who::Admin,
    Who::CollectorA,
    Who::CollectorB,
    Who::Operator,
];

/// The tokens of one test's principals, made on the database directly (as `token create` does).
pub(crate) struct Tokens {
    pub admin: String,
    pub reader: String,
    pub a: String,
    pub b: String,
    pub revoked: String,
    pub operator: String,
}

impl Tokens {
    pub(crate) fn create(database: &solarhub_hub::db::Database) -> Tokens {
        let mut conn = database.get().unwrap();
        let mut make = |name: &str, role: Role, collector: Option<&str>| {
            principals::create(&mut conn, name, role, collector, None)
                .unwrap()
                .token
                .expose()
                .to_owned()
        };
        let tokens = Tokens {
            admin: make("ops", Role::Admin, None),
            reader: make("dashboard", Role::Reader, None),
            a: make("site-a", Role::Collector, Some("a")),
            b: make("site-b", Role::Collector, Some("b")),
            revoked: make("old-laptop", Role::Admin, None),
            operator: make("shift-lead", Role::Operator, None),
        };
        principals::revoke(&mut conn, "old-laptop").unwrap();
        tokens
    }

    fn header(&self, who: Who) -> Option<String> {
        let bearer = |token: &str| Some(format!("Bearer {token}"));
        match who {
            Who::NoToken => None,
            Who::Malformed => Some(format!("Token {}", self.admin)),
            // Well formed, never issued.
            Who::Unknown => bearer(&format!("shub_{}", "0".repeat(64))),
            Who::Revoked => bearer(&self.revoked),
            Who::Reader => bearer(&self.reader),
            Who::Admin => bearer(&self.admin),
            Who::CollectorA => bearer(&self.a),
            Who::CollectorB => bearer(&self.b),
            Who::Operator => bearer(&self.operator),
        }
    }
}

/// The installation fixture with powdrive1 run by collector `a` and grid_meter_1 by `b`.
pub(crate) fn install_two_sites(database: &solarhub_hub::db::Database) {
    common::site::install_fixture(&mut database.get().unwrap(), |installation| {
        for adapter in &mut installation.adapters {
            adapter.collector_id = match adapter.adapter_id.as_str() {
                "powdrive1.adapter" => Some("a".into()),
                "grid_meter_1.adapter" => Some("b".into()),
                _ => None,
            };
        }
    });
}

pub(crate) fn with_auth() -> ServeOptions {
    ServeOptions {
        security: Security {
            auth: true,
            tls: None,
        },
        array_samples_every: None,
        rollup_every: None,
        metrics_listen: None,
        mqtt: None,
        retention: None,
        connections: Default::default(),
        http: None,
    }
}

/// One method as reflection describes it.
#[derive(Debug, Clone)]
struct Method {
    path: String,
    client_streaming: bool,
    server_streaming: bool,
}

/// Every method of every service in these descriptor sets, by service name.
fn methods(sets: &[&[u8]]) -> BTreeMap<String, Vec<Method>> {
    let mut services = BTreeMap::new();
    for bytes in sets {
        let set = solarhub_proto::prost_types::FileDescriptorSet::decode(*bytes).unwrap();
        for file in set.file {
            for service in &file.service {
                let name = format!("{}.{}", file.package(), service.name());
                let methods = service
                    .method
                    .iter()
                    .map(|m| Method {
                        path: format!("{name}/{}", m.name()),
                        client_streaming: m.client_streaming(),
                        server_streaming: m.server_streaming(),
                    })
                    .collect();
                services.insert(name, methods);
            }
        }
    }
    services
}

/// Calls `method` with an empty request (or an empty request stream) and returns the code it
/// ends with: the call's status, or for a stream, the status it ends with.
pub(crate) async fn call_code(
    channel: Channel,
    method: &str,
    streaming: (bool, bool),
    header: Option<&str>,
) -> Code {
    use solarhub_proto::tonic::client::Grpc;
    let mut grpc = Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path: http::uri::PathAndQuery = format!("/{method}").parse().unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    fn with<T>(mut request: Request<T>, header: Option<&str>) -> Request<T> {
        if let Some(header) = header {
            request
                .metadata_mut()
                .insert("authorization", header.parse().unwrap());
        }
        request
    }
    let with_header = |request: Request<()>| with(request, header);
    let ended = |result: Result<Option<()>, solarhub_proto::tonic::Status>| match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    match streaming {
        (false, false) => match grpc.unary(with_header(Request::new(())), path, codec).await {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        },
        (false, true) => {
            match grpc
                .server_streaming(with_header(Request::new(())), path, codec)
                .await
            {
                // An endless stream (a watch) that started is an answer.
                Ok(mut stream) => match tokio::time::timeout(
                    std::time::Duration::from_millis(300),
                    stream.get_mut().message(),
                )
                .await
                {
                    Ok(result) => ended(result),
                    Err(_) => Code::Ok,
                },
                Err(status) => status.code(),
            }
        }
        (true, _) => {
            let request = with(Request::new(tokio_stream::empty::<()>()), header);
            match grpc.streaming(request, path, codec).await {
                Ok(mut stream) => ended(stream.get_mut().message().await),
                Err(status) => status.code(),
            }
        }
    }
}

/// What `who` must get from a method that `needs` this and answers `answer` when allowed.
fn expected(who: Who, needs: Needs, answer: Code) -> Code {
    if needs == Needs::Open {
        return answer;
    }
    match (who, needs) {
        (Who::NoToken | Who::Malformed | Who::Unknown | Who::Revoked, _) => Code::Unauthenticated,
        (Who::Admin, _) => answer,
        (Who::Reader, Read | ControlRead) => answer,
        (Who::Operator, Control | ControlRead) => answer,
        (Who::CollectorA | Who::CollectorB, Ingest) => answer,
        _ => Code::PermissionDenied,
    }
}

/// Row counts of every table, and the catalog as rows: what a refused call must not change.
pub(crate) fn snapshot(database: &solarhub_hub::db::Database) -> String {
    let mut conn = database.get().unwrap();
    let mut counts = BTreeMap::new();
    // The audit trail records refused calls: that is its purpose, not a change a call made.
    for table in solarhub_hub::db::schema_tables()
        .unwrap()
        .into_iter()
        .filter(|table| table != "audit_events")
    {
        let count = solarhub_hub::db::introspect::row_count(&mut conn, &table).unwrap();
        counts.insert(table, count);
    }
    let catalog = solarhub_hub::db::catalog::load_catalog(&mut conn).unwrap();
    format!("{counts:?}\n{catalog:?}")
}

fn auth_matrix(db: TestDb) {
    let hub = RunningHub::start_with(&db, with_auth());
    install_two_sites(&hub.database);
    let tokens = Tokens::create(&hub.database);
    let before = snapshot(&hub.database);

    let rows: BTreeMap<&str, (Needs, Code)> = MATRIX
        .iter()
        .map(|(path, needs, answer)| (*path, (*needs, *answer)))
        .chain(
            OPEN.iter()
                .map(|(path, answer)| (*path, (Needs::Open, *answer))),
        )
        .collect();
    let described = methods(&[
        solarhub_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]);
    let mut registered: BTreeSet<String> = hub
        .runtime
        .block_on(crate::serve::list_services_v1(hub.channel.clone()))
        .into_iter()
        .collect();
    registered.extend(
        hub.runtime
            .block_on(crate::serve::list_services_v1alpha(hub.channel.clone())),
    );
    // Reflection does not list itself; the hub serves both versions of it.
    registered.extend([
        "grpc.reflection.v1.ServerReflection".to_owned(),
        "grpc.reflection.v1alpha.ServerReflection".to_owned(),
    ]);
    let mut called = BTreeSet::new();
    let mut wrong = Vec::new();
    for service in &registered {
        let methods = described
            .get(service)
            .unwrap_or_else(|| panic!("the hub serves {service}, which no descriptor describes"));
        for method in methods {
            let Some((needs, answer)) = rows.get(method.path.as_str()) else {
                panic!("{} has no row in the auth matrix: add one", method.path);
            };
            called.insert(method.path.clone());
            for who in EVERYONE {
                let header = tokens.header(who);
                let got = hub.runtime.block_on(call_code(
                    hub.channel.clone(),
                    &method.path,
                    (method.client_streaming, method.server_streaming),
                    header.as_deref(),
                ));
                let want = expected(who, *needs, *answer);
                if got != want {
                    wrong.push(format!(
                        "{} as {who:?}: got {got:?}, expected {want:?}",
                        method.path
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let stale: Vec<_> = rows
        .keys()
        .filter(|path| !called.contains(**path))
        .collect();
    assert!(
        stale.is_empty(),
        "rows for methods the hub does not serve: {stale:?}"
    );
    assert!(called.len() >= 80, "only {} methods called", called.len());
    assert_eq!(
        snapshot(&hub.database),
        before,
        "a call changed the database"
    );
}

on_both_backends!(auth_matrix);

/// `message` with `authorization: Bearer token`.
pub(crate) fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Calls that would change or reveal a lot, made by everyone who may not make them, with real
/// payloads; then once by the admin, to show the refusals were refusals.
fn refused_writes_change_nothing(db: TestDb) {
    use solarhub_proto::v1::*;
    let hub = RunningHub::start_with(&db, with_auth());
    install_two_sites(&hub.database);
    let tokens = Tokens::create(&hub.database);
    let before = snapshot(&hub.database);
    let channel = hub.channel.clone();
    let refused_by = [
        ("reader", tokens.reader.clone()),
        ("collector a", tokens.a.clone()),
        ("revoked admin", tokens.revoked.clone()),
    ];
    hub.runtime.block_on(async {
        let mut systems = system_service_client::SystemServiceClient::new(channel.clone());
        let mut adapters = adapter_service_client::AdapterServiceClient::new(channel.clone());
        let mut history = history_service_client::HistoryServiceClient::new(channel.clone());
        let mut collectors = collector_service_client::CollectorServiceClient::new(channel.clone());
        for (who, token) in &refused_by {
            let delete = DeleteSystemRequest {
                system_id: "home".into(),
                cascade: true,
            };
            let code = systems
                .delete_system(authed(delete, token))
                .await
                .unwrap_err()
                .code();
            assert!(
                matches!(code, Code::PermissionDenied | Code::Unauthenticated),
                "{who}: {code:?}"
            );
            let create = CreateSystemRequest {
                system: Some(System {
                    system_id: "intruder".into(),
                    name: "x".into(),
                    timezone: "UTC".into(),
                    ..System::default()
                }),
            };
            assert!(
                systems.create_system(authed(create, token)).await.is_err(),
                "{who}"
            );
            let delete = DeleteAdapterRequest {
                adapter_id: "powdrive1.adapter".into(),
                cascade: true,
            };
            assert!(
                adapters
                    .delete_adapter(authed(delete, token))
                    .await
                    .is_err(),
                "{who}"
            );
            let recompute = RecomputeRequest {
                system_id: "home".into(),
                range: None,
            };
            assert!(
                history.recompute(authed(recompute, token)).await.is_err(),
                "{who}"
            );
        }
        // A reader may not send readings, even for a device it can see.
        let batch = TelemetryBatch {
            command_results: Vec::new(),
            sent_at: None,
            polls: Vec::new(),
            collector_id: "a".into(),
            seq: 1,
            readings: vec![reading("powdrive1", "powdrive1.adapter", 0)],
        };
        let code = collectors
            .send_batch(authed(batch, &tokens.reader))
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::PermissionDenied);
        // Without any token at all.
        let code = systems
            .delete_system(DeleteSystemRequest {
                system_id: "home".into(),
                cascade: true,
            })
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::Unauthenticated);
    });
    assert_eq!(
        snapshot(&hub.database),
        before,
        "a refused call changed the database"
    );
    hub.runtime.block_on(async {
        let mut systems = system_service_client::SystemServiceClient::new(channel.clone());
        let delete = DeleteSystemRequest {
            system_id: "home".into(),
            cascade: true,
        };
        systems
            .delete_system(authed(delete, &tokens.admin))
            .await
            .unwrap();
    });
    assert_ne!(
        snapshot(&hub.database),
        before,
        "the admin's delete changed nothing"
    );
}

/// One inverter or meter reading, `minutes` after an hour well in the past.
fn reading(device: &str, adapter: &str, minutes: i64) -> solarhub_proto::v1::DeviceReading {
    let ts = chrono::Utc::now().timestamp_millis() - 3_600_000 + minutes * 60_000;
    let field = if device.starts_with("grid_meter") {
        "power_w"
    } else {
        "pv_power_w"
    };
    solarhub_proto::v1::DeviceReading {
        device_id: device.into(),
        adapter_id: adapter.into(),
        ts: Some(solarhub_proto::time::timestamp(ts)),
        fields: [(field.to_owned(), 1234.0)].into_iter().collect(),
        ..Default::default()
    }
}

pub(crate) fn count(database: &solarhub_hub::db::Database, table: &str) -> i64 {
    solarhub_hub::db::introspect::row_count(&mut database.get().unwrap(), table).unwrap()
}

/// Acceptance 2: collector A may act only as A; a batch from A with B's device stores A's
/// readings and none of B's, and the ack names B's.
fn collectors_act_only_as_themselves(db: TestDb) {
    use solarhub_proto::v1::collector_service_client::CollectorServiceClient;
    use solarhub_proto::v1::*;
    let hub = RunningHub::start_with(&db, with_auth());
    install_two_sites(&hub.database);
    let tokens = Tokens::create(&hub.database);
    hub.runtime.block_on(async {
        let mut client = CollectorServiceClient::new(hub.channel.clone());
        let register = |id: &str| RegisterRequest {
            collector_id: id.into(),
            version: "test".into(),
        };
        let refused = client
            .register(authed(register("b"), &tokens.a))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert_eq!(
            refused.message(),
            "collector site-a is bound to collector a and may not act as collector b"
        );
        let registered = client
            .register(authed(register("a"), &tokens.a))
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<_> = registered
            .assignments
            .iter()
            .map(|a| a.adapter_id.as_str())
            .collect();
        assert_eq!(ids, ["powdrive1.adapter"]);

        // A batch sent as B by A's token: refused whole, nothing stored.
        let as_b = TelemetryBatch {
            command_results: Vec::new(),
            sent_at: None,
            polls: Vec::new(),
            collector_id: "b".into(),
            seq: 1,
            readings: vec![reading("grid_meter_1", "grid_meter_1.adapter", 0)],
        };
        let code = client
            .send_batch(authed(as_b.clone(), &tokens.a))
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::PermissionDenied);
        let mut acks = client
            .stream_telemetry(authed(tokio_stream::iter(vec![as_b]), &tokens.a))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            acks.message().await.unwrap_err().code(),
            Code::PermissionDenied
        );

        // A's batch with B's meter in it: A's readings land, B's are refused by name.
        let mixed = TelemetryBatch {
            command_results: Vec::new(),
            sent_at: None,
            polls: Vec::new(),
            collector_id: "a".into(),
            seq: 1,
            readings: vec![
                reading("powdrive1", "powdrive1.adapter", 0),
                reading("grid_meter_1", "grid_meter_1.adapter", 0),
                reading("powdrive1", "powdrive1.adapter", 1),
            ],
        };
        let ack = client
            .send_batch(authed(mixed, &tokens.a))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ack.stored, 2);
        let refused: Vec<_> = ack.refused.iter().map(|r| r.device_id.as_str()).collect();
        assert_eq!(refused, ["grid_meter_1"]);
        assert!(
            ack.refused[0]
                .reason
                .contains("not assigned to collector a"),
            "{:?}",
            ack.refused
        );

        // B writes its own meter.
        let own = TelemetryBatch {
            command_results: Vec::new(),
            sent_at: None,
            polls: Vec::new(),
            collector_id: "b".into(),
            seq: 1,
            readings: vec![reading("grid_meter_1", "grid_meter_1.adapter", 2)],
        };
        let ack = client
            .send_batch(authed(own, &tokens.b))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((ack.stored, ack.refused.len()), (1, 0));
    });
    assert_eq!(count(&hub.database, "energy_samples"), 2);
    assert_eq!(
        count(&hub.database, "meter_samples"),
        1,
        "only B's own reading"
    );
}

/// `import-config --collector-id` assigns a file's adapters, an adapter block's own
/// `collector_id` wins, and importing the file again without the flag takes nothing away.
fn import_config_assigns_collectors(db: TestDb) {
    db.migrated();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    let text = include_str!("fixtures/installation.yaml").replacen(
        "    adapter:\n      type: iammeter\n",
        "    adapter:\n      type: iammeter\n      collector_id: b\n",
        1,
    );
    assert!(text.contains("collector_id: b"));
    std::fs::write(&file, text).unwrap();
    let import = |extra: &[&str]| {
        let output = common::hub_binary()
            .args(["--database-url", &db.url_arg(), "import-config"])
            .arg(&file)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let assigned = || -> BTreeMap<String, Option<String>> {
        let (_, installation, _) =
            solarhub_hub::db::catalog::load_catalog(&mut db.connect()).unwrap();
        installation
            .adapters
            .into_iter()
            .map(|a| (a.adapter_id, a.collector_id))
            .collect()
    };
    import(&["--collector-id", "a"]);
    let first = assigned();
    assert_eq!(first["grid_meter_1.adapter"].as_deref(), Some("b"));
    assert_eq!(first["powdrive1.adapter"].as_deref(), Some("a"));
    assert!(first.values().all(Option::is_some), "{first:?}");
    import(&[]);
    assert_eq!(
        assigned(),
        first,
        "a plain re-import took devices away from a collector"
    );

    let output = common::hub_binary()
        .args(["--database-url", &db.url_arg(), "import-config"])
        .arg(&file)
        .args(["--collector-id", "bad id"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--collector-id \"bad id\""), "{stderr}");
}

on_both_backends!(
    refused_writes_change_nothing,
    collectors_act_only_as_themselves,
    import_config_assigns_collectors
);

/// A CA, the hub's certificate (localhost, 127.0.0.1) and client certificates, as PEM files.
pub(crate) struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn generate() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "solarhub test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        write("ca.pem", ca_cert.pem());
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |name: &str, sans: &[&str], common_name: Option<&str>| {
            let key = KeyPair::generate().unwrap();
            let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
            let mut params = CertificateParams::new(sans).unwrap();
            if let Some(cn) = common_name {
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, cn);
            }
            let cert = params.signed_by(&key, &issuer).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        };
        leaf("hub", &["localhost", "127.0.0.1"], None);
        // Collector a named by a DNS SAN, collector b only by its subject CN.
        leaf("collector-a", &["a"], Some("ignored when a SAN is present"));
        leaf("collector-b", &[], Some("b"));
        Pki { dir }
    }

    pub(crate) fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn hub_tls(&self, client_ca: bool) -> solarhub_hub::auth::tls::TlsFiles {
        solarhub_hub::auth::tls::TlsFiles {
            cert: self.path("hub.pem"),
            key: self.path("hub.key"),
            client_ca: client_ca.then(|| self.path("ca.pem")),
        }
    }

    /// What a collector reads: the CA, optionally a client certificate, optionally a token.
    pub(crate) fn access(
        &self,
        url: &str,
        client: Option<&str>,
        token: Option<&str>,
    ) -> solarhub_collector::uplink::hub_access::HubAccess {
        let files = solarhub_collector::uplink::hub_access::AccessFiles {
            token_file: None,
            token: token.map(str::to_owned),
            ca_cert: Some(self.path("ca.pem")),
            client_cert: client.map(|c| self.path(&format!("{c}.pem"))),
            client_key: client.map(|c| self.path(&format!("{c}.key"))),
        };
        solarhub_collector::uplink::hub_access::HubAccess::load(url, &files).unwrap()
    }
}

/// `https://localhost:PORT` for a hub started by `RunningHub` (which names it by `http://`).
fn https(hub: &RunningHub) -> String {
    let port = hub.url.rsplit(':').next().unwrap();
    format!("https://localhost:{port}")
}

fn tls_options(pki: &Pki, client_ca: bool) -> ServeOptions {
    ServeOptions {
        security: Security {
            auth: true,
            tls: Some(pki.hub_tls(client_ca)),
        },
        ..with_auth()
    }
}

/// Acceptance 3, first half: the real collector streams to a TLS hub with its token, every
/// reading lands once; a plaintext client gets nowhere.
fn collector_streams_over_tls_exactly_once(db: TestDb) {
    use std::time::Duration;
    let pki = Pki::generate();
    let hub = RunningHub::start_with(&db, tls_options(&pki, false));
    let tokens = Tokens::create(&hub.database);
    let port = hub.runtime.block_on(common::site::simulated_gateway());
    common::site::assign_to_collector(&mut hub.database.get().unwrap(), "a", port, 0.3);
    let url = https(&hub);
    let config = solarhub_collector::uplink::UplinkConfig {
        access: pki.access(&url, None, Some(&tokens.a)),
        hubs: vec![url.clone()],
        collector_id: "a".into(),
        version: "test".into(),
        batch_max_readings: 3,
        batch_max_wait: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
        write_budget_per_day: solarhub_collector::control::DEFAULT_WRITE_BUDGET,
    };
    let outbox = tempfile::tempdir().unwrap();
    let readings = common::site::collect_until(&hub, config, outbox.path(), 4);
    common::site::assert_stored_once(&mut hub.database.get().unwrap(), &readings);
    // Plaintext to a TLS hub: no answer at all.
    let plain = hub.runtime.block_on(async {
        let channel = Channel::from_shared(hub.url.clone())
            .unwrap()
            .connect_lazy();
        solarhub_proto::v1::system_service_client::SystemServiceClient::new(channel)
            .list_systems(authed(Default::default(), &tokens.admin))
            .await
    });
    assert!(plain.is_err(), "a plaintext call to a TLS hub was answered");
}

/// Acceptance 3, second half: with `--client-ca`, no certificate, no connection; a certificate
/// names its collector and binds it like a token.
fn client_certificates_bind_collectors(db: TestDb) {
    use solarhub_proto::v1::*;
    use std::time::Duration;
    let pki = Pki::generate();
    let hub = RunningHub::start_with(&db, tls_options(&pki, true));
    install_two_sites(&hub.database);
    let tokens = Tokens::create(&hub.database);
    let url = https(&hub);
    let register = |id: &str| RegisterRequest {
        collector_id: id.into(),
        version: "test".into(),
    };
    hub.runtime.block_on(async {
        // No client certificate: the handshake fails, even with a valid token.
        let client =
            solarhub_collector::uplink::connect(&url, &pki.access(&url, None, Some(&tokens.admin)))
                .await;
        let refused = match client {
            Err(error) => error.to_string(),
            Ok(mut client) => client
                .register(register("a"))
                .await
                .expect_err("a call without a client certificate was answered")
                .to_string(),
        };
        assert!(!refused.is_empty());

        // Collector a's certificate (a DNS SAN), no token, not registered: a certificate signed
        // by the CA is not yet a principal.
        let mut a =
            solarhub_collector::uplink::connect(&url, &pki.access(&url, Some("collector-a"), None))
                .await
                .unwrap();
        let refused = a.register(register("a")).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        assert!(
            refused.message().contains("--certificate-subject a"),
            "{}",
            refused.message()
        );
        // Registered (`token create --role collector --collector-id a --certificate-subject a`):
        // a and only a.
        for (name, collector) in [("site-a-cert", "a"), ("site-b-cert", "b")] {
            principals::create(
                &mut hub.database.get().unwrap(),
                name,
                Role::Collector,
                Some(collector),
                Some(collector),
            )
            .unwrap();
        }
        // The refusal was cached with every other answer about a credential.
        tokio::time::sleep(
            solarhub_hub::auth::authenticator::CACHE_TTL + Duration::from_millis(200),
        )
        .await;
        let registered = a.register(register("a")).await.unwrap().into_inner();
        assert_eq!(registered.assignments[0].adapter_id, "powdrive1.adapter");
        let refused = a.register(register("b")).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(
            refused.message().contains("site-a-cert"),
            "{}",
            refused.message()
        );
        let batch = TelemetryBatch {
            command_results: Vec::new(),
            sent_at: None,
            polls: Vec::new(),
            collector_id: "a".into(),
            seq: 1,
            readings: vec![
                reading("powdrive1", "powdrive1.adapter", 0),
                reading("grid_meter_1", "grid_meter_1.adapter", 0),
            ],
        };
        let ack = a.send_batch(batch).await.unwrap().into_inner();
        assert_eq!((ack.stored, ack.refused.len()), (1, 1));

        // Collector b's certificate names it by CN only.
        let mut b =
            solarhub_collector::uplink::connect(&url, &pki.access(&url, Some("collector-b"), None))
                .await
                .unwrap();
        assert!(b.register(register("b")).await.is_ok());
        assert_eq!(
            b.register(register("a")).await.unwrap_err().code(),
            Code::PermissionDenied
        );

        // A's certificate with B's token: the two disagree, refused.
        let mut mixed = solarhub_collector::uplink::connect(
            &url,
            &pki.access(&url, Some("collector-a"), Some(&tokens.b)),
        )
        .await
        .unwrap();
        assert_eq!(
            mixed.register(register("b")).await.unwrap_err().code(),
            Code::PermissionDenied
        );

        // An admin's token over A's certificate is an admin: the certificate only opened the door.
        let channel = Channel::from_shared(url.clone())
            .unwrap()
            .tls_config(
                pki.access(&url, Some("collector-a"), None)
                    .tls()
                    .unwrap()
                    .clone(),
            )
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut systems = system_service_client::SystemServiceClient::new(channel.clone());
        let listed = systems
            .list_systems(authed(ListSystemsRequest::default(), &tokens.admin))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.systems.len(), 1);
        // The certificate alone is a collector, not a reader.
        let code = systems
            .list_systems(ListSystemsRequest::default())
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::PermissionDenied);

        // Revoking the certificate's principal stops the certificate, within the cache's time.
        principals::revoke(&mut hub.database.get().unwrap(), "site-a-cert").unwrap();
        tokio::time::sleep(
            solarhub_hub::auth::authenticator::CACHE_TTL + Duration::from_millis(500),
        )
        .await;
        let refused = a.register(register("a")).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    });
    assert_eq!(count(&hub.database, "energy_samples"), 1);
    assert_eq!(count(&hub.database, "meter_samples"), 0);
}

on_both_backends!(
    collector_streams_over_tls_exactly_once,
    client_certificates_bind_collectors
);

/// Acceptance 4: an unsafe exposure is refused before anything opens, in one line naming
/// `--insecure`, with a non-zero exit.
#[test]
fn unsafe_exposure_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let pki = Pki::generate();
    let run = |args: &[&str]| {
        common::hub_binary()
            .env("NO_COLOR", "1")
            .arg("--database-url")
            .arg(&db)
            .args(args)
            .output()
            .unwrap()
    };
    let cert = pki.path("hub.pem").display().to_string();
    let key = pki.path("hub.key").display().to_string();
    for (args, flag) in [
        (vec!["serve", "--listen", "0.0.0.0:50999"], "plaintext"),
        (
            vec![
                "serve",
                "--listen",
                "0.0.0.0:50999",
                "--without-auth",
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
            ],
            "--without-auth",
        ),
        (
            vec!["serve", "--listen", "0.0.0.0:50999", "--without-auth"],
            "--without-auth",
        ),
        (vec!["demo", "--listen", "0.0.0.0:50999"], "--without-auth"),
    ] {
        let output = run(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got:\n{stderr}");
        assert!(
            lines[0].starts_with("error: refusing"),
            "{args:?}: {stderr}"
        );
        assert!(
            lines[0].contains(flag) && lines[0].contains("--insecure"),
            "{args:?}: {stderr}"
        );
        assert!(
            !db.exists(),
            "{args:?}: the database was opened before the refusal"
        );
    }
}

/// Lines a child process writes to standard error, gathered as they come.
struct Captured {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Captured {
    fn spawn(child: &mut std::process::Child) -> (Captured, std::sync::mpsc::Receiver<String>) {
        use std::io::BufRead;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (found, address) = std::sync::mpsc::channel();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(at) = line.find("addr=") {
                    let addr = line[at + 5..].split_whitespace().next().unwrap_or_default();
                    let _ = found.send(addr.to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        (Captured { lines }, address)
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

/// Every text value of every table, for searching (SQLite: the file's bytes, WAL included).
fn database_text(db: &TestDb) -> String {
    use diesel::prelude::*;
    match &db.url {
        solarhub_hub::db::DatabaseUrl::Sqlite(path) => {
            let mut text = String::new();
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let file = format!("{}{suffix}", path.display());
                if let Ok(bytes) = std::fs::read(&file) {
                    text.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
            text
        }
        solarhub_hub::db::DatabaseUrl::Postgres(url) => {
            #[derive(QueryableByName)]
            struct Row {
                #[diesel(sql_type = diesel::sql_types::Text)]
                row: String,
            }
            let mut conn = diesel::PgConnection::establish(url).unwrap();
            let mut text = String::new();
            for table in solarhub_hub::db::schema_tables().unwrap() {
                let rows: Vec<Row> = diesel::sql_query(format!(
                    "SELECT row_to_json(t)::text AS row FROM \"{table}\" t"
                ))
                .load(&mut conn)
                .unwrap();
                for row in rows {
                    text.push_str(&row.row);
                    text.push('\n');
                }
            }
            text
        }
    }
}

/// Acceptance 5: tokens made by the CLI, used (and misused) against the real binary with debug
/// logging, then revoked and listed: no token in clear in the database, the logs or `token list`.
fn tokens_never_appear_in_clear(db: TestDb) {
    let cli = |args: &[&str]| {
        let output = common::hub_binary()
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .args(["--database-url", &db.url_arg()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?} ended with {:?}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        (
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    db.migrated();
    install_two_sites(&solarhub_hub::db::Database::open(db.url.clone()).unwrap());
    let mut logs = String::new();
    let mut make = |name: &str, role: &str, collector: Option<&str>| {
        let mut args = vec!["token", "create", "--name", name, "--role", role];
        if let Some(id) = collector {
            args.extend(["--collector-id", id]);
        }
        let (stdout, stderr) = cli(&args);
        logs.push_str(&stderr);
        let token = stdout.trim().to_owned();
        assert!(
            token.starts_with("shub_") && token.len() == 69,
            "{stdout:?}"
        );
        token
    };
    let admin = make("ops", "admin", None);
    let reader = make("dashboard", "reader", None);
    let a = make("site-a", "collector", Some("a"));
    let tokens = [admin.clone(), reader.clone(), a.clone()];

    let mut child = common::hub_binary()
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .args([
            "--database-url",
            &db.url_arg(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (captured, address) = Captured::spawn(&mut child);
    let addr = address
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the hub never served:\n{}", captured.text()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use solarhub_proto::v1::*;
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut systems = system_service_client::SystemServiceClient::new(channel.clone());
        let mut collectors = collector_service_client::CollectorServiceClient::new(channel.clone());
        systems
            .list_systems(authed(ListSystemsRequest::default(), &admin))
            .await
            .unwrap();
        systems
            .list_systems(authed(ListSystemsRequest::default(), &reader))
            .await
            .unwrap();
        // An audited write, a refused write, a refused register, a batch with a refusal in it.
        let create = CreateSystemRequest {
            system: Some(System {
                system_id: "cabin".into(),
                name: "Cabin".into(),
                timezone: "UTC".into(),
                ..System::default()
            }),
        };
        systems
            .create_system(authed(create.clone(), &admin))
            .await
            .unwrap();
        systems
            .create_system(authed(create, &reader))
            .await
            .unwrap_err();
        let register = RegisterRequest {
            collector_id: "b".into(),
            version: "t".into(),
        };
        collectors.register(authed(register, &a)).await.unwrap_err();
        let batch = TelemetryBatch {
            command_results: Vec::new(),
            sent_at: None,
            polls: Vec::new(),
            collector_id: "a".into(),
            seq: 1,
            readings: vec![
                reading("powdrive1", "powdrive1.adapter", 0),
                reading("grid_meter_1", "grid_meter_1.adapter", 0),
            ],
        };
        collectors.send_batch(authed(batch, &a)).await.unwrap();
        // A token sent the wrong way, and a token with one character changed.
        let mut request = Request::new(ListSystemsRequest::default());
        request
            .metadata_mut()
            .insert("authorization", format!("Token {admin}").parse().unwrap());
        systems.list_systems(request).await.unwrap_err();
        // One character changed (to another one: a token may end in `0` itself).
        let last = if admin.ends_with('0') { '1' } else { '0' };
        let altered = format!("{}{last}", &admin[..admin.len() - 1]);
        systems
            .list_systems(authed(ListSystemsRequest::default(), &altered))
            .await
            .unwrap_err();
    });
    let (_, stderr) = cli(&["token", "revoke", "dashboard"]);
    logs.push_str(&stderr);
    let (listed, stderr) = cli(&["token", "list"]);
    logs.push_str(&stderr);
    assert!(
        listed.contains("dashboard") && listed.contains("revoked"),
        "{listed}"
    );
    // Let the hub see the revocation with a call, then stop it.
    runtime.block_on(async {
        tokio::time::sleep(solarhub_hub::auth::authenticator::CACHE_TTL).await;
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let code = solarhub_proto::v1::system_service_client::SystemServiceClient::new(channel)
            .list_systems(authed(Default::default(), &reader))
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::Unauthenticated);
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    logs.push_str(&captured.text());
    assert!(
        logs.contains("solarhub::audit"),
        "the audit lines are in the logs"
    );
    assert!(
        logs.contains("principal=ops"),
        "writes are logged with the principal's name"
    );
    let stored = database_text(&db);
    assert!(
        stored.contains("site-a"),
        "the principals are in the database"
    );
    for token in &tokens {
        let secret = &token["shub_".len()..];
        for (place, text) in [
            ("the database", &stored),
            ("the logs", &logs),
            ("token list", &listed),
        ] {
            assert!(!text.contains(secret), "a token in clear in {place}");
        }
    }
}

/// Acceptance 6: a token revoked on the database is refused by every hub on it within 5 s, and
/// an open telemetry stream made with it ends.
fn revocation_reaches_every_hub(db: TestDb) {
    use solarhub_proto::v1::*;
    let first = RunningHub::start_with(&db, with_auth());
    let second = RunningHub::start_with(&db, with_auth());
    install_two_sites(&first.database);
    let tokens = Tokens::create(&first.database);
    let ask = |hub: &RunningHub| {
        hub.runtime.block_on(async {
            system_service_client::SystemServiceClient::new(hub.channel.clone())
                .list_systems(authed(ListSystemsRequest::default(), &tokens.admin))
                .await
                .map(|_| ())
                .map_err(|status| status.code())
        })
    };
    assert_eq!(ask(&first), Ok(()));
    assert_eq!(
        ask(&second),
        Ok(()),
        "the second hub knows the token (and caches it)"
    );
    // A stream opened on the second hub with collector a's token.
    let (batches, inbound) = tokio::sync::mpsc::channel::<TelemetryBatch>(4);
    let open_stream = |inbound: tokio::sync::mpsc::Receiver<TelemetryBatch>, token: &str| {
        second.runtime.block_on(async {
            collector_service_client::CollectorServiceClient::new(second.channel.clone())
                .stream_telemetry(authed(
                    tokio_stream::wrappers::ReceiverStream::new(inbound),
                    token,
                ))
                .await
                .unwrap()
                .into_inner()
        })
    };
    let mut acks = open_stream(inbound, &tokens.a);
    let batch = |seq: u64| TelemetryBatch {
        command_results: Vec::new(),
        sent_at: None,
        polls: Vec::new(),
        collector_id: "a".into(),
        seq,
        readings: vec![reading("powdrive1", "powdrive1.adapter", seq as i64)],
    };
    second.runtime.block_on(async {
        batches.send(batch(1)).await.unwrap();
        assert_eq!(acks.message().await.unwrap().unwrap().stored, 1);
    });
    // A reader watching a system on the second hub, and an idle telemetry stream of collector b.
    let mut watch = second.runtime.block_on(async {
        live_service_client::LiveServiceClient::new(second.channel.clone())
            .watch_system(authed(
                WatchSystemRequest {
                    system_id: "home".into(),
                },
                &tokens.reader,
            ))
            .await
            .unwrap()
            .into_inner()
    });
    let (_idle_batches, idle_inbound) = tokio::sync::mpsc::channel::<TelemetryBatch>(1);
    let mut idle_acks = open_stream(idle_inbound, &tokens.b);

    let revoked_at = std::time::Instant::now();
    for name in ["dashboard", "site-b"] {
        principals::revoke(&mut first.database.get().unwrap(), name).unwrap();
    }
    second.runtime.block_on(async {
        // Updates that were on their way may come first; then the end.
        let ended = loop {
            match tokio::time::timeout(std::time::Duration::from_secs(10), watch.message()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(other) => break other,
                Err(_) => panic!("the revoked reader's watch is still open after 10 s"),
            }
        };
        assert_eq!(ended.unwrap_err().code(), Code::Unauthenticated);
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), idle_acks.message())
            .await
            .expect("the revoked collector's idle stream is still open after 10 s");
        assert_eq!(ended.unwrap_err().code(), Code::Unauthenticated);
    });
    let streams_ended = revoked_at.elapsed();
    assert!(
        streams_ended < std::time::Duration::from_secs(5),
        "open streams of revoked tokens ended only after {streams_ended:?}"
    );

    let revoked_at = std::time::Instant::now();
    for name in ["ops", "site-a"] {
        principals::revoke(&mut first.database.get().unwrap(), name).unwrap();
    }
    let refused_within = loop {
        if ask(&second) == Err(Code::Unauthenticated) {
            break revoked_at.elapsed();
        }
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(10),
            "never refused"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        refused_within < std::time::Duration::from_secs(5),
        "the second hub refused the revoked token only after {refused_within:?}"
    );
    assert_eq!(ask(&first), Err(Code::Unauthenticated));
    // Collector a's stream ends on its own (it checks its token every 2 s, batch or not); a
    // batch sent after that is stored nowhere.
    second.runtime.block_on(async {
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), acks.message())
            .await
            .expect("the revoked collector's stream is still open after 10 s");
        assert_eq!(ended.unwrap_err().code(), Code::Unauthenticated);
        let _ = batches.send(batch(2)).await;
    });
    assert!(
        revoked_at.elapsed() < std::time::Duration::from_secs(5),
        "the stream ended only after {:?}",
        revoked_at.elapsed()
    );
    assert_eq!(
        count(&first.database, "energy_samples"),
        1,
        "nothing after the revocation"
    );
}

/// Acceptance 7: a 64 MiB batch is refused with RESOURCE_EXHAUSTED; the hub stays up and the
/// next call, on a new connection, succeeds.
fn oversized_batches_are_refused_and_the_hub_stays_up(db: TestDb) {
    use solarhub_proto::v1::*;
    let hub = RunningHub::start_with(&db, with_auth());
    install_two_sites(&hub.database);
    let tokens = Tokens::create(&hub.database);
    let mut huge = reading("powdrive1", "powdrive1.adapter", 0);
    huge.text
        .insert("padding".into(), "x".repeat(64 * 1024 * 1024));
    let connect = || {
        Channel::from_shared(hub.url.clone())
            .unwrap()
            .connect_lazy()
    };
    let refused = hub.runtime.block_on(async {
        collector_service_client::CollectorServiceClient::new(connect())
            .send_batch(authed(
                TelemetryBatch {
                    command_results: Vec::new(),
                    sent_at: None,
                    polls: Vec::new(),
                    collector_id: "a".into(),
                    seq: 1,
                    readings: vec![huge],
                },
                &tokens.a,
            ))
            .await
            .unwrap_err()
    });
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let ack = hub.runtime.block_on(async {
        collector_service_client::CollectorServiceClient::new(connect())
            .send_batch(authed(
                TelemetryBatch {
                    command_results: Vec::new(),
                    sent_at: None,
                    polls: Vec::new(),
                    collector_id: "a".into(),
                    seq: 1,
                    readings: vec![reading("powdrive1", "powdrive1.adapter", 0)],
                },
                &tokens.a,
            ))
            .await
            .unwrap()
            .into_inner()
    });
    assert_eq!(ack.stored, 1);
    assert_eq!(count(&hub.database, "energy_samples"), 1);
}

on_both_backends!(
    tokens_never_appear_in_clear,
    revocation_reaches_every_hub,
    oversized_batches_are_refused_and_the_hub_stays_up
);

/// A password given as a URL parameter is shown nowhere: not in the start-up lines, not in the
/// connection error (issue 25: the `user:pw@` form was masked, `?password=` was printed).
#[test]
fn a_database_password_in_any_form_is_never_printed() {
    for url in [
        "postgres://127.0.0.1:1/solarhub?user=u&password=s3cret-param",
        "postgres://u:s3cret-info@127.0.0.1:1/solarhub",
        "postgresql://127.0.0.1:1/solarhub?sslpassword=s3cret-ssl",
    ] {
        let out = crate::common::hub_binary()
            .args(["--database-url", url, "serve", "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "nothing listens on port 1");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(printed.contains("***"), "{printed}");
        assert!(
            !printed.contains("s3cret"),
            "the password was printed: {printed}"
        );
    }
}

/// Safe defaults on the operator's side (issue 25): metrics off loopback need `--metrics-public`;
/// a collector does not send its token in clear text to a hub off loopback without `--insecure`;
/// the database file, its WAL and the outbox are created 0600, the outbox directory 0700.
#[test]
fn operator_mistakes_are_refused_or_kept_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let said = common::process::refused_at_start(
        common::hub_binary().arg("--database-url").arg(&db).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "0.0.0.0:0",
        ]),
    );
    assert!(said.contains("--metrics-public"), "{said}");

    let token = dir.path().join("token");
    std::fs::write(&token, "shub_not_a_real_token").unwrap();
    let outbox = dir.path().join("outbox");
    let said = common::process::refused_at_start(
        std::process::Command::new(common::process::collector_binary())
            .args(["run", "--hub", "http://192.0.2.1:50051", "--id", "site-a"])
            .arg("--token-file")
            .arg(&token)
            .arg("--outbox-dir")
            .arg(&outbox),
    );
    assert!(
        said.contains("clear text") && said.contains("--insecure"),
        "{said}"
    );

    // A new database and an outbox: private files, a private directory.
    let database =
        solarhub_hub::db::Database::open(solarhub_hub::db::DatabaseUrl::Sqlite(db.clone()))
            .unwrap();
    solarhub_hub::db::run_migrations(&mut database.get().unwrap()).unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&dir.path().join("hub.db-wal")), 0o600);
    let opened = solarhub_collector::uplink::outbox::Outbox::open(
        &outbox,
        solarhub_collector::uplink::outbox::Limits::default(),
    )
    .unwrap();
    assert_eq!(mode(&outbox), 0o700);
    assert_eq!(mode(&outbox.join("outbox.db")), 0o600);
    drop(opened);
}

/// Issue 25 point 7: every write and every refused call is a row people can read (by RPC, admins
/// only, and by `solarhub-hub audit`), a flood of refusals is counted rather than written one by
/// one, a command run on the machine names its operating-system user, and a recompute over years
/// 0001-9999 is refused by field and recorded.
fn the_audit_trail_records_writes_and_refusals(db: TestDb) {
    use solarhub_proto::v1::*;
    let hub = RunningHub::start_with(&db, with_auth());
    install_two_sites(&hub.database);
    let tokens = Tokens::create(&hub.database);
    let channel = hub.runtime.block_on(async {
        Channel::from_shared(hub.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    });
    let mut systems = system_service_client::SystemServiceClient::new(channel.clone());
    let mut history = history_service_client::HistoryServiceClient::new(channel.clone());
    let mut audit = audit_service_client::AuditServiceClient::new(channel.clone());
    let time = |text: &str| {
        let t = chrono::DateTime::parse_from_rfc3339(text).unwrap();
        prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        }
    };
    const FLOOD: usize = 300;
    hub.runtime.block_on(async {
        let update = UpdateSystemRequest {
            system: Some(System {
                system_id: "home".into(),
                name: "Renamed".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into()],
            }),
        };
        systems
            .update_system(authed(update, &tokens.admin))
            .await
            .unwrap();
        let refused = history
            .recompute(authed(
                RecomputeRequest {
                    system_id: "home".into(),
                    range: Some(TimeRange {
                        from: Some(time("0001-01-01T00:00:00Z")),
                        to: Some(time("9999-01-01T00:00:00Z")),
                    }),
                },
                &tokens.admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().starts_with("range.from"),
            "{}",
            refused.message()
        );
        // A reader hammering a write, and a stranger with a made-up token.
        for _ in 0..FLOOD {
            let code = systems
                .delete_system(authed(
                    DeleteSystemRequest {
                        system_id: "home".into(),
                        cascade: false,
                    },
                    &tokens.reader,
                ))
                .await
                .unwrap_err()
                .code();
            assert_eq!(code, Code::PermissionDenied);
        }
        let stranger = format!("shub_{}", "1".repeat(64));
        let code = systems
            .list_systems(authed(ListSystemsRequest::default(), &stranger))
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::Unauthenticated);
        // The trail is for admins only, though its method reads.
        let code = audit
            .list_audit_events(authed(ListAuditEventsRequest::default(), &tokens.reader))
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::PermissionDenied);
        // Folded refusals are written within a few seconds.
        tokio::time::sleep(solarhub_hub::audit::FOLD_EVERY * 2).await;
    });
    let admin = tokens.admin.clone();
    let list = |request: ListAuditEventsRequest| {
        let mut audit = audit.clone();
        let admin = admin.clone();
        hub.runtime.block_on(async move {
            audit
                .list_audit_events(authed(request, &admin))
                .await
                .unwrap()
                .into_inner()
                .events
        })
    };
    let writes = list(ListAuditEventsRequest {
        method: "UpdateSystem".into(),
        ..Default::default()
    });
    assert_eq!(writes.len(), 1, "{writes:?}");
    let write = &writes[0];
    assert_eq!(
        (
            write.principal.as_str(),
            write.outcome.as_str(),
            write.target.as_str()
        ),
        ("ops", "OK", "systems home")
    );
    assert_eq!(write.source, "127.0.0.1");
    assert_eq!(write.calls, 1);
    let recompute = list(ListAuditEventsRequest {
        method: "Recompute".into(),
        ..Default::default()
    });
    assert_eq!(recompute.len(), 1, "{recompute:?}");
    assert_eq!(recompute[0].outcome, "INVALID_ARGUMENT");
    assert_eq!(recompute[0].target, "system home");
    assert!(
        recompute[0].detail.starts_with("range.from"),
        "{:?}",
        recompute[0]
    );

    let denied = list(ListAuditEventsRequest {
        outcome: "permission_denied".into(),
        principal: "dashboard".into(),
        ..Default::default()
    });
    let calls: u64 = denied.iter().map(|event| event.calls).sum();
    // The flood, and the reader's look at the trail.
    assert_eq!(calls, FLOOD as u64 + 1, "{denied:?}");
    assert!(
        denied.len() <= 6,
        "{FLOOD} refusals were written as {} rows",
        denied.len()
    );
    let strangers = list(ListAuditEventsRequest {
        outcome: "UNAUTHENTICATED".into(),
        ..Default::default()
    });
    assert_eq!(strangers.len(), 1, "{strangers:?}");
    assert_eq!(strangers[0].principal, "unknown token");
    assert_eq!(
        strangers[0].method,
        "/solarhub.v1.SystemService/ListSystems"
    );
    // A bad filter is refused by field.
    let refused = hub.runtime.block_on(async {
        audit
            .list_audit_events(authed(
                ListAuditEventsRequest {
                    outcome: "sideways".into(),
                    ..Default::default()
                },
                &tokens.admin,
            ))
            .await
            .unwrap_err()
    });
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("outcome:"),
        "{}",
        refused.message()
    );

    // A command on the hub's machine names its operating-system user, and `audit` shows it.
    let created = common::hub_binary()
        .args(["--database-url", &db.url_arg(), "token", "create"])
        .args(["--name", "night-shift", "--role", "reader"])
        .env("USER", "alice")
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let shown = common::hub_binary()
        .args([
            "--database-url",
            &db.url_arg(),
            "audit",
            "--principal",
            "os:alice",
        ])
        .output()
        .unwrap();
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("os:alice")
            && text.contains("token create")
            && text.contains("principal night-shift")
            && text.contains(" OK "),
        "{text}"
    );
    let shown = common::hub_binary()
        .args(["--database-url", &db.url_arg(), "audit", "--since", "1h"])
        .args(["--outcome", "permission_denied", "--method", "DeleteSystem"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("dashboard") && text.contains(" x"), "{text}");
}

/// The audit trail is kept as long as the policy says (`--retention audit_events=PERIOD`, a year
/// by default) and no longer.
fn retention_deletes_old_audit_rows(db: TestDb) {
    let database = db.migrated();
    let now = solarhub_hub::db::now_ms();
    let row = |days_ago: i64| solarhub_hub::db::audit::NewAuditRow {
        at: now - days_ago * 86_400_000,
        principal: "ops".into(),
        source: "cli".into(),
        method: "token create".into(),
        target: String::new(),
        outcome: "OK".into(),
        duration_ms: 1,
        calls: 1,
        detail: String::new(),
    };
    solarhub_hub::db::audit::insert(&mut database.get().unwrap(), &[row(400), row(100), row(1)])
        .unwrap();
    // The dry run says it before a pass does it.
    let shown = common::hub_binary()
        .args(["--database-url", &db.url_arg(), "retention", "--dry-run"])
        .args(["--retention", "audit_events=30d"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("audit_events: kept 30d\n  rows: deletes 2 older than 30d"),
        "{text}"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pass = |settings: &[&str]| {
        let mut retention = solarhub_hub::retention::Retention::new(
            solarhub_hub::retention::Policy::from_settings(settings).unwrap(),
        );
        retention.rest_factor = 0;
        runtime
            .block_on(solarhub_hub::retention::run_pass(
                &database, &retention, now,
            ))
            .unwrap()
            .deleted_audit
    };
    assert_eq!(pass(&[]), 1, "the default keeps a year");
    assert_eq!(pass(&["audit_events=30d"]), 1);
    assert_eq!(count(&database, "audit_events"), 1);
    assert!(
        solarhub_hub::retention::Policy::from_settings(&["audit_events=soon"]).is_err(),
        "a bad period for the trail is refused"
    );
}

on_both_backends!(
    the_audit_trail_records_writes_and_refusals,
    retention_deletes_old_audit_rows
);

/// #27 acceptance 3: every HTTP route against every kind of caller, by the same rules as its gRPC
/// twin's row in [`MATRIX`] (no second table): no or bad credentials 401, a role that may not
/// 403, the rest reach the service (unknown ids: its 404). Nothing changes the database.
fn http_auth_matrix(db: TestDb) {
    use solarhub_hub::http::routes::{Verb, routes};
    let hub = RunningHub::start_with(&db, crate::http::with_http(with_auth()));
    install_two_sites(&hub.database);
    let tokens = Tokens::create(&hub.database);
    let before = snapshot(&hub.database);
    let http = hub.http_url.clone().unwrap();
    let needs: BTreeMap<&str, Needs> = MATRIX.iter().map(|(path, n, _)| (*path, *n)).collect();
    let mut wrong = Vec::new();
    let mut checked = 0;
    hub.runtime.block_on(async {
        for route in routes() {
            let rpc = format!("solarhub.v1.{}", route.rpc);
            let needs = *needs
                .get(rpc.as_str())
                .unwrap_or_else(|| panic!("{rpc} has no row in the auth matrix"));
            let path = crate::common::http::with_unknown_ids(route.path);
            let method = route.verb.as_str().to_ascii_uppercase();
            let body = matches!(route.verb, Verb::Post | Verb::Patch).then_some("{}");
            for who in EVERYONE {
                let header = tokens.header(who);
                let headers: Vec<(&str, &str)> = header
                    .as_deref()
                    .map(|h| vec![("authorization", h)])
                    .unwrap_or_default();
                let answer =
                    crate::common::http::call(&method, &format!("{http}{path}"), &headers, body)
                        .await;
                checked += 1;
                let refused = match (who, needs) {
                    (Who::NoToken | Who::Malformed | Who::Unknown | Who::Revoked, _) => Some(401),
                    (Who::Admin, _) | (Who::Reader, Needs::Read | Needs::ControlRead) => None,
                    (Who::Operator, Needs::Control | Needs::ControlRead) => None,
                    (Who::CollectorA | Who::CollectorB, Needs::Ingest) => None,
                    _ => Some(403),
                };
                let ok = match refused {
                    Some(code) => answer.status == code,
                    None => ![401, 403].contains(&answer.status) && answer.status < 500,
                };
                if !ok {
                    wrong.push(format!(
                        "{method} {path} as {who:?}: {} {}",
                        answer.status,
                        answer.text()
                    ));
                } else if answer.status >= 400 {
                    assert!(
                        answer.json()["error"]["code"].is_string(),
                        "{method} {path} as {who:?}: a JSON error"
                    );
                }
            }
        }
    });
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked >= 80 * EVERYONE.len(), "{checked} calls");
    assert_eq!(
        snapshot(&hub.database),
        before,
        "a call changed the database"
    );
}

/// A browser logs in once: the cookie is HttpOnly, SameSite=Strict, Path=/, expiring, not
/// Secure without TLS; changes need the session's CSRF token; the session speaks with its
/// token's role; revoking the token ends it; logging out clears it. Collector tokens cannot log in.
fn browser_sessions(db: TestDb) {
    let hub = RunningHub::start_with(&db, crate::http::with_http(with_auth()));
    install_two_sites(&hub.database);
    let tokens = Tokens::create(&hub.database);
    let http = hub.http_url.clone().unwrap();
    use crate::common::http::call;
    hub.runtime.block_on(async {
        let answer = call("GET", &format!("{http}/api/home/now"), &[], None).await;
        assert_eq!(answer.status, 401, "{}", answer.text());
        assert_eq!(answer.header("www-authenticate").as_deref(), Some("Bearer"));
        assert_eq!(
            call("GET", &format!("{http}/api/session"), &[], None)
                .await
                .status,
            401
        );
        let login = |token: String| {
            let http = http.clone();
            async move {
                call(
                    "POST",
                    &format!("{http}/api/login"),
                    &[],
                    Some(&json_token(&token)),
                )
                .await
            }
        };
        assert_eq!(
            login(tokens.a.clone()).await.status,
            403,
            "a collector's token"
        );
        assert_eq!(login(format!("shub_{}", "0".repeat(64))).await.status, 401);
        assert_eq!(login(tokens.revoked.clone()).await.status, 401);
        let answer = call("POST", &format!("{http}/api/login"), &[], Some("{}")).await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json()["error"]["field"], "token");

        let reader = login(tokens.reader.clone()).await;
        assert_eq!(reader.status, 200, "{}", reader.text());
        let set_cookie = reader.header("set-cookie").unwrap();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(
                set_cookie.contains(attribute),
                "{attribute} in {set_cookie}"
            );
        }
        assert!(
            !set_cookie.contains("Secure"),
            "no Secure without TLS: {set_cookie}"
        );
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let view = reader.json();
        assert_eq!(view["role"], "reader");
        assert_eq!(view["principal"], "dashboard");
        let csrf = view["csrfToken"].as_str().unwrap().to_owned();
        assert_eq!(csrf.len(), 64);
        let session = call(
            "GET",
            &format!("{http}/api/session"),
            &[("cookie", &cookie)],
            None,
        )
        .await;
        assert_eq!(session.json()["csrfToken"], csrf.as_str());
        let answer = call(
            "GET",
            &format!("{http}/api/home/now"),
            &[("cookie", &cookie)],
            None,
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let rename = r#"{"name":"Renamed"}"#;
        let patch = |headers: Vec<(&'static str, String)>| {
            let http = http.clone();
            async move {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                call(
                    "PATCH",
                    &format!("{http}/api/systems/home"),
                    &headers,
                    Some(rename),
                )
                .await
            }
        };
        let answer = patch(vec![("cookie", cookie.clone())]).await;
        assert_eq!(answer.status, 403, "no CSRF token: {}", answer.text());
        assert!(answer.text().contains("x-csrf-token"), "{}", answer.text());
        let answer = patch(vec![
            ("cookie", cookie.clone()),
            ("x-csrf-token", csrf.clone()),
        ])
        .await;
        assert_eq!(
            answer.status,
            403,
            "a reader may not change: {}",
            answer.text()
        );
        assert!(!answer.text().contains("x-csrf-token"), "{}", answer.text());

        let admin = login(tokens.admin.clone()).await;
        let admin_cookie = admin
            .header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let admin_csrf = admin.json()["csrfToken"].as_str().unwrap().to_owned();
        let answer = patch(vec![
            ("cookie", admin_cookie.clone()),
            ("x-csrf-token", csrf.clone()),
        ])
        .await;
        assert_eq!(answer.status, 403, "another session's CSRF token");
        let answer = patch(vec![
            ("cookie", admin_cookie.clone()),
            ("x-csrf-token", admin_csrf.clone()),
        ])
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json()["name"], "Renamed");
        // A bearer token needs no CSRF token (no browser sends it on its own).
        let bearer = format!("Bearer {}", tokens.admin);
        let answer = patch(vec![("authorization", bearer)]).await;
        assert_eq!(answer.status, 200, "{}", answer.text());

        // Revoking the token ends its session (within the authenticator's cache time).
        principals::revoke(&mut hub.database.get().unwrap(), "ops").unwrap();
        tokio::time::sleep(
            solarhub_hub::auth::authenticator::CACHE_TTL + std::time::Duration::from_millis(500),
        )
        .await;
        let answer = call(
            "GET",
            &format!("{http}/api/home/now"),
            &[("cookie", &admin_cookie)],
            None,
        )
        .await;
        assert_eq!(
            answer.status,
            401,
            "a revoked token's session: {}",
            answer.text()
        );
        let answer = call(
            "GET",
            &format!("{http}/api/session"),
            &[("cookie", &admin_cookie)],
            None,
        )
        .await;
        assert_eq!(answer.status, 401, "the session is gone");

        // Logging out needs the CSRF token, clears the cookie and ends the session.
        let answer = call(
            "POST",
            &format!("{http}/api/logout"),
            &[("cookie", &cookie)],
            None,
        )
        .await;
        assert_eq!(answer.status, 403);
        let answer = call(
            "POST",
            &format!("{http}/api/logout"),
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            None,
        )
        .await;
        assert_eq!(answer.status, 204);
        assert!(answer.header("set-cookie").unwrap().contains("Max-Age=0"));
        let answer = call(
            "GET",
            &format!("{http}/api/home/now"),
            &[("cookie", &cookie)],
            None,
        )
        .await;
        assert_eq!(answer.status, 401);
    });
}

/// A revoked reader's event stream ends (as its gRPC watch does): the browser learns nothing
/// more after the revocation.
fn a_revoked_readers_event_stream_ends(db: TestDb) {
    use http_body_util::BodyExt;
    let hub = RunningHub::start_with(&db, crate::http::with_http(with_auth()));
    install_two_sites(&hub.database);
    let tokens = Tokens::create(&hub.database);
    let http = hub.http_url.clone().unwrap();
    hub.runtime.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let request = http::Request::get(format!("{http}/api/systems/home/events"))
            .header("authorization", format!("Bearer {}", tokens.reader))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("the first event")
            .unwrap()
            .unwrap();
        assert!(first.into_data().is_ok());
        principals::revoke(&mut hub.database.get().unwrap(), "dashboard").unwrap();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(15), async {
            loop {
                match body.frame().await {
                    None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "the revoked reader's event stream still runs after 15 s"
        );
    });
}

/// Under TLS the session cookie is `Secure` too, and the HTTP listener speaks only TLS.
fn browser_sessions_over_tls_have_secure_cookies(db: TestDb) {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::generate();
    let hub = RunningHub::start_with(&db, crate::http::with_http(tls_options(&pki, false)));
    install_two_sites(&hub.database);
    let tokens = Tokens::create(&hub.database);
    let address = hub.http_url.clone().unwrap().replace("http://", "");
    let response = hub.runtime.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(pki.path("ca.pem")).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let body = json_token(&tokens.reader);
        let request = format!(
            "POST /api/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        // The server may close without close_notify after `Connection: close`.
        let _ = tls.read_to_end(&mut response).await;
        // Plaintext to the TLS listener gets no HTTP answer.
        let plain = tokio::time::timeout(
            std::time::Duration::from_secs(15),
            crate::common::http::try_call("GET", &format!("http://{address}/api/session")),
        )
        .await;
        assert!(
            !matches!(plain, Ok(Ok(_))),
            "a plaintext request to the TLS listener was answered"
        );
        String::from_utf8_lossy(&response).into_owned()
    });
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let cookie = response
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {response}"));
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
}

fn json_token(token: &str) -> String {
    serde_json::json!({ "token": token }).to_string()
}

on_both_backends!(
    http_auth_matrix,
    browser_sessions,
    browser_sessions_over_tls_have_secure_cookies,
    a_revoked_readers_event_stream_ends
);
