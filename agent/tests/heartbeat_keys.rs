//! One function key for all routes or one per route, and heartbeats that carry the battery
//! and beat faster on battery: the real binary against the checking receiver, a fake upsd,
//! and a real upsd (the test NUT stack).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use burst_test_support::nut::{NutOptions, NutSim, nut_available, scenario};
use support::Harness;
use support::fake_upsd::FakeUpsd;

async fn ups(status: &str) -> FakeUpsd {
    FakeUpsd::start(
        "myups",
        &[
            ("ups.status", status),
            ("battery.charge", "57.6"),
            ("battery.runtime", "612"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_sends_its_own_key() {
    let mut h = Harness::new().await;
    let upsd = ups("OL").await;
    // Function keys, each valid on its own route only (as the Functions host has them).
    h.receiver.set_route_key("/api/ups", "key-ups");
    h.receiver.set_route_key("/api/heartbeat", "key-heartbeat");
    h.receiver.set_route_key("/api/witness", "key-witness");
    let key_file = h.tmp.path().join("heartbeat-key");
    std::fs::write(&key_file, "key-heartbeat\n").unwrap();
    h.set("BURST_AGENT_FUNCTION_KEY", "not-a-key-anywhere");
    h.set("BURST_AGENT_FUNCTION_KEY_UPS", "key-ups");
    h.set(
        "BURST_AGENT_FUNCTION_KEY_HEARTBEAT_FILE",
        key_file.to_str().unwrap(),
    );
    h.set("BURST_AGENT_FUNCTION_KEY_WITNESS", "key-witness");
    let home = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    h.set(
        "BURST_AGENT_WITNESS_TARGET",
        &format!("tcp://{}", home.local_addr().unwrap()),
    );

    assert_eq!(h.notify("ONBATT", &upsd.upsname("myups")).await.code, 0);
    assert_eq!(h.run(&["heartbeat"], &[]).await.code, 0);
    assert_eq!(h.run(&["witness"], &[]).await.code, 0);
    assert_eq!(
        h.run(&["test"], &[]).await.code,
        0,
        "test posts to /api/ups"
    );
    let keys: Vec<(String, String)> = h
        .receiver
        .accepted()
        .into_iter()
        .map(|a| (a.route, a.key))
        .collect();
    assert_eq!(
        keys,
        [
            ("/api/ups".to_string(), "key-ups".to_string()),
            ("/api/heartbeat".to_string(), "key-heartbeat".to_string()),
            ("/api/witness".to_string(), "key-witness".to_string()),
            ("/api/ups".to_string(), "key-ups".to_string()),
        ],
        "{}",
        h.receiver.describe()
    );
    assert!(h.receiver.refused().is_empty(), "{}", h.receiver.describe());

    // Without its own key the route gets the key for all routes: here a wrong one.
    h.set("BURST_AGENT_FUNCTION_KEY_WITNESS", "");
    assert_eq!(h.run(&["witness"], &[]).await.code, 1);
    let refused = h.receiver.refused();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        (refused[0].route.as_str(), refused[0].status),
        ("/api/witness", 401)
    );

    // The host key as the key for all routes, one route overridden.
    h.set("BURST_AGENT_FUNCTION_KEY", support::FUNCTION_KEY);
    h.set("BURST_AGENT_FUNCTION_KEY_UPS", "");
    assert_eq!(h.run(&["witness"], &[]).await.code, 0);
    assert_eq!(h.run(&["heartbeat"], &[]).await.code, 0);
    assert_eq!(h.notify("ONLINE", &upsd.upsname("myups")).await.code, 0);
    let last: Vec<(String, String)> = h.receiver.accepted()[4..]
        .iter()
        .map(|a| (a.route.clone(), a.key.clone()))
        .collect();
    assert_eq!(
        last,
        [
            (
                "/api/witness".to_string(),
                support::FUNCTION_KEY.to_string()
            ),
            ("/api/heartbeat".to_string(), "key-heartbeat".to_string()),
            ("/api/ups".to_string(), support::FUNCTION_KEY.to_string()),
        ]
    );
    for run_key in ["key-ups", "key-heartbeat", "key-witness"] {
        assert!(!h.receiver.describe().contains("Bearer"), "{run_key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_carry_the_battery_and_one_beat_on_line() {
    let mut h = Harness::new().await;
    let upsd = ups("OL CHRG").await;
    h.set("BURST_AGENT_UPS", &upsd.upsname("myups"));
    let run = h.run(&["heartbeat"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.elapsed < Duration::from_secs(2),
        "on line: one beat, done: {run:?}"
    );
    let beats = h.receiver.accepted_on("/api/heartbeat");
    assert_eq!(beats.len(), 1, "{}", h.receiver.describe());
    let b = &beats[0].body;
    assert_eq!(b["ups_status"], "OL CHRG");
    assert_eq!(b["battery_charge"], 58, "whole percent");
    assert_eq!(b["battery_runtime_s"], 612);

    // Unknown battery: the fields are left out.
    upsd.behave(support::fake_upsd::Behaviour::Err("DATA-STALE"));
    assert_eq!(h.run(&["heartbeat"], &[]).await.code, 0);
    let b = &h.receiver.accepted_on("/api/heartbeat")[1].body;
    assert_eq!(b["ups_status"], "");
    assert!(
        b.get("battery_charge").is_none() && b.get("battery_runtime_s").is_none(),
        "{b}"
    );
}

/// A harness reading a UPS on battery, with a beat every second on battery within a heartbeat
/// run of `period_ms`.
async fn on_battery_beating_every_second(period_ms: &str) -> (Harness, FakeUpsd) {
    let mut h = Harness::new().await;
    let upsd = ups("OB DISCHRG").await;
    h.set("BURST_AGENT_UPS", &upsd.upsname("myups"));
    h.set("BURST_AGENT_HEARTBEAT_PERIOD_MS", period_ms);
    h.set("BURST_AGENT_ON_BATTERY_INTERVAL_MS", "1000");
    (h, upsd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_battery_a_run_beats_every_interval_until_the_period_is_used_up() {
    let (mut h, _upsd) = on_battery_beating_every_second("3000").await;
    let run = h.run(&["heartbeat"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    // Beats at 0, 1 and 2 s; the run ends before the next timer run at 3 s (less a margin).
    let beats = h.receiver.accepted_on("/api/heartbeat");
    assert_eq!(beats.len(), 3, "{}", h.receiver.describe());
    assert!(
        run.elapsed >= Duration::from_secs(2) && run.elapsed < Duration::from_millis(2900),
        "{:?}",
        run.elapsed
    );
    for pair in beats.windows(2) {
        let gap = pair[1].received_at - pair[0].received_at;
        assert!((0.8..1.3).contains(&gap), "beats {gap:.3} s apart");
        assert_ne!(pair[0].id, pair[1].id, "each beat is a new report");
    }
    for b in &beats {
        assert_eq!(b.body["ups_status"], "OB DISCHRG");
        assert_eq!(b.body["battery_charge"], 58);
        assert_eq!(b.body["battery_runtime_s"], 612);
    }

    // 0 turns it off: one beat, whatever the power.
    h.set("BURST_AGENT_ON_BATTERY_INTERVAL_MS", "0");
    let run = h.run(&["heartbeat"], &[]).await;
    assert_eq!(run.code, 0);
    assert_eq!(h.receiver.accepted_on("/api/heartbeat").len(), 4);
    assert!(run.elapsed < Duration::from_secs(1), "{:?}", run.elapsed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_back_ends_the_faster_beats_and_a_failed_beat_fails_the_run() {
    let (mut h, upsd) = on_battery_beating_every_second("6000").await;
    let power_back = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        upsd.set("ups.status", "OL CHRG");
    };
    let (run, ()) = tokio::join!(h.run(&["heartbeat"], &[]), power_back);
    assert_eq!(run.code, 0, "{run:?}");
    let statuses = h.receiver.accepted_strings("/api/heartbeat", "ups_status");
    assert_eq!(statuses, ["OB DISCHRG", "OB DISCHRG", "OL CHRG"]);
    assert!(
        run.elapsed < Duration::from_millis(2900),
        "stopped at power back: {:?}",
        run.elapsed
    );

    // The function answering 503 for a while: the run goes on, but exits 1.
    upsd.set("ups.status", "OB DISCHRG");
    h.set("BURST_AGENT_HEARTBEAT_PERIOD_MS", "3000");
    h.set("BURST_AGENT_HEARTBEAT_BUDGET_MS", "600");
    h.receiver.set_unavailable(true);
    let back = async {
        tokio::time::sleep(Duration::from_millis(900)).await;
        h.receiver.set_unavailable(false);
    };
    let before = h.receiver.accepted_on("/api/heartbeat").len();
    let (run, ()) = tokio::join!(h.run(&["heartbeat"], &[]), back);
    assert_eq!(run.code, 1, "the first beat was not delivered: {run:?}");
    assert_eq!(
        h.receiver.accepted_on("/api/heartbeat").len() - before,
        2,
        "the beats at 1 s and 2 s got through: {}",
        h.receiver.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_upsd_on_battery_beats_carry_its_battery() {
    if !nut_available("real_upsd_on_battery_beats_carry_its_battery") {
        return;
    }
    let mut h = Harness::new().await;
    // OB at 2 s (charge 60, runtime 600), OB LB at 5 s (10, 60), then holds.
    let sim = NutSim::start(
        &h.tmp.path().join("nut"),
        &scenario("outage-hold.seq"),
        NutOptions::lasting(60),
    )
    .await;
    let ups = burst_agent::upsd::UpsName::parse(&sim.upsname()).unwrap();
    let mut on_battery = false;
    for _ in 0..50 {
        let s = burst_agent::upsd::snapshot(&ups, Duration::from_secs(2)).await;
        if s.is_ok_and(|s| s.status.split_whitespace().any(|t| t == "OB")) {
            on_battery = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(on_battery, "the scenario never went on battery");
    h.set("BURST_AGENT_UPS", &sim.upsname());
    h.set("BURST_AGENT_HEARTBEAT_PERIOD_MS", "2500");
    h.set("BURST_AGENT_ON_BATTERY_INTERVAL_MS", "1000");
    let run = h.run(&["heartbeat"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let beats = h.receiver.accepted_on("/api/heartbeat");
    assert_eq!(beats.len(), 3, "{}", h.receiver.describe());
    for b in &beats {
        let status = b.body["ups_status"].as_str().unwrap();
        let battery = (
            b.body["battery_charge"].as_u64(),
            b.body["battery_runtime_s"].as_u64(),
        );
        assert!(status.starts_with("OB DISCHRG"), "{}", b.body);
        // The scenario's values (the driver sets a step's variables one after another, so a
        // read may fall between two of them).
        assert!(
            matches!(battery.0, Some(60 | 10)) && matches!(battery.1, Some(600 | 60)),
            "{}",
            b.body
        );
    }
}
