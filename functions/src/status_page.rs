//! `GET /api/status` asked for by a browser (`Accept: text/html`): one self-contained page (no
//! script, no external asset) rendered from the same summaries as the JSON answer.

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

/// The page for `sites` (the JSON summaries of `/api/status`).
pub fn render(sites: &[Value], now: &str) -> String {
    let mut body = String::new();
    for s in sites {
        let mode = s["mode"].as_str().unwrap_or("?");
        let cap = &s["capacity"];
        let _ = write!(
            body,
            r#"<section><h2>{site} <span class="mode" style="background:{color}">{mode}</span></h2>
<p class="since">since {since}</p>
<table>
<tr><th>cloud capacity</th><td>desired {desired}, scale set {current}, running {running}</td></tr>
<tr><th>why</th><td>{reason}</td></tr>
<tr><th>workloads</th><td>critical: {critical}, stateful: {stateful}</td></tr>
<tr><th>power</th><td>{power} ({status}), last UPS event {last_type}</td></tr>
<tr><th>budget</th><td>{spent} USD this month{capped}</td></tr>
<tr><th>boot time</th><td>{boot} s ({learned})</td></tr>
<tr><th>agent lease</th><td>{lease}</td></tr>
</table>"#,
            site = esc(&text(&s["site"])),
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
            "holding": [{"source": "power", "why": "on battery", "setting": "ups"}]});
        let page = render(&[site], "2026-12-06T00:00:00Z");
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!page.contains("<script"));
        assert!(page.contains("a&amp;b"));
        assert!(page.contains("What holds it"));
        for external in ["src=", "href=", "http://", "https://", "@import"] {
            assert!(!page.contains(external), "{external}");
        }
    }
}
