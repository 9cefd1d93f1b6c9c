//! DNS Firewall from `route53resolver list-firewall-domain-lists`, `list-firewall-domains` (one file per list,
//! named after its `rslvr-fdl-…` id: the response does not say which list it is), `list-firewall-rule-groups`,
//! `list-firewall-rules` and `list-firewall-rule-group-associations`.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct AwsDomainList {
    id: String,
    name: Option<String>,
    managed_owner_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct AwsRuleGroup {
    id: String,
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct AwsFirewallRule {
    firewall_rule_group_id: String,
    firewall_domain_list_id: String,
    name: String,
    priority: i64,
    action: String,
    block_response: Option<String>,
    block_override_domain: Option<String>,
    block_override_dns_type: Option<String>,
    block_override_ttl: Option<i64>,
    firewall_domain_redirection_action: Option<String>,
    qtype: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct AwsFirewallAssociation {
    firewall_rule_group_id: String,
    vpc_id: String,
    priority: i64,
    status: Option<String>,
}

impl Importer<'_> {
    pub(super) fn firewall(&mut self) -> Result<Option<raw::Firewall>, ImportError> {
        let domain_lists = self.domain_lists();
        let rule_groups = self.rule_groups(&domain_lists);
        let associations = self.firewall_associations(&rule_groups);
        if domain_lists.is_empty() && rule_groups.is_empty() {
            return Ok(None);
        }
        Ok(Some(raw::Firewall {
            domain_lists: items(&domain_lists)?,
            rule_groups: items(&rule_groups)?,
            associations: items(&associations)?,
        }))
    }

    fn domain_lists(&mut self) -> Vec<raw::DomainList> {
        let mut domains: HashMap<String, Vec<String>> = HashMap::new();
        for p in self.parsed {
            let Some(list) = &p.response.domains else {
                continue;
            };
            match id_in_name(file_name(&p.name), "rslvr-fdl-") {
                Some(id) => domains.entry(id).or_default().extend(list.iter().cloned()),
                None => self.warn(format!(
                    "{}: list-firewall-domains output without a rslvr-fdl-… id in its file name; left out",
                    p.name
                )),
            }
        }
        let lists: Vec<&AwsDomainList> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.firewall_domain_lists.iter().flatten())
            .collect();
        let mut out: Vec<raw::DomainList> = Vec::new();
        for l in lists {
            if out.iter().any(|d| d.id.as_deref() == Some(&l.id)) {
                continue;
            }
            let names = domains.remove(&l.id).unwrap_or_default();
            if names.is_empty() {
                let why = match &l.managed_owner_name {
                    Some(owner) => {
                        format!("a list managed by {owner}, whose domains AWS does not list")
                    }
                    None => "no list-firewall-domains file named after it".to_string(),
                };
                self.warn(format!(
                    "{} ({}): imported without domains: {why}; rules using it match nothing",
                    l.id,
                    l.name.as_deref().unwrap_or("")
                ));
            }
            out.push(raw::DomainList {
                id: Some(l.id.clone()),
                name: l.name.clone(),
                // AWS lists domains with a final dot; the topology takes both.
                domains: names
                    .iter()
                    .map(|d| d.trim_end_matches('.').to_string())
                    .collect(),
            });
        }
        for id in domains.into_keys() {
            self.warn(format!(
                "domains of {id} left out: the list is not in list-firewall-domain-lists"
            ));
        }
        out
    }

    fn rule_groups(&mut self, lists: &[raw::DomainList]) -> Vec<raw::RuleGroup> {
        let groups: Vec<&AwsRuleGroup> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.firewall_rule_groups.iter().flatten())
            .collect();
        let rules: Vec<&AwsFirewallRule> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.firewall_rules.iter().flatten())
            .collect();
        let mut out: Vec<raw::RuleGroup> = Vec::new();
        for g in groups {
            if out.iter().any(|x| x.id.as_deref() == Some(&g.id)) {
                continue;
            }
            let mut kept = Vec::new();
            for r in rules.iter().filter(|r| r.firewall_rule_group_id == g.id) {
                if !lists
                    .iter()
                    .any(|l| l.id.as_deref() == Some(&r.firewall_domain_list_id))
                {
                    self.warn(format!("{} rule {}: skipped: its domain list {} is not in list-firewall-domain-lists", g.id, r.name, r.firewall_domain_list_id));
                    continue;
                }
                kept.push(firewall_rule(r));
            }
            out.push(raw::RuleGroup {
                id: Some(g.id.clone()),
                name: g.name.clone(),
                rules: kept,
            });
        }
        for r in rules {
            if !out
                .iter()
                .any(|g| g.id.as_deref() == Some(&r.firewall_rule_group_id))
            {
                self.warn(format!(
                    "{} rule {}: skipped: the rule group is not in list-firewall-rule-groups",
                    r.firewall_rule_group_id, r.name
                ));
            }
        }
        out
    }

    fn firewall_associations(
        &mut self,
        groups: &[raw::RuleGroup],
    ) -> Vec<raw::FirewallAssociation> {
        let list: Vec<&AwsFirewallAssociation> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.firewall_rule_group_associations.iter().flatten())
            .collect();
        let mut out = Vec::new();
        for a in list {
            let label = format!(
                "association of {} with {}",
                a.firewall_rule_group_id, a.vpc_id
            );
            if a.status
                .as_deref()
                .is_some_and(|s| matches!(s, "DELETING" | "FAILED"))
            {
                continue;
            }
            if !self.has_vpc(&a.vpc_id) {
                self.warn(format!("{label} left out: that VPC is not in the input"));
                continue;
            }
            if !groups
                .iter()
                .any(|g| g.id.as_deref() == Some(&a.firewall_rule_group_id))
            {
                self.warn(format!(
                    "{label} left out: the rule group is not in list-firewall-rule-groups"
                ));
                continue;
            }
            out.push(raw::FirewallAssociation {
                rule_group: a.firewall_rule_group_id.clone(),
                vpc: a.vpc_id.clone(),
                priority: a.priority,
            });
        }
        out
    }
}

/// A rule as the topology writes it; AWS's enum spellings are kept (the topology reads them).
fn firewall_rule(r: &AwsFirewallRule) -> raw::FirewallRule {
    let block_override = r
        .block_override_domain
        .as_ref()
        .map(|d| raw::BlockOverride {
            kind: r.block_override_dns_type.clone(),
            domain: d.trim_end_matches('.').to_string(),
            ttl: r.block_override_ttl,
        });
    raw::FirewallRule {
        name: r.name.clone(),
        priority: r.priority,
        domain_list: r.firewall_domain_list_id.clone(),
        action: r.action.to_ascii_lowercase(),
        block_response: r.block_response.as_ref().map(|b| b.to_ascii_lowercase()),
        block_override,
        qtype: r.qtype.clone(),
        redirection: r.firewall_domain_redirection_action.as_deref().map(|x| {
            if x.starts_with("TRUST") {
                "trust"
            } else {
                "inspect"
            }
            .to_string()
        }),
    }
}
