//! Shared support for the end-to-end tests: the other crates' binaries (located next to the
//! test executable, built on first use), `burst-handler` as a process with a file state store,
//! a site harness (key pair from `burst-agent keygen` on top of the agent's setup), a watcher
//! that polls `GET /api/status` to see when the function's state changes, and a small
//! Kubernetes API stand-in that lists nodes (the heartbeat's inside view).
//!
//! The agent's setup and the real NUT stack come from `burst-test-support` (shared with
//! `burst-agent`'s own tests) and are re-exported here.
//!
//! Every process started here is stopped by its PID when its guard is dropped; every wait is
//! bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use burst_test_support::agent::{AgentSetup, Run};
pub use burst_test_support::nut::{
    Daemon, NotifyCall, NutOptions, NutSim, has_token, nut_available, scenario, sorted_types,
};
pub use burst_test_support::{free_port, json_files, repo_root, set_executable};
use serde_json::Value;

/// The site id the function watches and the agent signs as (`iss`).
pub const SITE: &str = "home-lab";
/// Sent as `x-functions-key` (the Functions host checks it; `burst-handler` alone does not).
pub const FUNCTION_KEY: &str = "e2e-function-key";
/// How often the watcher reads `/api/status`.
pub const POLL: Duration = Duration::from_millis(20);

// ------------------------------------------------------------------ binaries

/// `target/<profile>`: the test executable is `target/<profile>/deps/<name>-<hash>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("test executable has a folder");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// How long building the binaries may take on a busy machine before we give up.
const BUILD_LIMIT: Duration = Duration::from_secs(1200);

/// Runs `cargo build -p burst-functions --bin burst-handler -p burst-agent --bin burst-agent`
/// once per test process. `CARGO_BIN_EXE_*` only exists for the tested package's own binaries,
/// so the other crates' binaries are built here, into the same target dir (cargo's own lock
/// serialises concurrent test processes, e.g. under nextest).
fn build_binaries() -> &'static Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo_root())
            .args([
                "build",
                "-p",
                "burst-functions",
                "--bin",
                "burst-handler",
                "-p",
                "burst-agent",
                "--bin",
                "burst-agent",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // A release test run builds release binaries.
        if profile_dir().file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot run cargo: {e}"))?;
        let end = Instant::now() + BUILD_LIMIT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let mut err = String::new();
                    if let Some(mut s) = child.stderr.take() {
                        use std::io::Read;
                        let _ = s.read_to_string(&mut err);
                    }
                    return if status.success() {
                        Ok(())
                    } else {
                        Err(format!("cargo build failed ({status}):\n{err}"))
                    };
                }
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(200)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("cargo build took over {BUILD_LIMIT:?}"));
                }
                Err(e) => return Err(format!("waiting for cargo: {e}")),
            }
        }
    })
}

/// The path of another crate's binary (`burst-handler`, `burst-agent`) next to the test
/// executable. The first call in a test process runs `cargo build` for both (a no-op when
/// they are fresh), so the tests never run stale binaries. If that build fails but binaries
/// exist, they are used with a warning; if none exist, the test fails with cargo's output.
/// `BURST_E2E_BUILD=0` skips the build when the binaries exist.
pub fn binary(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    let skip = std::env::var("BURST_E2E_BUILD").is_ok_and(|v| v == "0");
    if !(skip && path.is_file())
        && let Err(e) = build_binaries()
    {
        assert!(
            path.is_file(),
            "{name} is needed next to the test executable: {e}"
        );
        static WARNED: OnceLock<()> = OnceLock::new();
        WARNED.get_or_init(|| {
            eprintln!(
                "WARNING: using the existing {} (build failed: {e})",
                path.display()
            )
        });
    }
    assert!(
        path.is_file(),
        "{} still missing after cargo build",
        path.display()
    );
    path
}

pub fn agent_bin() -> PathBuf {
    binary("burst-agent")
}

pub fn handler_bin() -> PathBuf {
    binary("burst-handler")
}

// ------------------------------------------------------------------ small helpers

/// Seconds since the Unix epoch (a recorded NOTIFYCMD call's `t` is in the same unit).
pub fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

// ------------------------------------------------------------------ the function app

/// A running `burst-handler` (started directly, as the Functions host would) with its state in
/// files; killed by PID on drop.
#[derive(Debug)]
pub struct Handler {
    child: Child,
    pub port: u16,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
}

impl Handler {
    /// Starts on `port` with `BURST_STATE_URL=file://<state_dir>`, agent auth by
    /// `public_pem`, plus `extra` settings; returns once `GET /` answers (at most 30 s).
    pub async fn start(
        port: u16,
        state_dir: &Path,
        public_pem: &str,
        extra: &[(&str, &str)],
        log_path: &Path,
    ) -> Handler {
        std::fs::create_dir_all(state_dir).expect("state dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("handler log");
        let mut cmd = Command::new(handler_bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("BURST_STATE_URL", format!("file://{}", state_dir.display()))
            .env("BURST_SITE_ID", SITE)
            .env("BURST_AGENT_ED25519_PUBLIC_KEY", public_pem)
            .env("BURST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log fd")))
            .stderr(Stdio::from(log));
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn burst-handler");
        let mut h = Handler {
            child,
            port,
            state_dir: state_dir.to_path_buf(),
            log_path: log_path.to_path_buf(),
        };
        let client = client();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if client.get(h.base_url()).send().await.is_ok() {
                break;
            }
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!("burst-handler exited early: {status}\n{}", h.logs());
            }
            assert!(
                Instant::now() < end,
                "burst-handler not ready in 30 s\n{}",
                h.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        h
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `GET /api/status` → this site's summary.
    pub async fn site_status(&self) -> Value {
        site_status(&client(), &self.base_url())
            .await
            .unwrap_or_else(|e| panic!("GET /api/status: {e}\n{}", self.logs()))
    }

    /// The stored state document (read through the file store).
    pub fn state(&self) -> Value {
        stored_state(&self.state_dir)
    }

    /// Kills the process (SIGKILL, by PID) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client that never waits long (everything is on 127.0.0.1).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// `GET {base}/api/status`, the entry of [`SITE`].
pub async fn site_status(client: &reqwest::Client, base: &str) -> Result<Value, String> {
    let resp = client
        .get(format!("{base}/api/status"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let code = resp.status().as_u16();
    let body: Value = resp.json().await.map_err(|e| e.to_string())?;
    if code != 200 {
        return Err(format!("HTTP {code}: {body}"));
    }
    body["sites"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["site"] == SITE))
        .cloned()
        .ok_or_else(|| format!("no site {SITE} in {body}"))
}

/// The state document in a file store directory (`Null` when nothing was saved yet).
pub fn stored_state(dir: &Path) -> Value {
    match burst_store::FileStore::new(dir).load_blocking(SITE) {
        Ok(Some(doc)) => serde_json::from_slice(&doc.bytes).expect("state document is JSON"),
        Ok(None) => Value::Null,
        Err(e) => panic!("the state document cannot be read: {e}"),
    }
}

/// The `ups:<id>` keys of the state's `seen` map: one per UPS event the function took in.
pub fn ups_keys(state: &Value) -> Vec<String> {
    state["seen"]
        .as_object()
        .map(|m| {
            m.keys()
                .filter(|k| k.starts_with("ups:"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The mode transitions in the status' audit (newest last): `"healthy → suspect"`, ...
pub fn mode_changes(site: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(i64, String, String)> = site["audit"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let what = e["what"].as_str()?;
            let change = what.strip_prefix("mode ")?;
            Some((
                e["at"].as_i64().unwrap_or(0),
                change.to_string(),
                e["why"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect();
    // The status lists the newest first; a stable sort on `at` keeps same-instant order.
    v.reverse();
    v.sort_by_key(|x| x.0);
    v.into_iter().map(|(_, c, w)| (c, w)).collect()
}

// ------------------------------------------------------------------ the site (agent side)

/// The agent's side of the site (temp dir, spool, settings, NOTIFYCMD wrapper; see
/// [`AgentSetup`]) with a key pair made by `burst-agent keygen`, for a function at `port`.
#[derive(Debug)]
pub struct Site {
    pub setup: AgentSetup,
    /// The function's port (fixed up front: the NOTIFYCMD wrapper names it before the
    /// function runs).
    pub port: u16,
    pub public_pem: String,
}

/// A site is its agent's setup plus the function's end: `site.tmp`, `site.set(..)`,
/// `site.agent(..)`, `site.write_hook()` read as they say.
impl std::ops::Deref for Site {
    type Target = AgentSetup;
    fn deref(&self) -> &AgentSetup {
        &self.setup
    }
}

impl std::ops::DerefMut for Site {
    fn deref_mut(&mut self) -> &mut AgentSetup {
        &mut self.setup
    }
}

impl Site {
    pub async fn new() -> Site {
        let tmp = tempfile::tempdir().expect("tempdir");
        let key = tmp.path().join("ed25519.pem");
        let out = tokio::process::Command::new(agent_bin())
            .arg("keygen")
            .arg("--private-key-out")
            .arg(&key)
            .env_clear()
            .output()
            .await
            .expect("run burst-agent keygen");
        assert!(
            out.status.success(),
            "keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public_pem = String::from_utf8(out.stdout).expect("PEM is text");
        assert!(
            public_pem.starts_with("-----BEGIN PUBLIC KEY-----"),
            "{public_pem}"
        );
        let port = free_port();
        let base_url = format!("http://127.0.0.1:{port}");
        let mut setup = AgentSetup::new(tmp, agent_bin(), SITE, FUNCTION_KEY, &base_url);
        setup.set("BURST_AGENT_ED25519_KEY_FILE", &key.display().to_string());
        Site {
            setup,
            port,
            public_pem,
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    /// Starts the function on this site's port and state dir.
    pub async fn start_handler(&self, extra: &[(&str, &str)]) -> Handler {
        Handler::start(
            self.port,
            &self.state_dir(),
            &self.public_pem,
            extra,
            &self.tmp.path().join("handler.log"),
        )
        .await
    }
}

// ------------------------------------------------------------------ watching the function

/// What `/api/status` said at one moment (only changes are kept).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Epoch seconds when this poll's answer arrived.
    pub seen_at: f64,
    pub mode: String,
    pub health: String,
    pub status: String,
    pub last_type: String,
    /// `signals.power.event_at`: the agent's `at` of the applied event (epoch ms).
    pub event_at: Option<i64>,
}

impl Snapshot {
    fn from_site(site: &Value, seen_at: f64) -> Snapshot {
        let p = &site["signals"]["power"];
        Snapshot {
            seen_at,
            mode: site["mode"].as_str().unwrap_or("").to_string(),
            health: p["health"].as_str().unwrap_or("").to_string(),
            status: p["status"].as_str().unwrap_or("").to_string(),
            last_type: p["last_type"].as_str().unwrap_or("").to_string(),
            event_at: p["event_at"].as_i64(),
        }
    }

    fn same_state(&self, other: &Snapshot) -> bool {
        (
            &self.mode,
            &self.health,
            &self.status,
            &self.last_type,
            self.event_at,
        ) == (
            &other.mode,
            &other.health,
            &other.status,
            &other.last_type,
            other.event_at,
        )
    }
}

/// Polls `GET /api/status` every [`POLL`] in the background and keeps every change (failed
/// polls, e.g. while the function is down, are skipped). Stops on drop.
#[derive(Debug)]
pub struct Watcher {
    history: Arc<Mutex<Vec<Snapshot>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    pub fn start(base: &str) -> Watcher {
        let history: Arc<Mutex<Vec<Snapshot>>> = Arc::default();
        let (h, base) = (history.clone(), base.to_string());
        let task = tokio::spawn(async move {
            let client = client();
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Ok(site) = site_status(&client, &base).await else {
                    continue;
                };
                let snap = Snapshot::from_site(&site, now_epoch());
                let mut v = h.lock().unwrap_or_else(|p| p.into_inner());
                if v.last().is_none_or(|last| !last.same_state(&snap)) {
                    v.push(snap);
                }
            }
        });
        Watcher { history, task }
    }

    pub fn history(&self) -> Vec<Snapshot> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// For each NOTIFYCMD call, the first status snapshot that shows its event applied (same
/// `last_type`, `event_at` within 1 s of the call): prints the NOTIFYCMD → state change
/// latency and returns `(type, ms)` per call found. Events not applied (older than one
/// already applied) have no snapshot and no figure.
pub fn latencies(label: &str, calls: &[NotifyCall], history: &[Snapshot]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for c in calls {
        let hit = history.iter().find(|s| {
            s.last_type == c.notifytype
                && s.event_at
                    .is_some_and(|at| (at as f64 / 1000.0 - c.t).abs() < 1.0)
        });
        match hit {
            Some(s) => {
                let ms = (s.seen_at - c.t) * 1000.0;
                eprintln!(
                    "[{label}] {:<8} NOTIFYCMD at t_rel {:>6.3} s -> function state changed after {:>7.1} ms (mode {}, power {} [{}])",
                    c.notifytype, c.t_rel, ms, s.mode, s.health, s.status
                );
                out.push((c.notifytype.clone(), ms));
            }
            None => eprintln!(
                "[{label}] {:<8} NOTIFYCMD at t_rel {:>6.3} s -> no state change seen for it",
                c.notifytype, c.t_rel
            ),
        }
    }
    if !out.is_empty() {
        let max = out.iter().map(|x| x.1).fold(0.0, f64::max);
        let min = out.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
        let mean = out.iter().map(|x| x.1).sum::<f64>() / out.len() as f64;
        eprintln!(
            "[{label}] NOTIFYCMD -> state change (status polled every {} ms): n={} min {min:.1} ms, mean {mean:.1} ms, max {max:.1} ms",
            POLL.as_millis(),
            out.len()
        );
    }
    out
}

// ------------------------------------------------------------------ Kubernetes API stand-in

/// Answers `GET /api/v1/nodes` like the Kubernetes API (a `v1` `NodeList`), with `ready` of
/// `total` nodes carrying a `Ready=True` condition; other paths get the API's 404 `Status`,
/// other methods 405. Counts the node lists served. Stops on drop.
#[derive(Debug)]
pub struct FakeKube {
    pub addr: std::net::SocketAddr,
    lists: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeKube {
    pub async fn start(ready: usize, total: usize) -> FakeKube {
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        let items: Vec<Value> = (0..total)
            .map(|i| {
                serde_json::json!({
                    "metadata": {"name": format!("node-{i}"), "resourceVersion": "1"},
                    "status": {"conditions": [
                        {"type": "MemoryPressure", "status": "False"},
                        {"type": "Ready", "status": if i < ready { "True" } else { "Unknown" }},
                    ]},
                })
            })
            .collect();
        let list = serde_json::json!({
            "kind": "NodeList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        });
        let lists = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = lists.clone();
        let status = |code: u16, reason: &str, message: String| {
            (
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                axum::Json(serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "message": message, "reason": reason, "code": code,
                })),
            )
                .into_response()
        };
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (list, counter) = (list.clone(), counter.clone());
            async move {
                let path = req.uri().path().to_string();
                if path != "/api/v1/nodes" {
                    return status(
                        404,
                        "NotFound",
                        format!("the server could not find the requested resource ({path})"),
                    );
                }
                if req.method() != axum::http::Method::GET {
                    return status(
                        405,
                        "MethodNotAllowed",
                        format!("{} is not supported on nodes here", req.method()),
                    );
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                axum::Json(list).into_response()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Kubernetes API");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeKube { addr, lists, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Node lists served so far.
    pub fn lists(&self) -> usize {
        self.lists.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.task.abort();
    }
}
