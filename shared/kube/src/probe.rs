//! The home cluster probe: is the home Kubernetes API reachable and ready from the cloud, and
//! how many of its nodes are ready?
//!
//! It only reads (`GET /readyz`, `GET /api/v1/nodes`) and classifies what it saw into
//! [`ApiProbe`]; what that means for the site is the decision core's business.

use crate::client::{Failure, build, classify, short};
use crate::config::{ClusterConnection, HomeProbeConfig};
use async_trait::async_trait;
use burst_core::{ApiProbe, NodeCount};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use std::time::Instant;
use tokio::time::{Instant as Deadline, timeout_at};

/// Pages of the node list (a homelab has a handful; a big cluster still answers in pages).
const NODE_PAGE: u32 = 500;

/// [`burst_ports::HomeProbe`] against a real (or simulated) Kubernetes API server.
#[derive(Debug)]
pub struct HomeClusterProbe {
    connection: ClusterConnection,
}

impl HomeClusterProbe {
    /// No request is made here and no runtime is needed.
    pub fn new(config: HomeProbeConfig) -> Self {
        Self {
            connection: config.connection,
        }
    }

    /// Runs one probe within the configured timeout.
    pub async fn probe(&self) -> ApiProbe {
        let limit = self.connection.timeout;
        let deadline = Deadline::now() + limit;
        // No retries inside kube: a probe that retries a 503 for seconds hides what it saw.
        let client = match build(&self.connection, false) {
            Ok(c) => c,
            Err(e) => {
                return ApiProbe::Unknown {
                    detail: format!(
                        "cannot build the Kubernetes client: {}",
                        classify(&e).detail()
                    ),
                };
            }
        };

        let started = Instant::now();
        let ready = match timeout_at(deadline, readyz(&client)).await {
            Err(_) => {
                return ApiProbe::Unreachable {
                    detail: format!("/readyz: no answer within {} ms", limit.as_millis()),
                };
            }
            Ok(r) => r,
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(not_ready) = ready {
            return not_ready;
        }

        // Readyz answered ok: from here on nothing can make home look worse than Ready.
        let nodes = match timeout_at(deadline, count_nodes(&client)).await {
            Ok(Ok(n)) => Some(n),
            Ok(Err(f)) => {
                tracing::warn!(detail = %f.detail(), "home probe: node list failed");
                None
            }
            Err(_) => {
                tracing::warn!("home probe: node list timed out");
                None
            }
        };
        ApiProbe::Ready { latency_ms, nodes }
    }
}

#[async_trait]
impl burst_ports::HomeProbe for HomeClusterProbe {
    async fn observe(&self) -> ApiProbe {
        self.probe().await
    }
}

/// `None` when `/readyz` says `ok`, else what the probe reports.
async fn readyz(client: &kube::Client) -> Option<ApiProbe> {
    let request = match http::Request::get("/readyz").body(Vec::new()) {
        Ok(r) => r,
        Err(e) => {
            return Some(ApiProbe::Unknown {
                detail: format!("cannot build the request: {e}"),
            });
        }
    };
    match client.request_text(request).await {
        Ok(body) if body.trim() == "ok" => None,
        Ok(body) => Some(ApiProbe::NotReady {
            detail: format!("/readyz answered 200 but not \"ok\": {}", short(&body)),
        }),
        Err(e) => Some(from_failure(classify(&e))),
    }
}

pub(crate) fn from_failure(f: Failure) -> ApiProbe {
    let detail = format!("/readyz: {}", f.detail());
    match f {
        Failure::Answered { .. } => ApiProbe::NotReady { detail },
        Failure::Transport(_) => ApiProbe::Unreachable { detail },
        // Our token or role is wrong, or our side broke: says nothing about home.
        Failure::Refused { .. } | Failure::Other(_) => ApiProbe::Unknown { detail },
    }
}

async fn count_nodes(client: &kube::Client) -> Result<NodeCount, Failure> {
    let api: Api<Node> = Api::all(client.clone());
    let mut params = ListParams::default().limit(NODE_PAGE);
    let (mut ready, mut total) = (0u32, 0u32);
    loop {
        let page = api.list(&params).await.map_err(|e| classify(&e))?;
        for node in &page.items {
            total = total.saturating_add(1);
            if node_ready(node) {
                ready = ready.saturating_add(1);
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(NodeCount { ready, total })
}

/// A node is ready when its `Ready` condition is `True` (the kubelet reports it).
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // The shape a real API server returns (trimmed to what matters).
    const NODE_LIST: &str = r#"{
      "kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "123"},
      "items": [
        {"metadata": {"name": "cp-1"}, "status": {"conditions": [
          {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
          {"type": "Ready", "status": "True", "reason": "KubeletReady"}]}},
        {"metadata": {"name": "w-1"}, "status": {"conditions": [
          {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]}},
        {"metadata": {"name": "w-2"}, "status": {"conditions": [
          {"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}},
        {"metadata": {"name": "w-3"}}
      ]}"#;

    #[test]
    fn only_ready_true_counts() {
        let list: k8s_openapi::List<Node> = serde_json::from_str(NODE_LIST).unwrap();
        let ready: Vec<bool> = list.items.iter().map(node_ready).collect();
        assert_eq!(ready, vec![true, false, false, false]);
    }

    #[test]
    fn failures_map_to_probe_states() {
        let p = from_failure(Failure::Answered {
            code: 500,
            message: "[-]etcd failed\nreadyz check failed".into(),
        });
        assert_eq!(
            p,
            ApiProbe::NotReady {
                detail: "/readyz: HTTP 500: [-]etcd failed; readyz check failed".into()
            }
        );
        assert!(matches!(
            from_failure(Failure::Refused {
                code: 401,
                message: "Unauthorized".into()
            }),
            ApiProbe::Unknown { .. }
        ));
        assert!(matches!(
            from_failure(Failure::Transport("connection refused".into())),
            ApiProbe::Unreachable { .. }
        ));
    }
}
