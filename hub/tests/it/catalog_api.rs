//! The hierarchy CRUD API through real tonic clients against a hub on 127.0.0.1:0, on both backends:
//! every resource's lifecycle, the documented errors with the field they name, GetConfig of an
//! imported installation, and a fixed number of loader queries whatever the number of devices.

use crate::common;

use common::{RunningHub, TestDb, error_fields};
use solarhub_proto::prost_types::{FieldMask, Timestamp};
use solarhub_proto::tonic::Code;
use solarhub_proto::tonic::transport::Channel;
use solarhub_proto::v1::adapter_service_client::AdapterServiceClient;
use solarhub_proto::v1::adapter_type_service_client::AdapterTypeServiceClient;
use solarhub_proto::v1::battery_array_attachment_service_client::BatteryArrayAttachmentServiceClient;
use solarhub_proto::v1::battery_array_service_client::BatteryArrayServiceClient;
use solarhub_proto::v1::battery_cell_service_client::BatteryCellServiceClient;
use solarhub_proto::v1::battery_pack_adapter_service_client::BatteryPackAdapterServiceClient;
use solarhub_proto::v1::battery_pack_service_client::BatteryPackServiceClient;
use solarhub_proto::v1::battery_service_client::BatteryServiceClient;
use solarhub_proto::v1::config_service_client::ConfigServiceClient;
use solarhub_proto::v1::inverter_array_service_client::InverterArrayServiceClient;
use solarhub_proto::v1::inverter_service_client::InverterServiceClient;
use solarhub_proto::v1::meter_service_client::MeterServiceClient;
use solarhub_proto::v1::system_service_client::SystemServiceClient;
use solarhub_proto::v1::*;

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn system(id: &str) -> System {
    System {
        system_id: id.into(),
        name: format!("System {id}"),
        timezone: "Europe/Berlin".into(),
        ..System::default()
    }
}

fn inverter(id: &str, array: &str) -> Inverter {
    Inverter {
        inverter_id: id.into(),
        array_id: array.into(),
        name: format!("Inverter {id}"),
        ..Inverter::default()
    }
}

const METER_SCHEMA: &str = r#"{"type":"object","additionalProperties":false,"required":["host"],"properties":{"host":{"type":"string","minLength":1},"port":{"type":"integer","minimum":1,"maximum":65535},"baudrate":{"type":"integer"}}}"#;

/// Creates, reads, lists (filtered and paged), updates (masked) and deletes every resource.
fn every_resource_lifecycle(db: TestDb) {
    let hub = RunningHub::start(&db);
    let channel = hub.channel.clone();
    hub.runtime.block_on(lifecycle(channel));
}

/// The clients of every catalog service, on one channel.
struct Clients {
    systems: SystemServiceClient<Channel>,
    arrays: InverterArrayServiceClient<Channel>,
    inverters: InverterServiceClient<Channel>,
    battery_arrays: BatteryArrayServiceClient<Channel>,
    attachments: BatteryArrayAttachmentServiceClient<Channel>,
    packs: BatteryPackServiceClient<Channel>,
    batteries: BatteryServiceClient<Channel>,
    cells: BatteryCellServiceClient<Channel>,
    meters: MeterServiceClient<Channel>,
    adapter_types: AdapterTypeServiceClient<Channel>,
    adapters: AdapterServiceClient<Channel>,
    pack_adapters: BatteryPackAdapterServiceClient<Channel>,
}

impl Clients {
    fn new(channel: &Channel) -> Clients {
        Clients {
            systems: SystemServiceClient::new(channel.clone()),
            arrays: InverterArrayServiceClient::new(channel.clone()),
            inverters: InverterServiceClient::new(channel.clone()),
            battery_arrays: BatteryArrayServiceClient::new(channel.clone()),
            attachments: BatteryArrayAttachmentServiceClient::new(channel.clone()),
            packs: BatteryPackServiceClient::new(channel.clone()),
            batteries: BatteryServiceClient::new(channel.clone()),
            cells: BatteryCellServiceClient::new(channel.clone()),
            meters: MeterServiceClient::new(channel.clone()),
            adapter_types: AdapterTypeServiceClient::new(channel.clone()),
            adapters: AdapterServiceClient::new(channel.clone()),
            pack_adapters: BatteryPackAdapterServiceClient::new(channel.clone()),
        }
    }
}

type Step = fn(Channel) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The lifecycle of every resource as named steps, each building on the ones before; a failure
/// names its step.
async fn lifecycle(channel: Channel) {
    let steps: [(&str, Step); 8] = [
        (
            "Systems: create two, get, page through them one at a time, update one field.",
            |c| Box::pin(systems(c)),
        ),
        ("Inverter arrays, filtered by system.", |c| {
            Box::pin(inverter_arrays(c))
        }),
        (
            "Inverters: system_id comes from the array; list by array, paged.",
            |c| Box::pin(inverters(c)),
        ),
        (
            "Battery arrays, attachments, packs, batteries, cells.",
            |c| Box::pin(battery_resources(c)),
        ),
        ("Adapter types, adapters, meters, pack adapters.", |c| {
            Box::pin(adapters_and_meters(c))
        }),
        (
            "Get and list every remaining resource once more: each answers with its parent ids.",
            |c| Box::pin(every_answer_has_its_parents(c)),
        ),
        (
            "Delete leaves first: each delete needs no cascade, and afterwards the resource is gone.",
            |c| Box::pin(deletes_leaves_first(c)),
        ),
        (
            "A system with children goes only with cascade, which reports what it took along.",
            |c| Box::pin(cascade_deletes_a_system(c)),
        ),
    ];
    for (name, step) in steps {
        if let Err(error) = tokio::spawn(step(channel.clone())).await {
            panic!("lifecycle step {name:?} failed: {error}");
        }
    }
}

async fn systems(channel: Channel) {
    let mut c = Clients::new(&channel);
    // Systems: create two, get, page through them one at a time, update one field.
    for id in ["home", "cabin"] {
        let created = c
            .systems
            .create_system(CreateSystemRequest {
                system: Some(system(id)),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(created.system_id, id);
    }
    let got = c
        .systems
        .get_system(GetSystemRequest {
            system_id: "home".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.name.as_str(), got.timezone.as_str()),
        ("System home", "Europe/Berlin")
    );
    let first = c
        .systems
        .list_systems(ListSystemsRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first
            .systems
            .iter()
            .map(|s| s.system_id.as_str())
            .collect::<Vec<_>>(),
        ["cabin"]
    );
    assert!(!first.next_page_token.is_empty());
    let second = c
        .systems
        .list_systems(ListSystemsRequest {
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second
            .systems
            .iter()
            .map(|s| s.system_id.as_str())
            .collect::<Vec<_>>(),
        ["home"]
    );
    assert!(second.next_page_token.is_empty());
    let updated = c
        .systems
        .update_system(UpdateSystemRequest {
            system: Some(System {
                system_id: "home".into(),
                name: "Renamed".into(),
                timezone: "Asia/Karachi".into(),
                ..System::default()
            }),
            update_mask: mask(&["name"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (updated.name.as_str(), updated.timezone.as_str()),
        ("Renamed", "Europe/Berlin"),
        "only the masked field changes"
    );
    // No mask: refused, and nothing changes (it used to replace every field: the zone became UTC).
    let refused = c
        .systems
        .update_system(UpdateSystemRequest {
            system: Some(System {
                system_id: "home".into(),
                name: "Unmasked".into(),
                ..System::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("update_mask"), "{refused:?}");
    // 10,000 unknown paths: a few named, the rest counted, the error small enough for any client.
    let refused = c
        .systems
        .update_system(UpdateSystemRequest {
            system: Some(System {
                system_id: "home".into(),
                ..System::default()
            }),
            update_mask: Some(FieldMask {
                paths: (0..10_000).map(|n| format!("no_such_field_{n}")).collect(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let size = refused.message().len() + refused.details().len();
    assert!(size < 8 * 1024, "the error carries {size} bytes");
    assert!(
        refused.message().contains("9995 more"),
        "{}",
        refused.message()
    );
    // "*": every changeable field is replaced, as AIP-134 says.
    let replaced = c
        .systems
        .update_system(UpdateSystemRequest {
            system: Some(System {
                system_id: "home".into(),
                name: "Replaced".into(),
                timezone: "Asia/Karachi".into(),
                ..System::default()
            }),
            update_mask: mask(&["*"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (replaced.name.as_str(), replaced.timezone.as_str()),
        ("Replaced", "Asia/Karachi")
    );
}

async fn inverter_arrays(channel: Channel) {
    let mut c = Clients::new(&channel);
    // Inverter arrays, filtered by system.
    for (id, system_id) in [("a1", "home"), ("a2", "home"), ("c1", "cabin")] {
        c.arrays
            .create_inverter_array(CreateInverterArrayRequest {
                inverter_array: Some(InverterArray {
                    array_id: id.into(),
                    system_id: system_id.into(),
                    name: id.into(),
                    pv_capacity_kw: None,
                }),
            })
            .await
            .unwrap();
    }
    let home_arrays = c
        .arrays
        .list_inverter_arrays(ListInverterArraysRequest {
            system_id: "home".into(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        home_arrays
            .inverter_arrays
            .iter()
            .map(|a| a.array_id.as_str())
            .collect::<Vec<_>>(),
        ["a1", "a2"]
    );
    let array = c
        .arrays
        .update_inverter_array(UpdateInverterArrayRequest {
            inverter_array: Some(InverterArray {
                array_id: "a1".into(),
                pv_capacity_kw: Some(9.5),
                ..InverterArray::default()
            }),
            update_mask: mask(&["pv_capacity_kw"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            array.pv_capacity_kw,
            array.system_id.as_str(),
            array.name.as_str()
        ),
        (Some(9.5), "home", "a1")
    );
}

async fn inverters(channel: Channel) {
    let mut c = Clients::new(&channel);
    // Inverters: system_id comes from the array; list by array, paged.
    for (id, array) in [("inv1", "a1"), ("inv2", "a1"), ("inv3", "a2")] {
        let created = c
            .inverters
            .create_inverter(CreateInverterRequest {
                inverter: Some(inverter(id, array)),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(created.system_id, "home");
    }
    let page = c
        .inverters
        .list_inverters(ListInvertersRequest {
            array_id: "a1".into(),
            page_size: 1,
            ..ListInvertersRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        page.inverters
            .iter()
            .map(|i| i.inverter_id.as_str())
            .collect::<Vec<_>>(),
        ["inv1"]
    );
    let rest = c
        .inverters
        .list_inverters(ListInvertersRequest {
            array_id: "a1".into(),
            page_size: 10,
            page_token: page.next_page_token,
            ..ListInvertersRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rest.inverters
            .iter()
            .map(|i| i.inverter_id.as_str())
            .collect::<Vec<_>>(),
        ["inv2"]
    );
    let moved = c
        .inverters
        .update_inverter(UpdateInverterRequest {
            inverter: Some(Inverter {
                inverter_id: "inv2".into(),
                array_id: "a2".into(),
                rated_power_w: Some(5000.0),
                ..Inverter::default()
            }),
            update_mask: mask(&["array_id", "rated_power_w"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            moved.array_id.as_str(),
            moved.rated_power_w,
            moved.name.as_str()
        ),
        ("a2", Some(5000.0), "Inverter inv2")
    );
    let got = c
        .inverters
        .get_inverter(GetInverterRequest {
            inverter_id: "inv2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, moved);
}

async fn battery_resources(channel: Channel) {
    let mut c = Clients::new(&channel);
    // Battery arrays, attachments, packs, batteries, cells.
    c.battery_arrays
        .create_battery_array(CreateBatteryArrayRequest {
            battery_array: Some(BatteryArray {
                battery_array_id: "ba1".into(),
                system_id: "home".into(),
                name: "Bank".into(),
            }),
        })
        .await
        .unwrap();
    let attachment = c
        .attachments
        .create_battery_array_attachment(CreateBatteryArrayAttachmentRequest {
            battery_array_attachment: Some(BatteryArrayAttachment {
                battery_array_id: "ba1".into(),
                inverter_array_id: "a1".into(),
                attached_since: ts(1_735_689_600),
                ..BatteryArrayAttachment::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (attachment.system_id.as_str(), attachment.detached_at),
        ("home", None)
    );
    let detached = c
        .attachments
        .update_battery_array_attachment(UpdateBatteryArrayAttachmentRequest {
            battery_array_attachment: Some(BatteryArrayAttachment {
                battery_array_id: "ba1".into(),
                attached_since: ts(1_735_689_600),
                detached_at: ts(1_736_000_000),
                ..BatteryArrayAttachment::default()
            }),
            update_mask: mask(&["detached_at"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detached.detached_at, ts(1_736_000_000));
    c.attachments
        .create_battery_array_attachment(CreateBatteryArrayAttachmentRequest {
            battery_array_attachment: Some(BatteryArrayAttachment {
                battery_array_id: "ba1".into(),
                inverter_array_id: "a2".into(),
                attached_since: ts(1_736_000_000),
                ..BatteryArrayAttachment::default()
            }),
        })
        .await
        .unwrap();
    let active = c
        .attachments
        .list_battery_array_attachments(ListBatteryArrayAttachmentsRequest {
            battery_array_id: "ba1".into(),
            active_only: true,
            ..ListBatteryArrayAttachmentsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        active
            .battery_array_attachments
            .iter()
            .map(|a| a.inverter_array_id.as_str())
            .collect::<Vec<_>>(),
        ["a2"]
    );

    let pack = c
        .packs
        .create_battery_pack(CreateBatteryPackRequest {
            battery_pack: Some(BatteryPack {
                pack_id: "p1".into(),
                battery_array_id: Some("ba1".into()),
                name: "Pack".into(),
                nominal_kwh: Some(10.0),
                ..BatteryPack::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pack.system_id, "home");
    c.batteries
        .create_battery(CreateBatteryRequest {
            battery: Some(Battery {
                battery_id: "p1.b1".into(),
                pack_id: "p1".into(),
                battery_index: 1,
                ..Battery::default()
            }),
        })
        .await
        .unwrap();
    let cell = c
        .cells
        .create_battery_cell(CreateBatteryCellRequest {
            battery_cell: Some(BatteryCell {
                cell_id: "p1.b1.c1".into(),
                battery_id: "p1.b1".into(),
                cell_index: 1,
                nominal_voltage: Some(3.2),
                ..BatteryCell::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (cell.pack_id.as_str(), cell.system_id.as_str()),
        ("p1", "home"),
        "a cell answers with its parents"
    );
    let battery = c
        .batteries
        .get_battery(GetBatteryRequest {
            battery_id: "p1.b1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            battery.system_id.as_str(),
            battery.battery_array_id.as_deref()
        ),
        ("home", Some("ba1"))
    );
    let listed_cells = c
        .cells
        .list_battery_cells(ListBatteryCellsRequest {
            system_id: "home".into(),
            ..ListBatteryCellsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed_cells.battery_cells.len(), 1);
    let updated_cell = c
        .cells
        .update_battery_cell(UpdateBatteryCellRequest {
            battery_cell: Some(BatteryCell {
                cell_id: "p1.b1.c1".into(),
                nominal_voltage: Some(3.3),
                ..BatteryCell::default()
            }),
            update_mask: mask(&["nominal_voltage"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (updated_cell.nominal_voltage, updated_cell.cell_index),
        (Some(3.3), 1)
    );
}

async fn adapters_and_meters(channel: Channel) {
    let mut c = Clients::new(&channel);
    // Adapter types, adapters, meters, pack adapters.
    c.adapter_types
        .create_adapter_type(CreateAdapterTypeRequest {
            adapter_type: Some(AdapterType {
                adapter_type: "test_meter".into(),
                device_category: "meter".into(),
                name: "Test meter".into(),
                config_schema: METER_SCHEMA.into(),
                supported_transports: vec!["tcp".into()],
                ..AdapterType::default()
            }),
        })
        .await
        .unwrap();
    let adapter = c
        .adapters
        .create_adapter(CreateAdapterRequest {
            adapter: Some(Adapter {
                adapter_id: "m1.adapter".into(),
                adapter_type: "test_meter".into(),
                device_id: "m1".into(),
                config_json: r#"{"port": 502, "host": "10.0.0.5"}"#.into(),
                ..Adapter::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            adapter.device_category.as_str(),
            adapter.enabled,
            adapter.priority
        ),
        ("meter", Some(true), 1)
    );
    assert_eq!(adapter.config_json, r#"{"host":"10.0.0.5","port":502}"#);
    let meter = c
        .meters
        .create_meter(CreateMeterRequest {
            meter: Some(Meter {
                meter_id: "m1".into(),
                system_id: "home".into(),
                adapter_id: Some("m1.adapter".into()),
                name: "Grid".into(),
                ..Meter::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((meter.meter_type.as_str(), meter.array_id), ("grid", None));
    let meter = c
        .meters
        .update_meter(UpdateMeterRequest {
            meter: Some(Meter {
                meter_id: "m1".into(),
                array_id: Some("a1".into()),
                ..Meter::default()
            }),
            update_mask: mask(&["array_id"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meter.array_id.as_deref(), Some("a1"));
    let by_array = c
        .meters
        .list_meters(ListMetersRequest {
            array_id: "a1".into(),
            ..ListMetersRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_array.meters.len(), 1);
    let pack_adapter = c
        .pack_adapters
        .create_battery_pack_adapter(CreateBatteryPackAdapterRequest {
            battery_pack_adapter: Some(BatteryPackAdapter {
                pack_id: "p1".into(),
                adapter_id: "m1.adapter".into(),
                priority: 2,
                ..BatteryPackAdapter::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            pack_adapter.system_id.as_str(),
            pack_adapter.priority,
            pack_adapter.enabled
        ),
        ("home", 2, Some(true))
    );
    let pack_adapter = c
        .pack_adapters
        .update_battery_pack_adapter(UpdateBatteryPackAdapterRequest {
            battery_pack_adapter: Some(BatteryPackAdapter {
                pack_id: "p1".into(),
                adapter_id: "m1.adapter".into(),
                enabled: Some(false),
                ..BatteryPackAdapter::default()
            }),
            update_mask: mask(&["enabled"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (pack_adapter.priority, pack_adapter.enabled),
        (2, Some(false))
    );
    let listed = c
        .adapter_types
        .list_adapter_types(ListAdapterTypesRequest {
            device_category: "meter".into(),
            ..ListAdapterTypesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .adapter_types
            .iter()
            .map(|t| t.adapter_type.as_str())
            .collect::<Vec<_>>(),
        ["test_meter"]
    );
    let renamed = c
        .adapter_types
        .update_adapter_type(UpdateAdapterTypeRequest {
            adapter_type: Some(AdapterType {
                adapter_type: "test_meter".into(),
                name: "Renamed".into(),
                ..AdapterType::default()
            }),
            update_mask: mask(&["name"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (renamed.name.as_str(), renamed.config_schema.as_str()),
        ("Renamed", METER_SCHEMA)
    );
    let adapter = c
        .adapters
        .update_adapter(UpdateAdapterRequest {
            adapter: Some(Adapter {
                adapter_id: "m1.adapter".into(),
                collector_id: Some("site-a".into()),
                ..Adapter::default()
            }),
            update_mask: mask(&["collector_id"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(adapter.collector_id.as_deref(), Some("site-a"));
    let by_collector = c
        .adapters
        .list_adapters(ListAdaptersRequest {
            collector_id: "site-a".into(),
            ..ListAdaptersRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_collector.adapters.len(), 1);
    let battery = c
        .batteries
        .update_battery(UpdateBatteryRequest {
            battery: Some(Battery {
                battery_id: "p1.b1".into(),
                serial_number: "SN-1".into(),
                ..Battery::default()
            }),
            update_mask: mask(&["serial_number"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (battery.serial_number.as_str(), battery.battery_index),
        ("SN-1", 1)
    );
    let pack = c
        .packs
        .update_battery_pack(UpdateBatteryPackRequest {
            battery_pack: Some(BatteryPack {
                pack_id: "p1".into(),
                chemistry: "LFP".into(),
                ..BatteryPack::default()
            }),
            update_mask: mask(&["chemistry"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (pack.chemistry.as_str(), pack.nominal_kwh),
        ("LFP", Some(10.0))
    );
    let battery_array = c
        .battery_arrays
        .update_battery_array(UpdateBatteryArrayRequest {
            battery_array: Some(BatteryArray {
                battery_array_id: "ba1".into(),
                name: "Bank 1".into(),
                ..BatteryArray::default()
            }),
            update_mask: mask(&["name"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(battery_array.name, "Bank 1");
}

async fn every_answer_has_its_parents(channel: Channel) {
    let mut c = Clients::new(&channel);
    // Get and list every remaining resource once more: each answers with its parent ids.
    let got = c
        .arrays
        .get_inverter_array(GetInverterArrayRequest {
            array_id: "a1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.system_id.as_str(), got.pv_capacity_kw),
        ("home", Some(9.5))
    );
    let got = c
        .battery_arrays
        .get_battery_array(GetBatteryArrayRequest {
            battery_array_id: "ba1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.name.as_str(), got.system_id.as_str()),
        ("Bank 1", "home")
    );
    let listed = c
        .battery_arrays
        .list_battery_arrays(ListBatteryArraysRequest {
            system_id: "home".into(),
            ..ListBatteryArraysRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.battery_arrays.len(), 1);
    let got = c
        .attachments
        .get_battery_array_attachment(GetBatteryArrayAttachmentRequest {
            battery_array_id: "ba1".into(),
            attached_since: ts(1_735_689_600),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.inverter_array_id.as_str(), got.detached_at),
        ("a1", ts(1_736_000_000))
    );
    let got = c
        .packs
        .get_battery_pack(GetBatteryPackRequest {
            pack_id: "p1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.battery_array_id.as_deref(), got.chemistry.as_str()),
        (Some("ba1"), "LFP")
    );
    let listed = c
        .packs
        .list_battery_packs(ListBatteryPacksRequest {
            battery_array_id: "ba1".into(),
            ..ListBatteryPacksRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .battery_packs
            .iter()
            .map(|p| p.pack_id.as_str())
            .collect::<Vec<_>>(),
        ["p1"]
    );
    let listed = c
        .batteries
        .list_batteries(ListBatteriesRequest {
            pack_id: "p1".into(),
            ..ListBatteriesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .batteries
            .iter()
            .map(|b| (b.battery_id.as_str(), b.system_id.as_str()))
            .collect::<Vec<_>>(),
        [("p1.b1", "home")]
    );
    let got = c
        .cells
        .get_battery_cell(GetBatteryCellRequest {
            cell_id: "p1.b1.c1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            got.battery_id.as_str(),
            got.pack_id.as_str(),
            got.nominal_voltage
        ),
        ("p1.b1", "p1", Some(3.3))
    );
    let got = c
        .meters
        .get_meter(GetMeterRequest {
            meter_id: "m1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.system_id.as_str(), got.adapter_id.as_deref()),
        ("home", Some("m1.adapter"))
    );
    let got = c
        .adapter_types
        .get_adapter_type(GetAdapterTypeRequest {
            adapter_type: "test_meter".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.name.as_str(), got.supported_transports.clone()),
        ("Renamed", vec!["tcp".to_owned()])
    );
    let got = c
        .adapters
        .get_adapter(GetAdapterRequest {
            adapter_id: "m1.adapter".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.collector_id.as_deref(), got.device_id.as_str()),
        (Some("site-a"), "m1")
    );
    let got = c
        .pack_adapters
        .get_battery_pack_adapter(GetBatteryPackAdapterRequest {
            pack_id: "p1".into(),
            adapter_id: "m1.adapter".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.system_id.as_str(), got.enabled), ("home", Some(false)));
    let listed = c
        .pack_adapters
        .list_battery_pack_adapters(ListBatteryPackAdaptersRequest {
            pack_id: "p1".into(),
            ..ListBatteryPackAdaptersRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.battery_pack_adapters.len(), 1);
}

async fn deletes_leaves_first(channel: Channel) {
    let mut c = Clients::new(&channel);
    // Delete leaves first: each delete needs no cascade, and afterwards the resource is gone.
    c.pack_adapters
        .delete_battery_pack_adapter(DeleteBatteryPackAdapterRequest {
            pack_id: "p1".into(),
            adapter_id: "m1.adapter".into(),
            cascade: false,
        })
        .await
        .unwrap();
    c.meters
        .delete_meter(DeleteMeterRequest {
            meter_id: "m1".into(),
            cascade: false,
        })
        .await
        .unwrap();
    c.adapters
        .delete_adapter(DeleteAdapterRequest {
            adapter_id: "m1.adapter".into(),
            cascade: false,
        })
        .await
        .unwrap();
    c.adapter_types
        .delete_adapter_type(DeleteAdapterTypeRequest {
            adapter_type: "test_meter".into(),
            cascade: false,
        })
        .await
        .unwrap();
    c.cells
        .delete_battery_cell(DeleteBatteryCellRequest {
            cell_id: "p1.b1.c1".into(),
            cascade: false,
        })
        .await
        .unwrap();
    c.batteries
        .delete_battery(DeleteBatteryRequest {
            battery_id: "p1.b1".into(),
            cascade: false,
        })
        .await
        .unwrap();
    c.packs
        .delete_battery_pack(DeleteBatteryPackRequest {
            pack_id: "p1".into(),
            cascade: false,
        })
        .await
        .unwrap();
    for since in [1_735_689_600, 1_736_000_000] {
        let deleted = c
            .attachments
            .delete_battery_array_attachment(DeleteBatteryArrayAttachmentRequest {
                battery_array_id: "ba1".into(),
                attached_since: ts(since),
                cascade: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(deleted.deleted.get("battery_array_attachments"), Some(&1));
    }
    c.battery_arrays
        .delete_battery_array(DeleteBatteryArrayRequest {
            battery_array_id: "ba1".into(),
            cascade: false,
        })
        .await
        .unwrap();
    for id in ["inv1", "inv2", "inv3"] {
        c.inverters
            .delete_inverter(DeleteInverterRequest {
                inverter_id: id.into(),
                cascade: false,
            })
            .await
            .unwrap();
    }
    let error = c
        .inverters
        .get_inverter(GetInverterRequest {
            inverter_id: "inv1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    for id in ["a1", "a2"] {
        c.arrays
            .delete_inverter_array(DeleteInverterArrayRequest {
                array_id: id.into(),
                cascade: false,
            })
            .await
            .unwrap();
    }
}

async fn cascade_deletes_a_system(channel: Channel) {
    let mut c = Clients::new(&channel);
    // A system with children goes only with cascade, which reports what it took along.
    let error = c
        .systems
        .delete_system(DeleteSystemRequest {
            system_id: "cabin".into(),
            cascade: false,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    let deleted = c
        .systems
        .delete_system(DeleteSystemRequest {
            system_id: "cabin".into(),
            cascade: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            deleted.deleted.get("arrays"),
            deleted.deleted.get("systems")
        ),
        (Some(&1), Some(&1))
    );
    c.systems
        .delete_system(DeleteSystemRequest {
            system_id: "home".into(),
            cascade: false,
        })
        .await
        .unwrap();
    let left = c
        .systems
        .list_systems(ListSystemsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(left.systems.is_empty());
}

on_both_backends!(every_resource_lifecycle);

type Call = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), solarhub_proto::tonic::Status>> + Send>,
>;

macro_rules! call {
    ($client:expr, $method:ident, $request:expr) => {{
        let mut client = $client.clone();
        let request = $request;
        Box::pin(async move { client.$method(request).await.map(|_| ()) }) as Call
    }};
}

/// A small installation the error cases run against.
async fn error_fixture(channel: Channel, database: &solarhub_hub::db::Database) {
    let mut systems = SystemServiceClient::new(channel.clone());
    for id in ["home", "cabin"] {
        systems
            .create_system(CreateSystemRequest {
                system: Some(system(id)),
            })
            .await
            .unwrap();
    }
    let mut arrays = InverterArrayServiceClient::new(channel.clone());
    for (id, system_id) in [("a1", "home"), ("c1", "cabin")] {
        arrays
            .create_inverter_array(CreateInverterArrayRequest {
                inverter_array: Some(InverterArray {
                    array_id: id.into(),
                    system_id: system_id.into(),
                    name: id.into(),
                    pv_capacity_kw: None,
                }),
            })
            .await
            .unwrap();
    }
    InverterServiceClient::new(channel.clone())
        .create_inverter(CreateInverterRequest {
            inverter: Some(inverter("inv1", "a1")),
        })
        .await
        .unwrap();
    BatteryArrayServiceClient::new(channel.clone())
        .create_battery_array(CreateBatteryArrayRequest {
            battery_array: Some(BatteryArray {
                battery_array_id: "ba1".into(),
                system_id: "home".into(),
                name: "Bank".into(),
            }),
        })
        .await
        .unwrap();
    BatteryArrayAttachmentServiceClient::new(channel.clone())
        .create_battery_array_attachment(CreateBatteryArrayAttachmentRequest {
            battery_array_attachment: Some(BatteryArrayAttachment {
                battery_array_id: "ba1".into(),
                inverter_array_id: "a1".into(),
                attached_since: ts(1_000_000),
                ..BatteryArrayAttachment::default()
            }),
        })
        .await
        .unwrap();
    BatteryPackServiceClient::new(channel.clone())
        .create_battery_pack(CreateBatteryPackRequest {
            battery_pack: Some(BatteryPack {
                pack_id: "p1".into(),
                battery_array_id: Some("ba1".into()),
                name: "Pack".into(),
                ..BatteryPack::default()
            }),
        })
        .await
        .unwrap();
    BatteryServiceClient::new(channel.clone())
        .create_battery(CreateBatteryRequest {
            battery: Some(Battery {
                battery_id: "p1.b1".into(),
                pack_id: "p1".into(),
                battery_index: 1,
                ..Battery::default()
            }),
        })
        .await
        .unwrap();
    BatteryCellServiceClient::new(channel.clone())
        .create_battery_cell(CreateBatteryCellRequest {
            battery_cell: Some(BatteryCell {
                cell_id: "p1.b1.c1".into(),
                battery_id: "p1.b1".into(),
                cell_index: 1,
                ..BatteryCell::default()
            }),
        })
        .await
        .unwrap();
    AdapterTypeServiceClient::new(channel.clone())
        .create_adapter_type(CreateAdapterTypeRequest {
            adapter_type: Some(AdapterType {
                adapter_type: "test_meter".into(),
                device_category: "meter".into(),
                name: "Test meter".into(),
                config_schema: METER_SCHEMA.into(),
                supported_transports: vec!["tcp".into()],
                ..AdapterType::default()
            }),
        })
        .await
        .unwrap();
    AdapterServiceClient::new(channel.clone())
        .create_adapter(CreateAdapterRequest {
            adapter: Some(Adapter {
                adapter_id: "m1.adapter".into(),
                adapter_type: "test_meter".into(),
                config_json: r#"{"host":"h"}"#.into(),
                ..Adapter::default()
            }),
        })
        .await
        .unwrap();
    MeterServiceClient::new(channel.clone())
        .create_meter(CreateMeterRequest {
            meter: Some(Meter {
                meter_id: "m1".into(),
                system_id: "home".into(),
                adapter_id: Some("m1.adapter".into()),
                name: "Grid".into(),
                ..Meter::default()
            }),
        })
        .await
        .unwrap();
    BatteryPackAdapterServiceClient::new(channel.clone())
        .create_battery_pack_adapter(CreateBatteryPackAdapterRequest {
            battery_pack_adapter: Some(BatteryPackAdapter {
                pack_id: "p1".into(),
                adapter_id: "m1.adapter".into(),
                ..BatteryPackAdapter::default()
            }),
        })
        .await
        .unwrap();
    // inv1 has samples: those are children too.
    let sample = solarhub_hub::db::samples::EnergySample {
        inverter_id: "inv1".into(),
        ts: 1_000,
        array_id: Some("a1".into()),
        system_id: "home".into(),
        pv_power_w: Some(100.0),
        ..Default::default()
    };
    let mut conn = database.get().unwrap();
    solarhub_hub::db::samples::insert_energy_samples(&mut conn, &[sample]).unwrap();
}

fn error_cases(channel: &Channel) -> Vec<(&'static str, Code, &'static str, Call)> {
    let systems = SystemServiceClient::new(channel.clone());
    let arrays = InverterArrayServiceClient::new(channel.clone());
    let inverters = InverterServiceClient::new(channel.clone());
    let battery_arrays = BatteryArrayServiceClient::new(channel.clone());
    let attachments = BatteryArrayAttachmentServiceClient::new(channel.clone());
    let packs = BatteryPackServiceClient::new(channel.clone());
    let batteries = BatteryServiceClient::new(channel.clone());
    let cells = BatteryCellServiceClient::new(channel.clone());
    let meters = MeterServiceClient::new(channel.clone());
    let adapter_types = AdapterTypeServiceClient::new(channel.clone());
    let adapters = AdapterServiceClient::new(channel.clone());
    let pack_adapters = BatteryPackAdapterServiceClient::new(channel.clone());
    let attachment = |battery_array: &str, inverter_array: &str, since: i64, until: Option<i64>| {
        BatteryArrayAttachment {
            battery_array_id: battery_array.into(),
            inverter_array_id: inverter_array.into(),
            attached_since: ts(since),
            detached_at: until.and_then(ts),
            ..BatteryArrayAttachment::default()
        }
    };
    let adapter = |id: &str, adapter_type: &str, config: &str| Adapter {
        adapter_id: id.into(),
        adapter_type: adapter_type.into(),
        config_json: config.into(),
        ..Adapter::default()
    };
    vec![
        // systems
        (
            "system: bad id",
            Code::InvalidArgument,
            "system.system_id",
            call!(
                systems,
                create_system,
                CreateSystemRequest {
                    system: Some(system("bad id!"))
                }
            ),
        ),
        (
            "system: bad timezone",
            Code::InvalidArgument,
            "system.timezone",
            call!(
                systems,
                create_system,
                CreateSystemRequest {
                    system: Some(System {
                        timezone: "Mars/Base".into(),
                        ..system("mars")
                    })
                }
            ),
        ),
        (
            "system: duplicate",
            Code::AlreadyExists,
            "system.system_id",
            call!(
                systems,
                create_system,
                CreateSystemRequest {
                    system: Some(system("home"))
                }
            ),
        ),
        (
            "system: missing",
            Code::NotFound,
            "resource:system:nope",
            call!(
                systems,
                get_system,
                GetSystemRequest {
                    system_id: "nope".into()
                }
            ),
        ),
        (
            "system: children",
            Code::FailedPrecondition,
            "precondition:arrays",
            call!(
                systems,
                delete_system,
                DeleteSystemRequest {
                    system_id: "home".into(),
                    cascade: false
                }
            ),
        ),
        (
            "system: bad page token",
            Code::InvalidArgument,
            "page_token",
            call!(
                systems,
                list_systems,
                ListSystemsRequest {
                    page_size: 1,
                    page_token: "zz".into()
                }
            ),
        ),
        // inverter arrays
        (
            "array: bad id",
            Code::InvalidArgument,
            "inverter_array.array_id",
            call!(
                arrays,
                create_inverter_array,
                CreateInverterArrayRequest {
                    inverter_array: Some(InverterArray {
                        array_id: "a 1".into(),
                        system_id: "home".into(),
                        name: "x".into(),
                        pv_capacity_kw: None
                    })
                }
            ),
        ),
        (
            "array: missing system",
            Code::NotFound,
            "inverter_array.system_id",
            call!(
                arrays,
                create_inverter_array,
                CreateInverterArrayRequest {
                    inverter_array: Some(InverterArray {
                        array_id: "a9".into(),
                        system_id: "nope".into(),
                        name: "x".into(),
                        pv_capacity_kw: None
                    })
                }
            ),
        ),
        (
            "array: duplicate",
            Code::AlreadyExists,
            "inverter_array.array_id",
            call!(
                arrays,
                create_inverter_array,
                CreateInverterArrayRequest {
                    inverter_array: Some(InverterArray {
                        array_id: "a1".into(),
                        system_id: "home".into(),
                        name: "x".into(),
                        pv_capacity_kw: None
                    })
                }
            ),
        ),
        (
            "array: negative capacity",
            Code::InvalidArgument,
            "inverter_array.pv_capacity_kw",
            call!(
                arrays,
                create_inverter_array,
                CreateInverterArrayRequest {
                    inverter_array: Some(InverterArray {
                        array_id: "a9".into(),
                        system_id: "home".into(),
                        name: "x".into(),
                        pv_capacity_kw: Some(-1.0)
                    })
                }
            ),
        ),
        (
            "array: children",
            Code::FailedPrecondition,
            "precondition:inverters",
            call!(
                arrays,
                delete_inverter_array,
                DeleteInverterArrayRequest {
                    array_id: "a1".into(),
                    cascade: false
                }
            ),
        ),
        (
            "array: list in missing system",
            Code::NotFound,
            "system_id",
            call!(
                arrays,
                list_inverter_arrays,
                ListInverterArraysRequest {
                    system_id: "nope".into(),
                    ..ListInverterArraysRequest::default()
                }
            ),
        ),
        // inverters
        (
            "inverter: bad id",
            Code::InvalidArgument,
            "inverter.inverter_id",
            call!(
                inverters,
                create_inverter,
                CreateInverterRequest {
                    inverter: Some(inverter("", "a1"))
                }
            ),
        ),
        (
            "inverter: missing array",
            Code::NotFound,
            "inverter.array_id",
            call!(
                inverters,
                create_inverter,
                CreateInverterRequest {
                    inverter: Some(inverter("inv9", "a9"))
                }
            ),
        ),
        (
            "inverter: duplicate",
            Code::AlreadyExists,
            "inverter.inverter_id",
            call!(
                inverters,
                create_inverter,
                CreateInverterRequest {
                    inverter: Some(inverter("inv1", "a1"))
                }
            ),
        ),
        (
            "inverter: other system",
            Code::InvalidArgument,
            "inverter.system_id",
            call!(
                inverters,
                create_inverter,
                CreateInverterRequest {
                    inverter: Some(Inverter {
                        system_id: "cabin".into(),
                        ..inverter("inv9", "a1")
                    })
                }
            ),
        ),
        (
            "inverter: negative rating",
            Code::InvalidArgument,
            "inverter.rated_power_w",
            call!(
                inverters,
                create_inverter,
                CreateInverterRequest {
                    inverter: Some(Inverter {
                        rated_power_w: Some(-5.0),
                        ..inverter("inv9", "a1")
                    })
                }
            ),
        ),
        (
            "inverter: a NUL in a free text (Postgres said INTERNAL)",
            Code::InvalidArgument,
            "inverter.model",
            call!(
                inverters,
                create_inverter,
                CreateInverterRequest {
                    inverter: Some(Inverter {
                        model: "SUN-\u{0}5K".into(),
                        ..inverter("inv9", "a1")
                    })
                }
            ),
        ),
        (
            "inverter: a NUL in a name",
            Code::InvalidArgument,
            "inverter.name",
            call!(
                inverters,
                create_inverter,
                CreateInverterRequest {
                    inverter: Some(Inverter {
                        name: "Roof\u{0}".into(),
                        ..inverter("inv9", "a1")
                    })
                }
            ),
        ),
        (
            "inverter: missing adapter",
            Code::NotFound,
            "inverter.adapter_id",
            call!(
                inverters,
                create_inverter,
                CreateInverterRequest {
                    inverter: Some(Inverter {
                        adapter_id: Some("nope".into()),
                        ..inverter("inv9", "a1")
                    })
                }
            ),
        ),
        (
            "inverter: id in mask",
            Code::InvalidArgument,
            "update_mask.paths[0]",
            call!(
                inverters,
                update_inverter,
                UpdateInverterRequest {
                    inverter: Some(inverter("inv1", "a1")),
                    update_mask: mask(&["inverter_id"])
                }
            ),
        ),
        (
            "inverter: unknown mask field",
            Code::InvalidArgument,
            "update_mask.paths[1]",
            call!(
                inverters,
                update_inverter,
                UpdateInverterRequest {
                    inverter: Some(inverter("inv1", "a1")),
                    update_mask: mask(&["name", "colour"])
                }
            ),
        ),
        (
            "inverter: no mask (every field would be replaced)",
            Code::InvalidArgument,
            "update_mask",
            call!(
                inverters,
                update_inverter,
                UpdateInverterRequest {
                    inverter: Some(inverter("inv1", "a1")),
                    update_mask: None
                }
            ),
        ),
        (
            "inverter: \"*\" with other paths",
            Code::InvalidArgument,
            "update_mask.paths[1]",
            call!(
                inverters,
                update_inverter,
                UpdateInverterRequest {
                    inverter: Some(inverter("inv1", "a1")),
                    update_mask: mask(&["name", "*"])
                }
            ),
        ),
        (
            "inverter: update missing",
            Code::NotFound,
            "resource:inverter:inv9",
            call!(
                inverters,
                update_inverter,
                UpdateInverterRequest {
                    inverter: Some(inverter("inv9", "a1")),
                    update_mask: mask(&["name"])
                }
            ),
        ),
        (
            "inverter: samples",
            Code::FailedPrecondition,
            "precondition:energy_samples",
            call!(
                inverters,
                delete_inverter,
                DeleteInverterRequest {
                    inverter_id: "inv1".into(),
                    cascade: false
                }
            ),
        ),
        (
            "inverter: list in missing array",
            Code::NotFound,
            "array_id",
            call!(
                inverters,
                list_inverters,
                ListInvertersRequest {
                    array_id: "a9".into(),
                    ..ListInvertersRequest::default()
                }
            ),
        ),
        (
            "inverter: no body",
            Code::InvalidArgument,
            "inverter",
            call!(
                inverters,
                create_inverter,
                CreateInverterRequest { inverter: None }
            ),
        ),
        // battery arrays
        (
            "battery array: missing system",
            Code::NotFound,
            "battery_array.system_id",
            call!(
                battery_arrays,
                create_battery_array,
                CreateBatteryArrayRequest {
                    battery_array: Some(BatteryArray {
                        battery_array_id: "ba9".into(),
                        system_id: "nope".into(),
                        name: "x".into()
                    })
                }
            ),
        ),
        (
            "battery array: duplicate",
            Code::AlreadyExists,
            "battery_array.battery_array_id",
            call!(
                battery_arrays,
                create_battery_array,
                CreateBatteryArrayRequest {
                    battery_array: Some(BatteryArray {
                        battery_array_id: "ba1".into(),
                        system_id: "home".into(),
                        name: "x".into()
                    })
                }
            ),
        ),
        (
            "battery array: empty name",
            Code::InvalidArgument,
            "battery_array.name",
            call!(
                battery_arrays,
                create_battery_array,
                CreateBatteryArrayRequest {
                    battery_array: Some(BatteryArray {
                        battery_array_id: "ba9".into(),
                        system_id: "home".into(),
                        name: " ".into()
                    })
                }
            ),
        ),
        (
            "battery array: children",
            Code::FailedPrecondition,
            "precondition:battery_packs",
            call!(
                battery_arrays,
                delete_battery_array,
                DeleteBatteryArrayRequest {
                    battery_array_id: "ba1".into(),
                    cascade: false
                }
            ),
        ),
        // attachments
        (
            "attachment: missing battery array",
            Code::NotFound,
            "battery_array_attachment.battery_array_id",
            call!(
                attachments,
                create_battery_array_attachment,
                CreateBatteryArrayAttachmentRequest {
                    battery_array_attachment: Some(attachment("ba9", "a1", 5_000_000, None))
                }
            ),
        ),
        (
            "attachment: no start",
            Code::InvalidArgument,
            "battery_array_attachment.attached_since",
            call!(
                attachments,
                create_battery_array_attachment,
                CreateBatteryArrayAttachmentRequest {
                    battery_array_attachment: Some(BatteryArrayAttachment {
                        attached_since: None,
                        ..attachment("ba1", "a1", 0, None)
                    })
                }
            ),
        ),
        (
            "attachment: overlapping",
            Code::FailedPrecondition,
            "battery_array_attachment.attached_since",
            call!(
                attachments,
                create_battery_array_attachment,
                CreateBatteryArrayAttachmentRequest {
                    battery_array_attachment: Some(attachment(
                        "ba1",
                        "a1",
                        500_000,
                        Some(2_000_000)
                    ))
                }
            ),
        ),
        (
            "attachment: second active",
            Code::FailedPrecondition,
            "battery_array_attachment.detached_at",
            call!(
                attachments,
                create_battery_array_attachment,
                CreateBatteryArrayAttachmentRequest {
                    battery_array_attachment: Some(attachment("ba1", "a1", 3_000_000, None))
                }
            ),
        ),
        (
            "attachment: other system",
            Code::InvalidArgument,
            "battery_array_attachment.inverter_array_id",
            call!(
                attachments,
                create_battery_array_attachment,
                CreateBatteryArrayAttachmentRequest {
                    battery_array_attachment: Some(attachment("ba1", "c1", 10, Some(20)))
                }
            ),
        ),
        (
            "attachment: detached before attached",
            Code::InvalidArgument,
            "battery_array_attachment.detached_at",
            call!(
                attachments,
                create_battery_array_attachment,
                CreateBatteryArrayAttachmentRequest {
                    battery_array_attachment: Some(attachment("ba1", "a1", 20, Some(10)))
                }
            ),
        ),
        (
            "attachment: duplicate",
            Code::AlreadyExists,
            "battery_array_attachment.battery_array_id",
            call!(
                attachments,
                create_battery_array_attachment,
                CreateBatteryArrayAttachmentRequest {
                    battery_array_attachment: Some(attachment("ba1", "a1", 1_000_000, None))
                }
            ),
        ),
        // packs
        (
            "pack: missing battery array",
            Code::NotFound,
            "battery_pack.battery_array_id",
            call!(
                packs,
                create_battery_pack,
                CreateBatteryPackRequest {
                    battery_pack: Some(BatteryPack {
                        pack_id: "p9".into(),
                        battery_array_id: Some("ba9".into()),
                        name: "x".into(),
                        ..BatteryPack::default()
                    })
                }
            ),
        ),
        (
            "pack: zero capacity",
            Code::InvalidArgument,
            "battery_pack.nominal_kwh",
            call!(
                packs,
                create_battery_pack,
                CreateBatteryPackRequest {
                    battery_pack: Some(BatteryPack {
                        pack_id: "p9".into(),
                        system_id: "home".into(),
                        name: "x".into(),
                        nominal_kwh: Some(0.0),
                        ..BatteryPack::default()
                    })
                }
            ),
        ),
        (
            "pack: duplicate",
            Code::AlreadyExists,
            "battery_pack.pack_id",
            call!(
                packs,
                create_battery_pack,
                CreateBatteryPackRequest {
                    battery_pack: Some(BatteryPack {
                        pack_id: "p1".into(),
                        system_id: "home".into(),
                        name: "x".into(),
                        ..BatteryPack::default()
                    })
                }
            ),
        ),
        (
            "pack: children",
            Code::FailedPrecondition,
            "precondition:batteries",
            call!(
                packs,
                delete_battery_pack,
                DeleteBatteryPackRequest {
                    pack_id: "p1".into(),
                    cascade: false
                }
            ),
        ),
        // batteries
        (
            "battery: missing pack",
            Code::NotFound,
            "battery.pack_id",
            call!(
                batteries,
                create_battery,
                CreateBatteryRequest {
                    battery: Some(Battery {
                        battery_id: "x.b1".into(),
                        pack_id: "p9".into(),
                        battery_index: 1,
                        ..Battery::default()
                    })
                }
            ),
        ),
        (
            "battery: index 0",
            Code::InvalidArgument,
            "battery.battery_index",
            call!(
                batteries,
                create_battery,
                CreateBatteryRequest {
                    battery: Some(Battery {
                        battery_id: "p1.b9".into(),
                        pack_id: "p1".into(),
                        battery_index: 0,
                        ..Battery::default()
                    })
                }
            ),
        ),
        (
            "battery: duplicate id",
            Code::AlreadyExists,
            "battery.battery_id",
            call!(
                batteries,
                create_battery,
                CreateBatteryRequest {
                    battery: Some(Battery {
                        battery_id: "p1.b1".into(),
                        pack_id: "p1".into(),
                        battery_index: 2,
                        ..Battery::default()
                    })
                }
            ),
        ),
        (
            "battery: duplicate index",
            Code::AlreadyExists,
            "battery.battery_index",
            call!(
                batteries,
                create_battery,
                CreateBatteryRequest {
                    battery: Some(Battery {
                        battery_id: "p1.other".into(),
                        pack_id: "p1".into(),
                        battery_index: 1,
                        ..Battery::default()
                    })
                }
            ),
        ),
        (
            "battery: children",
            Code::FailedPrecondition,
            "precondition:battery_cells",
            call!(
                batteries,
                delete_battery,
                DeleteBatteryRequest {
                    battery_id: "p1.b1".into(),
                    cascade: false
                }
            ),
        ),
        // cells
        (
            "cell: missing battery",
            Code::NotFound,
            "battery_cell.battery_id",
            call!(
                cells,
                create_battery_cell,
                CreateBatteryCellRequest {
                    battery_cell: Some(BatteryCell {
                        cell_id: "c9".into(),
                        battery_id: "nope".into(),
                        cell_index: 1,
                        ..BatteryCell::default()
                    })
                }
            ),
        ),
        (
            "cell: duplicate index",
            Code::AlreadyExists,
            "battery_cell.cell_index",
            call!(
                cells,
                create_battery_cell,
                CreateBatteryCellRequest {
                    battery_cell: Some(BatteryCell {
                        cell_id: "p1.b1.other".into(),
                        battery_id: "p1.b1".into(),
                        cell_index: 1,
                        ..BatteryCell::default()
                    })
                }
            ),
        ),
        (
            "cell: bad voltage",
            Code::InvalidArgument,
            "battery_cell.nominal_voltage",
            call!(
                cells,
                create_battery_cell,
                CreateBatteryCellRequest {
                    battery_cell: Some(BatteryCell {
                        cell_id: "p1.b1.c2".into(),
                        battery_id: "p1.b1".into(),
                        cell_index: 2,
                        nominal_voltage: Some(-3.2),
                        ..BatteryCell::default()
                    })
                }
            ),
        ),
        // meters
        (
            "meter: missing array",
            Code::NotFound,
            "meter.array_id",
            call!(
                meters,
                create_meter,
                CreateMeterRequest {
                    meter: Some(Meter {
                        meter_id: "m9".into(),
                        system_id: "home".into(),
                        array_id: Some("a9".into()),
                        name: "x".into(),
                        ..Meter::default()
                    })
                }
            ),
        ),
        (
            "meter: array of another system",
            Code::InvalidArgument,
            "meter.array_id",
            call!(
                meters,
                create_meter,
                CreateMeterRequest {
                    meter: Some(Meter {
                        meter_id: "m9".into(),
                        system_id: "home".into(),
                        array_id: Some("c1".into()),
                        name: "x".into(),
                        ..Meter::default()
                    })
                }
            ),
        ),
        (
            "meter: bad type",
            Code::InvalidArgument,
            "meter.meter_type",
            call!(
                meters,
                create_meter,
                CreateMeterRequest {
                    meter: Some(Meter {
                        meter_id: "m9".into(),
                        system_id: "home".into(),
                        name: "x".into(),
                        meter_type: "quantum".into(),
                        ..Meter::default()
                    })
                }
            ),
        ),
        (
            "meter: duplicate",
            Code::AlreadyExists,
            "meter.meter_id",
            call!(
                meters,
                create_meter,
                CreateMeterRequest {
                    meter: Some(Meter {
                        meter_id: "m1".into(),
                        system_id: "home".into(),
                        name: "x".into(),
                        ..Meter::default()
                    })
                }
            ),
        ),
        // adapter types
        (
            "adapter type: bad schema",
            Code::InvalidArgument,
            "adapter_type.config_schema",
            call!(
                adapter_types,
                create_adapter_type,
                CreateAdapterTypeRequest {
                    adapter_type: Some(AdapterType {
                        adapter_type: "t9".into(),
                        device_category: "meter".into(),
                        name: "x".into(),
                        // Not a JSON Schema: no such type.
                        config_schema: r#"{"type":"objekt"}"#.into(),
                        supported_transports: vec!["tcp".into()],
                        ..AdapterType::default()
                    })
                }
            ),
        ),
        (
            "adapter type: bad category",
            Code::InvalidArgument,
            "adapter_type.device_category",
            call!(
                adapter_types,
                create_adapter_type,
                CreateAdapterTypeRequest {
                    adapter_type: Some(AdapterType {
                        adapter_type: "t9".into(),
                        device_category: "toaster".into(),
                        name: "x".into(),
                        config_schema: "{}".into(),
                        supported_transports: vec!["tcp".into()],
                        ..AdapterType::default()
                    })
                }
            ),
        ),
        (
            "adapter type: in use",
            Code::FailedPrecondition,
            "precondition:adapters",
            call!(
                adapter_types,
                delete_adapter_type,
                DeleteAdapterTypeRequest {
                    adapter_type: "test_meter".into(),
                    cascade: false
                }
            ),
        ),
        // adapters
        (
            "adapter: unknown type",
            Code::NotFound,
            "adapter.adapter_type",
            call!(
                adapters,
                create_adapter,
                CreateAdapterRequest {
                    adapter: Some(adapter("x9", "nope", r#"{"host":"h"}"#))
                }
            ),
        ),
        (
            "adapter: config type",
            Code::InvalidArgument,
            "adapter.config_json.baudrate",
            call!(
                adapters,
                create_adapter,
                CreateAdapterRequest {
                    adapter: Some(adapter(
                        "x9",
                        "test_meter",
                        r#"{"host":"h","baudrate":"9600"}"#
                    ))
                }
            ),
        ),
        (
            "adapter: config unknown key",
            Code::InvalidArgument,
            "adapter.config_json.bogus",
            call!(
                adapters,
                create_adapter,
                CreateAdapterRequest {
                    adapter: Some(adapter("x9", "test_meter", r#"{"host":"h","bogus":1}"#))
                }
            ),
        ),
        (
            "adapter: config not json",
            Code::InvalidArgument,
            "adapter.config_json",
            call!(
                adapters,
                create_adapter,
                CreateAdapterRequest {
                    adapter: Some(adapter("x9", "test_meter", "{host"))
                }
            ),
        ),
        (
            "adapter: duplicate",
            Code::AlreadyExists,
            "adapter.adapter_id",
            call!(
                adapters,
                create_adapter,
                CreateAdapterRequest {
                    adapter: Some(adapter("m1.adapter", "test_meter", r#"{"host":"h"}"#))
                }
            ),
        ),
        (
            "adapter: in use",
            Code::FailedPrecondition,
            "precondition:meters",
            call!(
                adapters,
                delete_adapter,
                DeleteAdapterRequest {
                    adapter_id: "m1.adapter".into(),
                    cascade: false
                }
            ),
        ),
        // pack adapters
        (
            "pack adapter: missing pack",
            Code::NotFound,
            "battery_pack_adapter.pack_id",
            call!(
                pack_adapters,
                create_battery_pack_adapter,
                CreateBatteryPackAdapterRequest {
                    battery_pack_adapter: Some(BatteryPackAdapter {
                        pack_id: "p9".into(),
                        adapter_id: "m1.adapter".into(),
                        ..BatteryPackAdapter::default()
                    })
                }
            ),
        ),
        (
            "pack adapter: missing adapter",
            Code::NotFound,
            "battery_pack_adapter.adapter_id",
            call!(
                pack_adapters,
                create_battery_pack_adapter,
                CreateBatteryPackAdapterRequest {
                    battery_pack_adapter: Some(BatteryPackAdapter {
                        pack_id: "p1".into(),
                        adapter_id: "nope".into(),
                        ..BatteryPackAdapter::default()
                    })
                }
            ),
        ),
        (
            "pack adapter: bad priority",
            Code::InvalidArgument,
            "battery_pack_adapter.priority",
            call!(
                pack_adapters,
                create_battery_pack_adapter,
                CreateBatteryPackAdapterRequest {
                    battery_pack_adapter: Some(BatteryPackAdapter {
                        pack_id: "p1".into(),
                        adapter_id: "m1.adapter".into(),
                        priority: -1,
                        ..BatteryPackAdapter::default()
                    })
                }
            ),
        ),
        (
            "pack adapter: duplicate",
            Code::AlreadyExists,
            "battery_pack_adapter.pack_id",
            call!(
                pack_adapters,
                create_battery_pack_adapter,
                CreateBatteryPackAdapterRequest {
                    battery_pack_adapter: Some(BatteryPackAdapter {
                        pack_id: "p1".into(),
                        adapter_id: "m1.adapter".into(),
                        ..BatteryPackAdapter::default()
                    })
                }
            ),
        ),
    ]
}

/// Every documented error, per resource: the status code and the field (or resource, or
/// precondition subject) named in the error details. Nothing an error case tried is stored.
fn documented_errors_name_their_field(db: TestDb) {
    let hub = RunningHub::start(&db);
    let channel = hub.channel.clone();
    let database = hub.database.clone();
    hub.runtime.block_on(async move {
        error_fixture(channel.clone(), &database).await;
        let before = catalog_fingerprint(&database);
        let mut failures = Vec::new();
        for (name, code, field, call) in error_cases(&channel) {
            match call.await {
                Ok(()) => failures.push(format!("{name}: succeeded, expected {code:?}")),
                Err(status) => {
                    let (got, fields) = error_fields(&status);
                    if got != code || !fields.iter().any(|f| f == field) {
                        failures.push(format!(
                            "{name}: got {got:?} {fields:?} ({}), expected {code:?} naming {field}",
                            status.message()
                        ));
                    }
                    assert!(
                        !status.message().to_lowercase().contains("select"),
                        "{name}: SQL leaked: {}",
                        status.message()
                    );
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} error cases wrong:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert_eq!(
            catalog_fingerprint(&database),
            before,
            "a refused request changed the catalog"
        );
    });
}

fn catalog_fingerprint(database: &solarhub_hub::db::Database) -> Vec<Vec<String>> {
    let mut conn = database.get().unwrap();
    solarhub_hub::catalog::CatalogTable::ALL
        .iter()
        .map(|t| {
            solarhub_hub::db::introspect::table_fingerprint(&mut conn, t.table_name()).unwrap()
        })
        .collect()
}

on_both_backends!(documented_errors_name_their_field);

/// GetConfig after importing the real-installation config returns exactly that installation.
fn get_config_returns_the_imported_installation(db: TestDb) {
    let hub = RunningHub::start(&db);
    let types = solarhub_hub::adapter_types::builtin_adapter_types().unwrap();
    let loaded = solarhub_hub::config_import::parse_config(
        std::path::Path::new("installation.yaml"),
        include_str!("fixtures/installation.yaml"),
        &types,
    )
    .unwrap();
    let rows: Vec<_> = types.into_iter().map(|t| t.row).collect();
    {
        let mut conn = hub.database.get().unwrap();
        solarhub_hub::db::catalog::apply_installation(
            &mut conn,
            &rows,
            &loaded.installation,
            false,
        )
        .unwrap();
    }
    let channel = hub.channel.clone();
    let config = hub
        .runtime
        .block_on(async move {
            ConfigServiceClient::new(channel)
                .get_config(GetConfigRequest {
                    system_id: "home".into(),
                })
                .await
        })
        .unwrap()
        .into_inner();
    assert_eq!(config.adapter_types.len(), 9);
    assert_eq!(config.systems.len(), 1);
    let tree = &config.systems[0];
    let system = tree.system.as_ref().unwrap();
    assert_eq!(
        (
            system.system_id.as_str(),
            system.timezone.as_str(),
            system.currency.as_str()
        ),
        ("home", "Asia/Karachi", "PKR")
    );

    let arrays: Vec<(String, Vec<String>)> = tree
        .inverter_arrays
        .iter()
        .map(|a| {
            (
                a.inverter_array.as_ref().unwrap().array_id.clone(),
                a.inverters.iter().map(|i| i.inverter_id.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        arrays,
        [
            (
                "array1".to_owned(),
                vec!["powdrive2".to_owned(), "senergy1".to_owned()]
            ),
            ("array2".to_owned(), vec!["powdrive1".to_owned()])
        ]
    );
    let adapter_of: Vec<(String, Option<String>)> = tree
        .inverter_arrays
        .iter()
        .flat_map(|a| {
            a.inverters
                .iter()
                .map(|i| (i.inverter_id.clone(), i.adapter_id.clone()))
        })
        .collect();
    assert!(
        adapter_of
            .iter()
            .all(|(id, adapter)| adapter.as_deref() == Some(format!("{id}.adapter").as_str())),
        "{adapter_of:?}"
    );
    assert_eq!(
        tree.system_meters
            .iter()
            .map(|m| m.meter_id.as_str())
            .collect::<Vec<_>>(),
        ["grid_meter_1"]
    );

    // (battery array, [(pack, batteries, cells)])
    type BankSummary = (String, Vec<(String, usize, usize)>);
    let banks: Vec<BankSummary> = tree
        .battery_arrays
        .iter()
        .map(|b| {
            (
                b.battery_array.as_ref().unwrap().battery_array_id.clone(),
                b.battery_packs
                    .iter()
                    .map(|p| {
                        (
                            p.battery_pack.as_ref().unwrap().pack_id.clone(),
                            p.batteries.len(),
                            p.batteries.iter().map(|b| b.cells.len()).sum(),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        banks,
        [
            (
                "battery_array1".to_owned(),
                vec![("jkbms_bank".to_owned(), 3, 48)]
            ),
            (
                "battery_array2".to_owned(),
                vec![("battery1".to_owned(), 4, 60)]
            ),
        ]
    );
    let jk = &tree.battery_arrays[0].battery_packs[0];
    let priorities: Vec<(&str, i32, Option<bool>)> = jk
        .adapters
        .iter()
        .map(|a| (a.adapter_id.as_str(), a.priority, a.enabled))
        .collect();
    assert_eq!(
        priorities,
        [
            ("jkbms_bank.adapter1", 1, Some(true)),
            ("jkbms_bank.adapter2", 2, Some(true))
        ]
    );
    assert!(tree.unassigned_battery_packs.is_empty());

    let attachments: Vec<(&str, &str, i64, bool)> = tree
        .attachments
        .iter()
        .map(|a| {
            (
                a.battery_array_id.as_str(),
                a.inverter_array_id.as_str(),
                a.attached_since.as_ref().unwrap().seconds,
                a.detached_at.is_none(),
            )
        })
        .collect();
    assert_eq!(
        attachments,
        [
            ("battery_array1", "array1", 1_735_671_600, true),
            ("battery_array2", "array2", 1_735_671_600, true)
        ]
    );

    let mut adapters: Vec<(String, String, i32)> = tree
        .adapters
        .iter()
        .map(|a| (a.adapter_id.clone(), a.adapter_type.clone(), a.priority))
        .collect();
    adapters.sort();
    let mut expected: Vec<(String, String, i32)> = loaded
        .installation
        .adapters
        .iter()
        .map(|a| (a.adapter_id.clone(), a.adapter_type.clone(), a.priority))
        .collect();
    expected.sort();
    assert_eq!(adapters, expected);
    for adapter in &tree.adapters {
        let imported = loaded
            .installation
            .adapters
            .iter()
            .find(|a| a.adapter_id == adapter.adapter_id)
            .unwrap();
        assert_eq!(
            adapter.config_json, imported.config_json,
            "{}",
            adapter.adapter_id
        );
    }

    let channel = hub.channel.clone();
    let missing = hub
        .runtime
        .block_on(async move {
            ConfigServiceClient::new(channel)
                .get_config(GetConfigRequest {
                    system_id: "nope".into(),
                })
                .await
        })
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

on_both_backends!(get_config_returns_the_imported_installation);

/// The loader runs one query per table, however many devices the system has.
fn loader_query_count_does_not_grow_with_devices(db: TestDb) {
    use solarhub_hub::catalog::{
        Installation, Inverter as InverterRow, InverterArray as ArrayRow, System as SystemRow,
    };
    let database = db.migrated();
    let mut conn = database.get().unwrap();
    let mut counts = Vec::new();
    for (system_id, inverters) in [("small", 5), ("large", 500)] {
        let installation = Installation {
            system: Some(SystemRow {
                system_id: system_id.into(),
                name: system_id.into(),
                description: None,
                timezone: "UTC".into(),
                currency: None,
                tariff_json: None,
            }),
            arrays: vec![ArrayRow {
                array_id: format!("{system_id}.a"),
                system_id: system_id.into(),
                name: "a".into(),
                pv_capacity_kw: None,
            }],
            inverters: (0..inverters)
                .map(|i| InverterRow {
                    inverter_id: format!("{system_id}.inv{i}"),
                    array_id: format!("{system_id}.a"),
                    system_id: system_id.into(),
                    adapter_id: None,
                    name: format!("inverter {i}"),
                    model: None,
                    serial_number: None,
                    vendor: None,
                    phase_type: None,
                    rated_power_w: None,
                    settings_json: None,
                })
                .collect(),
            ..Installation::default()
        };
        solarhub_hub::db::catalog::insert_rows(&mut conn, &installation).unwrap();
        let ((systems, loaded), queries) = solarhub_hub::db::count_queries(&mut conn, |conn| {
            solarhub_hub::db::catalog::load_installations(conn, Some(system_id)).unwrap()
        });
        assert_eq!(systems.len(), 1);
        assert_eq!(loaded.inverters.len(), inverters);
        counts.push(queries);
    }
    eprintln!(
        "loader queries: {} for 5 inverters, {} for 500",
        counts[0], counts[1]
    );
    assert!(counts[0] > 0, "the counter saw no queries");
    assert_eq!(counts[0], counts[1], "queries for 5 and for 500 inverters");
}

on_both_backends!(loader_query_count_does_not_grow_with_devices);
