//! The on-disk queue of events waiting for delivery.
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

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::warn;
use uuid::Uuid;

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        let ids: Vec<Uuid> = spool
            .list()
            .unwrap()
            .iter()
            .map(|e| e.envelope.id)
            .collect();
        assert_eq!(ids, [a, b, c, d]);
        let seqs: Vec<u64> = spool
            .list()
            .unwrap()
            .iter()
            .map(|e| e.envelope.seq)
            .collect();
        assert_eq!(seqs, [2, 3, 1, 4]);
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
        spool
            .push("/api/ups", Uuid::new_v4(), 1, "{}".into())
            .unwrap();
        spool
            .push("/api/ups", Uuid::new_v4(), 2, "{}".into())
            .unwrap();
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
        spool
            .push("/api/ups", Uuid::new_v4(), 1, "{}".into())
            .unwrap();
        let inode = fs::metadata(&seq).unwrap().ino();
        spool
            .push("/api/ups", Uuid::new_v4(), 2, "{}".into())
            .unwrap();
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
        spool
            .push("/api/ups", Uuid::new_v4(), 1, "{}".into())
            .unwrap();
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
}
