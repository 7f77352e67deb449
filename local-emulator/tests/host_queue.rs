//! Queue triggers against Azurite's real queue service: a message runs the function in JSON
//! mode and is deleted; a failing one is retried up to maxDequeueCount and then moved to the
//! poison queue with its text unchanged; a message sent invisible runs only once visible; a
//! trigger without its connection setting is reported and the host still runs.
#![allow(clippy::unwrap_used)]

mod host_support;

use azure_core::http::RequestContent;
use azure_storage_queue::QueueClient;
use azure_storage_queue::models::{QueueClientSendMessageOptions, QueueMessage};
use base64::Engine as _;
use burst_store_sim::azurite::{Azurite, peek_texts};
use func_emulator::host::queue::StorageConnection;
use host_support::{app, records, start, wait_showing_log};
use serde_json::Value;
use std::time::{Duration, Instant};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

async fn send(queue: &QueueClient, text: &str, invisible_s: Option<i32>) {
    let body: RequestContent<QueueMessage, _> = QueueMessage {
        message_text: Some(B64.encode(text)),
    }
    .try_into()
    .unwrap();
    let options = QueueClientSendMessageOptions {
        visibility_timeout: invisible_s,
        ..Default::default()
    };
    queue.send_message(body, Some(options)).await.unwrap();
}

/// The queue invocations the handler saw, as (message text, dequeue count).
fn queue_invocations(app: &host_support::TestApp) -> Vec<(String, i64, Value)> {
    records(app)
        .into_iter()
        .filter_map(|r| {
            let raw = B64.decode(r["body_base64"].as_str()?).ok()?;
            let body: Value = serde_json::from_slice(&raw).ok()?;
            let text = body.pointer("/Data/job")?.as_str()?.to_string();
            let count = body.pointer("/Metadata/DequeueCount")?.as_i64()?;
            Some((text, count, body))
        })
        .collect()
}

#[tokio::test]
async fn messages_run_the_function_and_failures_end_in_the_poison_queue() {
    let Some(azurite) = Azurite::start_queue_for_tests().await.unwrap() else {
        return;
    };
    let conn = azurite.connection_string();
    let storage = StorageConnection::parse(&conn).unwrap();
    let queue = storage.queue("jobs").unwrap();
    queue.create(None).await.unwrap();
    let app = app("queue-app");
    let host = start(&app, &[("JOBS_QUEUE", "jobs"), ("JobsStorage", &conn)]).await;

    send(&queue, "hello", None).await;
    send(&queue, "x-echo:status=500", None).await;

    wait_showing_log(
        &host,
        "one run of hello and three of the failing message",
        Duration::from_secs(30),
        || {
            let seen = queue_invocations(&app);
            seen.iter().any(|(t, _, _)| t == "hello")
                && seen
                    .iter()
                    .filter(|(t, _, _)| t.starts_with("x-echo"))
                    .count()
                    == 3
        },
    )
    .await;
    let poison = storage.queue("jobs-poison").unwrap();
    let mut moved = Vec::new();
    for _ in 0..50 {
        moved = peek_texts(&poison).await.unwrap_or_default();
        if !moved.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The poison queue keeps the message text as it was sent (still base64).
    assert_eq!(moved, vec![B64.encode("x-echo:status=500")]);
    assert!(
        peek_texts(&queue).await.unwrap().is_empty(),
        "the trigger queue is empty"
    );

    let seen = queue_invocations(&app);
    let hello: Vec<_> = seen.iter().filter(|(t, _, _)| t == "hello").collect();
    assert_eq!(hello.len(), 1, "a success runs once and is deleted");
    let (_, count, body) = hello[0];
    assert_eq!(*count, 1);
    assert!(
        body.pointer("/Metadata/Id")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    );
    assert!(
        body.pointer("/Metadata/PopReceipt")
            .and_then(Value::as_str)
            .is_some()
    );
    assert_eq!(
        body.pointer("/Metadata/sys/MethodName"),
        Some(&Value::from("jobs"))
    );
    let counts: Vec<i64> = seen
        .iter()
        .filter(|(t, _, _)| t.starts_with("x-echo"))
        .map(|(_, c, _)| *c)
        .collect();
    assert_eq!(counts, vec![1, 2, 3], "each attempt is counted");
    assert!(
        host.logs()
            .iter()
            .any(|l| l.text.contains("Moving message to queue 'jobs-poison'")),
        "the move is logged"
    );
    host.shutdown().await;
}

#[tokio::test]
async fn an_invisible_message_runs_once_it_becomes_visible() {
    let Some(azurite) = Azurite::start_queue_for_tests().await.unwrap() else {
        return;
    };
    let conn = azurite.connection_string();
    let queue = StorageConnection::parse(&conn)
        .unwrap()
        .queue("later")
        .unwrap();
    queue.create(None).await.unwrap();
    let app = app("queue-app");
    let host = start(&app, &[("JOBS_QUEUE", "later"), ("JobsStorage", &conn)]).await;
    let sent = Instant::now();
    send(&queue, "in two seconds", Some(2)).await;
    wait_showing_log(
        &host,
        "the delayed message",
        Duration::from_secs(30),
        || !queue_invocations(&app).is_empty(),
    )
    .await;
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "the message ran before its visibility timeout ({:?})",
        sent.elapsed()
    );
    assert_eq!(queue_invocations(&app)[0].0, "in two seconds");
    host.shutdown().await;
}

#[tokio::test]
async fn a_trigger_without_its_connection_is_reported_and_the_host_runs() {
    let app = app("queue-app");
    let host = start(&app, &[("JOBS_QUEUE", "jobs")]).await;
    assert!(
        host.logs().iter().any(|l| l.text
            == "Function 'jobs' will not run: the connection setting JobsStorage is not set (a storage connection string, e.g. UseDevelopmentStorage=true for Azurite)"),
        "{:?}",
        host.logs().iter().map(|l| &l.text).collect::<Vec<_>>()
    );
    assert!(!host.is_stopped());
    host.shutdown().await;
}
