//! Tailscale adapters.
//!
//! - [`signature`]: `Tailscale-Webhook-Signature` verification (and signing, for the emulator);
//! - [`payload`]: webhook bodies (a JSON array of events) → the core's
//!   [`burst_core::TailscaleEvent`]s with a stable dedupe hash;
//! - [`devices`]: the devices API client implementing [`burst_ports::DeviceList`] (how many
//!   on-prem devices are connected to Tailscale's control server; errors are Unknown);
//! - [`config`]: the settings of all of the above.

pub mod config;
pub mod devices;
pub mod payload;
pub mod signature;

pub use config::{Auth, ConfigError, Secret, TailscaleConfig, WebhookSecret};
pub use devices::{Device, DevicesError, TailscaleDevices};
pub use payload::{PayloadError, WebhookEvent, parse_events};
pub use signature::{SignatureError, sign, verify};

/// The devices client's configuration, by its role.
pub type DevicesConfig = TailscaleConfig;
/// The devices client, by its role.
pub type DevicesClient = TailscaleDevices;
