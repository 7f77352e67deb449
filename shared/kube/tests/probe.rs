//! The home cluster probe against the simulated API server.
#![allow(clippy::unwrap_used)]

use burst_core::{ApiProbe, NodeCount};
use burst_kube::{HomeClusterProbe, HomeProbeConfig};
use burst_kube_sim::{self as sim, Readyz, SimHandle, SimOptions};
use burst_ports::HomeProbe;
use std::time::Duration;

const TOKEN: &str = "probe-token";

async fn home(nodes: &[(&str, bool)]) -> SimHandle {
    let sim = sim::start(SimOptions::with_token(TOKEN)).await.unwrap();
    sim.set_nodes(nodes);
    sim
}

fn probe_for(sim: &SimHandle, token: &str) -> HomeClusterProbe {
    HomeClusterProbe::new(HomeProbeConfig::new(sim.uri(), Some(token.to_string())))
}

fn nodes_of(p: &ApiProbe) -> Option<NodeCount> {
    match p {
        ApiProbe::Ready { nodes, .. } => *nodes,
        other => panic!("expected Ready, got {other:?}"),
    }
}

#[tokio::test]
async fn all_nodes_ready() {
    let sim = home(&[("cp-1", true), ("cp-2", true), ("w-1", true)]).await;
    let p = probe_for(&sim, TOKEN).observe().await;
    assert_eq!(nodes_of(&p), Some(NodeCount { ready: 3, total: 3 }));

    let seen: Vec<(String, String, Option<String>, u16)> = sim
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.bearer, r.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("GET".into(), "/readyz".into(), Some(TOKEN.into()), 200),
            (
                "GET".into(),
                "/api/v1/nodes".into(),
                Some(TOKEN.into()),
                200
            ),
        ]
    );
    assert_eq!(
        sim.requests()[1].query_param("limit").as_deref(),
        Some("500")
    );
}

#[tokio::test]
async fn some_nodes_not_ready() {
    let sim = home(&[
        ("cp-1", true),
        ("w-1", false),
        ("w-2", true),
        ("w-3", false),
    ])
    .await;
    let probe = probe_for(&sim, TOKEN);
    assert_eq!(
        nodes_of(&probe.observe().await),
        Some(NodeCount { ready: 2, total: 4 })
    );
    // The same probe sees a node come back.
    assert!(sim.set_node_ready("w-1", true));
    assert_eq!(
        nodes_of(&probe.observe().await),
        Some(NodeCount { ready: 3, total: 4 })
    );
}

#[tokio::test]
async fn readyz_500_is_not_ready() {
    let sim = home(&[("cp-1", true)]).await;
    sim.set_readyz(Readyz::Failing);
    let p = probe_for(&sim, TOKEN).observe().await;
    let ApiProbe::NotReady { detail } = &p else {
        panic!("expected NotReady, got {p:?}")
    };
    assert!(detail.starts_with("/readyz: HTTP 500: "), "{detail}");
    assert!(
        detail.contains("[-]etcd failed: reason withheld"),
        "{detail}"
    );
    // Not ready: the node list is not asked for.
    assert_eq!(sim.requests().len(), 1);
}

/// Item: the status code is the signal, not the body. kube-apiserver answers `/readyz` with
/// 200 `ok` (the sim's default, checked in `all_nodes_ready`), and with `?verbose` a 200 listing
/// its checks (the sample on kubernetes.io, "Kubernetes API health endpoints", which says
/// machines "should rely on the HTTP status code"); whatever sits in front of it may answer a
/// 200 of its own. Either 200 is ready.
#[tokio::test]
async fn a_200_is_ready_whatever_the_body() {
    let sim = home(&[("cp-1", true), ("w-1", true)]).await;
    sim.set_readyz(Readyz::Answer {
        status: 200,
        content_type: "text/plain; charset=utf-8",
        body: "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]poststarthook/start-kube-apiserver-admission-initializer ok\n[+]poststarthook/generic-apiserver-start-informers ok\nreadyz check passed\n",
    });
    let p = probe_for(&sim, TOKEN).observe().await;
    assert_eq!(nodes_of(&p), Some(NodeCount { ready: 2, total: 2 }));
}

/// ... and anything else is not ready, with the body in the detail: HAProxy's built-in 503 page,
/// as a load balancer in front of the API servers (the setup of kubeadm's "Options for Software
/// Load Balancing") answers when no API server is up.
#[tokio::test]
async fn a_failure_status_is_not_ready_with_the_body_in_the_detail() {
    let sim = home(&[("cp-1", true)]).await;
    sim.set_readyz(Readyz::Answer {
        status: 503,
        content_type: "text/html",
        body: "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n",
    });
    let p = probe_for(&sim, TOKEN).observe().await;
    assert_eq!(
        p,
        ApiProbe::NotReady {
            detail: "/readyz: HTTP 503: <html><body><h1>503 Service Unavailable</h1>; No server is available to handle this request.; </body></html>".into()
        }
    );
    assert_eq!(sim.requests().len(), 1, "no node list when not ready");
}

#[tokio::test]
async fn server_down_is_unreachable_and_recovers() {
    let sim = home(&[("cp-1", true)]).await;
    let probe = probe_for(&sim, TOKEN);
    assert!(matches!(probe.observe().await, ApiProbe::Ready { .. }));

    sim.stop_listening().await;
    let p = probe.observe().await;
    let ApiProbe::Unreachable { detail } = &p else {
        panic!("expected Unreachable, got {p:?}")
    };
    assert!(detail.to_lowercase().contains("connect"), "{detail}");

    sim.resume_listening().await.unwrap();
    assert_eq!(
        nodes_of(&probe.observe().await),
        Some(NodeCount { ready: 1, total: 1 })
    );
}

#[tokio::test]
async fn slow_readyz_beyond_the_timeout_is_unreachable() {
    let sim = home(&[("cp-1", true)]).await;
    sim.set_readyz(Readyz::Hang);
    let mut config = HomeProbeConfig::new(sim.uri(), Some(TOKEN.into()));
    config.connection.timeout = Duration::from_millis(300);
    let p = HomeClusterProbe::new(config).observe().await;
    // Usually the probe's own deadline ("no answer within 300 ms"); on a busy machine kube's
    // read timeout of the same length may fire first. Either way: unreachable.
    let ApiProbe::Unreachable { detail } = &p else {
        panic!("expected Unreachable, got {p:?}")
    };
    assert!(detail.starts_with("/readyz: "), "{detail}");
    let r = &sim.requests()[0];
    assert_eq!((r.path.as_str(), r.status), ("/readyz", 0), "still hanging");
}

#[tokio::test]
async fn wrong_token_is_unknown() {
    let sim = home(&[("cp-1", true)]).await;
    let p = probe_for(&sim, "not-the-token").observe().await;
    assert_eq!(
        p,
        ApiProbe::Unknown {
            detail: "/readyz: HTTP 401: Unauthorized".into()
        }
    );
    let p = HomeClusterProbe::new(HomeProbeConfig::new(sim.uri(), None))
        .observe()
        .await;
    assert!(matches!(p, ApiProbe::Unknown { .. }), "{p:?}");
}

#[tokio::test]
async fn nodes_forbidden_still_reports_ready_without_counts() {
    let sim = home(&[("cp-1", true), ("w-1", false)]).await;
    sim.set_forbidden(true);
    let p = probe_for(&sim, TOKEN).observe().await;
    assert_eq!(nodes_of(&p), None);
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 403]);
}

#[tokio::test]
async fn large_node_lists_are_read_in_pages() {
    let names: Vec<String> = (0..1203).map(|i| format!("n-{i:04}")).collect();
    let nodes: Vec<(&str, bool)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i % 3 != 0))
        .collect();
    let sim = home(&nodes).await;
    let p = probe_for(&sim, TOKEN).observe().await;
    assert_eq!(
        nodes_of(&p),
        Some(NodeCount {
            ready: 802,
            total: 1203
        })
    );
    let lists: Vec<Option<String>> = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/nodes")
        .map(|r| r.query_param("continue"))
        .collect();
    assert_eq!(lists.len(), 3);
    assert_eq!(lists[0], None);
    assert!(lists[1].is_some() && lists[2].is_some());
}

#[tokio::test]
async fn https_with_the_cluster_ca() {
    let sim = sim::start(SimOptions::tls_with_token(TOKEN)).await.unwrap();
    sim.set_nodes(&[("cp-1", true), ("w-1", true)]);
    let ca = sim.ca_pem().unwrap().to_string();
    let url = sim.base_url();

    // Configured the way the function app is: from settings.
    let get = |name: &str| match name {
        "BURST_HOME_KUBE_URL" => Some(url.clone()),
        "BURST_HOME_KUBE_TOKEN" => Some(TOKEN.to_string()),
        "BURST_HOME_KUBE_CA" => Some(ca.clone()),
        _ => None,
    };
    let config = HomeProbeConfig::from_settings(&get).unwrap().unwrap();
    let p = HomeClusterProbe::new(config).observe().await;
    assert_eq!(nodes_of(&p), Some(NodeCount { ready: 2, total: 2 }));

    // Without the CA the certificate is not trusted: the path to home fails.
    let p = probe_for(&sim, TOKEN).observe().await;
    assert!(matches!(p, ApiProbe::Unreachable { .. }), "{p:?}");

    // Insecure skips verification (tests and local runs only).
    let mut config = HomeProbeConfig::new(sim.uri(), Some(TOKEN.into()));
    config.connection.insecure = true;
    let p = HomeClusterProbe::new(config).observe().await;
    assert_eq!(nodes_of(&p), Some(NodeCount { ready: 2, total: 2 }));
}

/// One probe value serves invocations on different runtimes (a client kept from a finished
/// runtime would report home unreachable).
#[test]
fn a_probe_outlives_the_runtime_it_first_ran_on() {
    let server_rt = tokio::runtime::Runtime::new().unwrap();
    let sim = server_rt.block_on(home(&[("cp-1", true), ("w-1", true)]));
    let probe = probe_for(&sim, TOKEN);
    for _ in 0..2 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let p = rt.block_on(probe.observe());
        assert_eq!(nodes_of(&p), Some(NodeCount { ready: 2, total: 2 }));
    }
    drop(sim);
}
