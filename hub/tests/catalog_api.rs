//! The hierarchy CRUD API through real tonic clients against a hub on 127.0.0.1:0, on both backends:
//! every resource's lifecycle, the documented errors with the field they name, GetConfig of an
//! imported installation, and a fixed number of loader queries whatever the number of devices.

mod common;

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
    Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn system(id: &str) -> System {
    System { system_id: id.into(), name: format!("System {id}"), timezone: "Europe/Berlin".into(), ..System::default() }
}

fn inverter(id: &str, array: &str) -> Inverter {
    Inverter { inverter_id: id.into(), array_id: array.into(), name: format!("Inverter {id}"), ..Inverter::default() }
}

const METER_SCHEMA: &str = r#"{"type":"object","additionalProperties":false,"required":["host"],"properties":{"host":{"type":"string","minLength":1},"port":{"type":"integer","minimum":1,"maximum":65535},"baudrate":{"type":"integer"}}}"#;

/// Creates, reads, lists (filtered and paged), updates (masked) and deletes every resource.
fn every_resource_lifecycle(db: TestDb) {
    let hub = RunningHub::start(&db);
    let channel = hub.channel.clone();
    hub.runtime.block_on(lifecycle(channel));
}

async fn lifecycle(channel: Channel) {
    let mut systems = SystemServiceClient::new(channel.clone());
    let mut arrays = InverterArrayServiceClient::new(channel.clone());
    let mut inverters = InverterServiceClient::new(channel.clone());
    let mut battery_arrays = BatteryArrayServiceClient::new(channel.clone());
    let mut attachments = BatteryArrayAttachmentServiceClient::new(channel.clone());
    let mut packs = BatteryPackServiceClient::new(channel.clone());
    let mut batteries = BatteryServiceClient::new(channel.clone());
    let mut cells = BatteryCellServiceClient::new(channel.clone());
    let mut meters = MeterServiceClient::new(channel.clone());
    let mut adapter_types = AdapterTypeServiceClient::new(channel.clone());
    let mut adapters = AdapterServiceClient::new(channel.clone());
    let mut pack_adapters = BatteryPackAdapterServiceClient::new(channel.clone());

    // Systems: create two, get, page through them one at a time, update one field.
    for id in ["home", "cabin"] {
        let created = systems.create_system(CreateSystemRequest { system: Some(system(id)) }).await.unwrap().into_inner();
        assert_eq!(created.system_id, id);
    }
    let got = systems.get_system(GetSystemRequest { system_id: "home".into() }).await.unwrap().into_inner();
    assert_eq!((got.name.as_str(), got.timezone.as_str()), ("System home", "Europe/Berlin"));
    let first = systems.list_systems(ListSystemsRequest { page_size: 1, page_token: String::new() }).await.unwrap().into_inner();
    assert_eq!(first.systems.iter().map(|s| s.system_id.as_str()).collect::<Vec<_>>(), ["cabin"]);
    assert!(!first.next_page_token.is_empty());
    let second = systems.list_systems(ListSystemsRequest { page_size: 1, page_token: first.next_page_token }).await.unwrap().into_inner();
    assert_eq!(second.systems.iter().map(|s| s.system_id.as_str()).collect::<Vec<_>>(), ["home"]);
    assert!(second.next_page_token.is_empty());
    let updated = systems
        .update_system(UpdateSystemRequest {
            system: Some(System { system_id: "home".into(), name: "Renamed".into(), timezone: "Asia/Karachi".into(), ..System::default() }),
            update_mask: mask(&["name"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((updated.name.as_str(), updated.timezone.as_str()), ("Renamed", "Europe/Berlin"), "only the masked field changes");

    // Inverter arrays, filtered by system.
    for (id, system_id) in [("a1", "home"), ("a2", "home"), ("c1", "cabin")] {
        arrays
            .create_inverter_array(CreateInverterArrayRequest {
                inverter_array: Some(InverterArray { array_id: id.into(), system_id: system_id.into(), name: id.into(), pv_capacity_kw: None }),
            })
            .await
            .unwrap();
    }
    let home_arrays = arrays
        .list_inverter_arrays(ListInverterArraysRequest { system_id: "home".into(), page_size: 0, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(home_arrays.inverter_arrays.iter().map(|a| a.array_id.as_str()).collect::<Vec<_>>(), ["a1", "a2"]);
    let array = arrays
        .update_inverter_array(UpdateInverterArrayRequest {
            inverter_array: Some(InverterArray { array_id: "a1".into(), pv_capacity_kw: Some(9.5), ..InverterArray::default() }),
            update_mask: mask(&["pv_capacity_kw"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((array.pv_capacity_kw, array.system_id.as_str(), array.name.as_str()), (Some(9.5), "home", "a1"));

    // Inverters: system_id comes from the array; list by array, paged.
    for (id, array) in [("inv1", "a1"), ("inv2", "a1"), ("inv3", "a2")] {
        let created = inverters.create_inverter(CreateInverterRequest { inverter: Some(inverter(id, array)) }).await.unwrap().into_inner();
        assert_eq!(created.system_id, "home");
    }
    let page = inverters
        .list_inverters(ListInvertersRequest { array_id: "a1".into(), page_size: 1, ..ListInvertersRequest::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.inverters.iter().map(|i| i.inverter_id.as_str()).collect::<Vec<_>>(), ["inv1"]);
    let rest = inverters
        .list_inverters(ListInvertersRequest { array_id: "a1".into(), page_size: 10, page_token: page.next_page_token, ..ListInvertersRequest::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.inverters.iter().map(|i| i.inverter_id.as_str()).collect::<Vec<_>>(), ["inv2"]);
    let moved = inverters
        .update_inverter(UpdateInverterRequest {
            inverter: Some(Inverter { inverter_id: "inv2".into(), array_id: "a2".into(), rated_power_w: Some(5000.0), ..Inverter::default() }),
            update_mask: mask(&["array_id", "rated_power_w"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((moved.array_id.as_str(), moved.rated_power_w, moved.name.as_str()), ("a2", Some(5000.0), "Inverter inv2"));
    let got = inverters.get_inverter(GetInverterRequest { inverter_id: "inv2".into() }).await.unwrap().into_inner();
    assert_eq!(got, moved);

    // Battery arrays, attachments, packs, batteries, cells.
    battery_arrays
        .create_battery_array(CreateBatteryArrayRequest {
            battery_array: Some(BatteryArray { battery_array_id: "ba1".into(), system_id: "home".into(), name: "Bank".into() }),
        })
        .await
        .unwrap();
    let attachment = attachments
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
    assert_eq!((attachment.system_id.as_str(), attachment.detached_at), ("home", None));
    let detached = attachments
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
    attachments
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
    let active = attachments
        .list_battery_array_attachments(ListBatteryArrayAttachmentsRequest {
            battery_array_id: "ba1".into(),
            active_only: true,
            ..ListBatteryArrayAttachmentsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active.battery_array_attachments.iter().map(|a| a.inverter_array_id.as_str()).collect::<Vec<_>>(), ["a2"]);

    let pack = packs
        .create_battery_pack(CreateBatteryPackRequest {
            battery_pack: Some(BatteryPack { pack_id: "p1".into(), battery_array_id: Some("ba1".into()), name: "Pack".into(), nominal_kwh: Some(10.0), ..BatteryPack::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pack.system_id, "home");
    batteries
        .create_battery(CreateBatteryRequest { battery: Some(Battery { battery_id: "p1.b1".into(), pack_id: "p1".into(), battery_index: 1, ..Battery::default() }) })
        .await
        .unwrap();
    let cell = cells
        .create_battery_cell(CreateBatteryCellRequest {
            battery_cell: Some(BatteryCell { cell_id: "p1.b1.c1".into(), battery_id: "p1.b1".into(), cell_index: 1, nominal_voltage: Some(3.2), ..BatteryCell::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((cell.pack_id.as_str(), cell.system_id.as_str()), ("p1", "home"), "a cell answers with its parents");
    let battery = batteries.get_battery(GetBatteryRequest { battery_id: "p1.b1".into() }).await.unwrap().into_inner();
    assert_eq!((battery.system_id.as_str(), battery.battery_array_id.as_deref()), ("home", Some("ba1")));
    let listed_cells = cells
        .list_battery_cells(ListBatteryCellsRequest { system_id: "home".into(), ..ListBatteryCellsRequest::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed_cells.battery_cells.len(), 1);
    let updated_cell = cells
        .update_battery_cell(UpdateBatteryCellRequest {
            battery_cell: Some(BatteryCell { cell_id: "p1.b1.c1".into(), nominal_voltage: Some(3.3), ..BatteryCell::default() }),
            update_mask: mask(&["nominal_voltage"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((updated_cell.nominal_voltage, updated_cell.cell_index), (Some(3.3), 1));

    // Adapter types, adapters, meters, pack adapters.
    adapter_types
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
    let adapter = adapters
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
    assert_eq!((adapter.device_category.as_str(), adapter.enabled, adapter.priority), ("meter", Some(true), 1));
    assert_eq!(adapter.config_json, r#"{"host":"10.0.0.5","port":502}"#);
    let meter = meters
        .create_meter(CreateMeterRequest {
            meter: Some(Meter { meter_id: "m1".into(), system_id: "home".into(), adapter_id: Some("m1.adapter".into()), name: "Grid".into(), ..Meter::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((meter.meter_type.as_str(), meter.array_id), ("grid", None));
    let meter = meters
        .update_meter(UpdateMeterRequest {
            meter: Some(Meter { meter_id: "m1".into(), array_id: Some("a1".into()), ..Meter::default() }),
            update_mask: mask(&["array_id"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meter.array_id.as_deref(), Some("a1"));
    let by_array =
        meters.list_meters(ListMetersRequest { array_id: "a1".into(), ..ListMetersRequest::default() }).await.unwrap().into_inner();
    assert_eq!(by_array.meters.len(), 1);
    let pack_adapter = pack_adapters
        .create_battery_pack_adapter(CreateBatteryPackAdapterRequest {
            battery_pack_adapter: Some(BatteryPackAdapter { pack_id: "p1".into(), adapter_id: "m1.adapter".into(), priority: 2, ..BatteryPackAdapter::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((pack_adapter.system_id.as_str(), pack_adapter.priority, pack_adapter.enabled), ("home", 2, Some(true)));
    let pack_adapter = pack_adapters
        .update_battery_pack_adapter(UpdateBatteryPackAdapterRequest {
            battery_pack_adapter: Some(BatteryPackAdapter { pack_id: "p1".into(), adapter_id: "m1.adapter".into(), enabled: Some(false), ..BatteryPackAdapter::default() }),
            update_mask: mask(&["enabled"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((pack_adapter.priority, pack_adapter.enabled), (2, Some(false)));
    let listed = adapter_types
        .list_adapter_types(ListAdapterTypesRequest { device_category: "meter".into(), ..ListAdapterTypesRequest::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.adapter_types.iter().map(|t| t.adapter_type.as_str()).collect::<Vec<_>>(), ["test_meter"]);
    let renamed = adapter_types
        .update_adapter_type(UpdateAdapterTypeRequest {
            adapter_type: Some(AdapterType { adapter_type: "test_meter".into(), name: "Renamed".into(), ..AdapterType::default() }),
            update_mask: mask(&["name"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((renamed.name.as_str(), renamed.config_schema.as_str()), ("Renamed", METER_SCHEMA));
    let adapter = adapters
        .update_adapter(UpdateAdapterRequest {
            adapter: Some(Adapter { adapter_id: "m1.adapter".into(), collector_id: Some("site-a".into()), ..Adapter::default() }),
            update_mask: mask(&["collector_id"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(adapter.collector_id.as_deref(), Some("site-a"));
    let by_collector = adapters
        .list_adapters(ListAdaptersRequest { collector_id: "site-a".into(), ..ListAdaptersRequest::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_collector.adapters.len(), 1);
    let battery = batteries
        .update_battery(UpdateBatteryRequest {
            battery: Some(Battery { battery_id: "p1.b1".into(), serial_number: "SN-1".into(), ..Battery::default() }),
            update_mask: mask(&["serial_number"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((battery.serial_number.as_str(), battery.battery_index), ("SN-1", 1));
    let pack = packs
        .update_battery_pack(UpdateBatteryPackRequest {
            battery_pack: Some(BatteryPack { pack_id: "p1".into(), chemistry: "LFP".into(), ..BatteryPack::default() }),
            update_mask: mask(&["chemistry"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((pack.chemistry.as_str(), pack.nominal_kwh), ("LFP", Some(10.0)));
    let battery_array = battery_arrays
        .update_battery_array(UpdateBatteryArrayRequest {
            battery_array: Some(BatteryArray { battery_array_id: "ba1".into(), name: "Bank 1".into(), ..BatteryArray::default() }),
            update_mask: mask(&["name"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(battery_array.name, "Bank 1");

    // Delete leaves first: each delete needs no cascade, and afterwards the resource is gone.
    pack_adapters.delete_battery_pack_adapter(DeleteBatteryPackAdapterRequest { pack_id: "p1".into(), adapter_id: "m1.adapter".into(), cascade: false }).await.unwrap();
    meters.delete_meter(DeleteMeterRequest { meter_id: "m1".into(), cascade: false }).await.unwrap();
    adapters.delete_adapter(DeleteAdapterRequest { adapter_id: "m1.adapter".into(), cascade: false }).await.unwrap();
    adapter_types.delete_adapter_type(DeleteAdapterTypeRequest { adapter_type: "test_meter".into(), cascade: false }).await.unwrap();
    cells.delete_battery_cell(DeleteBatteryCellRequest { cell_id: "p1.b1.c1".into(), cascade: false }).await.unwrap();
    batteries.delete_battery(DeleteBatteryRequest { battery_id: "p1.b1".into(), cascade: false }).await.unwrap();
    packs.delete_battery_pack(DeleteBatteryPackRequest { pack_id: "p1".into(), cascade: false }).await.unwrap();
    for since in [1_735_689_600, 1_736_000_000] {
        let deleted = attachments
            .delete_battery_array_attachment(DeleteBatteryArrayAttachmentRequest { battery_array_id: "ba1".into(), attached_since: ts(since), cascade: false })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(deleted.deleted.get("battery_array_attachments"), Some(&1));
    }
    battery_arrays.delete_battery_array(DeleteBatteryArrayRequest { battery_array_id: "ba1".into(), cascade: false }).await.unwrap();
    for id in ["inv1", "inv2", "inv3"] {
        inverters.delete_inverter(DeleteInverterRequest { inverter_id: id.into(), cascade: false }).await.unwrap();
    }
    let error = inverters.get_inverter(GetInverterRequest { inverter_id: "inv1".into() }).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    for id in ["a1", "a2"] {
        arrays.delete_inverter_array(DeleteInverterArrayRequest { array_id: id.into(), cascade: false }).await.unwrap();
    }
    // A system with children goes only with cascade, which reports what it took along.
    let error = systems.delete_system(DeleteSystemRequest { system_id: "cabin".into(), cascade: false }).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    let deleted = systems.delete_system(DeleteSystemRequest { system_id: "cabin".into(), cascade: true }).await.unwrap().into_inner();
    assert_eq!((deleted.deleted.get("arrays"), deleted.deleted.get("systems")), (Some(&1), Some(&1)));
    systems.delete_system(DeleteSystemRequest { system_id: "home".into(), cascade: false }).await.unwrap();
    let left = systems.list_systems(ListSystemsRequest::default()).await.unwrap().into_inner();
    assert!(left.systems.is_empty());
}

on_both_backends!(every_resource_lifecycle);
