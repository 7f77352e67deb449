//! The audit trail: one entry with a human reason for every decision, bounded.

use crate::policy::Policy;
use crate::state::{AuditEntry, SiteState};
use crate::time::Timestamp;

/// The entries added after `last` (the newest entry a reader saw before), oldest first; all of
/// them if `last` is unknown or has been dropped from the bounded trail.
pub fn since<'a>(state: &'a SiteState, last: Option<&AuditEntry>) -> &'a [AuditEntry] {
    let start = last
        .and_then(|l| state.audit.iter().rposition(|e| e == l))
        .map_or(0, |i| i + 1);
    &state.audit[start.min(state.audit.len())..]
}

pub fn record(
    state: &mut SiteState,
    now: Timestamp,
    what: impl Into<String>,
    why: impl Into<String>,
    policy: &Policy,
) {
    state.audit.push(AuditEntry {
        at: now,
        what: what.into(),
        why: why.into(),
    });
    let excess = state.audit.len().saturating_sub(policy.audit_max);
    if excess > 0 {
        state.audit.drain(..excess);
    }
}
