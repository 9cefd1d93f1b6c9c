//! Who may ask (spec "Who may ask"): by where the query arrives and who sends it. An inbound endpoint address admits
//! its `allowed_sources` (any source when absent); a VPC resolver address admits everyone (the arrival places the
//! client in that VPC); anywhere else the source must be loopback (unless the topology writes `allow`), in a VPC's
//! CIDRs or `clients`, a `networks` entry, `allow`, or `--allow`. Each check is one longest-prefix lookup.

use std::net::IpAddr;

use ipnet::IpNet;

use super::Reason;
use super::prefix::PrefixMap;
use super::views::Arrival;
use crate::topology::{self, Topology};

/// Why a query was admitted, for the trace.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Admit {
    /// On an inbound endpoint address, from a source its security group admits (or with no `allowed_sources`).
    Inbound { listed: bool },
    /// On a VPC resolver address.
    VpcResolver,
    /// Elsewhere, from a source that may ask.
    Source,
}

#[derive(Debug)]
pub(crate) struct Admission {
    /// Sources admitted anywhere else.
    allowed: PrefixMap<()>,
    /// Per inbound endpoint: its `allowed_sources`, `None` = any source.
    inbound: Vec<Option<PrefixMap<()>>>,
    inbound_ids: Vec<String>,
}

fn set(nets: impl IntoIterator<Item = IpNet>) -> PrefixMap<()> {
    let mut m = PrefixMap::default();
    for n in nets {
        m.insert(n, ());
    }
    m
}

impl Admission {
    /// `extra` is `--allow`: it only ever adds.
    pub(crate) fn compile(topo: &Topology, extra: &[IpNet]) -> Self {
        let mut nets: Vec<IpNet> = if topo.allow_explicit {
            Vec::new()
        } else {
            topology::loopback()
        };
        for vpc in &topo.vpcs {
            nets.extend(vpc.cidrs.iter().map(|c| IpNet::V4(*c)));
            nets.extend(vpc.ipv6_cidr.map(IpNet::V6));
            nets.extend(vpc.clients.iter().copied());
        }
        for n in &topo.networks {
            nets.extend(n.cidrs.iter().copied());
        }
        nets.extend(topo.allow.iter().copied());
        nets.extend(extra.iter().copied());
        Self {
            allowed: set(nets),
            inbound: topo
                .inbound_endpoints
                .iter()
                .map(|e| e.allowed_sources.as_ref().map(|l| set(l.iter().copied())))
                .collect(),
            inbound_ids: topo
                .inbound_endpoints
                .iter()
                .map(|e| e.id.clone())
                .collect(),
        }
    }

    pub(crate) fn admit(&self, src: IpAddr, arrival: Option<Arrival>) -> Result<Admit, Reason> {
        match arrival {
            Some(Arrival::Inbound(_, ei)) => match &self.inbound[ei] {
                None => Ok(Admit::Inbound { listed: false }),
                Some(sg) if sg.contains(src) => Ok(Admit::Inbound { listed: true }),
                Some(_) => Err(Reason::InboundSecurityGroup(self.inbound_ids[ei].clone())),
            },
            Some(Arrival::VpcResolver(_) | Arrival::LinkLocal) => Ok(Admit::VpcResolver),
            None if self.allowed.contains(src) => Ok(Admit::Source),
            None => Err(Reason::SourceNotAllowed),
        }
    }
}
