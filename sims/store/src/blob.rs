//! A simulated Azure Blob service: the subset the state store uses, over real HTTP on
//! 127.0.0.1, with failure injection that the real emulator cannot do (5xx, 429, latency).
//!
//! It checks requests like the service does: account SAS (signature with the dev account's
//! key, expiry, service `b`, resource types, permissions), `x-ms-version`, `x-ms-blob-type`,
//! `Content-Length`, conditional headers (`If-Match` → 412 `ConditionNotMet`,
//! `If-None-Match: *` on an existing blob → 409 `BlobAlreadyExists`), `Range` (206 with
//! `Content-Range`, 416 `InvalidRange` past the end), and answers errors with an
//! `x-ms-error-code` header and the XML error body. Supported: Create Container
//! (`PUT ?restype=container`), Put Blob (block blobs), Get Blob. Anything else is
//! 400 `UnsupportedHttpVerb` / `UnsupportedQueryParameter`.
//!
//! Everything stays in memory for inspection ([`BlobSim::blob`], [`BlobSim::requests`]).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use burst_sim_kit::{FaultQueue, RequestLog, Running};

use crate::azurite::{ACCOUNT, ACCOUNT_KEY, dev_account_sas, sign};

/// Largest Put Blob body the simulation accepts (the real limit is far higher; state documents
/// are tiny).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A stored blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimBlob {
    pub bytes: Vec<u8>,
    /// The ETag as sent on the wire, with quotes: `"0x8DC0000000000001"`.
    pub etag: String,
    pub content_type: String,
}

/// One request as the service saw it (the query is left out: it holds the SAS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRequest {
    pub method: String,
    pub path: String,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub status: u16,
    pub error_code: Option<String>,
}

/// An answer to force on the next blob request (before any other check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    pub status: u16,
    /// The `x-ms-error-code` (e.g. `ServerBusy`, `InternalError`); `None` sends no code.
    pub code: Option<String>,
    /// A `Retry-After` header in seconds, as the service sends with 503/429.
    pub retry_after: Option<u32>,
}

#[derive(Debug, Default)]
struct Inner {
    containers: BTreeMap<String, BTreeMap<String, SimBlob>>,
    counter: u64,
    failures: FaultQueue<(), Injected>,
    latency: Option<Duration>,
    requests: RequestLog<SimRequest>,
}

type Shared = burst_sim_kit::Shared<Inner>;

/// A running simulated blob service; stops on drop or [`BlobSim::shutdown`].
#[derive(Debug)]
pub struct BlobSim {
    sim: Running<Inner>,
}

impl BlobSim {
    /// Starts the service on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<BlobSim> {
        let routes = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(MAX_BODY));
        let sim = Running::start(Inner::default(), routes).await?;
        Ok(BlobSim { sim })
    }

    /// `http://127.0.0.1:<port>/devstoreaccount1`
    pub fn base_url(&self) -> String {
        format!("{}/{ACCOUNT}", self.sim.base_url())
    }

    /// A `BURST_STATE_URL` for `container` with an account SAS valid for a day.
    pub fn state_url(&self, container: &str) -> String {
        format!("{}/{container}?{}", self.base_url(), self.account_sas())
    }

    /// An account SAS for the dev account, valid for a day.
    pub fn account_sas(&self) -> String {
        dev_account_sas()
    }

    /// Creates a container directly (no request); returns false if it existed.
    pub fn create_container(&self, container: &str) -> bool {
        let mut inner = self.sim.state();
        if inner.containers.contains_key(container) {
            return false;
        }
        inner
            .containers
            .insert(container.to_owned(), BTreeMap::new());
        true
    }

    /// The stored blob, if any.
    pub fn blob(&self, container: &str, name: &str) -> Option<SimBlob> {
        self.sim
            .state()
            .containers
            .get(container)?
            .get(name)
            .cloned()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<SimRequest> {
        self.sim.state().requests.to_vec()
    }

    /// The next blob request gets this answer (queued; one per request).
    pub fn fail_next(&self, failure: Injected) {
        self.sim.state().failures.push((), 1, failure);
    }

    /// Delays every answer by `latency` (`None`: answer at once).
    pub fn set_latency(&self, latency: Option<Duration>) {
        self.sim.state().latency = latency;
    }

    /// Stops the server (also done on drop).
    pub fn shutdown(mut self) {
        self.sim.stop();
    }
}

/// The decoded query parameters of a request.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What a request needs from the SAS.
#[derive(Clone, Copy)]
enum Need {
    /// Create Container: resource type `c`, permission `c` or `w`.
    CreateContainer,
    /// Put Blob: resource type `o`, permission `w` or `c`.
    WriteBlob,
    /// Get Blob: resource type `o`, permission `r`.
    ReadBlob,
}

struct Reply {
    status: StatusCode,
    code: Option<String>,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn error(status: StatusCode, code: &str, message: &str) -> Reply {
        let request_id = uuid_like();
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\nRequestId:{request_id}\nTime:{}</Message></Error>",
            service_time()
        );
        Reply {
            status,
            code: Some(code.to_owned()),
            headers: vec![("content-type", "application/xml".into())],
            body: body.into_bytes(),
        }
    }
}

async fn handle(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = inner.lock().latency;
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    let reply = {
        let mut state = inner.lock();
        let reply = match state.failures.take(|_| true) {
            Some(injected) => injected_reply(&injected),
            None => serve(&mut state, &method, &uri, &headers, &body),
        };
        state.requests.push(SimRequest {
            method: method.to_string(),
            path: uri.path().to_owned(),
            if_match: header(&headers, "if-match").map(str::to_owned),
            if_none_match: header(&headers, "if-none-match").map(str::to_owned),
            status: reply.status.as_u16(),
            error_code: reply.code.clone(),
        });
        reply
    };
    let mut response = (reply.status, reply.body).into_response();
    let h = response.headers_mut();
    h.insert("x-ms-request-id", value(&uuid_like()));
    h.insert("x-ms-version", HeaderValue::from_static("2026-04-06"));
    h.insert("server", HeaderValue::from_static("burst-blob-sim"));
    if let Some(code) = &reply.code {
        h.insert("x-ms-error-code", value(code));
    }
    for (name, v) in reply.headers {
        h.insert(name, value(&v));
    }
    response
}

fn injected_reply(injected: &Injected) -> Reply {
    let status = StatusCode::from_u16(injected.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut reply = match &injected.code {
        Some(code) => Reply::error(status, code, "Injected failure."),
        None => Reply {
            status,
            code: None,
            headers: Vec::new(),
            body: Vec::new(),
        },
    };
    if let Some(secs) = injected.retry_after {
        reply.headers.push(("retry-after", secs.to_string()));
    }
    reply
}

fn serve(state: &mut Inner, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Reply {
    let query = Query::parse(uri.query());
    let q = |k: &str| query.get(k);
    let parts: Vec<&str> = uri.path().trim_start_matches('/').splitn(3, '/').collect();
    let (account, container, blob) = match parts.as_slice() {
        [a, c] => (*a, *c, None),
        [a, c, b] if !b.is_empty() => (*a, *c, Some(*b)),
        [a, c, _] => (*a, *c, None),
        _ => {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "InvalidUri",
                "The requested URI does not represent any resource on the server.",
            );
        }
    };
    if account != ACCOUNT {
        return Reply::error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailure",
            "Server failed to authenticate the request. Make sure the value of the Authorization header is formed correctly including the signature.",
        );
    }
    if header(headers, "x-ms-version").is_none() {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "MissingRequiredHeader",
            "An HTTP header that's mandatory for this request is not specified.",
        );
    }
    let need = match (method, blob, q("restype")) {
        (&Method::PUT, None, Some("container")) => Need::CreateContainer,
        (&Method::PUT, Some(_), None) if q("comp").is_none() => Need::WriteBlob,
        (&Method::GET, Some(_), None) if q("comp").is_none() => Need::ReadBlob,
        (&Method::PUT | &Method::GET, _, _) => {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "UnsupportedQueryParameter",
                "One of the query parameters specified in the request URI is not supported.",
            );
        }
        _ => {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "UnsupportedHttpVerb",
                "The resource doesn't support specified Http Verb.",
            );
        }
    };
    if let Err(reply) = check_sas(&query, need) {
        return reply;
    }
    match (need, blob) {
        (Need::CreateContainer, _) => {
            if state.containers.contains_key(container) {
                return Reply::error(
                    StatusCode::CONFLICT,
                    "ContainerAlreadyExists",
                    "The specified container already exists.",
                );
            }
            state
                .containers
                .insert(container.to_owned(), BTreeMap::new());
            state.counter += 1;
            created(state.counter)
        }
        (Need::WriteBlob, Some(name)) => put_blob(state, container, name, headers, body),
        (Need::ReadBlob, Some(name)) => get_blob(state, container, name, headers),
        _ => Reply::error(StatusCode::BAD_REQUEST, "InvalidUri", "No blob name."),
    }
}

fn put_blob(
    state: &mut Inner,
    container: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    if header(headers, "x-ms-blob-type") != Some("BlockBlob") {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "MissingRequiredHeader",
            "An HTTP header that's mandatory for this request is not specified.",
        );
    }
    match header(headers, "content-length").map(str::parse::<usize>) {
        Some(Ok(n)) if n == body.len() => {}
        _ => {
            return Reply::error(
                StatusCode::LENGTH_REQUIRED,
                "MissingContentLengthHeader",
                "Content-Length header value must be specified.",
            );
        }
    }
    let counter = state.counter + 1;
    let Some(blobs) = state.containers.get_mut(container) else {
        return container_not_found();
    };
    let current = blobs.get(name).map(|b| b.etag.clone());
    if let Err(reply) = write_conditions(headers, current.as_deref()) {
        return reply;
    }
    let etag = etag_for(counter);
    let content_type = header(headers, "x-ms-blob-content-type")
        .unwrap_or("application/octet-stream")
        .to_owned();
    blobs.insert(
        name.to_owned(),
        SimBlob {
            bytes: body.to_vec(),
            etag: etag.clone(),
            content_type,
        },
    );
    state.counter = counter;
    let mut reply = created(counter);
    reply
        .headers
        .push(("x-ms-request-server-encrypted", "true".into()));
    reply
}

fn get_blob(state: &Inner, container: &str, name: &str, headers: &HeaderMap) -> Reply {
    let Some(blobs) = state.containers.get(container) else {
        return container_not_found();
    };
    let Some(blob) = blobs.get(name) else {
        return Reply::error(
            StatusCode::NOT_FOUND,
            "BlobNotFound",
            "The specified blob does not exist.",
        );
    };
    if let Some(want) = header(headers, "if-match")
        && want != "*"
        && unquote(want) != unquote(&blob.etag)
    {
        return condition_not_met();
    }
    // A read with If-None-Match naming the current version: 304 and no body, as Azure does.
    if let Some(known) = header(headers, "if-none-match")
        && (known == "*" || unquote(known) == unquote(&blob.etag))
    {
        return Reply {
            status: StatusCode::NOT_MODIFIED,
            code: None,
            headers: vec![("etag", blob.etag.clone()), ("last-modified", http_date())],
            body: Vec::new(),
        };
    }
    let total = blob.bytes.len();
    let mut reply_headers = vec![
        ("etag", blob.etag.clone()),
        ("last-modified", http_date()),
        ("content-type", blob.content_type.clone()),
        ("x-ms-blob-type", "BlockBlob".to_owned()),
        ("accept-ranges", "bytes".to_owned()),
    ];
    let range = header(headers, "x-ms-range").or_else(|| header(headers, "range"));
    let Some(range) = range else {
        return Reply {
            status: StatusCode::OK,
            code: None,
            headers: reply_headers,
            body: blob.bytes.clone(),
        };
    };
    let Some((start, end)) = parse_range(range) else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "InvalidHeaderValue",
            "The value for one of the HTTP headers is not in the correct format.",
        );
    };
    if start >= total {
        let mut reply = Reply::error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            "The range specified is invalid for the current size of the resource.",
        );
        reply
            .headers
            .push(("content-range", format!("bytes */{total}")));
        return reply;
    }
    let last = end.map_or(total - 1, |e| e.min(total - 1));
    reply_headers.push(("content-range", format!("bytes {start}-{last}/{total}")));
    Reply {
        status: StatusCode::PARTIAL_CONTENT,
        code: None,
        headers: reply_headers,
        body: blob.bytes[start..=last].to_vec(),
    }
}

/// The write rules of Put Blob: `If-None-Match: *` fails with 409 on an existing blob; an
/// `If-Match` that is not `*` fails with 412 unless it equals the current ETag (quotes ignored);
/// `If-Match` on a missing blob fails with 412.
fn write_conditions(headers: &HeaderMap, current: Option<&str>) -> Result<(), Reply> {
    if let Some(none_match) = header(headers, "if-none-match") {
        match current {
            Some(_) if none_match == "*" => {
                return Err(Reply::error(
                    StatusCode::CONFLICT,
                    "BlobAlreadyExists",
                    "The specified blob already exists.",
                ));
            }
            Some(etag) if unquote(none_match) == unquote(etag) => return Err(condition_not_met()),
            _ => return Ok(()),
        }
    }
    if let Some(want) = header(headers, "if-match") {
        match current {
            None if want != "*" => return Err(condition_not_met()),
            Some(etag) if want != "*" && unquote(want) != unquote(etag) => {
                return Err(condition_not_met());
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks an account SAS the way the service does for the given operation.
fn check_sas(query: &Query, need: Need) -> Result<(), Reply> {
    let q = |k: &str| query.get(k);
    let auth_failure = || {
        Reply::error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailure",
            "Server failed to authenticate the request. Make sure the value of the Authorization header is formed correctly including the signature.",
        )
    };
    let (Some(sv), Some(ss), Some(srt), Some(sp), Some(se), Some(sig)) =
        (q("sv"), q("ss"), q("srt"), q("sp"), q("se"), q("sig"))
    else {
        return Err(auth_failure());
    };
    let st = q("st").unwrap_or("");
    let sip = q("sip").unwrap_or("");
    let spr = q("spr").unwrap_or("");
    let ses = q("ses").unwrap_or("");
    let to_sign = format!("{ACCOUNT}\n{sp}\n{ss}\n{srt}\n{st}\n{se}\n{sip}\n{spr}\n{sv}\n{ses}\n");
    if sv < "2020-12-06" || sign(ACCOUNT_KEY, &to_sign) != sig {
        return Err(auth_failure());
    }
    let expired = chrono::DateTime::parse_from_rfc3339(se)
        .map(|t| t < chrono::Utc::now())
        .unwrap_or(true);
    if expired {
        return Err(auth_failure());
    }
    if !ss.contains('b') {
        return Err(Reply::error(
            StatusCode::FORBIDDEN,
            "AuthorizationServiceMismatch",
            "This request is not authorized to perform this operation using this service.",
        ));
    }
    let (resource, perms): (char, &[char]) = match need {
        Need::CreateContainer => ('c', &['c', 'w']),
        Need::WriteBlob => ('o', &['w', 'c']),
        Need::ReadBlob => ('o', &['r']),
    };
    if !srt.contains(resource) {
        return Err(Reply::error(
            StatusCode::FORBIDDEN,
            "AuthorizationResourceTypeMismatch",
            "This request is not authorized to perform this operation using this resource type.",
        ));
    }
    if !perms.iter().any(|p| sp.contains(*p)) {
        return Err(Reply::error(
            StatusCode::FORBIDDEN,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        ));
    }
    Ok(())
}

fn created(counter: u64) -> Reply {
    Reply {
        status: StatusCode::CREATED,
        code: None,
        headers: vec![("etag", etag_for(counter)), ("last-modified", http_date())],
        body: Vec::new(),
    }
}

fn container_not_found() -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        "ContainerNotFound",
        "The specified container does not exist.",
    )
}

fn condition_not_met() -> Reply {
    Reply::error(
        StatusCode::PRECONDITION_FAILED,
        "ConditionNotMet",
        "The condition specified using HTTP conditional header(s) is not met.",
    )
}

/// `bytes=a-b` or `bytes=a-` → (a, Some(b) | None).
fn parse_range(value: &str) -> Option<(usize, Option<usize>)> {
    let spec = value.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => None,
        b => Some(b.parse().ok()?),
    };
    match end {
        Some(e) if e < start => None,
        _ => Some((start, end)),
    }
}

fn etag_for(counter: u64) -> String {
    format!("\"0x8DC{counter:013X}\"")
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `2026-11-26T07:14:51.1234567Z`: the service's 7-digit fraction.
fn service_time() -> String {
    use chrono::Timelike as _;
    let now = chrono::Utc::now();
    format!(
        "{}.{:07}Z",
        now.format("%Y-%m-%dT%H:%M:%S"),
        now.nanosecond() % 1_000_000_000 / 100
    )
}

fn http_date() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn uuid_like() -> String {
    let n = fastrand::u128(..);
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-4194303"), Some((0, Some(4_194_303))));
        assert_eq!(parse_range("bytes=5-"), Some((5, None)));
        assert_eq!(parse_range("bytes=5-4"), None);
        assert_eq!(parse_range("items=0-1"), None);
    }

    #[test]
    fn etags_are_quoted_and_unique() {
        assert_eq!(etag_for(1), "\"0x8DC0000000000001\"");
        assert_ne!(etag_for(1), etag_for(2));
        assert_eq!(unquote("\"0x1\""), "0x1");
    }
}
