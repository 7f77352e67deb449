//! The drill timeline: what happened when, printed as text or as JSON lines.

use serde_json::{Map, Value, json};

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// A timeline event of the scenario (what the world did).
    Event {
        text: String,
    },
    Mode {
        from: String,
        to: String,
        why: String,
    },
    /// A capacity write that changed the scale set.
    Scale {
        from: u32,
        capacity: u32,
        reason: String,
    },
    /// A scale-set call that did not change it (throttled, conflict, already equal).
    ArmCall {
        result: String,
    },
    Evict {
        evicted: u32,
        capacity: u32,
    },
    Notify {
        incident: String,
        action: String,
        title: String,
    },
    NotifyFailed {
        incident: String,
        detail: String,
    },
    Migrate {
        tier: String,
        direction: String,
    },
    Expect {
        ok: bool,
        what: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Milliseconds since the scenario's start.
    pub t_ms: i64,
    pub kind: Kind,
}

impl Record {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Event { .. } => "event",
            Kind::Mode { .. } => "mode",
            Kind::Scale { .. } => "scale",
            Kind::ArmCall { .. } => "arm_call",
            Kind::Evict { .. } => "evict",
            Kind::Notify { .. } => "notify",
            Kind::NotifyFailed { .. } => "notify_failed",
            Kind::Migrate { .. } => "migrate",
            Kind::Expect { .. } => "expect",
        }
    }

    pub fn to_json(&self, scenario: &str) -> Value {
        let mut m = Map::new();
        m.insert("scenario".into(), json!(scenario));
        m.insert("t".into(), json!(self.t_ms as f64 / 1000.0));
        m.insert("kind".into(), json!(self.kind_name()));
        let fields = match &self.kind {
            Kind::Event { text } => json!({ "text": text }),
            Kind::Mode { from, to, why } => json!({ "mode": to, "from": from, "why": why }),
            Kind::Scale {
                from,
                capacity,
                reason,
            } => json!({ "capacity": capacity, "from": from, "reason": reason }),
            Kind::ArmCall { result } => json!({ "result": result }),
            Kind::Evict { evicted, capacity } => {
                json!({ "evicted": evicted, "capacity": capacity })
            }
            Kind::Notify {
                incident,
                action,
                title,
            } => json!({ "incident": incident, "action": action, "title": title }),
            Kind::NotifyFailed { incident, detail } => {
                json!({ "incident": incident, "detail": detail })
            }
            Kind::Migrate { tier, direction } => json!({ "tier": tier, "direction": direction }),
            Kind::Expect { ok, what } => json!({ "ok": ok, "what": what }),
        };
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        Value::Object(m)
    }

    pub fn to_text(&self) -> String {
        format!(
            "  {}  {:<8} {}",
            clock(self.t_ms),
            self.kind_name(),
            self.detail()
        )
    }

    /// What happened, in words (the timeline's last column).
    pub fn detail(&self) -> String {
        match &self.kind {
            Kind::Event { text } => text.clone(),
            Kind::Mode { from, to, why } => format!("{from} → {to}: {why}"),
            Kind::Scale {
                from,
                capacity,
                reason,
            } => format!("{from} → {capacity}  ({reason})"),
            Kind::ArmCall { result } => result.clone(),
            Kind::Evict { evicted, capacity } => {
                format!("{evicted} spot instance(s) evicted, capacity now {capacity}")
            }
            Kind::Notify {
                incident,
                action,
                title,
            } => format!("{action:<6} {incident}  \"{title}\""),
            Kind::NotifyFailed { incident, detail } => format!("{incident}: {detail}"),
            Kind::Migrate { tier, direction } => format!("{tier} {direction}"),
            Kind::Expect { ok, what } => {
                format!("{}  {what}", if *ok { "ok  " } else { "FAIL" })
            }
        }
    }
}

/// `HH:MM:SS` (hours may exceed 24) for a scenario time.
pub fn clock(t_ms: i64) -> String {
    let s = t_ms.max(0) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// The end of one scenario run.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub passed: bool,
    pub max_capacity: u32,
    pub scale_writes: usize,
    pub notifications: usize,
    pub cost_usd: f64,
    pub duration_s: f64,
    /// Wall-clock time the run took (not part of the contract; shown for drills' speed).
    pub wall_ms: f64,
    /// Home's missing nodes left without a running cloud node.
    pub gap: super::gap::Gap,
    /// The same scenario without bursting ahead of the battery, for comparison.
    pub without_ahead: Option<super::gap::Gap>,
    /// Durable saves per handler invocation (real-time drills).
    pub saves: Option<Saves>,
}

/// Durable saves per invocation, read from the handler's `invocation done` log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Saves {
    pub invocations: u32,
    pub total: u32,
    pub max: u32,
    /// The most actions one invocation carried out: before saves were folded, that invocation
    /// saved 1 + this many times.
    pub max_actions: u32,
}

impl Saves {
    /// Adds the handler's `invocation done` lines (JSON logs; anything else is skipped).
    pub fn from_log_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Saves> {
        let mut s = Saves::default();
        for line in lines {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let f = &v["fields"];
            if f["message"] != "invocation done" {
                continue;
            }
            let saves = f["saves"].as_u64().unwrap_or(0) as u32;
            let actions = f["actions"].as_u64().unwrap_or(0) as u32;
            s.invocations += 1;
            s.total += saves;
            s.max = s.max.max(saves);
            s.max_actions = s.max_actions.max(actions);
        }
        (s.invocations > 0).then_some(s)
    }

    pub fn mean(&self) -> f64 {
        f64::from(self.total) / f64::from(self.invocations.max(1))
    }
}

impl Summary {
    pub fn to_json(&self, scenario: &str, t_ms: i64) -> Value {
        json!({
            "scenario": scenario,
            "t": t_ms as f64 / 1000.0,
            "kind": "summary",
            "passed": self.passed,
            "max_capacity": self.max_capacity,
            "scale_writes": self.scale_writes,
            "notifications": self.notifications,
            "cost_usd": (self.cost_usd * 10_000.0).round() / 10_000.0,
            "duration_s": self.duration_s,
            "wall_ms": (self.wall_ms * 1000.0).round() / 1000.0,
            "gap_node_s": round1(self.gap.node_s),
            "gap_max_s": round1(self.gap.max_s),
            "cloud_node_s": round1(self.gap.cloud_node_s),
            "without_ahead": self.without_ahead.map(|g| json!({
                "gap_node_s": round1(g.node_s),
                "gap_max_s": round1(g.max_s),
                "cloud_node_s": round1(g.cloud_node_s),
            })),
            "saves": self.saves.map(|s| json!({
                "invocations": s.invocations,
                "max_per_invocation": s.max,
                "mean_per_invocation": (s.mean() * 100.0).round() / 100.0,
                "max_before_folding": 1 + s.max_actions,
            })),
        })
    }

    pub fn to_text(&self, scenario: &str) -> String {
        let mut gap = format!(
            "gap {:.0} node-s (longest {:.0} s)",
            self.gap.node_s, self.gap.max_s
        );
        if let Some(w) = self.without_ahead
            && (w.node_s != self.gap.node_s || w.cloud_node_s != self.gap.cloud_node_s)
        {
            gap.push_str(&format!(
                " vs {:.0} node-s without bursting ahead, for {:+.1} cloud node-min",
                w.node_s,
                (self.gap.cloud_node_s - w.cloud_node_s) / 60.0
            ));
        }
        if let Some(s) = self.saves {
            gap.push_str(&format!(
                ", saves per invocation ≤ {} (mean {:.2} over {}; {} before folding outcomes)",
                s.max,
                s.mean(),
                s.invocations,
                1 + s.max_actions
            ));
        }
        format!(
            "{} {scenario}: max capacity {}, {} scale writes, {} notifications, cost ${:.2}, {gap}, {} virtual in {:.1} ms",
            if self.passed { "PASS" } else { "FAIL" },
            self.max_capacity,
            self.scale_writes,
            self.notifications,
            self.cost_usd,
            clock((self.duration_s * 1000.0) as i64),
            self.wall_ms
        )
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod saves_tests {
    use super::Saves;

    #[test]
    fn saves_come_from_the_handlers_invocation_lines_only() {
        let lines = [
            r#"{"level":"INFO","fields":{"message":"invocation done","site":"home","saves":2,"actions":3}}"#,
            r#"{"level":"INFO","fields":{"message":"invocation done","site":"home","saves":1,"actions":0}}"#,
            r#"{"level":"INFO","fields":{"message":"set capacity","capacity":2}}"#,
            "Executing 'Functions.ups' (Reason='...')",
        ];
        let s = Saves::from_log_lines(lines).expect("two invocations");
        assert_eq!((s.invocations, s.total, s.max, s.max_actions), (2, 3, 2, 3));
        assert!((s.mean() - 1.5).abs() < 1e-9);
        assert_eq!(Saves::from_log_lines(["no json here"]), None);
    }
}
