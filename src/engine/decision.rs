//! The engine's vocabulary: who asks ([`Client`]), what ([`Question`]), the view, and the [`Decision`] — an
//! [`Outcome`], the typed verdict [`DecidedBy`], the judged [`Candidate`]s and the trace — plus the [`Options`] the
//! command line adds. Data only; `mod.rs` decides.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use ipnet::IpNet;
use serde::Serialize;

use super::{FirewallMatch, Lost};
use crate::topology::Upstream;

/// Extended DNS Error codes (RFC 8914) the engine's refusals carry.
pub const EDE_PROHIBITED: u16 = 18;
pub const EDE_NOT_SUPPORTED: u16 = 21;

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

/// What is asked.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub name: &'a Name,
    pub qtype: RecordType,
    pub qclass: DNSClass,
}

impl<'a> Question<'a> {
    /// A class IN question.
    pub fn new(name: &'a Name, qtype: RecordType) -> Self {
        Self {
            name,
            qtype,
            qclass: DNSClass::IN,
        }
    }
}

/// A view, compactly: the VPC (or public) and whether the query came through an inbound endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewKey {
    pub vpc: Option<u32>,
    pub via_inbound: bool,
}

/// The view of a client the engine admitted; only [`Engine::admit`] makes one, so a table keyed by it (prepared
/// answers) can never answer a client the engine would refuse. It also says whether the client sits in a DNS64
/// subnet, whose AAAA answers differ from the rest of the view's, so they are never replayed to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Admitted(pub(super) ViewKey, pub(super) bool);

impl Admitted {
    pub fn view(self) -> ViewKey {
        self.0
    }

    /// The client is in a subnet with DNS64 on.
    pub fn dns64(self) -> bool {
        self.1
    }
}

/// The view that answers, and why.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// Index into `Topology::vpcs`; `None` for the public view.
    #[serde(skip)]
    pub vpc: Option<usize>,
    #[serde(skip)]
    pub key: ViewKey,
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
pub struct Trace(Option<Vec<Step>>);

impl Trace {
    pub(crate) fn new(words: bool) -> Self {
        Self(words.then(Vec::new))
    }

    pub(crate) fn add(&mut self, reference: &'static str, text: impl FnOnce() -> String) {
        if let Some(steps) = &mut self.0 {
            steps.push(Step {
                text: text(),
                reference,
            });
        }
    }

    pub(crate) fn words(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn into_steps(self) -> Vec<Step> {
        self.0.unwrap_or_default()
    }
}

/// What to do with the question.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Answer locally: records, or NXDOMAIN/NODATA with the zone's SOA in `authority`.
    Answer {
        rcode: ResponseCode,
        authoritative: bool,
        answers: Vec<Record>,
        authority: Vec<Record>,
    },
    /// Send `name` (the question, or the end of a local CNAME chain) along `route`; prepend `answers` to the reply.
    Forward {
        route: Arc<Route>,
        name: Name,
        answers: Vec<Record>,
        /// DNS64 (reference §12.6): the client is in a DNS64 subnet and asked AAAA, so an answer without AAAA
        /// records is completed by asking A and synthesizing addresses under 64:ff9b::/96.
        dns64: bool,
    },
    /// Not answered for this client: REFUSED with the reason's Extended DNS Error.
    Refused { reason: Reason },
    /// Local data is broken (a CNAME chain too long).
    ServFail { reason: String },
}

/// Where a forwarded question goes, as the topology writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarding {
    Target(SocketAddr),
    /// The system resolver's nameservers.
    System,
}

/// A forwarding route: compiled once per rule (and for the upstream), returned by reference count.
#[derive(Debug, Clone)]
pub struct Route {
    /// The rule id, or `upstream`: the forwarder's cache keeps answers of different routes apart.
    pub name: Arc<str>,
    /// The forward rule, `None` for the upstream resolvers.
    pub rule: Option<Arc<str>>,
    /// The targets as written (`system` stays one entry), for `explain`.
    pub listed: Vec<Forwarding>,
    /// The addresses to send to, `system` expanded to the system resolvers.
    pub targets: Arc<[SocketAddr]>,
    /// The outbound endpoint address to send from (the first of the rule's outbound endpoint).
    pub source: Option<IpAddr>,
}

/// Why a query is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The source may not ask here (spec "Who may ask").
    SourceNotAllowed,
    /// The inbound endpoint's security group (`allowed_sources`) does not admit the source.
    InboundSecurityGroup(String),
    /// The VPC has `enable_dns_support` off.
    DnsSupportOff,
    ZoneTransfer,
    ClassNotSupported,
}

impl Reason {
    /// The Extended DNS Error (RFC 8914) code the reply carries.
    pub fn ede(&self) -> u16 {
        match self {
            Self::ClassNotSupported => EDE_NOT_SUPPORTED,
            _ => EDE_PROHIBITED,
        }
    }

    /// The EDE text.
    pub fn text(&self) -> &'static str {
        match self {
            Self::SourceNotAllowed => "source not allowed",
            Self::InboundSecurityGroup(_) => "source not allowed by the inbound endpoint",
            Self::DnsSupportOff => "enable_dns_support is off",
            Self::ZoneTransfer => "zone transfers are not offered",
            Self::ClassNotSupported => "only class IN",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InboundSecurityGroup(id) => write!(f, "{} {id}", self.text()),
            _ => f.write_str(self.text()),
        }
    }
}

/// What decided, as data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DecidedBy {
    /// The private DNS zone of this endpoint.
    EndpointZone(Arc<str>),
    /// This private hosted zone (its name without the final dot).
    HostedZone(Arc<str>),
    /// This Resolver rule.
    Rule(Arc<str>),
    /// A DNS Firewall BLOCK rule of this rule group.
    Firewall(Arc<str>),
    Ec2Name,
    Ec2Reverse,
    VpceName,
    Upstream,
    DnsSupportOff,
    /// Refused by "Who may ask".
    Admission,
    /// Class or zone-transfer policy.
    Protocol,
    Chaos,
}

impl DecidedBy {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::EndpointZone(_) => "endpoint",
            Self::HostedZone(_) => "phz",
            Self::Rule(_) => "rule",
            Self::Firewall(_) => "firewall",
            Self::Ec2Name => "ec2-internal",
            Self::Ec2Reverse => "ec2-reverse",
            Self::VpceName => "vpce-name",
            Self::Upstream => "upstream",
            Self::DnsSupportOff => "dns-support-off",
            Self::Admission => "admission",
            Self::Protocol => "protocol",
            Self::Chaos => "chaos",
        }
    }
}

impl fmt::Display for DecidedBy {
    /// `endpoint:vpce-…`, `phz:corp.internal`, `rule:rslvr-rr-…`, else the kind: the query log's `decided_by`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EndpointZone(id) | Self::HostedZone(id) | Self::Rule(id) | Self::Firewall(id) => {
                write!(f, "{}:{id}", self.kind())
            }
            other => f.write_str(other.kind()),
        }
    }
}

impl PartialEq<&str> for DecidedBy {
    fn eq(&self, other: &&str) -> bool {
        match self {
            Self::EndpointZone(id) | Self::HostedZone(id) | Self::Rule(id) | Self::Firewall(id) => {
                other
                    .strip_prefix(self.kind())
                    .and_then(|rest| rest.strip_prefix(':'))
                    == Some(&**id)
            }
            _ => *other == self.kind(),
        }
    }
}

impl Serialize for DecidedBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Something that could decide the question's name, judged: every authority whose domain is the name or a parent,
/// in this view or (as lost) in another.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// The domain the candidate covers.
    pub domain: String,
    /// `endpoint private DNS`, `private hosted zone`, `forward rule`, `system rule`, `EC2 internal names`, ...
    pub kind: &'static str,
    pub label: String,
    pub decided_by: DecidedBy,
    pub won: bool,
    /// Why it did not decide; `None` for the winner.
    #[serde(flatten)]
    pub lost: Option<Lost>,
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub view: View,
    pub outcome: Outcome,
    /// Empty unless the decision was explained.
    pub trace: Vec<Step>,
    pub decided_by: DecidedBy,
    /// The answer is fixed for this view, name and type (no wildcard, no synthesized or NXDOMAIN name), so it may
    /// be prepared once and replayed.
    pub fixed: bool,
    /// The judged candidates for the question's name (only when explained).
    pub candidates: Vec<Candidate>,
    /// The DNS Firewall ALERT or BLOCK rule that matched, for the query log and metrics.
    pub firewall: Option<FirewallMatch>,
}

/// What the command line or the server adds to the topology.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Sources allowed besides the defaults (`--allow`): only ever adds.
    pub allow: Vec<IpNet>,
    /// Replaces the topology's `default_view`: a VPC id or name, or `public`.
    pub default_view: Option<String>,
    /// Replaces the topology's `upstream`.
    pub upstream: Option<Vec<Upstream>>,
    /// The system resolvers (`system` in upstreams), read by the caller.
    pub system: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("default view `{0}` is neither `public` nor a VPC id or name of the topology")]
    UnknownView(String),
}
