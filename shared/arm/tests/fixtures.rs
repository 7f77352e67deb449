//! The client's response types against Azure's published example payloads
//! (tests/fixtures, see SOURCES.md there), and the sim's bodies against the same shapes.
#![allow(clippy::unwrap_used)]

use burst_arm::ScaleSetView;
use burst_arm::wire::{
    ScaleSetBody, ScaleSetInstanceView, VmCensus, VmInstanceView, VmListPage, parse_error_body,
};
use serde_json::Value;

fn example(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn response_body(name: &str, status: &str) -> String {
    example(name)["responses"][status]["body"].to_string()
}

/// The 200 answer's body of the example `name`, read as `T`.
fn ok_body<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_str(&response_body(name, "200")).unwrap()
}

/// Every one of `keys` is a field of `value` (`what` names `value` in a failure).
fn assert_has<'a>(value: &Value, keys: impl IntoIterator<Item = &'a str>, what: &str) {
    for key in keys {
        assert!(value.get(key).is_some(), "{what} lacks {key}");
    }
}

/// The field names of the object `value`.
fn keys_of(value: &Value) -> impl Iterator<Item = &str> {
    value.as_object().unwrap().keys().map(String::as_str)
}

/// The sim with `initial_capacity` VMs, listed `vm_page_size` a page (else as by default).
async fn start_sim(initial_capacity: u32, vm_page_size: Option<usize>) -> burst_arm_sim::SimHandle {
    let defaults = burst_arm_sim::SimConfig::default();
    burst_arm_sim::start(burst_arm_sim::SimConfig {
        initial_capacity,
        vm_page_size: vm_page_size.unwrap_or(defaults.vm_page_size),
        ..defaults
    })
    .await
    .unwrap()
}

#[test]
fn scale_set_get() {
    let body: ScaleSetBody = ok_body("VirtualMachineScaleSet_Get.json");
    assert_eq!(body.name.as_deref(), Some("myVirtualMachineScaleSet"));
    let view = ScaleSetView::from_body(&body).unwrap();
    assert_eq!(view.capacity, 4);
    // The etag keeps its quotes: it goes back verbatim in If-Match.
    assert_eq!(view.etag.as_deref(), Some("\"1\""));
    // Lower case in the example, "Succeeded" elsewhere: compared case-insensitively.
    assert_eq!(view.provisioning_state.as_deref(), Some("succeeded"));
    assert_eq!(view.priority, None);
    assert_eq!(view.max_price, None);
    let sku = body.sku.unwrap();
    assert_eq!(sku.name.as_deref(), Some("Standard_D2s_v3"));
    assert_eq!(sku.tier.as_deref(), Some("Standard"));
}

#[test]
fn scale_set_update_response_without_sku_is_not_a_capacity() {
    let body: ScaleSetBody = ok_body("VirtualMachineScaleSet_Update_MinimumSet_Gen.json");
    assert_eq!(body.sku, None);
    // A body without sku.capacity must never turn into a number.
    assert!(ScaleSetView::from_body(&body).is_err());
    // The request of that example is the empty sparse body.
    let ex = example("VirtualMachineScaleSet_Update_MinimumSet_Gen.json");
    assert_eq!(ex["parameters"]["parameters"], serde_json::json!({}));
}

#[test]
fn scale_set_instance_view() {
    let view: ScaleSetInstanceView =
        ok_body("VirtualMachineScaleSet_GetInstanceView_MaximumSet_Gen.json");
    assert_eq!(view.count_of("aa"), 21);
    assert_eq!(view.count_of("PowerState/running"), 0);
    assert_eq!(view.statuses[0].code, "ProvisioningState/succeeded");
}

/// A real `.../instanceView` answer (quoted in azure-rest-api-specs issue #3593): the summary
/// counts provisioning states only. A running count taken from it reads 0 whatever runs, which
/// is why the client counts power states from the VM list instead.
#[test]
fn real_instance_view_summary_has_no_power_states() {
    let view: ScaleSetInstanceView =
        ok_body("VirtualMachineScaleSet_GetInstanceView_Issue3593.json");
    let summary = &view.virtual_machine.as_ref().unwrap().statuses_summary;
    assert_eq!(view.count_of("ProvisioningState/succeeded"), 2);
    assert!(
        summary
            .iter()
            .all(|s| s.code.starts_with("ProvisioningState/")),
        "{summary:?}"
    );
    assert_eq!(view.count_of("PowerState/running"), 0);
}

/// The VM list (trimmed from `VirtualMachineScaleSetVM_List_MaximumSet_Gen.json`): a page of
/// VMs with `nextLink`. Its generated status codes are placeholders, so nothing runs; with the
/// instance view of `VirtualMachineScaleSetVM_Get_InstanceViewAutoPlacedOnDedicatedHostGroup.json`
/// in its place (the same `VirtualMachineScaleSetVMInstanceView` type), the VM runs.
#[test]
fn vm_list_counts_power_states_per_vm() {
    let mut body: Value = ok_body("VirtualMachineScaleSetVM_List_MaximumSet_Gen.trimmed.json");
    let page: VmListPage = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(page.value.len(), 1);
    assert_eq!(page.next_link.as_deref(), Some("aaaaaaaaaaaaaa"));
    assert_eq!(page.value[0].instance_id.as_deref(), Some("aaaaaaaaaaaa"));
    let mut census = VmCensus::default();
    census.add_page(&page);
    assert_eq!((census.total, census.running, census.failed), (1, 0, 0));

    body["value"][0]["properties"]["instanceView"] =
        ok_body("VirtualMachineScaleSetVM_Get_InstanceViewAutoPlacedOnDedicatedHostGroup.json");
    let page: VmListPage = serde_json::from_value(body).unwrap();
    let mut census = VmCensus::default();
    census.add_page(&page);
    assert_eq!((census.total, census.running, census.failed), (1, 1, 0));
}

#[test]
fn vm_instance_view() {
    let view: VmInstanceView =
        ok_body("VirtualMachineScaleSetVM_Get_InstanceViewAutoPlacedOnDedicatedHostGroup.json");
    assert_eq!(view.power_state().as_deref(), Some("running"));
    assert!(view.is_running());
    assert!(view.provisioning_failure().is_none());
    assert_eq!(view.statuses.len(), 2);
}

#[test]
fn simulate_eviction_answers_204_without_body() {
    let ex = example("VirtualMachineScaleSetVM_SimulateEviction.json");
    let responses = ex["responses"].as_object().unwrap();
    assert_eq!(responses.keys().collect::<Vec<_>>(), vec!["204"]);
    assert_eq!(responses["204"], serde_json::json!({}));
    assert_eq!(ex["parameters"]["instanceId"], "InstanceId");
}

#[test]
fn error_bodies_in_both_shapes() {
    let wrapped = br#"{"error":{"code":"LinkedAuthorizationFailed","message":"The client has permission to perform action 'Microsoft.Compute/virtualMachineScaleSets/write'","details":[]}}"#;
    let e = parse_error_body(wrapped).unwrap();
    assert_eq!(e.code, "LinkedAuthorizationFailed");
    assert!(e.message.starts_with("The client has permission"));
    let bare = br#"{"code":"OperationNotAllowed","message":"The server rejected the request because too many requests have been received for this subscription."}"#;
    let e = parse_error_body(bare).unwrap();
    assert_eq!(e.code, "OperationNotAllowed");
    assert!(e.target.is_none() && e.details.is_empty());
}

/// The sim's scale set body has every top-level and `sku` field of Azure's example, and the
/// client reads it the same way.
#[tokio::test]
async fn sim_body_is_shaped_like_the_example() {
    let sim = start_sim(2, None).await;
    let sim_body = sim_get(&sim, "?api-version=2025-11-01").await;
    let fixture: Value = ok_body("VirtualMachineScaleSet_Get.json");
    assert_has(&sim_body, keys_of(&fixture), "sim body");
    assert_has(&sim_body["sku"], keys_of(&fixture["sku"]), "sim sku");
    let properties = [
        "provisioningState",
        "virtualMachineProfile",
        "timeCreated",
        "overprovision",
    ];
    assert_has(&sim_body["properties"], properties, "sim properties");
    assert_eq!(sim_body["etag"], "\"1\"");
    let parsed: ScaleSetBody = serde_json::from_value(sim_body).unwrap();
    let view = ScaleSetView::from_body(&parsed).unwrap();
    assert_eq!(view.capacity, 2);
    assert_eq!(view.priority.as_deref(), Some("Spot"));
    assert_eq!(view.eviction_policy.as_deref(), Some("Delete"));
    assert_eq!(view.max_price, Some(-1.0));
    assert_eq!(view.provisioning_state.as_deref(), Some("Succeeded"));
}

/// `GET` of the scale set's URL with `suffix_and_query`, with a token from the sim's identity
/// endpoint: the answer, which must be a 200.
async fn sim_get(sim: &burst_arm_sim::SimHandle, suffix_and_query: &str) -> Value {
    let http = reqwest::Client::new();
    let resource = "resource=https://management.azure.com/&api-version=2019-08-01";
    let identity = http
        .get(format!("{}?{resource}", sim.identity_endpoint()))
        .header("X-IDENTITY-HEADER", sim.identity_header())
        .send()
        .await
        .unwrap();
    let token: Value = identity.json().await.unwrap();
    let resp = http
        .get(format!(
            "{}{}{suffix_and_query}",
            sim.base_url(),
            sim.scale_set_id()
        ))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The sim's scale set instance view has the real response's shape (issue #3593): a summary of
/// provisioning states and no power state, however many VMs run or boot.
#[tokio::test]
async fn sim_instance_view_is_shaped_like_the_real_one() {
    let sim = start_sim(2, None).await;
    let body = sim_get(&sim, "/instanceView?api-version=2025-11-01").await;
    let real: Value = ok_body("VirtualMachineScaleSet_GetInstanceView_Issue3593.json");
    assert_eq!(
        body["virtualMachine"]["statusesSummary"],
        real["virtualMachine"]["statusesSummary"]
    );
    let status = &real["statuses"][0];
    assert_has(&body["statuses"][0], keys_of(status), "sim status");
}

/// The sim's VM list has the list example's envelope (`value`, `nextLink` when paged) and each
/// VM's instance view has the per-VM example's status fields.
#[tokio::test]
async fn sim_vm_list_is_shaped_like_the_examples() {
    let sim = start_sim(3, Some(2)).await;
    let query = "?api-version=2025-11-01&$expand=instanceView";
    let body = sim_get(&sim, &format!("/virtualMachines{query}")).await;
    let list: Value = ok_body("VirtualMachineScaleSetVM_List_MaximumSet_Gen.trimmed.json");
    assert_has(&body, keys_of(&list), "sim list");
    let vm = [
        "name",
        "id",
        "type",
        "location",
        "instanceId",
        "sku",
        "properties",
    ];
    assert_has(&body["value"][0], vm, "sim VM");
    let per_vm: Value =
        ok_body("VirtualMachineScaleSetVM_Get_InstanceViewAutoPlacedOnDedicatedHostGroup.json");
    let sim_view = &body["value"][0]["properties"]["instanceView"];
    for (i, status) in per_vm["statuses"].as_array().unwrap().iter().enumerate() {
        assert_eq!(sim_view["statuses"][i]["code"], status["code"]);
        let fields = ["code", "level", "displayStatus"];
        assert_has(&sim_view["statuses"][i], fields, "sim status");
    }
    let page: VmListPage = serde_json::from_value(body).unwrap();
    assert_eq!(page.value.len(), 2);
    assert!(page.next_link.unwrap().contains("$skiptoken=2"));
}
