//! Scheduled wake-ups in an SQS queue ([`SqsWaker`], a `burst_ports::Waker`).
//!
//! A wake-up is one message `{"site","at"}` sent with `SendMessage` and a per-message
//! `DelaySeconds`: SQS keeps it hidden until the delay has passed, then the `wake` Lambda
//! (an SQS event source mapping) receives it. Nothing runs, and nothing is billed but the
//! request, while waiting.
//!
//! - SQS delays a message by at most 900 s (15 minutes). A later wake-up is sent with 900 s,
//!   arrives early, and the `wake` function consumes it, finds nothing due and schedules the
//!   rest: long waits become a chain of 15-minute hops (one request and one short invocation
//!   each).
//! - The delay is rounded up to whole seconds: a wake-up comes up to a second late, never
//!   early (except for the 900 s hops above).
//! - The SQS JSON protocol (`X-Amz-Target: AmazonSQS.SendMessage`,
//!   `application/x-amz-json-1.0`), signed with this crate's SigV4 signer (service `sqs`).
//! - Like the other adapters: no retries, one bounded request. An invocation never sleeps out
//!   an outage of SQS; the timer probe is the safety net.
//! - Errors say what happened (throttled, refused, rejected, unavailable, no answer) and never
//!   carry the credentials, even when SQS quotes the signed request back.
//!
//! `BURST_WAKE_QUEUE_URL` is shared with the Azure queue (`burst-queue`); the wiring picks this
//! adapter when [`is_sqs_queue_url`] says the URL has an SQS queue's shape.

use crate::settings::{self as aws_settings, host_header};
use crate::signed::{Signer, short};
use crate::sigv4::Credentials;
use async_trait::async_trait;
use burst_ports::{WakeUp, Waker};
use burst_settings::{ConfigError, Get, Settings, is_loopback};
use reqwest::Method;
use std::fmt;
use std::time::Duration;
use url::Url;

/// The wake-up queue's URL. An SQS queue URL (`https://sqs.<region>.amazonaws.com/<account>/
/// <queue>`) selects this adapter; unset: no wake-ups.
pub const WAKE_QUEUE_URL: &str = "BURST_WAKE_QUEUE_URL";
/// Upper bound on one `SendMessage` (default 5 000 ms, 100 to 60 000).
pub const WAKE_TIMEOUT_MS: &str = "BURST_WAKE_TIMEOUT_MS";
/// The default of [`WAKE_TIMEOUT_MS`].
pub const DEFAULT_WAKE_TIMEOUT_MS: u64 = 5_000;
/// The longest `DelaySeconds` SQS accepts (15 minutes).
pub const MAX_DELAY_S: u32 = 900;
/// The JSON protocol's `X-Amz-Target` for `SendMessage`.
pub const SEND_MESSAGE_TARGET: &str = "AmazonSQS.SendMessage";
/// The JSON protocol's content type.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// The SigV4 service name.
pub const SERVICE: &str = "sqs";

/// `DelaySeconds` for `delay`: rounded up to whole seconds (never early), at most 900.
pub fn delay_secs(delay: Duration) -> u32 {
    let ceil = delay
        .as_secs()
        .saturating_add(u64::from(delay.subsec_nanos() > 0));
    u32::try_from(ceil).unwrap_or(u32::MAX).min(MAX_DELAY_S)
}

/// The message body: the wake-up as JSON, `{"site":"home","at":1700000000000}`.
pub fn message_body(wake: &WakeUp) -> String {
    // A string and an integer always serialise; fields in declaration order.
    serde_json::to_string(wake).unwrap_or_default()
}

/// Whether `raw` has the shape of an SQS queue URL: `http(s)`, no query, and the path
/// `/<12-digit account id>/<queue name>`, or a host under `amazonaws.com`. Azure Storage queue
/// URLs (`https://<account>.queue.core.windows.net/<queue>`, Azurite's
/// `http://127.0.0.1:10001/<account>/<queue>?<SAS>`) never have that shape, so the wiring
/// chooses the adapter by this test alone.
pub fn is_sqs_queue_url(raw: &str) -> bool {
    let Ok(url) = Url::parse(raw.trim()) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
        return false;
    }
    let aws_host = url.host_str().is_some_and(|h| {
        let h = h.to_ascii_lowercase();
        h.ends_with(".amazonaws.com") || h.ends_with(".amazonaws.com.cn")
    });
    aws_host || split_path(url.path()).is_some_and(|(account, _)| is_account_id(account))
}

fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (account, name) = rest.split_once('/')?;
    (!name.contains('/')).then_some((account, name))
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A checked SQS queue URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueUrl {
    /// The queue URL as SQS names it (`QueueUrl` in requests).
    pub url: Url,
    pub account: String,
    pub name: String,
    /// The region named by an AWS host (`sqs.<region>.amazonaws.com`), if any.
    pub host_region: Option<String>,
    /// Where requests go: `https://sqs.<region>.amazonaws.com/` for AWS hosts, else the URL's
    /// own scheme, host and port with the path `/` (a local endpoint).
    pub endpoint: Url,
}

impl QueueUrl {
    /// Checks a queue URL: `https` (plain `http` only to a loopback host), no user, query or
    /// fragment, the path `/<12-digit account>/<queue name>` with a name of 1 to 80 characters
    /// of `A-Z a-z 0-9 - _`. FIFO queues (`.fifo`) are refused: they take no per-message delay.
    /// The error never echoes the URL.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw.trim()).map_err(|e| format!("not a URL ({e})"))?;
        let host = url.host().ok_or("expected an SQS queue URL with a host")?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => {
                return Err(
                    "the scheme must be https (http only for 127.0.0.1, ::1 or localhost)".into(),
                );
            }
            _ => return Err("expected an https SQS queue URL".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a queue URL takes no user or password".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("an SQS queue URL takes no query or fragment (an Azure queue URL with a SAS is not an SQS queue)".into());
        }
        let (account, name) = split_path(url.path()).ok_or(
            "expected the path /<account id>/<queue name>, e.g. https://sqs.eu-west-1.amazonaws.com/123456789012/burst-wake",
        )?;
        if !is_account_id(account) {
            return Err("the path's first part must be the 12-digit AWS account id".into());
        }
        if name.ends_with(".fifo") {
            return Err(
                "a FIFO queue takes no per-message delay: use a standard queue for wake-ups".into(),
            );
        }
        if name.is_empty()
            || name.len() > 80
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("the queue name must be 1 to 80 characters of A-Z a-z 0-9 - _".into());
        }
        let host_str = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let host_region = aws_host_region(&host_str);
        let endpoint = match &host_region {
            Some((region, suffix)) => Url::parse(&format!("https://sqs.{region}.{suffix}/"))
                .map_err(|e| format!("not a URL ({e})"))?,
            None => {
                let mut e = url.clone();
                e.set_path("/");
                e
            }
        };
        Ok(QueueUrl {
            account: account.to_string(),
            name: name.to_string(),
            host_region: host_region.map(|(r, _)| r),
            url,
            endpoint,
        })
    }
}

/// `sqs.<region>.amazonaws.com[.cn]`, `<region>.queue.amazonaws.com[.cn]` and
/// `queue.amazonaws.com` (us-east-1) → (region, DNS suffix).
fn aws_host_region(host: &str) -> Option<(String, &'static str)> {
    let (rest, suffix) = if let Some(r) = host.strip_suffix(".amazonaws.com.cn") {
        (r, "amazonaws.com.cn")
    } else if let Some(r) = host.strip_suffix(".amazonaws.com") {
        (r, "amazonaws.com")
    } else {
        return None;
    };
    let region = if let Some(r) = rest.strip_prefix("sqs.") {
        r
    } else if let Some(r) = rest.strip_suffix(".queue") {
        r
    } else if rest == "queue" {
        "us-east-1"
    } else {
        return None;
    };
    let valid = !region.is_empty()
        && !region.contains('.')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then(|| (region.to_string(), suffix))
}

/// Everything [`SqsWaker`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsConfig {
    pub queue: QueueUrl,
    /// The signing region: the queue host's region, else `AWS_REGION`.
    pub region: String,
    pub credentials: Credentials,
    pub timeout: Duration,
}

impl SqsConfig {
    /// From `BURST_WAKE_QUEUE_URL` (when it is an SQS queue URL), `BURST_WAKE_TIMEOUT_MS`, the
    /// Lambda credentials and, for a queue on a non-AWS host (a local endpoint), `AWS_REGION`.
    /// `Ok(None)` when the URL is unset or is not an SQS queue URL (see [`is_sqs_queue_url`]).
    pub fn from_settings(get: Get<'_>) -> Result<Option<Self>, ConfigError> {
        let settings = Settings::new(get);
        let Some(raw) = settings.string(WAKE_QUEUE_URL) else {
            return Ok(None);
        };
        if !is_sqs_queue_url(&raw) {
            return Ok(None);
        }
        let queue = QueueUrl::parse(&raw).map_err(|p| ConfigError::new(WAKE_QUEUE_URL, p))?;
        let timeout = settings.millis(WAKE_TIMEOUT_MS, DEFAULT_WAKE_TIMEOUT_MS, 100..=60_000)?;
        let why = "wake-ups in SQS need signed requests";
        let region = match &queue.host_region {
            Some(r) => r.clone(),
            None => aws_settings::region(get, why)?,
        };
        let credentials = aws_settings::credentials(get, why)?;
        Ok(Some(SqsConfig {
            queue,
            region,
            credentials,
            timeout,
        }))
    }
}

/// What went wrong sending a wake-up. No variant carries a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqsError {
    /// SQS asks us to slow down (`RequestThrottled`, `ThrottlingException`, HTTP 429).
    #[error("throttled by SQS: {code}: {message}")]
    Throttled { code: String, message: String },
    /// The setup is wrong: no permission, bad or expired credentials, no such queue. Fix it.
    #[error("SQS refused SendMessage (HTTP {status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// SQS rejected the request itself (another 4xx, e.g. `InvalidParameterValue`).
    #[error("SQS rejected SendMessage (HTTP {status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// SQS failed (5xx): try later.
    #[error("SQS is unavailable (HTTP {status} {code}): {message}")]
    Unavailable {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer (timeout, connection): the message may or may not have been queued.
    #[error("no answer from SQS: {0}")]
    Transport(String),
    /// A success we could not read.
    #[error("unreadable SendMessage answer: {0}")]
    Unexpected(String),
}

/// What SQS says about a queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message_id: String,
    /// The `DelaySeconds` sent.
    pub delay_s: u32,
}

/// Sends wake-up messages to one SQS queue.
#[derive(Clone)]
pub struct SqsWaker {
    config: SqsConfig,
    http: reqwest::Client,
}

impl fmt::Debug for SqsWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsWaker")
            .field("queue", &self.config.queue.url.as_str())
            .field("region", &self.config.region)
            .field("timeout", &self.config.timeout)
            .finish()
    }
}

impl SqsWaker {
    pub fn new(config: SqsConfig) -> Result<Self, ConfigError> {
        let http = aws_settings::http_client(config.timeout)?;
        Ok(SqsWaker { config, http })
    }

    /// From the settings (see [`SqsConfig::from_settings`]); `Ok(None)` without an SQS URL.
    pub fn from_settings(get: Get<'_>) -> Result<Option<Self>, ConfigError> {
        SqsConfig::from_settings(get)?.map(Self::new).transpose()
    }

    pub fn config(&self) -> &SqsConfig {
        &self.config
    }

    /// One `SendMessage` of `wake` delayed by [`delay_secs`]`(delay)`. No retries.
    pub async fn send(&self, wake: &WakeUp, delay: Duration) -> Result<Sent, SqsError> {
        let delay_s = delay_secs(delay);
        let body = serde_json::json!({
            "QueueUrl": self.config.queue.url.as_str(),
            "MessageBody": message_body(wake),
            "DelaySeconds": delay_s,
        })
        .to_string();
        let signer = Signer {
            http: &self.http,
            credentials: &self.config.credentials,
            region: &self.config.region,
            service: SERVICE,
            content_sha256_header: false,
        };
        let headers = [
            ("content-type".to_string(), JSON_CONTENT_TYPE.to_string()),
            ("x-amz-target".to_string(), SEND_MESSAGE_TARGET.to_string()),
        ];
        let send = signer.send(
            Method::POST,
            &self.config.queue.endpoint,
            &headers,
            body.into_bytes(),
        );
        // reqwest's own timeout bounds the request; this also bounds a stalled body read.
        let reply = match tokio::time::timeout(self.config.timeout, send).await {
            Ok(r) => r.map_err(|e| SqsError::Transport(self.scrub(&e)))?,
            Err(_) => {
                return Err(SqsError::Transport(format!(
                    "timed out after {} ms",
                    self.config.timeout.as_millis()
                )));
            }
        };
        let status = reply.status.as_u16();
        if !reply.status.is_success() {
            let mut e = classify(status, &reply.body);
            self.scrub_error(&mut e);
            return Err(e);
        }
        let message_id = serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("MessageId")?.as_str().map(str::to_string))
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                SqsError::Unexpected(format!(
                    "HTTP {status} without a MessageId: {}",
                    self.scrub(&short(&String::from_utf8_lossy(&reply.body)))
                ))
            })?;
        Ok(Sent {
            message_id,
            delay_s,
        })
    }

    /// Removes every credential value from a text that came from outside.
    fn scrub(&self, text: &str) -> String {
        let c = &self.config.credentials;
        let mut out = text.to_string();
        let values = [
            Some(c.secret_access_key.as_str()),
            c.session_token.as_deref(),
            Some(c.access_key_id.as_str()),
        ];
        for v in values.into_iter().flatten().filter(|v| v.len() >= 4) {
            out = out.replace(v, "<redacted>");
        }
        out
    }

    fn scrub_error(&self, e: &mut SqsError) {
        match e {
            SqsError::Throttled { code, message }
            | SqsError::Refused { code, message, .. }
            | SqsError::Rejected { code, message, .. }
            | SqsError::Unavailable { code, message, .. } => {
                *code = self.scrub(code);
                *message = self.scrub(message);
            }
            SqsError::Transport(m) | SqsError::Unexpected(m) => *m = self.scrub(m),
        }
    }

    fn queue_display(&self) -> String {
        format!(
            "{}/{}/{}",
            host_header(&self.config.queue.url),
            self.config.queue.account,
            self.config.queue.name
        )
    }
}

/// An error answer → [`SqsError`]. The JSON protocol's body is
/// `{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"…"}`; only the first line of the
/// message is kept, at most 200 characters (a signature error quotes the signed request after
/// it).
pub fn classify(status: u16, body: &[u8]) -> SqsError {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    let text = String::from_utf8_lossy(body);
    let field = |names: &[&str]| {
        match parsed.as_ref() {
            Some(v) => names
                .iter()
                .find_map(|n| v.get(*n).and_then(|x| x.as_str()).map(str::to_string)),
            // An XML error (the query protocol's shape; some front ends and emulators answer
            // authentication failures that way): `<Code>` and `<Message>` wherever they are.
            None => names.iter().find_map(|n| xml_element(&text, n)),
        }
    };
    let code = field(&["__type", "code", "Code"])
        .map(|t| t.rsplit('#').next().unwrap_or_default().to_string())
        .filter(|c| !c.is_empty())
        .map(|c| short(&c))
        .unwrap_or_else(|| format!("HTTP{status}"));
    let message = field(&["message", "Message"])
        .map(|m| short(m.lines().next().unwrap_or_default()))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "no error message".to_string());
    // `AWS.SimpleQueueService.NonExistentQueue` (query protocol) = `NonExistentQueue`.
    let lower = code.to_ascii_lowercase();
    let key = lower.rsplit('.').next().unwrap_or_default();
    if status == 429 || lower.contains("throttl") || lower == "requestlimitexceeded" {
        return SqsError::Throttled { code, message };
    }
    let refused = [
        "accessdenied",
        "accessdeniedexception",
        "unrecognizedclientexception",
        "invalidclienttokenid",
        "invalidsignatureexception",
        "signaturedoesnotmatch",
        "incompletesignature",
        "missingauthenticationtoken",
        "expiredtoken",
        "expiredtokenexception",
        "invalidsecurity",
        "queuedoesnotexist",
        "nonexistentqueue",
        "invalidaddress",
        "kmsaccessdenied",
        "kmsdisabled",
        "kmsnotfound",
        "kmsinvalidstate",
    ];
    match status {
        500..=599 => SqsError::Unavailable {
            status,
            code,
            message,
        },
        401 | 403 => SqsError::Refused {
            status,
            code,
            message,
        },
        _ if refused.contains(&key) => SqsError::Refused {
            status,
            code,
            message,
        },
        _ => SqsError::Rejected {
            status,
            code,
            message,
        },
    }
}

/// The text of the first `<name>…</name>` element, unescaped.
fn xml_element(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    let raw = &body[start..end];
    Some(
        quick_xml::escape::unescape(raw)
            .map(|c| c.into_owned())
            .unwrap_or_else(|_| raw.to_string()),
    )
}

#[async_trait]
impl Waker for SqsWaker {
    async fn schedule(&self, wake: &WakeUp, delay: Duration) -> Result<(), String> {
        match self.send(wake, delay).await {
            Ok(sent) => {
                tracing::debug!(
                    site = %wake.site,
                    at = wake.at,
                    delay_s = sent.delay_s,
                    message_id = %sent.message_id,
                    "wake-up queued in SQS"
                );
                Ok(())
            }
            Err(e) => Err(format!("send to {}: {e}", self.queue_display())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_and_cap_at_fifteen_minutes() {
        assert_eq!(delay_secs(Duration::ZERO), 0);
        assert_eq!(delay_secs(Duration::from_millis(1)), 1);
        assert_eq!(delay_secs(Duration::from_millis(1_000)), 1);
        assert_eq!(delay_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(delay_secs(Duration::from_secs(899)), 899);
        assert_eq!(delay_secs(Duration::from_millis(899_500)), 900);
        assert_eq!(delay_secs(Duration::from_secs(900)), 900);
        assert_eq!(delay_secs(Duration::from_secs(901)), 900);
        assert_eq!(delay_secs(Duration::from_secs(3 * 3600)), MAX_DELAY_S);
        assert_eq!(delay_secs(Duration::MAX), MAX_DELAY_S);
    }

    #[test]
    fn the_body_is_the_wake_up_json() {
        let body = message_body(&WakeUp {
            site: "home".into(),
            at: 1_700_000_000_000,
            probe: false,
        });
        assert_eq!(body, r#"{"site":"home","at":1700000000000}"#);
        let back: WakeUp = serde_json::from_str(&body).unwrap();
        assert_eq!(
            back,
            WakeUp {
                site: "home".into(),
                at: 1_700_000_000_000,
                probe: false,
            }
        );
    }

    #[test]
    fn url_shapes_choose_the_adapter() {
        for sqs in [
            "https://sqs.eu-west-1.amazonaws.com/123456789012/burst-wake",
            "https://eu-west-1.queue.amazonaws.com/123456789012/burst-wake",
            "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/burst-wake",
            "http://127.0.0.1:5000/123456789012/burst-wake",
            " https://vpce.example.internal/123456789012/q ",
        ] {
            assert!(is_sqs_queue_url(sqs), "{sqs}");
        }
        for azure in [
            "https://burstwake.queue.core.windows.net/wake",
            "https://burstwake.queue.core.windows.net/123456789012",
            "http://127.0.0.1:10001/devstoreaccount1/wake?sv=2020&sig=abc",
            "http://127.0.0.1:10001/123456789012/wake?sv=2020&sig=abc",
            "ftp://sqs.eu-west-1.amazonaws.com/123456789012/q",
            "not a url",
        ] {
            assert!(!is_sqs_queue_url(azure), "{azure}");
        }
    }

    #[test]
    fn queue_urls_are_checked() {
        let q =
            QueueUrl::parse("https://sqs.eu-west-1.amazonaws.com/123456789012/burst-wake").unwrap();
        assert_eq!(q.account, "123456789012");
        assert_eq!(q.name, "burst-wake");
        assert_eq!(q.host_region.as_deref(), Some("eu-west-1"));
        assert_eq!(q.endpoint.as_str(), "https://sqs.eu-west-1.amazonaws.com/");
        let legacy = QueueUrl::parse("https://queue.amazonaws.com/123456789012/q").unwrap();
        assert_eq!(legacy.host_region.as_deref(), Some("us-east-1"));
        assert_eq!(
            legacy.endpoint.as_str(),
            "https://sqs.us-east-1.amazonaws.com/"
        );
        let local = QueueUrl::parse("http://127.0.0.1:5000/123456789012/q_1").unwrap();
        assert_eq!(local.host_region, None);
        assert_eq!(local.endpoint.as_str(), "http://127.0.0.1:5000/");

        let bad = |raw: &str, needle: &str| {
            let e = QueueUrl::parse(raw).unwrap_err();
            assert!(e.contains(needle), "{raw}: {e}");
        };
        bad("http://sqs.example.com/123456789012/q", "https");
        bad(
            "https://sqs.eu-west-1.amazonaws.com/123456789012/q.fifo",
            "FIFO",
        );
        bad("https://sqs.eu-west-1.amazonaws.com/12345/q", "12-digit");
        bad(
            "https://sqs.eu-west-1.amazonaws.com/123456789012/a/b",
            "path",
        );
        bad(
            "https://sqs.eu-west-1.amazonaws.com/123456789012/bad%20name",
            "queue name",
        );
        bad(
            "https://sqs.eu-west-1.amazonaws.com/123456789012/q?x=1",
            "query",
        );
        bad(
            "https://user:pw@sqs.eu-west-1.amazonaws.com/123456789012/q",
            "user",
        );
    }

    use burst_settings::from_pairs as settings;

    #[test]
    fn settings_read_the_queue_the_timeout_and_the_credentials() {
        assert!(SqsConfig::from_settings(&settings(&[])).unwrap().is_none());
        // An Azure queue URL is not ours: the Azure adapter reads it.
        let azure = settings(&[(WAKE_QUEUE_URL, "https://a.queue.core.windows.net/wake")]);
        assert!(SqsConfig::from_settings(&azure).unwrap().is_none());

        let c = SqsConfig::from_settings(&settings(&[
            (
                WAKE_QUEUE_URL,
                "https://sqs.eu-central-1.amazonaws.com/123456789012/wake",
            ),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ("AWS_SESSION_TOKEN", "session-token"),
        ]))
        .unwrap()
        .unwrap();
        // The queue's own region signs, whatever region the function runs in.
        assert_eq!(c.region, "eu-central-1");
        assert_eq!(c.timeout, Duration::from_millis(DEFAULT_WAKE_TIMEOUT_MS));
        let shown = format!("{:?}", SqsWaker::new(c).unwrap());
        assert!(
            !shown.contains("very-secret") && !shown.contains("session-token"),
            "{shown}"
        );

        let local = SqsConfig::from_settings(&settings(&[
            (WAKE_QUEUE_URL, "http://127.0.0.1:5000/123456789012/wake"),
            (WAKE_TIMEOUT_MS, "750"),
            ("AWS_DEFAULT_REGION", "us-west-2"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(local.region, "us-west-2");
        assert_eq!(local.timeout, Duration::from_millis(750));

        let e = SqsConfig::from_settings(&settings(&[
            (
                WAKE_QUEUE_URL,
                "https://sqs.eu-west-1.amazonaws.com/123456789012/wake",
            ),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ]))
        .unwrap_err();
        assert_eq!(e.setting, "AWS_SECRET_ACCESS_KEY");
        let e = SqsConfig::from_settings(&settings(&[
            (
                WAKE_QUEUE_URL,
                "https://sqs.eu-west-1.amazonaws.com/123456789012/wake",
            ),
            (WAKE_TIMEOUT_MS, "soon"),
        ]))
        .unwrap_err();
        assert_eq!(e.setting, WAKE_TIMEOUT_MS);
        let e = SqsConfig::from_settings(&settings(&[(
            WAKE_QUEUE_URL,
            "https://sqs.eu-west-1.amazonaws.com/123456789012/wake.fifo",
        )]))
        .unwrap_err();
        assert_eq!(e.setting, WAKE_QUEUE_URL);
        assert!(e.problem.contains("FIFO"), "{e}");
        // A local endpoint has no region in its host: AWS_REGION is needed to sign.
        let e = SqsConfig::from_settings(&settings(&[
            (WAKE_QUEUE_URL, "http://127.0.0.1:5000/123456789012/wake"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
        ]))
        .unwrap_err();
        assert_eq!(e.setting, "AWS_REGION");
    }

    #[test]
    fn errors_are_classified() {
        let json = |t: &str, m: &str| serde_json::json!({"__type": t, "message": m}).to_string();
        assert_eq!(
            classify(
                400,
                json(
                    "com.amazonaws.sqs#QueueDoesNotExist",
                    "The specified queue does not exist."
                )
                .as_bytes()
            ),
            SqsError::Refused {
                status: 400,
                code: "QueueDoesNotExist".into(),
                message: "The specified queue does not exist.".into()
            }
        );
        assert!(matches!(
            classify(
                400,
                json("com.amazonaws.sqs#RequestThrottled", "slow down").as_bytes()
            ),
            SqsError::Throttled { .. }
        ));
        assert!(matches!(
            classify(400, json("ThrottlingException", "Rate exceeded").as_bytes()),
            SqsError::Throttled { .. }
        ));
        assert!(matches!(classify(429, b""), SqsError::Throttled { .. }));
        assert!(matches!(
            classify(
                403,
                json("AccessDeniedException", "not authorized").as_bytes()
            ),
            SqsError::Refused { status: 403, .. }
        ));
        assert!(matches!(
            classify(
                400,
                json("com.amazonaws.sqs#InvalidParameterValue", "DelaySeconds").as_bytes()
            ),
            SqsError::Rejected { status: 400, .. }
        ));
        // The query protocol's XML error shapes (with and without `<Errors>`).
        assert_eq!(
            classify(
                403,
                b"<?xml version=\"1.0\"?><ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message><Type>Sender</Type></Error></Errors></ErrorResponse>"
            ),
            SqsError::Refused {
                status: 403,
                code: "InvalidClientTokenId".into(),
                message: "The security token included in the request is invalid.".into()
            }
        );
        assert!(matches!(
            classify(400, b"<ErrorResponse><Error><Code>AWS.SimpleQueueService.NonExistentQueue</Code><Message>a &amp; b</Message></Error></ErrorResponse>"),
            SqsError::Refused { ref message, .. } if message == "a & b"
        ));
        assert_eq!(
            classify(503, b"<html>busy</html>"),
            SqsError::Unavailable {
                status: 503,
                code: "HTTP503".into(),
                message: "no error message".into()
            }
        );
        // Only the first line of a message: a signature error quotes the request after it.
        let e = classify(
            400,
            json(
                "InvalidSignatureException",
                "The request signature we calculated does not match.\n\nThe Canonical String for this request should have been\n'POST\n/\nx-amz-security-token:TOKEN'",
            )
            .as_bytes(),
        );
        let shown = e.to_string();
        assert!(matches!(e, SqsError::Refused { .. }), "{shown}");
        assert!(
            !shown.contains("TOKEN") && !shown.contains("Canonical"),
            "{shown}"
        );
    }
}
