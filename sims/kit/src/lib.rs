//! What every simulator shares: a loopback server that starts on a free port of 127.0.0.1 and
//! stops on demand or on drop ([`Server`]), state behind a lock that a panic elsewhere does not
//! poison ([`Shared`]), a bounded request log ([`RequestLog`]), a queue of injected failures
//! ([`FaultQueue`]), small answer helpers, the scale-set model the Azure and AWS simulators
//! and the virtual drills have in common ([`scale_set`]), and a raw request reader for the
//! stand-ins that hold their connections themselves ([`raw`]).

mod faults;
mod log;
pub mod raw;
pub mod scale_set;
mod server;

pub use faults::FaultQueue;
pub use log::RequestLog;
pub use server::{Running, Server};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex, MutexGuard};

/// A simulator's state, shared between its server task and its control handle.
#[derive(Debug)]
pub struct Shared<T>(Arc<Mutex<T>>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Shared(Arc::new(Mutex::new(value)))
    }

    /// The state, even after a panic while it was held: a failed test thread must not make the
    /// simulator unusable for the others or for inspection.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T: Default> Default for Shared<T> {
    fn default() -> Self {
        Shared::new(T::default())
    }
}

/// A JSON answer with this status (`content-type: application/json; charset=utf-8`).
pub fn json(status: u16, body: &serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// `n` random lower-case hex digits.
pub fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
        .collect()
}

/// A random version-4 UUID in its usual text form, as services use for request ids.
pub fn request_id() -> String {
    format!(
        "{}-{}-4{}-a{}-{}",
        random_hex(8),
        random_hex(4),
        random_hex(3),
        random_hex(3),
        random_hex(12)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_uuids_and_differ() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn shared_state_survives_a_panic_while_locked() {
        let shared = Shared::new(1);
        let other = shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = other.lock();
            panic!("a test thread fails while holding the lock");
        })
        .join();
        *shared.lock() += 1;
        assert_eq!(*shared.lock(), 2);
    }

    #[tokio::test]
    async fn json_answers_carry_status_and_content_type() {
        let resp = json(429, &serde_json::json!({"a": 1}));
        assert_eq!(resp.status(), 429);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/json; charset=utf-8"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"a":1}"#);
    }
}
