//! The agent's JWT as the functions check it: `bearer` on the `Authorization` header, then
//! `verify` with an HS256 `AgentKey`.
//!
//! Input, three parts split at the first two newlines:
//! 1. an `Authorization` header value (e.g. `Bearer eyJ…`);
//! 2. claims JSON, which the target signs with the right key (a random token never carries a
//!    valid HMAC, so this is how the claim checks behind the signature get reached); a
//!    `body_sha256` of `"="` stands for the right hash of the body;
//! 3. the request body.
//!
//! Properties:
//! - `bearer` either refuses with `Missing` or returns a non-empty trimmed token, which it
//!   returns again from the canonical `Bearer <token>`;
//! - a token `verify` accepts names HS256 in its header and satisfies every documented check
//!   (issuer, audience, lifetime, times with leeway, `jti` length, and `body_sha256` of the
//!   exact body);
//! - claims that pass those checks, signed with the right key, are accepted and come back as
//!   signed; the same claims signed with another key are refused;
//! - a signed token with one character changed is refused unless its segments still decode to
//!   the same bytes.

#![no_main]

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use burst_wire::MAX_JTI_LEN;
use burst_wire::{
    AUDIENCE, AgentKey, AuthError, Claims, LEEWAY_S, MAX_LIFETIME_S, Signer, bearer, body_sha256,
    verify,
};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// Fuzzing-only secrets (protect nothing).
const SECRET: &str = "0123456789abcdef0123456789abcdef-fuzz";
const OTHER_SECRET: &str = "0123456789abcdef0123456789abcdef-other";
/// The verifier's clock: 30 s after the `iat` of the seed tokens and of the contract fixture.
const NOW: i64 = 1_772_366_430;

static KEY: LazyLock<AgentKey> =
    LazyLock::new(|| AgentKey::hs256(SECRET).expect("a 32-byte secret"));
static SIGNER: LazyLock<Signer> =
    LazyLock::new(|| Signer::hs256("home", SECRET.as_bytes()).expect("a secret"));
static OTHER_SIGNER: LazyLock<Signer> =
    LazyLock::new(|| Signer::hs256("home", OTHER_SECRET.as_bytes()).expect("a secret"));

/// Decodes a token segment leniently (padding and trailing bits allowed), to tell whether two
/// segments carry the same bytes.
static LENIENT: LazyLock<GeneralPurpose> = LazyLock::new(|| {
    GeneralPurpose::new(
        &URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
});

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The checks `verify` documents, written independently (i128: no overflow to reason about).
fn acceptable(c: &Claims, body: &[u8], now: i64) -> bool {
    let (iat, exp, now) = (i128::from(c.iat), i128::from(c.exp), i128::from(now));
    let not_before = c.nbf.map_or(iat, |nbf| i128::from(nbf).max(iat));
    !c.iss.is_empty()
        && c.aud == AUDIENCE
        && (0..=i128::from(MAX_LIFETIME_S)).contains(&(exp - iat))
        && not_before <= now + i128::from(LEEWAY_S)
        && exp + i128::from(LEEWAY_S) >= now
        && (1..=MAX_JTI_LEN).contains(&c.jti.len())
        && c.body_sha256.eq_ignore_ascii_case(&body_sha256(body))
}

/// What must hold for every token `verify` accepted.
fn check_accepted(token: &str, claims: &Claims, body: &[u8]) {
    assert!(acceptable(claims, body, NOW), "accepted {claims:?}");
    let header = token.split('.').next().unwrap_or_default();
    let header: serde_json::Value = LENIENT
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .expect("an accepted token has a JSON header");
    assert_eq!(header["alg"], "HS256", "accepted {header}");
}

fn segments(token: &str) -> Vec<Option<Vec<u8>>> {
    token.split('.').map(|s| LENIENT.decode(s).ok()).collect()
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let header = parts.next().unwrap_or_default();
    let claims_json = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();

    // 1. The header as received.
    if let Ok(header) = std::str::from_utf8(header) {
        match bearer(Some(header)) {
            Ok(token) => {
                assert!(!token.is_empty() && token == token.trim(), "{token:?}");
                assert_eq!(bearer(Some(&format!("Bearer {token}"))), Ok(token));
                if let Ok(claims) = verify(&KEY, token, body, NOW) {
                    check_accepted(token, &claims, body);
                }
            }
            Err(e) => assert_eq!(e, AuthError::Missing),
        }
    }

    // 2. The fuzzer's claims, signed with the right key and with another.
    let Ok(mut claims) = serde_json::from_slice::<Claims>(claims_json) else {
        return;
    };
    if claims.body_sha256 == "=" {
        claims.body_sha256 = body_sha256(body);
    }
    let token = SIGNER.sign(&claims).expect("HS256 signs any claims");
    match verify(&KEY, &token, body, NOW) {
        Ok(back) => {
            assert_eq!(back, claims);
            check_accepted(&token, &back, body);
        }
        Err(e) => assert!(!acceptable(&claims, body, NOW), "{claims:?} refused: {e}"),
    }
    let forged = OTHER_SIGNER.sign(&claims).expect("HS256 signs any claims");
    assert!(
        verify(&KEY, &forged, body, NOW).is_err(),
        "signed with another key: {claims:?}"
    );

    // 3. One character of the signed token changed (position and replacement from the input).
    let seed = data.iter().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(*b))
    });
    let at = seed % token.len();
    let old = token.as_bytes()[at];
    let Some(index) = BASE64URL.iter().position(|c| *c == old) else {
        return; // a '.' separator: moving it is not a one-character change of a segment
    };
    let new = BASE64URL[(index + 1 + (seed >> 8) % 63) % 64];
    let mut tampered = token.clone().into_bytes();
    tampered[at] = new;
    let tampered = String::from_utf8(tampered).expect("ASCII");
    if verify(&KEY, &tampered, body, NOW).is_ok() {
        assert_eq!(
            segments(&tampered),
            segments(&token),
            "tampered token {tampered} accepted"
        );
    }
});
