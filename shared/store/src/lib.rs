//! State documents with compare-and-swap: a local file store and Azure Blob Storage.
//!
//! The function bodies keep one JSON document per site and update it with optimistic
//! concurrency: load → step the decision core → save with the version tag that was loaded; a
//! [`StoreError::Conflict`] means someone else wrote first, so the caller reloads, re-decides
//! and tries again. This crate implements [`StateStore`] for
//!
//! - [`FileStore`]: one file per site in a local folder (`BURST_STATE_URL=file:///dir`), safe
//!   across tasks and processes (a lock file per site), replaced atomically (temp file, fsync,
//!   rename, folder fsync);
//! - [`BlobStore`]: one block blob per site in an Azure Blob Storage container or Azurite
//!   (`BURST_STATE_URL=https://<account>.blob.core.windows.net/<container>` with managed
//!   identity, or any `http(s)` container URL with a SAS query);
//!
//! Test doubles (an in-memory store, a simulated Blob service, the Azurite launcher) live in the
//! `burst-store-sim` crate under `sims/store`.
//!
//! The store never interprets the bytes: a corrupt or foreign document is returned as it is and
//! the caller decides what to do with it.

mod blob;
mod config;
mod file;
mod site;

pub use blob::{BlobAuth, BlobStore, DEFAULT_TIMEOUT};
pub use burst_ports::{Loaded, StateStore, StoreError, Versioned};
pub use burst_settings::ConfigError;
pub use config::{STATE_TIMEOUT_MS, STATE_URL, StoreConfig, from_settings, valid_container};
pub use file::{FileStore, abort_file_saves_before_rename};
pub use site::{MAX_DOCUMENT_BYTES, check_size, document_name, validate_site};
