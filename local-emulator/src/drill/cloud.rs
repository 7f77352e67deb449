//! The simulated cloud for virtual drills: the scale set (the simulators' shared scale-set
//! model on the drill's clock: boot times, spot evictions; plus throttling and conflicts), the
//! Discord webhook (rate limits, deletion) and the cloud cluster's workloads. It answers the
//! core's actions the way the real services would.

use burst_core::{
    Delivery, Direction, MigrateResult, Notification, NotifyResult, ScaleResult, ScaleSetProbe,
    Tier, Timestamp,
};
use burst_sim_kit::scale_set::{Resized, ScaleSet};
use std::collections::BTreeMap;

#[derive(Debug)]
pub struct Cloud {
    scale_set: ScaleSet<Timestamp>,
    boot_ms: i64,
    throttle_next: Option<u64>,
    conflicts_next: u32,
    pub arm_calls: usize,
    discord: Discord,
    price_per_node_hour: f64,
    cost_usd: f64,
    cost_until: Timestamp,
    /// Tiers whose workloads run on the cloud cluster.
    in_cloud: BTreeMap<Tier, bool>,
}

#[derive(Debug, Default)]
struct Discord {
    messages: BTreeMap<String, (String, usize)>,
    next_id: u64,
    rate_limit_next: Option<f64>,
    gone: bool,
}

/// What happened to a scale write, for the timeline.
#[derive(Debug, PartialEq)]
pub enum ScaleEffect {
    Written { from: u32, to: u32 },
    Unchanged,
    Refused,
}

impl Cloud {
    pub fn new(boot_ms: i64, price_per_node_hour: f64, start: Timestamp) -> Cloud {
        Cloud {
            scale_set: ScaleSet::default(),
            boot_ms,
            throttle_next: None,
            conflicts_next: 0,
            arm_calls: 0,
            discord: Discord::default(),
            price_per_node_hour,
            cost_usd: 0.0,
            cost_until: start,
            in_cloud: BTreeMap::new(),
        }
    }

    pub fn capacity(&self) -> u32 {
        self.scale_set.capacity()
    }

    /// When instances become running within `(from, to)`, in order (for exact integrals).
    pub fn ready_between(&self, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        self.scale_set.ready_between(from, to)
    }

    pub fn running(&self, now: Timestamp) -> u32 {
        self.scale_set.running(now)
    }

    pub fn probe(&self, now: Timestamp) -> ScaleSetProbe {
        ScaleSetProbe::Seen {
            capacity: self.capacity(),
            running: self.running(now),
        }
    }

    /// Adds the cost of what ran since the last call (billing follows running instances).
    pub fn accrue(&mut self, now: Timestamp) {
        if now > self.cost_until {
            let hours = now.since(self.cost_until) as f64 / 3_600_000.0;
            self.cost_usd += f64::from(self.running(now)) * self.price_per_node_hour * hours;
            self.cost_until = now;
        }
    }

    pub fn cost_usd(&self) -> f64 {
        self.cost_usd
    }

    pub fn throttle_next(&mut self, retry_after_s: u64) {
        self.throttle_next = Some(retry_after_s);
    }

    pub fn conflict_next(&mut self, n: u32) {
        self.conflicts_next += n;
    }

    pub fn discord_rate_limit_next(&mut self, secs: f64) {
        self.discord.rate_limit_next = Some(secs);
    }

    pub fn discord_gone(&mut self) {
        self.discord.gone = true;
    }

    /// Spot evictions: the newest `n` running instances are deleted and capacity drops.
    pub fn evict(&mut self, n: u32, now: Timestamp) -> u32 {
        let evicted = self.scale_set.evict_newest(n, Some(now));
        u32::try_from(evicted.len()).unwrap_or(u32::MAX)
    }

    /// GET then PATCH with If-Match, as the ARM adapter does.
    pub fn set_capacity(&mut self, n: u32, now: Timestamp) -> (ScaleResult, ScaleEffect) {
        self.arm_calls += 1;
        if let Some(retry_after_s) = self.throttle_next.take() {
            return (
                ScaleResult::Throttled { retry_after_s },
                ScaleEffect::Refused,
            );
        }
        if self.conflicts_next > 0 {
            self.conflicts_next -= 1;
            return (
                ScaleResult::Conflict {
                    detail: "409 Conflict: another operation is in progress".into(),
                },
                ScaleEffect::Refused,
            );
        }
        let Resized { from, .. } =
            self.scale_set
                .resize(n, now, now.plus_millis(self.boot_ms), false);
        let effect = if n == from {
            ScaleEffect::Unchanged
        } else {
            ScaleEffect::Written { from, to: n }
        };
        (
            ScaleResult::Accepted {
                capacity: n,
                running: Some(self.running(now)),
            },
            effect,
        )
    }

    /// Executes a webhook call, checking what Discord checks.
    pub fn notify(&mut self, n: &Notification) -> NotifyResult {
        let d = &mut self.discord;
        if d.gone {
            return NotifyResult::WebhookGone {
                detail: "404 Unknown Webhook (10015)".into(),
            };
        }
        if let Some(secs) = d.rate_limit_next.take() {
            return NotifyResult::RateLimited {
                retry_after_ms: (secs * 1000.0).ceil() as u64,
            };
        }
        let title_len = n.title.chars().count();
        let desc_len: usize = n.lines.iter().map(|l| l.chars().count() + 1).sum();
        if title_len == 0 || title_len > 256 || desc_len > 4096 {
            return NotifyResult::Failed {
                detail: format!(
                    "400 Invalid Form Body (title {title_len}, description {desc_len})"
                ),
                retryable: false,
            };
        }
        match &n.delivery {
            Delivery::Create | Delivery::Post => {
                d.next_id += 1;
                let id = format!("{}", 1_100_000_000_000_000_000u64 + d.next_id);
                d.messages.insert(id.clone(), (n.title.clone(), 0));
                NotifyResult::Delivered {
                    message_id: Some(id),
                }
            }
            Delivery::Edit { message_id } => match d.messages.get_mut(message_id) {
                Some(m) => {
                    m.0 = n.title.clone();
                    m.1 += 1;
                    NotifyResult::Delivered { message_id: None }
                }
                None => NotifyResult::MessageGone {
                    detail: "404 Unknown Message (10008)".into(),
                },
            },
        }
    }

    /// Scales the tier's workloads on the cloud cluster.
    pub fn migrate(&mut self, tier: Tier, direction: Direction, workloads: u32) -> MigrateResult {
        self.in_cloud.insert(tier, direction == Direction::ToCloud);
        MigrateResult::Done { workloads }
    }

    pub fn in_cloud(&self, tier: Tier) -> bool {
        self.in_cloud.get(&tier).copied().unwrap_or(false)
    }
}
