//! The contract pinned by JSON files: each fixture parses, re-serialises to the same JSON,
//! and becomes the expected core input; what the agent writes is what the functions read,
//! for every payload kind and for the token.
#![allow(clippy::unwrap_used)]

use burst_core::{Input, NotifyType, Timestamp, UpsStatus};
use burst_wire::{
    AgentKey, Battery, Claims, Heartbeat, Payload, Signer, UpsEvent, WitnessReport, body_sha256,
    rfc3339, verify,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::Path;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses the fixture as `T`, writes it again and checks nothing was lost, added or changed.
fn round_trip<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let bytes = fixture(name);
    let parsed: T = serde_json::from_slice(&bytes).unwrap();
    let original: Value = serde_json::from_slice(&bytes).unwrap();
    let written = serde_json::to_value(&parsed).unwrap();
    assert_eq!(written, original, "{name} changed on the way back");
    parsed
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

#[test]
fn ups_event_fixture() {
    let e: UpsEvent = round_trip("ups-event.json");
    assert_eq!((e.kind.as_str(), e.battery.charge), ("ONBATT", Some(93.0)));
    let Input::Ups(core) = Payload::Ups.parse(&fixture("ups-event.json")).unwrap() else {
        panic!("not a UPS input")
    };
    assert_eq!(core.id, "0b7e6f6a-6f0e-4c8e-9a53-2f1f7d4f2a10");
    assert_eq!(core.at, at("2026-03-01T12:00:00.123Z"));
    assert_eq!(core.notify, NotifyType::OnBatt);
    assert_eq!(core.status, UpsStatus::parse("OB DISCHRG"));
    assert_eq!(
        (core.battery_charge, core.battery_runtime_s),
        (Some(93.0), Some(1740))
    );
}

#[test]
fn heartbeat_fixture_with_battery_and_lease() {
    let h: Heartbeat = round_trip("heartbeat.json");
    assert!(h.lease);
    let Input::Heartbeat(core) = Payload::Heartbeat
        .parse(&fixture("heartbeat.json"))
        .unwrap()
    else {
        panic!("not a heartbeat input")
    };
    assert_eq!((core.nodes_ready, core.nodes_total), (5, 7));
    assert_eq!(core.ups_status, Some(UpsStatus::parse("OB DISCHRG LB")));
    assert_eq!(
        (core.battery_charge, core.battery_runtime_s),
        (Some(18.5), Some(240))
    );
    assert!(core.api_ok && core.lease);
}

#[test]
fn witness_report_fixture() {
    let w: WitnessReport = round_trip("witness-report.json");
    assert_eq!(w.latency_ms, None);
    let Input::Witness(core) = Payload::Witness
        .parse(&fixture("witness-report.json"))
        .unwrap()
    else {
        panic!("not a witness input")
    };
    assert_eq!(core.target, "https://home.example:6443/readyz");
    assert!(!core.reachable);
    assert_eq!(core.at, at("2026-03-01T12:01:00Z"));
}

#[test]
fn claims_fixture_signs_and_verifies() {
    let claims: Claims = round_trip("claims.json");
    assert_eq!(claims.body_sha256, body_sha256(b"abc"));
    let secret = "0123456789abcdef0123456789abcdef";
    let token = Signer::hs256("home", secret.as_bytes())
        .unwrap()
        .sign(&claims)
        .unwrap();
    let key = AgentKey::hs256(secret).unwrap();
    assert_eq!(verify(&key, &token, b"abc", claims.iat).unwrap(), claims);
}

/// The payloads as the agent builds them: known and unknown optional fields.
fn agent_payloads() -> Vec<(Payload, Vec<u8>, Input)> {
    let now = chrono::Utc::now();
    let when = rfc3339(now);
    let stamp = at(&when);
    let ups = UpsEvent {
        id: uuid::Uuid::new_v4(),
        at: when.clone(),
        ups: "nas@127.0.0.1:3493".into(),
        kind: "LOWBATT".into(),
        status: "OB DISCHRG LB".into(),
        battery: Battery {
            charge: Some(f64::from(9u8)),
            runtime_s: Some(120),
        },
    };
    let commloss = UpsEvent {
        id: uuid::Uuid::new_v4(),
        kind: "COMMBAD".into(),
        status: String::new(),
        battery: Battery::default(),
        ..ups.clone()
    };
    let beat = Heartbeat {
        id: uuid::Uuid::new_v4(),
        at: when.clone(),
        nodes_ready: 6,
        nodes_total: 7,
        ups_status: Some("OL CHRG".into()),
        battery: Battery {
            charge: Some(f64::from(97u8)),
            runtime_s: Some(3000),
        },
        api_ok: true,
        lease: true,
    };
    let plain_beat = Heartbeat {
        id: uuid::Uuid::new_v4(),
        ups_status: None,
        battery: Battery::default(),
        api_ok: false,
        lease: false,
        ..beat.clone()
    };
    let witness = WitnessReport {
        id: uuid::Uuid::new_v4(),
        at: when,
        target: "https://home.example:6443/readyz".into(),
        reachable: true,
        latency_ms: Some(31),
    };
    let ups_input = |e: &UpsEvent| {
        Input::Ups(burst_core::UpsEvent {
            id: e.id.to_string(),
            at: stamp,
            ups: e.ups.clone(),
            notify: NotifyType::parse(&e.kind),
            status: UpsStatus::parse(&e.status),
            battery_charge: e.battery.charge,
            battery_runtime_s: e.battery.runtime_s,
        })
    };
    let beat_input = |h: &Heartbeat| {
        Input::Heartbeat(burst_core::Heartbeat {
            id: h.id.to_string(),
            at: stamp,
            nodes_ready: h.nodes_ready,
            nodes_total: h.nodes_total,
            ups_status: h.ups_status.as_deref().map(UpsStatus::parse),
            battery_charge: h.battery.charge,
            battery_runtime_s: h.battery.runtime_s,
            api_ok: h.api_ok,
            lease: h.lease,
        })
    };
    let witness_input = Input::Witness(burst_core::WitnessReport {
        id: witness.id.to_string(),
        at: stamp,
        target: witness.target.clone(),
        reachable: true,
        latency_ms: Some(31),
    });
    vec![
        written(Payload::Ups, &ups, ups_input(&ups)),
        written(Payload::Ups, &commloss, ups_input(&commloss)),
        written(Payload::Heartbeat, &beat, beat_input(&beat)),
        written(Payload::Heartbeat, &plain_beat, beat_input(&plain_beat)),
        written(Payload::Witness, &witness, witness_input),
    ]
}

/// A payload as the agent writes it, with the input the function must read from it.
fn written<T: Serialize>(kind: Payload, payload: &T, input: Input) -> (Payload, Vec<u8>, Input) {
    (kind, serde_json::to_vec(payload).unwrap(), input)
}

#[test]
fn what_the_agent_writes_the_function_reads() {
    let payloads = agent_payloads();
    for kind in Payload::ALL {
        assert!(
            payloads.iter().any(|(p, _, _)| *p == kind),
            "{kind:?} is not covered"
        );
    }
    for (kind, body, want) in payloads {
        let text = String::from_utf8_lossy(&body).into_owned();
        assert!(!text.contains("null"), "no nulls on the wire: {text}");
        assert_eq!(kind.parse(&body).unwrap(), want, "{kind:?}: {text}");
    }
}

#[test]
fn the_agents_token_passes_the_functions_checks() {
    let body = fixture("heartbeat.json");
    let signer = Signer::hs256("home", b"0123456789abcdef0123456789abcdef").unwrap();
    let now = chrono::Utc::now().timestamp();
    let token = signer.token(&body, now).unwrap();
    let key = AgentKey::hs256("0123456789abcdef0123456789abcdef").unwrap();
    let claims = verify(&key, &token, &body, now).unwrap();
    assert_eq!(claims.iss, "home");
    let bearer = format!("Bearer {token}");
    assert_eq!(burst_wire::bearer(Some(&bearer)).unwrap(), token);
}
