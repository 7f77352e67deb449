//! The capacity gap: how long home's missing nodes had nowhere to run. Measured from the
//! simulated world, not from the core: the integral over time of
//! `max(0, min(max_nodes, missing home nodes) − cloud nodes running)` in node-seconds, and the
//! longest stretch with any node uncovered.

/// Integrates the gap and the cloud's running node-seconds over piecewise-constant stretches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GapMeter {
    last_ms: Option<i64>,
    /// What held since `last_ms`: missing home nodes (capped) and running cloud nodes.
    missing: u32,
    running: u32,
    gap_node_ms: i64,
    node_ms: i64,
    stretch_from: Option<i64>,
    max_stretch_ms: i64,
}

impl GapMeter {
    /// The world from `t_ms` on: `missing` home nodes (already capped at `max_nodes`) and
    /// `running` cloud nodes. Calls must come in time order.
    pub fn observe(&mut self, t_ms: i64, missing: u32, running: u32) {
        if let Some(last) = self.last_ms {
            let dt = (t_ms - last).max(0);
            let uncovered = self.missing.saturating_sub(self.running);
            self.gap_node_ms += i64::from(uncovered) * dt;
            self.node_ms += i64::from(self.running) * dt;
        }
        self.last_ms = Some(t_ms);
        self.missing = missing;
        self.running = running;
        let uncovered = missing > running;
        match (uncovered, self.stretch_from) {
            (true, None) => self.stretch_from = Some(t_ms),
            (false, Some(from)) => {
                self.max_stretch_ms = self.max_stretch_ms.max(t_ms - from);
                self.stretch_from = None;
            }
            _ => {}
        }
    }

    /// Closes the measurement at `end_ms`.
    pub fn result(&self, end_ms: i64) -> Gap {
        let mut m = self.clone();
        m.observe(end_ms, 0, 0);
        Gap {
            node_s: m.gap_node_ms as f64 / 1000.0,
            max_s: m.max_stretch_ms as f64 / 1000.0,
            cloud_node_s: m.node_ms as f64 / 1000.0,
        }
    }
}

/// What a drill measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Gap {
    /// Uncovered node-seconds.
    pub node_s: f64,
    /// The longest stretch with any node uncovered, in seconds.
    pub max_s: f64,
    /// Cloud node-seconds running (what was paid for).
    pub cloud_node_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrates_the_uncovered_nodes_and_the_longest_stretch() {
        let mut g = GapMeter::default();
        g.observe(0, 0, 0);
        g.observe(10_000, 4, 2); // 2 uncovered for 90 s
        g.observe(100_000, 4, 5); // covered (one spare) for 100 s
        g.observe(200_000, 3, 0); // 3 uncovered for 30 s
        let r = g.result(230_000);
        assert_eq!(r.node_s, 2.0 * 90.0 + 3.0 * 30.0);
        assert_eq!(r.max_s, 90.0);
        assert_eq!(r.cloud_node_s, 2.0 * 90.0 + 5.0 * 100.0);
    }
}
