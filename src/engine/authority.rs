//! The one interface every kind of authority answers through (the analogue of hickory's `ZoneHandler` with its
//! `LookupControlFlow`): where it sits (registrations), what it says at one of those places (a [`Flow`]), and how
//! `explain` names it.

use std::fmt::Debug;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, Record, RecordType};

use super::key::{Wire, parents};
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
    /// `qname` in lowercase wire form, for table lookups.
    pub(crate) wire: &'a Wire,
    /// The registered domain being consulted (`qname` or one of its parents), in lowercase wire form.
    pub(crate) domain: &'a [u8],
    pub(crate) qtype: RecordType,
    /// A more specific system rule covers the name: forwarding authorities stand aside (reference §6.3).
    pub(crate) shielded: bool,
}

impl Ask<'_> {
    /// Whether the name asked is the registered domain itself (not one of its children).
    pub(crate) fn at_domain(&self) -> bool {
        self.domain.len() == self.wire.suffix(0).len()
    }

    /// The registered domain as a name.
    pub(crate) fn domain_name(&self) -> Name {
        self.qname.trim_to(parents(self.domain).count())
    }
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

/// Registrations a Route 53 Profile brings carry this bit in their entry number (reference §12.2).
pub(crate) const VIA_PROFILE: u32 = 1 << 31;

/// Which VPCs get a resource through their Route 53 Profile, for the authorities that hold such resources
/// (private hosted zones, Resolver rules, interface endpoints).
///
/// Precedence where a VPC's own association and its Profile's meet at one domain (AWS documents none; our
/// choice, [INF]): the VPC's own wins. Own registrations are listed before the Profile's, and the first
/// registration at a domain decides.
#[derive(Debug, Default)]
pub(crate) struct Profiles {
    /// Per VPC: the id of its Profile.
    of_vpc: Vec<Option<Arc<str>>>,
}

impl Profiles {
    pub(crate) fn compile(topo: &Topology) -> Self {
        let of_vpc = (0..topo.vpcs.len())
            .map(|v| {
                topo.profile_of(v)
                    .map(|p| Arc::from(topo.profiles[p].id.as_str()))
            })
            .collect();
        Self { of_vpc }
    }

    /// The VPCs of every Profile that `carries` the resource, without those in `own`.
    pub(crate) fn vpcs(
        topo: &Topology,
        own: &[usize],
        carries: impl Fn(&crate::topology::Profile) -> bool,
    ) -> Vec<usize> {
        let mut out: Vec<usize> = topo
            .profiles
            .iter()
            .filter(|p| carries(p))
            .flat_map(|p| p.vpcs.iter().copied())
            .filter(|v| !own.contains(v))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The entry without the Profile bit; a trace step when the registration came through a Profile.
    pub(crate) fn entry(&self, entry: u32, ask: &Ask<'_>, what: &str, trace: &mut Trace) -> u32 {
        if entry & VIA_PROFILE != 0 {
            let profile = ask
                .view
                .vpc
                .and_then(|v| self.of_vpc.get(v as usize).cloned().flatten());
            trace.add("§12.2 [INF precedence]", || format!(
                "{what} applies to this VPC through its Route 53 Profile {} (where the VPC's own association and its Profile's meet at one domain, the VPC's own wins: our choice, AWS documents none)",
                profile.as_deref().unwrap_or("?")
            ));
        }
        entry & !VIA_PROFILE
    }
}
