//! Timer triggers (the host behaviour listed in local-emulator/README.md): schedule, monitor status persisted in a file,
//! past-due detection at startup, `runOnStartup`, no overlapping runs. The loop takes an
//! injectable [`Clock`] and an injectable invoker, so tests drive it on virtual time.

use super::payload::{self, Ordered, ScheduleStatus};
use super::schedule::Schedule;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The time source of timers.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
    /// Returns once `now() >= t`.
    fn sleep_until(&self, t: DateTime<Utc>) -> BoxFuture<'_, ()>;
}

/// Wall-clock time.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep_until(&self, t: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Re-check after waking: the wall clock may have moved.
            while Utc::now() < t {
                let d = (t - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(d.min(std::time::Duration::from_secs(60))).await;
            }
        })
    }
}

/// Time that moves only when told to (tests, virtual drills).
#[derive(Debug)]
pub struct VirtualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl VirtualClock {
    pub fn new(start: DateTime<Utc>) -> VirtualClock {
        VirtualClock {
            now: watch::channel(start).0,
        }
    }
    pub fn set(&self, t: DateTime<Utc>) {
        self.now.send_replace(t);
    }
    pub fn advance(&self, d: chrono::Duration) {
        let t = *self.now.borrow() + d;
        self.set(t);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }
    fn sleep_until(&self, t: DateTime<Utc>) -> BoxFuture<'_, ()> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            loop {
                if *rx.borrow_and_update() >= t {
                    return;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

/// What happens when the host starts (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupRun {
    /// The stored `Next` has passed: run once now with `IsPastDue: true`.
    PastDue,
    /// `runOnStartup` and not past due: run once now with `IsPastDue: false`.
    OnStartup,
    None,
}

pub fn startup_run(
    stored: Option<&ScheduleStatus>,
    monitor: bool,
    run_on_startup: bool,
    now: DateTime<Utc>,
) -> StartupRun {
    if monitor && stored.is_some_and(|s| now > s.next) {
        StartupRun::PastDue
    } else if run_on_startup {
        StartupRun::OnStartup
    } else {
        StartupRun::None
    }
}

/// Runs one invocation with this payload; `true` when it succeeded.
pub type Invoker = Arc<dyn Fn(Ordered, String) -> BoxFuture<'static, bool> + Send + Sync>;

/// One timer function.
pub struct Timer {
    pub function: String,
    pub trigger: String,
    pub schedule: Schedule,
    /// Effective: false when turned off in function.json or because it fires more than once
    /// a minute.
    pub monitor: bool,
    pub run_on_startup: bool,
    pub max_retry_count: Option<u32>,
    /// `<state dir>/timers/<function>/status`.
    pub status_path: PathBuf,
    status: Mutex<Option<ScheduleStatus>>,
    /// Serializes runs: scheduled and manual runs never overlap.
    running: tokio::sync::Mutex<()>,
    clock: Arc<dyn Clock>,
    invoke: Invoker,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("function", &self.function)
            .field("monitor", &self.monitor)
            .finish_non_exhaustive()
    }
}

/// Reads a stored status leniently; a broken file counts as none.
pub fn read_status(path: &std::path::Path) -> Option<ScheduleStatus> {
    let text = std::fs::read_to_string(path).ok()?;
    ScheduleStatus::from_json(&serde_json::from_str(&text).ok()?)
}

fn write_status(path: &std::path::Path, s: &ScheduleStatus) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Write then rename, so a crash never leaves half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, s.to_json().to_json_string())?;
    std::fs::rename(tmp, path)
}

/// Parameters of [`Timer::new`].
#[derive(Debug, Clone)]
pub struct TimerSpec {
    pub function: String,
    pub trigger: String,
    pub schedule: Schedule,
    pub use_monitor: bool,
    pub run_on_startup: bool,
    pub max_retry_count: Option<u32>,
    pub status_path: PathBuf,
}

impl Timer {
    pub fn new(spec: TimerSpec, clock: Arc<dyn Clock>, invoke: Invoker) -> Timer {
        let now = clock.now();
        let monitor = spec.use_monitor && !spec.schedule.fires_more_than_once_a_minute(now);
        Timer {
            function: spec.function,
            trigger: spec.trigger,
            schedule: spec.schedule,
            monitor,
            run_on_startup: spec.run_on_startup,
            max_retry_count: spec.max_retry_count,
            status_path: spec.status_path,
            status: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
            clock,
            invoke,
        }
    }

    pub fn status(&self) -> Option<ScheduleStatus> {
        self.status.lock().ok().and_then(|s| s.clone())
    }

    fn set_status(&self, s: ScheduleStatus) {
        if let Err(e) = write_status(&self.status_path, &s) {
            // Losing the status only weakens past-due detection; keep running.
            eprintln!(
                "func-emulator: cannot write {}: {e}",
                self.status_path.display()
            );
        }
        if let Ok(mut slot) = self.status.lock() {
            *slot = Some(s);
        }
    }

    /// One run, never overlapping another of this timer.
    pub async fn run_once(&self, past_due: bool, reason: String) -> bool {
        let _guard = self.running.lock().await;
        let now = self.clock.now();
        let status = if self.monitor { self.status() } else { None };
        let retry = self.max_retry_count.map(|m| (0, m));
        let body = payload::timer_invocation(
            &self.function,
            &self.trigger,
            status.as_ref(),
            past_due,
            retry,
            now,
            uuid::Uuid::new_v4(),
        );
        let ok = (self.invoke)(body, reason).await;
        if self.monitor
            && let Some(next) = self.schedule.next_after(self.clock.now())
        {
            self.set_status(ScheduleStatus {
                last: now,
                next,
                last_updated: now,
            });
        }
        ok
    }

    /// The timer loop: startup run, then every occurrence until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let now = self.clock.now();
        let stored = if self.monitor {
            read_status(&self.status_path)
        } else {
            None
        };
        let decision = startup_run(stored.as_ref(), self.monitor, self.run_on_startup, now);
        if self.monitor {
            let next = self.schedule.next_after(now);
            let initial = match (stored, next) {
                (Some(s), _) => Some(s),
                (None, Some(next)) => Some(ScheduleStatus {
                    last: payload::dotnet_min(),
                    next,
                    last_updated: payload::dotnet_min(),
                }),
                (None, None) => None,
            };
            if let Some(s) = initial {
                if decision == StartupRun::PastDue {
                    if let Ok(mut slot) = self.status.lock() {
                        *slot = Some(s);
                    }
                } else {
                    self.set_status(s);
                }
            }
        }
        match decision {
            StartupRun::PastDue => {
                self.run_once(
                    true,
                    format!("Timer fired at {} (past due)", payload::offset_string(now)),
                )
                .await;
            }
            StartupRun::OnStartup => {
                self.run_once(false, "Timer fired on startup (runOnStartup)".into())
                    .await;
            }
            StartupRun::None => {}
        }
        loop {
            if *stop.borrow() {
                return;
            }
            let Some(next) = self.schedule.next_after(self.clock.now()) else {
                return;
            };
            if self.monitor
                && let Some(mut s) = self.status()
                && s.next != next
            {
                s.next = next;
                self.set_status(s);
            }
            tokio::select! {
                _ = self.clock.sleep_until(next) => {}
                _ = stop.changed() => return,
            }
            self.run_once(
                false,
                format!(
                    "Timer fired at {}",
                    payload::offset_string(self.clock.now())
                ),
            )
            .await;
        }
    }
}
