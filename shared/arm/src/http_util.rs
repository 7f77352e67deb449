//! Small HTTP helpers shared by the token source and the scale set client.

use std::time::Duration;

/// Responses larger than this are cut off (ARM bodies are a few KiB; a huge one is a fault).
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The HTTP client: a total timeout per request, no automatic retries (a function reports
/// what happened and lets the core reschedule), no redirects (ARM and the token endpoints
/// never redirect; following one could send the bearer token elsewhere).
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .retry(reqwest::retry::never())
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Reads a response body up to [`MAX_RESPONSE_BYTES`].
pub(crate) async fn read_body_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe_transport(&e))? {
        if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!(
                "response body larger than {MAX_RESPONSE_BYTES} bytes"
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A transport error in a few words (timeout / connect / other), without URLs' query strings.
pub(crate) fn describe_transport(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else {
        "request failed"
    };
    match e.url() {
        Some(u) => format!(
            "{what} ({}://{}{})",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        None => what.to_string(),
    }
}

/// Text from a remote service, trimmed to a length fit for a message line.
pub(crate) fn short_text(s: &str) -> String {
    const MAX: usize = 300;
    let s = s.trim();
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}
