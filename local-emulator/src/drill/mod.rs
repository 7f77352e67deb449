//! Outage drills: scenarios run through the engine with simulated adapters.

pub mod cloud;
pub mod expect;
pub mod gap;
pub mod home;
pub mod ports;
pub mod realtime;
pub mod record;
pub mod report;
pub mod simulated;
pub mod swarm;

use crate::scenario::Scenario;
use record::{Kind, Record, Summary};

/// What a scenario puts on the clock before it runs. At one instant, in this order: world
/// changes, then the periodic reports, then expectations (they see everything due then).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scheduled {
    Event(usize),
    Probe,
    Heartbeat,
    Witness,
    Expect(usize),
}

/// `scenario`'s schedule as (ms, item), unsorted: its events, its timed expectations, and
/// every probe, heartbeat and (if set) witness tick from 0 to the end.
pub(crate) fn scheduled(scenario: &Scenario) -> Vec<(i64, Scheduled)> {
    let w = &scenario.world;
    let end = scenario.duration.millis();
    let mut items: Vec<(i64, Scheduled)> = Vec::new();
    for (i, e) in scenario.events.iter().enumerate() {
        items.push((e.t.millis(), Scheduled::Event(i)));
    }
    for (i, x) in scenario.expectations.iter().enumerate() {
        if let Some(at) = x.at {
            items.push((at.millis(), Scheduled::Expect(i)));
        }
    }
    let mut periodic = vec![
        (w.probe_interval.millis(), Scheduled::Probe),
        (w.heartbeat_interval.millis(), Scheduled::Heartbeat),
    ];
    if let Some(wi) = w.witness_interval {
        periodic.push((wi.millis(), Scheduled::Witness));
    }
    for (every, due) in periodic {
        let mut t = 0;
        while t <= end {
            items.push((t, due));
            t += every.max(1);
        }
    }
    items
}

/// The result of running one scenario.
#[derive(Clone, Debug)]
pub struct DrillRun {
    pub scenario: String,
    pub records: Vec<Record>,
    pub summary: Summary,
    /// Core steps taken (for benchmarks).
    pub steps: u64,
}

impl DrillRun {
    pub fn json_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .records
            .iter()
            .map(|r| r.to_json(&self.scenario).to_string())
            .collect();
        let end = (self.summary.duration_s * 1000.0) as i64;
        lines.push(self.summary.to_json(&self.scenario, end).to_string());
        lines
    }

    pub fn text(&self, description: &str) -> String {
        let mut out = format!("== {} ==\n", self.scenario);
        if !description.is_empty() {
            out.push_str(&format!("   {description}\n"));
        }
        for r in &self.records {
            out.push_str(&r.to_text());
            out.push('\n');
        }
        out.push_str(&self.summary.to_text(&self.scenario));
        out.push('\n');
        out
    }
}

/// What a run measured besides its records.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    pub cost_usd: f64,
    pub wall_ms: f64,
    pub steps: u64,
    pub gap: gap::Gap,
    /// The same scenario without bursting ahead of the battery (virtual drills only).
    pub without_ahead: Option<gap::Gap>,
    /// Durable saves per handler invocation (real-time drills, from the handler's log).
    pub saves: Option<record::Saves>,
}

/// Ends a run (virtual or real time): checks the scenario's interval expectations against the
/// records and sums up. `ok_so_far` says whether everything before held.
pub fn finish(
    scenario: &Scenario,
    mut records: Vec<Record>,
    ok_so_far: bool,
    m: Measured,
) -> DrillRun {
    let (cost_usd, wall_ms, steps) = (m.cost_usd, m.wall_ms, m.steps);
    let end = scenario.duration.millis();
    let mut passed = ok_so_far
        && records
            .iter()
            .all(|r| !matches!(r.kind, Kind::Expect { ok: false, .. }));
    for x in scenario.expectations.iter().filter(|x| x.at.is_none()) {
        for (ok, what) in expect::check_interval(x, &records, end, cost_usd) {
            passed &= ok;
            records.push(Record {
                t_ms: end,
                kind: Kind::Expect { ok, what },
            });
        }
    }
    for x in scenario.expectations.iter().filter(|x| x.at.is_none()) {
        let checks = [
            (x.max_gap_node_s, m.gap.node_s, "uncovered node-seconds"),
            (x.max_gap_s, m.gap.max_s, "longest uncovered stretch (s)"),
        ];
        for (limit, got, what) in checks {
            if let Some(limit) = limit {
                let ok = got <= limit;
                passed &= ok;
                records.push(Record {
                    t_ms: end,
                    kind: Kind::Expect {
                        ok,
                        what: format!("{what} ≤ {limit} (got {got:.1})"),
                    },
                });
            }
        }
    }
    let count = |f: fn(&Kind) -> bool| records.iter().filter(|r| f(&r.kind)).count();
    let summary = Summary {
        passed,
        max_capacity: expect::max_capacity(&records, 0, end),
        scale_writes: count(|k| matches!(k, Kind::Scale { .. })),
        notifications: count(|k| matches!(k, Kind::Notify { .. })),
        cost_usd,
        duration_s: end as f64 / 1000.0,
        wall_ms,
        gap: m.gap,
        without_ahead: m.without_ahead,
        saves: m.saves,
    };
    DrillRun {
        scenario: scenario.name.clone(),
        records,
        summary,
        steps,
    }
}
