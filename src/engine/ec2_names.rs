//! Authority: the EC2 names of a VPC with DNS hostnames on (reference §6.1, §6.3): `ip-10-0-1-25.ec2.internal`
//! for its addresses, and the autodefined reverse zones that map them back.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::authority::{
    Answer, Ask, Authority, Compile, Described, Flow, Registration, Resolved, Scope, soa_for,
};
use super::{DecidedBy, Trace, name, record};
use crate::topology::Vpc;

#[derive(Debug)]
pub(crate) struct Ec2Names {
    /// Per VPC: (label for the trace, IPv4 CIDRs, DNS hostnames on).
    vpcs: Vec<Vpc>,
    domain: Name,
    soa: Record,
}

/// Registration entries: `vpc * 2` for the internal names, `vpc * 2 + 1` for its reverse zones.
const REVERSE: u32 = 1;

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
        Self {
            vpcs: c.topo.vpcs.clone(),
            domain: c.ec2_domain.clone(),
            soa: c.soa.clone(),
        }
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
            .filter(|ip| vpc.contains(IpAddr::V4(*ip)));
        match ip {
            Some(ip) if qtype == RecordType::A || qtype == RecordType::ANY => {
                trace.add("§6.1", || {
                    format!(
                        "{qname} is the EC2 internal name of {ip}, inside {}",
                        vpc.label()
                    )
                });
                Answer::records(vec![record(qname, 60, RData::A(ip.into()))])
            }
            Some(ip) => {
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
        zone: &LowerName,
        qname: &Name,
        qtype: RecordType,
        trace: &mut Trace,
    ) -> Answer {
        let zone = Name::from(zone);
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
            return Answer::negative(ResponseCode::NXDomain, soa_for(&self.soa, &zone));
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
            Answer::negative(ResponseCode::NoError, soa_for(&self.soa, &zone))
        }
    }
}

impl Authority for Ec2Names {
    fn registrations(&self) -> Vec<Registration> {
        let mut out = Vec::new();
        for (vi, vpc) in self
            .vpcs
            .iter()
            .enumerate()
            .filter(|(_, v)| v.dns_hostnames)
        {
            out.push(Registration {
                scope: Scope::Vpc(vi),
                domain: LowerName::new(&self.domain),
                entry: vi as u32 * 2,
            });
            for zone in reverse_zones(vpc) {
                out.push(Registration {
                    scope: Scope::Vpc(vi),
                    domain: LowerName::new(&name(&zone)),
                    entry: vi as u32 * 2 + REVERSE,
                });
            }
        }
        out
    }

    fn lookup(&self, entry: u32, ask: &Ask<'_>, trace: &mut Trace) -> Flow {
        let vpc = &self.vpcs[(entry / 2) as usize];
        // Synthesized from the address in the name: unbounded in number, so never prepared.
        let (by, answer) = if entry % 2 == REVERSE {
            (
                DecidedBy::Ec2Reverse,
                self.reverse(vpc, ask.domain, ask.qname, ask.qtype, trace),
            )
        } else {
            (
                DecidedBy::Ec2Name,
                self.internal(vpc, ask.qname, ask.qtype, trace),
            )
        };
        Flow::Decide {
            by,
            resolved: Resolved::Answer(answer),
            fixed: false,
        }
    }

    fn describe(&self, entry: u32, domain: &LowerName) -> Described {
        if entry % 2 == REVERSE {
            Described {
                kind: "reverse zone",
                label: format!("autodefined reverse rule {domain}"),
                by: DecidedBy::Ec2Reverse,
            }
        } else {
            Described {
                kind: "EC2 internal names",
                label: format!("autodefined rule for {}", self.domain),
                by: DecidedBy::Ec2Name,
            }
        }
    }
}
