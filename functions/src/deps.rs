//! What the function bodies need from the outside world, behind the ports' traits.

use crate::settings::Settings;
use crate::sites::Sites;
use crate::state_cache::StateCache;
use burst_core::Timestamp;
use burst_ports::{StateStore, Waker};
use std::sync::Arc;

/// The wall clock, injectable (tests, drills at a different pace).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| Timestamp::from_millis(chrono::Utc::now().timestamp_millis()))
}

pub struct Deps {
    pub settings: Settings,
    /// The watched sites with their own policy and adapters.
    pub sites: Sites,
    /// One store for every site (a document per site).
    pub store: Arc<dyn StateStore>,
    pub clock: Clock,
    /// How many core milliseconds pass per real millisecond (1 except in fast drills): a
    /// wake-up due in core time is scheduled after the real delay.
    pub clock_scale: f64,
    /// Scheduled wake-ups (a Storage Queue); without one, deadlines wait for the probe.
    pub waker: Option<Arc<dyn Waker>>,
    /// Parsed states by version tag (saves the JSON parse on most loads).
    pub parsed: StateCache,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("settings", &self.settings)
            .field("sites", &self.sites)
            .field("waker", &self.waker.is_some())
            .finish_non_exhaustive()
    }
}

impl Deps {
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }
}
