//! hybrid-burst on AWS Lambda: the same function bodies as the Azure custom handler
//! (`burst_functions::bodies`), wrapped for Lambda.
//!
//! - `burst-lambda-http`: every HTTP function behind one Lambda function URL, routed by path
//!   `/api/<name>`. Function URLs use the API Gateway HTTP (v2) payload; `lambda_http` gives the
//!   body as text, or decoded from base64 when `isBase64Encoded` is set, so the bytes the
//!   Tailscale signature covers are the bytes that were sent.
//! - `burst-lambda-probe`: the timer probe, invoked by an EventBridge schedule.
//! - `burst-lambda-wake`: scheduled wake-ups, invoked by an SQS event source mapping with a
//!   partial batch response.
//!
//! The platform is chosen by configuration: [`deps_from_settings`] is the function app's one
//! wiring (`burst_functions::wiring`), which picks the AWS adapters when their settings are
//! present (`BURST_AWS_ASG_NAME` → Auto Scaling group; `BURST_STATE_URL=s3://…` → S3), else
//! the Azure/local ones. The bodies never learn which cloud they run in.

use burst_functions::bodies::{self, Function};
use burst_functions::deps::Deps;
use burst_functions::http::{BODY_LIMIT, Request as FnRequest, Response as FnResponse};
use burst_functions::settings::ConfigError;
use burst_functions::wiring;
use std::sync::Arc;

/// Where state lives without `BURST_STATE_URL`: Lambda's only writable folder. It is lost
/// with the execution environment, so real deployments set `s3://…`.
pub const LAMBDA_STATE_DIR: &str = "/tmp/burst-state";

/// The function app's dependencies from its settings (the one wiring, state in `/tmp` when
/// `BURST_STATE_URL` is unset). A bad setting stops the function from starting.
pub async fn deps_from_settings(get: &dyn Fn(&str) -> Option<String>) -> Result<Deps, ConfigError> {
    wiring::from_settings_in(get, LAMBDA_STATE_DIR).await
}

/// What every Lambda binary does first: JSON logs (and OpenTelemetry export when
/// `OTEL_EXPORTER_OTLP_*ENDPOINT` is set: flushed at the end of every invocation, as the
/// environment is frozen after it), then its dependencies from the environment. A bad setting
/// is logged naming the setting and fails the init (Lambda reports it).
pub async fn start(binary: &str) -> Result<Arc<Deps>, ConfigError> {
    use burst_functions::telemetry::{self, Flush};
    // The exporters stay registered for the per-invocation flushes as long as the process
    // lives; Lambda ends it without a shutdown hook, so each invocation has flushed its own.
    match telemetry::init(binary, Flush::EachInvocation) {
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot start: bad configuration");
            return Err(e);
        }
    }
    let get = |name: &str| std::env::var(name).ok();
    match deps_from_settings(&get).await {
        Ok(deps) => {
            tracing::info!(sites = ?deps.settings.sites, "{binary} ready");
            Ok(Arc::new(deps))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start: bad configuration");
            Err(e)
        }
    }
}

/// A Lambda event's answer, after the telemetry it produced is exported: the environment may
/// be frozen as soon as the answer is sent (`telemetry::flush_invocation`; nothing without
/// export).
pub async fn after_flush<T>(answer: T) -> T {
    burst_functions::telemetry::flush_invocation().await;
    answer
}

/// One function-URL request → the platform-neutral request → the body → the response.
/// `path` is the request path (`/api/<name>`); headers come lower-cased.
pub async fn serve(
    deps: &Arc<Deps>,
    method: &str,
    path: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> FnResponse {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let name = match segments.as_slice() {
        [prefix, name] if prefix.eq_ignore_ascii_case("api") => *name,
        _ => {
            return FnResponse::error(404, "not_found", &format!("no function at {path}"));
        }
    };
    let method = method.to_ascii_uppercase();
    let f = match Function::for_request(name, &method) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if body.len() > BODY_LIMIT {
        return FnResponse::error(
            413,
            "body_too_large",
            &format!(
                "request body is {} bytes; the limit is {BODY_LIMIT}",
                body.len()
            ),
        );
    }
    let req = FnRequest {
        method,
        path: format!("/api/{}", f.name()),
        headers,
        body,
    };
    bodies::http(deps, f, &req).await
}

/// A function-URL request (`lambda_http`) → [`serve`] → the response.
pub async fn handle_http(
    deps: &Arc<Deps>,
    req: lambda_http::Request,
) -> Result<lambda_http::Response<lambda_http::Body>, lambda_http::Error> {
    use lambda_http::RequestExt;
    // The path as the caller sent it (function URLs have no stage prefix).
    let path = req.raw_http_path().to_string();
    let method = req.method().as_str().to_string();
    let headers = burst_functions::http::Request::header_pairs(req.headers());
    // Text bodies arrive as sent; base64 ones (isBase64Encoded) are already decoded: either
    // way these are the bytes the sender signed.
    let body = req.body().as_ref().to_vec();
    let r = serve(deps, &method, &path, headers, body).await;
    let mut b = lambda_http::Response::builder().status(r.status);
    for (k, v) in &r.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let body = match String::from_utf8(r.body) {
        Ok(s) if s.is_empty() => lambda_http::Body::Empty,
        Ok(s) => lambda_http::Body::Text(s),
        Err(e) => lambda_http::Body::Binary(e.into_bytes()),
    };
    Ok(b.body(body)?)
}

/// What the probe answers to its invoker (the schedule ignores it; `cargo lambda invoke` and
/// the console show it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbeReply {
    pub ok: bool,
    pub summary: String,
    /// The schedule event's id and time, when the event had them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}
