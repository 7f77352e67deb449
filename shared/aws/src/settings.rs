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

pub use burst_settings::{ConfigError, Get};
use burst_settings::{PlainHttp, Settings};

/// Credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (Lambda
/// sets all three for the function's role).
pub fn credentials(get: Get<'_>, why: &str) -> Result<Credentials, ConfigError> {
    let settings = Settings::new(get);
    Ok(Credentials {
        access_key_id: settings.required(ACCESS_KEY_ID, why)?,
        secret_access_key: settings.required(SECRET_ACCESS_KEY, why)?,
        session_token: settings.string(SESSION_TOKEN),
    })
}

/// `AWS_REGION` (Lambda), else `AWS_DEFAULT_REGION`.
pub fn region(get: Get<'_>, why: &str) -> Result<String, ConfigError> {
    let settings = Settings::new(get);
    let r = settings
        .string(REGION)
        .or_else(|| settings.string(DEFAULT_REGION))
        .ok_or_else(|| ConfigError::missing(REGION, why))?;
    if !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ConfigError::new(
            REGION,
            "expected a region name like eu-west-1",
        ));
    }
    Ok(r)
}

pub(crate) fn endpoint(setting: &str, value: &str) -> Result<Url, ConfigError> {
    burst_settings::base_url(setting, value, PlainHttp::Allowed)
}

pub(crate) fn millis(get: Get<'_>, setting: &str, default: u64) -> Result<Duration, ConfigError> {
    Settings::new(get).millis(setting, default, 1..=600_000)
}

pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| ConfigError::new("the AWS HTTP client", e.to_string()))
}

/// `host[:port]` as sent in the `Host` header (default ports left out, as HTTP clients do).
pub(crate) fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}
