//! Reading app folders: host.json and function.json validation (clear errors naming the file and
//! field), defaults, route templates, settings files, `%NAME%` substitution, payload helpers.
#![allow(clippy::unwrap_used)]

mod host_support;

use func_emulator::host::app::{App, AuthLevel, Route, Trigger, valid_function_name};
use func_emulator::host::payload::{self, HttpOut, Reply};
use func_emulator::host::{Host, HostConfig, HostError, read_settings_file, substitute};
use std::path::Path;

const HOST: &str =
    r#"{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}"#;

fn write_app(host: &str, functions: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("host.json"), host).unwrap();
    for (name, json) in functions {
        std::fs::create_dir_all(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join("function.json"), json).unwrap();
    }
    dir
}

fn load_err(host: &str, functions: &[(&str, &str)]) -> String {
    let dir = write_app(host, functions);
    let e = App::load(dir.path()).unwrap_err().to_string();
    e.replace(&dir.path().display().to_string(), "APP")
}

const HTTP_IN: &str = r#"{"type":"httpTrigger","direction":"in","name":"req"}"#;
const HTTP_OUT: &str = r#"{"type":"http","direction":"out","name":"res"}"#;

fn bindings(list: &[&str]) -> String {
    format!(r#"{{"bindings":[{}]}}"#, list.join(","))
}

#[test]
fn the_real_app_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/app");
    let app = App::load(&root).unwrap();
    assert_eq!(app.host.route_prefix, "api");
    assert!(app.host.forwarding);
    assert_eq!(app.host.executable, "burst-handler");
    assert_eq!(
        app.host.function_timeout,
        Some(std::time::Duration::from_secs(300))
    );
    let ups = app.function("UPS").unwrap();
    assert!(ups.http_only);
    let Trigger::Http(h) = &ups.trigger else {
        panic!("ups is HTTP")
    };
    assert_eq!(h.auth, AuthLevel::Function);
    assert_eq!(h.methods.as_deref(), Some(&["POST".to_string()][..]));
    let Trigger::Timer(t) = &app.function("probe").unwrap().trigger else {
        panic!("probe is a timer")
    };
    assert_eq!(t.schedule, "%BURST_PROBE_SCHEDULE%");
    assert!(t.use_monitor && !t.run_on_startup);
}

#[test]
fn defaults() {
    let dir = write_app(HOST, &[("Hello", &bindings(&[HTTP_IN, HTTP_OUT]))]);
    let app = App::load(dir.path()).unwrap();
    assert_eq!(app.host.route_prefix, "api");
    assert!(!app.host.forwarding);
    assert_eq!(app.host.function_timeout, None);
    let f = app.function("hello").unwrap();
    let Trigger::Http(h) = &f.trigger else {
        panic!()
    };
    assert_eq!(h.auth, AuthLevel::Function);
    assert_eq!(h.methods, None);
    // No route: the function name.
    assert_eq!(h.route.template, "Hello");
    let dir = write_app(
        r#"{"version":"2.0","extensions":{"http":{"routePrefix":""}},"customHandler":{"description":{"defaultExecutablePath":"h"},"enableProxyingHttpRequest":true}}"#,
        &[],
    );
    let app = App::load(dir.path()).unwrap();
    assert_eq!(app.host.route_prefix, "");
    assert!(app.host.forwarding);
}

#[test]
fn validation_errors_name_the_file_and_field() {
    // host.json.
    for (host, want) in [
        (
            r#"{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":""}}}"#,
            "customHandler.description.defaultExecutablePath: empty: the host cannot start a handler",
        ),
        (
            r#"{"version":"1.0"}"#,
            "version: must be \"2.0\", found Some(\"1.0\")",
        ),
        (
            r#"{"version":"2.0","functionTimeout":"5 minutes","customHandler":{"description":{"defaultExecutablePath":"h"}}}"#,
            "functionTimeout: \"5 minutes\" is not a hh:mm:ss time span",
        ),
    ] {
        assert_eq!(load_err(host, &[]), format!("APP/host.json: {want}"));
    }
    // The bindings of f/function.json.
    let cases: [(&[&str], &str); 9] = [
        (&[HTTP_OUT], "bindings: no trigger binding"),
        (&[HTTP_IN, HTTP_IN], "bindings: more than one trigger"),
        (
            &[r#"{"type":"httpTrigger","direction":"in","name":"req","authLevel":"system"}"#],
            "bindings[0].authLevel: \"system\" is not anonymous, function or admin",
        ),
        (
            &[r#"{"type":"httpTrigger","direction":"in","name":"req","methods":["fetch"]}"#],
            "bindings[0].methods: \"FETCH\" is not an HTTP method",
        ),
        (
            &[r#"{"type":"httpTrigger","direction":"out","name":"req"}"#],
            "bindings[0].direction: httpTrigger must be \"in\", found \"out\"",
        ),
        (
            &[HTTP_IN, r#"{"type":"http","direction":"in","name":"res"}"#],
            "bindings[1].direction: http must be \"out\", found \"in\"",
        ),
        (
            &[r#"{"type":"timerTrigger","direction":"in","name":"t"}"#],
            "bindings[0].schedule: missing",
        ),
        (
            &[HTTP_IN, r#"{"type":"blob","direction":"out","name":"b"}"#],
            "bindings[1].type: \"blob\" is not supported (httpTrigger, timerTrigger, queueTrigger, http)",
        ),
        (
            &[r#"{"type":"httpTrigger","direction":"in","name":"req","route":"a/{x}b"}"#],
            "bindings[0].route: \"a/{x}b\": a parameter must fill its whole segment",
        ),
    ];
    for (list, want) in cases {
        let fns = [("f", bindings(list))];
        let fns: Vec<(&str, &str)> = fns.iter().map(|(n, j)| (*n, j.as_str())).collect();
        assert_eq!(load_err(HOST, &fns), format!("APP/f/function.json: {want}"));
    }
    // A function folder's name; a function.json that is not JSON.
    assert_eq!(
        load_err(HOST, &[("host", &bindings(&[HTTP_IN]))]),
        "APP/host/function.json: (folder name): \"host\" is not a valid function name (^[a-z][a-z0-9_-]{0,127}$, not \"host\")"
    );
    assert_eq!(
        load_err(HOST, &[("f", "{")]),
        "APP/f/function.json: not valid JSON: EOF while parsing an object at line 1 column 1"
    );
}

#[test]
fn function_names() {
    let (longest, too_long) = ("a".repeat(128), "a".repeat(129));
    for (name, valid) in [
        ("ups", true),
        ("A", true),
        ("a-b_c9", true),
        (&longest, true),
        ("", false),
        ("9a", false),
        ("-a", false),
        ("a.b", false),
        ("host", false),
        ("HOST", false),
        ("a b", false),
        (&too_long, false),
    ] {
        assert_eq!(valid_function_name(name), valid, "{name:?}");
    }
}

#[test]
fn route_templates() {
    let r = Route::parse("ups/{event}").unwrap();
    assert_eq!(
        r.matches("UPS/onbatt"),
        Some(vec![("event".into(), "onbatt".into())])
    );
    assert_eq!(r.matches("ups"), None);
    assert_eq!(r.matches("ups/a/b"), None);
    let r = Route::parse("items/{id:int?}").unwrap();
    assert_eq!(r.matches("items"), Some(vec![]));
    assert_eq!(
        r.matches("items/a%20b"),
        Some(vec![("id".into(), "a b".into())])
    );
    let r = Route::parse("files/{*rest}").unwrap();
    assert_eq!(
        r.matches("files/a/b/c"),
        Some(vec![("rest".into(), "a/b/c".into())])
    );
    assert!(Route::parse("a/{x?}/b").is_err());
    assert!(Route::parse("{*x}/b").is_err());
    assert!(Route::parse("a//b").is_err());
    // Literals are more specific than parameters.
    assert!(
        Route::parse("a/b").unwrap().specificity() > Route::parse("a/{x}").unwrap().specificity()
    );
}

#[test]
fn settings_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("local.settings.json");
    // Writes `json` as the settings file and reads it.
    let read = |json: &str| {
        std::fs::write(&p, json).unwrap();
        read_settings_file(&p)
    };
    let s = read(
        r#"{"IsEncrypted":false,"Values":{"A":"1","B":2,"C":true},"Host":{"LocalHttpPort":7071}}"#,
    )
    .unwrap();
    assert_eq!(s.get("A").map(String::as_str), Some("1"));
    assert_eq!(s.get("B").map(String::as_str), Some("2"));
    assert_eq!(s.get("C").map(String::as_str), Some("true"));
    let encrypted = read(r#"{"IsEncrypted":true,"Values":{}}"#);
    assert!(matches!(encrypted, Err(HostError::Settings { .. })));
    assert_eq!(
        read(r#"{"Values":{"A":{"x":1}}}"#).unwrap_err().to_string(),
        format!("settings file {}: Values.A: must be a string", p.display())
    );
}

#[test]
fn percent_substitution() {
    let look = |n: &str| (n == "PORT").then(|| "8080".to_string());
    assert_eq!(substitute("--port=%PORT%", &look), "--port=8080");
    assert_eq!(substitute("a%MISSING%b", &look), "ab");
    assert_eq!(substitute("100%", &look), "100%");
    assert_eq!(substitute("%PORT%%PORT%", &look), "80808080");
}

#[tokio::test]
async fn start_fails_on_bad_timer_settings() {
    let dir = write_app(
        HOST,
        &[(
            "probe",
            &bindings(&[
                r#"{"type":"timerTrigger","direction":"in","name":"t","schedule":"%SCHED%"}"#,
            ]),
        )],
    );
    let e = Host::start(HostConfig::new(dir.path())).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "function probe: schedule \"%SCHED%\": setting SCHED is not set"
    );
    let mut c = HostConfig::new(dir.path());
    c.settings.insert("SCHED".into(), "0 0 0 * * 7".into());
    let e = Host::start(c).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "function probe: invalid schedule \"0 0 0 * * 7\": day-of-week field: 7 is outside 0-6"
    );
}

#[test]
fn reply_parsing() {
    let outs = vec!["res".to_string()];
    assert!(matches!(
        payload::parse_reply(500, Some("application/json"), b"{}", &outs),
        Reply::Failed(_)
    ));
    assert!(matches!(
        payload::parse_reply(200, Some("text/plain"), b"{}", &outs),
        Reply::Failed(_)
    ));
    assert_eq!(
        payload::parse_reply(200, Some("application/json"), b"", &outs),
        Reply::Hang
    );
    assert_eq!(
        payload::parse_reply(200, Some("application/json"), b"null", &outs),
        Reply::Hang
    );
    let r = payload::parse_reply(
        200,
        Some("application/json; charset=utf-8"),
        br#"{"Outputs":{"res":{"statusCode":201,"headers":{"Content-Type":"application/json","X-N":5},"body":"{\"ok\":true}"}},"Logs":["a"],"ReturnValue":null}"#,
        &outs,
    );
    assert_eq!(
        r,
        Reply::Ok {
            logs: vec!["a".into()],
            response: Some(HttpOut {
                status: 201,
                headers: vec![
                    ("Content-Type".into(), "application/json".into()),
                    ("X-N".into(), "5".into())
                ],
                body: br#"{"ok":true}"#.to_vec(),
            }),
        }
    );
    // Timers: no HTTP response.
    assert_eq!(
        payload::parse_reply(
            200,
            Some("application/json"),
            br#"{"Outputs":{},"Logs":["probe ok"],"ReturnValue":null}"#,
            &[]
        ),
        Reply::Ok {
            logs: vec!["probe ok".into()],
            response: None
        }
    );
}

#[test]
fn dates() {
    use chrono::TimeZone;
    let t = chrono::Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap()
        + chrono::Duration::nanoseconds(11_234_500);
    assert_eq!(
        payload::offset_string(t),
        "2026-01-10T12:00:00.0112345+00:00"
    );
    assert_eq!(payload::utc_now_string(t), "2026-01-10T12:00:00.0112345Z");
    assert_eq!(
        payload::offset_string(payload::dotnet_min()),
        "0001-01-01T00:00:00+00:00"
    );
    for s in [
        "2026-01-10T12:00:00.0112345+00:00",
        "2026-01-10T13:00:00.0112345+01:00",
        "2026-01-10T12:00:00.0112345",
    ] {
        assert_eq!(payload::parse_date_lenient(s), Some(t), "{s}");
    }
    assert!(payload::parse_date_lenient("01/10/2026 12:00:00").is_some());
    assert!(payload::parse_date_lenient("yesterday").is_none());
}
