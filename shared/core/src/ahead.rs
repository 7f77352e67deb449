//! Capacity ahead of the battery: the scale set's learned boot time, and when home's nodes are
//! about to go (LOWBATT now, or the runtime reaching the UPS's low-battery point), so that the
//! cloud's nodes are running when home's leave instead of a boot time later.

use crate::assess::Assessment;
use crate::policy::Policy;
use crate::state::{BootTimes, Critical, Health, SiteState};
use crate::time::{Timestamp, human_secs};

/// Boot-time samples kept (the estimate is their median: one slow boot does not move it).
const BOOT_SAMPLES: usize = 7;

/// The boot time to plan with, in seconds: the median of the measured ones, else the prior.
pub fn boot_estimate_s(boot: &BootTimes, policy: &Policy) -> u64 {
    if boot.samples_s.is_empty() {
        return policy.boot_prior_s;
    }
    let mut v = boot.samples_s.clone();
    v.sort_unstable();
    u64::from(v[v.len() / 2])
}

/// An accepted write: time it if it asks for more than runs now.
pub fn start_timing(boot: &mut BootTimes, capacity: u32, running: Option<u32>, now: Timestamp) {
    let grows = boot.pending.is_none_or(|(_, target)| capacity > target);
    if running.is_some_and(|r| r < capacity) && grows {
        boot.pending = Some((now, capacity));
    } else if boot.pending.is_some_and(|(_, target)| capacity < target) {
        // Scaled down before it finished: that boot is not measurable any more.
        boot.pending = None;
    }
}

/// The scale set seen with `running` instances: a timed write that is now fully running gives
/// a sample.
pub fn note_running(boot: &mut BootTimes, running: u32, now: Timestamp) {
    if let Some((since, target)) = boot.pending
        && running >= target
    {
        let secs = u32::try_from(now.since(since).max(0) / 1000).unwrap_or(u32::MAX);
        boot.samples_s.push(secs);
        if boot.samples_s.len() > BOOT_SAMPLES {
            boot.samples_s.remove(0);
        }
        boot.pending = None;
    }
}

/// A burst ahead of the battery: due now, or when it will be due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ahead {
    /// Raise capacity now.
    pub due: bool,
    /// When it becomes due (for the next wake-up), if not yet.
    pub at: Option<Timestamp>,
    /// How many nodes to have running by then.
    pub nodes: u32,
    pub why: String,
}

/// Whether home's nodes are about to go, from a current on-battery reading.
pub fn battery(
    state: &SiteState,
    a: &Assessment,
    now: Timestamp,
    policy: &Policy,
) -> Option<Ahead> {
    if !policy.burst_ahead || a.power != Health::Down {
        return None;
    }
    let nodes = policy
        .burst_ahead_nodes
        .unwrap_or(policy.max_nodes)
        .clamp(policy.min_nodes, policy.max_nodes);
    if a.critical.is_some() {
        let what = a.critical.map_or("low battery", Critical::as_str);
        return Some(Ahead {
            due: true,
            at: None,
            nodes,
            why: format!("{what}: home sheds its nodes now, {nodes} ahead of them"),
        });
    }
    if !a.power_current {
        return None;
    }
    let p = &state.signals.power;
    let (runtime, at) = (p.battery_runtime_s?, p.runtime_at?);
    let boot = boot_estimate_s(&state.capacity.boot, policy);
    let lead = boot.saturating_add(policy.burst_ahead_margin_s);
    // The runtime counts down from its reading; LB comes at `lowbatt_runtime_s`.
    let until_lb = runtime.saturating_sub(policy.lowbatt_runtime_s);
    let due_at = at
        .plus_secs(until_lb)
        .plus_millis(-(lead as i64).saturating_mul(1000));
    let left = (runtime as i64).saturating_sub(now.since(at) / 1000);
    let why = format!(
        "runtime {} left, LB at {}: boot {} + margin {} before it, {nodes} ahead of the nodes home sheds",
        human_secs(left.max(0) as u64),
        human_secs(policy.lowbatt_runtime_s),
        human_secs(boot),
        human_secs(policy.burst_ahead_margin_s)
    );
    Some(Ahead {
        due: now >= due_at,
        at: (now < due_at).then_some(due_at),
        nodes,
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_estimate_is_the_median_of_what_was_measured() {
        let p = Policy::default();
        let mut b = BootTimes::default();
        assert_eq!(boot_estimate_s(&b, &p), p.boot_prior_s);
        let t0 = Timestamp::from_secs(1_000);
        for (i, secs) in [90, 95, 600, 85, 92].into_iter().enumerate() {
            let start = t0.plus_secs(10_000 * i as u64);
            start_timing(&mut b, 3, Some(0), start);
            note_running(&mut b, 2, start.plus_secs(secs - 1));
            note_running(&mut b, 3, start.plus_secs(secs));
        }
        assert_eq!(b.samples_s, vec![90, 95, 600, 85, 92]);
        assert_eq!(
            boot_estimate_s(&b, &p),
            92,
            "one slow boot does not move it"
        );
        // A scale-down before the boot finished drops the timing.
        start_timing(&mut b, 5, Some(3), t0);
        start_timing(&mut b, 2, Some(3), t0);
        assert_eq!(b.pending, None);
    }
}
