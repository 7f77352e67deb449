//! The knobs: grace periods, caps, budget. The defaults are the README's "Policy" table; every
//! value is overridable (from settings in the functions, from `[policy]` in a drill scenario).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Lower clamp of the desired capacity (a warm standby; 0 = nothing idles in the cloud).
    pub min_nodes: u32,
    /// Upper clamp of the desired capacity.
    pub max_nodes: u32,
    /// Extra cloud nodes while home runs on battery (its nodes may die any minute).
    pub power_loss_buffer: u32,
    /// Home's node count when no probe or heartbeat has reported one yet.
    pub expected_nodes_total: u32,

    /// On battery this long → Outage.
    pub grace_on_battery_s: u64,
    /// Both paths silent for this many failed probes ...
    pub silence_min_probes: u32,
    /// ... and at least this long → Outage.
    pub silence_grace_s: u64,
    /// Nodes missing this long → Outage.
    pub nodes_missing_grace_s: u64,
    /// Healthy this long while Recovering → back to zero.
    pub scale_down_delay_s: u64,
    /// No heartbeat for this long = heartbeats overdue.
    pub heartbeat_timeout_s: u64,
    /// A witness report is evidence for this long.
    pub witness_ttl_s: u64,
    /// A probe's node counts are evidence for this long.
    pub probe_ttl_s: u64,
    /// Every on-prem device disconnected from Tailscale for this many probes in a row ...
    pub devices_offline_probes: u32,
    /// ... and at least this long = a Down vote of the device list.
    pub devices_offline_grace_s: u64,
    /// The witness could not reach home in this many reports in a row ...
    pub witness_down_reports: u32,
    /// ... and for at least this long = a Down vote of the witness.
    pub witness_down_grace_s: u64,
    /// The lease granted with each accepted heartbeat (agents that fence ask for one).
    pub lease_s: u64,
    /// The stateful tier moves only once the agent's lease expired at least this long ago
    /// (clock drift between the agent and the cloud, and the fence command's run time).
    pub lease_margin_s: u64,
    /// Power not known (UPS link lost, or no reading since a silence) this long while every
    /// other signal is up: recovery may go on, saying that the power state is unknown.
    pub power_unknown_max_s: u64,

    /// Raise capacity before home's nodes go, from the battery's runtime and LOWBATT.
    pub burst_ahead: bool,
    /// The runtime at which the UPS raises LB and home sheds its nodes (NUT's
    /// `battery.runtime.low`; set it to what your UPS uses).
    pub lowbatt_runtime_s: u64,
    /// Lead time = learned boot time + this margin.
    pub burst_ahead_margin_s: u64,
    /// Nodes to raise ahead of the battery; `None` = the full burst (`max_nodes`).
    pub burst_ahead_nodes: Option<u32>,
    /// Boot time (write → instances running) assumed until the first ones are measured.
    pub boot_prior_s: u64,

    /// Monthly budget in USD; `None` = no budget.
    pub monthly_budget_usd: Option<f64>,
    /// Estimated price of one cloud node for one hour (the spot price ceiling).
    pub price_per_node_hour_usd: f64,
    /// How far ahead the budget projection looks when capping capacity.
    pub budget_horizon_s: u64,

    /// Wait this long after a scale conflict before re-reading (doubles per conflict).
    pub conflict_backoff_s: u64,
    /// An action whose outcome has not come back after this long is issued again (the shell
    /// crashed or lost the outcome). Every adapter call is bounded by its own timeout (10 s by
    /// default; a scale write is a GET and a PATCH), so a live invocation has its outcome long
    /// before this; a longer wait only prolongs an outage after a crash (the drills measure it).
    pub action_timeout_s: u64,
    /// Retry a failed scale write / migration after this long.
    pub action_retry_s: u64,
    /// Retry a failed notification after this long (429s use the server's `retry_after`).
    pub notify_retry_s: u64,
    /// Remember UPS event ids and webhook hashes this long (a spooled event may be re-sent
    /// hours later when its first delivery's answer was lost).
    pub dedupe_ttl_s: u64,
    /// Remember heartbeat and witness ids this long (periodic snapshots; older ones are ignored
    /// by time anyway).
    pub snapshot_dedupe_ttl_s: u64,
    /// At most this many remembered ids (oldest forgotten first).
    pub dedupe_max: usize,
    /// Audit entries kept in the state document.
    pub audit_max: usize,
    /// Timeline lines kept in an incident message.
    pub incident_lines_max: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_nodes: 0,
            max_nodes: 5,
            power_loss_buffer: 2,
            expected_nodes_total: 7,
            grace_on_battery_s: 120,
            silence_min_probes: 3,
            silence_grace_s: 90,
            nodes_missing_grace_s: 90,
            scale_down_delay_s: 1800,
            heartbeat_timeout_s: 90,
            witness_ttl_s: 300,
            probe_ttl_s: 180,
            devices_offline_probes: 2,
            devices_offline_grace_s: 90,
            witness_down_reports: 2,
            witness_down_grace_s: 90,
            lease_s: 120,
            lease_margin_s: 30,
            power_unknown_max_s: 900,
            burst_ahead: true,
            lowbatt_runtime_s: 300,
            burst_ahead_margin_s: 60,
            burst_ahead_nodes: None,
            boot_prior_s: 120,
            monthly_budget_usd: Some(20.0),
            price_per_node_hour_usd: 0.05,
            budget_horizon_s: 6 * 3600,
            conflict_backoff_s: 15,
            action_timeout_s: 120,
            action_retry_s: 60,
            notify_retry_s: 60,
            dedupe_ttl_s: 24 * 3600,
            snapshot_dedupe_ttl_s: 600,
            dedupe_max: 2048,
            audit_max: 64,
            incident_lines_max: 20,
        }
    }
}

/// A policy that cannot work (explains which field).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// `min_nodes` above `max_nodes`.
    #[error("min_nodes ({min}) is greater than max_nodes ({max})")]
    MinAboveMax { min: u32, max: u32 },
    /// A price or budget that is negative or not a number.
    #[error("{field} must be a finite number >= 0, got {value}")]
    BadAmount { field: &'static str, value: f64 },
    /// A limit of zero where at least one is needed.
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
}

impl Policy {
    /// Checks the policy once at load time, so the core can rely on it.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.min_nodes > self.max_nodes {
            return Err(PolicyError::MinAboveMax {
                min: self.min_nodes,
                max: self.max_nodes,
            });
        }
        let amounts = [
            (
                "price_per_node_hour_usd",
                Some(self.price_per_node_hour_usd),
            ),
            ("monthly_budget_usd", self.monthly_budget_usd),
        ];
        for (field, value) in amounts {
            if let Some(v) = value
                && (!v.is_finite() || v < 0.0)
            {
                return Err(PolicyError::BadAmount { field, value: v });
            }
        }
        let counts = [
            ("silence_min_probes", self.silence_min_probes as usize),
            (
                "devices_offline_probes",
                self.devices_offline_probes as usize,
            ),
            ("witness_down_reports", self.witness_down_reports as usize),
            ("lease_s", self.lease_s as usize),
            ("dedupe_max", self.dedupe_max),
            ("audit_max", self.audit_max),
            ("incident_lines_max", self.incident_lines_max),
            ("budget_horizon_s", self.budget_horizon_s as usize),
        ];
        for (field, n) in counts {
            if n == 0 {
                return Err(PolicyError::Zero { field });
            }
        }
        Ok(())
    }
}
