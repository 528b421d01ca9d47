//! `ControlService`: requests checked (which field, and why), turned into commands of
//! `crate::control`, and answered when the command has ended (or with its state so far).

use std::collections::BTreeMap;
use std::time::Duration;

use solarhub_proto::tonic::{self, Request, Response, Status};
use solarhub_proto::v1 as proto;

use crate::control::{
    Control, DEFAULT_DEADLINE, MAX_DEADLINE, MAX_SETTINGS, MAX_WAIT, NewCommand, to_proto,
};
use crate::installation::id_problem;

pub(crate) struct ControlApi {
    control: Control,
}

impl ControlApi {
    pub(crate) fn new(control: Control) -> Self {
        ControlApi { control }
    }
}

fn device(device_id: &str) -> Result<(), Status> {
    match id_problem(device_id) {
        Some(problem) => Err(Status::invalid_argument(format!("device_id {problem}"))),
        None => Ok(()),
    }
}

fn deadline(seconds: u32, field: &str) -> Result<Duration, Status> {
    match seconds {
        0 => Ok(DEFAULT_DEADLINE),
        s if u64::from(s) > MAX_DEADLINE.as_secs() => Err(Status::invalid_argument(format!(
            "{field} must be at most {} seconds, not {s}",
            MAX_DEADLINE.as_secs()
        ))),
        s => Ok(Duration::from_secs(u64::from(s))),
    }
}

fn checked_settings(
    settings: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Status> {
    if settings.is_empty() {
        return Err(Status::invalid_argument(
            "settings must name at least one setting (name -> value)",
        ));
    }
    if settings.len() > MAX_SETTINGS {
        return Err(Status::invalid_argument(format!(
            "settings: at most {MAX_SETTINGS} in one command, not {}",
            settings.len()
        )));
    }
    for (name, value) in &settings {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(Status::invalid_argument(format!(
                "settings: {name:?} is not a setting name (lower_snake_case)"
            )));
        }
        if value.trim().is_empty() || value.len() > 64 {
            return Err(Status::invalid_argument(format!(
                "settings[{name}]: the value must be 1 to 64 characters, not {value:?}"
            )));
        }
    }
    Ok(settings)
}

fn command_id(id: &str) -> Result<(), Status> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Status::invalid_argument(format!(
            "command_id {id:?} is not a command id"
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl proto::control_service_server::ControlService for ControlApi {
    async fn get_settings(
        &self,
        request: Request<proto::GetSettingsRequest>,
    ) -> Result<Response<proto::GetSettingsResponse>, Status> {
        let caller = super::caller(&request)?;
        let proto::GetSettingsRequest {
            device_id,
            timeout_seconds,
        } = request.into_inner();
        device(&device_id)?;
        let wait = match timeout_seconds {
            0 => Duration::from_secs(10),
            s if s > 60 => {
                return Err(Status::invalid_argument(format!(
                    "timeout_seconds must be at most 60, not {s}"
                )));
            }
            s => Duration::from_secs(u64::from(s)),
        };
        let row = self
            .control
            .read(NewCommand::read(
                device_id.clone(),
                wait,
                caller.name.clone(),
            ))
            .await?;
        let row = self.control.wait(&row.id, wait.min(MAX_WAIT)).await?;
        let read = to_proto(&row);
        let mut settings = read.settings_after.clone();
        // Each setting's last change: the newest command that wrote one of its registers (each
        // command's stored JSON decoded once, not once per setting).
        let changes: Vec<proto::Command> = self
            .control
            .changes(&device_id)
            .await?
            .iter()
            .map(to_proto)
            .collect();
        for setting in &mut settings {
            let last = changes.iter().find(|command| {
                command.writes.iter().any(|w| {
                    w.address == setting.register
                        || (setting.bits.is_empty() && w.address == setting.register + 1)
                }) && (command.settings.contains_key(&setting.name)
                    || command.kind == proto::CommandKind::Revert as i32)
            });
            if let Some(change) = last {
                setting.last_command_id = change.id.clone();
                setting.last_changed_at = change.finished_at;
                setting.last_changed_by = change.requested_by.clone();
            }
        }
        Ok(Response::new(proto::GetSettingsResponse {
            device_id,
            settings,
            read: Some(read),
        }))
    }

    async fn set_settings(
        &self,
        request: Request<proto::SetSettingsRequest>,
    ) -> Result<Response<proto::Command>, Status> {
        let caller = super::caller(&request)?;
        let target = crate::audit::Target::of(&request);
        let proto::SetSettingsRequest {
            device_id,
            settings,
            dry_run,
            deadline_seconds,
        } = request.into_inner();
        device(&device_id)?;
        target.set(format!("device {device_id}"));
        let settings = checked_settings(settings.into_iter().collect())?;
        let deadline = deadline(deadline_seconds, "deadline_seconds")?;
        let row = self
            .control
            .submit(NewCommand::set(
                device_id,
                settings,
                dry_run,
                deadline,
                caller.name.clone(),
            ))
            .await?;
        let row = self.control.wait(&row.id, deadline.min(MAX_WAIT)).await?;
        Ok(Response::new(to_proto(&row)))
    }

    async fn revert_command(
        &self,
        request: Request<proto::RevertCommandRequest>,
    ) -> Result<Response<proto::Command>, Status> {
        let caller = super::caller(&request)?;
        let target = crate::audit::Target::of(&request);
        let proto::RevertCommandRequest {
            command_id: id,
            deadline_seconds,
        } = request.into_inner();
        command_id(&id)?;
        let deadline = deadline(deadline_seconds, "deadline_seconds")?;
        let original = self.control.get(&id).await?;
        target.set(format!("device {}", original.device_id));
        let revert = crate::control::revert_of(&original, &caller.name, deadline)?;
        let row = self.control.submit(revert).await?;
        let row = self.control.wait(&row.id, deadline.min(MAX_WAIT)).await?;
        Ok(Response::new(to_proto(&row)))
    }

    async fn list_commands(
        &self,
        request: Request<proto::ListCommandsRequest>,
    ) -> Result<Response<proto::ListCommandsResponse>, Status> {
        let proto::ListCommandsRequest {
            device_id,
            pending_only,
            limit,
        } = request.into_inner();
        if !device_id.is_empty() {
            device(&device_id)?;
        }
        let limit = match limit {
            0 => 100,
            l if l > 1000 => {
                return Err(Status::invalid_argument(format!(
                    "limit must be at most 1000, not {l}"
                )));
            }
            l => i64::from(l),
        };
        let rows = self
            .control
            .list(
                (!device_id.is_empty()).then_some(device_id),
                pending_only,
                limit,
            )
            .await?;
        Ok(Response::new(proto::ListCommandsResponse {
            commands: rows.iter().map(to_proto).collect(),
        }))
    }

    async fn get_command(
        &self,
        request: Request<proto::GetCommandRequest>,
    ) -> Result<Response<proto::Command>, Status> {
        let id = request.into_inner().command_id;
        command_id(&id)?;
        Ok(Response::new(to_proto(&self.control.get(&id).await?)))
    }

    async fn cancel_command(
        &self,
        request: Request<proto::CancelCommandRequest>,
    ) -> Result<Response<proto::Command>, Status> {
        let caller = super::caller(&request)?;
        let target = crate::audit::Target::of(&request);
        let id = request.into_inner().command_id;
        command_id(&id)?;
        target.set(format!("command {id}"));
        let row = self.control.cancel(&id, &caller.name).await?;
        Ok(Response::new(to_proto(&row)))
    }
}
