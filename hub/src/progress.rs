//! Progress of long jobs (a legacy import or upgrade, a recompute): a bar with rate and ETA when
//! standard error is a terminal (indicatif), plain lines when it is not (a pipe, journald): one
//! when a task starts, one every [`PLAIN_EVERY`], one when it ends. Silent by default, so library
//! callers and tests print nothing unless they ask.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often a plain progress line is written while a task runs.
pub const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Where progress goes; clone freely.
#[derive(Clone, Default)]
pub struct Progress {
    mode: Mode,
}

#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
enum Mode {
    #[default]
    Silent,
    Bar,
    Lines,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Progress({:?})", self.mode)
    }
}

impl Progress {
    pub fn silent() -> Progress {
        Progress::default()
    }

    /// A bar on a terminal, plain lines otherwise.
    pub fn on_stderr() -> Progress {
        Progress {
            mode: if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                Mode::Bar
            } else {
                Mode::Lines
            },
        }
    }

    /// Plain lines on standard error, terminal or not.
    pub fn plain_lines() -> Progress {
        Progress { mode: Mode::Lines }
    }

    /// Starts a task of `total` units (rows, hours), when known.
    pub fn task(&self, what: impl Into<String>, total: Option<u64>, unit: &'static str) -> Task {
        let what = what.into();
        let inner = match self.mode {
            Mode::Silent => TaskKind::Silent,
            Mode::Bar => {
                let bar = match total {
                    Some(total) => indicatif::ProgressBar::new(total),
                    None => indicatif::ProgressBar::new_spinner(),
                };
                let template = if total.is_some() {
                    "{msg} [{bar:30}] {human_pos}/{human_len} {unit} ({per_sec}, ETA {eta})"
                } else {
                    "{msg} {spinner} {human_pos} {unit} ({per_sec})"
                };
                let template = template.replace("{unit}", unit);
                if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_message(what.clone());
                bar.enable_steady_tick(Duration::from_millis(200));
                TaskKind::Bar(bar)
            }
            Mode::Lines => {
                let line = PlainLine {
                    what,
                    unit,
                    total,
                    done: 0,
                    started: Instant::now(),
                    last_line: Instant::now(),
                };
                eprintln!("{}", line.render(false));
                TaskKind::Lines(Arc::new(Mutex::new(line)))
            }
        };
        Task {
            inner,
            finished: false,
        }
    }
}

/// One running task; finished when dropped, at the latest.
pub struct Task {
    inner: TaskKind,
    finished: bool,
}

enum TaskKind {
    Silent,
    Bar(indicatif::ProgressBar),
    Lines(Arc<Mutex<PlainLine>>),
}

struct PlainLine {
    what: String,
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_line: Instant,
}

impl PlainLine {
    fn render(&self, finished: bool) -> String {
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            self.done as f64 / seconds
        } else {
            0.0
        };
        let of = self.total.map_or(String::new(), |t| format!("/{t}"));
        let percent = match self.total {
            Some(total) if total > 0 => {
                format!(" ({:.0}%)", 100.0 * self.done as f64 / total as f64)
            }
            _ => String::new(),
        };
        if finished {
            return format!(
                "progress: {}: done, {}{of} {} in {seconds:.1} s ({rate:.0} {}/s)",
                self.what, self.done, self.unit, self.unit
            );
        }
        let eta = match self.total {
            Some(total) if rate > 0.0 && self.done > 0 => format!(
                ", ETA {:.0} s",
                total.saturating_sub(self.done) as f64 / rate
            ),
            _ => String::new(),
        };
        format!(
            "progress: {}: {}{of} {}{percent}, {rate:.0} {}/s{eta}",
            self.what, self.done, self.unit, self.unit
        )
    }
}

impl Task {
    pub fn advance(&self, n: u64) {
        match &self.inner {
            TaskKind::Silent => {}
            TaskKind::Bar(bar) => bar.inc(n),
            TaskKind::Lines(line) => {
                let mut line = line.lock().unwrap_or_else(PoisonError::into_inner);
                line.done += n;
                if line.last_line.elapsed() >= PLAIN_EVERY {
                    line.last_line = Instant::now();
                    eprintln!("{}", line.render(false));
                }
            }
        }
    }

    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        match &self.inner {
            TaskKind::Silent => {}
            TaskKind::Bar(bar) => bar.finish(),
            TaskKind::Lines(line) => {
                let line = line.lock().unwrap_or_else(PoisonError::into_inner);
                eprintln!("{}", line.render(true));
            }
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.end();
    }
}
