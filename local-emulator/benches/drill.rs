//! Virtual drills through the engine, at full speed:
//! - one 6-hour virtual drill (`scenarios/original-story.toml` stretched to six hours), median
//!   of 30 runs (target: under 50 ms);
//! - swarm throughput: 100 random scenarios (seed 1; `SWARM=N SWARM_SEED=S` for a longer run),
//!   in scenario-hours per CPU-second (target: at least 100). One thread runs everything, so
//!   wall time is CPU time.
//!
//! `cargo bench -p func-emulator --bench drill`

use func_emulator::drill::simulated::{RunOptions, simulate};
use func_emulator::drill::swarm;
use func_emulator::scenario::{Scenario, Span};
use std::time::{Duration, Instant};

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/original-story.toml"
    );
    let mut scenario = match Scenario::load(std::path::Path::new(path)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    scenario.duration = Span(Duration::from_secs(6 * 3600));
    let options = RunOptions {
        policy: scenario.policy.clone(),
        seed: 0,
        stop_at_violation: false,
    };
    let mut times = Vec::new();
    let mut invocations = 0;
    for _ in 0..30 {
        let start = Instant::now();
        let run = simulate(&scenario, &options);
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        invocations = run.invocations;
        assert!(
            run.violations.is_empty(),
            "a rule broke: {:?}",
            run.violations
        );
    }
    times.sort_by(f64::total_cmp);
    println!(
        "drill: 6 h virtual original-story through the engine, median {:.2} ms, min {:.2} ms, max {:.2} ms ({} invocations per run, {:.1} µs each, {} runs)",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        invocations,
        times[times.len() / 2] * 1000.0 / invocations.max(1) as f64,
        times.len()
    );
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let report = swarm::run(env("SWARM", 100) as usize, env("SWARM_SEED", 1), 3);
    println!("{}", report.summary());
    assert!(report.failures.is_empty(), "the swarm found a broken rule");
}
