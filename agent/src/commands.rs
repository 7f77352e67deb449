//! The subcommands as plain async functions: configuration in, exit code out. This is where
//! a reader of any command starts: `main` only parses arguments, loads the configuration,
//! sets up logging and calls these.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use crate::config::Config;
use crate::deliver::{self, Outcome, Reply, Sender, Spool};
use crate::inside::inside_view;
use crate::payload::{self, Battery, Heartbeat, UpsEvent, WitnessReport};
use crate::upsd::{self, Snapshot, UpsName};

/// The battery readings of a snapshot, as the payloads carry them.
fn battery(snapshot: &Snapshot) -> Battery {
    Battery {
        charge: snapshot.battery_charge.map(f64::from),
        runtime_s: snapshot.battery_runtime_s,
    }
}

/// Exit codes: done; not delivered / not accepted; unusable configuration or usage.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;

/// Notify types that mean "upsmon lost contact with the UPS": the power state is unknown,
/// and must not be read as a power loss.
pub const COMMLOSS_TYPES: [&str; 2] = ["COMMBAD", "NOCOMM"];

/// What upsmon hands the NOTIFYCMD: the two variables it adds to the environment.
/// The message argument is deliberately not used (it went through a shell).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyEnv {
    pub notifytype: String,
    /// The MONITOR string (`ups@host:port`); empty for SHUTDOWN and NOPARENT.
    pub upsname: String,
}

impl NotifyEnv {
    /// Reads `NOTIFYTYPE` (required) and `UPSNAME` from an environment map.
    pub fn from_env(env: &std::collections::HashMap<String, String>) -> Result<NotifyEnv, String> {
        let notifytype = env
            .get("NOTIFYTYPE")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or(
                "NOTIFYTYPE is not set: `notify` is meant to be upsmon's NOTIFYCMD \
                 (to try the path by hand, use `burst-agent test`)",
            )?;
        Ok(NotifyEnv {
            notifytype,
            upsname: env
                .get("UPSNAME")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        })
    }
}

/// The UPS an event is about: its label for the payload, and where to query it.
fn resolve_ups(upsname: &str, config: &Config) -> (String, Option<UpsName>) {
    if !upsname.is_empty() {
        return match UpsName::parse(upsname) {
            Ok(u) => (u.to_string(), Some(u)),
            Err(e) => {
                warn!(%e, "UPSNAME from upsmon does not parse; sending it as is, without status");
                (upsname.to_string(), None)
            }
        };
    }
    match config.default_ups() {
        Ok(Some(u)) => (u.to_string(), Some(u)),
        Ok(None) => {
            warn!("upsmon gave no UPSNAME and `ups` is not configured; event without UPS status");
            (String::new(), None)
        }
        Err(e) => {
            warn!(%e, "configured `ups` is invalid");
            (config.ups.clone(), None)
        }
    }
}

/// Reads the UPS, mapping every failure to "unknown" (an empty snapshot) and logging why.
/// `WAIT` is upsd's placeholder before the driver's first data (right after upsd or the
/// driver restarted, e.g. at COMMOK): re-read for a moment, then report unknown rather than
/// a placeholder with battery values nobody measured.
async fn read_ups(ups: Option<&UpsName>, limit: std::time::Duration) -> Snapshot {
    let Some(ups) = ups else {
        return Snapshot::default();
    };
    let deadline = Instant::now() + limit;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match upsd::snapshot(ups, remaining).await {
            Ok(s) if s.status.split_whitespace().any(|t| t == "WAIT") => {
                if Instant::now() + WAIT_RETRY >= deadline {
                    warn!(ups = %ups, "upsd has no data from the driver yet (WAIT); reporting unknown");
                    return Snapshot::default();
                }
                tokio::time::sleep(WAIT_RETRY).await;
            }
            Ok(s) => return s,
            Err(e) => {
                warn!(ups = %ups, error = %e, commloss = e.is_commloss(),
                    "cannot read the UPS from upsd; reporting its status as unknown");
                return Snapshot::default();
            }
        }
    }
}

const WAIT_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// `burst-agent notify`: one upsmon event → spool → delivery (with everything spooled
/// before it). Returns within `notify_budget_ms` (+ a little), whatever happens: upsmon waits
/// for its NOTIFYCMD, so it must always get its process back. `at` and `started` are taken
/// when upsmon called (the event's time, and where the budget counts from).
pub async fn notify(config: &Config, env: &NotifyEnv, at: DateTime<Utc>, started: Instant) -> u8 {
    // Last-resort guard over the deadline the steps below keep: 2 s of slack for a step that
    // overruns it (a hung disk, a slow DNS answer).
    let limit = config.notify_budget() + std::time::Duration::from_secs(2);
    tokio::time::timeout(limit, spool_and_deliver(config, env, at, started))
        .await
        .unwrap_or_else(|_| {
            error!("notify overran its budget; the event stays spooled");
            EXIT_FAILED
        })
}

/// [`notify`]'s work: read the UPS, build the event, spool it, flush the spool (falling back
/// to sending it after the spool when it cannot be spooled).
async fn spool_and_deliver(
    config: &Config,
    env: &NotifyEnv,
    at: DateTime<Utc>,
    started: Instant,
) -> u8 {
    let deadline = started + config.notify_budget();
    let (label, ups) = resolve_ups(&env.upsname, config);
    let snapshot = if COMMLOSS_TYPES.contains(&env.notifytype.as_str()) {
        Snapshot::default() // upsmon already knows it cannot see the UPS: power unknown
    } else {
        let remaining = deadline.saturating_duration_since(Instant::now());
        read_ups(ups.as_ref(), config.upsd_timeout().min(remaining / 2)).await
    };
    let event = UpsEvent {
        id: Uuid::new_v4(),
        at: payload::rfc3339(at),
        ups: label,
        kind: env.notifytype.clone(),
        battery: battery(&snapshot),
        status: snapshot.status,
    };
    let body = match serde_json::to_string(&event) {
        Ok(b) => b,
        Err(e) => {
            error!(%e, "cannot encode the event");
            return EXIT_FAILED;
        }
    };
    info!(id = %event.id, r#type = %event.kind, ups = %event.ups, status = %event.status, "event");

    let sender = Sender::from_config(config);
    if let Err(e) = &sender {
        error!(error = %e, "cannot send (configuration); the event is spooled only");
    }
    let created_us = at.timestamp_micros();
    // The spool with the event in it, or why not (and the spool, when it could be opened).
    let spooled = match Spool::open(&config.spool_dir) {
        Ok(spool) => match spool.push(payload::ROUTE_UPS, event.id, created_us, body.clone()) {
            Ok(_) => Ok(spool),
            Err(e) => Err((Some(spool), e)),
        },
        Err(e) => Err((None, e)),
    };
    match (spooled, sender) {
        (Ok(spool), Ok(sender)) => match deliver::flush(&spool, &sender, deadline).await {
            Ok(report) => {
                info!(?report, "spool flushed");
                EXIT_OK
            }
            Err(e) => {
                error!(error = %e, dir = %config.spool_dir.display(), "spool error while delivering");
                EXIT_OK // the event itself is on disk
            }
        },
        (Ok(_), Err(_)) => EXIT_CONFIG,
        (Err((spool, e)), sender) => {
            let full = e.kind() == std::io::ErrorKind::StorageFull;
            error!(error = %e, disk_full = full, dir = %config.spool_dir.display(),
                "cannot spool the event; delivering the spool first, then the event directly");
            let Ok(sender) = sender else {
                error!(id = %event.id, "event lost: neither spooled nor sent");
                return EXIT_FAILED;
            };
            notify_unspooled(
                config,
                spool.as_ref(),
                &sender,
                event.id,
                body.as_bytes(),
                deadline,
            )
            .await
        }
    }
}

/// An event that could not be spooled (disk full, read-only, ...): the events already
/// spooled are older, so they go first, and the new one is sent only once none is left
/// waiting ahead of it (a later event would make the function take them as reordered and not
/// apply them). When the backlog cannot be delivered now, the new event is not sent: it is
/// lost, logged as an error, exit 1.
async fn notify_unspooled(
    config: &Config,
    spool: Option<&Spool>,
    sender: &Sender,
    id: Uuid,
    body: &[u8],
    deadline: Instant,
) -> u8 {
    let route = payload::ROUTE_UPS;
    let Some(spool) = spool else {
        // Not even the spool directory could be had: nothing can be waiting in it.
        return send_direct(sender, id, body, deadline).await;
    };
    let after = deliver::Unspooled { route, body };
    match deliver::flush_then_send(spool, sender, deadline, Some(after)).await {
        Ok((report, Some(Outcome::Delivered { status, duplicate }))) => {
            info!(%id, status, duplicate, ?report,
                "delivered directly, after the spool (the event could not be spooled)");
            EXIT_OK
        }
        Ok((report, Some(other))) => {
            error!(%id, outcome = ?other, ?report,
                "event lost: could not be spooled, and not delivered after the spool");
            EXIT_FAILED
        }
        Ok((report, None)) => {
            error!(%id, pending = report.pending, busy = report.busy, ?report,
                "event lost: could not be spooled, and not sent because older spooled events \
                 could not be delivered first (sending it ahead of them would reorder them)");
            EXIT_FAILED
        }
        Err(e) => match spool.count() {
            // The spool cannot be delivered from, but nothing is waiting in it either.
            Ok(0) => {
                warn!(error = %e, dir = %config.spool_dir.display(), "spool unusable, but empty");
                send_direct(sender, id, body, deadline).await
            }
            Err(ref c) if c.kind() == std::io::ErrorKind::NotFound => {
                send_direct(sender, id, body, deadline).await
            }
            waiting => {
                error!(%id, error = %e, waiting = ?waiting.map_err(|c| c.to_string()),
                    dir = %config.spool_dir.display(),
                    "event lost: could not be spooled, and not sent because the spool (which may \
                     hold older events) cannot be delivered");
                EXIT_FAILED
            }
        },
    }
}

/// Sends an event that is not spooled, when nothing can be waiting ahead of it.
async fn send_direct(sender: &Sender, id: Uuid, body: &[u8], deadline: Instant) -> u8 {
    match sender
        .send_with_retry(payload::ROUTE_UPS, body, deadline)
        .await
    {
        Outcome::Delivered { status, duplicate } => {
            info!(%id, status, duplicate, "delivered directly (nothing spooled ahead of it)");
            EXIT_OK
        }
        other => {
            error!(%id, outcome = ?other, "event lost: neither spooled nor delivered");
            EXIT_FAILED
        }
    }
}

/// `burst-agent heartbeat`: flush the spool, look at the cluster and the UPS, report. On
/// battery (`ups.status` has `OB`) the run stays and beats again every
/// `on_battery_interval_ms` until the timer's period (`heartbeat_period_ms`) is nearly used
/// up, so the cloud hears from home more often during an outage (see [`beat_schedule`]).
/// Exit 0 only if every beat was delivered.
pub async fn heartbeat(config: &Config, started: Instant) -> u8 {
    let budget = config.heartbeat_budget();
    let sender = match Sender::from_config(config) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "configuration");
            return EXIT_CONFIG;
        }
    };
    // Events first (they are older and matter more), with at most half of the budget.
    flush_before_beat(config, &sender, started + budget / 2, true).await;
    let ups = match config.default_ups() {
        Ok(u) => u,
        Err(e) => {
            error!(error = %e, "configuration");
            return EXIT_CONFIG;
        }
    };

    let schedule = beat_schedule(config, started);
    let mut code = EXIT_OK;
    let mut beats = 0u32;
    let mut deadline = started + budget;
    loop {
        let (beat_code, on_battery) = beat(config, &sender, ups.as_ref(), deadline).await;
        beats += 1;
        if beat_code != EXIT_OK {
            code = beat_code;
        }
        if !on_battery {
            break;
        }
        let Some(next) = schedule.next_after(Instant::now()) else {
            if beats == 1 && schedule.interval.is_some() {
                debug!("on battery, but no further beat fits before the next timer run");
            }
            break;
        };
        if beats == 1 {
            info!(
                interval_ms = config.on_battery_interval_ms,
                until_ms = schedule.window_end.duration_since(started).as_millis() as u64,
                "on battery: staying to beat faster until the next timer run"
            );
        }
        tokio::time::sleep_until(next).await;
        deadline = (next + budget).min(schedule.window_end);
        // Events spooled meanwhile (the function was unreachable for a hook) go first.
        let half = next + deadline.saturating_duration_since(next) / 2;
        flush_before_beat(config, &sender, half, false).await;
    }
    if beats > 1 {
        info!(beats, "heartbeat run done");
    }
    code
}

/// When further beats of an on-battery run go out: every `on_battery_interval_ms` after the
/// run started, while that is before `window_end` (the next timer run's start, less a margin
/// of a tenth of the period, at most 1 s, so the run is over before the next one starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeatSchedule {
    pub started: Instant,
    /// `None`: faster beats are off (`on_battery_interval_ms = 0`).
    pub interval: Option<std::time::Duration>,
    pub window_end: Instant,
}

/// The schedule of one run (see [`BeatSchedule`]).
pub fn beat_schedule(config: &Config, started: Instant) -> BeatSchedule {
    let period = config.heartbeat_period();
    let margin = (period / 10).min(std::time::Duration::from_secs(1));
    BeatSchedule {
        started,
        interval: Some(config.on_battery_interval()).filter(|i| !i.is_zero()),
        window_end: started + period.saturating_sub(margin),
    }
}

impl BeatSchedule {
    /// The first beat time after `now` (started + k × interval, k ≥ 1), if it is before
    /// `window_end`.
    pub fn next_after(&self, now: Instant) -> Option<Instant> {
        let interval = self.interval?;
        let since = now.saturating_duration_since(self.started);
        let k = u32::try_from(since.as_nanos() / interval.as_nanos())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let next = self.started + interval.checked_mul(k)?;
        (next < self.window_end).then_some(next)
    }
}

/// Delivers the spool before a beat, until `deadline`. The first beat of a run always
/// tries (and logs a spool it cannot open); later ones only when something is waiting.
async fn flush_before_beat(config: &Config, sender: &Sender, deadline: Instant, first: bool) {
    match Spool::open(&config.spool_dir) {
        Ok(spool) => {
            if !first && spool.count().unwrap_or(1) == 0 {
                return;
            }
            match deliver::flush(&spool, sender, deadline).await {
                Ok(report) if report == deliver::FlushReport::default() => {}
                Ok(report) => info!(?report, "spool flushed"),
                Err(e) => warn!(error = %e, "spool error"),
            }
        }
        Err(e) if first => {
            warn!(error = %e, dir = %config.spool_dir.display(), "cannot open the spool")
        }
        Err(_) => {}
    }
}

/// One beat: look at the cluster and the UPS, post, then the lease fence. Returns the exit
/// code of the post and whether the UPS is on battery (`ups.status` has `OB`).
async fn beat(
    config: &Config,
    sender: &Sender,
    ups: Option<&UpsName>,
    deadline: Instant,
) -> (u8, bool) {
    let at = Utc::now();
    let (view, snapshot) = tokio::join!(inside_view(config), read_ups(ups, config.upsd_timeout()));
    let on_battery = snapshot.status.split_whitespace().any(|t| t == "OB");
    let beat = Heartbeat {
        id: Uuid::new_v4(),
        at: payload::rfc3339(at),
        nodes_ready: view.nodes_ready,
        nodes_total: view.nodes_total,
        battery: battery(&snapshot),
        // No UPS configured: no field. Configured but unreadable: "" (unknown).
        ups_status: ups.map(|_| snapshot.status),
        api_ok: view.api_ok,
        lease: config.fencing(),
    };
    let (code, outcome, reply) =
        post_report(sender, payload::ROUTE_HEARTBEAT, &beat, beat.id, deadline).await;
    // After the post, so it never delays or prevents it; bounded by fence_timeout_ms.
    if config.fencing() {
        crate::fence::after_heartbeat(config, &outcome, reply.as_ref()).await;
    }
    (code, on_battery)
}

/// `burst-agent witness`: probe home from here and report.
pub async fn witness(config: &Config, target: Option<&str>, started: Instant) -> u8 {
    let target = target.unwrap_or(&config.witness_target);
    if let Err(e) = crate::witness::validate(target) {
        error!(error = %e, "configuration (BURST_AGENT_WITNESS_TARGET)");
        return EXIT_CONFIG;
    }
    let sender = match Sender::from_config(config) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "configuration");
            return EXIT_CONFIG;
        }
    };
    let at = Utc::now();
    let probe = match crate::witness::probe(
        target,
        config.witness_timeout(),
        config.witness_insecure_tls,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            error!(error = %e, "configuration");
            return EXIT_CONFIG;
        }
    };
    info!(target, reachable = probe.reachable, latency_ms = ?probe.latency_ms, detail = %probe.detail, "probed");
    let report = WitnessReport {
        id: Uuid::new_v4(),
        at: payload::rfc3339(at),
        target: target.to_string(),
        reachable: probe.reachable,
        latency_ms: probe.latency_ms,
    };
    post_report(
        &sender,
        payload::ROUTE_WITNESS,
        &report,
        report.id,
        started + config.heartbeat_budget(),
    )
    .await
    .0
}

/// Heartbeats and witness reports are not spooled: they describe "now", and a late one would
/// claim liveness that was not there. The next timer run sends a fresh one.
/// Returns the exit code, the outcome and the reply it was read from.
async fn post_report<T: serde::Serialize>(
    sender: &Sender,
    route: &str,
    value: &T,
    id: Uuid,
    deadline: Instant,
) -> (u8, Outcome, Option<Reply>) {
    let body = match serde_json::to_vec(value) {
        Ok(b) => b,
        Err(e) => {
            error!(%e, "cannot encode");
            let reason = format!("cannot encode: {e}");
            return (EXIT_FAILED, Outcome::Retry { reason }, None);
        }
    };
    let (outcome, reply) = sender.send_with_retry_reply(route, &body, deadline).await;
    let code = match &outcome {
        Outcome::Delivered { status, duplicate } => {
            info!(%id, route, status, duplicate, "delivered");
            EXIT_OK
        }
        Outcome::Rejected { status, body } => {
            error!(%id, route, status, %body, "the function refused the report");
            EXIT_FAILED
        }
        Outcome::Retry { reason } => {
            error!(%id, route, %reason, "not delivered (not spooled: the next run sends a fresh one)");
            EXIT_FAILED
        }
    };
    (code, outcome, reply)
}

/// `burst-agent test`: one signed `TEST` event with the live UPS status, one attempt, and a
/// human-readable account of what happened on `out`. Exit 0 only if the function accepted it.
pub async fn test_event(config: &Config, ups_override: Option<&str>, out: &mut dyn Write) -> u8 {
    let sender = match Sender::from_config(config) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(out, "configuration: {e}");
            return EXIT_CONFIG;
        }
    };
    let (label, ups) = resolve_ups(ups_override.unwrap_or(""), config);
    let at = Utc::now();
    let snapshot = read_ups(ups.as_ref(), config.upsd_timeout()).await;
    let event = UpsEvent {
        id: Uuid::new_v4(),
        at: payload::rfc3339(at),
        ups: label,
        kind: "TEST".to_string(),
        battery: battery(&snapshot),
        status: snapshot.status,
    };
    let body = match serde_json::to_vec(&event) {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(out, "cannot encode: {e}");
            return EXIT_FAILED;
        }
    };
    let _ = writeln!(out, "sending: {}", String::from_utf8_lossy(&body));
    if event.status.is_empty() {
        let _ = writeln!(
            out,
            "note: UPS status unknown (no `ups` configured, or upsd did not answer; see the log)"
        );
    }
    let url = sender.url(payload::ROUTE_UPS);
    match sender
        .post_once(payload::ROUTE_UPS, &body, config.http_timeout())
        .await
    {
        Ok(reply) => {
            let _ = writeln!(
                out,
                "POST {url} -> HTTP {} in {} ms\n{}",
                reply.status,
                reply.elapsed.as_millis(),
                reply.body
            );
            let accepted = (200..300).contains(&reply.status);
            let _ = writeln!(
                out,
                "{}",
                if accepted { "accepted" } else { "NOT accepted" }
            );
            if accepted { EXIT_OK } else { EXIT_FAILED }
        }
        Err(e) => {
            let _ = writeln!(out, "POST {url} -> no reply: {e}\nNOT accepted");
            EXIT_FAILED
        }
    }
}

/// `burst-agent keygen`: both keys on `out`, or the private key into a new 0600 file and
/// only the public key on `out`.
pub fn keygen(private_key_out: Option<&Path>, out: &mut dyn Write) -> u8 {
    let pair = match crate::keygen::generate() {
        Ok(p) => p,
        Err(e) => {
            error!(error = %e, "keygen");
            return EXIT_FAILED;
        }
    };
    let written = match private_key_out {
        None => write!(out, "{}{}", pair.private_pkcs8_pem, pair.public_spki_pem),
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .and_then(|mut f| {
                    f.write_all(pair.private_pkcs8_pem.as_bytes())?;
                    f.sync_all()
                });
            if let Err(e) = file {
                error!(error = %e, path = %path.display(), "cannot write the private key (an existing file is never overwritten)");
                return EXIT_FAILED;
            }
            info!(path = %path.display(), "private key written (mode 0600); public key on stdout");
            write!(out, "{}", pair.public_spki_pem)
        }
    };
    if written.is_err() {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn config(period_ms: u64, interval_ms: u64) -> Config {
        Config {
            heartbeat_period_ms: period_ms,
            on_battery_interval_ms: interval_ms,
            ..Config::default()
        }
    }

    #[test]
    fn beats_every_interval_until_just_before_the_next_run() {
        let t0 = Instant::now();
        let s = beat_schedule(&config(30_000, 10_000), t0);
        assert_eq!(s.window_end, t0 + Duration::from_secs(29), "a 1 s margin");
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(s.next_after(ms(50)), Some(ms(10_000)));
        assert_eq!(s.next_after(ms(10_000)), Some(ms(20_000)), "strictly after");
        // A slow beat skips the slots it missed rather than bunching up.
        assert_eq!(s.next_after(ms(12_500)), Some(ms(20_000)));
        assert_eq!(s.next_after(ms(20_300)), None, "30 s is the next run's");

        // Short periods keep a tenth as the margin.
        let s = beat_schedule(&config(3000, 1000), t0);
        assert_eq!(s.window_end, ms(2700));
        assert_eq!(s.next_after(ms(1100)), Some(ms(2000)));
        assert_eq!(s.next_after(ms(2100)), None);

        // Off, or no room for a second beat.
        assert_eq!(
            beat_schedule(&config(30_000, 0), t0).next_after(ms(1)),
            None
        );
        assert_eq!(
            beat_schedule(&config(30_000, 40_000), t0).next_after(ms(1)),
            None
        );
    }
}
