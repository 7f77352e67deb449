//! Cross-check of the sim with the real `kubectl`: a client nobody here wrote must read the
//! sim's nodes and workloads and scale through it.
//!
//! kubectl sends a bearer token only over TLS, so the sim serves https here and kubectl gets
//! the sim's CA. Without kubectl on PATH the tests are skipped with a notice, unless `CI` is
//! set: then they fail.
#![allow(clippy::unwrap_used)]

use burst_kube_sim::{
    self as sim, RecordedRequest, SimHandle, SimOptions, SimWorkload, WorkloadKind,
};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Output;

const TOKEN: &str = "kubectl-token";

fn kubectl_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}

/// kubectl, or `None` (after a notice) when it is missing outside CI.
fn kubectl() -> Option<PathBuf> {
    match kubectl_path() {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!("kubectl is not on PATH; CI needs it for the sim cross-check (install kubectl)")
        }
        None => {
            eprintln!("NOTICE: kubectl not on PATH; skipping the kubectl cross-check");
            None
        }
    }
}

struct Kubectl {
    bin: PathBuf,
    home: tempfile::TempDir,
    server: String,
}

impl Kubectl {
    fn new(bin: PathBuf, sim: &SimHandle) -> Self {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("ca.pem"), sim.ca_pem().unwrap()).unwrap();
        Self {
            bin,
            home,
            server: sim.base_url(),
        }
    }

    async fn run(&self, token: &str, args: &[&str]) -> Output {
        let ca = self.home.path().join("ca.pem");
        // A private HOME and a KUBECONFIG that does not exist: no user config is read.
        tokio::process::Command::new(&self.bin)
            .env_clear()
            .env("HOME", self.home.path())
            .env("KUBECONFIG", self.home.path().join("kubeconfig"))
            .arg("--server")
            .arg(&self.server)
            .arg("--certificate-authority")
            .arg(ca)
            .arg("--token")
            .arg(token)
            .arg("--request-timeout=20s")
            .args(args)
            .output()
            .await
            .unwrap()
    }

    /// Runs with the right token; it must succeed. Its standard output.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(TOKEN, args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args).await).unwrap()
    }
}

/// Table rows as owned strings, to compare with what kubectl printed.
fn owned(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

/// The first request the sim received that `matches`.
fn first_request(sim: &SimHandle, matches: impl Fn(&RecordedRequest) -> bool) -> RecordedRequest {
    let found = sim.requests().into_iter().find(|r| matches(r));
    found.expect("no such request")
}

/// The example cluster and a kubectl pointed at it; `None` without kubectl (skipped).
async fn kubectl_on_cluster() -> Option<(SimHandle, Kubectl)> {
    let bin = kubectl()?;
    let sim = cluster().await;
    let k = Kubectl::new(bin, &sim);
    Some((sim, k))
}

async fn cluster() -> SimHandle {
    let sim = sim::start(SimOptions::tls_with_token(TOKEN)).await.unwrap();
    sim.set_nodes(&[
        ("cp-1", true),
        ("cp-2", true),
        ("w-1", false),
        ("w-2", true),
    ]);
    sim.add_example_workloads();
    sim.add_deployment(SimWorkload::new("edge", "proxy").tier("critical", "1"));
    sim.add_deployment(SimWorkload::new("apps", "batch").replicas(1));
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_nodes_matches_the_sim() {
    let Some((sim, k)) = kubectl_on_cluster().await else {
        return;
    };
    let v = k.json(&["get", "nodes", "-o", "json"]).await;
    assert_eq!(v["kind"], "List");
    let nodes: Vec<(String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let ready = n["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready")
                .unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string();
            (n["metadata"]["name"].as_str().unwrap().to_string(), ready)
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("cp-1", "True"),
        ("cp-2", "True"),
        ("w-1", "Unknown"),
        ("w-2", "True"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(nodes, want);
    // kubectl found the resource through discovery and sent the token.
    let reqs = sim.requests();
    assert!(reqs.iter().any(|r| r.path == "/api" && r.status == 200));
    assert!(
        reqs.iter()
            .any(|r| r.path == "/api/v1/nodes" && r.status == 200)
    );
    assert!(reqs.iter().all(|r| r.bearer.as_deref() == Some(TOKEN)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_labelled_deployments_across_namespaces() {
    let Some((sim, k)) = kubectl_on_cluster().await else {
        return;
    };
    let v = k
        .json(&[
            "get",
            "deployments",
            "-A",
            "-l",
            "hybrid-burst.io/tier=critical",
            "-o",
            "json",
        ])
        .await;
    let mut found: Vec<(String, String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["metadata"]["namespace"].as_str().unwrap().to_string(),
                d["metadata"]["name"].as_str().unwrap().to_string(),
                d["metadata"]["annotations"]["hybrid-burst.io/cloud-replicas"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    found.sort();
    let want = owned(&[
        ("apps", "api", "3"),
        ("apps", "web", "2"),
        ("edge", "proxy", "1"),
    ]);
    assert_eq!(found, want);
    let list = first_request(&sim, |r| r.path == "/apis/apps/v1/deployments");
    assert_eq!(
        list.query_param("labelSelector").as_deref(),
        Some("hybrid-burst.io/tier=critical")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_scale_changes_the_sims_replicas() {
    let Some((sim, k)) = kubectl_on_cluster().await else {
        return;
    };
    let out = k
        .ok(&["scale", "deployment", "web", "--replicas=3", "-n", "apps"])
        .await;
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    assert_eq!(
        sim.replicas(WorkloadKind::Deployment, "apps", "web"),
        Some(3)
    );
    let patch = first_request(&sim, |r| r.method == "PATCH");
    assert_eq!(
        patch.path,
        "/apis/apps/v1/namespaces/apps/deployments/web/scale"
    );
    assert_eq!(patch.status, 200);
    let body: Value = serde_json::from_str(&patch.body).unwrap();
    assert_eq!(body["spec"]["replicas"], 3);

    // kubectl's own read-back agrees, through the scale subresource's owner.
    let v = k
        .json(&["get", "deployment", "web", "-n", "apps", "-o", "json"])
        .await;
    assert_eq!(v["spec"]["replicas"], 3);
    assert_eq!(v["status"]["readyReplicas"], 3);

    // A statefulset too; a missing deployment gets the API server's NotFound.
    k.ok(&[
        "scale",
        "statefulset",
        "db-replica",
        "--replicas=1",
        "-n",
        "apps",
    ])
    .await;
    assert_eq!(
        sim.replicas(WorkloadKind::StatefulSet, "apps", "db-replica"),
        Some(1)
    );

    let missing = k
        .run(
            TOKEN,
            &["scale", "deployment", "nope", "--replicas=1", "-n", "apps"],
        )
        .await;
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("deployments.apps \"nope\" not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_with_a_wrong_token_is_refused() {
    let Some((sim, k)) = kubectl_on_cluster().await else {
        return;
    };
    let out = k.run("wrong-token", &["get", "nodes", "-o", "json"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the server has asked for the client to provide credentials"),
        "{err}"
    );
    assert!(sim.requests().iter().all(|r| r.status == 401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_prints_the_sims_tables() {
    let Some((_sim, k)) = kubectl_on_cluster().await else {
        return;
    };
    let out = k.ok(&["get", "nodes"]).await;
    let rows: Vec<Vec<String>> = out
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let status: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[4].clone()))
        .collect();
    let want = owned(&[
        ("NAME", "STATUS", "VERSION"),
        ("cp-1", "Ready", "v1.33.0"),
        ("cp-2", "Ready", "v1.33.0"),
        ("w-1", "NotReady", "v1.33.0"),
        ("w-2", "Ready", "v1.33.0"),
    ]);
    assert_eq!(status, want);

    let out = k.ok(&["get", "deployments", "-A"]).await;
    let rows: Vec<Vec<String>> = out
        .lines()
        .map(|l| l.split_whitespace().take(3).map(str::to_string).collect())
        .collect();
    let want: Vec<Vec<String>> = [
        ["NAMESPACE", "NAME", "READY"],
        ["apps", "api", "1/1"],
        ["apps", "batch", "1/1"],
        ["apps", "web", "0/0"],
        ["edge", "proxy", "0/0"],
    ]
    .iter()
    .map(|r| r.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(rows, want);
}
