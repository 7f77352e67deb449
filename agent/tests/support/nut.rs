//! Driving `scripts/nut-sim.sh` (a real NUT stack: dummy-ups, upsd, upsmon) from tests.
//! Every stack is bounded by `--max-seconds` and stopped when its guard is dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// Directories nut-sim.sh looks in for the real (ELF) daemons.
const BIN_DIRS: &[&str] = &[
    "/lib/nut",
    "/usr/lib/nut",
    "/usr/libexec/nut",
    "/usr/sbin",
    "/sbin",
    "/usr/bin",
    "/bin",
    "/usr/local/ups/sbin",
    "/usr/local/ups/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
];

fn has_elf(name: &str) -> bool {
    BIN_DIRS.iter().any(|d| {
        std::fs::read(Path::new(d).join(name))
            .map(|b| b.starts_with(b"\x7fELF"))
            .unwrap_or(false)
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// True if a real NUT stack can run here. Otherwise: with `CI` set, fail the test with a
/// clear message; without it, print a notice and return false (the caller returns early).
pub fn nut_available(test: &str) -> bool {
    let why = if !has_elf("upsd") || !has_elf("upsmon") || !has_elf("dummy-ups") {
        Some("the NUT daemons (upsd, upsmon, dummy-ups) are not installed")
    } else if !is_root() {
        Some("nut-sim.sh must run as root")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) => {
            let msg = format!(
                "{test} needs a real NUT stack, but {why}. \
                 Install with `scripts/onprem/install-test-deps.sh` (apt-get install nut-server nut-client) and run as root."
            );
            if std::env::var_os("CI").is_some() {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            false
        }
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn nut_sim() -> PathBuf {
    repo_root().join("scripts/nut-sim.sh")
}

/// A scenario file from `scripts/nut/`.
pub fn scenario(name: &str) -> PathBuf {
    repo_root().join("scripts/nut").join(name)
}

/// One NOTIFYCMD call as nut-sim recorded it.
#[derive(Clone, Debug)]
pub struct NotifyCall {
    /// Epoch seconds when upsmon's hook started.
    pub t: f64,
    pub t_rel: f64,
    pub notifytype: String,
    pub upsname: String,
}

/// A running stack; stopped on drop.
pub struct NutSim {
    pub dir: PathBuf,
    pub port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl NutSim {
    /// `nut-sim.sh start DIR SCENARIO --port P --max-seconds MAX ARGS...`
    pub async fn start(dir: &Path, scenario: &Path, max_seconds: u32, args: &[&str]) -> NutSim {
        let port = free_port();
        let out = tokio::process::Command::new(nut_sim())
            .arg("start")
            .arg(dir)
            .arg(scenario)
            .args([
                "--port",
                &port.to_string(),
                "--max-seconds",
                &max_seconds.to_string(),
            ])
            .args(args)
            .output()
            .await
            .expect("run nut-sim.sh");
        let sim = NutSim {
            dir: dir.to_path_buf(),
            port,
        };
        assert!(
            out.status.success(),
            "nut-sim start failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sim
    }

    /// Runs another nut-sim command on this stack; returns stdout.
    pub async fn run(&self, command: &str, args: &[&str]) -> String {
        let out = tokio::process::Command::new(nut_sim())
            .arg(command)
            .arg(&self.dir)
            .args(args)
            .output()
            .await
            .expect("run nut-sim.sh");
        assert!(
            out.status.success(),
            "nut-sim {command} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every notify call so far (`nut-sim.sh events DIR --json`).
    pub async fn notifies(&self) -> Vec<NotifyCall> {
        let text = self.run("events", &["--json"]).await;
        let mut calls: Vec<NotifyCall> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["kind"] == "notify")
            .map(|v| NotifyCall {
                t: v["t"].as_f64().unwrap_or(0.0),
                t_rel: v["t_rel"].as_f64().unwrap_or(0.0),
                notifytype: v["notifytype"].as_str().unwrap_or("").to_string(),
                upsname: v["upsname"].as_str().unwrap_or("").to_string(),
            })
            .collect();
        calls.sort_by(|a, b| a.t.total_cmp(&b.t));
        calls
    }

    /// Waits until `n` calls of `notifytype` were recorded.
    pub async fn wait_notify(&self, notifytype: &str, n: usize, timeout: Duration) -> bool {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let count = self
                .notifies()
                .await
                .iter()
                .filter(|c| c.notifytype == notifytype)
                .count();
            if count >= n {
                return true;
            }
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The PID a daemon's pid file names (processes this test started, through nut-sim).
    pub fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pids").join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A log file under `log/`, for assertion messages.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("log").join(name)).unwrap_or_default()
    }

    /// `ups@127.0.0.1:port`.
    pub fn upsname(&self) -> String {
        format!("dummy@127.0.0.1:{}", self.port)
    }
}

impl Drop for NutSim {
    fn drop(&mut self) {
        let _ = std::process::Command::new(nut_sim())
            .arg("stop")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .status();
    }
}
