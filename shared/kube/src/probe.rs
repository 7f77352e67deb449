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

/// `None` when `/readyz` answers 200, else what the probe reports.
async fn readyz(client: &kube::Client) -> Option<ApiProbe> {
    let request = match http::Request::get("/readyz").body(kube::client::Body::from(Vec::new())) {
        Ok(r) => r,
        Err(e) => {
            return Some(ApiProbe::Unknown {
                detail: format!("cannot build the request: {e}"),
            });
        }
    };
    // `send`, not `request_text`: the status code is the answer, whatever the body says.
    let response = match client.send(request).await {
        Ok(r) => r,
        Err(e) => return Some(from_failure(classify(&e))),
    };
    let status = response.status().as_u16();
    match response.into_body().collect_bytes().await {
        Ok(body) => readyz_answer(status, &body),
        // The answer broke off: the path to home is not sound.
        Err(e) => Some(ApiProbe::Unreachable {
            detail: format!(
                "/readyz: HTTP {status}, then the body failed: {}",
                classify(&e).detail()
            ),
        }),
    }
}

/// What a `/readyz` answer means. The status code is the signal ("Machines that check the
/// healthz/livez/readyz of the API server should rely on the HTTP status code. A status code
/// 200 indicates the API server is healthy/live/ready": kubernetes.io, "Kubernetes API health
/// endpoints"); the body is for people (`ok`, or the list of checks) and goes into the detail.
pub(crate) fn readyz_answer(status: u16, body: &[u8]) -> Option<ApiProbe> {
    if status == 200 {
        if body.trim_ascii() != b"ok" {
            tracing::debug!(body = %short(&String::from_utf8_lossy(body)), "/readyz: 200");
        }
        return None;
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    // The API server's own refusals (401/403) are a JSON Status; health failures are text.
    let message = serde_json::from_slice::<kube::core::Status>(body)
        .ok()
        .map(|s| {
            if s.message.is_empty() {
                s.reason
            } else {
                s.message
            }
        })
        .filter(|m| !m.is_empty())
        .unwrap_or(if text.is_empty() {
            "(empty body)".to_string()
        } else {
            text
        });
    let failure = if status == 401 || status == 403 {
        Failure::Refused {
            code: status,
            message,
        }
    } else {
        Failure::Answered {
            code: status,
            message,
        }
    };
    Some(from_failure(failure))
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

    /// The status code decides, the body is kept for people: bodies as kube-apiserver writes
    /// them (kubernetes.io, "Kubernetes API health endpoints": `ok`, or with `?verbose` the
    /// list of checks ending "readyz check passed"; on failure the list ending "readyz check
    /// failed"), and what a proxy in front may answer.
    #[test]
    fn readyz_answers_by_status_code() {
        assert_eq!(readyz_answer(200, b"ok"), None);
        let verbose = b"[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]poststarthook/start-kube-apiserver-admission-initializer ok\nreadyz check passed\n";
        assert_eq!(readyz_answer(200, verbose), None);
        assert_eq!(readyz_answer(200, b""), None);
        assert_eq!(
            readyz_answer(500, b"[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n"),
            Some(ApiProbe::NotReady {
                detail: "/readyz: HTTP 500: [+]ping ok; [-]etcd failed: reason withheld; readyz check failed".into()
            })
        );
        // A body that says ok does not make a failure status ready.
        assert_eq!(
            readyz_answer(503, b"ok"),
            Some(ApiProbe::NotReady {
                detail: "/readyz: HTTP 503: ok".into()
            })
        );
        assert_eq!(
            readyz_answer(
                401,
                br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
            ),
            Some(ApiProbe::Unknown {
                detail: "/readyz: HTTP 401: Unauthorized".into()
            })
        );
        assert_eq!(
            readyz_answer(404, b""),
            Some(ApiProbe::NotReady {
                detail: "/readyz: HTTP 404: (empty body)".into()
            })
        );
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
