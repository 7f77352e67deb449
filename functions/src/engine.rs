//! The shell around the decision core: load the site's state → `step` → compare-and-swap save
//! → carry out the actions → feed each outcome back (again under CAS). A lost race reloads and
//! redoes the step, so concurrent invocations never lose an update; actions run only after the
//! state that issued them was saved, so a lost race never runs an action twice.
//!
//! Each run is a `tracing` span `invocation` with children `load`, `step`, `save` and one
//! `action` per action carried out (fields `site`, `mode`, `reason`, …); they reach an
//! OpenTelemetry collector when export is on (`crate::telemetry`, docs/telemetry.md) and cost
//! nothing otherwise.

use crate::deps::Deps;
use crate::sites::Site;
use burst_core::state::AuditEntry;
use burst_core::{
    Action, Direction, Input, MigrateResult, Mode, NotifyResult, Outcome, ScaleResult, SiteState,
    Step, Timestamp, dedupe, remember_token, step,
};
use burst_ports::{Loaded, StoreError, WakeUp};
use std::sync::Arc;
use tracing::Instrument;
use tracing::field::Empty;

/// Attempts at one compare-and-swap before giving up (each attempt reloads).
const CAS_ATTEMPTS: usize = 16;
/// A wake-up that arrives at most this early waits for its instant inside the invocation; an
/// earlier one (a delay capped by the queue) is consumed and scheduled again.
const MAX_EARLY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Rounds of action → outcome → step per invocation (the core settles in 2–3).
const MAX_ROUNDS: usize = 6;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The JWT id was seen before: a replayed request.
    #[error("this token was already used")]
    Replay,
    /// The state store failed; the caller answers 503 so the sender retries later.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored document is unreadable; nothing is overwritten.
    #[error("state document unreadable: {0}")]
    Corrupt(String),
}

/// What an invocation did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The state after the invocation (shared with the parsed-state cache).
    pub state: Arc<SiteState>,
    /// The input was seen before (same event id / hash): nothing changed.
    pub duplicate: bool,
    pub actions: Vec<Action>,
    /// Durable saves this invocation made (the intent, then all outcomes at once: ≤ 2
    /// unless a concurrent writer forced a retry).
    pub saves: usize,
}

/// A replay key to remember (the JWT id) until the token's expiry.
#[derive(Debug, Clone)]
pub struct Token {
    pub jti: String,
    pub until: Timestamp,
}

async fn load(
    deps: &Deps,
    site: &str,
    now: Timestamp,
) -> Result<(SiteState, Option<String>), EngineError> {
    load_state(deps, site, now)
        .instrument(tracing::info_span!("load", site))
        .await
}

async fn load_state(
    deps: &Deps,
    site: &str,
    now: Timestamp,
) -> Result<(SiteState, Option<String>), EngineError> {
    // With a parsed copy at hand, ask the store only for a newer version (a blob GET with
    // If-None-Match answers 304 without the document).
    if let Some((tag, state)) = deps.parsed.latest(site) {
        match deps.store.load_if_changed(site, &tag).await? {
            Loaded::Unchanged => return Ok((SiteState::clone(&state), Some(tag))),
            Loaded::Absent => return Ok((SiteState::new(site, now), None)),
            Loaded::Changed(v) => {
                let state = SiteState::from_json(&v.bytes).map_err(|e| corrupt(site, &e))?;
                deps.parsed.put(site, &v.etag, Arc::new(state.clone()));
                return Ok((state, Some(v.etag)));
            }
        }
    }
    match deps.store.load(site).await? {
        None => Ok((SiteState::new(site, now), None)),
        Some(v) => {
            if let Some(state) = deps.parsed.get(site, &v.etag) {
                return Ok((state, Some(v.etag)));
            }
            let state = SiteState::from_json(&v.bytes).map_err(|e| corrupt(site, &e))?;
            deps.parsed.put(site, &v.etag, Arc::new(state.clone()));
            Ok((state, Some(v.etag)))
        }
    }
}

/// An unreadable document, named so the operator finds it (`<site>.json` in every store).
fn corrupt(site: &str, e: &impl std::fmt::Display) -> EngineError {
    EngineError::Corrupt(format!(
        "the state document {site}.json cannot be read: {e}"
    ))
}

/// A step that was saved (or needed no save).
struct Stepped {
    state: Arc<SiteState>,
    actions: Vec<Action>,
    saved: bool,
    /// The last decision the saved step took, for the invocation's span (looked up only when
    /// that span is recorded).
    decision: Option<AuditEntry>,
}

/// When the transaction plans the site's next wake-up: `Last` for the final save of an
/// invocation, `IfSettled` for the intent save (it plans only when no actions follow, else
/// the outcome save does).
#[derive(Clone, Copy, PartialEq, Eq)]
enum WakePlan {
    IfSettled,
    Last,
}

/// Records the step's next deadline as the pending wake-up and returns the instant to
/// schedule — unless a pending wake-up comes no later: it will act or plan again when it comes.
/// So a site has one wake-up message in flight for its earliest deadline, not one per input
/// (each heartbeat moves the "heartbeat overdue" deadline later).
fn plan_wake(deps: &Deps, out: &mut Step, plan: WakePlan, now: Timestamp) -> Option<Timestamp> {
    deps.waker.as_ref()?;
    if plan == WakePlan::IfSettled && !out.actions.is_empty() {
        return None;
    }
    let at = out.next_wake?;
    if out
        .state
        .wake_at
        .is_some_and(|pending| pending >= now && pending <= at)
    {
        return None;
    }
    out.state.wake_at = Some(at);
    Some(at)
}

/// Runs one step under CAS: `f` gets the freshly loaded state (and may refuse) and says
/// whether the state changed.
async fn transact(
    deps: &Deps,
    site: &str,
    plan: WakePlan,
    mut f: impl FnMut(SiteState, Timestamp) -> Result<(Step, bool), EngineError>,
) -> Result<Stepped, EngineError> {
    let mut last = EngineError::Store(StoreError::Conflict);
    for attempt in 0..CAS_ATTEMPTS {
        let now = deps.now();
        let (state, etag) = load(deps, site, now).await?;
        let before = (state.mode, state.audit.last().cloned());
        let step_span = tracing::info_span!(
            "step",
            site,
            mode = Empty,
            decision = Empty,
            reason = Empty,
            actions = Empty
        );
        let (mut out, changed) = step_span.in_scope(|| f(state, now))?;
        // The step's last decision, for the spans (worked out only when they are recorded).
        let decision = if step_span.is_disabled() {
            None
        } else {
            let decision = burst_core::audit::since(&out.state, before.1.as_ref())
                .last()
                .cloned();
            record_step(&step_span, &out, decision.as_ref());
            decision
        };
        drop(step_span);
        let wake = plan_wake(deps, &mut out, plan, now);
        if !changed && wake.is_none() {
            return Ok(Stepped {
                state: Arc::new(out.state),
                actions: out.actions,
                saved: false,
                decision: None,
            });
        }
        let save_span = tracing::info_span!("save", site, attempt = attempt as u64, result = Empty);
        let saved = deps
            .store
            .save(site, &out.state.to_json(), etag.as_deref())
            .instrument(save_span.clone())
            .await;
        if !save_span.is_disabled() {
            save_span.record(
                "result",
                match &saved {
                    Ok(_) => "saved",
                    Err(StoreError::Conflict) => "conflict",
                    Err(_) => "failed",
                },
            );
        }
        drop(save_span);
        match saved {
            Ok(tag) => {
                log_decisions(site, &before, &out.state);
                let state = Arc::new(out.state);
                deps.parsed.put(site, &tag, state.clone());
                if let Some(at) = wake {
                    schedule_wake(deps, site, at, now).await;
                }
                return Ok(Stepped {
                    state,
                    actions: out.actions,
                    saved: true,
                    decision,
                });
            }
            Err(StoreError::Conflict) => {
                last = EngineError::Store(StoreError::Conflict);
                tokio::time::sleep(conflict_backoff(attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last)
}

/// Asks the platform for the wake-up saved in the state. A failure is logged, not fatal: the
/// timer probe still comes, and the next invocation that changes the deadline asks again.
async fn schedule_wake(deps: &Deps, site: &str, at: Timestamp, now: Timestamp) {
    let Some(waker) = &deps.waker else { return };
    let delay = real_time_until(deps, at, now);
    let wake = WakeUp {
        site: site.to_string(),
        at: at.0,
        probe: false,
    };
    match waker.schedule(&wake, delay).await {
        Ok(()) => {
            tracing::info!(site, at = %at.rfc3339(), delay_ms = delay.as_millis() as u64, "wake-up scheduled")
        }
        Err(e) => {
            tracing::warn!(site, at = %at.rfc3339(), error = %e, "could not schedule a wake-up; the probe will catch the deadline")
        }
    }
}

/// Real time from `now` until `at` on the core's clock (which runs faster in drills); zero if
/// `at` has passed.
fn real_time_until(deps: &Deps, at: Timestamp, now: Timestamp) -> std::time::Duration {
    let core_ms = at.since(now).max(0) as f64;
    std::time::Duration::from_secs_f64(core_ms / deps.clock_scale.max(1.0) / 1000.0)
}

/// One JSON log line per decision the saved step took (its audit entries: mode changes,
/// capacity, migrations, warnings), so transitions show in the logs, not only in the status.
fn log_decisions(site: &str, before: &(Mode, Option<AuditEntry>), after: &SiteState) {
    let (mode, last) = before;
    for e in burst_core::audit::since(after, last.as_ref()) {
        if e.what.starts_with("mode ") {
            tracing::info!(site, from = mode.as_str(), to = after.mode.as_str(), decision = %e.what, reason = %e.why, "mode change");
        } else {
            tracing::info!(site, decision = %e.what, reason = %e.why, "decision");
        }
    }
}

/// The step's span fields: the mode after it, its last decision and why, how many actions.
fn record_step(span: &tracing::Span, out: &Step, decision: Option<&AuditEntry>) {
    span.record("mode", out.state.mode.as_str());
    span.record("actions", out.actions.len() as u64);
    if let Some(e) = decision {
        record_decision(span, e);
    }
}

/// Records a decision (`decision`, `reason`) on a span that has those fields.
fn record_decision(span: &tracing::Span, e: &AuditEntry) {
    span.record("decision", e.what.as_str());
    span.record("reason", e.why.as_str());
}

/// Wait before retrying a lost compare-and-swap: full jitter over an exponentially growing
/// window (1 ms, 2 ms, ... capped at 64 ms), so writers that collided do not collide again.
fn conflict_backoff(attempt: usize) -> std::time::Duration {
    let window_ms = 1u64 << attempt.min(6);
    std::time::Duration::from_micros(fastrand::u64(0..=window_ms * 1000))
}

/// Applies one input for `site`, then carries out what it asks for with the site's adapters.
pub async fn apply(
    deps: &Arc<Deps>,
    site: &Arc<Site>,
    input: Input,
    token: Option<Token>,
) -> Result<Applied, EngineError> {
    run(deps, site, input, token, None).await
}

/// A scheduled wake-up arrived: if it is still the site's pending one, consume it and let time
/// pass (`Tick`), which acts on whatever is due and schedules the next wake-up. A wake-up that
/// was superseded (a later save asked for another instant), repeated or forged changes nothing
/// and answers `None`.
pub async fn wake(
    deps: &Arc<Deps>,
    site: &Arc<Site>,
    wake: &WakeUp,
) -> Result<Option<Applied>, EngineError> {
    if wake.site != site.id {
        return Ok(None);
    }
    // Wakers deliver a little early (a queue polled every few seconds, whole-second delays): a
    // wake-up due within moments waits out the rest here, so the deadline is acted on when it
    // falls, not a polling interval late.
    let early = real_time_until(deps, Timestamp(wake.at), deps.now());
    if !early.is_zero() && early <= MAX_EARLY_WAIT {
        tokio::time::sleep(early).await;
    }
    let applied = run(deps, site, Input::Tick, None, Some(Timestamp(wake.at))).await?;
    Ok((!applied.duplicate).then_some(applied))
}

/// One invocation of the engine for a site, in its `invocation` span; its figures go to the
/// metrics (`crate::telemetry`).
async fn run(
    deps: &Arc<Deps>,
    site: &Arc<Site>,
    input: Input,
    token: Option<Token>,
    wake_for: Option<Timestamp>,
) -> Result<Applied, EngineError> {
    let started = std::time::Instant::now();
    let kind = if wake_for.is_some() {
        "wake"
    } else {
        input_kind(&input)
    };
    let span = tracing::info_span!(
        "invocation",
        site = %site.id,
        input = kind,
        mode = Empty,
        decision = Empty,
        reason = Empty,
        duplicate = Empty,
        saves = Empty,
        actions = Empty,
        error = Empty,
        otel.status_code = Empty,
    );
    let result = run_steps(deps, site, input, token, wake_for)
        .instrument(span.clone())
        .await;
    if !span.is_disabled() {
        match &result {
            Ok((a, decision)) => {
                span.record("mode", a.state.mode.as_str());
                span.record("duplicate", a.duplicate);
                span.record("saves", a.saves as u64);
                span.record("actions", a.actions.len() as u64);
                if let Some(e) = decision {
                    record_decision(&span, e);
                }
            }
            Err(e) => {
                span.record("error", tracing::field::display(e));
                span.record("otel.status_code", "ERROR");
            }
        }
    }
    drop(span);
    let result = result.map(|(applied, _)| applied);
    crate::telemetry::invocation_done(&site.id, kind, result.as_ref(), started.elapsed());
    result
}

/// The input's kind, as the `input` field of spans and metrics.
fn input_kind(input: &Input) -> &'static str {
    match input {
        Input::Ups(_) => "ups",
        Input::Heartbeat(_) => "heartbeat",
        Input::Probe(_) => "probe",
        Input::Tailscale(_) => "tailscale",
        Input::Witness(_) => "witness",
        Input::Outcome(_) => "outcome",
        Input::Tick => "tick",
    }
}

/// The invocation's work; also returns its last decision (for the span).
async fn run_steps(
    deps: &Arc<Deps>,
    site: &Arc<Site>,
    input: Input,
    token: Option<Token>,
    wake_for: Option<Timestamp>,
) -> Result<(Applied, Option<AuditEntry>), EngineError> {
    let policy = site.policy();
    let mut duplicate = false;
    let out = transact(deps, &site.id, WakePlan::IfSettled, |mut state, now| {
        if let Some(at) = wake_for {
            if state.wake_at != Some(at) {
                duplicate = true;
                let unchanged = Step {
                    state,
                    actions: Vec::new(),
                    next_wake: None,
                };
                return Ok((unchanged, false));
            }
            // Consumed: whatever is still due after this step is scheduled afresh.
            state.wake_at = None;
        }
        if let Some(t) = &token
            && !remember_token(&mut state, &t.jti, t.until, now, policy)
        {
            return Err(EngineError::Replay);
        }
        duplicate = input
            .dedupe_key()
            .is_some_and(|(k, _)| dedupe::seen(&state, &k, now));
        let out = step(state, &input, now, policy);
        // A duplicate without a token to remember changes nothing: no write needed.
        let changed = !duplicate || token.is_some();
        Ok((out, changed))
    })
    .await?;
    let mut saves = usize::from(out.saved);
    let mut decision = out.decision;
    let mut state = out.state;
    let mut all_actions = out.actions.clone();
    let mut actions = out.actions;
    // The intent (the state that issued the actions) is saved; the outcomes and whatever
    // follows from them are worked out in memory and saved once at the end.
    let mut working = (*state).clone();
    let mut outcomes: Vec<Input> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        if actions.is_empty() {
            break;
        }
        let results = execute_all(site, &actions).await;
        actions = Vec::new();
        for outcome in results {
            let input = Input::Outcome(outcome);
            let out = tracing::info_span!("step", site = %site.id, input = "outcome")
                .in_scope(|| step(working, &input, deps.now(), policy));
            working = out.state;
            actions.extend(out.actions);
            outcomes.push(input);
        }
        all_actions.extend(actions.iter().cloned());
    }
    if !outcomes.is_empty() {
        // One compare-and-swap for every outcome, folded in order onto the freshest state: a
        // lost race re-folds them onto what the other writer saved.
        let out = transact(deps, &site.id, WakePlan::Last, |s, now| {
            let mut st = s;
            let mut next_wake = None;
            for input in &outcomes {
                let o = step(st, input, now, policy);
                st = o.state;
                next_wake = o.next_wake;
            }
            let folded = Step {
                state: st,
                actions: Vec::new(),
                next_wake,
            };
            Ok((folded, true))
        })
        .await?;
        saves += usize::from(out.saved);
        decision = out.decision.or(decision);
        state = out.state;
    }
    // One line per invocation: how many durable saves and actions it took.
    tracing::info!(site = %site.id, saves, actions = all_actions.len(), "invocation done");
    let applied = Applied {
        state,
        duplicate,
        actions: all_actions,
        saves,
    };
    Ok((applied, decision))
}

/// Reads the state without changing it (the status function).
pub async fn peek(deps: &Deps, site: &str) -> Result<SiteState, EngineError> {
    let loaded = load(deps, site, deps.now())
        .instrument(tracing::info_span!("peek", site))
        .await?;
    Ok(loaded.0)
}

/// Carries out actions concurrently; outcomes come back in the actions' order.
async fn execute_all(site: &Arc<Site>, actions: &[Action]) -> Vec<Outcome> {
    let mut set = tokio::task::JoinSet::new();
    for (i, a) in actions.iter().cloned().enumerate() {
        let site = site.clone();
        let span = action_span(&site.id, &a);
        set.spawn(async move { (i, execute(&site, &a).instrument(span).await) });
    }
    let mut out: Vec<(usize, Outcome)> = Vec::with_capacity(actions.len());
    while let Some(r) = set.join_next().await {
        match r {
            Ok(v) => out.push(v),
            Err(e) => tracing::error!(error = %e, "an action task panicked"),
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, o)| o).collect()
}

/// The span of one action: its kind and what it asks for; `result` is recorded when it is done.
fn action_span(site: &str, action: &Action) -> tracing::Span {
    match action {
        Action::SetCapacity { capacity, reason } => tracing::info_span!(
            "action",
            site,
            kind = "set_capacity",
            capacity,
            reason = %reason,
            result = Empty
        ),
        Action::Notify(n) => tracing::info_span!(
            "action",
            site,
            kind = "notify",
            delivery = n.delivery.as_str(),
            key = %n.key,
            result = Empty
        ),
        Action::Migrate {
            tier,
            direction,
            reason,
        } => tracing::info_span!(
            "action",
            site,
            kind = "migrate",
            tier = tier.as_str(),
            direction = direction.as_str(),
            reason = %reason,
            result = Empty
        ),
    }
}

/// Records an action's result on its span (the current one).
fn record_result(result: &dyn std::fmt::Debug) {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("result", tracing::field::debug(result));
    }
}

async fn execute(site: &Site, action: &Action) -> Outcome {
    let id = site.id.as_str();
    match action {
        Action::SetCapacity { capacity, reason } => {
            let result = match &site.scaler {
                Some(s) => s.set_capacity(*capacity).await,
                None => ScaleResult::NotApplicable {
                    detail: "no scale set configured (BURST_ARM_SCALE_SET_ID)".into(),
                },
            };
            record_result(&result);
            tracing::info!(site = id, capacity, reason = %reason, result = ?result, "set capacity");
            Outcome::Scale {
                requested: *capacity,
                result,
            }
        }
        Action::Notify(n) => {
            let result = match &site.notifier {
                Some(d) => d.send(n).await,
                None => {
                    // Without a webhook, messages go to the log (and count as delivered).
                    tracing::info!(site = id, key = %n.key, delivery = n.delivery.as_str(), title = %n.title, lines = ?n.lines, "message (no Discord webhook configured)");
                    NotifyResult::Delivered {
                        message_id: Some(format!("log-{}", n.key)),
                    }
                }
            };
            record_result(&result);
            tracing::info!(site = id, key = %n.key, delivery = n.delivery.as_str(), result = ?result, "notify");
            Outcome::Notify {
                key: n.key.clone(),
                result,
            }
        }
        Action::Migrate {
            tier,
            direction,
            reason,
        } => {
            let result = match &site.migrator {
                Some(m) => m.migrate(*tier, *direction).await,
                None => MigrateResult::NotApplicable {
                    detail: "no cloud cluster configured (BURST_CLOUD_KUBE_URL)".into(),
                },
            };
            record_result(&result);
            tracing::info!(site = id, tier = tier.as_str(), direction = dir(*direction), reason = %reason, result = ?result, "migrate");
            Outcome::Migrate {
                tier: *tier,
                direction: *direction,
                result,
            }
        }
    }
}

fn dir(d: Direction) -> &'static str {
    d.as_str()
}

#[cfg(test)]
#[path = "engine_wake_tests.rs"]
mod wake_tests;
