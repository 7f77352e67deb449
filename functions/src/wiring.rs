//! The one wiring: builds the function app's dependencies from its settings, for the Azure
//! Functions handler and the Lambda binaries alike. Each adapter reads its own settings (see
//! the README's settings tables) and is left out when not configured; the settings pick the
//! cloud:
//!
//! - state: `BURST_STATE_URL=s3://…` → S3; `https://…` → Azure Blob; `file:///…` → local files;
//!   unset → a local folder (the caller's default);
//! - capacity: `BURST_AWS_ASG_NAME` → an Auto Scaling group; `BURST_ARM_SCALE_SET_ID` → an
//!   Azure scale set (not both);
//! - wake-ups: `BURST_WAKE_QUEUE_URL` with an SQS queue's shape (`/<account id>/<queue>`) →
//!   SQS; any other queue URL → an Azure Storage queue.
//!
//! Everything Azure that needs a token (ARM, a Blob container or a wake-up queue without SAS)
//! shares one credential, built here once.

use crate::deps::{Deps, system_clock};
use crate::settings::{ConfigError, Get, Settings, SiteSettings, site_error, site_get};
use crate::sites::{Site, Sites, TailnetRoute};
use azure_core::credentials::TokenCredential;
use burst_core::Timestamp;
use burst_ports::{DeviceList, HomeProbe, Migrator, Notifier, Scaler, StateStore, Waker};
use std::sync::Arc;

/// Where the state lives when `BURST_STATE_URL` is not set and the handler runs locally (the
/// embedded default for local runs; Azure deployments set a blob container URL).
pub const DEFAULT_STATE_DIR: &str = "burst-state";

/// The dependencies of `burst-handler`: [`from_settings_in`] with [`DEFAULT_STATE_DIR`].
pub async fn from_settings(get: Get<'_>) -> Result<Deps, ConfigError> {
    from_settings_in(get, DEFAULT_STATE_DIR).await
}

/// The dependencies for any platform; `local_state_dir` holds the state when
/// `BURST_STATE_URL` is unset.
pub async fn from_settings_in(get: Get<'_>, local_state_dir: &str) -> Result<Deps, ConfigError> {
    let settings = Settings::from_settings(get)?;
    let mut azure = AzureCredential::new(get);
    let store = state_store(get, local_state_dir, &mut azure)?;
    let mut sites = Vec::with_capacity(settings.sites.len());
    for id in &settings.sites {
        let site_get = site_get(get, id);
        let site = site_from_settings(&site_get, id, &mut azure)
            .map_err(|e| site_error(get, id, settings.sites.len() > 1, e))?;
        sites.push(site);
    }
    check_nothing_shared(get, &settings.sites)?;
    let waker = waker(get, &mut azure)?;
    let clock = scaled_clock(get)?;
    Ok(Deps {
        settings,
        sites: Sites::new(sites),
        store,
        clock,
        clock_scale: clock_scale(get),
        waker,
        parsed: Default::default(),
    })
}

/// One site's keys, policy and adapters from its view of the settings.
fn site_from_settings(
    get: Get<'_>,
    id: &str,
    azure: &mut AzureCredential<'_>,
) -> Result<Site, ConfigError> {
    let mut site = Site::new(id, SiteSettings::from_settings(get)?);
    site.scaler = scaler(get, azure)?;
    site.notifier = burst_discord::DiscordConfig::from_settings(get)?
        .map(|c| burst_discord::DiscordWebhook::new(c).map(|n| Arc::new(n) as Arc<dyn Notifier>))
        .transpose()?;
    site.home = burst_kube::HomeProbeConfig::from_settings(get)?
        .map(|c| Arc::new(burst_kube::HomeClusterProbe::new(c)) as Arc<dyn HomeProbe>);
    site.migrator = burst_kube::CloudMigratorConfig::from_settings(get)?
        .map(|c| Arc::new(burst_kube::CloudClusterMigrator::new(c)) as Arc<dyn Migrator>);
    site.devices = burst_tailscale::DevicesConfig::from_settings(get)?
        .map(|c| burst_tailscale::DevicesClient::new(c).map(|d| Arc::new(d) as Arc<dyn DeviceList>))
        .transpose()?;
    let reader = burst_settings::Settings::new(get);
    site.tailnet = TailnetRoute {
        tailnet: reader.string(burst_tailscale::config::SETTING_TAILNET),
        tags: reader
            .list(burst_tailscale::config::SETTING_TAGS)
            .unwrap_or_else(|| vec![burst_tailscale::config::DEFAULT_TAGS.to_string()]),
    };
    Ok(site)
}

/// Settings that name what one site acts on: two sites with the same value would write each
/// other's capacity or read each other's home, so that is refused at start.
const ONE_SITE_EACH: [&str; 3] = [
    burst_arm::settings::SCALE_SET_ID,
    burst_aws::settings::ASG_NAME,
    "BURST_HOME_KUBE_URL",
];

fn check_nothing_shared(get: Get<'_>, sites: &[String]) -> Result<(), ConfigError> {
    for setting in ONE_SITE_EACH {
        let mut seen: std::collections::HashMap<String, &str> = Default::default();
        for id in sites {
            let Some(value) = site_get(get, id)(setting) else {
                continue;
            };
            if let Some(other) = seen.insert(value.trim().to_ascii_lowercase(), id) {
                return Err(ConfigError::new(
                    setting,
                    format!(
                        "sites {other} and {id} both use {value:?}; give each site its own \
                         ({}{setting})",
                        crate::settings::site_prefix(id)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The process's one Azure credential, built on first need: the scale set's choice when one
/// is configured, else the settings' (a managed identity by default).
struct AzureCredential<'a> {
    get: Get<'a>,
    built: Option<Arc<dyn TokenCredential>>,
}

impl<'a> AzureCredential<'a> {
    fn new(get: Get<'a>) -> Self {
        AzureCredential { get, built: None }
    }

    fn get(&mut self) -> Result<Arc<dyn TokenCredential>, ConfigError> {
        if let Some(credential) = &self.built {
            return Ok(credential.clone());
        }
        let choice = match burst_arm::Credential::from_settings(self.get)? {
            Some(choice) => choice,
            None => burst_arm::Credential::ManagedIdentity {
                client_id: burst_settings::Settings::new(self.get)
                    .string(burst_arm::settings::AZURE_CLIENT_ID),
            },
        };
        let credential = choice.build()?;
        tracing::info!(kind = choice.kind(), "Azure credential");
        self.built = Some(credential.clone());
        Ok(credential)
    }
}

/// `BURST_WAKE_QUEUE_URL`, told apart by its shape (`burst_aws::sqs::is_sqs_queue_url`): an SQS
/// queue URL, `/<12-digit account id>/<queue>` (`https://sqs.<region>.amazonaws.com/…`) → SQS
/// with message delays; any other URL → an Azure Storage queue (its SAS, else the shared
/// credential); unset → no wake-ups (the timer probe alone).
fn waker(
    get: Get<'_>,
    azure: &mut AzureCredential<'_>,
) -> Result<Option<Arc<dyn Waker>>, ConfigError> {
    let Some(url) = burst_settings::Settings::new(get).string(burst_queue::WAKE_QUEUE_URL) else {
        return Ok(None);
    };
    if burst_aws::sqs::is_sqs_queue_url(&url) {
        let waker = burst_aws::SqsWaker::from_settings(get)?;
        return Ok(waker.map(|w| Arc::new(w) as Arc<dyn Waker>));
    }
    // A queue URL without SAS authenticates with the shared credential.
    let credential = if url.contains("sig=") {
        None
    } else {
        Some(azure.get()?)
    };
    let waker = burst_queue::QueueWaker::from_settings(get, credential)?;
    Ok(waker.map(|w| Arc::new(w) as Arc<dyn Waker>))
}

/// `s3://bucket/prefix` → S3; other URLs → `burst_store` (file, blob); unset → a local folder.
fn state_store(
    get: Get<'_>,
    local_state_dir: &str,
    azure: &mut AzureCredential<'_>,
) -> Result<Arc<dyn StateStore>, ConfigError> {
    if let Some(c) = burst_aws::S3Config::from_settings(get)? {
        tracing::info!(bucket = %c.bucket, prefix = %c.prefix, "state in S3");
        return Ok(Arc::new(burst_aws::S3Store::new(c)?));
    }
    match burst_store::StoreConfig::from_settings(get)? {
        Some(config) => {
            let credential = if config.needs_credential() {
                Some(azure.get()?)
            } else {
                None
            };
            config.open(credential)
        }
        None => {
            tracing::warn!(
                dir = local_state_dir,
                "BURST_STATE_URL not set: keeping state in a local folder"
            );
            Ok(Arc::new(burst_store::FileStore::new(local_state_dir)))
        }
    }
}

/// The Auto Scaling group (`BURST_AWS_ASG_NAME`) or the Azure scale set
/// (`BURST_ARM_SCALE_SET_ID`); not both.
fn scaler(
    get: Get<'_>,
    azure: &mut AzureCredential<'_>,
) -> Result<Option<Arc<dyn Scaler>>, ConfigError> {
    let asg = burst_aws::AsgConfig::from_settings(get)?;
    let arm = burst_arm::ArmConfig::from_settings(get)?;
    match (asg, arm) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            burst_aws::settings::ASG_NAME,
            format!(
                "set only one of {} and {}",
                burst_aws::settings::ASG_NAME,
                burst_arm::settings::SCALE_SET_ID
            ),
        )),
        (Some(c), None) => Ok(Some(Arc::new(burst_aws::AsgScaler::new(c)?))),
        (None, Some(c)) => {
            let credential = azure.get()?;
            Ok(Some(Arc::new(burst_arm::ArmScaleSet::new(c, credential)?)))
        }
        (None, None) => Ok(None),
    }
}

/// Core milliseconds per real millisecond: `BURST_CLOCK_SCALE` once `scaled_clock` accepted it,
/// else 1.
pub fn clock_scale(get: Get<'_>) -> f64 {
    clock_scale_setting(get).ok().flatten().unwrap_or(1.0)
}

/// `BURST_CLOCK_SCALE`: a number from 1 to 10000, or unset.
fn clock_scale_setting(get: Get<'_>) -> Result<Option<f64>, ConfigError> {
    burst_settings::Settings::new(get).parsed("BURST_CLOCK_SCALE", |raw| {
        raw.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && (1.0..=10_000.0).contains(s))
            .ok_or_else(|| format!("expected a number from 1 to 10000, got {raw:?}"))
    })
}

/// The wall clock, or for drills a faster one: `BURST_CLOCK_SCALE` (e.g. `60` = a minute per
/// second) starting at `BURST_CLOCK_START_MS` (Unix ms; default: now). Every time the core and
/// the agent-token checks see then runs at that pace, so a 3-hour outage drill takes minutes.
pub fn scaled_clock(get: Get<'_>) -> Result<crate::deps::Clock, ConfigError> {
    let Some(scale) = clock_scale_setting(get)? else {
        return Ok(system_clock());
    };
    let wall = chrono::Utc::now().timestamp_millis();
    let start = burst_settings::Settings::new(get)
        .parsed("BURST_CLOCK_START_MS", |raw| {
            raw.parse::<i64>()
                .map_err(|_| format!("expected Unix milliseconds, got {raw:?}"))
        })?
        .unwrap_or(wall);
    let real_start = std::time::Instant::now();
    // Scenario time = start + (wall now − start) × scale, anchored so that the clock reads
    // `start` when the real wall clock reads `start`.
    let offset_at_boot = (wall - start) as f64 * scale;
    tracing::warn!(scale, "clock runs faster than real time (drill)");
    Ok(Arc::new(move || {
        let elapsed = real_start.elapsed().as_secs_f64() * 1000.0 * scale;
        Timestamp::from_millis(start + (offset_at_boot + elapsed) as i64)
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use burst_settings::from_pairs as with;

    #[test]
    fn the_drill_clock_is_read_once_and_checked() {
        assert_eq!(clock_scale(&with(&[])), 1.0);
        assert_eq!(clock_scale(&with(&[("BURST_CLOCK_SCALE", " 60 ")])), 60.0);
        let fast = scaled_clock(&with(&[
            ("BURST_CLOCK_SCALE", "1000"),
            ("BURST_CLOCK_START_MS", "1000000"),
        ]))
        .unwrap();
        let first = fast().millis();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // 20 real ms are at least 20 s of drill time.
        assert!(fast().millis() - first >= 20_000);
        for (pairs, expected) in [
            (
                &[("BURST_CLOCK_SCALE", "fast")][..],
                "BURST_CLOCK_SCALE: expected a number from 1 to 10000, got \"fast\"",
            ),
            (
                &[("BURST_CLOCK_SCALE", "0.5")][..],
                "BURST_CLOCK_SCALE: expected a number from 1 to 10000, got \"0.5\"",
            ),
            (
                &[("BURST_CLOCK_SCALE", "2"), ("BURST_CLOCK_START_MS", "noon")][..],
                "BURST_CLOCK_START_MS: expected Unix milliseconds, got \"noon\"",
            ),
        ] {
            let get = move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            };
            assert_eq!(scaled_clock(&get).err().unwrap().to_string(), expected);
        }
        // A scale the clock refuses is no scale for the wake-up delays either.
        assert_eq!(clock_scale(&with(&[("BURST_CLOCK_SCALE", "0.5")])), 1.0);
    }
}
