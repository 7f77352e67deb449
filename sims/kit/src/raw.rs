//! One HTTP/1.1 request read off a raw stream, for the stand-ins that must control the
//! connection themselves (answer never, or keep a polled connection open the way a frozen
//! Lambda environment does) where an axum server would answer for them.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// A request as it arrived: header names lower-cased, values trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRequest {
    pub method: String,
    /// The request target as sent (path and query).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// The first value of a header; `name` in lower case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the next request (head, then `content-length` bytes of body); `None` when the peer
/// closed the connection or sent something that is not a request line.
pub async fn read_request<R: AsyncBufRead + Unpin>(reader: &mut R) -> Option<RawRequest> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).await.ok()? == 0 {
        return None;
    }
    let mut words = request_line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut request = RawRequest {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    let length = request
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    request.body = vec![0u8; length];
    reader.read_exact(&mut request.body).await.ok()?;
    Some(request)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn reads_requests_one_after_another_and_stops_at_the_end() {
        let wire = b"POST /q?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nX-Amz-Target: T\r\n\r\nhelloGET /next HTTP/1.1\r\n\r\n";
        let mut reader = tokio::io::BufReader::new(&wire[..]);
        let first = read_request(&mut reader).await.unwrap();
        assert_eq!(
            (first.method.as_str(), first.path.as_str()),
            ("POST", "/q?x=1")
        );
        assert_eq!(first.header("x-amz-target"), Some("T"));
        assert_eq!(first.body, b"hello");
        let second = read_request(&mut reader).await.unwrap();
        assert_eq!(
            (second.method.as_str(), second.path.as_str()),
            ("GET", "/next")
        );
        assert!(second.body.is_empty());
        assert_eq!(read_request(&mut reader).await, None);
    }

    #[tokio::test]
    async fn a_body_cut_short_is_no_request() {
        let wire = b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\nshort";
        let mut reader = tokio::io::BufReader::new(&wire[..]);
        assert_eq!(read_request(&mut reader).await, None);
    }
}
