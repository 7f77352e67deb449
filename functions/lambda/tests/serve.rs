//! The Lambda wrapper's routing and wiring, without the Lambda runtime.
#![allow(clippy::unwrap_used)]

use burst_lambda::{deps_from_settings, serve};
use std::sync::Arc;

fn getter(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
}

async fn deps(dir: &std::path::Path) -> Arc<burst_functions::deps::Deps> {
    let get = getter(vec![
        ("BURST_STATE_URL", format!("file://{}", dir.display())),
        (
            "BURST_AGENT_HS256_SECRET",
            "0123456789abcdef0123456789abcdef".into(),
        ),
    ]);
    Arc::new(deps_from_settings(&get).await.unwrap())
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn routes_by_path_and_method() {
    let dir = tempfile::tempdir().unwrap();
    let d = deps(dir.path()).await;
    let r = serve(&d, "GET", "/api/status", vec![], vec![]).await;
    assert_eq!(r.status, 200);
    let v = json(&r.body);
    assert_eq!(v["sites"][0]["site"], "home");
    assert_eq!(v["sites"][0]["mode"], "healthy");
    let r = serve(&d, "get", "/API/Status/", vec![], vec![]).await;
    assert_eq!(r.status, 200);
    let r = serve(&d, "POST", "/api/status", vec![], vec![]).await;
    assert_eq!(r.status, 405);
    assert_eq!(json(&r.body)["error"], "method_not_allowed");
    assert!(r.headers.contains(&("allow".into(), "GET".into())));
    let r = serve(&d, "POST", "/api/probe", vec![], vec![]).await;
    assert_eq!(r.status, 404);
    let r = serve(&d, "GET", "/status", vec![], vec![]).await;
    assert_eq!(r.status, 404);
    assert_eq!(json(&r.body)["error"], "not_found");
    let r = serve(
        &d,
        "POST",
        "/api/ups",
        vec![("content-type".into(), "application/json".into())],
        vec![b' '; 64 * 1024 + 1],
    )
    .await;
    assert_eq!(r.status, 413);
    // An unsigned agent call is refused by the body itself (auth comes first).
    let r = serve(
        &d,
        "POST",
        "/api/ups",
        vec![("content-type".into(), "application/json".into())],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(json(&r.body)["error"], "missing_token");
}

/// The one wiring's answer for these settings (a state folder of its own unless given).
async fn wired(
    mut pairs: Vec<(&'static str, String)>,
) -> Result<burst_functions::deps::Deps, burst_functions::settings::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    if !pairs.iter().any(|(k, _)| *k == "BURST_STATE_URL") {
        pairs.push((
            "BURST_STATE_URL",
            format!("file://{}", dir.path().display()),
        ));
    }
    deps_from_settings(&getter(pairs)).await
}

/// The scale-set adapter the wiring gives the one site, `home`.
async fn home_scaler(
    pairs: Vec<(&'static str, String)>,
) -> Option<std::sync::Arc<dyn burst_ports::Scaler>> {
    let deps = wired(pairs).await.unwrap();
    deps.sites.get("home").unwrap().scaler.clone()
}

#[tokio::test]
async fn platform_is_chosen_by_settings() {
    // S3 for s3:// (needs credentials and a region), else burst-store's own URLs.
    let e = wired(vec![("BURST_STATE_URL", "s3://bucket/p".into())])
        .await
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "AWS_REGION: not set (the S3 state store needs signed requests)"
    );
    let aws_credentials = vec![
        ("AWS_REGION", "eu-west-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "AKID".into()),
        ("AWS_SECRET_ACCESS_KEY", "secret".into()),
    ];
    let mut s3 = aws_credentials.clone();
    s3.push(("BURST_STATE_URL", "s3://bucket/p".into()));
    assert!(wired(s3).await.is_ok());
    assert!(home_scaler(vec![]).await.is_none());
    let mut aws = aws_credentials;
    aws.push(("BURST_AWS_ASG_NAME", "burst".to_string()));
    assert!(home_scaler(aws.clone()).await.is_some());
    let mut both = aws;
    both.push((
        "BURST_ARM_SCALE_SET_ID",
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss".into(),
    ));
    both.push((
        "AZURE_TENANT_ID",
        "00000000-0000-0000-0000-000000000001".into(),
    ));
    both.push((
        "AZURE_CLIENT_ID",
        "00000000-0000-0000-0000-000000000002".into(),
    ));
    both.push(("AZURE_CLIENT_SECRET", "sp-secret".into()));
    let e = wired(both.clone()).await.err().unwrap();
    assert_eq!(
        e.to_string(),
        "BURST_AWS_ASG_NAME: set only one of BURST_AWS_ASG_NAME and BURST_ARM_SCALE_SET_ID"
    );
    // The Azure scale set alone, with a service principal: the ARM adapter.
    let azure: Vec<_> = both
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_") && *k != "BURST_AWS_ASG_NAME")
        .collect();
    assert!(home_scaler(azure).await.is_some());
}

/// A function-URL event (payload 2.0) as Lambda delivers it, body base64-encoded.
fn function_url_event(path: &str, method: &str, headers: serde_json::Value, body: &[u8]) -> String {
    use base64::Engine as _;
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghijklmnopqrstuvwxyz0123",
            "domainName": "abcdefghijklmnopqrstuvwxyz0123.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghijklmnopqrstuvwxyz0123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "burst-agent"
            },
            "requestId": "2f1e0b7a-0000-4000-8000-000000000001",
            "routeKey": "$default",
            "stage": "$default",
            "time": "26/Nov/2026:08:00:00 +0000",
            "timeEpoch": 1795680000000u64
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    })
    .to_string()
}

#[tokio::test]
async fn base64_bodies_reach_the_signature_check_as_sent_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = deps(dir.path()).await;
    // Odd spacing on purpose: re-serialising would change the hash.
    let body = format!(
        "{{ \"id\":\"{}\", \"at\":\"{}\",\"ups\":\"ups@nas\",\"type\":\"ONBATT\",\"status\":\"OB DISCHRG\" }}",
        uuid::Uuid::new_v4(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let token = burst_wire::Signer::hs256("home", b"0123456789abcdef0123456789abcdef")
        .unwrap()
        .token(body.as_bytes(), chrono::Utc::now().timestamp())
        .unwrap();
    let event = function_url_event(
        "/api/ups",
        "POST",
        serde_json::json!({
            "content-type": "application/json",
            "authorization": format!("Bearer {token}"),
        }),
        body.as_bytes(),
    );
    let req = lambda_http::request::from_str(&event).unwrap();
    let resp = burst_lambda::handle_http(&d, req).await.unwrap();
    let text = match resp.body() {
        lambda_http::Body::Text(t) => t.clone(),
        other => panic!("expected a text body, got {other:?}"),
    };
    assert_eq!(resp.status(), 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["site"], "home", "{text}");

    // A different path through the same event shape: 404 with the contract's error body.
    let req = lambda_http::request::from_str(&function_url_event(
        "/nope",
        "GET",
        serde_json::json!({}),
        b"",
    ))
    .unwrap();
    let resp = burst_lambda::handle_http(&d, req).await.unwrap();
    assert_eq!(resp.status(), 404);
}
