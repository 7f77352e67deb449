//! Outage drills: scenarios run against the decision core with simulated adapters.

pub mod cloud;
pub mod expect;
pub mod home;
pub mod realtime;
pub mod record;
pub mod report;
pub mod simulated;

use record::{Record, Summary};

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
