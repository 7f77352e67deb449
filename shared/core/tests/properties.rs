//! Property tests over random input sequences: the capacity and budget invariants hold.
#![allow(clippy::unwrap_used)]

use burst_core::assess::assess;
use burst_core::budget;
use burst_core::{
    Action, ApiProbe, DevicesProbe, Direction, Heartbeat, Input, MigrateResult, Mode, NodeCount,
    NotifyResult, NotifyType, Outcome, Policy, ProbeReport, ScaleResult, ScaleSetProbe, SiteState,
    TailscaleEvent, Tier, Timestamp, UpsEvent, UpsStatus, WitnessReport, step,
};
use proptest::prelude::*;

const START: Timestamp = Timestamp::from_secs(1_772_409_600);

/// One thing that happens, before ids and times are filled in.
#[derive(Clone, Debug)]
enum Ev {
    Ups(u8, u8),
    Heartbeat {
        ready: u32,
        total: u32,
        api_ok: bool,
    },
    Probe {
        api: u8,
        ready: u32,
        devices_online: u32,
        capacity: Option<u32>,
    },
    Witness(bool),
    Tailscale(u8),
    Tick,
}

const TYPES: [&str; 12] = [
    "ONLINE",
    "ONBATT",
    "LOWBATT",
    "FSD",
    "COMMOK",
    "COMMBAD",
    "SHUTDOWN",
    "REPLBATT",
    "NOCOMM",
    "NOPARENT",
    "CAL",
    "SUSPEND_STARTING",
];
const STATUSES: [&str; 8] = [
    "OL",
    "OB DISCHRG",
    "OB DISCHRG LB",
    "OL CHRG",
    "",
    "FSD OB LB",
    "WAIT",
    "OL NEWTOKEN",
];
const TS_TYPES: [&str; 5] = [
    "nodeCreated",
    "nodeKeyExpiringInOneDay",
    "nodeKeyExpired",
    "test",
    "policyUpdate",
];

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        (0..TYPES.len() as u8, 0..STATUSES.len() as u8).prop_map(|(t, s)| Ev::Ups(t, s)),
        (0u32..8, 1u32..8, any::<bool>()).prop_map(|(ready, total, api_ok)| Ev::Heartbeat {
            ready: ready.min(total),
            total,
            api_ok
        }),
        (0u8..4, 0u32..8, 0u32..8, proptest::option::of(0u32..8)).prop_map(
            |(api, ready, devices_online, capacity)| Ev::Probe {
                api,
                ready,
                devices_online,
                capacity
            }
        ),
        any::<bool>().prop_map(Ev::Witness),
        (0..TS_TYPES.len() as u8).prop_map(Ev::Tailscale),
        Just(Ev::Tick),
    ]
}

fn to_input(e: &Ev, n: usize, now: Timestamp) -> Input {
    match e {
        Ev::Ups(t, s) => Input::Ups(UpsEvent {
            id: format!("ups-{n}"),
            // Agents' events may arrive out of order: jitter their own time.
            at: now.plus_millis(-((n as i64 * 7919) % 5000)),
            ups: "ups@home".into(),
            notify: NotifyType::parse(TYPES[*t as usize]),
            status: UpsStatus::parse(STATUSES[*s as usize]),
            battery_charge: Some(50.0),
            battery_runtime_s: None,
        }),
        Ev::Heartbeat {
            ready,
            total,
            api_ok,
        } => Input::Heartbeat(Heartbeat {
            id: format!("hb-{n}"),
            at: now,
            nodes_ready: *ready,
            nodes_total: *total,
            ups_status: None,
            battery_charge: None,
            battery_runtime_s: None,
            api_ok: *api_ok,
            lease: n.is_multiple_of(2),
        }),
        Ev::Probe {
            api,
            ready,
            devices_online,
            capacity,
        } => Input::Probe(ProbeReport {
            home_api: match api {
                0 => ApiProbe::Ready {
                    latency_ms: 10,
                    nodes: Some(NodeCount {
                        ready: (*ready).min(7),
                        total: 7,
                    }),
                },
                1 => ApiProbe::NotReady {
                    detail: "500".into(),
                },
                2 => ApiProbe::Unreachable {
                    detail: "timeout".into(),
                },
                _ => ApiProbe::Unknown {
                    detail: "401".into(),
                },
            },
            devices: DevicesProbe::Seen {
                online: (*devices_online).min(7),
                total: 7,
            },
            scale_set: match capacity {
                Some(c) => ScaleSetProbe::Seen {
                    capacity: *c,
                    running: *c,
                },
                None => ScaleSetProbe::Unknown {
                    detail: "429".into(),
                },
            },
        }),
        Ev::Witness(r) => Input::Witness(WitnessReport {
            id: format!("w-{n}"),
            at: now,
            target: "home".into(),
            reachable: *r,
            latency_ms: None,
        }),
        Ev::Tailscale(t) => Input::Tailscale(TailscaleEvent {
            hash: format!("ts-{n}"),
            kind: TS_TYPES[*t as usize].into(),
            at: Some(now),
            device: Some("node-1".into()),
            message: None,
        }),
        Ev::Tick => Input::Tick,
    }
}

/// How the simulated services answer an action (picked by the test's random choices).
fn answer(action: &Action, choice: u8) -> Outcome {
    match action {
        Action::SetCapacity { capacity, .. } => Outcome::Scale {
            requested: *capacity,
            result: match choice % 6 {
                0 => ScaleResult::Conflict {
                    detail: "409".into(),
                },
                1 => ScaleResult::Throttled {
                    retry_after_s: 1200,
                },
                2 => ScaleResult::Failed {
                    detail: "500".into(),
                },
                _ => ScaleResult::Accepted {
                    capacity: *capacity,
                    running: Some(*capacity),
                },
            },
        },
        Action::Notify(n) => Outcome::Notify {
            key: n.key.clone(),
            result: match choice % 7 {
                0 => NotifyResult::RateLimited {
                    retry_after_ms: 30_000,
                },
                1 => NotifyResult::Failed {
                    detail: "502".into(),
                    retryable: true,
                },
                2 if choice > 200 => NotifyResult::WebhookGone {
                    detail: "404".into(),
                },
                3 if choice > 100 => NotifyResult::MessageGone {
                    detail: "10008".into(),
                },
                _ => NotifyResult::Delivered {
                    message_id: Some("m1".into()),
                },
            },
        },
        Action::Migrate {
            tier, direction, ..
        } => Outcome::Migrate {
            tier: *tier,
            direction: *direction,
            result: if choice.is_multiple_of(5) {
                MigrateResult::Failed {
                    detail: "forbidden".into(),
                }
            } else {
                MigrateResult::Done { workloads: 2 }
            },
        },
    }
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        0u32..3,
        0u32..8,
        proptest::option::of(0.2f64..30.0),
        0u64..3600,
    )
        .prop_map(|(min, extra, budget, delay)| Policy {
            min_nodes: min,
            max_nodes: min + extra,
            monthly_budget_usd: budget,
            scale_down_delay_s: delay,
            ..Policy::default()
        })
}

/// Everything one run produced, for comparing runs and checking invariants.
#[derive(Debug, PartialEq)]
struct Trace {
    states: Vec<SiteState>,
    actions: Vec<Vec<Action>>,
}

/// Runs a sequence, answering actions, and checks the invariants at every step.
fn run(policy: &Policy, evs: &[(u16, Ev)], choices: &[u8]) -> Trace {
    let mut state = SiteState::new("home", START);
    let mut now = START;
    let mut trace = Trace {
        states: Vec::new(),
        actions: Vec::new(),
    };
    let mut last_outage: Option<Timestamp> = None;
    let mut c = 0usize;
    for (n, (dt, e)) in evs.iter().enumerate() {
        now = now.plus_secs(u64::from(*dt));
        let mut queue = vec![to_input(e, n, now)];
        let mut guard = 0;
        while let Some(input) = queue.pop() {
            guard += 1;
            assert!(guard < 64, "action chain does not settle");
            let prev_desired = state.capacity.desired;
            let out = step(state, &input, now, policy);
            let s = &out.state;
            if s.mode == Mode::Outage {
                last_outage = Some(now);
            }
            check(policy, s, prev_desired, &out.actions, now, last_outage);
            trace.states.push(s.clone());
            trace.actions.push(out.actions.clone());
            for a in out.actions.iter().rev() {
                let choice = choices[c % choices.len()];
                c += 1;
                queue.push(Input::Outcome(answer(a, choice)));
            }
            state = out.state;
        }
    }
    trace
}

fn check(
    policy: &Policy,
    s: &SiteState,
    prev_desired: u32,
    actions: &[Action],
    now: Timestamp,
    last_outage: Option<Timestamp>,
) {
    let cap = budget::cap(&s.budget, policy);
    let d = s.capacity.desired;
    assert!(d <= policy.max_nodes, "desired {d} above max");
    if let Some(cap) = cap {
        assert!(d <= cap, "desired {d} above the budget cap {cap}");
    }
    if cap.is_none_or(|c| c >= policy.min_nodes) {
        assert!(d >= policy.min_nodes, "desired {d} below min");
    }
    if d < prev_desired && !s.budget.capped {
        assert!(
            matches!(s.mode, Mode::Healthy | Mode::Suspect),
            "scaled down from {prev_desired} to {d} in {:?}",
            s.mode
        );
        if let Some(t) = last_outage {
            assert!(
                now.elapsed_at_least(t, policy.scale_down_delay_s),
                "scaled down before the scale-down delay"
            );
        }
    }
    for a in actions {
        match a {
            Action::SetCapacity { capacity, .. } => assert_eq!(*capacity, d),
            Action::Migrate {
                tier: Tier::Stateful,
                direction: Direction::ToCloud,
                ..
            } => {
                assert_eq!(s.mode, Mode::Outage);
                let a = assess(s, now, policy);
                assert!(a.quorum(), "stateful moved without quorum");
                assert!(
                    a.votes.up.is_empty(),
                    "stateful moved while {:?} saw home up",
                    a.votes.up
                );
                assert!(a.lease_expired, "stateful moved under a running lease");
            }
            Action::Migrate {
                tier: Tier::Critical,
                direction: Direction::ToCloud,
                ..
            } => assert!(matches!(s.mode, Mode::Outage | Mode::Recovering)),
            _ => {}
        }
    }
    assert!(s.audit.len() <= policy.audit_max);
    assert!(s.posts.len() <= burst_core::incident::MAX_POSTS);
    assert!(s.incidents.len() <= burst_core::incident::MAX_INCIDENTS);
    assert!(s.seen.len() <= policy.dedupe_max);
}

fn events() -> impl Strategy<Value = Vec<(u16, Ev)>> {
    proptest::collection::vec(
        (prop_oneof![0u16..5, 5u16..120, 120u16..2400], ev()),
        1..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold(p in policy(), evs in events(), choices in proptest::collection::vec(any::<u8>(), 1..32)) {
        run(&p, &evs, &choices);
    }

    #[test]
    fn deterministic(p in policy(), evs in events(), choices in proptest::collection::vec(any::<u8>(), 1..32)) {
        prop_assert_eq!(run(&p, &evs, &choices), run(&p, &evs, &choices));
    }

    #[test]
    fn duplicates_change_nothing(p in policy(), evs in events(), dup_at in any::<prop::sample::Index>()) {
        // Feed a prefix, then the same keyed input again: nothing may change.
        let k = dup_at.index(evs.len());
        let mut state = SiteState::new("home", START);
        let mut now = START;
        let mut last = None;
        for (n, (dt, e)) in evs.iter().enumerate().take(k + 1) {
            now = now.plus_secs(u64::from(*dt));
            let input = to_input(e, n, now);
            state = step(state, &input, now, &p).state;
            last = Some(input);
        }
        let input = last.unwrap();
        if input.dedupe_key().is_some() {
            let again = step(state.clone(), &input, now, &p);
            prop_assert_eq!(&again.state, &state);
            prop_assert!(again.actions.is_empty());
            // Also later, within the dedupe window.
            let later = now.plus_secs(p.snapshot_dedupe_ttl_s - 1);
            let again = step(state.clone(), &input, later, &p);
            prop_assert_eq!(&again.state, &state);
        }
    }

    #[test]
    fn state_round_trips_through_json(p in policy(), evs in events(), choices in proptest::collection::vec(any::<u8>(), 1..8)) {
        let trace = run(&p, &evs, &choices);
        for s in trace.states.iter().step_by(7) {
            let back = SiteState::from_json(&s.to_json()).unwrap();
            prop_assert_eq!(&back, s);
        }
    }
}
