//! The devices API client: counts the on-prem devices (those carrying a configured tag) and how
//! many of them are connected to Tailscale's control server. Implements
//! [`burst_ports::DeviceList`]; every failure is `DevicesProbe::Unknown` (Unknown is not Down).
//!
//! Tag filtering: the API's `tags=` filter is an exact-match filter and several filters are
//! ANDed (`tags=a&tags=b` = devices with both). With one configured tag the filter is sent (less
//! data); with several, the list is fetched unfiltered and the OR is done here. Either way the
//! answer is filtered here too, so a server that ignored the filter cannot inflate the count.

use crate::config::{Auth, ConfigError, Secret, TailscaleConfig};
use async_trait::async_trait;
use burst_core::DevicesProbe;
use burst_ports::DeviceList;
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Refresh an OAuth token this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Longest part of an error body kept in a detail.
const BODY_SNIPPET: usize = 200;

/// One device, as much as the probe needs. Every field is optional: the API omits some
/// (`lastSeen` when connected, `tags` when untagged) and has changed shapes before.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub connected_to_control: Option<bool>,
    /// Omitted while connected (and for devices never seen).
    #[serde(default)]
    pub last_seen: Option<String>,
    #[serde(default)]
    pub is_ephemeral: Option<bool>,
    #[serde(default)]
    pub authorized: Option<bool>,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub key_expiry_disabled: Option<bool>,
    #[serde(default)]
    pub addresses: Option<Vec<String>>,
}

impl Device {
    /// Whether the device carries any of `tags`.
    pub fn has_any_tag(&self, tags: &[String]) -> bool {
        self.tags
            .as_ref()
            .is_some_and(|own| own.iter().any(|t| tags.contains(t)))
    }

    /// `connectedToControl == true` (absent counts as not connected).
    pub fn online(&self) -> bool {
        self.connected_to_control == Some(true)
    }
}

#[derive(Debug, Deserialize)]
struct DeviceListBody {
    devices: Vec<Device>,
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Why the device list could not be read. Every variant becomes `DevicesProbe::Unknown`; the
/// next probe tries again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DevicesError {
    /// No answer (timeout, refused, DNS): Tailscale's API or our path to it is down.
    #[error("Tailscale API unreachable: {0}")]
    Unreachable(String),
    /// Our credentials were refused (401/403): fix the API key or OAuth client and its scope.
    #[error("Tailscale API refused our credentials: HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    /// Any other HTTP error (404 tailnet, 429, 5xx).
    #[error("Tailscale API answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    /// The OAuth token endpoint did not give a token.
    #[error("OAuth token request failed: {0}")]
    Token(String),
    /// The answer was not the expected JSON.
    #[error("unexpected answer from the Tailscale API: {0}")]
    Malformed(String),
}

#[derive(Debug)]
struct CachedToken {
    token: Secret,
    expires_at: Instant,
}

/// Reads the tailnet's device list.
#[derive(Debug)]
pub struct TailscaleDevices {
    http: reqwest::Client,
    config: TailscaleConfig,
    token: Mutex<Option<CachedToken>>,
}

fn snippet(bytes: &[u8]) -> String {
    // Tailscale errors are `{"message": "..."}`; OAuth errors `{"error", "error_description"}`.
    let json: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
    let from_json = json.as_ref().and_then(|j| {
        j.get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .or_else(|| {
                let e = j.get("error")?.as_str()?;
                Some(match j.get("error_description").and_then(|d| d.as_str()) {
                    Some(d) => format!("{e}: {d}"),
                    None => e.to_string(),
                })
            })
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(bytes).trim().to_string());
    let mut out: String = text.chars().take(BODY_SNIPPET).collect();
    if text.chars().count() > BODY_SNIPPET {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("(empty body)");
    }
    out
}

fn transport(error: reqwest::Error, timeout: Duration) -> DevicesError {
    let error = error.without_url();
    let mut detail = if error.is_timeout() {
        format!("timed out after {} ms", timeout.as_millis())
    } else if error.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(&error);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    DevicesError::Unreachable(detail)
}

impl TailscaleDevices {
    /// Fails only when the HTTP client cannot be built (TLS initialisation failed).
    pub fn new(config: TailscaleConfig) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // Credentials must not follow a redirect; retries are the next probe's job.
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .user_agent(concat!("hybrid-burst/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ConfigError::new("the Tailscale HTTP client", e.without_url().to_string())
            })?;
        Ok(TailscaleDevices {
            http,
            config,
            token: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &TailscaleConfig {
        &self.config
    }

    /// `GET {base}/api/v2/tailnet/{tailnet}/devices[?tags=...]`, with the default fields:
    /// `connectedToControl` and `lastSeen` are among them (`fields=default` leaves out only
    /// `enabledRoutes`, `advertisedRoutes`, `clientConnectivity` and `postureIdentity`: the
    /// Tailscale API reference, `publicapi/device.md` in tailscale/tailscale and the OpenAPI
    /// spec in tailscale/tailscale-client-go-v2), so `fields=all` would only fetch more.
    pub fn devices_url(&self) -> Result<url::Url, DevicesError> {
        let mut url = url::Url::parse(&self.config.api_url)
            .map_err(|_| DevicesError::Malformed("the API URL does not parse".into()))?;
        url.path_segments_mut()
            .map_err(|_| DevicesError::Malformed("the API URL cannot have a path".into()))?
            .pop_if_empty()
            .extend(["api", "v2", "tailnet", &self.config.tailnet, "devices"]);
        if let [tag] = self.config.tags.as_slice() {
            url.query_pairs_mut().append_pair("tags", tag);
        }
        Ok(url)
    }

    fn token_url(&self) -> String {
        format!("{}/api/v2/oauth/token", self.config.api_url)
    }

    /// A valid OAuth access token, from the cache or freshly requested.
    async fn oauth_token(
        &self,
        client_id: &str,
        client_secret: &Secret,
    ) -> Result<Secret, DevicesError> {
        let mut cache = self.token.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() + TOKEN_MARGIN < cached.expires_at
        {
            return Ok(cached.token.clone());
        }
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", client_id)
            .append_pair("client_secret", client_secret.expose())
            .append_pair("grant_type", "client_credentials")
            .finish();
        let response = self
            .http
            .post(self.token_url())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| DevicesError::Token(transport(e, self.config.timeout).to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| DevicesError::Token(transport(e, self.config.timeout).to_string()))?;
        if status != 200 {
            return Err(DevicesError::Token(format!(
                "HTTP {status}: {}",
                snippet(&bytes)
            )));
        }
        let body: TokenBody = serde_json::from_slice(&bytes)
            .map_err(|e| DevicesError::Token(format!("unexpected token response: {e}")))?;
        if body.access_token.is_empty() {
            return Err(DevicesError::Token("empty access_token".into()));
        }
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(3600));
        let token = Secret::new(body.access_token);
        *cache = Some(CachedToken {
            token: token.clone(),
            expires_at: Instant::now() + lifetime,
        });
        Ok(token)
    }

    async fn get_devices(&self, url: &url::Url) -> Result<(u16, Vec<u8>), DevicesError> {
        let request = self
            .http
            .get(url.as_str())
            .header(reqwest::header::ACCEPT, "application/json");
        let request = match &self.config.auth {
            Auth::ApiKey(key) => request.basic_auth(key.expose(), Some("")),
            Auth::OAuth {
                client_id,
                client_secret,
            } => request.bearer_auth(self.oauth_token(client_id, client_secret).await?.expose()),
        };
        let response = request
            .send()
            .await
            .map_err(|e| transport(e, self.config.timeout))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| transport(e, self.config.timeout))?;
        Ok((status, body.to_vec()))
    }

    /// Every device in the answer (before tag filtering).
    pub async fn list_all(&self) -> Result<Vec<Device>, DevicesError> {
        let url = self.devices_url()?;
        let (mut status, mut body) = self.get_devices(&url).await?;
        if status == 401 && matches!(self.config.auth, Auth::OAuth { .. }) {
            // The cached token may have been revoked or expired early: get a new one, once.
            *self.token.lock().await = None;
            (status, body) = self.get_devices(&url).await?;
        }
        match status {
            200 => serde_json::from_slice::<DeviceListBody>(&body)
                .map(|b| b.devices)
                .map_err(|e| DevicesError::Malformed(e.to_string())),
            401 | 403 => Err(DevicesError::Refused {
                status,
                message: snippet(&body),
            }),
            _ => Err(DevicesError::Status {
                status,
                message: snippet(&body),
            }),
        }
    }

    /// The on-prem devices: those carrying any configured tag.
    pub async fn on_prem(&self) -> Result<Vec<Device>, DevicesError> {
        let tags = &self.config.tags;
        Ok(self
            .list_all()
            .await?
            .into_iter()
            .filter(|d| d.has_any_tag(tags))
            .collect())
    }
}

/// Counts `(online, total)` among devices carrying any of `tags`.
pub fn count(devices: &[Device], tags: &[String]) -> (u32, u32) {
    let mut online = 0u32;
    let mut total = 0u32;
    for d in devices.iter().filter(|d| d.has_any_tag(tags)) {
        total = total.saturating_add(1);
        if d.online() {
            online = online.saturating_add(1);
        }
    }
    (online, total)
}

#[async_trait]
impl DeviceList for TailscaleDevices {
    async fn observe(&self) -> DevicesProbe {
        match self.list_all().await {
            Ok(devices) => {
                let (online, total) = count(&devices, &self.config.tags);
                tracing::debug!(online, total, "tailscale devices");
                DevicesProbe::Seen { online, total }
            }
            Err(e) => {
                tracing::warn!(error = %e, "tailscale device list unavailable");
                DevicesProbe::Unknown {
                    detail: e.to_string(),
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A device list answer in the API's shape (the first device with every field, as with
    /// `fields=all`; the others with fewer), trimmed to a few devices.
    const LIST: &str = r#"{"devices":[
      {"addresses":["100.64.0.1","fd7a:115c:a1e0::1"],"id":"92960230381","nodeId":"nAAA1CNTRL","user":"tagged-devices",
       "name":"cp-1.tail1234.ts.net","hostname":"cp-1","clientVersion":"1.90.0","updateAvailable":false,"os":"linux",
       "created":"2025-01-01T00:00:00Z","connectedToControl":true,"keyExpiryDisabled":true,"expires":"0001-01-01T00:00:00Z",
       "authorized":true,"isExternal":false,"machineKey":"mkey:1","nodeKey":"nodekey:1","blocksIncomingConnections":false,
       "enabledRoutes":[],"advertisedRoutes":[],"clientConnectivity":{"endpoints":[],"mappingVariesByDestIP":false,"latency":{},
       "clientSupports":{"hairPinning":null,"ipv6":false,"pcp":false,"pmp":false,"udp":true,"upnp":false}},
       "tags":["tag:onprem","tag:k8s"],"tailnetLockError":"","tailnetLockKey":"tlpub:1","isEphemeral":false},
      {"addresses":["100.64.0.2"],"id":"92960230382","nodeId":"nAAA2CNTRL","hostname":"worker-1","name":"worker-1.tail1234.ts.net",
       "connectedToControl":false,"lastSeen":"2026-01-10T11:59:00Z","tags":["tag:onprem"],"authorized":true},
      {"addresses":["100.64.0.3"],"id":"92960230383","nodeId":"nAAA3CNTRL","hostname":"laptop","name":"laptop.tail1234.ts.net",
       "connectedToControl":true,"user":"amelie@example.com"},
      {"nodeId":"nAAA4CNTRL","hostname":"nas","tags":["tag:home"]}
    ]}"#;

    #[test]
    fn parses_real_shapes_and_counts_tagged_devices() {
        let devices: Vec<Device> = serde_json::from_str::<DeviceListBody>(LIST)
            .unwrap()
            .devices;
        assert_eq!(devices.len(), 4);
        assert_eq!(devices[0].last_seen, None);
        assert_eq!(
            devices[1].last_seen.as_deref(),
            Some("2026-01-10T11:59:00Z")
        );
        assert_eq!(devices[2].tags, None);
        assert_eq!(devices[3].connected_to_control, None);

        let onprem = vec!["tag:onprem".to_string()];
        assert_eq!(count(&devices, &onprem), (1, 2));
        let both = vec!["tag:onprem".to_string(), "tag:home".to_string()];
        // The NAS has no connectedToControl: not counted as online.
        assert_eq!(count(&devices, &both), (1, 3));
        assert_eq!(count(&devices, &["tag:none".to_string()]), (0, 0));
    }

    #[test]
    fn snippets_of_error_bodies() {
        assert_eq!(
            snippet(br#"{"message":"API token invalid"}"#),
            "API token invalid"
        );
        assert_eq!(
            snippet(br#"{"error":"invalid_client","error_description":"bad secret"}"#),
            "invalid_client: bad secret"
        );
        assert_eq!(snippet(b""), "(empty body)");
        assert_eq!(
            snippet("x".repeat(500).as_bytes()).chars().count(),
            BODY_SNIPPET + 1
        );
    }

    #[test]
    fn url_has_default_fields_and_a_single_tag_filter() {
        let mut config = TailscaleConfig::new(Auth::ApiKey(Secret::new("k")));
        config.api_url = "http://127.0.0.1:9/prefix".into();
        config.tailnet = "user@example.com".into();
        let client = TailscaleDevices::new(config.clone()).unwrap();
        assert_eq!(
            client.devices_url().unwrap().as_str(),
            "http://127.0.0.1:9/prefix/api/v2/tailnet/user@example.com/devices?tags=tag%3Aonprem"
        );
        config.api_url = "https://api.tailscale.com".into();
        config.tailnet = "-".into();
        config.tags = vec!["tag:a".into(), "tag:b".into()];
        let client = TailscaleDevices::new(config).unwrap();
        assert_eq!(
            client.devices_url().unwrap().as_str(),
            "https://api.tailscale.com/api/v2/tailnet/-/devices"
        );
    }
}
