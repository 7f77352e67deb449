//! `BURST_WAKE_QUEUE_URL` picks the wake-up adapter by the URL's shape: an SQS queue URL sends
//! with SQS's `SendMessage`, any other queue URL goes to an Azure Storage queue. Checked by
//! what arrives at a scripted endpoint on 127.0.0.1.

#![allow(clippy::unwrap_used)]

use burst_lambda::deps_from_settings;
use burst_ports::WakeUp;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The request line and lower-cased headers of every request; each is answered `status`.
async fn endpoint(status: u16, body: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase());
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    (port, seen)
}

fn getter(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
}

fn base(dir: &std::path::Path, queue_url: Option<String>) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("BURST_STATE_URL", format!("file://{}", dir.display())),
        (
            "BURST_AGENT_HS256_SECRET",
            "0123456789abcdef0123456789abcdef".into(),
        ),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".into()),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG".into()),
    ];
    if let Some(url) = queue_url {
        pairs.push(("BURST_WAKE_QUEUE_URL", url));
    }
    pairs
}

fn wake() -> WakeUp {
    WakeUp {
        site: "home".into(),
        at: 1_800_000_000_000,
        probe: false,
    }
}

#[tokio::test]
async fn an_sqs_queue_url_sends_with_sqs() {
    let dir = tempfile::tempdir().unwrap();
    let (port, seen) = endpoint(200, r#"{"MessageId":"m-1","MD5OfMessageBody":"x"}"#).await;
    let url = format!("http://127.0.0.1:{port}/123456789012/burst-wake");
    let deps = deps_from_settings(&getter(base(dir.path(), Some(url))))
        .await
        .unwrap();
    let waker = deps.waker.clone().expect("a waker");
    waker
        .schedule(&wake(), Duration::from_secs(5))
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("post / http/1.1"), "{}", seen[0]);
    assert!(
        seen[0].contains("x-amz-target: amazonsqs.sendmessage"),
        "{}",
        seen[0]
    );
    assert!(
        seen[0].contains("/us-east-1/sqs/aws4_request"),
        "{}",
        seen[0]
    );
}

#[tokio::test]
async fn any_other_queue_url_goes_to_an_azure_storage_queue() {
    let dir = tempfile::tempdir().unwrap();
    // The answer does not matter here (the Azure client may reject it): the request shows
    // which adapter sent it.
    let (port, seen) = endpoint(500, "").await;
    let url = format!("http://127.0.0.1:{port}/devstoreaccount1/burst-wake?sv=2020-08-04&sig=abc");
    let deps = deps_from_settings(&getter(base(dir.path(), Some(url))))
        .await
        .unwrap();
    let waker = deps.waker.clone().expect("a waker");
    let _ = waker.schedule(&wake(), Duration::from_secs(5)).await;
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(
        seen[0].starts_with("post /devstoreaccount1/burst-wake/messages"),
        "{}",
        seen[0]
    );
    assert!(!seen[0].contains("x-amz-target"), "{}", seen[0]);
}

#[tokio::test]
async fn no_url_means_no_wake_ups_and_a_bad_sqs_url_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let deps = deps_from_settings(&getter(base(dir.path(), None)))
        .await
        .unwrap();
    assert!(deps.waker.is_none());
    let e = deps_from_settings(&getter(base(
        dir.path(),
        Some("https://sqs.eu-west-1.amazonaws.com/123456789012/burst-wake.fifo".into()),
    )))
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("BURST_WAKE_QUEUE_URL") && text.contains("FIFO"),
        "{text}"
    );
}
