//! The handler process (the host behaviour listed in local-emulator/README.md): started with the host's environment on a
//! free loopback port, polled every 25 ms until it answers any HTTP response, restarted by the
//! host's exit-code rules, its output logged like the host logs it.

use super::log::{HostLog, Level};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, watch};

/// Readiness poll interval and limit (`InitializationTimeout`).
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Errors within this window count toward the shutdown limit.
pub const ERROR_WINDOW: Duration = Duration::from_secs(30 * 60);
pub const MAX_ERRORS: usize = 3;

/// Where the handler is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerState {
    /// Being started (or restarted); invocations wait.
    Starting,
    /// Answering on this port; `generation` counts starts.
    Ready { port: u16, generation: u64 },
    /// Exited with 0: not restarted; invocations fail.
    Exited,
    /// The host gave up (too many errors or shut down).
    Stopped(String),
}

/// How to start the handler.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// With several instances, its number: each output line is prefixed `[i] `.
    pub instance: Option<usize>,
    /// A file, or a command name looked up on PATH.
    pub program: PathBuf,
    pub arguments: Vec<String>,
    pub working_directory: PathBuf,
    /// The whole environment the child gets (the FUNCTIONS_* values are added per start).
    pub env: BTreeMap<String, String>,
    pub app_root: PathBuf,
}

/// Resolves `defaultExecutablePath`: a file under the app root, else a command from PATH.
pub fn resolve_program(app_root: &Path, exe: &str) -> PathBuf {
    let candidate = app_root.join(exe);
    if candidate.is_file() {
        candidate
    } else {
        PathBuf::from(exe)
    }
}

/// Control of the running supervisor.
#[derive(Debug, Clone)]
pub struct Worker {
    state: watch::Receiver<WorkerState>,
    restart: Arc<Restart>,
    stop: Arc<Notify>,
}

/// A restart request for one generation of the handler: several invocations timing out on the
/// same process restart it once, and a request never hits its successor.
#[derive(Debug, Default)]
struct Restart {
    generation: std::sync::atomic::AtomicU64,
    notify: Notify,
}

/// The port of a ready handler and which start it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub port: u16,
    pub generation: u64,
}

impl Worker {
    /// Starts the supervisor; `on_fatal` is told when the host must shut down.
    pub fn spawn(spec: LaunchSpec, log: HostLog, fatal: Arc<Notify>) -> Worker {
        let (tx, rx) = watch::channel(WorkerState::Starting);
        let restart = Arc::new(Restart::default());
        let stop = Arc::new(Notify::new());
        tokio::spawn(supervise(
            spec,
            log,
            tx,
            restart.clone(),
            stop.clone(),
            fatal,
        ));
        Worker {
            state: rx,
            restart,
            stop,
        }
    }

    pub fn state(&self) -> WorkerState {
        self.state.borrow().clone()
    }

    /// Waits until the handler is ready; `Err` with the reason when it will not be (stopped,
    /// exited) or `Err("timeout")` after `limit`.
    pub async fn wait_ready(&self, limit: Duration) -> Result<Ready, String> {
        let mut rx = self.state.clone();
        let wait = async {
            loop {
                match rx.borrow_and_update().clone() {
                    WorkerState::Ready { port, generation } => {
                        return Ok(Ready { port, generation });
                    }
                    WorkerState::Exited => return Err("the handler exited (code 0)".to_string()),
                    WorkerState::Stopped(why) => return Err(why),
                    WorkerState::Starting => {}
                }
                if rx.changed().await.is_err() {
                    return Err("the host stopped".to_string());
                }
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .unwrap_or_else(|_| Err("timeout".to_string()))
    }

    /// Waits (up to `limit`) until the supervisor has finished; `true` if it did.
    pub async fn wait_stopped(&self, limit: Duration) -> bool {
        let mut rx = self.state.clone();
        let wait = async {
            loop {
                if matches!(*rx.borrow_and_update(), WorkerState::Stopped(_)) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// Kills and restarts the handler started as `generation` (functionTimeout exceeded);
    /// ignored when that process is already gone.
    pub fn restart(&self, generation: u64) {
        self.restart
            .generation
            .store(generation, std::sync::atomic::Ordering::SeqCst);
        self.restart.notify.notify_one();
    }

    /// Kills the handler for good.
    pub fn stop(&self) {
        self.stop.notify_one();
    }
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

fn spawn_child(
    spec: &LaunchSpec,
    port: u16,
    worker_id: &str,
    log: &HostLog,
) -> std::io::Result<Child> {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.arguments)
        .current_dir(&spec.working_directory)
        .env_clear()
        .envs(&spec.env)
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", worker_id)
        .env("FUNCTIONS_HTTPWORKER_ID", worker_id)
        .env("FUNCTIONS_APP_ROOT_PATH", &spec.app_root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let label = spec.instance.map(|i| format!("[{i}] ")).unwrap_or_default();
    if let Some(out) = child.stdout.take() {
        let (log, label) = (log.clone(), label.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                log.worker(Level::Information, &format!("{label}{l}"));
            }
        });
    }
    if let Some(err) = child.stderr.take() {
        let log = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                // Every stderr line is an Error to the host, unless it says "warn".
                let level = if l.to_ascii_lowercase().contains("warn") {
                    Level::Warning
                } else {
                    Level::Error
                };
                log.worker(level, &format!("{label}{l}"));
            }
        });
    }
    Ok(child)
}

enum Outcome {
    Exited(Option<i32>),
    StartTimeout,
    RestartRequested,
    Stop,
}

/// Polls `GET /` every 25 ms; any HTTP response means ready.
async fn wait_until_ready(
    child: &mut Child,
    port: u16,
    client: &reqwest::Client,
) -> Option<Outcome> {
    let deadline = Instant::now() + START_TIMEOUT;
    let url = format!("http://127.0.0.1:{port}/");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Outcome::Exited(status.code()));
        }
        if client.get(&url).send().await.is_ok() {
            return None;
        }
        if Instant::now() >= deadline {
            return Some(Outcome::StartTimeout);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn supervise(
    spec: LaunchSpec,
    log: HostLog,
    state: watch::Sender<WorkerState>,
    restart: Arc<Restart>,
    stop: Arc<Notify>,
    fatal: Arc<Notify>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap_or_default();
    let mut errors: VecDeque<Instant> = VecDeque::new();
    let mut generation = 0u64;
    loop {
        generation += 1;
        let _ = state.send(WorkerState::Starting);
        let worker_id = uuid::Uuid::new_v4().to_string();
        let port = match free_port() {
            Ok(p) => p,
            Err(e) => {
                log.host(Level::Error, &format!("no free port for the handler: {e}"));
                let _ = state.send(WorkerState::Stopped(format!("no free port: {e}")));
                fatal.notify_one();
                return;
            }
        };
        log.host(
            Level::Information,
            &format!(
                "Starting handler {} on port {port} (worker {worker_id})",
                spec.program.display()
            ),
        );
        let mut child = match spawn_child(&spec, port, &worker_id, &log) {
            Ok(c) => c,
            Err(e) => {
                // A handler that cannot be started is a startup error, not a crash to retry.
                let hint = if e.kind() == std::io::ErrorKind::NotFound && spec.program.is_relative()
                {
                    format!(
                        " (defaultExecutablePath: not in {} nor on PATH; copy or build it there)",
                        spec.app_root.display()
                    )
                } else {
                    String::new()
                };
                log.host(
                    Level::Error,
                    &format!(
                        "cannot start the handler {}: {e}{hint}",
                        spec.program.display()
                    ),
                );
                let _ = state.send(WorkerState::Stopped(format!(
                    "cannot start the handler: {e}"
                )));
                fatal.notify_one();
                return;
            }
        };
        let ready = tokio::select! {
            r = wait_until_ready(&mut child, port, &client) => r,
            _ = stop.notified() => Some(Outcome::Stop),
        };
        let outcome = match ready {
            Some(o) => o,
            None => {
                log.host(Level::Information, &format!("Handler ready on port {port}"));
                let _ = state.send(WorkerState::Ready { port, generation });
                loop {
                    tokio::select! {
                        s = child.wait() => break Outcome::Exited(s.ok().and_then(|s| s.code())),
                        _ = restart.notify.notified() => {
                            let wanted = restart.generation.load(std::sync::atomic::Ordering::SeqCst);
                            if wanted == generation {
                                break Outcome::RestartRequested;
                            }
                        }
                        _ = stop.notified() => break Outcome::Stop,
                    }
                }
            }
        };
        let _ = state.send(WorkerState::Starting);
        let _ = child.kill().await;
        let error = match outcome {
            Outcome::Stop => break,
            Outcome::Exited(Some(0)) => {
                log.host(
                    Level::Information,
                    "Handler exited with code 0; not restarted",
                );
                let _ = state.send(WorkerState::Exited);
                // Nothing to supervise; wait for the host to stop.
                stop.notified().await;
                break;
            }
            Outcome::Exited(Some(200)) => {
                log.host(
                    Level::Information,
                    "Handler exited with code 200; restarting as it asked",
                );
                None
            }
            Outcome::Exited(code) => Some(format!(
                "Handler exited with code {}",
                code.map(|c| c.to_string())
                    .unwrap_or_else(|| "(signal)".into())
            )),
            Outcome::StartTimeout => Some(format!(
                "Handler did not answer on port {port} within {}s",
                START_TIMEOUT.as_secs()
            )),
            Outcome::RestartRequested => {
                Some("functionTimeout exceeded; restarting the handler".into())
            }
        };
        if let Some(e) = error {
            let now = Instant::now();
            errors.push_back(now);
            while errors
                .front()
                .is_some_and(|t| now.duration_since(*t) > ERROR_WINDOW)
            {
                errors.pop_front();
            }
            log.host(Level::Error, &e);
            if errors.len() >= MAX_ERRORS {
                let why = format!(
                    "{MAX_ERRORS} handler errors within {} minutes; the host shuts down",
                    ERROR_WINDOW.as_secs() / 60
                );
                log.host(Level::Error, &why);
                let _ = state.send(WorkerState::Stopped(why));
                fatal.notify_one();
                return;
            }
            log.host(Level::Information, "Restarting the handler");
        }
    }
    let _ = state.send(WorkerState::Stopped("the host stopped".into()));
}
