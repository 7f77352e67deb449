//! `burst-lambda-http`: every HTTP function (`/api/<name>`) behind one Lambda function URL.

use burst_lambda::handle_http;
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = burst_lambda::start("burst-lambda-http").await?;
    lambda_http::run(service_fn(move |req: Request| {
        let deps = deps.clone();
        async move { burst_lambda::after_flush(handle_http(&deps, req).await).await }
    }))
    .await
}
