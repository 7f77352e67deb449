//! Tailscale webhook payloads: a JSON array of events, parsed loosely (unknown types and fields
//! are kept), each with a stable dedupe hash because events carry no id.
//!
//! Parse only after [`crate::signature::verify`] accepted the exact bytes.

use burst_core::{TailscaleEvent, Timestamp};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Event types Tailscale documents (others are accepted too).
pub const KNOWN_TYPES: &[&str] = &[
    "test",
    "nodeCreated",
    "nodeNeedsApproval",
    "nodeApproved",
    "nodeKeyExpiringInOneDay",
    "nodeKeyExpired",
    "nodeDeleted",
    "nodeSigned",
    "nodeNeedsSignature",
    "policyUpdate",
    "userCreated",
    "userNeedsApproval",
    "userSuspended",
    "userRestored",
    "userDeleted",
    "userApproved",
    "userRoleUpdated",
    "subnetIPForwardingNotEnabled",
    "exitNodeIPForwardingNotEnabled",
];

/// The body is not a webhook delivery. The HTTP layer answers 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON at all: refuse with 400.
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not the array Tailscale always sends: refuse with 400.
    #[error("body must be a JSON array of events, found {0}")]
    NotArray(&'static str),
    /// One event is unusable (not an object, no `type`, a field of the wrong type): refuse the
    /// whole delivery with 400.
    #[error("event {index}: {problem}")]
    BadEvent { index: usize, problem: String },
}

/// One webhook event as Tailscale sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// RFC 3339 text, as sent.
    pub timestamp: Option<String>,
    pub version: Option<Value>,
    /// `type`: `nodeCreated`, `test`, ... (unknown ones kept).
    pub kind: String,
    pub tailnet: Option<String>,
    pub message: Option<String>,
    /// `data`, loosely: an object, `null`, or anything else Tailscale may send.
    pub data: Value,
    /// Lowercase hex SHA-256 of the event's canonical JSON (sorted keys, no blanks).
    pub hash: String,
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Writes `value` as canonical JSON: object keys sorted by their bytes, no whitespace, strings
/// and numbers as serde_json writes them. Independent of serde_json's map ordering feature.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*key).clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(*key) {
                    canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The dedupe hash of one event: SHA-256 of its canonical JSON, lowercase hex.
pub fn event_hash(event: &Value) -> String {
    let mut text = String::new();
    canonical(event, &mut text);
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn optional_string(
    map: &serde_json::Map<String, Value>,
    key: &str,
    index: usize,
) -> Result<Option<String>, PayloadError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(PayloadError::BadEvent {
            index,
            problem: format!("{key} must be a string, found {}", kind_of(other)),
        }),
    }
}

/// Parses a delivery body (the exact bytes received).
pub fn parse(body: &[u8]) -> Result<Vec<WebhookEvent>, PayloadError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(PayloadError::NotArray(kind_of(&value)));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let Value::Object(map) = item else {
                return Err(PayloadError::BadEvent {
                    index,
                    problem: format!("must be an object, found {}", kind_of(item)),
                });
            };
            let kind = match map.get("type") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                Some(Value::String(_)) => {
                    return Err(PayloadError::BadEvent {
                        index,
                        problem: "type is empty".into(),
                    });
                }
                None | Some(Value::Null) => {
                    return Err(PayloadError::BadEvent {
                        index,
                        problem: "type is missing".into(),
                    });
                }
                Some(other) => {
                    return Err(PayloadError::BadEvent {
                        index,
                        problem: format!("type must be a string, found {}", kind_of(other)),
                    });
                }
            };
            Ok(WebhookEvent {
                timestamp: optional_string(map, "timestamp", index)?,
                version: map.get("version").filter(|v| !v.is_null()).cloned(),
                kind,
                tailnet: optional_string(map, "tailnet", index)?,
                message: optional_string(map, "message", index)?,
                data: map.get("data").cloned().unwrap_or(Value::Null),
                hash: event_hash(item),
            })
        })
        .collect()
}

impl WebhookEvent {
    /// Whether Tailscale documents this type.
    pub fn is_known(&self) -> bool {
        KNOWN_TYPES.contains(&self.kind.as_str())
    }

    /// The device the event is about: `data.deviceName`, else `data.nodeID`.
    pub fn device(&self) -> Option<String> {
        ["deviceName", "nodeID"].iter().find_map(|key| {
            self.data
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
        })
    }

    /// The tags the event names: `data.tags` (a list) and `data.managedBy` when it is a tag
    /// (`tag:…`), so a delivery can be routed to the site whose devices carry them.
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .data
            .get("tags")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(owner) = self.data.get("managedBy").and_then(Value::as_str)
            && owner.starts_with("tag:")
            && !tags.iter().any(|t| t == owner)
        {
            tags.push(owner.to_string());
        }
        tags
    }

    /// The core's input for this event.
    pub fn to_core(&self) -> TailscaleEvent {
        TailscaleEvent {
            hash: self.hash.clone(),
            kind: self.kind.clone(),
            at: self.timestamp.as_deref().and_then(Timestamp::parse_rfc3339),
            device: self.device(),
            message: self.message.clone(),
        }
    }
}

/// Parses a delivery straight into the core's inputs (one per event, in order).
pub fn parse_events(body: &[u8]) -> Result<Vec<TailscaleEvent>, PayloadError> {
    Ok(parse(body)?.iter().map(WebhookEvent::to_core).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXAMPLE: &str = r#"[{"timestamp":"2026-01-10T12:00:00Z","version":1,"type":"nodeCreated","tailnet":"example.com",
  "message":"Node k8s-burst-000001.tail1234.ts.net created",
  "data":{"nodeID":"nABC123CNTRL","deviceName":"k8s-burst-000001.tail1234.ts.net",
          "managedBy":"tag:k8s-burst","actor":"...","url":"https://login.tailscale.com/admin/machines/100.64.0.7"}}]"#;

    #[test]
    fn spec_example() {
        let events = parse_events(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.kind, "nodeCreated");
        assert_eq!(e.at, Timestamp::parse_rfc3339("2026-01-10T12:00:00Z"));
        assert_eq!(
            e.device.as_deref(),
            Some("k8s-burst-000001.tail1234.ts.net")
        );
        assert_eq!(
            e.message.as_deref(),
            Some("Node k8s-burst-000001.tail1234.ts.net created")
        );
        assert_eq!(e.hash.len(), 64);
        assert!(
            e.hash
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn tags_come_from_the_data() {
        let raw = parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(raw[0].tailnet.as_deref(), Some("example.com"));
        assert_eq!(raw[0].tags(), ["tag:k8s-burst"]);
        let body =
            br#"[{"type":"nodeDeleted","data":{"tags":["tag:a","tag:b"],"managedBy":"tag:a"}},
            {"type":"nodeDeleted","data":{"managedBy":"user@example.com","tags":"not-a-list"}}]"#;
        let raw = parse(body).unwrap();
        assert_eq!(raw[0].tags(), ["tag:a", "tag:b"]);
        assert!(raw[1].tags().is_empty());
    }

    #[test]
    fn hash_is_of_the_canonical_json() {
        let text = r#"{"b":1,"a":{"y":[1,"x",null],"x":true}}"#;
        let canonical_text = r#"{"a":{"x":true,"y":[1,"x",null]},"b":1}"#;
        let mut out = String::new();
        canonical(&serde_json::from_str(text).unwrap(), &mut out);
        assert_eq!(out, canonical_text);
        // SHA-256 of the canonical text, computed independently (Python hashlib).
        assert_eq!(
            event_hash(&serde_json::from_str(text).unwrap()),
            "0cc1fe449587f9e503a3851d6381a57cc48e56228507debc46b3837671779aed"
        );
    }

    #[test]
    fn hash_ignores_key_order_and_whitespace_but_not_content() {
        let a = parse(br#"[{"type":"nodeDeleted","timestamp":"2026-01-10T12:00:00Z","data":{"nodeID":"n1"}}]"#).unwrap();
        let b = parse(b"[ {\"data\" : {\"nodeID\":\"n1\"},\n \"timestamp\":\"2026-01-10T12:00:00Z\", \"type\":\"nodeDeleted\"} ]").unwrap();
        let c = parse(br#"[{"type":"nodeDeleted","timestamp":"2026-01-10T12:00:01Z","data":{"nodeID":"n1"}}]"#).unwrap();
        assert_eq!(a[0].hash, b[0].hash);
        assert_ne!(a[0].hash, c[0].hash);
    }

    #[test]
    fn several_events_null_data_arrays_unknown_types() {
        let body = json!([
            {"timestamp": "2026-01-10T12:00:00Z", "version": 1, "type": "test", "tailnet": "example.com",
             "message": "This is a test event", "data": null},
            {"timestamp": "2026-01-10T12:00:01Z", "version": 1, "type": "userRoleUpdated", "tailnet": "example.com",
             "message": "role changed", "data": {"user": "a@example.com", "oldRoles": ["member"], "newRoles": ["admin", "auditor"]}},
            {"timestamp": "2026-01-10T12:00:02Z", "version": 2, "type": "somethingNew", "tailnet": "example.com",
             "message": "future", "data": {"nodeID": "nXYZ", "extra": {"deep": [1, 2, {"x": null}]}}, "newField": 7},
            {"type": "nodeKeyExpiringInOneDay", "data": {"nodeID": "nK1", "deviceName": ""}}
        ])
        .to_string();
        let events = parse(body.as_bytes()).unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].kind, "test");
        assert_eq!(events[0].data, Value::Null);
        assert_eq!(events[0].device(), None);
        assert!(events[0].is_known());
        assert_eq!(events[1].data["newRoles"], json!(["admin", "auditor"]));
        assert_eq!(events[1].device(), None);
        assert_eq!(events[2].kind, "somethingNew");
        assert!(!events[2].is_known());
        assert_eq!(events[2].version, Some(json!(2)));
        assert_eq!(events[2].device().as_deref(), Some("nXYZ"));
        // An empty deviceName falls back to the node id; no timestamp → no time.
        let core = events[3].to_core();
        assert_eq!(core.device.as_deref(), Some("nK1"));
        assert_eq!(core.at, None);
        let hashes: std::collections::HashSet<_> = events.iter().map(|e| &e.hash).collect();
        assert_eq!(hashes.len(), 4);
    }

    #[test]
    fn empty_delivery_is_fine() {
        assert_eq!(parse(b"[]").unwrap(), vec![]);
    }

    #[test]
    fn malformed_bodies_are_clear_errors() {
        assert!(matches!(parse(b""), Err(PayloadError::NotJson(_))));
        assert!(matches!(parse(b"[{"), Err(PayloadError::NotJson(_))));
        assert_eq!(
            parse(br#"{"type":"nodeCreated"}"#),
            Err(PayloadError::NotArray("an object"))
        );
        assert_eq!(parse(b"null"), Err(PayloadError::NotArray("null")));
        assert_eq!(
            parse(br#"[{"type":"test"}, 5]"#),
            Err(PayloadError::BadEvent {
                index: 1,
                problem: "must be an object, found a number".into()
            })
        );
        assert_eq!(
            parse(br#"[{"message":"x"}]"#),
            Err(PayloadError::BadEvent {
                index: 0,
                problem: "type is missing".into()
            })
        );
        assert_eq!(
            parse(br#"[{"type":7}]"#),
            Err(PayloadError::BadEvent {
                index: 0,
                problem: "type must be a string, found a number".into()
            })
        );
        assert_eq!(
            parse(br#"[{"type":"test","timestamp":12}]"#),
            Err(PayloadError::BadEvent {
                index: 0,
                problem: "timestamp must be a string, found a number".into()
            })
        );
        assert_eq!(
            parse(b"[{\"type\":\"  \"}]").unwrap_err().to_string(),
            "event 0: type is empty"
        );
    }
}
