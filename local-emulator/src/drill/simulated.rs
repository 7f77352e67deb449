//! Virtual-time drills: the decision core driven by a simulated home and cloud on a virtual
//! clock. Nothing sleeps; time jumps to the next thing due (scenario event, probe, heartbeat,
//! witness, the core's own wake-up), like quinn's test `Pair`.

use super::cloud::{Cloud, ScaleEffect};
use super::expect::{Observed, check_point};
use super::gap::GapMeter;
use super::home::Home;
use super::record::{Kind, Record};
use super::{DrillRun, Measured};
use crate::scenario::{Event, Scenario};
use burst_core::{
    Action, Input, NotifyResult, Outcome, Policy, SiteState, TailscaleEvent, Tier, Timestamp, step,
};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Virtual drills start on a fixed date so budgets and messages are reproducible.
pub const EPOCH: Timestamp = Timestamp::from_secs(1_772_409_600); // 2026-03-02T00:00:00Z

/// At one instant: world changes first, then the periodic reports, then the core's own
/// wake-up, then expectations (they see everything due at that time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Event(usize),
    Probe,
    Heartbeat,
    Witness,
    Wake,
    Expect(usize),
}

/// Bound on action → outcome → step chains within one instant.
const MAX_CHAIN: usize = 64;

struct Sim<'a> {
    scenario: &'a Scenario,
    policy: Policy,
    state: Option<SiteState>,
    home: Home,
    cloud: Cloud,
    records: Vec<Record>,
    queue: BinaryHeap<Reverse<(i64, Due)>>,
    wake_at: Option<Timestamp>,
    steps: u64,
}

pub fn run(scenario: &Scenario) -> DrillRun {
    let started = Instant::now();
    let (records, mut measured) = simulate(scenario, scenario.policy.clone());
    if scenario.policy.burst_ahead {
        // The same world without bursting ahead: what the early burst removed and cost.
        let policy = Policy {
            burst_ahead: false,
            ..scenario.policy.clone()
        };
        measured.without_ahead = Some(simulate(scenario, policy).1.gap);
    }
    measured.wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    super::finish(scenario, records, true, measured)
}

fn simulate(scenario: &Scenario, policy: Policy) -> (Vec<Record>, Measured) {
    let mut sim = Sim {
        scenario,
        home: Home::new(&scenario.world),
        cloud: Cloud::new(
            scenario.world.boot_time.millis(),
            policy.price_per_node_hour_usd,
            EPOCH,
        ),
        state: Some(SiteState::new(scenario.world.site.clone(), EPOCH)),
        policy,
        records: Vec::new(),
        queue: BinaryHeap::new(),
        wake_at: None,
        steps: 0,
    };
    sim.schedule_all();
    let end = scenario.duration.millis();
    let max_nodes = sim.policy.max_nodes;
    let mut gap = GapMeter::default();
    let mut last = 0;
    gap.observe(0, 0, 0);
    while let Some(Reverse((t, due))) = sim.queue.pop() {
        if t > end {
            break;
        }
        sim.measure_until(&mut gap, last, t, max_nodes);
        sim.cloud.accrue(EPOCH.plus_millis(t));
        sim.handle(t, due);
        sim.measure_at(&mut gap, t, max_nodes);
        last = t;
    }
    sim.measure_until(&mut gap, last, end, max_nodes);
    sim.cloud.accrue(EPOCH.plus_millis(end));
    let measured = Measured {
        cost_usd: sim.cloud.cost_usd(),
        steps: sim.steps,
        gap: gap.result(end),
        ..Measured::default()
    };
    (sim.records, measured)
}

impl Sim<'_> {
    /// The gap meter sees every instance that became running between two drill instants.
    fn measure_until(&self, gap: &mut GapMeter, from: i64, to: i64, max_nodes: u32) {
        let missing = self.home.missing_nodes().min(max_nodes);
        for at in self
            .cloud
            .ready_between(EPOCH.plus_millis(from), EPOCH.plus_millis(to))
        {
            gap.observe(at.since(EPOCH), missing, self.cloud.running(at));
        }
    }

    fn measure_at(&self, gap: &mut GapMeter, t: i64, max_nodes: u32) {
        let now = EPOCH.plus_millis(t);
        gap.observe(
            t,
            self.home.missing_nodes().min(max_nodes),
            self.cloud.running(now),
        );
    }

    fn schedule_all(&mut self) {
        let w = &self.scenario.world;
        let end = self.scenario.duration.millis();
        for (i, e) in self.scenario.events.iter().enumerate() {
            self.queue.push(Reverse((e.t.millis(), Due::Event(i))));
        }
        for (i, x) in self.scenario.expectations.iter().enumerate() {
            if let Some(at) = x.at {
                self.queue.push(Reverse((at.millis(), Due::Expect(i))));
            }
        }
        let mut periodic = vec![
            (w.probe_interval.millis(), Due::Probe),
            (w.heartbeat_interval.millis(), Due::Heartbeat),
        ];
        if let Some(wi) = w.witness_interval {
            periodic.push((wi.millis(), Due::Witness));
        }
        for (every, due) in periodic {
            let mut t = 0;
            while t <= end {
                self.queue.push(Reverse((t, due)));
                t += every.max(1);
            }
        }
    }

    fn record(&mut self, t: i64, kind: Kind) {
        self.records.push(Record { t_ms: t, kind });
    }

    fn handle(&mut self, t: i64, due: Due) {
        let now = EPOCH.plus_millis(t);
        match due {
            Due::Event(i) => {
                let e = self.scenario.events[i].clone();
                self.world_event(t, &e);
            }
            Due::Probe => {
                let report = self.home.probe(self.cloud.probe(now));
                self.feed(t, Input::Probe(report));
            }
            Due::Heartbeat => {
                // The heartbeat flushes the spool first, like the real agent.
                for ev in self.home.flush() {
                    self.feed(t, Input::Ups(ev));
                }
                if let Some(hb) = self.home.heartbeat(now) {
                    self.feed(t, Input::Heartbeat(hb));
                }
            }
            Due::Witness => {
                let w = self.home.witness(now);
                self.feed(t, Input::Witness(w));
            }
            Due::Wake => {
                if self.wake_at == Some(now) {
                    self.wake_at = None;
                    self.feed(t, Input::Tick);
                }
            }
            Due::Expect(i) => {
                let x = &self.scenario.expectations[i];
                let observed = self.observe(now);
                for (ok, what) in check_point(x, &observed) {
                    self.record(t, Kind::Expect { ok, what });
                }
            }
        }
    }

    fn observe(&self, now: Timestamp) -> Observed {
        let state = self.state.as_ref();
        Observed {
            mode: state
                .map(|s| s.mode.as_str().to_string())
                .unwrap_or_default(),
            capacity: self.cloud.capacity(),
            running: self.cloud.running(now),
            critical_in_cloud: self.cloud.in_cloud(Tier::Critical),
            stateful_in_cloud: self.cloud.in_cloud(Tier::Stateful),
            incident_open: state.is_some_and(|s| s.open_incident().is_some()),
            webhook_gone: state.is_some_and(|s| s.webhook_gone.is_some()),
            undelivered: state.map_or(0, |s| {
                s.posts.len()
                    + s.incidents
                        .iter()
                        .filter(|i| i.delivered < i.revision)
                        .count()
            }),
        }
    }

    fn world_event(&mut self, t: i64, e: &Event) {
        let now = EPOCH.plus_millis(t);
        self.record(t, Kind::Event { text: describe(e) });
        if let Some(secs) = e.arm_throttle {
            self.cloud.throttle_next(secs);
        }
        if let Some(n) = e.arm_conflicts {
            self.cloud.conflict_next(n);
        }
        if let Some(secs) = e.discord_rate_limit {
            self.cloud.discord_rate_limit_next(secs);
        }
        if e.discord_gone == Some(true) {
            self.cloud.discord_gone();
        }
        if let Some(n) = e.evict {
            let evicted = self.cloud.evict(n, now);
            let capacity = self.cloud.capacity();
            self.record(t, Kind::Evict { evicted, capacity });
        }
        if let Some(ev) = self.home.apply(e, now) {
            let spooled_before = self.home.spooled();
            let delivered = self.home.send_ups(ev);
            if delivered.is_empty() {
                self.record(
                    t,
                    Kind::Event {
                        text: format!(
                            "agent offline: event spooled ({} waiting)",
                            spooled_before + 1
                        ),
                    },
                );
            }
            for ev in delivered {
                self.feed(t, Input::Ups(ev));
            }
        }
        if let Some(kind) = &e.tailscale {
            let hash = format!("{kind}-{t}-{}", e.device.as_deref().unwrap_or(""));
            let ev = TailscaleEvent {
                hash,
                kind: kind.clone(),
                at: Some(now),
                device: e.device.clone(),
                message: None,
            };
            self.feed(t, Input::Tailscale(ev));
        }
    }

    /// Steps the core with one input, then carries out its actions and feeds the outcomes
    /// back until nothing is left to do at this instant.
    fn feed(&mut self, t: i64, input: Input) {
        let now = EPOCH.plus_millis(t);
        let mut pending = vec![input];
        let mut chain = 0;
        while let Some(input) = pending.pop() {
            chain += 1;
            if chain > MAX_CHAIN {
                self.record(
                    t,
                    Kind::Event {
                        text: "drill: action chain too long, stopped".into(),
                    },
                );
                break;
            }
            let Some(state) = self.state.take() else {
                return;
            };
            let before = state.mode;
            let out = step(state, &input, now, &self.policy);
            self.steps += 1;
            if out.state.mode != before {
                let why = out
                    .state
                    .audit
                    .iter()
                    .rev()
                    .find(|a| a.what.starts_with("mode "))
                    .map(|a| a.why.clone())
                    .unwrap_or_default();
                self.record(
                    t,
                    Kind::Mode {
                        from: before.as_str().into(),
                        to: out.state.mode.as_str().into(),
                        why,
                    },
                );
            }
            if let Some(w) = out.next_wake
                && self.wake_at.is_none_or(|cur| w < cur || cur <= now)
            {
                self.wake_at = Some(w);
                self.queue.push(Reverse((w.since(EPOCH), Due::Wake)));
            }
            self.state = Some(out.state);
            // Outcomes are fed back in order; push reversed because `pending` is a stack.
            let mut outcomes: Vec<Input> = out
                .actions
                .iter()
                .map(|a| Input::Outcome(self.execute(t, a)))
                .collect();
            outcomes.reverse();
            pending.extend(outcomes);
        }
    }

    fn execute(&mut self, t: i64, action: &Action) -> Outcome {
        let now = EPOCH.plus_millis(t);
        match action {
            Action::SetCapacity { capacity, reason } => {
                let (result, effect) = self.cloud.set_capacity(*capacity, now);
                match effect {
                    ScaleEffect::Written { from, to } => self.record(
                        t,
                        Kind::Scale {
                            from,
                            capacity: to,
                            reason: reason.clone(),
                        },
                    ),
                    ScaleEffect::Unchanged => self.record(
                        t,
                        Kind::ArmCall {
                            result: format!("capacity already {capacity}"),
                        },
                    ),
                    ScaleEffect::Refused => self.record(
                        t,
                        Kind::ArmCall {
                            result: format!("write of {capacity} refused: {result:?}"),
                        },
                    ),
                }
                Outcome::Scale {
                    requested: *capacity,
                    result,
                }
            }
            Action::Migrate {
                tier, direction, ..
            } => {
                let w = &self.scenario.world;
                let n = match tier {
                    Tier::Critical => w.critical_workloads,
                    Tier::Stateful => w.stateful_workloads,
                };
                let result = self.cloud.migrate(*tier, *direction, n);
                self.record(
                    t,
                    Kind::Migrate {
                        tier: tier.as_str().into(),
                        direction: direction.as_str().into(),
                    },
                );
                Outcome::Migrate {
                    tier: *tier,
                    direction: *direction,
                    result,
                }
            }
            Action::Notify(n) => {
                let result = self.cloud.notify(n);
                match &result {
                    NotifyResult::Delivered { .. } => self.record(
                        t,
                        Kind::Notify {
                            incident: n.key.clone(),
                            action: n.delivery.as_str().into(),
                            title: n.title.clone(),
                        },
                    ),
                    other => self.record(
                        t,
                        Kind::NotifyFailed {
                            incident: n.key.clone(),
                            detail: format!("{other:?}"),
                        },
                    ),
                }
                Outcome::Notify {
                    key: n.key.clone(),
                    result,
                }
            }
        }
    }
}

/// One line saying what a timeline event does.
pub fn describe(e: &Event) -> String {
    let mut parts = Vec::new();
    if let Some(n) = &e.note {
        parts.push(n.clone());
    }
    if let Some(u) = &e.ups {
        let mut s = format!("UPS {u}");
        if let Some(st) = &e.status {
            s.push_str(&format!(" [{st}]"));
        }
        if let Some(c) = e.charge {
            s.push_str(&format!(" {c} %"));
        }
        parts.push(s);
    }
    let updown = |name: &str, v: Option<crate::scenario::UpDown>| {
        v.map(|v| {
            format!(
                "{name} {}",
                if v == crate::scenario::UpDown::Up {
                    "up"
                } else {
                    "down"
                }
            )
        })
    };
    parts.extend(updown("home", e.home));
    parts.extend(updown("internet", e.internet));
    parts.extend(updown("cloud path", e.cloud_path));
    parts.extend(updown("home API", e.home_api));
    if let Some(n) = e.nodes_ready {
        parts.push(format!("nodes ready {n}"));
    }
    if let Some(h) = e.heartbeats {
        parts.push(format!("heartbeats {h:?}").to_lowercase());
    }
    if let Some(d) = e.devices_online {
        parts.push(format!("tailscale devices online {d}"));
    }
    if let Some(k) = &e.tailscale {
        parts.push(format!("tailscale webhook {k}"));
    }
    if let Some(n) = e.evict {
        parts.push(format!("evict {n} spot instance(s)"));
    }
    if let Some(s) = e.arm_throttle {
        parts.push(format!("ARM throttles the next write (Retry-After {s})"));
    }
    if let Some(n) = e.arm_conflicts {
        parts.push(format!("ARM answers the next {n} write(s) with 409"));
    }
    if let Some(s) = e.discord_rate_limit {
        parts.push(format!("Discord rate-limits the next message ({s} s)"));
    }
    if e.discord_gone == Some(true) {
        parts.push("Discord webhook deleted".into());
    }
    parts.join(", ")
}
