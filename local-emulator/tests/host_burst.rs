//! The real app (`functions/app`) with the real `burst-handler` through the emulator.
//!
//! The handler binary is found, in order: `$BURST_HANDLER_BIN`; `burst-handler` next to this
//! test's binary (`target/debug/`, present after `cargo build -p burst-functions`); else it is
//! built with `cargo build -p burst-functions --bin burst-handler` into a separate target folder
//! (`target/debug/burst-handler-build/`, so this cannot wait on the lock of the running
//! `cargo test`).
#![allow(clippy::unwrap_used)]

mod host_support;

use func_emulator::host::{Host, HostConfig};
use host_support::client;
use std::path::{Path, PathBuf};

fn burst_handler() -> PathBuf {
    if let Some(p) = std::env::var_os("BURST_HANDLER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let beside = debug.join("burst-handler");
    if beside.is_file() {
        return beside;
    }
    let target = debug.join("burst-handler-build");
    let built = target.join("debug/burst-handler");
    if !built.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "-p",
                "burst-functions",
                "--bin",
                "burst-handler",
                "--target-dir",
            ])
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cargo build -p burst-functions --bin burst-handler failed"
        );
    }
    built
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

#[tokio::test]
async fn the_real_app_answers_status_through_the_emulator() {
    let handler = burst_handler();
    // A copy of the app with the binary at its defaultExecutablePath, as deployed.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/app"),
        dir.path(),
    );
    std::fs::copy(&handler, dir.path().join("burst-handler")).unwrap();
    let mut cfg = HostConfig::new(dir.path());
    cfg.settings
        .insert("FUNCTIONS_WORKER_RUNTIME".into(), "Custom".into());
    cfg.settings
        .insert("BURST_PROBE_SCHEDULE".into(), "0 */5 * * * *".into());
    let h = Host::start(cfg).await.unwrap();
    let c = client();
    let url = format!("{}/api/status", h.base_url());
    let resp = c
        .get(&url)
        .header("x-functions-key", h.function_key("status").unwrap())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "{body}\n{:#?}", h.logs());
    assert!(ct.unwrap_or_default().starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v.is_object(), "{body}");
    // Without a key: 401, empty body, and the handler never saw it.
    let resp = c.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.bytes().await.unwrap().is_empty());
    // A method the function does not list: 404.
    let resp = c
        .post(&url)
        .header("x-functions-key", h.function_key("status").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    h.shutdown().await;
}
