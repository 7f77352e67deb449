//! The sim's HTTP surface: authentication, routing, lists with selectors and pages, objects,
//! the `scale` subresource, and the API server's `Status` errors. Every request is recorded.

use super::objects::{self, status};
use super::selector::Selector;
use super::table::{Repr, Rows, TABLE_CONTENT_TYPE, negotiate, table};
use super::{Cluster, Readyz, RecordedRequest, Shared, WorkloadKind};
use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, Method, StatusCode, header};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ListMeta, ObjectMeta};
use k8s_openapi::{ListableResource, Metadata};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// kube-apiserver's request body limit.
const BODY_LIMIT: usize = 3 * 1024 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// What the handler answers.
struct Reply {
    code: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn json<T: Serialize>(code: StatusCode, value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply {
                code,
                content_type: "application/json",
                body,
            },
            Err(e) => Reply::error(500, "InternalError", &format!("encoding: {e}"), None),
        }
    }
    fn ok<T: Serialize>(value: &T) -> Reply {
        Reply::json(StatusCode::OK, value)
    }
    fn table(value: &Value) -> Reply {
        let mut r = Reply::ok(value);
        r.content_type = TABLE_CONTENT_TYPE;
        r
    }
    fn text(code: StatusCode, text: &str) -> Reply {
        Reply {
            code,
            content_type: "text/plain; charset=utf-8",
            body: text.as_bytes().to_vec(),
        }
    }
    fn error(code: u16, reason: &str, message: &str, details: Option<Value>) -> Reply {
        let code_s = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Reply::json(code_s, &status(code, reason, message, details))
    }
    fn not_found_path() -> Reply {
        Reply::error(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        )
    }
    fn method_not_allowed() -> Reply {
        Reply::error(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        )
    }
    fn bad_request(message: &str) -> Reply {
        Reply::error(400, "BadRequest", message, None)
    }
}

/// The parts of a request the routes look at.
struct Ctx {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
    /// Plain JSON or a Table, from `Accept`.
    repr: Repr,
}

impl Ctx {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let header = |n: header::HeaderName| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (body, too_large) = match to_bytes(body, BODY_LIMIT).await {
        Ok(b) => (b, false),
        Err(_) => (Bytes::new(), true),
    };
    // Recorded on arrival (status 0) so a request that hangs is visible too.
    let seq = shared
        .next_seq
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    {
        let mut log = shared.log();
        if log.len() >= super::REQUEST_LOG_MAX {
            log.pop_front();
        }
        log.push_back(RecordedRequest {
            seq,
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            content_type: header(header::CONTENT_TYPE),
            accept: header(header::ACCEPT),
            user_agent: header(header::USER_AGENT),
            bearer: bearer(&parts.headers),
            body: String::from_utf8_lossy(&body).into_owned(),
            status: 0,
        });
    }
    let mut ctx = Ctx {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: query_pairs(parts.uri.query()),
        headers: parts.headers.clone(),
        body,
        repr: Repr::Json,
    };
    let reply = if too_large {
        Reply::error(
            413,
            "RequestEntityTooLarge",
            "the request body is too large",
            None,
        )
    } else {
        answer(&shared, &mut ctx).await
    };
    if let Some(entry) = shared.log().iter_mut().rev().find(|e| e.seq == seq) {
        entry.status = reply.code.as_u16();
    }
    (
        reply.code,
        [
            (header::CONTENT_TYPE, reply.content_type),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        Body::from(reply.body),
    )
        .into_response()
}

/// What the path names.
#[derive(Debug)]
enum Target {
    Health(&'static str),
    Version,
    ApiVersions,
    ApiGroupList,
    AppsGroup,
    CoreResources,
    AppsResources,
    Nodes(Option<String>),
    Namespaces(Option<String>),
    Workloads {
        kind: WorkloadKind,
        namespace: Option<String>,
        name: Option<String>,
        scale: bool,
    },
}

fn target(path: &str) -> Option<Target> {
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    let seg: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    let kind = |s: &str| match s {
        "deployments" => Some(WorkloadKind::Deployment),
        "statefulsets" => Some(WorkloadKind::StatefulSet),
        _ => None,
    };
    let s = |x: &&str| x.to_string();
    Some(match seg.as_slice() {
        ["readyz"] => Target::Health("readyz"),
        ["livez"] => Target::Health("livez"),
        ["healthz"] => Target::Health("healthz"),
        ["version"] => Target::Version,
        ["api"] => Target::ApiVersions,
        ["api", "v1"] => Target::CoreResources,
        ["api", "v1", "nodes"] => Target::Nodes(None),
        ["api", "v1", "nodes", n] => Target::Nodes(Some(s(n))),
        ["api", "v1", "namespaces"] => Target::Namespaces(None),
        ["api", "v1", "namespaces", n] => Target::Namespaces(Some(s(n))),
        ["apis"] => Target::ApiGroupList,
        ["apis", "apps"] => Target::AppsGroup,
        ["apis", "apps", "v1"] => Target::AppsResources,
        ["apis", "apps", "v1", r] => Target::Workloads {
            kind: kind(r)?,
            namespace: None,
            name: None,
            scale: false,
        },
        ["apis", "apps", "v1", "namespaces", ns, r] => Target::Workloads {
            kind: kind(r)?,
            namespace: Some(s(ns)),
            name: None,
            scale: false,
        },
        ["apis", "apps", "v1", "namespaces", ns, r, n] => Target::Workloads {
            kind: kind(r)?,
            namespace: Some(s(ns)),
            name: Some(s(n)),
            scale: false,
        },
        ["apis", "apps", "v1", "namespaces", ns, r, n, "scale"] => Target::Workloads {
            kind: kind(r)?,
            namespace: Some(s(ns)),
            name: Some(s(n)),
            scale: true,
        },
        _ => return None,
    })
}

async fn answer(shared: &Shared, ctx: &mut Ctx) -> Reply {
    if let Some(token) = &shared.options.token
        && bearer(&ctx.headers).as_deref() != Some(token.as_str())
    {
        return Reply::error(401, "Unauthorized", "Unauthorized", None);
    }
    let Some(target) = target(&ctx.path) else {
        return Reply::not_found_path();
    };
    if let Target::Health(which) = target {
        if ctx.method != Method::GET {
            return Reply::method_not_allowed();
        }
        return health(shared, ctx, which).await;
    }
    let table_ok = matches!(
        target,
        Target::Nodes(_) | Target::Namespaces(_) | Target::Workloads { scale: false, .. }
    );
    match negotiate(ctx.header(header::ACCEPT), table_ok) {
        Some(repr) => ctx.repr = repr,
        None => {
            return Reply::error(
                406,
                "NotAcceptable",
                "only the following media types are accepted: application/json",
                None,
            );
        }
    }
    let ctx = &*ctx;
    match target {
        Target::Health(_) => Reply::not_found_path(),
        Target::Version => get_only(ctx, || Reply::ok(&objects::version())),
        Target::ApiVersions => get_only(ctx, || {
            let host = ctx.header(header::HOST).unwrap_or("127.0.0.1");
            Reply::ok(&objects::api_versions(host))
        }),
        Target::ApiGroupList => get_only(ctx, || Reply::ok(&objects::api_group_list())),
        Target::AppsGroup => get_only(ctx, || Reply::ok(&objects::apps_api_group())),
        Target::CoreResources => get_only(ctx, || Reply::ok(&objects::core_v1_resources())),
        Target::AppsResources => get_only(ctx, || Reply::ok(&objects::apps_v1_resources())),
        Target::Nodes(name) => cluster_scoped(shared, ctx, "nodes", name, |c| &c.nodes),
        Target::Namespaces(name) => {
            cluster_scoped(shared, ctx, "namespaces", name, |c| &c.namespaces)
        }
        Target::Workloads {
            kind,
            namespace,
            name,
            scale,
        } => workloads(shared, ctx, kind, namespace, name, scale),
    }
}

fn get_only(ctx: &Ctx, f: impl FnOnce() -> Reply) -> Reply {
    if ctx.method == Method::GET {
        f()
    } else {
        Reply::method_not_allowed()
    }
}

async fn health(shared: &Shared, ctx: &Ctx, which: &'static str) -> Reply {
    let verbose = ctx.param("verbose").is_some();
    let checks = |etcd_ok: bool| {
        let etcd = if etcd_ok {
            "[+]etcd ok"
        } else {
            "[-]etcd failed: reason withheld"
        };
        format!(
            "[+]ping ok\n[+]log ok\n{etcd}\n[+]poststarthook/start-apiextensions-controllers ok\n"
        )
    };
    if which == "livez" {
        return if verbose {
            Reply::text(
                StatusCode::OK,
                &format!("{}livez check passed\n", checks(true)),
            )
        } else {
            Reply::text(StatusCode::OK, "ok")
        };
    }
    let mut rx = shared.readyz.subscribe();
    loop {
        let mode = *rx.borrow_and_update();
        match mode {
            Readyz::Ok if verbose => {
                return Reply::text(
                    StatusCode::OK,
                    &format!("{}{which} check passed\n", checks(true)),
                );
            }
            Readyz::Ok => return Reply::text(StatusCode::OK, "ok"),
            Readyz::Failing => {
                return Reply::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("{}{which} check failed\n", checks(false)),
                );
            }
            Readyz::Answer {
                status,
                content_type,
                body,
            } => {
                return Reply {
                    code: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                    content_type,
                    body: body.as_bytes().to_vec(),
                };
            }
            Readyz::Hang => {
                if rx.changed().await.is_err() {
                    return Reply::text(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
                }
            }
        }
    }
}

/// RBAC's answer when the sim refuses everything: discovery and health stay open (kube's
/// `system:discovery` and `system:public-info-viewer` roles), resources are forbidden.
/// `GET` of a cluster-scoped resource: the list, or one object by name.
fn cluster_scoped<T>(
    shared: &Shared,
    ctx: &Ctx,
    resource: &str,
    name: Option<String>,
    objects: impl Fn(&Cluster) -> &BTreeMap<String, T>,
) -> Reply
where
    T: ListableResource + Metadata<Ty = ObjectMeta> + Serialize + Clone + Rows,
{
    if ctx.method != Method::GET {
        return Reply::method_not_allowed();
    }
    let c = shared.cluster();
    let verb = if name.is_some() { "get" } else { "list" };
    if let Some(r) = forbidden(shared, &c, verb, resource, "", None, name.as_deref()) {
        return r;
    }
    let all = objects(&c);
    match name {
        None => list(ctx, all.values().cloned().collect(), c.resource_version),
        Some(n) => match all.get(&n) {
            Some(obj) => one(ctx, obj, c.resource_version),
            None => not_found(resource, "", &n),
        },
    }
}

fn forbidden(
    shared: &Shared,
    c: &Cluster,
    verb: &str,
    resource: &str,
    group: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Option<Reply> {
    if !c.forbidden {
        return None;
    }
    let user = shared
        .options
        .user
        .as_deref()
        .unwrap_or("system:serviceaccount:hybrid-burst:burst");
    let qualified = if group.is_empty() {
        resource.split('/').next().unwrap_or(resource).to_string()
    } else {
        format!("{}.{group}", resource.split('/').next().unwrap_or(resource))
    };
    let subject = match name {
        Some(n) => format!("{qualified} \"{n}\""),
        None => qualified,
    };
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let message = format!(
        "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
    );
    let kind = resource.split('/').next().unwrap_or(resource);
    let mut details = json!({ "group": group, "kind": kind });
    if let Some(n) = name {
        details["name"] = json!(n);
    }
    Some(Reply::error(403, "Forbidden", &message, Some(details)))
}

fn not_found(resource: &str, group: &str, name: &str) -> Reply {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let mut details = json!({ "name": name, "kind": resource });
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    Reply::error(
        404,
        "NotFound",
        &format!("{qualified} \"{name}\" not found"),
        Some(details),
    )
}

/// A list with `labelSelector`, `fieldSelector` (`metadata.name`, `metadata.namespace`),
/// `limit` and `continue`, as the API server pages it.
fn list<T>(ctx: &Ctx, items: Vec<T>, resource_version: u64) -> Reply
where
    T: ListableResource + Metadata<Ty = ObjectMeta> + Serialize + Clone + Rows,
{
    if matches!(ctx.param("watch"), Some("true" | "1")) {
        return Reply::bad_request("watch is not supported by this API server");
    }
    let labels = match Selector::parse(ctx.param("labelSelector").unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return Reply::bad_request(&e),
    };
    let fields = match field_selector(ctx.param("fieldSelector").unwrap_or("")) {
        Ok(f) => f,
        Err(e) => return Reply::bad_request(&e),
    };
    let limit = match ctx.param("limit").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Reply::bad_request("limit must be a non-negative integer"),
    };
    let offset = match ctx.param("continue").filter(|c| !c.is_empty()) {
        None => 0,
        Some(token) => match decode_continue(token) {
            Some(o) => o,
            None => return Reply::bad_request("continue key is not valid"),
        },
    };
    let matching: Vec<T> = items
        .into_iter()
        .filter(|o| {
            let m = o.metadata();
            labels.matches(m.labels.as_ref()) && fields.iter().all(|f| f.matches(m))
        })
        .collect();
    let total = matching.len();
    let end = if limit == 0 {
        total
    } else {
        offset.saturating_add(limit).min(total)
    };
    let page: Vec<T> = matching
        .into_iter()
        .skip(offset)
        .take(end.saturating_sub(offset))
        .collect();
    let more = end < total;
    if ctx.repr == Repr::Table {
        let mut meta = json!({ "resourceVersion": resource_version.to_string() });
        if more {
            meta["continue"] = json!(encode_continue(end));
            meta["remainingItemCount"] = json!(total - end);
        }
        return Reply::table(&table(&page, meta));
    }
    let list = k8s_openapi::List {
        items: page,
        metadata: ListMeta {
            resource_version: Some(resource_version.to_string()),
            continue_: more.then(|| encode_continue(end)),
            remaining_item_count: more.then(|| i64::try_from(total - end).unwrap_or(i64::MAX)),
            self_link: None,
        },
    };
    Reply::ok(&list)
}

/// One object, as itself or as a one-row Table.
fn one<T: Serialize + Rows>(ctx: &Ctx, obj: &T, resource_version: u64) -> Reply {
    match ctx.repr {
        Repr::Json => Reply::ok(obj),
        Repr::Table => Reply::table(&table(
            std::slice::from_ref(obj),
            json!({ "resourceVersion": resource_version.to_string() }),
        )),
    }
}

fn encode_continue(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"offset\":{offset}}}"))
}

fn decode_continue(token: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    usize::try_from(v.get("offset")?.as_u64()?).ok()
}

struct FieldReq {
    field: String,
    value: String,
    equal: bool,
}

impl FieldReq {
    fn matches(&self, m: &ObjectMeta) -> bool {
        let actual = match self.field.as_str() {
            "metadata.name" => m.name.as_deref(),
            _ => m.namespace.as_deref(),
        }
        .unwrap_or("");
        (actual == self.value) == self.equal
    }
}

fn field_selector(raw: &str) -> Result<Vec<FieldReq>, String> {
    let mut out = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = part.split_once("==") {
            (f, v, true)
        } else if let Some((f, v)) = part.split_once('=') {
            (f, v, true)
        } else {
            return Err(format!(
                "invalid selector: '{raw}'; can't understand '{part}'"
            ));
        };
        let field = field.trim();
        if field != "metadata.name" && field != "metadata.namespace" {
            return Err(format!("field label not supported: {field}"));
        }
        out.push(FieldReq {
            field: field.to_string(),
            value: value.trim().to_string(),
            equal,
        });
    }
    Ok(out)
}

/// A Deployment or a StatefulSet, for the parts the scale subresource touches.
trait Scalable: Clone {
    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;
    fn replicas(&self) -> i32;
    fn set_replicas(&mut self, n: i32);
    fn status_replicas(&self) -> i32;
    fn selector(&self) -> LabelSelector;
    fn converge(&mut self);
}

/// `Scalable` for a workload kind: metadata, `spec.replicas` (1 when unset, as the API
/// server defaults it), the selector, the replicas its status reports and how the simulated
/// controller converges it.
macro_rules! scalable {
    ($kind:ty, $status_replicas:expr, $converge:path) => {
        impl Scalable for $kind {
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
            fn replicas(&self) -> i32 {
                self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
            }
            fn set_replicas(&mut self, n: i32) {
                self.spec.get_or_insert_with(Default::default).replicas = Some(n);
            }
            fn status_replicas(&self) -> i32 {
                $status_replicas(self)
            }
            fn selector(&self) -> LabelSelector {
                self.spec
                    .as_ref()
                    .map(|s| s.selector.clone())
                    .unwrap_or_default()
            }
            fn converge(&mut self) {
                $converge(self);
            }
        }
    };
}

scalable!(
    Deployment,
    |d: &Deployment| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
    objects::converge_deployment
);
scalable!(
    StatefulSet,
    |s: &StatefulSet| s.status.as_ref().map_or(0, |s| s.replicas),
    objects::converge_statefulset
);

fn workloads(
    shared: &Shared,
    ctx: &Ctx,
    kind: WorkloadKind,
    namespace: Option<String>,
    name: Option<String>,
    scale: bool,
) -> Reply {
    let resource = match kind {
        WorkloadKind::Deployment => "deployments",
        WorkloadKind::StatefulSet => "statefulsets",
    };
    let verb = match (&ctx.method, name.is_some()) {
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::PATCH, true) if scale => "patch",
        (&Method::PUT, true) if scale => "update",
        _ => return Reply::method_not_allowed(),
    };
    let mut guard = shared.cluster();
    let sub = if scale {
        format!("{resource}/scale")
    } else {
        resource.to_string()
    };
    if let Some(r) = forbidden(
        shared,
        &guard,
        verb,
        &sub,
        "apps",
        namespace.as_deref(),
        name.as_deref(),
    ) {
        return r;
    }
    if scale && ctx.method != Method::GET && guard.scale_writes_failing {
        return Reply::error(500, "InternalError", "etcdserver: request timed out", None);
    }
    let Cluster {
        deployments,
        statefulsets,
        resource_version,
        ..
    } = &mut *guard;
    let rv = *resource_version;
    // The same request against the map of the kind asked for.
    macro_rules! in_map {
        ($map:expr) => {
            one_kind(
                ctx,
                $map,
                resource_version,
                rv,
                resource,
                namespace,
                name,
                scale,
            )
        };
    }
    match kind {
        WorkloadKind::Deployment => in_map!(deployments),
        WorkloadKind::StatefulSet => in_map!(statefulsets),
    }
}

#[allow(clippy::too_many_arguments)]
fn one_kind<T>(
    ctx: &Ctx,
    map: &mut BTreeMap<(String, String), T>,
    resource_version: &mut u64,
    rv: u64,
    resource: &str,
    namespace: Option<String>,
    name: Option<String>,
    scale: bool,
) -> Reply
where
    T: Scalable + ListableResource + Metadata<Ty = ObjectMeta> + Serialize + Rows,
{
    let Some(name) = name else {
        let items: Vec<T> = map
            .iter()
            .filter(|((ns, _), _)| namespace.as_deref().is_none_or(|want| want == ns))
            .map(|(_, o)| o.clone())
            .collect();
        return list(ctx, items, rv);
    };
    let ns = namespace.unwrap_or_default();
    let Some(obj) = map.get_mut(&(ns, name.clone())) else {
        return not_found(resource, "apps", &name);
    };
    if !scale {
        return one(ctx, &*obj, rv);
    }
    let current = objects::scale(
        obj.meta(),
        obj.replicas(),
        obj.status_replicas(),
        &obj.selector(),
    );
    if ctx.method == Method::GET {
        return Reply::ok(&current);
    }
    let wanted = match if ctx.method == Method::PATCH {
        patched_scale(ctx, &current)
    } else {
        replaced_scale(ctx, &name)
    } {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    if let Some(asked) = wanted.metadata.resource_version.as_deref()
        && Some(asked) != current.metadata.resource_version.as_deref()
    {
        return Reply::error(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {resource}.apps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
            Some(json!({ "name": name, "group": "apps", "kind": resource })),
        );
    }
    let replicas = wanted.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    if replicas < 0 {
        return Reply::error(
            422,
            "Invalid",
            &format!(
                "Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
            ),
            Some(json!({
                "name": name,
                "group": "autoscaling",
                "kind": "Scale",
                "causes": [{
                    "reason": "FieldValueInvalid",
                    "message": format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                    "field": "spec.replicas",
                }],
            })),
        );
    }
    let dry_run = ctx.param("dryRun") == Some("All");
    let mut updated = obj.clone();
    if replicas != updated.replicas() {
        updated.set_replicas(replicas);
        let meta = updated.meta_mut();
        meta.generation = Some(meta.generation.unwrap_or(1) + 1);
        *resource_version += 1;
        meta.resource_version = Some(resource_version.to_string());
        updated.converge();
    }
    let answer = objects::scale(
        updated.meta(),
        updated.replicas(),
        updated.status_replicas(),
        &updated.selector(),
    );
    if !dry_run {
        *obj = updated;
    }
    Reply::ok(&answer)
}

fn media_type(ctx: &Ctx) -> String {
    ctx.header(header::CONTENT_TYPE)
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The body's media type must be one of `accepted` (415 with the API server's message).
fn accept_media(ctx: &Ctx, accepted: &[&str]) -> Result<(), Reply> {
    if accepted.contains(&media_type(ctx).as_str()) {
        return Ok(());
    }
    let message = format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        accepted.join(", ")
    );
    Err(Reply::error(415, "UnsupportedMediaType", &message, None))
}

fn patched_scale(ctx: &Ctx, current: &Scale) -> Result<Scale, Reply> {
    accept_media(
        ctx,
        &[
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ],
    )?;
    let patch: Value = serde_json::from_slice(&ctx.body)
        .map_err(|e| Reply::bad_request(&format!("error decoding patch: {e}")))?;
    if !patch.is_object() {
        return Err(Reply::bad_request(
            "error decoding patch: a merge patch must be a JSON object",
        ));
    }
    let mut doc = serde_json::to_value(current)
        .map_err(|e| Reply::error(500, "InternalError", &e.to_string(), None))?;
    merge_patch(&mut doc, &patch);
    serde_json::from_value::<Scale>(doc)
        .map_err(|e| Reply::bad_request(&format!("error decoding patched Scale: {e}")))
}

fn replaced_scale(ctx: &Ctx, name: &str) -> Result<Scale, Reply> {
    accept_media(ctx, &["application/json"])?;
    let raw: Value = serde_json::from_slice(&ctx.body)
        .map_err(|e| Reply::bad_request(&format!("error decoding Scale: {e}")))?;
    if raw
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "Scale")
        || raw
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v != "autoscaling/v1")
    {
        return Err(Reply::bad_request(
            "the body must be an autoscaling/v1 Scale",
        ));
    }
    let scale: Scale = serde_json::from_value(raw)
        .map_err(|e| Reply::bad_request(&format!("error decoding Scale: {e}")))?;
    if let Some(n) = scale.metadata.name.as_deref()
        && n != name
    {
        return Err(Reply::bad_request(&format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    Ok(scale)
}

/// RFC 7386 JSON merge patch (strategic merge patch is the same for a Scale's fields).
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if k.starts_with('$') {
                continue; // strategic-merge directives
            }
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "d": [1], "e": "x"});
        merge_patch(
            &mut doc,
            &json!({"a": {"b": null, "c": 3}, "d": [2], "f": {"g": 1}}),
        );
        assert_eq!(
            doc,
            json!({"a": {"c": 3}, "d": [2], "e": "x", "f": {"g": 1}})
        );
    }

    #[test]
    fn routes() {
        assert!(matches!(target("/readyz"), Some(Target::Health("readyz"))));
        assert!(matches!(
            target("/apis/apps/v1/namespaces/apps/deployments/web/scale"),
            Some(Target::Workloads {
                kind: WorkloadKind::Deployment,
                scale: true,
                ..
            })
        ));
        assert!(matches!(
            target("/apis/apps/v1/statefulsets"),
            Some(Target::Workloads {
                kind: WorkloadKind::StatefulSet,
                namespace: None,
                ..
            })
        ));
        assert!(target("/apis/apps/v1/replicasets").is_none());
        assert!(target("/api/v1/pods").is_none());
        assert!(target("/").is_none());
    }

    #[test]
    fn continue_tokens_round_trip() {
        assert_eq!(decode_continue(&encode_continue(500)), Some(500));
        assert_eq!(decode_continue("not-a-token"), None);
    }
}
