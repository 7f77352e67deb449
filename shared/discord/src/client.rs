//! The real webhook client: one HTTP call per notification, classified into the core's
//! [`NotifyResult`]. It never retries and never sleeps: a 429 comes back as `RateLimited` with
//! Discord's wait, and the core keeps the update and delivers it later.

use crate::config::{ConfigError, DiscordConfig};
use crate::limits::truncate_middle;
use crate::message::{self, MessageOptions};
use async_trait::async_trait;
use burst_core::{Delivery, Notification, NotifyResult};
use burst_ports::Notifier;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// The User-Agent every request carries, in the form Discord asks API clients for:
/// `DiscordBot ($url, $versionNumber)` (discord-api-docs, `reference.mdx`, "User Agent";
/// requests without a valid one "may be blocked and return a Cloudflare error").
pub const USER_AGENT: &str = concat!(
    "DiscordBot (",
    env!("CARGO_PKG_REPOSITORY"),
    ", ",
    env!("CARGO_PKG_VERSION"),
    ")"
);

/// Discord's JSON error codes we act on.
pub mod codes {
    /// 404: the webhook was deleted.
    pub const UNKNOWN_WEBHOOK: u64 = 10015;
    /// 404 on an edit: the message was deleted.
    pub const UNKNOWN_MESSAGE: u64 = 10008;
    /// 401: the token is wrong (regenerated or mistyped).
    pub const INVALID_WEBHOOK_TOKEN: u64 = 50027;
    /// 400: a field broke a rule; `errors` says which.
    pub const INVALID_FORM_BODY: u64 = 50035;
    /// 403 "internal network error": Cloudflare blocked the request, in the JSON form Discord
    /// answers it with since 2023 (discord-api-docs issue #6473; `CloudflareIsBlockingYourRequest`
    /// in discord-api-types).
    pub const CLOUDFLARE_BLOCKED: u64 = 40333;
}

/// Wait used when a 429 carries neither `retry_after` nor `Retry-After` (e.g. an HTML page from
/// the CDN in front of Discord).
pub const DEFAULT_RETRY_AFTER_MS: u64 = 60_000;
/// Longest wait we pass on (a day); anything longer is treated as this.
pub const MAX_RETRY_AFTER_MS: u64 = 86_400_000;
/// Failure details are kept short: they end up in the state document and the status page.
const DETAIL_MAX: usize = 600;

/// Sends notifications to one Discord webhook.
#[derive(Debug, Clone)]
pub struct DiscordWebhook {
    http: reqwest::Client,
    config: DiscordConfig,
}

impl DiscordWebhook {
    /// Fails only when the HTTP client cannot be built (TLS initialisation failed).
    pub fn new(config: DiscordConfig) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A redirect would resend the token elsewhere, and retries are the core's job.
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| {
                ConfigError::new("the Discord HTTP client", e.without_url().to_string())
            })?;
        Ok(DiscordWebhook { http, config })
    }

    pub fn config(&self) -> &DiscordConfig {
        &self.config
    }

    /// The JSON body this client sends for `notification` (with the given timestamp).
    pub fn body(&self, notification: &Notification, timestamp: Option<&str>) -> Value {
        message::body(
            notification,
            &MessageOptions {
                username: &self.config.username,
                role_id: self.config.role_id.as_deref(),
                timestamp,
            },
        )
    }

    fn redact(&self, text: &str) -> String {
        text.replace(self.config.webhook.token(), "***")
    }

    async fn deliver(&self, notification: &Notification) -> NotifyResult {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let body = self.body(notification, Some(&now));
        let webhook = &self.config.webhook;
        let thread = webhook
            .thread_id()
            .map(|t| format!("thread_id={t}"))
            .unwrap_or_default();
        let request = match &notification.delivery {
            Delivery::Create | Delivery::Post => {
                // wait=true: a 200 with the message (and its id) instead of a silent 204.
                let sep = if thread.is_empty() { "" } else { "&" };
                self.http
                    .post(format!("{}?wait=true{sep}{thread}", webhook.execute_url()))
            }
            Delivery::Edit { message_id } => {
                if message_id.is_empty() || !message_id.bytes().all(|b| b.is_ascii_digit()) {
                    return NotifyResult::Failed {
                        detail: "the stored message id is not a Discord snowflake".into(),
                        retryable: false,
                    };
                }
                let query = if thread.is_empty() {
                    String::new()
                } else {
                    format!("?{thread}")
                };
                self.http
                    .patch(format!("{}{query}", webhook.message_url(message_id)))
            }
        };
        let response = match request.json(&body).send().await {
            Ok(r) => r,
            Err(e) => return self.transport_failure(e),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return self.transport_failure(e),
        };
        match classify(&notification.delivery, status, &headers, &bytes) {
            NotifyResult::Failed { detail, retryable } => NotifyResult::Failed {
                detail: self.redact(&detail),
                retryable,
            },
            NotifyResult::WebhookGone { detail } => NotifyResult::WebhookGone {
                detail: self.redact(&detail),
            },
            other => other,
        }
    }

    fn transport_failure(&self, error: reqwest::Error) -> NotifyResult {
        let error = error.without_url();
        let what = if error.is_timeout() {
            format!("timed out after {} ms", self.config.timeout.as_millis())
        } else if error.is_connect() {
            "connection failed".to_string()
        } else {
            "request failed".to_string()
        };
        let mut detail = format!("Discord unreachable: {what}");
        let mut source = std::error::Error::source(&error);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        NotifyResult::Failed {
            detail: truncate_middle(&self.redact(&detail), DETAIL_MAX),
            retryable: true,
        }
    }
}

#[async_trait]
impl Notifier for DiscordWebhook {
    async fn send(&self, notification: &Notification) -> NotifyResult {
        let result = self.deliver(notification).await;
        match &result {
            NotifyResult::Delivered { .. } => tracing::debug!(
                key = %notification.key,
                delivery = notification.delivery.as_str(),
                "discord message delivered"
            ),
            other => tracing::warn!(
                key = %notification.key,
                delivery = notification.delivery.as_str(),
                webhook = %self.config.webhook.redacted(),
                result = ?other,
                "discord message not delivered"
            ),
        }
        result
    }
}

fn seconds_to_ms(seconds: f64) -> Option<u64> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    let ms = (seconds * 1000.0).ceil();
    Some(if ms >= MAX_RETRY_AFTER_MS as f64 {
        MAX_RETRY_AFTER_MS
    } else {
        ms as u64
    })
}

fn header_seconds(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok()
}

/// Flattens Discord's nested `errors` object into `path: message` lines.
fn flatten_errors(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "_errors" {
                    if let Value::Array(items) = child {
                        for item in items {
                            let message = item
                                .get("message")
                                .and_then(Value::as_str)
                                .or_else(|| item.as_str())
                                .unwrap_or("invalid");
                            out.push(format!("{prefix}: {message}"));
                        }
                    }
                } else {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    flatten_errors(&path, child, out);
                }
            }
        }
        // Older API versions answer `{"embeds": ["0"]}`-style lists.
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => out.push(format!("{prefix}: {s}")),
                    other => flatten_errors(prefix, other, out),
                }
            }
        }
        _ => {}
    }
}

/// What a Cloudflare block said: the Ray ID, and for a page (not JSON) its title or first
/// words.
fn cloudflare_detail(headers: &HeaderMap, page: Option<&[u8]>, summary: &str) -> String {
    let mut detail = format!(
        "{summary}: blocked by Cloudflare in front of Discord, not refused by Discord's API \
         (Cloudflare lifts such blocks later, so this is retried)"
    );
    if let Some(ray) = headers.get("cf-ray").and_then(|v| v.to_str().ok()) {
        detail.push_str(&format!("; Ray ID {ray}"));
    }
    if let Some(body) = page {
        let text = String::from_utf8_lossy(body);
        let title = text
            .find("<title>")
            .and_then(|start| {
                let rest = &text[start + "<title>".len()..];
                rest.find("</title>")
                    .map(|end| rest[..end].split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .filter(|t| !t.is_empty());
        let said = title.unwrap_or_else(|| {
            let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
            words.chars().take(120).collect()
        });
        if !said.is_empty() {
            detail.push_str(&format!("; the page says: {said}"));
        }
    }
    detail
}

/// Classifies Discord's answer. Pure, so every case is tested with real bodies.
pub fn classify(
    delivery: &Delivery,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> NotifyResult {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| json.as_ref().and_then(|j| j.get(name));
    let code = field("code").and_then(Value::as_u64);
    let message = field("message").and_then(Value::as_str).unwrap_or("");
    let summary = || {
        let mut s = format!("HTTP {status}");
        if !message.is_empty() {
            s.push_str(&format!(": {message}"));
        }
        if let Some(c) = code {
            s.push_str(&format!(" (code {c})"));
        }
        s
    };

    match status {
        200..=299 => match delivery {
            Delivery::Edit { .. } => NotifyResult::Delivered { message_id: None },
            Delivery::Create | Delivery::Post => {
                let id = field("id").and_then(|v| match v {
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
                if id.is_none() {
                    // Posted, but we cannot edit it later: the next update creates a new one.
                    tracing::warn!(status, "discord accepted the message but sent no id");
                }
                NotifyResult::Delivered { message_id: id }
            }
        },
        429 => {
            let retry_after_ms = field("retry_after")
                .and_then(Value::as_f64)
                .and_then(seconds_to_ms)
                .or_else(|| header_seconds(headers, "retry-after").and_then(seconds_to_ms))
                .or_else(|| {
                    header_seconds(headers, "x-ratelimit-reset-after").and_then(seconds_to_ms)
                })
                .unwrap_or(DEFAULT_RETRY_AFTER_MS);
            NotifyResult::RateLimited { retry_after_ms }
        }
        404 if code == Some(codes::UNKNOWN_MESSAGE)
            && matches!(delivery, Delivery::Edit { .. }) =>
        {
            // The message was deleted in Discord; editing it again cannot work: the core
            // posts a new message with the update instead.
            NotifyResult::MessageGone {
                detail: format!("{}: the message was deleted", summary()),
            }
        }
        401 | 404 => NotifyResult::WebhookGone { detail: summary() },
        400 => {
            let mut lines = Vec::new();
            if let Some(errors) = field("errors") {
                flatten_errors("", errors, &mut lines);
            } else if let Some(Value::Object(map)) = &json {
                // Some 400s are only `{"field": ["problem"]}`.
                for (k, v) in map {
                    if k != "message" && k != "code" {
                        flatten_errors(k, v, &mut lines);
                    }
                }
            }
            let mut detail = summary();
            if !lines.is_empty() {
                detail.push_str(": ");
                detail.push_str(&lines.join("; "));
            }
            NotifyResult::Failed {
                detail: truncate_middle(&detail, DETAIL_MAX),
                retryable: false,
            }
        }
        500..=599 => NotifyResult::Failed {
            detail: summary(),
            retryable: true,
        },
        // Not Discord's API refusing us but Cloudflare in front of it (an HTML or plain-text
        // page such as "error code: 1010", or Discord's JSON 40333): it blocks by signature,
        // IP or error rate, and lifts the block later. Sending again later can work.
        403 if json.is_none() || code == Some(codes::CLOUDFLARE_BLOCKED) => NotifyResult::Failed {
            detail: truncate_middle(
                &cloudflare_detail(headers, json.is_none().then_some(body), &summary()),
                DETAIL_MAX,
            ),
            retryable: true,
        },
        // 403 with Discord's JSON (no permission), 405, 413 ...: sending the same again cannot
        // help.
        _ => NotifyResult::Failed {
            detail: summary(),
            retryable: false,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn no_headers() -> HeaderMap {
        HeaderMap::new()
    }

    fn edit() -> Delivery {
        Delivery::Edit {
            message_id: "1".into(),
        }
    }

    #[test]
    fn created_message_id_is_returned() {
        let body = br#"{"id":"1301234567890123456","type":0,"content":"","channel_id":"5"}"#;
        assert_eq!(
            classify(&Delivery::Create, 200, &no_headers(), body),
            NotifyResult::Delivered {
                message_id: Some("1301234567890123456".into())
            }
        );
        assert_eq!(
            classify(&edit(), 200, &no_headers(), body),
            NotifyResult::Delivered { message_id: None }
        );
        assert_eq!(
            classify(&Delivery::Post, 204, &no_headers(), b""),
            NotifyResult::Delivered { message_id: None }
        );
    }

    #[test]
    fn rate_limit_from_body_header_or_default() {
        let discords =
            br#"{"message": "You are being rate limited.", "retry_after": 64.57, "global": false}"#;
        let classify_429 = |header: Option<(&'static str, &'static str)>, body: &[u8]| {
            let mut h = no_headers();
            if let Some((name, value)) = header {
                h.insert(name, HeaderValue::from_static(value));
            }
            classify(&Delivery::Create, 429, &h, body)
        };
        let wait = |retry_after_ms| NotifyResult::RateLimited { retry_after_ms };
        assert_eq!(classify_429(None, discords), wait(64_570));
        assert_eq!(
            classify_429(Some(("retry-after", "3")), b"<html>slow down</html>"),
            wait(3000)
        );
        assert_eq!(
            classify_429(Some(("x-ratelimit-reset-after", "0.25")), b""),
            wait(250)
        );
        assert_eq!(classify_429(None, b""), wait(DEFAULT_RETRY_AFTER_MS));
        assert_eq!(
            classify_429(None, br#"{"retry_after": 1e300}"#),
            wait(MAX_RETRY_AFTER_MS)
        );
    }

    #[test]
    fn gone_webhook() {
        assert_eq!(
            classify(
                &Delivery::Create,
                404,
                &no_headers(),
                br#"{"message": "Unknown Webhook", "code": 10015}"#
            ),
            NotifyResult::WebhookGone {
                detail: "HTTP 404: Unknown Webhook (code 10015)".into()
            }
        );
        assert_eq!(
            classify(
                &edit(),
                401,
                &no_headers(),
                br#"{"message": "Invalid Webhook Token", "code": 50027}"#
            ),
            NotifyResult::WebhookGone {
                detail: "HTTP 401: Invalid Webhook Token (code 50027)".into()
            }
        );
    }

    #[test]
    fn deleted_message_on_edit_is_not_retried() {
        assert_eq!(
            classify(
                &edit(),
                404,
                &no_headers(),
                br#"{"message": "Unknown Message", "code": 10008}"#
            ),
            NotifyResult::MessageGone {
                detail: "HTTP 404: Unknown Message (code 10008): the message was deleted".into(),
            }
        );
    }

    #[test]
    fn invalid_form_body_names_the_fields() {
        let body = br#"{"message": "Invalid Form Body", "code": 50035, "errors": {"embeds": {"0": {"description": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}}}}}"#;
        assert_eq!(
            classify(&Delivery::Create, 400, &no_headers(), body),
            NotifyResult::Failed {
                detail: "HTTP 400: Invalid Form Body (code 50035): embeds.0.description: Must be 4096 or fewer in length.".into(),
                retryable: false
            }
        );
        let old_style = br#"{"embeds": ["0"]}"#;
        assert_eq!(
            classify(&Delivery::Create, 400, &no_headers(), old_style),
            NotifyResult::Failed {
                detail: "HTTP 400: embeds: 0".into(),
                retryable: false
            }
        );
    }

    /// Cloudflare's answers when it blocks a request before Discord's API sees it: the plain
    /// "error code: 1010" (browser-signature ban of a default User-Agent, as reported in
    /// SikamikanikoBG/homelab-monitor PR #180 and Suwayomi/Suwayomi-Tsumiru PR #339), its HTML
    /// "Access denied" page (Zero6992/chatGPT-discord-bot issue #95) and Discord's JSON form
    /// (discord-api-docs issue #6473). All retryable, unlike Discord's own JSON 403.
    #[test]
    fn cloudflare_403_is_retryable_later() {
        let retryable_detail = |result| match result {
            NotifyResult::Failed {
                detail,
                retryable: true,
            } => detail,
            other => panic!("{other:?}"),
        };
        let mut h = HeaderMap::new();
        h.insert("cf-ray", HeaderValue::from_static("77d9b7e20dc42b27-FRA"));
        h.insert("server", HeaderValue::from_static("cloudflare"));
        let detail = retryable_detail(classify(&Delivery::Create, 403, &h, b"error code: 1010"));
        assert!(
            detail.starts_with("HTTP 403: blocked by Cloudflare"),
            "{detail}"
        );
        assert!(detail.contains("Ray ID 77d9b7e20dc42b27-FRA"), "{detail}");
        assert!(
            detail.ends_with("the page says: error code: 1010"),
            "{detail}"
        );
        let page = br#"<!DOCTYPE html>
<html class="no-js" lang="en-US"> <head>
<title>Access denied | discord.com used Cloudflare to restrict access</title>
<meta charset="UTF-8" /></head><body><h1>Error 1010</h1></body></html>"#;
        let detail = retryable_detail(classify(&edit(), 403, &no_headers(), page));
        assert!(
            detail.ends_with(
                "the page says: Access denied | discord.com used Cloudflare to restrict access"
            ),
            "{detail}"
        );
        let detail = retryable_detail(classify(
            &Delivery::Post,
            403,
            &no_headers(),
            br#"{"message": "internal network error", "code": 40333}"#,
        ));
        assert!(
            detail.starts_with(
                "HTTP 403: internal network error (code 40333): blocked by Cloudflare"
            ),
            "{detail}"
        );
    }

    #[test]
    fn user_agent_is_the_documented_form() {
        let inner = USER_AGENT
            .strip_prefix("DiscordBot (")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap();
        let (url, version) = inner.split_once(", ").unwrap();
        assert!(url.starts_with("https://"), "{USER_AGENT}");
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn server_errors_are_retryable_others_not() {
        assert_eq!(
            classify(
                &Delivery::Post,
                502,
                &no_headers(),
                b"<html>bad gateway</html>"
            ),
            NotifyResult::Failed {
                detail: "HTTP 502".into(),
                retryable: true
            }
        );
        assert_eq!(
            classify(
                &Delivery::Post,
                403,
                &no_headers(),
                br#"{"message": "Missing Access", "code": 50001}"#
            ),
            NotifyResult::Failed {
                detail: "HTTP 403: Missing Access (code 50001)".into(),
                retryable: false
            }
        );
    }
}
