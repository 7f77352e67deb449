//! The blob store against the real Azure Storage emulator (Azurite, started per test on a free
//! loopback port), plus transport failures against local sockets.
//!
//! Without Node.js the Azurite tests print a note and pass, unless `CI` is set: then they fail.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use burst_store::{BlobStore, StateStore, StoreConfig, StoreError};
use burst_store_sim::azurite::{self, Azurite};
use url::Url;

async fn azurite() -> Option<Azurite> {
    match Azurite::start_for_tests().await {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    }
}

/// How many `PUT`s of `blob` Azurite's access log shows answered with `status`.
fn puts_answered(azurite: &Azurite, blob: &str, status: u16) -> usize {
    let path = format!("\"PUT /devstoreaccount1/state/{blob}?");
    let tail = format!("\" {status} ");
    azurite
        .log()
        .lines()
        .filter(|l| l.contains(&path) && l.contains(&tail))
        .count()
}

/// A store on a fresh container, opened through `BURST_STATE_URL` like the function app does.
async fn store_on(azurite: &Azurite, container: &str) -> Arc<dyn StateStore> {
    azurite.create_container(container).await.unwrap();
    let url = azurite.state_url(container);
    let get = |k: &str| (k == "BURST_STATE_URL").then(|| url.clone());
    let config = StoreConfig::from_settings(&get).unwrap().unwrap();
    assert!(matches!(config, StoreConfig::Blob { .. }), "{config:?}");
    burst_store::from_settings(&get, None).unwrap().unwrap()
}

#[tokio::test]
async fn azurite_cas_basics() {
    let Some(azurite) = azurite().await else {
        return;
    };
    let store = store_on(&azurite, "state").await;
    support::cas_basics(store.clone(), "home").await;
    support::rejects_bad_sites(store.clone()).await;
    support::conditional_loads(store, "cond").await;
    // The unchanged load was a GET answered 304 (no document sent).
    let log = azurite.log();
    assert!(
        log.lines()
            .any(|l| l.contains("\"GET /devstoreaccount1/state/cond") && l.contains("\" 304 ")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azurite_sixteen_concurrent_writers_lose_no_update() {
    let Some(azurite) = azurite().await else {
        return;
    };
    let store = store_on(&azurite, "state").await;
    let report = support::concurrent_appenders(store, "home", 16, 2).await;
    // Every conflict the store reported was a 412 (stale If-Match) or a 409 (lost the race to
    // create the document) from Azurite, and nothing else failed.
    let (stale, create_lost) = (
        puts_answered(&azurite, "home.json", 412),
        puts_answered(&azurite, "home.json", 409),
    );
    assert_eq!(stale + create_lost, report.conflicts);
    assert_eq!(puts_answered(&azurite, "home.json", 201), report.updates);
    println!(
        "azurite: {} updates by 16 tasks, {} conflicts retried ({stale} x 412, {create_lost} x 409)",
        report.updates, report.conflicts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azurite_create_race_has_one_winner() {
    let Some(azurite) = azurite().await else {
        return;
    };
    let store = store_on(&azurite, "state").await;
    let (winners, conflicts) = support::create_race(store, "new-site", 16).await;
    assert_eq!(puts_answered(&azurite, "new-site.json", 409), 15);
    assert_eq!(puts_answered(&azurite, "new-site.json", 201), 1);
    println!(
        "azurite create race: {winners} winner, {conflicts} conflicts (409 BlobAlreadyExists)"
    );
}

#[tokio::test]
async fn azurite_wrong_signature_is_refused() {
    let Some(azurite) = azurite().await else {
        return;
    };
    azurite.create_container("state").await.unwrap();
    // A SAS signed with some other key: Azurite answers 403 AuthenticationFailed.
    let other_key = "b3RoZXIta2V5LW5vdC10aGUtZGV2LWFjY291bnQta2V5LWF0LWFsbA==";
    let sas = azurite::account_sas(
        azurite::ACCOUNT,
        other_key,
        "rwdlac",
        "2099-01-01T00:00:00Z",
    );
    let store = BlobStore::with_sas(
        azurite.container_url("state").unwrap(),
        &sas,
        Duration::from_secs(5),
    )
    .unwrap();
    for result in [
        store.load("home").await.map(|_| ()),
        store.save("home", b"{}", None).await.map(|_| ()),
    ] {
        match result {
            Err(StoreError::Refused(msg)) => {
                assert!(msg.contains("403"), "{msg}");
                assert!(!msg.contains(sas.split("sig=").nth(1).unwrap()), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn azurite_missing_container_is_refused() {
    let Some(azurite) = azurite().await else {
        return;
    };
    let store = BlobStore::with_sas(
        azurite.container_url("no-such-container").unwrap(),
        &azurite.account_sas(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        store.load("home").await,
        Err(StoreError::Refused(
            "load of site home: HTTP 404 ContainerNotFound".into()
        ))
    );
    assert_eq!(
        store.save("home", b"{}", None).await,
        Err(StoreError::Refused(
            "save of site home: HTTP 404 ContainerNotFound".into()
        ))
    );
}

fn sas_store(port: u16, timeout: Duration) -> BlobStore {
    let url = Url::parse(&format!("http://127.0.0.1:{port}/devstoreaccount1/state")).unwrap();
    BlobStore::with_sas(url, "sv=2025-11-05&sig=c2VjcmV0LXNpZw%3D%3D", timeout).unwrap()
}

#[tokio::test]
async fn closed_port_is_unavailable_without_leaking_the_sas() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = sas_store(port, Duration::from_secs(5));
    for result in [
        store.load("home").await.map(|_| ()),
        store.save("home", b"{}", Some("\"0x1\"")).await.map(|_| ()),
    ] {
        match result {
            Err(StoreError::Unavailable(msg)) => {
                assert!(!msg.contains("c2VjcmV0"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn silent_server_times_out_as_unavailable() {
    // Accepts connections and never answers: the request must end at the configured bound.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let store = sas_store(port, Duration::from_millis(300));
    assert_eq!(
        store.load("home").await,
        Err(StoreError::Unavailable(
            "load of home.json from http://127.0.0.1:".to_owned()
                + &port.to_string()
                + "/devstoreaccount1/state timed out after 300 ms"
        ))
    );
    assert!(matches!(
        store.save("home", b"{}", None).await,
        Err(StoreError::Unavailable(msg)) if msg.ends_with("timed out after 300 ms")
    ));
    server.abort();
}

#[tokio::test]
async fn bad_site_names_are_refused_before_any_request() {
    // Port 9 on loopback has no server: any request would come back Unavailable, not Refused.
    let store: Arc<dyn StateStore> = Arc::new(sas_store(9, Duration::from_secs(5)));
    support::rejects_bad_sites_offline(store).await;
}
