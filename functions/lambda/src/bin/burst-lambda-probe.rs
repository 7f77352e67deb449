//! `burst-lambda-probe`: the timer probe, invoked by an EventBridge schedule.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use burst_functions::bodies;
use burst_lambda::ProbeReply;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = burst_lambda::start("burst-lambda-probe").await?;
    // Any JSON is accepted: an EventBridge rule sends the "Scheduled Event" shape, EventBridge
    // Scheduler sends whatever input it was given (often `{}`); both run the probe.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let deps = deps.clone();
        async move { burst_lambda::after_flush(handle(&deps, event).await).await }
    }))
    .await
}

async fn handle(
    deps: &Arc<burst_functions::deps::Deps>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<ProbeReply, Error> {
    let e = serde_json::from_value::<EventBridgeEvent>(event.payload).ok();
    match &e {
        Some(e) if e.detail_type == "Scheduled Event" => {}
        // A manual or test event still runs the probe (it is idempotent); say so.
        Some(e) => {
            tracing::info!(detail_type = %e.detail_type, source = %e.source, "probe invoked by a non-schedule event")
        }
        None => tracing::info!("probe invoked without an EventBridge event"),
    }
    let event_id = e.and_then(|e| e.id);
    match bodies::probe(deps).await {
        Ok(summary) => {
            tracing::info!(%summary, "probe done");
            Ok(ProbeReply {
                ok: true,
                summary,
                event_id,
            })
        }
        // An error result: Lambda counts it, EventBridge's retry policy applies, and the next
        // tick reconciles anyway.
        Err(err) => {
            tracing::error!(error = %err, "probe failed");
            Err(err.into())
        }
    }
}
