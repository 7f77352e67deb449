//! Property: whatever the core hands over (any unicode, any length), the body the client builds
//! is accepted by the simulator's Discord validation.
#![allow(clippy::unwrap_used)]

use burst_core::{Delivery, Notification, Severity};
use burst_discord::limits::{self, DESCRIPTION_MAX, EMBED_TOTAL_MAX, FOOTER_MAX, TITLE_MAX};
use burst_discord::message::{MessageOptions, body};
use burst_discord_sim::{validate_edit, validate_execute};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(🔥|👩‍👩‍👧|é|中|\u{3000}| |\n|\t|x|@everyone|<@&1>){0,500}",
        "[ \n]{0,20}",
    ]
}

fn severity() -> impl Strategy<Value = Severity> {
    prop_oneof![
        Just(Severity::Trouble),
        Just(Severity::Warning),
        Just(Severity::Resolved),
        Just(Severity::Info),
    ]
}

fn notification() -> impl Strategy<Value = Notification> {
    (
        text(),
        text(),
        proptest::collection::vec(text(), 0..30),
        severity(),
        any::<bool>(),
        prop_oneof![Just(0u8), Just(1), Just(2)],
    )
        .prop_map(|(key, title, lines, severity, ping, d)| Notification {
            key,
            delivery: match d {
                0 => Delivery::Create,
                1 => Delivery::Post,
                _ => Delivery::Edit {
                    message_id: "1300000000000000000".into(),
                },
            },
            title,
            severity,
            lines,
            ping,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_body_is_accepted(n in notification(), role in prop_oneof![Just(None), Just(Some("4242"))]) {
        let opts = MessageOptions { username: "hybrid-burst", role_id: role, timestamp: Some("2026-01-10T12:00:00Z") };
        let b = body(&n, &opts);
        match n.delivery {
            Delivery::Edit { .. } => prop_assert_eq!(validate_edit(&b), Ok(())),
            _ => prop_assert_eq!(validate_execute(&b), Ok(())),
        }
        let e = &b["embeds"][0];
        let t = limits::count(e["title"].as_str().unwrap());
        let d = e.get("description").map(|v| limits::count(v.as_str().unwrap())).unwrap_or(0);
        let f = e.get("footer").map(|v| limits::count(v["text"].as_str().unwrap())).unwrap_or(0);
        prop_assert!(t > 0 && t <= TITLE_MAX);
        prop_assert!(d <= DESCRIPTION_MAX && f <= FOOTER_MAX);
        prop_assert!(t + d + f <= EMBED_TOTAL_MAX);
        // Never an empty text field.
        if let Some(v) = e.get("description") { prop_assert!(d > 0, "{v}"); }
        if let Some(v) = e.get("footer") { prop_assert!(f > 0, "{v}"); }
        prop_assert!(b.get("allowed_mentions").is_some());
    }
}
