//! `--report FILE.html`: one self-contained page per drill run (inline SVG and CSS, no
//! scripts, nothing fetched) with a timeline chart — power, mode, desired vs running capacity,
//! incidents and messages, cost — and the timeline table under it.

use super::DrillRun;
use super::record::{Kind, clock};
use burst_functions::timeline::{self, Frame, LEFT, PLOT_BOTTOM, PLOT_TOP, RIGHT, Sample, W, esc};
use std::fmt::Write as _;

/// Samples from the records alone (virtual drills): step functions of mode and capacity.
fn samples_from_records(run: &DrillRun) -> Vec<Sample> {
    let mut out = Vec::new();
    let (mut mode, mut cap, mut battery, mut dark) = ("healthy".to_string(), 0u32, false, false);
    let price_cost = |_: f64| 0.0;
    // The world before the first record: on line, healthy, nothing in the cloud.
    out.push(Sample::decided(0.0, &mode, 0));
    for r in &run.records {
        match &r.kind {
            Kind::Mode { to, .. } => mode = to.clone(),
            Kind::Scale { capacity, .. } | Kind::Evict { capacity, .. } => cap = *capacity,
            Kind::Event { text } => {
                if text.contains("UPS ONBATT")
                    || text.contains("UPS LOWBATT")
                    || text.contains("UPS FSD")
                {
                    battery = true;
                }
                if text.contains("UPS ONLINE") {
                    battery = false;
                }
                if text.contains("home down") {
                    dark = true;
                }
                if text.contains("home up") {
                    dark = false;
                }
            }
            _ => {}
        }
        let t = r.t_ms as f64 / 1000.0;
        out.push(Sample {
            t,
            mode: mode.clone(),
            desired: cap,
            capacity: cap,
            running: cap,
            on_battery: battery,
            home_dark: dark,
            // Records do not carry home's node count: no gap shading from records alone.
            missing: 0,
            cost_usd: price_cost(t),
        });
    }
    out
}

/// Renders the page.
pub fn html(run: &DrillRun, description: &str, samples: &[Sample]) -> String {
    let derived;
    let samples = if samples.is_empty() {
        derived = samples_from_records(run);
        &derived[..]
    } else {
        samples
    };
    let end = run.summary.duration_s.max(1.0);
    let x = |t: f64| LEFT + (t / end).clamp(0.0, 1.0) * (W - LEFT - RIGHT);
    let max_cap = samples
        .iter()
        .map(|s| s.capacity.max(s.desired).max(s.running).max(s.missing))
        .max()
        .unwrap_or(0)
        .max(run.summary.max_capacity)
        .max(1);
    let max_cost = samples
        .iter()
        .map(|s| s.cost_usd)
        .fold(0.0, f64::max)
        .max(run.summary.cost_usd)
        .max(0.01);

    let mut svg = String::new();
    let h = 470.0;
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" width="{W}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let label = |t: f64| clock((t * 1000.0) as i64);
    let frame = Frame {
        end,
        max_cap,
        observed: true,
        label: &label,
    };
    svg.push_str(&timeline::bands_and_capacity(samples, &frame));
    let (top, bottom) = (PLOT_TOP, PLOT_BOTTOM);

    // Messages and migrations as markers above the plot.
    for r in &run.records {
        let t = r.t_ms as f64 / 1000.0;
        match &r.kind {
            Kind::Notify {
                action,
                title,
                incident,
            } => {
                let (color, yy) = match action.as_str() {
                    "create" => ("#ED4245", top + 8.0),
                    "post" => ("#F0B232", top + 20.0),
                    _ => ("#888", top + 32.0),
                };
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{yy}" r="4" fill="{color}"><title>{} {} {}: {}</title></circle>"#,
                    x(t),
                    clock(r.t_ms),
                    esc(action),
                    esc(incident),
                    esc(title)
                );
            }
            Kind::Migrate { tier, direction } => {
                let _ = write!(
                    svg,
                    r##"<line x1="{0:.1}" x2="{0:.1}" y1="{top}" y2="{bottom}" stroke="#6f42c1" stroke-dasharray="2 3"><title>{1} {2} {3}</title></line>"##,
                    x(t),
                    clock(r.t_ms),
                    esc(tier),
                    esc(direction)
                );
            }
            Kind::Expect { ok: false, what } => {
                let _ = write!(
                    svg,
                    r##"<text x="{:.1}" y="{}" fill="#ED4245" font-weight="bold">✗<title>{}</title></text>"##,
                    x(t) - 4.0,
                    bottom - 4.0,
                    esc(what)
                );
            }
            _ => {}
        }
    }

    // Cost.
    let (ctop, cbottom) = (345.0, 430.0);
    let cy = |v: f64| cbottom - v / max_cost * (cbottom - ctop);
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{ctop}" width="{}" height="{}" fill="#f7f7f9" stroke="#ddd"/><text x="8" y="{}">cost</text><text x="{}" y="{}" text-anchor="end">${max_cost:.2}</text><text x="{}" y="{cbottom}" text-anchor="end">$0</text>"##,
        W - LEFT - RIGHT,
        cbottom - ctop,
        ctop + 14.0,
        LEFT - 6.0,
        ctop + 10.0,
        LEFT - 6.0
    );
    let mut d = format!("M{:.1},{:.1}", x(0.0), cy(0.0));
    for s in samples {
        let _ = write!(d, " L{:.1},{:.1}", x(s.t), cy(s.cost_usd));
    }
    let _ = write!(
        svg,
        r##"<path d="{d}" fill="none" stroke="#b8860b" stroke-width="2"/>"##
    );

    // Time axis.
    let label = |t: f64| clock((t * 1000.0) as i64)[..5].to_string();
    let axis = Frame {
        label: &label,
        ..frame
    };
    svg.push_str(&timeline::time_axis(&axis, cbottom, 8));
    svg.push_str("</svg>");

    let s = &run.summary;
    let verdict = if s.passed { "PASS" } else { "FAIL" };
    let mut rows = String::new();
    for r in &run.records {
        let class = match &r.kind {
            Kind::Expect { ok: false, .. } => "fail",
            Kind::Expect { .. } => "ok",
            Kind::Mode { .. } => "mode",
            _ => "",
        };
        let _ = write!(
            rows,
            r#"<tr class="{class}"><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            clock(r.t_ms),
            r.kind_name(),
            esc(&r.detail())
        );
    }
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name} — hybrid-burst drill</title>
<style>
body{{font-family:sans-serif;margin:24px;color:#1e1f22;max-width:1040px}}
h1{{font-size:20px;margin:0 0 4px}} .pass{{color:#1a7f37}} .failv{{color:#d1242f}}
.summary td{{padding:2px 12px 2px 0}} .legend span{{display:inline-block;margin-right:14px}}
.sw{{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}}
table.timeline{{border-collapse:collapse;font-size:12px;width:100%;margin-top:12px}}
table.timeline td{{border-bottom:1px solid #eee;padding:2px 6px;vertical-align:top}}
tr.fail td{{background:#ffe5e5}} tr.ok td{{color:#1a7f37}} tr.mode td{{font-weight:bold}}
</style></head><body>
<h1>{name} <span class="{vclass}">{verdict}</span></h1>
<p>{desc}</p>
<table class="summary"><tr><td>duration</td><td>{dur}</td><td>max capacity</td><td>{maxc}</td><td>scale writes</td><td>{writes}</td><td>messages</td><td>{notes}</td><td>cost</td><td>${cost:.2}</td><td>gap</td><td>{gap:.0} node-s (longest {gap_max:.0} s)</td><td>wall time</td><td>{wall:.1} s</td></tr></table>
<p class="legend"><span><i class="sw" style="background:#57F287;opacity:.6"></i>running</span><span><i class="sw" style="background:#1f6feb"></i>scale set capacity</span><span><i class="sw" style="background:#d63384"></i>desired (dashed)</span><span><i class="sw" style="background:#ED4245;border-radius:7px"></i>incident message created</span><span><i class="sw" style="background:#F0B232;border-radius:7px"></i>separate post</span><span><i class="sw" style="background:#888;border-radius:7px"></i>message edited</span><span><i class="sw" style="background:#6f42c1"></i>workloads moved</span><span><i class="sw" style="background:#ED4245;opacity:.5"></i>missing at home (dotted), uncovered (shaded)</span></p>
{svg}
<table class="timeline">{rows}</table>
</body></html>
"##,
        name = esc(&run.scenario),
        vclass = if s.passed { "pass" } else { "failv" },
        desc = esc(description),
        dur = clock((s.duration_s * 1000.0) as i64),
        maxc = s.max_capacity,
        writes = s.scale_writes,
        notes = s.notifications,
        cost = s.cost_usd,
        gap = s.gap.node_s,
        gap_max = s.gap.max_s,
        wall = s.wall_ms / 1000.0,
    )
}
