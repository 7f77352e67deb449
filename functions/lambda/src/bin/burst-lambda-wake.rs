//! `burst-lambda-wake`: scheduled wake-ups, invoked by an SQS event source mapping on the
//! wake-up queue (`BURST_WAKE_QUEUE_URL`).
//!
//! Each record's body is one wake-up, `{"site","at"}`, handed to the same body as Azure's queue
//! trigger (`burst_functions::bodies::wake`): it consumes the site's pending wake-up with a
//! tick, ignores a superseded or repeated one, and schedules whatever is due next. A wake-up
//! that SQS delivered early (delays stop at 15 minutes) is consumed and scheduled again for the
//! rest, so long waits become a chain of hops.
//!
//! The answer is a partial batch response (the mapping needs `ReportBatchItemFailures`): the
//! `messageId` of every failed record goes into `batchItemFailures`, so SQS deletes the others
//! and makes only those visible again, until the queue's redrive policy moves them to the
//! dead-letter queue. A record without a `messageId` cannot be named, so its failure fails the
//! whole batch (every record is retried; the repeats are ignored as superseded).
//!
//! Records run one after another. When less than [`RESERVE`] of the invocation's time is left,
//! the records not yet run are reported as failed without running them, so a slow store cannot
//! time out the whole invocation (which would send every record back, the done ones too).

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use burst_functions::bodies;
use burst_functions::deps::Deps;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The time one record may take at worst (a state load and save, each bounded by
/// `BURST_STATE_TIMEOUT_MS`, 5 s by default): a record starts only with this much time left.
const RESERVE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = burst_lambda::start("burst-lambda-wake").await?;
    if deps.waker.is_none() {
        // Wake-ups still run; only the next hop of a long wait is left to the probe.
        tracing::warn!("BURST_WAKE_QUEUE_URL not set: wake-ups cannot schedule the next one");
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let deps = deps.clone();
        async move {
            let deadline = usable(event.context.deadline());
            burst_lambda::after_flush(handle(&deps, event.payload, deadline).await).await
        }
    }))
    .await
}

/// Lambda's deadline for this invocation, unless it has already passed as the invocation
/// starts: no real invocation starts late, so that is a runtime emulator without a usable
/// deadline, and the records run unbounded (the platform's own timeout still applies).
fn usable(deadline: SystemTime) -> Option<SystemTime> {
    if deadline > SystemTime::now() {
        Some(deadline)
    } else {
        tracing::debug!("the invocation's deadline has passed at its start: ignored");
        None
    }
}

/// Runs every record while time is left before `deadline`; the failed ones (by `messageId`)
/// go back to SQS in the answer.
async fn handle(
    deps: &Arc<Deps>,
    event: SqsEvent,
    deadline: Option<SystemTime>,
) -> Result<SqsBatchResponse, Error> {
    let mut response = SqsBatchResponse::default();
    let mut unnamed_failure = None;
    for record in &event.records {
        let id = record.message_id.as_deref().unwrap_or("");
        let time_left = deadline.map(|d| {
            d.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
        let outcome = match time_left {
            Some(left) if left < RESERVE => Err(format!(
                "wake: not run, {} ms of the invocation left",
                left.as_millis()
            )),
            _ => run(deps, record).await,
        };
        match outcome {
            Ok(log) => tracing::info!(message_id = id, "{log}"),
            Err(err) => {
                tracing::error!(message_id = id, error = %err, "wake-up failed; SQS will retry it");
                match &record.message_id {
                    Some(id) if !id.is_empty() => response.add_failure(id.clone()),
                    _ => unnamed_failure = Some(err),
                }
            }
        }
    }
    match unnamed_failure {
        Some(err) => {
            Err(format!("a record without a messageId failed ({err}): retrying the batch").into())
        }
        None => Ok(response),
    }
}

/// One record: its body (the message text) through `bodies::wake`.
async fn run(deps: &Arc<Deps>, record: &SqsMessage) -> Result<String, String> {
    let body = record
        .body
        .as_ref()
        .ok_or("wake: the SQS record has no body")?;
    bodies::wake(deps, &serde_json::Value::String(body.clone())).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use burst_core::{SiteState, Timestamp};
    use burst_ports::{WakeUp, Waker};
    use std::sync::Mutex;

    /// Records what the engine schedules.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<(WakeUp, Duration)>>);

    #[async_trait::async_trait]
    impl Waker for Recorder {
        async fn schedule(&self, wake: &WakeUp, delay: Duration) -> Result<(), String> {
            self.0.lock().unwrap().push((wake.clone(), delay));
            Ok(())
        }
    }

    async fn deps(dir: &std::path::Path, waker: Arc<Recorder>) -> Arc<Deps> {
        let pairs = [
            ("BURST_STATE_URL", format!("file://{}", dir.display())),
            (
                "BURST_AGENT_HS256_SECRET",
                "0123456789abcdef0123456789abcdef".to_string(),
            ),
            // A deadline an hour away: further than one SQS delay (15 minutes) can reach.
            ("BURST_HEARTBEAT_TIMEOUT_S", "3600".to_string()),
        ];
        let get = |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        let mut deps = burst_lambda::deps_from_settings(&get).await.unwrap();
        deps.waker = Some(waker);
        Arc::new(deps)
    }

    fn record(id: Option<&str>, body: Option<&str>) -> serde_json::Value {
        let mut r = serde_json::json!({
            "receiptHandle": "AQEB…",
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1800000000000"},
            "messageAttributes": {},
            "md5OfBody": "0f2a",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:burst-wake",
            "awsRegion": "eu-west-1"
        });
        if let Some(id) = id {
            r["messageId"] = id.into();
        }
        if let Some(body) = body {
            r["body"] = body.into();
        }
        r
    }

    /// Saves home's state with a wake-up pending at `due` (after `setup`); returns the wake-up
    /// message for it.
    async fn pending_wake(d: &Deps, due: Timestamp, setup: impl FnOnce(&mut SiteState)) -> String {
        let mut state = SiteState::new("home", (d.clock)());
        state.wake_at = Some(due);
        setup(&mut state);
        d.store.save("home", &state.to_json(), None).await.unwrap();
        serde_json::json!({"site": "home", "at": due.0}).to_string()
    }

    fn event(records: Vec<serde_json::Value>) -> SqsEvent {
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    async fn load(deps: &Deps) -> SiteState {
        let doc = deps.store.load("home").await.unwrap().unwrap();
        SiteState::from_json(&doc.bytes).unwrap()
    }

    #[tokio::test]
    async fn good_records_wake_the_site_and_only_failed_ones_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Arc::new(Recorder::default());
        let d = deps(dir.path(), recorder.clone()).await;
        // A site whose next deadline (a workload move's retry) is an hour away, with that
        // wake-up pending: the message SQS delivers after its first 15-minute hop.
        let due = Timestamp((d.clock)().0 + 3_600_000 + 1);
        let good = pending_wake(&d, due, |s| {
            s.placement.get_mut(burst_core::Tier::Critical).retry_at = Some(due);
        })
        .await;
        let batch = event(vec![
            record(Some("m-good"), Some(&good)),
            record(Some("m-bad"), Some("not a wake-up")),
            record(Some("m-site"), Some(r#"{"site":"elsewhere","at":1}"#)),
            record(Some("m-extra"), Some(r#"{"site":"home","at":1,"x":2}"#)),
            record(Some("m-empty"), None),
        ]);
        let response = handle(&d, batch, None).await.unwrap();
        let answer = serde_json::to_value(&response).unwrap();
        assert_eq!(
            answer,
            serde_json::json!({"batchItemFailures": [
                {"itemIdentifier": "m-bad"},
                {"itemIdentifier": "m-site"},
                {"itemIdentifier": "m-extra"},
                {"itemIdentifier": "m-empty"}
            ]})
        );

        // The good record ran the wake body: the pending wake-up was consumed and, the
        // deadline being still ahead, scheduled again for the rest of the wait (the next hop).
        let scheduled = recorder.0.lock().unwrap().clone();
        assert_eq!(scheduled.len(), 1, "{scheduled:?}");
        let (wake, delay) = &scheduled[0];
        assert_eq!(
            wake,
            &WakeUp {
                site: "home".into(),
                at: due.0,
                probe: false,
            }
        );
        assert!(
            *delay > Duration::from_secs(3_500) && *delay <= Duration::from_secs(3_601),
            "{delay:?}"
        );
        assert_eq!(load(&d).await.wake_at, Some(due));
    }

    #[tokio::test]
    async fn a_due_wake_up_runs_and_a_repeat_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Arc::new(Recorder::default());
        let d = deps(dir.path(), recorder.clone()).await;
        let now = (d.clock)();
        let body = pending_wake(&d, now, |_| {}).await;
        let rec: SqsMessage = serde_json::from_value(record(Some("m-1"), Some(&body))).unwrap();
        let log = run(&d, &rec).await.unwrap();
        assert!(log.starts_with("wake home at "), "{log}");
        assert!(!log.contains("superseded"), "{log}");
        assert_eq!(
            load(&d).await.wake_at,
            None,
            "consumed, nothing further due"
        );
        let log = run(&d, &rec).await.unwrap();
        assert!(log.contains("superseded"), "{log}");
        assert!(recorder.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn records_left_when_time_runs_short_are_reported_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let d = deps(dir.path(), Arc::new(Recorder::default())).await;
        let now = (d.clock)();
        let body = pending_wake(&d, now, |_| {}).await;
        let batch = || event(vec![record(Some("m-1"), Some(&body))]);

        // 5 s left: under the reserve, so the record goes back untouched.
        let soon = SystemTime::now() + Duration::from_secs(5);
        let response = handle(&d, batch(), Some(soon)).await.unwrap();
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m-1"]);
        assert_eq!(load(&d).await.wake_at, Some(now), "not run");

        // A deadline already past as the invocation starts is no deadline (an emulator's).
        assert_eq!(usable(SystemTime::UNIX_EPOCH), None);
        assert_eq!(usable(soon), Some(soon));

        // A minute left: it runs and consumes the pending wake-up.
        let later = SystemTime::now() + Duration::from_secs(60);
        let response = handle(&d, batch(), Some(later)).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(load(&d).await.wake_at, None);
    }

    #[tokio::test]
    async fn a_failed_record_without_a_message_id_fails_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let d = deps(dir.path(), Arc::new(Recorder::default())).await;
        let e = handle(&d, event(vec![record(None, Some("{}"))]), None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("without a messageId"), "{e}");
        // An empty batch is answered with no failures.
        let ok = handle(&d, event(vec![]), None).await.unwrap();
        assert!(ok.batch_item_failures.is_empty());
    }
}
