//! The SQS waker against moto in server mode (`moto_server`, a Python re-implementation of
//! AWS's APIs that this project did not write): `SendMessage` over the JSON protocol with a
//! per-message delay, read back with `ReceiveMessage`.
//!
//! moto runs with IAM checks on (`INITIAL_NO_AUTH_ACTION_COUNT`): after the unsigned setup
//! (an IAM user, its policy, its access key, two queues) every request must carry a signature
//! that moto recomputes, and the user holds only the wake-up rights of `docs/aws.md` on one
//! queue.
//!
//! moto is found as in `moto.rs` (`BURST_MOTO_SERVER`, then `target/moto-venv` from
//! `scripts/install-test-deps`, then `PATH`); without it the tests say so and pass, unless
//! `BURST_REQUIRE_MOTO` is set. moto is not SQS: it checks the delay against its own clock with
//! millisecond precision, where SQS promises only "after the delay".

#![allow(clippy::unwrap_used)]

use burst_aws::sigv4::{self, Credentials, RequestParts};
use burst_aws::sqs::{self, SqsConfig, SqsWaker};
use burst_ports::{WakeUp, Waker};
use serde_json::{Value, json};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use url::Url;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const QUEUE: &str = "burst-wake";
/// A queue the user has no rights on.
const OTHER_QUEUE: &str = "not-ours";
/// CreateUser, PutUserPolicy, CreateAccessKey and the two CreateQueue calls.
const UNSIGNED_SETUP_REQUESTS: usize = 5;

/// A running `moto_server` on 127.0.0.1, stopped (by its PID) when dropped.
struct Moto {
    child: Child,
    base: Url,
    log: PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Child::kill signals exactly this PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn moto_server_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BURST_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/moto-venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.is_file())
    })
}

/// Starts moto, or returns `None` (after saying why) when it is not installed and not required.
fn start_moto(test: &str) -> Option<Moto> {
    let required = std::env::var_os("BURST_REQUIRE_MOTO").is_some_and(|v| !v.is_empty());
    let Some(server) = moto_server_path() else {
        assert!(
            !required,
            "BURST_REQUIRE_MOTO is set but moto_server was not found \
             (run scripts/install-test-deps, or set BURST_MOTO_SERVER)"
        );
        eprintln!(
            "SKIPPED {test}: moto_server not found (run scripts/install-test-deps; \
             BURST_REQUIRE_MOTO=1 makes this a failure)"
        );
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log =
        std::env::temp_dir().join(format!("burst-moto-sqs-{}-{port}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env(
            "INITIAL_NO_AUTH_ACTION_COUNT",
            UNSIGNED_SETUP_REQUESTS.to_string(),
        )
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", server.display()));
    let mut moto = Moto {
        child,
        base: Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(moto);
        }
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!(
                "moto_server exited ({status}) before listening:\n{}",
                std::fs::read_to_string(&moto.log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One request signed with burst-aws's signer. Returns status and body.
async fn send_signed(
    http: &reqwest::Client,
    credentials: &Credentials,
    service: &str,
    url: &Url,
    content_type: &str,
    target: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let amz_date = sigv4::amz_date(chrono::Utc::now());
    let payload_hash = sigv4::sha256_hex(body);
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host),
        ("x-amz-date".into(), amz_date.clone()),
        ("content-type".into(), content_type.into()),
    ];
    if let Some(t) = target {
        headers.push(("x-amz-target".into(), t.into()));
    }
    let parts = RequestParts {
        method: "POST",
        canonical_uri: url.path(),
        query: &[],
        headers: &headers,
        payload_hash: &payload_hash,
    };
    let auth = sigv4::authorization(credentials, &amz_date, REGION, service, &parts);
    let mut request = http.post(url.clone());
    for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
        request = request.header(k.as_str(), v.as_str());
    }
    let response = request
        .header("authorization", auth)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// An SQS JSON-protocol call; returns status and the parsed answer (`null` when empty).
async fn sqs_call(
    http: &reqwest::Client,
    moto: &Moto,
    credentials: &Credentials,
    action: &str,
    input: Value,
) -> (u16, Value) {
    let (status, body) = send_signed(
        http,
        credentials,
        "sqs",
        &moto.base,
        sqs::JSON_CONTENT_TYPE,
        Some(&format!("AmazonSQS.{action}")),
        input.to_string().as_bytes(),
    )
    .await;
    let value = serde_json::from_str(&body).unwrap_or(Value::Null);
    (status, value)
}

/// An IAM query-API call (setup only); returns the XML answer.
async fn iam_call(
    http: &reqwest::Client,
    moto: &Moto,
    credentials: &Credentials,
    params: &[(&str, &str)],
) -> String {
    let form = params
        .iter()
        .chain(&[("Version", "2010-05-08")])
        .map(|(k, v)| {
            format!(
                "{}={}",
                sigv4::uri_encode(k, false),
                sigv4::uri_encode(v, false)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let (status, body) = send_signed(
        http,
        credentials,
        "iam",
        &moto.base,
        "application/x-www-form-urlencoded; charset=utf-8",
        None,
        form.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "IAM {params:?}: {body}");
    body
}

fn xml_field(body: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = body
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {body}"))
        + open.len();
    let end = body[start..].find(&format!("</{tag}>")).unwrap() + start;
    body[start..end].to_string()
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
    let moto = start_moto(test)?;
    let http = reqwest::Client::new();
    // moto checks none of the first requests; sign them anyway, with a throwaway key.
    let unchecked = Credentials {
        access_key_id: "AKIASETUPSETUPSETUP0".into(),
        secret_access_key: "setup".into(),
        session_token: None,
    };
    iam_call(
        &http,
        &moto,
        &unchecked,
        &[("Action", "CreateUser"), ("UserName", "burst")],
    )
    .await;
    iam_call(
        &http,
        &moto,
        &unchecked,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "burst"),
            ("PolicyName", "burst-wake"),
            ("PolicyDocument", &wake_policy()),
        ],
    )
    .await;
    let key = iam_call(
        &http,
        &moto,
        &unchecked,
        &[("Action", "CreateAccessKey"), ("UserName", "burst")],
    )
    .await;
    let credentials = Credentials {
        access_key_id: xml_field(&key, "AccessKeyId"),
        secret_access_key: xml_field(&key, "SecretAccessKey"),
        session_token: None,
    };
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
        let now_ms = start.elapsed().as_millis();
        for body in s.receive().await {
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
