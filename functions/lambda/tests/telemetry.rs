//! A Lambda binary flushes its telemetry before it answers: `burst-lambda-probe` under a
//! stand-in for the Lambda Runtime API on 127.0.0.1 (one invocation, then the `next` poll is
//! never answered, as a frozen environment), exporting to a real OTLP receiver (Rotel, see
//! `functions/tests/otlp/`) with the SDK's own export every 10 minutes: the invocation's spans
//! and metrics can only have come from the flush at the end of the invocation.
#![allow(clippy::unwrap_used)]

#[path = "../../tests/otlp/mod.rs"]
mod otlp;

use burst_sim_kit::raw::read_request;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};

/// What the runtime stand-in saw.
#[derive(Default, Debug)]
struct Seen {
    nexts: usize,
    response: Option<String>,
    errors: Vec<String>,
}

/// Serves the Runtime API's `next` (one event, then never again) and takes the response.
async fn runtime_api(listener: tokio::net::TcpListener, seen: Arc<Mutex<Seen>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            while let Some(request) = read_request(&mut read).await {
                let body = &request.body;
                let reply = if request.method == "GET"
                    && request
                        .path
                        .starts_with("/2018-06-01/runtime/invocation/next")
                {
                    let first = {
                        let mut s = seen.lock().unwrap();
                        s.nexts += 1;
                        s.nexts == 1
                    };
                    if !first {
                        // The environment is frozen: no next event, ever.
                        std::future::pending::<()>().await;
                    }
                    let deadline = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis()
                        + 60_000;
                    let event = "{}";
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         lambda-runtime-aws-request-id: req-1\r\n\
                         lambda-runtime-deadline-ms: {deadline}\r\n\
                         lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:burst-probe\r\n\
                         lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\n\
                         content-length: {}\r\n\r\n{event}",
                        event.len()
                    )
                } else if request.path.contains("/response") {
                    seen.lock().unwrap().response = Some(String::from_utf8_lossy(body).into());
                    "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}".to_string()
                } else {
                    seen.lock().unwrap().errors.push(format!(
                        "{} {} {}",
                        request.method,
                        request.path,
                        String::from_utf8_lossy(body)
                    ));
                    "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}".to_string()
                };
                if write.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The function's process, stopped (by its PID) when dropped.
struct Function(Child, std::path::PathBuf);
impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
impl Function {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_invocation_flushes_its_spans_and_metrics_before_answering() {
    let Some(rotel) = otlp::start(
        "a_lambda_invocation_flushes_its_spans_and_metrics_before_answering",
        env!("CARGO_MANIFEST_DIR"),
    ) else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    tokio::spawn(runtime_api(listener, seen.clone()));

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("function.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_burst-lambda-probe"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "burst-probe")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "BURST_STATE_URL",
            format!("file://{}", dir.path().join("state").display()),
        )
        .env("BURST_LOG", "debug")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &rotel.endpoint)
        // The SDK's own export would come in 10 minutes: only the flush can be seen.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "600000")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut f = Function(child, log);

    let started = Instant::now();
    loop {
        if seen.lock().unwrap().response.is_some() {
            break;
        }
        if let Ok(Some(status)) = f.0.try_wait() {
            panic!("the function exited ({status}):\n{}", f.logs());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no response within 30 s: {:?}\n{}",
            seen.lock().unwrap(),
            f.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = seen.lock().unwrap().response.clone().unwrap();
    assert!(response.contains("\"ok\":true"), "{response}");
    assert!(seen.lock().unwrap().errors.is_empty(), "{seen:?}");

    let got = rotel.wait_for(
        Duration::from_secs(5),
        "the invocation's spans and metrics, flushed before the answer",
        |r| {
            r.spans_named("invocation")
                .any(|s| s.attr("input") == Some("probe"))
                && r.points_of("burst.invocation.duration").next().is_some()
        },
    );
    let inv = got
        .spans_named("invocation")
        .find(|s| s.attr("input") == Some("probe"))
        .unwrap();
    assert_eq!(inv.attr("site"), Some("home"), "{inv:?}");
    assert!(inv.attr("mode").is_some(), "{inv:?}");
    assert!(
        inv.resource
            .iter()
            .any(|(k, v)| k == "service.name" && v == "burst-lambda-probe"),
        "{inv:?}"
    );
    for name in ["load", "step", "save"] {
        assert!(
            got.spans
                .iter()
                .any(|s| s.name == name && s.parent_id == inv.id),
            "{name} under the invocation: {:#?}",
            got.spans
        );
    }
    assert!(f.logs().contains("after each invocation"), "{}", f.logs());
    // Still alive, waiting for the next event that never comes.
    assert!(matches!(f.0.try_wait(), Ok(None)), "{}", f.logs());
}
