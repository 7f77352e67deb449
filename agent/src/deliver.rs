//! Posting to the function: one signed attempt, retries with backoff and jitter inside a
//! deadline, and flushing the spool in order.
//!
//! What a reply means (the only place that decides it):
//! - 2xx, or 409 / `"duplicate": true` → delivered (the function dedupes on the event `id`);
//! - 408, 429, 5xx, connect errors, timeouts → try again later (keep spooled);
//! - any other 4xx → permanent: the function will never accept this body (moved to
//!   `spool/rejected/`, logged, not retried);
//! - anything else (3xx: redirects are not followed) → try again later, and log it: it is
//!   almost certainly a wrong `base_url`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::auth::Signer;
use crate::config::Config;
use crate::spool::{Entry, STALE_TEMP_AGE, Spool};

/// The function's answer to one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
    /// Wall-clock time just before the request went out: whatever the function says about
    /// "now" happened after this (the lease's local expiry is counted from it).
    pub sent_at: chrono::DateTime<chrono::Utc>,
    /// The reply's `Date` header (the function's clock, whole seconds), when it had one.
    pub date: Option<chrono::DateTime<chrono::Utc>>,
    /// The reply's `Location` header (a redirect's target), when it had one.
    pub location: Option<String>,
}

/// What one attempt (or a series of them) came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (or already had it: `duplicate`).
    Delivered { status: u16, duplicate: bool },
    /// Refused for good; do not send this body again.
    Rejected { status: u16, body: String },
    /// Not delivered now; keep it and try later.
    Retry { reason: String },
}

impl Outcome {
    /// Classifies an HTTP reply (see the module docs).
    pub fn of_reply(reply: &Reply) -> Outcome {
        let status = reply.status;
        let duplicate_flag = || {
            serde_json::from_str::<serde_json::Value>(&reply.body)
                .ok()
                .and_then(|v| v.get("duplicate").and_then(|d| d.as_bool()))
                .unwrap_or(false)
        };
        match status {
            200..=299 => Outcome::Delivered {
                status,
                duplicate: duplicate_flag(),
            },
            409 => Outcome::Delivered {
                status,
                duplicate: true,
            },
            408 | 429 | 500..=599 => Outcome::Retry {
                reason: format!("HTTP {status}: {}", snippet(&reply.body)),
            },
            400..=499 => Outcome::Rejected {
                status,
                body: reply.body.clone(),
            },
            _ => Outcome::Retry {
                reason: format!(
                    "unexpected HTTP {status} (is base_url right?): {}",
                    snippet(&reply.body)
                ),
            },
        }
    }
}

/// Sends signed requests to the function.
#[derive(Debug)]
pub struct Sender {
    client: reqwest::Client,
    base_url: String,
    /// The `x-functions-key` of each route (see [`Config::function_key_for`]).
    keys: RouteKeys,
    signer: Signer,
    http_timeout: Duration,
}

/// The sender cannot be built: a configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The function key sent to each route (`None`: no header).
#[derive(Clone, Default)]
struct RouteKeys {
    ups: Option<String>,
    heartbeat: Option<String>,
    witness: Option<String>,
    other: Option<String>,
}

impl std::fmt::Debug for RouteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |k: &Option<String>| if k.is_some() { "<set>" } else { "<none>" };
        f.debug_struct("RouteKeys")
            .field("ups", &shown(&self.ups))
            .field("heartbeat", &shown(&self.heartbeat))
            .field("witness", &shown(&self.witness))
            .field("other", &shown(&self.other))
            .finish()
    }
}

impl RouteKeys {
    fn from_config(config: &Config) -> Result<RouteKeys, crate::config::ConfigError> {
        use crate::payload::{ROUTE_HEARTBEAT, ROUTE_UPS, ROUTE_WITNESS};
        Ok(RouteKeys {
            ups: config.function_key_for(ROUTE_UPS)?.0,
            heartbeat: config.function_key_for(ROUTE_HEARTBEAT)?.0,
            witness: config.function_key_for(ROUTE_WITNESS)?.0,
            other: config.function_key()?,
        })
    }

    fn get(&self, route: &str) -> Option<&str> {
        use crate::payload::{ROUTE_HEARTBEAT, ROUTE_UPS, ROUTE_WITNESS};
        match route {
            ROUTE_UPS => self.ups.as_deref(),
            ROUTE_HEARTBEAT => self.heartbeat.as_deref(),
            ROUTE_WITNESS => self.witness.as_deref(),
            _ => self.other.as_deref(),
        }
    }
}

impl Sender {
    pub fn from_config(config: &Config) -> Result<Sender, SenderError> {
        config.require_function()?;
        let signer = crate::auth::signer_from_config(config)?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("burst-agent/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.http_timeout())
            .build()
            .map_err(|e| SenderError::Client(e.to_string()))?;
        Ok(Sender {
            client,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            keys: RouteKeys::from_config(config)?,
            signer,
            http_timeout: config.http_timeout(),
        })
    }

    /// The full URL of a route.
    pub fn url(&self, route: &str) -> String {
        format!("{}{}", self.base_url, route)
    }

    /// One signed POST, bounded by `limit` (and the configured HTTP timeout).
    /// `Err` is a transport failure (no HTTP reply), described for the log.
    pub async fn post_once(
        &self,
        route: &str,
        body: &[u8],
        limit: Duration,
    ) -> Result<Reply, String> {
        let token = self
            .signer
            .token(body, chrono::Utc::now().timestamp())
            .map_err(|e| e.to_string())?;
        let mut request = self
            .client
            .post(self.url(route))
            .timeout(limit.min(self.http_timeout))
            .header(reqwest::header::CONTENT_TYPE, burst_wire::JSON_CONTENT_TYPE)
            .header(reqwest::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(body.to_vec());
        if let Some(key) = self.keys.get(route) {
            request = request.header("x-functions-key", key);
        }
        let started = Instant::now();
        let sent_at = chrono::Utc::now();
        let response = request.send().await.map_err(describe_transport_error)?;
        let status = response.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let date = header(reqwest::header::DATE).and_then(|d| parse_http_date(&d));
        let location = header(reqwest::header::LOCATION);
        let body = response.text().await.unwrap_or_default();
        Ok(Reply {
            status,
            body,
            elapsed: started.elapsed(),
            sent_at,
            date,
            location,
        })
    }

    /// Tries until delivered, rejected, or `deadline` leaves no room for another attempt.
    pub async fn send_with_retry(&self, route: &str, body: &[u8], deadline: Instant) -> Outcome {
        self.send_with_retry_reply(route, body, deadline).await.0
    }

    /// [`send_with_retry`](Sender::send_with_retry), also returning the HTTP reply the outcome
    /// was read from (`None` when the last attempt got no reply, or none was made).
    pub async fn send_with_retry_reply(
        &self,
        route: &str,
        body: &[u8],
        deadline: Instant,
    ) -> (Outcome, Option<Reply>) {
        let mut attempt: u32 = 0;
        let mut last = Outcome::Retry {
            reason: "no time left for an attempt".to_string(),
        };
        let mut last_reply = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining < Duration::from_millis(50) {
                return (last, last_reply);
            }
            (last, last_reply) = match self.post_once(route, body, remaining).await {
                Ok(reply) => (Outcome::of_reply(&reply), Some(reply)),
                Err(reason) => (Outcome::Retry { reason }, None),
            };
            let Outcome::Retry { reason } = &last else {
                return (last, last_reply);
            };
            let pause = backoff(attempt);
            debug!(route, attempt, %reason, ?pause, "attempt failed");
            if Instant::now() + pause >= deadline {
                return (last, last_reply);
            }
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }
}

/// An HTTP `Date` (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`, which is RFC 2822 with
/// the `GMT` zone) as UTC; `None` for anything else.
pub fn parse_http_date(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Exponential backoff, 250 ms doubling up to 2 s, with "equal jitter" (half fixed, half
/// random) so concurrent hooks do not retry in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(250)
        .saturating_mul(1u32 << attempt.min(8))
        .min(Duration::from_secs(2));
    base.mul_f64(0.5 + 0.5 * fastrand::f64())
}

fn describe_transport_error(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest's Display names the URL, never the headers, so no secret leaks here.
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn snippet(body: &str) -> String {
    let mut s: String = body.chars().take(200).collect();
    if s.len() < body.len() {
        s.push('…');
    }
    s
}

/// What a spool flush did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub delivered: usize,
    pub duplicates: usize,
    /// Refused for good by the function, or not a valid event at all (unreadable, corrupt):
    /// set aside in `rejected/` (or, when even that failed, left in place and skipped).
    pub rejected: usize,
    /// Still spooled when the flush ended (delivery failed or time ran out).
    pub pending: usize,
    /// Another process held the delivery lock for the whole time: it is delivering.
    pub busy: bool,
}

/// Delivers every spooled event in order, until the spool is empty or `deadline`.
/// Holds the delivery lock meanwhile, and re-reads the directory after each pass so events
/// spooled by concurrent hooks are taken along. Stops at the first event that cannot be
/// delivered now, so order is kept. A file that is not a valid event is set aside, logged and
/// counted; it never stops the others. Errors only when the spool cannot be locked or listed.
pub async fn flush(
    spool: &Spool,
    sender: &Sender,
    deadline: Instant,
) -> std::io::Result<FlushReport> {
    Ok(flush_then_send(spool, sender, deadline, None).await?.0)
}

/// An event that could not be spooled (say the disk is full), to be sent right after the
/// spool: see [`flush_then_send`].
#[derive(Clone, Copy, Debug)]
pub struct Unspooled<'a> {
    pub route: &'a str,
    pub body: &'a [u8],
}

/// [`flush`], then, still holding the delivery lock, sends `after` — but only when the flush
/// cleared the spool (every older event delivered or set aside): a new event is never sent
/// ahead of older ones. The outcome is `None` when it was not sent.
pub async fn flush_then_send(
    spool: &Spool,
    sender: &Sender,
    deadline: Instant,
    after: Option<Unspooled<'_>>,
) -> std::io::Result<(FlushReport, Option<Outcome>)> {
    let mut report = FlushReport::default();
    let Some(_lock) = spool.lock_delivery(deadline).await? else {
        report.busy = true;
        report.pending = spool.count()?;
        info!(
            pending = report.pending,
            "another burst-agent is delivering the spool"
        );
        return Ok((report, None));
    };
    match spool.remove_stale_temps(STALE_TEMP_AGE) {
        Ok(0) => {}
        Ok(removed) => info!(
            removed,
            "removed temp files left in the spool by an interrupted write"
        ),
        Err(e) => warn!(error = %e, "cannot clean up old temp files in the spool"),
    }
    // Files handled in this run that are still there (could not be moved or removed): skipped
    // from now on, so they neither loop nor count twice.
    let mut done: HashSet<PathBuf> = HashSet::new();
    loop {
        let listing = spool.scan()?;
        for bad in &listing.bad {
            if !done.insert(bad.path.clone()) {
                continue; // could not be moved: seen in an earlier pass of this run
            }
            report.rejected += 1;
            match &bad.moved {
                Ok(to) => warn!(file = %bad.name(), why = %bad.why, to = %to.display(),
                    "spool file is not a valid event and can never be sent; set aside in rejected/"),
                Err(e) => error!(file = %bad.name(), why = %bad.why, error = %e,
                    "spool file is not a valid event and cannot be set aside; skipped"),
            }
        }
        let entries: Vec<&Entry> = listing
            .entries
            .iter()
            .filter(|e| !done.contains(&e.path))
            .collect();
        if entries.is_empty() {
            break;
        }
        for (i, entry) in entries.iter().enumerate() {
            let e = &entry.envelope;
            match sender
                .send_with_retry(&e.route, e.body.as_bytes(), deadline)
                .await
            {
                Outcome::Delivered { status, duplicate } => {
                    report.delivered += 1;
                    if duplicate {
                        report.duplicates += 1;
                    }
                    info!(id = %e.id, route = %e.route, status, duplicate, "delivered");
                    if let Err(err) = spool.remove(entry) {
                        // Sent again by a later run: the function answers `duplicate`.
                        error!(id = %e.id, file = %file_name(&entry.path), error = %err,
                            "delivered, but cannot remove it from the spool");
                        done.insert(entry.path.clone());
                    }
                }
                Outcome::Rejected { status, body } => {
                    let reason = format!("HTTP {status}: {body}");
                    report.rejected += 1;
                    match spool.reject(entry, &reason) {
                        Ok(moved) => warn!(id = %e.id, route = %e.route, status,
                            body = %snippet(&body), to = %moved.display(),
                            "the function refused the event for good; moved to rejected/"),
                        Err(err) => {
                            error!(id = %e.id, route = %e.route, status, body = %snippet(&body),
                                file = %file_name(&entry.path), error = %err,
                                "the function refused the event for good, and it cannot be moved to rejected/; skipped");
                            done.insert(entry.path.clone());
                        }
                    }
                }
                Outcome::Retry { reason } => {
                    report.pending = entries.len() - i;
                    warn!(id = %e.id, route = %e.route, %reason, pending = report.pending,
                        "not delivered now; stays spooled for the next notify/heartbeat");
                    return Ok((report, None));
                }
            }
        }
    }
    let Some(event) = after else {
        return Ok((report, None));
    };
    let outcome = sender
        .send_with_retry(event.route, event.body, deadline)
        .await;
    Ok((report, Some(outcome)))
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            elapsed: Duration::ZERO,
            sent_at: chrono::Utc::now(),
            date: None,
            location: None,
        }
    }

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.to_rfc3339(), "1994-11-06T08:49:37+00:00");
        assert!(parse_http_date("yesterday").is_none());
    }

    #[test]
    fn classification() {
        assert_eq!(
            Outcome::of_reply(&reply(200, r#"{"ok":true}"#)),
            Outcome::Delivered {
                status: 200,
                duplicate: false
            }
        );
        assert_eq!(
            Outcome::of_reply(&reply(200, r#"{"duplicate":true}"#)),
            Outcome::Delivered {
                status: 200,
                duplicate: true
            }
        );
        assert_eq!(
            Outcome::of_reply(&reply(409, r#"{"error":"duplicate"}"#)),
            Outcome::Delivered {
                status: 409,
                duplicate: true
            }
        );
        for s in [408, 429, 500, 502, 503, 504, 302] {
            assert!(
                matches!(Outcome::of_reply(&reply(s, "")), Outcome::Retry { .. }),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 413, 415, 422] {
            assert!(
                matches!(Outcome::of_reply(&reply(s, "")), Outcome::Rejected { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for attempt in 0..20 {
            let b = backoff(attempt);
            let base = (250u64 << attempt.min(8)).min(2000);
            assert!(b >= Duration::from_millis(base / 2) && b <= Duration::from_millis(base));
        }
    }
}
