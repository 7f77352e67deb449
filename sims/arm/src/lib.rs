//! A simulated Azure: one VM Scale Set behind ARM, the App Service managed identity endpoint
//! and the Entra ID client-credentials endpoint, in one axum server on 127.0.0.1.
//!
//! It checks what it receives like the real services do — bearer tokens it issued (expiry,
//! audience), `api-version`, content type, body size, the sparse PATCH body, `If-Match`,
//! concurrent operations — and answers with Azure's status codes, headers and error bodies.
//! Long-running writes, booting instances and Spot evictions play out in real (tokio/std)
//! time; every duration is configurable so tests use milliseconds.
//!
//! Routes (fixed segments case-insensitive, as in ARM):
//! - `GET  /msi/token?resource=..&api-version=2019-08-01` (header `X-IDENTITY-HEADER`)
//! - `POST /{tenant}/oauth2/v2.0/token` (form: client credentials)
//! - `GET|PATCH {scale set id}`, `GET {id}/instanceView`, `GET {id}/virtualMachines`
//!   (`$expand=instanceView`, paged with `nextLink`), `GET {id}/virtualMachines/{n}`
//!   (`$expand=instanceView`), `GET {id}/virtualMachines/{n}/instanceView`,
//!   `POST {id}/virtualMachines/{n}/simulateEviction`
//! - `GET /subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/operations/{op}`
//!   (`Azure-AsyncOperation`; with `monitor=true` it behaves as the `Location` URL)
//!
//! Power states live in each VM's own instance view only: the scale set's `instanceView`
//! summary counts provisioning states, as real responses do (azure-rest-api-specs issue
//! #3593 quotes one: `"statusesSummary":[{"code":"ProvisioningState/succeeded","count":2}]`).
//! A Flexible scale set (`SimConfig::orchestration_mode`) answers the Uniform-only routes with
//! 400 `BadRequest` "Operation 'VirtualMachineScaleSets.virtualMachines.GET' is not allowed on
//! Virtual Machine Scale Set '...'" (the message quoted in microsoft/OMS-Agent-for-Linux PR
//! #1475 and hashicorp/nomad-autoscaler issue #1096).

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use burst_arm::ScaleSetId;
use burst_arm::settings::ArmConfig;
use burst_arm::token::{ARM_RESOURCE, ARM_SCOPE, Credential, IDENTITY_API_VERSION};
use burst_arm::wire::ceil_secs;
use burst_sim_kit::scale_set::{InstanceState as VmState, ScaleSet};
use burst_sim_kit::{FaultQueue, RequestLog, Server, random_hex};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use url::Url;

/// The largest capacity a scale set accepts.
pub const MAX_CAPACITY: u32 = 1000;
/// The request log keeps at most this many entries (the older half is dropped when full).
pub const MAX_LOG: usize = 10_000;

/// How the simulated cloud starts.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub scale_set: ScaleSetId,
    pub location: String,
    pub sku_name: String,
    /// Instances at start, already running.
    pub initial_capacity: u32,
    /// From created to `PowerState/running`.
    pub boot_time: Duration,
    /// How long a capacity write stays `InProgress` (0 = the PATCH completes synchronously
    /// with 200 and the body).
    pub operation_duration: Duration,
    /// The `X-IDENTITY-HEADER` the identity endpoint requires.
    pub identity_header: String,
    /// Client ids of user-assigned identities the identity endpoint knows.
    pub user_assigned_client_ids: Vec<String>,
    /// A service principal the token endpoint knows.
    pub service_principal: Option<SimServicePrincipal>,
    /// Lifetime of issued tokens.
    pub token_lifetime: Duration,
    /// Request bodies larger than this get 413.
    pub max_body_bytes: usize,
    /// The Compute api-versions accepted.
    pub api_versions: Vec<String>,
    /// `billingProfile.maxPrice` (-1 = up to the on-demand price).
    pub max_price: f64,
    /// `Uniform` (the default) or `Flexible`.
    pub orchestration_mode: String,
    /// VMs per page of the VM list; a longer list answers `nextLink` (Azure pages this list;
    /// its page size is not documented).
    pub vm_page_size: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimServicePrincipal {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// The subscription of the default simulated scale set.
pub const SIM_SUBSCRIPTION: &str = "00000000-0000-4000-8000-000000000000";

impl Default for SimConfig {
    fn default() -> Self {
        #[allow(clippy::expect_used)]
        let scale_set = ScaleSetId::new(SIM_SUBSCRIPTION, "rg-burst", "vmss-burst")
            .expect("constant id is valid");
        Self {
            scale_set,
            location: "westeurope".into(),
            sku_name: "Standard_D2s_v3".into(),
            initial_capacity: 0,
            boot_time: Duration::from_secs(90),
            operation_duration: Duration::from_secs(5),
            identity_header: "sim-identity-header".into(),
            user_assigned_client_ids: Vec::new(),
            service_principal: None,
            token_lifetime: Duration::from_secs(3600),
            max_body_bytes: 64 * 1024,
            api_versions: ["2024-07-01", "2024-11-01", "2025-04-01", "2025-11-01"]
                .map(String::from)
                .to_vec(),
            max_price: -1.0,
            orchestration_mode: "Uniform".into(),
            vm_page_size: 100,
        }
    }
}

/// Which requests an injected fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Any scale set request (GET, PATCH, POST).
    Any,
    /// GETs of the scale set, its instance view and its VMs.
    Read,
    /// PATCHes of the scale set.
    Write,
}

/// A failure the sim answers with instead of doing the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with this `Retry-After` (absent if `None`), `x-ms-ratelimit-remaining-resource:
    /// Microsoft.Compute/HighCostGet30Min;0`, and the error body wrapped in `{"error":..}` or
    /// bare (`{"code":"OperationNotAllowed",..}`, as Compute sometimes sends it).
    Throttle {
        retry_after: Option<String>,
        bare_body: bool,
    },
    /// Another writer changes the scale set just before the request is handled (the etag
    /// moves on), so a PATCH carrying the etag read before meets a real 412.
    ConcurrentWrite,
    /// The request is carried out, but the answer comes only after this delay (a slow ARM:
    /// a client with a shorter timeout gives up although the write happened).
    Slow { delay: Duration },
    /// Any status with an ARM error body.
    Error {
        status: u16,
        code: String,
        message: String,
    },
}

impl Fault {
    pub fn throttle(retry_after_s: u64) -> Self {
        Fault::Throttle {
            retry_after: Some(retry_after_s.to_string()),
            bare_body: false,
        }
    }
    /// 409 `Conflict`, as when another operation is running.
    pub fn conflict() -> Self {
        Fault::Error {
            status: 409,
            code: "Conflict".into(),
            message: "Operation 'Update VMSS' is not allowed since another operation is in progress on the Virtual Machine Scale Set.".into(),
        }
    }
    /// 409 `OperationNotAllowed`, as when the scale set is marked for deletion.
    pub fn operation_not_allowed() -> Self {
        Fault::Error {
            status: 409,
            code: "OperationNotAllowed".into(),
            message: "Operation 'Update VMSS' is not allowed on the Virtual Machine Scale Set since it is marked for deletion.".into(),
        }
    }
    pub fn server_error() -> Self {
        Fault::Error {
            status: 500,
            code: "InternalServerError".into(),
            message: "An internal execution error occurred. Please retry later.".into(),
        }
    }
}

/// One request as the sim saw it. Secrets are redacted: `authorization` and
/// `x-identity-header` values become `***` (the scheme is kept), `client_secret` in a form
/// body becomes `***`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lower-case names: content-type, content-length, if-match, authorization,
    /// x-identity-header, accept.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// What the sim answered.
    pub status: u16,
}

impl LoggedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    /// Whether this was a request to one of the token endpoints.
    pub fn is_token_request(&self) -> bool {
        self.path.eq_ignore_ascii_case("/msi/token") || self.path.ends_with("/oauth2/v2.0/token")
    }
}

/// The scale set as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimSnapshot {
    pub capacity: u32,
    pub running: u32,
    pub starting: u32,
    /// The current etag value without quotes.
    pub etag: u64,
    pub provisioning_state: String,
    pub operation_in_progress: bool,
    /// Instances evicted so far.
    pub evicted: u32,
    /// Instances whose allocation failed (see [`SimHandle::set_allocation_failure`]).
    pub failed: u32,
}

/// One VM: created, booting until its ready time, then running (or failed to allocate).
type Instance = burst_sim_kit::scale_set::Instance<Instant>;

/// The error of an allocation that found no capacity (Azure's AllocationFailed text).
const ALLOCATION_FAILED: (&str, &str) = (
    "AllocationFailed",
    "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance",
);

#[derive(Clone, Debug)]
struct Operation {
    id: String,
    started: Instant,
    started_wall: SystemTime,
    duration: Duration,
    /// Set when the operation was preempted by the control API: failed at once.
    failed: Option<(String, String)>,
    /// The error it ends with when its duration has passed (an allocation failure).
    fails_with: Option<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpStatus {
    InProgress,
    Succeeded,
    Failed,
}

impl Operation {
    fn status(&self, now: Instant) -> OpStatus {
        if self.failed.is_some() {
            OpStatus::Failed
        } else if self
            .started
            .checked_add(self.duration)
            .is_some_and(|end| now >= end)
        {
            if self.fails_with.is_some() {
                OpStatus::Failed
            } else {
                OpStatus::Succeeded
            }
        } else {
            OpStatus::InProgress
        }
    }
    /// The error of a failed operation.
    fn error(&self, now: Instant) -> Option<&(String, String)> {
        match self.status(now) {
            OpStatus::Failed => self.failed.as_ref().or(self.fails_with.as_ref()),
            _ => None,
        }
    }
    fn end_wall(&self) -> SystemTime {
        self.started_wall
            .checked_add(self.duration)
            .unwrap_or(self.started_wall)
    }
}

#[derive(Clone, Debug)]
struct IssuedToken {
    expires: SystemTime,
    audience: String,
}

#[derive(Debug)]
struct World {
    cfg: SimConfig,
    etag: u64,
    scale_set: ScaleSet<Instant>,
    operations: Vec<Operation>,
    tokens: HashMap<String, IssuedToken>,
    faults: FaultQueue<Target, Fault>,
    log: RequestLog<LoggedRequest>,
    created_wall: SystemTime,
    created_at: Instant,
    /// VMs added by a write fail to allocate while this is set.
    allocation_failure: bool,
}

impl World {
    fn running_op(&self, now: Instant) -> Option<&Operation> {
        self.operations
            .iter()
            .rev()
            .find(|o| o.status(now) == OpStatus::InProgress)
    }
    /// `Updating` while an operation runs, `Failed` after one that failed (other than by
    /// preemption: a newer operation runs then), else `Succeeded`.
    fn provisioning_state(&self, now: Instant) -> &'static str {
        if self.running_op(now).is_some() {
            return "Updating";
        }
        match self.operations.last() {
            Some(op) if op.failed.is_none() && op.error(now).is_some() => "Failed",
            _ => "Succeeded",
        }
    }
    fn vm_state(&self, i: &Instance, now: Instant) -> VmState {
        ScaleSet::state(i, now)
    }
    fn capacity(&self) -> u32 {
        self.scale_set.capacity()
    }
    /// The wall-clock time of an instant of this sim's clock.
    fn wall(&self, at: Instant) -> SystemTime {
        self.created_wall + at.saturating_duration_since(self.created_at)
    }
    fn is_flexible(&self) -> bool {
        self.cfg.orchestration_mode.eq_ignore_ascii_case("flexible")
    }
    /// Adds or removes instances so there are `n` (a new etag); new ones are running at
    /// `ready_at`, or fail to allocate then if `fail`.
    fn resize(&mut self, n: u32, ready_at: Instant, fail: bool) {
        self.scale_set.resize(n, Instant::now(), ready_at, fail);
        self.etag += 1;
    }
    fn take_fault(&mut self, target: Target) -> Option<Fault> {
        self.faults.take(|t| *t == Target::Any || *t == target)
    }
}

#[derive(Debug)]
struct Shared {
    world: Mutex<World>,
    /// Known once the server listens; the answers' links point at it.
    base_url: OnceLock<String>,
}

impl Shared {
    fn world(&self) -> MutexGuard<'_, World> {
        // A panic elsewhere must not make the sim unusable for inspection.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn base_url(&self) -> &str {
        self.base_url.get().map(String::as_str).unwrap_or_default()
    }
}

/// A running sim. Stops on [`SimHandle::shutdown`] or drop; its state stays readable after.
#[derive(Debug)]
pub struct SimHandle {
    shared: Arc<Shared>,
    server: Server,
}

/// Starts the sim on a free port of 127.0.0.1.
pub async fn start(config: SimConfig) -> std::io::Result<SimHandle> {
    let now = Instant::now();
    let mut world = World {
        etag: 0,
        scale_set: ScaleSet::default(),
        operations: Vec::new(),
        tokens: HashMap::new(),
        faults: FaultQueue::default(),
        log: RequestLog::with_max(MAX_LOG),
        created_wall: SystemTime::now(),
        created_at: now,
        allocation_failure: false,
        cfg: config,
    };
    // Initial instances are already up.
    world.resize(world.cfg.initial_capacity.min(MAX_CAPACITY), now, false);
    world.etag = 1;
    let shared = Arc::new(Shared {
        world: Mutex::new(world),
        base_url: OnceLock::new(),
    });
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(shared.clone());
    let server = Server::start(app).await?;
    let _ = shared.base_url.set(server.base_url().to_string());
    Ok(SimHandle { shared, server })
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`: the ARM endpoint and the token authority.
    pub fn base_url(&self) -> String {
        self.server.base_url().to_string()
    }
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }
    /// The managed identity endpoint (`IDENTITY_ENDPOINT`).
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.base_url())
    }
    /// The `IDENTITY_HEADER` value the sim expects.
    pub fn identity_header(&self) -> String {
        self.shared.world().cfg.identity_header.clone()
    }
    pub fn scale_set_id(&self) -> ScaleSetId {
        self.shared.world().cfg.scale_set.clone()
    }

    /// The settings that point the real client at this sim (managed identity).
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                burst_arm::settings::SCALE_SET_ID,
                self.scale_set_id().to_string(),
            ),
            (burst_arm::settings::ENDPOINT, self.base_url()),
            (
                burst_arm::settings::IDENTITY_ENDPOINT,
                self.identity_endpoint(),
            ),
            (burst_arm::settings::IDENTITY_HEADER, self.identity_header()),
        ]
    }

    /// A client config for this sim with the managed identity credential (whose endpoint and
    /// header `azure_identity` reads from the environment: see [`SimHandle::settings`]).
    pub fn arm_config(&self) -> ArmConfig {
        #[allow(clippy::expect_used)]
        let base = Url::parse(&self.base_url()).expect("sim URL parses");
        let mut cfg = ArmConfig::new(
            self.scale_set_id(),
            Credential::ManagedIdentity { client_id: None },
        );
        cfg.endpoint = base;
        cfg
    }

    pub fn snapshot(&self) -> SimSnapshot {
        let now = Instant::now();
        let w = self.shared.world();
        let counts = w.scale_set.counts(now);
        let (running, starting, failed) = (counts.running, counts.booting, counts.failed);
        SimSnapshot {
            capacity: w.capacity(),
            running,
            starting,
            etag: w.etag,
            provisioning_state: w.provisioning_state(now).to_string(),
            operation_in_progress: w.running_op(now).is_some(),
            evicted: w.scale_set.evicted(),
            failed,
        }
    }
    pub fn capacity(&self) -> u32 {
        self.shared.world().capacity()
    }
    pub fn running(&self) -> u32 {
        self.snapshot().running
    }

    /// Sets the capacity directly (as if it had always been so): instances are added already
    /// running, or removed; the etag changes.
    pub fn set_capacity(&self, n: u32) {
        let now = Instant::now();
        self.shared.world().resize(n.min(MAX_CAPACITY), now, false);
    }
    /// Evicts up to `n` instances (newest first); with the Delete policy they are deleted and
    /// the capacity drops. Returns the evicted instance ids.
    pub fn evict(&self, n: u32) -> Vec<u32> {
        let mut w = self.shared.world();
        let ids = w.scale_set.evict_newest(n, None);
        w.etag += ids.len() as u64;
        ids
    }
    pub fn set_boot_time(&self, d: Duration) {
        self.shared.world().cfg.boot_time = d;
    }
    pub fn set_operation_duration(&self, d: Duration) {
        self.shared.world().cfg.operation_duration = d;
    }
    pub fn set_token_lifetime(&self, d: Duration) {
        self.shared.world().cfg.token_lifetime = d;
    }
    /// While on, the VMs a capacity write adds find no Spot capacity: once the operation ends
    /// it ends `Failed` with `AllocationFailed`, each new VM's instance view shows
    /// `ProvisioningState/failed/AllocationFailed` and `PowerState/deallocated`, and the scale
    /// set's `provisioningState` reads `Failed` until a later write succeeds. The capacity
    /// stays as written: a scale-out that looks done but runs nothing.
    pub fn set_allocation_failure(&self, on: bool) {
        self.shared.world().allocation_failure = on;
    }
    /// Makes every issued token invalid (ARM answers 401 `InvalidAuthenticationToken`).
    pub fn revoke_tokens(&self) {
        self.shared.world().tokens.clear();
    }
    /// Ends the running operation as `Failed` with `OperationPreempted`. Returns whether an
    /// operation was running.
    pub fn preempt_operation(&self) -> bool {
        let now = Instant::now();
        let mut w = self.shared.world();
        match w
            .operations
            .iter_mut()
            .rev()
            .find(|o| o.status(now) == OpStatus::InProgress)
        {
            Some(op) => {
                op.failed = Some((
                    "OperationPreempted".into(),
                    "Operation execution has been preempted by a more recent operation.".into(),
                ));
                true
            }
            None => false,
        }
    }
    /// The next `count` requests matching `target` get `fault` instead of an answer (after
    /// authentication and api-version checks, like a real throttle).
    pub fn inject(&self, target: Target, count: u32, fault: Fault) {
        self.shared.world().faults.push(target, count, fault);
    }
    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.world().log.to_vec()
    }
    pub fn clear_requests(&self) {
        self.shared.world().log.clear();
    }
    /// Successful token requests so far (either endpoint).
    pub fn tokens_issued(&self) -> usize {
        self.shared
            .world()
            .log
            .iter()
            .filter(|r| r.is_token_request() && r.status == 200)
            .count()
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Spot with evictionPolicy Delete: the VM and its disks are deleted and the scale set asks
/// for one fewer (a new etag).
fn evict_instance(w: &mut World, id: u32) -> bool {
    let evicted = w.scale_set.evict(id);
    if evicted {
        w.etag += 1;
    }
    evicted
}

// ---------------------------------------------------------------------------------------------
// HTTP

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let limit = shared.world().cfg.max_body_bytes;
    let (resp, body) = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => (route(&shared, &parts, &bytes), bytes),
        Err(_) => (
            arm_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("The request content size exceeds the limit of {limit} bytes."),
            ),
            Bytes::new(),
        ),
    };
    let logged = log_entry(&parts, &body, resp.status());
    {
        // Bounded so a long emulator run does not grow without end; the oldest go first.
        shared.world().log.push(logged);
    }
    if let Some(AnswerDelay(d)) = resp.extensions().get::<AnswerDelay>().copied() {
        tokio::time::sleep(d).await;
    }
    resp
}

fn log_entry(parts: &axum::http::request::Parts, body: &[u8], status: StatusCode) -> LoggedRequest {
    let mut headers = BTreeMap::new();
    for name in [
        "content-type",
        "content-length",
        "if-match",
        "accept",
        "authorization",
        "x-identity-header",
    ] {
        if let Some(v) = parts.headers.get(name) {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            let v = match name {
                "authorization" => match v.split_once(' ') {
                    Some((scheme, _)) => format!("{scheme} ***"),
                    None => "***".into(),
                },
                "x-identity-header" => "***".into(),
                _ => v,
            };
            headers.insert(name.to_string(), v);
        }
    }
    let is_form = parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .starts_with(b"application/x-www-form-urlencoded")
    });
    let body = if is_form {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(url::form_urlencoded::parse(body).map(|(k, v)| {
                if k == "client_secret" {
                    (k, "***".into())
                } else {
                    (k, v)
                }
            }))
            .finish()
            .into_bytes()
    } else {
        body.to_vec()
    };
    LoggedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers,
        body,
        status: status.as_u16(),
    }
}

struct Req<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    query: Vec<(String, String)>,
    body: &'a [u8],
}

impl Req<'_> {
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn route(shared: &Shared, parts: &axum::http::request::Parts, body: &[u8]) -> Response {
    let path = parts.uri.path();
    let req = Req {
        method: &parts.method,
        headers: &parts.headers,
        query: url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
        body,
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match segs.as_slice() {
        [a, b] if eq(a, "msi") && eq(b, "token") => {
            only(&req, &[Method::GET], || identity_token(shared, &req))
        }
        [tenant, a, b, c] if eq(a, "oauth2") && eq(b, "v2.0") && eq(c, "token") => {
            only(&req, &[Method::POST], || sp_token(shared, &req, tenant))
        }
        [s, ..] if eq(s, "subscriptions") => arm(shared, &req, &segs),
        _ => not_found(path),
    }
}

fn only(req: &Req<'_>, allowed: &[Method], f: impl FnOnce() -> Response) -> Response {
    if allowed.contains(req.method) {
        f()
    } else {
        method_not_allowed(req.method, allowed)
    }
}

fn method_not_allowed(method: &Method, allowed: &[Method]) -> Response {
    let mut resp = arm_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &format!("The requested resource does not support http method '{method}'."),
    );
    let allow = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = HeaderValue::from_str(&allow) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    resp
}

fn not_found(path: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("The requested path '{}' was not found.", clip(path)),
    )
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn arm_error_target(status: StatusCode, code: &str, message: &str, target: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message, "target": target}}),
    )
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut resp = burst_sim_kit::json(status.as_u16(), v);
    if let Ok(id) = HeaderValue::from_str(&uuid_like()) {
        resp.headers_mut().insert("x-ms-request-id", id);
    }
    resp
}

fn uuid_like() -> String {
    burst_sim_kit::request_id()
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// The App Service identity endpoint's error shape.
fn identity_error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({"statusCode": status.as_u16(), "message": message, "correlationId": uuid_like()}),
    )
}

fn issue(w: &mut World, audience: &str) -> (String, SystemTime) {
    let now = SystemTime::now();
    // Tokens long expired are forgotten (ARM then calls them invalid rather than expired).
    w.tokens.retain(|_, t| {
        t.expires
            .checked_add(Duration::from_secs(3600))
            .is_none_or(|forget| forget > now)
    });
    let token = format!("sim.{}", random_hex(40));
    // Durations from the control API may be absurd; cap instead of overflowing.
    let expires = now
        .checked_add(w.cfg.token_lifetime)
        .unwrap_or(now + Duration::from_secs(10 * 365 * 86400));
    w.tokens.insert(
        token.clone(),
        IssuedToken {
            expires,
            audience: audience.to_string(),
        },
    );
    (token, expires)
}

fn identity_token(shared: &Shared, req: &Req<'_>) -> Response {
    let mut w = shared.world();
    match req.header("x-identity-header") {
        None => {
            return identity_error(
                StatusCode::BAD_REQUEST,
                "The request is missing the X-IDENTITY-HEADER header.",
            );
        }
        Some(h) if h != w.cfg.identity_header => {
            return identity_error(
                StatusCode::UNAUTHORIZED,
                "The X-IDENTITY-HEADER value is not valid.",
            );
        }
        Some(_) => {}
    }
    match req.q("api-version") {
        None => {
            return identity_error(
                StatusCode::BAD_REQUEST,
                "The api-version query parameter is required.",
            );
        }
        Some(v) if v != IDENTITY_API_VERSION => {
            return identity_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "The api-version '{}' is not supported; use 2019-08-01.",
                    clip(v)
                ),
            );
        }
        Some(_) => {}
    }
    let Some(resource) = req.q("resource").filter(|r| !r.is_empty()) else {
        return identity_error(
            StatusCode::BAD_REQUEST,
            "The resource query parameter is required.",
        );
    };
    let client_id = match req.q("client_id") {
        Some(id) => {
            if !w
                .cfg
                .user_assigned_client_ids
                .iter()
                .any(|k| k.eq_ignore_ascii_case(id))
            {
                return identity_error(
                    StatusCode::BAD_REQUEST,
                    "Unable to load the requested managed identity (unknown client_id).",
                );
            }
            id.to_string()
        }
        None => "00000000-0000-4000-8000-00000000aaaa".to_string(),
    };
    let resource = resource.to_string();
    let (token, expires) = issue(&mut w, &resource);
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "expires_on": epoch_secs(expires).to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }),
    )
}

/// Entra ID's error shape.
fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    json_response(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code],
            "timestamp": rfc3339(SystemTime::now()),
            "trace_id": uuid_like(),
            "correlation_id": uuid_like(),
        }),
    )
}

fn sp_token(shared: &Shared, req: &Req<'_>, tenant: &str) -> Response {
    let mut w = shared.world();
    let Some(sp) = w
        .cfg
        .service_principal
        .clone()
        .filter(|sp| sp.tenant_id.eq_ignore_ascii_case(tenant))
    else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{}' not found.", clip(tenant)),
        );
    };
    if !req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    }
    let form: HashMap<String, String> =
        url::form_urlencoded::parse(req.body).into_owned().collect();
    // Each form field as Entra ID checks it, in its order, with its answer when wrong.
    let expected = [
        (
            "grant_type",
            "client_credentials",
            StatusCode::BAD_REQUEST,
            ("unsupported_grant_type", 70003),
            "The app requested an unsupported grant type.",
        ),
        (
            "client_id",
            sp.client_id.as_str(),
            StatusCode::BAD_REQUEST,
            ("unauthorized_client", 700016),
            "Application was not found in the directory.",
        ),
        (
            "client_secret",
            sp.client_secret.as_str(),
            StatusCode::UNAUTHORIZED,
            ("invalid_client", 7000215),
            "Invalid client secret provided.",
        ),
    ];
    for (field, want, status, (error, code), description) in expected {
        if form.get(field).map(String::as_str) != Some(want) {
            return aad_error(status, error, code, description);
        }
    }
    let scope = form.get("scope").map(String::as_str).unwrap_or("");
    if scope != ARM_SCOPE && scope != "https://management.azure.com//.default" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            "The provided request must include a valid 'scope' input parameter.",
        );
    }
    let (token, _) = issue(&mut w, ARM_RESOURCE);
    let secs = w.cfg.token_lifetime.as_secs();
    json_response(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "expires_in": secs,
            "ext_expires_in": secs,
            "access_token": token,
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// ARM

fn arm(shared: &Shared, req: &Req<'_>, segs: &[&str]) -> Response {
    let now = Instant::now();
    let mut w = shared.world();
    if let Some(resp) = authenticate(&w, req) {
        return resp;
    }
    match req.q("api-version") {
        None => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        Some(v) if !w.cfg.api_versions.iter().any(|k| k == v) => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "NoRegisteredProviderFound",
                &format!(
                    "No registered resource provider found for location '{}' and API version '{}' for type 'virtualMachineScaleSets'. The supported api-versions are '{}'.",
                    w.cfg.location,
                    clip(v),
                    w.cfg.api_versions.join(", ")
                ),
            );
        }
        Some(_) => {}
    }
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let id = w.cfg.scale_set.clone();
    match segs {
        [_, sub, ..] if !eq(sub, id.subscription()) => arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{}' could not be found.", clip(sub)),
        ),
        [_, _, p, ns, l, loc, o, op]
            if eq(p, "providers")
                && eq(ns, "Microsoft.Compute")
                && eq(l, "locations")
                && eq(o, "operations") =>
        {
            only(req, &[Method::GET], || {
                operation_status(shared, &w, req, loc, op, now)
            })
        }
        [_, _, g, rg, p, ns, k, name, rest @ ..]
            if eq(g, "resourceGroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Compute")
                && eq(k, "virtualMachineScaleSets") =>
        {
            if !eq(rg, id.resource_group()) {
                return arm_error(
                    StatusCode::NOT_FOUND,
                    "ResourceGroupNotFound",
                    &format!("Resource group '{}' could not be found.", clip(rg)),
                );
            }
            if !eq(name, id.name()) {
                return arm_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    &format!(
                        "The Resource 'Microsoft.Compute/virtualMachineScaleSets/{}' under resource group '{}' was not found.",
                        clip(name),
                        clip(rg)
                    ),
                );
            }
            scale_set_route(shared, &mut w, req, rest, now)
        }
        _ => not_found(&format!("/{}", segs.join("/"))),
    }
}

/// `Some(401 response)` when the request does not carry a valid token the sim issued.
fn authenticate(w: &World, req: &Req<'_>) -> Option<Response> {
    let challenge = |mut resp: Response| {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"The authentication failed\"",
            ),
        );
        resp
    };
    let Some(auth) = req.header("authorization") else {
        return Some(challenge(arm_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )));
    };
    let Some(token) = auth
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
    else {
        return Some(challenge(arm_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        )));
    };
    let Some(issued) = w.tokens.get(token) else {
        return Some(challenge(arm_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        )));
    };
    let now = SystemTime::now();
    if issued.expires <= now {
        return Some(challenge(arm_error(
            StatusCode::UNAUTHORIZED,
            "ExpiredAuthenticationToken",
            &format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                rfc3339(issued.expires),
                rfc3339(now)
            ),
        )));
    }
    if issued.audience.trim_end_matches('/') != ARM_RESOURCE.trim_end_matches('/') {
        return Some(challenge(arm_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenAudience",
            "The access token has been obtained for wrong audience or resource.",
        )));
    }
    None
}

fn scale_set_route(
    shared: &Shared,
    w: &mut World,
    req: &Req<'_>,
    rest: &[&str],
    now: Instant,
) -> Response {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let (allowed, target): (&[Method], Target) = match rest {
        [] => (&[Method::GET, Method::PATCH], Target::Read),
        [iv] if eq(iv, "instanceView") => (&[Method::GET], Target::Read),
        [vms] if eq(vms, "virtualMachines") => (&[Method::GET], Target::Read),
        [vms, _] if eq(vms, "virtualMachines") => (&[Method::GET], Target::Read),
        [vms, _, iv] if eq(vms, "virtualMachines") && eq(iv, "instanceView") => {
            (&[Method::GET], Target::Read)
        }
        [vms, _, ev] if eq(vms, "virtualMachines") && eq(ev, "simulateEviction") => {
            (&[Method::POST], Target::Any)
        }
        _ => return not_found(&format!("{}/{}", w.cfg.scale_set, rest.join("/"))),
    };
    if !allowed.contains(req.method) {
        return method_not_allowed(req.method, allowed);
    }
    if !rest.is_empty() && w.is_flexible() {
        // Uniform-only operations on a Flexible scale set.
        let operation: Vec<&str> = rest
            .iter()
            .filter(|s| s.parse::<u32>().is_err())
            .copied()
            .collect();
        return arm_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "Operation 'VirtualMachineScaleSets.{}.{}' is not allowed on Virtual Machine Scale Set '{}'.",
                operation.join("."),
                req.method,
                w.cfg.scale_set.name()
            ),
        );
    }
    let target = if *req.method == Method::PATCH {
        Target::Write
    } else {
        target
    };
    let mut delay = None;
    match w.take_fault(target) {
        Some(Fault::ConcurrentWrite) => w.etag += 1,
        Some(Fault::Slow { delay: d }) => delay = Some(d),
        Some(fault) => return fault_response(&fault),
        None => {}
    }
    let mut resp = w.answer(shared, req, rest, now);
    if let Some(d) = delay {
        resp.extensions_mut().insert(AnswerDelay(d));
    }
    resp
}

/// Tells `handle` to hold the answer back (fault `Slow`).
#[derive(Clone, Copy, Debug)]
struct AnswerDelay(Duration);

impl World {
    /// The scale set's answer to an authenticated request that passed the fault queue.
    fn answer(&mut self, shared: &Shared, req: &Req<'_>, rest: &[&str], now: Instant) -> Response {
        let w = self;
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        match rest {
            [] if *req.method == Method::GET => {
                let mut resp = json_response(StatusCode::OK, &scale_set_body(w, now));
                add_read_limits(&mut resp);
                resp
            }
            [] => patch(shared, w, req, now),
            [_] if eq(rest[0], "instanceView") => {
                let mut resp = json_response(StatusCode::OK, &instance_view_body(w, now));
                add_read_limits(&mut resp);
                resp
            }
            [_] => vm_list(shared, w, req, now),
            [_, id] => match id
                .parse::<u32>()
                .ok()
                .and_then(|n| w.scale_set.instance(n).map(|i| (n, i)))
            {
                Some((n, i)) => json_response(StatusCode::OK, &vm_body(w, n, i, expands(req), now)),
                None => vm_not_found(w, id),
            },
            [_, id, iv] if eq(iv, "instanceView") => {
                match id.parse::<u32>().ok().and_then(|n| w.scale_set.instance(n)) {
                    Some(i) => json_response(StatusCode::OK, &vm_instance_view(w, i, now)),
                    None => vm_not_found(w, id),
                }
            }
            [_, id, _] => match id.parse::<u32>() {
                Ok(n) if evict_instance(w, n) => StatusCode::NO_CONTENT.into_response(),
                _ => vm_not_found(w, id),
            },
            _ => not_found("/"),
        }
    }
}

/// Whether the request asks for instance views (`$expand=instanceView`).
fn expands(req: &Req<'_>) -> bool {
    req.q("$expand")
        .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"))
}

/// `GET {id}/virtualMachines`: one page of `vm_page_size` VMs in instance id order, with a
/// `nextLink` (`$skiptoken`, the query kept) while more follow.
fn vm_list(shared: &Shared, w: &World, req: &Req<'_>, now: Instant) -> Response {
    let from = match req.q("$skiptoken") {
        None => 0,
        Some(t) => match u32::from_str_radix(t, 16) {
            Ok(n) => n,
            Err(_) => {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidSkipToken",
                    &format!("The skip token '{}' is not valid.", clip(t)),
                );
            }
        },
    };
    let size = w.cfg.vm_page_size.max(1);
    let mut page = w.scale_set.instances().skip_while(|(id, _)| *id < from);
    let value: Vec<Value> = page
        .by_ref()
        .take(size)
        .map(|(id, i)| vm_body(w, id, i, expands(req), now))
        .collect();
    let mut body = json!({ "value": value });
    if let Some((next, _)) = page.next() {
        // The query of this request, then the token; `$` kept literal as in Azure's links.
        let enc = |t: &str| url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
        let key = |k: &str| match k.strip_prefix('$') {
            Some(rest) => format!("${}", enc(rest)),
            None => enc(k),
        };
        let mut query: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k != "$skiptoken")
            .map(|(k, v)| format!("{}={}", key(k), enc(v)))
            .collect();
        query.push(format!("$skiptoken={next:x}"));
        body["nextLink"] = json!(format!(
            "{}{}/virtualMachines?{}",
            shared.base_url(),
            w.cfg.scale_set,
            query.join("&")
        ));
    }
    let mut resp = json_response(StatusCode::OK, &body);
    add_read_limits(&mut resp);
    resp
}

fn vm_not_found(w: &World, id: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!(
            "The entity was not found in this Azure location. Instance '{}' of scale set '{}'.",
            clip(id),
            w.cfg.scale_set.name()
        ),
    )
}

fn add_read_limits(resp: &mut Response) {
    resp.headers_mut().insert(
        "x-ms-ratelimit-remaining-resource",
        HeaderValue::from_static(
            "Microsoft.Compute/GetVMScaleSet3Min;197,Microsoft.Compute/GetVMScaleSet30Min;1297",
        ),
    );
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::Throttle {
            retry_after,
            bare_body,
        } => {
            let message = "The server rejected the request because too many requests have been received for this subscription.";
            let body = if *bare_body {
                json!({"code": "OperationNotAllowed", "message": message})
            } else {
                json!({"error": {"code": "TooManyRequests", "message": message}})
            };
            let mut resp = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
            let h = resp.headers_mut();
            if let Some(v) = retry_after
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                h.insert(header::RETRY_AFTER, v);
            }
            h.insert(
                "x-ms-ratelimit-remaining-resource",
                HeaderValue::from_static("Microsoft.Compute/HighCostGet30Min;0"),
            );
            resp
        }
        // Handled before answering; never turned into a response of their own.
        Fault::ConcurrentWrite | Fault::Slow { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Fault::Error {
            status,
            code,
            message,
        } => arm_error(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message,
        ),
    }
}

fn patch(shared: &Shared, w: &mut World, req: &Req<'_>, now: Instant) -> Response {
    let ct = req.header("content-type").unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return arm_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!(
                "The content media type '{}' is not supported. Only 'application/json' is supported.",
                clip(ct)
            ),
        );
    }
    let body: Value = match serde_json::from_slice(req.body) {
        Ok(v) => v,
        Err(e) => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                &format!("The request content was invalid and could not be deserialized: '{e}'."),
            );
        }
    };
    let Value::Object(top) = &body else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: expected an object.",
        );
    };
    if top.contains_key("identity") {
        let id = &w.cfg.scale_set;
        return arm_error(
            StatusCode::BAD_REQUEST,
            "LinkedAuthorizationFailed",
            &format!(
                "The client has permission to perform action 'Microsoft.Compute/virtualMachineScaleSets/write' on scope '{id}'; however, it does not have permission to perform action(s) 'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action' on the linked scope(s) '/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-burst-nodes' (respectively) or the linked scope(s) are invalid.",
                id.subscription(),
                id.resource_group()
            ),
        );
    }
    let sparse = "The simulated scale set accepts only the sparse body {\"sku\":{\"capacity\":N}}";
    if let Some(extra) = top.keys().find(|k| *k != "sku") {
        return arm_error_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            &format!("{sparse}; unexpected property '{}'.", clip(extra)),
            extra,
        );
    }
    let Some(Value::Object(sku)) = top.get("sku") else {
        return arm_error_target(StatusCode::BAD_REQUEST, "InvalidParameter", sparse, "sku");
    };
    if let Some(extra) = sku.keys().find(|k| *k != "capacity") {
        return arm_error_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            &format!("{sparse}; unexpected property 'sku.{}'.", clip(extra)),
            &format!("sku.{extra}"),
        );
    }
    let Some(raw) = sku.get("capacity") else {
        return arm_error_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            sparse,
            "sku.capacity",
        );
    };
    let Some(n) = raw.as_i64() else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            &format!(
                "The request content was invalid and could not be deserialized: 'Could not convert {} to Int64. Path 'sku.capacity''.",
                clip(&raw.to_string())
            ),
        );
    };
    let Some(n) = u32::try_from(n).ok().filter(|n| *n <= MAX_CAPACITY) else {
        return arm_error_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            &format!(
                "The value {n} of parameter 'sku.capacity' is out of range. The value must be between 0 and {MAX_CAPACITY}, inclusive."
            ),
            "sku.capacity",
        );
    };
    if let Some(if_match) = req.header("if-match")
        && if_match.trim() != "*"
        && if_match.trim() != format!("\"{}\"", w.etag)
    {
        return arm_error(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "The condition specified using HTTP conditional header(s) is not met.",
        );
    }
    if let Some(op) = w.running_op(now) {
        let op = op.id.clone();
        return arm_error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Operation 'Update VMSS' is not allowed since the Virtual Machine Scale Set '{}' has another operation '{op}' in progress.",
                w.cfg.scale_set.name()
            ),
        );
    }
    let duration = w.cfg.operation_duration;
    // Without Spot capacity, the VMs this write adds fail when the operation ends.
    let fails = w.allocation_failure && n > w.capacity();
    let settle = if fails { duration } else { w.cfg.boot_time };
    let ready_at = now
        .checked_add(settle)
        .unwrap_or(now + Duration::from_secs(10 * 365 * 86400));
    w.resize(n, ready_at, fails);
    let op = Operation {
        id: uuid_like(),
        started: now,
        started_wall: SystemTime::now(),
        duration,
        failed: None,
        fails_with: fails.then(|| {
            (
                ALLOCATION_FAILED.0.to_string(),
                ALLOCATION_FAILED.1.to_string(),
            )
        }),
    };
    let op_id = op.id.clone();
    w.operations.push(op);
    // Keep the history bounded; old operations answer 404 like expired ones in Azure.
    if w.operations.len() > 256 {
        w.operations.remove(0);
    }
    if duration.is_zero() {
        return json_response(StatusCode::OK, &scale_set_body(w, now));
    }
    let id = &w.cfg.scale_set;
    let api_version = req.q("api-version").unwrap_or_default();
    let op_url = format!(
        "{}/subscriptions/{}/providers/Microsoft.Compute/locations/{}/operations/{op_id}?p={}&api-version={api_version}",
        shared.base_url(),
        id.subscription(),
        w.cfg.location,
        random_hex(8)
    );
    let mut resp = StatusCode::ACCEPTED.into_response();
    let h = resp.headers_mut();
    let retry = ceil_secs(duration).clamp(1, 10).to_string();
    for (name, value) in [
        ("azure-asyncoperation", op_url.clone()),
        ("location", format!("{op_url}&monitor=true")),
        ("retry-after", retry),
        ("x-ms-request-id", op_id),
        (
            "x-ms-ratelimit-remaining-resource",
            "Microsoft.Compute/VMScaleSetBatchedVMRequests5Min;1199,Microsoft.Compute/VmssQueuedVMOperations;4800".to_string(),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

fn operation_status(
    _shared: &Shared,
    w: &World,
    req: &Req<'_>,
    loc: &str,
    op_id: &str,
    now: Instant,
) -> Response {
    let op = w
        .operations
        .iter()
        .find(|o| o.id.eq_ignore_ascii_case(op_id))
        .filter(|_| loc.eq_ignore_ascii_case(&w.cfg.location));
    let Some(op) = op else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("The operation '{}' was not found.", clip(op_id)),
        );
    };
    let status = op.status(now);
    if req
        .q("monitor")
        .is_some_and(|m| m.eq_ignore_ascii_case("true"))
    {
        // The Location URL: 202 while running, then the final result.
        return match status {
            OpStatus::InProgress => {
                let mut resp = StatusCode::ACCEPTED.into_response();
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                resp
            }
            OpStatus::Succeeded => StatusCode::OK.into_response(),
            OpStatus::Failed => {
                let (code, message) = op.error(now).cloned().unwrap_or_default();
                arm_error(StatusCode::CONFLICT, &code, &message)
            }
        };
    }
    let mut body = json!({
        "startTime": rfc3339(op.started_wall),
        "status": match status {
            OpStatus::InProgress => "InProgress",
            OpStatus::Succeeded => "Succeeded",
            OpStatus::Failed => "Failed",
        },
        "name": op.id,
    });
    if status != OpStatus::InProgress {
        body["endTime"] = json!(rfc3339(op.end_wall().min(SystemTime::now())));
    }
    if let Some((code, message)) = op.error(now) {
        body["error"] = json!({"code": code, "message": message});
    }
    let mut resp = json_response(StatusCode::OK, &body);
    if status == OpStatus::InProgress {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// The scale set, shaped like `VirtualMachineScaleSet_Get.json`, with a Spot profile and a
/// user-assigned identity (which is why a PUT of this body back fails).
fn scale_set_body(w: &World, now: Instant) -> Value {
    let id = &w.cfg.scale_set;
    let sub = id.subscription();
    let rg = id.resource_group();
    json!({
        "name": id.name(),
        "id": id.to_string(),
        "type": "Microsoft.Compute/virtualMachineScaleSets",
        "location": w.cfg.location,
        "tags": {"managed-by": "hybrid-burst"},
        "identity": {
            "type": "UserAssigned",
            "userAssignedIdentities": {
                format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-burst-nodes"): {
                    "principalId": "00000000-0000-4000-8000-00000000bbbb",
                    "clientId": "00000000-0000-4000-8000-00000000cccc"
                }
            }
        },
        "sku": {"name": w.cfg.sku_name, "tier": "Standard", "capacity": w.capacity()},
        "etag": format!("\"{}\"", w.etag),
        "properties": {
            "singlePlacementGroup": false,
            "orchestrationMode": w.cfg.orchestration_mode,
            "upgradePolicy": {"mode": "Manual"},
            "virtualMachineProfile": {
                "osProfile": {
                    "computerNamePrefix": id.name(),
                    "adminUsername": "burst",
                    "linuxConfiguration": {"disablePasswordAuthentication": true}
                },
                "storageProfile": {
                    "osDisk": {
                        "createOption": "FromImage",
                        "caching": "ReadOnly",
                        "managedDisk": {"storageAccountType": "Standard_LRS"},
                        "diskSizeGB": 30
                    },
                    "imageReference": {
                        "publisher": "Canonical",
                        "offer": "ubuntu-24_04-lts",
                        "sku": "server",
                        "version": "latest"
                    },
                    "dataDisks": []
                },
                "networkProfile": {
                    "networkInterfaceConfigurations": [{
                        "name": "nic-burst",
                        "properties": {
                            "primary": true,
                            "ipConfigurations": [{
                                "name": "ipconfig",
                                "properties": {
                                    "primary": true,
                                    "subnet": {"id": format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/vnet-burst/subnets/nodes")}
                                }
                            }]
                        }
                    }]
                },
                "priority": "Spot",
                "evictionPolicy": "Delete",
                "billingProfile": {"maxPrice": w.cfg.max_price},
                "timeCreated": rfc3339(w.created_wall)
            },
            "provisioningState": w.provisioning_state(now),
            "overprovision": false,
            "doNotRunExtensionsOnOverprovisionedVMs": false,
            "platformFaultDomainCount": 1,
            "uniqueId": "00000000-0000-4000-8000-00000000dddd",
            "timeCreated": rfc3339(w.created_wall)
        }
    })
}

/// The scale set's instance view. Its `statusesSummary` counts the VMs' provisioning states
/// only, as in real responses (azure-rest-api-specs issue #3593; the upgrade article's
/// sample on Microsoft Learn): power states are in each VM's own instance view.
fn instance_view_body(w: &World, now: Instant) -> Value {
    let mut counts: BTreeMap<&'static str, u32> = BTreeMap::new();
    for (_, i) in w.scale_set.instances() {
        let code = vm_provisioning_status(w.vm_state(i, now)).0;
        *counts.entry(code).or_insert(0) += 1;
    }
    let summary: Vec<Value> = counts
        .into_iter()
        .map(|(code, count)| json!({"code": code, "count": count}))
        .collect();
    let state = w.provisioning_state(now).to_ascii_lowercase();
    let (level, display) = match state.as_str() {
        "succeeded" => ("Info", "Provisioning succeeded"),
        "failed" => ("Error", "Provisioning failed"),
        _ => ("Info", "Updating"),
    };
    json!({
        "virtualMachine": {"statusesSummary": summary},
        "statuses": [{
            "code": format!("ProvisioningState/{state}"),
            "level": level,
            "displayStatus": display,
            "time": rfc3339(SystemTime::now())
        }],
        "orchestrationServices": [{"serviceName": "AutomaticRepairs", "serviceState": "NotRunning"}]
    })
}

/// A VM's provisioning status: (code, display status).
fn vm_provisioning_status(state: VmState) -> (&'static str, &'static str) {
    match state {
        VmState::Running => ("ProvisioningState/succeeded", "Provisioning succeeded"),
        VmState::Booting => ("ProvisioningState/creating", "Creating"),
        VmState::Failed => (
            "ProvisioningState/failed/AllocationFailed",
            "Provisioning failed",
        ),
    }
}

/// A VM's own instance view, shaped like
/// `VirtualMachineScaleSetVM_Get_InstanceViewAutoPlacedOnDedicatedHostGroup.json`: its
/// provisioning status, then its power state.
fn vm_instance_view(w: &World, i: &Instance, now: Instant) -> Value {
    let state = w.vm_state(i, now);
    let (code, display) = vm_provisioning_status(state);
    let provisioning = if state == VmState::Failed {
        json!({"code": code, "level": "Error", "displayStatus": display, "message": ALLOCATION_FAILED.1, "time": rfc3339(w.wall(i.created))})
    } else {
        json!({"code": code, "level": "Info", "displayStatus": display, "time": rfc3339(w.wall(i.created))})
    };
    let (power, power_display) = match state {
        VmState::Running => ("PowerState/running", "VM running"),
        VmState::Booting => ("PowerState/starting", "VM starting"),
        VmState::Failed => ("PowerState/deallocated", "VM deallocated"),
    };
    json!({
        "platformUpdateDomain": 0,
        "platformFaultDomain": 0,
        "statuses": [
            provisioning,
            {"code": power, "level": "Info", "displayStatus": power_display}
        ]
    })
}

fn vm_body(w: &World, instance_id: u32, i: &Instance, expand: bool, now: Instant) -> Value {
    let state = w.vm_state(i, now);
    let id = &w.cfg.scale_set;
    let mut props = json!({
        "latestModelApplied": true,
        "provisioningState": match state {
            VmState::Running => "Succeeded",
            VmState::Booting => "Creating",
            VmState::Failed => "Failed",
        },
        "timeCreated": rfc3339(w.wall(i.created)),
        "osProfile": {"computerName": format!("{}{:06x}", id.name(), instance_id)},
    });
    if expand {
        props["instanceView"] = vm_instance_view(w, i, now);
    }
    json!({
        "name": format!("{}_{instance_id}", id.name()),
        "id": format!("{id}/virtualMachines/{instance_id}"),
        "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
        "location": w.cfg.location,
        "instanceId": instance_id.to_string(),
        "sku": {"name": w.cfg.sku_name, "tier": "Standard"},
        "properties": props
    })
}
