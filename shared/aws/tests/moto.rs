//! burst-aws against moto in server mode (`moto_server`, a Python re-implementation of AWS's
//! APIs that this project did not write): the S3 state store's conditional writes and the
//! Auto Scaling scaler's `DescribeAutoScalingGroups` / `SetDesiredCapacity`.
//!
//! moto runs with IAM checks on (`INITIAL_NO_AUTH_ACTION_COUNT`): after the unsigned setup
//! requests (an IAM user, its access key, its policy, the bucket, the launch configuration and
//! the group) every request must carry a signature that moto recomputes with botocore's signer,
//! and the user holds only the least-privilege policy of `docs/aws.md`.
//!
//! `scripts/install-test-deps` installs moto into `target/moto-venv`; `BURST_MOTO_SERVER` may
//! name another `moto_server`. Without moto the tests say so and pass, unless
//! `BURST_REQUIRE_MOTO` is set (CI sets it): then a missing moto is a failure.
//!
//! Where moto differs from AWS (found with moto 5.2.6), the tests say so; `docs/aws.md` lists the
//! gaps.

#![allow(clippy::unwrap_used)]

use burst_aws::sigv4::{self, Credentials, RequestParts};
use burst_aws::{AsgConfig, AsgError, AsgScaler, S3Config, S3Store};
use burst_core::{ScaleResult, ScaleSetProbe};
use burst_ports::{Scaler, StateStore, StoreError};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use url::Url;

const REGION: &str = "us-east-1";
const BUCKET: &str = "burst-state";
const GROUP: &str = "burst-spot";
/// A prefix with a space and non-ASCII letters: the object path must be encoded and signed the
/// way botocore expects.
const PREFIX: &str = "burst/state é";
/// The unsigned requests each test makes before it signs everything (see [`setup_iam`] and the
/// per-test setup).
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

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
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
    let port = free_port();
    let log = std::env::temp_dir().join(format!("burst-moto-{}-{port}.log", std::process::id()));
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

/// One request signed by burst-aws's signer the way the clients sign (also used unsigned-in-
/// effect for setup: moto does not check the first requests). Returns status and body.
async fn send_signed(
    http: &reqwest::Client,
    credentials: &Credentials,
    service: &str,
    method: reqwest::Method,
    url: &Url,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let amz_date = sigv4::amz_date(chrono::Utc::now());
    let payload_hash = sigv4::sha256_hex(body);
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host),
        ("x-amz-date".into(), amz_date.clone()),
        ("x-amz-content-sha256".into(), payload_hash.clone()),
    ];
    headers.extend(
        extra_headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let parts = RequestParts {
        method: method.as_str(),
        canonical_uri: url.path(),
        query: &query,
        headers: &headers,
        payload_hash: &payload_hash,
    };
    let auth = sigv4::authorization(credentials, &amz_date, REGION, service, &parts);
    let mut request = http.request(method, url.clone());
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

/// A form-encoded query-API call (IAM, Auto Scaling).
async fn query_api(
    http: &reqwest::Client,
    moto: &Moto,
    credentials: &Credentials,
    service: &str,
    params: &[(&str, &str)],
) -> String {
    let form = params
        .iter()
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
        service,
        reqwest::Method::POST,
        &moto.base,
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        form.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{service} {params:?}: {body}");
    body
}

fn xml_field(body: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {body}"))
        + open.len();
    let end = body[start..].find(&close).unwrap() + start;
    body[start..end].to_string()
}

/// Credentials that moto does not check (the setup requests come before IAM checks start).
fn setup_credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIASETUPSETUPSETUP0".into(),
        secret_access_key: "setup".into(),
        session_token: None,
    }
}

/// The IAM user the clients run as: three unsigned-in-effect requests (user, key, policy).
/// The policy is `docs/aws.md`'s least-privilege policy for this account's group and bucket.
async fn setup_iam(http: &reqwest::Client, moto: &Moto) -> Credentials {
    let setup = setup_credentials();
    let iam = |params: Vec<(&'static str, String)>| {
        let mut all: Vec<(&str, String)> = vec![("Version", "2010-05-08".into())];
        all.extend(params);
        all
    };
    for params in [
        iam(vec![
            ("Action", "CreateUser".into()),
            ("UserName", "burst".into()),
        ]),
        iam(vec![
            ("Action", "PutUserPolicy".into()),
            ("UserName", "burst".into()),
            ("PolicyName", "burst".into()),
            ("PolicyDocument", least_privilege_policy()),
        ]),
    ] {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        query_api(http, moto, &setup, "iam", &params).await;
    }
    let key = query_api(
        http,
        moto,
        &setup,
        "iam",
        &[
            ("Version", "2010-05-08"),
            ("Action", "CreateAccessKey"),
            ("UserName", "burst"),
        ],
    )
    .await;
    Credentials {
        access_key_id: xml_field(&key, "AccessKeyId"),
        secret_access_key: xml_field(&key, "SecretAccessKey"),
        session_token: None,
    }
}

fn least_privilege_policy() -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "autoscaling:DescribeAutoScalingGroups", "Resource": "*"},
            // docs/aws.md limits this one to the group's ARN. moto gap: it checks Auto Scaling
            // actions against the resource "*" only, so the ARN-limited statement is refused
            // there; the ARN form is AWS's documented one.
            {"Effect": "Allow", "Action": "autoscaling:SetDesiredCapacity", "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": format!("arn:aws:s3:::{BUCKET}/burst/*")
            },
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": format!("arn:aws:s3:::{BUCKET}")}
        ]
    })
    .to_string()
}

fn s3_store(moto: &Moto, credentials: Credentials) -> S3Store {
    S3Store::new(S3Config {
        bucket: BUCKET.into(),
        prefix: PREFIX.into(),
        region: REGION.into(),
        endpoint: Some(moto.base.clone()),
        credentials,
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

fn scaler(moto: &Moto, group: &str, credentials: Credentials) -> AsgScaler {
    AsgScaler::new(AsgConfig {
        group_name: group.into(),
        region: REGION.into(),
        endpoint: moto.base.clone(),
        credentials,
        timeout: Duration::from_secs(10),
        throttle_backoff_s: 60,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_state_store_conditional_writes_on_moto() {
    let Some(moto) = start_moto("s3_state_store_conditional_writes_on_moto") else {
        return;
    };
    let http = reqwest::Client::new();
    let credentials = setup_iam(&http, &moto).await;
    // Unsigned request 4: the bucket. Request 5 is spent on a harmless read so that both tests
    // start checking signatures after the same count.
    let bucket_url = moto.base.join(BUCKET).unwrap();
    let (status, body) = send_signed(
        &http,
        &setup_credentials(),
        "s3",
        reqwest::Method::PUT,
        &bucket_url,
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200, "CreateBucket: {body}");
    let (status, _) = send_signed(
        &http,
        &setup_credentials(),
        "s3",
        reqwest::Method::HEAD,
        &bucket_url,
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200, "HeadBucket");

    let store = s3_store(&moto, credentials.clone());
    assert_eq!(store.load("home").await.unwrap(), None, "no document yet");
    let first = store.save("home", b"{\"v\":1}", None).await.unwrap();
    // If-None-Match: * on an existing object: someone else created it first.
    assert_eq!(
        store.save("home", b"{\"v\":\"other\"}", None).await,
        Err(StoreError::Conflict)
    );
    let loaded = store.load("home").await.unwrap().unwrap();
    assert_eq!(loaded.bytes, b"{\"v\":1}");
    assert_eq!(loaded.etag, first);
    let second = store
        .save("home", b"{\"v\":2}", Some(&first))
        .await
        .unwrap();
    assert_ne!(second, first);
    // If-Match with a stale ETag: lost the race.
    assert_eq!(
        store.save("home", b"{\"v\":3}", Some(&first)).await,
        Err(StoreError::Conflict)
    );
    let loaded = store.load("home").await.unwrap().unwrap();
    assert_eq!(
        (loaded.bytes.as_slice(), loaded.etag.as_str()),
        (&b"{\"v\":2}"[..], second.as_str())
    );
    // A conditional update of a document that does not exist (deleted since it was read).
    assert_eq!(
        store.save("gone", b"{}", Some(&second)).await,
        Err(StoreError::Conflict)
    );
    assert_eq!(store.load("gone").await.unwrap(), None);

    // Many writers from the same version: exactly one may win.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let expected = second.clone();
            tokio::spawn(async move {
                store
                    .save(
                        "home",
                        format!("{{\"writer\":{i}}}").as_bytes(),
                        Some(&expected),
                    )
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for w in writers {
        match w.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("a racing writer got {e:?}"),
        }
    }
    assert_eq!(won, 1, "writers that won the same If-Match race");

    // moto checks signatures: a wrong secret is refused, never written.
    let forged = s3_store(
        &moto,
        Credentials {
            secret_access_key: "not-the-secret".into(),
            ..credentials.clone()
        },
    );
    match forged.save("home", b"{\"forged\":true}", None).await {
        Err(StoreError::Refused(m)) => assert!(m.contains("HTTP 403"), "{m}"),
        other => panic!("a wrong secret gave {other:?}"),
    }
    // The least-privilege policy covers only the `burst/` prefix.
    let outside = S3Store::new(S3Config {
        prefix: "elsewhere".into(),
        ..store.config().clone()
    })
    .unwrap();
    match outside.save("home", b"{}", None).await {
        Err(StoreError::Refused(m)) => assert!(m.contains("AccessDenied"), "{m}"),
        other => panic!("a write outside the policy gave {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_scaling_group_calls_on_moto() {
    let Some(moto) = start_moto("auto_scaling_group_calls_on_moto") else {
        return;
    };
    let http = reqwest::Client::new();
    let credentials = setup_iam(&http, &moto).await;
    // Unsigned requests 4 and 5: the launch configuration and the group.
    let setup = setup_credentials();
    query_api(
        &http,
        &moto,
        &setup,
        "autoscaling",
        &[
            ("Action", "CreateLaunchConfiguration"),
            ("Version", "2011-01-01"),
            ("LaunchConfigurationName", "burst-node"),
            ("ImageId", "ami-12c6146b"),
            ("InstanceType", "t3.medium"),
        ],
    )
    .await;
    query_api(
        &http,
        &moto,
        &setup,
        "autoscaling",
        &[
            ("Action", "CreateAutoScalingGroup"),
            ("Version", "2011-01-01"),
            ("AutoScalingGroupName", GROUP),
            ("LaunchConfigurationName", "burst-node"),
            ("MinSize", "0"),
            ("MaxSize", "5"),
            ("DesiredCapacity", "0"),
            ("AvailabilityZones.member.1", "us-east-1a"),
        ],
    )
    .await;

    let group = scaler(&moto, GROUP, credentials.clone());
    assert_eq!(
        group.observe().await,
        ScaleSetProbe::Seen {
            capacity: 0,
            running: 0
        }
    );
    assert_eq!(
        group.set_capacity(3).await,
        ScaleResult::Accepted {
            capacity: 3,
            running: Some(0)
        }
    );
    let now = group.describe().await.unwrap();
    assert_eq!((now.desired, now.min, now.max), (3, 0, 5));
    // moto starts instances at once; AWS takes minutes.
    assert_eq!(now.in_service, 3);
    // Already there: answered from the read, no write.
    assert_eq!(
        group.set_capacity(3).await,
        ScaleResult::Accepted {
            capacity: 3,
            running: Some(3)
        }
    );
    assert_eq!(
        group.set_capacity(0).await,
        ScaleResult::Accepted {
            capacity: 0,
            running: Some(3)
        }
    );
    assert_eq!(group.describe().await.unwrap().desired, 0);

    // A group that does not exist (or that the role cannot see): the read fails, no write.
    let missing = scaler(&moto, "no-such-group", credentials.clone());
    match missing.describe().await {
        Err(AsgError::Unexpected(m)) => assert!(m.contains("no-such-group"), "{m}"),
        other => panic!("a missing group gave {other:?}"),
    }
    assert!(matches!(
        missing.set_capacity(1).await,
        ScaleResult::ReadFailed { .. }
    ));

    // moto checks signatures: a wrong secret is an error with AWS's code.
    let forged = scaler(
        &moto,
        GROUP,
        Credentials {
            secret_access_key: "not-the-secret".into(),
            ..credentials
        },
    );
    match forged.describe().await {
        // moto gap: its signature and permission errors wrap <Error> in <Errors>, unlike Auto
        // Scaling's own error answers, so the client keeps the status and the raw text.
        Err(AsgError::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 403);
            assert!(message.contains("SignatureDoesNotMatch"), "{message}");
        }
        other => panic!("a wrong secret gave {other:?}"),
    }
    assert!(matches!(
        forged.set_capacity(2).await,
        ScaleResult::ReadFailed { .. }
    ));
    assert_eq!(
        group.describe().await.unwrap().desired,
        0,
        "nothing written"
    );
}
