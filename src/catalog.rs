//! The AWS service catalog: which services offer VPC endpoints, the private DNS names an interface endpoint
//! answers for, and the service id used in `vpce-…` names. The data lives in `zones/services.tsv`, embedded at
//! build time and parsed once; its header explains every column. This module also owns the small facts about
//! regions that those names depend on: the partition DNS suffix, the list of known regions and the EC2
//! internal domain.
//!
//! Naming in the China regions: the service name takes the `cn.com.amazonaws.` prefix only for the services the
//! reference shows in that form (a `describe-vpc-endpoint-services` dump: ec2, ecr.api, ecr.dkr, sts); every
//! other service keeps `com.amazonaws.cn-….`. [`Catalog::resolve`] accepts both spellings for any China service,
//! so a topology written either way works.

use std::fmt;
use std::sync::OnceLock;

const EMBEDDED_TSV: &str = include_str!("../zones/services.tsv");

/// Commercial regions as of early 2026, then China, then GovCloud.
const KNOWN_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-west-1",
    "us-gov-east-1",
];

/// Services whose China name is `cn.com.amazonaws.<region>.<code>`, as seen in the reference's China dump.
/// AWS uses the prefix for more services than this, but the list differs per China region and is not in the
/// reference; unlisted services are still resolved from the `cn.` spelling.
const CN_PREFIXED: &[&str] = &["ec2", "ecr.api", "ecr.dkr", "sts"];

const PREFIX_COM: &str = "com.amazonaws";
const PREFIX_CN: &str = "cn.com.amazonaws";

/// How a service's DNS names are known; see the header of `zones/services.tsv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Stated in AWS documentation.
    Doc,
    /// Seen in real output or a third party's working configuration.
    Obs,
    /// Inferred by analogy from documented facts; unconfirmed.
    Inf,
    /// Only the default rule `<code>.<region>.amazonaws.com` backs it.
    Pattern,
    /// Given by the user in a topology's `services:` section.
    User,
}

impl Evidence {
    /// The spelling used in the TSV and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Doc => "doc",
            Self::Obs => "obs",
            Self::Inf => "inf",
            Self::Pattern => "pattern",
            Self::User => "user",
        }
    }

    /// `user` is deliberately not accepted: the shipped data never comes from a topology.
    fn from_tsv(value: &str) -> Option<Self> {
        match value {
            "doc" => Some(Self::Doc),
            "obs" => Some(Self::Obs),
            "inf" => Some(Self::Inf),
            "pattern" => Some(Self::Pattern),
            _ => None,
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One service as offered in one region, with every template filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Full service name for the region, e.g. `com.amazonaws.us-east-1.ec2`.
    pub name: String,
    /// Short code: `ec2`, `ecr.dkr`, `qbusiness`, or `vpce-svc-…` for endpoint services.
    pub code: String,
    /// The service part of the endpoint-specific names: `ec2`, `dkr.ecr`, `kinesis`.
    pub endpoint_service_id: String,
    /// Lowercase FQDNs without the trailing dot; a `*.` prefix marks a wildcard name.
    pub private_dns_names: Vec<String>,
    pub interface: bool,
    pub gateway: bool,
    pub evidence: Evidence,
    pub note: String,
}

/// A problem in the catalog TSV; `line` is 1-based.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "line {line}: expected 6 tab-separated columns (the note may be omitted), found {found}"
    )]
    ColumnCount { line: usize, found: usize },
    #[error("line {line}: column {column} is empty")]
    EmptyColumn { line: usize, column: &'static str },
    #[error("line {line}: {column} `{value}`: {reason}")]
    BadName {
        line: usize,
        column: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("line {line}: types `{value}`: expected interface, gateway or interface,gateway")]
    BadTypes { line: usize, value: String },
    #[error("line {line}: evidence `{value}`: expected doc, obs, inf or pattern")]
    BadEvidence { line: usize, value: String },
    #[error("line {line}: service {service} is already defined on line {first}")]
    Duplicate {
        line: usize,
        service: String,
        first: usize,
    },
}

/// Where a catalog row is offered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// `prefix.{region}.code`: every region.
    AnyRegion,
    /// A literal region in the name: only there.
    Region(String),
    /// No region in the name (`com.amazonaws.iam`): every region.
    Regionless,
}

/// One parsed row, still holding templates.
#[derive(Debug, Clone)]
struct Entry {
    prefix: String,
    scope: Scope,
    code: String,
    endpoint_service_id: String,
    private_dns_names: Vec<String>,
    interface: bool,
    gateway: bool,
    evidence: Evidence,
    note: String,
}

impl Entry {
    fn offered_in(&self, region: &str) -> bool {
        match &self.scope {
            Scope::Region(only) => only == region,
            Scope::AnyRegion | Scope::Regionless => true,
        }
    }

    fn name_in(&self, region: &str) -> String {
        match &self.scope {
            Scope::AnyRegion => {
                let prefix = if is_china(region)
                    && self.prefix == PREFIX_COM
                    && CN_PREFIXED.contains(&self.code.as_str())
                {
                    PREFIX_CN
                } else {
                    self.prefix.as_str()
                };
                format!("{prefix}.{region}.{}", self.code)
            }
            Scope::Region(only) => format!("{}.{only}.{}", self.prefix, self.code),
            Scope::Regionless => format!("{}.{}", self.prefix, self.code),
        }
    }

    /// True when `name` (lowercase) is this service's full name in `region`, in either China spelling.
    fn has_full_name(&self, name: &str, region: &str) -> bool {
        if !self.offered_in(region) {
            return false;
        }
        if name == self.name_in(region) {
            return true;
        }
        if self.scope == Scope::AnyRegion && self.prefix == PREFIX_COM && is_china(region) {
            let rest = format!(".{region}.{}", self.code);
            return [PREFIX_COM, PREFIX_CN]
                .iter()
                .any(|prefix| name.strip_prefix(prefix) == Some(rest.as_str()));
        }
        false
    }

    fn instantiate(&self, region: &str) -> Service {
        let dns = dns_suffix(region);
        Service {
            name: self.name_in(region),
            code: self.code.clone(),
            endpoint_service_id: self.endpoint_service_id.clone(),
            private_dns_names: self
                .private_dns_names
                .iter()
                .map(|t| t.replace("{region}", region).replace("{dns}", dns))
                .collect(),
            interface: self.interface,
            gateway: self.gateway,
            evidence: self.evidence,
            note: self.note.clone(),
        }
    }
}

/// The parsed service catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<Entry>,
}

impl Catalog {
    /// The catalog shipped in the binary. A unit test proves the embedded data parses; should it ever not, this
    /// returns an empty catalog rather than panicking in a running server.
    pub fn embedded() -> &'static Self {
        static EMBEDDED: OnceLock<Catalog> = OnceLock::new();
        EMBEDDED.get_or_init(|| Self::parse(EMBEDDED_TSV).unwrap_or_default())
    }

    /// Parses catalog TSV text (format: see the header of `zones/services.tsv`).
    pub fn parse(tsv: &str) -> Result<Self, CatalogError> {
        let mut entries = Vec::new();
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (index, raw) in tsv.lines().enumerate() {
            let line = index + 1;
            if raw.trim().is_empty() || raw.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = raw.split('\t').map(str::trim).collect();
            if !(5..=6).contains(&fields.len()) {
                return Err(CatalogError::ColumnCount {
                    line,
                    found: fields.len(),
                });
            }
            let [service, id, dns_names, types, evidence] =
                [fields[0], fields[1], fields[2], fields[3], fields[4]];
            let note = fields.get(5).copied().unwrap_or_default();
            for (column, value) in [
                ("service", service),
                ("endpoint_service_id", id),
                ("private_dns_names", dns_names),
                ("types", types),
                ("evidence", evidence),
            ] {
                if value.is_empty() {
                    return Err(CatalogError::EmptyColumn { line, column });
                }
            }

            let bad = |column, value: &str, reason| CatalogError::BadName {
                line,
                column,
                value: value.to_owned(),
                reason,
            };
            check_template(service, Template::Service).map_err(|r| bad("service", service, r))?;
            check_template(id, Template::Plain).map_err(|r| bad("endpoint_service_id", id, r))?;
            let (prefix, scope, code) =
                split_service(service).map_err(|r| bad("service", service, r))?;
            let private_dns_names = if dns_names == "-" {
                Vec::new()
            } else {
                dns_names
                    .split(',')
                    .map(|name| {
                        let name = name.trim();
                        check_template(name, Template::DnsName)
                            .map(|()| name.to_owned())
                            .map_err(|r| bad("private_dns_names", name, r))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            let (interface, gateway) = match types {
                "interface" => (true, false),
                "gateway" => (false, true),
                "interface,gateway" | "gateway,interface" => (true, true),
                _ => {
                    return Err(CatalogError::BadTypes {
                        line,
                        value: types.to_owned(),
                    });
                }
            };
            let evidence =
                Evidence::from_tsv(evidence).ok_or_else(|| CatalogError::BadEvidence {
                    line,
                    value: evidence.to_owned(),
                })?;
            if let Some((_, first)) = seen.iter().find(|(s, _)| s == service) {
                return Err(CatalogError::Duplicate {
                    line,
                    service: service.to_owned(),
                    first: *first,
                });
            }
            seen.push((service.to_owned(), line));
            entries.push(Entry {
                prefix,
                scope,
                code,
                endpoint_service_id: id.to_owned(),
                private_dns_names,
                interface,
                gateway,
                evidence,
                note: note.to_owned(),
            });
        }
        Ok(Self { entries })
    }

    /// Number of rows (service name templates).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Accepts a short code ("ec2", "ecr.dkr", "s3"), a full name with the region ("com.amazonaws.us-east-1.ec2",
    /// "aws.api.us-east-1.qbusiness", "cn.com.amazonaws.cn-north-1.ec2"), or a regionless one ("com.amazonaws.iam",
    /// short "iam"). Endpoint service names ("com.amazonaws.vpce.us-east-1.vpce-svc-…") resolve to a service with
    /// no private DNS names; the topology supplies those.
    /// Returns None for unknown names or when the full name's region differs from `region`.
    pub fn resolve(&self, service: &str, region: &str) -> Option<Service> {
        let wanted = service.trim().to_ascii_lowercase();
        if let Some((svc_region, id)) = parse_endpoint_service_name(&wanted) {
            return (svc_region == region).then(|| Service {
                name: wanted.clone(),
                code: id.to_owned(),
                endpoint_service_id: id.to_owned(),
                private_dns_names: Vec::new(),
                interface: true,
                gateway: false,
                evidence: Evidence::Doc,
                note: "endpoint service: name format from the PrivateLink Guide; private DNS names come from the topology"
                    .to_owned(),
            });
        }
        if let Some(entry) = self
            .entries
            .iter()
            .find(|e| e.has_full_name(&wanted, region))
        {
            return Some(entry.instantiate(region));
        }
        // A short code can match both `com.amazonaws.{region}.X` and `aws.api.{region}.X` (freetier,
        // resource-explorer-2); the classic `com.amazonaws` name wins, the other needs its full name.
        self.entries
            .iter()
            .filter(|e| e.code == wanted && e.offered_in(region))
            .min_by_key(|e| e.prefix != PREFIX_COM)
            .map(|e| e.instantiate(region))
    }

    /// Every service offered in `region`, sorted by name; `filter` is a case-insensitive substring of the name,
    /// the code or one of the private DNS names.
    pub fn list(&self, region: &str, filter: Option<&str>) -> Vec<Service> {
        let filter = filter.map(str::to_ascii_lowercase);
        let mut services: Vec<Service> = self
            .entries
            .iter()
            .filter(|e| e.offered_in(region))
            .map(|e| e.instantiate(region))
            .filter(|s| match &filter {
                None => true,
                Some(f) => {
                    s.name.contains(f.as_str())
                        || s.code.contains(f.as_str())
                        || s.private_dns_names.iter().any(|n| n.contains(f.as_str()))
                }
            })
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        services
    }
}

#[derive(Clone, Copy)]
enum Template {
    /// A service name: `{region}` allowed once.
    Service,
    /// A DNS name: `{region}`, `{dns}` and a leading `*.` allowed.
    DnsName,
    /// No placeholders.
    Plain,
}

/// Checks characters, placeholders and labels of a name template.
fn check_template(value: &str, kind: Template) -> Result<(), &'static str> {
    let mut rest = value;
    if matches!(kind, Template::DnsName) {
        rest = rest.strip_prefix("*.").unwrap_or(rest);
    }
    if rest.contains('*') {
        return Err("`*` is only allowed as a whole first label (`*.`) of a DNS name");
    }
    let region_count = rest.matches("{region}").count();
    let filled = match kind {
        Template::Service if region_count > 1 => return Err("{region} may appear only once"),
        Template::Service => rest.replace("{region}", "r"),
        Template::DnsName => rest.replace("{region}", "r").replace("{dns}", "d"),
        Template::Plain => rest.to_owned(),
    };
    if filled.contains(['{', '}']) {
        return Err(match kind {
            Template::Service => "the only placeholder allowed here is {region}",
            Template::DnsName => "the only placeholders allowed are {region} and {dns}",
            Template::Plain => "placeholders are not allowed here",
        });
    }
    if !filled
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err("only lowercase letters, digits, `-` and `.` are allowed");
    }
    if filled.split('.').any(str::is_empty) {
        return Err("empty label");
    }
    Ok(())
}

/// Splits a service template into prefix, scope and short code.
fn split_service(template: &str) -> Result<(String, Scope, String), &'static str> {
    if let Some((prefix, code)) = template.split_once(".{region}.") {
        return Ok((prefix.to_owned(), Scope::AnyRegion, code.to_owned()));
    }
    if template.contains("{region}") {
        return Err("{region} must sit between the prefix and the code");
    }
    let labels: Vec<&str> = template.split('.').collect();
    // A literal region: offered only there (aws.api.us-east-2.route53globalresolver).
    if let Some(at) = labels.iter().position(|l| is_known_region(l)) {
        if at == 0 || at + 1 == labels.len() {
            return Err("a literal region needs a prefix before it and a code after it");
        }
        return Ok((
            labels[..at].join("."),
            Scope::Region(labels[at].to_owned()),
            labels[at + 1..].join("."),
        ));
    }
    match template.strip_prefix("com.amazonaws.") {
        Some(code) => Ok((PREFIX_COM.to_owned(), Scope::Regionless, code.to_owned())),
        None => Err("a name without a region must start with com.amazonaws."),
    }
}

/// Endpoint services (customer PrivateLink): "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0" ->
/// Some(("us-east-1", "vpce-svc-0123456789abcdef0")). The China form `cn.com.amazonaws.vpce.…` is accepted too.
/// The region must look like a region; it need not be a known one.
pub fn parse_endpoint_service_name(name: &str) -> Option<(&str, &str)> {
    let rest = name
        .strip_prefix("com.amazonaws.vpce.")
        .or_else(|| name.strip_prefix("cn.com.amazonaws.vpce."))?;
    let (region, id) = rest.split_once('.')?;
    let hex = id.strip_prefix("vpce-svc-")?;
    let hex_ok = matches!(hex.len(), 8 | 17)
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (looks_like_region(region) && hex_ok).then_some((region, id))
}

/// "amazonaws.com", or "amazonaws.com.cn" in the China regions.
pub fn dns_suffix(region: &str) -> &'static str {
    if is_china(region) {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// The Regional domain of endpoint-specific names: `dkr.ecr.us-east-1.vpce.amazonaws.com`.
pub fn vpce_domain(endpoint_service_id: &str, region: &str) -> String {
    format!("{endpoint_service_id}.{region}.vpce.{}", dns_suffix(region))
}

/// True for the commercial regions as of early 2026, the two China regions and the two GovCloud regions.
pub fn is_known_region(region: &str) -> bool {
    KNOWN_REGIONS.contains(&region)
}

pub fn known_regions() -> &'static [&'static str] {
    KNOWN_REGIONS
}

/// "ec2.internal" in us-east-1, "<region>.compute.internal" elsewhere.
pub fn ec2_internal_domain(region: &str) -> String {
    if region == "us-east-1" {
        "ec2.internal".to_owned()
    } else {
        format!("{region}.compute.internal")
    }
}

fn is_china(region: &str) -> bool {
    region.starts_with("cn-")
}

/// `xx-name-N` or `xx-gov-name-N`: lowercase letters, then a number.
fn looks_like_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((last, first)) = parts.split_last() else {
        return false;
    };
    matches!(parts.len(), 3 | 4)
        && !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
        && first
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(service: &str, region: &str) -> Service {
        Catalog::embedded()
            .resolve(service, region)
            .unwrap_or_else(|| panic!("{service} in {region} not in the catalog"))
    }

    #[test]
    fn embedded_data_parses() {
        let catalog = Catalog::parse(EMBEDDED_TSV).unwrap();
        assert!(catalog.len() >= 460, "only {} services", catalog.len());
        assert_eq!(Catalog::embedded().len(), catalog.len());
    }

    #[test]
    fn every_row_has_allowed_evidence_and_placeholders() {
        let mut rows = 0;
        for (index, line) in EMBEDDED_TSV.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            rows += 1;
            let fields: Vec<&str> = line.split('\t').collect();
            assert!(
                ["doc", "obs", "inf", "pattern"].contains(&fields[4]),
                "line {}: evidence {}",
                index + 1,
                fields[4]
            );
            for template in [fields[0], fields[2]] {
                let stripped = template.replace("{region}", "").replace("{dns}", "");
                assert!(
                    !stripped.contains(['{', '}']),
                    "line {}: unknown placeholder in {template}",
                    index + 1
                );
            }
            assert!(!fields[1].contains('{'), "line {}", index + 1);
        }
        assert_eq!(rows, Catalog::embedded().len());
    }

    #[test]
    fn ecr() {
        let dkr = get("ecr.dkr", "us-west-2");
        assert_eq!(dkr.name, "com.amazonaws.us-west-2.ecr.dkr");
        assert_eq!(dkr.endpoint_service_id, "dkr.ecr");
        assert_eq!(dkr.private_dns_names, ["*.dkr.ecr.us-west-2.amazonaws.com"]);
        let api = get("ecr.api", "us-west-2");
        assert_eq!(api.endpoint_service_id, "api.ecr");
        assert_eq!(api.private_dns_names, ["api.ecr.us-west-2.amazonaws.com"]);
    }

    #[test]
    fn kinesis_streams_uses_kinesis() {
        let k = get("kinesis-streams", "us-west-2");
        assert_eq!(k.endpoint_service_id, "kinesis");
        assert_eq!(k.private_dns_names[0], "kinesis.us-west-2.amazonaws.com");
        assert!(
            k.private_dns_names
                .contains(&"*.data-kinesis.us-west-2.amazonaws.com".to_owned())
        );
        assert_eq!(
            vpce_domain(&k.endpoint_service_id, "us-west-2"),
            "kinesis.us-west-2.vpce.amazonaws.com"
        );
    }

    #[test]
    fn monitoring_has_four_names() {
        let m = get("monitoring", "us-east-1");
        assert_eq!(
            m.private_dns_names,
            [
                "monitoring.us-east-1.amazonaws.com",
                "monitoring.us-east-1.api.aws",
                "monitoring-fips.us-east-1.amazonaws.com",
                "monitoring-fips.us-east-1.api.aws",
            ]
        );
        assert_eq!(m.evidence, Evidence::Doc);
    }

    #[test]
    fn s3_execute_api_sqs() {
        let s3 = get("s3", "us-east-1");
        assert!(s3.interface && s3.gateway);
        for name in [
            "s3.us-east-1.amazonaws.com",
            "*.s3.us-east-1.amazonaws.com",
            "s3-control.us-east-1.amazonaws.com",
            "*.s3-accesspoint.us-east-1.amazonaws.com",
        ] {
            assert!(s3.private_dns_names.contains(&name.to_owned()), "{name}");
        }
        assert_eq!(s3.private_dns_names.len(), 6);
        assert_eq!(
            get("execute-api", "eu-west-1").private_dns_names,
            [
                "execute-api.eu-west-1.amazonaws.com",
                "*.execute-api.eu-west-1.amazonaws.com"
            ]
        );
        assert_eq!(
            get("sqs", "us-east-1").private_dns_names,
            ["sqs.us-east-1.amazonaws.com", "sqs.us-east-1.api.aws"]
        );
    }

    #[test]
    fn services_without_private_dns() {
        let ddb = get("dynamodb", "us-east-1");
        assert!(ddb.private_dns_names.is_empty());
        assert!(ddb.interface && ddb.gateway);
        let streams = get("dynamodb-streams", "us-east-1");
        assert!(streams.private_dns_names.is_empty());
        assert_eq!(streams.endpoint_service_id, "streams.dynamodb");
        for code in [
            "iot.data",
            "lorawan.cups",
            "lorawan.lns",
            "console",
            "signin",
        ] {
            assert!(
                get(code, "us-east-1").private_dns_names.is_empty(),
                "{code}"
            );
        }
    }

    #[test]
    fn sagemaker() {
        let nb = get("aws.sagemaker.us-east-1.notebook", "us-east-1");
        assert_eq!(nb.code, "notebook");
        assert_eq!(nb.private_dns_names, ["*.notebook.us-east-1.sagemaker.aws"]);
        assert_eq!(
            get("sagemaker.runtime", "us-east-1").endpoint_service_id,
            "runtime.sagemaker"
        );
    }

    #[test]
    fn china() {
        let ec2 = get("ec2", "cn-north-1");
        assert_eq!(ec2.name, "cn.com.amazonaws.cn-north-1.ec2");
        assert_eq!(ec2.private_dns_names, ["ec2.cn-north-1.amazonaws.com.cn"]);
        assert_eq!(
            vpce_domain(&ec2.endpoint_service_id, "cn-north-1"),
            "ec2.cn-north-1.vpce.amazonaws.com.cn"
        );
        assert_eq!(get("cn.com.amazonaws.cn-north-1.ec2", "cn-north-1"), ec2);
        assert_eq!(get("com.amazonaws.cn-north-1.ec2", "cn-north-1"), ec2);
        // Unlisted services keep com.amazonaws but accept the cn. spelling.
        let s3 = get("cn.com.amazonaws.cn-northwest-1.s3", "cn-northwest-1");
        assert_eq!(s3.name, "com.amazonaws.cn-northwest-1.s3");
        assert_eq!(dns_suffix("cn-northwest-1"), "amazonaws.com.cn");
        assert_eq!(dns_suffix("us-gov-west-1"), "amazonaws.com");
    }

    #[test]
    fn regionless_and_literal_region() {
        let iam = get("iam", "us-east-1");
        assert_eq!(iam.name, "com.amazonaws.iam");
        assert_eq!(
            get("com.amazonaws.iam", "eu-west-1").name,
            "com.amazonaws.iam"
        );
        let gr = get("route53globalresolver", "us-east-2");
        assert_eq!(gr.name, "aws.api.us-east-2.route53globalresolver");
        let catalog = Catalog::embedded();
        assert_eq!(catalog.resolve("route53globalresolver", "us-east-1"), None);
        assert_eq!(
            catalog.resolve("aws.api.us-east-2.route53globalresolver", "us-east-1"),
            None
        );
    }

    #[test]
    fn resolve_by_short_and_full_name() {
        let catalog = Catalog::embedded();
        let short = get("EC2", "us-east-1");
        assert_eq!(short.name, "com.amazonaws.us-east-1.ec2");
        assert_eq!(get("com.amazonaws.us-east-1.ec2", "us-east-1"), short);
        let q = get("aws.api.us-east-1.qbusiness", "us-east-1");
        assert_eq!(q, get("qbusiness", "us-east-1"));
        assert_eq!(q.private_dns_names, ["qbusiness.us-east-1.api.aws"]);
        // Short codes shared by two names prefer com.amazonaws.
        assert_eq!(
            get("freetier", "us-east-1").name,
            "com.amazonaws.us-east-1.freetier"
        );
        assert_eq!(
            get("aws.api.us-east-1.freetier", "us-east-1").name,
            "aws.api.us-east-1.freetier"
        );
        assert_eq!(
            catalog.resolve("com.amazonaws.us-west-2.ec2", "us-east-1"),
            None
        );
        assert_eq!(catalog.resolve("no-such-service", "us-east-1"), None);
        assert_eq!(
            catalog.resolve("com.amazonaws.us-east-1.no-such-service", "us-east-1"),
            None
        );
    }

    #[test]
    fn endpoint_services() {
        let name = "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0";
        assert_eq!(
            parse_endpoint_service_name(name),
            Some(("us-east-1", "vpce-svc-0123456789abcdef0"))
        );
        assert_eq!(
            parse_endpoint_service_name("cn.com.amazonaws.vpce.cn-north-1.vpce-svc-01234567"),
            Some(("cn-north-1", "vpce-svc-01234567"))
        );
        for bad in [
            "com.amazonaws.vpce.us-east-1.vpce-svc-0123",
            "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdefg",
            "com.amazonaws.vpce.useast1.vpce-svc-0123456789abcdef0",
            "com.amazonaws.us-east-1.ec2",
        ] {
            assert_eq!(parse_endpoint_service_name(bad), None, "{bad}");
        }
        let svc = get(name, "us-east-1");
        assert_eq!(svc.code, "vpce-svc-0123456789abcdef0");
        assert!(svc.private_dns_names.is_empty());
        assert_eq!(Catalog::embedded().resolve(name, "us-west-2"), None);
    }

    #[test]
    fn list_filters_and_sorts() {
        let catalog = Catalog::embedded();
        let all = catalog.list("us-east-1", None);
        // Everything but the two Global Resolver names, which exist only in us-east-2.
        assert_eq!(all.len(), catalog.len() - 2);
        assert!(all.windows(2).all(|w| w[0].name <= w[1].name));
        assert!(
            all.iter()
                .all(|s| s.name != "aws.api.us-east-2.route53globalresolver")
        );
        let ecr = catalog.list("us-east-1", Some("DKR"));
        assert_eq!(ecr.len(), 1);
        assert_eq!(ecr[0].code, "ecr.dkr");
        assert_eq!(catalog.list("us-east-2", None).len(), catalog.len());
    }

    #[test]
    fn regions() {
        assert!(is_known_region("mx-central-1"));
        assert!(is_known_region("ap-southeast-7"));
        assert!(is_known_region("us-gov-east-1"));
        assert!(!is_known_region("us-east-9"));
        assert_eq!(known_regions().len(), KNOWN_REGIONS.len());
        assert_eq!(ec2_internal_domain("us-east-1"), "ec2.internal");
        assert_eq!(
            ec2_internal_domain("eu-west-1"),
            "eu-west-1.compute.internal"
        );
    }

    #[test]
    fn parse_reports_line_numbers() {
        let err = |tsv: &str| Catalog::parse(tsv).unwrap_err().to_string();
        assert_eq!(
            err("# c\ncom.amazonaws.{region}.x\tx\tx.{region}.{dns}\tinterface\tmaybe\t\n"),
            "line 2: evidence `maybe`: expected doc, obs, inf or pattern"
        );
        assert!(
            err("com.amazonaws.{region}.x\tx\tx.{zone}.{dns}\tinterface\tdoc\n")
                .starts_with("line 1: private_dns_names")
        );
        assert!(
            err("com.amazonaws.{region}.x\tx\tx.{region}.{dns}\tendpoint\tdoc\n").contains("types")
        );
        assert!(err("com.amazonaws.{region}.x\tx\n").contains("found 2"));
        let dup = "com.amazonaws.{region}.x\tx\t-\tinterface\tdoc\ncom.amazonaws.{region}.x\tx\t-\tinterface\tdoc\n";
        assert_eq!(
            err(dup),
            "line 2: service com.amazonaws.{region}.x is already defined on line 1"
        );
        assert!(err("com.amazonaws.{region}.x\tx\tfoo*.{dns}\tinterface\tdoc\n").contains("`*`"));
    }
}
