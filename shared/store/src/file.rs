//! The local file store: one file per site, replaced atomically, with compare-and-swap.
//!
//! A site's document is `<dir>/<site>.json`, exactly the bytes last saved. A save takes an
//! exclusive OS lock on `<dir>/<site>.lock` (`flock` through std `File::lock`; released if the
//! process dies), reads the current document, compares its tag with the expected one, writes
//! the new bytes to `<dir>/.<site>.json.tmp`, fsyncs it, renames it over the document and
//! fsyncs the folder. A crash at any point leaves either the previous document or the new one,
//! never a torn one; a temp file left by a crash is never read, and the next save of that site
//! replaces it. A load reads the document without the lock (a rename is atomic).
//!
//! The store never interprets the bytes. Only a missing document is `Ok(None)`: a document
//! that cannot be read (IO error, a folder or a dangling link where the file should be) is
//! [`StoreError::Unavailable`] naming the file, logged at ERROR, so nothing starts over from
//! an empty state behind the owner's back. Other sites are not affected.
//!
//! The version tag is a SHA-256 of the document's bytes (first 128 bits, hex). Two different
//! histories that end in the same bytes give the same tag; that is harmless here, because a
//! save computed from those bytes is as valid against one history as against the other.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use burst_ports::{Saved, StateStore, StoreError, Versioned};
use sha2::{Digest, Sha256};

use crate::site::{check_size, document_name, validate_site};

/// Set by [`abort_file_saves_before_rename`].
static ABORT_BEFORE_RENAME: AtomicBool = AtomicBool::new(false);

/// Crash tests only: from now on, a `FileStore` save in this process aborts the process after
/// its temp file is written and synced, before the rename (a kill at the worst moment).
#[doc(hidden)]
pub fn abort_file_saves_before_rename() {
    ABORT_BEFORE_RENAME.store(true, Ordering::SeqCst);
}

/// Per-site JSON documents in a local folder (the embedded default store).
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// A store in `dir`. Nothing is touched until the first save, which creates the folder if
    /// it is missing.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder holding the documents.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of a site's document (after checking the name).
    pub fn path(&self, site: &str) -> Result<PathBuf, StoreError> {
        Ok(self.dir.join(document_name(site)?))
    }

    /// [`StateStore::load`] without the async wrapper (for blocking callers).
    pub fn load_blocking(&self, site: &str) -> Result<Option<Versioned>, StoreError> {
        read_document(&self.path(site)?)
    }

    /// [`StateStore::save`] without the async wrapper (for blocking callers).
    pub fn save_blocking(
        &self,
        site: &str,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> Result<String, StoreError> {
        validate_site(site)?;
        check_size(bytes)?;
        let path = self.path(site)?;
        create_dir(&self.dir)?;
        let lock_path = self.dir.join(format!("{site}.lock"));
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_error("open", &lock_path, &e))?;
        // Released when `lock` is closed (at the end of this function, or when the process dies).
        lock.lock().map_err(|e| io_error("lock", &lock_path, &e))?;

        let current = read_document(&path)?;
        if current.as_ref().map(|v| v.etag.as_str()) != expected {
            return Err(StoreError::Conflict);
        }
        let tmp = self.dir.join(format!(".{site}.json.tmp"));
        if fs::symlink_metadata(&tmp).is_ok() {
            // Only a save holding this lock writes it, so its writer died before the rename.
            tracing::warn!(path = %tmp.display(), "file store: removing a temp file left by an interrupted save");
            fs::remove_file(&tmp).map_err(|e| io_error("remove", &tmp, &e))?;
        }
        write_synced(&tmp, bytes).map_err(|e| io_error("write", &tmp, &e))?;
        if ABORT_BEFORE_RENAME.load(Ordering::SeqCst) {
            std::process::abort();
        }
        fs::rename(&tmp, &path).map_err(|e| io_error("rename", &tmp, &e))?;
        sync_dir(&self.dir)?;
        Ok(etag_of(bytes))
    }
}

#[async_trait]
impl StateStore for FileStore {
    async fn load(&self, site: &str) -> Result<Option<Versioned>, StoreError> {
        let path = self.path(site)?;
        tokio::task::spawn_blocking(move || read_document(&path))
            .await
            .map_err(task_failed)?
    }

    async fn save(&self, site: &str, bytes: &[u8], expected: Option<&str>) -> Saved {
        // Checked here too, so a bad request costs no thread and no copy.
        validate_site(site)?;
        check_size(bytes)?;
        let (store, site, bytes) = (self.clone(), site.to_owned(), bytes.to_vec());
        let expected = expected.map(str::to_owned);
        tokio::task::spawn_blocking(move || store.save_blocking(&site, &bytes, expected.as_deref()))
            .await
            .map_err(task_failed)?
    }
}

fn task_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::Unavailable(format!("file store task failed: {e}"))
}

/// A site's document: `None` only when there is no such file (and no link by that name).
fn read_document(path: &Path) -> Result<Option<Versioned>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => {
            let etag = etag_of(&bytes);
            Ok(Some(Versioned { bytes, etag }))
        }
        // A dangling link is a damaged store, not a missing document.
        Err(e) if e.kind() == ErrorKind::NotFound && fs::symlink_metadata(path).is_err() => {
            Ok(None)
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "file store: cannot read the state document; move it aside to start this site afresh");
            Err(StoreError::Unavailable(format!(
                "cannot read state document {}: {e}",
                path.display()
            )))
        }
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

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The version tag of a document: the first 128 bits of its SHA-256, in hex.
pub(crate) fn etag_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
}
