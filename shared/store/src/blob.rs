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
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use azure_storage_blob::models::{BlobClientDownloadOptions, BlockBlobClientUploadOptions};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use burst_ports::{Loaded, StateStore, StoreError, Versioned};
use url::Url;

use crate::config::ConfigError;
use crate::site::{MAX_DOCUMENT_BYTES, check_size, document_name};

/// Default upper bound on one blob request (connection, token and transfer included).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the blob store authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum BlobAuth {
    /// A shared access signature: the query string (without `?`) appended to every request.
    Sas(String),
    /// An Entra ID token from the app's managed identity (https only); `client_id` selects a
    /// user-assigned identity.
    ManagedIdentity { client_id: Option<String> },
}

impl fmt::Debug for BlobAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The signature is a secret: never print it.
            BlobAuth::Sas(_) => f.write_str("Sas(<redacted>)"),
            BlobAuth::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
        }
    }
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

    /// A store on `container` (a container URL without query) with the given authentication.
    pub fn new(container: Url, auth: &BlobAuth, timeout: Duration) -> Result<Self, ConfigError> {
        match auth {
            BlobAuth::Sas(query) => Self::with_sas(container, query, timeout),
            BlobAuth::ManagedIdentity { client_id } => {
                let mut options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    ..Default::default()
                };
                // The token request is bounded by the store's timeout like the blob request.
                options.client_options.retry = RetryOptions::none();
                let credential = ManagedIdentityCredential::new(Some(options))
                    .map_err(|e| ConfigError::Credential(e.to_string()))?;
                Self::with_credential(container, credential, timeout)
            }
        }
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

    async fn save(
        &self,
        site: &str,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> Result<String, StoreError> {
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
    ConfigError::Invalid {
        setting: crate::config::STATE_URL,
        reason: redact(&e.to_string(), secret),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn http_error(status: StatusCode, code: Option<&str>) -> azure_core::Error {
        azure_core::Error::new(
            ErrorKind::HttpResponse {
                status,
                error_code: code.map(str::to_owned),
                raw_response: None,
            },
            "service error",
        )
    }

    #[test]
    fn classifies_service_answers() {
        let c = |status, code| classify(Op::Save, "home", &http_error(status, code), None);
        assert_eq!(
            c(StatusCode::PreconditionFailed, Some("ConditionNotMet")),
            StoreError::Conflict
        );
        assert_eq!(
            c(StatusCode::Conflict, Some("BlobAlreadyExists")),
            StoreError::Conflict
        );
        assert_eq!(
            c(StatusCode::Conflict, Some("ContainerBeingDeleted")),
            StoreError::Unavailable("save of site home: HTTP 409 ContainerBeingDeleted".into())
        );
        assert_eq!(
            c(StatusCode::Forbidden, Some("AuthenticationFailed")),
            StoreError::Refused("save of site home: HTTP 403 AuthenticationFailed".into())
        );
        assert_eq!(
            c(StatusCode::Unauthorized, None),
            StoreError::Refused("save of site home: HTTP 401".into())
        );
        assert_eq!(
            c(StatusCode::NotFound, Some("BlobNotFound")),
            StoreError::Conflict
        );
        assert_eq!(
            c(StatusCode::NotFound, Some("ContainerNotFound")),
            StoreError::Refused("save of site home: HTTP 404 ContainerNotFound".into())
        );
        assert_eq!(
            c(StatusCode::TooManyRequests, None),
            StoreError::Unavailable("save of site home: HTTP 429".into())
        );
        assert_eq!(
            c(StatusCode::ServiceUnavailable, Some("ServerBusy")),
            StoreError::Unavailable("save of site home: HTTP 503 ServerBusy".into())
        );
        assert_eq!(
            c(StatusCode::BadRequest, Some("InvalidHeaderValue")),
            StoreError::Refused("save of site home: HTTP 400 InvalidHeaderValue".into())
        );
    }

    #[test]
    fn missing_blob_is_none_but_missing_container_is_not() {
        assert!(is_blob_not_found(&http_error(
            StatusCode::NotFound,
            Some("BlobNotFound")
        )));
        assert!(is_blob_not_found(&http_error(StatusCode::NotFound, None)));
        assert!(!is_blob_not_found(&http_error(
            StatusCode::NotFound,
            Some("ContainerNotFound")
        )));
        assert!(!is_blob_not_found(&http_error(StatusCode::Forbidden, None)));
    }

    #[test]
    fn transport_errors_are_unavailable_and_scrubbed() {
        let sas = "sv=2025-11-05&sig=QUJD%2BREVG";
        let e = azure_core::Error::with_message(
            ErrorKind::Io,
            format!("error sending request for url (http://127.0.0.1:1/a/c/home.json?{sas})"),
        );
        let got = classify(Op::Load, "home", &e, Some(sas));
        let StoreError::Unavailable(msg) = got else {
            panic!("{got:?}")
        };
        assert!(!msg.contains("QUJD"), "{msg}");
        assert!(msg.starts_with("load of site home: "), "{msg}");

        let credential = azure_core::Error::with_message(ErrorKind::Credential, "no identity");
        assert!(matches!(
            classify(Op::Load, "home", &credential, None),
            StoreError::Refused(_)
        ));
    }

    #[test]
    fn redact_scrubs_every_signature() {
        assert_eq!(
            redact("a?sv=1&sig=abc&x=1 b sig=def) c", None),
            "a?sv=1&sig=<redacted>&x=1 b sig=<redacted>) c"
        );
        assert_eq!(
            redact("url ?sv=1&sig=zz end", Some("sv=1&sig=zz")),
            "url ?<redacted> end"
        );
        assert_eq!(redact("sig=", None), "sig=<redacted>");
    }

    #[test]
    fn debug_never_shows_the_sas() {
        let url = Url::parse("http://127.0.0.1:10000/devstoreaccount1/state")
            .unwrap_or_else(|e| panic!("{e}"));
        let store = BlobStore::with_sas(url, "sv=1&sig=c2VjcmV0", DEFAULT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        let debug = format!("{store:?}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
        assert_eq!(
            store.container_url(),
            "http://127.0.0.1:10000/devstoreaccount1/state"
        );
        assert!(!format!("{:?}", BlobAuth::Sas("sig=c2VjcmV0".into())).contains("c2VjcmV0"));
    }
}
