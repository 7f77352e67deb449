//! The on-disk queue of events waiting for delivery.
//!
//! One JSON file per event, named `<created µs>-<seq>.json` so a directory listing sorts in
//! creation order; the sequence number (a counter kept in `.seq`, updated under a lock on that file) breaks
//! ties and keeps order when two events share a timestamp. Writes are crash-safe: a
//! dot-prefixed `.tmp` file is written, fsynced, renamed into place, and the directory fsynced;
//! a leftover `.tmp` from a crash is never read. Permanently refused events move to
//! `rejected/` with a `.reason` file next to them.
//!
//! upsmon runs hooks concurrently, so delivery is serialised by an exclusive lock on
//! `.deliver.lock`: whoever holds it sends every spooled file in order; the others wait for
//! it (bounded) and then find their files already gone.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

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
    /// Opens (creating if needed) the spool at `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        fs::create_dir_all(dir.join("rejected"))?;
        Ok(Spool {
            dir: dir.to_path_buf(),
        })
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

    /// The spooled events in delivery order: by creation time, then sequence number.
    /// Temporary and unreadable files are skipped; a file that is not a valid envelope is
    /// moved to `rejected/` (it can never be sent).
    pub fn list(&self) -> std::io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for item in fs::read_dir(&self.dir)? {
            let item = item?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') || !name.ends_with(".json") || !item.file_type()?.is_file() {
                continue;
            }
            let path = item.path();
            let text = match fs::read_to_string(&path) {
                Ok(t) => t,
                // Gone meanwhile (another process delivered it): fine.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match serde_json::from_str::<Envelope>(&text) {
                Ok(envelope) => entries.push(Entry { path, envelope }),
                Err(e) => {
                    self.reject_path(&path, &format!("not a spool envelope: {e}"))?;
                }
            }
        }
        entries.sort_by_key(|e| (e.envelope.created_us, e.envelope.seq));
        Ok(entries)
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

    fn reject_path(&self, path: &Path, reason: &str) -> std::io::Result<PathBuf> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rejected = self.rejected_dir();
        write_atomically(&rejected, &format!("{name}.reason"), reason.as_bytes())?;
        let target = rejected.join(&name);
        fs::rename(path, &target)?;
        sync_dir(&rejected)?;
        sync_dir(&self.dir)?;
        Ok(target)
    }

    /// Waits (polling, at most until `deadline`) for the exclusive delivery lock.
    pub async fn lock_delivery(&self, deadline: Instant) -> std::io::Result<Option<DeliveryLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".deliver.lock"))?;
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

    /// The next value of the spool's counter (blocking lock: held for microseconds).
    fn next_seq(&self) -> std::io::Result<u64> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(self.dir.join(".seq"))?;
        file.lock()?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        // A torn or lost counter only weakens the tie-break, never loses an event.
        let seq = text.trim().parse::<u64>().unwrap_or(0) + 1;
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(seq.to_string().as_bytes())?;
        file.sync_data()?;
        Ok(seq) // the lock goes with the file
    }
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
