//! The timer probe over several sites: a site whose home API never answers is decided after
//! its own timeout, and the other sites are decided without waiting for it.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use burst_core::{ApiProbe, NodeCount, Timestamp};
use burst_functions::deps::Deps;
use burst_functions::settings::{Settings, SiteSettings};
use burst_functions::sites::{Site, Sites};
use burst_ports::HomeProbe;
use burst_store_sim::RecordSaves;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A file store that logs which site was saved, in order.
type Recording = RecordSaves<burst_store::FileStore>;

fn recording(dir: &std::path::Path) -> Arc<Recording> {
    Arc::new(RecordSaves::new(burst_store::FileStore::new(dir)))
}

/// A home API that answers at once, or never.
struct Home {
    answers: bool,
}

#[async_trait]
impl HomeProbe for Home {
    async fn observe(&self) -> ApiProbe {
        if !self.answers {
            std::future::pending::<()>().await;
        }
        ApiProbe::Ready {
            latency_ms: 3,
            nodes: Some(NodeCount { ready: 3, total: 3 }),
        }
    }
}

fn site(id: &str, answers: bool) -> Site {
    let get = |_: &str| None;
    let mut s = Site::new(id, SiteSettings::from_settings(&get).unwrap());
    s.home = Some(Arc::new(Home { answers }));
    s
}

/// What the probe runs on: `sites` (id, whether its home API answers) in this order with their
/// states in `store`, probed `concurrency` at a time with `timeout` each; handed to `queue`
/// when there is one.
fn deps(
    store: &Arc<Recording>,
    sites: &[(&str, bool)],
    concurrency: usize,
    timeout: Duration,
    queue: Option<Arc<Queue>>,
) -> Arc<Deps> {
    Arc::new(Deps {
        settings: Settings {
            sites: sites.iter().map(|(id, _)| id.to_string()).collect(),
            body_timeout: Duration::from_secs(10),
            probe_concurrency: concurrency,
            probe_site_timeout: timeout,
            probe_via_queue: queue.is_some(),
        },
        sites: Sites::new(
            sites
                .iter()
                .map(|&(id, answers)| site(id, answers))
                .collect(),
        ),
        store: store.clone(),
        clock: Arc::new(|| Timestamp::from_millis(chrono::Utc::now().timestamp_millis())),
        clock_scale: 1.0,
        waker: queue.map(|q| q as Arc<dyn burst_ports::Waker>),
        parsed: Default::default(),
    })
}

#[tokio::test]
async fn a_dead_home_api_delays_only_its_own_site() {
    let dir = tempfile::tempdir().unwrap();
    let store = recording(dir.path());
    let timeout = Duration::from_millis(400);
    // The dead one first: a sequential sweep would make the others wait for it.
    let sites = [("dark", false), ("lit", true), ("office", true)];
    let deps = deps(&store, &sites, 8, timeout, None);
    let line = burst_functions::bodies::probe(&deps).await.unwrap();
    assert!(line.starts_with("probe: 3 site(s)"), "{line}");
    // Each site saves its step (and the outcomes of what it did): the dead site's first save
    // comes after every save of the others.
    let saves: Vec<String> = store.saves().into_iter().map(|(s, _)| s).collect();
    let first_dark = saves.iter().position(|s| s == "dark").unwrap();
    assert!(
        saves[..first_dark].iter().any(|s| s == "lit")
            && saves[..first_dark].iter().any(|s| s == "office")
            && saves[first_dark..].iter().all(|s| s == "dark"),
        "the others were decided before the dead API's timeout: {saves:?}"
    );
    // The dead site was still decided, with its API as unknown (not down) and why.
    let dark = burst_functions::engine::peek(&deps, "dark").await.unwrap();
    let api = serde_json::to_string(&dark.signals).unwrap();
    assert!(api.contains("no answer within 400 ms"), "{api}");
    let lit = burst_functions::engine::peek(&deps, "lit").await.unwrap();
    assert!(
        serde_json::to_string(&lit.signals)
            .unwrap()
            .contains("ready")
    );
}

#[tokio::test]
async fn with_one_at_a_time_the_sweep_keeps_the_order() {
    // The concurrency bound is real: one at a time, the sites are decided in their order.
    let dir = tempfile::tempdir().unwrap();
    let store = recording(dir.path());
    let sites = [("dark", false), ("lit", true)];
    let deps = deps(&store, &sites, 1, Duration::from_millis(200), None);
    burst_functions::bodies::probe(&deps).await.unwrap();
    assert_eq!(store.order(), ["dark", "lit"]);
}

/// Records the queue messages; refuses them all when `refuse`.
struct Queue {
    sent: Mutex<Vec<burst_ports::WakeUp>>,
    refuse: bool,
}

#[async_trait]
impl burst_ports::Waker for Queue {
    async fn schedule(&self, wake: &burst_ports::WakeUp, delay: Duration) -> Result<(), String> {
        if self.refuse {
            return Err("queue unreachable".into());
        }
        assert_eq!(delay, Duration::ZERO, "a probe is due now");
        self.sent.lock().unwrap().push(wake.clone());
        Ok(())
    }
}

/// Two sites probed through a queue that refuses every message when `refuse`.
fn fanout_deps(dir: &std::path::Path, refuse: bool) -> (Arc<Deps>, Arc<Recording>, Arc<Queue>) {
    let store = recording(dir);
    let queue = Arc::new(Queue {
        sent: Mutex::new(Vec::new()),
        refuse,
    });
    let sites = [("lit", true), ("office", true)];
    let deps = deps(
        &store,
        &sites,
        8,
        Duration::from_secs(5),
        Some(queue.clone()),
    );
    (deps, store, queue)
}

#[tokio::test]
async fn with_the_queue_each_site_is_probed_by_its_own_message() {
    let dir = tempfile::tempdir().unwrap();
    let (deps, store, queue) = fanout_deps(dir.path(), false);
    let line = burst_functions::bodies::probe(&deps).await.unwrap();
    assert_eq!(line, "probe: 2 site(s) handed to the queue, 0 probed here");
    assert!(store.saves().is_empty(), "nothing probed yet");
    let sent = queue.sent.lock().unwrap().clone();
    assert_eq!(
        sent.iter()
            .map(|w| (w.site.as_str(), w.probe))
            .collect::<Vec<_>>(),
        [("lit", true), ("office", true)]
    );
    // Each message, as the queue trigger hands it over, probes its site.
    for w in &sent {
        let text = serde_json::to_string(w).unwrap();
        assert!(text.contains(r#""probe":true"#), "{text}");
        let out = burst_functions::bodies::wake(&deps, &serde_json::Value::String(text))
            .await
            .unwrap();
        assert!(
            out.starts_with(&format!("probe {}: mode healthy", w.site)),
            "{out}"
        );
    }
    assert_eq!(store.order(), ["lit", "office"]);
}

#[tokio::test]
async fn a_site_whose_message_cannot_be_queued_is_probed_by_the_timer() {
    let dir = tempfile::tempdir().unwrap();
    let (deps, store, _queue) = fanout_deps(dir.path(), true);
    let line = burst_functions::bodies::probe(&deps).await.unwrap();
    assert_eq!(line, "probe: 0 site(s) handed to the queue, 2 probed here");
    assert_eq!(store.order(), ["lit", "office"]);
}
