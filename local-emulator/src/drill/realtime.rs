//! Real-time drills: the same scenario files as the virtual drills, run through the real
//! processes — this emulator's Functions host, the real `burst-handler`, and the simulated
//! cloud (ARM + managed identity, Discord, Tailscale devices, the home and cloud Kubernetes
//! APIs), each a real HTTP server on loopback. Events reach the function as the agent, the
//! witness and Tailscale would send them: signed, over HTTP, through the host's keys.
//!
//! Time runs faster: the handler's clock (`BURST_CLOCK_SCALE`) and this runner share one
//! speed-up, so a 3-hour scenario takes about a minute. The handler reaches the simulated
//! cloud only through its ordinary settings (base URLs, credentials).

use super::expect::{Observed, check_point};
use super::gap::GapMeter;
use super::home::Home;
use super::record::{Kind, Record};
use super::simulated::describe;
use super::{DrillRun, Measured, Scheduled, scheduled};
use crate::host::{Host, HostConfig, HostHandle};
use crate::scenario::{Event, Scenario, UpDown};
use burst_core::{Input, Timestamp};
pub use burst_functions::timeline::Sample;
use burst_wire::Signer;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the function app and the handler binary are.
#[derive(Clone, Debug)]
pub struct RealtimeOptions {
    /// The app folder (host.json + function folders), e.g. `functions/app`.
    pub app_dir: PathBuf,
    /// The `burst-handler` executable.
    pub handler: PathBuf,
    /// Overrides the scenario's speed-up.
    pub speedup: Option<f64>,
    /// Print the host's and handler's log lines.
    pub verbose: bool,
}

/// A scenario's wall-clock budget when it sets no speed-up.
const TARGET_REAL_SECS: f64 = 60.0;
/// How far (scenario time) the runner may fall behind its schedule before the run fails:
/// expectations are written with a minute or more of margin.
const MAX_LAG_MS: i64 = 90_000;
const SITE_TAG: &str = "tag:onprem";

#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    #[error("cannot start the simulated cloud: {0}")]
    Sim(String),
    #[error("cannot start the Functions host: {0}")]
    Host(String),
    #[error("{0}")]
    Setup(String),
}

/// The simulated cloud, started for one drill.
struct Cloud {
    arm: burst_arm_sim::SimHandle,
    discord: burst_discord_sim::SimHandle,
    tailscale: burst_tailscale_sim::SimHandle,
    home_kube: burst_kube_sim::SimHandle,
    cloud_kube: burst_kube_sim::SimHandle,
    devices: Vec<String>,
    nodes_total: u32,
}

impl Cloud {
    async fn start(scenario: &Scenario, scale: f64) -> Result<Cloud, RealtimeError> {
        let w = &scenario.world;
        let sim = |e: std::io::Error| RealtimeError::Sim(e.to_string());
        let arm = burst_arm_sim::start(burst_arm_sim::SimConfig {
            boot_time: Duration::from_secs_f64(w.boot_time.0.as_secs_f64() / scale),
            operation_duration: Duration::ZERO,
            ..burst_arm_sim::SimConfig::default()
        })
        .await
        .map_err(sim)?;
        let discord = burst_discord_sim::start(burst_discord_sim::SimConfig::default())
            .await
            .map_err(sim)?;
        let tailscale = burst_tailscale_sim::start(burst_tailscale_sim::SimConfig::default())
            .await
            .map_err(sim)?;
        let devices = tailscale.add_devices("k8s-home", w.devices_total as usize, &[SITE_TAG]);
        let home_kube =
            burst_kube_sim::start(burst_kube_sim::SimOptions::with_token("home-probe-token"))
                .await
                .map_err(sim)?;
        let cloud_kube = burst_kube_sim::start(burst_kube_sim::SimOptions::with_token(
            "cloud-migrator-token",
        ))
        .await
        .map_err(sim)?;
        for i in 0..w.critical_workloads {
            cloud_kube.add_deployment(
                burst_kube_sim::SimWorkload::new("apps", &format!("critical-{i}"))
                    .tier("critical", "2")
                    .replicas(0),
            );
        }
        for i in 0..w.stateful_workloads {
            cloud_kube.add_statefulset(
                burst_kube_sim::SimWorkload::new("data", &format!("stateful-{i}"))
                    .tier("stateful", "1")
                    .replicas(0),
            );
        }
        let cloud = Cloud {
            arm,
            discord,
            tailscale,
            home_kube,
            cloud_kube,
            devices,
            nodes_total: w.nodes_total,
        };
        cloud.set_nodes_ready(w.nodes_total);
        Ok(cloud)
    }

    fn set_nodes_ready(&self, ready: u32) {
        let names: Vec<String> = (0..self.nodes_total).map(|i| format!("home-{i}")).collect();
        let nodes: Vec<(&str, bool)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), (i as u32) < ready))
            .collect();
        self.home_kube.set_nodes(&nodes);
    }

    /// The handler's settings that point it at this simulated cloud.
    fn settings(&self) -> BTreeMap<String, String> {
        let mut s: BTreeMap<String, String> = self
            .arm
            .settings()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        s.insert("DISCORD_WEBHOOK_URL".into(), self.discord.webhook_url());
        s.insert(
            "BURST_TAILSCALE_API_URL".into(),
            self.tailscale.base_url().to_string(),
        );
        s.insert("BURST_TAILSCALE_API_KEY".into(), self.tailscale.api_key());
        s.insert("BURST_TAILSCALE_TAGS".into(), SITE_TAG.into());
        s.insert("BURST_HOME_KUBE_URL".into(), self.home_kube.base_url());
        s.insert("BURST_HOME_KUBE_TOKEN".into(), "home-probe-token".into());
        s.insert("BURST_HOME_PROBE_TIMEOUT_MS".into(), "1000".into());
        s.insert("BURST_CLOUD_KUBE_URL".into(), self.cloud_kube.base_url());
        s.insert(
            "BURST_CLOUD_KUBE_TOKEN".into(),
            "cloud-migrator-token".into(),
        );
        s
    }

    fn tier_in_cloud(&self, tier: &str) -> bool {
        self.cloud_kube.workloads().iter().any(|w| {
            w.labels.get(burst_kube_sim::TIER_LABEL).map(String::as_str) == Some(tier)
                && w.replicas > 0
        })
    }

    async fn shutdown(self) {
        self.arm.shutdown().await;
        self.discord.shutdown().await;
        self.home_kube.shutdown().await;
        self.cloud_kube.shutdown().await;
        drop(self.tailscale);
    }
}

/// Scenario time ↔ wall time at a fixed speed-up, shared with the handler's clock.
#[derive(Clone, Copy)]
struct Pace {
    start_ms: i64,
    start_real: Instant,
    scale: f64,
}

impl Pace {
    /// The scenario clock now (ms since the scenario's start).
    fn t_ms(&self) -> i64 {
        (self.start_real.elapsed().as_secs_f64() * 1000.0 * self.scale) as i64
    }
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.start_ms + self.t_ms())
    }
    fn real_at(&self, t_ms: i64) -> Instant {
        self.start_real + Duration::from_secs_f64(t_ms.max(0) as f64 / 1000.0 / self.scale)
    }
}

struct Runner<'a> {
    scenario: &'a Scenario,
    cloud: Cloud,
    host: HostHandle,
    client: reqwest::Client,
    home: Home,
    signer: Signer,
    ts_secret: String,
    pace: Pace,
    records: Vec<Record>,
    samples: Vec<Sample>,
    // What was last seen, to turn observations into timeline records.
    last_mode: String,
    last_capacity: u32,
    messages_seen: BTreeMap<String, u32>,
    tiers_in_cloud: BTreeMap<&'static str, bool>,
    home_dark: bool,
    on_battery: bool,
    /// The capacity gap, sampled at each look (the handler's cloud is watched, not stepped).
    gap: GapMeter,
    cost_usd: f64,
    cost_at: i64,
    last_status: Value,
    max_lag_ms: i64,
}

/// Runs one scenario in real time. Returns the run, and the samples for a report.
pub async fn run(
    scenario: &Scenario,
    opts: &RealtimeOptions,
) -> Result<(DrillRun, Vec<Sample>), RealtimeError> {
    // Faults below the engine (store, crashes, lost answers...) need the virtual world's
    // ports; the real processes cannot be made to fail at those points.
    if scenario.start.is_some() {
        return Err(RealtimeError::Setup(format!(
            "{}: start is for virtual drills only (real-time drills run on the real clock)",
            scenario.name
        )));
    }
    if !scenario.world.neighbours.is_empty() {
        return Err(RealtimeError::Setup(format!(
            "{}: [world] neighbours is for virtual drills only (run it with --virtual)",
            scenario.name
        )));
    }
    for (i, e) in scenario.events.iter().enumerate() {
        let fields = e.virtual_only_fields();
        if !fields.is_empty() {
            return Err(RealtimeError::Setup(format!(
                "{}: [[at]] #{} uses {}, which only virtual drills carry out (run it with --virtual)",
                scenario.name,
                i + 1,
                fields.join(", ")
            )));
        }
    }
    let wall_started = Instant::now();
    let duration_s = scenario.duration.0.as_secs_f64();
    let scale = opts
        .speedup
        .or(scenario.world.speedup)
        .unwrap_or_else(|| (duration_s / TARGET_REAL_SECS).clamp(30.0, 240.0));
    let cloud = Cloud::start(scenario, scale).await?;

    // The app folder with the handler next to host.json, as in the deployed zip.
    let app = tempdir_app(&opts.app_dir, &opts.handler)?;
    let state_dir = app.join(".state");
    let agent_secret = format!("drill-{}-{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let ts_secret = format!("tskey-webhook-drill{}", uuid::Uuid::new_v4().simple());
    // The scenario starts a little after the host is up; the clocks agree from then on.
    let setup_ms: i64 = 4000;
    let start_ms = chrono::Utc::now().timestamp_millis() + setup_ms;
    let mut settings = cloud.settings();
    settings.extend(policy_settings(scenario));
    for (k, v) in [
        ("BURST_STATE_URL", format!("file://{}", state_dir.display())),
        ("BURST_SITE_ID", scenario.world.site.clone()),
        ("BURST_AGENT_HS256_SECRET", agent_secret.clone()),
        ("TAILSCALE_WEBHOOK_SECRET", ts_secret.clone()),
        ("BURST_CLOCK_SCALE", format!("{scale}")),
        ("BURST_CLOCK_START_MS", start_ms.to_string()),
        // The drill triggers the probe itself at the scenario's pace (admin endpoint).
        ("BURST_PROBE_SCHEDULE", "0 0 0 1 1 *".to_string()),
        ("BURST_LOG", "info".to_string()),
    ] {
        settings.insert(k.to_string(), v);
    }
    let mut config = HostConfig::new(&app);
    config.settings = settings;
    config.print_logs = opts.verbose;
    config.state_dir = Some(app.join(".func-emulator"));
    let host = Host::start(config)
        .await
        .map_err(|e| RealtimeError::Host(e.to_string()))?;
    let wait = Duration::from_millis(setup_ms as u64)
        .checked_sub(wall_started.elapsed())
        .unwrap_or_default();
    // Align our scenario clock with the handler's: both read start_ms at the same wall time.
    let until_start =
        Duration::from_millis((start_ms - chrono::Utc::now().timestamp_millis()).max(0) as u64)
            .min(wait + Duration::from_secs(1));
    tokio::time::sleep(until_start).await;
    let pace = Pace {
        start_ms,
        start_real: Instant::now()
            - Duration::from_millis(
                (chrono::Utc::now().timestamp_millis() - start_ms).max(0) as u64
            ),
        scale,
    };
    let mut runner = Runner {
        scenario,
        home: Home::new(&scenario.world),
        // HS256 keeps the drill free of key files; the handler pins whichever is configured.
        signer: Signer::hs256(&scenario.world.site, agent_secret.as_bytes())
            .map_err(|e| RealtimeError::Setup(e.to_string()))?,
        ts_secret,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| RealtimeError::Setup(e.to_string()))?,
        cloud,
        host,
        pace,
        records: Vec::new(),
        samples: Vec::new(),
        last_mode: "healthy".into(),
        last_capacity: 0,
        messages_seen: BTreeMap::new(),
        tiers_in_cloud: BTreeMap::new(),
        home_dark: false,
        on_battery: false,
        gap: GapMeter::default(),
        cost_usd: 0.0,
        cost_at: 0,
        last_status: Value::Null,
        max_lag_ms: 0,
    };
    let result = runner.drive().await;
    let end = scenario.duration.millis();
    // A runner that falls behind checks the world later than the scenario says: say so.
    let lag_s = runner.max_lag_ms as f64 / 1000.0;
    let lag_ok = runner.max_lag_ms <= MAX_LAG_MS;
    runner.records.push(Record {
        t_ms: end,
        kind: Kind::Expect {
            ok: lag_ok,
            what: format!(
                "kept pace at {scale:.0}× (worst lag {lag_s:.1} s of scenario time, limit {} s)",
                MAX_LAG_MS / 1000
            ),
        },
    });
    if let Err(e) = &result {
        runner.records.push(Record {
            t_ms: runner.pace.t_ms().min(end),
            kind: Kind::Expect {
                ok: false,
                what: format!("drill ran to the end ({e})"),
            },
        });
    }
    let wall_ms = wall_started.elapsed().as_secs_f64() * 1000.0;
    let Runner {
        records,
        samples,
        host,
        cloud,
        cost_usd,
        gap,
        ..
    } = runner;
    let logs = host.logs();
    let measured = Measured {
        cost_usd,
        wall_ms,
        gap: gap.result(end),
        saves: super::record::Saves::from_log_lines(logs.iter().map(|l| l.text.as_str())),
        ..Measured::default()
    };
    let run = super::finish(scenario, records, result.is_ok() && lag_ok, measured);
    host.shutdown().await;
    cloud.shutdown().await;
    let _ = std::fs::remove_dir_all(&app);
    Ok((run, samples))
}

/// The scenario's `[policy]` as the handler's `BURST_*` settings.
fn policy_settings(scenario: &Scenario) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(Value::Object(map)) = serde_json::to_value(&scenario.policy) {
        for (k, v) in map {
            let value = match v {
                Value::Null => "none".to_string(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            out.insert(format!("BURST_{}", k.to_ascii_uppercase()), value);
        }
    }
    out
}

/// A temporary copy of the app folder (host.json and each function.json) with `handler` linked
/// in as the custom handler executable, as in the deployed zip.
pub fn tempdir_app(app_dir: &Path, handler: &Path) -> Result<PathBuf, RealtimeError> {
    let setup = |e: std::io::Error| RealtimeError::Setup(format!("preparing the app folder: {e}"));
    if !handler.is_file() {
        return Err(RealtimeError::Setup(format!(
            "{} not found: build it with `cargo build -p burst-functions --bin burst-handler`",
            handler.display()
        )));
    }
    let host_json = app_dir.join("host.json");
    let text = std::fs::read_to_string(&host_json).map_err(setup)?;
    let host: Value = serde_json::from_str(&text)
        .map_err(|e| RealtimeError::Setup(format!("{}: {e}", host_json.display())))?;
    let exe = host
        .pointer("/customHandler/description/defaultExecutablePath")
        .and_then(Value::as_str)
        .unwrap_or("burst-handler")
        .to_string();
    let dir = std::env::temp_dir().join(format!(
        "func-emulator-drill-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(setup)?;
    for entry in std::fs::read_dir(app_dir).map_err(setup)? {
        let entry = entry.map_err(setup)?;
        let path = entry.path();
        let target = dir.join(entry.file_name());
        if path.is_dir() {
            if path.join("function.json").is_file() {
                std::fs::create_dir_all(&target).map_err(setup)?;
                std::fs::copy(path.join("function.json"), target.join("function.json"))
                    .map_err(setup)?;
            }
        } else if path.extension().is_some_and(|x| x == "json") {
            std::fs::copy(&path, &target).map_err(setup)?;
        }
    }
    // A relative path would dangle from the temporary folder.
    let handler = handler.canonicalize().map_err(setup)?;
    std::os::unix::fs::symlink(handler, dir.join(exe)).map_err(setup)?;
    Ok(dir)
}

/// Sends `req` (`what`, in errors) and wants `status` back.
async fn answered(
    req: reqwest::RequestBuilder,
    what: &str,
    status: u16,
) -> Result<reqwest::Response, String> {
    let resp = req.send().await.map_err(|e| format!("{what}: {e}"))?;
    if resp.status().as_u16() != status {
        return Err(format!("{what} answered {}", resp.status()));
    }
    Ok(resp)
}

impl Runner<'_> {
    fn schedule(&self) -> Vec<(i64, Scheduled)> {
        let mut items = scheduled(self.scenario);
        items.sort();
        items
    }

    async fn drive(&mut self) -> Result<(), String> {
        for (t, due) in self.schedule() {
            tokio::time::sleep_until(self.pace.real_at(t).into()).await;
            // How far behind the scenario's clock this item runs (the handler's clock does
            // not wait for us).
            self.max_lag_ms = self.max_lag_ms.max(self.pace.t_ms() - t);
            if self.host.is_stopped() {
                // Say why: the host's last words (handler failing to start, crashing...).
                let logs = self.host.logs();
                let tail: Vec<String> = logs
                    .iter()
                    .rev()
                    .take(4)
                    .rev()
                    .map(|l| l.text.clone())
                    .collect();
                return Err(format!("the Functions host stopped: {}", tail.join(" | ")));
            }
            match due {
                Scheduled::Event(i) => {
                    let e = self.scenario.events[i].clone();
                    self.world_event(t, &e).await?;
                }
                Scheduled::Probe => self.probe().await?,
                Scheduled::Heartbeat => self.heartbeat().await?,
                Scheduled::Witness => {
                    let w = self.home.witness(self.pace.now());
                    self.send_agent(&Input::Witness(w)).await?;
                }
                Scheduled::Expect(i) => {
                    let o = self.observe().await?;
                    let x = &self.scenario.expectations[i];
                    for (ok, what) in check_point(x, &o) {
                        self.records.push(Record {
                            t_ms: t,
                            kind: Kind::Expect { ok, what },
                        });
                    }
                }
            }
            self.note_changes().await?;
        }
        tokio::time::sleep_until(self.pace.real_at(self.scenario.duration.millis()).into()).await;
        self.note_changes().await
    }

    fn function_key(&self, name: &str) -> String {
        self.host
            .function_key(name)
            .unwrap_or(self.host.master_key())
            .to_string()
    }

    /// POSTs a payload like the agent: function key, Bearer JWT over the exact body.
    async fn send_agent(&mut self, input: &Input) -> Result<(), String> {
        let (payload, body) = burst_wire::agent_request(input)
            .ok_or_else(|| format!("the agent does not send {input:?}"))?;
        let route = payload.route();
        let token = self
            .signer
            .token(&body, self.pace.now().millis() / 1000)
            .map_err(|e| format!("POST {route}: {e}"))?;
        // The function is named after its route (`/api/ups` → `ups`).
        let function = route.trim_start_matches("/api/");
        let resp = self
            .client
            .post(format!("{}{route}", self.host.base_url()))
            .header("x-functions-key", self.function_key(function))
            .header("content-type", burst_wire::JSON_CONTENT_TYPE)
            .header("authorization", format!("Bearer {token}"))
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {route}: {e}"))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let text = resp.text().await.unwrap_or_default();
            return Err(format!("POST {route} answered {status}: {text}"));
        }
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<(), String> {
        // The agent's heartbeat delivers its spool first.
        for ev in self.home.flush() {
            self.send_agent(&Input::Ups(ev)).await?;
        }
        if let Some(hb) = self.home.heartbeat(self.pace.now()) {
            self.send_agent(&Input::Heartbeat(hb)).await?;
        }
        Ok(())
    }

    /// Runs the timer function now (admin endpoint, master key), like the host's schedule would.
    async fn probe(&mut self) -> Result<(), String> {
        let req = self
            .client
            .post(format!("{}/admin/functions/probe", self.host.base_url()))
            .header("x-functions-key", self.host.master_key())
            .json(&json!({"input": ""}));
        answered(req, "admin probe", 202).await?;
        Ok(())
    }

    async fn status(&mut self) -> Result<Value, String> {
        let req = self
            .client
            .get(format!("{}/api/status", self.host.base_url()))
            .header("x-functions-key", self.function_key("status"));
        let resp = answered(req, "GET /api/status", 200).await?;
        let v: Value = resp.json().await.map_err(|e| format!("status JSON: {e}"))?;
        let site = v.pointer("/sites/0").cloned().unwrap_or(Value::Null);
        self.last_status = site.clone();
        Ok(site)
    }

    async fn world_event(&mut self, t: i64, e: &Event) -> Result<(), String> {
        self.records.push(Record {
            t_ms: t,
            kind: Kind::Event { text: describe(e) },
        });
        let c = &self.cloud;
        if let Some(secs) = e.arm_throttle {
            c.arm.inject(
                burst_arm_sim::Target::Write,
                1,
                burst_arm_sim::Fault::throttle(secs),
            );
        }
        if let Some(n) = e.arm_conflicts {
            c.arm.inject(
                burst_arm_sim::Target::Write,
                n,
                burst_arm_sim::Fault::conflict(),
            );
        }
        if let Some(secs) = e.discord_rate_limit {
            c.discord.force_rate_limit(1, secs);
        }
        if e.discord_gone == Some(true) {
            c.discord.delete_webhook();
        }
        if let Some(n) = e.evict {
            let evicted = c.arm.evict(n).len() as u32;
            self.records.push(Record {
                t_ms: t,
                kind: Kind::Evict {
                    evicted,
                    capacity: self.cloud.arm.capacity(),
                },
            });
            self.last_capacity = self.cloud.arm.capacity();
        }
        let ups = self.home.apply(e, self.pace.now());
        self.apply_home_to_sims(e).await;
        if let Some(ev) = ups {
            self.on_battery = ev.status.has("OB");
            for ev in self.home.send_ups(ev) {
                self.send_agent(&Input::Ups(ev)).await?;
            }
        }
        if let Some(kind) = &e.tailscale {
            let now_s = self.pace.now().millis() / 1000;
            let body = serde_json::to_vec(&json!([{
                "timestamp": self.pace.now().rfc3339(), "version": 1, "type": kind,
                "tailnet": "example.com", "message": format!("{kind} (drill)"),
                "data": {"nodeID": "nDrill1CNTRL", "deviceName": e.device.clone().unwrap_or_else(|| "k8s-home-0".into())}
            }]))
            .unwrap_or_default();
            let sig = burst_tailscale_sim::sign(&self.ts_secret, now_s, &body);
            let req = self
                .client
                .post(format!("{}/api/tailscale", self.host.base_url()))
                .header("x-functions-key", self.function_key("tailscale"))
                .header("content-type", "application/json")
                .header("tailscale-webhook-signature", sig)
                .body(body);
            answered(req, "POST /api/tailscale", 200).await?;
        }
        Ok(())
    }

    /// Mirrors the home's state into the simulated home API and tailnet.
    async fn apply_home_to_sims(&mut self, e: &Event) {
        if let Some(h) = e.home {
            self.home_dark = h == UpDown::Down;
        }
        let c = &self.cloud;
        if e.home.is_some() || e.internet.is_some() || e.cloud_path.is_some() {
            let reachable = self.home.reachable_from_cloud();
            if reachable && !c.home_kube.is_listening() {
                let _ = c.home_kube.resume_listening().await;
            } else if !reachable && c.home_kube.is_listening() {
                c.home_kube.stop_listening().await;
            }
            let online = self.home.online();
            for (i, d) in c.devices.iter().enumerate() {
                c.tailscale
                    .set_online(d, online && (i as u32) < self.home.devices_online());
            }
        }
        if let Some(a) = e.home_api {
            c.home_kube.set_readyz(if a == UpDown::Up {
                burst_kube_sim::Readyz::Ok
            } else {
                burst_kube_sim::Readyz::Failing
            });
        }
        if let Some(n) = e.nodes_ready {
            c.set_nodes_ready(n);
        }
        if let Some(n) = e.devices_online {
            let online = self.home.online();
            for (i, d) in c.devices.iter().enumerate() {
                c.tailscale.set_online(d, online && (i as u32) < n);
            }
        }
    }

    async fn observe(&mut self) -> Result<Observed, String> {
        let s = self.status().await?;
        Ok(Observed {
            mode: s["mode"].as_str().unwrap_or_default().to_string(),
            capacity: self.cloud.arm.capacity(),
            running: self.cloud.arm.running(),
            critical_in_cloud: self.cloud.tier_in_cloud("critical"),
            stateful_in_cloud: self.cloud.tier_in_cloud("stateful"),
            incident_open: s["incident"].is_object() && s["incident"]["resolved_at"].is_null(),
            webhook_gone: s["discord_webhook"]["ok"] == json!(false),
            undelivered: s["pending_posts"].as_u64().unwrap_or(0) as usize
                + usize::from(s["incident"]["undelivered_updates"].as_u64().unwrap_or(0) > 0),
        })
    }

    /// Turns what changed in the status and the simulated cloud into timeline records.
    async fn note_changes(&mut self) -> Result<(), String> {
        let t = self.pace.t_ms().min(self.scenario.duration.millis());
        let s = self.status().await?;
        let mode = s["mode"].as_str().unwrap_or_default().to_string();
        if mode != self.last_mode {
            let why = s["audit"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|e| e["what"].as_str().is_some_and(|w| w.starts_with("mode ")))
                })
                .and_then(|e| e["why"].as_str())
                .unwrap_or_default()
                .to_string();
            self.records.push(Record {
                t_ms: t,
                kind: Kind::Mode {
                    from: std::mem::replace(&mut self.last_mode, mode.clone()),
                    to: mode.clone(),
                    why,
                },
            });
        }
        // Scale-set writes the sim refused (429, 409, 412...): the calls a busy retry would
        // make. The log is read and emptied each time so it stays short.
        let log = self.cloud.arm.requests();
        self.cloud.arm.clear_requests();
        for r in log
            .iter()
            .filter(|r| r.method == "PATCH" && !(200..300).contains(&r.status))
        {
            self.records.push(Record {
                t_ms: t,
                kind: Kind::ArmCall {
                    result: format!("PATCH refused with HTTP {}", r.status),
                },
            });
        }
        let capacity = self.cloud.arm.capacity();
        if capacity != self.last_capacity {
            self.records.push(Record {
                t_ms: t,
                kind: Kind::Scale {
                    from: self.last_capacity,
                    capacity,
                    reason: s["capacity"]["reason"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                },
            });
            self.last_capacity = capacity;
        }
        for m in self.cloud.discord.messages() {
            let key = m
                .embeds
                .first()
                .and_then(|e| e.pointer("/footer/text"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let title = m
                .embeds
                .first()
                .and_then(|e| e["title"].as_str())
                .unwrap_or_default()
                .to_string();
            let seen = self.messages_seen.get(&m.id).copied();
            let (action, new_edits) = match seen {
                None if key.contains("-post-") => ("post", 0),
                None => ("create", 0),
                Some(edits) if m.edits > edits => ("edit", m.edits),
                Some(_) => continue,
            };
            let _ = new_edits;
            self.messages_seen.insert(m.id.clone(), m.edits);
            self.records.push(Record {
                t_ms: t,
                kind: Kind::Notify {
                    incident: key.clone(),
                    action: action.into(),
                    title: title.clone(),
                },
            });
            if action == "create" && m.edits > 0 {
                self.records.push(Record {
                    t_ms: t,
                    kind: Kind::Notify {
                        incident: key,
                        action: "edit".into(),
                        title,
                    },
                });
            }
        }
        for tier in ["critical", "stateful"] {
            let now = self.cloud.tier_in_cloud(tier);
            let before = self.tiers_in_cloud.insert(tier, now).unwrap_or(false);
            if now != before {
                self.records.push(Record {
                    t_ms: t,
                    kind: Kind::Migrate {
                        tier: tier.into(),
                        direction: if now { "to_cloud" } else { "to_home" }.into(),
                    },
                });
            }
        }
        // Bill what ran since the last look (spot: running instances).
        let running = self.cloud.arm.running();
        let dt_h = (t - self.cost_at).max(0) as f64 / 3_600_000.0;
        self.cost_usd += f64::from(running) * self.scenario.policy.price_per_node_hour_usd * dt_h;
        self.cost_at = t;
        let missing = self
            .home
            .missing_nodes()
            .min(self.scenario.policy.max_nodes);
        self.gap.observe(t, missing, running);
        self.samples.push(Sample {
            t: t as f64 / 1000.0,
            mode,
            desired: s["capacity"]["desired"].as_u64().unwrap_or(0) as u32,
            capacity,
            running,
            on_battery: self.on_battery,
            home_dark: self.home_dark,
            missing,
            cost_usd: self.cost_usd,
        });
        Ok(())
    }
}
