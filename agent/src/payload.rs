//! The JSON bodies the agent posts, as the README's "Wire contract" lists them.
//! Optional fields are left out when unknown (never sent as `null`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const ROUTE_UPS: &str = "/api/ups";
pub const ROUTE_HEARTBEAT: &str = "/api/heartbeat";
pub const ROUTE_WITNESS: &str = "/api/witness";

/// `POST /api/ups`. `status` is `""` when the power state is unknown (comm loss).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsEvent {
    pub id: Uuid,
    pub at: String,
    pub ups: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_charge: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_runtime_s: Option<u64>,
}

/// `POST /api/heartbeat`: the inside view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub id: Uuid,
    pub at: String,
    pub nodes_ready: u32,
    pub nodes_total: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ups_status: Option<String>,
    /// `battery.charge` read with the status, percent 0–100; left out when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_charge: Option<u8>,
    /// `battery.runtime` read with the status, whole seconds; left out when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_runtime_s: Option<u64>,
    pub api_ok: bool,
    /// `true`: this agent holds a lease and fences itself when it cannot renew it (a
    /// `fence_command` is set). Left out otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lease: bool,
}

/// `POST /api/witness`: can a third place reach home?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessReport {
    pub id: Uuid,
    pub at: String,
    pub target: String,
    pub reachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-03-01T12:00:00.123Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ups_event_wire_shape() {
        let id = Uuid::nil();
        let e = UpsEvent {
            id,
            at: "2026-01-01T00:00:00.000Z".into(),
            ups: "dummy@127.0.0.1:34930".into(),
            kind: "ONBATT".into(),
            status: "OB DISCHRG".into(),
            battery_charge: Some(60),
            battery_runtime_s: Some(600),
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"id": id, "at": "2026-01-01T00:00:00.000Z",
                "ups": "dummy@127.0.0.1:34930", "type": "ONBATT", "status": "OB DISCHRG",
                "battery_charge": 60, "battery_runtime_s": 600})
        );
        let commloss = UpsEvent {
            kind: "COMMBAD".into(),
            status: String::new(),
            battery_charge: None,
            battery_runtime_s: None,
            ..e
        };
        let v = serde_json::to_value(&commloss).unwrap();
        assert_eq!(v["status"], "");
        assert!(v.get("battery_charge").is_none() && v.get("battery_runtime_s").is_none());
    }

    #[test]
    fn heartbeat_asks_for_a_lease_only_when_fencing() {
        let mut beat = Heartbeat {
            id: Uuid::nil(),
            at: "2026-01-01T00:00:00.000Z".into(),
            nodes_ready: 3,
            nodes_total: 3,
            ups_status: None,
            battery_charge: None,
            battery_runtime_s: None,
            api_ok: true,
            lease: false,
        };
        let v = serde_json::to_value(&beat).unwrap();
        assert!(v.get("lease").is_none(), "{v}");
        assert!(
            v.get("battery_charge").is_none() && v.get("battery_runtime_s").is_none(),
            "unknown battery: no fields: {v}"
        );
        beat.lease = true;
        beat.ups_status = Some("OB DISCHRG".into());
        beat.battery_charge = Some(57);
        beat.battery_runtime_s = Some(612);
        let v = serde_json::to_value(&beat).unwrap();
        assert_eq!(v["lease"], true);
        assert_eq!(
            (
                &v["ups_status"],
                &v["battery_charge"],
                &v["battery_runtime_s"]
            ),
            (
                &serde_json::json!("OB DISCHRG"),
                &serde_json::json!(57),
                &serde_json::json!(612)
            )
        );
    }

    #[test]
    fn rfc3339_millis_utc() {
        let t = DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456+00:00").unwrap();
        assert_eq!(rfc3339(t.with_timezone(&Utc)), "2026-03-01T12:00:00.123Z");
    }
}
