//! `burst-agent`, the on-prem side of hybrid-burst: the NUT NOTIFYCMD hook (`notify`), the
//! dead-man's-switch `heartbeat`, the third-place `witness`, a `test` of the whole path and
//! `keygen`, and `doctor`, which checks every link of that path. Every request is a signed JWT POST
//! to the function app (docs/contract.md).
//!
//! Modules, from the wire inwards: [`upsd`] (NUT protocol client), [`payload`] (the JSON
//! bodies, from the wire contract), [`auth`] (the JWT signer), [`deliver`] (the outbox: the
//! crash-safe spool, and HTTP, retries and outcomes), [`inside`] (Kubernetes node view),
//! [`witness`] (reachability probe), [`lease`] (the lease the cloud grants, and its file),
//! [`fence`] (fencing the stateful tier when the lease cannot be renewed; runs commands through
//! [`shell`]), [`config`], [`commands`] (the subcommands; start here), [`doctor`] (the checks
//! and their fixes).

pub mod auth;
pub mod commands;
pub mod config;
pub mod deliver;
pub mod doctor;
pub mod fence;
pub mod inside;
pub mod keygen;
pub mod lease;
/// The JSON bodies and routes are the wire contract's.
pub mod shell;
pub mod upsd;
pub mod witness;
