//! The AWS answers the adapters read (`burst_aws::xml`): `DescribeAutoScalingGroups`, the query
//! API's `ErrorResponse` and S3's `Error`.
//!
//! Input: an XML response body (UTF-8; other bytes are skipped, as the adapters read text).
//!
//! Properties:
//! - what each parser read, written back as a minimal response of the same shape (every
//!   character that is not a letter or a digit as a character reference), reads back the same;
//! - a group never has more instances in service than instances.

#![no_main]

use burst_aws::xml::{ASG_NS, AwsError, Group, parse_describe, parse_query_error, parse_s3_error};
use libfuzzer_sys::fuzz_target;
use std::fmt::Write;

/// Text content that reads back exactly: markup, whitespace and every other non-alphanumeric
/// character as a character reference, so neither escaping nor whitespace trimming applies.
/// Characters XML cannot reference (the C0 controls but tab, newline and carriage return, and
/// U+FFFE/U+FFFF) are written as they are, as they were read.
fn text(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let referable = !matches!(
            c,
            '\0'..='\x08' | '\x0b' | '\x0c' | '\x0e'..='\x1f' | '\u{fffe}' | '\u{ffff}'
        );
        if c.is_ascii_alphanumeric() || !referable {
            out.push(c);
        } else {
            write!(out, "&#x{:x};", u32::from(c)).expect("writing to a String");
        }
    }
    out
}

fn describe_xml(groups: &[Group]) -> String {
    let mut out = format!(
        r#"<DescribeAutoScalingGroupsResponse xmlns="{ASG_NS}"><DescribeAutoScalingGroupsResult><AutoScalingGroups>"#
    );
    for g in groups {
        write!(
            out,
            "<member><AutoScalingGroupName>{}</AutoScalingGroupName><MinSize>{}</MinSize><MaxSize>{}</MaxSize><DesiredCapacity>{}</DesiredCapacity><Instances>",
            text(&g.auto_scaling_group_name),
            g.min_size,
            g.max_size,
            g.desired_capacity
        )
        .expect("writing to a String");
        for i in &g.instances.member {
            write!(
                out,
                "<member><InstanceId>{}</InstanceId><LifecycleState>{}</LifecycleState></member>",
                text(&i.instance_id),
                text(&i.lifecycle_state)
            )
            .expect("writing to a String");
        }
        out.push_str("</Instances></member>");
    }
    out.push_str("</AutoScalingGroups></DescribeAutoScalingGroupsResult></DescribeAutoScalingGroupsResponse>");
    out
}

fn error_xml(e: &AwsError) -> String {
    format!(
        "<Error><Code>{}</Code><Message>{}</Message></Error>",
        text(&e.code),
        text(&e.message)
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(groups) = parse_describe(body) {
        for g in &groups {
            assert!(g.in_service() as usize <= g.instances.member.len());
        }
        let written = describe_xml(&groups);
        assert_eq!(parse_describe(&written).as_ref(), Ok(&groups), "{written}");
    }

    if let Some(e) = parse_query_error(body) {
        let written = format!("<ErrorResponse>{}</ErrorResponse>", error_xml(&e));
        assert_eq!(parse_query_error(&written).as_ref(), Some(&e), "{written}");
    }

    if let Some(e) = parse_s3_error(body) {
        let written = error_xml(&e);
        assert_eq!(parse_s3_error(&written).as_ref(), Some(&e), "{written}");
    }
});
