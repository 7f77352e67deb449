//! `burst-lambda-http`: every HTTP function (`/api/<name>`) behind one Lambda function URL.

use burst_functions::logging;
use burst_lambda::{deps_from_settings, serve};
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};
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
        async move { handle(&deps, req).await }
    }))
    .await
}

async fn handle(
    deps: &Arc<burst_functions::deps::Deps>,
    req: Request,
) -> Result<Response<Body>, Error> {
    // The path as the caller sent it (function URLs have no stage prefix).
    let path = req.raw_http_path().to_string();
    let method = req.method().as_str().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    // Text bodies arrive as sent; base64 ones (isBase64Encoded) are already decoded: either
    // way these are the bytes the sender signed.
    let body = req.body().as_ref().to_vec();
    let r = serve(deps, &method, &path, headers, body).await;
    let mut b = Response::builder().status(r.status);
    for (k, v) in &r.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let body = match String::from_utf8(r.body) {
        Ok(s) if s.is_empty() => Body::Empty,
        Ok(s) => Body::Text(s),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    Ok(b.body(body)?)
}
