//! Prints the median wall time of a full 6-hour virtual drill (target: under 50 ms).
//!
//! `cargo bench -p func-emulator --bench drill`. Uses `scenarios/original-story.toml` stretched
//! to six hours of virtual time.

use func_emulator::drill::simulated;
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
    let mut times = Vec::new();
    let mut steps = 0;
    for _ in 0..30 {
        let start = Instant::now();
        let run = simulated::run(&scenario);
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        steps = run.steps;
        assert!(run.summary.passed, "the drill itself failed");
    }
    times.sort_by(f64::total_cmp);
    println!(
        "drill: 6 h virtual original-story, median {:.2} ms, min {:.2} ms, max {:.2} ms ({} core steps per run, {} runs)",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        steps,
        times.len()
    );
}
