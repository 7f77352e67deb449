//! The local file store: one file per site, `<dir>/<site>.json`, with compare-and-swap.
//!
//! The version tag is a SHA-256 of the file's bytes (first 128 bits, hex), so it needs no
//! second file that could get out of step with the document. Two different histories that end
//! in the same bytes give the same tag; that is harmless here, because a save computed from
//! those bytes is as valid against one history as against the other.
//!
//! A save holds an exclusive lock on `<dir>/<site>.json.lock` (an OS file lock, released even
//! when the process dies) while it reads, compares, writes `<dir>/<site>.json.tmp`, fsyncs it,
//! renames it over the document (atomic) and fsyncs the folder. Loads take no lock: a reader
//! sees either the old or the new file, never a half-written one. Lock files are kept, never
//! deleted, because deleting a lock file races with another process that has it open.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use burst_ports::{StateStore, StoreError, Versioned};
use sha2::{Digest, Sha256};

use crate::site::{check_size, document_name};

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
        let path = self.path(site)?;
        match fs::read(&path) {
            Ok(bytes) => {
                let etag = etag_of(&bytes);
                Ok(Some(Versioned { bytes, etag }))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path, &e)),
        }
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
        let lock_path = with_suffix(&path, ".lock");
        let tmp_path = with_suffix(&path, ".tmp");

        let lock = self.open_lock(&lock_path)?;
        lock.lock().map_err(|e| io_error("lock", &lock_path, &e))?;

        let current = match fs::read(&path) {
            Ok(bytes) => Some(etag_of(&bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(io_error("read", &path, &e)),
        };
        match (expected, current.as_deref()) {
            (None, None) => {}
            (Some(want), Some(have)) if want == have => {}
            _ => return Err(StoreError::Conflict),
        }

        write_synced(&tmp_path, bytes).map_err(|e| io_error("write", &tmp_path, &e))?;
        fs::rename(&tmp_path, &path).map_err(|e| io_error("rename", &path, &e))?;
        // The rename is only durable once the folder's entry is on disk.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("sync", &self.dir, &e))?;
        // The lock is released when `lock` is dropped, after the rename is durable.
        drop(lock);
        Ok(etag_of(bytes))
    }

    fn open_lock(&self, lock_path: &Path) -> Result<File, StoreError> {
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(lock_path)
        };
        match open() {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(&self.dir).map_err(|e| io_error("create", &self.dir, &e))?;
                open().map_err(|e| io_error("open", lock_path, &e))
            }
            Err(e) => Err(io_error("open", lock_path, &e)),
        }
    }
}

#[async_trait]
impl StateStore for FileStore {
    async fn load(&self, site: &str) -> Result<Option<Versioned>, StoreError> {
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
        // Blocking: the lock wait and fsyncs must not stall the async workers.
        tokio::task::spawn_blocking(move || store.save_blocking(&site, &bytes, expected.as_deref()))
            .await
            .map_err(|e| StoreError::Unavailable(format!("file store task failed: {e}")))?
    }
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
