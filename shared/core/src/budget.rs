//! The monthly budget: spend estimated from the capacity timeline × price per
//! node-hour, alerts at 50/80/100 %, and a cap when the projection would pass 100 %.

use crate::policy::Policy;
use crate::state::Budget;
use crate::time::Timestamp;

/// Alert thresholds in percent of the monthly budget; 80 and 100 ping the owner.
pub const THRESHOLDS: [u32; 3] = [50, 80, 100];

const MS_PER_HOUR: f64 = 3_600_000.0;

/// Adds the cost of running `nodes` from the last accrual until `now`, splitting at month
/// boundaries (the spend resets each calendar month, UTC).
pub fn accrue(budget: &mut Budget, nodes: u32, now: Timestamp, policy: &Policy) {
    let mut from = match budget.accrued_until {
        Some(t) if t < now => t,
        Some(_) => return,
        None => {
            budget.accrued_until = Some(now);
            budget.period = Some(now.month());
            return;
        }
    };
    while from < now {
        let period = from.month();
        if budget.period != Some(period) {
            budget.period = Some(period);
            budget.spent_usd = 0.0;
            budget.alerted.clear();
            budget.capped = false;
        }
        let until = from.start_of_next_month().min(now);
        let hours = until.since(from) as f64 / MS_PER_HOUR;
        budget.spent_usd += f64::from(nodes) * policy.price_per_node_hour_usd * hours;
        from = until;
    }
    if budget.period != Some(now.month()) {
        budget.period = Some(now.month());
        budget.spent_usd = 0.0;
        budget.alerted.clear();
        budget.capped = false;
    }
    budget.accrued_until = Some(now);
}

/// The most nodes the remaining budget pays for over the projection horizon; `None` = no cap.
///
/// While any budget is left, at least one node may run: the last of the budget is spent on one
/// node rather than left unused, and the cap drops to 0 once it is gone (the 100 % alert).
pub fn cap(budget: &Budget, policy: &Policy) -> Option<u32> {
    let total = policy.monthly_budget_usd?;
    let per_node = policy.price_per_node_hour_usd * policy.budget_horizon_s as f64 / 3600.0;
    if per_node <= 0.0 {
        return None;
    }
    let remaining = total - budget.spent_usd;
    if remaining <= 0.0 {
        return Some(0);
    }
    let n = (remaining / per_node).floor().max(1.0);
    Some(if n >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        n as u32
    })
}

/// Thresholds newly crossed (not yet announced this month), lowest first.
pub fn new_alerts(budget: &Budget, policy: &Policy) -> Vec<u32> {
    let Some(total) = policy.monthly_budget_usd else {
        return Vec::new();
    };
    THRESHOLDS
        .into_iter()
        .filter(|th| !budget.alerted.contains(th))
        .filter(|th| total > 0.0 && budget.spent_usd >= total * f64::from(*th) / 100.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accrues_node_hours_and_resets_monthly() {
        let policy = Policy::default();
        let mut b = Budget::default();
        let t0 = Timestamp::parse_rfc3339("2026-01-31T22:00:00Z").unwrap();
        accrue(&mut b, 4, t0, &policy);
        assert_eq!(b.spent_usd, 0.0);
        accrue(&mut b, 4, t0.plus_secs(3600), &policy);
        assert!((b.spent_usd - 0.2).abs() < 1e-9, "{}", b.spent_usd);
        b.alerted.push(50);
        // Crossing midnight into February: only the February hour counts.
        accrue(&mut b, 4, t0.plus_secs(3 * 3600), &policy);
        assert_eq!(b.period, Some((2026, 2)));
        assert!((b.spent_usd - 0.2).abs() < 1e-9, "{}", b.spent_usd);
        assert!(b.alerted.is_empty());
    }

    #[test]
    fn cap_follows_the_remaining_budget() {
        let policy = Policy {
            monthly_budget_usd: Some(3.0),
            budget_horizon_s: 6 * 3600,
            ..Policy::default()
        };
        let mut b = Budget::default();
        // 3 USD / (0.05 × 6 h) = 10 nodes
        assert_eq!(cap(&b, &policy), Some(10));
        b.spent_usd = 2.1;
        assert_eq!(cap(&b, &policy), Some(3));
        b.spent_usd = 2.9;
        assert_eq!(
            cap(&b, &policy),
            Some(1),
            "the last cents still run one node"
        );
        b.spent_usd = 3.5;
        assert_eq!(cap(&b, &policy), Some(0));
        assert_eq!(new_alerts(&b, &policy), vec![50, 80, 100]);
        let none = Policy {
            monthly_budget_usd: None,
            ..Policy::default()
        };
        assert_eq!(cap(&b, &none), None);
        assert!(new_alerts(&b, &none).is_empty());
    }
}
