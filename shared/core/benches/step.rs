//! Prints the median time of one `step` (target: under 10 µs).
//!
//! `cargo bench -p burst-core --bench step`. Steps a site through a realistic rhythm (probe and
//! heartbeat every 30 s, a UPS event now and then, an outage in the middle) and times batches.

use burst_core::{
    ApiProbe, DevicesProbe, Heartbeat, Input, NodeCount, NotifyType, Policy, ProbeReport,
    ScaleSetProbe, SiteState, Timestamp, UpsEvent, UpsStatus, step,
};
use std::hint::black_box;
use std::time::Instant;

fn input(k: u64, now: Timestamp) -> Input {
    let outage = (200..600).contains(&(k % 1000));
    match k % 4 {
        0 => Input::Probe(ProbeReport {
            home_api: if outage {
                ApiProbe::Unreachable {
                    detail: "timeout".into(),
                }
            } else {
                ApiProbe::Ready {
                    latency_ms: 12,
                    nodes: Some(NodeCount { ready: 7, total: 7 }),
                }
            },
            devices: DevicesProbe::Seen {
                online: if outage { 0 } else { 7 },
                total: 7,
            },
            scale_set: ScaleSetProbe::Seen {
                capacity: 0,
                running: 0,
            },
        }),
        1 if !outage => Input::Heartbeat(Heartbeat {
            id: format!("hb-{k}"),
            at: now,
            nodes_ready: 7,
            nodes_total: 7,
            ups_status: Some(UpsStatus::parse("OL")),
            battery_charge: None,
            battery_runtime_s: None,
            api_ok: true,
            lease: true,
        }),
        2 if k % 100 == 2 => Input::Ups(UpsEvent {
            id: format!("ups-{k}"),
            at: now,
            ups: "ups@home".into(),
            notify: NotifyType::parse(if outage { "ONBATT" } else { "ONLINE" }),
            status: UpsStatus::parse(if outage { "OB DISCHRG" } else { "OL" }),
            battery_charge: Some(80.0),
            battery_runtime_s: Some(1200),
        }),
        _ => Input::Tick,
    }
}

fn main() {
    let policy = Policy::default();
    let t0 = Timestamp::from_secs(1_772_409_600);
    let mut state = SiteState::new("home", t0);
    let mut k = 0u64;
    let batch = 2_000u64;
    let mut per_step_ns = Vec::new();
    // Warm up over a day of virtual time so the state carries a realistic history.
    for _ in 0..3 {
        for _ in 0..batch {
            let now = t0.plus_millis((k * 7_500) as i64);
            state = step(state, &input(k, now), now, &policy).state;
            k += 1;
        }
    }
    for _ in 0..50 {
        let inputs: Vec<(Timestamp, Input)> = (k..k + batch)
            .map(|i| {
                let now = t0.plus_millis((i * 7_500) as i64);
                (now, input(i, now))
            })
            .collect();
        let start = Instant::now();
        for (now, inp) in &inputs {
            let out = step(state, black_box(inp), *now, &policy);
            black_box(&out.actions);
            state = out.state;
        }
        per_step_ns.push(start.elapsed().as_nanos() as f64 / batch as f64);
        k += batch;
    }
    per_step_ns.sort_by(f64::total_cmp);
    let median = per_step_ns[per_step_ns.len() / 2];
    let p90 = per_step_ns[per_step_ns.len() * 9 / 10];
    println!(
        "step: median {:.2} µs per step, p90 of batch means {:.2} µs ({} batches of {batch}; state document {} bytes as JSON)",
        median / 1000.0,
        p90 / 1000.0,
        per_step_ns.len(),
        state.to_json().len()
    );
}
