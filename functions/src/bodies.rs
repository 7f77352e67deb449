//! The function bodies (the routes of docs/contract.md): authenticate → parse → load state →
//! step → compare-and-swap save → carry out actions → feed results back. No platform types
//! here: the Azure custom handler and the Lambda wrappers call these with [`Request`]s.

use crate::deps::Deps;
use crate::engine::{self, Applied, EngineError, Token};
use crate::http::{Reject, Request, Response, require_json};
use crate::sites::Site;
use crate::status_page;
use crate::timeline;
use burst_core::Policy;
use burst_core::assess::{assess, holds};
use burst_core::state::Side;
use burst_core::{ApiProbe, DevicesProbe, Input, ProbeReport, ScaleSetProbe, SiteState, Timestamp};
use burst_ports::WakeUp;
use burst_wire::{AuthError, LEEWAY_S, Payload};
use serde_json::json;
use std::sync::Arc;

/// The functions, by name (the Azure function folder names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Ups,
    Heartbeat,
    Witness,
    Tailscale,
    Status,
    Probe,
    /// Queue-triggered: a scheduled wake-up (see `engine::wake`).
    Wake,
}

impl Function {
    pub const ALL: [Function; 7] = [
        Function::Ups,
        Function::Heartbeat,
        Function::Witness,
        Function::Tailscale,
        Function::Status,
        Function::Probe,
        Function::Wake,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::Ups => "ups",
            Function::Heartbeat => "heartbeat",
            Function::Witness => "witness",
            Function::Tailscale => "tailscale",
            Function::Status => "status",
            Function::Probe => "probe",
            Function::Wake => "wake",
        }
    }

    /// Case-insensitive, like the host's routing.
    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The HTTP method of an HTTP-triggered function (`None` for the timer and the queue).
    pub fn method(self) -> Option<&'static str> {
        match self {
            Function::Status => Some("GET"),
            Function::Probe | Function::Wake => None,
            _ => Some("POST"),
        }
    }

    /// The HTTP function a request names, or the refusal both platforms answer with: 404 for
    /// no such HTTP function, 405 (with `Allow`) for another method. `method` is upper-case.
    pub fn for_request(name: &str, method: &str) -> Result<Function, Response> {
        let Some((f, allowed)) = Function::from_name(name).and_then(|f| Some((f, f.method()?)))
        else {
            return Err(Response::error(
                404,
                "not_found",
                &format!("no HTTP function {name:?}"),
            ));
        };
        if method != allowed {
            let mut r = Response::error(
                405,
                "method_not_allowed",
                &format!("{} takes {allowed}", f.name()),
            );
            r.headers.push(("allow".into(), allowed.into()));
            return Err(r);
        }
        Ok(f)
    }
}

/// Serves one HTTP function.
pub async fn http(deps: &Arc<Deps>, f: Function, req: &Request) -> Response {
    let result = match f {
        Function::Ups => agent(deps, req, Payload::Ups).await,
        Function::Heartbeat => agent(deps, req, Payload::Heartbeat).await,
        Function::Witness => agent(deps, req, Payload::Witness).await,
        Function::Tailscale => tailscale(deps, req).await,
        Function::Status => status(deps, req).await,
        Function::Probe | Function::Wake => Err(Reject::new(
            404,
            "not_found",
            "probe and wake are not HTTP functions",
        )),
    };
    result.unwrap_or_else(|r| {
        tracing::info!(function = f.name(), status = r.status, error = r.code, detail = %r.detail, "refused");
        r.response()
    })
}

fn engine_error(e: EngineError) -> Reject {
    match e {
        EngineError::Replay => Reject::new(
            409,
            "replayed_token",
            "this token (jti) was already used; sign a new one",
        ),
        EngineError::Store(s) => {
            tracing::error!(error = %s, "state store");
            Reject::new(
                503,
                "state_unavailable",
                "the state store is unavailable; retry later",
            )
        }
        EngineError::Corrupt(d) => {
            // This site only: the others go on. Nothing is overwritten; the store's README says
            // how to recover the document.
            tracing::error!(error = %d, "state document unreadable");
            Reject::new(
                503,
                "state_unreadable",
                "the stored state of this site cannot be read; nothing was changed",
            )
        }
    }
}

fn accepted(applied: &Applied, extra: serde_json::Value) -> Response {
    let s = &applied.state;
    let mut body = json!({
        "ok": true,
        "duplicate": applied.duplicate,
        "site": s.site,
        "mode": s.mode.as_str(),
        "capacity": s.capacity.desired,
    });
    if let (Some(b), serde_json::Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    Response::json(200, &body)
}

async fn agent(deps: &Arc<Deps>, req: &Request, payload: Payload) -> Result<Response, Reject> {
    require_json(req)?;
    let now = deps.now();
    let unauthorized = |e: AuthError| Reject::new(401, e.code(), e.to_string());
    let token = burst_wire::bearer(req.header("authorization")).map_err(unauthorized)?;
    // The claimed site picks the key; the signature with that key then vouches for the claim.
    let claimed = burst_wire::claimed_issuer(token).map_err(unauthorized)?;
    let site = deps
        .sites
        .get(&claimed)
        .ok_or_else(|| unauthorized(AuthError::UnknownSite(claimed.clone())))?;
    let key = site.settings.agent_key.as_ref().ok_or_else(|| {
        Reject::new(503, "not_configured", format!("agent authentication is not configured for site {} (BURST_AGENT_ED25519_PUBLIC_KEY or BURST_AGENT_HS256_SECRET)", site.id))
    })?;
    let claims =
        burst_wire::verify(key, token, &req.body, now.millis() / 1000).map_err(unauthorized)?;
    if claims.iss != site.id {
        return Err(unauthorized(AuthError::UnknownSite(claims.iss)));
    }
    let input = payload.parse(&req.body)?;
    let token = Token {
        jti: claims.jti,
        until: Timestamp::from_secs(claims.exp.saturating_add(LEEWAY_S + 1)),
    };
    let heartbeat = match &input {
        Input::Heartbeat(h) => Some(h.lease),
        _ => None,
    };
    let applied = engine::apply(deps, site, input, Some(token))
        .await
        .map_err(engine_error)?;
    let extra = match heartbeat {
        Some(asked) => heartbeat_reply(&applied.state, asked, deps.now()),
        None => json!({}),
    };
    Ok(accepted(&applied, extra))
}

/// What a heartbeat's answer adds: where the stateful tier runs (the agent unfences once it
/// is home) and, for an agent that asked, the lease as the cloud holds it. `remaining_ms` is
/// measured on the cloud's clock at the answer; the agent adds it to its own send time, so
/// its local expiry is never later than ours.
fn heartbeat_reply(state: &SiteState, asked: bool, now: Timestamp) -> serde_json::Value {
    let stateful = match state.placement.stateful.side {
        Side::Home => "home",
        Side::Cloud => "cloud",
        Side::Unsure => "unsure",
    };
    let mut v = json!({ "stateful": stateful });
    if asked && let Some(l) = state.lease {
        v["lease"] = json!({
            "expires_at": l.expires_at.rfc3339(),
            "remaining_ms": l.expires_at.since(now).max(0),
        });
    }
    v
}

async fn tailscale(deps: &Arc<Deps>, req: &Request) -> Result<Response, Reject> {
    let secrets = deps.sites.tailscale_secrets();
    if secrets.is_empty() {
        return Err(Reject::new(
            503,
            "not_configured",
            "TAILSCALE_WEBHOOK_SECRET is not set",
        ));
    }
    if req.body.len() > crate::http::BODY_LIMIT {
        return Err(Reject::new(
            413,
            "body_too_large",
            "request body is over 64 KiB",
        ));
    }
    let header = req.header("tailscale-webhook-signature").ok_or_else(|| {
        Reject::new(
            401,
            "missing_signature",
            "Tailscale-Webhook-Signature header is missing",
        )
    })?;
    let now = deps.now().millis() / 1000;
    // The signature covers the exact bytes received; only then is the body parsed. Each
    // webhook endpoint has its own secret: the sites whose secret verifies are the candidates.
    let mut verified = Vec::new();
    let mut refusal = None;
    for (secret, sites) in secrets {
        match burst_tailscale::verify(&secret.0, header, &req.body, now) {
            Ok(()) => verified.extend(sites),
            Err(e) => refusal = Some(e),
        }
    }
    if verified.is_empty() {
        let e = refusal.map(|e| (e.code(), e.to_string()));
        let (code, detail) = e.unwrap_or(("invalid_signature", String::new()));
        return Err(Reject::new(401, code, detail));
    }
    require_json(req)?;
    let events = burst_tailscale::payload::parse(&req.body)
        .map_err(|e| Reject::new(400, "invalid_payload", e.to_string()))?;
    let mut duplicates = 0;
    let mut unrouted = 0;
    let mut reached: Vec<String> = Vec::new();
    let mut last = None;
    for ev in &events {
        let targets = deps
            .sites
            .for_tailscale_event(&verified, ev.tailnet.as_deref(), &ev.tags());
        unrouted += usize::from(targets.is_empty());
        for site in targets {
            let applied = engine::apply(deps, site, Input::Tailscale(ev.to_core()), None)
                .await
                .map_err(engine_error)?;
            duplicates += usize::from(applied.duplicate);
            if !reached.contains(&site.id) {
                reached.push(site.id.clone());
            }
            last = Some(applied);
        }
    }
    if unrouted > 0 {
        tracing::warn!(
            unrouted,
            "Tailscale events of a tailnet no site watches (BURST_TAILSCALE_TAILNET)"
        );
    }
    let mut body = json!({"ok": true, "events": events.len(), "duplicates": duplicates,
        "unrouted": unrouted, "sites": reached});
    if let [one] = reached.as_slice() {
        body["site"] = json!(one);
    }
    if let Some(a) = last {
        body["mode"] = json!(a.state.mode.as_str());
    }
    Ok(Response::json(200, &body))
}

/// What holds the site's mode or capacity, each with the setting that feeds that source.
fn holds_with_settings(s: &SiteState, now: Timestamp, policy: &Policy) -> serde_json::Value {
    let a = assess(s, now, policy);
    let setting = |source: &str| match source {
        "power" => "the agent's `ups` (upsd) and upsmon's NOTIFYCMD",
        "network" | "heartbeats" => "the agent's heartbeat timer and `base_url`",
        "api" | "nodes" => {
            "BURST_HOME_KUBE_URL (the probe) or the agent's `kube_source`; with neither, recovery uses power and heartbeats"
        }
        "workloads" => "BURST_CLOUD_KUBE_URL (the cloud cluster)",
        "delay" => "BURST_SCALE_DOWN_DELAY_S",
        _ => "",
    };
    let holds: Vec<serde_json::Value> = holds(s, &a, now, policy)
        .into_iter()
        .map(|h| json!({"source": h.source, "why": h.why, "setting": setting(h.source)}))
        .collect();
    json!(holds)
}

/// The status's timeline window.
const DAY_S: i64 = 24 * 3600;

/// A summary for the owner: mode, capacity and why, incident, webhook state, budget, signals.
pub fn summary(s: &SiteState, now: Timestamp, policy: &Policy) -> serde_json::Value {
    let incident = s.incidents.last().map(|i| {
        json!({
            "id": i.id,
            "title": i.title,
            "opened_at": i.opened_at.rfc3339(),
            "resolved_at": i.resolved_at.map(|t| t.rfc3339()),
            "message_id": i.message_id,
            "undelivered_updates": i.revision - i.delivered.min(i.revision),
            "lines": i.lines,
        })
    });
    json!({
        "site": s.site,
        "mode": s.mode.as_str(),
        "mode_since": s.mode_since.rfc3339(),
        "capacity": {
            "desired": s.capacity.desired,
            "current": s.capacity.current,
            "reason": s.capacity.reason,
            "retry_at": s.capacity.retry_at.map(|t| t.rfc3339()),
            // Write → instances running, learned from what this scale set did (median).
            "boot_estimate_s": burst_core::ahead::boot_estimate_s(&s.capacity.boot, policy),
            "boot_samples_s": s.capacity.boot.samples_s,
        },
        "placement": {
            "critical": s.placement.critical.side,
            "stateful": s.placement.stateful.side,
        },
        "incident": incident,
        "pending_posts": s.posts.len(),
        "discord_webhook": match &s.webhook_gone {
            Some(d) => json!({"ok": false, "gone": d}),
            None => json!({"ok": true}),
        },
        "budget": {
            "spent_usd": (s.budget.spent_usd * 100.0).round() / 100.0,
            // The month's cap (BURST_MONTHLY_BUDGET_USD); null = no budget.
            "monthly_usd": policy.monthly_budget_usd,
            "period": s.budget.period,
            "alerted_percent": s.budget.alerted,
            "capped": s.budget.capped,
        },
        "holding": holds_with_settings(s, now, policy),
        "lease": s.lease.map(|l| json!({
            "granted_at": l.granted_at.rfc3339(),
            "expires_at": l.expires_at.rfc3339(),
        })),
        "signals": s.signals,
        "warnings": s.warnings,
        "audit": s.audit.iter().rev().take(20).collect::<Vec<_>>(),
        // Mode and desired capacity over the last 24 hours, from the audit trail.
        "day": {
            "from": now.plus_millis(-DAY_S * 1000).rfc3339(),
            "samples": timeline::from_audit(s, now, DAY_S).iter()
                .map(|p| json!({"t": p.t, "mode": p.mode, "desired": p.desired}))
                .collect::<Vec<_>>(),
        },
    })
}

async fn status(deps: &Arc<Deps>, req: &Request) -> Result<Response, Reject> {
    let mut sites = Vec::new();
    for site in deps.sites.iter() {
        let s = engine::peek(deps, &site.id).await.map_err(engine_error)?;
        sites.push(summary(&s, deps.now(), site.policy()));
    }
    if status_page::wants_html(req.header("accept")) {
        let page = status_page::render(&sites, &deps.now().rfc3339());
        return Ok(Response {
            status: 200,
            headers: vec![
                ("content-type".into(), "text/html; charset=utf-8".into()),
                // Self-contained: nothing to load, nothing to run.
                (
                    "content-security-policy".into(),
                    "default-src 'none'; style-src 'unsafe-inline'".into(),
                ),
            ],
            body: page.into_bytes(),
        });
    }
    Ok(Response::json(200, &json!({ "sites": sites })))
}

/// The timer probe: for every site, pull its home API, its tailnet's devices and its scale
/// set, then let the core reconcile (level-triggered: retries, evictions, undelivered
/// messages). Sites are probed `BURST_PROBE_CONCURRENCY` at a time, each within
/// `BURST_PROBE_SITE_TIMEOUT_MS`, so one site's slow or dead API delays no other site's
/// decision beyond its own timeout. An error names every site that failed; the others were
/// still decided.
pub async fn probe(deps: &Arc<Deps>) -> Result<String, String> {
    if deps.settings.probe_via_queue
        && let Some(waker) = &deps.waker
    {
        return probe_via_queue(deps, waker).await;
    }
    let started = std::time::Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(deps.settings.probe_concurrency));
    let mut set = tokio::task::JoinSet::new();
    for site in deps.sites.iter() {
        let (deps, site, limit) = (deps.clone(), site.clone(), limit.clone());
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let out = probe_site(&deps, &site).await;
            (site.id.clone(), out)
        });
    }
    let mut done = Vec::with_capacity(deps.sites.len());
    let mut failed = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((_, Ok(line))) => done.push(line),
            Ok((site, Err(e))) => failed.push(format!("{site}: {e}")),
            Err(e) => failed.push(format!("a probe task ended: {e}")),
        }
    }
    let took = started.elapsed().as_millis();
    if deps.sites.len() == 1 && failed.is_empty() {
        return Ok(done.pop().unwrap_or_default());
    }
    if !failed.is_empty() {
        failed.sort();
        return Err(format!(
            "probe: {} of {} site(s) failed in {took} ms: {}",
            failed.len(),
            deps.sites.len(),
            failed.join("; ")
        ));
    }
    Ok(format!("probe: {} site(s) in {took} ms", done.len()))
}

/// `BURST_PROBE_FANOUT=queue`: one queue message per site (`{"site","at","probe":true}`), each
/// probed by its own `wake` invocation wherever the platform runs it. A site whose message
/// cannot be sent is probed here, so the sweep never skips a site.
async fn probe_via_queue(
    deps: &Arc<Deps>,
    waker: &Arc<dyn burst_ports::Waker>,
) -> Result<String, String> {
    let now = deps.now();
    let mut here = Vec::new();
    for site in deps.sites.iter() {
        let message = WakeUp {
            site: site.id.clone(),
            at: now.millis(),
            probe: true,
        };
        if let Err(e) = waker.schedule(&message, std::time::Duration::ZERO).await {
            tracing::warn!(site = %site.id, error = %e, "could not queue the probe: probing here");
            here.push(site.clone());
        }
    }
    let queued = deps.sites.len() - here.len();
    let mut failed = Vec::new();
    for site in &here {
        if let Err(e) = probe_site(deps, site).await {
            failed.push(e);
        }
    }
    let line = format!(
        "probe: {queued} site(s) handed to the queue, {} probed here",
        here.len()
    );
    if failed.is_empty() {
        Ok(line)
    } else {
        Err(format!("{line}; {}", failed.join("; ")))
    }
}

/// One site's probe: its three observations at once, each bounded by the site timeout, then
/// one step.
async fn probe_site(deps: &Arc<Deps>, site: &Arc<Site>) -> Result<String, String> {
    let limit = deps.settings.probe_site_timeout;
    let home = bounded(
        limit,
        site.home.as_ref().map(|h| h.observe()),
        |detail| ApiProbe::Unknown { detail },
        "home API probe (BURST_HOME_KUBE_URL)",
    );
    let devices = bounded(
        limit,
        site.devices.as_ref().map(|d| d.observe()),
        |detail| DevicesProbe::Unknown { detail },
        "Tailscale devices API",
    );
    let scale_set = bounded(
        limit,
        site.scaler.as_ref().map(|s| s.observe()),
        |detail| ScaleSetProbe::Unknown { detail },
        "scale set",
    );
    let (home_api, devices, scale_set) = tokio::join!(home, devices, scale_set);
    let report = ProbeReport {
        home_api,
        devices,
        scale_set,
    };
    let id = &site.id;
    match engine::apply(deps, site, Input::Probe(report), None).await {
        Ok(a) => Ok(format!(
            "probe {id}: mode {}, capacity {} ({} action(s))",
            a.state.mode,
            a.state.capacity.desired,
            a.actions.len()
        )),
        Err(e) => Err(format!("probe {id}: {e}")),
    }
}

/// One observation of a probe, bounded by `limit`; Unknown (saying why) when it is late or
/// its adapter is not configured.
async fn bounded<T>(
    limit: std::time::Duration,
    observation: Option<impl std::future::Future<Output = T>>,
    unknown: fn(String) -> T,
    adapter: &str,
) -> T {
    match observation {
        Some(observe) => tokio::time::timeout(limit, observe)
            .await
            .unwrap_or_else(|_| unknown(format!("no answer within {} ms", limit.as_millis()))),
        None => unknown(format!("{adapter} not configured")),
    }
}

/// The largest wake-up message accepted (a real one is about 40 bytes).
const WAKE_MESSAGE_LIMIT: usize = 1024;

/// Serves one scheduled wake-up (`wake`, queue-triggered). `message` is the queue item as the
/// host hands it over: the message text (JSON `{"site","at"}`), or already parsed. An error
/// fails the invocation, so the host retries it and, after its dequeue limit, parks it in the
/// poison queue where it can be inspected: nothing is dropped silently.
pub async fn wake(deps: &Arc<Deps>, message: &serde_json::Value) -> Result<String, String> {
    let parsed = match message {
        serde_json::Value::String(text) if text.len() > WAKE_MESSAGE_LIMIT => {
            return Err(format!(
                "wake: message of {} bytes is over {WAKE_MESSAGE_LIMIT}",
                text.len()
            ));
        }
        serde_json::Value::String(text) => serde_json::from_str::<WakeUp>(text),
        other => serde_json::from_value::<WakeUp>(other.clone()),
    };
    let wake =
        parsed.map_err(|e| format!("wake: not a wake-up message ({{\"site\",\"at\"}}): {e}"))?;
    let Some(site) = deps.sites.get(&wake.site) else {
        return Err(format!(
            "wake: site {:?} is not watched here (BURST_SITES)",
            wake.site
        ));
    };
    if wake.probe {
        // The timer's share for this site (BURST_PROBE_FANOUT=queue), not a deadline.
        return probe_site(deps, site).await;
    }
    let at = Timestamp(wake.at).rfc3339();
    match engine::wake(deps, site, &wake).await {
        Ok(Some(a)) => Ok(format!(
            "wake {} at {at}: mode {}, capacity {} ({} action(s))",
            wake.site,
            a.state.mode,
            a.state.capacity.desired,
            a.actions.len()
        )),
        Ok(None) => Ok(format!(
            "wake {} at {at}: superseded (not the pending wake-up), nothing to do",
            wake.site
        )),
        Err(e) => Err(format!("wake {} at {at}: {e}", wake.site)),
    }
}
