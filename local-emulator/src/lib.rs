//! `func-emulator`: runs outage drills (and, later, the function app like the Functions host).

pub mod drill;
pub mod host;
pub mod scenario;
