//! The NUT daemons as child processes: where the real binaries are, and one supervisor thread
//! per stack that starts them, knows their PIDs, stops them by PID (each in its own process
//! group, so a NOTIFYCMD still running goes with upsmon) and stops them all when the stack's
//! lifetime is over or its guard is dropped.
//!
//! Each daemon is started through `setpriv --pdeathsig KILL`: the kernel kills it when the
//! supervisor thread ends, so even a test process that dies without unwinding (a signal, an
//! abort) leaves no daemon behind.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::NutError;

/// Directories searched for the real (ELF) NUT programs. Debian keeps them in `/lib/nut`; its
/// `/sbin/upsd` and `/sbin/upsmon` are shell wrappers that refuse to run unless
/// `/etc/nut/nut.conf` says so.
const BIN_DIRS: &[&str] = &[
    "/lib/nut",
    "/usr/lib/nut",
    "/usr/libexec/nut",
    "/usr/sbin",
    "/sbin",
    "/usr/bin",
    "/bin",
    "/usr/local/ups/sbin",
    "/usr/local/ups/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
];

/// How long a daemon gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the supervisor looks at its children and the clock.
const TICK: Duration = Duration::from_millis(100);

/// One of the three daemons of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Daemon {
    /// `dummy-ups`, playing the scenario.
    Driver,
    /// `upsd`, serving the driver's data on 127.0.0.1.
    Upsd,
    /// `upsmon`, calling NOTIFYCMD.
    Upsmon,
}

impl Daemon {
    pub const ALL: [Daemon; 3] = [Daemon::Driver, Daemon::Upsd, Daemon::Upsmon];
    /// The order a stack goes down in: the watcher first, so that it reports nothing about
    /// the others going.
    pub const STOP_ORDER: [Daemon; 3] = [Daemon::Upsmon, Daemon::Upsd, Daemon::Driver];

    /// The program's name.
    pub fn program(self) -> &'static str {
        match self {
            Daemon::Driver => "dummy-ups",
            Daemon::Upsd => "upsd",
            Daemon::Upsmon => "upsmon",
        }
    }

    /// Its log under the stack's `log/`.
    pub fn log_name(self) -> &'static str {
        match self {
            Daemon::Driver => "driver.log",
            Daemon::Upsd => "upsd.log",
            Daemon::Upsmon => "upsmon.log",
        }
    }
}

/// The real NUT programs on this machine.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub driver: PathBuf,
    pub upsd: PathBuf,
    pub upsmon: PathBuf,
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The first real (ELF) `name` in [`BIN_DIRS`].
pub fn find_elf(name: &str) -> Option<PathBuf> {
    BIN_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| is_elf(p))
}

/// `name` on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

impl Binaries {
    pub fn find() -> Result<Binaries, NutError> {
        let get = |name: &str, package: &str| {
            find_elf(name).ok_or_else(|| {
                NutError::new(format!(
                    "{name} is not installed (apt-get install {package}; looked in {})",
                    BIN_DIRS.join(" ")
                ))
            })
        };
        Ok(Binaries {
            driver: get("dummy-ups", "nut-server")?,
            upsd: get("upsd", "nut-server")?,
            upsmon: get("upsmon", "nut-client")?,
        })
    }

    pub fn path(&self, d: Daemon) -> &Path {
        match d {
            Daemon::Driver => &self.driver,
            Daemon::Upsd => &self.upsd,
            Daemon::Upsmon => &self.upsmon,
        }
    }
}

/// The effective user id of this process, from `/proc/self/status`.
pub fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The name of the current user (the daemons run as it: `-u <name>`).
pub fn current_user() -> Result<String, NutError> {
    let out = Command::new("id")
        .arg("-un")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NutError::new(format!("id -un: {e}")))?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || name.is_empty() {
        return Err(NutError::new(format!(
            "id -un found no name for this user: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(name)
}

/// `kill -s SIGNAL -- TARGET` (a PID, or `-PGID` for a process group). False when no such
/// process was there.
pub fn signal(target: &str, sig: &str) -> bool {
    Command::new("kill")
        .args(["-s", sig, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A command that runs `program args...` with the parent-death signal set (see the module
/// documentation), in its own process group, with `env` as its whole environment and both
/// output streams appended to `log`.
pub fn daemon_command(
    program: &Path,
    args: &[&std::ffi::OsStr],
    env: &[(&str, std::ffi::OsString)],
    log: &Path,
) -> Result<Command, NutError> {
    use std::os::unix::process::CommandExt;
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| NutError::new(format!("open {}: {e}", log.display())))
    };
    let mut c = Command::new("setpriv");
    c.args(["--pdeathsig", "KILL", "--"])
        .arg(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .process_group(0);
    Ok(c)
}

enum Request {
    Spawn {
        daemon: Daemon,
        command: Box<Command>,
        reply: oneshot::Sender<Result<u32, NutError>>,
    },
    Stop {
        daemon: Daemon,
        reply: oneshot::Sender<()>,
    },
}

/// What the supervisor knows, readable from any thread.
#[derive(Debug, Default)]
struct Known {
    /// PIDs of the daemons running now.
    running: BTreeMap<Daemon, u32>,
    /// How each daemon that stopped by itself ended (not those stopped on request).
    exited: BTreeMap<Daemon, String>,
    /// The lifetime ran out: everything was stopped and nothing starts any more.
    expired: bool,
}

/// The thread that owns a stack's daemons. Dropping it stops them (upsmon, upsd, driver),
/// waiting for each.
#[derive(Debug)]
pub struct Supervisor {
    tx: Option<mpsc::Sender<Request>>,
    known: Arc<Mutex<Known>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Spawn { daemon, .. } => write!(f, "Spawn({daemon:?})"),
            Request::Stop { daemon, .. } => write!(f, "Stop({daemon:?})"),
        }
    }
}

fn lock(known: &Mutex<Known>) -> MutexGuard<'_, Known> {
    known.lock().unwrap_or_else(|p| p.into_inner())
}

impl Supervisor {
    /// Starts the thread; after `lifetime` it stops every daemon by itself and writes why to
    /// `note_file`.
    pub fn start(lifetime: Duration, note_file: PathBuf) -> Result<Supervisor, NutError> {
        let (tx, rx) = mpsc::channel();
        let known = Arc::new(Mutex::new(Known::default()));
        let k = Arc::clone(&known);
        let deadline = Instant::now() + lifetime;
        let thread = std::thread::Builder::new()
            .name("nut-supervisor".into())
            .spawn(move || supervise(&rx, &k, deadline, lifetime, &note_file))
            .map_err(|e| NutError::new(format!("start the supervisor thread: {e}")))?;
        Ok(Supervisor {
            tx: Some(tx),
            known,
            thread: Some(thread),
        })
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.tx.as_ref()?.send(make(reply)).ok()?;
        answer.await.ok()
    }

    /// Starts `daemon` with `command`; its PID.
    pub async fn spawn(&self, daemon: Daemon, command: Command) -> Result<u32, NutError> {
        let command = Box::new(command);
        self.ask(|reply| Request::Spawn {
            daemon,
            command,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(NutError::new("the supervisor thread is gone".to_string())))
    }

    /// Stops `daemon` (SIGTERM to its process group, SIGKILL after a grace period) and
    /// waits until it is gone.
    pub async fn stop(&self, daemon: Daemon) {
        self.ask(|reply| Request::Stop { daemon, reply }).await;
    }

    /// The PID of `daemon` while it runs.
    pub fn pid(&self, daemon: Daemon) -> Option<u32> {
        lock(&self.known).running.get(&daemon).copied()
    }

    /// How `daemon` ended, if it stopped by itself.
    pub fn exited(&self, daemon: Daemon) -> Option<String> {
        lock(&self.known).exited.get(&daemon).cloned()
    }

    /// True once the lifetime is over (every daemon was stopped).
    pub fn expired(&self) -> bool {
        lock(&self.known).expired
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // The thread stops everything once the channel is closed.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn supervise(
    rx: &mpsc::Receiver<Request>,
    known: &Mutex<Known>,
    deadline: Instant,
    lifetime: Duration,
    note_file: &Path,
) {
    let mut children: BTreeMap<Daemon, Child> = BTreeMap::new();
    loop {
        match rx.recv_timeout(TICK) {
            Ok(Request::Spawn {
                daemon,
                mut command,
                reply,
            }) => {
                let result = spawn_one(&mut children, known, lifetime, daemon, &mut command);
                let _ = reply.send(result);
            }
            Ok(Request::Stop { daemon, reply }) => {
                if let Some(child) = children.remove(&daemon) {
                    stop_child(child);
                    lock(known).running.remove(&daemon);
                }
                let _ = reply.send(());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Notice daemons that ended by themselves.
        children.retain(|daemon, child| match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                let mut k = lock(known);
                k.running.remove(daemon);
                k.exited.insert(*daemon, status.to_string());
                false
            }
            Err(_) => true,
        });
        if !lock(known).expired && Instant::now() >= deadline {
            lock(known).expired = true;
            let _ = std::fs::write(
                note_file,
                format!("lifetime of {lifetime:?} reached: every daemon stopped\n"),
            );
            stop_all(&mut children, known);
        }
    }
    stop_all(&mut children, known);
}

fn spawn_one(
    children: &mut BTreeMap<Daemon, Child>,
    known: &Mutex<Known>,
    lifetime: Duration,
    daemon: Daemon,
    command: &mut Command,
) -> Result<u32, NutError> {
    if lock(known).expired {
        return Err(NutError::new(format!(
            "the stack's lifetime ({lifetime:?}) is over: {} not started",
            daemon.program()
        )));
    }
    let Entry::Vacant(slot) = children.entry(daemon) else {
        return Err(NutError::new(format!(
            "{} is running already",
            daemon.program()
        )));
    };
    let child = command.spawn().map_err(|e| {
        NutError::new(format!(
            "start {} ({:?}): {e}",
            daemon.program(),
            command.get_program()
        ))
    })?;
    let pid = child.id();
    slot.insert(child);
    let mut k = lock(known);
    k.running.insert(daemon, pid);
    k.exited.remove(&daemon);
    Ok(pid)
}

fn stop_all(children: &mut BTreeMap<Daemon, Child>, known: &Mutex<Known>) {
    for d in Daemon::STOP_ORDER {
        if let Some(child) = children.remove(&d) {
            stop_child(child);
            lock(known).running.remove(&d);
        }
    }
}

/// SIGTERM to the child's process group (and SIGCONT, should it be frozen), SIGKILL to the
/// group after [`STOP_GRACE`]; reaps the child.
fn stop_child(mut child: Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let group = format!("-{}", child.id());
    signal(&group, "TERM");
    signal(&group, "CONT");
    let end = Instant::now() + STOP_GRACE;
    while Instant::now() < end {
        if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&group, "KILL");
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(log: &Path) -> Command {
        let sleep = on_path("sleep").expect("sleep on PATH");
        let path = std::env::var_os("PATH").unwrap_or_default();
        daemon_command(&sleep, &["30".as_ref()], &[("PATH", path)], log).expect("command")
    }

    fn alive(pid: u32) -> bool {
        // A zombie is not alive: read the state letter after the command name.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    }

    #[tokio::test]
    async fn spawned_processes_stop_by_pid_on_request_and_on_drop() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = tmp.path().join("x.log");
        let sup = Supervisor::start(Duration::from_secs(60), tmp.path().join("note"))
            .expect("supervisor");
        let a = sup
            .spawn(Daemon::Driver, sleeper(&log))
            .await
            .expect("spawn");
        let b = sup.spawn(Daemon::Upsd, sleeper(&log)).await.expect("spawn");
        assert_eq!(sup.pid(Daemon::Driver), Some(a));
        assert!(alive(a) && alive(b));
        let again = sup.spawn(Daemon::Driver, sleeper(&log)).await;
        assert!(
            again
                .expect_err("one at a time")
                .to_string()
                .contains("running already")
        );

        sup.stop(Daemon::Driver).await;
        assert!(!alive(a), "stopped on request");
        assert_eq!(sup.pid(Daemon::Driver), None);
        assert_eq!(
            sup.exited(Daemon::Driver),
            None,
            "stopped, not ended by itself"
        );
        drop(sup);
        assert!(!alive(b), "stopped on drop");
    }

    #[tokio::test]
    async fn the_lifetime_stops_everything_and_a_crash_is_noticed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = tmp.path().join("x.log");
        let note = tmp.path().join("note");
        let sup = Supervisor::start(Duration::from_millis(1500), note.clone()).expect("supervisor");
        let a = sup
            .spawn(Daemon::Upsmon, sleeper(&log))
            .await
            .expect("spawn");
        let falsy = on_path("false").expect("false on PATH");
        let f = daemon_command(&falsy, &[], &[], &log).expect("command");
        sup.spawn(Daemon::Driver, f).await.expect("spawn");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            sup.exited(Daemon::Driver).as_deref(),
            Some("exit status: 1")
        );
        assert!(alive(a));
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert!(sup.expired());
        assert!(!alive(a), "the lifetime stopped it");
        assert!(
            std::fs::read_to_string(&note)
                .expect("note")
                .contains("lifetime")
        );
        let late = sup.spawn(Daemon::Upsd, sleeper(&log)).await;
        assert!(late.expect_err("expired").to_string().contains("lifetime"));
    }

    #[test]
    fn debian_wrappers_are_not_daemons() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let script = tmp.path().join("upsd");
        std::fs::write(&script, "#!/bin/sh\nexit 1\n").expect("write");
        assert!(!is_elf(&script));
        assert!(is_elf(&on_path("sleep").expect("sleep on PATH")));
    }
}
