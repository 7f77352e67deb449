//! The sim refuses what Azure refuses, with Azure's codes and bodies (raw HTTP, no client).
#![allow(clippy::unwrap_used)]

use burst_arm_sim::{self as sim, SimConfig, SimHandle};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const API_VERSION: &str = "api-version=2025-11-01";
const ARM: &str = "https://management.azure.com/";

/// What the sim answered: status, headers, JSON body (`Null` when empty).
type Answer = (StatusCode, HeaderMap, Value);

struct Env {
    sim: SimHandle,
    http: reqwest::Client,
    token: String,
    /// The scale set's URL.
    url: String,
}

/// A sim with one running instance; capacity writes take `op`.
async fn env(op: Duration) -> Env {
    env_with(SimConfig {
        initial_capacity: 1,
        operation_duration: op,
        ..instant_config()
    })
    .await
}

fn instant_config() -> SimConfig {
    SimConfig {
        boot_time: Duration::ZERO,
        operation_duration: Duration::ZERO,
        ..Default::default()
    }
}

async fn env_with(config: SimConfig) -> Env {
    let sim = sim::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let token = token(&sim, &http, ARM).await;
    let url = format!("{}{}", sim.base_url(), sim.scale_set_id());
    Env {
        sim,
        http,
        token,
        url,
    }
}

async fn token(sim: &SimHandle, http: &reqwest::Client, resource: &str) -> String {
    let mut url = url::Url::parse(&sim.identity_endpoint()).unwrap();
    url.query_pairs_mut()
        .append_pair("resource", resource)
        .append_pair("api-version", "2019-08-01");
    let resp = http
        .get(url)
        .header("X-IDENTITY-HEADER", sim.identity_header());
    let v: Value = resp.send().await.unwrap().json().await.unwrap();
    assert!(v["expires_on"].is_string(), "expires_on is a string: {v}");
    assert_eq!(v["token_type"], "Bearer");
    v["access_token"].as_str().unwrap().to_string()
}

impl Env {
    async fn call(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if !body.is_empty() {
            req = req.body(body.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, headers, v)
    }

    /// `{scale set}{path}?api-version=..[&query]`.
    fn at(&self, path: &str, query: &str) -> String {
        let more = if query.is_empty() { "" } else { "&" };
        format!("{}{path}?{API_VERSION}{more}{query}", self.url)
    }

    /// An authenticated request to `{scale set}{path}` with the api-version.
    async fn send(&self, method: Method, path: &str, query: &str) -> Answer {
        let body = if method == Method::PUT { "{}" } else { "" };
        self.call(method, &self.at(path, query), Some(&self.token), &[], body)
            .await
    }

    async fn get(&self, path: &str, query: &str) -> Answer {
        self.send(Method::GET, path, query).await
    }

    async fn patch(&self, body: &str, extra: &[(&str, &str)]) -> Answer {
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend_from_slice(extra);
        let url = self.at("", "");
        self.call(Method::PATCH, &url, Some(&self.token), &headers, body)
            .await
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// The answer is this status with this ARM error code.
#[track_caller]
fn assert_error(answer: &Answer, status: StatusCode, want: &str) {
    assert_eq!((answer.0, code(&answer.2)), (status, want), "{}", answer.2);
}

#[tokio::test]
async fn authentication_and_api_version() {
    let e = env(Duration::ZERO).await;
    // A token for another audience and an expired one are refused as well.
    let vault = token(&e.sim, &e.http, "https://vault.azure.net").await;
    e.sim.set_token_lifetime(Duration::ZERO);
    let expired = token(&e.sim, &e.http, ARM).await;
    for (token, want) in [
        (None, "AuthenticationFailed"),
        (Some("forged"), "InvalidAuthenticationToken"),
        (Some(vault.as_str()), "InvalidAuthenticationTokenAudience"),
        (Some(expired.as_str()), "ExpiredAuthenticationToken"),
    ] {
        let answer = e.call(Method::GET, &e.at("", ""), token, &[], "").await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, want);
        assert!(answer.1.contains_key("www-authenticate"), "{want}");
    }
    // api-version missing / unknown.
    for (url, want) in [
        (e.url.clone(), "MissingApiVersionParameter"),
        (
            format!("{}?api-version=2015-01-01", e.url),
            "NoRegisteredProviderFound",
        ),
    ] {
        let answer = e.call(Method::GET, &url, Some(&e.token), &[], "").await;
        assert_error(&answer, StatusCode::BAD_REQUEST, want);
    }
    // And a good one.
    let (s, h, v) = e.get("", "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["sku"]["capacity"], 1);
    assert!(h.contains_key("x-ms-ratelimit-remaining-resource"));
}

#[tokio::test]
async fn identity_endpoint_checks() {
    let e = env(Duration::ZERO).await;
    let base = e.sim.identity_endpoint();
    let h = e.sim.identity_header();
    let both = "resource=https://management.azure.com/&api-version=2019-08-01";
    let cases: [(&str, Option<&str>, u16); 4] = [
        (both, None, 400),
        (both, Some("nope"), 401),
        ("resource=https://management.azure.com/", Some(&h), 400),
        ("api-version=2019-08-01", Some(&h), 400),
    ];
    for (query, header, want) in cases {
        let mut req = e.http.get(format!("{base}?{query}"));
        if let Some(v) = header {
            req = req.header("X-IDENTITY-HEADER", v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{query} {header:?}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["statusCode"], want);
    }
    let post = e
        .http
        .post(format!("{base}?resource=x&api-version=2019-08-01"));
    let resp = post.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn patch_body_rules() {
    let e = env(Duration::ZERO).await;
    // Re-sending the GET body (with identity) is the classic trap.
    let (_, _, full) = e.get("", "").await;
    let answer = e.patch(&full.to_string(), &[]).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "LinkedAuthorizationFailed",
    );
    let cases = [
        (r#"{"sku":{"capacity":2},"tags":{}}"#, "InvalidParameter"),
        (
            r#"{"sku":{"capacity":2,"name":"Standard_D2s_v3"}}"#,
            "InvalidParameter",
        ),
        (r#"{"sku":{}}"#, "InvalidParameter"),
        (r#"{"sku":2}"#, "InvalidParameter"),
        (r#"{"sku":{"capacity":1001}}"#, "InvalidParameter"),
        (r#"{"sku":{"capacity":-1}}"#, "InvalidParameter"),
        (r#"{"sku":{"capacity":"2"}}"#, "InvalidRequestContent"),
        (r#"{"sku":{"capacity":1.5}}"#, "InvalidRequestContent"),
        ("[1]", "InvalidRequestContent"),
        ("not json", "InvalidRequestContent"),
    ];
    for (body, want) in cases {
        assert_error(&e.patch(body, &[]).await, StatusCode::BAD_REQUEST, want);
    }
    let (s, _, v) = e.patch(r#"{"sku":{"capacity":1001}}"#, &[]).await;
    assert_eq!(
        (s, v["error"]["target"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sku.capacity"))
    );
    // Content type, size limit, stale If-Match.
    let text = [("Content-Type", "text/plain")];
    let answer = e
        .call(Method::PATCH, &e.at("", ""), Some(&e.token), &text, "{}")
        .await;
    let media = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    assert_error(&answer, media, "UnsupportedMediaType");
    let pad = "x".repeat(70 * 1024);
    let big = format!(r#"{{"sku":{{"capacity":2}},"pad":"{pad}"}}"#);
    let answer = e.patch(&big, &[]).await;
    assert_error(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
    );
    let stale = [("If-Match", "\"0\"")];
    let answer = e.patch(r#"{"sku":{"capacity":2}}"#, &stale).await;
    assert_error(
        &answer,
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailed",
    );
    // Nothing above changed the scale set.
    assert_eq!((e.sim.capacity(), e.sim.snapshot().etag), (1, 1));
    // The sparse body with the right etag (whitespace is fine: it is JSON).
    let current = [("If-Match", "\"1\"")];
    let (s, _, v) = e.patch("{ \"sku\": { \"capacity\": 2 } }", &current).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["sku"]["capacity"].as_u64(), v["etag"].as_str()),
        (Some(2), Some("\"2\""))
    );
}

#[tokio::test]
async fn long_running_operation() {
    let e = env(Duration::from_millis(300)).await;
    let current = [("If-Match", "\"1\"")];
    let (s, h, v) = e.patch(r#"{"sku":{"capacity":3}}"#, &current).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(v, Value::Null);
    let header = |name: &str| h[name].to_str().unwrap().to_string();
    let (op, location) = (header("azure-asyncoperation"), header("location"));
    assert_eq!(h["retry-after"], "1");
    assert!(op.starts_with(&format!(
        "{}/subscriptions/{}/providers/Microsoft.Compute/locations/westeurope/operations/",
        e.sim.base_url(),
        e.sim.scale_set_id().subscription()
    )));
    assert!(location.ends_with("&monitor=true"));
    // The scale set shows the new capacity while updating.
    assert_eq!(e.get("", "").await.2["sku"]["capacity"], 3);
    // Poll until done (bounded by the test's own patience, not a timing assertion).
    let env = &e;
    let poll = |url: String| async move {
        let token = Some(env.token.as_str());
        env.call(Method::GET, &url, token, &[], "").await
    };
    let mut seen = Vec::new();
    for _ in 0..500 {
        let (s, _, v) = poll(op.clone()).await;
        assert_eq!(s, StatusCode::OK);
        let status = v["status"].as_str().unwrap().to_string();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "Succeeded" {
            assert!(v["endTime"].is_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.last().map(String::as_str), Some("Succeeded"));
    assert_eq!(poll(location).await.0, StatusCode::OK);
    let state = &e.get("", "").await.2["properties"]["provisioningState"];
    assert_eq!(state, "Succeeded");
    // A preempted operation ends Failed with OperationPreempted.
    let (s, h, _) = e.patch(r#"{"sku":{"capacity":4}}"#, &[]).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert!(e.sim.preempt_operation());
    let op = h["azure-asyncoperation"].to_str().unwrap().to_string();
    let (_, _, v) = poll(op).await;
    assert_eq!(v["status"], "Failed");
    assert_eq!(v["error"]["code"], "OperationPreempted");
}

#[tokio::test]
async fn routes_methods_and_names() {
    let e = env(Duration::ZERO).await;
    let (s, h, v) = e.send(Method::PUT, "", "").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed")
    );
    assert_eq!(h["allow"], "GET, PATCH");
    let answer = e.send(Method::DELETE, "/instanceView", "").await;
    assert_error(&answer, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    let not_found = StatusCode::NOT_FOUND;
    assert_error(&e.get("/nothing", "").await, not_found, "NotFound");
    let elsewhere = format!("{}/elsewhere", e.sim.base_url());
    let answer = e.call(Method::GET, &elsewhere, None, &[], "").await;
    assert_error(&answer, not_found, "NotFound");
    // ARM matches names and fixed segments case-insensitively.
    let upper = e
        .url
        .replace("virtualMachineScaleSets", "VIRTUALMACHINESCALESETS")
        .replace("vmss-burst", "VMSS-BURST");
    for (url, want) in [
        (
            e.url.replace("vmss-burst", "vmss-other"),
            "ResourceNotFound",
        ),
        (
            e.url.replace("rg-burst", "rg-other"),
            "ResourceGroupNotFound",
        ),
        (upper, ""),
    ] {
        let url = format!("{url}?{API_VERSION}");
        let answer = e.call(Method::GET, &url, Some(&e.token), &[], "").await;
        let status = if want.is_empty() {
            StatusCode::OK
        } else {
            not_found
        };
        assert_error(&answer, status, want);
    }
    // The VM list with instance views.
    let (s, _, v) = e.get("/virtualMachines", "$expand=instanceView").await;
    assert_eq!(s, StatusCode::OK);
    let vms = v["value"].as_array().unwrap();
    assert_eq!(vms.len(), 1);
    assert_eq!(vms[0]["instanceId"], "0");
    assert_eq!(
        vms[0]["properties"]["instanceView"]["statuses"][1],
        json!({"code": "PowerState/running", "level": "Info", "displayStatus": "VM running"})
    );
    // One VM: its instance view only when asked for (`$expand`), or on its own route.
    let (s, _, v) = e.get("/virtualMachines/0", "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["name"], "vmss-burst_0");
    assert_eq!(v["properties"]["provisioningState"], "Succeeded");
    assert!(v["properties"].get("instanceView").is_none(), "{v}");
    let (s, _, v) = e.get("/virtualMachines/0", "$expand=instanceView").await;
    assert_eq!(s, StatusCode::OK);
    let statuses = &v["properties"]["instanceView"]["statuses"];
    assert_eq!(statuses[1]["code"], "PowerState/running");
    let (s, _, v) = e.get("/virtualMachines/0/instanceView", "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["statuses"][0]["code"], "ProvisioningState/succeeded");
    assert_eq!(v["statuses"][1]["code"], "PowerState/running");
    let answer = e.get("/virtualMachines/7", "").await;
    assert_error(&answer, not_found, "NotFound");
    // Every error body above is the ARM shape, logged with its status.
    assert!(e.sim.requests().iter().any(|r| r.status == 405));
}

/// Power states are per VM: the scale set's instance view summary counts provisioning states
/// only (as in the real answer quoted in azure-rest-api-specs issue #3593), however the VMs
/// stand; the VM list pages with `nextLink`.
#[tokio::test]
async fn instance_view_summary_and_paged_vm_list() {
    let e = env_with(SimConfig {
        initial_capacity: 3,
        vm_page_size: 2,
        ..instant_config()
    })
    .await;
    // Two more VMs that have not booted yet.
    e.sim.set_boot_time(Duration::from_secs(3600));
    assert_eq!(
        e.patch(r#"{"sku":{"capacity":5}}"#, &[]).await.0,
        StatusCode::OK
    );
    let (s, _, v) = e.get("/instanceView", "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["virtualMachine"]["statusesSummary"],
        json!([
            {"code": "ProvisioningState/creating", "count": 2},
            {"code": "ProvisioningState/succeeded", "count": 3}
        ])
    );
    assert!(!v.to_string().contains("PowerState"), "{v}");
    // The list: pages of two, nextLink keeping the query, then no nextLink.
    let mut next = Some(e.at("/virtualMachines", "$expand=instanceView"));
    let mut power = Vec::new();
    let mut pages = 0;
    while let Some(url) = next.take() {
        let (s, _, v) = e.call(Method::GET, &url, Some(&e.token), &[], "").await;
        assert_eq!(s, StatusCode::OK);
        pages += 1;
        for vm in v["value"].as_array().unwrap() {
            let code = &vm["properties"]["instanceView"]["statuses"][1]["code"];
            power.push(code.as_str().unwrap().to_string());
        }
        next = v["nextLink"].as_str().map(String::from);
        if let Some(n) = &next {
            assert!(n.starts_with(&e.url), "{n}");
            assert!(n.contains("$expand=instanceView"), "{n}");
            assert!(n.contains(API_VERSION), "{n}");
        }
    }
    assert_eq!(pages, 3);
    let (running, starting) = ("PowerState/running", "PowerState/starting");
    assert_eq!(power, [running, running, running, starting, starting]);
    let answer = e.get("/virtualMachines", "$skiptoken=zz").await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "InvalidSkipToken");
}

/// A Flexible scale set says so and refuses the Uniform-only operations with Azure's 400
/// (message as quoted in microsoft/OMS-Agent-for-Linux PR #1475 and
/// hashicorp/nomad-autoscaler issue #1096); the scale set itself and its capacity still work.
#[tokio::test]
async fn flexible_scale_set_refuses_uniform_only_operations() {
    let e = env_with(SimConfig {
        initial_capacity: 1,
        orchestration_mode: "Flexible".into(),
        ..instant_config()
    })
    .await;
    let (s, _, v) = e.get("", "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["properties"]["orchestrationMode"], "Flexible");
    let vms = "VirtualMachineScaleSets.virtualMachines";
    for (method, suffix, op) in [
        (
            Method::GET,
            "/instanceView",
            "VirtualMachineScaleSets.instanceView.GET".to_string(),
        ),
        (Method::GET, "/virtualMachines", format!("{vms}.GET")),
        (Method::GET, "/virtualMachines/0", format!("{vms}.GET")),
        (
            Method::POST,
            "/virtualMachines/0/simulateEviction",
            format!("{vms}.simulateEviction.POST"),
        ),
    ] {
        let answer = e.send(method, suffix, "").await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadRequest");
        assert_eq!(
            answer.2["error"]["message"],
            format!("Operation '{op}' is not allowed on Virtual Machine Scale Set 'vmss-burst'.")
        );
    }
    assert_eq!(
        e.patch(r#"{"sku":{"capacity":2}}"#, &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(e.sim.capacity(), 2);
}
