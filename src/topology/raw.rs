//! The topology file as written: a serde mirror of the YAML, used only inside `topology/`.
//!
//! Addresses and ids stay strings here so that `build` can say, with a line and column, what is wrong with each
//! one and what to write instead; serde would stop at the first. The JSON Schema (`vpc-resolver schema`) is
//! generated from these same types, so editors and the parser never disagree.

use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// One topology file.
#[derive(Debug, Default, Deserialize, JsonSchema)]
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
    #[serde(default)]
    pub vpcs: Vec<Lenient<Vpc>>,
    /// Endpoints: a full mapping, or just a service name (`ec2`) for an interface endpoint in the only VPC.
    #[serde(default)]
    pub endpoints: Vec<Lenient<EndpointEntry>>,
    /// Catalog additions and overrides: endpoint services (`vpce-svc-…`) and services the catalog lacks.
    #[serde(default)]
    pub services: Vec<Lenient<Service>>,
    /// Private hosted zones.
    #[serde(default)]
    pub hosted_zones: Vec<Lenient<HostedZone>>,
    #[serde(default)]
    pub resolver: Resolver,
    /// Client networks outside any VPC (on-premises, other clouds).
    #[serde(default)]
    pub networks: Vec<Lenient<Network>>,
}

/// Response rate limiting per client network.
#[derive(Debug, Deserialize, JsonSchema)]
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

#[derive(Debug, Deserialize, JsonSchema)]
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Azs {
    Count(u8),
    Names(Vec<String>),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub id: Option<String>,
    /// `us-east-1a`, or just the letter `a`; default: the next letter.
    pub az: Option<String>,
    pub cidr: String,
    pub ipv6_cidr: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EndpointEntry {
    /// Shorthand: an interface endpoint for this service in the only VPC, all defaults.
    Service(String),
    Full(Box<Endpoint>),
}

#[derive(Debug, Deserialize, JsonSchema)]
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
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Eni {
    pub subnet: String,
    /// Default: a deterministic free address of the subnet.
    pub ip: Option<String>,
    pub ipv6: Option<String>,
    /// The addresses are what the account reports (`import aws --keep-reported`): kept even outside the subnet,
    /// where AWS never puts them but moto does.
    #[serde(default)]
    pub reported: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Full service name, e.g. `com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0` or `com.amazonaws.us-east-1.newsvc`.
    pub name: String,
    /// Verified private DNS names (`*.` prefix for a wildcard).
    #[serde(default)]
    pub private_dns_names: Vec<String>,
    /// The service part of vpce names; default: the name's last part, dotted parts reversed.
    pub endpoint_service_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostedZone {
    pub id: Option<String>,
    pub name: String,
    /// VPC ids or names the zone is associated with; default: every VPC.
    pub vpcs: Option<Vec<String>>,
    #[serde(default)]
    pub records: Vec<Record>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Relative to the zone (`db`, `@` for the apex, `*` for a wildcard) or absolute with a final dot.
    pub name: String,
    /// A, AAAA, CNAME, TXT, MX, SRV, PTR, NS, CAA.
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds; default 300 (alias records use the target's 60).
    pub ttl: Option<u32>,
    #[serde(default)]
    pub values: Vec<String>,
    /// Single-value shorthand for `values`.
    pub value: Option<String>,
    pub alias: Option<Alias>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    /// Endpoint id: answer with its ENI addresses (its Regional DNS name).
    pub endpoint: String,
    /// Optional AZ: answer with that AZ's ENI only (its zonal DNS name).
    pub az: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolver {
    #[serde(default)]
    pub inbound_endpoints: Vec<Lenient<ResolverEndpoint>>,
    #[serde(default)]
    pub outbound_endpoints: Vec<Lenient<ResolverEndpoint>>,
    #[serde(default)]
    pub rules: Vec<Lenient<Rule>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolverEndpoint {
    pub id: Option<String>,
    pub vpc: Option<String>,
    /// Default: one address in each of the VPC's first two AZs (AWS requires two).
    pub ips: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: Option<String>,
    /// `forward` (default) or `system`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub domain: String,
    /// `IP` or `IP:PORT` (forward rules).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Associated VPC ids or names; default: every VPC.
    pub vpcs: Option<Vec<String>>,
    pub outbound_endpoint: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub name: String,
    pub cidrs: Vec<String>,
    /// Its DNS forwards to this inbound endpoint: answer as that VPC, as a query that came through it.
    pub via_inbound_endpoint: Option<String>,
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
