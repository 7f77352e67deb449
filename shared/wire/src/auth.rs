//! The agent's JWT: one short-lived token per HTTP attempt, in `Authorization: Bearer`.
//!
//! Claims: `iss` = site id, `aud` = [`AUDIENCE`], `iat`, `exp` = `iat` + [`TOKEN_LIFETIME_S`],
//! a fresh `jti` (UUID v4) per token, and `body_sha256` binding the token to the exact body
//! bytes. EdDSA (Ed25519) in production, HS256 where key files are a burden; the verifier
//! accepts only the algorithm it was configured with.
//!
//! Signatures are the `jsonwebtoken` crate's; the time checks are done here against the `now`
//! passed in (checked arithmetic: signed claims may hold any i64), so they are testable and
//! identical on every platform. Keys are never printed.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The audience every token names and every function checks.
pub const AUDIENCE: &str = "hybrid-burst";
/// The lifetime the agent signs for.
pub const TOKEN_LIFETIME_S: i64 = 120;
/// The longest lifetime (`exp` − `iat`) the functions accept.
pub const MAX_LIFETIME_S: i64 = 300;
/// Clock difference tolerated between agent and cloud.
pub const LEEWAY_S: i64 = 60;
/// Longest accepted `jti`, in bytes.
pub const MAX_JTI_LEN: usize = 128;

/// The claims the agent signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Not sent by the agent; honoured when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    pub body_sha256: String,
}

impl Claims {
    /// Fresh claims for `body` from `site`, issued at `now` (Unix seconds), with a new `jti`.
    pub fn for_body(site: &str, body: &[u8], now: i64) -> Claims {
        Claims {
            iss: site.to_string(),
            aud: AUDIENCE.to_string(),
            iat: now,
            exp: now.saturating_add(TOKEN_LIFETIME_S),
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
            body_sha256: body_sha256(body),
        }
    }
}

/// Lowercase hex SHA-256 of `body`.
pub fn body_sha256(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A signing key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the Ed25519 key is not a PKCS#8 PEM private key: {0}")]
    BadKey(String),
    #[error("the HS256 secret is empty")]
    EmptySecret,
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

/// Key material: printed as a placeholder, never as bytes.
#[derive(Clone)]
struct Hidden<K>(K);

impl<K> std::fmt::Debug for Hidden<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<key>")
    }
}

/// Signs tokens for one site with one key.
#[derive(Debug)]
pub struct Signer {
    algorithm: Algorithm,
    key: Hidden<EncodingKey>,
    site_id: String,
}

impl Signer {
    /// An EdDSA signer from a PKCS#8 PEM private key (what `burst-agent keygen` prints).
    pub fn ed25519_pem(site_id: &str, pem: &[u8]) -> Result<Signer, SignError> {
        let key = EncodingKey::from_ed_pem(pem).map_err(|e| SignError::BadKey(e.to_string()))?;
        let signer = Signer {
            algorithm: Algorithm::EdDSA,
            key: Hidden(key),
            site_id: site_id.to_string(),
        };
        // A key of the wrong type is caught here, at startup, not at the first event.
        signer.token(b"{}", 0)?;
        Ok(signer)
    }

    /// An HS256 signer from a shared secret.
    pub fn hs256(site_id: &str, secret: &[u8]) -> Result<Signer, SignError> {
        if secret.is_empty() {
            return Err(SignError::EmptySecret);
        }
        Ok(Signer {
            algorithm: Algorithm::HS256,
            key: Hidden(EncodingKey::from_secret(secret)),
            site_id: site_id.to_string(),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn site_id(&self) -> &str {
        &self.site_id
    }

    /// A fresh token for `body`, issued at `now` (Unix seconds). Each call has a new `jti`.
    pub fn token(&self, body: &[u8], now: i64) -> Result<String, SignError> {
        self.sign(&Claims::for_body(&self.site_id, body, now))
    }

    /// Signs the given claims as they are (a test may sign odd ones on purpose).
    pub fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".to_string());
        jsonwebtoken::encode(&header, claims, &self.key.0)
            .map_err(|e| SignError::Sign(e.to_string()))
    }
}

/// The key the functions verify agent tokens with, built once from settings.
#[derive(Clone, Debug)]
pub struct AgentKey {
    algorithm: Algorithm,
    key: Hidden<DecodingKey>,
}

/// A verification key that cannot be used; names the function setting to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("BURST_AGENT_ED25519_PUBLIC_KEY is not an Ed25519 public key in PEM form")]
    BadPublicKey,
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
            key: Hidden(key),
        })
    }

    pub fn hs256(secret: &str) -> Result<AgentKey, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::ShortSecret);
        }
        Ok(AgentKey {
            algorithm: Algorithm::HS256,
            key: Hidden(DecodingKey::from_secret(secret.as_bytes())),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Why a token was refused (all answered 401; the code tells the agent's owner what to fix).
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

/// Extracts the bearer token from an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let h = header.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = h.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

/// The site a token claims to come from, read before any check, so a deployment that watches
/// several sites can pick that site's key. Nothing here is trusted: [`verify`] with the chosen
/// key checks the signature, which covers `iss`.
pub fn claimed_issuer(token: &str) -> Result<String, AuthError> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: String,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Issuer>(token)
        .map(|c| c.iss)
        .map_err(|_| AuthError::BadToken)
}

/// Verifies signature, algorithm, issuer form, audience, times, `jti` and the body binding.
/// The caller checks `iss` against its sites and `jti` against its replay store.
pub fn verify(key: &AgentKey, token: &str, body: &[u8], now: i64) -> Result<Claims, AuthError> {
    let mut v = Validation::new(key.algorithm);
    // Times and audience are checked below against the caller's clock.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let data = decode::<serde_json::Value>(token, &key.key.0, &v).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm,
        _ => AuthError::BadToken,
    })?;
    let claims: Claims =
        serde_json::from_value(data.claims).map_err(|e| AuthError::BadClaims(e.to_string()))?;
    check_claims(&claims, body, now)?;
    Ok(claims)
}

/// The claim checks of [`verify`], after the signature.
fn check_claims(claims: &Claims, body: &[u8], now: i64) -> Result<(), AuthError> {
    if claims.iss.is_empty() {
        return Err(AuthError::BadClaims("iss must name the site".into()));
    }
    if claims.aud != AUDIENCE {
        return Err(AuthError::WrongAudience);
    }
    let lifetime_ok = claims
        .exp
        .checked_sub(claims.iat)
        .is_some_and(|l| (0..=MAX_LIFETIME_S).contains(&l));
    if !lifetime_ok {
        return Err(AuthError::TooLong);
    }
    let not_before = claims.nbf.map_or(claims.iat, |nbf| nbf.max(claims.iat));
    if not_before > now.saturating_add(LEEWAY_S) {
        return Err(AuthError::NotYetValid);
    }
    if claims.exp.saturating_add(LEEWAY_S) < now {
        return Err(AuthError::Expired);
    }
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(AuthError::BadClaims(format!(
            "jti must be 1 to {MAX_JTI_LEN} characters"
        )));
    }
    if !claims.body_sha256.eq_ignore_ascii_case(&body_sha256(body)) {
        return Err(AuthError::BodyMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";
    /// Test-only Ed25519 key pair (generated for these tests; protects nothing).
    const PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIClZzOJsgg0Jpj93h7yYhz52I3fF8pzdm0Ul57cvvVZ7\n-----END PRIVATE KEY-----\n";
    const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA61EeDC3b9sWDUu2KPsf925Q48itt0YuS3s4QjGOrQPk=\n-----END PUBLIC KEY-----\n";
    const NOW: i64 = 1_772_409_600;

    fn hs() -> (Signer, AgentKey) {
        (
            Signer::hs256("home", SECRET.as_bytes()).unwrap(),
            AgentKey::hs256(SECRET).unwrap(),
        )
    }

    fn signed(iat: i64, exp: i64, body: &[u8]) -> String {
        let claims = Claims {
            iat,
            exp,
            ..Claims::for_body("home", body, iat)
        };
        hs().0.sign(&claims).unwrap()
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            body_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn signed_tokens_verify_and_bind_the_body() {
        let (signer, key) = hs();
        let body = br#"{"id":"x"}"#;
        let t1 = signer.token(body, NOW).unwrap();
        let t2 = signer.token(body, NOW).unwrap();
        let header = jsonwebtoken::decode_header(&t1).unwrap();
        assert_eq!(
            (header.alg, header.typ.as_deref()),
            (Algorithm::HS256, Some("JWT"))
        );
        let c1 = verify(&key, &t1, body, NOW).unwrap();
        let c2 = verify(&key, &t2, body, NOW).unwrap();
        assert_eq!((c1.iss.as_str(), c1.aud.as_str()), ("home", AUDIENCE));
        assert_eq!((c1.iat, c1.exp - c1.iat), (NOW, TOKEN_LIFETIME_S));
        assert_ne!(c1.jti, c2.jti, "every token gets a fresh jti");
        uuid::Uuid::parse_str(&c1.jti).unwrap();
        assert_eq!(
            verify(&key, &t1, b"{}", NOW).unwrap_err(),
            AuthError::BodyMismatch
        );
    }

    #[test]
    fn the_claimed_issuer_is_read_without_the_key() {
        let (signer, _) = hs();
        let token = signer.token(b"{}", NOW).unwrap();
        assert_eq!(claimed_issuer(&token).unwrap(), "home");
        for bad in ["", "a.b", "x.y.z", "a.e30.c"] {
            assert_eq!(
                claimed_issuer(bad).unwrap_err(),
                AuthError::BadToken,
                "{bad}"
            );
        }
    }

    #[test]
    fn eddsa_round_trip_and_pinned_algorithm() {
        let signer = Signer::ed25519_pem("site-a", PRIVATE_PEM.as_bytes()).unwrap();
        let token = signer.token(b"body", NOW).unwrap();
        // Settings may carry the PEM with escaped newlines.
        let key = AgentKey::ed25519_pem(&PUBLIC_PEM.replace('\n', "\\n")).unwrap();
        assert_eq!(key.algorithm(), Algorithm::EdDSA);
        let claims = verify(&key, &token, b"body", NOW).unwrap();
        assert_eq!(claims.iss, "site-a");
        // An HS256 token is refused where EdDSA is configured, and the other way round.
        let hs_token = hs().0.token(b"body", NOW).unwrap();
        assert_eq!(
            verify(&key, &hs_token, b"body", NOW).unwrap_err(),
            AuthError::WrongAlgorithm
        );
        assert_eq!(
            verify(&hs().1, &token, b"body", NOW).unwrap_err(),
            AuthError::WrongAlgorithm
        );
    }

    #[test]
    fn debug_output_hides_the_keys() {
        let (signer, key) = hs();
        let shown = format!("{signer:?} {key:?}");
        assert!(shown.contains("HS256") && shown.contains("home"), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert_eq!(shown.matches("<key>").count(), 2, "{shown}");
    }

    #[test]
    fn bad_keys_are_rejected_at_load() {
        assert!(matches!(
            Signer::ed25519_pem("s", b"not a pem"),
            Err(SignError::BadKey(_))
        ));
        assert!(
            Signer::ed25519_pem("s", PUBLIC_PEM.as_bytes()).is_err(),
            "a public key is not a signing key"
        );
        assert_eq!(Signer::hs256("s", b"").unwrap_err(), SignError::EmptySecret);
        assert_eq!(
            AgentKey::ed25519_pem("nope").unwrap_err(),
            KeyError::BadPublicKey
        );
        assert_eq!(AgentKey::hs256("short").unwrap_err(), KeyError::ShortSecret);
    }

    #[test]
    fn claim_checks_each_have_their_error() {
        let (signer, key) = hs();
        let body = b"{}";
        let base = Claims::for_body("home", body, NOW);
        let cases = [
            (
                Claims {
                    aud: "other".into(),
                    ..base.clone()
                },
                "wrong_audience",
            ),
            (
                Claims {
                    iss: String::new(),
                    ..base.clone()
                },
                "invalid_claims",
            ),
            (
                Claims {
                    jti: "x".repeat(MAX_JTI_LEN + 1),
                    ..base.clone()
                },
                "invalid_claims",
            ),
            (
                Claims {
                    nbf: Some(NOW + LEEWAY_S + 1),
                    ..base.clone()
                },
                "token_not_yet_valid",
            ),
            (
                Claims {
                    body_sha256: body_sha256(b"other"),
                    ..base.clone()
                },
                "body_hash_mismatch",
            ),
        ];
        for (claims, code) in cases {
            let token = signer.sign(&claims).unwrap();
            assert_eq!(
                verify(&key, &token, body, NOW).unwrap_err().code(),
                code,
                "{claims:?}"
            );
        }
        // Within the leeway on both ends.
        let nbf_soon = Claims {
            nbf: Some(NOW + LEEWAY_S),
            ..base
        };
        assert!(verify(&key, &signer.sign(&nbf_soon).unwrap(), body, NOW).is_ok());
        let late = signed(NOW - TOKEN_LIFETIME_S - LEEWAY_S, NOW - LEEWAY_S, body);
        assert!(verify(&key, &late, body, NOW).is_ok());
        assert_eq!(
            verify(&key, &late, body, NOW + 1).unwrap_err(),
            AuthError::Expired
        );
        assert_eq!(
            verify(&key, "not.a.token", body, NOW).unwrap_err(),
            AuthError::BadToken
        );
    }

    #[test]
    fn extreme_times_are_refused_without_overflow() {
        let key = hs().1;
        let body = b"{}";
        let cases = [
            (i64::MIN, i64::MAX, AuthError::TooLong),
            (i64::MAX, i64::MIN, AuthError::TooLong),
            (i64::MIN, i64::MIN + 10, AuthError::Expired),
            (i64::MAX - 10, i64::MAX, AuthError::NotYetValid),
            (NOW - 100, i64::MAX, AuthError::TooLong),
            (i64::MIN, NOW, AuthError::TooLong),
        ];
        for (iat, exp, want) in cases {
            let got = verify(&key, &signed(iat, exp, body), body, NOW).unwrap_err();
            assert_eq!(got, want, "iat {iat}, exp {exp}");
        }
        // Extreme clocks on our side do not overflow either.
        let t = signed(NOW, NOW + 60, body);
        assert_eq!(
            verify(&key, &t, body, i64::MAX).unwrap_err(),
            AuthError::Expired
        );
        assert_eq!(
            verify(&key, &t, body, i64::MIN).unwrap_err(),
            AuthError::NotYetValid
        );
        assert!(verify(&key, &t, body, NOW).is_ok());
    }

    #[test]
    fn bearer_needs_the_scheme_and_a_token() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer  "),
            Some("Basic abc"),
        ] {
            assert_eq!(bearer(bad), Err(AuthError::Missing), "{bad:?}");
        }
    }
}
