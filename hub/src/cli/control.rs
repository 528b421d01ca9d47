//! `control`: a device's settings and control commands from the hub's machine, for scripts. It
//! writes the command into the database as `ControlService` does (asked by `os:USER`); the hub
//! serving that database delivers it to the device's collector and records the result, which
//! this command waits for and prints. Exits non-zero when the command did not end done.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use solarhub_hub::control::{self, NewCommand};
use solarhub_hub::db::{Database, DatabaseUrl};
use solarhub_proto::v1 as proto;

use super::setup::{legacy_options, open_migrated};

#[derive(clap::Subcommand)]
pub(crate) enum ControlCommand {
    /// Reads a device's settings from the device (through its collector) and prints them.
    Settings {
        device: String,
        /// How long to wait for the device, in seconds.
        #[arg(long, default_value = "10")]
        timeout: u64,
    },
    /// Sets settings of one device: `NAME=VALUE` ... (a number, `HH:MM` or a named value).
    Set {
        device: String,
        #[arg(required = true, value_name = "NAME=VALUE")]
        settings: Vec<String>,
        /// Print the registers that would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Never executed after this many seconds from now.
        #[arg(long, default_value = "60")]
        deadline: u64,
    },
    /// Writes back what a command replaced.
    Revert {
        command_id: String,
        #[arg(long, default_value = "60")]
        deadline: u64,
    },
    /// Commands, newest first.
    List {
        #[arg(long)]
        device: Option<String>,
        /// Only pending and sent ones.
        #[arg(long)]
        pending: bool,
        #[arg(long, default_value = "20")]
        limit: i64,
    },
    /// One command, with every register it wrote.
    Show { command_id: String },
    /// Cancels a pending command.
    Cancel { command_id: String },
}

impl ControlCommand {
    /// The audit row of a command that changes something (the read-only ones write none).
    pub(crate) fn audited(&self) -> Option<(String, String)> {
        match self {
            ControlCommand::Set { device, .. } => {
                Some(("control set".into(), format!("device {device}")))
            }
            ControlCommand::Revert { command_id, .. } => {
                Some(("control revert".into(), format!("command {command_id}")))
            }
            ControlCommand::Cancel { command_id } => {
                Some(("control cancel".into(), format!("command {command_id}")))
            }
            _ => None,
        }
    }
}

pub(crate) fn run(
    url: &DatabaseUrl,
    backup_dir: &Option<std::path::PathBuf>,
    command: ControlCommand,
) -> anyhow::Result<()> {
    let database = open_migrated(url, &legacy_options(backup_dir, None, None))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(database, command))
}

async fn run_async(database: Database, command: ControlCommand) -> anyhow::Result<()> {
    let me = solarhub_hub::audit::os_user();
    let repository = solarhub_hub::catalog::Repository::new(database.clone());
    let status = |status: solarhub_proto::tonic::Status| anyhow::anyhow!("{}", status.message());
    match command {
        ControlCommand::Settings { device, timeout } => {
            let wait = Duration::from_secs(timeout.clamp(1, 60));
            let new = NewCommand::read(device.clone(), wait, me);
            let row = submit(&database, &repository, new).await?;
            let row = control::wait_ended(&database, &row.id, wait + Duration::from_secs(1), None)
                .await
                .map_err(status)?;
            let read = control::to_proto(&row);
            if row.state != "done" {
                bail!("the device's settings could not be read: {}", line(&read));
            }
            for setting in &read.settings_after {
                let limits = if !setting.choices.is_empty() {
                    setting.choices.join("/")
                } else {
                    match (setting.min, setting.max) {
                        (None, None) if setting.value.contains(':') => "HH:MM".into(),
                        (None, None) => String::new(),
                        (min, max) => format!(
                            "{}..{}",
                            min.map(|m| m.to_string()).unwrap_or_default(),
                            max.map(|m| m.to_string()).unwrap_or_default()
                        ),
                    }
                };
                println!(
                    "{:<32} {:>10} {:<3} {:<24} {}",
                    setting.name,
                    setting.value,
                    setting.unit,
                    limits,
                    if setting.verified {
                        "verified".to_owned()
                    } else {
                        format!("refused: {}", setting.unverified_reason)
                    }
                );
            }
            Ok(())
        }
        ControlCommand::Set {
            device,
            settings,
            dry_run,
            deadline,
        } => {
            let mut pairs = BTreeMap::new();
            for pair in &settings {
                let (name, value) = pair
                    .split_once('=')
                    .with_context(|| format!("{pair:?} is not NAME=VALUE"))?;
                pairs.insert(name.trim().to_owned(), value.trim().to_owned());
            }
            let deadline = Duration::from_secs(deadline.clamp(1, 3600));
            let new = NewCommand::set(device, pairs, dry_run, deadline, me);
            finish(
                &database,
                submit(&database, &repository, new).await?,
                deadline,
            )
            .await
        }
        ControlCommand::Revert {
            command_id,
            deadline,
        } => {
            let deadline = Duration::from_secs(deadline.clamp(1, 3600));
            let original = control::get(&database, &command_id).await.map_err(status)?;
            let new = control::revert_of(&original, &me, deadline).map_err(status)?;
            finish(
                &database,
                submit(&database, &repository, new).await?,
                deadline,
            )
            .await
        }
        ControlCommand::List {
            device,
            pending,
            limit,
        } => {
            let rows = database
                .run(move |conn| {
                    solarhub_hub::db::control::list(
                        conn,
                        device.as_deref(),
                        pending,
                        limit.clamp(1, 1000),
                    )
                })
                .await?;
            for row in &rows {
                let command = control::to_proto(row);
                let mut settings: Vec<String> = command
                    .settings
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                settings.sort();
                println!(
                    "{}  {}  {:<10} {:<8} {:<16} {}  {}",
                    chrono::DateTime::from_timestamp_millis(row.created_at)
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_default(),
                    row.id,
                    row.device_id,
                    row.kind,
                    row.requested_by,
                    settings.join(" "),
                    line(&command)
                );
            }
            if rows.is_empty() {
                eprintln!("no commands");
            }
            Ok(())
        }
        ControlCommand::Show { command_id } => {
            let row = control::get(&database, &command_id).await.map_err(status)?;
            print_command(&control::to_proto(&row));
            Ok(())
        }
        ControlCommand::Cancel { command_id } => {
            let key = command_id.clone();
            let cancelled = database
                .run_write(move |conn| {
                    solarhub_hub::db::control::cancel(conn, &key, &me, solarhub_hub::db::now_ms())
                })
                .await?;
            if !cancelled {
                bail!("command {command_id} is not pending, so it cannot be cancelled");
            }
            println!("command {command_id} cancelled");
            Ok(())
        }
    }
}

async fn submit(
    database: &Database,
    repository: &solarhub_hub::catalog::Repository,
    new: NewCommand,
) -> anyhow::Result<solarhub_hub::db::control::CommandRow> {
    let row = control::command_row(repository, new)
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
    let stored = row.clone();
    database
        .run_write(move |conn| solarhub_hub::db::control::insert(conn, &stored))
        .await?;
    eprintln!(
        "command {} for device {} waits for collector {} (a hub serving this database delivers it)",
        row.id, row.device_id, row.collector_id
    );
    Ok(row)
}

/// Waits for the command's end (its deadline and the collector's grace), prints it, and fails
/// unless it was done.
async fn finish(
    database: &Database,
    row: solarhub_hub::db::control::CommandRow,
    deadline: Duration,
) -> anyhow::Result<()> {
    let row = control::wait_ended(database, &row.id, deadline + control::SENT_GRACE, None)
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
    let command = control::to_proto(&row);
    print_command(&command);
    match row.state.as_str() {
        "done" => Ok(()),
        "pending" => bail!(
            "no hub delivered command {}: is a hub serving this database, and is collector {} connected to it?",
            row.id,
            row.collector_id
        ),
        state => bail!("command {} {state}: {}", row.id, row.reason),
    }
}

fn line(command: &proto::Command) -> String {
    let state = proto::CommandState::try_from(command.state)
        .map(control::state_name)
        .unwrap_or("unknown");
    if command.reason.is_empty() {
        state.to_owned()
    } else {
        format!("{state}: {}", command.reason)
    }
}

fn print_command(command: &proto::Command) {
    println!(
        "command {} ({}): {}",
        command.id,
        command.device_id,
        line(command)
    );
    for write in &command.writes {
        println!(
            "  register {:>5}: {:>5} -> {:>5}{}",
            write.address,
            write.current.unwrap_or_default(),
            write.new.unwrap_or_default(),
            write
                .read_back
                .map(|r| format!("  (read back {r})"))
                .unwrap_or_default()
        );
    }
}
