//! The function app's settings (app settings in Azure, environment elsewhere). Every name is
//! listed with its default in the README; adapters read their own settings (see each crate).

use crate::jwt::{AgentKey, KeyError};
use burst_core::Policy;
use serde_json::{Map, Value};

/// A function reading one setting (environment, app settings, a test map).
pub type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Sites this deployment watches (agent JWT `iss`); the first is the default for webhooks
    /// and the probe.
    pub sites: Vec<String>,
    pub agent_key: Option<AgentKey>,
    pub tailscale_secret: Option<TailscaleSecret>,
    pub policy: Policy,
    /// The longest a request body may take to arrive (`BURST_BODY_TIMEOUT_MS`, 10 s).
    pub body_timeout: std::time::Duration,
}

/// The Tailscale webhook secret, never printed.
#[derive(Clone)]
pub struct TailscaleSecret(pub String);

impl std::fmt::Debug for TailscaleSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TailscaleSecret(…)")
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A setting's value cannot be used; names the setting, never echoes secrets.
    #[error("{name}: {problem}")]
    Invalid { name: String, problem: String },
}

fn nonempty(get: Get, name: &str) -> Option<String> {
    get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Valid site ids: they become file and blob names.
pub fn valid_site(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.')
}

impl Settings {
    pub fn from_settings(get: Get) -> Result<Settings, SettingsError> {
        let mut sites: Vec<String> = match nonempty(get, "BURST_SITES") {
            Some(list) => list
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => vec![nonempty(get, "BURST_SITE_ID").unwrap_or_else(|| "home".into())],
        };
        sites.dedup();
        if let Some(bad) = sites.iter().find(|s| !valid_site(s)) {
            return Err(SettingsError::Invalid {
                name: "BURST_SITES / BURST_SITE_ID".into(),
                problem: format!(
                    "{bad:?} is not a valid site id (letters, digits, - _ .; 64 at most)"
                ),
            });
        }
        let ed = nonempty(get, "BURST_AGENT_ED25519_PUBLIC_KEY");
        let hs = nonempty(get, "BURST_AGENT_HS256_SECRET");
        let agent_key = match (ed, hs) {
            (Some(_), Some(_)) => return Err(KeyError::Both.into()),
            (Some(pem), None) => Some(AgentKey::ed25519_pem(&pem)?),
            (None, Some(secret)) => Some(AgentKey::hs256(&secret)?),
            (None, None) => None,
        };
        let tailscale_secret = nonempty(get, "TAILSCALE_WEBHOOK_SECRET").map(TailscaleSecret);
        let policy = policy_from_settings(get)?;
        let body_timeout_ms =
            match nonempty(get, "BURST_BODY_TIMEOUT_MS") {
                None => 10_000,
                Some(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    SettingsError::Invalid {
                        name: "BURST_BODY_TIMEOUT_MS".into(),
                        problem: format!("expected milliseconds > 0, got {v:?}"),
                    }
                })?,
            };
        Ok(Settings {
            sites,
            agent_key,
            tailscale_secret,
            policy,
            body_timeout: std::time::Duration::from_millis(body_timeout_ms),
        })
    }

    pub fn default_site(&self) -> &str {
        self.sites.first().map(String::as_str).unwrap_or("home")
    }
}

/// The setting name of a policy field: `max_nodes` → `BURST_MAX_NODES`.
pub fn policy_setting_name(field: &str) -> String {
    format!("BURST_{}", field.to_ascii_uppercase())
}

/// Older or shorter names accepted for a few policy fields.
const ALIASES: &[(&str, &str)] = &[("price_per_node_hour_usd", "BURST_PRICE_PER_NODE_HOUR")];

/// Reads every policy field from `BURST_<FIELD>`; the defaults are DESIGN's.
pub fn policy_from_settings(get: Get) -> Result<Policy, SettingsError> {
    let defaults = serde_json::to_value(Policy::default()).unwrap_or(Value::Null);
    let Value::Object(defaults) = defaults else {
        return Ok(Policy::default());
    };
    let mut out = Map::new();
    for (field, default) in defaults {
        let name = policy_setting_name(&field);
        let raw = nonempty(get, &name).map(|v| (name.clone(), v)).or_else(|| {
            ALIASES
                .iter()
                .find(|(f, _)| *f == field)
                .and_then(|(_, alias)| nonempty(get, alias).map(|v| (alias.to_string(), v)))
        });
        let Some((shown, raw)) = raw else {
            out.insert(field, default);
            continue;
        };
        let invalid = |problem: &str| SettingsError::Invalid {
            name: shown.clone(),
            problem: problem.to_string(),
        };
        let optional = default.is_null() || field == "monthly_budget_usd";
        let value = if optional && raw.eq_ignore_ascii_case("none") {
            Value::Null
        } else if default.is_boolean() {
            match raw.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Value::Bool(true),
                "false" | "0" | "no" | "off" => Value::Bool(false),
                _ => return Err(invalid("expected true or false")),
            }
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
    let policy: Policy =
        serde_json::from_value(Value::Object(out)).map_err(|e| SettingsError::Invalid {
            name: "BURST_* policy".into(),
            problem: e.to_string(),
        })?;
    policy.validate().map_err(|e| SettingsError::Invalid {
        name: "BURST_* policy".into(),
        problem: e.to_string(),
    })?;
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
