//! The bounded model check for CI: every property holds up to the depth, and every
//! `sometimes` property has an example (so the model reaches outages, moves and recoveries).

use burst_model::{BurstModel, check, test_policy};

/// Every path of up to this many inputs. Chosen to finish well within 2 minutes in a debug
/// build on 2 cores.
const CI_DEPTH: usize = 5;

#[test]
fn every_property_holds_to_the_ci_depth() {
    let r = check(BurstModel::new(test_policy(), true, CI_DEPTH), 2);
    println!(
        "up to {} inputs: {} unique states ({} generated), max depth {}, {:.1} s",
        r.depth,
        r.unique_states,
        r.states,
        r.max_depth,
        r.elapsed.as_secs_f64()
    );
    for (name, toml) in &r.failures {
        println!("PROPERTY FAILED: {name}\n{toml}");
    }
    assert!(
        r.failures.is_empty(),
        "properties failed: see the scenarios above"
    );
    assert!(
        r.not_found.is_empty(),
        "no example within the bound for: {:?}",
        r.not_found
    );
}
