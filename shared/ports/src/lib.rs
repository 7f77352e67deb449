//! Ports: the traits between the function bodies and the outside world.
//!
//! Each adapter crate (`burst-arm`, `burst-discord`, `burst-tailscale`, `burst-kube`,
//! `burst-store`, and the AWS ones) implements one of these; the function bodies only see the
//! traits, so they run unchanged on Azure Functions and AWS Lambda, against real services or
//! the simulated cloud. Results are the decision core's outcome types: adapters classify what
//! happened (retry later, re-read and re-decide, give up and tell the owner), the core decides.

use async_trait::async_trait;
use burst_core::{
    ApiProbe, DevicesProbe, Direction, MigrateResult, NodeCount, Notification, NotifyResult,
    ScaleResult, ScaleSetProbe, Tier,
};

/// The cloud capacity: an Azure VM Scale Set or an AWS Auto Scaling group.
#[async_trait]
pub trait Scaler: Send + Sync {
    /// Reads the capacity asked for and the instances really running. Errors → `Unknown`.
    async fn observe(&self) -> ScaleSetProbe;
    /// Reads the current capacity, then writes `capacity` with optimistic concurrency (ARM:
    /// `If-Match`), skipping the write if already equal. Never writes if the read failed; never
    /// sleeps out a throttle (returns `Throttled` with the wait instead).
    async fn set_capacity(&self, capacity: u32) -> ScaleResult;
}

/// The owner's channel (Discord webhook).
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn send(&self, notification: &Notification) -> NotifyResult;
}

/// The home Kubernetes API as seen from the cloud.
#[async_trait]
pub trait HomeProbe: Send + Sync {
    /// `/readyz` and node counts, with a short timeout; transport errors → `Unreachable`,
    /// our own misconfiguration (401/403) → `Unknown`.
    async fn observe(&self) -> ApiProbe;
}

/// The on-prem devices in the tailnet.
#[async_trait]
pub trait DeviceList: Send + Sync {
    async fn observe(&self) -> DevicesProbe;
}

/// Workload placement on the cloud cluster.
#[async_trait]
pub trait Migrator: Send + Sync {
    /// Scales the tier's labelled Deployments/StatefulSets to their annotated replica count
    /// (`ToCloud`) or to 0 (`ToHome`).
    async fn migrate(&self, tier: Tier, direction: Direction) -> MigrateResult;
}

/// A stored document and its version tag (blob ETag, S3 ETag, file generation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub bytes: Vec<u8>,
    pub etag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Someone else wrote first (412 / 409 on create): reload, re-decide, retry.
    #[error("the document changed since it was read")]
    Conflict,
    /// The store could not be reached or answered 5xx/429: try again later.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// Configuration or permission problem (401/403, bad URL): tell the owner.
    #[error("state store refused: {0}")]
    Refused(String),
}

/// What a conditional load found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// Still the version the caller holds: nothing was downloaded.
    Unchanged,
    Absent,
    Changed(Versioned),
}

/// What a save gives: the document's new version tag, or why it was not written.
pub type Saved = Result<String, StoreError>;

/// Per-site state documents with compare-and-swap.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The document for `site`, or `None` if it does not exist yet.
    async fn load(&self, site: &str) -> Result<Option<Versioned>, StoreError>;
    /// Like `load`, but a store that can ask "only if not `known`" (HTTP `If-None-Match`)
    /// skips the download when the caller's version is current.
    async fn load_if_changed(&self, site: &str, known: &str) -> Result<Loaded, StoreError> {
        Ok(match self.load(site).await? {
            None => Loaded::Absent,
            Some(v) if v.etag == known => Loaded::Unchanged,
            Some(v) => Loaded::Changed(v),
        })
    }
    /// Writes the document if its version is still `expected` (`None` = create only if absent).
    /// Returns the new version tag.
    async fn save(&self, site: &str, bytes: &[u8], expected: Option<&str>) -> Saved;
}

/// Scheduled wake-ups: one invocation of the `wake` function for `site` at (or just after)
/// `at`, so deadlines are acted on when they fall instead of at the next probe.
#[async_trait]
pub trait Waker: Send + Sync {
    /// Asks for a wake-up `delay` from now (a queue message that becomes visible then). The
    /// platform may deliver it more than once or a little late; the `wake` function checks
    /// what is due. An error means no wake-up was scheduled (the timer probe still comes).
    async fn schedule(&self, wake: &WakeUp, delay: std::time::Duration) -> Result<(), String>;
}

/// What a wake-up message carries: the site and the instant it was asked for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WakeUp {
    pub site: String,
    /// Unix milliseconds (the core's clock).
    pub at: i64,
    /// Not a deadline but the timer probe's share for this site (`BURST_PROBE_FANOUT=queue`):
    /// observe the site now. Absent in deadline messages.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probe: bool,
}

/// Handy for fakes: a node count.
pub fn nodes(ready: u32, total: u32) -> NodeCount {
    NodeCount { ready, total }
}
