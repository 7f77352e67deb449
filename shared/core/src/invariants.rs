//! The safety rules every decision keeps, as pure checks on states: the model check asserts
//! them on every path it explores, the drills after every invocation of the engine.

use crate::assess::assess;
use crate::state::{Mode, SiteState};
use crate::{Policy, Timestamp, budget, capacity};

pub const BOUNDS: &str = "capacity within [min_nodes, max_nodes] and the budget cap";
pub const OUTAGE_FORMULA: &str = "in outage, capacity at least the formula unless capped";
pub const NO_SCALE_DOWN: &str = "no scale-down before home is settled unless capped";
pub const STATEFUL: &str =
    "stateful moves to the cloud only in outage with quorum, no up vote, lease expired";
pub const ONE_INCIDENT: &str = "at most one open incident";

pub fn capacity_in_bounds(s: &SiteState, policy: &Policy) -> bool {
    let d = s.capacity.desired;
    (policy.min_nodes..=policy.max_nodes).contains(&d)
        && budget::cap(&s.budget, policy).is_none_or(|cap| d <= cap)
}

/// The budget capped the capacity: the step said so, and the capacity is the cap.
pub fn capped(s: &SiteState, policy: &Policy) -> bool {
    s.budget.capped && budget::cap(&s.budget, policy) == Some(s.capacity.desired)
}

pub fn outage_meets_formula(s: &SiteState, now: Timestamp, policy: &Policy) -> bool {
    if s.mode != Mode::Outage || capped(s, policy) {
        return true;
    }
    let a = assess(s, now, policy);
    s.capacity.desired >= capacity::formula(&a, policy).0
}

/// A lower capacity than before is fine only once home is settled (healthy or suspect with
/// nothing in the cloud) or when the budget caps it.
pub fn scale_down_ok(prev_desired: u32, s: &SiteState, policy: &Policy) -> bool {
    let settled = matches!(s.mode, Mode::Healthy | Mode::Suspect) && !s.placement.any_in_cloud();
    s.capacity.desired >= prev_desired || settled || capped(s, policy)
}

/// Checked in the state that moves the stateful tier to the cloud, at the move.
pub fn stateful_move_ok(s: &SiteState, now: Timestamp, policy: &Policy) -> bool {
    let a = assess(s, now, policy);
    s.mode == Mode::Outage && a.quorum() && a.votes.up.is_empty() && a.lease_expired
}

pub fn one_open_incident(s: &SiteState) -> bool {
    s.incidents
        .iter()
        .filter(|i| i.resolved_at.is_none())
        .count()
        <= 1
}

/// The rules that hold in every saved state (`prev`: the one saved before it, if any).
pub fn broken(
    prev: Option<&SiteState>,
    s: &SiteState,
    now: Timestamp,
    policy: &Policy,
) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !capacity_in_bounds(s, policy) {
        out.push(BOUNDS);
    }
    if !outage_meets_formula(s, now, policy) {
        out.push(OUTAGE_FORMULA);
    }
    if prev.is_some_and(|p| !scale_down_ok(p.capacity.desired, s, policy)) {
        out.push(NO_SCALE_DOWN);
    }
    if !one_open_incident(s) {
        out.push(ONE_INCIDENT);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Side;

    fn site() -> (SiteState, Policy, Timestamp) {
        let now = Timestamp::from_secs(1_772_409_600);
        (SiteState::new("home", now), Policy::default(), now)
    }

    #[test]
    fn each_rule_can_break() {
        let (mut s, p, now) = site();
        assert!(broken(None, &s, now, &p).is_empty());
        s.capacity.desired = p.max_nodes + 1;
        assert_eq!(broken(None, &s, now, &p), vec![BOUNDS]);

        let (mut s, p, now) = site();
        s.mode = Mode::Outage;
        s.capacity.desired = 0;
        s.signals.power.health = crate::state::Health::Down;
        assert!(broken(None, &s, now, &p).contains(&OUTAGE_FORMULA));

        let (prev, p, now) = site();
        let mut before = prev.clone();
        before.capacity.desired = 3;
        let mut after = prev;
        after.mode = Mode::Recovering;
        after.capacity.desired = 1;
        assert!(broken(Some(&before), &after, now, &p).contains(&NO_SCALE_DOWN));
        after.mode = Mode::Healthy;
        after.placement.critical.side = Side::Cloud;
        assert!(
            !scale_down_ok(3, &after, &p),
            "workloads still in the cloud"
        );
        after.placement.critical.side = Side::Home;
        assert!(scale_down_ok(3, &after, &p), "settled: healthy, all home");

        let (mut s, p, now) = site();
        assert!(!stateful_move_ok(&s, now, &p), "healthy: never");
        crate::incident::open(&mut s, now, "x".into(), "y".into());
        assert!(broken(None, &s, now, &p).is_empty());
        crate::incident::open(&mut s, now, "x".into(), "y".into());
        assert_eq!(broken(None, &s, now, &p), vec![ONE_INCIDENT]);
    }
}
