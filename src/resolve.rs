//! The decision engine: which view a client sees, and what that view answers for a question.
//!
//! [`Resolver::new`] compiles a [`Topology`] once into per-VPC tables of "authorities" (Resolver rules, private hosted
//! zones, the hidden zones of endpoints with private DNS, EC2 internal names) keyed by domain, plus the public
//! `vpce-…` names every view can see. [`Resolver::resolve`] is pure and synchronous: it returns a [`Decision`] — an
//! answer, or where to forward — and the trace of why, citing the reference section behind each step. Sockets,
//! forwarding and caching are carried out elsewhere (`server`, `upstream`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{self, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use ipnet::IpNet;
use serde::Serialize;

use crate::catalog;
use crate::topology::{EndpointKind, RuleKind, Topology, ViewRef, ZoneData};

/// TTL of endpoint answers: [OBS] for vpce names, [INF] for private DNS names (reference §1.3).
const ENDPOINT_TTL: u32 = 60;
/// CNAME chains longer than this end in SERVFAIL.
const MAX_CNAME_CHAIN: usize = 8;

/// Who is asking: the source address and, when known, the local address the query arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub src: IpAddr,
    pub local: Option<IpAddr>,
}

impl Client {
    pub fn from(src: IpAddr) -> Self {
        Self { src, local: None }
    }
}

/// A view, compactly: the VPC (or public) and whether the query came through an inbound endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewKey {
    pub vpc: Option<u32>,
    pub via_inbound: bool,
}

/// Why a view was chosen, before it is put into words.
enum Why {
    Arrival(IpAddr),
    Source(usize),
    Default,
}

/// The view that answers, and why.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// Index into `Topology::vpcs`; `None` for the public view.
    #[serde(skip)]
    pub vpc: Option<usize>,
    /// `vpc-…` or `public`.
    pub name: String,
    /// The query came through a Resolver inbound endpoint (or a network mapped to one).
    pub via_inbound: bool,
    pub why: String,
}

/// One step of the reasoning, for `explain` and the debug log.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub text: String,
    /// The section of the AWS behaviour reference that backs this step.
    pub reference: &'static str,
}

/// The steps of a decision, put into words only when someone will read them.
pub(crate) struct Trace(Option<Vec<Step>>);

impl Trace {
    fn add(&mut self, reference: &'static str, text: impl FnOnce() -> String) {
        if let Some(steps) = &mut self.0 {
            steps.push(Step {
                text: text(),
                reference,
            });
        }
    }

    fn into_steps(self) -> Vec<Step> {
        self.0.unwrap_or_default()
    }
}

/// What to do with the question.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Answer locally.
    Answer {
        rcode: ResponseCode,
        authoritative: bool,
        answers: Vec<Record>,
        authority: Vec<Record>,
    },
    /// Send `name` (the question, or the end of a local CNAME chain) to `targets`; prepend `answers` to the reply.
    Forward {
        rule: Option<String>,
        targets: Vec<Forwarding>,
        source: Option<IpAddr>,
        name: Name,
        answers: Vec<Record>,
    },
    /// Not answered for this client.
    Refused { reason: String },
    /// Local data is broken (a CNAME loop).
    ServFail { reason: String },
}

/// Where a forwarded question goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarding {
    Target(std::net::SocketAddr),
    /// The system resolver's nameservers.
    System,
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub view: View,
    pub outcome: Outcome,
    pub trace: Vec<Step>,
    /// Short label of what decided, for logs and metrics: `endpoint:vpce-…`, `phz:corp.internal`, `rule:rslvr-rr-…`,
    /// `vpce-name`, `ec2-internal`, `upstream`.
    pub decided_by: String,
    /// The answer is fixed for this view, name and type (no wildcard, no synthesized or NXDOMAIN name), so it may
    /// be prepared once and replayed.
    pub fixed: bool,
}

/// What can decide a name in a VPC.
#[derive(Debug, Clone)]
enum Authority {
    Forward(usize),
    System(usize),
    Zone(usize),
    Ec2Internal,
    Reverse,
}

/// A private zone: a customer PHZ or the hidden zone of an endpoint's private DNS name.
#[derive(Debug)]
struct Zone {
    name: Name,
    label: String,
    decided_by: String,
    /// Endpoint private DNS that only inbound-endpoint queries see (S3 `private_dns_only_for_inbound_resolver_endpoint`).
    inbound_only: bool,
    /// Owner name -> records (already expanded: aliases resolved to addresses).
    records: HashMap<LowerName, Vec<Record>>,
    /// Names that exist only because something lives below them (empty non-terminals).
    parents: std::collections::HashSet<LowerName>,
    /// Owner -> the endpoint its alias records point at, for the trace.
    aliases: HashMap<LowerName, String>,
    reference: &'static str,
}

/// A compiled topology, ready to answer. Immutable; a reload builds a new one.
#[derive(Debug)]
pub struct Resolver {
    topo: Arc<Topology>,
    zones: Vec<Zone>,
    /// Per VPC: domain -> authorities at exactly that domain.
    vpc_tables: Vec<HashMap<LowerName, Vec<Authority>>>,
    /// Public `vpce-…` names: exact names and (for S3) wildcard parents.
    public_names: HashMap<LowerName, Vec<Record>>,
    public_wildcards: HashMap<LowerName, Vec<Record>>,
    /// Local addresses that are a VPC resolver or inbound endpoint address: (vpc, inbound).
    address_views: HashMap<IpAddr, (usize, bool)>,
    /// Source networks, most specific first: (net, vpc, via inbound endpoint, description).
    source_views: Vec<(IpNet, usize, bool, String)>,
    ec2_domain: Name,
    soa: Record,
}

fn name(text: &str) -> Name {
    let mut n = Name::from_str(text).unwrap_or_else(|_| Name::root());
    n.set_fqdn(true);
    n.to_lowercase()
}

fn record(owner: &Name, ttl: u32, data: RData) -> Record {
    Record::from_rdata(owner.clone(), ttl, data)
}

/// The SOA Route 53 puts in every private hosted zone.
fn r53_soa(zone: &Name) -> Record {
    let soa = SOA::new(
        name("ns-1536.awsdns-00.co.uk."),
        name("awsdns-hostmaster.amazon.com."),
        1,
        7200,
        900,
        1_209_600,
        86400,
    );
    record(zone, 900, RData::SOA(soa))
}

impl Resolver {
    pub fn new(topology: Topology) -> Self {
        let topo = Arc::new(topology);
        let mut zones: Vec<Zone> = Vec::new();
        let mut vpc_tables: Vec<HashMap<LowerName, Vec<Authority>>> =
            vec![HashMap::new(); topo.vpcs.len()];
        let mut public_names: HashMap<LowerName, Vec<Record>> = HashMap::new();
        let mut public_wildcards: HashMap<LowerName, Vec<Record>> = HashMap::new();
        let region = &topo.region;

        // Endpoint names: public vpce names, and hidden zones for private DNS.
        for e in &topo.endpoints {
            if e.kind != EndpointKind::Interface {
                continue;
            }
            let domain = catalog::vpce_domain(&e.service.endpoint_service_id, region);
            let regional = name(&format!("{}.{domain}", e.name_prefix()));
            let is_s3 = e.service.code == "s3";
            let addresses = |owner: &Name, az: Option<&str>, dualstack_name: bool| -> Vec<Record> {
                let (want_a, want_aaaa) = e.dns_record_ip_type.answers(dualstack_name);
                let mut out = Vec::new();
                for eni in e.enis.iter().filter(|eni| az.is_none_or(|az| eni.az == az)) {
                    if want_a && let Some(ip) = eni.ip {
                        out.push(record(owner, ENDPOINT_TTL, RData::A(ip.into())));
                    }
                    if want_aaaa && let Some(ip) = eni.ipv6 {
                        out.push(record(owner, ENDPOINT_TTL, RData::AAAA(ip.into())));
                    }
                }
                out
            };
            public_names.insert(LowerName::new(&regional), addresses(&regional, None, false));
            if is_s3 {
                public_wildcards
                    .insert(LowerName::new(&regional), addresses(&regional, None, false));
            }
            for eni in &e.enis {
                let zonal = name(&format!("{}-{}.{domain}", e.name_prefix(), eni.az));
                public_names.insert(
                    LowerName::new(&zonal),
                    addresses(&zonal, Some(&eni.az), false),
                );
                if is_s3 {
                    public_wildcards.insert(
                        LowerName::new(&zonal),
                        addresses(&zonal, Some(&eni.az), false),
                    );
                }
            }
            if !e.private_dns {
                continue;
            }
            let custom = e.service.evidence == catalog::Evidence::User;
            // This endpoint's zones so far (a few): names of one endpoint that share a zone merge into it.
            let mut own_zones: Vec<(Name, usize)> = Vec::new();
            for dns_name in &e.service.private_dns_names {
                let (wildcard, bare) = match dns_name.strip_prefix("*.") {
                    Some(rest) => (true, rest),
                    None => (false, dns_name.as_str()),
                };
                let zone_name = name(bare);
                let key = LowerName::new(&zone_name);
                // Names of one endpoint that share a zone (s3.R and *.s3.R) merge into it.
                let zi = match own_zones
                    .iter()
                    .find(|(n, _)| *n == zone_name)
                    .map(|(_, zi)| *zi)
                {
                    Some(zi) => zi,
                    None => {
                        zones.push(Zone {
                            name: zone_name.clone(),
                            label: format!(
                                "the private DNS zone {} of endpoint {} ({})",
                                zone_name, e.id, e.service.name
                            ),
                            decided_by: format!("endpoint:{}", e.id),
                            inbound_only: e.inbound_only,
                            records: HashMap::new(),
                            parents: Default::default(),
                            aliases: HashMap::new(),
                            reference: "§1.1, §1.4",
                        });
                        vpc_tables[e.vpc]
                            .entry(key)
                            .or_default()
                            .push(Authority::Zone(zones.len() - 1));
                        own_zones.push((zone_name.clone(), zones.len() - 1));
                        zones.len() - 1
                    }
                };
                let owner = if wildcard {
                    name(&format!("*.{bare}"))
                } else {
                    zone_name.clone()
                };
                let dualstack_name = bare.ends_with(".api.aws");
                let recs = if custom {
                    // Endpoint services: a CNAME to the endpoint's Regional name (reference §7).
                    vec![record(
                        &owner,
                        ENDPOINT_TTL,
                        RData::CNAME(rdata::CNAME(regional.clone())),
                    )]
                } else {
                    addresses(&owner, None, dualstack_name)
                };
                let zone = &mut zones[zi];
                zone.records
                    .entry(LowerName::new(&owner))
                    .or_default()
                    .extend(recs);
            }
        }

        // Customer private hosted zones.
        for z in &topo.hosted_zones {
            let mut records: HashMap<LowerName, Vec<Record>> = HashMap::new();
            let mut aliases = HashMap::new();
            for r in &z.records {
                if let ZoneData::AliasEndpoint { endpoint, az } = &r.data {
                    let e = &topo.endpoints[*endpoint];
                    let what = match az {
                        Some(az) => format!(
                            "the {az} ENI of endpoint {} ({} in {})",
                            e.id, e.service.code, topo.vpcs[e.vpc].id
                        ),
                        None => format!(
                            "the ENIs of endpoint {} ({} in {})",
                            e.id, e.service.code, topo.vpcs[e.vpc].id
                        ),
                    };
                    aliases.insert(LowerName::new(&r.name), what);
                }
                let recs: Vec<Record> = match &r.data {
                    ZoneData::Values(values) => values
                        .iter()
                        .map(|v| record(&r.name, r.ttl, v.clone()))
                        .collect(),
                    ZoneData::AliasEndpoint { endpoint, az } => {
                        let e = &topo.endpoints[*endpoint];
                        e.enis
                            .iter()
                            .filter(|eni| az.as_ref().is_none_or(|az| &eni.az == az))
                            .filter_map(|eni| match r.rtype {
                                RecordType::A => {
                                    eni.ip.map(|ip| record(&r.name, r.ttl, RData::A(ip.into())))
                                }
                                _ => eni
                                    .ipv6
                                    .map(|ip| record(&r.name, r.ttl, RData::AAAA(ip.into()))),
                            })
                            .collect()
                    }
                };
                let entry = records.entry(LowerName::new(&r.name)).or_default();
                // An alias with no address of the asked type still makes the name exist (NODATA, not NXDOMAIN).
                entry.extend(recs);
            }
            zones.push(Zone {
                name: z.name.clone(),
                label: format!("private hosted zone {} ({})", z.name, z.id),
                decided_by: format!("phz:{}", z.name.to_string().trim_end_matches('.')),
                inbound_only: false,
                records,
                parents: Default::default(),
                aliases,
                reference: "§6.4",
            });
            for &vpc in &z.vpcs {
                vpc_tables[vpc]
                    .entry(LowerName::new(&z.name))
                    .or_default()
                    .push(Authority::Zone(zones.len() - 1));
            }
        }
        for zone in &mut zones {
            for owner in zone.records.keys() {
                let mut n = owner.base_name();
                while n.num_labels() > zone.name.num_labels() {
                    zone.parents.insert(n.clone());
                    n = n.base_name();
                }
            }
        }

        // Resolver rules.
        for (ri, rule) in topo.rules.iter().enumerate() {
            for &vpc in &rule.vpcs {
                let auth = match rule.kind {
                    RuleKind::Forward => Authority::Forward(ri),
                    RuleKind::System => Authority::System(ri),
                };
                vpc_tables[vpc]
                    .entry(LowerName::new(&rule.domain))
                    .or_default()
                    .push(auth);
            }
        }

        // EC2 internal names and reverse zones (autodefined rules, §6.3) where DNS hostnames are on.
        let ec2_domain = name(&catalog::ec2_internal_domain(region));
        for (vi, vpc) in topo.vpcs.iter().enumerate() {
            if !vpc.dns_hostnames {
                continue;
            }
            let table = &mut vpc_tables[vi];
            table
                .entry(LowerName::new(&ec2_domain))
                .or_default()
                .push(Authority::Ec2Internal);
            let mut reverse = vec![
                "10.in-addr.arpa.".to_string(),
                "168.192.in-addr.arpa.".to_string(),
            ];
            reverse.extend((16..32).map(|b| format!("{b}.172.in-addr.arpa.")));
            for cidr in &vpc.cidrs {
                let o = cidr.network().octets();
                let zone = match cidr.prefix_len() {
                    0..=15 => format!("{}.in-addr.arpa.", o[0]),
                    16..=23 => format!("{}.{}.in-addr.arpa.", o[1], o[0]),
                    _ => format!("{}.{}.{}.in-addr.arpa.", o[2], o[1], o[0]),
                };
                reverse.push(zone);
            }
            for zone in reverse {
                let entry = table.entry(LowerName::new(&name(&zone))).or_default();
                if !entry.iter().any(|a| matches!(a, Authority::Reverse)) {
                    entry.push(Authority::Reverse);
                }
            }
        }

        // How clients map to views.
        let mut address_views = HashMap::new();
        for (ip, vpc, inbound) in topo.resolver_addresses() {
            address_views.insert(ip, (vpc, inbound));
        }
        let mut source_views = Vec::new();
        for (vi, vpc) in topo.vpcs.iter().enumerate() {
            for c in &vpc.cidrs {
                source_views.push((
                    IpNet::V4(*c),
                    vi,
                    false,
                    format!("{c}, a CIDR of {}", vpc.label()),
                ));
            }
            if let Some(c) = vpc.ipv6_cidr {
                source_views.push((
                    IpNet::V6(c),
                    vi,
                    false,
                    format!("{c}, the IPv6 CIDR of {}", vpc.label()),
                ));
            }
            for c in &vpc.clients {
                source_views.push((
                    *c,
                    vi,
                    false,
                    format!("{c}, listed in `clients` of {}", vpc.label()),
                ));
            }
        }
        for n in &topo.networks {
            if let Some(inbound) = n.via_inbound {
                let ep = &topo.inbound_endpoints[inbound];
                for c in &n.cidrs {
                    source_views.push((
                        *c,
                        ep.vpc,
                        true,
                        format!(
                            "{c}, network `{}`, which forwards to inbound endpoint {} of {}",
                            n.name,
                            ep.id,
                            topo.vpcs[ep.vpc].label()
                        ),
                    ));
                }
            }
        }
        // Rule 2 before rule 3 (spec), then most specific first within each.
        source_views
            .sort_by_key(|(net, _, inbound, _)| (*inbound, std::cmp::Reverse(net.prefix_len())));

        let soa = r53_soa(&Name::root());
        Self {
            topo,
            zones,
            vpc_tables,
            public_names,
            public_wildcards,
            address_views,
            source_views,
            ec2_domain,
            soa,
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Which view answers `client` (spec "Which view answers a client").
    pub fn view(&self, client: Client) -> View {
        let (key, why) = self.choose(client);
        let src = client.src.to_canonical();
        let why = match why {
            Why::Arrival(local) => format!(
                "the query arrived on {local}, {} of {}",
                if key.via_inbound {
                    "an inbound Resolver endpoint address"
                } else {
                    "the VPC resolver address (base + 2)"
                },
                self.topo.vpcs[key.vpc.unwrap_or_default() as usize].label()
            ),
            Why::Source(i) => format!("source {src} is in {}", self.source_views[i].3),
            Why::Default => match key.vpc {
                Some(vi) => format!(
                    "source {src} matches no VPC or network; default_view is {}",
                    self.topo.vpcs[vi as usize].label()
                ),
                None => format!(
                    "source {src} matches no VPC, client network or inbound endpoint; default_view is public"
                ),
            },
        };
        self.view_of(key, why)
    }

    /// The view of `key`, described by `why`.
    pub fn view_of(&self, key: ViewKey, why: String) -> View {
        View {
            vpc: key.vpc.map(|v| v as usize),
            name: key.vpc.map_or_else(
                || "public".to_string(),
                |v| self.topo.vpcs[v as usize].id.clone(),
            ),
            via_inbound: key.via_inbound,
            why,
        }
    }

    /// Which view answers `client`, without describing why (the hot path).
    pub fn view_key(&self, client: Client) -> ViewKey {
        self.choose(client).0
    }

    fn choose(&self, client: Client) -> (ViewKey, Why) {
        if let Some(local) = client.local.map(|l| l.to_canonical())
            && let Some(&(vi, inbound)) = self.address_views.get(&local)
        {
            return (
                ViewKey {
                    vpc: Some(vi as u32),
                    via_inbound: inbound,
                },
                Why::Arrival(local),
            );
        }
        let src = client.src.to_canonical();
        for (i, (net, vi, inbound, _)) in self.source_views.iter().enumerate() {
            if net.contains(&src) {
                return (
                    ViewKey {
                        vpc: Some(*vi as u32),
                        via_inbound: *inbound,
                    },
                    Why::Source(i),
                );
            }
        }
        let vpc = match self.topo.default_view {
            ViewRef::Vpc(vi) => Some(vi as u32),
            ViewRef::Public => None,
        };
        (
            ViewKey {
                vpc,
                via_inbound: false,
            },
            Why::Default,
        )
    }

    /// Every view a client can get: public, each VPC, and each VPC through an inbound endpoint where one exists.
    pub fn view_keys(&self) -> Vec<ViewKey> {
        let mut keys = vec![ViewKey {
            vpc: None,
            via_inbound: false,
        }];
        for vi in 0..self.topo.vpcs.len() {
            keys.push(ViewKey {
                vpc: Some(vi as u32),
                via_inbound: false,
            });
            if self.topo.inbound_endpoints.iter().any(|e| e.vpc == vi)
                || self.source_views.iter().any(|s| s.1 == vi && s.2)
            {
                keys.push(ViewKey {
                    vpc: Some(vi as u32),
                    via_inbound: true,
                });
            }
        }
        keys
    }

    /// Decides the answer for one question, with the trace of why.
    pub fn resolve(&self, client: Client, qname: &Name, qtype: RecordType) -> Decision {
        self.resolve_in(self.view(client), qname, qtype, true)
    }

    /// The same decision without putting the reasons into words (`Decision::trace` stays empty): the query path.
    pub fn decide(&self, client: Client, qname: &Name, qtype: RecordType) -> Decision {
        self.resolve_in(self.view(client), qname, qtype, false)
    }

    /// Decides the answer for one question in a given view; `explain` asks for the trace.
    pub fn resolve_in(
        &self,
        view: View,
        qname: &Name,
        qtype: RecordType,
        explain: bool,
    ) -> Decision {
        let mut trace = Trace(explain.then(Vec::new));
        trace.add("spec: Which view answers a client; §6.1, §6.2", || {
            format!("view {}: {}", view.name, view.why)
        });
        if let Some(vi) = view.vpc
            && !self.topo.vpcs[vi].dns_support
        {
            trace.add("§1.2", || format!("{} has enable_dns_support off: the Amazon DNS server does not answer (exact failure UNCONFIRMED; we refuse)", view.name));
            return Decision {
                view,
                outcome: Outcome::Refused {
                    reason: "enable_dns_support is off".into(),
                },
                trace: trace.into_steps(),
                decided_by: "dns-support-off".into(),
                fixed: false,
            };
        }
        let mut answers = Vec::new();
        let mut current = qname.to_lowercase();
        current.set_fqdn(true);
        let mut decided_by = String::new();
        let mut fixed = true;
        for depth in 0..=MAX_CNAME_CHAIN {
            let (outcome, by) = self.resolve_one(&view, &current, qtype, &mut trace, &mut fixed);
            if decided_by.is_empty() {
                decided_by = by;
            }
            let outcome =
                match outcome {
                    Outcome::Answer {
                        rcode,
                        authoritative,
                        answers: mut got,
                        authority,
                    } => {
                        // Chase a CNAME inside the server when the target is local (reference §6.4, spec).
                        let cname_target = got.iter().find_map(|r| match &r.data {
                            RData::CNAME(c) if qtype != RecordType::CNAME && r.name == current => {
                                Some(c.0.clone())
                            }
                            _ => None,
                        });
                        answers.append(&mut got);
                        if let Some(target) = &cname_target {
                            if depth == MAX_CNAME_CHAIN {
                                break;
                            }
                            trace.add("RFC 1034 §3.6.2", || format!(
                                "{current} is a CNAME for {target}: following it in the same view"
                            ));
                            current = target.to_lowercase();
                            continue;
                        }
                        Outcome::Answer {
                            rcode,
                            authoritative,
                            answers,
                            authority,
                        }
                    }
                    Outcome::Forward {
                        rule,
                        targets,
                        source,
                        name,
                        ..
                    } => Outcome::Forward {
                        rule,
                        targets,
                        source,
                        name,
                        answers,
                    },
                    other => other,
                };
            return Decision {
                view,
                outcome,
                trace: trace.into_steps(),
                decided_by,
                fixed,
            };
        }
        // Only a CNAME chain longer than MAX_CNAME_CHAIN gets here.
        Decision {
            view,
            outcome: Outcome::ServFail {
                reason: "CNAME chain too long".into(),
            },
            trace: trace.into_steps(),
            decided_by,
            fixed: false,
        }
    }

    /// One name, no CNAME chasing: the most specific authority of the view decides (reference §9).
    fn resolve_one(
        &self,
        view: &View,
        qname: &Name,
        qtype: RecordType,
        trace: &mut Trace,
        fixed: &mut bool,
    ) -> (Outcome, String) {
        let lower = LowerName::new(qname);
        debug_assert!(qname.is_fqdn());
        if let Some(vi) = view.vpc {
            let table = &self.vpc_tables[vi];
            let mut system_seen: Option<usize> = None;
            let mut level = lower.clone();
            loop {
                if let Some(auths) = table.get(&level) {
                    // At one domain: a forward rule beats a zone of the same name (§6.3); a system rule defers to
                    // the zones and to recursion.
                    let forward = auths.iter().find_map(|a| {
                        if let Authority::Forward(r) = a {
                            Some(*r)
                        } else {
                            None
                        }
                    });
                    if let Some(ri) = forward
                        && system_seen.is_none()
                    {
                        let rule = &self.topo.rules[ri];
                        let mut text = format!(
                            "forward rule {} for {} is the most specific match",
                            rule.id, rule.domain
                        );
                        if auths.iter().any(|a| matches!(a, Authority::Zone(_))) {
                            text.push_str(
                                "; it beats the private zone of the same name, which is ignored",
                            );
                        }
                        trace.add("§6.3", || text);
                        let source = rule
                            .outbound
                            .map(|o| self.topo.outbound_endpoints[o].ips.clone())
                            .and_then(|ips| ips.first().copied());
                        return (
                            Outcome::Forward {
                                rule: Some(rule.id.clone()),
                                targets: rule
                                    .targets
                                    .iter()
                                    .map(|t| Forwarding::Target(*t))
                                    .collect(),
                                source,
                                name: qname.clone(),
                                answers: Vec::new(),
                            },
                            format!("rule:{}", rule.id),
                        );
                    }
                    for auth in auths {
                        match auth {
                            Authority::Zone(zi) => {
                                let zone = &self.zones[*zi];
                                if zone.inbound_only && !view.via_inbound {
                                    trace.add("§3.3", || format!("{} is private DNS only for inbound Resolver endpoints: a client inside the VPC gets the public answer (its traffic takes the S3 gateway endpoint)", zone.label));
                                    continue;
                                }
                                return (
                                    self.answer_from_zone(zone, qname, qtype, trace, fixed),
                                    zone.decided_by.clone(),
                                );
                            }
                            Authority::Ec2Internal => {
                                return (
                                    {
                                        *fixed = false;
                                        self.ec2_internal(vi, qname, qtype, trace)
                                    },
                                    "ec2-internal".into(),
                                );
                            }
                            Authority::Reverse if qtype == RecordType::PTR || level != lower => {
                                return (
                                    {
                                        *fixed = false;
                                        self.reverse(vi, &level, qname, qtype, trace)
                                    },
                                    "ec2-reverse".into(),
                                );
                            }
                            Authority::Reverse => {
                                return (
                                    {
                                        *fixed = false;
                                        self.reverse(vi, &level, qname, qtype, trace)
                                    },
                                    "ec2-reverse".into(),
                                );
                            }
                            Authority::System(ri) => {
                                if system_seen.is_none() {
                                    let rule = &self.topo.rules[*ri];
                                    trace.add("§6.3", || format!("system rule {} for {}: the Resolver answers itself, so less specific forward rules don't apply", rule.id, rule.domain));
                                    system_seen = Some(*ri);
                                }
                            }
                            Authority::Forward(_) => {}
                        }
                    }
                }
                if level.is_root() {
                    break;
                }
                level = level.base_name();
            }
            trace.add("§6.3, §6.4", || format!("no rule or private zone of {} covers {qname}: recursive resolution (the autodefined \".\" rule)", view.name));
        } else {
            trace.add("§1.1, §2.2", || {
                format!("public view: only public DNS answers {qname}")
            });
        }
        self.public(qname, qtype, trace, fixed)
    }

    /// What the public internet answers: vpce names locally (they are public records), everything else upstream.
    fn public(
        &self,
        qname: &Name,
        qtype: RecordType,
        trace: &mut Trace,
        fixed: &mut bool,
    ) -> (Outcome, String) {
        let lower = LowerName::new(qname);
        let found = self.public_names.get(&lower).or_else(|| {
            *fixed = false;
            let parent = lower.base_name();
            if lower.num_labels() > 1 {
                self.public_wildcards.get(&parent)
            } else {
                None
            }
        });
        if let Some(recs) = found {
            let owner = qname.clone();
            let matching: Vec<Record> = recs
                .iter()
                .filter(|r| r.record_type() == qtype)
                .map(|r| rename(r, &owner))
                .collect();
            trace.add("§2.1, §2.2, §3.1", || format!("{qname} is an endpoint-specific name: public DNS, answered in every view with the ENI addresses, TTL 60"));
            let authority = if matching.is_empty() {
                vec![self.soa_for(&self.vpce_zone(qname))]
            } else {
                Vec::new()
            };
            return (
                Outcome::Answer {
                    rcode: ResponseCode::NoError,
                    authoritative: false,
                    answers: matching,
                    authority,
                },
                "vpce-name".into(),
            );
        }
        trace.add("§6.1", || {
            format!("{qname} goes to the upstream resolvers (the public internet in this lab)")
        });
        let targets = self
            .topo
            .upstream
            .iter()
            .map(|u| match u {
                crate::topology::Upstream::System => Forwarding::System,
                crate::topology::Upstream::Addr(a) => Forwarding::Target(*a),
            })
            .collect();
        (
            Outcome::Forward {
                rule: None,
                targets,
                source: None,
                name: qname.clone(),
                answers: Vec::new(),
            },
            "upstream".into(),
        )
    }

    fn vpce_zone(&self, qname: &Name) -> Name {
        let suffix = name(&format!(
            "{}.vpce.{}",
            self.topo.region, self.topo.dns_suffix
        ));
        if suffix.zone_of(qname) {
            suffix
        } else {
            qname.base_name()
        }
    }

    fn soa_for(&self, zone: &Name) -> Record {
        let mut soa = self.soa.clone();
        soa.name = zone.clone();
        soa
    }

    fn answer_from_zone(
        &self,
        zone: &Zone,
        qname: &Name,
        qtype: RecordType,
        trace: &mut Trace,
        fixed: &mut bool,
    ) -> Outcome {
        let lower = LowerName::new(qname);
        let nx = |trace: &mut Trace, why: String| {
            trace.add(zone.reference, || why);
            Outcome::Answer {
                rcode: ResponseCode::NXDomain,
                authoritative: true,
                answers: Vec::new(),
                authority: vec![self.soa_for(&zone.name)],
            }
        };
        let (owner_recs, synthesized) = match zone.records.get(&lower) {
            Some(recs) => (Some(recs), false),
            None if zone.parents.contains(&lower) || lower == LowerName::new(&zone.name) => {
                (None, false)
            }
            None => {
                // Missing and wildcard names are unbounded in number: never prepared.
                *fixed = false;
                // Wildcard: `*.` + the closest existing ancestor (RFC 4592), within the zone.
                let mut probe = lower.base_name();
                let mut hit = None;
                while probe.num_labels() >= zone.name.num_labels() {
                    let wild = LowerName::new(
                        &Name::from_str("*")
                            .unwrap_or_default()
                            .append_domain(&Name::from(&probe))
                            .unwrap_or_default(),
                    );
                    if let Some(recs) = zone.records.get(&wild) {
                        hit = Some(recs);
                        break;
                    }
                    if zone.records.contains_key(&probe)
                        || zone.parents.contains(&probe)
                        || probe.num_labels() == zone.name.num_labels()
                    {
                        break;
                    }
                    probe = probe.base_name();
                }
                match hit {
                    Some(recs) => (Some(recs), true),
                    None => {
                        return nx(
                            trace,
                            format!(
                                "{} is the most specific zone for {qname} and has no such name: NXDOMAIN, with no fallback to public DNS",
                                zone.label
                            ),
                        );
                    }
                }
            }
        };
        let recs: Vec<Record> = owner_recs
            .map(|r| r.iter().map(|r| rename(r, qname)).collect())
            .unwrap_or_default();
        let how = if synthesized { " (wildcard)" } else { "" };
        let cname: Vec<Record> = recs
            .iter()
            .filter(|r| r.record_type() == RecordType::CNAME)
            .cloned()
            .collect();
        if !cname.is_empty() && qtype != RecordType::CNAME {
            trace.add(zone.reference, || {
                format!("{} answers {qname}{how} with a CNAME", zone.label)
            });
            return Outcome::Answer {
                rcode: ResponseCode::NoError,
                authoritative: true,
                answers: cname,
                authority: Vec::new(),
            };
        }
        let matching: Vec<Record> = recs
            .into_iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
            .collect();
        if matching.is_empty() {
            trace.add("§6.4 [INF]", || format!("{} has {qname}{how} but no {qtype} record: NODATA (NOERROR, empty answer, SOA)", zone.label));
            return Outcome::Answer {
                rcode: ResponseCode::NoError,
                authoritative: true,
                answers: Vec::new(),
                authority: vec![self.soa_for(&zone.name)],
            };
        }
        let alias = owner_alias(zone, qname, synthesized)
            .map(|a| format!(": an alias record to {a}"))
            .unwrap_or_default();
        trace.add(
            if alias.is_empty() {
                zone.reference
            } else {
                "§6.4, §6.5"
            },
            || format!("{} answers {qname}{how} {qtype}{alias}", zone.label),
        );
        Outcome::Answer {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers: matching,
            authority: Vec::new(),
        }
    }

    /// `ip-10-0-1-25.ec2.internal` -> 10.0.1.25 for addresses of the VPC (§6.1).
    fn ec2_internal(
        &self,
        vi: usize,
        qname: &Name,
        qtype: RecordType,
        trace: &mut Trace,
    ) -> Outcome {
        let vpc = &self.topo.vpcs[vi];
        let zone = &self.ec2_domain;
        let ip = (qname.num_labels() == zone.num_labels() + 1)
            .then(|| qname.iter().next())
            .flatten()
            .and_then(|label| std::str::from_utf8(label).ok())
            .and_then(|label| label.strip_prefix("ip-"))
            .and_then(|rest| rest.replace('-', ".").parse::<Ipv4Addr>().ok())
            .filter(|ip| vpc.contains(IpAddr::V4(*ip)));
        match ip {
            Some(ip) if qtype == RecordType::A || qtype == RecordType::ANY => {
                trace.add("§6.1", || {
                    format!(
                        "{qname} is the EC2 internal name of {ip}, inside {}",
                        vpc.label()
                    )
                });
                Outcome::Answer {
                    rcode: ResponseCode::NoError,
                    authoritative: true,
                    answers: vec![record(qname, 60, RData::A(ip.into()))],
                    authority: Vec::new(),
                }
            }
            Some(ip) => {
                trace.add("§6.1", || {
                    format!(
                        "{qname} is the EC2 internal name of {ip}; it has only an A record: NODATA"
                    )
                });
                Outcome::Answer {
                    rcode: ResponseCode::NoError,
                    authoritative: true,
                    answers: Vec::new(),
                    authority: vec![self.soa_for(zone)],
                }
            }
            None => {
                trace.add("§6.1, §6.3", || {
                    format!(
                        "{qname} is under {zone} but names no address of {}: NXDOMAIN",
                        vpc.label()
                    )
                });
                Outcome::Answer {
                    rcode: ResponseCode::NXDomain,
                    authoritative: true,
                    answers: Vec::new(),
                    authority: vec![self.soa_for(zone)],
                }
            }
        }
    }

    /// Reverse names of VPC addresses -> their EC2 internal name (autodefined reverse rules, §6.3).
    fn reverse(
        &self,
        vi: usize,
        zone: &LowerName,
        qname: &Name,
        qtype: RecordType,
        trace: &mut Trace,
    ) -> Outcome {
        let vpc = &self.topo.vpcs[vi];
        let zone = Name::from(zone);
        let octets: Vec<u8> = qname
            .iter()
            .take(4)
            .filter_map(|l| std::str::from_utf8(l).ok()?.parse().ok())
            .collect();
        let ip = (qname.num_labels() == 6 && octets.len() == 4)
            .then(|| Ipv4Addr::new(octets[3], octets[2], octets[1], octets[0]))
            .filter(|ip| vpc.contains(IpAddr::V4(*ip)));
        match ip {
            Some(ip) => {
                let o = ip.octets();
                let target = name(&format!(
                    "ip-{}-{}-{}-{}.{}",
                    o[0], o[1], o[2], o[3], self.ec2_domain
                ));
                trace.add("§6.3 [INF answer content]", || {
                    format!(
                        "{qname} is the reverse name of {ip} in {}: PTR {target}",
                        vpc.label()
                    )
                });
                if qtype == RecordType::PTR || qtype == RecordType::ANY {
                    Outcome::Answer {
                        rcode: ResponseCode::NoError,
                        authoritative: true,
                        answers: vec![record(qname, 60, RData::PTR(rdata::PTR(target)))],
                        authority: Vec::new(),
                    }
                } else {
                    Outcome::Answer {
                        rcode: ResponseCode::NoError,
                        authoritative: true,
                        answers: Vec::new(),
                        authority: vec![self.soa_for(&zone)],
                    }
                }
            }
            None => {
                trace.add("§6.3", || format!("{qname} is under the autodefined reverse zone {zone} but names no address of {}: NXDOMAIN", vpc.label()));
                Outcome::Answer {
                    rcode: ResponseCode::NXDomain,
                    authoritative: true,
                    answers: Vec::new(),
                    authority: vec![self.soa_for(&zone)],
                }
            }
        }
    }
}

/// The alias target description of the record set that answered `qname` (exact or wildcard owner).
fn owner_alias<'z>(zone: &'z Zone, qname: &Name, synthesized: bool) -> Option<&'z String> {
    let owner = if synthesized {
        LowerName::new(
            &Name::from_str("*")
                .ok()?
                .append_domain(&qname.base_name())
                .ok()?,
        )
    } else {
        LowerName::new(qname)
    };
    zone.aliases.get(&owner)
}

/// A copy of `r` owned by `owner` (wildcard synthesis, case of the question).
fn rename(r: &Record, owner: &Name) -> Record {
    let mut r = r.clone();
    r.name = owner.clone();
    r
}

/// Something that could decide a name, for `explain`: every authority whose domain is the name or a parent of it,
/// in this view or (marked not visible) in another.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// The domain the candidate covers.
    pub domain: String,
    /// `endpoint private DNS`, `private hosted zone`, `forward rule`, `system rule`, `EC2 internal names`, `reverse zone`.
    pub kind: &'static str,
    pub label: String,
    /// Matches `Decision::decided_by` when this candidate decided.
    pub decided_by: String,
    /// Why it can't decide in this view, if it can't.
    pub not_visible: Option<String>,
}

impl Resolver {
    /// Every candidate for `qname`, most specific first (see [`Candidate`]).
    pub fn candidates(&self, view: &View, qname: &Name) -> Vec<Candidate> {
        let mut out = Vec::new();
        let mut fq = qname.to_lowercase();
        fq.set_fqdn(true);
        let mut level = LowerName::new(&fq);
        loop {
            for (vi, table) in self.vpc_tables.iter().enumerate() {
                let Some(auths) = table.get(&level) else {
                    continue;
                };
                for auth in auths {
                    let (kind, label, decided_by) = match auth {
                        Authority::Forward(r) => {
                            let rule = &self.topo.rules[*r];
                            let targets: Vec<String> =
                                rule.targets.iter().map(|t| t.to_string()).collect();
                            (
                                "forward rule",
                                format!("{} -> {}", rule.id, targets.join(", ")),
                                format!("rule:{}", rule.id),
                            )
                        }
                        Authority::System(r) => (
                            "system rule",
                            self.topo.rules[*r].id.clone(),
                            format!("rule:{}", self.topo.rules[*r].id),
                        ),
                        Authority::Zone(z) => {
                            let zone = &self.zones[*z];
                            let kind = if zone.decided_by.starts_with("endpoint:") {
                                "endpoint private DNS"
                            } else {
                                "private hosted zone"
                            };
                            (kind, zone.label.clone(), zone.decided_by.clone())
                        }
                        Authority::Ec2Internal => (
                            "EC2 internal names",
                            format!("autodefined rule for {}", self.ec2_domain),
                            "ec2-internal".to_string(),
                        ),
                        Authority::Reverse => (
                            "reverse zone",
                            format!("autodefined reverse rule {level}"),
                            "ec2-reverse".to_string(),
                        ),
                    };
                    let here = view.vpc == Some(vi);
                    // The same authority in several VPCs (a shared rule or zone) is listed once, from this view if visible.
                    if !here
                        && (view.vpc.is_some_and(|v| {
                            self.vpc_tables[v]
                                .get(&level)
                                .is_some_and(|a| a.iter().any(|x| same(x, auth)))
                        }) || out.iter().any(|c: &Candidate| {
                            c.decided_by == decided_by && c.domain == level.to_string()
                        }))
                    {
                        continue;
                    }
                    let mut not_visible = (!here).then(|| {
                        format!(
                            "associated with {} only, not with this view",
                            self.topo.vpcs[vi].label()
                        )
                    });
                    if here
                        && let Authority::Zone(z) = auth
                        && self.zones[*z].inbound_only
                        && !view.via_inbound
                    {
                        not_visible = Some("private DNS only for inbound Resolver endpoints; this client is inside the VPC".into());
                    }
                    out.push(Candidate {
                        domain: level.to_string(),
                        kind,
                        label,
                        decided_by,
                        not_visible,
                    });
                }
            }
            if level.is_root() {
                break;
            }
            level = level.base_name();
        }
        out
    }
}

fn same(a: &Authority, b: &Authority) -> bool {
    match (a, b) {
        (Authority::Forward(x), Authority::Forward(y))
        | (Authority::System(x), Authority::System(y))
        | (Authority::Zone(x), Authority::Zone(y)) => x == y,
        (Authority::Ec2Internal, Authority::Ec2Internal)
        | (Authority::Reverse, Authority::Reverse) => true,
        _ => false,
    }
}
