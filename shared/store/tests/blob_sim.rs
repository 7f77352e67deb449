//! The blob store against the simulated blob service: the same CAS scenarios as against
//! Azurite, the exact requests sent, and the failures Azurite cannot produce (5xx, 429,
//! latency) — each answered at once, with one request (the SDK's retries are off).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use burst_store::{BlobStore, StateStore, StoreError};
use burst_store_sim::azurite::{ACCOUNT, ACCOUNT_KEY, account_sas};
use burst_store_sim::{BlobSim, Injected, SimRequest};

async fn sim_with_store(timeout_ms: u64) -> (BlobSim, Arc<dyn StateStore>) {
    let sim = BlobSim::start().await.unwrap();
    assert!(sim.create_container("state"));
    let url = sim.state_url("state");
    let timeout = timeout_ms.to_string();
    let get = move |k: &str| match k {
        "BURST_STATE_URL" => Some(url.clone()),
        "BURST_STATE_TIMEOUT_MS" => Some(timeout.clone()),
        _ => None,
    };
    let store = burst_store::from_settings(&get, None).unwrap().unwrap();
    (sim, store)
}

#[tokio::test]
async fn cas_basics() {
    let (_sim, store) = sim_with_store(5000).await;
    support::cas_basics(store.clone(), "home").await;
    support::rejects_bad_sites(store.clone()).await;
    support::conditional_loads(store, "cond").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_writers_lose_no_update() {
    let (sim, store) = sim_with_store(5000).await;
    let report = support::concurrent_appenders(store, "home", 16, 4).await;
    let puts: Vec<SimRequest> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    let conflicts = puts
        .iter()
        .filter(|r| r.status == 412 || r.status == 409)
        .count();
    assert_eq!(conflicts, report.conflicts);
    assert_eq!(
        puts.iter().filter(|r| r.status == 201).count(),
        report.updates
    );
    assert_eq!(
        puts.len(),
        report.updates + report.conflicts,
        "no other answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_race_has_one_winner() {
    let (sim, store) = sim_with_store(5000).await;
    support::create_race(store, "new-site", 16).await;
    let codes: Vec<Option<String>> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.error_code)
        .collect();
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 1);
    assert_eq!(
        codes
            .iter()
            .filter(|c| c.as_deref() == Some("BlobAlreadyExists"))
            .count(),
        15
    );
}

#[tokio::test]
async fn sends_the_documented_requests() {
    let (sim, store) = sim_with_store(5000).await;
    let v1 = store.save("home", br#"{"n":1}"#, None).await.unwrap();
    let loaded = store.load("home").await.unwrap().unwrap();
    assert_eq!(loaded.etag, v1);
    let v2 = store.save("home", br#"{"n":2}"#, Some(&v1)).await.unwrap();
    assert_eq!(store.load("nope").await, Ok(None));

    let path = "/devstoreaccount1/state/home.json";
    let req = |method: &str,
               path: &str,
               if_match: Option<&str>,
               if_none_match: Option<&str>,
               status: u16,
               code: Option<&str>| SimRequest {
        method: method.into(),
        path: path.into(),
        if_match: if_match.map(Into::into),
        if_none_match: if_none_match.map(Into::into),
        status,
        error_code: code.map(Into::into),
    };
    assert_eq!(
        sim.requests(),
        vec![
            req("PUT", path, None, Some("*"), 201, None),
            req("GET", path, None, None, 206, None),
            req("PUT", path, Some(&v1), None, 201, None),
            req(
                "GET",
                "/devstoreaccount1/state/nope.json",
                None,
                None,
                404,
                Some("BlobNotFound")
            ),
        ]
    );
    let stored = sim.blob("state", "home.json").unwrap();
    assert_eq!(stored.bytes, br#"{"n":2}"#);
    assert_eq!(stored.etag, v2);
    assert_eq!(stored.content_type, "application/json");
}

#[tokio::test]
async fn service_failures_come_back_at_once_without_retries() {
    let (sim, store) = sim_with_store(5000).await;
    let cases = [
        (503, Some("ServerBusy"), Some(30), "HTTP 503 ServerBusy"),
        (500, Some("InternalError"), None, "HTTP 500 InternalError"),
        (429, None, Some(60), "HTTP 429"),
        (
            408,
            Some("OperationTimedOut"),
            None,
            "HTTP 408 OperationTimedOut",
        ),
    ];
    for (status, code, retry_after, want) in cases {
        for save in [false, true] {
            let before = sim.requests().len();
            sim.fail_next(Injected {
                status,
                code: code.map(Into::into),
                retry_after,
            });
            let result = if save {
                store.save("home", b"{}", None).await.map(|_| ())
            } else {
                store.load("home").await.map(|_| ())
            };
            let op = if save { "save" } else { "load" };
            match result {
                Err(StoreError::Unavailable(msg)) => {
                    assert!(
                        msg.starts_with(&format!("{op} of site home: HTTP {status}")),
                        "{msg}"
                    );
                    if code.is_some() {
                        assert_eq!(msg, format!("{op} of site home: {want}"));
                    }
                }
                other => panic!("{status} on {op}: {other:?}"),
            }
            // Exactly one request: the SDK did not retry (and so did not sleep out Retry-After).
            assert_eq!(sim.requests().len(), before + 1, "{status} on {op}");
        }
    }
    // The service is fine again afterwards.
    assert_eq!(store.load("home").await, Ok(None));
}

#[tokio::test]
async fn slow_service_is_cut_off_by_the_timeout() {
    let (sim, store) = sim_with_store(200).await;
    sim.set_latency(Some(Duration::from_secs(3)));
    match store.load("home").await {
        Err(StoreError::Unavailable(msg)) => {
            assert!(msg.ends_with("timed out after 200 ms"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    sim.set_latency(None);
    assert_eq!(store.load("home").await, Ok(None));
}

#[tokio::test]
async fn permission_problems_are_refused() {
    let sim = BlobSim::start().await.unwrap();
    sim.create_container("state");
    let container = url::Url::parse(&format!("{}/state", sim.base_url())).unwrap();
    let timeout = Duration::from_secs(5);

    let wrong_key = account_sas(ACCOUNT, "d3Jvbmcta2V5", "rwdlac", "2099-01-01T00:00:00Z");
    let store = BlobStore::with_sas(container.clone(), &wrong_key, timeout).unwrap();
    assert_eq!(
        store.load("home").await,
        Err(StoreError::Refused(
            "load of site home: HTTP 403 AuthorizationFailure".into()
        ))
    );

    let expired = account_sas(ACCOUNT, ACCOUNT_KEY, "rwdlac", "2020-01-01T00:00:00Z");
    let store = BlobStore::with_sas(container.clone(), &expired, timeout).unwrap();
    assert_eq!(
        store.save("home", b"{}", None).await,
        Err(StoreError::Refused(
            "save of site home: HTTP 403 AuthorizationFailure".into()
        ))
    );

    let read_only = account_sas(ACCOUNT, ACCOUNT_KEY, "r", "2099-01-01T00:00:00Z");
    let store = BlobStore::with_sas(container.clone(), &read_only, timeout).unwrap();
    assert_eq!(store.load("home").await, Ok(None));
    assert_eq!(
        store.save("home", b"{}", None).await,
        Err(StoreError::Refused(
            "save of site home: HTTP 403 AuthorizationPermissionMismatch".into()
        ))
    );

    let other_container = url::Url::parse(&format!("{}/missing", sim.base_url())).unwrap();
    let store = BlobStore::with_sas(other_container, &sim.account_sas(), timeout).unwrap();
    assert_eq!(
        store.save("home", b"{}", None).await,
        Err(StoreError::Refused(
            "save of site home: HTTP 404 ContainerNotFound".into()
        ))
    );
    assert!(sim.blob("state", "home.json").is_none());
}

#[tokio::test]
async fn service_answers_map_to_what_the_caller_should_do() {
    let (sim, store) = sim_with_store(5000).await;
    let fail = |status: u16, code: Option<&str>| {
        sim.fail_next(Injected {
            status,
            code: code.map(Into::into),
            retry_after: None,
        })
    };
    // Lost races and writes to a blob deleted since it was read: reload and retry.
    for (status, code) in [
        (412, Some("ConditionNotMet")),
        (409, Some("BlobAlreadyExists")),
        (404, Some("BlobNotFound")),
    ] {
        fail(status, code);
        assert_eq!(
            store.save("home", b"{}", None).await,
            Err(StoreError::Conflict)
        );
    }
    // Passing trouble: try again later.
    fail(409, Some("ContainerBeingDeleted"));
    assert_eq!(
        store.save("home", b"{}", None).await,
        Err(StoreError::Unavailable(
            "save of site home: HTTP 409 ContainerBeingDeleted".into()
        ))
    );
    // The owner has to fix the setup.
    for (status, code, want) in [
        (401, None, "save of site home: HTTP 401"),
        (
            400,
            Some("InvalidHeaderValue"),
            "save of site home: HTTP 400 InvalidHeaderValue",
        ),
    ] {
        fail(status, code);
        assert_eq!(
            store.save("home", b"{}", None).await,
            Err(StoreError::Refused(want.into()))
        );
    }
    // A missing blob is no document; a missing container is a setup problem.
    fail(404, Some("BlobNotFound"));
    assert_eq!(store.load("home").await, Ok(None));
    fail(404, None);
    assert_eq!(store.load("home").await, Ok(None));
    fail(404, Some("ContainerNotFound"));
    assert_eq!(
        store.load("home").await,
        Err(StoreError::Refused(
            "load of site home: HTTP 404 ContainerNotFound".into()
        ))
    );
}

#[tokio::test]
async fn transport_errors_are_unavailable_and_never_show_the_sas() {
    // A port nothing listens on: the transport error quotes the request URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let container = url::Url::parse(&format!("http://127.0.0.1:{port}/acct/state")).unwrap();
    let sas = "sv=2025-11-05&sig=QUJD%2BREVG";
    let store = BlobStore::with_sas(container, sas, Duration::from_secs(5)).unwrap();
    match store.load("home").await {
        Err(StoreError::Unavailable(msg)) => {
            assert!(msg.starts_with("load of site home: "), "{msg}");
            assert!(!msg.contains("QUJD"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    let debug = format!("{store:?}");
    assert!(!debug.contains("QUJD"), "{debug}");
    assert_eq!(
        store.container_url(),
        format!("http://127.0.0.1:{port}/acct/state")
    );
}
