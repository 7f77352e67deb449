//! Tailscale webhook bodies (`burst_tailscale::payload::parse` and `parse_events`).
//!
//! Input: a delivery body (a JSON array of events, as Tailscale posts it).
//!
//! Properties:
//! - `parse_events` agrees with `parse` (same count, order, type, hash);
//! - every event's dedupe hash is 64 lowercase hex digits;
//! - the same delivery written differently (re-serialised: other whitespace, keys in
//!   serde_json's order, duplicate keys resolved) parses to the same events, so the dedupe hash
//!   depends on the content only.

#![no_main]

use burst_tailscale::payload::{parse, parse_events};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let (events, core) = match (parse(body), parse_events(body)) {
        (Ok(events), Ok(core)) => (events, core),
        (Err(e), Err(core_e)) => {
            assert_eq!(e, core_e);
            return;
        }
        (events, core) => panic!("parse {events:?} but parse_events {core:?}"),
    };
    assert_eq!(core.len(), events.len());
    for (event, input) in events.iter().zip(&core) {
        assert_eq!((&input.hash, &input.kind), (&event.hash, &event.kind));
        assert!(!event.kind.trim().is_empty());
        assert!(
            event.hash.len() == 64
                && event
                    .hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "hash {:?}",
            event.hash
        );
    }

    let value: serde_json::Value = serde_json::from_slice(body).expect("parse read it as JSON");
    let rewritten = serde_json::to_vec_pretty(&value).expect("a Value always serialises");
    assert_eq!(
        parse(&rewritten).as_ref(),
        Ok(&events),
        "re-serialised: {}",
        String::from_utf8_lossy(&rewritten)
    );
});
