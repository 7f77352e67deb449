//! The state stores' test doubles, for tests and the emulator.
//!
//! - [`MemoryStore`]: a [`StateStore`] in memory with exactly the file and blob stores'
//!   compare-and-swap rules, plus failure injection and inspection, for tests of other crates
//!   and the emulator's simulated cloud.
//! - [`blob::BlobSim`]: a simulated Azure Blob service (the subset the store uses) on a
//!   loopback port, with failure injection (5xx, 429, latency) and request inspection;
//! - [`azurite`]: starts the real Azure Storage emulator (npm `azurite`, pinned in
//!   `tests/azurite/`) on a free loopback port and signs account SASes for its well-known dev
//!   account, so [`burst_store::BlobStore`] is tested against the real protocol.

pub mod azurite;
pub mod blob;

pub use blob::{BlobSim, Injected, SimBlob, SimRequest};

use std::collections::BTreeMap;
use std::sync::MutexGuard;

use async_trait::async_trait;
use burst_ports::{Loaded, Saved, StateStore, StoreError, Versioned};
use burst_sim_kit::{FaultQueue, Shared};

use burst_store::{check_size, validate_site};

/// Which operation a queued failure applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Load,
    Save,
}

/// Counters of what the store was asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub loads: u64,
    pub saves: u64,
    /// Saves refused with `Conflict` by the CAS rule (injected failures are not counted).
    pub conflicts: u64,
    pub injected: u64,
}

impl Inner {
    /// Stores a new version of `site` under a tag never used before; returns the tag.
    fn store(&mut self, site: &str, bytes: &[u8]) -> String {
        self.generation += 1;
        let etag = format!("g{}", self.generation);
        let version = Versioned {
            bytes: bytes.to_vec(),
            etag: etag.clone(),
        };
        self.docs.insert(site.to_owned(), version);
        etag
    }
}

#[derive(Debug, Default)]
struct Inner {
    docs: BTreeMap<String, Versioned>,
    generation: u64,
    failures: FaultQueue<Operation, StoreError>,
    stats: Stats,
}

/// Per-site documents in memory, with compare-and-swap. Clones share the same documents.
///
/// Version tags are a store-wide generation counter (`"g1"`, `"g2"`, ...), so a tag is never
/// reused, like a blob ETag.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Shared<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// The next `op` fails with `error` (queued in order; one entry per call).
    pub fn fail_next(&self, op: Operation, error: StoreError) {
        self.lock().failures.push(op, 1, error);
    }

    /// Removes every queued failure.
    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    /// The stored document of `site`, if any.
    pub fn get(&self, site: &str) -> Option<Versioned> {
        self.lock().docs.get(site).cloned()
    }

    /// Looks at the stored document of `site` without copying it.
    pub fn with_doc<T>(&self, site: &str, f: impl FnOnce(&Versioned) -> T) -> Option<T> {
        self.lock().docs.get(site).map(f)
    }

    /// Replaces a document behind the callers' backs (a concurrent writer); returns its tag.
    pub fn put(&self, site: &str, bytes: &[u8]) -> String {
        self.lock().store(site, bytes)
    }

    /// Deletes a document; returns whether it existed.
    pub fn remove(&self, site: &str) -> bool {
        self.lock().docs.remove(site).is_some()
    }

    /// The sites that have a document, sorted.
    pub fn sites(&self) -> Vec<String> {
        self.lock().docs.keys().cloned().collect()
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    fn injected(inner: &mut Inner, op: Operation) -> Option<StoreError> {
        let error = inner.failures.take(|o| *o == op)?;
        inner.stats.injected += 1;
        Some(error)
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn load(&self, site: &str) -> Result<Option<Versioned>, StoreError> {
        validate_site(site)?;
        let mut inner = self.lock();
        inner.stats.loads += 1;
        if let Some(error) = Self::injected(&mut inner, Operation::Load) {
            return Err(error);
        }
        Ok(inner.docs.get(site).cloned())
    }

    /// Like a blob GET with `If-None-Match`: nothing is copied when the caller's version is
    /// current.
    async fn load_if_changed(&self, site: &str, known: &str) -> Result<Loaded, StoreError> {
        validate_site(site)?;
        let mut inner = self.lock();
        inner.stats.loads += 1;
        if let Some(error) = Self::injected(&mut inner, Operation::Load) {
            return Err(error);
        }
        Ok(match inner.docs.get(site) {
            None => Loaded::Absent,
            Some(v) if v.etag == known => Loaded::Unchanged,
            Some(v) => Loaded::Changed(v.clone()),
        })
    }

    async fn save(&self, site: &str, bytes: &[u8], tag: Option<&str>) -> Saved {
        validate_site(site)?;
        check_size(bytes)?;
        let mut inner = self.lock();
        inner.stats.saves += 1;
        if let Some(error) = Self::injected(&mut inner, Operation::Save) {
            return Err(error);
        }
        // No tag saves only where there is no document; a tag only over that version.
        if tag != inner.docs.get(site).map(|v| v.etag.as_str()) {
            inner.stats.conflicts += 1;
            return Err(StoreError::Conflict);
        }
        Ok(inner.store(site, bytes))
    }
}

/// Any store, with a log of its saves: which site, and when (tests and benches look at the
/// order in which sites were decided).
#[derive(Debug)]
pub struct RecordSaves<S> {
    pub inner: S,
    saves: std::sync::Mutex<Vec<(String, std::time::Instant)>>,
}

impl<S> RecordSaves<S> {
    pub fn new(inner: S) -> Self {
        RecordSaves {
            inner,
            saves: Default::default(),
        }
    }

    /// Every save so far, in order.
    pub fn saves(&self) -> Vec<(String, std::time::Instant)> {
        self.saves.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The sites saved so far, in order, a site saved several times in a row once.
    pub fn order(&self) -> Vec<String> {
        let mut sites: Vec<String> = self.saves().into_iter().map(|(s, _)| s).collect();
        sites.dedup();
        sites
    }
}

#[async_trait]
impl<S: StateStore> StateStore for RecordSaves<S> {
    async fn load(&self, site: &str) -> Result<Option<Versioned>, StoreError> {
        self.inner.load(site).await
    }

    async fn load_if_changed(&self, site: &str, known: &str) -> Result<Loaded, StoreError> {
        self.inner.load_if_changed(site, known).await
    }

    async fn save(&self, site: &str, bytes: &[u8], expected: Option<&str>) -> Saved {
        let tag = self.inner.save(site, bytes, expected).await?;
        let mut saves = self.saves.lock().unwrap_or_else(|e| e.into_inner());
        saves.push((site.to_string(), std::time::Instant::now()));
        Ok(tag)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn cas_rules() {
        let store = MemoryStore::new();
        assert_eq!(store.load("home").await, Ok(None));
        assert_eq!(
            store.save("home", b"x", Some("g0")).await,
            Err(StoreError::Conflict)
        );
        let t1 = store.save("home", b"{\"n\":1}", None).await.unwrap();
        assert_eq!(t1, "g1");
        assert_eq!(
            store.save("home", b"y", None).await,
            Err(StoreError::Conflict)
        );
        let t2 = store.save("home", b"{\"n\":2}", Some(&t1)).await.unwrap();
        assert_eq!(t2, "g2");
        assert_eq!(
            store.save("home", b"z", Some(&t1)).await,
            Err(StoreError::Conflict)
        );
        assert_eq!(
            store.load("home").await.unwrap(),
            Some(Versioned {
                bytes: b"{\"n\":2}".to_vec(),
                etag: "g2".into()
            })
        );
        // Same bytes again still get a new tag: a stale tag never matches.
        let t3 = store.save("home", b"{\"n\":2}", Some(&t2)).await.unwrap();
        assert_ne!(t3, t2);
        assert_eq!(
            store.stats(),
            Stats {
                loads: 2,
                saves: 6,
                conflicts: 3,
                injected: 0
            }
        );
    }

    #[tokio::test]
    async fn injected_failures_are_consumed_in_order() {
        let store = MemoryStore::new();
        store.fail_next(Operation::Save, StoreError::Unavailable("down".into()));
        store.fail_next(Operation::Load, StoreError::Refused("403".into()));
        assert_eq!(
            store.load("a").await,
            Err(StoreError::Refused("403".into()))
        );
        assert_eq!(store.load("a").await, Ok(None));
        assert_eq!(
            store.save("a", b"1", None).await,
            Err(StoreError::Unavailable("down".into()))
        );
        assert_eq!(store.save("a", b"1", None).await.unwrap(), "g1");
        assert_eq!(store.stats().injected, 2);
        assert_eq!(store.sites(), vec!["a".to_owned()]);
    }

    #[tokio::test]
    async fn concurrent_writer_makes_tag_stale() {
        let store = MemoryStore::new();
        let t = store.save("a", b"1", None).await.unwrap();
        let other = store.put("a", b"2");
        assert_eq!(
            store.save("a", b"3", Some(&t)).await,
            Err(StoreError::Conflict)
        );
        assert_eq!(store.save("a", b"3", Some(&other)).await.unwrap(), "g3");
        assert!(store.remove("a"));
        assert_eq!(store.get("a"), None);
    }

    #[tokio::test]
    async fn bad_site_names_are_refused() {
        let store = MemoryStore::new();
        assert!(matches!(
            store.load("../x").await,
            Err(StoreError::Refused(_))
        ));
        assert!(matches!(
            store.save("", b"1", None).await,
            Err(StoreError::Refused(_))
        ));
        assert_eq!(store.stats(), Stats::default());
    }
}
