//! Bearer tokens for ARM (`https://management.azure.com/`), cached until shortly before expiry.
//!
//! Two sources: the managed identity endpoint that App Service / Azure Functions put in
//! `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, and a service principal's client secret
//! (client credentials grant) for runs outside Azure.
//!
//! Hand-written with reqwest rather than `azure_identity`: the token endpoints must be plain
//! configurable base URLs so the simulated cloud can stand in for them, the settings come
//! through the adapter's `from_settings` (not from the process environment), and the SDK's
//! pipeline retries with sleeps — a function must answer quickly and never sleep out a
//! back-off. The protocol is two small HTTP calls, so owning it costs little.
//!
//! Tokens and secrets are never logged: [`Secret`] hides them in `Debug`, and error details
//! carry only what the token endpoint said about the failure.

use crate::http_util::{read_body_capped, short_text};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

/// The audience of ARM tokens (managed identity `resource`).
pub const ARM_RESOURCE: &str = "https://management.azure.com/";
/// The scope of ARM tokens (client credentials `scope`).
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// The managed identity protocol version App Service / Functions speak.
pub const IDENTITY_API_VERSION: &str = "2019-08-01";
/// Where service principal tokens come from unless `BURST_AZURE_AUTHORITY` says otherwise.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// A cached token is replaced this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A string that must not appear in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The value, for putting on the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where tokens come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// App Service / Functions managed identity.
    ManagedIdentity {
        /// `IDENTITY_ENDPOINT`, e.g. `http://127.0.0.1:41234/msi/token`.
        endpoint: Url,
        /// `IDENTITY_HEADER`, sent as `X-IDENTITY-HEADER`.
        header: Secret,
        /// `AZURE_CLIENT_ID` for a user-assigned identity; `None` = system-assigned.
        client_id: Option<String>,
    },
    /// A service principal with a client secret (outside Azure).
    ServicePrincipal {
        /// `BURST_AZURE_AUTHORITY`, default `https://login.microsoftonline.com`.
        authority: Url,
        tenant_id: String,
        client_id: String,
        client_secret: Secret,
    },
}

impl Credential {
    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::ManagedIdentity { .. } => "managed identity",
            Credential::ServicePrincipal { .. } => "service principal",
        }
    }
}

/// Why no token could be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint could not be reached, timed out or answered 5xx/429: try again later.
    #[error("{source_kind} token endpoint unavailable: {detail}")]
    Unavailable {
        source_kind: &'static str,
        detail: String,
    },
    /// The token endpoint refused (4xx: wrong header, secret, tenant, client id): a
    /// configuration or permission problem; tell the owner, retrying will not help.
    #[error("{source_kind} token request refused (HTTP {status}): {detail}")]
    Refused {
        source_kind: &'static str,
        status: u16,
        detail: String,
    },
    /// The endpoint answered 200 with something that is not a token: tell the owner (wrong
    /// endpoint URL?).
    #[error("{source_kind} token endpoint answered something unexpected: {detail}")]
    Malformed {
        source_kind: &'static str,
        detail: String,
    },
}

#[derive(Debug)]
struct Cached {
    token: AccessToken,
    refresh_at: SystemTime,
}

/// When to replace a token fetched at `fetched`: `margin` before expiry, or halfway through
/// its life if it lives less than twice the margin (so a short-lived token is still reused a
/// little instead of being fetched again for every call).
fn refresh_at(fetched: SystemTime, expires_at: SystemTime, margin: Duration) -> SystemTime {
    let life = expires_at.duration_since(fetched).unwrap_or_default();
    if life > margin * 2 {
        expires_at - margin
    } else {
        fetched + life / 2
    }
}

/// A bearer token and when it stops working.
#[derive(Clone, Debug)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_at: SystemTime,
}

/// Hands out ARM tokens, fetching a new one only when the cached one is within
/// [`REFRESH_MARGIN`] of expiry (halfway through the life of a token that lives less than
/// twice that), or was dropped after a 401.
#[derive(Debug)]
pub struct TokenSource {
    http: reqwest::Client,
    credential: Credential,
    margin: Duration,
    // An async mutex held across the fetch: concurrent callers share one token request.
    cache: tokio::sync::Mutex<Option<Cached>>,
}

impl TokenSource {
    /// A token source over its own HTTP client (timeout per request, no retries).
    pub fn new(credential: Credential, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self::with_client(
            crate::http_util::client(timeout)?,
            credential,
        ))
    }

    /// A token source over a given HTTP client.
    pub fn with_client(http: reqwest::Client, credential: Credential) -> Self {
        Self {
            http,
            credential,
            margin: REFRESH_MARGIN,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// A valid token: the cached one while it has more than the margin left, else a new one.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        let mut cache = self.cache.lock().await;
        let now = SystemTime::now();
        if let Some(c) = cache.as_ref()
            && now < c.refresh_at
            && now < c.token.expires_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch().await?;
        *cache = Some(Cached {
            refresh_at: refresh_at(now, fresh.expires_at, self.margin),
            token: fresh.clone(),
        });
        Ok(fresh)
    }

    /// Drops the cached token (ARM said 401: it was revoked or expired early).
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let kind = self.credential.kind();
        let request = match &self.credential {
            Credential::ManagedIdentity {
                endpoint,
                header,
                client_id,
            } => {
                let mut url = endpoint.clone();
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("resource", ARM_RESOURCE);
                    q.append_pair("api-version", IDENTITY_API_VERSION);
                    if let Some(id) = client_id {
                        q.append_pair("client_id", id);
                    }
                }
                self.http
                    .get(url)
                    .header("X-IDENTITY-HEADER", header.expose())
            }
            Credential::ServicePrincipal {
                authority,
                tenant_id,
                client_id,
                client_secret,
            } => {
                let url = format!(
                    "{}/{}/oauth2/v2.0/token",
                    authority.as_str().trim_end_matches('/'),
                    tenant_id
                );
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("client_id", client_id)
                    .append_pair("client_secret", client_secret.expose())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("scope", ARM_SCOPE)
                    .finish();
                self.http
                    .post(url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body)
            }
        };
        let resp = request
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| TokenError::Unavailable {
                source_kind: kind,
                detail: crate::http_util::describe_transport(&e),
            })?;
        let status = resp.status();
        let body = read_body_capped(resp)
            .await
            .map_err(|detail| TokenError::Unavailable {
                source_kind: kind,
                detail,
            })?;
        if !status.is_success() {
            let detail = token_error_detail(&body);
            return Err(
                if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    TokenError::Unavailable {
                        source_kind: kind,
                        detail: format!("HTTP {}: {detail}", status.as_u16()),
                    }
                } else {
                    TokenError::Refused {
                        source_kind: kind,
                        status: status.as_u16(),
                        detail,
                    }
                },
            );
        }
        let now = SystemTime::now();
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| TokenError::Malformed {
                source_kind: kind,
                // serde's message names the field, never the token value.
                detail: e.to_string(),
            })?;
        let expires_at = match (parsed.expires_on, parsed.expires_in) {
            (Some(on), _) => UNIX_EPOCH + Duration::from_secs(on),
            (None, Some(secs)) => now + Duration::from_secs(secs),
            (None, None) => {
                return Err(TokenError::Malformed {
                    source_kind: kind,
                    detail: "no expires_on or expires_in".into(),
                });
            }
        };
        if parsed.access_token.is_empty() {
            return Err(TokenError::Malformed {
                source_kind: kind,
                detail: "empty access_token".into(),
            });
        }
        if let Some(tt) = &parsed.token_type
            && !tt.eq_ignore_ascii_case("bearer")
        {
            return Err(TokenError::Malformed {
                source_kind: kind,
                detail: format!("token_type {} is not Bearer", short_text(tt)),
            });
        }
        tracing::debug!(source = kind, "fetched an ARM token");
        Ok(AccessToken {
            token: Secret::new(parsed.access_token),
            expires_at,
        })
    }
}

/// The token response of either endpoint: managed identity sends `expires_on` (epoch seconds,
/// as a string), client credentials send `expires_in` (seconds, a number). Both are accepted
/// as numbers or strings.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default, deserialize_with = "opt_u64_lenient")]
    expires_on: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64_lenient")]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

fn opt_u64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        U(u64),
        S(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::U(n)) => Ok(Some(n)),
        Some(N::S(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("not a number of seconds")),
    }
}

/// What a token endpoint said about a failure: AAD's `error` + `error_description`, or the
/// App Service identity endpoint's `message`, else the start of the body.
fn token_error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Err {
        #[serde(default)]
        error: Option<serde_json::Value>,
        #[serde(default)]
        error_description: Option<String>,
        #[serde(default, alias = "Message")]
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_slice::<Err>(body) {
        let code = match &e.error {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Object(o)) => {
                o.get("code").and_then(|c| c.as_str()).map(str::to_string)
            }
            _ => None,
        };
        let text = e.error_description.or(e.message);
        match (code, text) {
            (Some(c), Some(t)) => return short_text(&format!("{c}: {t}")),
            (Some(c), None) => return short_text(&c),
            (None, Some(t)) => return short_text(&t),
            (None, None) => {}
        }
    }
    if body.is_empty() {
        "empty body".into()
    } else {
        short_text(&String::from_utf8_lossy(body))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_response_shapes() {
        let mi: TokenResponse = serde_json::from_str(
            r#"{"access_token":"eyJ0eXAi...","expires_on":"1586984735","resource":"https://management.azure.com/","token_type":"Bearer","client_id":"5E29463D-71DA-4FE0-8E69-999B57DB23B0"}"#,
        )
        .unwrap();
        assert_eq!(mi.expires_on, Some(1_586_984_735));
        let mi_num: TokenResponse =
            serde_json::from_str(r#"{"access_token":"t","expires_on":1586984735}"#).unwrap();
        assert_eq!(mi_num.expires_on, Some(1_586_984_735));
        let sp: TokenResponse = serde_json::from_str(
            r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"t"}"#,
        )
        .unwrap();
        assert_eq!(sp.expires_in, Some(3599));
        let sp_str: TokenResponse =
            serde_json::from_str(r#"{"access_token":"t","expires_in":"3599"}"#).unwrap();
        assert_eq!(sp_str.expires_in, Some(3599));
        assert!(
            serde_json::from_str::<TokenResponse>(r#"{"access_token":"t","expires_in":"soon"}"#)
                .is_err()
        );
    }

    #[test]
    fn error_details_never_need_the_body_verbatim() {
        assert_eq!(
            token_error_detail(
                br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#
            ),
            "invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(
            token_error_detail(br#"{"statusCode":400,"message":"No X-IDENTITY-HEADER header"}"#),
            "No X-IDENTITY-HEADER header"
        );
        assert_eq!(token_error_detail(b""), "empty body");
    }

    #[test]
    fn refresh_margin() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let m = REFRESH_MARGIN;
        // A one-hour token is replaced five minutes before it expires.
        assert_eq!(
            refresh_at(t0, t0 + Duration::from_secs(3600), m),
            t0 + Duration::from_secs(3300)
        );
        // A short-lived one halfway through.
        assert_eq!(
            refresh_at(t0, t0 + Duration::from_secs(200), m),
            t0 + Duration::from_secs(100)
        );
        // An already expired one at once.
        assert_eq!(refresh_at(t0, t0 - Duration::from_secs(5), m), t0);
    }

    #[test]
    fn secret_debug_is_redacted() {
        let c = Credential::ServicePrincipal {
            authority: Url::parse(DEFAULT_AUTHORITY).unwrap(),
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: Secret::new("hunter2"),
        };
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("Secret(***)"));
    }
}
