//! Real NUT → real agent → real function app: the test NUT stack (dummy-ups, upsd, upsmon, run
//! by burst-test-support) calls `burst-agent notify` as its NOTIFYCMD; the agent posts to a
//! running `burst-handler` with a file state store. What upsmon reported (the stack's record of
//! every NOTIFYCMD call) is
//! compared with what the function took in (`GET /api/status` and the state file).
//!
//! Needs root and the NUT daemons: without them these tests print `SKIPPED: ...` and pass,
//! unless `CI` is set, where they fail.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use burst_e2e::*;
use serde_json::Value;

/// Waits until the function holds as many UPS event ids as the stack recorded calls, then a
/// little longer so that a late extra (doubled) delivery would show. Returns the calls and
/// the stored state.
async fn settle(h: &Handler, sim: &NutSim) -> (Vec<NotifyCall>, Value) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let calls = sim.notifies().await;
        if ups_keys(&h.state()).len() >= calls.len() || Instant::now() > end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    (sim.notifies().await, h.state())
}

/// The UPS events the function applied, in the order the watcher saw them: one entry per
/// change of `last_type` (a heartbeat's UPS view may move `event_at` without a new event;
/// consecutive events of one type, such as repeated NOCOMMs, show as one).
fn power_history(history: &[Snapshot]) -> Vec<Snapshot> {
    let mut out: Vec<Snapshot> = Vec::new();
    for s in history {
        if s.last_type.is_empty() {
            continue;
        }
        if out.last().is_none_or(|l| l.last_type != s.last_type) {
            out.push(s.clone());
        }
    }
    out
}

/// Waits (bounded) until the watcher saw a snapshot satisfying `f`.
async fn wait_for(w: &Watcher, what: &str, limit: Duration, f: impl Fn(&Snapshot) -> bool) {
    let end = Instant::now() + limit;
    while !w.history().iter().any(&f) {
        assert!(
            Instant::now() < end,
            "no {what} within {limit:?}: {:#?}",
            w.history()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every NOTIFYCMD call arrived exactly once: as many `ups:<id>` keys in the state as calls.
fn assert_each_once(calls: &[NotifyCall], state: &Value, site: &Site, h: &Handler, sim: &NutSim) {
    let keys = ups_keys(state);
    assert_eq!(
        keys.len(),
        calls.len(),
        "UPS event ids held by the function vs NOTIFYCMD calls {:?}\nseen: {keys:?}\nhook log:\n{}\nhandler log:\n{}",
        calls.iter().map(|c| &c.notifytype).collect::<Vec<_>>(),
        sim.log("notify-cmd.log"),
        h.logs()
    );
    assert!(site.spooled().is_empty(), "left in the spool");
    assert!(site.rejected().is_empty(), "rejected by the function");
    for c in calls {
        assert_eq!(c.upsname, sim.upsname());
    }
}

/// The function's settings for quick modes: a short grace and scale-down delay.
const QUICK_MODES: [(&str, &str); 2] = [
    ("BURST_GRACE_ON_BATTERY_S", "2"),
    ("BURST_SCALE_DOWN_DELAY_S", "1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_every_notify_reaches_the_function_once() {
    if !nut_available("outage_every_notify_reaches_the_function_once") {
        return;
    }
    let site = Site::new().await;
    // Quick modes so that outage.seq's 16 s go through every one.
    let h = site.start_handler(&QUICK_MODES).await;
    let watcher = Watcher::start(&h.base_url());
    // The home cluster as the heartbeat sees it: 3 of 3 nodes ready.
    let kube = FakeKube::start(3, 3).await;
    let sim = site.start_nut("outage.seq", NutOptions::lasting(60)).await;
    let ups = sim.upsname();
    let kube_url = kube.url();
    let heartbeat = || async {
        let run = site
            .agent(
                &["heartbeat"],
                &[
                    ("BURST_AGENT_UPS", ups.as_str()),
                    ("BURST_AGENT_KUBE_SOURCE", "url"),
                    ("BURST_AGENT_KUBE_URL", kube_url.as_str()),
                ],
                Duration::from_secs(15),
            )
            .await;
        assert_eq!(run.code, 0, "heartbeat: {}", run.stderr);
    };

    // outage.seq: OB at 3 s, OB LB at 8 s, OL at 12 s. The core looks at the clock only when
    // an input arrives (the probe timer is the host's, not running here), so once the ONBATT
    // is in, a heartbeat sent after the 2 s grace makes it decide.
    wait_for(&watcher, "ONBATT applied", Duration::from_secs(30), |s| {
        s.last_type == "ONBATT"
    })
    .await;
    let onbatt_at = power_history(&watcher.history())[0].event_at.unwrap();
    let wake = onbatt_at as f64 / 1000.0 + 2.3 - now_epoch();
    if wake > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wake)).await;
    }
    heartbeat().await;
    let hb_done = now_epoch();
    assert_eq!(kube.lists(), 1, "the heartbeat listed the nodes");

    sim.expect_notify("ONLINE", 1, Duration::from_secs(40))
        .await;
    let (calls, state) = settle(&h, &sim).await;
    assert_eq!(
        sorted_types(&calls),
        ["LOWBATT", "ONBATT", "ONLINE"],
        "what upsmon reported for outage.seq"
    );
    assert_each_once(&calls, &state, &site, &h, &sim);

    // The power history the function went through, in order, and the mode each event left.
    let applied = power_history(&watcher.history());
    let seq: Vec<(&str, &str)> = applied
        .iter()
        .map(|s| (s.last_type.as_str(), s.health.as_str()))
        .collect();
    assert_eq!(
        seq,
        [("ONBATT", "down"), ("LOWBATT", "down"), ("ONLINE", "up")],
        "{applied:#?}"
    );
    assert_eq!(applied[0].mode, "suspect");
    assert!(has_token(&applied[0].status, "OB"));
    assert_eq!(applied[1].mode, "outage");
    assert!(has_token(&applied[1].status, "LB"));
    // Power back, and the fresh heartbeat said API ready with every node ready.
    assert_eq!(applied[2].mode, "recovering", "{applied:#?}");

    let status = h.site_status().await;
    let power = &status["signals"]["power"];
    assert_eq!(power["health"], "up", "{status}");
    assert_eq!(power["last_type"], "ONLINE");
    assert!(
        has_token(power["status"].as_str().unwrap(), "OL"),
        "{power}"
    );
    assert_eq!(power["ups"], ups.as_str());
    assert_eq!(power["critical"], Value::Null);
    assert_eq!(status["mode"], "recovering", "{status}");
    let incident = &status["incident"];
    assert_eq!(
        incident["title"],
        format!("Recovering: {SITE} looks healthy, holding 5 cloud node(s) for 1 s"),
        "{incident}"
    );
    let lines: Vec<&str> = incident["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    // "HH:MM:SS text"; the first line is how it started.
    let texts: Vec<&str> = lines.iter().map(|l| l.get(9..).unwrap_or(l)).collect();
    assert!(texts[0].starts_with("outage: "), "{lines:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("UPS LOWBATT [OB DISCHRG LB], battery 10 %")),
        "{lines:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("UPS ONLINE [OL CHRG]")),
        "{lines:?}"
    );
    assert_eq!(
        texts.last().copied(),
        Some("recovering: power back, API ready, all 3 nodes ready"),
        "{lines:?}"
    );

    // Healthy for the whole (1 s) scale-down delay: the next input brings it home.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    heartbeat().await;
    let status = h.site_status().await;
    assert_eq!(status["mode"], "healthy", "{status}");
    assert_eq!(
        status["signals"]["heartbeat"]["nodes"],
        serde_json::json!({"ready": 3, "total": 3})
    );

    let lowbatt_t = calls.iter().find(|c| c.notifytype == "LOWBATT").unwrap().t;
    let grace_reason = if hb_done < lowbatt_t - 0.5 {
        "on battery for 2 s"
    } else {
        // The machine was too slow to get the heartbeat in before LB: LB decides.
        eprintln!("[outage] heartbeat came after LOWBATT; the grace path was not exercised");
        "low battery (no grace)"
    };
    let changes = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        mode_changes(&status),
        changes(&[
            ("healthy → suspect", "on battery"),
            ("suspect → outage", grace_reason),
            (
                "outage → recovering",
                "power back, API ready, all 3 nodes ready"
            ),
            (
                "recovering → healthy",
                "healthy for the whole scale-down delay (1 s)"
            ),
        ]),
        "{}",
        status["audit"]
    );
    // Without a Discord webhook the messages go to the function's log (and count as
    // delivered, so the resolved incident is gone from the state).
    assert_eq!(status["incident"], Value::Null, "{status}");
    assert!(
        h.logs()
            .contains(&format!("Resolved: {SITE} back to normal after 0 min")),
        "{}",
        h.logs()
    );
    latencies("outage", &calls, &watcher.history());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_every_notify_reaches_the_function_once() {
    if !nut_available("flapping_every_notify_reaches_the_function_once") {
        return;
    }
    let site = Site::new().await;
    // Default grace (120 s): every blip must come back as a blip.
    let h = site.start_handler(&[]).await;
    let watcher = Watcher::start(&h.base_url());
    let sim = site.start_nut("flap.seq", NutOptions::lasting(75)).await;
    // flap.seq's last change (back on line) is at 19 s.
    sim.expect_notify_after("ONLINE", 18.0, Duration::from_secs(45))
        .await;
    let (calls, state) = settle(&h, &sim).await;
    eprintln!(
        "[flap] upsmon reported {} calls: {:?}",
        calls.len(),
        calls.iter().map(|c| &c.notifytype).collect::<Vec<_>>()
    );
    let onbatt = calls.iter().filter(|c| c.notifytype == "ONBATT").count();
    assert!(onbatt >= 1, "upsmon saw no outage at all: {calls:?}");
    assert_each_once(&calls, &state, &site, &h, &sim);

    // Applied in the order upsmon called the hook, each with the right health.
    let applied = power_history(&watcher.history());
    let applied_types: Vec<&str> = applied.iter().map(|s| s.last_type.as_str()).collect();
    let call_types: Vec<&str> = calls.iter().map(|c| c.notifytype.as_str()).collect();
    assert_eq!(applied_types, call_types, "{applied:#?}");
    for s in &applied {
        let want = if s.last_type == "ONBATT" {
            "down"
        } else {
            "up"
        };
        assert_eq!(s.health, want, "{s:?}");
    }

    let status = h.site_status().await;
    assert_eq!(status["mode"], "healthy", "{status}");
    assert_eq!(status["signals"]["power"]["health"], "up");
    assert_eq!(status["signals"]["power"]["last_type"], "ONLINE");
    assert_eq!(status["incident"], Value::Null, "a blip opens no incident");
    let blip = [
        ("healthy → suspect".to_string(), "on battery".to_string()),
        (
            "suspect → healthy".to_string(),
            "all signals up again within the grace period (a blip)".to_string(),
        ),
    ];
    assert_eq!(
        mode_changes(&status),
        blip.iter()
            .cycle()
            .take(2 * onbatt)
            .cloned()
            .collect::<Vec<_>>(),
        "{}",
        status["audit"]
    );
    latencies("flap", &calls, &watcher.history());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_down_during_the_outage_then_the_spool_arrives_in_order() {
    if !nut_available("network_down_during_the_outage_then_the_spool_arrives_in_order") {
        return;
    }
    let mut site = Site::new().await;
    // Hooks give up quickly while the function is unreachable.
    site.set("BURST_AGENT_NOTIFY_BUDGET_MS", "1000");
    site.set("BURST_AGENT_HTTP_TIMEOUT_MS", "500");
    // The function has state already, then goes away: its port refuses.
    let mut h = site.start_handler(&[]).await;
    assert_eq!(h.site_status().await["mode"], "healthy");
    let hook = site.write_hook();
    let first = site.agent(&["test"], &[], Duration::from_secs(15)).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(ups_keys(&h.state()).len(), 1);
    h.stop();

    let sim = NutSim::start(
        &site.tmp.path().join("nut"),
        &scenario("outage-hold.seq"),
        NutOptions::lasting(90)
            .notify_cmd(hook.to_str().unwrap())
            .avoiding(&[site.port]),
    )
    .await;
    sim.expect_notify("LOWBATT", 1, Duration::from_secs(30))
        .await;
    let end = Instant::now() + Duration::from_secs(15);
    while site.spooled().len() < 2 {
        assert!(
            Instant::now() < end,
            "events not spooled: {}",
            sim.log("notify-cmd.log")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Take the agent's delivery lock: once we hold it no hook is mid-delivery. Hold it past
    // the hooks' budget while the function comes back, so only a later run delivers.
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(site.spool_dir().join(".deliver.lock"))
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match lock_file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                assert!(Instant::now() < end, "a hook kept the delivery lock");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::Error(e)) => panic!("lock: {e}"),
        }
    }
    let h = site.start_handler(&[]).await;
    let watcher = Watcher::start(&h.base_url());
    tokio::time::sleep(Duration::from_millis(3500)).await;
    lock_file.unlock().unwrap();
    drop(lock_file);
    assert_eq!(
        ups_keys(&h.state()).len(),
        1,
        "nothing could have been delivered yet"
    );
    assert_eq!(site.spooled().len(), 2);
    assert_eq!(h.site_status().await["mode"], "healthy");

    // A heartbeat run delivers the spool first, then reports.
    let ups = sim.upsname();
    let hb = site
        .agent(
            &["heartbeat"],
            &[("BURST_AGENT_UPS", ups.as_str())],
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(hb.code, 0, "heartbeat: {}", hb.stderr);
    assert!(site.spooled().is_empty(), "{}", hb.stderr);
    let state = h.state();
    assert_eq!(ups_keys(&state).len(), 3, "test + ONBATT + LOWBATT");
    let status = h.site_status().await;
    // In order: ONBATT alone made it Suspect; LOWBATT then made it Outage at once. Had
    // LOWBATT come first, the first change would say "on battery (low battery)" and ONBATT
    // would be "recorded, not applied".
    assert_eq!(
        mode_changes(&status),
        [
            ("healthy → suspect".to_string(), "on battery".to_string()),
            (
                "suspect → outage".to_string(),
                "low battery (no grace)".to_string()
            ),
        ],
        "{}",
        status["audit"]
    );
    assert!(
        !status["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["what"].as_str().unwrap().contains("not applied")),
        "{}",
        status["audit"]
    );
    assert_eq!(status["mode"], "outage");
    let power = &status["signals"]["power"];
    assert_eq!(power["health"], "down", "{power}");
    assert_eq!(power["critical"], "low_battery");
    assert_eq!(power["last_type"], "LOWBATT");
    assert_eq!(power["status"], "OB DISCHRG LB");
    assert_eq!(power["battery_charge"], 10.0);
    assert!(status["signals"]["heartbeat"]["received_at"].is_i64());
    // `at` of each event is when upsmon called the hook, not when it got through.
    let calls = sim.notifies().await;
    let lowbatt = calls.iter().find(|c| c.notifytype == "LOWBATT").unwrap();
    let event_at = power["event_at"].as_i64().unwrap() as f64 / 1000.0;
    // The heartbeat's own UPS view (newer) may have moved event_at; never before LOWBATT.
    assert!(event_at >= lowbatt.t - 1.0, "{event_at} vs {}", lowbatt.t);
    let lines: Vec<&str> = status["incident"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        lines[0].ends_with("outage: low battery (no grace)"),
        "{lines:?}"
    );

    // Power back: upsmon's ONLINE hook delivers directly.
    sim.set_var("ups.status", "OL CHRG").await;
    sim.expect_notify("ONLINE", 1, Duration::from_secs(20))
        .await;
    let state = settle_n(&h, 4).await;
    let calls = sim.notifies().await;
    assert_eq!(sorted_types(&calls), ["LOWBATT", "ONBATT", "ONLINE"]);
    assert_eq!(
        ups_keys(&state).len(),
        4,
        "test + every NOTIFYCMD call once"
    );
    assert!(site.spooled().is_empty() && site.rejected().is_empty());
    let status = h.site_status().await;
    assert_eq!(status["signals"]["power"]["last_type"], "ONLINE");
    assert_eq!(status["signals"]["power"]["health"], "up");
    // The agent has no cluster view here (kube_source none) and no home API probe is set up:
    // recovery goes on a current on-line reading and fresh heartbeats.
    assert_eq!(status["mode"], "recovering", "{status}");
    let changes = mode_changes(&status);
    assert!(
        changes
            .last()
            .is_some_and(|(c, why)| c.ends_with("recovering") && why.contains("power back")),
        "{changes:?}"
    );
    latencies("network-down", &calls, &watcher.history());
}

/// Waits (bounded) until the function holds `n` UPS event ids, then a little longer so that
/// a doubled delivery would show; returns the stored state.
async fn settle_n(h: &Handler, n: usize) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    while ups_keys(&h.state()).len() < n && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.state()
}

/// A site whose agent rides out a lost UPS link. Right after upsd restarts (COMMOK) it says
/// WAIT until the driver's data is in; on a busy machine that can take a few seconds, and the
/// agent re-reads only within its upsd timeout before reporting unknown. Give it room so that
/// COMMOK carries the real status.
async fn link_loss_site() -> Site {
    let mut site = Site::new().await;
    site.set("BURST_AGENT_UPSD_TIMEOUT_MS", "6000");
    site.set("BURST_AGENT_NOTIFY_BUDGET_MS", "10000");
    site
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commloss_is_unknown_power_not_a_power_loss() {
    if !nut_available("commloss_is_unknown_power_not_a_power_loss") {
        return;
    }
    let site = link_loss_site().await;
    let h = site.start_handler(&[]).await;
    let watcher = Watcher::start(&h.base_url());
    let sim = site.start_nut_and_lose_upsd_for_10_s().await;
    let (calls, state) = settle(&h, &sim).await;
    assert!(calls.iter().any(|c| c.notifytype == "COMMBAD"), "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|c| matches!(c.notifytype.as_str(), "COMMBAD" | "NOCOMM" | "COMMOK")),
        "{calls:?}"
    );
    assert_each_once(&calls, &state, &site, &h, &sim);

    let history = watcher.history();
    assert!(history.iter().all(|s| s.mode == "healthy"), "{history:#?}");
    assert!(
        history.iter().all(|s| s.health != "down"),
        "never a power loss: {history:#?}"
    );
    let applied = power_history(&history);
    let commbad = applied
        .iter()
        .find(|s| s.last_type == "COMMBAD")
        .unwrap_or_else(|| panic!("COMMBAD not applied: {applied:#?}"));
    assert_eq!(
        (commbad.health.as_str(), commbad.status.as_str()),
        ("unknown", "")
    );
    for s in applied.iter().filter(|s| s.last_type == "NOCOMM") {
        assert_eq!((s.health.as_str(), s.status.as_str()), ("unknown", ""));
    }

    let status = h.site_status().await;
    assert_eq!(status["mode"], "healthy");
    assert_eq!(status["signals"]["power"]["last_type"], "COMMOK");
    assert_eq!(
        (
            &status["signals"]["power"]["health"],
            &status["signals"]["power"]["status"]
        ),
        (&Value::from("up"), &Value::from("OL")),
        "{status}\nhook log:\n{}",
        sim.log("notify-cmd.log")
    );
    assert!(mode_changes(&status).is_empty(), "{}", status["audit"]);
    latencies("commloss", &calls, &history);
}

/// On battery past the grace (outage), then the UPS's data link dies (the driver frozen:
/// upsd's data goes stale, upsmon reports COMMBAD then NOCOMM). Power is then Unknown,
/// neither Up nor Down: the last reading (on battery) keeps the outage, heartbeats that
/// cannot read the UPS do not count as "power back", and the cloud is never released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_ups_link_on_battery_is_not_power_back() {
    if !nut_available("losing_the_ups_link_on_battery_is_not_power_back") {
        return;
    }
    let site = link_loss_site().await;
    // Quick modes: without the power-Unknown rule the link loss would read as power back and
    // release the cloud within seconds.
    let h = site.start_handler(&QUICK_MODES).await;
    let watcher = Watcher::start(&h.base_url());
    let kube = FakeKube::start(3, 3).await;
    let sim = site
        .start_nut("hold-ol.seq", NutOptions::lasting(90).nocommwarn_s(3))
        .await;
    let ups = sim.upsname();
    let kube_url = kube.url();
    let heartbeat = || async {
        site.agent(
            &["heartbeat"],
            &[
                ("BURST_AGENT_UPS", ups.as_str()),
                ("BURST_AGENT_KUBE_SOURCE", "url"),
                ("BURST_AGENT_KUBE_URL", kube_url.as_str()),
            ],
            Duration::from_secs(15),
        )
        .await
    };

    sim.set_var("ups.status", "OB DISCHRG").await;
    wait_for(&watcher, "ONBATT applied", Duration::from_secs(30), |s| {
        s.last_type == "ONBATT"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let run = heartbeat().await;
    assert_eq!(run.code, 0, "heartbeat: {}", run.stderr);
    let status = h.site_status().await;
    assert_eq!(status["mode"], "outage", "{status}");

    // Freeze the driver for 15 s while heartbeats keep coming (they read "" from upsd).
    let link_lost = async {
        sim.freeze_driver_for(Duration::from_secs(15)).await;
    };
    let beats = async {
        wait_for(&watcher, "COMMBAD applied", Duration::from_secs(30), |s| {
            s.last_type == "COMMBAD"
        })
        .await;
        for _ in 0..3 {
            let run = heartbeat().await;
            assert_eq!(run.code, 0, "heartbeat: {}", run.stderr);
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    };
    tokio::join!(link_lost, beats);
    sim.expect_notify("COMMOK", 1, Duration::from_secs(30))
        .await;
    let run = heartbeat().await;
    assert_eq!(run.code, 0, "heartbeat: {}", run.stderr);

    let history = watcher.history();
    let first_outage = history.iter().position(|s| s.mode == "outage").unwrap();
    assert!(
        history[first_outage..].iter().all(|s| s.mode == "outage"),
        "the link loss released the outage: {history:#?}"
    );
    assert!(
        history
            .iter()
            .any(|s| s.last_type == "COMMBAD" && s.health == "unknown"),
        "{history:#?}"
    );
    let status = h.site_status().await;
    assert_eq!(status["mode"], "outage", "{status}");
    assert_eq!(status["signals"]["power"]["known"], "down", "{status}");
    assert!(
        status["capacity"]["desired"].as_u64().unwrap() >= 2,
        "{status}"
    );
    let audit = status["audit"].to_string();
    assert!(!audit.contains("power back"), "{audit}");
    let changes = mode_changes(&status);
    assert!(
        changes
            .iter()
            .all(|(c, _)| !c.ends_with("recovering") && !c.ends_with("healthy")),
        "{changes:?}"
    );
}
