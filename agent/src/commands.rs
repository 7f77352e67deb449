//! The subcommands as plain async functions: configuration in, exit code out. This is where
//! a reader of any command starts: `main` only parses arguments, loads the configuration,
//! sets up logging and calls these. `notify` is the outbox's own ([`crate::deliver::notify`]):
//! a UPS event goes from upsmon's call into the spool and out in one module.

use std::io::Write;
use std::path::Path;

use chrono::Utc;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use crate::config::Config;
use crate::deliver::{self, Outcome, Reply, Sender, Spool};
use crate::inside::inside_view;
use crate::upsd::{self, UpsName};
use burst_wire::{Heartbeat, UpsEvent, WitnessReport};

/// Exit codes: done; not delivered / not accepted; unusable configuration or usage.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;

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
    let (view, snapshot) = tokio::join!(
        inside_view(config),
        upsd::read_ups(ups, config.upsd_timeout())
    );
    let on_battery = snapshot.status.split_whitespace().any(|t| t == "OB");
    let beat = Heartbeat {
        id: Uuid::new_v4(),
        at: burst_wire::rfc3339(at),
        nodes_ready: view.nodes_ready,
        nodes_total: view.nodes_total,
        battery: snapshot.battery(),
        // No UPS configured: no field. Configured but unreadable: "" (unknown).
        ups_status: ups.map(|_| snapshot.status),
        api_ok: view.api_ok,
        lease: config.fencing(),
    };
    let (code, outcome, reply) = post_report(
        sender,
        burst_wire::ROUTE_HEARTBEAT,
        &beat,
        beat.id,
        deadline,
    )
    .await;
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
        at: burst_wire::rfc3339(at),
        target: target.to_string(),
        reachable: probe.reachable,
        latency_ms: probe.latency_ms,
    };
    post_report(
        &sender,
        burst_wire::ROUTE_WITNESS,
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
    let (label, ups) = upsd::resolve_ups(ups_override.unwrap_or(""), config);
    let at = Utc::now();
    let snapshot = upsd::read_ups(ups.as_ref(), config.upsd_timeout()).await;
    let event = UpsEvent {
        id: Uuid::new_v4(),
        at: burst_wire::rfc3339(at),
        ups: label,
        kind: "TEST".to_string(),
        battery: snapshot.battery(),
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
    let url = sender.url(burst_wire::ROUTE_UPS);
    match sender
        .post_once(burst_wire::ROUTE_UPS, &body, config.http_timeout())
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
