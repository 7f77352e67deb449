//! The handler's HTTP edge under hostile clients: half-sent headers, stalled bodies, more
//! connections than it will hold. It answers with clear JSON errors and recovers by itself.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(h: &Handler) -> String {
    h.base.trim_start_matches("http://").to_string()
}

/// Sends a whole GET and returns (status, body) of the answer.
async fn get_status(h: &Handler) -> (u16, String) {
    let mut s = TcpStream::connect(addr(h)).await.unwrap();
    s.write_all(b"GET /api/status HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("an answer, not a hang")
        .unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[tokio::test]
async fn half_open_connections_get_a_clear_503_and_are_closed_by_the_header_deadline() {
    let mut h = Handler::start(&[
        ("BURST_MAX_CONNECTIONS", "16"),
        ("BURST_HEADER_TIMEOUT_MS", "1500"),
    ]);
    // 40 clients send half a request header and stop.
    let mut stalled = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(addr(&h)).await.unwrap();
        s.write_all(b"POST /api/ups HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        stalled.push(s);
    }
    // Beyond the cap: a clear 503 (not a timeout, not a reset) once the server has taken the
    // stalled ones in (on a busy machine it may take a moment to accept them all).
    let until = Instant::now() + Duration::from_millis(1000);
    let (mut status, mut body) = get_status(&h).await;
    while status != 503 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        (status, body) = get_status(&h).await;
    }
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "too_many_connections");

    // The header deadline closes the stalled ones; the server answers again.
    let started = Instant::now();
    let mut closed = 0;
    for s in &mut stalled {
        let mut buf = [0u8; 512];
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 40, "every stalled connection was closed");
    assert!(started.elapsed() < Duration::from_secs(5));
    let (status, body) = get_status(&h).await;
    assert_eq!(status, 200, "{body}");
    assert!(h.alive());
}

#[tokio::test]
async fn a_stalled_body_gets_408_json() {
    let mut h = Handler::start(&[("BURST_BODY_TIMEOUT_MS", "300")]);
    let mut s = TcpStream::connect(addr(&h)).await.unwrap();
    s.write_all(
        b"POST /api/ups HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"id\":",
    )
    .await
    .unwrap();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut out))
        .await
        .expect("an answer within the body deadline")
        .unwrap();
    let text = String::from_utf8_lossy(&out[..n]).to_string();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"error\":\"body_timeout\""), "{text}");
    assert!(h.alive());
}

#[tokio::test]
async fn a_damaged_state_document_stops_only_its_site_and_is_never_overwritten() {
    let mut h = Handler::start(&[("BURST_SITES", "home,cabin")]);
    let dir = h.state_dir.path().join("state");
    std::fs::create_dir_all(&dir).unwrap();
    let damaged = b"{\"schema\": 1, \"site\": \"home\", \"mode\": ";
    std::fs::write(dir.join("home.json"), damaged).unwrap();
    let (status, body) = post_onbatt(&h, "home").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "state_unreadable", "{body}");
    assert_eq!(
        std::fs::read(dir.join("home.json")).unwrap(),
        damaged,
        "left as it was"
    );
    assert!(
        h.logs().contains("home.json cannot be read"),
        "{}",
        h.logs()
    );
    let (status, body) = post_onbatt(&h, "cabin").await;
    assert_eq!(status, 200, "the other site goes on: {body}");
    assert!(h.alive());
}
