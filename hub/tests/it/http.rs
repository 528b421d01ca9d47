//! The HTTP/JSON routes (#27, DESIGN §11) against a hub on 127.0.0.1:0: each route's answer
//! equals its gRPC twin's (the same message, proto3 JSON), the seed's status codes with the field
//! and the hierarchy context, CSV that adds up to the JSON, the live event stream, and an OpenAPI
//! document that a third-party validator accepts and that lists every route served.

use crate::common::http::{Answer, call};
use crate::common::{self, RunningHub, TestDb};

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{Value, json};
use solarhub_hub::http::listener::HttpListener;
use solarhub_hub::http::routes::{Verb, routes};
use solarhub_hub::server::ServeOptions;
use solarhub_proto::prost::Message;
use solarhub_proto::tonic::transport::Channel;
use solarhub_proto::v1 as proto;

const COLLECTOR: &str = "c";

pub(crate) fn with_http(options: ServeOptions) -> ServeOptions {
    ServeOptions {
        http: Some(HttpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap()),
        ..options
    }
}

/// A hub serving HTTP without authentication, the fixture installed with every adapter run by
/// collector `c`, and a few minutes of powdrive1 and grid_meter_1 readings stored and rolled.
fn hub_with_readings(db: &TestDb) -> (RunningHub, String) {
    let hub = RunningHub::start_with(
        db,
        with_http(ServeOptions {
            rollup_every: None,
            array_samples_every: None,
            ..ServeOptions::default()
        }),
    );
    common::site::install_fixture(&mut hub.database.get().unwrap(), |installation| {
        for adapter in &mut installation.adapters {
            adapter.collector_id = Some(COLLECTOR.into());
        }
    });
    let now = chrono::Utc::now().timestamp_millis();
    let readings: Vec<proto::DeviceReading> = (0..10)
        .flat_map(|i| {
            let at = now - 60_000 + i * 5_000;
            [
                reading(
                    "powdrive1",
                    "powdrive1.adapter",
                    at,
                    &[
                        ("pv_power_w", 1200.0 + i as f64),
                        ("load_power_w", 800.0),
                        ("grid_power_w", -100.0),
                        ("battery_power_w", -300.0),
                        ("battery_soc_pct", 61.0),
                        ("pv_energy_total_wh", 10_000.0 + i as f64 * 2.0),
                    ],
                ),
                reading(
                    "grid_meter_1",
                    "grid_meter_1.adapter",
                    at,
                    &[("power_w", -100.0), ("import_total_wh", 5_000.0)],
                ),
            ]
        })
        .collect();
    hub.runtime.block_on(async {
        let mut client =
            proto::collector_service_client::CollectorServiceClient::new(hub.channel.clone());
        let ack = client
            .send_batch(proto::TelemetryBatch {
                collector_id: COLLECTOR.into(),
                seq: 1,
                readings,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(ack.refused.is_empty(), "{:?}", ack.refused);
        let mut history =
            proto::history_service_client::HistoryServiceClient::new(hub.channel.clone());
        history
            .recompute(proto::RecomputeRequest {
                system_id: "home".into(),
                range: Some(day_range(now)),
            })
            .await
            .unwrap();
    });
    let url = hub.http_url.clone().unwrap();
    (hub, url)
}

fn reading(device: &str, adapter: &str, at: i64, fields: &[(&str, f64)]) -> proto::DeviceReading {
    proto::DeviceReading {
        device_id: device.into(),
        adapter_id: adapter.into(),
        ts: Some(solarhub_proto::time::timestamp(at)),
        fields: fields.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        ..Default::default()
    }
}

/// The UTC day around `now`, and a day either side.
fn day_range(now: i64) -> proto::TimeRange {
    proto::TimeRange {
        from: Some(solarhub_proto::time::timestamp(now - 86_400_000)),
        to: Some(solarhub_proto::time::timestamp(now + 86_400_000)),
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A gRPC answer in the proto3 JSON mapping (as the HTTP route must give it).
fn as_json(message: &impl Message, full_name: &str) -> Value {
    let pool = DescriptorPool::decode(solarhub_proto::FILE_DESCRIPTOR_SET).unwrap();
    let descriptor = pool
        .get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("no message {full_name}"));
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()).unwrap();
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .unwrap()
}

/// `value` without the answer's own time (`asOf`), which two calls never share.
fn steady(mut value: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(object) => {
                object.remove("asOf");
                // A settings answer's read is a command of its own on every call.
                object.remove("read");
                object.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

async fn get(url: &str) -> Answer {
    call("GET", url, &[], None).await
}

fn routes_answer_like_their_grpc_twins(db: TestDb) {
    let (hub, http) = hub_with_readings(&db);
    let channel: Channel = hub.channel.clone();
    let now = chrono::Utc::now().timestamp_millis();
    let range = day_range(now);
    let (from, to) = (rfc3339(now - 86_400_000), rfc3339(now + 86_400_000));
    hub.runtime.block_on(async {
        let mut live = proto::live_service_client::LiveServiceClient::new(channel.clone());
        let mut history = proto::history_service_client::HistoryServiceClient::new(channel.clone());
        let mut inverters =
            proto::inverter_service_client::InverterServiceClient::new(channel.clone());
        let mut config = proto::config_service_client::ConfigServiceClient::new(channel.clone());
        let mut quality =
            proto::data_quality_service_client::DataQualityServiceClient::new(channel.clone());
        let mut collectors =
            proto::collector_service_client::CollectorServiceClient::new(channel.clone());
        let system_now = live
            .get_system_now(proto::GetSystemNowRequest {
                system_id: "home".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let hourly = history
            .get_hourly_energy(proto::EnergyHistoryRequest {
                system_id: "home".into(),
                range: Some(range),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!hourly.buckets.is_empty(), "the recompute made hours");
        let cases: Vec<(String, Value)> = vec![
            (
                "/api/home/now".into(),
                as_json(&system_now, "solarhub.v1.SystemNow"),
            ),
            (
                "/api/systems/home/now".into(),
                as_json(&system_now, "solarhub.v1.SystemNow"),
            ),
            (
                "/api/arrays/array1/now".into(),
                as_json(
                    &live
                        .get_inverter_array_now(proto::GetInverterArrayNowRequest {
                            array_id: "array1".into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner(),
                    "solarhub.v1.InverterArrayNow",
                ),
            ),
            (
                "/api/inverter/powdrive1/now".into(),
                as_json(
                    &live
                        .get_inverter_now(proto::GetInverterNowRequest {
                            inverter_id: "powdrive1".into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner(),
                    "solarhub.v1.InverterNow",
                ),
            ),
            (
                "/api/meter/grid_meter_1/now".into(),
                as_json(
                    &live
                        .get_meter_now(proto::GetMeterNowRequest {
                            meter_id: "grid_meter_1".into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner(),
                    "solarhub.v1.MeterNow",
                ),
            ),
            (
                "/api/battery-packs/jkbms_bank/now".into(),
                as_json(
                    &live
                        .get_battery_pack_now(proto::GetBatteryPackNowRequest {
                            pack_id: "jkbms_bank".into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner(),
                    "solarhub.v1.BatteryPackNow",
                ),
            ),
            (
                "/api/config".into(),
                as_json(
                    &config
                        .get_config(proto::GetConfigRequest::default())
                        .await
                        .unwrap()
                        .into_inner(),
                    "solarhub.v1.GetConfigResponse",
                ),
            ),
            (
                "/api/inverters?array_id=array1".into(),
                as_json(
                    &inverters
                        .list_inverters(proto::ListInvertersRequest {
                            array_id: "array1".into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner(),
                    "solarhub.v1.ListInvertersResponse",
                ),
            ),
            (
                "/api/inverters/powdrive1".into(),
                as_json(
                    &inverters
                        .get_inverter(proto::GetInverterRequest {
                            inverter_id: "powdrive1".into(),
                        })
                        .await
                        .unwrap()
                        .into_inner(),
                    "solarhub.v1.Inverter",
                ),
            ),
            (
                format!("/api/energy/hourly?from={from}&to={to}"),
                as_json(&hourly, "solarhub.v1.EnergyHistory"),
            ),
            (
                format!("/api/inverters/powdrive1/energy/daily?from={from}&to={to}"),
                as_json(
                    &history
                        .get_daily_energy(proto::EnergyHistoryRequest {
                            inverter_id: "powdrive1".into(),
                            range: Some(day_range(now)),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner(),
                    "solarhub.v1.EnergyHistory",
                ),
            ),
            (
                "/api/quality".into(),
                as_json(
                    &quality
                        .list_device_quality(proto::ListDeviceQualityRequest {
                            system_id: "home".into(),
                        })
                        .await
                        .unwrap()
                        .into_inner(),
                    "solarhub.v1.ListDeviceQualityResponse",
                ),
            ),
            (
                "/api/collectors".into(),
                as_json(
                    &collectors
                        .list_collectors(proto::ListCollectorsRequest::default())
                        .await
                        .unwrap()
                        .into_inner(),
                    "solarhub.v1.ListCollectorsResponse",
                ),
            ),
        ];
        for (path, twin) in cases {
            let answer = get(&format!("{http}{path}")).await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.text());
            assert_eq!(
                answer.header("content-type").as_deref(),
                Some("application/json"),
                "{path}"
            );
            assert_eq!(
                steady(answer.json()),
                steady(twin),
                "{path} differs from its gRPC twin"
            );
        }
        // The HTTP names are grpcurl's: camelCase, 64-bit integers as strings.
        let now = get(&format!("{http}/api/inverter/powdrive1/now"))
            .await
            .json();
        assert_eq!(now["inverterId"], "powdrive1");
        assert_eq!(now["pvPowerW"], json!(1209.0));
    });
}

/// A fixture id for each path parameter.
fn fixture_id(parameter: &str) -> &'static str {
    match parameter {
        "system_id" => "home",
        "array_id" => "array1",
        "inverter_id" => "powdrive1",
        "meter_id" => "grid_meter_1",
        "battery_array_id" => "battery_array1",
        "pack_id" => "jkbms_bank",
        "battery_id" => "jkbms_bank.b1",
        "cell_id" => "jkbms_bank.b1.c1",
        "adapter_id" => "powdrive1.adapter",
        "adapter_type" => "powdrive",
        "device_id" => "powdrive1",
        "command_id" => "0123456789abcdef01234567",
        other => panic!("no fixture id for {other}"),
    }
}

/// The rest of what some routes need, as query parameters (and so as request fields).
fn needed(path: &str) -> &'static [(&'static str, &'static str)] {
    match path {
        "/api/series/five-minutes" => &[("inverter_id", "powdrive1")],
        "/api/battery/now" => &[("battery_array_id", "battery_array1")],
        "/api/battery-pack-adapters/{pack_id}" => &[("adapter_id", "jkbms_bank.adapter1")],
        // No collector runs here: a second, not the default ten, for the device to answer.
        "/api/devices/{device_id}/settings" => &[("timeout_seconds", "1")],
        _ => &[],
    }
}

/// Every GET route (but the event stream) against its gRPC twin called over the network with the
/// same fields: the same status, and when it answers, the same JSON.
fn every_get_route_answers_as_its_twin(db: TestDb) {
    use solarhub_hub::http::errors::http_status;
    use solarhub_hub::http::routes::Answer;
    let (hub, http) = hub_with_readings(&db);
    let pool = DescriptorPool::decode(solarhub_proto::FILE_DESCRIPTOR_SET).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let (from, to) = (rfc3339(now - 86_400_000), rfc3339(now + 86_400_000));
    let mut compared = 0;
    hub.runtime.block_on(async {
        for route in routes().filter(|r| r.verb == Verb::Get && r.answer != Answer::Events) {
            let method = solarhub_hub::http::gateway::method_in(&pool, route.rpc).unwrap();
            let input = method.input();
            let mut path = route.path.to_owned();
            let mut fields = serde_json::Map::new();
            let mut query = Vec::new();
            for parameter in solarhub_hub::http::openapi::path_parameters(route.path) {
                let id = fixture_id(parameter);
                path = path.replace(&format!("{{{parameter}}}"), id);
                fields.insert(parameter.to_owned(), json!(id));
            }
            for (name, value) in needed(route.path) {
                query.push(format!("{name}={value}"));
                fields.insert((*name).to_owned(), json!(value));
            }
            if input.get_field_by_name("range").is_some() {
                query.push(format!("from={from}&to={to}"));
                fields.insert("range".into(), json!({"from": from, "to": to}));
            }
            if route.only_system {
                fields.insert("system_id".into(), json!("home"));
            }
            let url = if query.is_empty() {
                format!("{http}{path}")
            } else {
                format!("{http}{path}?{}", query.join("&"))
            };
            let answer = get(&url).await;
            let request = DynamicMessage::deserialize(input, Value::Object(fields)).unwrap();
            let twin = twin_call(hub.channel.clone(), &method, request).await;
            match twin {
                Ok(message) => {
                    assert_eq!(answer.status, 200, "{url}: {}", answer.text());
                    let twin = message
                        .serialize_with_options(
                            serde_json::value::Serializer,
                            &SerializeOptions::new(),
                        )
                        .unwrap();
                    assert_eq!(
                        without_audit_reads(steady(answer.json())),
                        without_audit_reads(steady(twin)),
                        "{url} differs from {}",
                        route.rpc
                    );
                }
                Err(status) => {
                    assert_eq!(
                        answer.status,
                        http_status(status.code()).as_u16(),
                        "{url}: {} (twin: {status:?})",
                        answer.text()
                    );
                }
            }
            compared += 1;
        }
    });
    assert!(compared >= 40, "{compared} GET routes compared");
}

/// An audit answer without the rows of the audit reads themselves (each call of the pair records
/// its own read, which the other then sees).
fn without_audit_reads(mut value: Value) -> Value {
    if let Some(events) = value.get_mut("events").and_then(Value::as_array_mut) {
        events.retain(|e| e["method"] != "/solarhub.v1.AuditService/ListAuditEvents");
    }
    value
}

/// `method` called with `request` over the network, as any gRPC client calls it.
async fn twin_call(
    channel: Channel,
    method: &prost_reflect::MethodDescriptor,
    request: DynamicMessage,
) -> Result<DynamicMessage, solarhub_proto::tonic::Status> {
    let mut grpc = solarhub_proto::tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = solarhub_hub::http::gateway::path_of(method)
        .parse()
        .unwrap();
    grpc.unary(
        solarhub_proto::tonic::Request::new(request),
        path,
        solarhub_hub::http::gateway::DynamicCodec::new(method.output()),
    )
    .await
    .map(|response| response.into_inner())
}

fn status_codes_carry_the_field_and_the_context(db: TestDb) {
    let (hub, http) = hub_with_readings(&db);
    hub.runtime.block_on(async {
        let unknown = [
            "/api/inverter/nope/now",
            "/api/meter/nope/now",
            "/api/arrays/nope/now",
            "/api/systems/nope",
            "/api/inverters/nope",
            "/api/battery-packs/nope/now",
        ];
        for path in unknown {
            let answer = get(&format!("{http}{path}")).await;
            assert_eq!(answer.status, 404, "{path}: {}", answer.text());
            let error = &answer.json()["error"];
            assert_eq!(error["code"], "NOT_FOUND", "{path}");
            assert_eq!(error["resource"]["id"], "nope", "{path}: {error}");
        }
        let answer = get(&format!("{http}/api/nothing/here")).await;
        assert_eq!(answer.status, 404);
        assert_eq!(answer.json()["error"]["code"], "NOT_FOUND");

        let answer = get(&format!("{http}/api/energy/hourly?bogus=1")).await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json()["error"]["field"], "bogus");
        let answer = get(&format!("{http}/api/energy/hourly?from=yesterday")).await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json()["error"]["field"], "from");
        let answer = get(&format!("{http}/api/systems?page_size=ten")).await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json()["error"]["field"], "page_size");

        // Create, conflict, change, children, delete: the catalog's own rules and codes.
        let cabin = r#"{"systemId":"cabin","name":"Cabin","timezone":"Mars/Base"}"#;
        let answer = call("POST", &format!("{http}/api/systems"), &[], Some(cabin)).await;
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert_eq!(answer.json()["error"]["field"], "system.timezone");
        let cabin = r#"{"systemId":"cabin","name":"Cabin","timezone":"Europe/Berlin"}"#;
        let answer = call("POST", &format!("{http}/api/systems"), &[], Some(cabin)).await;
        assert_eq!(answer.status, 201, "{}", answer.text());
        assert_eq!(answer.json()["systemId"], "cabin");
        let answer = call("POST", &format!("{http}/api/systems"), &[], Some(cabin)).await;
        assert_eq!(answer.status, 409, "{}", answer.text());
        assert_eq!(answer.json()["error"]["code"], "ALREADY_EXISTS");
        let answer = call(
            "PATCH",
            &format!("{http}/api/systems/cabin"),
            &[],
            Some(r#"{"name":"Mountain cabin"}"#),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let cabin = get(&format!("{http}/api/systems/cabin")).await.json();
        assert_eq!(cabin["name"], "Mountain cabin");
        assert_eq!(
            cabin["timezone"], "Europe/Berlin",
            "PATCH changed only its body's fields"
        );
        let answer = call(
            "PATCH",
            &format!("{http}/api/systems/cabin"),
            &[],
            Some(r#"{"nmae":"typo"}"#),
        )
        .await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json()["error"]["field"], "nmae");
        let answer = call("DELETE", &format!("{http}/api/systems/home"), &[], None).await;
        assert_eq!(answer.status, 409, "home has children: {}", answer.text());
        assert_eq!(answer.json()["error"]["code"], "FAILED_PRECONDITION");
        let answer = call("DELETE", &format!("{http}/api/systems/cabin"), &[], None).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(get(&format!("{http}/api/systems/cabin")).await.status, 404);
        let answer = call(
            "POST",
            &format!("{http}/api/systems"),
            &[],
            Some("not json"),
        )
        .await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json()["error"]["field"], "body");
    });
}

fn csv_downloads_add_up_to_the_json(db: TestDb) {
    let (hub, http) = hub_with_readings(&db);
    let now = chrono::Utc::now().timestamp_millis();
    let (from, to) = (rfc3339(now - 86_400_000), rfc3339(now + 86_400_000));
    hub.runtime.block_on(async {
        for path in [
            "/api/energy/hourly",
            "/api/inverters/powdrive1/energy/hourly",
        ] {
            let query = format!("?from={from}&to={to}");
            let json = get(&format!("{http}{path}{query}")).await.json();
            let buckets = json["buckets"].as_array().unwrap();
            assert!(!buckets.is_empty(), "{path}");
            let answer = get(&format!("{http}{path}{query}&format=csv")).await;
            assert_eq!(answer.status, 200);
            assert_eq!(
                answer.header("content-type").as_deref(),
                Some("text/csv; charset=utf-8")
            );
            assert!(
                answer
                    .header("content-disposition")
                    .unwrap()
                    .starts_with("attachment; filename=")
            );
            let text = answer.text();
            let mut lines = text.lines();
            let header: Vec<&str> = lines.next().unwrap().split(',').collect();
            assert_eq!(
                header[..3],
                ["systemId", "arrayId", "inverterId"],
                "field order"
            );
            let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
            assert_eq!(rows.len(), buckets.len(), "{path}: one row per bucket");
            for column in ["loadKwh", "solarKwh", "sampleCount"] {
                let at = header.iter().position(|h| *h == column).unwrap();
                let csv_sum: f64 = rows
                    .iter()
                    .map(|r| r[at].parse::<f64>().unwrap_or(0.0))
                    .sum();
                let json_sum: f64 = buckets
                    .iter()
                    .map(|b| match &b[column] {
                        Value::String(s) => s.parse::<f64>().unwrap(),
                        other => other.as_f64().unwrap_or(0.0),
                    })
                    .sum();
                assert!(
                    (csv_sum - json_sum).abs() < 1e-9,
                    "{path} {column}: CSV {csv_sum} != JSON {json_sum}"
                );
            }
        }
    });
}

fn the_event_stream_sends_the_system_now(db: TestDb) {
    use http_body_util::BodyExt;
    let (hub, http) = hub_with_readings(&db);
    hub.runtime.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let response = client
            .get(format!("{http}/api/systems/home/events").parse().unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut body = response.into_body();
        let mut text = String::new();
        while !text.contains("\n\n") {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
        let event = text.split("\n\n").next().unwrap();
        assert!(event.starts_with("event: now\n"), "{event}");
        let data: Value = serde_json::from_str(
            event
                .lines()
                .nth(1)
                .unwrap()
                .strip_prefix("data: ")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(data["now"]["systemId"], "home", "{data}");
    });
}

fn the_openapi_document_validates_and_lists_every_route(db: TestDb) {
    let (hub, http) = hub_with_readings(&db);
    hub.runtime.block_on(async {
        let answer = get(&format!("{http}/api/openapi.json")).await;
        assert_eq!(answer.status, 200);
        let document = answer.json();
        assert_eq!(document["openapi"], "3.1.0");
        let mut served = 0;
        for route in routes() {
            let operation = &document["paths"][route.path][route.verb.as_str()];
            assert!(
                operation.is_object(),
                "{} {} is served but not in the document",
                route.verb.as_str(),
                route.path
            );
            served += 1;
            // The route answers (not the router's fallback): an unknown id is the service's 404,
            // with its JSON error, never axum's plain one.
            let path = crate::common::http::with_unknown_ids(route.path);
            let method = route.verb.as_str().to_ascii_uppercase();
            let body = (route.verb == Verb::Post || route.verb == Verb::Patch).then_some("{}");
            if route.path.ends_with("/events") {
                continue;
            }
            let answer = call(&method, &format!("{http}{path}"), &[], body).await;
            assert!(
                answer.status != 405 && answer.status < 500,
                "{method} {path}: {} {}",
                answer.status,
                answer.text()
            );
            if answer.status >= 400 {
                assert!(
                    answer.json()["error"]["code"].is_string(),
                    "{method} {path}"
                );
            }
        }
        assert!(served >= 80, "{served} routes");
        // Every path in the document is served.
        for (path, operations) in document["paths"].as_object().unwrap() {
            for verb in operations.as_object().unwrap().keys() {
                let known = routes().any(|r| r.path == path && r.verb.as_str() == verb)
                    || ["/api/login", "/api/logout", "/api/session"].contains(&path.as_str());
                assert!(
                    known,
                    "the document lists {verb} {path}, which is not served"
                );
            }
        }
        validate_openapi(&document);
    });
}

/// Runs the `openapi-spec-validator` tool (PyPI) on the document; CI has it (`.ci/run`), a
/// machine without it says so and skips.
pub(crate) fn validate_openapi(document: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(document).unwrap()).unwrap();
    match std::process::Command::new("openapi-spec-validator")
        .arg(&file)
        .output()
    {
        Ok(output) => assert!(
            output.status.success(),
            "openapi-spec-validator refused the document:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("openapi-spec-validator is not installed ({error}); .ci/run installs it")
        }
        Err(error) => eprintln!("openapi-spec-validator not run: {error}"),
    }
}

on_both_backends!(
    routes_answer_like_their_grpc_twins,
    every_get_route_answers_as_its_twin,
    status_codes_carry_the_field_and_the_context,
    csv_downloads_add_up_to_the_json,
    the_event_stream_sends_the_system_now,
    the_openapi_document_validates_and_lists_every_route,
);
