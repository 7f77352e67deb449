//! Queue triggers, as the Functions host runs them against an Azure Storage queue (here:
//! Azurite's queue service, or any account a connection string names).
//!
//! - Polling: a non-empty poll is followed by the next one at once; each empty poll waits
//!   longer (doubling from 200 ms, a little jitter) up to `extensions.queues.maxPollingInterval`
//!   (default 1 minute) — so an idle queue costs few storage transactions, and a message that
//!   becomes visible is picked up within that interval.
//! - A fetched message is invisible for 10 minutes while its invocation runs (JSON mode,
//!   `Data.<binding>` = the message text, decoded from base64 unless `messageEncoding` is
//!   `none`; `Metadata` = `DequeueCount`, `Id`, `PopReceipt`, the message's times, `sys`).
//! - Success deletes the message. A failure makes it visible again after
//!   `extensions.queues.visibilityTimeout` (default 0); once it failed `maxDequeueCount` times
//!   (default 5) it moves to `<queue>-poison`, created when first needed.
//! - A queue that does not exist is reported and polled again at the longest interval; the
//!   host does not create trigger queues (the deployment does).

use super::app::QueueOptions;
use super::log::Level;
use super::payload::{self, Ordered};
use super::{Inner, http};
use azure_core::http::{ClientOptions, RequestContent, RetryOptions, StatusCode};
use azure_storage_queue::models::{
    QueueClientReceiveMessagesOptions, QueueMessage, ReceivedMessage,
};
use azure_storage_queue::{QueueClient, QueueClientOptions};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch;
use url::Url;

/// Azurite's well-known development account (public, documented with the emulator).
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEV_QUEUE_ENDPOINT: &str = "http://127.0.0.1:10001/devstoreaccount1";
/// The account SAS version the emulator signs with.
const SAS_VERSION: &str = "2025-11-05";
/// How long a fetched message stays invisible while its invocation runs.
const LEASE_S: i32 = 600;
/// The first wait after an empty poll.
const MIN_WAIT: Duration = Duration::from_millis(200);

/// Where a connection string points and how to authenticate there.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageConnection {
    /// The queue service endpoint, e.g. `http://127.0.0.1:10001/devstoreaccount1`.
    pub queue_endpoint: Url,
    /// The query every request carries (an account SAS: signed here, or given).
    sas: String,
}

impl std::fmt::Debug for StorageConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConnection")
            .field("queue_endpoint", &self.queue_endpoint.as_str())
            .field("sas", &"<redacted>")
            .finish()
    }
}

impl StorageConnection {
    /// Parses `UseDevelopmentStorage=true` or `Key=Value;...` with `AccountName` + `AccountKey`
    /// (and `QueueEndpoint`, or `DefaultEndpointsProtocol` + `EndpointSuffix`), or
    /// `QueueEndpoint` + `SharedAccessSignature`. Errors never quote the key or signature.
    pub fn parse(text: &str) -> Result<StorageConnection, String> {
        let mut parts = std::collections::BTreeMap::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                "a connection string is Key=Value pairs separated by ;".to_string()
            })?;
            parts.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let get = |k: &str| parts.get(k).map(String::as_str);
        let endpoint = |raw: &str| {
            Url::parse(raw.trim_end_matches('/')).map_err(|e| format!("QueueEndpoint: {e}"))
        };
        if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(Self::signed(
                endpoint(DEV_QUEUE_ENDPOINT)?,
                DEV_ACCOUNT,
                DEV_KEY,
            ));
        }
        if let Some(sas) = get("sharedaccesssignature") {
            let queue =
                get("queueendpoint").ok_or("a SharedAccessSignature needs a QueueEndpoint")?;
            return Ok(StorageConnection {
                queue_endpoint: endpoint(queue)?,
                sas: sas.trim_start_matches('?').to_string(),
            });
        }
        let account = get("accountname").ok_or("no AccountName (or UseDevelopmentStorage=true)")?;
        let key =
            get("accountkey").ok_or("no AccountKey (identity-based connections need Azure)")?;
        let queue = match get("queueendpoint") {
            Some(q) => endpoint(q)?,
            None => {
                let protocol = get("defaultendpointsprotocol").unwrap_or("https");
                let suffix = get("endpointsuffix").unwrap_or("core.windows.net");
                endpoint(&format!("{protocol}://{account}.queue.{suffix}"))?
            }
        };
        Ok(Self::signed(queue, account, key))
    }

    fn signed(queue_endpoint: Url, account: &str, key: &str) -> StorageConnection {
        let expiry = (Utc::now() + chrono::Duration::days(7))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        StorageConnection {
            queue_endpoint,
            sas: queue_account_sas(account, key, &expiry),
        }
    }

    /// A client for `queue` (SAS attached, no SDK retries: the poll loop is the retry).
    pub fn queue(&self, queue: &str) -> Result<QueueClient, String> {
        let mut url = self.queue_endpoint.clone();
        url.path_segments_mut()
            .map_err(|_| "QueueEndpoint cannot take a queue name".to_string())?
            .pop_if_empty()
            .push(queue);
        url.set_query(Some(&self.sas));
        let options = QueueClientOptions {
            client_options: ClientOptions {
                retry: RetryOptions::none(),
                ..Default::default()
            },
            ..Default::default()
        };
        QueueClient::new(url, None, Some(options)).map_err(|e| format!("queue client: {e}"))
    }
}

/// An account SAS for the queue service (`ss=q`, all resource types, read, add, update,
/// process, create, delete, list) with the string-to-sign of versions ≥ 2020-12-06.
pub fn queue_account_sas(account: &str, key: &str, expiry: &str) -> String {
    let (permissions, services, types, protocol) = ("rwdlacup", "q", "sco", "https,http");
    let to_sign = format!(
        "{account}\n{permissions}\n{services}\n{types}\n\n{expiry}\n\n{protocol}\n{SAS_VERSION}\n\n"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap_or_else(|_| key.as_bytes().to_vec());
    let signature = Hmac::<Sha256>::new_from_slice(&key)
        .map(|mut mac| {
            mac.update(to_sign.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        })
        .unwrap_or_default();
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("sv", SAS_VERSION)
        .append_pair("ss", services)
        .append_pair("srt", types)
        .append_pair("sp", permissions)
        .append_pair("se", expiry)
        .append_pair("spr", protocol)
        .append_pair("sig", &signature)
        .finish()
}

/// One queue-triggered function's listener.
#[derive(Debug)]
pub struct QueueListener {
    pub function: String,
    /// The binding name (the key under `Data`).
    pub binding: String,
    pub queue_name: String,
    pub connection: StorageConnection,
    pub options: QueueOptions,
}

impl QueueListener {
    /// Polls until `stop` turns true. Holds the host weakly: a dropped host ends the loop.
    pub(crate) async fn run(self, inner: Weak<Inner>, mut stop: watch::Receiver<bool>) {
        let (queue, poison) = match (
            self.connection.queue(&self.queue_name),
            self.connection
                .queue(&format!("{}-poison", self.queue_name)),
        ) {
            (Ok(q), Ok(p)) => (Arc::new(q), Arc::new(p)),
            (Err(e), _) | (_, Err(e)) => {
                if let Some(inner) = inner.upgrade() {
                    inner.log.host(
                        Level::Error,
                        &format!(
                            "Function '{}': queue listener not started: {e}",
                            self.function
                        ),
                    );
                }
                return;
            }
        };
        let context = self.shared();
        let mut wait = Duration::ZERO;
        let mut missing_reported = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let Some(host) = inner.upgrade() else { return };
            let options = QueueClientReceiveMessagesOptions {
                number_of_messages: Some(self.options.batch_size as i32),
                visibility_timeout: Some(LEASE_S),
                ..Default::default()
            };
            let messages = match queue.receive_messages(Some(options)).await {
                Ok(r) => r.into_model().map(|m| m.items.unwrap_or_default()),
                Err(e) => Err(e),
            };
            match messages {
                Ok(batch) if !batch.is_empty() => {
                    missing_reported = false;
                    let mut set = tokio::task::JoinSet::new();
                    for message in batch {
                        let (host, queue, poison, me) =
                            (host.clone(), queue.clone(), poison.clone(), context.clone());
                        set.spawn(async move { me.handle(&host, &queue, &poison, message).await });
                    }
                    while set.join_next().await.is_some() {}
                    wait = Duration::ZERO;
                }
                Ok(_) => wait = self.backoff(wait),
                Err(e) => {
                    let missing = e.http_status() == Some(StatusCode::NotFound);
                    if !(missing && missing_reported) {
                        host.log.host(
                            Level::Warning,
                            &format!(
                                "Function '{}': polling queue '{}' failed: {}",
                                self.function,
                                self.queue_name,
                                if missing {
                                    "the queue does not exist".to_string()
                                } else {
                                    describe(&e)
                                }
                            ),
                        );
                    }
                    missing_reported |= missing;
                    wait = self.options.max_polling_interval;
                }
            }
        }
    }

    /// What a message's task needs (the listener itself stays in the loop).
    fn shared(&self) -> Arc<MessageContext> {
        Arc::new(MessageContext {
            function: self.function.clone(),
            binding: self.binding.clone(),
            queue_name: self.queue_name.clone(),
            options: self.options.clone(),
        })
    }

    /// Doubles the wait after an empty poll (from 200 ms, up to the maximum), with up to 20 %
    /// jitter so several listeners do not poll in step.
    fn backoff(&self, previous: Duration) -> Duration {
        let max = self.options.max_polling_interval;
        let next = (previous * 2).clamp(MIN_WAIT.min(max), max);
        next.mul_f64(1.0 - fastrand::f64() * 0.2)
    }
}

#[derive(Debug)]
struct MessageContext {
    function: String,
    binding: String,
    queue_name: String,
    options: QueueOptions,
}

impl MessageContext {
    async fn handle(
        &self,
        host: &Inner,
        queue: &QueueClient,
        poison: &QueueClient,
        message: ReceivedMessage,
    ) {
        let (Some(id), Some(receipt)) = (message.message_id.clone(), message.pop_receipt.clone())
        else {
            return;
        };
        let dequeue = message.dequeue_count.unwrap_or(1).max(1) as u32;
        let raw = message.message_text.clone().unwrap_or_default();
        let ok = match self.decode(&raw) {
            Ok(text) => {
                let body = self.invocation(&message, &text);
                let reason = format!(
                    "New queue message detected on '{}' (Id={id}, DequeueCount={dequeue})",
                    self.queue_name
                );
                http::invoke_triggered(host, &self.function, body, &reason).await
            }
            Err(e) => {
                host.log
                    .host(Level::Error, &format!("Function '{}': {e}", self.function));
                false
            }
        };
        let outcome = if ok {
            queue.delete_message(&id, &receipt, None).await.map(|_| ())
        } else if dequeue >= self.options.max_dequeue_count {
            host.log.host(
                Level::Warning,
                &format!(
                    "Message has reached MaxDequeueCount of {}. Moving message to queue '{}-poison'.",
                    self.options.max_dequeue_count, self.queue_name
                ),
            );
            self.to_poison(poison, &raw)
                .await
                .and(queue.delete_message(&id, &receipt, None).await.map(|_| ()))
        } else {
            let secs = self.options.visibility_timeout.as_secs().min(7 * 86_400) as i32;
            queue
                .update_message(&id, &receipt, secs, None)
                .await
                .map(|_| ())
        };
        if let Err(e) = outcome {
            host.log.host(
                Level::Warning,
                &format!(
                    "Function '{}': settling message {id} failed: {} (it reappears after its lease)",
                    self.function,
                    describe(&e)
                ),
            );
        }
    }

    fn decode(&self, raw: &str) -> Result<String, String> {
        if !self.options.base64 {
            return Ok(raw.to_string());
        }
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                "the message is not base64 text (host.json extensions.queues.messageEncoding is base64)"
                    .to_string()
            })
    }

    async fn to_poison(&self, poison: &QueueClient, raw: &str) -> azure_core::Result<()> {
        let send = |text: String| async {
            let body: RequestContent<QueueMessage, _> = QueueMessage {
                message_text: Some(text),
            }
            .try_into()?;
            poison.send_message(body, None).await.map(|_| ())
        };
        match send(raw.to_string()).await {
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => {
                poison.create(None).await?;
                send(raw.to_string()).await
            }
            other => other,
        }
    }

    /// The JSON-mode body: `Data.<binding>` = the message text; `Metadata` as the host sends it.
    fn invocation(&self, m: &ReceivedMessage, text: &str) -> Ordered {
        let time = |t: Option<azure_core::time::OffsetDateTime>| {
            t.and_then(|t| DateTime::<Utc>::from_timestamp(t.unix_timestamp(), 0))
                .map(|t| Value::String(payload::offset_string(t)))
                .unwrap_or(Value::Null)
        };
        let mut data = Ordered::default();
        data.insert(&self.binding, Value::String(text.to_string()));
        let mut meta = Ordered::default();
        meta.insert("DequeueCount", Value::from(m.dequeue_count.unwrap_or(1)));
        meta.insert("ExpirationTime", time(m.expiration_time));
        meta.insert("Id", Value::from(m.message_id.clone().unwrap_or_default()));
        meta.insert("InsertionTime", time(m.insertion_time));
        meta.insert("NextVisibleTime", time(m.time_next_visible));
        meta.insert(
            "PopReceipt",
            Value::from(m.pop_receipt.clone().unwrap_or_default()),
        );
        meta.insert(
            "sys",
            payload::sys(&self.function, Utc::now(), uuid::Uuid::new_v4()),
        );
        let mut root = Ordered::default();
        root.insert("Data", data);
        root.insert("Metadata", meta);
        root
    }
}

fn describe(e: &azure_core::Error) -> String {
    match e.http_status() {
        Some(s) => format!("HTTP {s}"),
        None => format!("{:?}", e.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_resolve_the_queue_endpoint_and_never_print_the_key() {
        let dev = StorageConnection::parse("UseDevelopmentStorage=true").expect("dev");
        assert_eq!(dev.queue_endpoint.as_str(), DEV_QUEUE_ENDPOINT);
        let explicit = StorageConnection::parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};QueueEndpoint=http://127.0.0.1:5/{DEV_ACCOUNT};"
        ))
        .expect("explicit");
        assert_eq!(explicit.queue_endpoint.port(), Some(5));
        assert!(!format!("{explicit:?}").contains(DEV_KEY));
        assert!(explicit.sas.contains("ss=q"));
        let cloud = StorageConnection::parse("AccountName=acct;AccountKey=a2V5").expect("cloud");
        assert_eq!(
            cloud.queue_endpoint.as_str(),
            "https://acct.queue.core.windows.net/"
        );
        let q = cloud.queue("burst-wake").expect("client");
        assert_eq!(q.url().path(), "/burst-wake");
        for bad in ["AccountName=x", "nonsense", "SharedAccessSignature=sv=1"] {
            let e = StorageConnection::parse(bad).expect_err(bad);
            assert!(!e.is_empty());
        }
    }
}
