//! `burst-agent test` against the real function app: the whole signed path without pulling the
//! plug. Accepted → exit 0 with the function's answer printed; signed with a key the function
//! does not know → exit 1 with the 401 printed, and nothing stored.
//!
//! No NUT needed: without a `ups` setting the event carries an empty status (power unknown).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use burst_e2e::*;
use serde_json::{Value, json};

/// The line after `POST <url> -> HTTP <code> in <n> ms`: the function's answer.
fn answer(stdout: &str, url: &str, code: u16) -> Value {
    let mut lines = stdout.lines();
    let head = format!("POST {url} -> HTTP {code} in ");
    lines
        .by_ref()
        .find(|l| l.starts_with(&head) && l.ends_with(" ms"))
        .unwrap_or_else(|| panic!("no `{head}... ms` line in:\n{stdout}"));
    let body = lines
        .next()
        .unwrap_or_else(|| panic!("no answer in:\n{stdout}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {body}"))
}

/// The event the agent printed before sending (`sending: {...}`).
fn sent(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sending: "))
        .unwrap_or_else(|| panic!("no `sending:` line in:\n{stdout}"));
    serde_json::from_str(line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_command_is_accepted_and_a_wrong_key_gets_the_401() {
    let site = Site::new().await;
    let h = site.start_handler(&[]).await;
    let url = format!("{}/api/ups", h.base_url());

    let run = site.agent(&["test"], &[], Duration::from_secs(15)).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let event = sent(&run.stdout);
    assert_eq!(event["type"], "TEST");
    assert_eq!(event["status"], "");
    assert!(
        run.stdout.contains("note: UPS status unknown"),
        "{}",
        run.stdout
    );
    assert_eq!(
        answer(&run.stdout, &url, 200),
        json!({"ok": true, "duplicate": false, "site": SITE, "mode": "healthy", "capacity": 0})
    );
    assert_eq!(
        run.stdout.lines().last(),
        Some("accepted"),
        "{}",
        run.stdout
    );

    // The function stored it (one event id) and shows it in the status' audit, but a TEST is
    // harmless: no power reading, no incident line, not an unknown type.
    let state = h.state();
    assert_eq!(
        ups_keys(&state),
        [format!("ups:{}", event["id"].as_str().unwrap())]
    );
    let status = h.site_status().await;
    let power = &status["signals"]["power"];
    assert_eq!(power["last_type"], Value::Null, "{status}");
    assert_eq!(power["health"], "unknown");
    assert_eq!(status["mode"], "healthy");
    assert!(power["unknown"].as_array().unwrap().is_empty(), "{status}");
    assert!(
        status["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["what"] == "UPS TEST recorded"),
        "{status}"
    );

    // A key pair the function was not configured with.
    let other = site.tmp.path().join("other.pem");
    let keygen = tokio::process::Command::new(agent_bin())
        .arg("keygen")
        .arg("--private-key-out")
        .arg(&other)
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(keygen.status.success());
    let other = other.display().to_string();
    let run = site
        .agent(
            &["test"],
            &[("BURST_AGENT_ED25519_KEY_FILE", other.as_str())],
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let refused = answer(&run.stdout, &url, 401);
    assert_eq!(refused["error"], "invalid_token", "{refused}");
    assert!(refused["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(
        run.stdout.lines().last(),
        Some("NOT accepted"),
        "{}",
        run.stdout
    );
    // Nothing stored for the refused event.
    assert_eq!(ups_keys(&h.state()).len(), 1);
    // `test` never spools: nothing is left to be re-sent later.
    assert!(site.spooled().is_empty() && site.rejected().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_command_with_the_function_down_says_so() {
    let site = Site::new().await;
    // Nobody listens on the site's port.
    let run = site.agent(&["test"], &[], Duration::from_secs(15)).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let url = format!("http://127.0.0.1:{}/api/ups", site.port);
    assert!(
        run.stdout.contains(&format!("POST {url} -> no reply: ")),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().last(), Some("NOT accepted"));
    assert!(site.spooled().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_command_reads_the_real_ups() {
    if !nut_available("test_command_reads_the_real_ups") {
        return;
    }
    let site = Site::new().await;
    let h = site.start_handler(&[]).await;
    let sim = NutSim::start(
        &site.tmp.path().join("nut"),
        &scenario("hold-ol.seq"),
        NutOptions::lasting(40),
    )
    .await;
    let ups = sim.upsname();
    let run = site
        .agent(&["test", "--ups", &ups], &[], Duration::from_secs(15))
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let event = sent(&run.stdout);
    assert_eq!(event["ups"], ups.as_str());
    assert_eq!(event["status"], "OL");
    assert_eq!(event["battery_charge"], 100);
    let url = format!("{}/api/ups", h.base_url());
    assert_eq!(answer(&run.stdout, &url, 200)["mode"], "healthy");
    // Recorded with the live status it carried, never applied as a power reading.
    let status = h.site_status().await;
    let power = &status["signals"]["power"];
    assert_eq!(power["health"], "unknown", "{status}");
    assert!(
        status["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["what"] == "UPS TEST recorded"
                && e["why"].as_str().unwrap_or("").contains("[OL]")),
        "{status}"
    );
}
