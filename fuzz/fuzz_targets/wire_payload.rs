//! The agent routes' bodies: `Payload::parse` for each payload kind, and the framing check.
//!
//! Input: a request body (JSON as the agent or the witness posts it). Every body is parsed as
//! all three kinds; at most one usually fits.
//!
//! Properties:
//! - a body that parses re-serialises (`agent_request`, what a simulated home sends) to a body
//!   of the same kind that parses back to the same core input;
//! - parsing is deterministic;
//! - `check_body` accepts exactly: at most `BODY_LIMIT` bytes and `application/json` (any case,
//!   any parameters), refusing size before type.

#![no_main]

use burst_wire::agent_request;
use burst_wire::{BODY_LIMIT, BodyError, JSON_CONTENT_TYPE, Payload, check_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    for kind in Payload::ALL {
        let Ok(input) = kind.parse(body) else {
            continue;
        };
        assert_eq!(
            kind.parse(body),
            Ok(input.clone()),
            "{kind:?}: not deterministic"
        );
        let (resent_kind, resent) =
            agent_request(&input).expect("an agent payload always has a route and a body");
        assert_eq!(resent_kind, kind);
        assert_eq!(
            kind.parse(&resent),
            Ok(input),
            "{kind:?}: re-sent body {:?} reads differently",
            String::from_utf8_lossy(&resent)
        );
    }

    // The body's first line stands in for a Content-Type header; its length for the body's.
    let header = body.split(|b| *b == b'\n').next().unwrap_or_default();
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let mime_ok = header
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(JSON_CONTENT_TYPE));
    // Lengths on both sides of the limit.
    let over = BODY_LIMIT + usize::from(body.first().copied().unwrap_or(0));
    for len in [body.len(), BODY_LIMIT, over] {
        match check_body(Some(header), len) {
            Ok(()) => assert!(len <= BODY_LIMIT && mime_ok, "{header:?} {len} accepted"),
            Err(e @ BodyError::TooLarge { .. }) => {
                assert!(len > BODY_LIMIT, "{len}: {e}");
                assert_eq!(e.status(), 413);
            }
            Err(e @ BodyError::NotJson { .. }) => {
                assert!(len <= BODY_LIMIT && !mime_ok, "{header:?} {len}: {e}");
                assert_eq!(e.status(), 415);
            }
        }
    }
});
