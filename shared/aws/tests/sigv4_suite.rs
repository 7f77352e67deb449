//! AWS's published SigV4 test suite (header signing), from `fixtures/sigv4-suite.json`: for each
//! case the canonical request and the signature must be the suite's, byte for byte.

#![allow(clippy::unwrap_used)]

use burst_aws::sigv4::{self, RequestParts};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

#[derive(Debug, Deserialize)]
struct Suite {
    access_key_id: String,
    secret_access_key: String,
    region: String,
    service: String,
    amz_date: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    method: String,
    path: String,
    query: String,
    uri_rule: UriRule,
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    sign_body: bool,
    #[serde(default)]
    session_token: Option<String>,
    canonical_request: Vec<String>,
    signature: String,
}

#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum UriRule {
    /// Normalised and encoded once more: what [`sigv4::signature`] does for every service but S3.
    Service,
    /// The path as sent: S3's rule.
    AsSent,
}

fn suite() -> Suite {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sigv4-suite.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The request's headers as the signer is given them: the case's own, the date, and the
/// payload hash and session token when the case signs them.
fn signed_headers(suite: &Suite, case: &Case, payload_hash: &str) -> Vec<(String, String)> {
    let mut headers = case.headers.clone();
    headers.push(("X-Amz-Date".into(), suite.amz_date.clone()));
    if case.sign_body {
        headers.push(("X-Amz-Content-Sha256".into(), payload_hash.to_string()));
    }
    if let Some(token) = &case.session_token {
        headers.push(("X-Amz-Security-Token".into(), token.clone()));
    }
    headers
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    sigv4::hex(&mac.finalize().into_bytes())
}

#[test]
fn every_suite_case_signs_as_published() {
    let suite = suite();
    assert!(suite.cases.len() >= 30, "only {} cases", suite.cases.len());
    let mut failures = Vec::new();
    for case in &suite.cases {
        let payload_hash = sigv4::sha256_hex(case.body.as_bytes());
        let headers = signed_headers(&suite, case, &payload_hash);
        let query: Vec<(String, String)> = url::form_urlencoded::parse(case.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let uri = match case.uri_rule {
            UriRule::Service => sigv4::canonical_uri(&case.path, &suite.service),
            UriRule::AsSent => case.path.clone(),
        };
        let parts = RequestParts {
            method: &case.method,
            canonical_uri: &uri,
            query: &query,
            headers: &headers,
            payload_hash: &payload_hash,
        };
        let canonical = sigv4::canonical_request(&parts);
        if canonical != case.canonical_request.join("\n") {
            failures.push(format!(
                "{}: canonical request\n{canonical}\nexpected\n{}",
                case.name,
                case.canonical_request.join("\n")
            ));
            continue;
        }
        let date = &suite.amz_date[..8];
        let scope = sigv4::scope(date, &suite.region, &suite.service);
        let to_sign = sigv4::string_to_sign(&suite.amz_date, &scope, &canonical);
        let key = sigv4::signing_key(
            &suite.secret_access_key,
            date,
            &suite.region,
            &suite.service,
        );
        let signature = hmac_hex(&key, to_sign.as_bytes());
        if signature != case.signature {
            failures.push(format!("{}: signature {signature}", case.name));
            continue;
        }
        // The public entry point gives the same, where its canonical URI rule is the case's.
        if case.uri_rule == UriRule::Service {
            let from_path = RequestParts {
                canonical_uri: &case.path,
                ..parts.clone()
            };
            let credentials = sigv4::Credentials {
                access_key_id: suite.access_key_id.clone(),
                secret_access_key: suite.secret_access_key.clone(),
                session_token: case.session_token.clone(),
            };
            let authorization = sigv4::authorization(
                &credentials,
                &suite.amz_date,
                &suite.region,
                &suite.service,
                &from_path,
            );
            let expected_end = format!("Signature={}", case.signature);
            if !authorization.ends_with(&expected_end) {
                failures.push(format!("{}: authorization {authorization}", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} suite cases failed:\n{}",
        failures.len(),
        suite.cases.len(),
        failures.join("\n")
    );
}
