//! A simulated Discord webhook API: an axum server on 127.0.0.1 that behaves like Discord for
//! one webhook, for tests and the local emulator's simulated cloud.
//!
//! It serves `POST /api/v10/webhooks/{id}/{token}` (`?wait=true` → 200 + message, otherwise
//! 204 like Discord), `GET`/`DELETE` of the webhook itself, and `GET`/`PATCH`/`DELETE
//! .../messages/{message_id}`. It checks what Discord checks: the webhook id and token (404
//! 10015 / 401 50027), `Content-Type`, body size (413 40005), JSON (50109), the body's shape and
//! every length limit in code points after trimming (400 50035 with Discord's nested `errors`),
//! empty messages (50006), username rules, embed and field counts, the colour range; it applies
//! a rate-limit bucket with `X-RateLimit-*` headers on every reply and Discord's 429 body.
//! In front of it all, like Cloudflare in front of Discord, a request whose `User-Agent` is not
//! `DiscordBot ($url, $versionNumber)` (discord-api-docs, `reference.mdx`, "User Agent": others
//! "may be blocked and return a Cloudflare error") gets Cloudflare's HTML 403 "Error 1010". The
//! [`SimHandle`] injects failures (forced 429s, 5xx, a deleted webhook or message) and exposes
//! every message (with its edit history) and the request log.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use burst_discord::config::validate_username;
use burst_discord::limits::{
    AUTHOR_NAME_MAX, COLOR_MAX, CONTENT_MAX, DESCRIPTION_MAX, EMBED_TOTAL_MAX, EMBEDS_MAX,
    FIELD_NAME_MAX, FIELD_VALUE_MAX, FIELDS_MAX, FOOTER_MAX, TITLE_MAX, count,
};
use burst_sim_kit::{FaultQueue, RequestLog, Running};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Discord error codes the simulator answers with.
pub mod codes {
    pub const GENERAL: u64 = 0;
    pub const UNKNOWN_MESSAGE: u64 = 10008;
    pub const UNKNOWN_WEBHOOK: u64 = 10015;
    pub const REQUEST_TOO_LARGE: u64 = 40005;
    pub const EMPTY_MESSAGE: u64 = 50006;
    pub const INVALID_WEBHOOK_TOKEN: u64 = 50027;
    pub const INVALID_FORM_BODY: u64 = 50035;
    pub const INVALID_JSON: u64 = 50109;
}

/// Message flags a webhook may set when executing: SUPPRESS_EMBEDS and SUPPRESS_NOTIFICATIONS.
const EXECUTE_FLAGS: u64 = 4 | 4096;
const SUPPRESS_NOTIFICATIONS: u64 = 4096;
/// Only SUPPRESS_EMBEDS can be changed by an edit.
const EDIT_FLAGS: u64 = 4;
/// First simulated message id (a plausible 2024-era snowflake).
const FIRST_MESSAGE_ID: u64 = 1_300_000_000_000_000_000;

/// A request bucket: at most `requests` per `per` (a fixed window, like Discord's reset time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

/// Discord's observed per-webhook limit: about 5 requests per 2 seconds.
pub const DISCORD_WEBHOOK_LIMIT: RateLimit = RateLimit {
    requests: 5,
    per: Duration::from_secs(2),
};

/// What the simulated webhook is.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The webhook's id (a snowflake).
    pub webhook_id: String,
    /// The webhook's token.
    pub token: String,
    pub channel_id: String,
    pub guild_id: String,
    /// The webhook's own name (used when a message sets no `username`).
    pub name: String,
    /// `None` = no rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Largest accepted request body in bytes (larger → 413 code 40005).
    pub max_body_bytes: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            webhook_id: "1234567890123456789".into(),
            token: "sim_webhook-token_0123456789abcdefABCDEF".into(),
            channel_id: "1111111111111111111".into(),
            guild_id: "2222222222222222222".into(),
            name: "Captain Hook".into(),
            rate_limit: Some(DISCORD_WEBHOOK_LIMIT),
            max_body_bytes: 1 << 20,
        }
    }
}

/// A message as the simulated channel holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimMessage {
    pub id: String,
    pub channel_id: String,
    pub content: String,
    pub embeds: Vec<Value>,
    /// The author name shown (the `username` override or the webhook's name).
    pub username: String,
    /// `allowed_mentions` as last sent (`None` = absent: Discord then parses every mention).
    pub allowed_mentions: Option<Value>,
    pub flags: u64,
    /// Roles the content mentions and `allowed_mentions` lets through.
    pub mention_roles: Vec<String>,
    /// Whether `@everyone`/`@here` is effective.
    pub mention_everyone: bool,
    /// Roles that were notified (only when the message was created: edits never notify).
    pub pinged_roles: Vec<String>,
    pub created_at: String,
    pub edited_at: Option<String>,
    /// Number of successful edits.
    pub edits: u32,
    /// Earlier versions, oldest first, as message objects.
    pub history: Vec<Value>,
}

/// One request the simulator received, with its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    /// The body when it was JSON.
    pub body: Option<Value>,
    pub body_bytes: usize,
    pub status: u16,
    /// Discord's error code of the answer, if it was an error.
    pub code: Option<u64>,
    /// The `User-Agent` header as sent.
    pub user_agent: Option<String>,
}

/// Whether `ua` has the form Discord asks API clients for: `DiscordBot ($url, $versionNumber)`,
/// with anything the client likes appended after it (discord-api-docs, `reference.mdx`,
/// "User Agent"). The URL and the version must both be there.
pub fn valid_user_agent(ua: &str) -> bool {
    let Some(rest) = ua.strip_prefix("DiscordBot (") else {
        return false;
    };
    let Some((inside, _appended)) = rest.split_once(')') else {
        return false;
    };
    let Some((url, version)) = inside.split_once(',') else {
        return false;
    };
    let (url, version) = (url.trim(), version.trim());
    !url.is_empty() && !url.contains(char::is_whitespace) && !version.is_empty()
}

/// Cloudflare's block page for a request it refuses before Discord sees it (Error 1010, "banned
/// your access based on your browser's signature"): HTML, `Server: cloudflare`, a `CF-Ray`,
/// none of Discord's rate-limit headers. Trimmed from the page quoted in
/// Zero6992/chatGPT-discord-bot issue #95.
fn cloudflare_block() -> Response {
    let ray = format!(
        "{:016x}-FRA",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64
    );
    let page = format!(
        "<!DOCTYPE html>\n<html class=\"no-js\" lang=\"en-US\">\n<head>\n\
         <title>Access denied | discord.com used Cloudflare to restrict access</title>\n\
         <meta charset=\"UTF-8\" />\n</head>\n<body>\n<div id=\"cf-wrapper\">\n\
         <h1><span class=\"cf-error-type\">Error</span> <span class=\"cf-error-code\">1010</span></h1>\n\
         <h2 class=\"cf-subheadline\">Access denied</h2>\n\
         <p>The owner of this website (discord.com) has banned your access based on your browser's signature ({ray}).</p>\n\
         <span class=\"cf-footer-item\">Cloudflare Ray ID: <strong>{ray}</strong></span>\n\
         </div>\n</body>\n</html>\n"
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    headers.insert(header::SERVER, HeaderValue::from_static("cloudflare"));
    if let Ok(v) = HeaderValue::from_str(&ray) {
        headers.insert("cf-ray", v);
    }
    (StatusCode::FORBIDDEN, headers, page).into_response()
}

fn user_agent_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

#[derive(Debug)]
struct Inner {
    config: SimConfig,
    deleted: bool,
    messages: Vec<SimMessage>,
    next_id: u64,
    log: RequestLog<SimRequest>,
    window_start: Instant,
    window_count: u32,
    faults: FaultQueue<(), Forced>,
}

/// An answer forced on the next requests.
#[derive(Debug, Clone, Copy)]
enum Forced {
    /// 429 with this `retry_after` in seconds.
    RateLimit(f64),
    /// This status with Discord's generic error body.
    Status(u16),
}

type Shared = burst_sim_kit::Shared<Inner>;

/// A running simulator; stops when dropped or on [`SimHandle::shutdown`].
#[derive(Debug)]
pub struct SimHandle {
    sim: Running<Inner>,
}

/// Starts the simulator on 127.0.0.1 with a free port.
pub async fn start(config: SimConfig) -> std::io::Result<SimHandle> {
    let inner = Inner {
        config,
        deleted: false,
        messages: Vec::new(),
        next_id: FIRST_MESSAGE_ID,
        log: RequestLog::default(),
        window_start: Instant::now(),
        window_count: 0,
        faults: FaultQueue::default(),
    };
    let routes = Router::new()
        .route("/api/v10/webhooks/{id}/{token}", any(webhook_route))
        .route(
            "/api/v10/webhooks/{id}/{token}/messages/{message_id}",
            any(message_route),
        )
        .fallback(not_found);
    let sim = Running::start(inner, routes).await?;
    Ok(SimHandle { sim })
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        self.sim.base_url()
    }

    /// The webhook URL as a user would paste it (unversioned).
    pub fn webhook_url(&self) -> String {
        let inner = self.sim.state();
        format!(
            "{}/api/webhooks/{}/{}",
            self.sim.base_url(),
            inner.config.webhook_id,
            inner.config.token
        )
    }

    /// The webhook's path in API version 10: `/api/v10/webhooks/{id}/{token}`.
    pub fn api_path(&self) -> String {
        let inner = self.sim.state();
        let (id, token) = (&inner.config.webhook_id, &inner.config.token);
        format!("/api/v10/webhooks/{id}/{token}")
    }

    /// The webhook's URL in API version 10.
    pub fn api_url(&self) -> String {
        format!("{}{}", self.sim.base_url(), self.api_path())
    }

    pub fn webhook_id(&self) -> String {
        self.sim.state().config.webhook_id.clone()
    }

    pub fn token(&self) -> String {
        self.sim.state().config.token.clone()
    }

    /// The next `n` requests get 429 with `retry_after` seconds (and `Retry-After`).
    pub fn force_rate_limit(&self, n: u32, retry_after_s: f64) {
        let forced = Forced::RateLimit(retry_after_s.max(0.0));
        self.sim.state().faults.push((), n, forced);
    }

    /// The next `n` requests get `status` (a 5xx) with Discord's generic error body.
    pub fn force_server_errors(&self, n: u32, status: u16) {
        self.sim.state().faults.push((), n, Forced::Status(status));
    }

    /// Replaces the rate-limit bucket (and starts a fresh window).
    pub fn set_rate_limit(&self, rate_limit: Option<RateLimit>) {
        let mut inner = self.sim.state();
        inner.config.rate_limit = rate_limit;
        inner.window_start = Instant::now();
        inner.window_count = 0;
    }

    /// Deletes the webhook: every later request gets 404 code 10015.
    pub fn delete_webhook(&self) {
        self.sim.state().deleted = true;
    }

    /// Deletes a message as a channel moderator would; `false` if there was none.
    pub fn delete_message(&self, id: &str) -> bool {
        let mut inner = self.sim.state();
        let before = inner.messages.len();
        inner.messages.retain(|m| m.id != id);
        inner.messages.len() != before
    }

    /// Every message in the channel, oldest first.
    pub fn messages(&self) -> Vec<SimMessage> {
        self.sim.state().messages.clone()
    }

    pub fn message(&self, id: &str) -> Option<SimMessage> {
        self.sim
            .state()
            .messages
            .iter()
            .find(|m| m.id == id)
            .cloned()
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<SimRequest> {
        self.sim.state().log.to_vec()
    }

    pub fn clear_requests(&self) {
        self.sim.state().log.clear();
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(self) {
        self.sim.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Validation (public so the client's output can be checked against it without a server).

/// Discord's nested error object: `{"embeds": {"0": {"title": {"_errors": [...]}}}}`.
#[derive(Debug, Default)]
struct Errors(Map<String, Value>);

fn insert_error(node: &mut Map<String, Value>, path: &[String], error: Value) {
    match path.split_first() {
        None => {
            let list = node
                .entry("_errors")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(error);
            }
        }
        Some((head, rest)) => {
            let child = node
                .entry(head.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(map) = child {
                insert_error(map, rest, error);
            }
        }
    }
}

impl Errors {
    fn add(&mut self, path: &[String], code: &str, message: impl Into<String>) {
        insert_error(
            &mut self.0,
            path,
            json!({ "code": code, "message": message.into() }),
        );
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn p(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn with(path: &[String], more: &str) -> Vec<String> {
    let mut v = path.to_vec();
    v.push(more.to_string());
    v
}

/// Checks a string field; returns its length in code points after trimming (0 if absent).
fn check_text(
    e: &mut Errors,
    path: &[String],
    value: Option<&Value>,
    max: usize,
    required: bool,
) -> usize {
    match value {
        None | Some(Value::Null) => {
            if required {
                e.add(path, "BASE_TYPE_REQUIRED", "This field is required");
            }
            0
        }
        Some(Value::String(s)) => {
            let n = count(s);
            if required && n == 0 {
                e.add(path, "BASE_TYPE_REQUIRED", "This field is required");
            } else if n > max {
                e.add(
                    path,
                    "BASE_TYPE_MAX_LENGTH",
                    format!("Must be {max} or fewer in length."),
                );
            }
            n
        }
        Some(_) => {
            e.add(path, "BASE_TYPE_STRING", "Must be a string.");
            0
        }
    }
}

fn check_url(e: &mut Errors, path: &[String], value: Option<&Value>, required: bool) {
    match value {
        None | Some(Value::Null) => {
            if required {
                e.add(path, "BASE_TYPE_REQUIRED", "This field is required");
            }
        }
        Some(Value::String(s)) => {
            let ok = url::Url::parse(s.trim())
                .map(|u| matches!(u.scheme(), "http" | "https" | "attachment"))
                .unwrap_or(false);
            if !ok {
                e.add(path, "URL_TYPE_INVALID_URL", "Not a well formed URL.");
            }
        }
        Some(_) => e.add(path, "BASE_TYPE_STRING", "Must be a string."),
    }
}

fn check_bool(e: &mut Errors, path: &[String], value: Option<&Value>) {
    if let Some(v) = value
        && !v.is_null()
        && !v.is_boolean()
    {
        e.add(path, "BASE_TYPE_BOOLEAN", "Must be either true or false.");
    }
}

fn is_snowflake(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u64>().is_ok()
}

fn check_timestamp(e: &mut Errors, path: &[String], value: Option<&Value>) {
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            let ok = chrono::DateTime::parse_from_rfc3339(s).is_ok()
                || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok();
            if !ok {
                e.add(
                    path,
                    "DATE_TYPE_PARSE",
                    format!("Could not parse {s}. Should be ISO8601."),
                );
            }
        }
        Some(_) => e.add(path, "BASE_TYPE_STRING", "Must be a string."),
    }
}

fn check_color(e: &mut Errors, path: &[String], value: Option<&Value>) {
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                if u > COLOR_MAX {
                    e.add(
                        path,
                        "NUMBER_TYPE_MAX",
                        format!("int value should be less than or equal to {COLOR_MAX}."),
                    );
                }
            } else if n.as_i64().is_some() {
                e.add(
                    path,
                    "NUMBER_TYPE_MIN",
                    "int value should be greater than or equal to 0.",
                );
            } else {
                e.add(
                    path,
                    "NUMBER_TYPE_COERCE",
                    format!("Value \"{n}\" is not int."),
                );
            }
        }
        Some(other) => e.add(
            path,
            "NUMBER_TYPE_COERCE",
            format!("Value \"{other}\" is not int."),
        ),
    }
}

/// Checks one embed; returns (its text total, whether it shows anything).
fn check_embed(e: &mut Errors, path: &[String], embed: &Map<String, Value>) -> (usize, bool) {
    let mut total = 0;
    let title = check_text(
        e,
        &with(path, "title"),
        embed.get("title"),
        TITLE_MAX,
        false,
    );
    let description = check_text(
        e,
        &with(path, "description"),
        embed.get("description"),
        DESCRIPTION_MAX,
        false,
    );
    total += title + description;
    let mut shows = title > 0 || description > 0;
    check_url(e, &with(path, "url"), embed.get("url"), false);
    check_timestamp(e, &with(path, "timestamp"), embed.get("timestamp"));
    check_color(e, &with(path, "color"), embed.get("color"));

    let object = |e: &mut Errors, key: &str| -> Option<Map<String, Value>> {
        match embed.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => {
                e.add(
                    &with(path, key),
                    "MODEL_TYPE_CONVERT",
                    "Only dictionaries may be used in a ModelType",
                );
                None
            }
        }
    };
    if let Some(footer) = object(e, "footer") {
        let fp = with(path, "footer");
        total += check_text(e, &with(&fp, "text"), footer.get("text"), FOOTER_MAX, true);
        check_url(e, &with(&fp, "icon_url"), footer.get("icon_url"), false);
        shows = true;
    }
    if let Some(author) = object(e, "author") {
        let ap = with(path, "author");
        total += check_text(
            e,
            &with(&ap, "name"),
            author.get("name"),
            AUTHOR_NAME_MAX,
            true,
        );
        check_url(e, &with(&ap, "url"), author.get("url"), false);
        check_url(e, &with(&ap, "icon_url"), author.get("icon_url"), false);
        shows = true;
    }
    for key in ["image", "thumbnail"] {
        if let Some(media) = object(e, key) {
            check_url(e, &with(&with(path, key), "url"), media.get("url"), true);
            shows = true;
        }
    }
    match embed.get("fields") {
        None | Some(Value::Null) => {}
        Some(Value::Array(fields)) => {
            let fp = with(path, "fields");
            if fields.len() > FIELDS_MAX {
                e.add(
                    &fp,
                    "BASE_TYPE_MAX_LENGTH",
                    format!("Must be {FIELDS_MAX} or fewer in length."),
                );
            }
            for (i, field) in fields.iter().enumerate() {
                let ip = with(&fp, &i.to_string());
                match field {
                    Value::Object(f) => {
                        total +=
                            check_text(e, &with(&ip, "name"), f.get("name"), FIELD_NAME_MAX, true);
                        total += check_text(
                            e,
                            &with(&ip, "value"),
                            f.get("value"),
                            FIELD_VALUE_MAX,
                            true,
                        );
                        check_bool(e, &with(&ip, "inline"), f.get("inline"));
                    }
                    _ => e.add(
                        &ip,
                        "MODEL_TYPE_CONVERT",
                        "Only dictionaries may be used in a ModelType",
                    ),
                }
            }
            shows |= !fields.is_empty();
        }
        Some(_) => e.add(
            &with(path, "fields"),
            "BASE_TYPE_ARRAY",
            "Must be an array.",
        ),
    }
    (total, shows)
}

fn check_allowed_mentions(e: &mut Errors, value: Option<&Value>) {
    let path = p(&["allowed_mentions"]);
    let am = match value {
        None | Some(Value::Null) => return,
        Some(Value::Object(m)) => m,
        Some(_) => {
            e.add(
                &path,
                "MODEL_TYPE_CONVERT",
                "Only dictionaries may be used in a ModelType",
            );
            return;
        }
    };
    let mut parses_roles = false;
    let mut parses_users = false;
    match am.get("parse") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some("roles") => parses_roles = true,
                    Some("users") => parses_users = true,
                    Some("everyone") => {}
                    _ => e.add(
                        &with(&with(&path, "parse"), &i.to_string()),
                        "BASE_TYPE_CHOICES",
                        "Value must be one of {'everyone', 'roles', 'users'}.",
                    ),
                }
            }
        }
        Some(_) => e.add(
            &with(&path, "parse"),
            "BASE_TYPE_ARRAY",
            "Must be an array.",
        ),
    }
    for (key, parsed) in [("roles", parses_roles), ("users", parses_users)] {
        match am.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(ids)) => {
                if ids.len() > 100 {
                    e.add(
                        &with(&path, key),
                        "BASE_TYPE_MAX_LENGTH",
                        "Must be 100 or fewer in length.",
                    );
                }
                for (i, id) in ids.iter().enumerate() {
                    if !id.as_str().is_some_and(is_snowflake) {
                        e.add(
                            &with(&with(&path, key), &i.to_string()),
                            "NUMBER_TYPE_COERCE",
                            format!("Value \"{id}\" is not snowflake."),
                        );
                    }
                }
                if parsed && !ids.is_empty() {
                    e.add(
                        &path,
                        "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                        format!("parse:[\"{key}\"] and {key}: [ids] are mutually exclusive."),
                    );
                }
            }
            Some(_) => e.add(&with(&path, key), "BASE_TYPE_ARRAY", "Must be an array."),
        }
    }
    check_bool(e, &with(&path, "replied_user"), am.get("replied_user"));
}

/// Whether a message with this content and these embeds shows anything.
fn has_content(content: Option<&Value>, embeds: Option<&Value>) -> bool {
    let text = content
        .and_then(Value::as_str)
        .is_some_and(|c| count(c) > 0);
    let embeds = embeds.and_then(Value::as_array).is_some_and(|list| {
        list.iter().any(|embed| match embed {
            Value::Object(m) => check_embed(&mut Errors::default(), &[], m).1,
            _ => false,
        })
    });
    text || embeds
}

fn form_error(errors: Errors) -> Value {
    json!({ "message": "Invalid Form Body", "code": codes::INVALID_FORM_BODY, "errors": Value::Object(errors.0) })
}

fn error_body(code: u64, message: &str) -> Value {
    json!({ "message": message, "code": code })
}

/// Checks every field of a message body. `edit` = a PATCH body (no username, fewer flags).
fn check_fields(body: &Map<String, Value>, edit: bool) -> Errors {
    let mut e = Errors::default();
    check_text(
        &mut e,
        &p(&["content"]),
        body.get("content"),
        CONTENT_MAX,
        false,
    );
    if !edit {
        match body.get("username") {
            None | Some(Value::Null) => {}
            Some(Value::String(name)) => {
                if let Err(problem) = validate_username(name) {
                    let code = if problem.contains("must not contain") {
                        "USERNAME_INVALID_CONTAINS"
                    } else {
                        "BASE_TYPE_BAD_LENGTH"
                    };
                    e.add(&p(&["username"]), code, format!("Username {problem}"));
                }
            }
            Some(_) => e.add(&p(&["username"]), "BASE_TYPE_STRING", "Must be a string."),
        }
        check_url(&mut e, &p(&["avatar_url"]), body.get("avatar_url"), false);
        check_bool(&mut e, &p(&["tts"]), body.get("tts"));
    }
    match body.get("flags") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let allowed = if edit { EDIT_FLAGS } else { EXECUTE_FLAGS };
            if v.as_u64().is_none_or(|f| f & !allowed != 0) {
                e.add(&p(&["flags"]), "MESSAGE_FLAGS_INVALID", "Invalid flags.");
            }
        }
    }
    match body.get("embeds") {
        None | Some(Value::Null) => {}
        Some(Value::Array(embeds)) => {
            if embeds.len() > EMBEDS_MAX {
                e.add(
                    &p(&["embeds"]),
                    "BASE_TYPE_MAX_LENGTH",
                    format!("Must be {EMBEDS_MAX} or fewer in length."),
                );
            }
            let mut total = 0;
            for (i, embed) in embeds.iter().enumerate() {
                let path = p(&["embeds", &i.to_string()]);
                match embed {
                    Value::Object(m) => total += check_embed(&mut e, &path, m).0,
                    _ => e.add(
                        &path,
                        "MODEL_TYPE_CONVERT",
                        "Only dictionaries may be used in a ModelType",
                    ),
                }
            }
            if total > EMBED_TOTAL_MAX {
                e.add(
                    &p(&["embeds"]),
                    "MAX_EMBED_SIZE_EXCEEDED",
                    format!("Embed size exceeds maximum size of {EMBED_TOTAL_MAX}"),
                );
            }
        }
        Some(_) => e.add(&p(&["embeds"]), "BASE_TYPE_ARRAY", "Must be an array."),
    }
    check_allowed_mentions(&mut e, body.get("allowed_mentions"));
    e
}

/// Validates an execute (POST) body like Discord; `Err` holds Discord's error body.
pub fn validate_execute(body: &Value) -> Result<(), Value> {
    let map = checked_fields(body, false)?;
    if !has_content(map.get("content"), map.get("embeds")) {
        return Err(error_body(
            codes::EMPTY_MESSAGE,
            "Cannot send an empty message",
        ));
    }
    Ok(())
}

/// Validates an edit (PATCH) body's fields like Discord (the emptiness of the edited message
/// is checked against the stored message).
pub fn validate_edit(body: &Value) -> Result<(), Value> {
    checked_fields(body, true).map(|_| ())
}

/// The body as an object whose fields pass Discord's checks (`edit`: the edit rules).
fn checked_fields(body: &Value, edit: bool) -> Result<&Map<String, Value>, Value> {
    let Value::Object(map) = body else {
        return Err(error_body(
            codes::INVALID_JSON,
            "The request body contains invalid JSON.",
        ));
    };
    let errors = check_fields(map, edit);
    if errors.is_empty() {
        Ok(map)
    } else {
        Err(form_error(errors))
    }
}

// ---------------------------------------------------------------------------------------------
// Mentions.

/// Role ids of `<@&id>` mentions in `content`.
fn role_mentions(content: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("<@&") {
        let after = &rest[start + 3..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with('>') && !out.contains(&digits) {
            out.push(digits.clone());
        }
        rest = after;
    }
    out
}

/// What the mentions in `content` do under `allowed_mentions` (absent = parse everything, the
/// webhook default that makes unguarded text dangerous).
fn effective_mentions(content: &str, allowed: Option<&Value>) -> (Vec<String>, bool) {
    let roles = role_mentions(content);
    let everyone_text = content.contains("@everyone") || content.contains("@here");
    let Some(am) = allowed.filter(|v| v.is_object()) else {
        return (roles, everyone_text);
    };
    let parse: Vec<&str> = am
        .get("parse")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let listed: Vec<&str> = am
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let roles = roles
        .into_iter()
        .filter(|r| parse.contains(&"roles") || listed.contains(&r.as_str()))
        .collect();
    (roles, everyone_text && parse.contains(&"everyone"))
}

// ---------------------------------------------------------------------------------------------
// HTTP.

struct Reply {
    status: StatusCode,
    body: Option<Value>,
    /// Set for 429s: seconds to wait and the limit's scope.
    retry_after: Option<(f64, &'static str)>,
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Self {
        Reply {
            status,
            body: Some(body),
            retry_after: None,
        }
    }
    fn error(status: StatusCode, code: u64, message: &str) -> Self {
        Reply::json(status, error_body(code, message))
    }
    fn no_content() -> Self {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
            retry_after: None,
        }
    }
    fn rate_limited(retry_after: f64, scope: &'static str) -> Self {
        Reply {
            status: StatusCode::TOO_MANY_REQUESTS,
            body: Some(json!({
                "message": "You are being rate limited.",
                "retry_after": (retry_after * 1000.0).round() / 1000.0,
                "global": false
            })),
            retry_after: Some((retry_after, scope)),
        }
    }
}

/// The bucket's state for the headers.
struct BucketView {
    limit: u32,
    remaining: u32,
    reset_after: Duration,
}

impl Inner {
    fn view(&mut self, now: Instant) -> Option<BucketView> {
        let rl = self.config.rate_limit?;
        if now.duration_since(self.window_start) >= rl.per {
            self.window_start = now;
            self.window_count = 0;
        }
        Some(BucketView {
            limit: rl.requests,
            remaining: rl.requests.saturating_sub(self.window_count),
            reset_after: rl.per.saturating_sub(now.duration_since(self.window_start)),
        })
    }

    fn next_message_id(&mut self) -> String {
        let id = self.next_id;
        self.next_id += 1;
        id.to_string()
    }

    fn message_object(&self, m: &SimMessage) -> Value {
        let embeds: Vec<Value> = m
            .embeds
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Value::Object(map) = &mut e {
                    map.entry("type").or_insert_with(|| json!("rich"));
                }
                e
            })
            .collect();
        json!({
            "id": m.id,
            "type": 0,
            "content": m.content,
            "channel_id": m.channel_id,
            "author": {
                "bot": true,
                "id": self.config.webhook_id,
                "username": m.username,
                "avatar": null,
                "discriminator": "0000"
            },
            "attachments": [],
            "embeds": embeds,
            "mentions": [],
            "mention_roles": m.mention_roles,
            "pinned": false,
            "mention_everyone": m.mention_everyone,
            "tts": false,
            "timestamp": m.created_at,
            "edited_timestamp": m.edited_at,
            "flags": m.flags,
            "components": [],
            "webhook_id": self.config.webhook_id,
        })
    }

    fn webhook_object(&self) -> Value {
        json!({
            "application_id": null,
            "avatar": null,
            "channel_id": self.config.channel_id,
            "guild_id": self.config.guild_id,
            "id": self.config.webhook_id,
            "name": self.config.name,
            "type": 1,
            "token": self.config.token,
        })
    }
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

struct Incoming<'a> {
    method: &'a Method,
    id: &'a str,
    token: &'a str,
    message_id: Option<&'a str>,
    query: Option<&'a str>,
    content_type: Option<&'a str>,
    body: Result<&'a [u8], ()>,
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn parse_json_body(req: &Incoming<'_>) -> Result<Value, Reply> {
    let is_json = req
        .content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        // Discord reads other bodies as an empty form.
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            codes::EMPTY_MESSAGE,
            "Cannot send an empty message",
        ));
    }
    let bytes = req.body.map_err(|_| {
        Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::REQUEST_TOO_LARGE,
            "Request entity too large",
        )
    })?;
    serde_json::from_slice(bytes).map_err(|_| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            codes::INVALID_JSON,
            "The request body contains invalid JSON.",
        )
    })
}

fn snowflake_error(field: &str, value: &str) -> Reply {
    let mut e = Errors::default();
    e.add(
        &p(&[field]),
        "NUMBER_TYPE_COERCE",
        format!("Value \"{value}\" is not snowflake."),
    );
    Reply::json(StatusCode::BAD_REQUEST, form_error(e))
}

fn process(inner: &mut Inner, req: &Incoming<'_>) -> Reply {
    let now = Instant::now();
    match inner.faults.take(|_| true) {
        None => {}
        Some(Forced::RateLimit(retry_after)) => {
            return Reply::rate_limited(retry_after, "shared");
        }
        Some(Forced::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let text = format!(
                "{}: {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("Server Error")
            );
            return Reply::error(status, codes::GENERAL, &text);
        }
    }
    if let Some(view) = inner.view(now) {
        if view.remaining == 0 {
            return Reply::rate_limited(view.reset_after.as_secs_f64(), "user");
        }
        inner.window_count += 1;
    }

    if !is_snowflake(req.id) {
        return snowflake_error("webhook_id", req.id);
    }
    if inner.deleted || req.id != inner.config.webhook_id {
        return Reply::error(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_WEBHOOK,
            "Unknown Webhook",
        );
    }
    if req.token != inner.config.token {
        return Reply::error(
            StatusCode::UNAUTHORIZED,
            codes::INVALID_WEBHOOK_TOKEN,
            "Invalid Webhook Token",
        );
    }

    match (req.method.clone(), req.message_id) {
        (Method::GET, None) => Reply::json(StatusCode::OK, inner.webhook_object()),
        (Method::DELETE, None) => {
            inner.deleted = true;
            Reply::no_content()
        }
        (Method::POST, None) => execute(inner, req),
        (method, Some(mid)) if matches!(method, Method::GET | Method::PATCH | Method::DELETE) => {
            if !is_snowflake(mid) {
                return snowflake_error("message_id", mid);
            }
            let Some(index) = inner.messages.iter().position(|m| m.id == mid) else {
                return Reply::error(
                    StatusCode::NOT_FOUND,
                    codes::UNKNOWN_MESSAGE,
                    "Unknown Message",
                );
            };
            match method {
                Method::GET => {
                    Reply::json(StatusCode::OK, inner.message_object(&inner.messages[index]))
                }
                Method::DELETE => {
                    inner.messages.remove(index);
                    Reply::no_content()
                }
                _ => edit(inner, req, index),
            }
        }
        _ => Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::GENERAL,
            "405: Method Not Allowed",
        ),
    }
}

fn bool_param(query: Option<&str>, name: &str) -> Result<Option<bool>, Reply> {
    match query_param(query, name) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(Some(false)),
        Some(_) => {
            let mut e = Errors::default();
            e.add(
                &p(&[name]),
                "BASE_TYPE_BOOLEAN",
                "Must be either true or false.",
            );
            Err(Reply::json(StatusCode::BAD_REQUEST, form_error(e)))
        }
    }
}

fn execute(inner: &mut Inner, req: &Incoming<'_>) -> Reply {
    let wait = match bool_param(req.query, "wait") {
        Ok(w) => w.unwrap_or(false),
        Err(reply) => return reply,
    };
    let thread_id = query_param(req.query, "thread_id").map(str::to_string);
    if let Some(t) = &thread_id
        && !is_snowflake(t)
    {
        return snowflake_error("thread_id", t);
    }
    let body = match parse_json_body(req) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    if let Err(error) = validate_execute(&body) {
        let status = StatusCode::BAD_REQUEST;
        return Reply::json(status, error);
    }
    let content = body
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let allowed = body
        .get("allowed_mentions")
        .filter(|v| !v.is_null())
        .cloned();
    let flags = body.get("flags").and_then(Value::as_u64).unwrap_or(0);
    let (mention_roles, mention_everyone) = effective_mentions(&content, allowed.as_ref());
    let pinged_roles = if flags & SUPPRESS_NOTIFICATIONS != 0 {
        Vec::new()
    } else {
        mention_roles.clone()
    };
    let message = SimMessage {
        id: inner.next_message_id(),
        channel_id: thread_id.unwrap_or_else(|| inner.config.channel_id.clone()),
        content,
        embeds: body
            .get("embeds")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        username: body
            .get("username")
            .and_then(Value::as_str)
            .map(|u| u.trim().to_string())
            .unwrap_or_else(|| inner.config.name.clone()),
        allowed_mentions: allowed,
        flags,
        mention_roles,
        mention_everyone,
        pinged_roles,
        created_at: now_text(),
        edited_at: None,
        edits: 0,
        history: Vec::new(),
    };
    let object = inner.message_object(&message);
    inner.messages.push(message);
    if wait {
        Reply::json(StatusCode::OK, object)
    } else {
        Reply::no_content()
    }
}

fn edit(inner: &mut Inner, req: &Incoming<'_>, index: usize) -> Reply {
    let body = match parse_json_body(req) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    if let Err(error) = validate_edit(&body) {
        return Reply::json(StatusCode::BAD_REQUEST, error);
    }
    let old = inner.messages[index].clone();
    let mut new = old.clone();
    // PATCH semantics: only the fields sent change; null clears.
    if let Some(c) = body.get("content") {
        new.content = c.as_str().unwrap_or("").to_string();
    }
    if let Some(e) = body.get("embeds") {
        new.embeds = e.as_array().cloned().unwrap_or_default();
    }
    if let Some(am) = body.get("allowed_mentions") {
        new.allowed_mentions = Some(am.clone()).filter(|v| !v.is_null());
    }
    if let Some(f) = body.get("flags").and_then(Value::as_u64) {
        new.flags = (new.flags & !EDIT_FLAGS) | (f & EDIT_FLAGS);
    }
    let content = json!(new.content);
    let embeds = Value::Array(new.embeds.clone());
    if !has_content(Some(&content), Some(&embeds)) {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            codes::EMPTY_MESSAGE,
            "Cannot send an empty message",
        );
    }
    let (roles, everyone) = effective_mentions(&new.content, new.allowed_mentions.as_ref());
    new.mention_roles = roles;
    new.mention_everyone = everyone;
    new.edits += 1;
    new.edited_at = Some(now_text());
    new.history.push(inner.message_object(&old));
    let object = inner.message_object(&new);
    inner.messages[index] = new;
    Reply::json(StatusCode::OK, object)
}

fn bucket_id(webhook_id: &str) -> String {
    // A stable opaque id, like Discord's bucket hashes (FNV-1a).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in webhook_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn render(reply: Reply, bucket: Option<BucketView>, bucket_name: &str) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(b) = bucket {
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(b.reset_after)
            .as_secs_f64();
        let pairs = [
            ("x-ratelimit-limit", b.limit.to_string()),
            ("x-ratelimit-remaining", b.remaining.to_string()),
            ("x-ratelimit-reset", format!("{reset:.3}")),
            (
                "x-ratelimit-reset-after",
                format!("{:.3}", b.reset_after.as_secs_f64()),
            ),
            ("x-ratelimit-bucket", bucket_name.to_string()),
        ];
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
    if let Some((after, scope)) = reply.retry_after {
        if let Ok(v) = HeaderValue::from_str(&format!("{}", after.ceil() as u64)) {
            headers.insert(header::RETRY_AFTER, v);
        }
        headers.insert("x-ratelimit-scope", HeaderValue::from_static(scope));
        if let Ok(v) = HeaderValue::from_str(&format!("{after:.3}")) {
            headers.insert("x-ratelimit-reset-after", v);
        }
    }
    match reply.body {
        Some(body) => (reply.status, headers, axum::Json(body)).into_response(),
        None => (reply.status, headers).into_response(),
    }
}

async fn read_body(shared: &Shared, body: Body) -> (Result<Vec<u8>, ()>, usize) {
    let limit = shared.lock().config.max_body_bytes;
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => {
            let n = b.len();
            (Ok(b.to_vec()), n)
        }
        Err(_) => (Err(()), limit + 1),
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    shared: Shared,
    method: Method,
    id: String,
    token: String,
    message_id: Option<String>,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (bytes, body_bytes) = read_body(&shared, body).await;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let user_agent = user_agent_of(&headers);
    let path = match &message_id {
        Some(mid) => format!("/api/v10/webhooks/{id}/{token}/messages/{mid}"),
        None => format!("/api/v10/webhooks/{id}/{token}"),
    };
    // What the log keeps of this request; the answer's status and code are filled in below.
    let mut logged = SimRequest {
        method: method.to_string(),
        path,
        query: query.clone(),
        content_type: content_type.clone(),
        body: bytes
            .as_ref()
            .ok()
            .and_then(|b| serde_json::from_slice(b).ok()),
        body_bytes,
        status: 403,
        code: None,
        user_agent: user_agent.clone(),
    };
    if !user_agent.as_deref().is_some_and(valid_user_agent) {
        // Cloudflare answers before Discord's API: no bucket counted, no Discord headers.
        shared.lock().log.push(logged);
        return cloudflare_block();
    }
    let mut inner = shared.lock();
    let incoming = Incoming {
        method: &method,
        id: &id,
        token: &token,
        message_id: message_id.as_deref(),
        query: query.as_deref(),
        content_type: content_type.as_deref(),
        body: bytes.as_deref().map_err(|_| ()),
    };
    // An oversized body is refused before anything else looks at it.
    let reply = if bytes.is_err() {
        Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::REQUEST_TOO_LARGE,
            "Request entity too large",
        )
    } else {
        process(&mut inner, &incoming)
    };
    let bucket = inner.view(Instant::now());
    let bucket_name = bucket_id(&inner.config.webhook_id);
    logged.status = reply.status.as_u16();
    logged.code = reply
        .body
        .as_ref()
        .filter(|_| !reply.status.is_success())
        .and_then(|b| b.get("code"))
        .and_then(Value::as_u64);
    inner.log.push(logged);
    drop(inner);
    render(reply, bucket, &bucket_name)
}

async fn webhook_route(
    State(shared): State<Shared>,
    method: Method,
    Path((id, token)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(shared, method, id, token, None, query, headers, body).await
}

async fn message_route(
    State(shared): State<Shared>,
    method: Method,
    Path((id, token, message_id)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(
        shared,
        method,
        id,
        token,
        Some(message_id),
        query,
        headers,
        body,
    )
    .await
}

async fn not_found(
    State(shared): State<Shared>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let user_agent = user_agent_of(&headers);
    let blocked = !user_agent.as_deref().is_some_and(valid_user_agent);
    shared.lock().log.push(SimRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        content_type: None,
        body: None,
        body_bytes: 0,
        status: if blocked { 403 } else { 404 },
        code: (!blocked).then_some(codes::GENERAL),
        user_agent,
    });
    if blocked {
        return cloudflare_block();
    }
    (
        StatusCode::NOT_FOUND,
        axum::Json(error_body(codes::GENERAL, "404: Not Found")),
    )
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_rule() {
        for ok in [
            "DiscordBot (https://github.com/discord/discord-api-docs, 10)",
            "DiscordBot (https://example.invalid/hybrid-burst, 0.1.0)",
            "DiscordBot (https://discord.js.org, 14.18.0) Node.js/20",
        ] {
            assert!(valid_user_agent(ok), "{ok}");
        }
        for bad in [
            "",
            "Python-urllib/3.12",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)",
            "DiscordBot",
            "DiscordBot ()",
            "DiscordBot (https://x)",
            "DiscordBot (, 1.0)",
            "DiscordBot (https://x, )",
            "discordbot (https://x, 1)",
        ] {
            assert!(!valid_user_agent(bad), "{bad}");
        }
    }

    #[test]
    fn nested_errors_have_discords_shape() {
        let body =
            json!({"embeds": [{"title": "t".repeat(257), "fields": [{"name": "n", "value": ""}]}]});
        let err = validate_execute(&body).unwrap_err();
        assert_eq!(
            err,
            json!({
                "message": "Invalid Form Body",
                "code": 50035,
                "errors": {"embeds": {"0": {
                    "title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 256 or fewer in length."}]},
                    "fields": {"0": {"value": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}}}
                }}}
            })
        );
    }

    #[test]
    fn uptime_kuma_style_embeds_are_refused() {
        let err = validate_execute(&json!({"embeds": ["0"]})).unwrap_err();
        assert_eq!(
            err["errors"]["embeds"]["0"]["_errors"][0]["code"],
            json!("MODEL_TYPE_CONVERT")
        );
    }

    #[test]
    fn empty_message_is_refused() {
        for body in [
            json!({}),
            json!({"content": "  "}),
            json!({"embeds": [{}]}),
            json!({"embeds": [{"color": 5}]}),
        ] {
            assert_eq!(
                validate_execute(&body).unwrap_err(),
                json!({"message": "Cannot send an empty message", "code": 50006}),
                "{body}"
            );
        }
    }

    #[test]
    fn limits_count_code_points_after_trimming() {
        // 4096 emoji are 16384 bytes and 8192 UTF-16 units, but 4096 code points: accepted.
        let ok = json!({"embeds": [{"description": format!("  {}  ", "🔥".repeat(4096))}]});
        assert_eq!(validate_execute(&ok), Ok(()));
        let too_long = json!({"embeds": [{"description": "🔥".repeat(4097)}]});
        assert_eq!(
            validate_execute(&too_long).unwrap_err()["errors"]["embeds"]["0"]["description"]["_errors"]
                [0]["message"],
            json!("Must be 4096 or fewer in length.")
        );
        let content = json!({"content": "é".repeat(2001)});
        assert_eq!(
            validate_execute(&content).unwrap_err()["errors"]["content"]["_errors"][0]["code"],
            json!("BASE_TYPE_MAX_LENGTH")
        );
    }

    #[test]
    fn total_over_6000_is_refused() {
        let embed = |n: usize| json!({"description": "x".repeat(n)});
        let body = json!({"embeds": [embed(4000), embed(2001)]});
        assert_eq!(
            validate_execute(&body).unwrap_err()["errors"]["embeds"]["_errors"][0],
            json!({"code": "MAX_EMBED_SIZE_EXCEEDED", "message": "Embed size exceeds maximum size of 6000"})
        );
        assert_eq!(
            validate_execute(&json!({"embeds": [embed(4000), embed(2000)]})),
            Ok(())
        );
    }

    #[test]
    fn counts_colour_username_and_mentions() {
        let many_embeds = json!({"embeds": vec![json!({"title": "t"}); 11]});
        assert!(
            validate_execute(&many_embeds).unwrap_err()["errors"]["embeds"]["_errors"].is_array()
        );
        let many_fields =
            json!({"embeds": [{"fields": vec![json!({"name": "n", "value": "v"}); 26]}]});
        assert!(validate_execute(&many_fields).unwrap_err()["errors"]["embeds"]["0"]["fields"]["_errors"].is_array());
        let colour = json!({"embeds": [{"title": "t", "color": 16777216}]});
        assert_eq!(
            validate_execute(&colour).unwrap_err()["errors"]["embeds"]["0"]["color"]["_errors"][0]
                ["code"],
            json!("NUMBER_TYPE_MAX")
        );
        assert_eq!(
            validate_execute(
                &json!({"content": "x", "embeds": [{"title": "t", "color": 16777215}]})
            ),
            Ok(())
        );
        let name = json!({"content": "x", "username": "Discord Alerts"});
        assert_eq!(
            validate_execute(&name).unwrap_err()["errors"]["username"]["_errors"][0]["code"],
            json!("USERNAME_INVALID_CONTAINS")
        );
        let exclusive =
            json!({"content": "x", "allowed_mentions": {"parse": ["roles"], "roles": ["1"]}});
        assert_eq!(
            validate_execute(&exclusive).unwrap_err()["errors"]["allowed_mentions"]["_errors"][0]["code"],
            json!("MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE")
        );
        let ts = json!({"embeds": [{"title": "t", "timestamp": "yesterday"}]});
        assert!(validate_execute(&ts).is_err());
    }

    #[test]
    fn mentions_follow_allowed_mentions() {
        assert_eq!(
            effective_mentions("<@&12> hi @everyone", None),
            (vec!["12".to_string()], true)
        );
        assert_eq!(
            effective_mentions("<@&12> <@&34>", Some(&json!({"parse": []}))),
            (vec![], false)
        );
        assert_eq!(
            effective_mentions("<@&12> <@&34>", Some(&json!({"roles": ["34"]}))),
            (vec!["34".to_string()], false)
        );
        assert_eq!(role_mentions("<@&> <@&1x> <@&7>"), vec!["7".to_string()]);
    }
}
