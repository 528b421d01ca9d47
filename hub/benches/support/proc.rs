//! What `/proc` says about a process: resident memory and CPU time (Linux).

use std::time::Duration;

/// `VmRSS` (now) and `VmHWM` (peak) of `pid`, in kB.
pub(crate) fn memory_kb(pid: u32) -> anyhow::Result<(u64, u64)> {
    status_kb(pid, ["VmRSS:", "VmHWM:"])
}

/// `RssAnon` (the heap, stacks) and `RssFile` (the binary's pages that ran, shared libraries) of
/// `pid`, in kB: the two parts of `VmRSS`.
#[allow(dead_code)]
pub(crate) fn resident_parts_kb(pid: u32) -> anyhow::Result<(u64, u64)> {
    status_kb(pid, ["RssAnon:", "RssFile:"])
}

fn status_kb(pid: u32, [first, second]: [&str; 2]) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{pid}/status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("{line:?}"))?
            .parse()?)
    };
    Ok((field(first)?, field(second)?))
}

/// User plus system CPU time `pid` has used so far.
#[allow(dead_code)]
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: the fields after it start past the last ')'.
    let after = &stat[stat.rfind(')').ok_or_else(|| anyhow::anyhow!("{stat:?}"))? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // In USER_HZ, which the kernel fixes at 100 for /proc on every architecture it exports to.
    Ok(Duration::from_secs_f64(ticks as f64 / 100.0))
}
