//! The cloud cluster migrator: scales the Deployments and StatefulSets of a tier on the cloud
//! cluster to their annotated replica count (to the cloud) or to 0 (back home).
//!
//! Workloads opt in with the label [`TIER_LABEL`] and say how many replicas to run in the
//! cloud with the annotation [`CLOUD_REPLICAS_ANNOTATION`]. Only the `scale` subresource is
//! written, so the migrator's role needs no rights over the workloads' specs.

use crate::client::{build, classify};
use crate::config::{CloudMigratorConfig, ClusterConnection};
use async_trait::async_trait;
use burst_core::{Direction, MigrateResult, Tier};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::de::DeserializeOwned;
use std::fmt;
use tokio::time::{Instant as Deadline, timeout_at};

/// The label that puts a workload in a tier (`critical` or `stateful`).
pub const TIER_LABEL: &str = "hybrid-burst.io/tier";
/// The annotation with the replica count to run in the cloud (a non-negative integer).
pub const CLOUD_REPLICAS_ANNOTATION: &str = "hybrid-burst.io/cloud-replicas";

const LIST_PAGE: u32 = 500;

/// The two workload kinds the migrator scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    /// The resource name in API paths and in kubectl (`deployment/web`).
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
        }
    }
}

/// One workload, as `namespace/kind/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.namespace,
            self.kind.resource(),
            self.name
        )
    }
}

/// What one migration did, workload by workload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Scaled (or confirmed) to this replica count.
    pub scaled: Vec<(WorkloadRef, i32)>,
    /// Left alone because their annotation is missing or not a non-negative integer.
    pub skipped: Vec<(WorkloadRef, String)>,
    /// API errors: a list that failed (no workload named) or a scale write that failed.
    pub errors: Vec<(Option<WorkloadRef>, String)>,
}

impl MigrationReport {
    /// The outcome the decision core gets.
    ///
    /// - any API error → `Failed` (the core retries later; scaling again is harmless);
    /// - nothing scaled but something skipped → `Failed` naming the bad annotations, so the
    ///   owner is told and nothing moved;
    /// - otherwise `Done` with the number scaled, even when some workloads were skipped: the
    ///   core only brings a tier home after a `Done` to the cloud, so reporting a partial move
    ///   as `Failed` would leave the scaled ones running in the cloud after home recovers.
    ///   The skipped ones are logged (warn) with the reason.
    pub fn result(&self) -> MigrateResult {
        if !self.errors.is_empty() {
            return MigrateResult::Failed {
                detail: self.detail(),
            };
        }
        if self.scaled.is_empty() && !self.skipped.is_empty() {
            return MigrateResult::Failed {
                detail: self.detail(),
            };
        }
        MigrateResult::Done {
            workloads: u32::try_from(self.scaled.len()).unwrap_or(u32::MAX),
        }
    }

    /// One line: what was scaled, skipped and failed.
    pub fn detail(&self) -> String {
        let mut parts = vec![format!("{} scaled", self.scaled.len())];
        if !self.skipped.is_empty() {
            let list: Vec<String> = self
                .skipped
                .iter()
                .map(|(w, why)| format!("{w} ({why})"))
                .collect();
            parts.push(format!("skipped {}", list.join(", ")));
        }
        if !self.errors.is_empty() {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(w, e)| match w {
                    Some(w) => format!("{w}: {e}"),
                    None => e.clone(),
                })
                .collect();
            parts.push(format!("errors: {}", list.join("; ")));
        }
        parts.join("; ")
    }
}

/// The replica count a workload wants in the cloud, from its annotation.
pub fn cloud_replicas(meta: &ObjectMeta) -> Result<i32, String> {
    let Some(raw) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(CLOUD_REPLICAS_ANNOTATION))
    else {
        return Err(format!("annotation {CLOUD_REPLICAS_ANNOTATION} missing"));
    };
    let trimmed = raw.trim();
    // Digits only: "+2", "-1" and "2.0" are mistakes worth surfacing, not guessing.
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "annotation {CLOUD_REPLICAS_ANNOTATION}={raw:?} is not a non-negative integer"
        ));
    }
    trimmed
        .parse::<i32>()
        .map_err(|_| format!("annotation {CLOUD_REPLICAS_ANNOTATION}={raw:?} is too large"))
}

/// [`burst_ports::Migrator`] against a real (or simulated) cloud Kubernetes API server.
#[derive(Debug)]
pub struct CloudClusterMigrator {
    connection: ClusterConnection,
    namespaces: Vec<String>,
}

impl CloudClusterMigrator {
    /// No request is made here and no runtime is needed.
    pub fn new(config: CloudMigratorConfig) -> Self {
        Self {
            connection: config.connection,
            namespaces: config.namespaces,
        }
    }

    /// Moves `tier` and reports workload by workload, within the configured timeout.
    pub async fn migrate_report(&self, tier: Tier, direction: Direction) -> MigrationReport {
        let limit = self.connection.timeout;
        let deadline = Deadline::now() + limit;
        let mut report = MigrationReport::default();
        // kube retries 429/503/504 with backoff here, within the overall deadline.
        let client = match build(&self.connection, true) {
            Ok(c) => c,
            Err(e) => {
                report.errors.push((
                    None,
                    format!(
                        "cannot build the Kubernetes client: {}",
                        classify(&e).detail()
                    ),
                ));
                return report;
            }
        };
        let selector = format!("{TIER_LABEL}={}", tier.as_str());

        let mut targets: Vec<(WorkloadRef, ObjectMeta)> = Vec::new();
        for kind in [WorkloadKind::Deployment, WorkloadKind::StatefulSet] {
            let scopes: Vec<Option<&str>> = if self.namespaces.is_empty() {
                vec![None]
            } else {
                self.namespaces.iter().map(|n| Some(n.as_str())).collect()
            };
            for ns in scopes {
                let listed = match kind {
                    WorkloadKind::Deployment => {
                        list_meta::<Deployment>(&client, ns, &selector, deadline).await
                    }
                    WorkloadKind::StatefulSet => {
                        list_meta::<StatefulSet>(&client, ns, &selector, deadline).await
                    }
                };
                match listed {
                    Ok(metas) => {
                        for meta in metas {
                            let w = WorkloadRef {
                                kind,
                                namespace: meta.namespace.clone().unwrap_or_default(),
                                name: meta.name.clone().unwrap_or_default(),
                            };
                            targets.push((w, meta));
                        }
                    }
                    Err(e) => {
                        let scope =
                            ns.map_or("all namespaces".to_string(), |n| format!("namespace {n}"));
                        report.errors.push((
                            None,
                            format!("listing {}s in {scope}: {e}", kind.resource()),
                        ));
                    }
                }
            }
        }
        // A failed list means we do not know the whole tier: scale nothing rather than half.
        if !report.errors.is_empty() {
            return report;
        }

        for (w, meta) in targets {
            let replicas = match direction {
                Direction::ToHome => 0,
                Direction::ToCloud => match cloud_replicas(&meta) {
                    Ok(n) => n,
                    Err(why) => {
                        tracing::warn!(workload = %w, reason = %why, "migration skips a workload");
                        report.skipped.push((w, why));
                        continue;
                    }
                },
            };
            match scale(&client, &w, replicas, deadline).await {
                Ok(()) => report.scaled.push((w, replicas)),
                Err(e) => report.errors.push((Some(w), e)),
            }
        }
        report
    }
}

#[async_trait]
impl burst_ports::Migrator for CloudClusterMigrator {
    async fn migrate(&self, tier: Tier, direction: Direction) -> MigrateResult {
        let report = self.migrate_report(tier, direction).await;
        let result = report.result();
        tracing::info!(
            tier = tier.as_str(),
            direction = direction.as_str(),
            detail = %report.detail(),
            "migration"
        );
        result
    }
}

fn api_for<K>(client: &kube::Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn list_meta<K>(
    client: &kube::Client,
    ns: Option<&str>,
    selector: &str,
    deadline: Deadline,
) -> Result<Vec<ObjectMeta>, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = api_for(client, ns);
    let mut params = ListParams::default().labels(selector).limit(LIST_PAGE);
    let mut out = Vec::new();
    loop {
        let page = match timeout_at(deadline, api.list(&params)).await {
            Err(_) => return Err("timed out".to_string()),
            Ok(Err(e)) => return Err(classify(&e).detail()),
            Ok(Ok(p)) => p,
        };
        out.extend(page.items.into_iter().map(|k| k.meta().clone()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(out)
}

async fn scale(
    client: &kube::Client,
    w: &WorkloadRef,
    replicas: i32,
    deadline: Deadline,
) -> Result<(), String> {
    let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } }));
    let params = PatchParams::default();
    let call = async {
        match w.kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = api_for(client, Some(&w.namespace));
                api.patch_scale(&w.name, &params, &patch).await
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = api_for(client, Some(&w.namespace));
                api.patch_scale(&w.name, &params, &patch).await
            }
        }
    };
    match timeout_at(deadline, call).await {
        Err(_) => Err("timed out".to_string()),
        Ok(Err(e)) => Err(classify(&e).detail()),
        Ok(Ok(scale)) => {
            let got = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
            if got == replicas {
                Ok(())
            } else {
                Err(format!(
                    "asked for {replicas} replicas, the API server answered {got}"
                ))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(annotation: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            annotations: annotation
                .map(|a| BTreeMap::from([(CLOUD_REPLICAS_ANNOTATION.to_string(), a.to_string())])),
            ..Default::default()
        }
    }

    #[test]
    fn annotation_parsing() {
        assert_eq!(cloud_replicas(&meta(Some("2"))), Ok(2));
        assert_eq!(cloud_replicas(&meta(Some(" 0 "))), Ok(0));
        assert_eq!(
            cloud_replicas(&meta(None)),
            Err("annotation hybrid-burst.io/cloud-replicas missing".into())
        );
        for bad in ["", "-1", "+2", "2.0", "two", "0x10"] {
            assert_eq!(
                cloud_replicas(&meta(Some(bad))),
                Err(format!(
                    "annotation hybrid-burst.io/cloud-replicas={bad:?} is not a non-negative integer"
                )),
            );
        }
        assert_eq!(
            cloud_replicas(&meta(Some("99999999999"))),
            Err("annotation hybrid-burst.io/cloud-replicas=\"99999999999\" is too large".into())
        );
    }

    fn w(name: &str) -> WorkloadRef {
        WorkloadRef {
            kind: WorkloadKind::Deployment,
            namespace: "apps".into(),
            name: name.into(),
        }
    }

    #[test]
    fn report_to_result() {
        let mut r = MigrationReport::default();
        assert_eq!(r.result(), MigrateResult::Done { workloads: 0 });

        r.skipped.push((w("bad"), "annotation x missing".into()));
        assert_eq!(
            r.result(),
            MigrateResult::Failed {
                detail: "0 scaled; skipped apps/deployment/bad (annotation x missing)".into()
            }
        );

        r.scaled.push((w("web"), 2));
        assert_eq!(r.result(), MigrateResult::Done { workloads: 1 });

        r.errors
            .push((Some(w("api")), "HTTP 404: not found".into()));
        assert_eq!(
            r.result(),
            MigrateResult::Failed {
                detail: "1 scaled; skipped apps/deployment/bad (annotation x missing); \
                         errors: apps/deployment/api: HTTP 404: not found"
                    .into()
            }
        );
    }
}
