//! The in-memory store (burst-store-sim) follows the same CAS rules as the real stores.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use burst_store_sim::MemoryStore;

#[tokio::test]
async fn cas_basics() {
    support::cas_basics(Arc::new(MemoryStore::new()), "home").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_writers_lose_no_update() {
    let store = MemoryStore::new();
    let report = support::concurrent_appenders(Arc::new(store.clone()), "home", 16, 4).await;
    let stats = store.stats();
    assert_eq!(stats.conflicts as usize, report.conflicts);
    // One successful save per update plus one per conflict.
    assert_eq!(stats.saves as usize, report.updates + report.conflicts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_race_has_one_winner() {
    support::create_race(Arc::new(MemoryStore::new()), "new-site", 16).await;
}

#[tokio::test]
async fn bad_site_names() {
    let store = MemoryStore::new();
    support::rejects_bad_sites(Arc::new(store.clone())).await;
    assert!(store.sites().is_empty());
}
