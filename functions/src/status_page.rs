//! `GET /api/status` asked for by a browser (`Accept: text/html`): one self-contained page (no
//! script, no external asset) rendered from the same summaries as the JSON answer.

use crate::timeline::{self, Frame, PLOT_BOTTOM, Sample, W};
use serde_json::Value;
use std::fmt::Write as _;

/// Whether the client prefers HTML (a browser) over JSON.
pub fn wants_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let html = accept.find("text/html");
    let json = accept.find("application/json");
    match (html, json) {
        (Some(h), Some(j)) => h < j,
        (Some(_), None) => true,
        _ => false,
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".to_string(),
        other => other.to_string(),
    }
}

fn mode_color(mode: &str) -> &'static str {
    match mode {
        "healthy" => "#2da44e",
        "suspect" => "#bf8700",
        "outage" => "#cf222e",
        "recovering" => "#5865f2",
        _ => "#6e7781",
    }
}

/// The overview of several sites: one row each, linking to its section.
fn overview(sites: &[Value]) -> String {
    let mut rows = String::new();
    for s in sites {
        let mode = s["mode"].as_str().unwrap_or("?");
        let site = text(&s["site"]);
        let _ = write!(
            rows,
            r##"<tr><td><a href="#site-{anchor}">{site}</a></td><td><span class="mode" style="background:{color}">{mode}</span></td><td>{desired}</td><td>{running}</td><td>{incident}</td><td>{spent} / {cap}</td></tr>"##,
            anchor = esc(&site),
            site = esc(&site),
            color = mode_color(mode),
            mode = esc(mode),
            desired = esc(&text(&s["capacity"]["desired"])),
            running = esc(&text(&s["signals"]["scale_set"]["running"])),
            incident = match s["incident"]["resolved_at"] {
                Value::Null if s["incident"].is_object() => esc(&text(&s["incident"]["title"])),
                _ => "—".to_string(),
            },
            spent = esc(&text(&s["budget"]["spent_usd"])),
            cap = esc(&text(&s["budget"]["monthly_usd"])),
        );
    }
    format!(
        r#"<section class="overview"><h2>{n} sites</h2><table><tr><th>site</th><th>mode</th><th>desired</th><th>running</th><th>open incident</th><th>spent / budget this month</th></tr>{rows}</table></section>"#,
        n = sites.len()
    )
}

/// The last 24 hours of a site: mode bands and desired capacity (the drill report's chart).
fn day_chart(s: &Value) -> String {
    let Some(samples) = s["day"]["samples"].as_array() else {
        return String::new();
    };
    let samples: Vec<Sample> = samples
        .iter()
        .map(|p| {
            let desired = p["desired"].as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32;
            Sample::decided(p["t"].as_f64().unwrap_or(0.0), &text(&p["mode"]), desired)
        })
        .collect();
    let from = s["day"]["from"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let label = |t: f64| match from {
        Some(from) => (from + chrono::Duration::milliseconds((t * 1000.0) as i64))
            .format("%H:%M")
            .to_string(),
        None => format!("{:.0} h", t / 3600.0),
    };
    let frame = Frame {
        end: 86_400.0,
        max_cap: samples.iter().map(|p| p.desired).max().unwrap_or(0).max(1),
        observed: false,
        label: &label,
    };
    format!(
        r#"<h3>Last 24 hours (UTC)</h3><svg viewBox="0 35 {W} 315" width="100%" font-family="sans-serif" font-size="12" role="img" aria-label="mode and desired capacity over the last 24 hours">{}{}</svg>"#,
        timeline::bands_and_capacity(&samples, &frame),
        timeline::time_axis(&frame, PLOT_BOTTOM, 8)
    )
}

/// The page for `sites` (the JSON summaries of `/api/status`).
pub fn render(sites: &[Value], now: &str) -> String {
    let mut body = String::new();
    if sites.len() > 1 {
        body.push_str(&overview(sites));
    }
    for s in sites {
        let mode = s["mode"].as_str().unwrap_or("?");
        let cap = &s["capacity"];
        let _ = write!(
            body,
            r#"<section id="site-{anchor}"><h2>{site} <span class="mode" style="background:{color}">{mode}</span></h2>
<p class="since">since {since}</p>
<table>
<tr><th>cloud capacity</th><td>desired {desired}, scale set {current}, running {running}</td></tr>
<tr><th>why</th><td>{reason}</td></tr>
<tr><th>workloads</th><td>critical: {critical}, stateful: {stateful}</td></tr>
<tr><th>power</th><td>{power} ({status}), last UPS event {last_type}</td></tr>
<tr><th>budget</th><td>{spent} USD spent this month of {cap}{capped}</td></tr>
<tr><th>boot time</th><td>{boot} s ({learned})</td></tr>
<tr><th>agent lease</th><td>{lease}</td></tr>
</table>"#,
            site = esc(&text(&s["site"])),
            anchor = esc(&text(&s["site"])),
            color = mode_color(mode),
            mode = esc(mode),
            since = esc(&text(&s["mode_since"])),
            desired = esc(&text(&cap["desired"])),
            current = esc(&text(&cap["current"])),
            running = esc(&text(&s["signals"]["scale_set"]["running"])),
            reason = esc(&text(&cap["reason"])),
            critical = esc(&text(&s["placement"]["critical"])),
            stateful = esc(&text(&s["placement"]["stateful"])),
            power = esc(&text(&s["signals"]["power"]["health"])),
            status = esc(&text(&s["signals"]["power"]["status"])),
            last_type = esc(&text(&s["signals"]["power"]["last_type"])),
            spent = esc(&text(&s["budget"]["spent_usd"])),
            cap = match &s["budget"]["monthly_usd"] {
                Value::Number(n) => format!("{} USD", esc(&n.to_string())),
                _ => "no budget set".to_string(),
            },
            capped = if s["budget"]["capped"] == Value::Bool(true) {
                ", capacity capped by the budget"
            } else {
                ""
            },
            boot = esc(&text(&cap["boot_estimate_s"])),
            learned = if cap["boot_samples_s"]
                .as_array()
                .is_some_and(|v| !v.is_empty())
            {
                "learned"
            } else {
                "assumed until one is measured"
            },
            lease = match s["lease"]["expires_at"].as_str() {
                Some(t) => format!("until {}", esc(t)),
                None => "none taken (no fence command)".to_string(),
            },
        );
        if let Some(holds) = s["holding"].as_array().filter(|h| !h.is_empty()) {
            body.push_str("<h3>What holds it</h3><ul>");
            for h in holds {
                let _ = write!(
                    body,
                    "<li><b>{}</b>: {} <i>({})</i></li>",
                    esc(&text(&h["source"])),
                    esc(&text(&h["why"])),
                    esc(&text(&h["setting"]))
                );
            }
            body.push_str("</ul>");
        }
        if let Some(inc) = s["incident"].as_object() {
            let _ = write!(
                body,
                "<h3>{}</h3><ul class=\"lines\">",
                esc(&text(&inc["title"].clone()))
            );
            for l in inc
                .get("lines")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let _ = write!(body, "<li>{}</li>", esc(&text(l)));
            }
            body.push_str("</ul>");
        }
        body.push_str(&day_chart(s));
        body.push_str("<h3>Recent decisions</h3><ul class=\"lines\">");
        for e in s["audit"].as_array().into_iter().flatten().take(10) {
            let _ = write!(
                body,
                "<li><b>{}</b>: {}</li>",
                esc(&text(&e["what"])),
                esc(&text(&e["why"]))
            );
        }
        body.push_str("</ul></section>");
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>hybrid-burst status</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#1f2328}}
section{{border:1px solid #d0d7de;border-radius:8px;padding:0 1em 1em;margin-bottom:1.5em}}
.mode{{color:#fff;border-radius:6px;padding:2px 10px;font-size:.8em;vertical-align:middle}}
.since{{color:#656d76;margin-top:-.8em}}
th{{text-align:left;padding-right:1em;color:#656d76;font-weight:normal;vertical-align:top}}
.lines li{{font-family:ui-monospace,monospace;font-size:.9em}}
</style></head><body>
<h1>hybrid-burst</h1><p class="since">as of {now}; the same data as JSON: <code>Accept: application/json</code></p>
{body}
</body></html>
"#,
        now = esc(now)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn browsers_get_html_and_clients_json() {
        assert!(wants_html(Some(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(!wants_html(Some("application/json")));
        assert!(!wants_html(Some("*/*")));
        assert!(!wants_html(None));
        assert!(!wants_html(Some("application/json, text/html")));
    }

    #[test]
    fn the_page_escapes_what_it_shows_and_loads_nothing() {
        let site = json!({"site": "home", "mode": "outage", "capacity": {"desired": 2,
            "reason": "<script>x</script>"}, "audit": [{"what": "a&b", "why": "c"}],
            "holding": [{"source": "power", "why": "on battery", "setting": "ups"}],
            "day": {"from": "2026-12-05T00:00:00Z", "samples": [{"t": 0.0, "mode": "<b>", "desired": 2}]}});
        let page = render(&[site], "2026-12-06T00:00:00Z");
        assert!(
            page.contains("<svg") && page.contains("&lt;b&gt;"),
            "a chart, escaped"
        );
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!page.contains("<script"));
        assert!(page.contains("a&amp;b"));
        assert!(page.contains("What holds it"));
        for external in ["src=", "http://", "https://", "@import"] {
            assert!(!page.contains(external), "{external}");
        }
        assert!(!page.contains("href="), "one site: no overview, no links");
    }

    #[test]
    fn several_sites_get_an_overview_with_links_inside_the_page() {
        let site = |id: &str, mode: &str| {
            json!({"site": id, "mode": mode, "capacity": {"desired": 1}, "audit": [],
                "budget": {"monthly_usd": 12.5},
                "day": {"from": "2026-12-05T00:00:00Z", "samples": [
                    {"t": 0.0, "mode": "healthy", "desired": 0},
                    {"t": 43200.0, "mode": mode, "desired": 1}]}})
        };
        let page = render(
            &[site("home", "outage"), site("parents", "healthy")],
            "2026-12-06T00:00:00Z",
        );
        assert!(page.contains("2 sites"));
        assert!(
            page.contains("<td>— / 12.5</td>"),
            "spent and the cap: {page}"
        );
        for id in ["home", "parents"] {
            assert!(page.contains(&format!(r##"href="#site-{id}""##)), "{id}");
            assert!(page.contains(&format!(r#"id="site-{id}""#)), "{id}");
        }
        assert_eq!(
            page.matches("href=").count(),
            2,
            "only links inside the page"
        );
        assert!(page.contains("outage 12:00–00:00"), "the day chart's bands");
        assert_eq!(page.matches("<svg").count(), 2, "a chart per site");
    }
}
