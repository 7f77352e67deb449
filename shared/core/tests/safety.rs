//! Decisions under partial, stale and hostile observations: the lease fence of the stateful
//! tier, the Up-vote veto, inputs dated in the future, and texts that tell the truth.
#![allow(clippy::unwrap_used)]

use burst_core::state::Side;
use burst_core::{
    Action, ApiProbe, DevicesProbe, Direction, Heartbeat, Input, MigrateResult, Mode, NodeCount,
    Policy, ProbeReport, ScaleSetProbe, SiteState, Tier, Timestamp, UpsStatus, WitnessReport,
};

mod common;
use common::{T0, at, ups};

fn hb(id: &str, when: Timestamp, lease: bool) -> Input {
    Input::Heartbeat(Heartbeat {
        id: id.into(),
        at: when,
        nodes_ready: 7,
        nodes_total: 7,
        ups_status: Some(UpsStatus::parse("OL")),
        battery_charge: None,
        battery_runtime_s: None,
        api_ok: true,
        lease,
    })
}

fn probe(reachable: bool, devices_online: u32) -> Input {
    Input::Probe(ProbeReport {
        home_api: if reachable {
            ApiProbe::Ready {
                latency_ms: 5,
                nodes: Some(NodeCount { ready: 7, total: 7 }),
            }
        } else {
            ApiProbe::Unreachable {
                detail: "timeout".into(),
            }
        },
        devices: DevicesProbe::Seen {
            online: devices_online,
            total: 7,
        },
        scale_set: ScaleSetProbe::Unknown {
            detail: "not asked".into(),
        },
    })
}

fn witness(id: &str, when: Timestamp, reachable: bool) -> Input {
    Input::Witness(WitnessReport {
        id: id.into(),
        at: when,
        target: "https://home:6443/readyz".into(),
        reachable,
        latency_ms: None,
    })
}

/// Steps an input and answers every action at once with success, as a healthy shell would.
fn feed(s: SiteState, input: &Input, now: Timestamp, p: &Policy) -> (SiteState, Vec<Action>) {
    let shell = common::Shell {
        migrate: MigrateResult::Done { workloads: 1 },
        message_id: Some("m".into()),
    };
    shell.feed(s, input, now, p)
}

fn moved_stateful(actions: &[Action]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            Action::Migrate {
                tier: Tier::Stateful,
                direction: Direction::ToCloud,
                ..
            }
        )
    })
}

/// Home goes dark at `dark` (s): before, heartbeats and probes every 30 s; after, the probe
/// fails, the witness cannot reach home and every device is offline. Returns the second at
/// which the stateful tier moved, if it did within `until`.
fn blackout(lease: bool, witness_up_after_dark: bool, until: i64) -> Option<i64> {
    let p = Policy::default();
    let mut s = SiteState::new("home", T0);
    let dark = 600;
    let mut moved = None;
    let mut t = 0;
    while t <= until && moved.is_none() {
        let now = at(t);
        let mut inputs = Vec::new();
        if t == 300 {
            inputs.push(ups("onbatt", "ONBATT", "OB", now));
        }
        if t < dark {
            inputs.push(probe(true, 7));
            inputs.push(hb(&format!("hb{t}"), now, lease));
        } else {
            inputs.push(probe(false, 0));
        }
        if t % 60 == 0 {
            inputs.push(witness(
                &format!("w{t}"),
                now,
                t < dark || witness_up_after_dark,
            ));
        }
        for i in inputs.iter().chain(std::iter::once(&Input::Tick)) {
            let (next, actions) = feed(s, i, now, &p);
            s = next;
            if moved_stateful(&actions) {
                moved = Some(t);
            }
        }
        t += 30;
    }
    moved
}

#[test]
fn the_stateful_tier_waits_for_the_lease_to_expire_plus_the_margin() {
    let p = Policy::default();
    // The last heartbeat (with a lease) is at 570 s: the lease runs to 690 s, + 30 s margin.
    let moved = blackout(true, false, 3600).expect("the stateful tier moves in the end");
    assert!(
        moved >= 570 + p.lease_s as i64 + p.lease_margin_s as i64,
        "moved at {moved} s"
    );
    // Without a lease the quorum alone decides, as before (earlier: votes met at 690 s).
    let without = blackout(false, false, 3600).expect("moves without a lease too");
    assert!(without <= moved, "{without} > {moved}");
}

#[test]
fn a_witness_that_reaches_home_vetoes_the_stateful_move() {
    assert_eq!(blackout(true, true, 3600), None);
    assert_eq!(blackout(false, true, 3600), None);
}

#[test]
fn a_heartbeat_dated_in_the_future_does_not_block_later_ones() {
    let p = Policy::default();
    let s = SiteState::new("home", T0);
    let far = Timestamp::parse_rfc3339("9999-12-31T23:59:59Z").unwrap();
    let (s, _) = feed(s, &ups("a", "ONBATT", "OB", far), at(0), &p);
    assert_eq!(s.mode, Mode::Suspect);
    let (s, _) = feed(s, &ups("b", "ONLINE", "OL", at(10)), at(10), &p);
    assert_eq!(s.mode, Mode::Healthy, "ONLINE applied: {:#?}", s.audit);

    let (s, _) = feed(s, &hb("h1", far, true), at(20), &p);
    assert_eq!(s.signals.heartbeat.event_at, Some(at(20)), "taken as now");
    let (s, _) = feed(s, &hb("h2", at(50), true), at(50), &p);
    assert_eq!(s.signals.heartbeat.received_at, Some(at(50)));
    assert_eq!(s.lease.unwrap().expires_at, at(50 + p.lease_s as i64));
}

#[test]
fn a_network_only_recovery_does_not_say_power_back() {
    let p = Policy::default();
    let mut s = SiteState::new("home", T0);
    let mut t = 0;
    // Healthy, then both paths silent from 60 s, back at 900 s.
    while t <= 1200 {
        let now = at(t);
        let up = !(60..900).contains(&t);
        let inputs = if up {
            vec![probe(true, 7), hb(&format!("h{t}"), now, false)]
        } else {
            vec![probe(false, 0)]
        };
        for i in inputs.iter().chain(std::iter::once(&Input::Tick)) {
            s = feed(s, i, now, &p).0;
        }
        t += 30;
    }
    assert_eq!(s.mode, Mode::Recovering);
    let recovery = s
        .audit
        .iter()
        .find(|e| e.what.contains("→ recovering"))
        .unwrap();
    assert!(recovery.why.contains("network back"), "{}", recovery.why);
    assert!(!recovery.why.contains("power"), "{}", recovery.why);
}

#[test]
fn a_recovering_title_never_promises_capacity_the_budget_removed() {
    // A budget spent before the outage: capacity is capped at 0 throughout.
    let p = Policy {
        monthly_budget_usd: Some(1.0),
        ..Policy::default()
    };
    let mut s = SiteState::new("home", T0);
    s.budget.period = Some(T0.month());
    s.budget.spent_usd = 5.0;
    s.budget.accrued_until = Some(T0);
    let (s, _) = feed(s, &probe(true, 7), at(0), &p);
    let (s, _) = feed(s, &ups("lb", "LOWBATT", "OB LB", at(0)), at(0), &p);
    assert_eq!((s.mode, s.capacity.desired), (Mode::Outage, 0));
    let (s, _) = feed(s, &ups("ol", "ONLINE", "OL", at(60)), at(60), &p);
    assert_eq!(s.mode, Mode::Recovering);
    let title = &s.open_incident().unwrap().title;
    assert!(!title.contains("holding"), "{title}");
    assert!(title.contains("no cloud capacity held"), "{title}");
}

#[test]
fn a_reading_from_before_a_silence_is_not_power_back() {
    let p = Policy::default();
    let mut s = SiteState::new("home", T0);
    // On line; then the agent falls silent (and the probe fails) long enough for an outage.
    s = feed(s, &probe(true, 7), at(0), &p).0;
    s = feed(s, &hb("h0", at(0), false), at(0), &p).0;
    for t in (30..=600).step_by(30) {
        s = feed(s, &probe(false, 0), at(t), &p).0;
    }
    assert_eq!(s.mode, Mode::Outage);
    // The probe comes back before any new reading: power is not known, no recovery.
    s = feed(s, &probe(true, 7), at(630), &p).0;
    assert_eq!(s.mode, Mode::Outage, "{:#?}", s.audit);
    // The spooled events then arrive: on battery. Still an outage, never recovering.
    s = feed(s, &ups("ob", "ONBATT", "OB", at(300)), at(631), &p).0;
    assert_eq!(s.mode, Mode::Outage);
    // A fresh reading on line: recovery, naming both.
    s = feed(s, &ups("ol", "ONLINE", "OL", at(640)), at(640), &p).0;
    s = feed(s, &hb("h1", at(641), false), at(641), &p).0;
    assert_eq!(s.mode, Mode::Recovering);
    let why = &s
        .audit
        .iter()
        .find(|e| e.what.contains("→ recovering"))
        .unwrap()
        .why;
    assert!(
        why.contains("network back") && why.contains("power back"),
        "{why}"
    );
    assert_eq!(s.placement.critical.side, Side::Cloud);
}
