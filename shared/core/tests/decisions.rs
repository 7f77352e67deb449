//! Example-based tests of single decisions (the drills cover whole stories).
#![allow(clippy::unwrap_used)]

use burst_core::{
    Action, ApiProbe, Delivery, DevicesProbe, Input, Mode, NodeCount, NotifyResult, Outcome,
    Policy, ProbeReport, ScaleResult, ScaleSetProbe, SiteState, Step, Timestamp, remember_token,
    step,
};

mod common;
use common::{T0, ups};

fn probe_ok(capacity: u32) -> Input {
    Input::Probe(ProbeReport {
        home_api: ApiProbe::Ready {
            latency_ms: 5,
            nodes: Some(NodeCount { ready: 7, total: 7 }),
        },
        devices: DevicesProbe::Seen {
            online: 7,
            total: 7,
        },
        scale_set: ScaleSetProbe::Seen {
            capacity,
            running: capacity,
        },
    })
}

fn scale_actions(actions: &[Action]) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SetCapacity { capacity, .. } => Some(*capacity),
            _ => None,
        })
        .collect()
}

/// The outcome of the scale write of capacity 2 (the one [`outage`] asks for).
fn scaled(result: ScaleResult) -> Input {
    Input::Outcome(Outcome::Scale {
        requested: 2,
        result,
    })
}

/// The outcome of the notification of the incident `key`.
fn notified(key: &str, result: NotifyResult) -> Input {
    Input::Outcome(Outcome::Notify {
        key: key.into(),
        result,
    })
}

/// How the notifications among `actions` are delivered.
fn deliveries(actions: &[Action]) -> Vec<Delivery> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify(n) => Some(n.delivery.clone()),
            _ => None,
        })
        .collect()
}

/// A new site (default policy) and its first input: the UPS event `e1` of notify type `t` with
/// `status`, at T0.
fn first_ups(t: &str, status: &str) -> (Step, Policy) {
    let p = Policy::default();
    let s = SiteState::new("home", T0);
    (step(s, &ups("e1", t, status, T0), T0, &p), p)
}

/// A site in Outage on battery with capacity 2 requested and not yet answered (without the
/// burst ahead of the battery, which LOWBATT would trigger: `first_hour`/drills cover it).
fn outage() -> (SiteState, Policy, Timestamp) {
    let p = Policy {
        burst_ahead: false,
        ..Policy::default()
    };
    let s = SiteState::new("home", T0);
    let s = step(s, &probe_ok(0), T0, &p).state;
    let out = step(s, &ups("e1", "LOWBATT", "OB LB", T0), T0, &p);
    assert_eq!(
        out.state.mode,
        Mode::Outage,
        "LOWBATT goes to Outage at once"
    );
    assert_eq!(scale_actions(&out.actions), vec![2]);
    (out.state, p, T0)
}

#[test]
fn lowbatt_skips_the_grace_period() {
    outage();
}

#[test]
fn onbatt_waits_out_the_grace_period() {
    let (s, p) = first_ups("ONBATT", "OB");
    assert_eq!(s.state.mode, Mode::Suspect);
    assert_eq!(s.next_wake, Some(T0.plus_secs(120)));
    let s = step(s.state, &Input::Tick, T0.plus_secs(119), &p);
    assert_eq!(s.state.mode, Mode::Suspect);
    let s = step(s.state, &Input::Tick, T0.plus_secs(120), &p);
    assert_eq!(s.state.mode, Mode::Outage);
}

#[test]
fn commloss_is_not_an_outage() {
    let (s, p) = first_ups("COMMBAD", "");
    assert_eq!(s.state.mode, Mode::Healthy);
    let t1 = T0.plus_secs(1);
    let s = step(s.state, &ups("e2", "NOCOMM", "", t1), t1, &p);
    assert_eq!(s.state.mode, Mode::Healthy);
    assert!(s.actions.is_empty());
}

#[test]
fn throttling_is_not_retried_before_retry_after() {
    let (s, p, t) = outage();
    let throttled = ScaleResult::Throttled {
        retry_after_s: 1200,
    };
    let s = step(s, &scaled(throttled), t, &p);
    assert!(scale_actions(&s.actions).is_empty());
    let mut state = s.state;
    for k in 1..40 {
        let out = step(state, &probe_ok(0), t.plus_secs(30 * k), &p);
        assert!(scale_actions(&out.actions).is_empty(), "retried at {k}");
        state = out.state;
    }
    let out = step(state, &Input::Tick, t.plus_secs(1200), &p);
    assert_eq!(scale_actions(&out.actions), vec![2]);
}

#[test]
fn a_failed_read_is_never_written_over_blindly() {
    let (s, p, t) = outage();
    let detail = "GET 503".into();
    let out = step(s, &scaled(ScaleResult::ReadFailed { detail }), t, &p);
    assert_eq!(out.state.capacity.current, None);
    assert!(scale_actions(&out.actions).is_empty());
    // The failure pings the owner once.
    let posts: Vec<_> = out.state.posts.iter().map(|p| p.title.clone()).collect();
    assert_eq!(posts, vec!["Scaling the cloud failed".to_string()]);
}

#[test]
fn conflicts_back_off_and_re_decide() {
    let (s, p, t) = outage();
    let detail = "412".into();
    let out = step(s, &scaled(ScaleResult::Conflict { detail }), t, &p);
    assert_eq!(out.next_wake, Some(t.plus_secs(15)));
    let out = step(out.state, &Input::Tick, t.plus_secs(15), &p);
    assert_eq!(scale_actions(&out.actions), vec![2]);
}

#[test]
fn one_message_per_incident_created_then_edited() {
    let (s, p, t) = outage();
    let create = step(s, &Input::Tick, t, &p);
    // The notification went out with the first step; find it in the state's in-flight mark.
    assert!(create.state.in_flight.notify.is_some());
    let key = create.state.incidents[0].id.clone();
    let message_id = Some("111".into());
    let delivered = notified(&key, NotifyResult::Delivered { message_id });
    let s = step(create.state, &delivered, t, &p).state;
    assert_eq!(s.incidents[0].message_id.as_deref(), Some("111"));
    // A new UPS event adds a line: the next notification edits message 111.
    let t5 = t.plus_secs(5);
    let out = step(s, &ups("e2", "FSD", "FSD OB LB", t5), t5, &p);
    let message_id = "111".into();
    assert_eq!(
        deliveries(&out.actions),
        vec![Delivery::Edit { message_id }]
    );
}

#[test]
fn a_gone_webhook_stops_messages_and_keeps_them() {
    let (s, p, t) = outage();
    let key = s.incidents[0].id.clone();
    let detail = "404 Unknown Webhook".into();
    let out = step(
        s,
        &notified(&key, NotifyResult::WebhookGone { detail }),
        t,
        &p,
    );
    assert!(out.state.webhook_gone.is_some());
    let t9 = t.plus_secs(9);
    let out = step(out.state, &ups("e3", "FSD", "FSD OB", t9), t9, &p);
    assert!(!out.actions.iter().any(|a| matches!(a, Action::Notify(_))));
    assert!(out.state.incidents[0].delivered < out.state.incidents[0].revision);
}

#[test]
fn reordered_events_keep_the_newest_power_state() {
    let p = Policy::default();
    let s = SiteState::new("home", T0);
    // LOWBATT (later) arrives before ONBATT (earlier), both seen at 9 s.
    let seen = T0.plus_secs(9);
    let s = step(s, &ups("b", "LOWBATT", "OB LB", T0.plus_secs(8)), seen, &p).state;
    let s = step(s, &ups("a", "ONBATT", "OB", T0.plus_secs(3)), seen, &p).state;
    assert_eq!(s.mode, Mode::Outage);
    assert!(s.signals.power.critical.is_some());
}

#[test]
fn token_ids_are_replay_checked() {
    let p = Policy::default();
    let mut s = SiteState::new("home", T0);
    let (expires, t10) = (T0.plus_secs(360), T0.plus_secs(10));
    assert!(remember_token(&mut s, "abc", expires, T0, &p));
    assert!(!remember_token(&mut s, "abc", expires, t10, &p));
    assert!(remember_token(&mut s, "def", expires, t10, &p));
}

#[test]
fn time_never_runs_backwards() {
    let p = Policy::default();
    let s = SiteState::new("home", T0);
    let s = step(s, &Input::Tick, T0.plus_secs(100), &p).state;
    let s = step(s, &Input::Tick, T0.plus_secs(50), &p).state;
    assert_eq!(s.clock, T0.plus_secs(100));
}

#[test]
fn malformed_or_foreign_state_is_refused() {
    assert!(SiteState::from_json(b"{").is_err());
    assert!(SiteState::from_json(br#"{"schema":99}"#).is_err());
    let s = SiteState::new("home", T0);
    assert_eq!(SiteState::from_json(&s.to_json()).unwrap(), s);
}

#[test]
fn a_deleted_incident_message_is_replaced_by_a_new_one() {
    let (s, p, t) = outage();
    let key = s.incidents[0].id.clone();
    let message_id = Some("111".into());
    let delivered = notified(&key, NotifyResult::Delivered { message_id });
    let s = step(s, &delivered, t, &p).state;
    let t5 = t.plus_secs(5);
    let out = step(s, &ups("e2", "FSD", "FSD OB LB", t5), t5, &p);
    let detail = "10008".into();
    let gone = notified(&key, NotifyResult::MessageGone { detail });
    let out = step(out.state, &gone, t5, &p);
    assert_eq!(
        deliveries(&out.actions),
        vec![Delivery::Create],
        "the update goes out as a new message"
    );
}

#[test]
fn a_half_done_move_to_the_cloud_is_brought_home_on_recovery() {
    use burst_core::state::Side;
    use burst_core::{Direction, MigrateResult, Tier};
    let (s, p, t) = outage();
    let out = step(
        s,
        &Input::Outcome(Outcome::Migrate {
            tier: Tier::Critical,
            direction: Direction::ToCloud,
            result: MigrateResult::Failed {
                detail: "one scale write failed".into(),
            },
        }),
        t,
        &p,
    );
    assert_eq!(out.state.placement.critical.side, Side::Unsure);
    let mut s = out.state;
    let mut now = t.plus_secs(10);
    s = step(s, &ups("e9", "ONLINE", "OL", now), now, &p).state;
    let mut moved_home = false;
    for _ in 0..80 {
        now = now.plus_secs(30);
        let out = step(s, &probe_ok(2), now, &p);
        moved_home |= out.actions.iter().any(|a| {
            matches!(
                a,
                Action::Migrate {
                    tier: Tier::Critical,
                    direction: Direction::ToHome,
                    ..
                }
            )
        });
        s = out.state;
        if moved_home {
            break;
        }
    }
    assert!(moved_home, "mode {:?}", s.mode);
}
