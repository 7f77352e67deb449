//! End to end on the on-prem side: a real NUT stack (dummy-ups → upsd → upsmon, from burst-test-support)
//! calls the real `burst-agent notify` as its NOTIFYCMD; the checking receiver stands in for
//! the function. Every NOTIFYCMD call must arrive exactly once, with the right type and status.
//!
//! Needs root and the NUT daemons: without them these tests skip with a notice, or fail when
//! `CI` is set.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use burst_test_support::nut::{
    NotifyCall, NutOptions, NutSim, has_token, nut_available, scenario, sorted_types,
};
use support::receiver::Accepted;
use support::{AGENT, Harness};

/// Pairs the k-th recorded NOTIFYCMD call of each type with the k-th accepted event of that type (in
/// `at` order); prints and returns the latency NOTIFYCMD call → accepted, in ms.
fn latencies(label: &str, calls: &[NotifyCall], accepted: &[Accepted]) -> Vec<(String, f64)> {
    let mut by_type: HashMap<&str, Vec<&Accepted>> = HashMap::new();
    for a in accepted {
        by_type
            .entry(a.body["type"].as_str().unwrap())
            .or_default()
            .push(a);
    }
    for v in by_type.values_mut() {
        v.sort_by(|a, b| a.body["at"].as_str().cmp(&b.body["at"].as_str()));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for c in calls {
        let k = seen.entry(c.notifytype.as_str()).or_default();
        if let Some(a) = by_type.get(c.notifytype.as_str()).and_then(|v| v.get(*k)) {
            let ms = (a.received_at - c.t) * 1000.0;
            eprintln!(
                "[{label}] {:<8} NOTIFYCMD at t_rel {:>6.3}s -> accepted after {:>7.1} ms (status {:?})",
                c.notifytype, c.t_rel, ms, a.body["status"]
            );
            out.push((c.notifytype.clone(), ms));
        }
        *k += 1;
    }
    if !out.is_empty() {
        let max = out.iter().map(|x| x.1).fold(0.0, f64::max);
        let mean = out.iter().map(|x| x.1).sum::<f64>() / out.len() as f64;
        eprintln!(
            "[{label}] NOTIFYCMD -> receiver: n={} mean {mean:.1} ms, max {max:.1} ms",
            out.len()
        );
    }
    out
}

fn accepted_types(accepted: &[Accepted]) -> Vec<String> {
    let mut v: Vec<String> = accepted
        .iter()
        .map(|a| a.body["type"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Waits until the receiver has as many UPS events as the stack recorded NOTIFYCMD calls, then a little
/// longer so that an extra (duplicate) delivery would show.
async fn settle(h: &Harness, sim: &NutSim) -> (Vec<NotifyCall>, Vec<Accepted>) {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let calls = sim.notifies().await;
        if h.receiver.accepted_on("/api/ups").len() >= calls.len()
            || tokio::time::Instant::now() > end
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    (sim.notifies().await, h.receiver.accepted_on("/api/ups"))
}

fn check_status(a: &Accepted) {
    let status = a.body["status"].as_str().unwrap();
    let ok = match a.body["type"].as_str().unwrap() {
        "ONBATT" => has_token(status, "OB"),
        "LOWBATT" => has_token(status, "OB") && has_token(status, "LB"),
        "ONLINE" => has_token(status, "OL"),
        "COMMBAD" | "NOCOMM" => status.is_empty(),
        _ => true,
    };
    assert!(ok, "type/status mismatch: {}", a.body);
    if status.is_empty() {
        assert!(
            a.body.get("battery_charge").is_none() && a.body.get("battery_runtime_s").is_none()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_every_notify_arrives_exactly_once() {
    if !nut_available("outage_every_notify_arrives_exactly_once") {
        return;
    }
    let h = Harness::new().await;
    let sim = h.start_nut("outage.seq", NutOptions::lasting(60)).await;
    sim.expect_notify("ONLINE", 1, Duration::from_secs(40))
        .await;
    let (calls, accepted) = settle(&h, &sim).await;
    let hook_log = sim.log("notify-cmd.log");

    assert_eq!(
        sorted_types(&calls),
        ["LOWBATT", "ONBATT", "ONLINE"],
        "what upsmon reported for outage.seq"
    );
    assert_eq!(
        accepted_types(&accepted),
        sorted_types(&calls),
        "{}\n{hook_log}",
        h.receiver.describe()
    );
    assert!(
        h.receiver.duplicates().is_empty(),
        "{}",
        h.receiver.describe()
    );
    assert!(h.receiver.refused().is_empty(), "{}", h.receiver.describe());
    for a in &accepted {
        assert_eq!(a.body["ups"], sim.upsname().as_str());
        check_status(a);
        // outage.seq sets battery.charge / battery.runtime: the snapshot carries them.
        assert!(
            a.body["battery_charge"].is_u64() && a.body["battery_runtime_s"].is_u64(),
            "{}",
            a.body
        );
    }
    assert!(h.spooled().is_empty());
    latencies("outage", &calls, &accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_every_notify_arrives_exactly_once() {
    if !nut_available("flapping_every_notify_arrives_exactly_once") {
        return;
    }
    let h = Harness::new().await;
    let sim = h.start_nut("flap.seq", NutOptions::lasting(75)).await;
    // flap.seq's last change (back on line) is at 19 s.
    sim.expect_notify_after("ONLINE", 18.0, Duration::from_secs(45))
        .await;
    let (calls, accepted) = settle(&h, &sim).await;

    let onbatt = calls.iter().filter(|c| c.notifytype == "ONBATT").count();
    assert!(onbatt >= 1, "upsmon saw no outage at all: {calls:?}");
    eprintln!(
        "[flap] upsmon reported {} calls: {:?}",
        calls.len(),
        calls.iter().map(|c| &c.notifytype).collect::<Vec<_>>()
    );
    assert_eq!(
        accepted_types(&accepted),
        sorted_types(&calls),
        "{}",
        h.receiver.describe()
    );
    assert!(
        h.receiver.duplicates().is_empty(),
        "{}",
        h.receiver.describe()
    );
    for a in &accepted {
        check_status(a);
    }
    latencies("flap", &calls, &accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_down_during_the_outage_then_back() {
    if !nut_available("network_down_during_the_outage_then_back") {
        return;
    }
    let h = Harness::new().await;
    let sim_dir = h.tmp.path().join("nut");
    // This time the hook gets its settings from a TOML file (the deployment default).
    let port_placeholder = "PORT";
    let config = h.tmp.path().join("agent-file.toml");
    let toml_for = |port: &str| {
        format!(
            "site_id = '{}'\nbase_url = '{}'\nfunction_key = '{}'\ned25519_key_file = '{}'\n\
             spool_dir = '{}'\nnotify_budget_ms = 1500\nheartbeat_budget_ms = 6000\n\
             http_timeout_ms = 1000\nkube_source = 'none'\nups = 'dummy@127.0.0.1:{port}'\n\
             on_battery_interval_ms = 0\n",
            support::SITE,
            h.receiver.base_url(),
            support::FUNCTION_KEY,
            h.env["BURST_AGENT_ED25519_KEY_FILE"],
            h.spool_dir().display(),
        )
    };
    std::fs::write(&config, toml_for(port_placeholder)).unwrap();
    let notify_cmd = format!(
        "env BURST_AGENT_LOG=debug {AGENT} --config {} notify",
        config.display()
    );

    h.receiver.refuse().await;
    let sim = NutSim::start(
        &sim_dir,
        &scenario("outage-hold.seq"),
        NutOptions::lasting(90).notify_cmd(&notify_cmd),
    )
    .await;
    std::fs::write(&config, toml_for(&sim.port.to_string())).unwrap();

    sim.expect_notify("LOWBATT", 1, Duration::from_secs(30))
        .await;
    let end = tokio::time::Instant::now() + Duration::from_secs(15);
    while h.spooled().len() < 2 {
        assert!(
            tokio::time::Instant::now() < end,
            "events not spooled: {}",
            sim.log("notify-cmd.log")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Take the delivery lock ourselves: once we hold it, no hook is mid-delivery; hold it past
    // the hooks' budget while the network comes back, so only a *later* run delivers.
    let spool = burst_agent::deliver::Spool::open(&h.spool_dir()).unwrap();
    let lock = spool
        .lock_delivery(tokio::time::Instant::now() + Duration::from_secs(10))
        .await
        .unwrap()
        .expect("a hook kept the delivery lock");
    h.receiver.resume().await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    drop(lock);
    assert_eq!(
        h.receiver.accepted().len(),
        0,
        "nothing could have been delivered yet"
    );
    assert_eq!(h.spooled().len(), 2);

    // A heartbeat run flushes the spool first, then reports.
    let run = tokio::process::Command::new(AGENT)
        .args(["--config", config.to_str().unwrap(), "heartbeat"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // Power back: upsmon's ONLINE hook delivers directly.
    sim.set_var("ups.status", "OL CHRG").await;
    sim.expect_notify("ONLINE", 1, Duration::from_secs(20))
        .await;
    let (calls, _) = settle(&h, &sim).await;

    let got = h.receiver.accepted();
    let seq: Vec<String> = got
        .iter()
        .map(|a| format!("{} {}", a.route, a.body["type"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        seq,
        [
            "/api/ups ONBATT",
            "/api/ups LOWBATT",
            "/api/heartbeat ",
            "/api/ups ONLINE"
        ],
        "{}\n{}",
        h.receiver.describe(),
        sim.log("notify-cmd.log")
    );
    assert!(h.receiver.duplicates().is_empty());
    assert!(h.spooled().is_empty());
    for a in got.iter().filter(|a| a.route == "/api/ups") {
        check_status(a);
    }
    assert_eq!(got[2].body["ups_status"], "OB DISCHRG LB");
    // `at` is when upsmon called the hook, not when the event finally got through.
    for (a, c) in got.iter().filter(|a| a.route == "/api/ups").zip(&calls) {
        let at = chrono::DateTime::parse_from_rfc3339(a.body["at"].as_str().unwrap()).unwrap();
        let at = at.timestamp_millis() as f64 / 1000.0;
        assert!((at - c.t).abs() < 1.0, "at {at} vs NOTIFYCMD {}", c.t);
    }
    latencies(
        "network-down",
        &calls,
        &got.iter()
            .filter(|a| a.route == "/api/ups")
            .cloned()
            .collect::<Vec<_>>(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commloss_is_unknown_power_not_a_power_loss() {
    if !nut_available("commloss_is_unknown_power_not_a_power_loss") {
        return;
    }
    let h = Harness::new().await;
    let sim = h.start_nut_and_lose_upsd_for_10_s().await;
    let (calls, accepted) = settle(&h, &sim).await;

    assert!(calls.iter().any(|c| c.notifytype == "COMMBAD"), "{calls:?}");
    assert_eq!(
        accepted_types(&accepted),
        sorted_types(&calls),
        "{}",
        h.receiver.describe()
    );
    assert!(h.receiver.duplicates().is_empty());
    for a in &accepted {
        check_status(a);
        match a.body["type"].as_str().unwrap() {
            "COMMBAD" | "NOCOMM" => assert_eq!(a.body["status"], "", "unknown power: {}", a.body),
            "COMMOK" => assert!(
                has_token(a.body["status"].as_str().unwrap(), "OL"),
                "{}",
                a.body
            ),
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    latencies("commloss", &calls, &accepted);
}
