//! A real NUT stack for tests, run by this crate: `dummy-ups` plays a scenario from
//! `scripts/nut/`, `upsd` serves it on 127.0.0.1, `upsmon` watches it and calls a NOTIFYCMD
//! that records each call (then runs the test's own command, e.g. `burst-agent notify`).
//!
//! Everything lives in one directory ([`files::Layout`]): the configuration (`etc/`, given to
//! the daemons as `NUT_CONFPATH`), the driver socket (`state/`, `NUT_STATEPATH`), PID files
//! (`run/`, `NUT_ALTPIDPATH`), logs (`log/`); nothing under `/etc/nut` is read or changed.
//! The daemons run in the foreground as the current user, each started by a supervisor
//! thread that knows its PID and stops it by PID ([`daemons`]): on request, when the stack's
//! lifetime is over, when its guard is dropped, and (through the parent-death signal) when the
//! test process dies.
//!
//! upsmon 2.8.0 always writes `/run/nut/upsmon.pid` and will not start while that file names
//! a live process; so, as root, each upsmon runs in a private mount namespace with the
//! stack's `run/` bound over `/run/nut`: stacks run side by side, next to a real NUT install.
//!
//! Scenario time 0 is "upsmon watches": the stack comes up on the scenario's initial state
//! (the lines before its first `TIMER`); once upsmon has read a real status, the whole
//! scenario replaces the file dummy-ups plays.

pub mod daemons;
pub mod files;
pub mod upsd;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use daemons::Daemon;
use daemons::{Binaries, Supervisor};
pub use files::NotifyCall;
use files::{Layout, NUT_USER, Settings, UPS};

use crate::{free_port, repo_root};

/// Why a stack could not start or do what was asked (with the daemons' last log lines when
/// they are the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NutError(String);

impl NutError {
    pub fn new(message: String) -> NutError {
        NutError(message)
    }
}

impl std::fmt::Display for NutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NutError {}

/// Bound on the driver creating its socket.
const DRIVER_READY: Duration = Duration::from_secs(10);
/// Bound on upsd serving the driver's data, and on upsmon reading it.
const UPSD_READY: Duration = Duration::from_secs(15);
const UPSMON_READY: Duration = Duration::from_secs(15);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(100);

/// Why a real NUT stack cannot run here, if it cannot.
pub fn unavailable_reason() -> Option<String> {
    if let Err(e) = Binaries::find() {
        return Some(format!("the NUT daemons are missing: {e}"));
    }
    for tool in ["setpriv", "kill", "id"] {
        if daemons::on_path(tool).is_none() {
            return Some(format!("{tool} is not on PATH"));
        }
    }
    if daemons::euid() != Some(0) {
        return Some(
            "it must run as root (each upsmon gets a private /run/nut through a mount namespace)"
                .to_string(),
        );
    }
    if daemons::on_path("unshare").is_none() {
        return Some("unshare is not on PATH".to_string());
    }
    None
}

/// True if a real NUT stack can run here. Otherwise: with `CI` set, fails the test with a
/// clear message; without it, prints a notice and returns false (the caller returns early).
pub fn nut_available(test: &str) -> bool {
    match unavailable_reason() {
        None => true,
        Some(why) => {
            let msg = format!(
                "{test} needs a real NUT stack, but {why}. Install NUT with \
                 `scripts/onprem/install-test-deps.sh` (apt-get install nut-server nut-client) \
                 and run as root."
            );
            if std::env::var_os("CI").is_some() {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            false
        }
    }
}

/// A scenario from `scripts/nut/`.
pub fn scenario(name: &str) -> PathBuf {
    repo_root().join("scripts/nut").join(name)
}

/// Does a `ups.status` string carry `token`?
pub fn has_token(status: &str, token: &str) -> bool {
    status.split_whitespace().any(|t| t == token)
}

/// The calls' notify types, sorted (for "same multiset" comparisons).
pub fn sorted_types(calls: &[NotifyCall]) -> Vec<String> {
    let mut v: Vec<String> = calls.iter().map(|c| c.notifytype.clone()).collect();
    v.sort();
    v
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// How a stack is set up; [`NutOptions::lasting`] gives the defaults.
#[derive(Clone, Debug)]
pub struct NutOptions {
    max_seconds: u32,
    notify_cmd: Option<String>,
    maxage_s: u32,
    nocommwarn_s: u32,
    pollfreq_s: u32,
    avoid_ports: Vec<u16>,
}

impl NutOptions {
    /// A stack stopped after `max_seconds` whatever happens, polled every second, whose
    /// upsd calls data stale after 5 s and whose upsmon says NOCOMM after 10 s without
    /// contact; its NOTIFYCMD only records.
    pub fn lasting(max_seconds: u32) -> NutOptions {
        NutOptions {
            max_seconds,
            notify_cmd: None,
            maxage_s: 5,
            nocommwarn_s: 10,
            pollfreq_s: 1,
            avoid_ports: Vec::new(),
        }
    }

    /// After recording each call, NOTIFYCMD runs this shell command line with upsmon's
    /// message as one more argument and upsmon's environment (`NOTIFYTYPE`, `UPSNAME`); its
    /// output goes to `log/notify-cmd.log`.
    pub fn notify_cmd(mut self, command: &str) -> NutOptions {
        self.notify_cmd = Some(command.to_string());
        self
    }

    /// upsd's MAXAGE: seconds without driver data before it says DATA-STALE.
    pub fn maxage_s(mut self, seconds: u32) -> NutOptions {
        self.maxage_s = seconds;
        self
    }

    /// upsmon's NOCOMMWARNTIME: seconds without contact before it reports NOCOMM.
    pub fn nocommwarn_s(mut self, seconds: u32) -> NutOptions {
        self.nocommwarn_s = seconds;
        self
    }

    /// upsmon's POLLFREQ and POLLFREQALERT (at least 1).
    pub fn pollfreq_s(mut self, seconds: u32) -> NutOptions {
        self.pollfreq_s = seconds.max(1);
        self
    }

    /// upsd's port is none of these (e.g. a function's port that must stay free while it is
    /// stopped).
    pub fn avoiding(mut self, ports: &[u16]) -> NutOptions {
        self.avoid_ports.extend_from_slice(ports);
        self
    }
}

/// What another process needs to drive a running stack: its directory, port, account and
/// when its scenario started. Written to `stack.env` by [`NutSim`], read back with
/// [`StackInfo::load`].
#[derive(Clone, Debug)]
pub struct StackInfo {
    layout: Layout,
    pub port: u16,
    password: String,
    /// Epoch seconds when the scenario started.
    pub start: f64,
}

impl StackInfo {
    /// The settings of the stack running in `dir` (from its `stack.env`).
    pub fn load(dir: &Path) -> Result<StackInfo, NutError> {
        let layout = Layout::new(dir);
        let path = layout.stack_env();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            NutError::new(format!(
                "{}: {e} (is a stack running there?)",
                path.display()
            ))
        })?;
        let kv = files::parse_stack_env(&text);
        let get = |k: &str| {
            kv.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| NutError::new(format!("{}: no {k}", path.display())))
        };
        let bad = |k: &str| NutError::new(format!("{}: {k} is not a number", path.display()));
        Ok(StackInfo {
            port: get("PORT")?.parse().map_err(|_| bad("PORT"))?,
            password: get("NUT_PASSWORD")?,
            start: get("SCENARIO_START")?
                .parse()
                .map_err(|_| bad("SCENARIO_START"))?,
            layout,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// `dummy@127.0.0.1:<port>`, as upsmon passes it in UPSNAME.
    pub fn upsname(&self) -> String {
        format!("{UPS}@127.0.0.1:{}", self.port)
    }

    /// upsmon's configuration file.
    pub fn upsmon_conf(&self) -> PathBuf {
        self.layout.upsmon_conf()
    }

    /// Every NOTIFYCMD call so far, oldest first.
    pub fn notifies(&self) -> Vec<NotifyCall> {
        let text = std::fs::read_to_string(self.layout.notify_records()).unwrap_or_default();
        files::parse_notify_records(&text, self.start)
    }

    /// Sets a variable of the UPS through upsd (as upsmon's account); dummy-ups applies it
    /// on its next poll and keeps it while the scenario holds (a long `TIMER`).
    pub async fn set_var(&self, var: &str, value: &str) -> Result<(), NutError> {
        let mut s = upsd::Session::connect(self.port).await?;
        s.set_var((NUT_USER, &self.password), UPS, var, value)
            .await?;
        s.logout().await;
        Ok(())
    }

    /// A variable of the UPS as upsd serves it now.
    pub async fn get_var(&self, var: &str) -> Result<String, NutError> {
        let mut s = upsd::Session::connect(self.port).await?;
        let v = s.get_var(UPS, var).await?;
        s.logout().await;
        Ok(v)
    }

    /// Waits until upsmon made `n` NOTIFYCMD calls of `notifytype`; false after `timeout`.
    pub async fn wait_notify(&self, notifytype: &str, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let seen = self
                .notifies()
                .iter()
                .filter(|c| c.notifytype == notifytype)
                .count();
            if seen >= n {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A log file under `log/` (for messages): `driver.log`, `upsd.log`, `upsmon.log`,
    /// `notify-cmd.log`, `shutdowncmd.log`, `lifetime.log`.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.layout.log(name)).unwrap_or_default()
    }
}

/// A running NUT stack (dummy-ups → upsd → upsmon). Every daemon is stopped by PID when it is
/// dropped, and by itself once its lifetime is over.
#[derive(Debug)]
pub struct NutSim {
    pub dir: PathBuf,
    pub port: u16,
    info: StackInfo,
    settings: Settings,
    binaries: Binaries,
    /// upsmon gets its own /run/nut.
    isolate: bool,
    supervisor: Supervisor,
}

/// Writes `text` to `path` with `mode`.
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), NutError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| NutError::new(format!("write {}: {e}", path.display())))
}

/// 12 random bytes as hex.
fn random_password() -> Result<String, NutError> {
    use std::io::Read;
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| NutError::new(format!("/dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates `dir` and removes what an earlier stack there left.
fn prepare_dir(layout: &Layout) -> Result<(), NutError> {
    let io = |what: &Path, e: std::io::Error| NutError::new(format!("{}: {e}", what.display()));
    std::fs::create_dir_all(&layout.dir).map_err(|e| io(&layout.dir, e))?;
    for d in [
        layout.etc(),
        layout.state(),
        layout.run(),
        layout.log_dir(),
        layout.bin(),
    ] {
        if d.exists() {
            std::fs::remove_dir_all(&d).map_err(|e| io(&d, e))?;
        }
        std::fs::create_dir(&d).map_err(|e| io(&d, e))?;
    }
    for f in [
        layout.sequence(),
        layout.scenario(),
        layout.notify_records(),
        layout.stack_env(),
    ] {
        if f.exists() {
            std::fs::remove_file(&f).map_err(|e| io(&f, e))?;
        }
    }
    Ok(())
}

impl NutSim {
    /// Starts a stack in `dir` (created if needed) playing `scenario`; fails the test, with
    /// the daemons' logs, if it does not come up.
    pub async fn start(dir: &Path, scenario: &Path, options: NutOptions) -> NutSim {
        match NutSim::try_start(dir, scenario, options).await {
            Ok(sim) => sim,
            Err(e) => panic!("the NUT stack in {} did not start: {e}", dir.display()),
        }
    }

    /// [`NutSim::start`] that returns what went wrong instead of failing the test. Whatever
    /// was started is stopped again on an error.
    pub async fn try_start(
        dir: &Path,
        scenario: &Path,
        options: NutOptions,
    ) -> Result<NutSim, NutError> {
        if let Some(why) = unavailable_reason() {
            return Err(NutError::new(format!("no NUT stack can run here: {why}")));
        }
        let binaries = Binaries::find()?;
        let scenario_text = std::fs::read_to_string(scenario)
            .map_err(|e| NutError::new(format!("scenario {}: {e}", scenario.display())))?;
        let dir = std::path::absolute(dir)
            .map_err(|e| NutError::new(format!("{}: {e}", dir.display())))?;
        let layout = Layout::new(&dir);
        // Without a /run/nut upsmon's PID file goes nowhere, and stacks cannot collide.
        let isolate = Path::new("/run/nut").is_dir();
        let mut port = free_port();
        while options.avoid_ports.contains(&port) {
            port = free_port();
        }
        let settings = Settings {
            port,
            password: random_password()?,
            run_as: daemons::current_user()?,
            maxage_s: options.maxage_s,
            nocommwarn_s: options.nocommwarn_s,
            pollfreq_s: options.pollfreq_s,
        };

        prepare_dir(&layout)?;
        write_file(
            &layout.etc().join("ups.conf"),
            &files::ups_conf(&layout),
            0o640,
        )?;
        write_file(
            &layout.etc().join("upsd.conf"),
            &files::upsd_conf(&layout, &settings),
            0o640,
        )?;
        write_file(
            &layout.etc().join("upsd.users"),
            &files::upsd_users(&settings),
            0o640,
        )?;
        write_file(
            &layout.upsmon_conf(),
            &files::upsmon_conf(&layout, &settings),
            0o640,
        )?;
        write_file(
            &layout.notify_script(),
            &files::notify_script(&layout, options.notify_cmd.as_deref()),
            0o755,
        )?;
        write_file(
            &layout.shutdown_script(),
            &files::shutdown_script(&layout),
            0o755,
        )?;
        write_file(&layout.scenario(), &scenario_text, 0o644)?;
        write_file(
            &layout.sequence(),
            &files::initial_state(&scenario_text),
            0o644,
        )?;
        write_file(&layout.notify_records(), "", 0o644)?;

        let supervisor = Supervisor::start(
            Duration::from_secs(u64::from(options.max_seconds)),
            layout.log("lifetime.log"),
        )?;
        // From here on the guard exists: an error drops it, which stops what was started.
        let mut sim = NutSim {
            dir: dir.clone(),
            port,
            info: StackInfo {
                layout,
                port,
                password: settings.password.clone(),
                start: now_epoch(),
            },
            settings,
            binaries,
            isolate,
            supervisor,
        };
        sim.launch(Daemon::Driver).await?;
        sim.launch(Daemon::Upsd).await?;
        sim.launch(Daemon::Upsmon).await?;
        sim.wait_upsmon_read_a_status().await?;

        // Scenario time 0: the whole scenario replaces the initial state (a rename, so the
        // driver never reads half a file).
        let next = sim.info.layout.dir.join("ups.seq.next");
        write_file(&next, &scenario_text, 0o644)?;
        std::fs::rename(&next, sim.info.layout.sequence())
            .map_err(|e| NutError::new(format!("rename {}: {e}", next.display())))?;
        sim.info.start = now_epoch();
        write_file(
            &sim.info.layout.stack_env(),
            &files::stack_env(&sim.info.layout, &sim.settings, sim.info.start),
            0o600,
        )?;
        Ok(sim)
    }

    /// The environment every daemon gets (and so upsmon's NOTIFYCMD).
    fn environment(&self) -> Vec<(&'static str, OsString)> {
        let l = &self.info.layout;
        let mut env = vec![
            ("NUT_CONFPATH", l.etc().into_os_string()),
            ("NUT_STATEPATH", l.state().into_os_string()),
            ("NUT_ALTPIDPATH", l.run().into_os_string()),
            ("LANG", OsString::from("C.UTF-8")),
        ];
        for k in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(k) {
                env.push((k, v));
            }
        }
        env
    }

    /// Starts one daemon and waits until it does its job: the driver's socket is there, upsd
    /// serves real data, upsmon is logged in to upsd.
    async fn launch(&self, daemon: Daemon) -> Result<u32, NutError> {
        let l = &self.info.layout;
        let program = self.binaries.path(daemon).to_path_buf();
        let user = self.settings.run_as.as_str();
        let env = self.environment();
        let log = l.log(daemon.log_name());
        let command = match daemon {
            Daemon::Driver => {
                // A driver that was killed leaves its socket behind.
                let _ = std::fs::remove_file(l.driver_socket());
                daemons::daemon_command(
                    &program,
                    &["-a", UPS, "-F", "-u", user].map(std::ffi::OsStr::new),
                    &env,
                    &log,
                )?
            }
            Daemon::Upsd => daemons::daemon_command(
                &program,
                &["-F", "-u", user].map(std::ffi::OsStr::new),
                &env,
                &log,
            )?,
            // -p: one process (no privileged parent), so the PID is upsmon's own; -D -D: its
            // polls in the log.
            Daemon::Upsmon if self.isolate => {
                let unshare = daemons::on_path("unshare")
                    .ok_or_else(|| NutError::new("unshare is not on PATH".to_string()))?;
                let run = l.run();
                let mut args: Vec<&std::ffi::OsStr> =
                    ["--mount", "--propagation", "private", "--", "sh", "-ec"]
                        .map(std::ffi::OsStr::new)
                        .to_vec();
                args.extend([
                    std::ffi::OsStr::new(r#"mount --bind "$1" /run/nut; shift; exec "$@""#),
                    std::ffi::OsStr::new("upsmon-in-a-private-run-nut"),
                    run.as_os_str(),
                    program.as_os_str(),
                ]);
                args.extend(["-p", "-F", "-D", "-D", "-u", user].map(std::ffi::OsStr::new));
                daemons::daemon_command(&unshare, &args, &env, &log)?
            }
            Daemon::Upsmon => daemons::daemon_command(
                &program,
                &["-p", "-F", "-D", "-D", "-u", user].map(std::ffi::OsStr::new),
                &env,
                &log,
            )?,
        };
        let pid = self.supervisor.spawn(daemon, command).await?;
        match daemon {
            Daemon::Driver => {
                let socket = l.driver_socket();
                self.wait_for(daemon, "its socket", DRIVER_READY, || {
                    let ready = socket.exists();
                    async move { ready }
                })
                .await?;
            }
            Daemon::Upsd => {
                let port = self.port;
                self.wait_for(daemon, "serving the driver's data", UPSD_READY, || {
                    upsd_serves_data(port)
                })
                .await?;
            }
            Daemon::Upsmon => {
                let port = self.port;
                self.wait_for(daemon, "logged in to upsd", UPSMON_READY, || {
                    upsmon_logged_in(port)
                })
                .await?;
            }
        }
        Ok(pid)
    }

    /// After login upsmon polls at once; its debug log shows the status it parsed.
    async fn wait_upsmon_read_a_status(&self) -> Result<(), NutError> {
        let log = self.info.layout.log(Daemon::Upsmon.log_name());
        self.wait_for(
            Daemon::Upsmon,
            "reading a real status",
            UPSMON_READY,
            || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let read = text.lines().any(|l| {
                    l.split_once("parse_status: [")
                        .and_then(|(_, rest)| rest.split_once(']'))
                        .is_some_and(|(status, _)| !status.is_empty() && status != "WAIT")
                });
                async move { read }
            },
        )
        .await
    }

    /// Polls `ready` until it holds; an error (with the stack's logs) if `daemon` ends or
    /// `limit` passes first.
    async fn wait_for<F, Fut>(
        &self,
        daemon: Daemon,
        what: &str,
        limit: Duration,
        mut ready: F,
    ) -> Result<(), NutError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let end = Instant::now() + limit;
        loop {
            if ready().await {
                return Ok(());
            }
            if let Some(status) = self.supervisor.exited(daemon) {
                return Err(self.failure(&format!("{} ended ({status})", daemon.program())));
            }
            if Instant::now() >= end {
                return Err(
                    self.failure(&format!("{} not {what} within {limit:?}", daemon.program()))
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `what`, with the last lines of each daemon's log.
    fn failure(&self, what: &str) -> NutError {
        let mut msg = what.to_string();
        for d in Daemon::ALL {
            let text = self.info.log(d.log_name());
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(8)..];
            msg.push_str(&format!(
                "\n--- last lines of {}:\n{}",
                self.info.layout.log(d.log_name()).display(),
                tail.join("\n")
            ));
        }
        NutError::new(msg)
    }

    /// What another process needs to drive this stack (also in `<dir>/stack.env`).
    pub fn info(&self) -> &StackInfo {
        &self.info
    }

    /// `dummy@127.0.0.1:<port>`, as upsmon passes it in UPSNAME.
    pub fn upsname(&self) -> String {
        self.info.upsname()
    }

    /// Every NOTIFYCMD call so far, oldest first.
    pub async fn notifies(&self) -> Vec<NotifyCall> {
        self.info.notifies()
    }

    /// A log file under `log/` (for assertion messages): `driver.log`, `upsd.log`,
    /// `upsmon.log`, `notify-cmd.log` (the NOTIFYCMD command's output), `shutdowncmd.log`.
    pub fn log(&self, name: &str) -> String {
        self.info.log(name)
    }

    /// The PID of `daemon` while it runs (a process this stack started).
    pub fn pid(&self, daemon: Daemon) -> Option<u32> {
        self.supervisor.pid(daemon)
    }

    /// True once the stack's lifetime is over: every daemon was stopped.
    pub fn expired(&self) -> bool {
        self.supervisor.expired()
    }

    /// Sets a UPS variable through upsd (e.g. `ups.status` to `OB DISCHRG`: the power
    /// fails); fails the test if upsd refuses.
    pub async fn set_var(&self, var: &str, value: &str) {
        if let Err(e) = self.info.set_var(var, value).await {
            panic!("SET VAR {var} {value:?}: {e}");
        }
    }

    /// A UPS variable as upsd serves it now; fails the test on an error reply.
    pub async fn get_var(&self, var: &str) -> String {
        match self.info.get_var(var).await {
            Ok(v) => v,
            Err(e) => panic!("GET VAR {var}: {e}"),
        }
    }

    /// Stops `daemon` by its PID (SIGTERM, SIGKILL after 5 s) and waits until it is gone.
    pub async fn stop_daemon(&self, daemon: Daemon) {
        self.supervisor.stop(daemon).await;
    }

    /// Starts `daemon` again with the same configuration and waits until it does its job;
    /// fails the test, with the logs, if it does not.
    pub async fn restart_daemon(&self, daemon: Daemon) -> u32 {
        match self.launch(daemon).await {
            Ok(pid) => pid,
            Err(e) => panic!("restarting {}: {e}", daemon.program()),
        }
    }

    /// Lost communication between upsmon and upsd: upsd is stopped for `gone`, then started
    /// again (upsmon reports COMMBAD, NOCOMM after NOCOMMWARNTIME, then COMMOK).
    pub async fn stop_upsd_for(&self, gone: Duration) {
        self.stop_daemon(Daemon::Upsd).await;
        tokio::time::sleep(gone).await;
        self.restart_daemon(Daemon::Upsd).await;
    }

    /// Freezes the driver (SIGSTOP to its PID): upsd's data goes stale after MAXAGE.
    pub fn freeze_driver(&self) {
        self.signal_driver("STOP");
    }

    /// Lets a frozen driver go on (SIGCONT).
    pub fn thaw_driver(&self) {
        self.signal_driver("CONT");
    }

    /// The UPS's data link lost for `frozen`: [`freeze_driver`](NutSim::freeze_driver), then
    /// [`thaw_driver`](NutSim::thaw_driver).
    pub async fn freeze_driver_for(&self, frozen: Duration) {
        self.freeze_driver();
        tokio::time::sleep(frozen).await;
        self.thaw_driver();
    }

    fn signal_driver(&self, sig: &str) {
        let Some(pid) = self.pid(Daemon::Driver) else {
            panic!("SIG{sig} to the driver: it is not running");
        };
        assert!(
            daemons::signal(&pid.to_string(), sig),
            "SIG{sig} to the driver (pid {pid}) failed"
        );
    }

    /// Waits until upsmon made `n` NOTIFYCMD calls of `notifytype`; fails the test with
    /// upsmon's log after `timeout`.
    pub async fn expect_notify(&self, notifytype: &str, n: usize, timeout: Duration) {
        let done =
            |calls: &[NotifyCall]| calls.iter().filter(|c| c.notifytype == notifytype).count() >= n;
        self.expect_calls(&format!("{n}x {notifytype}"), timeout, done)
            .await;
    }

    /// Waits until upsmon called NOTIFYCMD with `notifytype` later than `t_rel` s into the
    /// scenario (e.g. the call that ends it); fails the test with upsmon's log after `timeout`.
    pub async fn expect_notify_after(&self, notifytype: &str, t_rel: f64, timeout: Duration) {
        let done = |calls: &[NotifyCall]| {
            calls
                .iter()
                .any(|c| c.notifytype == notifytype && c.t_rel > t_rel)
        };
        self.expect_calls(&format!("{notifytype} after {t_rel} s"), timeout, done)
            .await;
    }

    async fn expect_calls(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[NotifyCall]) -> bool,
    ) {
        let end = Instant::now() + timeout;
        while !done(&self.info.notifies()) {
            assert!(
                Instant::now() < end,
                "no NOTIFYCMD call {what} within {timeout:?}; calls so far: {:?}\nupsmon.log:\n{}",
                self.info.notifies(),
                self.log("upsmon.log")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// upsd answers `GET VAR dummy ups.status` with a real status (not an error, not `WAIT`).
async fn upsd_serves_data(port: u16) -> bool {
    let Ok(mut s) = upsd::Session::connect(port).await else {
        return false;
    };
    let ok = s
        .get_var(UPS, "ups.status")
        .await
        .is_ok_and(|v| !v.is_empty() && v != "WAIT");
    s.logout().await;
    ok
}

/// upsd counts a login from upsmon (`GET NUMLOGINS dummy` > 0).
async fn upsmon_logged_in(port: u16) -> bool {
    let Ok(mut s) = upsd::Session::connect(port).await else {
        return false;
    };
    let reply = s
        .command(&format!("GET NUMLOGINS {UPS}"))
        .await
        .unwrap_or_default();
    s.logout().await;
    reply
        .strip_prefix(&format!("NUMLOGINS {UPS} "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .is_some_and(|n| n > 0)
}
