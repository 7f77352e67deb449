//! `burst-handler` as a process: forwarding and JSON mode, and every bad-input case answered
//! with the right 4xx JSON while the process stays alive.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn agent_events_are_authenticated_deduplicated_and_stored() {
    let mut h = Handler::start(&[]);
    let id = uuid::Uuid::new_v4().to_string();
    let body = ups_body(&id, "ONBATT", "OB DISCHRG");
    let c = claims(&body);
    let token = sign_ed(&c, AGENT_PRIVATE_PEM);
    let (status, v) = post(&h, "/api/ups", &body, &agent_headers(&token)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["duplicate"], false);
    assert_eq!(v["mode"], "suspect");
    assert!(h.state_dir.path().join("state").read_dir().unwrap().count() >= 1);

    // The same token again: a replay.
    let (status, v) = post(&h, "/api/ups", &body, &agent_headers(&token)).await;
    assert_eq!((status, v["error"].as_str()), (409, Some("replayed_token")));

    // The same event with a fresh token (the agent re-sent it): accepted as a duplicate.
    let (status, v) = post_signed_bytes(&h, "/api/ups", &body).await;
    assert_eq!(status, 200);
    assert_eq!(v["duplicate"], true);

    // Heartbeat and witness.
    let hb = json!({"id": uuid::Uuid::new_v4().to_string(), "at": chrono::Utc::now().to_rfc3339(),
        "nodes_ready": 7, "nodes_total": 7, "ups_status": "OB DISCHRG", "api_ok": true});
    let (status, _) = post_signed(&h, "/api/heartbeat", &hb).await;
    assert_eq!(status, 200);
    let w = json!({"id": uuid::Uuid::new_v4().to_string(), "at": chrono::Utc::now().to_rfc3339(),
        "target": "https://home:6443/readyz", "reachable": true, "latency_ms": 20});
    let (status, _) = post_signed(&h, "/api/witness", &w).await;
    assert_eq!(status, 200);

    let status_resp: Value = status_json(&h).await;
    let site = &status_resp["sites"][0];
    assert_eq!(site["site"], "home");
    assert_eq!(site["mode"], "suspect");
    assert_eq!(site["signals"]["power"]["health"], "down");
    assert!(h.alive());
}

#[tokio::test]
async fn bad_agent_requests_get_the_right_4xx_and_the_process_stays_up() {
    let mut h = Handler::start(&[]);
    let body = ups_body(&uuid::Uuid::new_v4().to_string(), "ONBATT", "OB");
    let ok_claims = claims(&body);
    // The agent's headers for `ok_claims` as `edit` changes them, signed with the agent's key.
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut c = ok_claims.clone();
        edit(&mut c);
        agent_headers(&sign_ed(&c, AGENT_PRIVATE_PEM))
    };
    // (what, body, headers, expected status, expected error code)
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no token",
            body.clone(),
            vec![("content-type", "application/json".into())],
            401,
            "missing_token",
        ),
        (
            "forged",
            body.clone(),
            agent_headers(&sign_ed(&ok_claims, OTHER_PRIVATE_PEM)),
            401,
            "invalid_token",
        ),
        (
            "wrong algorithm HS256",
            body.clone(),
            agent_headers(&sign_hs(&ok_claims, "0123456789abcdef0123456789abcdef")),
            401,
            "wrong_algorithm",
        ),
        (
            "alg none",
            body.clone(),
            agent_headers(&{
                use base64::Engine as _;
                let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                format!(
                    "{}.{}.",
                    e.encode(br#"{"alg":"none","typ":"JWT"}"#),
                    e.encode(serde_json::to_vec(&ok_claims).unwrap())
                )
            }),
            401,
            "invalid_token",
        ),
        (
            "expired",
            body.clone(),
            edited(&|c| {
                c["iat"] = json!(now_unix() - 900);
                c["exp"] = json!(now_unix() - 700);
            }),
            401,
            "token_expired",
        ),
        (
            "issued in the future",
            body.clone(),
            edited(&|c| {
                c["iat"] = json!(now_unix() + 600);
                c["exp"] = json!(now_unix() + 700);
            }),
            401,
            "token_not_yet_valid",
        ),
        (
            "lifetime over 300 s",
            body.clone(),
            edited(&|c| c["exp"] = json!(now_unix() + 3600)),
            401,
            "token_lifetime_too_long",
        ),
        (
            "wrong audience",
            body.clone(),
            edited(&|c| c["aud"] = json!("someone-else")),
            401,
            "wrong_audience",
        ),
        (
            "unknown site",
            body.clone(),
            edited(&|c| c["iss"] = json!("elsewhere")),
            401,
            "unknown_site",
        ),
        (
            "missing jti",
            body.clone(),
            edited(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            401,
            "invalid_claims",
        ),
        (
            "body hash mismatch",
            ups_body(&uuid::Uuid::new_v4().to_string(), "ONLINE", "OL"),
            agent_headers(&sign_ed(&ok_claims, AGENT_PRIVATE_PEM)),
            401,
            "body_hash_mismatch",
        ),
        (
            "wrong content type",
            body.clone(),
            vec![
                ("content-type", "text/plain".into()),
                (
                    "authorization",
                    format!("Bearer {}", sign_ed(&ok_claims, AGENT_PRIVATE_PEM)),
                ),
            ],
            415,
            "unsupported_media_type",
        ),
    ];
    for (what, b, headers, want_status, want_code) in cases {
        let (status, v) = post(&h, "/api/ups", &b, &headers).await;
        assert_eq!(
            (status, v["error"].as_str().unwrap()),
            (want_status, want_code),
            "{what}: {v}"
        );
    }

    // Truncated JSON, correctly signed: the body is refused, not the token.
    let truncated = &body[..body.len() / 2];
    let (status, v) = post_signed_bytes(&h, "/api/ups", truncated).await;
    assert_eq!(
        (status, v["error"].as_str().unwrap()),
        (400, "invalid_payload"),
        "{v}"
    );

    // A missing field is named.
    let missing = br#"{"at":"2026-01-10T12:00:00Z","ups":"u","type":"ONBATT","status":"OB"}"#;
    let (status, v) = post_signed_bytes(&h, "/api/ups", missing).await;
    assert_eq!(status, 400);
    assert!(v["detail"].as_str().unwrap().contains("`id`"), "{v}");

    // Oversized.
    let big = vec![b' '; 70 * 1024];
    let (status, v) = post_signed_bytes(&h, "/api/ups", &big).await;
    assert_eq!(
        (status, v["error"].as_str().unwrap()),
        (413, "body_too_large")
    );

    // Unknown route and wrong method.
    let (status, _) = post(&h, "/api/nope", b"{}", &[]).await;
    assert_eq!(status, 404);
    let resp = reqwest::get(format!("{}/api/ups", h.base)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let (status, _) = post(&h, "/api/status", b"{}", &[]).await;
    assert_eq!(status, 405);

    assert!(h.alive(), "the handler died");
    let ready = reqwest::get(format!("{}/", h.base)).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
}

#[tokio::test]
async fn tailscale_webhooks_are_verified_over_the_raw_bytes() {
    let mut h = Handler::start(&[]);
    let body = br#"[{"timestamp":"2026-01-10T12:00:00Z","version":1,"type":"nodeKeyExpiringInOneDay","tailnet":"example.com","message":"key expiring","data":{"nodeID":"n1","deviceName":"k8s-w1.tail.ts.net"}},{"timestamp":"2026-01-10T12:00:01Z","version":1,"type":"brandNewEventType","tailnet":"example.com","message":"?","data":null}]"#;
    let now = now_unix();
    let ok = ts_signature(TS_SECRET, now, body);
    let headers = |sig: String| {
        vec![
            ("content-type", "application/json".to_string()),
            ("tailscale-webhook-signature", sig),
        ]
    };
    let (status, v) = post(&h, "/api/tailscale", body, &headers(ok.clone())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["events"], 2);
    assert_eq!(v["duplicates"], 0);
    // A redelivery is accepted and recognised.
    let (status, v) = post(&h, "/api/tailscale", body, &headers(ok)).await;
    assert_eq!((status, v["duplicates"].as_u64()), (200, Some(2)));

    let cases = vec![
        ("stale", ts_signature(TS_SECRET, now - 400, body)),
        ("future", ts_signature(TS_SECRET, now + 400, body)),
        (
            "wrong secret",
            ts_signature("tskey-webhook-other", now, body),
        ),
        ("malformed", "t=12,v1".to_string()),
        ("no v1", format!("t={now}")),
        ("not a number", "t=abc,v1=00".to_string()),
    ];
    for (what, sig) in cases {
        let (status, v) = post(&h, "/api/tailscale", body, &headers(sig)).await;
        assert_eq!(status, 401, "{what}: {v}");
    }
    // Tampered body: the signature was over other bytes.
    let sig = ts_signature(TS_SECRET, now, body);
    let mut tampered = body.to_vec();
    tampered[3] = b'X';
    let (status, _) = post(&h, "/api/tailscale", &tampered, &headers(sig)).await;
    assert_eq!(status, 401);
    // Signed but not an array.
    let obj = br#"{"type":"test"}"#;
    let (status, v) = post(
        &h,
        "/api/tailscale",
        obj,
        &headers(ts_signature(TS_SECRET, now, obj)),
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str().unwrap()),
        (400, "invalid_payload")
    );
    assert!(h.alive());
}

#[tokio::test]
async fn json_mode_invocations_follow_the_host_protocol() {
    let mut h = Handler::start(&[]);
    let body = ups_body(&uuid::Uuid::new_v4().to_string(), "ONBATT", "OB DISCHRG");
    let token = sign_ed(&claims(&body), AGENT_PRIVATE_PEM);
    // As the host builds it: headers as arrays of strings, Body as a string, Metadata strings
    // double-quoted.
    let invocation = json!({
        "Data": {"req": {
            "Url": "https://app.azurewebsites.net/api/ups?code=K1",
            "Method": "POST",
            "Query": {"code": "K1"},
            "Headers": {"Content-Type": ["application/json"], "Authorization": [format!("Bearer {token}")], "Host": ["app.azurewebsites.net"]},
            "Params": {},
            "Identities": [{"AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true}],
            "Body": String::from_utf8(body.clone()).unwrap(),
        }},
        "Metadata": {"Query": {"code": "K1"}, "Headers": {"Content-Type": "application/json"}, "id": "\"x\"",
            "sys": {"MethodName": "ups", "UtcNow": "2026-01-10T12:05:00.0204711Z", "RandGuid": "9d0f2c1e-0000-0000-0000-000000000000"}}
    });
    let resp = reqwest::Client::new()
        .post(format!("{}/ups", h.base))
        .header("content-type", "application/json; charset=utf-8")
        .header(
            "x-azure-functions-invocationid",
            uuid::Uuid::new_v4().to_string(),
        )
        .body(serde_json::to_vec(&invocation).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["ReturnValue"], Value::Null);
    assert!(v["Logs"].is_array());
    let res = &v["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200, "{v}");
    assert_eq!(res["headers"]["content-type"], "application/json");
    let inner: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["ok"], true);

    // A refused request still answers 200 at the host protocol level, with the 4xx inside.
    let mut bad = invocation.clone();
    bad["Data"]["req"]["Headers"]["Authorization"] = json!(["Bearer nope"]);
    let v: Value = invoke(&h, "ups", &bad).await.json().await.unwrap();
    assert_eq!(v["Outputs"]["res"]["statusCode"], 401);

    // The timer: ScheduleStatus null (sub-minute schedules), lenient dates.
    let timer = json!({"Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
        "Metadata": {"sys": {"MethodName": "probe", "UtcNow": "2026-01-10T12:05:00.0204711Z", "RandGuid": "9d0f2c1e"}}});
    let resp = invoke(&h, "probe", &timer).await;
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["Outputs"], json!({}));
    assert!(
        v["Logs"][0]
            .as_str()
            .unwrap()
            .starts_with("probe home: mode"),
        "{v}"
    );
    assert_eq!(v["ReturnValue"], Value::Null);

    // Garbage from the host: still a JSON object, never a 5xx.
    let resp = reqwest::Client::new()
        .post(format!("{}/ups", h.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["Outputs"]["res"]["statusCode"], 400);
    assert!(h.alive());
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let hs = "hs256-secret-that-must-never-be-logged-0123456789";
    let mut h = Handler::start(&[
        ("BURST_AGENT_ED25519_PUBLIC_KEY", ""),
        ("BURST_AGENT_HS256_SECRET", hs),
    ]);
    let body = ups_body(&uuid::Uuid::new_v4().to_string(), "ONBATT", "OB");
    let good = sign_hs(&claims(&body), hs);
    let (status, _) = post(&h, "/api/ups", &body, &agent_headers(&good)).await;
    assert_eq!(status, 200);
    let bad = sign_hs(&claims(&body), "0123456789abcdef0123456789abcdef-wrong");
    let (status, _) = post(&h, "/api/ups", &body, &agent_headers(&bad)).await;
    assert_eq!(status, 401);
    let tsbody = b"[]";
    let (status, _) = post(
        &h,
        "/api/tailscale",
        tsbody,
        &[
            ("content-type", "application/json".into()),
            (
                "tailscale-webhook-signature",
                ts_signature(TS_SECRET, now_unix(), tsbody),
            ),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(h.alive());
    let logs = h.logs();
    assert!(
        logs.contains("burst-handler ready"),
        "logs were captured: {logs}"
    );
    for secret in [hs, TS_SECRET, good.as_str()] {
        assert!(!logs.contains(secret), "a secret appeared in the logs");
    }
    // Every log line is JSON on stdout (stderr lines would be errors in Azure).
    for line in logs.lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
    }
}

async fn post_signed(h: &Handler, path: &str, body: &Value) -> (u16, Value) {
    post_signed_bytes(h, path, &serde_json::to_vec(body).unwrap()).await
}

/// Posts `bytes` as they are, with the agent's headers and a token signed for them.
async fn post_signed_bytes(h: &Handler, path: &str, bytes: &[u8]) -> (u16, Value) {
    let token = sign_ed(&claims(bytes), AGENT_PRIVATE_PEM);
    post(h, path, bytes, &agent_headers(&token)).await
}

/// Posts a signed UPS event of `ups@home` at `at`, with a fresh id, to `/api/ups`.
async fn post_ups_at(h: &Handler, kind: &str, status: &str, at: &str) -> (u16, Value) {
    let event = json!({"id": uuid::Uuid::new_v4().to_string(), "at": at, "ups": "ups@home",
        "type": kind, "status": status});
    post_signed(h, "/api/ups", &event).await
}

/// The JSON lines of `logs` whose message is `message`.
fn logged(logs: &str, message: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

#[tokio::test]
async fn heartbeats_carry_the_lease_and_where_the_stateful_tier_runs() {
    let mut h = Handler::start(&[]);
    let beat = |lease: bool| {
        let mut b = json!({"id": uuid::Uuid::new_v4().to_string(),
            "at": chrono::Utc::now().to_rfc3339(), "nodes_ready": 7, "nodes_total": 7,
            "ups_status": "OL", "api_ok": true});
        if lease {
            b["lease"] = json!(true);
        }
        b
    };
    // An agent without a fence asks for no lease and gets none.
    let (status, v) = post_signed(&h, "/api/heartbeat", &beat(false)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["stateful"], "home");
    assert!(v.get("lease").is_none(), "{v}");

    let before = chrono::Utc::now();
    let (status, v) = post_signed(&h, "/api/heartbeat", &beat(true)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["stateful"], "home");
    let remaining = v["lease"]["remaining_ms"].as_i64().unwrap();
    // The default lease is 120 s, granted at receipt.
    assert!((110_000..=120_000).contains(&remaining), "{v}");
    let expires: chrono::DateTime<chrono::Utc> =
        v["lease"]["expires_at"].as_str().unwrap().parse().unwrap();
    let ahead = (expires - before).num_milliseconds();
    assert!((119_000..=125_000).contains(&ahead), "{v}");

    let status_resp: Value = status_json(&h).await;
    assert_eq!(
        status_resp["sites"][0]["lease"]["expires_at"],
        v["lease"]["expires_at"]
    );
    assert!(h.alive());
}

#[tokio::test]
async fn an_event_dated_in_the_future_never_blocks_later_ones() {
    let mut h = Handler::start(&[]);
    let (status, v) = post_ups_at(&h, "ONBATT", "OB DISCHRG", "9999-12-31T23:59:59Z").await;
    assert_eq!((status, v["mode"].as_str()), (200, Some("suspect")), "{v}");
    let now = chrono::Utc::now().to_rfc3339();
    let (status, v) = post_ups_at(&h, "ONLINE", "OL", &now).await;
    assert_eq!((status, v["mode"].as_str()), (200, Some("healthy")), "{v}");

    let status_resp: Value = status_json(&h).await;
    let site = &status_resp["sites"][0];
    assert_eq!(site["signals"]["power"]["health"], "up", "{site}");
    let audit = site["audit"].to_string();
    assert!(audit.contains("sender clock ahead"), "{audit}");
    // Every mode change is one JSON log line with its reason.
    let logs = h.logs();
    let changes = logged(&logs, "mode change");
    assert_eq!(changes.len(), 2, "{logs}");
    assert_eq!(changes[0]["fields"]["to"], "suspect", "{logs}");
    assert_eq!(changes[0]["fields"]["reason"], "on battery", "{logs}");
    assert_eq!(changes[1]["fields"]["to"], "healthy", "{logs}");
    assert!(h.alive());
}

#[tokio::test]
async fn extreme_token_times_get_401_json_not_a_dropped_connection() {
    let mut h = Handler::start(&[]);
    let body = ups_body(&uuid::Uuid::new_v4().to_string(), "ONBATT", "OB");
    for (iat, exp) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (i64::MIN, 0)] {
        let mut c = claims(&body);
        c["iat"] = json!(iat);
        c["exp"] = json!(exp);
        let token = sign_ed(&c, AGENT_PRIVATE_PEM);
        let (status, v) = post(&h, "/api/ups", &body, &agent_headers(&token)).await;
        assert_eq!(status, 401, "iat {iat} exp {exp}: {v}");
        assert_eq!(v["error"], "token_lifetime_too_long", "{v}");
    }
    assert!(h.alive());
}

#[tokio::test]
async fn an_invocation_saves_its_intent_and_then_all_outcomes_at_once() {
    let mut h = Handler::start(&[]);
    // LOWBATT: outage at once → a capacity write, a migration and a message, then follow-ups.
    let (status, v) = post_ups_at(&h, "LOWBATT", "OB LB", &chrono::Utc::now().to_rfc3339()).await;
    assert_eq!((status, v["mode"].as_str()), (200, Some("outage")), "{v}");
    let logs = h.logs();
    let done = logged(&logs, "invocation done");
    assert_eq!(done.len(), 1, "{logs}");
    let actions = done[0]["fields"]["actions"].as_u64().unwrap();
    assert!(actions >= 3, "scale, migrate and notify at least: {logs}");
    // Before: one save per outcome (1 + actions); now the intent and one fold.
    assert_eq!(done[0]["fields"]["saves"], 2, "{logs}");
    assert!(h.alive());
}

#[tokio::test]
async fn a_browser_gets_a_self_contained_status_page() {
    let mut h = Handler::start(&[]);
    let (status, _) =
        post_ups_at(&h, "ONBATT", "OB DISCHRG", &chrono::Utc::now().to_rfc3339()).await;
    assert_eq!(status, 200);
    let resp = status_page(&h, "text/html,application/xhtml+xml,*/*;q=0.8").await;
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(resp.headers().contains_key("content-security-policy"));
    let page = resp.text().await.unwrap();
    assert!(page.contains("<h2>home <span class=\"mode\""), "{page}");
    assert!(page.contains(">suspect</span>"), "{page}");
    assert!(page.contains("on battery"), "{page}");
    assert!(
        !page.contains("<script") && !page.contains("src="),
        "{page}"
    );
    // A client that asks for JSON still gets JSON.
    let v: Value = status_json(&h).await;
    assert_eq!(v["sites"][0]["mode"], "suspect");
    assert!(h.alive());
}
