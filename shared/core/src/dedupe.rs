//! Replay and duplicate protection: recently seen keys (event ids, JWT ids, webhook hashes) with
//! an expiry, bounded in number.

use crate::policy::Policy;
use crate::state::SiteState;
use crate::time::Timestamp;

/// Forgets keys whose time is up.
pub fn expire(state: &mut SiteState, now: Timestamp) {
    state.seen.retain(|_, until| *until > now);
}

pub fn seen(state: &SiteState, key: &str, now: Timestamp) -> bool {
    state.seen.get(key).is_some_and(|until| *until > now)
}

/// Remembers `key` until `until`; returns false if it was already there (a replay).
pub fn remember(
    state: &mut SiteState,
    key: &str,
    until: Timestamp,
    now: Timestamp,
    policy: &Policy,
) -> bool {
    if seen(state, key, now) {
        return false;
    }
    while state.seen.len() >= policy.dedupe_max {
        // Forget the key that would expire first.
        let Some(oldest) = state
            .seen
            .iter()
            .min_by_key(|(_, t)| **t)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        state.seen.remove(&oldest);
    }
    state.seen.insert(key.to_string(), until);
    true
}
