//! The Azure Functions custom handler (the host behaviour listed in local-emulator/README.md): one HTTP server for every
//! function, answering both ways the host may call it.
//!
//! - The edge, [`serve`]: an accept loop on hyper (HTTP/1.1, as the Functions host speaks) with
//!   a deadline for request headers and a cap on open connections. Beyond the cap a new
//!   connection gets one clear `503 too_many_connections` and is closed, instead of the process
//!   running out of file descriptors while slow or half-open clients hold sockets. axum's own
//!   `serve` has neither knob, hence this small loop (hyper does the protocol). It is only the
//!   custom handler's: Lambda has its own runtime.
//! - Forwarding mode (HTTP-only functions, `enableForwardingHttpRequest`): the original request
//!   arrives at `/api/<route>`; our status, headers and body go back to the caller as they are.
//! - JSON mode (the timer always; HTTP when forwarding is off): `POST /<FunctionName>` with
//!   `{"Data","Metadata"}`; we always answer 200 with a JSON object, the HTTP response inside
//!   `Outputs.res` (a non-2xx or non-JSON reply would turn into an empty 500 at the host).
//! - `GET /` answers for the host's readiness poll.
//!
//! A small typed module plus axum instead of the old `azure_functions` crates: those implement
//! the 2019 gRPC worker protocol, not custom handlers, and are unmaintained.

use crate::bodies::{self, Function};
use crate::deps::Deps;
use crate::http::{BODY_LIMIT, Request as FnRequest, Response as FnResponse};
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::{Map, Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// JSON-mode envelopes carry headers and (for binary types) base64 bodies around the request.
const ENVELOPE_LIMIT: usize = 4 * BODY_LIMIT;

/// Limits of the edge (settings `BURST_MAX_CONNECTIONS`, `BURST_HEADER_TIMEOUT_MS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
        }
    }
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 84\r\n\r\n{\"error\":\"too_many_connections\",\"detail\":\"too many open connections; retry shortly\"}";

/// Serves `router` until `shutdown` resolves, then waits (bounded) for open requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut open = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: say so and give the system a moment, never spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while open.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            open.spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY)).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        open.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    // Let requests in progress finish (a step and its save), but not forever.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while open.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// The one router: every function, both modes, behind [`serve`].
pub fn router(deps: Arc<Deps>) -> Router {
    Router::new().fallback(dispatch).with_state(deps)
}

fn reply(r: FnResponse) -> Response {
    let mut b = Response::builder().status(r.status);
    for (k, v) in &r.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Body::from(r.body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn dispatch(State(deps): State<Arc<Deps>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_ascii_uppercase();
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        [] if method == "GET" || method == "HEAD" => {
            reply(FnResponse::json(200, &json!({"ok": true})))
        }
        [prefix, name] if prefix.eq_ignore_ascii_case("api") => {
            forwarded(&deps, name, &method, req).await
        }
        [name] if method == "POST" => json_mode(&deps, name, req).await,
        _ => reply(FnResponse::error(
            404,
            "not_found",
            &format!("no function at {path}"),
        )),
    }
}

/// Forwarding mode: the raw request, raw body bytes (signatures depend on them).
async fn forwarded(deps: &Arc<Deps>, name: &str, method: &str, req: Request) -> Response {
    let f = match Function::for_request(name, method) {
        Ok(f) => f,
        Err(r) => return reply(r),
    };
    let headers = FnRequest::header_pairs(req.headers());
    let body = match read_body(deps, req, BODY_LIMIT).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let fr = FnRequest {
        method: method.to_string(),
        path: format!("/api/{}", f.name()),
        headers,
        body,
    };
    reply(bodies::http(deps, f, &fr).await)
}

/// Reads a body within the size limit and `BURST_BODY_TIMEOUT_MS`: a client that stops
/// half-way gets 408 instead of holding the connection.
async fn read_body(deps: &Deps, req: Request, limit: usize) -> Result<Vec<u8>, Response> {
    match tokio::time::timeout(deps.settings.body_timeout, to_bytes(req.into_body(), limit)).await {
        Ok(Ok(b)) => Ok(b.to_vec()),
        Ok(Err(_)) => Err(reply(FnResponse::error(
            413,
            "body_too_large",
            &format!("request body is over {} KiB (or was cut off)", limit / 1024),
        ))),
        Err(_) => Err(reply(FnResponse::error(
            408,
            "body_timeout",
            "the request body did not arrive in time",
        ))),
    }
}

fn invocation_reply(outputs: Value, logs: Vec<String>) -> Response {
    reply(FnResponse::json(
        200,
        &json!({"Outputs": outputs, "Logs": logs, "ReturnValue": null}),
    ))
}

fn http_output(r: &FnResponse) -> Value {
    let headers: Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({"res": {
        "statusCode": r.status,
        "headers": headers,
        "body": String::from_utf8_lossy(&r.body),
    }})
}

/// JSON mode: `POST /<FunctionName>` with the host's invocation payload.
async fn json_mode(deps: &Arc<Deps>, name: &str, req: Request) -> Response {
    let Some(f) = Function::from_name(name) else {
        return reply(FnResponse::error(
            404,
            "not_found",
            &format!("no function {name:?}"),
        ));
    };
    let bytes = match tokio::time::timeout(
        deps.settings.body_timeout,
        to_bytes(req.into_body(), ENVELOPE_LIMIT),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            let r = FnResponse::error(413, "body_too_large", "invocation payload too large");
            return invocation_reply(http_output(&r), vec![]);
        }
        Err(_) => {
            let r = FnResponse::error(408, "body_timeout", "the invocation did not arrive in time");
            return invocation_reply(http_output(&r), vec![]);
        }
    };
    let payload: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let r = FnResponse::error(
                400,
                "invalid_invocation",
                &format!("invocation payload is not JSON: {e}"),
            );
            return invocation_reply(http_output(&r), vec![]);
        }
    };
    if f == Function::Probe {
        let past_due = payload
            .pointer("/Data/timer/IsPastDue")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let log = match bodies::probe(deps).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "probe failed");
                e
            }
        };
        let log = if past_due {
            format!("{log} (past due)")
        } else {
            log
        };
        return invocation_reply(json!({}), vec![log]);
    }
    if f == Function::Wake {
        return queue_invocation(deps, &payload).await;
    }
    let fr = match http_trigger_request(&payload) {
        Ok(r) => r,
        Err(detail) => {
            let r = FnResponse::error(400, "invalid_invocation", &detail);
            return invocation_reply(http_output(&r), vec![]);
        }
    };
    if Some(fr.method.as_str()) != f.method() {
        let r = FnResponse::error(
            405,
            "method_not_allowed",
            &format!("{} takes {}", f.name(), f.method().unwrap_or("")),
        );
        return invocation_reply(http_output(&r), vec![]);
    }
    let r = bodies::http(deps, f, &fr).await;
    invocation_reply(http_output(&r), vec![])
}

/// A queue-triggered invocation: `Data.<binding>` is the message (its text, the host having
/// decoded base64). Success answers 200; a failure answers 500 so the host counts a failed
/// attempt and retries (then parks the message in `<queue>-poison`).
async fn queue_invocation(deps: &Arc<Deps>, payload: &Value) -> Response {
    let message = payload
        .get("Data")
        .and_then(Value::as_object)
        .and_then(|d| d.values().next());
    let dequeue = payload
        .pointer("/Metadata/DequeueCount")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let result = match message {
        Some(m) => bodies::wake(deps, m).await,
        None => Err("wake: invocation has no Data item (the queue message)".to_string()),
    };
    match result {
        Ok(log) => invocation_reply(json!({}), vec![log]),
        Err(e) => {
            tracing::error!(error = %e, dequeue_count = dequeue, "wake failed");
            reply(FnResponse::json(
                500,
                &json!({"Outputs": {}, "Logs": [e], "ReturnValue": null}),
            ))
        }
    }
}

/// Builds a request from `Data.<trigger>`: headers are arrays of strings, `Body` is present
/// only when the request had one (a string; base64 for octet-stream and multipart).
pub fn http_trigger_request(payload: &Value) -> Result<FnRequest, String> {
    let data = payload
        .get("Data")
        .and_then(Value::as_object)
        .ok_or("invocation has no Data object")?;
    let trigger = data
        .get("req")
        .or_else(|| data.values().find(|v| v.get("Method").is_some()))
        .ok_or("Data has no HTTP trigger (no object with Method)")?;
    let method = trigger
        .get("Method")
        .and_then(Value::as_str)
        .ok_or("HTTP trigger has no Method")?
        .to_ascii_uppercase();
    let url = trigger.get("Url").and_then(Value::as_str).unwrap_or("");
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map(|i| &rest[i..]).unwrap_or("/"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    if let Some(h) = trigger.get("Headers").and_then(Value::as_object) {
        for (k, v) in h {
            match v {
                Value::Array(vals) => {
                    for val in vals.iter().filter_map(Value::as_str) {
                        headers.push((k.to_ascii_lowercase(), val.to_string()));
                    }
                }
                Value::String(s) => headers.push((k.to_ascii_lowercase(), s.clone())),
                _ => {}
            }
        }
    }
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    let body = match trigger.get("Body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => {
            if content_type.starts_with("application/octet-stream")
                || content_type.starts_with("multipart/")
            {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| "Body is not valid base64".to_string())?
            } else {
                s.as_bytes().to_vec()
            }
        }
        // Older hosts may hand JSON bodies over as objects: serialise them back.
        Some(other) => serde_json::to_vec(other).map_err(|e| e.to_string())?,
    };
    Ok(FnRequest {
        method,
        path,
        headers,
        body,
    })
}
