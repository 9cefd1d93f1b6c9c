//! `vpcs:` and their subnets.

use super::*;

/// CIDRs claimed so far, with their owner's id: VPCs and subnets must not overlap.
#[derive(Default)]
pub(super) struct ClaimedNets {
    vpcs: Vec<(Ipv4Net, String)>,
    subnets: Vec<(Ipv4Net, String)>,
}

impl Builder<'_> {
    pub(super) fn vpcs(&mut self, ctx: &mut Ctx<'_>) {
        let mut claimed = ClaimedNets::default();
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.vpcs.iter().enumerate() {
                let path = YamlPath::default().key("vpcs").index(i);
                let Some(v) = o.file.item::<raw::Vpc>(&item.value, &path, &mut ctx.diags) else {
                    self.vpcs_broken = true;
                    note_broken_vpc(ctx, &item.value);
                    continue;
                };
                if !self.vpc(ctx, o, &path, &v, &mut claimed) {
                    note_broken_vpc(ctx, &item.value);
                }
            }
        }
    }

    /// One VPC; false when it has no usable CIDR (then it is not built, and references to it are not reported).
    fn vpc(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        v: &raw::Vpc,
        claimed: &mut ClaimedNets,
    ) -> bool {
        let ordinal = self.topo.vpcs.len();
        let id = self.vpc_id(ctx, o, path, v, ordinal);
        let cidrs = vpc_cidrs(ctx, o, path, v, claimed);
        claimed
            .vpcs
            .extend(cidrs.iter().map(|net| (*net, id.clone())));
        let ipv6_cidr = v.ipv6_cidr.as_ref().and_then(|t| {
            parse_v6_net(t)
                .map_err(|m| ctx.err(o.file, &path.key("ipv6_cidr"), m))
                .ok()
        });
        let mut clients = nets(ctx, o, &path.key("clients"), v.clients.as_deref());
        let subnets = match &v.subnets {
            Some(list) => {
                if v.azs.is_some() {
                    ctx.err(
                        o.file,
                        &path.key("azs"),
                        "`azs` only applies when `subnets` is absent; remove one of them",
                    );
                }
                let vpc = VpcShape {
                    id: &id,
                    cidrs: &cidrs,
                    ipv6_cidr,
                };
                self.written_subnets(ctx, o, &path.key("subnets"), &vpc, list, claimed)
            }
            None => self.default_subnets(ctx, o, path, &id, v.azs.as_ref(), &cidrs, ipv6_cidr),
        };
        if cidrs.is_empty() {
            return false;
        }
        // Sources that count as inside a subnet count as inside its VPC too.
        clients.extend(subnets.iter().flat_map(|s| s.clients.iter().copied()));
        for key in [Some(id.clone()), v.name.clone()].into_iter().flatten() {
            self.vpc_index.entry(key).or_insert(ordinal);
        }
        self.topo.vpcs.push(Vpc {
            id,
            name: v.name.clone(),
            cidrs,
            ipv6_cidr,
            dns_support: v.enable_dns_support.unwrap_or(true),
            dns_hostnames: v.enable_dns_hostnames.unwrap_or(true),
            clients,
            subnets,
        });
        self.vpc_paths.push((o.idx, path.clone()));
        true
    }

    fn vpc_id(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        v: &raw::Vpc,
        ordinal: usize,
    ) -> String {
        let id = match &v.id {
            Some(id) if valid_id(id, "vpc-") => id.clone(),
            Some(id) => {
                ctx.err(
                    o.file,
                    &path.key("id"),
                    format!("malformed VPC id `{id}`; {}", id_hint("vpc-")),
                );
                id.clone()
            }
            None => derived_id(
                "vpc-",
                &["vpc", v.name.as_deref().unwrap_or(""), &ordinal.to_string()],
            ),
        };
        self.claim_id(ctx, o, &path.key("id"), &id);
        id
    }

    fn written_subnets(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        vpc: &VpcShape<'_>,
        list: &[raw::Subnet],
        claimed: &mut ClaimedNets,
    ) -> Vec<Subnet> {
        let mut subnets = Vec::new();
        for (j, s) in list.iter().enumerate() {
            if let Some(subnet) = self.subnet(ctx, o, &path.index(j), vpc, s, j, claimed) {
                subnets.push(subnet);
            }
        }
        subnets
    }

    #[allow(clippy::too_many_arguments)]
    fn subnet(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        sp: &YamlPath,
        vpc: &VpcShape<'_>,
        s: &raw::Subnet,
        j: usize,
        claimed: &mut ClaimedNets,
    ) -> Option<Subnet> {
        let sid = match &s.id {
            Some(sid) if valid_id(sid, "subnet-") => sid.clone(),
            Some(sid) => {
                ctx.err(
                    o.file,
                    &sp.key("id"),
                    format!("malformed subnet id `{sid}`; {}", id_hint("subnet-")),
                );
                sid.clone()
            }
            None => derived_id("subnet-", &["subnet", vpc.id, &j.to_string()]),
        };
        self.claim_id(ctx, o, &sp.key("id"), &sid);
        let region = &self.topo.region;
        let az = match &s.az {
            Some(az) => normalize_az(region, az)
                .map_err(|msg| ctx.err(o.file, &sp.key("az"), msg))
                .ok()?,
            None => az_name(region, j),
        };
        let cidr = parse_v4_net(&s.cidr)
            .map_err(|msg| ctx.err(o.file, &sp.key("cidr"), msg))
            .ok()?;
        check_subnet_cidr(ctx, o, &sp.key("cidr"), vpc, cidr, claimed);
        claimed.subnets.push((cidr, sid.clone()));
        let ipv6_cidr = s
            .ipv6_cidr
            .as_ref()
            .and_then(|t| subnet_ipv6(ctx, o, &sp.key("ipv6_cidr"), vpc.ipv6_cidr, t));
        let clients = nets(ctx, o, &sp.key("clients"), s.clients.as_deref());
        Some(Subnet {
            id: sid,
            az,
            cidr,
            ipv6_cidr,
            dns64: s.enable_dns64.unwrap_or(false),
            clients,
        })
    }

    /// One /24 per AZ at the start of the primary CIDR (10.0.1.0/24, 10.0.2.0/24, ...), or quarters of a small VPC.
    #[allow(clippy::too_many_arguments)]
    fn default_subnets(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        id: &str,
        azs: Option<&raw::Azs>,
        cidrs: &[Ipv4Net],
        ipv6_cidr: Option<Ipv6Net>,
    ) -> Vec<Subnet> {
        let Some(primary) = cidrs.first() else {
            return Vec::new();
        };
        let azs = default_azs(ctx, o, &path.key("azs"), &self.topo.region, azs);
        let prefix = if primary.prefix_len() <= 20 {
            24
        } else {
            (primary.prefix_len() + 2).min(28)
        };
        let mut nets = primary.subnets(prefix).into_iter().flatten();
        if prefix == 24 {
            nets.next();
        }
        let mut subnets = Vec::new();
        for (k, az) in azs.into_iter().enumerate() {
            let Some(cidr) = nets.next() else { break };
            let sid = derived_id("subnet-", &["subnet", id, &k.to_string()]);
            self.claim_id(ctx, o, &path.key("subnets"), &sid);
            subnets.push(Subnet {
                id: sid,
                az,
                cidr,
                ipv6_cidr: ipv6_cidr.and_then(|v6| v6.subnets(64).ok()?.nth(k + 1)),
                dns64: false,
                clients: Vec::new(),
            });
        }
        subnets
    }
}

/// A VPC that is not built: references to it and to its subnets are not reported again.
fn note_broken_vpc(ctx: &mut Ctx<'_>, value: &serde_norway::Value) {
    note_broken(ctx, value);
    let subnets = value.get("subnets").and_then(|s| s.as_sequence());
    for subnet in subnets.into_iter().flatten() {
        note_broken(ctx, subnet);
    }
}

/// What a subnet is checked against.
struct VpcShape<'a> {
    id: &'a str,
    cidrs: &'a [Ipv4Net],
    ipv6_cidr: Option<Ipv6Net>,
}

/// `cidr` and/or `cidrs`: /16 to /28, not overlapping each other or another VPC's.
fn vpc_cidrs(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    v: &raw::Vpc,
    claimed: &ClaimedNets,
) -> Vec<Ipv4Net> {
    let mut texts: Vec<(String, YamlPath)> = Vec::new();
    if let Some(c) = &v.cidr {
        texts.push((c.clone(), path.key("cidr")));
    }
    for (j, c) in v.cidrs.iter().flatten().enumerate() {
        texts.push((c.clone(), path.key("cidrs").index(j)));
    }
    if texts.is_empty() {
        ctx.err(
            o.file,
            path,
            "VPC has no `cidr`; add e.g. `cidr: 10.0.0.0/16`",
        );
    }
    let mut cidrs: Vec<Ipv4Net> = Vec::new();
    for (text, p) in &texts {
        let net = match parse_v4_net(text) {
            Ok(net) => net,
            Err(msg) => {
                ctx.err(o.file, p, msg);
                continue;
            }
        };
        if !(16..=28).contains(&net.prefix_len()) {
            ctx.err(
                o.file,
                p,
                format!(
                    "VPC CIDR `{text}` must be between /16 and /28, as in AWS; e.g. `10.0.0.0/16`"
                ),
            );
            continue;
        }
        for (other, owner) in &claimed.vpcs {
            if overlaps(*other, net) {
                ctx.err(o.file, p, format!("VPC CIDR {net} overlaps {other} of {owner}; each VPC's addresses choose its view, so give VPCs distinct CIDRs (use `clients` to add sources)"));
            }
        }
        if cidrs.iter().any(|c| overlaps(*c, net)) {
            ctx.err(
                o.file,
                p,
                format!("CIDR {net} overlaps another CIDR of this VPC"),
            );
        }
        cidrs.push(net);
    }
    cidrs
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A subnet CIDR is inside its VPC, /28 or larger, and overlaps no other subnet.
fn check_subnet_cidr(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    vpc: &VpcShape<'_>,
    cidr: Ipv4Net,
    claimed: &ClaimedNets,
) {
    if !vpc.cidrs.is_empty() && !vpc.cidrs.iter().any(|vc| vc.contains(&cidr)) {
        let list: Vec<String> = vpc.cidrs.iter().map(|c| c.to_string()).collect();
        ctx.err(
            o.file,
            path,
            format!(
                "subnet {cidr} is outside VPC {} ({}); write a CIDR inside one of the VPC's CIDRs",
                vpc.id,
                list.join(", ")
            ),
        );
    }
    if cidr.prefix_len() > 28 {
        ctx.err(
            o.file,
            path,
            format!("subnet {cidr} is smaller than /28, the smallest AWS allows"),
        );
    }
    for (other, owner) in &claimed.subnets {
        if overlaps(*other, cidr) {
            ctx.err(o.file, path, format!("subnet {cidr} overlaps subnet {other} ({owner}); subnets of a VPC must not overlap"));
        }
    }
}

fn subnet_ipv6(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    vpc_v6: Option<Ipv6Net>,
    text: &str,
) -> Option<Ipv6Net> {
    let net = parse_v6_net(text)
        .map_err(|m| ctx.err(o.file, path, m))
        .ok()?;
    match vpc_v6 {
        Some(v6) if v6.contains(&net) => Some(net),
        Some(v6) => {
            ctx.err(
                o.file,
                path,
                format!("subnet IPv6 CIDR {net} is outside the VPC's {v6}"),
            );
            None
        }
        None => {
            ctx.err(
                o.file,
                path,
                "subnet has an IPv6 CIDR but its VPC has no `ipv6_cidr`; add one to the VPC",
            );
            None
        }
    }
}

/// The AZs of default subnets: `azs` as a count (default 2) or a list of names.
fn default_azs(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    region: &str,
    azs: Option<&raw::Azs>,
) -> Vec<String> {
    match azs {
        None => (0..2).map(|k| az_name(region, k)).collect(),
        Some(raw::Azs::Count(n)) if (1..=6).contains(n) => {
            (0..*n as usize).map(|k| az_name(region, k)).collect()
        }
        Some(raw::Azs::Count(n)) => {
            ctx.err(
                o.file,
                path,
                format!("`azs: {n}`: write a count from 1 to 6, or a list such as [a, b]"),
            );
            Vec::new()
        }
        Some(raw::Azs::Names(names)) => names
            .iter()
            .enumerate()
            .filter_map(|(k, n)| {
                normalize_az(region, n)
                    .map_err(|m| ctx.err(o.file, &path.index(k), m))
                    .ok()
            })
            .collect(),
    }
}

/// A list of CIDRs or addresses (`clients`), each problem reported.
pub(super) fn nets(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    list: Option<&[String]>,
) -> Vec<IpNet> {
    list.unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(j, t)| {
            parse_net(t)
                .map_err(|m| ctx.err(o.file, &path.index(j), m))
                .ok()
        })
        .collect()
}

pub(super) fn first_subnet_per_az(vpc: &Vpc) -> Vec<usize> {
    let mut seen = HashSet::new();
    vpc.subnets
        .iter()
        .enumerate()
        .filter(|(_, s)| seen.insert(s.az.clone()))
        .map(|(i, _)| i)
        .collect()
}

pub(super) fn az_name(region: &str, k: usize) -> String {
    format!("{region}{}", (b'a' + (k % 26) as u8) as char)
}

pub(super) fn normalize_az(region: &str, az: &str) -> Result<String, String> {
    if az.len() == 1 && az.as_bytes()[0].is_ascii_lowercase() {
        return Ok(format!("{region}{az}"));
    }
    match az.strip_prefix(region) {
        Some(letter) if letter.len() == 1 && letter.as_bytes()[0].is_ascii_lowercase() => {
            Ok(az.to_string())
        }
        _ => Err(format!(
            "`{az}` is not an Availability Zone of {region}; write e.g. `{region}a` or just `a`"
        )),
    }
}
