//! The model: one site driven through [`burst_core::step`] by every sequence of inputs from a
//! small alphabet, with the safety properties checked in every reachable state.
//!
//! See the crate's README for the alphabet, the test policy and why the state is hashed the
//! way it is.

use burst_core::assess::assess;
use burst_core::invariants;
use burst_core::state::{Side, SiteState};
use burst_core::{
    Action, ApiProbe, DevicesProbe, Direction, Heartbeat, Input, MigrateResult, Mode, NodeCount,
    NotifyResult, NotifyType, Outcome, Policy, ProbeReport, ScaleResult, ScaleSetProbe, Tier,
    Timestamp, UpsEvent, UpsStatus, WitnessReport,
};
use stateright::{Model, Property};
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The model clock starts on the 1st of a month (2026-03-01T00:00:00Z), so the budget's
/// monthly reset is never crossed by a bounded run.
pub const START: Timestamp = Timestamp::from_secs(1_772_323_200);
/// Home's nodes and on-prem Tailscale devices (the drills' default world).
pub const NODES: u32 = 7;
pub const SITE: &str = "home";
/// Actions waiting for an outcome; when a step hands out more, the oldest one's outcome is
/// lost (a shell crash), which the core heals by re-issuing after `action_timeout_s`.
pub const QUEUE_MAX: usize = 6;

/// The test policy: the defaults, with a quicker silence rule, a heartbeat timeout on the
/// model's 30-second time lattice, a small, fast-spending budget so that the budget cap is
/// reachable within a bounded run, and short output bounds (audit, incident lines) to keep
/// the states small in memory.
pub fn test_policy() -> Policy {
    Policy {
        // Two failed probes (default 3) make "home unreachable" one input shorter.
        silence_min_probes: 2,
        // 89 s (default 90), so that the time step `heartbeat_timeout_s + 1` = 90 s lies on
        // the 30-second lattice of every other step and policy time: on that lattice a
        // heartbeat is fresh up to 60 s and overdue from 90 s on (with 90 it would still be
        // fresh at 90 s and overdue only at 120 s).
        heartbeat_timeout_s: 89,
        // A tiny budget, so that the cap is reached within a bounded run: one node-hour a
        // month (6 USD at 6 USD per node-hour), projected over 10 minutes (1 USD per node).
        // The cap starts at 6, above max_nodes, and falls by one per USD spent: a few minutes
        // of an outage at 5 nodes, or half an hour at 2.
        monthly_budget_usd: Some(6.0),
        price_per_node_hour_usd: 6.0,
        budget_horizon_s: 600,
        // Pure output (no decision reads them): small to keep each state small.
        audit_max: 2,
        incident_lines_max: 2,
        ..Policy::default()
    }
}

/// What the UPS reports (the model sends an event only when this changes, as upsmon does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Power {
    Online,
    OnBattery,
    LowBattery,
    /// The agent lost its link to upsd: the status is unknown.
    CommBad,
    /// upsd set forced shutdown (optional, [`BurstModel::fsd`]).
    Fsd,
}

impl Power {
    pub const ALL: [Power; 5] = [
        Power::Online,
        Power::OnBattery,
        Power::LowBattery,
        Power::CommBad,
        Power::Fsd,
    ];

    /// The NUT notify type of the event announcing this power.
    pub fn notify(self) -> &'static str {
        match self {
            Power::Online => "ONLINE",
            Power::OnBattery => "ONBATT",
            Power::LowBattery => "LOWBATT",
            Power::CommBad => "COMMBAD",
            Power::Fsd => "FSD",
        }
    }

    /// `ups.status` with the event and in later heartbeats ("" = upsd unreadable).
    pub fn status(self) -> &'static str {
        match self {
            Power::Online => "OL",
            Power::OnBattery => "OB DISCHRG",
            Power::LowBattery => "OB DISCHRG LB",
            Power::CommBad => "",
            Power::Fsd => "FSD OB DISCHRG LB",
        }
    }
}

/// One letter of the alphabet: one input to `step` at the model's `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    /// A UPS event (fresh id).
    Ups(Power),
    /// The timer probe: the home API ready with 7/7 nodes, or unreachable; all 7 on-prem
    /// Tailscale devices online, or none. The scale set part is Unknown.
    Probe {
        api_ready: bool,
        devices_online: bool,
    },
    /// A heartbeat (fresh id) asking for a lease: 7/7 nodes, API ok, the UPS status last sent.
    Heartbeat,
    /// A witness report (fresh id).
    Witness { reachable: bool },
    /// Time passes by this many seconds, then `Input::Tick`.
    Advance(u64),
    /// The oldest queued action's outcome: success or failure.
    Outcome { ok: bool },
}

/// An action handed out by `step` whose outcome has not been fed back yet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pending {
    Scale(u32),
    Migrate(Tier, Direction),
    Notify(String),
}

impl Pending {
    fn of(action: &Action) -> Pending {
        match action {
            Action::SetCapacity { capacity, .. } => Pending::Scale(*capacity),
            Action::Migrate {
                tier, direction, ..
            } => Pending::Migrate(*tier, *direction),
            Action::Notify(n) => Pending::Notify(n.key.clone()),
        }
    }

    /// The outcome input the shell would feed back.
    pub fn outcome(&self, ok: bool) -> Outcome {
        let detail = "model: failed".to_string();
        match self {
            Pending::Scale(c) => Outcome::Scale {
                requested: *c,
                result: if ok {
                    ScaleResult::Accepted {
                        capacity: *c,
                        running: Some(*c),
                    }
                } else {
                    ScaleResult::Failed { detail }
                },
            },
            Pending::Migrate(tier, direction) => Outcome::Migrate {
                tier: *tier,
                direction: *direction,
                result: if ok {
                    MigrateResult::Done { workloads: 1 }
                } else {
                    MigrateResult::Failed { detail }
                },
            },
            Pending::Notify(key) => Outcome::Notify {
                key: key.clone(),
                result: if ok {
                    NotifyResult::Delivered {
                        message_id: Some(format!("msg-{key}")),
                    }
                } else {
                    NotifyResult::Failed {
                        detail,
                        retryable: true,
                    }
                },
            },
        }
    }
}

/// What the model saw at the stateful tier's move to the cloud (assessed after the step).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveFacts {
    pub mode: Mode,
    pub quorum: bool,
    pub votes_down: Vec<&'static str>,
    pub votes_up: Vec<&'static str>,
    pub lease_expired: bool,
}

/// Facts about the step that led to a state, for reports. Not hashed (see [`State`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LastStep {
    pub act: Act,
    pub prev_desired: u32,
    /// The actions the step handed out.
    pub actions: Vec<Pending>,
    /// A `Migrate { Stateful, ToCloud }` was handed out by this step.
    pub stateful_to_cloud: Option<MoveFacts>,
}

/// The model state. Hashed and compared by [`State::canonical`] (the state document without
/// what no decision reads, times relative to `now`), the queue, the UPS power and the two
/// verdicts on the last step; `now`, the id counter, the input count and the last step's facts
/// are left out.
#[derive(Clone, Debug)]
pub struct State {
    pub site: SiteState,
    /// The model's policy (not hashed; the same in every state).
    pub policy: Arc<Policy>,
    /// The model clock (equal to `site.clock` after every step).
    pub now: Timestamp,
    pub queue: VecDeque<Pending>,
    /// The UPS power last sent (what heartbeats report).
    pub ups: Power,
    /// Counter for event ids. Not hashed: ids only feed `seen`, which is not hashed either.
    pub next_id: u64,
    /// Inputs since the initial state. Not hashed: a state is explored from the first (in
    /// breadth-first order, the shortest) path that reaches it.
    pub inputs: usize,
    /// Not hashed; replaying a path recomputes it exactly.
    pub last: Option<LastStep>,
    /// Property 3 held for the last step (no unjustified scale-down).
    pub scale_down_ok: bool,
    /// Property 4 held for the last step (no unjustified stateful move).
    pub stateful_move_ok: bool,
}

impl State {
    fn fresh_id(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("{kind}-{}", self.next_id)
    }

    /// The canonical form of the state document: the JSON of [`normalize`]'s representative,
    /// with every timestamp (any integer of at least 10^12 ms) as its offset from `now`.
    /// `step` reads times only as differences and order, except the budget's calendar month,
    /// and a bounded run never leaves the month it starts in (checked in
    /// [`State::check_bounds`]).
    pub fn canonical(&self) -> Vec<u8> {
        let now = self.now.millis();
        let doc = normalize(&self.site, self.now, &self.policy).to_json();
        map_timestamps(&doc, |t| format!("@{}", t - now))
    }

    /// What is hashed and compared: the canonical document, the queue, the UPS power and the
    /// verdicts. Not `now` (every time in the document is relative to it), not the id counter,
    /// not the last step's facts.
    fn key(&self) -> (Vec<u8>, &VecDeque<Pending>, Power, bool, bool) {
        (
            self.canonical(),
            &self.queue,
            self.ups,
            self.scale_down_ok,
            self.stateful_move_ok,
        )
    }

    /// What the canonical form relies on.
    fn check_bounds(&self, policy: &Policy) {
        assert!(
            self.site.seen.len() < policy.dedupe_max,
            "the dedupe bound was reached: `seen` can no longer be left out of the hash"
        );
        assert!(
            self.now.month() == START.month(),
            "the model left its starting month: times can no longer be taken relative to now"
        );
    }
}

/// The representative of `site`'s class: what no decision reads is cleared, and what is read
/// only through a threshold is cut at that threshold. Each line names its readers in the
/// core; `tests/canonical.rs` checks on random runs that states with the same canonical form
/// stay alike under every input (so a change in the core that breaks a line here is caught).
pub fn normalize(site: &SiteState, now: Timestamp, policy: &Policy) -> SiteState {
    let mut d = site.clone();
    // Pure output: only appended, copied into messages, actions or reason texts.
    d.audit.clear(); // audit::record
    d.capacity.reason.clear(); // into SetCapacity and messages
    d.trouble.causes = Default::default(); // mode::what_came_back, a reason text
    for i in &mut d.incidents {
        i.lines.clear();
        i.title.clear();
        i.opened_at = now; // only for the resolved title's minutes
        // Only compared (`delivered < revision`) and equalised on delivery.
        i.revision = u64::from(i.delivered < i.revision);
        i.delivered = 0;
    }
    for p in &mut d.posts {
        p.lines.clear();
        p.title.clear();
        p.created_at = now;
    }
    // Every event the model sends has a fresh id, so the dedupe never matches (the bound
    // `dedupe_max` is checked in `State::check_bounds`).
    d.seen.clear();
    // Read only in Recovering, and set by every mode change.
    if d.mode != Mode::Recovering {
        d.mode_since = now;
    }
    // Event times are only compared with a new event's time, which in this model is `now`:
    // only "the last UPS event is from now" matters (a heartbeat's UPS view then waits).
    let sig = &mut d.signals;
    if sig.power.event_at != Some(now) {
        sig.power.event_at = None;
    }
    sig.heartbeat.event_at = None;
    sig.witness.event_at = None;
    // Counters read only as "at least the threshold" (and "> 0").
    let p = policy;
    let cut = |n: &mut u32, max: u32| *n = (*n).min(max);
    cut(&mut sig.probe.consecutive_failures, p.silence_min_probes);
    cut(&mut sig.witness.down_streak, p.witness_down_reports);
    cut(&mut sig.devices.offline_streak, p.devices_offline_probes);
    // Times read only as "at least this long ago" (or "not fresh", or "passed"): once that
    // holds it holds for good, so any time further back is the same.
    let s = |secs: u64| (secs as i64).saturating_mul(1000);
    for (t, ms) in [
        (&mut sig.probe.last_at, s(p.probe_ttl_s) + 1),
        (&mut sig.probe.up_since, s(p.heartbeat_timeout_s)),
        (&mut sig.devices.seen_at, s(p.probe_ttl_s) + 1),
        (&mut sig.devices.offline_since, s(p.devices_offline_grace_s)),
        (&mut sig.witness.received_at, s(p.witness_ttl_s) + 1),
        (&mut sig.witness.down_since, s(p.witness_down_grace_s)),
        (&mut d.trouble.power_down_since, s(p.grace_on_battery_s)),
        (&mut d.trouble.power_unknown_since, s(p.power_unknown_max_s)),
        (&mut d.in_flight.scale, s(p.action_timeout_s)),
        (&mut d.in_flight.notify, s(p.action_timeout_s)),
        (&mut d.in_flight.critical, s(p.action_timeout_s)),
        (&mut d.in_flight.stateful, s(p.action_timeout_s)),
        (&mut d.capacity.retry_at, 0),
        (&mut d.placement.critical.retry_at, 0),
        (&mut d.placement.stateful.retry_at, 0),
        (&mut d.notify_retry_at, 0),
    ] {
        saturate(t, now, ms);
    }
    if let Some(l) = &mut d.lease {
        let mut expires = Some(l.expires_at);
        saturate(&mut expires, now, s(p.lease_margin_s));
        l.expires_at = expires.unwrap_or(l.expires_at);
        l.granted_at = l.expires_at; // never read
    }
    d
}

/// Moves `t` up to `ms` before `now` if it is further back.
fn saturate(t: &mut Option<Timestamp>, now: Timestamp, ms: i64) {
    if let Some(x) = t
        && now.since(*x) > ms
    {
        *x = now.plus_millis(-ms);
    }
}

/// Timestamps are milliseconds since 1970; any integer from 2001 on is taken as one (no
/// count in the state document comes near).
const TIMESTAMP_MIN_MS: i64 = 1_000_000_000_000;

/// `json` with every integer that is a timestamp (outside strings) replaced by `f` of it.
pub fn map_timestamps(json: &[u8], f: impl Fn(i64) -> String) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let mut i = 0;
    let mut in_string = false;
    while let Some(&c) = json.get(i) {
        if in_string {
            out.push(c);
            if c == b'\\' {
                out.extend(json.get(i + 1));
                i += 1;
            } else if c == b'"' {
                in_string = false;
            }
            i += 1;
        } else if c == b'-' || c.is_ascii_digit() {
            let start = i;
            i += 1;
            while json
                .get(i)
                .is_some_and(|c| c.is_ascii_digit() || b".eE+-".contains(c))
            {
                i += 1;
            }
            let token = &json[start..i];
            match std::str::from_utf8(token)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
            {
                Some(t) if t >= TIMESTAMP_MIN_MS => out.extend_from_slice(f(t).as_bytes()),
                _ => out.extend_from_slice(token),
            }
        } else {
            in_string = c == b'"';
            out.push(c);
            i += 1;
        }
    }
    out
}

impl Hash for State {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.key().hash(h);
    }
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for State {}

/// The model: a policy, the time steps, whether FSD is in the alphabet, and the bound.
#[derive(Clone, Debug)]
pub struct BurstModel {
    pub policy: Policy,
    /// The bound: paths of at most this many inputs are explored (every state on them is
    /// checked).
    pub max_inputs: usize,
    /// The distinct time steps (seconds), smallest first.
    pub steps: Vec<u64>,
    /// Include the UPS forced shutdown (FSD) event.
    pub fsd: bool,
}

impl BurstModel {
    pub fn new(policy: Policy, fsd: bool, max_inputs: usize) -> BurstModel {
        if let Err(e) = policy.validate() {
            panic!("the model's policy is invalid: {e}");
        }
        let mut steps = vec![
            policy.grace_on_battery_s,
            policy.silence_grace_s,
            policy.heartbeat_timeout_s + 1,
            policy.lease_s + policy.lease_margin_s,
            policy.scale_down_delay_s,
            30, // a probe interval
        ];
        steps.sort_unstable();
        steps.dedup();
        BurstModel {
            policy,
            max_inputs,
            steps,
            fsd,
        }
    }

    /// The input an action stands for in `s` (moves the clock for `Advance`, pops the queue
    /// for `Outcome`, bumps the id counter).
    pub fn input(&self, s: &mut State, act: Act) -> Option<Input> {
        Some(match act {
            Act::Ups(p) => {
                s.ups = p;
                Input::Ups(UpsEvent {
                    id: s.fresh_id("ups"),
                    at: s.now,
                    ups: "ups@home".into(),
                    notify: NotifyType::parse(p.notify()),
                    status: UpsStatus::parse(p.status()),
                    battery_charge: None,
                    battery_runtime_s: None,
                })
            }
            Act::Probe {
                api_ready,
                devices_online,
            } => Input::Probe(ProbeReport {
                home_api: if api_ready {
                    ApiProbe::Ready {
                        latency_ms: 10,
                        nodes: Some(NodeCount {
                            ready: NODES,
                            total: NODES,
                        }),
                    }
                } else {
                    ApiProbe::Unreachable {
                        detail: "model: unreachable".into(),
                    }
                },
                devices: DevicesProbe::Seen {
                    online: if devices_online { NODES } else { 0 },
                    total: NODES,
                },
                scale_set: ScaleSetProbe::Unknown {
                    detail: "model".into(),
                },
            }),
            Act::Heartbeat => Input::Heartbeat(Heartbeat {
                id: s.fresh_id("hb"),
                at: s.now,
                nodes_ready: NODES,
                nodes_total: NODES,
                ups_status: Some(UpsStatus::parse(s.ups.status())),
                battery_charge: None,
                battery_runtime_s: None,
                api_ok: true,
                lease: true,
            }),
            Act::Witness { reachable } => Input::Witness(WitnessReport {
                id: s.fresh_id("witness"),
                at: s.now,
                target: "home".into(),
                reachable,
                latency_ms: None,
            }),
            Act::Advance(secs) => {
                s.now = s.now.plus_secs(secs);
                Input::Tick
            }
            Act::Outcome { ok } => Input::Outcome(s.queue.pop_front()?.outcome(ok)),
        })
    }
}

impl Model for BurstModel {
    type State = State;
    type Action = Act;

    /// One initial state: a healthy site at zero whose scale set was read (the cold state
    /// document after the shell's first reconcile: a tick, and `SetCapacity 0` accepted).
    fn init_states(&self) -> Vec<State> {
        let cold = State {
            site: SiteState::new(SITE, START),
            policy: Arc::new(self.policy.clone()),
            now: START,
            queue: VecDeque::new(),
            ups: Power::Online,
            next_id: 0,
            inputs: 0,
            last: None,
            scale_down_ok: true,
            stateful_move_ok: true,
        };
        let warm = [Act::Advance(0), Act::Outcome { ok: true }]
            .into_iter()
            .try_fold(cold.clone(), |s, a| self.next_state(&s, a));
        let mut warm = warm.unwrap_or(cold);
        warm.last = None;
        warm.inputs = 0;
        vec![warm]
    }

    fn actions(&self, s: &State, out: &mut Vec<Act>) {
        if s.inputs >= self.max_inputs {
            return;
        }
        for p in Power::ALL {
            if p != s.ups && (self.fsd || p != Power::Fsd) {
                out.push(Act::Ups(p));
            }
        }
        for api_ready in [true, false] {
            for devices_online in [true, false] {
                out.push(Act::Probe {
                    api_ready,
                    devices_online,
                });
            }
        }
        out.push(Act::Heartbeat);
        out.push(Act::Witness { reachable: true });
        out.push(Act::Witness { reachable: false });
        out.extend(self.steps.iter().map(|d| Act::Advance(*d)));
        if !s.queue.is_empty() {
            out.push(Act::Outcome { ok: true });
            out.push(Act::Outcome { ok: false });
        }
    }

    fn next_state(&self, s: &State, act: Act) -> Option<State> {
        let mut n = s.clone();
        n.inputs += 1;
        let input = self.input(&mut n, act)?;
        let prev_desired = s.site.capacity.desired;
        let step = burst_core::step(n.site, &input, n.now, &self.policy);
        n.site = step.state;
        for a in &step.actions {
            if n.queue.len() == QUEUE_MAX {
                n.queue.pop_front();
            }
            n.queue.push_back(Pending::of(a));
        }
        n.check_bounds(&self.policy);

        // The verdicts on this step (properties 3 and 4), taken now: they are transition
        // properties, and only the verdict (not the previous state) may be hashed.
        let site = &n.site;
        n.scale_down_ok = invariants::scale_down_ok(prev_desired, site, &self.policy);
        let moved = step.actions.iter().any(|a| {
            matches!(
                a,
                Action::Migrate {
                    tier: Tier::Stateful,
                    direction: Direction::ToCloud,
                    ..
                }
            )
        });
        let facts = moved.then(|| {
            let a = assess(site, n.now, &self.policy);
            MoveFacts {
                mode: site.mode,
                quorum: a.quorum(),
                votes_down: a.votes.down.clone(),
                votes_up: a.votes.up.clone(),
                lease_expired: a.lease_expired,
            }
        });
        n.stateful_move_ok = !moved || invariants::stateful_move_ok(site, n.now, &self.policy);
        n.last = Some(LastStep {
            act,
            prev_desired,
            actions: step.actions.iter().map(Pending::of).collect(),
            stateful_to_cloud: facts,
        });
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(P_BOUNDS, capacity_in_bounds),
            Property::always(P_OUTAGE_FORMULA, outage_meets_formula),
            Property::always(P_NO_SCALE_DOWN, |_, s: &State| s.scale_down_ok),
            Property::always(P_STATEFUL, |_, s: &State| s.stateful_move_ok),
            Property::always(P_ONE_INCIDENT, |_, s: &State| {
                invariants::one_open_incident(&s.site)
            }),
            Property::sometimes(S_OUTAGE, |_, s: &State| s.site.mode == Mode::Outage),
            Property::sometimes(S_STATEFUL_CLOUD, |_, s: &State| {
                s.site.placement.stateful.side == Side::Cloud
            }),
            Property::sometimes(S_RECOVERED, |_, s: &State| {
                s.site.mode == Mode::Healthy && s.site.incidents_opened > 0
            }),
            Property::sometimes(S_BUDGET_CAPPED, |_, s: &State| s.site.budget.capped),
        ]
    }
}

pub use burst_core::invariants::{
    BOUNDS as P_BOUNDS, NO_SCALE_DOWN as P_NO_SCALE_DOWN, ONE_INCIDENT as P_ONE_INCIDENT,
    OUTAGE_FORMULA as P_OUTAGE_FORMULA, STATEFUL as P_STATEFUL,
};
pub const S_OUTAGE: &str = "outage reached";
pub const S_STATEFUL_CLOUD: &str = "stateful moved to the cloud";
pub const S_RECOVERED: &str = "recovered to healthy after an incident";
pub const S_BUDGET_CAPPED: &str = "capacity capped by the budget";

fn capacity_in_bounds(m: &BurstModel, s: &State) -> bool {
    invariants::capacity_in_bounds(&s.site, &m.policy)
}

fn outage_meets_formula(m: &BurstModel, s: &State) -> bool {
    invariants::outage_meets_formula(&s.site, s.now, &m.policy)
}
