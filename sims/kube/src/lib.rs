//! A simulated Kubernetes API server: enough of kube-apiserver for `kube::Client` and the real
//! `kubectl` to probe health, read nodes and namespaces, find Deployments and StatefulSets by
//! label and scale them through the `scale` subresource.
//!
//! One instance plays the home cluster (nodes, `/readyz`), another the cloud cluster
//! (workloads). It answers with k8s-openapi types and the API server's `Status` errors,
//! checks the bearer token, content types, label selectors, resource versions and replica
//! counts like the real server, keeps its state for inspection and records every request.
//! Failure injection: `/readyz` failing or hanging, RBAC refusing everything, and the server
//! refusing connections (and coming back on the same port).
//!
//! What it does not do: watches, create/update/delete of objects, JSON patch and server-side
//! apply, protobuf, pods, authentication other than one bearer token.

mod api;
mod objects;
mod selector;
mod table;
mod tls;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use burst_kube::{TIER_LABEL, WorkloadKind};

/// How the sim is started.
#[derive(Clone, Debug, Default)]
pub struct SimOptions {
    /// When set, every request must carry `Authorization: Bearer <token>` (401 otherwise).
    pub token: Option<String>,
    /// The user the token authenticates as (shown in 403 messages).
    pub user: Option<String>,
    /// Serve https with a certificate for `127.0.0.1` and `localhost` from a CA made at start
    /// ([`SimHandle::ca_pem`]). `kubectl` sends tokens only over TLS.
    pub tls: bool,
}

impl SimOptions {
    /// Plain http, requests must carry this bearer token.
    pub fn with_token(token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            ..Self::default()
        }
    }

    /// Https, requests must carry this bearer token.
    pub fn tls_with_token(token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            tls: true,
            ..Self::default()
        }
    }
}

/// What `/readyz` (and `/healthz`) answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readyz {
    /// 200 `ok`.
    Ok,
    /// 500 with the failed check listed, like an API server that lost etcd.
    Failing,
    /// No answer until set back to `Ok`/`Failing` or the connection closes (timeouts).
    Hang,
    /// This status and body instead of the API server's: what a load balancer or proxy in
    /// front of it may answer (e.g. HAProxy's 503 page when no API server is up, or a 200 with
    /// a body other than `ok`). Kubernetes documents the status code as the signal.
    Answer {
        status: u16,
        content_type: &'static str,
        body: &'static str,
    },
}

/// A workload to put on the simulated cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimWorkload {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub replicas: i32,
}

impl SimWorkload {
    /// A workload with 0 replicas and the label `app.kubernetes.io/name=<name>` (its selector).
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            replicas: 0,
        }
    }
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_string(), value.to_string());
        self
    }
    pub fn replicas(mut self, n: i32) -> Self {
        self.replicas = n;
        self
    }
    /// Shorthand for the migration contract: the tier label and the cloud-replicas annotation.
    pub fn tier(self, tier: &str, cloud_replicas: &str) -> Self {
        self.label(burst_kube::TIER_LABEL, tier)
            .annotation(burst_kube::CLOUD_REPLICAS_ANNOTATION, cloud_replicas)
    }
}

/// A workload as the sim holds it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadState {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The request log keeps this many entries (oldest dropped): a sim running for days inside
/// `func-emulator` must not grow without bound.
pub const REQUEST_LOG_MAX: usize = 10_000;

/// One request as the sim received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Arrival order, from 1, never reused (also after `clear_requests`).
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub user_agent: Option<String>,
    /// The bearer token sent, if any (this is a test double: it keeps what it saw).
    pub bearer: Option<String>,
    pub body: String,
    /// The HTTP status the sim answered.
    pub status: u16,
}

impl RecordedRequest {
    /// The value of one query parameter (percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<String> {
        api::query_pairs(self.query.as_deref())
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// The cluster's objects and the injected failures.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) resource_version: u64,
    pub(crate) nodes: BTreeMap<String, Node>,
    pub(crate) namespaces: BTreeMap<String, Namespace>,
    pub(crate) deployments: BTreeMap<(String, String), Deployment>,
    pub(crate) statefulsets: BTreeMap<(String, String), StatefulSet>,
    pub(crate) forbidden: bool,
    pub(crate) scale_writes_failing: bool,
    pub(crate) next_uid: u64,
}

impl Cluster {
    pub(crate) fn bump(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }
    pub(crate) fn uid(&mut self) -> String {
        self.next_uid += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_uid)
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) options: SimOptions,
    pub(crate) cluster: Mutex<Cluster>,
    pub(crate) log: Mutex<std::collections::VecDeque<RecordedRequest>>,
    pub(crate) next_seq: std::sync::atomic::AtomicU64,
    pub(crate) readyz: watch::Sender<Readyz>,
    pub(crate) tls: Option<tls::SimTls>,
}

impl Shared {
    pub(crate) fn cluster(&self) -> MutexGuard<'_, Cluster> {
        // A panicking handler must not take the sim down with a poisoned lock.
        self.cluster.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn log(&self) -> MutexGuard<'_, std::collections::VecDeque<RecordedRequest>> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running sim. Stops when dropped or on [`SimHandle::shutdown`].
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<JoinHandle<()>>>,
}

/// Starts a sim on a free port of 127.0.0.1 with the default namespaces and no nodes.
pub async fn start(options: SimOptions) -> std::io::Result<SimHandle> {
    let (readyz, _) = watch::channel(Readyz::Ok);
    let tls = if options.tls {
        Some(tls::SimTls::generate()?)
    } else {
        None
    };
    let shared = Arc::new(Shared {
        tls,
        options,
        cluster: Mutex::new(Cluster {
            resource_version: 1000,
            nodes: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            deployments: BTreeMap::new(),
            statefulsets: BTreeMap::new(),
            forbidden: false,
            scale_writes_failing: false,
            next_uid: 0,
        }),
        log: Mutex::new(std::collections::VecDeque::new()),
        next_seq: std::sync::atomic::AtomicU64::new(1),
        readyz,
    });
    {
        let mut c = shared.cluster();
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            objects::ensure_namespace(&mut c, ns);
        }
    }
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener, shared.clone()));
    Ok(SimHandle {
        addr,
        shared,
        server: Mutex::new(Some(server)),
    })
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // Coming back on the same port right after stopping must not fail on TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections until aborted; aborting drops the listener (new connections are
/// refused) and the `JoinSet`, which aborts every open connection too.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let app = api::router(shared.clone());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let acceptor = shared.tls.as_ref().map(|t| t.acceptor.clone());
                connections.spawn(async move {
                    let builder = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    // A client that goes away (or fails the handshake) is not worth reporting.
                    match acceptor {
                        None => {
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = builder.serve_connection(io, service).await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else { return };
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = builder.serve_connection(io, service).await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

impl SimHandle {
    fn scheme(&self) -> &'static str {
        if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://` with TLS.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }

    /// The CA that signed the sim's certificate (PEM), when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.shared.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// The base URL as a URI, ready for the probe's and migrator's configs.
    pub fn uri(&self) -> http::Uri {
        // A socket address always makes a valid authority.
        http::Uri::builder()
            .scheme(self.scheme())
            .authority(self.addr.to_string())
            .path_and_query("/")
            .build()
            .unwrap_or_default()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn server(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops listening and drops every open connection: clients get "connection refused".
    pub async fn stop_listening(&self) {
        let task = self.server().take();
        if let Some(task) = task {
            task.abort();
            // Wait until the listener is really closed.
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn resume_listening(&self) -> std::io::Result<()> {
        let mut server = self.server();
        if server.is_some() {
            return Ok(());
        }
        let listener = bind(self.addr)?;
        *server = Some(tokio::spawn(serve(listener, self.shared.clone())));
        Ok(())
    }

    /// Whether the sim is accepting connections.
    pub fn is_listening(&self) -> bool {
        self.server().is_some()
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        self.stop_listening().await;
    }

    /// What `/readyz` answers from now on.
    pub fn set_readyz(&self, mode: Readyz) {
        self.shared.readyz.send_replace(mode);
    }

    /// RBAC refuses everything (403) for the authenticated user; `false` allows again.
    pub fn set_forbidden(&self, forbidden: bool) {
        self.shared.cluster().forbidden = forbidden;
    }

    /// Scale writes (PATCH/PUT on `.../scale`) fail with 500 `etcdserver: request timed out`.
    pub fn set_scale_writes_failing(&self, failing: bool) {
        self.shared.cluster().scale_writes_failing = failing;
    }

    /// Replaces the node list: names and whether each node is Ready.
    pub fn set_nodes(&self, nodes: &[(&str, bool)]) {
        let mut c = self.shared.cluster();
        c.nodes.clear();
        for (name, ready) in nodes {
            let node = objects::node(&mut c, name, *ready);
            c.nodes.insert((*name).to_string(), node);
        }
    }

    /// Flips one node's Ready condition; `false` if there is no such node.
    pub fn set_node_ready(&self, name: &str, ready: bool) -> bool {
        let mut c = self.shared.cluster();
        if !c.nodes.contains_key(name) {
            return false;
        }
        let node = objects::node(&mut c, name, ready);
        c.nodes.insert(name.to_string(), node);
        true
    }

    /// Adds a namespace (workloads add theirs on their own).
    pub fn add_namespace(&self, name: &str) {
        objects::ensure_namespace(&mut self.shared.cluster(), name);
    }

    /// Adds (or replaces) a Deployment; its namespace is created if needed.
    pub fn add_deployment(&self, w: SimWorkload) {
        let mut c = self.shared.cluster();
        objects::ensure_namespace(&mut c, &w.namespace);
        let d = objects::deployment(&mut c, &w);
        c.deployments.insert((w.namespace, w.name), d);
    }

    /// Adds (or replaces) a StatefulSet; its namespace is created if needed.
    pub fn add_statefulset(&self, w: SimWorkload) {
        let mut c = self.shared.cluster();
        objects::ensure_namespace(&mut c, &w.namespace);
        let s = objects::statefulset(&mut c, &w);
        c.statefulsets.insert((w.namespace, w.name), s);
    }

    /// The example workloads of the migration contract in namespace `apps`: Deployments `web`
    /// (critical, 2 in the cloud, 0 now) and `api` (critical, 3 in the cloud, 1 now), and the
    /// StatefulSet `db-replica` (stateful, 1 in the cloud, 0 now).
    pub fn add_example_workloads(&self) {
        self.add_deployment(SimWorkload::new("apps", "web").tier("critical", "2"));
        let api = SimWorkload::new("apps", "api").tier("critical", "3");
        self.add_deployment(api.replicas(1));
        self.add_statefulset(SimWorkload::new("apps", "db-replica").tier("stateful", "1"));
    }

    /// A workload's `spec.replicas`, or `None` if it does not exist.
    pub fn replicas(&self, kind: WorkloadKind, namespace: &str, name: &str) -> Option<i32> {
        let c = self.shared.cluster();
        let key = (namespace.to_string(), name.to_string());
        match kind {
            WorkloadKind::Deployment => c
                .deployments
                .get(&key)
                .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
            WorkloadKind::StatefulSet => c
                .statefulsets
                .get(&key)
                .map(|s| s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
        }
    }

    /// Every Deployment and StatefulSet, by kind, namespace and name.
    pub fn workloads(&self) -> Vec<WorkloadState> {
        let c = self.shared.cluster();
        let state =
            |kind, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, replicas| {
                WorkloadState {
                    kind,
                    namespace: meta.namespace.clone().unwrap_or_default(),
                    name: meta.name.clone().unwrap_or_default(),
                    replicas,
                    labels: meta.labels.clone().unwrap_or_default(),
                    annotations: meta.annotations.clone().unwrap_or_default(),
                }
            };
        let deployments = c.deployments.values().map(|d| {
            let n = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            state(WorkloadKind::Deployment, &d.metadata, n)
        });
        let statefulsets = c.statefulsets.values().map(|s| {
            let n = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            state(WorkloadKind::StatefulSet, &s.metadata, n)
        });
        deployments.chain(statefulsets).collect()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log().iter().cloned().collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.log().clear();
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(task) = self.server().take() {
            task.abort();
        }
    }
}
