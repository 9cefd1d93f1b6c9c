//! Authority: the private DNS names of interface endpoints, each a hidden private zone in the endpoint's VPC, as AWS
//! models them (reference §1.1, §1.4): shadowing, NODATA and wildcard apexes follow the zone rules. S3 endpoints
//! with private DNS only for inbound Resolver endpoints stand aside for clients inside the VPC (§3.3).

use std::sync::Arc;

use hickory_proto::rr::rdata;
use hickory_proto::rr::{LowerName, Name, RData, Record};

use super::authority::{
    Ask, Authority, Compile, Described, Flow, Lost, Profiles, Registration, Resolved, Scope,
    VIA_PROFILE,
};
use super::zone::Zone;
use super::{DecidedBy, ENDPOINT_TTL, Trace, name, record};
use crate::catalog;
use crate::topology::{Endpoint, EndpointKind};

#[derive(Debug)]
pub(crate) struct EndpointZones {
    /// (zone, its endpoint's VPC, endpoint id).
    zones: Vec<(Zone, usize, Arc<str>)>,
    /// Per zone: the VPCs that get it through their Route 53 Profile.
    shared: Vec<Vec<usize>>,
    profiles: Profiles,
    soa: Record,
}

/// The A/AAAA records of an endpoint's ENIs (of one AZ when given) owned by `owner`.
pub(crate) fn endpoint_addresses(
    e: &Endpoint,
    owner: &Name,
    az: Option<&str>,
    dualstack_name: bool,
) -> Box<[Record]> {
    let (want_a, want_aaaa) = e.dns_record_ip_type.answers(dualstack_name);
    let mut out = Vec::new();
    for eni in e.enis.iter().filter(|eni| az.is_none_or(|az| eni.az == az)) {
        if want_a && let Some(ip) = eni.ip {
            out.push(record(owner, ENDPOINT_TTL, RData::A(ip.into())));
        }
        if want_aaaa && let Some(ip) = eni.ipv6 {
            out.push(record(owner, ENDPOINT_TTL, RData::AAAA(ip.into())));
        }
    }
    // Boxed at its exact size: 10,000s of these sets live as long as the topology.
    out.into_boxed_slice()
}

/// The Regional `vpce-…` name of an interface endpoint.
pub(crate) fn regional_name(e: &Endpoint, region: &str) -> Name {
    // A cross-Region endpoint's names carry the service's Region (reference §12.4).
    let domain = catalog::vpce_domain(&e.service.endpoint_service_id, e.service_region(region));
    name(&format!("{}.{domain}", e.name_prefix()))
}

impl EndpointZones {
    pub(crate) fn compile(c: &Compile<'_>) -> Self {
        let mut zones = Vec::new();
        let mut shared = Vec::new();
        for (ei, e) in c.topo.endpoints.iter().enumerate() {
            if e.kind == EndpointKind::Interface && e.private_dns {
                let own = endpoint_zones(e, &c.topo.region);
                // A Profile's interface endpoints answer their private DNS names in the Profile's VPCs.
                let vpcs = Profiles::vpcs(c.topo, &[e.vpc], |p| p.endpoints.contains(&ei));
                shared.extend(own.iter().map(|_| vpcs.clone()));
                zones.extend(own);
            }
        }
        Self {
            zones,
            shared,
            profiles: Profiles::compile(c.topo),
            soa: c.soa.clone(),
        }
    }
}

/// The hidden zones of one endpoint: names that share a zone (s3.R and *.s3.R) merge into it.
fn endpoint_zones(e: &Endpoint, region: &str) -> Vec<(Zone, usize, Arc<str>)> {
    let regional = regional_name(e, region);
    let custom = e.service.evidence == catalog::Evidence::User;
    let id: Arc<str> = Arc::from(e.id.as_str());
    let mut own: Vec<(Zone, usize, Arc<str>)> = Vec::new();
    for dns_name in &e.service.private_dns_names {
        let (wildcard, bare) = match dns_name.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, dns_name.as_str()),
        };
        let zone_name = name(bare);
        let zi = match own.iter().position(|(z, _, _)| z.name == zone_name) {
            Some(zi) => zi,
            None => {
                let label = format!(
                    "the private DNS zone {zone_name} of endpoint {} ({})",
                    e.id, e.service.name
                );
                let mut zone = Zone::new(zone_name.clone(), label, "§1.1, §1.4");
                zone.inbound_only = e.inbound_only;
                own.push((zone, e.vpc, id.clone()));
                own.len() - 1
            }
        };
        let owner = if wildcard {
            name(&format!("*.{bare}"))
        } else {
            zone_name
        };
        let recs = if custom {
            // Endpoint services: a CNAME to the endpoint's Regional name (reference §7).
            Box::new([record(
                &owner,
                ENDPOINT_TTL,
                RData::CNAME(rdata::CNAME(regional.clone())),
            )])
        } else {
            endpoint_addresses(e, &owner, None, bare.ends_with(".api.aws"))
        };
        own[zi].0.add(&owner, recs);
    }
    for (zone, _, _) in &mut own {
        zone.seal();
    }
    own
}

impl Authority for EndpointZones {
    fn registrations(&self) -> Vec<Registration> {
        let mut out: Vec<Registration> = self
            .zones
            .iter()
            .enumerate()
            .map(|(i, (zone, vpc, _))| Registration {
                scope: Scope::Vpc(*vpc),
                domain: LowerName::new(&zone.name),
                entry: i as u32,
            })
            .collect();
        // After every VPC's own endpoints: its own private DNS name wins over its Profile's.
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
        let (zone, _, id) = &self.zones[entry as usize];
        if zone.inbound_only && !ask.view.via_inbound {
            trace.add("§3.3", || format!("{} is private DNS only for inbound Resolver endpoints: a client inside the VPC gets the public answer (its traffic takes the S3 gateway endpoint)", zone.label));
            return Flow::Pass(Lost::InboundOnly);
        }
        let mut fixed = true;
        let answer = zone.answer(&self.soa, ask, trace, &mut fixed);
        Flow::Decide {
            by: DecidedBy::EndpointZone(id.clone()),
            resolved: Resolved::Answer(answer),
            fixed,
        }
    }

    fn describe(&self, entry: u32, _domain: &LowerName) -> Described {
        let (zone, _, id) = &self.zones[(entry & !VIA_PROFILE) as usize];
        Described {
            kind: "endpoint private DNS",
            label: zone.label.clone(),
            by: DecidedBy::EndpointZone(id.clone()),
        }
    }
}
