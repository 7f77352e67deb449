//! ARM bearer tokens through `azure_identity`: one credential per process, built once by the
//! wiring and shared by the ARM client and the Blob store (one token path, one cache each).
//!
//! - Managed identity (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, set by App Service / Azure
//!   Functions, or by the local emulator for its simulated identity endpoint):
//!   `ManagedIdentityCredential`, which reads those two variables from the process
//!   environment and speaks the App Service protocol (`GET ?api-version=2019-08-01&resource=`
//!   with `X-IDENTITY-HEADER`). Elsewhere it falls back to the VM metadata endpoint.
//! - Service principal (`AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`, outside
//!   Azure): `ClientSecretCredential` against `BURST_AZURE_AUTHORITY`.
//!
//! The SDK's retries are off: a function must answer quickly and never sleep out a back-off;
//! the ARM client bounds each token request by its own timeout.

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions};
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId,
};
use burst_settings::{ConfigError, Secret};
use std::sync::Arc;
use url::Url;

/// The audience of ARM tokens (managed identity `resource`).
pub const ARM_RESOURCE: &str = "https://management.azure.com/";
/// The scope of ARM tokens.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// The managed identity protocol version App Service / Functions speak.
pub const IDENTITY_API_VERSION: &str = "2019-08-01";
/// Where service principal tokens come from unless `BURST_AZURE_AUTHORITY` says otherwise.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Which Azure credential the process uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The app's managed identity; `client_id` (`AZURE_CLIENT_ID`) selects a user-assigned
    /// one, `None` the system-assigned one.
    ManagedIdentity { client_id: Option<String> },
    /// A service principal with a client secret (outside Azure).
    ServicePrincipal {
        /// `BURST_AZURE_AUTHORITY`, default `https://login.microsoftonline.com`.
        authority: Url,
        tenant_id: String,
        client_id: String,
        client_secret: Secret,
    },
}

impl Credential {
    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::ManagedIdentity { .. } => "managed identity",
            Credential::ServicePrincipal { .. } => "service principal",
        }
    }

    /// Builds the credential (no request yet: the first token is fetched on first use).
    pub fn build(&self) -> Result<Arc<dyn TokenCredential>, ConfigError> {
        let client_options = || ClientOptions {
            retry: RetryOptions::none(),
            ..Default::default()
        };
        let failed = |e: azure_core::Error| ConfigError::new(self.kind(), e.to_string());
        match self {
            Credential::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: client_options(),
                };
                Ok(ManagedIdentityCredential::new(Some(options)).map_err(failed)?)
            }
            Credential::ServicePrincipal {
                authority,
                tenant_id,
                client_id,
                client_secret,
            } => {
                let mut client_options = client_options();
                let mut cloud = CustomConfiguration::default();
                cloud.authority_host = authority.as_str().trim_end_matches('/').to_string();
                client_options.cloud = Some(Arc::new(CloudConfiguration::from(cloud)));
                let options = ClientSecretCredentialOptions { client_options };
                Ok(ClientSecretCredential::new(
                    tenant_id,
                    client_id.clone(),
                    client_secret.expose().to_string().into(),
                    Some(options),
                )
                .map_err(failed)?)
            }
        }
    }
}
