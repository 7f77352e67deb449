//! The local file store: a journal of saved documents per folder, with compare-and-swap,
//! durable through group commit, and one checkpoint file per site.
//!
//! Every save appends the whole new document to `<dir>/.journal` (see `journal.rs` for the
//! record format) and returns once the journal is on disk. One `fdatasync` covers every save
//! that appended before it started, so concurrent saves share a disk flush; a save creates,
//! renames and truncates nothing, because on a journaling file system those operations queue
//! behind every flush in progress. The journal is the truth: a document's latest version is
//! its last intact record, else its checkpoint `<dir>/<site>.json` (which may also be a file
//! written by hand), else there is none.
//!
//! Each process keeps an index of the journal (site → latest document) and catches up with
//! what other processes appended, under an OS lock on `<dir>/.journal.lock`: shared for a load,
//! exclusive for the compare-and-append of a save (the critical section reads the journal's
//! new bytes, compares and appends; the flush happens after it).
//!
//! When the journal passes its limit it is compacted (on a thread of its own): every document it holds is written to its
//! checkpoint (temp file, fsync, rename) while saves go on, the folder is fsynced, and a fresh
//! journal holding only the records appended meanwhile is renamed over the old one. Other processes see the journal's inode change and rebuild their index.
//! After a crash, a torn record at the end fails its checksum and is skipped; checkpoints are
//! only replaced by complete, flushed files.
//!
//! The version tag is a SHA-256 of the document's bytes (first 128 bits, hex). Two different
//! histories that end in the same bytes give the same tag; that is harmless here, because a
//! save computed from those bytes is as valid against one history as against the other.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use burst_ports::{StateStore, StoreError, Versioned};
use sha2::{Digest, Sha256};

use crate::journal::{self, GroupSync};
use crate::site::{check_size, document_name, validate_site};

/// The journal is compacted once it is larger than this (64 MiB: at a few saves a minute of
/// ~15 KB documents, about a day of saves).
pub const DEFAULT_JOURNAL_LIMIT: u64 = 64 * 1024 * 1024;

const JOURNAL: &str = ".journal";
const JOURNAL_NEW: &str = ".journal.new";
const JOURNAL_LOCK: &str = ".journal.lock";
const COMPACT_LOCK: &str = ".compact.lock";

/// Per-site JSON documents in a local folder (the embedded default store). Clones share the
/// index and the group commit.
#[derive(Clone, Debug)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    journal_limit: u64,
    index: Mutex<Index>,
    group: GroupSync,
    /// A background compaction is running.
    compacting: AtomicBool,
}

/// What this process knows of the journal.
#[derive(Debug, Default)]
struct Index {
    /// `.journal.lock`, opened once (the in-process mutex serialises its use).
    lock: Option<File>,
    /// The journal, opened for reading and appending, with its inode number.
    journal: Option<(Arc<File>, u64)>,
    /// Bytes of the journal already applied.
    offset: u64,
    /// Sites with a record in the journal: their latest document and tag.
    docs: HashMap<String, (String, Arc<[u8]>)>,
}

/// A locked index: the in-process mutex and the OS lock on `.journal.lock`.
struct Locked<'a> {
    index: MutexGuard<'a, Index>,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if let Some(l) = &self.index.lock {
            let _ = l.unlock();
        }
    }
}

impl FileStore {
    /// A store in `dir`. Nothing is touched until the first save, which creates the folder if
    /// it is missing.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::with_journal_limit(dir, DEFAULT_JOURNAL_LIMIT)
    }

    /// A store whose journal is compacted past `bytes` (tests use a small limit).
    pub fn with_journal_limit(dir: impl Into<PathBuf>, bytes: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir: dir.into(),
                journal_limit: bytes,
                index: Mutex::new(Index::default()),
                group: GroupSync::default(),
                compacting: AtomicBool::new(false),
            }),
        }
    }

    /// The folder holding the documents.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The path of a site's checkpoint file (after checking the name).
    pub fn path(&self, site: &str) -> Result<PathBuf, StoreError> {
        Ok(self.inner.dir.join(document_name(site)?))
    }

    /// [`StateStore::load`] without the async wrapper (for blocking callers).
    pub fn load_blocking(&self, site: &str) -> Result<Option<Versioned>, StoreError> {
        let path = self.path(site)?;
        if !self.inner.dir.join(JOURNAL_LOCK).exists() {
            // No save ever ran here: only checkpoints (written by hand) can exist.
            return read_checkpoint(&path);
        }
        let mut locked = self.lock(false)?;
        self.lookup(&mut locked.index, site, &path)
    }

    /// The latest document of `site`: the journal's (after catching up), else its checkpoint.
    fn lookup(
        &self,
        index: &mut Index,
        site: &str,
        path: &Path,
    ) -> Result<Option<Versioned>, StoreError> {
        self.catch_up(index)?;
        match index.docs.get(site) {
            Some((etag, bytes)) => Ok(Some(Versioned {
                bytes: bytes.to_vec(),
                etag: etag.clone(),
            })),
            None => read_checkpoint(path),
        }
    }

    /// A load that runs now if it can take both locks without waiting (the usual case: the
    /// index is in memory, the journal's new bytes in the page cache); `None` otherwise.
    fn try_load_now(&self, site: &str) -> Option<Result<Option<Versioned>, StoreError>> {
        let path = match self.path(site) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let index = self.inner.index.try_lock().ok()?;
        index.lock.as_ref()?.try_lock_shared().ok()?;
        let mut locked = Locked { index };
        Some(self.lookup(&mut locked.index, site, &path))
    }

    /// [`StateStore::save`] without the async wrapper (for blocking callers).
    pub fn save_blocking(
        &self,
        site: &str,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> Result<String, StoreError> {
        let path = self.path(site)?;
        check_size(bytes)?;
        let record = journal::encode(site, expected, bytes)
            .ok_or_else(|| StoreError::Refused("version tag too long".into()))?;
        let dir = &self.inner.dir;
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(|e| io_error("create", dir, &e))?;
        }
        let etag = etag_of(bytes);
        let journal_path = dir.join(JOURNAL);
        let (file, seq, over_limit) = {
            let mut locked = self.lock(true)?;
            let index = &mut locked.index;
            self.catch_up(index)?;
            let current = match index.docs.get(site) {
                Some((tag, _)) => Some(tag.clone()),
                None => read_checkpoint(&path)?.map(|v| v.etag),
            };
            match (expected, current.as_deref()) {
                (None, None) => {}
                (Some(want), Some(have)) if want == have => {}
                _ => return Err(StoreError::Conflict),
            }
            let file = match &index.journal {
                Some((f, _)) => f.clone(),
                None => self.create_journal(index)?,
            };
            let seq = self
                .inner
                .group
                .append(&file, &record)
                .map_err(|e| io_error("append to", &journal_path, &e))?;
            index.offset += record.len() as u64;
            index
                .docs
                .insert(site.to_owned(), (etag.clone(), Arc::from(bytes)));
            (file, seq, index.offset > self.inner.journal_limit)
        };
        // Others may read and build on the new document now; their saves append after ours,
        // so the flush that makes theirs durable makes ours durable too.
        self.inner
            .group
            .wait_durable(&file, seq)
            .map_err(|e| io_error("sync", &journal_path, &e))?;
        if over_limit {
            self.compact_in_background();
        }
        Ok(etag)
    }

    /// Writes every document of the journal to its checkpoint and empties the journal. Runs by
    /// itself when the journal passes its limit.
    ///
    /// Saves go on meanwhile: the checkpoints are written from a snapshot without holding the
    /// journal lock; then, under the lock, the records appended since the snapshot are copied
    /// into a fresh journal that replaces the old one. One compaction at a time
    /// (`.compact.lock`), so checkpoints never go back to an older snapshot.
    pub fn compact_blocking(&self) -> Result<(), StoreError> {
        let dir = &self.inner.dir;
        if !dir.join(JOURNAL_LOCK).exists() {
            return Ok(());
        }
        let compact_lock_path = dir.join(COMPACT_LOCK);
        let compact_lock = open_lock(&compact_lock_path)?;
        compact_lock
            .lock()
            .map_err(|e| io_error("lock", &compact_lock_path, &e))?;
        let (snapshot, ino, upto) = {
            let mut locked = self.lock(false)?;
            let index = &mut locked.index;
            self.catch_up(index)?;
            match &index.journal {
                Some((_, ino)) if index.offset > 0 => (index.docs.clone(), *ino, index.offset),
                _ => return Ok(()),
            }
        };
        for (site, (_, bytes)) in &snapshot {
            let doc = dir.join(document_name(site)?);
            let tmp = with_suffix(&doc, ".tmp");
            write_synced(&tmp, bytes).map_err(|e| io_error("write", &tmp, &e))?;
            fs::rename(&tmp, &doc).map_err(|e| io_error("rename", &doc, &e))?;
        }
        sync_dir(dir)?;

        let mut locked = self.lock(true)?;
        let index = &mut locked.index;
        self.catch_up(index)?;
        let Some((file, now_ino)) = &index.journal else {
            return Ok(());
        };
        if *now_ino != ino {
            return Ok(()); // Not ours to replace (cannot happen under the compaction lock).
        }
        let path = dir.join(JOURNAL);
        let mut tail = vec![0u8; (index.offset - upto) as usize];
        file.read_exact_at(&mut tail, upto)
            .map_err(|e| io_error("read", &path, &e))?;
        let fresh = dir.join(JOURNAL_NEW);
        File::create(&fresh)
            .and_then(|mut f| {
                f.write_all(&tail)?;
                f.sync_all()
            })
            .map_err(|e| io_error("create", &fresh, &e))?;
        fs::rename(&fresh, &path).map_err(|e| io_error("rename", &path, &e))?;
        sync_dir(dir)?;
        index.journal = None;
        index.offset = 0;
        index.docs.clear();
        drop(locked);
        drop(compact_lock);
        Ok(())
    }

    /// Starts a compaction on its own thread unless one is running: no save waits for the
    /// checkpoints' flushes. A failed compaction is retried after the next save.
    fn compact_in_background(&self) {
        if self.inner.compacting.swap(true, Ordering::SeqCst) {
            return;
        }
        let store = self.clone();
        let started = std::thread::Builder::new()
            .name("file-store-compact".into())
            .spawn(move || {
                let _ = store.compact_blocking();
                store.inner.compacting.store(false, Ordering::SeqCst);
            });
        if started.is_err() {
            self.inner.compacting.store(false, Ordering::SeqCst);
        }
    }

    /// Takes the in-process mutex, then the OS lock (exclusive to save).
    fn lock(&self, exclusive: bool) -> Result<Locked<'_>, StoreError> {
        let mut index = self
            .inner
            .index
            .lock()
            .map_err(|_| StoreError::Unavailable("file store lock poisoned".into()))?;
        let path = self.inner.dir.join(JOURNAL_LOCK);
        if index.lock.is_none() {
            index.lock = Some(open_lock(&path)?);
        }
        if let Some(l) = &index.lock {
            let r = if exclusive { l.lock() } else { l.lock_shared() };
            r.map_err(|e| io_error("lock", &path, &e))?;
        }
        Ok(Locked { index })
    }

    /// Applies what was appended since the last look; starts over when the journal was
    /// replaced by a compaction. Called with the OS lock held, so no append is half done.
    fn catch_up(&self, index: &mut Index) -> Result<(), StoreError> {
        let path = self.inner.dir.join(JOURNAL);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                index.journal = None;
                index.offset = 0;
                index.docs.clear();
                return Ok(());
            }
            Err(e) => return Err(io_error("read", &path, &e)),
        };
        let mut len = meta.len();
        if index.journal.as_ref().map(|(_, ino)| *ino) != Some(meta.ino()) {
            // Replaced by a compaction (or new): the opened file's own metadata counts, in
            // case it was replaced again between the stat and the open.
            let file = open_journal(&path, false)?;
            let opened = file.metadata().map_err(|e| io_error("read", &path, &e))?;
            len = opened.len();
            index.journal = Some((Arc::new(file), opened.ino()));
            index.offset = 0;
            index.docs.clear();
        }
        let Some((file, _)) = &index.journal else {
            return Ok(());
        };
        if len <= index.offset {
            return Ok(());
        }
        let mut buf = vec![0u8; (len - index.offset) as usize];
        file.read_exact_at(&mut buf, index.offset)
            .map_err(|e| io_error("read", &path, &e))?;
        for r in journal::scan(&buf) {
            if validate_site(&r.site).is_ok() {
                let etag = etag_of(&r.bytes);
                index.docs.insert(r.site, (etag, Arc::from(r.bytes)));
            }
        }
        index.offset = len;
        Ok(())
    }

    fn create_journal(&self, index: &mut Index) -> Result<Arc<File>, StoreError> {
        let path = self.inner.dir.join(JOURNAL);
        let file = open_journal(&path, true)?;
        sync_dir(&self.inner.dir)?;
        let ino = file
            .metadata()
            .map_err(|e| io_error("read", &path, &e))?
            .ino();
        let file = Arc::new(file);
        index.journal = Some((file.clone(), ino));
        index.offset = 0;
        Ok(file)
    }
}

#[async_trait]
impl StateStore for FileStore {
    async fn load(&self, site: &str) -> Result<Option<Versioned>, StoreError> {
        if let Some(done) = self.try_load_now(site) {
            return done;
        }
        let store = self.clone();
        let site = site.to_owned();
        tokio::task::spawn_blocking(move || store.load_blocking(&site))
            .await
            .map_err(|e| StoreError::Unavailable(format!("file store task failed: {e}")))?
    }

    async fn save(
        &self,
        site: &str,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> Result<String, StoreError> {
        let store = self.clone();
        let site = site.to_owned();
        let bytes = bytes.to_vec();
        let expected = expected.map(str::to_owned);
        // Blocking: the lock waits and the flush must not stall the async workers.
        tokio::task::spawn_blocking(move || store.save_blocking(&site, &bytes, expected.as_deref()))
            .await
            .map_err(|e| StoreError::Unavailable(format!("file store task failed: {e}")))?
    }
}

fn read_checkpoint(path: &Path) -> Result<Option<Versioned>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => {
            let etag = etag_of(&bytes);
            Ok(Some(Versioned { bytes, etag }))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path, &e)),
    }
}

fn open_journal(path: &Path, create: bool) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(create)
        .open(path)
        .map_err(|e| io_error("open", path, &e))
}

fn open_lock(lock_path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
        .map_err(|e| io_error("open", lock_path, &e))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync", dir, &e))
}

/// The version tag of a document: the first 128 bits of its SHA-256, in hex.
pub(crate) fn etag_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(32);
    for b in &digest[..16] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    // Data and length on disk; the other metadata (times) need not be.
    f.sync_data()
}

/// Permission problems need the owner; anything else (disk full, IO error) may pass.
fn io_error(what: &str, path: &Path, e: &io::Error) -> StoreError {
    let msg = format!("cannot {what} {}: {e}", path.display());
    match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => StoreError::Refused(msg),
        _ => StoreError::Unavailable(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_is_the_truncated_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(etag_of(b"abc"), "ba7816bf8f01cfea414140de5dae2223");
        assert_eq!(etag_of(b""), "e3b0c44298fc1c149afbf4c8996fb924");
    }

    #[test]
    fn suffixes_never_collide_with_documents() {
        let p = Path::new("/d/home.json");
        assert_eq!(with_suffix(p, ".lock"), Path::new("/d/home.json.lock"));
        assert_eq!(with_suffix(p, ".tmp"), Path::new("/d/home.json.tmp"));
    }
}
