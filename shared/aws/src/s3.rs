//! The state documents in S3 ([`StateStore`]) with compare-and-swap: `GET` gives the ETag,
//! `PUT` with `If-Match: <etag>` updates, `If-None-Match: *` creates. 412 `PreconditionFailed`
//! and 409 `ConditionalRequestConflict` mean someone else wrote first (`Conflict`).
//!
//! `BURST_STATE_URL=s3://bucket/prefix`; documents are `<prefix>/<site>.json`. Requests go
//! virtual-hosted style to `https://<bucket>.s3.<region>.amazonaws.com`, or path style to
//! `BURST_AWS_S3_ENDPOINT/<bucket>/…` when that is set (the sim, S3-compatible stores).

use crate::settings::{self, ConfigError, Get};
use crate::signed::{Signer, short};
use crate::sigv4::{Credentials, uri_encode};
use crate::xml;
use async_trait::async_trait;
use burst_ports::{Saved, StateStore, StoreError, Versioned};
use burst_settings::{PlainHttp, Settings};
use reqwest::Method;
use std::time::Duration;
use url::Url;

/// Everything [`S3Store`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
    pub region: String,
    /// Path-style endpoint; `None` = AWS, virtual-hosted style.
    pub endpoint: Option<Url>,
    pub credentials: Credentials,
    pub timeout: Duration,
}

/// S3 bucket naming rules (the part that matters for building URLs safely).
pub fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
        && !b.contains("..")
}

impl S3Config {
    /// `Ok(None)` unless `BURST_STATE_URL` starts with `s3://`.
    pub fn from_settings(get: Get<'_>) -> Result<Option<Self>, ConfigError> {
        let reader = Settings::new(get);
        let Some(raw) = reader.string(settings::STATE_URL) else {
            return Ok(None);
        };
        let Some(rest) = raw.strip_prefix("s3://") else {
            return Ok(None);
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if !valid_bucket(bucket) {
            return Err(ConfigError::new(
                settings::STATE_URL,
                "expected s3://bucket/prefix with a valid bucket name (3–63 of a-z 0-9 . -)",
            ));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if prefix.chars().any(char::is_control) || prefix.contains('?') || prefix.contains('#') {
            return Err(ConfigError::new(
                settings::STATE_URL,
                "the prefix must not contain control characters, '?' or '#'",
            ));
        }
        let why = "the S3 state store needs signed requests";
        let region = settings::region(get, why)?;
        let credentials = settings::credentials(get, why)?;
        let endpoint = reader.base_url(settings::S3_ENDPOINT, PlainHttp::Allowed)?;
        Ok(Some(S3Config {
            bucket: bucket.to_string(),
            prefix,
            region,
            endpoint,
            credentials,
            timeout: settings::millis(
                get,
                settings::STATE_TIMEOUT_MS,
                settings::DEFAULT_TIMEOUT_MS,
            )?,
        }))
    }

    /// The object key of a site's document.
    pub fn key(&self, site: &str) -> String {
        if self.prefix.is_empty() {
            format!("{site}.json")
        } else {
            format!("{}/{site}.json", self.prefix)
        }
    }

    /// The object's URL (path style with an endpoint, else virtual-hosted).
    pub fn object_url(&self, site: &str) -> Result<Url, StoreError> {
        let key = uri_encode(&self.key(site), true);
        let s = match &self.endpoint {
            Some(e) => format!("{}/{}/{key}", e.as_str().trim_end_matches('/'), self.bucket),
            None => format!(
                "https://{}.s3.{}.amazonaws.com/{key}",
                self.bucket, self.region
            ),
        };
        Url::parse(&s).map_err(|e| StoreError::Refused(format!("bad object URL: {e}")))
    }
}

/// The S3 state store.
#[derive(Debug, Clone)]
pub struct S3Store {
    config: S3Config,
    http: reqwest::Client,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Load,
    Save,
}

impl S3Store {
    pub fn new(config: S3Config) -> Result<Self, ConfigError> {
        let http = settings::http_client(config.timeout)?;
        Ok(S3Store { config, http })
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    fn signer(&self) -> Signer<'_> {
        Signer {
            http: &self.http,
            credentials: &self.config.credentials,
            region: &self.config.region,
            service: "s3",
            content_sha256_header: true,
        }
    }
}

/// An S3 error answer → [`StoreError`].
fn classify(op: Op, site: &str, status: u16, body: &[u8]) -> StoreError {
    let parsed = xml::parse_s3_error(&String::from_utf8_lossy(body));
    let code = parsed.as_ref().map(|e| e.code.as_str()).unwrap_or("");
    let what = match op {
        Op::Load => "load",
        Op::Save => "save",
    };
    let msg = match &parsed {
        Some(e) => format!(
            "{what} of site {site}: HTTP {status} {}: {}",
            short(&e.code),
            short(&e.message)
        ),
        None => format!("{what} of site {site}: HTTP {status}"),
    };
    match status {
        412 => StoreError::Conflict,
        409 if code == "ConditionalRequestConflict" => StoreError::Conflict,
        // A conditional update of an object deleted since it was read.
        404 if op == Op::Save && code == "NoSuchKey" => StoreError::Conflict,
        // Bad keys, missing bucket, no permission: the owner has to fix the setup.
        400 | 401 | 403 | 404 => StoreError::Refused(msg),
        408 | 409 | 429 | 500..=599 => StoreError::Unavailable(msg),
        _ => StoreError::Refused(msg),
    }
}

#[async_trait]
impl StateStore for S3Store {
    async fn load(&self, site: &str) -> Result<Option<Versioned>, StoreError> {
        let url = self.config.object_url(site)?;
        let r = self
            .signer()
            .send(Method::GET, &url, &[], Vec::new())
            .await
            .map_err(|e| StoreError::Unavailable(format!("load of site {site}: {e}")))?;
        match r.status.as_u16() {
            200 => {
                let etag = r.etag.ok_or_else(|| {
                    StoreError::Unavailable(format!(
                        "load of site {site}: the response had no ETag"
                    ))
                })?;
                Ok(Some(Versioned {
                    bytes: r.body,
                    etag,
                }))
            }
            404 if xml::parse_s3_error(&String::from_utf8_lossy(&r.body))
                .is_some_and(|e| e.code == "NoSuchKey") =>
            {
                Ok(None)
            }
            s => Err(classify(Op::Load, site, s, &r.body)),
        }
    }

    async fn save(&self, site: &str, bytes: &[u8], expected: Option<&str>) -> Saved {
        let url = self.config.object_url(site)?;
        let condition = match expected {
            Some(etag) => ("if-match".to_string(), etag.to_string()),
            None => ("if-none-match".to_string(), "*".to_string()),
        };
        let headers = [
            ("content-type".to_string(), "application/json".to_string()),
            condition,
        ];
        let r = self
            .signer()
            .send(Method::PUT, &url, &headers, bytes.to_vec())
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "save of site {site}: {e}; it may or may not have been written"
                ))
            })?;
        match r.status.as_u16() {
            200 => r.etag.ok_or_else(|| {
                StoreError::Unavailable(format!("save of site {site}: the response had no ETag"))
            }),
            s => Err(classify(Op::Save, site, s, &r.body)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(code: &str) -> Vec<u8> {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>m</Message><RequestId>r</RequestId><HostId>h</HostId></Error>").into_bytes()
    }

    #[test]
    fn errors_map_to_store_errors() {
        let c = |op, s, code: &str| classify(op, "home", s, &err(code));
        assert_eq!(c(Op::Save, 412, "PreconditionFailed"), StoreError::Conflict);
        assert_eq!(
            c(Op::Save, 409, "ConditionalRequestConflict"),
            StoreError::Conflict
        );
        assert_eq!(c(Op::Save, 404, "NoSuchKey"), StoreError::Conflict);
        assert_eq!(
            c(Op::Load, 403, "AccessDenied"),
            StoreError::Refused("load of site home: HTTP 403 AccessDenied: m".into())
        );
        assert_eq!(
            c(Op::Load, 404, "NoSuchBucket"),
            StoreError::Refused("load of site home: HTTP 404 NoSuchBucket: m".into())
        );
        assert_eq!(
            c(Op::Save, 503, "SlowDown"),
            StoreError::Unavailable("save of site home: HTTP 503 SlowDown: m".into())
        );
        assert_eq!(
            classify(Op::Load, "home", 500, b""),
            StoreError::Unavailable("load of site home: HTTP 500".into())
        );
    }

    use burst_settings::from_pairs as env;

    #[test]
    fn settings_and_urls() {
        assert_eq!(S3Config::from_settings(&env(&[])).unwrap(), None);
        assert_eq!(
            S3Config::from_settings(&env(&[("BURST_STATE_URL", "file:///tmp/x")])).unwrap(),
            None
        );
        let base: &[(&str, &str)] = &[
            ("BURST_STATE_URL", "s3://my-bucket/burst/state/"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ];
        let c = S3Config::from_settings(&env(Box::leak(base.to_vec().into_boxed_slice())))
            .unwrap()
            .unwrap();
        assert_eq!(c.prefix, "burst/state");
        assert_eq!(c.key("home"), "burst/state/home.json");
        assert_eq!(
            c.object_url("home").unwrap().as_str(),
            "https://my-bucket.s3.eu-west-1.amazonaws.com/burst/state/home.json"
        );
        let mut with_ep = base.to_vec();
        with_ep.push(("BURST_AWS_S3_ENDPOINT", "http://127.0.0.1:9000/"));
        let c = S3Config::from_settings(&env(Box::leak(with_ep.into_boxed_slice())))
            .unwrap()
            .unwrap();
        assert_eq!(
            c.object_url("home").unwrap().as_str(),
            "http://127.0.0.1:9000/my-bucket/burst/state/home.json"
        );
        let e =
            S3Config::from_settings(&env(&[("BURST_STATE_URL", "s3://Bad_Bucket/x")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("BURST_STATE_URL: expected s3://bucket/prefix"),
            "{e}"
        );
        let e = S3Config::from_settings(&env(&[("BURST_STATE_URL", "s3://bucket")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "AWS_REGION: not set (the S3 state store needs signed requests)"
        );
    }
}
