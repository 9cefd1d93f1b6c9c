//! Authority: customer private hosted zones, in every VPC they are associated with (reference §6.4), with alias
//! records to interface endpoints expanded to the ENI addresses (§6.5).

use std::sync::Arc;

use hickory_proto::rr::{LowerName, RData, Record, RecordType};

use super::authority::{Ask, Authority, Compile, Described, Flow, Registration, Resolved, Scope};
use super::zone::Zone;
use super::{DecidedBy, Trace, record};
use crate::topology::{HostedZone, Topology, ZoneData, ZoneRecord};

#[derive(Debug)]
pub(crate) struct HostedZones {
    /// (zone, associated VPCs, its short name for verdicts).
    zones: Vec<(Zone, Vec<usize>, Arc<str>)>,
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
                (compile_zone(c.topo, z), z.vpcs.clone(), short)
            })
            .collect();
        Self {
            zones,
            soa: c.soa.clone(),
        }
    }
}

fn compile_zone(topo: &Topology, z: &HostedZone) -> Zone {
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
            zone.aliases.insert(LowerName::new(&r.name), what);
        }
        // An alias with no address of the asked type still makes the name exist (NODATA, not NXDOMAIN).
        zone.records
            .entry(LowerName::new(&r.name))
            .or_default()
            .extend(record_set(topo, r));
    }
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
        out
    }

    fn lookup(&self, entry: u32, ask: &Ask<'_>, trace: &mut Trace) -> Flow {
        let (zone, _, short) = &self.zones[entry as usize];
        let mut fixed = true;
        let answer = zone.answer(&self.soa, ask.qname, ask.qtype, trace, &mut fixed);
        Flow::Decide {
            by: DecidedBy::HostedZone(short.clone()),
            resolved: Resolved::Answer(answer),
            fixed,
        }
    }

    fn describe(&self, entry: u32, _domain: &LowerName) -> Described {
        let (zone, _, short) = &self.zones[entry as usize];
        Described {
            kind: "private hosted zone",
            label: zone.label.clone(),
            by: DecidedBy::HostedZone(short.clone()),
        }
    }
}
