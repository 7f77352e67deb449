//! The decision core of hybrid-burst (the README's "Architecture" lists its modules).
//!
//! A deterministic state machine in the style of `quinn-proto`:
//! [`step`]`(state, input, now, policy) -> (state, actions, next_wake)`. It reads no clock, no
//! environment, no socket and no randomness: everything it needs is passed in, which is what
//! makes virtual-time drills and property tests possible. The shells (functions, drills)
//! load the state, call `step`, save with compare-and-swap, carry out the actions and feed the
//! outcomes back as inputs.

pub mod action;
pub mod ahead;
pub mod assess;
pub mod audit;
pub mod budget;
pub mod capacity;
pub mod dedupe;
pub mod incident;
pub mod input;
pub mod invariants;
pub mod machine;
pub mod mode;
pub mod nut;
pub mod policy;
pub mod signals;
pub mod state;
pub mod time;

pub use action::{Action, Delivery, Direction, Notification, Severity, Tier};
pub use input::{
    ApiProbe, DevicesProbe, Heartbeat, Input, MigrateResult, NodeCount, NotifyResult, Outcome,
    ProbeReport, ScaleResult, ScaleSetProbe, TailscaleEvent, UpsEvent, WitnessReport,
};
pub use machine::{Step, next_wake, remember_token, step};
pub use nut::{NotifyType, UpsStatus};
pub use policy::{Policy, PolicyError};
pub use state::{Mode, SiteState, StateError};
pub use time::Timestamp;
