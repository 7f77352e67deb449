//! The real client against the simulated Discord: create → edit → post, pings, rate limits, a
//! gone webhook, refused messages, and secrets kept out of errors.
#![allow(clippy::unwrap_used)]

use burst_core::{Delivery, Notification, NotifyResult, Severity};
use burst_discord::{DiscordConfig, DiscordWebhook, WebhookUrl};
use burst_discord_sim::{self as sim, RateLimit, SimConfig, SimHandle};
use burst_ports::Notifier;
use serde_json::{Value, json};
use std::time::Duration;

async fn sim_with(config: SimConfig) -> SimHandle {
    sim::start(config).await.unwrap()
}

async fn sim_default() -> SimHandle {
    sim_with(SimConfig {
        rate_limit: None,
        ..SimConfig::default()
    })
    .await
}

/// A raw HTTP client sending `agent` as its User-Agent (none: no such header).
fn agent_client(agent: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder();
    if let Some(a) = agent {
        builder = builder.user_agent(a);
    }
    builder.build().unwrap()
}

/// A raw HTTP client that identifies itself the way Discord asks (else the sim, like
/// Cloudflare in front of Discord, answers 403).
fn http_client() -> reqwest::Client {
    agent_client(Some(burst_discord::USER_AGENT))
}

/// Sends a raw request, which must get an answer.
async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.unwrap()
}

/// The client for the webhook `url`, with `role` to ping.
fn client_at(url: &str, role: Option<&str>) -> DiscordWebhook {
    let mut config = DiscordConfig::new(WebhookUrl::parse(url).unwrap());
    config.role_id = role.map(str::to_string);
    DiscordWebhook::new(config).unwrap()
}

fn client_for(sim: &SimHandle, role: Option<&str>) -> DiscordWebhook {
    client_at(&sim.webhook_url(), role)
}

fn note(delivery: Delivery, severity: Severity, lines: &[&str], ping: bool) -> Notification {
    Notification {
        key: "home-1".into(),
        delivery,
        title: "Outage at home".into(),
        severity,
        lines: lines.iter().map(|s| s.to_string()).collect(),
        ping,
    }
}

/// A sim without a rate limit and a client without a role.
async fn setup() -> (SimHandle, DiscordWebhook) {
    let sim = sim_default().await;
    let client = client_for(&sim, None);
    (sim, client)
}

/// A sim whose bucket allows `requests` per `per`.
async fn sim_limited(requests: u32, per: Duration) -> SimHandle {
    let rate_limit = Some(RateLimit { requests, per });
    sim_with(SimConfig {
        rate_limit,
        ..SimConfig::default()
    })
    .await
}

/// A one-line notification that pings no one.
fn line(delivery: Delivery, severity: Severity, text: &str) -> Notification {
    note(delivery, severity, &[text], false)
}

/// A one-line trouble notification that creates the message of an incident.
fn trouble(text: &str) -> Notification {
    line(Delivery::Create, Severity::Trouble, text)
}

/// A one-line information posted as a message of its own.
fn info(text: &str) -> Notification {
    line(Delivery::Post, Severity::Info, text)
}

/// A one-line information that edits the message `id`.
fn info_edit(id: &str, text: &str) -> Notification {
    let message_id = id.into();
    line(Delivery::Edit { message_id }, Severity::Info, text)
}

/// Sends `n`, which must create a message; its id.
async fn create(client: &DiscordWebhook, n: Notification) -> String {
    created_id(client.send(&n).await)
}

fn created_id(result: NotifyResult) -> String {
    match result {
        NotifyResult::Delivered {
            message_id: Some(id),
        } => id,
        other => panic!("not created: {other:?}"),
    }
}

#[tokio::test]
async fn create_then_edit_changes_the_same_message() {
    let (sim, client) = setup().await;

    let first = note(
        Delivery::Create,
        Severity::Trouble,
        &["12:00:00 on battery"],
        true,
    );
    let id = created_id(client.send(&first).await);

    let msgs = sim.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.id, id);
    assert_eq!(m.username, "hybrid-burst");
    assert_eq!(m.content, "");
    assert_eq!(m.allowed_mentions, Some(json!({"parse": []})));
    assert_eq!(m.embeds.len(), 1);
    let e = &m.embeds[0];
    assert_eq!(e["title"], json!("Outage at home"));
    assert_eq!(e["description"], json!("12:00:00 on battery"));
    assert_eq!(e["color"], json!(0xED4245));
    assert_eq!(e["footer"], json!({"text": "home-1"}));
    assert!(chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).is_ok());

    let req = &sim.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, sim.api_path());
    assert_eq!(req.query.as_deref(), Some("wait=true"));
    assert_eq!(req.content_type.as_deref(), Some("application/json"));
    assert_eq!(req.status, 200);

    let mut resolved = note(
        Delivery::Edit {
            message_id: id.clone(),
        },
        Severity::Resolved,
        &["12:00:00 on battery", "12:40:00 power back"],
        false,
    );
    resolved.title = "Resolved: home back to normal after 40 min".into();
    assert_eq!(
        client.send(&resolved).await,
        NotifyResult::Delivered { message_id: None }
    );

    let msgs = sim.messages();
    assert_eq!(msgs.len(), 1, "an edit must not post a new message");
    let m = &msgs[0];
    assert_eq!(m.id, id);
    assert_eq!(m.edits, 1);
    assert_eq!(m.history.len(), 1);
    assert_eq!(m.history[0]["embeds"][0]["color"], json!(0xED4245));
    assert_eq!(m.embeds[0]["color"], json!(0x57F287));
    assert_eq!(
        m.embeds[0]["description"],
        json!("12:00:00 on battery\n12:40:00 power back")
    );
    assert_eq!(
        m.embeds[0]["title"],
        json!("Resolved: home back to normal after 40 min")
    );
    assert_eq!(m.username, "hybrid-burst", "the author stays");

    let req = &sim.requests()[1];
    assert_eq!(req.method, "PATCH");
    assert_eq!(req.path, format!("{}/messages/{id}", sim.api_path()));
    assert_eq!(req.query, None);
    assert!(req.body.as_ref().unwrap().get("username").is_none());
}

#[tokio::test]
async fn post_creates_a_separate_message() {
    let (sim, client) = setup().await;
    let a = create(&client, trouble("a")).await;
    let b = create(
        &client,
        line(Delivery::Post, Severity::Warning, "budget 80 %"),
    )
    .await;
    assert_ne!(a, b);
    let msgs = sim.messages();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].id, b);
    assert_eq!(msgs[1].embeds[0]["color"], json!(0xFEE75C));
}

#[tokio::test]
async fn role_ping_only_when_configured_and_asked() {
    let sim = sim_default().await;
    let with_role = client_for(&sim, Some("998877665544332211"));
    let without_role = client_for(&sim, None);

    let ping = |text| note(Delivery::Post, Severity::Trouble, &[text], true);
    for (client, n) in [
        (&with_role, ping("x")),
        (&with_role, info("y")),
        (&without_role, ping("z")),
    ] {
        created_id(client.send(&n).await);
    }

    let msgs = sim.messages();
    assert_eq!(msgs[0].content, "<@&998877665544332211>");
    assert_eq!(
        msgs[0].allowed_mentions,
        Some(json!({"roles": ["998877665544332211"]}))
    );
    assert_eq!(msgs[0].pinged_roles, vec!["998877665544332211".to_string()]);

    for m in &msgs[1..] {
        assert_eq!(m.content, "");
        assert_eq!(m.allowed_mentions, Some(json!({"parse": []})));
        assert!(m.pinged_roles.is_empty());
    }
}

#[tokio::test]
async fn mentions_in_timeline_text_never_ping() {
    let (sim, client) = setup().await;
    // Text from the outside world (device names, UPS names) could hold mentions.
    created_id(client.send(&info("@everyone <@&123> node joined")).await);
    let m = &sim.messages()[0];
    assert!(!m.mention_everyone);
    assert!(m.pinged_roles.is_empty());
    for r in sim.requests() {
        assert!(
            r.body.unwrap().get("allowed_mentions").is_some(),
            "allowed_mentions always present"
        );
    }
}

/// Forces an answer on the sim's next request.
type Force = fn(&SimHandle);

/// Forced answers: what the client reports, and that it never retried on its own (the next
/// send is a request of its own, answered normally).
#[tokio::test]
async fn forced_answers_map_to_results() {
    let bad_gateway = NotifyResult::Failed {
        detail: "HTTP 502: 502: Bad Gateway (code 0)".into(),
        retryable: true,
    };
    let discords_wait = NotifyResult::RateLimited {
        retry_after_ms: 1500,
    };
    let cases: [(Force, NotifyResult, [u16; 2]); 2] = [
        (
            |sim| sim.force_rate_limit(1, 1.5),
            discords_wait,
            [429, 200],
        ),
        (
            |sim| sim.force_server_errors(1, 502),
            bad_gateway,
            [502, 200],
        ),
    ];
    for (force, want, statuses) in cases {
        let (sim, client) = setup().await;
        force(&sim);
        let n = trouble("x");
        assert_eq!(client.send(&n).await, want);
        assert!(sim.messages().is_empty());
        created_id(client.send(&n).await);
        let seen: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
        assert_eq!(seen, statuses);
    }
}

#[tokio::test]
async fn bucket_limit_gives_rate_limited() {
    let sim = sim_limited(2, Duration::from_secs(600)).await;
    let client = client_for(&sim, None);
    let n = info("x");
    created_id(client.send(&n).await);
    created_id(client.send(&n).await);
    match client.send(&n).await {
        NotifyResult::RateLimited { retry_after_ms } => {
            assert!(
                retry_after_ms > 0 && retry_after_ms <= 600_000,
                "{retry_after_ms}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.messages().len(), 2);
}

#[tokio::test]
async fn rate_limit_headers_and_429_body_are_discords() {
    let sim = sim_limited(1, Duration::from_secs(600)).await;
    let url = format!("{}?wait=true", sim.api_url());
    let http = http_client();
    let hi = json!({"content": "hi"});
    let ok = send(http.post(&url).json(&hi)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-ratelimit-limit"], "1");
    assert_eq!(ok.headers()["x-ratelimit-remaining"], "0");
    assert!(ok.headers().contains_key("x-ratelimit-reset"));
    assert!(ok.headers().contains_key("x-ratelimit-reset-after"));
    assert!(ok.headers().contains_key("x-ratelimit-bucket"));

    let limited = send(http.post(&url).json(&hi)).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(limited.headers()["x-ratelimit-scope"], "user");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["message"], json!("You are being rate limited."));
    assert_eq!(body["global"], json!(false));
    assert!(body["retry_after"].as_f64().unwrap() > 0.0);
}

/// A webhook or message that is no longer there: posts and edits report it gone.
#[tokio::test]
async fn deleted_webhook_or_message_is_gone() {
    let gone = |detail: &str| NotifyResult::WebhookGone {
        detail: detail.into(),
    };
    let unknown_webhook = gone("HTTP 404: Unknown Webhook (code 10015)");
    let (sim, client) = setup().await;
    let id = create(&client, trouble("x")).await;
    let edit = |id: &str| info_edit(id, "y");
    assert!(sim.delete_message(&id));
    let message_gone = NotifyResult::MessageGone {
        detail: "HTTP 404: Unknown Message (code 10008): the message was deleted".into(),
    };
    assert_eq!(client.send(&edit(&id)).await, message_gone);
    sim.delete_webhook();
    let post = info("y");
    assert_eq!(client.send(&post).await, unknown_webhook);
    assert_eq!(client.send(&edit(&id)).await, unknown_webhook);

    // A wrong token or id looks the same to the client.
    let sim = sim_default().await;
    let base = sim.base_url();
    let wrong_token = format!("{base}/api/webhooks/{}/AnotherToken_123", sim.webhook_id());
    let wrong_id = format!("{base}/api/webhooks/42/{}", sim.token());
    for (url, want) in [
        (wrong_token, "HTTP 401: Invalid Webhook Token (code 50027)"),
        (wrong_id, "HTTP 404: Unknown Webhook (code 10015)"),
    ] {
        assert_eq!(client_at(&url, None).send(&post).await, gone(want));
    }
    assert!(sim.messages().is_empty());
}

#[tokio::test]
async fn transport_errors_are_retryable_and_quote_no_token() {
    let sim = sim_default().await;
    let token = sim.token();
    let url = sim.webhook_url();
    sim.shutdown().await;
    // Nothing listens on that port any more.
    match client_at(&url, None).send(&info("x")).await {
        NotifyResult::Failed { detail, retryable } => {
            assert!(retryable);
            assert!(
                detail.starts_with("Discord unreachable: connection failed"),
                "{detail}"
            );
            assert!(!detail.contains(&token), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn huge_emoji_heavy_notification_is_accepted() {
    let sim = sim_default().await;
    let client = client_for(&sim, Some("123456789"));
    let lines: Vec<String> = (0..400)
        .map(|i| format!("{i:03} 🔥👩‍👩‍👧 ünïcödé 中文 {}", "⚡".repeat(i % 50)))
        .collect();
    let n = Notification {
        key: "k🔑".repeat(3000),
        delivery: Delivery::Create,
        title: format!("   {}   ", "🏠 power lost ".repeat(100)),
        severity: Severity::Trouble,
        lines,
        ping: true,
    };
    let id = created_id(client.send(&n).await);
    let m = sim.message(&id).unwrap();
    let e = &m.embeds[0];
    let desc = e["description"].as_str().unwrap();
    assert!(
        desc.starts_with("000 🔥"),
        "the start of the timeline is kept"
    );
    assert!(desc.contains("399 🔥"), "the newest line is kept");
    assert!(desc.ends_with(&"⚡".repeat(399 % 50)));
    assert!(e["title"].as_str().unwrap().starts_with("🏠 power lost"));
    assert_eq!(m.content, "<@&123456789>");

    // Edits of the same message with the same huge content are accepted too.
    let mut edit = n.clone();
    edit.delivery = Delivery::Edit { message_id: id };
    assert_eq!(
        client.send(&edit).await,
        NotifyResult::Delivered { message_id: None }
    );
}

/// A request the sim must refuse: what it is, the request, the status, and fields of the JSON
/// answer (by JSON pointer; "" is the whole answer).
type Refusal<'a> = (&'a str, reqwest::RequestBuilder, u16, Vec<(&'a str, Value)>);

#[tokio::test]
async fn the_sim_refuses_what_discord_refuses() {
    let sim = sim_default().await;
    let http = http_client();
    let url = format!("{}?wait=true", sim.api_url());
    let post = |body: Value| http.post(&url).json(&body);
    let x = json!({"content": "x"});
    let base = sim.base_url();
    let not_an_id = format!("{base}/api/v10/webhooks/notanid/{}", sim.token());
    let cases: Vec<Refusal> = vec![
        (
            "description too long",
            post(json!({"embeds": [{"description": "x".repeat(4097)}]})),
            400,
            vec![
                ("/code", json!(50035)),
                ("/message", json!("Invalid Form Body")),
                (
                    "/errors/embeds/0/description/_errors/0/code",
                    json!("BASE_TYPE_MAX_LENGTH"),
                ),
            ],
        ),
        (
            "username clyde",
            post(json!({"content": "x", "username": "clyde"})),
            400,
            vec![],
        ),
        (
            "empty message",
            post(json!({})),
            400,
            vec![(
                "",
                json!({"message": "Cannot send an empty message", "code": 50006}),
            )],
        ),
        (
            "malformed JSON",
            http.post(&url)
                .header("content-type", "application/json")
                .body("{nope"),
            400,
            vec![("/code", json!(50109))],
        ),
        (
            "not JSON",
            http.post(&url)
                .header("content-type", "text/plain")
                .body(r#"{"content":"x"}"#),
            400,
            vec![("/code", json!(50006))],
        ),
        (
            "over the size limit",
            post(json!({"content": "x", "pad": "y".repeat(1 << 20)})),
            413,
            vec![("/code", json!(40005))],
        ),
        (
            "thread id not a snowflake",
            http.post(format!("{url}&thread_id=abc")).json(&x),
            400,
            vec![],
        ),
        (
            "webhook id not a snowflake",
            http.post(&not_an_id).json(&x),
            400,
            vec![],
        ),
        (
            "only v10 is served",
            http.post(format!("{base}/api/webhooks/1/x")),
            404,
            vec![],
        ),
        ("PUT", http.put(&url).json(&x), 405, vec![]),
    ];
    for (what, request, status, fields) in cases {
        let r = send(request).await;
        assert_eq!(r.status(), status, "{what}");
        if fields.is_empty() {
            continue;
        }
        let body: Value = r.json().await.unwrap();
        for (pointer, want) in fields {
            assert_eq!(body.pointer(pointer), Some(&want), "{what}: {pointer}");
        }
    }

    assert!(sim.messages().is_empty());
    let codes: Vec<Option<u64>> = sim.requests().iter().map(|r| r.code).collect();
    assert_eq!(
        codes,
        vec![
            Some(50035),
            Some(50035),
            Some(50006),
            Some(50109),
            Some(50006),
            Some(40005),
            Some(50035),
            Some(50035),
            Some(0),
            Some(0)
        ]
    );
}

#[tokio::test]
async fn without_wait_discord_answers_204_and_messages_api_works() {
    let sim = sim_default().await;
    let http = http_client();
    let base = sim.api_url();
    let r = send(http.post(&base).json(&json!({"content": "silent"}))).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.bytes().await.unwrap().len(), 0);
    let id = sim.messages()[0].id.clone();
    let message = format!("{base}/messages/{id}");

    let r = send(http.get(&message)).await;
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["content"], json!("silent"));
    assert_eq!(m["webhook_id"], json!(sim.webhook_id()));

    // An edit that would leave the message empty is refused.
    let r = send(http.patch(&message).json(&json!({"content": ""}))).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], json!(50006));

    assert_eq!(send(http.delete(&message)).await.status(), 204);
    let r = send(http.get(&message)).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "Unknown Message", "code": 10008})
    );

    let r = send(http.get(&base)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["type"], json!(1));
}

#[tokio::test]
async fn thread_id_from_the_url_is_used() {
    let sim = sim_default().await;
    let url = format!("{}?thread_id=5555", sim.webhook_url());
    let client = client_at(&url, None);
    let id = create(&client, trouble("x")).await;
    assert_eq!(sim.message(&id).unwrap().channel_id, "5555");
    let message_id = id;
    client
        .send(&line(Delivery::Edit { message_id }, Severity::Trouble, "x"))
        .await;
    let log = sim.requests();
    assert_eq!(log[0].query.as_deref(), Some("wait=true&thread_id=5555"));
    assert_eq!(log[1].query.as_deref(), Some("thread_id=5555"));
}

#[tokio::test]
async fn secrets_never_appear_in_errors_or_debug() {
    let sim = sim_default().await;
    let token = sim.token();
    let client = client_for(&sim, None);
    let shown = format!("{client:?} {:?}", client.config());
    assert!(!shown.contains(&token), "{shown}");

    sim.delete_webhook();
    for n in [info("x"), info_edit("1", "x")] {
        let text = format!("{:?}", client.send(&n).await);
        assert!(!text.contains(&token), "{text}");
    }
    let bad = format!("http://10.0.0.1/api/webhooks/1/{token}");
    let err = WebhookUrl::parse(&bad).unwrap_err();
    assert!(!err.to_string().contains(&token));
}

/// Item: the client sends the User-Agent Discord documents, `DiscordBot ($url, $versionNumber)`
/// (discord-api-docs, `reference.mdx`, "User Agent"), and the sim checks it.
#[tokio::test]
async fn requests_carry_discords_user_agent_form() {
    let (sim, client) = setup().await;
    create(&client, trouble("x")).await;
    let sent = sim.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, 200);
    let ua = sent[0].user_agent.as_deref().unwrap();
    assert_eq!(ua, burst_discord::USER_AGENT);
    assert!(sim::valid_user_agent(ua), "{ua}");
    assert!(ua.starts_with("DiscordBot (https://"), "{ua}");
}

/// Item: another User-Agent "may be blocked" with a Cloudflare error. The sim answers what
/// Cloudflare answers (HTML 403 "Error 1010", `Server: cloudflare`, a `CF-Ray`, no Discord
/// headers), and the client's classification of exactly that answer is retryable, not
/// permanent.
#[tokio::test]
async fn other_user_agents_get_cloudflares_403_which_is_retryable() {
    let sim = sim_default().await;
    let url = format!("{}?wait=true", sim.api_url());
    let hi = json!({"content": "hi"});
    for agent in [
        Some("Python-urllib/3.12"),
        Some("hybrid-burst/0.1.0"),
        Some("DiscordBot"),
        Some("DiscordBot (, 1.0)"),
        None,
    ] {
        let resp = send(agent_client(agent).post(&url).json(&hi)).await;
        assert_eq!(resp.status(), 403, "{agent:?}");
        let headers = resp.headers().clone();
        assert_eq!(headers["server"], "cloudflare");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(headers.contains_key("cf-ray"));
        assert!(!headers.contains_key("x-ratelimit-limit"));
        let body = resp.bytes().await.unwrap();
        assert!(serde_json::from_slice::<Value>(&body).is_err(), "not JSON");
        match burst_discord::classify(&Delivery::Create, 403, &headers, &body) {
            NotifyResult::Failed {
                detail,
                retryable: true,
            } => {
                assert!(detail.contains("blocked by Cloudflare"), "{detail}");
                assert!(
                    detail.contains("Access denied | discord.com used Cloudflare"),
                    "{detail}"
                );
                assert!(!detail.contains(&sim.token()), "{detail}");
            }
            other => panic!("{agent:?}: {other:?}"),
        }
    }
    // Nothing reached Discord's API: no message, every request logged as a 403 without code.
    assert!(sim.messages().is_empty());
    assert!(
        sim.requests()
            .iter()
            .all(|r| r.status == 403 && r.code.is_none())
    );
    // Appending to the documented form is allowed.
    let appended = format!("{} hybrid-burst-drill", burst_discord::USER_AGENT);
    let resp = send(agent_client(Some(&appended)).post(&url).json(&hi)).await;
    assert_eq!(resp.status(), 200);
}
