//! `func-emulator start`: the Azure Functions host, locally, for custom-handler apps
//! (the host behaviour listed in local-emulator/README.md). It reads the app folder, starts the handler process, serves the
//! functions' HTTP routes with key checks, calls the handler in forwarding or JSON mode, and
//! fires timers. Quirks of the real host are reproduced on purpose (see README.md), so what
//! passes here passes in Azure.
//!
//! Library use (real-time drills embed it): [`Host::start`] → [`HostHandle`].

pub mod app;
mod http;
pub mod keys;
pub mod log;
pub mod payload;
pub mod queue;
pub mod schedule;
pub mod timer;
pub mod worker;

use app::{App, AppError, Trigger};
use base64::Engine as _;
use log::{HostLog, Level};
use schedule::{Schedule, ScheduleError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use timer::{Clock, SystemClock, Timer, TimerSpec};
use tokio::sync::{Notify, watch};
use worker::{LaunchSpec, Worker, WorkerState};

/// Settings naming the host's keys (read from the settings file / `--set`; never passed to
/// the handler). Absent keys are generated at start.
pub const MASTER_KEY_SETTING: &str = "FUNC_EMULATOR_MASTER_KEY";
pub const HOST_KEY_SETTING: &str = "FUNC_EMULATOR_HOST_KEY";
/// The default function key of every function; `FUNC_EMULATOR_FUNCTION_KEY_<name>` for one.
pub const FUNCTION_KEY_SETTING: &str = "FUNC_EMULATOR_FUNCTION_KEY";

/// App settings the deployment always sets (infra/azure/src/settings.ts), with the value it
/// sets when the operator chose none. `func-emulator start` applies them when neither the
/// settings nor the environment has them, and logs each one it applied.
pub const APP_SETTING_DEFAULTS: &[(&str, &str)] = &[
    ("BURST_PROBE_SCHEDULE", "*/30 * * * * *"),
    ("BURST_WAKE_QUEUE", "burst-wake"),
];

/// Default functionTimeout when host.json has none (Consumption plan).
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(300);
/// How long an invocation waits for the handler to become ready before the host gives up.
pub const READY_WAIT: Duration = Duration::from_secs(120);

/// Why the host cannot start. Fix what the message names, then start again.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// host.json or a function.json is wrong.
    #[error(transparent)]
    App(#[from] AppError),
    /// The settings file cannot be read or is not `{"IsEncrypted":false,"Values":{...}}`.
    #[error("settings file {path}: {problem}")]
    Settings { path: PathBuf, problem: String },
    /// A timer's schedule is invalid or names a setting that does not exist.
    #[error("function {function}: {problem}")]
    Schedule { function: String, problem: String },
    /// The state folder or the keys file in it cannot be used: fix its permissions or content,
    /// or choose another `--state-dir`.
    #[error("cannot keep the host's keys: {0} (--state-dir chooses another folder)")]
    Keys(#[from] keys::KeysError),
    /// The listening port is taken or not allowed: choose another `--port`.
    #[error("cannot listen on 127.0.0.1:{port}: {detail}")]
    Bind { port: u16, detail: String },
}

/// How to run the host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub app_dir: PathBuf,
    /// 0 = any free port.
    pub port: u16,
    /// App settings (the handler's environment on top of ours).
    pub settings: BTreeMap<String, String>,
    /// Check keys (default). `false` behaves like Core Tools locally: every level passes.
    pub auth: bool,
    /// Where timer status and the generated keys (`keys.json`) live; default
    /// `<app>/.func-emulator`.
    pub state_dir: Option<PathBuf>,
    /// Settings applied when neither `settings` nor the environment has them (logged when
    /// used); [`APP_SETTING_DEFAULTS`] unless changed.
    pub default_settings: BTreeMap<String, String>,
    pub clock: Arc<dyn Clock>,
    /// Print log lines to stdout (they are kept for [`HostHandle::logs`] either way).
    pub print_logs: bool,
    /// Handler processes, like instances the platform scales out to (1). Invocations (HTTP,
    /// timer, queue) go to them in turn; with more than one, each process's log lines are
    /// prefixed `[i] `.
    pub instances: usize,
}

impl HostConfig {
    pub fn new(app_dir: impl Into<PathBuf>) -> HostConfig {
        HostConfig {
            app_dir: app_dir.into(),
            port: 0,
            settings: BTreeMap::new(),
            auth: true,
            state_dir: None,
            default_settings: APP_SETTING_DEFAULTS
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            clock: Arc::new(SystemClock),
            print_logs: false,
            instances: 1,
        }
    }
}

/// Reads a `local.settings.json`-style file: `{"IsEncrypted":false,"Values":{...}}`.
pub fn read_settings_file(path: &Path) -> Result<BTreeMap<String, String>, HostError> {
    let err = |problem: String| HostError::Settings {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let v: Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| err(format!("not valid JSON: {e}")))?;
    if v.get("IsEncrypted").and_then(Value::as_bool) == Some(true) {
        return Err(err(
            "IsEncrypted is true; the emulator reads plain values only".into(),
        ));
    }
    let mut out = BTreeMap::new();
    match v.get("Values") {
        None | Some(Value::Null) => {}
        Some(Value::Object(values)) => {
            for (k, v) in values {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => String::new(),
                    _ => return Err(err(format!("Values.{k}: must be a string"))),
                };
                out.insert(k.clone(), s);
            }
        }
        Some(_) => return Err(err("Values must be an object".into())),
    }
    Ok(out)
}

/// Replaces `%NAME%` with the setting (or environment variable); unresolved ones vanish.
pub fn substitute(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) => {
                out.push_str(&rest[..start]);
                let name = &after[..end];
                if let Some(v) = lookup(name) {
                    out.push_str(&v);
                }
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// Resolves a queue trigger's queue name (`%Setting%` allowed) and storage connection.
fn queue_listener(
    f: &app::Function,
    q: &app::QueueTrigger,
    lookup: &dyn Fn(&str) -> Option<String>,
    options: &app::QueueOptions,
) -> Result<queue::QueueListener, String> {
    let queue_name = substitute(&q.queue_name, lookup);
    if queue_name.is_empty() || queue_name.contains('%') {
        return Err(format!(
            "queueName {:?}: the setting it names is not set",
            q.queue_name
        ));
    }
    let text = lookup(&q.connection)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            format!(
                "the connection setting {} is not set (a storage connection string, e.g. \
                 UseDevelopmentStorage=true for Azurite)",
                q.connection
            )
        })?;
    let connection = queue::StorageConnection::parse(&text)
        .map_err(|e| format!("the connection setting {}: {e}", q.connection))?;
    Ok(queue::QueueListener {
        function: f.name.clone(),
        binding: q.name.clone(),
        queue_name,
        connection,
        options: options.clone(),
    })
}

/// `path` made absolute against the current directory (symlinks are not resolved).
fn absolute(path: &Path) -> Result<PathBuf, HostError> {
    std::path::absolute(path).map_err(|e| {
        HostError::App(AppError::Io {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    })
}

fn random_key() -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The host's keys.
#[derive(Debug, Clone)]
pub struct Keys {
    pub master: String,
    pub host: String,
    /// Function name (lower-case) → its default key.
    pub functions: BTreeMap<String, String>,
    /// Where the host key came from (a setting, the keys file, or generated now).
    pub host_origin: keys::KeyOrigin,
    /// `<state dir>/keys.json`.
    pub file: PathBuf,
}

fn is_key_setting(name: &str) -> bool {
    name.to_ascii_uppercase().starts_with("FUNC_EMULATOR_")
        && name.to_ascii_uppercase().contains("KEY")
}

fn is_disabled(settings: &BTreeMap<String, String>, function: &str) -> bool {
    let want = format!("AzureWebJobs.{function}.Disabled");
    settings.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case(&want) && (v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
    })
}

/// Everything the request handlers and timers share.
pub(crate) struct Inner {
    pub(crate) app: App,
    pub(crate) keys: Keys,
    pub(crate) auth: bool,
    pub(crate) disabled: Vec<String>,
    /// One worker per instance; invocations take them in turn.
    pub(crate) workers: Vec<Worker>,
    pub(crate) next_worker: std::sync::atomic::AtomicUsize,
    pub(crate) log: HostLog,
    pub(crate) client: reqwest::Client,
    pub(crate) forwarder: http::Forwarder,
    pub(crate) function_timeout: Duration,
    pub(crate) timers: BTreeMap<String, Arc<Timer>>,
    /// Function name → its schedule after `%Setting%` substitution.
    pub(crate) schedules: BTreeMap<String, String>,
    pub(crate) fatal: Arc<Notify>,
}

impl Inner {
    pub(crate) fn is_disabled(&self, function: &str) -> bool {
        self.disabled
            .iter()
            .any(|d| d.eq_ignore_ascii_case(function))
    }
}

/// The Functions host.
#[derive(Debug)]
pub struct Host;

/// A running host. Stops on [`HostHandle::shutdown`] (or by itself after too many handler
/// errors; see [`HostHandle::stopped`]).
pub struct HostHandle {
    inner: Arc<Inner>,
    base_url: String,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostHandle")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Loads the app, binds the port, starts the handler and the timers. Returns as soon as
    /// the host listens; invocations wait for the handler to be ready.
    pub async fn start(config: HostConfig) -> Result<HostHandle, HostError> {
        // Every path derived from the app folder is absolute: the handler runs in its own
        // working directory, where a relative `functions/app/...` would not exist.
        let app_dir = absolute(&config.app_dir)?;
        let app = App::load(&app_dir)?;
        let log = HostLog::new(config.print_logs);
        let mut settings = config.settings.clone();
        for (name, value) in &config.default_settings {
            if !settings.contains_key(name) && std::env::var_os(name).is_none() {
                settings.insert(name.clone(), value.clone());
                log.host(
                    Level::Information,
                    &format!(
                        "{name} is not set: using the default {value:?} (the app setting \
                         Azure gets by default); set it with --set {name}=... to change it"
                    ),
                );
            }
        }
        let settings = settings;
        let lookup = |name: &str| -> Option<String> {
            settings
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        };
        // A key setting counts when it is not empty (templates often leave "" in place).
        let key_setting = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .map(|v| (name.to_string(), v))
        };

        let disabled: Vec<String> = app
            .functions
            .iter()
            .filter(|f| is_disabled(&settings, &f.name))
            .map(|f| f.name.clone())
            .collect();

        // Timer schedules must resolve and parse before anything starts.
        let mut timer_specs = Vec::new();
        let mut schedules = BTreeMap::new();
        let state_dir = match &config.state_dir {
            Some(d) => absolute(d)?,
            None => app.root.join(".func-emulator"),
        };
        for f in &app.functions {
            let Trigger::Timer(t) = &f.trigger else {
                continue;
            };
            let expr =
                if t.schedule.starts_with('%') && t.schedule.ends_with('%') && t.schedule.len() > 2
                {
                    let name = &t.schedule[1..t.schedule.len() - 1];
                    lookup(name).ok_or_else(|| HostError::Schedule {
                        function: f.name.clone(),
                        problem: format!("schedule {:?}: setting {name} is not set", t.schedule),
                    })?
                } else {
                    t.schedule.clone()
                };
            let schedule =
                Schedule::parse(&expr).map_err(|e: ScheduleError| HostError::Schedule {
                    function: f.name.clone(),
                    problem: e.to_string(),
                })?;
            schedules.insert(f.name.clone(), expr);
            if disabled.contains(&f.name) {
                continue;
            }
            timer_specs.push(TimerSpec {
                function: f.name.clone(),
                trigger: t.name.clone(),
                schedule,
                use_monitor: t.use_monitor,
                run_on_startup: t.run_on_startup,
                max_retry_count: t.max_retry_count,
                status_path: state_dir.join("timers").join(&f.name).join("status"),
            });
        }

        // Queue triggers: like the real host, a trigger whose queue name or connection cannot be
        // resolved is reported and left idle; the other functions run.
        let mut listeners = Vec::new();
        for f in &app.functions {
            let Trigger::Queue(q) = &f.trigger else {
                continue;
            };
            if disabled.contains(&f.name) {
                continue;
            }
            match queue_listener(f, q, &lookup, &app.host.queues) {
                Ok(l) => listeners.push(l),
                Err(problem) => log.host(
                    Level::Error,
                    &format!("Function '{}' will not run: {problem}", f.name),
                ),
            }
        }

        // Keys: set by settings, else kept in the state folder from an earlier start, else new.
        keys::prepare_state_dir(&state_dir, config.state_dir.is_none())?;
        let shared_fn_key = key_setting(FUNCTION_KEY_SETTING);
        let mut explicit = keys::Explicit {
            master: key_setting(MASTER_KEY_SETTING),
            host: key_setting(HOST_KEY_SETTING),
            functions: BTreeMap::new(),
        };
        for f in &app.functions {
            let want = format!("{FUNCTION_KEY_SETTING}_{}", f.name);
            let own = settings
                .iter()
                .find(|(k, v)| k.eq_ignore_ascii_case(&want) && !v.is_empty())
                .map(|(k, v)| (k.clone(), v.clone()));
            if let Some(set) = own.or_else(|| shared_fn_key.clone()) {
                explicit.functions.insert(f.name.to_ascii_lowercase(), set);
            }
        }
        let names: Vec<String> = app.functions.iter().map(|f| f.name.clone()).collect();
        let resolved = keys::resolve(&state_dir, &names, explicit, &random_key)?;
        if resolved.tightened {
            log.host(
                Level::Warning,
                &format!(
                    "{} was readable by others; its mode is now 0600",
                    resolved.file.display()
                ),
            );
        }
        let keys = Keys {
            master: resolved.master.value,
            host: resolved.host.value,
            functions: resolved
                .functions
                .into_iter()
                .map(|(k, v)| (k, v.value))
                .collect(),
            host_origin: resolved.host.origin,
            file: resolved.file,
        };

        // The handler's environment: ours, then the settings (keys withheld).
        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        for (k, v) in &settings {
            if !is_key_setting(k) {
                env.insert(k.clone(), v.clone());
            }
        }
        let lookup_env = |name: &str| env.get(name).cloned();
        let arguments: Vec<String> = app
            .host
            .arguments
            .iter()
            .map(|a| substitute(a, &lookup_env))
            .filter(|a| !a.is_empty())
            .collect();
        let working_directory = if app.host.working_directory.trim().is_empty() {
            app.root.clone()
        } else {
            app.root.join(app.host.working_directory.trim())
        };
        let instances = config.instances.max(1);
        let spec = LaunchSpec {
            instance: None,
            program: worker::resolve_program(&app.root, &app.host.executable),
            arguments,
            working_directory,
            env,
            app_root: app.root.clone(),
        };

        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|e| HostError::Bind {
                port: config.port,
                detail: e.to_string(),
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| HostError::Bind {
                port: config.port,
                detail: e.to_string(),
            })?
            .port();
        let base_url = format!("http://127.0.0.1:{port}");

        let fatal = Arc::new(Notify::new());
        let workers: Vec<Worker> = (0..instances)
            .map(|i| {
                let spec = LaunchSpec {
                    instance: (instances > 1).then_some(i),
                    ..spec.clone()
                };
                Worker::spawn(spec, log.clone(), fatal.clone())
            })
            .collect();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| HostError::Bind {
                port,
                detail: format!("HTTP client: {e}"),
            })?;
        let function_timeout = app
            .host
            .function_timeout
            .unwrap_or(DEFAULT_FUNCTION_TIMEOUT);

        // Timers call back into the host; the Arc cycle is cut by a Weak.
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let mut timers = BTreeMap::new();
            for spec in timer_specs {
                let weak = weak.clone();
                let function = spec.function.clone();
                let invoke: timer::Invoker =
                    Arc::new(move |body: payload::Ordered, reason: String| {
                        let weak = weak.clone();
                        let function = function.clone();
                        Box::pin(async move {
                            match weak.upgrade() {
                                Some(inner) => {
                                    http::invoke_triggered(&inner, &function, body, &reason).await
                                }
                                None => false,
                            }
                        })
                    });
                timers.insert(
                    spec.function.to_ascii_lowercase(),
                    Arc::new(Timer::new(spec, config.clock.clone(), invoke)),
                );
            }
            Inner {
                app,
                keys,
                auth: config.auth,
                disabled,
                workers,
                next_worker: std::sync::atomic::AtomicUsize::new(0),
                log: log.clone(),
                client,
                forwarder: http::forwarder(),
                function_timeout,
                timers,
                schedules,
                fatal: fatal.clone(),
            }
        });

        let (stop_tx, stop_rx) = watch::channel(false);
        let (stopped_tx, stopped_rx) = watch::channel(false);

        // Too many handler errors (or no readiness within 120 s): stop the whole host.
        {
            let stop_tx = stop_tx.clone();
            let fatal = fatal.clone();
            let mut stop_rx = stop_rx.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = fatal.notified() => { stop_tx.send_replace(true); }
                    _ = stop_rx.changed() => {}
                }
            });
        }
        for t in inner.timers.values() {
            tokio::spawn(t.clone().run(stop_rx.clone()));
        }
        for l in listeners {
            tokio::spawn(l.run(Arc::downgrade(&inner), stop_rx.clone()));
        }

        let router = http::router(inner.clone());
        let server = {
            let mut stop_rx = stop_rx.clone();
            let inner = inner.clone();
            tokio::spawn(async move {
                let graceful = async move {
                    while !*stop_rx.borrow_and_update() {
                        if stop_rx.changed().await.is_err() {
                            break;
                        }
                    }
                };
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(graceful)
                    .await;
                for worker in &inner.workers {
                    worker.stop();
                }
                // Let the supervisors kill their children before we report stopped.
                for worker in &inner.workers {
                    let _ = worker.wait_stopped(Duration::from_secs(10)).await;
                }
                inner.log.host(Level::Information, "Host stopped");
                stopped_tx.send_replace(true);
            })
        };

        let handle = HostHandle {
            inner,
            base_url,
            stop: stop_tx,
            stopped: stopped_rx,
            server,
        };
        handle.announce();
        Ok(handle)
    }
}

impl HostHandle {
    /// `http://127.0.0.1:{port}`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn master_key(&self) -> &str {
        &self.inner.keys.master
    }

    /// The host key: every function (every `function`-level route) accepts it, so it is the
    /// one key the agent needs.
    pub fn host_key(&self) -> &str {
        &self.inner.keys.host
    }

    /// Where the host key came from: a setting, the keys file, or generated at this start.
    pub fn host_key_origin(&self) -> &keys::KeyOrigin {
        &self.inner.keys.host_origin
    }

    /// `<state dir>/keys.json`, where generated keys are kept across restarts.
    pub fn keys_file(&self) -> &Path {
        &self.inner.keys.file
    }

    /// The default key of a function (case-insensitive name).
    pub fn function_key(&self, name: &str) -> Option<&str> {
        self.inner
            .keys
            .functions
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Everything logged so far (host lines and the handler's output).
    pub fn logs(&self) -> Vec<log::LogLine> {
        self.inner.log.lines()
    }

    /// The first instance's handler (the only one unless `instances` was raised).
    pub fn worker_state(&self) -> WorkerState {
        self.inner.workers[0].state()
    }

    /// A timer's current schedule status (None when monitoring is off or unknown function).
    pub fn timer_status(&self, function: &str) -> Option<payload::ScheduleStatus> {
        self.inner
            .timers
            .get(&function.to_ascii_lowercase())
            .and_then(|t| t.status())
    }

    /// True once the host stopped (after `shutdown`, or by itself).
    pub fn is_stopped(&self) -> bool {
        *self.stopped.borrow()
    }

    /// Waits until the host stops by itself (too many handler errors) or is shut down.
    pub async fn stopped(&self) {
        let mut rx = self.stopped.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops serving, stops timers, kills the handler.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.server.await;
    }

    fn announce(&self) {
        let log = &self.inner.log;
        let app = &self.inner.app;
        log.host(
            Level::Information,
            &format!(
                "Host listening on {} (app {})",
                self.base_url,
                app.root.display()
            ),
        );
        log.host(Level::Information, "Functions:");
        for f in &app.functions {
            let disabled = if self.inner.is_disabled(&f.name) {
                " (disabled)"
            } else {
                ""
            };
            match &f.trigger {
                Trigger::Http(h) => {
                    let prefix = if app.host.route_prefix.is_empty() {
                        String::new()
                    } else {
                        format!("/{}", app.host.route_prefix)
                    };
                    let methods = h
                        .methods
                        .as_ref()
                        .map(|m| m.join(","))
                        .unwrap_or_else(|| "*".into());
                    let mode = if app.host.forwarding && f.http_only {
                        "forwarding"
                    } else {
                        "JSON"
                    };
                    log.host(
                        Level::Information,
                        &format!(
                            "  {}: [{methods}] {}{prefix}/{} ({mode} mode, key {}){disabled}",
                            f.name,
                            self.base_url,
                            h.route.template,
                            self.function_key(&f.name).unwrap_or("")
                        ),
                    );
                }
                Trigger::Timer(t) => {
                    let resolved = match self.inner.schedules.get(&f.name) {
                        Some(expr) if *expr != t.schedule => format!(" = {expr}"),
                        _ => String::new(),
                    };
                    log.host(
                        Level::Information,
                        &format!(
                            "  {}: timerTrigger ({}{resolved}){disabled}",
                            f.name, t.schedule
                        ),
                    );
                }
                Trigger::Queue(q) => {
                    log.host(
                        Level::Information,
                        &format!(
                            "  {}: queueTrigger ({}, connection {}, polled at least every {:?}){disabled}",
                            f.name, q.queue_name, q.connection, app.host.queues.max_polling_interval
                        ),
                    );
                }
            }
        }
        let keys = &self.inner.keys;
        log.host(
            Level::Information,
            &format!(
                "Master key: {} (admin level: /admin/functions/{{name}})",
                keys.master
            ),
        );
        // The one line a newcomer needs: which key the agent (and curl) should use.
        let kept = format!("kept across restarts; {HOST_KEY_SETTING} overrides it");
        let origin = match &keys.host_origin {
            keys::KeyOrigin::Setting(name) => format!("set by {name}"),
            keys::KeyOrigin::Stored => format!("stored in {} ({kept})", keys.file.display()),
            keys::KeyOrigin::Generated => {
                format!("new, stored in {} ({kept})", keys.file.display())
            }
        };
        log.host(
            Level::Information,
            &format!(
                "Host key: {} <- use this one for the agent (function_key) and for curl \
                 (x-functions-key header): every function accepts it; {origin}",
                keys.host
            ),
        );
        if !self.inner.auth {
            log.host(Level::Warning, "Key checks are off (--no-auth)");
        }
    }
}
