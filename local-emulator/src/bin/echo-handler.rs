//! `echo-handler`: a tiny custom handler for the host's tests. It records every request it
//! receives (one JSON line per request in `$ECHO_RECORD`) and echoes it back; an `x-echo`
//! request header (or `ECHO_*` environment variables) makes it misbehave on purpose.
//!
//! Environment: `ECHO_RECORD` (file to append requests to), `ECHO_STARTS` (file to append one
//! line per start), `ECHO_EXIT_CODE` + `ECHO_EXIT_FIRST_N` (exit with that code at start while
//! at most N starts are recorded), `ECHO_READY_DELAY_MS` (wait before listening),
//! `ECHO_ROOT_404=1` (answer the readiness probe with 404), `ECHO_TIMER_SLEEP_MS`.
//!
//! A queue message whose text is `x-echo:<value>` controls it the same way.
//!
//! `x-echo` values: `status=NNN`, `text`, `sleep=MS`, `exit=CODE`, `nores`, `null`,
//! `return=STRING`, `res-object`, `redirect`.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

fn append(path: &str, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn reply(status: u16, ct: &str, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", ct)
        .body(body.into())
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn handle(req: Request) -> Response {
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let path = req.uri().path().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = to_bytes(req.into_body(), 256 * 1024 * 1024)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let record = json!({
        "method": method,
        "uri": uri,
        "headers": headers,
        "body_base64": base64::engine::general_purpose::STANDARD.encode(&body),
    });
    if let Ok(p) = std::env::var("ECHO_RECORD") {
        append(&p, &record.to_string());
    }
    if path == "/" && method == "GET" {
        let status = if std::env::var("ECHO_ROOT_404").as_deref() == Ok("1") {
            404
        } else {
            200
        };
        return reply(status, "text/plain", "echo-handler");
    }
    let payload: Option<Value> = serde_json::from_slice(&body).ok();
    let json_mode = method == "POST"
        && payload
            .as_ref()
            .is_some_and(|p| p.get("Data").is_some() && p.get("Metadata").is_some());
    // The control header, from the request itself or from the JSON-mode payload.
    let control = if json_mode {
        payload.as_ref().and_then(|p| {
            p["Data"].as_object()?.values().find_map(|t| match t {
                // A queue message's text: `x-echo:<control>`.
                Value::String(text) => text.strip_prefix("x-echo:").map(str::to_string),
                _ => t
                    .get("Headers")?
                    .as_object()?
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("x-echo"))
                    .and_then(|(_, v)| v.get(0)?.as_str().map(str::to_string)),
            })
        })
    } else {
        headers
            .iter()
            .find(|(k, _)| k == "x-echo")
            .map(|(_, v)| v.clone())
    }
    .unwrap_or_default();
    let is_timer = payload
        .as_ref()
        .and_then(|p| {
            p["Data"]
                .as_object()
                .map(|d| d.values().any(|t| t.get("Schedule").is_some()))
        })
        .unwrap_or(false);
    if is_timer
        && let Some(ms) = std::env::var("ECHO_TIMER_SLEEP_MS")
            .ok()
            .and_then(|v| v.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let (verb, arg) = control.split_once('=').unwrap_or((control.as_str(), ""));
    match verb {
        "status" => {
            let code = arg.parse().unwrap_or(500);
            return reply(
                code,
                "application/json",
                r#"{"Outputs":{},"Logs":[],"ReturnValue":null}"#,
            );
        }
        "text" => return reply(200, "text/plain", "hello"),
        "sleep" => tokio::time::sleep(Duration::from_millis(arg.parse().unwrap_or(0))).await,
        "exit" => std::process::exit(arg.parse().unwrap_or(1)),
        "redirect" if !json_mode => {
            return Response::builder()
                .status(302)
                .header("location", "/elsewhere")
                .body(Body::empty())
                .unwrap_or_else(|_| Response::new(Body::empty()));
        }
        _ => {}
    }
    if json_mode {
        let out = match verb {
            "nores" => json!({"Outputs":{},"Logs":["no res"],"ReturnValue":null}),
            "null" => return reply(200, "application/json", "null"),
            "return" => json!({"Outputs":{},"Logs":[],"ReturnValue": arg}),
            "res-object" => {
                json!({"Outputs":{"res":{"statusCode":"201","headers":{"X-Echo":"yes"},"body":{"a":1,"b":[true]}}},"Logs":[],"ReturnValue":null})
            }
            _ if is_timer => json!({"Outputs":{},"Logs":["timer ok"],"ReturnValue":null}),
            _ => json!({"Outputs":{"res":{
                "statusCode": 200,
                "headers": {"Content-Type": "application/json"},
                "body": String::from_utf8_lossy(&body),
            }},"Logs":["echo"],"ReturnValue":null}),
        };
        return reply(200, "application/json", out.to_string());
    }
    let echo = json!({
        "method": method,
        "uri": uri,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut r = reply(200, "application/json", echo.to_string());
    r.headers_mut()
        .insert("x-echo-handler", axum::http::HeaderValue::from_static("1"));
    r
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Ok(p) = std::env::var("ECHO_STARTS") {
        append(&p, &std::process::id().to_string());
        let starts = std::fs::read_to_string(&p)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        let first_n: usize = std::env::var("ECHO_EXIT_FIRST_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX);
        if let Some(code) = std::env::var("ECHO_EXIT_CODE")
            .ok()
            .and_then(|v| v.parse::<i32>().ok())
            && starts <= first_n
        {
            println!("echo-handler exiting with {code}");
            std::process::exit(code);
        }
    }
    if let Some(ms) = std::env::var("ECHO_READY_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let port: u16 = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo-handler cannot listen: {e}");
            std::process::exit(1);
        }
    };
    println!("echo-handler listening on {port}");
    eprintln!("echo-handler stderr line");
    eprintln!("echo-handler warn: a warning line");
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!(
        "echo-handler args {}",
        serde_json::to_string(&args).unwrap_or_default()
    );
    let env: serde_json::Map<String, Value> = [
        "FUNCTIONS_CUSTOMHANDLER_PORT",
        "FUNCTIONS_HTTPWORKER_PORT",
        "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
        "FUNCTIONS_HTTPWORKER_ID",
        "FUNCTIONS_APP_ROOT_PATH",
        "ECHO_SETTING",
        "FUNC_EMULATOR_MASTER_KEY",
        "BURST_PROBE_SCHEDULE",
    ]
    .iter()
    .map(|k| {
        (
            k.to_string(),
            std::env::var(k).map(Value::String).unwrap_or(Value::Null),
        )
    })
    .collect();
    println!("echo-handler env {}", Value::Object(env));
    if let Ok(cwd) = std::env::current_dir() {
        println!("echo-handler cwd {}", cwd.display());
    }
    let app = axum::Router::new().fallback(handle);
    let _ = axum::serve(listener, app).await;
}
