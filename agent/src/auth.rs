//! The agent's signer, built from its configuration. The token (claims, audience, lifetime)
//! and the signing itself are the wire contract's ([`burst_wire`]); keys are loaded
//! once and the token is never logged.

use std::path::Path;

pub use burst_wire::{AUDIENCE, Claims, SignError, Signer, TOKEN_LIFETIME_S, body_sha256};

use crate::config::{Algorithm, Config};

/// Signing could not be set up (bad or missing key). Fix the configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the Ed25519 key file {path}: {source}")]
    ReadKey {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Missing(String),
    #[error(transparent)]
    Key(#[from] SignError),
}

/// The signer the configuration asks for.
pub fn signer_from_config(config: &Config) -> Result<Signer, AuthError> {
    match config.algorithm {
        Algorithm::EdDSA => {
            let path = config.ed25519_key_file.as_deref().ok_or_else(|| {
                AuthError::Missing(
                    "algorithm EdDSA needs ed25519_key_file (BURST_AGENT_ED25519_KEY_FILE)".into(),
                )
            })?;
            let pem = read_key(path)?;
            Ok(Signer::ed25519_pem(&config.site_id, &pem)?)
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
            Ok(Signer::hs256(&config.site_id, secret.as_bytes())?)
        }
    }
}

fn read_key(path: &Path) -> Result<Vec<u8>, AuthError> {
    std::fs::read(path).map_err(|source| AuthError::ReadKey {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use burst_wire::{AgentKey, verify};

    #[test]
    fn keygen_keys_sign_what_the_function_verifies() {
        let pair = crate::keygen::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("agent.pem");
        std::fs::write(&key_file, &pair.private_pkcs8_pem).unwrap();
        let config = Config {
            site_id: "site-a".into(),
            algorithm: Algorithm::EdDSA,
            ed25519_key_file: Some(key_file),
            ..Config::default()
        };
        let signer = signer_from_config(&config).unwrap();
        let now = chrono::Utc::now().timestamp();
        let token = signer.token(b"body", now).unwrap();
        let key = AgentKey::ed25519_pem(&pair.public_spki_pem).unwrap();
        let claims = verify(&key, &token, b"body", now).unwrap();
        assert_eq!(
            (claims.iss.as_str(), claims.body_sha256),
            ("site-a", body_sha256(b"body"))
        );
    }

    #[test]
    fn missing_keys_name_the_setting() {
        let config = Config {
            algorithm: Algorithm::EdDSA,
            ed25519_key_file: None,
            ..Config::default()
        };
        let e = signer_from_config(&config).unwrap_err().to_string();
        assert!(e.contains("ed25519_key_file"), "{e}");
        let config = Config {
            algorithm: Algorithm::EdDSA,
            ed25519_key_file: Some("/nonexistent/agent.pem".into()),
            ..Config::default()
        };
        let e = signer_from_config(&config).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/agent.pem"), "{e}");
        let config = Config {
            algorithm: Algorithm::HS256,
            hs256_secret: String::new(),
            hs256_secret_file: None,
            ..Config::default()
        };
        let e = signer_from_config(&config).unwrap_err().to_string();
        assert!(e.contains("hs256_secret"), "{e}");
    }
}
