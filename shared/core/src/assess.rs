//! What the observations mean together (DESIGN §3): the Down conditions, the warnings, and the
//! independent observers counted by the quorum rule (DESIGN §4).

use crate::input::NodeCount;
use crate::policy::Policy;
use crate::state::{Critical, Health, SiteState};
use crate::time::Timestamp;

/// A read-only summary of the site at `now`, computed from the state's signals.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    pub power: Health,
    pub critical: Option<Critical>,
    /// The pull probe fails (unreachable or not ready).
    pub probe_failing: bool,
    /// ... for at least `silence_min_probes` probes in a row (enough to count as an observer).
    pub probe_confident: bool,
    /// No heartbeat for longer than the timeout (never received = not overdue: Unknown).
    pub heartbeats_overdue: bool,
    /// Both paths silent: the probe fails and heartbeats are overdue.
    pub home_unreachable: bool,
    /// Since when both paths are silent, if they are.
    pub silent_since: Option<Timestamp>,
    /// The freshest node counts from the probe or the heartbeat.
    pub nodes: Option<NodeCount>,
    pub nodes_missing: bool,
    /// Positive evidence that the home API answers (probe ready, or a fresh heartbeat saying so).
    pub api_up: bool,
    pub witness_down: bool,
    pub witness_up: bool,
    pub devices_down: bool,
    /// The cloud cannot reach home while heartbeats arrive.
    pub path_broken: bool,
    /// Heartbeats overdue while the probe is fine.
    pub agent_broken: bool,
}

impl Assessment {
    /// Any Down signal (DESIGN §3): on battery, both paths silent, nodes missing.
    pub fn any_down(&self) -> bool {
        self.power == Health::Down || self.home_unreachable || self.nodes_missing
    }

    /// Everything Up again: power not down, API answering, all nodes ready.
    pub fn all_clear(&self) -> bool {
        !self.any_down() && self.api_up && self.nodes.is_some_and(|n| n.ready >= n.total)
    }

    /// Independent observers that say home is down, by name (for the quorum rule and reasons).
    pub fn observers_down(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.probe_confident {
            v.push("cloud probe");
        }
        if self.heartbeats_overdue {
            v.push("heartbeat silence");
        }
        if self.witness_down {
            v.push("witness");
        }
        if self.devices_down {
            v.push("tailscale devices");
        }
        if matches!(
            self.critical,
            Some(Critical::ForcedShutdown | Critical::Shutdown)
        ) {
            v.push("UPS shutdown");
        }
        v
    }

    /// Quorum for irreversible moves: ≥ 2 independent observers, or the UPS itself shutting down.
    pub fn quorum(&self) -> bool {
        let ups_shutdown = matches!(
            self.critical,
            Some(Critical::ForcedShutdown | Critical::Shutdown)
        );
        ups_shutdown || self.observers_down().len() >= 2
    }
}

fn fresh(at: Option<Timestamp>, now: Timestamp, ttl_s: u64) -> bool {
    at.is_some_and(|t| now.since(t) <= (ttl_s as i64).saturating_mul(1000))
}

pub fn assess(state: &SiteState, now: Timestamp, policy: &Policy) -> Assessment {
    let s = &state.signals;
    let probe_failing = s.probe.api == Health::Down && s.probe.consecutive_failures > 0;
    let probe_confident =
        probe_failing && s.probe.consecutive_failures >= policy.silence_min_probes;
    let hb_deadline = s
        .heartbeat
        .received_at
        .map(|t| t.plus_secs(policy.heartbeat_timeout_s));
    let heartbeats_overdue = hb_deadline.is_some_and(|d| now > d);
    let home_unreachable = probe_failing && heartbeats_overdue;
    let silent_since = match (home_unreachable, s.probe.failing_since, hb_deadline) {
        (true, Some(f), Some(d)) => Some(f.max(d)),
        _ => None,
    };

    let hb_fresh = fresh(s.heartbeat.received_at, now, policy.heartbeat_timeout_s);
    let probe_nodes = s
        .probe
        .nodes
        .filter(|_| fresh(s.probe.nodes_at, now, policy.probe_ttl_s));
    let hb_nodes = s.heartbeat.nodes.filter(|_| hb_fresh);
    // Prefer the newer of the two views.
    let nodes = match (probe_nodes, hb_nodes) {
        (Some(p), Some(h)) => {
            if s.probe.nodes_at >= s.heartbeat.received_at {
                Some(p)
            } else {
                Some(h)
            }
        }
        (p, h) => p.or(h),
    };
    let nodes_missing = nodes.is_some_and(|n| n.ready < n.total);
    let api_up = s.probe.api == Health::Up || (hb_fresh && s.heartbeat.api_ok);

    let witness_fresh = fresh(s.witness.received_at, now, policy.witness_ttl_s);
    let witness_down = witness_fresh && s.witness.reachable == Some(false);
    let witness_up = witness_fresh && s.witness.reachable == Some(true);

    Assessment {
        power: s.power.health,
        critical: s.power.critical,
        probe_failing,
        probe_confident,
        heartbeats_overdue,
        home_unreachable,
        silent_since,
        nodes,
        nodes_missing,
        api_up,
        witness_down,
        witness_up,
        devices_down: s.devices.health == Health::Down,
        // Heartbeats must keep arriving after the probe started failing; one sent before
        // is no proof that home still talks.
        path_broken: probe_failing
            && hb_fresh
            && matches!(
                (s.heartbeat.received_at, s.probe.failing_since),
                (Some(hb), Some(fail)) if hb > fail
            ),
        // The probe must have been fine for a whole heartbeat timeout: right after home comes
        // back, the first heartbeat is simply not due yet.
        agent_broken: heartbeats_overdue
            && s.probe.api == Health::Up
            && s.probe
                .up_since
                .is_some_and(|t| now.elapsed_at_least(t, policy.heartbeat_timeout_s)),
    }
}
