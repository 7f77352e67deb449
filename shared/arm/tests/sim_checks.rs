//! The sim refuses what Azure refuses, with Azure's codes and bodies (raw HTTP, no client).
#![allow(clippy::unwrap_used)]

use burst_arm::sim::{self, SimConfig, SimHandle};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

struct Env {
    sim: SimHandle,
    http: reqwest::Client,
    token: String,
    url: String,
}

async fn env(op: Duration) -> Env {
    let sim = sim::start(SimConfig {
        initial_capacity: 1,
        boot_time: Duration::ZERO,
        operation_duration: op,
        ..Default::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let token = token(&sim, &http, "https://management.azure.com/").await;
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
    let v: Value = http
        .get(url)
        .header("X-IDENTITY-HEADER", sim.identity_header())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
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

    async fn patch(
        &self,
        body: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend_from_slice(extra);
        self.call(
            Method::PATCH,
            &format!("{}?api-version=2025-11-01", self.url),
            Some(&self.token),
            &headers,
            body,
        )
        .await
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn authentication_and_api_version() {
    let e = env(Duration::ZERO).await;
    let get = format!("{}?api-version=2025-11-01", e.url);
    let (s, h, v) = e.call(Method::GET, &get, None, &[], "").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "AuthenticationFailed")
    );
    assert!(h.contains_key("www-authenticate"));
    let (s, _, v) = e.call(Method::GET, &get, Some("forged"), &[], "").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken")
    );
    // A token for another audience is refused by ARM.
    let vault = token(&e.sim, &e.http, "https://vault.azure.net").await;
    let (s, _, v) = e.call(Method::GET, &get, Some(&vault), &[], "").await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenAudience"
        )
    );
    // An expired token.
    e.sim.set_token_lifetime(Duration::ZERO);
    let expired = token(&e.sim, &e.http, "https://management.azure.com/").await;
    let (s, _, v) = e.call(Method::GET, &get, Some(&expired), &[], "").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "ExpiredAuthenticationToken")
    );
    // api-version missing / unknown.
    let (s, _, v) = e.call(Method::GET, &e.url, Some(&e.token), &[], "").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "MissingApiVersionParameter")
    );
    let (s, _, v) = e
        .call(
            Method::GET,
            &format!("{}?api-version=2015-01-01", e.url),
            Some(&e.token),
            &[],
            "",
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "NoRegisteredProviderFound")
    );
    // And a good one.
    let (s, h, v) = e.call(Method::GET, &get, Some(&e.token), &[], "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["sku"]["capacity"], 1);
    assert!(h.contains_key("x-ms-ratelimit-remaining-resource"));
}

#[tokio::test]
async fn identity_endpoint_checks() {
    let e = env(Duration::ZERO).await;
    let base = e.sim.identity_endpoint();
    let h = e.sim.identity_header();
    let cases: [(&str, Option<&str>, u16); 4] = [
        (
            "resource=https://management.azure.com/&api-version=2019-08-01",
            None,
            400,
        ),
        (
            "resource=https://management.azure.com/&api-version=2019-08-01",
            Some("nope"),
            401,
        ),
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
    let resp = e
        .http
        .post(format!("{base}?resource=x&api-version=2019-08-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn patch_body_rules() {
    let e = env(Duration::ZERO).await;
    // Re-sending the GET body (with identity) is the classic trap.
    let get = format!("{}?api-version=2025-11-01", e.url);
    let (_, _, full) = e.call(Method::GET, &get, Some(&e.token), &[], "").await;
    let (s, _, v) = e.patch(&full.to_string(), &[]).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "LinkedAuthorizationFailed")
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
        let (s, _, v) = e.patch(body, &[]).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, want), "{body}");
    }
    let (s, _, v) = e.patch(r#"{"sku":{"capacity":1001}}"#, &[]).await;
    assert_eq!(
        (s, v["error"]["target"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sku.capacity"))
    );
    // Content type.
    let (s, _, v) = e
        .call(
            Method::PATCH,
            &get,
            Some(&e.token),
            &[("Content-Type", "text/plain")],
            r#"{"sku":{"capacity":2}}"#,
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
    );
    // Size limit.
    let big = format!(
        r#"{{"sku":{{"capacity":2}},"pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let (s, _, v) = e.patch(&big, &[]).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge")
    );
    // Stale If-Match.
    let (s, _, v) = e
        .patch(r#"{"sku":{"capacity":2}}"#, &[("If-Match", "\"0\"")])
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PRECONDITION_FAILED, "PreconditionFailed")
    );
    // Nothing above changed the scale set.
    assert_eq!((e.sim.capacity(), e.sim.snapshot().etag), (1, 1));
    // The sparse body with the right etag (whitespace is fine: it is JSON).
    let (s, _, v) = e
        .patch("{ \"sku\": { \"capacity\": 2 } }", &[("If-Match", "\"1\"")])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["sku"]["capacity"].as_u64(), v["etag"].as_str()),
        (Some(2), Some("\"2\""))
    );
}

#[tokio::test]
async fn long_running_operation() {
    let e = env(Duration::from_millis(300)).await;
    let (s, h, v) = e
        .patch(r#"{"sku":{"capacity":3}}"#, &[("If-Match", "\"1\"")])
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(v, Value::Null);
    let op = h["azure-asyncoperation"].to_str().unwrap().to_string();
    let location = h["location"].to_str().unwrap().to_string();
    assert_eq!(h["retry-after"], "1");
    assert!(op.starts_with(&format!(
        "{}/subscriptions/{}/providers/Microsoft.Compute/locations/westeurope/operations/",
        e.sim.base_url(),
        e.sim.scale_set_id().subscription()
    )));
    assert!(location.ends_with("&monitor=true"));
    // The scale set shows the new capacity while updating.
    let get = format!("{}?api-version=2025-11-01", e.url);
    let (_, _, body) = e.call(Method::GET, &get, Some(&e.token), &[], "").await;
    assert_eq!(body["sku"]["capacity"], 3);
    // Poll until done (bounded by the test's own patience, not a timing assertion).
    let mut seen = Vec::new();
    for _ in 0..500 {
        let (s, _, v) = e.call(Method::GET, &op, Some(&e.token), &[], "").await;
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
    let (s, _, _) = e
        .call(Method::GET, &location, Some(&e.token), &[], "")
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, _, body) = e.call(Method::GET, &get, Some(&e.token), &[], "").await;
    assert_eq!(body["properties"]["provisioningState"], "Succeeded");
    // A preempted operation ends Failed with OperationPreempted.
    let (s, h, _) = e.patch(r#"{"sku":{"capacity":4}}"#, &[]).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert!(e.sim.preempt_operation());
    let op = h["azure-asyncoperation"].to_str().unwrap().to_string();
    let (_, _, v) = e.call(Method::GET, &op, Some(&e.token), &[], "").await;
    assert_eq!(v["status"], "Failed");
    assert_eq!(v["error"]["code"], "OperationPreempted");
}

#[tokio::test]
async fn routes_methods_and_names() {
    let e = env(Duration::ZERO).await;
    let q = "?api-version=2025-11-01";
    let t = Some(e.token.as_str());
    let (s, h, v) = e
        .call(Method::PUT, &format!("{}{q}", e.url), t, &[], "{}")
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed")
    );
    assert_eq!(h["allow"], "GET, PATCH");
    let (s, _, v) = e
        .call(
            Method::DELETE,
            &format!("{}/instanceView{q}", e.url),
            t,
            &[],
            "",
        )
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(code(&v), "MethodNotAllowed");
    let (s, _, v) = e
        .call(Method::GET, &format!("{}/nothing{q}", e.url), t, &[], "")
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "NotFound"));
    let (s, _, v) = e
        .call(
            Method::GET,
            &format!("{}/elsewhere", e.sim.base_url()),
            None,
            &[],
            "",
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "NotFound"));
    let other = e.url.replace("vmss-burst", "vmss-other");
    let (s, _, v) = e
        .call(Method::GET, &format!("{other}{q}"), t, &[], "")
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "ResourceNotFound"));
    let other = e.url.replace("rg-burst", "rg-other");
    let (s, _, v) = e
        .call(Method::GET, &format!("{other}{q}"), t, &[], "")
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, "ResourceGroupNotFound")
    );
    // ARM matches names and fixed segments case-insensitively.
    let upper = e
        .url
        .replace("virtualMachineScaleSets", "VIRTUALMACHINESCALESETS")
        .replace("vmss-burst", "VMSS-BURST");
    let (s, _, _) = e
        .call(Method::GET, &format!("{upper}{q}"), t, &[], "")
        .await;
    assert_eq!(s, StatusCode::OK);
    // The VM list with instance views.
    let (s, _, v) = e
        .call(
            Method::GET,
            &format!("{}/virtualMachines{q}&$expand=instanceView", e.url),
            t,
            &[],
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let vms = v["value"].as_array().unwrap();
    assert_eq!(vms.len(), 1);
    assert_eq!(vms[0]["instanceId"], "0");
    assert_eq!(
        vms[0]["properties"]["instanceView"]["statuses"][1],
        json!({"code": "PowerState/running", "level": "Info", "displayStatus": "VM running"})
    );
    // One VM: its instance view only when asked for (`$expand`), or on its own route.
    let (s, _, v) = e
        .call(
            Method::GET,
            &format!("{}/virtualMachines/0{q}", e.url),
            t,
            &[],
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["name"], "vmss-burst_0");
    assert_eq!(v["properties"]["provisioningState"], "Succeeded");
    assert!(v["properties"].get("instanceView").is_none(), "{v}");
    let (s, _, v) = e
        .call(
            Method::GET,
            &format!("{}/virtualMachines/0{q}&$expand=instanceView", e.url),
            t,
            &[],
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["properties"]["instanceView"]["statuses"][1]["code"],
        "PowerState/running"
    );
    let (s, _, v) = e
        .call(
            Method::GET,
            &format!("{}/virtualMachines/0/instanceView{q}", e.url),
            t,
            &[],
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["statuses"][0]["code"], "ProvisioningState/succeeded");
    assert_eq!(v["statuses"][1]["code"], "PowerState/running");
    let (s, _, v) = e
        .call(
            Method::GET,
            &format!("{}/virtualMachines/7{q}", e.url),
            t,
            &[],
            "",
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "NotFound"));
    // Every error body above is the ARM shape, logged with its status.
    assert!(e.sim.requests().iter().any(|r| r.status == 405));
}

/// Power states are per VM: the scale set's instance view summary counts provisioning states
/// only (as in the real answer quoted in azure-rest-api-specs issue #3593), however the VMs
/// stand; the VM list pages with `nextLink`.
#[tokio::test]
async fn instance_view_summary_and_paged_vm_list() {
    let sim = sim::start(SimConfig {
        initial_capacity: 3,
        boot_time: Duration::ZERO,
        operation_duration: Duration::ZERO,
        vm_page_size: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let token = token(&sim, &http, "https://management.azure.com/").await;
    let url = format!("{}{}", sim.base_url(), sim.scale_set_id());
    let e = Env {
        sim,
        http,
        token,
        url,
    };
    let q = "?api-version=2025-11-01";
    let t = Some(e.token.as_str());
    // Two more VMs that have not booted yet.
    e.sim.set_boot_time(Duration::from_secs(3600));
    let (s, _, _) = e.patch(r#"{"sku":{"capacity":5}}"#, &[]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = e
        .call(
            Method::GET,
            &format!("{}/instanceView{q}", e.url),
            t,
            &[],
            "",
        )
        .await;
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
    let mut next = Some(format!("{}/virtualMachines{q}&$expand=instanceView", e.url));
    let mut power = Vec::new();
    let mut pages = 0;
    while let Some(url) = next.take() {
        let (s, _, v) = e.call(Method::GET, &url, t, &[], "").await;
        assert_eq!(s, StatusCode::OK);
        pages += 1;
        for vm in v["value"].as_array().unwrap() {
            power.push(
                vm["properties"]["instanceView"]["statuses"][1]["code"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        next = v["nextLink"].as_str().map(String::from);
        if let Some(n) = &next {
            assert!(n.starts_with(&e.url), "{n}");
            assert!(n.contains("$expand=instanceView"), "{n}");
            assert!(n.contains("api-version=2025-11-01"), "{n}");
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        power,
        [
            "PowerState/running",
            "PowerState/running",
            "PowerState/running",
            "PowerState/starting",
            "PowerState/starting"
        ]
    );
    let (s, _, v) = e
        .call(
            Method::GET,
            &format!("{}/virtualMachines{q}&$skiptoken=zz", e.url),
            t,
            &[],
            "",
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "InvalidSkipToken"));
}

/// A Flexible scale set says so and refuses the Uniform-only operations with Azure's 400
/// (message as quoted in microsoft/OMS-Agent-for-Linux PR #1475 and
/// hashicorp/nomad-autoscaler issue #1096); the scale set itself and its capacity still work.
#[tokio::test]
async fn flexible_scale_set_refuses_uniform_only_operations() {
    let sim = sim::start(SimConfig {
        initial_capacity: 1,
        boot_time: Duration::ZERO,
        operation_duration: Duration::ZERO,
        orchestration_mode: "Flexible".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let token = token(&sim, &http, "https://management.azure.com/").await;
    let url = format!("{}{}", sim.base_url(), sim.scale_set_id());
    let e = Env {
        sim,
        http,
        token,
        url,
    };
    let q = "?api-version=2025-11-01";
    let t = Some(e.token.as_str());
    let (s, _, v) = e
        .call(Method::GET, &format!("{}{q}", e.url), t, &[], "")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["properties"]["orchestrationMode"], "Flexible");
    for (method, suffix, op) in [
        (
            Method::GET,
            "/instanceView",
            "VirtualMachineScaleSets.instanceView.GET",
        ),
        (
            Method::GET,
            "/virtualMachines",
            "VirtualMachineScaleSets.virtualMachines.GET",
        ),
        (
            Method::GET,
            "/virtualMachines/0",
            "VirtualMachineScaleSets.virtualMachines.GET",
        ),
        (
            Method::POST,
            "/virtualMachines/0/simulateEviction",
            "VirtualMachineScaleSets.virtualMachines.simulateEviction.POST",
        ),
    ] {
        let (s, _, v) = e
            .call(method, &format!("{}{suffix}{q}", e.url), t, &[], "")
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "BadRequest"),
            "{suffix}"
        );
        assert_eq!(
            v["error"]["message"],
            format!("Operation '{op}' is not allowed on Virtual Machine Scale Set 'vmss-burst'.")
        );
    }
    let (s, _, _) = e.patch(r#"{"sku":{"capacity":2}}"#, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(e.sim.capacity(), 2);
}
