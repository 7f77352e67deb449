//! The fence: a node that cannot renew its lease stops the home's stateful tier itself, before
//! the cloud may start it there (the cloud waits until the lease expired more than a margin
//! ago). Only with a `fence_command`; the lease itself is in [`crate::lease`].
//!
//! The rule, as [`decide`] implements it after every heartbeat post:
//! - **fence** when the post did not renew the lease (no reply, an error, a 200 without a
//!   lease, a duplicate) and the known lease has less than `fence_ahead_ms` left or has
//!   expired; with no known lease there is nothing to fence. Also when any reply says the
//!   stateful tier runs in the cloud: home must not run it as well.
//! - **unfence** when fenced and a renewing reply says `"stateful": "home"`; while it says
//!   `cloud` or `unsure` the agent stays fenced even though the lease renews. When the fence
//!   state is unknown (an unreadable file), a renewing `home` reply also unfences: the
//!   commands are meant to be idempotent, and it is the only way back from "unknown".
//!
//! [`after_heartbeat`] is the thin imperative part: load the file, decide, run the command
//! (bounded by `fence_timeout_ms`), save the file. It never changes the heartbeat's exit code.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::deliver::{Outcome, Reply};
use crate::lease::{self, LeaseFile, Observation, Stateful};
use crate::shell::{self, Ran};
use burst_wire::rfc3339;

/// Why the agent fences (`BURST_FENCE_REASON`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Not renewed, less than `fence_ahead_ms` left.
    LeaseExpiring,
    /// Not renewed, and the lease is over.
    LeaseExpired,
    /// The cloud says the stateful tier runs there.
    StatefulCloud,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::LeaseExpiring => "lease_expiring",
            Reason::LeaseExpired => "lease_expired",
            Reason::StatefulCloud => "stateful_cloud",
        }
    }
}

/// `BURST_FENCE_REASON` of an unfence.
pub const UNFENCE_REASON: &str = "stateful_home";

/// What to do after a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    Fence(Reason),
    Unfence,
}

/// The decision. `state` is the record already updated with `obs`
/// ([`LeaseFile::updated`]); `now` is the wall clock.
pub fn decide(state: &LeaseFile, obs: &Observation, now: DateTime<Utc>, ahead: Duration) -> Action {
    let home = obs.stateful == Some(Stateful::Home);
    match state.fenced {
        Some(true) => {
            if obs.renewed && home {
                Action::Unfence
            } else {
                Action::Nothing
            }
        }
        fenced => {
            if obs.stateful == Some(Stateful::Cloud) {
                return Action::Fence(Reason::StatefulCloud);
            }
            if obs.renewed {
                return if fenced.is_none() && home {
                    Action::Unfence
                } else {
                    Action::Nothing
                };
            }
            let Some(expiry) = state.local_expiry else {
                return Action::Nothing; // no known lease: nothing to fence
            };
            let left = expiry - now;
            let ahead = TimeDelta::from_std(ahead).unwrap_or(TimeDelta::MAX);
            if left <= TimeDelta::zero() {
                Action::Fence(Reason::LeaseExpired)
            } else if left < ahead {
                Action::Fence(Reason::LeaseExpiring)
            } else {
                Action::Nothing
            }
        }
    }
}

/// After the heartbeat post (only when fencing is configured): bookkeeping, and the fence or
/// unfence command if [`decide`] says so. Problems are logged, never returned.
pub async fn after_heartbeat(config: &Config, outcome: &Outcome, reply: Option<&Reply>) {
    let path = config.lease_file();
    let stored = match lease::load(&path) {
        Ok(Some(file)) => file,
        Ok(None) => LeaseFile::fresh(),
        Err(why) => {
            warn!(path = %path.display(), %why,
                "lease file unusable: no known lease, fence state unknown");
            LeaseFile::unknown()
        }
    };
    let obs = Observation::of_post(outcome, reply);
    let mut state = stored.updated(&obs);
    let now = Utc::now();
    let left_s = state
        .local_expiry
        .map(|e| (e - now).num_milliseconds() as f64 / 1000.0);
    match (&obs.not_renewed, left_s) {
        (None, _) => debug!(local_expiry = ?state.local_expiry, ?left_s, stateful = ?obs.stateful,
            "lease renewed"),
        (Some(why), Some(left_s)) if state.fenced != Some(true) => {
            warn!(%why, left_s, "lease not renewed")
        }
        (Some(why), _) => info!(%why, fenced = ?state.fenced, "lease not renewed"),
    }

    let expires = state.local_expiry.map(rfc3339).unwrap_or_default();
    match decide(&state, &obs, now, config.fence_ahead()) {
        Action::Nothing => {}
        Action::Fence(reason) => {
            let env = fence_env(&expires, reason.code());
            match shell::run(&config.fence_command, &env, config.fence_timeout()).await {
                Ran::Success => {
                    state.fenced = Some(true);
                    let left_s = left_s.map_or("unknown".to_string(), |s| format!("{s:.1}"));
                    warn!(reason = reason.code(), local_expiry = %expires, %left_s,
                        "FENCED: fence_command succeeded; the stateful tier stays stopped \
                         until the cloud says it is home");
                }
                ran => error!(
                    reason = reason.code(),
                    ?ran,
                    timeout_ms = config.fence_timeout_ms,
                    "fence_command failed; not fenced, trying again at the next heartbeat"
                ),
            }
        }
        Action::Unfence => {
            if config.unfence_command.trim().is_empty() {
                state.fenced = Some(false);
                warn!(
                    "unfenced: the cloud says the stateful tier is home; no unfence_command \
                       is set, start it by hand"
                );
            } else {
                let env = fence_env(&expires, UNFENCE_REASON);
                match shell::run(&config.unfence_command, &env, config.fence_timeout()).await {
                    Ran::Success => {
                        state.fenced = Some(false);
                        info!(
                            "unfenced: the cloud says the stateful tier is home; \
                               unfence_command succeeded"
                        );
                    }
                    ran => error!(
                        ?ran,
                        timeout_ms = config.fence_timeout_ms,
                        "unfence_command failed; still fenced, trying again at the next heartbeat"
                    ),
                }
            }
        }
    }

    if state != stored
        && let Err(e) = lease::store(&path, &state)
    {
        error!(path = %path.display(), error = %e, fenced = ?state.fenced,
            "cannot write the lease file");
    }
}

fn fence_env(expires: &str, reason: &str) -> [(&'static str, String); 2] {
    [
        ("BURST_LEASE_EXPIRES_AT", expires.to_string()),
        ("BURST_FENCE_REASON", reason.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::lease::Granted;

    const AHEAD: Duration = Duration::from_secs(60);

    fn t(s: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + TimeDelta::seconds(i64::from(s))
    }

    fn file(expiry: Option<u32>, fenced: Option<bool>) -> LeaseFile {
        LeaseFile {
            local_expiry: expiry.map(t),
            cloud_expires_at: None,
            stateful: None,
            fenced,
        }
    }

    fn failed() -> Observation {
        Observation {
            renewed: false,
            lease: None,
            stateful: None,
            not_renewed: Some("not delivered: cannot connect".into()),
        }
    }

    fn renewed(expiry: u32, stateful: Option<Stateful>) -> Observation {
        Observation {
            renewed: true,
            lease: Some(Granted {
                local_expiry: t(expiry),
                cloud_expires_at: String::new(),
            }),
            stateful,
            not_renewed: None,
        }
    }

    /// `decide` as `after_heartbeat` calls it: on the record updated with the observation.
    fn run(stored: LeaseFile, obs: Observation, now: u32) -> Action {
        decide(&stored.updated(&obs), &obs, t(now), AHEAD)
    }

    #[test]
    fn a_failed_renewal_fences_only_when_the_lease_runs_short() {
        // 120 s lease granted at t=0.
        let stored = file(Some(120), Some(false));
        assert_eq!(
            run(stored.clone(), failed(), 30),
            Action::Nothing,
            "90 s left"
        );
        assert_eq!(
            run(stored.clone(), failed(), 60),
            Action::Nothing,
            "exactly 60 s left"
        );
        assert_eq!(
            run(stored.clone(), failed(), 61),
            Action::Fence(Reason::LeaseExpiring)
        );
        assert_eq!(
            run(stored.clone(), failed(), 120),
            Action::Fence(Reason::LeaseExpired)
        );
        assert_eq!(
            run(stored, failed(), 5000),
            Action::Fence(Reason::LeaseExpired)
        );
    }

    #[test]
    fn fenced_once_is_not_fenced_again() {
        assert_eq!(
            run(file(Some(120), Some(true)), failed(), 500),
            Action::Nothing
        );
    }

    #[test]
    fn no_known_lease_means_nothing_to_fence() {
        assert_eq!(run(LeaseFile::fresh(), failed(), 0), Action::Nothing);
        assert_eq!(run(LeaseFile::unknown(), failed(), 0), Action::Nothing);
    }

    #[test]
    fn a_renewal_never_fences_for_time_even_a_short_one() {
        // A lease shorter than fence_ahead (misconfigured) only fences once renewal fails.
        let stored = file(Some(10), Some(false));
        assert_eq!(
            run(stored, renewed(40, Some(Stateful::Home)), 10),
            Action::Nothing
        );
    }

    #[test]
    fn a_duplicate_with_a_short_lease_fences_and_with_a_long_one_does_not() {
        let dup = |expiry| Observation {
            renewed: false,
            not_renewed: Some("duplicate".into()),
            ..renewed(expiry, Some(Stateful::Home))
        };
        // The file knew nothing; the duplicate's lease is what counts.
        assert_eq!(
            run(LeaseFile::fresh(), dup(30), 0),
            Action::Fence(Reason::LeaseExpiring)
        );
        assert_eq!(
            run(file(Some(10), Some(false)), dup(115), 0),
            Action::Nothing
        );
    }

    #[test]
    fn unfence_only_when_renewed_and_home() {
        let fenced = file(Some(0), Some(true));
        for s in [None, Some(Stateful::Cloud), Some(Stateful::Unsure)] {
            assert_eq!(
                run(fenced.clone(), renewed(120, s), 0),
                Action::Nothing,
                "{s:?}"
            );
        }
        assert_eq!(
            run(fenced.clone(), renewed(120, Some(Stateful::Home)), 0),
            Action::Unfence
        );
        // home without a renewed lease: not yet.
        let home_no_lease = Observation {
            stateful: Some(Stateful::Home),
            ..failed()
        };
        assert_eq!(run(fenced, home_no_lease, 0), Action::Nothing);
        // Not fenced: nothing to undo.
        assert_eq!(
            run(
                file(Some(0), Some(false)),
                renewed(120, Some(Stateful::Home)),
                0
            ),
            Action::Nothing
        );
    }

    #[test]
    fn the_cloud_holding_the_stateful_tier_fences_an_unfenced_agent() {
        // Home was off during the outage (nothing fenced), comes back, renews: the database
        // must not start at home while the cloud runs it.
        for stored in [
            file(Some(0), Some(false)),
            LeaseFile::fresh(),
            LeaseFile::unknown(),
        ] {
            assert_eq!(
                run(stored, renewed(120, Some(Stateful::Cloud)), 500),
                Action::Fence(Reason::StatefulCloud)
            );
        }
        assert_eq!(
            run(
                file(Some(120), Some(false)),
                renewed(120, Some(Stateful::Unsure)),
                0
            ),
            Action::Nothing,
            "unsure with a renewed lease: the lease rules"
        );
    }

    #[test]
    fn unknown_fence_state_is_settled_by_a_home_reply() {
        assert_eq!(
            run(LeaseFile::unknown(), renewed(120, Some(Stateful::Home)), 0),
            Action::Unfence
        );
        assert_eq!(
            run(
                LeaseFile::unknown(),
                renewed(120, Some(Stateful::Unsure)),
                0
            ),
            Action::Nothing
        );
    }
}
