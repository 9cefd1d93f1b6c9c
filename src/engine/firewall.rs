//! Route 53 Resolver DNS Firewall (reference §12.1): the rule groups associated with a VPC, directly or through
//! its Route 53 Profile, checked against every query of the VPC's view (its own instances and what comes in
//! through its inbound endpoints) before any authority answers: private hosted zone, endpoint and EC2 names are
//! filtered too. Rule groups by association priority, lowest first; rules by priority; the first match ends the
//! evaluation.
//!
//! A firewall does not answer at a domain, so it is not an [`Authority`](super::authority::Authority) of the walk:
//! the engine asks [`Firewall::check`] once per name it is about to resolve (each name of a CNAME chain, unless
//! the rule trusts redirections), and a block ends the decision.

use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};
use serde::Serialize;

use super::Trace;
use super::authority::Compile;
use crate::topology::{
    AssociatedWith, BlockResponse, DomainPattern, FirewallAction, Redirection, Topology,
};

/// A rule as one VPC evaluates it.
#[derive(Debug)]
struct Compiled {
    group: Arc<str>,
    rule: Arc<str>,
    list: Arc<str>,
    domains: Arc<[DomainPattern]>,
    action: FirewallAction,
    qtype: Option<RecordType>,
    redirection: Redirection,
    /// How the group applies, for `explain`: `association priority 101` or `Profile rp-… priority 102`.
    via: Arc<str>,
}

/// A rule that matched, as data: the query log and metrics show ALERT and BLOCK matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirewallMatch {
    pub rule_group: String,
    pub rule: String,
    pub domain_list: String,
    /// `ALLOW`, `ALERT` or `BLOCK`, as AWS's query log writes it.
    pub action: &'static str,
    /// The name that matched (the question, or a name of its CNAME chain).
    pub name: String,
}

/// What the engine does with a checked name.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// No rule matched, or ALLOW / ALERT: resolve it.
    Resolve,
    /// BLOCK with this response.
    Block(BlockResponse),
}

#[derive(Debug, Default)]
pub(crate) struct Firewall {
    /// Per VPC: its rules in evaluation order.
    per_vpc: Vec<Vec<Compiled>>,
}

impl Firewall {
    pub(crate) fn compile(c: &Compile<'_>) -> Self {
        let topo = c.topo;
        let per_vpc = (0..topo.vpcs.len()).map(|vi| vpc_rules(topo, vi)).collect();
        Self { per_vpc }
    }

    /// Whether `vpc`'s view has any rule (its forwarded answers must then be inspected, never replayed as they are).
    pub(crate) fn applies(&self, vpc: Option<usize>) -> bool {
        vpc.and_then(|v| self.per_vpc.get(v))
            .is_some_and(|rules| !rules.is_empty())
    }

    /// Checks `name` (`first`: the question itself, else a CNAME target) for a query of `vpc`'s view. A match is
    /// recorded in `hit` (the first ALERT or BLOCK wins the record).
    pub(crate) fn check(
        &self,
        vpc: Option<usize>,
        name: &Name,
        qtype: RecordType,
        first: bool,
        trace: &mut Trace,
        hit: &mut Option<FirewallMatch>,
    ) -> Verdict {
        let Some(rules) = vpc.and_then(|v| self.per_vpc.get(v)) else {
            return Verdict::Resolve;
        };
        for r in rules {
            // TRUST_REDIRECTION_DOMAIN: only the question's own name is inspected.
            if !first && r.redirection == Redirection::Trust {
                continue;
            }
            if r.qtype.is_some_and(|t| t != qtype) {
                continue;
            }
            if !r.domains.iter().any(|d| d.matches(name)) {
                continue;
            }
            let action = action_name(&r.action);
            let chain = if first {
                ""
            } else {
                " (a name of the CNAME chain: redirection inspect)"
            };
            trace.add("§12.1", || format!(
                "DNS Firewall: {name}{chain} matches domain list {} in rule {} of rule group {} ({}): {action}",
                r.list, r.rule, r.group, r.via
            ));
            if !matches!(r.action, FirewallAction::Allow) && hit.is_none() {
                *hit = Some(FirewallMatch {
                    rule_group: r.group.to_string(),
                    rule: r.rule.to_string(),
                    domain_list: r.list.to_string(),
                    action,
                    name: name.to_string(),
                });
            }
            return match &r.action {
                FirewallAction::Block(response) => Verdict::Block(response.clone()),
                _ => Verdict::Resolve,
            };
        }
        if first && !rules.is_empty() {
            trace.add("§12.1", || format!("DNS Firewall: no rule of the VPC's {} rule(s) matches {name} {qtype}: it resolves normally", rules.len()));
        }
        Verdict::Resolve
    }
}

fn action_name(action: &FirewallAction) -> &'static str {
    match action {
        FirewallAction::Allow => "ALLOW",
        FirewallAction::Alert => "ALERT",
        FirewallAction::Block(_) => "BLOCK",
    }
}

/// The rules that filter `vpc`'s queries, in evaluation order (`Topology::firewall_of`, then rule priority).
fn vpc_rules(topo: &Topology, vpc: usize) -> Vec<Compiled> {
    let mut out = Vec::new();
    for a in topo.firewall_of(vpc) {
        let group = &topo.firewall.rule_groups[a.rule_group];
        let via: Arc<str> = match a.target {
            AssociatedWith::Vpc(_) => {
                Arc::from(format!("associated with the VPC, priority {}", a.priority))
            }
            AssociatedWith::Profile(p) => Arc::from(format!(
                "through Route 53 Profile {}, priority {}",
                topo.profiles[p].id, a.priority
            )),
        };
        for rule in &group.rules {
            let list = &topo.firewall.domain_lists[rule.domain_list];
            out.push(Compiled {
                group: Arc::from(group.id.as_str()),
                rule: Arc::from(rule.name.as_str()),
                list: Arc::from(list.id.as_str()),
                domains: Arc::from(list.domains.clone()),
                action: rule.action.clone(),
                qtype: rule.qtype,
                redirection: rule.redirection,
                via: via.clone(),
            });
        }
    }
    out
}
