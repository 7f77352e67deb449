//! Everything that can happen to a site, as the core receives it.
//!
//! The shells (functions, drills) turn HTTP payloads, probe results and adapter outcomes into
//! these values; the core never sees a request or a socket.

use crate::action::{Direction, Tier};
use crate::nut::{NotifyType, UpsStatus};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// One input to [`crate::step`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// A NUT event pushed by the on-prem agent.
    Ups(UpsEvent),
    /// The agent's periodic inside view.
    Heartbeat(Heartbeat),
    /// The timer probe's pull view (home API, Tailscale devices, scale set).
    Probe(ProbeReport),
    /// One Tailscale webhook event (a delivery may carry several; each is one input).
    Tailscale(TailscaleEvent),
    /// A witness in a third place says whether it can reach home.
    Witness(WitnessReport),
    /// What happened when the shell carried out an action.
    Outcome(Outcome),
    /// Time passed; re-evaluate deadlines and retries.
    Tick,
}

impl Input {
    /// The key under which a repeat of this input is recognised (and ignored), and whether the
    /// input is a periodic snapshot (remembered briefly: a late copy of an old snapshot is
    /// already ignored because a newer one was applied).
    pub fn dedupe_key(&self) -> Option<(String, bool)> {
        match self {
            Input::Ups(e) => Some((format!("ups:{}", e.id), false)),
            Input::Heartbeat(h) => Some((format!("hb:{}", h.id), true)),
            Input::Witness(w) => Some((format!("witness:{}", w.id), true)),
            Input::Tailscale(t) => Some((format!("ts:{}", t.hash), false)),
            Input::Probe(_) | Input::Outcome(_) | Input::Tick => None,
        }
    }
}

/// A UPS event (`POST /api/ups`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpsEvent {
    pub id: String,
    /// When the agent saw it (used for ordering: NOTIFYCMD calls race each other).
    pub at: Timestamp,
    pub ups: String,
    #[serde(rename = "type")]
    pub notify: NotifyType,
    /// `ups.status` tokens at the time; empty when upsd could not be asked (power Unknown).
    pub status: UpsStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_charge: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_runtime_s: Option<u64>,
}

/// A heartbeat (`POST /api/heartbeat`): the agent's view from inside the home cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub id: String,
    pub at: Timestamp,
    pub nodes_ready: u32,
    pub nodes_total: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ups_status: Option<UpsStatus>,
    /// The battery as upsd reported it at this beat (while on battery it counts down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_charge: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_runtime_s: Option<u64>,
    pub api_ok: bool,
    /// The agent holds a lease and fences the home stateful tier when it cannot renew it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lease: bool,
}

/// A witness report (`POST /api/witness`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WitnessReport {
    pub id: String,
    pub at: Timestamp,
    pub target: String,
    pub reachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// A Tailscale webhook event. Events carry no id: `hash` is a digest of the whole event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TailscaleEvent {
    pub hash: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: Option<Timestamp>,
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// What the home Kubernetes API probe saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApiProbe {
    /// `/readyz` answered ok.
    Ready {
        latency_ms: u64,
        /// Node counts, when the node list could be read.
        #[serde(default)]
        nodes: Option<NodeCount>,
    },
    /// The API answered but is not ready.
    NotReady { detail: String },
    /// No answer (timeout, refused, DNS): the cloud's path to home fails.
    Unreachable { detail: String },
    /// The probe says nothing about home (not configured, our credentials rejected...).
    Unknown { detail: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCount {
    pub ready: u32,
    pub total: u32,
}

/// The on-prem devices in Tailscale's device list (`connectedToControl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DevicesProbe {
    Seen { online: u32, total: u32 },
    Unknown { detail: String },
}

/// The scale set as ARM reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ScaleSetProbe {
    /// `sku.capacity` and the instances that really run (spot: they differ).
    Seen {
        capacity: u32,
        running: u32,
    },
    Unknown {
        detail: String,
    },
}

/// One run of the timer probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub home_api: ApiProbe,
    pub devices: DevicesProbe,
    pub scale_set: ScaleSetProbe,
}

/// The result of an action, fed back so the core can decide what next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Outcome {
    Scale {
        requested: u32,
        result: ScaleResult,
    },
    Notify {
        /// The notification's key (incident id, or the ping's key).
        key: String,
        result: NotifyResult,
    },
    Migrate {
        tier: Tier,
        direction: Direction,
        result: MigrateResult,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ScaleResult {
    /// The write was accepted (or not needed): the scale set now asks for `capacity`.
    Accepted { capacity: u32, running: Option<u32> },
    /// 409 / 412 / OperationPreempted: re-read and re-decide.
    Conflict { detail: String },
    /// 429: try again after this long, not before.
    Throttled { retry_after_s: u64 },
    /// The current value could not be read, so nothing was written.
    ReadFailed { detail: String },
    /// Any other failure.
    Failed { detail: String },
    /// No scale set is configured: nothing to write. Not retried until a probe sees one.
    NotApplicable { detail: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum NotifyResult {
    /// Delivered; for a created message, its id.
    Delivered { message_id: Option<String> },
    /// 429: deliver later.
    RateLimited { retry_after_ms: u64 },
    /// 401/404: the webhook is gone; stop using it.
    WebhookGone { detail: String },
    /// The incident's message was deleted in the channel: post a new one for the next update.
    MessageGone { detail: String },
    /// 400 (our message was refused) or a transport error.
    Failed { detail: String, retryable: bool },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum MigrateResult {
    Done {
        workloads: u32,
    },
    Failed {
        detail: String,
    },
    /// Nothing to move with: no cloud cluster is configured. Not a failure, and nothing may
    /// have moved: the tier stays where it is and the move is not retried in this incident.
    NotApplicable {
        detail: String,
    },
}
