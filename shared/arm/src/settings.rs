//! The adapter's settings: which scale set, which ARM endpoint, which credential.

use crate::resource_id::{ResourceIdError, ScaleSetId};
use crate::token::{Credential, DEFAULT_AUTHORITY, Secret};
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

/// A setting is missing or wrong. The message names the setting; secret values are never
/// echoed. The caller should tell the owner: nothing will work until the setting is fixed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is absent.
    #[error("{setting} is not set: {why}")]
    Missing {
        setting: &'static str,
        why: &'static str,
    },
    /// A setting has a value that cannot be used.
    #[error("{setting} is not valid: {why}")]
    Invalid { setting: &'static str, why: String },
    /// The HTTP client could not be built (TLS setup failed): a broken installation.
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),
}

/// Everything `ArmScaleSet` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArmConfig {
    pub scale_set: ScaleSetId,
    /// ARM's base URL (no trailing slash needed).
    pub endpoint: Url,
    pub api_version: String,
    /// Total time per HTTP request (token requests too).
    pub timeout: Duration,
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
    /// not configured). Empty values count as absent.
    ///
    /// Credential choice: `BURST_ARM_CREDENTIAL` (`managed_identity` / `service_principal`)
    /// if set; otherwise the managed identity when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`
    /// are both present (the platform provides them inside Azure, and a forgotten secret in
    /// the app settings should not override the platform identity), else the service
    /// principal from `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`.
    pub fn from_settings(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(raw_id) = get(SCALE_SET_ID) else {
            return Ok(None);
        };
        let scale_set =
            ScaleSetId::parse(&raw_id).map_err(|e: ResourceIdError| ConfigError::Invalid {
                setting: SCALE_SET_ID,
                why: e.to_string(),
            })?;
        let endpoint = match get(ENDPOINT) {
            Some(v) => base_url(ENDPOINT, &v)?,
            None => base_url(ENDPOINT, DEFAULT_ENDPOINT)?,
        };
        let api_version = get(API_VERSION).unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
        if !api_version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ConfigError::Invalid {
                setting: API_VERSION,
                why: "expected a date like 2025-11-01 (optionally -preview)".into(),
            });
        }
        let timeout_ms = match get(TIMEOUT_MS) {
            None => DEFAULT_TIMEOUT_MS,
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if (1..=120_000).contains(&ms) => ms,
                _ => {
                    return Err(ConfigError::Invalid {
                        setting: TIMEOUT_MS,
                        why: "expected milliseconds between 1 and 120000".into(),
                    });
                }
            },
        };
        let credential = credential(&get)?;
        Ok(Some(Self {
            scale_set,
            endpoint,
            api_version,
            timeout: Duration::from_millis(timeout_ms),
            credential,
        }))
    }
}

fn credential(get: &dyn Fn(&str) -> Option<String>) -> Result<Credential, ConfigError> {
    let mi_endpoint = get(IDENTITY_ENDPOINT);
    let mi_header = get(IDENTITY_HEADER);
    let tenant = get(AZURE_TENANT_ID);
    let secret = get(AZURE_CLIENT_SECRET);
    let forced = get(CREDENTIAL);
    let use_mi = match forced.as_deref() {
        Some("managed_identity") => true,
        Some("service_principal") => false,
        Some(_) => {
            return Err(ConfigError::Invalid {
                setting: CREDENTIAL,
                why: "expected managed_identity or service_principal".into(),
            });
        }
        None => {
            if mi_endpoint.is_some() || mi_header.is_some() {
                // Half a managed identity is a mistake worth naming, unless a complete service
                // principal is configured next to it.
                !(tenant.is_some()
                    && secret.is_some()
                    && (mi_endpoint.is_none() || mi_header.is_none()))
            } else if tenant.is_some() || secret.is_some() {
                false
            } else {
                return Err(ConfigError::Missing {
                    setting: IDENTITY_ENDPOINT,
                    why: "a scale set is configured but there is no credential: set IDENTITY_ENDPOINT and IDENTITY_HEADER (managed identity) or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (service principal)",
                });
            }
        }
    };
    if use_mi {
        let endpoint = mi_endpoint.ok_or(ConfigError::Missing {
            setting: IDENTITY_ENDPOINT,
            why: "the managed identity needs IDENTITY_ENDPOINT and IDENTITY_HEADER",
        })?;
        let header = mi_header.ok_or(ConfigError::Missing {
            setting: IDENTITY_HEADER,
            why: "the managed identity needs IDENTITY_ENDPOINT and IDENTITY_HEADER",
        })?;
        let endpoint = Url::parse(&endpoint)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or(ConfigError::Invalid {
                setting: IDENTITY_ENDPOINT,
                why: "expected an http(s) URL".into(),
            })?;
        let client_id = get(AZURE_CLIENT_ID);
        if let Some(id) = &client_id {
            check_plain(AZURE_CLIENT_ID, id)?;
        }
        Ok(Credential::ManagedIdentity {
            endpoint,
            header: Secret::new(header),
            client_id,
        })
    } else {
        let why =
            "the service principal needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET";
        let tenant_id = tenant.ok_or(ConfigError::Missing {
            setting: AZURE_TENANT_ID,
            why,
        })?;
        let client_id = get(AZURE_CLIENT_ID).ok_or(ConfigError::Missing {
            setting: AZURE_CLIENT_ID,
            why,
        })?;
        let client_secret = secret.ok_or(ConfigError::Missing {
            setting: AZURE_CLIENT_SECRET,
            why,
        })?;
        check_plain(AZURE_TENANT_ID, &tenant_id)?;
        check_plain(AZURE_CLIENT_ID, &client_id)?;
        let authority = base_url(
            AUTHORITY,
            get(AUTHORITY).as_deref().unwrap_or(DEFAULT_AUTHORITY),
        )?;
        Ok(Credential::ServicePrincipal {
            authority,
            tenant_id,
            client_id,
            client_secret: Secret::new(client_secret),
        })
    }
}

/// Tenant and client ids go into URLs and forms: GUIDs or domain names only.
fn check_plain(setting: &'static str, v: &str) -> Result<(), ConfigError> {
    if v.len() <= 256
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            setting,
            why: "expected a GUID or a domain name".into(),
        })
    }
}

fn base_url(setting: &'static str, v: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(v).map_err(|e| ConfigError::Invalid {
        setting,
        why: format!("not a URL ({e})"),
    })?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(ConfigError::Invalid {
            setting,
            why: "expected an http(s) base URL".into(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::Invalid {
            setting,
            why: "a base URL takes no query or fragment".into(),
        });
    }
    Ok(url)
}
