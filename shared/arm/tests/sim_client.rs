//! The real client (`ArmScaleSet`) against the simulated ARM.
#![allow(clippy::unwrap_used)]

mod support;

use burst_arm::ArmScaleSet;
use burst_arm_sim::{self as sim, Fault, LoggedRequest, SimConfig, SimHandle, Target};
use burst_core::{ScaleResult, ScaleSetProbe};
use burst_ports::Scaler;
use std::time::Duration;

/// Every test's own bound on a call that must not wait out a throttle (not a timing
/// assertion: a call that returns at all within it did not sleep 1200 s).
const CALL_BOUND: Duration = Duration::from_secs(120);

async fn sim_with(capacity: u32, boot: Duration, op: Duration) -> SimHandle {
    sim::start(SimConfig {
        initial_capacity: capacity,
        boot_time: boot,
        operation_duration: op,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn client(sim: &SimHandle) -> ArmScaleSet {
    ArmScaleSet::new(sim.arm_config(), support::SimIdentity::for_sim(sim)).unwrap()
}

/// A sim with `capacity` VMs that boot and operations that finish at once, and a client.
async fn started(capacity: u32) -> (SimHandle, ArmScaleSet) {
    let sim = sim_with(capacity, Duration::ZERO, Duration::ZERO).await;
    let arm = client(&sim);
    (sim, arm)
}

/// A write accepted (or not needed) for `capacity`, with `running` VMs running.
fn accepted(capacity: u32, running: u32) -> ScaleResult {
    ScaleResult::Accepted {
        capacity,
        running: Some(running),
    }
}

/// The detail of `r`, which must be a `kind` result (`Conflict`, `ReadFailed`, `Failed` or
/// `NotApplicable`); any other result fails the test.
fn detail_of(kind: &str, r: ScaleResult) -> String {
    let (got, detail) = match r {
        ScaleResult::Conflict { detail } => ("Conflict", detail),
        ScaleResult::ReadFailed { detail } => ("ReadFailed", detail),
        ScaleResult::Failed { detail } => ("Failed", detail),
        ScaleResult::NotApplicable { detail } => ("NotApplicable", detail),
        other => panic!("expected {kind}, got {other:?}"),
    };
    assert_eq!(got, kind, "expected {kind}, got {got}: {detail}");
    detail
}

/// The detail of an `Unknown` probe; anything else fails the test.
fn unknown(p: ScaleSetProbe) -> String {
    match p {
        ScaleSetProbe::Unknown { detail } => detail,
        other => panic!("expected unknown, got {other:?}"),
    }
}

/// The ARM requests (token requests left out).
fn arm_requests(sim: &SimHandle) -> Vec<LoggedRequest> {
    sim.requests()
        .into_iter()
        .filter(|r| !r.is_token_request())
        .collect()
}

fn patches(sim: &SimHandle) -> Vec<LoggedRequest> {
    arm_requests(sim)
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect()
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(CALL_BOUND, f)
        .await
        .expect("the call returned within the test's bound")
}

#[tokio::test]
async fn observe_reads_capacity_and_running() {
    let (sim, arm) = started(3).await;
    assert_eq!(
        arm.observe().await,
        ScaleSetProbe::Seen {
            capacity: 3,
            running: 3
        }
    );
    // New instances that have not booted yet count in the capacity, not as running.
    sim.set_boot_time(Duration::from_secs(3600));
    assert!(matches!(
        arm.set_capacity(5).await,
        ScaleResult::Accepted { capacity: 5, .. }
    ));
    assert_eq!(
        arm.observe().await,
        ScaleSetProbe::Seen {
            capacity: 5,
            running: 3
        }
    );
    let snap = sim.snapshot();
    assert_eq!((snap.capacity, snap.running, snap.starting), (5, 3, 2));
    // The control API sets a capacity as if it had always been so: all running.
    sim.set_capacity(2);
    assert_eq!(
        arm.observe().await,
        ScaleSetProbe::Seen {
            capacity: 2,
            running: 2
        }
    );
    // Both observe reads carry the api-version and a bearer token; the running VMs come from
    // the VM list with instance views, never from the scale set's instance view summary.
    let id = sim.scale_set_id().to_string();
    for r in arm_requests(&sim).iter().filter(|r| r.method == "GET") {
        if r.path == id {
            assert_eq!(r.query, "api-version=2025-11-01");
        } else {
            assert_eq!(r.path, format!("{id}/virtualMachines"));
            assert_eq!(r.query, "api-version=2025-11-01&%24expand=instanceView");
        }
        assert_eq!(r.header("authorization"), Some("Bearer ***"));
        assert_eq!(r.status, 200);
    }
    assert!(
        !arm_requests(&sim)
            .iter()
            .any(|r| r.path.ends_with("/instanceView"))
    );
}

/// Item: running VMs read 0 on real Azure. The sim answers like Azure: the scale set's instance
/// view summary has provisioning states only, the power states are per VM, and the VM list
/// comes in pages. The client follows `nextLink` and counts `PowerState/running` per VM.
#[tokio::test]
async fn running_vms_are_counted_per_vm_across_pages() {
    let sim = sim::start(SimConfig {
        initial_capacity: 3,
        boot_time: Duration::ZERO,
        operation_duration: Duration::ZERO,
        vm_page_size: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let arm = client(&sim);
    sim.set_boot_time(Duration::from_secs(3600));
    assert!(matches!(
        arm.set_capacity(5).await,
        ScaleResult::Accepted { capacity: 5, .. }
    ));
    sim.clear_requests();
    assert_eq!(
        arm.observe().await,
        ScaleSetProbe::Seen {
            capacity: 5,
            running: 3
        }
    );
    let census = arm.census().await.unwrap();
    assert_eq!((census.total, census.running, census.failed), (5, 3, 0));
    // Three pages of at most two VMs: the first request, then two nextLinks, each with the
    // expansion kept and a skip token.
    let id = sim.scale_set_id().to_string();
    let lists: Vec<LoggedRequest> = arm_requests(&sim)
        .into_iter()
        .filter(|r| r.path == format!("{id}/virtualMachines"))
        .collect();
    assert_eq!(lists.len(), 6, "two censuses of three pages");
    assert_eq!(
        lists[0].query,
        "api-version=2025-11-01&%24expand=instanceView"
    );
    assert!(
        lists[1].query.contains("$skiptoken=2"),
        "{}",
        lists[1].query
    );
    assert!(
        lists[2].query.contains("$skiptoken=4"),
        "{}",
        lists[2].query
    );
    for r in &lists {
        assert!(r.query.contains("expand=instanceView"), "{}", r.query);
        assert_eq!(r.header("authorization"), Some("Bearer ***"));
        assert_eq!(r.status, 200);
    }
}

/// Item: a failed scale-out looks done. The capacity is already the target, but the operation
/// that wrote it failed (no Spot capacity): not `Accepted`, but `Failed` naming the
/// provisioning state, with the running count.
#[tokio::test]
async fn failed_provisioning_with_the_capacity_written_is_failed() {
    let (sim, arm) = started(1).await;
    sim.set_allocation_failure(true);
    // The write itself is accepted (Azure answers 200/202 and fails later).
    assert!(matches!(
        arm.set_capacity(3).await,
        ScaleResult::Accepted { capacity: 3, .. }
    ));
    let snap = sim.snapshot();
    assert_eq!(
        (snap.capacity, snap.running, snap.failed),
        (3, 1, 2),
        "{snap:?}"
    );
    assert_eq!(snap.provisioning_state, "Failed");
    // The level-triggered retry reads capacity 3 == 3: before, that was Accepted.
    let detail = detail_of("Failed", arm.set_capacity(3).await);
    for part in [
        "provisioningState is Failed",
        "1 of 3 VMs running",
        "2 failed to provision",
        "ProvisioningState/failed/AllocationFailed",
    ] {
        assert!(detail.contains(part), "{detail}");
    }
    assert_eq!(patches(&sim).len(), 1, "nothing more was written");
    // observe still reports what is there: the capacity and what runs.
    assert_eq!(
        arm.observe().await,
        ScaleSetProbe::Seen {
            capacity: 3,
            running: 1
        }
    );
    // A different capacity is a new operation (Azure's way out of a failed one): written.
    sim.set_allocation_failure(false);
    assert!(matches!(
        arm.set_capacity(1).await,
        ScaleResult::Accepted { capacity: 1, .. }
    ));
    assert_eq!(sim.snapshot().provisioning_state, "Succeeded");
    assert_eq!(arm.set_capacity(1).await, accepted(1, 1));
}

/// Item: Uniform-only APIs on a Flexible scale set. The sim answers like Azure (the scale set
/// says `orchestrationMode: Flexible`, the VM list is 400 "not allowed"); the adapter refuses
/// with an error naming `BURST_ARM_SCALE_SET_ID` and never writes.
#[tokio::test]
async fn flexible_scale_set_is_refused_naming_the_setting() {
    let sim = sim::start(SimConfig {
        initial_capacity: 1,
        boot_time: Duration::ZERO,
        operation_duration: Duration::ZERO,
        orchestration_mode: "Flexible".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let arm = client(&sim);
    match arm.read().await {
        Err(burst_arm::ArmError::Config(err)) => {
            assert_eq!(err.setting, "BURST_ARM_SCALE_SET_ID");
            assert!(err.problem.contains("Flexible"), "{err}");
        }
        other => panic!("expected the setting to be refused, got {other:?}"),
    }
    let detail = unknown(arm.observe().await);
    assert!(detail.contains("BURST_ARM_SCALE_SET_ID"), "{detail}");
    assert!(detail.contains("Flexible"), "{detail}");
    let detail = detail_of("ReadFailed", arm.set_capacity(3).await);
    assert!(detail.contains("BURST_ARM_SCALE_SET_ID"), "{detail}");
    assert!(patches(&sim).is_empty());
    assert_eq!(sim.capacity(), 1);
    // What Azure answers the Uniform-only calls of a Flexible scale set.
    let list = arm_requests(&sim)
        .into_iter()
        .find(|r| r.path.ends_with("/virtualMachines"))
        .unwrap();
    assert_eq!(list.status, 400);
    match arm.simulate_eviction("0").await {
        Err(burst_arm::ArmError::Http {
            status: 400,
            code,
            message,
        }) => {
            assert_eq!(code, "BadRequest");
            assert!(message.contains("is not allowed"), "{message}");
        }
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn set_capacity_reads_then_patches_sparse_body_with_if_match() {
    let (sim, arm) = started(1).await;
    let id = sim.scale_set_id().to_string();
    assert_eq!(arm.set_capacity(3).await, accepted(3, 1));
    let reqs = arm_requests(&sim);
    let methods_paths: Vec<(String, String)> = reqs
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    // The two reads run concurrently (either order), the write comes last.
    assert_eq!(reqs.len(), 3, "{methods_paths:?}");
    assert!(methods_paths[..2].contains(&("GET".into(), id.clone())));
    assert!(methods_paths[..2].contains(&("GET".into(), format!("{id}/virtualMachines"))));
    let patch = &reqs[2];
    assert_eq!(
        (patch.method.as_str(), patch.path.as_str()),
        ("PATCH", id.as_str())
    );
    assert_eq!(patch.query, "api-version=2025-11-01");
    assert_eq!(patch.body, br#"{"sku":{"capacity":3}}"#);
    assert_eq!(patch.header("if-match"), Some("\"1\""));
    assert_eq!(patch.header("content-type"), Some("application/json"));
    assert_eq!(patch.header("authorization"), Some("Bearer ***"));
    assert_eq!(patch.status, 200);
    let snap = sim.snapshot();
    assert_eq!((snap.capacity, snap.etag), (3, 2));
}

#[tokio::test]
async fn no_write_when_capacity_already_equal() {
    let (sim, arm) = started(2).await;
    assert_eq!(arm.set_capacity(2).await, accepted(2, 2));
    assert!(patches(&sim).is_empty());
    assert_eq!(sim.snapshot().etag, 1);
}

#[tokio::test]
async fn stale_etag_is_a_conflict() {
    let (sim, arm) = started(1).await;
    // Someone else writes between our read and our write.
    sim.inject(Target::Write, 1, Fault::ConcurrentWrite);
    let detail = detail_of("Conflict", arm.set_capacity(4).await);
    assert!(
        detail.starts_with("HTTP 412 PreconditionFailed"),
        "{detail}"
    );
    let p = patches(&sim);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].status, 412);
    assert_eq!(p[0].header("if-match"), Some("\"1\""));
    assert_eq!(sim.capacity(), 1, "the stale write was not applied");
    // Re-read and re-decide: the next call reads the new etag and succeeds.
    assert!(matches!(
        arm.set_capacity(4).await,
        ScaleResult::Accepted { capacity: 4, .. }
    ));
    assert_eq!(patches(&sim)[1].header("if-match"), Some("\"2\""));
}

#[tokio::test]
async fn write_during_a_running_operation_is_a_conflict() {
    let sim = sim_with(0, Duration::ZERO, Duration::from_secs(3600)).await;
    let arm = client(&sim);
    assert_eq!(arm.set_capacity(2).await, accepted(2, 0));
    assert_eq!(patches(&sim)[0].status, 202);
    let snap = sim.snapshot();
    assert!(snap.operation_in_progress);
    assert_eq!(snap.provisioning_state, "Updating");
    let detail = detail_of("Conflict", arm.set_capacity(4).await);
    assert!(detail.starts_with("HTTP 409 Conflict"), "{detail}");
    assert!(detail.contains("in progress"), "{detail}");
    assert_eq!(sim.capacity(), 2);
}

#[tokio::test]
async fn injected_conflicts_and_preemption_are_conflicts() {
    let (sim, arm) = started(1).await;
    sim.inject(Target::Write, 1, Fault::conflict());
    sim.inject(Target::Write, 1, Fault::operation_not_allowed());
    sim.inject(
        Target::Write,
        1,
        Fault::Error {
            status: 400,
            code: "OperationPreempted".into(),
            message: "Operation execution has been preempted by a more recent operation.".into(),
        },
    );
    for want in [
        "409 Conflict",
        "409 OperationNotAllowed",
        "400 OperationPreempted",
    ] {
        let detail = detail_of("Conflict", arm.set_capacity(2).await);
        assert!(detail.contains(want), "{detail}");
    }
    assert_eq!(sim.capacity(), 1);
    assert_eq!(patches(&sim).len(), 3);
}

#[tokio::test]
async fn throttled_write_returns_the_wait_without_sleeping() {
    let (sim, arm) = started(1).await;
    sim.inject(
        Target::Write,
        1,
        Fault::Throttle {
            retry_after: Some("1200".into()),
            bare_body: true,
        },
    );
    assert_eq!(
        bounded(arm.set_capacity(3)).await,
        ScaleResult::Throttled {
            retry_after_s: 1200
        }
    );
    assert_eq!(patches(&sim).len(), 1, "one PATCH, no retry");
    assert_eq!(patches(&sim)[0].status, 429);
    // Without Retry-After: 60 s; wrapped body shape.
    sim.inject(
        Target::Write,
        1,
        Fault::Throttle {
            retry_after: None,
            bare_body: false,
        },
    );
    assert_eq!(
        bounded(arm.set_capacity(3)).await,
        ScaleResult::Throttled { retry_after_s: 60 }
    );
    assert_eq!(sim.capacity(), 1);
}

#[tokio::test]
async fn throttled_read_is_throttled_and_writes_nothing() {
    let (sim, arm) = started(1).await;
    // Both reads of set_capacity are throttled (Compute's HighCostGet budget is shared).
    sim.inject(Target::Read, 2, Fault::throttle(1200));
    assert_eq!(
        bounded(arm.set_capacity(3)).await,
        ScaleResult::Throttled {
            retry_after_s: 1200
        }
    );
    assert!(patches(&sim).is_empty());
    // observe reports it as unknown, with the wait in the detail.
    sim.inject(Target::Read, 2, Fault::throttle(1200));
    let detail = unknown(bounded(arm.observe()).await);
    assert!(detail.contains("1200"), "{detail}");
}

#[tokio::test]
async fn failed_read_never_writes() {
    let (sim, arm) = started(1).await;
    sim.inject(Target::Read, 2, Fault::server_error());
    let detail = detail_of("ReadFailed", arm.set_capacity(3).await);
    assert!(detail.contains("500 InternalServerError"), "{detail}");
    assert!(patches(&sim).is_empty());
    assert_eq!(sim.capacity(), 1);
}

#[tokio::test]
async fn stopped_arm_is_read_failed_and_unknown() {
    let (sim, arm) = started(1).await;
    // A token is cached, so the failure is ARM itself being gone.
    assert!(matches!(arm.observe().await, ScaleSetProbe::Seen { .. }));
    let base = sim.base_url();
    sim.shutdown().await;
    let detail = detail_of("ReadFailed", bounded(arm.set_capacity(3)).await);
    assert!(detail.contains("ARM unreachable"), "{detail}");
    assert!(matches!(
        bounded(arm.observe()).await,
        ScaleSetProbe::Unknown { .. }
    ));
    // Nothing answers there any more.
    assert!(reqwest::get(base).await.is_err());
}

#[tokio::test]
async fn stopped_sim_log_shows_no_patch() {
    let (sim, arm) = started(1).await;
    sim.inject(Target::Read, 1, Fault::server_error());
    let _ = arm.set_capacity(2).await;
    assert!(patches(&sim).is_empty());
    // A token-less start (the whole sim gone) is a failed read as well.
    let cfg = sim.arm_config();
    let credential = support::SimIdentity::for_sim(&sim);
    sim.shutdown().await;
    let fresh = ArmScaleSet::new(cfg, credential).unwrap();
    let detail = detail_of("ReadFailed", bounded(fresh.set_capacity(2)).await);
    assert!(detail.contains("no ARM token"), "{detail}");
}

#[tokio::test]
async fn revoked_token_is_reported_as_a_401() {
    let (sim, arm) = started(1).await;
    assert!(matches!(arm.observe().await, ScaleSetProbe::Seen { .. }));
    sim.revoke_tokens();
    let detail = unknown(arm.observe().await);
    assert!(
        detail.contains("401 InvalidAuthenticationToken"),
        "{detail}"
    );
    assert!(patches(&sim).is_empty());
}

#[tokio::test]
async fn evictions_show_in_observe() {
    let (sim, arm) = started(4).await;
    assert_eq!(sim.evict(2), vec![3, 2]);
    assert_eq!(
        arm.observe().await,
        ScaleSetProbe::Seen {
            capacity: 2,
            running: 2
        }
    );
    // The drill endpoint, through the client: 204, and the capacity drops again.
    arm.simulate_eviction("0").await.unwrap();
    assert_eq!(
        arm.observe().await,
        ScaleSetProbe::Seen {
            capacity: 1,
            running: 1
        }
    );
    let post = arm_requests(&sim)
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(
        post.path,
        format!("{}/virtualMachines/0/simulateEviction", sim.scale_set_id())
    );
    assert_eq!(post.status, 204);
    assert_eq!(post.header("content-length"), Some("0"));
    // An instance that is gone: 404 with an ARM error.
    match arm.simulate_eviction("0").await {
        Err(burst_arm::ArmError::Http {
            status: 404, code, ..
        }) => assert_eq!(code, "NotFound"),
        other => panic!("expected 404, got {other:?}"),
    }
    assert_eq!(sim.snapshot().evicted, 3);
    // Restoring the capacity after evictions is an ordinary write.
    assert_eq!(arm.set_capacity(4).await, accepted(4, 1));
    assert_eq!(sim.capacity(), 4);
}

#[tokio::test]
async fn timed_out_write_is_failed_and_the_next_read_sees_it() {
    let sim = sim_with(1, Duration::ZERO, Duration::ZERO).await;
    let mut cfg = sim.arm_config();
    cfg.timeout = Duration::from_secs(5);
    let arm = ArmScaleSet::new(cfg, support::SimIdentity::for_sim(&sim)).unwrap();
    // ARM applies the write but answers after the client has given up.
    sim.inject(
        Target::Write,
        1,
        Fault::Slow {
            delay: Duration::from_secs(60),
        },
    );
    let detail = detail_of("Failed", bounded(arm.set_capacity(3)).await);
    assert!(detail.contains("timed out"), "{detail}");
    assert!(
        detail.contains("may or may not have been applied"),
        "{detail}"
    );
    assert_eq!(sim.capacity(), 3);
    // The level-triggered retry re-reads and finds nothing left to write.
    assert_eq!(arm.set_capacity(3).await, accepted(3, 3));
    assert_eq!(patches(&sim).len(), 1);
}
