//! Child processes of the tests: the collector binary beside the hub's, and a process killed when
//! dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn collector_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_solarhub-hub")).with_file_name("solarhub-collector");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

/// Runs `command`, which must refuse to start, and returns what it said on standard error. One
/// that is still running after 30 s started instead of refusing: it is killed and the test fails
/// (rather than waiting on it for ever).
pub fn refused_at_start(command: &mut Command) -> String {
    use std::io::Read;
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if began.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut said = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    assert!(!status.success(), "{command:?} succeeded: {said}");
    said
}

/// A child process, killed when dropped.
pub struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    pub fn spawn(name: &'static str, command: &mut Command, log: &Path) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { name, child }
    }

    /// Like [`Proc::spawn`], with standard input kept open for [`Proc::say`].
    pub fn spawn_with_input(name: &'static str, command: &mut Command, log: &Path) -> Proc {
        Proc::spawn(name, command.stdin(Stdio::piped()), log)
    }

    /// Writes one line to the process's standard input.
    pub fn say(&mut self, line: &str) {
        use std::io::Write;
        let input = self
            .child
            .stdin
            .as_mut()
            .expect("started with spawn_with_input");
        writeln!(input, "{line}").unwrap();
        input.flush().unwrap();
    }

    pub fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The environment the running process has now (`/proc/PID/environ`), as `NAME=value` lines.
    pub fn environment(&self) -> Vec<String> {
        std::fs::read(format!("/proc/{}/environ", self.child.id()))
            .unwrap_or_default()
            .split(|byte| *byte == 0)
            .map(|entry| String::from_utf8_lossy(entry).into_owned())
            .collect()
    }

    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGTERM, then waits up to `limit` for a clean exit.
    pub fn stop(mut self, limit: Duration) -> std::process::ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "{} did not stop within {limit:?} of SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
