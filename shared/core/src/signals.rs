//! Turning inputs into observations: each signal becomes Up, Down or Unknown.
//!
//! Only the observation is recorded here; what it means for the site is decided in
//! [`crate::assess`] and [`crate::mode`].

use crate::input::{
    ApiProbe, DevicesProbe, Heartbeat, NodeCount, ProbeReport, ScaleSetProbe, UpsEvent,
    WitnessReport,
};
use crate::nut::{NotifyType, PowerReading, UpsStatus};
use crate::policy::Policy;
use crate::state::{Critical, Health, PowerSignal, Signals};
use crate::time::Timestamp;

/// Power health from a notify type and the status tokens sent with it.
pub fn power_from(notify: Option<&NotifyType>, status: &UpsStatus) -> (Health, Option<Critical>) {
    // Lost communication with the UPS says nothing about mains power.
    if matches!(notify, Some(NotifyType::CommBad | NotifyType::NoComm)) {
        return (Health::Unknown, None);
    }
    let by_type = match notify {
        Some(NotifyType::Shutdown) => Some((Health::Down, Some(Critical::Shutdown))),
        Some(NotifyType::Fsd) => Some((Health::Down, Some(Critical::ForcedShutdown))),
        _ => None,
    };
    let by_status = match status.power() {
        PowerReading::OnBattery { fsd: true, .. } | PowerReading::ForcedShutdown => {
            Some((Health::Down, Some(Critical::ForcedShutdown)))
        }
        PowerReading::OnBattery { low: true, .. } => {
            Some((Health::Down, Some(Critical::LowBattery)))
        }
        PowerReading::OnBattery { .. } => Some((Health::Down, None)),
        PowerReading::OnLine => Some((Health::Up, None)),
        PowerReading::Unknown => None,
    };
    if let Some(v) = by_type {
        return v;
    }
    if let Some(v) = by_status {
        return v;
    }
    // No usable status (upsd unreachable): fall back on what the type itself says.
    match notify {
        Some(NotifyType::OnBatt) => (Health::Down, None),
        Some(NotifyType::LowBatt) => (Health::Down, Some(Critical::LowBattery)),
        Some(NotifyType::Online) => (Health::Up, None),
        _ => (Health::Unknown, None),
    }
}

/// Applies a UPS event. Returns false when it is older than what we already know (reordered
/// NOTIFYCMD calls): then only its unknown tokens are noted.
pub fn apply_ups(power: &mut PowerSignal, event: &UpsEvent, now: Timestamp) -> bool {
    for token in event.status.unknown_tokens() {
        note_unknown(power, token);
    }
    if let NotifyType::Other(t) = &event.notify
        && !event.notify.is_test()
    {
        note_unknown(power, t);
    }
    if event.notify.is_test() {
        // `burst-agent test`: recorded (audit, status), but no reading and no move of the
        // reorder guard, so a spooled backlog behind it still applies.
        return true;
    }
    if power.event_at.is_some_and(|seen| event.at < seen) {
        return false;
    }
    let (health, critical) = power_from(Some(&event.notify), &event.status);
    if health == Health::Unknown
        && !matches!(event.notify, NotifyType::CommBad | NotifyType::NoComm)
    {
        // No power reading at all (a TEST event, an unknown type while upsd did not answer):
        // it says nothing about mains power, so what we knew stands.
        power.last_type = Some(event.notify.clone());
        return true;
    }
    power.health = health;
    power.critical = critical;
    if health != Health::Unknown {
        // A real reading. A lost UPS link (COMMBAD/NOCOMM) keeps the last one in `known`.
        power.known = health;
        power.known_critical = critical;
        power.stale = false;
    }
    power.status = event.status.clone();
    power.last_type = Some(event.notify.clone());
    power.event_at = Some(event.at);
    power.ups = Some(event.ups.clone());
    power.battery_charge = event.battery_charge;
    power.battery_runtime_s = event.battery_runtime_s;
    power.runtime_at = event.battery_runtime_s.map(|_| now);
    true
}

fn note_unknown(power: &mut PowerSignal, token: &str) {
    const KEEP: usize = 16;
    if !power.unknown.iter().any(|t| t == token) && power.unknown.len() < KEEP {
        power.unknown.push(token.to_string());
    }
}

pub fn apply_heartbeat(signals: &mut Signals, hb: &Heartbeat, now: Timestamp) {
    let newer = signals.heartbeat.event_at.is_none_or(|seen| hb.at >= seen);
    if !newer {
        // A late copy of an old snapshot says nothing new.
        return;
    }
    signals.heartbeat.received_at = Some(now);
    signals.heartbeat.event_at = Some(hb.at);
    signals.heartbeat.api_ok = hb.api_ok;
    signals.heartbeat.inside_seen |= hb.api_ok || hb.nodes_total > 0;
    signals.heartbeat.nodes = (hb.nodes_total > 0).then_some(NodeCount {
        ready: hb.nodes_ready.min(hb.nodes_total),
        total: hb.nodes_total,
    });
    // The heartbeat's UPS view counts when it is newer than the last UPS event.
    if let Some(status) = &hb.ups_status
        && !status.is_empty()
        && signals.power.event_at.is_none_or(|seen| hb.at > seen)
    {
        let (health, critical) = power_from(None, status);
        if health != Health::Unknown {
            let p = &mut signals.power;
            p.health = health;
            p.critical = critical;
            p.known = health;
            p.known_critical = critical;
            p.stale = false;
            p.status = status.clone();
            p.event_at = Some(hb.at);
            if hb.battery_charge.is_some() {
                p.battery_charge = hb.battery_charge;
            }
            if let Some(r) = hb.battery_runtime_s {
                p.battery_runtime_s = Some(r);
                p.runtime_at = Some(now);
            }
        }
    }
}

pub fn apply_witness(signals: &mut Signals, w: &WitnessReport, now: Timestamp) {
    if signals.witness.event_at.is_some_and(|seen| w.at < seen) {
        return;
    }
    signals.witness.event_at = Some(w.at);
    signals.witness.reachable = Some(w.reachable);
    if w.reachable {
        signals.witness.down_streak = 0;
        signals.witness.down_since = None;
    } else {
        signals.witness.down_streak = signals.witness.down_streak.saturating_add(1);
        signals.witness.down_since.get_or_insert(now);
    }
    signals.witness.received_at = Some(now);
    signals.witness.target = Some(w.target.clone());
    signals.witness.latency_ms = w.latency_ms;
}

pub fn apply_probe(signals: &mut Signals, report: &ProbeReport, now: Timestamp, policy: &Policy) {
    let probe = &mut signals.probe;
    probe.last_at = Some(now);
    match &report.home_api {
        ApiProbe::Ready { latency_ms, nodes } => {
            probe.api = Health::Up;
            probe.api_seen = true;
            probe.up_since.get_or_insert(now);
            probe.failing_since = None;
            probe.consecutive_failures = 0;
            probe.latency_ms = Some(*latency_ms);
            probe.detail = None;
            if let Some(n) = nodes
                && n.total > 0
            {
                probe.nodes = Some(NodeCount {
                    ready: n.ready.min(n.total),
                    total: n.total,
                });
                probe.nodes_at = Some(now);
            }
        }
        ApiProbe::NotReady { detail } | ApiProbe::Unreachable { detail } => {
            probe.api_seen |= matches!(report.home_api, ApiProbe::NotReady { .. });
            probe.api = Health::Down;
            probe.up_since = None;
            probe.failing_since.get_or_insert(now);
            probe.consecutive_failures = probe.consecutive_failures.saturating_add(1);
            probe.latency_ms = None;
            probe.detail = Some(detail.clone());
        }
        ApiProbe::Unknown { detail } => {
            // Says nothing about home: keep the failure streak as it was.
            probe.api = Health::Unknown;
            probe.up_since = None;
            probe.detail = Some(detail.clone());
        }
    }

    let devices = &mut signals.devices;
    match report.devices {
        DevicesProbe::Seen { online, total } => {
            devices.online = Some(online);
            devices.total = Some(total);
            devices.seen_at = Some(now);
            // Home counts as gone from the tailnet only when every on-prem device is: one
            // connected device proves that home's network and power are there.
            if total > 0 && online == 0 {
                devices.offline_streak = devices.offline_streak.saturating_add(1);
                devices.offline_since.get_or_insert(now);
            } else {
                devices.offline_streak = 0;
                devices.offline_since = None;
            }
            devices.health = if total == 0 {
                Health::Unknown
            } else if online > 0 {
                Health::Up
            } else if devices.offline_streak >= policy.devices_offline_probes {
                Health::Down
            } else {
                Health::Unknown
            };
        }
        DevicesProbe::Unknown { .. } => devices.health = Health::Unknown,
    }

    if let ScaleSetProbe::Seen { capacity, running } = report.scale_set {
        signals.scale_set.capacity = Some(capacity);
        signals.scale_set.running = Some(running);
        signals.scale_set.seen_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_ups_at(p: &mut PowerSignal, e: &UpsEvent) -> bool {
        apply_ups(p, e, e.at)
    }

    fn ev(t: &str, status: &str, at: i64) -> UpsEvent {
        UpsEvent {
            id: format!("{t}-{at}"),
            at: Timestamp::from_secs(at),
            ups: "ups@home".into(),
            notify: NotifyType::parse(t),
            status: UpsStatus::parse(status),
            battery_charge: None,
            battery_runtime_s: None,
        }
    }

    #[test]
    fn commloss_is_unknown_not_down() {
        let mut p = PowerSignal::default();
        apply_ups_at(&mut p, &ev("ONBATT", "OB", 1));
        assert_eq!(p.health, Health::Down);
        apply_ups_at(&mut p, &ev("COMMBAD", "", 2));
        assert_eq!(p.health, Health::Unknown);
        apply_ups_at(&mut p, &ev("NOCOMM", "OB", 3));
        assert_eq!(p.health, Health::Unknown);
        // The last real reading is kept for mode decisions.
        assert_eq!(p.known, Health::Down);
        apply_ups_at(&mut p, &ev("ONLINE", "OL", 4));
        assert_eq!((p.health, p.known), (Health::Up, Health::Up));
    }

    #[test]
    fn an_event_without_a_power_reading_keeps_what_we_knew() {
        let mut p = PowerSignal::default();
        apply_ups_at(&mut p, &ev("ONBATT", "OB DISCHRG", 1));
        assert!(apply_ups_at(&mut p, &ev("CAL", "", 2)));
        assert_eq!(p.health, Health::Down);
        assert_eq!(p.status.to_string(), "OB DISCHRG");
        assert_eq!(p.last_type, Some(NotifyType::Other("CAL".into())));
        // Another type with a live status is a reading like any other.
        apply_ups_at(&mut p, &ev("CAL", "OL", 3));
        assert_eq!(p.health, Health::Up);
        // `burst-agent test` is recorded, never a reading.
        assert!(apply_ups_at(&mut p, &ev("TEST", "OB", 4)));
        assert_eq!(
            (p.health, p.event_at),
            (Health::Up, Some(Timestamp::from_secs(3)))
        );
    }

    #[test]
    fn reordered_events_do_not_roll_back() {
        let mut p = PowerSignal::default();
        assert!(apply_ups_at(&mut p, &ev("LOWBATT", "OB LB", 10)));
        assert!(!apply_ups_at(&mut p, &ev("ONBATT", "OB", 5)));
        assert_eq!(p.critical, Some(Critical::LowBattery));
    }

    #[test]
    fn critical_shortcuts() {
        assert_eq!(
            power_from(Some(&NotifyType::Fsd), &UpsStatus::parse("OL")),
            (Health::Down, Some(Critical::ForcedShutdown))
        );
        assert_eq!(
            power_from(Some(&NotifyType::Shutdown), &UpsStatus::default()),
            (Health::Down, Some(Critical::Shutdown))
        );
        assert_eq!(
            power_from(Some(&NotifyType::LowBatt), &UpsStatus::default()),
            (Health::Down, Some(Critical::LowBattery))
        );
        assert_eq!(
            power_from(
                Some(&NotifyType::Other("CAL".into())),
                &UpsStatus::parse("OL CAL")
            ),
            (Health::Up, None)
        );
    }
}
