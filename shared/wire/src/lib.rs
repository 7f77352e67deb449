//! The wire contract between the on-prem agent (and the witness) and the cloud functions,
//! declared once and read in one place: both sides, the drills and the benches use it, so
//! they cannot drift. In order:
//!
//! 1. the JSON bodies (`POST /api/ups`, `/api/heartbeat`, `/api/witness`) and their routes;
//! 2. the framing every agent route enforces (body limit, content type);
//! 3. how each body becomes the decision core's [`burst_core::Input`], validated (a bad field
//!    is a [`PayloadError`] naming it), and how a simulated home writes one;
//! 4. the JWT the agent signs per request (claims, audience, lifetime, leeway), the
//!    [`Signer`] and the verifier the functions run.
//!
//! The JSON shapes are pinned by the fixtures under `tests/fixtures/`.

use burst_core::{Input, NotifyType, Timestamp, UpsStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use uuid::Uuid;

// ----------------------------------------------------------------------------------------------
// 1. The payloads
//
// The JSON bodies the agent and the witness post, and where each goes.
//
// Reading: unknown fields are ignored, a missing required field is an error, an optional
// field may be absent or `null`. Writing: an unknown optional field is left out (never sent
// as `null`), and `lease` only when it is `true`.

pub const ROUTE_UPS: &str = "/api/ups";
pub const ROUTE_HEARTBEAT: &str = "/api/heartbeat";
pub const ROUTE_WITNESS: &str = "/api/witness";

/// The three agent-facing payload kinds, each with its route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    Ups,
    Heartbeat,
    Witness,
}

impl Payload {
    pub const ALL: [Payload; 3] = [Payload::Ups, Payload::Heartbeat, Payload::Witness];

    pub fn route(self) -> &'static str {
        match self {
            Payload::Ups => ROUTE_UPS,
            Payload::Heartbeat => ROUTE_HEARTBEAT,
            Payload::Witness => ROUTE_WITNESS,
        }
    }

    /// The payload a route carries (`None` for any other path).
    pub fn for_route(route: &str) -> Option<Payload> {
        Payload::ALL.into_iter().find(|p| p.route() == route)
    }
}

/// `POST /api/ups`: one NUT event. `status` is `""` when the power state is unknown (comm
/// loss).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpsEvent {
    #[serde(deserialize_with = "uuid_field")]
    pub id: Uuid,
    pub at: String,
    pub ups: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(flatten)]
    pub battery: Battery,
}

/// The battery as upsd reported it with the status; each field is left out when unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Battery {
    /// `battery.charge`, percent 0–100.
    #[serde(
        rename = "battery_charge",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "percent"
    )]
    pub charge: Option<f64>,
    /// `battery.runtime`, whole seconds.
    #[serde(
        rename = "battery_runtime_s",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub runtime_s: Option<u64>,
}

/// `POST /api/heartbeat`: the agent's view from inside the home cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    #[serde(deserialize_with = "uuid_field")]
    pub id: Uuid,
    pub at: String,
    pub nodes_ready: u32,
    pub nodes_total: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ups_status: Option<String>,
    #[serde(flatten)]
    pub battery: Battery,
    pub api_ok: bool,
    /// `true`: this agent holds a lease and fences the home stateful tier when it cannot
    /// renew it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lease: bool,
}

/// `POST /api/witness`: can a third place reach home?
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WitnessReport {
    #[serde(deserialize_with = "uuid_field")]
    pub id: Uuid,
    pub at: String,
    pub target: String,
    pub reachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-03-01T12:00:00.123Z`: how `at` is written.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A whole percentage is written as an integer (`57`, as NUT reports it), any other as a
/// float; both read back as the same number.
fn percent<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(p) if p.fract() == 0.0 && (0.0..=100.0).contains(p) => s.serialize_u64(*p as u64),
        Some(p) => s.serialize_f64(*p),
        None => s.serialize_none(),
    }
}

/// `id` must be a UUID; the error says so (serde's own would not name the field).
fn uuid_field<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    Uuid::parse_str(&text).map_err(|_| {
        serde::de::Error::custom(format!("id must be a UUID, got {:?}", truncate(&text, 40)))
    })
}

// ----------------------------------------------------------------------------------------------
// 2. Framing
//
// The framing rules of every agent route: a JSON body of at most [`BODY_LIMIT`] bytes.

/// Request bodies above this are refused with 413. An agent payload is a few hundred bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The only media type the agent routes accept (parameters such as `charset` are allowed).
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Why a body was refused before anyone looked inside it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is {len} bytes; the limit is {BODY_LIMIT}")]
    TooLarge { len: usize },
    #[error("Content-Type must be application/json, got {content_type:?}")]
    NotJson { content_type: String },
}

impl BodyError {
    /// The HTTP status the refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge { .. } => 413,
            BodyError::NotJson { .. } => 415,
        }
    }

    /// The short error code of the refusal's body.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "body_too_large",
            BodyError::NotJson { .. } => "unsupported_media_type",
        }
    }
}

/// Checks the size first (cheap, and a huge body's type does not matter), then the type.
pub fn check_body(content_type: Option<&str>, len: usize) -> Result<(), BodyError> {
    if len > BODY_LIMIT {
        return Err(BodyError::TooLarge { len });
    }
    let header = content_type.unwrap_or("");
    let mime = header.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case(JSON_CONTENT_TYPE) {
        return Err(BodyError::NotJson {
            content_type: truncate(header, 80),
        });
    }
    Ok(())
}

/// Shortens text for error messages (never echo large or secret input).
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max).collect();
        format!("{head}…")
    }
}

// ----------------------------------------------------------------------------------------------
// 3. Payloads into inputs
//
// Payloads ↔ the decision core's inputs. Reading validates every field and names the one
// that is wrong; writing (what a simulated home sends) gives each event a UUID.

/// Longest accepted text field (UPS name, status, target), in characters.
pub const MAX_TEXT: usize = 256;
/// More nodes than any homelab has: a larger count is a broken sender.
pub const MAX_NODES: u32 = 10_000;

/// A payload that is not the contract's; answered with 400 `invalid_payload`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

impl Payload {
    /// Parses and validates a body of this kind into the core's input.
    pub fn parse(self, body: &[u8]) -> Result<Input, PayloadError> {
        match self {
            Payload::Ups => from_json::<UpsEvent>(body)?.into_input(),
            Payload::Heartbeat => from_json::<Heartbeat>(body)?.into_input(),
            Payload::Witness => from_json::<WitnessReport>(body)?.into_input(),
        }
    }
}

fn from_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, PayloadError> {
    serde_json::from_slice(body)
        .map_err(|e| PayloadError(format!("body is not the expected JSON: {e}")))
}

/// The instants RFC 3339 can write in UTC: 0000-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z.
const AT_RANGE_MS: std::ops::RangeInclusive<i64> = -62_167_219_200_000..=253_402_300_799_999;

fn at(v: &str) -> Result<Timestamp, PayloadError> {
    Timestamp::parse_rfc3339(v)
        // An offset can move year 0000 or 9999 past the range; such a time has no UTC form, so
        // it could not be sent on (`agent_request`) and is no real event time anyway.
        .filter(|t| AT_RANGE_MS.contains(&t.millis()))
        .ok_or_else(|| {
            PayloadError(format!(
                "at must be an RFC 3339 time, got {:?}",
                truncate(v, 40)
            ))
        })
}

fn text(field: &str, v: String) -> Result<String, PayloadError> {
    if v.chars().count() > MAX_TEXT || v.chars().any(char::is_control) {
        return Err(PayloadError(format!(
            "{field} must be at most {MAX_TEXT} printable characters"
        )));
    }
    Ok(v)
}

fn battery_charge(v: Option<f64>) -> Result<Option<f64>, PayloadError> {
    match v {
        Some(c) if !(0.0..=100.0).contains(&c) => Err(PayloadError(
            "battery_charge must be between 0 and 100".into(),
        )),
        _ => Ok(v),
    }
}

impl UpsEvent {
    pub fn into_input(self) -> Result<Input, PayloadError> {
        Ok(Input::Ups(burst_core::UpsEvent {
            id: self.id.to_string(),
            at: at(&self.at)?,
            ups: text("ups", self.ups)?,
            notify: NotifyType::parse(&text("type", self.kind)?),
            status: UpsStatus::parse(&text("status", self.status)?),
            battery_charge: battery_charge(self.battery.charge)?,
            battery_runtime_s: self.battery.runtime_s,
        }))
    }
}

impl Heartbeat {
    pub fn into_input(self) -> Result<Input, PayloadError> {
        if self.nodes_total > MAX_NODES || self.nodes_ready > self.nodes_total {
            return Err(PayloadError(format!(
                "nodes_ready ({}) must be at most nodes_total ({}), which must be at most {MAX_NODES}",
                self.nodes_ready, self.nodes_total
            )));
        }
        Ok(Input::Heartbeat(burst_core::Heartbeat {
            id: self.id.to_string(),
            at: at(&self.at)?,
            nodes_ready: self.nodes_ready,
            nodes_total: self.nodes_total,
            ups_status: self
                .ups_status
                .map(|s| text("ups_status", s).map(|s| UpsStatus::parse(&s)))
                .transpose()?,
            battery_charge: battery_charge(self.battery.charge)?,
            battery_runtime_s: self.battery.runtime_s,
            api_ok: self.api_ok,
            lease: self.lease,
        }))
    }
}

impl WitnessReport {
    pub fn into_input(self) -> Result<Input, PayloadError> {
        Ok(Input::Witness(burst_core::WitnessReport {
            id: self.id.to_string(),
            at: at(&self.at)?,
            target: text("target", self.target)?,
            reachable: self.reachable,
            latency_ms: self.latency_ms,
        }))
    }
}

/// The UUID an event is sent with: its id if that is one, else one derived from it (a
/// simulated home names its events; the same name always gives the same UUID).
pub fn wire_id(id: &str) -> Uuid {
    Uuid::parse_str(id).unwrap_or_else(|_| {
        let digest = Sha256::digest(id.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    })
}

/// `at` as the agent writes it (milliseconds, UTC).
fn wire_at(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.millis())
        .map(rfc3339)
        .unwrap_or_else(|| t.rfc3339())
}

impl From<&burst_core::UpsEvent> for UpsEvent {
    fn from(e: &burst_core::UpsEvent) -> UpsEvent {
        UpsEvent {
            id: wire_id(&e.id),
            at: wire_at(e.at),
            ups: e.ups.clone(),
            kind: e.notify.as_str().to_string(),
            status: e.status.to_string(),
            battery: Battery {
                charge: e.battery_charge,
                runtime_s: e.battery_runtime_s,
            },
        }
    }
}

impl From<&burst_core::Heartbeat> for Heartbeat {
    fn from(h: &burst_core::Heartbeat) -> Heartbeat {
        Heartbeat {
            id: wire_id(&h.id),
            at: wire_at(h.at),
            nodes_ready: h.nodes_ready,
            nodes_total: h.nodes_total,
            ups_status: h.ups_status.as_ref().map(ToString::to_string),
            battery: Battery {
                charge: h.battery_charge,
                runtime_s: h.battery_runtime_s,
            },
            api_ok: h.api_ok,
            lease: h.lease,
        }
    }
}

impl From<&burst_core::WitnessReport> for WitnessReport {
    fn from(w: &burst_core::WitnessReport) -> WitnessReport {
        WitnessReport {
            id: wire_id(&w.id),
            at: wire_at(w.at),
            target: w.target.clone(),
            reachable: w.reachable,
            latency_ms: w.latency_ms,
        }
    }
}

/// The route and body an input is posted with, for the inputs the agent or the witness
/// sends (`None` for the others).
pub fn agent_request(input: &Input) -> Option<(Payload, Vec<u8>)> {
    let (payload, body) = match input {
        Input::Ups(e) => (Payload::Ups, serde_json::to_vec(&UpsEvent::from(e))),
        Input::Heartbeat(h) => (Payload::Heartbeat, serde_json::to_vec(&Heartbeat::from(h))),
        Input::Witness(w) => (
            Payload::Witness,
            serde_json::to_vec(&WitnessReport::from(w)),
        ),
        _ => return None,
    };
    body.ok().map(|b| (payload, b))
}

// ----------------------------------------------------------------------------------------------
// 4. Tokens
//
// The agent's JWT: one short-lived token per HTTP attempt, in `Authorization: Bearer`.
//
// Claims: `iss` = site id, `aud` = [`AUDIENCE`], `iat`, `exp` = `iat` + [`TOKEN_LIFETIME_S`],
// a fresh `jti` (UUID v4) per token, and `body_sha256` binding the token to the exact body
// bytes. EdDSA (Ed25519) in production, HS256 where key files are a burden; the verifier
// accepts only the algorithm it was configured with.
//
// Signatures are the `jsonwebtoken` crate's; the time checks are done here against the `now`
// passed in (checked arithmetic: signed claims may hold any i64), so they are testable and
// identical on every platform. Keys are never printed.

/// The audience every token names and every function checks.
pub const AUDIENCE: &str = "hybrid-burst";
/// The lifetime the agent signs for.
pub const TOKEN_LIFETIME_S: i64 = 120;
/// The longest lifetime (`exp` − `iat`) the functions accept.
pub const MAX_LIFETIME_S: i64 = 300;
/// Clock difference tolerated between agent and cloud.
pub const LEEWAY_S: i64 = 60;
/// Longest accepted `jti`, in bytes.
pub const MAX_JTI_LEN: usize = 128;

/// The claims the agent signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Not sent by the agent; honoured when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    pub body_sha256: String,
}

impl Claims {
    /// Fresh claims for `body` from `site`, issued at `now` (Unix seconds), with a new `jti`.
    pub fn for_body(site: &str, body: &[u8], now: i64) -> Claims {
        Claims {
            iss: site.to_string(),
            aud: AUDIENCE.to_string(),
            iat: now,
            exp: now.saturating_add(TOKEN_LIFETIME_S),
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
            body_sha256: body_sha256(body),
        }
    }
}

/// Lowercase hex SHA-256 of `body`.
pub fn body_sha256(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A signing key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the Ed25519 key is not a PKCS#8 PEM private key: {0}")]
    BadKey(String),
    #[error("the HS256 secret is empty")]
    EmptySecret,
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

/// Key material: printed as a placeholder, never as bytes.
#[derive(Clone)]
struct Hidden<K>(K);

impl<K> std::fmt::Debug for Hidden<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<key>")
    }
}

/// Signs tokens for one site with one key.
#[derive(Debug)]
pub struct Signer {
    algorithm: Algorithm,
    key: Hidden<EncodingKey>,
    site_id: String,
}

impl Signer {
    /// An EdDSA signer from a PKCS#8 PEM private key (what `burst-agent keygen` prints).
    pub fn ed25519_pem(site_id: &str, pem: &[u8]) -> Result<Signer, SignError> {
        let key = EncodingKey::from_ed_pem(pem).map_err(|e| SignError::BadKey(e.to_string()))?;
        let signer = Signer {
            algorithm: Algorithm::EdDSA,
            key: Hidden(key),
            site_id: site_id.to_string(),
        };
        // A key of the wrong type is caught here, at startup, not at the first event.
        signer.token(b"{}", 0)?;
        Ok(signer)
    }

    /// An HS256 signer from a shared secret.
    pub fn hs256(site_id: &str, secret: &[u8]) -> Result<Signer, SignError> {
        if secret.is_empty() {
            return Err(SignError::EmptySecret);
        }
        Ok(Signer {
            algorithm: Algorithm::HS256,
            key: Hidden(EncodingKey::from_secret(secret)),
            site_id: site_id.to_string(),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn site_id(&self) -> &str {
        &self.site_id
    }

    /// A fresh token for `body`, issued at `now` (Unix seconds). Each call has a new `jti`.
    pub fn token(&self, body: &[u8], now: i64) -> Result<String, SignError> {
        self.sign(&Claims::for_body(&self.site_id, body, now))
    }

    /// Signs the given claims as they are (a test may sign odd ones on purpose).
    pub fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".to_string());
        jsonwebtoken::encode(&header, claims, &self.key.0)
            .map_err(|e| SignError::Sign(e.to_string()))
    }
}

/// The key the functions verify agent tokens with, built once from settings.
#[derive(Clone, Debug)]
pub struct AgentKey {
    algorithm: Algorithm,
    key: Hidden<DecodingKey>,
}

/// A verification key that cannot be used; names the function setting to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("BURST_AGENT_ED25519_PUBLIC_KEY is not an Ed25519 public key in PEM form")]
    BadPublicKey,
    #[error("BURST_AGENT_HS256_SECRET must be at least 32 bytes")]
    ShortSecret,
    /// Both were set: the algorithm would be ambiguous.
    #[error("set only one of BURST_AGENT_ED25519_PUBLIC_KEY and BURST_AGENT_HS256_SECRET")]
    Both,
}

impl AgentKey {
    pub fn ed25519_pem(pem: &str) -> Result<AgentKey, KeyError> {
        // Settings often carry PEM with literal "\n"; accept both.
        let pem = pem.replace("\\n", "\n");
        let key = DecodingKey::from_ed_pem(pem.as_bytes()).map_err(|_| KeyError::BadPublicKey)?;
        Ok(AgentKey {
            algorithm: Algorithm::EdDSA,
            key: Hidden(key),
        })
    }

    pub fn hs256(secret: &str) -> Result<AgentKey, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::ShortSecret);
        }
        Ok(AgentKey {
            algorithm: Algorithm::HS256,
            key: Hidden(DecodingKey::from_secret(secret.as_bytes())),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Why a token was refused (all answered 401; the code tells the agent's owner what to fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization: Bearer header")]
    Missing,
    #[error("token is malformed or its signature does not verify")]
    BadToken,
    #[error("token algorithm is not the configured one")]
    WrongAlgorithm,
    #[error("token claims are missing or malformed: {0}")]
    BadClaims(String),
    #[error("token audience is not \"hybrid-burst\"")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is issued in the future")]
    NotYetValid,
    #[error("token lifetime exceeds 300 s")]
    TooLong,
    #[error("token's body_sha256 does not match the body")]
    BodyMismatch,
    #[error("token issuer {0:?} is not a site this deployment watches")]
    UnknownSite(String),
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::BadToken => "invalid_token",
            AuthError::WrongAlgorithm => "wrong_algorithm",
            AuthError::BadClaims(_) => "invalid_claims",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::TooLong => "token_lifetime_too_long",
            AuthError::BodyMismatch => "body_hash_mismatch",
            AuthError::UnknownSite(_) => "unknown_site",
        }
    }
}

/// Extracts the bearer token from an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let h = header.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = h.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

/// The site a token claims to come from, read before any check, so a deployment that watches
/// several sites can pick that site's key. Nothing here is trusted: [`verify`] with the chosen
/// key checks the signature, which covers `iss`.
pub fn claimed_issuer(token: &str) -> Result<String, AuthError> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: String,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Issuer>(token)
        .map(|c| c.iss)
        .map_err(|_| AuthError::BadToken)
}

/// Verifies signature, algorithm, issuer form, audience, times, `jti` and the body binding.
/// The caller checks `iss` against its sites and `jti` against its replay store.
pub fn verify(key: &AgentKey, token: &str, body: &[u8], now: i64) -> Result<Claims, AuthError> {
    let mut v = Validation::new(key.algorithm);
    // Times and audience are checked below against the caller's clock.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let data = decode::<serde_json::Value>(token, &key.key.0, &v).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm,
        _ => AuthError::BadToken,
    })?;
    let claims: Claims =
        serde_json::from_value(data.claims).map_err(|e| AuthError::BadClaims(e.to_string()))?;
    check_claims(&claims, body, now)?;
    Ok(claims)
}

/// The claim checks of [`verify`], after the signature.
fn check_claims(claims: &Claims, body: &[u8], now: i64) -> Result<(), AuthError> {
    if claims.iss.is_empty() {
        return Err(AuthError::BadClaims("iss must name the site".into()));
    }
    if claims.aud != AUDIENCE {
        return Err(AuthError::WrongAudience);
    }
    let lifetime_ok = claims
        .exp
        .checked_sub(claims.iat)
        .is_some_and(|l| (0..=MAX_LIFETIME_S).contains(&l));
    if !lifetime_ok {
        return Err(AuthError::TooLong);
    }
    let not_before = claims.nbf.map_or(claims.iat, |nbf| nbf.max(claims.iat));
    if not_before > now.saturating_add(LEEWAY_S) {
        return Err(AuthError::NotYetValid);
    }
    if claims.exp.saturating_add(LEEWAY_S) < now {
        return Err(AuthError::Expired);
    }
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(AuthError::BadClaims(format!(
            "jti must be 1 to {MAX_JTI_LEN} characters"
        )));
    }
    if !claims.body_sha256.eq_ignore_ascii_case(&body_sha256(body)) {
        return Err(AuthError::BodyMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
