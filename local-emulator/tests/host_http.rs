//! The host's HTTP side against the echo handler: JSON-mode payloads byte for byte, forwarding,
//! the HTTP-only rule, keys, routing, reply rules, functionTimeout.
#![allow(clippy::unwrap_used)]

mod host_support;

use func_emulator::host::log::{Level, Source};
use func_emulator::host::read_settings_file;
use host_support::*;
use serde_json::Value;

const ANON_IDENTITY: &str = r#"[{"AuthenticationType":null,"IsAuthenticated":false,"Actor":null,"BootstrapContext":null,"Claims":[],"Label":null,"Name":null,"NameClaimType":"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name","RoleClaimType":"http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}]"#;

fn key_identity(level: &str, id: &str) -> String {
    let claim = |ty: &str, v: &str| {
        format!(
            r#"{{"Issuer":"LOCAL AUTHORITY","OriginalIssuer":"LOCAL AUTHORITY","Properties":{{}},"Type":"http://schemas.microsoft.com/2017/07/functions/claims/{ty}","Value":"{v}","ValueType":"http://www.w3.org/2001/XMLSchema#string"}}"#
        )
    };
    format!(
        r#"[{{"AuthenticationType":"WebJobsAuthLevel","IsAuthenticated":true,"Actor":null,"BootstrapContext":null,"Claims":[{},{},{}],"Label":null,"Name":null,"NameClaimType":"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name","RoleClaimType":"http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}}]"#,
        claim("authlevel", level),
        claim("invoke", "true"),
        claim("keyid", id)
    )
}

fn sys_of(payload: &str) -> (String, String) {
    let v: Value = serde_json::from_str(payload).unwrap();
    (
        v["Metadata"]["sys"]["UtcNow"].as_str().unwrap().to_string(),
        v["Metadata"]["sys"]["RandGuid"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

fn host_of(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn json_mode_get_payload_is_exact() {
    let (app, h) = started("json-app", &[]).await;
    let key = h.function_key("echo").unwrap().to_string();
    let host = host_of(h.base_url());
    let req = format!(
        "GET /ups/rack1?code={key}&x=1&X=2 HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tester/1\r\nAccept: */*\r\nx-custom: a\r\nx-custom: b\r\nConnection: close\r\n\r\n"
    );
    let (status, headers, body) = raw(h.base_url(), req.as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let payload = String::from_utf8(body).unwrap();
    let (now, guid) = sys_of(&payload);
    let expected = format!(
        concat!(
            r#"{{"Data":{{"req":{{"Url":"http://{host}/ups/rack1?code={key}&x=1&X=2","Method":"GET","#,
            r#""Query":{{"code":"{key}","x":"1,2"}},"#,
            r#""Headers":{{"Host":["{host}"],"User-Agent":["tester/1"],"Accept":["*/*"],"x-custom":["a","b"],"Connection":["close"]}},"#,
            r#""Params":{{"event":"rack1"}},"Identities":{ident}}}}},"#,
            r#""Metadata":{{"Query":{{"code":"{key}","x":"1,2"}},"#,
            r#""Headers":{{"Host":"{host}","User-Agent":"tester/1","Accept":"*/*","x-custom":"a,b","Connection":"close"}},"#,
            r#""x":"\"1,2\"","event":"\"rack1\"","#,
            r#""sys":{{"MethodName":"echo","UtcNow":"{now}","RandGuid":"{guid}"}}}}}}"#
        ),
        host = host,
        key = key,
        ident = key_identity("Function", "default"),
        now = now,
        guid = guid
    );
    assert_eq!(payload, expected);
    assert!(now.ends_with('Z') && now.len() <= 28, "{now}");
    // The handler got the request on /{FunctionName} with the host's headers.
    // (The app's timers call the handler too: look at this function's requests only.)
    let r: Vec<Value> = records(&app)
        .into_iter()
        .filter(|r| r["uri"] == "/echo")
        .collect();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["method"], "POST");
    let hp = header_pairs(&r[0]);
    assert_eq!(
        header(&hp, "content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        header(&hp, "x-azure-functions-hostversion"),
        Some("4.1037.0.23568")
    );
    assert_eq!(
        header(&hp, "user-agent"),
        Some("Azure-Functions-Host/4.1037.0.23568")
    );
    let inv = header(&hp, "x-azure-functions-invocationid").unwrap();
    assert!(uuid::Uuid::parse_str(inv).is_ok());
    assert!(logged(&h, |t| t
        .starts_with("Executing 'Functions.echo' (Reason=")
        && t.contains(inv)));
    let executed = format!("Executed 'Functions.echo' (Succeeded, Id={inv}, Duration=");
    assert!(logged(&h, |t| t.starts_with(&executed)));
    h.shutdown().await;
}

#[tokio::test]
async fn json_mode_anonymous_identity_and_body_properties() {
    let app = app("json-app");
    let h = start_with(&app, |c| c.auth = false).await;
    let host = host_of(h.base_url());
    let body = r#"{"site":"rack1","n":5,"ok":true,"nested":{"a":1},"myTrigger":"x","Query":"q"}"#;
    let req = format!(
        "POST /ups/e1 HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, _, resp) = raw(h.base_url(), req.as_bytes()).await;
    assert_eq!(status, 200);
    let payload = String::from_utf8(resp).unwrap();
    let (now, guid) = sys_of(&payload);
    let expected = format!(
        concat!(
            r#"{{"Data":{{"req":{{"Url":"http://{host}/ups/e1","Method":"POST","Query":{{}},"#,
            r#""Headers":{{"Host":["{host}"],"Content-Type":["application/json"],"Content-Length":["{len}"],"Connection":["close"]}},"#,
            r#""Params":{{"event":"e1"}},"Identities":{ident},"Body":{body_json}}}}},"#,
            r#""Metadata":{{"Query":{{}},"Headers":{{"Host":"{host}","Content-Type":"application/json","Content-Length":"{len}","Connection":"close"}},"#,
            r#""site":"\"rack1\"","n":"5","ok":"true","event":"\"e1\"","#,
            r#""sys":{{"MethodName":"echo","UtcNow":"{now}","RandGuid":"{guid}"}}}}}}"#
        ),
        host = host,
        len = body.len(),
        ident = ANON_IDENTITY,
        body_json = Value::String(body.into()),
        now = now,
        guid = guid
    );
    assert_eq!(payload, expected);
    h.shutdown().await;
}

async fn body_of_payload(
    h: &func_emulator::host::HostHandle,
    extra_headers: &str,
    body: &[u8],
) -> Value {
    let host = host_of(h.base_url());
    let key = h.function_key("echo").unwrap();
    let mut req = format!(
        "POST /ups/b HTTP/1.1\r\nHost: {host}\r\nx-functions-key: {key}\r\n{extra_headers}Connection: close\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(body);
    let (status, _, resp) = raw(h.base_url(), &req).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    v["Data"]["req"].clone()
}

#[tokio::test]
async fn json_mode_bodies() {
    let (_app, h) = started("json-app", &[]).await;
    let cases: [(&str, &str, &[u8], Option<&str>); 4] = [
        (
            "octet-stream: base64",
            "Content-Type: application/octet-stream\r\nContent-Length: 4\r\n",
            &[0, 1, 2, 255],
            Some("AAEC/w=="),
        ),
        (
            "multipart: base64 too",
            "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 2\r\n",
            b"hi",
            Some("aGk="),
        ),
        (
            "text: the BOM goes, the charset is ignored",
            "Content-Type: text/plain; charset=latin1\r\nContent-Length: 8\r\n",
            "\u{feff}hello".as_bytes(),
            Some("hello"),
        ),
        (
            "a chunked body has no Content-Length: no Body at all",
            "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
            None,
        ),
    ];
    for (what, headers, body, want) in cases {
        let t = body_of_payload(&h, headers, body).await;
        assert_eq!(t.get("Body"), want.map(Value::from).as_ref(), "{what}: {t}");
    }
    // Content-Length: 0: no Body.
    let t = body_of_payload(&h, "Content-Length: 0\r\n", b"").await;
    assert!(t.get("Body").is_none(), "{t}");
    // The key went in the header: Query stays empty, identity is the key's.
    assert_eq!(t["Query"], serde_json::json!({}));
    assert_eq!(t["Identities"][0]["AuthenticationType"], "WebJobsAuthLevel");
    h.shutdown().await;
}

#[tokio::test]
async fn forwarding_mode_passes_the_request_through() {
    let (app, h) = started("echo-app", &[("ECHO_ARG", "A")]).await;
    let key = h.function_key("fwd").unwrap().to_string();
    let host = host_of(h.base_url());
    let body = b"raw\x00bytes\xff";
    let mut req = format!(
        "POST /API/Fwd/7?b=2&a=1&a=3 HTTP/1.1\r\nHost: {host}\r\nx-functions-key: {key}\r\nUser-Agent: tester/1\r\nX-Custom: v\r\nContent-Type: application/x-thing\r\nContent-Encoding: identity\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let (status, headers, _) = raw(h.base_url(), &req).await;
    assert_eq!(status, 200);
    // The handler's own headers come back.
    assert_eq!(header(&headers, "x-echo-handler"), Some("1"));
    let r = records(&app);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["method"], "POST");
    // Prefix and casing kept; the query rebuilt from the dictionary (repeats comma-joined).
    assert_eq!(r[0]["uri"], "/API/Fwd/7?b=2&a=1%2C3");
    let hp = header_pairs(&r[0]);
    assert_eq!(header(&hp, "host"), Some(host.as_str()));
    assert_eq!(
        header(&hp, "user-agent"),
        Some("tester/1 Azure-Functions-Host/4.1037.0.23568")
    );
    assert_eq!(header(&hp, "x-custom"), Some("v"));
    assert_eq!(header(&hp, "x-functions-key"), Some(key.as_str()));
    assert_eq!(header(&hp, "content-type"), Some("application/x-thing"));
    assert_eq!(header(&hp, "content-length"), Some("10"));
    assert_eq!(header(&hp, "content-encoding"), None);
    assert_eq!(
        header(&hp, "x-azure-functions-hostversion"),
        Some("4.1037.0.23568")
    );
    assert!(uuid::Uuid::parse_str(header(&hp, "x-azure-functions-invocationid").unwrap()).is_ok());
    use base64::Engine as _;
    let got = base64::engine::general_purpose::STANDARD
        .decode(r[0]["body_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(got, body);

    // Chunked request (no Content-Length): the body is not forwarded.
    let req = format!(
        "PUT /api/fwd HTTP/1.1\r\nHost: {host}\r\nx-functions-key: {key}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    );
    let (status, _, _) = raw(h.base_url(), req.as_bytes()).await;
    assert_eq!(status, 200);
    let r = records(&app);
    assert_eq!(r[1]["method"], "PUT");
    assert_eq!(r[1]["body_base64"], "");
    assert_eq!(header(&header_pairs(&r[1]), "transfer-encoding"), None);

    // Status and redirects pass as they are.
    let c = client();
    let url = format!("{}/api/fwd", h.base_url());
    let resp = call(c.get(&url), &key, Some("redirect")).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "/elsewhere");
    let resp = call(c.get(&url), &key, Some("status=418")).await;
    assert_eq!(resp.status(), 418);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"Outputs":{},"Logs":[],"ReturnValue":null}"#
    );
    h.shutdown().await;
}

#[tokio::test]
async fn an_extra_binding_turns_forwarding_off() {
    let (app, h) = started("echo-app", &[]).await;
    let key = h.function_key("items").unwrap();
    let resp = get(&h, &format!("/api/items/e1?code={key}")).await;
    assert_eq!(resp.status(), 200);
    let payload: Value = resp.json().await.unwrap();
    assert_eq!(payload["Data"]["req"]["Params"]["event"], "e1");
    let r = records(&app);
    assert_eq!(r[0]["method"], "POST");
    assert_eq!(r[0]["uri"], "/items");
    h.shutdown().await;
}

#[tokio::test]
async fn keys_and_levels() {
    let (app, h) = started(
        "echo-app",
        &[("FUNC_EMULATOR_FUNCTION_KEY_anon", "anon-key")],
    )
    .await;
    let c = client();
    let b = h.base_url().to_string();
    let fk = h.function_key("fwd").unwrap().to_string();
    let other = h.function_key("items").unwrap().to_string();
    assert_eq!(h.function_key("anon"), Some("anon-key"));
    assert_ne!(fk, other);
    let get = |url: String, key: Option<&str>| answer(keyed(c.get(url), key));
    for (url, key, want) in [
        (format!("{b}/api/fwd"), None, 401),
        (format!("{b}/api/fwd"), Some("wrong"), 401),
        (format!("{b}/api/fwd"), Some(other.as_str()), 401),
        (format!("{b}/api/fwd"), Some(fk.as_str()), 200),
        (format!("{b}/api/fwd"), Some(h.host_key()), 200),
        (format!("{b}/api/fwd"), Some(h.master_key()), 200),
        (format!("{b}/api/fwd?code={fk}"), None, 200),
        // The header wins over the query.
        (format!("{b}/api/fwd?code={fk}"), Some("wrong"), 401),
        (format!("{b}/api/fwd?code=wrong"), Some(fk.as_str()), 200),
        (
            format!("{b}/api/adm"),
            Some(h.function_key("adm").unwrap()),
            401,
        ),
        (format!("{b}/api/adm"), Some(h.host_key()), 401),
        (format!("{b}/api/adm"), Some(h.master_key()), 200),
        (format!("{b}/api/anon"), None, 200),
        (format!("{b}/api/anon"), Some("wrong"), 200),
    ] {
        let (s, body) = get(url.clone(), key).await;
        assert_eq!(s, want, "{url} with {key:?}");
        if s == 401 {
            assert!(body.is_empty(), "401 must have an empty body");
        }
    }
    h.shutdown().await;

    // --no-auth: every level passes without keys.
    let h = start_with(&app, |c| c.auth = false).await;
    let b = h.base_url().to_string();
    assert_eq!(get(format!("{b}/api/fwd"), None).await.0, 200);
    assert_eq!(get(format!("{b}/api/adm"), None).await.0, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn routing_404s() {
    let (_app, h) = started("echo-app", &[]).await;
    let c = client();
    let b = h.base_url();
    let m = h.master_key();
    for (method, path, want) in [
        ("GET", "/api/nothing", 404),
        ("GET", "/fwd", 404),        // the prefix is required
        ("DELETE", "/api/fwd", 404), // a method not listed does not match
        ("POST", "/api/anon", 404),
        ("GET", "/api/fwd/1/2", 404), // too many segments
        ("GET", "/API/FWD/9", 200),   // paths are case-insensitive
        ("GET", "/api/anon/", 200),
        ("PATCH", "/api/adm", 200), // no methods = every method
    ] {
        let resp = call(
            c.request(method.parse().unwrap(), format!("{b}{path}")),
            m,
            None,
        )
        .await;
        assert_eq!(resp.status().as_u16(), want, "{method} {path}");
        if want == 404 {
            assert!(resp.bytes().await.unwrap().is_empty());
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn reply_rules() {
    let app = app("json-app");
    let settings = read_settings_file(&app.root().join("local.settings.json")).unwrap();
    let h = start_with(&app, |c| c.settings.extend(settings)).await;
    let c = client();
    let b = h.base_url().to_string();
    let key = h.function_key("echo").unwrap().to_string();
    let url = format!("{b}/ups/x");
    let call = |control: &str| {
        let r = keyed(c.post(&url), Some(&key)).header("x-echo", control);
        async move {
            let resp = send(r).await;
            let s = resp.status().as_u16();
            let hs = resp.headers().clone();
            (s, hs, resp.bytes().await.unwrap().to_vec())
        }
    };
    // Non-2xx from the handler: an empty 500.
    let (s, _, body) = call("status=503").await;
    assert_eq!((s, body.as_slice()), (500, &b""[..]));
    // Non-JSON reply: an empty 500.
    let (s, _, body) = call("text").await;
    assert_eq!((s, body.as_slice()), (500, &b""[..]));
    // No `res`: 200 {}.
    let (s, _, body) = call("nores").await;
    assert_eq!((s, body.as_slice()), (200, &b"{}"[..]));
    assert!(
        h.logs()
            .iter()
            .any(|l| l.text == "no res" && l.level == Level::Information)
    );
    // statusCode as a string; an object body re-serialized indented.
    let (s, hs, body) = call("res-object").await;
    assert_eq!(s, 201);
    assert_eq!(hs["x-echo"], "yes");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "{\n  \"a\": 1,\n  \"b\": [\n    true\n  ]\n}"
    );
    // $return: a plain string is first tried as base64.
    let ret = |control: &str| answer(c.post(format!("{b}/ret")).header("x-echo", control));
    assert_eq!(ret("return=T0s=").await, (200, b"OK".to_vec()));
    assert_eq!(ret("return=test").await, (200, vec![0xb5, 0xeb, 0x2d]));
    assert_eq!(
        ret("return=not base64!").await,
        (200, b"not base64!".to_vec())
    );
    // A disabled function does not exist.
    assert_eq!(send(c.get(format!("{b}/off"))).await.status(), 404);
    h.shutdown().await;
}

#[tokio::test]
async fn function_timeout_restarts_the_handler() {
    let (app, h) = started("json-app", &[]).await;
    let c = client();
    let key = h.function_key("echo").unwrap().to_string();
    // Two invocations time out on the same handler: it is restarted once.
    let url = format!("{}/ups/x", h.base_url());
    let slow = || call(c.post(&url), &key, Some("sleep=60000"));
    let (a, b) = tokio::join!(slow(), slow());
    for resp in [a, b] {
        assert_eq!(resp.status(), 500);
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    wait_for("a second handler start", || starts(&app) == 2).await;
    assert!(logged(&h, |t| t.starts_with(
        "Timeout value of 00:00:02 exceeded by function 'Functions.echo'"
    )));
    // A `null` reply hangs until functionTimeout, then the handler restarts again.
    assert_eq!(call(c.post(&url), &key, Some("null")).await.status(), 500);
    wait_for("a third handler start", || starts(&app) == 3).await;
    // And the new handler answers.
    assert_eq!(call(c.post(&url), &key, None).await.status(), 200);
    assert_eq!(ready_generation(&h), Some(3));
    h.shutdown().await;
}

#[tokio::test]
async fn handler_environment_arguments_and_logs() {
    let (app, h) = started(
        "echo-app",
        &[
            ("ECHO_ARG", "A"),
            ("ECHO_SETTING", "s1"),
            ("FUNC_EMULATOR_MASTER_KEY", "mk"),
        ],
    )
    .await;
    assert_eq!(h.master_key(), "mk");
    // A request makes sure the handler is up and its output was read.
    assert_eq!(get(&h, "/api/anon").await.status(), 200);
    wait_for("the handler's output", || {
        logged(&h, |t| t.starts_with("echo-handler cwd"))
    })
    .await;
    let logs = h.logs();
    let find = |p: &str| {
        logs.iter()
            .find(|l| l.source == Source::Worker && l.text.starts_with(p))
            .unwrap()
            .clone()
    };
    let env: Value = serde_json::from_str(
        find("echo-handler env ")
            .text
            .trim_start_matches("echo-handler env "),
    )
    .unwrap();
    assert_eq!(
        env["FUNCTIONS_CUSTOMHANDLER_PORT"],
        env["FUNCTIONS_HTTPWORKER_PORT"]
    );
    assert!(
        env["FUNCTIONS_CUSTOMHANDLER_PORT"]
            .as_str()
            .unwrap()
            .parse::<u16>()
            .is_ok()
    );
    assert_eq!(
        env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"],
        env["FUNCTIONS_HTTPWORKER_ID"]
    );
    assert_eq!(
        env["FUNCTIONS_APP_ROOT_PATH"],
        app.root().display().to_string()
    );
    assert_eq!(env["ECHO_SETTING"], "s1");
    // Key settings are not given to the handler.
    assert_eq!(env["FUNC_EMULATOR_MASTER_KEY"], Value::Null);
    // Arguments: %ECHO_ARG% replaced, an unresolved %MISSING% removed.
    assert_eq!(
        find("echo-handler args ").text,
        r#"echo-handler args ["--flag","A","xy"]"#
    );
    assert_eq!(
        find("echo-handler cwd ").text,
        format!(
            "echo-handler cwd {}",
            app.root().canonicalize().unwrap().display()
        )
    );
    assert_eq!(find("echo-handler listening").level, Level::Information);
    assert_eq!(find("echo-handler stderr line").level, Level::Error);
    assert_eq!(find("echo-handler warn:").level, Level::Warning);
    h.shutdown().await;
}
