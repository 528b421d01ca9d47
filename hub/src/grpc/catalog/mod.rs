//! The hierarchy CRUD services (one per resource) and `ConfigService.GetConfig`.
//!
//! Each method converts the request to domain values, calls the [`Repository`] and converts back;
//! [`status`] maps every [`CatalogError`] to its gRPC code with rich error details (field
//! violations, resource info, precondition failures).

mod convert;

use std::collections::HashMap;

use solarhub_proto::tonic::{self, Request, Response, Status};
use solarhub_proto::v1 as proto;
use tonic_types::{ErrorDetails, StatusExt};

use crate::catalog::ListFilter;
use crate::catalog::{
    Adapter, AdapterType, Battery, BatteryArray, BatteryArrayAttachment, BatteryCell, BatteryPack,
    BatteryPackAdapter, Inverter, InverterArray, Meter, System,
};
use crate::catalog::{CatalogError, ConfigTree, Parents, Repository, Violations};
use convert::{FromMessage, ToMessage};
use solarhub_proto::time::millis;

/// The gRPC status of a catalog error. Never carries SQL text.
pub(crate) fn status(error: CatalogError) -> Status {
    let message = error.to_string();
    match error {
        CatalogError::Invalid(violations) => {
            let mut details = ErrorDetails::new();
            for violation in violations {
                details.add_bad_request_violation(violation.field, violation.description);
            }
            Status::with_error_details(tonic::Code::InvalidArgument, message, details)
        }
        CatalogError::NotFound {
            kind,
            id,
            parents,
            field,
        } => {
            let mut details = ErrorDetails::new();
            details.set_resource_info(kind, id, parents.to_string(), message.clone());
            if let Some(field) = field {
                details.add_bad_request_violation(field, message.clone());
            }
            Status::with_error_details(tonic::Code::NotFound, message, details)
        }
        CatalogError::AlreadyExists { kind, id, field } => {
            let mut details = ErrorDetails::new();
            details.set_resource_info(kind, id, "", message.clone());
            details.add_bad_request_violation(field, message.clone());
            Status::with_error_details(tonic::Code::AlreadyExists, message, details)
        }
        CatalogError::HasChildren { kind, id, children } => {
            let mut details = ErrorDetails::new();
            for (table, count) in children {
                details.add_precondition_failure_violation(
                    "CHILDREN",
                    table.clone(),
                    format!("{kind} {id} has {count} {table}"),
                );
            }
            details.add_bad_request_violation(
                "cascade",
                "is false, and the resource still has children",
            );
            Status::with_error_details(tonic::Code::FailedPrecondition, message, details)
        }
        CatalogError::Conflict {
            field,
            message: text,
        } => {
            let mut details = ErrorDetails::new();
            details.add_precondition_failure_violation("CONFLICT", field.clone(), text);
            if !field.is_empty() {
                details.add_bad_request_violation(field, message.clone());
            }
            Status::with_error_details(tonic::Code::FailedPrecondition, message, details)
        }
        CatalogError::Contention(reason) => {
            tracing::warn!(%reason, "write lost to contention after retries");
            Status::unavailable(message)
        }
        CatalogError::Unavailable(reason) => {
            tracing::warn!(%reason, "database unavailable");
            Status::unavailable("database unavailable")
        }
        CatalogError::Internal(reason) => {
            tracing::error!(%reason, "catalog request failed");
            Status::internal("internal error")
        }
    }
}

fn filter_id(value: String) -> Option<String> {
    if value.is_empty() { None } else { Some(value) }
}

/// A message field a request must carry.
fn required<T>(value: Option<T>, field: &str) -> Result<T, Status> {
    value.ok_or_else(|| {
        let mut violations = Violations::default();
        violations.add(field, "is required");
        status(CatalogError::Invalid(violations.0))
    })
}

fn from_request<R: FromMessage>(message: Option<R::Message>, field: &str) -> Result<R, Status> {
    let message = required(message, field)?;
    let mut violations = Violations::default();
    let resource = R::from_message(message, field, &mut violations);
    violations.into_result().map_err(status)?;
    Ok(resource)
}

fn deleted_response(deleted: std::collections::BTreeMap<String, i64>) -> HashMap<String, i64> {
    deleted.into_iter().collect()
}

macro_rules! catalog_service {
    (
        $service:ident, $server_trait:path, $domain:ty, $field:ident,
        list $list_fn:ident($list_request:ident) -> $list_response:ident.$items:ident, |$list_req:ident| $filter:expr,
        get $get_fn:ident($get_request:ident), |$get_req:ident| $get_key:expr,
        create $create_fn:ident($create_request:ident),
        update $update_fn:ident($update_request:ident),
        delete $delete_fn:ident($delete_request:ident) -> $delete_response:ident, |$delete_req:ident| $delete_key:expr $(,)?
    ) => {
        pub(crate) struct $service {
            repository: Repository,
        }

        impl $service {
            pub(crate) fn new(repository: Repository) -> Self {
                $service { repository }
            }
        }

        #[tonic::async_trait]
        impl $server_trait for $service {
            async fn $list_fn(
                &self,
                request: Request<proto::$list_request>,
            ) -> Result<Response<proto::$list_response>, Status> {
                let $list_req = request.into_inner();
                let page_size = $list_req.page_size;
                let page_token = $list_req.page_token.clone();
                let filter: ListFilter = $filter;
                let page = self
                    .repository
                    .list::<$domain>(filter, page_size, page_token)
                    .await
                    .map_err(status)?;
                Ok(Response::new(proto::$list_response {
                    $items: page
                        .items
                        .into_iter()
                        .map(|(row, parents)| row.to_message(&parents))
                        .collect(),
                    next_page_token: page.next_page_token,
                }))
            }

            async fn $get_fn(
                &self,
                request: Request<proto::$get_request>,
            ) -> Result<Response<<$domain as ToMessage>::Message>, Status> {
                let $get_req = request.into_inner();
                let key = $get_key?;
                let (row, parents) = self.repository.get::<$domain>(key).await.map_err(status)?;
                Ok(Response::new(row.to_message(&parents)))
            }

            async fn $create_fn(
                &self,
                request: Request<proto::$create_request>,
            ) -> Result<Response<<$domain as ToMessage>::Message>, Status> {
                let target = crate::audit::Target::of(&request);
                let resource: $domain =
                    from_request(request.into_inner().$field, stringify!($field))?;
                target.set(audit_target::<$domain>(
                    &crate::catalog::CatalogRecord::key(&resource),
                ));
                let (row, parents) = self.repository.create(resource).await.map_err(status)?;
                Ok(Response::new(row.to_message(&parents)))
            }

            async fn $update_fn(
                &self,
                request: Request<proto::$update_request>,
            ) -> Result<Response<<$domain as ToMessage>::Message>, Status> {
                let target = crate::audit::Target::of(&request);
                let request = request.into_inner();
                let resource: $domain = from_request(request.$field, stringify!($field))?;
                target.set(audit_target::<$domain>(
                    &crate::catalog::CatalogRecord::key(&resource),
                ));
                let mask = request
                    .update_mask
                    .map(|mask| mask.paths)
                    .unwrap_or_default();
                let (row, parents) = self
                    .repository
                    .update(resource, mask)
                    .await
                    .map_err(status)?;
                Ok(Response::new(row.to_message(&parents)))
            }

            async fn $delete_fn(
                &self,
                request: Request<proto::$delete_request>,
            ) -> Result<Response<proto::$delete_response>, Status> {
                let target = crate::audit::Target::of(&request);
                let $delete_req = request.into_inner();
                let cascade = $delete_req.cascade;
                let key = $delete_key?;
                target.set(audit_target::<$domain>(&format!("{key:?}")));
                let deleted = self
                    .repository
                    .delete::<$domain>(key, cascade)
                    .await
                    .map_err(status)?;
                Ok(Response::new(proto::$delete_response {
                    deleted: deleted_response(deleted),
                }))
            }
        }
    };
}

/// What a catalog write acts on, for its audit row: the table and the row's key.
fn audit_target<T: crate::catalog::CatalogRecord>(key: &str) -> String {
    format!("{} {}", T::TABLE.table_name(), crate::limits::shown(key))
}

fn key(id: String) -> Result<String, Status> {
    Ok(id)
}

fn attachment_key(
    battery_array_id: String,
    attached_since: Option<solarhub_proto::prost_types::Timestamp>,
) -> Result<(String, i64), Status> {
    let since = required(attached_since, "attached_since")?;
    Ok((battery_array_id, millis(&since)))
}

catalog_service!(
    SystemApi, proto::system_service_server::SystemService, System, system,
    list list_systems(ListSystemsRequest) -> ListSystemsResponse.systems, |r| { let _ = &r; ListFilter::default() },
    get get_system(GetSystemRequest), |r| key(r.system_id),
    create create_system(CreateSystemRequest),
    update update_system(UpdateSystemRequest),
    delete delete_system(DeleteSystemRequest) -> DeleteSystemResponse, |r| key(r.system_id),
);

catalog_service!(
    InverterArrayApi, proto::inverter_array_service_server::InverterArrayService, InverterArray, inverter_array,
    list list_inverter_arrays(ListInverterArraysRequest) -> ListInverterArraysResponse.inverter_arrays,
        |r| ListFilter { system_id: filter_id(r.system_id), ..ListFilter::default() },
    get get_inverter_array(GetInverterArrayRequest), |r| key(r.array_id),
    create create_inverter_array(CreateInverterArrayRequest),
    update update_inverter_array(UpdateInverterArrayRequest),
    delete delete_inverter_array(DeleteInverterArrayRequest) -> DeleteInverterArrayResponse, |r| key(r.array_id),
);

catalog_service!(
    InverterApi, proto::inverter_service_server::InverterService, Inverter, inverter,
    list list_inverters(ListInvertersRequest) -> ListInvertersResponse.inverters,
        |r| ListFilter { system_id: filter_id(r.system_id), array_id: filter_id(r.array_id), ..ListFilter::default() },
    get get_inverter(GetInverterRequest), |r| key(r.inverter_id),
    create create_inverter(CreateInverterRequest),
    update update_inverter(UpdateInverterRequest),
    delete delete_inverter(DeleteInverterRequest) -> DeleteInverterResponse, |r| key(r.inverter_id),
);

catalog_service!(
    BatteryArrayApi, proto::battery_array_service_server::BatteryArrayService, BatteryArray, battery_array,
    list list_battery_arrays(ListBatteryArraysRequest) -> ListBatteryArraysResponse.battery_arrays,
        |r| ListFilter { system_id: filter_id(r.system_id), ..ListFilter::default() },
    get get_battery_array(GetBatteryArrayRequest), |r| key(r.battery_array_id),
    create create_battery_array(CreateBatteryArrayRequest),
    update update_battery_array(UpdateBatteryArrayRequest),
    delete delete_battery_array(DeleteBatteryArrayRequest) -> DeleteBatteryArrayResponse, |r| key(r.battery_array_id),
);

catalog_service!(
    BatteryArrayAttachmentApi, proto::battery_array_attachment_service_server::BatteryArrayAttachmentService,
    BatteryArrayAttachment, battery_array_attachment,
    list list_battery_array_attachments(ListBatteryArrayAttachmentsRequest) -> ListBatteryArrayAttachmentsResponse.battery_array_attachments,
        |r| ListFilter {
            system_id: filter_id(r.system_id),
            battery_array_id: filter_id(r.battery_array_id),
            inverter_array_id: filter_id(r.inverter_array_id),
            active_only: r.active_only,
            ..ListFilter::default()
        },
    get get_battery_array_attachment(GetBatteryArrayAttachmentRequest), |r| attachment_key(r.battery_array_id, r.attached_since),
    create create_battery_array_attachment(CreateBatteryArrayAttachmentRequest),
    update update_battery_array_attachment(UpdateBatteryArrayAttachmentRequest),
    delete delete_battery_array_attachment(DeleteBatteryArrayAttachmentRequest) -> DeleteBatteryArrayAttachmentResponse,
        |r| attachment_key(r.battery_array_id, r.attached_since),
);

catalog_service!(
    BatteryPackApi, proto::battery_pack_service_server::BatteryPackService, BatteryPack, battery_pack,
    list list_battery_packs(ListBatteryPacksRequest) -> ListBatteryPacksResponse.battery_packs,
        |r| ListFilter { system_id: filter_id(r.system_id), battery_array_id: filter_id(r.battery_array_id), ..ListFilter::default() },
    get get_battery_pack(GetBatteryPackRequest), |r| key(r.pack_id),
    create create_battery_pack(CreateBatteryPackRequest),
    update update_battery_pack(UpdateBatteryPackRequest),
    delete delete_battery_pack(DeleteBatteryPackRequest) -> DeleteBatteryPackResponse, |r| key(r.pack_id),
);

catalog_service!(
    BatteryApi, proto::battery_service_server::BatteryService, Battery, battery,
    list list_batteries(ListBatteriesRequest) -> ListBatteriesResponse.batteries,
        |r| ListFilter { system_id: filter_id(r.system_id), pack_id: filter_id(r.pack_id), ..ListFilter::default() },
    get get_battery(GetBatteryRequest), |r| key(r.battery_id),
    create create_battery(CreateBatteryRequest),
    update update_battery(UpdateBatteryRequest),
    delete delete_battery(DeleteBatteryRequest) -> DeleteBatteryResponse, |r| key(r.battery_id),
);

catalog_service!(
    BatteryCellApi, proto::battery_cell_service_server::BatteryCellService, BatteryCell, battery_cell,
    list list_battery_cells(ListBatteryCellsRequest) -> ListBatteryCellsResponse.battery_cells,
        |r| ListFilter {
            system_id: filter_id(r.system_id),
            pack_id: filter_id(r.pack_id),
            battery_id: filter_id(r.battery_id),
            ..ListFilter::default()
        },
    get get_battery_cell(GetBatteryCellRequest), |r| key(r.cell_id),
    create create_battery_cell(CreateBatteryCellRequest),
    update update_battery_cell(UpdateBatteryCellRequest),
    delete delete_battery_cell(DeleteBatteryCellRequest) -> DeleteBatteryCellResponse, |r| key(r.cell_id),
);

catalog_service!(
    MeterApi, proto::meter_service_server::MeterService, Meter, meter,
    list list_meters(ListMetersRequest) -> ListMetersResponse.meters,
        |r| ListFilter { system_id: filter_id(r.system_id), array_id: filter_id(r.array_id), ..ListFilter::default() },
    get get_meter(GetMeterRequest), |r| key(r.meter_id),
    create create_meter(CreateMeterRequest),
    update update_meter(UpdateMeterRequest),
    delete delete_meter(DeleteMeterRequest) -> DeleteMeterResponse, |r| key(r.meter_id),
);

catalog_service!(
    AdapterApi, proto::adapter_service_server::AdapterService, Adapter, adapter,
    list list_adapters(ListAdaptersRequest) -> ListAdaptersResponse.adapters,
        |r| ListFilter {
            adapter_type: filter_id(r.adapter_type),
            collector_id: filter_id(r.collector_id),
            device_id: filter_id(r.device_id),
            ..ListFilter::default()
        },
    get get_adapter(GetAdapterRequest), |r| key(r.adapter_id),
    create create_adapter(CreateAdapterRequest),
    update update_adapter(UpdateAdapterRequest),
    delete delete_adapter(DeleteAdapterRequest) -> DeleteAdapterResponse, |r| key(r.adapter_id),
);

catalog_service!(
    AdapterTypeApi, proto::adapter_type_service_server::AdapterTypeService, AdapterType, adapter_type,
    list list_adapter_types(ListAdapterTypesRequest) -> ListAdapterTypesResponse.adapter_types,
        |r| ListFilter { device_category: filter_id(r.device_category), ..ListFilter::default() },
    get get_adapter_type(GetAdapterTypeRequest), |r| key(r.adapter_type),
    create create_adapter_type(CreateAdapterTypeRequest),
    update update_adapter_type(UpdateAdapterTypeRequest),
    delete delete_adapter_type(DeleteAdapterTypeRequest) -> DeleteAdapterTypeResponse, |r| key(r.adapter_type),
);

catalog_service!(
    BatteryPackAdapterApi, proto::battery_pack_adapter_service_server::BatteryPackAdapterService, BatteryPackAdapter, battery_pack_adapter,
    list list_battery_pack_adapters(ListBatteryPackAdaptersRequest) -> ListBatteryPackAdaptersResponse.battery_pack_adapters,
        |r| ListFilter { pack_id: filter_id(r.pack_id), adapter_id: filter_id(r.adapter_id), ..ListFilter::default() },
    get get_battery_pack_adapter(GetBatteryPackAdapterRequest), |r| Ok::<_, Status>((r.pack_id, r.adapter_id)),
    create create_battery_pack_adapter(CreateBatteryPackAdapterRequest),
    update update_battery_pack_adapter(UpdateBatteryPackAdapterRequest),
    delete delete_battery_pack_adapter(DeleteBatteryPackAdapterRequest) -> DeleteBatteryPackAdapterResponse,
        |r| Ok::<_, Status>((r.pack_id, r.adapter_id)),
);

/// Adds every hierarchy service to `routes`, each marked serving in `health`.
pub(crate) async fn add_services(
    routes: tonic::service::Routes,
    repository: Repository,
    health: &tonic_health::server::HealthReporter,
) -> tonic::service::Routes {
    use proto::*;
    health
        .set_serving::<system_service_server::SystemServiceServer<SystemApi>>()
        .await;
    health
        .set_serving::<inverter_array_service_server::InverterArrayServiceServer<InverterArrayApi>>(
        )
        .await;
    health
        .set_serving::<inverter_service_server::InverterServiceServer<InverterApi>>()
        .await;
    health
        .set_serving::<battery_array_service_server::BatteryArrayServiceServer<BatteryArrayApi>>()
        .await;
    health
        .set_serving::<battery_array_attachment_service_server::BatteryArrayAttachmentServiceServer<
            BatteryArrayAttachmentApi,
        >>()
        .await;
    health
        .set_serving::<battery_pack_service_server::BatteryPackServiceServer<BatteryPackApi>>()
        .await;
    health
        .set_serving::<battery_service_server::BatteryServiceServer<BatteryApi>>()
        .await;
    health
        .set_serving::<battery_cell_service_server::BatteryCellServiceServer<BatteryCellApi>>()
        .await;
    health
        .set_serving::<meter_service_server::MeterServiceServer<MeterApi>>()
        .await;
    health
        .set_serving::<adapter_service_server::AdapterServiceServer<AdapterApi>>()
        .await;
    health
        .set_serving::<adapter_type_service_server::AdapterTypeServiceServer<AdapterTypeApi>>()
        .await;
    health.set_serving::<battery_pack_adapter_service_server::BatteryPackAdapterServiceServer<BatteryPackAdapterApi>>().await;
    health
        .set_serving::<config_service_server::ConfigServiceServer<ConfigApi>>()
        .await;
    let r = repository;
    routes
        .add_service(system_service_server::SystemServiceServer::new(
            SystemApi::new(r.clone()),
        ))
        .add_service(
            inverter_array_service_server::InverterArrayServiceServer::new(InverterArrayApi::new(
                r.clone(),
            )),
        )
        .add_service(inverter_service_server::InverterServiceServer::new(
            InverterApi::new(r.clone()),
        ))
        .add_service(
            battery_array_service_server::BatteryArrayServiceServer::new(BatteryArrayApi::new(
                r.clone(),
            )),
        )
        .add_service(
            battery_array_attachment_service_server::BatteryArrayAttachmentServiceServer::new(
                BatteryArrayAttachmentApi::new(r.clone()),
            ),
        )
        .add_service(battery_pack_service_server::BatteryPackServiceServer::new(
            BatteryPackApi::new(r.clone()),
        ))
        .add_service(battery_service_server::BatteryServiceServer::new(
            BatteryApi::new(r.clone()),
        ))
        .add_service(battery_cell_service_server::BatteryCellServiceServer::new(
            BatteryCellApi::new(r.clone()),
        ))
        .add_service(meter_service_server::MeterServiceServer::new(
            MeterApi::new(r.clone()),
        ))
        .add_service(adapter_service_server::AdapterServiceServer::new(
            AdapterApi::new(r.clone()),
        ))
        .add_service(adapter_type_service_server::AdapterTypeServiceServer::new(
            AdapterTypeApi::new(r.clone()),
        ))
        .add_service(
            battery_pack_adapter_service_server::BatteryPackAdapterServiceServer::new(
                BatteryPackAdapterApi::new(r.clone()),
            ),
        )
        .add_service(config_service_server::ConfigServiceServer::new(
            ConfigApi::new(r),
        ))
}

/// `ConfigService`: the whole hierarchy as a tree.
pub(crate) struct ConfigApi {
    repository: Repository,
}

impl ConfigApi {
    pub(crate) fn new(repository: Repository) -> Self {
        ConfigApi { repository }
    }
}

#[tonic::async_trait]
impl proto::config_service_server::ConfigService for ConfigApi {
    async fn get_config(
        &self,
        request: Request<proto::GetConfigRequest>,
    ) -> Result<Response<proto::GetConfigResponse>, Status> {
        let proto::GetConfigRequest { system_id } = request.into_inner();
        let tree = self
            .repository
            .config(filter_id(system_id))
            .await
            .map_err(status)?;
        Ok(Response::new(config_response(tree)))
    }
}

/// Builds the nested answer from the flat rows; every list is in id order.
fn config_response(tree: ConfigTree) -> proto::GetConfigResponse {
    let ConfigTree {
        systems,
        installation,
        adapter_types,
    } = tree;
    let mut systems_out = Vec::with_capacity(systems.len());
    for system in systems {
        let system_id = system.system_id.clone();
        let in_system = Parents {
            system_id: Some(system_id.clone()),
            ..Parents::default()
        };
        let mut arrays: Vec<&InverterArray> = installation
            .arrays
            .iter()
            .filter(|a| a.system_id == system_id)
            .collect();
        arrays.sort_by(|a, b| a.array_id.cmp(&b.array_id));
        let inverter_arrays = arrays
            .into_iter()
            .map(|array| {
                let mut inverters: Vec<&Inverter> = installation
                    .inverters
                    .iter()
                    .filter(|i| i.array_id == array.array_id)
                    .collect();
                inverters.sort_by(|a, b| a.inverter_id.cmp(&b.inverter_id));
                let mut meters: Vec<&Meter> = installation
                    .meters
                    .iter()
                    .filter(|m| m.array_id.as_deref() == Some(array.array_id.as_str()))
                    .collect();
                meters.sort_by(|a, b| a.meter_id.cmp(&b.meter_id));
                proto::InverterArrayTree {
                    inverter_array: Some(array.clone().to_message(&in_system)),
                    inverters: inverters
                        .into_iter()
                        .map(|i| i.clone().to_message(&in_system))
                        .collect(),
                    meters: meters
                        .into_iter()
                        .map(|m| m.clone().to_message(&in_system))
                        .collect(),
                }
            })
            .collect();
        let pack_tree = |pack: &BatteryPack| {
            let pack_parents = Parents {
                system_id: Some(system_id.clone()),
                battery_array_id: pack.battery_array_id.clone(),
                pack_id: Some(pack.pack_id.clone()),
            };
            let mut batteries: Vec<&Battery> = installation
                .batteries
                .iter()
                .filter(|b| b.pack_id == pack.pack_id)
                .collect();
            batteries.sort_by_key(|b| b.battery_index);
            let mut adapters: Vec<&BatteryPackAdapter> = installation
                .pack_adapters
                .iter()
                .filter(|a| a.pack_id == pack.pack_id)
                .collect();
            adapters.sort_by_key(|a| (a.priority, a.adapter_id.clone()));
            proto::BatteryPackTree {
                battery_pack: Some(pack.clone().to_message(&pack_parents)),
                batteries: batteries
                    .into_iter()
                    .map(|battery| {
                        let mut cells: Vec<&BatteryCell> = installation
                            .cells
                            .iter()
                            .filter(|c| c.battery_id == battery.battery_id)
                            .collect();
                        cells.sort_by_key(|c| c.cell_index);
                        proto::BatteryTree {
                            battery: Some(battery.clone().to_message(&pack_parents)),
                            cells: cells
                                .into_iter()
                                .map(|c| c.clone().to_message(&pack_parents))
                                .collect(),
                        }
                    })
                    .collect(),
                adapters: adapters
                    .into_iter()
                    .map(|a| a.clone().to_message(&pack_parents))
                    .collect(),
            }
        };
        let mut packs: Vec<&BatteryPack> = installation
            .packs
            .iter()
            .filter(|p| p.system_id == system_id)
            .collect();
        packs.sort_by(|a, b| a.pack_id.cmp(&b.pack_id));
        let mut battery_arrays: Vec<&BatteryArray> = installation
            .battery_arrays
            .iter()
            .filter(|b| b.system_id == system_id)
            .collect();
        battery_arrays.sort_by(|a, b| a.battery_array_id.cmp(&b.battery_array_id));
        let battery_arrays_out = battery_arrays
            .into_iter()
            .map(|battery_array| proto::BatteryArrayTree {
                battery_array: Some(battery_array.clone().to_message(&in_system)),
                battery_packs: packs
                    .iter()
                    .filter(|p| {
                        p.battery_array_id.as_deref()
                            == Some(battery_array.battery_array_id.as_str())
                    })
                    .map(|p| pack_tree(p))
                    .collect(),
            })
            .collect();
        let unassigned = packs
            .iter()
            .filter(|p| p.battery_array_id.is_none())
            .map(|p| pack_tree(p))
            .collect();
        let mut system_meters: Vec<&Meter> = installation
            .meters
            .iter()
            .filter(|m| m.system_id == system_id && m.array_id.is_none())
            .collect();
        system_meters.sort_by(|a, b| a.meter_id.cmp(&b.meter_id));
        let mut attachments: Vec<&BatteryArrayAttachment> = installation
            .attachments
            .iter()
            .filter(|a| a.system_id == system_id)
            .collect();
        attachments.sort_by_key(|a| (a.battery_array_id.clone(), a.attached_since));
        let devices: std::collections::HashSet<&str> = installation
            .inverters
            .iter()
            .filter(|i| i.system_id == system_id)
            .map(|i| i.inverter_id.as_str())
            .chain(
                installation
                    .meters
                    .iter()
                    .filter(|m| m.system_id == system_id)
                    .map(|m| m.meter_id.as_str()),
            )
            .chain(
                installation
                    .packs
                    .iter()
                    .filter(|p| p.system_id == system_id)
                    .map(|p| p.pack_id.as_str()),
            )
            .collect();
        let mut adapters: Vec<&Adapter> = installation
            .adapters
            .iter()
            .filter(|a| a.device_id.as_deref().is_some_and(|d| devices.contains(d)))
            .collect();
        adapters.sort_by(|a, b| a.adapter_id.cmp(&b.adapter_id));
        systems_out.push(proto::SystemTree {
            system: Some(system.to_message(&Parents::default())),
            inverter_arrays,
            battery_arrays: battery_arrays_out,
            unassigned_battery_packs: unassigned,
            system_meters: system_meters
                .into_iter()
                .map(|m| m.clone().to_message(&in_system))
                .collect(),
            attachments: attachments
                .into_iter()
                .map(|a| a.clone().to_message(&in_system))
                .collect(),
            adapters: adapters
                .into_iter()
                .map(|a| a.clone().to_message(&Parents::default()))
                .collect(),
        });
    }
    proto::GetConfigResponse {
        systems: systems_out,
        adapter_types: adapter_types
            .into_iter()
            .map(|t| t.to_message(&Parents::default()))
            .collect(),
    }
}
