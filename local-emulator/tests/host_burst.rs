//! The real app (`functions/app`) with the real `burst-handler` through the emulator.
//!
//! The handler binary (`host_support::burst_handler`) is found, in order:
//! `$BURST_HANDLER_BIN`; `burst-handler` next to this test's binary (`target/debug/`, present
//! after `cargo build -p burst-functions`); else it is built with
//! `cargo build -p burst-functions --bin burst-handler` into a separate target folder
//! (`target/debug/burst-handler-build/`, so this cannot wait on the lock of the running
//! `cargo test`).
#![allow(clippy::unwrap_used)]

mod host_support;

use func_emulator::host::{Host, HostConfig};
use host_support::{answer, call, client, real_app};

#[tokio::test]
async fn the_real_app_answers_status_through_the_emulator() {
    let dir = real_app();
    let mut cfg = HostConfig::new(dir.path());
    cfg.settings
        .insert("FUNCTIONS_WORKER_RUNTIME".into(), "Custom".into());
    cfg.settings
        .insert("BURST_PROBE_SCHEDULE".into(), "0 */5 * * * *".into());
    let h = Host::start(cfg).await.unwrap();
    let c = client();
    let url = format!("{}/api/status", h.base_url());
    let key = h.function_key("status").unwrap();
    let resp = call(c.get(&url), key, None).await;
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
    assert_eq!(answer(c.get(&url)).await, (401, vec![]));
    // A method the function does not list: 404.
    assert_eq!(call(c.post(&url), key, None).await.status(), 404);
    h.shutdown().await;
}
