//! The host's HTTP side (the host behaviour listed in local-emulator/README.md): routing, keys, forwarding and JSON
//! mode, the admin endpoint that runs a timer, functionTimeout.

use super::Inner;
use super::app::{AuthLevel, Function, Trigger};
use super::log::Level;
use super::payload::{self, HttpOut, HttpRequestInfo, KeyUsed, Ordered, Reply};
use super::worker::Ready;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `FUNCTIONS_REQUEST_BODY_SIZE_LIMIT` default (100 MB) and the URL limit (4 KB).
const BODY_LIMIT: usize = 100 * 1024 * 1024;
const URL_LIMIT: usize = 4096;

/// Hop-by-hop headers never copied, either way.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-connection",
    "trailer",
];

/// Content headers other than Content-Type/Content-Length are dropped when forwarding.
const DROPPED_CONTENT_HEADERS: [&str; 9] = [
    "content-encoding",
    "content-language",
    "content-location",
    "content-md5",
    "content-range",
    "content-disposition",
    "expires",
    "last-modified",
    "allow",
];

pub(crate) fn router(inner: Arc<Inner>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(inner)
}

fn respond(out: HttpOut) -> Response {
    let mut r = Response::new(Body::from(out.body));
    *r.status_mut() = StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in out.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            if HOP_BY_HOP.contains(&k.as_str()) || k == "content-length" {
                continue;
            }
            r.headers_mut().append(k, v);
        }
    }
    r
}

fn empty(status: u16) -> Response {
    respond(HttpOut::empty(status))
}

/// The key a caller presented: `x-functions-key` header, else `code` query (header wins).
fn presented_key(headers: &HeaderMap, query: &[(String, String)]) -> Option<String> {
    headers
        .get("x-functions-key")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .or_else(|| {
            query
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("code"))
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        })
}

/// Constant-time-ish comparison: keys are secrets.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn key_used(inner: &Inner, key: Option<&str>, function: &str) -> Option<KeyUsed> {
    let key = key?;
    if same(key, &inner.keys.master) {
        return Some(KeyUsed::Master);
    }
    let fk = inner.keys.functions.get(&function.to_ascii_lowercase());
    if same(key, &inner.keys.host) || fk.is_some_and(|k| same(key, k)) {
        return Some(KeyUsed::Function);
    }
    None
}

fn allowed(inner: &Inner, level: AuthLevel, used: Option<KeyUsed>) -> bool {
    !inner.auth
        || match level {
            AuthLevel::Anonymous => true,
            AuthLevel::Function => used.is_some(),
            AuthLevel::Admin => used == Some(KeyUsed::Master),
        }
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().map(str::to_string);
    if path.len() + raw_query.as_ref().map_or(0, String::len) > URL_LIMIT {
        return empty(414);
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let [a, f, name] = segments.as_slice()
        && a.eq_ignore_ascii_case("admin")
        && f.eq_ignore_ascii_case("functions")
    {
        return admin_invoke(&inner, name, req).await;
    }
    if segments.is_empty() && req.method() == "GET" {
        let mut r = Response::new(Body::from(
            "Your Functions 4.0 app is up and running (func-emulator)\n",
        ));
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return r;
    }
    let prefix = &inner.app.host.route_prefix;
    let rest = if prefix.is_empty() {
        Some(segments.join("/"))
    } else {
        let pre: Vec<&str> = prefix.split('/').collect();
        let n = pre.len();
        (segments.len() >= n
            && segments
                .iter()
                .zip(pre.iter())
                .all(|(a, b)| a.eq_ignore_ascii_case(b)))
        .then(|| segments[n..].join("/"))
    };
    let Some(rest) = rest else {
        return empty(404);
    };
    let method = req.method().as_str().to_ascii_uppercase();
    // A method not listed does not match the route: 404 unless another function matches.
    type Candidate<'a> = (&'a Function, Vec<(String, String)>, (usize, usize));
    let mut best: Option<Candidate> = None;
    for f in &inner.app.functions {
        let Trigger::Http(h) = &f.trigger else {
            continue;
        };
        if inner.is_disabled(&f.name) {
            continue;
        }
        if h.methods.as_ref().is_some_and(|m| !m.contains(&method)) {
            continue;
        }
        if let Some(values) = h.route.matches(&rest) {
            let spec = h.route.specificity();
            if best.as_ref().is_none_or(|(_, _, s)| spec > *s) {
                best = Some((f, values, spec));
            }
        }
    }
    let Some((f, route_values, _)) = best else {
        return empty(404);
    };
    let Trigger::Http(h) = &f.trigger else {
        return empty(404);
    };
    let query = payload::query_dict(raw_query.as_deref());
    let key = presented_key(req.headers(), &query);
    let used = key_used(&inner, key.as_deref(), &f.name);
    if !allowed(&inner, h.auth, used) {
        return empty(401);
    }
    let (parts, body) = req.into_parts();
    let body = match to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b.to_vec(),
        Err(_) => return empty(413),
    };
    let content_length: u64 = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let invocation = uuid::Uuid::new_v4();
    let reason = "This function was programmatically called via the host APIs.";
    let call = async {
        if inner.app.host.forwarding && f.http_only {
            forward(
                &inner,
                &f.name,
                &parts,
                &path,
                &query,
                body,
                content_length,
                invocation,
            )
            .await
        } else {
            let host = parts
                .headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost")
                .to_string();
            let url = format!(
                "http://{host}{}",
                parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
            );
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let info = HttpRequestInfo {
                url,
                method: method.clone(),
                raw_query,
                headers,
                body,
                content_length,
                route_values,
                key: used,
            };
            let payload = payload::http_invocation(
                &f.name,
                &h.name,
                &info,
                chrono::Utc::now(),
                uuid::Uuid::new_v4(),
            );
            match invoke_json(&inner, f, payload, invocation).await {
                Ok(Some(r)) => Ok(respond(r)),
                Ok(None) => Ok(empty(200)),
                Err(e) => Err(e),
            }
        }
    };
    logged(&inner, &f.name, reason, invocation, call)
        .await
        .unwrap_or_else(|_| empty(500))
}

/// Runs `call`, invocation `invocation` of function `name`, between the host's "Executing"
/// and "Executed" log lines.
async fn logged<T>(
    inner: &Inner,
    name: &str,
    reason: &str,
    invocation: uuid::Uuid,
    call: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    inner.log.host(
        Level::Information,
        &format!("Executing 'Functions.{name}' (Reason='{reason}', Id={invocation})"),
    );
    let started = Instant::now();
    let out = call.await;
    let ms = started.elapsed().as_millis();
    match &out {
        Ok(_) => inner.log.host(
            Level::Information,
            &format!("Executed 'Functions.{name}' (Succeeded, Id={invocation}, Duration={ms}ms)"),
        ),
        Err(e) => inner.log.host(
            Level::Error,
            &format!("Executed 'Functions.{name}' (Failed, Id={invocation}, Duration={ms}ms): {e}"),
        ),
    }
    out
}

/// The next instance's handler (in turn) and its number; after 120 s without readiness the
/// host shuts down.
async fn ready_port(inner: &Inner) -> Result<(usize, Ready), String> {
    let n = inner.workers.len().max(1);
    let i = inner
        .next_worker
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        % n;
    match inner.workers[i].wait_ready(super::READY_WAIT).await {
        Ok(p) => Ok((i, p)),
        Err(e) if e == "timeout" => {
            inner.log.host(
                Level::Error,
                "The handler was not ready within 120 s; the host shuts down",
            );
            inner.fatal.notify_one();
            Err("handler not ready".into())
        }
        Err(e) => Err(e),
    }
}

/// Runs a call to the handler under functionTimeout; on timeout the handler is restarted.
async fn with_timeout<T>(
    inner: &Inner,
    function: &str,
    invocation: uuid::Uuid,
    handler: (usize, u64),
    fut: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    match tokio::time::timeout(inner.function_timeout, fut).await {
        Ok(r) => r,
        Err(_) => {
            timed_out(inner, function, invocation, handler);
            Err("functionTimeout exceeded".into())
        }
    }
}

/// `handler`: the instance and the start (generation) of its process that ran over.
fn timed_out(inner: &Inner, function: &str, invocation: uuid::Uuid, handler: (usize, u64)) {
    let t = inner.function_timeout.as_secs();
    inner.log.host(
        Level::Error,
        &format!(
            "Timeout value of {:02}:{:02}:{:02} exceeded by function 'Functions.{function}' (Id: '{invocation}'). Initiating cancellation.",
            t / 3600,
            (t / 60) % 60,
            t % 60
        ),
    );
    let (instance, generation) = handler;
    if let Some(worker) = inner.workers.get(instance) {
        worker.restart(generation);
    }
}

/// The forwarding-mode client: HTTP/1 to the handler on loopback, kept-alive connections.
pub(crate) type Forwarder =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

pub(crate) fn forwarder() -> Forwarder {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http()
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    inner: &Inner,
    function: &str,
    parts: &axum::http::request::Parts,
    path: &str,
    query: &[(String, String)],
    body: Vec<u8>,
    content_length: u64,
    invocation: uuid::Uuid,
) -> Result<Response, String> {
    let (instance, Ready { port, generation }) = ready_port(inner).await?;
    let handler = (instance, generation);
    let mut url = format!("http://127.0.0.1:{port}{path}");
    if !query.is_empty() {
        url.push('?');
        url.push_str(&payload::rebuild_query(query));
    }
    let uri: axum::http::Uri = url.parse().map_err(|e| format!("bad forward URL: {e}"))?;
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 3);
    for (k, v) in &parts.headers {
        let name = k.as_str();
        if HOP_BY_HOP.contains(&name)
            || DROPPED_CONTENT_HEADERS.contains(&name)
            || name == "content-length"
            || name == "user-agent"
        {
            continue;
        }
        headers.append(k.clone(), v.clone());
    }
    let ua = parts
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|u| format!("{u} Azure-Functions-Host/{}", payload::HOST_VERSION))
        .unwrap_or_else(|| format!("Azure-Functions-Host/{}", payload::HOST_VERSION));
    if let Ok(v) = HeaderValue::try_from(ua) {
        headers.insert("user-agent", v);
    }
    headers.insert(
        "x-azure-functions-hostversion",
        HeaderValue::from_static(payload::HOST_VERSION),
    );
    if let Ok(v) = HeaderValue::try_from(invocation.to_string()) {
        headers.insert("x-azure-functions-invocationid", v);
    }
    // Only a body that came with a Content-Length is passed on (a chunked one is dropped).
    let body = if content_length > 0 {
        if let Ok(v) = HeaderValue::try_from(body.len().to_string()) {
            headers.insert("content-length", v);
        }
        Body::from(body)
    } else {
        Body::empty()
    };
    let mut request = axum::http::Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let client = inner.forwarder.clone();
    with_timeout(inner, function, invocation, handler, async move {
        let r = client
            .request(request)
            .await
            .map_err(|e| format!("handler unreachable: {e}"))?;
        let (mut head, incoming) = r.into_parts();
        // The whole reply is read here, so a cut-off reply is a failed invocation.
        let bytes = to_bytes(Body::new(incoming), BODY_LIMIT)
            .await
            .map_err(|e| format!("handler reply cut off: {e}"))?;
        for h in HOP_BY_HOP {
            head.headers.remove(h);
        }
        head.headers.remove("content-length");
        Ok(Response::from_parts(head, Body::from(bytes)))
    })
    .await
}

/// JSON mode: `POST /{FunctionName}`; returns the HTTP response (HTTP functions) or `None`.
async fn invoke_json(
    inner: &Inner,
    f: &Function,
    payload: Ordered,
    invocation: uuid::Uuid,
) -> Result<Option<HttpOut>, String> {
    let (instance, Ready { port, generation }) = ready_port(inner).await?;
    let handler = (instance, generation);
    let url = format!("http://127.0.0.1:{port}/{}", f.name);
    let body = payload.to_json_string();
    let rb = inner
        .client
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-azure-functions-hostversion", payload::HOST_VERSION)
        .header("x-azure-functions-invocationid", invocation.to_string())
        .header(
            "user-agent",
            format!("Azure-Functions-Host/{}", payload::HOST_VERSION),
        )
        .body(body);
    let started = tokio::time::Instant::now();
    let reply = with_timeout(inner, &f.name, invocation, handler, async move {
        let r = rb
            .send()
            .await
            .map_err(|e| format!("handler unreachable: {e}"))?;
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = r
            .bytes()
            .await
            .map_err(|e| format!("handler reply cut off: {e}"))?;
        Ok(payload::parse_reply(
            status,
            ct.as_deref(),
            &bytes,
            &f.http_outputs,
        ))
    })
    .await?;
    match reply {
        Reply::Ok { logs, response } => {
            for l in logs {
                inner.log.worker(Level::Information, &l);
            }
            Ok(response)
        }
        Reply::Failed(e) => Err(e),
        Reply::Hang => {
            // The real host never completes such an invocation: it waits out functionTimeout
            // and restarts the handler.
            let left = inner
                .function_timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(1));
            tokio::time::sleep(left).await;
            timed_out(inner, &f.name, invocation, handler);
            Err("handler replied without a JSON object; functionTimeout exceeded".into())
        }
    }
}

/// Called by timers and queue listeners: one JSON-mode invocation with logging; `true` on
/// success.
pub(crate) async fn invoke_triggered(
    inner: &Inner,
    function: &str,
    payload: Ordered,
    reason: &str,
) -> bool {
    let Some(f) = inner.app.function(function) else {
        return false;
    };
    let invocation = uuid::Uuid::new_v4();
    let call = invoke_json(inner, f, payload, invocation);
    logged(inner, &f.name, reason, invocation, call)
        .await
        .is_ok()
}

/// `POST /admin/functions/{name}` with the master key and `{"input":""}` → 202, runs now.
async fn admin_invoke(inner: &Arc<Inner>, name: &str, req: Request) -> Response {
    if req.method() != "POST" {
        return empty(405);
    }
    let query = payload::query_dict(req.uri().query());
    let key = presented_key(req.headers(), &query);
    if inner.auth && !key.as_deref().is_some_and(|k| same(k, &inner.keys.master)) {
        return empty(401);
    }
    let Some(timer) = inner.timers.get(&name.to_ascii_lowercase()).cloned() else {
        return empty(404);
    };
    let body = match to_bytes(req.into_body(), 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return empty(413),
    };
    let valid = serde_json::from_slice::<Value>(&body)
        .ok()
        .is_some_and(|v| v.get("input").is_some());
    if !valid {
        return empty(400);
    }
    tokio::spawn(async move {
        timer
            .run_once(
                false,
                "This function was programmatically called via the host APIs.".into(),
            )
            .await;
    });
    empty(202)
}
