//! The cloud cluster migrator against the simulated API server.
#![allow(clippy::unwrap_used)]

use burst_core::{Direction, MigrateResult, Tier};
use burst_kube::{CloudClusterMigrator, CloudMigratorConfig, WorkloadRef};
use burst_kube_sim::{self as sim, SimHandle, SimOptions, SimWorkload, WorkloadKind};
use burst_ports::Migrator;

const TOKEN: &str = "migrator-token";
use WorkloadKind::{Deployment as D, StatefulSet as S};

/// A cloud cluster with both tiers, an unlabelled workload and a second namespace.
async fn cloud() -> SimHandle {
    let sim = sim::start(SimOptions::with_token(TOKEN)).await.unwrap();
    sim.add_example_workloads();
    sim.add_deployment(SimWorkload::new("tools", "batch").replicas(1));
    sim.add_statefulset(SimWorkload::new("queue", "broker").tier("critical", "4"));
    sim
}

fn migrator(sim: &SimHandle) -> CloudClusterMigrator {
    CloudClusterMigrator::new(CloudMigratorConfig::new(sim.uri(), Some(TOKEN.into())))
}

fn replicas(sim: &SimHandle) -> Vec<i32> {
    vec![
        sim.replicas(D, "apps", "web").unwrap(),
        sim.replicas(D, "apps", "api").unwrap(),
        sim.replicas(S, "apps", "db-replica").unwrap(),
        sim.replicas(D, "tools", "batch").unwrap(),
        sim.replicas(S, "queue", "broker").unwrap(),
    ]
}

#[tokio::test]
async fn to_cloud_scales_only_the_tier_to_its_annotation() {
    let sim = cloud().await;
    let m = migrator(&sim);
    assert_eq!(
        m.migrate(Tier::Critical, Direction::ToCloud).await,
        MigrateResult::Done { workloads: 3 }
    );
    assert_eq!(replicas(&sim), vec![2, 3, 0, 1, 4]);

    // Two lists across all namespaces by label, then one merge patch per workload's scale.
    let reqs = sim.requests();
    let lists: Vec<(&str, Option<String>)> = reqs
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| (r.path.as_str(), r.query_param("labelSelector")))
        .collect();
    let sel = Some("hybrid-burst.io/tier=critical".to_string());
    assert_eq!(
        lists,
        vec![
            ("/apis/apps/v1/deployments", sel.clone()),
            ("/apis/apps/v1/statefulsets", sel)
        ]
    );
    let mut patches: Vec<(String, Option<String>, String, u16)> = reqs
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| {
            (
                r.path.clone(),
                r.content_type.clone(),
                r.body.clone(),
                r.status,
            )
        })
        .collect();
    patches.sort();
    let merge = Some("application/merge-patch+json".to_string());
    assert_eq!(
        patches,
        vec![
            (
                "/apis/apps/v1/namespaces/apps/deployments/api/scale".into(),
                merge.clone(),
                r#"{"spec":{"replicas":3}}"#.into(),
                200
            ),
            (
                "/apis/apps/v1/namespaces/apps/deployments/web/scale".into(),
                merge.clone(),
                r#"{"spec":{"replicas":2}}"#.into(),
                200
            ),
            (
                "/apis/apps/v1/namespaces/queue/statefulsets/broker/scale".into(),
                merge,
                r#"{"spec":{"replicas":4}}"#.into(),
                200
            ),
        ]
    );
    assert!(reqs.iter().all(|r| r.bearer.as_deref() == Some(TOKEN)));

    // The stateful tier on its own.
    assert_eq!(
        m.migrate(Tier::Stateful, Direction::ToCloud).await,
        MigrateResult::Done { workloads: 1 }
    );
    assert_eq!(replicas(&sim), vec![2, 3, 1, 1, 4]);
}

#[tokio::test]
async fn to_home_scales_the_tier_to_zero() {
    let sim = cloud().await;
    let m = migrator(&sim);
    m.migrate(Tier::Critical, Direction::ToCloud).await;
    m.migrate(Tier::Stateful, Direction::ToCloud).await;
    assert_eq!(replicas(&sim), vec![2, 3, 1, 1, 4]);
    assert_eq!(
        m.migrate(Tier::Critical, Direction::ToHome).await,
        MigrateResult::Done { workloads: 3 }
    );
    assert_eq!(replicas(&sim), vec![0, 0, 1, 1, 0]);
    assert_eq!(
        m.migrate(Tier::Stateful, Direction::ToHome).await,
        MigrateResult::Done { workloads: 1 }
    );
    assert_eq!(replicas(&sim), vec![0, 0, 0, 1, 0]);
}

#[tokio::test]
async fn idempotent() {
    let sim = cloud().await;
    let m = migrator(&sim);
    for _ in 0..2 {
        assert_eq!(
            m.migrate(Tier::Critical, Direction::ToCloud).await,
            MigrateResult::Done { workloads: 3 }
        );
        assert_eq!(replicas(&sim), vec![2, 3, 0, 1, 4]);
    }
    for _ in 0..2 {
        assert_eq!(
            m.migrate(Tier::Critical, Direction::ToHome).await,
            MigrateResult::Done { workloads: 3 }
        );
        assert_eq!(replicas(&sim), vec![0, 0, 0, 1, 0]);
    }
}

#[tokio::test]
async fn missing_or_bad_annotations_are_skipped_and_reported() {
    let sim = sim::start(SimOptions::with_token(TOKEN)).await.unwrap();
    sim.add_deployment(SimWorkload::new("apps", "web").tier("critical", "2"));
    sim.add_deployment(
        SimWorkload::new("apps", "no-annotation")
            .label("hybrid-burst.io/tier", "critical")
            .replicas(0),
    );
    sim.add_deployment(SimWorkload::new("apps", "typo").tier("critical", "two"));
    let m = migrator(&sim);

    let report = m.migrate_report(Tier::Critical, Direction::ToCloud).await;
    let skipped: Vec<String> = report.skipped.iter().map(|(w, _)| w.to_string()).collect();
    assert_eq!(
        skipped,
        vec!["apps/deployment/no-annotation", "apps/deployment/typo"]
    );
    assert_eq!(
        report.scaled,
        vec![(
            WorkloadRef {
                kind: D,
                namespace: "apps".into(),
                name: "web".into()
            },
            2
        )]
    );
    // Partial: the good one moved, so the core must see Done (it brings Done tiers home).
    assert_eq!(report.result(), MigrateResult::Done { workloads: 1 });
    assert_eq!(sim.replicas(D, "apps", "no-annotation"), Some(0));
    assert_eq!(sim.replicas(D, "apps", "typo"), Some(0));
    assert_eq!(sim.replicas(D, "apps", "web"), Some(2));
    let patched: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        patched,
        vec!["/apis/apps/v1/namespaces/apps/deployments/web/scale"]
    );

    // Going home needs no annotation: all three go to 0.
    assert_eq!(
        m.migrate(Tier::Critical, Direction::ToHome).await,
        MigrateResult::Done { workloads: 3 }
    );

    // Nothing movable at all: Failed, naming the bad annotations.
    let sim = sim::start(SimOptions::with_token(TOKEN)).await.unwrap();
    sim.add_deployment(
        SimWorkload::new("apps", "lonely").label("hybrid-burst.io/tier", "critical"),
    );
    assert_eq!(
        migrator(&sim)
            .migrate(Tier::Critical, Direction::ToCloud)
            .await,
        MigrateResult::Failed {
            detail: "0 scaled; skipped apps/deployment/lonely \
                     (annotation hybrid-burst.io/cloud-replicas missing)"
                .into()
        }
    );
}

#[tokio::test]
async fn namespaces_filter() {
    let sim = cloud().await;
    let mut config = CloudMigratorConfig::new(sim.uri(), Some(TOKEN.into()));
    config.namespaces = vec!["apps".into(), "tools".into()];
    let m = CloudClusterMigrator::new(config);
    assert_eq!(
        m.migrate(Tier::Critical, Direction::ToCloud).await,
        MigrateResult::Done { workloads: 2 }
    );
    // queue/broker is outside the filter and stays at 0.
    assert_eq!(replicas(&sim), vec![2, 3, 0, 1, 0]);
    let mut listed: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path)
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            "/apis/apps/v1/namespaces/apps/deployments",
            "/apis/apps/v1/namespaces/apps/statefulsets",
            "/apis/apps/v1/namespaces/tools/deployments",
            "/apis/apps/v1/namespaces/tools/statefulsets",
        ]
    );
}

#[tokio::test]
async fn api_errors_fail_without_half_moves() {
    let sim = cloud().await;
    // RBAC refuses the list: nothing is scaled.
    sim.set_forbidden(true);
    let r = migrator(&sim)
        .migrate(Tier::Critical, Direction::ToCloud)
        .await;
    let MigrateResult::Failed { detail } = &r else {
        panic!("expected Failed, got {r:?}")
    };
    assert!(
        detail.contains(
            "listing deployments in all namespaces: HTTP 403: deployments.apps is forbidden"
        ),
        "{detail}"
    );
    assert!(sim.requests().iter().all(|r| r.method == "GET"));
    sim.set_forbidden(false);

    // Wrong token.
    let m = CloudClusterMigrator::new(CloudMigratorConfig::new(sim.uri(), Some("nope".into())));
    let r = m.migrate(Tier::Critical, Direction::ToCloud).await;
    assert!(
        matches!(&r, MigrateResult::Failed { detail } if detail.contains("HTTP 401")),
        "{r:?}"
    );

    // Server gone.
    sim.stop_listening().await;
    let r = migrator(&sim)
        .migrate(Tier::Critical, Direction::ToCloud)
        .await;
    assert!(matches!(r, MigrateResult::Failed { .. }), "{r:?}");
    assert_eq!(replicas(&sim), vec![0, 1, 0, 1, 0]);
}

#[tokio::test]
async fn configured_from_settings() {
    let sim = cloud().await;
    let url = sim.base_url();
    let get = |name: &str| match name {
        "BURST_CLOUD_KUBE_URL" => Some(url.clone()),
        "BURST_CLOUD_KUBE_TOKEN" => Some(TOKEN.to_string()),
        "BURST_CLOUD_NAMESPACES" => Some("queue".to_string()),
        _ => None,
    };
    let m = CloudClusterMigrator::new(CloudMigratorConfig::from_settings(&get).unwrap().unwrap());
    assert_eq!(
        m.migrate(Tier::Critical, Direction::ToCloud).await,
        MigrateResult::Done { workloads: 1 }
    );
    assert_eq!(replicas(&sim), vec![0, 1, 0, 1, 4]);
}

#[tokio::test]
async fn a_failed_scale_write_fails_the_migration() {
    let sim = cloud().await;
    sim.set_scale_writes_failing(true);
    let m = migrator(&sim);
    let report = m.migrate_report(Tier::Critical, Direction::ToCloud).await;
    assert!(report.scaled.is_empty());
    let failed: Vec<String> = report
        .errors
        .iter()
        .map(|(w, e)| format!("{}: {e}", w.as_ref().unwrap()))
        .collect();
    assert_eq!(
        failed,
        vec![
            "apps/deployment/api: HTTP 500: etcdserver: request timed out",
            "apps/deployment/web: HTTP 500: etcdserver: request timed out",
            "queue/statefulset/broker: HTTP 500: etcdserver: request timed out",
        ]
    );
    assert!(matches!(report.result(), MigrateResult::Failed { .. }));

    // The retry after the fault heals converges.
    sim.set_scale_writes_failing(false);
    assert_eq!(
        m.migrate(Tier::Critical, Direction::ToCloud).await,
        MigrateResult::Done { workloads: 3 }
    );
    let states: Vec<(String, i32)> = sim
        .workloads()
        .into_iter()
        .map(|w| (format!("{}/{}", w.namespace, w.name), w.replicas))
        .collect();
    assert_eq!(
        states,
        vec![
            ("apps/api".to_string(), 3),
            ("apps/web".to_string(), 2),
            ("tools/batch".to_string(), 1),
            ("apps/db-replica".to_string(), 0),
            ("queue/broker".to_string(), 4),
        ]
    );
}
