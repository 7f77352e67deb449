//! The Lambda wrapper's routing and wiring, without the Lambda runtime.
#![allow(clippy::unwrap_used)]

use burst_lambda::{deps_from_settings, scaler, serve, state_store};
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

#[tokio::test]
async fn platform_is_chosen_by_settings() {
    // S3 for s3:// (needs credentials and a region), else burst-store's own URLs.
    let e = state_store(&getter(vec![("BURST_STATE_URL", "s3://bucket/p".into())]))
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "state store: AWS_REGION is not set: the S3 state store needs signed requests"
    );
    assert!(
        state_store(&getter(vec![
            ("BURST_STATE_URL", "s3://bucket/p".into()),
            ("AWS_REGION", "eu-west-1".into()),
            ("AWS_ACCESS_KEY_ID", "AKID".into()),
            ("AWS_SECRET_ACCESS_KEY", "secret".into()),
        ]))
        .is_ok()
    );
    assert!(scaler(&getter(vec![])).unwrap().is_none());
    let aws = vec![
        ("BURST_AWS_ASG_NAME", "burst".to_string()),
        ("AWS_REGION", "eu-west-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKID".into()),
        ("AWS_SECRET_ACCESS_KEY", "secret".into()),
    ];
    assert!(scaler(&getter(aws.clone())).unwrap().is_some());
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
    let e = scaler(&getter(both)).err().unwrap();
    assert_eq!(
        e.to_string(),
        "set only one of BURST_AWS_ASG_NAME and BURST_ARM_SCALE_SET_ID"
    );
}
