//! One control command against one device, on the device's bus task, between two polls (the
//! bus carries one request at a time, so nothing interleaves): the deadline checked, the current
//! values read, registers already at their target skipped, the daily budget checked, the rest
//! written with function 0x10 (contiguous registers in one request), read back and compared.

use std::time::Duration;

use solarhub_proto::v1::{
    CommandKind, CommandResult, CommandState, DeviceCommand, RegisterWrite, SettingValue,
};
use tokio::time::Instant;
use tokio_modbus::client::{Context, Writer};

use crate::bus::modbus_poll::RequestError;
use crate::bus::read_plan::ReadRequest;
use crate::drivers::register_map::{RegisterKind, RegisterMap};
use crate::drivers::settings::{Encoding, Requested, Setting, Write};

/// A command handed to a bus task, with what the bus needs to execute it safely.
#[derive(Debug)]
pub struct Job {
    pub command: DeviceCommand,
    /// Never executed at or after this instant.
    pub deadline: Instant,
    /// Registers this device may still be written today.
    pub budget_left: i64,
    pub budget: u32,
    pub reply: tokio::sync::oneshot::Sender<Executed>,
}

/// What a command did: its result, and how many registers it wrote (for the budget).
#[derive(Debug, Clone)]
pub struct Executed {
    pub result: CommandResult,
    pub registers_written: i64,
    /// The connection broke while executing (the bus task opens it again).
    pub transport_broken: bool,
}

impl Executed {
    pub fn ended(command: &DeviceCommand, state: CommandState, reason: impl Into<String>) -> Self {
        Executed {
            result: CommandResult {
                id: command.id.clone(),
                device_id: command.device_id.clone(),
                state: state as i32,
                reason: reason.into(),
                finished_at: Some(solarhub_proto::time::timestamp(crate::clock::now_ms())),
                ..Default::default()
            },
            registers_written: 0,
            transport_broken: false,
        }
    }

    fn broken_by(mut self, error: &RequestError) -> Self {
        self.transport_broken |= matches!(error, RequestError::Transport(_));
        self
    }

    fn with_writes(mut self, writes: Vec<RegisterWrite>) -> Self {
        self.result.writes = writes;
        self
    }
}

/// Executes `job` on `context` (already addressed to the device).
pub async fn execute(
    context: &mut Context,
    map: &RegisterMap,
    job: &Job,
    timeout: Duration,
) -> Executed {
    let command = &job.command;
    if Instant::now() >= job.deadline {
        return Executed::ended(
            command,
            CommandState::Expired,
            "its deadline passed before the device's bus was free: nothing written",
        );
    }
    let kind = CommandKind::try_from(command.kind).unwrap_or(CommandKind::Unspecified);
    let writes = match kind {
        CommandKind::Read => {
            return match read_settings(context, map, timeout).await {
                Ok(settings) => {
                    let mut done = Executed::ended(command, CommandState::Done, "");
                    done.result.settings = settings;
                    done
                }
                Err(reason) => Executed::ended(command, CommandState::Failed, reason),
            };
        }
        CommandKind::Set => planned_writes(map, command),
        CommandKind::Revert => restored_writes(map, command),
        CommandKind::Unspecified => Err("the command names no kind".to_owned()),
    };
    let writes = match writes {
        Ok(writes) => writes,
        Err(reason) => return Executed::ended(command, CommandState::Refused, reason),
    };
    // The current values, then only the registers that change.
    let mut changes = Vec::new();
    for write in &writes {
        let current = match read_words(context, write.register, 1, timeout).await {
            Ok(words) => words[0],
            Err(error) => {
                return Executed::ended(
                    command,
                    CommandState::Failed,
                    format!(
                        "could not read register {} before writing: {error}; nothing written",
                        write.register
                    ),
                )
                .broken_by(&error);
            }
        };
        let new = write.apply(current);
        if new != current {
            changes.push(RegisterWrite {
                address: u32::from(write.register),
                current: Some(u32::from(current)),
                new: Some(u32::from(new)),
                read_back: None,
                mask: u32::from(write.mask),
            });
        }
    }
    if command.dry_run {
        let reason = if changes.is_empty() {
            "dry run: every register is already at its target; nothing would be written"
        } else {
            "dry run: nothing written"
        };
        return Executed::ended(command, CommandState::Done, reason).with_writes(changes);
    }
    if changes.is_empty() {
        let mut done = Executed::ended(
            command,
            CommandState::Done,
            "every register is already at its target: nothing written",
        );
        done.result.settings = read_settings(context, map, timeout)
            .await
            .unwrap_or_default();
        return done;
    }
    let needed = changes.len() as i64;
    if needed > job.budget_left {
        return Executed::ended(
            command,
            CommandState::Refused,
            format!(
                "the daily write budget of this device is spent: {} of {} registers written in the last 24 hours, this command needs {needed} (it protects the inverter's flash; the collector's --write-budget sets it)",
                i64::from(job.budget) - job.budget_left.max(0),
                job.budget
            ),
        )
        .with_writes(changes);
    }
    if Instant::now() >= job.deadline {
        return Executed::ended(
            command,
            CommandState::Expired,
            "its deadline passed while the current values were read: nothing written",
        )
        .with_writes(changes);
    }
    let mut written = 0i64;
    for run in runs(&changes) {
        let start = changes[run.start].address as u16;
        let words: Vec<u16> = changes[run.clone()]
            .iter()
            .map(|w| w.new.unwrap_or_default() as u16)
            .collect();
        if let Err(error) = write_words(context, start, &words, timeout).await {
            let mut failed = Executed::ended(
                command,
                CommandState::Failed,
                format!(
                    "writing registers {start}..{} failed: {error}; {written} registers were written before it",
                    start + words.len() as u16 - 1
                ),
            )
            .with_writes(changes)
            .broken_by(&error);
            // The request may have been carried out before the answer was lost: counted.
            failed.registers_written = written + words.len() as i64;
            return failed;
        }
        written += words.len() as i64;
    }
    // Read back and compare: a write that "succeeded" may not have taken.
    let mut mismatches = Vec::new();
    let mut broken = false;
    for change in &mut changes {
        match read_words(context, change.address as u16, 1, timeout).await {
            Ok(words) => {
                change.read_back = Some(u32::from(words[0]));
                if Some(u32::from(words[0])) != change.new {
                    mismatches.push(format!(
                        "register {} reads back {} after writing {} (it was {})",
                        change.address,
                        words[0],
                        change.new.unwrap_or_default(),
                        change.current.unwrap_or_default()
                    ));
                }
            }
            Err(error) => {
                broken |= matches!(error, RequestError::Transport(_));
                mismatches.push(format!(
                    "register {} could not be read back: {error}",
                    change.address
                ));
            }
        }
    }
    let mut executed = if mismatches.is_empty() {
        Executed::ended(command, CommandState::Done, "")
    } else {
        Executed::ended(command, CommandState::Failed, mismatches.join("; "))
    }
    .with_writes(changes);
    executed.transport_broken = broken;
    executed.registers_written = written;
    executed.result.settings = read_settings(context, map, timeout)
        .await
        .unwrap_or_default();
    executed
}

/// The writes a SET command needs, merged per register; any setting refused refuses the whole
/// command (nothing is written).
fn planned_writes(map: &RegisterMap, command: &DeviceCommand) -> Result<Vec<Write>, String> {
    if command.settings.is_empty() {
        return Err("the command sets no setting".into());
    }
    let mut writes: Vec<Write> = Vec::new();
    let mut refusals = Vec::new();
    for (name, text) in &command.settings {
        let Some(setting) = map.settings.iter().find(|s| &s.name == name) else {
            refusals.push(format!(
                "{name} is not a setting of this device's map (it declares {})",
                declared(map)
            ));
            continue;
        };
        match setting.write(&requested(setting, text), map.word_order) {
            Ok(parts) => {
                for part in parts {
                    match writes.iter_mut().find(|w| w.register == part.register) {
                        Some(existing) => {
                            existing.raw = (existing.raw & !part.mask) | part.raw;
                            existing.mask |= part.mask;
                        }
                        None => writes.push(part),
                    }
                }
            }
            Err(reason) => refusals.push(reason),
        }
    }
    if !refusals.is_empty() {
        return Err(format!("{}; nothing written", refusals.join("; ")));
    }
    writes.sort_by_key(|w| w.register);
    Ok(writes)
}

/// The writes a REVERT needs: the previous values into the bits the reverted command owned, each
/// within a declared setting.
fn restored_writes(map: &RegisterMap, command: &DeviceCommand) -> Result<Vec<Write>, String> {
    if command.restore.is_empty() {
        return Err("the revert restores no register".into());
    }
    let mut writes = Vec::new();
    for restore in &command.restore {
        let (Ok(register), Ok(mask), Ok(raw)) = (
            u16::try_from(restore.address),
            u16::try_from(restore.mask),
            u16::try_from(restore.current.unwrap_or(u32::MAX)),
        ) else {
            return Err(format!("register {} is out of range", restore.address));
        };
        let declared_bits = map
            .settings
            .iter()
            .filter(|s| s.verified && s.registers().contains(&register))
            .fold(0u16, |bits, s| bits | s.mask_of(register));
        if mask == 0 || mask & !declared_bits != 0 {
            return Err(format!(
                "register {register} (mask {mask:#06x}) is not within a verified setting of this device's map; nothing written"
            ));
        }
        writes.push(Write {
            register,
            mask,
            raw: raw & mask,
        });
    }
    writes.sort_by_key(|w| w.register);
    Ok(writes)
}

fn declared(map: &RegisterMap) -> String {
    if map.settings.is_empty() {
        return "none".into();
    }
    map.settings
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as text, as the setting takes it.
pub fn requested(setting: &Setting, text: &str) -> Requested {
    if !setting.values.is_empty() || setting.encoding == Encoding::Hhmm {
        return Requested::Text(text.trim().to_owned());
    }
    match text.trim().parse::<f64>() {
        Ok(number) => Requested::Number(number),
        Err(_) => Requested::Text(text.to_owned()),
    }
}

/// A value as text, as a request writes it.
pub fn text_of(value: &Requested) -> String {
    match value {
        Requested::Text(text) => text.clone(),
        Requested::Number(number) if number.fract() == 0.0 && number.abs() < 1e15 => {
            format!("{}", *number as i64)
        }
        Requested::Number(number) => number.to_string(),
    }
}

/// Ranges of `changes` (sorted by address) whose addresses follow each other.
fn runs(changes: &[RegisterWrite]) -> Vec<std::ops::Range<usize>> {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for (index, change) in changes.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if changes[run.end - 1].address + 1 == change.address && run.len() < 100 => {
                run.end = index + 1;
            }
            _ => runs.push(index..index + 1),
        }
    }
    runs
}

/// Every declared setting and its current value (a few requests: nearby registers are read
/// together).
pub async fn read_settings(
    context: &mut Context,
    map: &RegisterMap,
    timeout: Duration,
) -> Result<Vec<SettingValue>, String> {
    let mut addresses: Vec<u16> = map.settings.iter().flat_map(Setting::registers).collect();
    addresses.sort_unstable();
    addresses.dedup();
    let gap = map.max_gap.max(1);
    let mut values = std::collections::BTreeMap::new();
    let mut index = 0;
    while index < addresses.len() {
        let start = addresses[index];
        let mut end = start;
        while index < addresses.len()
            && addresses[index] - end <= gap
            && addresses[index] - start < 100
        {
            end = addresses[index];
            index += 1;
        }
        let words = read_words(context, start, end - start + 1, timeout)
            .await
            .map_err(|error| format!("reading registers {start}..{end} failed: {error}"))?;
        for (offset, word) in words.into_iter().enumerate() {
            values.insert(start + offset as u16, word);
        }
    }
    Ok(map
        .settings
        .iter()
        .map(|setting| {
            let words: Option<Vec<u16>> = setting
                .registers()
                .map(|r| values.get(&r).copied())
                .collect();
            setting_value(setting, words.as_deref(), map)
        })
        .collect())
}

/// A declared setting as the settings answer shows it, with its value when read.
pub fn setting_value(setting: &Setting, words: Option<&[u16]>, map: &RegisterMap) -> SettingValue {
    let numeric = setting.values.is_empty() && setting.encoding == Encoding::Number;
    SettingValue {
        name: setting.name.clone(),
        value: words
            .map(|w| text_of(&setting.read(w, map.word_order)))
            .unwrap_or_default(),
        unit: setting.unit.clone(),
        min: setting.min.filter(|_| numeric),
        max: setting.max.filter(|_| numeric),
        choices: setting.values.keys().cloned().collect(),
        verified: setting.verified,
        unverified_reason: setting.unverified.clone(),
        register: u32::from(setting.register),
        bits: setting
            .bits
            .map(|[first, last]| format!("{first}-{last}"))
            .unwrap_or_default(),
        ..Default::default()
    }
}

async fn read_words(
    context: &mut Context,
    start: u16,
    count: u16,
    timeout: Duration,
) -> Result<Vec<u16>, RequestError> {
    let request = ReadRequest {
        kind: RegisterKind::Holding,
        start,
        count,
    };
    crate::bus::modbus_poll::read_request(context, &request, timeout).await
}

async fn write_words(
    context: &mut Context,
    start: u16,
    words: &[u16],
    timeout: Duration,
) -> Result<(), RequestError> {
    match tokio::time::timeout(timeout, context.write_multiple_registers(start, words)).await {
        Err(_) => Err(RequestError::Timeout(timeout)),
        Ok(Err(error)) => Err(RequestError::Transport(error.to_string())),
        Ok(Ok(Err(exception))) => Err(RequestError::Exception(exception.to_string())),
        Ok(Ok(Ok(()))) => Ok(()),
    }
}
