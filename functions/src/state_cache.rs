//! The last state of each site this process loaded or saved, by version tag. A load whose tag
//! matches clones it instead of parsing the document again (the parse was the largest cost of
//! a request after the signature check). Correct for any store: a tag names one version, and
//! a state survives its JSON round trip unchanged (a property test in burst-core checks it).

use burst_core::SiteState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Sites kept; past this the cache starts over (a deployment serves a handful of sites).
const MAX_SITES: usize = 1024;

#[derive(Debug, Default)]
pub struct StateCache {
    sites: Mutex<HashMap<String, (String, Arc<SiteState>)>>,
}

impl StateCache {
    /// The state of `site` at version `tag`, if known.
    pub fn get(&self, site: &str, tag: &str) -> Option<SiteState> {
        let sites = self.sites.lock().ok()?;
        match sites.get(site) {
            Some((t, state)) if t == tag => Some(SiteState::clone(state)),
            _ => None,
        }
    }

    /// The last known version of `site` and its state, if any.
    pub fn latest(&self, site: &str) -> Option<(String, Arc<SiteState>)> {
        let sites = self.sites.lock().ok()?;
        sites.get(site).map(|(t, s)| (t.clone(), s.clone()))
    }

    /// Remembers `state` as version `tag` of `site`.
    pub fn put(&self, site: &str, tag: &str, state: Arc<SiteState>) {
        let Ok(mut sites) = self.sites.lock() else {
            return;
        };
        if sites.len() >= MAX_SITES && !sites.contains_key(site) {
            sites.clear();
        }
        match sites.get_mut(site) {
            Some(entry) => {
                entry.0.clear();
                entry.0.push_str(tag);
                entry.1 = state;
            }
            None => {
                sites.insert(site.to_owned(), (tag.to_owned(), state));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burst_core::Timestamp;

    #[test]
    fn hits_only_the_same_version() {
        let cache = StateCache::default();
        let s = SiteState::new("home", Timestamp::from_millis(1));
        assert_eq!(cache.get("home", "a"), None);
        cache.put("home", "a", Arc::new(s.clone()));
        assert_eq!(cache.get("home", "a"), Some(s.clone()));
        assert_eq!(cache.get("home", "b"), None);
        assert_eq!(cache.get("lab", "a"), None);
        let mut t = s.clone();
        t.incidents_opened += 1;
        cache.put("home", "b", Arc::new(t.clone()));
        assert_eq!(cache.get("home", "a"), None);
        assert_eq!(cache.get("home", "b"), Some(t));
    }

    #[test]
    fn stays_bounded() {
        let cache = StateCache::default();
        let s = Arc::new(SiteState::new("x", Timestamp::from_millis(1)));
        for i in 0..=MAX_SITES {
            cache.put(&format!("s{i}"), "t", s.clone());
        }
        let n = cache.sites.lock().map(|m| m.len()).unwrap_or(usize::MAX);
        assert!(n <= MAX_SITES, "{n}");
        assert!(cache.get(&format!("s{MAX_SITES}"), "t").is_some());
    }
}
