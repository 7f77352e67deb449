//! An exhaustive, bounded, explicit-state model check of the decision core
//! ([`burst_core::step`]) with [`stateright`].
//!
//! The model state is the site's state document plus the model clock, the actions handed out
//! and still waiting for an outcome, the UPS power last sent and an id counter. Each action of
//! the model is one input to `step` at the model's `now` (UPS events, probes, heartbeats,
//! witness reports, time passing, outcomes). In every reachable state within the depth bound
//! the checker asserts that capacity stays within its bounds and the budget, that an outage
//! keeps at least the formula's capacity, that capacity never drops before home is settled,
//! that the stateful tier moves to the cloud only with quorum, no Up vote and an expired lease,
//! and that at most one incident is open. A failure is printed as a drill scenario
//! ([`toml::scenario`]). The README of this crate explains the model and its choices.

pub mod model;
pub mod toml;

pub use model::{Act, BurstModel, State, test_policy};

use stateright::{Checker, HasDiscoveries, Model, Path};
use std::time::{Duration, Instant};

/// The result of one bounded check.
#[derive(Debug)]
pub struct Report {
    /// The bound: inputs per path.
    pub depth: usize,
    pub unique_states: usize,
    pub states: usize,
    /// stateright's depth reached (the initial state is depth 1).
    pub max_depth: usize,
    pub elapsed: Duration,
    /// Failed `always` properties, each with its counterexample as a drill scenario.
    pub failures: Vec<(&'static str, String)>,
    /// `sometimes` properties with no example found within the bound.
    pub not_found: Vec<&'static str>,
}

/// Runs a breadth-first check of `model` on `threads` threads: every state reachable with at
/// most `model.max_inputs` inputs is checked. (With more than one thread the breadth-first
/// order is approximate, so a state first reached by a longer path has less of its future
/// explored within the bound.)
pub fn check(model: BurstModel, threads: usize) -> Report {
    let started = Instant::now();
    let depth = model.max_inputs;
    let checker = model.clone().checker().threads(threads).spawn_bfs().join();
    let elapsed = started.elapsed();
    let mut failures = Vec::new();
    let mut not_found = Vec::new();
    for p in model.properties() {
        let found = checker.discovery(p.name);
        match (p.expectation.discovery_is_failure(), found) {
            (true, Some(path)) => {
                let path = shortest(&model, p.name).unwrap_or(path).into_vec();
                failures.push((p.name, toml::scenario(&model, p.name, &path)));
            }
            (false, None) => not_found.push(p.name),
            _ => {}
        }
    }
    Report {
        depth,
        unique_states: checker.unique_state_count(),
        states: checker.state_count(),
        max_depth: checker.max_depth(),
        elapsed,
        failures,
        not_found,
    }
}

/// A shortest counterexample of `property`: the check again on one thread (exact breadth-first
/// order), stopped at the first discovery. The main run keeps checking after a failure, and
/// the path it keeps may be a later, longer one.
fn shortest(model: &BurstModel, property: &'static str) -> Option<Path<State, Act>> {
    model
        .clone()
        .checker()
        .threads(1)
        .finish_when(HasDiscoveries::AnyOf([property].into()))
        .spawn_bfs()
        .join()
        .discovery(property)
}
