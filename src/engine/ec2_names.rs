//! Authority: the EC2 names of a VPC with DNS hostnames on (reference §6.1, §6.3, §12.5): IP names
//! (`ip-10-0-1-25.ec2.internal`) for its addresses and for RFC 1918 addresses of the Region's other VPCs, resource
//! names of its instances (`i-….ec2.internal`, A and AAAA as the instance's options say), the public DNS names of
//! instances with a public IP (the private address inside the instance's VPC, the public one everywhere else), and
//! the autodefined reverse zones that map addresses back to IP names.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::authority::{
    Answer, Ask, Authority, Compile, Described, Flow, Lost, Registration, Resolved, Scope, soa_for,
};
use super::{DecidedBy, Trace, name, record};
use crate::topology::{Topology, Vpc};

#[derive(Debug)]
pub(crate) struct Ec2Names {
    /// Per VPC: (label for the trace, IPv4 CIDRs, DNS hostnames on).
    vpcs: Vec<Vpc>,
    domain: Name,
    /// `compute-1.amazonaws.com.` (us-east-1) or `REGION.compute.amazonaws.com.`: public DNS names.
    public_domain: Name,
    /// Resource names (`i-….DOMAIN`) -> the instance's VPC and the addresses its options publish.
    resource: HashMap<LowerName, (usize, Option<Ipv4Addr>, Option<Ipv6Addr>)>,
    /// Public DNS names -> (VPC, private address, public address).
    public: HashMap<LowerName, (usize, Ipv4Addr, Ipv4Addr)>,
    soa: Record,
}

/// What a registration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Internal(usize),
    Reverse(usize),
    /// Public DNS names inside a VPC: its own instances' private addresses.
    PublicInside(usize),
    /// Public DNS names anywhere else: the public address.
    PublicOutside,
}

/// The registration entry number of `e` (4 kinds; VPC index times 4 plus the kind).
fn entry_number(e: Entry) -> u32 {
    match e {
        Entry::Internal(v) => v as u32 * 4,
        Entry::Reverse(v) => v as u32 * 4 + 1,
        Entry::PublicInside(v) => v as u32 * 4 + 2,
        Entry::PublicOutside => 3,
    }
}

fn entry_of(n: u32) -> Entry {
    let v = (n / 4) as usize;
    match n % 4 {
        0 => Entry::Internal(v),
        1 => Entry::Reverse(v),
        2 => Entry::PublicInside(v),
        _ => Entry::PublicOutside,
    }
}

/// `ec2-203-0-113-25.compute-1.amazonaws.com` in us-east-1, `ec2-….REGION.compute.amazonaws.com` elsewhere.
fn public_domain(topo: &Topology) -> Name {
    if topo.region == "us-east-1" {
        name(&format!("compute-1.{}.", topo.dns_suffix))
    } else {
        name(&format!("{}.compute.{}.", topo.region, topo.dns_suffix))
    }
}

fn dashed(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}-{}-{}-{}", o[0], o[1], o[2], o[3])
}

/// RFC 1918 private IPv4 space.
fn rfc1918(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 10 || (o[0] == 172 && (16..32).contains(&o[1])) || (o[0] == 192 && o[1] == 168)
}

/// The autodefined reverse zones of a VPC: the private ranges and each CIDR's own zone.
fn reverse_zones(vpc: &Vpc) -> Vec<String> {
    let mut zones = vec![
        "10.in-addr.arpa.".to_string(),
        "168.192.in-addr.arpa.".to_string(),
    ];
    zones.extend((16..32).map(|b| format!("{b}.172.in-addr.arpa.")));
    for cidr in &vpc.cidrs {
        let o = cidr.network().octets();
        zones.push(match cidr.prefix_len() {
            0..=15 => format!("{}.in-addr.arpa.", o[0]),
            16..=23 => format!("{}.{}.in-addr.arpa.", o[1], o[0]),
            _ => format!("{}.{}.{}.in-addr.arpa.", o[2], o[1], o[0]),
        });
    }
    zones.sort();
    zones.dedup();
    zones
}

impl Ec2Names {
    pub(crate) fn compile(c: &Compile<'_>) -> Self {
        let public_domain = public_domain(c.topo);
        let mut resource = HashMap::new();
        let mut public = HashMap::new();
        for i in &c.topo.instances {
            let owner = name(&format!("{}.{}", i.id, c.ec2_domain));
            let a = i.resource_name_a.then_some(i.ip);
            let aaaa = i.ipv6.filter(|_| i.resource_name_aaaa);
            resource.insert(LowerName::new(&owner), (i.vpc, a, aaaa));
            if let Some(p) = i.public_ip {
                let owner = name(&format!("ec2-{}.{public_domain}", dashed(p)));
                public.insert(LowerName::new(&owner), (i.vpc, i.ip, p));
            }
        }
        Self {
            vpcs: c.topo.vpcs.clone(),
            domain: c.ec2_domain.clone(),
            public_domain,
            resource,
            public,
            soa: c.soa.clone(),
        }
    }

    /// An IP name answers for the VPC's own addresses and, as AWS documents, for RFC 1918 addresses of the
    /// Region's other VPCs (§12.5); which VPC holds it, for the trace.
    fn ip_name_owner(&self, vpc: &Vpc, ip: Ipv4Addr) -> Option<String> {
        if vpc.contains(IpAddr::V4(ip)) {
            return Some(format!("inside {}", vpc.label()));
        }
        let other = self.vpcs.iter().find(|v| v.contains(IpAddr::V4(ip)))?;
        rfc1918(ip).then(|| {
            format!(
                "an RFC 1918 address of {} in the same Region (§12.5)",
                other.label()
            )
        })
    }

    /// `i-….DOMAIN`: the instance's resource name, in its own VPC (other VPCs: UNCONFIRMED, not answered).
    fn resource_name(
        &self,
        vi: usize,
        qname: &Name,
        qtype: RecordType,
        trace: &mut Trace,
    ) -> Option<Answer> {
        let &(owner_vpc, a, aaaa) = self.resource.get(&LowerName::new(qname))?;
        if owner_vpc != vi {
            return None;
        }
        let mut recs = Vec::new();
        if matches!(qtype, RecordType::A | RecordType::ANY) {
            recs.extend(a.map(|ip| record(qname, 60, RData::A(ip.into()))));
        }
        if matches!(qtype, RecordType::AAAA | RecordType::ANY) {
            recs.extend(aaaa.map(|ip| record(qname, 60, RData::AAAA(ip.into()))));
        }
        trace.add("§12.5", || format!("{qname} is the resource name of an instance of {}: A {}, AAAA {} (EnableResourceNameDnsARecord / AAAARecord), TTL 60", self.vpcs[vi].label(), if a.is_some() { "on" } else { "off" }, if aaaa.is_some() { "on" } else { "off" }));
        Some(if recs.is_empty() {
            Answer::negative(ResponseCode::NoError, soa_for(&self.soa, &self.domain))
        } else {
            Answer::records(recs)
        })
    }

    /// A public DNS name: inside the instance's VPC its private address, elsewhere its public one (§12.5).
    fn public_name(
        &self,
        inside: Option<usize>,
        qname: &Name,
        qtype: RecordType,
        trace: &mut Trace,
    ) -> Option<Answer> {
        let &(vpc, private, public) = self.public.get(&LowerName::new(qname))?;
        let ip = match inside {
            Some(v) if v == vpc => {
                trace.add("§12.5", || format!("{qname} is the public DNS name of an instance of {}: inside its VPC it answers the private address {private}", self.vpcs[vpc].label()));
                private
            }
            Some(_) => return None,
            None => {
                trace.add("§12.5", || format!("{qname} is the public DNS name of an instance with public IP {public}: outside its VPC it answers that address"));
                public
            }
        };
        Some(if matches!(qtype, RecordType::A | RecordType::ANY) {
            Answer::records(vec![record(qname, 60, RData::A(ip.into()))])
        } else {
            Answer::negative(
                ResponseCode::NoError,
                soa_for(&self.soa, &self.public_domain),
            )
        })
    }

    /// `ip-10-0-1-25.ec2.internal` -> 10.0.1.25 for addresses of the VPC (§6.1).
    fn internal(&self, vpc: &Vpc, qname: &Name, qtype: RecordType, trace: &mut Trace) -> Answer {
        let zone = &self.domain;
        let ip = (qname.num_labels() == zone.num_labels() + 1)
            .then(|| qname.iter().next())
            .flatten()
            .and_then(|label| std::str::from_utf8(label).ok())
            .and_then(|label| label.strip_prefix("ip-"))
            .and_then(|rest| rest.replace('-', ".").parse::<Ipv4Addr>().ok())
            .and_then(|ip| Some((ip, self.ip_name_owner(vpc, ip)?)));
        match ip {
            Some((ip, whose)) if qtype == RecordType::A || qtype == RecordType::ANY => {
                trace.add("§6.1, §12.5", || {
                    format!("{qname} is the EC2 IP name of {ip}, {whose}: A only, TTL 60")
                });
                Answer::records(vec![record(qname, 60, RData::A(ip.into()))])
            }
            Some((ip, _)) => {
                trace.add("§6.1", || {
                    format!(
                        "{qname} is the EC2 internal name of {ip}; it has only an A record: NODATA"
                    )
                });
                Answer::negative(ResponseCode::NoError, soa_for(&self.soa, zone))
            }
            None => {
                trace.add("§6.1, §6.3", || {
                    format!(
                        "{qname} is under {zone} but names no address of {}: NXDOMAIN",
                        vpc.label()
                    )
                });
                Answer::negative(ResponseCode::NXDomain, soa_for(&self.soa, zone))
            }
        }
    }

    /// Reverse names of VPC addresses -> their EC2 internal name (autodefined reverse rules, §6.3).
    fn reverse(
        &self,
        vpc: &Vpc,
        zone: &Name,
        qname: &Name,
        qtype: RecordType,
        trace: &mut Trace,
    ) -> Answer {
        let octets: Vec<u8> = qname
            .iter()
            .take(4)
            .filter_map(|l| std::str::from_utf8(l).ok()?.parse().ok())
            .collect();
        let ip = (qname.num_labels() == 6 && octets.len() == 4)
            .then(|| Ipv4Addr::new(octets[3], octets[2], octets[1], octets[0]))
            .filter(|ip| vpc.contains(IpAddr::V4(*ip)));
        let Some(ip) = ip else {
            trace.add("§6.3", || format!("{qname} is under the autodefined reverse zone {zone} but names no address of {}: NXDOMAIN", vpc.label()));
            return Answer::negative(ResponseCode::NXDomain, soa_for(&self.soa, zone));
        };
        let o = ip.octets();
        let target = name(&format!(
            "ip-{}-{}-{}-{}.{}",
            o[0], o[1], o[2], o[3], self.domain
        ));
        trace.add("§6.3 [INF answer content]", || {
            format!(
                "{qname} is the reverse name of {ip} in {}: PTR {target}",
                vpc.label()
            )
        });
        if qtype == RecordType::PTR || qtype == RecordType::ANY {
            Answer::records(vec![record(qname, 60, RData::PTR(rdata::PTR(target)))])
        } else {
            Answer::negative(ResponseCode::NoError, soa_for(&self.soa, zone))
        }
    }
}

impl Authority for Ec2Names {
    fn registrations(&self) -> Vec<Registration> {
        let mut out = Vec::new();
        let mut add = |scope, domain: &Name, e| {
            out.push(Registration {
                scope,
                domain: LowerName::new(domain),
                entry: entry_number(e),
            })
        };
        // With enable_dns_hostnames off the Resolver does not answer Amazon-provided private names (§12.5).
        for (vi, vpc) in self
            .vpcs
            .iter()
            .enumerate()
            .filter(|(_, v)| v.dns_hostnames)
        {
            add(Scope::Vpc(vi), &self.domain, Entry::Internal(vi));
            for zone in reverse_zones(vpc) {
                add(Scope::Vpc(vi), &name(&zone), Entry::Reverse(vi));
            }
        }
        for (owner, (vi, ..)) in &self.public {
            let owner = Name::from(owner);
            if self.vpcs[*vi].dns_hostnames {
                add(Scope::Vpc(*vi), &owner, Entry::PublicInside(*vi));
            }
            add(Scope::Everywhere, &owner, Entry::PublicOutside);
        }
        out
    }

    fn lookup(&self, entry: u32, ask: &Ask<'_>, trace: &mut Trace) -> Flow {
        let (qname, qtype) = (ask.qname, ask.qtype);
        // Synthesized from the address in the name: unbounded in number, so never prepared.
        let (by, answer) = match entry_of(entry) {
            Entry::Reverse(vi) => (
                DecidedBy::Ec2Reverse,
                self.reverse(&self.vpcs[vi], &ask.domain_name(), qname, qtype, trace),
            ),
            Entry::Internal(vi) => {
                let answer = self
                    .resource_name(vi, qname, qtype, trace)
                    .unwrap_or_else(|| self.internal(&self.vpcs[vi], qname, qtype, trace));
                (DecidedBy::Ec2Name, answer)
            }
            Entry::PublicInside(vi) => match self.public_name(Some(vi), qname, qtype, trace) {
                Some(a) => (DecidedBy::Ec2Name, a),
                None => return Flow::Pass(Lost::NotApplicable),
            },
            Entry::PublicOutside => match self.public_name(None, qname, qtype, trace) {
                Some(mut a) => {
                    // Public DNS: not an authoritative answer of this resolver.
                    a.authoritative = false;
                    (DecidedBy::Ec2Name, a)
                }
                None => return Flow::Pass(Lost::NotApplicable),
            },
        };
        Flow::Decide {
            by,
            resolved: Resolved::Answer(answer),
            fixed: false,
        }
    }

    fn describe(&self, entry: u32, domain: &LowerName) -> Described {
        match entry_of(entry) {
            Entry::Reverse(_) => Described {
                kind: "reverse zone",
                label: format!("autodefined reverse rule {domain}"),
                by: DecidedBy::Ec2Reverse,
            },
            Entry::Internal(_) => Described {
                kind: "EC2 internal names",
                label: format!("autodefined rule for {}", self.domain),
                by: DecidedBy::Ec2Name,
            },
            Entry::PublicInside(_) | Entry::PublicOutside => Described {
                kind: "EC2 public DNS name",
                label: format!("public DNS name {domain}"),
                by: DecidedBy::Ec2Name,
            },
        }
    }
}
