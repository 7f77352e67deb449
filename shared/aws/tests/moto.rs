//! burst-aws against moto in server mode (`moto_server`, a Python re-implementation of AWS's
//! APIs that this project did not write): the S3 state store's conditional writes and the
//! Auto Scaling scaler's `DescribeAutoScalingGroups` / `SetDesiredCapacity`.
//!
//! moto runs with IAM checks on (see `support`): after the unchecked setup requests (a role
//! session or an IAM user with its policy, the bucket, the launch configuration and the group)
//! every request must carry a signature that moto recomputes with botocore's signer, and the
//! caller holds only the least-privilege policy of `docs/aws.md`. Without moto the tests say so and
//! pass, unless `BURST_REQUIRE_MOTO` is set (CI sets it).
//!
//! Where moto differs from AWS (found with moto 5.2.6), the tests say so; `docs/aws.md` lists the
//! gaps.

#![allow(clippy::unwrap_used)]

mod support;

use burst_aws::Credentials;
use burst_aws::{AsgConfig, AsgError, AsgScaler, S3Config, S3Store};
use burst_core::{ScaleResult, ScaleSetProbe};
use burst_ports::{Scaler, StateStore, StoreError};
use std::time::Duration;
use support::{Moto, REGION, send_signed, setup_credentials};

const BUCKET: &str = "burst-state";
const GROUP: &str = "burst-spot";
/// A prefix with a space and non-ASCII letters: the object path must be encoded and signed the
/// way botocore expects.
const PREFIX: &str = "burst/state é";
/// The three requests for the caller's credentials plus two more per test (bucket; launch
/// configuration and group), all unchecked; everything after them is checked.
const UNCHECKED_REQUESTS: usize = support::IAM_SETUP_REQUESTS + 2;

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
    let Some(moto) = support::start(
        "s3_state_store_conditional_writes_on_moto",
        UNCHECKED_REQUESTS,
    ) else {
        return;
    };
    let http = reqwest::Client::new();
    // A role session, as a Lambda function runs: every request also carries and signs the
    // session token.
    let credentials = support::assume_role(&http, &moto, &least_privilege_policy()).await;
    assert!(credentials.session_token.is_some());
    // Unchecked request 4: the bucket. Request 5 is spent on a harmless read so that both tests
    // start checking signatures after the same count.
    let bucket_url = moto.base.join(BUCKET).unwrap();
    for (method, what) in [
        (reqwest::Method::PUT, "CreateBucket"),
        (reqwest::Method::HEAD, "HeadBucket"),
    ] {
        let (status, body) = send_signed(
            &http,
            &setup_credentials(),
            "s3",
            method,
            &bucket_url,
            &[],
            b"",
        )
        .await;
        assert_eq!(status, 200, "{what}: {body}");
    }

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
    // moto compares the session token too: a wrong one is refused.
    let wrong_token = s3_store(
        &moto,
        Credentials {
            session_token: Some("not-the-token".into()),
            ..credentials.clone()
        },
    );
    match wrong_token.load("home").await {
        Err(StoreError::Refused(m)) => assert!(m.contains("HTTP 400 InvalidToken"), "{m}"),
        other => panic!("a wrong session token gave {other:?}"),
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
    let Some(moto) = support::start("auto_scaling_group_calls_on_moto", UNCHECKED_REQUESTS) else {
        return;
    };
    let http = reqwest::Client::new();
    // An IAM user's long-term key (no session token).
    let credentials = support::create_iam_user(&http, &moto, &least_privilege_policy()).await;
    // Unchecked requests 4 and 5: the launch configuration and the group.
    let version = ("Version", "2011-01-01");
    let launch_configuration = ("LaunchConfigurationName", "burst-node");
    let calls: [&[(&str, &str)]; 2] = [
        &[
            ("Action", "CreateLaunchConfiguration"),
            version,
            launch_configuration,
            ("ImageId", "ami-12c6146b"),
            ("InstanceType", "t3.medium"),
        ],
        &[
            ("Action", "CreateAutoScalingGroup"),
            version,
            ("AutoScalingGroupName", GROUP),
            launch_configuration,
            ("MinSize", "0"),
            ("MaxSize", "5"),
            ("DesiredCapacity", "0"),
            ("AvailabilityZones.member.1", "us-east-1a"),
        ],
    ];
    for params in calls {
        support::setup_call(&http, &moto, "autoscaling", params).await;
    }

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
