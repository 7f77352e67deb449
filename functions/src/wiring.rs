//! Builds the function app's dependencies from its settings: each adapter reads its own
//! settings (see the README's settings table) and is left out when not configured.

use crate::deps::{Deps, system_clock};
use crate::settings::{Get, Settings, SettingsError};
use burst_core::Timestamp;
use burst_ports::{DeviceList, HomeProbe, Migrator, Notifier, Scaler, StateStore};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("state store: {0}")]
    Store(#[from] burst_store::ConfigError),
    #[error("scale set: {0}")]
    Arm(#[from] burst_arm::ConfigError),
    #[error("Discord: {0}")]
    Discord(String),
    #[error("Kubernetes: {0}")]
    Kube(#[from] burst_kube::ConfigError),
    #[error("Tailscale: {0}")]
    Tailscale(String),
    #[error("{name}: {problem}")]
    Invalid { name: &'static str, problem: String },
}

/// Where the state lives when `BURST_STATE_URL` is not set: a local folder (the embedded
/// default for local runs; Azure deployments set a blob container URL).
pub const DEFAULT_STATE_DIR: &str = "burst-state";

pub async fn from_settings(get: Get<'_>) -> Result<Deps, WiringError> {
    let settings = Settings::from_settings(get)?;
    let store: Arc<dyn StateStore> = match burst_store::from_settings(get)? {
        Some(s) => s,
        None => {
            tracing::warn!(
                dir = DEFAULT_STATE_DIR,
                "BURST_STATE_URL not set: keeping state in a local folder"
            );
            Arc::new(burst_store::FileStore::new(DEFAULT_STATE_DIR))
        }
    };
    let scaler: Option<Arc<dyn Scaler>> = match burst_arm::ArmConfig::from_settings(get)? {
        Some(c) => Some(Arc::new(burst_arm::ArmScaleSet::new(c)?)),
        None => None,
    };
    let notifier: Option<Arc<dyn Notifier>> = match burst_discord::DiscordConfig::from_settings(get)
        .map_err(|e| WiringError::Discord(e.to_string()))?
    {
        Some(c) => Some(Arc::new(
            burst_discord::DiscordWebhook::new(c)
                .map_err(|e| WiringError::Discord(e.to_string()))?,
        )),
        None => None,
    };
    let home: Option<Arc<dyn HomeProbe>> = burst_kube::HomeProbeConfig::from_settings(get)?
        .map(|c| Arc::new(burst_kube::HomeClusterProbe::new(c)) as Arc<dyn HomeProbe>);
    let migrator: Option<Arc<dyn Migrator>> = burst_kube::CloudMigratorConfig::from_settings(get)?
        .map(|c| Arc::new(burst_kube::CloudClusterMigrator::new(c)) as Arc<dyn Migrator>);
    let devices: Option<Arc<dyn DeviceList>> = tailscale_devices(get)?;
    let clock = scaled_clock(get)?;
    let policy = settings.policy.clone();
    Ok(Deps {
        settings,
        policy,
        store,
        scaler,
        notifier,
        home,
        devices,
        migrator,
        clock,
        clock_scale: clock_scale(get),
        waker: burst_queue::QueueWaker::from_settings(get, None)
            .map_err(|e| WiringError::Invalid {
                name: burst_queue::WAKE_QUEUE_URL,
                problem: e.to_string(),
            })?
            .map(|w| Arc::new(w) as Arc<dyn burst_ports::Waker>),
        parsed: Default::default(),
    })
}

fn tailscale_devices(get: Get<'_>) -> Result<Option<Arc<dyn DeviceList>>, WiringError> {
    match burst_tailscale::DevicesConfig::from_settings(get)
        .map_err(|e| WiringError::Tailscale(e.to_string()))?
    {
        Some(c) => Ok(Some(Arc::new(
            burst_tailscale::DevicesClient::new(c)
                .map_err(|e| WiringError::Tailscale(e.to_string()))?,
        ))),
        None => Ok(None),
    }
}

/// Core milliseconds per real millisecond: `BURST_CLOCK_SCALE` once `scaled_clock` accepted it,
/// else 1.
pub fn clock_scale(get: Get<'_>) -> f64 {
    get("BURST_CLOCK_SCALE")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 1.0)
        .unwrap_or(1.0)
}

/// The wall clock, or for drills a faster one: `BURST_CLOCK_SCALE` (e.g. `60` = a minute per
/// second) starting at `BURST_CLOCK_START_MS` (Unix ms; default: now). Every time the core and
/// the agent-token checks see then runs at that pace, so a 3-hour outage drill takes minutes.
pub fn scaled_clock(get: Get<'_>) -> Result<crate::deps::Clock, WiringError> {
    let Some(scale) = get("BURST_CLOCK_SCALE").filter(|v| !v.trim().is_empty()) else {
        return Ok(system_clock());
    };
    let scale: f64 = scale
        .trim()
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 1.0 && *s <= 10_000.0)
        .ok_or(WiringError::Invalid {
            name: "BURST_CLOCK_SCALE",
            problem: "expected a number from 1 to 10000".into(),
        })?;
    let real_start = std::time::Instant::now();
    let wall = chrono::Utc::now().timestamp_millis();
    let start = match get("BURST_CLOCK_START_MS").filter(|v| !v.trim().is_empty()) {
        Some(v) => v.trim().parse::<i64>().map_err(|_| WiringError::Invalid {
            name: "BURST_CLOCK_START_MS",
            problem: "expected Unix milliseconds".into(),
        })?,
        None => wall,
    };
    // Scenario time = start + (wall now − start) × scale, anchored so that the clock reads
    // `start` when the real wall clock reads `start`.
    let offset_at_boot = (wall - start) as f64 * scale;
    tracing::warn!(scale, "clock runs faster than real time (drill)");
    Ok(Arc::new(move || {
        let elapsed = real_start.elapsed().as_secs_f64() * 1000.0 * scale;
        Timestamp::from_millis(start + (offset_at_boot + elapsed) as i64)
    }))
}
