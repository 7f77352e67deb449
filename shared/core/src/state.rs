//! The per-site state document. It is plain data, stored as JSON with optimistic
//! concurrency by the shell; everything in it is derived from inputs, never from a clock.

use crate::action::{Severity, Tier};
use crate::input::NodeCount;
use crate::nut::{NotifyType, UpsStatus};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Bumped when the document's shape changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteState {
    pub schema: u32,
    pub site: String,
    pub mode: Mode,
    pub mode_since: Timestamp,
    /// The latest `now` seen; time never runs backwards for the core.
    pub clock: Timestamp,
    pub signals: Signals,
    /// When each Down condition began (for grace periods).
    pub trouble: Trouble,
    pub capacity: CapacityState,
    pub placement: Placements,
    /// Open incidents and resolved ones whose last update is not delivered yet (oldest first).
    pub incidents: Vec<Incident>,
    pub incidents_opened: u64,
    /// Separate short messages waiting for delivery (oldest first).
    pub posts: Vec<Post>,
    pub posts_created: u64,
    pub notify_retry_at: Option<Timestamp>,
    /// Actions handed to the shell whose outcome has not come back yet.
    pub in_flight: InFlight,
    /// Set when Discord said the webhook is gone (401/404); shown by `status`.
    pub webhook_gone: Option<String>,
    pub budget: Budget,
    pub warnings: Warnings,
    /// Recently seen event keys (ids, jtis, hashes) → when they may be forgotten.
    pub seen: BTreeMap<String, Timestamp>,
    pub audit: Vec<AuditEntry>,
    /// The lease last granted to the agent (lease fence of the stateful tier); `None` while the
    /// agent never asked for one.
    #[serde(default)]
    pub lease: Option<Lease>,
    /// The wake-up the shell last asked the platform for (a queue message due then). The core
    /// never reads it; the shell keeps at most one pending wake-up per site and instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<Timestamp>,
}

/// A lease granted with an accepted heartbeat. The agent fences the home stateful tier when it
/// cannot renew before expiry; the cloud moves that tier only once the lease expired more than
/// `lease_margin_s` ago.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub granted_at: Timestamp,
    pub expires_at: Timestamp,
}

impl SiteState {
    pub fn new(site: impl Into<String>, now: Timestamp) -> SiteState {
        SiteState {
            schema: SCHEMA_VERSION,
            site: site.into(),
            mode: Mode::Healthy,
            mode_since: now,
            clock: now,
            signals: Signals::default(),
            trouble: Trouble::default(),
            capacity: CapacityState::default(),
            placement: Placements::default(),
            incidents: Vec::new(),
            incidents_opened: 0,
            posts: Vec::new(),
            posts_created: 0,
            notify_retry_at: None,
            in_flight: InFlight::default(),
            webhook_gone: None,
            budget: Budget::default(),
            warnings: Warnings::default(),
            seen: BTreeMap::new(),
            audit: Vec::new(),
            lease: None,
            wake_at: None,
        }
    }

    /// The JSON form stored by the shells.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<SiteState, StateError> {
        // The version first (skipping the rest without building it), so an old or newer
        // document is reported as such rather than as a field error.
        #[derive(serde::Deserialize)]
        struct Version {
            #[serde(default)]
            schema: serde_json::Value,
        }
        let version: Version =
            serde_json::from_slice(bytes).map_err(|e| StateError::Malformed(e.to_string()))?;
        let schema = version.schema.as_u64().unwrap_or(0);
        if schema != u64::from(SCHEMA_VERSION) {
            return Err(StateError::Schema(schema));
        }
        serde_json::from_slice(bytes).map_err(|e| StateError::Malformed(e.to_string()))
    }

    /// The open (unresolved) incident, if any.
    pub fn open_incident(&self) -> Option<&Incident> {
        self.incidents.iter().find(|i| i.resolved_at.is_none())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The stored document is not valid JSON of the expected shape: do not overwrite it blindly.
    #[error("state document is malformed: {0}")]
    Malformed(String),
    /// Written by another version of the schema.
    #[error("state document has schema version {0}, this build reads {SCHEMA_VERSION}")]
    Schema(u64),
}

/// The site state machine (see [`crate::mode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Healthy,
    Suspect,
    Outage,
    Recovering,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Healthy => "healthy",
            Mode::Suspect => "suspect",
            Mode::Outage => "outage",
            Mode::Recovering => "recovering",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Up, Down or Unknown. Unknown is never counted as Down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Up,
    Down,
    #[default]
    Unknown,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    pub power: PowerSignal,
    pub heartbeat: HeartbeatSignal,
    pub probe: ProbeSignal,
    pub devices: DevicesSignal,
    pub witness: WitnessSignal,
    pub scale_set: ScaleSetSignal,
}

/// Why power counts as critical: go to Outage at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Critical {
    LowBattery,
    ForcedShutdown,
    Shutdown,
}

impl Critical {
    pub fn as_str(self) -> &'static str {
        match self {
            Critical::LowBattery => "low battery",
            Critical::ForcedShutdown => "forced shutdown (FSD)",
            Critical::Shutdown => "UPS shutdown",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PowerSignal {
    /// The current reading: Unknown while the UPS link is lost (COMMBAD/NOCOMM).
    pub health: Health,
    /// Set while on battery with LB, or after FSD / SHUTDOWN.
    pub critical: Option<Critical>,
    /// The last real reading (on line / on battery), kept through a lost UPS link: mode
    /// decisions keep it (see `assess`). Unknown only while no reading ever arrived.
    #[serde(default)]
    pub known: Health,
    #[serde(default)]
    pub known_critical: Option<Critical>,
    /// The reading was taken before a silence of the agent began: it proves nothing about now
    /// (never "power back") until a new reading arrives.
    #[serde(default)]
    pub stale: bool,
    pub status: UpsStatus,
    pub last_type: Option<NotifyType>,
    /// Agent time of the newest event applied (older, reordered events are recorded, not applied).
    pub event_at: Option<Timestamp>,
    pub ups: Option<String>,
    pub battery_charge: Option<f64>,
    pub battery_runtime_s: Option<u64>,
    /// When the runtime above arrived (cloud time): it counts down from then.
    #[serde(default)]
    pub runtime_at: Option<Timestamp>,
    /// Unknown tokens/types seen, kept for display.
    pub unknown: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatSignal {
    /// When the last heartbeat was received (cloud time).
    pub received_at: Option<Timestamp>,
    pub event_at: Option<Timestamp>,
    pub nodes: Option<NodeCount>,
    pub api_ok: bool,
    /// A heartbeat ever carried an inside view of the cluster (nodes or a working API): the
    /// agent has a kube source, so recovery waits for it.
    #[serde(default)]
    pub inside_seen: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeSignal {
    pub last_at: Option<Timestamp>,
    /// Since when the home API has answered ready without a break.
    pub up_since: Option<Timestamp>,
    /// Up: /readyz ok; Down: unreachable or not ready; Unknown: the probe says nothing.
    pub api: Health,
    pub failing_since: Option<Timestamp>,
    pub consecutive_failures: u32,
    pub nodes: Option<NodeCount>,
    pub nodes_at: Option<Timestamp>,
    pub latency_ms: Option<u64>,
    pub detail: Option<String>,
    /// The probe ever got an answer from home's API (ready or not): it is configured and
    /// recovery waits for it.
    #[serde(default)]
    pub api_seen: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DevicesSignal {
    /// Up: at least one on-prem device connected; Down: none for the persistence (see policy).
    pub health: Health,
    pub online: Option<u32>,
    pub total: Option<u32>,
    /// Device checks in a row that saw every on-prem device disconnected.
    pub offline_streak: u32,
    #[serde(default)]
    pub offline_since: Option<Timestamp>,
    /// When the device list was last read.
    #[serde(default)]
    pub seen_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WitnessSignal {
    pub reachable: Option<bool>,
    pub received_at: Option<Timestamp>,
    pub event_at: Option<Timestamp>,
    pub target: Option<String>,
    pub latency_ms: Option<u64>,
    /// Reports in a row that could not reach home, and since when.
    #[serde(default)]
    pub down_streak: u32,
    #[serde(default)]
    pub down_since: Option<Timestamp>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScaleSetSignal {
    pub capacity: Option<u32>,
    pub running: Option<u32>,
    pub seen_at: Option<Timestamp>,
}

/// When each kind of action was last handed out without an outcome yet. Not re-issued while in
/// flight; re-issued after `action_timeout_s` (the shell crashed or lost the outcome).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InFlight {
    pub scale: Option<Timestamp>,
    pub notify: Option<Timestamp>,
    pub critical: Option<Timestamp>,
    pub stateful: Option<Timestamp>,
}

impl InFlight {
    pub fn migrate_mut(&mut self, tier: Tier) -> &mut Option<Timestamp> {
        match tier {
            Tier::Critical => &mut self.critical,
            Tier::Stateful => &mut self.stateful,
        }
    }
    pub fn migrate(&self, tier: Tier) -> Option<Timestamp> {
        match tier {
            Tier::Critical => self.critical,
            Tier::Stateful => self.stateful,
        }
    }
}

/// Whether an action handed out at `since` still counts as in flight at `now`.
pub fn busy(since: Option<Timestamp>, now: Timestamp, timeout_s: u64) -> bool {
    since.is_some_and(|t| !now.elapsed_at_least(t, timeout_s))
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trouble {
    pub power_down_since: Option<Timestamp>,
    pub nodes_missing_since: Option<Timestamp>,
    /// Since when the power reading is not current (UPS link lost, or stale after a silence)
    /// while every other signal is up: after `power_unknown_max_s` recovery may go on.
    #[serde(default)]
    pub power_unknown_since: Option<Timestamp>,
    /// What went wrong since the site left Healthy (so recovery names what came back).
    #[serde(default)]
    pub causes: Causes,
}

/// The Down conditions seen since the site last was Healthy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Causes {
    pub power: bool,
    pub unreachable: bool,
    pub api: bool,
    pub nodes: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CapacityState {
    /// What the core wants the scale set to ask for.
    pub desired: u32,
    pub reason: String,
    /// The scale set's `sku.capacity` as last read or written; `None` = unknown (re-read first).
    pub current: Option<u32>,
    /// Not before this time (429 Retry-After, conflict backoff, failure retry).
    pub retry_at: Option<Timestamp>,
    pub conflicts: u32,
    /// Whether the owner was already told that scaling fails (one ping per failure streak).
    pub failure_reported: bool,
    pub writes: u64,
    /// What the scale set's boot times have been (write → instances running).
    #[serde(default)]
    pub boot: BootTimes,
    /// No scale set is configured (shown in the status); cleared when a probe sees one.
    #[serde(default)]
    pub not_applicable: Option<String>,
}

/// Measured boot times of the scale set: the last few samples and the write being timed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BootTimes {
    /// Seconds from an accepted scale-up to all its instances running, newest last.
    pub samples_s: Vec<u32>,
    /// A scale-up being timed: when it was accepted and the capacity it asked for.
    pub pending: Option<(Timestamp, u32)>,
}

/// Where a tier's workloads are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    #[default]
    Home,
    Cloud,
    /// A move failed part-way: some workloads may run in the cloud. Treated as "maybe in the
    /// cloud" (capacity held, moved home on recovery) and retried towards where it should be.
    Unsure,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TierPlacement {
    pub side: Side,
    pub retry_at: Option<Timestamp>,
    pub failures: u32,
    /// Moves are not possible (no cloud cluster configured); cleared when the site is Healthy.
    #[serde(default)]
    pub not_applicable: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Placements {
    pub critical: TierPlacement,
    pub stateful: TierPlacement,
}

impl Placements {
    pub fn get(&self, tier: Tier) -> &TierPlacement {
        match tier {
            Tier::Critical => &self.critical,
            Tier::Stateful => &self.stateful,
        }
    }
    pub fn get_mut(&mut self, tier: Tier) -> &mut TierPlacement {
        match tier {
            Tier::Critical => &mut self.critical,
            Tier::Stateful => &mut self.stateful,
        }
    }
    pub fn any_in_cloud(&self) -> bool {
        self.critical.side != Side::Home || self.stateful.side != Side::Home
    }
}

/// One incident = one Discord message, created once and edited as the incident evolves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub opened_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub title: String,
    pub severity: Severity,
    pub lines: Vec<String>,
    /// Bumped at every change; the message is up to date when `delivered == revision`.
    pub revision: u64,
    pub delivered: u64,
    pub message_id: Option<String>,
}

/// A short separate message (budget alert, failure, warning).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Post {
    pub key: String,
    pub created_at: Timestamp,
    pub title: String,
    pub severity: Severity,
    pub lines: Vec<String>,
    pub ping: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// The calendar month (UTC) the spend belongs to.
    pub period: Option<(i32, u32)>,
    pub spent_usd: f64,
    pub accrued_until: Option<Timestamp>,
    /// Alert thresholds (percent) already announced this month.
    pub alerted: Vec<u32>,
    pub capped: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Warnings {
    /// The cloud cannot reach home while heartbeats arrive (do not burst).
    pub path_broken_warned_at: Option<Timestamp>,
    pub path_broken: bool,
    /// Heartbeats overdue while the probe is fine (the agent is broken).
    pub agent_broken_warned_at: Option<Timestamp>,
    pub agent_broken: bool,
    /// Capacity written but its instances still not running long after the learned boot time
    /// (Spot capacity, quota, a stuck allocation).
    #[serde(default)]
    pub nodes_stuck: bool,
}

/// "Why is capacity 4?" — one line per decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub what: String,
    pub why: String,
}
