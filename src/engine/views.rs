//! Which view answers a client (spec "Which view answers a client"): the address the query arrived on, by hash;
//! else the source address, by longest-prefix match over VPC CIDRs and `clients` before client `networks`; else
//! the default view. No lookup here scans VPCs or networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::ViewKey;
use super::prefix::{FastMap, PrefixMap};
use crate::topology::{Topology, ViewRef};

/// The link-local VPC resolver addresses every VPC answers on.
pub(crate) const LINK_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 169, 253));
pub(crate) const LINK_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x253));

/// What the local address a query arrived on is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// A VPC's resolver address (base + 2).
    VpcResolver(usize),
    /// An inbound endpoint address: (VPC, index into `Topology::inbound_endpoints`).
    Inbound(usize, usize),
    /// 169.254.169.253 or fd00:ec2::253: a VPC resolver, but which VPC the source tells.
    LinkLocal,
}

/// A source network that places clients in a view.
#[derive(Debug)]
struct Source {
    vpc: usize,
    via_inbound: bool,
    what: String,
}

/// Why a view was chosen, before it is put into words.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Why {
    Arrival(IpAddr),
    Source(u32),
    Default,
}

#[derive(Debug)]
pub(crate) struct Views {
    arrivals: FastMap<IpAddr, Arrival>,
    /// Rule 2: VPC CIDRs and `clients`.
    vpc_sources: PrefixMap<u32>,
    /// Rule 3: `networks` with `via_inbound_endpoint`.
    network_sources: PrefixMap<u32>,
    sources: Vec<Source>,
    default: Option<usize>,
}

impl Views {
    pub(crate) fn compile(topo: &Topology, default_view: ViewRef) -> Self {
        let mut arrivals = FastMap::default();
        for (vi, vpc) in topo.vpcs.iter().enumerate() {
            arrivals.insert(IpAddr::V4(vpc.resolver_ip()), Arrival::VpcResolver(vi));
        }
        for (ei, ep) in topo.inbound_endpoints.iter().enumerate() {
            for ip in &ep.ips {
                arrivals.insert(*ip, Arrival::Inbound(ep.vpc, ei));
            }
        }
        arrivals.insert(LINK_V4, Arrival::LinkLocal);
        arrivals.insert(LINK_V6, Arrival::LinkLocal);
        let mut views = Self {
            arrivals,
            vpc_sources: PrefixMap::default(),
            network_sources: PrefixMap::default(),
            sources: Vec::new(),
            default: match default_view {
                ViewRef::Vpc(vi) => Some(vi),
                ViewRef::Public => None,
            },
        };
        views.compile_sources(topo);
        views
    }

    fn add(&mut self, net: IpNet, vpc: usize, via_inbound: bool, what: String) {
        let i = self.sources.len() as u32;
        self.sources.push(Source {
            vpc,
            via_inbound,
            what,
        });
        if via_inbound {
            self.network_sources.insert(net, i);
        } else {
            self.vpc_sources.insert(net, i);
        }
    }

    fn compile_sources(&mut self, topo: &Topology) {
        for (vi, vpc) in topo.vpcs.iter().enumerate() {
            for c in &vpc.cidrs {
                self.add(
                    IpNet::V4(*c),
                    vi,
                    false,
                    format!("{c}, a CIDR of {}", vpc.label()),
                );
            }
            if let Some(c) = vpc.ipv6_cidr {
                self.add(
                    IpNet::V6(c),
                    vi,
                    false,
                    format!("{c}, the IPv6 CIDR of {}", vpc.label()),
                );
            }
            for c in &vpc.clients {
                self.add(
                    *c,
                    vi,
                    false,
                    format!("{c}, listed in `clients` of {}", vpc.label()),
                );
            }
        }
        for n in &topo.networks {
            let Some(inbound) = n.via_inbound else {
                continue;
            };
            let ep = &topo.inbound_endpoints[inbound];
            for c in &n.cidrs {
                let what = format!(
                    "{c}, network `{}`, which forwards to inbound endpoint {} of {}",
                    n.name,
                    ep.id,
                    topo.vpcs[ep.vpc].label()
                );
                self.add(*c, ep.vpc, true, what);
            }
        }
    }

    /// What the local address is, if it is one of the topology's resolver addresses.
    pub(crate) fn arrival(&self, local: Option<IpAddr>) -> Option<Arrival> {
        local.and_then(|l| self.arrivals.get(&l.to_canonical()).copied())
    }

    /// The view for a source arriving on `arrival`, and why.
    pub(crate) fn choose(
        &self,
        src: IpAddr,
        arrival: Option<Arrival>,
        local: Option<IpAddr>,
    ) -> (ViewKey, Why) {
        let at = |vpc: usize, via_inbound: bool| ViewKey {
            vpc: Some(vpc as u32),
            via_inbound,
        };
        match (arrival, local) {
            (Some(Arrival::VpcResolver(vi)), Some(l)) => return (at(vi, false), Why::Arrival(l)),
            (Some(Arrival::Inbound(vi, _)), Some(l)) => return (at(vi, true), Why::Arrival(l)),
            _ => {}
        }
        let found = self
            .vpc_sources
            .get(src)
            .or_else(|| self.network_sources.get(src));
        if let Some(&i) = found {
            let s = &self.sources[i as usize];
            return (at(s.vpc, s.via_inbound), Why::Source(i));
        }
        let key = ViewKey {
            vpc: self.default.map(|v| v as u32),
            via_inbound: false,
        };
        (key, Why::Default)
    }

    pub(crate) fn source_text(&self, i: u32) -> &str {
        &self.sources[i as usize].what
    }

    /// Whether a network maps to `vpc` through an inbound endpoint.
    pub(crate) fn has_inbound_network(&self, vpc: usize) -> bool {
        self.sources.iter().any(|s| s.vpc == vpc && s.via_inbound)
    }
}
