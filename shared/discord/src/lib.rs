//! Discord webhook adapter: the owner's channel ([`burst_ports::Notifier`]).
//!
//! One message per incident: created with `?wait=true` (the id is kept by the core), then
//! edited in place as the incident evolves; short separate posts for what must ping. Texts are
//! fitted to Discord's limits (code points, middle truncation), mentions are off unless a role
//! ping is configured, and every HTTP answer is classified into the core's
//! [`burst_core::NotifyResult`] — 429 with Discord's wait, 401/404 as a gone webhook, 400 as a
//! refused message, 5xx and transport errors as retryable. Nothing here retries or sleeps.

pub mod client;
pub mod config;
pub mod limits;
pub mod message;

pub use client::{DiscordWebhook, USER_AGENT, classify};
pub use config::{ConfigError, DiscordConfig, UrlError, WebhookUrl};
