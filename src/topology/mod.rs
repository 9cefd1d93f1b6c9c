//! The topology: VPCs, subnets, EC2 instances, endpoints, private hosted zones, Resolver endpoints and rules, DNS
//! Firewall, Route 53 Profiles, client networks.
//!
//! `parse` turns YAML text (one or more files, merged) into a validated [`Topology`] with every default filled in,
//! or returns every problem found, each with its file, line and column. Nothing here does networking.

mod build;
pub mod raw;
mod source;
mod yaml;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::catalog::Service;

pub use source::{Diagnostic, schema};

/// Every problem found in a set of topology files.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diag) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diag}")?;
        }
        Ok(())
    }
}

/// Why topology files could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// The embedded default topology (`zones/default.yaml`).
pub const DEFAULT_YAML: &str = include_str!("../../zones/default.yaml");

/// Reads and parses topology files; they merge into one topology.
pub fn load(paths: &[impl AsRef<Path>]) -> Result<Topology, LoadError> {
    let mut sources = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        sources.push((path.display().to_string(), text));
    }
    parse(&sources).map_err(LoadError::Invalid)
}

/// Parses `(file name, YAML text)` pairs into one validated topology.
pub fn parse(sources: &[(String, String)]) -> Result<Topology, Diagnostics> {
    build::build(sources)
}

/// Parses one YAML text (named `<inline>` in errors).
///
/// # Examples
///
/// ```
/// let topology = vpc_resolver::topology::parse_str("vpcs: [ { cidr: 10.0.0.0/16 } ]\nendpoints: [ec2]")?;
/// assert_eq!(topology.endpoints.len(), 1);
/// // Every problem comes back with its line and column.
/// let err = vpc_resolver::topology::parse_str("vpcs: [ { cidr: 10.0.0.0/40 } ]").unwrap_err();
/// assert!(err.to_string().starts_with("<inline>:1:"), "{err}");
/// # Ok::<(), vpc_resolver::topology::Diagnostics>(())
/// ```
pub fn parse_str(text: &str) -> Result<Topology, Diagnostics> {
    parse(&[("<inline>".to_string(), text.to_string())])
}

/// The embedded default topology.
pub fn default_topology() -> Result<Topology, Diagnostics> {
    parse(&[("zones/default.yaml".to_string(), DEFAULT_YAML.to_string())])
}

/// Response rate limiting per client network, like BIND's RRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Responses per second per client network (at least 1).
    pub responses_per_second: u32,
    /// Every Nth limited response goes out truncated (TC=1); 0 = none, all limited responses are dropped.
    pub slip: u32,
    /// IPv4 clients are grouped by this prefix length (1-32).
    pub ipv4_prefix: u8,
    /// IPv6 clients are grouped by this prefix length (1-128).
    pub ipv6_prefix: u8,
    /// Never limited.
    pub exempt: Vec<IpNet>,
}

impl RateLimit {
    /// `responses_per_second` per /24 and /56, slip 2, loopback exempt.
    pub fn new(responses_per_second: u32) -> Self {
        Self {
            responses_per_second: responses_per_second.max(1),
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: loopback(),
        }
    }
}

/// 127.0.0.0/8 and ::1.
pub fn loopback() -> Vec<IpNet> {
    vec![
        IpNet::V4(ipnet::Ipv4Net::new_assert(std::net::Ipv4Addr::LOCALHOST, 8).trunc()),
        IpNet::V6(ipnet::Ipv6Net::new_assert(
            std::net::Ipv6Addr::LOCALHOST,
            128,
        )),
    ]
}

#[derive(Debug, Clone)]
pub struct Topology {
    pub region: String,
    /// `amazonaws.com`, or `amazonaws.com.cn` in the China partition.
    pub dns_suffix: &'static str,
    pub upstream: Vec<Upstream>,
    pub default_view: ViewRef,
    /// Sources allowed to query besides VPC CIDRs, clients and networks.
    pub allow: Vec<IpNet>,
    /// A file wrote `allow`: loopback is then admitted only if listed (so a lab can exclude part of 127/8).
    pub allow_explicit: bool,
    /// Response rate limiting (UDP only); `None` = off.
    pub rate_limit: Option<RateLimit>,
    pub vpcs: Vec<Vpc>,
    pub endpoints: Vec<Endpoint>,
    pub hosted_zones: Vec<HostedZone>,
    pub inbound_endpoints: Vec<ResolverEndpoint>,
    pub outbound_endpoints: Vec<ResolverEndpoint>,
    pub rules: Vec<Rule>,
    /// `type: delegate` rules (kept apart from forward/system rules: they have no domain of their own to match).
    pub delegations: Vec<Delegation>,
    pub networks: Vec<Network>,
    pub instances: Vec<Instance>,
    pub firewall: Firewall,
    pub profiles: Vec<Profile>,
}

impl Topology {
    pub fn summary(&self) -> String {
        format!(
            "{} vpcs, {} endpoints, {} hosted zones, {} resolver rules, {} inbound and {} outbound resolver endpoints, {} networks, {} instances, {} firewall rule groups, {} profiles",
            self.vpcs.len(),
            self.endpoints.len(),
            self.hosted_zones.len(),
            self.rules.len() + self.delegations.len(),
            self.inbound_endpoints.len(),
            self.outbound_endpoints.len(),
            self.networks.len(),
            self.instances.len(),
            self.firewall.rule_groups.len(),
            self.profiles.len()
        )
    }

    /// Every address a VPC's resolver answers on: base+2 of each VPC and each inbound endpoint IP, with its VPC.
    pub fn resolver_addresses(&self) -> Vec<(IpAddr, usize, bool)> {
        let mut out: Vec<(IpAddr, usize, bool)> = self
            .vpcs
            .iter()
            .enumerate()
            .map(|(i, vpc)| (IpAddr::V4(vpc.resolver_ip()), i, false))
            .collect();
        for inbound in &self.inbound_endpoints {
            out.extend(inbound.ips.iter().map(|ip| (*ip, inbound.vpc, true)));
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// The nameservers of /etc/resolv.conf, skipping this server itself.
    System,
    Addr(SocketAddr),
}

/// Which view a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewRef {
    Public,
    Vpc(usize),
}

#[derive(Debug, Clone)]
pub struct Vpc {
    pub id: String,
    pub name: Option<String>,
    /// Primary CIDR first.
    pub cidrs: Vec<Ipv4Net>,
    pub ipv6_cidr: Option<Ipv6Net>,
    pub dns_support: bool,
    pub dns_hostnames: bool,
    pub clients: Vec<IpNet>,
    pub subnets: Vec<Subnet>,
}

impl Vpc {
    /// The VPC resolver address: the primary CIDR's base + 2.
    pub fn resolver_ip(&self) -> Ipv4Addr {
        let base = u32::from(self.cidrs[0].network());
        Ipv4Addr::from(base.wrapping_add(2))
    }

    /// `vpc-0abc… (lab)` for messages.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{} ({name})", self.id),
            None => self.id.clone(),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.cidrs.iter().any(|c| c.contains(&v4)),
            IpAddr::V6(v6) => self.ipv6_cidr.is_some_and(|c| c.contains(&v6)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: String,
    pub az: String,
    pub cidr: Ipv4Net,
    pub ipv6_cidr: Option<Ipv6Net>,
    /// `EnableDns64`: AAAA answers for IPv4-only names are synthesized under 64:ff9b::/96 for this subnet's clients.
    pub dns64: bool,
    /// Extra sources that count as inside this subnet (they are also in its VPC's `clients`).
    pub clients: Vec<IpNet>,
}

impl Subnet {
    /// Whether `ip` is inside this subnet: its CIDRs or its `clients`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let listed = self.clients.iter().any(|c| c.contains(&ip));
        listed
            || match ip {
                IpAddr::V4(v4) => self.cidr.contains(&v4),
                IpAddr::V6(v6) => self.ipv6_cidr.is_some_and(|c| c.contains(&v6)),
            }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    Interface,
    Gateway,
    GatewayLoadBalancer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpType {
    Ipv4,
    Dualstack,
    Ipv6,
    ServiceDefined,
}

impl IpType {
    /// Whether names of this endpoint answer A (ipv4) and AAAA (ipv6) queries.
    pub fn answers(self, name_is_dualstack: bool) -> (bool, bool) {
        match self {
            Self::Ipv4 => (true, false),
            Self::Ipv6 => (false, true),
            Self::Dualstack => (true, true),
            // [INF] service-defined: `.api.aws` names are dual-stack, `amazonaws.com` names IPv4 only (reference §4).
            Self::ServiceDefined => (true, name_is_dualstack),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub vpc: usize,
    pub service: Service,
    pub kind: EndpointKind,
    pub private_dns: bool,
    pub inbound_only: bool,
    pub ip_address_type: IpType,
    pub dns_record_ip_type: IpType,
    pub dns_suffix: String,
    pub enis: Vec<Eni>,
    pub route_tables: Vec<String>,
    /// `ServiceRegion` when it differs from the topology's region (a cross-Region endpoint), else `None`.
    pub service_region: Option<String>,
}

impl Endpoint {
    /// `vpce-0123…-abcd1234`, the first label of the Regional name.
    pub fn name_prefix(&self) -> String {
        format!("{}-{}", self.id, self.dns_suffix)
    }

    /// The Region of the service: `service_region`, else the topology's.
    pub fn service_region<'a>(&'a self, topology_region: &'a str) -> &'a str {
        self.service_region.as_deref().unwrap_or(topology_region)
    }
}

#[derive(Debug, Clone)]
pub struct Eni {
    pub subnet: usize,
    pub az: String,
    pub ip: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

#[derive(Debug, Clone)]
pub struct HostedZone {
    pub id: String,
    /// Lowercase, fully qualified.
    pub name: Name,
    pub vpcs: Vec<usize>,
    pub records: Vec<ZoneRecord>,
}

#[derive(Debug, Clone)]
pub struct ZoneRecord {
    pub name: Name,
    pub rtype: RecordType,
    pub ttl: u32,
    pub data: ZoneData,
}

#[derive(Debug, Clone)]
pub enum ZoneData {
    Values(Vec<RData>),
    /// Route 53 alias to an interface endpoint: its ENI addresses (of one AZ when given).
    AliasEndpoint {
        endpoint: usize,
        az: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct ResolverEndpoint {
    pub id: String,
    pub vpc: usize,
    pub ips: Vec<IpAddr>,
    /// Inbound endpoints: sources its security group admits; `None` = any source.
    pub allowed_sources: Option<Vec<IpNet>>,
    /// The protocols it accepts (AWS `Protocols`), in the order written, without duplicates; never empty.
    pub protocols: Vec<EndpointProtocol>,
}

/// A Route 53 Resolver endpoint protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointProtocol {
    Do53,
    DoH,
    /// DoH with FIPS-validated TLS at AWS; served here as plain DoH (the TLS library is not FIPS-validated).
    DoHFips,
}

impl EndpointProtocol {
    /// The AWS spelling (`Do53`, `DoH`, `DoH-FIPS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Do53 => "Do53",
            Self::DoH => "DoH",
            Self::DoHFips => "DoH-FIPS",
        }
    }

    /// Any case of the AWS spelling.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Do53, Self::DoH, Self::DoHFips]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(text))
    }

    /// Served over HTTPS.
    pub fn is_doh(self) -> bool {
        matches!(self, Self::DoH | Self::DoHFips)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Forward,
    System,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub kind: RuleKind,
    /// Lowercase, fully qualified.
    pub domain: Name,
    pub targets: Vec<SocketAddr>,
    pub vpcs: Vec<usize>,
    pub outbound: Option<usize>,
}

/// A `type: delegate` rule: queries under `record` that meet an NS delegation for it in a private hosted zone follow
/// the delegation to the named servers through the outbound endpoint (reference §12.3).
#[derive(Debug, Clone)]
pub struct Delegation {
    pub id: String,
    /// `DelegationRecord`: lowercase, fully qualified.
    pub record: Name,
    pub vpcs: Vec<usize>,
    pub outbound: usize,
}

#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    pub cidrs: Vec<IpNet>,
    pub via_inbound: Option<usize>,
}

/// `PrivateDnsNameOptions.HostnameType`: which name the instance's OS uses as its hostname.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostnameType {
    IpName,
    ResourceName,
}

/// An EC2 instance, for the names the VPC resolver answers about it (reference §12.5).
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub vpc: usize,
    pub subnet: usize,
    pub ip: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
    pub public_ip: Option<Ipv4Addr>,
    pub hostname_type: HostnameType,
    /// `EnableResourceNameDnsARecord`.
    pub resource_name_a: bool,
    /// `EnableResourceNameDnsAAAARecord`.
    pub resource_name_aaaa: bool,
}

/// Route 53 Resolver DNS Firewall (reference §12.1).
#[derive(Debug, Clone, Default)]
pub struct Firewall {
    pub domain_lists: Vec<DomainList>,
    pub rule_groups: Vec<RuleGroup>,
    /// Direct associations and those a Profile brings, in no particular order; see [`Topology::firewall_of`].
    pub associations: Vec<FirewallAssociation>,
}

#[derive(Debug, Clone)]
pub struct DomainList {
    pub id: String,
    pub name: String,
    pub domains: Vec<DomainPattern>,
}

/// One entry of a domain list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainPattern {
    /// `example.com`: that name only (whether AWS also covers subdomains is UNCONFIRMED; exact here).
    Exact(Name),
    /// `*.example.com`: every name below, at any depth, not the name itself.
    Below(Name),
    /// `*`: every name.
    All,
}

impl DomainPattern {
    pub fn matches(&self, name: &Name) -> bool {
        match self {
            // Name equality ignores case.
            Self::Exact(n) => n == name,
            Self::Below(n) => n.zone_of(name) && n.num_labels() < name.num_labels(),
            Self::All => true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RuleGroup {
    pub id: String,
    pub name: String,
    /// Lowest priority first.
    pub rules: Vec<FirewallRule>,
}

#[derive(Debug, Clone)]
pub struct FirewallRule {
    pub name: String,
    pub priority: u32,
    pub domain_list: usize,
    pub action: FirewallAction,
    /// `Qtype`: the rule matches only this query type; `None` = every type.
    pub qtype: Option<RecordType>,
    pub redirection: Redirection,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallAction {
    Allow,
    Alert,
    Block(BlockResponse),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockResponse {
    Nxdomain,
    Nodata,
    /// A CNAME to `domain` with `ttl`.
    Override {
        domain: Name,
        ttl: u32,
    },
}

/// `FirewallDomainRedirectionAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirection {
    /// Every name of a CNAME/DNAME chain is checked (AWS's default).
    Inspect,
    /// Only the first name is checked.
    Trust,
}

#[derive(Debug, Clone)]
pub struct FirewallAssociation {
    pub rule_group: usize,
    pub target: AssociatedWith,
    /// 100..9900, lowest first.
    pub priority: u32,
}

/// What a firewall rule group is associated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssociatedWith {
    Vpc(usize),
    /// A Profile: every VPC associated with it.
    Profile(usize),
}

/// A Route 53 Profile: resources it carries apply to every VPC associated with it (reference §12.2).
#[derive(Debug, Clone)]
pub struct Profile {
    pub id: String,
    pub name: Option<String>,
    pub vpcs: Vec<usize>,
    pub hosted_zones: Vec<usize>,
    /// Forward and system rules.
    pub rules: Vec<usize>,
    pub delegations: Vec<usize>,
    /// Interface endpoints whose private DNS names answer in the Profile's VPCs.
    pub endpoints: Vec<usize>,
}

impl Topology {
    /// The Profile a VPC is associated with (a VPC has at most one).
    pub fn profile_of(&self, vpc: usize) -> Option<usize> {
        self.profiles.iter().position(|p| p.vpcs.contains(&vpc))
    }

    /// The firewall rule groups that filter a VPC's queries, in evaluation order: association priority, lowest
    /// first. A direct association and a Profile's with the same priority can't both exist (check rejects it).
    pub fn firewall_of(&self, vpc: usize) -> Vec<&FirewallAssociation> {
        let profile = self.profile_of(vpc);
        let mut list: Vec<&FirewallAssociation> = self
            .firewall
            .associations
            .iter()
            .filter(|a| match a.target {
                AssociatedWith::Vpc(v) => v == vpc,
                AssociatedWith::Profile(p) => Some(p) == profile,
            })
            .collect();
        list.sort_by_key(|a| (a.priority, matches!(a.target, AssociatedWith::Profile(_))));
        list
    }

    /// A delegate rule's servers as seen from `vpc` (reference §12.3): the NS records for its delegation record in
    /// the VPC's private hosted zones, and those servers' addresses from the same zones (port 53).
    pub fn delegation_servers(&self, d: &Delegation, vpc: usize) -> (Vec<Name>, Vec<SocketAddr>) {
        let values = |r: &ZoneRecord| match &r.data {
            ZoneData::Values(v) => v.clone(),
            ZoneData::AliasEndpoint { .. } => Vec::new(),
        };
        let zones: Vec<&HostedZone> = self
            .hosted_zones
            .iter()
            .filter(|z| z.vpcs.contains(&vpc))
            .collect();
        let servers: Vec<Name> = zones
            .iter()
            .filter(|z| z.name.zone_of(&d.record))
            .flat_map(|z| z.records.iter())
            .filter(|r| r.rtype == RecordType::NS && r.name == d.record)
            .flat_map(values)
            .filter_map(|rd| match rd {
                RData::NS(ns) => Some(ns.0),
                _ => None,
            })
            .collect();
        let targets = zones
            .iter()
            .flat_map(|z| z.records.iter())
            .filter(|r| servers.contains(&r.name))
            .flat_map(values)
            .filter_map(|rd| match rd {
                RData::A(a) => Some(SocketAddr::new(IpAddr::V4(a.0), 53)),
                RData::AAAA(a) => Some(SocketAddr::new(IpAddr::V6(a.0), 53)),
                _ => None,
            })
            .collect();
        (servers, targets)
    }

    /// The subnet (VPC, subnet) whose CIDRs or `clients` contain `ip`, if any.
    pub fn subnet_of(&self, ip: IpAddr) -> Option<(usize, usize)> {
        self.vpcs.iter().enumerate().find_map(|(v, vpc)| {
            vpc.subnets
                .iter()
                .position(|s| s.contains(ip))
                .map(|s| (v, s))
        })
    }
}

#[cfg(test)]
mod tests;
