//! The wire contract between the on-prem agent (and the witness) and the cloud functions,
//! declared once: both sides and the drills use these types, so they cannot drift.
//!
//! - [`payload`]: the JSON bodies (`POST /api/ups`, `/api/heartbeat`, `/api/witness`), their
//!   routes, and how each becomes the decision core's [`burst_core::Input`] (validated: a bad
//!   field is a [`PayloadError`] naming it).
//! - [`http`]: the body limit and the content-type rule every agent route enforces.
//! - [`auth`]: the JWT the agent signs per request (claims, audience, lifetime, leeway), the
//!   [`Signer`] and the verifier the functions run.
//!
//! The JSON shapes are pinned by the fixtures under `tests/fixtures/`.

pub mod auth;
pub mod http;
pub mod input;
pub mod payload;

pub use auth::{
    AUDIENCE, AgentKey, AuthError, Claims, KeyError, LEEWAY_S, MAX_LIFETIME_S, SignError, Signer,
    TOKEN_LIFETIME_S, bearer, body_sha256, claimed_issuer, verify,
};
pub use http::{BODY_LIMIT, BodyError, JSON_CONTENT_TYPE, check_body, truncate};
pub use input::PayloadError;
pub use payload::{
    Battery, Heartbeat, Payload, ROUTE_HEARTBEAT, ROUTE_UPS, ROUTE_WITNESS, UpsEvent,
    WitnessReport, rfc3339,
};
