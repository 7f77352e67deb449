//! The heartbeat's inside view of the on-prem cluster: nodes Ready / total, from the
//! Kubernetes API as the agent sees it (in-cluster service account, a kubeconfig, or a URL).

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::{Config, KubeSource};

/// What the cluster API told us (or that it did not answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsideView {
    pub nodes_ready: u32,
    pub nodes_total: u32,
    /// The API answered the node list.
    pub api_ok: bool,
}

impl InsideView {
    /// No answer: 0/0, not "0 of N ready". The agent cannot see the nodes, which says nothing
    /// about them (Unknown is not Down); `api_ok: false` carries the signal.
    pub const UNKNOWN: InsideView = InsideView {
        nodes_ready: 0,
        nodes_total: 0,
        api_ok: false,
    };
}

/// Asks the API for the nodes; any failure is logged and reported as [`InsideView::UNKNOWN`].
pub async fn inside_view(config: &Config) -> InsideView {
    if config.kube_source == KubeSource::None {
        return InsideView::UNKNOWN;
    }
    match probe_nodes(config).await {
        Ok(view) => view,
        Err(e) => {
            tracing::warn!(error = %e, "kubernetes API: no node list; reporting api_ok=false");
            InsideView::UNKNOWN
        }
    }
}

/// Lists the nodes within `kube_timeout_ms`, without logging: the view, or why not.
pub async fn probe_nodes(config: &Config) -> Result<InsideView, String> {
    let limit = config.kube_timeout();
    match tokio::time::timeout(limit, list_nodes(config)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
    }
}

async fn client_config(config: &Config) -> Result<kube::Config, String> {
    let mut kc = match config.kube_source {
        KubeSource::Infer => kube::Config::infer().await.map_err(|e| e.to_string())?,
        KubeSource::InCluster => kube::Config::incluster().map_err(|e| e.to_string())?,
        KubeSource::Kubeconfig => {
            let path = config
                .kubeconfig
                .as_deref()
                .ok_or("kube_source = \"kubeconfig\" needs kubeconfig (BURST_AGENT_KUBECONFIG)")?;
            let file = Kubeconfig::read_from(path).map_err(|e| e.to_string())?;
            let options = KubeConfigOptions {
                context: (!config.kube_context.is_empty()).then(|| config.kube_context.clone()),
                ..KubeConfigOptions::default()
            };
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| e.to_string())?
        }
        KubeSource::Url => {
            let url = config
                .kube_url
                .parse()
                .map_err(|e| format!("kube_url {:?}: {e}", config.kube_url))?;
            kube::Config::new(url)
        }
        KubeSource::None => return Err("no kube source".to_string()),
    };
    kc.connect_timeout = Some(config.kube_timeout());
    kc.read_timeout = Some(config.kube_timeout());
    Ok(kc)
}

async fn list_nodes(config: &Config) -> Result<InsideView, String> {
    let kc = client_config(config).await?;
    let client = kube::Client::try_from(kc).map_err(|e| e.to_string())?;
    let nodes = Api::<Node>::all(client)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let total = nodes.items.len();
    let ready = nodes.items.iter().filter(|n| is_ready(n)).count();
    Ok(InsideView {
        nodes_ready: u32::try_from(ready).unwrap_or(u32::MAX),
        nodes_total: u32::try_from(total).unwrap_or(u32::MAX),
        api_ok: true,
    })
}

/// A node counts as ready when its `Ready` condition is `True`.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
