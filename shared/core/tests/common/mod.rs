//! Inputs shared by the core's example tests.
#![allow(dead_code)]

use burst_core::{Input, NotifyType, Timestamp, UpsEvent, UpsStatus};

/// The tests' start: 2026-03-02T00:00:00Z.
pub const T0: Timestamp = Timestamp::from_secs(1_772_409_600);

/// `s` seconds after [`T0`].
pub fn at(s: i64) -> Timestamp {
    T0.plus_millis(s * 1000)
}

/// A UPS event of notify type `t` with `ups.status` `status`, seen at `when`.
pub fn ups(id: &str, t: &str, status: &str, when: Timestamp) -> Input {
    Input::Ups(UpsEvent {
        id: id.into(),
        at: when,
        ups: "ups@home".into(),
        notify: NotifyType::parse(t),
        status: UpsStatus::parse(status),
        battery_charge: None,
        battery_runtime_s: None,
    })
}

/// How the test shell answers actions: every scale write accepted (all running at once),
/// every message delivered with `message_id`, every migration with `migrate`.
pub struct Shell {
    pub migrate: burst_core::MigrateResult,
    pub message_id: Option<String>,
}

impl Shell {
    /// Steps `input`, then carries out every action and feeds its outcome back until nothing
    /// is left; returns the state and every action handed out.
    pub fn feed(
        &self,
        s: burst_core::SiteState,
        input: &Input,
        now: Timestamp,
        p: &burst_core::Policy,
    ) -> (burst_core::SiteState, Vec<burst_core::Action>) {
        use burst_core::{Action, NotifyResult, Outcome, ScaleResult, step};
        let out = step(s, input, now, p);
        let mut state = out.state;
        let mut all = out.actions.clone();
        let mut pending = out.actions;
        while let Some(a) = pending.pop() {
            let o = match &a {
                Action::SetCapacity { capacity, .. } => Outcome::Scale {
                    requested: *capacity,
                    result: ScaleResult::Accepted {
                        capacity: *capacity,
                        running: Some(*capacity),
                    },
                },
                Action::Migrate {
                    tier, direction, ..
                } => Outcome::Migrate {
                    tier: *tier,
                    direction: *direction,
                    result: self.migrate.clone(),
                },
                Action::Notify(n) => Outcome::Notify {
                    key: n.key.clone(),
                    result: NotifyResult::Delivered {
                        message_id: self.message_id.clone(),
                    },
                },
            };
            let out = step(state, &Input::Outcome(o), now, p);
            state = out.state;
            all.extend(out.actions.iter().cloned());
            pending.extend(out.actions);
        }
        (state, all)
    }
}
