//! A simulated S3 (path style: `/<bucket>/<key>`): `GET` and `PUT` objects with ETags,
//! conditional writes (`If-Match`, `If-None-Match: *`) decided atomically, SigV4 and
//! `x-amz-content-sha256` checked, S3's XML error bodies, and injectable `SlowDown` (503) and
//! `ConditionalRequestConflict` (409).

use super::{S3, verify_request};
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use burst_aws::sigv4::{self, Credentials};
use burst_aws::xml::escape;
use burst_sim_kit::{FaultQueue, RequestLog, Running, Shared, request_id};
use std::collections::BTreeMap;

/// Objects above this are refused (`EntityTooLarge`); state documents are small.
pub const MAX_OBJECT: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct S3SimConfig {
    pub bucket: String,
    pub region: String,
    pub credentials: Credentials,
}

impl Default for S3SimConfig {
    fn default() -> Self {
        S3SimConfig {
            bucket: "burst-state".into(),
            region: super::SIM_REGION.into(),
            credentials: super::test_credentials(),
        }
    }
}

/// A stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub bytes: Vec<u8>,
    /// Quoted, as S3 sends it.
    pub etag: String,
}

/// A request the sim answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Call {
    pub method: String,
    pub key: String,
    pub status: u16,
    pub code: String,
}

#[derive(Debug, Default)]
struct SimState {
    config: S3SimConfig,
    objects: BTreeMap<String, Object>,
    generation: u64,
    faults: FaultQueue<Target, ()>,
    calls: RequestLog<S3Call>,
}

/// Which requests an injected failure hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Any request: 503 `SlowDown`.
    Any,
    /// Conditional PUTs: 409 `ConditionalRequestConflict`.
    ConditionalPut,
}

#[derive(Debug)]
pub struct S3Sim {
    sim: Running<SimState>,
}

pub async fn start(config: S3SimConfig) -> std::io::Result<S3Sim> {
    let state = SimState {
        config,
        ..SimState::default()
    };
    let sim = Running::start(state, axum::Router::new().fallback(handle)).await?;
    Ok(S3Sim { sim })
}

impl S3Sim {
    /// `http://127.0.0.1:PORT` (the `BURST_AWS_S3_ENDPOINT`).
    pub fn base_url(&self) -> String {
        self.sim.base_url().to_string()
    }
    pub fn object(&self, key: &str) -> Option<Object> {
        self.sim.state().objects.get(key).cloned()
    }
    pub fn keys(&self) -> Vec<String> {
        self.sim.state().objects.keys().cloned().collect()
    }
    /// The next `n` requests get 503 `SlowDown`.
    pub fn slowdown_next(&self, n: u32) {
        self.sim.state().faults.push(Target::Any, n, ());
    }
    /// The next `n` conditional PUTs get 409 `ConditionalRequestConflict`.
    pub fn conflict_next(&self, n: u32) {
        self.sim.state().faults.push(Target::ConditionalPut, n, ());
    }
    pub fn calls(&self) -> Vec<S3Call> {
        self.sim.state().calls.to_vec()
    }
    pub fn shutdown(&mut self) {
        self.sim.stop();
    }
}

fn error(status: u16, code: &str, message: &str, extra: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>{extra}<RequestId>{}</RequestId><HostId>c2ltdWxhdGVk</HostId></Error>",
        escape(code),
        escape(message),
        request_id()
    );
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/xml")],
        body,
    )
        .into_response()
}

async fn handle(State(state): State<Shared<SimState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, MAX_OBJECT + 1).await else {
        return error(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
            "",
        );
    };
    let mut st = state.lock();
    let path = parts.uri.path().to_string();
    let key_raw = path
        .trim_start_matches('/')
        .split_once('/')
        .map(|(_, k)| k)
        .unwrap_or("");
    let key = url::form_urlencoded::parse(format!("k={}", key_raw.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let (status, code, resp) = answer(&mut st, &parts, &body, &key);
    st.calls.push(S3Call {
        method: parts.method.to_string(),
        key,
        status,
        code,
    });
    resp
}

fn answer(
    st: &mut SimState,
    parts: &axum::http::request::Parts,
    body: &[u8],
    key: &str,
) -> (u16, String, Response) {
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let e = |status: u16, code: &str, msg: &str, extra: &str| {
        (status, code.to_string(), error(status, code, msg, extra))
    };
    let (creds, region) = (&st.config.credentials, st.config.region.as_str());
    if let Err(f) = verify_request(S3, creds, region, parts, body) {
        return e(f.status, f.code, &f.message, "");
    }
    let bucket = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    if bucket != st.config.bucket {
        return e(
            404,
            "NoSuchBucket",
            "The specified bucket does not exist",
            &format!("<BucketName>{}</BucketName>", escape(bucket)),
        );
    }
    if key.is_empty() {
        return e(
            405,
            "MethodNotAllowed",
            "Bucket operations are not simulated",
            "",
        );
    }
    if st.faults.take(|t| *t == Target::Any).is_some() {
        return e(503, "SlowDown", "Please reduce your request rate.", "");
    }
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    match *method {
        Method::GET => match st.objects.get(key) {
            Some(o) => (
                200,
                String::new(),
                (
                    StatusCode::OK,
                    [
                        ("etag", o.etag.clone()),
                        ("content-type", "application/json".to_string()),
                    ],
                    o.bytes.clone(),
                )
                    .into_response(),
            ),
            None => e(
                404,
                "NoSuchKey",
                "The specified key does not exist.",
                &format!("<Key>{}</Key>", escape(key)),
            ),
        },
        Method::PUT => {
            let if_match = header("if-match");
            let if_none = header("if-none-match");
            if if_none.is_some_and(|v| v != "*") {
                return e(
                    501,
                    "NotImplemented",
                    "A header you provided implies functionality that is not implemented",
                    "<Header>If-None-Match</Header>",
                );
            }
            if (if_match.is_some() || if_none.is_some())
                && st.faults.take(|t| *t == Target::ConditionalPut).is_some()
            {
                return e(
                    409,
                    "ConditionalRequestConflict",
                    "A conflicting conditional operation is currently in progress against this resource. Please try again.",
                    "",
                );
            }
            let current = st.objects.get(key);
            if if_none.is_some() && current.is_some() {
                return e(
                    412,
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                    "<Condition>If-None-Match</Condition>",
                );
            }
            if let Some(want) = if_match {
                match current {
                    None => {
                        return e(
                            404,
                            "NoSuchKey",
                            "The specified key does not exist.",
                            &format!("<Key>{}</Key>", escape(key)),
                        );
                    }
                    Some(o) if o.etag != want && o.etag != format!("\"{want}\"") => {
                        return e(
                            412,
                            "PreconditionFailed",
                            "At least one of the pre-conditions you specified did not hold",
                            "<Condition>If-Match</Condition>",
                        );
                    }
                    Some(_) => {}
                }
            }
            st.generation += 1;
            // S3's ETag is the MD5 of a single-part object; any content-dependent tag serves
            // here, with the generation so rewriting the same bytes still changes it.
            let tag = sigv4::sha256_hex(
                format!("{}:{}", st.generation, sigv4::sha256_hex(body)).as_bytes(),
            );
            let etag = format!("\"{}\"", &tag[..32]);
            st.objects.insert(
                key.to_string(),
                Object {
                    bytes: body.to_vec(),
                    etag: etag.clone(),
                },
            );
            (
                200,
                String::new(),
                (StatusCode::OK, [("etag", etag)], "").into_response(),
            )
        }
        _ => e(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            "",
        ),
    }
}
