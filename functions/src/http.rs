//! Platform-neutral HTTP request/response for the function bodies.
//!
//! The Azure custom handler (forwarding and JSON mode) and the Lambda wrappers convert their
//! own types into these, so the bodies never see a platform type.

use serde::Serialize;

/// Request bodies above this are refused with 413 (CONTRACT: 64 KiB).
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Upper-case method.
    pub method: String,
    pub path: String,
    /// Header names in lower case; a repeated header appears several times.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: &'a str,
}

impl Response {
    pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }

    /// A 4xx/5xx with CONTRACT's `{"error": "<short_code>", "detail": "<human text>"}`.
    pub fn error(status: u16, code: &str, detail: &str) -> Response {
        Response::json(
            status,
            &ErrorBody {
                error: code,
                detail,
            },
        )
    }
}

/// A refusal of bad input: status, short code, human detail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {detail}")]
pub struct Reject {
    pub status: u16,
    pub code: &'static str,
    pub detail: String,
}

impl Reject {
    pub fn new(status: u16, code: &'static str, detail: impl Into<String>) -> Reject {
        Reject {
            status,
            code,
            detail: detail.into(),
        }
    }
    pub fn response(&self) -> Response {
        Response::error(self.status, self.code, &self.detail)
    }
}

/// Checks the content type is JSON (415 otherwise) and the size (413).
pub fn require_json(req: &Request) -> Result<(), Reject> {
    if req.body.len() > BODY_LIMIT {
        return Err(Reject::new(
            413,
            "body_too_large",
            format!(
                "request body is {} bytes; the limit is {BODY_LIMIT}",
                req.body.len()
            ),
        ));
    }
    let ct = req.header("content-type").unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(Reject::new(
            415,
            "unsupported_media_type",
            format!(
                "Content-Type must be application/json, got {:?}",
                truncate(ct, 80)
            ),
        ));
    }
    Ok(())
}

/// Shortens text for error messages (never echo large or secret input).
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max).collect();
        format!("{head}…")
    }
}
