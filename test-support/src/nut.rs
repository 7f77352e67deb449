//! Driving `scripts/nut-sim.sh` (a real NUT stack: dummy-ups → upsd → upsmon) from tests.
//! Every stack is bounded by `--max-seconds` and stopped when its guard is dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{free_port, repo_root};

/// Directories nut-sim.sh looks in for the real (ELF) daemons.
const NUT_BIN_DIRS: &[&str] = &[
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

/// Debian's `/sbin/upsd` and friends can be shell wrappers; nut-sim needs the real daemons.
fn has_elf(name: &str) -> bool {
    NUT_BIN_DIRS.iter().any(|d| {
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

/// True if a real NUT stack can run here. Otherwise: with `CI` set, fails the test with a
/// clear message; without it, prints a notice and returns false (the caller returns early).
pub fn nut_available(test: &str) -> bool {
    let why = if !nut_sim().is_file() {
        Some("scripts/nut-sim.sh is missing")
    } else if !has_elf("upsd") || !has_elf("upsmon") || !has_elf("dummy-ups") {
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
                "{test} needs a real NUT stack, but {why}. Install it with \
                 `scripts/onprem/install-test-deps.sh` (apt-get install nut-server nut-client) and run as root."
            );
            if std::env::var_os("CI").is_some() {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            false
        }
    }
}

pub fn nut_sim() -> PathBuf {
    repo_root().join("scripts/nut-sim.sh")
}

/// A scenario from `scripts/nut/`.
pub fn scenario(name: &str) -> PathBuf {
    repo_root().join("scripts/nut").join(name)
}

/// Does a `ups.status` string carry `token`?
pub fn has_token(status: &str, token: &str) -> bool {
    status.split_whitespace().any(|t| t == token)
}

/// One NOTIFYCMD call as nut-sim recorded it.
#[derive(Clone, Debug)]
pub struct NotifyCall {
    /// Epoch seconds when upsmon's hook started.
    pub t: f64,
    /// Seconds since the scenario started.
    pub t_rel: f64,
    pub notifytype: String,
    pub upsname: String,
}

/// The calls' notify types, sorted (for "same multiset" comparisons).
pub fn sorted_types(calls: &[NotifyCall]) -> Vec<String> {
    let mut v: Vec<String> = calls.iter().map(|c| c.notifytype.clone()).collect();
    v.sort();
    v
}

/// A running NUT stack (dummy-ups → upsd → upsmon); `nut-sim.sh stop DIR` on drop.
#[derive(Debug)]
pub struct NutSim {
    pub dir: PathBuf,
    pub port: u16,
}

/// Bound on one nut-sim command (start takes ≈ 4 s).
const NUT_SIM_LIMIT: Duration = Duration::from_secs(60);

async fn nut_sim_cmd(args: Vec<std::ffi::OsString>) -> std::process::Output {
    let child = tokio::process::Command::new(nut_sim())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run nut-sim.sh");
    tokio::time::timeout(NUT_SIM_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("nut-sim.sh {args:?} ran over {NUT_SIM_LIMIT:?}"))
        .expect("nut-sim.sh output")
}

impl NutSim {
    /// `nut-sim.sh start DIR SCENARIO --port P --max-seconds MAX ARGS...` (the watchdog stops
    /// the stack after `max_seconds` even if this process dies).
    pub async fn start(dir: &Path, scenario: &Path, max_seconds: u32, args: &[&str]) -> NutSim {
        NutSim::start_avoiding(dir, scenario, max_seconds, args, &[]).await
    }

    /// [`NutSim::start`] on a free port that is none of `avoid` (e.g. the port of a function
    /// that is stopped for a while and must stay free).
    pub async fn start_avoiding(
        dir: &Path,
        scenario: &Path,
        max_seconds: u32,
        args: &[&str],
        avoid: &[u16],
    ) -> NutSim {
        let mut port = free_port();
        while avoid.contains(&port) {
            port = free_port();
        }
        let mut all: Vec<std::ffi::OsString> =
            vec!["start".into(), dir.into(), scenario.into(), "--port".into()];
        all.push(port.to_string().into());
        all.push("--max-seconds".into());
        all.push(max_seconds.to_string().into());
        all.extend(args.iter().map(Into::into));
        // The guard exists before the start finishes: a half-started stack is stopped too.
        let sim = NutSim {
            dir: dir.to_path_buf(),
            port,
        };
        let out = nut_sim_cmd(all).await;
        assert!(
            out.status.success(),
            "nut-sim start failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sim
    }

    /// Another nut-sim command on this stack; returns stdout.
    pub async fn run(&self, command: &str, args: &[&str]) -> String {
        let mut all: Vec<std::ffi::OsString> = vec![command.into(), self.dir.clone().into()];
        all.extend(args.iter().map(Into::into));
        let out = nut_sim_cmd(all).await;
        assert!(
            out.status.success(),
            "nut-sim {command} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every NOTIFYCMD call so far (`nut-sim.sh events DIR --json`), oldest first.
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

    /// Waits until upsmon made `n` NOTIFYCMD calls of `notifytype`; fails the test with
    /// upsmon's log after `timeout`.
    pub async fn expect_notify(&self, notifytype: &str, n: usize, timeout: Duration) {
        let done =
            |calls: &[NotifyCall]| calls.iter().filter(|c| c.notifytype == notifytype).count() >= n;
        self.expect_calls(&format!("{n}x {notifytype}"), timeout, done)
            .await;
    }

    /// Waits until upsmon called NOTIFYCMD with `notifytype` later than `t_rel` s into the
    /// scenario (e.g. the call that ends it); fails the test with upsmon's log after `timeout`.
    pub async fn expect_notify_after(&self, notifytype: &str, t_rel: f64, timeout: Duration) {
        let done = |calls: &[NotifyCall]| {
            calls
                .iter()
                .any(|c| c.notifytype == notifytype && c.t_rel > t_rel)
        };
        self.expect_calls(&format!("{notifytype} after {t_rel} s"), timeout, done)
            .await;
    }

    async fn expect_calls(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[NotifyCall]) -> bool,
    ) {
        let end = Instant::now() + timeout;
        while !done(&self.notifies().await) {
            assert!(
                Instant::now() < end,
                "no NOTIFYCMD call {what} within {timeout:?}; upsmon.log:\n{}",
                self.log("upsmon.log")
            );
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

    /// A log file under `log/` (for assertion messages).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("log").join(name)).unwrap_or_default()
    }

    /// `dummy@127.0.0.1:port`, as upsmon passes it in UPSNAME.
    pub fn upsname(&self) -> String {
        format!("dummy@127.0.0.1:{}", self.port)
    }
}

impl Drop for NutSim {
    fn drop(&mut self) {
        // nut-sim stops only the PIDs it recorded for this DIR.
        let _ = Command::new(nut_sim())
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
