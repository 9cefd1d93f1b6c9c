//! The topology file as written: a serde mirror of the YAML, used only inside `topology/`.
//!
//! Addresses and ids stay strings here so that `build` can say, with a line and column, what is wrong with each
//! one and what to write instead; serde would stop at the first. The JSON Schema (`vpc-resolver schema`) is
//! generated from these same types, so editors and the parser never disagree, and `import` writes its YAML through
//! them (absent options are left out), so what it writes is what `check` reads.

use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One topology file.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Format version; only 1 exists.
    pub version: Option<u32>,
    /// Default region of everything in the file, e.g. `us-east-1` (`cn-*` regions use `amazonaws.com.cn`).
    pub region: Option<String>,
    /// Where "everything else" goes: `system` (the nameservers of /etc/resolv.conf), `IP` or `IP:PORT`; `[]` = none.
    pub upstream: Option<Vec<String>>,
    /// View for clients that match nothing: a VPC id (or name), or `public` (the default).
    pub default_view: Option<String>,
    /// Extra source networks allowed to query. Every VPC CIDR, `clients` and `networks` are always allowed;
    /// loopback is allowed only while no file writes `allow` (list `127.0.0.0/8` here to keep it).
    pub allow: Option<Vec<String>>,
    /// Response rate limiting for UDP clients (like BIND's RRL); off when absent.
    pub rate_limit: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpcs: Vec<Lenient<Vpc>>,
    /// Endpoints: a full mapping, or just a service name (`ec2`) for an interface endpoint in the only VPC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Lenient<EndpointEntry>>,
    /// Catalog additions and overrides: endpoint services (`vpce-svc-…`) and services the catalog lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Lenient<Service>>,
    /// Private hosted zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosted_zones: Vec<Lenient<HostedZone>>,
    #[serde(default, skip_serializing_if = "Resolver::is_empty")]
    pub resolver: Resolver,
    /// Client networks outside any VPC (on-premises, other clouds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Lenient<Network>>,
    /// EC2 instances, for the names the VPC resolver answers about them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<Lenient<Instance>>,
    /// Route 53 Resolver DNS Firewall: domain lists, rule groups and their VPC associations.
    pub firewall: Option<Firewall>,
    /// Route 53 Profiles: zones, rules, firewall rule groups and endpoints shared with the Profile's VPCs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<Lenient<Profile>>,
}

/// Response rate limiting per client network.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Responses per second per client network before limiting starts.
    pub responses_per_second: u32,
    /// Every Nth limited response is sent truncated (TC=1) so real clients retry over TCP; 0 = drop them all.
    /// Default 2.
    pub slip: Option<u32>,
    /// IPv4 clients are grouped by this prefix length; default 24.
    pub ipv4_prefix: Option<u8>,
    /// IPv6 clients are grouped by this prefix length; default 56.
    pub ipv6_prefix: Option<u8>,
    /// Source networks never limited; default: loopback. A list replaces the default.
    pub exempt: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    /// `vpc-` and 8 or 17 hex digits; derived from the name or position if absent.
    pub id: Option<String>,
    pub name: Option<String>,
    /// The primary IPv4 CIDR; its base + 2 is the VPC resolver address.
    pub cidr: Option<String>,
    /// Primary first, then secondary CIDRs (instead of `cidr`).
    pub cidrs: Option<Vec<String>>,
    pub ipv6_cidr: Option<String>,
    pub enable_dns_support: Option<bool>,
    pub enable_dns_hostnames: Option<bool>,
    /// Extra source networks that see this VPC's view (e.g. 127.0.0.0/8 for a lab on one machine).
    pub clients: Option<Vec<String>>,
    /// Availability zones for default subnets when `subnets` is absent: a count (default 2) or a list of names.
    pub azs: Option<Azs>,
    pub subnets: Option<Vec<Subnet>>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Azs {
    Count(u8),
    Names(Vec<String>),
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub id: Option<String>,
    /// `us-east-1a`, or just the letter `a`; default: the next letter.
    pub az: Option<String>,
    pub cidr: String,
    pub ipv6_cidr: Option<String>,
    /// `EnableDns64`: AAAA queries from this subnet for names with only A records get 64:ff9b::/96 addresses.
    pub enable_dns64: Option<bool>,
    /// Extra sources that count as inside this subnet (and its VPC), e.g. `127.0.0.21/32` for a lab on one machine.
    pub clients: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum EndpointEntry {
    /// Shorthand: an interface endpoint for this service in the only VPC, all defaults.
    Service(String),
    Full(Box<Endpoint>),
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `vpce-` and 17 hex digits; derived from the VPC and service if absent.
    pub id: Option<String>,
    /// VPC id or name; may be omitted when the topology has one VPC.
    pub vpc: Option<String>,
    /// Short name (`ec2`, `ecr.dkr`), full name (`com.amazonaws.us-east-1.ec2`) or an endpoint service name.
    pub service: String,
    /// `interface` (default), `gateway` or `gatewayloadbalancer`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub private_dns: Option<bool>,
    /// S3 only: private DNS answers only queries that come through an inbound Resolver endpoint.
    pub private_dns_only_for_inbound_resolver_endpoint: Option<bool>,
    /// `ipv4` (default), `dualstack` or `ipv6`.
    pub ip_address_type: Option<String>,
    /// `ipv4`, `dualstack`, `ipv6` or `service-defined`; default follows `ip_address_type`.
    pub dns_record_ip_type: Option<String>,
    /// The 8-character part of the vpce names (`[a-z0-9]{8}`); derived from the id if absent.
    pub dns_suffix: Option<String>,
    /// Default: one ENI in the first listed subnet of each AZ of the VPC.
    pub enis: Option<Vec<Eni>>,
    /// Shorthand for `enis` without addresses.
    pub subnets: Option<Vec<String>>,
    /// Gateway endpoints: the route tables that get the prefix-list route (informational).
    pub route_tables: Option<Vec<String>>,
    /// `ServiceRegion` of a cross-Region endpoint: an endpoint service, or one of the AWS services AWS offers
    /// cross-Region (s3, iam, ecr.api, ecr.dkr, kms, kms-fips, ecs, lambda, kinesis-firehose, kinesisanalytics,
    /// route53). Default: the topology's region.
    pub service_region: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Eni {
    pub subnet: String,
    /// Default: a deterministic free address of the subnet.
    pub ip: Option<String>,
    pub ipv6: Option<String>,
    /// The addresses are what the account reports (`import aws --keep-reported`): kept even outside the subnet,
    /// where AWS never puts them but moto does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reported: bool,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Full service name, e.g. `com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0` or `com.amazonaws.us-east-1.newsvc`.
    pub name: String,
    /// Verified private DNS names (`*.` prefix for a wildcard).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_dns_names: Vec<String>,
    /// The service part of vpce names; default: the name's last part, dotted parts reversed.
    pub endpoint_service_id: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostedZone {
    pub id: Option<String>,
    pub name: String,
    /// VPC ids or names the zone is associated with; default: every VPC.
    pub vpcs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<Record>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Relative to the zone (`db`, `@` for the apex, `*` for a wildcard) or absolute with a final dot.
    pub name: String,
    /// A, AAAA, CNAME, TXT, MX, SRV, PTR, NS, CAA.
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds; default 300 (alias records use the target's 60).
    pub ttl: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Single-value shorthand for `values`.
    pub value: Option<String>,
    pub alias: Option<Alias>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    /// Endpoint id: answer with its ENI addresses (its Regional DNS name).
    pub endpoint: String,
    /// Optional AZ: answer with that AZ's ENI only (its zonal DNS name).
    pub az: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolver {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound_endpoints: Vec<Lenient<ResolverEndpoint>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound_endpoints: Vec<Lenient<ResolverEndpoint>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Lenient<Rule>>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolverEndpoint {
    pub id: Option<String>,
    pub vpc: Option<String>,
    /// Default: one address in each of the VPC's first two AZs (AWS requires two).
    pub ips: Option<Vec<String>>,
    /// Inbound endpoints: the source CIDRs its security group admits for DNS; absent = any source.
    pub allowed_sources: Option<Vec<String>>,
    /// `Do53` (default), `DoH`, `DoH-FIPS`, any case. An inbound endpoint with DoH is also served over HTTPS.
    pub protocols: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: Option<String>,
    /// `forward` (default), `system` or `delegate` (AWS's `FORWARD`, `SYSTEM`, `DELEGATE` too).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The domain a forward or system rule matches.
    pub domain: Option<String>,
    /// Delegate rules: the subdomain whose NS delegation in a private hosted zone is followed.
    pub delegation_record: Option<String>,
    /// `IP` or `IP:PORT` (forward rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Associated VPC ids or names; default: every VPC.
    pub vpcs: Option<Vec<String>>,
    pub outbound_endpoint: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub name: String,
    pub cidrs: Vec<String>,
    /// Its DNS forwards to this inbound endpoint: answer as that VPC, as a query that came through it.
    pub via_inbound_endpoint: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// `i-` and 8 or 17 hex digits; derived from the subnet and position if absent.
    pub id: Option<String>,
    /// The subnet id.
    pub subnet: String,
    /// Primary private IPv4; default: a deterministic free address of the subnet.
    pub ip: Option<String>,
    pub ipv6: Option<String>,
    /// Public IPv4: its `ec2-…` public DNS name answers the private address inside the VPC, this one outside.
    pub public_ip: Option<String>,
    /// `ip-name` (default) or `resource-name`.
    pub hostname_type: Option<String>,
    /// `EnableResourceNameDnsARecord` (default false, as in EC2's API).
    pub resource_name_a: Option<bool>,
    /// `EnableResourceNameDnsAAAARecord` (default false).
    pub resource_name_aaaa: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domain_lists: Vec<Lenient<DomainList>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_groups: Vec<Lenient<RuleGroup>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub associations: Vec<Lenient<FirewallAssociation>>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainList {
    /// `rslvr-fdl-` and 8 or 17 hex digits; derived from the name if absent.
    pub id: Option<String>,
    pub name: Option<String>,
    /// Domain names, `*.example.com` for every name below it (any depth), or `*` for every name.
    #[serde(default)]
    pub domains: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    /// `rslvr-frg-` and 8 or 17 hex digits; derived from the name if absent.
    pub id: Option<String>,
    pub name: Option<String>,
    /// Evaluated lowest priority first; the first match ends the evaluation.
    #[serde(default)]
    pub rules: Vec<FirewallRule>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirewallRule {
    pub name: String,
    /// Unique within the rule group.
    pub priority: i64,
    /// Domain list id (or name).
    pub domain_list: String,
    /// `allow`, `alert` or `block`.
    pub action: String,
    /// Block rules: `nxdomain`, `nodata` or `override`.
    pub block_response: Option<String>,
    /// `block_response: override`: the CNAME answered instead.
    pub block_override: Option<BlockOverride>,
    /// One query type (`A`, `AAAA`, `MX`, …); absent = every type.
    pub qtype: Option<String>,
    /// `inspect` (default: every name of a CNAME chain is checked) or `trust` (only the first).
    pub redirection: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockOverride {
    /// `CNAME`, the only type AWS offers (default).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub domain: String,
    /// Seconds, 0 to 604800; default 0.
    pub ttl: Option<i64>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirewallAssociation {
    /// Rule group id (or name).
    pub rule_group: String,
    /// VPC id or name.
    pub vpc: String,
    /// 100 to 9900, unique per VPC; lowest first.
    pub priority: i64,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `rp-` and 16 hex digits; derived from the name if absent.
    pub id: Option<String>,
    pub name: Option<String>,
    /// VPC ids or names (a VPC has at most one Profile).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpcs: Vec<String>,
    /// Private hosted zones, by name or id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosted_zones: Vec<String>,
    /// Resolver rule ids (forward, system or delegate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Interface endpoint ids: their private DNS names answer in the Profile's VPCs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewall_rule_groups: Vec<ProfileRuleGroup>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileRuleGroup {
    /// Rule group id (or name).
    pub rule_group: String,
    /// 100 to 9900, unique per Profile; lowest first.
    pub priority: i64,
}

impl Resolver {
    pub fn is_empty(&self) -> bool {
        self.inbound_endpoints.is_empty()
            && self.outbound_endpoints.is_empty()
            && self.rules.is_empty()
    }
}

/// A list item kept as raw YAML until `build` converts it on its own, so one bad item is reported with its line and
/// the others are still checked.
#[derive(Debug, Clone)]
pub struct Lenient<T> {
    pub value: serde_norway::Value,
    item: PhantomData<T>,
}

impl<'de, T> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self {
            value: serde_norway::Value::deserialize(deserializer)?,
            item: PhantomData,
        })
    }
}

impl<T: Serialize> Lenient<T> {
    /// An item built in code (by `import`), held as the YAML it serializes to, without its absent options.
    pub fn new(item: &T) -> Result<Self, serde_norway::Error> {
        let mut value = serde_norway::to_value(item)?;
        drop_nulls(&mut value);
        Ok(Self {
            value,
            item: PhantomData,
        })
    }
}

/// Removes `key: null` entries everywhere: an absent option is written as nothing, not as `null`.
fn drop_nulls(value: &mut serde_norway::Value) {
    match value {
        serde_norway::Value::Mapping(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_norway::Value::Sequence(list) => list.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

impl<T> Serialize for Lenient<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: JsonSchema> JsonSchema for Lenient<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}
