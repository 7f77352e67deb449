//! `ArmScaleSet`: reads and writes one VM Scale Set's capacity over ARM REST.
//!
//! The write is `GET` (capacity + etag) then a sparse `PATCH {"sku":{"capacity":n}}` with
//! `If-Match`; never a PUT of the GET body (re-sending `identity` fails with
//! LinkedAuthorizationFailed), never a write after a failed read, never a sleep: a 429 comes
//! back as `Throttled` with ARM's wait, a 202 as `Accepted` without waiting for the
//! long-running operation (the next `observe` shows how it went).
//!
//! Running VMs are counted from the VM list with instance views
//! (`GET .../virtualMachines?$expand=instanceView`, following `nextLink`): each VM's own
//! instance view carries its `PowerState/*`. The scale set's `.../instanceView` summary does
//! not: real responses count provisioning states only there (azure-rest-api-specs issue
//! #3593, a real response; the scale-set upgrade article's sample on Microsoft Learn).
//!
//! Both the VM list and `simulateEviction` exist for Uniform scale sets only (Microsoft Learn,
//! "Orchestration modes for Virtual Machine Scale Sets"; a Flexible scale set answers 400
//! "Operation 'VirtualMachineScaleSets.virtualMachines.GET' is not allowed"): every read of
//! the scale set refuses a Flexible one with an error naming `BURST_ARM_SCALE_SET_ID`, so
//! nothing is ever written to it.

use crate::http_util::{describe_transport, read_body_capped, short_text};
use crate::resource_id::ScaleSetId;
use crate::settings::{ArmConfig, SCALE_SET_ID};
use crate::token::ARM_SCOPE;
use crate::wire::{self, ScaleSetBody, VmCensus, VmListPage};
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use burst_core::{ScaleResult, ScaleSetProbe};
use burst_settings::ConfigError;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use url::Url;

/// The header ARM uses to say how much of a throttling budget is left.
pub const RATE_LIMIT_HEADER: &str = "x-ms-ratelimit-remaining-resource";

/// Why an ARM call failed; `ArmScaleSet` turns these into the core's outcome types.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArmError {
    /// No token from the app's credential (identity endpoint unreachable, or it refused):
    /// report it; the next invocation asks again.
    #[error("no ARM token: {0}")]
    Token(String),
    /// ARM could not be reached or timed out: try again later. For a write, whether it was
    /// applied is unknown: re-read before deciding again.
    #[error("ARM unreachable: {0}")]
    Transport(String),
    /// 429: ask again after `retry_after_s`, not before.
    #[error("ARM throttled the request (retry after {retry_after_s} s): {detail}")]
    Throttled { retry_after_s: u64, detail: String },
    /// ARM answered with an error status: 409/412 mean re-read and re-decide, 401/403 are a
    /// permission problem to report, 5xx is worth another try later.
    #[error("HTTP {status} {code}: {message}")]
    Http {
        status: u16,
        code: String,
        message: String,
    },
    /// ARM answered 200 with a body the client cannot use: report it (wrong endpoint or
    /// api-version?).
    #[error("unexpected ARM response: {0}")]
    Malformed(String),
    /// The configured scale set cannot be driven by this adapter (a Flexible scale set): the
    /// error names the setting to fix. Nothing is written while it stands.
    #[error("{0}")]
    Config(ConfigError),
}

/// The VM list is followed through at most this many pages (a scale set holds at most 1000
/// VMs; a loop of `nextLink`s must not keep a function busy).
const MAX_VM_PAGES: usize = 100;

/// What one `GET` of the scale set says.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleSetView {
    /// `sku.capacity`: what was asked for.
    pub capacity: u32,
    /// The resource version to send in `If-Match` (including its quotes, e.g. `"3"`).
    pub etag: Option<String>,
    pub provisioning_state: Option<String>,
    /// `Uniform` or `Flexible` (absent = Uniform).
    pub orchestration_mode: Option<String>,
    pub priority: Option<String>,
    pub eviction_policy: Option<String>,
    pub max_price: Option<f64>,
}

impl ScaleSetView {
    /// Interprets a scale set body. A missing, negative or oversized capacity is refused: a
    /// capacity computed from a guess is how clusters lose their nodes.
    pub fn from_body(body: &ScaleSetBody) -> Result<Self, ArmError> {
        let raw =
            body.sku.as_ref().and_then(|s| s.capacity).ok_or_else(|| {
                ArmError::Malformed("the scale set body has no sku.capacity".into())
            })?;
        let capacity = u32::try_from(raw)
            .map_err(|_| ArmError::Malformed(format!("sku.capacity {raw} is out of range")))?;
        let props = body.properties.as_ref();
        let profile = props.and_then(|p| p.virtual_machine_profile.as_ref());
        Ok(Self {
            capacity,
            etag: body.etag.clone(),
            provisioning_state: props.and_then(|p| p.provisioning_state.clone()),
            orchestration_mode: props.and_then(|p| p.orchestration_mode.clone()),
            priority: profile.and_then(|p| p.priority.clone()),
            eviction_policy: profile.and_then(|p| p.eviction_policy.clone()),
            max_price: profile
                .and_then(|p| p.billing_profile.as_ref())
                .and_then(|b| b.max_price),
        })
    }
}

/// The real scale set client.
#[derive(Debug)]
pub struct ArmScaleSet {
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
    timeout: Duration,
    scale_set: ScaleSetId,
    endpoint: Url,
    api_version: String,
}

impl ArmScaleSet {
    /// A client taking its tokens from `credential` (the process's one Azure credential).
    pub fn new(
        config: ArmConfig,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, ConfigError> {
        let http = crate::http_util::client(config.timeout)
            .map_err(|e| ConfigError::new("the ARM HTTP client", e.to_string()))?;
        Ok(Self {
            http,
            credential,
            timeout: config.timeout,
            scale_set: config.scale_set,
            endpoint: config.endpoint,
            api_version: config.api_version,
        })
    }

    pub fn scale_set(&self) -> &ScaleSetId {
        &self.scale_set
    }

    /// A bearer token for ARM, bounded by the request timeout (the credential caches it).
    async fn token(&self) -> Result<azure_core::credentials::AccessToken, ArmError> {
        match tokio::time::timeout(self.timeout, self.credential.get_token(&[ARM_SCOPE], None))
            .await
        {
            Ok(Ok(token)) => Ok(token),
            Ok(Err(e)) => Err(ArmError::Token(e.to_string())),
            Err(_) => Err(ArmError::Token(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// `GET` the scale set.
    pub async fn read(&self) -> Result<ScaleSetView, ArmError> {
        let (status, headers, body) = self.send(Method::GET, "", None, None).await?;
        if status != StatusCode::OK {
            return Err(error_from(status, &headers, &body));
        }
        let parsed: ScaleSetBody = serde_json::from_slice(&body)
            .map_err(|e| ArmError::Malformed(format!("scale set body: {e}")))?;
        let view = ScaleSetView::from_body(&parsed)?;
        if view
            .orchestration_mode
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("flexible"))
        {
            return Err(ArmError::Config(ConfigError::new(
                SCALE_SET_ID,
                "it names a scale set in Flexible orchestration mode; hybrid-burst needs a \
                      Uniform scale set (it counts running VMs with the Uniform-only VM list and \
                      drills evictions with simulateEviction): create the scale set with \
                      orchestrationMode Uniform",
            )));
        }
        Ok(view)
    }

    /// The VMs whose power state is `PowerState/running` (see [`Self::census`]).
    pub async fn running(&self) -> Result<u32, ArmError> {
        Ok(self.census().await?.running)
    }

    /// `GET .../virtualMachines?$expand=instanceView`, every page (`nextLink` followed, on
    /// the configured endpoint only): how many VMs there are, run, and failed to provision.
    pub async fn census(&self) -> Result<VmCensus, ArmError> {
        let mut url = self.url("/virtualMachines")?;
        url.query_pairs_mut().append_pair("$expand", "instanceView");
        let mut census = VmCensus::default();
        let mut seen_links = std::collections::HashSet::new();
        for _ in 0..MAX_VM_PAGES {
            let (status, headers, body) = self.send_url(Method::GET, url, None, None).await?;
            if status != StatusCode::OK {
                return Err(error_from(status, &headers, &body));
            }
            let page: VmListPage = serde_json::from_slice(&body)
                .map_err(|e| ArmError::Malformed(format!("VM list body: {e}")))?;
            census.add_page(&page);
            match page.next_link.filter(|l| !l.trim().is_empty()) {
                None => return Ok(census),
                Some(link) => {
                    if !seen_links.insert(link.clone()) {
                        return Err(ArmError::Malformed(
                            "the VM list's nextLink repeats an earlier page".into(),
                        ));
                    }
                    url = self.next_page_url(&link)?;
                }
            }
        }
        Err(ArmError::Malformed(format!(
            "the VM list has more than {MAX_VM_PAGES} pages"
        )))
    }

    /// A `nextLink` as the URL of the next request: it must point at the configured ARM
    /// endpoint (the bearer token goes with it); `api-version` and `$expand=instanceView`
    /// are added if the link lacks them (without the expansion, the VMs of that page would
    /// read as not running).
    fn next_page_url(&self, link: &str) -> Result<Url, ArmError> {
        let mut url = Url::parse(link.trim())
            .map_err(|e| ArmError::Malformed(format!("the VM list's nextLink: {e}")))?;
        let same_origin = url.scheme() == self.endpoint.scheme()
            && url.host_str() == self.endpoint.host_str()
            && url.port_or_known_default() == self.endpoint.port_or_known_default();
        if !same_origin {
            return Err(ArmError::Malformed(format!(
                "the VM list's nextLink points away from {} ({}); not following it",
                self.endpoint.origin().ascii_serialization(),
                url.origin().ascii_serialization()
            )));
        }
        let has = |name: &str| url.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let (has_version, has_expand) = (has("api-version"), has("$expand"));
        if !has_version {
            url.query_pairs_mut()
                .append_pair("api-version", &self.api_version);
        }
        if !has_expand {
            url.query_pairs_mut().append_pair("$expand", "instanceView");
        }
        Ok(url)
    }

    /// `POST .../virtualMachines/{id}/simulateEviction` (Spot drills against a real or
    /// simulated scale set). 204 = the eviction was scheduled.
    pub async fn simulate_eviction(&self, instance_id: &str) -> Result<(), ArmError> {
        if instance_id.is_empty() || !instance_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(ArmError::Malformed(format!(
                "instance id {} is not a number",
                short_text(instance_id)
            )));
        }
        let suffix = format!("/virtualMachines/{instance_id}/simulateEviction");
        let (status, headers, body) = self.send(Method::POST, &suffix, None, None).await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::ACCEPTED => Ok(()),
            _ => Err(error_from(status, &headers, &body)),
        }
    }

    fn url(&self, suffix: &str) -> Result<Url, ArmError> {
        let raw = format!(
            "{}{}{}",
            self.endpoint.as_str().trim_end_matches('/'),
            self.scale_set.path(),
            suffix
        );
        let mut url =
            Url::parse(&raw).map_err(|e| ArmError::Malformed(format!("request URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("api-version", &self.api_version);
        Ok(url)
    }

    /// One request with a bearer token; the body and headers of any answer are returned for
    /// the caller to classify.
    async fn send(
        &self,
        method: Method,
        suffix: &str,
        json_body: Option<String>,
        if_match: Option<&str>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ArmError> {
        let url = self.url(suffix)?;
        self.send_url(method, url, json_body, if_match).await
    }

    async fn send_url(
        &self,
        method: Method,
        url: Url,
        json_body: Option<String>,
        if_match: Option<&str>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ArmError> {
        let path = url.path().to_string();
        let token = self.token().await?;
        let mut req = self
            .http
            .request(method.clone(), url)
            .bearer_auth(token.token.secret())
            .header("Accept", "application/json");
        if let Some(etag) = if_match {
            req = req.header("If-Match", etag);
        }
        req = match json_body {
            Some(b) => req.header("Content-Type", "application/json").body(b),
            // An empty POST still says how long it is (ARM wants Content-Length on POST).
            None if method == Method::POST => req.header("Content-Length", "0"),
            None => req,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| ArmError::Transport(describe_transport(&e)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if let Some(v) = headers.get(RATE_LIMIT_HEADER).and_then(|v| v.to_str().ok()) {
            tracing::debug!(remaining = v, %method, path, "ARM rate limit");
        }
        let body = read_body_capped(resp).await.map_err(ArmError::Transport)?;
        Ok((status, headers, body))
    }

    async fn write_capacity(&self, capacity: u32, etag: &str, running: Option<u32>) -> ScaleResult {
        // Built by hand so the bytes on the wire are exactly the sparse body, nothing more.
        let body = format!("{{\"sku\":{{\"capacity\":{capacity}}}}}");
        let sent = self.send(Method::PATCH, "", Some(body), Some(etag)).await;
        let (status, headers, resp_body) = match sent {
            Ok(r) => r,
            Err(ArmError::Transport(detail)) => {
                return ScaleResult::Failed {
                    detail: format!(
                        "PATCH capacity {capacity}: {detail}; it may or may not have been applied"
                    ),
                };
            }
            Err(e) => {
                return ScaleResult::Failed {
                    detail: format!("PATCH capacity {capacity}: {e}"),
                };
            }
        };
        match status {
            StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED => {
                tracing::info!(
                    capacity,
                    status = status.as_u16(),
                    operation = headers.contains_key("azure-asyncoperation"),
                    "scale set capacity write accepted"
                );
                ScaleResult::Accepted { capacity, running }
            }
            _ => classify_write_error(status, &headers, &resp_body),
        }
    }
}

/// A failed write, as the core should treat it.
fn classify_write_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ScaleResult {
    match error_from(status, headers, body) {
        ArmError::Throttled { retry_after_s, .. } => ScaleResult::Throttled { retry_after_s },
        e @ ArmError::Http { .. }
            if status == StatusCode::CONFLICT
                || status == StatusCode::PRECONDITION_FAILED
                || wire::parse_error_body(body)
                    .is_some_and(|d| d.has_code("OperationPreempted")) =>
        {
            ScaleResult::Conflict {
                detail: e.to_string(),
            }
        }
        e => ScaleResult::Failed {
            detail: e.to_string(),
        },
    }
}

/// An ARM error status with its code and message (either body shape); 429 with its wait.
fn error_from(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ArmError {
    let detail = wire::parse_error_body(body);
    let (code, message) = match &detail {
        Some(d) => {
            let mut message = short_text(&d.message);
            if let Some(t) = d.target.as_deref().filter(|t| !t.is_empty()) {
                message = format!("{message} (target {})", short_text(t));
            }
            (short_text(&d.code), message)
        }
        None => (
            status
                .canonical_reason()
                .unwrap_or("Error")
                .replace(' ', ""),
            if body.is_empty() {
                "no error body".to_string()
            } else {
                short_text(&String::from_utf8_lossy(body))
            },
        ),
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry = headers.get("retry-after").and_then(|v| v.to_str().ok());
        return ArmError::Throttled {
            retry_after_s: wire::retry_after_s(retry, SystemTime::now()),
            detail: format!("{code}: {message}"),
        };
    }
    ArmError::Http {
        status: status.as_u16(),
        code,
        message,
    }
}

#[async_trait]
impl burst_ports::Scaler for ArmScaleSet {
    async fn observe(&self) -> ScaleSetProbe {
        let (view, census) = tokio::join!(self.read(), self.census());
        match (view, census) {
            (Ok(view), Ok(census)) => ScaleSetProbe::Seen {
                capacity: view.capacity,
                running: census.running,
            },
            (Err(e), _) => ScaleSetProbe::Unknown {
                detail: format!("reading the scale set: {e}"),
            },
            (_, Err(e)) => ScaleSetProbe::Unknown {
                detail: format!("listing the scale set's VMs: {e}"),
            },
        }
    }

    async fn set_capacity(&self, capacity: u32) -> ScaleResult {
        // The VM list only adds the running count to the result; its failure does not block
        // the write. The scale set read does: never write blind.
        let (view, census) = tokio::join!(self.read(), self.census());
        let running = census.as_ref().ok().map(|c| c.running);
        let view = match view {
            Ok(v) => v,
            // A throttled read is still a throttle: waiting is the answer, nothing was written.
            Err(ArmError::Throttled { retry_after_s, .. }) => {
                return ScaleResult::Throttled { retry_after_s };
            }
            Err(e) => {
                return ScaleResult::ReadFailed {
                    detail: e.to_string(),
                };
            }
        };
        let failed = view
            .provisioning_state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("failed"));
        if view.capacity == capacity {
            if failed {
                // The capacity was written, but the operation that should have made it real
                // failed (e.g. no Spot capacity): not a success, whatever the number says.
                let detail = failed_detail(capacity, &census);
                tracing::warn!(capacity, %detail, "scale set provisioning failed");
                return ScaleResult::Failed { detail };
            }
            return ScaleResult::Accepted { capacity, running };
        }
        if view
            .provisioning_state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("deleting"))
        {
            return ScaleResult::Failed {
                detail: "the scale set is being deleted; not writing".into(),
            };
        }
        let Some(etag) = view.etag.as_deref() else {
            return ScaleResult::ReadFailed {
                detail:
                    "the scale set has no etag (api-version too old?); not writing without If-Match"
                        .into(),
            };
        };
        if failed {
            // A new capacity starts a new operation: Azure's way out of a failed one.
            tracing::warn!(
                from = view.capacity,
                to = capacity,
                "the scale set's last operation failed; writing the new capacity anyway"
            );
        }
        tracing::info!(
            from = view.capacity,
            to = capacity,
            provisioning_state = view.provisioning_state.as_deref().unwrap_or("?"),
            "writing scale set capacity"
        );
        self.write_capacity(capacity, etag, running).await
    }
}

/// Why a capacity that is already written is not a success: the scale set's provisioning
/// failed. Says how many VMs run (the status shows it) and the first VM failure.
fn failed_detail(capacity: u32, census: &Result<VmCensus, ArmError>) -> String {
    let vms = match census {
        Ok(c) => {
            let mut text = format!("{} of {} VMs running", c.running, c.total);
            if c.failed > 0 {
                text.push_str(&format!(", {} failed to provision", c.failed));
                if let Some(first) = &c.first_failure {
                    text.push_str(&format!(" ({})", short_text(first)));
                }
            }
            text
        }
        Err(e) => format!("running VMs unknown ({e})"),
    };
    format!(
        "the scale set's provisioningState is Failed: capacity {capacity} is written but its \
         last operation failed; {vms}"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn write_errors_map_to_outcomes() {
        let none = HeaderMap::new();
        let conflict = br#"{"error":{"code":"Conflict","message":"busy"}}"#;
        assert_eq!(
            classify_write_error(StatusCode::CONFLICT, &none, conflict),
            ScaleResult::Conflict {
                detail: "HTTP 409 Conflict: busy".into()
            }
        );
        let not_allowed =
            br#"{"error":{"code":"OperationNotAllowed","message":"marked for deletion"}}"#;
        assert!(matches!(
            classify_write_error(StatusCode::CONFLICT, &none, not_allowed),
            ScaleResult::Conflict { .. }
        ));
        assert_eq!(
            classify_write_error(StatusCode::PRECONDITION_FAILED, &none, b""),
            ScaleResult::Conflict {
                detail: "HTTP 412 PreconditionFailed: no error body".into()
            }
        );
        let preempted = br#"{"error":{"code":"OperationPreempted","message":"Operation execution has been preempted by a more recent operation."}}"#;
        assert!(matches!(
            classify_write_error(StatusCode::BAD_REQUEST, &none, preempted),
            ScaleResult::Conflict { .. }
        ));
        let bare = br#"{"code":"OperationNotAllowed","message":"too many"}"#;
        assert_eq!(
            classify_write_error(
                StatusCode::TOO_MANY_REQUESTS,
                &headers(&[("retry-after", "1200")]),
                bare
            ),
            ScaleResult::Throttled {
                retry_after_s: 1200
            }
        );
        assert_eq!(
            classify_write_error(StatusCode::TOO_MANY_REQUESTS, &none, bare),
            ScaleResult::Throttled { retry_after_s: 60 }
        );
        let invalid = br#"{"error":{"code":"InvalidParameter","message":"bad capacity","target":"sku.capacity"}}"#;
        assert_eq!(
            classify_write_error(StatusCode::BAD_REQUEST, &none, invalid),
            ScaleResult::Failed {
                detail: "HTTP 400 InvalidParameter: bad capacity (target sku.capacity)".into()
            }
        );
        assert_eq!(
            classify_write_error(StatusCode::BAD_GATEWAY, &none, b"<html>oops</html>"),
            ScaleResult::Failed {
                detail: "HTTP 502 BadGateway: <html>oops</html>".into()
            }
        );
    }

    /// A credential these URL tests never ask.
    #[derive(Debug)]
    struct Unused;

    #[async_trait]
    impl TokenCredential for Unused {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            unreachable!("no request is made")
        }
    }

    fn client_for(endpoint: &str) -> ArmScaleSet {
        let id = ScaleSetId::new("00000000-0000-4000-8000-000000000000", "rg", "vmss").unwrap();
        let mut config = ArmConfig::new(
            id,
            crate::token::Credential::ManagedIdentity { client_id: None },
        );
        config.endpoint = Url::parse(endpoint).unwrap();
        ArmScaleSet::new(config, Arc::new(Unused)).unwrap()
    }

    #[test]
    fn next_links_stay_on_the_endpoint_and_keep_the_expansion() {
        let arm = client_for("https://management.azure.com");
        let same = "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss/virtualMachines?api-version=2024-11-01&$expand=instanceView&$skiptoken=abc";
        assert_eq!(arm.next_page_url(same).unwrap().as_str(), same);
        // A link without them gets the api-version and the expansion back.
        let bare = arm
            .next_page_url("https://management.azure.com:443/x/virtualMachines?$skiptoken=abc")
            .unwrap();
        assert_eq!(
            bare.query(),
            Some("$skiptoken=abc&api-version=2025-11-01&%24expand=instanceView")
        );
        // The token never follows a link elsewhere.
        for elsewhere in [
            "https://attacker.example/subscriptions/s/virtualMachines?$skiptoken=1",
            "http://management.azure.com/x?$skiptoken=1",
            "https://management.azure.com:8443/x?$skiptoken=1",
        ] {
            let e = arm.next_page_url(elsewhere).unwrap_err();
            assert!(e.to_string().contains("not following it"), "{e}");
        }
        assert!(arm.next_page_url("aaaaaaaaaaaaaa").is_err());
    }

    #[test]
    fn failed_detail_says_what_runs() {
        let census = Ok(VmCensus {
            total: 3,
            running: 1,
            failed: 2,
            first_failure: Some(
                "ProvisioningState/failed/AllocationFailed: Allocation failed.".into(),
            ),
        });
        assert_eq!(
            failed_detail(3, &census),
            "the scale set's provisioningState is Failed: capacity 3 is written but its last \
             operation failed; 1 of 3 VMs running, 2 failed to provision \
             (ProvisioningState/failed/AllocationFailed: Allocation failed.)"
        );
        let unknown = Err(ArmError::Transport("timed out".into()));
        assert!(
            failed_detail(3, &unknown)
                .ends_with("running VMs unknown (ARM unreachable: timed out)")
        );
    }

    #[test]
    fn view_refuses_unusable_capacity() {
        let body = |cap: &str| -> ScaleSetBody {
            serde_json::from_str(&format!(r#"{{"sku":{{"capacity":{cap}}},"etag":"\"1\""}}"#))
                .unwrap()
        };
        assert_eq!(ScaleSetView::from_body(&body("4")).unwrap().capacity, 4);
        assert!(ScaleSetView::from_body(&body("-1")).is_err());
        assert!(ScaleSetView::from_body(&body("4294967296")).is_err());
        assert!(ScaleSetView::from_body(&body("null")).is_err());
        assert!(serde_json::from_str::<ScaleSetBody>(r#"{"sku":{"capacity":1.5}}"#).is_err());
    }
}
