//! `func-emulator start` as a process: default settings file, keys from `--set`, SIGTERM stops
//! the host and its handler, startup errors exit 2.
#![allow(clippy::unwrap_used)]

mod host_support;

use host_support::*;
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn start_serves_the_app_and_stops_on_sigterm() {
    let app = app("json-app");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_func-emulator"))
        .arg("start")
        .arg(app.root())
        .args(["--port", &port.to_string()])
        .args(["--set", "FUNC_EMULATOR_FUNCTION_KEY=k1"])
        .args(["--set", &format!("ECHO_STARTS={}", app.starts.display())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    let mut ok = false;
    for _ in 0..1500 {
        if let Ok(r) = c
            .get(format!("{base}/ups/x"))
            .header("x-functions-key", "k1")
            .send()
            .await
            && r.status() == 200
        {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ok, "func-emulator did not serve");
    // local.settings.json in the app folder is read by default: `off` is disabled there.
    assert_eq!(
        c.get(format!("{base}/off")).send().await.unwrap().status(),
        404
    );
    assert_eq!(starts(&app), 1);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Master key: "), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "echo: [GET,POST] {base}/ups/{{event}} (JSON mode, key k1)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("off: [*]") && stdout.contains("(disabled)"),
        "{stdout}"
    );
    assert!(stdout.contains("Host stopped"), "{stdout}");
    // The handler is gone with the host.
    let pid = std::fs::read_to_string(&app.starts)
        .unwrap()
        .trim()
        .to_string();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.contains(") Z ")
        }
    );
}

#[test]
fn startup_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_func-emulator"))
        .arg("start")
        .arg(dir.path())
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("host.json"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_func-emulator"))
        .args(["start", ".", "--set", "novalue"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
