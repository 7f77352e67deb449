//! A simulated Auto Scaling query API: one group, `DescribeAutoScalingGroups` and
//! `SetDesiredCapacity` (SigV4-checked, `Action`/`Version` checked, min/max enforced with
//! AWS's `ValidationError` wording), XML answers shaped like AWS's, and injectable
//! `Throttling` / `ScalingActivityInProgress`. The group is the shared scale-set model: new
//! instances are `Pending` for the boot time, then `InService`; Spot interruptions delete them.

use super::{AUTOSCALING, verify_request};
use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use burst_aws::sigv4::Credentials;
use burst_aws::xml::{ASG_NS, escape};
use burst_sim_kit::scale_set::{InstanceState, ScaleSet};
use burst_sim_kit::{FaultQueue, RequestLog, Running, Shared, request_id};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The group the sim starts with.
#[derive(Debug, Clone)]
pub struct AsgSimConfig {
    pub group_name: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    /// How long a new instance stays `Pending` before it is `InService`.
    pub boot_time: Duration,
    pub region: String,
    pub credentials: Credentials,
}

impl Default for AsgSimConfig {
    fn default() -> Self {
        AsgSimConfig {
            group_name: "burst-spot".into(),
            min: 0,
            max: 5,
            desired: 0,
            boot_time: Duration::ZERO,
            region: super::SIM_REGION.into(),
            credentials: super::test_credentials(),
        }
    }
}

/// A request the sim answered (for inspection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsgCall {
    pub action: String,
    pub params: Vec<(String, String)>,
    /// HTTP status and AWS error code (empty on success).
    pub status: u16,
    pub code: String,
}

#[derive(Debug, Default)]
struct SimState {
    config: AsgSimConfig,
    group: ScaleSet<Instant>,
    faults: FaultQueue<Fault, ()>,
    calls: RequestLog<AsgCall>,
}

impl SimState {
    /// Sets the desired capacity; new instances are in service after the boot time.
    fn resize(&mut self, n: u32) {
        let now = Instant::now();
        let ready_at = now.checked_add(self.config.boot_time).unwrap_or(now);
        self.group.resize(n, now, ready_at, false);
    }
}

/// An injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Any action: `Throttling`.
    Throttling,
    /// `SetDesiredCapacity`: `ScalingActivityInProgress`.
    ActivityInProgress,
}

/// The running sim.
#[derive(Debug)]
pub struct AsgSim {
    sim: Running<SimState>,
}

/// Starts the sim on 127.0.0.1 with a free port.
pub async fn start(config: AsgSimConfig) -> std::io::Result<AsgSim> {
    let mut group = ScaleSet::default();
    // The starting instances are already in service.
    let now = Instant::now();
    group.resize(config.desired, now, now, false);
    let state = SimState {
        group,
        config,
        ..SimState::default()
    };
    let sim = Running::start(state, axum::Router::new().fallback(handle)).await?;
    Ok(AsgSim { sim })
}

impl AsgSim {
    /// `http://127.0.0.1:PORT/` (the `BURST_AWS_ASG_ENDPOINT`).
    pub fn base_url(&self) -> String {
        format!("{}/", self.sim.base_url())
    }
    /// The group's desired capacity now.
    pub fn desired(&self) -> u32 {
        self.sim.state().group.capacity()
    }
    /// Sets the desired capacity from outside (as another actor would).
    pub fn set_desired(&self, n: u32) {
        self.sim.state().resize(n);
    }
    /// How long instances added from now on stay `Pending`.
    pub fn set_boot_time(&self, boot_time: Duration) {
        self.sim.state().config.boot_time = boot_time;
    }
    /// Instances `InService` now.
    pub fn in_service(&self) -> u32 {
        self.sim.state().group.running(Instant::now())
    }
    /// A Spot interruption of up to `n` instances (newest first): they are terminated and the
    /// desired capacity drops with them. Returns how many.
    pub fn interrupt(&self, n: u32) -> usize {
        self.sim.state().group.evict_newest(n, None).len()
    }
    /// The next `n` requests (any action) get `Throttling`.
    pub fn throttle_next(&self, n: u32) {
        self.sim.state().faults.push(Fault::Throttling, n, ());
    }
    /// The next `n` `SetDesiredCapacity` calls get `ScalingActivityInProgress`.
    pub fn activity_in_progress_next(&self, n: u32) {
        self.sim
            .state()
            .faults
            .push(Fault::ActivityInProgress, n, ());
    }
    /// Every request answered so far.
    pub fn calls(&self) -> Vec<AsgCall> {
        self.sim.state().calls.to_vec()
    }
    /// Successful `SetDesiredCapacity` calls so far.
    pub fn writes(&self) -> usize {
        self.sim
            .state()
            .calls
            .iter()
            .filter(|c| c.action == "SetDesiredCapacity" && c.status == 200)
            .count()
    }
    pub fn shutdown(&mut self) {
        self.sim.stop();
    }
}

fn xml(status: u16, body: String) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "text/xml"), ("x-amzn-requestid", "sim")],
        body,
    )
        .into_response()
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"{ASG_NS}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            escape(code),
            escape(message),
            request_id()
        ),
    )
}

async fn handle(State(state): State<Shared<SimState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = match to_bytes(body, 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return error(413, "RequestEntityTooLarge", "Request is too large."),
    };
    let mut st = state.lock();
    let answered = answer(&mut st, &parts, &body);
    let (params, action, status, code, resp) = answered;
    st.calls.push(AsgCall {
        action,
        params,
        status,
        code,
    });
    resp
}

type Answer = (Vec<(String, String)>, String, u16, String, Response);

fn answer(st: &mut SimState, parts: &axum::http::request::Parts, body: &[u8]) -> Answer {
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let err = |params: Vec<(String, String)>, action: &str, status: u16, code: &str, msg: &str| {
        (
            params,
            action.to_string(),
            status,
            code.to_string(),
            error(status, code, msg),
        )
    };
    if uri.path() != "/" {
        return err(vec![], "", 404, "UnknownOperationException", "Unknown path");
    }
    // The query API takes its parameters from the query string (GET) or a form body (POST).
    let mut raw = uri.query().unwrap_or("").as_bytes().to_vec();
    if *method == Method::POST {
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return err(
                vec![],
                "",
                400,
                "MalformedQueryString",
                "POST requests must be application/x-www-form-urlencoded",
            );
        }
        if !raw.is_empty() {
            raw.push(b'&');
        }
        raw.extend_from_slice(body);
    } else if *method != Method::GET {
        return err(vec![], "", 405, "MethodNotAllowed", "Use GET or POST");
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let map: HashMap<&str, &str> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let action = map.get("Action").copied().unwrap_or("").to_string();
    let (creds, region) = (&st.config.credentials, st.config.region.as_str());
    if let Err(f) = verify_request(AUTOSCALING, creds, region, parts, body) {
        return err(params, &action, f.status, f.code, &f.message);
    }
    if action.is_empty() {
        return err(params, "", 400, "MissingAction", "Missing Action");
    }
    if map.get("Version").copied() != Some(burst_aws::asg::API_VERSION) {
        return err(
            params,
            &action,
            400,
            "InvalidAction",
            "Could not find operation for this Version (expected 2011-01-01)",
        );
    }
    if st.faults.take(|f| *f == Fault::Throttling).is_some() {
        return err(params, &action, 400, "Throttling", "Rate exceeded");
    }
    match action.as_str() {
        "DescribeAutoScalingGroups" => {
            let names: Vec<&str> = params
                .iter()
                .filter(|(k, _)| k.starts_with("AutoScalingGroupNames.member."))
                .map(|(_, v)| v.as_str())
                .collect();
            let show = names.is_empty() || names.contains(&st.config.group_name.as_str());
            let groups = if show { group_xml(st) } else { String::new() };
            let body = format!(
                "<DescribeAutoScalingGroupsResponse xmlns=\"{ASG_NS}\">\n  <DescribeAutoScalingGroupsResult>\n    <AutoScalingGroups>{groups}</AutoScalingGroups>\n  </DescribeAutoScalingGroupsResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</DescribeAutoScalingGroupsResponse>\n",
                request_id()
            );
            (params, action, 200, String::new(), xml(200, body))
        }
        "SetDesiredCapacity" => {
            let name = map.get("AutoScalingGroupName").copied();
            let desired = map.get("DesiredCapacity").copied();
            let (Some(name), Some(desired)) = (name, desired) else {
                return err(
                    params,
                    &action,
                    400,
                    "ValidationError",
                    "1 validation error detected: AutoScalingGroupName and DesiredCapacity are required",
                );
            };
            if let Some(h) = map.get("HonorCooldown")
                && !matches!(*h, "true" | "false")
            {
                return err(
                    params,
                    &action,
                    400,
                    "ValidationError",
                    "HonorCooldown must be true or false",
                );
            }
            let Ok(desired) = desired.parse::<u32>() else {
                return err(
                    params,
                    &action,
                    400,
                    "ValidationError",
                    "DesiredCapacity must be a non-negative integer",
                );
            };
            if name != st.config.group_name {
                return err(
                    params,
                    &action,
                    400,
                    "ValidationError",
                    "AutoScalingGroup name not found - null",
                );
            }
            if st
                .faults
                .take(|f| *f == Fault::ActivityInProgress)
                .is_some()
            {
                return err(
                    params,
                    &action,
                    400,
                    "ScalingActivityInProgress",
                    "Scaling activity is in progress and blocks this action.",
                );
            }
            if desired > st.config.max {
                let m = format!(
                    "New SetDesiredCapacity value {desired} is above max value {} for the AutoScalingGroup.",
                    st.config.max
                );
                return err(params, &action, 400, "ValidationError", &m);
            }
            if desired < st.config.min {
                let m = format!(
                    "New SetDesiredCapacity value {desired} is below min value {} for the AutoScalingGroup.",
                    st.config.min
                );
                return err(params, &action, 400, "ValidationError", &m);
            }
            st.resize(desired);
            let body = format!(
                "<SetDesiredCapacityResponse xmlns=\"{ASG_NS}\">\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</SetDesiredCapacityResponse>\n",
                request_id()
            );
            (params, action, 200, String::new(), xml(200, body))
        }
        other => {
            let m = format!("Could not find operation {other} for version 2011-01-01");
            err(params, &action.clone(), 400, "InvalidAction", &m)
        }
    }
}

fn group_xml(st: &SimState) -> String {
    let now = Instant::now();
    let mut instances = String::new();
    for (id, instance) in st.group.instances() {
        let state = match ScaleSet::state(instance, now) {
            InstanceState::Running => "InService",
            InstanceState::Booting => "Pending",
            InstanceState::Failed => "Terminated",
        };
        instances.push_str(&format!(
            "\n          <member>\n            <HealthStatus>Healthy</HealthStatus>\n            <AvailabilityZone>{}a</AvailabilityZone>\n            <InstanceId>i-{:017x}</InstanceId>\n            <InstanceType>t3.large</InstanceType>\n            <ProtectedFromScaleIn>false</ProtectedFromScaleIn>\n            <LifecycleState>{state}</LifecycleState>\n          </member>",
            st.config.region,
            u64::from(id) + 1
        ));
    }
    let name = escape(&st.config.group_name);
    format!(
        "\n      <member>\n        <AutoScalingGroupARN>arn:aws:autoscaling:{region}:123456789012:autoScalingGroup:00000000-0000-4000-8000-000000000000:autoScalingGroupName/{name}</AutoScalingGroupARN>\n        <AutoScalingGroupName>{name}</AutoScalingGroupName>\n        <MinSize>{}</MinSize>\n        <MaxSize>{}</MaxSize>\n        <DesiredCapacity>{}</DesiredCapacity>\n        <DefaultCooldown>300</DefaultCooldown>\n        <AvailabilityZones><member>{region}a</member></AvailabilityZones>\n        <Instances>{instances}\n        </Instances>\n        <HealthCheckType>EC2</HealthCheckType>\n        <CapacityRebalance>true</CapacityRebalance>\n      </member>\n    ",
        st.config.min,
        st.config.max,
        st.group.capacity(),
        region = st.config.region,
    )
}
