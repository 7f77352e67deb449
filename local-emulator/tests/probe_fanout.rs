//! The probe fanned out through the wake-up queue over two handler processes: with
//! `BURST_PROBE_FANOUT=queue` the timer sends one message per site to Azurite's queue, the
//! host's queue trigger hands them to `wake` on both instances in turn, and every site is
//! probed once, by one of them.
#![allow(clippy::unwrap_used)]

mod host_support;

use burst_store_sim::azurite::Azurite;
use func_emulator::host::queue::StorageConnection;
use func_emulator::host::{Host, HostConfig};
use host_support::{client, real_app, wait_showing_log};
use serde_json::{Value, json};
use std::time::Duration;

const QUEUE: &str = "burst-wake";
const SITES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

#[tokio::test]
async fn two_handler_processes_share_the_sweep_through_the_queue() {
    let Some(azurite) = Azurite::start_queue_for_tests().await.unwrap() else {
        return;
    };
    let queue = StorageConnection::parse(&azurite.connection_string())
        .unwrap()
        .queue(QUEUE)
        .unwrap();
    queue.create(None).await.unwrap();
    let dir = real_app();
    let state = tempfile::tempdir().unwrap();
    let mut cfg = HostConfig::new(dir.path());
    cfg.instances = 2;
    for (k, v) in [
        ("BURST_SITES", SITES.join(",")),
        ("BURST_PROBE_FANOUT", "queue".into()),
        // The schedule never fires by itself: the test runs the timer once.
        ("BURST_PROBE_SCHEDULE", "0 0 0 1 1 *".into()),
        ("BURST_WAKE_QUEUE", QUEUE.into()),
        ("BURST_WAKE_QUEUE_URL", azurite.queue_url(QUEUE)),
        ("AzureWebJobsStorage", azurite.connection_string()),
        (
            "BURST_STATE_URL",
            format!("file://{}", state.path().display()),
        ),
    ] {
        cfg.settings.insert(k.to_string(), v);
    }
    let h = Host::start(cfg).await.unwrap();
    let c = client();
    let resp = c
        .post(format!("{}/admin/functions/probe", h.base_url()))
        .header("x-functions-key", h.master_key())
        .json(&json!({"input": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);

    // Each site is probed by a `wake` invocation on one instance or the other: that process
    // logs the site's invocation (its lines carry the instance's prefix).
    let probed = |site: &str, instance: usize| {
        let prefix = format!("[{instance}] ");
        let done = format!(r#""message":"invocation done","site":"{site}""#);
        h.logs()
            .iter()
            .any(|l| l.text.starts_with(&prefix) && l.text.contains(&done))
    };
    wait_showing_log(
        &h,
        "every site to be probed",
        Duration::from_secs(60),
        || SITES.iter().all(|s| probed(s, 0) || probed(s, 1)),
    )
    .await;
    let logs = h.logs();
    let timer_line = logs.iter().any(|l| {
        l.text
            .contains("probe: 6 site(s) handed to the queue, 0 probed here")
    });
    assert!(timer_line, "the timer handed every site to the queue");
    for site in SITES {
        let line = format!("probe {site}: mode healthy");
        assert_eq!(
            logs.iter().filter(|l| l.text.contains(&line)).count(),
            1,
            "{site}: one wake invocation probed it"
        );
    }
    for site in SITES {
        assert!(
            !(probed(site, 0) && probed(site, 1)),
            "{site} was probed twice"
        );
    }
    let per_instance: Vec<usize> = (0..2)
        .map(|i| SITES.iter().filter(|s| probed(s, i)).count())
        .collect();
    assert!(
        per_instance.iter().all(|n| *n > 0),
        "both processes took part: {per_instance:?}"
    );
    // Every site's state carries the probe's view.
    let status: Value = c
        .get(format!("{}/api/status", h.base_url()))
        .header("x-functions-key", h.function_key("status").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sites = status["sites"].as_array().unwrap();
    assert_eq!(sites.len(), SITES.len());
    for s in sites {
        assert_eq!(s["mode"], "healthy", "{s}");
    }
    h.shutdown().await;
    println!("probe fan-out over two instances: {per_instance:?} sites each");
}
