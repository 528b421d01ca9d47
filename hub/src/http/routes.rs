//! The HTTP routes (DESIGN §11, the hierarchy plan's Phase 6 names), each the gRPC method that
//! answers it. Path parameters and query parameters fill the request's fields of the same name
//! (`from`/`to` fill `range`), a body fills the field the route names; the answer is the method's
//! answer in the proto3 JSON mapping, or CSV for history (`?format=csv`). Declared once: the
//! router, the OpenAPI document and the route tests are made from [`ROUTES`].

/// What an HTTP method does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    Get,
    Post,
    Patch,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    /// Whether a browser session needs its CSRF token for it.
    pub fn changes(self) -> bool {
        self != Verb::Get
    }
}

/// What a request's body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    /// The JSON body is the request's resource (its one message field other than `update_mask`:
    /// `inverter` of `CreateInverterRequest`); for a `PATCH` its keys are the update mask.
    Resource,
    /// The JSON body is the whole request.
    Whole,
}

/// How the answer goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Json,
    /// JSON, or CSV of the answer's rows with `?format=csv`.
    JsonOrCsv,
    /// Server-Sent Events, one `now` event per message of the stream.
    Events,
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub verb: Verb,
    pub path: &'static str,
    /// `Service/Method` of `solarhub.v1`.
    pub rpc: &'static str,
    pub body: Body,
    pub answer: Answer,
    /// An empty `system_id` is the hub's only system when it has exactly one (the old app's
    /// routes name no system).
    pub only_system: bool,
    pub summary: &'static str,
}

const fn route(verb: Verb, path: &'static str, rpc: &'static str, summary: &'static str) -> Route {
    Route {
        verb,
        path,
        rpc,
        body: Body::None,
        answer: Answer::Json,
        only_system: false,
        summary,
    }
}

const fn get(path: &'static str, rpc: &'static str, summary: &'static str) -> Route {
    route(Verb::Get, path, rpc, summary)
}

impl Route {
    const fn only_system(mut self) -> Route {
        self.only_system = true;
        self
    }

    const fn csv(mut self) -> Route {
        self.answer = Answer::JsonOrCsv;
        self
    }

    const fn events(mut self) -> Route {
        self.answer = Answer::Events;
        self
    }

    const fn body(mut self, body: Body) -> Route {
        self.body = body;
        self
    }
}

/// The five CRUD routes of one catalog resource: `path` for list and create, `path/{id}` for get,
/// update and delete.
macro_rules! crud {
    ($path:literal, $id:literal, $service:literal, $plural:literal, $singular:literal, $field:literal) => {
        [
            get(
                $path,
                concat!($service, "/List", $plural),
                concat!("List ", $field, "s"),
            ),
            route(
                Verb::Post,
                $path,
                concat!($service, "/Create", $singular),
                concat!("Create a ", $field),
            )
            .body(Body::Resource),
            get(
                concat!($path, "/{", $id, "}"),
                concat!($service, "/Get", $singular),
                concat!("One ", $field),
            ),
            route(
                Verb::Patch,
                concat!($path, "/{", $id, "}"),
                concat!($service, "/Update", $singular),
                concat!("Change a ", $field, " (the body's fields only)"),
            )
            .body(Body::Resource),
            route(
                Verb::Delete,
                concat!($path, "/{", $id, "}"),
                concat!($service, "/Delete", $singular),
                concat!("Delete a ", $field, " (`?cascade=true` with its children)"),
            ),
        ]
    };
}

const CRUD: [[Route; 5]; 12] = [
    crud!(
        "/api/systems",
        "system_id",
        "SystemService",
        "Systems",
        "System",
        "system"
    ),
    crud!(
        "/api/arrays",
        "array_id",
        "InverterArrayService",
        "InverterArrays",
        "InverterArray",
        "inverter array"
    ),
    crud!(
        "/api/inverters",
        "inverter_id",
        "InverterService",
        "Inverters",
        "Inverter",
        "inverter"
    ),
    crud!(
        "/api/meters",
        "meter_id",
        "MeterService",
        "Meters",
        "Meter",
        "meter"
    ),
    crud!(
        "/api/battery-arrays",
        "battery_array_id",
        "BatteryArrayService",
        "BatteryArrays",
        "BatteryArray",
        "battery array"
    ),
    crud!(
        "/api/battery-packs",
        "pack_id",
        "BatteryPackService",
        "BatteryPacks",
        "BatteryPack",
        "battery pack"
    ),
    crud!(
        "/api/batteries",
        "battery_id",
        "BatteryService",
        "Batteries",
        "Battery",
        "battery"
    ),
    crud!(
        "/api/battery-cells",
        "cell_id",
        "BatteryCellService",
        "BatteryCells",
        "BatteryCell",
        "battery cell"
    ),
    crud!(
        "/api/battery-array-attachments",
        "battery_array_id",
        "BatteryArrayAttachmentService",
        "BatteryArrayAttachments",
        "BatteryArrayAttachment",
        "battery array attachment"
    ),
    crud!(
        "/api/adapters",
        "adapter_id",
        "AdapterService",
        "Adapters",
        "Adapter",
        "adapter"
    ),
    crud!(
        "/api/battery-pack-adapters",
        "pack_id",
        "BatteryPackAdapterService",
        "BatteryPackAdapters",
        "BatteryPackAdapter",
        "battery pack adapter"
    ),
    crud!(
        "/api/adapter-base",
        "adapter_type",
        "AdapterTypeService",
        "AdapterTypes",
        "AdapterType",
        "adapter type"
    ),
];

/// Routes that are not CRUD.
const OTHER: [Route; 35] = [
    get(
        "/api/config",
        "ConfigService/GetConfig",
        "The installation as one tree",
    ),
    get(
        "/api/home/now",
        "LiveService/GetSystemNow",
        "A system now: powers, SOC, today's energy",
    )
    .only_system(),
    get(
        "/api/systems/{system_id}/now",
        "LiveService/GetSystemNow",
        "A system now",
    ),
    get(
        "/api/systems/{system_id}/events",
        "LiveService/WatchSystem",
        "A system now, then again after every change (Server-Sent Events)",
    )
    .events(),
    get(
        "/api/arrays/{array_id}/now",
        "LiveService/GetInverterArrayNow",
        "An inverter array now",
    ),
    get(
        "/api/battery/now",
        "LiveService/GetBatteryArrayNow",
        "A battery array now",
    ),
    get(
        "/api/battery-arrays/{battery_array_id}/now",
        "LiveService/GetBatteryArrayNow",
        "A battery array now",
    ),
    get(
        "/api/battery-packs/{pack_id}/now",
        "LiveService/GetBatteryPackNow",
        "A battery pack now, down to its cells",
    ),
    get(
        "/api/inverter/{inverter_id}/now",
        "LiveService/GetInverterNow",
        "An inverter now",
    ),
    get(
        "/api/meter/{meter_id}/now",
        "LiveService/GetMeterNow",
        "A meter now",
    ),
    get(
        "/api/energy/hourly",
        "HistoryService/GetHourlyEnergy",
        "A system's hourly energy",
    )
    .only_system()
    .csv(),
    get(
        "/api/energy/daily",
        "HistoryService/GetDailyEnergy",
        "A system's daily energy",
    )
    .only_system()
    .csv(),
    get(
        "/api/arrays/{array_id}/energy/hourly",
        "HistoryService/GetHourlyEnergy",
        "An array's hourly energy",
    )
    .csv(),
    get(
        "/api/arrays/{array_id}/energy/daily",
        "HistoryService/GetDailyEnergy",
        "An array's daily energy",
    )
    .csv(),
    get(
        "/api/inverters/{inverter_id}/energy/hourly",
        "HistoryService/GetHourlyEnergy",
        "An inverter's hourly energy",
    )
    .csv(),
    get(
        "/api/inverters/{inverter_id}/energy/daily",
        "HistoryService/GetDailyEnergy",
        "An inverter's daily energy",
    )
    .csv(),
    get(
        "/api/battery/hourly",
        "HistoryService/GetBatteryHourly",
        "Batteries' hourly figures",
    )
    .only_system()
    .csv(),
    get(
        "/api/battery/daily",
        "HistoryService/GetBatteryDaily",
        "Batteries' daily figures",
    )
    .only_system()
    .csv(),
    get(
        "/api/meters/{meter_id}/energy/hourly",
        "HistoryService/GetMeterHourly",
        "A meter's hourly energy",
    )
    .csv(),
    get(
        "/api/meters/{meter_id}/energy/daily",
        "HistoryService/GetMeterDaily",
        "A meter's daily energy",
    )
    .csv(),
    get(
        "/api/series/five-minutes",
        "HistoryService/GetFiveMinuteSeries",
        "A device's five-minute series (inverter_id, meter_id or pack_id)",
    )
    .csv(),
    get(
        "/api/battery-packs/{pack_id}/cells/hourly",
        "HistoryService/GetCellHourly",
        "A pack's cells, hourly",
    )
    .csv(),
    get(
        "/api/battery-packs/{pack_id}/batteries/hourly",
        "HistoryService/GetBatteryUnitHourly",
        "A pack's batteries, hourly",
    )
    .csv(),
    get(
        "/api/quality",
        "DataQualityService/ListDeviceQuality",
        "Every device's data quality",
    )
    .only_system(),
    get(
        "/api/quality/{device_id}",
        "DataQualityService/GetDeviceQuality",
        "One device's data quality",
    ),
    get(
        "/api/collectors",
        "CollectorService/ListCollectors",
        "The collectors and their health",
    ),
    get(
        "/api/server-info",
        "ServerInfoService/GetServerInfo",
        "The hub's version and state",
    ),
    get(
        "/api/audit",
        "AuditService/ListAuditEvents",
        "The audit trail (admins)",
    )
    .csv(),
    get(
        "/api/devices/{device_id}/settings",
        "ControlService/GetSettings",
        "A device's settings as it has them now, each with its last change",
    ),
    route(
        Verb::Post,
        "/api/devices/{device_id}/settings",
        "ControlService/SetSettings",
        "Set settings of a device (operators; `dry_run` answers the registers and writes nothing)",
    )
    .body(Body::Whole),
    get(
        "/api/commands",
        "ControlService/ListCommands",
        "Control commands, newest first",
    ),
    get(
        "/api/commands/{command_id}",
        "ControlService/GetCommand",
        "One control command",
    ),
    route(
        Verb::Post,
        "/api/commands/{command_id}/revert",
        "ControlService/RevertCommand",
        "Write back what a command replaced (operators)",
    )
    .body(Body::Whole),
    route(
        Verb::Post,
        "/api/commands/{command_id}/cancel",
        "ControlService/CancelCommand",
        "Cancel a pending command (operators)",
    ),
    route(
        Verb::Post,
        "/api/recompute",
        "HistoryService/Recompute",
        "Recompute a system's rollups over a range (admins)",
    )
    .body(Body::Whole),
];

/// Every route.
pub fn routes() -> impl Iterator<Item = &'static Route> {
    CRUD.iter().flatten().chain(OTHER.iter())
}
