//! The site state machine:
//! Healthy → Suspect → Outage → Recovering → Healthy, with grace periods against blips.

use crate::assess::Assessment;
use crate::policy::Policy;
use crate::state::{Health, Mode, SiteState};
use crate::time::{Timestamp, human_secs};

/// A transition and its human reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub to: Mode,
    pub why: String,
}

/// Names the Down signals present, for reasons.
pub fn down_signals(a: &Assessment) -> String {
    let mut v = Vec::new();
    if a.power == Health::Down {
        v.push(match a.critical {
            Some(c) => format!("on battery ({})", c.as_str()),
            None => "on battery".to_string(),
        });
    }
    if a.home_unreachable {
        v.push("home unreachable (probe fails, heartbeats overdue)".to_string());
    }
    if a.nodes_missing
        && let Some(n) = a.nodes
    {
        v.push(format!(
            "{} of {} nodes missing",
            n.total - n.ready,
            n.total
        ));
    }
    if v.is_empty() {
        "no down signal".to_string()
    } else {
        v.join(", ")
    }
}

/// Why a Suspect site is now in Outage, if its grace has run out.
fn grace_over(
    state: &SiteState,
    a: &Assessment,
    now: Timestamp,
    policy: &Policy,
) -> Option<String> {
    if a.power == Health::Down
        && let Some(c) = a.critical
    {
        return Some(format!("{} (no grace)", c.as_str()));
    }
    if let Some(ah) = crate::ahead::battery(state, a, now, policy)
        && ah.due
    {
        return Some(format!("battery about to run out ({})", ah.why));
    }
    if a.power == Health::Down
        && let Some(since) = state.trouble.power_down_since
        && now.elapsed_at_least(since, policy.grace_on_battery_s)
    {
        return Some(format!(
            "on battery for {}",
            human_secs(policy.grace_on_battery_s)
        ));
    }
    if let Some(since) = a.silent_since
        && state.signals.probe.consecutive_failures >= policy.silence_min_probes
        && now.elapsed_at_least(since, policy.silence_grace_s)
    {
        return Some(format!(
            "both paths silent for {} probes and {}",
            state.signals.probe.consecutive_failures,
            human_secs(policy.silence_grace_s)
        ));
    }
    if let Some(n) = a.nodes.filter(|_| a.nodes_missing)
        && let Some(since) = state.trouble.nodes_missing_since
        && now.elapsed_at_least(since, policy.nodes_missing_grace_s)
    {
        return Some(format!(
            "{} of {} nodes missing for {}",
            n.total - n.ready,
            n.total,
            human_secs(policy.nodes_missing_grace_s)
        ));
    }
    None
}

/// The next transition from the current mode, if any (one hop; the caller loops).
pub fn next(
    state: &SiteState,
    a: &Assessment,
    now: Timestamp,
    policy: &Policy,
) -> Option<Transition> {
    match state.mode {
        Mode::Healthy if a.any_down() => Some(Transition {
            to: Mode::Suspect,
            why: down_signals(a),
        }),
        Mode::Suspect if !a.any_down() && a.power_ok => Some(Transition {
            to: Mode::Healthy,
            why: "all signals up again within the grace period (a blip)".to_string(),
        }),
        Mode::Suspect => grace_over(state, a, now, policy).map(|why| Transition {
            to: Mode::Outage,
            why,
        }),
        Mode::Outage if a.all_clear() => Some(Transition {
            to: Mode::Recovering,
            why: what_came_back(state, a, policy),
        }),
        Mode::Recovering if a.any_down() => Some(Transition {
            to: Mode::Outage,
            why: format!("down again while recovering: {}", down_signals(a)),
        }),
        Mode::Recovering if !a.all_clear() => None,
        Mode::Recovering if now.elapsed_at_least(state.mode_since, policy.scale_down_delay_s) => {
            Some(Transition {
                to: Mode::Healthy,
                why: format!(
                    "healthy for the whole scale-down delay ({})",
                    human_secs(policy.scale_down_delay_s)
                ),
            })
        }
        _ => None,
    }
}

/// Names what came back, from what went wrong since the site left Healthy, e.g. "network
/// back, API ready, all 7 nodes ready" (no "power back" when the power never failed).
pub fn what_came_back(state: &SiteState, a: &Assessment, policy: &Policy) -> String {
    let c = state.trouble.causes;
    let mut v: Vec<String> = Vec::new();
    if c.unreachable {
        v.push("network back".into());
    }
    if a.power_unknown_too_long {
        v.push(format!(
            "power state unknown for {} (no UPS reading)",
            human_secs(policy.power_unknown_max_s)
        ));
    } else if c.power {
        v.push("power back".into());
    }
    v.push(if c.api && !c.unreachable {
        "API back".into()
    } else {
        "API ready".into()
    });
    if let Some(n) = a.nodes {
        v.push(if c.nodes {
            format!("all {} nodes ready again", n.total)
        } else {
            format!("all {} nodes ready", n.total)
        });
    }
    v.join(", ")
}

/// When a time-based transition could next happen (for the next wake-up).
pub fn deadline(state: &SiteState, a: &Assessment, policy: &Policy) -> Option<Timestamp> {
    match state.mode {
        Mode::Suspect => {
            let mut d: Vec<Timestamp> = Vec::new();
            if a.power == Health::Down
                && let Some(s) = state.trouble.power_down_since
            {
                d.push(s.plus_secs(policy.grace_on_battery_s));
            }
            if let Some(s) = a.silent_since {
                d.push(s.plus_secs(policy.silence_grace_s));
            }
            if a.nodes_missing
                && let Some(s) = state.trouble.nodes_missing_since
            {
                d.push(s.plus_secs(policy.nodes_missing_grace_s));
            }
            d.into_iter().min()
        }
        Mode::Recovering => Some(state.mode_since.plus_secs(policy.scale_down_delay_s)),
        _ => None,
    }
    .into_iter()
    // Power not known: recovery may go on once the bound runs out.
    .chain(
        state
            .trouble
            .power_unknown_since
            .filter(|_| state.mode != Mode::Healthy)
            .map(|t| t.plus_secs(policy.power_unknown_max_s)),
    )
    .min()
}
