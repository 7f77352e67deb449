//! Label selectors as the API server parses them from `?labelSelector=`: equality
//! (`k=v`, `k==v`, `k!=v`), existence (`k`, `!k`) and sets (`k in (a,b)`, `k notin (a,b)`),
//! comma-separated, all of which must hold.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Selector(Vec<Requirement>);

impl Selector {
    /// Parses a selector; the error is the API server's message for a 400.
    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in split_top_level(raw) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            out.push(requirement(part)?);
        }
        Ok(Selector(out))
    }

    pub(crate) fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v),
            Requirement::NotEquals(k, v) => get(k) != Some(v),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(x)),
        })
    }
}

/// Splits on commas outside parentheses (`a in (x,y),b` is two requirements).
fn split_top_level(raw: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in raw.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&raw[start..]);
    out
}

fn requirement(part: &str) -> Result<Requirement, String> {
    let bad = |why: &str| format!("unable to parse requirement: {why}: {part:?}");
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        check_key(key).map_err(|e| bad(&e))?;
        return Ok(Requirement::NotExists(key.to_string()));
    }
    for (op, ctor) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((k, v)) = part.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            check_key(k).map_err(|e| bad(&e))?;
            check_value(v).map_err(|e| bad(&e))?;
            return Ok(ctor(k.to_string(), v.to_string()));
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words.as_slice() {
        let rest = rest.trim();
        let (op, set) = if let Some(s) = rest.strip_prefix("notin") {
            ("notin", s)
        } else if let Some(s) = rest.strip_prefix("in") {
            ("in", s)
        } else {
            return Err(bad("expected an operator"));
        };
        let set = set.trim();
        let inner = set
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| bad("expected a parenthesised set of values"))?;
        let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
        for v in &values {
            check_value(v).map_err(|e| bad(&e))?;
        }
        check_key(key).map_err(|e| bad(&e))?;
        return Ok(if op == "in" {
            Requirement::In(key.to_string(), values)
        } else {
            Requirement::NotIn(key.to_string(), values)
        });
    }
    check_key(part).map_err(|e| bad(&e))?;
    Ok(Requirement::Exists(part.to_string()))
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if !ok {
            return Err("prefix part must be a DNS subdomain".into());
        }
    }
    if name.is_empty() || name.len() > 63 || !name_chars(name) {
        return Err("name part must consist of alphanumeric characters, '-', '_' or '.'".into());
    }
    Ok(())
}

fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 || !name_chars(v) {
        return Err(
            "a label value must consist of alphanumeric characters, '-', '_' or '.'".into(),
        );
    }
    Ok(())
}

fn name_chars(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_form() {
        let s = Selector::parse("a=1, b==2,c!=3,d,!e,f in (x, y),g notin (z)").unwrap();
        assert_eq!(
            s.0,
            vec![
                Requirement::Equals("a".into(), "1".into()),
                Requirement::Equals("b".into(), "2".into()),
                Requirement::NotEquals("c".into(), "3".into()),
                Requirement::Exists("d".into()),
                Requirement::NotExists("e".into()),
                Requirement::In("f".into(), vec!["x".into(), "y".into()]),
                Requirement::NotIn("g".into(), vec!["z".into()]),
            ]
        );
    }

    #[test]
    fn matching() {
        let tier = Selector::parse("hybrid-burst.io/tier=critical").unwrap();
        assert!(tier.matches(Some(&labels(&[("hybrid-burst.io/tier", "critical")]))));
        assert!(!tier.matches(Some(&labels(&[("hybrid-burst.io/tier", "stateful")]))));
        assert!(!tier.matches(None));
        let s = Selector::parse("a!=1,!b,c notin (x)").unwrap();
        assert!(s.matches(None), "absent keys satisfy != , ! and notin");
        assert!(!s.matches(Some(&labels(&[("c", "x")]))));
        assert!(Selector::parse("").unwrap().matches(None));
    }

    #[test]
    fn rejects_what_the_api_server_rejects() {
        for bad in ["a=b c", "Bad_Prefix/x=1", "a in x", "=v", "a=-x-", "a b"] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }
}
