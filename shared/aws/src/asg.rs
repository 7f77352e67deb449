//! The Auto Scaling group as the cloud capacity ([`Scaler`]): `DescribeAutoScalingGroups`
//! (DesiredCapacity; instances `InService` count as running) and `SetDesiredCapacity` with
//! `HonorCooldown=false`, through the query API (form-encoded POST, XML answers, SigV4).
//!
//! Read first, skip the write when already equal, never write after a failed read, never
//! sleep: `Throttling` comes back as `Throttled` with a fixed back-off (Auto Scaling sends no
//! Retry-After), `ScalingActivityInProgress`/`ResourceContention` as `Conflict`.

use crate::settings::{self, ConfigError, Get};
use crate::signed::{Signer, short};
use crate::sigv4::{Credentials, uri_encode};
use crate::xml::{self, Group};
use async_trait::async_trait;
use burst_core::{ScaleResult, ScaleSetProbe};
use burst_ports::Scaler;
use burst_settings::{PlainHttp, Settings};
use reqwest::Method;
use std::time::Duration;
use url::Url;

/// The query API version.
pub const API_VERSION: &str = "2011-01-01";

/// Everything [`AsgScaler`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsgConfig {
    pub group_name: String,
    pub region: String,
    /// Default `https://autoscaling.<region>.amazonaws.com/`.
    pub endpoint: Url,
    pub credentials: Credentials,
    pub timeout: Duration,
    /// The wait after `Throttling` (seconds).
    pub throttle_backoff_s: u64,
}

impl AsgConfig {
    /// `Ok(None)` when `BURST_AWS_ASG_NAME` is not set.
    pub fn from_settings(get: Get<'_>) -> Result<Option<Self>, ConfigError> {
        let reader = Settings::new(get);
        let Some(group_name) = reader.string(settings::ASG_NAME) else {
            return Ok(None);
        };
        if group_name.len() > 255 || group_name.chars().any(char::is_control) {
            return Err(ConfigError::new(
                settings::ASG_NAME,
                "expected an Auto Scaling group name (at most 255 characters)",
            ));
        }
        let why = "the Auto Scaling group needs signed requests";
        let region = settings::region(get, why)?;
        let credentials = settings::credentials(get, why)?;
        let endpoint = match reader.base_url(settings::ASG_ENDPOINT, PlainHttp::Allowed)? {
            Some(url) => url,
            None => settings::endpoint(
                settings::ASG_ENDPOINT,
                &format!("https://autoscaling.{region}.amazonaws.com/"),
            )?,
        };
        let throttle_backoff_s = reader.integer(
            settings::ASG_THROTTLE_S,
            settings::DEFAULT_THROTTLE_S,
            1..=3600,
        )?;
        Ok(Some(AsgConfig {
            group_name,
            region,
            endpoint,
            credentials,
            timeout: settings::millis(get, settings::AWS_TIMEOUT_MS, settings::DEFAULT_TIMEOUT_MS)?,
            throttle_backoff_s,
        }))
    }
}

/// What went wrong talking to Auto Scaling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsgError {
    /// `Throttling`: wait, then try again.
    #[error("throttled: {0}")]
    Throttled(String),
    /// An error answer with AWS's code and message: see the code.
    #[error("HTTP {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer (timeout, connection): try again later; a write may or may not have happened.
    #[error("{0}")]
    Transport(String),
    /// A 200 we could not read, or the group does not exist: fix the setup.
    #[error("{0}")]
    Unexpected(String),
}

/// The group's capacity as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCapacity {
    pub desired: u32,
    pub in_service: u32,
    pub min: u32,
    pub max: u32,
}

/// The Auto Scaling group client.
#[derive(Debug, Clone)]
pub struct AsgScaler {
    config: AsgConfig,
    http: reqwest::Client,
}

impl AsgScaler {
    pub fn new(config: AsgConfig) -> Result<Self, ConfigError> {
        let http = settings::http_client(config.timeout)?;
        Ok(AsgScaler { config, http })
    }

    pub fn config(&self) -> &AsgConfig {
        &self.config
    }

    async fn call(&self, action: &str, params: &[(&str, String)]) -> Result<String, AsgError> {
        let mut form = format!("Action={action}&Version={API_VERSION}");
        for (k, v) in params {
            form.push('&');
            form.push_str(&uri_encode(k, false));
            form.push('=');
            form.push_str(&uri_encode(v, false));
        }
        let signer = Signer {
            http: &self.http,
            credentials: &self.config.credentials,
            region: &self.config.region,
            service: "autoscaling",
            content_sha256_header: false,
        };
        let headers = [(
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        )];
        let reply = signer
            .send(
                Method::POST,
                &self.config.endpoint,
                &headers,
                form.into_bytes(),
            )
            .await
            .map_err(AsgError::Transport)?;
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        if reply.status.is_success() {
            return Ok(body);
        }
        Err(classify(reply.status.as_u16(), &body))
    }

    /// `DescribeAutoScalingGroups` for the configured group.
    pub async fn describe(&self) -> Result<GroupCapacity, AsgError> {
        let body = self
            .call(
                "DescribeAutoScalingGroups",
                &[(
                    "AutoScalingGroupNames.member.1",
                    self.config.group_name.clone(),
                )],
            )
            .await?;
        let groups = xml::parse_describe(&body).map_err(AsgError::Unexpected)?;
        let g: &Group = groups
            .iter()
            .find(|g| g.auto_scaling_group_name == self.config.group_name)
            .ok_or_else(|| {
                AsgError::Unexpected(format!(
                    "no Auto Scaling group named {:?} in {} (or no permission to see it)",
                    self.config.group_name, self.config.region
                ))
            })?;
        Ok(GroupCapacity {
            desired: g.desired_capacity,
            in_service: g.in_service(),
            min: g.min_size,
            max: g.max_size,
        })
    }

    /// `SetDesiredCapacity` with `HonorCooldown=false` (the core decides the pace).
    pub async fn set_desired(&self, capacity: u32) -> Result<(), AsgError> {
        self.call(
            "SetDesiredCapacity",
            &[
                ("AutoScalingGroupName", self.config.group_name.clone()),
                ("DesiredCapacity", capacity.to_string()),
                ("HonorCooldown", "false".into()),
            ],
        )
        .await
        .map(|_| ())
    }
}

/// An error answer → [`AsgError`] (code and message from the XML body when there is one).
pub fn classify(status: u16, body: &str) -> AsgError {
    let (code, message) = match xml::parse_query_error(body) {
        Some(e) => (short(&e.code), short(&e.message)),
        None => (
            format!("HTTP{status}"),
            if body.trim().is_empty() {
                "no error body".into()
            } else {
                short(body)
            },
        ),
    };
    if code == "Throttling" || code == "RequestLimitExceeded" || status == 429 {
        return AsgError::Throttled(format!("{code}: {message}"));
    }
    AsgError::Api {
        status,
        code,
        message,
    }
}

/// A failed write as the core should treat it.
pub fn write_result(err: AsgError, capacity: u32, backoff_s: u64) -> ScaleResult {
    match err {
        AsgError::Throttled(_) => ScaleResult::Throttled {
            retry_after_s: backoff_s,
        },
        AsgError::Api { code, message, .. }
            if code == "ScalingActivityInProgress" || code == "ResourceContention" =>
        {
            ScaleResult::Conflict {
                detail: format!("{code}: {message}"),
            }
        }
        AsgError::Transport(d) => ScaleResult::Failed {
            detail: format!(
                "SetDesiredCapacity {capacity}: {d}; it may or may not have been applied"
            ),
        },
        e => ScaleResult::Failed {
            detail: format!("SetDesiredCapacity {capacity}: {e}"),
        },
    }
}

#[async_trait]
impl Scaler for AsgScaler {
    async fn observe(&self) -> ScaleSetProbe {
        match self.describe().await {
            Ok(g) => ScaleSetProbe::Seen {
                capacity: g.desired,
                running: g.in_service,
            },
            Err(e) => ScaleSetProbe::Unknown {
                detail: format!("DescribeAutoScalingGroups: {e}"),
            },
        }
    }

    async fn set_capacity(&self, capacity: u32) -> ScaleResult {
        let g = match self.describe().await {
            Ok(g) => g,
            // A throttled read is still a throttle: wait, nothing was written.
            Err(AsgError::Throttled(_)) => {
                return ScaleResult::Throttled {
                    retry_after_s: self.config.throttle_backoff_s,
                };
            }
            Err(e) => {
                return ScaleResult::ReadFailed {
                    detail: format!("DescribeAutoScalingGroups: {e}"),
                };
            }
        };
        if g.desired == capacity {
            return ScaleResult::Accepted {
                capacity,
                running: Some(g.in_service),
            };
        }
        match self.set_desired(capacity).await {
            Ok(()) => {
                tracing::info!(
                    capacity,
                    previous = g.desired,
                    "Auto Scaling group desired capacity set"
                );
                ScaleResult::Accepted {
                    capacity,
                    running: Some(g.in_service),
                }
            }
            Err(e) => write_result(e, capacity, self.config.throttle_backoff_s),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(code: &str, msg: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"{}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{msg}</Message></Error><RequestId>r</RequestId></ErrorResponse>",
            xml::ASG_NS
        )
    }

    #[test]
    fn errors_map_to_outcomes() {
        let t = classify(400, &err("Throttling", "Rate exceeded"));
        assert_eq!(t, AsgError::Throttled("Throttling: Rate exceeded".into()));
        assert_eq!(
            write_result(t, 3, 60),
            ScaleResult::Throttled { retry_after_s: 60 }
        );
        assert_eq!(
            write_result(
                classify(400, &err("ScalingActivityInProgress", "busy")),
                3,
                60
            ),
            ScaleResult::Conflict {
                detail: "ScalingActivityInProgress: busy".into()
            }
        );
        assert_eq!(
            write_result(
                classify(
                    400,
                    &err("ValidationError", "New SetDesiredCapacity value 9 is above max value 5 for the AutoScalingGroup.")
                ),
                9,
                60
            ),
            ScaleResult::Failed {
                detail: "SetDesiredCapacity 9: HTTP 400 ValidationError: New SetDesiredCapacity value 9 is above max value 5 for the AutoScalingGroup.".into()
            }
        );
        assert_eq!(
            write_result(classify(403, &err("AccessDenied", "not authorized")), 1, 60),
            ScaleResult::Failed {
                detail: "SetDesiredCapacity 1: HTTP 403 AccessDenied: not authorized".into()
            }
        );
        assert_eq!(
            classify(502, ""),
            AsgError::Api {
                status: 502,
                code: "HTTP502".into(),
                message: "no error body".into()
            }
        );
        assert_eq!(
            write_result(AsgError::Transport("timed out".into()), 2, 60),
            ScaleResult::Failed {
                detail: "SetDesiredCapacity 2: timed out; it may or may not have been applied"
                    .into()
            }
        );
    }

    use burst_settings::from_pairs as env;

    #[test]
    fn settings() {
        assert_eq!(AsgConfig::from_settings(&env(&[])).unwrap(), None);
        let c = AsgConfig::from_settings(&env(&[
            ("BURST_AWS_ASG_NAME", "burst"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ("AWS_SESSION_TOKEN", "tok"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            c.endpoint.as_str(),
            "https://autoscaling.eu-west-1.amazonaws.com/"
        );
        assert_eq!(c.throttle_backoff_s, 60);
        assert_eq!(c.credentials.session_token.as_deref(), Some("tok"));
        assert!(!format!("{c:?}").contains("very-secret"));
        let e = AsgConfig::from_settings(&env(&[
            ("BURST_AWS_ASG_NAME", "burst"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "AWS_SECRET_ACCESS_KEY: not set (the Auto Scaling group needs signed requests)"
        );
        let e = AsgConfig::from_settings(&env(&[
            ("BURST_AWS_ASG_NAME", "burst"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("BURST_AWS_ASG_ENDPOINT", "ftp://x"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "BURST_AWS_ASG_ENDPOINT: expected an http(s) URL with a host"
        );
    }
}
