//! Drill scenarios: a TOML timeline of what happens at home and in the cloud, and what must hold.
//! The format is documented in the README ("Writing a scenario"); the same files drive virtual
//! drills (the core on a virtual clock) and real-time drills (the real processes).

use burst_core::Policy;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// When the scenario starts (RFC 3339, UTC); virtual drills default to 2026-03-02T00:00Z.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// How long the scenario runs (virtual time).
    pub duration: Span,
    #[serde(default)]
    pub world: World,
    /// Overrides of the decision core's policy.
    #[serde(default)]
    pub policy: Policy,
    /// The timeline, in any order (sorted by time when run).
    #[serde(default, rename = "at")]
    pub events: Vec<Event>,
    #[serde(default, rename = "expect")]
    pub expectations: Vec<Expectation>,
}

/// The longest scenario: virtual drills schedule every probe and heartbeat up front.
const MAX_DURATION: Duration = Duration::from_secs(31 * 86_400);

/// A duration written as `"90s"`, `"5m"`, `"1h30m"` or a number of seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl Span {
    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }
    pub fn millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.subsec_nanos() == 0 {
            s.serialize_u64(self.0.as_secs())
        } else {
            s.serialize_f64(self.0.as_secs_f64())
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Float(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Span(Duration::from_secs(s))),
            Raw::Float(f) => Duration::try_from_secs_f64(f).map(Span).map_err(|_| {
                serde::de::Error::custom(format!(
                    "a duration must be a number of seconds from 0 to about 5.8e11 years, got {f}"
                ))
            }),
            Raw::Text(t) => humantime::parse_duration(t.trim())
                .map(Span)
                .map_err(|e| serde::de::Error::custom(format!("bad duration {t:?}: {e}"))),
        }
    }
}

/// The simulated home and cloud at the start.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct World {
    pub site: String,
    pub nodes_total: u32,
    /// On-prem devices in the tailnet (all online at the start).
    pub devices_total: u32,
    pub probe_interval: Span,
    pub heartbeat_interval: Span,
    /// Omit for no witness.
    pub witness_interval: Option<Span>,
    /// Time for a cloud node to become running after the scale set asks for it.
    pub boot_time: Span,
    /// Workloads per tier on the cloud cluster.
    pub critical_workloads: u32,
    pub stateful_workloads: u32,
    /// Real-time drills: run this many times faster than the scenario's clock.
    pub speedup: Option<f64>,
    /// The agent asks for a lease with each heartbeat (it has a fence command).
    pub lease: bool,
    /// Other sites the same deployment watches (virtual drills): each has a home of its own
    /// that stays healthy and sends heartbeats, and its own scale set, Discord webhook and
    /// cloud cluster. The drill fails if anything of theirs is touched: nothing crosses.
    pub neighbours: Vec<String>,
}

impl Default for World {
    fn default() -> Self {
        World {
            site: "home".into(),
            nodes_total: 7,
            devices_total: 7,
            probe_interval: Span(Duration::from_secs(30)),
            heartbeat_interval: Span(Duration::from_secs(30)),
            witness_interval: None,
            boot_time: Span(Duration::from_secs(90)),
            critical_workloads: 3,
            stateful_workloads: 1,
            speedup: None,
            lease: true,
            neighbours: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpDown {
    Up,
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopResume {
    Stop,
    Resume,
}

/// What the witness (a third place) sees of home.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WitnessView {
    Up,
    Down,
    /// Whatever home's internet link allows (the default).
    Follow,
}

/// How Tailscale's devices API answers the probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TailscaleApi {
    Up,
    /// Unreachable (timeout).
    Down,
    /// Answers, but nothing usable (5xx).
    Unknown,
}

/// Where the next invocation that gets there dies (the process is killed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashPoint {
    /// Right after a state save, before the actions it asked for run.
    AfterSave,
    /// Right after an action took effect, before its outcome is saved.
    AfterAction,
}

/// One moment of the timeline. Several fields may be set; they apply in the order listed here.
/// Fault fields (below `discord_gone`) are for virtual drills only.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub t: Span,
    /// Free text shown in the timeline.
    pub note: Option<String>,
    /// A NUT notify type sent by the agent (ONBATT, LOWBATT, ONLINE, COMMBAD, ...).
    pub ups: Option<String>,
    /// `ups.status` with it; default derived from the type.
    pub status: Option<String>,
    pub charge: Option<f64>,
    pub runtime: Option<u64>,
    /// The whole home goes dark (power and internet gone) or comes back.
    pub home: Option<UpDown>,
    /// Home's internet link: probe, heartbeats, witness, Tailscale all fail while down.
    pub internet: Option<UpDown>,
    /// Only the cloud's path to home (the probe); heartbeats and the witness still get through.
    pub cloud_path: Option<UpDown>,
    /// The home Kubernetes API (readyz) fails while the network is fine.
    pub home_api: Option<UpDown>,
    pub nodes_ready: Option<u32>,
    /// The agent's heartbeats stop or resume (a broken agent).
    pub heartbeats: Option<StopResume>,
    pub devices_online: Option<u32>,
    /// A Tailscale webhook event of this type.
    pub tailscale: Option<String>,
    pub device: Option<String>,
    /// Spot evictions: this many running cloud nodes are taken away.
    pub evict: Option<u32>,
    /// The next scale write is answered 429 with this Retry-After (seconds).
    pub arm_throttle: Option<u64>,
    /// The next N scale writes are answered 409 Conflict.
    pub arm_conflicts: Option<u32>,
    /// The next message is answered 429 with this retry_after (seconds).
    pub discord_rate_limit: Option<f64>,
    /// The webhook is deleted: every later message gets 404 Unknown Webhook.
    pub discord_gone: Option<bool>,
    // --- virtual drills only ---
    /// The UPS event's id (default: a fresh one).
    pub id: Option<String>,
    /// The UPS event is delivered twice (the agent retried after a lost answer).
    pub duplicate: Option<bool>,
    /// The UPS event with this id is delivered again (a stale copy).
    pub repeat: Option<String>,
    /// The UPS event says it happened this long ago (it arrives after newer ones).
    pub backdate: Option<Span>,
    /// The UPS event is lost (NOTIFYCMD never ran): the agent never sends it.
    pub drop: Option<bool>,
    /// The witness's own view of home from now on.
    pub witness: Option<WitnessView>,
    /// Tailscale's devices API from now on.
    pub tailscale_api: Option<TailscaleApi>,
    /// The agent's clock runs this many seconds ahead of the cloud's (negative: behind).
    pub agent_skew_s: Option<i64>,
    /// Every scale-set call fails with 503 for this long.
    pub arm_down: Option<Span>,
    /// The next N scale-set calls are answered 500.
    pub arm_errors: Option<u32>,
    /// The next N reads of the scale set fail.
    pub arm_read_errors: Option<u32>,
    /// The next N writes time out before ARM saw them.
    pub arm_timeouts: Option<u32>,
    /// The next N writes are carried out but their answer is lost (a timeout).
    pub arm_lost_answers: Option<u32>,
    /// For this long, Spot capacity is accepted but never boots (allocation fails).
    pub spot_no_capacity: Option<Span>,
    /// The state store answers 503 for this long.
    pub store_down: Option<Span>,
    /// The next N saves lose their compare-and-swap to a concurrent writer.
    pub store_conflicts: Option<u32>,
    /// The next invocation that gets there dies at this point.
    pub crash: Option<CrashPoint>,
    /// The next N workload moves fail.
    pub migrate_failures: Option<u32>,
}

impl Event {
    /// Fields only virtual drills can carry out, by name (for the real-time drills' check).
    pub fn virtual_only_fields(&self) -> Vec<&'static str> {
        let set = [
            ("id", self.id.is_some()),
            ("duplicate", self.duplicate.is_some()),
            ("repeat", self.repeat.is_some()),
            ("backdate", self.backdate.is_some()),
            ("drop", self.drop.is_some()),
            ("witness", self.witness.is_some()),
            ("tailscale_api", self.tailscale_api.is_some()),
            ("agent_skew_s", self.agent_skew_s.is_some()),
            ("arm_down", self.arm_down.is_some()),
            ("arm_errors", self.arm_errors.is_some()),
            ("arm_read_errors", self.arm_read_errors.is_some()),
            ("arm_timeouts", self.arm_timeouts.is_some()),
            ("arm_lost_answers", self.arm_lost_answers.is_some()),
            ("spot_no_capacity", self.spot_no_capacity.is_some()),
            ("store_down", self.store_down.is_some()),
            ("store_conflicts", self.store_conflicts.is_some()),
            ("crash", self.crash.is_some()),
            ("migrate_failures", self.migrate_failures.is_some()),
        ];
        set.into_iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| n)
            .collect()
    }
}

/// What must hold. With `at`: the state at that time (after everything due then); with
/// `during = [from, until]`: over that interval; with neither: over the whole scenario.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub at: Option<Span>,
    pub during: Option<[Span; 2]>,
    // --- point checks (need `at`) ---
    pub mode: Option<String>,
    /// The scale set's capacity (what it asks for).
    pub capacity: Option<u32>,
    /// Cloud nodes actually running.
    pub running: Option<u32>,
    /// "cloud" or "home".
    pub critical: Option<String>,
    pub stateful: Option<String>,
    pub incident_open: Option<bool>,
    pub webhook_gone: Option<bool>,
    /// Messages still waiting for delivery.
    pub undelivered: Option<usize>,
    // --- interval checks ---
    pub max_capacity: Option<u32>,
    pub min_capacity: Option<u32>,
    pub scale_writes: Option<usize>,
    pub max_scale_writes: Option<usize>,
    /// Scale-set API calls (accepted or not): bounds busy retrying.
    pub max_arm_calls: Option<usize>,
    /// Incident messages created.
    pub incidents: Option<usize>,
    /// Separate posts delivered.
    pub posts: Option<usize>,
    pub max_posts: Option<usize>,
    pub max_notifications: Option<usize>,
    pub never_mode: Option<String>,
    pub ever_mode: Option<String>,
    /// "tier:direction" moves that must happen, e.g. "critical:to_cloud".
    pub migrated: Option<Vec<String>>,
    pub not_migrated: Option<Vec<String>>,
    pub max_cost_usd: Option<f64>,
    pub min_cost_usd: Option<f64>,
    /// Budget thresholds (percent) that must have been announced.
    pub budget_alerts: Option<Vec<u32>>,
    /// Times the capacity went down.
    pub max_scale_downs: Option<usize>,
    /// Home's missing nodes left uncovered by running cloud nodes, in node-seconds (whole run).
    pub max_gap_node_s: Option<f64>,
    /// The longest stretch with any node uncovered, in seconds (whole run).
    pub max_gap_s: Option<f64>,
    /// At most this many incident messages created.
    pub max_incidents: Option<usize>,
    /// Workload moves carried out (any tier and direction).
    pub migrations: Option<usize>,
    pub max_migrations: Option<usize>,
    /// These happen, first occurrences in this order: "tier:direction" moves, "capacity:N"
    /// writes, "mode:NAME" changes (e.g. `["critical:to_home", "capacity:0"]`).
    pub order: Option<Vec<String>>,
    /// Message titles (or parts of them) that must have been sent.
    pub titles: Option<Vec<String>>,
    /// Budget thresholds (percent) that must not be announced.
    pub no_budget_alerts: Option<Vec<u32>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        Scenario::parse(&text, &shown)
    }

    pub fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        let mut s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        s.validate().map_err(|message| ScenarioError::Invalid {
            path: path.to_string(),
            message,
        })?;
        s.events.sort_by_key(|e| e.t);
        Ok(s)
    }

    /// The start instant, if the scenario names one.
    pub fn start_instant(&self) -> Result<Option<burst_core::Timestamp>, String> {
        let Some(text) = &self.start else {
            return Ok(None);
        };
        let t = chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("start: {text:?} is not an RFC 3339 time: {e}"))?;
        Ok(Some(burst_core::Timestamp::from_millis(
            t.timestamp_millis(),
        )))
    }

    fn validate(&self) -> Result<(), String> {
        self.policy
            .validate()
            .map_err(|e| format!("[policy]: {e}"))?;
        self.start_instant()?;
        if self.duration.0.is_zero() || self.duration.0 > MAX_DURATION {
            return Err("duration must be more than 0 and at most 31 days".into());
        }
        if self.world.probe_interval.0.is_zero() || self.world.heartbeat_interval.0.is_zero() {
            return Err("[world] probe_interval and heartbeat_interval must be more than 0".into());
        }
        if self.world.witness_interval.is_some_and(|w| w.0.is_zero()) {
            return Err("[world] witness_interval must be more than 0".into());
        }
        for n in &self.world.neighbours {
            if !burst_settings::is_site_id(n) || *n == self.world.site {
                return Err(format!(
                    "[world] neighbours: {n:?} must be a site id (letters, digits, - _ .) other than site"
                ));
            }
        }
        for (i, e) in self.events.iter().enumerate() {
            if e.t > self.duration {
                return Err(format!(
                    "[[at]] #{}: t is after the scenario's duration",
                    i + 1
                ));
            }
            if e.nodes_ready.is_some_and(|n| n > self.world.nodes_total) {
                return Err(format!(
                    "[[at]] #{}: nodes_ready is more than world.nodes_total",
                    i + 1
                ));
            }
            let ups_only = [
                ("id", e.id.is_some()),
                ("duplicate", e.duplicate.is_some()),
                ("backdate", e.backdate.is_some()),
                ("drop", e.drop.is_some()),
                ("charge", e.charge.is_some()),
                ("runtime", e.runtime.is_some()),
            ];
            if let Some((name, _)) = ups_only.iter().find(|(_, on)| *on)
                && e.ups.is_none()
            {
                return Err(format!(
                    "[[at]] #{}: {name} needs ups (the notify type)",
                    i + 1
                ));
            }
            // The timeline is sorted by time when run (stable): an earlier or same-time event
            // listed before this one is sent first.
            if let Some(r) = &e.repeat {
                let earlier = self
                    .events
                    .iter()
                    .take(i)
                    .any(|o| o.t <= e.t && o.id.as_ref() == Some(r))
                    || self
                        .events
                        .iter()
                        .skip(i + 1)
                        .any(|o| o.t < e.t && o.id.as_ref() == Some(r));
                if !earlier {
                    return Err(format!(
                        "[[at]] #{}: repeat names {r:?}, which no earlier event has as its id",
                        i + 1
                    ));
                }
            }
            if e.id
                .as_deref()
                .is_some_and(|id| id.is_empty() || id.len() > 128)
            {
                return Err(format!("[[at]] #{}: id must be 1–128 characters", i + 1));
            }
        }
        for (i, x) in self.expectations.iter().enumerate() {
            let n = i + 1;
            if x.at.is_some() && x.during.is_some() {
                return Err(format!("[[expect]] #{n}: use at or during, not both"));
            }
            let point = x.mode.is_some()
                || x.capacity.is_some()
                || x.running.is_some()
                || x.critical.is_some()
                || x.stateful.is_some()
                || x.incident_open.is_some()
                || x.webhook_gone.is_some()
                || x.undelivered.is_some();
            if point && x.at.is_none() {
                return Err(format!(
                    "[[expect]] #{n}: mode/capacity/running/critical/stateful/incident_open/webhook_gone/undelivered need at"
                ));
            }
            for m in [&x.mode, &x.never_mode, &x.ever_mode].into_iter().flatten() {
                if !["healthy", "suspect", "outage", "recovering"].contains(&m.as_str()) {
                    return Err(format!("[[expect]] #{n}: unknown mode {m:?}"));
                }
            }
            for side in [&x.critical, &x.stateful].into_iter().flatten() {
                if side != "cloud" && side != "home" {
                    return Err(format!(
                        "[[expect]] #{n}: critical/stateful must be \"cloud\" or \"home\""
                    ));
                }
            }
            for mv in x.migrated.iter().chain(x.not_migrated.iter()).flatten() {
                let ok = matches!(
                    mv.as_str(),
                    "critical:to_cloud"
                        | "critical:to_home"
                        | "stateful:to_cloud"
                        | "stateful:to_home"
                );
                if !ok {
                    return Err(format!(
                        "[[expect]] #{n}: unknown move {mv:?} (tier:direction)"
                    ));
                }
            }
            if (x.max_gap_node_s.is_some() || x.max_gap_s.is_some())
                && (x.at.is_some() || x.during.is_some())
            {
                return Err(format!(
                    "[[expect]] #{n}: max_gap_node_s/max_gap_s cover the whole run (no at/during)"
                ));
            }
            for item in x.order.iter().flatten() {
                if !order_item_ok(item) {
                    return Err(format!(
                        "[[expect]] #{n}: unknown order item {item:?} (tier:direction, capacity:N or mode:NAME)"
                    ));
                }
            }
            if let Some([a, b]) = x.during
                && a > b
            {
                return Err(format!("[[expect]] #{n}: during starts after it ends"));
            }
        }
        Ok(())
    }
}

/// An `order` item: a move ("critical:to_home"), a capacity write ("capacity:0") or a mode.
fn order_item_ok(item: &str) -> bool {
    match item.split_once(':') {
        Some(("capacity", n)) => n.parse::<u32>().is_ok(),
        Some(("mode", m)) => ["healthy", "suspect", "outage", "recovering"].contains(&m),
        Some(("critical" | "stateful", "to_cloud" | "to_home")) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_rejects_unknown_fields() {
        let s = Scenario::parse(
            r#"
name = "x"
duration = "1h30m"
[world]
probe_interval = 15
[policy]
max_nodes = 3
[[at]]
t = "5m"
ups = "ONBATT"
[[expect]]
at = "10m"
mode = "outage"
"#,
            "x.toml",
        )
        .unwrap();
        assert_eq!(s.duration.secs(), 5400);
        assert_eq!(s.world.probe_interval.secs(), 15);
        assert_eq!(s.policy.max_nodes, 3);
        // Each bad file is refused with a message that names what is wrong.
        let refused = [
            ("[[at]]\nt='1m'\nbogus=1\n", "bogus"),
            ("[[expect]]\nmode='outage'\n", "need at"),
            ("[[at]]\nt='1m'\nrepeat='nope'\n", "repeat names \"nope\""),
            ("[[expect]]\norder=['capacity:x']\n", "unknown order item"),
            ("[[at]]\nt='1m'\ndrop=true\n", "drop needs ups"),
            ("[policy]\nmin_nodes=9\n", "min_nodes"),
            // Found by fuzzing: a float of 2^64 seconds or more panicked.
            (
                "[[at]]\nt=8288888888888888888111111111111111111118.83\n",
                "a duration must be",
            ),
            ("[[at]]\nt=-1.5\n", "a duration must be"),
            ("[world]\nneighbours=['home']\n", "other than site"),
            ("[world]\nneighbours=['../x']\n", "must be a site id"),
        ];
        for (tail, wanted) in refused {
            let text = format!("name='x'\nduration='1h'\n{tail}");
            let err = Scenario::parse(&text, "bad.toml").unwrap_err().to_string();
            assert!(err.contains(wanted), "{tail:?}: {err}");
        }
        let err = Scenario::parse("name='x'\nduration='32d'\n", "long.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 31 days"), "{err}");
        let err = Scenario::parse("name='x'\nstart='yesterday'\nduration='1h'\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("RFC 3339"), "{err}");
        // ups.status may change without a notify; faults are listed for real-time drills.
        let s = Scenario::parse(
            "name='x'\nduration='1h'\n[[at]]\nt='1m'\nstatus='OB'\nstore_conflicts=2\n",
            "ok.toml",
        )
        .unwrap();
        assert_eq!(s.events[0].virtual_only_fields(), vec!["store_conflicts"]);
    }
}
