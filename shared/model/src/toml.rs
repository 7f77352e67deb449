//! A counterexample as a drill scenario (the format of `local-emulator/src/scenario.rs`).
//!
//! Each model input becomes the closest `[[at]]` entry: UPS events as `ups`/`status`, probes as
//! `cloud_path` and `devices_online`, heartbeats as a one-second `heartbeats = "resume"` (with
//! `heartbeat_interval = 1`). The drill has no control for witness reports or failed outcomes,
//! and its probe runs on its own schedule: those differences are written as comments, and the
//! exact input sequence is printed as comments first, so nothing is lost.

use crate::model::{
    Act, BurstModel, NODES, P_BOUNDS, P_NO_SCALE_DOWN, P_ONE_INCIDENT, P_OUTAGE_FORMULA,
    P_STATEFUL, Pending, START, State,
};
use burst_core::assess::assess;
use burst_core::{Policy, budget, capacity};
use std::fmt::Write;

/// Seconds since the model's start.
fn t(s: &State) -> i64 {
    s.now.since(START) / 1000
}

/// One input in words.
pub fn describe(act: &Act, before: &State) -> String {
    match act {
        Act::Ups(p) => format!("UPS {} [{}]", p.notify(), p.status()),
        Act::Probe {
            api_ready,
            devices_online,
        } => format!(
            "probe: home API {}, Tailscale devices {}/{NODES} online",
            if *api_ready {
                "ready (7/7 nodes)"
            } else {
                "unreachable"
            },
            if *devices_online { NODES } else { 0 }
        ),
        Act::Heartbeat => format!(
            "heartbeat (lease, 7/7 nodes, API ok, ups_status \"{}\")",
            before.ups.status()
        ),
        Act::Witness { reachable } => format!("witness report: reachable = {reachable}"),
        Act::Advance(secs) => format!("{secs} s pass, then a tick"),
        Act::Outcome { ok } => match before.queue.front() {
            Some(p) => format!(
                "outcome of {}: {}",
                pending(p),
                if *ok { "success" } else { "failure" }
            ),
            None => "outcome (nothing queued)".to_string(),
        },
    }
}

fn pending(p: &Pending) -> String {
    match p {
        Pending::Scale(c) => format!("scale to {c}"),
        Pending::Migrate(tier, dir) => format!("migrate {tier} {}", dir.as_str()),
        Pending::Notify(key) => format!("message {key}"),
    }
}

/// What is wrong in the last state, in words.
fn why(model: &BurstModel, property: &str, s: &State) -> String {
    let site = &s.site;
    let p = &model.policy;
    let desired = site.capacity.desired;
    match property {
        P_BOUNDS => format!(
            "desired {desired}, bounds [{}, {}], budget cap {:?}",
            p.min_nodes,
            p.max_nodes,
            budget::cap(&site.budget, p)
        ),
        P_OUTAGE_FORMULA => {
            let a = assess(site, s.now, p);
            let (n, why) = capacity::formula(&a, p);
            format!(
                "mode outage, desired {desired}, formula {n} ({why}); budget capped {}, cap {:?}",
                site.budget.capped,
                budget::cap(&site.budget, p)
            )
        }
        P_NO_SCALE_DOWN => format!(
            "desired {} -> {desired} in mode {}, critical {:?}, stateful {:?}, budget capped {}",
            s.last.as_ref().map_or(desired, |l| l.prev_desired),
            site.mode,
            site.placement.critical.side,
            site.placement.stateful.side,
            site.budget.capped
        ),
        P_STATEFUL => match s.last.as_ref().and_then(|l| l.stateful_to_cloud.as_ref()) {
            Some(f) => format!(
                "Migrate stateful to_cloud handed out in mode {}, quorum {} (down: {:?}), up votes {:?}, lease expired {}",
                f.mode, f.quorum, f.votes_down, f.votes_up, f.lease_expired
            ),
            None => "no facts recorded".to_string(),
        },
        P_ONE_INCIDENT => format!(
            "open incidents: {:?}",
            site.incidents
                .iter()
                .filter(|i| i.resolved_at.is_none())
                .map(|i| i.id.as_str())
                .collect::<Vec<_>>()
        ),
        _ => String::new(),
    }
}

fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// The test policy's differences from the default, as `[policy]` lines.
fn policy_lines(policy: &Policy) -> Vec<String> {
    let d = Policy::default();
    let mut out = Vec::new();
    macro_rules! diff {
        ($($f:ident),*) => {$(
            if policy.$f != d.$f {
                out.push(format!("{} = {}", stringify!($f), policy.$f));
            }
        )*};
    }
    diff!(
        min_nodes,
        max_nodes,
        power_loss_buffer,
        expected_nodes_total,
        grace_on_battery_s,
        silence_min_probes,
        silence_grace_s,
        nodes_missing_grace_s,
        scale_down_delay_s,
        heartbeat_timeout_s,
        witness_ttl_s,
        probe_ttl_s,
        devices_offline_probes,
        devices_offline_grace_s,
        witness_down_reports,
        witness_down_grace_s,
        lease_s,
        lease_margin_s,
        power_unknown_max_s,
        budget_horizon_s,
        conflict_backoff_s,
        action_timeout_s,
        action_retry_s,
        notify_retry_s,
        dedupe_ttl_s,
        snapshot_dedupe_ttl_s,
        dedupe_max,
        audit_max,
        incident_lines_max
    );
    if policy.price_per_node_hour_usd != d.price_per_node_hour_usd {
        out.push(format!(
            "price_per_node_hour_usd = {:?}",
            policy.price_per_node_hour_usd
        ));
    }
    match policy.monthly_budget_usd {
        Some(b) if Some(b) != d.monthly_budget_usd => {
            out.push(format!("monthly_budget_usd = {b:?}"))
        }
        Some(_) => {}
        None => out.push("# monthly_budget_usd: none (not expressible in TOML)".into()),
    }
    out
}

/// The counterexample `path` (states, each with the action taken from it) of `property` as a
/// drill scenario, with the exact inputs as comments.
pub fn scenario(model: &BurstModel, property: &str, path: &[(State, Option<Act>)]) -> String {
    let mut o = String::new();
    let last = path.last().map(|(s, _)| s);
    let _ = writeln!(o, "# burst-model counterexample: {property}");
    if let Some(s) = last {
        let _ = writeln!(o, "# at t = {} s: {}", t(s), why(model, property, s));
    }
    let _ = writeln!(
        o,
        "# exact inputs to burst_core::step (t = seconds since {START}):"
    );
    for (i, (s, act)) in path.iter().enumerate() {
        let Some(act) = act else { continue };
        let after = path.get(i + 1).map(|(n, _)| n);
        let at = match act {
            Act::Advance(secs) => t(s) + *secs as i64,
            _ => t(s),
        };
        let mut line = format!("#  {:>2}. t = {at:>5}  {}", i + 1, describe(act, s));
        if let Some(n) = after {
            let acts: Vec<String> = n
                .last
                .iter()
                .flat_map(|l| l.actions.iter().map(pending))
                .collect();
            let _ = write!(
                line,
                "  => {}, desired {}",
                n.site.mode, n.site.capacity.desired
            );
            if !acts.is_empty() {
                let _ = write!(line, ", actions: {}", acts.join(", "));
            }
        }
        let _ = writeln!(o, "{line}");
        let mut replay = s.clone();
        if let Some(input) = model.input(&mut replay, *act) {
            let json = serde_json::to_string(&input).unwrap_or_default();
            let _ = writeln!(o, "#        {json}");
        }
    }

    let end = last.map_or(0, t);
    let _ = writeln!(o);
    let _ = writeln!(o, "name = \"model-counterexample\"");
    let _ = writeln!(
        o,
        "description = {}",
        quote(&format!("burst-model: {property}"))
    );
    let _ = writeln!(o, "duration = {}", end + 60);
    let _ = writeln!(o);
    let _ = writeln!(o, "[world]");
    let _ = writeln!(o, "nodes_total = {NODES}");
    let _ = writeln!(o, "devices_total = {NODES}");
    let _ = writeln!(o, "lease = true");
    let _ = writeln!(
        o,
        "# model heartbeats arrive only when sent: stopped, resumed for one second each"
    );
    let _ = writeln!(o, "heartbeat_interval = 1");
    let _ = writeln!(
        o,
        "# the drill probes every probe_interval; the model probes only when it says so"
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "[policy]");
    for l in policy_lines(&model.policy) {
        let _ = writeln!(o, "{l}");
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "[[at]]\nt = 0\nheartbeats = \"stop\"");

    for (i, (s, act)) in path.iter().enumerate() {
        let Some(act) = act else { continue };
        let at = t(s);
        let note = quote(&format!("model input {}: {}", i + 1, describe(act, s)));
        let entry = |fields: &str| format!("\n[[at]]\nt = {at}\nnote = {note}\n{fields}");
        let text = match act {
            Act::Ups(p) => entry(&format!(
                "ups = {}\nstatus = {}",
                quote(p.notify()),
                quote(p.status())
            )),
            Act::Probe {
                api_ready,
                devices_online,
            } => entry(&format!(
                "cloud_path = \"{}\"\ndevices_online = {}",
                if *api_ready { "up" } else { "down" },
                if *devices_online { NODES } else { 0 }
            )),
            Act::Heartbeat => format!(
                "{}\n[[at]]\nt = {}\nheartbeats = \"stop\"",
                entry("heartbeats = \"resume\""),
                at + 1
            ),
            Act::Witness { reachable } => {
                format!("\n# t = {at}: witness report reachable = {reachable} (no drill control)")
            }
            Act::Advance(secs) => format!("\n# t = {}: time passes ({secs} s)", at + *secs as i64),
            Act::Outcome { ok } => format!(
                "\n# t = {at}: {} (the drill's simulated cloud {})",
                describe(act, s),
                if *ok {
                    "answers like this by default"
                } else {
                    "has no control for this failure"
                }
            ),
        };
        let _ = writeln!(o, "{text}");
    }
    o
}
