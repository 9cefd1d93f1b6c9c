//! Raw YAML items to a validated [`Topology`]: fills every default deterministically and reports every problem.
//!
//! Order matters only for defaults: explicit addresses are claimed first, so a default ENI or resolver endpoint
//! address never takes one that a later line names.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use hickory_proto::rr::rdata::{self, CAA, MX, SRV, TXT};
use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::raw;
use super::source::{Diagnostic, SourceFile, YamlPath};
use super::*;
use crate::catalog::{self, Catalog, Evidence, Service};

/// Where an item came from, for messages about it.
#[derive(Clone, Copy)]
struct Origin<'a> {
    file: &'a SourceFile,
    idx: usize,
}

struct Ctx<'a> {
    diags: Vec<Diagnostic>,
    /// Ids of items that failed to parse: references to them are not reported again.
    broken_ids: HashSet<String>,
    files: &'a [SourceFile],
}

impl Ctx<'_> {
    fn err(&mut self, file: &SourceFile, path: &YamlPath, message: impl Into<String>) {
        self.diags.push(file.at(path, message));
    }
}

pub(super) fn build(sources: &[(String, String)]) -> Result<Topology, Diagnostics> {
    let mut diags = Vec::new();
    let mut files = Vec::new();
    let mut raws = Vec::new();
    for (name, text) in sources {
        let file = SourceFile::new(name, text);
        let value: serde_norway::Value = match serde_norway::from_str(text) {
            Ok(serde_norway::Value::Null) => serde_norway::Value::Mapping(Default::default()),
            Ok(value) => value,
            Err(err) => {
                let (line, col) = err.location().map_or((1, 1), |l| (l.line(), l.column()));
                diags.push(Diagnostic {
                    file: file.name.clone(),
                    line,
                    col,
                    message: format!("YAML: {err}"),
                });
                continue;
            }
        };
        let Some(raw_file) = file.item::<raw::File>(&value, &YamlPath::default(), &mut diags)
        else {
            continue;
        };
        files.push(file);
        raws.push(raw_file);
    }
    let mut ctx = Ctx {
        diags,
        broken_ids: HashSet::new(),
        files: &files,
    };
    let topology = Builder::run(&mut ctx, &raws);
    if ctx.diags.is_empty() {
        Ok(topology)
    } else {
        Err(Diagnostics(ctx.diags))
    }
}

/// FNV-1a: a stable hash (std's is randomized per process), so defaults are the same on every machine.
fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// `prefix` + 17 hex digits derived from `seed`, as AWS ids look.
fn derived_id(prefix: &str, seed: &[&str]) -> String {
    let a = stable_hash(seed);
    let b = stable_hash(&[&a.to_string()]);
    format!("{prefix}0{:016x}", a ^ (b >> 7))
}

/// The 8-character vpce name suffix, `[a-z0-9]{8}`, derived from the endpoint id.
fn derived_suffix(id: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut hash = stable_hash(&["suffix", id]);
    (0..8)
        .map(|_| {
            let c = ALPHABET[(hash % 36) as usize] as char;
            hash /= 36;
            c
        })
        .collect()
}

fn valid_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn id_hint(prefix: &str) -> String {
    format!(
        "write `{prefix}` followed by 8 or 17 lowercase hex digits, e.g. `{prefix}0a1b2c3d4e5f60718`, or leave it out for a derived one"
    )
}

/// Parses a domain name written in a topology into a lowercase FQDN.
fn parse_domain(text: &str) -> Result<Name, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty domain name".into());
    }
    let mut name =
        Name::from_str(trimmed).map_err(|e| format!("`{trimmed}` is not a domain name ({e})"))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

struct Builder<'r> {
    raws: &'r [raw::File],
    topo: Topology,
    vpc_index: HashMap<String, usize>,
    ids: HashMap<String, (usize, YamlPath)>,
    /// Addresses taken by ENIs and resolver endpoints.
    used_ips: HashSet<IpAddr>,
    /// (file index, path) of each built VPC, for messages that point at it later.
    vpc_paths: Vec<(usize, YamlPath)>,
    /// (file index, path) of each built endpoint.
    endpoint_paths: Vec<(usize, YamlPath)>,
    /// A VPC item failed to parse (already reported).
    vpcs_broken: bool,
}

impl<'r> Builder<'r> {
    fn run(ctx: &mut Ctx<'_>, raws: &'r [raw::File]) -> Topology {
        let mut b = Builder {
            raws,
            topo: Topology {
                region: "us-east-1".into(),
                dns_suffix: "amazonaws.com",
                upstream: vec![Upstream::System],
                default_view: ViewRef::Public,
                allow: Vec::new(),
                allow_explicit: false,
                rate_limit: None,
                vpcs: Vec::new(),
                endpoints: Vec::new(),
                hosted_zones: Vec::new(),
                inbound_endpoints: Vec::new(),
                outbound_endpoints: Vec::new(),
                rules: Vec::new(),
                networks: Vec::new(),
            },
            vpc_index: HashMap::new(),
            ids: HashMap::new(),
            used_ips: HashSet::new(),
            vpc_paths: Vec::new(),
            endpoint_paths: Vec::new(),
            vpcs_broken: false,
        };
        b.scalars(ctx);
        b.vpcs(ctx);
        let pending_resolver = b.resolver_endpoints(ctx);
        let services = b.services(ctx);
        let pending_enis = b.endpoints(ctx, &services);
        b.assign_default_ips(ctx, pending_resolver, pending_enis);
        b.hosted_zones(ctx);
        b.rules(ctx);
        b.networks(ctx);
        b.default_view(ctx);
        b.cross_checks(ctx);
        b.topo
    }

    fn origins<'c>(ctx: &Ctx<'c>) -> impl Iterator<Item = Origin<'c>> + use<'c> {
        ctx.files
            .iter()
            .enumerate()
            .map(|(idx, file)| Origin { file, idx })
    }

    fn claim_id(&mut self, ctx: &mut Ctx<'_>, o: Origin<'_>, path: &YamlPath, id: &str) {
        if let Some((file_idx, first)) = self.ids.get(id) {
            let first_file = &ctx.files[*file_idx];
            let at = first_file.at(first, "");
            ctx.err(
                o.file,
                path,
                format!(
                    "duplicate id `{id}`: already defined at {}:{}:{}; ids must be unique across all files",
                    at.file, at.line, at.col
                ),
            );
        } else {
            self.ids.insert(id.to_string(), (o.idx, path.clone()));
        }
    }

    fn scalars(&mut self, ctx: &mut Ctx<'_>) {
        let mut region_seen: Option<String> = None;
        let mut upstream_seen = false;
        for (o, raw) in Self::origins(ctx).zip(self.raws) {
            if let Some(v) = raw.version
                && v != 1
            {
                ctx.err(
                    o.file,
                    &YamlPath::default().key("version"),
                    format!("unsupported version {v}; write `version: 1`"),
                );
            }
            if let Some(region) = &raw.region {
                let path = YamlPath::default().key("region");
                if !catalog::is_known_region(region) {
                    ctx.err(
                        o.file,
                        &path,
                        format!("unknown region `{region}`; write an AWS region name such as `us-east-1` or `eu-west-2`"),
                    );
                } else if let Some(prev) = &region_seen
                    && prev != region
                {
                    ctx.err(o.file, &path, format!("region `{region}` differs from `{prev}` in an earlier file; merged files must share one region"));
                } else {
                    region_seen = Some(region.clone());
                    self.topo.region = region.clone();
                    self.topo.dns_suffix = catalog::dns_suffix(region);
                }
            }
            if let Some(list) = &raw.upstream {
                let path = YamlPath::default().key("upstream");
                if upstream_seen {
                    ctx.err(
                        o.file,
                        &path,
                        "`upstream` is set in more than one file; set it in one",
                    );
                }
                upstream_seen = true;
                self.topo.upstream.clear();
                for (i, text) in list.iter().enumerate() {
                    if text == "system" {
                        self.topo.upstream.push(Upstream::System);
                    } else {
                        match parse_target(text) {
                            Ok(addr) => self.topo.upstream.push(Upstream::Addr(addr)),
                            Err(msg) => ctx.err(o.file, &path.index(i), msg),
                        }
                    }
                }
            }
            if let Some(rl) = &raw.rate_limit {
                let path = YamlPath::default().key("rate_limit");
                if self.topo.rate_limit.is_some() {
                    ctx.err(
                        o.file,
                        &path,
                        "`rate_limit` is set in more than one file; set it in one",
                    );
                }
                self.topo.rate_limit = Some(rate_limit(ctx, o.file, &path, rl));
            }
            if let Some(list) = &raw.allow {
                self.topo.allow_explicit = true;
                for (i, text) in list.iter().enumerate() {
                    match parse_net(text) {
                        Ok(net) => self.topo.allow.push(net),
                        Err(msg) => {
                            ctx.err(o.file, &YamlPath::default().key("allow").index(i), msg)
                        }
                    }
                }
            }
        }
    }

    fn vpcs(&mut self, ctx: &mut Ctx<'_>) {
        let mut all_subnets: Vec<(Ipv4Net, String)> = Vec::new();
        let mut all_vpc_cidrs: Vec<(Ipv4Net, String)> = Vec::new();
        let region = self.topo.region.clone();
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.vpcs.iter().enumerate() {
                let path = YamlPath::default().key("vpcs").index(i);
                let Some(v) = o.file.item::<raw::Vpc>(&item.value, &path, &mut ctx.diags) else {
                    self.vpcs_broken = true;
                    note_broken(ctx, &item.value);
                    continue;
                };
                let ordinal = self.topo.vpcs.len();
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
                // CIDRs
                let mut cidr_texts: Vec<(String, YamlPath)> = Vec::new();
                match (&v.cidr, &v.cidrs) {
                    (Some(c), None) => cidr_texts.push((c.clone(), path.key("cidr"))),
                    (None, Some(list)) => {
                        for (j, c) in list.iter().enumerate() {
                            cidr_texts.push((c.clone(), path.key("cidrs").index(j)));
                        }
                    }
                    (Some(c), Some(list)) => {
                        cidr_texts.push((c.clone(), path.key("cidr")));
                        for (j, c) in list.iter().enumerate() {
                            cidr_texts.push((c.clone(), path.key("cidrs").index(j)));
                        }
                    }
                    (None, None) => ctx.err(
                        o.file,
                        &path,
                        "VPC has no `cidr`; add e.g. `cidr: 10.0.0.0/16`",
                    ),
                }
                let mut cidrs = Vec::new();
                for (text, p) in &cidr_texts {
                    match parse_v4_net(text) {
                        Ok(net) if !(16..=28).contains(&net.prefix_len()) => ctx.err(
                            o.file,
                            p,
                            format!("VPC CIDR `{text}` must be between /16 and /28, as in AWS; e.g. `10.0.0.0/16`"),
                        ),
                        Ok(net) => {
                            for (other, owner) in &all_vpc_cidrs {
                                if other.contains(&net.network()) || net.contains(&other.network()) {
                                    ctx.err(o.file, p, format!("VPC CIDR {net} overlaps {other} of {owner}; each VPC's addresses choose its view, so give VPCs distinct CIDRs (use `clients` to add sources)"));
                                }
                            }
                            if cidrs.iter().any(|c: &Ipv4Net| c.contains(&net.network()) || net.contains(&c.network())) {
                                ctx.err(o.file, p, format!("CIDR {net} overlaps another CIDR of this VPC"));
                            }
                            cidrs.push(net);
                        }
                        Err(msg) => ctx.err(o.file, p, msg),
                    }
                }
                for net in &cidrs {
                    all_vpc_cidrs.push((*net, id.clone()));
                }
                let ipv6_cidr = v.ipv6_cidr.as_ref().and_then(|t| {
                    parse_v6_net(t)
                        .map_err(|m| ctx.err(o.file, &path.key("ipv6_cidr"), m))
                        .ok()
                });
                let clients = v
                    .clients
                    .iter()
                    .flatten()
                    .enumerate()
                    .filter_map(|(j, t)| {
                        parse_net(t)
                            .map_err(|m| ctx.err(o.file, &path.key("clients").index(j), m))
                            .ok()
                    })
                    .collect();
                // Subnets: as written, or one /24 per AZ when the VPC is written tersely.
                let mut subnets = Vec::new();
                let mut letters_used = 0usize;
                if let Some(list) = &v.subnets {
                    if v.azs.is_some() {
                        ctx.err(
                            o.file,
                            &path.key("azs"),
                            "`azs` only applies when `subnets` is absent; remove one of them",
                        );
                    }
                    for (j, s) in list.iter().enumerate() {
                        let sp = path.key("subnets").index(j);
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
                            None => derived_id("subnet-", &["subnet", &id, &j.to_string()]),
                        };
                        self.claim_id(ctx, o, &sp.key("id"), &sid);
                        let az = match &s.az {
                            Some(az) => match normalize_az(&region, az) {
                                Ok(az) => az,
                                Err(msg) => {
                                    ctx.err(o.file, &sp.key("az"), msg);
                                    continue;
                                }
                            },
                            None => az_name(&region, letters_used),
                        };
                        letters_used += 1;
                        let cidr = match parse_v4_net(&s.cidr) {
                            Ok(c) => c,
                            Err(msg) => {
                                ctx.err(o.file, &sp.key("cidr"), msg);
                                continue;
                            }
                        };
                        if !cidrs.is_empty() && !cidrs.iter().any(|vc| vc.contains(&cidr)) {
                            let list: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
                            ctx.err(
                                o.file,
                                &sp.key("cidr"),
                                format!("subnet {cidr} is outside VPC {id} ({}); write a CIDR inside one of the VPC's CIDRs", list.join(", ")),
                            );
                        }
                        if cidr.prefix_len() > 28 {
                            ctx.err(
                                o.file,
                                &sp.key("cidr"),
                                format!(
                                    "subnet {cidr} is smaller than /28, the smallest AWS allows"
                                ),
                            );
                        }
                        for (other, owner) in &all_subnets {
                            if other.contains(&cidr.network()) || cidr.contains(&other.network()) {
                                ctx.err(o.file, &sp.key("cidr"), format!("subnet {cidr} overlaps subnet {other} ({owner}); subnets of a VPC must not overlap"));
                            }
                        }
                        all_subnets.push((cidr, sid.clone()));
                        let ipv6 = s.ipv6_cidr.as_ref().and_then(|t| {
                            let net = parse_v6_net(t).map_err(|m| ctx.err(o.file, &sp.key("ipv6_cidr"), m)).ok()?;
                            match ipv6_cidr {
                                Some(v6) if v6.contains(&net) => Some(net),
                                Some(v6) => {
                                    ctx.err(o.file, &sp.key("ipv6_cidr"), format!("subnet IPv6 CIDR {net} is outside the VPC's {v6}"));
                                    None
                                }
                                None => {
                                    ctx.err(o.file, &sp.key("ipv6_cidr"), "subnet has an IPv6 CIDR but its VPC has no `ipv6_cidr`; add one to the VPC");
                                    None
                                }
                            }
                        });
                        subnets.push(Subnet {
                            id: sid,
                            az,
                            cidr,
                            ipv6_cidr: ipv6,
                        });
                    }
                } else if let Some(primary) = cidrs.first() {
                    let azs: Vec<String> = match &v.azs {
                        None => (0..2).map(|k| az_name(&region, k)).collect(),
                        Some(raw::Azs::Count(n)) if (1..=6).contains(n) => {
                            (0..*n as usize).map(|k| az_name(&region, k)).collect()
                        }
                        Some(raw::Azs::Count(n)) => {
                            ctx.err(o.file, &path.key("azs"), format!("`azs: {n}`: write a count from 1 to 6, or a list such as [a, b]"));
                            Vec::new()
                        }
                        Some(raw::Azs::Names(names)) => names
                            .iter()
                            .enumerate()
                            .filter_map(|(k, n)| {
                                normalize_az(&region, n)
                                    .map_err(|m| ctx.err(o.file, &path.key("azs").index(k), m))
                                    .ok()
                            })
                            .collect(),
                    };
                    // One /24 per AZ at the start of the primary CIDR (10.0.1.0/24, 10.0.2.0/24, ...), or quarters of a
                    // small VPC.
                    let prefix = if primary.prefix_len() <= 20 {
                        24
                    } else {
                        (primary.prefix_len() + 2).min(28)
                    };
                    let mut nets = primary.subnets(prefix).into_iter().flatten();
                    if prefix == 24 {
                        nets.next();
                    }
                    for (k, az) in azs.into_iter().enumerate() {
                        let Some(cidr) = nets.next() else { break };
                        let sid = derived_id("subnet-", &["subnet", &id, &k.to_string()]);
                        self.claim_id(ctx, o, &path.key("subnets"), &sid);
                        let ipv6 = ipv6_cidr.and_then(|v6| v6.subnets(64).ok()?.nth(k + 1));
                        subnets.push(Subnet {
                            id: sid,
                            az,
                            cidr,
                            ipv6_cidr: ipv6,
                        });
                    }
                }
                if cidrs.is_empty() {
                    note_broken(ctx, &item.value);
                    continue;
                }
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
                // Record the path for messages that point at the VPC later.
                self.vpc_paths.push((o.idx, path));
            }
        }
    }
}

/// A resolver endpoint or ENI waiting for a default address once every explicit one is claimed.
struct PendingIp {
    /// (inbound?, endpoint index, ip slot) for resolver endpoints; (false, endpoint index, eni index) for ENIs.
    resolver: Option<bool>,
    owner: usize,
    slot: usize,
    subnet: Ipv4Net,
    seed: String,
}

impl Builder<'_> {
    fn lookup_vpc(
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
    fn resolver_endpoint_ref(
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
    fn only_endpoint_of_vpc(&self, endpoints: &[ResolverEndpoint], key: &str) -> Option<usize> {
        let vpc = *self.vpc_index.get(key)?;
        let mut found = endpoints.iter().enumerate().filter(|(_, e)| e.vpc == vpc);
        match (found.next(), found.next()) {
            (Some((idx, _)), None) => Some(idx),
            _ => None,
        }
    }

    fn vpc_list(&self) -> String {
        let ids: Vec<String> = self.topo.vpcs.iter().map(Vpc::label).collect();
        if ids.is_empty() {
            "(no VPCs are defined)".into()
        } else {
            ids.join(", ")
        }
    }

    /// Explicit addresses of a resolver endpoint or ENI: inside a subnet of the VPC and not reserved or taken.
    fn check_ip(
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

    /// An ENI address the account reported outside its subnet (`reported: true`): AWS never assigns one, moto does,
    /// and an imported topology keeps what the account says so DNS matches it. Only uniqueness is checked.
    fn reported_ip(&mut self, ctx: &mut Ctx<'_>, o: Origin<'_>, path: &YamlPath, ip: IpAddr) {
        if !self.used_ips.insert(ip) {
            ctx.err(o.file, path, format!("{ip} is already used by another ENI or resolver endpoint; each address belongs to one interface"));
        }
    }

    fn resolver_endpoints(&mut self, ctx: &mut Ctx<'_>) -> Vec<PendingIp> {
        let mut pending = Vec::new();
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (inbound, list, key, prefix) in [
                (
                    true,
                    &raw.resolver.inbound_endpoints,
                    "inbound_endpoints",
                    "rslvr-in-",
                ),
                (
                    false,
                    &raw.resolver.outbound_endpoints,
                    "outbound_endpoints",
                    "rslvr-out-",
                ),
            ] {
                for (i, item) in list.iter().enumerate() {
                    let path = YamlPath::default().key("resolver").key(key).index(i);
                    let Some(r) =
                        o.file
                            .item::<raw::ResolverEndpoint>(&item.value, &path, &mut ctx.diags)
                    else {
                        note_broken(ctx, &item.value);
                        continue;
                    };
                    let Some(vpc) = self.lookup_vpc(ctx, o, &path.key("vpc"), r.vpc.as_deref())
                    else {
                        continue;
                    };
                    let id = match &r.id {
                        Some(id) if valid_id(id, prefix) => id.clone(),
                        Some(id) => {
                            ctx.err(
                                o.file,
                                &path.key("id"),
                                format!(
                                    "malformed resolver endpoint id `{id}`; {}",
                                    id_hint(prefix)
                                ),
                            );
                            id.clone()
                        }
                        None => {
                            derived_id(prefix, &[prefix, &self.topo.vpcs[vpc].id, &i.to_string()])
                        }
                    };
                    self.claim_id(ctx, o, &path.key("id"), &id);
                    let owner = if inbound {
                        self.topo.inbound_endpoints.len()
                    } else {
                        self.topo.outbound_endpoints.len()
                    };
                    let mut ips = Vec::new();
                    match &r.ips {
                        Some(list) => {
                            for (j, text) in list.iter().enumerate() {
                                match text.parse::<IpAddr>() {
                                    Ok(ip) => {
                                        self.check_ip(ctx, o, &path.key("ips").index(j), vpc, ip);
                                        ips.push(ip);
                                    }
                                    Err(_) => ctx.err(
                                        o.file,
                                        &path.key("ips").index(j),
                                        format!(
                                            "`{text}` is not an IP address; write e.g. 10.0.1.53"
                                        ),
                                    ),
                                }
                            }
                        }
                        None => {
                            // AWS requires two addresses; take the first subnet of the VPC's first two AZs.
                            for (slot, subnet) in first_subnet_per_az(&self.topo.vpcs[vpc])
                                .into_iter()
                                .take(2)
                                .enumerate()
                            {
                                ips.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                                pending.push(PendingIp {
                                    resolver: Some(inbound),
                                    owner,
                                    slot,
                                    subnet: self.topo.vpcs[vpc].subnets[subnet].cidr,
                                    seed: format!("{id}/{slot}"),
                                });
                            }
                        }
                    }
                    let ep = ResolverEndpoint { id, vpc, ips };
                    if inbound {
                        self.topo.inbound_endpoints.push(ep)
                    } else {
                        self.topo.outbound_endpoints.push(ep)
                    }
                }
            }
        }
        pending
    }

    /// Topology `services:` entries, keyed by the names an endpoint may use for them.
    fn services(&mut self, ctx: &mut Ctx<'_>) -> HashMap<String, Service> {
        let mut out = HashMap::new();
        let region = self.topo.region.clone();
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.services.iter().enumerate() {
                let path = YamlPath::default().key("services").index(i);
                let Some(s) = o
                    .file
                    .item::<raw::Service>(&item.value, &path, &mut ctx.diags)
                else {
                    continue;
                };
                let mut names = Vec::new();
                for (j, n) in s.private_dns_names.iter().enumerate() {
                    let bare = n.strip_prefix("*.").unwrap_or(n);
                    match parse_domain(bare) {
                        Ok(_) => names.push(n.trim_end_matches('.').to_lowercase()),
                        Err(msg) => ctx.err(o.file, &path.key("private_dns_names").index(j), msg),
                    }
                }
                let (code, svc_id) = if let Some((svc_region, svc)) =
                    catalog::parse_endpoint_service_name(&s.name)
                {
                    if svc_region != region {
                        ctx.err(o.file, &path.key("name"), format!("endpoint service region `{svc_region}` differs from the topology's `{region}`; cross-Region endpoints are not modelled"));
                    }
                    (svc.to_string(), svc.to_string())
                } else {
                    let code = s
                        .name
                        .strip_prefix(&format!("com.amazonaws.{region}."))
                        .unwrap_or(&s.name)
                        .to_string();
                    let reversed: Vec<&str> = code.rsplit('.').collect();
                    (code.clone(), reversed.join("."))
                };
                let service = Service {
                    name: s.name.clone(),
                    code: code.clone(),
                    endpoint_service_id: s.endpoint_service_id.clone().unwrap_or(svc_id),
                    private_dns_names: names,
                    interface: true,
                    gateway: false,
                    evidence: Evidence::User,
                    note: "defined in the topology".into(),
                };
                out.insert(s.name.clone(), service.clone());
                out.insert(code, service);
            }
        }
        out
    }

    fn endpoints(
        &mut self,
        ctx: &mut Ctx<'_>,
        services: &HashMap<String, Service>,
    ) -> Vec<PendingIp> {
        let mut pending = Vec::new();
        let region = self.topo.region.clone();
        // Thousands of endpoints name a few dozen services: look each up once.
        let mut catalog: HashMap<String, Option<Service>> = HashMap::new();
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.endpoints.iter().enumerate() {
                let path = YamlPath::default().key("endpoints").index(i);
                let e = if let serde_norway::Value::String(service) = &item.value {
                    raw::Endpoint {
                        id: None,
                        vpc: None,
                        service: service.clone(),
                        kind: None,
                        private_dns: None,
                        private_dns_only_for_inbound_resolver_endpoint: None,
                        ip_address_type: None,
                        dns_record_ip_type: None,
                        dns_suffix: None,
                        enis: None,
                        subnets: None,
                        route_tables: None,
                    }
                } else {
                    match o
                        .file
                        .item::<raw::Endpoint>(&item.value, &path, &mut ctx.diags)
                    {
                        Some(e) => e,
                        None => {
                            note_broken(ctx, &item.value);
                            continue;
                        }
                    }
                };
                let Some(vpc) = self.lookup_vpc(ctx, o, &path.key("vpc"), e.vpc.as_deref()) else {
                    continue;
                };
                let svc_path = path.key("service");
                let Some(service) = services.get(&e.service).cloned().or_else(|| {
                    catalog
                        .entry(e.service.clone())
                        .or_insert_with(|| Catalog::embedded().resolve(&e.service, &region))
                        .clone()
                }) else {
                    let msg = match full_name_region(&e.service) {
                        Some(r) if r != region => format!(
                            "service `{}` is in region `{r}` but the topology's region is `{region}`; endpoints serve their own region (write `com.amazonaws.{region}.…` or the short name)",
                            e.service
                        ),
                        _ => match catalog::parse_endpoint_service_name(&e.service) {
                            Some(_) => format!(
                                "endpoint service `{}` is not defined; add it under `services:` with its `private_dns_names`",
                                e.service
                            ),
                            None => format!(
                                "unknown service `{}`; `vpc-resolver services {}` lists the catalog, or define it under `services:`",
                                e.service,
                                e.service.rsplit('.').next().unwrap_or("")
                            ),
                        },
                    };
                    ctx.err(o.file, &svc_path, msg);
                    continue;
                };
                let kind = match e.kind.as_deref() {
                    None | Some("interface" | "Interface") => EndpointKind::Interface,
                    Some("gateway" | "Gateway") => EndpointKind::Gateway,
                    Some("gatewayloadbalancer" | "GatewayLoadBalancer" | "gwlb") => {
                        EndpointKind::GatewayLoadBalancer
                    }
                    Some(other) => {
                        ctx.err(o.file, &path.key("type"), format!("unknown endpoint type `{other}`; write `interface`, `gateway` or `gatewayloadbalancer`"));
                        continue;
                    }
                };
                if kind == EndpointKind::Gateway && !service.gateway {
                    ctx.err(o.file, &path.key("type"), format!("gateway endpoints exist only for S3 and DynamoDB, not `{}`; use `type: interface`", service.code));
                }
                let id = match &e.id {
                    Some(id) if valid_id(id, "vpce-") => id.clone(),
                    Some(id) => {
                        ctx.err(
                            o.file,
                            &path.key("id"),
                            format!("malformed endpoint id `{id}`; {}", id_hint("vpce-")),
                        );
                        id.clone()
                    }
                    None => derived_id(
                        "vpce-",
                        &[
                            "vpce",
                            &self.topo.vpcs[vpc].id,
                            &service.name,
                            &format!("{kind:?}"),
                        ],
                    ),
                };
                self.claim_id(ctx, o, &path.key("id"), &id);
                let dns_suffix = match &e.dns_suffix {
                    Some(s)
                        if s.len() == 8
                            && s.bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
                    {
                        s.clone()
                    }
                    Some(s) => {
                        ctx.err(o.file, &path.key("dns_suffix"), format!("dns_suffix `{s}` must be 8 characters of a-z and 0-9, e.g. `k3x9p2qz`"));
                        s.clone()
                    }
                    None => derived_suffix(&id),
                };
                let has_private_names = !service.private_dns_names.is_empty();
                let private_dns = match (kind, e.private_dns) {
                    (EndpointKind::Interface, Some(true)) => {
                        let v = &self.topo.vpcs[vpc];
                        if !has_private_names {
                            ctx.err(o.file, &path.key("private_dns"), format!("service `{}` does not provide a private DNS name, so private DNS can't be enabled (AWS rejects it); write `private_dns: false` and use the vpce names", service.name));
                        } else if !(v.dns_support && v.dns_hostnames) {
                            ctx.err(o.file, &path.key("private_dns"), format!("enabling private DNS requires both enable_dns_support and enable_dns_hostnames on {} (AWS rejects it); set both to true or write `private_dns: false`", v.id));
                        }
                        true
                    }
                    (EndpointKind::Interface, Some(false)) => false,
                    // AWS's defaults: on for AWS services with a private name, off for S3 (the console leaves it
                    // unticked) and for endpoint services.
                    (EndpointKind::Interface, None) => {
                        let v = &self.topo.vpcs[vpc];
                        has_private_names
                            && service.code != "s3"
                            && service.evidence != Evidence::User
                            && v.dns_support
                            && v.dns_hostnames
                    }
                    (_, Some(true)) => {
                        ctx.err(
                            o.file,
                            &path.key("private_dns"),
                            "only interface endpoints have private DNS; remove `private_dns`",
                        );
                        false
                    }
                    (_, _) => false,
                };
                let inbound_only = match e.private_dns_only_for_inbound_resolver_endpoint {
                    Some(true) if service.code != "s3" => {
                        ctx.err(o.file, &path.key("private_dns_only_for_inbound_resolver_endpoint"), "only S3 interface endpoints support private DNS only for inbound Resolver endpoints; remove it");
                        false
                    }
                    Some(true) if !private_dns => {
                        ctx.err(
                            o.file,
                            &path.key("private_dns_only_for_inbound_resolver_endpoint"),
                            "this needs `private_dns: true`",
                        );
                        false
                    }
                    Some(v) => v,
                    // Resolved after every endpoint is known (AWS's default is on when the VPC has an S3 gateway).
                    None => private_dns && service.code == "s3" && kind == EndpointKind::Interface,
                };
                let ip_address_type = match parse_ip_type(e.ip_address_type.as_deref(), false) {
                    Ok(t) => t.unwrap_or(IpType::Ipv4),
                    Err(msg) => {
                        ctx.err(o.file, &path.key("ip_address_type"), msg);
                        IpType::Ipv4
                    }
                };
                let dns_record_ip_type = match parse_ip_type(e.dns_record_ip_type.as_deref(), true)
                {
                    Ok(Some(t)) => {
                        let ok = match ip_address_type {
                            IpType::Ipv4 => t == IpType::Ipv4,
                            IpType::Ipv6 => t == IpType::Ipv6,
                            _ => true,
                        };
                        if !ok {
                            ctx.err(o.file, &path.key("dns_record_ip_type"), format!("dns_record_ip_type {} is not allowed with ip_address_type {} (AWS: ipv4 -> ipv4, ipv6 -> ipv6, dualstack -> any)", ip_type_name(t), ip_type_name(ip_address_type)));
                        }
                        t
                    }
                    Ok(None) => ip_address_type,
                    Err(msg) => {
                        ctx.err(o.file, &path.key("dns_record_ip_type"), msg);
                        ip_address_type
                    }
                };
                // ENIs
                let owner = self.topo.endpoints.len();
                let mut enis = Vec::new();
                if kind == EndpointKind::Gateway {
                    if e.enis.is_some() || e.subnets.is_some() {
                        ctx.err(
                            o.file,
                            &path.key("enis"),
                            "gateway endpoints have no network interfaces; remove `enis`/`subnets`",
                        );
                    }
                } else {
                    let explicit: Vec<(raw::Eni, YamlPath)> = match (&e.enis, &e.subnets) {
                        (Some(list), _) => list
                            .iter()
                            .enumerate()
                            .map(|(j, x)| {
                                (
                                    raw::Eni {
                                        subnet: x.subnet.clone(),
                                        ip: x.ip.clone(),
                                        ipv6: x.ipv6.clone(),
                                        reported: x.reported,
                                    },
                                    path.key("enis").index(j),
                                )
                            })
                            .collect(),
                        (None, Some(list)) => list
                            .iter()
                            .enumerate()
                            .map(|(j, s)| {
                                (
                                    raw::Eni {
                                        subnet: s.clone(),
                                        ip: None,
                                        ipv6: None,
                                        reported: false,
                                    },
                                    path.key("subnets").index(j),
                                )
                            })
                            .collect(),
                        (None, None) => {
                            let v = &self.topo.vpcs[vpc];
                            let take = if kind == EndpointKind::GatewayLoadBalancer {
                                1
                            } else {
                                usize::MAX
                            };
                            first_subnet_per_az(v)
                                .into_iter()
                                .take(take)
                                .map(|si| {
                                    (
                                        raw::Eni {
                                            subnet: v.subnets[si].id.clone(),
                                            ip: None,
                                            ipv6: None,
                                            reported: false,
                                        },
                                        path.clone(),
                                    )
                                })
                                .collect()
                        }
                    };
                    let mut azs_seen: HashSet<String> = HashSet::new();
                    let listed = explicit.len();
                    for (x, ep) in explicit {
                        let v = &self.topo.vpcs[vpc];
                        let Some(si) =
                            v.subnets.iter().position(|s| s.id == x.subnet).or_else(|| {
                                // A subnet may also be named by its AZ (`a` or `us-east-1a`): the first subnet there.
                                let az = normalize_az(&region, &x.subnet).ok()?;
                                v.subnets.iter().position(|s| s.az == az)
                            })
                        else {
                            if !ctx.broken_ids.contains(&x.subnet) {
                                let list: Vec<&str> =
                                    v.subnets.iter().map(|s| s.id.as_str()).collect();
                                ctx.err(
                                    o.file,
                                    &ep.key("subnet"),
                                    format!(
                                        "unknown subnet `{}` in {}; write one of: {}",
                                        x.subnet,
                                        v.id,
                                        list.join(", ")
                                    ),
                                );
                            }
                            continue;
                        };
                        let subnet = v.subnets[si].clone();
                        if !azs_seen.insert(subnet.az.clone()) {
                            ctx.err(o.file, &ep, format!("a second ENI in {}: an endpoint has at most one network interface per Availability Zone; pick a subnet in another AZ", subnet.az));
                        }
                        let ip = match &x.ip {
                            Some(text) => match text.parse::<Ipv4Addr>() {
                                Ok(ip) => {
                                    if x.reported && !subnet.cidr.contains(&ip) {
                                        self.reported_ip(ctx, o, &ep.key("ip"), IpAddr::V4(ip));
                                    } else if !subnet.cidr.contains(&ip) {
                                        ctx.err(o.file, &ep.key("ip"), format!("{ip} is outside subnet {} ({}); write an address inside it, e.g. {}", subnet.id, subnet.cidr, nth_host(subnet.cidr, 10)));
                                    } else {
                                        self.check_ip(ctx, o, &ep.key("ip"), vpc, IpAddr::V4(ip));
                                    }
                                    Some(ip)
                                }
                                Err(_) => {
                                    ctx.err(
                                        o.file,
                                        &ep.key("ip"),
                                        format!(
                                            "`{text}` is not an IPv4 address; write e.g. {}",
                                            nth_host(subnet.cidr, 10)
                                        ),
                                    );
                                    None
                                }
                            },
                            None if ip_address_type != IpType::Ipv6 => {
                                pending.push(PendingIp {
                                    resolver: None,
                                    owner,
                                    slot: enis.len(),
                                    subnet: subnet.cidr,
                                    seed: format!("{id}/{}", subnet.id),
                                });
                                Some(Ipv4Addr::UNSPECIFIED)
                            }
                            None => None,
                        };
                        let ipv6 = match &x.ipv6 {
                            Some(text) => match text.parse::<Ipv6Addr>() {
                                Ok(v6)
                                    if x.reported
                                        && !subnet.ipv6_cidr.is_some_and(|c| c.contains(&v6)) =>
                                {
                                    self.reported_ip(ctx, o, &ep.key("ipv6"), IpAddr::V6(v6));
                                    Some(v6)
                                }
                                Ok(v6) if subnet.ipv6_cidr.is_some_and(|c| c.contains(&v6)) => {
                                    if !self.used_ips.insert(IpAddr::V6(v6)) {
                                        ctx.err(
                                            o.file,
                                            &ep.key("ipv6"),
                                            format!("{v6} is already used by another interface"),
                                        );
                                    }
                                    Some(v6)
                                }
                                Ok(v6) => {
                                    ctx.err(o.file, &ep.key("ipv6"), format!("{v6} is outside subnet {}'s IPv6 CIDR ({}); give the subnet an `ipv6_cidr` that contains it", subnet.id, subnet.ipv6_cidr.map_or("none".into(), |c| c.to_string())));
                                    None
                                }
                                Err(_) => {
                                    ctx.err(
                                        o.file,
                                        &ep.key("ipv6"),
                                        format!("`{text}` is not an IPv6 address"),
                                    );
                                    None
                                }
                            },
                            // Dual-stack and IPv6 endpoints get the subnet's ::<host of the IPv4 address> by default.
                            None if ip_address_type != IpType::Ipv4 => match subnet.ipv6_cidr {
                                Some(c) => {
                                    Some(v6_host(c, stable_hash(&[&id, &subnet.id]) % 4000 + 16))
                                }
                                None => {
                                    ctx.err(o.file, &ep, format!("ip_address_type {} needs IPv6 on subnet {}; give it an `ipv6_cidr`", ip_type_name(ip_address_type), subnet.id));
                                    None
                                }
                            },
                            None => None,
                        };
                        enis.push(Eni {
                            subnet: si,
                            az: subnet.az.clone(),
                            ip,
                            ipv6,
                        });
                    }
                    // Listed ENIs that all failed are reported each; this is only for a VPC without subnets.
                    if enis.is_empty() && listed == 0 && kind == EndpointKind::Interface {
                        ctx.err(o.file, &path, format!("endpoint has no network interface: VPC {} has no subnets; add subnets to the VPC or `enis` here", self.topo.vpcs[vpc].id));
                    }
                }
                self.topo.endpoints.push(Endpoint {
                    id,
                    vpc,
                    service,
                    kind,
                    private_dns,
                    inbound_only,
                    ip_address_type,
                    dns_record_ip_type,
                    dns_suffix,
                    enis,
                    route_tables: e.route_tables.clone().unwrap_or_default(),
                });
                self.endpoint_paths.push((o.idx, path));
            }
        }
        pending
    }

    /// Deterministic free addresses: a hash of the owner picks the first candidate, so adding an endpoint doesn't move
    /// the others' addresses; collisions and reserved addresses step to the next one.
    fn assign_default_ips(
        &mut self,
        ctx: &mut Ctx<'_>,
        resolver: Vec<PendingIp>,
        enis: Vec<PendingIp>,
    ) {
        for p in resolver.into_iter().chain(enis) {
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
            match p.resolver {
                Some(true) => self.topo.inbound_endpoints[p.owner].ips[p.slot] = IpAddr::V4(ip),
                Some(false) => self.topo.outbound_endpoints[p.owner].ips[p.slot] = IpAddr::V4(ip),
                None => self.topo.endpoints[p.owner].enis[p.slot].ip = Some(ip),
            }
        }
    }

    fn hosted_zones(&mut self, ctx: &mut Ctx<'_>) {
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.hosted_zones.iter().enumerate() {
                let path = YamlPath::default().key("hosted_zones").index(i);
                let Some(z) = o
                    .file
                    .item::<raw::HostedZone>(&item.value, &path, &mut ctx.diags)
                else {
                    continue;
                };
                let name = match parse_domain(&z.name) {
                    Ok(n) => n,
                    Err(msg) => {
                        ctx.err(o.file, &path.key("name"), msg);
                        continue;
                    }
                };
                let id = z.id.clone().unwrap_or_else(|| {
                    let h = stable_hash(&["zone", &name.to_string()]);
                    format!("Z{:019X}", h).chars().take(21).collect()
                });
                self.claim_id(ctx, o, &path.key("id"), &id);
                let vpcs = self.vpc_refs(ctx, o, &path.key("vpcs"), z.vpcs.as_deref());
                let mut records = Vec::new();
                for (j, r) in z.records.iter().enumerate() {
                    let rp = path.key("records").index(j);
                    if let Some(rec) = self.record(ctx, o, &rp, &name, r) {
                        records.push(rec);
                    }
                }
                // A CNAME owns its name alone (RFC 1034 §3.6.2).
                for (j, rec) in records.iter().enumerate() {
                    if rec.rtype == RecordType::CNAME
                        && records
                            .iter()
                            .any(|other| other.name == rec.name && other.rtype != RecordType::CNAME)
                    {
                        ctx.err(o.file, &path.key("records").index(j), format!("{} has a CNAME and other records; a CNAME must be the only record at its name", rec.name));
                    }
                }
                self.topo.hosted_zones.push(HostedZone {
                    id,
                    name,
                    vpcs,
                    records,
                });
            }
        }
    }

    fn vpc_refs(
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

    fn record(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        rp: &YamlPath,
        zone: &Name,
        r: &raw::Record,
    ) -> Option<ZoneRecord> {
        let name = if r.name == "@" || r.name.is_empty() {
            zone.clone()
        } else if r.name.ends_with('.') {
            match parse_domain(&r.name) {
                Ok(n) => n,
                Err(msg) => {
                    ctx.err(o.file, &rp.key("name"), msg);
                    return None;
                }
            }
        } else {
            match Name::from_str(&r.name)
                .ok()
                .and_then(|n| n.append_domain(zone).ok())
            {
                Some(n) => n.to_lowercase(),
                None => {
                    ctx.err(o.file, &rp.key("name"), format!("`{}` is not a valid record name; write a name relative to the zone, `@` for the apex, or an absolute name ending in a dot", r.name));
                    return None;
                }
            }
        };
        if !zone.zone_of(&name) {
            ctx.err(
                o.file,
                &rp.key("name"),
                format!("{name} is outside zone {zone}; write a name inside the zone"),
            );
            return None;
        }
        let rtype = match RecordType::from_str(&r.kind.to_uppercase()) {
            Ok(t)
                if matches!(
                    t,
                    RecordType::A
                        | RecordType::AAAA
                        | RecordType::CNAME
                        | RecordType::TXT
                        | RecordType::MX
                        | RecordType::SRV
                        | RecordType::PTR
                        | RecordType::NS
                        | RecordType::CAA
                ) =>
            {
                t
            }
            _ => {
                ctx.err(o.file, &rp.key("type"), format!("record type `{}` is not supported; write one of A, AAAA, CNAME, TXT, MX, SRV, PTR, NS, CAA", r.kind));
                return None;
            }
        };
        if let Some(alias) = &r.alias {
            if !matches!(rtype, RecordType::A | RecordType::AAAA) {
                ctx.err(
                    o.file,
                    &rp.key("type"),
                    "alias records to an endpoint are of type A or AAAA",
                );
                return None;
            }
            let Some(endpoint) = self
                .topo
                .endpoints
                .iter()
                .position(|e| e.id == alias.endpoint)
            else {
                if !ctx.broken_ids.contains(&alias.endpoint) {
                    let list: Vec<&str> = self
                        .topo
                        .endpoints
                        .iter()
                        .filter(|e| e.kind == EndpointKind::Interface)
                        .map(|e| e.id.as_str())
                        .collect();
                    ctx.err(
                        o.file,
                        &rp.key("alias").key("endpoint"),
                        format!(
                            "unknown endpoint `{}`; write the id of an interface endpoint ({})",
                            alias.endpoint,
                            list.join(", ")
                        ),
                    );
                }
                return None;
            };
            let az = match &alias.az {
                Some(az) => match normalize_az(&self.topo.region, az) {
                    Ok(az)
                        if self.topo.endpoints[endpoint]
                            .enis
                            .iter()
                            .any(|e| e.az == az) =>
                    {
                        Some(az)
                    }
                    Ok(az) => {
                        ctx.err(
                            o.file,
                            &rp.key("alias").key("az"),
                            format!("endpoint {} has no ENI in {az}", alias.endpoint),
                        );
                        return None;
                    }
                    Err(msg) => {
                        ctx.err(o.file, &rp.key("alias").key("az"), msg);
                        return None;
                    }
                },
                None => None,
            };
            if !r.values.is_empty() || r.value.is_some() {
                ctx.err(
                    o.file,
                    rp,
                    "a record has either `values` or `alias`, not both",
                );
            }
            return Some(ZoneRecord {
                name,
                rtype,
                ttl: r.ttl.unwrap_or(60),
                data: ZoneData::AliasEndpoint { endpoint, az },
            });
        }
        let texts: Vec<&String> = r.values.iter().chain(r.value.iter()).collect();
        if texts.is_empty() {
            ctx.err(
                o.file,
                rp,
                "record has no `values` (or `value`, or `alias`)",
            );
            return None;
        }
        let mut rdatas = Vec::new();
        for (k, text) in texts.iter().enumerate() {
            let vp = if r.values.is_empty() {
                rp.key("value")
            } else {
                rp.key("values").index(k)
            };
            match parse_rdata(rtype, text, zone) {
                Ok(rd) => rdatas.push(rd),
                Err(msg) => ctx.err(o.file, &vp, msg),
            }
        }
        if rtype == RecordType::CNAME && rdatas.len() > 1 {
            ctx.err(o.file, rp, "a CNAME has exactly one value");
        }
        Some(ZoneRecord {
            name,
            rtype,
            ttl: r.ttl.unwrap_or(300),
            data: ZoneData::Values(rdatas),
        })
    }

    fn rules(&mut self, ctx: &mut Ctx<'_>) {
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.resolver.rules.iter().enumerate() {
                let path = YamlPath::default().key("resolver").key("rules").index(i);
                let Some(r) = o.file.item::<raw::Rule>(&item.value, &path, &mut ctx.diags) else {
                    continue;
                };
                let domain = match parse_domain(&r.domain) {
                    Ok(d) => d,
                    Err(msg) => {
                        ctx.err(o.file, &path.key("domain"), msg);
                        continue;
                    }
                };
                let kind = match r.kind.as_deref() {
                    None | Some("forward" | "FORWARD") => RuleKind::Forward,
                    Some("system" | "SYSTEM") => RuleKind::System,
                    Some(other) => {
                        ctx.err(
                            o.file,
                            &path.key("type"),
                            format!("unknown rule type `{other}`; write `forward` or `system`"),
                        );
                        continue;
                    }
                };
                let id = match &r.id {
                    Some(id) if valid_id(id, "rslvr-rr-") => id.clone(),
                    Some(id) => {
                        ctx.err(
                            o.file,
                            &path.key("id"),
                            format!("malformed rule id `{id}`; {}", id_hint("rslvr-rr-")),
                        );
                        id.clone()
                    }
                    None => derived_id(
                        "rslvr-rr-",
                        &["rule", &domain.to_string(), &format!("{kind:?}")],
                    ),
                };
                self.claim_id(ctx, o, &path.key("id"), &id);
                let mut targets = Vec::new();
                for (j, t) in r.targets.iter().enumerate() {
                    match parse_target(t) {
                        Ok(a) => targets.push(a),
                        Err(msg) => ctx.err(o.file, &path.key("targets").index(j), msg),
                    }
                }
                match kind {
                    RuleKind::Forward if r.targets.is_empty() => ctx.err(o.file, &path, "a forward rule needs `targets`, e.g. [\"192.168.10.10\"]"),
                    RuleKind::System if !r.targets.is_empty() => ctx.err(o.file, &path.key("targets"), "a system rule has no targets: the Resolver answers itself; remove `targets`"),
                    _ => {}
                }
                let vpcs = self.vpc_refs(ctx, o, &path.key("vpcs"), r.vpcs.as_deref());
                let outbound = match &r.outbound_endpoint {
                    Some(key) => self.resolver_endpoint_ref(
                        ctx,
                        o,
                        &path.key("outbound_endpoint"),
                        key,
                        false,
                    ),
                    // Forward rules leave through an outbound endpoint; with exactly one among the rule's VPCs, that one.
                    None if kind == RuleKind::Forward => {
                        let mut found = self
                            .topo
                            .outbound_endpoints
                            .iter()
                            .enumerate()
                            .filter(|(_, e)| vpcs.contains(&e.vpc));
                        match (found.next(), found.next()) {
                            (Some((idx, _)), None) => Some(idx),
                            _ => None,
                        }
                    }
                    None => None,
                };
                // AWS warns: forwarding to an inbound endpoint of a VPC the rule is associated with loops.
                for (j, t) in targets.iter().enumerate() {
                    for inbound in &self.topo.inbound_endpoints {
                        if inbound.ips.contains(&t.ip()) && vpcs.contains(&inbound.vpc) {
                            ctx.err(o.file, &path.key("targets").index(j), format!("target {} is inbound endpoint {} of {}, which this rule is associated with: queries would loop; associate the rule with other VPCs only", t.ip(), inbound.id, self.topo.vpcs[inbound.vpc].id));
                        }
                    }
                }
                for other in &self.topo.rules {
                    if other.domain == domain && other.vpcs.iter().any(|v| vpcs.contains(v)) {
                        ctx.err(o.file, &path.key("domain"), format!("rule {} for {domain} is already associated with a VPC this rule names; a VPC has one rule per domain", other.id));
                    }
                }
                self.topo.rules.push(Rule {
                    id,
                    kind,
                    domain,
                    targets,
                    vpcs,
                    outbound,
                });
            }
        }
    }

    fn networks(&mut self, ctx: &mut Ctx<'_>) {
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.networks.iter().enumerate() {
                let path = YamlPath::default().key("networks").index(i);
                let Some(n) = o
                    .file
                    .item::<raw::Network>(&item.value, &path, &mut ctx.diags)
                else {
                    continue;
                };
                let cidrs = n
                    .cidrs
                    .iter()
                    .enumerate()
                    .filter_map(|(j, t)| {
                        parse_net(t)
                            .map_err(|m| ctx.err(o.file, &path.key("cidrs").index(j), m))
                            .ok()
                    })
                    .collect();
                let via_inbound = match &n.via_inbound_endpoint {
                    Some(key) => match self.resolver_endpoint_ref(
                        ctx,
                        o,
                        &path.key("via_inbound_endpoint"),
                        key,
                        true,
                    ) {
                        Some(idx) => Some(idx),
                        None => continue,
                    },
                    None => None,
                };
                self.topo.networks.push(Network {
                    name: n.name.clone(),
                    cidrs,
                    via_inbound,
                });
            }
        }
    }

    fn default_view(&mut self, ctx: &mut Ctx<'_>) {
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            match raw.default_view.as_deref() {
                None => {}
                Some("public") => self.topo.default_view = ViewRef::Public,
                Some(key) => {
                    if let Some(v) =
                        self.lookup_vpc(ctx, o, &YamlPath::default().key("default_view"), Some(key))
                    {
                        self.topo.default_view = ViewRef::Vpc(v);
                    }
                }
            }
        }
    }

    fn cross_checks(&mut self, ctx: &mut Ctx<'_>) {
        // AWS's default for S3 private DNS: inbound-only when the VPC has an S3 gateway endpoint.
        let has_s3_gateway = |topo: &Topology, vpc: usize| {
            topo.endpoints
                .iter()
                .any(|g| g.vpc == vpc && g.kind == EndpointKind::Gateway && g.service.code == "s3")
        };
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (idx, (file_idx, path)) in self.endpoint_paths.iter().enumerate() {
            let o = origins[*file_idx];
            let e = &self.topo.endpoints[idx];
            let explicit = self.raws[*file_idx]
                .endpoints
                .get(path_index(path))
                .and_then(|i| {
                    i.value
                        .get("private_dns_only_for_inbound_resolver_endpoint")
                })
                .and_then(|v| v.as_bool());
            let gateway = has_s3_gateway(&self.topo, e.vpc);
            match explicit {
                Some(true) if !gateway => ctx.err(o.file, &path.key("private_dns_only_for_inbound_resolver_endpoint"), format!("private DNS only for inbound Resolver endpoints needs an S3 gateway endpoint in {} (AWS rejects it otherwise); add `{{ service: s3, type: gateway }}` or remove this", self.topo.vpcs[e.vpc].id)),
                None if e.inbound_only && !gateway => self.topo.endpoints[idx].inbound_only = false,
                _ => {}
            }
        }
        // One private DNS name per VPC: two endpoints, or an endpoint and a private hosted zone, conflict.
        let mut owners: HashMap<(usize, String), usize> = HashMap::new();
        for (idx, e) in self.topo.endpoints.iter().enumerate() {
            if !e.private_dns {
                continue;
            }
            let (file_idx, path) = &self.endpoint_paths[idx];
            let o = origins[*file_idx];
            for name in &e.service.private_dns_names {
                let zone = name.trim_start_matches("*.").to_string();
                if let Some(other) = owners.insert((e.vpc, zone.clone()), idx)
                    && other != idx
                {
                    ctx.err(o.file, &path.key("private_dns"), format!("private DNS cannot be enabled: there is already a conflicting DNS domain for {zone} in {} (endpoint {}); AWS allows one private-DNS endpoint per service per VPC, so write `private_dns: false` on one", self.topo.vpcs[e.vpc].id, self.topo.endpoints[other].id));
                    break;
                }
            }
        }
        for (zi, z) in self.topo.hosted_zones.iter().enumerate() {
            let zname = z.name.to_string();
            let zname = zname.trim_end_matches('.');
            for &vpc in &z.vpcs {
                if let Some(&idx) = owners.get(&(vpc, zname.to_string())) {
                    let (file_idx, path) = self.zone_origin(zi, ctx);
                    let path = path.key("name");
                    let file = &ctx.files[file_idx];
                    let msg = format!(
                        "ConflictingDomainExists: {} already has the private DNS zone {zname} of endpoint {} (private DNS on); turn its private DNS off (the centralized-endpoint pattern) or don't associate this zone with that VPC",
                        self.topo.vpcs[vpc].id, self.topo.endpoints[idx].id
                    );
                    ctx.diags.push(file.at(&path, msg));
                }
                for other in &self.topo.hosted_zones[..zi] {
                    if other.name == z.name && other.vpcs.contains(&vpc) {
                        let (file_idx, path) = self.zone_origin(zi, ctx);
                        let path = path.key("name");
                        let file = &ctx.files[file_idx];
                        ctx.diags.push(file.at(&path, format!("{} is already associated with another hosted zone named {zname}; a VPC can't have two zones of one name", self.topo.vpcs[vpc].id)));
                    }
                }
            }
        }
    }

    /// The file and path of the `zi`-th hosted zone, counted across files.
    fn zone_origin(&self, zi: usize, ctx: &Ctx<'_>) -> (usize, YamlPath) {
        let mut left = zi;
        for (f, raw) in self.raws.iter().enumerate().take(ctx.files.len()) {
            if left < raw.hosted_zones.len() {
                return (f, YamlPath::default().key("hosted_zones").index(left));
            }
            left -= raw.hosted_zones.len();
        }
        (0, YamlPath::default())
    }
}

fn path_index(path: &YamlPath) -> usize {
    match path.0.get(1) {
        Some(super::source::Seg::Index(i)) => *i,
        _ => usize::MAX,
    }
}

fn note_broken(ctx: &mut Ctx<'_>, value: &serde_norway::Value) {
    for key in ["id", "name"] {
        if let Some(id) = value.get(key).and_then(|v| v.as_str()) {
            ctx.broken_ids.insert(id.to_string());
        }
    }
}

fn full_name_region(service: &str) -> Option<&str> {
    let parts: Vec<&str> = service.split('.').collect();
    if parts.len() >= 4 && (service.starts_with("com.amazonaws.") || service.starts_with("aws.")) {
        let r = parts[2];
        if r.contains('-') { Some(r) } else { None }
    } else {
        None
    }
}

fn first_subnet_per_az(vpc: &Vpc) -> Vec<usize> {
    let mut seen = HashSet::new();
    vpc.subnets
        .iter()
        .enumerate()
        .filter(|(_, s)| seen.insert(s.az.clone()))
        .map(|(i, _)| i)
        .collect()
}

fn az_name(region: &str, k: usize) -> String {
    format!("{region}{}", (b'a' + (k % 26) as u8) as char)
}

fn normalize_az(region: &str, az: &str) -> Result<String, String> {
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

/// The first four addresses and the last of every subnet are AWS's.
fn is_reserved(subnet: Ipv4Net, ip: Ipv4Addr) -> bool {
    let offset = u32::from(ip) - u32::from(subnet.network());
    offset < 4 || ip == subnet.broadcast()
}

fn nth_host(subnet: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()).wrapping_add(n))
}

fn v6_host(subnet: Ipv6Net, n: u64) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) + u128::from(n))
}

fn parse_v4_net(text: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = text
        .parse()
        .map_err(|_| format!("`{text}` is not an IPv4 CIDR; write e.g. `10.0.1.0/24`"))?;
    if net.network() != net.addr() {
        return Err(format!(
            "`{text}` has host bits set; write `{}`",
            net.trunc()
        ));
    }
    Ok(net)
}

fn parse_v6_net(text: &str) -> Result<Ipv6Net, String> {
    let net: Ipv6Net = text.parse().map_err(|_| {
        format!("`{text}` is not an IPv6 CIDR; write e.g. `2600:1f18:1234:5600::/56`")
    })?;
    if net.network() != net.addr() {
        return Err(format!(
            "`{text}` has host bits set; write `{}`",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Validates `rate_limit`; every problem is reported, defaults fill what is absent.
fn rate_limit(
    ctx: &mut Ctx<'_>,
    file: &SourceFile,
    path: &YamlPath,
    raw: &raw::RateLimit,
) -> super::RateLimit {
    let mut rl = super::RateLimit::new(raw.responses_per_second);
    if raw.responses_per_second == 0 {
        ctx.err(
            file,
            &path.key("responses_per_second"),
            "responses_per_second must be at least 1; remove `rate_limit` to turn limiting off",
        );
    }
    if let Some(slip) = raw.slip {
        if slip > 10 {
            ctx.err(file, &path.key("slip"), format!("slip {slip} is out of range; write 0 (drop every limited response) to 10 (BIND's range), default 2"));
        }
        rl.slip = slip;
    }
    if let Some(p) = raw.ipv4_prefix {
        if !(1..=32).contains(&p) {
            ctx.err(
                file,
                &path.key("ipv4_prefix"),
                format!("ipv4_prefix {p} is out of range; write 1 to 32 (default 24)"),
            );
        }
        rl.ipv4_prefix = p.clamp(1, 32);
    }
    if let Some(p) = raw.ipv6_prefix {
        if !(1..=128).contains(&p) {
            ctx.err(
                file,
                &path.key("ipv6_prefix"),
                format!("ipv6_prefix {p} is out of range; write 1 to 128 (default 56)"),
            );
        }
        rl.ipv6_prefix = p.clamp(1, 128);
    }
    if let Some(list) = &raw.exempt {
        rl.exempt.clear();
        for (i, text) in list.iter().enumerate() {
            match parse_net(text) {
                Ok(net) => rl.exempt.push(net),
                Err(msg) => ctx.err(file, &path.key("exempt").index(i), msg),
            }
        }
    }
    rl
}

fn parse_net(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{text}` is not a CIDR or address; write e.g. `192.168.0.0/16`"))
}

fn parse_target(text: &str) -> Result<SocketAddr, String> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok(sa);
    }
    text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)).map_err(|_| format!("`{text}` is not an address; write `IP` or `IP:PORT`, e.g. `192.168.10.10` or `127.0.0.1:5301` ([::1]:5301 for IPv6)"))
}

fn parse_ip_type(
    text: Option<&str>,
    allow_service_defined: bool,
) -> Result<Option<IpType>, String> {
    match text {
        None => Ok(None),
        Some("ipv4") => Ok(Some(IpType::Ipv4)),
        Some("ipv6") => Ok(Some(IpType::Ipv6)),
        Some("dualstack") => Ok(Some(IpType::Dualstack)),
        Some("service-defined") if allow_service_defined => Ok(Some(IpType::ServiceDefined)),
        Some(other) => Err(format!(
            "`{other}`: write ipv4, dualstack or ipv6{}",
            if allow_service_defined {
                " (or service-defined)"
            } else {
                ""
            }
        )),
    }
}

fn ip_type_name(t: IpType) -> &'static str {
    match t {
        IpType::Ipv4 => "ipv4",
        IpType::Ipv6 => "ipv6",
        IpType::Dualstack => "dualstack",
        IpType::ServiceDefined => "service-defined",
    }
}

fn parse_rdata(rtype: RecordType, text: &str, zone: &Name) -> Result<RData, String> {
    let name_of = |t: &str| -> Result<Name, String> {
        if t.ends_with('.') {
            parse_domain(t)
        } else {
            Name::from_str(t)
                .ok()
                .and_then(|n| n.append_domain(zone).ok())
                .map(|n| n.to_lowercase())
                .ok_or_else(|| format!("`{t}` is not a domain name"))
        }
    };
    let fields: Vec<&str> = text.split_whitespace().collect();
    match rtype {
        RecordType::A => text
            .parse::<Ipv4Addr>()
            .map(|a| RData::A(a.into()))
            .map_err(|_| format!("`{text}` is not an IPv4 address; write e.g. 10.0.1.100")),
        RecordType::AAAA => text
            .parse::<Ipv6Addr>()
            .map(|a| RData::AAAA(a.into()))
            .map_err(|_| format!("`{text}` is not an IPv6 address")),
        RecordType::CNAME => Ok(RData::CNAME(rdata::CNAME(name_of(text)?))),
        RecordType::PTR => Ok(RData::PTR(rdata::PTR(name_of(text)?))),
        RecordType::NS => Ok(RData::NS(rdata::NS(name_of(text)?))),
        RecordType::TXT => Ok(RData::TXT(TXT::new(vec![
            text.trim_matches('"').to_string(),
        ]))),
        RecordType::MX => match fields.as_slice() {
            [pref, host] => Ok(RData::MX(MX::new(
                pref.parse()
                    .map_err(|_| format!("MX preference `{pref}` is not a number"))?,
                name_of(host)?,
            ))),
            _ => Err(format!(
                "`{text}`: write an MX value as `PREFERENCE HOST`, e.g. `10 mail.example.com.`"
            )),
        },
        RecordType::SRV => match fields.as_slice() {
            [p, w, port, target] => {
                let num = |s: &str| {
                    s.parse::<u16>()
                        .map_err(|_| format!("SRV field `{s}` is not a number"))
                };
                Ok(RData::SRV(SRV::new(
                    num(p)?,
                    num(w)?,
                    num(port)?,
                    name_of(target)?,
                )))
            }
            _ => Err(format!(
                "`{text}`: write an SRV value as `PRIORITY WEIGHT PORT TARGET`, e.g. `10 5 5060 sip.example.com.`"
            )),
        },
        RecordType::CAA => match fields.as_slice() {
            [flags, tag, value] => {
                let critical = *flags != "0";
                let value = value.trim_matches('"');
                match *tag {
                    "issue" => Ok(RData::CAA(CAA::new_issue(
                        critical,
                        Name::from_str(value).ok(),
                        vec![],
                    ))),
                    "iodef" => value
                        .parse()
                        .map(|url| RData::CAA(CAA::new_iodef(critical, url)))
                        .map_err(|_| format!("`{value}` is not a URL")),
                    _ => Err(format!(
                        "CAA tag `{tag}` is not supported; write `0 issue \"ca.example.net\"`"
                    )),
                }
            }
            _ => Err(format!(
                "`{text}`: write a CAA value as `FLAGS TAG VALUE`, e.g. `0 issue \"amazon.com\"`"
            )),
        },
        _ => Err(format!("record type {rtype} is not supported")),
    }
}
