//! The audit trail: one entry with a human reason for every decision, bounded.

use crate::policy::Policy;
use crate::state::{AuditEntry, SiteState};
use crate::time::Timestamp;

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
