//! Agent → function authentication: a short-lived JWT per HTTP attempt (the README's
//! "Wire contract").
//!
//! Claims: `iss` = site id, `aud` = `hybrid-burst`, `iat`, `exp` = `iat` + 120 s, a fresh
//! `jti` (UUID v4) per attempt, and `body_sha256` binding the token to the exact body bytes.
//! Keys are loaded once; the token itself is never logged.

use std::path::Path;

use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Algorithm, Config};

/// The JWT audience every function checks.
pub const AUDIENCE: &str = "hybrid-burst";
/// Token lifetime; the function accepts at most 300 s (with 60 s clock leeway).
pub const TOKEN_LIFETIME_S: i64 = 120;

/// The claims the agent signs. Also used by test receivers to decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub body_sha256: String,
}

/// Signing could not be set up (bad or missing key). Fix the configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the Ed25519 key file {path}: {source}")]
    ReadKey {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the Ed25519 key is not a PKCS#8 PEM private key: {0}")]
    BadKey(String),
    #[error("{0}")]
    Missing(String),
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

/// Signs JWTs for one site with one key.
pub struct Signer {
    algorithm: jsonwebtoken::Algorithm,
    key: EncodingKey,
    site_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("algorithm", &self.algorithm)
            .field("site_id", &self.site_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// An EdDSA signer from a PKCS#8 PEM private key (what `burst-agent keygen` prints).
    pub fn ed25519_pem(site_id: &str, pem: &[u8]) -> Result<Signer, AuthError> {
        let key = EncodingKey::from_ed_pem(pem).map_err(|e| AuthError::BadKey(e.to_string()))?;
        let signer = Signer {
            algorithm: jsonwebtoken::Algorithm::EdDSA,
            key,
            site_id: site_id.to_string(),
        };
        // Catch a wrong key type at startup, not at the first event.
        signer.token(b"{}", 0)?;
        Ok(signer)
    }

    /// An HS256 signer from a shared secret.
    pub fn hs256(site_id: &str, secret: &[u8]) -> Result<Signer, AuthError> {
        if secret.is_empty() {
            return Err(AuthError::Missing("the HS256 secret is empty".into()));
        }
        Ok(Signer {
            algorithm: jsonwebtoken::Algorithm::HS256,
            key: EncodingKey::from_secret(secret),
            site_id: site_id.to_string(),
        })
    }

    /// The signer the configuration asks for.
    pub fn from_config(config: &Config) -> Result<Signer, AuthError> {
        match config.algorithm {
            Algorithm::EdDSA => {
                let path = config.ed25519_key_file.as_deref().ok_or_else(|| {
                    AuthError::Missing(
                        "algorithm EdDSA needs ed25519_key_file (BURST_AGENT_ED25519_KEY_FILE)"
                            .into(),
                    )
                })?;
                let pem = read_key(path)?;
                Signer::ed25519_pem(&config.site_id, &pem)
            }
            Algorithm::HS256 => {
                let secret = config
                    .hs256_secret()
                    .map_err(|e| AuthError::Missing(e.to_string()))?
                    .ok_or_else(|| {
                        AuthError::Missing(
                            "algorithm HS256 needs hs256_secret (BURST_AGENT_HS256_SECRET) or hs256_secret_file"
                                .into(),
                        )
                    })?;
                Signer::hs256(&config.site_id, secret.as_bytes())
            }
        }
    }

    /// A fresh token for `body`, issued at `now` (Unix seconds). Each call has a new `jti`.
    pub fn token(&self, body: &[u8], now: i64) -> Result<String, AuthError> {
        let claims = Claims {
            iss: self.site_id.clone(),
            aud: AUDIENCE.to_string(),
            iat: now,
            exp: now + TOKEN_LIFETIME_S,
            jti: uuid::Uuid::new_v4().to_string(),
            body_sha256: body_sha256(body),
        };
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".to_string());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| AuthError::Sign(e.to_string()))
    }
}

fn read_key(path: &Path) -> Result<Vec<u8>, AuthError> {
    std::fs::read(path).map_err(|source| AuthError::ReadKey {
        path: path.display().to_string(),
        source,
    })
}

/// Lowercase hex SHA-256 of `body`.
pub fn body_sha256(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            body_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hs256_claims_bind_the_body() {
        let signer = Signer::hs256("home", b"secret").unwrap();
        let body = br#"{"id":"x"}"#;
        let t1 = signer.token(body, 1_700_000_000).unwrap();
        let t2 = signer.token(body, 1_700_000_000).unwrap();

        let header = decode_header(&t1).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));

        let mut v = Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_audience(&[AUDIENCE]);
        v.validate_exp = false; // fixed clock above
        let c1 = decode::<Claims>(&t1, &DecodingKey::from_secret(b"secret"), &v)
            .unwrap()
            .claims;
        let c2 = decode::<Claims>(&t2, &DecodingKey::from_secret(b"secret"), &v)
            .unwrap()
            .claims;
        assert_eq!(c1.iss, "home");
        assert_eq!(c1.aud, "hybrid-burst");
        assert_eq!(c1.iat, 1_700_000_000);
        assert_eq!(c1.exp - c1.iat, TOKEN_LIFETIME_S);
        assert!(c1.exp - c1.iat <= 300);
        assert_eq!(c1.body_sha256, body_sha256(body));
        assert_ne!(c1.jti, c2.jti, "every token gets a fresh jti");
        uuid::Uuid::parse_str(&c1.jti).unwrap();

        // Pinned algorithm: an HS256 token is refused where EdDSA is expected.
        let v_ed = Validation::new(jsonwebtoken::Algorithm::EdDSA);
        assert!(decode::<Claims>(&t1, &DecodingKey::from_secret(b"secret"), &v_ed).is_err());
    }

    #[test]
    fn eddsa_round_trip_with_generated_keys() {
        let pair = crate::keygen::generate().unwrap();
        let signer = Signer::ed25519_pem("site-a", pair.private_pkcs8_pem.as_bytes()).unwrap();
        let token = signer
            .token(b"body", chrono::Utc::now().timestamp())
            .unwrap();
        assert_eq!(
            decode_header(&token).unwrap().alg,
            jsonwebtoken::Algorithm::EdDSA
        );
        let key = DecodingKey::from_ed_pem(pair.public_spki_pem.as_bytes()).unwrap();
        let mut v = Validation::new(jsonwebtoken::Algorithm::EdDSA);
        v.set_audience(&[AUDIENCE]);
        v.set_issuer(&["site-a"]);
        let claims = decode::<Claims>(&token, &key, &v).unwrap().claims;
        assert_eq!(claims.body_sha256, body_sha256(b"body"));
    }

    #[test]
    fn bad_keys_are_rejected_at_load() {
        assert!(Signer::ed25519_pem("s", b"not a pem").is_err());
        let pair = crate::keygen::generate().unwrap();
        assert!(
            Signer::ed25519_pem("s", pair.public_spki_pem.as_bytes()).is_err(),
            "a public key is not a signing key"
        );
        assert!(Signer::hs256("s", b"").is_err());
    }
}
