//! Platform-neutral HTTP request/response for the function bodies.
//!
//! The Azure custom handler (forwarding and JSON mode) and the Lambda wrappers convert their
//! own types into these, so the bodies never see a platform type.

use burst_wire::{BodyError, PayloadError};
use serde::Serialize;

pub use burst_wire::BODY_LIMIT;

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
    /// Header pairs as the bodies read them, from either platform's `http` header map: names
    /// lower-cased, values that are not visible ASCII left out.
    pub fn header_pairs(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_ascii_lowercase(), v.to_string()))
            })
            .collect()
    }

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

    /// A 4xx/5xx with the contract's `{"error": "<short_code>", "detail": "<human text>"}`.
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

/// Checks the size (413) and that the content type is JSON (415), as the contract says.
pub fn require_json(req: &Request) -> Result<(), Reject> {
    burst_wire::check_body(req.header("content-type"), req.body.len()).map_err(Reject::from)
}

impl From<BodyError> for Reject {
    fn from(e: BodyError) -> Reject {
        Reject::new(e.status(), e.code(), e.to_string())
    }
}

/// A body that is not the contract's payload.
impl From<PayloadError> for Reject {
    fn from(e: PayloadError) -> Reject {
        Reject::new(400, "invalid_payload", e.0)
    }
}
