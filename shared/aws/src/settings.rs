//! Settings of the AWS adapters (see the crate README): credentials and region from the
//! standard Lambda environment, the Auto Scaling group, the S3 state location.

use crate::sigv4::Credentials;
use std::time::Duration;
use url::Url;

pub const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
pub const REGION: &str = "AWS_REGION";
pub const DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
pub const ASG_NAME: &str = "BURST_AWS_ASG_NAME";
pub const ASG_ENDPOINT: &str = "BURST_AWS_ASG_ENDPOINT";
pub const ASG_THROTTLE_S: &str = "BURST_AWS_ASG_THROTTLE_S";
pub const AWS_TIMEOUT_MS: &str = "BURST_AWS_TIMEOUT_MS";
pub const STATE_URL: &str = "BURST_STATE_URL";
pub const S3_ENDPOINT: &str = "BURST_AWS_S3_ENDPOINT";
pub const STATE_TIMEOUT_MS: &str = "BURST_STATE_TIMEOUT_MS";

/// Auto Scaling sends no Retry-After: after `Throttling` wait this long by default.
pub const DEFAULT_THROTTLE_S: u64 = 60;
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;

/// A setting that is missing or unusable. Never carries a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is absent: set it.
    #[error("{setting} is not set: {why}")]
    Missing {
        setting: &'static str,
        why: &'static str,
    },
    /// A setting has a value that cannot be used: fix it.
    #[error("{setting} is not valid: {why}")]
    Invalid { setting: &'static str, why: String },
    /// The HTTP client could not be built (TLS setup failed): a broken installation.
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),
}

pub(crate) type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(crate) fn get_trimmed(get: Get<'_>, name: &str) -> Option<String> {
    get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (Lambda
/// sets all three for the function's role).
pub fn credentials(get: Get<'_>, why: &'static str) -> Result<Credentials, ConfigError> {
    let access_key_id = get_trimmed(get, ACCESS_KEY_ID).ok_or(ConfigError::Missing {
        setting: ACCESS_KEY_ID,
        why,
    })?;
    let secret_access_key = get_trimmed(get, SECRET_ACCESS_KEY).ok_or(ConfigError::Missing {
        setting: SECRET_ACCESS_KEY,
        why,
    })?;
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token: get_trimmed(get, SESSION_TOKEN),
    })
}

/// `AWS_REGION` (Lambda), else `AWS_DEFAULT_REGION`.
pub fn region(get: Get<'_>, why: &'static str) -> Result<String, ConfigError> {
    let r = get_trimmed(get, REGION)
        .or_else(|| get_trimmed(get, DEFAULT_REGION))
        .ok_or(ConfigError::Missing {
            setting: REGION,
            why,
        })?;
    if !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ConfigError::Invalid {
            setting: REGION,
            why: "expected a region name like eu-west-1".into(),
        });
    }
    Ok(r)
}

pub(crate) fn endpoint(setting: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::Invalid {
        setting,
        why: format!("not a URL: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::Invalid {
            setting,
            why: "expected an http(s) URL with a host".into(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::Invalid {
            setting,
            why: "must not have a query or fragment".into(),
        });
    }
    Ok(url)
}

pub(crate) fn millis(
    get: Get<'_>,
    setting: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    match get_trimmed(get, setting) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=600_000).contains(n))
            .map(Duration::from_millis)
            .ok_or(ConfigError::Invalid {
                setting,
                why: "expected milliseconds from 1 to 600000".into(),
            }),
    }
}

pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| ConfigError::HttpClient(e.to_string()))
}

/// `host[:port]` as sent in the `Host` header (default ports left out, as HTTP clients do).
pub(crate) fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}
