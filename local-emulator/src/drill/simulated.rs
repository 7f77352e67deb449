//! Virtual-time drills: the engine that runs in the cloud (`burst_functions`: its function
//! bodies, compare-and-swap, replays, duplicate detection, actions and outcome loop), driven by
//! a simulated home and cloud on a virtual clock. Nothing sleeps for real: the engine runs on a
//! paused tokio clock that jumps to the next thing due (scenario event, probe, heartbeat,
//! witness, the engine's own wake-ups), like quinn's test `Pair`. The agent's requests are
//! signed and posted to the same bodies the Azure and Lambda wrappers call; the engine's
//! adapters are the simulated world's ports ([`super::ports`]), with the scenario's faults.
//!
//! After every invocation the drill checks the safety rules ([`burst_core::invariants`]),
//! that every acknowledged input is in the saved state, and the state's size; a broken rule
//! fails the drill.

use super::cloud::Cloud;
use super::expect::{Observed, check_point};
use super::gap::GapMeter;
use super::home::Home;
use super::ports::{SimWorld, SiteStores, ports};
use super::record::{Kind, Record};
use super::{DrillRun, Measured, Scheduled, scheduled};
use crate::scenario::{Event, Scenario};
use burst_core::state::AuditEntry;
use burst_core::{Input, Policy, SiteState, Tier, Timestamp, dedupe, invariants};
use burst_functions::bodies::{self, Function};
use burst_functions::deps::Deps;
use burst_functions::http::Request;
use burst_functions::settings::{Settings, SiteSettings, TailscaleSecret};
use burst_functions::sites::{Site, Sites};
use burst_functions::state_cache::StateCache;
use burst_wire::{AgentKey, Signer};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

/// Virtual drills start here unless the scenario says `start`, so budgets and messages are
/// reproducible.
pub const EPOCH: Timestamp = Timestamp::from_secs(1_772_409_600); // 2026-03-02T00:00:00Z

/// The drill's agent and webhook secrets (HS256 needs 32 bytes or more).
const AGENT_SECRET: &str = "virtual-drill-agent-secret-0123456789abcdef";
const TAILSCALE_SECRET: &str = "virtual-drill-tailscale-secret";

/// The largest state document a site may reach. The core bounds its history (audit trail,
/// replay ids, incidents); this is far above anything seen in drills or swarms.
pub const STATE_BOUND_BYTES: usize = 256 * 1024;

/// The host retries a failed queue message after its visibility timeout, up to its dequeue
/// limit (host.json), then parks it in the poison queue.
const WAKE_RETRY_MS: i64 = 5_000;
const WAKE_MAX_DEQUEUE: u8 = 5;

/// At one instant: world changes first, then the periodic reports, then the engine's own
/// wake-ups, then expectations (they see everything due at that time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Event(usize),
    Probe,
    Heartbeat,
    Witness,
    /// A wake-up message for this instant (its delivery attempt) of a site: 0 is the
    /// scenario's, 1… its neighbours.
    Wake(i64, u8, usize),
    Expect(usize),
}

impl From<Scheduled> for Due {
    fn from(item: Scheduled) -> Self {
        match item {
            Scheduled::Event(i) => Due::Event(i),
            Scheduled::Probe => Due::Probe,
            Scheduled::Heartbeat => Due::Heartbeat,
            Scheduled::Witness => Due::Witness,
            Scheduled::Expect(i) => Due::Expect(i),
        }
    }
}

/// A safety rule broken during a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    pub t_ms: i64,
    pub rule: String,
    pub detail: String,
}

/// Everything one virtual run produced.
#[derive(Debug)]
pub struct Simulated {
    pub records: Vec<Record>,
    pub measured: Measured,
    pub violations: Vec<Violation>,
    pub invocations: u64,
    pub reached: Reached,
}

/// Situations a run reached (the swarm reports how much of the space it explored).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    pub outage: bool,
    pub stateful_in_cloud: bool,
    pub budget_capped: bool,
    pub recovered: bool,
}

/// Options of one virtual run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub policy: Policy,
    /// Seeds the engine's retry jitter (the only randomness below the drill).
    pub seed: u64,
    /// Stop at the first broken rule (the swarm's shrinking needs only that).
    pub stop_at_violation: bool,
}

pub fn run(scenario: &Scenario) -> DrillRun {
    let started = Instant::now();
    let options = RunOptions {
        policy: scenario.policy.clone(),
        seed: 0,
        stop_at_violation: false,
    };
    let sim = simulate(scenario, &options);
    let mut measured = sim.measured;
    if scenario.policy.burst_ahead {
        // The same world without bursting ahead: what the early burst removed and cost.
        let policy = Policy {
            burst_ahead: false,
            ..scenario.policy.clone()
        };
        measured.without_ahead = Some(
            simulate(scenario, &RunOptions { policy, ..options })
                .measured
                .gap,
        );
    }
    measured.wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut records = sim.records;
    for v in &sim.violations {
        records.push(Record {
            t_ms: v.t_ms,
            kind: Kind::Expect {
                ok: false,
                what: format!("rule broken: {} ({})", v.rule, v.detail),
            },
        });
    }
    records.sort_by_key(|r| r.t_ms);
    super::finish(scenario, records, true, measured)
}

/// Runs `scenario` through the engine on a virtual clock.
pub fn simulate(scenario: &Scenario, options: &RunOptions) -> Simulated {
    let failed = |detail: String| Simulated {
        records: Vec::new(),
        measured: Measured::default(),
        violations: vec![Violation {
            t_ms: 0,
            rule: "the drill runs".into(),
            detail,
        }],
        invocations: 0,
        reached: Reached::default(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(r) => r,
        Err(e) => return failed(format!("no runtime: {e}")),
    };
    runtime.block_on(async {
        // One thread runs everything, so this seeds every draw the engine makes.
        fastrand::seed(options.seed);
        match Sim::new(scenario, options) {
            Ok(sim) => sim.run().await,
            Err(e) => failed(e),
        }
    })
}

/// Another site the same deployment watches: its own world, and its agent's signer.
struct Neighbour {
    world: Arc<SimWorld>,
    signer: Signer,
}

struct Sim<'a> {
    scenario: &'a Scenario,
    options: &'a RunOptions,
    world: Arc<SimWorld>,
    neighbours: Vec<Neighbour>,
    deps: Arc<Deps>,
    signer: Signer,
    queue: BinaryHeap<Reverse<(i64, Due)>>,
    /// The last saved state seen (its version tag) and the audit entry it ended with.
    state: Option<(String, Arc<SiteState>)>,
    last_audit: Option<AuditEntry>,
    violations: Vec<Violation>,
    invocations: u64,
    reached: Reached,
}

impl<'a> Sim<'a> {
    fn new(scenario: &'a Scenario, options: &'a RunOptions) -> Result<Sim<'a>, String> {
        let w = &scenario.world;
        let policy = &options.policy;
        let start = scenario.start_instant()?.unwrap_or(EPOCH);
        let world = Arc::new(SimWorld::new(
            start,
            &w.site,
            policy.clone(),
            Home::new(w),
            Cloud::new(w.boot_time.millis(), policy.price_per_node_hour_usd, start),
            (w.critical_workloads, w.stateful_workloads),
        ));
        let mut worlds = vec![world.clone()];
        for name in &w.neighbours {
            worlds.push(Arc::new(SimWorld::new(
                start,
                name,
                policy.clone(),
                Home::new(w),
                Cloud::new(w.boot_time.millis(), policy.price_per_node_hour_usd, start),
                (w.critical_workloads, w.stateful_workloads),
            )));
        }
        let mut sites = Vec::new();
        let mut stores = SiteStores {
            by_site: Default::default(),
        };
        let waker = ports(&world).waker;
        for sim_world in &worlds {
            let p = ports(sim_world);
            let mut site = Site::new(
                sim_world.site.clone(),
                SiteSettings {
                    agent_key: Some(AgentKey::hs256(AGENT_SECRET).map_err(|e| e.to_string())?),
                    tailscale_secret: Some(TailscaleSecret(TAILSCALE_SECRET.into())),
                    policy: policy.clone(),
                },
            );
            site.scaler = Some(p.scaler);
            site.notifier = Some(p.notifier);
            site.home = Some(p.home);
            site.devices = Some(p.devices);
            site.migrator = Some(p.migrator);
            stores.by_site.insert(sim_world.site.clone(), p.store);
            sites.push(site);
        }
        let settings = Settings {
            sites: worlds.iter().map(|w| w.site.clone()).collect(),
            body_timeout: std::time::Duration::from_secs(10),
            // One site after the other, in order: the run stays reproducible.
            probe_concurrency: 1,
            probe_site_timeout: std::time::Duration::from_secs(20),
            probe_via_queue: false,
        };
        let clock_world = world.clone();
        let deps = Deps {
            settings,
            sites: Sites::new(sites),
            store: Arc::new(stores),
            clock: Arc::new(move || clock_world.now()),
            clock_scale: 1.0,
            // The wake-up messages of every site go on the drill's one queue.
            waker: Some(waker),
            parsed: StateCache::default(),
        };
        let neighbours = worlds[1..]
            .iter()
            .map(|nw| {
                Signer::hs256(&nw.site, AGENT_SECRET.as_bytes())
                    .map(|signer| Neighbour {
                        world: nw.clone(),
                        signer,
                    })
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>()?;
        let signer = Signer::hs256(&w.site, AGENT_SECRET.as_bytes()).map_err(|e| e.to_string())?;
        Ok(Sim {
            scenario,
            options,
            world,
            neighbours,
            deps: Arc::new(deps),
            signer,
            queue: BinaryHeap::new(),
            state: None,
            last_audit: None,
            violations: Vec::new(),
            invocations: 0,
            reached: Reached::default(),
        })
    }

    async fn run(mut self) -> Simulated {
        self.schedule_all();
        let end = self.scenario.duration.millis();
        let max_nodes = self.options.policy.max_nodes;
        let mut gap = GapMeter::default();
        let mut last = 0;
        gap.observe(0, 0, 0);
        while let Some(Reverse((due_t, due))) = self.queue.pop() {
            if due_t > end {
                break;
            }
            // An invocation that waited (a timeout) pushed the clock past what was due.
            let t = due_t.max(self.world.t_ms());
            tokio::time::sleep_until(self.world.instant(t)).await;
            self.measure_until(&mut gap, last, t, max_nodes);
            self.world.lock().cloud.accrue(self.world.now());
            self.handle(due).await;
            self.measure_at(&mut gap, self.world.t_ms(), max_nodes);
            last = self.world.t_ms();
            if self.options.stop_at_violation && !self.violations.is_empty() {
                break;
            }
        }
        self.check_neighbours();
        let end_at = self.world.start.plus_millis(end);
        self.measure_until(&mut gap, last, end.max(last), max_nodes);
        let mut w = self.world.lock();
        w.cloud.accrue(end_at);
        let measured = Measured {
            cost_usd: w.cloud.cost_usd(),
            steps: self.invocations,
            gap: gap.result(end),
            ..Measured::default()
        };
        let mut records = std::mem::take(&mut w.records);
        records.sort_by_key(|r| r.t_ms);
        drop(w);
        Simulated {
            records,
            measured,
            violations: self.violations,
            invocations: self.invocations,
            reached: self.reached,
        }
    }

    /// The gap meter sees every instance that became running between two drill instants.
    fn measure_until(&self, gap: &mut GapMeter, from: i64, to: i64, max_nodes: u32) {
        let w = self.world.lock();
        let missing = w.home.missing_nodes().min(max_nodes);
        let start = self.world.start;
        for at in w
            .cloud
            .ready_between(start.plus_millis(from), start.plus_millis(to))
        {
            gap.observe(at.since(start), missing, w.cloud.running(at));
        }
    }

    fn measure_at(&self, gap: &mut GapMeter, t: i64, max_nodes: u32) {
        let w = self.world.lock();
        let now = self.world.start.plus_millis(t);
        gap.observe(
            t,
            w.home.missing_nodes().min(max_nodes),
            w.cloud.running(now),
        );
    }

    fn schedule_all(&mut self) {
        for (t, item) in scheduled(self.scenario) {
            self.queue.push(Reverse((t, item.into())));
        }
    }

    async fn handle(&mut self, due: Due) {
        match due {
            Due::Event(i) => {
                let e = self.scenario.events[i].clone();
                self.world_event(&e).await;
            }
            Due::Probe => {
                let deps = self.deps.clone();
                self.invoke(bodies::probe(&deps)).await;
            }
            Due::Heartbeat => {
                // The heartbeat timer delivers the spool first, like the real agent.
                self.deliver_spool().await;
                let now = self.world.now();
                let hb = self.world.lock().home.heartbeat(now);
                if let Some(hb) = hb {
                    self.send_agent(&Input::Heartbeat(hb)).await;
                }
                for i in 0..self.neighbours.len() {
                    self.neighbour_heartbeat(i).await;
                }
            }
            Due::Witness => {
                let now = self.world.now();
                let report = self.world.lock().home.witness(now);
                self.send_agent(&Input::Witness(report)).await;
            }
            Due::Wake(at, attempt, site) => self.wake(at, attempt, site).await,
            Due::Expect(i) => {
                let x = &self.scenario.expectations[i];
                let observed = self.observe();
                for (ok, what) in check_point(x, &observed) {
                    self.world.record(Kind::Expect { ok, what });
                }
            }
        }
    }

    /// Runs one invocation of the engine; `None` if the process died in it (a crash point).
    async fn invoke<T>(&mut self, f: impl std::future::Future<Output = T>) -> Option<T> {
        let out = tokio::select! {
            biased;
            () = self.world.crash.notified() => None,
            out = f => Some(out),
        };
        self.after_invocation();
        out
    }

    /// A queue message for a wake-up, as the `wake` function receives it.
    async fn wake(&mut self, at: i64, attempt: u8, site: usize) {
        let name = match site {
            0 => &self.scenario.world.site,
            n => &self.neighbours[n - 1].world.site,
        };
        let text = serde_json::json!({"site": name, "at": at}).to_string();
        let deps = self.deps.clone();
        let done = self
            .invoke(bodies::wake(&deps, &serde_json::Value::String(text)))
            .await;
        if matches!(done, Some(Ok(_))) {
            return;
        }
        let t = self.world.t_ms();
        if attempt + 1 >= WAKE_MAX_DEQUEUE {
            self.world.record(Kind::Event {
                text: format!(
                    "wake-up message failed {WAKE_MAX_DEQUEUE} times: parked in the poison queue"
                ),
            });
        } else {
            self.queue.push(Reverse((
                t + WAKE_RETRY_MS,
                Due::Wake(at, attempt + 1, site),
            )));
        }
    }

    /// Signs and posts what the agent (or the witness) sends; returns the HTTP status, or
    /// `None` if the function died before answering.
    async fn send_agent(&mut self, input: &Input) -> Option<(u16, String)> {
        let (payload, body) = burst_wire::agent_request(input)?;
        let now = self.world.now();
        let agent_now = self.world.lock().home.agent_now(now);
        let token = self
            .signer
            .token(&body, agent_now.millis().div_euclid(1000))
            .ok()?;
        let route = payload.route();
        let function = Function::from_name(route.trim_start_matches("/api/"))?;
        let request = Request {
            method: "POST".into(),
            path: route.into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("authorization".into(), format!("Bearer {token}")),
            ],
            body,
        };
        let deps = self.deps.clone();
        let response = self.invoke(bodies::http(&deps, function, &request)).await?;
        let text = String::from_utf8_lossy(&response.body).into_owned();
        // Acknowledged: the input must be in the saved state now.
        if (200..300).contains(&response.status)
            && let Some((key, _)) = payload
                .parse(&request.body)
                .ok()
                .as_ref()
                .and_then(Input::dedupe_key)
        {
            self.check_reflected(&key);
        }
        Some((response.status, text))
    }

    /// A neighbour's agent sends its heartbeat (its home is healthy): it must be taken.
    async fn neighbour_heartbeat(&mut self, i: usize) {
        let (world, now) = (self.neighbours[i].world.clone(), self.world.now());
        let Some(hb) = world.lock().home.heartbeat(now) else {
            return;
        };
        let Some((_, body)) = burst_wire::agent_request(&Input::Heartbeat(hb)) else {
            return;
        };
        let Ok(token) = self.neighbours[i]
            .signer
            .token(&body, now.millis().div_euclid(1000))
        else {
            return;
        };
        let request = Request {
            method: "POST".into(),
            path: "/api/heartbeat".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("authorization".into(), format!("Bearer {token}")),
            ],
            body,
        };
        let deps = self.deps.clone();
        let response = self
            .invoke(bodies::http(&deps, Function::Heartbeat, &request))
            .await;
        if let Some(r) = response
            && r.status != 200
        {
            let detail = format!(
                "{}: {} {}",
                world.site,
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            self.violate(
                self.world.t_ms(),
                "a neighbour's heartbeats are taken",
                detail,
            );
        }
    }

    /// At the end: each neighbour stayed healthy, its scale set, messages and workloads
    /// untouched; one line each in the timeline.
    fn check_neighbours(&mut self) {
        let end = self.world.t_ms();
        for i in 0..self.neighbours.len() {
            let world = self.neighbours[i].world.clone();
            let (writes, messages) = {
                let w = world.lock();
                let count = |f: fn(&Kind) -> bool| w.records.iter().filter(|r| f(&r.kind)).count();
                (
                    count(|k| matches!(k, Kind::Scale { .. })),
                    count(|k| matches!(k, Kind::Notify { .. })),
                )
            };
            let touched: Vec<String> = world
                .lock()
                .records
                .iter()
                .filter(|r| {
                    matches!(
                        r.kind,
                        Kind::Scale { .. } | Kind::Notify { .. } | Kind::Migrate { .. }
                    )
                })
                .map(|r| format!("{} {}", r.kind_name(), r.detail()))
                .collect();
            let state = world
                .store
                .get(&world.site)
                .and_then(|d| SiteState::from_json(&d.bytes).ok());
            let mode = state.as_ref().map(|s| s.mode);
            let incidents = state.as_ref().map_or(0, |s| s.incidents.len());
            let changed_mode = state
                .as_ref()
                .is_some_and(|s| s.audit.iter().any(|e| e.what.starts_with("mode ")));
            if !touched.is_empty() {
                self.violate(
                    end,
                    "nothing crosses between sites",
                    format!("{}: {}", world.site, touched.join("; ")),
                );
            }
            if mode != Some(burst_core::Mode::Healthy) || incidents > 0 || changed_mode {
                self.violate(
                    end,
                    "a healthy neighbour stays healthy",
                    format!(
                        "{}: mode {:?}, {incidents} incident(s), mode changed {changed_mode}",
                        world.site, mode
                    ),
                );
            }
            self.world.record(Kind::Event {
                text: format!(
                    "site {} (watched beside {}): mode {}, scale set at {} after {writes} write(s), {messages} message(s), {incidents} incident(s)",
                    world.site,
                    self.scenario.world.site,
                    mode.map_or("never saved".into(), |m| m.to_string()),
                    world.lock().cloud.capacity(),
                ),
            });
        }
    }

    /// Delivers the agent's spool in order while the cloud takes it, classifying each answer
    /// as the agent does (delivered, refused for good, or try again later).
    async fn deliver_spool(&mut self) {
        loop {
            let next = self.world.lock().home.next_to_deliver();
            let Some(event) = next else { break };
            let Some((status, body)) = self.send_agent(&Input::Ups(event)).await else {
                break;
            };
            let reply = burst_agent::deliver::Reply {
                status,
                body: body.clone(),
                elapsed: std::time::Duration::ZERO,
                sent_at: chrono::DateTime::from_timestamp_millis(self.world.now().millis())
                    .unwrap_or_default(),
                date: None,
                location: None,
            };
            match burst_agent::deliver::Outcome::of_reply(&reply) {
                burst_agent::deliver::Outcome::Delivered { .. } => {
                    self.world.lock().home.delivered()
                }
                burst_agent::deliver::Outcome::Rejected { status, .. } => {
                    self.world.lock().home.delivered();
                    self.world.record(Kind::Event {
                        text: format!("agent: UPS event refused for good (HTTP {status}): {body}"),
                    });
                }
                burst_agent::deliver::Outcome::Retry { .. } => break,
            }
        }
    }

    async fn send_tailscale(&mut self, kind: &str, device: Option<&str>) {
        let now = self.world.now();
        let body = serde_json::json!([{
            "timestamp": now.rfc3339(), "version": 1, "type": kind,
            "tailnet": "example.com", "message": format!("{kind} (drill)"),
            "data": {"nodeID": "nDrill1CNTRL", "deviceName": device.unwrap_or("k8s-home-0")}
        }])
        .to_string()
        .into_bytes();
        let signature = burst_tailscale::sign(TAILSCALE_SECRET, now.millis() / 1000, &body);
        let request = Request {
            method: "POST".into(),
            path: "/api/tailscale".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("tailscale-webhook-signature".into(), signature),
            ],
            body,
        };
        let deps = self.deps.clone();
        self.invoke(bodies::http(&deps, Function::Tailscale, &request))
            .await;
    }

    async fn world_event(&mut self, e: &Event) {
        self.world.record(Kind::Event { text: describe(e) });
        let now = self.world.now();
        {
            let mut w = self.world.lock();
            let w = &mut *w;
            let arm = &mut w.cloud.arm;
            if let Some(secs) = e.arm_throttle {
                arm.throttle_next = Some(secs);
            }
            arm.conflicts_next += e.arm_conflicts.unwrap_or(0);
            arm.errors_next += e.arm_errors.unwrap_or(0);
            arm.read_errors_next += e.arm_read_errors.unwrap_or(0);
            arm.timeouts_next += e.arm_timeouts.unwrap_or(0);
            arm.lost_next += e.arm_lost_answers.unwrap_or(0);
            if let Some(span) = e.arm_down {
                arm.down_until = Some(now.plus_millis(span.millis()));
            }
            if let Some(span) = e.spot_no_capacity {
                arm.no_capacity_until = Some(now.plus_millis(span.millis()));
            }
            if let Some(secs) = e.discord_rate_limit {
                w.cloud.discord_rate_limit_next(secs);
            }
            if e.discord_gone == Some(true) {
                w.cloud.discord_gone();
            }
            w.cloud.migrate_failures += e.migrate_failures.unwrap_or(0);
            if let Some(span) = e.store_down {
                w.store_down_until = Some(now.plus_millis(span.millis()));
            }
            w.store_conflicts += e.store_conflicts.unwrap_or(0);
            if e.crash.is_some() {
                w.crash_at = e.crash;
            }
        }
        if let Some(n) = e.evict {
            let (evicted, capacity) = {
                let mut w = self.world.lock();
                (w.cloud.evict(n, now), w.cloud.capacity())
            };
            self.world.record(Kind::Evict { evicted, capacity });
        }
        let fired = self.world.lock().home.apply(e, now);
        if let Some(event) = fired {
            if e.drop == Some(true) {
                self.world.record(Kind::Event {
                    text: format!("UPS event {} lost: the agent never sends it", event.id),
                });
            } else {
                let copies = if e.duplicate == Some(true) { 2 } else { 1 };
                let mut w = self.world.lock();
                for _ in 0..copies {
                    w.home.spool(event.clone());
                }
            }
        }
        if let Some(id) = &e.repeat {
            let mut w = self.world.lock();
            match w.home.sent(id) {
                Some(old) => w.home.spool(old),
                None => {
                    drop(w);
                    self.world.record(Kind::Event {
                        text: format!("no UPS event {id:?} was sent before: nothing to repeat"),
                    });
                }
            }
        }
        let (spooled, online) = {
            let w = self.world.lock();
            (w.home.spooled(), w.home.online())
        };
        if spooled > 0 && !online {
            self.world.record(Kind::Event {
                text: format!("agent offline: {spooled} event(s) spooled"),
            });
        }
        self.deliver_spool().await;
        if let Some(kind) = &e.tailscale {
            self.send_tailscale(kind, e.device.as_deref()).await;
        }
    }

    /// After each invocation: wake-ups asked for go on the queue; the saved state's mode
    /// changes go in the timeline; the safety rules are checked.
    fn after_invocation(&mut self) {
        self.invocations += 1;
        let start = self.world.start;
        let wakes = std::mem::take(&mut self.world.lock().wakes);
        for (due, wake) in wakes {
            let site = self
                .neighbours
                .iter()
                .position(|n| n.world.site == wake.site)
                .map_or(0, |i| i + 1);
            self.queue
                .push(Reverse((due.since(start), Due::Wake(wake.at, 0, site))));
        }
        let saved = std::mem::take(&mut self.world.lock().saved);
        for (at, tag, bytes) in saved {
            let t = at.since(start);
            // A replaced document was kept; the latest is in the engine's parsed cache (or,
            // after a crash right after its save, only in the store).
            let state = match bytes {
                Some(bytes) => self.parse_saved(t, &bytes),
                None => match self.deps.parsed.latest(&self.scenario.world.site) {
                    Some((cached, s)) if cached == tag => {
                        self.check_size(t, &tag);
                        Some(s)
                    }
                    _ => match self.world.store.get(&self.scenario.world.site) {
                        Some(doc) if doc.etag == tag => self.parse_saved(t, &doc.bytes),
                        _ => None,
                    },
                },
            };
            let Some(state) = state else { continue };
            self.saved_state(t, at, tag, state);
        }
        let (moves, downs) = {
            let mut w = self.world.lock();
            (
                std::mem::take(&mut w.stateful_moves),
                std::mem::take(&mut w.scale_downs_with_workloads),
            )
        };
        for (at, ok) in moves {
            if !ok {
                self.violate(
                    at.since(start),
                    invariants::STATEFUL,
                    "moved without quorum, with an up vote or before the lease expired".into(),
                );
            }
        }
        for (at, from, to) in downs {
            self.violate(
                at.since(start),
                "no scale-down before the workloads are home",
                format!("capacity {from} → {to} with workloads in the cloud"),
            );
        }
    }

    /// One saved state: its mode changes go in the timeline, and the rules are checked
    /// against the state saved before it.
    fn saved_state(&mut self, t: i64, now: Timestamp, tag: String, state: Arc<SiteState>) {
        self.record_mode_changes(&state);
        let r = &mut self.reached;
        r.outage |= state.mode == burst_core::Mode::Outage;
        r.stateful_in_cloud |= state.placement.stateful.side == burst_core::state::Side::Cloud;
        r.budget_capped |= state.budget.capped;
        r.recovered |= r.outage && state.mode == burst_core::Mode::Healthy;
        // The month's spend stays within the budget, give or take what the largest capacity
        // costs between two probes (the last of the budget may be spent on one node).
        let p = &self.options.policy;
        if let Some(budget) = p.monthly_budget_usd {
            let probe_h = self.scenario.world.probe_interval.0.as_secs_f64() / 3600.0;
            let slack = f64::from(p.max_nodes) * p.price_per_node_hour_usd * 2.0 * probe_h;
            if state.budget.spent_usd > budget + slack {
                let detail = format!(
                    "spent {:.3} of {budget:.2} USD (slack {slack:.3})",
                    state.budget.spent_usd
                );
                self.violate(t, "the monthly budget is not overrun", detail);
            }
        }
        let prev = self.state.take().map(|(_, s)| s);
        for rule in invariants::broken(prev.as_deref(), &state, now, &self.options.policy) {
            let detail = format!(
                "mode {}, desired {} (before {:?}), budget capped {}",
                state.mode,
                state.capacity.desired,
                prev.as_ref().map(|p| p.capacity.desired),
                state.budget.capped
            );
            self.violate(t, rule, detail);
        }
        self.state = Some((tag, state));
    }

    /// A saved document: within its size bound and readable.
    fn parse_saved(&mut self, t: i64, bytes: &[u8]) -> Option<Arc<SiteState>> {
        if bytes.len() > STATE_BOUND_BYTES {
            self.violate(
                t,
                "state document within its size bound",
                format!("{} bytes", bytes.len()),
            );
        }
        match SiteState::from_json(bytes) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                self.violate(t, "the saved state is readable", e.to_string());
                None
            }
        }
    }

    /// The size of the latest document (its bytes stay in the store).
    fn check_size(&mut self, t: i64, tag: &str) {
        let len = self
            .world
            .store
            .with_doc(&self.scenario.world.site, |v| {
                (v.etag == tag).then_some(v.bytes.len())
            })
            .flatten();
        if let Some(len) = len
            && len > STATE_BOUND_BYTES
        {
            self.violate(
                t,
                "state document within its size bound",
                format!("{len} bytes"),
            );
        }
    }

    fn violate(&mut self, t_ms: i64, rule: &str, detail: String) {
        self.violations.push(Violation {
            t_ms,
            rule: rule.to_string(),
            detail,
        });
    }

    /// An acknowledged input must be remembered in the saved state (nothing lost).
    fn check_reflected(&mut self, key: &str) {
        let now = self.world.now();
        let ok = self
            .state
            .as_ref()
            .is_some_and(|(_, s)| dedupe::seen(s, key, now));
        if !ok {
            let t = self.world.t_ms();
            self.violate(
                t,
                "every acknowledged input is in the saved state",
                key.to_string(),
            );
        }
    }

    /// Mode changes of the saved state since the last one seen, from its audit trail.
    fn record_mode_changes(&mut self, state: &SiteState) {
        for e in burst_core::audit::since(state, self.last_audit.as_ref()) {
            if let Some(change) = e.what.strip_prefix("mode ")
                && let Some((from, to)) = change.split_once(" → ")
            {
                self.world.lock().records.push(Record {
                    t_ms: e.at.since(self.world.start),
                    kind: Kind::Mode {
                        from: from.to_string(),
                        to: to.to_string(),
                        why: e.why.clone(),
                    },
                });
            }
        }
        self.last_audit = state.audit.last().cloned();
    }

    fn observe(&self) -> Observed {
        let state = self.state.as_ref().map(|(_, s)| s.as_ref());
        let w = self.world.lock();
        let now = self.world.now();
        Observed {
            mode: state
                .map(|s| s.mode.as_str().to_string())
                .unwrap_or_else(|| "healthy".into()),
            capacity: w.cloud.capacity(),
            running: w.cloud.running(now),
            critical_in_cloud: w.cloud.in_cloud(Tier::Critical),
            stateful_in_cloud: w.cloud.in_cloud(Tier::Stateful),
            incident_open: state.is_some_and(|s| s.open_incident().is_some()),
            webhook_gone: state.is_some_and(|s| s.webhook_gone.is_some()),
            undelivered: state.map_or(0, |s| {
                s.posts.len()
                    + s.incidents
                        .iter()
                        .filter(|i| i.delivered < i.revision)
                        .count()
            }),
        }
    }
}

/// One line saying what a timeline event does.
pub fn describe(e: &Event) -> String {
    let mut parts = Vec::new();
    if let Some(n) = &e.note {
        parts.push(n.clone());
    }
    if let Some(u) = &e.ups {
        let mut s = format!("UPS {u}");
        if let Some(st) = &e.status {
            s.push_str(&format!(" [{st}]"));
        }
        if let Some(c) = e.charge {
            s.push_str(&format!(" {c} %"));
        }
        parts.push(s);
    }
    let updown = |name: &str, v: Option<crate::scenario::UpDown>| {
        v.map(|v| {
            format!(
                "{name} {}",
                if v == crate::scenario::UpDown::Up {
                    "up"
                } else {
                    "down"
                }
            )
        })
    };
    parts.extend(updown("home", e.home));
    parts.extend(updown("internet", e.internet));
    parts.extend(updown("cloud path", e.cloud_path));
    parts.extend(updown("home API", e.home_api));
    if let Some(n) = e.nodes_ready {
        parts.push(format!("nodes ready {n}"));
    }
    if let Some(h) = e.heartbeats {
        parts.push(format!("heartbeats {h:?}").to_lowercase());
    }
    if let Some(d) = e.devices_online {
        parts.push(format!("tailscale devices online {d}"));
    }
    if let Some(k) = &e.tailscale {
        parts.push(format!("tailscale webhook {k}"));
    }
    if let Some(n) = e.evict {
        parts.push(format!("evict {n} spot instance(s)"));
    }
    if let Some(s) = e.arm_throttle {
        parts.push(format!("ARM throttles the next write (Retry-After {s})"));
    }
    if let Some(n) = e.arm_conflicts {
        parts.push(format!("ARM answers the next {n} write(s) with 409"));
    }
    if let Some(s) = e.discord_rate_limit {
        parts.push(format!("Discord rate-limits the next message ({s} s)"));
    }
    if e.discord_gone == Some(true) {
        parts.push("Discord webhook deleted".into());
    }
    parts.extend(describe_faults(e));
    parts.join(", ")
}

/// The virtual drills' faults of a timeline event, one phrase each.
fn describe_faults(e: &Event) -> Vec<String> {
    let span = |s: crate::scenario::Span| humantime::format_duration(s.0).to_string();
    let mut parts = Vec::new();
    if let Some(id) = &e.id {
        parts.push(format!("event id {id}"));
    }
    if e.duplicate == Some(true) {
        parts.push("delivered twice".into());
    }
    if let Some(id) = &e.repeat {
        parts.push(format!("event {id} delivered again"));
    }
    if let Some(b) = e.backdate {
        parts.push(format!("dated {} earlier", span(b)));
    }
    if let Some(w) = e.witness {
        parts.push(format!("witness sees home {w:?}").to_lowercase());
    }
    if let Some(t) = e.tailscale_api {
        parts.push(format!("Tailscale devices API {t:?}").to_lowercase());
    }
    if let Some(s) = e.agent_skew_s {
        parts.push(format!("agent clock {s:+} s"));
    }
    let counts = [
        (e.arm_errors, "ARM answers 500 to the next"),
        (e.arm_read_errors, "ARM reads fail for the next"),
        (e.arm_timeouts, "ARM writes time out for the next"),
        (
            e.arm_lost_answers,
            "ARM write answers are lost for the next",
        ),
        (e.store_conflicts, "a concurrent writer wins the next"),
        (e.migrate_failures, "workload moves fail for the next"),
    ];
    for (n, what) in counts {
        if let Some(n) = n {
            parts.push(format!("{what} {n}"));
        }
    }
    if let Some(s) = e.arm_down {
        parts.push(format!("ARM down for {}", span(s)));
    }
    if let Some(s) = e.spot_no_capacity {
        parts.push(format!("no Spot capacity for {}", span(s)));
    }
    if let Some(s) = e.store_down {
        parts.push(format!("state store down for {}", span(s)));
    }
    if let Some(c) = e.crash {
        parts.push(
            format!("the next invocation crashes {c:?}")
                .replace("AfterSave", "after its save")
                .replace("AfterAction", "after an action"),
        );
    }
    if e.status.is_some() && e.ups.is_none() {
        parts.push(format!(
            "ups.status now {:?} (no notify)",
            e.status.as_deref().unwrap_or("")
        ));
    }
    parts
}
