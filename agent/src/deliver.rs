//! The outbox, a UPS event's whole way from upsmon to the function: `burst-agent notify`
//! reads the UPS and builds the event, the event is spooled on disk, and the spool is
//! delivered in order (one signed attempt, retries with backoff and jitter inside a
//! deadline). One module, because the spool is only ever filled by `notify` and emptied by
//! delivery: the command, the files, their lock and their sending are read together. The
//! other commands (heartbeat, witness, test) use the same [`Sender`].
//!
//! # The spool
//!
//! One JSON file per event, named `<created µs>-<seq>.json` so a directory listing sorts in
//! creation order; the sequence number breaks ties and keeps order when two events share a
//! timestamp. It comes from a counter in `.seq`, taken under a lock on `.seq.lock`, never
//! lower than the highest number among the spooled names (so a lost or unreadable counter
//! cannot restart numbering below existing entries), and replaced atomically like an event.
//!
//! Writes are crash-safe: a dot-prefixed `.tmp` file is written, fsynced, renamed into place,
//! and the directory fsynced; a leftover `.tmp` from a crash is never read, and one older than
//! [`STALE_TEMP_AGE`] is removed by the next delivery run.
//!
//! Permanently refused events, and files that are not valid events, move to `rejected/` by a
//! rename (needs no new space, so it works on a full disk) with a `.reason` file beside them
//! when that can be written (best effort: on a full disk it cannot, and that is only logged).
//!
//! upsmon runs hooks concurrently, so delivery is serialised by an exclusive lock on
//! `.deliver.lock`: whoever holds it sends every spooled file in order; the others wait for
//! it (bounded) and then find their files already gone. Files are moved or removed only under
//! that lock.
//!
//! # What a reply means
//!
//! This is the only place that decides it:
//! - 2xx, or 409 / `"duplicate": true` → delivered (the function dedupes on the event `id`);
//! - 408, 429, 5xx, connect errors, timeouts → try again later (keep spooled);
//! - any other 4xx → permanent: the function will never accept this body (moved to
//!   `spool/rejected/`, logged, not retried);
//! - anything else (3xx: redirects are not followed) → try again later, and log it: it is
//!   almost certainly a wrong `base_url`.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::auth::Signer;
use crate::commands::{EXIT_CONFIG, EXIT_FAILED, EXIT_OK};
use crate::config::Config;
use crate::upsd::{self, Snapshot};
use burst_wire::UpsEvent;

// `burst-agent notify`: the event enters the outbox here.

/// Notify types that mean "upsmon lost contact with the UPS": the power state is unknown,
/// and must not be read as a power loss.
pub const COMMLOSS_TYPES: [&str; 2] = ["COMMBAD", "NOCOMM"];

/// What upsmon hands the NOTIFYCMD: the two variables it adds to the environment.
/// The message argument is deliberately not used (it went through a shell).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyEnv {
    pub notifytype: String,
    /// The MONITOR string (`ups@host:port`); empty for SHUTDOWN and NOPARENT.
    pub upsname: String,
}

impl NotifyEnv {
    /// Reads `NOTIFYTYPE` (required) and `UPSNAME` from an environment map.
    pub fn from_env(env: &std::collections::HashMap<String, String>) -> Result<NotifyEnv, String> {
        let notifytype = env
            .get("NOTIFYTYPE")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or(
                "NOTIFYTYPE is not set: `notify` is meant to be upsmon's NOTIFYCMD \
                 (to try the path by hand, use `burst-agent test`)",
            )?;
        Ok(NotifyEnv {
            notifytype,
            upsname: env
                .get("UPSNAME")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        })
    }
}

/// `burst-agent notify`: one upsmon event → spool → delivery (with everything spooled
/// before it). Returns within `notify_budget_ms` (+ a little), whatever happens: upsmon waits
/// for its NOTIFYCMD, so it must always get its process back. `at` and `started` are taken
/// when upsmon called (the event's time, and where the budget counts from).
pub async fn notify(config: &Config, env: &NotifyEnv, at: DateTime<Utc>, started: Instant) -> u8 {
    // Last-resort guard over the deadline the steps below keep: 2 s of slack for a step that
    // overruns it (a hung disk, a slow DNS answer).
    let limit = config.notify_budget() + std::time::Duration::from_secs(2);
    tokio::time::timeout(limit, spool_and_deliver(config, env, at, started))
        .await
        .unwrap_or_else(|_| {
            error!("notify overran its budget; the event stays spooled");
            EXIT_FAILED
        })
}

/// [`notify`]'s work: read the UPS, build the event, spool it, flush the spool (falling back
/// to sending it after the spool when it cannot be spooled).
async fn spool_and_deliver(
    config: &Config,
    env: &NotifyEnv,
    at: DateTime<Utc>,
    started: Instant,
) -> u8 {
    let deadline = started + config.notify_budget();
    let (label, ups) = upsd::resolve_ups(&env.upsname, config);
    let snapshot = if COMMLOSS_TYPES.contains(&env.notifytype.as_str()) {
        Snapshot::default() // upsmon already knows it cannot see the UPS: power unknown
    } else {
        let remaining = deadline.saturating_duration_since(Instant::now());
        upsd::read_ups(ups.as_ref(), config.upsd_timeout().min(remaining / 2)).await
    };
    let event = UpsEvent {
        id: Uuid::new_v4(),
        at: burst_wire::rfc3339(at),
        ups: label,
        kind: env.notifytype.clone(),
        battery: snapshot.battery(),
        status: snapshot.status,
    };
    let body = match serde_json::to_string(&event) {
        Ok(b) => b,
        Err(e) => {
            error!(%e, "cannot encode the event");
            return EXIT_FAILED;
        }
    };
    info!(id = %event.id, r#type = %event.kind, ups = %event.ups, status = %event.status, "event");

    let sender = Sender::from_config(config);
    if let Err(e) = &sender {
        error!(error = %e, "cannot send (configuration); the event is spooled only");
    }
    let created_us = at.timestamp_micros();
    // The spool with the event in it, or why not (and the spool, when it could be opened).
    let spooled = match Spool::open(&config.spool_dir) {
        Ok(spool) => match spool.push(burst_wire::ROUTE_UPS, event.id, created_us, body.clone()) {
            Ok(_) => Ok(spool),
            Err(e) => Err((Some(spool), e)),
        },
        Err(e) => Err((None, e)),
    };
    match (spooled, sender) {
        (Ok(spool), Ok(sender)) => match flush(&spool, &sender, deadline).await {
            Ok(report) => {
                info!(?report, "spool flushed");
                EXIT_OK
            }
            Err(e) => {
                error!(error = %e, dir = %config.spool_dir.display(), "spool error while delivering");
                EXIT_OK // the event itself is on disk
            }
        },
        (Ok(_), Err(_)) => EXIT_CONFIG,
        (Err((spool, e)), sender) => {
            let full = e.kind() == std::io::ErrorKind::StorageFull;
            error!(error = %e, disk_full = full, dir = %config.spool_dir.display(),
                "cannot spool the event; delivering the spool first, then the event directly");
            let Ok(sender) = sender else {
                error!(id = %event.id, "event lost: neither spooled nor sent");
                return EXIT_FAILED;
            };
            notify_unspooled(
                config,
                spool.as_ref(),
                &sender,
                event.id,
                body.as_bytes(),
                deadline,
            )
            .await
        }
    }
}

/// An event that could not be spooled (disk full, read-only, ...): the events already
/// spooled are older, so they go first, and the new one is sent only once none is left
/// waiting ahead of it (a later event would make the function take them as reordered and not
/// apply them). When the backlog cannot be delivered now, the new event is not sent: it is
/// lost, logged as an error, exit 1.
async fn notify_unspooled(
    config: &Config,
    spool: Option<&Spool>,
    sender: &Sender,
    id: Uuid,
    body: &[u8],
    deadline: Instant,
) -> u8 {
    let route = burst_wire::ROUTE_UPS;
    let Some(spool) = spool else {
        // Not even the spool directory could be had: nothing can be waiting in it.
        return send_direct(sender, id, body, deadline).await;
    };
    let after = Unspooled { route, body };
    match flush_then_send(spool, sender, deadline, Some(after)).await {
        Ok((report, Some(Outcome::Delivered { status, duplicate }))) => {
            info!(%id, status, duplicate, ?report,
                "delivered directly, after the spool (the event could not be spooled)");
            EXIT_OK
        }
        Ok((report, Some(other))) => {
            error!(%id, outcome = ?other, ?report,
                "event lost: could not be spooled, and not delivered after the spool");
            EXIT_FAILED
        }
        Ok((report, None)) => {
            error!(%id, pending = report.pending, busy = report.busy, ?report,
                "event lost: could not be spooled, and not sent because older spooled events \
                 could not be delivered first (sending it ahead of them would reorder them)");
            EXIT_FAILED
        }
        Err(e) => match spool.count() {
            // The spool cannot be delivered from, but nothing is waiting in it either.
            Ok(0) => {
                warn!(error = %e, dir = %config.spool_dir.display(), "spool unusable, but empty");
                send_direct(sender, id, body, deadline).await
            }
            Err(ref c) if c.kind() == std::io::ErrorKind::NotFound => {
                send_direct(sender, id, body, deadline).await
            }
            waiting => {
                error!(%id, error = %e, waiting = ?waiting.map_err(|c| c.to_string()),
                    dir = %config.spool_dir.display(),
                    "event lost: could not be spooled, and not sent because the spool (which may \
                     hold older events) cannot be delivered");
                EXIT_FAILED
            }
        },
    }
}

/// Sends an event that is not spooled, when nothing can be waiting ahead of it.
async fn send_direct(sender: &Sender, id: Uuid, body: &[u8], deadline: Instant) -> u8 {
    match sender
        .send_with_retry(burst_wire::ROUTE_UPS, body, deadline)
        .await
    {
        Outcome::Delivered { status, duplicate } => {
            info!(%id, status, duplicate, "delivered directly (nothing spooled ahead of it)");
            EXIT_OK
        }
        other => {
            error!(%id, outcome = ?other, "event lost: neither spooled nor delivered");
            EXIT_FAILED
        }
    }
}

// The spool: the files events wait in ([`notify`] pushes them; only the flush below takes
// them out).

/// A temp file older than this is left over from a crash (a write takes milliseconds).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// One spooled event: where it goes and the exact body to send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// `/api/ups` and so on.
    pub route: String,
    /// The event's id (also inside `body`): fixed at creation, kept across retries.
    pub id: Uuid,
    /// Creation time, Unix microseconds.
    pub created_us: i64,
    /// Tie-breaker from the spool's counter.
    pub seq: u64,
    /// The JSON body, byte for byte as it will be sent.
    pub body: String,
}

/// A spooled file and its parsed content.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: PathBuf,
    pub envelope: Envelope,
}

/// A file in the spool that can never be sent (unreadable, or not an envelope).
#[derive(Clone, Debug)]
pub struct BadEntry {
    /// Where it was found.
    pub path: PathBuf,
    /// Why it cannot be sent.
    pub why: String,
    /// Where it went: `Ok(path in rejected/)`, or why it could not be moved (it stays where
    /// it is, and is skipped).
    pub moved: Result<PathBuf, String>,
}

impl BadEntry {
    /// The file's name, for the log.
    pub fn name(&self) -> String {
        file_name(&self.path)
    }
}

/// What a listing found.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The events in delivery order.
    pub entries: Vec<Entry>,
    /// Files set aside (or that could not be set aside) because they can never be sent.
    pub bad: Vec<BadEntry>,
}

/// The spool directory.
#[derive(Clone, Debug)]
pub struct Spool {
    dir: PathBuf,
}

/// Held while delivering; released on drop.
#[derive(Debug)]
pub struct DeliveryLock {
    _file: File,
}

impl Spool {
    /// Opens (creating if needed) the spool at `dir`. Fails only when `dir` itself cannot be
    /// had: a missing `rejected/` (say on a full disk) is created when first needed.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let spool = Spool {
            dir: dir.to_path_buf(),
        };
        let _ = fs::create_dir_all(spool.rejected_dir());
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn rejected_dir(&self) -> PathBuf {
        self.dir.join("rejected")
    }

    /// Adds an event durably; returns its path once it is safely on disk.
    pub fn push(
        &self,
        route: &str,
        id: Uuid,
        created_us: i64,
        body: String,
    ) -> std::io::Result<PathBuf> {
        let seq = self.next_seq()?;
        let envelope = Envelope {
            route: route.to_string(),
            id,
            created_us,
            seq,
            body,
        };
        let name = format!("{:020}-{:012}.json", created_us.max(0), seq);
        let bytes = serde_json::to_vec(&envelope).map_err(std::io::Error::other)?;
        let path = self.dir.join(&name);
        write_atomically(&self.dir, &name, &bytes)?;
        Ok(path)
    }

    /// The spooled events in delivery order (see [`scan`](Spool::scan)).
    pub fn list(&self) -> std::io::Result<Vec<Entry>> {
        Ok(self.scan()?.entries)
    }

    /// The spooled events in delivery order: by creation time, then sequence number.
    /// Temporary files are skipped. A file that cannot be read or is not a valid envelope can
    /// never be sent: it is moved to `rejected/` and reported in [`Listing::bad`], and the
    /// listing goes on (also when it cannot be moved: then it stays, and is skipped).
    /// Only an unreadable directory is an error. Call it holding the delivery lock.
    pub fn scan(&self) -> std::io::Result<Listing> {
        let mut listing = Listing::default();
        for item in fs::read_dir(&self.dir)? {
            let item = item?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if !is_entry_name(name) || !item.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let path = item.path();
            let why = match fs::read_to_string(&path) {
                Ok(text) => match serde_json::from_str::<Envelope>(&text) {
                    Ok(envelope) => {
                        listing.entries.push(Entry { path, envelope });
                        continue;
                    }
                    Err(e) => format!("not a spool envelope: {e}"),
                },
                // Gone meanwhile (another process delivered it): fine.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => format!("cannot read it: {e}"),
            };
            let moved = self
                .reject_path(&path, &why)
                .map_err(|e| format!("cannot move it to rejected/: {e}"));
            listing.bad.push(BadEntry { path, why, moved });
        }
        listing
            .entries
            .sort_by_key(|e| (e.envelope.created_us, e.envelope.seq));
        Ok(listing)
    }

    /// How many files wait in the spool (names only: nothing is read or moved, so it needs
    /// no lock).
    pub fn count(&self) -> std::io::Result<usize> {
        let mut n = 0;
        for item in fs::read_dir(&self.dir)? {
            if item?.file_name().to_str().is_some_and(is_entry_name) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes a delivered event.
    pub fn remove(&self, entry: &Entry) -> std::io::Result<()> {
        match fs::remove_file(&entry.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(&self.dir),
        }
    }

    /// Moves a permanently refused event to `rejected/`, with the reason beside it.
    pub fn reject(&self, entry: &Entry, reason: &str) -> std::io::Result<PathBuf> {
        self.reject_path(&entry.path, reason)
    }

    /// Moves `path` into `rejected/` by a rename (no new space needed, so it works on a full
    /// disk), never over an earlier rejected file; then writes `<name>.reason` beside it, best
    /// effort: a failure there is logged, not returned.
    fn reject_path(&self, path: &Path, reason: &str) -> std::io::Result<PathBuf> {
        let name = file_name(path);
        let rejected = self.rejected_dir();
        if !rejected.is_dir() {
            fs::create_dir_all(&rejected)?;
        }
        let mut target = rejected.join(&name);
        let stem = name.strip_suffix(".json").unwrap_or(&name).to_string();
        let mut n = 1;
        while fs::symlink_metadata(&target).is_ok() {
            target = rejected.join(format!("{stem}.{n}.json"));
            n += 1;
        }
        fs::rename(path, &target)?;
        let synced = sync_dir(&rejected).and_then(|()| sync_dir(&self.dir));
        if let Err(e) = synced {
            warn!(file = %name, error = %e, "cannot fsync the spool after moving a file to rejected/");
        }
        let reason_name = format!("{}.reason", file_name(&target));
        if let Err(e) = write_atomically(&rejected, &reason_name, reason.as_bytes()) {
            warn!(file = %reason_name, error = %e, %reason,
                "cannot write the .reason file beside a rejected event (the reason is in this log line)");
        }
        Ok(target)
    }

    /// Removes temp files (`.*.tmp`) older than `age` from the spool and `rejected/`: what a
    /// process killed between writing and renaming leaves behind. Returns how many went.
    /// Call it holding the delivery lock.
    pub fn remove_stale_temps(&self, age: Duration) -> std::io::Result<usize> {
        let now = SystemTime::now();
        let mut removed = 0;
        for dir in [self.dir.clone(), self.rejected_dir()] {
            let items = match fs::read_dir(&dir) {
                Ok(items) => items,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for item in items {
                let item = item?;
                let is_temp = item
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"));
                if !is_temp {
                    continue;
                }
                let Ok(meta) = item.metadata() else { continue };
                let old = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_some_and(|d| d >= age);
                if meta.is_file() && old {
                    match fs::remove_file(item.path()) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Waits (polling, at most until `deadline`) for the exclusive delivery lock.
    pub async fn lock_delivery(&self, deadline: Instant) -> std::io::Result<Option<DeliveryLock>> {
        let path = self.dir.join(".deliver.lock");
        let file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            // A read-only spool (or one this user may not write): a lock taken on a read-only
            // descriptor excludes just the same.
            Err(e) => File::open(&path).map_err(|_| e)?,
        };
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(DeliveryLock { _file: file })),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
            if Instant::now() + Duration::from_millis(50) >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The next value of the spool's counter: above the stored counter and above every
    /// spooled name, stored again atomically (temp, fsync, rename). The blocking lock on
    /// `.seq.lock` (a file never replaced) is held for a few milliseconds.
    fn next_seq(&self) -> std::io::Result<u64> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".seq.lock"))?;
        lock.lock()?;
        let stored = match fs::read_to_string(self.dir.join(".seq")) {
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(n) => n,
                Err(_) => {
                    warn!(content = %text.trim(), "the spool's counter (.seq) is unreadable; numbering from the spooled names");
                    0
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let seq = stored.max(self.highest_seq_in_names()?).saturating_add(1);
        write_atomically(&self.dir, ".seq", seq.to_string().as_bytes())?;
        Ok(seq) // the lock goes with the file
    }

    /// The highest sequence number among the spooled names (0 when none).
    fn highest_seq_in_names(&self) -> std::io::Result<u64> {
        let mut highest = 0;
        for item in fs::read_dir(&self.dir)? {
            let name = item?.file_name();
            let name = name.to_str().filter(|n| is_entry_name(n));
            if let Some(seq) = name.and_then(seq_of_name) {
                highest = highest.max(seq);
            }
        }
        Ok(highest)
    }
}

/// A spool entry's file name: `*.json`, not hidden (temp files start with a dot).
fn is_entry_name(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(".json")
}

/// The sequence number in a name `<created µs>-<seq>.json`.
fn seq_of_name(name: &str) -> Option<u64> {
    let (_, seq) = name.strip_suffix(".json")?.split_once('-')?;
    seq.parse().ok()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes `dir/name` so that it exists either whole or not at all.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

// Sending: one signed attempt, what its reply means, retries inside a deadline.

/// The function's answer to one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
    /// Wall-clock time just before the request went out: whatever the function says about
    /// "now" happened after this (the lease's local expiry is counted from it).
    pub sent_at: chrono::DateTime<chrono::Utc>,
    /// The reply's `Date` header (the function's clock, whole seconds), when it had one.
    pub date: Option<chrono::DateTime<chrono::Utc>>,
    /// The reply's `Location` header (a redirect's target), when it had one.
    pub location: Option<String>,
}

/// What one attempt (or a series of them) came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (or already had it: `duplicate`).
    Delivered { status: u16, duplicate: bool },
    /// Refused for good; do not send this body again.
    Rejected { status: u16, body: String },
    /// Not delivered now; keep it and try later.
    Retry { reason: String },
}

impl Outcome {
    /// Classifies an HTTP reply (see the module docs).
    pub fn of_reply(reply: &Reply) -> Outcome {
        let status = reply.status;
        let duplicate_flag = || {
            serde_json::from_str::<serde_json::Value>(&reply.body)
                .ok()
                .and_then(|v| v.get("duplicate").and_then(|d| d.as_bool()))
                .unwrap_or(false)
        };
        match status {
            200..=299 => Outcome::Delivered {
                status,
                duplicate: duplicate_flag(),
            },
            409 => Outcome::Delivered {
                status,
                duplicate: true,
            },
            408 | 429 | 500..=599 => Outcome::Retry {
                reason: format!("HTTP {status}: {}", snippet(&reply.body)),
            },
            400..=499 => Outcome::Rejected {
                status,
                body: reply.body.clone(),
            },
            _ => Outcome::Retry {
                reason: format!(
                    "unexpected HTTP {status} (is base_url right?): {}",
                    snippet(&reply.body)
                ),
            },
        }
    }
}

/// Sends signed requests to the function.
#[derive(Debug)]
pub struct Sender {
    client: reqwest::Client,
    base_url: String,
    /// The `x-functions-key` of each route (see [`Config::function_key_for`]).
    keys: RouteKeys,
    signer: Signer,
    http_timeout: Duration,
}

/// The sender cannot be built: a configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The function key sent to each route (`None`: no header).
#[derive(Clone, Default)]
struct RouteKeys {
    ups: Option<String>,
    heartbeat: Option<String>,
    witness: Option<String>,
    other: Option<String>,
}

impl std::fmt::Debug for RouteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |k: &Option<String>| if k.is_some() { "<set>" } else { "<none>" };
        f.debug_struct("RouteKeys")
            .field("ups", &shown(&self.ups))
            .field("heartbeat", &shown(&self.heartbeat))
            .field("witness", &shown(&self.witness))
            .field("other", &shown(&self.other))
            .finish()
    }
}

impl RouteKeys {
    fn from_config(config: &Config) -> Result<RouteKeys, crate::config::ConfigError> {
        use burst_wire::{ROUTE_HEARTBEAT, ROUTE_UPS, ROUTE_WITNESS};
        Ok(RouteKeys {
            ups: config.function_key_for(ROUTE_UPS)?.0,
            heartbeat: config.function_key_for(ROUTE_HEARTBEAT)?.0,
            witness: config.function_key_for(ROUTE_WITNESS)?.0,
            other: config.function_key()?,
        })
    }

    fn get(&self, route: &str) -> Option<&str> {
        use burst_wire::{ROUTE_HEARTBEAT, ROUTE_UPS, ROUTE_WITNESS};
        match route {
            ROUTE_UPS => self.ups.as_deref(),
            ROUTE_HEARTBEAT => self.heartbeat.as_deref(),
            ROUTE_WITNESS => self.witness.as_deref(),
            _ => self.other.as_deref(),
        }
    }
}

impl Sender {
    pub fn from_config(config: &Config) -> Result<Sender, SenderError> {
        config.require_function()?;
        let signer = crate::auth::signer_from_config(config)?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("burst-agent/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.http_timeout())
            .build()
            .map_err(|e| SenderError::Client(e.to_string()))?;
        Ok(Sender {
            client,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            keys: RouteKeys::from_config(config)?,
            signer,
            http_timeout: config.http_timeout(),
        })
    }

    /// The full URL of a route.
    pub fn url(&self, route: &str) -> String {
        format!("{}{}", self.base_url, route)
    }

    /// One signed POST, bounded by `limit` (and the configured HTTP timeout).
    /// `Err` is a transport failure (no HTTP reply), described for the log.
    pub async fn post_once(
        &self,
        route: &str,
        body: &[u8],
        limit: Duration,
    ) -> Result<Reply, String> {
        let token = self
            .signer
            .token(body, chrono::Utc::now().timestamp())
            .map_err(|e| e.to_string())?;
        let mut request = self
            .client
            .post(self.url(route))
            .timeout(limit.min(self.http_timeout))
            .header(reqwest::header::CONTENT_TYPE, burst_wire::JSON_CONTENT_TYPE)
            .header(reqwest::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(body.to_vec());
        if let Some(key) = self.keys.get(route) {
            request = request.header("x-functions-key", key);
        }
        let started = Instant::now();
        let sent_at = chrono::Utc::now();
        let response = request.send().await.map_err(describe_transport_error)?;
        let status = response.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let date = header(reqwest::header::DATE).and_then(|d| parse_http_date(&d));
        let location = header(reqwest::header::LOCATION);
        let body = response.text().await.unwrap_or_default();
        Ok(Reply {
            status,
            body,
            elapsed: started.elapsed(),
            sent_at,
            date,
            location,
        })
    }

    /// Tries until delivered, rejected, or `deadline` leaves no room for another attempt.
    pub async fn send_with_retry(&self, route: &str, body: &[u8], deadline: Instant) -> Outcome {
        self.send_with_retry_reply(route, body, deadline).await.0
    }

    /// [`send_with_retry`](Sender::send_with_retry), also returning the HTTP reply the outcome
    /// was read from (`None` when the last attempt got no reply, or none was made).
    pub async fn send_with_retry_reply(
        &self,
        route: &str,
        body: &[u8],
        deadline: Instant,
    ) -> (Outcome, Option<Reply>) {
        let mut attempt: u32 = 0;
        let mut last = Outcome::Retry {
            reason: "no time left for an attempt".to_string(),
        };
        let mut last_reply = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining < Duration::from_millis(50) {
                return (last, last_reply);
            }
            (last, last_reply) = match self.post_once(route, body, remaining).await {
                Ok(reply) => (Outcome::of_reply(&reply), Some(reply)),
                Err(reason) => (Outcome::Retry { reason }, None),
            };
            let Outcome::Retry { reason } = &last else {
                return (last, last_reply);
            };
            let pause = backoff(attempt);
            debug!(route, attempt, %reason, ?pause, "attempt failed");
            if Instant::now() + pause >= deadline {
                return (last, last_reply);
            }
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }
}

/// An HTTP `Date` (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`, which is RFC 2822 with
/// the `GMT` zone) as UTC; `None` for anything else.
pub fn parse_http_date(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Exponential backoff, 250 ms doubling up to 2 s, with "equal jitter" (half fixed, half
/// random) so concurrent hooks do not retry in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(250)
        .saturating_mul(1u32 << attempt.min(8))
        .min(Duration::from_secs(2));
    base.mul_f64(0.5 + 0.5 * fastrand::f64())
}

fn describe_transport_error(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest's Display names the URL, never the headers, so no secret leaks here.
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn snippet(body: &str) -> String {
    let mut s: String = body.chars().take(200).collect();
    if s.len() < body.len() {
        s.push('…');
    }
    s
}

// Flushing: the spool's files sent in order, under the delivery lock.

/// What a spool flush did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub delivered: usize,
    pub duplicates: usize,
    /// Refused for good by the function, or not a valid event at all (unreadable, corrupt):
    /// set aside in `rejected/` (or, when even that failed, left in place and skipped).
    pub rejected: usize,
    /// Still spooled when the flush ended (delivery failed or time ran out).
    pub pending: usize,
    /// Another process held the delivery lock for the whole time: it is delivering.
    pub busy: bool,
}

/// Delivers every spooled event in order, until the spool is empty or `deadline`.
/// Holds the delivery lock meanwhile, and re-reads the directory after each pass so events
/// spooled by concurrent hooks are taken along. Stops at the first event that cannot be
/// delivered now, so order is kept. A file that is not a valid event is set aside, logged and
/// counted; it never stops the others. Errors only when the spool cannot be locked or listed.
pub async fn flush(
    spool: &Spool,
    sender: &Sender,
    deadline: Instant,
) -> std::io::Result<FlushReport> {
    Ok(flush_then_send(spool, sender, deadline, None).await?.0)
}

/// An event that could not be spooled (say the disk is full), to be sent right after the
/// spool: see [`flush_then_send`].
#[derive(Clone, Copy, Debug)]
pub struct Unspooled<'a> {
    pub route: &'a str,
    pub body: &'a [u8],
}

/// [`flush`], then, still holding the delivery lock, sends `after` — but only when the flush
/// cleared the spool (every older event delivered or set aside): a new event is never sent
/// ahead of older ones. The outcome is `None` when it was not sent.
pub async fn flush_then_send(
    spool: &Spool,
    sender: &Sender,
    deadline: Instant,
    after: Option<Unspooled<'_>>,
) -> std::io::Result<(FlushReport, Option<Outcome>)> {
    let mut report = FlushReport::default();
    let Some(_lock) = spool.lock_delivery(deadline).await? else {
        report.busy = true;
        report.pending = spool.count()?;
        info!(
            pending = report.pending,
            "another burst-agent is delivering the spool"
        );
        return Ok((report, None));
    };
    match spool.remove_stale_temps(STALE_TEMP_AGE) {
        Ok(0) => {}
        Ok(removed) => info!(
            removed,
            "removed temp files left in the spool by an interrupted write"
        ),
        Err(e) => warn!(error = %e, "cannot clean up old temp files in the spool"),
    }
    // Files handled in this run that are still there (could not be moved or removed): skipped
    // from now on, so they neither loop nor count twice.
    let mut done: HashSet<PathBuf> = HashSet::new();
    loop {
        let listing = spool.scan()?;
        for bad in &listing.bad {
            if !done.insert(bad.path.clone()) {
                continue; // could not be moved: seen in an earlier pass of this run
            }
            report.rejected += 1;
            match &bad.moved {
                Ok(to) => warn!(file = %bad.name(), why = %bad.why, to = %to.display(),
                    "spool file is not a valid event and can never be sent; set aside in rejected/"),
                Err(e) => error!(file = %bad.name(), why = %bad.why, error = %e,
                    "spool file is not a valid event and cannot be set aside; skipped"),
            }
        }
        let entries: Vec<&Entry> = listing
            .entries
            .iter()
            .filter(|e| !done.contains(&e.path))
            .collect();
        if entries.is_empty() {
            break;
        }
        for (i, entry) in entries.iter().enumerate() {
            let e = &entry.envelope;
            match sender
                .send_with_retry(&e.route, e.body.as_bytes(), deadline)
                .await
            {
                Outcome::Delivered { status, duplicate } => {
                    report.delivered += 1;
                    if duplicate {
                        report.duplicates += 1;
                    }
                    info!(id = %e.id, route = %e.route, status, duplicate, "delivered");
                    if let Err(err) = spool.remove(entry) {
                        // Sent again by a later run: the function answers `duplicate`.
                        error!(id = %e.id, file = %file_name(&entry.path), error = %err,
                            "delivered, but cannot remove it from the spool");
                        done.insert(entry.path.clone());
                    }
                }
                Outcome::Rejected { status, body } => {
                    let reason = format!("HTTP {status}: {body}");
                    report.rejected += 1;
                    match spool.reject(entry, &reason) {
                        Ok(moved) => warn!(id = %e.id, route = %e.route, status,
                            body = %snippet(&body), to = %moved.display(),
                            "the function refused the event for good; moved to rejected/"),
                        Err(err) => {
                            error!(id = %e.id, route = %e.route, status, body = %snippet(&body),
                                file = %file_name(&entry.path), error = %err,
                                "the function refused the event for good, and it cannot be moved to rejected/; skipped");
                            done.insert(entry.path.clone());
                        }
                    }
                }
                Outcome::Retry { reason } => {
                    report.pending = entries.len() - i;
                    warn!(id = %e.id, route = %e.route, %reason, pending = report.pending,
                        "not delivered now; stays spooled for the next notify/heartbeat");
                    return Ok((report, None));
                }
            }
        }
    }
    let Some(event) = after else {
        return Ok((report, None));
    };
    let outcome = sender
        .send_with_retry(event.route, event.body, deadline)
        .await;
    Ok((report, Some(outcome)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Spools an empty event with a fresh id, created at `created_us`.
    fn push_empty(spool: &Spool, created_us: i64) -> PathBuf {
        spool
            .push("/api/ups", Uuid::new_v4(), created_us, "{}".into())
            .unwrap()
    }

    // The spool.

    #[test]
    fn lists_in_creation_then_sequence_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let c = Uuid::new_v4();
        let d = Uuid::new_v4();
        spool.push("/api/ups", c, 300, "{}".into()).unwrap();
        spool.push("/api/ups", a, 100, "{}".into()).unwrap();
        spool.push("/api/ups", b, 200, "{}".into()).unwrap();
        // Same timestamp as c: the later sequence number goes after it.
        spool.push("/api/ups", d, 300, "{}".into()).unwrap();
        let listed: Vec<(Uuid, u64)> = spool
            .list()
            .unwrap()
            .iter()
            .map(|e| (e.envelope.id, e.envelope.seq))
            .collect();
        assert_eq!(listed, [(a, 2), (b, 3), (c, 1), (d, 4)]);
    }

    #[test]
    fn leftover_tmp_files_are_ignored_and_bad_files_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let id = Uuid::new_v4();
        spool.push("/api/ups", id, 5, r#"{"x":1}"#.into()).unwrap();
        // What a crash between create and rename leaves behind: half an envelope.
        fs::write(
            dir.path()
                .join(".00000000000000000009-000000000009.json.4242.tmp"),
            "{\"rou",
        )
        .unwrap();
        // A file someone truncated by hand.
        fs::write(
            dir.path().join("00000000000000000001-000000000099.json"),
            "{\"rou",
        )
        .unwrap();

        let entries = spool.list().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].envelope.id, id);
        assert_eq!(entries[0].envelope.body, r#"{"x":1}"#);
        assert!(
            dir.path()
                .join(".00000000000000000009-000000000009.json.4242.tmp")
                .exists()
        );
        let rejected: Vec<_> = fs::read_dir(spool.rejected_dir()).unwrap().collect();
        assert_eq!(rejected.len(), 2, "the bad file and its .reason");
    }

    #[test]
    fn remove_and_reject() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        push_empty(&spool, 1);
        push_empty(&spool, 2);
        let entries = spool.list().unwrap();
        spool.remove(&entries[0]).unwrap();
        spool.remove(&entries[0]).unwrap(); // already gone: not an error
        let target = spool.reject(&entries[1], "401 bad signature").unwrap();
        assert!(target.exists());
        let reason = fs::read_to_string(format!("{}.reason", target.display())).unwrap();
        assert_eq!(reason, "401 bad signature");
        assert!(spool.list().unwrap().is_empty());
    }

    #[test]
    fn a_torn_counter_never_numbers_below_the_spooled_names() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let first: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for id in &first {
            spool.push("/api/ups", *id, 7, "{}".into()).unwrap();
        }
        // What a kill between truncating and writing the old counter left: an empty file.
        // Same timestamp: only the sequence number keeps these apart and in order.
        for torn in ["", "12x", "\n"] {
            fs::write(dir.path().join(".seq"), torn).unwrap();
            let before = spool.list().unwrap().len();
            let id = Uuid::new_v4();
            let path = spool.push("/api/ups", id, 7, "{}".into()).unwrap();
            let entries = spool.list().unwrap();
            assert_eq!(
                entries.len(),
                before + 1,
                "{torn:?}: an event was overwritten"
            );
            let last = entries.last().unwrap();
            assert_eq!(
                last.envelope.id, id,
                "{torn:?}: the new event must sort last"
            );
            assert_eq!(last.path, path);
            assert_eq!(last.envelope.seq, before as u64 + 1, "{torn:?}");
        }
        let ids: Vec<Uuid> = spool.list().unwrap()[..3]
            .iter()
            .map(|e| e.envelope.id)
            .collect();
        assert_eq!(ids, first);
        assert_eq!(fs::read_to_string(dir.path().join(".seq")).unwrap(), "6");
    }

    #[test]
    fn the_counter_is_replaced_atomically_never_rewritten_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let seq = dir.path().join(".seq");
        push_empty(&spool, 1);
        let inode = fs::metadata(&seq).unwrap().ino();
        push_empty(&spool, 2);
        // A new file renamed over the old one: a kill at any point leaves one of the two whole.
        assert_ne!(fs::metadata(&seq).unwrap().ino(), inode);
        assert_eq!(fs::read_to_string(&seq).unwrap(), "2");
        let hidden: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(hidden.is_empty(), "{hidden:?}");
    }

    #[test]
    fn a_bad_entry_is_set_aside_even_when_its_reason_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let good = Uuid::new_v4();
        spool.push("/api/ups", good, 5, "{}".into()).unwrap();
        let bad = "00000000000000000001-000000000099.json";
        fs::write(dir.path().join(bad), "{\"rou").unwrap();
        // The .reason file cannot be written (as on a full disk): here a directory is in its way.
        fs::create_dir(spool.rejected_dir().join(format!("{bad}.reason"))).unwrap();

        let listing = spool.scan().unwrap();
        assert_eq!(listing.entries.len(), 1);
        assert_eq!(listing.entries[0].envelope.id, good);
        assert_eq!(listing.bad.len(), 1);
        assert_eq!(listing.bad[0].name(), bad);
        assert!(
            listing.bad[0].why.contains("not a spool envelope"),
            "{:?}",
            listing.bad[0]
        );
        assert_eq!(
            listing.bad[0].moved.as_ref().unwrap(),
            &spool.rejected_dir().join(bad)
        );
        assert!(!dir.path().join(bad).exists());
    }

    #[test]
    fn a_bad_entry_that_cannot_be_moved_is_skipped_and_the_rest_listed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        fs::remove_dir(spool.rejected_dir()).unwrap();
        fs::write(spool.rejected_dir(), "not a directory").unwrap();
        let ids: Vec<Uuid> = (0..2).map(|_| Uuid::new_v4()).collect();
        for (i, id) in ids.iter().enumerate() {
            spool.push("/api/ups", *id, i as i64, "{}".into()).unwrap();
        }
        let bad = "00000000000000000001-000000000099.json";
        fs::write(dir.path().join(bad), "").unwrap();

        let listing = spool.scan().unwrap();
        let listed: Vec<Uuid> = listing.entries.iter().map(|e| e.envelope.id).collect();
        assert_eq!(listed, ids);
        assert_eq!(listing.bad.len(), 1);
        assert!(listing.bad[0].moved.is_err(), "{:?}", listing.bad[0]);
        assert!(dir.path().join(bad).exists(), "stays where it was");
        assert_eq!(spool.count().unwrap(), 3);
    }

    #[test]
    fn rejecting_never_overwrites_an_earlier_rejected_file() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let name = "00000000000000000001-000000000001.json";
        for body in ["first", "second"] {
            fs::write(dir.path().join(name), body).unwrap();
            let bad = spool.scan().unwrap().bad;
            assert_eq!(bad.len(), 1);
        }
        let rejected = spool.rejected_dir();
        assert_eq!(fs::read_to_string(rejected.join(name)).unwrap(), "first");
        let again = "00000000000000000001-000000000001.1.json";
        assert_eq!(fs::read_to_string(rejected.join(again)).unwrap(), "second");
        assert!(rejected.join(format!("{again}.reason")).exists());
    }

    #[test]
    fn stale_temp_files_are_removed_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        push_empty(&spool, 1);
        let old = SystemTime::now() - Duration::from_secs(120);
        let backdate = |path: &Path| {
            fs::write(path, "{\"rou").unwrap();
            File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        };
        let stale = dir
            .path()
            .join(".00000000000000000009-000000000009.json.4242.tmp");
        let stale_reason = spool.rejected_dir().join(".x.json.reason.4242.tmp");
        let stale_seq = dir.path().join(".seq.4242.tmp");
        for p in [&stale, &stale_reason, &stale_seq] {
            backdate(p);
        }
        let fresh = dir
            .path()
            .join(".00000000000000000010-000000000010.json.4243.tmp");
        fs::write(&fresh, "{").unwrap();
        // Old, but not temp files: kept.
        backdate(&dir.path().join(".deliver.lock"));

        assert_eq!(spool.remove_stale_temps(STALE_TEMP_AGE).unwrap(), 3);
        for p in [&stale, &stale_reason, &stale_seq] {
            assert!(!p.exists(), "{}", p.display());
        }
        assert!(fresh.exists());
        assert!(dir.path().join(".deliver.lock").exists());
        assert!(dir.path().join(".seq").exists());
        assert_eq!(spool.list().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn delivery_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let held = spool
            .lock_delivery(Instant::now() + Duration::from_secs(1))
            .await
            .unwrap();
        assert!(held.is_some());
        let other = spool
            .lock_delivery(Instant::now() + Duration::from_millis(200))
            .await
            .unwrap();
        assert!(other.is_none(), "a second holder must wait");
        drop(held);
        let again = spool
            .lock_delivery(Instant::now() + Duration::from_secs(1))
            .await
            .unwrap();
        assert!(again.is_some());
    }

    // Sending.

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            elapsed: Duration::ZERO,
            sent_at: chrono::Utc::now(),
            date: None,
            location: None,
        }
    }

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.to_rfc3339(), "1994-11-06T08:49:37+00:00");
        assert!(parse_http_date("yesterday").is_none());
    }

    #[test]
    fn classification() {
        assert_eq!(
            Outcome::of_reply(&reply(200, r#"{"ok":true}"#)),
            Outcome::Delivered {
                status: 200,
                duplicate: false
            }
        );
        assert_eq!(
            Outcome::of_reply(&reply(200, r#"{"duplicate":true}"#)),
            Outcome::Delivered {
                status: 200,
                duplicate: true
            }
        );
        assert_eq!(
            Outcome::of_reply(&reply(409, r#"{"error":"duplicate"}"#)),
            Outcome::Delivered {
                status: 409,
                duplicate: true
            }
        );
        for s in [408, 429, 500, 502, 503, 504, 302] {
            assert!(
                matches!(Outcome::of_reply(&reply(s, "")), Outcome::Retry { .. }),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 413, 415, 422] {
            assert!(
                matches!(Outcome::of_reply(&reply(s, "")), Outcome::Rejected { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for attempt in 0..20 {
            let b = backoff(attempt);
            let base = (250u64 << attempt.min(8)).min(2000);
            assert!(b >= Duration::from_millis(base / 2) && b <= Duration::from_millis(base));
        }
    }
}
