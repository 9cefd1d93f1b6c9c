//! Authority: Resolver DELEGATE rules (reference §12.3). At the rule's delegation record, in each VPC it is
//! associated with, the NS records for that name in a private hosted zone of the VPC name the servers to follow;
//! their addresses come from the zones' own records (glue; where AWS takes them from is UNCONFIRMED), port 53, and
//! the queries leave from the rule's outbound endpoint. Without such NS records the rule does not apply and the
//! name resolves as if it were absent.

use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name};

use super::authority::{
    Ask, Authority, Compile, Described, Flow, Lost, Registration, Resolved, Scope,
};
use super::{DecidedBy, Forwarding, Route, Trace};
use crate::topology::{Delegation, Topology};

#[derive(Debug)]
pub(crate) struct Delegations {
    /// (rule id, delegation record, VPC, route: `None` when the VPC's zones hold no NS delegation for it).
    entries: Vec<(Arc<str>, LowerName, usize, Option<Followed>)>,
}

/// The route to the delegated servers and their names.
type Followed = (Arc<Route>, Vec<Name>);

impl Delegations {
    pub(crate) fn compile(c: &Compile<'_>) -> Self {
        let mut entries = Vec::new();
        for d in &c.topo.delegations {
            for &vpc in &d.vpcs {
                let route = route(c.topo, d, vpc);
                entries.push((
                    Arc::from(d.id.as_str()),
                    LowerName::new(&d.record),
                    vpc,
                    route,
                ));
            }
        }
        Self { entries }
    }
}

/// The route to the servers the VPC's zones delegate the record to; `None` without such a delegation.
fn route(topo: &Topology, d: &Delegation, vpc: usize) -> Option<Followed> {
    let (servers, targets) = topo.delegation_servers(d, vpc);
    if targets.is_empty() {
        return None;
    }
    let route = Route {
        name: Arc::from(d.id.as_str()),
        rule: Some(Arc::from(d.id.as_str())),
        listed: targets.iter().map(|t| Forwarding::Target(*t)).collect(),
        targets: targets.into(),
        source: topo.outbound_endpoints[d.outbound].ips.first().copied(),
    };
    Some((Arc::new(route), servers))
}

impl Authority for Delegations {
    fn registrations(&self) -> Vec<Registration> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, (_, record, vpc, _))| Registration {
                scope: Scope::Vpc(*vpc),
                domain: record.clone(),
                entry: i as u32,
            })
            .collect()
    }

    fn lookup(&self, entry: u32, ask: &Ask<'_>, trace: &mut Trace) -> Flow {
        let (id, record, _, route) = &self.entries[entry as usize];
        let Some((route, servers)) = route else {
            trace.add("§12.3", || format!("delegate rule {id} for {record}: no NS records for it in the VPC's private hosted zones, so there is no delegation to follow"));
            return Flow::Pass(Lost::NotApplicable);
        };
        if ask.shielded {
            return Flow::Pass(Lost::ShieldedBySystemRule);
        }
        trace.add("§12.3", || {
            let names: Vec<String> = servers.iter().map(ToString::to_string).collect();
            let addrs: Vec<String> = route.targets.iter().map(ToString::to_string).collect();
            format!("delegate rule {id}: the private hosted zone delegates {record} to {}; following the delegation to {} (addresses from the zone, port 53; UNCONFIRMED where AWS takes them from) from the outbound endpoint", names.join(", "), addrs.join(", "))
        });
        Flow::Decide {
            by: DecidedBy::Rule(id.clone()),
            resolved: Resolved::Forward(route.clone()),
            fixed: false,
        }
    }

    fn describe(&self, entry: u32, _domain: &LowerName) -> Described {
        let (id, ..) = &self.entries[entry as usize];
        Described {
            kind: "delegate rule",
            label: id.to_string(),
            by: DecidedBy::Rule(id.clone()),
        }
    }
}
