//! The function app's settings (app settings in Azure, environment elsewhere). Every name is
//! listed with its default in the README; adapters read their own settings (see each crate).

use burst_core::Policy;
pub use burst_settings::{ConfigError, Get};
use burst_settings::{Settings as Reader, is_site_id, parse_bool};
use burst_wire::{AgentKey, KeyError};
use serde_json::{Map, Value};

const SITES: &str = "BURST_SITES";
const SITE_ID: &str = "BURST_SITE_ID";
const AGENT_ED25519: &str = "BURST_AGENT_ED25519_PUBLIC_KEY";
const AGENT_HS256: &str = "BURST_AGENT_HS256_SECRET";
const TAILSCALE_WEBHOOK_SECRET: &str = "TAILSCALE_WEBHOOK_SECRET";
const BODY_TIMEOUT_MS: &str = "BURST_BODY_TIMEOUT_MS";
const PROBE_CONCURRENCY: &str = "BURST_PROBE_CONCURRENCY";
const PROBE_SITE_TIMEOUT_MS: &str = "BURST_PROBE_SITE_TIMEOUT_MS";
const PROBE_FANOUT: &str = "BURST_PROBE_FANOUT";
/// Per-site settings start with this, then the site's key and `__` ([`site_prefix`]).
pub const SITE_PREFIX: &str = "BURST_SITE_";

/// What the whole deployment shares: which sites it watches and the HTTP edge's limits. Each
/// site's own settings (keys, policy, adapters) are [`SiteSettings`], read through
/// [`site_get`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sites this deployment watches (agent JWT `iss`), in the order of `BURST_SITES`.
    pub sites: Vec<String>,
    /// The longest a request body may take to arrive (`BURST_BODY_TIMEOUT_MS`, 10 s).
    pub body_timeout: std::time::Duration,
    /// How many sites the timer probe works on at once (`BURST_PROBE_CONCURRENCY`, 32).
    pub probe_concurrency: usize,
    /// The longest one site's probe may take (`BURST_PROBE_SITE_TIMEOUT_MS`, 20 s): a slow or
    /// dead API of one site never holds the others' decisions longer.
    pub probe_site_timeout: std::time::Duration,
    /// `BURST_PROBE_FANOUT=queue`: the timer hands each site's probe to the wake-up queue as
    /// its own message, so the platform spreads the sweep over instances (default `inline`:
    /// the timer's invocation probes every site itself).
    pub probe_via_queue: bool,
}

/// One site's own settings that the function bodies use directly (the adapters read theirs
/// in `wiring`).
#[derive(Debug, Clone)]
pub struct SiteSettings {
    pub agent_key: Option<AgentKey>,
    pub tailscale_secret: Option<TailscaleSecret>,
    pub policy: Policy,
}

/// The Tailscale webhook secret, never printed.
#[derive(Clone)]
pub struct TailscaleSecret(pub String);

impl std::fmt::Debug for TailscaleSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TailscaleSecret(…)")
    }
}

impl Settings {
    pub fn from_settings(get: Get) -> Result<Settings, ConfigError> {
        let reader = Reader::new(get);
        let sites = match reader.list(SITES) {
            Some(list) => list,
            None => vec![reader.string(SITE_ID).unwrap_or_else(|| "home".into())],
        };
        if let Some(bad) = sites.iter().find(|s| !is_site_id(s)) {
            return Err(ConfigError::new(
                format!("{SITES} / {SITE_ID}"),
                format!("{bad:?} is not a valid site id (letters, digits, - _ .; 64 at most)"),
            ));
        }
        let mut keys = std::collections::HashMap::new();
        for site in &sites {
            if let Some(other) = keys.insert(site_key(site), site) {
                return Err(ConfigError::new(
                    SITES,
                    format!(
                        "sites {other:?} and {site:?} share the settings prefix {}; rename one",
                        site_prefix(site)
                    ),
                ));
            }
        }
        let body_timeout = reader.millis(BODY_TIMEOUT_MS, 10_000, 1..=600_000)?;
        let probe_concurrency = reader.integer(PROBE_CONCURRENCY, 32usize, 1..=1_024)?;
        let probe_site_timeout = reader.millis(PROBE_SITE_TIMEOUT_MS, 20_000, 100..=300_000)?;
        let probe_via_queue = match reader.string(PROBE_FANOUT).as_deref() {
            None | Some("inline") => false,
            Some("queue") => true,
            Some(other) => {
                return Err(ConfigError::new(
                    PROBE_FANOUT,
                    format!("expected inline or queue, got {other:?}"),
                ));
            }
        };
        Ok(Settings {
            sites,
            body_timeout,
            probe_concurrency,
            probe_site_timeout,
            probe_via_queue,
        })
    }
}

impl SiteSettings {
    /// Reads one site's keys and policy (`get` is that site's view, see [`site_get`]).
    pub fn from_settings(get: Get) -> Result<SiteSettings, ConfigError> {
        let reader = Reader::new(get);
        let agent_key = match (reader.string(AGENT_ED25519), reader.secret(AGENT_HS256)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    AGENT_ED25519,
                    format!("set only one of {AGENT_ED25519} and {AGENT_HS256}"),
                ));
            }
            (Some(pem), None) => Some(AgentKey::ed25519_pem(&pem).map_err(key_error)?),
            (None, Some(secret)) => Some(AgentKey::hs256(secret.expose()).map_err(key_error)?),
            (None, None) => None,
        };
        let tailscale_secret = reader
            .secret(TAILSCALE_WEBHOOK_SECRET)
            .map(|s| TailscaleSecret(s.expose().to_string()));
        let policy = policy_from_settings(get)?;
        Ok(SiteSettings {
            agent_key,
            tailscale_secret,
            policy,
        })
    }
}

/// The part of a site id used in setting names: upper case, `-` and `.` as `_` (setting names
/// on Lambda allow only letters, digits and `_`).
pub fn site_key(site: &str) -> String {
    site.chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// The prefix of a site's own settings: `BURST_SITE_<KEY>__`.
pub fn site_prefix(site: &str) -> String {
    format!("{SITE_PREFIX}{}__", site_key(site))
}

/// Settings of which one is chosen: a site that sets one of a group for itself does not
/// inherit the shared value of another (its own HS256 secret beside a shared Ed25519 key, its
/// own Auto Scaling group beside a shared scale set).
const ONE_OF: [[&str; 2]; 2] = [
    [AGENT_ED25519, AGENT_HS256],
    [
        burst_aws::settings::ASG_NAME,
        burst_arm::settings::SCALE_SET_ID,
    ],
];

/// A site's view of the settings: `BURST_SITE_<KEY>__<NAME>` when set, else `<NAME>` (the
/// deployment-wide value every site shares unless it sets its own; see [`ONE_OF`]).
pub fn site_get<'a>(get: Get<'a>, site: &str) -> impl Fn(&str) -> Option<String> + 'a {
    let prefix = site_prefix(site);
    move |name: &str| {
        if let Some(own) = get(&format!("{prefix}{name}")) {
            return Some(own);
        }
        let chose_another = ONE_OF.iter().any(|group| {
            group.contains(&name)
                && group
                    .iter()
                    .any(|other| *other != name && get(&format!("{prefix}{other}")).is_some())
        });
        if chose_another { None } else { get(name) }
    }
}

/// A site's setting error, naming the setting as it was given (prefixed or shared) and, when
/// several sites are watched, the site it is for.
pub fn site_error(get: Get, site: &str, several: bool, e: ConfigError) -> ConfigError {
    let prefixed = format!("{}{}", site_prefix(site), e.setting);
    if get(&prefixed).is_some() {
        return ConfigError::new(prefixed, e.problem);
    }
    if several {
        return ConfigError::new(e.setting, format!("site {site}: {}", e.problem));
    }
    e
}

/// The agent key's problem, under the setting that holds it.
fn key_error(e: KeyError) -> ConfigError {
    match e {
        KeyError::BadPublicKey => {
            ConfigError::new(AGENT_ED25519, "not an Ed25519 public key in PEM form")
        }
        KeyError::ShortSecret => ConfigError::new(AGENT_HS256, "must be at least 32 bytes"),
        KeyError::Both => ConfigError::new(
            AGENT_ED25519,
            format!("set only one of {AGENT_ED25519} and {AGENT_HS256}"),
        ),
    }
}

/// The setting name of a policy field: `max_nodes` → `BURST_MAX_NODES`.
pub fn policy_setting_name(field: &str) -> String {
    format!("BURST_{}", field.to_ascii_uppercase())
}

/// Older or shorter names accepted for a few policy fields.
const ALIASES: &[(&str, &str)] = &[("price_per_node_hour_usd", "BURST_PRICE_PER_NODE_HOUR")];

/// Reads every policy field from `BURST_<FIELD>`; the defaults are [`Policy::default`]'s.
pub fn policy_from_settings(get: Get) -> Result<Policy, ConfigError> {
    let reader = Reader::new(get);
    let defaults = serde_json::to_value(Policy::default()).unwrap_or(Value::Null);
    let Value::Object(defaults) = defaults else {
        return Ok(Policy::default());
    };
    let mut out = Map::new();
    for (field, default) in defaults {
        let name = policy_setting_name(&field);
        let raw = reader.string(&name).map(|v| (name.clone(), v)).or_else(|| {
            ALIASES
                .iter()
                .find(|(f, _)| *f == field)
                .and_then(|(_, alias)| reader.string(alias).map(|v| (alias.to_string(), v)))
        });
        let Some((shown, raw)) = raw else {
            out.insert(field, default);
            continue;
        };
        let invalid =
            |problem: &str| ConfigError::new(shown.clone(), format!("{problem}, got {raw:?}"));
        let optional = default.is_null() || field == "monthly_budget_usd";
        let value = if optional && raw.eq_ignore_ascii_case("none") {
            Value::Null
        } else if default.is_boolean() {
            Value::Bool(parse_bool(&raw).ok_or_else(|| invalid("expected true or false"))?)
        } else if default.is_u64() || (default.is_null() && field != "monthly_budget_usd") {
            Value::from(
                raw.parse::<u64>()
                    .map_err(|_| invalid("expected a whole number >= 0"))?,
            )
        } else {
            let f = raw
                .parse::<f64>()
                .map_err(|_| invalid("expected a number"))?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| invalid("expected a finite number"))?
        };
        out.insert(field, value);
    }
    let policy: Policy = serde_json::from_value(Value::Object(out))
        .map_err(|e| ConfigError::new("BURST_* policy", e.to_string()))?;
    policy
        .validate()
        .map_err(|e| ConfigError::new("BURST_* policy", e.to_string()))?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn get_from(map: &HashMap<&str, &str>) -> impl Fn(&str) -> Option<String> {
        move |k| map.get(k).map(|v| v.to_string())
    }

    #[test]
    fn every_policy_field_round_trips_through_its_setting() {
        // What the real-time drill does: each field of a policy written as BURST_<FIELD>.
        let p = Policy {
            burst_ahead: false,
            burst_ahead_nodes: Some(3),
            monthly_budget_usd: None,
            ..Policy::default()
        };
        let Value::Object(fields) = serde_json::to_value(&p).unwrap() else {
            panic!("a policy is an object")
        };
        let map: HashMap<String, String> = fields
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Null => "none".to_string(),
                    Value::Number(n) => n.to_string(),
                    other => other.to_string(),
                };
                (policy_setting_name(&k), v)
            })
            .collect();
        let got = policy_from_settings(&|k: &str| map.get(k).cloned()).unwrap();
        assert_eq!(got, p);
        let bad = HashMap::from([("BURST_BURST_AHEAD", "maybe")]);
        let err = policy_from_settings(&get_from(&bad))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("BURST_BURST_AHEAD") && err.contains("true or false"),
            "{err}"
        );
    }

    #[test]
    fn policy_overrides_and_errors_name_the_setting() {
        let map = HashMap::from([
            ("BURST_MAX_NODES", "8"),
            ("BURST_MONTHLY_BUDGET_USD", "12.5"),
            ("BURST_PRICE_PER_NODE_HOUR", "0.02"),
        ]);
        let g = get_from(&map);
        let p = policy_from_settings(&g).unwrap();
        assert_eq!(p.max_nodes, 8);
        assert_eq!(p.monthly_budget_usd, Some(12.5));
        assert_eq!(p.price_per_node_hour_usd, 0.02);
        assert_eq!(p.grace_on_battery_s, 120);

        let map = HashMap::from([("BURST_GRACE_ON_BATTERY_S", "soon")]);
        let g = get_from(&map);
        let err = policy_from_settings(&g).unwrap_err().to_string();
        assert!(err.contains("BURST_GRACE_ON_BATTERY_S"), "{err}");

        let map = HashMap::from([("BURST_MIN_NODES", "9")]);
        let g = get_from(&map);
        assert!(
            policy_from_settings(&g)
                .unwrap_err()
                .to_string()
                .contains("min_nodes")
        );

        let map = HashMap::from([("BURST_MONTHLY_BUDGET_USD", "none")]);
        let g = get_from(&map);
        assert_eq!(policy_from_settings(&g).unwrap().monthly_budget_usd, None);
    }

    #[test]
    fn a_site_reads_its_own_settings_then_the_shared_ones() {
        let map = HashMap::from([
            ("BURST_SITES", "home,parents-house"),
            ("BURST_MAX_NODES", "6"),
            ("BURST_SITE_PARENTS_HOUSE__BURST_MAX_NODES", "2"),
            ("BURST_AGENT_ED25519_PUBLIC_KEY", "pem"),
            ("BURST_SITE_PARENTS_HOUSE__BURST_AGENT_HS256_SECRET", "s"),
            ("BURST_ARM_SCALE_SET_ID", "/vmss/home"),
        ]);
        let g = get_from(&map);
        assert_eq!(site_key("parents-house"), "PARENTS_HOUSE");
        let home = site_get(&g, "home");
        let parents = site_get(&g, "parents-house");
        assert_eq!(home("BURST_MAX_NODES").as_deref(), Some("6"));
        assert_eq!(parents("BURST_MAX_NODES").as_deref(), Some("2"));
        assert_eq!(
            home("BURST_AGENT_ED25519_PUBLIC_KEY").as_deref(),
            Some("pem")
        );
        // Its own HS256 secret hides the shared Ed25519 key; nothing else is hidden.
        assert_eq!(parents("BURST_AGENT_ED25519_PUBLIC_KEY"), None);
        assert_eq!(parents("BURST_AGENT_HS256_SECRET").as_deref(), Some("s"));
        assert_eq!(
            parents("BURST_ARM_SCALE_SET_ID").as_deref(),
            Some("/vmss/home")
        );
        let e = site_error(
            &g,
            "parents-house",
            true,
            ConfigError::new("BURST_MAX_NODES", "bad"),
        );
        assert_eq!(
            e.to_string(),
            "BURST_SITE_PARENTS_HOUSE__BURST_MAX_NODES: bad"
        );
        let e = site_error(&g, "home", true, ConfigError::new("BURST_MAX_NODES", "bad"));
        assert_eq!(e.to_string(), "BURST_MAX_NODES: site home: bad");
        let e = site_error(
            &g,
            "home",
            false,
            ConfigError::new("BURST_MAX_NODES", "bad"),
        );
        assert_eq!(e.to_string(), "BURST_MAX_NODES: bad");
    }

    #[test]
    fn sites_whose_setting_names_would_collide_are_refused() {
        let map = HashMap::from([("BURST_SITES", "lab-2,lab.2")]);
        let err = Settings::from_settings(&get_from(&map))
            .unwrap_err()
            .to_string();
        assert!(err.contains("BURST_SITE_LAB_2__"), "{err}");
    }

    #[test]
    fn sites_are_validated() {
        let map = HashMap::from([("BURST_SITES", "home, lab-2")]);
        let g = get_from(&map);
        assert_eq!(
            Settings::from_settings(&g).unwrap().sites,
            vec!["home", "lab-2"]
        );
        let map = HashMap::from([("BURST_SITE_ID", "../etc")]);
        let g = get_from(&map);
        assert!(Settings::from_settings(&g).is_err());
    }
}
