//! The Azure Blob Storage store (also Azurite): one block blob per site, `<site>.json`, with
//! compare-and-swap on the blob's ETag.
//!
//! - load: `GET` the blob → bytes and `ETag`; 404 → `None`.
//! - save: `PUT` the blob with `If-Match: <etag>`, or `If-None-Match: *` to create; the loser of
//!   a race gets 412 `ConditionNotMet` (409 `BlobAlreadyExists` on create) → `Conflict`.
//!
//! The SDK's retry policy is switched off: a function must never sleep out a throttle or an
//! outage (the SDK would also honour a server's `Retry-After`, which can be long). Each request
//! is bounded by a timeout (default [`DEFAULT_TIMEOUT`]); any failure comes back at once as
//! `Unavailable`, and the next invocation (the probe timer at the latest) tries again.
//! Error messages never carry the SAS.

use std::fmt;
use std::num::NonZero;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::Bytes;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{Etag, RequestContent, RetryOptions, StatusCode};
use azure_storage_blob::models::{BlobClientDownloadOptions, BlockBlobClientUploadOptions};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use burst_ports::{Loaded, Saved, StateStore, StoreError, Versioned};
use url::Url;

use crate::site::{MAX_DOCUMENT_BYTES, check_size, document_name};
use burst_settings::{ConfigError, Secret};

/// Default upper bound on one blob request (connection, token and transfer included).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the blob store authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobAuth {
    /// A shared access signature: the query string (without `?`) appended to every request.
    Sas(Secret),
    /// An Entra ID token from the app's credential (https only), shared with the ARM client.
    Token,
}

/// Per-site state documents in an Azure Blob Storage container.
pub struct BlobStore {
    container: BlobContainerClient,
    /// The container URL without its query, for messages.
    display: String,
    /// The SAS query, to scrub from error messages that quote the request URL.
    secret: Option<String>,
    timeout: Duration,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore")
            .field("container", &self.display)
            .field("sas", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl BlobStore {
    /// GET of the document; with `known`, `If-None-Match` (a 304 downloads nothing).
    async fn download(&self, site: &str, known: Option<&str>) -> Result<Loaded, StoreError> {
        let name = document_name(site)?;
        let blob = self.container.blob_client(&name);
        let what = format!("load of {name} from {}", self.display);
        self.bounded(&what, async {
            let options = BlobClientDownloadOptions {
                parallel: NonZero::new(1),
                if_none_match: known.map(|k| Etag::from(k.to_string())),
                ..Default::default()
            };
            let response = match blob.download(Some(options)).await {
                Ok(r) => r,
                Err(e) if is_blob_not_found(&e) => return Ok(Loaded::Absent),
                Err(e) if is_not_modified(&e) => return Ok(Loaded::Unchanged),
                Err(e) => return Err(self.classify(Op::Load, site, &e)),
            };
            let etag = response.properties.etag.map(|t| t.to_string());
            let bytes = response
                .body
                .collect()
                .await
                .map_err(|e| self.classify(Op::Load, site, &e))?;
            let etag = etag.ok_or_else(|| {
                StoreError::Unavailable(format!("{what}: the response had no ETag"))
            })?;
            Ok(Loaded::Changed(Versioned {
                bytes: bytes.to_vec(),
                etag,
            }))
        })
        .await
    }

    /// A store authenticated by a SAS query string (`sv=…&sig=…`, without `?`).
    pub fn with_sas(mut container: Url, sas: &str, timeout: Duration) -> Result<Self, ConfigError> {
        let display = without_query(&container);
        container.set_query(Some(sas.trim_start_matches('?')));
        let secret = container.query().map(str::to_owned);
        let client = BlobContainerClient::new(container, None, Some(client_options()))
            .map_err(|e| invalid_url(&e, secret.as_deref()))?;
        Ok(Self {
            container: client,
            display,
            secret,
            timeout,
        })
    }

    /// A store authenticated by any token credential (https only), e.g. one shared with the
    /// ARM client.
    pub fn with_credential(
        container: Url,
        credential: Arc<dyn TokenCredential>,
        timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let display = without_query(&container);
        let client = BlobContainerClient::new(container, Some(credential), Some(client_options()))
            .map_err(|e| invalid_url(&e, None))?;
        Ok(Self {
            container: client,
            display,
            secret: None,
            timeout,
        })
    }

    /// The container URL without any SAS.
    pub fn container_url(&self) -> &str {
        &self.display
    }

    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "{what} timed out after {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    fn classify(&self, op: Op, site: &str, e: &azure_core::Error) -> StoreError {
        classify(op, site, e, self.secret.as_deref())
    }
}

#[async_trait]
impl StateStore for BlobStore {
    async fn load(&self, site: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(match self.download(site, None).await? {
            Loaded::Changed(v) => Some(v),
            Loaded::Absent | Loaded::Unchanged => None,
        })
    }

    async fn load_if_changed(&self, site: &str, known: &str) -> Result<Loaded, StoreError> {
        self.download(site, Some(known)).await
    }

    async fn save(&self, site: &str, bytes: &[u8], expected: Option<&str>) -> Saved {
        let name = document_name(site)?;
        check_size(bytes)?;
        let blob = self.container.blob_client(&name).block_blob_client();
        let what = format!("save of {name} to {}", self.display);
        let mut options = BlockBlobClientUploadOptions {
            blob_content_type: Some("application/json".into()),
            parallel: NonZero::new(1),
            // One `Put Blob` request, never a staged block list: documents are small and the
            // condition must apply to a single write.
            partition_size: NonZero::new(MAX_DOCUMENT_BYTES as u64),
            ..Default::default()
        };
        options = match expected {
            None => options.if_not_exists(),
            Some(etag) => BlockBlobClientUploadOptions {
                if_match: Some(Etag::from(etag)),
                ..options
            },
        };
        let content: RequestContent<Bytes, _> = Bytes::copy_from_slice(bytes).into();
        self.bounded(&what, async {
            let result = blob
                .upload(content, Some(options))
                .await
                .map_err(|e| self.classify(Op::Save, site, &e))?;
            result
                .etag
                .map(|t| t.to_string())
                .ok_or_else(|| StoreError::Unavailable(format!("{what}: the response had no ETag")))
        })
        .await
    }
}

fn client_options() -> BlobContainerClientOptions {
    let mut options = BlobContainerClientOptions::default();
    options.client_options.retry = RetryOptions::none();
    options
}

fn without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

fn invalid_url(e: &azure_core::Error, secret: Option<&str>) -> ConfigError {
    ConfigError::new(crate::config::STATE_URL, redact(&e.to_string(), secret))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Load,
    Save,
}

fn is_not_modified(e: &azure_core::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::HttpResponse {
            status: StatusCode::NotModified,
            ..
        }
    )
}

fn is_blob_not_found(e: &azure_core::Error) -> bool {
    match e.kind() {
        ErrorKind::HttpResponse {
            status: StatusCode::NotFound,
            error_code,
            ..
        } => error_code.as_deref() != Some("ContainerNotFound"),
        _ => false,
    }
}

/// Maps an SDK error to what the caller should do (see [`StoreError`]).
fn classify(op: Op, site: &str, e: &azure_core::Error, secret: Option<&str>) -> StoreError {
    let what = match op {
        Op::Load => "load",
        Op::Save => "save",
    };
    match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => {
            let code = error_code.as_deref().unwrap_or("");
            let n = u16::from(*status);
            let msg = format!("{what} of site {site}: HTTP {n} {code}")
                .trim_end()
                .to_owned();
            match n {
                412 => StoreError::Conflict,
                409 if code == "BlobAlreadyExists" => StoreError::Conflict,
                // A conditional write to a blob that was deleted since it was read.
                404 if op == Op::Save && code == "BlobNotFound" => StoreError::Conflict,
                // Missing container, bad SAS, no role assignment, a version the service does
                // not speak: the owner has to fix the setup.
                401 | 403 | 404 => StoreError::Refused(msg),
                408 | 409 | 429 | 500..=599 => StoreError::Unavailable(msg),
                _ => StoreError::Refused(msg),
            }
        }
        ErrorKind::Credential => StoreError::Refused(format!(
            "{what} of site {site}: no token for the storage account: {}",
            redact(&e.to_string(), secret)
        )),
        _ => StoreError::Unavailable(format!(
            "{what} of site {site}: {}",
            redact(&e.to_string(), secret)
        )),
    }
}

/// Removes the SAS query and any `sig=` value from a message (transport errors quote the URL).
fn redact(message: &str, secret: Option<&str>) -> String {
    let mut out = match secret {
        Some(s) if !s.is_empty() => message.replace(s, "<redacted>"),
        _ => message.to_owned(),
    };
    let mut from = 0;
    while let Some(pos) = out[from..].find("sig=") {
        let start = from + pos + 4;
        let end = out[start..]
            .find(|c: char| c == '&' || c == ')' || c == '"' || c.is_whitespace())
            .map_or(out.len(), |i| start + i);
        out.replace_range(start..end, "<redacted>");
        from = start + "<redacted>".len();
    }
    out
}
