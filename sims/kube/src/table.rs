//! `Table` answers (`meta.k8s.io/v1`), which kubectl asks for first when it prints columns:
//! `kubectl get nodes` then shows STATUS and VERSION instead of falling back to NAME/AGE.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// The answer's representation, picked from `Accept` in the client's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Repr {
    Json,
    Table,
}

pub(crate) const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// The first `Accept` entry the sim can serve: plain JSON, or a v1 Table where `table_ok`.
/// `None`: nothing acceptable (406).
pub(crate) fn negotiate(accept: Option<&str>, table_ok: bool) -> Option<Repr> {
    let Some(accept) = accept else {
        return Some(Repr::Json);
    };
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        if !matches!(
            media.as_str(),
            "application/json" | "application/*" | "*/*" | ""
        ) {
            continue;
        }
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        match (param("as"), param("g"), param("v")) {
            (None, None, _) => return Some(Repr::Json),
            (Some("Table"), Some("meta.k8s.io"), Some("v1")) if table_ok => {
                return Some(Repr::Table);
            }
            _ => continue,
        }
    }
    None
}

/// Objects that print as table rows.
pub(crate) trait Rows {
    /// (name, type, description) of each column after `Name`.
    fn columns() -> Vec<(&'static str, &'static str, &'static str)>;
    fn row_meta(&self) -> &ObjectMeta;
    fn cells(&self) -> Vec<Value>;
}

const NAME_DOC: &str = "Name must be unique within a namespace.";
const AGE_DOC: &str =
    "CreationTimestamp is a timestamp representing the server time when this object was created.";

/// A table of `items`, with the list metadata (resourceVersion, continue) of the page.
pub(crate) fn table<T: Rows>(items: &[T], list_meta: Value) -> Value {
    let mut columns = vec![json!({
        "name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0
    })];
    for (name, ty, doc) in T::columns() {
        columns.push(
            json!({ "name": name, "type": ty, "format": "", "description": doc, "priority": 0 }),
        );
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut cells = vec![json!(o.row_meta().name.clone().unwrap_or_default())];
            cells.extend(o.cells());
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.row_meta(),
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// kubectl's short age: `42s`, `5m10s`, `3h`, `2d4h`, `400d`.
pub(crate) fn age(meta: &ObjectMeta) -> String {
    let Some(created) = &meta.creation_timestamp else {
        return "<unknown>".into();
    };
    let secs = (Timestamp::now().as_second() - created.0.as_second()).max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    // `{big}{unit}`, then the remainder in the next smaller unit unless it is 0.
    let two = |big: i64, unit: &str, rest: i64, rest_unit: &str| match rest {
        0 => format!("{big}{unit}"),
        rest => format!("{big}{unit}{rest}{rest_unit}"),
    };
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        two(m, "m", secs % 60, "s")
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        two(h, "h", m % 60, "m")
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        two(d, "d", h % 24, "h")
    } else {
        format!("{d}d")
    }
}

impl Rows for Node {
    fn columns() -> Vec<(&'static str, &'static str, &'static str)> {
        vec![
            ("Status", "string", "The status of the node"),
            ("Roles", "string", "The roles of the node"),
            ("Age", "string", AGE_DOC),
            ("Version", "string", "Kubelet Version reported by the node."),
        ]
    }
    fn row_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn cells(&self) -> Vec<Value> {
        let status = if burst_kube::node_ready(self) {
            "Ready"
        } else {
            "NotReady"
        };
        let roles: Vec<&str> = self
            .metadata
            .labels
            .iter()
            .flatten()
            .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
            .collect();
        let roles = if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        };
        let version = self
            .status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.kubelet_version.clone())
            .unwrap_or_default();
        vec![
            json!(status),
            json!(roles),
            json!(age(&self.metadata)),
            json!(version),
        ]
    }
}

impl Rows for Namespace {
    fn columns() -> Vec<(&'static str, &'static str, &'static str)> {
        vec![
            ("Status", "string", "The status of the namespace"),
            ("Age", "string", AGE_DOC),
        ]
    }
    fn row_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn cells(&self) -> Vec<Value> {
        let phase = self
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        vec![json!(phase), json!(age(&self.metadata))]
    }
}

impl Rows for Deployment {
    fn columns() -> Vec<(&'static str, &'static str, &'static str)> {
        vec![
            ("Ready", "string", "Number of the pod with ready state"),
            (
                "Up-to-date",
                "string",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            (
                "Available",
                "string",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            ("Age", "string", AGE_DOC),
        ]
    }
    fn row_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn cells(&self) -> Vec<Value> {
        let want = self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = self.status.clone().unwrap_or_default();
        vec![
            json!(format!("{}/{want}", st.ready_replicas.unwrap_or(0))),
            json!(st.updated_replicas.unwrap_or(0)),
            json!(st.available_replicas.unwrap_or(0)),
            json!(age(&self.metadata)),
        ]
    }
}

impl Rows for StatefulSet {
    fn columns() -> Vec<(&'static str, &'static str, &'static str)> {
        vec![
            ("Ready", "string", "Number of the pod with ready state"),
            ("Age", "string", AGE_DOC),
        ]
    }
    fn row_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn cells(&self) -> Vec<Value> {
        let want = self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = self
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        vec![json!(format!("{ready}/{want}")), json!(age(&self.metadata))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_clients_order() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl), true), Some(Repr::Table));
        assert_eq!(negotiate(Some(kubectl), false), Some(Repr::Json));
        assert_eq!(negotiate(None, true), Some(Repr::Json));
        assert_eq!(
            negotiate(Some("application/json, */*"), true),
            Some(Repr::Json)
        );
        let discovery =
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(Some(discovery), false), Some(Repr::Json));
        assert_eq!(
            negotiate(Some("application/json;as=Table;v=v1;g=meta.k8s.io"), false),
            None
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf"), true),
            None
        );
    }
}
