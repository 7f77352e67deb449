//! The JSON bodies the agent and the witness post, and where each goes.
//!
//! Reading: unknown fields are ignored, a missing required field is an error, an optional
//! field may be absent or `null`. Writing: an unknown optional field is left out (never sent
//! as `null`), and `lease` only when it is `true`.

use crate::http::truncate;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn ups_event() -> UpsEvent {
        UpsEvent {
            id: Uuid::nil(),
            at: "2026-01-01T00:00:00.000Z".into(),
            ups: "dummy@127.0.0.1:34930".into(),
            kind: "ONBATT".into(),
            status: "OB DISCHRG".into(),
            battery: Battery {
                charge: Some(60.0),
                runtime_s: Some(600),
            },
        }
    }

    #[test]
    fn ups_event_wire_shape() {
        let e = ups_event();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"id": Uuid::nil(), "at": "2026-01-01T00:00:00.000Z",
                "ups": "dummy@127.0.0.1:34930", "type": "ONBATT", "status": "OB DISCHRG",
                "battery_charge": 60, "battery_runtime_s": 600})
        );
        let commloss = UpsEvent {
            kind: "COMMBAD".into(),
            status: String::new(),
            battery: Battery::default(),
            ..e
        };
        let v = serde_json::to_value(&commloss).unwrap();
        assert_eq!(v["status"], "");
        assert!(v.get("battery_charge").is_none() && v.get("battery_runtime_s").is_none());
    }

    #[test]
    fn fractional_charge_stays_a_float() {
        let e = UpsEvent {
            battery: Battery {
                charge: Some(57.5),
                runtime_s: None,
            },
            ..ups_event()
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"battery_charge\":57.5"), "{text}");
        let back: UpsEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn heartbeat_asks_for_a_lease_only_when_fencing() {
        let mut beat = Heartbeat {
            id: Uuid::nil(),
            at: "2026-01-01T00:00:00.000Z".into(),
            nodes_ready: 3,
            nodes_total: 3,
            ups_status: None,
            battery: Battery::default(),
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
        beat.battery = Battery {
            charge: Some(57.0),
            runtime_s: Some(612),
        };
        let v = serde_json::to_value(&beat).unwrap();
        assert_eq!(
            (
                &v["lease"],
                &v["ups_status"],
                &v["battery_charge"],
                &v["battery_runtime_s"]
            ),
            (&json!(true), &json!("OB DISCHRG"), &json!(57), &json!(612))
        );
    }

    #[test]
    fn nulls_read_as_absent() {
        let w: WitnessReport = serde_json::from_value(json!({"id": Uuid::nil(),
            "at": "2026-01-01T00:00:00Z", "target": "t", "reachable": false, "latency_ms": null}))
        .unwrap();
        assert_eq!(w.latency_ms, None);
    }

    #[test]
    fn a_bad_id_is_named() {
        let e = serde_json::from_value::<WitnessReport>(json!({"id": "nope",
            "at": "2026-01-01T00:00:00Z", "target": "t", "reachable": true}))
        .unwrap_err();
        assert!(
            e.to_string().contains("id must be a UUID, got \"nope\""),
            "{e}"
        );
    }

    #[test]
    fn routes_map_both_ways() {
        for p in Payload::ALL {
            assert_eq!(Payload::for_route(p.route()), Some(p));
        }
        assert_eq!(Payload::for_route("/api/status"), None);
    }

    #[test]
    fn rfc3339_millis_utc() {
        let t = DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456+00:00").unwrap();
        assert_eq!(rfc3339(t.with_timezone(&Utc)), "2026-03-01T12:00:00.123Z");
    }
}
