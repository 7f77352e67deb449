//! The real clients against the sims: Auto Scaling reads/writes and error mapping, S3 CAS
//! under concurrency, and the sims' signature checks.
#![allow(clippy::unwrap_used)]

use burst_aws::sigv4::{self, Credentials, RequestParts};
use burst_aws::{AsgConfig, AsgScaler, S3Config, S3Store};
use burst_aws_sim::{self as sim, asg::AsgSimConfig, s3::S3SimConfig};
use burst_core::{ScaleResult, ScaleSetProbe};
use burst_ports::{Scaler, StateStore, StoreError};
use std::sync::Arc;
use std::time::Duration;

fn asg_client(sim: &burst_aws_sim::asg::AsgSim, creds: Credentials) -> AsgScaler {
    AsgScaler::new(AsgConfig {
        group_name: "burst-spot".into(),
        region: sim::SIM_REGION.into(),
        endpoint: sim.base_url().parse().unwrap(),
        credentials: creds,
        timeout: Duration::from_secs(10),
        throttle_backoff_s: 60,
    })
    .unwrap()
}

fn s3_store(sim: &burst_aws_sim::s3::S3Sim, creds: Credentials) -> S3Store {
    S3Store::new(S3Config {
        bucket: "burst-state".into(),
        prefix: "burst".into(),
        region: sim::SIM_REGION.into(),
        endpoint: Some(sim.base_url().parse().unwrap()),
        credentials: creds,
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

#[tokio::test]
async fn asg_observe_and_set_capacity() {
    // One instance already in service; the ones added from now on stay Pending for an hour.
    let config = AsgSimConfig {
        desired: 1,
        ..AsgSimConfig::default()
    };
    let sim = sim::asg::start(config).await.unwrap();
    sim.set_boot_time(Duration::from_secs(3600));
    let c = asg_client(&sim, sim::test_credentials());
    let seen = |capacity, running| ScaleSetProbe::Seen { capacity, running };
    let accepted = |capacity, running| ScaleResult::Accepted {
        capacity,
        running: Some(running),
    };
    assert_eq!(c.observe().await, seen(1, 1));
    assert_eq!(c.set_capacity(3).await, accepted(3, 1));
    assert_eq!((sim.desired(), sim.in_service()), (3, 1));
    assert_eq!(c.observe().await, seen(3, 1));
    // Equal: read only, no write.
    assert_eq!(c.set_capacity(3).await, accepted(3, 1));
    assert_eq!(sim.writes(), 1);
    let calls = sim.calls();
    let write = calls
        .iter()
        .find(|c| c.action == "SetDesiredCapacity")
        .unwrap();
    assert_eq!(
        write.params,
        vec![
            ("Action".to_string(), "SetDesiredCapacity".to_string()),
            ("Version".into(), "2011-01-01".into()),
            ("AutoScalingGroupName".into(), "burst-spot".into()),
            ("DesiredCapacity".into(), "3".into()),
            ("HonorCooldown".into(), "false".into()),
        ]
    );
    assert!(calls.iter().all(|c| c.status == 200));
    // A Spot interruption takes the newest (still Pending) instances and the capacity with them.
    assert_eq!(sim.interrupt(2), 2);
    assert_eq!(c.observe().await, seen(1, 1));
}

#[tokio::test]
async fn asg_errors_map_to_results() {
    let sim = sim::asg::start(AsgSimConfig::default()).await.unwrap();
    let c = asg_client(&sim, sim::test_credentials());
    // A throttled read: wait, nothing written.
    sim.throttle_next(1);
    assert_eq!(
        c.set_capacity(2).await,
        ScaleResult::Throttled { retry_after_s: 60 }
    );
    assert_eq!(sim.writes(), 0);
    sim.throttle_next(1);
    assert_eq!(
        c.observe().await,
        ScaleSetProbe::Unknown {
            detail: "DescribeAutoScalingGroups: throttled: Throttling: Rate exceeded".into()
        }
    );
    sim.activity_in_progress_next(1);
    assert_eq!(
        c.set_capacity(2).await,
        ScaleResult::Conflict {
            detail:
                "ScalingActivityInProgress: Scaling activity is in progress and blocks this action."
                    .into()
        }
    );
    assert_eq!(
        c.set_capacity(9).await,
        ScaleResult::Failed {
            detail: "SetDesiredCapacity 9: HTTP 400 ValidationError: New SetDesiredCapacity value 9 is above max value 5 for the AutoScalingGroup.".into()
        }
    );
    assert_eq!(sim.desired(), 0);
    assert_eq!(
        c.set_capacity(2).await,
        ScaleResult::Accepted {
            capacity: 2,
            running: Some(0)
        }
    );
}

#[tokio::test]
async fn asg_unknown_group_is_a_failed_read() {
    let sim = sim::asg::start(AsgSimConfig::default()).await.unwrap();
    let mut cfg = asg_client(&sim, sim::test_credentials()).config().clone();
    cfg.group_name = "other".into();
    let c = AsgScaler::new(cfg).unwrap();
    match c.set_capacity(1).await {
        ScaleResult::ReadFailed { detail } => {
            assert!(
                detail.contains("no Auto Scaling group named \"other\""),
                "{detail}"
            )
        }
        r => panic!("expected ReadFailed, got {r:?}"),
    }
    assert_eq!(sim.writes(), 0);
}

#[tokio::test]
async fn asg_sim_refuses_bad_signatures() {
    let sim = sim::asg::start(AsgSimConfig::default()).await.unwrap();
    let mut wrong = sim::test_credentials();
    wrong.secret_access_key = "not-the-secret".into();
    let c = asg_client(&sim, wrong);
    assert_eq!(
        c.set_capacity(1).await,
        ScaleResult::ReadFailed {
            detail: "DescribeAutoScalingGroups: HTTP 403 SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided.".into()
        }
    );
    let mut no_token = sim::test_credentials();
    no_token.session_token = None;
    let c = asg_client(&sim, no_token);
    assert_eq!(
        c.observe().await,
        ScaleSetProbe::Unknown {
            detail: "DescribeAutoScalingGroups: HTTP 403 InvalidClientTokenId: The security token included in the request is invalid.".into()
        }
    );
    // No Authorization at all, and a malformed one.
    let http = reqwest::Client::new();
    let r = http
        .post(sim.base_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=DescribeAutoScalingGroups&Version=2011-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("<Code>MissingAuthenticationToken</Code>"),
        "{body}"
    );
    assert!(body.contains("<Type>Sender</Type>"), "{body}");
    let r = http
        .post(sim.base_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=x, Signature=1",
        )
        .body("Action=DescribeAutoScalingGroups&Version=2011-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<Code>IncompleteSignature</Code>")
    );
    assert_eq!(sim.writes(), 0);
}

/// A hand-signed query-API request (to reach the sim's Action/Version checks).
async fn signed_post(base: &str, form: &str) -> (u16, String) {
    let creds = sim::test_credentials();
    let url: url::Url = base.parse().unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let date = sigv4::amz_date(chrono::Utc::now());
    let headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("host".into(), host),
        ("x-amz-date".into(), date.clone()),
        (
            "x-amz-security-token".into(),
            creds.session_token.clone().unwrap(),
        ),
    ];
    let hash = sigv4::sha256_hex(form.as_bytes());
    let parts = RequestParts {
        method: "POST",
        canonical_uri: "/",
        query: &[],
        headers: &headers,
        payload_hash: &hash,
    };
    let auth = sigv4::authorization(&creds, &date, sim::SIM_REGION, "autoscaling", &parts);
    let mut req = reqwest::Client::new().post(base);
    for (k, v) in &headers {
        if k != "host" {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    let r = req
        .header("authorization", auth)
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn asg_sim_checks_action_and_version() {
    let sim = sim::asg::start(AsgSimConfig::default()).await.unwrap();
    let describe_one = "Action=DescribeAutoScalingGroups&Version=2011-01-01&AutoScalingGroupNames.member.1=burst-spot";
    let set_without_capacity =
        "Action=SetDesiredCapacity&Version=2011-01-01&AutoScalingGroupName=burst-spot";
    for (form, status, code) in [
        ("Action=DescribeAutoScalingGroups", 400, "InvalidAction"),
        ("Version=2011-01-01", 400, "MissingAction"),
        (set_without_capacity, 400, "ValidationError"),
    ] {
        let (s, b) = signed_post(&sim.base_url(), form).await;
        assert_eq!(s, status, "{form}");
        assert!(b.contains(&format!("<Code>{code}</Code>")), "{b}");
    }
    let (s, b) = signed_post(&sim.base_url(), describe_one).await;
    assert_eq!(s, 200);
    assert!(b.starts_with("<DescribeAutoScalingGroupsResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">"), "{b}");
    assert_eq!(burst_aws::xml::parse_describe(&b).unwrap().len(), 1);
}

#[tokio::test]
async fn s3_load_create_update_and_conflicts() {
    let sim = sim::s3::start(S3SimConfig::default()).await.unwrap();
    let s = s3_store(&sim, sim::test_credentials());
    assert_eq!(s.load("home").await.unwrap(), None);
    let e1 = s.save("home", b"{\"v\":1}", None).await.unwrap();
    assert_eq!(sim.keys(), vec!["burst/home.json".to_string()]);
    // Create again: someone was first.
    assert_eq!(
        s.save("home", b"{\"v\":9}", None).await,
        Err(StoreError::Conflict)
    );
    let v = s.load("home").await.unwrap().unwrap();
    assert_eq!(v.bytes, b"{\"v\":1}");
    assert_eq!(v.etag, e1);
    let e2 = s.save("home", b"{\"v\":2}", Some(&e1)).await.unwrap();
    assert_ne!(e1, e2);
    // A stale ETag loses.
    assert_eq!(
        s.save("home", b"{\"v\":3}", Some(&e1)).await,
        Err(StoreError::Conflict)
    );
    // A conditional write to a missing object: the document went away since it was read.
    assert_eq!(
        s.save("away", b"{}", Some(&e1)).await,
        Err(StoreError::Conflict)
    );
    sim.conflict_next(1);
    assert_eq!(
        s.save("home", b"{\"v\":3}", Some(&e2)).await,
        Err(StoreError::Conflict)
    );
    sim.slowdown_next(1);
    match s.load("home").await {
        Err(StoreError::Unavailable(m)) => assert_eq!(
            m,
            "load of site home: HTTP 503 SlowDown: Please reduce your request rate."
        ),
        r => panic!("expected Unavailable, got {r:?}"),
    }
    assert_eq!(sim.object("burst/home.json").unwrap().bytes, b"{\"v\":2}");
    assert_eq!(sim.object("burst/home.json").unwrap().etag, e2);
}

#[tokio::test]
async fn s3_refusals() {
    let sim = sim::s3::start(S3SimConfig::default()).await.unwrap();
    let mut wrong = sim::test_credentials();
    wrong.secret_access_key = "nope".into();
    match s3_store(&sim, wrong).load("home").await {
        Err(StoreError::Refused(m)) => assert!(m.contains("403 SignatureDoesNotMatch"), "{m}"),
        r => panic!("expected Refused, got {r:?}"),
    }
    let mut other_key = sim::test_credentials();
    other_key.access_key_id = "AKIDOTHER".into();
    match s3_store(&sim, other_key).save("home", b"{}", None).await {
        Err(StoreError::Refused(m)) => assert!(m.contains("403 InvalidAccessKeyId"), "{m}"),
        r => panic!("expected Refused, got {r:?}"),
    }
    let mut cfg = s3_store(&sim, sim::test_credentials()).config().clone();
    cfg.bucket = "missing-bucket".into();
    match S3Store::new(cfg).unwrap().load("home").await {
        Err(StoreError::Refused(m)) => assert!(m.contains("404 NoSuchBucket"), "{m}"),
        r => panic!("expected Refused, got {r:?}"),
    }
    // Unsigned payload hash mismatch.
    let r = reqwest::Client::new()
        .put(format!("{}/burst-state/x.json", sim.base_url()))
        .header("x-amz-content-sha256", sigv4::EMPTY_SHA256)
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIDBURSTSIMEXAMPLE/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000")
        .header("x-amz-date", sigv4::amz_date(chrono::Utc::now()))
        .body("not empty")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(sim.keys().is_empty());
}

#[tokio::test]
async fn s3_concurrent_writers_lose_no_update() {
    let sim = sim::s3::start(S3SimConfig::default()).await.unwrap();
    let store = Arc::new(s3_store(&sim, sim::test_credentials()));
    const WRITERS: usize = 8;
    const EACH: usize = 5;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for i in 0..EACH {
                loop {
                    let cur = store.load("home").await.unwrap();
                    let (mut list, etag): (Vec<String>, Option<String>) = match &cur {
                        Some(v) => (serde_json_list(&v.bytes), Some(v.etag.clone())),
                        None => (Vec::new(), None),
                    };
                    list.push(format!("w{w}-{i}"));
                    let bytes = format!(
                        "[{}]",
                        list.iter()
                            .map(|s| format!("\"{s}\""))
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                    match store.save("home", bytes.as_bytes(), etag.as_deref()).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict) => conflicts += 1,
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let doc = serde_json_list(&sim.object("burst/home.json").unwrap().bytes);
    assert_eq!(
        doc.len(),
        WRITERS * EACH,
        "lost updates ({conflicts} conflicts)"
    );
    for w in 0..WRITERS {
        for i in 0..EACH {
            assert!(doc.contains(&format!("w{w}-{i}")));
        }
    }
}

#[tokio::test]
async fn s3_create_race_has_one_winner() {
    let sim = sim::s3::start(S3SimConfig::default()).await.unwrap();
    let store = Arc::new(s3_store(&sim, sim::test_credentials()));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .save("race", format!("[\"{w}\"]").as_bytes(), None)
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
}

/// Parses the tiny `["a","b"]` documents of the concurrency test.
fn serde_json_list(bytes: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(bytes);
    s.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_matches('"').to_string())
        .collect()
}
