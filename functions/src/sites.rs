//! The site registry: every site this deployment watches, each with its own keys, policy and
//! adapters (scale set or Auto Scaling group, Discord webhook, home API, Tailscale tailnet and
//! tags, cloud cluster). Built once at start by `wiring` from the settings:
//!
//! - `BURST_SITES=home,parents` lists the sites;
//! - `BURST_SITE_<KEY>__<SETTING>` is `<SETTING>` for one site (`KEY` = the site id in upper
//!   case with `-` and `.` as `_`), e.g. `BURST_SITE_PARENTS__BURST_ARM_SCALE_SET_ID`;
//! - a setting without the prefix is shared by every site that does not set its own.
//!
//! Requests are routed here: the agent's JWT `iss`, a Tailscale webhook by its secret, tailnet
//! and device tags, a wake-up by its `site`.

use crate::settings::{SiteSettings, TailscaleSecret};
use burst_core::Policy;
use burst_ports::{DeviceList, HomeProbe, Migrator, Notifier, Scaler};
use std::collections::HashMap;
use std::sync::Arc;

/// One watched site and everything that acts for it.
pub struct Site {
    pub id: String,
    pub settings: SiteSettings,
    /// Which Tailscale webhook events are this site's.
    pub tailnet: TailnetRoute,
    pub scaler: Option<Arc<dyn Scaler>>,
    pub notifier: Option<Arc<dyn Notifier>>,
    pub home: Option<Arc<dyn HomeProbe>>,
    pub devices: Option<Arc<dyn DeviceList>>,
    pub migrator: Option<Arc<dyn Migrator>>,
}

impl Site {
    /// A site with its settings and no adapters (tests, drills add theirs).
    pub fn new(id: impl Into<String>, settings: SiteSettings) -> Site {
        Site {
            id: id.into(),
            settings,
            tailnet: TailnetRoute::default(),
            scaler: None,
            notifier: None,
            home: None,
            devices: None,
            migrator: None,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.settings.policy
    }
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("id", &self.id)
            .field("tailnet", &self.tailnet)
            .field("scaler", &self.scaler.is_some())
            .field("notifier", &self.notifier.is_some())
            .field("home", &self.home.is_some())
            .field("devices", &self.devices.is_some())
            .field("migrator", &self.migrator.is_some())
            .finish_non_exhaustive()
    }
}

/// The tailnet (`BURST_TAILSCALE_TAILNET`; `None` or `-` = any) and the on-prem tags
/// (`BURST_TAILSCALE_TAGS`) of a site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailnetRoute {
    pub tailnet: Option<String>,
    pub tags: Vec<String>,
}

impl TailnetRoute {
    /// Whether an event of `tailnet` (absent: any) may be this site's.
    pub fn takes_tailnet(&self, tailnet: Option<&str>) -> bool {
        match (self.tailnet.as_deref(), tailnet) {
            (None | Some("-"), _) | (_, None) => true,
            (Some(own), Some(theirs)) => own.eq_ignore_ascii_case(theirs),
        }
    }

    /// Whether any of the event's tags is one of this site's.
    pub fn takes_tags(&self, tags: &[String]) -> bool {
        tags.iter().any(|t| self.tags.contains(t))
    }
}

/// The watched sites, in the order of `BURST_SITES`, found by id.
#[derive(Debug, Default)]
pub struct Sites {
    list: Vec<Arc<Site>>,
    by_id: HashMap<String, usize>,
}

impl Sites {
    pub fn new(list: Vec<Site>) -> Sites {
        let list: Vec<Arc<Site>> = list.into_iter().map(Arc::new).collect();
        let by_id = list
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        Sites { list, by_id }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Site>> {
        self.by_id.get(id).map(|&i| &self.list[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Site>> {
        self.list.iter()
    }

    pub fn ids(&self) -> Vec<&str> {
        self.list.iter().map(|s| s.id.as_str()).collect()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The sites a verified Tailscale delivery may speak for: those whose webhook secret
    /// verified it (`verified`), narrowed per event by tailnet and then, when the event names
    /// tags, by tags. A shared tailnet without tags reaches every site that shares it.
    pub fn for_tailscale_event<'a>(
        &self,
        verified: &'a [Arc<Site>],
        tailnet: Option<&str>,
        tags: &[String],
    ) -> Vec<&'a Arc<Site>> {
        let by_tailnet: Vec<&Arc<Site>> = verified
            .iter()
            .filter(|s| s.tailnet.takes_tailnet(tailnet))
            .collect();
        if by_tailnet.len() > 1 && !tags.is_empty() {
            let by_tags: Vec<&Arc<Site>> = by_tailnet
                .iter()
                .copied()
                .filter(|s| s.tailnet.takes_tags(tags))
                .collect();
            if !by_tags.is_empty() {
                return by_tags;
            }
        }
        by_tailnet
    }

    /// The distinct Tailscale webhook secrets and the sites that use each.
    pub fn tailscale_secrets(&self) -> Vec<(&TailscaleSecret, Vec<Arc<Site>>)> {
        let mut out: Vec<(&TailscaleSecret, Vec<Arc<Site>>)> = Vec::new();
        for site in &self.list {
            let Some(secret) = &site.settings.tailscale_secret else {
                continue;
            };
            match out.iter_mut().find(|(s, _)| s.0 == secret.0) {
                Some((_, sites)) => sites.push(site.clone()),
                None => out.push((secret, vec![site.clone()])),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn site(id: &str, tailnet: Option<&str>, tags: &[&str]) -> Site {
        let mut s = Site::new(
            id,
            SiteSettings {
                agent_key: None,
                tailscale_secret: None,
                policy: Policy::default(),
            },
        );
        s.tailnet = TailnetRoute {
            tailnet: tailnet.map(str::to_string),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        };
        s
    }

    fn ids(v: Vec<&Arc<Site>>) -> Vec<&str> {
        v.into_iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn tailscale_events_go_to_their_tailnet_then_their_tags() {
        let sites = Sites::new(vec![
            site("home", Some("example.com"), &["tag:home"]),
            site("parents", Some("example.com"), &["tag:parents"]),
            site("office", Some("office.example"), &["tag:onprem"]),
        ]);
        let all: Vec<Arc<Site>> = sites.iter().cloned().collect();
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ids(sites.for_tailscale_event(&all, Some("office.example"), &[])),
            ["office"]
        );
        assert_eq!(
            ids(sites.for_tailscale_event(&all, Some("EXAMPLE.com"), &tags(&["tag:parents"]))),
            ["parents"]
        );
        // A shared tailnet and no tags that decide: every site of that tailnet hears it.
        assert_eq!(
            ids(sites.for_tailscale_event(&all, Some("example.com"), &tags(&["tag:other"]))),
            ["home", "parents"]
        );
        assert!(
            sites
                .for_tailscale_event(&all, Some("elsewhere.example"), &[])
                .is_empty()
        );
        // Only the sites whose secret verified the delivery are candidates.
        let verified = vec![sites.get("home").unwrap().clone()];
        assert_eq!(
            ids(sites.for_tailscale_event(&verified, Some("example.com"), &[])),
            ["home"]
        );
    }

    #[test]
    fn sites_are_found_by_id_in_order() {
        let sites = Sites::new(vec![site("b", None, &[]), site("a", None, &[])]);
        assert_eq!(sites.ids(), ["b", "a"]);
        assert_eq!(sites.get("a").unwrap().id, "a");
        assert!(sites.get("c").is_none());
        assert!(sites.get("A").is_none(), "ids are exact");
    }
}
