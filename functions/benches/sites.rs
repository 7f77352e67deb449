//! Many sites on one handler: `SITES` sites (1 000 by default), each sending a signed heartbeat
//! every 30 s, and the timer probe every 30 s sweeping all of them, for `CYCLES` cycles (2) at
//! real time. It runs the handler's own bodies in this process (`bodies::http` for the
//! heartbeats, `bodies::probe` for the sweep) with the production file store on disk; each
//! site's adapters are in-process stand-ins with a service's latency: home API 5–50 ms, scale
//! set 20–80 ms, devices 10–40 ms, and one site whose home API never answers (it is decided
//! after `BURST_PROBE_SITE_TIMEOUT_MS`). Sockets are left out: 1 000 distinct scale sets and
//! home APIs would need 1 000 simulators.
//!
//! Prints: each sweep's duration, per-site decision latency (the site's first observation to
//! its last save) p50/p99/max, heartbeat latency p50/p99, CPU seconds and peak RSS.
//!
//! `cargo bench -p burst-functions --bench sites` (SITES, CYCLES, CONCURRENCY to change).

use async_trait::async_trait;
use burst_core::{ApiProbe, DevicesProbe, NodeCount, ScaleResult, ScaleSetProbe, Timestamp};
use burst_functions::bodies::{self, Function};
use burst_functions::deps::Deps;
use burst_functions::http::Request;
use burst_functions::settings::{Settings, SiteSettings};
use burst_functions::sites::{Site, Sites};
use burst_ports::{DeviceList, HomeProbe, Scaler};
use burst_store_sim::RecordSaves;
use burst_wire::Signer;

mod support;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{cpu_ms, pct, peak_rss_kb, signed_heartbeat};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// When each site was first observed in the sweep under way.
#[derive(Default)]
struct Marks {
    observed: Mutex<HashMap<String, Instant>>,
}

impl Marks {
    fn observe(&self, site: &str) {
        let mut m = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(site.to_string()).or_insert_with(Instant::now);
    }
    fn clear(&self) {
        self.observed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

async fn latency(range_ms: (u64, u64)) {
    tokio::time::sleep(Duration::from_millis(fastrand::u64(
        range_ms.0..=range_ms.1,
    )))
    .await;
}

struct Home {
    site: String,
    marks: Arc<Marks>,
    dead: bool,
}

#[async_trait]
impl HomeProbe for Home {
    async fn observe(&self) -> ApiProbe {
        self.marks.observe(&self.site);
        if self.dead {
            std::future::pending::<()>().await;
        }
        latency((5, 50)).await;
        ApiProbe::Ready {
            latency_ms: 12,
            nodes: Some(NodeCount { ready: 7, total: 7 }),
        }
    }
}

struct ScaleSet {
    site: String,
    marks: Arc<Marks>,
}

#[async_trait]
impl Scaler for ScaleSet {
    async fn set_capacity(&self, capacity: u32) -> ScaleResult {
        latency((50, 150)).await;
        ScaleResult::Accepted {
            capacity,
            running: None,
        }
    }
    async fn observe(&self) -> ScaleSetProbe {
        self.marks.observe(&self.site);
        latency((20, 80)).await;
        ScaleSetProbe::Seen {
            capacity: 0,
            running: 0,
        }
    }
}

struct Devices;

#[async_trait]
impl DeviceList for Devices {
    async fn observe(&self) -> DevicesProbe {
        latency((10, 40)).await;
        DevicesProbe::Seen {
            online: 7,
            total: 7,
        }
    }
}

fn heartbeat(site: &str, signer: &Signer) -> Request {
    let (body, token) = signed_heartbeat(site, signer, "sites", false);
    Request {
        method: "POST".into(),
        path: "/api/heartbeat".into(),
        headers: vec![
            ("authorization".into(), format!("Bearer {token}")),
            ("content-type".into(), "application/json".into()),
        ],
        body,
    }
}

#[tokio::main]
async fn main() {
    let n = env_usize("SITES", 1_000);
    let cycles = env_usize("CYCLES", 2);
    let concurrency = env_usize("CONCURRENCY", 32);
    let site_timeout = Duration::from_secs(20);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let marks = Arc::new(Marks::default());
    let ids: Vec<String> = (0..n).map(|i| format!("site-{i:04}")).collect();
    let get = |name: &str| (name == "BURST_AGENT_HS256_SECRET").then(|| SECRET.to_string());
    let sites: Vec<Site> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let settings = SiteSettings::from_settings(&get).unwrap_or_else(|e| panic!("{e}"));
            let mut s = Site::new(id.clone(), settings);
            s.home = Some(Arc::new(Home {
                site: id.clone(),
                marks: marks.clone(),
                dead: i == n / 2,
            }));
            s.scaler = Some(Arc::new(ScaleSet {
                site: id.clone(),
                marks: marks.clone(),
            }));
            s.devices = Some(Arc::new(Devices));
            s
        })
        .collect();
    let store = Arc::new(RecordSaves::new(burst_store::FileStore::new(dir.path())));
    let deps = Arc::new(Deps {
        settings: Settings {
            sites: ids.clone(),
            body_timeout: Duration::from_secs(10),
            probe_concurrency: concurrency,
            probe_site_timeout: site_timeout,
            probe_via_queue: false,
        },
        sites: Sites::new(sites),
        store: store.clone(),
        clock: Arc::new(|| Timestamp::from_millis(chrono::Utc::now().timestamp_millis())),
        clock_scale: 1.0,
        waker: None,
        parsed: Default::default(),
    });
    let signers: Vec<Signer> = ids
        .iter()
        .map(|id| Signer::hs256(id, SECRET.as_bytes()).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    println!(
        "sites: {n} sites, {cycles} cycles of 30 s, probe concurrency {concurrency}, per-site timeout {} s, one site's home API dead",
        site_timeout.as_secs()
    );
    let cpu0 = cpu_ms("self") / 1000.0;
    let started = Instant::now();
    let mut beat_ms: Vec<f64> = Vec::new();
    let mut beat_errors = 0usize;
    for cycle in 0..cycles {
        let cycle_start = Instant::now();
        // The sweep, as the timer fires it, while the heartbeats keep arriving.
        marks.clear();
        let sweep = {
            let deps = deps.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let r = bodies::probe(&deps).await;
                (t.elapsed(), r)
            })
        };
        // Heartbeats spread evenly over the 30 s: one per site.
        let gap = Duration::from_secs(30).as_secs_f64() / n as f64;
        let mut beats = tokio::task::JoinSet::new();
        for (i, (id, signer)) in ids.iter().zip(&signers).enumerate() {
            let due = cycle_start + Duration::from_secs_f64(gap * i as f64);
            tokio::time::sleep_until(due.into()).await;
            let req = heartbeat(id, signer);
            let deps = deps.clone();
            beats.spawn(async move {
                let t = Instant::now();
                let r = bodies::http(&deps, Function::Heartbeat, &req).await;
                (t.elapsed().as_secs_f64() * 1000.0, r.status)
            });
        }
        while let Some(done) = beats.join_next().await {
            match done {
                Ok((ms, 200)) => beat_ms.push(ms),
                _ => beat_errors += 1,
            }
        }
        let (took, result) = sweep.await.unwrap_or_else(|e| panic!("sweep: {e}"));
        let observed = marks
            .observed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // A site's decision: its first save after the sweep observed it (a heartbeat saved in
        // between would count instead; they are 30 s apart per site).
        let mut saved: HashMap<String, Instant> = HashMap::new();
        for (site, at) in store.saves() {
            if observed.get(&site).is_some_and(|t0| at >= *t0) {
                saved.entry(site).or_insert(at);
            }
        }
        let mut decided: Vec<f64> = observed
            .iter()
            .filter(|(site, _)| **site != ids[n / 2])
            .filter_map(|(site, t0)| saved.get(site).map(|t1| (*t1 - *t0).as_secs_f64() * 1000.0))
            .collect();
        decided.sort_by(f64::total_cmp);
        // When every site with a live home API was decided (the dead one waits its timeout).
        let live_done = saved
            .iter()
            .filter(|(site, _)| **site != ids[n / 2])
            .map(|(_, t)| (*t - cycle_start).as_secs_f64())
            .fold(0.0, f64::max);
        let failures = match &result {
            Ok(_) => "no site failed".to_string(),
            Err(e) => e.chars().take(200).collect(),
        };
        println!(
            "sites: sweep {} of {n} sites: every live site decided after {live_done:.2} s, the sweep (with the dead API's timeout) took {:.2} s; per-site decision p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} live sites; {failures}",
            cycle + 1,
            took.as_secs_f64(),
            pct(&decided, 0.5),
            pct(&decided, 0.99),
            decided.last().copied().unwrap_or(f64::NAN),
            decided.len()
        );
        let rest = Duration::from_secs(30).saturating_sub(cycle_start.elapsed());
        tokio::time::sleep(rest).await;
    }
    beat_ms.sort_by(f64::total_cmp);
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_ms("self") / 1000.0 - cpu0;
    println!(
        "sites: {} heartbeats, p50 {:.2} ms, p99 {:.2} ms, {beat_errors} errors; CPU {cpu:.1} s over {wall:.0} s ({:.0} % of one core); peak RSS {:.1} MB",
        beat_ms.len(),
        pct(&beat_ms, 0.5),
        pct(&beat_ms, 0.99),
        cpu / wall * 100.0,
        peak_rss_kb("self") as f64 / 1024.0
    );
}
