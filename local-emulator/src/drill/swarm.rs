//! Swarm testing: many random scenarios (event mixes and fault schedules over hours of virtual
//! time), each run through the engine ([`super::simulated`]) with the safety rules checked
//! after every invocation. A scenario that breaks a rule is shrunk (events dropped, the run
//! cut short) while it still breaks the same rule, and printed as a scenario file that
//! reproduces it with `func-emulator drill --virtual`.
//!
//! Everything random comes from the swarm's seed: scenario `i` of `--seed S` is generated from
//! its own seed (printed on failure), so `--swarm 1 --seed <that>` regenerates it alone.

use super::simulated::{RunOptions, Simulated, Violation, simulate};
use crate::scenario::{
    CrashPoint, Event, Scenario, Span, StopResume, TailscaleApi, UpDown, WitnessView, World,
};
use burst_core::Policy;
use std::time::{Duration, Instant};

/// One scenario that broke a rule.
#[derive(Debug)]
pub struct Failure {
    /// Regenerates the scenario: `func-emulator drill --swarm 1 --seed <seed>`.
    pub seed: u64,
    pub violation: Violation,
    /// The shrunk scenario, as a scenario file.
    pub toml: String,
    pub events_before: usize,
    pub events_after: usize,
}

/// What a swarm run did.
#[derive(Debug, Default)]
pub struct SwarmReport {
    pub scenarios: usize,
    pub invocations: u64,
    pub virtual_hours: f64,
    pub seconds: f64,
    pub failures: Vec<Failure>,
    /// Scenarios that reached an outage / moved the stateful tier / were capped by the budget
    /// / recovered from an outage.
    pub reached: [usize; 4],
}

impl SwarmReport {
    /// The one summary line.
    pub fn summary(&self) -> String {
        let rate = if self.seconds > 0.0 {
            self.virtual_hours / self.seconds
        } else {
            0.0
        };
        format!(
            "swarm: {} scenarios, {} invocations, {:.0} virtual hours in {:.1} s ({:.0} scenario-hours per CPU-second; {} reached an outage, {} recovered, {} moved the stateful tier, {} were capped by the budget): {}",
            self.scenarios,
            self.invocations,
            self.virtual_hours,
            self.seconds,
            rate,
            self.reached[0],
            self.reached[3],
            self.reached[1],
            self.reached[2],
            if self.failures.is_empty() {
                "every rule held".to_string()
            } else {
                format!("{} broke a rule", self.failures.len())
            }
        )
    }
}

/// The seed of scenario `i` of a swarm seeded with `seed`.
pub fn scenario_seed(seed: u64, i: usize) -> u64 {
    // SplitMix64's mixing step: neighbouring swarm seeds give unrelated scenarios.
    let mut z = seed.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs `count` random scenarios from `seed` (with `--swarm 1`, the scenario of seed `seed`
/// itself). Failures are shrunk; at most `max_failures` are kept.
pub fn run(count: usize, seed: u64, max_failures: usize) -> SwarmReport {
    let started = Instant::now();
    let mut report = SwarmReport::default();
    for i in 0..count {
        let s_seed = if count == 1 {
            seed
        } else {
            scenario_seed(seed, i)
        };
        let scenario = generate(s_seed);
        let sim = check(&scenario);
        report.scenarios += 1;
        report.invocations += sim.invocations;
        report.virtual_hours += scenario.duration.0.as_secs_f64() / 3600.0;
        let r = sim.reached;
        for (count, hit) in report.reached.iter_mut().zip([
            r.outage,
            r.stateful_in_cloud,
            r.budget_capped,
            r.recovered,
        ]) {
            *count += usize::from(hit);
        }
        if let Some(v) = sim.violations.first()
            && report.failures.len() < max_failures
        {
            let events_before = scenario.events.len();
            let shrunk = shrink(scenario, &v.rule);
            let violation = check(&shrunk)
                .violations
                .into_iter()
                .find(|x| x.rule == v.rule)
                .unwrap_or_else(|| v.clone());
            report.failures.push(Failure {
                seed: s_seed,
                violation,
                toml: to_toml(&shrunk),
                events_before,
                events_after: shrunk.events.len(),
            });
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

fn check(scenario: &Scenario) -> Simulated {
    simulate(
        scenario,
        &RunOptions {
            policy: scenario.policy.clone(),
            seed: 0,
            stop_at_violation: true,
        },
    )
}

fn breaks(scenario: &Scenario, rule: &str) -> bool {
    check(scenario).violations.iter().any(|v| v.rule == rule)
}

/// Drops what is not needed to break `rule`: the time after the first break, then each event
/// in turn (latest first), until no single removal keeps the break.
pub fn shrink(mut scenario: Scenario, rule: &str) -> Scenario {
    scenario.name = format!("{}-shrunk", scenario.name);
    if let Some(v) = check(&scenario).violations.iter().find(|v| v.rule == rule) {
        let cut = Span(Duration::from_millis(
            u64::try_from(v.t_ms).unwrap_or(0) + 60_000,
        ));
        if cut < scenario.duration {
            let mut shorter = scenario.clone();
            shorter.duration = cut;
            shorter.events.retain(|e| e.t <= cut);
            if breaks(&shorter, rule) {
                scenario = shorter;
            }
        }
    }
    loop {
        let mut progressed = false;
        let mut i = scenario.events.len();
        while i > 0 {
            i -= 1;
            let mut fewer = scenario.clone();
            fewer.events.remove(i);
            if valid(&fewer) && breaks(&fewer, rule) {
                scenario = fewer;
                progressed = true;
            }
        }
        if !progressed {
            return scenario;
        }
    }
}

/// A shrunk scenario must still parse (a `repeat` needs the event it repeats).
fn valid(s: &Scenario) -> bool {
    Scenario::parse(&to_toml(s), "shrunk").is_ok()
}

/// The scenario as a file `func-emulator drill --virtual` reads; `[world]` and `[policy]` list
/// only what differs from the defaults.
pub fn to_toml(s: &Scenario) -> String {
    let printed = toml::Value::try_from(s).map(|mut v| {
        if let Some(table) = v.as_table_mut() {
            table.remove("expect");
            drop_defaults(table, "world", toml::Value::try_from(World::default()));
            drop_defaults(table, "policy", toml::Value::try_from(Policy::default()));
        }
        v
    });
    printed
        .and_then(|v| toml::to_string(&v))
        .unwrap_or_else(|e| format!("# cannot print the scenario: {e}\n"))
}

/// Removes the keys of `table[name]` that equal the defaults (and the table if none is left).
fn drop_defaults(
    table: &mut toml::Table,
    name: &str,
    defaults: Result<toml::Value, toml::ser::Error>,
) {
    let Ok(toml::Value::Table(defaults)) = defaults else {
        return;
    };
    if let Some(toml::Value::Table(t)) = table.get_mut(name) {
        t.retain(|k, v| defaults.get(k) != Some(v));
        if t.is_empty() {
            table.remove(name);
        }
    }
}

/// A random scenario: a world, a policy, and a timeline of power, network, cluster and fault
/// events over 2–8 hours.
pub fn generate(seed: u64) -> Scenario {
    let mut r = fastrand::Rng::with_seed(seed);
    let hours = r.u64(2..=8);
    let duration = Span(Duration::from_secs(hours * 3600));
    let nodes_total = r.u32(3..=9);
    let world = World {
        nodes_total,
        devices_total: nodes_total,
        witness_interval: r.bool().then(|| Span(Duration::from_secs(r.u64(20..=90)))),
        boot_time: Span(Duration::from_secs(r.u64(45..=300))),
        critical_workloads: r.u32(1..=5),
        stateful_workloads: r.u32(0..=2),
        lease: r.bool(),
        ..World::default()
    };
    let policy = random_policy(&mut r);
    // A start anywhere in 2026, often close to a month's end (budgets reset on the 1st).
    let day = if r.u8(0..4) == 0 { 28 } else { r.u32(1..=28) };
    let start = format!(
        "2026-{:02}-{:02}T{:02}:{:02}:00Z",
        r.u32(1..=12),
        day,
        r.u32(0..24),
        r.u32(0..60)
    );
    let mut events = Vec::new();
    let n = r.usize(4..=40);
    let mut ids = Vec::new();
    for _ in 0..n {
        let t = Span(Duration::from_secs(r.u64(0..hours * 3600)));
        let e = random_event(&mut r, t, nodes_total, &mut ids);
        events.push(e);
    }
    // Half the scenarios end with home healed for their last third, so recovery and the
    // scale-down rules are exercised as much as the outage.
    if r.bool() {
        let from = hours * 3600 * 2 / 3;
        let at = Span(Duration::from_secs(r.u64(from..hours * 3600)));
        events.retain(|e| e.t < at);
        events.push(heal(at, nodes_total));
    }
    events.sort_by_key(|e| e.t);
    // A `repeat` must come after the event it repeats: drop the ones that do not.
    let mut seen = Vec::new();
    events.retain(|e| {
        if let Some(id) = &e.id {
            seen.push(id.clone());
        }
        e.repeat.as_ref().is_none_or(|r| seen.contains(r))
    });
    Scenario {
        name: format!("swarm-{seed}"),
        description: format!("generated by func-emulator drill --swarm 1 --seed {seed}"),
        start: Some(start),
        duration,
        world,
        policy,
        events,
        expectations: Vec::new(),
    }
}

/// Everything back to normal at `t`: power, network, cluster, agent, witness, Tailscale.
fn heal(t: Span, nodes: u32) -> Event {
    Event {
        t,
        note: Some("everything back to normal".into()),
        ups: Some("ONLINE".into()),
        status: Some("OL CHRG".into()),
        charge: Some(100.0),
        home: Some(UpDown::Up),
        internet: Some(UpDown::Up),
        cloud_path: Some(UpDown::Up),
        home_api: Some(UpDown::Up),
        nodes_ready: Some(nodes),
        heartbeats: Some(StopResume::Resume),
        devices_online: Some(nodes),
        witness: Some(WitnessView::Follow),
        tailscale_api: Some(TailscaleApi::Up),
        agent_skew_s: Some(0),
        ..Event::default()
    }
}

fn random_policy(r: &mut fastrand::Rng) -> Policy {
    let d = Policy::default();
    let max_nodes = r.u32(1..=8);
    let p = Policy {
        min_nodes: if r.u8(0..5) == 0 { 1.min(max_nodes) } else { 0 },
        max_nodes,
        monthly_budget_usd: Some([0.5, 1.0, 3.0, 20.0, 100.0][r.usize(0..5)]),
        scale_down_delay_s: [0, 300, 1800][r.usize(0..3)],
        burst_ahead: r.bool(),
        ..d.clone()
    };
    if p.validate().is_ok() { p } else { d }
}

const UPS_TYPES: [&str; 8] = [
    "ONBATT", "ONLINE", "LOWBATT", "COMMBAD", "COMMOK", "NOCOMM", "ONBATT", "ONLINE",
];
const TAILSCALE_KINDS: [&str; 4] = [
    "nodeKeyExpiringInOneDay",
    "nodeKeyExpired",
    "nodeCreated",
    "nodeApproved",
];

fn up_down(r: &mut fastrand::Rng) -> UpDown {
    if r.bool() { UpDown::Up } else { UpDown::Down }
}

fn random_event(r: &mut fastrand::Rng, t: Span, nodes: u32, ids: &mut Vec<String>) -> Event {
    let mut e = Event {
        t,
        ..Event::default()
    };
    match r.u8(0..24) {
        0..=5 => {
            let kind = UPS_TYPES[r.usize(0..UPS_TYPES.len())];
            e.ups = Some(kind.into());
            if kind != "COMMBAD" && kind != "NOCOMM" {
                e.charge = Some(f64::from(r.u8(5..=100)));
                if r.bool() {
                    e.runtime = Some(r.u64(60..=3600));
                }
            }
            match r.u8(0..10) {
                0 => e.duplicate = Some(true),
                1 => e.backdate = Some(Span(Duration::from_secs(r.u64(1..=1800)))),
                2 => e.drop = Some(true),
                3 => {
                    let id = format!("ev{}", ids.len() + 1);
                    ids.push(id.clone());
                    e.id = Some(id);
                }
                _ => {}
            }
        }
        6 => match ids.last() {
            Some(id) => e.repeat = Some(id.clone()),
            None => e.home = Some(up_down(r)),
        },
        7 => e.home = Some(up_down(r)),
        8 => e.internet = Some(up_down(r)),
        9 => e.cloud_path = Some(up_down(r)),
        10 => e.home_api = Some(up_down(r)),
        11 => e.nodes_ready = Some(r.u32(0..=nodes)),
        12 => {
            e.heartbeats = Some(if r.bool() {
                StopResume::Stop
            } else {
                StopResume::Resume
            })
        }
        13 => {
            e.tailscale = Some(TAILSCALE_KINDS[r.usize(0..TAILSCALE_KINDS.len())].into());
            e.device = Some(format!("k8s-home-{}", r.u32(0..nodes)));
        }
        14 => e.evict = Some(r.u32(1..=3)),
        15 => match r.u8(0..6) {
            0 => e.arm_throttle = Some(r.u64(1..=120)),
            1 => e.arm_conflicts = Some(r.u32(1..=3)),
            2 => e.arm_errors = Some(r.u32(1..=3)),
            3 => e.arm_read_errors = Some(r.u32(1..=3)),
            4 => e.arm_timeouts = Some(r.u32(1..=2)),
            _ => e.arm_lost_answers = Some(r.u32(1..=2)),
        },
        16 => match r.u8(0..2) {
            0 => e.arm_down = Some(Span(Duration::from_secs(r.u64(60..=1800)))),
            _ => e.spot_no_capacity = Some(Span(Duration::from_secs(r.u64(60..=1800)))),
        },
        17 => {
            if r.bool() {
                e.discord_rate_limit = Some(f64::from(r.u8(1..=30)));
            } else {
                e.discord_gone = Some(r.u8(0..4) == 0);
            }
        }
        18 => {
            e.witness = Some(match r.u8(0..3) {
                0 => WitnessView::Up,
                1 => WitnessView::Down,
                _ => WitnessView::Follow,
            })
        }
        19 => {
            e.tailscale_api = Some(match r.u8(0..3) {
                0 => TailscaleApi::Up,
                1 => TailscaleApi::Down,
                _ => TailscaleApi::Unknown,
            })
        }
        20 => e.agent_skew_s = Some([-90, -30, 0, 20, 45, 200][r.usize(0..6)]),
        21 => {
            if r.bool() {
                e.store_down = Some(Span(Duration::from_secs(r.u64(10..=600))));
            } else {
                e.store_conflicts = Some(r.u32(1..=4));
            }
        }
        22 => {
            e.crash = Some(if r.bool() {
                CrashPoint::AfterSave
            } else {
                CrashPoint::AfterAction
            })
        }
        _ => {
            if r.bool() {
                e.migrate_failures = Some(r.u32(1..=3));
            } else {
                e.devices_online = Some(r.u32(0..=nodes));
            }
        }
    }
    e
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_scenarios_parse_back_from_their_file() {
        for seed in 0..50 {
            let s = generate(seed);
            let text = to_toml(&s);
            let back = Scenario::parse(&text, "generated").unwrap_or_else(|e| {
                panic!("seed {seed}: {e}\n{text}");
            });
            assert_eq!(back.events.len(), s.events.len(), "seed {seed}");
            assert_eq!(to_toml(&back), text, "seed {seed}: printing is stable");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_scenario_and_run() {
        let a = generate(7);
        let b = generate(7);
        assert_eq!(to_toml(&a), to_toml(&b));
        let (ra, rb) = (check(&a), check(&b));
        assert_eq!(ra.invocations, rb.invocations);
        assert_eq!(ra.records, rb.records);
        assert_ne!(to_toml(&generate(8)), to_toml(&a));
    }
}
