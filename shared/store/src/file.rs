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
//! new bytes, compares and appends; the flush happens after it, on the store's flusher thread,
//! see `group.rs`).
//!
//! When the journal passes its limit it is compacted (on a thread of its own): every document
//! it holds is written to its checkpoint (temp file, fsync, rename) while saves go on, the
//! folder is fsynced, and a fresh journal holding only the records appended meanwhile is
//! renamed over the old one. Every process (this one included) sees the journal's inode change
//! and rebuilds its index.
//! After a crash, a torn record at the end fails its checksum and is skipped; checkpoints are
//! only replaced by complete, flushed files.
//!
//! The version tag is a SHA-256 of the document's bytes (first 128 bits, hex). Two different
//! histories that end in the same bytes give the same tag; that is harmless here, because a
//! save computed from those bytes is as valid against one history as against the other.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use burst_ports::{StateStore, StoreError, Versioned};
use sha2::{Digest, Sha256};

use crate::group::GroupCommit;
use crate::journal;
use crate::site::{check_size, document_name, validate_site};

/// The journal is compacted once it is larger than this (64 MiB: at a few saves a minute of
/// ~15 KB documents, about a day of saves).
pub const DEFAULT_JOURNAL_LIMIT: u64 = 64 * 1024 * 1024;

/// How much of the journal a catch-up reads at a time (and at most on an async worker).
const CATCH_UP_PIECE: u64 = 1 << 20;

/// Spins on a busy index mutex before an async caller backs off (~tens of microseconds).
const INDEX_SPINS: usize = 2_000;

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
    group: GroupCommit,
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
    /// Sites with a record in the journal: their latest document.
    docs: HashMap<String, Doc>,
}

/// A site's latest document in the journal.
#[derive(Debug, Clone)]
struct Doc {
    etag: String,
    bytes: Arc<[u8]>,
    /// The flush after which this version is on disk (see [`GroupCommit`]): a load waits for
    /// it, so nothing is answered from a version that a crash could still take back.
    flush: u64,
}

/// A checked, framed save on its way to the journal.
struct PendingSave {
    site: String,
    checkpoint: PathBuf,
    expected: Option<String>,
    etag: String,
    bytes: Arc<[u8]>,
    record: Vec<u8>,
}

/// A save in the journal, waiting for the flush numbered `seq`.
struct Appended {
    etag: String,
    seq: u64,
    over_limit: bool,
}

/// What [`FileStore::try_lock_now`] found.
enum Now<'a> {
    Locked(Locked<'a>),
    /// Someone else holds the OS lock.
    Busy,
    /// No lock file: no save ever ran in this folder (shared attempts only).
    NoJournal,
    /// Locked, but the catch-up would read more than [`CATCH_UP_PIECE`]; nothing was read.
    Heavy,
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
                group: GroupCommit::default(),
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
        let (found, flush) = {
            let mut locked = self.lock(false)?;
            self.lookup(&mut locked.index, site, &path)?
        };
        // A failed flush was reported to the save that appended this version.
        let _ = self.inner.group.wait_blocking(flush);
        Ok(found)
    }

    /// The latest document of `site`: the journal's (after catching up), else its checkpoint.
    fn lookup(&self, index: &mut Index, site: &str, path: &Path) -> Result<Found, StoreError> {
        self.catch_up(index, u64::MAX)?;
        Self::lookup_current(index, path, site)
    }

    /// The latest document of `site` as far as the index knows, with the flush to wait for.
    fn lookup_current(index: &Index, path: &Path, site: &str) -> Result<Found, StoreError> {
        match index.docs.get(site) {
            Some(doc) => Ok((
                Some(Versioned {
                    bytes: doc.bytes.to_vec(),
                    etag: doc.etag.clone(),
                }),
                doc.flush,
            )),
            None => Ok((read_checkpoint(path)?, 0)),
        }
    }

    /// A load that runs now unless another process (or a compaction) holds the journal lock
    /// (the usual case: the index is in memory, the journal's new bytes in the page cache).
    fn try_load_now(&self, site: &str) -> Attempt<Found> {
        let path = match self.path(site) {
            Ok(p) => p,
            Err(e) => return Attempt::Done(Err(e)),
        };
        match self.try_lock_now(false) {
            Ok(Now::Locked(locked)) => {
                Attempt::Done(Self::lookup_current(&locked.index, &path, site))
            }
            // No save ever ran here: only checkpoints (written by hand) can exist.
            Ok(Now::NoJournal) => Attempt::Done(read_checkpoint(&path).map(|v| (v, 0))),
            Ok(Now::Busy) => Attempt::Busy,
            Ok(Now::Heavy) => Attempt::Heavy,
            Err(e) => Attempt::Done(Err(e)),
        }
    }

    /// [`StateStore::save`] without the async wrapper (for blocking callers).
    pub fn save_blocking(
        &self,
        site: &str,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> Result<String, StoreError> {
        let save = self.prepare(site, bytes, expected)?;
        let appended = {
            let mut locked = self.lock(true)?;
            self.append_locked(&mut locked.index, &save)?
        };
        self.inner
            .group
            .wait_blocking(appended.seq)
            .map_err(|e| self.sync_error(&e))?;
        Ok(self.saved(appended))
    }

    /// Checks and frames a save (no IO).
    fn prepare(
        &self,
        site: &str,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> Result<PendingSave, StoreError> {
        let checkpoint = self.path(site)?;
        check_size(bytes)?;
        let record = journal::encode(site, expected, bytes)
            .ok_or_else(|| StoreError::Refused("version tag too long".into()))?;
        Ok(PendingSave {
            site: site.to_owned(),
            checkpoint,
            expected: expected.map(str::to_owned),
            etag: etag_of(bytes),
            bytes: Arc::from(bytes),
            record,
        })
    }

    /// An append that runs now unless another process (or a compaction) holds the journal
    /// lock (`None` then).
    fn try_append_now(&self, save: &PendingSave) -> Attempt<Appended> {
        match self.try_lock_now(true) {
            Ok(Now::Locked(mut locked)) => {
                Attempt::Done(self.append_current(&mut locked.index, save))
            }
            Ok(Now::Busy | Now::NoJournal) => Attempt::Busy,
            Ok(Now::Heavy) => Attempt::Heavy,
            Err(e) => Attempt::Done(Err(e)),
        }
    }

    /// The compare-and-append, under both locks: the record is in the journal (and the
    /// index) when this returns, not yet known to be on disk.
    fn append_locked(&self, index: &mut Index, save: &PendingSave) -> Result<Appended, StoreError> {
        self.catch_up(index, u64::MAX)?;
        self.append_current(index, save)
    }

    /// [`FileStore::append_locked`] once the index has caught up.
    fn append_current(
        &self,
        index: &mut Index,
        save: &PendingSave,
    ) -> Result<Appended, StoreError> {
        let current = match index.docs.get(&save.site) {
            Some(doc) => Some(doc.etag.clone()),
            None => read_checkpoint(&save.checkpoint)?.map(|v| v.etag),
        };
        match (save.expected.as_deref(), current.as_deref()) {
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
            .append(&file, &save.record)
            .map_err(|e| io_error("append to", &self.inner.dir.join(JOURNAL), &e))?;
        index.offset += save.record.len() as u64;
        // Others may read and build on the new document now; their saves append after ours,
        // so the flush that makes theirs durable makes ours durable too.
        index.docs.insert(
            save.site.clone(),
            Doc {
                etag: save.etag.clone(),
                bytes: save.bytes.clone(),
                flush: seq,
            },
        );
        Ok(Appended {
            etag: save.etag.clone(),
            seq,
            over_limit: index.offset > self.inner.journal_limit,
        })
    }

    /// After a durable append: starts a compaction if the journal is over its limit.
    fn saved(&self, appended: Appended) -> String {
        if appended.over_limit {
            self.compact_in_background();
        }
        appended.etag
    }

    fn sync_error(&self, e: &io::Error) -> StoreError {
        io_error("sync", &self.inner.dir.join(JOURNAL), e)
    }

    /// Writes every document of the journal to its checkpoint and empties the journal. Runs by
    /// itself when the journal passes its limit.
    ///
    /// Saves go on meanwhile: the checkpoints are written from a snapshot without holding the
    /// journal lock; then, under the lock, the records appended since the snapshot are copied
    /// into a fresh journal that replaces the old one. One compaction at a time
    /// (`.compact.lock`), so checkpoints never go back to an older snapshot.
    pub fn compact_blocking(&self) -> Result<(), StoreError> {
        self.compact(0)
    }

    /// Compacts if the journal is (still) longer than `over` bytes once this process holds
    /// the compaction lock: when several saves or processes cross the limit together, the
    /// first compacts and the others find a short journal.
    fn compact(&self, over: u64) -> Result<(), StoreError> {
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
            self.catch_up(index, u64::MAX)?;
            match &index.journal {
                Some((_, ino)) if index.offset > over => (index.docs.clone(), *ino, index.offset),
                _ => return Ok(()),
            }
        };
        for (site, doc) in &snapshot {
            let checkpoint = dir.join(document_name(site)?);
            let tmp = with_suffix(&checkpoint, ".tmp");
            write_synced(&tmp, &doc.bytes).map_err(|e| io_error("write", &tmp, &e))?;
            fs::rename(&tmp, &checkpoint).map_err(|e| io_error("rename", &checkpoint, &e))?;
        }
        sync_dir(dir)?;

        // Every save waits from here: the lock is taken on a descriptor of its own, which
        // conflicts with every other one, this process's index included. The index is not
        // touched: it sees the new inode at its next look and rebuilds itself.
        let lock_path = dir.join(JOURNAL_LOCK);
        let exclusive = open_lock(&lock_path)?;
        exclusive
            .lock()
            .map_err(|e| io_error("lock", &lock_path, &e))?;
        let path = dir.join(JOURNAL);
        let journal = File::open(&path).map_err(|e| io_error("open", &path, &e))?;
        let meta = journal
            .metadata()
            .map_err(|e| io_error("read", &path, &e))?;
        if meta.ino() != ino || meta.len() < upto {
            return Ok(()); // Not ours to replace (cannot happen under the compaction lock).
        }
        let fresh = dir.join(JOURNAL_NEW);
        // Copied in the kernel (copy_file_range): the tail can be megabytes under load.
        let mut tail = journal;
        tail.seek(SeekFrom::Start(upto))
            .map_err(|e| io_error("read", &path, &e))?;
        File::create(&fresh)
            .and_then(|mut f| {
                io::copy(&mut tail.take(meta.len() - upto), &mut f)?;
                f.sync_all()
            })
            .map_err(|e| io_error("create", &fresh, &e))?;
        fs::rename(&fresh, &path).map_err(|e| io_error("rename", &path, &e))?;
        sync_dir(dir)?;
        drop(exclusive);
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
                let _ = store.compact(store.inner.journal_limit);
                store.inner.compacting.store(false, Ordering::SeqCst);
            });
        if started.is_err() {
            self.inner.compacting.store(false, Ordering::SeqCst);
        }
    }

    /// Takes the in-process mutex, then the OS lock (exclusive to save), waiting as long as
    /// another process or a compaction holds the OS lock.
    ///
    /// The mutex is never held while waiting for the OS lock: async callers take the mutex
    /// without yielding, so it must only ever be held for a catch-up and an append.
    fn lock(&self, exclusive: bool) -> Result<Locked<'_>, StoreError> {
        let path = self.inner.dir.join(JOURNAL_LOCK);
        loop {
            let mut index = self.index()?;
            if index.lock.is_none() {
                if exclusive {
                    create_dir(&self.inner.dir)?;
                }
                index.lock = Some(open_lock(&path)?);
            }
            if let Some(l) = &index.lock
                && try_os_lock(l, exclusive).map_err(|e| io_error("lock", &path, &e))?
            {
                return Ok(Locked { index });
            }
            drop(index);
            // Wait for the holder on a descriptor of our own (a lock on another open file
            // conflicts with ours), then try again.
            let waiter = open_lock(&path)?;
            let waited = if exclusive {
                waiter.lock()
            } else {
                waiter.lock_shared()
            };
            waited.map_err(|e| io_error("lock", &path, &e))?;
        }
    }

    /// [`FileStore::lock`] for async callers, then a catch-up if it is small: nothing here
    /// waits for another process, a compaction or a long read.
    fn try_lock_now(&self, exclusive: bool) -> Result<Now<'_>, StoreError> {
        let Some(mut index) = self.try_index()? else {
            return Ok(Now::Busy);
        };
        let path = self.inner.dir.join(JOURNAL_LOCK);
        if index.lock.is_none() {
            if exclusive {
                create_dir(&self.inner.dir)?;
            } else if !path.exists() {
                return Ok(Now::NoJournal);
            }
            index.lock = Some(open_lock(&path)?);
        }
        let Some(lock) = &index.lock else {
            return Ok(Now::Busy);
        };
        if !try_os_lock(lock, exclusive).map_err(|e| io_error("lock", &path, &e))? {
            return Ok(Now::Busy);
        }
        let mut locked = Locked { index };
        if self.catch_up(&mut locked.index, CATCH_UP_PIECE)? {
            Ok(Now::Locked(locked))
        } else {
            Ok(Now::Heavy)
        }
    }

    /// The index mutex if it is free or freed within a short spin (it is held for a catch-up
    /// and an append, tens of microseconds); `None` otherwise.
    fn try_index(&self) -> Result<Option<MutexGuard<'_, Index>>, StoreError> {
        for _ in 0..INDEX_SPINS {
            match self.inner.index.try_lock() {
                Ok(index) => return Ok(Some(index)),
                Err(std::sync::TryLockError::WouldBlock) => std::hint::spin_loop(),
                Err(std::sync::TryLockError::Poisoned(_)) => {
                    return Err(StoreError::Unavailable("file store lock poisoned".into()));
                }
            }
        }
        Ok(None)
    }

    fn index(&self) -> Result<MutexGuard<'_, Index>, StoreError> {
        self.inner
            .index
            .lock()
            .map_err(|_| StoreError::Unavailable("file store lock poisoned".into()))
    }

    /// Applies what was appended since the last look; starts over when the journal was
    /// replaced by a compaction. Called with the OS lock held, so no append is half done.
    /// Reads nothing and returns `false` if that means reading more than `max_read` bytes.
    fn catch_up(&self, index: &mut Index, max_read: u64) -> Result<bool, StoreError> {
        let path = self.inner.dir.join(JOURNAL);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                index.journal = None;
                index.offset = 0;
                index.docs.clear();
                return Ok(true);
            }
            Err(e) => return Err(io_error("read", &path, &e)),
        };
        let mut len = meta.len();
        let replaced = index.journal.as_ref().map(|(_, ino)| *ino) != Some(meta.ino());
        let unread = if replaced {
            len
        } else {
            len.saturating_sub(index.offset)
        };
        if unread > max_read {
            return Ok(false);
        }
        if replaced {
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
            return Ok(true);
        };
        if len <= index.offset {
            return Ok(true);
        }
        // Another process appended these; it may not have flushed them yet. A flush of ours,
        // started from now on, covers them.
        let flush = self
            .inner
            .group
            .request_flush(file)
            .map_err(|e| self.sync_error(&e))?;
        // Read in pieces: after a compaction under load, the new journal can hold megabytes.
        let mut read_to = index.offset;
        let mut carry: Vec<u8> = Vec::new();
        while read_to < len {
            let n = (len - read_to).min(CATCH_UP_PIECE) as usize;
            let start = carry.len();
            carry.resize(start + n, 0);
            file.read_exact_at(&mut carry[start..], read_to)
                .map_err(|e| io_error("read", &path, &e))?;
            read_to += n as u64;
            let (records, used) = journal::scan_part(&carry, read_to < len);
            // Only each site's last record counts: copy that one alone.
            let mut latest: HashMap<&str, &[u8]> = HashMap::new();
            for r in records {
                if validate_site(r.site).is_ok() {
                    latest.insert(r.site, r.bytes);
                }
            }
            for (site, bytes) in latest {
                let doc = Doc {
                    etag: etag_of(bytes),
                    bytes: Arc::from(bytes),
                    flush,
                };
                index.docs.insert(site.to_owned(), doc);
            }
            carry.drain(..used);
        }
        index.offset = len;
        Ok(true)
    }

    fn create_journal(&self, index: &mut Index) -> Result<Arc<File>, StoreError> {
        let path = self.inner.dir.join(JOURNAL);
        create_dir(&self.inner.dir)?;
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
        let mut pause = FIRST_PAUSE;
        loop {
            match self.try_load_now(site) {
                Attempt::Done(done) => {
                    let (found, flush) = done?;
                    // A failed flush was reported to the save that appended this version.
                    let _ = self.inner.group.wait(flush).await;
                    return Ok(found);
                }
                Attempt::Busy => pause = wait_for_lock(pause).await,
                Attempt::Heavy => {
                    let store = self.clone();
                    let site = site.to_owned();
                    return tokio::task::spawn_blocking(move || store.load_blocking(&site))
                        .await
                        .map_err(task_failed)?;
                }
            }
        }
    }

    async fn save(
        &self,
        site: &str,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> Result<String, StoreError> {
        let save = self.prepare(site, bytes, expected)?;
        let mut pause = FIRST_PAUSE;
        let save = Arc::new(save);
        let appended = loop {
            match self.try_append_now(&save) {
                Attempt::Done(done) => break done?,
                Attempt::Busy => pause = wait_for_lock(pause).await,
                Attempt::Heavy => {
                    let store = self.clone();
                    let save = save.clone();
                    break tokio::task::spawn_blocking(move || {
                        let mut locked = store.lock(true)?;
                        store.append_locked(&mut locked.index, &save)
                    })
                    .await
                    .map_err(task_failed)??;
                }
            }
        };
        self.inner
            .group
            .wait(appended.seq)
            .await
            .map_err(|e| self.sync_error(&e))?;
        Ok(self.saved(appended))
    }
}

fn task_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::Unavailable(format!("file store task failed: {e}"))
}

/// A load's result and the flush it must wait for (0: none).
type Found = (Option<Versioned>, u64);

/// What an async caller's attempt came to.
enum Attempt<T> {
    Done(Result<T, StoreError>),
    /// A lock is taken: try again shortly.
    Busy,
    /// The index must first read a lot (another process appended much, or a compaction
    /// replaced the journal): done on a blocking thread, not on an async worker.
    Heavy,
}

/// The first pause of an async caller that found the journal lock taken.
const FIRST_PAUSE: Duration = Duration::from_micros(200);

/// Async callers poll for the OS lock rather than block a thread on it: it is held by another
/// process or by a compaction's last step (a few milliseconds), and a blocking thread per
/// waiting request cost more (threads, and an allocator arena each) than polling.
async fn wait_for_lock(pause: Duration) -> Duration {
    tokio::time::sleep(pause).await;
    (pause * 2).min(Duration::from_millis(5))
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

/// Takes the OS lock if it is free: `Ok(false)` when someone else holds it.
fn try_os_lock(lock: &File, exclusive: bool) -> io::Result<bool> {
    let r = if exclusive {
        lock.try_lock()
    } else {
        lock.try_lock_shared()
    };
    match r {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

fn create_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| io_error("create", dir, &e))
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

    /// A version is only answered once a flush has it on disk: a load of a document whose
    /// save is still waiting for its flush waits too (a crash could still take it back).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_load_waits_for_the_flush_of_the_version_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let v1 = store.save("home", b"1", None).await.unwrap();
        store.inner.group.hold_flushes(true);
        let saver = {
            let store = store.clone();
            let v1 = v1.clone();
            tokio::spawn(async move { store.save("home", b"2", Some(&v1)).await })
        };
        // Wait until the second version is in the journal (and the index), not on disk.
        let appended = || {
            store
                .inner
                .index
                .lock()
                .map(|i| i.docs.get("home").is_some_and(|d| d.etag != v1))
                .unwrap_or(false)
        };
        while !appended() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let early = tokio::time::timeout(Duration::from_millis(200), store.load("home")).await;
        assert!(early.is_err(), "answered before the flush: {early:?}");
        let blocking = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.load_blocking("home"))
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!saver.is_finished() && !blocking.is_finished());
        store.inner.group.hold_flushes(false);
        let v2 = saver.await.unwrap().unwrap();
        let loaded = store.load("home").await.unwrap().unwrap();
        assert_eq!(
            (loaded.bytes.as_slice(), loaded.etag.as_str()),
            (&b"2"[..], v2.as_str())
        );
        assert_eq!(blocking.await.unwrap().unwrap().unwrap().etag, v2);
    }

    #[test]
    fn suffixes_never_collide_with_documents() {
        let p = Path::new("/d/home.json");
        assert_eq!(with_suffix(p, ".lock"), Path::new("/d/home.json.lock"));
        assert_eq!(with_suffix(p, ".tmp"), Path::new("/d/home.json.tmp"));
    }
}
