//! The simulated cloud for virtual drills: the scale set (the simulators' shared scale-set
//! model on the drill's clock: boot times, spot evictions, capacity that never boots), the
//! Discord webhook (rate limits, deletion, the Discord simulator's checks of the body) and the cloud cluster's
//! workloads, each with the faults a scenario can inject. It answers the adapters' calls the
//! way the real services would; the engine never knows it is simulated.

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
    pub arm: ArmFaults,
    discord: Discord,
    price_per_node_hour: f64,
    cost_usd: f64,
    cost_until: Timestamp,
    /// Tiers whose workloads run on the cloud cluster.
    in_cloud: BTreeMap<Tier, bool>,
    /// The next migrations that fail (the cloud cluster refuses the scale).
    pub migrate_failures: u32,
}

/// Faults of the scale-set API, consumed in the order the fields are listed.
#[derive(Debug, Default)]
pub struct ArmFaults {
    /// Every call fails with 503 until then (an ARM outage window).
    pub down_until: Option<Timestamp>,
    /// The next write is answered 429 with this Retry-After.
    pub throttle_next: Option<u64>,
    /// The next N writes are answered 409.
    pub conflicts_next: u32,
    /// The next N calls (reads or writes) are answered 500.
    pub errors_next: u32,
    /// The next N reads fail (so a write reads nothing and writes nothing).
    pub read_errors_next: u32,
    /// The next N writes time out before ARM saw them.
    pub timeouts_next: u32,
    /// The next N writes are carried out but their answer never arrives.
    pub lost_next: u32,
    /// Spot capacity is accepted but never boots (allocation fails) until then.
    pub no_capacity_until: Option<Timestamp>,
}

#[derive(Debug, Default)]
struct Discord {
    messages: BTreeMap<String, (String, usize)>,
    next_id: u64,
    rate_limit_next: Option<f64>,
    gone: bool,
}

/// What a scale call did, for the timeline; `wait_ms` is how long the caller waited for the
/// answer (a timeout), already part of the result.
#[derive(Debug, PartialEq)]
pub enum ScaleEffect {
    Written {
        from: u32,
        to: u32,
    },
    Unchanged,
    Refused,
    /// Written, but the answer was lost: the caller sees a timeout.
    WrittenAnswerLost {
        from: u32,
        to: u32,
    },
}

/// How long an adapter waits before it gives up on an ARM call (its request timeout).
pub const ARM_TIMEOUT_MS: i64 = 10_000;

impl Cloud {
    pub fn new(boot_ms: i64, price_per_node_hour: f64, start: Timestamp) -> Cloud {
        Cloud {
            scale_set: ScaleSet::default(),
            boot_ms,
            arm: ArmFaults::default(),
            discord: Discord::default(),
            price_per_node_hour,
            cost_usd: 0.0,
            cost_until: start,
            in_cloud: BTreeMap::new(),
            migrate_failures: 0,
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

    fn arm_down(&self, now: Timestamp) -> bool {
        self.arm.down_until.is_some_and(|until| now < until)
    }

    /// A GET of the scale set (the probe's view).
    pub fn probe(&mut self, now: Timestamp) -> ScaleSetProbe {
        if self.arm_down(now) {
            return unknown("503 Service Unavailable");
        }
        if take(&mut self.arm.errors_next) {
            return unknown("500 InternalServerError");
        }
        if take(&mut self.arm.read_errors_next) {
            return unknown("GET timed out");
        }
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

    /// GET then PATCH with If-Match, as the ARM adapter does, with the scenario's faults.
    /// Returns the result the adapter would report, what happened, and how long the call took.
    pub fn set_capacity(&mut self, n: u32, now: Timestamp) -> (ScaleResult, ScaleEffect, i64) {
        let refused = |r: ScaleResult| (r, ScaleEffect::Refused, 0);
        if self.arm_down(now) {
            return refused(ScaleResult::Failed {
                detail: "503 Service Unavailable".into(),
            });
        }
        if take(&mut self.arm.errors_next) {
            return refused(ScaleResult::Failed {
                detail: "500 InternalServerError".into(),
            });
        }
        if take(&mut self.arm.read_errors_next) {
            return refused(ScaleResult::ReadFailed {
                detail: "GET of the scale set timed out".into(),
            });
        }
        if let Some(retry_after_s) = self.arm.throttle_next.take() {
            return refused(ScaleResult::Throttled { retry_after_s });
        }
        if take(&mut self.arm.conflicts_next) {
            return refused(ScaleResult::Conflict {
                detail: "409 Conflict: another operation is in progress".into(),
            });
        }
        let timed_out = || ScaleResult::Failed {
            detail: format!("PATCH timed out after {ARM_TIMEOUT_MS} ms"),
        };
        if take(&mut self.arm.timeouts_next) {
            return (timed_out(), ScaleEffect::Refused, ARM_TIMEOUT_MS);
        }
        let never_boots = self.arm.no_capacity_until.is_some_and(|until| now < until);
        let Resized { from, .. } =
            self.scale_set
                .resize(n, now, now.plus_millis(self.boot_ms), never_boots);
        if take(&mut self.arm.lost_next) {
            return (
                timed_out(),
                ScaleEffect::WrittenAnswerLost { from, to: n },
                ARM_TIMEOUT_MS,
            );
        }
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
            0,
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
        // The message as the Discord adapter renders it, checked with the Discord simulator's
        // rules (one model of what Discord accepts for the virtual and real-time drills).
        let body = burst_discord::message::body(
            n,
            &burst_discord::message::MessageOptions {
                username: "hybrid-burst",
                role_id: None,
                timestamp: None,
            },
        );
        let checked = match &n.delivery {
            Delivery::Edit { .. } => burst_discord_sim::validate_edit(&body),
            Delivery::Create | Delivery::Post => burst_discord_sim::validate_execute(&body),
        };
        if let Err(error) = checked {
            return NotifyResult::Failed {
                detail: format!("400 {error}"),
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

    /// Scales the tier's workloads on the cloud cluster (or fails, as injected).
    pub fn migrate(&mut self, tier: Tier, direction: Direction, workloads: u32) -> MigrateResult {
        if take(&mut self.migrate_failures) {
            return MigrateResult::Failed {
                detail: "422 the cloud cluster refused the scale".into(),
            };
        }
        self.in_cloud.insert(tier, direction == Direction::ToCloud);
        MigrateResult::Done { workloads }
    }

    pub fn in_cloud(&self, tier: Tier) -> bool {
        self.in_cloud.get(&tier).copied().unwrap_or(false)
    }
}

fn unknown(detail: &str) -> ScaleSetProbe {
    ScaleSetProbe::Unknown {
        detail: detail.into(),
    }
}

/// Consumes one of `n` pending faults.
fn take(n: &mut u32) -> bool {
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}
