//! What the tests against moto share: `moto_server` started on a free loopback port (and
//! stopped by its PID), requests signed with burst-aws's signer, and an IAM user with a policy.
//!
//! moto runs with IAM checks on: `INITIAL_NO_AUTH_ACTION_COUNT` = the number of setup requests
//! a test makes first (unchecked); every request after those must carry a signature that moto
//! recomputes with botocore's signer, as a user that holds only the test's policy.
//!
//! moto is `BURST_MOTO_SERVER`, else `target/moto-venv/bin/moto_server` (installed by
//! `scripts/install-test-deps`), else `moto_server` on `PATH`. Without it a test says so and
//! passes, unless `BURST_REQUIRE_MOTO` is set (CI sets it): then it fails.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use burst_aws::signed::Signer;
use burst_aws::sigv4::{self, Credentials};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use url::Url;

pub const REGION: &str = "us-east-1";
/// moto's default account.
pub const ACCOUNT: &str = "123456789012";
/// The calls [`create_iam_user`] makes (user, policy, key), and those [`assume_role`] makes
/// (role, policy, session): three each, all unchecked.
pub const IAM_SETUP_REQUESTS: usize = 3;

/// A running `moto_server` on 127.0.0.1, stopped (by its PID) when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub base: Url,
    log: PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Child::kill signals exactly this PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn moto_server_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BURST_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/moto-venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.is_file())
    })
}

/// Starts moto with IAM checks from request `unchecked_requests + 1` on, or returns `None`
/// (after saying why) when moto is not installed and not required.
pub fn start(test: &str, unchecked_requests: usize) -> Option<Moto> {
    let required = std::env::var_os("BURST_REQUIRE_MOTO").is_some_and(|v| !v.is_empty());
    let Some(server) = moto_server_path() else {
        assert!(
            !required,
            "BURST_REQUIRE_MOTO is set but moto_server was not found \
             (run scripts/install-test-deps, or set BURST_MOTO_SERVER)"
        );
        eprintln!(
            "SKIPPED {test}: moto_server not found (run scripts/install-test-deps; \
             BURST_REQUIRE_MOTO=1 makes this a failure)"
        );
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"));
    let log = std::env::temp_dir().join(format!("burst-moto-{}-{port}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let log_err = log_file
        .try_clone()
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let child = Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env(
            "INITIAL_NO_AUTH_ACTION_COUNT",
            unchecked_requests.to_string(),
        )
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", server.display()));
    let base = Url::parse(&format!("http://127.0.0.1:{port}/"))
        .unwrap_or_else(|e| panic!("loopback URL: {e}"));
    let mut moto = Moto { child, base, log };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(moto);
        }
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!(
                "moto_server exited ({status}) before listening:\n{}",
                std::fs::read_to_string(&moto.log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Credentials for the unchecked setup requests (moto has no such key; it does not look).
pub fn setup_credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIASETUPSETUPSETUP0".into(),
        secret_access_key: "setup".into(),
        session_token: None,
    }
}

/// One request signed and sent by burst-aws's own `Signer`, as its S3 client sends it
/// (`host`, `x-amz-date`, `x-amz-content-sha256` and the given headers). Returns status and
/// body.
pub async fn send_signed(
    http: &reqwest::Client,
    credentials: &Credentials,
    service: &str,
    method: reqwest::Method,
    url: &Url,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let signer = Signer {
        http,
        credentials,
        region: REGION,
        service,
        content_sha256_header: true,
    };
    let headers: Vec<(String, String)> = extra_headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let reply = signer
        .send(method, url, &headers, body.to_vec())
        .await
        .unwrap_or_else(|e| panic!("{service} request to {url}: {e}"));
    (
        reply.status.as_u16(),
        String::from_utf8_lossy(&reply.body).into_owned(),
    )
}

/// A form-encoded query-API call (IAM, Auto Scaling) that must answer 200; returns the XML.
pub async fn query_api(
    http: &reqwest::Client,
    moto: &Moto,
    credentials: &Credentials,
    service: &str,
    params: &[(&str, &str)],
) -> String {
    let form = params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                sigv4::uri_encode(k, false),
                sigv4::uri_encode(v, false)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let (status, body) = send_signed(
        http,
        credentials,
        service,
        reqwest::Method::POST,
        &moto.base,
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        form.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{service} {params:?}: {body}");
    body
}

/// The text of the first `<tag>` in an XML answer.
pub fn xml_field(body: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = body
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {body}"))
        + open.len();
    let end = body[start..]
        .find(&format!("</{tag}>"))
        .unwrap_or_else(|| panic!("no </{tag}> in {body}"))
        + start;
    body[start..end].to_string()
}

/// A query-API call with the [`setup_credentials`] (one of the unchecked setup requests).
pub async fn setup_call(
    http: &reqwest::Client,
    moto: &Moto,
    service: &str,
    params: &[(&str, &str)],
) -> String {
    query_api(http, moto, &setup_credentials(), service, params).await
}

/// An IAM setup call: `params` after IAM's `Version` and the `Action`.
async fn iam_setup(
    http: &reqwest::Client,
    moto: &Moto,
    action: &str,
    params: &[(&str, &str)],
) -> String {
    let mut all = vec![("Version", "2010-05-08"), ("Action", action)];
    all.extend_from_slice(params);
    setup_call(http, moto, "iam", &all).await
}

/// The IAM user `burst` holding `policy` (a JSON policy document): [`IAM_SETUP_REQUESTS`]
/// unchecked requests. Returns its access key.
pub async fn create_iam_user(http: &reqwest::Client, moto: &Moto, policy: &str) -> Credentials {
    let user = ("UserName", "burst");
    iam_setup(http, moto, "CreateUser", &[user]).await;
    let policy = [user, ("PolicyName", "burst"), ("PolicyDocument", policy)];
    iam_setup(http, moto, "PutUserPolicy", &policy).await;
    let key = iam_setup(http, moto, "CreateAccessKey", &[user]).await;
    Credentials {
        access_key_id: xml_field(&key, "AccessKeyId"),
        secret_access_key: xml_field(&key, "SecretAccessKey"),
        session_token: None,
    }
}

/// Temporary credentials (with a session token, as a Lambda function's role gets them) of the
/// role `burst-function` holding `policy`: [`IAM_SETUP_REQUESTS`] unchecked requests (role,
/// policy, `AssumeRole`).
pub async fn assume_role(http: &reqwest::Client, moto: &Moto, policy: &str) -> Credentials {
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
            "Action": "sts:AssumeRole"
        }]
    })
    .to_string();
    let role = ("RoleName", "burst-function");
    let trust = [role, ("AssumeRolePolicyDocument", &trust)];
    iam_setup(http, moto, "CreateRole", &trust).await;
    let policy = [role, ("PolicyName", "burst"), ("PolicyDocument", policy)];
    iam_setup(http, moto, "PutRolePolicy", &policy).await;
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/burst-function");
    let session = setup_call(
        http,
        moto,
        "sts",
        &[
            ("Version", "2011-06-15"),
            ("Action", "AssumeRole"),
            ("RoleArn", &role_arn),
            ("RoleSessionName", "burst"),
        ],
    )
    .await;
    Credentials {
        access_key_id: xml_field(&session, "AccessKeyId"),
        secret_access_key: xml_field(&session, "SecretAccessKey"),
        session_token: Some(xml_field(&session, "SessionToken")),
    }
}
