//! Simulated AWS services on 127.0.0.1: the Auto Scaling query API ([`asg`], on the shared
//! scale-set model) and S3 ([`s3`]). Both check what they receive as AWS does — the SigV4
//! `Authorization` header is parsed and the signature recomputed with the secret the sim knows,
//! `x-amz-date` must be well-formed and within 15 minutes, the session token must match — and
//! answer with AWS's real response and error shapes. Failure injection and inspection through
//! a Rust control API.

pub mod asg;
pub mod s3;

use axum::http::{HeaderMap, Method, Uri};
use burst_aws::sigv4::{self, Credentials, RequestParts};

/// The credentials the sims accept by default (and the ones to give the clients).
pub fn test_credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIDBURSTSIMEXAMPLE".into(),
        secret_access_key: "burst/sim/secret/key/EXAMPLEKEY0123456789".into(),
        session_token: Some("burst-sim-session-token".into()),
    }
}

/// The region the sims sign for by default.
pub const SIM_REGION: &str = "us-east-1";

/// A signature problem: HTTP status, AWS error code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

fn fail(status: u16, code: &'static str, message: impl Into<String>) -> AuthFailure {
    AuthFailure {
        status,
        code,
        message: message.into(),
    }
}

/// Which codes a service uses for the same problems.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthCodes {
    pub service: &'static str,
    pub missing: &'static str,
    pub unknown_key: &'static str,
    /// S3 requires `x-amz-content-sha256`.
    pub content_sha256: bool,
}

/// The codes Auto Scaling answers signature problems with.
pub(crate) const AUTOSCALING: AuthCodes = AuthCodes {
    service: "autoscaling",
    missing: "MissingAuthenticationToken",
    unknown_key: "InvalidClientTokenId",
    content_sha256: false,
};

/// The codes S3 answers signature problems with.
pub(crate) const S3: AuthCodes = AuthCodes {
    service: "s3",
    missing: "AccessDenied",
    unknown_key: "InvalidAccessKeyId",
    content_sha256: true,
};

/// [`verify`] for a request as the server received it.
pub(crate) fn verify_request(
    codes: AuthCodes,
    creds: &Credentials,
    region: &str,
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> Result<(), AuthFailure> {
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    verify(codes, creds, region, method, uri, headers, body)
}

/// Checks a request's SigV4 signature the way AWS does.
pub(crate) fn verify(
    codes: AuthCodes,
    creds: &Credentials,
    region: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), AuthFailure> {
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(fail(
            403,
            codes.missing,
            "Request is missing Authentication Token",
        ));
    };
    let parsed =
        sigv4::parse_authorization(auth).map_err(|m| fail(400, "IncompleteSignature", m))?;
    if parsed.access_key_id != creds.access_key_id {
        return Err(fail(
            403,
            codes.unknown_key,
            "The security token included in the request is invalid.",
        ));
    }
    if parsed.service != codes.service {
        return Err(fail(
            403,
            "SignatureDoesNotMatch",
            format!(
                "Credential should be scoped to correct service: '{}'.",
                codes.service
            ),
        ));
    }
    if parsed.region != region {
        return Err(fail(
            403,
            "SignatureDoesNotMatch",
            format!("Credential should be scoped to a valid region, expected '{region}'."),
        ));
    }
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let amz_date = header("x-amz-date").ok_or_else(|| {
        fail(
            400,
            "IncompleteSignature",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    })?;
    let t = sigv4::parse_amz_date(amz_date).ok_or_else(|| {
        fail(
            400,
            "IncompleteSignature",
            format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'."),
        )
    })?;
    if !amz_date.starts_with(&parsed.date) {
        return Err(fail(
            403,
            "SignatureDoesNotMatch",
            "Credential date does not match X-Amz-Date.",
        ));
    }
    let skew = (chrono::Utc::now() - t).num_seconds().abs();
    if skew > 15 * 60 {
        return Err(fail(
            403,
            "SignatureDoesNotMatch",
            "Signature expired: the request time is more than 15 minutes off.",
        ));
    }
    for must in ["host", "x-amz-date"] {
        if !parsed.signed_headers.iter().any(|h| h == must) {
            return Err(fail(
                403,
                "SignatureDoesNotMatch",
                format!("'{must}' must be a signed header."),
            ));
        }
    }
    if let Some(token) = &creds.session_token {
        match header("x-amz-security-token") {
            Some(t) if t == token => {}
            _ => {
                return Err(fail(
                    403,
                    codes.unknown_key,
                    "The security token included in the request is invalid.",
                ));
            }
        }
        if !parsed
            .signed_headers
            .iter()
            .any(|h| h == "x-amz-security-token")
        {
            return Err(fail(
                403,
                "SignatureDoesNotMatch",
                "'x-amz-security-token' must be a signed header.",
            ));
        }
    }
    let body_hash = sigv4::sha256_hex(body);
    let payload_hash = if codes.content_sha256 {
        let Some(h) = header("x-amz-content-sha256") else {
            return Err(fail(
                400,
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
            ));
        };
        if h != body_hash && h != "UNSIGNED-PAYLOAD" {
            return Err(fail(
                400,
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
        h.to_string()
    } else {
        body_hash
    };
    let mut signed: Vec<(String, String)> = Vec::new();
    for name in &parsed.signed_headers {
        let values: Vec<&str> = headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Err(fail(
                403,
                "SignatureDoesNotMatch",
                format!("Signed header '{name}' is missing from the request."),
            ));
        }
        for v in values {
            signed.push((name.clone(), v.to_string()));
        }
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let parts = RequestParts {
        method: method.as_str(),
        canonical_uri: uri.path(),
        query: &query,
        headers: &signed,
        payload_hash: &payload_hash,
    };
    let expected = sigv4::signature(
        &creds.secret_access_key,
        amz_date,
        &parsed.region,
        &parsed.service,
        &parts,
    );
    if expected != parsed.signature {
        return Err(fail(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// A signed S3 PUT of `signed_body`, at `when`.
    fn signed(when: chrono::DateTime<chrono::Utc>, signed_body: &[u8]) -> (Uri, HeaderMap) {
        let creds = test_credentials();
        let date = sigv4::amz_date(when);
        let hash = sigv4::sha256_hex(signed_body);
        let headers = vec![
            ("host".to_string(), "127.0.0.1:9".to_string()),
            ("x-amz-content-sha256".into(), hash.clone()),
            ("x-amz-date".into(), date.clone()),
            (
                "x-amz-security-token".into(),
                creds.session_token.clone().unwrap(),
            ),
        ];
        let parts = RequestParts {
            method: "PUT",
            canonical_uri: "/burst-state/a%20b.json",
            query: &[],
            headers: &headers,
            payload_hash: &hash,
        };
        let auth = sigv4::authorization(&creds, &date, SIM_REGION, "s3", &parts);
        let mut map = HeaderMap::new();
        for (k, v) in &headers {
            map.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        ("/burst-state/a%20b.json".parse().unwrap(), map)
    }

    fn check(uri: &Uri, h: &HeaderMap, body: &[u8]) -> Result<(), AuthFailure> {
        verify(
            S3,
            &test_credentials(),
            SIM_REGION,
            &Method::PUT,
            uri,
            h,
            body,
        )
    }

    #[test]
    fn a_correct_signature_passes() {
        let (uri, h) = signed(chrono::Utc::now(), b"{}");
        assert_eq!(check(&uri, &h, b"{}"), Ok(()));
    }

    #[test]
    fn stale_dates_tampering_and_hash_mismatch_are_refused() {
        let (uri, h) = signed(chrono::Utc::now() - chrono::Duration::hours(1), b"{}");
        let f = check(&uri, &h, b"{}").unwrap_err();
        assert_eq!((f.status, f.code), (403, "SignatureDoesNotMatch"));
        assert!(f.message.starts_with("Signature expired"), "{}", f.message);

        // The body differs from the signed hash header.
        let (uri, h) = signed(chrono::Utc::now(), b"{}");
        let f = check(&uri, &h, b"{\"x\":1}").unwrap_err();
        assert_eq!((f.status, f.code), (400, "XAmzContentSHA256Mismatch"));

        // Another path with the same signature.
        let (_, h) = signed(chrono::Utc::now(), b"{}");
        let other: Uri = "/burst-state/other.json".parse().unwrap();
        let f = check(&other, &h, b"{}").unwrap_err();
        assert_eq!((f.status, f.code), (403, "SignatureDoesNotMatch"));

        // No x-amz-content-sha256 at all.
        let (uri, mut h) = signed(chrono::Utc::now(), b"{}");
        h.remove("x-amz-content-sha256");
        let f = check(&uri, &h, b"{}").unwrap_err();
        assert_eq!((f.status, f.code), (400, "InvalidRequest"));

        // A malformed x-amz-date.
        let (uri, mut h) = signed(chrono::Utc::now(), b"{}");
        h.insert(
            "x-amz-date",
            HeaderValue::from_static("2026-11-26T08:00:00Z"),
        );
        let f = check(&uri, &h, b"{}").unwrap_err();
        assert_eq!((f.status, f.code), (400, "IncompleteSignature"));
    }
}
