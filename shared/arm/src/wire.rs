//! The JSON shapes ARM sends and the header values it uses, as the client reads them.
//!
//! Only the fields the client needs are typed; everything else in the (large) scale set body is
//! ignored. Parsing is lenient where Azure is known to vary (casing of `provisioningState`,
//! counts as strings in old API versions, two error body shapes) and strict where a wrong
//! value would be dangerous (a capacity must be a non-negative integer).

use serde::{Deserialize, Deserializer};
use std::time::{Duration, SystemTime};

/// `GET .../virtualMachineScaleSets/{name}`: the parts the client uses.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ScaleSetBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub sku: Option<Sku>,
    /// The resource's version, e.g. `"1"` including the quotes; sent back in `If-Match`.
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub properties: Option<ScaleSetProperties>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Sku {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
    /// What was asked for (not what runs). Kept as i64 so a negative value is seen, not
    /// silently wrapped.
    #[serde(default)]
    pub capacity: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetProperties {
    #[serde(default)]
    pub provisioning_state: Option<String>,
    /// `Uniform` or `Flexible`; absent in old api-versions and for scale sets created before
    /// Flexible existed, which are Uniform.
    #[serde(default)]
    pub orchestration_mode: Option<String>,
    #[serde(default)]
    pub virtual_machine_profile: Option<VmProfile>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmProfile {
    /// `Regular`, `Low` or `Spot`.
    #[serde(default)]
    pub priority: Option<String>,
    /// `Deallocate` or `Delete` (Spot only).
    #[serde(default)]
    pub eviction_policy: Option<String>,
    #[serde(default)]
    pub billing_profile: Option<BillingProfile>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingProfile {
    /// USD per hour; -1 = up to the on-demand price.
    #[serde(default)]
    pub max_price: Option<f64>,
}

/// `GET .../virtualMachineScaleSets/{name}/instanceView` (Uniform scale sets only).
///
/// Its `virtualMachine.statusesSummary` counts **provisioning** states only in real responses
/// (e.g. `[{"code":"ProvisioningState/succeeded","count":2}]`, azure-rest-api-specs issue
/// #3593): it carries no `PowerState/*`, so the running VMs cannot be counted from it. The
/// client counts them from the VM list ([`VmListPage`]) instead.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetInstanceView {
    #[serde(default)]
    pub virtual_machine: Option<VmSummary>,
    #[serde(default)]
    pub statuses: Vec<InstanceViewStatus>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmSummary {
    #[serde(default)]
    pub statuses_summary: Vec<StatusCount>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct StatusCount {
    pub code: String,
    /// A number today; a string in old API versions.
    #[serde(deserialize_with = "count_from_number_or_string")]
    pub count: u64,
}

/// One `statuses[]` entry (scale set or VM instance view).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceViewStatus {
    pub code: String,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub display_status: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// A VM's own instance view (`.../virtualMachines/{id}/instanceView`, or inside the VM list
/// with `$expand=instanceView`): a `ProvisioningState/...` and a `PowerState/...` status.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct VmInstanceView {
    #[serde(default)]
    pub statuses: Vec<InstanceViewStatus>,
}

/// One page of `GET .../virtualMachineScaleSets/{name}/virtualMachines?$expand=instanceView`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmListPage {
    #[serde(default)]
    pub value: Vec<ScaleSetVm>,
    /// The URL of the next page (absent or empty on the last one).
    #[serde(default)]
    pub next_link: Option<String>,
}

/// One VM of a (Uniform) scale set, as the VM list gives it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetVm {
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub properties: Option<ScaleSetVmProperties>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSetVmProperties {
    #[serde(default)]
    pub provisioning_state: Option<String>,
    /// Present only when the list was asked for with `$expand=instanceView`.
    #[serde(default)]
    pub instance_view: Option<VmInstanceView>,
}

/// The code that counts as running. `PowerState/starting` is deliberately not counted: a VM
/// that is still booting is not a Kubernetes node yet, and the core compares `running` with
/// the capacity to see how far a burst has got.
pub const POWER_RUNNING: &str = "PowerState/running";

impl ScaleSetInstanceView {
    /// The summed count of a status code (case-insensitive).
    pub fn count_of(&self, code: &str) -> u64 {
        self.virtual_machine
            .as_ref()
            .map(|vm| {
                vm.statuses_summary
                    .iter()
                    .filter(|s| s.code.eq_ignore_ascii_case(code))
                    .fold(0u64, |acc, s| acc.saturating_add(s.count))
            })
            .unwrap_or(0)
    }
}

impl VmInstanceView {
    /// The `PowerState/...` of this VM, lower-cased after the slash (`running`, `starting`...).
    pub fn power_state(&self) -> Option<String> {
        self.statuses.iter().find_map(|s| {
            let (kind, value) = s.code.split_once('/')?;
            kind.eq_ignore_ascii_case("PowerState")
                .then(|| value.to_ascii_lowercase())
        })
    }

    /// Whether the power state is `PowerState/running` (case-insensitive: both `running` and
    /// `Running` occur).
    pub fn is_running(&self) -> bool {
        self.statuses
            .iter()
            .any(|s| s.code.eq_ignore_ascii_case(POWER_RUNNING))
    }

    /// The `ProvisioningState/failed...` status of this VM, if its provisioning failed (e.g.
    /// `ProvisioningState/failed/AllocationFailed` when no Spot capacity was found).
    pub fn provisioning_failure(&self) -> Option<&InstanceViewStatus> {
        const FAILED: &str = "ProvisioningState/failed";
        self.statuses.iter().find(|s| {
            s.code
                .get(..FAILED.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(FAILED))
        })
    }
}

/// What the VM list says about a scale set's VMs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmCensus {
    /// VMs listed.
    pub total: u32,
    /// VMs whose power state is `PowerState/running`.
    pub running: u32,
    /// VMs whose provisioning failed.
    pub failed: u32,
    /// The first provisioning failure seen (its code and message), for a detail line.
    pub first_failure: Option<String>,
}

impl VmCensus {
    /// Adds one page of the VM list.
    pub fn add_page(&mut self, page: &VmListPage) {
        for vm in &page.value {
            self.total = self.total.saturating_add(1);
            let Some(view) = vm
                .properties
                .as_ref()
                .and_then(|p| p.instance_view.as_ref())
            else {
                continue;
            };
            if view.is_running() {
                self.running = self.running.saturating_add(1);
            }
            if let Some(f) = view.provisioning_failure() {
                self.failed = self.failed.saturating_add(1);
                if self.first_failure.is_none() {
                    let message = f.message.as_deref().unwrap_or("").trim();
                    self.first_failure = Some(if message.is_empty() {
                        f.code.clone()
                    } else {
                        format!("{}: {message}", f.code)
                    });
                }
            }
        }
    }
}

fn count_from_number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Count {
        N(u64),
        S(String),
    }
    match Count::deserialize(d)? {
        Count::N(n) => Ok(n),
        Count::S(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom("count is not a non-negative integer")),
    }
}

/// `GET {Azure-AsyncOperation}`: a long-running operation's status.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct OperationStatus {
    /// `InProgress`, `Succeeded`, `Failed` or `Canceled`.
    pub status: String,
    #[serde(default)]
    pub error: Option<ErrorDetail>,
}

/// An ARM error: `code`, `message`, optional `target` and nested `details`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub details: Vec<ErrorDetail>,
}

impl ErrorDetail {
    /// Whether this error or one of its details carries `code` (case-insensitive).
    pub fn has_code(&self, code: &str) -> bool {
        self.code.eq_ignore_ascii_case(code) || self.details.iter().any(|d| d.has_code(code))
    }
}

/// Parses an ARM error body in either shape: `{"error":{"code","message",...}}` (the
/// documented one) or the bare `{"code","message"}` that Compute sends with some 429s.
pub fn parse_error_body(body: &[u8]) -> Option<ErrorDetail> {
    #[derive(Deserialize)]
    struct Wrapped {
        error: ErrorDetail,
    }
    if let Ok(w) = serde_json::from_slice::<Wrapped>(body) {
        return Some(w.error);
    }
    let bare: ErrorDetail = serde_json::from_slice(body).ok()?;
    (!bare.code.is_empty()).then_some(bare)
}

/// What to wait before asking again after a 429 (or a 202's polling hint).
pub const DEFAULT_RETRY_AFTER_S: u64 = 60;

/// `Retry-After`: integer seconds or an HTTP date (relative to `now`); absent or unreadable →
/// 60 s; a date in the past → 0.
pub fn retry_after_s(value: Option<&str>, now: SystemTime) -> u64 {
    let Some(v) = value.map(str::trim) else {
        return DEFAULT_RETRY_AFTER_S;
    };
    if let Ok(secs) = v.parse::<u64>() {
        return secs;
    }
    match httpdate::parse_http_date(v) {
        Ok(at) => at
            .duration_since(now)
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .unwrap_or(0),
        Err(_) => DEFAULT_RETRY_AFTER_S,
    }
}

/// Rounds a duration up to whole seconds (for `Retry-After` headers the sim sends).
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after_s(Some("1200"), now), 1200);
        assert_eq!(retry_after_s(Some(" 7 "), now), 7);
        assert_eq!(retry_after_s(None, now), 60);
        assert_eq!(retry_after_s(Some("soon"), now), 60);
        assert_eq!(retry_after_s(Some("-5"), now), 60);
        assert_eq!(
            retry_after_s(Some("Sun, 06 Nov 1994 08:51:37 GMT"), now),
            120
        );
        assert_eq!(retry_after_s(Some("Sun, 06 Nov 1994 08:00:00 GMT"), now), 0);
    }

    #[test]
    fn both_error_shapes() {
        let wrapped = br#"{"error":{"code":"PreconditionFailed","message":"The condition specified using HTTP conditional header(s) is not met.","target":"If-Match","details":[{"code":"Inner","message":"m"}]}}"#;
        let e = parse_error_body(wrapped).unwrap();
        assert_eq!(e.code, "PreconditionFailed");
        assert_eq!(e.target.as_deref(), Some("If-Match"));
        assert!(e.has_code("inner"));
        let bare = br#"{"code":"OperationNotAllowed","message":"too many requests"}"#;
        let e = parse_error_body(bare).unwrap();
        assert_eq!(e.code, "OperationNotAllowed");
        assert_eq!(e.message, "too many requests");
        assert!(parse_error_body(b"<html>bad gateway</html>").is_none());
        assert!(parse_error_body(br#"{"status":"x"}"#).is_none());
        assert!(parse_error_body(b"").is_none());
    }

    #[test]
    fn counts_as_strings_and_mixed_case() {
        let v: ScaleSetInstanceView = serde_json::from_str(
            r#"{"virtualMachine":{"statusesSummary":[
                {"code":"ProvisioningState/succeeded","count":"3"},
                {"code":"ProvisioningState/Succeeded","count":2},
                {"code":"ProvisioningState/creating","count":4}]}}"#,
        )
        .unwrap();
        assert_eq!(v.count_of("provisioningstate/succeeded"), 5);
        assert_eq!(v.count_of("ProvisioningState/creating"), 4);
        assert!(
            serde_json::from_str::<StatusCount>(r#"{"code":"x","count":"-1"}"#).is_err(),
            "negative counts are refused"
        );
    }

    #[test]
    fn census_counts_running_and_failed_vms() {
        let page: VmListPage = serde_json::from_str(
            r#"{"value":[
              {"instanceId":"0","properties":{"provisioningState":"Succeeded","instanceView":{"statuses":[
                {"code":"ProvisioningState/succeeded","level":"Info"},
                {"code":"PowerState/Running","level":"Info"}]}}},
              {"instanceId":"1","properties":{"provisioningState":"Creating","instanceView":{"statuses":[
                {"code":"ProvisioningState/creating","level":"Info"},
                {"code":"PowerState/starting","level":"Info"}]}}},
              {"instanceId":"2","properties":{"provisioningState":"Failed","instanceView":{"statuses":[
                {"code":"ProvisioningState/failed/AllocationFailed","level":"Error","message":"Allocation failed."},
                {"code":"PowerState/deallocated","level":"Info"}]}}},
              {"instanceId":"3","properties":{"provisioningState":"Succeeded"}}],
             "nextLink":"https://management.azure.com/x?$skiptoken=1"}"#,
        )
        .unwrap();
        let mut census = VmCensus::default();
        census.add_page(&page);
        assert_eq!((census.total, census.running, census.failed), (4, 1, 1));
        assert_eq!(
            census.first_failure.as_deref(),
            Some("ProvisioningState/failed/AllocationFailed: Allocation failed.")
        );
        assert!(page.next_link.is_some());
    }
}
