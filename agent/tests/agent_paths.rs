//! The real `burst-agent` binary against the checking receiver and a fake upsd: every path
//! that does not need a real NUT stack (those are in `nut_notify.rs`).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::Harness;
use support::fake_upsd::{Behaviour, FakeUpsd};

async fn ups_on_battery() -> FakeUpsd {
    FakeUpsd::start(
        "myups",
        &[
            ("ups.status", "OB DISCHRG"),
            ("battery.charge", "57.6"),
            ("battery.runtime", "612"),
        ],
    )
    .await
}

/// A harness with a notify budget of `budget_ms` and a UPS on battery, with the UPS's name.
async fn on_battery_with_budget(budget_ms: &str) -> (Harness, FakeUpsd, String) {
    let mut h = Harness::new().await;
    h.set("BURST_AGENT_NOTIFY_BUDGET_MS", budget_ms);
    let upsd = ups_on_battery().await;
    let ups = upsd.upsname("myups");
    (h, upsd, ups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_sends_a_signed_event_with_a_status_snapshot() {
    let h = Harness::new().await;
    let upsd = ups_on_battery().await;
    let upsname = upsd.upsname("myups");
    let run = h.notify("ONBATT", &upsname).await;
    assert_eq!(run.code, 0, "{run:?}");

    let got = h.receiver.accepted_on("/api/ups");
    assert_eq!(got.len(), 1, "{}", h.receiver.describe());
    let e = &got[0].body;
    assert_eq!(e["type"], "ONBATT");
    assert_eq!(e["ups"], upsname.as_str());
    assert_eq!(e["status"], "OB DISCHRG");
    assert_eq!(e["battery_charge"], 58, "rounded to a whole percent");
    assert_eq!(e["battery_runtime_s"], 612);
    assert_eq!(got[0].alg, jsonwebtoken::Algorithm::EdDSA);
    assert!(h.spooled().is_empty(), "delivered events leave the spool");
    // The message argument went through a shell in upsmon; it must never be evaluated.
    assert!(!std::path::Path::new("/tmp/never").exists());
    assert!(
        !run.stderr.contains(support::FUNCTION_KEY),
        "the function key is never logged"
    );
    assert!(!run.stderr.contains("Bearer"), "tokens are never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_works_too() {
    let h = Harness::new_hs256("a-long-shared-secret-for-tests").await;
    let upsd = ups_on_battery().await;
    let run = h.notify("ONLINE", &upsd.upsname("myups")).await;
    assert_eq!(run.code, 0, "{run:?}");
    let got = h.receiver.accepted_on("/api/ups");
    assert_eq!(got.len(), 1, "{}", h.receiver.describe());
    assert_eq!(got[0].alg, jsonwebtoken::Algorithm::HS256);
    assert!(
        !run.stderr.contains("a-long-shared-secret"),
        "secrets are never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commloss_is_reported_as_unknown_power() {
    let h = Harness::new().await;
    let upsd = ups_on_battery().await;
    // upsmon says it lost the UPS: no query, status "" and no battery fields.
    for t in ["COMMBAD", "NOCOMM"] {
        assert_eq!(h.notify(t, &upsd.upsname("myups")).await.code, 0);
    }
    // upsd answers, but not with data: also unknown.
    upsd.behave(Behaviour::Err("DATA-STALE"));
    assert_eq!(h.notify("ONBATT", &upsd.upsname("myups")).await.code, 0);
    upsd.behave(Behaviour::Err("DRIVER-NOT-CONNECTED"));
    assert_eq!(h.notify("LOWBATT", &upsd.upsname("myups")).await.code, 0);
    // upsd not there at all.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    assert_eq!(
        h.notify("ONBATT", &format!("myups@127.0.0.1:{closed}"))
            .await
            .code,
        0
    );

    let got = h.receiver.accepted_on("/api/ups");
    let types: Vec<&str> = got
        .iter()
        .map(|a| a.body["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["COMMBAD", "NOCOMM", "ONBATT", "LOWBATT", "ONBATT"]);
    for a in &got {
        assert_eq!(a.body["status"], "", "{}", a.body);
        assert!(a.body.get("battery_charge").is_none(), "{}", a.body);
        assert!(a.body.get("battery_runtime_s").is_none(), "{}", a.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_down_spools_in_order_and_heartbeat_delivers_later() {
    let (h, upsd, ups) = on_battery_with_budget("1500").await;

    h.receiver.refuse().await;
    let mut sent = Vec::new();
    for (t, status) in [
        ("ONBATT", "OB DISCHRG"),
        ("LOWBATT", "OB DISCHRG LB"),
        ("ONLINE", "OL CHRG"),
    ] {
        upsd.set("ups.status", status);
        let run = h.notify(t, &ups).await;
        assert_eq!(run.code, 0, "spooled is success for upsmon: {run:?}");
        eprintln!(
            "notify {t} with the cloud down returned in {:?}",
            run.elapsed
        );
        assert!(
            run.elapsed < Duration::from_secs(10),
            "must return to upsmon promptly"
        );
        sent.push((t, status));
    }
    assert_eq!(h.spooled().len(), 3);
    assert_eq!(h.receiver.accepted().len(), 0);

    h.receiver.resume().await;
    let run = h.run(&["heartbeat"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");

    let got = h.receiver.accepted();
    let routes: Vec<&str> = got.iter().map(|a| a.route.as_str()).collect();
    assert_eq!(
        routes,
        ["/api/ups", "/api/ups", "/api/ups", "/api/heartbeat"],
        "{}",
        h.receiver.describe()
    );
    for (a, (t, status)) in got.iter().zip(&sent) {
        assert_eq!(a.body["type"], *t);
        assert_eq!(a.body["status"], *status);
    }
    let hb = &got[3].body;
    assert_eq!(hb["api_ok"], false, "kube_source none");
    assert_eq!(
        (hb["nodes_ready"].as_u64(), hb["nodes_total"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(
        hb.get("ups_status").is_none(),
        "no `ups` configured: no field"
    );
    assert!(h.spooled().is_empty());
    assert!(h.receiver.duplicates().is_empty(), "nothing sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_keeps_events_spooled_and_the_next_notify_sends_them_first() {
    let (h, _upsd, ups) = on_battery_with_budget("1200").await;

    h.receiver.set_unavailable(true);
    assert_eq!(h.notify("ONBATT", &ups).await.code, 0);
    assert_eq!(h.notify("LOWBATT", &ups).await.code, 0);
    assert_eq!(h.spooled().len(), 2);
    assert!(h.receiver.requests() >= 2, "it did try");

    h.receiver.set_unavailable(false);
    assert_eq!(h.notify("ONLINE", &ups).await.code, 0);
    let types = h.receiver.accepted_strings("/api/ups", "type");
    assert_eq!(types, ["ONBATT", "LOWBATT", "ONLINE"]);
    assert!(h.spooled().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_refusals_go_to_rejected_and_do_not_block_the_queue() {
    let mut h = Harness::new().await;
    let upsd = ups_on_battery().await;
    let ups = upsd.upsname("myups");

    h.set("BURST_AGENT_FUNCTION_KEY", "wrong-key");
    let run = h.notify("ONBATT", &ups).await;
    assert_eq!(run.code, 0);
    assert!(run.stderr.contains("rejected"), "{}", run.stderr);
    assert!(!run.stderr.contains("wrong-key"), "the key is not logged");
    assert_eq!(h.rejected().len(), 1);
    assert!(h.spooled().is_empty());
    let refused = h.receiver.refused();
    assert_eq!(refused.len(), 1, "a 401 is not retried");
    assert_eq!(refused[0].status, 401);
    let reason = std::fs::read_to_string(format!("{}.reason", h.rejected()[0].display())).unwrap();
    assert!(reason.starts_with("HTTP 401"), "{reason}");

    h.set("BURST_AGENT_FUNCTION_KEY", support::FUNCTION_KEY);
    assert_eq!(h.notify("ONLINE", &ups).await.code, 0);
    assert_eq!(h.receiver.accepted_on("/api/ups").len(), 1);
    assert_eq!(
        h.rejected().len(),
        1,
        "rejected events stay where an operator can look"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hooks_send_each_spooled_event_exactly_once() {
    let (mut h, _upsd, ups) = on_battery_with_budget("1000").await;

    h.receiver.refuse().await;
    for i in 0..6 {
        let t = format!("TYPE{i}");
        assert_eq!(h.notify(&t, &ups).await.code, 0);
    }
    assert_eq!(h.spooled().len(), 6);
    h.receiver.resume().await;

    // upsmon forks one hook per event: several at once, all flushing the same spool.
    h.set("BURST_AGENT_NOTIFY_BUDGET_MS", "8000");
    let runs = tokio::join!(
        h.notify("CONC0", &ups),
        h.notify("CONC1", &ups),
        h.notify("CONC2", &ups),
        h.notify("CONC3", &ups),
    );
    for r in [&runs.0, &runs.1, &runs.2, &runs.3] {
        assert_eq!(r.code, 0, "{r:?}");
    }
    let got = h.receiver.accepted_on("/api/ups");
    assert_eq!(got.len(), 10, "{}", h.receiver.describe());
    assert!(
        h.receiver.duplicates().is_empty(),
        "a spooled file was sent twice: {}",
        h.receiver.describe()
    );
    let first_six: Vec<String> = got[..6]
        .iter()
        .map(|a| a.body["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        first_six,
        ["TYPE0", "TYPE1", "TYPE2", "TYPE3", "TYPE4", "TYPE5"],
        "old events first, in order"
    );
    assert!(h.spooled().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_function_does_not_hold_upsmon() {
    let mut h = Harness::new().await;
    // Accepts connections, never answers.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = blackhole.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = blackhole.accept().await {
            conns.push(c);
        }
    });
    h.set("BURST_AGENT_BASE_URL", &format!("http://{addr}"));
    h.set("BURST_AGENT_NOTIFY_BUDGET_MS", "2000");
    let upsd = ups_on_battery().await;
    let run = h.notify("ONBATT", &upsd.upsname("myups")).await;
    eprintln!(
        "notify against a hanging function returned in {:?}",
        run.elapsed
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.elapsed < Duration::from_secs(8),
        "budget 2 s, took {:?}",
        run.elapsed
    );
    assert_eq!(h.spooled().len(), 1);
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_command_prints_the_answer_and_round_trip() {
    let mut h = Harness::new().await;
    let upsd = ups_on_battery().await;
    h.set("BURST_AGENT_UPS", &upsd.upsname("myups"));
    let run = h.run(&["test"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("-> HTTP 200 in "), "{}", run.stdout);
    assert!(run.stdout.contains("\"accepted\":true"), "{}", run.stdout);
    let got = h.receiver.accepted_on("/api/ups");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["type"], "TEST");
    assert_eq!(got[0].body["status"], "OB DISCHRG", "the live status");
    assert!(h.spooled().is_empty(), "test events are never spooled");

    h.receiver.set_unavailable(true);
    let run = h.run(&["test"], &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("HTTP 503") && run.stdout.contains("NOT accepted"),
        "{}",
        run.stdout
    );

    h.receiver.refuse().await;
    let run = h.run(&["test"], &[]).await;
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("no reply"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_reports_nodes_from_the_kubernetes_api() {
    use axum::{Json, Router, routing::get};
    let nodes = serde_json::json!({
        "apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "1"},
        "items": [
            node("cp-1", "True"), node("worker-1", "True"), node("worker-2", "False"),
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "new"}}
        ]
    });
    let app = Router::new().route("/api/v1/nodes", get(move || async move { Json(nodes) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let api = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut h = Harness::new().await;
    let upsd = ups_on_battery().await;
    h.set("BURST_AGENT_UPS", &upsd.upsname("myups"));
    h.set("BURST_AGENT_KUBE_SOURCE", "url");
    h.set("BURST_AGENT_KUBE_URL", &url);
    let run = h.run(&["heartbeat"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let hb = &h.receiver.accepted_on("/api/heartbeat")[0].body;
    assert_eq!(hb["nodes_ready"], 2);
    assert_eq!(hb["nodes_total"], 4);
    assert_eq!(hb["api_ok"], true);
    assert_eq!(hb["ups_status"], "OB DISCHRG");

    // API gone, upsd stale: api_ok false with 0/0, and the UPS status unknown ("").
    api.abort();
    let _ = api.await;
    upsd.behave(Behaviour::Err("DATA-STALE"));
    let run = h.run(&["heartbeat"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let hb = &h.receiver.accepted_on("/api/heartbeat")[1].body;
    assert_eq!(hb["api_ok"], false);
    assert_eq!(
        (hb["nodes_ready"].as_u64(), hb["nodes_total"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(hb["ups_status"], "");

    // The cloud down: heartbeat fails (exit 1) and is not spooled.
    h.receiver.refuse().await;
    h.set("BURST_AGENT_HEARTBEAT_BUDGET_MS", "1500");
    let run = h.run(&["heartbeat"], &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(h.spooled().is_empty());
}

fn node(name: &str, ready: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"conditions": [
            {"type": "MemoryPressure", "status": "False"},
            {"type": "Ready", "status": ready}
        ]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_reports_reachability() {
    let mut h = Harness::new().await;
    let home = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("tcp://{}", home.local_addr().unwrap());
    h.set("BURST_AGENT_WITNESS_TARGET", &target);
    let run = h.run(&["witness"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    drop(home);
    let run = h.run(&["witness"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    // An HTTP target: any HTTP answer means reachable (here the receiver's 405 for GET).
    let http_target = format!("{}/api/ups", h.receiver.base_url());
    let run = h.run(&["witness", "--target", &http_target], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");

    let got = h.receiver.accepted_on("/api/witness");
    assert_eq!(got.len(), 3, "{}", h.receiver.describe());
    assert_eq!(got[0].body["target"], target.as_str());
    assert_eq!(got[0].body["reachable"], true);
    assert!(got[0].body["latency_ms"].is_u64());
    assert_eq!(got[1].body["reachable"], false);
    assert!(got[1].body.get("latency_ms").is_none());
    assert_eq!(got[2].body["reachable"], true);

    let run = h
        .run(&["witness", "--target", "home.example:443"], &[])
        .await;
    assert_eq!(run.code, 2, "a bad target is a configuration error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_output_signs_and_verifies() {
    let h = Harness::new().await;
    let run = h.run(&["keygen"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let private_end = run.stdout.find("-----END PRIVATE KEY-----\n").unwrap() + 26;
    let (private, public) = run.stdout.split_at(private_end);
    assert!(
        public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{public}"
    );

    let signer = burst_agent::auth::Signer::ed25519_pem("site", private.as_bytes()).unwrap();
    let token = signer.token(b"{}", chrono::Utc::now().timestamp()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["hybrid-burst"]);
    let key = jsonwebtoken::DecodingKey::from_ed_pem(public.as_bytes()).unwrap();
    jsonwebtoken::decode::<burst_agent::auth::Claims>(&token, &key, &v).unwrap();

    // --private-key-out: 0600 file, public key only on stdout, never overwrites.
    let path = h.tmp.path().join("agent.pem");
    let keygen = ["keygen", "--private-key-out", path.to_str().unwrap()];
    let run = h.run(&keygen, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stdout.contains("PRIVATE"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let run = h.run(&keygen, &[]).await;
    assert_eq!(run.code, 1, "refuses to overwrite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_without_upsmon_env_is_a_usage_error_and_config_typos_still_spool() {
    let h = Harness::new().await;
    let run = h.run(&["notify", "msg"], &[]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("NOTIFYTYPE"), "{}", run.stderr);

    // A typo in the config file must not lose an event: the file is ignored for this
    // event, the environment still applies.
    let upsd = ups_on_battery().await;
    std::fs::write(&h.config, "spool_dirr = '/nowhere'\n").unwrap();
    let run = h
        .run(
            &["notify", "x"],
            &[
                ("NOTIFYTYPE", "ONBATT"),
                ("UPSNAME", &upsd.upsname("myups")),
            ],
        )
        .await;
    assert!(run.stderr.contains("spool_dirr"), "{}", run.stderr);
    assert_eq!(
        h.receiver.accepted_on("/api/ups").len(),
        1,
        "{}",
        h.receiver.describe()
    );
    // Other commands refuse to run on a broken file.
    assert_eq!(h.run(&["heartbeat"], &[]).await.code, 2);
}
