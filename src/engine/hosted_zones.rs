//! Authority: customer private hosted zones, in every VPC they are associated with (reference §6.4), with alias
//! records to interface endpoints expanded to the ENI addresses (§6.5), and Route 53's SOA and four name servers at
//! each zone's apex (§12.8).

use std::sync::Arc;

use hickory_proto::rr::rdata::NS;
use hickory_proto::rr::{LowerName, RData, Record, RecordType};

use hickory_proto::rr::Name;

use super::authority::{
    Ask, Authority, Compile, Described, Flow, Profiles, Registration, Resolved, Scope, VIA_PROFILE,
    soa_for,
};
use super::key::key;
use super::zone::Zone;
use super::{DecidedBy, Trace, name, record};
use crate::topology::{HostedZone, Topology, ZoneData, ZoneRecord};

#[derive(Debug)]
pub(crate) struct HostedZones {
    /// (zone, associated VPCs, its short name for verdicts).
    zones: Vec<(Zone, Vec<usize>, Arc<str>)>,
    /// Per zone: the VPCs that get it through their Route 53 Profile.
    shared: Vec<Vec<usize>>,
    profiles: Profiles,
    soa: Record,
}

impl HostedZones {
    pub(crate) fn compile(c: &Compile<'_>) -> Self {
        let zones = c
            .topo
            .hosted_zones
            .iter()
            .map(|z| {
                let short: Arc<str> = Arc::from(z.name.to_string().trim_end_matches('.'));
                (compile_zone(c.topo, z, &c.soa), z.vpcs.clone(), short)
            })
            .collect();
        let shared = c
            .topo
            .hosted_zones
            .iter()
            .enumerate()
            .map(|(zi, z)| Profiles::vpcs(c.topo, &z.vpcs, |p| p.hosted_zones.contains(&zi)))
            .collect();
        Self {
            zones,
            shared,
            profiles: Profiles::compile(c.topo),
            soa: c.soa.clone(),
        }
    }
}

/// The name servers Route 53 gives every private hosted zone (reference §12.8, [DOC]).
const PHZ_NAME_SERVERS: [&str; 4] = [
    "ns-0.awsdns-00.com.",
    "ns-512.awsdns-00.net.",
    "ns-1024.awsdns-00.org.",
    "ns-1536.awsdns-00.co.uk.",
];
/// TTL of the apex NS records (reference §12.8, [DOC]; the SOA's is 900).
const PHZ_NS_TTL: u32 = 172_800;

/// The apex SOA and NS records every private hosted zone has, answered in the ANSWER section (reference §12.8).
fn apex_records(zone: &Name, soa: &Record) -> Vec<Record> {
    let mut out = vec![soa_for(soa, zone)];
    out.extend(
        PHZ_NAME_SERVERS
            .iter()
            .map(|ns| record(zone, PHZ_NS_TTL, RData::NS(NS(name(ns))))),
    );
    out
}

fn compile_zone(topo: &Topology, z: &HostedZone, soa: &Record) -> Zone {
    let mut zone = Zone::new(
        z.name.clone(),
        format!("private hosted zone {} ({})", z.name, z.id),
        "§6.4",
    );
    for r in &z.records {
        if let ZoneData::AliasEndpoint { endpoint, az } = &r.data {
            let e = &topo.endpoints[*endpoint];
            let what = match az {
                Some(az) => format!(
                    "the {az} ENI of endpoint {} ({} in {})",
                    e.id, e.service.code, topo.vpcs[e.vpc].id
                ),
                None => format!(
                    "the ENIs of endpoint {} ({} in {})",
                    e.id, e.service.code, topo.vpcs[e.vpc].id
                ),
            };
            zone.aliases.insert(key(&r.name), what);
        }
        // The zone's own SOA and NS come below (a topology can't write them: `import` leaves Route 53's out).
        if r.name == z.name && matches!(r.rtype, RecordType::SOA | RecordType::NS) {
            continue;
        }
        // An alias with no address of the asked type still makes the name exist (NODATA, not NXDOMAIN).
        zone.add(&r.name, record_set(topo, r));
    }
    zone.add(&z.name, apex_records(&z.name, soa));
    zone.seal();
    zone
}

fn record_set(topo: &Topology, r: &ZoneRecord) -> Vec<Record> {
    match &r.data {
        ZoneData::Values(values) => values
            .iter()
            .map(|v| record(&r.name, r.ttl, v.clone()))
            .collect(),
        ZoneData::AliasEndpoint { endpoint, az } => topo.endpoints[*endpoint]
            .enis
            .iter()
            .filter(|eni| az.as_ref().is_none_or(|az| &eni.az == az))
            .filter_map(|eni| match r.rtype {
                RecordType::A => eni.ip.map(|ip| record(&r.name, r.ttl, RData::A(ip.into()))),
                _ => eni
                    .ipv6
                    .map(|ip| record(&r.name, r.ttl, RData::AAAA(ip.into()))),
            })
            .collect(),
    }
}

impl Authority for HostedZones {
    fn registrations(&self) -> Vec<Registration> {
        let mut out = Vec::new();
        for (i, (zone, vpcs, _)) in self.zones.iter().enumerate() {
            for &vpc in vpcs {
                out.push(Registration {
                    scope: Scope::Vpc(vpc),
                    domain: LowerName::new(&zone.name),
                    entry: i as u32,
                });
            }
        }
        // After every own association: the VPC's own zone of a name wins over its Profile's.
        for (i, vpcs) in self.shared.iter().enumerate() {
            for &vpc in vpcs {
                out.push(Registration {
                    scope: Scope::Vpc(vpc),
                    domain: LowerName::new(&self.zones[i].0.name),
                    entry: i as u32 | VIA_PROFILE,
                });
            }
        }
        out
    }

    fn lookup(&self, entry: u32, ask: &Ask<'_>, trace: &mut Trace) -> Flow {
        let label = &self.zones[(entry & !VIA_PROFILE) as usize].0.label;
        let entry = self.profiles.entry(entry, ask, label, trace);
        let (zone, _, short) = &self.zones[entry as usize];
        let mut fixed = true;
        let answer = zone.answer(&self.soa, ask, trace, &mut fixed);
        Flow::Decide {
            by: DecidedBy::HostedZone(short.clone()),
            resolved: Resolved::Answer(answer),
            fixed,
        }
    }

    fn describe(&self, entry: u32, _domain: &LowerName) -> Described {
        let (zone, _, short) = &self.zones[(entry & !VIA_PROFILE) as usize];
        Described {
            kind: "private hosted zone",
            label: zone.label.clone(),
            by: DecidedBy::HostedZone(short.clone()),
        }
    }
}
