//! The sim answers like kube-apiserver: status codes, `Status` bodies, selectors, pages,
//! scale writes and their validation. Raw HTTP, so nothing in a client library hides a
//! wrong shape.
#![allow(clippy::unwrap_used)]

use burst_kube_sim::{self as sim, Readyz, SimHandle, SimOptions, SimWorkload, WorkloadKind};
use serde_json::{Value, json};

const TOKEN: &str = "t0ken";

async fn sim_with_workloads() -> SimHandle {
    let sim = sim::start(SimOptions::with_token(TOKEN)).await.unwrap();
    sim.add_example_workloads();
    sim.add_deployment(SimWorkload::new("tools", "batch").replicas(1));
    sim
}

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn new(sim: &SimHandle) -> Self {
        Self {
            base: sim.base_url(),
            client: reqwest::Client::new(),
        }
    }
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, String, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        let content_type = resp.headers().get("content-type");
        let ct = content_type.map_or(String::new(), |v| v.to_str().unwrap().to_string());
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (code, ct, json)
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        let (code, _, v) = self
            .send(reqwest::Method::GET, path, None, None, Some(TOKEN))
            .await;
        (code, v)
    }
    async fn patch(&self, path: &str, ct: &str, body: &str) -> (u16, Value) {
        let (code, _, v) = self
            .send(
                reqwest::Method::PATCH,
                path,
                Some(ct),
                Some(body),
                Some(TOKEN),
            )
            .await;
        (code, v)
    }
}

const MERGE: &str = "application/merge-patch+json";
const WEB_SCALE: &str = "/apis/apps/v1/namespaces/apps/deployments/web/scale";

#[tokio::test]
async fn unauthenticated_requests_get_the_api_servers_401() {
    let sim = sim_with_workloads().await;
    let http = Http::new(&sim);
    for token in [None, Some("wrong")] {
        for path in ["/readyz", "/api/v1/nodes", "/apis/apps/v1/deployments"] {
            let (code, ct, body) = http
                .send(reqwest::Method::GET, path, None, None, token)
                .await;
            assert_eq!((code, ct.as_str()), (401, "application/json"), "{path}");
            assert_eq!(
                body,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
            );
        }
    }
}

#[tokio::test]
async fn health_version_and_discovery() {
    let sim = sim_with_workloads().await;
    let http = Http::new(&sim);
    assert_eq!(http.get("/readyz").await, (200, json!("ok")));
    assert_eq!(http.get("/livez").await, (200, json!("ok")));
    let (code, verbose) = http.get("/readyz?verbose").await;
    assert_eq!(code, 200);
    assert!(verbose.as_str().unwrap().ends_with("readyz check passed\n"));
    sim.set_readyz(Readyz::Failing);
    let (code, body) = http.get("/readyz").await;
    assert_eq!(code, 500);
    assert!(body.as_str().unwrap().contains("[-]etcd failed"));
    assert_eq!(http.get("/livez").await, (200, json!("ok")), "still alive");

    let (_, v) = http.get("/version").await;
    assert_eq!(
        (v["major"].clone(), v["minor"].clone()),
        (json!("1"), json!("33"))
    );
    let (_, v) = http.get("/api").await;
    assert_eq!(
        (v["kind"].clone(), v["versions"].clone()),
        (json!("APIVersions"), json!(["v1"]))
    );
    let (_, v) = http.get("/apis").await;
    assert_eq!(
        v["groups"][0]["preferredVersion"]["groupVersion"],
        "apps/v1"
    );
    let (_, v) = http.get("/apis/apps/v1").await;
    let names: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "deployments",
            "deployments/scale",
            "statefulsets",
            "statefulsets/scale"
        ]
    );
    assert_eq!(v["resources"][1]["group"], "autoscaling");
    assert_eq!(v["resources"][1]["kind"], "Scale");
}

#[tokio::test]
async fn readyz_hang_is_released() {
    let sim = sim_with_workloads().await;
    sim.set_readyz(Readyz::Hang);
    let http = Http::new(&sim);
    let pending = tokio::spawn(async move { http.get("/readyz").await });
    // Wait until the request is in (recorded with status 0 while it hangs).
    while !sim
        .requests()
        .iter()
        .any(|r| r.path == "/readyz" && r.status == 0)
    {
        tokio::task::yield_now().await;
    }
    assert!(!pending.is_finished());
    sim.set_readyz(Readyz::Ok);
    assert_eq!(pending.await.unwrap(), (200, json!("ok")));
    assert_eq!(sim.requests()[0].status, 200);
}

#[tokio::test]
async fn not_found_and_method_not_allowed_are_status_objects() {
    let sim = sim_with_workloads().await;
    let http = Http::new(&sim);
    assert_eq!(
        http.get("/api/v1/pods").await,
        (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "the server could not find the requested resource",
                   "reason": "NotFound", "details": {}, "code": 404})
        )
    );
    assert_eq!(
        http.get("/apis/apps/v1/namespaces/apps/deployments/nope")
            .await,
        (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "deployments.apps \"nope\" not found", "reason": "NotFound",
                   "details": {"name": "nope", "group": "apps", "kind": "deployments"},
                   "code": 404})
        )
    );
    let (code, body) = http.get("/api/v1/nodes/ghost").await;
    assert_eq!(
        (code, body["message"].clone()),
        (404, json!("nodes \"ghost\" not found"))
    );
    let (code, _, body) = http
        .send(
            reqwest::Method::DELETE,
            "/apis/apps/v1/namespaces/apps/deployments/web",
            None,
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(code, 405);
    assert_eq!(body["reason"], "MethodNotAllowed");
}

#[tokio::test]
async fn lists_filter_by_label_and_field_and_page() {
    let sim = sim_with_workloads().await;
    let http = Http::new(&sim);
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                format!(
                    "{}/{}",
                    d["metadata"]["namespace"].as_str().unwrap(),
                    d["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let (code, v) = http.get("/apis/apps/v1/deployments").await;
    assert_eq!(code, 200);
    assert_eq!(
        (v["kind"].clone(), v["apiVersion"].clone()),
        (json!("DeploymentList"), json!("apps/v1"))
    );
    assert_eq!(names(&v), vec!["apps/api", "apps/web", "tools/batch"]);

    let (_, v) = http
        .get("/apis/apps/v1/deployments?labelSelector=hybrid-burst.io%2Ftier%3Dcritical")
        .await;
    assert_eq!(names(&v), vec!["apps/api", "apps/web"]);
    let (_, v) = http
        .get("/apis/apps/v1/deployments?labelSelector=hybrid-burst.io%2Ftier%21%3Dcritical")
        .await;
    assert_eq!(names(&v), vec!["tools/batch"]);
    let (_, v) = http.get("/apis/apps/v1/namespaces/tools/deployments").await;
    assert_eq!(names(&v), vec!["tools/batch"]);
    let (_, v) = http
        .get("/apis/apps/v1/deployments?fieldSelector=metadata.name%3Dweb")
        .await;
    assert_eq!(names(&v), vec!["apps/web"]);
    let (_, v) = http
        .get("/apis/apps/v1/namespaces/nowhere/deployments")
        .await;
    assert_eq!(names(&v), Vec::<String>::new());

    let (code, v) = http
        .get("/apis/apps/v1/deployments?labelSelector=a%20b")
        .await;
    assert_eq!((code, v["reason"].clone()), (400, json!("BadRequest")));
    let (code, v) = http
        .get("/apis/apps/v1/deployments?fieldSelector=spec.paused%3Dtrue")
        .await;
    assert_eq!(
        (code, v["message"].clone()),
        (400, json!("field label not supported: spec.paused"))
    );

    // Pages: limit + continue, with the remaining count like the API server.
    let (_, p1) = http.get("/apis/apps/v1/deployments?limit=2").await;
    assert_eq!(names(&p1), vec!["apps/api", "apps/web"]);
    assert_eq!(p1["metadata"]["remainingItemCount"], 1);
    let token = p1["metadata"]["continue"].as_str().unwrap();
    let (_, p2) = http
        .get(&format!(
            "/apis/apps/v1/deployments?limit=2&continue={token}"
        ))
        .await;
    assert_eq!(names(&p2), vec!["tools/batch"]);
    assert!(p2["metadata"].get("continue").is_none());
    let (code, _) = http.get("/apis/apps/v1/deployments?continue=garbage").await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn scale_subresource_reads_and_writes() {
    let sim = sim_with_workloads().await;
    let http = Http::new(&sim);
    let (code, s) = http.get(WEB_SCALE).await;
    assert_eq!(code, 200);
    assert_eq!(
        (
            s["kind"].clone(),
            s["apiVersion"].clone(),
            s["spec"].clone(),
            s["status"].clone()
        ),
        (
            json!("Scale"),
            json!("autoscaling/v1"),
            json!({"replicas": 0}),
            json!({"replicas": 0, "selector": "app.kubernetes.io/name=web"})
        )
    );
    let rv0 = s["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    for ct in [
        MERGE,
        "application/strategic-merge-patch+json; charset=utf-8",
    ] {
        let (code, s) = http
            .patch(WEB_SCALE, ct, r#"{"spec":{"replicas":4}}"#)
            .await;
        assert_eq!(
            (code, s["spec"]["replicas"].clone()),
            (200, json!(4)),
            "{ct}"
        );
    }
    assert_eq!(
        sim.replicas(WorkloadKind::Deployment, "apps", "web"),
        Some(4)
    );
    let (_, d) = http
        .get("/apis/apps/v1/namespaces/apps/deployments/web")
        .await;
    assert_eq!(d["status"]["readyReplicas"], 4);
    assert_eq!(
        d["metadata"]["generation"], 2,
        "same count twice bumps once"
    );
    assert_ne!(d["metadata"]["resourceVersion"].as_str().unwrap(), rv0);

    // PUT a whole Scale (what replace_scale sends).
    let (code, _, s) = http
        .send(
            reqwest::Method::PUT,
            "/apis/apps/v1/namespaces/apps/statefulsets/db-replica/scale",
            Some("application/json"),
            Some(r#"{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"db-replica","namespace":"apps"},"spec":{"replicas":1}}"#),
            Some(TOKEN),
        )
        .await;
    assert_eq!((code, s["spec"]["replicas"].clone()), (200, json!(1)));
    assert_eq!(
        sim.replicas(WorkloadKind::StatefulSet, "apps", "db-replica"),
        Some(1)
    );

    // dryRun answers without storing.
    let (code, s) = http
        .patch(
            &format!("{WEB_SCALE}?dryRun=All"),
            MERGE,
            r#"{"spec":{"replicas":9}}"#,
        )
        .await;
    assert_eq!((code, s["spec"]["replicas"].clone()), (200, json!(9)));
    assert_eq!(
        sim.replicas(WorkloadKind::Deployment, "apps", "web"),
        Some(4)
    );
}

#[tokio::test]
async fn scale_writes_are_validated() {
    let sim = sim_with_workloads().await;
    let http = Http::new(&sim);
    assert_eq!(
        http.patch(WEB_SCALE, MERGE, r#"{"spec":{"replicas":-1}}"#)
            .await,
        (
            422,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "Scale.autoscaling \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                   "reason": "Invalid",
                   "details": {"name": "web", "group": "autoscaling", "kind": "Scale",
                               "causes": [{"reason": "FieldValueInvalid",
                                           "message": "Invalid value: -1: must be greater than or equal to 0",
                                           "field": "spec.replicas"}]},
                   "code": 422})
        )
    );
    let (code, v) = http
        .patch(
            WEB_SCALE,
            "application/json-patch+json",
            r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
        )
        .await;
    assert_eq!(
        (code, v["reason"].clone()),
        (415, json!("UnsupportedMediaType"))
    );
    let (code, v) = http.patch(WEB_SCALE, MERGE, "{not json").await;
    assert_eq!((code, v["reason"].clone()), (400, json!("BadRequest")));
    let (code, v) = http
        .patch(WEB_SCALE, MERGE, r#"{"spec":{"replicas":"2"}}"#)
        .await;
    assert_eq!((code, v["reason"].clone()), (400, json!("BadRequest")));
    let (code, v) = http
        .patch(
            WEB_SCALE,
            MERGE,
            r#"{"metadata":{"resourceVersion":"1"},"spec":{"replicas":2}}"#,
        )
        .await;
    assert_eq!(
        (code, v["reason"].clone(), v["message"].clone()),
        (
            409,
            json!("Conflict"),
            json!(
                "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
            )
        )
    );
    let (code, _, v) = http
        .send(
            reqwest::Method::PUT,
            WEB_SCALE,
            Some("application/json"),
            Some(r#"{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"api"},"spec":{"replicas":2}}"#),
            Some(TOKEN),
        )
        .await;
    assert_eq!(
        (code, v["message"].clone()),
        (
            400,
            json!("the name of the object (api) does not match the name on the URL (web)")
        )
    );
    let (code, v) = http
        .patch(
            "/apis/apps/v1/namespaces/apps/deployments/nope/scale",
            MERGE,
            r#"{"spec":{"replicas":1}}"#,
        )
        .await;
    assert_eq!(
        (code, v["message"].clone()),
        (404, json!("deployments.apps \"nope\" not found"))
    );
    // Nothing above changed anything.
    assert_eq!(
        sim.replicas(WorkloadKind::Deployment, "apps", "web"),
        Some(0)
    );
}

#[tokio::test]
async fn rbac_refusal_names_user_verb_and_resource() {
    let sim = sim::start(SimOptions {
        token: Some(TOKEN.into()),
        user: Some("system:serviceaccount:hybrid-burst:migrator".into()),
        tls: false,
    })
    .await
    .unwrap();
    sim.add_deployment(SimWorkload::new("apps", "web"));
    sim.set_forbidden(true);
    let http = Http::new(&sim);
    assert_eq!(
        http.get("/readyz").await,
        (200, json!("ok")),
        "public info stays open"
    );
    let (code, v) = http.get("/apis/apps/v1").await;
    assert_eq!(
        (code, v["kind"].clone()),
        (200, json!("APIResourceList")),
        "discovery stays open"
    );
    let (code, v) = http
        .patch(WEB_SCALE, MERGE, r#"{"spec":{"replicas":1}}"#)
        .await;
    assert_eq!(
        (code, v["message"].clone()),
        (
            403,
            json!(
                "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:hybrid-burst:migrator\" cannot patch resource \"deployments/scale\" in API group \"apps\" in the namespace \"apps\""
            )
        )
    );
    let (code, v) = http.get("/api/v1/nodes").await;
    assert_eq!(
        (code, v["message"].clone()),
        (
            403,
            json!(
                "nodes is forbidden: User \"system:serviceaccount:hybrid-burst:migrator\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
            )
        )
    );
}

#[tokio::test]
async fn refuses_connections_while_stopped_and_comes_back_on_the_same_port() {
    let sim = sim_with_workloads().await;
    let http = Http::new(&sim);
    sim.stop_listening().await;
    assert!(!sim.is_listening());
    let err = http
        .client
        .get(format!("{}/readyz", sim.base_url()))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    sim.resume_listening().await.unwrap();
    assert_eq!(http.get("/readyz").await, (200, json!("ok")));
}
