//! Route 53 Profiles from `route53profiles list-profiles`, `list-profile-associations` and
//! `list-profile-resource-associations` (whose resources are told by their ARNs).

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct ProfileSummary {
    id: String,
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct ProfileAssociation {
    profile_id: String,
    resource_id: String,
    status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct ProfileResource {
    profile_id: String,
    resource_arn: String,
    resource_type: Option<String>,
    /// JSON text, `{"priority":102}` for a firewall rule group.
    resource_properties: Option<String>,
    status: Option<String>,
}

/// What the topology keeps of an imported set, to check Profile references against.
pub(super) struct Known<'a> {
    pub(super) zones: &'a [raw::HostedZone],
    pub(super) rules: &'a [String],
    pub(super) endpoints: &'a [raw::Endpoint],
    pub(super) rule_groups: &'a [String],
}

impl Importer<'_> {
    pub(super) fn profiles(&mut self, known: &Known<'_>) -> Vec<raw::Profile> {
        let summaries: Vec<&ProfileSummary> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.profile_summaries.iter().flatten())
            .collect();
        let mut out: Vec<raw::Profile> = Vec::new();
        for s in summaries {
            if out.iter().any(|p| p.id.as_deref() == Some(&s.id)) {
                continue;
            }
            let mut profile = raw::Profile {
                id: Some(s.id.clone()),
                name: s.name.clone(),
                vpcs: self.profile_vpcs(&s.id),
                hosted_zones: Vec::new(),
                rules: Vec::new(),
                endpoints: Vec::new(),
                firewall_rule_groups: Vec::new(),
            };
            self.profile_resources(&mut profile, known);
            out.push(profile);
        }
        out
    }

    fn profile_vpcs(&mut self, profile: &str) -> Vec<String> {
        let list: Vec<&ProfileAssociation> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.profile_associations.iter().flatten())
            .filter(|a| a.profile_id == profile)
            .collect();
        let mut vpcs = Vec::new();
        for a in list {
            if a.status
                .as_deref()
                .is_some_and(|s| matches!(s, "DELETING" | "FAILED" | "DELETED"))
            {
                continue;
            }
            if self.has_vpc(&a.resource_id) {
                vpcs.push(a.resource_id.clone());
            } else {
                self.warn(format!(
                    "{profile}: association with {} left out: that VPC is not in the input",
                    a.resource_id
                ));
            }
        }
        vpcs
    }

    fn profile_resources(&mut self, profile: &mut raw::Profile, known: &Known<'_>) {
        let id = profile.id.clone().unwrap_or_default();
        let list: Vec<&ProfileResource> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.profile_resource_associations.iter().flatten())
            .filter(|r| r.profile_id == id)
            .collect();
        for r in list {
            if r.status
                .as_deref()
                .is_some_and(|s| matches!(s, "DELETING" | "FAILED" | "DELETED"))
            {
                continue;
            }
            let tail = r
                .resource_arn
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let kind = r.resource_type.as_deref().unwrap_or("");
            let label = format!("{id}: {kind} {tail}");
            if tail.starts_with('Z') && r.resource_arn.contains(":hostedzone/") {
                if known.zones.iter().any(|z| z.id.as_deref() == Some(&tail)) {
                    profile.hosted_zones.push(tail);
                } else {
                    self.warn(format!(
                        "{label} left out: the hosted zone is not in the input"
                    ));
                }
            } else if tail.starts_with("rslvr-rr-") {
                if known.rules.contains(&tail) {
                    profile.rules.push(tail);
                } else {
                    self.warn(format!(
                        "{label} left out: the rule is not in the input (list-resolver-rules)"
                    ));
                }
            } else if tail.starts_with("vpce-") {
                match known.endpoints.iter().find(|e| e.id.as_deref() == Some(&tail)) {
                    Some(e) if e.private_dns == Some(true) => profile.endpoints.push(tail),
                    Some(_) => self.warn(format!("{label} left out: only interface endpoints with private DNS on share names through a Profile")),
                    None => self.warn(format!("{label} left out: the endpoint is not in the input (describe-vpc-endpoints)")),
                }
            } else if tail.starts_with("rslvr-frg-") {
                self.profile_rule_group(profile, known, r, &label, tail);
            } else {
                self.warn(format!("{label} left out: only hosted zones, Resolver rules, firewall rule groups and interface endpoints are modelled"));
            }
        }
    }

    fn profile_rule_group(
        &mut self,
        profile: &mut raw::Profile,
        known: &Known<'_>,
        r: &ProfileResource,
        label: &str,
        group: String,
    ) {
        if !known.rule_groups.contains(&group) {
            self.warn(format!(
                "{label} left out: the rule group is not in list-firewall-rule-groups"
            ));
            return;
        }
        let priority = r
            .resource_properties
            .as_deref()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|v| v.get("priority").and_then(serde_json::Value::as_i64));
        match priority {
            Some(priority) => profile.firewall_rule_groups.push(raw::ProfileRuleGroup {
                rule_group: group,
                priority,
            }),
            None => self.warn(format!(
                "{label} left out: no priority in its ResourceProperties"
            )),
        }
    }
}
