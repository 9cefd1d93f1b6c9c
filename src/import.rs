//! `import aws`: a topology from the JSON the AWS CLI prints for an account.
//!
//! Input is the output of `aws ec2 describe-vpcs`, `describe-subnets`, `describe-vpc-endpoints`,
//! `describe-network-interfaces`, `describe-vpc-attribute`, `aws route53 list-hosted-zones`,
//! `list-hosted-zones-by-vpc`, `get-hosted-zone`, `list-resource-record-sets`, and `aws route53resolver
//! list-resolver-endpoints`, `list-resolver-endpoint-ip-addresses`, `list-resolver-rules`,
//! `list-resolver-rule-associations`, DNS Firewall (`list-firewall-domain-lists`, `list-firewall-domains`,
//! `list-firewall-rule-groups`, `list-firewall-rules`, `list-firewall-rule-group-associations`), `aws route53profiles
//! list-profiles`, `list-profile-associations`, `list-profile-resource-associations` and `aws ec2
//! describe-instances`, one response per file. Each file's kind is told by its top-level keys, so
//! names don't matter except where a response does not say what it lists:
//!
//! - `list-resource-record-sets`: the zone is a top-level `HostedZoneId` if present (add it by hand, or with
//!   `jq '. + {HostedZoneId: "Z…"}'`), else a known zone id in the file name (`Z0123….json`,
//!   `rrsets-Z0123….json`), else the only known zone whose name is the apex of the file's SOA record;
//! - `list-hosted-zones-by-vpc`: the VPC is the `vpc-…` id in the file name, else the only VPC imported;
//! - `list-firewall-domains`: the list is the `rslvr-fdl-…` id in the file name;
//! - `list-resolver-endpoint-ip-addresses`: the endpoint is the `rslvr-in-…`/`rslvr-out-…` id in the file name;
//!   without such a file, the ENIs whose description names the endpoint (AWS writes
//!   `Route 53 Resolver: rslvr-in-…:rni-…`).
//!
//! Everything that shapes answers is kept: ids, primary and secondary CIDRs, IPv6 CIDRs, AZs, ENI addresses,
//! `PrivateDnsEnabled`, `IpAddressType`, `DnsOptions`, the 8-character suffix of the real vpce names (so the served
//! names equal the ones in `DnsEntries`), route tables, record sets and Resolver rules. What cannot be represented is
//! reported as a warning naming the item, never dropped silently. The YAML is validated before it is returned.
//!
//! moto (the AWS mock) differs from AWS in ways handled here (see `../shared/reference/moto-vs-aws.md`):
//! - `DnsEntries` hold one name `vpce-<id>-<sfx>.com.amazonaws.<region>.<svc>`: only the suffix is taken; the
//!   served names are AWS's (`vpce-<id>-<sfx>.<svc-id>.<region>.vpce.amazonaws.com`), with a warning;
//! - interface endpoint ENI addresses are random `10.x.y.z`, usually outside the subnet: such an address is dropped
//!   with a warning and the topology assigns a deterministic free address inside the subnet (what AWS would do);
//! - hosted zone ids are random strings rather than `Z…`: kept as they are;
//! - rule domains end in a dot (`domain_name + "."`), as AWS's do: both forms are accepted;
//! - gateway endpoints report `PrivateDnsEnabled: true`: ignored, only interface endpoints have private DNS.

mod firewall;
mod instances;
mod profiles;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Deserialize;

use crate::catalog::{self, Catalog};
use crate::topology::raw::{self, Lenient};
use crate::topology::{self, Diagnostics, Topology};

/// Why an import failed. Warnings are not errors: they come back in [`Imported::warnings`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Malformed JSON, or a field of the wrong type: the file and the JSON path (`Vpcs[0].CidrBlock`).
    #[error("{file}: at {json_path}: {source}")]
    Json {
        file: String,
        json_path: String,
        source: serde_json::Error,
    },
    #[error("no input: give files or directories of AWS CLI JSON output")]
    NoInput,
    #[error("no VPCs in the input: include the output of `aws ec2 describe-vpcs`")]
    NoVpcs,
    #[error(
        "cannot tell the region (no endpoint service names or availability zones in the input); pass --region"
    )]
    NoRegion,
    #[error("writing YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// The generated topology does not pass `check`: the YAML and every problem.
    #[error("the imported topology is invalid:\n{diagnostics}")]
    Invalid {
        yaml: String,
        diagnostics: Diagnostics,
    },
}

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The region; default: from endpoint service names, else from availability zones.
    pub region: Option<String>,
    /// Skip validating the generated YAML (it is validated by default).
    pub no_check: bool,
    /// Keep what the account reports where AWS would not have produced it (moto's accounts): ENI addresses outside
    /// their subnet (written with `reported: true`) and `DnsEntries` names not in AWS's form (each served by a
    /// private hosted zone of that name that aliases the endpoint). Off: such values are replaced by AWS's.
    pub keep_reported: bool,
}

/// One input: a display name (the file path; its file name may carry an id) and its JSON text.
#[derive(Debug, Clone)]
pub struct Document {
    pub name: String,
    pub text: String,
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The topology YAML, with the warnings as comments at the top.
    pub yaml: String,
    /// What was left out or changed, one line each, naming the item.
    pub warnings: Vec<String>,
    /// The parsed topology (None with `no_check`).
    pub topology: Option<Topology>,
}

/// Reads files and directories (their `*.json` files, sorted) into documents.
pub fn read_inputs(paths: &[impl AsRef<Path>]) -> Result<Vec<Document>, ImportError> {
    let io = |path: &Path, source| ImportError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        let path = path.as_ref();
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| io(path, e))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.to_path_buf());
        }
    }
    files
        .iter()
        .map(|p| {
            Ok(Document {
                name: p.display().to_string(),
                text: std::fs::read_to_string(p).map_err(|e| io(p, e))?,
            })
        })
        .collect()
}

/// Imports files and directories of AWS CLI output.
pub fn import_aws_paths(
    paths: &[impl AsRef<Path>],
    options: &Options,
) -> Result<Imported, ImportError> {
    import_aws(&read_inputs(paths)?, options)
}

// ---- The AWS JSON, as much of it as matters. Unknown fields are ignored: the CLI adds fields over time. ----

/// Any one CLI response: which fields are present tells its kind.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Response {
    vpcs: Option<Vec<AwsVpc>>,
    subnets: Option<Vec<AwsSubnet>>,
    vpc_endpoints: Option<Vec<AwsEndpoint>>,
    network_interfaces: Option<Vec<AwsEni>>,
    // describe-vpc-attribute
    vpc_id: Option<String>,
    enable_dns_support: Option<AttrValue>,
    enable_dns_hostnames: Option<AttrValue>,
    // route53
    hosted_zone_summaries: Option<Vec<ZoneSummary>>,
    hosted_zones: Option<Vec<AwsZone>>,
    hosted_zone: Option<AwsZone>,
    #[serde(rename = "VPCs")]
    vpcs_of_zone: Option<Vec<ZoneVpc>>,
    resource_record_sets: Option<Vec<RecordSet>>,
    hosted_zone_id: Option<String>,
    // route53resolver
    resolver_endpoints: Option<Vec<AwsResolverEndpoint>>,
    ip_addresses: Option<Vec<AwsResolverIp>>,
    resolver_rules: Option<Vec<AwsRule>>,
    resolver_rule_associations: Option<Vec<AwsRuleAssociation>>,
    // route53resolver DNS Firewall
    firewall_domain_lists: Option<Vec<firewall::AwsDomainList>>,
    domains: Option<Vec<String>>,
    firewall_rule_groups: Option<Vec<firewall::AwsRuleGroup>>,
    firewall_rules: Option<Vec<firewall::AwsFirewallRule>>,
    firewall_rule_group_associations: Option<Vec<firewall::AwsFirewallAssociation>>,
    // route53profiles
    profile_summaries: Option<Vec<profiles::ProfileSummary>>,
    profile_associations: Option<Vec<profiles::ProfileAssociation>>,
    profile_resource_associations: Option<Vec<profiles::ProfileResource>>,
    // ec2 describe-instances
    reservations: Option<Vec<instances::Reservation>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsVpc {
    vpc_id: String,
    cidr_block: Option<String>,
    cidr_block_association_set: Vec<CidrAssociation>,
    ipv6_cidr_block_association_set: Vec<CidrAssociation>,
    tags: Vec<Tag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CidrAssociation {
    cidr_block: Option<String>,
    ipv6_cidr_block: Option<String>,
    cidr_block_state: Option<AssociationState>,
    ipv6_cidr_block_state: Option<AssociationState>,
}

impl CidrAssociation {
    fn associated(&self) -> bool {
        let state = self
            .cidr_block_state
            .as_ref()
            .or(self.ipv6_cidr_block_state.as_ref());
        state.is_none_or(|s| s.state.as_deref().is_none_or(|s| s == "associated"))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AssociationState {
    state: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Tag {
    key: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsSubnet {
    subnet_id: String,
    vpc_id: String,
    cidr_block: Option<String>,
    availability_zone: Option<String>,
    ipv6_cidr_block_association_set: Vec<CidrAssociation>,
    enable_dns64: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsEndpoint {
    vpc_endpoint_id: String,
    vpc_endpoint_type: Option<String>,
    vpc_id: String,
    service_name: String,
    state: Option<String>,
    route_table_ids: Vec<String>,
    subnet_ids: Vec<String>,
    network_interface_ids: Vec<String>,
    dns_entries: Vec<DnsEntry>,
    private_dns_enabled: Option<bool>,
    ip_address_type: Option<String>,
    dns_options: Option<DnsOptions>,
    /// Cross-Region endpoints: the service's Region.
    service_region: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DnsEntry {
    dns_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DnsOptions {
    dns_record_ip_type: Option<String>,
    private_dns_only_for_inbound_resolver_endpoint: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsEni {
    network_interface_id: String,
    subnet_id: Option<String>,
    private_ip_address: Option<String>,
    ipv6_addresses: Vec<Ipv6Entry>,
    description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Ipv6Entry {
    ipv6_address: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AttrValue {
    value: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ZoneSummary {
    hosted_zone_id: String,
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsZone {
    id: String,
    name: String,
    config: Option<ZoneConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ZoneConfig {
    private_zone: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ZoneVpc {
    #[serde(rename = "VPCId")]
    vpc_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RecordSet {
    name: String,
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "TTL")]
    ttl: Option<u32>,
    resource_records: Vec<RecordValue>,
    alias_target: Option<AliasTarget>,
    set_identifier: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RecordValue {
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AliasTarget {
    #[serde(rename = "DNSName")]
    dns_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsResolverEndpoint {
    id: String,
    direction: String,
    #[serde(rename = "HostVPCId")]
    host_vpc_id: String,
    /// `Do53`, `DoH`, `DoH-FIPS`; absent in older CLI output (then Do53).
    protocols: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsResolverIp {
    subnet_id: Option<String>,
    ip: Option<String>,
    ipv6: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsRule {
    id: String,
    domain_name: String,
    rule_type: String,
    target_ips: Vec<TargetIp>,
    resolver_endpoint_id: Option<String>,
    owner_id: Option<String>,
    /// DELEGATE rules: the delegated subdomain (with a final dot).
    delegation_record: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TargetIp {
    ip: Option<String>,
    ipv6: Option<String>,
    port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsRuleAssociation {
    resolver_rule_id: String,
    #[serde(rename = "VPCId")]
    vpc_id: String,
    status: Option<String>,
}

// ---- The import itself. ----

/// A parsed input file.
struct Parsed {
    name: String,
    response: Response,
}

/// The file name of a document, for ids carried in it.
fn file_name(doc: &str) -> &str {
    Path::new(doc)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(doc)
}

/// The first `prefix…` id (prefix plus 8 or more lowercase hex digits) in a file name.
fn id_in_name(name: &str, prefix: &str) -> Option<String> {
    name.match_indices(prefix).find_map(|(start, _)| {
        let hex: String = name[start + prefix.len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || ('a'..='f').contains(c))
            .collect();
        (hex.len() >= 8).then(|| format!("{prefix}{hex}"))
    })
}

/// `/hostedzone/Z123` -> `Z123`.
fn zone_id(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_string()
}

/// Route 53 writes names with a final dot and escapes some characters as `\ddd` (octal), e.g. `\052` for `*`.
fn r53_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 3 < chars.len() {
            let digits: String = chars[i + 1..(i + 4).min(chars.len())].iter().collect();
            if digits.len() == 3
                && let Ok(code) = u8::from_str_radix(&digits, 8)
            {
                out.push(char::from(code));
                i += 4;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out.to_lowercase()
}

/// `"a" "b"` -> `ab` (Route 53 TXT values are quoted character strings; the topology holds one string).
fn txt_value(value: &str) -> (String, usize) {
    let mut out = String::new();
    let mut parts = 0;
    let mut chars = value.trim().chars().peekable();
    if !value.trim().starts_with('"') {
        return (value.trim().to_string(), 1);
    }
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        parts += 1;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => break,
                c => out.push(c),
            }
        }
    }
    (out, parts)
}

/// The 8-character suffix of `vpce-<id>-<sfx>…` names in `DnsEntries`.
fn dns_suffix_of(endpoint_id: &str, entries: &[DnsEntry]) -> Option<String> {
    entries.iter().find_map(|e| {
        let first = e.dns_name.trim_start_matches("*.").split('.').next()?;
        let rest = first.strip_prefix(endpoint_id)?.strip_prefix('-')?;
        let sfx: String = rest.chars().take(8).collect();
        let ok = sfx.len() == 8
            && sfx
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && (rest.len() == 8 || rest[8..].starts_with('-'));
        ok.then_some(sfx)
    })
}

fn region_of_az(az: &str) -> Option<String> {
    // us-east-1a -> us-east-1; local zones (us-east-1-bos-1a) are not regions of their own.
    let trimmed = az.trim_end_matches(|c: char| c.is_ascii_lowercase());
    let parts: Vec<&str> = trimmed.split('-').collect();
    (parts.len() >= 3).then(|| parts[..3].join("-"))
}

fn region_of_service(name: &str) -> Option<String> {
    if let Some((region, _)) = catalog::parse_endpoint_service_name(name) {
        return Some(region.to_string());
    }
    let rest = name
        .strip_prefix("com.amazonaws.")
        .or_else(|| name.strip_prefix("cn.com.amazonaws."))
        .or_else(|| name.strip_prefix("aws.api."))?;
    let region = rest.split('.').next()?;
    (region.split('-').count() >= 3).then(|| region.to_string())
}

fn parse_all(docs: &[Document], warnings: &mut Vec<String>) -> Result<Vec<Parsed>, ImportError> {
    let mut out = Vec::new();
    for doc in docs {
        let mut de = serde_json::Deserializer::from_str(&doc.text);
        let response: Response = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let json_path = e.path().to_string();
            ImportError::Json {
                file: doc.name.clone(),
                json_path,
                source: e.into_inner(),
            }
        })?;
        let r = &response;
        let known = r.vpcs.is_some()
            || r.subnets.is_some()
            || r.vpc_endpoints.is_some()
            || r.network_interfaces.is_some()
            || r.enable_dns_support.is_some()
            || r.enable_dns_hostnames.is_some()
            || r.hosted_zone_summaries.is_some()
            || r.hosted_zones.is_some()
            || r.hosted_zone.is_some()
            || r.resource_record_sets.is_some()
            || r.resolver_endpoints.is_some()
            || r.ip_addresses.is_some()
            || r.resolver_rules.is_some()
            || r.resolver_rule_associations.is_some()
            || r.firewall_domain_lists.is_some()
            || r.domains.is_some()
            || r.firewall_rule_groups.is_some()
            || r.firewall_rules.is_some()
            || r.firewall_rule_group_associations.is_some()
            || r.profile_summaries.is_some()
            || r.profile_associations.is_some()
            || r.profile_resource_associations.is_some()
            || r.reservations.is_some();
        if !known {
            let keys: Vec<String> =
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&doc.text)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
            warnings.push(format!(
                "{}: skipped: not an AWS CLI output this importer reads (top-level keys: {})",
                doc.name,
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.join(", ")
                }
            ));
            continue;
        }
        out.push(Parsed {
            name: doc.name.clone(),
            response,
        });
    }
    Ok(out)
}

/// Builds a topology from AWS CLI output. See the module documentation for the inputs and what is kept.
pub fn import_aws(docs: &[Document], options: &Options) -> Result<Imported, ImportError> {
    if docs.is_empty() {
        return Err(ImportError::NoInput);
    }
    let mut warnings = Vec::new();
    let parsed = parse_all(docs, &mut warnings)?;
    let mut im = Importer {
        parsed: &parsed,
        warnings,
        region: String::new(),
        vpcs: Vec::new(),
        subnets: HashMap::new(),
        services: BTreeMap::new(),
        keep_reported: options.keep_reported,
        reported_names: Vec::new(),
    };
    im.region = im.region(options)?;
    im.vpcs();
    if im.vpcs.is_empty() {
        return Err(ImportError::NoVpcs);
    }
    let endpoints = im.endpoints();
    if options.keep_reported {
        im.reported_private_dns(&endpoints);
    }
    let mut hosted_zones = im.hosted_zones(&endpoints);
    hosted_zones.extend(reported_name_zones(
        &im.reported_names,
        &endpoints,
        &im.vpcs,
    ));
    let resolver = im.resolver()?;
    let instances = im.instances();
    let firewall = im.firewall()?;
    let profiles = im.profiles(&profiles::Known {
        zones: &hosted_zones,
        rules: &resolver_rule_ids(&resolver),
        endpoints: &endpoints,
        rule_groups: &firewall_group_ids(firewall.as_ref()),
    });
    let file = raw::File {
        version: Some(1),
        region: Some(im.region.clone()),
        vpcs: items(&std::mem::take(&mut im.vpcs))?,
        endpoints: items(
            &endpoints
                .into_iter()
                .map(|e| raw::EndpointEntry::Full(Box::new(e)))
                .collect::<Vec<_>>(),
        )?,
        services: items(
            &std::mem::take(&mut im.services)
                .into_values()
                .collect::<Vec<_>>(),
        )?,
        hosted_zones: items(&hosted_zones)?,
        resolver,
        instances: items(&instances)?,
        firewall,
        profiles: items(&profiles)?,
        ..raw::File::default()
    };
    let warnings = im.warnings;
    let mut yaml = String::from("# Imported by `vpc-resolver import aws` from:\n");
    for p in &parsed {
        let _ = writeln!(yaml, "#   {}", p.name);
    }
    for w in &warnings {
        let _ = writeln!(yaml, "# warning: {}", w.replace('\n', " "));
    }
    yaml.push_str(&serde_norway::to_string(&file)?);
    let topology = if options.no_check {
        None
    } else {
        match topology::parse(&[("imported topology".to_string(), yaml.clone())]) {
            Ok(t) => Some(t),
            Err(diagnostics) => return Err(ImportError::Invalid { yaml, diagnostics }),
        }
    };
    Ok(Imported {
        yaml,
        warnings,
        topology,
    })
}

fn resolver_rule_ids(resolver: &raw::Resolver) -> Vec<String> {
    resolver
        .rules
        .iter()
        .filter_map(|r| r.value.get("id")?.as_str().map(str::to_string))
        .collect()
}

fn firewall_group_ids(firewall: Option<&raw::Firewall>) -> Vec<String> {
    firewall
        .into_iter()
        .flat_map(|f| f.rule_groups.iter())
        .filter_map(|g| g.value.get("id")?.as_str().map(str::to_string))
        .collect()
}

/// Items built here, held as the YAML the topology parser reads (one schema: `topology::raw`).
fn items<T: serde::Serialize>(list: &[T]) -> Result<Vec<Lenient<T>>, ImportError> {
    list.iter()
        .map(|item| Lenient::new(item).map_err(ImportError::Yaml))
        .collect()
}

struct Importer<'p> {
    parsed: &'p [Parsed],
    warnings: Vec<String>,
    region: String,
    vpcs: Vec<raw::Vpc>,
    /// Subnet id -> (VPC id, IPv4 CIDR, IPv6 CIDR).
    subnets: HashMap<String, (String, Option<Ipv4Net>, Option<Ipv6Net>)>,
    /// Services the catalog lacks, by full name.
    services: BTreeMap<String, raw::Service>,
    /// See [`Options::keep_reported`].
    keep_reported: bool,
    /// `DnsEntries` names kept as reported: (endpoint id, name).
    reported_names: Vec<(String, String)>,
}

impl<'p> Importer<'p> {
    fn warn(&mut self, text: String) {
        self.warnings.push(text);
    }

    /// The endpoint's `Protocols` in AWS spelling; `None` for the default (`[Do53]` or absent). Unknown ones are
    /// left out with a warning.
    fn endpoint_protocols(&mut self, ep: &AwsResolverEndpoint) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for p in ep.protocols.iter().flatten() {
            match crate::topology::EndpointProtocol::parse(p) {
                Some(known) => out.push(known.as_str().to_string()),
                None => self.warn(format!("{}: protocol `{p}` is unknown; left out", ep.id)),
            }
        }
        (!out.is_empty() && out != ["Do53"]).then_some(out)
    }

    fn region(&self, options: &Options) -> Result<String, ImportError> {
        if let Some(r) = &options.region {
            return Ok(r.clone());
        }
        let from_services = self
            .parsed
            .iter()
            .flat_map(|p| p.response.vpc_endpoints.iter().flatten())
            .find_map(|e| region_of_service(&e.service_name));
        let from_azs = || {
            self.parsed
                .iter()
                .flat_map(|p| p.response.subnets.iter().flatten())
                .find_map(|s| s.availability_zone.as_deref().and_then(region_of_az))
        };
        from_services.or_else(from_azs).ok_or(ImportError::NoRegion)
    }

    /// moto lets an endpoint have private DNS in a VPC without `enableDnsSupport` and `enableDnsHostnames` (AWS
    /// rejects that): kept as reported, the VPC's attributes become true so the private DNS is served.
    fn reported_private_dns(&mut self, endpoints: &[raw::Endpoint]) {
        for e in endpoints.iter().filter(|e| e.private_dns == Some(true)) {
            let Some(v) = self.vpcs.iter_mut().find(|v| v.id == e.vpc) else {
                continue;
            };
            let on = |flag: Option<bool>| flag.unwrap_or(true);
            if on(v.enable_dns_support) && on(v.enable_dns_hostnames) {
                continue;
            }
            v.enable_dns_support = Some(true);
            v.enable_dns_hostnames = Some(true);
            let text = format!(
                "{}: PrivateDnsEnabled although {} has enableDnsSupport or enableDnsHostnames false (AWS rejects that); kept as reported, the VPC's attributes are imported as true",
                e.id.as_deref().unwrap_or("?"),
                e.vpc.as_deref().unwrap_or("?")
            );
            self.warn(text);
        }
    }

    fn has_vpc(&self, id: &str) -> bool {
        self.vpcs.iter().any(|v| v.id.as_deref() == Some(id))
    }

    fn vpcs(&mut self) {
        let attrs = self.dns_attributes();
        let aws_vpcs: Vec<&AwsVpc> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.vpcs.iter().flatten())
            .collect();
        for v in aws_vpcs {
            if !self.has_vpc(&v.vpc_id)
                && let Some(vpc) = self.vpc(v, attrs.get(&v.vpc_id).copied().unwrap_or_default())
            {
                self.vpcs.push(vpc);
            }
        }
        let aws_subnets: Vec<&AwsSubnet> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.subnets.iter().flatten())
            .collect();
        for s in aws_subnets {
            if !self.subnets.contains_key(&s.subnet_id) {
                self.subnet(s);
            }
        }
    }

    /// enableDnsSupport and enableDnsHostnames per VPC (describe-vpc-attribute), where the input has them.
    fn dns_attributes(&self) -> HashMap<String, (Option<bool>, Option<bool>)> {
        let mut attrs: HashMap<String, (Option<bool>, Option<bool>)> = HashMap::new();
        for p in self.parsed {
            let r = &p.response;
            if let Some(vpc) = &r.vpc_id {
                let entry = attrs.entry(vpc.clone()).or_default();
                if let Some(v) = r.enable_dns_support.as_ref().and_then(|a| a.value) {
                    entry.0 = Some(v);
                }
                if let Some(v) = r.enable_dns_hostnames.as_ref().and_then(|a| a.value) {
                    entry.1 = Some(v);
                }
            }
        }
        attrs
    }

    /// One VPC with its associated CIDRs; `None` (with a warning) when it has no IPv4 CIDR.
    fn vpc(
        &mut self,
        v: &AwsVpc,
        (support, hostnames): (Option<bool>, Option<bool>),
    ) -> Option<raw::Vpc> {
        let mut cidrs: Vec<String> = v.cidr_block.iter().cloned().collect();
        for a in &v.cidr_block_association_set {
            if let Some(c) = &a.cidr_block
                && a.associated()
                && !cidrs.contains(c)
            {
                cidrs.push(c.clone());
            }
        }
        if cidrs.is_empty() {
            self.warn(format!("{}: skipped: it has no IPv4 CIDR", v.vpc_id));
            return None;
        }
        let v6: Vec<&String> = v
            .ipv6_cidr_block_association_set
            .iter()
            .filter(|a| a.associated())
            .filter_map(|a| a.ipv6_cidr_block.as_ref())
            .collect();
        if v6.len() > 1 {
            self.warn(format!(
                "{}: IPv6 CIDRs {} besides {} left out: the topology holds one IPv6 CIDR per VPC",
                v.vpc_id,
                v6[1..]
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                v6[0]
            ));
        }
        let missing: Vec<&str> = [
            (support, "enableDnsSupport"),
            (hostnames, "enableDnsHostnames"),
        ]
        .into_iter()
        .filter(|(v, _)| v.is_none())
        .map(|(_, name)| name)
        .collect();
        if !missing.is_empty() {
            self.warn(format!(
                "{}: {} not in the input (aws ec2 describe-vpc-attribute); assumed true",
                v.vpc_id,
                missing.join(" and ")
            ));
        }
        let name = v
            .tags
            .iter()
            .find(|t| t.key == "Name")
            .map(|t| t.value.clone());
        let (cidr, cidrs) = if cidrs.len() == 1 {
            (cidrs.pop(), None)
        } else {
            (None, Some(cidrs))
        };
        Some(raw::Vpc {
            id: Some(v.vpc_id.clone()),
            name,
            cidr,
            cidrs,
            ipv6_cidr: v6.first().map(|s| s.to_string()),
            enable_dns_support: Some(support.unwrap_or(true)),
            enable_dns_hostnames: Some(hostnames.unwrap_or(true)),
            clients: None,
            azs: None,
            subnets: Some(Vec::new()),
        })
    }

    /// One subnet, added to its VPC; skipped (with a warning) when its VPC, IPv4 CIDR or AZ is missing.
    fn subnet(&mut self, s: &AwsSubnet) {
        let Some(vpc) = self
            .vpcs
            .iter()
            .position(|v| v.id.as_deref() == Some(&s.vpc_id))
        else {
            self.warn(format!(
                "{}: skipped: its VPC {} is not in the input (describe-vpcs)",
                s.subnet_id, s.vpc_id
            ));
            return;
        };
        let (Some(cidr), Some(az)) = (&s.cidr_block, &s.availability_zone) else {
            self.warn(format!(
                "{}: skipped: no IPv4 CIDR or availability zone (IPv6-only subnets are not modelled)",
                s.subnet_id
            ));
            return;
        };
        let ipv6 = s
            .ipv6_cidr_block_association_set
            .iter()
            .filter(|a| a.associated())
            .find_map(|a| a.ipv6_cidr_block.clone());
        self.subnets.insert(
            s.subnet_id.clone(),
            (
                s.vpc_id.clone(),
                cidr.parse().ok(),
                ipv6.as_deref().and_then(|t| t.parse().ok()),
            ),
        );
        self.vpcs[vpc]
            .subnets
            .get_or_insert_with(Vec::new)
            .push(raw::Subnet {
                id: Some(s.subnet_id.clone()),
                az: Some(az.clone()),
                cidr: cidr.clone(),
                ipv6_cidr: ipv6,
                // EnableDns64 is AWS's; moto leaves it out (then off, AWS's default).
                enable_dns64: s.enable_dns64.filter(|on| *on),
                clients: None,
            });
    }

    fn enis(&self) -> HashMap<&'p str, &'p AwsEni> {
        self.parsed
            .iter()
            .flat_map(|p| p.response.network_interfaces.iter().flatten())
            .map(|e| (e.network_interface_id.as_str(), e))
            .collect()
    }

    fn endpoints(&mut self) -> Vec<raw::Endpoint> {
        let aws: Vec<&AwsEndpoint> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.vpc_endpoints.iter().flatten())
            .collect();
        let have_enis = self
            .parsed
            .iter()
            .any(|p| p.response.network_interfaces.is_some());
        let enis = self.enis();
        let mut seen = BTreeSet::new();
        aws.into_iter()
            .filter(|e| seen.insert(e.vpc_endpoint_id.clone()))
            .filter_map(|e| self.endpoint(e, &enis, have_enis))
            .collect()
    }

    /// One endpoint; `None` (with a warning) when its type, state, VPC or service keeps it out.
    fn endpoint(
        &mut self,
        e: &AwsEndpoint,
        enis: &HashMap<&str, &AwsEni>,
        have_enis: bool,
    ) -> Option<raw::Endpoint> {
        let id = &e.vpc_endpoint_id;
        let kind = self.endpoint_kind(e)?;
        let service = self.endpoint_service(e, kind)?;
        let dns_suffix = dns_suffix_of(id, &e.dns_entries);
        let mut private_names = service.private_dns_names.clone();
        // Endpoint services: their private DNS names are in DnsEntries only.
        if catalog::parse_endpoint_service_name(&e.service_name).is_some() {
            let names = private_entries(&e.dns_entries);
            if !names.is_empty() {
                private_names = names.clone();
            }
            self.services
                .entry(e.service_name.clone())
                .or_insert(raw::Service {
                    name: e.service_name.clone(),
                    private_dns_names: names,
                    endpoint_service_id: Some(service.endpoint_service_id.clone()),
                });
        }
        if let Some(sfx) = &dns_suffix {
            self.compare_dns_entries(e, &service, sfx, &private_names);
        } else if kind != "gateway" && !e.dns_entries.is_empty() {
            self.warn(format!(
                "{id}: no `{id}-xxxxxxxx` name in DnsEntries; the suffix of its vpce names is derived"
            ));
        }
        let mut ep = raw::Endpoint {
            id: Some(id.clone()),
            vpc: Some(e.vpc_id.clone()),
            service: e.service_name.clone(),
            kind: Some(kind.to_string()),
            private_dns: None,
            private_dns_only_for_inbound_resolver_endpoint: None,
            ip_address_type: None,
            dns_record_ip_type: None,
            dns_suffix: if kind == "gateway" { None } else { dns_suffix },
            enis: None,
            subnets: None,
            route_tables: None,
            service_region: self.service_region_of(e),
        };
        if kind == "gateway" {
            ep.route_tables = Some(e.route_table_ids.clone());
            return Some(ep);
        }
        ep.ip_address_type = e.ip_address_type.as_ref().map(|t| t.to_ascii_lowercase());
        if kind == "interface" {
            self.interface_dns(e, &service, &private_names, &mut ep);
        }
        ep.enis = Some(self.endpoint_enis(e, enis, have_enis));
        Some(ep)
    }

    /// The topology's endpoint type, if the endpoint is one we model and still exists in a VPC of the input.
    fn endpoint_kind(&mut self, e: &AwsEndpoint) -> Option<&'static str> {
        let id = &e.vpc_endpoint_id;
        let kind = match e.vpc_endpoint_type.as_deref().unwrap_or("Gateway") {
            "Interface" => "interface",
            "Gateway" => "gateway",
            "GatewayLoadBalancer" => "gatewayloadbalancer",
            other => {
                self.warn(format!("{id}: skipped: {other} endpoints are not modelled"));
                return None;
            }
        };
        if let Some(state) = e.state.as_deref()
            && matches!(
                state.to_ascii_lowercase().as_str(),
                "deleted" | "deleting" | "failed" | "rejected" | "expired"
            )
        {
            self.warn(format!("{id}: skipped: state {state}"));
            return None;
        }
        if !self.has_vpc(&e.vpc_id) {
            self.warn(format!(
                "{id}: skipped: its VPC {} is not in the input",
                e.vpc_id
            ));
            return None;
        }
        Some(kind)
    }

    /// The endpoint's service: from the catalog, else (interface endpoints) from its DnsEntries.
    fn endpoint_service(&mut self, e: &AwsEndpoint, kind: &str) -> Option<catalog::Service> {
        let id = &e.vpc_endpoint_id;
        // A cross-Region endpoint's service is named in its own Region.
        let region = e
            .service_region
            .clone()
            .unwrap_or_else(|| self.region.clone());
        if let Some(s) = Catalog::embedded().resolve(&e.service_name, &region) {
            return Some(s);
        }
        if kind == "gateway" {
            self.warn(format!(
                "{id}: skipped: gateway endpoint for unknown service {}",
                e.service_name
            ));
            return None;
        }
        let service = self.service_from_entries(e);
        if service.is_none() {
            self.warn(format!(
                "{id}: skipped: service {} is not in the catalog and its DnsEntries do not show its names",
                e.service_name
            ));
        }
        service
    }

    /// An interface endpoint's private DNS and DnsOptions.
    fn interface_dns(
        &mut self,
        e: &AwsEndpoint,
        service: &catalog::Service,
        private_names: &[String],
        ep: &mut raw::Endpoint,
    ) {
        let id = &e.vpc_endpoint_id;
        let mut private_dns = e.private_dns_enabled.unwrap_or(false);
        if private_dns && private_names.is_empty() {
            self.warn(format!(
                "{id}: PrivateDnsEnabled but service {} has no private DNS name known; imported with private_dns: false",
                e.service_name
            ));
            private_dns = false;
        }
        ep.private_dns = Some(private_dns);
        let Some(opts) = &e.dns_options else {
            return;
        };
        ep.dns_record_ip_type = opts
            .dns_record_ip_type
            .as_ref()
            .map(|t| t.to_ascii_lowercase());
        match opts.private_dns_only_for_inbound_resolver_endpoint {
            Some(v) if service.code == "s3" && private_dns => {
                ep.private_dns_only_for_inbound_resolver_endpoint = Some(v);
            }
            Some(true) => self.warn(format!(
                "{id}: PrivateDnsOnlyForInboundResolverEndpoint left out: only S3 endpoints with private DNS have it"
            )),
            _ => {}
        }
    }

    /// An interface endpoint's service the catalog lacks: its names come from DnsEntries.
    fn service_from_entries(&mut self, e: &AwsEndpoint) -> Option<catalog::Service> {
        let region = e
            .service_region
            .clone()
            .unwrap_or_else(|| self.region.clone());
        let tail = format!(".{region}.vpce.{}", catalog::dns_suffix(&region));
        let svc_id = e.dns_entries.iter().find_map(|d| {
            let name = d.dns_name.trim_start_matches("*.").trim_end_matches('.');
            let (first, rest) = name.split_once('.')?;
            if !first.starts_with(&e.vpc_endpoint_id) {
                return None;
            }
            rest.strip_suffix(&tail).map(str::to_string)
        })?;
        let names = private_entries(&e.dns_entries);
        self.warn(format!(
            "{}: service {} is not in the catalog; defined under `services:` from its DnsEntries",
            e.vpc_endpoint_id, e.service_name
        ));
        self.services.insert(
            e.service_name.clone(),
            raw::Service {
                name: e.service_name.clone(),
                private_dns_names: names.clone(),
                endpoint_service_id: Some(svc_id.clone()),
            },
        );
        Some(catalog::Service {
            name: e.service_name.clone(),
            code: e.service_name.clone(),
            endpoint_service_id: svc_id,
            private_dns_names: names,
            interface: true,
            gateway: false,
            evidence: catalog::Evidence::User,
            note: String::new(),
        })
    }

    /// Warns about each `DnsEntries` name the topology will not serve as written.
    fn compare_dns_entries(
        &mut self,
        e: &AwsEndpoint,
        service: &catalog::Service,
        sfx: &str,
        private_names: &[String],
    ) {
        let domain = catalog::vpce_domain(
            &service.endpoint_service_id,
            e.service_region.as_ref().unwrap_or(&self.region),
        );
        let regional = format!("{}-{sfx}.{domain}", e.vpc_endpoint_id);
        let zonal_prefix = format!("{}-{sfx}-", e.vpc_endpoint_id);
        for entry in &e.dns_entries {
            let name = entry.dns_name.trim_end_matches('.').to_ascii_lowercase();
            let bare = name.trim_start_matches("*.");
            let served = if bare.starts_with(&e.vpc_endpoint_id) {
                bare == regional
                    || bare
                        .strip_prefix(&zonal_prefix)
                        .and_then(|r| r.split_once('.'))
                        .is_some_and(|(_, d)| d == domain)
            } else {
                private_names.iter().any(|p| p == &name || p == bare)
            };
            if served {
                continue;
            }
            if self.keep_reported {
                self.warn(format!(
                    "{}: DnsEntries name {} is not AWS's form (AWS's: {regional}); kept as reported, both are served",
                    e.vpc_endpoint_id, entry.dns_name
                ));
                self.reported_names
                    .push((e.vpc_endpoint_id.clone(), name.clone()));
            } else {
                self.warn(format!(
                    "{}: DnsEntries name {} is not AWS's form; served as {regional} (and its zonal names)",
                    e.vpc_endpoint_id, entry.dns_name
                ));
            }
        }
    }

    fn endpoint_enis(
        &mut self,
        e: &AwsEndpoint,
        enis: &HashMap<&str, &AwsEni>,
        have_enis: bool,
    ) -> Vec<raw::Eni> {
        let id = &e.vpc_endpoint_id;
        let mut out: Vec<raw::Eni> = Vec::new();
        for eni_id in &e.network_interface_ids {
            let Some(eni) = enis.get(eni_id.as_str()) else {
                if have_enis {
                    self.warn(format!(
                        "{id}: ENI {eni_id} is not in describe-network-interfaces; its address is assigned by default"
                    ));
                }
                continue;
            };
            let Some(subnet) = eni.subnet_id.clone() else {
                continue;
            };
            let Some((vpc, cidr, cidr6)) = self.subnets.get(&subnet).cloned() else {
                self.warn(format!(
                    "{id}: ENI {eni_id} is in subnet {subnet}, which is not in the input; left out"
                ));
                continue;
            };
            if vpc != e.vpc_id {
                self.warn(format!(
                    "{id}: ENI {eni_id} is in subnet {subnet} of another VPC ({vpc}); left out"
                ));
                continue;
            }
            let mut reported = false;
            let ip = match eni
                .private_ip_address
                .as_deref()
                .map(str::parse::<Ipv4Addr>)
            {
                Some(Ok(ip)) if cidr.is_some_and(|c| c.contains(&ip)) => Some(ip.to_string()),
                Some(Ok(ip)) if self.keep_reported => {
                    self.warn(format!(
                        "{id}: ENI {eni_id} address {ip} is outside subnet {subnet} ({}); kept as reported (AWS assigns addresses inside the subnet)",
                        cidr.map_or("?".to_string(), |c| c.to_string())
                    ));
                    reported = true;
                    Some(ip.to_string())
                }
                Some(Ok(ip)) => {
                    self.warn(format!(
                        "{id}: ENI {eni_id} address {ip} is outside subnet {subnet} ({}); dropped, the topology assigns one inside it",
                        cidr.map_or("?".to_string(), |c| c.to_string())
                    ));
                    None
                }
                _ => None,
            };
            let ipv6 = eni.ipv6_addresses.iter().find_map(|a| {
                let v6: Ipv6Addr = a.ipv6_address.parse().ok()?;
                let inside = cidr6.is_some_and(|c| c.contains(&v6));
                (inside || self.keep_reported).then_some((v6, inside))
            });
            if let Some((v6, false)) = ipv6 {
                self.warn(format!(
                    "{id}: ENI {eni_id} address {v6} is outside subnet {subnet}'s IPv6 CIDR; kept as reported"
                ));
                reported = true;
            }
            let ipv6 = ipv6.map(|(v6, _)| v6.to_string());
            out.push(raw::Eni {
                subnet,
                ip,
                ipv6,
                reported,
            });
        }
        for subnet in &e.subnet_ids {
            if out.iter().any(|x| &x.subnet == subnet) {
                continue;
            }
            if !self.subnets.contains_key(subnet) {
                self.warn(format!(
                    "{id}: subnet {subnet} is not in the input (describe-subnets); left out"
                ));
                continue;
            }
            if have_enis && !e.network_interface_ids.is_empty() {
                self.warn(format!(
                    "{id}: no ENI of it in subnet {subnet}; one with a default address is assumed"
                ));
            }
            out.push(raw::Eni {
                subnet: subnet.clone(),
                ip: None,
                ipv6: None,
                reported: false,
            });
        }
        if !have_enis && !e.network_interface_ids.is_empty() {
            self.warn(format!(
                "{id}: no describe-network-interfaces in the input; ENI addresses are assigned by default"
            ));
        }
        out
    }

    fn hosted_zones(&mut self, endpoints: &[raw::Endpoint]) -> Vec<raw::HostedZone> {
        // id -> (name, private, vpcs)
        let mut zones: BTreeMap<String, (String, Option<bool>, BTreeSet<String>)> = BTreeMap::new();
        let only_vpc = (self.vpcs.len() == 1)
            .then(|| self.vpcs[0].id.clone())
            .flatten();
        for p in self.parsed {
            let r = &p.response;
            for z in r.hosted_zones.iter().flatten().chain(r.hosted_zone.iter()) {
                let entry = zones.entry(zone_id(&z.id)).or_default();
                entry.0 = r53_name(&z.name);
                if let Some(private) = z.config.as_ref().and_then(|c| c.private_zone) {
                    entry.1 = Some(private);
                }
            }
            if let Some(z) = &r.hosted_zone {
                let entry = zones.entry(zone_id(&z.id)).or_default();
                entry.1 = Some(true).filter(|_| entry.1 != Some(false));
                for v in r.vpcs_of_zone.iter().flatten() {
                    entry.2.insert(v.vpc_id.clone());
                }
            }
            if let Some(list) = &r.hosted_zone_summaries {
                let vpc = id_in_name(file_name(&p.name), "vpc-").or(only_vpc.clone());
                let Some(vpc) = vpc else {
                    self.warn(format!(
                        "{}: list-hosted-zones-by-vpc output without a vpc-… id in its file name; its associations are left out",
                        p.name
                    ));
                    continue;
                };
                for s in list {
                    let entry = zones.entry(zone_id(&s.hosted_zone_id)).or_default();
                    entry.0 = r53_name(&s.name);
                    entry.1 = Some(true);
                    entry.2.insert(vpc.clone());
                }
            }
        }
        // Record sets, by zone.
        let mut records: BTreeMap<String, Vec<&RecordSet>> = BTreeMap::new();
        for p in self.parsed {
            let Some(sets) = &p.response.resource_record_sets else {
                continue;
            };
            let fname = file_name(&p.name);
            let by_key = p.response.hosted_zone_id.as_deref().map(zone_id);
            let by_name = || zones.keys().find(|id| fname.contains(id.as_str())).cloned();
            let by_soa = || {
                let apex = sets
                    .iter()
                    .find(|s| s.kind == "SOA")
                    .map(|s| r53_name(&s.name))?;
                let matching: Vec<&String> = zones
                    .iter()
                    .filter(|(_, z)| z.0 == apex)
                    .map(|(id, _)| id)
                    .collect();
                (matching.len() == 1).then(|| matching[0].clone())
            };
            match by_key.or_else(by_name).or_else(by_soa) {
                Some(id) => records.entry(id).or_default().extend(sets.iter()),
                None => self.warn(format!(
                    "{}: record sets of an unknown zone left out: name the file `<zone id>.json`, add a top-level \"HostedZoneId\", or include list-hosted-zones",
                    p.name
                )),
            }
        }
        let mut out = Vec::new();
        for (id, (name, private, vpcs)) in zones {
            if private == Some(false) {
                self.warn(format!(
                    "hosted zone {id} ({name}): skipped: public zones are answered by the upstream, not the VPC resolver"
                ));
                continue;
            }
            let mut kept = Vec::new();
            for v in vpcs {
                if self.has_vpc(&v) {
                    kept.push(v);
                } else {
                    self.warn(format!(
                        "hosted zone {id} ({name}): association with {v} left out: that VPC is not in the input"
                    ));
                }
            }
            if kept.is_empty() {
                self.warn(format!(
                    "hosted zone {id} ({name}): associated with no imported VPC (list-hosted-zones-by-vpc or get-hosted-zone tell the associations); imported with `vpcs: []`"
                ));
            }
            let sets = records.remove(&id).unwrap_or_default();
            let recs = self.records(&id, &name, &sets, endpoints);
            out.push(raw::HostedZone {
                id: Some(id),
                name: name.trim_end_matches('.').to_string(),
                vpcs: Some(kept),
                records: recs,
            });
        }
        for (id, _) in records {
            self.warn(format!(
                "record sets of hosted zone {id} left out: the zone itself is not in the input (list-hosted-zones or get-hosted-zone)"
            ));
        }
        out
    }

    fn records(
        &mut self,
        zone: &str,
        apex: &str,
        sets: &[&RecordSet],
        endpoints: &[raw::Endpoint],
    ) -> Vec<raw::Record> {
        let mut out: Vec<raw::Record> = Vec::new();
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        for s in sets {
            let name = r53_name(&s.name);
            let label = format!("{zone}: {} {}", name, s.kind);
            // The apex SOA and NS are Route 53's own; the resolver makes its own SOA.
            if name == apex && matches!(s.kind.as_str(), "SOA" | "NS") {
                continue;
            }
            if !matches!(
                s.kind.as_str(),
                "A" | "AAAA" | "CNAME" | "TXT" | "MX" | "SRV" | "PTR" | "NS" | "CAA"
            ) {
                self.warn(format!("{label}: skipped: record type not supported"));
                continue;
            }
            if !seen.insert((name.clone(), s.kind.clone())) {
                self.warn(format!(
                    "{label}: skipped: another record set of this name and type was kept ({}routing policies are not modelled)",
                    s.set_identifier.as_deref().map(|i| format!("set {i}; ")).unwrap_or_default()
                ));
                continue;
            }
            if let Some(alias) = &s.alias_target {
                let target = alias.dns_name.trim_end_matches('.').to_ascii_lowercase();
                let bare = target.trim_start_matches("*.");
                let first = bare.split('.').next().unwrap_or_default();
                let hit = endpoints
                    .iter()
                    .filter_map(|e| e.id.as_deref())
                    .find(|id| first.starts_with(id));
                match hit {
                    Some(ep) if matches!(s.kind.as_str(), "A" | "AAAA") => {
                        // `vpce-<id>-<sfx>-us-east-1a` is the zonal name of that AZ.
                        let rest = &first[ep.len()..];
                        let az = rest
                            .strip_prefix('-')
                            .and_then(|r| r.get(9..))
                            .filter(|az| !az.is_empty())
                            .map(str::to_string);
                        out.push(raw::Record {
                            name: name.clone(),
                            kind: s.kind.clone(),
                            ttl: None,
                            values: Vec::new(),
                            value: None,
                            alias: Some(raw::Alias {
                                endpoint: ep.to_string(),
                                az,
                            }),
                        });
                    }
                    _ => self.warn(format!(
                        "{label}: skipped: alias to {} is not an imported interface endpoint (only aliases to vpce names are modelled)",
                        alias.dns_name
                    )),
                }
                continue;
            }
            let mut values = Vec::new();
            for v in &s.resource_records {
                let value = match s.kind.as_str() {
                    "TXT" => {
                        let (text, parts) = txt_value(&v.value);
                        if parts > 1 {
                            self.warn(format!(
                                "{label}: the {parts} strings of {} are joined into one",
                                v.value
                            ));
                        }
                        text
                    }
                    "CNAME" | "PTR" | "NS" => absolute(&r53_name(&v.value)),
                    "MX" | "SRV" => {
                        let mut fields: Vec<String> =
                            v.value.split_whitespace().map(str::to_string).collect();
                        if let Some(last) = fields.last_mut() {
                            *last = absolute(&r53_name(last));
                        }
                        fields.join(" ")
                    }
                    _ => v.value.clone(),
                };
                values.push(value);
            }
            out.push(raw::Record {
                name,
                kind: s.kind.clone(),
                ttl: s.ttl,
                values,
                value: None,
                alias: None,
            });
        }
        out
    }

    fn resolver(&mut self) -> Result<raw::Resolver, ImportError> {
        let (inbound, outbound) = self.resolver_endpoints();
        let outbound_ids: Vec<String> = outbound.iter().filter_map(|e| e.id.clone()).collect();
        let rules = self.resolver_rules(&outbound_ids);
        Ok(raw::Resolver {
            inbound_endpoints: items(&inbound)?,
            outbound_endpoints: items(&outbound)?,
            rules: items(&rules)?,
        })
    }

    /// Inbound and outbound Resolver endpoints with the addresses the input tells.
    fn resolver_endpoints(&mut self) -> (Vec<raw::ResolverEndpoint>, Vec<raw::ResolverEndpoint>) {
        let eps: Vec<&AwsResolverEndpoint> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.resolver_endpoints.iter().flatten())
            .collect();
        let ip_lists = self.resolver_ip_lists();
        let enis = self.enis();
        let (mut inbound, mut outbound) = (Vec::new(), Vec::new());
        let mut seen = BTreeSet::new();
        for ep in eps {
            if !seen.insert(ep.id.clone()) {
                continue;
            }
            let is_inbound = match ep.direction.as_str() {
                "INBOUND" => true,
                "OUTBOUND" => false,
                other => {
                    self.warn(format!("{}: skipped: direction {other}", ep.id));
                    continue;
                }
            };
            if !self.has_vpc(&ep.host_vpc_id) {
                self.warn(format!(
                    "{}: skipped: its VPC {} is not in the input",
                    ep.id, ep.host_vpc_id
                ));
                continue;
            }
            let candidates = endpoint_candidates(ep, &ip_lists, &enis);
            let ips = self.endpoint_ips(ep, candidates);
            let out_ep = raw::ResolverEndpoint {
                id: Some(ep.id.clone()),
                vpc: Some(ep.host_vpc_id.clone()),
                ips: (!ips.is_empty()).then_some(ips),
                // Security groups are not imported: any source may ask.
                allowed_sources: None,
                protocols: self.endpoint_protocols(ep),
            };
            if is_inbound {
                inbound.push(out_ep);
            } else {
                outbound.push(out_ep);
            }
        }
        (inbound, outbound)
    }

    /// Endpoint id -> addresses, from list-resolver-endpoint-ip-addresses files named after the endpoint.
    fn resolver_ip_lists(&mut self) -> HashMap<String, Vec<&'p AwsResolverIp>> {
        let mut ip_lists: HashMap<String, Vec<&AwsResolverIp>> = HashMap::new();
        for p in self.parsed {
            let Some(list) = &p.response.ip_addresses else {
                continue;
            };
            let fname = file_name(&p.name);
            match id_in_name(fname, "rslvr-in-").or_else(|| id_in_name(fname, "rslvr-out-")) {
                Some(id) => ip_lists.entry(id).or_default().extend(list.iter()),
                None => self.warn(format!(
                    "{}: list-resolver-endpoint-ip-addresses output without a rslvr-in-…/rslvr-out-… id in its file name; left out",
                    p.name
                )),
            }
        }
        ip_lists
    }

    /// The candidate addresses inside an imported subnet of the endpoint's VPC; the others are reported.
    fn endpoint_ips(
        &mut self,
        ep: &AwsResolverEndpoint,
        candidates: Vec<(Option<String>, String)>,
    ) -> Vec<String> {
        let mut ips = Vec::new();
        for (subnet, ip) in candidates {
            let Ok(addr) = ip.parse::<IpAddr>() else {
                self.warn(format!(
                    "{}: address `{ip}` is not an IP address; left out",
                    ep.id
                ));
                continue;
            };
            let inside = self.subnets.iter().any(|(_, (vpc, c4, c6))| {
                vpc == &ep.host_vpc_id
                    && match addr {
                        IpAddr::V4(a) => c4.is_some_and(|c| c.contains(&a)),
                        IpAddr::V6(a) => c6.is_some_and(|c| c.contains(&a)),
                    }
            });
            if inside {
                ips.push(addr.to_string());
            } else {
                self.warn(format!(
                    "{}: address {ip} (subnet {}) is in no imported subnet of {}; dropped",
                    ep.id,
                    subnet.unwrap_or_default(),
                    ep.host_vpc_id
                ));
            }
        }
        if ips.is_empty() {
            self.warn(format!(
                "{}: no addresses known (list-resolver-endpoint-ip-addresses named after it); two default addresses are assigned",
                ep.id
            ));
        }
        ips
    }

    /// Rule id -> the imported VPCs it is associated with.
    fn rule_associations(&mut self) -> HashMap<String, Vec<String>> {
        let mut assoc: HashMap<String, Vec<String>> = HashMap::new();
        let associations: Vec<&AwsRuleAssociation> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.resolver_rule_associations.iter().flatten())
            .collect();
        for a in associations {
            if a.status
                .as_deref()
                .is_some_and(|s| matches!(s, "DELETING" | "FAILED"))
            {
                continue;
            }
            if self.has_vpc(&a.vpc_id) {
                let list = assoc.entry(a.resolver_rule_id.clone()).or_default();
                if !list.contains(&a.vpc_id) {
                    list.push(a.vpc_id.clone());
                }
            } else {
                self.warn(format!(
                    "{}: association with {} left out: that VPC is not in the input",
                    a.resolver_rule_id, a.vpc_id
                ));
            }
        }
        assoc
    }

    fn resolver_rules(&mut self, outbound_ids: &[String]) -> Vec<raw::Rule> {
        let mut assoc = self.rule_associations();
        let rules: Vec<&AwsRule> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.resolver_rules.iter().flatten())
            .collect();
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for r in rules {
            if !seen.insert(r.id.clone()) {
                continue;
            }
            // Its associations go with it: a skipped rule's warning covers them.
            let vpcs = assoc.remove(&r.id).unwrap_or_default();
            if let Some(rule) = self.resolver_rule(r, vpcs, outbound_ids) {
                out.push(rule);
            }
        }
        for (rule, _) in assoc {
            self.warn(format!(
                "{rule}: associations left out: the rule is not in the input (list-resolver-rules)"
            ));
        }
        out
    }

    /// One FORWARD, SYSTEM or DELEGATE rule; Resolver's own rules and the root domain are left out.
    fn resolver_rule(
        &mut self,
        r: &AwsRule,
        vpcs: Vec<String>,
        outbound_ids: &[String],
    ) -> Option<raw::Rule> {
        let shown = r.delegation_record.as_deref().unwrap_or(&r.domain_name);
        let label = format!("{} ({} {shown})", r.id, r.rule_type);
        if r.owner_id.as_deref() == Some("Route 53 Resolver") || r.id.contains("autodefined") {
            self.warn(format!(
                "{label}: skipped: a rule Route 53 Resolver defines itself; vpc-resolver has its own equivalent"
            ));
            return None;
        }
        let kind = match r.rule_type.as_str() {
            "FORWARD" => "forward",
            "SYSTEM" => "system",
            "DELEGATE" => "delegate",
            _ => {
                self.warn(format!("{label}: skipped: rule type not supported"));
                return None;
            }
        };
        let domain = shown.trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() {
            self.warn(format!(
                "{label}: skipped: rules for the root domain are not modelled"
            ));
            return None;
        }
        let targets = if kind == "forward" {
            let targets = self.rule_targets(&label, r);
            if targets.is_empty() {
                self.warn(format!("{label}: skipped: a forward rule without targets"));
                return None;
            }
            targets
        } else {
            Vec::new()
        };
        let outbound = match &r.resolver_endpoint_id {
            Some(id) if outbound_ids.contains(id) => Some(id.clone()),
            Some(id) => {
                self.warn(format!(
                    "{label}: its outbound endpoint {id} is not in the input; left out"
                ));
                None
            }
            None => None,
        };
        if kind == "delegate" && outbound.is_none() {
            self.warn(format!(
                "{label}: skipped: a delegate rule needs its outbound endpoint (list-resolver-endpoints)"
            ));
            return None;
        }
        if vpcs.is_empty() {
            self.warn(format!(
                "{label}: associated with no imported VPC (list-resolver-rule-associations); imported with `vpcs: []`"
            ));
        }
        let delegate = kind == "delegate";
        Some(raw::Rule {
            id: Some(r.id.clone()),
            kind: Some(kind.to_string()),
            domain: (!delegate).then(|| domain.clone()),
            delegation_record: delegate.then_some(domain),
            targets,
            vpcs: Some(vpcs),
            outbound_endpoint: outbound.filter(|_| kind != "system"),
        })
    }

    fn rule_targets(&mut self, label: &str, r: &AwsRule) -> Vec<String> {
        let mut targets = Vec::new();
        for t in &r.target_ips {
            let port = t.port.unwrap_or(53);
            let ip =
                t.ip.as_deref()
                    .or(t.ipv6.as_deref())
                    .and_then(|s| s.parse::<IpAddr>().ok());
            match ip {
                Some(ip) => targets.push(SocketAddr::new(ip, port).to_string()),
                None => self.warn(format!(
                    "{label}: a target without a valid address left out"
                )),
            }
        }
        targets
    }

    /// `ServiceRegion` when it is not the imported region (a cross-Region endpoint).
    fn service_region_of(&self, e: &AwsEndpoint) -> Option<String> {
        e.service_region.clone().filter(|r| *r != self.region)
    }
}

/// Addresses of a Resolver endpoint: from its list-resolver-endpoint-ip-addresses file, else from the ENIs whose
/// description names it (AWS describes a Resolver ENI as "Route 53 Resolver: rslvr-in-…:rni-…").
fn endpoint_candidates(
    ep: &AwsResolverEndpoint,
    ip_lists: &HashMap<String, Vec<&AwsResolverIp>>,
    enis: &HashMap<&str, &AwsEni>,
) -> Vec<(Option<String>, String)> {
    let mut candidates: Vec<(Option<String>, String)> = Vec::new();
    if let Some(list) = ip_lists.get(&ep.id) {
        for a in list {
            for ip in a.ip.iter().chain(a.ipv6.iter()) {
                candidates.push((a.subnet_id.clone(), ip.clone()));
            }
        }
        return candidates;
    }
    let mut found: Vec<&&AwsEni> = enis
        .values()
        .filter(|e| e.description.as_deref().is_some_and(|d| d.contains(&ep.id)))
        .collect();
    found.sort_by_key(|e| e.network_interface_id.clone());
    for e in found {
        if let Some(ip) = &e.private_ip_address {
            candidates.push((e.subnet_id.clone(), ip.clone()));
        }
    }
    candidates
}

/// `DnsEntries` names kept as reported: each is a private hosted zone of that name (every imported VPC) whose apex
/// (or, for `*.name`, every name below it) aliases the endpoint, A and, for endpoints with IPv6, AAAA.
fn reported_name_zones(
    names: &[(String, String)],
    endpoints: &[raw::Endpoint],
    vpcs: &[raw::Vpc],
) -> Vec<raw::HostedZone> {
    let mut out: Vec<raw::HostedZone> = Vec::new();
    for (endpoint, name) in names {
        let (owner, zone) = match name.strip_prefix("*.") {
            Some(rest) => ("*", rest),
            None => ("@", name.as_str()),
        };
        let ipv6 = endpoints
            .iter()
            .find(|e| e.id.as_ref() == Some(endpoint))
            .and_then(|e| e.enis.as_ref())
            .is_some_and(|enis| enis.iter().any(|x| x.ipv6.is_some()));
        let kinds: &[&str] = if ipv6 { &["A", "AAAA"] } else { &["A"] };
        let records = kinds.iter().map(|kind| raw::Record {
            name: owner.to_string(),
            kind: kind.to_string(),
            ttl: None,
            values: Vec::new(),
            value: None,
            alias: Some(raw::Alias {
                endpoint: endpoint.clone(),
                az: None,
            }),
        });
        match out.iter_mut().find(|z| z.name == zone) {
            Some(z) => z.records.extend(records),
            None => out.push(raw::HostedZone {
                id: None,
                name: zone.to_string(),
                vpcs: Some(vpcs.iter().filter_map(|v| v.id.clone()).collect()),
                records: records.collect(),
            }),
        }
    }
    out
}

/// Names in `DnsEntries` that are not vpce names: the private DNS names (lowercase, no final dot).
fn private_entries(entries: &[DnsEntry]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for e in entries {
        let name = e.dns_name.trim_end_matches('.').to_ascii_lowercase();
        if name.trim_start_matches("*.").starts_with("vpce-") || names.contains(&name) {
            continue;
        }
        names.push(name);
    }
    names
}

fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route53_names_unescape() {
        assert_eq!(r53_name("\\052.Corp.Internal."), "*.corp.internal.");
        assert_eq!(r53_name("a\\"), "a\\");
    }

    #[test]
    fn txt_values_unquote() {
        assert_eq!(txt_value("\"hello world\""), ("hello world".to_string(), 1));
        assert_eq!(txt_value("\"a\\\"b\" \"c\""), ("a\"bc".to_string(), 2));
        assert_eq!(txt_value("bare"), ("bare".to_string(), 1));
    }

    #[test]
    fn suffix_from_aws_and_moto_entries() {
        let aws = [DnsEntry {
            dns_name: "vpce-0123456789abcdef0-k3x9p2qz.ec2.us-east-1.vpce.amazonaws.com".into(),
        }];
        assert_eq!(
            dns_suffix_of("vpce-0123456789abcdef0", &aws).as_deref(),
            Some("k3x9p2qz")
        );
        let zonal = [DnsEntry {
            dns_name:
                "*.vpce-0123456789abcdef0-k3x9p2qz-us-east-1a.s3.us-east-1.vpce.amazonaws.com"
                    .into(),
        }];
        assert_eq!(
            dns_suffix_of("vpce-0123456789abcdef0", &zonal).as_deref(),
            Some("k3x9p2qz")
        );
        let moto = [DnsEntry {
            dns_name: "vpce-6d6298b06a2138e4a-ee7a5ff0.com.amazonaws.us-east-1.ec2".into(),
        }];
        assert_eq!(
            dns_suffix_of("vpce-6d6298b06a2138e4a", &moto).as_deref(),
            Some("ee7a5ff0")
        );
        assert_eq!(dns_suffix_of("vpce-1", &moto), None);
    }

    #[test]
    fn regions_from_names() {
        assert_eq!(region_of_az("us-east-1a").as_deref(), Some("us-east-1"));
        assert_eq!(
            region_of_az("us-east-1-bos-1a").as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            region_of_service("com.amazonaws.eu-west-2.ec2").as_deref(),
            Some("eu-west-2")
        );
        assert_eq!(
            id_in_name("ips-rslvr-in-0abc12345.json", "rslvr-in-").as_deref(),
            Some("rslvr-in-0abc12345")
        );
        assert_eq!(
            id_in_name("list-hosted-zones-by-vpc-vpc-0123abcd.json", "vpc-").as_deref(),
            Some("vpc-0123abcd")
        );
    }

    #[test]
    fn malformed_json_names_file_and_path() {
        let docs = [Document {
            name: "vpcs.json".into(),
            text: r#"{"Vpcs": [{"VpcId": "vpc-1", "CidrBlock": 5}]}"#.into(),
        }];
        let err = import_aws(&docs, &Options::default()).expect_err("type error");
        let text = err.to_string();
        assert!(
            text.starts_with("vpcs.json: at Vpcs[0].CidrBlock: invalid type"),
            "{text}"
        );
        let docs = [Document {
            name: "x.json".into(),
            text: "{\"Vpcs\": [".into(),
        }];
        assert!(matches!(
            import_aws(&docs, &Options::default()),
            Err(ImportError::Json { .. })
        ));
    }
}
