//! Agent authentication (CONTRACT): a JWT in `Authorization: Bearer`, EdDSA or HS256, the
//! configured algorithm the only one accepted; `aud` = "hybrid-burst", `exp` at most 300 s
//! after `iat`, 60 s leeway, a `jti` checked against replays, and `body_sha256` binding the
//! token to the exact body.
//!
//! Signature checking is the jsonwebtoken crate's; the time checks are done here against the
//! `now` passed in, so they are testable and identical on every platform.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const AUDIENCE: &str = "hybrid-burst";
pub const MAX_LIFETIME_S: i64 = 300;
pub const LEEWAY_S: i64 = 60;

/// The verifier, built once from settings.
#[derive(Clone)]
pub struct AgentKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("AgentKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// `BURST_AGENT_ED25519_PUBLIC_KEY` is not an Ed25519 public key in PEM.
    #[error("BURST_AGENT_ED25519_PUBLIC_KEY is not an Ed25519 public key in PEM form")]
    BadPublicKey,
    /// The HS256 secret is too short to be a secret.
    #[error("BURST_AGENT_HS256_SECRET must be at least 32 bytes")]
    ShortSecret,
    /// Both were set: the algorithm would be ambiguous.
    #[error("set only one of BURST_AGENT_ED25519_PUBLIC_KEY and BURST_AGENT_HS256_SECRET")]
    Both,
}

impl AgentKey {
    pub fn ed25519_pem(pem: &str) -> Result<AgentKey, KeyError> {
        // Settings often carry PEM with literal "\n"; accept both.
        let pem = pem.replace("\\n", "\n");
        let key = DecodingKey::from_ed_pem(pem.as_bytes()).map_err(|_| KeyError::BadPublicKey)?;
        Ok(AgentKey {
            algorithm: Algorithm::EdDSA,
            key,
        })
    }

    pub fn hs256(secret: &str) -> Result<AgentKey, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::ShortSecret);
        }
        Ok(AgentKey {
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret.as_bytes()),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// The claims the agent signs.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub body_sha256: String,
}

/// Why a token was refused (all map to 401; the code tells the agent's owner what to fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization: Bearer header")]
    Missing,
    #[error("token is malformed or its signature does not verify")]
    BadToken,
    #[error("token algorithm is not the configured one")]
    WrongAlgorithm,
    #[error("token claims are missing or malformed: {0}")]
    BadClaims(String),
    #[error("token audience is not \"hybrid-burst\"")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is issued in the future")]
    NotYetValid,
    #[error("token lifetime exceeds 300 s")]
    TooLong,
    #[error("token's body_sha256 does not match the body")]
    BodyMismatch,
    #[error("token issuer {0:?} is not a site this deployment watches")]
    UnknownSite(String),
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::BadToken => "invalid_token",
            AuthError::WrongAlgorithm => "wrong_algorithm",
            AuthError::BadClaims(_) => "invalid_claims",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::TooLong => "token_lifetime_too_long",
            AuthError::BodyMismatch => "body_hash_mismatch",
            AuthError::UnknownSite(_) => "unknown_site",
        }
    }
}

/// Lowercase hex SHA-256 of the body.
pub fn body_sha256(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Extracts the bearer token from an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let h = header.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = h.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

/// Verifies signature, algorithm, audience, times and the body binding. The caller checks
/// `iss` against its sites and `jti` against the replay store.
pub fn verify(
    key: &AgentKey,
    token: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<Claims, AuthError> {
    let mut v = Validation::new(key.algorithm);
    // Times and audience are checked below against our own clock.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let data = decode::<serde_json::Value>(token, &key.key, &v).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm,
        _ => AuthError::BadToken,
    })?;
    let claims: Claims =
        serde_json::from_value(data.claims).map_err(|e| AuthError::BadClaims(e.to_string()))?;
    if claims.aud != AUDIENCE {
        return Err(AuthError::WrongAudience);
    }
    // Checked arithmetic: signed claims may hold any i64 (no overflow in debug or release).
    let lifetime_ok = claims
        .exp
        .checked_sub(claims.iat)
        .is_some_and(|l| (0..=MAX_LIFETIME_S).contains(&l));
    if !lifetime_ok {
        return Err(AuthError::TooLong);
    }
    if claims.iat > now_unix.saturating_add(LEEWAY_S) {
        return Err(AuthError::NotYetValid);
    }
    if claims.exp.saturating_add(LEEWAY_S) < now_unix {
        return Err(AuthError::Expired);
    }
    if claims.jti.is_empty() || claims.jti.len() > 128 {
        return Err(AuthError::BadClaims(
            "jti must be 1 to 128 characters".into(),
        ));
    }
    if !claims.body_sha256.eq_ignore_ascii_case(&body_sha256(body)) {
        return Err(AuthError::BodyMismatch);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn token(iat: i64, exp: i64, body: &[u8]) -> String {
        let claims = serde_json::json!({
            "iss": "home", "aud": AUDIENCE, "iat": iat, "exp": exp, "jti": "j-1",
            "body_sha256": body_sha256(body),
        });
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn extreme_times_are_refused_without_overflow() {
        let key = AgentKey::hs256(SECRET).unwrap();
        let now = 1_772_409_600;
        let body = b"{}";
        let cases = [
            (i64::MIN, i64::MAX, AuthError::TooLong),
            (i64::MAX, i64::MIN, AuthError::TooLong),
            (i64::MIN, i64::MIN + 10, AuthError::Expired),
            (i64::MAX - 10, i64::MAX, AuthError::NotYetValid),
            (now - 100, i64::MAX, AuthError::TooLong),
            (i64::MIN, now, AuthError::TooLong),
        ];
        for (iat, exp, want) in cases {
            let got = verify(&key, &token(iat, exp, body), body, now).unwrap_err();
            assert_eq!(got, want, "iat {iat}, exp {exp}");
            assert!(!got.code().is_empty());
        }
        // Extreme clocks on our side do not overflow either.
        let t = token(now, now + 60, body);
        assert_eq!(
            verify(&key, &t, body, i64::MAX).unwrap_err(),
            AuthError::Expired
        );
        assert_eq!(
            verify(&key, &t, body, i64::MIN).unwrap_err(),
            AuthError::NotYetValid
        );
        assert!(verify(&key, &t, body, now).is_ok());
    }
}
