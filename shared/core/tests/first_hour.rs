//! A first setup must never strand cloud capacity: recovery with no source of node readiness,
//! moves that are not applicable, TEST events, and a grace that counts from the event's time.
#![allow(clippy::unwrap_used)]

use burst_core::assess::{assess, holds};
use burst_core::state::Side;
use burst_core::{
    Action, ApiProbe, DevicesProbe, Heartbeat, Input, MigrateResult, Mode, NodeCount, Outcome,
    Policy, ProbeReport, ScaleResult, ScaleSetProbe, SiteState, Tier, Timestamp, UpsStatus, step,
};

mod common;
use common::{T0, at, ups};

/// The agent with `kube_source = "none"`: 0/0 nodes, api_ok false.
fn hb_without_cluster(id: &str, when: Timestamp, status: &str) -> Input {
    Input::Heartbeat(Heartbeat {
        id: id.into(),
        at: when,
        nodes_ready: 0,
        nodes_total: 0,
        ups_status: Some(UpsStatus::parse(status)),
        battery_charge: None,
        battery_runtime_s: None,
        api_ok: false,
        lease: false,
    })
}

fn probe(home_api: ApiProbe) -> Input {
    Input::Probe(ProbeReport {
        home_api,
        devices: DevicesProbe::Unknown {
            detail: "not configured".into(),
        },
        scale_set: ScaleSetProbe::Unknown {
            detail: "not asked".into(),
        },
    })
}

fn unconfigured_probe() -> Input {
    probe(ApiProbe::Unknown {
        detail: "home API probe (BURST_HOME_KUBE_URL) not configured".into(),
    })
}

/// Answers actions as a shell with a scale set and no cloud cluster would.
fn feed(s: SiteState, input: &Input, now: Timestamp, p: &Policy) -> SiteState {
    let shell = common::Shell {
        migrate: MigrateResult::NotApplicable {
            detail: "no cloud cluster configured".into(),
        },
        message_id: None,
    };
    shell.feed(s, input, now, p).0
}

#[test]
fn a_site_without_any_node_source_recovers_on_power_and_heartbeats() {
    let p = Policy {
        scale_down_delay_s: 300,
        ..Policy::default()
    };
    let mut s = SiteState::new("home", T0);
    let mut power = "OL";
    for t in (0..=3600).step_by(30) {
        let now = at(t);
        if t == 600 {
            s = feed(s, &ups("ob", "ONBATT", "OB DISCHRG", now), now, &p);
            power = "OB DISCHRG";
        }
        if t == 1800 {
            s = feed(s, &ups("ol", "ONLINE", "OL CHRG", now), now, &p);
            power = "OL CHRG";
        }
        s = feed(s, &unconfigured_probe(), now, &p);
        s = feed(
            s,
            &hb_without_cluster(&format!("h{t}"), now, power),
            now,
            &p,
        );
        if t == 1200 {
            assert_eq!(s.mode, Mode::Outage);
            assert_eq!(s.capacity.desired, 2);
        }
        if t == 1830 {
            assert_eq!(s.mode, Mode::Recovering, "{:#?}", s.audit);
        }
    }
    assert_eq!(s.mode, Mode::Healthy, "{:#?}", s.audit);
    assert_eq!(s.capacity.desired, 0);
    assert!(holds(&s, &assess(&s, at(3600), &p), at(3600), &p).is_empty());
}

#[test]
fn a_configured_source_that_keeps_failing_holds_and_says_why() {
    let p = Policy::default();
    let mut s = SiteState::new("home", T0);
    let ready = ApiProbe::Ready {
        latency_ms: 3,
        nodes: Some(NodeCount { ready: 3, total: 3 }),
    };
    s = feed(s, &probe(ready), at(0), &p);
    s = feed(s, &ups("lb", "LOWBATT", "OB LB", at(10)), at(10), &p);
    s = feed(
        s,
        &probe(ApiProbe::NotReady {
            detail: "readyz: 500".into(),
        }),
        at(20),
        &p,
    );
    s = feed(s, &ups("ol", "ONLINE", "OL", at(30)), at(30), &p);
    assert_eq!(s.mode, Mode::Outage, "the API is not ready: no recovery");
    let a = assess(&s, at(30), &p);
    let h = holds(&s, &a, at(30), &p);
    assert!(
        h.iter()
            .any(|h| h.source == "api" && h.why.contains("readyz: 500")),
        "{h:?}"
    );
}

#[test]
fn a_move_without_a_cloud_cluster_is_not_applicable_and_holds_nothing() {
    let p = Policy {
        scale_down_delay_s: 60,
        ..Policy::default()
    };
    let ready = || {
        probe(ApiProbe::Ready {
            latency_ms: 3,
            nodes: Some(NodeCount { ready: 3, total: 3 }),
        })
    };
    let mut s = SiteState::new("home", T0);
    s = feed(s, &ready(), at(0), &p);
    s = feed(s, &ups("lb", "LOWBATT", "OB LB", at(10)), at(10), &p);
    assert_eq!(s.mode, Mode::Outage);
    assert_eq!(s.placement.critical.side, Side::Home);
    assert!(s.placement.critical.not_applicable.is_some());
    // No retry storm: later steps in the outage hand out no migration.
    let out = step(s.clone(), &ready(), at(100), &p);
    assert!(
        !out.actions
            .iter()
            .any(|a| matches!(a, Action::Migrate { .. })),
        "{:?}",
        out.actions
    );
    s = feed(s, &ups("ol", "ONLINE", "OL", at(200)), at(200), &p);
    s = feed(s, &ready(), at(210), &p);
    s = feed(s, &ready(), at(300), &p);
    assert_eq!(s.mode, Mode::Healthy, "{:#?}", s.audit);
    assert_eq!(s.capacity.desired, 0, "nothing holds the capacity");
    assert_eq!(s.placement.get(Tier::Critical).not_applicable, None);
}

#[test]
fn a_test_event_is_recorded_but_never_part_of_an_incident() {
    let p = Policy::default();
    let mut s = SiteState::new("home", T0);
    s = feed(s, &ups("lb", "LOWBATT", "OB LB", at(0)), at(0), &p);
    let revision = s.open_incident().unwrap().revision;
    let lines = s.open_incident().unwrap().lines.clone();
    s = feed(s, &ups("t", "TEST", "OB LB", at(5)), at(5), &p);
    let inc = s.open_incident().unwrap();
    assert_eq!(inc.lines, lines, "no line for TEST");
    assert_eq!(inc.revision, revision, "no Discord edit for TEST");
    assert!(s.signals.power.unknown.is_empty(), "TEST is a known type");
    assert!(s.audit.iter().any(|e| e.what == "UPS TEST recorded"));
    // A TEST neither reads as power nor moves the reorder guard: a spooled event from before
    // it still applies.
    let s = feed(s, &ups("t2", "TEST", "OL", at(20)), at(20), &p);
    assert_eq!(s.signals.power.health, burst_core::state::Health::Down);
    let s = feed(s, &ups("late", "ONLINE", "OL", at(15)), at(25), &p);
    assert_eq!(s.signals.power.health, burst_core::state::Health::Up);
}

#[test]
fn the_grace_counts_from_the_event_time_of_a_late_delivery() {
    let p = Policy::default();
    let s = SiteState::new("home", T0);
    // ONBATT seen at 0, delivered from the spool 100 s later: 20 s of grace are left.
    let s = feed(s, &ups("ob", "ONBATT", "OB", at(0)), at(100), &p);
    assert_eq!(s.mode, Mode::Suspect);
    assert_eq!(s.trouble.power_down_since, Some(at(0)));
    let out = step(s, &Input::Tick, at(120), &p);
    assert_eq!(out.state.mode, Mode::Outage);
}

#[test]
fn no_scale_set_is_not_applicable_not_a_failure_every_minute() {
    let p = Policy::default();
    let s = SiteState::new("home", T0);
    let out = step(s, &ups("lb", "LOWBATT", "OB LB", at(0)), at(0), &p);
    let asked: Vec<u32> = out
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::SetCapacity { capacity, .. } => Some(*capacity),
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 1);
    let o = Outcome::Scale {
        requested: asked[0],
        result: ScaleResult::NotApplicable {
            detail: "no scale set configured".into(),
        },
    };
    let mut s = step(out.state, &Input::Outcome(o), at(1), &p).state;
    assert!(s.capacity.not_applicable.is_some());
    assert!(
        !s.posts
            .iter()
            .any(|p| p.title.contains("Scaling the cloud failed")),
        "{:?}",
        s.posts
    );
    for t in (30..=600).step_by(30) {
        let out = step(s, &unconfigured_probe(), at(t), &p);
        assert!(
            !out.actions
                .iter()
                .any(|a| matches!(a, Action::SetCapacity { .. })),
            "no write retried at {t} s"
        );
        s = out.state;
    }
}

#[test]
fn capacity_written_but_never_running_is_a_warning_and_a_retry() {
    let p = Policy::default();
    let s = SiteState::new("home", T0);
    let out = step(s, &ups("lb", "LOWBATT", "OB LB", at(0)), at(0), &p);
    let o = Outcome::Scale {
        requested: 5,
        result: ScaleResult::Accepted {
            capacity: 5,
            running: Some(0),
        },
    };
    let mut s = step(out.state, &Input::Outcome(o), at(1), &p).state;
    let probe = |running| {
        Input::Probe(ProbeReport {
            home_api: ApiProbe::Unknown {
                detail: "not configured".into(),
            },
            devices: DevicesProbe::Unknown {
                detail: "not configured".into(),
            },
            scale_set: ScaleSetProbe::Seen {
                capacity: 5,
                running,
            },
        })
    };
    let mut retried = false;
    // Boot prior 120 s: after 3 × 120 + 60 s with nothing running, warn once and retry.
    for t in (30..=900).step_by(30) {
        let out = step(s, &probe(0), at(t), &p);
        retried |= out
            .actions
            .iter()
            .any(|a| matches!(a, Action::SetCapacity { capacity: 5, .. }));
        s = out.state;
    }
    assert!(s.warnings.nodes_stuck);
    assert!(retried, "the write is issued again");
    let posts = s
        .posts
        .iter()
        .filter(|p| p.title == "Cloud nodes are not starting")
        .count();
    assert_eq!(posts, 1, "one ping, not one per probe");
    // Running at last: the warning clears.
    let s = step(s, &probe(5), at(960), &p).state;
    assert!(!s.warnings.nodes_stuck);
}
