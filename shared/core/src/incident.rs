//! Incidents and messages: one message per incident, created once and edited as the
//! incident evolves, green when resolved; short separate posts only for what must ping.
//! Updates are coalesced: whatever is pending when delivery is possible goes out as one edit.

use crate::action::{Delivery, Notification, Severity};
use crate::input::NotifyResult;
use crate::policy::Policy;
use crate::state::{Incident, Post, SiteState};
use crate::time::Timestamp;

/// Undelivered separate messages kept (oldest dropped first).
pub const MAX_POSTS: usize = 16;
/// Incidents kept while their last update is undelivered (oldest dropped first).
pub const MAX_INCIDENTS: usize = 4;

/// Opens a new incident (one per outage).
pub fn open(state: &mut SiteState, now: Timestamp, title: String, first_line: String) -> String {
    // Keep at most a few resolved-but-undelivered incidents; the oldest update is least useful.
    while state.incidents.len() >= MAX_INCIDENTS {
        state.incidents.remove(0);
    }
    state.incidents_opened += 1;
    let id = format!("{}-{}", state.site, state.incidents_opened);
    state.incidents.push(Incident {
        id: id.clone(),
        opened_at: now,
        resolved_at: None,
        title,
        severity: Severity::Trouble,
        lines: vec![line(now, &first_line)],
        revision: 1,
        delivered: 0,
        message_id: None,
    });
    id
}

fn line(now: Timestamp, text: &str) -> String {
    // HH:MM:SS UTC keeps lines short; the adapter adds a relative time to the embed.
    let stamp = now.rfc3339();
    let hms = stamp.get(11..19).unwrap_or(&stamp);
    format!("{hms} {text}")
}

/// Adds a timeline line (and optionally a new title) to the open incident, if there is one.
pub fn update(
    state: &mut SiteState,
    now: Timestamp,
    text: &str,
    title: Option<String>,
    policy: &Policy,
) {
    if let Some(inc) = state.incidents.iter_mut().find(|i| i.resolved_at.is_none()) {
        inc.lines.push(line(now, text));
        let excess = inc.lines.len().saturating_sub(policy.incident_lines_max);
        if excess > 0 {
            // Keep the first line (how it started) and the newest ones.
            inc.lines.drain(1..=excess.min(inc.lines.len() - 1));
        }
        if let Some(t) = title {
            inc.title = t;
        }
        inc.revision += 1;
    }
}

/// Marks the open incident resolved (the message turns green).
pub fn resolve(state: &mut SiteState, now: Timestamp, text: &str, policy: &Policy) {
    let Some(opened) = state.open_incident().map(|i| i.opened_at) else {
        return;
    };
    let minutes = now.since(opened) / 60_000;
    let title = format!(
        "Resolved: {} back to normal after {minutes} min",
        state.site
    );
    update(state, now, text, Some(title), policy);
    if let Some(inc) = state.incidents.iter_mut().find(|i| i.resolved_at.is_none()) {
        inc.severity = Severity::Resolved;
        inc.resolved_at = Some(now);
    }
}

/// Queues a separate short message.
pub fn post(
    state: &mut SiteState,
    now: Timestamp,
    title: String,
    severity: Severity,
    lines: Vec<String>,
    ping: bool,
) {
    state.posts_created += 1;
    state.posts.push(Post {
        key: format!("{}-post-{}", state.site, state.posts_created),
        created_at: now,
        title,
        severity,
        lines: lines.iter().map(|l| line(now, l)).collect(),
        ping,
    });
    // Undeliverable messages (webhook gone for weeks) must not grow the state forever.
    let excess = state.posts.len().saturating_sub(MAX_POSTS);
    state.posts.drain(..excess);
}

/// Whether anything waits for delivery.
pub fn pending(state: &SiteState) -> bool {
    !state.posts.is_empty() || state.incidents.iter().any(|i| i.delivered < i.revision)
}

/// The next message to send, if delivery is possible now. One per step: the shell feeds the
/// outcome back and steps again, which keeps us well inside Discord's 5 requests / 2 s.
pub fn next(state: &SiteState, now: Timestamp) -> Option<Notification> {
    if state.webhook_gone.is_some() || state.notify_retry_at.is_some_and(|t| now < t) {
        return None;
    }
    if let Some(inc) = state.incidents.iter().find(|i| i.delivered < i.revision) {
        let delivery = match &inc.message_id {
            Some(id) => Delivery::Edit {
                message_id: id.clone(),
            },
            None => Delivery::Create,
        };
        return Some(Notification {
            key: inc.id.clone(),
            delivery,
            title: inc.title.clone(),
            severity: inc.severity,
            lines: inc.lines.clone(),
            ping: inc.message_id.is_none(),
        });
    }
    state.posts.first().map(|p| Notification {
        key: p.key.clone(),
        delivery: Delivery::Post,
        title: p.title.clone(),
        severity: p.severity,
        lines: p.lines.clone(),
        ping: p.ping,
    })
}

/// Applies a delivery outcome. Returns an audit line.
pub fn apply_outcome(
    state: &mut SiteState,
    key: &str,
    result: &NotifyResult,
    now: Timestamp,
    policy: &Policy,
) -> String {
    match result {
        NotifyResult::Delivered { message_id } => {
            state.notify_retry_at = None;
            if let Some(inc) = state.incidents.iter_mut().find(|i| i.id == key) {
                inc.delivered = inc.revision;
                if inc.message_id.is_none() {
                    inc.message_id = message_id.clone();
                }
            }
            state.posts.retain(|p| p.key != key);
            // A resolved incident whose last word is out needs no more tracking.
            state
                .incidents
                .retain(|i| i.resolved_at.is_none() || i.delivered < i.revision);
            format!("message {key} delivered")
        }
        NotifyResult::RateLimited { retry_after_ms } => {
            let wait = (*retry_after_ms).max(1) as i64;
            state.notify_retry_at = Some(now.plus_millis(wait));
            format!("Discord rate limit: message {key} kept, retry in {wait} ms")
        }
        NotifyResult::MessageGone { detail } => {
            // Someone deleted the message: the update is not lost, it goes out as a new one.
            // (Only an edit can meet a deleted message; anything else waits like a failure,
            // so a confused adapter cannot make us spin.)
            match state.incidents.iter_mut().find(|i| i.id == key) {
                Some(inc) if inc.message_id.is_some() => inc.message_id = None,
                _ => state.notify_retry_at = Some(now.plus_secs(policy.notify_retry_s)),
            }
            format!("message of {key} was deleted ({detail}): the next update creates a new one")
        }
        NotifyResult::WebhookGone { detail } => {
            state.webhook_gone = Some(detail.clone());
            format!("Discord webhook gone ({detail}): messages kept, shown by status")
        }
        NotifyResult::Failed { detail, retryable } => {
            if *retryable {
                state.notify_retry_at = Some(now.plus_secs(policy.notify_retry_s));
                format!("message {key} failed ({detail}): retry later")
            } else {
                // Discord refused this message (400): sending it again cannot help.
                state.posts.retain(|p| p.key != key);
                if let Some(inc) = state.incidents.iter_mut().find(|i| i.id == key) {
                    inc.delivered = inc.revision;
                }
                format!("message {key} refused ({detail}): dropped")
            }
        }
    }
}
