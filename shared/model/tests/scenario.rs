//! A counterexample prints as a drill scenario that parses, with the exact inputs as comments.

use burst_model::model::{Act, BurstModel, P_STATEFUL, Power};
use burst_model::{test_policy, toml};
use stateright::Model;

#[test]
fn a_path_prints_as_a_drill_scenario() {
    let model = BurstModel::new(test_policy(), true, usize::MAX);
    let acts = [
        Act::Heartbeat,
        Act::Probe {
            api_ready: false,
            devices_online: false,
        },
        Act::Witness { reachable: false },
        Act::Ups(Power::OnBattery),
        Act::Advance(120),
        Act::Outcome { ok: false },
    ];
    let mut path = Vec::new();
    let mut s = model.init_states().remove(0);
    for a in acts {
        let next = model.next_state(&s, a).expect("applies");
        path.push((s, Some(a)));
        s = next;
    }
    path.push((s, None));
    let text = toml::scenario(&model, P_STATEFUL, &path);
    println!("{text}");

    let doc: ::toml::Table = ::toml::from_str(&text).expect("valid TOML");
    assert_eq!(doc["name"].as_str(), Some("model-counterexample"));
    assert_eq!(doc["policy"]["silence_min_probes"].as_integer(), Some(2));
    let at = doc["at"].as_array().expect("[[at]] entries");
    let ups: Vec<_> = at.iter().filter_map(|e| e.get("ups")).collect();
    assert_eq!(ups.len(), 1);
    assert!(
        at.iter()
            .any(|e| e.get("cloud_path").and_then(|v| v.as_str()) == Some("down"))
    );
    assert!(
        at.iter()
            .any(|e| e.get("devices_online").and_then(|v| v.as_integer()) == Some(0))
    );
    // Every input is in the comments, including those the drill cannot express.
    assert!(text.contains("witness report: reachable = false"));
    assert!(text.contains("120 s pass"));
    assert!(text.contains("failure"));
    let duration = doc["duration"].as_integer().expect("duration in seconds");
    assert!(
        at.iter()
            .all(|e| e["t"].as_integer().is_some_and(|t| t <= duration))
    );
}
