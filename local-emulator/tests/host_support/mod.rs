//! Shared helpers of the host tests (and of the `host` bench): copy a fixture app into a
//! temporary folder with the `echo-handler` binary next to it, start the host, send it requests,
//! read what the handler recorded and what the host logged; the real app with the real
//! `burst-handler`.
#![allow(dead_code, clippy::unwrap_used)]

use func_emulator::host::worker::WorkerState;
use func_emulator::host::{Host, HostConfig, HostHandle};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub record: PathBuf,
    pub starts: PathBuf,
}

impl TestApp {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A copy of `tests/fixtures/<name>` with `echo-handler` (a symlink to the test binary).
pub fn app(name: &str) -> TestApp {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_echo-handler"),
        dir.path().join("echo-handler"),
    )
    .unwrap();
    let record = dir.path().join("record.jsonl");
    let starts = dir.path().join("starts.txt");
    TestApp {
        dir,
        record,
        starts,
    }
}

pub fn config(app: &TestApp, settings: &[(&str, &str)]) -> HostConfig {
    let mut c = HostConfig::new(app.root());
    c.settings
        .insert("ECHO_RECORD".into(), app.record.display().to_string());
    c.settings
        .insert("ECHO_STARTS".into(), app.starts.display().to_string());
    c.settings
        .insert("TICK_SCHEDULE".into(), "0 0 0 1 1 *".into());
    for (k, v) in settings {
        c.settings.insert((*k).into(), (*v).into());
    }
    c
}

pub async fn start(app: &TestApp, settings: &[(&str, &str)]) -> HostHandle {
    Host::start(config(app, settings)).await.unwrap()
}

/// A copy of the fixture app `name` and the host started on it with `settings`.
pub async fn started(name: &str, settings: &[(&str, &str)]) -> (TestApp, HostHandle) {
    let app = app(name);
    let h = start(&app, settings).await;
    (app, h)
}

/// The handler's generation (its start count) while it is ready; `None` while it starts, after
/// it exited, once the host stopped.
pub fn ready_generation(h: &HostHandle) -> Option<u64> {
    match h.worker_state() {
        WorkerState::Ready { generation, .. } => Some(generation),
        _ => None,
    }
}

/// Starts the host on [`config`] without extra settings, changed by `edit` first.
pub async fn start_with(app: &TestApp, edit: impl FnOnce(&mut HostConfig)) -> HostHandle {
    let mut c = config(app, &[]);
    edit(&mut c);
    Host::start(c).await.unwrap()
}

/// Whether the handler was called on `uri`.
pub fn called(app: &TestApp, uri: &str) -> bool {
    records(app).iter().any(|r| r["uri"] == uri)
}

/// Whether the host logged a line whose text `matches`.
pub fn logged(h: &HostHandle, matches: impl Fn(&str) -> bool) -> bool {
    h.logs().iter().any(|l| matches(&l.text))
}

/// Requests the handler received, in order (`GET /` readiness polls left out).
pub fn records(app: &TestApp) -> Vec<Value> {
    std::fs::read_to_string(&app.record)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| !(r["method"] == "GET" && r["uri"] == "/"))
        .collect()
}

pub fn starts(app: &TestApp) -> usize {
    std::fs::read_to_string(&app.starts)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Polls a condition (the machine is slow and shared: generous limit, no timing asserted).
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Polls `done` every 100 ms for up to `limit`; past that, fails with `what` and the host's log.
pub async fn wait_showing_log(
    host: &HostHandle,
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}; host log:\n{}",
            host.logs()
                .iter()
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// Sends a request, which must get an answer.
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.unwrap()
}

/// `GET` of `path` on the host, with a fresh [`client`].
pub async fn get(h: &HostHandle, path: &str) -> reqwest::Response {
    send(client().get(format!("{}{path}", h.base_url()))).await
}

/// `request` with `key` (if any) as `x-functions-key`.
pub fn keyed(request: reqwest::RequestBuilder, key: Option<&str>) -> reqwest::RequestBuilder {
    match key {
        Some(k) => request.header("x-functions-key", k),
        None => request,
    }
}

/// Sends `request` with `key` as `x-functions-key` and, when given, `echo` as the echo
/// handler's `x-echo` instruction.
pub async fn call(
    request: reqwest::RequestBuilder,
    key: &str,
    echo: Option<&str>,
) -> reqwest::Response {
    let request = keyed(request, Some(key));
    send(match echo {
        Some(e) => request.header("x-echo", e),
        None => request,
    })
    .await
}

/// Sends `request`: the status and the body.
pub async fn answer(request: reqwest::RequestBuilder) -> (u16, Vec<u8>) {
    let resp = send(request).await;
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// The status of `GET url` with `key` as `x-functions-key`.
pub async fn status_with_key(url: &str, key: &str) -> u16 {
    answer(keyed(client().get(url), Some(key))).await.0
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `burst-handler` of the same profile: `$BURST_HANDLER_BIN`; beside this binary (in
/// `target/<profile>/`, present after `cargo build -p burst-functions`); else built with
/// `cargo build -p burst-functions --bin burst-handler` into a separate target folder
/// (`target/<profile>/burst-handler-build/`, so this cannot wait on the lock of the running
/// `cargo test` or `cargo bench`).
pub fn burst_handler() -> PathBuf {
    if let Some(p) = std::env::var_os("BURST_HANDLER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let beside = profile_dir.join("burst-handler");
    if beside.is_file() {
        return beside;
    }
    let release = profile_dir.ends_with("release");
    let target = profile_dir.join("burst-handler-build");
    let built = target
        .join(if release { "release" } else { "debug" })
        .join("burst-handler");
    if !built.is_file() {
        let mut args = vec!["build", "-p", "burst-functions", "--bin", "burst-handler"];
        if release {
            args.push("--release");
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = std::process::Command::new(cargo)
            .args(&args)
            .arg("--target-dir")
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap()
            .success();
        assert!(ok, "cargo {} failed", args.join(" "));
    }
    built
}

/// A copy of the real app (`functions/app`) with [`burst_handler`] at its
/// defaultExecutablePath, as deployed.
pub fn real_app() -> tempfile::TempDir {
    let handler = burst_handler();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/app"),
        dir.path(),
    );
    std::fs::copy(&handler, dir.path().join("burst-handler")).unwrap();
    dir
}

/// The header list the echo handler recorded, as (name, value) pairs.
pub fn header_pairs(record: &Value) -> Vec<(String, String)> {
    record["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn header<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A raw HTTP/1.1 exchange, so tests control the exact request bytes (header order and
/// casing, chunked bodies). Returns (status, lower-case headers, body).
pub async fn raw(base_url: &str, request: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base_url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut body = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if header(&headers, "transfer-encoding") == Some("chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    (status, headers, body)
}
