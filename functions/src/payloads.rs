//! The agent's payloads (CONTRACT: unknown fields ignored, missing required fields rejected),
//! turned into the decision core's inputs.

use crate::http::{Reject, truncate};
use burst_core::{Heartbeat, Input, NotifyType, Timestamp, UpsEvent, UpsStatus, WitnessReport};
use serde::Deserialize;

const MAX_TEXT: usize = 256;
const MAX_NODES: u32 = 10_000;

#[derive(Deserialize)]
struct UpsBody {
    id: String,
    at: String,
    ups: String,
    #[serde(rename = "type")]
    notify: String,
    status: String,
    #[serde(default)]
    battery_charge: Option<f64>,
    #[serde(default)]
    battery_runtime_s: Option<u64>,
}

#[derive(Deserialize)]
struct HeartbeatBody {
    id: String,
    at: String,
    nodes_ready: u32,
    nodes_total: u32,
    #[serde(default)]
    ups_status: Option<String>,
    #[serde(default)]
    battery_charge: Option<f64>,
    #[serde(default)]
    battery_runtime_s: Option<u64>,
    api_ok: bool,
    /// The agent fences on lease loss and asks for a lease.
    #[serde(default)]
    lease: bool,
}

#[derive(Deserialize)]
struct WitnessBody {
    id: String,
    at: String,
    target: String,
    reachable: bool,
    #[serde(default)]
    latency_ms: Option<u64>,
}

fn bad(detail: impl Into<String>) -> Reject {
    Reject::new(400, "invalid_payload", detail)
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Reject> {
    serde_json::from_slice(body).map_err(|e| bad(format!("body is not the expected JSON: {e}")))
}

fn id(v: &str) -> Result<String, Reject> {
    uuid::Uuid::parse_str(v)
        .map(|u| u.to_string())
        .map_err(|_| bad(format!("id must be a UUID, got {:?}", truncate(v, 40))))
}

fn at(v: &str) -> Result<Timestamp, Reject> {
    Timestamp::parse_rfc3339(v).ok_or_else(|| {
        bad(format!(
            "at must be an RFC 3339 time, got {:?}",
            truncate(v, 40)
        ))
    })
}

fn text(field: &str, v: String) -> Result<String, Reject> {
    if v.chars().count() > MAX_TEXT || v.chars().any(char::is_control) {
        return Err(bad(format!(
            "{field} must be at most {MAX_TEXT} printable characters"
        )));
    }
    Ok(v)
}

pub fn ups(body: &[u8]) -> Result<Input, Reject> {
    let b: UpsBody = parse(body)?;
    if let Some(c) = b.battery_charge
        && !(0.0..=100.0).contains(&c)
    {
        return Err(bad("battery_charge must be between 0 and 100"));
    }
    Ok(Input::Ups(UpsEvent {
        id: id(&b.id)?,
        at: at(&b.at)?,
        ups: text("ups", b.ups)?,
        notify: NotifyType::parse(&text("type", b.notify)?),
        status: UpsStatus::parse(&text("status", b.status)?),
        battery_charge: b.battery_charge,
        battery_runtime_s: b.battery_runtime_s,
    }))
}

pub fn heartbeat(body: &[u8]) -> Result<Input, Reject> {
    let b: HeartbeatBody = parse(body)?;
    if b.nodes_total > MAX_NODES || b.nodes_ready > b.nodes_total {
        return Err(bad(format!(
            "nodes_ready ({}) must be at most nodes_total ({}), which must be at most {MAX_NODES}",
            b.nodes_ready, b.nodes_total
        )));
    }
    if let Some(c) = b.battery_charge
        && !(0.0..=100.0).contains(&c)
    {
        return Err(bad("battery_charge must be between 0 and 100"));
    }
    Ok(Input::Heartbeat(Heartbeat {
        id: id(&b.id)?,
        at: at(&b.at)?,
        nodes_ready: b.nodes_ready,
        nodes_total: b.nodes_total,
        ups_status: b
            .ups_status
            .map(|s| text("ups_status", s).map(|s| UpsStatus::parse(&s)))
            .transpose()?,
        battery_charge: b.battery_charge,
        battery_runtime_s: b.battery_runtime_s,
        api_ok: b.api_ok,
        lease: b.lease,
    }))
}

pub fn witness(body: &[u8]) -> Result<Input, Reject> {
    let b: WitnessBody = parse(body)?;
    Ok(Input::Witness(WitnessReport {
        id: id(&b.id)?,
        at: at(&b.at)?,
        target: text("target", b.target)?,
        reachable: b.reachable,
        latency_ms: b.latency_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_payloads_parse_and_unknown_fields_are_ignored() {
        let body = br#"{"id":"0b7e6f6a-6f0e-4c8e-9a53-2f1f7d4f2a10","at":"2026-01-10T12:00:00Z","ups":"dummy@127.0.0.1","type":"SUSPEND_STARTING","status":"OB DISCHRG","battery_charge":55,"extra":[1,2]}"#;
        let Input::Ups(e) = ups(body).unwrap() else {
            panic!("not a UPS input")
        };
        assert_eq!(e.notify, NotifyType::Other("SUSPEND_STARTING".into()));
        assert_eq!(e.status.to_string(), "OB DISCHRG");
        assert_eq!(e.battery_charge, Some(55.0));
    }

    #[test]
    fn errors_name_the_field() {
        let e = ups(br#"{"at":"2026-01-10T12:00:00Z","ups":"u","type":"ONBATT","status":"OB"}"#)
            .unwrap_err();
        assert!(e.detail.contains("missing field `id`"), "{}", e.detail);
        let e = heartbeat(br#"{"id":"0b7e6f6a-6f0e-4c8e-9a53-2f1f7d4f2a10","at":"2026-01-10T12:00:00Z","nodes_ready":5,"nodes_total":3,"api_ok":true}"#).unwrap_err();
        assert!(e.detail.contains("nodes_ready"), "{}", e.detail);
        let e =
            witness(br#"{"id":"nope","at":"2026-01-10T12:00:00Z","target":"t","reachable":true}"#)
                .unwrap_err();
        assert!(e.detail.contains("UUID"), "{}", e.detail);
        let e = ups(br#"{"id":"0b7e6f6a-6f0e-4c8e-9a53-2f1f7d4f2a10","at":"2026-01-10T12:00:00Z","ups":"u","type":"ONBATT","status":"OB","battery_charge":150}"#).unwrap_err();
        assert!(e.detail.contains("battery_charge"));
        assert!(ups(b"{\"id\":").is_err());
    }
}
