//! The SQS waker against moto in server mode (`moto_server`, a Python re-implementation of
//! AWS's APIs that this project did not write): `SendMessage` over the JSON protocol with a
//! per-message delay, read back with `ReceiveMessage`.
//!
//! moto runs with IAM checks on (`INITIAL_NO_AUTH_ACTION_COUNT`): after the unsigned setup
//! (an IAM user, its policy, its access key, two queues) every request must carry a signature
//! that moto recomputes, and the user holds only the wake-up rights of `docs/aws.md` on one
//! queue.
//!
//! moto is found as in `support` (`BURST_MOTO_SERVER`, then `target/moto-venv` from
//! `scripts/install-test-deps`, then `PATH`); without it the tests say so and pass, unless
//! `BURST_REQUIRE_MOTO` is set. moto is not SQS: it checks the delay against its own clock with
//! millisecond precision, where SQS promises only "after the delay".

#![allow(clippy::unwrap_used)]

mod support;

use burst_aws::sigv4::Credentials;
use burst_aws::sqs::{self, SqsConfig, SqsWaker};
use burst_ports::{WakeUp, Waker};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{ACCOUNT, Moto, REGION};

const QUEUE: &str = "burst-wake";
/// A queue the user has no rights on.
const OTHER_QUEUE: &str = "not-ours";
/// The IAM user (user, policy, access key) and the two CreateQueue calls.
const UNSIGNED_SETUP_REQUESTS: usize = support::IAM_SETUP_REQUESTS + 2;

/// An SQS JSON-protocol call; returns status and the parsed answer (`null` when empty).
async fn sqs_call(
    http: &reqwest::Client,
    moto: &Moto,
    credentials: &Credentials,
    action: &str,
    input: Value,
) -> (u16, Value) {
    let target = format!("AmazonSQS.{action}");
    let (status, body) = support::send_signed(
        http,
        credentials,
        "sqs",
        reqwest::Method::POST,
        &moto.base,
        &[
            ("content-type", sqs::JSON_CONTENT_TYPE),
            ("x-amz-target", &target),
        ],
        input.to_string().as_bytes(),
    )
    .await;
    let value = serde_json::from_str(&body).unwrap_or(Value::Null);
    (status, value)
}

/// The wake-up rights of `docs/aws.md`: the functions send; the wake function's event source
/// mapping receives, deletes and reads the attributes. On one queue only.
fn wake_policy() -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "sqs:SendMessage",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes"
                ],
                "Resource": format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}")
            }
        ]
    })
    .to_string()
}

/// Everything a test needs: moto, the user's credentials and both queue URLs.
struct Setup {
    moto: Moto,
    http: reqwest::Client,
    credentials: Credentials,
    queue_url: String,
    other_queue_url: String,
}

async fn setup(test: &str) -> Option<Setup> {
    let moto = support::start(test, UNSIGNED_SETUP_REQUESTS)?;
    let http = reqwest::Client::new();
    let credentials = support::create_iam_user(&http, &moto, &wake_policy()).await;
    // moto checks none of the first requests; sign them anyway, with a throwaway key.
    let unchecked = support::setup_credentials();
    let mut urls = Vec::new();
    for name in [QUEUE, OTHER_QUEUE] {
        let (status, answer) = sqs_call(
            &http,
            &moto,
            &unchecked,
            "CreateQueue",
            json!({"QueueName": name}),
        )
        .await;
        assert_eq!(status, 200, "CreateQueue {name}: {answer}");
        urls.push(answer["QueueUrl"].as_str().unwrap().to_string());
    }
    let other_queue_url = urls.pop().unwrap();
    let queue_url = urls.pop().unwrap();
    Some(Setup {
        moto,
        http,
        credentials,
        queue_url,
        other_queue_url,
    })
}

impl Setup {
    /// The waker exactly as a function builds it: from the settings.
    fn waker(&self, queue_url: &str, credentials: &Credentials) -> SqsWaker {
        let settings = [
            (sqs::WAKE_QUEUE_URL, queue_url.to_string()),
            (sqs::WAKE_TIMEOUT_MS, "5000".to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", credentials.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY",
                credentials.secret_access_key.clone(),
            ),
        ];
        let get = |name: &str| {
            settings
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        SqsWaker::from_settings(&get)
            .unwrap()
            .expect("an SQS queue URL selects the SQS waker")
    }

    /// One `ReceiveMessage` (no long polling); the messages' bodies.
    async fn receive(&self) -> Vec<String> {
        let (status, answer) = sqs_call(
            &self.http,
            &self.moto,
            &self.credentials,
            "ReceiveMessage",
            json!({
                "QueueUrl": self.queue_url,
                "MaxNumberOfMessages": 10,
                "WaitTimeSeconds": 0,
                "VisibilityTimeout": 60
            }),
        )
        .await;
        assert_eq!(status, 200, "ReceiveMessage: {answer}");
        answer["Messages"]
            .as_array()
            .map(|messages| {
                messages
                    .iter()
                    .map(|m| m["Body"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn delayed_count(&self) -> u64 {
        let (status, answer) = sqs_call(
            &self.http,
            &self.moto,
            &self.credentials,
            "GetQueueAttributes",
            json!({
                "QueueUrl": self.queue_url,
                "AttributeNames": ["ApproximateNumberOfMessagesDelayed"]
            }),
        )
        .await;
        assert_eq!(status, 200, "GetQueueAttributes: {answer}");
        answer["Attributes"]["ApproximateNumberOfMessagesDelayed"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_arrives_after_its_delay_with_its_body() {
    let Some(s) = setup("a_wake_up_arrives_after_its_delay_with_its_body").await else {
        return;
    };
    assert!(
        sqs::is_sqs_queue_url(&s.queue_url),
        "moto's queue URL {} has an SQS queue's shape",
        s.queue_url
    );
    let waker = s.waker(&s.queue_url, &s.credentials);
    // Delays of 1 s, 2 s and 2.5 s (sent as 3 s: rounded up, never early).
    let cases = [
        ("one", Duration::from_millis(1_000), 1_000u128),
        ("two", Duration::from_millis(2_000), 2_000),
        ("half", Duration::from_millis(2_500), 3_000),
    ];
    let start = Instant::now();
    let mut expected = Vec::new();
    for (i, (site, delay, due_ms)) in cases.iter().enumerate() {
        let wake = WakeUp {
            site: (*site).into(),
            at: 1_800_000_000_000 + i as i64,
            probe: false,
        };
        let before_ms = start.elapsed().as_millis();
        waker.schedule(&wake, *delay).await.unwrap();
        expected.push((
            serde_json::to_string(&wake).unwrap(),
            before_ms + due_ms,
            wake,
        ));
    }
    let mut seen: Vec<(String, u128)> = Vec::new();
    let deadline = start + Duration::from_secs(10);
    while seen.len() < cases.len() && Instant::now() < deadline {
        let bodies = s.receive().await;
        // Taken once the answer is in: the queue let the message out at or before this, and
        // taken before the call it could be a few ms before the message was due.
        let now_ms = start.elapsed().as_millis();
        for body in bodies {
            seen.push((body, now_ms));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.len(), cases.len(), "messages received: {seen:?}");
    let mut lateness = Vec::new();
    for (body, due_ms, wake) in &expected {
        let (_, at_ms) = seen
            .iter()
            .find(|(b, _)| b == body)
            .unwrap_or_else(|| panic!("no message with the body {body}; got {seen:?}"));
        // The exact body, and it reads back as the wake-up the `wake` function expects.
        let back: WakeUp = serde_json::from_str(body).unwrap();
        assert_eq!(&back, wake);
        assert!(
            at_ms >= due_ms,
            "{body} seen after {at_ms} ms, before its delay ended ({due_ms} ms)"
        );
        assert!(
            *at_ms < due_ms + 1_000,
            "{body} seen after {at_ms} ms, over a second after its delay ended ({due_ms} ms)"
        );
        lateness.push(at_ms - due_ms);
    }
    eprintln!(
        "moto delay accuracy: lateness after the rounded delay {lateness:?} ms (polling every 20 ms)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_delays_are_capped_and_refusals_are_named() {
    let Some(s) = setup("long_delays_are_capped_and_refusals_are_named").await else {
        return;
    };
    // Without the cap the request would fail: SQS (and moto) refuse DelaySeconds above 900.
    let (status, answer) = sqs_call(
        &s.http,
        &s.moto,
        &s.credentials,
        "SendMessage",
        json!({"QueueUrl": s.queue_url, "MessageBody": "{}", "DelaySeconds": 901}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["__type"]
            .as_str()
            .unwrap_or_default()
            .contains("InvalidParameterValue"),
        "{answer}"
    );

    let waker = s.waker(&s.queue_url, &s.credentials);
    let wake = WakeUp {
        site: "home".into(),
        at: 1_800_000_000_000,
        probe: false,
    };
    let sent = waker
        .send(&wake, Duration::from_secs(3 * 3600))
        .await
        .unwrap();
    assert_eq!(sent.delay_s, 900);
    assert!(!sent.message_id.is_empty());
    assert_eq!(s.delayed_count().await, 1, "the wake-up waits in the queue");
    assert!(s.receive().await.is_empty(), "not visible before 900 s");

    // A wrong secret: moto recomputes the signature and refuses; nothing of the key shows.
    let forged = Credentials {
        secret_access_key: "not-the-secret-at-all".into(),
        ..s.credentials.clone()
    };
    let e = s
        .waker(&s.queue_url, &forged)
        .schedule(&wake, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(e.contains("refused"), "{e}");
    assert!(
        !e.contains("not-the-secret-at-all") && !e.contains(&s.credentials.access_key_id),
        "{e}"
    );

    // The policy covers one queue: sending to another is refused with AWS's code.
    let e = s
        .waker(&s.other_queue_url, &s.credentials)
        .send(&wake, Duration::from_secs(5))
        .await
        .unwrap_err();
    match &e {
        sqs::SqsError::Refused { code, .. } => assert!(code.contains("AccessDenied"), "{e}"),
        other => panic!("a queue outside the policy gave {other:?}"),
    }
    assert_eq!(s.delayed_count().await, 1, "refused sends queued nothing");

    // The same URL and settings read as the shared configuration type.
    let config: SqsConfig = s.waker(&s.queue_url, &s.credentials).config().clone();
    assert_eq!(config.queue.name, QUEUE);
    assert_eq!(config.region, REGION);
}
