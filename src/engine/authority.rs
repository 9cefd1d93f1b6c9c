//! The one interface every kind of authority answers through (the analogue of hickory's `ZoneHandler` with its
//! `LookupControlFlow`): where it sits (registrations), what it says at one of those places (a [`Flow`]), and how
//! `explain` names it.

use std::fmt::Debug;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, Record, RecordType};

use super::{DecidedBy, Route, Trace, ViewKey};
use crate::topology::Topology;

/// What an authority module compiles from: the topology and what every module shares.
pub(crate) struct Compile<'t> {
    pub(crate) topo: &'t Topology,
    /// The SOA record Route 53 puts in private zones, owned by the root (renamed per zone).
    pub(crate) soa: Record,
    /// `ec2.internal.` or `REGION.compute.internal.`
    pub(crate) ec2_domain: Name,
}

/// The SOA of `zone`, for negative answers.
pub(crate) fn soa_for(soa: &Record, zone: &Name) -> Record {
    let mut soa = soa.clone();
    soa.name = zone.clone();
    soa
}

/// Which views see a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The view of one VPC (index into `Topology::vpcs`), walked first, most specific domain first.
    Vpc(usize),
    /// Every view, public included, walked after the VPC's own authorities (public DNS names).
    Everywhere,
    /// Every query of one VPC's view, before any domain is walked (a DNS Firewall's rule groups): `Decide` ends the
    /// query there, `Pass` lets it go on. `Registration::domain` is ignored; `Ask::domain` is the root.
    #[allow(
        dead_code,
        reason = "the first authority of this scope (DNS Firewall) is being added"
    )]
    EveryQuery(usize),
}

/// One place an authority sits: a domain in a scope, and the authority's own entry number for it.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub(crate) scope: Scope,
    pub(crate) domain: LowerName,
    pub(crate) entry: u32,
}

/// The question as one authority sees it at one registration.
pub(crate) struct Ask<'a> {
    pub(crate) view: ViewKey,
    /// Lowercase, fully qualified (the current name of a CNAME chain).
    pub(crate) qname: &'a Name,
    pub(crate) lower: &'a LowerName,
    /// The registered domain being consulted (`qname` or one of its parents).
    pub(crate) domain: &'a LowerName,
    pub(crate) qtype: RecordType,
    /// A more specific system rule covers the name: forwarding authorities stand aside (reference §6.3).
    pub(crate) shielded: bool,
}

/// A local answer: positive, or negative with the zone's SOA.
#[derive(Debug, Clone)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
}

impl Answer {
    pub(crate) fn records(answers: Vec<Record>) -> Self {
        Self {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers,
            authority: Vec::new(),
        }
    }

    pub(crate) fn negative(rcode: ResponseCode, soa: Record) -> Self {
        Self {
            rcode,
            authoritative: true,
            answers: Vec::new(),
            authority: vec![soa],
        }
    }
}

/// What an authority decided.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    Answer(Answer),
    Forward(Arc<Route>),
}

/// What one authority says at one registration.
pub(crate) enum Flow {
    /// It decides the name. `fixed`: the same answer for every query of this view, name and type (may be prepared).
    Decide {
        by: DecidedBy,
        resolved: Resolved,
        fixed: bool,
    },
    /// It does not apply here (why, for `explain`); the walk goes on.
    Pass(Lost),
    /// It does not decide, and less specific forwarding authorities must stand aside (a system rule).
    Shield,
}

/// Why a candidate did not decide, as data; `explain` puts it into words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "lost")]
pub enum Lost {
    /// Associated with another VPC only.
    NotAssociated { vpc: String },
    /// Private DNS only for inbound Resolver endpoints, and the client is inside the VPC.
    InboundOnly,
    /// A system rule: the Resolver answers itself below its domain.
    SystemRuleDefers,
    /// A forward rule under a more specific system rule.
    ShieldedBySystemRule,
    /// An authority registered earlier at the same domain decided (a forward rule beats a zone of the same name).
    SameDomain { winner: &'static str },
    /// A more specific domain decided.
    LessSpecific { winner: String },
    /// Registered here but has nothing for this name.
    NotApplicable,
}

/// How `explain` lists one registration.
pub(crate) struct Described {
    pub(crate) kind: &'static str,
    pub(crate) label: String,
    pub(crate) by: DecidedBy,
}

/// One kind of authority. A module implements it, with `compile(&Compile) -> Self`, and is listed once in
/// `engine::registry`; its place in that list is its precedence among authorities of the same domain.
pub(crate) trait Authority: Debug + Send + Sync {
    /// Every (scope, domain) it covers.
    fn registrations(&self) -> Vec<Registration>;
    /// What it says about `ask` at registration `entry`. Pure: trace steps only, through `trace`.
    fn lookup(&self, entry: u32, ask: &Ask<'_>, trace: &mut Trace) -> Flow;
    /// Its name for `explain` at registration `entry` of `domain`.
    fn describe(&self, entry: u32, domain: &LowerName) -> Described;
}
