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
