//! The XML shapes Auto Scaling (query API, 2011-01-01) and S3 answer with, and their parsing.
//! Unknown elements are ignored, as AWS adds fields over time.

use serde::Deserialize;

/// Auto Scaling's XML namespace (also used by the sim).
pub const ASG_NS: &str = "http://autoscaling.amazonaws.com/doc/2011-01-01/";

/// A query-API list: `<Things><member>…</member>…</Things>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Members<T> {
    #[serde(default = "Vec::new", rename = "member")]
    pub member: Vec<T>,
}

impl<T> Default for Members<T> {
    fn default() -> Self {
        Members { member: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeResponse {
    describe_auto_scaling_groups_result: DescribeResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeResult {
    #[serde(default)]
    auto_scaling_groups: Members<Group>,
}

/// One `AutoScalingGroups/member` (the fields we use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Group {
    pub auto_scaling_group_name: String,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_capacity: u32,
    #[serde(default)]
    pub instances: Members<Instance>,
}

impl Group {
    /// Instances in `InService` (Pending, Terminating, Standby… are not running for us).
    pub fn in_service(&self) -> u32 {
        self.instances
            .member
            .iter()
            .filter(|i| i.lifecycle_state == "InService")
            .count() as u32
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Instance {
    pub instance_id: String,
    pub lifecycle_state: String,
}

/// The groups of a `DescribeAutoScalingGroupsResponse`.
pub fn parse_describe(body: &str) -> Result<Vec<Group>, String> {
    quick_xml::de::from_str::<DescribeResponse>(body)
        .map(|r| {
            r.describe_auto_scaling_groups_result
                .auto_scaling_groups
                .member
        })
        .map_err(|e| format!("unexpected DescribeAutoScalingGroups response: {e}"))
}

/// An AWS error: `Code` and `Message`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AwsError {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorResponse {
    error: AwsError,
}

/// The query API's `<ErrorResponse><Error><Type/><Code/><Message/></Error>…`.
pub fn parse_query_error(body: &str) -> Option<AwsError> {
    quick_xml::de::from_str::<ErrorResponse>(body)
        .ok()
        .map(|r| r.error)
}

/// S3's `<Error><Code/><Message/>…</Error>`.
pub fn parse_s3_error(body: &str) -> Option<AwsError> {
    quick_xml::de::from_str::<AwsError>(body).ok()
}

/// Escapes text for an XML element (the sims' responses).
pub fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // Shaped like a real response (namespace, ResponseMetadata, fields we ignore).
    const DESCRIBE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeAutoScalingGroupsResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <DescribeAutoScalingGroupsResult>
    <AutoScalingGroups>
      <member>
        <AutoScalingGroupARN>arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:0b1c2d3e-aaaa-bbbb-cccc-0123456789ab:autoScalingGroupName/burst</AutoScalingGroupARN>
        <HealthCheckGracePeriod>300</HealthCheckGracePeriod>
        <EnabledMetrics/>
        <SuspendedProcesses/>
        <AvailabilityZones>
          <member>eu-west-1a</member>
        </AvailabilityZones>
        <Tags/>
        <AutoScalingGroupName>burst</AutoScalingGroupName>
        <DefaultCooldown>300</DefaultCooldown>
        <MinSize>0</MinSize>
        <Instances>
          <member>
            <LaunchTemplate><LaunchTemplateId>lt-0a1b2c</LaunchTemplateId><LaunchTemplateName>burst</LaunchTemplateName><Version>1</Version></LaunchTemplate>
            <HealthStatus>Healthy</HealthStatus>
            <AvailabilityZone>eu-west-1a</AvailabilityZone>
            <InstanceId>i-0123456789abcdef0</InstanceId>
            <InstanceType>t3.large</InstanceType>
            <ProtectedFromScaleIn>false</ProtectedFromScaleIn>
            <LifecycleState>InService</LifecycleState>
          </member>
          <member>
            <HealthStatus>Healthy</HealthStatus>
            <InstanceId>i-0123456789abcdef1</InstanceId>
            <LifecycleState>Pending</LifecycleState>
          </member>
          <member>
            <HealthStatus>Healthy</HealthStatus>
            <InstanceId>i-0123456789abcdef2</InstanceId>
            <LifecycleState>InService</LifecycleState>
          </member>
        </Instances>
        <MaxSize>5</MaxSize>
        <DesiredCapacity>3</DesiredCapacity>
        <VPCZoneIdentifier>subnet-0abc</VPCZoneIdentifier>
        <HealthCheckType>EC2</HealthCheckType>
        <NewInstancesProtectedFromScaleIn>false</NewInstancesProtectedFromScaleIn>
        <CapacityRebalance>true</CapacityRebalance>
      </member>
    </AutoScalingGroups>
  </DescribeAutoScalingGroupsResult>
  <ResponseMetadata>
    <RequestId>0f2d7b7e-1a2b-4c3d-9e8f-0123456789ab</RequestId>
  </ResponseMetadata>
</DescribeAutoScalingGroupsResponse>"#;

    #[test]
    fn describe_response_parses() {
        let groups = parse_describe(DESCRIBE).unwrap();
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.auto_scaling_group_name, "burst");
        assert_eq!((g.min_size, g.max_size, g.desired_capacity), (0, 5, 3));
        assert_eq!(g.instances.member.len(), 3);
        assert_eq!(g.in_service(), 2);
    }

    #[test]
    fn describe_without_groups_or_instances() {
        let empty = r#"<DescribeAutoScalingGroupsResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <DescribeAutoScalingGroupsResult><AutoScalingGroups/></DescribeAutoScalingGroupsResult>
  <ResponseMetadata><RequestId>x</RequestId></ResponseMetadata>
</DescribeAutoScalingGroupsResponse>"#;
        assert_eq!(parse_describe(empty).unwrap(), vec![]);
        let no_instances = DESCRIBE.split("<Instances>").next().unwrap().to_string()
            + "<Instances/><MaxSize>5</MaxSize><DesiredCapacity>0</DesiredCapacity></member></AutoScalingGroups></DescribeAutoScalingGroupsResult></DescribeAutoScalingGroupsResponse>";
        let g = parse_describe(&no_instances).unwrap();
        assert_eq!(g[0].in_service(), 0);
        assert_eq!(g[0].desired_capacity, 0);
        assert!(parse_describe("<html>nope</html>").is_err());
        assert!(parse_describe("").is_err());
    }

    #[test]
    fn query_errors_parse() {
        let body = r#"<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <Error>
    <Type>Sender</Type>
    <Code>ScalingActivityInProgress</Code>
    <Message>Scaling activity 1234 is in progress and blocks this action.</Message>
  </Error>
  <RequestId>5e8a1c2b-0000-4000-8000-0123456789ab</RequestId>
</ErrorResponse>"#;
        assert_eq!(
            parse_query_error(body).unwrap(),
            AwsError {
                code: "ScalingActivityInProgress".into(),
                message: "Scaling activity 1234 is in progress and blocks this action.".into()
            }
        );
        assert_eq!(parse_query_error("Rate exceeded"), None);
    }

    #[test]
    fn s3_errors_parse() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-Match</Condition><RequestId>4442587FB7D0A2F9</RequestId><HostId>abc=</HostId></Error>"#;
        let e = parse_s3_error(body).unwrap();
        assert_eq!(e.code, "PreconditionFailed");
        assert_eq!(
            e.message,
            "At least one of the pre-conditions you specified did not hold"
        );
        assert_eq!(parse_s3_error(""), None);
    }
}
