//! Compare-and-swap scenarios shared by the file, memory and Azurite tests: each runs against
//! any `StateStore` and checks the outcome exactly.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use burst_store::{StateStore, StoreError, Versioned};
use serde_json::{Value, json};
use tokio::sync::Barrier;

/// What a run of [`concurrent_appenders`] saw.
#[derive(Debug)]
pub struct AppendReport {
    pub updates: usize,
    pub conflicts: usize,
    pub final_doc: Value,
}

/// `writers` tasks each append `rounds` ids (`"w<i>-<r>"`) to the document's `"ids"` list with
/// load → modify → CAS save, retrying on `Conflict`. Asserts that no update was lost.
pub async fn concurrent_appenders(
    store: Arc<dyn StateStore>,
    site: &str,
    writers: usize,
    rounds: usize,
) -> AppendReport {
    let barrier = Arc::new(Barrier::new(writers));
    let mut handles = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let site = site.to_owned();
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut conflicts = 0usize;
            for r in 0..rounds {
                let id = format!("w{w}-{r}");
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    assert!(attempts < 10_000, "{id}: no progress");
                    let current = store.load(&site).await.unwrap();
                    let (mut doc, expected) = match current {
                        Some(Versioned { bytes, etag }) => {
                            (serde_json::from_slice::<Value>(&bytes).unwrap(), Some(etag))
                        }
                        None => (json!({ "ids": [] }), None),
                    };
                    doc["ids"].as_array_mut().unwrap().push(json!(id));
                    let bytes = serde_json::to_vec(&doc).unwrap();
                    match store.save(&site, &bytes, expected.as_deref()).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict) => {
                            conflicts += 1;
                            tokio::task::yield_now().await;
                        }
                        Err(e) => panic!("{id}: {e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for h in handles {
        conflicts += h.await.unwrap();
    }
    let doc = store.load(site).await.unwrap().unwrap();
    let final_doc: Value = serde_json::from_slice(&doc.bytes).unwrap();
    let mut got: Vec<String> = final_doc["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..writers)
        .flat_map(|w| (0..rounds).map(move |r| format!("w{w}-{r}")))
        .collect();
    want.sort();
    assert_eq!(got, want, "lost or duplicated updates");
    AppendReport {
        updates: writers * rounds,
        conflicts,
        final_doc,
    }
}

/// `tasks` tasks create the same new site at once: exactly one wins, every other one gets
/// `Conflict`, and the stored document is the winner's. Returns (winners, conflicts).
pub async fn create_race(store: Arc<dyn StateStore>, site: &str, tasks: usize) -> (usize, usize) {
    let barrier = Arc::new(Barrier::new(tasks));
    let mut handles = Vec::new();
    for i in 0..tasks {
        let store = store.clone();
        let site = site.to_owned();
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            let body = serde_json::to_vec(&json!({ "creator": i })).unwrap();
            barrier.wait().await;
            (i, store.save(&site, &body, None).await)
        }));
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for h in handles {
        match h.await.unwrap() {
            (i, Ok(etag)) => winners.push((i, etag)),
            (_, Err(StoreError::Conflict)) => conflicts += 1,
            (i, Err(e)) => panic!("creator {i}: unexpected {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(conflicts, tasks - 1);
    let (winner, etag) = &winners[0];
    let stored = store.load(site).await.unwrap().unwrap();
    assert_eq!(stored.etag, *etag);
    assert_eq!(
        serde_json::from_slice::<Value>(&stored.bytes).unwrap(),
        json!({ "creator": winner })
    );
    (winners.len(), conflicts)
}

/// A missing site loads as `None`; creating it twice conflicts; a stale tag conflicts and
/// leaves the document as it was; the current tag works; bytes round-trip exactly.
pub async fn cas_basics(store: Arc<dyn StateStore>, site: &str) {
    assert_eq!(store.load(site).await, Ok(None));
    assert_eq!(
        store.save(site, b"{}", Some("no-such-version")).await,
        Err(StoreError::Conflict),
        "If-Match on a missing document must fail"
    );
    let v1 = store.save(site, br#"{"v":1}"#, None).await.unwrap();
    assert_eq!(
        store.save(site, br#"{"v":"again"}"#, None).await,
        Err(StoreError::Conflict)
    );
    let loaded = store.load(site).await.unwrap().unwrap();
    assert_eq!(
        loaded,
        Versioned {
            bytes: br#"{"v":1}"#.to_vec(),
            etag: v1.clone()
        }
    );

    let v2 = store.save(site, br#"{"v":2}"#, Some(&v1)).await.unwrap();
    assert_ne!(v2, v1);
    assert_eq!(
        store.save(site, br#"{"v":"stale"}"#, Some(&v1)).await,
        Err(StoreError::Conflict)
    );
    assert_eq!(
        store.load(site).await.unwrap().unwrap(),
        Versioned {
            bytes: br#"{"v":2}"#.to_vec(),
            etag: v2.clone()
        }
    );

    // Not JSON, not UTF-8, empty: the store keeps bytes, the caller interprets them.
    let odd: &[u8] = b"\x00\xff\xfe not json \n";
    let v3 = store.save(site, odd, Some(&v2)).await.unwrap();
    assert_eq!(store.load(site).await.unwrap().unwrap().bytes, odd);
    let v4 = store.save(site, b"", Some(&v3)).await.unwrap();
    assert_eq!(
        store.load(site).await.unwrap().unwrap(),
        Versioned {
            bytes: Vec::new(),
            etag: v4
        }
    );
}

/// Invalid site names and oversized documents are refused, and nothing was stored.
pub async fn rejects_bad_sites(store: Arc<dyn StateStore>) {
    rejects_bad_sites_offline(store.clone()).await;
    assert_eq!(store.load("big").await, Ok(None));
}

/// Invalid site names are refused before any IO, for load and save alike; so is a document
/// over the size limit.
pub async fn rejects_bad_sites_offline(store: Arc<dyn StateStore>) {
    for bad in [
        "",
        ".",
        "..",
        "../escape",
        "a/b",
        "a\\b",
        ".hidden",
        "a b",
        "ü",
    ] {
        assert!(
            matches!(store.load(bad).await, Err(StoreError::Refused(_))),
            "load {bad:?}"
        );
        assert!(
            matches!(
                store.save(bad, b"{}", None).await,
                Err(StoreError::Refused(_))
            ),
            "save {bad:?}"
        );
    }
    let too_big = vec![b' '; burst_store::MAX_DOCUMENT_BYTES + 1];
    assert!(matches!(
        store.save("big", &too_big, None).await,
        Err(StoreError::Refused(_))
    ));
}

/// A conditional load names the version it holds: unchanged → nothing downloaded; a newer
/// version → the document; no document → absent.
pub async fn conditional_loads(store: Arc<dyn StateStore>, site: &str) {
    use burst_store::Loaded;
    let first = store.save(site, br#"{"v":1}"#, None).await.unwrap();
    assert_eq!(
        store.load_if_changed(site, &first).await.unwrap(),
        Loaded::Unchanged
    );
    let second = store.save(site, br#"{"v":2}"#, Some(&first)).await.unwrap();
    match store.load_if_changed(site, &first).await.unwrap() {
        Loaded::Changed(v) => {
            assert_eq!(v.etag, second);
            assert_eq!(v.bytes, br#"{"v":2}"#);
        }
        other => panic!("expected the new version, got {other:?}"),
    }
    assert_eq!(
        store.load_if_changed("nobody", &second).await.unwrap(),
        Loaded::Absent
    );
}
