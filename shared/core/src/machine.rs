//! `step`: one input in, the new state, the actions to take and the next wake-up out.
//!
//! The order inside a step is fixed: dedupe → account spend → observe → assess → change mode →
//! warn → budget → capacity → migrations → messages. Every decision leaves an audit entry.

use crate::action::{Action, Direction, Severity, Tier};
use crate::assess::{Assessment, assess};
use crate::input::{Input, MigrateResult, Outcome, ScaleResult, ScaleSetProbe, TailscaleEvent};
use crate::policy::Policy;
use crate::state::{Causes, Health, Lease, Mode, Side, SiteState, Warnings, busy};
use crate::time::{Timestamp, human_secs};
use crate::{audit, budget, capacity, dedupe, incident, mode, signals};

/// What one step produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub state: SiteState,
    pub actions: Vec<Action>,
    /// When the core next wants to be stepped (with [`Input::Tick`]) even if nothing happens.
    pub next_wake: Option<Timestamp>,
}

/// Longest wait between conflict re-reads.
const MAX_CONFLICT_BACKOFF_S: u64 = 300;
/// Re-announce a persisting warning at most this often.
const WARNING_REPEAT_S: u64 = 6 * 3600;

/// Advances the site by one input at time `now`. Pure: same arguments, same result.
pub fn step(mut state: SiteState, input: &Input, now: Timestamp, policy: &Policy) -> Step {
    let key = input.dedupe_key();
    if let Some((k, _)) = &key
        && dedupe::seen(&state, k, now)
    {
        // A duplicate changes nothing at all.
        let next_wake = next_wake(&state, now, policy);
        return Step {
            state,
            actions: Vec::new(),
            next_wake,
        };
    }
    let now = now.max(state.clock);
    state.clock = now;
    dedupe::expire(&mut state, now);
    if let Some((k, snapshot)) = &key {
        let ttl = if *snapshot {
            policy.snapshot_dedupe_ttl_s
        } else {
            policy.dedupe_ttl_s
        };
        dedupe::remember(&mut state, k, now.plus_secs(ttl), now, policy);
    }
    let charged = state.capacity.current.unwrap_or(state.capacity.desired);
    budget::accrue(&mut state.budget, charged, now, policy);

    observe(&mut state, input, now, policy);

    let seen = assess(&state, now, policy);
    track_trouble(&mut state, &seen, now);
    // Decide on what the state says now: tracking may have moved a since-time that the
    // assessment reads (e.g. how long power has been unknown).
    let mut a = assess(&state, now, policy);
    change_mode(&mut state, &mut a, now, policy);
    warn(&mut state, &a, now, policy);
    budget_alerts(&mut state, now, policy);

    let mut actions = Vec::new();
    if let Some(act) = plan_capacity(&mut state, &a, now, policy) {
        actions.push(act);
    }
    actions.extend(plan_migrations(&mut state, &a, now, policy));
    if !busy(state.in_flight.notify, now, policy.action_timeout_s)
        && let Some(n) = incident::next(&state, now)
    {
        state.in_flight.notify = Some(now);
        actions.push(Action::Notify(n));
    }
    let next_wake = next_wake(&state, now, policy);
    Step {
        state,
        actions,
        next_wake,
    }
}

/// An input's own time is the sender's clock; one ahead of ours is taken as now, so a wrong
/// clock (or a forged date) never freezes later inputs behind it.
fn clamp_at(
    state: &mut SiteState,
    what: &str,
    at: Timestamp,
    now: Timestamp,
    policy: &Policy,
) -> Timestamp {
    if at <= now {
        return at;
    }
    if what == "UPS event" {
        audit::record(
            state,
            now,
            "sender clock ahead",
            format!(
                "{what} dated {at}, {} s ahead of this clock: taken as now",
                at.since(now) / 1000
            ),
            policy,
        );
    }
    now
}

fn observe(state: &mut SiteState, input: &Input, now: Timestamp, policy: &Policy) {
    match input {
        Input::Ups(e) => {
            let mut e = e.clone();
            e.at = clamp_at(state, "UPS event", e.at, now, policy);
            let e = &e;
            let applied = signals::apply_ups(&mut state.signals.power, e, now);
            if applied && e.notify.is_test() {
                audit::record(
                    state,
                    now,
                    "UPS TEST recorded",
                    format!("a test event (burst-agent test) [{}]", e.status),
                    policy,
                );
            } else if applied {
                // The grace counts from the event's own time: a spooled ONBATT delivered late
                // does not push the outage back by the delay.
                if state.signals.power.health == Health::Down
                    && state.trouble.power_down_since.is_none()
                {
                    state.trouble.power_down_since = Some(e.at);
                }
                let mut text = format!("UPS {}", e.notify);
                if !e.status.is_empty() {
                    text.push_str(&format!(" [{}]", e.status));
                }
                if let Some(c) = e.battery_charge {
                    text.push_str(&format!(", battery {c:.0} %"));
                }
                incident::update(state, now, &text, None, policy);
            } else {
                audit::record(
                    state,
                    now,
                    format!("UPS {} recorded, not applied", e.notify),
                    format!(
                        "its time {} is older than the last applied event (reordered delivery)",
                        e.at
                    ),
                    policy,
                );
            }
        }
        Input::Heartbeat(h) => {
            let mut h = h.clone();
            h.at = clamp_at(state, "heartbeat", h.at, now, policy);
            let newer = state
                .signals
                .heartbeat
                .event_at
                .is_none_or(|seen| h.at >= seen);
            signals::apply_heartbeat(&mut state.signals, &h, now);
            if h.lease && newer {
                state.lease = Some(Lease {
                    granted_at: now,
                    expires_at: now.plus_secs(policy.lease_s),
                });
            }
        }
        Input::Witness(w) => {
            let mut w = w.clone();
            w.at = clamp_at(state, "witness report", w.at, now, policy);
            signals::apply_witness(&mut state.signals, &w, now)
        }
        Input::Probe(p) => {
            signals::apply_probe(&mut state.signals, p, now, policy);
            if let ScaleSetProbe::Seen { capacity, running } = p.scale_set {
                state.capacity.not_applicable = None;
                note_scale_set(state, capacity, now, policy);
                nodes_stuck(state, running, now, policy);
                crate::ahead::note_running(&mut state.capacity.boot, running, now);
            }
        }
        Input::Tailscale(t) => tailscale_event(state, t, now, policy),
        Input::Outcome(o) => outcome(state, o, now, policy),
        Input::Tick => {}
    }
}

/// A scale-up whose instances are still not running long after the learned boot time: say
/// so once (Spot capacity, quota or a failed allocation) and re-issue the write, which re-reads
/// the scale set (a failed provisioning state then comes back as a failure).
fn nodes_stuck(state: &mut SiteState, running: u32, now: Timestamp, policy: &Policy) {
    let Some((since, target)) = state.capacity.boot.pending else {
        state.warnings.nodes_stuck = false;
        return;
    };
    if running >= target {
        state.warnings.nodes_stuck = false;
        return;
    }
    let boot = crate::ahead::boot_estimate_s(&state.capacity.boot, policy);
    let limit = boot.saturating_mul(3).saturating_add(60);
    if state.warnings.nodes_stuck || !now.elapsed_at_least(since, limit) {
        return;
    }
    state.warnings.nodes_stuck = true;
    let text = format!(
        "the scale set asks for {target} node(s) but {running} run {} after the write (boot usually {}): Spot capacity, quota or a failed allocation? re-reading and writing again",
        human_secs(u64::try_from(now.since(since) / 1000).unwrap_or(0)),
        human_secs(boot)
    );
    audit::record(state, now, "cloud nodes not running", text.clone(), policy);
    incident::update(state, now, &text, None, policy);
    incident::post(
        state,
        now,
        "Cloud nodes are not starting".to_string(),
        Severity::Warning,
        vec![text],
        true,
    );
    state.capacity.current = None;
    state.capacity.boot.pending = Some((now, target));
}

/// The scale set's real capacity, from a probe: notice spot evictions and drift.
fn note_scale_set(state: &mut SiteState, seen: u32, now: Timestamp, policy: &Policy) {
    let desired = state.capacity.desired;
    let was = state.capacity.current;
    state.capacity.current = Some(seen);
    if seen < desired && was.is_some_and(|w| w > seen) {
        let text =
            format!("scale set capacity dropped to {seen} (spot evictions?), restoring {desired}");
        audit::record(state, now, "capacity drift", text.clone(), policy);
        incident::update(state, now, &text, None, policy);
    }
}

fn tailscale_event(state: &mut SiteState, t: &TailscaleEvent, now: Timestamp, policy: &Policy) {
    let device = t.device.clone().unwrap_or_else(|| "a device".to_string());
    match t.kind.as_str() {
        "nodeKeyExpiringInOneDay" | "nodeKeyExpired" => {
            let what = if t.kind == "nodeKeyExpired" {
                "has expired"
            } else {
                "expires within a day"
            };
            let text = format!(
                "Tailscale key of {device} {what}: an expiry during an outage strands the node"
            );
            incident::post(
                state,
                now,
                format!("Tailscale key: {device}"),
                Severity::Warning,
                vec![text.clone()],
                true,
            );
            audit::record(state, now, format!("tailscale {}", t.kind), text, policy);
        }
        "nodeCreated" | "nodeApproved" => {
            let text = format!("{device} joined the tailnet ({})", t.kind);
            incident::update(state, now, &text, None, policy);
            audit::record(state, now, format!("tailscale {}", t.kind), text, policy);
        }
        other => audit::record(
            state,
            now,
            format!("tailscale {other}"),
            "recorded; no decision depends on it",
            policy,
        ),
    }
}

fn outcome(state: &mut SiteState, o: &Outcome, now: Timestamp, policy: &Policy) {
    match o {
        Outcome::Scale { requested, result } => {
            state.in_flight.scale = None;
            scale_outcome(state, *requested, result, now, policy)
        }
        Outcome::Notify { key, result } => {
            state.in_flight.notify = None;
            let text = incident::apply_outcome(state, key, result, now, policy);
            audit::record(state, now, "notification", text, policy);
        }
        Outcome::Migrate {
            tier,
            direction,
            result,
        } => {
            *state.in_flight.migrate_mut(*tier) = None;
            migrate_outcome(state, *tier, *direction, result, now, policy)
        }
    }
}

fn scale_outcome(
    state: &mut SiteState,
    requested: u32,
    result: &ScaleResult,
    now: Timestamp,
    policy: &Policy,
) {
    let cap = &mut state.capacity;
    let before = cap.current;
    let (what, why, failed) = match result {
        ScaleResult::Accepted { capacity, running } => {
            crate::ahead::start_timing(&mut cap.boot, *capacity, *running, now);
            cap.current = Some(*capacity);
            cap.retry_at = None;
            cap.conflicts = 0;
            cap.failure_reported = false;
            state.signals.scale_set.capacity = Some(*capacity);
            if running.is_some() {
                state.signals.scale_set.running = *running;
            }
            (
                format!("scale set asks for {capacity}"),
                format!("write of {requested} accepted"),
                false,
            )
        }
        ScaleResult::Conflict { detail } => {
            cap.current = None;
            cap.conflicts = cap.conflicts.saturating_add(1);
            let shift = cap.conflicts.saturating_sub(1).min(10);
            let wait = policy
                .conflict_backoff_s
                .saturating_mul(1 << shift)
                .min(MAX_CONFLICT_BACKOFF_S);
            cap.retry_at = Some(now.plus_secs(wait));
            (
                format!("scale to {requested}: conflict"),
                format!("{detail}; re-read and re-decide in {}", human_secs(wait)),
                false,
            )
        }
        ScaleResult::Throttled { retry_after_s } => {
            cap.retry_at = Some(now.plus_secs(*retry_after_s));
            (
                format!("scale to {requested}: throttled"),
                format!(
                    "ARM said retry after {}; not retrying before",
                    human_secs(*retry_after_s)
                ),
                false,
            )
        }
        ScaleResult::ReadFailed { detail } => {
            cap.current = None;
            cap.retry_at = Some(now.plus_secs(policy.action_retry_s));
            (
                format!("scale to {requested}: not written"),
                format!("the current capacity could not be read ({detail}); never write blind"),
                true,
            )
        }
        ScaleResult::NotApplicable { detail } => {
            let first = cap.not_applicable.is_none();
            cap.not_applicable = Some(detail.clone());
            if !first {
                return;
            }
            (
                format!("scale to {requested}: not applicable"),
                format!("{detail}; no capacity is written until a scale set is seen"),
                false,
            )
        }
        ScaleResult::Failed { detail } => {
            cap.retry_at = Some(now.plus_secs(policy.action_retry_s));
            (
                format!("scale to {requested}: failed"),
                format!("{detail}; retry in {}", human_secs(policy.action_retry_s)),
                true,
            )
        }
    };
    match result {
        ScaleResult::Accepted { capacity, .. } if before != Some(*capacity) => {
            let text = format!("scale set now asks for {capacity} node(s)");
            incident::update(state, now, &text, None, policy);
        }
        ScaleResult::Throttled { .. } | ScaleResult::Conflict { .. } => {
            incident::update(state, now, &format!("{what}: {why}"), None, policy);
        }
        _ => {}
    }
    if failed && !state.capacity.failure_reported {
        state.capacity.failure_reported = true;
        incident::post(
            state,
            now,
            "Scaling the cloud failed".to_string(),
            Severity::Warning,
            vec![format!("{what}: {why}")],
            true,
        );
    }
    audit::record(state, now, what, why, policy);
}

fn migrate_outcome(
    state: &mut SiteState,
    tier: Tier,
    direction: Direction,
    result: &MigrateResult,
    now: Timestamp,
    policy: &Policy,
) {
    let place = state.placement.get_mut(tier);
    match result {
        MigrateResult::Done { workloads } => {
            place.side = match direction {
                Direction::ToCloud => Side::Cloud,
                Direction::ToHome => Side::Home,
            };
            place.retry_at = None;
            place.failures = 0;
            let text = match direction {
                Direction::ToCloud => format!("{tier} workloads moved to the cloud ({workloads})"),
                Direction::ToHome => format!("{tier} workloads back home ({workloads})"),
            };
            incident::update(state, now, &text, None, policy);
            audit::record(
                state,
                now,
                format!("migrate {tier} {}", direction.as_str()),
                text,
                policy,
            );
        }
        MigrateResult::NotApplicable { detail } => {
            // Nothing moved and nothing could: keep the tier where it is, do not hold capacity
            // for it, and do not retry in this incident.
            if direction == Direction::ToCloud && place.side == Side::Unsure && place.failures == 0
            {
                // Unsure only because the move was in flight: it never left home.
                place.side = Side::Home;
            }
            place.retry_at = None;
            place.not_applicable = Some(detail.clone());
            let text = format!(
                "moving {tier} workloads {}: not applicable ({detail})",
                direction.as_str()
            );
            audit::record(state, now, format!("migrate {tier} skipped"), text, policy);
        }
        MigrateResult::Failed { detail } => {
            if direction == Direction::ToCloud {
                // Some workloads may have been scaled before the failure.
                place.side = Side::Unsure;
            }
            place.failures = place.failures.saturating_add(1);
            place.retry_at = Some(now.plus_secs(policy.action_retry_s));
            let first = place.failures == 1;
            let text = format!(
                "moving {tier} workloads {} failed: {detail}; retry in {}",
                direction.as_str(),
                human_secs(policy.action_retry_s)
            );
            if first {
                incident::post(
                    state,
                    now,
                    format!("Moving {tier} workloads failed"),
                    Severity::Warning,
                    vec![text.clone()],
                    true,
                );
            }
            audit::record(state, now, format!("migrate {tier} failed"), text, policy);
        }
    }
}

/// Keeps the since-times of Down conditions current.
fn track_trouble(state: &mut SiteState, a: &Assessment, now: Timestamp) {
    // A reading older than a silence of the agent proves nothing about now.
    if a.heartbeats_overdue && state.signals.power.known != Health::Unknown {
        state.signals.power.stale = true;
    }
    let t = &mut state.trouble;
    if a.power == Health::Down {
        t.power_down_since.get_or_insert(now);
    } else {
        t.power_down_since = None;
    }
    if a.nodes_missing {
        t.nodes_missing_since.get_or_insert(now);
    } else {
        t.nodes_missing_since = None;
    }
    // The bound on unknown power runs only while everything else is up.
    let others_up = !a.home_unreachable
        && !a.heartbeats_overdue
        && a.api_up
        && a.nodes.is_some_and(|n| n.ready >= n.total);
    if !a.power_current && state.signals.power.known != Health::Unknown && others_up {
        t.power_unknown_since.get_or_insert(now);
    } else {
        t.power_unknown_since = None;
    }
    if state.mode == Mode::Healthy && !a.any_down() {
        t.causes = Causes::default();
        for tier in Tier::ALL {
            state.placement.get_mut(tier).not_applicable = None;
        }
    } else {
        t.causes.power |= a.power == Health::Down;
        t.causes.unreachable |= a.home_unreachable;
        // The API counts as having been down only on evidence (the probe failing, or a fresh
        // heartbeat whose inside view says so), not for lack of a report yet.
        let hb = &state.signals.heartbeat;
        let hb_says_down = hb.inside_seen && !hb.api_ok && !a.heartbeats_overdue;
        t.causes.api |= !a.api_up && (state.signals.probe.api == Health::Down || hb_says_down);
        t.causes.nodes |= a.nodes_missing;
    }
}

fn change_mode(state: &mut SiteState, a: &mut Assessment, now: Timestamp, policy: &Policy) {
    // A few hops at most (Healthy → Suspect → Outage on LOWBATT); bounded against surprises.
    for _ in 0..4 {
        let Some(tr) = mode::next(state, a, now, policy) else {
            return;
        };
        let from = state.mode;
        state.mode = tr.to;
        state.mode_since = now;
        audit::record(
            state,
            now,
            format!("mode {from} → {}", tr.to),
            tr.why.clone(),
            policy,
        );
        let site = state.site.clone();
        match (from, tr.to) {
            (Mode::Suspect, Mode::Outage) => {
                if state.open_incident().is_some() {
                    incident::update(state, now, &format!("outage: {}", tr.why), None, policy);
                } else {
                    incident::open(
                        state,
                        now,
                        format!("Outage at {site}"),
                        format!("outage: {}", tr.why),
                    );
                }
            }
            (Mode::Outage, Mode::Recovering) => {
                let title = recovering_title(state, policy);
                incident::update(
                    state,
                    now,
                    &format!("recovering: {}", tr.why),
                    Some(title),
                    policy,
                )
            }
            (Mode::Recovering, Mode::Outage) => incident::update(
                state,
                now,
                &format!("outage again: {}", tr.why),
                Some(format!("Outage at {site} (flapping)")),
                policy,
            ),
            (Mode::Recovering, Mode::Healthy) => {
                incident::resolve(state, now, &format!("resolved: {}", tr.why), policy)
            }
            _ => {}
        }
        *a = assess(state, now, policy);
    }
}

/// The Recovering title promises only the capacity that is really held (the budget may have
/// removed it).
fn recovering_title(state: &SiteState, policy: &Policy) -> String {
    let site = &state.site;
    let held = match budget::cap(&state.budget, policy) {
        Some(cap) => state.capacity.desired.min(cap),
        None => state.capacity.desired,
    };
    if held == 0 {
        format!("Recovering: {site} looks healthy (no cloud capacity held)")
    } else {
        format!(
            "Recovering: {site} looks healthy, holding {held} cloud node(s) for {}",
            human_secs(policy.scale_down_delay_s)
        )
    }
}

fn warn(state: &mut SiteState, a: &Assessment, now: Timestamp, policy: &Policy) {
    let path =
        a.path_broken && state.signals.probe.consecutive_failures >= policy.silence_min_probes;
    standing_warning(
        state,
        now,
        policy,
        (path, !a.path_broken),
        |w| (&mut w.path_broken, &mut w.path_broken_warned_at),
        [
            "warning: path to home broken",
            "Cloud cannot reach home",
            "the cloud cannot reach the home API while heartbeats arrive: the path from the cloud is broken, home is fine; not bursting",
        ],
    );
    standing_warning(
        state,
        now,
        policy,
        (a.agent_broken, !a.agent_broken),
        |w| (&mut w.agent_broken, &mut w.agent_broken_warned_at),
        [
            "warning: agent silent",
            "On-prem agent is silent",
            "heartbeats are overdue while the home API answers: the on-prem agent is broken",
        ],
    );
}

/// A warning that stands while its cause lasts: when `raise`d it is audited and posted (at
/// most once per [`WARNING_REPEAT_S`], so a flapping cause does not spam the owner); when
/// `cause_gone` it is cleared, ready to be raised again. `[audit label, title, text]`.
fn standing_warning(
    state: &mut SiteState,
    now: Timestamp,
    policy: &Policy,
    (raise, cause_gone): (bool, bool),
    slot: fn(&mut Warnings) -> (&mut bool, &mut Option<Timestamp>),
    [label, title, text]: [&str; 3],
) {
    let (active, warned_at) = slot(&mut state.warnings);
    if raise && !*active {
        *active = true;
        let due = warned_at.is_none_or(|t| now.elapsed_at_least(t, WARNING_REPEAT_S));
        if due {
            *warned_at = Some(now);
        }
        audit::record(state, now, label, text.to_string(), policy);
        if due {
            incident::post(
                state,
                now,
                title.to_string(),
                Severity::Warning,
                vec![text.to_string()],
                false,
            );
        }
    } else if cause_gone {
        *active = false;
    }
}

fn budget_alerts(state: &mut SiteState, now: Timestamp, policy: &Policy) {
    let total = policy.monthly_budget_usd.unwrap_or_default();
    for th in budget::new_alerts(&state.budget, policy) {
        state.budget.alerted.push(th);
        let text = format!(
            "budget {th} %: spent about {:.2} of {total:.2} USD this month",
            state.budget.spent_usd
        );
        audit::record(state, now, format!("budget {th} %"), text.clone(), policy);
        incident::update(state, now, &text, None, policy);
        incident::post(
            state,
            now,
            format!("Cloud budget at {th} %"),
            if th >= 100 {
                Severity::Trouble
            } else {
                Severity::Warning
            },
            vec![text],
            th >= 80,
        );
    }
}

fn plan_capacity(
    state: &mut SiteState,
    a: &Assessment,
    now: Timestamp,
    policy: &Policy,
) -> Option<Action> {
    let d = capacity::decide(state, a, now, policy);
    if d.capacity != state.capacity.desired {
        let text = format!(
            "capacity {} → {}: {}",
            state.capacity.desired, d.capacity, d.reason
        );
        audit::record(
            state,
            now,
            format!("capacity {}", d.capacity),
            d.reason.clone(),
            policy,
        );
        incident::update(state, now, &text, None, policy);
    }
    if d.budget_capped && !state.budget.capped {
        incident::post(
            state,
            now,
            "Cloud capacity capped by the budget".to_string(),
            Severity::Trouble,
            vec![format!("capacity {}: {}", d.capacity, d.reason)],
            true,
        );
    }
    state.budget.capped = d.budget_capped;
    let cut = d.capacity < state.capacity.desired;
    state.capacity.desired = d.capacity;
    state.capacity.reason = d.reason.clone();
    if cut && state.mode == Mode::Recovering {
        let title = recovering_title(state, policy);
        incident::update(
            state,
            now,
            &format!("capacity now {}", d.capacity),
            Some(title),
            policy,
        );
    }

    let cap = &state.capacity;
    let in_sync = cap.current == Some(cap.desired);
    let waiting = cap.retry_at.is_some_and(|t| now < t);
    let none = cap.not_applicable.is_some();
    if in_sync || waiting || none || busy(state.in_flight.scale, now, policy.action_timeout_s) {
        return None;
    }
    state.in_flight.scale = Some(now);
    Some(Action::SetCapacity {
        capacity: state.capacity.desired,
        reason: state.capacity.reason.clone(),
    })
}

/// Where a tier's workloads should be now.
fn wanted_side(state: &SiteState, tier: Tier, a: &Assessment) -> Side {
    let current = state.placement.get(tier).side;
    match (state.mode, tier) {
        (Mode::Healthy, _) => Side::Home,
        (Mode::Suspect, _) => current,
        (Mode::Outage | Mode::Recovering, Tier::Critical) => Side::Cloud,
        (Mode::Outage, Tier::Stateful) if a.stateful_move_allowed() => Side::Cloud,
        // An unsure stateful tier stays unsure until home is healthy: without quorum it must
        // not be pushed further to the cloud.
        (Mode::Outage | Mode::Recovering, Tier::Stateful) => current,
    }
}

fn plan_migrations(
    state: &mut SiteState,
    a: &Assessment,
    now: Timestamp,
    policy: &Policy,
) -> Vec<Action> {
    let mut out = Vec::new();
    for tier in Tier::ALL {
        let want = wanted_side(state, tier, a);
        let place = state.placement.get(tier);
        if want == place.side
            || place.not_applicable.is_some()
            || place.retry_at.is_some_and(|t| now < t)
            || busy(state.in_flight.migrate(tier), now, policy.action_timeout_s)
        {
            continue;
        }
        *state.in_flight.migrate_mut(tier) = Some(now);
        if want == Side::Cloud && place.side == Side::Home {
            // From the moment the move is handed out until its outcome is saved, the tier may
            // run in the cloud (the invocation can die after the move and before the save):
            // capacity is held for it and it is brought home before any scale-down.
            state.placement.get_mut(tier).side = Side::Unsure;
        }
        let (direction, reason) = match want {
            Side::Cloud => (
                Direction::ToCloud,
                match tier {
                    Tier::Critical => "site in outage".to_string(),
                    Tier::Stateful => format!(
                        "site in outage, quorum ({}), no observer sees home up, {}",
                        a.observers_down().join(" + "),
                        if state.lease.is_some() {
                            "the agent's lease expired"
                        } else {
                            "no lease taken"
                        }
                    ),
                },
            ),
            Side::Home => (Direction::ToHome, "home healthy again".to_string()),
            // Never wanted: an unsure tier is only ever kept as it is (skipped above).
            Side::Unsure => continue,
        };
        audit::record(
            state,
            now,
            format!("migrate {tier} {}", direction.as_str()),
            reason.clone(),
            policy,
        );
        out.push(Action::Migrate {
            tier,
            direction,
            reason,
        });
    }
    out
}

/// The earliest future time at which something is due.
pub fn next_wake(state: &SiteState, now: Timestamp, policy: &Policy) -> Option<Timestamp> {
    let a = assess(state, now, policy);
    let mut due: Vec<Timestamp> = Vec::new();
    due.extend(mode::deadline(state, &a, policy));
    if matches!(state.mode, Mode::Suspect | Mode::Outage) {
        due.extend(crate::ahead::battery(state, &a, now, policy).and_then(|ah| ah.at));
    }
    // In an outage a Down vote or the lease's end can allow the stateful move by time alone.
    if state.mode == Mode::Outage && state.placement.stateful.side == Side::Home {
        due.extend(crate::assess::vote_deadlines(state, policy));
    }
    let inf = &state.in_flight;
    for since in [inf.scale, inf.notify, inf.critical, inf.stateful]
        .into_iter()
        .flatten()
    {
        due.push(since.plus_secs(policy.action_timeout_s));
    }
    // While healthy, heartbeats going overdue decide nothing by themselves (home is unreachable
    // only once the probe fails too, and the probe's own run notices): no wake-up for it, so an
    // idle site is not woken after every heartbeat timeout.
    if state.mode != Mode::Healthy
        && let Some(t) = state.signals.heartbeat.received_at
    {
        due.push(t.plus_secs(policy.heartbeat_timeout_s).plus_millis(1));
    }
    if state.capacity.current != Some(state.capacity.desired) {
        due.extend(state.capacity.retry_at);
    }
    if incident::pending(state) && state.webhook_gone.is_none() {
        due.extend(state.notify_retry_at);
    }
    for tier in Tier::ALL {
        due.extend(state.placement.get(tier).retry_at);
    }
    due.into_iter().filter(|t| *t > now).min()
}

/// Remembers a JWT id (or any replay key) until it expires; false if it was seen before.
/// The functions call this under the same compare-and-swap as `step`.
pub fn remember_token(
    state: &mut SiteState,
    key: &str,
    until: Timestamp,
    now: Timestamp,
    policy: &Policy,
) -> bool {
    dedupe::remember(state, &format!("jti:{key}"), until, now, policy)
}
