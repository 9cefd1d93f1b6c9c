//! Authority: Resolver rules associated with a VPC (reference §6.3). A forward rule decides by forwarding to its
//! targets, from its outbound endpoint's address, and beats a private zone of the same domain; a system rule
//! decides nothing itself but makes less specific forward rules stand aside.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::rr::LowerName;

use super::authority::{
    Ask, Authority, Compile, Described, Flow, Lost, Registration, Resolved, Scope,
};
use super::{DecidedBy, Forwarding, Route, Trace};
use crate::topology::{Rule, RuleKind, Topology};

#[derive(Debug)]
pub(crate) struct Rules {
    rules: Vec<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    id: Arc<str>,
    domain: LowerName,
    vpcs: Vec<usize>,
    /// `None` for a system rule.
    route: Option<Arc<Route>>,
}

/// The forwarding route of a forward rule: its targets, and its outbound endpoint's first address as source.
fn route(topo: &Topology, rule: &Rule) -> Route {
    let targets: Arc<[SocketAddr]> = rule.targets.clone().into();
    Route {
        name: Arc::from(rule.id.as_str()),
        rule: Some(Arc::from(rule.id.as_str())),
        listed: rule
            .targets
            .iter()
            .map(|t| Forwarding::Target(*t))
            .collect(),
        targets,
        source: rule
            .outbound
            .and_then(|o| topo.outbound_endpoints[o].ips.first().copied()),
    }
}

impl Rules {
    pub(crate) fn compile(c: &Compile<'_>) -> Self {
        let rules = c
            .topo
            .rules
            .iter()
            .map(|r| Compiled {
                id: Arc::from(r.id.as_str()),
                domain: LowerName::new(&r.domain),
                vpcs: r.vpcs.clone(),
                route: (r.kind == RuleKind::Forward).then(|| Arc::new(route(c.topo, r))),
            })
            .collect();
        Self { rules }
    }
}

impl Authority for Rules {
    fn registrations(&self) -> Vec<Registration> {
        let mut out = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            for &vpc in &r.vpcs {
                out.push(Registration {
                    scope: Scope::Vpc(vpc),
                    domain: r.domain.clone(),
                    entry: i as u32,
                });
            }
        }
        out
    }

    fn lookup(&self, entry: u32, ask: &Ask<'_>, trace: &mut Trace) -> Flow {
        let rule = &self.rules[entry as usize];
        match &rule.route {
            None => {
                if !ask.shielded {
                    trace.add("§6.3", || format!("system rule {} for {}: the Resolver answers itself, so less specific forward rules don't apply", rule.id, rule.domain));
                }
                Flow::Shield
            }
            Some(_) if ask.shielded => Flow::Pass(Lost::ShieldedBySystemRule),
            Some(route) => {
                trace.add("§6.3", || {
                    format!(
                        "forward rule {} for {} is the most specific match",
                        rule.id, rule.domain
                    )
                });
                Flow::Decide {
                    by: DecidedBy::Rule(rule.id.clone()),
                    resolved: Resolved::Forward(route.clone()),
                    fixed: false,
                }
            }
        }
    }

    fn describe(&self, entry: u32, _domain: &LowerName) -> Described {
        let rule = &self.rules[entry as usize];
        let (kind, label) = match &rule.route {
            Some(route) => {
                let targets: Vec<String> = route.targets.iter().map(|t| t.to_string()).collect();
                (
                    "forward rule",
                    format!("{} -> {}", rule.id, targets.join(", ")),
                )
            }
            None => ("system rule", rule.id.to_string()),
        };
        Described {
            kind,
            label,
            by: DecidedBy::Rule(rule.id.clone()),
        }
    }
}
