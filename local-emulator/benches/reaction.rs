//! Reaction to a deadline through the whole Azure path, in real time: `func-emulator` (the
//! Functions host) → `burst-handler` → a wake-up message in Azurite's queue → the queue-triggered
//! `wake` function → the simulated ARM.
//!
//! Each run puts a new site on battery; its grace (10 s, longer than the queue's 5 s lead and
//! polling interval, so the queue is idle when the message becomes visible) ends at a known
//! instant, with no
//! probe or heartbeat to notice it (the probe timer is set to once a year). The reaction is the
//! time from that deadline to the scale set's capacity changing at the simulated ARM. The
//! handler must be built first: `cargo build -p burst-functions --bin burst-handler`.
//!
//! `REACTION_RUNS` (default 20) runs; prints each and the p50 / p90 / p99 / max.

use burst_store_sim::azurite::Azurite;
use func_emulator::drill::realtime::tempdir_app;
use func_emulator::host::queue::StorageConnection;
use func_emulator::host::{Host, HostConfig};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const GRACE_S: i64 = 10;
const QUEUE: &str = "burst-wake";
const SECRET: &str = "reaction-bench-shared-secret-0123456789abcdef";

fn handler_binary() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("BURST_HANDLER") {
        return Ok(PathBuf::from(p));
    }
    // target/<profile>/deps/reaction-… → look in target/debug and target/release.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or("cannot find the target folder")?
        .to_path_buf();
    ["debug", "release"]
        .iter()
        .map(|p| target.join(p).join("burst-handler"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "burst-handler not built: run `cargo build -p burst-functions --bin burst-handler` \
             (or set BURST_HANDLER)"
                .to_string()
        })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let runs: usize = std::env::var("REACTION_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let handler = handler_binary()?;
    let azurite = Azurite::start_queue_for_tests()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("Azurite needs Node.js")?;
    let queue = StorageConnection::parse(&azurite.connection_string())?.queue(QUEUE)?;
    queue.create(None).await.map_err(|e| e.to_string())?;
    let arm = burst_arm_sim::start(burst_arm_sim::SimConfig {
        operation_duration: Duration::ZERO,
        ..burst_arm_sim::SimConfig::default()
    })
    .await
    .map_err(|e| e.to_string())?;

    let app_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/app");
    let app = tempdir_app(&app_dir, &handler).map_err(|e| e.to_string())?;
    let sites: Vec<String> = (0..runs).map(|i| format!("r{i}")).collect();
    let mut config = HostConfig::new(&app);
    config
        .settings
        .extend(arm.settings().into_iter().map(|(k, v)| (k.to_string(), v)));
    for (k, v) in [
        ("BURST_SITES", sites.join(",")),
        ("BURST_AGENT_HS256_SECRET", SECRET.to_string()),
        ("BURST_GRACE_ON_BATTERY_S", GRACE_S.to_string()),
        (
            "BURST_STATE_URL",
            format!("file://{}", app.join(".state").display()),
        ),
        ("BURST_PROBE_SCHEDULE", "0 0 0 1 1 *".to_string()),
        ("BURST_WAKE_QUEUE", QUEUE.to_string()),
        ("BURST_WAKE_QUEUE_URL", azurite.queue_url(QUEUE)),
        ("AzureWebJobsStorage", azurite.connection_string()),
        ("BURST_LOG", "warn".to_string()),
    ] {
        config.settings.insert(k.to_string(), v);
    }
    config.state_dir = Some(app.join(".func-emulator"));
    let host = Host::start(config).await.map_err(|e| e.to_string())?;
    let client = reqwest::Client::new();
    let key = host.host_key().to_string();

    let mut reactions_ms = Vec::new();
    for site in &sites {
        arm.set_capacity(0);
        let signer =
            burst_wire::Signer::hs256(site, SECRET.as_bytes()).map_err(|e| e.to_string())?;
        let now = chrono::Utc::now();
        let body = serde_json::to_vec(&serde_json::json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "ups": "bench@127.0.0.1",
            "type": "ONBATT",
            "status": "OB DISCHRG",
        }))
        .map_err(|e| e.to_string())?;
        let token = signer
            .token(&body, now.timestamp())
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now()
            - Duration::from_millis((chrono::Utc::now() - now).num_milliseconds().max(0) as u64)
            + Duration::from_secs(GRACE_S as u64);
        let r = client
            .post(format!("{}/api/ups", host.base_url()))
            .header("x-functions-key", &key)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("{site}: ups answered {}", r.status()));
        }
        let give_up = deadline + Duration::from_secs(30);
        loop {
            if arm.capacity() > 0 {
                let late = Instant::now().saturating_duration_since(deadline);
                let early = deadline.saturating_duration_since(Instant::now());
                if !early.is_zero() {
                    return Err(format!("{site}: scaled {early:?} before the deadline"));
                }
                reactions_ms.push(late.as_secs_f64() * 1000.0);
                println!(
                    "{site}: PATCH {:.0} ms after the deadline",
                    late.as_secs_f64() * 1000.0
                );
                break;
            }
            if Instant::now() > give_up {
                return Err(format!("{site}: no PATCH within 30 s of the deadline"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    host.shutdown().await;
    arm.shutdown().await;

    let mut sorted = reactions_ms.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "reaction, deadline → PATCH at the simulated ARM, {} runs (grace {GRACE_S} s; functions/app/host.json polls an idle queue every 5 s; messages lead by 5 s): p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        sorted.len(),
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.9),
        percentile(&sorted, 0.99),
        sorted[sorted.len() - 1],
    );
    Ok(())
}
