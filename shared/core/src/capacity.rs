//! How many cloud nodes are needed.
//!
//! The original formula: 0 when healthy; otherwise missing nodes + a power-loss buffer while on
//! battery, clamped to `[min_nodes, max_nodes]`; a full burst when home is unreachable. Held
//! (never lowered) during Outage and Recovering; capped by the budget. The current capacity of
//! the scale set is never an input: a capacity computed from an unknown current value once
//! deleted 197 of 200 nodes elsewhere.

use crate::assess::Assessment;
use crate::budget;
use crate::policy::Policy;
use crate::state::{Health, Mode, SiteState};
use crate::time::Timestamp;

/// A decided capacity and its human reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub capacity: u32,
    pub reason: String,
    /// The budget lowered the capacity.
    pub budget_capped: bool,
}

/// The original controller's formula, with the reason spelled out.
pub fn formula(a: &Assessment, policy: &Policy) -> (u32, String) {
    let (ready, total) = match a.nodes {
        Some(n) => (n.ready, n.total),
        None => (policy.expected_nodes_total, policy.expected_nodes_total),
    };
    let ready = if a.home_unreachable { 0 } else { ready };
    let missing = total.saturating_sub(ready);
    let buffer = if a.power == Health::Down {
        policy.power_loss_buffer
    } else {
        0
    };
    let raw = missing.saturating_add(buffer);
    let mut why = if a.home_unreachable {
        format!("home unreachable: all {total} nodes count as missing")
    } else {
        format!("{missing} of {total} nodes missing")
    };
    if buffer > 0 {
        why.push_str(&format!(" + {buffer} buffer (on battery)"));
    }
    let clamped = raw.clamp(policy.min_nodes, policy.max_nodes);
    if clamped < raw {
        why.push_str(&format!(", capped at max {}", policy.max_nodes));
    } else if clamped > raw {
        why.push_str(&format!(", raised to min {}", policy.min_nodes));
    }
    (clamped, why)
}

/// The capacity the scale set should ask for now.
pub fn decide(state: &SiteState, a: &Assessment, now: Timestamp, policy: &Policy) -> Decision {
    let held = state.capacity.desired;
    let (n, reason) = match state.mode {
        Mode::Outage => {
            let (n, why) = formula(a, policy);
            // Ahead of the battery: the nodes home is about to shed, booted before they go.
            let (n, why) = match crate::ahead::battery(state, a, now, policy) {
                Some(ah) if ah.due && ah.nodes > n => {
                    (ah.nodes, format!("{why}; ahead: {}", ah.why))
                }
                _ => (n, why),
            };
            if n >= held {
                (n, why)
            } else {
                (
                    held,
                    format!("held at {held} during the outage (now: {why})"),
                )
            }
        }
        Mode::Recovering => (
            held,
            format!("held at {held} until home has been healthy for the scale-down delay"),
        ),
        Mode::Healthy | Mode::Suspect if state.placement.any_in_cloud() => (
            held,
            format!("held at {held} until workloads are back home"),
        ),
        Mode::Healthy | Mode::Suspect => {
            let n = policy.min_nodes;
            let why = if state.mode == Mode::Suspect {
                format!("{n}: suspect, waiting out the grace period")
            } else {
                format!("{n}: home healthy")
            };
            (n, why)
        }
    };
    let n = n.clamp(policy.min_nodes, policy.max_nodes);
    match budget::cap(&state.budget, policy) {
        Some(cap) if n > cap => Decision {
            capacity: cap,
            reason: format!(
                "{reason}; capped at {cap} by the budget (spent {:.2} of {:.2} USD)",
                state.budget.spent_usd,
                policy.monthly_budget_usd.unwrap_or_default()
            ),
            budget_capped: true,
        },
        _ => Decision {
            capacity: n,
            reason,
            budget_capped: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::NodeCount;

    fn assessment(ready: u32, total: u32, power: Health, unreachable: bool) -> Assessment {
        Assessment {
            power,
            critical: None,
            power_current: true,
            power_ok: power != Health::Down,
            power_unknown_too_long: false,
            probe_failing: unreachable,
            probe_confident: unreachable,
            heartbeats_overdue: unreachable,
            home_unreachable: unreachable,
            silent_since: None,
            nodes: Some(NodeCount { ready, total }),
            nodes_missing: ready < total,
            api_up: !unreachable,
            api_source: true,
            node_source: true,
            votes: Default::default(),
            lease_expired: true,
            path_broken: false,
            agent_broken: false,
        }
    }

    #[test]
    fn the_original_formula() {
        let p = Policy::default();
        assert_eq!(
            formula(&assessment(3, 7, Health::Down, false), &p),
            (
                5,
                "4 of 7 nodes missing + 2 buffer (on battery), capped at max 5".to_string()
            )
        );
        assert_eq!(formula(&assessment(7, 7, Health::Down, false), &p).0, 2);
        assert_eq!(formula(&assessment(6, 7, Health::Up, false), &p).0, 1);
        assert_eq!(formula(&assessment(7, 7, Health::Unknown, true), &p).0, 5);
        let wide = Policy { max_nodes: 20, ..p };
        assert_eq!(formula(&assessment(7, 7, Health::Down, true), &wide).0, 9);
    }
}
