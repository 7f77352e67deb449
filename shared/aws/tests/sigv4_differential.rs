//! The hand-written SigV4 signer against AWS's own Rust signer (`aws-sigv4`), on many generated
//! requests: every request is signed by both and the `Authorization` headers must be equal.
//!
//! The requests are built the way `burst-aws` sends them (a `Url`, its path as sent, its query
//! pairs decoded, `host` + `x-amz-date` + the caller's headers, `x-amz-content-sha256` for S3, the
//! session token when there is one) from a seeded generator: methods, paths with spaces,
//! non-ASCII and reserved characters, `.`/`..`/empty segments, queries with repeated, empty and
//! bare keys, `+`, valid and broken percent escapes, headers in mixed case with runs of spaces
//! and repeated names, empty and non-empty bodies, regions, services `autoscaling` and `s3`,
//! dates from 2000 to 2099, with and without a session token, default and explicit ports.
//!
//! `BURST_SIGV4_SEED=<n>` runs another seed; `BURST_SIGV4_CASES=<n>` another count.

#![allow(clippy::unwrap_used)]

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use burst_aws::sigv4::{self, Credentials, RequestParts};
use chrono::{DateTime, TimeZone, Utc};
use std::time::SystemTime;
use url::Url;

const DEFAULT_SEED: u64 = 0x5167_0a45_2026;
const DEFAULT_CASES: usize = 10_000;

/// One request to sign.
#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    service: &'static str,
    region: &'static str,
    url: Url,
    /// The caller's headers (besides host, date, payload hash and token).
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    time: DateTime<Utc>,
    credentials: Credentials,
}

/// What `burst-aws`'s request signer does with a request (see `src/signed.rs`).
fn sign_ours(c: &Case) -> (String, String) {
    let amz_date = sigv4::amz_date(c.time);
    let payload_hash = sigv4::sha256_hex(&c.body);
    let host = match c.url.port() {
        Some(p) => format!("{}:{p}", c.url.host_str().unwrap_or_default()),
        None => c.url.host_str().unwrap_or_default().to_string(),
    };
    let mut headers = vec![
        ("host".to_string(), host),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    if c.service == "s3" {
        headers.push(("x-amz-content-sha256".into(), payload_hash.clone()));
    }
    if let Some(token) = &c.credentials.session_token {
        headers.push(("x-amz-security-token".into(), token.clone()));
    }
    headers.extend(c.headers.iter().cloned());
    let query: Vec<(String, String)> = c
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let parts = RequestParts {
        method: c.method,
        canonical_uri: c.url.path(),
        query: &query,
        headers: &headers,
        payload_hash: &payload_hash,
    };
    let auth = sigv4::authorization(&c.credentials, &amz_date, c.region, c.service, &parts);
    let verbatim = RequestParts {
        canonical_uri: &sigv4::canonical_uri(c.url.path(), c.service),
        ..parts.clone()
    };
    (auth, sigv4::canonical_request(&verbatim))
}

/// The same request through `aws-sigv4` with the settings AWS's SDKs use for the service:
/// S3 signs the path as sent and adds `x-amz-content-sha256`; the others normalise the path and
/// encode it twice.
fn sign_reference(c: &Case) -> Result<String, String> {
    let mut settings = SigningSettings::default();
    if c.service == "s3" {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let identity = aws_credential_types::Credentials::new(
        c.credentials.access_key_id.clone(),
        c.credentials.secret_access_key.clone(),
        c.credentials.session_token.clone(),
        None,
        "differential-test",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(c.region)
        .name(c.service)
        .time(SystemTime::from(c.time))
        .settings(settings)
        .build()
        .map_err(|e| format!("signing params: {e}"))?
        .into();
    let request = SignableRequest::new(
        c.method,
        c.url.as_str(),
        c.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&c.body),
    )
    .map_err(|e| format!("signable request: {e}"))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| format!("sign: {e}"))?
        .into_parts();
    instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.to_string())
        .ok_or_else(|| "no authorization header in the signing output".to_string())
}

/// Seeded generator of requests.
struct Generator {
    rng: fastrand::Rng,
}

/// Pieces of path segments and query names/values: unreserved, reserved, spaces, non-ASCII,
/// pre-encoded escapes, broken escapes.
const PIECES: &[&str] = &[
    "a",
    "Z",
    "state",
    "home.json",
    "x-y_z~",
    "0",
    "42",
    " ",
    "  ",
    "é",
    "ሴ",
    "日本",
    "😀",
    "!",
    "$",
    "&",
    "'",
    "(",
    ")",
    "*",
    "+",
    ",",
    ";",
    "=",
    ":",
    "@",
    "%20",
    "%2F",
    "%41",
    "%e2%82%ac",
    "%",
    "%zz",
    "~",
    ".",
    "-",
    "\"",
    "<",
    ">",
    "[",
    "]",
    "{",
    "}",
    "|",
    "^",
    "`",
    "\\",
];

/// Header names (mixed case, repeats differing only by case) the signers both sign; none of the
/// names either signer sets itself or leaves out on purpose (user-agent, trace id, ...).
const HEADER_NAMES: &[&str] = &[
    "Content-Type",
    "content-type",
    "X-Custom",
    "x-CUSTOM",
    "My-Header1",
    "if-match",
    "If-None-Match",
    "X-Amz-Meta-Owner",
    "Content-MD5",
    "accept",
    "X-Amz-Target",
    "x-amz-acl",
];

/// Header value pieces: printable ASCII only (HTTP header values), with runs of spaces. No tabs:
/// aws-sigv4 trims and collapses spaces only, while botocore and this signer collapse any
/// whitespace; the clients never send a tab.
const VALUE_PIECES: &[&str] = &[
    "application/json",
    "application/x-www-form-urlencoded; charset=utf-8",
    "\"6654c734ccab8f440ff0825eb443dc7f\"",
    "*",
    " ",
    "   ",
    "a",
    "B c",
    "x,y",
    "=;:",
    "~!@#$%^&*()",
    "private",
];

const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD"];
const REGIONS: &[&str] = &[
    "us-east-1",
    "eu-west-1",
    "eu-central-2",
    "ap-southeast-2",
    "us-gov-west-1",
    "cn-north-1",
];

impl Generator {
    fn new(seed: u64) -> Self {
        Generator {
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.usize(..items.len())]
    }

    fn text(&mut self, max_pieces: usize) -> String {
        let n = self.rng.usize(0..=max_pieces);
        (0..n).map(|_| self.pick(PIECES)).collect()
    }

    fn path(&mut self, service: &str) -> String {
        let segments = self.rng.usize(0..=4);
        let mut path = String::new();
        for _ in 0..segments {
            path.push('/');
            match self.rng.u8(0..10) {
                0 => path.push('.'),
                1 => path.push_str(".."),
                2 => {}
                _ => {
                    let segment = self.text(4);
                    // S3 object keys are encoded by the client before they go on the wire
                    // (`S3Config::object_url`); other paths go out as the URL parser leaves them.
                    if service == "s3" && self.rng.bool() {
                        path.push_str(&sigv4::uri_encode(&segment, false));
                    } else {
                        path.push_str(&segment.replace(['?', '#', '/'], "_"));
                    }
                }
            }
        }
        if path.is_empty() || self.rng.u8(0..4) == 0 {
            path.push('/');
        }
        path
    }

    fn query(&mut self) -> String {
        let pairs = self.rng.usize(0..=5);
        let mut parts: Vec<String> = Vec::new();
        for _ in 0..pairs {
            let key = if parts.is_empty() || self.rng.u8(0..4) != 0 {
                self.text(3)
            } else {
                // A repeated key with another value.
                parts[self.rng.usize(..parts.len())]
                    .split('=')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            };
            let value = self.text(3);
            let encode = |s: &str, rng: &mut fastrand::Rng| match rng.u8(0..3) {
                0 => sigv4::uri_encode(s, false),
                // Form style: spaces as '+'.
                1 => sigv4::uri_encode(s, false).replace("%20", "+"),
                // Raw: the URL parser escapes what it must; '&', '=', '#' would change the
                // structure, so they are escaped here.
                _ => s
                    .replace('%', "%25")
                    .replace('&', "%26")
                    .replace('=', "%3D")
                    .replace('#', "%23"),
            };
            let key = encode(&key, &mut self.rng);
            match self.rng.u8(0..6) {
                0 => parts.push(key),
                1 => parts.push(format!("{key}=")),
                _ => {
                    let value = encode(&value, &mut self.rng);
                    parts.push(format!("{key}={value}"));
                }
            }
        }
        parts.join("&")
    }

    fn headers(&mut self) -> Vec<(String, String)> {
        let n = self.rng.usize(0..=5);
        (0..n)
            .map(|_| {
                let name = self.pick(HEADER_NAMES).to_string();
                let pieces = self.rng.usize(0..=4);
                let value: String = (0..pieces).map(|_| self.pick(VALUE_PIECES)).collect();
                (name, value)
            })
            .collect()
    }

    fn case(&mut self) -> Case {
        let service = if self.rng.bool() { "s3" } else { "autoscaling" };
        let region = self.pick(REGIONS);
        let authority = match self.rng.u8(0..4) {
            0 => format!("http://127.0.0.1:{}", self.rng.u16(1024..)),
            1 => format!("https://{service}.{region}.amazonaws.com:443"),
            2 => format!("https://burst-state.s3.{region}.amazonaws.com"),
            _ => format!("https://{service}.{region}.amazonaws.com"),
        };
        let path = self.path(service);
        let query = self.query();
        let raw = if query.is_empty() && self.rng.bool() {
            format!("{authority}{path}")
        } else {
            format!("{authority}{path}?{query}")
        };
        let url = Url::parse(&raw).unwrap_or_else(|e| panic!("generated URL {raw:?}: {e}"));
        let body = match self.rng.u8(0..3) {
            0 => Vec::new(),
            1 => br#"{"site":"home","version":7}"#.to_vec(),
            _ => (0..self.rng.usize(1..512))
                .map(|_| self.rng.u8(..))
                .collect(),
        };
        let seconds = self.rng.i64(946_684_800..4_102_444_800);
        let time = Utc
            .timestamp_opt(seconds, 0)
            .single()
            .unwrap_or_else(|| panic!("generated time {seconds}"));
        let session_token = self
            .rng
            .bool()
            .then(|| format!("IQoJb3JpZ2luX2VjE{}//////////wEaCXVz+/=", self.rng.u64(..)));
        Case {
            method: self.pick(METHODS),
            service,
            region,
            url,
            headers: self.headers(),
            body,
            time,
            credentials: Credentials {
                access_key_id: format!("AKIA{:016X}", self.rng.u64(..)),
                secret_access_key: format!("{:x}/{:X}+secret", self.rng.u64(..), self.rng.u64(..)),
                session_token,
            },
        }
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

#[test]
fn generated_requests_sign_like_aws_sigv4() {
    let seed = env_number("BURST_SIGV4_SEED", DEFAULT_SEED);
    let cases = env_number("BURST_SIGV4_CASES", DEFAULT_CASES);
    let mut generator = Generator::new(seed);
    let mut mismatches = Vec::new();
    let (mut s3, mut with_query, mut double_encoded, mut with_body) = (0, 0, 0, 0);
    for i in 0..cases {
        let case = generator.case();
        s3 += usize::from(case.service == "s3");
        with_query += usize::from(case.url.query().is_some_and(|q| !q.is_empty()));
        double_encoded += usize::from(case.service != "s3" && case.url.path().contains('%'));
        with_body += usize::from(!case.body.is_empty());
        let (ours, canonical) = sign_ours(&case);
        let reference = sign_reference(&case)
            .unwrap_or_else(|e| panic!("case {i} (seed {seed}): aws-sigv4 failed: {e}: {case:#?}"));
        if ours != reference {
            mismatches.push(format!(
                "case {i}: {} {} {}\n  headers {:?}\n  ours      {ours}\n  aws-sigv4 {reference}\n  our canonical request:\n{canonical}",
                case.service, case.method, case.url, case.headers
            ));
        }
    }
    println!(
        "{cases} requests (seed {seed}): {s3} for s3, {} for autoscaling, {with_query} with a query, \
         {double_encoded} with an encoded path signed twice-encoded, {with_body} with a body",
        cases - s3
    );
    // The generator must reach the interesting corners, or equality proves little.
    assert!(
        s3 > cases / 3 && s3 < cases * 2 / 3,
        "service mix: {s3} of {cases}"
    );
    assert!(with_query > cases / 2, "queries: {with_query} of {cases}");
    assert!(
        double_encoded > cases / 10,
        "encoded paths: {double_encoded}"
    );
    assert!(with_body > cases / 2, "bodies: {with_body}");
    assert!(
        mismatches.is_empty(),
        "{} of {cases} requests signed differently (seed {seed}); the first ones:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_changed_request_changes_the_signature() {
    // Guards the comparison itself: both signers must notice a one-character change.
    let mut generator = Generator::new(DEFAULT_SEED);
    let case = generator.case();
    let mut changed = case.clone();
    changed.region = if case.region == "eu-west-1" {
        "eu-west-2"
    } else {
        "eu-west-1"
    };
    assert_ne!(sign_ours(&case).0, sign_ours(&changed).0);
    assert_ne!(
        sign_reference(&case).unwrap(),
        sign_reference(&changed).unwrap()
    );
    let mut changed = case.clone();
    changed.body.push(b'x');
    assert_ne!(sign_ours(&case).0, sign_ours(&changed).0);
    assert_eq!(sign_ours(&case).0, sign_reference(&case).unwrap());
}
