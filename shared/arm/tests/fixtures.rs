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

#[test]
fn scale_set_get() {
    let body: ScaleSetBody =
        serde_json::from_str(&response_body("VirtualMachineScaleSet_Get.json", "200")).unwrap();
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
    let raw = response_body("VirtualMachineScaleSet_Update_MinimumSet_Gen.json", "200");
    let body: ScaleSetBody = serde_json::from_str(&raw).unwrap();
    assert_eq!(body.sku, None);
    // A body without sku.capacity must never turn into a number.
    assert!(ScaleSetView::from_body(&body).is_err());
    // The request of that example is the empty sparse body.
    let ex = example("VirtualMachineScaleSet_Update_MinimumSet_Gen.json");
    assert_eq!(ex["parameters"]["parameters"], serde_json::json!({}));
}

#[test]
fn scale_set_instance_view() {
    let raw = response_body(
        "VirtualMachineScaleSet_GetInstanceView_MaximumSet_Gen.json",
        "200",
    );
    let view: ScaleSetInstanceView = serde_json::from_str(&raw).unwrap();
    assert_eq!(view.count_of("aa"), 21);
    assert_eq!(view.count_of("PowerState/running"), 0);
    assert_eq!(view.statuses[0].code, "ProvisioningState/succeeded");
}

/// A real `.../instanceView` answer (quoted in azure-rest-api-specs issue #3593): the summary
/// counts provisioning states only. A running count taken from it reads 0 whatever runs, which
/// is why the client counts power states from the VM list instead.
#[test]
fn real_instance_view_summary_has_no_power_states() {
    let raw = response_body(
        "VirtualMachineScaleSet_GetInstanceView_Issue3593.json",
        "200",
    );
    let view: ScaleSetInstanceView = serde_json::from_str(&raw).unwrap();
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
    let raw = response_body(
        "VirtualMachineScaleSetVM_List_MaximumSet_Gen.trimmed.json",
        "200",
    );
    let page: VmListPage = serde_json::from_str(&raw).unwrap();
    assert_eq!(page.value.len(), 1);
    assert_eq!(page.next_link.as_deref(), Some("aaaaaaaaaaaaaa"));
    assert_eq!(page.value[0].instance_id.as_deref(), Some("aaaaaaaaaaaa"));
    let mut census = VmCensus::default();
    census.add_page(&page);
    assert_eq!((census.total, census.running, census.failed), (1, 0, 0));

    let mut body: Value = serde_json::from_str(&raw).unwrap();
    body["value"][0]["properties"]["instanceView"] = example(
        "VirtualMachineScaleSetVM_Get_InstanceViewAutoPlacedOnDedicatedHostGroup.json",
    )["responses"]["200"]["body"]
        .clone();
    let page: VmListPage = serde_json::from_value(body).unwrap();
    let mut census = VmCensus::default();
    census.add_page(&page);
    assert_eq!((census.total, census.running, census.failed), (1, 1, 0));
}

#[test]
fn vm_instance_view() {
    let raw = response_body(
        "VirtualMachineScaleSetVM_Get_InstanceViewAutoPlacedOnDedicatedHostGroup.json",
        "200",
    );
    let view: VmInstanceView = serde_json::from_str(&raw).unwrap();
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
    let sim = burst_arm_sim::start(burst_arm_sim::SimConfig {
        initial_capacity: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let token: Value = http
        .get(format!(
            "{}?resource=https://management.azure.com/&api-version=2019-08-01",
            sim.identity_endpoint()
        ))
        .header("X-IDENTITY-HEADER", sim.identity_header())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = http
        .get(format!(
            "{}{}?api-version=2025-11-01",
            sim.base_url(),
            sim.scale_set_id()
        ))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sim_body: Value = resp.json().await.unwrap();
    let fixture: Value =
        serde_json::from_str(&response_body("VirtualMachineScaleSet_Get.json", "200")).unwrap();
    for key in fixture.as_object().unwrap().keys() {
        assert!(sim_body.get(key).is_some(), "sim body lacks {key}");
    }
    for key in fixture["sku"].as_object().unwrap().keys() {
        assert!(sim_body["sku"].get(key).is_some(), "sim sku lacks {key}");
    }
    for key in [
        "provisioningState",
        "virtualMachineProfile",
        "timeCreated",
        "overprovision",
    ] {
        assert!(
            sim_body["properties"].get(key).is_some(),
            "sim properties lack {key}"
        );
    }
    assert_eq!(sim_body["etag"], "\"1\"");
    let parsed: ScaleSetBody = serde_json::from_value(sim_body).unwrap();
    let view = ScaleSetView::from_body(&parsed).unwrap();
    assert_eq!(view.capacity, 2);
    assert_eq!(view.priority.as_deref(), Some("Spot"));
    assert_eq!(view.eviction_policy.as_deref(), Some("Delete"));
    assert_eq!(view.max_price, Some(-1.0));
    assert_eq!(view.provisioning_state.as_deref(), Some("Succeeded"));
}

async fn sim_get(sim: &burst_arm_sim::SimHandle, suffix_and_query: &str) -> (u16, Value) {
    let http = reqwest::Client::new();
    let token: Value = http
        .get(format!(
            "{}?resource=https://management.azure.com/&api-version=2019-08-01",
            sim.identity_endpoint()
        ))
        .header("X-IDENTITY-HEADER", sim.identity_header())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// The sim's scale set instance view has the real response's shape (issue #3593): a summary of
/// provisioning states and no power state, however many VMs run or boot.
#[tokio::test]
async fn sim_instance_view_is_shaped_like_the_real_one() {
    let sim = burst_arm_sim::start(burst_arm_sim::SimConfig {
        initial_capacity: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let (status, body) = sim_get(&sim, "/instanceView?api-version=2025-11-01").await;
    assert_eq!(status, 200);
    let real: Value = serde_json::from_str(&response_body(
        "VirtualMachineScaleSet_GetInstanceView_Issue3593.json",
        "200",
    ))
    .unwrap();
    assert_eq!(
        body["virtualMachine"]["statusesSummary"],
        real["virtualMachine"]["statusesSummary"]
    );
    for key in real["statuses"][0].as_object().unwrap().keys() {
        assert!(
            body["statuses"][0].get(key).is_some(),
            "sim status lacks {key}"
        );
    }
}

/// The sim's VM list has the list example's envelope (`value`, `nextLink` when paged) and each
/// VM's instance view has the per-VM example's status fields.
#[tokio::test]
async fn sim_vm_list_is_shaped_like_the_examples() {
    let sim = burst_arm_sim::start(burst_arm_sim::SimConfig {
        initial_capacity: 3,
        vm_page_size: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let (status, body) = sim_get(
        &sim,
        "/virtualMachines?api-version=2025-11-01&$expand=instanceView",
    )
    .await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&response_body(
        "VirtualMachineScaleSetVM_List_MaximumSet_Gen.trimmed.json",
        "200",
    ))
    .unwrap();
    for key in list.as_object().unwrap().keys() {
        assert!(body.get(key).is_some(), "sim list lacks {key}");
    }
    for key in [
        "name",
        "id",
        "type",
        "location",
        "instanceId",
        "sku",
        "properties",
    ] {
        assert!(body["value"][0].get(key).is_some(), "sim VM lacks {key}");
    }
    let per_vm = example(
        "VirtualMachineScaleSetVM_Get_InstanceViewAutoPlacedOnDedicatedHostGroup.json",
    )["responses"]["200"]["body"]
        .clone();
    let sim_view = &body["value"][0]["properties"]["instanceView"];
    for (i, status) in per_vm["statuses"].as_array().unwrap().iter().enumerate() {
        assert_eq!(sim_view["statuses"][i]["code"], status["code"]);
        for key in ["code", "level", "displayStatus"] {
            assert!(
                sim_view["statuses"][i].get(key).is_some(),
                "sim status lacks {key}"
            );
        }
    }
    let page: VmListPage = serde_json::from_value(body).unwrap();
    assert_eq!(page.value.len(), 2);
    assert!(page.next_link.unwrap().contains("$skiptoken=2"));
}
