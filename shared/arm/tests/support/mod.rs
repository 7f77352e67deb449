//! A token credential for in-process tests against the simulated identity endpoint.
//!
//! In the function app, `azure_identity`'s managed identity reads `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` from the process environment (the local emulator sets them for the
//! handler it starts). A test cannot point its own environment at a sim on a random port, so
//! this asks the sim's endpoint the same way (App Service protocol) and keeps the token until
//! it expires, as the SDK's cache does.

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::OffsetDateTime;
use burst_arm_sim::SimHandle;
use std::sync::Arc;
use tokio::sync::Mutex;

#[derive(Debug)]
pub struct SimIdentity {
    endpoint: String,
    header: String,
    cached: Mutex<Option<AccessToken>>,
}

impl SimIdentity {
    pub fn for_sim(sim: &SimHandle) -> Arc<dyn TokenCredential> {
        Arc::new(SimIdentity {
            endpoint: sim.identity_endpoint(),
            header: sim.identity_header(),
            cached: Mutex::new(None),
        })
    }
}

fn credential_error(message: String) -> azure_core::Error {
    azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, message)
}

#[async_trait]
impl TokenCredential for SimIdentity {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        // Held across the fetch: concurrent callers share one token request, as with the SDK.
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && token.expires_on > OffsetDateTime::now_utc()
        {
            return Ok(token.clone());
        }
        let resource = scopes
            .first()
            .map(|s| s.trim_end_matches("/.default"))
            .unwrap_or_default();
        let mut url =
            url::Url::parse(&self.endpoint).map_err(|e| credential_error(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("api-version", "2019-08-01")
            .append_pair("resource", resource);
        let answer = reqwest::Client::new()
            .get(url)
            .header("x-identity-header", &self.header)
            .send()
            .await
            .map_err(|e| credential_error(e.to_string()))?;
        if !answer.status().is_success() {
            return Err(credential_error(format!("HTTP {}", answer.status())));
        }
        let body: serde_json::Value = answer
            .json()
            .await
            .map_err(|e| credential_error(e.to_string()))?;
        let expires = body["expires_on"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or_else(|| credential_error("no expires_on".into()))?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| credential_error("no access_token".into()))?;
        let token = AccessToken::new(token.to_string(), expires);
        *cached = Some(token.clone());
        Ok(token)
    }
}
