//! Raw YAML items to a validated [`Topology`]: fills every default deterministically and reports every problem.
//!
//! Order matters only for defaults: explicit addresses are claimed first, so a default ENI or resolver endpoint
//! address never takes one that a later line names.

mod checks;
mod endpoints;
mod firewall;
mod instances;
mod ips;
mod parse;
mod profiles;
mod resolver;
mod vpcs;
mod zones;

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

use ips::*;
use parse::*;
use vpcs::*;

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
        let value = match super::yaml::parse(text) {
            Ok(serde_norway::Value::Null) => serde_norway::Value::Mapping(Default::default()),
            Ok(value) => value,
            Err(err) => {
                diags.push(Diagnostic {
                    file: file.name.clone(),
                    line: err.line,
                    col: err.col,
                    message: format!("YAML: {}", err.message),
                });
                continue;
            }
        };
        let raw_file = SourceFile::item_moved::<raw::File>(value).or_else(|| {
            // Something in it is wrong: read it again, to report every problem at its position.
            let value = super::yaml::parse(text).ok()?;
            file.item::<raw::File>(&value, &YamlPath::default(), &mut diags)
        });
        let Some(raw_file) = raw_file else {
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
    /// (file index, path) of each firewall association, direct or through a Profile.
    fw_assoc_paths: Vec<(usize, YamlPath)>,
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
                delegations: Vec::new(),
                networks: Vec::new(),
                instances: Vec::new(),
                firewall: Firewall::default(),
                profiles: Vec::new(),
            },
            vpc_index: HashMap::new(),
            ids: HashMap::new(),
            used_ips: HashSet::new(),
            vpc_paths: Vec::new(),
            endpoint_paths: Vec::new(),
            fw_assoc_paths: Vec::new(),
            vpcs_broken: false,
        };
        b.scalars(ctx);
        b.vpcs(ctx);
        let pending_resolver = b.resolver_endpoints(ctx);
        let services = b.services(ctx);
        let pending_enis = b.endpoints(ctx, &services);
        let pending_instances = b.instances(ctx);
        let pending = pending_resolver
            .into_iter()
            .chain(pending_enis)
            .chain(pending_instances);
        b.assign_default_ips(ctx, pending.collect());
        b.hosted_zones(ctx);
        b.rules(ctx);
        b.networks(ctx);
        b.firewall(ctx);
        b.profiles(ctx);
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
}

fn note_broken(ctx: &mut Ctx<'_>, value: &serde_norway::Value) {
    for key in ["id", "name"] {
        if let Some(id) = value.get(key).and_then(|v| v.as_str()) {
            ctx.broken_ids.insert(id.to_string());
        }
    }
}
