//! The host's log: printed to the emulator's stdout like the Functions host prints it, and kept
//! in memory so tests (and drills) can read what was logged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Information,
    Warning,
    Error,
}

/// Who wrote a line: the host itself or the handler process (its stdout/stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Host,
    Worker,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub source: Source,
    pub text: String,
}

/// Shared log; cheap to clone.
#[derive(Debug, Clone)]
pub struct HostLog {
    lines: Arc<Mutex<VecDeque<LogLine>>>,
    print: bool,
}

/// Kept lines are capped so a chatty handler cannot grow memory without bound.
const KEEP: usize = 20_000;

impl HostLog {
    pub fn new(print: bool) -> HostLog {
        HostLog {
            lines: Arc::new(Mutex::new(VecDeque::new())),
            print,
        }
    }

    fn push(&self, level: Level, source: Source, text: &str) {
        if self.print {
            let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let tag = match (source, level) {
                (Source::Worker, Level::Error) => "[handler:error] ",
                (Source::Worker, Level::Warning) => "[handler:warn] ",
                (Source::Worker, Level::Information) => "[handler] ",
                (Source::Host, Level::Error) => "error: ",
                (Source::Host, Level::Warning) => "warning: ",
                (Source::Host, Level::Information) => "",
            };
            println!("[{ts}] {tag}{text}");
        }
        if let Ok(mut l) = self.lines.lock() {
            if l.len() >= KEEP {
                l.pop_front();
            }
            l.push_back(LogLine {
                level,
                source,
                text: text.to_string(),
            });
        }
    }

    pub fn host(&self, level: Level, text: &str) {
        self.push(level, Source::Host, text);
    }

    pub fn worker(&self, level: Level, text: &str) {
        self.push(level, Source::Worker, text);
    }

    pub fn lines(&self) -> Vec<LogLine> {
        self.lines
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}
