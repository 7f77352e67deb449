//! The scale set's ARM resource id, validated before any request is built from it.

use std::fmt;

/// `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScaleSetId {
    subscription: String,
    resource_group: String,
    name: String,
}

/// Why a resource id was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResourceIdError {
    /// Not of the form above: fix the setting (copy the id from the portal's JSON view).
    #[error(
        "expected /subscriptions/{{subscription}}/resourceGroups/{{group}}/providers/Microsoft.Compute/virtualMachineScaleSets/{{name}}"
    )]
    Shape,
    /// The subscription is not a GUID: fix the setting.
    #[error("the subscription id is not a GUID")]
    Subscription,
    /// The resource group name breaks Azure's naming rules: fix the setting.
    #[error(
        "the resource group name is not valid (1-90 letters, digits, '_', '-', '.', '(', ')', not ending in '.')"
    )]
    ResourceGroup,
    /// The scale set name breaks Azure's naming rules: fix the setting.
    #[error(
        "the scale set name is not valid (1-64 letters, digits, '_', '-', '.', starting with a letter, digit or '_', not ending in '.' or '-')"
    )]
    Name,
}

impl ScaleSetId {
    /// Builds an id from its parts, with the same validation as [`ScaleSetId::parse`].
    pub fn new(
        subscription: &str,
        resource_group: &str,
        name: &str,
    ) -> Result<Self, ResourceIdError> {
        if !is_guid(subscription) {
            return Err(ResourceIdError::Subscription);
        }
        if !valid_group(resource_group) {
            return Err(ResourceIdError::ResourceGroup);
        }
        if !valid_name(name) {
            return Err(ResourceIdError::Name);
        }
        Ok(Self {
            subscription: subscription.to_ascii_lowercase(),
            resource_group: resource_group.to_string(),
            name: name.to_string(),
        })
    }

    /// Parses a resource id. The fixed segments are matched case-insensitively, as ARM does.
    pub fn parse(id: &str) -> Result<Self, ResourceIdError> {
        let id = id.trim();
        let rest = id.strip_prefix('/').ok_or(ResourceIdError::Shape)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [subs, sub, groups, group, providers, ns, kind, name] = parts.as_slice() else {
            return Err(ResourceIdError::Shape);
        };
        let fixed = [
            (subs, "subscriptions"),
            (groups, "resourceGroups"),
            (providers, "providers"),
            (ns, "Microsoft.Compute"),
            (kind, "virtualMachineScaleSets"),
        ];
        if fixed
            .iter()
            .any(|(got, want)| !got.eq_ignore_ascii_case(want))
        {
            return Err(ResourceIdError::Shape);
        }
        Self::new(sub, group, name)
    }

    pub fn subscription(&self) -> &str {
        &self.subscription
    }
    pub fn resource_group(&self) -> &str {
        &self.resource_group
    }
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The request path (same as the canonical id).
    pub fn path(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ScaleSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}",
            self.subscription, self.resource_group, self.name
        )
    }
}

impl std::str::FromStr for ScaleSetId {
    type Err = ResourceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// 8-4-4-4-12 hex digits.
pub(crate) fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn valid_group(s: &str) -> bool {
    let len = s.chars().count();
    (1..=90).contains(&len)
        && !s.ends_with('.')
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')'))
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && !s.ends_with(['.', '-'])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-1111-2222-3333-444455556666";

    #[test]
    fn parses_and_round_trips() {
        let raw = format!(
            "/subscriptions/{SUB}/resourceGroups/rg-burst/providers/Microsoft.Compute/virtualMachineScaleSets/burst-spot"
        );
        let id = ScaleSetId::parse(&raw).unwrap();
        assert_eq!(id.subscription(), SUB);
        assert_eq!(id.resource_group(), "rg-burst");
        assert_eq!(id.name(), "burst-spot");
        assert_eq!(id.to_string(), raw);
        // ARM ids come back in varying case from the CLI and the portal.
        let lower = raw.replace("resourceGroups", "resourcegroups").replace(
            "Microsoft.Compute/virtualMachineScaleSets",
            "microsoft.compute/virtualmachinescalesets",
        );
        assert_eq!(ScaleSetId::parse(&lower).unwrap(), id);
    }

    #[test]
    fn refuses_bad_ids() {
        let ok = format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss"
        );
        assert!(ScaleSetId::parse(&ok).is_ok());
        let cases = [
            ("", ResourceIdError::Shape),
            ("vmss", ResourceIdError::Shape),
            (&ok[1..], ResourceIdError::Shape),
            (&format!("{ok}/"), ResourceIdError::Shape),
            (&format!("{ok}/virtualMachines/0"), ResourceIdError::Shape),
            (
                &ok.replace("virtualMachineScaleSets", "virtualMachines"),
                ResourceIdError::Shape,
            ),
            (
                &ok.replace("Microsoft.Compute", "Microsoft.Network"),
                ResourceIdError::Shape,
            ),
            (
                &ok.replace(SUB, "not-a-guid"),
                ResourceIdError::Subscription,
            ),
            (&ok.replace("/rg/", "/rg./"), ResourceIdError::ResourceGroup),
            (&ok.replace("/rg/", "//"), ResourceIdError::ResourceGroup),
            (&ok.replace("/rg/", "/r?g/"), ResourceIdError::ResourceGroup),
            (&ok.replace("/vmss", "/vm ss"), ResourceIdError::Name),
            (&ok.replace("/vmss", "/-vmss"), ResourceIdError::Name),
            (&ok.replace("/vmss", "/vmss-"), ResourceIdError::Name),
            (
                &ok.replace("/vmss", &format!("/{}", "a".repeat(65))),
                ResourceIdError::Name,
            ),
            (&ok.replace("/vmss", "/vm%2Fss"), ResourceIdError::Name),
        ];
        for (raw, want) in cases {
            assert_eq!(ScaleSetId::parse(raw), Err(want), "{raw}");
        }
    }
}
