//! Scheduled wake-ups through the engine: what is scheduled, when, and what a wake-up does.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::deps::{Clock, Deps};
use crate::settings::{Settings, SiteSettings};
use crate::sites::{Site, Sites};
use async_trait::async_trait;
use burst_core::{Heartbeat, Input, Mode, Timestamp, UpsEvent};
use burst_ports::{WakeUp, Waker};
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

const T0: i64 = 1_780_000_000_000;

#[derive(Default)]
struct RecordingWaker {
    asked: Mutex<Vec<(WakeUp, Duration)>>,
}

#[async_trait]
impl Waker for RecordingWaker {
    async fn schedule(&self, wake: &WakeUp, delay: Duration) -> Result<(), String> {
        self.asked.lock().unwrap().push((wake.clone(), delay));
        Ok(())
    }
}

struct Fixture {
    deps: Arc<Deps>,
    waker: Arc<RecordingWaker>,
    now: Arc<AtomicI64>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn home(&self) -> &Arc<Site> {
        self.deps.sites.get("home").unwrap()
    }

    fn new(clock_scale: f64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let get = |_: &str| None;
        let settings = Settings::from_settings(&get).unwrap();
        let now = Arc::new(AtomicI64::new(T0));
        let clock: Clock = {
            let now = now.clone();
            Arc::new(move || Timestamp(now.load(Ordering::SeqCst)))
        };
        let waker = Arc::new(RecordingWaker::default());
        let site = Site::new("home", SiteSettings::from_settings(&get).unwrap());
        let deps = Deps {
            settings,
            sites: Sites::new(vec![site]),
            store: Arc::new(burst_store::FileStore::new(dir.path())),
            clock,
            clock_scale,
            waker: Some(waker.clone()),
            parsed: Default::default(),
        };
        Fixture {
            deps: Arc::new(deps),
            waker,
            now,
            _dir: dir,
        }
    }

    /// A clock that also runs with real time from `T0` (for waits inside an invocation).
    fn live() -> Fixture {
        let mut f = Fixture::new(1.0);
        let started = std::time::Instant::now();
        let base = f.now.clone();
        let clock: Clock = Arc::new(move || {
            Timestamp(base.load(Ordering::SeqCst) + started.elapsed().as_millis() as i64)
        });
        Arc::get_mut(&mut f.deps).expect("not shared yet").clock = clock;
        f
    }

    fn advance_to(&self, t: i64) {
        self.now.store(t, Ordering::SeqCst);
    }

    fn asked(&self) -> Vec<(WakeUp, Duration)> {
        self.waker.asked.lock().unwrap().clone()
    }

    async fn on_battery(&self, id: &str) -> Applied {
        let event: UpsEvent = serde_json::from_value(json!({
            "id": id, "at": self.now.load(Ordering::SeqCst), "ups": "ups@127.0.0.1",
            "type": "ONBATT", "status": "OB",
        }))
        .unwrap();
        apply(&self.deps, self.home(), Input::Ups(event), None)
            .await
            .unwrap()
    }

    /// A heartbeat named `id`, sent and applied at `at`.
    async fn beat_at(&self, id: &str, at: i64) -> Applied {
        self.advance_to(at);
        apply(&self.deps, self.home(), beat(id, at), None)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_deadline_is_scheduled_once_and_a_repeat_adds_no_second_wake_up() {
    let f = Fixture::new(1.0);
    let applied = f.on_battery("e1").await;
    assert_eq!(applied.state.mode, Mode::Suspect);
    let grace_end = T0 + 1000 * f.home().policy().grace_on_battery_s as i64;
    let asked = f.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        asked[0].0,
        WakeUp {
            site: "home".into(),
            at: grace_end,
            probe: false,
        }
    );
    assert_eq!(asked[0].1, Duration::from_millis((grace_end - T0) as u64));
    assert_eq!(applied.state.wake_at, Some(Timestamp(grace_end)));
    // The same event again, and a later one that changes no deadline: nothing new pending.
    f.advance_to(T0 + 5_000);
    f.on_battery("e1").await;
    f.on_battery("e2").await;
    assert_eq!(f.asked().len(), 1, "{:?}", f.asked());
}

#[tokio::test]
async fn a_wake_up_acts_on_the_deadline_and_plans_the_next_one() {
    let f = Fixture::new(1.0);
    f.on_battery("e1").await;
    let (first, _) = f.asked()[0].clone();
    f.advance_to(first.at);
    let applied = wake(&f.deps, f.home(), &first)
        .await
        .unwrap()
        .expect("consumed");
    assert_eq!(
        applied.state.mode,
        Mode::Outage,
        "the grace ended at the wake-up"
    );
    assert!(applied.state.capacity.desired > 0);
    // Delivered twice (queues are at-least-once): the second copy changes nothing.
    let again = wake(&f.deps, f.home(), &first).await.unwrap();
    assert!(again.is_none(), "a consumed wake-up is not run twice");
    let asked = f.asked();
    assert!(
        asked.iter().skip(1).all(|(w, _)| w.at > first.at),
        "{asked:?}"
    );
}

#[tokio::test]
async fn superseded_forged_and_early_wake_ups() {
    let f = Fixture::new(1.0);
    f.on_battery("e1").await;
    let (pending, _) = f.asked()[0].clone();
    let before = peek(&f.deps, "home").await.unwrap();
    // Another instant, or another site: not the pending one, nothing changes.
    for other in [
        WakeUp {
            site: "home".into(),
            at: pending.at - 1,
            probe: false,
        },
        WakeUp {
            site: "cabin".into(),
            at: pending.at,
            probe: false,
        },
    ] {
        assert!(
            wake(&f.deps, f.home(), &other).await.unwrap().is_none(),
            "{other:?}"
        );
    }
    assert_eq!(peek(&f.deps, "home").await.unwrap(), before);
    // Early (a capped delay, a fast clock somewhere): consumed, nothing due yet, and the same
    // instant is asked for again with the time that is left.
    f.advance_to(pending.at - 60_000);
    let applied = wake(&f.deps, f.home(), &pending)
        .await
        .unwrap()
        .expect("consumed");
    assert_eq!(applied.state.mode, Mode::Suspect);
    let asked = f.asked();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[1], (pending.clone(), Duration::from_secs(60)));
}

#[tokio::test]
async fn a_faster_clock_asks_for_the_real_delay() {
    let f = Fixture::new(60.0);
    f.on_battery("e1").await;
    let (w, delay) = f.asked()[0].clone();
    let core_ms = (w.at - T0) as f64;
    assert_eq!(delay, Duration::from_secs_f64(core_ms / 60.0 / 1000.0));
}

#[tokio::test]
async fn a_wake_up_a_moment_early_waits_for_its_instant() {
    let f = Fixture::live();
    f.on_battery("e1").await;
    let (pending, _) = f.asked()[0].clone();
    // The queue showed the message 400 ms before its instant (whole seconds, rounded down).
    f.advance_to(pending.at - 400 - (f.deps.now().0 - f.now.load(Ordering::SeqCst)));
    let started = std::time::Instant::now();
    let applied = wake(&f.deps, f.home(), &pending)
        .await
        .unwrap()
        .expect("consumed");
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        applied.state.mode,
        Mode::Outage,
        "acted on at the deadline, not a second later"
    );
}

fn beat(id: &str, at: i64) -> Input {
    let h: Heartbeat = serde_json::from_value(json!({
        "id": id, "at": at, "nodes_ready": 3, "nodes_total": 3, "api_ok": true,
    }))
    .unwrap();
    Input::Heartbeat(h)
}

#[tokio::test]
async fn an_idle_healthy_site_asks_for_no_wake_ups() {
    let f = Fixture::new(1.0);
    for i in 0..4 {
        let applied = f.beat_at(&format!("b{i}"), T0 + i * 30_000).await;
        assert_eq!(applied.state.mode, Mode::Healthy);
    }
    assert!(f.asked().is_empty(), "{:?}", f.asked());
}

#[tokio::test]
async fn inputs_moving_a_deadline_later_add_no_wake_ups() {
    let f = Fixture::new(1.0);
    f.on_battery("e1").await;
    let grace_end = T0 + 1000 * f.home().policy().grace_on_battery_s as i64;
    let overdue = |beat_at: i64| beat_at + 1000 * f.home().policy().heartbeat_timeout_s as i64 + 1;
    // A first beat makes "heartbeats overdue" the earliest deadline: a new, earlier wake-up.
    // The next beats push it later than that pending wake-up: nothing new.
    for i in 1..=3 {
        f.beat_at(&format!("b{i}"), T0 + i * 10_000).await;
    }
    let at: Vec<i64> = f.asked().iter().map(|(w, _)| w.at).collect();
    assert_eq!(at, vec![grace_end, overdue(T0 + 10_000)]);
}
