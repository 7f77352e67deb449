//! The JSON the host sends to the handler and reads back (the host behaviour listed in local-emulator/README.md), built
//! as pure functions of the request so tests can compare them byte for byte. Key order follows
//! what the real host sends (structs and ordered maps, not sorted maps).

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, Timelike, Utc};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

/// A JSON object that keeps insertion order (serde_json's map sorts keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ordered(pub Vec<(String, J)>);

/// A JSON value whose objects keep insertion order.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Value(Value),
    Object(Ordered),
    Array(Vec<J>),
}

impl From<Value> for J {
    fn from(v: Value) -> J {
        J::Value(v)
    }
}

impl From<Ordered> for J {
    fn from(o: Ordered) -> J {
        J::Object(o)
    }
}

impl From<&str> for J {
    fn from(s: &str) -> J {
        J::Value(Value::String(s.to_string()))
    }
}

impl From<String> for J {
    fn from(s: String) -> J {
        J::Value(Value::String(s))
    }
}

impl Ordered {
    pub fn insert(&mut self, k: &str, v: impl Into<J>) {
        let v = v.into();
        match self.0.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => self.0.push((k.to_string(), v)),
        }
    }
    /// Compact JSON, keys in insertion order.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
    /// As a serde_json value (keys sorted; for inspection only).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for J {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::Value(v) => v.serialize(s),
            J::Object(o) => o.serialize(s),
            J::Array(a) => a.serialize(s),
        }
    }
}

/// A JSON object's members in document order (body properties keep the client's order).
struct ObjectInOrder(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for ObjectInOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ObjectInOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<ObjectInOrder, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(ObjectInOrder(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The host version we claim, in headers and User-Agent.
pub const HOST_VERSION: &str = "4.1037.0.23568";

/// `2024-05-14T15:14:15.128919Z`: up to 7 fractional digits, trailing zeros dropped (.NET).
pub fn utc_now_string(t: DateTime<Utc>) -> String {
    format!(
        "{}{}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        fraction(t.nanosecond())
    )
}

/// `2026-01-10T12:00:00.0112345+00:00`: the form timer status dates take.
pub fn offset_string(t: DateTime<Utc>) -> String {
    format!(
        "{}{}+00:00",
        t.format("%Y-%m-%dT%H:%M:%S"),
        fraction(t.nanosecond())
    )
}

fn fraction(nanos: u32) -> String {
    let ticks = (nanos % 1_000_000_000) / 100;
    if ticks == 0 {
        return String::new();
    }
    let s = format!(".{ticks:07}");
    s.trim_end_matches('0').to_string()
}

/// Reads a date the way the timer extension must: leniently (formats vary, host #7391).
pub fn parse_date_lenient(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = DateTime::<FixedOffset>::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%:z") {
        return Some(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %I:%M:%S %p",
    ] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(n.and_utc());
        }
    }
    None
}

/// Headers whose canonical casing the host (Kestrel) reports; other names keep the casing the
/// client sent, which arrives here lower-cased (a documented difference).
const KNOWN_HEADERS: [&str; 24] = [
    "Accept",
    "Accept-Charset",
    "Accept-Encoding",
    "Accept-Language",
    "Authorization",
    "Cache-Control",
    "Connection",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "Cookie",
    "Expect",
    "Host",
    "If-Match",
    "If-Modified-Since",
    "If-None-Match",
    "Keep-Alive",
    "Origin",
    "Pragma",
    "Range",
    "Referer",
    "Transfer-Encoding",
    "Upgrade",
    "User-Agent",
];

pub fn header_display_name(lower: &str) -> String {
    KNOWN_HEADERS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(lower))
        .map(|k| (*k).to_string())
        .unwrap_or_else(|| lower.to_string())
}

/// Parses a raw query into the host's dictionary: decoded, first-seen order, repeated keys
/// (case-insensitive) merged comma-joined.
pub fn query_dict(raw: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match out.iter_mut().find(|(key, _)| key.eq_ignore_ascii_case(&k)) {
            Some(slot) => {
                slot.1.push(',');
                slot.1.push_str(&v);
            }
            None => out.push((k.into_owned(), v.into_owned())),
        }
    }
    out
}

/// The query string rebuilt from the dictionary (forwarding mode).
pub fn rebuild_query(dict: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in dict {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Which key authorized the request (for the WebJobsAuthLevel identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    /// A function key or the host key: level Function, key id `default`.
    Function,
    /// The master key: level Admin, key id `master`.
    Master,
}

const NAME_CLAIM: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
const ROLE_CLAIM: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";

fn claim(ty: &str, value: &str) -> J {
    let mut c = Ordered::default();
    c.insert("Issuer", "LOCAL AUTHORITY");
    c.insert("OriginalIssuer", "LOCAL AUTHORITY");
    c.insert("Properties", serde_json::json!({}));
    c.insert("Type", ty);
    c.insert("Value", value);
    c.insert("ValueType", "http://www.w3.org/2001/XMLSchema#string");
    J::Object(c)
}

/// `Identities`: anonymous, or the WebJobsAuthLevel identity when a key was used.
pub fn identities(key: Option<KeyUsed>) -> J {
    let mut id = Ordered::default();
    let claims = match key {
        None => {
            id.insert("AuthenticationType", Value::Null);
            id.insert("IsAuthenticated", Value::Bool(false));
            vec![]
        }
        Some(k) => {
            let (level, kid) = match k {
                KeyUsed::Function => ("Function", "default"),
                KeyUsed::Master => ("Admin", "master"),
            };
            id.insert("AuthenticationType", "WebJobsAuthLevel");
            id.insert("IsAuthenticated", Value::Bool(true));
            vec![
                claim(
                    "http://schemas.microsoft.com/2017/07/functions/claims/authlevel",
                    level,
                ),
                claim(
                    "http://schemas.microsoft.com/2017/07/functions/claims/invoke",
                    "true",
                ),
                claim(
                    "http://schemas.microsoft.com/2017/07/functions/claims/keyid",
                    kid,
                ),
            ]
        }
    };
    id.insert("Actor", Value::Null);
    id.insert("BootstrapContext", Value::Null);
    id.insert("Claims", J::Array(claims));
    id.insert("Label", Value::Null);
    id.insert("Name", Value::Null);
    id.insert("NameClaimType", NAME_CLAIM);
    id.insert("RoleClaimType", ROLE_CLAIM);
    J::Array(vec![J::Object(id)])
}

/// An incoming HTTP request as the payload builder needs it.
#[derive(Debug, Clone)]
pub struct HttpRequestInfo {
    /// `scheme://host/path?query` as received.
    pub url: String,
    pub method: String,
    pub raw_query: Option<String>,
    /// Lower-case names, in arrival order, repeated names kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The Content-Length header's value (0 or absent = no body in the payload).
    pub content_length: u64,
    pub route_values: Vec<(String, String)>,
    pub key: Option<KeyUsed>,
}

/// `sys`: method name, time, a random GUID.
pub fn sys(function: &str, now: DateTime<Utc>, rand: uuid::Uuid) -> Ordered {
    let mut o = Ordered::default();
    o.insert("MethodName", function);
    o.insert("UtcNow", utc_now_string(now));
    o.insert("RandGuid", rand.to_string());
    o
}

fn body_string(req: &HttpRequestInfo) -> Option<String> {
    if req.content_length == 0 {
        return None;
    }
    let ct = req
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    if ct.starts_with("application/octet-stream") || ct.starts_with("multipart/") {
        return Some(base64::engine::general_purpose::STANDARD.encode(&req.body));
    }
    let bytes = req.body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&req.body);
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// The JSON-mode invocation body for an HTTP trigger.
pub fn http_invocation(
    function: &str,
    trigger: &str,
    req: &HttpRequestInfo,
    now: DateTime<Utc>,
    rand: uuid::Uuid,
) -> Ordered {
    let query = query_dict(req.raw_query.as_deref());
    let query_obj = Ordered(
        query
            .iter()
            .map(|(k, v)| (k.clone(), J::from(v.clone())))
            .collect(),
    );
    // Headers: arrays in Data, comma-joined single strings in Metadata.
    let mut arrays: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in &req.headers {
        let name = header_display_name(k);
        match arrays
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            Some(slot) => slot.1.push(v.clone()),
            None => arrays.push((name, vec![v.clone()])),
        }
    }
    let data_headers = Ordered(
        arrays
            .iter()
            .map(|(k, vs)| {
                (
                    k.clone(),
                    J::Value(Value::Array(
                        vs.iter().cloned().map(Value::String).collect(),
                    )),
                )
            })
            .collect(),
    );
    let meta_headers = Ordered(
        arrays
            .iter()
            .map(|(k, vs)| (k.clone(), J::from(vs.join(","))))
            .collect(),
    );
    let params = Ordered(
        req.route_values
            .iter()
            .map(|(k, v)| (k.clone(), J::from(v.clone())))
            .collect(),
    );
    let body = body_string(req);
    let mut t = Ordered::default();
    t.insert("Url", req.url.clone());
    t.insert("Method", req.method.to_ascii_uppercase());
    t.insert("Query", query_obj.clone());
    t.insert("Headers", data_headers);
    t.insert("Params", params);
    t.insert("Identities", identities(req.key));
    if let Some(b) = &body {
        t.insert("Body", b.clone());
    }
    let mut data = Ordered::default();
    data.insert(trigger, t);

    let mut meta = Ordered::default();
    meta.insert("Query", query_obj);
    meta.insert("Headers", meta_headers);
    // Binding data: body properties, then query, then route values (later ones win); every
    // value JSON-serialized, so strings arrive double-quoted.
    let mut extra: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| match extra.iter_mut().find(|(key, _)| key == k) {
        Some(slot) => slot.1 = v,
        None => extra.push((k.to_string(), v)),
    };
    if let Some(ObjectInOrder(props)) = body
        .as_deref()
        .and_then(|b| serde_json::from_str::<ObjectInOrder>(b).ok())
    {
        for (k, v) in props {
            if !(v.is_object() || v.is_array()) {
                put(&k, v.to_string());
            }
        }
    }
    for (k, v) in &query {
        if !k.eq_ignore_ascii_case("code") {
            put(k, Value::String(v.clone()).to_string());
        }
    }
    for (k, v) in &req.route_values {
        put(k, Value::String(v.clone()).to_string());
    }
    for (k, v) in extra {
        let reserved = ["Query", "Headers", "sys"]
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&k));
        if !reserved && !k.to_ascii_lowercase().ends_with("trigger") {
            meta.insert(&k, v);
        }
    }
    meta.insert("sys", sys(function, now, rand));
    let mut root = Ordered::default();
    root.insert("Data", data);
    root.insert("Metadata", meta);
    root
}

/// A timer's schedule status (also the persisted state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleStatus {
    pub last: DateTime<Utc>,
    pub next: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
}

/// `0001-01-01T00:00:00+00:00`, the .NET default the host reports before a first run.
pub fn dotnet_min() -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl ScheduleStatus {
    pub fn to_json(&self) -> Ordered {
        let mut o = Ordered::default();
        o.insert("Last", offset_string(self.last));
        o.insert("Next", offset_string(self.next));
        o.insert("LastUpdated", offset_string(self.last_updated));
        o
    }

    pub fn from_json(v: &Value) -> Option<ScheduleStatus> {
        let get = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .and_then(parse_date_lenient)
        };
        Some(ScheduleStatus {
            last: get("Last")?,
            next: get("Next")?,
            last_updated: get("LastUpdated").unwrap_or_else(dotnet_min),
        })
    }
}

/// The JSON-mode invocation body for a timer.
pub fn timer_invocation(
    function: &str,
    trigger: &str,
    status: Option<&ScheduleStatus>,
    past_due: bool,
    retry: Option<(u32, u32)>,
    now: DateTime<Utc>,
    rand: uuid::Uuid,
) -> Ordered {
    let mut t = Ordered::default();
    t.insert("Schedule", serde_json::json!({"AdjustForDST": true}));
    t.insert(
        "ScheduleStatus",
        status
            .map(|s| J::Object(s.to_json()))
            .unwrap_or(J::Value(Value::Null)),
    );
    t.insert("IsPastDue", Value::Bool(past_due));
    let mut data = Ordered::default();
    data.insert(trigger, t);
    let mut meta = Ordered::default();
    meta.insert("sys", sys(function, now, rand));
    if let Some((count, max)) = retry {
        let mut r = Ordered::default();
        r.insert("RetryCount", Value::from(count));
        r.insert("MaxRetryCount", Value::from(max));
        r.insert("Exception", Value::Null);
        meta.insert("RetryContext", r);
    }
    let mut root = Ordered::default();
    root.insert("Data", data);
    root.insert("Metadata", meta);
    root
}

/// An HTTP response for the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOut {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpOut {
    pub fn empty(status: u16) -> HttpOut {
        HttpOut {
            status,
            headers: vec![],
            body: vec![],
        }
    }
}

/// What the handler's JSON-mode reply means.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The invocation succeeded; `Logs` to log; the HTTP response for HTTP functions.
    Ok {
        logs: Vec<String>,
        response: Option<HttpOut>,
    },
    /// Non-2xx or non-JSON: the invocation failed (the caller gets an empty 500).
    Failed(String),
    /// Empty body / `null`: the real host waits for functionTimeout, then restarts the handler.
    Hang,
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Turns an HTTP output value (`Outputs.res` or `ReturnValue`) into a response.
pub fn response_from_output(v: &Value, is_return: bool) -> Option<HttpOut> {
    match v {
        Value::Null => None,
        Value::String(s) if is_return => {
            // The quirk: a plain string ReturnValue is first tried as base64.
            let body = base64::engine::general_purpose::STANDARD
                .decode(s)
                .unwrap_or_else(|_| s.as_bytes().to_vec());
            Some(HttpOut {
                status: 200,
                headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
                body,
            })
        }
        Value::Object(o) => {
            let status = match o.get("statusCode").or_else(|| o.get("status")) {
                None | Some(Value::Null) => Some(200),
                Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                Some(Value::String(s)) => s.trim().parse::<u16>().ok(),
                Some(_) => None,
            };
            let status = status.filter(|s| (100..=999).contains(s)).unwrap_or(500);
            let mut headers: Vec<(String, String)> = o
                .get("headers")
                .and_then(Value::as_object)
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| (k.clone(), scalar_string(v)))
                        .collect()
                })
                .unwrap_or_default();
            let body = match o.get("body") {
                None | Some(Value::Null) => vec![],
                Some(Value::String(s)) => s.clone().into_bytes(),
                Some(other) => serde_json::to_string_pretty(other)
                    .unwrap_or_default()
                    .into_bytes(),
            };
            let has_ct = headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
            if !has_ct && !body.is_empty() {
                let ct = if matches!(o.get("body"), Some(Value::Object(_) | Value::Array(_))) {
                    "application/json; charset=utf-8"
                } else {
                    "text/plain; charset=utf-8"
                };
                headers.push(("Content-Type".into(), ct.into()));
            }
            Some(HttpOut {
                status,
                headers,
                body,
            })
        }
        other => Some(HttpOut {
            status: 200,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: scalar_string(other).into_bytes(),
        }),
    }
}

/// Reads the handler's reply. `http_outputs` are the function's `http` output binding names
/// (empty for timers).
pub fn parse_reply(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    http_outputs: &[String],
) -> Reply {
    if !(200..300).contains(&status) {
        return Reply::Failed(format!("handler replied {status}"));
    }
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if !ct.trim_start().starts_with("application/json") {
        return Reply::Failed(format!(
            "handler replied with Content-Type {content_type:?}, not application/json"
        ));
    }
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) if body.iter().all(u8::is_ascii_whitespace) => return Reply::Hang,
        Err(e) => return Reply::Failed(format!("handler reply is not JSON: {e}")),
    };
    let Value::Object(o) = v else {
        return if v.is_null() {
            Reply::Hang
        } else {
            Reply::Failed("handler reply is not a JSON object".into())
        };
    };
    let logs = o
        .get("Logs")
        .and_then(Value::as_array)
        .map(|l| l.iter().map(scalar_string).collect())
        .unwrap_or_default();
    if http_outputs.is_empty() {
        return Reply::Ok {
            logs,
            response: None,
        };
    }
    let mut response = None;
    for name in http_outputs {
        let found = if name == "$return" {
            o.get("ReturnValue")
                .and_then(|v| response_from_output(v, true))
        } else {
            o.get("Outputs")
                .and_then(|out| out.get(name))
                .and_then(|v| response_from_output(v, false))
        };
        if found.is_some() {
            response = found;
            break;
        }
    }
    let response = response.unwrap_or_else(|| HttpOut {
        status: 200,
        headers: vec![(
            "Content-Type".into(),
            "application/json; charset=utf-8".into(),
        )],
        body: b"{}".to_vec(),
    });
    Reply::Ok {
        logs,
        response: Some(response),
    }
}
