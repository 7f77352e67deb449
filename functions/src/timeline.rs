//! The timeline chart, one renderer for the status page (a site's last 24 hours, from its
//! audit trail) and the drill report (a whole drill, from its samples): power and mode as
//! bands, and desired, scale-set and running capacity (with home's missing nodes and the
//! uncovered gap) as step lines. Inline SVG: nothing to fetch, nothing to run.

use std::fmt::Write as _;

/// The chart's width and its left and right margins (labels sit in the left one).
pub const W: f64 = 1000.0;
pub const LEFT: f64 = 90.0;
pub const RIGHT: f64 = 20.0;
/// The capacity plot's top and bottom (the bands sit above it).
pub const PLOT_TOP: f64 = 80.0;
pub const PLOT_BOTTOM: f64 = 320.0;

/// The state at one instant, `t` seconds from the chart's start.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sample {
    pub t: f64,
    pub mode: String,
    pub desired: u32,
    pub capacity: u32,
    pub running: u32,
    pub on_battery: bool,
    pub home_dark: bool,
    /// Home's missing nodes (capped at max_nodes): the capacity the cloud should cover.
    pub missing: u32,
    pub cost_usd: f64,
}

impl Sample {
    /// A sample of what was decided only (mode and desired capacity); the observed values
    /// follow the decision and power is on line.
    pub fn decided(t: f64, mode: &str, desired: u32) -> Sample {
        Sample {
            t,
            mode: mode.to_string(),
            desired,
            capacity: desired,
            running: desired,
            on_battery: false,
            home_dark: false,
            missing: 0,
            cost_usd: 0.0,
        }
    }
}

/// What the chart spans and how it labels instants.
pub struct Frame<'a> {
    /// Seconds from the start to the right edge.
    pub end: f64,
    /// The capacity axis's top value.
    pub max_cap: u32,
    /// Whether the samples carry power, the scale set, running nodes and home's missing nodes
    /// (a drill's do; the status page's, rebuilt from decisions, carry mode and desired only).
    pub observed: bool,
    /// An instant's label (`t` in seconds from the start).
    pub label: &'a dyn Fn(f64) -> String,
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("end", &self.end)
            .field("max_cap", &self.max_cap)
            .field("observed", &self.observed)
            .finish_non_exhaustive()
    }
}

impl Frame<'_> {
    /// The x coordinate of `t` seconds from the start.
    pub fn x(&self, t: f64) -> f64 {
        LEFT + (t / self.end.max(1.0)).clamp(0.0, 1.0) * (W - LEFT - RIGHT)
    }
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn mode_color(mode: &str) -> &'static str {
    match mode {
        "healthy" => "#57F287",
        "suspect" => "#FEE75C",
        "outage" => "#ED4245",
        "recovering" => "#5865F2",
        _ => "#cccccc",
    }
}

/// The bands and the capacity plot (an SVG fragment, without the `<svg>` element).
pub fn bands_and_capacity(samples: &[Sample], frame: &Frame) -> String {
    let end = frame.end.max(1.0);
    let x = |t: f64| frame.x(t);
    let clock = |t: f64| (frame.label)(t);
    let max_cap = frame.max_cap.max(1);
    let mut svg = String::new();
    let band = |svg: &mut String,
                y: f64,
                label: &str,
                value: &dyn Fn(&Sample) -> (String, &'static str)| {
        let _ = write!(svg, r#"<text x="8" y="{}" >{label}</text>"#, y + 15.0);
        let mut start = 0.0;
        let mut cur: Option<(String, &'static str)> = None;
        let edge = Sample::decided(end, "", 0);
        // The edge closes the last run.
        for s in samples.iter().chain(std::iter::once(&edge)) {
            let v = value(s);
            let last = s.t >= end;
            if cur.as_ref().is_none_or(|c| c.0 != v.0) || last {
                if let Some((name, color)) = cur.take() {
                    let (x0, x1) = (x(start), x(s.t));
                    let _ = write!(
                        svg,
                        r#"<rect x="{x0:.1}" y="{y}" width="{:.1}" height="22" fill="{color}"><title>{} {}–{}</title></rect>"#,
                        (x1 - x0).max(0.5),
                        esc(&name),
                        clock(start),
                        clock(s.t)
                    );
                    if x1 - x0 > 60.0 {
                        let _ = write!(
                            svg,
                            r##"<text x="{:.1}" y="{}" fill="#111">{}</text>"##,
                            x0 + 4.0,
                            y + 15.0,
                            esc(&name)
                        );
                    }
                }
                if last {
                    break;
                }
                start = s.t;
                cur = Some(v);
            }
        }
    };
    if frame.observed {
        band(&mut svg, 10.0, "power", &|s: &Sample| {
            if s.home_dark {
                ("dark".to_string(), "#23272A")
            } else if s.on_battery {
                ("on battery".to_string(), "#F0B232")
            } else {
                ("on line".to_string(), "#A3E4B8")
            }
        });
    }
    band(&mut svg, 40.0, "mode", &|s: &Sample| {
        (s.mode.clone(), mode_color(&s.mode))
    });

    let (top, bottom) = (PLOT_TOP, PLOT_BOTTOM);
    let y = |v: f64| bottom - v / max_cap as f64 * (bottom - top);
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{}" height="{}" fill="#f7f7f9" stroke="#ddd"/>"##,
        W - LEFT - RIGHT,
        bottom - top
    );
    for k in 0..=max_cap {
        let yy = y(k as f64);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e3e3e8"/><text x="{}" y="{:.1}" text-anchor="end">{k}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    let _ = write!(svg, r#"<text x="8" y="{}">nodes</text>"#, top + 14.0);
    let step_path = |value: &dyn Fn(&Sample) -> f64| {
        let mut d = String::new();
        let mut prev: Option<f64> = None;
        for s in samples {
            let v = value(s);
            match prev {
                None => {
                    let _ = write!(d, "M{:.1},{:.1}", x(0.0), y(v));
                }
                Some(p) => {
                    let _ = write!(d, " L{:.1},{:.1} L{:.1},{:.1}", x(s.t), y(p), x(s.t), y(v));
                }
            }
            prev = Some(v);
        }
        if let Some(p) = prev {
            let _ = write!(d, " L{:.1},{:.1}", x(end), y(p));
        }
        d
    };
    if frame.observed {
        observed_lines(&mut svg, samples, frame, &step_path, &y);
    }
    let _ = write!(
        svg,
        r##"<path d="{}" fill="none" stroke="#d63384" stroke-width="2" stroke-dasharray="6 4"><title>desired</title></path>"##,
        step_path(&|s| f64::from(s.desired))
    );
    svg
}

/// Draws a step line of one value of the samples (an SVG path's `d`).
type StepPath<'a> = dyn Fn(&dyn Fn(&Sample) -> f64) -> String + 'a;

/// What a drill observed: the uncovered gap, home's missing nodes, running nodes and the scale
/// set's capacity.
fn observed_lines(
    svg: &mut String,
    samples: &[Sample],
    frame: &Frame,
    step_path: &StepPath,
    y: &dyn Fn(f64) -> f64,
) {
    let (end, x, clock) = (frame.end.max(1.0), |t| frame.x(t), |t| (frame.label)(t));
    // The gap: home's missing nodes that no running cloud node covers, shaded.
    for (i, s) in samples.iter().enumerate() {
        if s.missing <= s.running {
            continue;
        }
        let until = samples.get(i + 1).map_or(end, |n| n.t);
        let (x0, x1) = (x(s.t), x(until));
        let _ = write!(
            svg,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#ED4245" opacity="0.35"><title>uncovered: {} of {} missing node(s) {}–{}</title></rect>"##,
            y(f64::from(s.missing)),
            (x1 - x0).max(0.5),
            y(f64::from(s.running)) - y(f64::from(s.missing)),
            s.missing - s.running,
            s.missing,
            clock(s.t),
            clock(until)
        );
    }
    let _ = write!(
        svg,
        r##"<path d="{}" fill="none" stroke="#ED4245" stroke-width="1.5" stroke-dasharray="2 2"><title>missing at home</title></path>"##,
        step_path(&|s| f64::from(s.missing))
    );
    let _ = write!(
        svg,
        r##"<path d="{}" fill="none" stroke="#57F287" stroke-width="6" opacity="0.6"><title>running</title></path>"##,
        step_path(&|s| f64::from(s.running))
    );
    let _ = write!(
        svg,
        r##"<path d="{}" fill="none" stroke="#1f6feb" stroke-width="2"><title>scale set capacity</title></path>"##,
        step_path(&|s| f64::from(s.capacity))
    );
}

/// A site's mode and desired capacity over the `window_s` seconds before `now`, rebuilt from
/// its audit trail (the last `audit_max` decisions: "mode A → B", "capacity N"). Before the
/// first decision in the window the site was as that decision found it; without any, as it is.
pub fn from_audit(
    state: &burst_core::SiteState,
    now: burst_core::Timestamp,
    window_s: i64,
) -> Vec<Sample> {
    let from = now.plus_millis(-window_s * 1000);
    let t = |at: burst_core::Timestamp| (at.since(from).max(0) as f64) / 1000.0;
    let mode_change = |what: &str| {
        let (a, b) = what.strip_prefix("mode ")?.split_once(" → ")?;
        Some((a.to_string(), b.to_string()))
    };
    let capacity = |what: &str| what.strip_prefix("capacity ")?.parse::<u32>().ok();
    let in_window = |at: burst_core::Timestamp| at.since(from) >= 0;
    let mut mode = state
        .audit
        .iter()
        .find(|e| in_window(e.at) && mode_change(&e.what).is_some())
        .and_then(|e| mode_change(&e.what))
        .map_or_else(|| state.mode.as_str().to_string(), |(a, _)| a);
    let mut desired = state
        .audit
        .iter()
        .rev()
        .filter(|e| !in_window(e.at))
        .find_map(|e| capacity(&e.what))
        .unwrap_or_else(|| {
            let decided_in_window = state
                .audit
                .iter()
                .any(|e| in_window(e.at) && capacity(&e.what).is_some());
            if decided_in_window {
                0
            } else {
                state.capacity.desired
            }
        });
    let mut out = vec![Sample::decided(0.0, &mode, desired)];
    for e in state.audit.iter().filter(|e| in_window(e.at)) {
        if let Some((_, to)) = mode_change(&e.what) {
            mode = to;
        } else if let Some(n) = capacity(&e.what) {
            desired = n;
        } else {
            continue;
        }
        out.push(Sample::decided(t(e.at), &mode, desired));
    }
    out
}

/// The time axis under `y`: `ticks` + 1 labelled marks.
pub fn time_axis(frame: &Frame, y: f64, ticks: u32) -> String {
    let mut svg = String::new();
    for k in 0..=ticks {
        let t = frame.end * f64::from(k) / f64::from(ticks);
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{y}" y2="{1}" stroke="#999"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"##,
            frame.x(t),
            y + 5.0,
            y + 20.0,
            esc(&(frame.label)(t))
        );
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, mode: &str, desired: u32) -> Sample {
        Sample::decided(t, mode, desired)
    }

    #[test]
    fn a_day_is_rebuilt_from_the_audit_trail() {
        use burst_core::{SiteState, Timestamp, state::AuditEntry};
        let now = Timestamp::from_secs(1_800_000_000);
        let ago = |s: i64| now.plus_millis(-s * 1000);
        let mut st = SiteState::new("home", ago(200_000));
        let entry = |at, what: &str| AuditEntry {
            at,
            what: what.into(),
            why: "because".into(),
        };
        st.audit = vec![
            entry(ago(100_000), "capacity 1"),
            entry(ago(3_600), "mode healthy → outage"),
            entry(ago(3_590), "capacity 4"),
            entry(ago(600), "lease granted"),
            entry(ago(60), "mode outage → recovering"),
        ];
        let day = from_audit(&st, now, 86_400);
        let got: Vec<(f64, &str, u32)> = day
            .iter()
            .map(|s| (s.t, s.mode.as_str(), s.desired))
            .collect();
        assert_eq!(
            got,
            [
                (0.0, "healthy", 1),
                (82_800.0, "outage", 1),
                (82_810.0, "outage", 4),
                (86_340.0, "recovering", 4)
            ]
        );
        // Nothing decided within the day: the site as it is now.
        st.audit.clear();
        st.capacity.desired = 2;
        let day = from_audit(&st, now, 86_400);
        assert_eq!(
            (day.len(), day[0].desired, day[0].mode.as_str()),
            (1, 2, "healthy")
        );
    }

    #[test]
    fn bands_follow_the_mode_and_lines_the_capacity() {
        let label = |t: f64| format!("{t:.0}s");
        let frame = Frame {
            end: 100.0,
            max_cap: 3,
            observed: false,
            label: &label,
        };
        let samples = [
            sample(0.0, "healthy", 0),
            sample(40.0, "outage", 3),
            sample(70.0, "recovering", 1),
            sample(100.0, "recovering", 1),
        ];
        let svg = bands_and_capacity(&samples, &frame);
        assert!(
            !svg.contains(">power<"),
            "no power band without observations"
        );
        assert!(
            !svg.contains("<title>running"),
            "no running line without observations"
        );
        for band in ["healthy 0s–40s", "outage 40s–70s", "recovering 70s–100s"] {
            assert!(svg.contains(band), "{band} in {svg}");
        }
        assert!(
            !svg.contains("100s–100s"),
            "a sample at the edge draws no empty band"
        );
        // Desired: 0 until 40 s, 3 until 70 s, 1 to the end (x from 90 to 980, y from 320 to 80).
        assert!(
            svg.contains(
                "M90.0,320.0 L446.0,320.0 L446.0,80.0 L713.0,80.0 L713.0,240.0 L980.0,240.0"
            ),
            "{svg}"
        );
        assert_eq!(time_axis(&frame, 330.0, 4).matches("<line").count(), 5);
    }
}
