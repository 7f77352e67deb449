//! The simulated home for virtual drills: power, network, cluster, the agent and its spool.
//! It produces what the real home would send or show: UPS events, heartbeats, witness reports
//! and what a probe from the cloud would see.

use crate::scenario::{Event, StopResume, TailscaleApi, UpDown, WitnessView, World};
use burst_core::{
    ApiProbe, DevicesProbe, Heartbeat, NodeCount, NotifyType, Timestamp, UpsEvent, UpsStatus,
    WitnessReport,
};
use std::collections::VecDeque;

#[derive(Debug)]
pub struct Home {
    site: String,
    dark: bool,
    internet: bool,
    cloud_path: bool,
    api: bool,
    nodes_ready: u32,
    nodes_total: u32,
    heartbeats: bool,
    lease: bool,
    devices_online: u32,
    devices_total: u32,
    ups_status: String,
    /// upsd can read the UPS (false after COMMBAD/NOCOMM until the next reading).
    ups_link: bool,
    /// The last battery reading: charge, runtime and when (the runtime counts down on battery).
    battery: (Option<f64>, Option<(u64, Timestamp)>),
    /// Events the agent could not deliver yet (crash-safe on disk in the real agent).
    spool: VecDeque<UpsEvent>,
    seq: u64,
    /// The witness's own view of home (`None`: it sees what the internet link allows).
    witness_view: Option<bool>,
    tailscale_api: TailscaleApi,
    /// How far the agent's clock is ahead of the cloud's (negative: behind).
    pub agent_skew_ms: i64,
    /// UPS events sent so far by id (a scenario can have one delivered again later).
    sent: Vec<UpsEvent>,
}

/// The status a real UPS would report with a notify type, when the scenario does not say.
pub fn default_status(notify: &NotifyType, current: &str) -> String {
    match notify {
        NotifyType::OnBatt => "OB DISCHRG".into(),
        NotifyType::LowBatt => "OB DISCHRG LB".into(),
        NotifyType::Online => "OL CHRG".into(),
        NotifyType::Fsd | NotifyType::Shutdown => "FSD OB DISCHRG LB".into(),
        NotifyType::CommBad | NotifyType::NoComm => String::new(),
        _ => current.into(),
    }
}

impl Home {
    pub fn new(world: &World) -> Home {
        Home {
            site: world.site.clone(),
            dark: false,
            internet: true,
            cloud_path: true,
            api: true,
            nodes_ready: world.nodes_total,
            nodes_total: world.nodes_total,
            heartbeats: true,
            lease: world.lease,
            devices_online: world.devices_total,
            devices_total: world.devices_total,
            ups_status: "OL".into(),
            ups_link: true,
            battery: (None, None),
            spool: VecDeque::new(),
            seq: 0,
            witness_view: None,
            tailscale_api: TailscaleApi::Up,
            agent_skew_ms: 0,
            sent: Vec::new(),
        }
    }

    /// The agent's clock.
    pub fn agent_now(&self, now: Timestamp) -> Timestamp {
        now.plus_millis(self.agent_skew_ms)
    }

    fn next_id(&mut self, kind: &str) -> String {
        self.seq += 1;
        format!("{}-{kind}-{}", self.site, self.seq)
    }

    /// Home's nodes that are not running (all of them while the house is dark).
    pub fn missing_nodes(&self) -> u32 {
        if self.dark {
            self.nodes_total
        } else {
            self.nodes_total.saturating_sub(self.nodes_ready)
        }
    }

    /// The runtime upsd reports now: the last reading, counting down while on battery.
    fn runtime_now(&self, now: Timestamp) -> Option<u64> {
        let (r, at) = self.battery.1?;
        if !self.ups_status.contains("OB") {
            return Some(r);
        }
        let elapsed = u64::try_from(now.since(at).max(0) / 1000).unwrap_or(u64::MAX);
        Some(r.saturating_sub(elapsed))
    }

    /// The agent can reach the cloud.
    pub fn online(&self) -> bool {
        !self.dark && self.internet
    }

    /// The cloud's probe can reach the home API (network-wise).
    pub fn reachable_from_cloud(&self) -> bool {
        self.online() && self.cloud_path
    }

    /// On-prem devices connected to Tailscale's control plane while home is online.
    pub fn devices_online(&self) -> u32 {
        self.devices_online
    }

    /// Applies the home-side parts of a timeline event; returns a UPS event if one fired.
    pub fn apply(&mut self, e: &Event, now: Timestamp) -> Option<UpsEvent> {
        if let Some(h) = e.home {
            self.dark = h == UpDown::Down;
        }
        if let Some(i) = e.internet {
            self.internet = i == UpDown::Up;
        }
        if let Some(c) = e.cloud_path {
            self.cloud_path = c == UpDown::Up;
        }
        if let Some(a) = e.home_api {
            self.api = a == UpDown::Up;
        }
        if let Some(n) = e.nodes_ready {
            self.nodes_ready = n;
        }
        if let Some(h) = e.heartbeats {
            self.heartbeats = h == StopResume::Resume;
        }
        if let Some(d) = e.devices_online {
            self.devices_online = d.min(self.devices_total);
        }
        if let Some(w) = e.witness {
            self.witness_view = match w {
                WitnessView::Up => Some(true),
                WitnessView::Down => Some(false),
                WitnessView::Follow => None,
            };
        }
        if let Some(t) = e.tailscale_api {
            self.tailscale_api = t;
        }
        if let Some(s) = e.agent_skew_s {
            self.agent_skew_ms = s.saturating_mul(1000);
        }
        let Some(ups) = e.ups.as_deref() else {
            // `ups.status` changed without a notify (upsmon sends none for it): heartbeats
            // carry the new status.
            if let Some(status) = &e.status {
                self.ups_status = status.clone();
                self.ups_link = !status.is_empty();
            }
            return None;
        };
        let notify = NotifyType::parse(ups);
        let status = e
            .status
            .clone()
            .unwrap_or_else(|| default_status(&notify, &self.ups_status));
        // A backdated event tells of the past: the UPS's present state is unchanged.
        if e.backdate.is_none() {
            if e.charge.is_some() {
                self.battery.0 = e.charge;
            }
            if let Some(r) = e.runtime {
                self.battery.1 = Some((r, now));
            }
            if matches!(notify, NotifyType::CommBad | NotifyType::NoComm) {
                self.ups_link = false;
            } else if !status.is_empty() {
                self.ups_status = status.clone();
                self.ups_link = true;
            }
        }
        let id = match &e.id {
            Some(id) => id.clone(),
            None => self.next_id("ups"),
        };
        let at = self.agent_now(now);
        let at = match e.backdate {
            Some(b) => at.plus_millis(-b.millis()),
            None => at,
        };
        Some(UpsEvent {
            id,
            at,
            ups: "ups@home".into(),
            notify,
            status: UpsStatus::parse(&status),
            battery_charge: e.charge,
            battery_runtime_s: e.runtime,
        })
    }

    /// The agent's NOTIFYCMD: queue the event, then deliver the spool in order if it can.
    pub fn send_ups(&mut self, event: UpsEvent) -> Vec<UpsEvent> {
        self.spool.push_back(event);
        self.flush()
    }

    /// Delivers spooled events, oldest first, when the cloud is reachable.
    pub fn flush(&mut self) -> Vec<UpsEvent> {
        if self.online() {
            self.spool.drain(..).collect()
        } else {
            Vec::new()
        }
    }

    pub fn spooled(&self) -> usize {
        self.spool.len()
    }

    /// A heartbeat, if the agent is alive and can reach the cloud.
    pub fn heartbeat(&mut self, now: Timestamp) -> Option<Heartbeat> {
        if !self.online() || !self.heartbeats {
            return None;
        }
        let at = self.agent_now(now);
        Some(Heartbeat {
            id: self.next_id("hb"),
            at,
            nodes_ready: if self.api { self.nodes_ready } else { 0 },
            nodes_total: self.nodes_total,
            // Configured but unreadable: "" (unknown), as the real agent sends it.
            ups_status: Some(if self.ups_link {
                UpsStatus::parse(&self.ups_status)
            } else {
                UpsStatus::default()
            }),
            battery_charge: self.battery.0.filter(|_| self.ups_link),
            battery_runtime_s: self.runtime_now(now).filter(|_| self.ups_link),
            api_ok: self.api,
            lease: self.lease,
        })
    }

    /// What the witness in a third place sees.
    pub fn witness(&mut self, now: Timestamp) -> WitnessReport {
        let reachable = self.witness_view.unwrap_or_else(|| self.online());
        WitnessReport {
            id: self.next_id("witness"),
            at: now,
            target: "https://home.example:6443/readyz".into(),
            reachable,
            latency_ms: reachable.then_some(25),
        }
    }

    /// The agent keeps an event for delivery (NOTIFYCMD spools first, then sends).
    pub fn spool(&mut self, event: UpsEvent) {
        self.sent.push(event.clone());
        self.spool.push_back(event);
    }

    /// An event sent before, by id (for a scenario's redelivery).
    pub fn sent(&self, id: &str) -> Option<UpsEvent> {
        self.sent.iter().rev().find(|e| e.id == id).cloned()
    }

    /// The oldest event still to deliver, if the agent can reach the cloud now.
    pub fn next_to_deliver(&self) -> Option<UpsEvent> {
        self.online().then(|| self.spool.front().cloned()).flatten()
    }

    /// The oldest event was delivered (or refused for good): it leaves the spool.
    pub fn delivered(&mut self) {
        self.spool.pop_front();
    }

    /// What the cloud's probe of the home Kubernetes API sees.
    pub fn api_probe(&self) -> ApiProbe {
        if !self.online() || !self.cloud_path {
            ApiProbe::Unreachable {
                detail: "connect timeout".into(),
            }
        } else if !self.api {
            ApiProbe::NotReady {
                detail: "readyz: 500".into(),
            }
        } else {
            ApiProbe::Ready {
                latency_ms: 12,
                nodes: Some(NodeCount {
                    ready: self.nodes_ready,
                    total: self.nodes_total,
                }),
            }
        }
    }

    /// What Tailscale's devices API answers: home devices are connected to its control plane
    /// only while home has power and internet.
    pub fn devices_probe(&self) -> DevicesProbe {
        match self.tailscale_api {
            TailscaleApi::Down => DevicesProbe::Unknown {
                detail: "devices API: connect timeout".into(),
            },
            TailscaleApi::Unknown => DevicesProbe::Unknown {
                detail: "devices API: 500 Internal Server Error".into(),
            },
            TailscaleApi::Up => DevicesProbe::Seen {
                online: if self.online() {
                    self.devices_online
                } else {
                    0
                },
                total: self.devices_total,
            },
        }
    }
}
