//! Turns a platform-neutral [`Notification`] into a Discord webhook body.
//!
//! One embed: title, the timeline as description (oldest line first), the severity's colour,
//! the notification key as footer, and the send time as timestamp (Discord shows it in the
//! reader's time zone). Every text is trimmed and fitted to Discord's limits in code points,
//! empty texts are left out, and `allowed_mentions` is always present so that text from the
//! timeline can never ping anyone.

use crate::limits::{
    self, DESCRIPTION_MAX, EMBED_TOTAL_MAX, FOOTER_MAX, TITLE_MAX, truncate_middle,
};
use burst_core::{Delivery, Notification};
use serde_json::{Map, Value, json};

/// Title used when a notification has none (an embed needs some text).
pub const FALLBACK_TITLE: &str = "hybrid-burst";

/// What the adapter adds to every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageOptions<'a> {
    /// Username override (only sent when creating: edits cannot change it).
    pub username: &'a str,
    /// Role to mention when the notification pings.
    pub role_id: Option<&'a str>,
    /// RFC 3339 time shown by the embed.
    pub timestamp: Option<&'a str>,
}

/// The embed texts, each within its limit and together within [`EMBED_TOTAL_MAX`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedTexts {
    pub title: String,
    pub description: Option<String>,
    pub footer: Option<String>,
}

/// Fits title, description (the lines joined by newlines) and footer into Discord's limits.
pub fn embed_texts(notification: &Notification) -> EmbedTexts {
    let mut title = truncate_middle(&notification.title, TITLE_MAX);
    if title.is_empty() {
        title = FALLBACK_TITLE.to_string();
    }
    let footer = truncate_middle(&notification.key, FOOTER_MAX);
    let used = limits::count(&title) + limits::count(&footer);
    // Title ≤ 256 and footer ≤ 2048 leave at least 3696 for the description.
    let room = DESCRIPTION_MAX.min(EMBED_TOTAL_MAX.saturating_sub(used));
    let description = truncate_middle(&notification.lines.join("\n"), room);
    EmbedTexts {
        title,
        description: Some(description).filter(|d| !d.is_empty()),
        footer: Some(footer).filter(|f| !f.is_empty()),
    }
}

/// The JSON body for the notification's delivery (POST for create/post, PATCH for edit).
pub fn body(notification: &Notification, options: &MessageOptions<'_>) -> Value {
    let texts = embed_texts(notification);
    let mut embed = Map::new();
    embed.insert("title".into(), json!(texts.title));
    if let Some(d) = texts.description {
        embed.insert("description".into(), json!(d));
    }
    embed.insert("color".into(), json!(notification.severity.color()));
    if let Some(f) = texts.footer {
        embed.insert("footer".into(), json!({ "text": f }));
    }
    if let Some(t) = options.timestamp {
        embed.insert("timestamp".into(), json!(t));
    }

    let mut body = Map::new();
    let editing = matches!(notification.delivery, Delivery::Edit { .. });
    if !editing {
        body.insert("username".into(), json!(options.username));
    }
    match options.role_id {
        Some(role) if notification.ping => {
            body.insert("content".into(), json!(format!("<@&{role}>")));
            body.insert("allowed_mentions".into(), json!({ "roles": [role] }));
        }
        _ => {
            body.insert("allowed_mentions".into(), json!({ "parse": [] }));
        }
    }
    body.insert("embeds".into(), Value::Array(vec![Value::Object(embed)]));
    Value::Object(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use burst_core::Severity;

    fn notification(delivery: Delivery, ping: bool) -> Notification {
        Notification {
            key: "home-3".into(),
            delivery,
            title: "Outage at home".into(),
            severity: Severity::Trouble,
            lines: vec!["12:00:00 on battery".into(), "12:02:00 outage".into()],
            ping,
        }
    }

    const OPTS: MessageOptions<'static> = MessageOptions {
        username: "hybrid-burst",
        role_id: None,
        timestamp: Some("2026-01-10T12:02:00Z"),
    };

    #[test]
    fn create_body_is_exact() {
        let body = body(&notification(Delivery::Create, true), &OPTS);
        assert_eq!(
            body,
            json!({
                "username": "hybrid-burst",
                "allowed_mentions": {"parse": []},
                "embeds": [{
                    "title": "Outage at home",
                    "description": "12:00:00 on battery\n12:02:00 outage",
                    "color": 15548997,
                    "footer": {"text": "home-3"},
                    "timestamp": "2026-01-10T12:02:00Z"
                }]
            })
        );
    }

    #[test]
    fn role_ping_only_when_configured_and_asked() {
        let with_role = MessageOptions {
            role_id: Some("112233"),
            ..OPTS
        };
        let b = body(&notification(Delivery::Post, true), &with_role);
        assert_eq!(b["content"], json!("<@&112233>"));
        assert_eq!(b["allowed_mentions"], json!({"roles": ["112233"]}));

        let b = body(&notification(Delivery::Post, false), &with_role);
        assert!(b.get("content").is_none());
        assert_eq!(b["allowed_mentions"], json!({"parse": []}));

        let b = body(&notification(Delivery::Post, true), &OPTS);
        assert!(b.get("content").is_none());
        assert_eq!(b["allowed_mentions"], json!({"parse": []}));
    }

    #[test]
    fn edit_has_no_username_and_green_resolved_colour() {
        let mut n = notification(
            Delivery::Edit {
                message_id: "9".into(),
            },
            false,
        );
        n.severity = Severity::Resolved;
        let b = body(&n, &OPTS);
        assert!(b.get("username").is_none());
        assert_eq!(b["embeds"][0]["color"], json!(0x57F287));
        assert_eq!(b["allowed_mentions"], json!({"parse": []}));
    }

    #[test]
    fn empty_texts_are_left_out_or_replaced() {
        let n = Notification {
            key: "  ".into(),
            delivery: Delivery::Post,
            title: " \n ".into(),
            severity: Severity::Info,
            lines: vec![" ".into(), String::new()],
            ping: false,
        };
        let b = body(
            &n,
            &MessageOptions {
                timestamp: None,
                ..OPTS
            },
        );
        assert_eq!(
            b["embeds"],
            json!([{"title": "hybrid-burst", "color": 0x5865F2}])
        );
    }

    #[test]
    fn huge_texts_fit_every_limit_and_the_total() {
        let n = Notification {
            key: "k".repeat(5000),
            delivery: Delivery::Create,
            title: "🔥".repeat(1000),
            severity: Severity::Trouble,
            lines: (0..500)
                .map(|i| format!("{i} {}", "é中👩‍👩‍👧".repeat(20)))
                .collect(),
            ping: false,
        };
        let t = embed_texts(&n);
        let title = limits::count(&t.title);
        let desc = limits::count(t.description.as_deref().unwrap());
        let footer = limits::count(t.footer.as_deref().unwrap());
        assert_eq!(title, TITLE_MAX);
        assert_eq!(footer, FOOTER_MAX);
        assert!(desc <= DESCRIPTION_MAX);
        // Room left: 6000 - 256 - 2048 = 3696, less at most one line (144) per side for whole lines.
        assert!(desc > 3696 - 2 * 145, "{desc}");
        assert!(title + desc + footer <= EMBED_TOTAL_MAX);
        let d = t.description.unwrap();
        assert!(d.starts_with("0 é中"));
        assert!(d.ends_with("👩‍👩‍👧"));
        assert!(d.contains("\n499 "));
    }
}
