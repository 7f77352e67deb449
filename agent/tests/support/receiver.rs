//! A stand-in for the function app's agent routes that checks requests the way the agent
//! README's "Wire contract" says the real one does: method, path, `x-functions-key`, content
//! type, size, the JWT (pinned algorithm, signature, `aud`, `iss`, `exp - iat <= 300`, unique
//! `jti`, `body_sha256`), and the payload fields. It records what it accepts, dedupes on the
//! event `id` (200 `{"duplicate":true}`), and can refuse connections or answer 503.
//!
//! Keys work as on the Functions host: the host key (`ReceiverConfig::function_key`) opens
//! every route, a function key ([`Receiver::set_route_key`]) only its own; a missing or wrong
//! key gets 401 with an empty body (the host answers before the function runs). Refusals by
//! the "function" itself are JSON `{"error", "detail"}` with the function's error codes.
//! [`Receiver::set_clock_offset`] makes the `Date` header of every answer run off by that much.
//!
//! Heartbeats can be answered like the cloud's lease fence does: with [`Receiver::set_lease`]
//! a heartbeat carrying `"lease": true` renews a lease of that length and the reply carries
//! `"lease": {"expires_at", "remaining_ms"}` (a duplicate reports the current lease, not
//! renewed); with [`Receiver::set_stateful`] every heartbeat reply carries `"stateful"`.
//!
//! Written independently of the agent's own types (payloads are checked as raw JSON), so a
//! mistake in the agent's structs is caught here rather than mirrored.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use burst_wire::{BODY_LIMIT, Claims, Payload, body_sha256};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How the receiver verifies signatures (one algorithm only, as the function does).
#[derive(Clone)]
pub enum Verify {
    EdDSA { public_pem: String },
    HS256 { secret: String },
}

#[derive(Clone)]
pub struct ReceiverConfig {
    pub site_id: String,
    pub function_key: String,
    pub verify: Verify,
}

/// One accepted request.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub route: String,
    pub id: String,
    pub body: Value,
    pub jti: String,
    pub alg: Algorithm,
    /// Seconds since the Unix epoch when it was accepted.
    pub received_at: f64,
    /// The JSON the receiver answered with.
    pub reply: Value,
    /// The `x-functions-key` it carried.
    pub key: String,
}

/// One refused request.
#[derive(Clone, Debug)]
pub struct Refused {
    pub route: String,
    pub status: u16,
    pub error: String,
    pub detail: String,
}

#[derive(Default)]
struct Record {
    accepted: Vec<Accepted>,
    refused: Vec<Refused>,
    /// (route, id) pairs already accepted.
    ids: HashSet<(String, String)>,
    jtis: HashSet<String>,
    /// Requests answered `duplicate: true`.
    duplicates: Vec<(String, String)>,
    unavailable: bool,
    requests: usize,
    /// Lease length granted to heartbeats asking for one (`None`: replies carry no lease).
    lease: Option<Duration>,
    /// The granted lease's expiry.
    lease_expiry: Option<chrono::DateTime<chrono::Utc>>,
    /// `stateful` of every heartbeat reply (`None`: left out).
    stateful: Option<String>,
    /// Function keys: (route, key) pairs, each valid on its route only.
    route_keys: Vec<(String, String)>,
    /// Seconds added to the clock in the `Date` header (`None`: the server's own header).
    clock_offset_s: Option<i64>,
}

struct Shared {
    config: ReceiverConfig,
    record: Mutex<Record>,
}

/// The running receiver.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::sync::Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn error(
    status: StatusCode,
    code: &str,
    detail: impl Into<String>,
) -> (StatusCode, String, String) {
    (status, code.to_string(), detail.into())
}

impl Receiver {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start(config: ReceiverConfig) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let r = Receiver {
            addr,
            shared: Arc::new(Shared {
                config,
                record: Mutex::new(Record::default()),
            }),
            server: tokio::sync::Mutex::new(None),
        };
        r.serve(listener).await;
        r
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/api/{route}", post(handle))
            .with_state(self.shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        *self.server.lock().await = Some((tx, task));
    }

    /// Stops listening: connections are refused until [`Receiver::resume`].
    pub async fn refuse(&self) {
        if let Some((tx, task)) = self.server.lock().await.take() {
            let _ = tx.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&self) {
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("receiver: rebind {}: {e}; retrying", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("receiver cannot rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener).await;
    }

    /// Answer every request with 503 (after reading it) while `on`.
    pub fn set_unavailable(&self, on: bool) {
        self.lock().unavailable = on;
    }

    /// Heartbeats asking for a lease get (renew) one of this length; `None`: no lease in
    /// replies (the old function).
    pub fn set_lease(&self, length: Option<Duration>) {
        self.lock().lease = length;
    }

    /// A function key for `route` (`/api/ups`, ...): valid there only, besides the host key.
    pub fn set_route_key(&self, route: &str, key: &str) {
        self.lock()
            .route_keys
            .push((route.to_string(), key.to_string()));
    }

    /// Every answer's `Date` header says now + `offset_s` (`None`: the real time).
    pub fn set_clock_offset(&self, offset_s: Option<i64>) {
        self.lock().clock_offset_s = offset_s;
    }

    /// Every heartbeat reply says `"stateful": <value>` (`None`: field left out).
    pub fn set_stateful(&self, value: Option<&str>) {
        self.lock().stateful = value.map(str::to_string);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.shared.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.lock().accepted.clone()
    }

    pub fn accepted_on(&self, route: &str) -> Vec<Accepted> {
        self.accepted()
            .into_iter()
            .filter(|a| a.route == route)
            .collect()
    }

    /// The string `field` of every body accepted on `route`, in the order they came.
    pub fn accepted_strings(&self, route: &str, field: &str) -> Vec<String> {
        self.accepted_on(route)
            .iter()
            .map(|a| match a.body[field].as_str() {
                Some(value) => value.to_string(),
                None => panic!("no {field} in {}", a.body),
            })
            .collect()
    }

    pub fn refused(&self) -> Vec<Refused> {
        self.lock().refused.clone()
    }

    pub fn duplicates(&self) -> Vec<(String, String)> {
        self.lock().duplicates.clone()
    }

    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Waits until `n` requests were accepted on `route`, or `timeout`.
    pub async fn wait_accepted(&self, route: &str, n: usize, timeout: Duration) -> bool {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            if self.accepted_on(route).len() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A summary for assertion messages.
    pub fn describe(&self) -> String {
        let r = self.lock();
        let mut s = format!("{} requests; accepted:\n", r.requests);
        for a in &r.accepted {
            s.push_str(&format!("  {} {}\n", a.route, a.body));
        }
        for f in &r.refused {
            s.push_str(&format!(
                "  refused {} {} {}: {}\n",
                f.route, f.status, f.error, f.detail
            ));
        }
        for d in &r.duplicates {
            s.push_str(&format!("  duplicate {} {}\n", d.0, d.1));
        }
        s
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = answer(&shared, format!("/api/{route}"), headers, body);
    let offset = shared
        .record
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clock_offset_s;
    if let Some(offset) = offset {
        let date = chrono::Utc::now() + chrono::TimeDelta::seconds(offset);
        let text = date.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        if let Ok(value) = axum::http::HeaderValue::from_str(&text) {
            response
                .headers_mut()
                .insert(axum::http::header::DATE, value);
        }
    }
    response
}

fn answer(shared: &Shared, route: String, headers: HeaderMap, body: Bytes) -> Response {
    let unavailable = {
        let mut r = shared.record.lock().unwrap_or_else(|p| p.into_inner());
        r.requests += 1;
        r.unavailable
    };
    if unavailable {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "unavailable", "detail": "test receiver set to 503"})),
        )
            .into_response();
    }
    match check(shared, &route, &headers, &body) {
        Ok((claims, alg, payload)) => {
            let id = payload["id"].as_str().unwrap_or_default().to_string();
            let mut r = shared.record.lock().unwrap_or_else(|p| p.into_inner());
            if !r.jtis.insert(claims.jti.clone()) {
                r.refused.push(Refused {
                    route: route.clone(),
                    status: 409,
                    error: "replayed_jti".into(),
                    detail: claims.jti.clone(),
                });
                return (
                    StatusCode::CONFLICT,
                    axum::Json(json!({"error": "replayed_jti", "detail": "jti already seen"})),
                )
                    .into_response();
            }
            let duplicate = !r.ids.insert((route.clone(), id.clone()));
            let mut reply = if duplicate {
                json!({"duplicate": true})
            } else {
                json!({"accepted": true, "ok": true, "duplicate": false, "id": id})
            };
            if route == "/api/heartbeat" {
                heartbeat_reply(&mut r, &payload, duplicate, &mut reply);
            }
            if duplicate {
                r.duplicates.push((route, id));
                return (StatusCode::OK, axum::Json(reply)).into_response();
            }
            r.accepted.push(Accepted {
                route,
                id: id.clone(),
                body: payload,
                jti: claims.jti,
                alg,
                received_at: now_epoch(),
                reply: reply.clone(),
                key: headers
                    .get("x-functions-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
            });
            (StatusCode::OK, axum::Json(reply)).into_response()
        }
        Err((status, code, detail)) => {
            let mut r = shared.record.lock().unwrap_or_else(|p| p.into_inner());
            r.refused.push(Refused {
                route,
                status: status.as_u16(),
                error: code.clone(),
                detail: detail.clone(),
            });
            if code == HOST_KEY_REFUSED {
                return status.into_response(); // the host's 401: no body
            }
            (status, axum::Json(json!({"error": code, "detail": detail}))).into_response()
        }
    }
}

/// The lease fence's part of a heartbeat reply: renew (unless a duplicate) and report the
/// lease when the heartbeat asks for one, and say where the stateful tier is.
fn heartbeat_reply(r: &mut Record, payload: &Value, duplicate: bool, reply: &mut Value) {
    let now = chrono::Utc::now();
    if let Some(stateful) = &r.stateful {
        reply["stateful"] = json!(stateful);
    }
    if payload.get("lease") != Some(&Value::Bool(true)) {
        return;
    }
    let Some(length) = r.lease else { return };
    if !duplicate {
        r.lease_expiry = Some(now + chrono::TimeDelta::from_std(length).expect("lease length"));
    }
    if let Some(expiry) = r.lease_expiry {
        let remaining_ms = (expiry - now).num_milliseconds().max(0);
        reply["lease"] = json!({
            "expires_at": expiry.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "remaining_ms": remaining_ms,
        });
    }
}

type Checked = (Claims, Algorithm, Value);

/// The code recorded for a key the host refused (answered with an empty 401).
pub const HOST_KEY_REFUSED: &str = "host_key_refused";

/// The function's 401 code for a token jsonwebtoken refused.
fn token_code(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidAlgorithm => "wrong_algorithm",
        ErrorKind::InvalidIssuer => "unknown_site",
        ErrorKind::InvalidAudience => "wrong_audience",
        ErrorKind::ExpiredSignature => "token_expired",
        ErrorKind::ImmatureSignature => "token_not_yet_valid",
        _ => "invalid_token",
    }
}

fn check(
    shared: &Shared,
    route: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Checked, (StatusCode, String, String)> {
    let config = &shared.config;
    if Payload::for_route(route).is_none() {
        return Err(error(StatusCode::NOT_FOUND, "not_found", route));
    }
    let key = headers.get("x-functions-key").and_then(|v| v.to_str().ok());
    let route_key = |k: &str| {
        shared
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .route_keys
            .iter()
            .any(|(r, rk)| r == route && rk == k)
    };
    if !key.is_some_and(|k| k == config.function_key || route_key(k)) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            HOST_KEY_REFUSED,
            "missing or wrong x-functions-key",
        ));
    }
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.split(';').next().map(str::trim) != Some("application/json") {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            ctype,
        ));
    }
    if body.len() > BODY_LIMIT {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            body.len().to_string(),
        ));
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "missing_token", "no Bearer token"))?;
    let (alg, key) = match &config.verify {
        Verify::EdDSA { public_pem } => (
            Algorithm::EdDSA,
            DecodingKey::from_ed_pem(public_pem.as_bytes()).map_err(|e| {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "test_setup",
                    e.to_string(),
                )
            })?,
        ),
        Verify::HS256 { secret } => (
            Algorithm::HS256,
            DecodingKey::from_secret(secret.as_bytes()),
        ),
    };
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| error(StatusCode::UNAUTHORIZED, "invalid_token", e.to_string()))?;
    if header.typ.as_deref() != Some("JWT") {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "typ is not JWT",
        ));
    }
    let mut v = Validation::new(alg); // pinned: any other alg fails
    v.set_audience(&["hybrid-burst"]);
    v.set_issuer(&[config.site_id.as_str()]);
    v.leeway = 60;
    v.set_required_spec_claims(&["exp", "aud", "iss"]);
    let claims = jsonwebtoken::decode::<Claims>(token, &key, &v)
        .map_err(|e| error(StatusCode::UNAUTHORIZED, token_code(&e), e.to_string()))?
        .claims;
    if claims.aud != "hybrid-burst" {
        return Err(error(StatusCode::UNAUTHORIZED, "wrong_audience", "aud"));
    }
    if claims.iss != config.site_id {
        return Err(error(StatusCode::UNAUTHORIZED, "unknown_site", "iss"));
    }
    if claims.exp - claims.iat > 300 || claims.exp < claims.iat {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "token_lifetime_too_long",
            "exp - iat must be 0..=300",
        ));
    }
    let now = now_epoch() as i64;
    if claims.iat > now + 60 {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "token_not_yet_valid",
            "iat in the future",
        ));
    }
    if uuid::Uuid::parse_str(&claims.jti).is_err() {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_claims",
            "jti is not a UUID",
        ));
    }
    if claims.body_sha256 != body_sha256(body) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "body_hash_mismatch",
            "body_sha256 does not match",
        ));
    }
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_payload", e.to_string()))?;
    check_payload(route, &payload)
        .map_err(|d| error(StatusCode::BAD_REQUEST, "invalid_payload", d))?;
    Ok((claims, alg, payload))
}

/// Field checks per the README's "Wire contract" (unknown fields ignored, required ones
/// must be there).
fn check_payload(route: &str, p: &Value) -> Result<(), String> {
    let obj = p.as_object().ok_or("body is not an object")?;
    let string = |k: &str| -> Result<&str, String> {
        obj.get(k)
            .and_then(Value::as_str)
            .ok_or(format!("{k}: missing or not a string"))
    };
    let uint = |k: &str| -> Result<u64, String> {
        obj.get(k)
            .and_then(Value::as_u64)
            .ok_or(format!("{k}: missing or not a whole number"))
    };
    let optional_uint = |k: &str| -> Result<Option<u64>, String> {
        match obj.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or(format!("{k}: not a whole number")),
        }
    };
    let boolean = |k: &str| -> Result<bool, String> {
        obj.get(k)
            .and_then(Value::as_bool)
            .ok_or(format!("{k}: missing or not a bool"))
    };
    uuid::Uuid::parse_str(string("id")?).map_err(|e| format!("id: {e}"))?;
    chrono::DateTime::parse_from_rfc3339(string("at")?).map_err(|e| format!("at: {e}"))?;
    match route {
        "/api/ups" => {
            string("ups")?;
            if string("type")?.is_empty() {
                return Err("type: empty".into());
            }
            let status = string("status")?;
            for token in status.split_whitespace() {
                if !token.chars().all(|c| c.is_ascii_uppercase()) {
                    return Err(format!("status: odd token {token:?}"));
                }
            }
            if optional_uint("battery_charge")?.is_some_and(|c| c > 100) {
                return Err("battery_charge: over 100".into());
            }
            optional_uint("battery_runtime_s")?;
        }
        "/api/heartbeat" => {
            let ready = uint("nodes_ready")?;
            let total = uint("nodes_total")?;
            if ready > total {
                return Err("nodes_ready > nodes_total".into());
            }
            if let Some(s) = obj.get("ups_status") {
                s.as_str().ok_or("ups_status: not a string")?;
            }
            if let Some(c) = obj.get("battery_charge") {
                let c = c.as_f64().ok_or("battery_charge: not a number")?;
                if !(0.0..=100.0).contains(&c) {
                    return Err(format!("battery_charge: {c} is not 0..=100"));
                }
            }
            optional_uint("battery_runtime_s")?;
            boolean("api_ok")?;
            // Only ever `true`, and only then (left out otherwise).
            if let Some(l) = obj.get("lease")
                && l != &Value::Bool(true)
            {
                return Err(format!("lease: must be true or absent, got {l}"));
            }
        }
        "/api/witness" => {
            string("target")?;
            boolean("reachable")?;
            optional_uint("latency_ms")?;
        }
        _ => return Err(format!("no such route {route}")),
    }
    Ok(())
}
