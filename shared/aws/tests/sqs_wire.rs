//! The SQS waker's requests on the wire, against a scripted HTTP endpoint on 127.0.0.1: the
//! JSON protocol's headers and body, the SigV4 signature (recomputed here), the 900 s cap, the
//! session token, a stalled endpoint (bounded by the timeout) and error answers that quote the
//! credentials (scrubbed).

#![allow(clippy::unwrap_used)]

use burst_aws::sigv4::{self, Credentials, RequestParts};
use burst_aws::sqs::{self, QueueUrl, SqsConfig, SqsError, SqsWaker};
use burst_ports::{WakeUp, Waker};
use burst_sim_kit::raw::{RawRequest, read_request};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN";
const KEY_ID: &str = "ASIAEXAMPLEKEYID0001";

/// How the endpoint answers.
#[derive(Clone, Debug)]
enum Answer {
    Json(u16, String),
    /// Accept the request, never answer.
    Stall,
}

/// A one-connection-at-a-time HTTP/1.1 endpoint that records requests and answers as told.
async fn endpoint(answer: Answer) -> (String, Arc<Mutex<Vec<RawRequest>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let Some(request) = read_request(&mut BufReader::new(&mut stream)).await else {
                    return;
                };
                log.lock().unwrap().push(request);
                match answer {
                    Answer::Json(status, body) => {
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(reply.as_bytes()).await;
                    }
                    Answer::Stall => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (
        format!("http://127.0.0.1:{port}/123456789012/burst-wake"),
        seen,
    )
}

fn credentials() -> Credentials {
    Credentials {
        access_key_id: KEY_ID.into(),
        secret_access_key: SECRET.into(),
        session_token: Some(TOKEN.into()),
    }
}

fn waker(queue_url: &str, timeout: Duration) -> SqsWaker {
    SqsWaker::new(SqsConfig {
        queue: QueueUrl::parse(queue_url).unwrap(),
        region: "eu-west-1".into(),
        credentials: credentials(),
        timeout,
    })
    .unwrap()
}

fn wake() -> WakeUp {
    WakeUp {
        site: "home".into(),
        at: 1_800_000_123_456,
        probe: false,
    }
}

const SENT: &str =
    r#"{"MD5OfMessageBody":"0f2a","MessageId":"5fea7756-0ea4-451a-a703-a558b933e274"}"#;

#[tokio::test]
async fn send_message_is_a_signed_json_request_with_the_delay_in_seconds() {
    let (url, seen) = endpoint(Answer::Json(200, SENT.into())).await;
    let w = waker(&url, Duration::from_secs(5));
    let sent = w.send(&wake(), Duration::from_millis(2_001)).await.unwrap();
    assert_eq!(sent.message_id, "5fea7756-0ea4-451a-a703-a558b933e274");
    assert_eq!(sent.delay_s, 3, "rounded up");
    w.schedule(&wake(), Duration::from_secs(7_200))
        .await
        .unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let first = &seen[0];
    assert_eq!((first.method.as_str(), first.path.as_str()), ("POST", "/"));
    assert_eq!(
        first.header("content-type"),
        Some("application/x-amz-json-1.0")
    );
    assert_eq!(first.header("x-amz-target"), Some("AmazonSQS.SendMessage"));
    assert_eq!(first.header("x-amz-security-token"), Some(TOKEN));
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "QueueUrl": url,
            "MessageBody": r#"{"site":"home","at":1800000123456}"#,
            "DelaySeconds": 3
        })
    );
    let second: Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(second["DelaySeconds"], 900, "two hours are sent as 900 s");

    // The signature: recomputed from what arrived, with the same secret.
    for s in &seen {
        let auth = sigv4::parse_authorization(s.header("authorization").unwrap()).unwrap();
        assert_eq!(
            (
                auth.access_key_id.as_str(),
                auth.region.as_str(),
                auth.service.as_str()
            ),
            (KEY_ID, "eu-west-1", "sqs")
        );
        for needed in [
            "content-type",
            "host",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-target",
        ] {
            assert!(
                auth.signed_headers.iter().any(|h| h == needed),
                "{needed} is signed: {:?}",
                auth.signed_headers
            );
        }
        let headers: Vec<(String, String)> = auth
            .signed_headers
            .iter()
            .map(|h| (h.clone(), s.header(h).unwrap().to_string()))
            .collect();
        let payload_hash = sigv4::sha256_hex(&s.body);
        let parts = RequestParts {
            method: &s.method,
            canonical_uri: &s.path,
            query: &[],
            headers: &headers,
            payload_hash: &payload_hash,
        };
        let expected = sigv4::signature(
            SECRET,
            s.header("x-amz-date").unwrap(),
            "eu-west-1",
            "sqs",
            &parts,
        );
        assert_eq!(auth.signature, expected);
    }
}

#[tokio::test]
async fn a_stalled_endpoint_is_bounded_by_the_timeout() {
    let (url, seen) = endpoint(Answer::Stall).await;
    let w = waker(&url, Duration::from_millis(300));
    let start = Instant::now();
    let e = w.send(&wake(), Duration::from_secs(5)).await.unwrap_err();
    let took = start.elapsed();
    assert!(matches!(e, SqsError::Transport(_)), "{e:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(seen.lock().unwrap().len(), 1, "one attempt, no retries");
    // Nothing listens: no answer, said plainly.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = waker(
        &format!("http://127.0.0.1:{closed}/123456789012/q"),
        Duration::from_millis(500),
    )
    .schedule(&wake(), Duration::from_secs(1))
    .await
    .unwrap_err();
    assert!(e.contains("no answer from SQS"), "{e}");
}

#[tokio::test]
async fn error_answers_are_classified_and_never_show_the_credentials() {
    // A signature error that quotes the signed request, token and key id included.
    let quoting = serde_json::json!({
        "__type": "com.amazon.coral.service#InvalidSignatureException",
        "message": format!("Signature expired for {KEY_ID} with token {TOKEN} and {SECRET}\n\nThe Canonical String for this request should have been\n'POST\n/\nx-amz-security-token:{TOKEN}'")
    })
    .to_string();
    let cases: Vec<(u16, String, &str)> = vec![
        (400, quoting, "refused"),
        (
            400,
            r#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#.into(),
            "refused",
        ),
        (
            400,
            r#"{"__type":"com.amazonaws.sqs#RequestThrottled","message":"Rate exceeded"}"#.into(),
            "throttled",
        ),
        (
            400,
            r#"{"__type":"com.amazonaws.sqs#InvalidParameterValue","message":"bad"}"#.into(),
            "rejected",
        ),
        (500, r#"{"__type":"InternalFailure"}"#.into(), "unavailable"),
        (200, "{}".into(), "unreadable"),
    ];
    for (status, body, word) in cases {
        let (url, _) = endpoint(Answer::Json(status, body.clone())).await;
        let e = waker(&url, Duration::from_secs(5))
            .schedule(&wake(), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(e.contains(word), "{status} {body}: {e}");
        assert!(
            e.contains("/123456789012/burst-wake"),
            "names the queue: {e}"
        );
        for secret in [SECRET, TOKEN, KEY_ID] {
            assert!(!e.contains(secret), "{e}");
        }
    }
}

#[test]
fn the_shape_of_the_url_picks_sqs_or_azure() {
    assert!(sqs::is_sqs_queue_url(
        "https://sqs.eu-west-1.amazonaws.com/123456789012/burst-wake"
    ));
    assert!(!sqs::is_sqs_queue_url(
        "https://burstwake.queue.core.windows.net/wake"
    ));
}
