//! The objects the sim serves, built from k8s-openapi types the way kube-apiserver fills them
//! (uids, resource versions, creation timestamps, controller-written status), plus the
//! discovery documents and `Status` errors.

use super::{Cluster, SimWorkload};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec, ScaleStatus};
use k8s_openapi::api::core::v1::{
    Container, Namespace, NamespaceStatus, Node, NodeCondition, NodeSpec, NodeStatus,
    NodeSystemInfo, PodSpec, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    LabelSelector, ObjectMeta, ServerAddressByClientCIDR, Time,
};
use k8s_openapi::apimachinery::pkg::version::Info;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(crate) const KUBE_VERSION: &str = "v1.33.0";
const SELECTOR_LABEL: &str = "app.kubernetes.io/name";

fn now() -> Time {
    // Whole seconds, as the API server serialises creation timestamps.
    let secs = Timestamp::now().as_second();
    Time(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn meta(c: &mut Cluster, name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        uid: Some(c.uid()),
        resource_version: Some(c.bump()),
        creation_timestamp: Some(now()),
        ..Default::default()
    }
}

pub(crate) fn ensure_namespace(c: &mut Cluster, name: &str) {
    if c.namespaces.contains_key(name) {
        return;
    }
    let mut m = meta(c, name, None);
    m.labels = Some(BTreeMap::from([(
        "kubernetes.io/metadata.name".to_string(),
        name.to_string(),
    )]));
    let ns = Namespace {
        metadata: m,
        spec: None,
        status: Some(NamespaceStatus {
            phase: Some("Active".into()),
            conditions: None,
        }),
    };
    c.namespaces.insert(name.to_string(), ns);
}

pub(crate) fn node(c: &mut Cluster, name: &str, ready: bool) -> Node {
    let mut m = meta(c, name, None);
    if let Some(old) = c.nodes.get(name) {
        // Same node, new status: keep its identity.
        m.uid.clone_from(&old.metadata.uid);
        m.creation_timestamp
            .clone_from(&old.metadata.creation_timestamp);
    }
    m.labels = Some(BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
    ]));
    let (status, reason, message) = if ready {
        ("True", "KubeletReady", "kubelet is posting ready status")
    } else {
        (
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        )
    };
    let t = now();
    Node {
        metadata: m,
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            conditions: Some(vec![
                NodeCondition {
                    type_: "MemoryPressure".into(),
                    status: if ready { "False" } else { "Unknown" }.into(),
                    reason: Some(
                        if ready {
                            "KubeletHasSufficientMemory"
                        } else {
                            "NodeStatusUnknown"
                        }
                        .into(),
                    ),
                    message: None,
                    last_heartbeat_time: Some(t.clone()),
                    last_transition_time: Some(t.clone()),
                },
                NodeCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    reason: Some(reason.into()),
                    message: Some(message.into()),
                    last_heartbeat_time: Some(t.clone()),
                    last_transition_time: Some(t),
                },
            ]),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                boot_id: String::new(),
                container_runtime_version: "containerd://2.0.0".into(),
                kernel_version: "6.12.0".into(),
                kube_proxy_version: String::new(),
                kubelet_version: KUBE_VERSION.into(),
                machine_id: String::new(),
                operating_system: "linux".into(),
                os_image: "Talos (v1.10.0)".into(),
                system_uuid: String::new(),
                swap: None,
            }),
            ..Default::default()
        }),
    }
}

fn workload_meta(c: &mut Cluster, w: &SimWorkload) -> ObjectMeta {
    let mut m = meta(c, &w.name, Some(&w.namespace));
    let mut labels = w.labels.clone();
    labels
        .entry(SELECTOR_LABEL.to_string())
        .or_insert_with(|| w.name.clone());
    m.labels = Some(labels);
    m.annotations = (!w.annotations.is_empty()).then(|| w.annotations.clone());
    m.generation = Some(1);
    m
}

fn template(w: &SimWorkload) -> (LabelSelector, PodTemplateSpec) {
    let labels = BTreeMap::from([(SELECTOR_LABEL.to_string(), w.name.clone())]);
    let selector = LabelSelector {
        match_labels: Some(labels.clone()),
        match_expressions: None,
    };
    let pod = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: w.name.clone(),
                image: Some("registry.invalid/app:1".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    (selector, pod)
}

pub(crate) fn deployment(c: &mut Cluster, w: &SimWorkload) -> Deployment {
    let (selector, pod) = template(w);
    let mut d = Deployment {
        metadata: workload_meta(c, w),
        spec: Some(DeploymentSpec {
            replicas: Some(w.replicas),
            selector,
            template: pod,
            ..Default::default()
        }),
        status: None,
    };
    converge_deployment(&mut d);
    d
}

pub(crate) fn statefulset(c: &mut Cluster, w: &SimWorkload) -> StatefulSet {
    let (selector, pod) = template(w);
    let mut s = StatefulSet {
        metadata: workload_meta(c, w),
        spec: Some(StatefulSetSpec {
            replicas: Some(w.replicas),
            selector,
            service_name: Some(w.name.clone()),
            template: pod,
            ..Default::default()
        }),
        status: None,
    };
    converge_statefulset(&mut s);
    s
}

fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// The controllers of a real cluster take a while; the sim's converge at once.
pub(crate) fn converge_deployment(d: &mut Deployment) {
    let n = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    d.status = Some(DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(n),
        ready_replicas: nonzero(n),
        available_replicas: nonzero(n),
        updated_replicas: nonzero(n),
        ..Default::default()
    });
}

pub(crate) fn converge_statefulset(s: &mut StatefulSet) {
    let n = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    s.status = Some(StatefulSetStatus {
        observed_generation: s.metadata.generation,
        replicas: n,
        ready_replicas: nonzero(n),
        available_replicas: nonzero(n),
        current_replicas: nonzero(n),
        updated_replicas: nonzero(n),
        ..Default::default()
    });
}

/// The `scale` subresource of a workload: `spec.replicas`, `status.replicas` and the pod
/// selector serialised as a string (what the HPA reads).
pub(crate) fn scale(
    meta: &ObjectMeta,
    replicas: i32,
    status: i32,
    selector: &LabelSelector,
) -> Scale {
    let selector = selector
        .match_labels
        .as_ref()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Scale {
        metadata: ObjectMeta {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            creation_timestamp: meta.creation_timestamp.clone(),
            ..Default::default()
        },
        spec: Some(ScaleSpec {
            replicas: Some(replicas),
        }),
        status: Some(ScaleStatus {
            replicas: status,
            selector: Some(selector),
        }),
    }
}

pub(crate) fn version() -> Info {
    Info {
        major: "1".into(),
        minor: "33".into(),
        git_version: KUBE_VERSION.into(),
        git_commit: "0000000000000000000000000000000000000000".into(),
        git_tree_state: "clean".into(),
        build_date: "2026-01-01T00:00:00Z".into(),
        go_version: "go1.24.0".into(),
        compiler: "gc".into(),
        platform: "linux/amd64".into(),
        ..Default::default()
    }
}

pub(crate) fn api_versions(server: &str) -> APIVersions {
    APIVersions {
        versions: vec!["v1".into()],
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".into(),
            server_address: server.into(),
        }],
    }
}

fn apps_group() -> APIGroup {
    let v1 = GroupVersionForDiscovery {
        group_version: "apps/v1".into(),
        version: "v1".into(),
    };
    APIGroup {
        name: "apps".into(),
        versions: vec![v1.clone()],
        preferred_version: Some(v1),
        server_address_by_client_cidrs: None,
    }
}

pub(crate) fn api_group_list() -> APIGroupList {
    APIGroupList {
        groups: vec![apps_group()],
    }
}

pub(crate) fn apps_api_group() -> APIGroup {
    apps_group()
}

fn resource(
    name: &str,
    singular: &str,
    namespaced: bool,
    kind: &str,
    verbs: &[&str],
    short: &[&str],
) -> APIResource {
    APIResource {
        name: name.into(),
        singular_name: singular.into(),
        namespaced,
        kind: kind.into(),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        short_names: (!short.is_empty()).then(|| short.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

fn scale_resource(parent: &str) -> APIResource {
    APIResource {
        group: Some("autoscaling".into()),
        version: Some("v1".into()),
        ..resource(
            &format!("{parent}/scale"),
            "",
            true,
            "Scale",
            &["get", "patch", "update"],
            &[],
        )
    }
}

pub(crate) fn core_v1_resources() -> APIResourceList {
    APIResourceList {
        group_version: "v1".into(),
        resources: vec![
            resource(
                "namespaces",
                "namespace",
                false,
                "Namespace",
                &["get", "list"],
                &["ns"],
            ),
            resource("nodes", "node", false, "Node", &["get", "list"], &["no"]),
        ],
    }
}

pub(crate) fn apps_v1_resources() -> APIResourceList {
    let mut deployments = resource(
        "deployments",
        "deployment",
        true,
        "Deployment",
        &["get", "list"],
        &["deploy"],
    );
    deployments.categories = Some(vec!["all".into()]);
    let mut statefulsets = resource(
        "statefulsets",
        "statefulset",
        true,
        "StatefulSet",
        &["get", "list"],
        &["sts"],
    );
    statefulsets.categories = Some(vec!["all".into()]);
    APIResourceList {
        group_version: "apps/v1".into(),
        resources: vec![
            deployments,
            scale_resource("deployments"),
            statefulsets,
            scale_resource("statefulsets"),
        ],
    }
}

/// A `Status` failure, exactly as kube-apiserver writes it.
pub(crate) fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    } else if code != 401 {
        s["details"] = json!({});
    }
    s
}
