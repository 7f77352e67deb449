//! `func-emulator`: the Azure Functions host for custom handlers, locally (`start`), and outage drills
//! through it or on virtual time (`drill`).

pub mod drill;
pub mod host;
pub mod scenario;
