//! One signed HTTP request: adds `x-amz-date`, the session token and (S3) the payload hash,
//! signs with SigV4 and sends it with reqwest. Public so the tests against moto send their
//! setup calls the way the clients do.

use crate::settings::host_header;
use crate::sigv4::{self, Credentials, RequestParts};
use reqwest::{Method, StatusCode};
use url::Url;

/// What came back: status, `ETag` (S3) and the body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub body: Vec<u8>,
}

/// Where and as whom to sign.
#[derive(Clone, Copy, Debug)]
pub struct Signer<'a> {
    pub http: &'a reqwest::Client,
    pub credentials: &'a Credentials,
    pub region: &'a str,
    pub service: &'a str,
    /// S3 wants `x-amz-content-sha256` on every request.
    pub content_sha256_header: bool,
}

impl Signer<'_> {
    /// Sends `method url` with `headers` (signed too) and `body`. `Err` = no answer (transport,
    /// timeout), with a message.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let amz_date = sigv4::amz_date(chrono::Utc::now());
        let payload_hash = sigv4::sha256_hex(&body);
        let mut signed: Vec<(String, String)> = vec![
            ("host".into(), host_header(url)),
            ("x-amz-date".into(), amz_date.clone()),
        ];
        if self.content_sha256_header {
            signed.push(("x-amz-content-sha256".into(), payload_hash.clone()));
        }
        if let Some(t) = &self.credentials.session_token {
            signed.push(("x-amz-security-token".into(), t.clone()));
        }
        signed.extend(headers.iter().cloned());
        let query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let parts = RequestParts {
            method: method.as_str(),
            canonical_uri: url.path(),
            query: &query,
            headers: &signed,
            payload_hash: &payload_hash,
        };
        let auth = sigv4::authorization(
            self.credentials,
            &amz_date,
            self.region,
            self.service,
            &parts,
        );
        let mut req = self.http.request(method, url.clone());
        for (k, v) in &signed {
            // reqwest sets Host from the URL (the same value).
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        let resp = req
            .header("authorization", auth)
            .body(body)
            .send()
            .await
            .map_err(|e| transport_text(&e))?;
        let status = resp.status();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.bytes().await.map_err(|e| transport_text(&e))?.to_vec();
        Ok(Reply { status, etag, body })
    }
}

fn transport_text(e: &reqwest::Error) -> String {
    // Without the URL: it may carry a bucket or group name, harmless, but keep logs short.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

/// Error text of at most 200 characters (never echo large bodies).
pub(crate) fn short(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= 200 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(200).collect::<String>())
    }
}
