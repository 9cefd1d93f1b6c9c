//! Authority: the endpoint-specific `vpce-…` names of interface endpoints. They are public DNS records, so every
//! view answers them (reference §2.1, §2.2, §3.1), with the ENI addresses; S3's are wildcards
//! (`*.vpce-…-sfx.s3.REGION.vpce.amazonaws.com`), so every name below them answers too, at any depth
//! (`my-bucket.bucket.vpce-…`, `ALIAS.accesspoint.vpce-…`). Cross-Region endpoints carry the service's Region and,
//! for AWS services, have no zonal names (§12.4).

use std::collections::HashMap;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, Record};

use super::authority::{
    Answer, Ask, Authority, Compile, Described, Flow, Lost, Registration, Resolved, Scope, soa_for,
};
use super::endpoint_zones::{endpoint_addresses, regional_name};
use super::zone::rename;
use super::{DecidedBy, Trace, name};
use crate::catalog;
use crate::topology::EndpointKind;

#[derive(Debug)]
pub(crate) struct VpceNames {
    names: Vec<Entry>,
    /// `REGION.vpce.SUFFIX.`, the zone of the SOA in negative answers.
    zone: Name,
    soa: Record,
}

#[derive(Debug)]
struct Entry {
    owner: LowerName,
    records: Box<[Record]>,
    /// Names one label below answer too (S3 bucket names).
    wildcard: bool,
}

impl VpceNames {
    pub(crate) fn compile(c: &Compile<'_>) -> Self {
        let mut index: HashMap<LowerName, usize> = HashMap::new();
        let mut names: Vec<Entry> = Vec::new();
        let region = &c.topo.region;
        for e in c
            .topo
            .endpoints
            .iter()
            .filter(|e| e.kind == EndpointKind::Interface)
        {
            let service_region = e.service_region(region);
            let domain = catalog::vpce_domain(&e.service.endpoint_service_id, service_region);
            let is_s3 = e.service.code == "s3";
            let regional = regional_name(e, region);
            let mut owners = vec![(regional, None)];
            // "Zonal DNS is not supported when accessing AWS services in another Region" (§12.4).
            let zonal = e.service_region.is_none()
                || e.service.endpoint_service_id.starts_with("vpce-svc-");
            for eni in e.enis.iter().filter(|_| zonal) {
                let zonal = name(&format!("{}-{}.{domain}", e.name_prefix(), eni.az));
                owners.push((zonal, Some(eni.az.as_str())));
            }
            for (owner, az) in owners {
                let entry = Entry {
                    owner: LowerName::new(&owner),
                    records: endpoint_addresses(e, &owner, az, false),
                    wildcard: is_s3,
                };
                // A later endpoint of the same name replaces the earlier one, as a map insert did.
                match index.get(&entry.owner) {
                    Some(&i) => names[i] = entry,
                    None => {
                        index.insert(entry.owner.clone(), names.len());
                        names.push(entry);
                    }
                }
            }
        }
        Self {
            names,
            zone: name(&format!("{}.vpce.{}", region, c.topo.dns_suffix)),
            soa: c.soa.clone(),
        }
    }

    fn vpce_zone(&self, qname: &Name) -> Name {
        if self.zone.zone_of(qname) {
            self.zone.clone()
        } else {
            qname.base_name()
        }
    }
}

impl Authority for VpceNames {
    fn registrations(&self) -> Vec<Registration> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, e)| Registration {
                scope: Scope::Everywhere,
                domain: e.owner.clone(),
                entry: i as u32,
            })
            .collect()
    }

    fn lookup(&self, entry: u32, ask: &Ask<'_>, trace: &mut Trace) -> Flow {
        let e = &self.names[entry as usize];
        // Registered at the owner: the name is the owner itself or below it.
        let exact = ask.at_domain();
        let bucket = e.wildcard && !exact;
        if !exact && !bucket {
            return Flow::Pass(Lost::NotApplicable);
        }
        let qname = ask.qname;
        let matching: Vec<Record> = e
            .records
            .iter()
            .filter(|r| r.record_type() == ask.qtype)
            .map(|r| rename(r, qname))
            .collect();
        trace.add("§2.1, §2.2, §3.1", || format!("{qname} is an endpoint-specific name: public DNS, answered in every view with the ENI addresses, TTL 60"));
        let mut answer = if matching.is_empty() {
            Answer::negative(
                ResponseCode::NoError,
                soa_for(&self.soa, &self.vpce_zone(qname)),
            )
        } else {
            Answer::records(matching)
        };
        answer.authoritative = false;
        Flow::Decide {
            by: DecidedBy::VpceName,
            resolved: Resolved::Answer(answer),
            fixed: exact,
        }
    }

    fn describe(&self, _entry: u32, _domain: &LowerName) -> Described {
        Described {
            kind: "endpoint-specific name",
            label: "public vpce name".into(),
            by: DecidedBy::VpceName,
        }
    }
}
