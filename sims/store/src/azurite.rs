//! Runs the real Azure Storage emulator, Azurite (its blob or its queue service), for tests and
//! local runs.
//!
//! The npm package is pinned in `tests/azurite/package.json` + `package-lock.json` (Azurite
//! 3.35.0, the last release for Node 20). [`Azurite::start`] installs it with
//! `npm ci --prefix tests/azurite` when `node_modules/.bin/azurite-blob` is missing (the
//! project's install script does the same up front), then starts the bin script directly
//! (not through npx, which would leave a child behind when killed) on a free loopback port
//! with a fresh data folder, waits until it accepts connections, and kills it by PID on drop.
//!
//! Azurite 3.35 does not know the SDK's `x-ms-version`, so it runs with
//! `--skipApiVersionCheck`; `--disableTelemetry` keeps it offline.
//!
//! Requests are authorised with an account SAS for the emulator's dev account
//! `devstoreaccount1`, signed with its published well-known key (the same in every Azurite,
//! not a secret).

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use azure_storage_blob::BlobContainerClient;
use azure_storage_queue::QueueClient;
use azure_storage_queue::models::QueueClientPeekMessagesOptions;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use url::Url;

/// The emulator's dev account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The dev account's well-known key, published with the emulator (identical everywhere).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The SAS version we sign (the newest that Azurite 3.35 knows).
pub const SAS_VERSION: &str = "2025-11-05";

/// How long to wait for Azurite to accept connections (it is usually ready in about 1 s).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why Azurite could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum AzuriteError {
    /// Node.js or npm is not installed: install Node.js 20 with npm (Debian: `nodejs`, `npm`).
    #[error("Azurite needs Node.js and npm on PATH: {0}")]
    NodeMissing(String),
    /// `npm ci` failed: run `npm ci --prefix tests/azurite` by hand to see why.
    #[error("installing Azurite failed: {0}")]
    Install(String),
    /// Azurite exited or never accepted connections: its log is quoted.
    #[error("Azurite did not start: {0}")]
    Start(String),
    /// Azurite refused an administrative request (creating a container).
    #[error("Azurite request failed: {0}")]
    Request(String),
}

/// Which Azurite service one process serves (each is its own bin script).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Blob,
    Queue,
}

impl Service {
    fn bin(self) -> &'static str {
        match self {
            Service::Blob => "azurite-blob",
            Service::Queue => "azurite-queue",
        }
    }

    fn host_and_port_flags(self) -> (&'static str, &'static str) {
        match self {
            Service::Blob => ("--blobHost", "--blobPort"),
            Service::Queue => ("--queueHost", "--queuePort"),
        }
    }
}

/// A running Azurite service (blob or queue); killed (by PID) when dropped.
#[derive(Debug)]
pub struct Azurite {
    child: Child,
    port: u16,
    // Dropped after the process is killed: holds the data folder and the log.
    dir: tempfile::TempDir,
}

impl Azurite {
    /// `tests/azurite` of this source tree.
    pub fn package_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/azurite")
    }

    /// Whether `node` and `npm` can be run.
    pub fn node_available() -> bool {
        let runs = |cmd: &str| {
            Command::new(cmd)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        runs("node") && runs("npm")
    }

    /// For tests: starts Azurite, or `Ok(None)` (with a note on stderr) when Node.js is missing
    /// and the `CI` variable is unset. In CI a missing Node.js is an error.
    pub async fn start_for_tests() -> Result<Option<Self>, AzuriteError> {
        Self::service_for_tests(Service::Blob).await
    }

    /// Like [`Azurite::start_for_tests`], for the queue service.
    pub async fn start_queue_for_tests() -> Result<Option<Self>, AzuriteError> {
        Self::service_for_tests(Service::Queue).await
    }

    async fn service_for_tests(service: Service) -> Result<Option<Self>, AzuriteError> {
        if !Self::node_available() {
            let msg = "node/npm not found; install Node.js 20 and npm, then `npm ci --prefix tests/azurite`";
            if std::env::var_os("CI").is_some() {
                return Err(AzuriteError::NodeMissing(msg.into()));
            }
            eprintln!("skipping the Azurite test: {msg}");
            return Ok(None);
        }
        Self::start_service(&Self::package_dir(), service)
            .await
            .map(Some)
    }

    /// Installs (if needed) and starts Azurite from [`Azurite::package_dir`].
    pub async fn start() -> Result<Self, AzuriteError> {
        Self::start_in(&Self::package_dir()).await
    }

    /// Installs (if needed) and starts Azurite from `package_dir` (a folder with the pinned
    /// package.json and package-lock.json).
    pub async fn start_in(package_dir: &Path) -> Result<Self, AzuriteError> {
        Self::start_service(package_dir, Service::Blob).await
    }

    /// Installs (if needed) and starts one Azurite service from `package_dir`.
    pub async fn start_service(package_dir: &Path, service: Service) -> Result<Self, AzuriteError> {
        let dir = package_dir.to_owned();
        let blob_bin = tokio::task::spawn_blocking(move || ensure_installed(&dir))
            .await
            .map_err(|e| AzuriteError::Install(e.to_string()))??;
        let bin = blob_bin.with_file_name(service.bin());
        // A free port can be taken by someone else before Azurite binds it: try a few.
        let mut last = String::new();
        for _ in 0..3 {
            match Self::spawn(&bin, service).await {
                Ok(azurite) => return Ok(azurite),
                Err(AzuriteError::Start(e)) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(AzuriteError::Start(last))
    }

    async fn spawn(bin: &Path, service: Service) -> Result<Self, AzuriteError> {
        let (host_flag, port_flag) = service.host_and_port_flags();
        let port = free_port().map_err(|e| AzuriteError::Start(format!("no free port: {e}")))?;
        let dir = tempfile::Builder::new()
            .prefix("burst-azurite-")
            .tempdir()
            .map_err(|e| AzuriteError::Start(format!("temp folder: {e}")))?;
        let data = dir.path().join("data");
        let log_path = dir.path().join("azurite.log");
        let log = File::create(&log_path).map_err(|e| AzuriteError::Start(e.to_string()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| AzuriteError::Start(e.to_string()))?;
        let child = Command::new(bin)
            .arg(host_flag)
            .arg("127.0.0.1")
            .arg(port_flag)
            .arg(port.to_string())
            .arg("--location")
            .arg(&data)
            .arg("--disableTelemetry")
            .arg("--skipApiVersionCheck")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| AzuriteError::Start(format!("cannot run {}: {e}", bin.display())))?;
        let mut azurite = Azurite { child, port, dir };
        azurite.wait_ready().await?;
        Ok(azurite)
    }

    async fn wait_ready(&mut self) -> Result<(), AzuriteError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(AzuriteError::Start(format!(
                    "exited with {status}; log: {}",
                    self.log()
                )));
            }
            // The log line appears once the HTTP server listens; a connect alone could reach
            // another process that grabbed the port.
            if tokio::net::TcpStream::connect(addr).await.is_ok()
                && self.log().contains("successfully listens")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(AzuriteError::Start(format!(
                    "no answer on port {} within {READY_TIMEOUT:?}; log: {}",
                    self.port,
                    self.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What Azurite printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("azurite.log")).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:<port>/devstoreaccount1` (the service's endpoint, blob or queue)
    pub fn blob_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// A storage connection string for this (queue) service, as `AzureWebJobsStorage` holds it.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};QueueEndpoint={}",
            self.blob_endpoint()
        )
    }

    /// A queue's URL with an account SAS for the queue service (a `BURST_WAKE_QUEUE_URL`).
    pub fn queue_url(&self, queue: &str) -> String {
        let expiry = chrono::Utc::now() + chrono::Duration::days(1);
        let sas = account_sas_for(
            "q",
            ACCOUNT,
            ACCOUNT_KEY,
            "rwdlacup",
            &expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        );
        format!("{}/{queue}?{sas}", self.blob_endpoint())
    }

    /// A client for `queue` authorised by [`Azurite::queue_url`]'s SAS.
    pub fn queue_client(&self, queue: &str) -> Result<QueueClient, AzuriteError> {
        let url = Url::parse(&self.queue_url(queue))
            .map_err(|e| AzuriteError::Request(format!("queue URL: {e}")))?;
        QueueClient::new(url, None, None).map_err(|e| AzuriteError::Request(e.to_string()))
    }

    /// Creates a queue (it must not exist yet) and returns its client.
    pub async fn create_queue(&self, queue: &str) -> Result<QueueClient, AzuriteError> {
        let client = self.queue_client(queue)?;
        client
            .create(None)
            .await
            .map_err(|e| AzuriteError::Request(format!("create queue {queue}: {e}")))?;
        Ok(client)
    }

    /// The container's URL without a SAS.
    pub fn container_url(&self, container: &str) -> Result<Url, AzuriteError> {
        Url::parse(&format!("{}/{container}", self.blob_endpoint()))
            .map_err(|e| AzuriteError::Request(format!("container URL: {e}")))
    }

    /// An account SAS (read, write, delete, list, add, create on services, containers and
    /// blobs) valid for a day.
    pub fn account_sas(&self) -> String {
        dev_account_sas()
    }

    /// A `BURST_STATE_URL` value for `container`: the container URL with an account SAS.
    pub fn state_url(&self, container: &str) -> String {
        format!(
            "{}/{container}?{}",
            self.blob_endpoint(),
            self.account_sas()
        )
    }

    /// Creates a container (it must not exist yet).
    pub async fn create_container(&self, container: &str) -> Result<(), AzuriteError> {
        let mut url = self.container_url(container)?;
        url.set_query(Some(&self.account_sas()));
        let client = BlobContainerClient::new(url, None, None)
            .map_err(|e| AzuriteError::Request(e.to_string()))?;
        client
            .create(None)
            .await
            .map(|_| ())
            .map_err(|e| AzuriteError::Request(format!("create container {container}: {e}")))
    }

    /// Stops Azurite now (also done on drop).
    pub fn shutdown(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGKILL to our own child's PID; then reap it.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An account SAS for the dev account (read, write, delete, list, add, create on services,
/// containers and blobs) valid for a day.
pub fn dev_account_sas() -> String {
    let expiry = chrono::Utc::now() + chrono::Duration::days(1);
    let expiry = expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    account_sas(ACCOUNT, ACCOUNT_KEY, "rwdlac", &expiry)
}

/// The texts of the visible messages of a queue (up to 32), without dequeuing them.
pub async fn peek_texts(queue: &QueueClient) -> Result<Vec<String>, AzuriteError> {
    let options = QueueClientPeekMessagesOptions {
        number_of_messages: Some(32),
        ..Default::default()
    };
    let messages = queue
        .peek_messages(Some(options))
        .await
        .and_then(|r| r.into_model())
        .map_err(|e| AzuriteError::Request(format!("peek: {e}")))?;
    Ok(messages
        .items
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.message_text)
        .collect())
}

/// Signs an account SAS for the blob service (`ss=b`, `srt=sco`, http and https) with the
/// string-to-sign of SAS versions ≥ 2020-12-06:
/// `account\npermissions\nservices\nresource types\nstart\nexpiry\nip\nprotocol\nversion\nencryption scope\n`.
/// `key` is the base64 account key; `expiry` is `YYYY-MM-DDTHH:MM:SSZ`. Returns the query string.
pub fn account_sas(account: &str, key: &str, permissions: &str, expiry: &str) -> String {
    account_sas_for("b", account, key, permissions, expiry)
}

/// An account SAS for `services` (`b` blob, `q` queue, ...), as [`account_sas`].
pub fn account_sas_for(
    services: &str,
    account: &str,
    key: &str,
    permissions: &str,
    expiry: &str,
) -> String {
    let (resource_types, protocol) = ("sco", "https,http");
    let to_sign = format!(
        "{account}\n{permissions}\n{services}\n{resource_types}\n\n{expiry}\n\n{protocol}\n{SAS_VERSION}\n\n"
    );
    let signature = sign(key, &to_sign);
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("sv", SAS_VERSION)
        .append_pair("ss", services)
        .append_pair("srt", resource_types)
        .append_pair("sp", permissions)
        .append_pair("se", expiry)
        .append_pair("spr", protocol)
        .append_pair("sig", &signature)
        .finish()
}

/// base64(HMAC-SHA256(base64-decoded key, string-to-sign)); an undecodable key signs with its
/// raw bytes (the service will then refuse the SAS, which is what a test of a bad key wants).
pub fn sign(key: &str, string_to_sign: &str) -> String {
    let key_bytes = B64.decode(key).unwrap_or_else(|_| key.as_bytes().to_vec());
    let mut mac = match Hmac::<Sha256>::new_from_slice(&key_bytes) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => return String::new(),
    };
    mac.update(string_to_sign.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Runs `npm ci` in `package_dir` unless Azurite's bin script is there; returns the script.
/// Several test processes may call this at once: an OS file lock serialises the install.
pub fn ensure_installed(package_dir: &Path) -> Result<PathBuf, AzuriteError> {
    let bin = package_dir.join("node_modules/.bin/azurite-blob");
    if bin.exists() {
        return Ok(bin);
    }
    if !Azurite::node_available() {
        return Err(AzuriteError::NodeMissing(
            "node/npm not found; install Node.js 20 and npm".into(),
        ));
    }
    let lock_path = std::env::temp_dir().join("burst-store-azurite-install.lock");
    let install_error = |what: &str, e: std::io::Error| {
        AzuriteError::Install(format!("{what}{}: {e}", lock_path.display()))
    };
    // Appending creates the file without truncating it under another process's lock.
    let opened = File::options().append(true).create(true).open(&lock_path);
    let lock = opened.map_err(|e| install_error("", e))?;
    lock.lock().map_err(|e| install_error("lock ", e))?;
    if bin.exists() {
        return Ok(bin);
    }
    let output = Command::new("npm")
        .arg("ci")
        .arg("--prefix")
        .arg(package_dir)
        .args(["--no-audit", "--no-fund"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| AzuriteError::Install(format!("cannot run npm: {e}")))?;
    if !output.status.success() || !bin.exists() {
        return Err(AzuriteError::Install(format!(
            "npm ci --prefix {} exited with {}: {}",
            package_dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected values were computed by Azurite 3.35's own `generateAccountSASSignature`.
    #[test]
    fn account_sas_matches_azurite() {
        let expiry = "2030-01-01T00:00:00Z";
        let to_sign =
            format!("{ACCOUNT}\nrwdlac\nb\nsco\n\n{expiry}\n\nhttps,http\n2025-11-05\n\n");
        assert_eq!(
            sign(ACCOUNT_KEY, &to_sign),
            "ronEtVdVi8dNWCbf8Odnl3hZK+8PnVC4yNszBJNe0XU="
        );
        assert_eq!(
            account_sas(ACCOUNT, ACCOUNT_KEY, "rwdlac", expiry),
            "sv=2025-11-05&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00%3A00%3A00Z&spr=https%2Chttp\
             &sig=ronEtVdVi8dNWCbf8Odnl3hZK%2B8PnVC4yNszBJNe0XU%3D"
        );
    }
}
