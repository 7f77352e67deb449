//! What the observations mean together: the Down conditions, the warnings, and the
//! independent observers counted by the quorum rule (the README's "Safe decisions under
//! partial, stale and hostile observations").

use crate::input::NodeCount;
use crate::policy::Policy;
use crate::state::{Critical, Health, SiteState};
use crate::time::Timestamp;

/// A read-only summary of the site at `now`, computed from the state's signals.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// Power for mode decisions: the current reading; while it is not current (UPS link lost,
    /// or taken before a silence) a last known "on battery" still counts as Down, anything
    /// else is Unknown (see [`Assessment::power_ok`]).
    pub power: Health,
    pub critical: Option<Critical>,
    /// The power reading is current (not lost with the UPS link, not older than a silence).
    pub power_current: bool,
    /// Power allows recovery: on line now, or never reported at all (no UPS), or not known for
    /// longer than `power_unknown_max_s` while everything else is up.
    pub power_ok: bool,
    /// Power is not known and recovery goes on anyway (the bound ran out).
    pub power_unknown_too_long: bool,
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
    /// Some source ever reported home's API or nodes (the probe got an answer, or a heartbeat
    /// carried an inside view): recovery waits for that source.
    pub api_source: bool,
    /// Some source ever reported node counts: recovery waits for fresh, complete ones.
    pub node_source: bool,
    /// The independent observers' votes (see the README's observer table).
    pub votes: Votes,
    /// No lease granted to the agent is still running (expired + margin, or never taken).
    pub lease_expired: bool,
    /// The cloud cannot reach home while heartbeats arrive.
    pub path_broken: bool,
    /// Heartbeats overdue while the probe is fine.
    pub agent_broken: bool,
}

/// What each independent observer says about home, once its own freshness and persistence
/// are met; an observer in neither list says nothing (Unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Votes {
    pub down: Vec<&'static str>,
    pub up: Vec<&'static str>,
}

impl Assessment {
    /// Any Down signal: on battery, both paths silent, nodes missing.
    pub fn any_down(&self) -> bool {
        self.power == Health::Down || self.home_unreachable || self.nodes_missing
    }

    /// Everything Up again: power back (or not knowable), API answering, all nodes ready —
    /// as far as there is a source for each. A site with no source of API or node readiness
    /// at all (agent without a kube source, no home API probe) recovers on what there is:
    /// power on line now, and heartbeats arriving if the site has them.
    pub fn all_clear(&self) -> bool {
        if self.any_down() || !self.power_ok {
            return false;
        }
        if !self.api_source {
            return self.power == Health::Up && !self.heartbeats_overdue;
        }
        self.api_up && (!self.node_source || self.nodes.is_some_and(|n| n.ready >= n.total))
    }

    /// Independent observers that say home is down, by name (for the quorum rule and reasons).
    pub fn observers_down(&self) -> Vec<&'static str> {
        self.votes.down.clone()
    }

    /// Quorum of Down votes: ≥ 2 independent observers, or the UPS itself shutting down.
    pub fn quorum(&self) -> bool {
        let ups_shutdown = matches!(
            self.critical,
            Some(Critical::ForcedShutdown | Critical::Shutdown)
        );
        ups_shutdown || self.votes.down.len() >= 2
    }

    /// The stateful tier may move to the cloud: quorum, no fresh Up vote from any observer
    /// (a veto), and the agent's lease ran out (the home side fenced itself).
    pub fn stateful_move_allowed(&self) -> bool {
        self.quorum() && self.votes.up.is_empty() && self.lease_expired
    }
}

fn fresh(at: Option<Timestamp>, now: Timestamp, ttl_s: u64) -> bool {
    at.is_some_and(|t| now.since(t) <= (ttl_s as i64).saturating_mul(1000))
}

fn lasted(since: Option<Timestamp>, now: Timestamp, secs: u64) -> bool {
    since.is_some_and(|t| now.elapsed_at_least(t, secs))
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

    // Power: a reading is current unless the UPS link is lost or the agent fell silent after
    // it (then it says nothing about now).
    let p = &s.power;
    let stale = p.stale || heartbeats_overdue;
    let power_current = p.health != Health::Unknown && !stale;
    let power_unknown_too_long = !power_current
        && p.known != Health::Unknown
        && lasted(
            state.trouble.power_unknown_since,
            now,
            policy.power_unknown_max_s,
        );
    let (power, critical) = if power_current {
        (p.health, p.critical)
    } else if p.known == Health::Down && !power_unknown_too_long {
        (Health::Down, p.known_critical)
    } else {
        (Health::Unknown, None)
    };
    let power_ok = power == Health::Up
        || (power == Health::Unknown && (p.known == Health::Unknown || power_unknown_too_long));

    let votes = votes(
        state,
        now,
        policy,
        probe_confident,
        heartbeats_overdue,
        hb_fresh,
        critical,
    );
    let lease_expired = state
        .lease
        .is_none_or(|l| now >= l.expires_at.plus_secs(policy.lease_margin_s));

    Assessment {
        power,
        critical,
        power_current,
        power_ok,
        power_unknown_too_long,
        probe_failing,
        probe_confident,
        heartbeats_overdue,
        home_unreachable,
        silent_since,
        nodes,
        nodes_missing,
        api_up,
        api_source: s.probe.api_seen || s.heartbeat.inside_seen,
        node_source: s.probe.nodes.is_some() || s.heartbeat.nodes.is_some(),
        votes,
        lease_expired,
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

/// Each observer's vote with its own freshness and persistence (the README's table).
fn votes(
    state: &SiteState,
    now: Timestamp,
    policy: &Policy,
    probe_confident: bool,
    heartbeats_overdue: bool,
    hb_fresh: bool,
    critical: Option<Critical>,
) -> Votes {
    let s = &state.signals;
    let mut v = Votes::default();

    // Cloud probe: Down after silence_min_probes failures spanning silence_grace_s.
    if probe_confident && lasted(s.probe.failing_since, now, policy.silence_grace_s) {
        v.down.push("cloud probe");
    } else if s.probe.api == Health::Up && fresh(s.probe.last_at, now, policy.probe_ttl_s) {
        v.up.push("cloud probe");
    }

    // Heartbeat: its timeout is both its freshness and its persistence.
    if heartbeats_overdue {
        v.down.push("heartbeat silence");
    } else if hb_fresh {
        v.up.push("heartbeat");
    }

    // Witness: a fresh report; Down only after witness_down_reports reports spanning the grace.
    let w = &s.witness;
    if fresh(w.received_at, now, policy.witness_ttl_s) {
        match w.reachable {
            Some(true) => v.up.push("witness"),
            Some(false)
                if w.down_streak >= policy.witness_down_reports
                    && lasted(w.down_since, now, policy.witness_down_grace_s) =>
            {
                v.down.push("witness")
            }
            _ => {}
        }
    }

    // Tailscale device list: a fresh check; Down once every device stayed disconnected.
    let d = &s.devices;
    if fresh(d.seen_at, now, policy.probe_ttl_s) {
        match d.health {
            Health::Up => v.up.push("tailscale devices"),
            Health::Down if lasted(d.offline_since, now, policy.devices_offline_grace_s) => {
                v.down.push("tailscale devices")
            }
            _ => {}
        }
    }

    // The UPS votes Down only when it shuts home down; its on-line reading travels with the
    // heartbeat (same agent), so it adds no independent Up vote.
    if matches!(
        critical,
        Some(Critical::ForcedShutdown | Critical::Shutdown)
    ) {
        v.down.push("UPS shutdown");
    }
    v
}

/// Since when a Down vote could appear by time alone, for the next wake-up: the probe's and
/// the witness's and the device list's persistence, and the lease's end (+ margin).
pub fn vote_deadlines(state: &SiteState, policy: &Policy) -> Vec<Timestamp> {
    let s = &state.signals;
    let mut d = Vec::new();
    d.extend(
        s.probe
            .failing_since
            .map(|t| t.plus_secs(policy.silence_grace_s)),
    );
    d.extend(
        s.witness
            .down_since
            .map(|t| t.plus_secs(policy.witness_down_grace_s)),
    );
    d.extend(
        s.devices
            .offline_since
            .map(|t| t.plus_secs(policy.devices_offline_grace_s)),
    );
    d.extend(
        state
            .lease
            .map(|l| l.expires_at.plus_secs(policy.lease_margin_s)),
    );
    d
}

/// What keeps cloud capacity or the site's mode where it is, in words, for the status: each
/// entry names the source, so the owner knows what to fix (the shell adds setting names).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Hold {
    /// `power`, `network`, `api`, `nodes`, `heartbeats`, `workloads`, `delay`, `budget`.
    pub source: &'static str,
    pub why: String,
}

pub fn holds(state: &SiteState, a: &Assessment, now: Timestamp, policy: &Policy) -> Vec<Hold> {
    use crate::state::{Mode, Side};
    use crate::time::human_secs;
    let mut v = Vec::new();
    let mut hold = |source: &'static str, why: String| v.push(Hold { source, why });
    if state.mode == Mode::Healthy && state.capacity.desired <= policy.min_nodes {
        return Vec::new();
    }
    match a.power {
        Health::Down if a.power_current => hold("power", "on battery".into()),
        Health::Down => hold(
            "power",
            "last reading on battery; the UPS is not reporting now (COMMBAD/NOCOMM or no reading since the agent fell silent)".into(),
        ),
        Health::Unknown if !a.power_ok => hold(
            "power",
            format!(
                "power state unknown (no current UPS reading); recovery goes on after {} of this with everything else up",
                human_secs(policy.power_unknown_max_s)
            ),
        ),
        _ => {}
    }
    if a.home_unreachable {
        hold(
            "network",
            "home unreachable: the probe fails and heartbeats are overdue".into(),
        );
    } else if a.heartbeats_overdue {
        hold(
            "heartbeats",
            "no heartbeat from the agent within the timeout".into(),
        );
    }
    if a.api_source && !a.api_up && !a.home_unreachable {
        let detail = state.signals.probe.detail.clone().unwrap_or_default();
        hold(
            "api",
            format!(
                "home API not ready (probe: {detail}; agent api_ok: {})",
                state.signals.heartbeat.api_ok
            ),
        );
    }
    if a.node_source {
        match a.nodes {
            Some(n) if n.ready < n.total => hold(
                "nodes",
                format!("{} of {} nodes not ready", n.total - n.ready, n.total),
            ),
            None if !a.home_unreachable => {
                hold("nodes", "no fresh node count (probe or heartbeat)".into())
            }
            _ => {}
        }
    }
    for tier in crate::action::Tier::ALL {
        let p = state.placement.get(tier);
        match p.side {
            Side::Cloud if state.mode == Mode::Healthy => hold(
                "workloads",
                format!("{tier} workloads still run in the cloud; moving them home is pending"),
            ),
            Side::Unsure if p.failures == 0 => hold(
                "workloads",
                format!(
                    "{tier} workloads may run in the cloud: their move has not reported back; capacity is held until they are home"
                ),
            ),
            Side::Unsure => hold(
                "workloads",
                format!(
                    "{tier} workloads may run in the cloud: a move failed ({} failure(s)); capacity is held until they are home",
                    p.failures
                ),
            ),
            _ => {}
        }
    }
    if state.mode == Mode::Recovering && a.all_clear() {
        let until = state.mode_since.plus_secs(policy.scale_down_delay_s);
        hold(
            "delay",
            format!(
                "healthy since {}; back to zero after the scale-down delay ({} s left)",
                state.mode_since,
                until.since(now).max(0) / 1000
            ),
        );
    }
    v
}
