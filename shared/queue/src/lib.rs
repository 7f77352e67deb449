//! Scheduled wake-ups in an Azure Storage queue (also Azurite).
//!
//! A wake-up is one message `{"site","at"}` sent with a visibility timeout: the queue keeps it
//! invisible until the deadline, then the Functions host's queue trigger hands it to the `wake`
//! function. Nothing runs, and nothing is billed but one message, while waiting.
//!
//! - The message text is base64 of the JSON, the host's default `messageEncoding`.
//! - The message becomes visible [`LEAD`] before the instant (then rounded down to whole
//!   seconds, the service's unit), and the `wake` function waits out the rest: the host polls an
//!   idle queue only every few seconds (host.json `maxPollingInterval`, 5 s here, to keep the
//!   storage transactions of an idle month low), so without the lead a wake-up would come up to
//!   that late. The visibility is capped at the service's 7 days; a capped wake-up arrives days
//!   early, and the `wake` function then schedules the rest.
//! - Messages expire a day after they become visible, so a queue nobody reads stays small.
//! - Like the state store, no SDK retries and a bounded request: an invocation never sleeps out
//!   an outage of the queue; the timer probe is the safety net.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RequestContent, RetryOptions};
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use azure_storage_queue::models::{QueueClientSendMessageOptions, QueueMessage};
use azure_storage_queue::{QueueClient, QueueClientOptions};
use base64::Engine as _;
use burst_ports::{WakeUp, Waker};
use burst_settings::{ConfigError, Get, PlainHttp, Settings, base_url, redacted_url};
use url::Url;

/// The queue's URL: `https://<account>.queue.core.windows.net/<queue>` (managed identity), or
/// any `http(s)` queue URL with a SAS query (Azurite, tests). Unset: no wake-ups.
pub const WAKE_QUEUE_URL: &str = "BURST_WAKE_QUEUE_URL";
/// Upper bound on one send, token included (default 5 000 ms).
pub const WAKE_TIMEOUT_MS: &str = "BURST_WAKE_TIMEOUT_MS";
/// A user-assigned identity's client id (shared with the state store).
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";

/// The longest visibility timeout the queue service accepts (7 days).
pub const MAX_VISIBILITY_S: i32 = 7 * 24 * 3600;
/// How long a visible message lives before the service drops it.
const TTL_AFTER_VISIBLE_S: i32 = 24 * 3600;

/// Sends wake-up messages to one queue.
pub struct QueueWaker {
    client: QueueClient,
    /// The queue URL without its query, for messages.
    display: String,
    timeout: Duration,
}

impl fmt::Debug for QueueWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueWaker")
            .field("queue", &self.display)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl QueueWaker {
    /// From `BURST_WAKE_QUEUE_URL`: with a SAS query the SAS authenticates; without one a token
    /// credential does (`credential`, else the app's managed identity), which needs https.
    pub fn from_settings(
        get: Get<'_>,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> Result<Option<Self>, ConfigError> {
        let settings = Settings::new(get);
        // The SAS, if any, rides in the query: check the URL without it, keep it for the client.
        let Some(url) = settings.parsed(WAKE_QUEUE_URL, |raw| {
            let url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
            let mut bare = url.clone();
            bare.set_query(None);
            base_url(WAKE_QUEUE_URL, bare.as_str(), PlainHttp::Allowed).map_err(|e| e.problem)?;
            Ok(url)
        })?
        else {
            return Ok(None);
        };
        let timeout = settings.millis(WAKE_TIMEOUT_MS, 5_000, 100..=60_000)?;
        let has_sas = url.query().is_some_and(|q| q.contains("sig="));
        let credential = match (has_sas, credential) {
            (true, _) => None,
            (false, Some(c)) => Some(c),
            (false, None) => Some(managed_identity(settings.string(AZURE_CLIENT_ID))?),
        };
        if credential.is_some() && url.scheme() != "https" {
            return Err(ConfigError::new(
                WAKE_QUEUE_URL,
                "a queue URL without a SAS (managed identity) must use https",
            ));
        }
        Self::new(url, credential, timeout).map(Some)
    }

    /// A waker on `queue_url` (with its SAS query, if any) and an optional token credential.
    pub fn new(
        queue_url: Url,
        credential: Option<Arc<dyn TokenCredential>>,
        timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let display = redacted_url(&queue_url);
        let options = QueueClientOptions {
            client_options: ClientOptions {
                retry: RetryOptions::none(),
                ..Default::default()
            },
            ..Default::default()
        };
        let client = QueueClient::new(queue_url, credential, Some(options))
            .map_err(|e| ConfigError::new(WAKE_QUEUE_URL, format!("not a queue URL: {e}")))?;
        Ok(Self {
            client,
            display,
            timeout,
        })
    }
}

fn managed_identity(client_id: Option<String>) -> Result<Arc<dyn TokenCredential>, ConfigError> {
    let mut options = ManagedIdentityCredentialOptions {
        user_assigned_id: client_id.map(UserAssignedId::ClientId),
        ..Default::default()
    };
    options.client_options.retry = RetryOptions::none();
    let credential = ManagedIdentityCredential::new(Some(options))
        .map_err(|e| ConfigError::new(WAKE_QUEUE_URL, format!("managed identity: {e}")))?;
    Ok(credential)
}

/// How long before its instant a wake-up message becomes visible: at least the host's longest
/// wait between polls of an idle queue (host.json `maxPollingInterval`), so the message is
/// picked up before the instant and the `wake` function waits out the rest.
pub const LEAD: Duration = Duration::from_secs(5);

/// Whole seconds of invisibility for a wake-up `delay` from now: [`LEAD`] earlier, rounded
/// down, at most 7 days.
pub fn visibility_secs(delay: Duration) -> i32 {
    i32::try_from(delay.saturating_sub(LEAD).as_secs())
        .unwrap_or(i32::MAX)
        .min(MAX_VISIBILITY_S)
}

/// The message text: base64 of the JSON (the Functions host's default encoding).
pub fn encode(wake: &WakeUp) -> String {
    let json = serde_json::to_vec(wake).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(json)
}

#[async_trait]
impl Waker for QueueWaker {
    async fn schedule(&self, wake: &WakeUp, delay: Duration) -> Result<(), String> {
        let visibility = visibility_secs(delay);
        let message = QueueMessage {
            message_text: Some(encode(wake)),
        };
        let body: RequestContent<QueueMessage, _> = message
            .try_into()
            .map_err(|e: azure_core::Error| format!("wake-up message: {e}"))?;
        let options = QueueClientSendMessageOptions {
            visibility_timeout: Some(visibility),
            message_time_to_live: Some(visibility.saturating_add(TTL_AFTER_VISIBLE_S)),
            ..Default::default()
        };
        match tokio::time::timeout(self.timeout, self.client.send_message(body, Some(options)))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            // The SDK's error text can quote the request URL: keep only its kind and status.
            Ok(Err(e)) => Err(format!("send to {} failed: {}", self.display, describe(&e))),
            Err(_) => Err(format!(
                "send to {} timed out after {} ms",
                self.display,
                self.timeout.as_millis()
            )),
        }
    }
}

fn describe(e: &azure_core::Error) -> String {
    match e.http_status() {
        Some(status) => format!("HTTP {status}"),
        None => format!("{:?}", e.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_leads_rounds_down_and_caps_at_seven_days() {
        assert_eq!(visibility_secs(Duration::ZERO), 0);
        assert_eq!(visibility_secs(LEAD), 0);
        assert_eq!(visibility_secs(LEAD + Duration::from_millis(999)), 0);
        assert_eq!(visibility_secs(LEAD + Duration::from_millis(1_000)), 1);
        assert_eq!(visibility_secs(LEAD + Duration::from_millis(1_999)), 1);
        assert_eq!(
            visibility_secs(Duration::from_secs(30 * 24 * 3600)),
            MAX_VISIBILITY_S
        );
        assert_eq!(visibility_secs(Duration::MAX), MAX_VISIBILITY_S);
    }

    #[test]
    fn the_message_is_base64_json() {
        let text = encode(&WakeUp {
            site: "home".into(),
            at: 1_700_000_000_000,
            probe: false,
        });
        let json = base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64");
        let back: WakeUp = serde_json::from_slice(&json).expect("json");
        assert_eq!(back.site, "home");
        assert_eq!(back.at, 1_700_000_000_000);
    }

    use burst_settings::from_pairs as settings;

    #[test]
    fn unset_means_no_wake_ups_and_bad_values_name_the_setting() {
        let none = settings(&[]);
        assert!(
            QueueWaker::from_settings(&none, None)
                .expect("ok")
                .is_none()
        );
        let plain = settings(&[(WAKE_QUEUE_URL, "http://127.0.0.1:1/devstoreaccount1/q")]);
        let e = QueueWaker::from_settings(&plain, None).expect_err("no SAS over http");
        assert!(e.to_string().contains(WAKE_QUEUE_URL), "{e}");
        let bad = settings(&[
            (WAKE_QUEUE_URL, "http://127.0.0.1:1/a/q?sv=1&sig=secret"),
            (WAKE_TIMEOUT_MS, "soon"),
        ]);
        let e = QueueWaker::from_settings(&bad, None).expect_err("bad timeout");
        assert!(e.to_string().contains(WAKE_TIMEOUT_MS), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        let sas = settings(&[(WAKE_QUEUE_URL, "http://127.0.0.1:1/a/q?sv=1&sig=secret")]);
        let waker = QueueWaker::from_settings(&sas, None)
            .expect("ok")
            .expect("some");
        assert!(!format!("{waker:?}").contains("secret"));
    }
}
