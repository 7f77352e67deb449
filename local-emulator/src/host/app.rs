//! Reading and validating a function app folder: `host.json` and one `<name>/function.json` per
//! function (the host behaviour listed in local-emulator/README.md). Pure parsing; the only IO is reading the files.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why an app folder cannot be served. Every variant names the file; fix the file and restart.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The file cannot be read (missing, permissions): check the path.
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
    /// The file is not valid JSON: fix its syntax.
    #[error("{path}: not valid JSON: {detail}")]
    Json { path: PathBuf, detail: String },
    /// A field has a value the host does not accept: fix that field.
    #[error("{path}: {field}: {problem}")]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
}

/// Who may call an HTTP function (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLevel {
    Anonymous,
    Function,
    Admin,
}

/// One segment of a route template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Matched case-insensitively.
    Literal(String),
    /// `{name}` (constraints after `:` are parsed but not checked), `{name?}` when optional.
    Param { name: String, optional: bool },
    /// `{*name}`: the rest of the path.
    CatchAll(String),
}

/// A parsed route template such as `ups/{event}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub template: String,
    pub segments: Vec<Segment>,
}

impl Route {
    pub fn parse(template: &str) -> Result<Route, String> {
        let t = template.trim().trim_matches('/');
        let mut segments = Vec::new();
        let parts: Vec<&str> = if t.is_empty() {
            vec![]
        } else {
            t.split('/').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if part.is_empty() {
                return Err(format!("{template:?} has an empty segment"));
            }
            if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                // `{name:constraint?}`: the `?` closes the whole parameter. Constraints are
                // accepted but not checked.
                let (inner, optional) = match inner.strip_suffix('?') {
                    Some(i) => (i, true),
                    None => (inner, false),
                };
                let (name, _constraint) = inner.split_once(':').unwrap_or((inner, ""));
                if let Some(rest) = name.strip_prefix('*') {
                    if !last {
                        return Err(format!(
                            "{template:?}: a catch-all must be the last segment"
                        ));
                    }
                    segments.push(Segment::CatchAll(rest.to_string()));
                    continue;
                }
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("{template:?}: bad parameter name {name:?}"));
                }
                if optional && !last {
                    return Err(format!(
                        "{template:?}: only the last parameter may be optional"
                    ));
                }
                segments.push(Segment::Param {
                    name: name.to_string(),
                    optional,
                });
            } else if part.contains('{') || part.contains('}') {
                return Err(format!(
                    "{template:?}: a parameter must fill its whole segment"
                ));
            } else {
                segments.push(Segment::Literal(part.to_string()));
            }
        }
        Ok(Route {
            template: t.to_string(),
            segments,
        })
    }

    /// Matches a path (without the route prefix, no leading slash); returns the route values.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut values = Vec::new();
        let mut i = 0;
        for seg in &self.segments {
            match seg {
                Segment::Literal(l) => {
                    if !parts.get(i)?.eq_ignore_ascii_case(l) {
                        return None;
                    }
                }
                Segment::Param { name, optional } => match parts.get(i) {
                    Some(p) => values.push((name.clone(), decode(p))),
                    None if *optional => return Some(values),
                    None => return None,
                },
                Segment::CatchAll(name) => {
                    let rest = parts[i.min(parts.len())..].join("/");
                    values.push((name.clone(), decode(&rest)));
                    return Some(values);
                }
            }
            i += 1;
        }
        (i == parts.len()).then_some(values)
    }

    /// Higher is more specific: literal segments win over parameters (like ASP.NET routing).
    pub fn specificity(&self) -> (usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let not_catch_all = usize::from(
            !self
                .segments
                .iter()
                .any(|s| matches!(s, Segment::CatchAll(_))),
        );
        (literals, not_catch_all)
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// The HTTP trigger of a function.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// The binding name: the key under `Data` in JSON mode.
    pub name: String,
    pub auth: AuthLevel,
    /// Upper-case; `None` = every method.
    pub methods: Option<Vec<String>>,
    pub route: Route,
}

/// The timer trigger of a function; the schedule is still unresolved (`%Setting%` allowed).
#[derive(Debug, Clone)]
pub struct TimerTrigger {
    pub name: String,
    pub schedule: String,
    pub run_on_startup: bool,
    pub use_monitor: bool,
    /// `retry.maxRetryCount` when a retry policy is configured (adds `RetryContext`).
    pub max_retry_count: Option<u32>,
}

/// The queue trigger of a function; the queue name is still unresolved (`%Setting%` allowed).
#[derive(Debug, Clone)]
pub struct QueueTrigger {
    /// The binding name: the key under `Data`.
    pub name: String,
    pub queue_name: String,
    /// The setting holding the storage connection (default `AzureWebJobsStorage`).
    pub connection: String,
}

#[derive(Debug, Clone)]
pub enum Trigger {
    Http(HttpTrigger),
    Timer(TimerTrigger),
    Queue(QueueTrigger),
}

/// `extensions.queues` in host.json, with the real host's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueOptions {
    /// The longest wait between polls of an empty queue (default 1 minute, at least 100 ms).
    pub max_polling_interval: Duration,
    /// How long a failed message stays invisible before its next attempt (default 0).
    pub visibility_timeout: Duration,
    /// Attempts before a message moves to `<queue>-poison` (default 5).
    pub max_dequeue_count: u32,
    /// Messages fetched per poll (default 16, 1 to 32).
    pub batch_size: u32,
    /// `messageEncoding`: message text is base64 (default) or plain.
    pub base64: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            max_polling_interval: Duration::from_secs(60),
            visibility_timeout: Duration::ZERO,
            max_dequeue_count: 5,
            batch_size: 16,
            base64: true,
        }
    }
}

/// One function: its folder name, trigger and output bindings.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub trigger: Trigger,
    /// Names of the `http` output bindings, in file order (`$return` included).
    pub http_outputs: Vec<String>,
    /// Exactly one input (the httpTrigger) and exactly one output of type `http` (§1).
    pub http_only: bool,
}

/// What `host.json` says.
#[derive(Debug, Clone)]
pub struct HostJson {
    /// Without slashes; empty = no prefix.
    pub route_prefix: String,
    pub function_timeout: Option<Duration>,
    pub executable: String,
    pub working_directory: String,
    pub arguments: Vec<String>,
    /// `enableForwardingHttpRequest` (or `enableProxyingHttpRequest`, treated the same).
    pub forwarding: bool,
    pub queues: QueueOptions,
}

/// A loaded app folder.
#[derive(Debug, Clone)]
pub struct App {
    pub root: PathBuf,
    pub host: HostJson,
    /// Sorted by name.
    pub functions: Vec<Function>,
}

fn read_json(path: &Path) -> Result<Value, AppError> {
    let text = std::fs::read_to_string(path).map_err(|e| AppError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    // The host tolerates a UTF-8 BOM in its JSON files.
    serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| AppError::Json {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// `hh:mm:ss` or `d.hh:mm:ss` (a .NET TimeSpan), also used by TimeSpan timer schedules.
pub fn parse_timespan(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (days, rest) = match s.split_once('.') {
        Some((d, r)) if r.contains(':') && !d.contains(':') => (d.parse::<u64>().ok()?, r),
        _ => (0, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let [h, m, sec] = parts.as_slice() else {
        return None;
    };
    let h: u64 = h.parse().ok()?;
    let m: u64 = m.parse().ok()?;
    let sec: f64 = sec.parse().ok()?;
    if h > 23 || m > 59 || !(0.0..60.0).contains(&sec) {
        return None;
    }
    // A day count too large for a duration is refused, not wrapped.
    let whole = days.checked_mul(86_400)?.checked_add(h * 3600 + m * 60)?;
    Some(Duration::from_secs(whole) + Duration::from_secs_f64(sec))
}

fn invalid(path: &Path, field: &str, problem: impl Into<String>) -> AppError {
    AppError::Invalid {
        path: path.to_path_buf(),
        field: field.to_string(),
        problem: problem.into(),
    }
}

fn parse_host(path: &Path) -> Result<HostJson, AppError> {
    let v = read_json(path)?;
    if !v.is_object() {
        return Err(invalid(path, "(root)", "must be a JSON object"));
    }
    match v.get("version").and_then(Value::as_str) {
        Some("2.0") => {}
        other => {
            return Err(invalid(
                path,
                "version",
                format!("must be \"2.0\", found {other:?}"),
            ));
        }
    }
    let route_prefix = match v.pointer("/extensions/http/routePrefix") {
        None | Some(Value::Null) => "api".to_string(),
        Some(Value::String(s)) => s.trim_matches('/').to_string(),
        Some(_) => {
            return Err(invalid(
                path,
                "extensions.http.routePrefix",
                "must be a string",
            ));
        }
    };
    let function_timeout = match v.get("functionTimeout") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(parse_timespan(s).ok_or_else(|| {
            invalid(
                path,
                "functionTimeout",
                format!("{s:?} is not a hh:mm:ss time span"),
            )
        })?),
        Some(_) => {
            return Err(invalid(
                path,
                "functionTimeout",
                "must be a string like \"00:05:00\"",
            ));
        }
    };
    let ch = v.get("customHandler").ok_or_else(|| {
        invalid(
            path,
            "customHandler",
            "missing (this is a custom handler app)",
        )
    })?;
    let desc = ch
        .get("description")
        .ok_or_else(|| invalid(path, "customHandler.description", "missing"))?;
    let executable = desc
        .get("defaultExecutablePath")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    if executable.is_empty() {
        return Err(invalid(
            path,
            "customHandler.description.defaultExecutablePath",
            "empty: the host cannot start a handler",
        ));
    }
    let working_directory = desc
        .get("workingDirectory")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let arguments = match desc.get("arguments") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    invalid(
                        path,
                        "customHandler.description.arguments",
                        "must be strings",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(invalid(
                path,
                "customHandler.description.arguments",
                "must be an array of strings",
            ));
        }
    };
    let flag = |name: &str| -> Result<bool, AppError> {
        match ch.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(invalid(
                path,
                &format!("customHandler.{name}"),
                "must be true or false",
            )),
        }
    };
    let forwarding = flag("enableForwardingHttpRequest")? | flag("enableProxyingHttpRequest")?;
    let queues = parse_queue_options(path, v.pointer("/extensions/queues"))?;
    Ok(HostJson {
        route_prefix,
        function_timeout,
        executable,
        working_directory,
        arguments,
        forwarding,
        queues,
    })
}

fn parse_queue_options(path: &Path, v: Option<&Value>) -> Result<QueueOptions, AppError> {
    let mut o = QueueOptions::default();
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(o);
    };
    let field = |f: &str| format!("extensions.queues.{f}");
    let span = |f: &str| -> Result<Option<Duration>, AppError> {
        match v.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_timespan(s).map(Some).ok_or_else(|| {
                invalid(
                    path,
                    &field(f),
                    format!("{s:?} is not a hh:mm:ss time span"),
                )
            }),
            // The host also takes a number of milliseconds.
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|ms| Some(Duration::from_millis(ms)))
                .ok_or_else(|| invalid(path, &field(f), "must be whole milliseconds")),
            Some(_) => Err(invalid(path, &field(f), "must be a time span string")),
        }
    };
    let count = |f: &str, range: std::ops::RangeInclusive<u64>| -> Result<Option<u32>, AppError> {
        match v.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(n) => n
                .as_u64()
                .filter(|n| range.contains(n))
                .map(|n| Some(n as u32))
                .ok_or_else(|| {
                    invalid(
                        path,
                        &field(f),
                        format!(
                            "must be a whole number from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    )
                }),
        }
    };
    if let Some(d) = span("maxPollingInterval")? {
        if d < Duration::from_millis(100) {
            return Err(invalid(
                path,
                &field("maxPollingInterval"),
                "must be at least 100 ms",
            ));
        }
        o.max_polling_interval = d;
    }
    if let Some(d) = span("visibilityTimeout")? {
        o.visibility_timeout = d;
    }
    if let Some(n) = count("maxDequeueCount", 1..=1000)? {
        o.max_dequeue_count = n;
    }
    if let Some(n) = count("batchSize", 1..=32)? {
        o.batch_size = n;
    }
    match v.get("messageEncoding").and_then(Value::as_str) {
        None => {}
        Some(e) if e.eq_ignore_ascii_case("base64") => o.base64 = true,
        Some(e) if e.eq_ignore_ascii_case("none") => o.base64 = false,
        Some(e) => {
            return Err(invalid(
                path,
                &field("messageEncoding"),
                format!("{e:?} is not base64 or none"),
            ));
        }
    }
    Ok(o)
}

/// `^[a-z][a-z0-9_\-]{0,127}$` case-insensitive, not "host".
pub fn valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.eq_ignore_ascii_case("host")
}

const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "TRACE",
];

fn parse_function(name: &str, path: &Path) -> Result<Function, AppError> {
    let v = read_json(path)?;
    let bindings = v
        .get("bindings")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(path, "bindings", "missing or not an array"))?;
    let mut trigger = None;
    let mut inputs = 0;
    let mut http_outputs = Vec::new();
    let mut outputs = 0;
    for (i, b) in bindings.iter().enumerate() {
        let field = |f: &str| format!("bindings[{i}].{f}");
        let ty = b
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(path, &field("type"), "missing"))?;
        let direction = b
            .get("direction")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(path, &field("direction"), "missing"))?;
        let bname = b
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid(path, &field("name"), "missing"))?;
        let want_dir = |want: &str| {
            if direction.eq_ignore_ascii_case(want) {
                Ok(())
            } else {
                Err(invalid(
                    path,
                    &field("direction"),
                    format!("{ty} must be {want:?}, found {direction:?}"),
                ))
            }
        };
        let bool_field = |f: &str, default: bool| match b.get(f) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(x)) => Ok(*x),
            Some(_) => Err(invalid(path, &field(f), "must be true or false")),
        };
        // A string that must be there, trimmed.
        let required = |f: &str| {
            b.get(f)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| invalid(path, &field(f), "missing"))
        };
        match ty.to_ascii_lowercase().as_str() {
            "httptrigger" => {
                want_dir("in")?;
                inputs += 1;
                let auth = match b.get("authLevel").and_then(Value::as_str) {
                    None => AuthLevel::Function,
                    Some(a) => match a.to_ascii_lowercase().as_str() {
                        "anonymous" => AuthLevel::Anonymous,
                        "function" => AuthLevel::Function,
                        "admin" => AuthLevel::Admin,
                        _ => {
                            return Err(invalid(
                                path,
                                &field("authLevel"),
                                format!("{a:?} is not anonymous, function or admin"),
                            ));
                        }
                    },
                };
                let methods = match b.get("methods") {
                    None | Some(Value::Null) => None,
                    Some(Value::Array(ms)) => {
                        let mut out = Vec::new();
                        for m in ms {
                            let m = m.as_str().map(str::to_ascii_uppercase).unwrap_or_default();
                            if !METHODS.contains(&m.as_str()) {
                                return Err(invalid(
                                    path,
                                    &field("methods"),
                                    format!("{m:?} is not an HTTP method"),
                                ));
                            }
                            out.push(m);
                        }
                        // An empty list means every method, like no list.
                        (!out.is_empty()).then_some(out)
                    }
                    Some(_) => {
                        return Err(invalid(
                            path,
                            &field("methods"),
                            "must be an array of strings",
                        ));
                    }
                };
                let template = match b.get("route") {
                    None | Some(Value::Null) => name.to_string(),
                    Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                    Some(Value::String(_)) => name.to_string(),
                    Some(_) => return Err(invalid(path, &field("route"), "must be a string")),
                };
                let route = Route::parse(&template)
                    .map_err(|problem| invalid(path, &field("route"), problem))?;
                if trigger.is_some() {
                    return Err(invalid(path, "bindings", "more than one trigger"));
                }
                trigger = Some(Trigger::Http(HttpTrigger {
                    name: bname.to_string(),
                    auth,
                    methods,
                    route,
                }));
            }
            "timertrigger" => {
                want_dir("in")?;
                inputs += 1;
                let schedule = required("schedule")?;
                let max_retry_count = b
                    .pointer("/retry/maxRetryCount")
                    .and_then(Value::as_u64)
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
                if trigger.is_some() {
                    return Err(invalid(path, "bindings", "more than one trigger"));
                }
                trigger = Some(Trigger::Timer(TimerTrigger {
                    name: bname.to_string(),
                    schedule: schedule.to_string(),
                    run_on_startup: bool_field("runOnStartup", false)?,
                    use_monitor: bool_field("useMonitor", true)?,
                    max_retry_count,
                }));
            }
            "queuetrigger" => {
                want_dir("in")?;
                inputs += 1;
                let queue_name = required("queueName")?;
                let connection = match b.get("connection") {
                    None | Some(Value::Null) => "AzureWebJobsStorage".to_string(),
                    Some(Value::String(c)) if !c.trim().is_empty() => c.trim().to_string(),
                    Some(_) => {
                        return Err(invalid(path, &field("connection"), "must name a setting"));
                    }
                };
                if trigger.is_some() {
                    return Err(invalid(path, "bindings", "more than one trigger"));
                }
                trigger = Some(Trigger::Queue(QueueTrigger {
                    name: bname.to_string(),
                    queue_name: queue_name.to_string(),
                    connection,
                }));
            }
            "http" => {
                want_dir("out")?;
                outputs += 1;
                http_outputs.push(bname.to_string());
            }
            _ => {
                return Err(invalid(
                    path,
                    &field("type"),
                    format!(
                        "{ty:?} is not supported (httpTrigger, timerTrigger, queueTrigger, http)"
                    ),
                ));
            }
        }
    }
    let trigger = trigger.ok_or_else(|| invalid(path, "bindings", "no trigger binding"))?;
    if !matches!(trigger, Trigger::Http(_)) && !http_outputs.is_empty() {
        return Err(invalid(
            path,
            "bindings",
            "an http output needs an httpTrigger",
        ));
    }
    let http_only = matches!(trigger, Trigger::Http(_)) && inputs == 1 && outputs == 1;
    Ok(Function {
        name: name.to_string(),
        trigger,
        http_outputs,
        http_only,
    })
}

impl App {
    /// Reads `root/host.json` and every `root/<name>/function.json`.
    pub fn load(root: &Path) -> Result<App, AppError> {
        let host = parse_host(&root.join("host.json"))?;
        let entries = std::fs::read_dir(root).map_err(|e| AppError::Io {
            path: root.to_path_buf(),
            detail: e.to_string(),
        })?;
        let mut functions = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            let fj = dir.join("function.json");
            if !dir.is_dir() || !fj.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_function_name(&name) {
                return Err(invalid(
                    &fj,
                    "(folder name)",
                    format!(
                        "{name:?} is not a valid function name (^[a-z][a-z0-9_-]{{0,127}}$, not \"host\")"
                    ),
                ));
            }
            functions.push(parse_function(&name, &fj)?);
        }
        functions.sort_by(|a, b| a.name.cmp(&b.name));
        for w in functions.windows(2) {
            if w[0].name.eq_ignore_ascii_case(&w[1].name) {
                return Err(invalid(
                    &root.join(&w[1].name),
                    "(folder name)",
                    "two functions differ only in case",
                ));
            }
        }
        Ok(App {
            root: root.to_path_buf(),
            host,
            functions,
        })
    }

    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod timespan_tests {
    use super::parse_timespan;
    use std::time::Duration;

    #[test]
    fn timespans_parse_and_huge_day_counts_are_refused() {
        assert_eq!(parse_timespan("00:05:00"), Some(Duration::from_secs(300)));
        assert_eq!(
            parse_timespan("2.01:00:00"),
            Some(Duration::from_secs(2 * 86_400 + 3600))
        );
        assert_eq!(parse_timespan("99999999999999999.00:00:00"), None);
        assert_eq!(parse_timespan("24:00:00"), None);
    }
}
