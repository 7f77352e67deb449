//! The handler process: readiness polling, waiting invocations, exit-code rules, the error limit.
#![allow(clippy::unwrap_used)]

mod host_support;

use func_emulator::host::HostHandle;
use func_emulator::host::worker::WorkerState;
use host_support::*;

/// The echo app whose handler exits with `code` (on its first `first_n` starts; else on every
/// start), before it listens.
async fn exiting(code: &str, first_n: Option<&str>) -> (TestApp, HostHandle) {
    let mut settings = vec![("ECHO_EXIT_CODE", code)];
    settings.extend(first_n.map(|n| ("ECHO_EXIT_FIRST_N", n)));
    started("echo-app", &settings).await
}

/// `GET /api/anon` gets `status`, and the handler has been started `n` times by then.
async fn assert_anon(h: &HostHandle, app: &TestApp, status: u16, n: usize) {
    assert_eq!(get(h, "/api/anon").await.status(), status);
    assert_eq!(starts(app), n);
}

#[tokio::test]
async fn invocations_wait_for_readiness() {
    // The handler listens only after a while: polls are refused until then.
    let (app, h) = started("echo-app", &[("ECHO_READY_DELAY_MS", "700")]).await;
    assert_eq!(h.worker_state(), WorkerState::Starting);
    assert_anon(&h, &app, 200, 1).await;
    assert_eq!(ready_generation(&h), Some(1));
    h.shutdown().await;
}

#[tokio::test]
async fn a_404_answer_means_ready() {
    let (app, h) = started("echo-app", &[("ECHO_ROOT_404", "1")]).await;
    assert_eq!(get(&h, "/api/anon").await.status(), 200);
    // The readiness poll was answered 404 and the host went on.
    let polls = std::fs::read_to_string(&app.record).unwrap();
    assert!(polls.lines().next().unwrap().contains(r#""uri":"/""#));
    h.shutdown().await;
}

#[tokio::test]
async fn a_handler_exiting_with_1_is_restarted() {
    let (app, h) = exiting("1", Some("1")).await;
    assert_anon(&h, &app, 200, 2).await;
    assert!(logged(&h, |t| t == "Handler exited with code 1"));
    assert_eq!(ready_generation(&h), Some(2));
    h.shutdown().await;
}

#[tokio::test]
async fn three_errors_stop_the_host() {
    let (app, h) = exiting("3", None).await;
    h.stopped().await;
    assert!(h.is_stopped());
    assert_eq!(starts(&app), 3);
    assert!(logged(&h, |t| t.starts_with("3 handler errors within 30 minutes")));
    // Nothing listens any more.
    assert!(
        client()
            .get(format!("{}/api/anon", h.base_url()))
            .send()
            .await
            .is_err()
    );
    h.shutdown().await;
}

#[tokio::test]
async fn exit_0_is_not_restarted() {
    let (app, h) = exiting("0", None).await;
    wait_for("the exit to be seen", || {
        h.worker_state() == WorkerState::Exited
    })
    .await;
    assert!(logged(&h, |t| t == "Handler exited with code 0; not restarted"));
    assert_anon(&h, &app, 500, 1).await;
    assert!(!h.is_stopped());
    h.shutdown().await;
}

#[tokio::test]
async fn exit_200_restarts_without_counting_an_error() {
    let (app, h) = exiting("200", Some("4")).await;
    // Four intentional restarts do not reach the error limit; the fifth start serves.
    assert_anon(&h, &app, 200, 5).await;
    assert!(!h.is_stopped());
    h.shutdown().await;
}

#[tokio::test]
async fn a_crash_during_an_invocation_fails_it_and_restarts() {
    let (app, h) = started("echo-app", &[]).await;
    let key = h.function_key("fwd").unwrap().to_string();
    let c = client();
    let url = format!("{}/api/fwd", h.base_url());
    let resp = call(c.get(&url), &key, Some("exit=5")).await;
    assert_eq!(resp.status(), 500);
    assert!(resp.bytes().await.unwrap().is_empty());
    wait_for("the restarted handler", || ready_generation(&h) == Some(2)).await;
    assert_eq!(call(c.get(&url), &key, None).await.status(), 200);
    assert_eq!(starts(&app), 2);
    assert!(logged(&h, |t| t == "Handler exited with code 5"));
    h.shutdown().await;
}

#[tokio::test]
async fn a_missing_handler_is_a_startup_error() {
    let app = app("echo-app");
    std::fs::remove_file(app.root().join("echo-handler")).unwrap();
    // Not a file under the app root: run as a command from PATH, which has none.
    let h = start_with(&app, |c| {
        c.settings.insert("PATH".into(), "/nonexistent".into());
    })
    .await;
    h.stopped().await;
    assert!(logged(&h, |t| t
        .starts_with("cannot start the handler echo-handler")));
    h.shutdown().await;
}
