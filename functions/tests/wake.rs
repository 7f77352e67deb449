//! The queue-triggered `wake` function through `burst-handler`: a UPS event schedules a real
//! wake-up message in Azurite's queue (the site and its grace deadline, base64 JSON, visible a
//! lead before the deadline); the message handed back in JSON mode acts on the deadline; bad,
//! foreign, oversized and superseded messages are answered as the host needs (500 = retry, then
//! the poison queue; 200 = done).
#![allow(clippy::unwrap_used)]

mod support;

use base64::Engine as _;
use burst_store_sim::azurite::{Azurite, peek_texts};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

async fn invoke_wake(h: &Handler, message: Value) -> (u16, Value) {
    let invocation = json!({
        "Data": {"wake": message},
        "Metadata": {"DequeueCount": 1, "Id": "m1", "PopReceipt": "p1",
            "sys": {"MethodName": "wake", "UtcNow": "2026-01-10T12:05:00Z", "RandGuid": "9d0f2c1e"}}
    });
    let resp = invoke(h, "wake", &invocation).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn first_log(v: &Value) -> String {
    v["Logs"][0].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn bad_foreign_and_superseded_wake_ups() {
    let mut h = Handler::start(&[]);
    let cases = [
        (json!("{not json"), 500, "not a wake-up message"),
        (
            json!(r#"{"site":"home","at":1,"extra":true}"#),
            500,
            "not a wake-up message",
        ),
        (
            json!(r#"{"site":"elsewhere","at":1}"#),
            500,
            "not watched here",
        ),
        (json!("x".repeat(5000)), 500, "over 1024"),
        (json!(r#"{"site":"home","at":1}"#), 200, "superseded"),
        // The host may hand a JSON message over already parsed.
        (json!({"site": "home", "at": 2}), 200, "superseded"),
    ];
    for (message, want, says) in cases {
        let (status, v) = invoke_wake(&h, message.clone()).await;
        assert_eq!(status, want, "{message}: {v}");
        assert!(first_log(&v).contains(says), "{message}: {v}");
        assert_eq!(v["ReturnValue"], Value::Null, "{v}");
    }
    // Without a Data item at all.
    let resp = invoke(&h, "wake", &json!({"Data": {}, "Metadata": {}})).await;
    assert_eq!(resp.status().as_u16(), 500);
    // Not an HTTP function.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/wake", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert!(h.alive());
}

#[tokio::test]
async fn a_ups_event_schedules_a_wake_up_that_acts_on_the_deadline() {
    let Some(azurite) = Azurite::start_queue_for_tests().await.unwrap() else {
        return;
    };
    let queue_url = azurite.queue_url("burst-wake");
    let queue = azurite.create_queue("burst-wake").await.unwrap();
    // Grace 7 s, lead 5 s: the message turns visible about 2 s after the event.
    let h = Handler::start(&[
        ("BURST_WAKE_QUEUE_URL", &queue_url),
        ("BURST_GRACE_ON_BATTERY_S", "7"),
    ]);
    let sent = Instant::now();
    let (status, answer) = post_onbatt(&h, "home").await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        peek_texts(&queue).await.unwrap().is_empty(),
        "invisible until its lead"
    );
    let mut texts = Vec::new();
    while texts.is_empty() {
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "no wake-up message"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        texts = peek_texts(&queue).await.unwrap();
    }
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(texts.len(), 1, "one wake-up per deadline: {texts:?}");
    let json = base64::engine::general_purpose::STANDARD
        .decode(&texts[0])
        .unwrap();
    let wake: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(wake["site"], "home");
    // The host hands the text over; the function waits out the lead and acts at the deadline.
    let (status, v) = invoke_wake(&h, Value::String(String::from_utf8(json).unwrap())).await;
    assert_eq!(status, 200, "{v}");
    assert!(
        sent.elapsed() >= Duration::from_millis(6_500),
        "acted before the grace ended: {:?}",
        sent.elapsed()
    );
    assert!(first_log(&v).contains("mode outage"), "{v}");
    // The same message again (at-least-once delivery): nothing more to do.
    let (status, v) = invoke_wake(&h, wake.clone()).await;
    assert_eq!(status, 200);
    assert!(first_log(&v).contains("superseded"), "{v}");
}
