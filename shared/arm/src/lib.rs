//! Azure Resource Manager: the VM Scale Set capacity client and its credential.
//!
//! - [`token`]: the process's one Azure credential (`azure_identity`: the App Service managed
//!   identity or a service principal), shared with the Blob store.
//! - [`ArmScaleSet`]: the [`burst_ports::Scaler`] for one scale set — `observe` reads
//!   `sku.capacity` and the running VMs, `set_capacity` reads then writes a sparse
//!   `{"sku":{"capacity":n}}` with `If-Match`, and classifies what happened into the core's
//!   [`burst_core::ScaleResult`]. It never sleeps and never retries on its own.
//! - [`ArmConfig::from_settings`]: the `BURST_ARM_*` / identity settings.

mod client;
mod http_util;
pub mod resource_id;
pub mod settings;
pub mod token;
pub mod wire;

pub use burst_settings::{ConfigError, Secret};
pub use client::{ArmError, ArmScaleSet, RATE_LIMIT_HEADER, ScaleSetView};
pub use resource_id::{ResourceIdError, ScaleSetId};
pub use settings::ArmConfig;
pub use token::Credential;
