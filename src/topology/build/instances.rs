//! `instances:`: EC2 instances, for the names the VPC resolver answers about them (reference §12.5).

use super::*;

impl Builder<'_> {
    pub(super) fn instances(&mut self, ctx: &mut Ctx<'_>) -> Vec<PendingIp> {
        let mut pending = Vec::new();
        let subnets: HashMap<String, (usize, usize)> = self
            .topo
            .vpcs
            .iter()
            .enumerate()
            .flat_map(|(v, vpc)| {
                vpc.subnets
                    .iter()
                    .enumerate()
                    .map(move |(s, subnet)| (subnet.id.clone(), (v, s)))
            })
            .collect();
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.instances.iter().enumerate() {
                let path = YamlPath::default().key("instances").index(i);
                let Some(x) = o
                    .file
                    .item::<raw::Instance>(&item.value, &path, &mut ctx.diags)
                else {
                    note_broken(ctx, &item.value);
                    continue;
                };
                if let Some(id) = &x.id
                    && !valid_id(id, "i-")
                    && !subnets.contains_key(&x.subnet)
                {
                    ctx.err(
                        o.file,
                        &path.key("id"),
                        format!("malformed instance id `{id}`; {}", id_hint("i-")),
                    );
                }
                let Some(&(vpc, subnet)) = subnets.get(&x.subnet) else {
                    if !ctx.broken_ids.contains(&x.subnet) {
                        ctx.err(o.file, &path.key("subnet"), format!("unknown subnet `{}`; write the id of a subnet under `vpcs[].subnets`", x.subnet));
                    }
                    continue;
                };
                if let Some(instance) =
                    self.instance(ctx, o, &path, &x, (vpc, subnet), &mut pending)
                {
                    self.topo.instances.push(instance);
                }
            }
        }
        pending
    }

    fn instance(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        x: &raw::Instance,
        (vpc, subnet): (usize, usize),
        pending: &mut Vec<PendingIp>,
    ) -> Option<Instance> {
        let s = self.topo.vpcs[vpc].subnets[subnet].clone();
        let id = match &x.id {
            Some(id) if valid_id(id, "i-") => id.clone(),
            Some(id) => {
                ctx.err(
                    o.file,
                    &path.key("id"),
                    format!("malformed instance id `{id}`; {}", id_hint("i-")),
                );
                id.clone()
            }
            None => derived_id(
                "i-",
                &["instance", &s.id, &self.topo.instances.len().to_string()],
            ),
        };
        self.claim_id(ctx, o, &path.key("id"), &id);
        let ip = match &x.ip {
            Some(text) => self.instance_ip(ctx, o, &path.key("ip"), vpc, &s, text),
            None => {
                pending.push(PendingIp {
                    slot: Slot::Instance(self.topo.instances.len()),
                    subnet: s.cidr,
                    seed: id.clone(),
                });
                Some(Ipv4Addr::UNSPECIFIED)
            }
        };
        let ipv6 = x
            .ipv6
            .as_deref()
            .and_then(|t| self.explicit_ipv6(ctx, o, &path.key("ipv6"), &s, t));
        let public_ip = x
            .public_ip
            .as_deref()
            .and_then(|t| public_ip(ctx, o, &path.key("public_ip"), t));
        let hostname_type = match x.hostname_type.as_deref().map(|t| {
            parse_choice(
                t,
                "hostname_type",
                &[
                    (&["ip-name"], HostnameType::IpName),
                    (&["resource-name"], HostnameType::ResourceName),
                ],
            )
        }) {
            None => HostnameType::IpName,
            Some(Ok(t)) => t,
            Some(Err(msg)) => {
                ctx.err(o.file, &path.key("hostname_type"), msg);
                HostnameType::IpName
            }
        };
        let resource_name_aaaa = x.resource_name_aaaa.unwrap_or(false);
        if resource_name_aaaa && ipv6.is_none() && x.ipv6.is_none() {
            ctx.err(o.file, &path.key("resource_name_aaaa"), "an AAAA record for the resource name needs the instance's IPv6 address; add `ipv6:` (in a subnet with an `ipv6_cidr`) or write `resource_name_aaaa: false`");
        }
        Some(Instance {
            id,
            vpc,
            subnet,
            ip: ip?,
            ipv6,
            public_ip,
            hostname_type,
            resource_name_a: x.resource_name_a.unwrap_or(false),
            resource_name_aaaa,
        })
    }

    /// An explicit primary address: inside the instance's own subnet, not reserved, not taken.
    fn instance_ip(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        vpc: usize,
        s: &Subnet,
        text: &str,
    ) -> Option<Ipv4Addr> {
        let Ok(ip) = text.parse::<Ipv4Addr>() else {
            ctx.err(
                o.file,
                path,
                format!(
                    "`{text}` is not an IPv4 address; write e.g. {}",
                    nth_host(s.cidr, 10)
                ),
            );
            return None;
        };
        if !s.cidr.contains(&ip) {
            ctx.err(
                o.file,
                path,
                format!(
                    "{ip} is outside subnet {} ({}); write an address inside it, e.g. {}",
                    s.id,
                    s.cidr,
                    nth_host(s.cidr, 10)
                ),
            );
            return None;
        }
        self.check_ip(ctx, o, path, vpc, IpAddr::V4(ip));
        Some(ip)
    }
}

/// A public IPv4 address: not private, shared, loopback or link-local (those are never Elastic or public IPs).
fn public_ip(ctx: &mut Ctx<'_>, o: Origin<'_>, path: &YamlPath, text: &str) -> Option<Ipv4Addr> {
    let Ok(ip) = text.parse::<Ipv4Addr>() else {
        ctx.err(
            o.file,
            path,
            format!("`{text}` is not an IPv4 address; write e.g. 203.0.113.25"),
        );
        return None;
    };
    let shared = ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1]);
    if ip.is_private() || ip.is_loopback() || ip.is_link_local() || ip.is_unspecified() || shared {
        ctx.err(o.file, path, format!("{ip} is not a public address; a public IP is one the internet routes, e.g. 203.0.113.25 (write private addresses as `ip`)"));
        return None;
    }
    Some(ip)
}
