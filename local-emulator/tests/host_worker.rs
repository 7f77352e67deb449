//! The handler process: readiness polling, waiting invocations, exit-code rules, the error limit.
#![allow(clippy::unwrap_used)]

mod host_support;

use func_emulator::host::worker::WorkerState;
use host_support::*;

#[tokio::test]
async fn invocations_wait_for_readiness() {
    let app = app("echo-app");
    // The handler listens only after a while: polls are refused until then.
    let h = start(&app, &[("ECHO_READY_DELAY_MS", "700")]).await;
    assert_eq!(h.worker_state(), WorkerState::Starting);
    let resp = client()
        .get(format!("{}/api/anon", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(matches!(
        h.worker_state(),
        WorkerState::Ready { generation: 1, .. }
    ));
    assert_eq!(starts(&app), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn a_404_answer_means_ready() {
    let app = app("echo-app");
    let h = start(&app, &[("ECHO_ROOT_404", "1")]).await;
    let resp = client()
        .get(format!("{}/api/anon", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The readiness poll was answered 404 and the host went on.
    let polls = std::fs::read_to_string(&app.record).unwrap();
    assert!(polls.lines().next().unwrap().contains(r#""uri":"/""#));
    h.shutdown().await;
}

#[tokio::test]
async fn a_handler_exiting_with_1_is_restarted() {
    let app = app("echo-app");
    let h = start(&app, &[("ECHO_EXIT_CODE", "1"), ("ECHO_EXIT_FIRST_N", "1")]).await;
    let resp = client()
        .get(format!("{}/api/anon", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(starts(&app), 2);
    assert!(
        h.logs()
            .iter()
            .any(|l| l.text == "Handler exited with code 1")
    );
    assert!(matches!(
        h.worker_state(),
        WorkerState::Ready { generation: 2, .. }
    ));
    h.shutdown().await;
}

#[tokio::test]
async fn three_errors_stop_the_host() {
    let app = app("echo-app");
    let h = start(&app, &[("ECHO_EXIT_CODE", "3")]).await;
    h.stopped().await;
    assert!(h.is_stopped());
    assert_eq!(starts(&app), 3);
    assert!(
        h.logs()
            .iter()
            .any(|l| l.text.starts_with("3 handler errors within 30 minutes"))
    );
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
    let app = app("echo-app");
    let h = start(&app, &[("ECHO_EXIT_CODE", "0")]).await;
    wait_for("the exit to be seen", || {
        h.worker_state() == WorkerState::Exited
    })
    .await;
    assert!(
        h.logs()
            .iter()
            .any(|l| l.text == "Handler exited with code 0; not restarted")
    );
    let resp = client()
        .get(format!("{}/api/anon", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(starts(&app), 1);
    assert!(!h.is_stopped());
    h.shutdown().await;
}

#[tokio::test]
async fn exit_200_restarts_without_counting_an_error() {
    let app = app("echo-app");
    let h = start(
        &app,
        &[("ECHO_EXIT_CODE", "200"), ("ECHO_EXIT_FIRST_N", "4")],
    )
    .await;
    // Four intentional restarts do not reach the error limit; the fifth start serves.
    let resp = client()
        .get(format!("{}/api/anon", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(starts(&app), 5);
    assert!(!h.is_stopped());
    h.shutdown().await;
}

#[tokio::test]
async fn a_crash_during_an_invocation_fails_it_and_restarts() {
    let app = app("echo-app");
    let h = start(&app, &[]).await;
    let key = h.function_key("fwd").unwrap().to_string();
    let c = client();
    let resp = c
        .get(format!("{}/api/fwd", h.base_url()))
        .header("x-functions-key", &key)
        .header("x-echo", "exit=5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert!(resp.bytes().await.unwrap().is_empty());
    wait_for("the restarted handler", || {
        matches!(h.worker_state(), WorkerState::Ready { generation: 2, .. })
    })
    .await;
    let resp = c
        .get(format!("{}/api/fwd", h.base_url()))
        .header("x-functions-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(starts(&app), 2);
    assert!(
        h.logs()
            .iter()
            .any(|l| l.text == "Handler exited with code 5")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_missing_handler_is_a_startup_error() {
    let app = app("echo-app");
    std::fs::remove_file(app.root().join("echo-handler")).unwrap();
    // Not a file under the app root: run as a command from PATH, which has none.
    let mut c = config(&app, &[("PATH", "/nonexistent")]);
    c.settings.insert("PATH".into(), "/nonexistent".into());
    let h = func_emulator::host::Host::start(c).await.unwrap();
    h.stopped().await;
    assert!(
        h.logs()
            .iter()
            .any(|l| l.text.starts_with("cannot start the handler echo-handler"))
    );
    h.shutdown().await;
}
