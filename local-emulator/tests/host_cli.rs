//! `func-emulator start` as a process: default settings file, keys from `--set`, SIGTERM stops
//! the host and its handler, startup errors exit 2.
#![allow(clippy::unwrap_used)]

mod host_support;

use host_support::*;
use std::process::{Command, Stdio};

#[tokio::test]
async fn start_serves_the_app_and_stops_on_sigterm() {
    let app = app("json-app");
    let port = free_port();
    let here = std::env::current_dir().unwrap();
    let key = "FUNC_EMULATOR_FUNCTION_KEY=k1";
    let record = format!("ECHO_STARTS={}", app.starts.display());
    let child = start_in(&here, app.root(), port, &["--set", key, "--set", &record]).await;
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(get_with_key(port, "k1").await, 200);
    // local.settings.json in the app folder is read by default: `off` is disabled there.
    assert_eq!(
        send(client().get(format!("{base}/off"))).await.status(),
        404
    );
    assert_eq!(starts(&app), 1);
    let (stdout, _) = stop(child).await;
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

/// Starts `func-emulator start <rel>` from `cwd` and waits until it answers its home page.
async fn start_in(
    cwd: &std::path::Path,
    rel: &std::path::Path,
    port: u16,
    extra: &[&str],
) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_func-emulator"))
        .current_dir(cwd)
        .arg("start")
        .arg(rel)
        .args(["--port", &port.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let c = client();
    for _ in 0..1500 {
        if c.get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!("func-emulator did not listen on {port}: {out:?}");
}

/// SIGTERM, then (stdout, stderr); the exit must be clean.
async fn stop(child: std::process::Child) -> (String, String) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

async fn get_with_key(port: u16, key: &str) -> u16 {
    status_with_key(&format!("http://127.0.0.1:{port}/ups/x"), key).await
}

/// The README's command takes the app folder relative to the current directory (`start
/// functions/app`): the handler must still be found (its working directory is the app folder),
/// and the printed host key must work, the same after a restart.
#[tokio::test]
async fn a_relative_app_dir_and_the_printed_key_across_a_restart() {
    let app = app("json-app");
    let cwd = app.root().parent().unwrap().to_path_buf();
    let rel = std::path::PathBuf::from(app.root().file_name().unwrap());
    let starts = format!("ECHO_STARTS={}", app.starts.display());
    let keys_file = app.root().join(".func-emulator/keys.json");

    let port = free_port();
    let child = start_in(&cwd, &rel, port, &["--set", &starts]).await;
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&keys_file).unwrap()).unwrap();
    let key = stored["host"].as_str().unwrap().to_string();
    assert_eq!(get_with_key(port, &key).await, 200);
    let (stdout, _) = stop(child).await;
    // Absolute paths: the handler, its app root, the keys file.
    let handler = app.root().join("echo-handler");
    assert!(
        stdout.contains(&format!("Starting handler {} ", handler.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "\"FUNCTIONS_APP_ROOT_PATH\":\"{}\"",
            app.root().display()
        )),
        "{stdout}"
    );
    // One clear line says which key to use and where it is kept.
    let line = stdout
        .lines()
        .find(|l| l.contains("] Host key: "))
        .unwrap_or_else(|| panic!("no host key line:\n{stdout}"));
    assert!(line.contains(&format!("Host key: {key} ")), "{line}");
    assert!(line.contains("for the agent"), "{line}");
    assert!(line.contains("every function accepts it"), "{line}");
    assert!(
        line.contains(&format!("new, stored in {}", keys_file.display())),
        "{line}"
    );

    // Restart: the same key is accepted.
    let port = free_port();
    let child = start_in(&cwd, &rel, port, &["--set", &starts]).await;
    assert_eq!(get_with_key(port, &key).await, 200);
    let (stdout, _) = stop(child).await;
    assert!(
        stdout.contains(&format!("Host key: {key} <- use this one for the agent"))
            && stdout.contains(&format!("stored in {}", keys_file.display())),
        "{stdout}"
    );

    // An explicitly set key wins.
    let port = free_port();
    let child = start_in(
        &cwd,
        &rel,
        port,
        &["--set", &starts, "--set", "FUNC_EMULATOR_HOST_KEY=mine"],
    )
    .await;
    assert_eq!(get_with_key(port, "mine").await, 200);
    assert_eq!(get_with_key(port, &key).await, 401);
    let (stdout, _) = stop(child).await;
    assert!(stdout.contains("set by FUNC_EMULATOR_HOST_KEY"), "{stdout}");
}

/// A handler that is neither in the app folder nor on PATH: the error says where it looked.
#[test]
fn a_missing_handler_names_where_it_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("host.json"),
        r#"{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"no-such-handler-xyz"}}}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_func-emulator"))
        .current_dir(dir.path())
        .args(["start", ".", "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let root = std::path::absolute(dir.path()).unwrap();
    assert!(
        stdout.contains(&format!(
            "cannot start the handler no-such-handler-xyz: No such file or directory (os error 2) \
             (defaultExecutablePath: not in {} nor on PATH",
            root.display()
        )),
        "{stdout}"
    );
}
