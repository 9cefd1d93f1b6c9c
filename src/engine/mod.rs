//! The decision engine: who may ask, which view answers, and what that view answers. Pure and synchronous — no
//! I/O, no clock, no logging — so it is tested through case files, and `explain` is what is served.
//!
//! One call decides a query: [`Engine::decide`] (or [`Engine::explain`], the same decision with the trace of why
//! and the judged candidates) takes the [`Client`] (source and the local address the query arrived on) and the
//! [`Question`], and returns a [`Decision`]: the [`View`], the [`Outcome`] (an answer, positive or negative with
//! its SOA; a [`Route`] to forward to; or a refusal with its [`Reason`] and Extended DNS Error) and the typed
//! verdict [`DecidedBy`]. The server encodes, forwards, logs and counts what it is told, and keeps no policy.
//!
//! Order of a decision: view (`views`), admission (`admission`), protocol policy (`protocol`), DNS support of the
//! VPC, then the names: the VPC's authorities, most specific domain first, then the authorities every view sees
//! (public `vpce-…` names), then the upstream resolvers; CNAMEs to local names are followed in the same view.
//!
//! # Adding a kind of authority
//!
//! 1. Write `src/engine/<kind>.rs` with a type that has `compile(&Compile) -> Self` and implements
//!    [`authority::Authority`]: `registrations()` lists the (scope, domain, entry) places it covers (a VPC's view,
//!    or every view); `lookup(entry, ask, trace)` returns a `Flow` — `Decide { by, resolved, fixed }` (an answer or
//!    a forward route; `fixed` when the answer is the same for every query of the view, name and type),
//!    `Pass(Lost::…)` (not applicable here; the walk goes on) or `Shield` (less specific forwarders stand aside);
//!    `describe` names it for `explain`. Trace steps go through `trace.add(reference, || text)`.
//! 2. Add one line to [`registry`]. Its position there is its precedence against other authorities registered
//!    at the same domain (rules first: a forward rule beats a zone of the same name).
//! 3. Add its verdict to [`DecidedBy`] (with its `kind()` label for metrics) and, if it can lose in a new way,
//!    a variant to [`Lost`] with its words in `explain.rs`.
//!
//! Authorities that judge every query of a VPC rather than the names under a domain (DNS Firewall) register with
//! `Scope::EveryQuery(vpc)`: they are asked first, in registry order, and `Pass` lets the query go on to the walk.
//! Authorities a VPC gets from elsewhere (Route 53 Profiles) are registrations of the existing kinds in that VPC.

mod admission;
mod authority;
mod decision;
mod delegations;
mod ec2_names;
mod endpoint_zones;
mod firewall;
mod hosted_zones;
mod key;
mod prefix;
mod protocol;
mod rules;
mod views;
mod vpce_names;
mod zone;

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{self, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use ipnet::IpNet;

pub use authority::{Answer, Lost};
pub use decision::*;
pub use firewall::FirewallMatch;

use admission::{Admission, Admit};
use authority::{Ask, Authority, Compile, Flow, Resolved, Scope};
use key::{Key, Wire};
use views::{Views, Why};

use crate::catalog;
use crate::hash::FastMap;
use crate::topology::{BlockResponse, Topology, Upstream, ViewRef};

/// TTL of endpoint answers: [OBS] for vpce names, [INF] for private DNS names (reference §1.3).
pub(crate) const ENDPOINT_TTL: u32 = 60;
/// CNAME chains longer than this end in SERVFAIL.
const MAX_CNAME_CHAIN: usize = 8;

/// The authorities, in precedence order at one domain. One line per kind.
fn registry(c: &Compile<'_>) -> Vec<Box<dyn Authority>> {
    vec![
        Box::new(rules::Rules::compile(c)),
        Box::new(delegations::Delegations::compile(c)),
        Box::new(endpoint_zones::EndpointZones::compile(c)),
        Box::new(hosted_zones::HostedZones::compile(c)),
        Box::new(ec2_names::Ec2Names::compile(c)),
        Box::new(vpce_names::VpceNames::compile(c)),
    ]
}

/// One authority at one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    auth: u16,
    entry: u32,
}

/// Domain (lowercase wire form) -> the authorities registered there, in precedence order.
type Table = FastMap<Key, Vec<Slot>>;

/// A candidate the walk consulted, for `explain`.
struct Seen {
    /// Labels of the registered domain (a suffix of the name walked).
    domain: usize,
    slot: Slot,
    lost: Option<Lost>,
}

/// The walk's result.
struct Hit {
    by: DecidedBy,
    resolved: Resolved,
    fixed: bool,
    /// Where the winner sits (labels of its domain; None: the upstream), for judging the others.
    at: Option<(usize, Slot)>,
}

/// A compiled topology, ready to answer. Immutable; a reload builds a new one.
#[derive(Debug)]
pub struct Engine {
    topo: Arc<Topology>,
    auths: Vec<Box<dyn Authority>>,
    /// Per VPC: domain -> the authorities registered there, in precedence order.
    vpc_tables: Vec<Table>,
    /// Authorities every view sees.
    everywhere: Table,
    /// Per VPC: authorities asked about every query before the walk.
    every_query: Vec<Vec<Slot>>,
    /// Domain -> (VPC, slot) of every VPC: only `explain` reads it (candidates of other views).
    all_vpcs: FastMap<Key, Vec<(usize, Slot)>>,
    views: Views,
    admission: Admission,
    upstream: Arc<Route>,
    firewall: firewall::Firewall,
    /// Sources inside subnets with DNS64 on.
    dns64_nets: prefix::PrefixMap<()>,
}

/// The name the engine was called before it decided admission too.
pub type Resolver = Engine;

pub(crate) fn name(text: &str) -> Name {
    let mut n = Name::from_str(text).unwrap_or_else(|_| Name::root());
    n.set_fqdn(true);
    n.to_lowercase()
}

pub(crate) fn record(owner: &Name, ttl: u32, data: RData) -> Record {
    Record::from_rdata(owner.clone(), ttl, data)
}

/// The SOA of every negative answer the engine gives, owned by the root (each answer renames it to its zone).
pub fn negative_soa() -> Record {
    r53_soa(&Name::root())
}

/// The SOA Route 53 puts in every private hosted zone.
pub(crate) fn r53_soa(zone: &Name) -> Record {
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

fn default_view(topo: &Topology, view: Option<&str>) -> Result<ViewRef, EngineError> {
    match view {
        None => Ok(topo.default_view),
        Some("public") => Ok(ViewRef::Public),
        Some(key) => topo
            .vpcs
            .iter()
            .position(|v| v.id == key || v.name.as_deref() == Some(key))
            .map(ViewRef::Vpc)
            .ok_or_else(|| EngineError::UnknownView(key.to_string())),
    }
}

fn upstream_route(upstream: &[Upstream], system: &[SocketAddr]) -> Route {
    let listed: Vec<Forwarding> = upstream
        .iter()
        .map(|u| match u {
            Upstream::System => Forwarding::System,
            Upstream::Addr(a) => Forwarding::Target(*a),
        })
        .collect();
    let mut targets = Vec::new();
    for t in &listed {
        match t {
            Forwarding::Target(a) => targets.push(*a),
            Forwarding::System => targets.extend_from_slice(system),
        }
    }
    Route {
        name: Arc::from("upstream"),
        rule: None,
        listed,
        targets: targets.into(),
        source: None,
    }
}

impl Engine {
    /// Compiles `topology` as written.
    pub fn new(topology: Topology) -> Self {
        Self::compile(topology, &Options::default(), ViewRef::Public, false)
    }

    /// Compiles `topology` with what the command line adds.
    pub fn with_options(topology: Topology, options: &Options) -> Result<Self, EngineError> {
        let view = default_view(&topology, options.default_view.as_deref())?;
        Ok(Self::compile(topology, options, view, true))
    }

    fn compile(mut topo: Topology, options: &Options, view: ViewRef, set_view: bool) -> Self {
        if set_view {
            topo.default_view = view;
        }
        if let Some(up) = &options.upstream {
            topo.upstream = up.clone();
        }
        let compile = Compile {
            topo: &topo,
            soa: negative_soa(),
            ec2_domain: name(&catalog::ec2_internal_domain(&topo.region)),
        };
        let auths = registry(&compile);
        let firewall = firewall::Firewall::compile(&compile);
        let dns64_nets = dns64_nets(&topo);
        let mut vpc_tables: Vec<Table> = vec![Table::default(); topo.vpcs.len()];
        let mut everywhere = Table::default();
        let mut every_query: Vec<Vec<Slot>> = vec![Vec::new(); topo.vpcs.len()];
        let mut all_vpcs: FastMap<Key, Vec<(usize, Slot)>> = FastMap::default();
        for (ai, auth) in auths.iter().enumerate() {
            for r in auth.registrations() {
                let slot = Slot {
                    auth: ai as u16,
                    entry: r.entry,
                };
                let domain = key::key(&r.domain);
                match r.scope {
                    Scope::Vpc(vi) => {
                        all_vpcs.entry(domain.clone()).or_default().push((vi, slot));
                        vpc_tables[vi].entry(domain).or_default().push(slot);
                    }
                    Scope::Everywhere => everywhere.entry(domain).or_default().push(slot),
                    Scope::EveryQuery(vi) => every_query[vi].push(slot),
                }
            }
        }
        let views = Views::compile(&topo, topo.default_view);
        let admission = Admission::compile(&topo, &options.allow);
        let upstream = Arc::new(upstream_route(&topo.upstream, &options.system));
        // The records live on compiled in the zones; keeping them twice was a third of the memory at 100,000.
        for z in &mut topo.hosted_zones {
            z.records = Vec::new();
        }
        Self {
            topo: Arc::new(topo),
            auths,
            vpc_tables,
            everywhere,
            every_query,
            all_vpcs,
            views,
            admission,
            upstream,
            firewall,
            dns64_nets,
        }
    }

    /// The topology this engine was compiled from, without its hosted zones' records (compiled into the zones).
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Admission and view only: the hot path in front of prepared answers.
    pub fn admit(&self, client: Client) -> Result<Admitted, Reason> {
        let src = client.src.to_canonical();
        let arrival = self.views.arrival(client.local);
        self.admission.admit(src, arrival)?;
        let (key, _) = self.views.choose(src, arrival, client.local);
        Ok(Admitted(key, self.in_dns64_subnet(src)))
    }

    /// Which view answers `client` (spec "Which view answers a client"), with why.
    pub fn view(&self, client: Client) -> View {
        let src = client.src.to_canonical();
        let local = client.local.map(|l| l.to_canonical());
        let arrival = self.views.arrival(local);
        let (key, why) = self.views.choose(src, arrival, local);
        self.view_of(key, self.why_text(key, why, src))
    }

    fn why_text(&self, key: ViewKey, why: Why, src: IpAddr) -> String {
        match why {
            Why::Arrival(local) => format!(
                "the query arrived on {local}, {} of {}",
                if key.via_inbound {
                    "an inbound Resolver endpoint address"
                } else {
                    "the VPC resolver address (base + 2)"
                },
                self.topo.vpcs[key.vpc.unwrap_or_default() as usize].label()
            ),
            Why::Source(i) => format!("source {src} is in {}", self.views.source_text(i)),
            Why::Default => match key.vpc {
                Some(vi) => format!(
                    "source {src} matches no VPC or network; default_view is {}",
                    self.topo.vpcs[vi as usize].label()
                ),
                None => format!(
                    "source {src} matches no VPC, client network or inbound endpoint; default_view is public"
                ),
            },
        }
    }

    /// The view of `key`, described by `why`.
    pub fn view_of(&self, key: ViewKey, why: String) -> View {
        View {
            vpc: key.vpc.map(|v| v as usize),
            key,
            name: self.view_name(key).to_string(),
            via_inbound: key.via_inbound,
            why,
        }
    }

    /// `vpc-…` or `public`.
    pub fn view_name(&self, key: ViewKey) -> &str {
        key.vpc
            .and_then(|v| self.topo.vpcs.get(v as usize))
            .map_or("public", |v| v.id.as_str())
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
                || self.views.has_inbound_network(vi)
            {
                keys.push(ViewKey {
                    vpc: Some(vi as u32),
                    via_inbound: true,
                });
            }
        }
        keys
    }

    /// Decides one query without putting the reasons into words: the query path.
    pub fn decide(&self, client: Client, question: &Question<'_>) -> Decision {
        self.run(client, question, false)
    }

    /// The same decision with the trace of why and the judged candidates: `explain` and the debug log.
    pub fn explain(&self, client: Client, question: &Question<'_>) -> Decision {
        self.run(client, question, true)
    }

    /// [`Engine::explain`] for a class IN question.
    pub fn resolve(&self, client: Client, qname: &Name, qtype: RecordType) -> Decision {
        self.explain(client, &Question::new(qname, qtype))
    }

    fn run(&self, client: Client, q: &Question<'_>, words: bool) -> Decision {
        let src = client.src.to_canonical();
        let local = client.local.map(|l| l.to_canonical());
        let arrival = self.views.arrival(local);
        let (key, why) = self.views.choose(src, arrival, local);
        let why = if words {
            self.why_text(key, why, src)
        } else {
            String::new()
        };
        let view = self.view_of(key, why);
        let mut trace = Trace::new(words);
        trace.add("spec: Which view answers a client; §6.1, §6.2", || {
            format!("view {}: {}", view.name, view.why)
        });
        let early = |outcome, decided_by, trace: Trace, view| Decision {
            view,
            outcome,
            trace: trace.into_steps(),
            decided_by,
            fixed: false,
            candidates: Vec::new(),
            firewall: None,
        };
        match self.admission.admit(src, arrival) {
            Ok(admit) => trace.add("spec: Who may ask", || admit_text(admit, src, local)),
            Err(reason) => {
                trace.add("spec: Who may ask", || refusal_text(&reason, src, local));
                return early(
                    Outcome::Refused { reason },
                    DecidedBy::Admission,
                    trace,
                    view,
                );
            }
        }
        if let Some((outcome, by)) = protocol::before(q, &mut trace) {
            return early(outcome, by, trace, view);
        }
        if let Some(vi) = view.vpc
            && !self.topo.vpcs[vi].dns_support
        {
            trace.add("§1.2", || format!("{} has enable_dns_support off: the Amazon DNS server does not answer (exact failure UNCONFIRMED; we refuse)", view.name));
            let outcome = Outcome::Refused {
                reason: Reason::DnsSupportOff,
            };
            return early(outcome, DecidedBy::DnsSupportOff, trace, view);
        }
        let mut d = self.names(view.clone(), q, &mut trace);
        if q.qtype == RecordType::AAAA && self.in_dns64_subnet(src) {
            if let Outcome::Forward { dns64, .. } = &mut d.outcome {
                *dns64 = true;
                trace.add("§12.6", || "DNS64: the client is in a subnet with EnableDns64; if the forwarded answer has no AAAA, the A records are asked for and synthesized under 64:ff9b::/96".to_string());
            } else {
                d = self.dns64(d, view, q, &mut trace);
            }
        }
        d.outcome = protocol::minimal_any(q, d.outcome, &mut trace);
        d.trace = trace.into_steps();
        d
    }

    /// The names part of a decision: the firewall, the walk, CNAMEs followed in the same view (each name checked
    /// by the firewall again), the candidates judged when explaining.
    fn names(&self, view: View, q: &Question<'_>, trace: &mut Trace) -> Decision {
        let (qtype, key) = (q.qtype, view.key);
        let mut answers = Vec::new();
        let mut current = q.name.to_lowercase();
        current.set_fqdn(true);
        let mut fw = FirewallState::default();
        let redirect = |current: &mut Name,
                        first,
                        answers: &mut Vec<Record>,
                        fw: &mut FirewallState,
                        trace: &mut Trace| {
            self.gate(view.vpc, current, qtype, first, answers, fw, trace)
        };
        if let Some(outcome) = redirect(&mut current, true, &mut answers, &mut fw, trace) {
            return fw.decision(view, outcome, DecidedBy::Upstream, Vec::new());
        }
        let mut seen = trace.words().then(Vec::new);
        let first = self.walk(key, &current, qtype, trace, seen.as_mut());
        let candidates = match &seen {
            Some(seen) => self.judge(key, &current, seen, first.at.as_ref()),
            None => Vec::new(),
        };
        let decided_by = first.by.clone();
        let mut fixed = first.fixed;
        let mut hit = first;
        for depth in 0..=MAX_CNAME_CHAIN {
            let answer = match hit.resolved {
                Resolved::Forward(route) => {
                    let outcome = Outcome::Forward {
                        route,
                        name: current,
                        answers,
                        dns64: false,
                    };
                    fixed = false;
                    return fw.decision_fixed(view, outcome, decided_by, candidates, fixed);
                }
                Resolved::Answer(a) => a,
            };
            let Answer {
                rcode,
                authoritative,
                answers: mut got,
                authority,
            } = answer;
            // Chase a CNAME inside the server when the target is local (reference §6.4, spec).
            let target = got.iter().find_map(|r| match &r.data {
                RData::CNAME(c) if qtype != RecordType::CNAME && r.name == current => {
                    Some(c.0.clone())
                }
                _ => None,
            });
            answers.append(&mut got);
            let Some(target) = target else {
                let outcome = Outcome::Answer {
                    rcode,
                    authoritative,
                    answers,
                    authority,
                };
                return fw.decision_fixed(view, outcome, decided_by, candidates, fixed);
            };
            // A chain may hold MAX_CNAME_CHAIN CNAMEs; one more ends in SERVFAIL.
            if depth == MAX_CNAME_CHAIN {
                break;
            }
            trace.add("RFC 1034 §3.6.2", || {
                format!("{current} is a CNAME for {target}: following it in the same view")
            });
            current = target.to_lowercase();
            if let Some(outcome) = redirect(&mut current, false, &mut answers, &mut fw, trace) {
                return fw.decision(view, outcome, decided_by, candidates);
            }
            hit = self.walk(key, &current, qtype, trace, None);
            fixed &= hit.fixed;
        }
        let outcome = Outcome::ServFail {
            reason: "CNAME chain too long".into(),
        };
        fw.decision_fixed(view, outcome, decided_by, candidates, false)
    }

    /// Whether `src` is in a subnet with DNS64 on (its CIDRs or its `clients`).
    fn in_dns64_subnet(&self, src: IpAddr) -> bool {
        self.dns64_nets.contains(src)
    }

    /// DNS64 (reference §12.6): a local AAAA answer with no AAAA record gets one synthesized from each A record
    /// under 64:ff9b::/96; a real AAAA is kept. Forwarded answers are not synthesized here (not done).
    fn dns64(&self, d: Decision, view: View, q: &Question<'_>, trace: &mut Trace) -> Decision {
        let Outcome::Answer {
            rcode: ResponseCode::NoError,
            answers,
            ..
        } = &d.outcome
        else {
            return d;
        };
        if answers.iter().any(|r| r.record_type() == RecordType::AAAA)
            || matches!(d.decided_by, DecidedBy::Firewall(_))
        {
            return d;
        }
        let a = self.names(
            view,
            &Question::new(q.name, RecordType::A),
            &mut Trace::new(false),
        );
        let Outcome::Answer {
            rcode: ResponseCode::NoError,
            answers: a_answers,
            authoritative,
            ..
        } = &a.outcome
        else {
            return d;
        };
        let mut out: Vec<Record> = Vec::new();
        for r in a_answers {
            match &r.data {
                RData::A(v4) => {
                    let [a, b, c, e] = v4.0.octets();
                    let v6 = std::net::Ipv6Addr::new(
                        0x64,
                        0xff9b,
                        0,
                        0,
                        0,
                        0,
                        u16::from_be_bytes([a, b]),
                        u16::from_be_bytes([c, e]),
                    );
                    out.push(record(&r.name, r.ttl, RData::AAAA(v6.into())));
                }
                _ => out.push(r.clone()),
            }
        }
        if !out.iter().any(|r| r.record_type() == RecordType::AAAA) {
            return d;
        }
        trace.add("§12.6", || format!("DNS64: the client is in a subnet with EnableDns64 and {} has no AAAA: synthesized from its A records under 64:ff9b::/96 (TTL of the A record: UNCONFIRMED)", q.name));
        Decision {
            outcome: Outcome::Answer {
                rcode: ResponseCode::NoError,
                authoritative: *authoritative,
                answers: out,
                authority: Vec::new(),
            },
            fixed: false,
            ..d
        }
    }

    /// The firewall's word on `current`: `None` to resolve it (after an OVERRIDE, `current` is the override
    /// domain and its CNAME is in `answers`), or the blocked outcome.
    #[allow(clippy::too_many_arguments)]
    fn gate(
        &self,
        vpc: Option<usize>,
        current: &mut Name,
        qtype: RecordType,
        first: bool,
        answers: &mut Vec<Record>,
        fw: &mut FirewallState,
        trace: &mut Trace,
    ) -> Option<Outcome> {
        let verdict = self
            .firewall
            .check(vpc, current, qtype, first, trace, &mut fw.hit);
        let firewall::Verdict::Block(response) = verdict else {
            return None;
        };
        fw.blocked = fw.hit.as_ref().map(|h| Arc::from(h.rule_group.as_str()));
        // [INF] UNCONFIRMED: AA, SOA and TTL of block answers; answered without AA or SOA here, after the CNAMEs
        // of the chain so far.
        let negative = |rcode, answers: &mut Vec<Record>| Outcome::Answer {
            rcode,
            authoritative: false,
            answers: std::mem::take(answers),
            authority: Vec::new(),
        };
        match response {
            BlockResponse::Nxdomain => {
                trace.add("§12.1", || {
                    "BLOCK with NXDOMAIN (UNCONFIRMED: no SOA, AA off)".to_string()
                });
                Some(negative(ResponseCode::NXDomain, answers))
            }
            BlockResponse::Nodata => {
                trace.add("§12.1", || {
                    "BLOCK with NODATA: NOERROR, empty answer (UNCONFIRMED: no SOA, AA off)"
                        .to_string()
                });
                Some(negative(ResponseCode::NoError, answers))
            }
            BlockResponse::Override { domain, ttl } => {
                trace.add("§12.1", || format!("BLOCK with OVERRIDE: {current} CNAME {domain} (TTL {ttl}), and {domain} is resolved in the same view [INF: that the CNAME is followed is UNCONFIRMED]"));
                answers.push(record(
                    current,
                    ttl,
                    RData::CNAME(rdata::CNAME(domain.clone())),
                ));
                *current = domain;
                None
            }
        }
    }

    /// Whether a DNS Firewall rule group applies to `vpc`'s view, so forwarded answers go through
    /// [`Engine::inspect_forwarded`].
    pub fn inspects_forwarded(&self, vpc: Option<usize>) -> bool {
        self.firewall.applies(vpc)
    }

    /// DNS Firewall on a forwarded answer (redirection inspect, reference §12.1): each CNAME target of the upstream's
    /// answer is checked for `vpc`'s view as a name of the chain. The first ALERT or BLOCK match is returned; for a
    /// BLOCK also the answer to send instead: the chain up to the blocked name, then NXDOMAIN, NODATA, or the
    /// OVERRIDE CNAME (not followed further here: [INF]). Pure: the server hands in the records it got.
    pub fn inspect_forwarded(
        &self,
        vpc: Option<usize>,
        qtype: RecordType,
        answers: &[Record],
    ) -> Option<(FirewallMatch, Option<Outcome>)> {
        let mut alert = None;
        let mut kept = Vec::new();
        for r in answers {
            kept.push(r.clone());
            let RData::CNAME(target) = &r.data else {
                continue;
            };
            let mut hit = None;
            let verdict = self.firewall.check(
                vpc,
                &target.0,
                qtype,
                false,
                &mut Trace::new(false),
                &mut hit,
            );
            let firewall::Verdict::Block(response) = verdict else {
                alert = alert.or(hit);
                continue;
            };
            let (rcode, mut answers) = (ResponseCode::NoError, kept);
            let rcode = match response {
                BlockResponse::Nxdomain => ResponseCode::NXDomain,
                BlockResponse::Nodata => rcode,
                BlockResponse::Override { domain, ttl } => {
                    answers.push(record(&target.0, ttl, RData::CNAME(rdata::CNAME(domain))));
                    rcode
                }
            };
            let outcome = Outcome::Answer {
                rcode,
                authoritative: false,
                answers,
                authority: Vec::new(),
            };
            return hit.map(|h| (h, Some(outcome)));
        }
        alert.map(|h| (h, None))
    }

    /// One name, no CNAME chasing: the VPC's authorities, most specific first (reference §9), then those every
    /// view sees, then the upstream resolvers.
    fn walk(
        &self,
        key: ViewKey,
        qname: &Name,
        qtype: RecordType,
        trace: &mut Trace,
        seen: Option<&mut Vec<Seen>>,
    ) -> Hit {
        let wire = Wire::new(qname);
        let mut ask = Ask {
            view: key,
            qname,
            wire: &wire,
            domain: wire.suffix(0),
            qtype,
            shielded: false,
        };
        match key.vpc {
            Some(vi) => {
                if let Some(hit) = self.every_query(vi as usize, &ask, trace) {
                    return hit;
                }
                let table = &self.vpc_tables[vi as usize];
                if let Some(hit) = self.walk_table(table, &mut ask, trace, seen) {
                    return hit;
                }
                trace.add("§6.3, §6.4", || format!("no rule or private zone of {} covers {qname}: recursive resolution (the autodefined \".\" rule)", self.view_name(key)));
            }
            None => trace.add("§1.1, §2.2", || {
                format!("public view: only public DNS answers {qname}")
            }),
        }
        if let Some(hit) = self.walk_table(&self.everywhere, &mut ask, trace, None) {
            return hit;
        }
        trace.add("§6.1", || {
            format!("{qname} goes to the upstream resolvers (the public internet in this lab)")
        });
        Hit {
            by: DecidedBy::Upstream,
            resolved: Resolved::Forward(self.upstream.clone()),
            fixed: false,
            at: None,
        }
    }

    /// The authorities that judge every query of the VPC, before the walk.
    fn every_query(&self, vi: usize, ask: &Ask<'_>, trace: &mut Trace) -> Option<Hit> {
        for &slot in &self.every_query[vi] {
            let here = Ask {
                domain: key::ROOT,
                ..*ask
            };
            if let Flow::Decide {
                by,
                resolved,
                fixed,
            } = self.auths[slot.auth as usize].lookup(slot.entry, &here, trace)
            {
                return Some(Hit {
                    by,
                    resolved,
                    fixed,
                    at: Some((0, slot)),
                });
            }
        }
        None
    }

    /// The suffixes of `ask.qname`, most specific first; at each, the registered authorities in precedence order.
    fn walk_table(
        &self,
        table: &Table,
        ask: &mut Ask<'_>,
        trace: &mut Trace,
        mut seen: Option<&mut Vec<Seen>>,
    ) -> Option<Hit> {
        if table.is_empty() {
            return None;
        }
        let labels = ask.wire.labels();
        for skip in 0..=labels {
            let level = ask.wire.suffix(skip);
            let Some(slots) = table.get(level) else {
                continue;
            };
            for &slot in slots {
                let here = Ask {
                    domain: level,
                    ..*ask
                };
                let lost = match self.auths[slot.auth as usize].lookup(slot.entry, &here, trace) {
                    Flow::Decide {
                        by,
                        resolved,
                        fixed,
                    } => {
                        return Some(Hit {
                            by,
                            resolved,
                            fixed,
                            at: Some((labels - skip, slot)),
                        });
                    }
                    Flow::Pass(lost) => lost,
                    Flow::Shield => {
                        ask.shielded = true;
                        Lost::SystemRuleDefers
                    }
                };
                if let Some(seen) = seen.as_deref_mut() {
                    seen.push(Seen {
                        domain: labels - skip,
                        slot,
                        lost: Some(lost),
                    });
                }
            }
        }
        None
    }

    /// Every candidate for `qname`, most specific first, with the winner and why each other one lost.
    fn judge(
        &self,
        key: ViewKey,
        qname: &Name,
        seen: &[Seen],
        winner: Option<&(usize, Slot)>,
    ) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = Vec::new();
        let domain_name = |labels: usize| LowerName::new(&qname.trim_to(labels));
        let winner_kind = winner.map(|&(d, s)| {
            let kind = self.auths[s.auth as usize]
                .describe(s.entry, &domain_name(d))
                .kind;
            (d, kind)
        });
        let wire = Wire::new(qname);
        for skip in 0..=wire.labels() {
            let labels = wire.labels() - skip;
            let domain = wire.suffix(skip);
            let own = key
                .vpc
                .and_then(|vi| self.vpc_tables[vi as usize].get(domain))
                .map_or(&[][..], Vec::as_slice);
            let others = self.all_vpcs.get(domain).map_or(&[][..], Vec::as_slice);
            if own.is_empty() && others.is_empty() {
                continue;
            }
            let level = domain_name(labels);
            for &slot in own {
                let d = self.auths[slot.auth as usize].describe(slot.entry, &level);
                let won = winner.is_some_and(|&(wd, ws)| wd == labels && ws == slot);
                let lost = if won {
                    None
                } else if let Some(s) = seen.iter().find(|s| s.domain == labels && s.slot == slot) {
                    s.lost.clone()
                } else if d.kind == "forward rule"
                    && seen.iter().any(|s| s.lost == Some(Lost::SystemRuleDefers))
                {
                    Some(Lost::ShieldedBySystemRule)
                } else {
                    Some(match winner_kind {
                        Some((wd, kind)) if wd == labels => Lost::SameDomain { winner: kind },
                        Some((wd, _)) => Lost::LessSpecific {
                            winner: domain_name(wd).to_string(),
                        },
                        None => Lost::NotApplicable,
                    })
                };
                push_candidate(&mut out, &level, d, won, lost);
            }
            for &(vi, slot) in others {
                if key.vpc == Some(vi as u32) || own.contains(&slot) {
                    continue;
                }
                let d = self.auths[slot.auth as usize].describe(slot.entry, &level);
                let lost = Lost::NotAssociated {
                    vpc: self.topo.vpcs[vi].label(),
                };
                push_candidate(&mut out, &level, d, false, Some(lost));
            }
        }
        out
    }
}

/// The source networks of subnets with DNS64 on: CIDRs and `clients`.
fn dns64_nets(topo: &Topology) -> prefix::PrefixMap<()> {
    let mut out = prefix::PrefixMap::default();
    for s in topo
        .vpcs
        .iter()
        .flat_map(|v| v.subnets.iter())
        .filter(|s| s.dns64)
    {
        out.insert(IpNet::V4(s.cidr), ());
        for net in s
            .ipv6_cidr
            .map(IpNet::V6)
            .into_iter()
            .chain(s.clients.iter().copied())
        {
            out.insert(net, ());
        }
    }
    out
}

/// What the firewall did during one decision.
#[derive(Default)]
struct FirewallState {
    /// The ALERT or BLOCK rule that matched.
    hit: Option<FirewallMatch>,
    /// The rule group of a BLOCK rule: it decided.
    blocked: Option<Arc<str>>,
}

impl FirewallState {
    fn decision(
        &self,
        view: View,
        outcome: Outcome,
        by: DecidedBy,
        candidates: Vec<Candidate>,
    ) -> Decision {
        self.decision_fixed(view, outcome, by, candidates, false)
    }

    /// A firewall match is never prepared: every ALERT and BLOCK is logged and counted.
    fn decision_fixed(
        &self,
        view: View,
        outcome: Outcome,
        by: DecidedBy,
        candidates: Vec<Candidate>,
        fixed: bool,
    ) -> Decision {
        Decision {
            view,
            outcome,
            trace: Vec::new(),
            decided_by: self.blocked.clone().map_or(by, DecidedBy::Firewall),
            fixed: fixed && self.hit.is_none(),
            candidates,
            firewall: self.hit.clone(),
        }
    }
}

/// Adds a candidate unless the same authority at the same domain is listed already (a rule or zone shared by
/// several VPCs is listed once, from this view when it is visible here).
fn push_candidate(
    out: &mut Vec<Candidate>,
    level: &LowerName,
    d: authority::Described,
    won: bool,
    lost: Option<Lost>,
) {
    let domain = level.to_string();
    if out
        .iter()
        .any(|c| c.decided_by == d.by && c.domain == domain)
    {
        return;
    }
    out.push(Candidate {
        domain,
        kind: d.kind,
        label: d.label,
        decided_by: d.by,
        won,
        lost,
    });
}

fn admit_text(admit: Admit, src: IpAddr, local: Option<IpAddr>) -> String {
    let at = local.map_or_else(|| "no known local address".to_string(), |l| l.to_string());
    match admit {
        Admit::Inbound { listed: true } => {
            format!("admitted: {src} is in the allowed_sources of the inbound endpoint at {at}")
        }
        Admit::Inbound { listed: false } => format!(
            "admitted: the inbound endpoint at {at} has no allowed_sources, so any source may ask"
        ),
        Admit::VpcResolver => format!("admitted: {at} is a VPC resolver address"),
        Admit::Source => format!(
            "admitted: {src} (arriving on {at}) is loopback, in a VPC, a client network or `allow`"
        ),
    }
}

fn refusal_text(reason: &Reason, src: IpAddr, local: Option<IpAddr>) -> String {
    let at = local.map_or_else(|| "no known local address".to_string(), |l| l.to_string());
    match reason {
        Reason::InboundSecurityGroup(id) => format!(
            "REFUSED: {src} is not in the allowed_sources of inbound endpoint {id} ({at}) [INF: AWS's security group drops the packet; we refuse, with EDE 18, so the failure is visible]"
        ),
        _ => format!(
            "REFUSED: {src}, arriving on {at}, is neither loopback nor in a VPC, a VPC's or subnet's clients, a client network, `allow` or --allow (EDE 18 Prohibited)"
        ),
    }
}
