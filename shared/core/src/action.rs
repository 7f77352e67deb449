//! What the core asks the shell to do. The shell carries each action out and feeds the
//! result back as an [`crate::input::Outcome`].

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Read the scale set, then write this capacity with `If-Match` (skip if already equal).
    SetCapacity { capacity: u32, reason: String },
    /// Scale the workloads of a tier on the cloud cluster up (to_cloud) or back to 0 (to_home).
    Migrate {
        tier: Tier,
        direction: Direction,
        reason: String,
    },
    /// Create or edit the incident message, or post a short separate message.
    Notify(Notification),
}

/// Workload tiers, by what moving them risks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Stateless critical services: move once the site is in Outage.
    Critical,
    /// Irreversible moves (promoting a replica): only with a quorum of observers.
    Stateful,
}

impl Tier {
    pub const ALL: [Tier; 2] = [Tier::Critical, Tier::Stateful];
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Stateful => "stateful",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ToCloud,
    ToHome,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToCloud => "to_cloud",
            Direction::ToHome => "to_home",
        }
    }
}

/// How a notification reaches Discord.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Delivery {
    /// The first message of an incident (`?wait=true`, keep the id).
    Create,
    /// Edit the incident's message in place.
    Edit { message_id: String },
    /// A short separate message (budget alerts, failures, warnings).
    Post,
}

impl Delivery {
    pub fn as_str(&self) -> &'static str {
        match self {
            Delivery::Create => "create",
            Delivery::Edit { .. } => "edit",
            Delivery::Post => "post",
        }
    }
}

/// The colour of a message, by what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Trouble,
    Warning,
    Resolved,
    Info,
}

impl Severity {
    /// Discord embed colour.
    pub fn color(self) -> u32 {
        match self {
            Severity::Trouble => 0xED4245,
            Severity::Warning => 0xFEE75C,
            Severity::Resolved => 0x57F287,
            Severity::Info => 0x5865F2,
        }
    }
}

/// A message, platform-neutral; the Discord adapter turns it into an embed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Incident id for incident messages, a unique key for posts.
    pub key: String,
    pub delivery: Delivery,
    pub title: String,
    pub severity: Severity,
    /// Short lines, oldest first (the incident's timeline).
    pub lines: Vec<String>,
    /// Whether this message should ping the owner (role mention).
    pub ping: bool,
}
