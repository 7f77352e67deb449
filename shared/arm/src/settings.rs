//! The adapter's settings: which scale set, which ARM endpoint, which credential.

use crate::resource_id::ScaleSetId;
use crate::token::{Credential, DEFAULT_AUTHORITY};
use burst_settings::{ConfigError, Get, PlainHttp, Settings};
use std::time::Duration;
use url::Url;

pub const SCALE_SET_ID: &str = "BURST_ARM_SCALE_SET_ID";
pub const ENDPOINT: &str = "BURST_ARM_ENDPOINT";
pub const API_VERSION: &str = "BURST_ARM_API_VERSION";
pub const TIMEOUT_MS: &str = "BURST_ARM_TIMEOUT_MS";
pub const CREDENTIAL: &str = "BURST_ARM_CREDENTIAL";
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
pub const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
pub const AUTHORITY: &str = "BURST_AZURE_AUTHORITY";

pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";
pub const DEFAULT_API_VERSION: &str = "2025-11-01";
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// Everything `ArmScaleSet` needs besides the credential itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArmConfig {
    pub scale_set: ScaleSetId,
    /// ARM's base URL (no trailing slash needed).
    pub endpoint: Url,
    pub api_version: String,
    /// Total time per HTTP request (token requests too).
    pub timeout: Duration,
    /// Which credential the process builds (once, shared with the Blob store).
    pub credential: Credential,
}

impl ArmConfig {
    /// A config with the defaults for endpoint, api-version and timeout.
    pub fn new(scale_set: ScaleSetId, credential: Credential) -> Self {
        Self {
            scale_set,
            endpoint: Url::parse(DEFAULT_ENDPOINT).expect("constant URL parses"),
            api_version: DEFAULT_API_VERSION.to_string(),
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            credential,
        }
    }

    /// Reads the settings. `Ok(None)` when `BURST_ARM_SCALE_SET_ID` is absent (the adapter is
    /// not configured); a scale set without any credential setting is an error.
    pub fn from_settings(get: Get<'_>) -> Result<Option<Self>, ConfigError> {
        let settings = Settings::new(get);
        let Some(scale_set) = settings.parsed(SCALE_SET_ID, |raw| {
            ScaleSetId::parse(raw).map_err(|e| e.to_string())
        })?
        else {
            return Ok(None);
        };
        let endpoint = settings
            .base_url(ENDPOINT, PlainHttp::Allowed)?
            .unwrap_or_else(|| Url::parse(DEFAULT_ENDPOINT).expect("constant URL parses"));
        let api_version = settings
            .parsed(API_VERSION, |v| {
                if v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    Ok(v.to_string())
                } else {
                    Err("expected a date like 2025-11-01 (optionally -preview)".into())
                }
            })?
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
        let timeout = settings.millis(TIMEOUT_MS, DEFAULT_TIMEOUT_MS, 1..=120_000)?;
        let credential = Credential::from_settings(get)?.ok_or_else(|| {
            ConfigError::missing(
                IDENTITY_ENDPOINT,
                "a scale set is configured but there is no credential: set IDENTITY_ENDPOINT and IDENTITY_HEADER (managed identity) or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (service principal)",
            )
        })?;
        Ok(Some(Self {
            scale_set,
            endpoint,
            api_version,
            timeout,
            credential,
        }))
    }
}

impl Credential {
    /// The credential the settings choose; `Ok(None)` when none is configured.
    ///
    /// `BURST_ARM_CREDENTIAL` (`managed_identity` / `service_principal`) if set; otherwise the
    /// managed identity when `IDENTITY_ENDPOINT` or `IDENTITY_HEADER` is present (the platform
    /// provides both inside Azure, and a forgotten secret in the app settings should not
    /// override the platform identity) — unless only half of it is there next to a complete
    /// service principal — else the service principal from `AZURE_TENANT_ID` +
    /// `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`.
    pub fn from_settings(get: Get<'_>) -> Result<Option<Self>, ConfigError> {
        let settings = Settings::new(get);
        let mi_endpoint = settings.string(IDENTITY_ENDPOINT);
        let mi_header = settings.string(IDENTITY_HEADER);
        let tenant = settings.string(AZURE_TENANT_ID);
        let secret = settings.string(AZURE_CLIENT_SECRET);
        let use_mi = match settings.string(CREDENTIAL).as_deref() {
            Some("managed_identity") => true,
            Some("service_principal") => false,
            Some(_) => {
                return Err(ConfigError::new(
                    CREDENTIAL,
                    "expected managed_identity or service_principal",
                ));
            }
            None if mi_endpoint.is_some() || mi_header.is_some() => {
                // Half a managed identity is a mistake worth naming, unless a complete service
                // principal is configured next to it.
                !(tenant.is_some()
                    && secret.is_some()
                    && (mi_endpoint.is_none() || mi_header.is_none()))
            }
            None if tenant.is_some() || secret.is_some() => false,
            None => return Ok(None),
        };
        let client_id = settings.parsed(AZURE_CLIENT_ID, plain_id)?;
        if use_mi {
            let why = "the managed identity needs IDENTITY_ENDPOINT and IDENTITY_HEADER";
            settings.required(IDENTITY_ENDPOINT, why)?;
            settings.required_secret(IDENTITY_HEADER, why)?;
            settings.base_url(IDENTITY_ENDPOINT, PlainHttp::Allowed)?;
            return Ok(Some(Credential::ManagedIdentity { client_id }));
        }
        let why =
            "the service principal needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET";
        let tenant_id = settings.required(AZURE_TENANT_ID, why)?;
        let client_id = client_id.ok_or_else(|| ConfigError::missing(AZURE_CLIENT_ID, why))?;
        let client_secret = settings.required_secret(AZURE_CLIENT_SECRET, why)?;
        plain_id(&tenant_id).map_err(|p| ConfigError::new(AZURE_TENANT_ID, p))?;
        // The token request carries the secret: https only.
        let authority = settings
            .base_url(AUTHORITY, PlainHttp::Allowed)?
            .unwrap_or_else(|| Url::parse(DEFAULT_AUTHORITY).expect("constant URL parses"));
        if authority.scheme() != "https" {
            return Err(ConfigError::new(AUTHORITY, "expected an https URL"));
        }
        Ok(Some(Credential::ServicePrincipal {
            authority,
            tenant_id,
            client_id,
            client_secret,
        }))
    }
}

/// Tenant and client ids go into URLs and forms: GUIDs or domain names only.
fn plain_id(v: &str) -> Result<String, String> {
    if v.len() <= 256
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        Ok(v.to_string())
    } else {
        Err("expected a GUID or a domain name".into())
    }
}
