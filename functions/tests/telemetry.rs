//! OpenTelemetry export of `burst-handler` against a real OTLP receiver (Rotel, see `otlp/`):
//! the spans of an invocation and its metrics arrive with their names and attributes, what is
//! queued at shutdown is exported on SIGTERM, and a dead or silent collector neither fails nor
//! slows an invocation. docs/telemetry.md describes what is exported.
#![allow(clippy::unwrap_used)]

mod otlp;
mod support;

use std::time::{Duration, Instant};
use support::*;

/// Posts a signed UPS event for `home`; returns the status and the answer.
async fn ups(h: &Handler, kind: &str, status: &str) -> (u16, serde_json::Value) {
    let body = ups_body(&uuid::Uuid::new_v4().to_string(), kind, status);
    let token = sign_ed(&claims(&body), AGENT_PRIVATE_PEM);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/ups", h.base))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        // No idle keep-alive connection left behind: the handler's stop would wait for it.
        .header("connection", "close")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// SIGTERM to the handler (by its PID, as the Functions host stops it); waits for its exit.
fn stop(h: &mut Handler, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let started = Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &h.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    loop {
        if let Some(status) = h.child.try_wait().unwrap() {
            return (status, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "burst-handler did not stop within {limit:?} of SIGTERM:\n{}",
            h.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn spans_and_metrics_of_an_invocation_reach_a_real_otlp_receiver() {
    let Some(rotel) = otlp::start(
        "spans_and_metrics_of_an_invocation_reach_a_real_otlp_receiver",
        env!("CARGO_MANIFEST_DIR"),
    ) else {
        return;
    };
    let h = Handler::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &rotel.endpoint),
        ("OTEL_SERVICE_NAME", "burst-test"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
        // Export soon rather than every 5 s / 60 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
    ]);
    // LOWBATT: outage at once → a capacity write, a migration and a message.
    let (status, v) = ups(&h, "LOWBATT", "OB LB").await;
    assert_eq!((status, v["mode"].as_str()), (200, Some("outage")), "{v}");

    let got = rotel.wait_for(Duration::from_secs(20), "the invocation's spans", |r| {
        r.spans_named("invocation")
            .any(|s| s.attr("mode") == Some("outage"))
            && r.spans_named("action").count() >= 3
            && r.spans_named("save").count() >= 2
    });
    let inv = got
        .spans_named("invocation")
        .find(|s| s.attr("mode") == Some("outage"))
        .unwrap();
    assert_eq!(inv.attr("site"), Some("home"), "{inv:?}");
    assert_eq!(inv.attr("input"), Some("ups"), "{inv:?}");
    assert_eq!(inv.attr("saves"), Some("2"), "{inv:?}");
    assert!(
        inv.attr("reason").is_some_and(|r| !r.is_empty()),
        "the decision's reason: {inv:?}"
    );
    assert!(inv.parent_id.is_empty(), "a root span: {inv:?}");
    let mut keys: Vec<&str> = inv.attributes.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    let count = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), count, "each attribute once: {inv:?}");
    assert!(
        inv.events.iter().any(|e| e == "invocation done"),
        "the log lines inside the span are its events: {inv:?}"
    );
    assert_eq!(
        otlp_resource(inv, "service.name"),
        Some("burst-test"),
        "{inv:?}"
    );
    assert_eq!(
        otlp_resource(inv, "deployment.environment"),
        Some("test"),
        "{inv:?}"
    );
    // Children of this invocation: load, step, save and one span per action, each with the site.
    let children: Vec<&otlp::Span> = got
        .spans
        .iter()
        .filter(|s| s.trace_id == inv.trace_id && s.id != inv.id)
        .collect();
    for name in ["load", "step", "save", "action"] {
        let mine: Vec<_> = children.iter().filter(|s| s.name == name).collect();
        assert!(!mine.is_empty(), "no {name} span in {children:#?}");
        for s in mine {
            assert_eq!(
                s.parent_id, inv.id,
                "{name} is a child of the invocation: {s:?}"
            );
            assert_eq!(s.attr("site"), Some("home"), "{s:?}");
        }
    }
    let step = children
        .iter()
        .find(|s| s.name == "step" && s.attr("mode") == Some("outage"))
        .unwrap_or_else(|| panic!("a step into outage: {children:#?}"));
    assert!(step.attr("reason").is_some(), "{step:?}");
    let kinds: Vec<&str> = children
        .iter()
        .filter(|s| s.name == "action")
        .filter_map(|s| s.attr("kind"))
        .collect();
    for kind in ["set_capacity", "migrate", "notify"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let scale = children
        .iter()
        .find(|s| s.attr("kind") == Some("set_capacity"))
        .unwrap();
    assert!(
        scale.attr("capacity").is_some() && scale.attr("result").is_some(),
        "{scale:?}"
    );

    // The metrics, from the invocation's result.
    let got = rotel.wait_for(Duration::from_secs(20), "the metrics", |r| {
        r.points_of("burst.mode").any(|p| p.value == "2")
            && r.points_of("burst.invocation.duration").next().is_some()
    });
    let mode = got
        .points_of("burst.mode")
        .find(|p| p.value == "2")
        .unwrap();
    assert_eq!(mode.attr("site"), Some("home"), "{mode:?}");
    assert_eq!(mode.kind, "Gauge", "{mode:?}");
    let desired = got.points_of("burst.capacity.desired").last().unwrap();
    assert!(desired.value.parse::<u64>().unwrap() >= 1, "{desired:?}");
    assert!(got.points_of("burst.spend").next().is_some());
    let saves = got.points_of("burst.invocation.saves").last().unwrap();
    assert_eq!(saves.kind, "Histogram", "{saves:?}");
    let latency = got.points_of("burst.invocation.duration").last().unwrap();
    assert_eq!(latency.attr("input"), Some("ups"), "{latency:?}");
    assert_eq!(latency.attr("outcome"), Some("ok"), "{latency:?}");

    // The JSON log lines stay as they were: no span fields in them.
    let logs = h.logs();
    let done = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "invocation done")
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(
        done.get("span").is_none() && done.get("spans").is_none(),
        "{done}"
    );
}

fn otlp_resource<'a>(s: &'a otlp::Span, key: &str) -> Option<&'a str> {
    s.resource
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// With export every 10 minutes, only the shutdown flush can bring the spans and metrics.
#[tokio::test]
async fn what_is_queued_is_exported_when_the_handler_stops() {
    let Some(rotel) = otlp::start(
        "what_is_queued_is_exported_when_the_handler_stops",
        env!("CARGO_MANIFEST_DIR"),
    ) else {
        return;
    };
    let mut h = Handler::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &rotel.endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "600000"),
    ]);
    let (status, v) = ups(&h, "ONBATT", "OB DISCHRG").await;
    assert_eq!((status, v["mode"].as_str()), (200, Some("suspect")), "{v}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        rotel.received().spans.is_empty(),
        "nothing before the shutdown: {}",
        rotel.output()
    );
    let (exit, _) = stop(&mut h, Duration::from_secs(15));
    assert!(exit.success(), "{exit}\n{}", h.logs());
    let got = rotel.wait_for(
        Duration::from_secs(10),
        "the spans flushed at shutdown",
        |r| {
            r.spans_named("invocation")
                .any(|s| s.attr("mode") == Some("suspect"))
                && r.points_of("burst.mode").any(|p| p.value == "1")
        },
    );
    let inv = got.spans_named("invocation").next().unwrap();
    assert_eq!(
        otlp_resource(inv, "service.name"),
        Some("burst-handler"),
        "{inv:?}"
    );
}

/// A collector that refuses connections (a closed port) and one that accepts them and never
/// answers: every invocation still succeeds, each far below the exporter's 10 s timeout, and
/// the handler still stops promptly (its shutdown flush is bounded).
#[tokio::test]
async fn a_dead_collector_neither_fails_nor_slows_invocations() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    // Accepted by the kernel (the backlog), never read: every export waits for its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    for (what, endpoint) in [("refusing", closed), ("silent", silent_url)] {
        let mut h = Handler::start(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ]);
        let mut slowest = Duration::ZERO;
        for i in 0..20 {
            let (kind, status) = if i % 2 == 0 {
                ("ONBATT", "OB DISCHRG")
            } else {
                ("ONLINE", "OL")
            };
            let started = Instant::now();
            let (code, v) = ups(&h, kind, status).await;
            slowest = slowest.max(started.elapsed());
            assert_eq!(code, 200, "{what} collector, event {i}: {v}");
        }
        // Generous for a loaded machine, and far below the 10 s export timeout an invocation
        // would wait if it exported in line.
        assert!(
            slowest < Duration::from_secs(3),
            "{what} collector: slowest invocation {slowest:?}"
        );
        assert!(h.alive(), "{what}\n{}", h.logs());
        if what == "refusing" {
            // The exporter was on and failing, in the background.
            let deadline = Instant::now() + Duration::from_secs(15);
            while !h.logs().contains("ExportError") {
                assert!(
                    Instant::now() < deadline,
                    "no export error logged:\n{}",
                    h.logs()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let (exit, took) = stop(&mut h, Duration::from_secs(20));
        assert!(exit.success(), "{what}: {exit}\n{}", h.logs());
        eprintln!("{what} collector: slowest invocation {slowest:?}, stopped in {took:?}");
    }
    drop(silent);
}

/// Without the settings nothing is exported: no export thread, and the log says nothing of it.
#[tokio::test]
async fn without_an_endpoint_nothing_is_exported() {
    let mut h = Handler::start(&[]);
    let (status, _) = ups(&h, "ONBATT", "OB DISCHRG").await;
    assert_eq!(status, 200);
    let threads = std::fs::read_dir(format!("/proc/{}/task", h.child.id()))
        .unwrap()
        .filter_map(|t| {
            let t = t.ok()?;
            std::fs::read_to_string(t.path().join("comm")).ok()
        })
        .collect::<Vec<_>>();
    assert!(
        !threads.iter().any(|t| t.contains("OpenTelemetry")),
        "{threads:?}"
    );
    assert!(!h.logs().contains("telemetry"), "{}", h.logs());
    assert!(h.alive());
}

/// An endpoint the exporter cannot use is logged, and the handler serves without export.
#[tokio::test]
async fn a_bad_endpoint_is_logged_and_the_handler_runs_without_export() {
    let mut h = Handler::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")]);
    let (status, _) = ups(&h, "ONBATT", "OB DISCHRG").await;
    assert_eq!(status, 200);
    let logs = h.logs();
    assert!(logs.contains("exporter not built"), "{logs}");
    assert!(!logs.contains("OpenTelemetry export on"), "{logs}");
    assert!(h.alive());
}
