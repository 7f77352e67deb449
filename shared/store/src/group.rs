//! Group commit for the journal: a save appends its record, then waits until a flush covers
//! it. One flusher thread per store runs `fdatasync` whenever appends are waiting; each flush
//! covers every append numbered before it started, so under load one flush makes many saves
//! durable. Waiters cost no thread: async callers wait on a watch channel, blocking callers on
//! a condition variable, and the flusher wakes both.
//!
//! Why a thread of its own rather than "the first waiter flushes": every waiter then needed a
//! blocking thread, and at a few thousand saves a second the hand-offs between those threads
//! (and the mutex they queued on) cost more CPU than the flushes.

use std::fs::File;
use std::io::{self, Write as _};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::watch;

/// Shared by a store's clones; stops its flusher once the store is dropped (after flushing
/// what is pending).
#[derive(Debug)]
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    progress: Mutex<Progress>,
    /// The flusher waits here for appends.
    work: Condvar,
    /// Blocking waiters wait here for flushes.
    flushed: Condvar,
    /// Async waiters watch this.
    marks: watch::Sender<Marks>,
}

/// How far flushes got: every append numbered up to the larger of the two is settled (durable,
/// or in a flush that failed: see `Progress::failed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Marks {
    synced: u64,
    failed_upto: u64,
}

impl Marks {
    fn settled(self, seq: u64) -> bool {
        self.synced >= seq || self.failed_upto >= seq
    }
}

/// Failed flush ranges kept apart (each is a disk error between two good flushes); past this
/// the oldest two are merged.
const MAX_FAILED_RANGES: usize = 64;

#[derive(Debug, Default)]
struct Progress {
    appended: u64,
    /// The file of the latest append. Flushing it is enough: earlier appends went to the same
    /// file or to one that a compaction replaced, and a compaction flushes everything it keeps.
    latest: Option<Arc<File>>,
    marks: Marks,
    /// The appends of failed flushes, as ranges `(after, upto]`, with the last error.
    failed: Vec<(u64, u64)>,
    failure: String,
    flusher_running: bool,
    closed: bool,
    #[cfg(test)]
    held: bool,
}

impl Progress {
    /// Appends wait for a flush (and, in tests, the flusher is not held).
    fn flush_due(&self) -> bool {
        #[cfg(test)]
        if self.held {
            return false;
        }
        self.appended > self.marks.synced.max(self.marks.failed_upto)
    }
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                progress: Mutex::new(Progress::default()),
                work: Condvar::new(),
                flushed: Condvar::new(),
                marks: watch::Sender::new(Marks::default()),
            }),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        if let Ok(mut p) = self.shared.progress.lock() {
            p.closed = true;
        }
        self.shared.work.notify_all();
    }
}

impl GroupCommit {
    /// Appends one record with a single `write` (O_APPEND: never interleaved with other
    /// processes' appends) and returns its number for [`GroupCommit::wait`]. The caller
    /// serialises appends (the journal lock), so numbers follow the file's order.
    pub fn append(&self, file: &Arc<File>, record: &[u8]) -> io::Result<u64> {
        self.ensure_flusher()?;
        let n = (&**file).write(record)?;
        if n != record.len() {
            // The partial record fails its checksum and is skipped by every scan.
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short journal write ({n} of {} bytes)", record.len()),
            ));
        }
        self.number(file)
    }

    /// Asks for a flush of `file` without appending (bytes another process appended): the
    /// returned number is settled once a flush started after this call is done.
    pub fn request_flush(&self, file: &Arc<File>) -> io::Result<u64> {
        self.ensure_flusher()?;
        self.number(file)
    }

    /// Numbers what was just written to `file` (or asked to be flushed) and wakes the flusher.
    fn number(&self, file: &Arc<File>) -> io::Result<u64> {
        let mut p = self.shared.lock()?;
        p.appended += 1;
        p.latest = Some(file.clone());
        let seq = p.appended;
        drop(p);
        self.shared.work.notify_one();
        Ok(seq)
    }

    /// Holds (or lets go of) the flusher, for tests of what waits for a flush.
    #[cfg(test)]
    pub fn hold_flushes(&self, hold: bool) {
        if let Ok(mut p) = self.shared.lock() {
            p.held = hold;
        }
        self.shared.work.notify_all();
    }

    /// Returns once append number `seq` is on disk (or its flush failed).
    pub async fn wait(&self, seq: u64) -> io::Result<()> {
        let mut rx = self.shared.marks.subscribe();
        rx.wait_for(|m| m.settled(seq))
            .await
            .map_err(|_| io::Error::other("journal flusher stopped"))?;
        self.shared.outcome(&*self.shared.lock()?, seq)
    }

    /// [`GroupCommit::wait`] for blocking callers.
    pub fn wait_blocking(&self, seq: u64) -> io::Result<()> {
        let mut p = self.shared.lock()?;
        while !p.marks.settled(seq) {
            p = self
                .shared
                .flushed
                .wait(p)
                .map_err(|_| io::Error::other("journal sync lock poisoned"))?;
        }
        self.shared.outcome(&p, seq)
    }

    fn ensure_flusher(&self) -> io::Result<()> {
        let mut p = self.shared.lock()?;
        if p.flusher_running {
            return Ok(());
        }
        let shared = self.shared.clone();
        std::thread::Builder::new()
            .name("file-store-flush".into())
            .spawn(move || shared.run_flusher())?;
        p.flusher_running = true;
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> io::Result<MutexGuard<'_, Progress>> {
        self.progress
            .lock()
            .map_err(|_| io::Error::other("journal sync lock poisoned"))
    }

    /// A settled append's result. A failed flush fails every append it covered, even if a
    /// later flush succeeds: after a failed `fdatasync` the kernel may have dropped those
    /// pages, and a later success says nothing about them.
    fn outcome(&self, p: &Progress, seq: u64) -> io::Result<()> {
        if p.failed
            .iter()
            .any(|&(after, upto)| after < seq && seq <= upto)
        {
            Err(io::Error::other(p.failure.clone()))
        } else {
            Ok(())
        }
    }

    fn run_flusher(&self) {
        loop {
            let (file, target) = {
                let Ok(mut p) = self.progress.lock() else {
                    return;
                };
                while !p.flush_due() {
                    if p.closed {
                        return;
                    }
                    p = match self.work.wait(p) {
                        Ok(p) => p,
                        Err(_) => return,
                    };
                }
                (p.latest.clone(), p.appended)
            };
            let result = file.map_or(Ok(()), |f| f.sync_data());
            let Ok(mut p) = self.progress.lock() else {
                return;
            };
            match result {
                Ok(()) => p.marks.synced = p.marks.synced.max(target),
                Err(e) => {
                    // Appends up to `synced` were durable before this flush; a failure right
                    // after another failure extends its range.
                    let after = p.marks.synced;
                    match p.failed.last_mut() {
                        Some(last) if last.1 > after => last.1 = target,
                        _ => p.failed.push((after, target)),
                    }
                    if p.failed.len() > MAX_FAILED_RANGES {
                        // Merge the two oldest rather than forget one: a slow waiter must not
                        // see success for a failed flush (a few good saves then report failure,
                        // the safe side).
                        let (after, _) = p.failed.remove(0);
                        p.failed[0].0 = after;
                    }
                    p.marks.failed_upto = target;
                    p.failure = e.to_string();
                }
            }
            let marks = p.marks;
            drop(p);
            self.flushed.notify_all();
            self.marks.send_replace(marks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn journal() -> (tempfile::TempDir, Arc<File>) {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(dir.path().join("j"))
            .unwrap();
        (dir, Arc::new(file))
    }

    #[test]
    fn appends_are_numbered_in_order_and_become_durable() {
        let (dir, file) = journal();
        let group = GroupCommit::default();
        let a = group.append(&file, b"one ").unwrap();
        let b = group.append(&file, b"two").unwrap();
        assert_eq!((a, b), (1, 2));
        group.wait_blocking(b).unwrap();
        group.wait_blocking(a).unwrap();
        let mut s = String::new();
        File::open(dir.path().join("j"))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "one two");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_async_waiters_share_flushes() {
        let (_dir, file) = journal();
        let group = Arc::new(GroupCommit::default());
        let mut tasks = Vec::new();
        for i in 0..64u32 {
            let group = group.clone();
            let file = file.clone();
            tasks.push(tokio::spawn(async move {
                let seq = group.append(&file, &i.to_le_bytes()).unwrap();
                group.wait(seq).await.map(|()| seq)
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap().unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=64).collect::<Vec<u64>>());
        assert!(group.shared.marks.borrow().synced >= 64);
    }

    #[test]
    fn failed_flushes_fail_their_saves_for_good() {
        // fdatasync on /dev/null fails (EINVAL): a real failing flush.
        let null = Arc::new(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .unwrap(),
        );
        let (_dir, file) = journal();
        let group = GroupCommit::default();
        let first = group.append(&null, b"lost").unwrap();
        assert!(group.wait_blocking(first).is_err());
        let good = group.append(&file, b"kept").unwrap();
        group.wait_blocking(good).unwrap();
        assert!(group.wait_blocking(first).is_err(), "a later good flush");
        // More failures than ranges kept apart: the first still fails.
        for _ in 0..MAX_FAILED_RANGES + 5 {
            let bad = group.append(&null, b"lost").unwrap();
            assert!(group.wait_blocking(bad).is_err());
            let ok = group.append(&file, b"kept").unwrap();
            group.wait_blocking(ok).unwrap();
        }
        assert!(group.wait_blocking(first).is_err(), "after many failures");
        assert!(group.shared.lock().unwrap().failed.len() <= MAX_FAILED_RANGES);
    }

    #[test]
    fn a_failed_flush_fails_the_appends_it_covered() {
        // A read-only descriptor cannot be written: simulate the flusher's failure directly.
        let group = GroupCommit::default();
        {
            let mut p = group.shared.lock().unwrap();
            p.appended = 3;
            p.marks = Marks {
                synced: 1,
                failed_upto: 2,
            };
            p.failed = vec![(1, 2)];
            p.failure = "EIO".into();
        }
        assert!(
            group
                .shared
                .outcome(&group.shared.lock().unwrap(), 1)
                .is_ok()
        );
        let e = group
            .shared
            .outcome(&group.shared.lock().unwrap(), 2)
            .unwrap_err();
        assert_eq!(e.to_string(), "EIO");
        // Even once a later flush covers number 2 again.
        group.shared.lock().unwrap().marks.synced = 3;
        assert!(group.wait_blocking(2).is_err());
        assert!(group.wait_blocking(3).is_ok());
    }
}
