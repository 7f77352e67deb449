//! Shared helpers of the host tests: copy a fixture app into a temporary folder with the
//! `echo-handler` binary next to it, start the host, read what the handler recorded.
#![allow(dead_code, clippy::unwrap_used)]

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

fn copy_dir(from: &Path, to: &Path) {
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

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
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
