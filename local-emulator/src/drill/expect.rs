//! Checking a scenario's expectations against what a drill observed.

use super::record::{Kind, Record};
use crate::scenario::Expectation;

/// The world at one instant, as point expectations see it.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub mode: String,
    pub capacity: u32,
    pub running: u32,
    pub critical_in_cloud: bool,
    pub stateful_in_cloud: bool,
    pub incident_open: bool,
    pub webhook_gone: bool,
    pub undelivered: usize,
}

fn eq<T: PartialEq + std::fmt::Debug>(
    out: &mut Vec<(bool, String)>,
    name: &str,
    want: Option<T>,
    got: T,
) {
    if let Some(w) = want {
        let ok = w == got;
        out.push((
            ok,
            if ok {
                format!("{name} = {w:?}")
            } else {
                format!("{name} = {w:?}, got {got:?}")
            },
        ));
    }
}

fn side(in_cloud: bool) -> String {
    if in_cloud { "cloud" } else { "home" }.to_string()
}

pub fn check_point(x: &Expectation, o: &Observed) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    eq(&mut out, "mode", x.mode.clone(), o.mode.clone());
    eq(&mut out, "capacity", x.capacity, o.capacity);
    eq(&mut out, "running", x.running, o.running);
    eq(
        &mut out,
        "critical",
        x.critical.clone(),
        side(o.critical_in_cloud),
    );
    eq(
        &mut out,
        "stateful",
        x.stateful.clone(),
        side(o.stateful_in_cloud),
    );
    eq(&mut out, "incident_open", x.incident_open, o.incident_open);
    eq(&mut out, "webhook_gone", x.webhook_gone, o.webhook_gone);
    eq(&mut out, "undelivered", x.undelivered, o.undelivered);
    out
}

/// The scale set's capacity just before `t` (from writes and evictions).
fn capacity_before(records: &[Record], t: i64) -> u32 {
    records
        .iter()
        .rev()
        .filter(|r| r.t_ms < t)
        .find_map(|r| match r.kind {
            Kind::Scale { capacity, .. } | Kind::Evict { capacity, .. } => Some(capacity),
            _ => None,
        })
        .unwrap_or(0)
}

pub fn max_capacity(records: &[Record], from: i64, until: i64) -> u32 {
    records
        .iter()
        .filter(|r| r.t_ms >= from && r.t_ms <= until)
        .filter_map(|r| match r.kind {
            Kind::Scale { capacity, .. } => Some(capacity),
            _ => None,
        })
        .chain(std::iter::once(capacity_before(records, from)))
        .max()
        .unwrap_or(0)
}

fn min_capacity(records: &[Record], from: i64, until: i64) -> u32 {
    records
        .iter()
        .filter(|r| r.t_ms >= from && r.t_ms <= until)
        .filter_map(|r| match r.kind {
            Kind::Scale { capacity, .. } | Kind::Evict { capacity, .. } => Some(capacity),
            _ => None,
        })
        .chain(std::iter::once(capacity_before(records, from)))
        .min()
        .unwrap_or(0)
}

fn at_most(out: &mut Vec<(bool, String)>, name: &str, limit: Option<usize>, got: usize) {
    if let Some(l) = limit {
        out.push((got <= l, format!("{name} ≤ {l} (got {got})")));
    }
}

fn exactly(out: &mut Vec<(bool, String)>, name: &str, want: Option<usize>, got: usize) {
    if let Some(w) = want {
        out.push((got == w, format!("{name} = {w} (got {got})")));
    }
}

pub fn check_interval(
    x: &Expectation,
    records: &[Record],
    end: i64,
    cost_usd: f64,
) -> Vec<(bool, String)> {
    let (from, until) = match x.during {
        Some([a, b]) => (a.millis(), b.millis()),
        None => (0, end),
    };
    let span = if x.during.is_some() {
        format!(
            " during {}–{}",
            super::record::clock(from),
            super::record::clock(until)
        )
    } else {
        String::new()
    };
    let window: Vec<&Record> = records
        .iter()
        .filter(|r| r.t_ms >= from && r.t_ms <= until)
        .collect();
    let count = |f: &dyn Fn(&Kind) -> bool| window.iter().filter(|r| f(&r.kind)).count();
    let mut out = Vec::new();

    if let Some(m) = x.max_capacity {
        let got = max_capacity(records, from, until);
        out.push((got <= m, format!("max capacity{span} ≤ {m} (got {got})")));
    }
    if let Some(m) = x.min_capacity {
        let got = min_capacity(records, from, until);
        out.push((got >= m, format!("min capacity{span} ≥ {m} (got {got})")));
    }
    let writes = count(&|k| matches!(k, Kind::Scale { .. }));
    exactly(
        &mut out,
        &format!("scale writes{span}"),
        x.scale_writes,
        writes,
    );
    at_most(
        &mut out,
        &format!("scale writes{span}"),
        x.max_scale_writes,
        writes,
    );
    let calls = count(&|k| matches!(k, Kind::Scale { .. } | Kind::ArmCall { .. }));
    at_most(
        &mut out,
        &format!("scale-set calls{span}"),
        x.max_arm_calls,
        calls,
    );
    let downs = count(&|k| matches!(k, Kind::Scale { from, capacity, .. } if capacity < from));
    at_most(
        &mut out,
        &format!("scale-downs{span}"),
        x.max_scale_downs,
        downs,
    );
    let creates = count(&|k| matches!(k, Kind::Notify { action, .. } if action == "create"));
    exactly(&mut out, &format!("incidents{span}"), x.incidents, creates);
    let posts = count(&|k| matches!(k, Kind::Notify { action, .. } if action == "post"));
    exactly(&mut out, &format!("posts{span}"), x.posts, posts);
    at_most(&mut out, &format!("posts{span}"), x.max_posts, posts);
    let notes = count(&|k| matches!(k, Kind::Notify { .. }));
    at_most(
        &mut out,
        &format!("notifications{span}"),
        x.max_notifications,
        notes,
    );
    let modes: Vec<&str> = window
        .iter()
        .filter_map(|r| match &r.kind {
            Kind::Mode { to, .. } => Some(to.as_str()),
            _ => None,
        })
        .collect();
    if let Some(m) = &x.never_mode {
        out.push((!modes.contains(&m.as_str()), format!("never {m}{span}")));
    }
    if let Some(m) = &x.ever_mode {
        out.push((modes.contains(&m.as_str()), format!("ever {m}{span}")));
    }
    let moves: Vec<String> = window
        .iter()
        .filter_map(|r| match &r.kind {
            Kind::Migrate { tier, direction } => Some(format!("{tier}:{direction}")),
            _ => None,
        })
        .collect();
    for m in x.migrated.iter().flatten() {
        out.push((moves.contains(m), format!("migrated {m}{span}")));
    }
    for m in x.not_migrated.iter().flatten() {
        out.push((!moves.contains(m), format!("not migrated {m}{span}")));
    }
    if let Some(c) = x.max_cost_usd {
        out.push((
            cost_usd <= c,
            format!("cost ≤ ${c:.2} (got ${cost_usd:.2})"),
        ));
    }
    if let Some(c) = x.min_cost_usd {
        out.push((
            cost_usd >= c,
            format!("cost ≥ ${c:.2} (got ${cost_usd:.2})"),
        ));
    }
    exactly(&mut out, &format!("moves{span}"), x.migrations, moves.len());
    at_most(
        &mut out,
        &format!("moves{span}"),
        x.max_migrations,
        moves.len(),
    );
    at_most(
        &mut out,
        &format!("incidents{span}"),
        x.max_incidents,
        creates,
    );
    let titles: Vec<String> = window
        .iter()
        .filter_map(|r| match &r.kind {
            Kind::Notify { title, .. } => Some(title.to_lowercase()),
            _ => None,
        })
        .collect();
    let announced = |th: &u32| {
        let needle = format!("budget at {th} %");
        titles.iter().any(|t| t.contains(&needle))
    };
    for th in x.budget_alerts.iter().flatten() {
        out.push((
            announced(th),
            format!("budget alert {th} % delivered{span}"),
        ));
    }
    for th in x.no_budget_alerts.iter().flatten() {
        out.push((!announced(th), format!("no budget alert {th} %{span}")));
    }
    for want in x.titles.iter().flatten() {
        let ok = titles.iter().any(|t| t.contains(&want.to_lowercase()));
        out.push((ok, format!("a message titled {want:?}{span}")));
    }
    if let Some(order) = &x.order {
        out.push(check_order(order, &window, &span));
    }
    out
}

/// Whether the first occurrences of `order`'s items come in that order (and all happen).
fn check_order(order: &[String], window: &[&Record], span: &str) -> (bool, String) {
    let first = |item: &str| {
        window
            .iter()
            .position(|r| match (&r.kind, item.split_once(':')) {
                (Kind::Scale { capacity, .. }, Some(("capacity", n))) => {
                    n.parse::<u32>().is_ok_and(|n| n == *capacity)
                }
                (Kind::Mode { to, .. }, Some(("mode", m))) => to == m,
                (Kind::Migrate { tier, direction }, Some((t, d))) => tier == t && direction == d,
                _ => false,
            })
    };
    let at: Vec<Option<usize>> = order.iter().map(|i| first(i)).collect();
    let ok = at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1]);
    let shown = order.join(" → ");
    let what = if ok {
        format!("order {shown}{span}")
    } else {
        let missing: Vec<&str> = order
            .iter()
            .zip(&at)
            .filter(|(_, a)| a.is_none())
            .map(|(i, _)| i.as_str())
            .collect();
        if missing.is_empty() {
            format!("order {shown}{span} (came in another order)")
        } else {
            format!("order {shown}{span} (never: {})", missing.join(", "))
        }
    };
    (ok, what)
}
