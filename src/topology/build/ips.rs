//! Addresses of ENIs and Resolver endpoints: explicit ones checked, default ones assigned deterministically.

use super::*;

/// A resolver endpoint address, ENI or instance waiting for a default address once every explicit one is claimed.
pub(super) struct PendingIp {
    pub(super) slot: Slot,
    pub(super) subnet: Ipv4Net,
    pub(super) seed: String,
}

/// Where a default address goes.
pub(super) enum Slot {
    /// (inbound endpoint, address index)
    Inbound(usize, usize),
    /// (outbound endpoint, address index)
    Outbound(usize, usize),
    /// (endpoint, ENI index)
    Eni(usize, usize),
    Instance(usize),
}

impl Builder<'_> {
    pub(super) fn lookup_vpc(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        vpc: Option<&str>,
    ) -> Option<usize> {
        match vpc {
            Some(key) => match self.vpc_index.get(key) {
                Some(i) => Some(*i),
                None => {
                    if !ctx.broken_ids.contains(key) {
                        let known: Vec<&str> =
                            self.topo.vpcs.iter().map(|v| v.id.as_str()).collect();
                        ctx.err(o.file, path, format!("unknown VPC `{key}`; write the id or name of a VPC under `vpcs` ({})", known.join(", ")));
                    }
                    None
                }
            },
            None if self.topo.vpcs.len() == 1 => Some(0),
            // A VPC that failed to parse is already reported; guessing which one was meant would only add noise.
            None if self.vpcs_broken => None,
            None => {
                ctx.err(
                    o.file,
                    path,
                    format!("which VPC? add `vpc:` with one of: {}", self.vpc_list()),
                );
                None
            }
        }
    }

    /// A Resolver endpoint named by its id, or by its VPC when that VPC has exactly one; reported when unknown.
    pub(super) fn resolver_endpoint_ref(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        key: &str,
        inbound: bool,
    ) -> Option<usize> {
        let (endpoints, kind) = if inbound {
            (&self.topo.inbound_endpoints, "inbound")
        } else {
            (&self.topo.outbound_endpoints, "outbound")
        };
        let found = endpoints
            .iter()
            .position(|e| e.id == key)
            .or_else(|| self.only_endpoint_of_vpc(endpoints, key));
        if found.is_none() && !ctx.broken_ids.contains(key) {
            let list: Vec<&str> = endpoints.iter().map(|e| e.id.as_str()).collect();
            let list = if list.is_empty() {
                "none is defined yet".to_string()
            } else {
                list.join(", ")
            };
            ctx.err(o.file, path, format!("unknown {kind} endpoint `{key}`; define it under resolver.{kind}_endpoints ({list})"));
        }
        found
    }

    /// `key` names a VPC that has exactly one of `endpoints`: that endpoint.
    pub(super) fn only_endpoint_of_vpc(
        &self,
        endpoints: &[ResolverEndpoint],
        key: &str,
    ) -> Option<usize> {
        let vpc = *self.vpc_index.get(key)?;
        let mut found = endpoints.iter().enumerate().filter(|(_, e)| e.vpc == vpc);
        match (found.next(), found.next()) {
            (Some((idx, _)), None) => Some(idx),
            _ => None,
        }
    }

    pub(super) fn vpc_list(&self) -> String {
        let ids: Vec<String> = self.topo.vpcs.iter().map(Vpc::label).collect();
        if ids.is_empty() {
            "(no VPCs are defined)".into()
        } else {
            ids.join(", ")
        }
    }

    /// Explicit addresses of a resolver endpoint or ENI: inside a subnet of the VPC and not reserved or taken.
    pub(super) fn check_ip(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        vpc: usize,
        ip: IpAddr,
    ) -> Option<usize> {
        let subnets = &self.topo.vpcs[vpc].subnets;
        let found = subnets.iter().position(|s| match ip {
            IpAddr::V4(v4) => s.cidr.contains(&v4),
            IpAddr::V6(v6) => s.ipv6_cidr.is_some_and(|c| c.contains(&v6)),
        });
        match found {
            None => {
                let list: Vec<String> = subnets
                    .iter()
                    .map(|s| format!("{} {}", s.id, s.cidr))
                    .collect();
                ctx.err(
                    o.file,
                    path,
                    format!(
                        "{ip} is in no subnet of {} ({}); write an address inside one of them",
                        self.topo.vpcs[vpc].id,
                        list.join(", ")
                    ),
                );
                None
            }
            Some(si) => {
                if let IpAddr::V4(v4) = ip
                    && is_reserved(subnets[si].cidr, v4)
                {
                    ctx.err(o.file, path, format!("{ip} is reserved by AWS in subnet {} (the first four addresses and the last are); write e.g. {}", subnets[si].cidr, nth_host(subnets[si].cidr, 10)));
                }
                if !self.used_ips.insert(ip) {
                    ctx.err(o.file, path, format!("{ip} is already used by another ENI or resolver endpoint; each address belongs to one interface"));
                }
                Some(si)
            }
        }
    }

    /// Deterministic free addresses: a hash of the owner picks the first candidate, so adding an endpoint doesn't move
    /// the others' addresses; collisions and reserved addresses step to the next one.
    pub(super) fn assign_default_ips(&mut self, ctx: &mut Ctx<'_>, pending: Vec<PendingIp>) {
        for p in pending {
            let hosts = (1u64 << (32 - p.subnet.prefix_len()))
                .saturating_sub(5)
                .max(1);
            let start = stable_hash(&[&p.seed]) % hosts;
            let found = (0..hosts)
                .map(|k| nth_host(p.subnet, 4 + ((start + k) % hosts) as u32))
                .find(|ip| !self.used_ips.contains(&IpAddr::V4(*ip)));
            let Some(ip) = found else {
                let file = &ctx.files[0];
                ctx.err(
                    file,
                    &YamlPath::default(),
                    format!(
                        "subnet {} has no free address left for {}",
                        p.subnet, p.seed
                    ),
                );
                continue;
            };
            self.used_ips.insert(IpAddr::V4(ip));
            match p.slot {
                Slot::Inbound(e, k) => self.topo.inbound_endpoints[e].ips[k] = IpAddr::V4(ip),
                Slot::Outbound(e, k) => self.topo.outbound_endpoints[e].ips[k] = IpAddr::V4(ip),
                Slot::Eni(e, k) => self.topo.endpoints[e].enis[k].ip = Some(ip),
                Slot::Instance(i) => self.topo.instances[i].ip = ip,
            }
        }
    }

    pub(super) fn vpc_refs(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        list: Option<&[String]>,
    ) -> Vec<usize> {
        match list {
            None => (0..self.topo.vpcs.len()).collect(),
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(j, key)| self.lookup_vpc(ctx, o, &path.index(j), Some(key)))
                .collect(),
        }
    }
}

/// The first four addresses and the last of every subnet are AWS's.
pub(super) fn is_reserved(subnet: Ipv4Net, ip: Ipv4Addr) -> bool {
    let offset = u32::from(ip) - u32::from(subnet.network());
    offset < 4 || ip == subnet.broadcast()
}

pub(super) fn nth_host(subnet: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()).wrapping_add(n))
}

pub(super) fn v6_host(subnet: Ipv6Net, n: u64) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) + u128::from(n))
}
