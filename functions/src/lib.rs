//! hybrid-burst's functions: the bodies (platform-free) and their Azure Functions custom-handler
//! wrapper. The README lists the routes, auth and payloads.

pub mod azure;
pub mod bodies;
pub mod deps;
pub mod engine;
pub mod http;
pub mod logging;
pub mod settings;
pub mod sites;
pub mod state_cache;
pub mod status_page;
pub mod telemetry;
pub mod timeline;
pub mod wiring;
