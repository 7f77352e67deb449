//! `burst-lambda-http`: every HTTP function (`/api/<name>`) behind one Lambda function URL.

use burst_functions::logging;
use burst_lambda::{deps_from_settings, handle_http};
use lambda_http::{Error, Request, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let get = |name: &str| std::env::var(name).ok();
    let deps = match deps_from_settings(&get).await {
        Ok(d) => Arc::new(d),
        Err(e) => {
            // Init fails: Lambda reports it; the log names the setting.
            tracing::error!(error = %e, "cannot start: bad configuration");
            return Err(e.into());
        }
    };
    tracing::info!(sites = ?deps.settings.sites, "burst-lambda-http ready");
    lambda_http::run(service_fn(move |req: Request| {
        let deps = deps.clone();
        async move { handle_http(&deps, req).await }
    }))
    .await
}
