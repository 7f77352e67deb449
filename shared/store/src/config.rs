//! Which store to use, from the app settings (`BURST_STATE_URL` and friends).
//!
//! Parsing is pure (no IO, no credential yet); [`StoreConfig::open`] builds the store. Errors
//! name the setting and what is wrong with it, never its value: a blob URL may carry a SAS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use burst_ports::StateStore;
use burst_settings::{ConfigError, Get, Secret, Settings};
use url::Url;

use crate::blob::{BlobAuth, BlobStore, DEFAULT_TIMEOUT};
use crate::file::FileStore;

/// `file:///abs/dir` (local files) or an `http(s)://…/<container>` blob container URL,
/// optionally with a SAS query. Unset or empty: no state store configured.
pub const STATE_URL: &str = "BURST_STATE_URL";
/// Per-request time limit for the blob store in milliseconds (default 5000, 1..=60000).
pub const STATE_TIMEOUT_MS: &str = "BURST_STATE_TIMEOUT_MS";

/// The state store chosen by the settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// Local files in `dir` ([`FileStore`]).
    File { dir: PathBuf },
    /// An Azure Blob Storage (or Azurite) container ([`BlobStore`]).
    Blob {
        /// The container URL without its query (safe to log).
        container: Url,
        auth: BlobAuth,
        /// Upper bound on one request, including connection setup.
        timeout: Duration,
    },
}

impl StoreConfig {
    /// Reads `BURST_STATE_URL` (and `BURST_STATE_TIMEOUT_MS` for blobs). `Ok(None)` when
    /// `BURST_STATE_URL` is unset or empty. Other schemes (`s3://`) are for other stores.
    pub fn from_settings(get: Get<'_>) -> Result<Option<StoreConfig>, ConfigError> {
        let settings = Settings::new(get);
        let Some(raw) = settings.string(STATE_URL) else {
            return Ok(None);
        };
        let url = Url::parse(&raw).map_err(|e| {
            invalid(format!(
                "not a valid URL ({e}); expected file:///absolute/dir or http(s)://host/container"
            ))
        })?;
        match url.scheme() {
            "file" => parse_file(&url).map(Some),
            "http" | "https" => {
                let timeout = settings.millis(
                    STATE_TIMEOUT_MS,
                    DEFAULT_TIMEOUT.as_millis() as u64,
                    1..=60_000,
                )?;
                parse_blob(url, timeout).map(Some)
            }
            other => Err(invalid(format!(
                "unsupported scheme {other:?}; expected file, http or https"
            ))),
        }
    }

    /// Whether opening this store needs the app's Azure credential (a container without SAS).
    pub fn needs_credential(&self) -> bool {
        matches!(
            self,
            StoreConfig::Blob {
                auth: BlobAuth::Token,
                ..
            }
        )
    }

    /// Builds the store; a container without SAS uses `credential` (the one the process shares
    /// with the ARM client).
    pub fn open(
        &self,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> Result<Arc<dyn StateStore>, ConfigError> {
        Ok(match self {
            StoreConfig::File { dir } => Arc::new(FileStore::new(dir.clone())),
            StoreConfig::Blob {
                container,
                auth: BlobAuth::Sas(sas),
                timeout,
            } => Arc::new(BlobStore::with_sas(
                container.clone(),
                sas.expose(),
                *timeout,
            )?),
            StoreConfig::Blob {
                container,
                auth: BlobAuth::Token,
                timeout,
            } => {
                let credential = credential.ok_or_else(|| {
                    invalid("an https container URL without a SAS needs the app's managed identity")
                })?;
                Arc::new(BlobStore::with_credential(
                    container.clone(),
                    credential,
                    *timeout,
                )?)
            }
        })
    }
}

/// Reads the settings and opens the store: `Ok(None)` when `BURST_STATE_URL` is not set.
pub fn from_settings(
    get: Get<'_>,
    credential: Option<Arc<dyn TokenCredential>>,
) -> Result<Option<Arc<dyn StateStore>>, ConfigError> {
    StoreConfig::from_settings(get)?
        .map(|config| config.open(credential))
        .transpose()
}

fn invalid(problem: impl Into<String>) -> ConfigError {
    ConfigError::new(STATE_URL, problem)
}

fn parse_file(url: &Url) -> Result<StoreConfig, ConfigError> {
    if !matches!(url.host_str(), None | Some("") | Some("localhost")) {
        return Err(invalid(
            "a file URL must name a local folder: file:///absolute/dir (no host)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a file URL takes no query or fragment"));
    }
    let dir = url
        .to_file_path()
        .map_err(|()| invalid("not a local absolute path: use file:///absolute/dir"))?;
    if dir.parent().is_none() {
        return Err(invalid("the state folder cannot be the root folder"));
    }
    Ok(StoreConfig::File { dir })
}

fn parse_blob(mut url: Url, timeout: Duration) -> Result<StoreConfig, ConfigError> {
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("a blob container URL needs a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("a blob container URL takes no user or password"));
    }
    if url.fragment().is_some() {
        return Err(invalid("a blob container URL takes no fragment"));
    }
    let segments: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let Some(container) = segments.last() else {
        return Err(invalid(
            "the URL names no container: expected http(s)://host/<container> (Azurite: http://host:port/<account>/<container>)",
        ));
    };
    if !valid_container(container) {
        return Err(invalid(
            "the container name must be 3-63 characters of a-z 0-9 - (starting with a letter or digit)",
        ));
    }
    // Normalise away a trailing slash so blob names are appended cleanly.
    url.set_path(&format!("/{}", segments.join("/")));
    let query = url.query().map(str::to_owned).filter(|q| !q.is_empty());
    url.set_query(None);
    let auth = match query {
        Some(q)
            if url::form_urlencoded::parse(q.as_bytes())
                .any(|(k, v)| k == "sig" && !v.is_empty()) =>
        {
            BlobAuth::Sas(Secret::new(q))
        }
        Some(_) => {
            return Err(invalid(
                "the query is not a SAS (no sig parameter); remove it to use managed identity",
            ));
        }
        None if url.scheme() != "https" => {
            return Err(invalid(
                "an http:// container URL needs a SAS query; managed identity needs https://",
            ));
        }
        None => BlobAuth::Token,
    };
    Ok(StoreConfig::Blob {
        container: url,
        auth,
        timeout,
    })
}

/// Azure's container naming rule.
pub fn valid_container(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}
