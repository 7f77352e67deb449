//! The simulated world behind the engine's ports, for virtual drills: the home (power, network,
//! cluster, the agent's spool), the cloud (scale set, Discord, the cloud cluster), the state
//! store (in memory, with compare-and-swap) and the wake-up queue, all on the drill's virtual
//! clock. The engine gets these as its adapters and never knows it is simulated.
//!
//! Faults below the engine are injected here: the cloud's (see [`Cloud`]), the store's (503
//! windows, compare-and-swap lost to a concurrent writer) and crashes: a port that reaches the
//! scenario's crash point signals it and never answers, and the drill drops the invocation
//! (as a killed process would leave it).

use super::cloud::{Cloud, ScaleEffect};
use super::home::Home;
use super::record::{Kind, Record};
use crate::scenario::CrashPoint;
use async_trait::async_trait;
use burst_core::{
    ApiProbe, DevicesProbe, Direction, MigrateResult, Notification, NotifyResult, Policy,
    ScaleResult, ScaleSetProbe, SiteState, Tier, Timestamp, invariants,
};
use burst_ports::{
    DeviceList, HomeProbe, Loaded, Migrator, Notifier, Saved, Scaler, StateStore, StoreError,
    Versioned, WakeUp, Waker,
};
use burst_store_sim::MemoryStore;
use std::sync::{Arc, Mutex, MutexGuard};

/// Everything simulated, shared by the ports and the drill loop.
#[derive(Debug)]
pub struct SimWorld {
    state: Mutex<WorldState>,
    /// The virtual clock's zero (tokio's paused clock).
    t0: tokio::time::Instant,
    pub start: Timestamp,
    pub site: String,
    pub policy: Policy,
    pub store: MemoryStore,
    /// Signalled when a port reaches the crash point (the invocation is then dropped).
    pub crash: tokio::sync::Notify,
}

#[derive(Debug)]
pub struct WorldState {
    pub home: Home,
    pub cloud: Cloud,
    pub records: Vec<Record>,
    /// Wake-ups the engine asked for: (due, message), drained by the drill loop.
    pub wakes: Vec<(Timestamp, WakeUp)>,
    pub crash_at: Option<CrashPoint>,
    pub store_down_until: Option<Timestamp>,
    pub store_conflicts: u32,
    /// Workloads per tier on the cloud cluster.
    pub workloads: (u32, u32),
    /// Moves of the stateful tier to the cloud: when, and whether the saved state that asked
    /// for it allowed it (quorum, no up vote, lease expired).
    pub stateful_moves: Vec<(Timestamp, bool)>,
    /// Every document saved since the drill last looked, with its version and time (the
    /// rules are checked on each saved state, not only an invocation's last). A document's
    /// bytes are kept only once a later save replaces it; the latest is in the store.
    pub saved: Vec<(Timestamp, String, Option<Vec<u8>>)>,
    /// Capacity writes that lowered the scale set while workloads ran in the cloud.
    pub scale_downs_with_workloads: Vec<(Timestamp, u32, u32)>,
}

impl SimWorld {
    pub fn new(
        start: Timestamp,
        site: &str,
        policy: Policy,
        home: Home,
        cloud: Cloud,
        workloads: (u32, u32),
    ) -> SimWorld {
        SimWorld {
            state: Mutex::new(WorldState {
                home,
                cloud,
                records: Vec::new(),
                wakes: Vec::new(),
                crash_at: None,
                store_down_until: None,
                store_conflicts: 0,
                workloads,
                stateful_moves: Vec::new(),
                saved: Vec::new(),
                scale_downs_with_workloads: Vec::new(),
            }),
            t0: tokio::time::Instant::now(),
            start,
            site: site.to_string(),
            policy,
            store: MemoryStore::new(),
            crash: tokio::sync::Notify::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, WorldState> {
        // A panic while holding the lock already failed the drill; go on with the data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The virtual clock: the scenario's start plus the paused runtime's elapsed time.
    pub fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().duration_since(self.t0);
        self.start
            .plus_millis(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
    }

    /// Milliseconds since the scenario's start.
    pub fn t_ms(&self) -> i64 {
        self.now().since(self.start)
    }

    /// The tokio instant of scenario time `t_ms`.
    pub fn instant(&self, t_ms: i64) -> tokio::time::Instant {
        self.t0 + std::time::Duration::from_millis(u64::try_from(t_ms).unwrap_or(0))
    }

    /// The saved state (the intent is saved before its actions run).
    fn saved(&self) -> Option<SiteState> {
        let doc = self.store.get(&self.site)?;
        SiteState::from_json(&doc.bytes).ok()
    }

    /// Why the saved state asks for its capacity.
    fn capacity_reason(&self) -> String {
        self.saved().map(|s| s.capacity.reason).unwrap_or_default()
    }

    pub fn record(&self, kind: Kind) {
        let t_ms = self.t_ms();
        self.lock().records.push(Record { t_ms, kind });
    }

    /// If the scenario's crash point is `point`, the process dies here: signal the drill and
    /// never return (the drill drops this invocation).
    async fn maybe_crash(&self, point: CrashPoint) {
        let crash = {
            let mut w = self.lock();
            let hit = w.crash_at == Some(point);
            if hit {
                w.crash_at = None;
            }
            hit
        };
        if crash {
            self.record(Kind::Event {
                text: format!(
                    "the function process dies ({})",
                    match point {
                        CrashPoint::AfterSave => "after a save, before its actions",
                        CrashPoint::AfterAction => "after an action, before its outcome is saved",
                    }
                ),
            });
            self.crash.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

/// The ports for one simulated world.
pub struct Ports {
    pub store: Arc<dyn StateStore>,
    pub scaler: Arc<dyn Scaler>,
    pub notifier: Arc<dyn Notifier>,
    pub home: Arc<dyn HomeProbe>,
    pub devices: Arc<dyn DeviceList>,
    pub migrator: Arc<dyn Migrator>,
    pub waker: Arc<dyn Waker>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

pub fn ports(world: &Arc<SimWorld>) -> Ports {
    let w = SimPort(world.clone());
    Ports {
        store: Arc::new(w.clone()),
        scaler: Arc::new(w.clone()),
        notifier: Arc::new(w.clone()),
        home: Arc::new(w.clone()),
        devices: Arc::new(w.clone()),
        migrator: Arc::new(w.clone()),
        waker: Arc::new(w),
    }
}

/// The deployment's one state store when several simulated sites are watched: each site's
/// document lives in its own world (its faults and saved-state tracking), behind one port.
pub struct SiteStores {
    pub by_site: std::collections::HashMap<String, Arc<dyn StateStore>>,
}

impl std::fmt::Debug for SiteStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteStores")
            .field("sites", &self.by_site.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SiteStores {
    fn of(&self, site: &str) -> Result<&Arc<dyn StateStore>, StoreError> {
        self.by_site
            .get(site)
            .ok_or_else(|| StoreError::Unavailable(format!("no simulated site {site:?}")))
    }
}

#[async_trait]
impl StateStore for SiteStores {
    async fn load(&self, site: &str) -> Result<Option<Versioned>, StoreError> {
        self.of(site)?.load(site).await
    }

    async fn load_if_changed(&self, site: &str, known: &str) -> Result<Loaded, StoreError> {
        self.of(site)?.load_if_changed(site, known).await
    }

    async fn save(&self, site: &str, bytes: &[u8], expected: Option<&str>) -> Saved {
        self.of(site)?.save(site, bytes, expected).await
    }
}

/// One handle on the world that implements every port.
#[derive(Clone, Debug)]
struct SimPort(Arc<SimWorld>);

#[async_trait]
impl StateStore for SimPort {
    async fn load(&self, site: &str) -> Result<Option<Versioned>, StoreError> {
        self.store_available()?;
        self.0.store.load(site).await
    }

    async fn load_if_changed(&self, site: &str, known: &str) -> Result<Loaded, StoreError> {
        self.store_available()?;
        self.0.store.load_if_changed(site, known).await
    }

    async fn save(&self, site: &str, bytes: &[u8], expected: Option<&str>) -> Saved {
        self.store_available()?;
        let concurrent = {
            let mut w = self.0.lock();
            let hit = w.store_conflicts > 0;
            if hit {
                w.store_conflicts -= 1;
            }
            hit
        };
        if concurrent {
            // Another invocation saved first: the same document under a new version.
            let current = self.0.store.get(site).map_or(bytes.to_vec(), |v| v.bytes);
            self.0.store.put(site, &current);
        }
        // The document this save replaces, if the drill has not looked at it yet (a second
        // save in one invocation; most save once).
        let unseen = self.0.lock().saved.last().is_some_and(|l| l.2.is_none());
        let replaced = if unseen { self.0.store.get(site) } else { None };
        let tag = self.0.store.save(site, bytes, expected).await?;
        let now = self.0.now();
        {
            let mut w = self.0.lock();
            if let (Some(last), Some(old)) = (w.saved.last_mut(), replaced)
                && last.2.is_none()
                && last.1 == old.etag
            {
                last.2 = Some(old.bytes);
            }
            w.saved.push((now, tag.clone(), None));
        }
        self.0.maybe_crash(CrashPoint::AfterSave).await;
        Ok(tag)
    }
}

impl SimPort {
    fn store_available(&self) -> Result<(), StoreError> {
        let now = self.0.now();
        match self.0.lock().store_down_until {
            Some(until) if now < until => Err(StoreError::Unavailable(
                "503 Service Unavailable (simulated outage)".into(),
            )),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Scaler for SimPort {
    async fn observe(&self) -> ScaleSetProbe {
        let now = self.0.now();
        self.0.lock().cloud.probe(now)
    }

    async fn set_capacity(&self, capacity: u32) -> ScaleResult {
        let now = self.0.now();
        let (result, effect, wait_ms, workloads_out) = {
            let mut w = self.0.lock();
            let (result, effect, wait_ms) = w.cloud.set_capacity(capacity, now);
            let out = w.cloud.in_cloud(Tier::Critical) || w.cloud.in_cloud(Tier::Stateful);
            (result, effect, wait_ms, out)
        };
        if let ScaleEffect::Written { from, to } | ScaleEffect::WrittenAnswerLost { from, to } =
            effect
            && to < from
            && workloads_out
        {
            // Lowering the capacity under workloads in the cloud: only as far as the budget
            // forces (the state that asked for the write says what its budget allows).
            let cap = self
                .0
                .saved()
                .and_then(|s| burst_core::budget::cap(&s.budget, &self.0.policy));
            if cap.is_none_or(|c| to < c) {
                self.0
                    .lock()
                    .scale_downs_with_workloads
                    .push((now, from, to));
            }
        }
        let applied = match effect {
            ScaleEffect::Written { from, to } => {
                let reason = self.0.capacity_reason();
                self.0.record(Kind::Scale {
                    from,
                    capacity: to,
                    reason,
                });
                true
            }
            ScaleEffect::WrittenAnswerLost { from, to } => {
                let reason = format!("{}; the answer is lost", self.0.capacity_reason());
                self.0.record(Kind::Scale {
                    from,
                    capacity: to,
                    reason,
                });
                true
            }
            ScaleEffect::Unchanged => {
                self.0.record(Kind::ArmCall {
                    result: format!("capacity already {capacity}"),
                });
                false
            }
            ScaleEffect::Refused => {
                self.0.record(Kind::ArmCall {
                    result: format!("write of {capacity} refused: {result:?}"),
                });
                false
            }
        };
        if wait_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms as u64)).await;
        }
        if applied {
            self.0.maybe_crash(CrashPoint::AfterAction).await;
        }
        result
    }
}

#[async_trait]
impl Notifier for SimPort {
    async fn send(&self, n: &Notification) -> NotifyResult {
        let result = self.0.lock().cloud.notify(n);
        match &result {
            NotifyResult::Delivered { .. } => {
                self.0.record(Kind::Notify {
                    incident: n.key.clone(),
                    action: n.delivery.as_str().into(),
                    title: n.title.clone(),
                });
                self.0.maybe_crash(CrashPoint::AfterAction).await;
            }
            other => self.0.record(Kind::NotifyFailed {
                incident: n.key.clone(),
                detail: format!("{other:?}"),
            }),
        }
        result
    }
}

#[async_trait]
impl HomeProbe for SimPort {
    async fn observe(&self) -> ApiProbe {
        self.0.lock().home.api_probe()
    }
}

#[async_trait]
impl DeviceList for SimPort {
    async fn observe(&self) -> DevicesProbe {
        self.0.lock().home.devices_probe()
    }
}

#[async_trait]
impl Migrator for SimPort {
    async fn migrate(&self, tier: Tier, direction: Direction) -> MigrateResult {
        let now = self.0.now();
        let result = {
            let mut w = self.0.lock();
            let n = match tier {
                Tier::Critical => w.workloads.0,
                Tier::Stateful => w.workloads.1,
            };
            w.cloud.migrate(tier, direction, n)
        };
        if matches!(result, MigrateResult::Done { .. })
            && tier == Tier::Stateful
            && direction == Direction::ToCloud
        {
            let allowed = self
                .0
                .saved()
                .is_some_and(|s| invariants::stateful_move_ok(&s, now, &self.0.policy));
            self.0.lock().stateful_moves.push((now, allowed));
        }
        match &result {
            MigrateResult::Done { .. } => {
                self.0.record(Kind::Migrate {
                    tier: tier.as_str().into(),
                    direction: direction.as_str().into(),
                });
                self.0.maybe_crash(CrashPoint::AfterAction).await;
            }
            other => self.0.record(Kind::Event {
                text: format!(
                    "move {}:{} failed: {other:?}",
                    tier.as_str(),
                    direction.as_str()
                ),
            }),
        }
        result
    }
}

#[async_trait]
impl Waker for SimPort {
    async fn schedule(&self, wake: &WakeUp, delay: std::time::Duration) -> Result<(), String> {
        let due = self
            .0
            .now()
            .plus_millis(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        self.0.lock().wakes.push((due, wake.clone()));
        Ok(())
    }
}
