//! Keys survive a restart (kept in `<state dir>/keys.json`, mode 0600); a key set by a setting
//! wins over the stored one and is never written to the file.
#![allow(clippy::unwrap_used)]

mod host_support;

use func_emulator::host::HostHandle;
use func_emulator::host::keys::KeyOrigin;
use host_support::*;
use std::os::unix::fs::PermissionsExt as _;

/// A file's or folder's permission bits.
fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The host with its state (and keys) in `state`.
async fn start_in_state(app: &TestApp, state: &std::path::Path) -> HostHandle {
    start_with(app, |c| c.state_dir = Some(state.to_path_buf())).await
}

#[tokio::test]
async fn keys_survive_a_restart_and_a_set_key_wins() {
    let app = app("echo-app");
    let state = app.root().join(".func-emulator");
    let file = state.join("keys.json");

    // First start: keys are generated and stored.
    let h = start(&app, &[]).await;
    let host_key = h.host_key().to_string();
    let master = h.master_key().to_string();
    let fwd = h.function_key("fwd").unwrap().to_string();
    assert_eq!(h.host_key_origin(), &KeyOrigin::Generated);
    assert_eq!(h.keys_file(), file);
    let url = format!("{}/api/fwd", h.base_url());
    assert_eq!(status_with_key(&url, &host_key).await, 200);
    let line = h
        .logs()
        .into_iter()
        .find(|l| l.text.starts_with("Host key: "))
        .unwrap()
        .text;
    assert!(line.contains(&host_key), "{line}");
    assert!(line.contains("every function accepts it"), "{line}");
    assert!(line.contains(&file.display().to_string()), "{line}");
    h.shutdown().await;

    // The file and its folder are private, and the folder keeps itself out of git.
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&state), 0o700);
    let ignore = std::fs::read_to_string(state.join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
    let stored = read_json(&file);
    assert_eq!(stored["host"], host_key.as_str());
    assert_eq!(stored["master"], master.as_str());
    assert_eq!(stored["functions"]["fwd"], fwd.as_str());

    // Second start: the same keys, accepted again.
    let h = start(&app, &[]).await;
    assert_eq!(h.host_key(), host_key);
    assert_eq!(h.master_key(), master);
    assert_eq!(h.function_key("fwd").unwrap(), fwd);
    assert_eq!(h.host_key_origin(), &KeyOrigin::Stored);
    let url = format!("{}/api/fwd", h.base_url());
    assert_eq!(status_with_key(&url, &host_key).await, 200);
    assert_eq!(status_with_key(&url, &fwd).await, 200);
    h.shutdown().await;

    // A key set explicitly wins; the stored one is refused meanwhile, and the file keeps it.
    let h = start(
        &app,
        &[
            ("FUNC_EMULATOR_HOST_KEY", "explicit-host-key"),
            ("FUNC_EMULATOR_FUNCTION_KEY_fwd", "explicit-fwd-key"),
        ],
    )
    .await;
    assert_eq!(h.host_key(), "explicit-host-key");
    assert_eq!(
        h.host_key_origin(),
        &KeyOrigin::Setting("FUNC_EMULATOR_HOST_KEY".into())
    );
    assert_eq!(h.master_key(), master);
    let url = format!("{}/api/fwd", h.base_url());
    assert_eq!(status_with_key(&url, "explicit-host-key").await, 200);
    assert_eq!(status_with_key(&url, "explicit-fwd-key").await, 200);
    assert_eq!(status_with_key(&url, &host_key).await, 401);
    assert_eq!(status_with_key(&url, &fwd).await, 401);
    assert!(logged(&h, |t| t.starts_with("Host key: explicit-host-key")
        && t.contains("set by FUNC_EMULATOR_HOST_KEY")));
    h.shutdown().await;
    let after = read_json(&file);
    assert_eq!(after, stored, "explicit keys are never written");

    // Without the setting, the stored key is back.
    let h = start(&app, &[]).await;
    assert_eq!(h.host_key(), host_key);
    h.shutdown().await;
}

#[tokio::test]
async fn a_broken_or_open_keys_file() {
    let app = app("echo-app");
    let state = app.root().join(".func-emulator");
    std::fs::create_dir_all(&state).unwrap();
    let file = state.join("keys.json");

    // Not JSON: a startup error naming the file (never silently new keys).
    std::fs::write(&file, "{not json").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = func_emulator::host::Host::start(config(&app, &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&file.display().to_string()), "{e}");
    assert!(e.contains("delete it to get new keys"), "{e}");

    // Readable by others: used, and set to 0600 with a warning. A partial file is completed.
    std::fs::write(&file, r#"{"host":"kept-host-key"}"#).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let h = start(&app, &[]).await;
    assert_eq!(h.host_key(), "kept-host-key");
    assert!(logged(&h, |t| t.contains("mode is now 0600")));
    h.shutdown().await;
    assert_eq!(mode(&file), 0o600);
    let stored = read_json(&file);
    assert_eq!(stored["host"], "kept-host-key");
    assert!(stored["master"].is_string());
    assert!(stored["functions"]["fwd"].is_string());
}

#[tokio::test]
async fn an_explicit_state_dir_holds_the_keys() {
    let app = app("echo-app");
    let other = tempfile::tempdir().unwrap();
    let state = other.path().join("nested/state");
    let h = start_in_state(&app, &state).await;
    assert_eq!(h.keys_file(), state.join("keys.json"));
    let key = h.host_key().to_string();
    h.shutdown().await;
    assert!(state.join("keys.json").is_file());
    assert!(!app.root().join(".func-emulator").exists());
    let h = start_in_state(&app, &state).await;
    assert_eq!(h.host_key(), key);
    h.shutdown().await;
}
